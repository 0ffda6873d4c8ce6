//! The upstream topic sink (gateway mode): the audit topic [`AUDIT_TOPIC`] lives on the
//! upstream cluster, written by the gateway as its service account, with acks=all, as an
//! idempotent producer (see [`super::upstream_topic`]). Clients reach it only through the
//! gateway, where it stays read-only to every one of them ([`super::protect`]).
//!
//! The audit writer hands lines over without waiting ([`UpstreamSink::write`] queues them in
//! a bounded [`Backlog`]); a thread of its own (`audit-upstream`, with a small runtime) writes
//! them in order, one batch at a time, retrying with a backoff (100 ms doubling to 2 s) while
//! the upstream cannot be written. A batch is retried as the same producer and sequence until
//! the upstream acknowledges it, so it is written once. Past the backlog's bounds the oldest
//! lines are dropped, counted in `palisade_audit_topic_dropped_total` and logged: the
//! hash-chained file stays the complete record. A clean shutdown keeps writing for at most
//! `audit.upstream_flush_ms`, then counts what is left the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use super::backlog::Backlog;
use super::batch::MAX_BATCH_BYTES;
use super::settings::AuditSection;
use super::upstream_topic::{Failure, Pending, UpstreamTopic};
use super::upstream_topic_setup::Wanted;
use super::{AuditError, AUDIT_TOPIC};
use crate::metrics::Metrics;
use crate::upstream::UpstreamCluster;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// While the upstream stays unwritable, a warning at most this often (the rest at debug).
const WARN_EVERY: Duration = Duration::from_secs(30);
/// Failures in a row logged at debug only before the first warning.
const QUIET_FAILURES: u32 = 3;

/// Between the audit writer and the `audit-upstream` thread.
struct Control {
    /// Lines were queued.
    wake: Notify,
    /// Set once by [`UpstreamSink::close`].
    closing: watch::Sender<bool>,
}

pub struct UpstreamSink {
    backlog: Arc<Backlog>,
    control: Arc<Control>,
    thread: Option<std::thread::JoinHandle<()>>,
    metrics: Arc<Metrics>,
    /// Whether the audit file holds every line (said in the drop warning).
    file_on: bool,
    last_drop_log: Option<Instant>,
}

impl UpstreamSink {
    /// Starts the `audit-upstream` thread writing to `cluster`. Nothing is dialled here: the
    /// topic is created or checked, and its leader found, by that thread, which keeps trying
    /// while the upstream is unreachable.
    pub fn start(
        cluster: Arc<UpstreamCluster>,
        settings: &AuditSection,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuditError> {
        let failed = |e: std::io::Error| {
            AuditError::Topic(format!("cannot start the upstream audit writer: {e}"))
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(failed)?;
        let backlog = Arc::new(Backlog::new(
            settings.upstream_backlog_events,
            usize::try_from(settings.upstream_backlog_bytes).unwrap_or(usize::MAX),
        ));
        let (closing, closing_seen) = watch::channel(false);
        let control = Arc::new(Control {
            wake: Notify::new(),
            closing,
        });
        let shipper = Shipper {
            topic: UpstreamTopic::new(
                cluster,
                Wanted {
                    replication_factor: settings.upstream_replication_factor,
                    retention_ms: settings.topic_retention_ms,
                },
            ),
            backlog: Arc::clone(&backlog),
            control: Arc::clone(&control),
            metrics: Arc::clone(&metrics),
            pending: None,
            failures: 0,
            last_warn: None,
        };
        let flush = Duration::from_millis(settings.upstream_flush_ms);
        let thread = std::thread::Builder::new()
            .name("audit-upstream".into())
            .spawn(move || shipper.run(runtime, closing_seen, flush))
            .map_err(failed)?;
        Ok(UpstreamSink {
            backlog,
            control,
            thread: Some(thread),
            metrics,
            file_on: settings.file,
            last_drop_log: None,
        })
    }

    /// Queues `lines` for the upstream topic; never waits. They are counted in
    /// `palisade_audit_events_total{sink="topic"}` once the upstream acknowledges them.
    pub fn write(&mut self, lines: Vec<String>) {
        let dropped = self.backlog.push(lines.into_iter().map(Bytes::from));
        self.metrics
            .audit_topic_backlog
            .with(&[])
            .set(i64::try_from(self.backlog.len()).unwrap_or(i64::MAX));
        self.control.wake.notify_one();
        if dropped == 0 {
            return;
        }
        self.metrics.audit_topic_dropped.with(&[]).add(dropped);
        if self
            .last_drop_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last_drop_log = Some(Instant::now());
            tracing::warn!(
                topic = AUDIT_TOPIC,
                dropped,
                dropped_total = self.metrics.audit_topic_dropped.with(&[]).get(),
                "the audit backlog for the upstream topic is full: its oldest lines were dropped \
                 from the topic's copy ({})",
                if self.file_on {
                    "the audit file keeps every line"
                } else {
                    "the audit file is off: these events are lost"
                }
            );
        }
    }

    /// Lines waiting to be sent.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Writes what it can within `audit.upstream_flush_ms`, then stops the thread.
    pub fn close(&mut self) {
        self.control.closing.send_replace(true);
        self.control.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the upstream audit writer thread panicked");
            }
        }
    }
}

impl Drop for UpstreamSink {
    /// Without [`UpstreamSink::close`] the thread still stops after its flush deadline.
    fn drop(&mut self) {
        self.control.closing.send_replace(true);
        self.control.wake.notify_one();
    }
}

/// The `audit-upstream` thread's state.
struct Shipper {
    topic: UpstreamTopic,
    backlog: Arc<Backlog>,
    control: Arc<Control>,
    metrics: Arc<Metrics>,
    /// The batch being written: taken from the backlog, kept until acknowledged.
    pending: Option<Pending>,
    /// Failures in a row.
    failures: u32,
    last_warn: Option<Instant>,
}

impl Shipper {
    fn run(
        mut self,
        runtime: tokio::runtime::Runtime,
        closing: watch::Receiver<bool>,
        flush: Duration,
    ) {
        let mut deadline = closing.clone();
        runtime.block_on(async {
            tokio::select! {
                () = self.ship(closing) => {}
                () = async {
                    // Closed, or the sink dropped: either way the flush time starts now.
                    let _ = deadline.wait_for(|closing| *closing).await;
                    tokio::time::sleep(flush).await;
                } => {}
            }
        });
        let left = self.pending.take().map_or(0, |p| p.lines.len()) + self.backlog.clear();
        self.metrics.audit_topic_backlog.with(&[]).set(0);
        if left > 0 {
            self.metrics
                .audit_topic_dropped
                .with(&[])
                .add(u64::try_from(left).unwrap_or(u64::MAX));
            tracing::warn!(
                topic = AUDIT_TOPIC,
                left,
                "shutdown: audit lines not written to the upstream topic within \
                 audit.upstream_flush_ms (the audit file keeps them)"
            );
        }
    }

    /// Writes batches until closing with nothing left.
    async fn ship(&mut self, mut closing: watch::Receiver<bool>) {
        loop {
            if self.pending.is_none() && self.backlog.is_empty() {
                // The sender gone counts as closing.
                if *closing.borrow() || closing.has_changed().is_err() {
                    return;
                }
                tokio::select! {
                    () = self.control.wake.notified() => {}
                    _ = closing.changed() => {}
                }
                continue;
            }
            // Lines leave the backlog only once they can be sent: while the upstream is down
            // the backlog alone holds them, and its bound alone decides what is dropped.
            if let Err(failure) = self.topic.prepare().await {
                self.failed(failure).await;
                continue;
            }
            if self.pending.is_none() {
                let lines = self.backlog.take(MAX_BATCH_BYTES);
                self.metrics
                    .audit_topic_backlog
                    .with(&[])
                    .set(i64::try_from(self.backlog.len()).unwrap_or(i64::MAX));
                if lines.is_empty() {
                    continue;
                }
                self.pending = Some(Pending::new(lines));
            }
            let Some(pending) = self.pending.as_mut() else {
                continue;
            };
            match self.topic.produce(pending).await {
                Ok(()) => {
                    let written = pending.lines.len() as u64;
                    self.pending = None;
                    self.metrics.audit_events.with(&["topic"]).add(written);
                    if self.failures >= QUIET_FAILURES {
                        tracing::info!(
                            topic = AUDIT_TOPIC,
                            failures = self.failures,
                            "writing the audit topic on the upstream again"
                        );
                    }
                    self.failures = 0;
                    self.last_warn = None;
                }
                Err(failure) => self.failed(failure).await,
            }
        }
    }

    async fn failed(&mut self, failure: Failure) {
        match failure {
            Failure::Refused(reason) => {
                let lines = self.pending.take().map_or(0, |p| p.lines.len());
                self.metrics.audit_topic_dropped.with(&[]).add(lines as u64);
                tracing::error!(
                    topic = AUDIT_TOPIC,
                    lines,
                    "the upstream refused a batch of audit lines for good; dropped from the \
                     topic's copy (the audit file keeps them): {reason}"
                );
            }
            Failure::Retry { reason, stale } => {
                if stale {
                    self.topic.reset();
                }
                self.failures = self.failures.saturating_add(1);
                let waiting =
                    self.backlog.len() + self.pending.as_ref().map_or(0, |p| p.lines.len());
                // A broker still starting answers a moment of retriable errors: warn from the
                // third failure in a row (about 300 ms), then every WARN_EVERY.
                if self.failures >= QUIET_FAILURES
                    && self.last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY)
                {
                    self.last_warn = Some(Instant::now());
                    tracing::warn!(
                        topic = AUDIT_TOPIC,
                        failures = self.failures,
                        waiting,
                        "cannot write the audit topic on the upstream yet, retrying: {reason}"
                    );
                } else {
                    tracing::debug!(
                        topic = AUDIT_TOPIC,
                        failures = self.failures,
                        waiting,
                        "audit topic on the upstream: {reason}"
                    );
                }
                tokio::time::sleep(backoff(self.failures)).await;
            }
        }
    }
}

/// 100 ms after the first failure, doubling, at most 2 s.
fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(1u32 << shift).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::ConnectOptions;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), 2 * FIRST_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    /// With nothing listening upstream, lines stay in the backlog (none is taken into a
    /// batch), the bound drops the oldest and counts them, and a shutdown gives up at its
    /// deadline and counts what was left.
    #[test]
    fn an_unreachable_upstream_keeps_the_newest_lines_and_counts_the_rest() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Arc::new(UpstreamCluster::new(
            vec![format!("127.0.0.1:{port}")],
            ConnectOptions::plaintext(),
            Duration::from_secs(30),
        ));
        let settings = AuditSection {
            upstream_backlog_events: 5,
            upstream_flush_ms: 200,
            ..AuditSection::default()
        };
        let metrics = Arc::new(Metrics::new());
        let mut sink = UpstreamSink::start(cluster, &settings, metrics.clone()).unwrap();
        for i in 0..4 {
            sink.write((0..5).map(|j| format!("line {i}-{j}")).collect());
        }
        assert_eq!(sink.backlog(), 5);
        assert_eq!(metrics.audit_topic_dropped.with(&[]).get(), 15);
        sink.close();
        assert_eq!(metrics.audit_topic_dropped.with(&[]).get(), 20);
        assert_eq!(metrics.audit_events.with(&["topic"]).get(), 0);
    }
}
