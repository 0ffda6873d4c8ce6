//! A produce forwarded upstream: one Produce request carrying the batches the layers passed
//! (unread, or as the plugins replaced them), with the client's own `acks`, `timeout_ms` and
//! transactional id, queued on the lane's connection in the client's order. The client is
//! acknowledged only by the upstream's answer: nothing is acknowledged that the upstream did not
//! acknowledge as the client asked.

use futures::FutureExt;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ProduceRequest, ProduceResponse, RequestKind, ResponseKind, TransactionalId,
};

use super::Upstream;
use crate::backend::produce::{ProduceAck, ProduceBatches};
use crate::backend::{BackendError, Call};

pub(super) async fn forward(
    upstream: &Upstream,
    call: Call<'_>,
    batches: ProduceBatches,
) -> ProduceAck {
    let acks = batches.acks;
    let request = RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(batches.timeout_ms)
            .with_transactional_id(batches.transactional_id.map(TransactionalId))
            .with_topic_data(
                batches
                    .topics
                    .into_iter()
                    .map(|t| {
                        TopicProduceData::default()
                            .with_name(t.name)
                            .with_partition_data(
                                t.partitions
                                    .into_iter()
                                    .map(|p| {
                                        PartitionProduceData::default()
                                            .with_index(p.index)
                                            .with_records(Some(p.records))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
    );
    let conn = match upstream.connection(call).await {
        Ok(conn) => conn,
        Err(e) => return async move { Err(e) }.boxed(),
    };
    let submitted = conn
        .submit(call.api_version, call.caller.client_id.as_deref(), &request)
        .await;
    let submitted = match submitted {
        Ok(s) => s,
        Err(e) => {
            upstream.forget_failed(call).await;
            let e = upstream.unavailable(vec![e]);
            return async move { Err(e) }.boxed();
        }
    };
    let cluster = std::sync::Arc::clone(upstream.cluster());
    let version = call.api_version;
    let map = upstream.addresses.get(&call.caller.listener).cloned();
    async move {
        match submitted.response().await {
            Ok(Some(mut response)) => {
                // Produce v10+ carries leader hints (KIP-951) with addresses; the API table
                // stops below them, but a rewrite costs nothing when there are none.
                if let Some(map) = &map {
                    crate::gateway::rewrite::response(&mut response, version, map)
                        .map_err(|e| BackendError::Unavailable(e.to_string()))?;
                }
                match response {
                    ResponseKind::Produce(r) => Ok(r),
                    _ => Err(BackendError::Mismatch {
                        asked: "Produce",
                        got: "another response",
                    }),
                }
            }
            // acks = 0: the upstream never answers.
            Ok(None) => Ok(ProduceResponse::default()),
            Err(e) => {
                cluster.request_refresh();
                Err(BackendError::Unavailable(e.to_string()))
            }
        }
    }
    .boxed()
}
