//! The `[plugins]` config section.

use std::path::PathBuf;

use serde::Deserialize;

use super::loaded::CallLimits;

/// `[plugins]`: where plugins and keys live and what every call may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// Folder of `NAME.wasm` + `NAME.toml` pairs; a missing folder means no plugins.
    pub dir: PathBuf,
    /// CPU time a plugin may use for one batch.
    pub deadline_ms: u64,
    /// Extra CPU time per record of the batch (large batches need more than small ones).
    #[serde(default = "default_per_record_us")]
    pub deadline_per_record_us: u64,
    /// Largest linear memory of one plugin instance.
    pub memory_limit_bytes: usize,
    /// The keyring file (mode 0600); a missing file is an empty keyring.
    pub keyring: PathBuf,
    /// Idle instances kept per plugin for reuse.
    pub instances: usize,
    /// Keep compiled plugins in `<data dir>/plugin-cache` (keyed by the wasm's hash, the engine
    /// settings and the wasmtime version): restarts and re-deploys skip compilation.
    #[serde(default = "default_compile_cache")]
    pub compile_cache: bool,
    /// A hot reload compiles a new or changed plugin with the quick compiler first (Winch: it
    /// serves within a second, a 2.8 MB plugin included), then swaps in the optimised build
    /// (Cranelift) once that is compiled. `false`: the optimised build only, the previous
    /// version serving until it is ready.
    #[serde(default = "default_quick_reload")]
    pub quick_reload: bool,
}

impl Default for PluginSettings {
    /// The values of the embedded default config.
    fn default() -> Self {
        PluginSettings {
            dir: PathBuf::from("plugins"),
            deadline_ms: 5,
            deadline_per_record_us: default_per_record_us(),
            memory_limit_bytes: 16 << 20,
            keyring: PathBuf::from("keyring.json"),
            instances: 4,
            compile_cache: default_compile_cache(),
            quick_reload: default_quick_reload(),
        }
    }
}

fn default_per_record_us() -> u64 {
    10
}

fn default_compile_cache() -> bool {
    true
}

fn default_quick_reload() -> bool {
    true
}

/// How long `init` may take (it may compile a schema): well above a batch's deadline.
const INIT_DEADLINE_MS: u64 = 2000;

impl PluginSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=60_000).contains(&self.deadline_ms) {
            return Err(format!(
                "`plugins.deadline_ms` = {} must be between 1 and 60000",
                self.deadline_ms
            ));
        }
        if !(1 << 16..=super::engine::MAX_MEMORY_LIMIT).contains(&self.memory_limit_bytes) {
            return Err(format!(
                "`plugins.memory_limit_bytes` = {} must be between 65536 and {}",
                self.memory_limit_bytes,
                super::engine::MAX_MEMORY_LIMIT
            ));
        }
        if self.deadline_per_record_us > 10_000 {
            return Err(format!(
                "`plugins.deadline_per_record_us` = {} must be at most 10000",
                self.deadline_per_record_us
            ));
        }
        if !(1..=64).contains(&self.instances) {
            return Err(format!(
                "`plugins.instances` = {} must be between 1 and 64",
                self.instances
            ));
        }
        Ok(())
    }

    pub fn limits(&self) -> CallLimits {
        CallLimits {
            deadline_ms: self.deadline_ms,
            per_record_us: self.deadline_per_record_us,
            init_deadline_ms: INIT_DEADLINE_MS.max(self.deadline_ms),
            memory_limit: self.memory_limit_bytes,
            instances: self.instances,
        }
    }
}
