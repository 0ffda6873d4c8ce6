//! The file sink: append-only JSON Lines in `<dir>/audit-<N>.jsonl`, N = 00000001, 00000002 ...
//!
//! A new file starts once the current one would grow past `rotate_bytes`; the hash chain
//! simply continues into it (its first line's `prev` is the hash of the previous file's last
//! line), so `palisade audit verify <dir>` checks the files in name order as one trail.
//! Old files are never rewritten or removed by the broker (archiving them is the operator's
//! business). Files are created with mode 0600.
//!
//! **fsync policy**: with `fsync = true` the writer fsyncs once per drained batch, after
//! writing every line of it (a batch is whatever queued up while the previous one was being
//! written, so under load many events share one fsync). `record()` never waits for it: an
//! event is durable within one writer round, not when `record()` returns. With
//! `fsync = false` durability is left to the page cache (lost on power failure).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::chain::{head_after, ChainHead};
use super::AuditError;

const PREFIX: &str = "audit-";
const SUFFIX: &str = ".jsonl";
/// How much of a file's tail is read to find its last line on restart.
const TAIL_BYTES: u64 = 1 << 20;

/// The file name of audit file number `n`.
pub fn file_name(n: u64) -> String {
    format!("{PREFIX}{n:08}{SUFFIX}")
}

/// The number of an audit file name, if it is one.
pub fn file_number(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

/// The audit files of `dir`, in rotation order.
pub fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, AuditError> {
    let io = |source| AuditError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if let Some(n) = entry.file_name().to_str().and_then(file_number) {
            files.push((n, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// The current audit file, open for appending.
pub struct FileSink {
    dir: PathBuf,
    rotate_bytes: u64,
    fsync: bool,
    number: u64,
    path: PathBuf,
    file: File,
    size: u64,
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })
}

impl FileSink {
    /// Opens the newest file of `dir` (creating `dir` and the first file as needed) and
    /// returns where its chain stands.
    pub fn open(
        dir: &Path,
        rotate_bytes: u64,
        fsync: bool,
    ) -> Result<(Self, ChainHead), AuditError> {
        std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let files = list_files(dir)?;
        let (number, path) = files
            .last()
            .cloned()
            .unwrap_or_else(|| (1, dir.join(file_name(1))));
        let head = match files.last() {
            Some((_, p)) => last_head(p)?,
            None => None,
        };
        // An empty newest file (rotated, nothing written yet): the head is in the one before.
        let head = match (head, files.len()) {
            (Some(h), _) => h,
            (None, n) if n >= 2 => match files.get(n - 2) {
                Some((_, p)) => last_head(p)?.unwrap_or_else(ChainHead::genesis),
                None => ChainHead::genesis(),
            },
            _ => ChainHead::genesis(),
        };
        let file = open_append(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok((
            FileSink {
                dir: dir.to_path_buf(),
                rotate_bytes: rotate_bytes.max(1),
                fsync,
                number,
                path,
                file,
                size,
            },
            head,
        ))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `lines` (rotating as needed), then fsyncs once if configured.
    pub fn write(&mut self, lines: &[String]) -> Result<(), AuditError> {
        let mut buf = Vec::new();
        for line in lines {
            let len = line.len() as u64 + 1;
            if self.size > 0 && self.size + buf.len() as u64 + len > self.rotate_bytes {
                self.file.write_all(&buf).map_err(|e| self.io(e))?;
                buf.clear();
                self.rotate()?;
            }
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        self.file.write_all(&buf).map_err(|e| self.io(e))?;
        self.size += buf.len() as u64;
        if self.fsync {
            self.file.sync_data().map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        self.file.sync_all().map_err(|e| self.io(e))?;
        self.number += 1;
        self.path = self.dir.join(file_name(self.number));
        self.file = open_append(&self.path)?;
        self.size = 0;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        tracing::info!(file = %self.path.display(), "audit trail rotated to a new file");
        Ok(())
    }

    /// Flushes to stable storage (on shutdown).
    pub fn sync(&mut self) -> Result<(), AuditError> {
        self.file.sync_all().map_err(|e| self.io(e))
    }
}

/// The chain head after the last complete line of `path`. A torn last line (a crash during
/// the write) was never a complete event: it is cut off, with a warning.
fn last_head(path: &Path) -> Result<Option<ChainHead>, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(io)?;
    let complete = match tail.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    if complete < tail.len() {
        let keep = start + complete as u64;
        tracing::warn!(
            file = %path.display(),
            torn_bytes = len - keep,
            "audit file ends with a torn line (crash during a write); cutting it off"
        );
        file.set_len(keep).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    let text = String::from_utf8_lossy(tail.get(..complete).unwrap_or_default());
    Ok(text.lines().last().and_then(head_after))
}
