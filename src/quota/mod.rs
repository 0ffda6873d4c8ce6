//! Client quotas: how many bytes per second a user (or client id) may produce and fetch.
//!
//! Kafka's model and wire behaviour (KIP-13, KIP-55, KIP-219): quotas belong to entities
//! ([`entity`]); a request over its quota is still answered, with `throttle_time_ms` set, and
//! the connection then reads nothing more from the client for that long (a client that honours
//! the field waits by itself; one that ignores it is held back anyway). A fetch made while the
//! fetcher still owes time is answered at once with no records. The default is per user, not
//! per client id: a client id is whatever the client says, so a client-id-only quota is one a
//! client leaves by renaming itself.
//!
//! Quotas come from the `[quotas]` config section and from AlterClientQuotas (kept in the data
//! dir, [`store`]); for the same entity and quota the admin API's value wins.

pub mod bucket;
pub mod entity;
pub mod settings;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

pub use entity::{Entity, Name};
pub use settings::QuotaSettings;
use store::Table;

/// What a quota meters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKind {
    /// Request bytes of Produce.
    Produce = 0,
    /// Response bytes of Fetch.
    Fetch = 1,
}

impl QuotaKind {
    /// The Kafka quota key.
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
        }
    }

    pub fn from_key(key: &str) -> Option<QuotaKind> {
        [QuotaKind::Produce, QuotaKind::Fetch]
            .into_iter()
            .find(|k| k.key() == key)
    }

    /// The `kind` label of `palisade_throttled_total` for a throttle of this quota.
    pub fn metric_label(self) -> &'static str {
        match self {
            QuotaKind::Produce => "produce_quota",
            QuotaKind::Fetch => "fetch_quota",
        }
    }
}

/// Buckets kept before idle full ones are forgotten.
const BUCKETS_BEFORE_SWEEP: usize = 4096;

/// Quotas the admin API may keep (entity and kind pairs): each is a line of the store and an
/// entry every resolution may look up.
pub const MAX_ALTERED: usize = 10_000;

/// Why an alteration was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterError {
    #[error(
        "at most {MAX_ALTERED} client quotas can be set through the admin API ({0} requested)"
    )]
    TooMany(usize),
    #[error("{0}")]
    Store(String),
}

/// The broker's quotas and the buckets metering them.
pub struct Quotas {
    configured: Table,
    /// Set through the admin API; written to `path` on every change.
    altered: Mutex<Table>,
    path: Option<PathBuf>,
    /// `configured` overlaid with `altered`: what applies now.
    effective: ArcSwap<Table>,
    buckets: Mutex<HashMap<(QuotaKind, entity::Bucket), SharedBucket>>,
    max_throttle: Duration,
    /// Bumped by every change, so connections resolve their buckets again.
    generation: AtomicU64,
}

/// A bucket and the connections metered by it.
type SharedBucket = Arc<Mutex<bucket::RateBucket>>;

/// What meters one kind of traffic of a connection.
#[derive(Debug)]
enum Slot {
    Free,
    Metered {
        rate: f64,
        burst: u64,
        bucket: SharedBucket,
        /// The entity whose quota this is (for the audit trail).
        entity: String,
    },
}

/// A connection's memory of its buckets: resolving an entity walks eight candidates and
/// allocates, which a request should not pay for each time.
#[derive(Debug, Default)]
pub struct QuotaCache {
    generation: u64,
    user: String,
    client_id: String,
    /// Per [`QuotaKind`]; `None` until first needed.
    slots: [Option<Slot>; 2],
    /// Per [`QuotaKind`]: whether a throttle was already reported.
    reported: [bool; 2],
}

impl QuotaCache {
    /// The entity whose `kind` quota throttled this connection, the first time only (until
    /// quotas change).
    pub fn first_throttle(&mut self, kind: QuotaKind) -> Option<String> {
        let index = kind as usize;
        let reported = self.reported.get_mut(index)?;
        if std::mem::replace(reported, true) {
            return None;
        }
        match self.slots.get(index)? {
            Some(Slot::Metered { entity, .. }) => Some(entity.clone()),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("effective", &self.effective.load().len())
            .finish()
    }
}

impl Quotas {
    /// The config's quotas plus those stored in `data_dir` (`None`: nothing is stored, for
    /// tests).
    pub fn open(
        settings: &QuotaSettings,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Quotas, String> {
        let configured: Table = settings
            .entries()?
            .into_iter()
            .map(|(e, k, r)| ((e, k), r))
            .collect();
        let path = data_dir.map(store::path_in);
        let altered = match &path {
            Some(p) => store::load(p)?,
            None => Table::new(),
        };
        let quotas = Quotas {
            effective: ArcSwap::from_pointee(overlay(&configured, &altered)),
            configured,
            altered: Mutex::new(altered),
            path,
            buckets: Mutex::new(HashMap::new()),
            max_throttle: Duration::from_millis(settings.max_throttle_ms),
            generation: AtomicU64::new(1),
        };
        let n = quotas.effective.load().len();
        if n > 0 {
            tracing::info!(quotas = n, "client quotas in force");
        }
        Ok(quotas)
    }

    /// Every quota in force.
    pub fn effective(&self) -> Arc<Table> {
        self.effective.load_full()
    }

    /// The quota governing `user` with `client_id`, and the entity it belongs to.
    fn resolve(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<(Entity, u64)> {
        let table = self.effective.load();
        if table.is_empty() {
            return None;
        }
        entity::candidates(user, client_id)
            .into_iter()
            .find_map(|e| table.get(&(e.clone(), kind)).map(|r| (e, *r)))
    }

    /// The bucket metering `kind` for `user` with `client_id`, shared with every other
    /// connection the same entity governs.
    fn slot(&self, kind: QuotaKind, user: &str, client_id: &str) -> Slot {
        let Some((entity, rate)) = self.resolve(kind, user, client_id) else {
            return Slot::Free;
        };
        let key = (kind, entity.bucket_for(user, client_id));
        let mut buckets = self.buckets.lock();
        if buckets.len() >= BUCKETS_BEFORE_SWEEP && !buckets.contains_key(&key) {
            // A full bucket no connection holds is the same as a new one: only buckets owed
            // time or in use need keeping, so clients cannot grow this map by inventing
            // client ids.
            let now = Instant::now();
            buckets.retain(|_, b| Arc::strong_count(b) > 1 || !b.lock().is_full(now));
        }
        // Precision: quotas are far below 2^53 bytes per second.
        let rate_f = rate as f64;
        let bucket = buckets
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Mutex::new(bucket::RateBucket::new(rate_f, Instant::now())))
            })
            .clone();
        Slot::Metered {
            rate: rate_f,
            burst: bucket::burst_bytes(rate),
            bucket,
            entity: entity.to_string(),
        }
    }

    /// Meters `bytes` of `kind` for `user` with `client_id` and returns how long the client
    /// must now wait (zero when within its quota or without one).
    pub fn record(&self, kind: QuotaKind, user: &str, client_id: &str, bytes: u64) -> Duration {
        self.record_with(&mut QuotaCache::default(), kind, user, client_id, bytes)
    }

    /// [`Quotas::record`] remembering the connection's buckets in `cache`.
    pub fn record_with(
        &self,
        cache: &mut QuotaCache,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: u64,
    ) -> Duration {
        match self.cached(cache, kind, user, client_id) {
            Slot::Free => Duration::ZERO,
            Slot::Metered { rate, bucket, .. } => bucket
                .lock()
                .take(*rate, bytes, Instant::now())
                .min(self.max_throttle),
        }
    }

    /// How long `user` with `client_id` still owes for earlier `kind` bytes, and the most
    /// bytes one request should carry: one bucket's worth (`None`: no quota). A fetch bounded
    /// by it cannot take many seconds of quota in one response and leave the consumer
    /// waiting that long after.
    pub fn owed_with(
        &self,
        cache: &mut QuotaCache,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
    ) -> Option<(Duration, u64)> {
        match self.cached(cache, kind, user, client_id) {
            Slot::Free => None,
            Slot::Metered {
                rate,
                burst,
                bucket,
                ..
            } => {
                let owed = bucket.lock().wait(*rate, Instant::now());
                Some((owed.min(self.max_throttle), *burst))
            }
        }
    }

    /// The connection's slot for `kind`, resolved again when the quotas or its names changed.
    fn cached<'c>(
        &self,
        cache: &'c mut QuotaCache,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
    ) -> &'c Slot {
        let generation = self.generation.load(Ordering::Acquire);
        if cache.generation != generation || cache.user != user || cache.client_id != client_id {
            *cache = QuotaCache {
                generation,
                user: user.to_string(),
                client_id: client_id.to_string(),
                slots: [None, None],
                reported: [false, false],
            };
        }
        let index = kind as usize;
        let slot = cache.slots.get_mut(index).and_then(|s| {
            if s.is_none() {
                *s = Some(self.slot(kind, user, client_id));
            }
            s.as_ref()
        });
        slot.unwrap_or(&Slot::Free)
    }

    /// Applies `changes` (`None` removes the admin-set quota) atomically: all are stored, then
    /// all apply; on a storage error none do.
    pub fn alter(&self, changes: &[(Entity, QuotaKind, Option<u64>)]) -> Result<(), AlterError> {
        let mut altered = self.altered.lock();
        let mut next = altered.clone();
        for (entity, kind, rate) in changes {
            match rate {
                Some(r) => next.insert((entity.clone(), *kind), *r),
                None => next.remove(&(entity.clone(), *kind)),
            };
        }
        if next.len() > MAX_ALTERED {
            return Err(AlterError::TooMany(next.len()));
        }
        if let Some(path) = &self.path {
            store::save(path, &next).map_err(|e| {
                AlterError::Store(format!("cannot store quotas in `{}`: {e}", path.display()))
            })?;
        }
        self.effective
            .store(Arc::new(overlay(&self.configured, &next)));
        self.generation.fetch_add(1, Ordering::AcqRel);
        *altered = next;
        Ok(())
    }
}

fn overlay(configured: &Table, altered: &Table) -> Table {
    let mut t = configured.clone();
    t.extend(altered.iter().map(|(k, v)| (k.clone(), *v)));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(text: &str) -> Quotas {
        Quotas::open(&toml::from_str(text).unwrap(), None).unwrap()
    }

    #[test]
    fn without_quotas_nothing_is_metered() {
        let q = quotas("");
        assert_eq!(
            q.record(QuotaKind::Produce, "alice", "app", u64::MAX / 2),
            Duration::ZERO
        );
        assert!(q.buckets.lock().is_empty());
    }

    #[test]
    fn each_user_has_its_own_bucket_under_the_default() {
        let q = quotas("producer_byte_rate = 1000");
        assert_eq!(
            q.record(QuotaKind::Produce, "alice", "a", 1000),
            Duration::ZERO
        );
        // Time passes between the calls: the bucket refills a little meanwhile.
        let wait = q.record(QuotaKind::Produce, "alice", "b", 500);
        assert!(
            wait > Duration::from_millis(450) && wait <= Duration::from_millis(500),
            "alice's client ids share her bucket: {wait:?}"
        );
        assert_eq!(
            q.record(QuotaKind::Produce, "bob", "a", 1000),
            Duration::ZERO
        );
        let (owed, burst) = q
            .owed_with(&mut QuotaCache::default(), QuotaKind::Produce, "alice", "a")
            .unwrap();
        assert_eq!(owed.as_millis() / 100, 4);
        assert_eq!(burst, 1000);
        // Fetch has no quota here.
        assert_eq!(
            q.record(QuotaKind::Fetch, "alice", "a", 1 << 30),
            Duration::ZERO
        );
    }

    #[test]
    fn the_most_specific_entity_wins_and_the_throttle_is_capped() {
        let q = quotas(
            r#"
            producer_byte_rate = 1000
            max_throttle_ms = 2000
            [[overrides]]
            user = "etl"
            producer_byte_rate = 1000000
            [[overrides]]
            user = "etl"
            client_id = "slow"
            producer_byte_rate = 10
            "#,
        );
        assert_eq!(
            q.record(QuotaKind::Produce, "etl", "fast", 100_000),
            Duration::ZERO
        );
        assert_eq!(
            q.record(QuotaKind::Produce, "etl", "slow", 100_000),
            Duration::from_millis(2000)
        );
        assert_eq!(
            q.record(QuotaKind::Produce, "alice", "x", 100_000),
            Duration::from_millis(2000)
        );
    }

    #[test]
    fn altered_quotas_override_configured_ones_and_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let settings: QuotaSettings = toml::from_str("producer_byte_rate = 1000").unwrap();
        let q = Quotas::open(&settings, Some(dir.path())).unwrap();
        let default_user = Entity::new(Some(Name::Default), None).unwrap();
        q.alter(&[(default_user.clone(), QuotaKind::Produce, Some(5000))])
            .unwrap();
        assert_eq!(
            q.record(QuotaKind::Produce, "alice", "a", 5000),
            Duration::ZERO
        );
        // A restart keeps the altered quota.
        let again = Quotas::open(&settings, Some(dir.path())).unwrap();
        assert_eq!(
            again
                .effective()
                .get(&(default_user.clone(), QuotaKind::Produce)),
            Some(&5000)
        );
        // Removing it brings the configured one back.
        again
            .alter(&[(default_user.clone(), QuotaKind::Produce, None)])
            .unwrap();
        assert_eq!(
            again.effective().get(&(default_user, QuotaKind::Produce)),
            Some(&1000)
        );
    }

    #[test]
    fn the_admin_api_keeps_a_bounded_number_of_quotas() {
        let q = quotas("");
        let many: Vec<_> = (0..=MAX_ALTERED)
            .map(|i| {
                let e = Entity::new(None, Some(Name::Named(format!("c{i}")))).unwrap();
                (e, QuotaKind::Produce, Some(1000))
            })
            .collect();
        assert_eq!(q.alter(&many), Err(AlterError::TooMany(MAX_ALTERED + 1)));
        assert!(q.effective().is_empty(), "nothing applied");
        q.alter(&many[..MAX_ALTERED]).unwrap();
        assert_eq!(q.effective().len(), MAX_ALTERED);
    }

    #[test]
    fn invented_client_ids_do_not_grow_the_buckets_without_bound() {
        let q = quotas("[[overrides]]\nclient_id = \"<default>\"\nconsumer_byte_rate = 1000000000");
        for i in 0..3 * BUCKETS_BEFORE_SWEEP {
            q.record(QuotaKind::Fetch, "u", &format!("c{i}"), 1);
        }
        // Every bucket refills to full within microseconds at 1 GB/s.
        std::thread::sleep(Duration::from_millis(5));
        q.record(QuotaKind::Fetch, "u", "last", 1);
        assert!(
            q.buckets.lock().len() <= BUCKETS_BEFORE_SWEEP,
            "{}",
            q.buckets.lock().len()
        );
    }
}
