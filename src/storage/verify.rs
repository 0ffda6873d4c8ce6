//! Offline verification of the tamper-evidence chain (`palisade verify`).
//!
//! Detects, per partition, the first batch that was edited, inserted, deleted or reordered
//! while the chain files are intact, a chain file that was edited or lost entries, segments
//! whose chain headers do not continue each other, and a log tail truncated relative to the
//! chain. It cannot detect an attacker who rewrites log and chain consistently (the chain
//! has no secret key): anchor the head digests it prints somewhere the attacker cannot
//! write, and hand them back as an anchor ([`verify_against`]) on the next run: every
//! anchored partition must still have a batch ending at the anchored offset with the anchored
//! digest, so a consistent rewrite of anything the anchor covers is found. The first remaining
//! segment's chain header is taken on trust, since retention legitimately deletes older
//! segments (an anchor older than the retained log is reported, not failed).

use std::path::{Path, PathBuf};

use super::chain::{self, Digest};
use super::fsutil::{io_err, list_segments, parse_partition_dir, segment_file};
use super::scan::{BatchScanner, Scan};
use super::{StorageError, VerifyFinding};

/// The head of one partition's chain after verification (also the entries of the anchor file
/// `palisade verify --heads-out` writes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionHead {
    pub partition: String,
    /// Offset after the last verified batch.
    pub next_offset: i64,
    /// Hex SHA-256 of the last verified batch's chain link.
    #[serde(rename = "sha256")]
    pub digest: String,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub findings: Vec<VerifyFinding>,
    pub batches: u64,
    pub heads: Vec<PartitionHead>,
    /// Anchored points that could not be checked because retention deleted them.
    pub notes: Vec<String>,
}

/// Walks every partition under `data_dir` and checks every batch against the chain.
pub fn verify_data_dir(data_dir: &Path) -> Result<(Vec<VerifyFinding>, u64), StorageError> {
    let report = verify_data_dir_report(data_dir)?;
    Ok((report.findings, report.batches))
}

/// Like [`verify_data_dir`], also returning every partition's head digest for anchoring.
pub fn verify_data_dir_report(data_dir: &Path) -> Result<VerifyReport, StorageError> {
    verify_against(data_dir, &[])
}

/// Like [`verify_data_dir_report`], also checking each partition against the head `anchor`
/// recorded for it by an earlier run.
pub fn verify_against(
    data_dir: &Path,
    anchor: &[PartitionHead],
) -> Result<VerifyReport, StorageError> {
    let mut partitions: Vec<(String, i32, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(data_dir).map_err(io_err(data_dir))? {
        let path = entry.map_err(io_err(data_dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !path.is_dir() || name == "meta" || name.ends_with("-delete") {
            continue;
        }
        if let Some((topic, index)) = parse_partition_dir(name) {
            partitions.push((topic.to_string(), index, path.clone()));
        }
    }
    partitions.sort();
    let mut report = VerifyReport::default();
    for head in anchor {
        if !partitions
            .iter()
            .any(|(t, i, _)| format!("{t}-{i}") == head.partition)
        {
            report.findings.push(VerifyFinding::Mismatch {
                partition: head.partition.clone(),
                offset: head.next_offset,
                reason: "partition missing: it is in the anchor but not on disk".into(),
            });
        }
    }
    for (topic, index, dir) in partitions {
        let name = format!("{topic}-{index}");
        let point = anchor.iter().find(|h| h.partition == name);
        let outcome = verify_partition(&dir, point)?;
        report.batches += outcome.batches;
        if let Some((offset, reason)) = outcome.finding {
            report.findings.push(VerifyFinding::Mismatch {
                partition: name.clone(),
                offset,
                reason,
            });
        } else if let Some(note) = outcome.anchor_note {
            report.notes.push(format!("{name}: {note}"));
        }
        report.heads.push(PartitionHead {
            partition: name,
            next_offset: outcome.next_offset,
            digest: hex::encode(outcome.head),
        });
    }
    Ok(report)
}

struct Outcome {
    finding: Option<(i64, String)>,
    batches: u64,
    next_offset: i64,
    head: Digest,
    /// Why the anchor could not be checked (not a finding).
    anchor_note: Option<String>,
}

/// The anchored point of a partition: seen with its digest, seen with another, or not seen.
struct AnchorCheck<'a> {
    point: Option<&'a PartitionHead>,
    matched: bool,
    /// The offset the retained log starts at.
    first_offset: Option<i64>,
}

impl AnchorCheck<'_> {
    /// At a chain link that follows every batch before `next_offset`: a finding if this is
    /// the anchored point and the digest differs.
    fn at(&mut self, next_offset: i64, digest: &Digest) -> Option<(i64, String)> {
        let point = self.point?;
        if point.next_offset != next_offset || self.matched {
            return None;
        }
        if hex::encode(digest) == point.digest {
            self.matched = true;
            return None;
        }
        Some((
            next_offset,
            "rewritten: the chain up to this offset differs from the anchored head".into(),
        ))
    }

    /// After the last batch: a finding when the anchored point should have been seen.
    fn finish(&self, out: &mut Outcome) {
        let Some(point) = self.point else {
            return;
        };
        let empty_anchor = point.next_offset == 0 && point.digest == hex::encode(chain::GENESIS);
        if self.matched || out.finding.is_some() || empty_anchor {
            return;
        }
        if self
            .first_offset
            .is_some_and(|first| first > point.next_offset)
        {
            out.anchor_note = Some(format!(
                "anchored offset {} predates the retained log (retention deleted it)",
                point.next_offset
            ));
        } else if out.next_offset < point.next_offset {
            out.finding = Some((
                out.next_offset,
                format!(
                    "truncated: the log ends before the anchored offset {}",
                    point.next_offset
                ),
            ));
        } else {
            out.finding = Some((
                point.next_offset,
                "rewritten: no batch ends at the anchored offset".into(),
            ));
        }
    }
}

fn verify_partition(dir: &Path, anchor: Option<&PartitionHead>) -> Result<Outcome, StorageError> {
    let mut out = Outcome {
        finding: None,
        batches: 0,
        next_offset: 0,
        head: chain::GENESIS,
        anchor_note: None,
    };
    let mut check = AnchorCheck {
        point: anchor,
        matched: false,
        first_offset: None,
    };
    let result = walk_partition(dir, &mut out, &mut check);
    check.finish(&mut out);
    result.map(|()| out)
}

fn walk_partition(
    dir: &Path,
    out: &mut Outcome,
    check: &mut AnchorCheck<'_>,
) -> Result<(), StorageError> {
    let mut running: Option<Digest> = None;
    let mut expected: Option<i64> = None;
    for base in list_segments(dir).map_err(io_err(dir))? {
        let at = expected.unwrap_or(base);
        let chain_path = segment_file(dir, base, "chain");
        let contents = match chain::read_chain(&chain_path) {
            Ok(Some(contents)) => contents,
            Ok(None) | Err(_) => {
                out.finding = Some((
                    at,
                    "chain entry missing: chain file missing or unreadable".into(),
                ));
                return Ok(());
            }
        };
        if running.is_some_and(|r| r != contents.prev) {
            out.finding = Some((
                at,
                "chain broken: segment does not continue the previous one".into(),
            ));
            return Ok(());
        }
        check.first_offset.get_or_insert(base);
        if let Some(finding) = check.at(base, &contents.prev) {
            out.finding = Some(finding);
            return Ok(());
        }
        let mut digest = contents.prev;
        let log_path = segment_file(dir, base, "log");
        let log = std::fs::File::open(&log_path).map_err(io_err(&log_path))?;
        let len = log.metadata().map_err(io_err(&log_path))?.len();
        let mut scanner = BatchScanner::new(&log, 0, len);
        let mut i = 0usize;
        loop {
            let entry = contents.entries.get(i);
            let (header, body) = match scanner.next_batch(true).map_err(io_err(&log_path))? {
                Scan::End => break,
                Scan::Invalid { pos } => {
                    let offset = entry.map_or(at, |e| e.base_offset);
                    let torn = entry.is_some_and(|e| pos + u64::from(e.length) > len);
                    let reason = if torn {
                        "truncated: log ends inside a batch"
                    } else {
                        "bytes changed: not a valid batch"
                    };
                    out.finding = Some((offset, reason.into()));
                    return Ok(());
                }
                Scan::Batch { header, body, .. } => (header, body.unwrap_or_default()),
            };
            let offset = header.frame.base_offset;
            let reason = match entry {
                None => Some((offset, "chain entry missing".to_string())),
                Some(e) if e.base_offset > offset => Some((offset, "chain entry missing".into())),
                Some(e) if e.base_offset < offset => Some((
                    e.base_offset,
                    format!("chain broken: batch missing from the log before offset {offset}"),
                )),
                Some(e) => {
                    digest = chain::next_digest(&digest, body);
                    if e.length as usize != body.len() || e.digest != digest {
                        Some((offset, "bytes changed".into()))
                    } else if expected.is_some_and(|x| x != offset) {
                        Some((offset, "chain broken: offsets not contiguous".into()))
                    } else {
                        None
                    }
                }
            };
            if let Some(finding) = reason {
                out.finding = Some(finding);
                return Ok(());
            }
            expected = Some(header.frame.last_offset.saturating_add(1));
            if let Some(finding) = check.at(header.frame.last_offset.saturating_add(1), &digest) {
                out.finding = Some(finding);
                return Ok(());
            }
            out.batches += 1;
            out.next_offset = header.frame.last_offset.saturating_add(1);
            out.head = digest;
            i += 1;
        }
        if let Some(e) = contents.entries.get(i) {
            out.finding = Some((e.base_offset, "truncated: log ends before the chain".into()));
            return Ok(());
        }
        running = Some(digest);
        out.head = digest;
        expected.get_or_insert(base);
    }
    Ok(())
}
