use super::*;
use palisade_sdk::stub;

const CONFIG: &str = r#"{"key": "orders-key", "fields": ["card", "ssn", "address.street"]}"#;
const CARD: &str = "4111111111111111";
const SSN: &str = "078-05-1120";

fn setup() -> FieldEncrypt {
    stub::reset();
    stub::add_key("orders-key", [42; 32]);
    FieldEncrypt::init(CONFIG).unwrap()
}

fn ctx(principal: &str) -> CallContext {
    CallContext::new("orders", principal)
}

fn produce(plugin: &FieldEncrypt, values: &[&str]) -> Vec<u8> {
    let bytes = stub::values(values).unwrap();
    let list = RecordList::parse(&bytes).unwrap();
    match plugin.on_produce(&ctx("producer"), &list) {
        ProduceVerdict::Replace(out) => out,
        other => panic!("expected a replacement, got {other:?}"),
    }
}

fn values(list: &[u8]) -> Vec<String> {
    RecordList::parse(list)
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

const ORDER: &str = r#"{"id": 7, "card": "4111111111111111", "ssn": "078-05-1120", "address": {"street": "1 Main St", "city": "Springfield"}, "amount": 12.50}"#;

#[test]
fn produce_leaves_no_plaintext_and_keeps_other_fields() {
    let plugin = setup();
    let out = produce(&plugin, &[ORDER]);
    for secret in [CARD, SSN, "1 Main St"] {
        assert!(!contains(&out, secret), "plaintext {secret} in output");
    }
    let stored: serde_json::Value = serde_json::from_str(&values(&out)[0]).unwrap();
    assert_eq!(stored["id"], 7);
    assert_eq!(stored["address"]["city"], "Springfield");
    assert!(stored["card"].as_str().unwrap().starts_with(PREFIX));
    assert!(stored["address"]["street"]
        .as_str()
        .unwrap()
        .starts_with(PREFIX));
    // Everything but the encrypted values is kept as written, whitespace included.
    assert!(values(&out)[0].contains("\"amount\": 12.50}"));
    assert!(values(&out)[0].starts_with("{\"id\": 7, \"card\": \"pal:enc:v1:"));
}

#[test]
fn permitted_consumer_reads_the_original_values() {
    let plugin = setup();
    stub::permit("alice", "Decrypt", "orders");
    let stored = produce(
        &plugin,
        &[
            ORDER,
            r#"{"id": 8, "card": {"number": "5500", "cvc": 123}}"#,
        ],
    );
    let list = RecordList::parse(&stored).unwrap();
    let FetchVerdict::Replace(read) = plugin.on_fetch(&ctx("alice"), &list) else {
        panic!("expected decrypted records");
    };
    let read = values(&read);
    let original: serde_json::Value = serde_json::from_str(ORDER).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&read[0]).unwrap(),
        original
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&read[1]).unwrap(),
        serde_json::json!({"id": 8, "card": {"number": "5500", "cvc": 123}})
    );
}

#[test]
fn denied_consumer_reads_ciphertext() {
    let plugin = setup();
    stub::permit("alice", "Decrypt", "orders");
    let stored = produce(&plugin, &[ORDER]);
    let list = RecordList::parse(&stored).unwrap();
    assert_eq!(plugin.on_fetch(&ctx("mallory"), &list), FetchVerdict::Pass);
    // Decrypt on another topic does not count.
    stub::forbid("alice", "Decrypt", "orders");
    stub::permit("alice", "Decrypt", "payments");
    assert_eq!(plugin.on_fetch(&ctx("alice"), &list), FetchVerdict::Pass);
}

#[test]
fn non_json_and_non_objects_are_rejected_tombstones_pass() {
    let plugin = setup();
    let bytes = stub::values(&["not json", "[1,2]", r#"{"card": "1"}"#, "\"card\""]).unwrap();
    let list = RecordList::parse(&bytes).unwrap();
    let ProduceVerdict::Reject(rejections) = plugin.on_produce(&ctx("p"), &list) else {
        panic!("expected rejections");
    };
    let indices: Vec<u32> = rejections.iter().map(|r| r.index).collect();
    assert_eq!(indices, vec![0, 1, 3]);
    assert!(rejections[0].reason.starts_with("value is not JSON"));
    assert_eq!(rejections[1].reason, "value is not a JSON object");

    let mut b = RecordListBuilder::new();
    b.push(0, 0, Some(b"k"), None, &[]).unwrap();
    let tombstone = b.finish();
    let list = RecordList::parse(&tombstone).unwrap();
    assert_eq!(plugin.on_produce(&ctx("p"), &list), ProduceVerdict::Accept);
    // Objects without any configured field are accepted as they are.
    let bytes = stub::values(&[r#"{"id": 1}"#]).unwrap();
    let list = RecordList::parse(&bytes).unwrap();
    assert_eq!(plugin.on_produce(&ctx("p"), &list), ProduceVerdict::Accept);
}

#[test]
fn a_missing_key_rejects_the_produce() {
    let plugin = setup();
    stub::remove_key("orders-key");
    let bytes = stub::values(&[ORDER]).unwrap();
    let list = RecordList::parse(&bytes).unwrap();
    let ProduceVerdict::Reject(rejections) = plugin.on_produce(&ctx("p"), &list) else {
        panic!("expected a rejection");
    };
    assert!(
        rejections[0].reason.contains("cannot encrypt field `card`"),
        "{rejections:?}"
    );
}

#[test]
fn tampered_or_moved_ciphertext_fails_the_fetch() {
    let plugin = setup();
    stub::permit("alice", "Decrypt", "orders");
    let stored = values(&produce(&plugin, &[r#"{"card": "4111", "ssn": "1"}"#])).remove(0);
    let mut doc: serde_json::Value = serde_json::from_str(&stored).unwrap();
    // The card's ciphertext moved into the ssn field: the aad (field name) no longer matches.
    doc["ssn"] = doc["card"].clone();
    let moved = serde_json::to_string(&doc).unwrap();
    // A flipped character in the base64.
    let card = doc["card"].as_str().unwrap().to_string();
    let last = card.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &card[..card.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    doc["card"] = serde_json::Value::String(flipped);
    doc["ssn"] = serde_json::Value::String("1".into());
    let altered = serde_json::to_string(&doc).unwrap();
    for bad in [moved, altered, format!(r#"{{"card": "{PREFIX}***"}}"#)] {
        let bytes = stub::values(&[bad.as_str()]).unwrap();
        let list = RecordList::parse(&bytes).unwrap();
        match plugin.on_fetch(&ctx("alice"), &list) {
            FetchVerdict::Fail(reason) => assert!(reason.starts_with("record 0: "), "{reason}"),
            other => panic!("expected a failed fetch for {bad}, got {other:?}"),
        }
    }
    // Another topic's consumer cannot decrypt it either.
    stub::permit("alice", "Decrypt", "elsewhere");
    let bytes = stub::values(&[stored.as_str()]).unwrap();
    let list = RecordList::parse(&bytes).unwrap();
    assert!(matches!(
        plugin.on_fetch(&CallContext::new("elsewhere", "alice"), &list),
        FetchVerdict::Fail(_)
    ));
}

#[test]
fn records_without_ciphertext_pass_unchanged_on_fetch() {
    let plugin = setup();
    stub::permit("alice", "Decrypt", "orders");
    let bytes = stub::values(&[r#"{"id": 1}"#, "legacy text", r#"{"card": "plain"}"#]).unwrap();
    let list = RecordList::parse(&bytes).unwrap();
    assert_eq!(plugin.on_fetch(&ctx("alice"), &list), FetchVerdict::Pass);
}

#[test]
fn keys_headers_and_timestamps_survive() {
    let plugin = setup();
    stub::permit("alice", "Decrypt", "orders");
    let mut b = RecordListBuilder::new();
    b.push(
        3,
        99,
        Some(b"key-1"),
        Some(ORDER.as_bytes()),
        &[("trace", Some(b"abc")), ("n", None)],
    )
    .unwrap();
    let bytes = b.finish();
    let list = RecordList::parse(&bytes).unwrap();
    let ProduceVerdict::Replace(stored) = plugin.on_produce(&ctx("p"), &list) else {
        panic!("expected a replacement");
    };
    let stored_list = RecordList::parse(&stored).unwrap();
    let record = stored_list.iter().next().unwrap();
    assert_eq!(
        (record.offset_delta, record.timestamp, record.key),
        (3, 99, Some(&b"key-1"[..]))
    );
    assert_eq!(record.header("trace"), Some(&b"abc"[..]));
    assert_eq!(record.headers().count(), 2);
}

#[test]
fn bad_configs_fail_init() {
    for config in [
        "{}",
        r#"{"key": "", "fields": ["a"]}"#,
        r#"{"key": "k", "fields": []}"#,
        r#"{"key": "k", "fields": ["a..b"]}"#,
        r#"{"key": "k", "fields": ["a"], "extra": 1}"#,
        r#"{"key": "k", "fields": ["a", "a.b"]}"#,
        r#"{"key": "k", "fields": ["a.b", "a"]}"#,
        r#"{"key": "k", "fields": ["a", "a"]}"#,
    ] {
        assert!(FieldEncrypt::init(config).is_err(), "{config}");
    }
}

/// `plugins/examples/field-encrypt.toml` stays a valid manifest whose `[config]` this plugin accepts.
#[test]
fn example_manifest_config_initialises() {
    let text = include_str!("../../examples/field-encrypt.toml");
    let manifest: toml::Table = toml::from_str(text).unwrap();
    for key in ["topics", "hooks", "order", "keys", "config"] {
        assert!(manifest.contains_key(key), "missing `{key}`");
    }
    let config = serde_json::to_string(&manifest["config"]).unwrap();
    if let Err(e) = FieldEncrypt::init(&config) {
        panic!("{config}: {e}");
    }
}

#[test]
fn every_kind_of_json_value_round_trips_exactly() {
    let plugin = setup();
    stub::permit("alice", "Decrypt", "orders");
    let samples = [
        r#""4111 1111 1111 1111""#,
        r#""quote \" backslash \\ unicode \u00e9 snowman ☃ newline \n""#,
        "12.50",
        "-0",
        "1e400",
        "18446744073709551616",
        "true",
        "null",
        "[]",
        r#"[1, "two", {"three": [3]}]"#,
        r#"{"number": "5500", "cvc": 123, "nested": {"deep": [null]}}"#,
        "{}",
    ];
    for sample in samples {
        let value = format!(
            r#"{{"id":1,"card":{sample},"note":"keep \u00e9","address":{{"street":{sample},"n":2}},"ssn":{sample}}}"#
        );
        let stored = produce(&plugin, &[value.as_str()]);
        let stored_text = values(&stored).remove(0);
        assert!(
            stored_text.contains(r#""note":"keep \u00e9""#),
            "untouched member changed: {stored_text}"
        );
        let list = RecordList::parse(&stored).unwrap();
        let FetchVerdict::Replace(read) = plugin.on_fetch(&ctx("alice"), &list) else {
            panic!("expected decrypted records for {sample}");
        };
        let read = values(&read).remove(0);
        // Each field comes back as its exact original text.
        assert!(read.contains(&format!(r#""card":{sample}"#)), "{read}");
        assert!(read.contains(&format!(r#""street":{sample}"#)), "{read}");
        assert!(read.contains(&format!(r#""ssn":{sample}"#)), "{read}");
    }
}

const PSEUDO_CONFIG: &str = r#"{"key": "orders-key", "fields": ["card"], "pseudonymize": ["user_id", "contact.email"], "pseudonym_key": "pseudo-key"}"#;

fn pseudo_setup() -> FieldEncrypt {
    stub::reset();
    stub::add_key("orders-key", [42; 32]);
    stub::add_key("pseudo-key", [7; 32]);
    FieldEncrypt::init(PSEUDO_CONFIG).unwrap()
}

fn stored(plugin: &FieldEncrypt, records: &[&str]) -> Vec<serde_json::Value> {
    values(&produce(plugin, records))
        .iter()
        .map(|v| serde_json::from_str(v).unwrap())
        .collect()
}

#[test]
fn pseudonyms_replace_the_values_are_stable_and_keep_records_joinable() {
    let plugin = pseudo_setup();
    let out = stored(
        &plugin,
        &[
            r#"{"user_id": "user123", "card": "4111", "contact": {"email": "a@example.com"}}"#,
            // The same string written with an escape, and a number id.
            r#"{"user_id": "user\u00312\u0033", "contact": {"email": "b@example.com"}}"#,
            r#"{"user_id": 42, "n": 1}"#,
        ],
    );
    let id = |i: usize| out[i]["user_id"].as_str().unwrap().to_string();
    assert!(id(0).starts_with(PSEUDONYM_PREFIX), "{}", id(0));
    assert_eq!(id(0).len(), PSEUDONYM_PREFIX.len() + 64);
    assert_eq!(id(0), id(1), "equal values, equal pseudonyms");
    assert_ne!(id(0), id(2));
    assert_ne!(out[0]["contact"]["email"], out[1]["contact"]["email"]);
    assert!(
        out[0]["card"].as_str().unwrap().starts_with(PREFIX),
        "card is encrypted"
    );
    assert_eq!(out[2]["n"], 1);
    // Stable across batches and plugin instances (same key), different under another key.
    let again = stored(&pseudo_setup(), &[r#"{"user_id": "user123"}"#]);
    assert_eq!(again[0]["user_id"].as_str().unwrap(), id(0));
    stub::add_key("pseudo-key", [8; 32]);
    let other_key = stored(&plugin, &[r#"{"user_id": "user123"}"#]);
    assert_ne!(other_key[0]["user_id"].as_str().unwrap(), id(0));
    // The same value in another field gets another pseudonym (no cross-field correlation).
    let plugin =
        FieldEncrypt::init(r#"{"pseudonymize": ["a", "b"], "pseudonym_key": "pseudo-key"}"#)
            .unwrap();
    let ab = stored(&plugin, &[r#"{"a": "x", "b": "x"}"#]);
    assert_ne!(ab[0]["a"], ab[0]["b"]);
}

#[test]
fn pseudonyms_stay_pseudonyms_for_every_consumer() {
    let plugin = pseudo_setup();
    stub::permit("alice", "Decrypt", "orders");
    let bytes = produce(
        &plugin,
        &[r#"{"user_id": "user123", "card": "4111", "contact": {"email": "a@example.com"}}"#],
    );
    assert!(!contains(&bytes, "user123") && !contains(&bytes, "a@example.com"));
    let list = RecordList::parse(&bytes).unwrap();
    let FetchVerdict::Replace(read) = plugin.on_fetch(&ctx("alice"), &list) else {
        panic!("expected the card decrypted");
    };
    let read: serde_json::Value = serde_json::from_str(&values(&read)[0]).unwrap();
    assert_eq!(read["card"], "4111");
    assert!(read["user_id"]
        .as_str()
        .unwrap()
        .starts_with(PSEUDONYM_PREFIX));
    // A pseudonymize-only plugin has nothing to do on fetch.
    let only =
        FieldEncrypt::init(r#"{"pseudonymize": ["user_id"], "pseudonym_key": "pseudo-key"}"#)
            .unwrap();
    let bytes = produce(&only, &[r#"{"user_id": "user123"}"#]);
    let list = RecordList::parse(&bytes).unwrap();
    assert!(matches!(
        only.on_fetch(&ctx("alice"), &list),
        FetchVerdict::Pass
    ));
}

#[test]
fn a_missing_pseudonym_key_refuses_the_batch_naming_the_field() {
    stub::reset();
    let plugin =
        FieldEncrypt::init(r#"{"pseudonymize": ["user_id"], "pseudonym_key": "gone"}"#).unwrap();
    let bytes = stub::values(&[r#"{"user_id": "u"}"#]).unwrap();
    let list = RecordList::parse(&bytes).unwrap();
    let ProduceVerdict::Reject(r) = plugin.on_produce(&ctx("producer"), &list) else {
        panic!("expected a refusal");
    };
    assert!(
        r[0].reason.contains("cannot pseudonymize field `user_id`"),
        "{:?}",
        r[0].reason
    );
}

#[test]
fn bad_pseudonymization_configs_fail_init() {
    for config in [
        r#"{"pseudonymize": ["a"]}"#,
        r#"{"pseudonymize": [], "fields": []}"#,
        r#"{"key": "k", "fields": ["a"], "pseudonymize": ["b"], "pseudonym_key": "k"}"#,
        r#"{"key": "k", "fields": ["a"], "pseudonymize": ["a.b"], "pseudonym_key": "p"}"#,
        r#"{"pseudonymize": ["a"], "pseudonym_key": ""}"#,
    ] {
        assert!(FieldEncrypt::init(config).is_err(), "{config}");
    }
}
