//! `signature-verify`: every produced record must carry an Ed25519 signature, made with the
//! producing principal's key, over the record's key, value and other headers. Unsigned,
//! unknown-principal and altered records are rejected, each with its reason.
//!
//! Config: `{"header": "signature", "keys": {"alice": "<public key>"}}`. `header` defaults to
//! `signature`; each public key is 32 bytes as 64 hex digits or base64 (padded or not).
//!
//! The signature header's value is the 64-byte signature, raw, as 128 hex digits, or base64
//! (the length tells which). It signs `palisade_sdk::signature::message` of the record (see
//! that module, or README.md, for the exact bytes). Verification runs in the host
//! (`host::ed25519_verify`). The header stays on the stored record so consumers can verify too.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use palisade_sdk::signature::record_message;
use palisade_sdk::{
    export_plugin, host, CallContext, Plugin, ProduceVerdict, Record, RecordList, Rejection,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[cfg(not(target_arch = "wasm32"))]
mod sign;
#[cfg(not(target_arch = "wasm32"))]
pub use sign::{public_key, sign_record};

/// The header used when the config names none.
pub const DEFAULT_HEADER: &str = "signature";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_header")]
    header: String,
    keys: BTreeMap<String, String>,
}

fn default_header() -> String {
    DEFAULT_HEADER.to_string()
}

pub struct SignatureVerify {
    header: String,
    /// Public keys by principal. A BTreeMap, not a HashMap: std's hasher seeds itself from
    /// WASI randomness, which plugins do not have.
    keys: BTreeMap<String, [u8; 32]>,
}

impl Plugin for SignatureVerify {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = serde_json::from_str(config)
            .map_err(|e| format!("invalid signature-verify config: {e}"))?;
        if config.header.is_empty() {
            return Err("invalid signature-verify config: `header` is empty".to_string());
        }
        let mut keys = BTreeMap::new();
        for (principal, text) in config.keys {
            let key = decode_fixed::<32>(&text).ok_or_else(|| {
                format!(
                    "invalid signature-verify config: the key of `{principal}` is not 32 bytes \
                     as 64 hex digits or base64"
                )
            })?;
            keys.insert(principal, key);
        }
        Ok(SignatureVerify {
            header: config.header,
            keys,
        })
    }

    fn on_produce(&self, ctx: &CallContext, records: &RecordList<'_>) -> ProduceVerdict {
        let Some(public_key) = self.keys.get(&ctx.principal) else {
            let reason = format!(
                "no signing key is configured for principal `{}`",
                ctx.principal
            );
            return ProduceVerdict::reject_all(records.len(), &reason);
        };
        let rejections = records
            .iter()
            .enumerate()
            .filter_map(|(i, record)| {
                self.check(public_key, &ctx.principal, &record)
                    .err()
                    .map(|reason| Rejection::new(i, reason))
            })
            .collect();
        ProduceVerdict::reject_or_accept(rejections)
    }
}

export_plugin!(SignatureVerify);

impl SignatureVerify {
    fn check(
        &self,
        public_key: &[u8; 32],
        principal: &str,
        record: &Record<'_>,
    ) -> Result<(), String> {
        let header = self.header.as_str();
        let mut signatures = record.headers().filter(|h| h.name == header);
        let signature = match (signatures.next(), signatures.next()) {
            (None, _) => return Err(format!("record is not signed: no `{header}` header")),
            (Some(_), Some(_)) => {
                return Err(format!("record has more than one `{header}` header"))
            }
            (Some(h), None) => h
                .value
                .ok_or_else(|| format!("record is not signed: the `{header}` header is null"))?,
        };
        let signature = decode_signature(signature).ok_or_else(|| {
            format!(
                "malformed `{header}` header: expected a 64-byte Ed25519 signature, raw, as 128 \
                 hex digits or base64"
            )
        })?;
        let message = record_message(record, header);
        if host::ed25519_verify(public_key, &message, &signature) {
            Ok(())
        } else {
            Err(format!(
                "signature does not verify with the key of `{principal}`: the record was altered \
                 or signed with another key"
            ))
        }
    }
}

/// A 64-byte signature given raw, as hex or as base64.
fn decode_signature(bytes: &[u8]) -> Option<[u8; 64]> {
    if let Ok(raw) = <[u8; 64]>::try_from(bytes) {
        return Some(raw);
    }
    decode_fixed::<64>(std::str::from_utf8(bytes).ok()?)
}

/// `N` bytes given as 2N hex digits or base64 (padded or not).
fn decode_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    let bytes = if text.len() == 2 * N && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex(text)?
    } else {
        STANDARD
            .decode(text)
            .or_else(|_| STANDARD_NO_PAD.decode(text))
            .ok()?
    };
    <[u8; N]>::try_from(bytes).ok()
}

fn hex(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
