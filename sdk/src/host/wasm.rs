//! The host functions as component-model imports.

use crate::bindings::palisade::plugin::host as wit;
use crate::bindings::palisade::plugin::types::LogLevel as WitLevel;
use crate::byte_list::OwnedByteList;
use crate::verdict::LogLevel;

pub fn log(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Trace => WitLevel::Trace,
        LogLevel::Debug => WitLevel::Debug,
        LogLevel::Info => WitLevel::Info,
        LogLevel::Warn => WitLevel::Warn,
        LogLevel::Error => WitLevel::Error,
    };
    wit::log(level, message)
}

pub fn encrypt(key_id: &str, topic: &str, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    wit::encrypt(key_id, topic, plaintext, aad)
}

pub fn decrypt(topic: &str, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    wit::decrypt(topic, ciphertext, aad)
}

pub fn encrypt_many(
    key_id: &str,
    topic: &str,
    plaintexts: &[u8],
    aads: &[u8],
) -> Result<OwnedByteList, String> {
    let sealed = wit::encrypt_many(key_id, topic, plaintexts, aads)?;
    OwnedByteList::parse(sealed).map_err(|e| format!("host returned {e}"))
}

pub fn decrypt_many(topic: &str, ciphertexts: &[u8], aads: &[u8]) -> Result<OwnedByteList, String> {
    let opened = wit::decrypt_many(topic, ciphertexts, aads)?;
    OwnedByteList::parse(opened).map_err(|e| format!("host returned {e}"))
}

pub fn hmac_sha256(key_id: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    wit::hmac_sha256(key_id, data)
}

pub fn ed25519_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    wit::ed25519_verify(public_key, message, signature)
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    wit::sha256(data)
}

pub fn authorize(principal: &str, action: &str, topic: &str) -> bool {
    wit::authorize(principal, action, topic)
}
