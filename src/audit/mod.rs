//! The audit trail: every security-relevant decision and change, recorded as one JSON event,
//! hash-chained, written to an append-only file and to an internal topic.
//!
//! # Layout
//!
//! - [`event`]: [`Event`], [`EventType`], [`Outcome`], [`Origin`] (who, from where).
//! - [`events`]: one constructor per event type (`Event::authentication`, `topic_created` ...).
//! - [`decisions`]: `Event::authz`, [`Audit::decision`], the `data_operations` rule, and
//!   [`RequestDecisions`] (one request's decisions as a few bounded events).
//! - [`handle`]: [`Audit`], the cheap-to-clone handle held by the broker; `record()` queues.
//! - [`queue`]: the bounded buffer and its backpressure choice (wait briefly, then count the
//!   loss loudly: log + metric + an `audit_events_lost` event in the trail).
//! - [`chain`]: `seq` and `prev` (SHA-256 of the previous line) on every line.
//! - [`file_sink`]: `audit-<N>.jsonl` files, size-based rotation, fsync policy.
//! - [`topic_target`]: where the audit topic lives: [`topic_sink`] (broker mode, the local
//!   log, written through storage) or [`upstream_sink`] (gateway mode, the upstream cluster:
//!   a bounded [`backlog`] and a writer thread; [`upstream_topic`] speaks Kafka to it,
//!   [`upstream_topic_setup`] creates or checks the topic there).
//! - [`batch`]: audit lines as record batches, for both.
//! - [`protect`]: which topic is the audit topic; the rule that no client may produce to,
//!   delete, trim or reconfigure it is enforced with every other decision (`api::access`).
//! - [`verify`]: `palisade audit verify`, naming the first altered, removed or reordered event.
//! - [`reloads`]: events from reloads the broker notices by itself (credentials, TLS material,
//!   policies), sent as each swap happens.
//! - [`settings`]: the `[audit]` config section.

pub mod backlog;
pub mod batch;
pub mod chain;
pub mod decisions;
pub mod event;
pub mod events;
pub mod file_sink;
pub mod handle;
pub mod protect;
pub mod queue;
pub mod reloads;
pub mod settings;
pub mod topic_sink;
pub mod topic_target;
pub mod upstream_sink;
pub mod upstream_topic;
pub mod upstream_topic_setup;
pub mod verify;

use std::path::PathBuf;

pub use decisions::{Decided, RequestDecisions};
pub use event::{Event, EventType, Origin, Outcome};
pub use handle::Audit;
pub use protect::is_audit_topic;
pub use settings::{AuditSection, DataOperations};

/// The internal audit topic.
pub const AUDIT_TOPIC: &str = "__palisade_audit";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit file `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit topic: {0}")]
    Topic(String),
}
