//! A produce's checks, on the connection's task and in request order: authorization (Write
//! before existence, so a denied principal cannot probe for topics), the topic (auto-created
//! when allowed), the partition, acks, and the batch itself (size, CRC, one batch per
//! partition, bounded decompression). Each topic also gets its produce chain here, once.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::TopicName;

use super::plugins::Chain;
use super::Refusal;
use crate::api::access::Access;
use crate::api::topics;
use crate::authz::Action;
use crate::broker::Broker;
use crate::records::{self, RecordError, ValidatedBatch};
use crate::storage::{Durability, Partition, Topic};

/// A partition's batch that passed every check, ready for its topic's plugins and the log.
pub(super) struct Checked {
    pub(super) partition: Arc<Partition>,
    pub(super) batch: ValidatedBatch,
    pub(super) durability: Durability,
    /// The size of the records as received, for the bytes-in metric.
    pub(super) received: u64,
}

/// One topic of a request after the checks.
pub(super) struct CheckedTopic {
    pub(super) name: TopicName,
    /// The topic's produce chain as of the check (empty: no plugin sees its batches).
    pub(super) chain: Chain,
    pub(super) partitions: Vec<(i32, Result<Checked, Refusal>)>,
}

pub(super) async fn check_topic(
    broker: &Broker,
    access: &Access<'_>,
    t: TopicProduceData,
    durability: Result<Durability, ResponseError>,
    transactional: bool,
    chain: Chain,
) -> CheckedTopic {
    let name = t.name.0.to_string();
    // Write is decided before existence, so a denied principal cannot probe for topics (and
    // no client, super users included, writes the audit topic: see `access`).
    let topic = if !access.topic(Action::Write, &name) {
        Err(ResponseError::TopicAuthorizationFailed)
    } else {
        match broker.logs.topic(&name) {
            Some(topic) => Ok(topic),
            None => match topics::auto_create(broker, access, &name).await {
                Ok(()) => broker
                    .logs
                    .topic(&name)
                    .ok_or(ResponseError::UnknownTopicOrPartition),
                Err(e) => Err(e),
            },
        }
    };
    let partitions = t
        .partition_data
        .into_iter()
        .map(|p| {
            let index = p.index;
            let checked = match (&topic, durability) {
                (Err(e), _) => Err((*e, None).into()),
                (_, Err(e)) => Err((e, None).into()),
                (Ok(_), Ok(_)) if transactional => Err((
                    ResponseError::TransactionalIdAuthorizationFailed,
                    Some("transactions are not supported".to_string()),
                )
                    .into()),
                (Ok(topic), Ok(durability)) => check_partition(broker, topic, p, durability),
            };
            (index, checked)
        })
        .collect();
    CheckedTopic {
        name: t.name,
        chain,
        partitions,
    }
}

fn check_partition(
    broker: &Broker,
    topic: &Topic,
    p: PartitionProduceData,
    durability: Durability,
) -> Result<Checked, Refusal> {
    let partition = topic
        .partition(p.index)
        .ok_or((ResponseError::UnknownTopicOrPartition, None))?;
    let max_message_bytes = topic.config().max_message_bytes;
    let records = p
        .records
        .ok_or((ResponseError::InvalidRecord, Some("no records".to_string())))?;
    if i32::try_from(records.len()).map_or(true, |n| n > max_message_bytes) {
        return Err((
            ResponseError::MessageTooLarge,
            Some(format!(
                "batch of {} bytes exceeds max.message.bytes {max_message_bytes}",
                records.len()
            )),
        )
            .into());
    }
    let mut batches =
        records::validate_batches(&records, broker.config.limits.max_decompressed_batch_bytes)
            .map_err(|e| (record_error(&e), Some(e.to_string())))?;
    // Produce v3+ carries exactly one batch per partition (as Kafka enforces).
    let batch = match (batches.pop(), batches.is_empty()) {
        (Some(b), true) => b,
        _ => {
            return Err((
                ResponseError::InvalidRecord,
                Some(
                    "a produce request must carry exactly one record batch per partition"
                        .to_string(),
                ),
            )
                .into())
        }
    };
    if batch.header.is_transactional() || batch.header.is_control() {
        return Err((
            ResponseError::InvalidRecord,
            Some("transactional and control batches are not supported".to_string()),
        )
            .into());
    }
    Ok(Checked {
        partition,
        batch,
        durability,
        received: records.len() as u64,
    })
}

fn record_error(e: &RecordError) -> ResponseError {
    match e {
        RecordError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        RecordError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
        RecordError::DecompressionLimit(_) => ResponseError::MessageTooLarge,
        RecordError::Malformed(_) => ResponseError::InvalidRecord,
        RecordError::Truncated(_) | RecordError::CrcMismatch { .. } | RecordError::Corrupt(_) => {
            ResponseError::CorruptMessage
        }
    }
}
