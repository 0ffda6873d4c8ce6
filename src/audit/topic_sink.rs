//! The local topic sink (broker mode): every audit line (with its `seq` and `prev`) is also
//! appended to the internal topic [`AUDIT_TOPIC`], written by the broker through the storage
//! layer, never through Produce (gateway mode writes it to the upstream instead:
//! [`super::upstream_sink`]). The topic has one partition (one total order, as the chain), compaction
//! off and a long retention; Kafka clients may read it where Cedar permits, and no client can
//! produce to it, delete it, trim it or change its configs (see [`super::protect`]).

use std::sync::Arc;

use super::{batch, AuditError, AUDIT_TOPIC};
use crate::storage::{
    AppendBatch, Durability, LogManager, Partition, ProducerInfo, StorageError, TopicConfig,
};

pub struct TopicSink {
    partition: Arc<Partition>,
}

fn storage(e: StorageError) -> AuditError {
    AuditError::Topic(e.to_string())
}

impl TopicSink {
    /// Creates the audit topic (or checks the existing one): one partition, `cleanup.policy`
    /// delete, and a retention of at least `retention_ms` (-1 = forever). An existing topic
    /// whose retention was shortened on disk gets the configured retention back.
    pub fn open(
        logs: &LogManager,
        defaults: &TopicConfig,
        retention_ms: i64,
    ) -> Result<Self, AuditError> {
        let topic = match logs.topic(AUDIT_TOPIC) {
            Some(t) => {
                let mut config = t.config();
                // -1 (forever) is the longest retention of all.
                let short = config.retention_ms != -1
                    && (retention_ms == -1 || config.retention_ms < retention_ms);
                if short || config.cleanup_policy != "delete" || config.retention_bytes != -1 {
                    config.retention_ms = retention_ms;
                    config.retention_bytes = -1;
                    config.cleanup_policy = "delete".into();
                    logs.alter_topic_config(AUDIT_TOPIC, config)
                        .map_err(storage)?;
                    tracing::warn!(
                        topic = AUDIT_TOPIC,
                        retention_ms,
                        "audit topic config restored"
                    );
                }
                t
            }
            None => {
                let mut config = defaults.clone();
                config.retention_ms = retention_ms;
                config.retention_bytes = -1;
                config.cleanup_policy = "delete".into();
                config.message_timestamp_type = "LogAppendTime".into();
                let t = logs.create_topic(AUDIT_TOPIC, 1, config).map_err(storage)?;
                tracing::info!(topic = AUDIT_TOPIC, retention_ms, "created the audit topic");
                t
            }
        };
        let partition = topic
            .partition(0)
            .ok_or_else(|| AuditError::Topic(format!("`{AUDIT_TOPIC}` has no partition 0")))?;
        Ok(TopicSink { partition })
    }

    /// Appends `lines` as record batches (written to the page cache; the storage flusher
    /// makes them durable on its interval).
    pub fn write(&self, lines: &[String]) -> Result<(), AuditError> {
        for run in batch::runs(lines, batch::MAX_BATCH_BYTES) {
            self.append(run)?;
        }
        Ok(())
    }

    fn append(&self, lines: &[String]) -> Result<(), AuditError> {
        let now = batch::now_ms();
        let bytes = batch::encode(lines, batch::Producer::NONE, now)?;
        let count = i32::try_from(lines.len()).unwrap_or(i32::MAX);
        let appended = AppendBatch {
            bytes,
            record_count: count,
            max_timestamp: now,
            producer: ProducerInfo {
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                record_count: count,
            },
        };
        self.partition
            .append_now(appended, Durability::Written)
            .map(drop)
            .map_err(storage)
    }
}
