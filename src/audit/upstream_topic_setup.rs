//! The audit topic's creation and check on the upstream cluster, for
//! [`super::upstream_topic`]: created when missing as broker mode creates it locally (one
//! partition, deletion by retention only), an existing one compared with that and reported in
//! warnings, never changed (the upstream's operators own its config).

use std::collections::BTreeMap;

use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DescribeConfigsRequest, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::upstream_topic::{topic_name, version, Failure, CLIENT_ID};
use super::AUDIT_TOPIC;
use crate::upstream::Connection;

const CREATE_TOPICS: VersionRange = VersionRange { min: 2, max: 7 };
const DESCRIBE_CONFIGS: VersionRange = VersionRange { min: 1, max: 4 };
/// DescribeConfigs resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

/// What the audit topic should look like on the upstream.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// 0: min(3, the upstream's brokers).
    pub replication_factor: i16,
    /// `retention.ms` (-1 = forever).
    pub retention_ms: i64,
}

impl Wanted {
    /// The replication factor for a cluster of `brokers`.
    pub fn replication_factor(&self, brokers: usize) -> i16 {
        match self.replication_factor {
            0 => i16::try_from(brokers.clamp(1, 3)).unwrap_or(3),
            n => n,
        }
    }
}

/// CreateTopics: one partition, the wanted replication, deletion by retention only, the
/// broker's time on every record (as locally). An existing topic is not an error.
pub async fn create(
    conn: &Connection,
    wanted: Wanted,
    brokers: usize,
    timeout_ms: i32,
) -> Result<(), Failure> {
    let version = version(conn, ApiKey::CreateTopics, CREATE_TOPICS)?;
    let replication_factor = wanted.replication_factor(brokers);
    let config = |name: &'static str, value: String| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str(name))
            .with_value(Some(StrBytes::from_string(value)))
    };
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name())
            .with_num_partitions(1)
            .with_replication_factor(replication_factor)
            .with_configs(vec![
                config("cleanup.policy", "delete".into()),
                config("retention.ms", wanted.retention_ms.to_string()),
                config("message.timestamp.type", "LogAppendTime".into()),
            ])]);
    let result = match conn
        .call(
            version,
            Some(CLIENT_ID),
            &RequestKind::CreateTopics(request),
        )
        .await?
    {
        ResponseKind::CreateTopics(r) => r
            .topics
            .into_iter()
            .find(|t| t.name.0.as_str() == AUDIT_TOPIC)
            .ok_or_else(|| Failure::stale("the CreateTopics response omits the audit topic"))?,
        _ => return Err(Failure::stale("not a CreateTopics response")),
    };
    match result.error_code.err() {
        None => {
            tracing::info!(
                topic = AUDIT_TOPIC,
                replication_factor,
                retention_ms = wanted.retention_ms,
                "created the audit topic on the upstream cluster"
            );
            Ok(())
        }
        Some(ResponseError::TopicAlreadyExists) => Ok(()),
        Some(e) => Err(Failure::retry(format!(
            "creating the audit topic on the upstream (replication factor {replication_factor}): {e:?}{}",
            result
                .error_message
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ))),
    }
}

/// Warns about an existing audit topic (with `partitions` partitions, `replicas` replicas of
/// partition 0, on a cluster of `brokers`) that differs from what [`create`] makes.
pub async fn check(
    conn: &Connection,
    wanted: Wanted,
    partitions: usize,
    replicas: usize,
    brokers: usize,
) {
    let mut differences = Vec::new();
    if partitions != 1 {
        differences.push(format!(
            "{partitions} partitions (the gateway writes partition 0 only)"
        ));
    }
    let wanted_rf = usize::try_from(wanted.replication_factor(brokers)).unwrap_or(0);
    if replicas < wanted_rf {
        differences.push(format!("replication factor {replicas}, below {wanted_rf}"));
    }
    match configs(conn).await {
        Ok(configs) => differences.extend(config_differences(&configs, wanted)),
        Err(e) => differences.push(format!("its configs could not be read: {e}")),
    }
    for difference in differences {
        tracing::warn!(
            topic = AUDIT_TOPIC,
            "the audit topic on the upstream differs from what the gateway would create: {difference}"
        );
    }
}

/// The topic's `cleanup.policy` and `retention.ms` (DescribeConfigs).
async fn configs(conn: &Connection) -> Result<BTreeMap<String, String>, String> {
    let version = version(conn, ApiKey::DescribeConfigs, DESCRIBE_CONFIGS).map_err(|_| {
        format!(
            "DescribeConfigs unsupported ({})",
            conn.versions().describe(ApiKey::DescribeConfigs)
        )
    })?;
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_static_str(AUDIT_TOPIC))
            .with_configuration_keys(Some(vec![
                StrBytes::from_static_str("cleanup.policy"),
                StrBytes::from_static_str("retention.ms"),
            ]))]);
    let response = conn
        .call(
            version,
            Some(CLIENT_ID),
            &RequestKind::DescribeConfigs(request),
        )
        .await
        .map_err(|e| e.to_string())?;
    let ResponseKind::DescribeConfigs(response) = response else {
        return Err("not a DescribeConfigs response".into());
    };
    let result = response
        .results
        .into_iter()
        .next()
        .ok_or("an empty DescribeConfigs response")?;
    if let Some(e) = result.error_code.err() {
        return Err(format!("DescribeConfigs: {e:?}"));
    }
    Ok(result
        .configs
        .into_iter()
        .filter_map(|c| Some((c.name.to_string(), c.value?.to_string())))
        .collect())
}

/// Differences of `configs` (name to value) from what the gateway creates.
pub fn config_differences(configs: &BTreeMap<String, String>, wanted: Wanted) -> Vec<String> {
    let mut out = Vec::new();
    match configs.get("cleanup.policy").map(String::as_str) {
        Some("delete") | None => {}
        Some(other) => out.push(format!("cleanup.policy `{other}` (wanted `delete`)")),
    }
    if let Some(value) = configs.get("retention.ms") {
        let shorter = match value.parse::<i64>() {
            Ok(-1) => false,
            Ok(ms) => wanted.retention_ms == -1 || ms < wanted.retention_ms,
            Err(_) => true,
        };
        if shorter {
            out.push(format!(
                "retention.ms `{value}`, shorter than audit.topic_retention_ms = {}",
                wanted.retention_ms
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_compacted_or_shorter_lived_topic_is_reported() {
        let year = Wanted {
            replication_factor: 0,
            retention_ms: 31_536_000_000,
        };
        let ok = configs(&[
            ("cleanup.policy", "delete"),
            ("retention.ms", "31536000000"),
        ]);
        assert!(config_differences(&ok, year).is_empty());
        let forever = configs(&[("cleanup.policy", "delete"), ("retention.ms", "-1")]);
        assert!(config_differences(&forever, year).is_empty());
        let bad = configs(&[("cleanup.policy", "compact"), ("retention.ms", "86400000")]);
        let found = config_differences(&bad, year);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("compact") && found[1].contains("86400000"));
        // Forever is wanted: any finite retention is shorter.
        let keep = Wanted {
            replication_factor: 0,
            retention_ms: -1,
        };
        assert_eq!(config_differences(&ok, keep).len(), 1);
    }
}
