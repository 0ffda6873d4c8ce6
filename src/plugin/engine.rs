//! The wasmtime [`Engine`]s of the process, one per [`Tier`]: the optimised one (Cranelift, the
//! pooling allocator: instantiation about twice as fast as on-demand; FIELD-NOTES.md) and the
//! quick one (Winch, a single-pass compiler: a 2.8 MB plugin compiles in 0.4 s instead of 1.9 s,
//! its code runs 1.2-1.6x slower) that lets a hot-reloaded plugin serve within a second while
//! its optimised build compiles. Both use the component model and epoch interruption driven by
//! one ticker thread. Shared by every broker in the process (tests start several), created on
//! first use so a broker without plugins pays nothing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// One epoch tick. Deadlines are counted in ticks, so they are met to within one tick.
pub const TICK: Duration = Duration::from_millis(1);

/// The largest linear memory any plugin may be configured to use; the per-store limit
/// (`[plugins] memory_limit_bytes`) is enforced below it by `StoreLimits`.
pub const MAX_MEMORY_LIMIT: usize = 1 << 30;

/// Instances the pool holds at once, for all plugins of all brokers in the process.
const POOL_COMPONENT_INSTANCES: u32 = 512;

/// Which compiler builds a plugin's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Winch: fast to compile, slower code; a hot reload's first build.
    Quick,
    /// Cranelift with optimisations: what every plugin ends up running.
    Optimized,
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier::Quick => "quick",
            Tier::Optimized => "optimised",
        })
    }
}

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

/// The quick tier's engine; `None` where Winch is unavailable (it only targets x86-64).
static QUICK: OnceLock<Option<Engine>> = OnceLock::new();

/// Where compiled plugins are cached, if anywhere; fixed when the engine is created.
static CACHE_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Caches compiled plugins in `dir` from now on, if the engine does not exist yet (the first
/// broker of a process decides; a cache is only an accelerator and its entries are keyed by
/// everything that affects the compiled code, so sharing it is harmless).
pub fn use_cache_dir(dir: &Path) {
    if ENGINE.get().is_none() {
        let _ = CACHE_DIR.set(dir.to_path_buf());
    }
}

/// A private directory for the cache: its files are loaded as native code, so nobody but the
/// broker's user may write there. `None` (compile without a cache, with a warning) when it
/// cannot be made so.
fn private_cache(dir: &Path) -> Option<Cache> {
    match private_cache_at(dir) {
        Ok(cache) => Some(cache),
        Err(reason) => {
            tracing::warn!(
                "plugin compile cache `{}` not used: {reason}",
                dir.display()
            );
            None
        }
    }
}

fn private_cache_at(dir: &Path) -> Result<Cache, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| e.to_string())?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    let mode = meta.permissions().mode() & 0o777;
    // The broker's user id is not available without unsafe code: the cache must belong to
    // whoever owns the data dir it lives in.
    let owner_ok = dir
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .is_none_or(|parent| parent.uid() == meta.uid());
    if !meta.is_dir() || mode & 0o077 != 0 || !owner_ok {
        return Err(format!(
            "it must be a directory of the broker's user with mode 0700 (is {mode:o})"
        ));
    }
    // wasmtime wants an absolute path (the dev default's data dir is `./data`).
    let dir = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    let mut config = CacheConfig::new();
    config.with_directory(&dir);
    Cache::new(config).map_err(|e| format!("{e:#}"))
}

fn config(pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.cranelift_opt_level(wasmtime::OptLevel::Speed);
    if let Some(dir) = CACHE_DIR.get() {
        c.cache(private_cache(dir));
    }
    // `perf record` can name plugin functions when the broker runs with
    // PALISADE_PLUGIN_PERFMAP=1 (writes /tmp/perf-PID.map).
    if std::env::var_os("PALISADE_PLUGIN_PERFMAP").is_some_and(|v| v == "1") {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(POOL_COMPONENT_INSTANCES)
            .total_core_instances(POOL_COMPONENT_INSTANCES * 4)
            .total_memories(POOL_COMPONENT_INSTANCES * 2)
            .total_tables(POOL_COMPONENT_INSTANCES * 4)
            .max_memory_size(MAX_MEMORY_LIMIT);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

/// The quick tier's configuration: Winch, instances allocated on demand (the tier is
/// transient, it needs no pool reserved for it).
fn quick_config() -> Config {
    let mut c = config(false);
    c.strategy(wasmtime::Strategy::Winch);
    c
}

/// The engine of `tier` and the tier it really is (optimised where the quick tier is
/// unavailable).
pub fn engine_for(tier: Tier) -> Result<(&'static Engine, Tier), String> {
    let optimized = engine()?;
    if tier == Tier::Optimized {
        return Ok((optimized, Tier::Optimized));
    }
    let quick = QUICK.get_or_init(|| match Engine::new(&quick_config()) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::warn!("quick plugin compiler unavailable ({e:#}): hot reloads compile optimised code at once");
            None
        }
    });
    Ok(match quick {
        Some(q) => (q, Tier::Quick),
        None => (optimized, Tier::Optimized),
    })
}

/// The optimised engine; starts the epoch ticker (for both tiers) the first time.
pub fn engine() -> Result<&'static Engine, String> {
    ENGINE
        .get_or_init(|| {
            let engine = match Engine::new(&config(true)) {
                Ok(e) => e,
                Err(pooled) => {
                    tracing::warn!(
                        "plugin engine: pooling allocator unavailable ({pooled:#}); using on-demand instances"
                    );
                    Engine::new(&config(false)).map_err(|e| format!("{e:#}"))?
                }
            };
            let ticking = engine.clone();
            std::thread::Builder::new()
                .name("plugin-epoch".into())
                .spawn(move || loop {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                    if let Some(Some(quick)) = QUICK.get() {
                        quick.increment_epoch();
                    }
                })
                .map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Epoch ticks for a deadline of `ms` milliseconds (at least one full tick).
pub fn ticks(ms: u64) -> u64 {
    ms.max(1).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The dev default's data dir is relative (`./data`); wasmtime needs an absolute cache
    /// path. A directory others may write is never used.
    #[test]
    fn cache_dirs_may_be_relative_and_must_be_private() {
        let relative = PathBuf::from(format!(
            "target/tmp/plugin-cache-test-{}",
            std::process::id()
        ));
        assert!(private_cache(&relative).is_some());
        let mode = std::fs::metadata(&relative).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&relative, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_cache(&relative).is_none());
        std::fs::remove_dir_all(&relative).unwrap();
    }
}
