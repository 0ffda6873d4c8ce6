//! Reads the plugin folder into a new [`Generation`]: every `NAME.wasm` with its `NAME.toml`
//! at the folder's top level (sub-folders and other files are ignored). A plugin whose files
//! did not change is carried over without recompiling; one that fails to load keeps its
//! previous version (if any) and the failure is reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::engine::Tier;
use super::loaded::{CallLimits, LoadedPlugin};
use super::manifest::Manifest;
use super::registry::Generation;
use super::state::HostServices;

/// One plugin that could not be loaded.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub file: PathBuf,
    pub message: String,
    /// Whether the previous version keeps serving.
    pub kept_previous: bool,
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin `{}`: {}", self.file.display(), self.message)?;
        if self.kept_previous {
            write!(f, " (the previous version stays loaded)")?;
        }
        Ok(())
    }
}

/// The `NAME.wasm` files at the top of `dir`, by name. A missing folder has none.
fn plugin_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(format!(
                "cannot read plugin folder `{}`: {e}",
                dir.display()
            ))
        }
    };
    let mut found = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wasm") || !path.is_file() {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            if !stem.starts_with('.') {
                found.insert(stem.to_string(), path);
            }
        }
    }
    Ok(found)
}

/// Loads one plugin from its files, compiled at `tier` (also used by `palisade plugin check`).
pub fn load_one(
    name: &str,
    wasm_path: &Path,
    manifest_path: &Path,
    previous: Option<&Arc<LoadedPlugin>>,
    services: &Arc<HostServices>,
    limits: CallLimits,
    tier: Tier,
) -> Result<Arc<LoadedPlugin>, String> {
    let manifest_text = std::fs::read_to_string(manifest_path).map_err(|e| {
        format!(
            "cannot read its manifest `{}`: {e}",
            manifest_path.display()
        )
    })?;
    let wasm = std::fs::read(wasm_path).map_err(|e| format!("cannot read: {e}"))?;
    let mut hash = Sha256::new();
    hash.update(Sha256::digest(&wasm));
    hash.update(Sha256::digest(manifest_text.as_bytes()));
    let fingerprint: [u8; 32] = hash.finalize().into();
    if let Some(p) = previous.filter(|p| p.fingerprint == fingerprint) {
        return Ok(p.clone());
    }
    let manifest = Manifest::parse(&manifest_text, manifest_path).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let loaded = LoadedPlugin::load(
        name,
        &wasm,
        manifest,
        fingerprint,
        services.clone(),
        limits,
        tier,
    )?;
    // Compilation dominates a load (optimised: about 1 s per MB of wasm on two cores, quick:
    // a fifth of that) unless the compile cache already holds this plugin.
    tracing::info!(
        plugin = name,
        kb = wasm.len() / 1024,
        tier = %loaded.tier,
        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "plugin compiled, validated and initialised"
    );
    Ok(Arc::new(loaded))
}

/// Builds generation `number` from `dir`, reusing unchanged plugins of `previous` and
/// compiling new or changed ones at `tier`.
pub fn load_generation(
    dir: &Path,
    number: u64,
    previous: &Generation,
    services: &Arc<HostServices>,
    limits: CallLimits,
    tier: Tier,
) -> Result<(Generation, Vec<LoadFailure>), String> {
    let files = plugin_files(dir)?;
    let mut plugins = Vec::new();
    let mut failures = Vec::new();
    for (name, wasm_path) in files {
        let manifest_path = wasm_path.with_extension("toml");
        let old = previous.get(&name);
        match load_one(
            &name,
            &wasm_path,
            &manifest_path,
            old,
            services,
            limits,
            tier,
        ) {
            Ok(p) => plugins.push(p),
            Err(message) => {
                if let Some(old) = old {
                    plugins.push(old.clone());
                }
                failures.push(LoadFailure {
                    file: wasm_path,
                    message,
                    kept_previous: old.is_some(),
                });
            }
        }
    }
    Ok((Generation::new(number, plugins), failures))
}
