//! [`SharedCredentials`]: the live credential store of a running broker.
//!
//! Readers take a snapshot ([`SharedCredentials::current`], a cheap clone) per exchange.
//! [`SharedCredentials::reload`] swaps in the file's content through [`crate::reload::run`]; a
//! broken file keeps the last good store. [`SharedCredentials::watch`] reloads it whenever the
//! file changes. Every change publishes the map user -> [`UserFingerprint`] on a `tokio::sync::watch`
//! channel, so the connection layer can close connections whose user was removed or changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::watch;

use super::credentials::{CredentialError, CredentialStore, UserFingerprint};
use crate::reload::{Problem, Reloadable, Reloads, Sources, Watch, WatchError};

/// Longest delay between the first change of the file and the reload, however busy its
/// directory.
pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// Each user's fingerprint, as published after every change.
pub type Fingerprints = Arc<BTreeMap<String, UserFingerprint>>;

/// The live store, shared by all connections (clone freely).
#[derive(Clone)]
pub struct SharedCredentials {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    current: RwLock<CredentialStore>,
    /// Serializes reloads and read-modify-write updates.
    reloads: Reloads,
    generation: AtomicU64,
    changes: watch::Sender<Fingerprints>,
}

impl std::fmt::Debug for SharedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCredentials")
            .field("path", &self.inner.path)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl SharedCredentials {
    /// Loads the file at `path`, creating an empty store (mode 0600) if it does not exist.
    pub fn open(path: &Path) -> Result<Self, CredentialError> {
        let store = CredentialStore::load_or_create(path)?;
        Ok(Self::with_store(path, store))
    }

    /// Wraps an already loaded store; `path` is where reloads read and updates write.
    pub fn with_store(path: &Path, store: CredentialStore) -> Self {
        let (changes, _) = watch::channel(Arc::new(store.fingerprints()));
        SharedCredentials {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                current: RwLock::new(store),
                reloads: Reloads::default(),
                generation: AtomicU64::new(0),
                changes,
            }),
        }
    }

    /// The credential file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A snapshot of the current store; start each exchange with one.
    pub fn current(&self) -> CredentialStore {
        self.inner.current.read().clone()
    }

    /// Incremented on every change of the store's content.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Change notifications: the map user -> fingerprint after each change.
    pub fn subscribe(&self) -> watch::Receiver<Fingerprints> {
        self.inner.changes.subscribe()
    }

    /// Whether `user`, authenticated with credentials of `fingerprint`, still has exactly
    /// those credentials (false once removed or changed).
    pub fn is_current(&self, user: &str, fingerprint: UserFingerprint) -> bool {
        self.inner.current.read().fingerprint(user) == Some(fingerprint)
    }

    /// Re-reads the file. On error the current store stays and the error (naming the file) is
    /// logged and returned. Returns whether the content changed.
    pub fn reload(&self) -> Result<bool, CredentialError> {
        crate::reload::run(&*self.inner).map(|swapped| swapped.is_some())
    }

    /// Reloads the store whenever its file changes, until the returned [`Watch`] is dropped.
    pub fn watch(&self) -> Result<Watch, WatchError> {
        let shared = Arc::downgrade(&self.inner);
        crate::reload::watch(
            "credential-watcher",
            Sources::file(&self.inner.path, MAX_DELAY),
            move || {
                if let Some(inner) = shared.upgrade() {
                    // Logged by `run`, which keeps the last good store.
                    let _ = crate::reload::run(&*inner);
                }
            },
        )
    }

    /// Applies `change` to a copy of the current store, writes it to the file, then makes it
    /// current (for AlterUserScramCredentials). Nothing changes if `change` or the write fails.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut CredentialStore) -> Result<T, CredentialError>,
    ) -> Result<T, CredentialError> {
        let _one_at_a_time = self.inner.reloads.lock();
        let mut store = self.current();
        let value = change(&mut store)?;
        store.save(&self.inner.path)?;
        self.inner.replace(store);
        Ok(value)
    }
}

impl Inner {
    /// Makes `store` current unless it equals the current one; whether it did.
    fn replace(&self, store: CredentialStore) -> bool {
        let fingerprints = {
            let mut current = self.current.write();
            if *current == store {
                return false;
            }
            let fingerprints = store.fingerprints();
            *current = store;
            self.generation.fetch_add(1, Ordering::AcqRel);
            fingerprints
        };
        self.changes.send_replace(Arc::new(fingerprints));
        true
    }
}

impl Reloadable for Inner {
    type Next = CredentialStore;
    type Error = CredentialError;

    fn kind(&self) -> &'static str {
        "credentials"
    }

    /// Reads and checks the file (mode, format, published secret).
    fn load(&self) -> Result<CredentialStore, CredentialError> {
        CredentialStore::load(&self.path)
    }

    fn swap(&self, next: CredentialStore) -> Option<u64> {
        self.replace(next)
            .then(|| self.generation.load(Ordering::Acquire))
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The error names the file; JSON positions are not kept (they could quote a secret).
    fn problems(&self, error: &CredentialError) -> Vec<Problem> {
        vec![Problem::unlocated(error.to_string())]
    }

    fn reloads(&self) -> &Reloads {
        &self.reloads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::Mechanism;

    #[test]
    fn reload_picks_up_changes_and_keeps_the_last_good_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        let shared = SharedCredentials::open(&path).unwrap();
        let mut rx = shared.subscribe();
        assert!(shared.current().list_users().is_empty());

        let mut store = CredentialStore::load(&path).unwrap();
        store
            .add_user("alice", &Mechanism::ALL, 4096, b"pw")
            .unwrap();
        store.save(&path).unwrap();
        assert!(shared.reload().unwrap());
        assert!(!shared.reload().unwrap());
        assert_eq!(shared.generation(), 1);
        assert!(rx.has_changed().unwrap());
        let alice = rx.borrow_and_update().get("alice").copied().unwrap();
        assert!(shared.is_current("alice", alice));

        std::fs::write(&path, "{ broken").unwrap();
        let err = shared.reload().unwrap_err().to_string();
        assert!(err.contains("credentials.json"), "{err}");
        assert_eq!(shared.current().list_users().len(), 1);
        assert!(!rx.has_changed().unwrap());

        store
            .add_user("alice", &Mechanism::ALL, 4096, b"new")
            .unwrap();
        store.save(&path).unwrap();
        assert!(shared.reload().unwrap());
        assert!(!shared.is_current("alice", alice));
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn update_writes_then_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        let shared = SharedCredentials::open(&path).unwrap();
        shared
            .update(|s| s.add_user("bob", &[Mechanism::ScramSha256], 4096, b"pw"))
            .unwrap();
        let fp = shared.current().fingerprint("bob").unwrap();
        assert_eq!(CredentialStore::load(&path).unwrap(), shared.current());
        assert!(shared.update(|s| s.remove_user("nobody")).is_err());
        assert_eq!(shared.generation(), 1);
        shared.update(|s| s.remove_user("bob")).unwrap();
        assert!(!shared.is_current("bob", fp));
        assert!(shared.subscribe().borrow().is_empty());
    }

    fn wait_for(shared: &SharedCredentials, check: impl Fn(&SharedCredentials) -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if check(shared) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn the_watch_reloads_on_rename_and_on_truncate_write_and_survives_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        let shared = SharedCredentials::open(&path).unwrap();
        let _watch = shared.watch().unwrap();
        let users = |n: usize| move |s: &SharedCredentials| s.current().list_users().len() == n;

        // Rename into place (what `save` and most editors do).
        let mut store = CredentialStore::load(&path).unwrap();
        store
            .add_user("alice", &Mechanism::ALL, 4096, b"pw")
            .unwrap();
        store.save(&path).unwrap();
        assert!(wait_for(&shared, users(1)));

        // A broken file: refused, and the last good store stays.
        std::fs::write(&path, "{ not json").unwrap();
        assert!(wait_for(&shared, |s| s.inner.reloads.failures() >= 1));
        assert_eq!(shared.current().list_users().len(), 1);

        // Truncate + write in place (the file keeps its inode and mode).
        store.add_user("bob", &Mechanism::ALL, 4096, b"pw").unwrap();
        std::fs::write(&path, crate::sasl::store_file::to_json(&store).unwrap()).unwrap();
        assert!(wait_for(&shared, users(2)));
    }
}
