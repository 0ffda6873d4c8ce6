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
//!
//! # Layout
//!
//! - `format`: the ciphertext format (header, nonce, tag) and what the GCM tag authenticates.
//! - `store`: the data-key files, wrapped by keyring keys, and the per-topic key cache.
//! - `seal`: sealing and opening, one item or whole byte lists at a time.

mod format;
mod seal;
mod store;

pub use format::{parse, Envelope};
pub use seal::Sealer;
pub use store::EnvelopeStore;

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

impl From<palisade_sdk::records::DecodeError> for EnvelopeError {
    fn from(e: palisade_sdk::records::DecodeError) -> Self {
        EnvelopeError::List(e)
    }
}

#[cfg(test)]
mod tests;
