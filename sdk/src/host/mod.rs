//! The functions the broker gives every plugin. Keys are named by id; key bytes never enter
//! plugin memory. The broker only lets a plugin use the key ids its manifest lists.
//!
//! On wasm32 each function is one call into the host. Natively they run in-process against the
//! test keyring, `authorize` answers and log capture set up with [`crate::stub`], with the same
//! algorithms (the stub's ciphertext layout is its own; never mix the two).

use crate::byte_list::{ByteListBuilder, OwnedByteList};
use crate::verdict::LogLevel;

#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
use wasm as imp;

#[cfg(not(target_arch = "wasm32"))]
use crate::stub as imp;

/// Writes a line to the broker's log, attributed to the plugin. Never log keys or plaintext of
/// fields you protect.
pub fn log(level: LogLevel, message: &str) {
    imp::log(level, message)
}

/// AES-256-GCM under the topic's data key, wrapped by keyring key `key_id` (envelope
/// encryption). The result is self-describing: `decrypt` needs no key id, also after `key_id`
/// has been rotated. `aad` is authenticated, not stored: pass the same bytes to `decrypt`.
pub fn encrypt(key_id: &str, topic: &str, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    imp::encrypt(key_id, topic, plaintext, aad)
}

/// Reverses [`encrypt`]; fails on any alteration of ciphertext or `aad`, or another topic.
pub fn decrypt(topic: &str, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    imp::decrypt(topic, ciphertext, aad)
}

/// [`encrypt`] for many `(plaintext, aad)` items in one host call; the result holds one
/// ciphertext per item, in order. A host call costs about 1 µs while sealing a short field
/// costs a fraction of that: a plugin encrypting fields of a whole batch should collect them
/// and call this once. An error seals nothing.
pub fn encrypt_many(
    key_id: &str,
    topic: &str,
    items: &[(&[u8], &[u8])],
) -> Result<OwnedByteList, String> {
    let (first, second) = split(items)?;
    imp::encrypt_many(key_id, topic, &first, &second)
}

/// [`decrypt`] for many `(ciphertext, aad)` items in one host call; fails as a whole, naming
/// the first item that does not decrypt.
pub fn decrypt_many(topic: &str, items: &[(&[u8], &[u8])]) -> Result<OwnedByteList, String> {
    let (first, second) = split(items)?;
    imp::decrypt_many(topic, &first, &second)
}

/// The two byte lists of `(a, b)` pairs.
fn split(items: &[(&[u8], &[u8])]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let size =
        |f: fn(&(&[u8], &[u8])) -> usize| items.iter().map(f).sum::<usize>() + 4 * items.len();
    let mut first = ByteListBuilder::with_capacity(size(|(a, _)| a.len()));
    let mut second = ByteListBuilder::with_capacity(size(|(_, b)| b.len()));
    for (a, b) in items {
        first.push(a).map_err(|e| e.to_string())?;
        second.push(b).map_err(|e| e.to_string())?;
    }
    Ok((first.finish(), second.finish()))
}

/// HMAC-SHA256 of `data` under keyring key `key_id` (32 bytes).
pub fn hmac_sha256(key_id: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    imp::hmac_sha256(key_id, data)
}

/// Ed25519 verification of `signature` (64 bytes) over `message` with `public_key` (32
/// bytes); false for a malformed key or signature.
pub fn ed25519_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    imp::ed25519_verify(public_key, message, signature)
}

/// SHA-256 of `data` (32 bytes).
pub fn sha256(data: &[u8]) -> Vec<u8> {
    imp::sha256(data)
}

/// Asks the policy engine whether `principal` may do `action` (a Cedar action name such as
/// `Decrypt` or `Read`) on the topic `topic`. Errors and unknown actions are a deny.
pub fn authorize(principal: &str, action: &str, topic: &str) -> bool {
    imp::authorize(principal, action, topic)
}
