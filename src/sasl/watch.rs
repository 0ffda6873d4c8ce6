//! [`CredentialWatcher`]: reloads [`SharedCredentials`] when its file changes.
//!
//! The parent directory is watched, never the file: after an editor or `palisade user` renames
//! a new file into place, a watch on the old inode goes silent. Both ways of saving are seen:
//! rename into place (`Create`/`Modify(Name)`) and truncate + write (`Modify(Data)`,
//! `Access(Close(Write))`); `chmod` (`Modify(Metadata)`) too. Events are debounced, then
//! [`SharedCredentials::reload`] runs on the watcher's own thread; a broken file keeps the last
//! good store (logged with the file name).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};

use super::credentials::CredentialError;
use super::SharedCredentials;

/// Quiet time after the last event before reloading.
pub use crate::fswatch::DEBOUNCE;

/// Longest delay between the first event and the reload, however busy the directory.
pub const MAX_DELAY: Duration = Duration::from_millis(500);

/// Watches a credential file until dropped.
pub struct CredentialWatcher {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for CredentialWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialWatcher").finish_non_exhaustive()
    }
}

fn watch_error(path: &Path, e: notify::Error) -> CredentialError {
    CredentialError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl CredentialWatcher {
    /// Starts watching `shared.path()`'s directory; reloads within about 100 ms of a change.
    pub fn start(shared: SharedCredentials) -> Result<Self, CredentialError> {
        let path = shared.path().to_path_buf();
        let file_name = path
            .file_name()
            .map(OsString::from)
            .ok_or_else(|| watch_error(&path, notify::Error::generic("no file name")))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (tx, rx) = mpsc::channel::<notify::Result<Event>>();
        let mut watcher = notify::recommended_watcher(tx).map_err(|e| watch_error(&path, e))?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| watch_error(&dir, e))?;
        std::thread::Builder::new()
            .name("credential-watcher".into())
            .spawn(move || run(&shared, &file_name, &rx))
            .map_err(|source| CredentialError::Read {
                path: path.clone(),
                source,
            })?;
        Ok(CredentialWatcher { _watcher: watcher })
    }
}

/// Whether an event may have changed the file named `file_name`.
fn is_relevant(event: &Event, file_name: &OsString) -> bool {
    crate::fswatch::is_content_change(&event.kind)
        && event
            .paths
            .iter()
            .any(|p| p.file_name() == Some(file_name.as_os_str()))
}

/// Runs until the watcher (the channel's sender) is dropped.
fn run(
    shared: &SharedCredentials,
    file_name: &OsString,
    rx: &mpsc::Receiver<notify::Result<Event>>,
) {
    let relevant = |event: notify::Result<Event>| match event {
        Ok(event) => is_relevant(&event, file_name),
        Err(e) => {
            tracing::warn!(file = %shared.path().display(), error = %e, "credential watch error");
            true
        }
    };
    // Errors are logged by `reload`, which keeps the last good store.
    crate::fswatch::debounce(rx, MAX_DELAY, relevant, || {
        let _ = shared.reload();
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sasl::{CredentialStore, Mechanism};
    use std::time::Instant;

    fn wait_for(shared: &SharedCredentials, users: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if shared.current().list_users().len() == users {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn reloads_on_rename_and_on_truncate_write_and_survives_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        let shared = SharedCredentials::open(&path).unwrap();
        let _watcher = CredentialWatcher::start(shared.clone()).unwrap();

        // Rename into place (what `save` and most editors do).
        let mut store = CredentialStore::load(&path).unwrap();
        store
            .add_user("alice", &Mechanism::ALL, 4096, b"pw")
            .unwrap();
        store.save(&path).unwrap();
        assert!(wait_for(&shared, 1));

        // A broken file: the last good store stays.
        std::fs::write(&path, "{ not json").unwrap();
        std::thread::sleep(DEBOUNCE * 4);
        assert_eq!(shared.current().list_users().len(), 1);

        // Truncate + write in place (the file keeps its inode and mode).
        store.add_user("bob", &Mechanism::ALL, 4096, b"pw").unwrap();
        std::fs::write(&path, crate::sasl::store_file::to_json(&store).unwrap()).unwrap();
        assert!(wait_for(&shared, 2));
    }
}
