//! Topic tags (`palisade.tags`): the attributes Cedar policies key on, kept by the layers in
//! front of the backend, never by the backend itself (an upstream Kafka cluster refuses
//! unknown topic configs, and no backend should be able to retag a topic behind the
//! enforcement point's back).
//!
//! A [`TagStore`] answers "which tags does topic `t` carry?" on every authorization, and is
//! changed by the fronts of CreateTopics, IncrementalAlterConfigs and DeleteTopics. One
//! implementation per mode:
//!
//! - [`local::LocalTags`] (broker mode): the topic's `palisade.tags` config in the log's
//!   metadata, where earlier versions kept it, so their data directories load unchanged.
//! - [`file::FileTags`] (gateway mode): one JSON file in the data directory.
//!
//! Tags are written in one form, [`TopicTags::value`] (comma separated, as
//! [`parse_tags`] reads them), and bounded by [`validate`] whichever store keeps them.

pub mod creations;
pub mod file;
pub mod local;

use std::path::PathBuf;
use std::sync::Arc;

pub use crate::storage::{parse_tags, TAGS_CONFIG};

/// Most tags one topic may carry.
pub const MAX_TAGS: usize = 64;
/// Longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("`{TAGS_CONFIG}` lists {count} tags; at most {MAX_TAGS} are allowed")]
    TooMany { count: usize },
    #[error("tag `{shown}...` is longer than {MAX_TAG_BYTES} bytes")]
    TooLong { shown: String },
    #[error("tag `{0}` contains a control character")]
    ControlCharacter(String),
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    #[error("topic tag file `{path}` is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("topic tag file `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

impl TagError {
    /// Whether the tags themselves were refused (the client's mistake, `INVALID_CONFIG`).
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            TagError::TooMany { .. } | TagError::TooLong { .. } | TagError::ControlCharacter(_)
        )
    }
}

/// Checks a topic's tags against the bounds every store keeps: at most [`MAX_TAGS`] tags of
/// at most [`MAX_TAG_BYTES`] bytes each, no control characters (they reach logs and audit
/// events).
pub fn validate(tags: &[String]) -> Result<(), TagError> {
    if tags.len() > MAX_TAGS {
        return Err(TagError::TooMany { count: tags.len() });
    }
    for tag in tags {
        if tag.len() > MAX_TAG_BYTES {
            let end = (0..=32)
                .rev()
                .find(|&i| tag.is_char_boundary(i))
                .unwrap_or(0);
            return Err(TagError::TooLong {
                shown: tag.get(..end).unwrap_or_default().to_string(),
            });
        }
        if tag.chars().any(char::is_control) {
            return Err(TagError::ControlCharacter(tag.escape_default().to_string()));
        }
    }
    Ok(())
}

/// A `palisade.tags` value, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicTags(Vec<String>);

impl TopicTags {
    /// Parses and bounds a `palisade.tags` value (comma separated, trimmed, empty entries
    /// dropped).
    pub fn parse(value: &str) -> Result<Self, TagError> {
        let tags = parse_tags(value);
        validate(&tags)?;
        Ok(TopicTags(tags))
    }

    /// No tags (a topic created without them, or whose tags were deleted).
    pub fn none() -> Self {
        TopicTags(Vec::new())
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The one written form: the tags joined by commas.
    pub fn value(&self) -> String {
        self.0.join(",")
    }
}

/// Where topic tags are kept. Reads are on every authorization and must be cheap (an
/// in-memory lookup); writes are rare (creation, retagging, deletion) and durable before
/// they return.
pub trait TagStore: Send + Sync {
    /// The tags of `topic`; none when it has none or is unknown (so a policy keyed on tags
    /// cannot reveal whether a topic exists).
    fn get(&self, topic: &str) -> Arc<[String]>;

    /// Gives `topic` exactly `tags` (none: it keeps no entry).
    fn set(&self, topic: &str, tags: &TopicTags) -> Result<(), TagError>;

    /// Forgets `topic`'s tags: it was deleted, and a topic created later under the same
    /// name must not inherit them.
    fn remove(&self, topic: &str) -> Result<(), TagError>;

    /// The creations in flight, whose asked-for tags decisions must also hold under.
    fn creations(&self) -> &Arc<creations::Creations>;
}

/// The written form of tags read from a store (for DescribeConfigs).
pub fn value_of(tags: &[String]) -> String {
    tags.join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn parse_trims_drops_empty_entries_and_writes_one_form() {
        let tags = TopicTags::parse(" pii, payments ,,").unwrap();
        assert_eq!(tags.as_slice(), ["pii", "payments"]);
        assert_eq!(tags.value(), "pii,payments");
        assert_eq!(TopicTags::parse("").unwrap(), TopicTags::none());
    }

    #[test]
    fn too_many_tags_are_refused() {
        let value = (0..=MAX_TAGS)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let err = TopicTags::parse(&value).unwrap_err();
        assert!(matches!(err, TagError::TooMany { count } if count == MAX_TAGS + 1));
        assert!(err.is_invalid());
        let at_limit = (0..MAX_TAGS)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            TopicTags::parse(&at_limit).unwrap().as_slice().len(),
            MAX_TAGS
        );
    }

    #[test]
    fn a_long_tag_is_refused_and_shown_shortened() {
        let long = "é".repeat(MAX_TAG_BYTES);
        let err = TopicTags::parse(&long).unwrap_err();
        assert!(err.is_invalid());
        let message = err.to_string();
        assert!(message.len() < 120, "{message}");
        assert!(TopicTags::parse(&"a".repeat(MAX_TAG_BYTES)).is_ok());
    }

    #[test]
    fn control_characters_are_refused() {
        let err = TopicTags::parse("ok,bad\u{1b}[31m").unwrap_err();
        assert!(matches!(err, TagError::ControlCharacter(_)), "{err}");
        assert!(!err.to_string().contains('\u{1b}'));
    }
}
