//! `palisade plugin deploy FILE.wasm`: check a plugin with its manifest, then install the pair
//! into a plugin folder under the manifest's name, so a plugin goes from `cargo build` to a
//! running broker without renaming files by hand.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::plugin::{check_with_manifest, find_manifest};
use super::CliError;

pub fn run(
    file: &Path,
    manifest: Option<&Path>,
    dir: &Path,
    keyring: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let manifest = match find_manifest(file, manifest) {
        Ok(m) => m,
        Err(looked_in) => {
            let looked: Vec<String> = looked_in.iter().map(|p| p.display().to_string()).collect();
            eprintln!(
                "error: no manifest for `{}` (looked for {}); pass --manifest",
                file.display(),
                looked.join(", ")
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let Some(name) = manifest
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.starts_with('.') && !s.is_empty())
    else {
        eprintln!(
            "error: manifest `{}` has no usable name (the plugin is named after it)",
            manifest.display()
        );
        return Ok(ExitCode::FAILURE);
    };
    // The broker would refuse what fails here: install nothing rather than a broken plugin.
    if !check_with_manifest(file, &manifest, keyring)? {
        eprintln!("not deployed: the check failed");
        return Ok(ExitCode::FAILURE);
    }
    let (wasm_to, manifest_to) = install(file, &manifest, dir, name)?;
    println!(
        "deployed `{name}`: {} and {}",
        wasm_to.display(),
        manifest_to.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Copies the manifest, then the component, into `dir` as `NAME.toml` and `NAME.wasm`, each
/// by an atomic replace: the broker's watcher never reads half a file, and it loads the pair
/// when the component arrives with its manifest already beside it.
fn install(
    wasm: &Path,
    manifest: &Path,
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, PathBuf), CliError> {
    std::fs::create_dir_all(dir)?;
    let manifest_to = dir.join(format!("{name}.toml"));
    let wasm_to = dir.join(format!("{name}.wasm"));
    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| CliError::Usage(format!("cannot read `{}`: {e}", path.display())))
    };
    let write = |path: &Path, bytes: &[u8]| {
        crate::private_file::write(path, bytes)
            .map_err(|e| CliError::Usage(format!("cannot write `{}`: {e}", path.display())))
    };
    let (manifest_bytes, wasm_bytes) = (read(manifest)?, read(wasm)?);
    write(&manifest_to, &manifest_bytes)?;
    write(&wasm_to, &wasm_bytes)?;
    Ok((wasm_to, manifest_to))
}
