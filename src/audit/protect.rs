//! The audit topic is read-only for every client, super users included: these checks run in
//! the Produce, DeleteTopics, DeleteRecords, CreatePartitions and config-altering handlers,
//! before authorization could allow anything. Reading it is left to Cedar policy.

use kafka_protocol::error::ResponseError;

use super::event::{Event, EventType, Origin, Outcome};
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

/// The audit event for a refused attempt to change the audit topic (`operation`: Write,
/// Delete, AlterConfigs, Alter).
pub fn refused_event(ctx: &crate::api::RequestContext, operation: &str) -> Event {
    let mut e = Event::new(EventType::Authorization, Outcome::Deny)
        .from(&Origin::of_request(ctx))
        .resource(format!("topic:{AUDIT_TOPIC}"))
        .operation(operation)
        .reason("the audit topic is written by the broker only");
    e.policy_ids = Some(Vec::new());
    e
}

/// Checks `name` for a modifying request; on the audit topic records the refusal and
/// returns the Kafka error and message.
pub fn guard(
    broker: &crate::broker::Broker,
    ctx: &crate::api::RequestContext,
    name: &str,
    operation: &str,
) -> Result<(), (ResponseError, String)> {
    refuse_change(name).inspect_err(|_| {
        tracing::warn!(principal = %ctx.principal, operation, "refused a change of the audit topic");
        broker.audit.record(refused_event(ctx, operation));
    })
}
