//! `palisade plugin new NAME`: renders the plugin template and an embedded copy of the SDK into
//! `./NAME`, so the scaffold builds offline outside this checkout.

use std::path::Path;
use std::process::ExitCode;

use super::CliError;

/// (path inside the new crate, contents) of the template; `{{name}}` and `{{crate_name}}` are
/// replaced.
const TEMPLATE: &[(&str, &str)] = &[];
/// (path under `palisade-sdk/`, contents) of the SDK.
const SDK: &[(&str, &str)] = &[];

pub fn run(name: &str, parent: &Path) -> Result<ExitCode, CliError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        eprintln!("error: `{name}` is not a valid crate name (letters, digits, `-`, `_`)");
        return Ok(ExitCode::FAILURE);
    }
    if TEMPLATE.is_empty() {
        eprintln!("error: this build has no plugin template");
        return Ok(ExitCode::FAILURE);
    }
    let root = parent.join(name);
    if root.exists() {
        eprintln!("error: `{}` already exists", root.display());
        return Ok(ExitCode::FAILURE);
    }
    let crate_name = name.replace('-', "_");
    for (path, text) in TEMPLATE {
        let text = text
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &crate_name);
        write(&root.join(path), &text)?;
    }
    for (path, text) in SDK {
        write(&root.join("palisade-sdk").join(path), text)?;
    }
    println!(
        "created {}; build it with: cd {} && cargo build --release --target wasm32-wasip2",
        root.display(),
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}
