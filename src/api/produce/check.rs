//! A produce's checks in front of the backend, on the connection's task and in request order:
//! authorization (Write before existence, so a denied principal cannot probe for topics), the
//! topic (auto-created when allowed and the backend knows it is missing), acks, and, for a
//! topic with produce plugins, the batch itself (CRC, one batch per partition, bounded
//! decompression), which the plugins must read. A topic without plugins passes its batches on
//! unread; what belongs to the log (partition, `max.message.bytes`, validation) is the
//! backend's to check. Each topic also gets its produce chain here, once.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::TopicName;

use super::plugins::Chain;
use super::Refusal;
use crate::api::access::Access;
use crate::api::topics;
use crate::authz::Action;
use crate::broker::Broker;
use crate::records::{single_batch, ValidatedBatch};

/// A partition's records that passed every check in front, ready for the plugins and the
/// backend.
pub(super) struct Accepted {
    pub(super) records: Bytes,
    /// The batch, validated: only for a topic with plugins (they read it).
    pub(super) batch: Option<ValidatedBatch>,
}

/// One topic of a request after the checks.
pub(super) struct CheckedTopic {
    pub(super) name: TopicName,
    /// The topic's produce chain as of the check (empty: no plugin sees its batches).
    pub(super) chain: Chain,
    pub(super) partitions: Vec<(i32, Result<Accepted, Refusal>)>,
}

/// Refusals that apply to every partition of the request, decided once.
#[derive(Clone, Copy)]
pub(super) struct RequestRefusal(pub(super) Option<ResponseError>);

pub(super) async fn check_topic(
    broker: &Broker,
    access: &Access<'_>,
    t: TopicProduceData,
    whole_request: RequestRefusal,
    chain: Chain,
) -> CheckedTopic {
    let name = t.name.0.to_string();
    // Write is decided before existence, so a denied principal cannot probe for topics (and
    // no client, super users included, writes the audit topic: see `access`).
    let topic = if !access.topic(Action::Write, &name) {
        Err(ResponseError::TopicAuthorizationFailed)
    } else {
        match broker.backend.has_topic(&name) {
            Some(false) => match topics::auto_create(broker, access, &name).await {
                Ok(()) => Ok(()),
                Err(e) => Err(e),
            },
            // Present, or only the upstream can tell: it answers for the partitions.
            Some(true) | None => Ok(()),
        }
    };
    let validate = !chain.is_empty();
    let partitions = t
        .partition_data
        .into_iter()
        .map(|p| {
            let index = p.index;
            let checked = match (topic, whole_request.0) {
                (Err(e), _) | (Ok(()), Some(e)) => Err((e, None).into()),
                (Ok(()), None) => accept(broker, p, validate),
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

fn accept(broker: &Broker, p: PartitionProduceData, validate: bool) -> Result<Accepted, Refusal> {
    let records = p
        .records
        .ok_or((ResponseError::InvalidRecord, Some("no records".to_string())))?;
    let batch = if validate {
        let batch = single_batch(&records, broker.config.limits.max_decompressed_batch_bytes)
            .map_err(|r| Refusal::from((r.code, Some(r.message))))?;
        Some(batch)
    } else {
        None
    };
    Ok(Accepted { records, batch })
}
