//! Shared test harness: an in-process broker on an ephemeral port over a temp data dir,
//! and helpers for raw protocol exchanges.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use palisade::broker::Running;
use palisade::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod clients;
pub mod gateway_harness;
pub mod kafka_cluster;
pub mod kafka_java;
pub mod metrics_page;
pub mod plugins;
pub mod tansu;
pub mod wait;

pub use clients::client_config;
pub use wait::{eventually, wait_for, wait_until};

/// A test config: one PLAINTEXT listener on an ephemeral loopback port, data in `data_dir`.
pub fn test_config(data_dir: &Path, extra: &[(&str, &str)]) -> Config {
    Config::parse(&plaintext_config_text(data_dir, extra), Path::new("<test>")).unwrap()
}

/// The dev default reduced to its PLAINTEXT listener on an ephemeral port, with data and
/// credentials in `data_dir`, then `extra` replacements applied.
pub fn plaintext_config_text(data_dir: &Path, extra: &[(&str, &str)]) -> String {
    let default = palisade::config::DEFAULT_CONFIG;
    let first = default.find("\n[[listeners]]\n").unwrap();
    let second = first + 1 + default[first + 1..].find("\n[[listeners]]\n").unwrap();
    let sasl = default.find("\n[sasl]\n").unwrap();
    let without_tls = format!("{}{}", &default[..second], &default[sasl..]);
    let credentials = data_dir.join("credentials.json");
    let mut text = without_tls
        .replace(
            "credentials = \"./credentials.json\"",
            &format!("credentials = {:?}", credentials.display().to_string()),
        )
        .replace("bind = \"127.0.0.1:9092\"", "bind = \"127.0.0.1:0\"")
        .replace("advertised = \"127.0.0.1:9092\"\n", "")
        .replace(
            "data_dir = \"./data\"",
            &format!("data_dir = {:?}", data_dir.display().to_string()),
        )
        .replace("level = \"info\"", "level = \"warn\"")
        .replace(DEV_POLICY_DIR, &allow_all_policy_dir());
    for (from, to) in extra {
        assert!(text.contains(from), "test config has no `{from}`");
        text = text.replace(from, to);
    }
    ephemeral_metrics_port(text)
}

/// Tests run brokers side by side: each gets its own metrics port. Applied after the
/// caller's replacements, so those that rebind the listener (`bind = "127.0.0.1:0"`) never
/// touch the metrics address.
fn ephemeral_metrics_port(text: String) -> String {
    text.replace("bind = \"127.0.0.1:9644\"", "bind = \"127.0.0.1:0\"")
}

/// The policy folder line of the dev default.
pub const DEV_POLICY_DIR: &str = "policy_dir = \"./policies\"";

/// `policy_dir = "<tests/fixtures/allow-all>"`: a policy folder permitting everything, for
/// tests of other concerns. Tests of authorization replace it (see [`policy_dir_line`]).
pub fn allow_all_policy_dir() -> String {
    policy_dir_line(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/allow-all"))
}

/// `policy_dir = "<dir>"`.
pub fn policy_dir_line(dir: &Path) -> String {
    format!("policy_dir = {:?}", dir.display().to_string())
}

/// A copy of the shipped `policies/` folder in `dest` (tests that edit policies or create
/// ACLs must not touch the checkout's).
pub fn copy_shipped_policies(dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
    }
}

pub async fn start(data_dir: &Path) -> Running {
    start_with(data_dir, &[]).await
}

pub async fn start_with(data_dir: &Path, extra: &[(&str, &str)]) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    Running::start(test_config(data_dir, extra)).await.unwrap()
}

pub fn bootstrap(running: &Running) -> String {
    running.addresses[0].to_string()
}

/// A raw Kafka connection for hand-built requests.
pub struct Raw {
    pub stream: TcpStream,
    pub correlation: i32,
    /// The client id every request names.
    pub client_id: String,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw::over(TcpStream::connect(addr).await.unwrap())
    }

    /// A raw connection over `stream`, naming client id `raw-test`.
    pub fn over(stream: TcpStream) -> Raw {
        Raw {
            stream,
            correlation: 0,
            client_id: "raw-test".into(),
        }
    }

    pub async fn send_frame(&mut self, payload: &[u8]) {
        let mut buf = BytesMut::new();
        buf.put_i32(payload.len() as i32);
        buf.put_slice(payload);
        self.stream.write_all(&buf).await.unwrap();
    }

    /// Reads one response frame, or `None` when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        match tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut size)).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return None,
            Err(_) => panic!("no response and no close within 10 s"),
        }
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    /// True when the broker closes the connection (read returns EOF or reset) within 10 s.
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => false,
            Err(_) => false,
        }
    }

    /// Sends a typed request and decodes the typed response.
    pub async fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.try_request(key, version, req)
            .await
            .expect("connection closed")
    }

    pub async fn try_request<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Option<Resp> {
        let correlation = self.send_request(key, version, req).await;
        self.read_response(key, version, correlation).await
    }

    /// Sends a typed request without reading its response (pipelining); returns its
    /// correlation id.
    pub async fn send_request<Req: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> i32 {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        req.encode(&mut buf, version).unwrap();
        self.send_frame(&buf).await;
        self.correlation
    }

    /// Reads the next response, which must answer request `correlation`; `None` when the
    /// broker closed the connection.
    pub async fn read_response<Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        correlation: i32,
    ) -> Option<Resp> {
        let mut frame = self.read_frame().await?;
        let header =
            ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation);
        let resp = Resp::decode(&mut frame, version).unwrap();
        assert_eq!(
            frame.remaining(),
            0,
            "trailing bytes in {key:?} v{version} response"
        );
        Some(resp)
    }
}

/// Whether a new connection to `addr` is served: a blocking ApiVersions (v0) exchange that gets
/// an answer within 5 s (a connection refused by a limit is closed unanswered).
pub fn api_versions_answered(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(0)
        .with_correlation_id(1)
        .encode(&mut body, ApiKey::ApiVersions.request_header_version(0))
        .unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let mut size = [0u8; 4];
    stream.write_all(&frame).is_ok() && stream.read_exact(&mut size).is_ok()
}

/// Encodes one v2 record batch of `values` (keys `k<i>`), optionally idempotent.
pub fn batch(
    values: &[&[u8]],
    compression: kafka_protocol::records::Compression,
    producer: Option<(i64, i16, i32)>,
) -> Bytes {
    use kafka_protocol::records::*;
    let (pid, epoch, seq) = producer.unwrap_or((NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE));
    let now = 1_700_000_000_000i64;
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes; a
            // non-idempotent batch keeps base sequence -1 this way.
            sequence: if seq < 0 {
                i as i32 - 1
            } else {
                seq + i as i32
            },
            timestamp: now + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

/// A Produce request (v9) of one batch to `topic`/`partition`.
pub fn produce_request(
    topic: &str,
    partition: i32,
    acks: i16,
    records: Bytes,
) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::produce_request::*;
    use kafka_protocol::messages::*;
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// A Fetch (v4 and later) of partition 0 from `offset` that never waits: it answers with what
/// is stored now, up to 8 MiB.
pub fn fetch_now(topic: &str, offset: i64) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::*;
    use kafka_protocol::messages::*;
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(8 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(8 << 20)])])
}

/// Creates a topic through the Kafka API and asserts success.
pub async fn create_topic(raw: &mut Raw, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    use kafka_protocol::messages::create_topics_request::*;
    use kafka_protocol::messages::*;
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )]);
    let resp: CreateTopicsResponse = raw.request(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
}

/// A broker on its own runtime, for tests that drive it with blocking clients (rdkafka).
pub struct BackgroundBroker {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<Running>,
    pub dir: std::path::PathBuf,
    extra: Vec<(String, String)>,
}

impl BackgroundBroker {
    pub fn start(dir: &Path, extra: &[(&str, &str)]) -> BackgroundBroker {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt.block_on(start_with(dir, extra));
        BackgroundBroker {
            rt,
            running: Some(running),
            dir: dir.to_path_buf(),
            extra: extra
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    pub fn bootstrap(&self) -> String {
        bootstrap(self.running.as_ref().unwrap())
    }

    /// Graceful shutdown, then a fresh start on the same data dir (same port if free).
    pub fn restart(&mut self) {
        let old = self.running.take().unwrap();
        let addr = old.addresses[0];
        self.rt.block_on(old.shutdown());
        let bind = format!("bind = \"{addr}\"");
        let mut extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        extra.push(("bind = \"127.0.0.1:0\"", &bind));
        let running = self.rt.block_on(async {
            // The port can take a moment to be released by the old listener task.
            for _ in 0..50 {
                match Running::start(test_config(&self.dir, &extra)).await {
                    Ok(r) => return r,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            panic!("broker did not restart on {addr}");
        });
        self.running = Some(running);
    }
}

impl Drop for BackgroundBroker {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

/// The full dev default (PLAINTEXT, SASL_SSL, SSL listeners, in that order) on ephemeral
/// loopback ports, with data and credentials in `dir`, every `./certs/...` path pointing into
/// `certs` (a `generate_dev_pki` directory), a 50 ms failed-login delay, log level `warn`, then
/// `extra` replacements applied.
pub fn secure_config_text(dir: &Path, certs: &Path, extra: &[(&str, &str)]) -> String {
    let credentials = dir.join("credentials.json");
    let data = dir.join("data");
    let mut text = palisade::config::DEFAULT_CONFIG.to_string();
    for port in [9092, 9093, 9094] {
        text = text
            .replace(
                &format!("bind = \"127.0.0.1:{port}\""),
                "bind = \"127.0.0.1:0\"",
            )
            .replace(&format!("advertised = \"127.0.0.1:{port}\"\n"), "");
    }
    let mut text = text
        .replace("\"./certs/", &format!("\"{}/", certs.display()))
        .replace(
            "credentials = \"./credentials.json\"",
            &format!("credentials = {:?}", credentials.display().to_string()),
        )
        .replace(
            "data_dir = \"./data\"",
            &format!("data_dir = {:?}", data.display().to_string()),
        )
        .replace("failed_login_delay_ms = 500", "failed_login_delay_ms = 50")
        .replace("level = \"info\"", "level = \"warn\"")
        .replace(DEV_POLICY_DIR, &allow_all_policy_dir());
    assert!(
        !text.contains("\"./"),
        "relative path left in the secure test config"
    );
    for (from, to) in extra {
        assert!(text.contains(from), "secure test config has no `{from}`");
        text = text.replace(from, to);
    }
    ephemeral_metrics_port(text)
}
