//! Hot reload of TLS material.
//!
//! [`TlsReloader`] holds the current [`TlsMaterial`] in a [`Slot`] and has
//! [`crate::reload::watch`] watch the *parent directories* of every file the settings name
//! (they also see Kubernetes-style `..data` symlink swaps). Any change there loads and
//! validates the full material off the hot path ([`crate::reload::run`]); if it is valid and
//! differs from the current one it is swapped in, so new handshakes use it. Broken material is
//! never swapped in: the previous one keeps serving and the error is logged naming the file.
//! Open connections keep the config they started with.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;

use super::error::TlsError;
use super::mapping::PrincipalMapper;
use super::material::{load_material, TlsMaterial};
use super::settings::TlsSettings;
use crate::reload::{Problem, Reloadable, Reloads, Slot, Sources, Watch};

/// Upper bound of the debounce while events keep coming.
const MAX_DELAY: Duration = Duration::from_millis(400);

/// The current TLS config of a listener, reloaded when its files change.
///
/// Dropping it stops the watch.
pub struct TlsReloader {
    shared: Arc<Shared>,
    mapper: PrincipalMapper,
    _watch: Watch,
}

/// The listener's material as a [`Reloadable`] target.
struct Shared {
    settings: TlsSettings,
    material: Slot<TlsMaterial>,
    reloads: Reloads,
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
        let dirs = watched_dirs(&settings)?.into_iter().collect();
        let shared = Arc::new(Shared {
            material: Slot::new(material),
            settings,
            reloads: Reloads::default(),
        });
        // Any change in those directories may matter (a `..data` symlink swap renames a
        // directory entry no setting names).
        let sources = Sources {
            dirs,
            relevant: Arc::new(|_: &Path| true),
            max_delay: MAX_DELAY,
        };
        let worker = Arc::downgrade(&shared);
        let watch = crate::reload::watch("palisade-tls-reload", sources, move || {
            if let Some(shared) = worker.upgrade() {
                // Logged, counted and told to the observers by `run`.
                let _ = crate::reload::run(&*shared);
            }
        })
        .map_err(|e| TlsError::Watch {
            path: PathBuf::from("."),
            message: e.to_string(),
        })?;
        Ok(Self {
            shared,
            mapper,
            _watch: watch,
        })
    }

    /// When each certificate and CRL of the material now serving stops being usable.
    pub fn expiries(&self) -> Vec<crate::tls::Expiry> {
        self.shared.material.current().expiries.clone()
    }

    /// The config new handshakes should use.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.shared.material.current().config)
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
        self.shared.material.generation()
    }

    /// How many reloads were refused.
    pub fn failures(&self) -> u64 {
        self.shared.reloads.failures()
    }

    /// The error of the last refused reload, cleared by the next good load.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .reloads
            .last_error()
            .map(|problems| Problem::join(&problems))
    }

    /// Tells `observer` of every later swap and refusal (the audit trail, metrics).
    pub fn observe(&self, observer: crate::reload::Observer) {
        self.shared.reloads.observe(observer);
    }

    /// Reloads now (as a file change would). `Ok(true)` if new material was swapped in,
    /// `Ok(false)` if it was identical to the current one.
    pub fn reload_now(&self) -> Result<bool, TlsError> {
        crate::reload::run(&*self.shared).map(|swapped| swapped.is_some())
    }
}

impl Reloadable for Shared {
    type Next = TlsMaterial;
    type Error = TlsError;

    fn kind(&self) -> &'static str {
        "tls"
    }

    /// Reads and validates every file (chain, key, CRLs, expiry) into a server config.
    fn load(&self) -> Result<TlsMaterial, TlsError> {
        load_material(&self.settings)
    }

    fn swap(&self, next: TlsMaterial) -> Option<u64> {
        if next.fingerprint == self.material.current().fingerprint {
            return None;
        }
        Some(self.material.swap(next))
    }

    fn generation(&self) -> u64 {
        self.material.generation()
    }

    /// PEM and DER carry no useful position: the file, named in the message, is the location.
    fn problems(&self, error: &TlsError) -> Vec<Problem> {
        vec![Problem::unlocated(error.to_string())]
    }

    fn reloads(&self) -> &Reloads {
        &self.reloads
    }
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
