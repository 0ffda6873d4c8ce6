//! Signing, for tests and tools that produce records this plugin accepts (not in the Wasm
//! build: the plugin only verifies).

use ed25519_dalek::{Signer, SigningKey};
use palisade_sdk::signature::message;
use palisade_sdk::OwnedRecord;

/// The Ed25519 public key for a 32-byte secret key (seed), to put in the plugin config.
pub fn public_key(secret: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(secret).verifying_key().to_bytes()
}

/// Signs `record` with the 32-byte secret key (seed) and returns it with the raw 64-byte
/// signature in header `header`, appended after the other headers (any existing header of that
/// name is removed first).
pub fn sign_record(secret: &[u8; 32], record: &OwnedRecord, header: &str) -> OwnedRecord {
    let mut signed = record.clone();
    signed.headers.retain(|(name, _)| name != header);
    let bytes = message(
        signed.key.as_deref(),
        signed.value.as_deref(),
        signed
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_deref())),
        header,
    );
    let signature = SigningKey::from_bytes(secret).sign(&bytes).to_bytes();
    signed
        .headers
        .push((header.to_string(), Some(signature.to_vec())));
    signed
}
