//! The native stand-in for the broker, so plugins unit-test with `cargo test` (not on wasm32).
//!
//! The host functions in [`crate::host`] run here in-process with real crypto (AES-256-GCM,
//! HMAC-SHA256, SHA-256, Ed25519) over a keyring the test sets up, answer `authorize` from the
//! permits the test grants (everything else is denied, like the broker's default) and capture
//! log lines. State is per thread, and `cargo test` runs each test on its own thread, so tests
//! do not see each other's keys or logs.
//!
//! ```
//! use palisade_sdk::{host, stub, LogLevel};
//!
//! stub::reset();
//! stub::add_key("orders-key", [7; 32]);
//! stub::permit("alice", "Decrypt", "orders");
//!
//! let sealed = host::encrypt("orders-key", "orders", b"4111", b"card").unwrap();
//! assert_eq!(host::decrypt("orders", &sealed, b"card").unwrap(), b"4111");
//! assert!(host::decrypt("orders", &sealed, b"ssn").is_err());
//! assert!(host::authorize("alice", "Decrypt", "orders"));
//! assert!(!host::authorize("bob", "Decrypt", "orders"));
//!
//! host::log(LogLevel::Info, "hello");
//! assert_eq!(stub::take_logs(), vec![(LogLevel::Info, "hello".to_string())]);
//! ```
//!
//! The stub's ciphertext layout (`stub1`, key id, 12-byte nonce, ciphertext and tag, under a
//! per-topic data key derived from the keyring key) is not the broker's: a test can check that
//! plaintext never appears and that round trips work, not compare bytes with the broker.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::byte_list::{pairs, ByteListBuilder, OwnedByteList};
use crate::records::{DecodeError, RecordListBuilder};
use crate::verdict::LogLevel;

const MAGIC: &[u8] = b"stub1";
const NONCE_LEN: usize = 12;

#[derive(Default)]
struct State {
    keys: HashMap<String, [u8; 32]>,
    permits: HashSet<(String, String, String)>,
    logs: Vec<(LogLevel, String)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// Forgets every key, permit and log line of this thread.
pub fn reset() {
    with(|s| *s = State::default());
}

/// Adds (or replaces) keyring key `id`. Only added ids work, as only the manifest's `keys` do in
/// the broker.
pub fn add_key(id: &str, key: [u8; 32]) {
    with(|s| {
        s.keys.insert(id.to_string(), key);
    });
}

/// Removes keyring key `id` (to test what a plugin does when a key is missing).
pub fn remove_key(id: &str) {
    with(|s| {
        s.keys.remove(id);
    });
}

/// Lets `principal` do `action` on `topic` in `host::authorize`; anything not permitted is
/// denied.
pub fn permit(principal: &str, action: &str, topic: &str) {
    with(|s| {
        s.permits
            .insert((principal.to_string(), action.to_string(), topic.to_string()));
    });
}

/// Withdraws a permit granted with [`permit`].
pub fn forbid(principal: &str, action: &str, topic: &str) {
    with(|s| {
        s.permits
            .remove(&(principal.to_string(), action.to_string(), topic.to_string()));
    });
}

/// The log lines written so far (kept).
pub fn logs() -> Vec<(LogLevel, String)> {
    with(|s| s.logs.clone())
}

/// The log lines written so far (cleared).
pub fn take_logs() -> Vec<(LogLevel, String)> {
    with(|s| std::mem::take(&mut s.logs))
}

/// A record list of records that have only values (offset deltas 0.., timestamp 0, no key, no
/// headers), for tests.
pub fn values<V: AsRef<[u8]>>(values: &[V]) -> Result<Vec<u8>, DecodeError> {
    let mut builder = RecordListBuilder::new();
    for (i, value) in values.iter().enumerate() {
        let delta = u32::try_from(i).map_err(|_| DecodeError("too many records"))?;
        builder.push(delta, 0, None, Some(value.as_ref()), &[])?;
    }
    Ok(builder.finish())
}

pub(crate) fn log(level: LogLevel, message: &str) {
    with(|s| s.logs.push((level, message.to_string())));
}

fn keyring_key(id: &str) -> Result<[u8; 32], String> {
    with(|s| s.keys.get(id).copied()).ok_or_else(|| format!("unknown key `{id}`"))
}

/// The topic's data key: the broker wraps a random one with the keyring key; the stub derives
/// it, which keeps the property that matters to plugins (another topic cannot decrypt).
fn data_key(key_id: &str, topic: &str) -> Result<Aes256Gcm, String> {
    let master = keyring_key(key_id)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&master).map_err(|e| e.to_string())?;
    mac.update(b"palisade stub data key\0");
    mac.update(topic.as_bytes());
    let bytes = mac.finalize().into_bytes();
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)))
}

pub(crate) fn encrypt(
    key_id: &str,
    topic: &str,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, String> {
    let cipher = data_key(key_id, topic)?;
    let id_len = u8::try_from(key_id.len()).map_err(|_| "key id too long".to_string())?;
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| "encryption failed".to_string())?;
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + key_id.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(MAGIC);
    out.push(id_len);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

pub(crate) fn decrypt(topic: &str, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    let malformed = || "malformed ciphertext".to_string();
    let rest = ciphertext.strip_prefix(MAGIC).ok_or_else(malformed)?;
    let (&id_len, rest) = rest.split_first().ok_or_else(malformed)?;
    let (key_id, rest) = rest
        .split_at_checked(usize::from(id_len))
        .ok_or_else(malformed)?;
    let key_id = std::str::from_utf8(key_id).map_err(|_| malformed())?;
    let (nonce, sealed) = rest.split_at_checked(NONCE_LEN).ok_or_else(malformed)?;
    let cipher = data_key(key_id, topic)?;
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
        .map_err(|_| "decryption failed: wrong topic, aad or altered ciphertext".to_string())
}

pub(crate) fn encrypt_many(
    key_id: &str,
    topic: &str,
    plaintexts: &[u8],
    aads: &[u8],
) -> Result<OwnedByteList, String> {
    let mut out = ByteListBuilder::default();
    for (plaintext, aad) in pairs(plaintexts, aads).map_err(|e| e.to_string())? {
        out.push(&encrypt(key_id, topic, plaintext, aad)?)
            .map_err(|e| e.to_string())?;
    }
    OwnedByteList::parse(out.finish()).map_err(|e| e.to_string())
}

pub(crate) fn decrypt_many(
    topic: &str,
    ciphertexts: &[u8],
    aads: &[u8],
) -> Result<OwnedByteList, String> {
    let mut out = ByteListBuilder::default();
    for (i, (ciphertext, aad)) in pairs(ciphertexts, aads)
        .map_err(|e| e.to_string())?
        .enumerate()
    {
        let plain = decrypt(topic, ciphertext, aad).map_err(|e| format!("item {i}: {e}"))?;
        out.push(&plain).map_err(|e| e.to_string())?;
    }
    OwnedByteList::parse(out.finish()).map_err(|e| e.to_string())
}

pub(crate) fn hmac_sha256(key_id: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    let key = keyring_key(key_id)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

pub(crate) fn ed25519_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(public_key) = <[u8; 32]>::try_from(public_key) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&public_key) else {
        return false;
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(message, &signature).is_ok()
}

pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

pub(crate) fn authorize(principal: &str, action: &str, topic: &str) -> bool {
    with(|s| {
        s.permits
            .contains(&(principal.to_string(), action.to_string(), topic.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host;

    #[test]
    fn batch_encryption_matches_single_calls() {
        reset();
        add_key("k", [2; 32]);
        let items: [(&[u8], &[u8]); 3] = [(b"one", b"a"), (b"", b"b"), (b"three", b"")];
        let sealed = host::encrypt_many("k", "t", &items).unwrap();
        assert_eq!(sealed.len(), 3);
        for ((plain, aad), ct) in items.iter().zip(&sealed) {
            assert_eq!(host::decrypt("t", ct, aad).unwrap(), *plain);
        }
        let back: Vec<(&[u8], &[u8])> = sealed.iter().zip(items.iter().map(|i| i.1)).collect();
        let opened = host::decrypt_many("t", &back).unwrap();
        assert_eq!(opened.iter().collect::<Vec<_>>(), items.map(|i| i.0));
        // One wrong aad fails the whole call and names the item.
        let wrong: Vec<(&[u8], &[u8])> = sealed.iter().map(|c| (c, &b"a"[..])).collect();
        let err = host::decrypt_many("t", &wrong).unwrap_err();
        assert!(err.starts_with("item 1:"), "{err}");
        assert!(host::encrypt_many("missing", "t", &items).is_err());
        assert!(host::encrypt_many("k", "t", &[]).unwrap().is_empty());
    }

    #[test]
    fn encryption_binds_topic_aad_and_key() {
        reset();
        add_key("k", [1; 32]);
        let sealed = host::encrypt("k", "t", b"secret", b"f").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(host::decrypt("t", &sealed, b"f").unwrap(), b"secret");
        assert!(host::decrypt("other", &sealed, b"f").is_err());
        assert!(host::decrypt("t", &sealed, b"g").is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(host::decrypt("t", &altered, b"f").is_err());
        assert!(host::encrypt("missing", "t", b"x", b"").is_err());
        remove_key("k");
        assert!(host::decrypt("t", &sealed, b"f").is_err());
        for cut in 0..sealed.len() {
            assert!(host::decrypt("t", &sealed[..cut], b"f").is_err());
        }
    }

    #[test]
    fn hmac_and_sha256_match_known_answers() {
        reset();
        // RFC 4231 test case 2 uses a 4-byte key; HMAC pads keys, so zero-pad it to 32 bytes.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        add_key("jefe", key);
        let mac = host::hmac_sha256("jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&host::sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ed25519_verifies_and_refuses_garbage() {
        use ed25519_dalek::{Signer, SigningKey};
        let key = SigningKey::from_bytes(&[9; 32]);
        let public = key.verifying_key().to_bytes();
        let sig = key.sign(b"msg").to_bytes();
        assert!(host::ed25519_verify(&public, b"msg", &sig));
        assert!(!host::ed25519_verify(&public, b"msh", &sig));
        assert!(!host::ed25519_verify(&public[..31], b"msg", &sig));
        assert!(!host::ed25519_verify(&public, b"msg", &sig[..63]));
    }

    #[test]
    fn authorize_denies_unless_permitted_and_logs_are_captured() {
        reset();
        assert!(!host::authorize("alice", "Decrypt", "orders"));
        permit("alice", "Decrypt", "orders");
        assert!(host::authorize("alice", "Decrypt", "orders"));
        assert!(!host::authorize("alice", "Decrypt", "payments"));
        forbid("alice", "Decrypt", "orders");
        assert!(!host::authorize("alice", "Decrypt", "orders"));
        host::log(LogLevel::Warn, "w");
        assert_eq!(logs().len(), 1);
        assert_eq!(take_logs(), vec![(LogLevel::Warn, "w".to_string())]);
        assert!(logs().is_empty());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
