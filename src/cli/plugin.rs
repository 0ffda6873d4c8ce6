//! `palisade plugin`: check a plugin offline; deploy it into a plugin folder; scaffold a new
//! one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::CliError;
use crate::plugin::engine::Tier;
use crate::plugin::envelope::EnvelopeStore;
use crate::plugin::keyring::SharedKeyring;
use crate::plugin::loader::load_one;
use crate::plugin::state::HostServices;
use crate::plugin::{Keyring, PluginSettings};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Validate a plugin as the broker would load it: compile, imports and exports, contract
    /// version, manifest, and `init` with the manifest's config. Without a manifest, only the
    /// component's contract is checked (and `init` is not run).
    Check {
        /// The plugin component (`NAME.wasm`).
        file: PathBuf,
        /// Its manifest (default: `NAME.toml` beside the wasm file, or in the crate that
        /// built it, `my-filter.toml` for `my_filter.wasm`).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// A keyring to check the manifest's key ids against.
        #[arg(long)]
        keyring: Option<PathBuf>,
        /// Also store the compiled plugin in DIR/plugin-cache, the compile cache of a broker
        /// with this data dir: dropped into its plugin folder afterwards, the plugin loads
        /// without compiling (a large plugin takes about a second per MB to compile).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Check a plugin with its manifest, then install both into a plugin folder under the
    /// manifest's name (`my-filter.wasm` and `my-filter.toml`), each file replaced atomically,
    /// the manifest first: a running broker watching the folder loads the pair.
    Deploy {
        /// The plugin component, e.g. `target/wasm32-wasip2/release/my_filter.wasm`.
        file: PathBuf,
        /// Its manifest (default: found as `plugin check` finds it); its file name is the
        /// plugin's name in the folder.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The broker's plugin folder (`[plugins] dir`).
        #[arg(long, default_value = "./plugins")]
        dir: PathBuf,
        /// A keyring to check the manifest's key ids against.
        #[arg(long)]
        keyring: Option<PathBuf>,
    },
    /// Scaffold a plugin crate in ./NAME that builds with one cargo command.
    New { name: String },
}

pub fn run(command: PluginCommand) -> Result<ExitCode, CliError> {
    match command {
        PluginCommand::Check {
            file,
            manifest,
            keyring,
            data_dir,
        } => {
            if let Some(dir) = &data_dir {
                crate::plugin::engine::use_cache_dir(&dir.join("plugin-cache"));
            }
            check(&file, manifest.as_deref(), keyring.as_deref())
        }
        PluginCommand::Deploy {
            file,
            manifest,
            dir,
            keyring,
        } => super::plugin_deploy::run(&file, manifest.as_deref(), &dir, keyring.as_deref()),
        PluginCommand::New { name } => super::plugin_new::run(&name, Path::new(".")),
    }
}

/// Where the manifest of `file` is looked for, in order: `NAME.toml` beside it, then, in
/// each enclosing folder that holds a `Cargo.toml` (the crate that built it, whose
/// `target/<triple>/release/` holds the component), `NAME.toml` with `_` read as `-` (cargo
/// writes crate `my-filter` as `my_filter.wasm`) or as written.
pub(super) fn manifest_candidates(file: &Path) -> Vec<PathBuf> {
    let mut candidates = vec![file.with_extension("toml")];
    let Some(stem) = file.file_stem().and_then(|s| s.to_str()) else {
        return candidates;
    };
    let names = [
        format!("{}.toml", stem.replace('_', "-")),
        format!("{stem}.toml"),
    ];
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = std::path::absolute(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &dir
    })
    .unwrap_or(dir);
    for ancestor in dir.ancestors().skip(1) {
        if ancestor.join("Cargo.toml").is_file() {
            for name in &names {
                let path = ancestor.join(name);
                if !candidates.contains(&path) {
                    candidates.push(path);
                }
            }
        }
    }
    candidates
}

/// The manifest given, or the first candidate that exists.
pub(super) fn find_manifest(file: &Path, given: Option<&Path>) -> Result<PathBuf, Vec<PathBuf>> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let candidates = manifest_candidates(file);
    match candidates.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(candidates),
    }
}

/// Checks `file` with its manifest as the broker would load it (`init` included); prints what
/// it found, or the error to stderr; whether it passed.
pub(super) fn check_with_manifest(
    file: &Path,
    manifest_path: &Path,
    keyring: Option<&Path>,
) -> Result<bool, CliError> {
    let name = manifest_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .to_string();
    let ring = match keyring {
        Some(path) => Keyring::load(path)?,
        None => Keyring::default(),
    };
    let scratch =
        std::env::temp_dir().join(format!("palisade-plugin-check-{}", std::process::id()));
    let services = Arc::new(HostServices::new(
        SharedKeyring::fixed(ring.clone()),
        EnvelopeStore::new(&scratch),
    ));
    let limits = PluginSettings::default().limits();
    match load_one(
        &name,
        file,
        manifest_path,
        None,
        &services,
        limits,
        Tier::Optimized,
    ) {
        Ok(plugin) => {
            let m = &plugin.manifest;
            let hooks: Vec<&str> = [("produce", m.produce), ("fetch", m.fetch)]
                .into_iter()
                .filter_map(|(h, on)| on.then_some(h))
                .collect();
            println!(
                "{}: ok (contract {}, hooks {}, topics {}, order {}; manifest {})",
                file.display(),
                plugin
                    .contract_version
                    .as_deref()
                    .unwrap_or("0.1 (no host imports)"),
                hooks.join("+"),
                m.topics
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                m.order,
                manifest_path.display()
            );
            let mut failed = false;
            if keyring.is_some() {
                for k in &m.keys {
                    if ring.get(k).is_none() {
                        eprintln!("error: key `{k}` of the manifest is not in the keyring");
                        failed = true;
                    }
                }
            }
            Ok(!failed)
        }
        Err(e) => {
            eprintln!("error: plugin `{}`: {e}", file.display());
            Ok(false)
        }
    }
}

fn check(
    file: &Path,
    manifest: Option<&Path>,
    keyring: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let passed = match find_manifest(file, manifest) {
        Ok(manifest_path) => check_with_manifest(file, &manifest_path, keyring)?,
        Err(looked_in) => check_contract_only(file, &looked_in),
    };
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// No manifest: the component alone is checked against the contract; `init` needs the
/// manifest's config, so it is not run, and the output says so.
fn check_contract_only(file: &Path, looked_in: &[PathBuf]) -> bool {
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    let checked = std::fs::read(file)
        .map_err(|e| format!("cannot read: {e}"))
        .and_then(|wasm| crate::plugin::loaded::check_contract(name, &wasm));
    match checked {
        Ok(version) => {
            println!(
                "{}: contract ok (contract {}, exports init, on-produce, on-fetch)",
                file.display(),
                version.as_deref().unwrap_or("0.1 (no host imports)")
            );
            let looked: Vec<String> = looked_in.iter().map(|p| p.display().to_string()).collect();
            println!(
                "init not run: no manifest found (looked for {}); pass --manifest to check the manifest and run init with its config",
                looked.join(", ")
            );
            true
        }
        Err(e) => {
            eprintln!("error: plugin `{}`: {e}", file.display());
            false
        }
    }
}
