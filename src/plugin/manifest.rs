//! `NAME.toml` beside `NAME.wasm`: which topics and hooks a plugin serves, its position in
//! the chain, the keyring keys it may use and its configuration (passed to `init` as JSON).

use std::path::Path;

use serde::Deserialize;

use super::glob::TopicPattern;

#[derive(Debug, thiserror::Error)]
#[error("manifest `{path}`: {message}")]
pub struct ManifestError {
    pub path: String,
    pub message: String,
}

/// Which exports the broker calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Produce,
    Fetch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    topics: Vec<String>,
    hooks: Vec<Hook>,
    #[serde(default)]
    order: i32,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    config: Option<toml::Table>,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub topics: Vec<TopicPattern>,
    pub produce: bool,
    pub fetch: bool,
    pub order: i32,
    pub keys: Vec<String>,
    /// The `[config]` table as JSON (`{}` when absent).
    pub config_json: String,
}

impl Manifest {
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let err = |message: String| ManifestError {
            path: path.display().to_string(),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| err(one_line(&e.to_string())))?;
        if raw.topics.is_empty() {
            return Err(err(
                "`topics` is empty: name at least one topic or glob".into()
            ));
        }
        for t in &raw.topics {
            if t.is_empty() || t.len() > 249 {
                return Err(err(format!(
                    "topic pattern `{t}` must be 1 to 249 characters"
                )));
            }
        }
        if raw.hooks.is_empty() {
            return Err(err(
                "`hooks` is empty: use \"produce\", \"fetch\" or both".into()
            ));
        }
        for k in &raw.keys {
            if !super::keyring::valid_name(k) {
                return Err(err(format!("`keys`: `{k}` is not a valid key id")));
            }
        }
        let config = raw.config.unwrap_or_default();
        let config_json = serde_json::to_string(&config)
            .map_err(|e| err(format!("`config` cannot be expressed as JSON: {e}")))?;
        Ok(Manifest {
            topics: raw.topics.iter().map(|t| TopicPattern::new(t)).collect(),
            produce: raw.hooks.contains(&Hook::Produce),
            fetch: raw.hooks.contains(&Hook::Fetch),
            order: raw.order,
            keys: raw.keys,
            config_json,
        })
    }

    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    pub fn matches(&self, topic: &str) -> bool {
        self.topics.iter().any(|p| p.matches(topic))
    }
}

/// toml's errors span several lines (a source excerpt); logs want `line:col` and the message.
fn one_line(message: &str) -> String {
    message
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('|'))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
topics = ["orders", "payments-*"]
hooks = ["produce", "fetch"]
order = 10
keys = ["orders-key"]
[config]
schema = { type = "object", required = ["id"] }
"#;

    #[test]
    fn the_contract_example_parses() {
        let m = Manifest::parse(GOOD, Path::new("p.toml")).unwrap();
        assert!(m.produce && m.fetch);
        assert_eq!(m.order, 10);
        assert!(m.matches("payments-eu") && m.matches("orders") && !m.matches("order"));
        let config: serde_json::Value = serde_json::from_str(&m.config_json).unwrap();
        assert_eq!(config["schema"]["required"][0], "id");
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let cases = [
            (GOOD.replace("order = 10", "ordre = 10"), "ordre"),
            (GOOD.replace("\"fetch\"]", "\"consume\"]"), "consume"),
            (GOOD.replace("[\"orders\", \"payments-*\"]", "[]"), "topics"),
            (GOOD.replace("[\"produce\", \"fetch\"]", "[]"), "hooks"),
            (GOOD.replace("orders-key", "bad key"), "bad key"),
            ("topics = [".to_string(), "line 1"),
        ];
        for (text, needle) in cases {
            let err = Manifest::parse(&text, Path::new("plugins/x.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("plugins/x.toml"), "{err}");
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
