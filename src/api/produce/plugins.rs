//! A produce's plugins: which chain each topic of a request gets (decided once, when the
//! request is checked, from one generation of plugins) and the one place a produce chain runs.
//! A topic with an empty chain is never handed to a plugin.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::Refusal;
use crate::api::plugins::{call_input, Observer};
use crate::broker::Broker;
use crate::plugin::chain::run_produce_observed;
use crate::plugin::registry::Generation;
use crate::plugin::{LoadedPlugin, Rejection};
use crate::request::Caller;

/// One topic's produce chain, in call order; empty for most topics.
pub(super) type Chain = Arc<[Arc<LoadedPlugin>]>;

/// The produce chain of `topic` in `generation` (one pattern test per loaded plugin).
pub(super) fn chain_of(generation: &Generation, topic: &str) -> Chain {
    if generation.is_empty() {
        return Arc::from(Vec::new());
    }
    Arc::from(generation.produce_chain(topic))
}

/// Runs `chain` over one validated batch: `Ok(None)` to store the batch as produced,
/// `Ok(Some(bytes))` to store a replacement, `Err` to refuse it.
pub(super) fn run(
    broker: &Broker,
    caller: &Caller,
    chain: &[Arc<LoadedPlugin>],
    topic: &str,
    partition: i32,
    batch: &[u8],
    api_version: i16,
) -> Result<Option<Bytes>, Refusal> {
    let input = call_input(caller, topic, partition);
    let observer = Observer {
        broker,
        caller,
        topic,
        operation: "Write",
    };
    run_produce_observed(
        chain,
        &input,
        batch,
        broker.config.limits.max_decompressed_batch_bytes,
        &observer,
    )
    .map_err(|r| {
        tracing::debug!(topic, partition, principal = %caller.principal, "produce refused: {}", r.message);
        refusal(r, api_version)
    })
}

/// A plugin's refusal carries per-record errors only from Produce v8 on, as `INVALID_RECORD`;
/// older clients get `POLICY_VIOLATION` and the message.
fn refusal(r: Rejection, api_version: i16) -> Refusal {
    if api_version >= 8 {
        Refusal {
            code: ResponseError::InvalidRecord,
            message: Some(r.message),
            record_errors: r.record_errors,
        }
    } else {
        Refusal {
            code: ResponseError::PolicyViolation,
            message: Some(r.message),
            record_errors: Vec::new(),
        }
    }
}
