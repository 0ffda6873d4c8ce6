//! A partition's high watermark: the offset below which records are visible to consumers.
//!
//! It only moves forward. Under group commit it is advanced by the flusher once the batches
//! below it are fsynced, so rounds may publish out of order; `advance` keeps the largest.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::watch;

pub(super) struct HighWatermark {
    value: AtomicI64,
    /// Fetch long polls wait on this.
    tx: watch::Sender<i64>,
}

impl HighWatermark {
    pub fn new(offset: i64) -> Self {
        let (tx, _) = watch::channel(offset);
        Self {
            value: AtomicI64::new(offset),
            tx,
        }
    }

    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Acquire)
    }

    /// Publishes `offset` unless a larger one already is.
    pub fn advance(&self, offset: i64) {
        if self.value.fetch_max(offset, Ordering::AcqRel) < offset {
            self.tx.send_if_modified(|current| {
                let newer = offset > *current;
                if newer {
                    *current = offset;
                }
                newer
            });
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.tx.subscribe()
    }
}
