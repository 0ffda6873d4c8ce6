//! Hot reload of TLS material.
//!
//! [`TlsReloader`] holds the current [`TlsMaterial`] in an `ArcSwap` and watches the *parent
//! directories* of every file the settings name (a watch on the file itself goes silent after the
//! first rename-into-place; directories also see Kubernetes-style `..data` symlink swaps). Any
//! change in those directories, after a short debounce, loads and validates the full material
//! off the hot path; if it is valid and differs from the current one it is swapped in, so new
//! handshakes use it. Broken material is never swapped in: the previous one keeps serving and
//! the error is logged naming the file. Open connections keep the config they started with.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use rustls::ServerConfig;

use super::error::TlsError;
use super::mapping::PrincipalMapper;
use super::material::{load_material, TlsMaterial};
use super::settings::TlsSettings;

/// Upper bound of the debounce while events keep coming.
const MAX_DELAY: Duration = Duration::from_millis(400);

/// The current TLS config of a listener, reloaded when its files change.
///
/// Dropping it stops the watch.
pub struct TlsReloader {
    shared: Arc<Shared>,
    mapper: PrincipalMapper,
    _watcher: RecommendedWatcher,
}

struct Shared {
    settings: TlsSettings,
    current: ArcSwap<TlsMaterial>,
    generation: AtomicU64,
    failures: AtomicU64,
    last_error: parking_lot::Mutex<Option<String>>,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("settings", &self.shared.settings)
            .field("generation", &self.generation())
            .field("failures", &self.failures())
            .finish_non_exhaustive()
    }
}

impl TlsReloader {
    /// Loads the material (an error here is fatal: there is nothing to fall back to) and starts
    /// watching its directories from a background thread. Needs no async runtime.
    pub fn start(settings: TlsSettings) -> Result<Self, TlsError> {
        let material = load_material(&settings)?;
        let mapper = PrincipalMapper::from_settings(&settings)?;
        let shared = Arc::new(Shared {
            current: ArcSwap::from_pointee(material),
            settings,
            generation: AtomicU64::new(1),
            failures: AtomicU64::new(0),
            last_error: parking_lot::Mutex::new(None),
        });
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(event) if crate::fswatch::is_content_change(&event.kind) => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "tls file watch error"),
            })
            .map_err(|e| TlsError::Watch {
                path: PathBuf::from("."),
                message: e.to_string(),
            })?;
        for dir in watched_dirs(&shared.settings)? {
            watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|e| TlsError::Watch {
                    path: dir.clone(),
                    message: e.to_string(),
                })?;
        }
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("palisade-tls-reload".to_string())
            .spawn(move || reload_loop(&worker, &rx))
            .map_err(|e| TlsError::Watch {
                path: PathBuf::from("."),
                message: format!("cannot start the reload thread: {e}"),
            })?;
        Ok(Self {
            shared,
            mapper,
            _watcher: watcher,
        })
    }

    /// When each certificate and CRL of the material now serving stops being usable.
    pub fn expiries(&self) -> Vec<crate::tls::Expiry> {
        self.shared.current.load().expiries.clone()
    }

    /// The config new handshakes should use.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.shared.current.load().config)
    }

    /// An acceptor over [`Self::current`]: take a fresh one for every accepted connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current())
    }

    /// The compiled principal settings of this listener.
    pub fn principal_mapper(&self) -> &PrincipalMapper {
        &self.mapper
    }

    /// The settings being served.
    pub fn settings(&self) -> &TlsSettings {
        &self.shared.settings
    }

    /// 1 after start, +1 on every swap.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    /// How many reloads were refused.
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::SeqCst)
    }

    /// The error of the last refused reload, cleared by the next good load.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().clone()
    }

    /// Reloads now (as a file change would). `Ok(true)` if new material was swapped in,
    /// `Ok(false)` if it was identical to the current one.
    pub fn reload_now(&self) -> Result<bool, TlsError> {
        self.shared.reload()
    }
}

impl Shared {
    fn reload(&self) -> Result<bool, TlsError> {
        match load_material(&self.settings) {
            Ok(material) => {
                *self.last_error.lock() = None;
                if material.fingerprint == self.current.load().fingerprint {
                    return Ok(false);
                }
                self.current.store(Arc::new(material));
                let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                tracing::info!(generation, "tls material reloaded");
                Ok(true)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::SeqCst);
                *self.last_error.lock() = Some(e.to_string());
                tracing::error!(
                    file = %e.path().map(|p| p.display().to_string()).unwrap_or_default(),
                    error = %e,
                    "tls reload refused; the previous certificates keep serving"
                );
                Err(e)
            }
        }
    }
}

/// Waits for file events, debounces them, reloads; ends when the watcher is dropped.
fn reload_loop(shared: &Shared, rx: &Receiver<()>) {
    // The outcome is logged and recorded by `reload`.
    crate::fswatch::debounce(
        rx,
        MAX_DELAY,
        |()| true,
        || {
            let _ = shared.reload();
        },
    );
}

/// The distinct parent directories of every configured file, canonicalized.
fn watched_dirs(settings: &TlsSettings) -> Result<BTreeSet<PathBuf>, TlsError> {
    let mut dirs = BTreeSet::new();
    for file in settings.files() {
        let parent = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        let dir = parent.canonicalize().map_err(|source| TlsError::Read {
            path: parent.clone(),
            source,
        })?;
        dirs.insert(dir);
    }
    Ok(dirs)
}
