//! One loaded plugin: compiled and pre-instantiated once, called with an epoch deadline and a
//! memory limit, with instances reused from a small pool. An instance that trapped (deadline,
//! memory, a guest panic) may be poisoned: it is dropped and the next call gets a new one.
//!
//! # Invariants
//! - `init` has succeeded on every instance in the pool.
//! - No instance returns to the pool after a failed call.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;
use wasmtime::component::{Component, Linker};

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// A call may take at most this many times its deadline in total, host functions included.
const HARD_LIMIT_FACTOR: u32 = 50;

/// A quick build's CPU budget, in multiples of the configured one.
const QUICK_BUDGET_FACTOR: u32 = 2;

/// Epoch ticks covering `d` (rounded up, at least one, plus one for the partial first tick).
fn ticks_for(d: Duration) -> u64 {
    super::engine::ticks(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

use super::bindings::{CallContext, FetchVerdict, Plugin, PluginPre, ProduceVerdict};
use super::engine::Tier;
use super::manifest::Manifest;
use super::state::{ActiveCall, CallClock, Grant, HostServices, State};
use super::validate;
use crate::principal::AuthMethod;
use crate::request::Caller;

/// Limits every call runs under.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub deadline_ms: u64,
    /// Added to the deadline per record of the batch.
    pub per_record_us: u64,
    pub init_deadline_ms: u64,
    pub memory_limit: usize,
    /// Idle instances kept per plugin.
    pub instances: usize,
}

/// Why a call produced no verdict.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CallError {
    #[error("plugin `{0}` exceeded its deadline of {1} ms")]
    Deadline(String, u64),
    #[error("plugin `{0}` exceeded its memory limit of {1} bytes")]
    Memory(String, usize),
    #[error("plugin `{0}` trapped: {1}")]
    Trap(String, String),
    #[error("plugin `{0}` refused its configuration: {1}")]
    Init(String, String),
    #[error("plugin `{0}` could not be instantiated: {1}")]
    Instantiate(String, String),
}

struct Instance {
    store: Store<State>,
    bindings: Plugin,
}

/// A plugin ready to serve calls.
pub struct LoadedPlugin {
    pub name: String,
    pub manifest: Manifest,
    /// SHA-256 of the wasm bytes and of the manifest text: unchanged files are not reloaded.
    pub fingerprint: [u8; 32],
    pub contract_version: Option<String>,
    /// Which compiler built the code.
    pub tier: Tier,
    /// The component, kept while the code is the quick tier's: the optimised build is compiled
    /// from it (the file may have changed since).
    quick_source: Option<Arc<[u8]>>,
    engine: Engine,
    pre: PluginPre<State>,
    pool: Mutex<Vec<Instance>>,
    services: Arc<HostServices>,
    grant: Arc<Grant>,
    limits: CallLimits,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The hook's input: the partition, and who the call is made for.
#[derive(Debug, Clone)]
pub struct CallInput {
    pub topic: String,
    pub partition: i32,
    pub caller: Caller,
}

impl CallInput {
    /// The plugin contract's `call-context`: the caller as the WIT record spells it. The
    /// contract's published `auth-method` spellings (`none`, `mTLS`) are kept for plugins
    /// already built against it; inside the broker the mechanism has one vocabulary
    /// ([`AuthMethod::name`]).
    pub fn context(&self) -> CallContext {
        let auth_method = match self.caller.principal.method {
            AuthMethod::Anonymous => "none",
            AuthMethod::Mtls => "mTLS",
            AuthMethod::Sasl(mechanism) => mechanism,
        };
        CallContext {
            topic: self.topic.clone(),
            partition: self.partition,
            principal: self.caller.principal.name.clone(),
            auth_method: auth_method.to_string(),
            client_id: self.caller.client_id.clone(),
            listener: self.caller.listener.clone(),
        }
    }
}

impl LoadedPlugin {
    /// Compiles `wasm` at `tier`, checks its imports and exports, links the host functions
    /// (WASI as traps), pre-instantiates, and creates one instance (running `init` with the
    /// manifest's config): a plugin whose `init` fails is refused here.
    pub fn load(
        name: &str,
        wasm: &[u8],
        manifest: Manifest,
        fingerprint: [u8; 32],
        services: Arc<HostServices>,
        limits: CallLimits,
        tier: Tier,
    ) -> Result<Self, String> {
        let Prepared {
            engine,
            tier,
            pre,
            contract_version,
        } = prepare(name, wasm, tier)?;
        let grant = Arc::new(Grant {
            plugin: name.to_string(),
            keys: manifest.keys.iter().cloned().collect(),
        });
        let plugin = LoadedPlugin {
            name: name.to_string(),
            manifest,
            fingerprint,
            contract_version,
            tier,
            quick_source: (tier == Tier::Quick).then(|| Arc::from(wasm)),
            engine,
            pre,
            pool: Mutex::new(Vec::new()),
            services,
            grant,
            limits,
        };
        let first = plugin.instantiate().map_err(|e| e.to_string())?;
        plugin.pool.lock().push(first);
        Ok(plugin)
    }

    fn classify(&self, e: &wasmtime::Error, deadline_ms: u64) -> CallError {
        if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
            return CallError::Deadline(self.name.clone(), deadline_ms);
        }
        let text = format!("{e:#}");
        if text.contains("forcing trap when growing memory")
            || e.downcast_ref::<Trap>() == Some(&Trap::AllocationTooLarge)
        {
            return CallError::Memory(self.name.clone(), self.limits.memory_limit);
        }
        // The trap (or the root cause) says what happened; the wasm backtrace around it is
        // for debugging and stays out of client-visible messages.
        let cause = match e.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => e.root_cause().to_string(),
        };
        let cause = cause
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        tracing::debug!(plugin = %self.name, "plugin trapped: {text}");
        CallError::Trap(self.name.clone(), cause)
    }

    fn instantiate(&self) -> Result<Instance, CallError> {
        let state = State::new(
            self.services.clone(),
            self.grant.clone(),
            self.limits.memory_limit,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // At each tick past the deadline: go on while the plugin's own time (host calls
        // excluded) is within budget, else interrupt (a `Trap::Interrupt`).
        store.epoch_deadline_callback(|ctx| {
            Ok(match ctx.data().clock.remaining() {
                Some(left) => UpdateDeadline::Continue(ticks_for(left)),
                None => UpdateDeadline::Interrupt,
            })
        });
        let init = Duration::from_millis(self.limits.init_deadline_ms);
        store.data_mut().clock = CallClock::start(init, init);
        store.set_epoch_deadline(ticks_for(init));
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Instantiate(self.name.clone(), format!("{e:#}")))?;
        match bindings.call_init(&mut store, &self.manifest.config_json) {
            Ok(Ok(())) => Ok(Instance { store, bindings }),
            Ok(Err(reason)) => Err(CallError::Init(self.name.clone(), reason)),
            Err(e) => Err(match self.classify(&e, self.limits.init_deadline_ms) {
                CallError::Trap(n, m) => CallError::Init(n, m),
                other => other,
            }),
        }
    }

    /// Runs `f` on a pooled (or new) instance under the call deadline; the instance goes back
    /// to the pool only if the call returned normally.
    fn with_instance<R>(
        &self,
        input: &CallInput,
        records: &[u8],
        f: impl FnOnce(&Plugin, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let pooled = self.pool.lock().pop();
        let mut instance = match pooled {
            Some(i) => i,
            None => self.instantiate()?,
        };
        instance.store.data_mut().call = Some(ActiveCall {
            topic: input.topic.clone(),
            caller: input.caller.clone(),
        });
        // A record list starts with its record count (checked by the host before the call).
        let count = records
            .first_chunk::<4>()
            .map_or(0, |c| u64::from(u32::from_le_bytes(*c)));
        let mut budget = Duration::from_millis(self.limits.deadline_ms).saturating_add(
            Duration::from_micros(self.limits.per_record_us.saturating_mul(count)),
        );
        // A quick build's code runs up to about 1.6x slower than the optimised build the
        // budget is set for; for the seconds until that build replaces it, a plugin that fits
        // its budget must not start refusing batches.
        if self.tier == Tier::Quick {
            budget = budget.saturating_mul(QUICK_BUDGET_FACTOR);
        }
        instance.store.data_mut().clock =
            CallClock::start(budget, budget.saturating_mul(HARD_LIMIT_FACTOR));
        instance.store.set_epoch_deadline(ticks_for(budget));
        let result = f(&instance.bindings, &mut instance.store);
        match result {
            Ok(r) => {
                instance.store.data_mut().call = None;
                let mut pool = self.pool.lock();
                if pool.len() < self.limits.instances {
                    pool.push(instance);
                }
                Ok(r)
            }
            Err(e) => Err(self.classify(&e, self.limits.deadline_ms)),
        }
    }

    // The bindings take the list as `&Vec<u8>`.
    #[allow(clippy::ptr_arg)]
    pub fn on_produce(
        &self,
        input: &CallInput,
        records: &Vec<u8>,
    ) -> Result<ProduceVerdict, CallError> {
        let context = input.context();
        self.with_instance(input, records, |b, store| {
            b.call_on_produce(store, &context, records)
        })
    }

    #[allow(clippy::ptr_arg)]
    pub fn on_fetch(
        &self,
        input: &CallInput,
        records: &Vec<u8>,
    ) -> Result<FetchVerdict, CallError> {
        let context = input.context();
        self.with_instance(input, records, |b, store| {
            b.call_on_fetch(store, &context, records)
        })
    }

    /// The same plugin built by the optimising compiler.
    pub fn optimized(&self) -> Result<LoadedPlugin, String> {
        let wasm = self
            .quick_source
            .as_ref()
            .ok_or_else(|| format!("plugin `{}` is not a quick build", self.name))?;
        LoadedPlugin::load(
            &self.name,
            wasm,
            self.manifest.clone(),
            self.fingerprint,
            self.services.clone(),
            self.limits,
            Tier::Optimized,
        )
    }

    /// Instances currently idle in the pool (tests, diagnostics).
    pub fn idle_instances(&self) -> usize {
        self.pool.lock().len()
    }
}

/// A component compiled and checked against the contract, ready to instantiate.
struct Prepared {
    engine: Engine,
    tier: Tier,
    pre: PluginPre<State>,
    contract_version: Option<String>,
}

/// Compiles `wasm` at `tier` and checks its imports, exports and contract version, without
/// instantiating it (so without running `init`).
fn prepare(name: &str, wasm: &[u8], tier: Tier) -> Result<Prepared, String> {
    let compile = |tier| -> Result<_, String> {
        let (engine, tier) = super::engine::engine_for(tier)?;
        Ok(Component::new(engine, wasm).map(|c| (engine.clone(), tier, c)))
    };
    let (engine, tier, component) = match compile(tier)? {
        // Winch lacks some proposals (tail calls, for one) that Cranelift compiles:
        // such a plugin gets its optimised build at once.
        Err(quick) if tier == Tier::Quick => {
            tracing::debug!(
                plugin = name,
                "no quick build ({quick:#}); compiling optimised"
            );
            compile(Tier::Optimized)?
        }
        compiled => compiled,
    }
    .map_err(|e| format!("not a valid component: {e:#}"))?;
    let contract_version = validate::check(&engine, &component)?;
    let mut linker: Linker<State> = Linker::new(&engine);
    Plugin::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |s| s)
        .map_err(|e| format!("linking host functions: {e:#}"))?;
    linker
        .define_unknown_imports_as_traps(&component)
        .map_err(|e| format!("linking WASI as traps: {e:#}"))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| format!("{e:#}"))?;
    let pre =
        PluginPre::new(pre).map_err(|e| format!("exports do not match the contract: {e:#}"))?;
    Ok(Prepared {
        engine,
        tier,
        pre,
        contract_version,
    })
}

/// Checks a component against the contract (compiles it, checks its imports, exports and
/// contract version) without a manifest and without running `init`; the contract version it
/// was built against (`None` when it imports no host function).
pub fn check_contract(name: &str, wasm: &[u8]) -> Result<Option<String>, String> {
    prepare(name, wasm, Tier::Optimized).map(|p| p.contract_version)
}
