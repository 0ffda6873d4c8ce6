//! A produce to topics with plugins, pipelined off the connection's task.
//!
//! The batches were checked on the connection's task, in request order. Here their produce
//! chains run on the blocking pool, every partition of the request at once and bounded for the
//! whole process by `plugin_slots`, while the connection reads on; the request's own task
//! then hands the batches to the backend once its [`Turn`](super::order::Turn) comes, so
//! hand-overs stay in the connection's request order and producer-sequence checks (the local
//! log's, or the upstream's) see the batches as they would have sequentially.
//!
//! The task, not the response future, drives the hand-over: the connection's writer awaits
//! responses one after another, and a hand-over driven by it would wait behind the previous
//! response's acknowledgement. Nothing is acknowledged before the backend acknowledged it. A plugin job
//! that panics or is cancelled refuses its batch (fail closed); a task that dies answers every
//! partition of its request with an error and, dropped, ends its turn, so the connection goes on.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::TopicName;
use tokio::sync::Semaphore;

use super::check::{Accepted, CheckedTopic};
use super::order::AppendOrder;
use super::plugins::Chain;
use super::{hand_over, respond, Envelope, ProduceReply, Ready, Refusal, Shape, Slot};
use crate::api::RequestContext;
use crate::backend::Call;
use crate::broker::Broker;
use crate::request::Caller;

/// Plugin jobs running at once in the whole process: one per core. More would only take turns
/// on the cores, and a flood of connections must not become a flood of threads.
fn plugin_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    Arc::clone(SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(Semaphore::new(cores))
    }))
}

/// A topic's partitions after its plugins: accepted with the replacement, if any, or refused.
type Transformed = Vec<(i32, Result<(Accepted, Option<Bytes>), Refusal>)>;

/// Takes the connection's next turn and starts the request's task. Returns `None` for acks=0,
/// else the response, which waits for the task and then for the backend's acknowledgement.
pub(super) async fn run(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    checked: Vec<CheckedTopic>,
    envelope: Envelope,
    order: &mut AppendOrder,
) -> Option<ProduceReply> {
    let mut turn = order.take_turn().await;
    // Every partition of the request gets an answer, even if the task dies.
    let indices: Vec<(TopicName, Vec<i32>)> = checked
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|(i, _)| *i).collect(),
            )
        })
        .collect();
    let acks = envelope.acks;
    let task_broker = Arc::clone(broker);
    // The chains run for the request's caller after the request itself has been handled.
    let caller = Arc::new(ctx.caller.clone());
    let api_version = ctx.api_version;
    let advertised = (ctx.advertised_host.clone(), ctx.advertised_port);
    let lane = ctx.lane.clone();
    let task = tokio::spawn(async move {
        let broker = task_broker;
        let transformed: Ready = join_all(
            checked
                .into_iter()
                .map(|t| transform_topic(&broker, &caller, api_version, t)),
        )
        .await;
        turn.wait().await;
        let call = Call {
            api_version,
            caller: &caller,
            advertised_host: &advertised.0,
            advertised_port: advertised.1,
            lane: &lane,
        };
        let handed = hand_over(&broker, call, &envelope, transformed).await;
        drop(turn);
        handed
    });
    if acks == 0 {
        // No response; the task still hands the batches over in turn.
        return None;
    }
    let broker = Arc::clone(broker);
    Some(Box::pin(async move {
        let (shape, ack) = match task.await {
            Ok(handed) => handed,
            Err(e) => {
                tracing::error!(topics = %topics_of(&indices), "a pipelined produce did not complete: {e}");
                (failed(indices), None)
            }
        };
        respond(broker, shape, ack).await
    }))
}

/// For the log line of a failed task: the topics it carried.
fn topics_of(shape: &[(TopicName, Vec<i32>)]) -> String {
    shape
        .iter()
        .map(|(name, _)| format!("`{}`", name.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the produce chain of every accepted partition of `t`, all at once.
async fn transform_topic(
    broker: &Arc<Broker>,
    caller: &Arc<Caller>,
    api_version: i16,
    t: CheckedTopic,
) -> (TopicName, Transformed) {
    let topic: Arc<str> = Arc::from(&*t.name.0);
    let chain = t.chain;
    let partitions = join_all(t.partitions.into_iter().map(|(index, checked)| {
        let (broker, caller, topic) = (Arc::clone(broker), Arc::clone(caller), Arc::clone(&topic));
        let chain = Arc::clone(&chain);
        async move {
            let result = match checked {
                Ok(a) if !chain.is_empty() => match a.batch.as_ref().map(|b| b.bytes.clone()) {
                    Some(batch) => {
                        transform(broker, caller, api_version, chain, topic, index, batch)
                            .await
                            .map(|replaced| (a, replaced))
                    }
                    // `check` validates the batch of every topic with a chain; without it no
                    // plugin has seen the batch, so it is not stored.
                    None => Err((
                        ResponseError::UnknownServerError,
                        Some("the batch was not validated for the plugins".to_string()),
                    )
                        .into()),
                },
                Ok(a) => Ok((a, None)),
                Err(refusal) => Err(refusal),
            };
            (index, result)
        }
    }))
    .await;
    (t.name, partitions)
}

/// One partition's produce chain, on the blocking pool once a plugin slot is free.
async fn transform(
    broker: Arc<Broker>,
    caller: Arc<Caller>,
    api_version: i16,
    chain: Chain,
    topic: Arc<str>,
    index: i32,
    batch: Bytes,
) -> Result<Option<Bytes>, Refusal> {
    let name = Arc::clone(&topic);
    let job = on_plugin_slot(move || {
        super::plugins::run(&broker, &caller, &chain, &name, index, &batch, api_version)
    });
    match job.await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(topic = %topic, partition = index, "a produce plugin job failed: {e}");
            Err((
                ResponseError::UnknownServerError,
                Some(format!(
                    "the plugins of `{topic}` did not finish with this batch; it is not stored"
                )),
            )
                .into())
        }
    }
}

/// Runs `job` on the blocking pool once one of the process's plugin slots is free; the slot is
/// released when the job ends, panics included.
async fn on_plugin_slot<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    // The semaphore is never closed.
    let slot = plugin_slots().acquire_owned().await.ok();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        job()
    })
    .await
}

/// The answer for every partition of a request whose task died: an error, never an ack.
fn failed(indices: Vec<(TopicName, Vec<i32>)>) -> Shape {
    indices
        .into_iter()
        .map(|(name, indices)| {
            let slots = indices
                .into_iter()
                .map(|index| {
                    let refusal = (
                        ResponseError::UnknownServerError,
                        Some("the produce did not complete; retry it".to_string()),
                    );
                    (index, Slot::Refused(refusal.into()))
                })
                .collect();
            (name, slots)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn plugin_jobs_never_exceed_one_per_core_and_a_panic_frees_its_slot() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for _ in 0..cores {
            let panicked = on_plugin_slot(|| -> () { panic!("a plugin job panics") }).await;
            assert!(panicked.unwrap_err().is_panic());
        }
        // Every slot is free again: `cores` jobs can all run at the same moment.
        let together = Arc::new(std::sync::Barrier::new(cores));
        let meet = (0..cores).map(|_| {
            let together = Arc::clone(&together);
            on_plugin_slot(move || {
                together.wait();
            })
        });
        tokio::time::timeout(Duration::from_secs(10), join_all(meet))
            .await
            .expect("a panicked job kept its slot");
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..4 * cores).map(|_| {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            on_plugin_slot(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for done in join_all(jobs).await {
            done.unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= cores, "{most} jobs at once on {cores} cores");
        assert!(most >= 1);
    }
}
