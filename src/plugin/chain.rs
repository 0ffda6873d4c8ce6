//! Running a topic's chain over one batch: the produce chain (accept, reject with reasons,
//! replace) and the fetch chain (pass, replace, fail). Every failure is a refusal: nothing
//! unchecked is stored or returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use palisade_sdk::records::RecordList;

use super::batch::{decode, encode, split_batches};
use super::bindings::{FetchVerdict, ProduceVerdict};
use super::loaded::{CallError, CallInput, LoadedPlugin};

/// How one plugin call ended, for metrics and the audit trail.
#[derive(Debug, Clone, Copy)]
pub enum CallOutcome<'a> {
    /// Accepted, passed or replaced with well-formed output.
    Done,
    /// The plugin refused the batch (produce) or failed it (fetch), with its reason.
    Refused(&'a str),
    /// Replaced with output the host could not accept.
    Malformed(&'a str),
    /// No verdict: trap, deadline, memory limit, instantiation.
    Failed(&'a CallError),
}

/// Told about every plugin call of a chain run.
pub trait CallObserver {
    fn observe(&self, plugin: &str, took: Duration, outcome: CallOutcome<'_>);
}

/// Observes nothing (benches, tools).
pub struct Unobserved;

impl CallObserver for Unobserved {
    fn observe(&self, _: &str, _: Duration, _: CallOutcome<'_>) {}
}

/// Why a produced batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// A readable summary for `error_message` (and logs).
    pub message: String,
    /// Per-record reasons (`batch_index`, message), for Produce v8+.
    pub record_errors: Vec<(i32, String)>,
}

impl Rejection {
    fn plugin(plugin: &str, message: impl std::fmt::Display) -> Self {
        Rejection {
            message: format!("refused by plugin `{plugin}`: {message}"),
            record_errors: Vec::new(),
        }
    }
}

/// Most per-record reasons reported for one batch (a batch may hold thousands of records).
const MAX_RECORD_ERRORS: usize = 100;
/// Longest reason kept per record.
const MAX_REASON_CHARS: usize = 500;

fn checked_list<'a>(bytes: &'a [u8], expected: usize) -> Result<RecordList<'a>, String> {
    let list = RecordList::parse(bytes).map_err(|e| format!("malformed output: {e}"))?;
    if list.len() != expected {
        return Err(format!(
            "malformed output: {} records replace a batch of {expected}",
            list.len()
        ));
    }
    Ok(list)
}

/// A plugin's replacement list, if it holds exactly `count` records; the call is observed as
/// done or as malformed output either way.
fn checked_replacement(
    plugin: &LoadedPlugin,
    took: Duration,
    list: Vec<u8>,
    count: usize,
    observer: &dyn CallObserver,
) -> Result<Vec<u8>, String> {
    match checked_list(&list, count) {
        Ok(_) => {
            observer.observe(&plugin.name, took, CallOutcome::Done);
            Ok(list)
        }
        Err(m) => {
            observer.observe(&plugin.name, took, CallOutcome::Malformed(&m));
            Err(m)
        }
    }
}

/// Runs `chain` over a validated produced batch. `Ok(None)`: every plugin accepted, store the
/// original bytes; `Ok(Some(batch))`: store this re-encoded batch instead.
pub fn run_produce(
    chain: &[Arc<LoadedPlugin>],
    input: &CallInput,
    batch: &[u8],
    max_decompressed: usize,
) -> Result<Option<Bytes>, Rejection> {
    run_produce_observed(chain, input, batch, max_decompressed, &Unobserved)
}

/// [`run_produce`], telling `observer` how each plugin call ended.
pub fn run_produce_observed(
    chain: &[Arc<LoadedPlugin>],
    input: &CallInput,
    batch: &[u8],
    max_decompressed: usize,
    observer: &dyn CallObserver,
) -> Result<Option<Bytes>, Rejection> {
    let decoded = decode(batch, max_decompressed).map_err(|message| Rejection {
        message,
        record_errors: Vec::new(),
    })?;
    let count = usize::try_from(decoded.header.record_count).unwrap_or(0);
    let mut current: Option<Vec<u8>> = None;
    for plugin in chain {
        let records = current.as_ref().unwrap_or(&decoded.records);
        let started = Instant::now();
        let verdict = plugin.on_produce(input, records).map_err(|e| {
            observer.observe(&plugin.name, started.elapsed(), CallOutcome::Failed(&e));
            Rejection {
                message: e.to_string(),
                record_errors: Vec::new(),
            }
        })?;
        let took = started.elapsed();
        match verdict {
            ProduceVerdict::Accept => observer.observe(&plugin.name, took, CallOutcome::Done),
            ProduceVerdict::Reject(reasons) => {
                let record_errors: Vec<(i32, String)> = reasons
                    .iter()
                    .take(MAX_RECORD_ERRORS)
                    .map(|r| {
                        (
                            i32::try_from(r.index).unwrap_or(i32::MAX),
                            r.reason.chars().take(MAX_REASON_CHARS).collect(),
                        )
                    })
                    .collect();
                let summary = match record_errors.first() {
                    Some((i, reason)) if reasons.len() > 1 => {
                        format!("record {i}: {reason} (and {} more)", reasons.len() - 1)
                    }
                    Some((i, reason)) => format!("record {i}: {reason}"),
                    None => "batch rejected".to_string(),
                };
                observer.observe(&plugin.name, took, CallOutcome::Refused(&summary));
                return Err(Rejection {
                    record_errors,
                    ..Rejection::plugin(&plugin.name, summary)
                });
            }
            ProduceVerdict::Replace(list) => {
                let list = checked_replacement(plugin, took, list, count, observer)
                    .map_err(|m| Rejection::plugin(&plugin.name, m))?;
                current = Some(list);
            }
        }
    }
    match current {
        None => Ok(None),
        Some(list) => {
            let parsed = checked_list(&list, count).map_err(|m| Rejection {
                message: m,
                record_errors: Vec::new(),
            })?;
            encode(&decoded, &parsed)
                .map(Some)
                .map_err(|message| Rejection {
                    message,
                    record_errors: Vec::new(),
                })
        }
    }
}

/// Runs `chain` over every batch of a fetch response's records; returns what may be sent.
pub fn run_fetch(
    chain: &[Arc<LoadedPlugin>],
    input: &CallInput,
    records: Bytes,
    max_decompressed: usize,
) -> Result<Bytes, String> {
    run_fetch_observed(chain, input, records, max_decompressed, &Unobserved)
}

/// [`run_fetch`], telling `observer` how each plugin call ended.
pub fn run_fetch_observed(
    chain: &[Arc<LoadedPlugin>],
    input: &CallInput,
    records: Bytes,
    max_decompressed: usize,
    observer: &dyn CallObserver,
) -> Result<Bytes, String> {
    let ranges = split_batches(&records);
    let mut out: Option<BytesMut> = None;
    let whole = ranges.last().map_or(0, |r| r.end);
    for (n, range) in ranges.iter().enumerate() {
        let original = records.slice(range.clone());
        let replaced = fetch_one(chain, input, &original, max_decompressed, observer)?;
        match (replaced, &mut out) {
            (None, None) => {}
            (None, Some(buf)) => buf.extend_from_slice(&original),
            (Some(new), buf) => {
                let buf = buf.get_or_insert_with(|| {
                    // Everything before this batch passed unchanged.
                    let before = ranges.get(n).map_or(0, |r| r.start);
                    BytesMut::from(records.get(..before).unwrap_or_default())
                });
                buf.extend_from_slice(&new);
            }
        }
    }
    Ok(match out {
        Some(buf) => buf.freeze(),
        None => records.slice(..whole),
    })
}

fn fetch_one(
    chain: &[Arc<LoadedPlugin>],
    input: &CallInput,
    batch: &[u8],
    max_decompressed: usize,
    observer: &dyn CallObserver,
) -> Result<Option<Bytes>, String> {
    // Magic other than 2 cannot be opened for plugins: refuse rather than pass it unchecked.
    if batch.get(16) != Some(&2) {
        return Err("a stored batch is not in the v2 format".into());
    }
    let attributes = batch
        .get(21..23)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(i16::from_be_bytes)
        .unwrap_or(0);
    if attributes & 0x20 != 0 {
        return Ok(None); // control batches carry no user data
    }
    let decoded = decode(batch, max_decompressed)?;
    if decoded.header.record_count == 0 {
        return Ok(None);
    }
    let count = usize::try_from(decoded.header.record_count).unwrap_or(0);
    let mut current: Option<Vec<u8>> = None;
    for plugin in chain {
        let records = current.as_ref().unwrap_or(&decoded.records);
        let started = Instant::now();
        let verdict = plugin.on_fetch(input, records).map_err(|e| {
            observer.observe(&plugin.name, started.elapsed(), CallOutcome::Failed(&e));
            e.to_string()
        })?;
        let took = started.elapsed();
        match verdict {
            FetchVerdict::Pass => observer.observe(&plugin.name, took, CallOutcome::Done),
            FetchVerdict::Fail(reason) => {
                observer.observe(&plugin.name, took, CallOutcome::Refused(&reason));
                return Err(format!("refused by plugin `{}`: {reason}", plugin.name));
            }
            FetchVerdict::Replace(list) => {
                let list = checked_replacement(plugin, took, list, count, observer)
                    .map_err(|m| format!("plugin `{}`: {m}", plugin.name))?;
                current = Some(list);
            }
        }
    }
    match current {
        None => Ok(None),
        Some(list) => {
            let parsed = checked_list(&list, count)?;
            encode(&decoded, &parsed).map(Some)
        }
    }
}
