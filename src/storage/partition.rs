//! One partition's log: the ordered segments, the single writer, the read path.
//!
//! Appends serialize on `writer` (offset assignment, producer checks, chain, file writes
//! into the page cache). Readers never take it: they clone the `Arc` segment list under a
//! brief read lock and read files with positioned reads below the published sizes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::batch::{self, BatchFrame};
use super::chain::{self, Digest};
use super::file_cache::FileCache;
use super::flusher::{DirHealth, Flusher, FsyncWait};
use super::fsutil::{atomic_write, io_err, list_segments, now_ms, remove_leftovers};
use super::high_watermark::HighWatermark;
use super::index::INDEX_INTERVAL_BYTES;
use super::producer_state::{ProducerStates, SeqCheck};
use super::recovery::open_segment;
use super::segment::Segment;
use super::{AppendBatch, AppendInfo, Durability, FlushPolicy, StorageError, TopicConfig};

/// A batch already written, waiting (or not) for the fsync its durability requires.
pub struct PendingAppend {
    info: AppendInfo,
    wait: Option<FsyncWait>,
    health: Arc<DirHealth>,
}

impl PendingAppend {
    /// Completes once the batch is durable per the flush policy; a failed fsync is an error,
    /// never an acknowledgement.
    pub async fn durable(self) -> Result<AppendInfo, StorageError> {
        if let Some(rx) = self.wait {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Err(self.health.error(&reason)),
                Err(_) => return Err(self.health.error("flusher stopped")),
            }
        }
        Ok(self.info)
    }
}

const LOG_START_CHECKPOINT: &str = "log-start-offset";

pub(super) struct Writer {
    pub(super) active: Arc<Segment>,
    next_offset: i64,
    last_digest: Digest,
    bytes_since_index: u64,
    roll_base_ms: i64,
    producers: ProducerStates,
}

pub struct Partition {
    topic: String,
    index: i32,
    pub(super) dir: PathBuf,
    pub(super) config: Arc<RwLock<TopicConfig>>,
    health: Arc<DirHealth>,
    pub(super) flusher: Arc<Flusher>,
    files: Arc<FileCache>,
    policy: FlushPolicy,
    pub(super) writer: Mutex<Writer>,
    pub(super) segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// Under group commit it trails the writer's next offset until the flusher has synced
    /// the batches below it; under the page-cache policy it moves at the write.
    high_watermark: Arc<HighWatermark>,
    pub(super) log_start: AtomicI64,
    closed: AtomicBool,
}

/// Everything a partition shares with its log directory.
#[derive(Clone)]
pub(super) struct DirContext {
    pub health: Arc<DirHealth>,
    pub flusher: Arc<Flusher>,
    pub policy: FlushPolicy,
    /// Descriptors of every segment file of the directory.
    pub files: Arc<FileCache>,
}

impl Partition {
    /// Opens (creating if needed) `<data>/<topic>-<index>` and recovers it.
    pub(super) fn open(
        data_dir: &Path,
        topic: &str,
        index: i32,
        config: Arc<RwLock<TopicConfig>>,
        ctx: &DirContext,
    ) -> Result<Arc<Self>, StorageError> {
        let dir = data_dir.join(format!("{topic}-{index}"));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        remove_leftovers(&dir.join(LOG_START_CHECKPOINT))?;
        let mut bases = list_segments(&dir).map_err(io_err(&dir))?;
        if bases.is_empty() {
            drop(Segment::create(&dir, 0, &chain::GENESIS, &ctx.files).map_err(io_err(&dir))?);
            ctx.flusher.mark_dir_dirty(&dir);
            bases.push(0);
        }
        let mut producers = ProducerStates::default();
        let mut segments = Vec::with_capacity(bases.len());
        let mut prev = None;
        let mut active = None;
        for (i, &base) in bases.iter().enumerate() {
            let is_active = i + 1 == bases.len();
            let recovered = open_segment(&dir, base, prev, is_active, &ctx.files, &mut |h| {
                producers.record(
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.record_count,
                    h.frame.base_offset,
                );
            })?;
            let segment = Arc::new(recovered.segment);
            segments.push(Arc::clone(&segment));
            if is_active {
                active = Some((
                    segment,
                    recovered.last_digest,
                    recovered.bytes_since_index,
                    recovered.first_timestamp,
                ));
            }
            prev = Some(base);
        }
        let Some((active, last_digest, bytes_since_index, first_ts)) = active else {
            return Err(StorageError::Corrupt {
                path: dir,
                reason: "no segments".into(),
            });
        };
        let next_offset = active.next_offset();
        let first_base = segments.first().map_or(0, |s| s.base_offset);
        let log_start = read_log_start(&dir)?
            .unwrap_or(0)
            .max(first_base)
            .min(next_offset);
        let now = now_ms();
        Ok(Arc::new(Self {
            topic: topic.to_string(),
            index,
            dir,
            config,
            health: Arc::clone(&ctx.health),
            flusher: Arc::clone(&ctx.flusher),
            files: Arc::clone(&ctx.files),
            policy: ctx.policy,
            writer: Mutex::new(Writer {
                active,
                next_offset,
                last_digest,
                bytes_since_index,
                roll_base_ms: first_ts.filter(|&ts| ts >= 0 && ts <= now).unwrap_or(now),
                producers,
            }),
            segments: RwLock::new(Arc::new(segments)),
            high_watermark: Arc::new(HighWatermark::new(next_offset)),
            log_start: AtomicI64::new(log_start),
            closed: AtomicBool::new(false),
        }))
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    /// `<topic>-<index>`, the directory name and the name `verify` reports.
    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.index)
    }

    /// Refuses every later operation; taking the writer lock waits for an append in flight,
    /// so none writes after this returns (the topic's files are about to be removed).
    pub(super) fn close(&self) {
        let _writer = self.writer.lock();
        self.closed.store(true, Ordering::Release);
    }

    pub(super) fn check_usable(&self) -> Result<(), StorageError> {
        self.health.check()?;
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::UnknownTopic(self.topic.clone()));
        }
        Ok(())
    }

    pub(super) fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        Arc::clone(&self.segments.read())
    }

    pub async fn append(
        &self,
        batch: AppendBatch,
        durability: Durability,
    ) -> Result<AppendInfo, StorageError> {
        self.append_now(batch, durability)?.durable().await
    }

    /// The append split in two: the batch is written (and gets its offset) now, in call
    /// order; the returned [`PendingAppend`] completes once it is as durable as asked. A
    /// connection can thus read its next request while an acks=all batch waits for the group
    /// commit, without ever reordering appends.
    pub fn append_now(
        &self,
        batch: AppendBatch,
        durability: Durability,
    ) -> Result<PendingAppend, StorageError> {
        let (info, wait) = self.append_inline(batch, durability)?;
        Ok(PendingAppend {
            info,
            wait,
            health: Arc::clone(&self.health),
        })
    }

    /// The synchronous part of an append; returns the fsync to wait for, if any.
    fn append_inline(
        &self,
        batch: AppendBatch,
        durability: Durability,
    ) -> Result<(AppendInfo, Option<FsyncWait>), StorageError> {
        self.check_usable()?;
        let AppendBatch {
            mut bytes,
            producer,
            max_timestamp,
            ..
        } = batch;
        let (segment_bytes, segment_ms, max_message_bytes, log_append_time) = {
            let cfg = self.config.read();
            (
                cfg.segment_bytes,
                cfg.segment_ms,
                cfg.max_message_bytes,
                cfg.message_timestamp_type == "LogAppendTime",
            )
        };
        if usize::try_from(max_message_bytes).is_ok_and(|max| bytes.len() > max) {
            return Err(StorageError::BatchTooLarge(bytes.len(), max_message_bytes));
        }
        let frame = BatchFrame::peek(&bytes)
            .filter(|f| f.size == bytes.len())
            .ok_or_else(|| StorageError::Corrupt {
                path: self.dir.clone(),
                reason: "malformed batch framing".into(),
            })?;

        let mut w = self.writer.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::UnknownTopic(self.topic.clone()));
        }
        if let SeqCheck::Duplicate(base_offset) = w.producers.check(&producer)? {
            let info = AppendInfo {
                base_offset,
                log_append_time: -1,
                log_start_offset: self.log_start_offset(),
                duplicate: true,
            };
            // The original may still await its fsync; a round that starts after this
            // registration covers every earlier write of the directory.
            let active = Arc::clone(&w.active);
            drop(w);
            let wait = match (durability, self.policy) {
                (Durability::Durable, FlushPolicy::GroupCommit) => {
                    Some(self.flusher.sync_segment(&active)?)
                }
                _ => None,
            };
            return Ok((info, wait));
        }
        let now = now_ms();
        self.maybe_roll(&mut w, now, bytes.len() as u64, segment_bytes, segment_ms)?;

        let base_offset = w.next_offset;
        let last_offset = base_offset.saturating_add(frame.last_offset - frame.base_offset);
        batch::set_base_offset(&mut bytes, base_offset);
        let (stored_max_ts, append_time) = if log_append_time {
            batch::set_log_append_time(&mut bytes, now);
            (now, now)
        } else {
            (max_timestamp, -1)
        };
        let frame = BatchFrame {
            base_offset,
            size: frame.size,
            last_offset,
        };
        let digest = chain::next_digest(&w.last_digest, &bytes);
        let index_here = w.bytes_since_index >= INDEX_INTERVAL_BYTES;
        if let Err(err) = w
            .active
            .append(&bytes, frame, stored_max_ts, index_here, digest)
        {
            let path = w.active.log_path().display().to_string();
            return Err(self.health.fail(format!("write to `{path}` failed: {err}")));
        }
        if index_here {
            w.bytes_since_index = 0;
        }
        w.bytes_since_index += bytes.len() as u64;
        w.last_digest = digest;
        w.next_offset = last_offset.saturating_add(1);
        w.producers.record(
            producer.producer_id,
            producer.producer_epoch,
            producer.base_sequence,
            producer.record_count,
            base_offset,
        );
        let active = Arc::clone(&w.active);
        let next_offset = w.next_offset;
        drop(w);

        let wait = match self.policy {
            // Visible only once durable, whatever the producer's acks: a consumer must never
            // read a batch that a failed fsync or a crash can still take back.
            FlushPolicy::GroupCommit => {
                let high_watermark = Arc::clone(&self.high_watermark);
                self.flusher.sync_and_publish(
                    &active,
                    Box::new(move || high_watermark.advance(next_offset)),
                    durability == Durability::Durable,
                )?
            }
            FlushPolicy::PageCache => {
                self.high_watermark.advance(next_offset);
                self.flusher.mark_dirty(&active)?;
                None
            }
        };
        let info = AppendInfo {
            base_offset,
            log_append_time: append_time,
            log_start_offset: self.log_start_offset(),
            duplicate: false,
        };
        Ok((info, wait))
    }

    /// Starts a new segment when the active one is full or old; never rolls an empty one.
    fn maybe_roll(
        &self,
        w: &mut Writer,
        now: i64,
        incoming: u64,
        segment_bytes: u64,
        segment_ms: i64,
    ) -> Result<(), StorageError> {
        let size = w.active.size();
        if size == 0 {
            return Ok(());
        }
        let too_big = size.saturating_add(incoming) > segment_bytes.min(u64::from(u32::MAX));
        let too_old = now.saturating_sub(w.roll_base_ms) >= segment_ms;
        // Index entries store offsets relative to the base as u32.
        let offsets_exhausted =
            w.next_offset.saturating_sub(w.active.base_offset) > i64::from(i32::MAX);
        if !(too_big || too_old || offsets_exhausted) {
            return Ok(());
        }
        let fail = |err: std::io::Error| {
            self.health
                .fail(format!("rolling `{}` failed: {err}", self.dir.display()))
        };
        w.active.seal().map_err(fail)?;
        self.flusher.mark_dirty(&w.active)?;
        let segment = Arc::new(
            Segment::create(&self.dir, w.next_offset, &w.last_digest, &self.files).map_err(fail)?,
        );
        self.flusher.mark_dir_dirty(&self.dir);
        {
            let mut segments = self.segments.write();
            let mut list = Vec::clone(&segments);
            list.push(Arc::clone(&segment));
            *segments = Arc::new(list);
        }
        w.active = segment;
        w.bytes_since_index = 0;
        w.roll_base_ms = now;
        Ok(())
    }

    /// The offset below which records are visible: written and, under group commit, synced.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    pub fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        self.check_usable()?;
        // The writer lock orders this against retention moving the start offset.
        let _writer = self.writer.lock();
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(StorageError::OffsetOutOfRange(offset));
        }
        let current = self.log_start_offset();
        if target <= current {
            return Ok(current);
        }
        let path = self.dir.join(LOG_START_CHECKPOINT);
        atomic_write(&path, target.to_string().as_bytes())?;
        self.log_start.store(target, Ordering::Release);
        Ok(target)
    }

    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// (next offset, digest of the last batch): the head of the tamper-evidence chain, worth
    /// recording outside the broker so a consistent rewrite of log and chain is detectable.
    pub fn head_digest(&self) -> (i64, Digest) {
        let w = self.writer.lock();
        (w.next_offset, w.last_digest)
    }

    /// Syncs every segment including indexes (clean shutdown).
    pub(super) fn sync_all(&self) -> Result<(), StorageError> {
        for segment in self.snapshot().iter() {
            segment
                .sync_all()
                .map_err(|err| self.health.fail(format!("fsync failed: {err}")))?;
        }
        Ok(())
    }
}

fn read_log_start(dir: &Path) -> Result<Option<i64>, StorageError> {
    let path = dir.join(LOG_START_CHECKPOINT);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| StorageError::Corrupt {
                path,
                reason: "log start offset is not a number".into(),
            }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(StorageError::Io { path, source: err }),
    }
}
