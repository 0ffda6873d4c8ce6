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

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use palisade_sdk::byte_list::{pairs, ByteListBuilder};
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
    #[error("{0}")]
    List(palisade_sdk::records::DecodeError),
    #[error("item {0}: {1}")]
    Item(usize, Box<EnvelopeError>),
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

/// The additional data of a ciphertext: its header, the topic and the caller's aad, written
/// into `out` (reused across items).
fn data_aad_into(out: &mut Vec<u8>, header: &[u8], topic: &str, aad: &[u8]) {
    out.clear();
    out.extend_from_slice(header);
    out.extend_from_slice(&u32::try_from(topic.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(aad);
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
    fn topic_keys<'t>(
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

    /// Seals with `topic`'s current data key for keyring key `kek` (created on first use).
    pub fn sealer(
        &self,
        keyring: &Keyring,
        kek: &str,
        topic: &str,
    ) -> Result<Sealer, EnvelopeError> {
        let kek_len = u8::try_from(kek.len()).map_err(|_| EnvelopeError::UnknownKey(kek.into()))?;
        let (id, cipher) = self.current_key(keyring, kek, topic)?;
        let mut header = Vec::with_capacity(2 + kek.len() + 4);
        header.push(FORMAT_VERSION);
        header.push(kek_len);
        header.extend_from_slice(kek.as_bytes());
        header.extend_from_slice(&id.to_be_bytes());
        Ok(Sealer {
            header,
            cipher,
            topic: topic.to_string(),
        })
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
        let sealer = self.sealer(keyring, kek, topic)?;
        let nonce: [u8; NONCE_LEN] = random().map_err(|_| EnvelopeError::Encrypt)?;
        let mut out = Vec::with_capacity(sealer.overhead() + plaintext.len());
        sealer.seal_into(&mut out, &nonce, plaintext, aad, &mut Vec::new())?;
        Ok(out)
    }

    /// [`encrypt`](Self::encrypt) for every item of two byte lists (plaintexts and their
    /// aads): one lock, one draw of randomness for all nonces, and the ciphertexts written
    /// straight into the returned byte list.
    pub fn encrypt_many(
        &self,
        keyring: &Keyring,
        kek: &str,
        topic: &str,
        plaintexts: &[u8],
        aads: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let items = pairs(plaintexts, aads).map_err(EnvelopeError::List)?;
        let sealer = self.sealer(keyring, kek, topic)?;
        let count = items.len();
        let mut nonces = vec![0u8; count.saturating_mul(NONCE_LEN)];
        getrandom::fill(&mut nonces).map_err(|_| EnvelopeError::Encrypt)?;
        let mut out = ByteListBuilder::with_capacity(
            plaintexts
                .len()
                .saturating_add(count.saturating_mul(sealer.overhead())),
        );
        let mut scratch = Vec::new();
        for ((i, (plaintext, aad)), nonce) in items.enumerate().zip(nonces.chunks_exact(NONCE_LEN))
        {
            out.push_with(|buf| {
                sealer
                    .seal_into(buf, nonce, plaintext, aad, &mut scratch)
                    .map_err(|e| EnvelopeError::Item(i, Box::new(e)))
            })?;
        }
        Ok(out.finish())
    }

    /// The cipher of the data key `env` names, checking that it is wrapped by the key id the
    /// header names.
    fn opening_cipher(
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

    /// Reverses [`encrypt`](Self::encrypt).
    pub fn decrypt(
        &self,
        keyring: &Keyring,
        topic: &str,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let env = parse(ciphertext)?;
        let c = self.opening_cipher(keyring, topic, &env)?;
        let mut out = Vec::with_capacity(env.body.len());
        open_into(&mut out, &c, &env, topic, aad, &mut Vec::new())?;
        Ok(out)
    }

    /// [`decrypt`](Self::decrypt) for every item of two byte lists (ciphertexts and their
    /// aads); fails as a whole, naming the first item that does not decrypt.
    pub fn decrypt_many(
        &self,
        keyring: &Keyring,
        topic: &str,
        ciphertexts: &[u8],
        aads: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let items = pairs(ciphertexts, aads).map_err(EnvelopeError::List)?;
        let mut out = ByteListBuilder::with_capacity(ciphertexts.len());
        let mut scratch = Vec::new();
        // Items of one batch almost always share a data key: look it up once.
        let mut last: Option<(String, u32, Arc<Aes256Gcm>)> = None;
        for (i, (ciphertext, aad)) in items.enumerate() {
            let item = |e| EnvelopeError::Item(i, Box::new(e));
            let env = parse(ciphertext).map_err(item)?;
            let cipher = match &last {
                Some((kek, id, c)) if kek == env.kek && *id == env.data_key => c.clone(),
                _ => {
                    let c = self.opening_cipher(keyring, topic, &env).map_err(item)?;
                    last = Some((env.kek.to_string(), env.data_key, c.clone()));
                    c
                }
            };
            out.push_with(|buf| {
                open_into(buf, &cipher, &env, topic, aad, &mut scratch).map_err(item)
            })?;
        }
        Ok(out.finish())
    }
}

impl From<palisade_sdk::records::DecodeError> for EnvelopeError {
    fn from(e: palisade_sdk::records::DecodeError) -> Self {
        EnvelopeError::List(e)
    }
}

/// A topic's current data key for one keyring key: seals many items after one lookup.
pub struct Sealer {
    /// Version, key id and data key id: the ciphertext header before the nonce.
    header: Vec<u8>,
    cipher: Arc<Aes256Gcm>,
    topic: String,
}

const TAG_LEN: usize = 16;

impl Sealer {
    /// Bytes a ciphertext adds to its plaintext.
    pub fn overhead(&self) -> usize {
        self.header.len() + NONCE_LEN + TAG_LEN
    }

    /// Appends the ciphertext of `plaintext` to `out`, encrypting in place. `scratch` holds
    /// the additional data between calls (no allocation per item).
    fn seal_into(
        &self,
        out: &mut Vec<u8>,
        nonce: &[u8],
        plaintext: &[u8],
        aad: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<(), EnvelopeError> {
        if nonce.len() != NONCE_LEN {
            return Err(EnvelopeError::Encrypt);
        }
        let start = out.len();
        out.extend_from_slice(&self.header);
        out.extend_from_slice(nonce);
        let body = out.len();
        out.extend_from_slice(plaintext);
        data_aad_into(
            scratch,
            out.get(start..body).unwrap_or_default(),
            &self.topic,
            aad,
        );
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(nonce),
                scratch.as_slice(),
                out.get_mut(body..).unwrap_or_default(),
            )
            .map_err(|_| EnvelopeError::Encrypt)?;
        out.extend_from_slice(&tag);
        Ok(())
    }
}

/// Appends the plaintext of `env` to `out`, decrypting in place; `out` is unchanged on failure.
fn open_into(
    out: &mut Vec<u8>,
    cipher: &Aes256Gcm,
    env: &Envelope<'_>,
    topic: &str,
    aad: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), EnvelopeError> {
    let (body, tag) = env
        .body
        .split_at_checked(
            env.body
                .len()
                .checked_sub(TAG_LEN)
                .ok_or(EnvelopeError::Decrypt)?,
        )
        .ok_or(EnvelopeError::Decrypt)?;
    data_aad_into(scratch, env.header, topic, aad);
    let start = out.len();
    out.extend_from_slice(body);
    let opened = cipher.decrypt_in_place_detached(
        Nonce::from_slice(env.nonce),
        scratch.as_slice(),
        out.get_mut(start..).unwrap_or_default(),
        tag.into(),
    );
    if opened.is_err() {
        out.truncate(start);
        return Err(EnvelopeError::Decrypt);
    }
    Ok(())
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
}
