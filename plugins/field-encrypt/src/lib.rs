//! `field-encrypt`: encrypts configured JSON fields of produced records; on fetch, decrypts them
//! for principals the policy permits `Decrypt` on the topic. Everyone else reads ciphertext.
//!
//! Config: `{"key": "<keyring key id>", "fields": ["card", "ssn", "address.street"]}` — top-level
//! member names, or dotted paths into nested objects (a name containing `.` cannot be
//! addressed; overlapping paths such as `a` and `a.b` are refused). The manifest must list
//! `key` under `keys`.
//!
//! On produce every value must be a JSON object (null values, i.e. tombstones, pass unchanged;
//! anything else is rejected). Each configured member present (every occurrence, should a key
//! repeat) has its JSON text replaced by the string
//! `"pal:enc:v1:" + base64(host::encrypt(key, topic, text, aad = path))`, where `path` is the
//! configured name (`address.street`), so a ciphertext moved to another field or topic does not
//! decrypt. Members not configured keep their original text byte for byte.
//!
//! On fetch, for a permitted principal, every configured member holding such a string is
//! decrypted back to its original JSON text. A ciphertext that does not decrypt fails the fetch
//! for the partition (fail closed): the consumer never gets a half-decrypted batch.

mod object;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use palisade_sdk::{
    export_plugin, host, CallContext, FetchVerdict, Plugin, ProduceVerdict, Record, RecordList,
    RecordListBuilder, Rejection,
};
use serde::Deserialize;

/// Marks an encrypted field's string; the version names this layout.
pub const PREFIX: &str = "pal:enc:v1:";

/// The Cedar action a consumer needs to read plaintext.
pub const DECRYPT_ACTION: &str = "Decrypt";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    key: String,
    fields: Vec<String>,
}

pub struct FieldEncrypt {
    key: String,
    /// Configured paths, each as the dotted name (the aad) and its segments.
    fields: Vec<(String, Vec<String>)>,
}

impl Plugin for FieldEncrypt {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = serde_json::from_str(config)
            .map_err(|e| format!("invalid field-encrypt config: {e}"))?;
        if config.key.is_empty() {
            return Err("invalid field-encrypt config: `key` is empty".to_string());
        }
        if config.fields.is_empty() {
            return Err("invalid field-encrypt config: `fields` is empty".to_string());
        }
        let mut fields: Vec<(String, Vec<String>)> = Vec::with_capacity(config.fields.len());
        for name in config.fields {
            let segments: Vec<String> = name.split('.').map(str::to_string).collect();
            if segments.iter().any(String::is_empty) {
                return Err(format!(
                    "invalid field-encrypt config: bad field path `{name}`"
                ));
            }
            // `a` and `a.b` (or `a` twice) would encrypt the same bytes twice, in an order
            // fetch could not undo.
            if let Some((other, _)) = fields
                .iter()
                .find(|(_, s)| s.starts_with(&segments) || segments.starts_with(s))
            {
                return Err(format!(
                    "invalid field-encrypt config: field paths `{other}` and `{name}` overlap"
                ));
            }
            fields.push((name, segments));
        }
        Ok(FieldEncrypt {
            key: config.key,
            fields,
        })
    }

    fn on_produce(&self, ctx: &CallContext, records: &RecordList<'_>) -> ProduceVerdict {
        let paths = self.paths();
        let mut out = RecordListBuilder::new();
        let mut rejections = Vec::new();
        let mut changed = false;
        for (i, record) in records.iter().enumerate() {
            match self.encrypt_value(&paths, &ctx.topic, record.value) {
                Ok(value) => {
                    changed |= value.is_some();
                    if let Err(e) = push_with_value(&mut out, &record, value) {
                        rejections.push(Rejection::new(i, e));
                    }
                }
                Err(reason) => rejections.push(Rejection::new(i, reason)),
            }
        }
        if !rejections.is_empty() {
            ProduceVerdict::Reject(rejections)
        } else if changed {
            ProduceVerdict::Replace(out.finish())
        } else {
            // Nothing to encrypt: the broker keeps the batch as produced, without a copy.
            ProduceVerdict::Accept
        }
    }

    fn on_fetch(&self, ctx: &CallContext, records: &RecordList<'_>) -> FetchVerdict {
        if !host::authorize(&ctx.principal, DECRYPT_ACTION, &ctx.topic) {
            return FetchVerdict::Pass;
        }
        let paths = self.paths();
        let mut out = RecordListBuilder::new();
        let mut changed = false;
        for (i, record) in records.iter().enumerate() {
            let value = match self.decrypt_value(&paths, &ctx.topic, record.value) {
                Ok(value) => value,
                Err(e) => return FetchVerdict::Fail(format!("record {i}: {e}")),
            };
            changed |= value.is_some();
            if let Err(e) = push_with_value(&mut out, &record, value) {
                return FetchVerdict::Fail(format!("record {i}: {e}"));
            }
        }
        if changed {
            FetchVerdict::Replace(out.finish())
        } else {
            FetchVerdict::Pass
        }
    }
}

export_plugin!(FieldEncrypt);

impl FieldEncrypt {
    fn paths(&self) -> Vec<object::Path<'_>> {
        self.fields
            .iter()
            .enumerate()
            .map(|(id, (_, segments))| (id, segments.as_slice()))
            .collect()
    }

    /// The configured name of path `id`: the aad, and what reasons call the field.
    fn name(&self, id: usize) -> &str {
        self.fields.get(id).map_or("?", |(name, _)| name.as_str())
    }

    /// The value with every configured field encrypted, or `None` to keep it (a tombstone, or
    /// an object holding none of the fields).
    fn encrypt_value(
        &self,
        paths: &[object::Path<'_>],
        topic: &str,
        value: Option<&[u8]>,
    ) -> Result<Option<String>, String> {
        let Some(bytes) = value else {
            return Ok(None);
        };
        let text =
            std::str::from_utf8(bytes).map_err(|_| "value is not JSON: not UTF-8".to_string())?;
        let mut seal = |id: usize, member: &str| -> Result<Option<String>, String> {
            let name = self.name(id);
            let sealed = host::encrypt(&self.key, topic, member.as_bytes(), name.as_bytes())
                .map_err(|e| format!("cannot encrypt field `{name}`: {e}"))?;
            // base64 needs no JSON escaping.
            Ok(Some(format!("\"{PREFIX}{}\"", BASE64.encode(sealed))))
        };
        object::splice(text, paths, &mut seal).map_err(|e| e.to_string())
    }

    /// The value with every encrypted field decrypted, or `None` when nothing was encrypted.
    /// Values that are not objects pass unchanged (stored before the plugin was bound).
    fn decrypt_value(
        &self,
        paths: &[object::Path<'_>],
        topic: &str,
        value: Option<&[u8]>,
    ) -> Result<Option<String>, String> {
        let Some(Ok(text)) = value.map(std::str::from_utf8) else {
            return Ok(None);
        };
        let mut open = |id: usize, member: &str| -> Result<Option<String>, String> {
            let name = self.name(id);
            let Some(encoded) = member
                .strip_prefix('"')
                .and_then(|m| m.strip_prefix(PREFIX))
                .and_then(|m| m.strip_suffix('"'))
            else {
                return Ok(None);
            };
            let sealed = BASE64
                .decode(encoded)
                .map_err(|_| format!("field `{name}` holds malformed ciphertext"))?;
            let plain = host::decrypt(topic, &sealed, name.as_bytes())
                .map_err(|e| format!("cannot decrypt field `{name}`: {e}"))?;
            let plain = String::from_utf8(plain)
                .map_err(|_| format!("field `{name}` decrypted to something that is not JSON"))?;
            serde_json::from_str::<&serde_json::value::RawValue>(&plain)
                .map_err(|_| format!("field `{name}` decrypted to something that is not JSON"))?;
            Ok(Some(plain))
        };
        match object::splice(text, paths, &mut open) {
            Ok(spliced) => Ok(spliced),
            Err(object::SpliceError::NotAnObject(_)) => Ok(None),
            Err(object::SpliceError::Member(reason)) => Err(reason),
        }
    }
}

/// Appends `record`, with its value replaced when `value` is `Some`.
fn push_with_value(
    out: &mut RecordListBuilder,
    record: &Record<'_>,
    value: Option<String>,
) -> Result<(), String> {
    let pushed = match value {
        None => out.push_record(record),
        Some(value) => {
            let headers: Vec<(&str, Option<&[u8]>)> =
                record.headers().map(|h| (h.name, h.value)).collect();
            out.push(
                record.offset_delta,
                record.timestamp,
                record.key,
                Some(value.as_bytes()),
                &headers,
            )
        }
    };
    pushed.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
