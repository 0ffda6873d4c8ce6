//! A byte-rate bucket that carries debt.
//!
//! Kafka meters a sampled rate over an 11 s window and throttles by how far the rate is over
//! the quota. A token bucket gives the same long-run rate with an exact, explainable throttle:
//! the bucket holds at most one second of the quota (the burst a client may send at once), each
//! request or response takes its bytes out, and a negative balance is debt that takes
//! `debt / rate` to repay. One throttle is capped (a client must not be told to wait minutes),
//! but the debt is not forgiven: the next request pays the rest.

use std::time::{Duration, Instant};

/// How many seconds of quota a full bucket holds.
const BURST_SECONDS: f64 = 1.0;

/// What a full bucket of `rate` bytes per second holds.
pub fn burst_bytes(rate: u64) -> u64 {
    // Precision: the product is exact for any rate below 2^53.
    (rate as f64 * BURST_SECONDS) as u64
}

#[derive(Debug, Clone)]
pub struct RateBucket {
    /// Bytes per second.
    rate: f64,
    /// Bytes available now; negative is debt.
    balance: f64,
    at: Instant,
}

impl RateBucket {
    /// A full bucket.
    pub fn new(rate: f64, now: Instant) -> Self {
        RateBucket {
            rate,
            balance: rate * BURST_SECONDS,
            at: now,
        }
    }

    /// Refills for the time since the last use at `rate` (the quota may have changed since).
    fn refill(&mut self, rate: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.balance = (self.balance + self.rate * elapsed).min(rate * BURST_SECONDS);
        self.rate = rate;
        self.at = now;
    }

    /// Takes `bytes` out and returns how long the client must wait to have paid for them.
    pub fn take(&mut self, rate: f64, bytes: u64, now: Instant) -> Duration {
        self.refill(rate, now);
        // Precision: f64 holds byte counts exactly far beyond any frame size.
        self.balance -= bytes as f64;
        self.debt_time()
    }

    /// How long until the debt is paid, without taking anything.
    pub fn wait(&mut self, rate: f64, now: Instant) -> Duration {
        self.refill(rate, now);
        self.debt_time()
    }

    fn debt_time(&self) -> Duration {
        if self.balance >= 0.0 || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(-self.balance / self.rate).unwrap_or(Duration::MAX)
    }

    /// Whether the bucket is full at `now` (then it is the same as a new one and may be
    /// forgotten).
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.balance + self.rate * elapsed >= self.rate * BURST_SECONDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1_000_000.0;

    #[test]
    fn a_burst_of_one_second_is_free_and_the_rest_is_debt() {
        let t0 = Instant::now();
        let mut b = RateBucket::new(MB, t0);
        assert_eq!(b.take(MB, 1_000_000, t0), Duration::ZERO);
        let wait = b.take(MB, 500_000, t0);
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second later the debt is paid.
        assert_eq!(b.wait(MB, t0 + Duration::from_millis(500)), Duration::ZERO);
    }

    #[test]
    fn the_long_run_rate_is_the_quota() {
        let t0 = Instant::now();
        let mut b = RateBucket::new(MB, t0);
        let mut now = t0;
        let mut sent = 0u64;
        // A client that always waits as told, sending 64 KB requests.
        while now < t0 + Duration::from_secs(10) {
            let wait = b.take(MB, 65_536, now);
            sent += 65_536;
            now += wait.max(Duration::from_micros(1));
        }
        let rate = sent as f64 / (now - t0).as_secs_f64();
        assert!(rate > 0.99 * MB && rate < 1.11 * MB, "{rate}");
    }

    #[test]
    fn a_lowered_quota_caps_the_balance() {
        let t0 = Instant::now();
        let mut b = RateBucket::new(MB, t0);
        // The quota drops to 1 KB/s: the balance is capped at one second of the new quota.
        assert_eq!(b.take(1000.0, 1000, t0), Duration::ZERO);
        assert_eq!(b.take(1000.0, 500, t0), Duration::from_millis(500));
        assert!(!b.is_full(t0));
        assert!(b.is_full(t0 + Duration::from_millis(1500)));
    }
}
