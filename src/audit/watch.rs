//! Events the broker notices by itself rather than in a request: changes of the credential
//! store (whoever made them: `palisade user` editing the file, or AlterUserScramCredentials),
//! TLS material reloads, and policy generations loaded or refused.
//!
//! TLS reloaders and the policy authorizer expose monotonically increasing counters
//! (generation, failures); polling them every [`POLL`] sees every change as a count without
//! threading the audit handle through their watcher threads.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::event::{Event, Origin};
use super::handle::Audit;
use crate::metrics::Metrics;
use crate::sasl::shared::Fingerprints;
use crate::sasl::SharedCredentials;
use crate::tls::TlsReloader;

/// How often reload counters are polled.
pub const POLL: Duration = Duration::from_millis(250);

/// The events for a change of the credential store from `old` to `new`.
pub fn credential_events(old: &Fingerprints, new: &Fingerprints) -> Vec<Event> {
    let origin = Origin::broker();
    let mut events = Vec::new();
    for (user, fp) in new.iter() {
        match old.get(user) {
            None => {
                events.push(Event::user_added(&origin, user).detail("source", "credential_store"))
            }
            Some(before) if before != fp => events.push(
                Event::user_credential_changed(&origin, user, None, true, None)
                    .detail("source", "credential_store"),
            ),
            Some(_) => {}
        }
    }
    for user in old.keys() {
        if !new.contains_key(user) {
            events.push(Event::user_removed(&origin, user).detail("source", "credential_store"));
        }
    }
    events
}

/// Audits every change of the credential store until `shutdown`.
pub async fn credentials(
    audit: Audit,
    metrics: Arc<Metrics>,
    credentials: SharedCredentials,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rx = credentials.subscribe();
    let mut known = rx.borrow_and_update().clone();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
        let now = rx.borrow_and_update().clone();
        metrics.reload("credentials", true);
        for event in credential_events(&known, &now) {
            audit.record(event);
        }
        known = now;
    }
}

/// Certificates and CRLs expiring within this many days are warned about, daily.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// One listener's TLS reloader and the counters last seen.
pub struct TlsWatch {
    pub listener: String,
    pub reloader: Arc<TlsReloader>,
    generation: u64,
    failures: u64,
    /// When expiries are next published and warned about.
    next_expiry_check: Option<std::time::Instant>,
}

impl TlsWatch {
    pub fn new(listener: String, reloader: Arc<TlsReloader>) -> Self {
        TlsWatch {
            generation: reloader.generation(),
            failures: reloader.failures(),
            listener,
            reloader,
            next_expiry_check: None,
        }
    }

    /// Sets the expiry gauges and warns about what expires soon: at start, after each reload,
    /// then once a day (material that was valid when loaded expires while it serves).
    fn check_expiries(&mut self, metrics: &Metrics) {
        let now = std::time::Instant::now();
        if self.next_expiry_check.is_some_and(|at| now < at) {
            return;
        }
        self.next_expiry_check = Some(now + Duration::from_secs(24 * 3600));
        let unix = crate::tls::material::now_unix();
        let expiries = self.reloader.expiries();
        let mut soonest: Vec<(crate::tls::ExpiryKind, i64)> = Vec::new();
        for e in &expiries {
            match soonest.iter_mut().find(|(k, _)| *k == e.kind) {
                Some((_, t)) => *t = (*t).min(e.not_after),
                None => soonest.push((e.kind, e.not_after)),
            }
            let days = e.days_left(unix);
            if days < 0 {
                tracing::error!(listener = %self.listener, kind = e.kind.as_str(), file = %e.path.display(), subject = %e.subject, "TLS material in use has expired: replace the file (it is reloaded)");
            } else if days < EXPIRY_WARNING_DAYS {
                tracing::warn!(listener = %self.listener, kind = e.kind.as_str(), file = %e.path.display(), subject = %e.subject, days_left = days, "TLS material expires soon: replace the file (it is reloaded)");
            }
        }
        for (kind, not_after) in soonest {
            metrics
                .tls_expiry
                .with(&[&self.listener, kind.as_str()])
                .set(not_after);
        }
    }

    fn poll(&mut self, audit: &Audit, metrics: &Metrics) {
        let (generation, failures) = (self.reloader.generation(), self.reloader.failures());
        if generation != self.generation {
            // New material: its expiries are published and checked below, not in a day.
            self.next_expiry_check = None;
            self.generation = generation;
            metrics.reload("tls", true);
            audit.record(Event::certificate_reload(
                &self.listener,
                true,
                generation,
                None,
            ));
        }
        if failures != self.failures {
            self.failures = failures;
            metrics.reload("tls", false);
            let error = self.reloader.last_error();
            audit.record(Event::certificate_reload(
                &self.listener,
                false,
                generation,
                error.as_deref(),
            ));
        }
        self.check_expiries(metrics);
    }
}

/// The policy authorizer and what was last seen of it.
pub struct PolicyWatch {
    authorizer: Arc<crate::authz::Authorizer>,
    generation: u64,
    last_error: Option<String>,
}

impl PolicyWatch {
    /// Audits the generation being served now as loaded, then watches for changes.
    pub fn new(
        authorizer: Arc<crate::authz::Authorizer>,
        audit: &Audit,
        metrics: &Metrics,
    ) -> Self {
        let mut w = PolicyWatch {
            generation: 0,
            last_error: None,
            authorizer,
        };
        w.poll(audit, metrics);
        w
    }

    fn poll(&mut self, audit: &Audit, metrics: &Metrics) {
        let current = self.authorizer.current();
        if current.number() != self.generation {
            self.generation = current.number();
            metrics.reload("policies", true);
            audit.record(Event::policy_loaded(
                &current.dir().display().to_string(),
                current.number(),
                current.digest(),
                current.policy_count(),
            ));
        }
        let error = self.authorizer.last_error().map(|diagnostics| {
            diagnostics
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        });
        if error.is_some() && error != self.last_error {
            metrics.reload("policies", false);
            let dir = current.dir();
            audit.record(Event::policy_rejected(
                &dir.display().to_string(),
                current.number(),
                &crate::authz::load::content_digest(dir),
                error.as_deref().unwrap_or_default(),
            ));
        }
        self.last_error = error;
    }
}

/// Polls TLS reloaders and the policy authorizer until `shutdown`.
pub async fn reloads(
    audit: Audit,
    metrics: Arc<Metrics>,
    mut tls: Vec<TlsWatch>,
    mut policy: Option<PolicyWatch>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        for t in &mut tls {
            t.poll(&audit, &metrics);
        }
        if let Some(p) = &mut policy {
            p.poll(&audit, &metrics);
        }
    }
}
