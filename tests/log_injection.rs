//! Log injection (CWE-117): strings a client chooses (client id, SASL user name, quota entity,
//! ACL resource name) reach the real binary's log escaped, so a newline in one of them can
//! never start a forged line, and an ANSI escape never reaches a terminal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Raw;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse, ApiKey, CreateAclsRequest, CreateAclsResponse,
    ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

/// Each string ends its "line" with a newline and starts a forged one, then paints the
/// terminal red and moves the cursor.
const CLIENT_ID: &str = "client\nFORGED line from the client id\u{1b}[31m";
const USER: &str = "user\r\nFORGED line from the user name\u{1b}[2J";
const QUOTA_CLIENT: &str = "quota\nFORGED line from the quota entity\u{2028}\u{7}";
const RESOURCE: &str = "resource\nFORGED line from the acl resource\u{1b}]0;x\u{7}";
const ALL: [&str; 4] = [CLIENT_ID, USER, QUOTA_CLIENT, RESOURCE];

/// How each string must appear in the log: control characters written as escapes.
fn escaped(s: &str) -> String {
    palisade::log_escape::escape(s)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The broker process with stderr in a file; killed when dropped.
struct Broker {
    child: Child,
    log: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap()).into_owned()
    }
}

/// `palisade serve` on an ephemeral port with log level info in `format`; the bound address.
fn start(dir: &Path, format: &str) -> (Broker, std::net::SocketAddr) {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/allow-all");
    for entry in std::fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), policies.join(entry.file_name())).unwrap();
    }
    let config = common::plaintext_config_text(
        &dir.join("data"),
        &[
            ("level = \"warn\"", "level = \"info\""),
            ("format = \"human\"", &format!("format = {format:?}")),
            (
                &common::allow_all_policy_dir(),
                &common::policy_dir_line(&policies),
            ),
        ],
    );
    let config_path = dir.join("palisade.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.join("broker.log");
    let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let broker = Broker { child, log };
    let addr = common::wait_for(Duration::from_secs(30), || {
        let log = broker.log();
        let line = log
            .lines()
            .find(|l| l.contains("listening") && l.contains("PLAINTEXT"))?;
        let start = line.find("127.0.0.1:")?;
        let end =
            start + line[start..].find(|c: char| c != '.' && c != ':' && !c.is_ascii_digit())?;
        line[start..end].parse().ok()
    })
    .unwrap_or_else(|| panic!("the broker did not start:\n{}", broker.log()));
    (broker, addr)
}

/// Sends each client-chosen string through the API that logs it.
async fn attack(addr: std::net::SocketAddr) {
    let mut raw = Raw::connect(addr).await;

    // A quota entity (logged when it changes), and a quota on the forged client id so that
    // the produce below is throttled (the throttle line names the client id).
    let entry = |client: &str| {
        EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(s("client-id"))
                .with_entity_name(Some(s(client)))])
            .with_ops(vec![OpData::default()
                .with_key(s("producer_byte_rate"))
                .with_value(100.0)])
    };
    let resp: AlterClientQuotasResponse = raw
        .request(
            ApiKey::AlterClientQuotas,
            1,
            &AlterClientQuotasRequest::default()
                .with_entries(vec![entry(QUOTA_CLIENT), entry(CLIENT_ID)]),
        )
        .await;
    assert!(resp.entries.iter().all(|e| e.error_code == 0), "{resp:?}");

    let creation = AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(s(RESOURCE))
        .with_resource_pattern_type(3)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(3)
        .with_permission_type(3);
    let resp: CreateAclsResponse = raw
        .request(
            ApiKey::CreateAcls,
            2,
            &CreateAclsRequest::default().with_creations(vec![creation]),
        )
        .await;
    assert_eq!(resp.results[0].error_code, 0, "{resp:?}");

    // Deleting the credential of an unknown user is refused, naming the user.
    let resp: AlterUserScramCredentialsResponse = raw
        .request(
            ApiKey::AlterUserScramCredentials,
            0,
            &AlterUserScramCredentialsRequest::default().with_deletions(vec![
                ScramCredentialDeletion::default()
                    .with_name(s(USER))
                    .with_mechanism(1),
            ]),
        )
        .await;
    assert_ne!(resp.results[0].error_code, 0, "{resp:?}");

    common::create_topic(&mut raw, "injected", 1, &[]).await;
    let mut forged = Raw::connect(addr).await;
    forged.client_id = CLIENT_ID.to_string();
    let value = vec![b'x'; 4096];
    let request = common::produce_request(
        "injected",
        0,
        1,
        common::batch(&[&value], Compression::None, None),
    );
    let resp: ProduceResponse = forged.request(ApiKey::Produce, 9, &request).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert!(
        resp.throttle_time_ms > 0,
        "the quota did not apply: {resp:?}"
    );
}

/// Runs the attack against a broker logging in `format`; its log once `expect` holds for it
/// (or after 10 s).
fn attacked_log(format: &str, expect: impl Fn(&str) -> bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), format);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(attack(addr));
    // Returned either way: the caller's assertions say what is wrong with it.
    let _ = common::wait_until(Duration::from_secs(10), || expect(&broker.log()));
    broker.log()
}

fn assert_no_forged_line(log: &str) {
    for line in log.lines() {
        assert!(!line.starts_with("FORGED"), "forged line in:\n{log}");
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{2028}') && !line.contains('\r'),
            "raw control character in: {line:?}"
        );
    }
}

#[test]
fn client_chosen_strings_are_escaped_in_the_human_log() {
    let log = attacked_log("human", |log| ALL.iter().all(|s| log.contains(&escaped(s))));
    assert_no_forged_line(&log);
    for s in ALL {
        assert!(
            log.contains(&escaped(s)),
            "{s:?} is not in the log escaped:\n{log}"
        );
    }
    // Each string is on one line with the event that logged it.
    for (string, event) in [
        (CLIENT_ID, "connection throttled by a client quota"),
        (USER, "SCRAM credential change refused"),
        (QUOTA_CLIENT, "client quotas changed"),
        (RESOURCE, "created ACL"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(event) && l.contains(&escaped(string))),
            "no `{event}` line naming {string:?}:\n{log}"
        );
    }
}

/// Every string value of `v`, nested ones included.
fn json_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

#[test]
fn client_chosen_strings_stay_inside_json_strings() {
    let log = attacked_log("json", |log| {
        let mut strings = Vec::new();
        for line in log.lines() {
            if let Ok(v) = serde_json::from_str(line) {
                json_strings(&v, &mut strings);
            }
        }
        // Decoded, the log holds each string exactly as it was sent.
        ALL.iter().all(|s| strings.iter().any(|l| l.contains(s)))
    });
    assert!(
        ALL.iter().all(|s| log.lines().any(|l| {
            let json = serde_json::to_string(s).unwrap();
            l.contains(json.trim_matches('"'))
        })),
        "not every string is in the JSON log, JSON-escaped:\n{log}"
    );
    for line in log.lines() {
        assert!(!line.starts_with("FORGED"), "forged line in:\n{log}");
        assert!(!line.contains('\u{1b}') && !line.contains('\r'), "{line:?}");
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
    }
}
