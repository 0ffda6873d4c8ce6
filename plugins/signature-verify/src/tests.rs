use super::*;
use palisade_sdk::{OwnedRecord, RecordListBuilder};

const ALICE: [u8; 32] = [1; 32];
const BOB: [u8; 32] = [2; 32];

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn plugin() -> SignatureVerify {
    let config = serde_json::json!({
        "header": "signature",
        "keys": {
            "alice": hex_of(&public_key(&ALICE)),
            "bob": STANDARD.encode(public_key(&BOB)),
        }
    });
    SignatureVerify::init(&config.to_string()).unwrap()
}

fn record(value: &str) -> OwnedRecord {
    OwnedRecord {
        offset_delta: 0,
        timestamp: 1_700_000_000_000,
        key: Some(b"order-7".to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![
            ("trace".to_string(), Some(b"t-1".to_vec())),
            ("empty".to_string(), None),
        ],
    }
}

fn list(records: &[OwnedRecord]) -> Vec<u8> {
    let mut b = RecordListBuilder::new();
    for (i, r) in records.iter().enumerate() {
        let mut r = r.clone();
        r.offset_delta = i as u32;
        b.push_owned(&r).unwrap();
    }
    b.finish()
}

fn produce(principal: &str, records: &[OwnedRecord]) -> ProduceVerdict {
    let bytes = list(records);
    let parsed = RecordList::parse(&bytes).unwrap();
    plugin().on_produce(&CallContext::new("payments", principal), &parsed)
}

fn reasons(verdict: ProduceVerdict) -> Vec<(u32, String)> {
    match verdict {
        ProduceVerdict::Reject(r) => r.into_iter().map(|r| (r.index, r.reason)).collect(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn valid_signatures_pass() {
    let a = sign_record(&ALICE, &record("{\"amount\": 5}"), "signature");
    let b = sign_record(&ALICE, &record("{\"amount\": 6}"), "signature");
    assert_eq!(produce("alice", &[a, b]), ProduceVerdict::Accept);
    let c = sign_record(&BOB, &record("x"), "signature");
    assert_eq!(produce("bob", &[c]), ProduceVerdict::Accept);
}

#[test]
fn hex_and_base64_signature_headers_are_accepted() {
    let signed = sign_record(&ALICE, &record("v"), "signature");
    let raw = signed.headers.last().unwrap().1.clone().unwrap();
    for text in [
        hex_of(&raw),
        STANDARD.encode(&raw),
        STANDARD_NO_PAD.encode(&raw),
    ] {
        let mut r = signed.clone();
        r.headers.last_mut().unwrap().1 = Some(text.into_bytes());
        assert_eq!(produce("alice", &[r]), ProduceVerdict::Accept);
    }
}

#[test]
fn altered_records_are_rejected() {
    let good = sign_record(&ALICE, &record("{\"amount\": 5}"), "signature");
    let mut value = good.clone();
    value.value = Some(b"{\"amount\": 500}".to_vec());
    let mut key = good.clone();
    key.key = Some(b"order-8".to_vec());
    let mut header = good.clone();
    header.headers[0].1 = Some(b"t-2".to_vec());
    let mut reordered = good.clone();
    reordered.headers.swap(0, 1);
    let mut dropped = good.clone();
    dropped.headers.remove(1);
    let mut null_key = good.clone();
    null_key.key = None;
    let r = reasons(produce(
        "alice",
        &[
            good.clone(),
            value,
            key,
            header,
            reordered,
            dropped,
            null_key,
        ],
    ));
    assert_eq!(
        r.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    for (_, reason) in &r {
        assert!(
            reason.starts_with("signature does not verify with the key of `alice`"),
            "{reason}"
        );
    }
    // The timestamp and offset are not covered.
    let mut later = good;
    later.timestamp += 1;
    assert_eq!(produce("alice", &[later]), ProduceVerdict::Accept);
}

#[test]
fn unsigned_and_malformed_records_are_rejected() {
    let mut null_sig = record("v");
    null_sig.headers.push(("signature".to_string(), None));
    let mut short_sig = record("v");
    short_sig
        .headers
        .push(("signature".to_string(), Some(vec![0; 63])));
    let signed = sign_record(&ALICE, &record("v"), "signature");
    let mut twice = signed.clone();
    twice.headers.push(signed.headers.last().unwrap().clone());
    let r = reasons(produce(
        "alice",
        &[record("v"), null_sig, short_sig, twice, signed],
    ));
    assert_eq!(r.len(), 4);
    assert_eq!(
        r[0],
        (0, "record is not signed: no `signature` header".to_string())
    );
    assert_eq!(
        r[1],
        (
            1,
            "record is not signed: the `signature` header is null".to_string()
        )
    );
    assert!(
        r[2].1.starts_with("malformed `signature` header"),
        "{}",
        r[2].1
    );
    assert_eq!(
        r[3],
        (3, "record has more than one `signature` header".to_string())
    );
}

#[test]
fn unknown_principals_and_other_keys_are_rejected() {
    let signed = sign_record(&ALICE, &record("v"), "signature");
    let r = reasons(produce("carol", &[signed.clone(), signed.clone()]));
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].1, "no signing key is configured for principal `carol`");
    // Alice's signature does not pass as Bob's.
    let r = reasons(produce("bob", &[signed]));
    assert!(r[0].1.contains("key of `bob`"), "{}", r[0].1);
}

#[test]
fn custom_header_name() {
    let config =
        serde_json::json!({"header": "x-sig", "keys": {"alice": hex_of(&public_key(&ALICE))}});
    let plugin = SignatureVerify::init(&config.to_string()).unwrap();
    let signed = sign_record(&ALICE, &record("v"), "x-sig");
    let bytes = list(&[signed]);
    let parsed = RecordList::parse(&bytes).unwrap();
    assert_eq!(
        plugin.on_produce(&CallContext::new("t", "alice"), &parsed),
        ProduceVerdict::Accept
    );
}

#[test]
fn bad_configs_fail_init() {
    for config in [
        r#"{}"#,
        r#"{"keys": {"alice": "abcd"}}"#,
        r#"{"keys": {"alice": "zz"}}"#,
        r#"{"header": "", "keys": {}}"#,
        r#"{"keys": {}, "extra": true}"#,
    ] {
        assert!(SignatureVerify::init(config).is_err(), "{config}");
    }
    assert!(SignatureVerify::init(r#"{"keys": {}}"#).is_ok());
}

/// `plugins/examples/signature-verify.toml` stays a valid manifest whose `[config]` this plugin accepts.
#[test]
fn example_manifest_config_initialises() {
    let text = include_str!("../../examples/signature-verify.toml");
    let manifest: toml::Table = toml::from_str(text).unwrap();
    for key in ["topics", "hooks", "order", "keys", "config"] {
        assert!(manifest.contains_key(key), "missing `{key}`");
    }
    let config = serde_json::to_string(&manifest["config"]).unwrap();
    if let Err(e) = SignatureVerify::init(&config) {
        panic!("{config}: {e}");
    }
}

#[test]
fn example_manifest_key_is_alices_test_key() {
    let manifest: toml::Table =
        toml::from_str(include_str!("../../examples/signature-verify.toml")).unwrap();
    let config = serde_json::to_string(&manifest["config"]).unwrap();
    let plugin = SignatureVerify::init(&config).unwrap();
    let bytes = list(&[sign_record(&ALICE, &record("v"), "signature")]);
    let parsed = RecordList::parse(&bytes).unwrap();
    assert_eq!(
        plugin.on_produce(&CallContext::new("ledger", "alice"), &parsed),
        ProduceVerdict::Accept
    );
}
