//! InitProducerId on one node: producer ids for idempotent producers; transactional ids are
//! refused (transactions are not supported locally, and not advertised).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::Local;
use crate::api::errors::storage_code;

pub(super) fn serve(local: &Local, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // Refuse rather than pretend.
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // KIP-360: a producer that already has an id asks for an epoch bump to recover from a
    // sequence error; an exhausted epoch gets a fresh id.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return response
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match local.logs.allocate_producer_id() {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => response.with_error_code(storage_code(&e)),
    }
}
