//! The functions the broker gives every plugin. Keys are named by id; key bytes never enter
//! plugin memory. The broker only lets a plugin use the key ids its manifest lists.
//!
//! On wasm32 each function is one call into the host. Natively they run in-process against the
//! test keyring, `authorize` answers and log capture set up with [`crate::stub`], with the same
//! algorithms (the stub's ciphertext layout is its own; never mix the two).

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
