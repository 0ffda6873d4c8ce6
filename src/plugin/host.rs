//! [`PluginHost`]: the broker's plugins. Holds the current [`Generation`] (swapped whole on
//! reload through [`crate::reload::run`]), the services host functions use, and the watches.
//! Built by [`PluginHostBuilder`] with everything it reports to and asks, in one go.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::engine::Tier;
use super::envelope::EnvelopeStore;
use super::keyring::SharedKeyring;
use super::loaded::{CallLimits, LoadedPlugin};
use super::loader::{load_generation, LoadFailure};
use super::oracle::PolicyOracle;
use super::registry::Generation;
use super::settings::PluginSettings;
use super::state::HostServices;
use crate::reload::{Change, Problem, Reloadable, Reloads, Sources, Watch};

/// Longest delay between the first change in the plugin folder (or of the keyring) and the
/// reload: with compilation, a new plugin serves within a second of being dropped in.
pub const MAX_DELAY: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Keyring(#[from] super::keyring::KeyringError),
    #[error("{0}")]
    Folder(String),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Load(Vec<LoadFailure>),
}

/// The plugins of one broker.
pub struct PluginHost {
    dir: PathBuf,
    limits: CallLimits,
    /// The tier hot reloads compile new plugins at.
    reload_tier: Tier,
    services: Arc<HostServices>,
    current: ArcSwap<Generation>,
    /// One reload (or optimised swap) at a time.
    reloads: Reloads,
    /// Whether the optimiser thread runs.
    optimizing: AtomicBool,
    /// Fingerprints whose optimised build failed: they keep their quick build.
    unoptimizable: Mutex<HashSet<[u8; 32]>>,
    watches: Mutex<Vec<Watch>>,
    /// Where load events go (none for `palisade config check`).
    reports: Option<Reports>,
}

/// The audit trail and metrics of the broker owning the host.
struct Reports {
    audit: crate::audit::Audit,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Reports {
    fn loaded(&self, plugins: &[&Arc<super::loaded::LoadedPlugin>]) {
        for p in plugins {
            self.audit.record(crate::audit::Event::plugin_loaded(
                &p.name,
                &hex::encode(p.fingerprint),
            ));
        }
    }

    fn refused(&self, failures: &[LoadFailure]) {
        for f in failures {
            let name = f.file.file_stem().map_or_else(
                || f.file.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            );
            self.audit
                .record(crate::audit::Event::plugin_load_refused(&name, &f.message));
        }
    }
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Builds a [`PluginHost`]: settings, then what it reports to and asks, then [`Self::open`].
pub struct PluginHostBuilder<'a> {
    settings: &'a PluginSettings,
    data_dir: &'a Path,
    reports: Option<Reports>,
    oracle: Option<Box<dyn PolicyOracle>>,
}

impl std::fmt::Debug for PluginHostBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHostBuilder")
            .field("dir", &self.settings.dir)
            .finish_non_exhaustive()
    }
}

impl PluginHostBuilder<'_> {
    /// Loads, refusals and reloads go to the broker's audit trail and metrics.
    pub fn audit(
        mut self,
        audit: crate::audit::Audit,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        self.reports = Some(Reports { audit, metrics });
        self
    }

    /// Plugins' `authorize` questions are answered by `oracle` (the broker's one enforcement
    /// point); without one every question is denied.
    pub fn oracle(mut self, oracle: Box<dyn PolicyOracle>) -> Self {
        self.oracle = Some(oracle);
        self
    }

    /// Loads the keyring and every plugin of the folder. Any plugin that fails to load fails
    /// the start (a topic must not run unguarded because its plugin is broken). The plugins
    /// loaded are reported at once.
    pub fn open(self) -> Result<Arc<PluginHost>, PluginError> {
        let settings = self.settings;
        if settings.compile_cache {
            super::engine::use_cache_dir(&self.data_dir.join("plugin-cache"));
        }
        let keyring = SharedKeyring::open(&settings.keyring)?;
        let services = HostServices::new(
            keyring,
            EnvelopeStore::new(&self.data_dir.join("plugin-keys")),
        );
        if let Some(oracle) = self.oracle {
            services.set_oracle(oracle);
        }
        let services = Arc::new(services);
        let limits = settings.limits();
        // At start the broker waits for its plugins anyway: compile the code that will serve.
        let (generation, failures) = load_generation(
            &settings.dir,
            1,
            &Generation::default(),
            &services,
            limits,
            Tier::Optimized,
        )
        .map_err(PluginError::Folder)?;
        if !failures.is_empty() {
            return Err(PluginError::Load(failures));
        }
        if !generation.is_empty() {
            tracing::info!(
                plugins = ?generation.plugins().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
                "plugins loaded from `{}`",
                settings.dir.display()
            );
        }
        let reloads = Reloads::default();
        if let Some(reports) = &self.reports {
            reports.loaded(&generation.plugins().iter().collect::<Vec<_>>());
            let metrics = reports.metrics.clone();
            reloads.observe(Arc::new(move |outcome: &crate::reload::Outcome| {
                // A swap reports its own metrics (it knows which plugins failed).
                if let Change::Kept(_) = outcome.change {
                    metrics.reload("plugins", false);
                }
            }));
        }
        Ok(Arc::new(PluginHost {
            dir: settings.dir.clone(),
            limits,
            reload_tier: if settings.quick_reload {
                Tier::Quick
            } else {
                Tier::Optimized
            },
            services,
            current: ArcSwap::from_pointee(generation),
            reloads,
            optimizing: AtomicBool::new(false),
            unoptimizable: Mutex::new(HashSet::new()),
            watches: Mutex::new(Vec::new()),
            reports: self.reports,
        }))
    }
}

impl PluginHost {
    /// A builder over `settings`; `data_dir` holds the compile cache and wrapped data keys.
    pub fn builder<'a>(settings: &'a PluginSettings, data_dir: &'a Path) -> PluginHostBuilder<'a> {
        PluginHostBuilder {
            settings,
            data_dir,
            reports: None,
            oracle: None,
        }
    }

    /// The generation serving new batches.
    pub fn generation(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    pub fn services(&self) -> &Arc<HostServices> {
        &self.services
    }

    /// Re-reads the folder and swaps in the new generation; new or changed plugins are
    /// compiled by the quick tier (unless configured otherwise) and their optimised builds
    /// follow in the background. A plugin that fails keeps its previous version, if it had
    /// one (logged and audited); a folder that cannot be read keeps the whole generation.
    pub fn reload(self: &Arc<Self>) {
        // Both outcomes are logged by `run` and reported by `swap` or the observers.
        let _ = crate::reload::run(&**self);
        self.optimize_in_background();
    }

    /// The next plugin of the current generation still running its quick build.
    fn next_quick(&self) -> Option<Arc<LoadedPlugin>> {
        let unoptimizable = self.unoptimizable.lock();
        self.current
            .load()
            .plugins()
            .iter()
            .find(|p| p.tier == Tier::Quick && !unoptimizable.contains(&p.fingerprint))
            .cloned()
    }

    /// Starts the optimiser thread unless it runs: it compiles the optimised build of each
    /// plugin serving its quick build, one at a time, and swaps it in. It holds no reference
    /// to the host while compiling (a stopped broker is not kept alive by it).
    fn optimize_in_background(self: &Arc<Self>) {
        if self.next_quick().is_none() || self.optimizing.swap(true, Ordering::AcqRel) {
            return;
        }
        let host = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("plugin-optimiser".into())
            .spawn(move || loop {
                let Some(quick) = host.upgrade().and_then(|h| h.next_quick()) else {
                    let Some(h) = host.upgrade() else { return };
                    h.optimizing.store(false, Ordering::Release);
                    // A reload may have added a quick build after the check above and
                    // found the flag still set: then this thread carries on.
                    if h.next_quick().is_none() || h.optimizing.swap(true, Ordering::AcqRel) {
                        return;
                    }
                    continue;
                };
                let started = Instant::now();
                let optimized = quick.optimized();
                let Some(h) = host.upgrade() else { return };
                h.swap_in(&quick, optimized, started);
            });
        if let Err(e) = spawned {
            self.optimizing.store(false, Ordering::Release);
            tracing::error!("plugins keep their quick builds: cannot start the optimiser: {e}");
        }
    }

    /// Replaces `quick` by its optimised build in a new generation, if the current one still
    /// serves `quick` (a reload may have replaced or removed it meanwhile). Batches in flight
    /// finish with the quick build.
    fn swap_in(
        &self,
        quick: &Arc<LoadedPlugin>,
        optimized: Result<LoadedPlugin, String>,
        started: Instant,
    ) {
        let optimized = match optimized {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::error!(plugin = %quick.name, "plugin keeps its quick build: the optimised build failed: {e}");
                self.unoptimizable.lock().insert(quick.fingerprint);
                return;
            }
        };
        let _one_at_a_time = self.reloads.lock();
        let current = self.current.load_full();
        if !current.plugins().iter().any(|p| Arc::ptr_eq(p, quick)) {
            return;
        }
        let plugins = current
            .plugins()
            .iter()
            .map(|p| {
                if Arc::ptr_eq(p, quick) {
                    optimized.clone()
                } else {
                    p.clone()
                }
            })
            .collect();
        let generation = Generation::new(current.number + 1, plugins);
        tracing::info!(
            plugin = %quick.name,
            generation = generation.number,
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "plugin now runs its optimised build"
        );
        self.current.store(Arc::new(generation));
    }

    /// Watches the plugin folder and the keyring file. A missing plugin folder is created
    /// (empty: no plugins) so that plugins dropped in later load without a restart; errors are
    /// logged, the broker keeps serving.
    pub fn start_watching(self: &Arc<Self>) {
        let mut watches = self.watches.lock();
        if !self.dir.exists() {
            match std::fs::create_dir_all(&self.dir) {
                Ok(()) => tracing::info!(
                    "created the plugin folder `{}` (no plugins yet)",
                    self.dir.display()
                ),
                Err(e) => tracing::error!(
                    "plugin folder `{}` is missing and cannot be created (plugins need a restart): {e}",
                    self.dir.display()
                ),
            }
        }
        if self.dir.is_dir() {
            let host = Arc::downgrade(self);
            let sources = Sources {
                dirs: vec![self.dir.clone()],
                relevant: Arc::new(is_plugin_file),
                max_delay: MAX_DELAY,
            };
            match crate::reload::watch("plugin-watcher", sources, move || {
                if let Some(host) = host.upgrade() {
                    host.reload();
                }
            }) {
                Ok(w) => watches.push(w),
                Err(e) => tracing::error!("plugin folder is not watched: {e}"),
            }
        }
        let keyring = self.services.keyring.clone();
        if keyring.path().file_name().is_some()
            && crate::reload::parent_dir(keyring.path()).is_dir()
        {
            let sources = Sources::file(keyring.path(), MAX_DELAY);
            // Logged by `run`; a broken keyring keeps the previous one.
            match crate::reload::watch("keyring-watcher", sources, move || {
                let _ = keyring.reload();
            }) {
                Ok(w) => watches.push(w),
                Err(e) => tracing::error!("keyring is not watched: {e}"),
            }
        }
    }
}

impl Reloadable for PluginHost {
    /// The new generation and the plugins that failed (each keeps its previous version).
    type Next = (Generation, Vec<LoadFailure>);
    type Error = String;

    fn kind(&self) -> &'static str {
        "plugins"
    }

    /// Re-reads the folder; new or changed plugins are compiled (by the quick tier unless
    /// configured otherwise), unchanged ones are reused.
    fn load(&self) -> Result<Self::Next, String> {
        let previous = self.current.load_full();
        load_generation(
            &self.dir,
            previous.number + 1,
            &previous,
            &self.services,
            self.limits,
            self.reload_tier,
        )
    }

    fn swap(&self, (generation, failures): Self::Next) -> Option<u64> {
        let previous = self.current.load_full();
        for f in &failures {
            tracing::error!("{f}");
        }
        if let Some(reports) = &self.reports {
            let changed: Vec<&Arc<LoadedPlugin>> = generation
                .plugins()
                .iter()
                .filter(|p| {
                    !previous
                        .plugins()
                        .iter()
                        .any(|old| old.name == p.name && old.fingerprint == p.fingerprint)
                })
                .collect();
            reports.loaded(&changed);
            reports.refused(&failures);
            reports.metrics.reload("plugins", failures.is_empty());
        }
        let serving = |g: &Generation| {
            g.plugins()
                .iter()
                .map(|p| (p.name.clone(), p.fingerprint))
                .collect::<Vec<_>>()
        };
        if failures.is_empty() && serving(&generation) == serving(&previous) {
            // The same plugins (a save that changed nothing): keep the builds serving.
            return None;
        }
        let number = generation.number;
        tracing::debug!(
            generation = number,
            plugins = ?generation.plugins().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            "plugins serving"
        );
        self.current.store(Arc::new(generation));
        Some(number)
    }

    fn generation(&self) -> u64 {
        self.current.load().number
    }

    fn problems(&self, error: &String) -> Vec<Problem> {
        vec![Problem::unlocated(error.clone())]
    }

    fn reloads(&self) -> &Reloads {
        &self.reloads
    }
}

/// A plugin file: `*.wasm` or `*.toml`, not hidden (editors' and our temp files are).
pub fn is_plugin_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    !hidden
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("wasm" | "toml")
        )
}
