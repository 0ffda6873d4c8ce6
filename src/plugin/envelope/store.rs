//! Data keys per topic: random AES-256 keys, each wrapped by one keyring key and stored in
//! `<dir>/<hex topic>.json` (written atomically, mode 0600), unwrapped once and cached.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::format::{Envelope, NONCE_LEN};
use super::EnvelopeError;
use crate::plugin::keyring::{random, write_atomically, Keyring, KEY_LEN};

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
pub(super) struct TopicKeys {
    stored: Vec<StoredDataKey>,
    ciphers: HashMap<u32, Arc<Aes256Gcm>>,
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

    /// `topic`'s data keys, read from disk on first use.
    pub(super) fn topic_keys<'t>(
        &self,
        topics: &'t mut HashMap<String, TopicKeys>,
        topic: &str,
    ) -> Result<&'t mut TopicKeys, EnvelopeError> {
        if !topics.contains_key(topic) {
            let loaded = self.load_topic(topic)?;
            topics.insert(topic.to_string(), loaded);
        }
        topics
            .get_mut(topic)
            .ok_or(EnvelopeError::Store("topic keys vanished".into()))
    }

    /// The cipher for data key `id` of `topic`, unwrapping it with the keyring on first use.
    pub(super) fn data_cipher(
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
    pub(super) fn current_key(
        &self,
        keyring: &Keyring,
        kek: &str,
        topic: &str,
    ) -> Result<(u32, Arc<Aes256Gcm>), EnvelopeError> {
        let kek_key = keyring
            .get(kek)
            .ok_or_else(|| EnvelopeError::UnknownKey(kek.to_string()))?;
        let mut topics = self.topics.lock();
        let keys = self.topic_keys(&mut topics, topic)?;
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

    /// The cipher of the data key `env` names, checking that it is wrapped by the key id the
    /// header names.
    pub(super) fn opening_cipher(
        &self,
        keyring: &Keyring,
        topic: &str,
        env: &Envelope<'_>,
    ) -> Result<Arc<Aes256Gcm>, EnvelopeError> {
        let mut topics = self.topics.lock();
        let keys = self.topic_keys(&mut topics, topic)?;
        if !keys
            .stored
            .iter()
            .any(|k| k.id == env.data_key && k.kek == env.kek)
        {
            return Err(EnvelopeError::UnknownDataKey(env.data_key));
        }
        Self::data_cipher(keys, keyring, topic, env.data_key)
    }
}
