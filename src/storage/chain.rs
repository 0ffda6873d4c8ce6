//! The tamper-evidence chain: `digest_n = SHA-256(digest_{n-1} || batch_n as stored)`.
//!
//! One `.chain` file per segment: a header (magic, the digest that precedes the segment's
//! first batch) and one entry per batch (base offset i64, stored length u32, digest). The
//! header lets retention delete old segments while the remaining ones stay verifiable.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::file_cache::{CachedFile, FileCache};

pub type Digest = [u8; 32];

/// The digest the first batch of a partition chains from.
pub const GENESIS: Digest = [0u8; 32];
const MAGIC: &[u8; 8] = b"PLSCHN01";
pub const HEADER_LEN: u64 = 40;
pub const ENTRY_LEN: u64 = 44;

pub fn next_digest(prev: &Digest, batch: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(batch);
    hasher.finalize().into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainEntry {
    pub base_offset: i64,
    pub length: u32,
    pub digest: Digest,
}

impl ChainEntry {
    fn encode(&self) -> [u8; ENTRY_LEN as usize] {
        let mut out = [0u8; ENTRY_LEN as usize];
        let (offset, rest) = out.split_at_mut(8);
        offset.copy_from_slice(&self.base_offset.to_be_bytes());
        let (length, digest) = rest.split_at_mut(4);
        length.copy_from_slice(&self.length.to_be_bytes());
        digest.copy_from_slice(&self.digest);
        out
    }

    fn decode(buf: &[u8]) -> Option<Self> {
        Some(Self {
            base_offset: i64::from_be_bytes(buf.get(0..8)?.try_into().ok()?),
            length: u32::from_be_bytes(buf.get(8..12)?.try_into().ok()?),
            digest: buf.get(12..44)?.try_into().ok()?,
        })
    }
}

/// A chain file as read back from disk.
#[derive(Debug, Clone)]
pub struct ChainContents {
    pub prev: Digest,
    /// Whole entries; a torn partial entry at the end is ignored.
    pub entries: Vec<ChainEntry>,
}

impl ChainContents {
    pub fn last_digest(&self) -> Digest {
        self.entries.last().map_or(self.prev, |e| e.digest)
    }
}

/// Reads a chain file; `Ok(None)` when the header is missing or wrong.
pub fn read_chain(path: &Path) -> std::io::Result<Option<ChainContents>> {
    let bytes = std::fs::read(path)?;
    let header_len = HEADER_LEN as usize;
    if bytes.get(0..8) != Some(MAGIC.as_slice()) {
        return Ok(None);
    }
    let Some(prev) = bytes
        .get(8..header_len)
        .and_then(|b| Digest::try_from(b).ok())
    else {
        return Ok(None);
    };
    let body = bytes.get(header_len..).unwrap_or_default();
    let entries = body
        .chunks_exact(ENTRY_LEN as usize)
        .filter_map(ChainEntry::decode)
        .collect();
    Ok(Some(ChainContents { prev, entries }))
}

/// The writable chain file of a segment.
pub struct ChainFile {
    file: CachedFile,
    entries: AtomicU64,
}

impl ChainFile {
    pub fn create(path: &Path, prev: &Digest, files: &Arc<FileCache>) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(prev);
        file.write_all_at(&header, 0)?;
        Ok(Self {
            file: files.adopt(path.to_path_buf(), file),
            entries: AtomicU64::new(0),
        })
    }

    /// Opens an existing chain keeping its first `entries` entries (the rest is cut off).
    pub fn open_truncated(
        path: &Path,
        entries: u64,
        files: &Arc<FileCache>,
    ) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = HEADER_LEN + entries * ENTRY_LEN;
        if file.metadata()?.len() != len {
            file.set_len(len)?;
            file.sync_data()?;
        }
        Ok(Self {
            file: files.adopt(path.to_path_buf(), file),
            entries: AtomicU64::new(entries),
        })
    }

    /// Appends an entry; only the partition's single writer calls this.
    pub fn append(&self, entry: &ChainEntry) -> std::io::Result<()> {
        let n = self.entries.load(Ordering::Acquire);
        self.file
            .with(|f| f.write_all_at(&entry.encode(), HEADER_LEN + n * ENTRY_LEN))?;
        self.entries.store(n + 1, Ordering::Release);
        Ok(())
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

impl ChainFile {
    /// Opens a sealed segment's chain as it is (it is only synced, never appended to).
    pub fn open_existing(path: &Path, files: &Arc<FileCache>) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let entries = len.saturating_sub(HEADER_LEN) / ENTRY_LEN;
        Ok(Self {
            file: files.adopt(path.to_path_buf(), file),
            entries: AtomicU64::new(entries),
        })
    }
}
