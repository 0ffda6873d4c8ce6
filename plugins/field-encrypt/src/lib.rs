//! `field-encrypt`: encrypts configured JSON fields of produced records; on fetch, decrypts them
//! for principals the policy permits `Decrypt` on the topic. Everyone else reads ciphertext.
//!
//! Config: `{"key": "<keyring key id>", "fields": ["card", "ssn", "address.street"]}` — top-level
//! member names, or dotted paths into nested objects (a name containing `.` cannot be
//! addressed). The manifest must list `key` under `keys`.
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
    export_plugin, host, CallContext, FetchVerdict, OwnedRecord, Plugin, ProduceVerdict, Record,
    RecordList, RecordListBuilder, Rejection,
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
        let mut fields = Vec::with_capacity(config.fields.len());
        for name in config.fields {
            let segments: Vec<String> = name.split('.').map(str::to_string).collect();
            if segments.iter().any(String::is_empty) {
                return Err(format!(
                    "invalid field-encrypt config: bad field path `{name}`"
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
        let mut out = RecordListBuilder::new();
        let mut rejections = Vec::new();
        let mut changed = false;
        for (i, record) in records.iter().enumerate() {
            match self.encrypt_value(&ctx.topic, record.value) {
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
        let mut out = RecordListBuilder::new();
        let mut changed = false;
        for (i, record) in records.iter().enumerate() {
            let value = match self.decrypt_value(&ctx.topic, record.value) {
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
    /// The value with every configured field encrypted, or `None` to keep it (a tombstone, or
    /// an object holding none of the fields).
    fn encrypt_value(&self, topic: &str, value: Option<&[u8]>) -> Result<Option<String>, String> {
        let Some(bytes) = value else {
            return Ok(None);
        };
        let mut text = std::str::from_utf8(bytes)
            .map_err(|_| "value is not JSON: not UTF-8".to_string())?
            .to_string();
        // Checks the value is an object even when it holds none of the fields.
        object::check(&text)?;
        let mut changed = false;
        for (name, path) in &self.fields {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let mut seal = |member: &str| -> Result<Option<String>, String> {
                let sealed = host::encrypt(&self.key, topic, member.as_bytes(), name.as_bytes())
                    .map_err(|e| format!("cannot encrypt field `{name}`: {e}"))?;
                let marked = format!("{PREFIX}{}", BASE64.encode(sealed));
                serde_json::to_string(&marked)
                    .map(Some)
                    .map_err(|e| e.to_string())
            };
            if let Some(next) = object::splice(&text, &path, &mut seal)? {
                text = next;
                changed = true;
            }
        }
        Ok(changed.then_some(text))
    }

    /// The value with every encrypted field decrypted, or `None` when nothing was encrypted.
    /// Values that are not objects pass unchanged (stored before the plugin was bound).
    fn decrypt_value(&self, topic: &str, value: Option<&[u8]>) -> Result<Option<String>, String> {
        let Some(Ok(mut text)) = value.map(|b| std::str::from_utf8(b).map(str::to_string)) else {
            return Ok(None);
        };
        if object::check(&text).is_err() {
            return Ok(None);
        }
        let mut changed = false;
        // Reverse order undoes an outer field before looking inside it.
        for (name, path) in self.fields.iter().rev() {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let mut open = |member: &str| -> Result<Option<String>, String> {
                let Ok(marked) = serde_json::from_str::<String>(member) else {
                    return Ok(None);
                };
                let Some(encoded) = marked.strip_prefix(PREFIX) else {
                    return Ok(None);
                };
                let sealed = BASE64
                    .decode(encoded)
                    .map_err(|_| format!("field `{name}` holds malformed ciphertext"))?;
                let plain = host::decrypt(topic, &sealed, name.as_bytes())
                    .map_err(|e| format!("cannot decrypt field `{name}`: {e}"))?;
                let plain = String::from_utf8(plain).map_err(|_| {
                    format!("field `{name}` decrypted to something that is not JSON")
                })?;
                serde_json::from_str::<&serde_json::value::RawValue>(&plain).map_err(|_| {
                    format!("field `{name}` decrypted to something that is not JSON")
                })?;
                Ok(Some(plain))
            };
            if let Some(next) = object::splice(&text, &path, &mut open)? {
                text = next;
                changed = true;
            }
        }
        Ok(changed.then_some(text))
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
            let mut owned = OwnedRecord::from_record(record);
            owned.value = Some(value.into_bytes());
            out.push_owned(&owned)
        }
    };
    pushed.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
