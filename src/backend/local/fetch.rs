//! Fetch from the local logs: whole batches from each requested partition, with long-poll.
//!
//! A fetch that finds fewer than `min_bytes` waits on the partitions' high-watermark watches
//! until data arrives or `max_wait_ms` passes, so a consumer sees a new batch as soon as it is
//! appended, not at the end of the wait.
//!
//! A response is bounded whatever the client asks: `max_bytes` is capped by the broker's
//! `limits.fetch_max_bytes` (Kafka's broker `fetch.max.bytes`), a partition named more than
//! once is read once (its repeats answer with no records, as if nothing were new), and each
//! read first reserves what it may return from the broker's memory budget.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Local;
use crate::api::errors::storage_code;

/// Upper bound on how long a client may ask us to hold a fetch.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

pub(super) async fn serve(local: &Local, req: FetchRequest) -> FetchResponse {
    let wait =
        Duration::from_millis(u64::try_from(req.max_wait_ms.max(0)).unwrap_or(0)).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(req.min_bytes.max(0)).unwrap_or(0);
    let max_bytes = usize::try_from(req.max_bytes.max(0))
        .unwrap_or(usize::MAX)
        .min(local.fetch_max_bytes)
        .min(local.memory.limit());
    let reserve = read_bound(&req, max_bytes);
    loop {
        // Subscribe before reading so an append between the read and the wait still wakes us.
        let mut watches = subscribe(local, &req);
        // Held while the read's bytes exist here; the connection then holds the encoded
        // response against the budget until it is written.
        let memory = local.memory.reserve(reserve).await;
        let (responses, total, has_error) = read_all(local, &req, max_bytes);
        drop(memory);
        if total >= min_bytes.max(1)
            || has_error
            || Instant::now() >= deadline
            || watches.is_empty()
        {
            return FetchResponse::default().with_responses(responses);
        }
        let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline passed: one last read so the answer is current.
            let memory = local.memory.reserve(reserve).await;
            let (responses, _, _) = read_all(local, &req, max_bytes);
            drop(memory);
            return FetchResponse::default().with_responses(responses);
        }
    }
}

/// The most one read of `req` can return: `max_bytes`, or less when the partitions' own
/// limits add up to less (read once each).
fn read_bound(req: &FetchRequest, max_bytes: usize) -> usize {
    let mut seen = HashSet::new();
    let mut bound = 0usize;
    for t in &req.topics {
        for p in &t.partitions {
            if seen.insert((t.topic.0.as_str(), p.partition)) {
                let per_partition = usize::try_from(p.partition_max_bytes.max(0)).unwrap_or(0);
                bound = bound.saturating_add(per_partition);
            }
        }
    }
    bound.min(max_bytes)
}

fn subscribe(local: &Local, req: &FetchRequest) -> Vec<watch::Receiver<i64>> {
    let mut seen = HashSet::new();
    let mut watches = Vec::new();
    for t in &req.topics {
        if let Some(topic) = local.logs.topic(&t.topic.0) {
            watches.extend(
                t.partitions
                    .iter()
                    .filter(|p| seen.insert((t.topic.0.as_str(), p.partition)))
                    .filter_map(|p| topic.partition(p.partition))
                    .map(|p| p.watch_high_watermark()),
            );
        }
    }
    watches
}

/// Reads every requested partition once; returns the responses, the bytes gathered and whether
/// any partition had an error (errors are answered at once, as Kafka does).
fn read_all(
    local: &Local,
    req: &FetchRequest,
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut has_error = false;
    let mut served = HashSet::new();
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let topic = local.logs.topic(&t.topic.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut data = PartitionData::default().with_partition_index(p.partition);
                    let Some(partition) = topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition))
                    else {
                        data.error_code = ResponseError::UnknownTopicOrPartition.code();
                        has_error = true;
                        return data;
                    };
                    // A partition named again in the same request is read once: its repeats
                    // answer with no records.
                    let first_time = served.insert((t.topic.0.as_str(), p.partition));
                    let per_partition = if first_time {
                        usize::try_from(p.partition_max_bytes.max(0)).unwrap_or(0)
                    } else {
                        0
                    };
                    // Kafka returns at least one batch (the first non-empty partition) even
                    // beyond max_bytes, so a large batch can never stall a consumer; beyond
                    // that batch max_bytes bounds the first partition too (KIP-74).
                    let limit = if total == 0 && first_time {
                        per_partition.min(remaining).max(1)
                    } else {
                        per_partition.min(remaining)
                    };
                    if limit == 0 {
                        data.high_watermark = partition.high_watermark();
                        data.last_stable_offset = data.high_watermark;
                        data.log_start_offset = partition.log_start_offset();
                        return data;
                    }
                    match partition.read(p.fetch_offset, limit) {
                        Ok(mut read) => {
                            if total > 0 && read.records.len() > limit {
                                // Only the first partition may exceed the limits.
                                read.records = bytes::Bytes::new();
                            }
                            let n = read.records.len();
                            total += n;
                            remaining = remaining.saturating_sub(n);
                            data.high_watermark = read.high_watermark;
                            data.last_stable_offset = read.high_watermark;
                            data.log_start_offset = read.log_start_offset;
                            data.aborted_transactions = None;
                            data.records = Some(read.records);
                        }
                        Err(e) => {
                            data.error_code = storage_code(&e);
                            data.high_watermark = partition.high_watermark();
                            data.last_stable_offset = data.high_watermark;
                            data.log_start_offset = partition.log_start_offset();
                            has_error = true;
                        }
                    }
                    data
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    (responses, total, has_error)
}
