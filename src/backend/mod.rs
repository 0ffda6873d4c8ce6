//! Where a request is served once every security layer in front of it has passed it.
//!
//! The layers (login, routing, the one authorization enforcement point, quotas, plugins,
//! audit: `api`) are the same whatever serves the request; what differs is the [`Backend`]
//! behind them: the local log ([`local`], broker mode) or an upstream Kafka cluster (gateway
//! mode). A backend receives a typed request the layers have already filtered (a denied topic
//! or group never reaches it) and answers the typed response the layers then complete
//! (refusals merged back, fetch plugins run). It never authorizes: what needs a decision
//! (auto-creating a topic, by id or by name) is decided in front of it, and then asked of it
//! as a request of its own (Metadata, then CreateTopics).

pub mod lane;
pub mod local;
pub mod produce;
#[cfg(test)]
pub mod recording;
pub mod upstream;

use futures::future::BoxFuture;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FetchRequest, FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    RequestKind, ResponseKind, SyncGroupRequest, SyncGroupResponse,
};

pub use lane::Lane;

use std::sync::Arc;

use crate::protocol::apis::ApiEntry;
use crate::request::Caller;

/// One request as a backend sees it: its version, who sent it over which connection, and the
/// address that connection reached (what a single node advertises as itself).
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub api_version: i16,
    pub caller: &'a Caller,
    pub advertised_host: &'a str,
    pub advertised_port: i32,
    /// The connection's lane: the upstream node it addressed and its upstream connection.
    pub lane: &'a lane::Lane,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend does not serve this API.
    #[error("{0} is not served by this backend")]
    Unsupported(&'static str),
    /// The backend answered with a response of another API (a bug or a confused upstream).
    #[error("the backend answered {got} to {asked}")]
    Mismatch {
        asked: &'static str,
        got: &'static str,
    },
    /// The backend could not be reached or failed while serving (retriable for the client).
    #[error("{0}")]
    Unavailable(String),
    /// The backend refuses this caller (a principal with no upstream identity, an upstream
    /// that refused the identity's login): not retriable.
    #[error("{0}")]
    Refused(String),
}

/// Serves filtered requests: the local log, or an upstream cluster.
pub trait Backend: Send + Sync {
    /// Serves one request of any API but Produce ([`Backend::produce`]) and the APIs the layers answer themselves (ApiVersions, SASL, ACLs, SCRAM credentials,
    /// client quotas).
    fn serve<'a>(
        &'a self,
        call: Call<'a>,
        request: RequestKind,
    ) -> BoxFuture<'a, Result<ResponseKind, BackendError>>;

    /// Hands over a produce's batches, in the connection's append order: the future completes
    /// once they are appended (or written to the upstream) in that order, and yields the
    /// acknowledgement, which completes once `acks` is satisfied (see [`produce`]).
    fn produce<'a>(
        &'a self,
        call: Call<'a>,
        request: produce::ProduceBatches,
    ) -> BoxFuture<'a, produce::ProduceAck>;

    /// Whether topic `name` exists, when the backend knows without asking anyone (the local
    /// log); `None` when only a request can tell (an upstream cluster answers for itself).
    fn has_topic(&self, name: &str) -> Option<bool>;

    /// The APIs and versions served in front of this backend, as ApiVersions advertises them
    /// and the router accepts them.
    fn apis(&self) -> Arc<[ApiEntry]>;
}

/// Typed calls over [`Backend::serve`]: `fetch(backend, call, request)` and so on, each
/// checking that the answer is of the API asked; and the API names of requests and responses,
/// for errors.
macro_rules! typed_calls {
    ($($fn_name:ident: $kind:ident($req:ty) -> $resp:ty;)*) => {
        $(
            pub async fn $fn_name(
                backend: &dyn Backend,
                call: Call<'_>,
                request: $req,
            ) -> Result<$resp, BackendError> {
                match backend.serve(call, RequestKind::$kind(request)).await? {
                    ResponseKind::$kind(response) => Ok(response),
                    other => Err(BackendError::Mismatch {
                        asked: stringify!($kind),
                        got: response_name(&other),
                    }),
                }
            }
        )*

        /// The name of a request's API, for errors.
        pub fn request_name(r: &RequestKind) -> &'static str {
            match r {
                $(RequestKind::$kind(_) => stringify!($kind),)*
                _ => "this request",
            }
        }

        /// The name of a response's API, for errors.
        fn response_name(r: &ResponseKind) -> &'static str {
            match r {
                $(ResponseKind::$kind(_) => stringify!($kind),)*
                _ => "another response",
            }
        }
    };
}

typed_calls! {
    fetch: Fetch(FetchRequest) -> FetchResponse;
    list_offsets: ListOffsets(ListOffsetsRequest) -> ListOffsetsResponse;
    delete_records: DeleteRecords(DeleteRecordsRequest) -> DeleteRecordsResponse;
    join_group: JoinGroup(JoinGroupRequest) -> JoinGroupResponse;
    sync_group: SyncGroup(SyncGroupRequest) -> SyncGroupResponse;
    heartbeat: Heartbeat(HeartbeatRequest) -> HeartbeatResponse;
    leave_group: LeaveGroup(LeaveGroupRequest) -> LeaveGroupResponse;
    offset_commit: OffsetCommit(OffsetCommitRequest) -> OffsetCommitResponse;
    offset_fetch: OffsetFetch(OffsetFetchRequest) -> OffsetFetchResponse;
    list_groups: ListGroups(ListGroupsRequest) -> ListGroupsResponse;
    describe_groups: DescribeGroups(DescribeGroupsRequest) -> DescribeGroupsResponse;
    delete_groups: DeleteGroups(DeleteGroupsRequest) -> DeleteGroupsResponse;
    metadata: Metadata(MetadataRequest) -> MetadataResponse;
    create_topics: CreateTopics(CreateTopicsRequest) -> CreateTopicsResponse;
    delete_topics: DeleteTopics(DeleteTopicsRequest) -> DeleteTopicsResponse;
    create_partitions: CreatePartitions(CreatePartitionsRequest) -> CreatePartitionsResponse;
    describe_cluster: DescribeCluster(DescribeClusterRequest) -> DescribeClusterResponse;
    find_coordinator: FindCoordinator(FindCoordinatorRequest) -> FindCoordinatorResponse;
    init_producer_id: InitProducerId(InitProducerIdRequest) -> InitProducerIdResponse;
    describe_configs: DescribeConfigs(DescribeConfigsRequest) -> DescribeConfigsResponse;
    incremental_alter_configs: IncrementalAlterConfigs(IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse;
    add_partitions_to_txn: AddPartitionsToTxn(AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse;
    add_offsets_to_txn: AddOffsetsToTxn(AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse;
    end_txn: EndTxn(EndTxnRequest) -> EndTxnResponse;
    txn_offset_commit: TxnOffsetCommit(TxnOffsetCommitRequest) -> TxnOffsetCommitResponse;
    describe_transactions: DescribeTransactions(DescribeTransactionsRequest) -> DescribeTransactionsResponse;
    list_transactions: ListTransactions(ListTransactionsRequest) -> ListTransactionsResponse;
}

impl BackendError {
    /// The error a client gets for a request (or each partition of it) the backend failed:
    /// an unreachable backend is retriable and makes clients refresh their metadata.
    pub fn code(&self) -> kafka_protocol::error::ResponseError {
        use kafka_protocol::error::ResponseError;
        match self {
            BackendError::Unavailable(_) => ResponseError::NotLeaderOrFollower,
            BackendError::Refused(_) => ResponseError::ClusterAuthorizationFailed,
            BackendError::Unsupported(_) | BackendError::Mismatch { .. } => {
                ResponseError::UnknownServerError
            }
        }
    }
}

impl BackendError {
    /// The error for a group request the backend failed: an unreachable coordinator is
    /// retriable (the client looks it up again).
    pub fn group_code(&self) -> kafka_protocol::error::ResponseError {
        match self {
            BackendError::Unavailable(_) => {
                kafka_protocol::error::ResponseError::CoordinatorNotAvailable
            }
            other => other.code(),
        }
    }
}
