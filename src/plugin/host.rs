//! [`PluginHost`]: the broker's plugins. Holds the current [`Generation`] (swapped whole on
//! reload), the services host functions use, and the watchers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

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
use super::watcher::{is_plugin_file, parent_dir, watch_dir, DirWatcher};

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
    reloading: Mutex<()>,
    /// Whether the optimiser thread runs.
    optimizing: AtomicBool,
    /// Fingerprints whose optimised build failed: they keep their quick build.
    unoptimizable: Mutex<HashSet<[u8; 32]>>,
    watchers: Mutex<Vec<DirWatcher>>,
    /// Where load events go once the broker's audit trail and metrics exist.
    reports: Mutex<Option<Reports>>,
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

impl PluginHost {
    /// Loads the keyring and every plugin of the folder. Any plugin that fails to load fails
    /// the start (a topic must not run unguarded because its plugin is broken).
    pub fn open(settings: &PluginSettings, data_dir: &Path) -> Result<Arc<Self>, PluginError> {
        if settings.compile_cache {
            super::engine::use_cache_dir(&data_dir.join("plugin-cache"));
        }
        let keyring = SharedKeyring::open(&settings.keyring)?;
        let services = Arc::new(HostServices::new(
            keyring,
            EnvelopeStore::new(&data_dir.join("plugin-keys")),
        ));
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
            reloading: Mutex::new(()),
            optimizing: AtomicBool::new(false),
            unoptimizable: Mutex::new(HashSet::new()),
            watchers: Mutex::new(Vec::new()),
            reports: Mutex::new(None),
        }))
    }

    /// The generation serving new batches.
    pub fn generation(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    pub fn services(&self) -> &Arc<HostServices> {
        &self.services
    }

    /// Reports loads, refusals and reloads to the broker's audit trail and metrics from now on;
    /// the plugins loaded at start are reported at once.
    pub fn report_to(&self, audit: crate::audit::Audit, metrics: Arc<crate::metrics::Metrics>) {
        let reports = Reports { audit, metrics };
        let generation = self.current.load_full();
        reports.loaded(&generation.plugins().iter().collect::<Vec<_>>());
        *self.reports.lock() = Some(reports);
    }

    /// Answers plugins' `authorize` questions with `oracle` (the broker's Cedar authorizer).
    pub fn set_policy_oracle(&self, oracle: Box<dyn PolicyOracle>) {
        self.services.set_oracle(oracle);
    }

    /// Re-reads the folder and swaps in the new generation; new or changed plugins are
    /// compiled by the quick tier (unless configured otherwise) and their optimised builds
    /// follow in the background. Returns the plugins that failed (each keeps its previous
    /// version, if it had one).
    pub fn reload(self: &Arc<Self>) -> Vec<LoadFailure> {
        let failures = self.reload_folder();
        self.optimize_in_background();
        failures
    }

    fn reload_folder(&self) -> Vec<LoadFailure> {
        let _one_at_a_time = self.reloading.lock();
        let previous = self.current.load_full();
        match load_generation(
            &self.dir,
            previous.number + 1,
            &previous,
            &self.services,
            self.limits,
            self.reload_tier,
        ) {
            Ok((generation, failures)) => {
                for f in &failures {
                    tracing::error!("{f}");
                }
                if let Some(reports) = self.reports.lock().as_ref() {
                    let changed: Vec<&Arc<super::loaded::LoadedPlugin>> = generation
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
                let names = |g: &Generation| {
                    g.plugins()
                        .iter()
                        .map(|p| (p.name.clone(), p.fingerprint))
                        .collect::<Vec<_>>()
                };
                if names(&generation) != names(&previous) {
                    tracing::info!(
                        generation = generation.number,
                        plugins = ?generation.plugins().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
                        "plugins reloaded"
                    );
                }
                self.current.store(Arc::new(generation));
                failures
            }
            Err(e) => {
                tracing::error!("plugins not reloaded (the previous ones stay): {e}");
                if let Some(reports) = self.reports.lock().as_ref() {
                    reports.metrics.reload("plugins", false);
                }
                Vec::new()
            }
        }
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
        let _one_at_a_time = self.reloading.lock();
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
        let mut watchers = self.watchers.lock();
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
            match watch_dir(&self.dir, "plugin-watcher", is_plugin_file, move || {
                if let Some(host) = host.upgrade() {
                    host.reload();
                }
            }) {
                Ok(w) => watchers.push(w),
                Err(e) => tracing::error!("plugin folder is not watched: {e}"),
            }
        }
        let keyring = self.services.keyring.clone();
        let file_name = keyring.path().file_name().map(|n| n.to_os_string());
        let dir = parent_dir(keyring.path());
        if let (Some(file_name), true) = (file_name, dir.is_dir()) {
            let relevant = move |p: &Path| p.file_name() == Some(file_name.as_os_str());
            match watch_dir(&dir, "keyring-watcher", relevant, move || {
                match keyring.reload() {
                    Ok(n) => tracing::info!("keyring reloaded: {n} keys"),
                    Err(e) => tracing::error!("keyring not reloaded (the previous one stays): {e}"),
                }
            }) {
                Ok(w) => watchers.push(w),
                Err(e) => tracing::error!("keyring is not watched: {e}"),
            }
        }
    }
}
