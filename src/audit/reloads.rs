//! Events the broker notices by itself rather than in a request: changes of the credential
//! store (whoever made them: `palisade user` editing the file, or AlterUserScramCredentials),
//! TLS material reloaded or refused, and policy generations loaded or refused.
//!
//! Nothing is polled: policies and TLS material tell their observers from inside
//! [`crate::reload::run`], at the moment of the swap or refusal and in that order; the
//! credential store publishes each change on its change channel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::event::{Event, Origin};
use super::handle::Audit;
use crate::authz::Authorizer;
use crate::metrics::Metrics;
use crate::reload::{Change, Outcome, Problem};
use crate::sasl::shared::Fingerprints;
use crate::sasl::SharedCredentials;
use crate::tls::TlsReloader;

/// Certificates and CRLs expiring within this many days are warned about, daily.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// How often the expiry of the TLS material serving is checked again (material that was
/// valid when loaded expires while it serves).
pub const EXPIRY_CHECK: Duration = Duration::from_secs(24 * 3600);

/// Audits the policy generation serving now as loaded, then every later generation loaded or
/// refused (by the watcher or by an ACL change).
pub fn policies(authorizer: &Arc<Authorizer>, audit: &Audit, metrics: &Arc<Metrics>) {
    let loaded = |authorizer: &Authorizer, audit: &Audit| {
        let current = authorizer.current();
        audit.record(Event::policy_loaded(
            &current.dir().display().to_string(),
            current.number(),
            current.digest(),
            current.policy_count(),
        ));
    };
    metrics.reload("policies", true);
    loaded(authorizer, audit);
    let (audit, metrics) = (audit.clone(), metrics.clone());
    // Weak: the authorizer owns its observers.
    let weak = Arc::downgrade(authorizer);
    authorizer.observe(Arc::new(move |outcome: &Outcome| {
        let Some(authorizer) = weak.upgrade() else {
            return;
        };
        match &outcome.change {
            Change::Reloaded => {
                metrics.reload("policies", true);
                loaded(&authorizer, &audit);
            }
            Change::Kept(problems) => {
                metrics.reload("policies", false);
                let current = authorizer.current();
                let dir = current.dir();
                audit.record(Event::policy_rejected(
                    &dir.display().to_string(),
                    outcome.generation,
                    &crate::authz::load::content_digest(dir),
                    &Problem::join(problems),
                ));
            }
        }
    }));
}

/// Audits every swap and refusal of `listener`'s TLS material, and publishes and checks the
/// expiry of what serves: now and after each swap.
pub fn tls(listener: &str, reloader: &Arc<TlsReloader>, audit: &Audit, metrics: &Arc<Metrics>) {
    check_expiries(listener, reloader, metrics);
    let (audit, metrics) = (audit.clone(), metrics.clone());
    let listener = listener.to_string();
    // Weak: the reloader owns its observers.
    let weak = Arc::downgrade(reloader);
    reloader.observe(Arc::new(move |outcome: &Outcome| match &outcome.change {
        Change::Reloaded => {
            metrics.reload("tls", true);
            audit.record(Event::certificate_reload(
                &listener,
                true,
                outcome.generation,
                None,
            ));
            // New material: its expiries are published and checked now, not in a day.
            if let Some(reloader) = weak.upgrade() {
                check_expiries(&listener, &reloader, &metrics);
            }
        }
        Change::Kept(problems) => {
            metrics.reload("tls", false);
            audit.record(Event::certificate_reload(
                &listener,
                false,
                outcome.generation,
                Some(&Problem::join(problems)),
            ));
        }
    }));
}

/// Checks the expiry of every listener's material each [`EXPIRY_CHECK`] until `shutdown`.
pub async fn tls_expiries(
    listeners: Vec<(String, Arc<TlsReloader>)>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(EXPIRY_CHECK);
    // The first tick is immediate: [`tls`] checked at start already.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        for (listener, reloader) in &listeners {
            check_expiries(listener, reloader, &metrics);
        }
    }
}

/// Sets the expiry gauges and warns about what expires soon.
fn check_expiries(listener: &str, reloader: &TlsReloader, metrics: &Metrics) {
    let unix = crate::tls::material::now_unix();
    let expiries = reloader.expiries();
    let mut soonest: Vec<(crate::tls::ExpiryKind, i64)> = Vec::new();
    for e in &expiries {
        match soonest.iter_mut().find(|(k, _)| *k == e.kind) {
            Some((_, t)) => *t = (*t).min(e.not_after),
            None => soonest.push((e.kind, e.not_after)),
        }
        let days = e.days_left(unix);
        if days < 0 {
            tracing::error!(listener, kind = e.kind.as_str(), file = %e.path.display(), subject = %e.subject, "TLS material in use has expired: replace the file (it is reloaded)");
        } else if days < EXPIRY_WARNING_DAYS {
            tracing::warn!(listener, kind = e.kind.as_str(), file = %e.path.display(), subject = %e.subject, days_left = days, "TLS material expires soon: replace the file (it is reloaded)");
        }
    }
    for (kind, not_after) in soonest {
        metrics
            .tls_expiry
            .with(&[listener, kind.as_str()])
            .set(not_after);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditSection;

    const SCHEMA: &str = include_str!("../../policies/schema.cedarschema");

    /// Every event type written to the audit file, in order.
    fn trail(dir: &std::path::Path) -> Vec<serde_json::Value> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_refusal_and_the_repair_right_after_it_are_both_audited_in_order() {
        let data = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("schema.cedarschema"), SCHEMA).unwrap();
        std::fs::write(
            folder.path().join("a.cedar"),
            "permit(principal, action, resource);",
        )
        .unwrap();
        let authorizer = Arc::new(Authorizer::load(folder.path(), Vec::<String>::new()).unwrap());
        let logs =
            crate::storage::LogManager::open(crate::storage::StorageConfig::new(data.path()))
                .unwrap();
        let settings = AuditSection {
            topic: false,
            fsync: false,
            ..AuditSection::default()
        };
        let metrics = Arc::new(Metrics::new());
        let audit = Audit::start(
            &settings,
            data.path(),
            &logs,
            &crate::storage::TopicConfig::default(),
            metrics.clone(),
        )
        .unwrap();
        policies(&authorizer, &audit, &metrics);
        let first = authorizer.generation();

        // Refused then repaired back to back: a poller would see only the repair.
        let broken = folder.path().join("b.cedar");
        std::fs::write(
            &broken,
            "permit(principal, action, resource)\n  when { oops };",
        )
        .unwrap();
        assert!(authorizer.reload().is_err());
        std::fs::remove_file(&broken).unwrap();
        let repaired = authorizer.reload().unwrap();
        audit.close();

        let events = trail(&settings.resolved_dir(data.path()));
        let seen: Vec<(&str, u64)> = events
            .iter()
            .map(|e| {
                (
                    e["event_type"].as_str().unwrap(),
                    e["policy_generation"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("policy_loaded", first),
                ("policy_rejected", first),
                ("policy_loaded", repaired),
            ]
        );
        let reason = events[1]["reason"].as_str().unwrap();
        assert!(reason.starts_with("b.cedar:2:"), "{reason}");
    }
}
