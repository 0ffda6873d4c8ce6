//! Envelope encryption for the `encrypt`/`decrypt` host functions.
//!
//! Each topic has data keys (random AES-256 keys), each wrapped by one keyring key (the key
//! encryption key, KEK) with AES-256-GCM and stored under the data dir in
//! `plugin-keys/<hex topic>.json`. `encrypt(kek, ..)` uses the newest data key wrapped by
//! `kek`, creating one the first time. A ciphertext names its KEK and data key:
//!
//! ```text
//! u8 version (1) | u8 kek-id length | kek id | u32 data key id (BE) | 12-byte nonce | ct+tag
//! ```
//!
//! so `decrypt` needs no key id, and rotating to a new keyring key for new data keeps old data
//! readable as long as the old keyring key stays in the keyring. The header and the topic are
//! authenticated (GCM additional data) along with the caller's `aad`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::keyring::{random, write_atomically, Keyring, KEY_LEN};

const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("key `{0}` is not in the keyring")]
    UnknownKey(String),
    #[error("ciphertext is malformed: {0}")]
    Malformed(&'static str),
    #[error("data key {0} of this topic is unknown")]
    UnknownDataKey(u32),
    #[error("decryption failed (wrong topic, altered ciphertext or aad)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("data key store: {0}")]
    Store(String),
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DataKeyFile {
    version: u32,
    keys: Vec<StoredDataKey>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct StoredDataKey {
    id: u32,
    kek: String,
    nonce: String,
    wrapped: String,
}

#[derive(Default)]
struct TopicKeys {
    stored: Vec<StoredDataKey>,
    ciphers: HashMap<u32, Arc<Aes256Gcm>>,
}

/// The parsed header of a ciphertext.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub kek: &'a str,
    pub data_key: u32,
    nonce: &'a [u8],
    header: &'a [u8],
    body: &'a [u8],
}

/// Reads a ciphertext's header without decrypting it (to check which keyring key it needs).
pub fn parse(ciphertext: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let (&version, rest) = ciphertext
        .split_first()
        .ok_or(EnvelopeError::Malformed("empty"))?;
    if version != FORMAT_VERSION {
        return Err(EnvelopeError::Malformed("unknown format version"));
    }
    let (&kek_len, rest) = rest
        .split_first()
        .ok_or(EnvelopeError::Malformed("truncated"))?;
    let (kek, rest) = rest
        .split_at_checked(usize::from(kek_len))
        .ok_or(EnvelopeError::Malformed("truncated"))?;
    let kek = std::str::from_utf8(kek).map_err(|_| EnvelopeError::Malformed("key id"))?;
    let (id, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(EnvelopeError::Malformed("truncated"))?;
    let (nonce, body) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(EnvelopeError::Malformed("truncated"))?;
    let header_len = ciphertext.len() - body.len();
    let header = ciphertext
        .get(..header_len)
        .ok_or(EnvelopeError::Malformed("truncated"))?;
    Ok(Envelope {
        kek,
        data_key: u32::from_be_bytes(*id),
        nonce,
        header,
        body,
    })
}

/// Data keys per topic, persisted under `dir`.
pub struct EnvelopeStore {
    dir: PathBuf,
    topics: Mutex<HashMap<String, TopicKeys>>,
}

impl std::fmt::Debug for EnvelopeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn wrap_aad(topic: &str, id: u32, kek: &str) -> Vec<u8> {
    let mut aad = b"palisade-data-key\0".to_vec();
    aad.extend_from_slice(topic.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&id.to_be_bytes());
    aad.extend_from_slice(kek.as_bytes());
    aad
}

fn data_aad(header: &[u8], topic: &str, aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + topic.len() + aad.len() + 4);
    out.extend_from_slice(header);
    out.extend_from_slice(&u32::try_from(topic.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(aad);
    out
}

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

impl EnvelopeStore {
    /// Data keys live in `dir` (created on first use).
    pub fn new(dir: &Path) -> Self {
        EnvelopeStore {
            dir: dir.to_path_buf(),
            topics: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, topic: &str) -> PathBuf {
        self.dir.join(format!("{}.json", hex::encode(topic)))
    }

    fn load_topic(&self, topic: &str) -> Result<TopicKeys, EnvelopeError> {
        let path = self.path(topic);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TopicKeys::default()),
            Err(e) => return Err(EnvelopeError::Store(format!("`{}`: {e}", path.display()))),
        };
        let file: DataKeyFile = serde_json::from_str(&text)
            .map_err(|e| EnvelopeError::Store(format!("`{}`: {e}", path.display())))?;
        Ok(TopicKeys {
            stored: file.keys,
            ciphers: HashMap::new(),
        })
    }

    fn save_topic(&self, topic: &str, keys: &TopicKeys) -> Result<(), EnvelopeError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| EnvelopeError::Store(format!("`{}`: {e}", self.dir.display())))?;
        let file = DataKeyFile {
            version: 1,
            keys: keys.stored.clone(),
        };
        let text =
            serde_json::to_vec_pretty(&file).map_err(|e| EnvelopeError::Store(e.to_string()))?;
        let path = self.path(topic);
        write_atomically(&path, &text)
            .map_err(|e| EnvelopeError::Store(format!("`{}`: {e}", path.display())))
    }

    /// The cipher for data key `id` of `topic`, unwrapping it with the keyring on first use.
    fn data_cipher(
        keys: &mut TopicKeys,
        keyring: &Keyring,
        topic: &str,
        id: u32,
    ) -> Result<Arc<Aes256Gcm>, EnvelopeError> {
        if let Some(c) = keys.ciphers.get(&id) {
            return Ok(c.clone());
        }
        let stored = keys
            .stored
            .iter()
            .find(|k| k.id == id)
            .ok_or(EnvelopeError::UnknownDataKey(id))?;
        let kek = keyring
            .get(&stored.kek)
            .ok_or_else(|| EnvelopeError::UnknownKey(stored.kek.clone()))?;
        let nonce = B64
            .decode(&stored.nonce)
            .ok()
            .filter(|n| n.len() == NONCE_LEN)
            .ok_or_else(|| EnvelopeError::Store(format!("data key {id}: bad nonce")))?;
        let wrapped = B64
            .decode(&stored.wrapped)
            .map_err(|_| EnvelopeError::Store(format!("data key {id}: bad base64")))?;
        let key = cipher(kek.bytes())
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &wrapped,
                    aad: &wrap_aad(topic, id, &stored.kek),
                },
            )
            .ok()
            .and_then(|k| <[u8; KEY_LEN]>::try_from(k.as_slice()).ok())
            .ok_or_else(|| {
                EnvelopeError::Store(format!(
                    "data key {id} does not unwrap with keyring key `{}`",
                    stored.kek
                ))
            })?;
        let c = Arc::new(cipher(&key));
        keys.ciphers.insert(id, c.clone());
        Ok(c)
    }

    /// The newest data key of `topic` wrapped by `kek`, created (and persisted) if none.
    fn current_key(
        &self,
        keyring: &Keyring,
        kek: &str,
        topic: &str,
    ) -> Result<(u32, Arc<Aes256Gcm>), EnvelopeError> {
        let kek_key = keyring
            .get(kek)
            .ok_or_else(|| EnvelopeError::UnknownKey(kek.to_string()))?;
        let mut topics = self.topics.lock();
        if !topics.contains_key(topic) {
            let loaded = self.load_topic(topic)?;
            topics.insert(topic.to_string(), loaded);
        }
        let keys = topics
            .get_mut(topic)
            .ok_or(EnvelopeError::Store("topic keys vanished".into()))?;
        let newest = keys
            .stored
            .iter()
            .filter(|k| k.kek == kek)
            .map(|k| k.id)
            .max();
        let id = match newest {
            Some(id) => id,
            None => {
                let id = keys.stored.iter().map(|k| k.id).max().map_or(1, |m| m + 1);
                let data_key: [u8; KEY_LEN] = random().map_err(|_| EnvelopeError::Encrypt)?;
                let nonce: [u8; NONCE_LEN] = random().map_err(|_| EnvelopeError::Encrypt)?;
                let wrapped = cipher(kek_key.bytes())
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: &data_key,
                            aad: &wrap_aad(topic, id, kek),
                        },
                    )
                    .map_err(|_| EnvelopeError::Encrypt)?;
                keys.stored.push(StoredDataKey {
                    id,
                    kek: kek.to_string(),
                    nonce: B64.encode(nonce),
                    wrapped: B64.encode(wrapped),
                });
                if let Err(e) = self.save_topic(topic, keys) {
                    keys.stored.pop();
                    return Err(e);
                }
                keys.ciphers.insert(id, Arc::new(cipher(&data_key)));
                id
            }
        };
        let c = Self::data_cipher(keys, keyring, topic, id)?;
        Ok((id, c))
    }

    /// AES-256-GCM under `topic`'s current data key for keyring key `kek`.
    pub fn encrypt(
        &self,
        keyring: &Keyring,
        kek: &str,
        topic: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let kek_len = u8::try_from(kek.len()).map_err(|_| EnvelopeError::UnknownKey(kek.into()))?;
        let (id, c) = self.current_key(keyring, kek, topic)?;
        let nonce: [u8; NONCE_LEN] = random().map_err(|_| EnvelopeError::Encrypt)?;
        let mut out = Vec::with_capacity(2 + kek.len() + 4 + NONCE_LEN + plaintext.len() + 16);
        out.push(FORMAT_VERSION);
        out.push(kek_len);
        out.extend_from_slice(kek.as_bytes());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&nonce);
        let sealed = c
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &data_aad(&out, topic, aad),
                },
            )
            .map_err(|_| EnvelopeError::Encrypt)?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Reverses [`encrypt`](Self::encrypt).
    pub fn decrypt(
        &self,
        keyring: &Keyring,
        topic: &str,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let env = parse(ciphertext)?;
        let c = {
            let mut topics = self.topics.lock();
            if !topics.contains_key(topic) {
                let loaded = self.load_topic(topic)?;
                topics.insert(topic.to_string(), loaded);
            }
            let keys = topics
                .get_mut(topic)
                .ok_or(EnvelopeError::Store("topic keys vanished".into()))?;
            // The header's key id must be the one the data key is wrapped by.
            if !keys
                .stored
                .iter()
                .any(|k| k.id == env.data_key && k.kek == env.kek)
            {
                return Err(EnvelopeError::UnknownDataKey(env.data_key));
            }
            Self::data_cipher(keys, keyring, topic, env.data_key)?
        };
        c.decrypt(
            Nonce::from_slice(env.nonce),
            Payload {
                msg: env.body,
                aad: &data_aad(env.header, topic, aad),
            },
        )
        .map_err(|_| EnvelopeError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

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
}
