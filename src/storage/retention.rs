//! Retention: deletes whole old segments by time (`retention.ms`, against each segment's
//! largest timestamp), by size (`retention.bytes` per partition) and below the log start
//! offset (DeleteRecords), then moves the log start offset. The active segment is never
//! deleted. Runs on a background thread every `retention_check_interval_ms`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::partition::Partition;
use super::segment::Segment;
use super::StorageError;

impl Partition {
    /// Applies retention once; returns how many segments were deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let (retention_ms, retention_bytes) = {
            let cfg = self.config.read();
            // Compact-only topics keep their data regardless of age and size (compaction
            // itself is not implemented); DeleteRecords still applies.
            if super::topic_meta::cleanup_includes(&cfg.cleanup_policy, "delete") {
                (cfg.retention_ms, cfg.retention_bytes)
            } else {
                (-1, -1)
            }
        };
        let removed: Vec<Arc<Segment>> = {
            // Holding the writer lock keeps rolls from changing the list meanwhile.
            let _writer = self.writer.lock();
            let segments = self.snapshot();
            let Some((_active, old)) = segments.split_last() else {
                return Ok(0);
            };
            let log_start = self.log_start.load(Ordering::Acquire);
            // Never cut into batches not yet visible: the log start would pass the high
            // watermark.
            let high_watermark = self.high_watermark();
            let mut total: i64 = segments
                .iter()
                .map(|s| i64::try_from(s.size()).unwrap_or(i64::MAX))
                .sum();
            let mut cut = 0;
            for segment in old {
                let below_start = segment.next_offset() <= log_start;
                let expired = retention_ms >= 0 && {
                    let newest = segment
                        .max_timestamp()
                        .map(|(ts, _)| ts)
                        .or_else(|| segment.modified_ms());
                    newest.is_some_and(|ts| now_ms.saturating_sub(ts) > retention_ms)
                };
                let size = i64::try_from(segment.size()).unwrap_or(i64::MAX);
                let oversized =
                    retention_bytes >= 0 && total.saturating_sub(size) >= retention_bytes;
                if segment.next_offset() > high_watermark || !(below_start || expired || oversized)
                {
                    break;
                }
                total = total.saturating_sub(size);
                cut += 1;
            }
            if cut == 0 {
                return Ok(0);
            }
            let (gone, kept) = segments.split_at(cut);
            if let Some(first) = kept.first() {
                self.log_start
                    .fetch_max(first.base_offset, Ordering::AcqRel);
            }
            *self.segments.write() = Arc::new(kept.to_vec());
            gone.to_vec()
        };
        for segment in &removed {
            tracing::info!(dir = %self.dir.display(), base = segment.base_offset, "deleting segment by retention");
            segment.delete_files(&self.dir);
        }
        self.flusher.mark_dir_dirty(&self.dir);
        Ok(removed.len())
    }
}

/// Stop signal for the retention thread.
#[derive(Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }

    /// Waits up to `timeout`; true once stopped.
    fn wait(&self, timeout: Duration) -> bool {
        let mut stopped = self.stopped.lock();
        if !*stopped {
            self.wake.wait_for(&mut stopped, timeout);
        }
        *stopped
    }
}

/// Runs `task` on the upgraded `target` every `interval` until stopped or `target` is gone.
pub fn spawn_periodic<T: Send + Sync + 'static>(
    name: &str,
    target: Weak<T>,
    interval: Duration,
    stop: Arc<StopSignal>,
    task: fn(&T),
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || loop {
            if stop.wait(interval) {
                return;
            }
            match target.upgrade() {
                Some(target) => task(&target),
                None => return,
            }
        })
}
