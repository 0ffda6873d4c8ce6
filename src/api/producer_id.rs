//! InitProducerId for idempotent (non-transactional) producers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::access::Access;
use super::errors::storage_code;
use super::RequestContext;
use crate::authz::Action;
use crate::broker::Broker;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let access = Access::new(broker, ctx);
    if let Some(id) = req.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        if !access.transactional_id(Action::Write, id) {
            return response
                .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
        }
    } else if !access.cluster(Action::IdempotentWrite) {
        return response.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    if req.transactional_id.is_some() {
        // Transactions are not supported (and not advertised); refuse rather than pretend.
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // KIP-360: a producer that already has an id asks for an epoch bump to recover from a
    // sequence error; an exhausted epoch gets a fresh id.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return response
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match broker.logs.allocate_producer_id() {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => response.with_error_code(storage_code(&e)),
    }
}
