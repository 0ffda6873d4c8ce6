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
//!
//! Pseudonymization (GDPR art. 4(5)): `"pseudonymize": ["user_id"], "pseudonym_key": "<id>"`
//! replaces each of those members by `"pal:pse:v1:" + hex(HMAC-SHA256(pseudonym_key, path || 0
//! || value))` on produce, where `value` is the string's decoded text (or the JSON text of
//! any other value). Equal values get equal pseudonyms within a field, so records still join
//! on it; nobody can reverse one without the key, and nothing is decrypted on fetch. The
//! pseudonym key must be another keyring key than `key` (one key, one purpose). Either list may
//! be left out, not both.

mod object;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use palisade_sdk::{
    export_plugin, host, CallContext, FetchVerdict, Plugin, ProduceVerdict, RecordList,
    RecordListBuilder, Rejection,
};
use serde::Deserialize;

/// Marks an encrypted field's string; the version names this layout.
pub const PREFIX: &str = "pal:enc:v1:";

/// Marks a pseudonymized field's string.
pub const PSEUDONYM_PREFIX: &str = "pal:pse:v1:";

/// The Cedar action a consumer needs to read plaintext.
pub const DECRYPT_ACTION: &str = "Decrypt";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    pseudonymize: Vec<String>,
    #[serde(default)]
    pseudonym_key: Option<String>,
}

/// What happens to a configured member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    Encrypt,
    Pseudonymize,
}

pub struct FieldEncrypt {
    key: String,
    pseudonym_key: String,
    /// Configured paths, each as the dotted name (the aad) and its segments.
    fields: Vec<(String, Vec<String>)>,
    /// Per path of `fields`, by index.
    treatment: Vec<Treatment>,
}

/// The key id `name` in `config`, required when `list` is not empty.
fn key_for(key: Option<String>, name: &str, list: &[String], what: &str) -> Result<String, String> {
    match key {
        Some(k) if k.is_empty() => Err(format!("invalid field-encrypt config: `{name}` is empty")),
        Some(k) => Ok(k),
        None if list.is_empty() => Ok(String::new()),
        None => Err(format!(
            "invalid field-encrypt config: `{what}` needs `{name}`"
        )),
    }
}

impl Plugin for FieldEncrypt {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = serde_json::from_str(config)
            .map_err(|e| format!("invalid field-encrypt config: {e}"))?;
        if config.fields.is_empty() && config.pseudonymize.is_empty() {
            return Err(
                "invalid field-encrypt config: `fields` and `pseudonymize` are both empty"
                    .to_string(),
            );
        }
        let key = key_for(config.key, "key", &config.fields, "fields")?;
        let pseudonym_key = key_for(
            config.pseudonym_key,
            "pseudonym_key",
            &config.pseudonymize,
            "pseudonymize",
        )?;
        if !key.is_empty() && key == pseudonym_key {
            return Err(format!(
                "invalid field-encrypt config: `pseudonym_key` must be another key than `key` (`{key}`)"
            ));
        }
        let mut fields: Vec<(String, Vec<String>)> = Vec::new();
        let mut treatment = Vec::new();
        let named = config
            .fields
            .into_iter()
            .map(|n| (n, Treatment::Encrypt))
            .chain(
                config
                    .pseudonymize
                    .into_iter()
                    .map(|n| (n, Treatment::Pseudonymize)),
            );
        for (name, kind) in named {
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
            treatment.push(kind);
        }
        Ok(FieldEncrypt {
            key,
            pseudonym_key,
            fields,
            treatment,
        })
    }

    fn on_produce(&self, ctx: &CallContext, records: &RecordList<'_>) -> ProduceVerdict {
        let paths = self.paths(None);
        // Pass 1: find every configured member of every record (one list for the batch).
        let mut found = Found::default();
        let mut rejections = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let Some(bytes) = record.value else {
                continue; // tombstones pass unchanged
            };
            let Ok(text) = std::str::from_utf8(bytes) else {
                rejections.push(Rejection::new(i, "value is not JSON: not UTF-8"));
                continue;
            };
            let before = found.members.len();
            match object::locate_into(text, &paths, &mut found.members) {
                Ok(()) if found.members.len() > before => found.records.push((i, text, before)),
                Ok(()) => {}
                Err(e) => rejections.push(Rejection::new(i, e.to_string())),
            }
        }
        if !rejections.is_empty() {
            return ProduceVerdict::Reject(rejections);
        }
        if found.records.is_empty() {
            // Nothing to encrypt: the broker keeps the batch as produced, without a copy.
            return ProduceVerdict::Accept;
        }
        // Pass 2: one host call seals every member to encrypt, each bound to its field name;
        // a keyed hash stands in for every member to pseudonymize.
        let items: Vec<(&[u8], &[u8])> = found
            .each()
            .flat_map(|(_, text, members)| {
                members
                    .iter()
                    .filter(|m| self.treatment(m.id) == Treatment::Encrypt)
                    .map(move |m| {
                        let member = text.get(m.range.clone()).unwrap_or_default();
                        (member.as_bytes(), self.name(m.id).as_bytes())
                    })
            })
            .collect();
        let sealed = if items.is_empty() {
            None
        } else {
            match host::encrypt_many(&self.key, &ctx.topic, &items) {
                Ok(sealed) => Some(sealed),
                Err(e) => return self.refuse_all(&found, "encrypt", &e),
            }
        };
        let mut pseudonyms = Vec::new();
        for (_, text, members) in found.each() {
            for m in members
                .iter()
                .filter(|m| self.treatment(m.id) == Treatment::Pseudonymize)
            {
                let member = text.get(m.range.clone()).unwrap_or_default();
                match self.pseudonym(m.id, member) {
                    Ok(p) => pseudonyms.push(p),
                    Err(e) => return self.refuse_all(&found, "pseudonymize", &e),
                }
            }
        }
        // Pass 3: rewrite the records that had members, copy the others.
        let mut sealed = sealed.iter().flat_map(|s| s.iter());
        let mut pseudonyms = pseudonyms.iter();
        let rewritten = rewrite_records(records, &found, |text, members, out| {
            object::rewrite_into(text, members, out, |m, out| {
                // base64 and hex need no JSON escaping.
                out.push('"');
                match self.treatment(m.id) {
                    Treatment::Encrypt => {
                        out.push_str(PREFIX);
                        BASE64.encode_string(sealed.next().unwrap_or_default(), out);
                    }
                    Treatment::Pseudonymize => {
                        out.push_str(PSEUDONYM_PREFIX);
                        out.push_str(pseudonyms.next().map_or("", String::as_str));
                    }
                }
                out.push('"');
                Ok(())
            })
        });
        match rewritten {
            Ok(list) => ProduceVerdict::Replace(list),
            Err((i, reason)) => ProduceVerdict::Reject(vec![Rejection::new(i, reason)]),
        }
    }

    fn on_fetch(&self, ctx: &CallContext, records: &RecordList<'_>) -> FetchVerdict {
        let paths = self.paths(Some(Treatment::Encrypt));
        if paths.is_empty() || !host::authorize(&ctx.principal, DECRYPT_ACTION, &ctx.topic) {
            return FetchVerdict::Pass;
        }
        // Pass 1: every encrypted member of every record, with its decoded ciphertext. Values
        // that are not objects, or not UTF-8, were stored before the plugin was bound: they
        // pass unchanged; so do members that hold no ciphertext.
        let mut found = Found::default();
        let mut sealed: Vec<Vec<u8>> = Vec::new();
        let mut located = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let Some(Ok(text)) = record.value.map(std::str::from_utf8) else {
                continue;
            };
            located.clear();
            if object::locate_into(text, &paths, &mut located).is_err() {
                continue;
            }
            let before = found.members.len();
            for m in located.drain(..) {
                let Some(encoded) = text
                    .get(m.range.clone())
                    .and_then(|t| t.strip_prefix('"'))
                    .and_then(|t| t.strip_prefix(PREFIX))
                    .and_then(|t| t.strip_suffix('"'))
                else {
                    continue;
                };
                let Ok(ct) = BASE64.decode(encoded) else {
                    return FetchVerdict::Fail(format!(
                        "record {i}: field `{}` holds malformed ciphertext",
                        self.name(m.id)
                    ));
                };
                sealed.push(ct);
                found.members.push(m);
            }
            if found.members.len() > before {
                found.records.push((i, text, before));
            }
        }
        if found.records.is_empty() {
            return FetchVerdict::Pass;
        }
        // Pass 2: one host call opens every member of the batch.
        let items: Vec<(&[u8], &[u8])> = sealed
            .iter()
            .zip(&found.members)
            .map(|(ct, m)| (ct.as_slice(), self.name(m.id).as_bytes()))
            .collect();
        let opened = match host::decrypt_many(&ctx.topic, &items) {
            Ok(opened) => opened,
            Err(_) => return FetchVerdict::Fail(self.first_failure(&ctx.topic, &found, &sealed)),
        };
        // Pass 3: each plaintext must be the JSON text that was sealed; rewrite the records.
        let mut opened = opened.iter();
        let rewritten = rewrite_records(records, &found, |text, members, out| {
            object::rewrite_into(text, members, out, |m, out| {
                let json = std::str::from_utf8(opened.next().unwrap_or_default())
                    .ok()
                    .filter(|p| object::is_json(p))
                    .ok_or_else(|| {
                        format!(
                            "field `{}` decrypted to something that is not JSON",
                            self.name(m.id)
                        )
                    })?;
                out.push_str(json);
                Ok(())
            })
        });
        match rewritten {
            Ok(list) => FetchVerdict::Replace(list),
            Err((i, reason)) => FetchVerdict::Fail(format!("record {i}: {reason}")),
        }
    }
}

export_plugin!(FieldEncrypt);

impl FieldEncrypt {
    /// The configured paths (of one treatment, or all), with their ids.
    fn paths(&self, only: Option<Treatment>) -> Vec<object::Path<'_>> {
        self.fields
            .iter()
            .enumerate()
            .filter(|(id, _)| only.is_none_or(|t| self.treatment(*id) == t))
            .map(|(id, (_, segments))| (id, segments.as_slice()))
            .collect()
    }

    fn treatment(&self, id: usize) -> Treatment {
        self.treatment
            .get(id)
            .copied()
            .unwrap_or(Treatment::Encrypt)
    }

    /// The hex pseudonym of member text `json` at path `id`: a string hashes as its decoded
    /// text, so equal strings written with different escapes get one pseudonym.
    fn pseudonym(&self, id: usize, json: &str) -> Result<String, String> {
        let decoded: Option<String> = json
            .starts_with('"')
            .then(|| serde_json::from_str(json).ok())
            .flatten();
        let value = decoded.as_deref().unwrap_or(json);
        let name = self.name(id);
        let mut data = Vec::with_capacity(name.len() + 1 + value.len());
        data.extend_from_slice(name.as_bytes());
        data.push(0);
        data.extend_from_slice(value.as_bytes());
        let mac = host::hmac_sha256(&self.pseudonym_key, &data)?;
        Ok(mac.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Every record holding members refused: `what` (encrypt, pseudonymize) failed with `e`.
    fn refuse_all(&self, found: &Found<'_>, what: &str, e: &str) -> ProduceVerdict {
        ProduceVerdict::Reject(
            found
                .each()
                .map(|(i, _, members)| {
                    let name = members.first().map_or("?", |m| self.name(m.id));
                    Rejection::new(i, format!("cannot {what} field `{name}`: {e}"))
                })
                .collect(),
        )
    }

    /// The configured name of path `id`: the aad, and what reasons call the field.
    fn name(&self, id: usize) -> &str {
        self.fields.get(id).map_or("?", |(name, _)| name.as_str())
    }

    /// Why a batch did not decrypt, naming the record and field: the batch call only says
    /// which item failed, so the failing path asks item by item (only when a fetch fails).
    fn first_failure(&self, topic: &str, found: &Found<'_>, sealed: &[Vec<u8>]) -> String {
        let mut sealed = sealed.iter();
        for (i, _, members) in found.each() {
            for (m, ct) in members.iter().zip(sealed.by_ref()) {
                let name = self.name(m.id);
                if let Err(e) = host::decrypt(topic, ct, name.as_bytes()) {
                    return format!("record {i}: cannot decrypt field `{name}`: {e}");
                }
            }
        }
        "the batch did not decrypt".to_string()
    }
}

/// Pass 3 of both hooks: the batch with the value of every record in `found` rewritten by
/// `rewrite` (which appends the new value to the string it is given) and the other records
/// copied. `Err((record, reason))` names the record that could not be rewritten.
fn rewrite_records(
    records: &RecordList<'_>,
    found: &Found<'_>,
    mut rewrite: impl FnMut(&str, &[object::Found], &mut String) -> Result<(), String>,
) -> Result<Vec<u8>, (usize, String)> {
    let mut each = found.each().peekable();
    let mut out = RecordListBuilder::new();
    let mut value = String::new();
    for (i, record) in records.iter().enumerate() {
        let pushed = match each.next_if(|(at, _, _)| *at == i) {
            None => out.push_record(&record),
            Some((_, text, members)) => {
                value.clear();
                rewrite(text, members, &mut value).map_err(|e| (i, e))?;
                out.push_with_value(&record, Some(value.as_bytes()))
            }
        };
        pushed.map_err(|e| (i, e.to_string()))?;
    }
    Ok(out.finish())
}

/// The configured members of a batch: one flat list for all records (no allocation per
/// record), and per record holding any, its index, its value and where its members start.
#[derive(Default)]
struct Found<'a> {
    members: Vec<object::Found>,
    records: Vec<(usize, &'a str, usize)>,
}

impl<'a> Found<'a> {
    /// Each record holding members: (index, value, its members).
    fn each(&self) -> impl Iterator<Item = (usize, &'a str, &[object::Found])> + '_ {
        self.records
            .iter()
            .enumerate()
            .map(|(n, &(i, text, start))| {
                let end = self
                    .records
                    .get(n + 1)
                    .map_or(self.members.len(), |next| next.2);
                (i, text, self.members.get(start..end).unwrap_or_default())
            })
    }
}

#[cfg(test)]
mod tests;
