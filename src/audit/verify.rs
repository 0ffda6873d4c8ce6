//! `palisade audit verify`: walks audit files in rotation order and checks the hash chain.
//!
//! It names the first problem as `file:line`:
//! - a line whose hash no longer matches the `prev` of the next event: that line was altered;
//! - a jump in `seq`: events were removed before this line;
//! - a `seq` that goes backwards, or a `prev` that matches nothing: events were reordered;
//! - a line that is not a JSON event at all.
//!
//! Files are checked in the order given; a directory stands for its `audit-<N>.jsonl` files in
//! number order. The trail must start at `seq` 1 with the genesis `prev` when its first file is
//! `audit-00000001.jsonl`; a later first file (older ones archived) starts the check there.
//!
//! The chain has no secret: whoever can write the files can rewrite the whole trail
//! consistently. An anchor ([`Anchor`]: the `seq` and hash of an event, kept where this host
//! cannot write) defeats that: the event with that `seq` must still hash the same.

use std::path::{Path, PathBuf};

use super::chain::{hash_line, GENESIS};
use super::file_sink::{file_number, list_files};
use super::AuditError;

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub files: usize,
    pub events: u64,
    pub problem: Option<Finding>,
    /// The trail was checked from this `seq` on (older files not given).
    pub started_at: Option<u64>,
    /// The last event checked: its `seq` and the SHA-256 of its line (hex).
    pub head: Option<Anchor>,
    /// Whether the anchor given was found and matched (`None`: no anchor, or older than the
    /// files given).
    pub anchor_matched: Option<bool>,
}

/// One event of the trail, by `seq` and the hash of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub sha256: String,
}

/// Expands directories into their audit files (rotation order); files stay as given.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, AuditError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(list_files(p)?.into_iter().map(|(_, f)| f));
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

struct Previous {
    file: PathBuf,
    line: usize,
    seq: u64,
    hash: String,
}

/// Verifies `paths` (files and directories) as one trail.
pub fn verify(paths: &[PathBuf]) -> Result<Report, AuditError> {
    verify_against(paths, None)
}

/// [`verify`], also checking that the event `anchor` names is still there, unchanged.
pub fn verify_against(paths: &[PathBuf], anchor: Option<&Anchor>) -> Result<Report, AuditError> {
    let mut report = walk(paths, anchor)?;
    if let (Some(a), None) = (anchor, &report.problem) {
        let last = report.head.as_ref().map_or(0, |h| h.seq);
        if report.anchor_matched.is_none() && a.seq > last {
            report.problem = Some(Finding {
                file: expand(paths)?.last().cloned().unwrap_or_default(),
                line: 0,
                message: format!(
                    "truncated: the trail ends at seq {last}, before the anchored seq {}",
                    a.seq
                ),
            });
        }
    }
    Ok(report)
}

fn walk(paths: &[PathBuf], anchor: Option<&Anchor>) -> Result<Report, AuditError> {
    let files = expand(paths)?;
    let mut report = Report {
        files: files.len(),
        events: 0,
        problem: None,
        started_at: None,
        head: None,
        anchor_matched: None,
    };
    let mut previous: Option<Previous> = None;
    for file in &files {
        let text = std::fs::read(file).map_err(|source| AuditError::Io {
            path: file.clone(),
            source,
        })?;
        for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
            let line_no = i + 1;
            if raw.is_empty() && i + 1 == text.split(|b| *b == b'\n').count() {
                break; // the newline ending the last line
            }
            let found = |message: String| Finding {
                file: file.clone(),
                line: line_no,
                message,
            };
            let parsed = serde_json::from_slice::<serde_json::Value>(raw).ok();
            let fields = parsed.as_ref().and_then(|v| {
                Some((
                    v.get("seq")?.as_u64()?,
                    v.get("prev")?.as_str()?.to_string(),
                ))
            });
            let Some((seq, prev)) = fields else {
                report.problem = Some(found(
                    "not an audit event (altered, truncated or inserted)".into(),
                ));
                return Ok(report);
            };
            if let Some(problem) = check_link(previous.as_ref(), file, seq, &prev, &mut report) {
                report.problem = Some(match problem {
                    Link::Here(message) => found(message),
                    Link::Previous(f) => f,
                });
                return Ok(report);
            }
            report.events += 1;
            let hash = hash_line(raw);
            if let Some(a) = anchor.filter(|a| a.seq == seq) {
                if a.sha256 != hash {
                    report.problem = Some(found(format!(
                        "rewritten: event seq {seq} is not the anchored one (the trail was rewritten up to here)"
                    )));
                    return Ok(report);
                }
                report.anchor_matched = Some(true);
            }
            report.head = Some(Anchor {
                seq,
                sha256: hash.clone(),
            });
            previous = Some(Previous {
                file: file.clone(),
                line: line_no,
                seq,
                hash,
            });
        }
    }
    Ok(report)
}

enum Link {
    Here(String),
    Previous(Finding),
}

fn check_link(
    previous: Option<&Previous>,
    file: &Path,
    seq: u64,
    prev: &str,
    report: &mut Report,
) -> Option<Link> {
    let Some(p) = previous else {
        let is_first_file = file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(file_number)
            == Some(1);
        return match (seq, prev == GENESIS) {
            (1, true) => None,
            (1, false) => Some(Link::Here(
                "the first event does not start the chain (its `prev` is not the genesis hash)"
                    .into(),
            )),
            (s, _) if is_first_file => Some(Link::Here(format!(
                "the trail starts at seq {s}: the events before it were removed"
            ))),
            (s, _) => {
                report.started_at = Some(s);
                None
            }
        };
    };
    let expected = p.seq.saturating_add(1);
    if seq == expected && prev == p.hash {
        return None;
    }
    if seq == expected {
        return Some(Link::Previous(Finding {
            file: p.file.clone(),
            line: p.line,
            message: format!(
                "event seq {} was altered: its hash does not match `prev` of the next event",
                p.seq
            ),
        }));
    }
    if seq > expected {
        return Some(Link::Here(format!(
            "seq {seq} follows seq {}: {} event(s) removed or moved before this line",
            p.seq,
            seq - expected
        )));
    }
    Some(Link::Here(format!(
        "seq {seq} follows seq {}: events reordered (or duplicated)",
        p.seq
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{next_line, ChainHead};
    use crate::audit::event::{Event, EventType, Outcome};

    fn trail(dir: &Path, n: usize) -> PathBuf {
        let mut head = ChainHead::genesis();
        let lines: Vec<String> = (0..n)
            .map(|i| {
                let e = Event::new(EventType::TopicCreated, Outcome::Success)
                    .resource(format!("topic:t{i}"));
                next_line(&mut head, &e).unwrap()
            })
            .collect();
        let path = dir.join("audit-00000001.jsonl");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    fn edit(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        f(&mut lines);
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn clean_altered_removed_and_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = trail(dir.path(), 5);
        let ok = verify(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!((ok.events, ok.problem), (5, None));

        edit(&path, |l| l[1] = l[1].replace("topic:t1", "topic:tX"));
        let p = verify(std::slice::from_ref(&path))
            .unwrap()
            .problem
            .unwrap();
        assert_eq!(p.line, 2, "{p}");
        assert!(p.message.contains("altered"), "{p}");

        let path = trail(dir.path(), 5);
        edit(&path, |l| {
            l.remove(2);
        });
        let p = verify(std::slice::from_ref(&path))
            .unwrap()
            .problem
            .unwrap();
        assert_eq!(p.line, 3, "{p}");
        assert!(p.message.contains("removed"), "{p}");

        let path = trail(dir.path(), 5);
        edit(&path, |l| l.swap(1, 2));
        let p = verify(std::slice::from_ref(&path))
            .unwrap()
            .problem
            .unwrap();
        assert_eq!(p.line, 2, "{p}");

        let path = trail(dir.path(), 5);
        edit(&path, |l| {
            l.remove(0);
        });
        let p = verify(&[path]).unwrap().problem.unwrap();
        assert_eq!(p.line, 1, "{p}");
    }

    #[test]
    fn an_anchor_finds_a_trail_rewritten_with_its_chain_and_a_truncated_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = trail(dir.path(), 10);
        let original = verify(std::slice::from_ref(&path)).unwrap();
        let head = original.head.clone().unwrap();
        assert_eq!(head.seq, 10);
        // A seq in the middle, as an earlier run would have written it.
        let text = std::fs::read_to_string(&path).unwrap();
        let early = Anchor {
            seq: 5,
            sha256: hash_line(text.lines().nth(4).unwrap().as_bytes()),
        };
        let checked = verify_against(std::slice::from_ref(&path), Some(&early)).unwrap();
        assert_eq!(checked.problem, None);
        assert_eq!(checked.anchor_matched, Some(true));

        // Rewritten consistently (other events, chain recomputed): only the anchor sees it.
        let forged_dir = tempfile::tempdir().unwrap();
        let forged = forged_dir.path().join("audit-00000001.jsonl");
        let mut chain = ChainHead::genesis();
        let lines: Vec<String> = (0..10)
            .map(|i| {
                let e = Event::new(EventType::TopicDeleted, Outcome::Success)
                    .resource(format!("topic:t{i}"));
                next_line(&mut chain, &e).unwrap()
            })
            .collect();
        std::fs::write(&forged, lines.join("\n") + "\n").unwrap();
        assert_eq!(verify(std::slice::from_ref(&forged)).unwrap().problem, None);
        let problem = verify_against(std::slice::from_ref(&forged), Some(&early))
            .unwrap()
            .problem
            .unwrap();
        assert_eq!(problem.line, 5);
        assert!(problem.message.starts_with("rewritten"), "{problem}");

        // Cut after seq 3: the anchored event is gone.
        edit(&path, |lines| lines.truncate(3));
        let problem = verify_against(&[path], Some(&early))
            .unwrap()
            .problem
            .unwrap();
        assert!(
            problem
                .message
                .contains("ends at seq 3, before the anchored seq 5"),
            "{problem}"
        );
    }
}
