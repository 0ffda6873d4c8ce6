//! Connection admission: per-IP connection counts (with per-IP overrides) and a per-IP rate of
//! new connections. The total is bounded separately by the listener's semaphore.
//!
//! A refused connection is closed at once, before TLS or any byte is read, so a flood from one
//! address costs one accept and one close each while other clients keep being served.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// Admission settings (from `[limits]`).
#[derive(Debug, Clone)]
pub struct AdmissionLimits {
    /// Connections open at once from one address; 0 = unlimited.
    pub max_per_ip: usize,
    /// Per-address exceptions to `max_per_ip`.
    pub per_ip_overrides: HashMap<IpAddr, usize>,
    /// New connections per second from one address (burst of the same size); 0 = unlimited.
    pub new_per_second_per_ip: u32,
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{ip} already has {open} connections (limit {limit})")]
    TooManyFromIp {
        ip: IpAddr,
        open: usize,
        limit: usize,
    },
    #[error("{ip} opens connections faster than {rate} per second")]
    RateFromIp { ip: IpAddr, rate: u32 },
}

#[derive(Debug)]
struct PerIp {
    open: usize,
    /// Token bucket for new connections.
    tokens: f64,
    refilled: Instant,
}

/// Tracks connections per address; shared by every listener.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    state: Mutex<HashMap<IpAddr, PerIp>>,
}

/// Held for the life of an admitted connection; releases its slot on drop.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = self.admission.state.lock();
        if let Some(entry) = state.get_mut(&self.ip) {
            entry.open = entry.open.saturating_sub(1);
            // Forget idle addresses whose bucket is full again, so the map stays bounded by
            // the addresses actually connected.
            if entry.open == 0 && self.admission.bucket_full(entry) {
                state.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            state: Mutex::new(HashMap::new()),
        })
    }

    fn limit_for(&self, ip: IpAddr) -> usize {
        match self.limits.per_ip_overrides.get(&ip) {
            Some(limit) => *limit,
            None if self.limits.max_per_ip == 0 => usize::MAX,
            None => self.limits.max_per_ip,
        }
    }

    fn bucket_full(&self, entry: &PerIp) -> bool {
        let rate = f64::from(self.limits.new_per_second_per_ip);
        rate == 0.0 || entry.tokens + entry.refilled.elapsed().as_secs_f64() * rate >= rate
    }

    /// Admits a new connection from `ip` or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        let limit = self.limit_for(ip);
        let rate = self.limits.new_per_second_per_ip;
        let mut state = self.state.lock();
        let now = Instant::now();
        let entry = state.entry(ip).or_insert(PerIp {
            open: 0,
            tokens: f64::from(rate),
            refilled: now,
        });
        if entry.open >= limit {
            return Err(Refused::TooManyFromIp {
                ip,
                open: entry.open,
                limit,
            });
        }
        if rate > 0 {
            let rate_f = f64::from(rate);
            let elapsed = now.duration_since(entry.refilled).as_secs_f64();
            entry.tokens = (entry.tokens + elapsed * rate_f).min(rate_f);
            entry.refilled = now;
            if entry.tokens < 1.0 {
                return Err(Refused::RateFromIp { ip, rate });
            }
            entry.tokens -= 1.0;
        }
        entry.open += 1;
        Ok(Admitted {
            admission: Arc::clone(self),
            ip,
        })
    }

    /// Connections currently open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.state.lock().get(&ip).map_or(0, |e| e.open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_per_ip: usize, rate: u32) -> AdmissionLimits {
        AdmissionLimits {
            max_per_ip,
            per_ip_overrides: HashMap::new(),
            new_per_second_per_ip: rate,
        }
    }

    #[test]
    fn per_ip_limit_and_release() {
        let a = Admission::new(limits(2, 0));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let first = a.admit(ip).unwrap();
        let _second = a.admit(ip).unwrap();
        assert!(matches!(
            a.admit(ip),
            Err(Refused::TooManyFromIp { limit: 2, .. })
        ));
        let _elsewhere = a.admit(other).unwrap();
        drop(first);
        assert!(a.admit(ip).is_ok());
    }

    #[test]
    fn overrides_raise_or_lower_the_limit() {
        let mut l = limits(1, 0);
        let trusted: IpAddr = "127.0.0.1".parse().unwrap();
        let banned: IpAddr = "10.9.9.9".parse().unwrap();
        l.per_ip_overrides.insert(trusted, 3);
        l.per_ip_overrides.insert(banned, 0);
        let a = Admission::new(l);
        let held: Vec<_> = (0..3).map(|_| a.admit(trusted).unwrap()).collect();
        assert!(a.admit(trusted).is_err());
        assert!(a.admit(banned).is_err());
        drop(held);
    }

    #[test]
    fn rate_limit_refills_over_time() {
        let a = Admission::new(limits(0, 5));
        let ip: IpAddr = "10.0.0.3".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(a.admit(ip).unwrap());
        }
        assert!(matches!(
            a.admit(ip),
            Err(Refused::RateFromIp { rate: 5, .. })
        ));
        std::thread::sleep(Duration::from_millis(250));
        assert!(a.admit(ip).is_ok(), "bucket did not refill");
    }
}
