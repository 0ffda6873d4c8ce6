//! The values a plugin receives and returns, as plain Rust types (the wit-bindgen types stay
//! behind `export`). The same types exist on every target, so native unit tests call a plugin
//! exactly as the broker does.

/// Who is producing or fetching, and where. Never credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    pub topic: String,
    pub partition: i32,
    /// The authenticated principal (`User::"name"` without the type), or `ANONYMOUS`.
    pub principal: String,
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512`, `PLAIN`, `mTLS` or `none`.
    pub auth_method: String,
    pub client_id: Option<String>,
    /// The listener name the connection arrived on.
    pub listener: String,
}

impl CallContext {
    /// A context for tests: partition 0, `PLAIN`, listener `plain`, no client id.
    pub fn new(topic: &str, principal: &str) -> Self {
        CallContext {
            topic: topic.to_string(),
            partition: 0,
            principal: principal.to_string(),
            auth_method: "PLAIN".to_string(),
            client_id: None,
            listener: "plain".to_string(),
        }
    }
}

/// Why one record of a produced batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The record's position in the record list (not its offset delta).
    pub index: u32,
    pub reason: String,
}

impl Rejection {
    /// A rejection of the record at `index` (saturates at `u32::MAX`, beyond any real batch).
    pub fn new(index: usize, reason: impl Into<String>) -> Self {
        Rejection {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            reason: reason.into(),
        }
    }
}

/// The outcome of the produce hook for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProduceVerdict {
    /// Store the batch as produced.
    Accept,
    /// Refuse the whole batch; the client sees `INVALID_RECORD` with these reasons.
    Reject(Vec<Rejection>),
    /// Store these records instead: an encoded record list (see `RecordListBuilder`) with
    /// exactly as many records, in the same order, as the one given.
    Replace(Vec<u8>),
}

impl ProduceVerdict {
    /// `Accept` when `rejections` is empty, else `Reject` with them.
    pub fn reject_or_accept(rejections: Vec<Rejection>) -> Self {
        if rejections.is_empty() {
            ProduceVerdict::Accept
        } else {
            ProduceVerdict::Reject(rejections)
        }
    }

    /// Rejects every one of `count` records with the same reason (at least one rejection, so
    /// an empty batch is still refused).
    pub fn reject_all(count: usize, reason: &str) -> Self {
        let rejections = (0..count.max(1))
            .map(|i| Rejection::new(i, reason))
            .collect();
        ProduceVerdict::Reject(rejections)
    }
}

/// The outcome of the fetch hook for one batch and one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchVerdict {
    /// Return the batch unchanged.
    Pass,
    /// Return these records instead (same count and order).
    Replace(Vec<u8>),
    /// Return an error for this partition instead of any data.
    Fail(String),
}

/// Severity of a `host::log` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}
