//! Round trips, tampering, batches and key rotation, through the public API.
use super::*;
use crate::plugin::keyring::Keyring;

fn ring(names: &[&str]) -> Keyring {
    let mut r = Keyring::default();
    for n in names {
        r.generate(n).unwrap();
    }
    r
}

#[test]
fn round_trip_and_tamper_detection() {
    let dir = tempfile::tempdir().unwrap();
    let store = EnvelopeStore::new(dir.path());
    let keys = ring(&["k1"]);
    let ct = store
        .encrypt(&keys, "k1", "orders", b"4111-1111", b"card")
        .unwrap();
    assert!(!ct.windows(9).any(|w| w == b"4111-1111"));
    assert_eq!(parse(&ct).unwrap().kek, "k1");
    assert_eq!(
        store.decrypt(&keys, "orders", &ct, b"card").unwrap(),
        b"4111-1111"
    );
    assert_eq!(
        store.decrypt(&keys, "orders", &ct, b"other"),
        Err(EnvelopeError::Decrypt)
    );
    let mut altered = ct.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert_eq!(
        store.decrypt(&keys, "orders", &altered, b"card"),
        Err(EnvelopeError::Decrypt)
    );
    // Another topic has other data keys.
    assert!(store.decrypt(&keys, "payments", &ct, b"card").is_err());
    for cut in 0..ct.len() {
        assert!(store.decrypt(&keys, "orders", &ct[..cut], b"card").is_err());
    }
}

#[test]
fn batches_seal_and_open_like_single_calls() {
    use palisade_sdk::byte_list::{encode, ByteList};
    let dir = tempfile::tempdir().unwrap();
    let store = EnvelopeStore::new(dir.path());
    let keys = ring(&["k1"]);
    let plain: [&[u8]; 3] = [b"4111-1111", b"", b"Main Street"];
    let aads: [&[u8]; 3] = [b"card", b"empty", b"address.street"];
    let sealed = store
        .encrypt_many(
            &keys,
            "k1",
            "orders",
            &encode(plain).unwrap(),
            &encode(aads).unwrap(),
        )
        .unwrap();
    let list = ByteList::parse(&sealed).unwrap();
    assert_eq!(list.len(), 3);
    let cts: Vec<&[u8]> = list.iter().collect();
    // Each item opens alone, and the nonces differ.
    for ((ct, p), a) in cts.iter().zip(plain).zip(aads) {
        assert_eq!(store.decrypt(&keys, "orders", ct, a).unwrap(), p);
    }
    assert_ne!(parse(cts[0]).unwrap().nonce, parse(cts[2]).unwrap().nonce);
    let opened = store
        .decrypt_many(&keys, "orders", &sealed, &encode(aads).unwrap())
        .unwrap();
    assert_eq!(
        ByteList::parse(&opened).unwrap().iter().collect::<Vec<_>>(),
        plain
    );
    // A single ciphertext opens in a batch too.
    let one = store.encrypt(&keys, "k1", "orders", b"x", b"y").unwrap();
    let opened = store
        .decrypt_many(
            &keys,
            "orders",
            &encode([&one[..]]).unwrap(),
            &encode([&b"y"[..]]).unwrap(),
        )
        .unwrap();
    assert_eq!(
        ByteList::parse(&opened).unwrap().iter().collect::<Vec<_>>(),
        [b"x"]
    );
    // The first item that fails is named; mismatched or malformed lists are refused.
    let swapped: [&[u8]; 3] = [b"card", b"address.street", b"empty"];
    assert_eq!(
        store
            .decrypt_many(&keys, "orders", &sealed, &encode(swapped).unwrap())
            .unwrap_err()
            .to_string(),
        "item 1: decryption failed (wrong topic, altered ciphertext or aad)"
    );
    assert!(store
        .decrypt_many(
            &keys,
            "orders",
            &sealed,
            &encode(aads[..2].iter().copied()).unwrap()
        )
        .is_err());
    assert!(store
        .encrypt_many(
            &keys,
            "k1",
            "orders",
            &sealed[..sealed.len() - 1],
            &encode(aads).unwrap()
        )
        .is_err());
    assert!(store
        .encrypt_many(
            &keys,
            "nope",
            "orders",
            &encode(plain).unwrap(),
            &encode(aads).unwrap()
        )
        .is_err());
}

#[test]
fn rotation_keeps_old_data_readable_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ring(&["old", "new"]);
    let store = EnvelopeStore::new(dir.path());
    let before = store.encrypt(&keys, "old", "t", b"first", b"").unwrap();
    let after = store.encrypt(&keys, "new", "t", b"second", b"").unwrap();
    assert_eq!(parse(&after).unwrap().kek, "new");
    assert_ne!(
        parse(&before).unwrap().data_key,
        parse(&after).unwrap().data_key
    );
    // A fresh store (a restarted broker) reads the wrapped data keys from disk.
    let reopened = EnvelopeStore::new(dir.path());
    assert_eq!(
        reopened.decrypt(&keys, "t", &before, b"").unwrap(),
        b"first"
    );
    assert_eq!(
        reopened.decrypt(&keys, "t", &after, b"").unwrap(),
        b"second"
    );
    // The same data key is reused for further data under the same keyring key.
    let again = reopened.encrypt(&keys, "t", "t", b"x", b"");
    assert!(matches!(again, Err(EnvelopeError::UnknownKey(_))));
    let third = reopened.encrypt(&keys, "new", "t", b"third", b"").unwrap();
    assert_eq!(
        parse(&third).unwrap().data_key,
        parse(&after).unwrap().data_key
    );
    // Without the old keyring key, old data is unreadable; new data still reads.
    let only_new = ring(&[]);
    let fresh = EnvelopeStore::new(dir.path());
    assert!(fresh.decrypt(&only_new, "t", &before, b"").is_err());
    // Stored data keys are wrapped: the file holds no raw key material we could use
    // without the keyring (checked by the failure above) and is mode 0600.
    use std::os::unix::fs::PermissionsExt;
    let file = dir.path().join(format!("{}.json", hex::encode("t")));
    let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
