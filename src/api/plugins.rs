//! Where the Kafka API handlers meet the plugins: the call's input built from the caller, the
//! observer that counts and audits every call, and the fetch chain over records read for a
//! caller. The produce chain's one call site is [`super::produce::plugins`].

use bytes::Bytes;

use crate::audit::event::{Event, Origin};
use crate::broker::Broker;
use crate::plugin::chain::{run_fetch_observed, CallObserver, CallOutcome};
use crate::plugin::loaded::{CallError, CallInput};
use crate::request::Caller;

pub(super) fn call_input(caller: &Caller, topic: &str, partition: i32) -> CallInput {
    CallInput {
        topic: topic.to_string(),
        partition,
        caller: caller.clone(),
    }
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
pub(super) struct Observer<'a> {
    pub(super) broker: &'a Broker,
    pub(super) caller: &'a Caller,
    pub(super) topic: &'a str,
    pub(super) operation: &'static str,
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
