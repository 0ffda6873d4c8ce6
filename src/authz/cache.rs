//! [`DecisionCache`]: decisions remembered per (generation, principal, action, resource,
//! context facts), so a repeated question costs a hash and a read lock, not a Cedar run.
//!
//! The key holds the context facts policies can read without the clock: listener, tls,
//! authentication and ip, plus the client id when a policy of the partition reads it
//! (partitions that read `context.time` are never cached; see
//! [`ContextUse`](super::index::ContextUse)). Lookups hash the borrowed request (no allocation)
//! and compare the stored key field by field; the hash is `foldhash` (fast, seeded per process). 16 shards, each a `parking_lot::RwLock` over a
//! bounded map that is simply cleared when full.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

use foldhash::fast::RandomState;
use parking_lot::RwLock;

use super::decide::Decision;
use super::request::Request;
use super::schema::{Action, ResourceKind};

const SHARDS: usize = 16;

/// Default capacity in decisions (across all shards).
pub const DEFAULT_CAPACITY: usize = 65_536;

/// The map's keys are already hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Entry, BuildHasherDefault<PassThrough>>;

#[derive(Debug)]
struct OwnedKey {
    generation: u64,
    principal: Box<str>,
    action: Action,
    kind: ResourceKind,
    name: Box<str>,
    tags: Box<[String]>,
    listener: Box<str>,
    tls: bool,
    authentication: Box<str>,
    ip: IpAddr,
    client_id: Option<Box<str>>,
}

impl OwnedKey {
    fn new(generation: u64, r: &Request<'_>, with_client_id: bool) -> Self {
        OwnedKey {
            generation,
            principal: r.principal.into(),
            action: r.action,
            kind: r.resource.kind(),
            name: r.resource.name().into(),
            tags: r.resource.tags().into(),
            listener: r.context.listener.into(),
            tls: r.context.tls,
            authentication: r.context.authentication.into(),
            ip: r.context.ip,
            client_id: with_client_id.then(|| r.context.client_id.into()),
        }
    }

    fn matches(&self, generation: u64, r: &Request<'_>, with_client_id: bool) -> bool {
        self.generation == generation
            && self.action == r.action
            && self.kind == r.resource.kind()
            && self.tls == r.context.tls
            && self.ip == r.context.ip
            && *self.principal == *r.principal
            && *self.name == *r.resource.name()
            && *self.tags == *r.resource.tags()
            && *self.listener == *r.context.listener
            && *self.authentication == *r.context.authentication
            && self.client_id.as_deref() == with_client_id.then_some(r.context.client_id)
    }
}

#[derive(Debug)]
struct Entry {
    key: OwnedKey,
    decision: Decision,
}

/// A bounded, sharded cache of decisions.
#[derive(Debug)]
pub struct DecisionCache {
    shards: Vec<RwLock<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

impl Default for DecisionCache {
    fn default() -> Self {
        DecisionCache::with_capacity(DEFAULT_CAPACITY)
    }
}

impl DecisionCache {
    /// A cache holding at most about `capacity` decisions.
    pub fn with_capacity(capacity: usize) -> Self {
        DecisionCache {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard: (capacity / SHARDS).max(1),
            hasher: RandomState::default(),
        }
    }

    fn hash(&self, generation: u64, r: &Request<'_>, with_client_id: bool) -> u64 {
        let mut h = self.hasher.build_hasher();
        generation.hash(&mut h);
        r.principal.hash(&mut h);
        r.action.hash(&mut h);
        r.resource.kind().hash(&mut h);
        r.resource.name().hash(&mut h);
        r.resource.tags().hash(&mut h);
        r.context.listener.hash(&mut h);
        r.context.tls.hash(&mut h);
        r.context.authentication.hash(&mut h);
        r.context.ip.hash(&mut h);
        if with_client_id {
            r.context.client_id.hash(&mut h);
        }
        h.finish()
    }

    fn shard(&self, hash: u64) -> Option<&RwLock<Shard>> {
        // The top bits pick the shard; SHARDS is a power of two.
        self.shards.get((hash >> 60) as usize % SHARDS)
    }

    /// The cached decision for `r` under `generation`, if any.
    pub fn get(&self, generation: u64, r: &Request<'_>, with_client_id: bool) -> Option<Decision> {
        let hash = self.hash(generation, r, with_client_id);
        let shard = self.shard(hash)?.read();
        let entry = shard.get(&hash)?;
        entry
            .key
            .matches(generation, r, with_client_id)
            .then(|| entry.decision.clone())
    }

    /// Remembers `decision` for `r` under `generation`. A full shard is cleared first.
    pub fn insert(
        &self,
        generation: u64,
        r: &Request<'_>,
        with_client_id: bool,
        decision: &Decision,
    ) {
        let hash = self.hash(generation, r, with_client_id);
        let Some(shard) = self.shard(hash) else {
            return;
        };
        let mut shard = shard.write();
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            shard.clear();
        }
        shard.insert(
            hash,
            Entry {
                key: OwnedKey::new(generation, r, with_client_id),
                decision: decision.clone(),
            },
        );
    }

    /// Forgets everything (a new generation makes old entries unreachable anyway).
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.write().clear();
        }
    }

    /// How many decisions are cached.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
