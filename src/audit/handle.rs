//! [`Audit`]: the handle every part of the broker records events through, and the writer
//! thread behind it that chains events and writes them to the file and topic sinks (the topic
//! in the local log, or on the upstream cluster in gateway mode).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::chain::{next_line, ChainHead};
use super::event::Event;
use super::file_sink::FileSink;
use super::queue::{Pushed, Queue};
use super::settings::{AuditSection, DataOperations};
use super::topic_target::{TopicAt, TopicTarget};
use super::AuditError;
use crate::metrics::Metrics;
use crate::storage::{LogManager, TopicConfig};
use crate::upstream::UpstreamCluster;

/// Cheap to clone; a disabled handle (no sink configured) records nothing.
#[derive(Clone, Default)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
    /// Decisions are counted even when no sink is configured.
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("enabled", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    queue: Arc<Queue>,
    pub(super) data_operations: DataOperations,
    full_wait: Duration,
    metrics: Arc<Metrics>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    last_loss_log: Mutex<Option<Instant>>,
}

struct Writer {
    queue: Arc<Queue>,
    head: ChainHead,
    file: Option<FileSink>,
    topic: Option<TopicTarget>,
    metrics: Arc<Metrics>,
}

impl Audit {
    /// A handle that records nothing (audit off, or tests that do not care).
    pub fn disabled() -> Self {
        Audit {
            inner: None,
            metrics: None,
        }
    }

    /// Broker mode: opens the sinks `settings` asks for and starts the writer thread. The
    /// audit topic is created in `logs` when the topic sink is on.
    pub fn start(
        settings: &AuditSection,
        data_dir: &std::path::Path,
        logs: &LogManager,
        topic_defaults: &TopicConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuditError> {
        let at = TopicAt::Local {
            logs,
            defaults: topic_defaults,
        };
        Self::start_at(settings, data_dir, at, metrics)
    }

    /// Gateway mode: as [`Audit::start`], with the audit topic on the upstream `cluster`,
    /// written as its service account (see [`super::upstream_sink`]). Returns without
    /// reaching the upstream: the topic is created or checked by the sink's own thread, which
    /// keeps trying while the upstream is unreachable. The file sink, when on, stays local.
    pub fn start_gateway(
        settings: &AuditSection,
        data_dir: &std::path::Path,
        cluster: Arc<UpstreamCluster>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuditError> {
        Self::start_at(settings, data_dir, TopicAt::Upstream(cluster), metrics)
    }

    fn start_at(
        settings: &AuditSection,
        data_dir: &std::path::Path,
        topic_at: TopicAt<'_>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuditError> {
        if !settings.file && !settings.topic {
            tracing::warn!("audit trail is off (`audit.file` and `audit.topic` are both false)");
            return Ok(Audit {
                inner: None,
                metrics: Some(metrics),
            });
        }
        let (file, head) = if settings.file {
            let dir = settings.resolved_dir(data_dir);
            let (sink, head) = FileSink::open(&dir, settings.rotate_bytes, settings.fsync)?;
            tracing::info!(file = %sink.path().display(), seq = head.seq, "audit trail file open");
            (Some(sink), head)
        } else {
            (None, ChainHead::genesis())
        };
        let topic = if settings.topic {
            Some(TopicTarget::open(topic_at, settings, &metrics)?)
        } else {
            None
        };
        let queue = Arc::new(Queue::new(settings.buffer_events));
        let writer = Writer {
            queue: queue.clone(),
            head,
            file,
            topic,
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| AuditError::Io {
                path: data_dir.to_path_buf(),
                source,
            })?;
        Ok(Audit {
            metrics: Some(metrics.clone()),
            inner: Some(Arc::new(Inner {
                queue,
                data_operations: settings.data_operations,
                full_wait: Duration::from_millis(settings.full_wait_ms),
                metrics,
                writer: Mutex::new(Some(thread)),
                last_loss_log: Mutex::new(None),
            })),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub(super) fn inner(&self) -> Option<&Inner> {
        self.inner.as_deref()
    }

    pub(super) fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_deref()
    }

    /// Queues `event` for both sinks. Returns at once unless the buffer is full; then it waits
    /// at most `audit.full_wait_ms` before counting the event as lost (see [`super::queue`]).
    pub fn record(&self, event: Event) {
        let Some(inner) = &self.inner else { return };
        match inner.queue.push(event, inner.full_wait) {
            Pushed::Queued => {}
            Pushed::QueuedAfterWait => inner.metrics.audit_backpressure.with(&[]).inc(),
            Pushed::Lost => {
                inner.metrics.audit_backpressure.with(&[]).inc();
                inner.metrics.audit_lost.with(&[]).inc();
                let mut last = inner.last_loss_log.lock();
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    *last = Some(Instant::now());
                    tracing::error!(
                        lost_total = inner.metrics.audit_lost.with(&[]).get(),
                        "AUDIT EVENTS LOST: the audit buffer stayed full (the writer is behind or failing); see palisade_audit_events_lost_total"
                    );
                }
            }
        }
    }

    /// Events waiting for the writer.
    pub fn queued(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.queue.len())
    }

    /// Stops accepting events, writes everything queued, syncs and waits for the writer (in
    /// gateway mode, at most `audit.upstream_flush_ms` more for the upstream topic).
    pub fn close(&self) {
        let Some(inner) = &self.inner else { return };
        inner.queue.close();
        if let Some(thread) = inner.writer.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Writer {
    fn run(mut self) {
        let mut batch = Vec::new();
        loop {
            batch.clear();
            let (lost, done) = self.queue.take(&mut batch);
            if done {
                break;
            }
            if lost > 0 {
                batch.push(Event::audit_events_lost(lost));
            }
            self.metrics
                .audit_queue
                .with(&[])
                .set(i64::try_from(self.queue.len()).unwrap_or(i64::MAX));
            let started = Instant::now();
            self.write(&batch);
            self.metrics
                .audit_write_latency
                .with(&[])
                .observe(started.elapsed());
        }
        if let Some(file) = &mut self.file {
            if let Err(e) = file.sync() {
                tracing::error!("audit file sync on shutdown failed: {e}");
            }
        }
        if let Some(topic) = &mut self.topic {
            topic.close();
        }
    }

    fn write(&mut self, batch: &[Event]) {
        let mut lines = Vec::with_capacity(batch.len());
        for event in batch {
            match next_line(&mut self.head, event) {
                Ok(line) => lines.push(line),
                Err(e) => tracing::error!("audit event not serializable (lost): {e}"),
            }
        }
        let n = lines.len() as u64;
        if let Some(file) = &mut self.file {
            match file.write(&lines) {
                Ok(()) => self.metrics.audit_events.with(&["file"]).add(n),
                Err(e) => {
                    self.metrics.audit_lost.with(&[]).add(n);
                    tracing::error!(
                        lost = n,
                        "AUDIT EVENTS LOST: writing the audit file failed: {e}"
                    );
                }
            }
        }
        if let Some(topic) = &mut self.topic {
            topic.write(lines, &self.metrics);
        }
    }
}
