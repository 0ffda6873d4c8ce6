//! A produce as a backend receives it: the batches every layer in front has passed (and the
//! plugins may have replaced), in two phases, because appends must keep the connection's
//! request order while acknowledgements may complete later and in parallel.
//!
//! [`Backend::produce`](super::Backend::produce) is called in the connection's append order
//! (`api::produce::order`); its future completes once the batches are handed over in that order
//! (appended to the local log, or written to the upstream connection), and yields a
//! [`ProduceAck`] that completes once they are as durable as `acks` asks (the local group
//! commit, or the upstream's own acknowledgement).

use bytes::Bytes;
use futures::future::BoxFuture;
use kafka_protocol::messages::{ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::BackendError;
use crate::records::BatchHeader;

/// The batches of one Produce request that passed the layers in front.
#[derive(Debug)]
pub struct ProduceBatches {
    pub acks: i16,
    pub timeout_ms: i32,
    pub transactional_id: Option<StrBytes>,
    pub topics: Vec<TopicBatches>,
}

/// One topic's batches.
#[derive(Debug)]
pub struct TopicBatches {
    pub name: TopicName,
    pub partitions: Vec<PartitionBatch>,
}

/// One partition's record batch.
#[derive(Debug)]
pub struct PartitionBatch {
    pub index: i32,
    /// The records to store: as received, or as the topic's plugins replaced them.
    pub records: Bytes,
    /// The header of the batch as received, when the layers in front already validated it
    /// (a topic with plugins decodes its batches): a backend that needs a validated batch
    /// does not validate it again. `None`: the bytes were passed through unread.
    pub validated: Option<BatchHeader>,
}

/// The backend's answer for the partitions it was given, once `acks` is satisfied. Partitions
/// the layers refused are not in it; `api::produce` merges them back. For acks = 0 it is
/// empty.
pub type ProduceAck = BoxFuture<'static, Result<ProduceResponse, BackendError>>;

impl ProduceBatches {
    /// How many partitions carry a batch.
    pub fn partition_count(&self) -> usize {
        self.topics.iter().map(|t| t.partitions.len()).sum()
    }
}
