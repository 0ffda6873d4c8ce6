//! The background task that drives time: session expiry, MEMBER_ID_REQUIRED ids that never
//! came back, the first-join delay and join deadlines.
//!
//! One task per coordinator sleeps until the earliest deadline of any group. Handlers call
//! `Notify::notify_one` when they create a deadline; `notify_one` stores a permit, so a wake-up
//! sent while the task is busy is not lost. The sleep is also capped, as a safety net for
//! deadlines that change without a wake-up (a parked client hanging up).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Inner;

/// Longest sleep between two scans.
const MAX_SLEEP: Duration = Duration::from_millis(500);

pub(super) fn spawn(inner: Weak<Inner>, wake: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            // Hold a strong reference only while scanning, so dropping the coordinator ends
            // the task.
            let next = {
                let Some(inner) = inner.upgrade() else { break };
                if inner.closed.load(Ordering::SeqCst) {
                    break;
                }
                let next = inner.tick(Instant::now());
                if inner.store.needs_compaction(inner.live_offsets()) {
                    // Compaction does file I/O under the group lock: keep it off the runtime.
                    let inner = inner.clone();
                    let done = tokio::task::spawn_blocking(move || inner.compact()).await;
                    if let Ok(Err(e)) = done {
                        tracing::error!(error = %e, "offset log compaction failed");
                    }
                }
                next
            };
            let now = Instant::now();
            let until = next.map_or(now + MAX_SLEEP, |n| n.min(now + MAX_SLEEP));
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = wake.notified() => {}
            }
        }
        tracing::debug!("group reaper stopped");
    });
}

impl Inner {
    /// Number of committed offsets held in memory.
    fn live_offsets(&self) -> u64 {
        let groups = self.groups.lock();
        let count: usize = groups
            .values()
            .flat_map(|g| g.offsets.values())
            .map(|partitions| partitions.len())
            .sum();
        count as u64
    }

    /// Rewrites the offset log as one record per live offset.
    pub(super) fn compact(&self) -> Result<(), super::GroupError> {
        let groups = self.groups.lock();
        let records = super::offsets::snapshot(&groups);
        self.store.rewrite(&records)?;
        tracing::info!(records = records.len(), "offset log compacted");
        Ok(())
    }

    /// Runs due timed work in every group; returns the next deadline.
    pub(super) fn tick(&self, now: Instant) -> Option<Instant> {
        let mut groups = self.groups.lock();
        let mut next: Option<Instant> = None;
        for group in groups.values_mut() {
            group.expire(now);
            if let Some(deadline) = group.next_deadline() {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        // Groups created by a failed join or emptied of everything are forgotten.
        groups.retain(|_, g| !g.is_disposable());
        next
    }
}
