//! What a plugin's store holds: its memory limits, what the host functions need (keyring, data
//! keys, policy oracle) and what it is allowed (its manifest's key ids), and the call it is
//! serving.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use wasmtime::{StoreLimits, StoreLimitsBuilder};

use super::envelope::EnvelopeStore;
use super::keyring::SharedKeyring;
use super::oracle::{DenyAll, PolicyOracle};
use crate::request::Caller;

/// Shared by every plugin of one broker.
pub struct HostServices {
    pub keyring: SharedKeyring,
    pub envelopes: EnvelopeStore,
    oracle: ArcSwap<Box<dyn PolicyOracle>>,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices")
            .field("keyring", &self.keyring.path())
            .finish_non_exhaustive()
    }
}

impl HostServices {
    pub fn new(keyring: SharedKeyring, envelopes: EnvelopeStore) -> Self {
        HostServices {
            keyring,
            envelopes,
            oracle: ArcSwap::from_pointee(Box::new(DenyAll)),
        }
    }

    /// Answers `authorize` with `oracle` from now on (until then every question is denied).
    pub fn set_oracle(&self, oracle: Box<dyn PolicyOracle>) {
        self.oracle.store(Arc::new(oracle));
    }

    pub fn oracle(&self) -> Arc<Box<dyn PolicyOracle>> {
        self.oracle.load_full()
    }
}

/// What one loaded plugin may do.
#[derive(Debug)]
pub struct Grant {
    pub plugin: String,
    pub keys: HashSet<String>,
}

/// The call an instance is serving (host functions check the topic and ask for the caller).
#[derive(Debug, Clone)]
pub struct ActiveCall {
    pub topic: String,
    pub caller: Caller,
}

/// The time budget of the current call, in CPU time of the calling thread: a busy machine
/// (a reload compiling a plugin, other tenants) must not make a plugin miss its deadline, and
/// time spent in host functions (Ed25519, AES, a Cedar decision) is not charged to the plugin.
/// A hard limit in wall-clock time bounds the whole call, host work included.
#[derive(Debug, Clone, Copy)]
pub struct CallClock {
    pub started: Instant,
    /// CPU time of the calling thread at the start (`None` if the clock is unavailable: then
    /// wall-clock time is used).
    pub started_cpu: Option<Duration>,
    pub in_host: Duration,
    pub budget: Duration,
    pub hard_limit: Duration,
}

impl CallClock {
    /// Starts the clock on the thread that makes the call.
    pub fn start(budget: Duration, hard_limit: Duration) -> Self {
        CallClock {
            started: Instant::now(),
            started_cpu: thread_cpu(),
            in_host: Duration::ZERO,
            budget,
            hard_limit,
        }
    }

    /// Time left for the plugin, or `None` when it is used up.
    pub fn remaining(&self) -> Option<Duration> {
        if self.started.elapsed() >= self.hard_limit {
            return None;
        }
        let cpu = match (self.started_cpu, thread_cpu()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => self.started.elapsed(),
        };
        let in_guest = cpu.saturating_sub(self.in_host);
        self.budget
            .checked_sub(in_guest)
            .filter(|left| !left.is_zero())
    }
}

/// CPU time consumed by the current thread so far.
pub fn thread_cpu() -> Option<Duration> {
    cpu_time::ThreadTime::try_now()
        .ok()
        .map(|t| t.as_duration())
}

/// The data of one plugin instance's store.
pub struct State {
    pub limits: StoreLimits,
    pub services: Arc<HostServices>,
    pub grant: Arc<Grant>,
    pub call: Option<ActiveCall>,
    pub clock: CallClock,
}

impl State {
    pub fn new(services: Arc<HostServices>, grant: Arc<Grant>, memory_limit: usize) -> Self {
        State {
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .trap_on_grow_failure(true)
                .build(),
            services,
            grant,
            call: None,
            clock: CallClock::start(Duration::ZERO, Duration::ZERO),
        }
    }
}
