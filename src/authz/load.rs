//! [`PolicyStore::load`]: a policy directory becomes one immutable [`Generation`].
//!
//! The directory holds `schema.cedarschema` (required), every `*.cedar` file (read in sorted
//! order) and optionally `entities.json` (users, their attributes and group membership, in
//! Cedar's JSON entity format). Policies are validated strictly against the schema and the
//! entities against it too; every problem becomes a [`PolicyDiagnostic`] with file:line:col.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cedar_policy::{Entities, Entity, EntityUid, PolicySet, Schema, ValidationMode, Validator};

use super::diagnostics::{from_miette, PolicyDiagnostic};
use super::ids::{duplicate_ids, parse_file, ParsedPolicy, PolicyRef};
use super::index::PolicyIndex;
use super::schema::{ENTITIES_FILE, SCHEMA_FILE, USER_TYPE};

/// Generation numbers are unique in the process, so cache keys of two loads never collide.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// One loaded, validated, indexed policy directory. Immutable; requests hold an `Arc` to the
/// generation they started with.
#[derive(Debug)]
pub struct Generation {
    pub(crate) number: u64,
    pub(crate) dir: PathBuf,
    pub(crate) schema: Schema,
    pub(crate) index: PolicyIndex,
    /// Users of `entities.json` by name, with their attributes and (transitive) groups.
    pub(crate) users: HashMap<String, User>,
    /// Where each policy id came from.
    pub(crate) origins: HashMap<String, PolicyRef>,
    pub(crate) files: usize,
    /// SHA-256 (hex) of the schema, policy and entities texts this generation was built from.
    pub(crate) digest: String,
}

impl Generation {
    /// The generation number (unique in this process, increasing with every load).
    pub fn number(&self) -> u64 {
        self.number
    }
    /// The directory this generation was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// How many policies it holds.
    pub fn policy_count(&self) -> usize {
        self.origins.len()
    }
    /// How many `.cedar` files they came from.
    pub fn file_count(&self) -> usize {
        self.files
    }
    /// SHA-256 (hex) of exactly the texts loaded (see [`content_digest`]): what the audit
    /// trail records for a policy generation.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// The schema policies and entities were validated against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
    /// Where the policy `id` came from.
    pub fn origin(&self, id: &str) -> Option<&PolicyRef> {
        self.origins.get(id)
    }
}

/// A user of `entities.json`.
#[derive(Debug)]
pub(crate) struct User {
    pub(crate) entity: Entity,
    /// Its uid and the uids of all its (transitive) ancestors: the principal scopes that can
    /// match it.
    pub(crate) scope: Vec<EntityUid>,
}

impl User {
    fn new(entity: &Entity) -> Self {
        let uid = entity.uid();
        let (_, _, ancestors) = entity.clone().into_inner();
        let mut scope: Vec<EntityUid> = ancestors.into_iter().collect();
        scope.push(uid);
        scope.sort_unstable();
        scope.dedup();
        User {
            entity: entity.clone(),
            scope,
        }
    }
}

/// Loads policy directories.
#[derive(Debug, Clone, Copy)]
pub struct PolicyStore;

fn read(dir: &Path, name: &str) -> Result<String, PolicyDiagnostic> {
    std::fs::read_to_string(dir.join(name))
        .map_err(|e| PolicyDiagnostic::file_level(name, format!("cannot read `{name}`: {e}")))
}

impl PolicyStore {
    /// Loads, validates and indexes `dir`. Returns every diagnostic found, not just the first.
    pub fn load(dir: &Path) -> Result<Generation, Vec<PolicyDiagnostic>> {
        let schema_text = read(dir, SCHEMA_FILE).map_err(|d| vec![d])?;
        let schema = match Schema::from_cedarschema_str(&schema_text) {
            Ok((schema, _warnings)) => schema,
            Err(e) => return Err(vec![from_miette(SCHEMA_FILE, &schema_text, &e)]),
        };

        let mut digest = ContentDigest::default();
        digest.feed(SCHEMA_FILE, &schema_text);
        let mut diagnostics = Vec::new();
        let mut texts: HashMap<String, String> = HashMap::new();
        let mut policies: Vec<ParsedPolicy> = Vec::new();
        let files = policy_files(dir).map_err(|d| vec![d])?;
        for name in &files {
            let text = match read(dir, name) {
                Ok(t) => t,
                Err(d) => {
                    diagnostics.push(d);
                    continue;
                }
            };
            digest.feed(name, &text);
            match parse_file(name, &text) {
                Ok(parsed) => policies.extend(parsed),
                Err(errs) => diagnostics.extend(errs),
            }
            texts.insert(name.clone(), text);
        }
        diagnostics.extend(duplicate_ids(&policies));
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }

        let mut set = PolicySet::new();
        let mut origins = HashMap::new();
        for p in &policies {
            if let Err(e) = set.add(p.policy.clone()) {
                diagnostics.push(PolicyDiagnostic::file_level(&*p.origin.file, e.to_string()));
            }
            origins.insert(p.origin.id.to_string(), p.origin.clone());
        }
        let validation = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        for e in validation.validation_errors() {
            let origin = origins.get(&e.policy_id().to_string());
            let file = origin.map_or("<unknown>", |o| &*o.file);
            let text = texts.get(file).map_or("", String::as_str);
            diagnostics.push(from_miette(file, text, e));
        }

        if let Ok(text) = std::fs::read_to_string(dir.join(ENTITIES_FILE)) {
            digest.feed(ENTITIES_FILE, &text);
        }
        let users = match load_entities(dir, &schema) {
            Ok(users) => users,
            Err(d) => {
                diagnostics.push(d);
                HashMap::new()
            }
        };
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        let index = PolicyIndex::build(&policies)?;
        Ok(Generation {
            number: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            dir: dir.to_path_buf(),
            schema,
            index,
            users,
            origins,
            files: files.len(),
            digest: digest.finish(),
        })
    }
}

/// SHA-256 over (name, text) of the schema, each policy file in sorted order, then
/// `entities.json`; each length-prefixed so no two directory contents collide.
#[derive(Default)]
struct ContentDigest(sha2::Sha256);

impl ContentDigest {
    fn feed(&mut self, name: &str, text: &str) {
        use sha2::Digest;
        for part in [name.as_bytes(), text.as_bytes()] {
            self.0.update((part.len() as u64).to_be_bytes());
            self.0.update(part);
        }
    }
    fn finish(self) -> String {
        use sha2::Digest;
        hex::encode(self.0.finalize())
    }
}

/// The digest [`Generation::digest`] would have for the current content of `dir`, loadable or
/// not (for auditing a refused reload).
pub fn content_digest(dir: &Path) -> String {
    let mut digest = ContentDigest::default();
    if let Ok(text) = std::fs::read_to_string(dir.join(SCHEMA_FILE)) {
        digest.feed(SCHEMA_FILE, &text);
    }
    for name in policy_files(dir).unwrap_or_default() {
        if let Ok(text) = std::fs::read_to_string(dir.join(&name)) {
            digest.feed(&name, &text);
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join(ENTITIES_FILE)) {
        digest.feed(ENTITIES_FILE, &text);
    }
    digest.finish()
}

/// The `*.cedar` file names of `dir`, sorted.
fn policy_files(dir: &Path) -> Result<Vec<String>, PolicyDiagnostic> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        PolicyDiagnostic::file_level(&shown, format!("cannot read directory `{shown}`: {e}"))
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            PolicyDiagnostic::file_level(&shown, format!("cannot read directory `{shown}`: {e}"))
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".cedar") && !name.starts_with('.') && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Reads `entities.json` if present, validated against the schema; returns its users.
fn load_entities(dir: &Path, schema: &Schema) -> Result<HashMap<String, User>, PolicyDiagnostic> {
    if !dir.join(ENTITIES_FILE).exists() {
        return Ok(HashMap::new());
    }
    let text = read(dir, ENTITIES_FILE)?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| PolicyDiagnostic {
        file: ENTITIES_FILE.into(),
        line: e.line(),
        column: e.column(),
        message: format!("invalid JSON: {e}"),
        help: None,
    })?;
    let entities = Entities::from_json_value(json, Some(schema))
        .map_err(|e| from_miette(ENTITIES_FILE, &text, &e))?;
    Ok(entities
        .iter()
        .filter(|e| e.uid().type_name().to_string() == USER_TYPE)
        .map(|e| (e.uid().id().unescaped().to_string(), User::new(e)))
        .collect())
}
