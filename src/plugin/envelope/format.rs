//! The ciphertext format:
//!
//! ```text
//! u8 version (1) | u8 kek-id length | kek id | u32 data key id (BE) | 12-byte nonce | ct+tag
//! ```
//!
//! and the additional data the GCM tag authenticates (the header, the topic, the caller's aad).

use super::EnvelopeError;

pub(super) const FORMAT_VERSION: u8 = 1;
pub(super) const NONCE_LEN: usize = 12;
pub(super) const TAG_LEN: usize = 16;

/// The parsed header of a ciphertext.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub kek: &'a str,
    pub data_key: u32,
    pub(super) nonce: &'a [u8],
    /// Version, key ids and nonce: authenticated with the body.
    pub(super) header: &'a [u8],
    /// Ciphertext and tag.
    pub(super) body: &'a [u8],
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

/// The additional data of a ciphertext: its header, the topic and the caller's aad, written
/// into `out` (reused across items).
pub(super) fn data_aad_into(out: &mut Vec<u8>, header: &[u8], topic: &str, aad: &[u8]) {
    out.clear();
    out.extend_from_slice(header);
    out.extend_from_slice(&u32::try_from(topic.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(aad);
}
