//! The durable log of committed offsets: `<data>/groups/offsets.log`.
//!
//! One record per line, `<crc32c as 8 hex digits> <json>\n`. Commits append to an in-memory
//! buffer and wait for an fsync covering their sequence number; whoever takes the file lock
//! first writes and fsyncs everything buffered so far, so concurrent commits share one fsync.
//! The write runs on a blocking thread that owns the lock for its whole duration, so a caller
//! that gives up (client disconnect) cannot interleave two writers.
//!
//! On open the log is replayed (a bad line, typically a torn tail after a crash, is skipped
//! with a warning) and then compacted: rewritten as one line per live offset into a temporary
//! file that is fsynced and renamed over the log, followed by an fsync of the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::GroupError;

const LOG_NAME: &str = "offsets.log";
const LEGACY_TMP_NAME: &str = "offsets.log.tmp";

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Record {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: Option<String>,
        timestamp_ms: i64,
    },
    DeleteGroup {
        group: String,
    },
    DeleteTopic {
        topic: String,
    },
}

struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last append.
    appended: u64,
    /// Records appended since the last rewrite: drives periodic compaction.
    records_since_rewrite: u64,
}

/// Compact once the log holds this many records more than live offsets, at least.
const COMPACT_MIN_RECORDS: u64 = 10_000;

struct FileState {
    file: File,
    /// Every append up to this sequence number is on disk.
    durable: u64,
    /// A write or fsync failed: what is on disk is unknown, so no later commit may claim
    /// durability until the log is rewritten.
    failed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    file: Mutex<FileState>,
}

pub(super) struct OffsetStore {
    dir: PathBuf,
    shared: Arc<Shared>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> GroupError + '_ {
    move |source| GroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open_append(path: &Path) -> Result<File, GroupError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

pub(super) fn encode_line(record: &Record) -> Vec<u8> {
    // Serializing these plain types cannot fail; an empty line would be skipped on replay.
    let json = serde_json::to_vec(record).unwrap_or_default();
    let mut line = format!("{:08x} ", crc32c::crc32c(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

fn decode_line(line: &[u8]) -> Option<Record> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if crc32c::crc32c(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// Parses a whole log; bad lines are skipped with a warning.
fn parse_log(path: &Path, data: &[u8]) -> Vec<Record> {
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let last = lines.len().saturating_sub(1);
    let mut records = Vec::with_capacity(lines.len());
    for (index, line) in lines.into_iter().enumerate() {
        match decode_line(line) {
            Some(record) => records.push(record),
            None if index == last && !data.ends_with(b"\n") => {
                tracing::warn!(path = %path.display(), "skipping torn last record of the offset log");
            }
            None => {
                tracing::warn!(path = %path.display(), line = index + 1, "skipping corrupt record of the offset log");
            }
        }
    }
    records
}

impl OffsetStore {
    /// Opens (creating) the log under `dir` and returns its records.
    pub fn open(dir: &Path) -> Result<(Self, Vec<Record>), GroupError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOG_NAME);
        // A compaction that died before its rename leaves a temporary file; the log itself is
        // still complete. (`offsets.log.tmp` is the name older versions used.)
        let legacy_tmp = dir.join(LEGACY_TMP_NAME);
        if legacy_tmp.exists() {
            fs::remove_file(&legacy_tmp).map_err(io_err(&legacy_tmp))?;
        }
        crate::atomic_file::remove_leftovers(&path).map_err(io_err(dir))?;
        let records = match fs::read(&path) {
            Ok(data) => parse_log(&path, &data),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let file = open_append(&path)?;
        let store = OffsetStore {
            dir: dir.to_path_buf(),
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending {
                    buf: Vec::new(),
                    appended: 0,
                    records_since_rewrite: 0,
                }),
                file: Mutex::new(FileState {
                    file,
                    durable: 0,
                    failed: false,
                }),
            }),
        };
        Ok((store, records))
    }

    /// Buffers records; returns the sequence number to pass to [`OffsetStore::sync`].
    pub fn append(&self, records: &[Record]) -> u64 {
        let mut pending = self.shared.pending.lock();
        for record in records {
            let line = encode_line(record);
            pending.buf.extend_from_slice(&line);
        }
        pending.appended += 1;
        pending.records_since_rewrite += records.len() as u64;
        pending.appended
    }

    /// The log has grown well beyond the `live` offsets it describes.
    pub fn needs_compaction(&self, live: u64) -> bool {
        let appended = self.shared.pending.lock().records_since_rewrite;
        appended > COMPACT_MIN_RECORDS.max(live.saturating_mul(2))
    }

    /// Waits until append `seq` is on disk.
    pub async fn sync(&self, seq: u64) -> io::Result<()> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.flush(seq))
            .await
            .map_err(io::Error::other)?
    }

    /// Starts making `seq` durable without waiting: on a blocking thread inside a runtime,
    /// inline otherwise. For rare administrative records (deleted topics and groups).
    pub fn flush_detached(&self, seq: u64) {
        let shared = self.shared.clone();
        let flush = move || {
            if let Err(e) = shared.flush(seq) {
                tracing::error!(error = %e, "offset log flush failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(flush)),
            Err(_) => flush(),
        }
    }

    /// Replaces the log with `records` (compaction). The caller holds the group lock, so the
    /// records include everything appended so far.
    pub fn rewrite(&self, records: &[Record]) -> Result<(), GroupError> {
        let path = self.dir.join(LOG_NAME);
        let mut state = self.shared.file.lock();
        let mut pending = self.shared.pending.lock();
        let mut data = Vec::new();
        for record in records {
            data.extend_from_slice(&encode_line(record));
        }
        crate::atomic_file::replace(&path, &data, crate::atomic_file::SHARED)
            .map_err(io_err(&path))?;
        state.file = open_append(&path)?;
        pending.buf.clear();
        pending.records_since_rewrite = 0;
        state.durable = pending.appended;
        state.failed = false;
        Ok(())
    }
}

impl Shared {
    fn flush(&self, seq: u64) -> io::Result<()> {
        let mut state = self.file.lock();
        if state.failed {
            return Err(io::Error::other(
                "an earlier write to the offset log failed",
            ));
        }
        if state.durable >= seq {
            return Ok(());
        }
        let (buf, upto) = {
            let mut pending = self.pending.lock();
            (std::mem::take(&mut pending.buf), pending.appended)
        };
        let result = state
            .file
            .write_all(&buf)
            .and_then(|()| state.file.sync_data());
        match result {
            Ok(()) => {
                state.durable = upto;
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "writing the offset log failed");
                state.failed = true;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(offset: i64) -> Record {
        Record::Commit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: Some("m".into()),
            timestamp_ms: 1,
        }
    }

    #[test]
    fn line_round_trip_and_crc_check() {
        let line = encode_line(&commit(7));
        assert_eq!(decode_line(&line[..line.len() - 1]), Some(commit(7)));
        let mut bad = line.clone();
        let n = bad.len() - 3;
        bad[n] ^= 1;
        assert_eq!(decode_line(&bad[..bad.len() - 1]), None);
    }

    #[test]
    fn compaction_threshold_resets_after_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let (store, records) = OffsetStore::open(dir.path()).unwrap();
        assert!(records.is_empty());
        let batch: Vec<Record> = (0..100).map(commit).collect();
        for _ in 0..=COMPACT_MIN_RECORDS / 100 {
            store.append(&batch);
        }
        assert!(store.needs_compaction(1));
        assert!(!store.needs_compaction(COMPACT_MIN_RECORDS * 10));
        store.rewrite(&[commit(99)]).unwrap();
        assert!(!store.needs_compaction(1));
        let (_, records) = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(records, vec![commit(99)]);
    }

    #[test]
    fn torn_and_corrupt_lines_are_skipped() {
        let mut data = encode_line(&commit(1));
        data.extend_from_slice(b"garbage\n");
        data.extend_from_slice(&encode_line(&commit(2)));
        let torn = encode_line(&commit(3));
        data.extend_from_slice(&torn[..torn.len() / 2]);
        let records = parse_log(Path::new("x"), &data);
        assert_eq!(records, vec![commit(1), commit(2)]);
    }
}
