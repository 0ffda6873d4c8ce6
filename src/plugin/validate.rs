//! What a component must look like to be loaded: the three exports of world `plugin`, and no
//! imports beyond `palisade:plugin/host@0.2.x` (the contract) and WASI (linked as traps: std
//! imports WASI interfaces it never calls; a plugin that does call them traps).

use wasmtime::component::Component;
use wasmtime::Engine;

/// The contract package and the versions this host speaks (same major, and before 1.0 the
/// same minor).
pub const CONTRACT_PACKAGE: &str = "palisade:plugin";
pub const CONTRACT_VERSION_PREFIX: &str = "0.2.";
const REQUIRED_EXPORTS: [&str; 3] = ["init", "on-produce", "on-fetch"];

/// Checks imports and exports, returning the contract version the plugin was built against
/// (`None` when it imports no host function).
pub fn check(engine: &Engine, component: &Component) -> Result<Option<String>, String> {
    let ty = component.component_type();
    let mut version = None;
    for (name, _) in ty.imports(engine) {
        if name.starts_with("wasi:") {
            continue;
        }
        let Some(rest) = name.strip_prefix(CONTRACT_PACKAGE) else {
            return Err(format!(
                "imports `{name}`, which the host does not provide (only `{CONTRACT_PACKAGE}/host` and WASI)"
            ));
        };
        let Some((iface, v)) = rest.split_once('@') else {
            return Err(format!("imports `{name}` without a contract version"));
        };
        if iface != "/host" && iface != "/types" {
            return Err(format!("imports `{name}`, which the host does not provide"));
        }
        if !v.starts_with(CONTRACT_VERSION_PREFIX) {
            return Err(format!(
                "built against contract `{CONTRACT_PACKAGE}@{v}`; this broker speaks `{CONTRACT_PACKAGE}@{CONTRACT_VERSION_PREFIX}x`"
            ));
        }
        version = Some(v.to_string());
    }
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    for required in REQUIRED_EXPORTS {
        if !exports.contains(&required) {
            return Err(format!(
                "does not export `{required}` (exports: {})",
                if exports.is_empty() {
                    "none".to_string()
                } else {
                    exports.join(", ")
                }
            ));
        }
    }
    Ok(version)
}
