//! One log segment: the `.log` file plus its offset index, time index and chain file.
//!
//! A segment is shared (`Arc`) between the single writer of its partition and any number of
//! readers. Readers only look at bytes below `size`, which the writer publishes after the
//! batch, its index entries and its chain entry are written, so no lock is held during I/O.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::batch::{first_record_at_or_after, BatchFrame, PEEK_LEN};
use super::chain::{ChainEntry, ChainFile};
use super::file_cache::{CachedFile, FileCache};
use super::fsutil::segment_file;
use super::index::{OffsetEntry, OffsetIndex, INDEX_INTERVAL_BYTES};
use super::scan::{BatchScanner, Scan};
use super::time_index::{TimeEntry, TimeIndex};

/// Extra bytes read beyond `max_bytes` so that skipping from the indexed position to the
/// requested batch rarely needs a second read.
const SKIP_SLACK: u64 = 2 * INDEX_INTERVAL_BYTES + 1024;

pub struct Segment {
    pub base_offset: i64,
    log: CachedFile,
    index: OffsetIndex,
    time_index: TimeIndex,
    chain: ChainFile,
    /// Bytes of whole batches visible to readers.
    size: AtomicU64,
    /// Offset after the last batch (== base_offset when empty).
    next_offset: AtomicI64,
    /// (largest batch max timestamp, last offset of that batch); timestamp -1 = none.
    max_timestamp: Mutex<(i64, i64)>,
    /// Set when the segment stops being active: the next flush also syncs its indexes.
    sealed: AtomicBool,
    indexes_synced: AtomicBool,
}

/// What recovery learnt about a segment's contents.
pub struct SegmentParts {
    pub log: CachedFile,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    pub chain: ChainFile,
    pub size: u64,
    pub next_offset: i64,
    pub max_timestamp: (i64, i64),
    pub sealed: bool,
}

impl Segment {
    /// Creates the files of a new, empty segment. The chain is created first so that a
    /// `.log` without a `.chain` always means damage, never a crash during creation.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        prev: &super::chain::Digest,
        files: &Arc<FileCache>,
    ) -> std::io::Result<Self> {
        let chain = ChainFile::create(&segment_file(dir, base_offset, "chain"), prev, files)?;
        let index = OffsetIndex::open(
            &segment_file(dir, base_offset, "index"),
            Vec::new(),
            true,
            files,
        )?;
        let time_index = TimeIndex::open(
            &segment_file(dir, base_offset, "timeindex"),
            Vec::new(),
            true,
            files,
        )?;
        let log_path = segment_file(dir, base_offset, "log");
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        Ok(Self::from_parts(
            base_offset,
            SegmentParts {
                log: files.adopt(log_path, log),
                index,
                time_index,
                chain,
                size: 0,
                next_offset: base_offset,
                max_timestamp: (-1, -1),
                sealed: false,
            },
        ))
    }

    pub fn from_parts(base_offset: i64, parts: SegmentParts) -> Self {
        Self {
            base_offset,
            log: parts.log,
            index: parts.index,
            time_index: parts.time_index,
            chain: parts.chain,
            size: AtomicU64::new(parts.size),
            next_offset: AtomicI64::new(parts.next_offset),
            max_timestamp: Mutex::new(parts.max_timestamp),
            sealed: AtomicBool::new(parts.sealed),
            indexes_synced: AtomicBool::new(parts.sealed),
        }
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// (max timestamp, offset) of the segment, `None` if it holds no timestamped batch.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let (ts, offset) = *self.max_timestamp.lock();
        (ts >= 0).then_some((ts, offset))
    }

    /// Modification time of the log, for time retention of segments without timestamps.
    pub fn modified_ms(&self) -> Option<i64> {
        let modified = std::fs::metadata(self.log.path()).ok()?.modified().ok()?;
        let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(since.as_millis()).ok()
    }

    pub fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset.saturating_sub(self.base_offset).max(0)).unwrap_or(u32::MAX)
    }

    /// Writes one batch (the partition's writer lock is held by the caller). `index_here`
    /// adds a sparse index entry for this batch, preceded by a time index entry for the
    /// largest timestamp seen so far, the same rule recovery uses to rebuild both.
    pub fn append(
        &self,
        bytes: &[u8],
        frame: BatchFrame,
        max_timestamp: i64,
        index_here: bool,
        digest: super::chain::Digest,
    ) -> std::io::Result<()> {
        let pos = self.size();
        let pos32 = u32::try_from(pos)
            .map_err(|_| std::io::Error::other("segment position exceeds u32"))?;
        if index_here {
            if let Some((ts, offset)) = self.max_timestamp() {
                self.time_index
                    .append(TimeEntry(ts, self.relative(offset)))?;
            }
            self.index
                .append(OffsetEntry(self.relative(frame.base_offset), pos32))?;
        }
        self.log.with(|f| f.write_all_at(bytes, pos))?;
        let length =
            u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("batch exceeds u32"))?;
        self.chain.append(&ChainEntry {
            base_offset: frame.base_offset,
            length,
            digest,
        })?;
        {
            let mut max = self.max_timestamp.lock();
            if max_timestamp > max.0 {
                *max = (max_timestamp, frame.last_offset);
            }
        }
        self.next_offset
            .store(frame.last_offset.saturating_add(1), Ordering::Release);
        self.size.store(pos + bytes.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Marks the segment inactive: records its final max timestamp in the time index so the
    /// last entry bounds the whole segment, and asks the next flush to sync the indexes.
    pub fn seal(&self) -> std::io::Result<()> {
        if let Some((ts, offset)) = self.max_timestamp() {
            self.time_index
                .append(TimeEntry(ts, self.relative(offset)))?;
        }
        self.sealed.store(true, Ordering::Release);
        Ok(())
    }

    /// Makes everything written so far durable; returns the number of fsyncs issued.
    pub fn sync(&self) -> std::io::Result<u64> {
        // Log and chain must both be durable before an ack (recovery trims the log to the
        // chain). Each fsync costs a device flush (~3 ms here), so run them side by side.
        let (log, chain) = std::thread::scope(|s| {
            let chain = s.spawn(|| self.chain.sync());
            let log = self.log.sync_data();
            (log, chain.join())
        });
        log?;
        chain.map_err(|_| std::io::Error::other("chain fsync thread panicked"))??;
        let mut syncs = 2;
        if self.sealed.load(Ordering::Acquire) && !self.indexes_synced.swap(true, Ordering::AcqRel)
        {
            self.index.sync()?;
            self.time_index.sync()?;
            syncs += 2;
        }
        Ok(syncs)
    }

    /// Also syncs indexes of the active segment (clean shutdown).
    pub fn sync_all(&self) -> std::io::Result<()> {
        self.sync()?;
        self.index.sync()?;
        self.time_index.sync()
    }

    /// Whole batches starting with the one containing `offset`, about `max_bytes` (at least
    /// one batch). `None` when the segment holds nothing at or after `offset`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> std::io::Result<Option<Bytes>> {
        let end = self.size();
        let mut start = u64::from(self.index.lookup(self.relative(offset)));
        loop {
            if start >= end {
                return Ok(None);
            }
            let avail = end - start;
            let want = (max_bytes as u64).saturating_add(SKIP_SLACK).min(avail);
            let want = usize::try_from(want).map_err(std::io::Error::other)?;
            let mut buf = vec![0u8; want];
            self.log.with(|f| f.read_exact_at(&mut buf, start))?;
            let mut off = 0usize;
            let mut first = None;
            while let Some(frame) = buf.get(off..).and_then(BatchFrame::peek) {
                if frame.last_offset >= offset {
                    first = Some(frame);
                    break;
                }
                off = off.saturating_add(frame.size);
            }
            let Some(frame) = first else {
                if off as u64 >= avail {
                    return Ok(None);
                }
                if off == 0 || buf.len().saturating_sub(off) >= PEEK_LEN {
                    return Err(corrupt(self.log.path(), start + off as u64));
                }
                start += off as u64;
                continue;
            };
            let first_end = off.saturating_add(frame.size);
            if first_end > buf.len() {
                let at = start + off as u64;
                if at.saturating_add(frame.size as u64) > end {
                    return Err(corrupt(self.log.path(), at));
                }
                let mut whole = vec![0u8; frame.size];
                self.log.with(|f| f.read_exact_at(&mut whole, at))?;
                return Ok(Some(Bytes::from(whole)));
            }
            let mut stop = first_end;
            while let Some(next) = buf.get(stop..).and_then(BatchFrame::peek) {
                let next_end = stop.saturating_add(next.size);
                if next_end > buf.len() || next_end - off > max_bytes {
                    break;
                }
                stop = next_end;
            }
            return Ok(Some(Bytes::from(buf).slice(off..stop)));
        }
    }

    /// The first record (batch, when records cannot be read cheaply) with a timestamp >=
    /// `target` at or after `min_offset`, as (offset, timestamp).
    pub fn find_timestamp(
        &self,
        target: i64,
        min_offset: i64,
    ) -> std::io::Result<Option<(i64, i64)>> {
        let from_rel = self.time_index.lookup_before(target).unwrap_or(0);
        let start = u64::from(self.index.lookup(from_rel));
        let end = self.size();
        self.log.with(|log| {
            let mut scanner = BatchScanner::new(log, start, end);
            loop {
                match scanner.next_batch(true)? {
                    Scan::Batch { header, body, .. } => {
                        if header.max_timestamp >= target && header.frame.last_offset >= min_offset
                        {
                            let record =
                                body.and_then(|b| first_record_at_or_after(b, target, min_offset));
                            let batch_level = (
                                header.frame.base_offset.max(min_offset),
                                header.max_timestamp,
                            );
                            return Ok(Some(record.unwrap_or(batch_level)));
                        }
                    }
                    Scan::End | Scan::Invalid { .. } => return Ok(None),
                }
            }
        })
    }

    /// Removes the segment's files; open handles (readers) keep working until dropped.
    pub fn delete_files(&self, dir: &Path) {
        for ext in ["log", "index", "timeindex", "chain"] {
            let path = segment_file(dir, self.base_offset, ext);
            if let Err(err) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %err, "could not delete segment file");
            }
        }
    }
}

fn corrupt(path: &Path, pos: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("no valid batch at position {pos} of `{}`", path.display()),
    )
}
