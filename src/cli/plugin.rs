//! `palisade plugin`: check a plugin offline; scaffold a new one.

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
    /// version, manifest, and `init` with the manifest's config.
    Check {
        /// The plugin component (`NAME.wasm`).
        file: PathBuf,
        /// Its manifest (default: `NAME.toml` beside the wasm file).
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
        PluginCommand::New { name } => super::plugin_new::run(&name, Path::new(".")),
    }
}

fn check(
    file: &Path,
    manifest: Option<&Path>,
    keyring: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let manifest_path = manifest
        .map(Path::to_path_buf)
        .unwrap_or_else(|| file.with_extension("toml"));
    let name = file
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
        &manifest_path,
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
                "{}: ok (contract {}, hooks {}, topics {}, order {})",
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
                m.order
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
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(e) => {
            eprintln!("error: plugin `{}`: {e}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
