//! The plugins `compare --gateway --plugin` puts on the gateway's topics, and the JSON records
//! every gateway-mode step sends (valid for the json-schema plugin's schema, with the fields
//! field-encrypt encrypts), so that the cases differ only by what the gateway runs.
//!
//! A case's topics are named `BASE-PLUGIN-SERVER` (`acks1-field-encrypt-1`); the gateway's
//! manifest for a plugin names `*-PLUGIN-*`, so only that case's topics get it. The direct
//! side's topics of the same case hold the same records, unread by any plugin.
//!
//! Needs the bench to include `tests/common` as `mod common` (the example plugins' build and
//! installation).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

/// What the gateway runs on a case's topics.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Plugin {
    /// Nothing: batches pass through unread.
    None,
    /// `json-schema` on produce: every record validated against [`SCHEMA`].
    JsonSchema,
    /// `field-encrypt` on produce (encrypt `card` and `address.street`) and fetch (decrypt:
    /// the bench's client is permitted).
    FieldEncrypt,
}

impl Plugin {
    pub const ALL: [Plugin; 3] = [Plugin::None, Plugin::JsonSchema, Plugin::FieldEncrypt];

    pub fn name(self) -> &'static str {
        match self {
            Plugin::None => "none",
            Plugin::JsonSchema => "json-schema",
            Plugin::FieldEncrypt => "field-encrypt",
        }
    }

    /// `--plugin none|json-schema|field-encrypt|all` (a comma-separated list works too; `none`
    /// when absent).
    pub fn from_args() -> Vec<Plugin> {
        let argv: Vec<String> = std::env::args().collect();
        let Some(list) = argv.windows(2).find(|w| w[0] == "--plugin").map(|w| &w[1]) else {
            return vec![Plugin::None];
        };
        if list == "all" {
            return Plugin::ALL.to_vec();
        }
        list.split(',')
            .map(|name| {
                Plugin::ALL
                    .into_iter()
                    .find(|p| p.name() == name)
                    .unwrap_or_else(|| {
                        panic!("--plugin {name}: expected none, json-schema, field-encrypt or all")
                    })
            })
            .collect()
    }

    /// The part of its topics' names after the step's base (`""` without a plugin).
    pub fn topic_part(self) -> String {
        match self {
            Plugin::None => String::new(),
            p => format!("-{}", p.name()),
        }
    }

    /// Topic configs of its cases. field-encrypt grows a record by the ciphertext's base64
    /// (tens of bytes per field), so a full producer batch (`batch.size` 1,000,000)
    /// would pass Kafka's default `max.message.bytes` (1,048,588) once encrypted: its topics
    /// (direct and through the gateway alike) allow 2 MiB.
    pub fn topic_configs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Plugin::FieldEncrypt => &[("max.message.bytes", "2097152")],
            _ => &[],
        }
    }

    fn manifest(self) -> Option<String> {
        let topics = format!("topics = [\"*-{}-*\"]", self.name());
        match self {
            Plugin::None => None,
            Plugin::JsonSchema => Some(format!("{topics}\nhooks = [\"produce\"]\n{SCHEMA}")),
            Plugin::FieldEncrypt => Some(format!(
                "{topics}\nhooks = [\"produce\", \"fetch\"]\nkeys = [\"pii\"]\n[config]\n\
                 key = \"pii\"\nfields = [\"card\", \"address.street\"]\n"
            )),
        }
    }
}

/// json-schema's config: the records of [`value`] match it.
pub const SCHEMA: &str = r#"[config.schema]
type = "object"
required = ["id", "amount", "card", "address"]
properties = { id = { type = "string" }, amount = { type = "number", minimum = 0 }, card = { type = "string" }, address = { type = "object", required = ["street", "city"] }, note = { type = "string" } }
"#;

/// Record `i`'s value: a JSON object of exactly `size` bytes (at least about 120).
pub fn value(i: usize, size: usize) -> String {
    let base = format!(
        r#"{{"id":"order-{i}","amount":{},"card":"4111-1111-1111-{:04}","address":{{"street":"{} Main Street","city":"Oslo"}},"note":""#,
        i % 1000,
        i % 10_000,
        i % 500
    );
    let pad = size.saturating_sub(base.len() + 2);
    format!("{base}{}\"}}", "n".repeat(pad))
}

/// Installs the manifests and components of `plugins` into `dir/plugins` and a keyring with
/// field-encrypt's key into `dir/keyring.json`; returns the gateway config's replacements that
/// point at them (nothing without a plugin).
pub fn install(dir: &Path, plugins: &[Plugin]) -> Vec<(String, String)> {
    let manifests: Vec<(Plugin, String)> = plugins
        .iter()
        .filter_map(|p| p.manifest().map(|m| (*p, m)))
        .collect();
    if manifests.is_empty() {
        return Vec::new();
    }
    let folder = dir.join("plugins");
    for (plugin, manifest) in &manifests {
        crate::common::plugins::install(&folder, plugin.name(), plugin.name(), manifest);
    }
    let keyring = dir.join("keyring.json");
    let mut ring = palisade::plugin::Keyring::default();
    ring.generate("pii").unwrap();
    ring.save(&keyring).unwrap();
    vec![
        (
            "dir = \"plugins\"".into(),
            format!("dir = {:?}", folder.display().to_string()),
        ),
        (
            "keyring = \"keyring.json\"".into(),
            format!("keyring = {:?}", keyring.display().to_string()),
        ),
    ]
}
