//! What the file watchers (TLS material, credentials, policies) share: which notify events
//! change a file's content, and the debounce loop that turns a burst of events into one reload.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::EventKind;

/// Quiet time after the last relevant event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Writes, renames, creations, removals, attribute changes, and a close after writing (the
/// end of a truncate+write save); not reads.
pub fn is_content_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Calls `reload` once per burst of relevant events: after [`DEBOUNCE`] without another one,
/// but never later than `max_delay` after the first (a busy directory must not postpone the
/// reload). Returns when the sender (the watcher) is dropped.
pub fn debounce<T>(
    rx: &Receiver<T>,
    max_delay: Duration,
    mut relevant: impl FnMut(T) -> bool,
    mut reload: impl FnMut(),
) {
    while let Ok(event) = rx.recv() {
        if !relevant(event) {
            continue;
        }
        let deadline = Instant::now() + max_delay;
        let mut quiet_until = Instant::now() + DEBOUNCE;
        loop {
            let wait = quiet_until
                .min(deadline)
                .saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            match rx.recv_timeout(wait) {
                Ok(event) => {
                    if relevant(event) {
                        quiet_until = Instant::now() + DEBOUNCE;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        reload();
    }
}
