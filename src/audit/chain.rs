//! The hash chain: every line carries `seq` (1, 2, 3 ... across all files) and `prev`, the
//! SHA-256 (hex) of the exact bytes of the previous line (without its newline). The first
//! line of a trail has `prev` = [`GENESIS`]. Altering a line changes its hash, so the next
//! line's `prev` no longer matches; removing or reordering lines breaks `prev` and `seq`.
//!
//! The chain is not keyed: someone able to rewrite the whole file from the altered line on
//! can recompute it. The copy in the audit topic (written at the same time, not writable by
//! any client) is the independent witness to compare against.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::event::Event;

/// `prev` of the first line of a trail.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the chain stands: the last line's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl ChainHead {
    pub fn genesis() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    event: &'a Event,
    seq: u64,
    prev: &'a str,
}

/// SHA-256 of `line`, lowercase hex.
pub fn hash_line(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// Serializes `event` as the line after `head` and advances `head` past it.
pub fn next_line(head: &mut ChainHead, event: &Event) -> Result<String, serde_json::Error> {
    let seq = head.seq.saturating_add(1);
    let line = serde_json::to_string(&Line {
        event,
        seq,
        prev: &head.hash,
    })?;
    head.seq = seq;
    head.hash = hash_line(line.as_bytes());
    Ok(line)
}

/// The chain head after `line` (a line previously written), if it parses.
pub fn head_after(line: &str) -> Option<ChainHead> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(ChainHead {
        seq: value.get("seq")?.as_u64()?,
        hash: hash_line(line.as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{EventType, Outcome};

    #[test]
    fn lines_link_by_hash_and_sequence() {
        let mut head = ChainHead::genesis();
        let e = Event::new(EventType::TopicCreated, Outcome::Success);
        let first = next_line(&mut head, &e).unwrap();
        let second = next_line(&mut head, &e).unwrap();
        let v1: serde_json::Value = serde_json::from_str(&first).unwrap();
        let v2: serde_json::Value = serde_json::from_str(&second).unwrap();
        assert_eq!(v1["prev"], GENESIS);
        assert_eq!(v1["seq"], 1);
        assert_eq!(v2["prev"], hash_line(first.as_bytes()));
        assert_eq!(v2["seq"], 2);
        assert_eq!(v1["event_type"], "topic_created");
        assert_eq!(head_after(&second).unwrap(), head);
    }
}
