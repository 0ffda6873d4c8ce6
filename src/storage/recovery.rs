//! Opening a segment from disk after a clean or unclean shutdown.
//!
//! Every segment's batches are walked once (headers only; the active segment also checks
//! each batch's CRC-32C and its chain entry). The walk rebuilds what the sparse indexes
//! should contain; an index file that differs (missing, torn, inconsistent) is rewritten.
//! The active segment is truncated at the first batch that is torn, fails its CRC, breaks
//! offset continuity or is not covered by the chain: a batch is only acknowledged after its
//! chain entry is written, and re-chaining unknown bytes would launder tampering.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use super::batch::StoredHeader;
use super::chain::{self, ChainContents, ChainFile, Digest};
use super::file_cache::FileCache;
use super::fsutil::{io_err, segment_file};
use super::index::{OffsetEntry, OffsetIndex, INDEX_INTERVAL_BYTES};
use super::scan::{BatchScanner, Scan};
use super::segment::{Segment, SegmentParts};
use super::time_index::{TimeEntry, TimeIndex};
use super::StorageError;

pub struct Recovered {
    pub segment: Segment,
    /// Digest of the last batch of the segment (its chain header when empty).
    pub last_digest: Digest,
    /// Log bytes written since the last index entry, so appends continue the same rule.
    pub bytes_since_index: u64,
    /// Max timestamp of the first batch, the base for `segment.ms` rolling.
    pub first_timestamp: Option<i64>,
}

/// Index entries as the append path would have produced them for the batches walked.
struct IndexBuilder {
    base_offset: i64,
    bytes_since_index: u64,
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    max_timestamp: (i64, i64),
}

impl IndexBuilder {
    fn rel(&self, offset: i64) -> u32 {
        u32::try_from(offset.saturating_sub(self.base_offset).max(0)).unwrap_or(u32::MAX)
    }

    fn push_time(&mut self, (ts, offset): (i64, i64)) {
        if ts >= 0 && self.times.last().is_none_or(|last| ts > last.0) {
            let rel = self.rel(offset);
            self.times.push(TimeEntry(ts, rel));
        }
    }

    fn add(&mut self, pos: u64, header: &StoredHeader) {
        if self.bytes_since_index >= INDEX_INTERVAL_BYTES {
            self.push_time(self.max_timestamp);
            let rel = self.rel(header.frame.base_offset);
            self.offsets
                .push(OffsetEntry(rel, u32::try_from(pos).unwrap_or(u32::MAX)));
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.frame.size as u64;
        if header.max_timestamp > self.max_timestamp.0 {
            self.max_timestamp = (header.max_timestamp, header.frame.last_offset);
        }
    }
}

fn last_chain_digest(dir: &Path, base: i64) -> Option<Digest> {
    chain::read_chain(&segment_file(dir, base, "chain"))
        .ok()
        .flatten()
        .map(|c| c.last_digest())
}

/// Opens segment `base` of `dir`. `prev_base` is the segment before it (used only when an
/// empty active segment lost its chain file). `on_batch` sees every valid batch header.
pub fn open_segment(
    dir: &Path,
    base: i64,
    prev_base: Option<i64>,
    active: bool,
    files: &Arc<FileCache>,
    on_batch: &mut dyn FnMut(&StoredHeader),
) -> Result<Recovered, StorageError> {
    let log_path = segment_file(dir, base, "log");
    let chain_path = segment_file(dir, base, "chain");
    let log = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log_path)
        .map_err(io_err(&log_path))?;
    let file_len = log.metadata().map_err(io_err(&log_path))?.len();

    let chain_contents: Option<ChainContents> = if active {
        match chain::read_chain(&chain_path) {
            Ok(Some(contents)) => Some(contents),
            Ok(None) | Err(_) if file_len == 0 => {
                let prev = prev_base
                    .and_then(|p| last_chain_digest(dir, p))
                    .unwrap_or(chain::GENESIS);
                drop(ChainFile::create(&chain_path, &prev, files).map_err(io_err(&chain_path))?);
                Some(ChainContents {
                    prev,
                    entries: Vec::new(),
                })
            }
            _ => {
                return Err(StorageError::Corrupt {
                    path: chain_path,
                    reason: "chain file missing or unreadable for a non-empty segment".into(),
                })
            }
        }
    } else {
        None
    };

    let mut builder = IndexBuilder {
        base_offset: base,
        bytes_since_index: 0,
        offsets: Vec::new(),
        times: Vec::new(),
        max_timestamp: (-1, -1),
    };
    let mut scanner = BatchScanner::new(&log, 0, file_len);
    let mut valid_len = 0u64;
    let mut next_offset = base;
    let mut count = 0usize;
    let mut first_timestamp = None;
    let mut stop_reason = None;
    loop {
        match scanner.next_batch(active).map_err(io_err(&log_path))? {
            Scan::End => break,
            Scan::Invalid { pos } => {
                stop_reason = Some(format!("torn or invalid batch at position {pos}"));
                break;
            }
            Scan::Batch { pos, header, body } => {
                let frame = header.frame;
                if frame.base_offset != next_offset {
                    stop_reason = Some(format!(
                        "offset {} where {next_offset} was expected",
                        frame.base_offset
                    ));
                    break;
                }
                if let Some(contents) = &chain_contents {
                    if !body.is_some_and(super::batch::crc_ok) {
                        stop_reason = Some(format!("crc mismatch at offset {}", frame.base_offset));
                        break;
                    }
                    let covered = contents.entries.get(count).is_some_and(|e| {
                        e.base_offset == frame.base_offset && e.length as usize == frame.size
                    });
                    if !covered {
                        stop_reason = Some(format!(
                            "batch at offset {} not in the chain",
                            frame.base_offset
                        ));
                        break;
                    }
                }
                builder.add(pos, &header);
                on_batch(&header);
                first_timestamp.get_or_insert(header.max_timestamp);
                next_offset = frame.last_offset.saturating_add(1);
                valid_len = pos + frame.size as u64;
                count += 1;
            }
        }
    }
    drop(scanner);

    let chain = match &chain_contents {
        Some(_) => ChainFile::open_truncated(&chain_path, count as u64, files)
            .map_err(io_err(&chain_path))?,
        None => ChainFile::open_existing(&chain_path, files).map_err(io_err(&chain_path))?,
    };
    if let Some(reason) = &stop_reason {
        if active && valid_len < file_len {
            tracing::warn!(path = %log_path.display(), %reason, valid_len, file_len, "truncating log tail");
            log.set_len(valid_len).map_err(io_err(&log_path))?;
            log.sync_data().map_err(io_err(&log_path))?;
        } else if !active {
            tracing::warn!(path = %log_path.display(), %reason, "sealed segment is damaged; reads stop there");
        }
    }
    if !active {
        builder.push_time(builder.max_timestamp);
    }

    let index_path = segment_file(dir, base, "index");
    let rewrite_index = OffsetIndex::load(&index_path).as_ref() != Some(&builder.offsets);
    let time_path = segment_file(dir, base, "timeindex");
    let rewrite_time = TimeIndex::load(&time_path).as_ref() != Some(&builder.times);
    if rewrite_index || rewrite_time {
        tracing::info!(dir = %dir.display(), base, "rebuilt segment indexes");
    }
    let index = OffsetIndex::open(&index_path, builder.offsets, rewrite_index, files)
        .map_err(io_err(&index_path))?;
    let time_index = TimeIndex::open(&time_path, builder.times, rewrite_time, files)
        .map_err(io_err(&time_path))?;

    let last_digest = chain_contents
        .as_ref()
        .map(|c| {
            c.entries
                .get(..count)
                .and_then(|e| e.last())
                .map_or(c.prev, |e| e.digest)
        })
        .unwrap_or(chain::GENESIS);
    let segment = Segment::from_parts(
        base,
        SegmentParts {
            log: files.adopt(log_path, log),
            index,
            time_index,
            chain,
            size: valid_len,
            next_offset,
            max_timestamp: builder.max_timestamp,
            sealed: !active,
        },
    );
    Ok(Recovered {
        segment,
        last_digest,
        bytes_since_index: builder.bytes_since_index,
        first_timestamp,
    })
}
