//! Sealing and opening: AES-256-GCM under a topic's data key, one item at a time or whole
//! byte lists (one key lookup, one draw of randomness for every nonce).

use std::sync::Arc;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Nonce};
use palisade_sdk::byte_list::{pairs, ByteListBuilder};

use super::format::{data_aad_into, parse, Envelope, FORMAT_VERSION, NONCE_LEN, TAG_LEN};
use super::{EnvelopeError, EnvelopeStore};
use crate::plugin::keyring::{random, Keyring};

impl EnvelopeStore {
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

/// A topic's current data key for one keyring key: seals many items after one lookup.
pub struct Sealer {
    /// Version, key id and data key id: the ciphertext header before the nonce.
    header: Vec<u8>,
    cipher: Arc<Aes256Gcm>,
    topic: String,
}

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
