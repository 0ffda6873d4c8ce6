//! What a plugin's store holds: its memory limits, what the host functions need (keyring, data
//! keys, policy oracle) and what it is allowed (its manifest's key ids), and the call it is
//! serving.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use wasmtime::{StoreLimits, StoreLimitsBuilder};

use super::envelope::EnvelopeStore;
use super::keyring::SharedKeyring;
use super::oracle::{CallFacts, DenyAll, PolicyOracle};

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

/// The call an instance is serving (host functions check the topic and use the facts).
#[derive(Debug, Clone)]
pub struct ActiveCall {
    pub topic: String,
    pub facts: CallFacts,
}

/// The data of one plugin instance's store.
pub struct State {
    pub limits: StoreLimits,
    pub services: Arc<HostServices>,
    pub grant: Arc<Grant>,
    pub call: Option<ActiveCall>,
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
        }
    }
}
