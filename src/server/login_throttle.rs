//! Failed-login throttling per source address: each failure within the window doubles the
//! delay before the refusal is sent (up to a cap), so guessing passwords from one address
//! slows down exponentially while other addresses are unaffected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures older than this no longer count.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond it the oldest entries are dropped (bounded memory under a
/// distributed attack; the base delay still applies to everyone).
const MAX_TRACKED: usize = 65_536;

#[derive(Debug)]
pub struct LoginThrottle {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginThrottle {
    pub fn new(base: Duration, max: Duration) -> Self {
        LoginThrottle {
            base,
            max: max.max(base),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure from `ip` and returns how long to wait before answering it.
    pub fn failed(&self, ip: IpAddr) -> Duration {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (_, last)| now.duration_since(*last) < WINDOW);
        }
        let entry = failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let count = entry.0;
        drop(failures);
        let delay = self
            .base
            .saturating_mul(
                1u32.checked_shl(count.saturating_sub(1).min(16))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max);
        if count > 1 {
            tracing::warn!(%ip, failures = count, delay_ms = delay.as_millis() as u64, "repeated failed logins: throttling this address");
        }
        delay
    }

    /// Failures counted for `ip` in the current window.
    pub fn failures(&self, ip: IpAddr) -> u32 {
        self.failures.lock().get(&ip).map_or(0, |(n, _)| *n)
    }

    /// A successful login clears the address's failures.
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures.lock().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_per_failure_up_to_the_cap_and_resets_on_success() {
        let t = LoginThrottle::new(Duration::from_millis(100), Duration::from_millis(1000));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let delays: Vec<u128> = (0..6).map(|_| t.failed(ip).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            t.failed(other).as_millis(),
            100,
            "another address is not throttled"
        );
        t.succeeded(ip);
        assert_eq!(t.failed(ip).as_millis(), 100);
    }
}
