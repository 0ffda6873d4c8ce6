//! `palisade plugin new NAME`: renders the plugin template and an embedded copy of the SDK into
//! `./NAME`, so the scaffold builds offline outside this checkout.

use std::path::Path;
use std::process::ExitCode;

use super::CliError;

/// (path inside the new crate, contents) of the template; `{{name}}` and `{{crate_name}}` are
/// replaced.
const TEMPLATE: &[(&str, &str)] = &[
    (".gitignore", include_str!("../../sdk/template/.gitignore")),
    ("Cargo.toml", include_str!("../../sdk/template/Cargo.toml")),
    ("README.md", include_str!("../../sdk/template/README.md")),
    ("src/lib.rs", include_str!("../../sdk/template/src/lib.rs")),
    (
        "{{name}}.toml",
        include_str!("../../sdk/template/{{name}}.toml"),
    ),
];
/// (path under `palisade-sdk/`, contents) of the SDK.
const SDK: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../sdk/Cargo.toml")),
    ("README.md", include_str!("../../sdk/README.md")),
    ("src/bindings.rs", include_str!("../../sdk/src/bindings.rs")),
    (
        "src/byte_list.rs",
        include_str!("../../sdk/src/byte_list.rs"),
    ),
    ("src/export.rs", include_str!("../../sdk/src/export.rs")),
    ("src/host/mod.rs", include_str!("../../sdk/src/host/mod.rs")),
    (
        "src/host/wasm.rs",
        include_str!("../../sdk/src/host/wasm.rs"),
    ),
    ("src/lib.rs", include_str!("../../sdk/src/lib.rs")),
    ("src/plugin.rs", include_str!("../../sdk/src/plugin.rs")),
    ("src/records.rs", include_str!("../../sdk/src/records.rs")),
    (
        "src/signature.rs",
        include_str!("../../sdk/src/signature.rs"),
    ),
    ("src/stub.rs", include_str!("../../sdk/src/stub.rs")),
    ("src/verdict.rs", include_str!("../../sdk/src/verdict.rs")),
    ("wit/plugin.wit", include_str!("../../sdk/wit/plugin.wit")),
];

pub fn run(name: &str, parent: &Path) -> Result<ExitCode, CliError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        eprintln!("error: `{name}` is not a valid crate name (letters, digits, `-`, `_`)");
        return Ok(ExitCode::FAILURE);
    }
    let root = parent.join(name);
    if root.exists() {
        eprintln!("error: `{}` already exists", root.display());
        return Ok(ExitCode::FAILURE);
    }
    let crate_name = name.replace('-', "_");
    for (path, text) in TEMPLATE {
        let render = |s: &str| {
            s.replace("{{name}}", name)
                .replace("{{crate_name}}", &crate_name)
        };
        write(&root.join(render(path)), &render(text))?;
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

#[cfg(test)]
mod tests {

    /// A new SDK source file must be embedded too, or scaffolded plugins do not build.
    #[test]
    fn every_sdk_source_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk");
        let mut missing = Vec::new();
        let mut dirs = vec![root.join("src"), root.join("wit")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let relative = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !super::SDK.iter().any(|(p, _)| *p == relative) {
                    missing.push(relative);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "not embedded in `palisade plugin new`: {missing:?}"
        );
    }
}
