//! The one wasmtime [`Engine`] of the process: Cranelift, the component model, epoch
//! interruption driven by a ticker thread, and the pooling allocator (instantiation about twice
//! as fast as on-demand; FIELD-NOTES.md). Shared by every broker in the process (tests start
//! several), created on first use so a broker without plugins pays nothing.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// One epoch tick. Deadlines are counted in ticks, so they are met to within one tick.
pub const TICK: Duration = Duration::from_millis(1);

/// The largest linear memory any plugin may be configured to use; the per-store limit
/// (`[plugins] memory_limit_bytes`) is enforced below it by `StoreLimits`.
pub const MAX_MEMORY_LIMIT: usize = 1 << 30;

/// Instances the pool holds at once, for all plugins of all brokers in the process.
const POOL_COMPONENT_INSTANCES: u32 = 512;

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

fn config(pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.cranelift_opt_level(wasmtime::OptLevel::Speed);
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

/// The process engine; starts the epoch ticker the first time.
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
