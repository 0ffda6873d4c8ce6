//! The audit topic is read-only for every client, super users included. The rule is enforced
//! where every other authorization decision is (`api::access`), before policy could allow
//! anything; reading the topic is left to Cedar policy, with no super user bypass.

use crate::authz::Action;

use super::AUDIT_TOPIC;

/// Why a change of the audit topic is refused (the audit event's `reason`).
pub const REFUSAL: &str = "the audit topic is written by the broker only";

/// Whether `name` is the audit topic (reserved whether or not the topic sink is on).
pub fn is_audit_topic(name: &str) -> bool {
    name == AUDIT_TOPIC
}

/// Whether `action` would change a topic (its records, its existence, its partitions or its
/// configs): refused on the audit topic for every client.
pub fn changes_topic(action: Action) -> bool {
    matches!(
        action,
        Action::Write | Action::Delete | Action::Alter | Action::AlterConfigs | Action::Create
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reading_actions_leave_the_audit_topic_to_policy() {
        for action in [
            Action::Read,
            Action::Describe,
            Action::DescribeConfigs,
            Action::Decrypt,
        ] {
            assert!(!changes_topic(action), "{action}");
        }
        for action in [
            Action::Write,
            Action::Delete,
            Action::Alter,
            Action::AlterConfigs,
        ] {
            assert!(changes_topic(action), "{action}");
        }
        assert!(is_audit_topic(AUDIT_TOPIC) && !is_audit_topic("orders"));
    }
}
