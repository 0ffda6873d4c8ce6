//! Where the audit topic is written: the local log in broker mode ([`TopicSink`]), the
//! upstream cluster in gateway mode ([`UpstreamSink`]). The chain, the file and the rules
//! about who may read or change the topic are the same either way.

use std::sync::Arc;

use super::settings::AuditSection;
use super::topic_sink::TopicSink;
use super::upstream_sink::UpstreamSink;
use super::AuditError;
use crate::metrics::Metrics;
use crate::storage::{LogManager, TopicConfig};
use crate::upstream::UpstreamCluster;

/// Where [`super::Audit`] keeps the audit topic.
pub enum TopicAt<'a> {
    /// Broker mode: in the local log, created with `defaults` and the audit retention.
    Local {
        logs: &'a LogManager,
        defaults: &'a TopicConfig,
    },
    /// Gateway mode: on the upstream cluster, written as its service account.
    Upstream(Arc<UpstreamCluster>),
}

/// The opened topic sink.
pub(super) enum TopicTarget {
    Local(TopicSink),
    Upstream(UpstreamSink),
}

impl TopicTarget {
    pub(super) fn open(
        at: TopicAt<'_>,
        settings: &AuditSection,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, AuditError> {
        Ok(match at {
            TopicAt::Local { logs, defaults } => TopicTarget::Local(TopicSink::open(
                logs,
                defaults,
                settings.topic_retention_ms,
            )?),
            TopicAt::Upstream(cluster) => {
                TopicTarget::Upstream(UpstreamSink::start(cluster, settings, metrics.clone())?)
            }
        })
    }

    /// Hands `lines` over. The local topic appends them now (counted here; a failure loses
    /// them from the topic, loudly); the upstream one queues them and counts them once the
    /// upstream acknowledged them.
    pub(super) fn write(&mut self, lines: Vec<String>, metrics: &Metrics) {
        match self {
            TopicTarget::Local(sink) => {
                let n = lines.len() as u64;
                match sink.write(&lines) {
                    Ok(()) => metrics.audit_events.with(&["topic"]).add(n),
                    Err(e) => {
                        metrics.audit_lost.with(&[]).add(n);
                        tracing::error!(
                            lost = n,
                            "AUDIT EVENTS LOST: writing the audit topic failed: {e}"
                        );
                    }
                }
            }
            TopicTarget::Upstream(sink) => sink.write(lines),
        }
    }

    /// The upstream sink writes its backlog within its flush deadline; the local one has
    /// nothing to do (the log's shutdown flushes it).
    pub(super) fn close(&mut self) {
        if let TopicTarget::Upstream(sink) = self {
            sink.close();
        }
    }
}
