//! [`PluginHost`]: the broker's plugins. Holds the current [`Generation`] (swapped whole on
//! reload), the services host functions use, and the watchers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::envelope::EnvelopeStore;
use super::keyring::SharedKeyring;
use super::loaded::CallLimits;
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
    services: Arc<HostServices>,
    current: ArcSwap<Generation>,
    reloading: Mutex<()>,
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
        let (generation, failures) =
            load_generation(&settings.dir, 1, &Generation::default(), &services, limits)
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
            services,
            current: ArcSwap::from_pointee(generation),
            reloading: Mutex::new(()),
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

    /// Re-reads the folder and swaps in the new generation. Returns the plugins that failed
    /// (each keeps its previous version, if it had one).
    pub fn reload(&self) -> Vec<LoadFailure> {
        let _one_at_a_time = self.reloading.lock();
        let previous = self.current.load_full();
        match load_generation(
            &self.dir,
            previous.number + 1,
            &previous,
            &self.services,
            self.limits,
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
