//! Helpers shared by the audit tests: reading both sinks (the audit files and the
//! `__palisade_audit` topic with a stock consumer) and a few raw requests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

pub const AUDIT_TOPIC: &str = "__palisade_audit";
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------------------------
// Reading both sinks
// ---------------------------------------------------------------------------------------------

/// Every line of the audit files in `dir`, parsed, in order.
pub fn file_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn find<'a>(
    events: &'a [Value],
    event_type: &str,
    pred: impl Fn(&Value) -> bool,
) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["event_type"] == event_type && pred(e))
}

/// Waits until the file sink holds an event matching `pred`.
pub fn wait_in_file(dir: &Path, event_type: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = parse(&file_lines(dir));
        if let Some(e) = find(&events, event_type, &pred) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no `{event_type}` event in the audit file; have:\n{}",
            events
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn client_config(bootstrap: &str, settings: &[(&str, String)]) -> ClientConfig {
    let mut c = crate::common::client_config(
        bootstrap,
        &[
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("socket.timeout.ms", "5000"),
            ("reconnect.backoff.ms", "100"),
            ("reconnect.backoff.max.ms", "500"),
            ("message.timeout.ms", "10000"),
        ],
    );
    for (k, v) in settings {
        c.set(*k, v);
    }
    c
}

pub fn sasl(ca: &Path, mechanism: &str, user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", mechanism.into()),
        ("sasl.username", user.into()),
        ("sasl.password", password.into()),
        ("ssl.ca.location", ca.display().to_string()),
    ]
}

/// Reads the audit topic from the beginning with a stock consumer until `until` holds for the
/// values read (or 20 s pass). `Err` carries the first error the consumer reported.
pub fn read_audit_topic(
    bootstrap: &str,
    settings: &[(&'static str, String)],
    group: &str,
    timeout: Duration,
    until: impl Fn(&[String]) -> bool,
) -> Result<Vec<String>, KafkaError> {
    let mut settings = settings.to_vec();
    settings.push(("group.id", group.to_string()));
    let consumer: BaseConsumer = client_config(bootstrap, &settings).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(AUDIT_TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
            // Authorization errors are the answer; transport errors (a session that ended
            // under load, a reconnect) are retried by the client.
            Some(Err(e))
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                            | rdkafka::types::RDKafkaErrorCode::GroupAuthorizationFailed
                    )
                ) =>
            {
                return Err(e)
            }
            Some(Err(_)) => {}
            None if until(&values) => return Ok(values),
            None => {}
        }
    }
    Ok(values)
}

// ---------------------------------------------------------------------------------------------
// Raw plaintext requests
// ---------------------------------------------------------------------------------------------

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub async fn alter_config(
    raw: &mut crate::common::Raw,
    topic: &str,
    key: &str,
    value: &str,
) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::*;
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    let resp: IncrementalAlterConfigsResponse =
        raw.request(ApiKey::IncrementalAlterConfigs, 1, &req).await;
    resp.responses[0].error_code
}
