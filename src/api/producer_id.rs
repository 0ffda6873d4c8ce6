//! InitProducerId, in front of the backend: Write on the transactional id, or IdempotentWrite
//! on the cluster for an idempotent producer without one.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::backend;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let refused = |code: ResponseError| {
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_error_code(code.code())
    };
    let access = Access::new(broker, ctx);
    let transactional = req.transactional_id.as_ref().filter(|t| !t.is_empty());
    if let Some(id) = transactional {
        if !access.transactional_id(Action::Write, id) {
            return refused(ResponseError::TransactionalIdAuthorizationFailed);
        }
    } else if !access.cluster(Action::IdempotentWrite) {
        return refused(ResponseError::ClusterAuthorizationFailed);
    }
    let transactional = transactional.is_some();
    backend::init_producer_id(&*broker.backend, ctx.call(), req)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(principal = %ctx.principal, "init producer id failed: {e}");
            // A transactional producer looks its coordinator up again on this code.
            refused(if transactional {
                e.group_code()
            } else {
                e.code()
            })
        })
}
