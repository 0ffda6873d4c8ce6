//! Where the Kafka API handlers meet the plugins: build the call's input from the caller,
//! look up the topic's chain (an empty chain costs one pattern test per loaded plugin), run it.

use bytes::Bytes;

use super::chain::{
    run_fetch_observed, run_produce_observed, CallObserver, CallOutcome, Rejection,
};
use super::loaded::CallError;
use super::loaded::CallInput;
use crate::audit::event::{Event, Origin};
use crate::broker::Broker;
use crate::request::Caller;

fn call_input(caller: &Caller, topic: &str, partition: i32) -> CallInput {
    CallInput {
        topic: topic.to_string(),
        partition,
        caller: caller.clone(),
    }
}

/// The produce chain of `topic` over one validated batch: `Ok(None)` to store the batch as
/// produced, `Ok(Some(bytes))` to store a replacement, `Err` to refuse it.
pub fn produce(
    broker: &Broker,
    caller: &Caller,
    topic: &str,
    partition: i32,
    batch: &[u8],
) -> Result<Option<Bytes>, Rejection> {
    let generation = broker.plugins.generation();
    if generation.is_empty() {
        return Ok(None);
    }
    let chain = generation.produce_chain(topic);
    if chain.is_empty() {
        return Ok(None);
    }
    let input = call_input(caller, topic, partition);
    let observer = Observer {
        broker,
        caller,
        topic,
        operation: "Write",
    };
    let result = run_produce_observed(
        &chain,
        &input,
        batch,
        broker.config.limits.max_decompressed_batch_bytes,
        &observer,
    );
    if let Err(r) = &result {
        tracing::debug!(topic, partition, principal = %caller.principal, "produce refused: {}", r.message);
    }
    result
}

/// The fetch chain of `topic` over the records read for `caller`'s principal.
pub fn fetch(
    broker: &Broker,
    caller: &Caller,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> Result<Bytes, String> {
    let generation = broker.plugins.generation();
    if generation.is_empty() || records.is_empty() {
        return Ok(records);
    }
    let chain = generation.fetch_chain(topic);
    if chain.is_empty() {
        return Ok(records);
    }
    let input = call_input(caller, topic, partition);
    let observer = Observer {
        broker,
        caller,
        topic,
        operation: "Read",
    };
    let result = run_fetch_observed(
        &chain,
        &input,
        records,
        broker.config.limits.max_decompressed_batch_bytes,
        &observer,
    );
    if let Err(e) = &result {
        tracing::warn!(topic, partition, principal = %caller.principal, "fetch refused: {e}");
    }
    result
}

/// Counts every plugin call in the metrics and audits refusals, traps and timeouts.
struct Observer<'a> {
    broker: &'a Broker,
    caller: &'a Caller,
    topic: &'a str,
    operation: &'static str,
}

impl CallObserver for Observer<'_> {
    fn observe(&self, plugin: &str, took: std::time::Duration, outcome: CallOutcome<'_>) {
        let metrics = &self.broker.metrics;
        let origin = || Origin::from(self.caller);
        let event = match outcome {
            CallOutcome::Done => {
                metrics.plugin_call(plugin, took);
                return;
            }
            CallOutcome::Refused(reason) | CallOutcome::Malformed(reason) => {
                metrics.plugin_call(plugin, took);
                metrics.plugin_rejection(plugin);
                Event::plugin_rejected(&origin(), plugin, self.topic, reason)
            }
            CallOutcome::Failed(CallError::Deadline(_, ms)) => {
                metrics.plugin_timeout(plugin);
                Event::plugin_timed_out(&origin(), plugin, self.topic, *ms)
            }
            CallOutcome::Failed(e) => {
                metrics.plugin_trap(plugin);
                Event::plugin_trapped(&origin(), plugin, self.topic, &e.to_string())
            }
        };
        self.broker.audit.record(event.operation(self.operation));
    }
}
