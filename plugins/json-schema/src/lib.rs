//! `json-schema`: rejects produced records whose value is not JSON or does not match the JSON
//! Schema in the plugin config. Validation is the `jsonschema` crate (drafts 4, 6, 7, 2019-09
//! and 2020-12, chosen by the schema's `$schema`, default 2020-12); remote and file `$ref`s are
//! not resolved (plugins have no network or filesystem), so a schema needing them fails `init`.
//!
//! Config: `{"schema": <JSON Schema>}`.
//!
//! `pattern` and `patternProperties` use the `regex` engine, not `fancy-regex`: matching takes
//! linear time, so no record can make a pattern backtrack past the broker's deadline, and each
//! compiled pattern is capped at 1 MiB. Lookarounds and backreferences make the schema
//! invalid at `init`. (fancy-regex also seeds std hash maps from WASI randomness, which traps
//! in the broker.)
//!
//! Reasons name what failed without echoing the value (values may be sensitive and reasons
//! reach logs): the JSON parse error with line and column, or up to three schema errors, each
//! with the failing instance path, the keyword and its schema path.

#[cfg(target_arch = "wasm32")]
mod seed;

use jsonschema::PatternOptions;
use palisade_sdk::{export_plugin, CallContext, Plugin, ProduceVerdict, RecordList, Rejection};
use serde::Deserialize;
use serde_json::Value;

/// How many schema errors one rejection reason lists (the rest are counted).
const MAX_ERRORS: usize = 3;

/// Bytes one compiled `pattern` (and its lazy DFA cache) may take: the plugin's whole memory
/// is 16 MiB by default.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    schema: Value,
}

pub struct JsonSchema {
    validator: jsonschema::Validator,
}

impl Plugin for JsonSchema {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("invalid json-schema config: {e}"))?;
        let validator = jsonschema::options()
            .with_pattern_options(
                PatternOptions::regex()
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT),
            )
            .build(&config.schema)
            .map_err(|e| schema_error(&e))?;
        Ok(JsonSchema { validator })
    }

    fn on_produce(&self, _ctx: &CallContext, records: &RecordList<'_>) -> ProduceVerdict {
        let rejections = records
            .iter()
            .enumerate()
            .filter_map(|(i, record)| {
                self.check(record.value)
                    .map(|reason| Rejection::new(i, reason))
            })
            .collect();
        ProduceVerdict::reject_or_accept(rejections)
    }
}

export_plugin!(JsonSchema);

impl JsonSchema {
    /// Why `value` is refused, or `None` when it is valid.
    fn check(&self, value: Option<&[u8]>) -> Option<String> {
        let Some(bytes) = value else {
            return Some("value is null, not JSON".to_string());
        };
        let instance: Value = match serde_json::from_slice(bytes) {
            Ok(instance) => instance,
            Err(e) => return Some(format!("value is not JSON: {e}")),
        };
        let mut errors = self.validator.iter_errors(&instance);
        let first: Vec<String> = errors
            .by_ref()
            .take(MAX_ERRORS)
            .map(|e| describe(&e))
            .collect();
        if first.is_empty() {
            return None;
        }
        let more = errors.count();
        let mut reason = format!("value does not match the schema: {}", first.join("; "));
        if more > 0 {
            reason.push_str(&format!(" (and {more} more)"));
        }
        Some(reason)
    }
}

/// Why the configured schema is refused, saying where in it.
fn schema_error(error: &jsonschema::ValidationError<'_>) -> String {
    let mut reason = format!("invalid schema: {}", describe(error));
    if reason.contains("is not a \"regex\"") {
        reason.push_str(
            "; patterns use the `regex` crate's syntax: no lookaround, no backreferences",
        );
    }
    reason
}

fn describe(error: &jsonschema::ValidationError<'_>) -> String {
    let at = error.instance_path().as_str();
    let at = if at.is_empty() { "(root)" } else { at };
    format!(
        "at `{at}`: {} (keyword `{}` at `{}`)",
        error.masked(),
        error.kind().keyword(),
        error.schema_path().as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_sdk::stub;

    const CONFIG: &str = r#"{"schema": {
        "type": "object",
        "required": ["id", "amount"],
        "properties": {
            "id": {"type": "integer"},
            "amount": {"type": "number", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}}
        }
    }}"#;

    fn produce(values: &[&str]) -> ProduceVerdict {
        let plugin = JsonSchema::init(CONFIG).unwrap();
        let bytes = stub::values(values).unwrap();
        let list = RecordList::parse(&bytes).unwrap();
        plugin.on_produce(&CallContext::new("orders", "alice"), &list)
    }

    fn reasons(verdict: ProduceVerdict) -> Vec<(u32, String)> {
        match verdict {
            ProduceVerdict::Reject(r) => r.into_iter().map(|r| (r.index, r.reason)).collect(),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn valid_values_are_accepted() {
        let verdict = produce(&[
            r#"{"id": 1, "amount": 2.5}"#,
            r#"{"id": 2, "amount": 0, "tags": ["a", "bc"], "extra": null}"#,
        ]);
        assert_eq!(verdict, ProduceVerdict::Accept);
    }

    #[test]
    fn non_json_is_rejected_with_the_parse_error_and_position() {
        let r = reasons(produce(&[
            r#"{"id": 1, "amount": 2}"#,
            "{\"id\": 1,\n \"amount\": }",
        ]));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].0, 1);
        assert!(r[0].1.starts_with("value is not JSON: "), "{}", r[0].1);
        assert!(r[0].1.contains("line 2 column"), "{}", r[0].1);
    }

    #[test]
    fn schema_violations_name_path_and_keyword() {
        let r = reasons(produce(&[
            r#"{"id": "seven", "amount": 1}"#,
            r#"{"id": 7}"#,
            r#"{"id": 7, "amount": -1}"#,
            r#"{"id": 7, "amount": 1, "tags": ["ok", "NOT-OK"]}"#,
            r#"{"id": 7, "amount": 1}"#,
        ]));
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert!(
            r[0].1.contains("at `/id`") && r[0].1.contains("keyword `type`"),
            "{}",
            r[0].1
        );
        assert!(r[1].1.contains("keyword `required`"), "{}", r[1].1);
        assert!(r[1].1.contains("amount"), "{}", r[1].1);
        assert!(
            r[2].1.contains("at `/amount`") && r[2].1.contains("keyword `minimum`"),
            "{}",
            r[2].1
        );
        assert!(
            r[3].1.contains("at `/tags/1`") && r[3].1.contains("keyword `pattern`"),
            "{}",
            r[3].1
        );
        // Values are not echoed back.
        assert!(!r[0].1.contains("seven"), "{}", r[0].1);
        assert!(!r[3].1.contains("NOT-OK"), "{}", r[3].1);
    }

    #[test]
    fn null_values_are_rejected() {
        let plugin = JsonSchema::init(CONFIG).unwrap();
        let mut b = palisade_sdk::RecordListBuilder::new();
        b.push(0, 0, Some(b"k"), None, &[]).unwrap();
        let bytes = b.finish();
        let list = RecordList::parse(&bytes).unwrap();
        let r = reasons(plugin.on_produce(&CallContext::new("orders", "alice"), &list));
        assert_eq!(r, vec![(0, "value is null, not JSON".to_string())]);
    }

    #[test]
    fn bad_configs_fail_init() {
        assert!(JsonSchema::init("{}").is_err());
        assert!(JsonSchema::init(r#"{"schema": {"type": 12}}"#).is_err());
        assert!(JsonSchema::init(r#"{"schema": {}, "other": 1}"#).is_err());
        assert!(JsonSchema::init(r#"{"schema": {"$ref": "https://example.com/s.json"}}"#).is_err());
    }

    #[test]
    fn patterns_match_in_linear_time_and_backreferences_are_refused() {
        let plugin =
            JsonSchema::init(r#"{"schema": {"type": "string", "pattern": "^[a-z]+[0-9]{1,3}$"}}"#)
                .unwrap();
        assert!(plugin.check(Some(br#""abc12""#)).is_none());
        assert!(plugin.check(Some(br#""abc1234""#)).is_some());
        // Catastrophic for a backtracking engine, linear here.
        let plugin =
            JsonSchema::init(r#"{"schema": {"type": "string", "pattern": "^(a+)+$"}}"#).unwrap();
        let evil = format!("\"{}b\"", "a".repeat(5000));
        assert!(plugin.check(Some(evil.as_bytes())).is_some());
        for pattern in [r"^(a)\\1$", "^(?=.*[0-9]).+$"] {
            let config =
                format!(r#"{{"schema": {{"properties": {{"p": {{"pattern": "{pattern}"}}}}}}}}"#);
            let err = JsonSchema::init(&config).err().unwrap();
            assert!(
                err.starts_with("invalid schema: at `/properties/p/pattern`"),
                "{err}"
            );
            assert!(err.ends_with("no lookaround, no backreferences"), "{err}");
        }
    }

    #[test]
    fn many_errors_are_capped() {
        let plugin =
            JsonSchema::init(r#"{"schema": {"type": "array", "items": {"type": "integer"}}}"#)
                .unwrap();
        assert!(plugin.check(Some(b"[1, 2, 3]")).is_none());
        let reason = plugin.check(Some(br#"["a","b","c","d","e"]"#)).unwrap();
        assert!(reason.ends_with("(and 2 more)"), "{reason}");
    }

    /// `plugins/examples/json-schema.toml` stays a valid manifest whose `[config]` this plugin accepts.
    #[test]
    fn example_manifest_config_initialises() {
        let text = include_str!("../../examples/json-schema.toml");
        let manifest: toml::Table = toml::from_str(text).unwrap();
        for key in ["topics", "hooks", "order", "keys", "config"] {
            assert!(manifest.contains_key(key), "missing `{key}`");
        }
        let config = serde_json::to_string(&manifest["config"]).unwrap();
        if let Err(e) = JsonSchema::init(&config) {
            panic!("{config}: {e}");
        }
    }
}
