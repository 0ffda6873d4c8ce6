//! The audit topic is read-only for every client, super users included: these checks run in
//! the Produce, DeleteTopics, DeleteRecords, CreatePartitions and config-altering handlers,
//! before authorization could allow anything. Reading it is left to Cedar policy.

use kafka_protocol::error::ResponseError;

use super::AUDIT_TOPIC;

/// Whether `name` is the audit topic (reserved whether or not the topic sink is on).
pub fn is_audit_topic(name: &str) -> bool {
    name == AUDIT_TOPIC
}

/// The refusal for a modifying request naming the audit topic.
pub fn refuse_change(name: &str) -> Result<(), (ResponseError, String)> {
    if is_audit_topic(name) {
        Err((
            ResponseError::TopicAuthorizationFailed,
            format!(
                "`{AUDIT_TOPIC}` is written by the broker only and cannot be changed by clients"
            ),
        ))
    } else {
        Ok(())
    }
}
