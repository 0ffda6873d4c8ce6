//! The local backend (broker mode): requests are served from this node's partition logs and
//! its group coordinator.

mod cluster;
mod configs;
mod delete_records;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;
mod topics;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::{RequestKind, ResponseKind};

use super::produce::{ProduceAck, ProduceBatches};
use super::{Backend, BackendError, Call};
use crate::group::GroupCoordinator;
use crate::memory_budget::MemoryBudget;
use crate::storage::{LogManager, TopicConfig};

/// This node's logs and groups.
pub struct Local {
    pub(crate) logs: Arc<LogManager>,
    pub(crate) groups: Arc<GroupCoordinator>,
    /// Fetch responses hold their bytes against the broker-wide budget.
    pub(crate) memory: MemoryBudget,
    /// The broker's cap on one Fetch response (`limits.fetch_max_bytes`).
    pub(crate) fetch_max_bytes: usize,
    pub(crate) node_id: i32,
    pub(crate) cluster_id: String,
    /// What a topic gets when a creation leaves it out.
    pub(crate) topic_defaults: TopicConfig,
    pub(crate) default_partitions: i32,
    /// Shown (read-only) as the broker's `auto.create.topics.enable`.
    pub(crate) auto_create_topics: bool,
    /// The bound on one batch's decompressed records (`limits.max_decompressed_batch_bytes`).
    pub(crate) max_decompressed_batch_bytes: usize,
    /// The broker's API table.
    apis: Arc<[crate::protocol::apis::ApiEntry]>,
}

impl Local {
    pub fn new(
        logs: Arc<LogManager>,
        groups: Arc<GroupCoordinator>,
        memory: MemoryBudget,
        config: &crate::config::Config,
        topic_defaults: TopicConfig,
    ) -> Self {
        Local {
            logs,
            groups,
            memory,
            fetch_max_bytes: usize::try_from(config.limits.fetch_max_bytes).unwrap_or(0),
            node_id: config.broker.node_id,
            cluster_id: config.broker.cluster_id.clone(),
            topic_defaults,
            default_partitions: config.broker.default_partitions,
            auto_create_topics: config.broker.auto_create_topics,
            max_decompressed_batch_bytes: config.limits.max_decompressed_batch_bytes,
            apis: Arc::from(crate::protocol::apis::APIS),
        }
    }
}

impl Backend for Local {
    fn serve<'a>(
        &'a self,
        call: Call<'a>,
        request: RequestKind,
    ) -> BoxFuture<'a, Result<ResponseKind, BackendError>> {
        async move {
            let v = call.api_version;
            let groups = &self.groups;
            Ok(match request {
                RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::serve(self, r).await),
                RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::serve(self, call, r)),
                RequestKind::DescribeCluster(r) => {
                    ResponseKind::DescribeCluster(cluster::describe(self, call, r))
                }
                RequestKind::FindCoordinator(r) => {
                    ResponseKind::FindCoordinator(cluster::find_coordinator(self, call, r))
                }
                RequestKind::CreateTopics(r) => {
                    ResponseKind::CreateTopics(topics::create(self, call, r).await)
                }
                RequestKind::DeleteTopics(r) => {
                    ResponseKind::DeleteTopics(topics::delete(self, call, r).await)
                }
                RequestKind::CreatePartitions(r) => {
                    ResponseKind::CreatePartitions(topics::create_partitions(self, r).await)
                }
                RequestKind::DescribeConfigs(r) => {
                    ResponseKind::DescribeConfigs(configs::describe(self, r))
                }
                RequestKind::IncrementalAlterConfigs(r) => {
                    ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(self, r))
                }
                RequestKind::InitProducerId(r) => {
                    ResponseKind::InitProducerId(producer_id::serve(self, r))
                }
                RequestKind::ListOffsets(r) => {
                    ResponseKind::ListOffsets(list_offsets::serve(self, r, v))
                }
                RequestKind::DeleteRecords(r) => {
                    ResponseKind::DeleteRecords(delete_records::serve(self, r))
                }
                RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(
                    groups.join_group(&groups::origin(call.caller), r, v).await,
                ),
                RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups.sync_group(r, v).await),
                RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups.heartbeat(r, v).await),
                RequestKind::LeaveGroup(r) => {
                    ResponseKind::LeaveGroup(groups.leave_group(r, v).await)
                }
                RequestKind::OffsetCommit(r) => {
                    ResponseKind::OffsetCommit(groups::offset_commit(self, r, v).await)
                }
                RequestKind::OffsetFetch(r) => {
                    ResponseKind::OffsetFetch(groups.offset_fetch(r, v).await)
                }
                RequestKind::ListGroups(r) => {
                    ResponseKind::ListGroups(groups.list_groups(r, v).await)
                }
                RequestKind::DescribeGroups(r) => {
                    ResponseKind::DescribeGroups(groups.describe_groups(r, v).await)
                }
                RequestKind::DeleteGroups(r) => {
                    ResponseKind::DeleteGroups(groups.delete_groups(r, v).await)
                }
                other => return Err(BackendError::Unsupported(super::request_name(&other))),
            })
        }
        .boxed()
    }

    fn produce<'a>(
        &'a self,
        _call: Call<'a>,
        request: ProduceBatches,
    ) -> BoxFuture<'a, ProduceAck> {
        // Appends are synchronous here: the answer is ready once every batch is written.
        let ack = produce::append(self, request);
        futures::future::ready(ack).boxed()
    }

    fn has_topic(&self, name: &str) -> Option<bool> {
        Some(self.logs.topic(name).is_some())
    }

    fn apis(&self) -> Arc<[crate::protocol::apis::ApiEntry]> {
        Arc::clone(&self.apis)
    }
}
