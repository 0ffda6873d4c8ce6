//! Polling with a deadline: tests wait for what they assert, never for a fixed time, and never
//! bound how long something took (a busy machine is slow, not wrong).

use std::future::Future;
use std::time::{Duration, Instant};

/// How often the helpers look again.
const EVERY: Duration = Duration::from_millis(20);

/// Calls `f` until it returns `Some`, for up to `limit`; the value, or `None` at the deadline.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(EVERY);
    }
}

/// Calls `f` until it returns true, for up to `limit`; how long that took (for reports, never
/// for an assertion), or `None` at the deadline.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    wait_for(limit, || f().then(|| started.elapsed()))
}

/// [`wait_until`] for async checks, sleeping on the tokio timer between calls.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(EVERY).await;
    }
}
