//! The example plugins (built from `plugins/` for wasm32-wasip2) and installing them into a
//! broker's plugin folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// `cargo build --release --target wasm32-wasip2` of the example plugins' workspace, with the
/// test run's own target dir and flags removed (callers may add others).
pub fn build_command() -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(root.join("plugins/Cargo.toml"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    command
}

/// Builds the example plugins once per test run (a failed build fails every test that needs
/// them, loudly: plugins are never skipped).
pub fn plugins_built() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_build = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let result = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = build_command()
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building the example plugins failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(root.join("plugins/target/wasm32-wasip2/release"))
    });
    match result {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

pub fn wasm(crate_name: &str) -> PathBuf {
    let path = plugins_built().join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Installs `crate_name`'s component as `<folder>/<name>.wasm` with `manifest`, manifest first,
/// each by rename so the watcher never reads half a file.
pub fn install(folder: &Path, name: &str, crate_name: &str, manifest: &str) {
    std::fs::create_dir_all(folder).unwrap();
    let tmp = folder.join(format!(".{name}.toml.tmp"));
    std::fs::write(&tmp, manifest).unwrap();
    std::fs::rename(&tmp, folder.join(format!("{name}.toml"))).unwrap();
    let tmp = folder.join(format!(".{name}.wasm.tmp"));
    std::fs::copy(wasm(crate_name), &tmp).unwrap();
    std::fs::rename(&tmp, folder.join(format!("{name}.wasm"))).unwrap();
}
