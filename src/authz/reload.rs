//! [`PolicyWatcher`]: reloads the [`Authorizer`]'s policy directory when it changes.
//!
//! The directory is watched (never single files: after an editor renames a new file into
//! place, a watch on the old inode goes silent). Rename saves (`Create`, `Modify(Name)`) and
//! truncate + write saves (`Modify(Data)`, `Access(Close(Write))`) both count. Events are
//! debounced, then [`Authorizer::reload`] runs on the watcher's own thread: parse, validate and
//! index off the request path, then swap the `Arc`. A broken change keeps the last good
//! generation and logs every diagnostic with file:line:col.

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};

use super::decide::Authorizer;
use super::schema::{ENTITIES_FILE, SCHEMA_FILE};

/// Quiet time after the last event before reloading.
pub use crate::fswatch::DEBOUNCE;
/// Longest delay between the first event and the reload.
pub const MAX_DELAY: Duration = Duration::from_millis(500);

/// A watch that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch `{dir}`: {source}")]
    Watch {
        dir: String,
        #[source]
        source: notify::Error,
    },
    #[error("cannot start the policy watcher thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Watches a policy directory until dropped.
pub struct PolicyWatcher {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for PolicyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyWatcher").finish_non_exhaustive()
    }
}

impl PolicyWatcher {
    /// Watches the directory of `authorizer`'s current generation; a change is served within
    /// about [`DEBOUNCE`] (at most [`MAX_DELAY`]) plus the load time.
    pub fn start(authorizer: Arc<Authorizer>) -> Result<Self, WatchError> {
        let dir = authorizer.current().dir().to_path_buf();
        let (tx, rx) = mpsc::channel::<notify::Result<Event>>();
        let watch_error = |source| WatchError::Watch {
            dir: dir.display().to_string(),
            source,
        };
        let mut watcher = notify::recommended_watcher(tx).map_err(watch_error)?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(watch_error)?;
        std::thread::Builder::new()
            .name("policy-watcher".into())
            .spawn(move || run(&authorizer, &rx))?;
        Ok(PolicyWatcher { _watcher: watcher })
    }
}

/// Whether a path is one the policy store reads.
fn is_policy_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.')
        && (name.ends_with(".cedar") || name == SCHEMA_FILE || name == ENTITIES_FILE)
}

fn is_relevant(event: &Event) -> bool {
    crate::fswatch::is_content_change(&event.kind) && event.paths.iter().any(|p| is_policy_file(p))
}

/// Runs until the watcher (the channel's sender) is dropped.
fn run(authorizer: &Authorizer, rx: &mpsc::Receiver<notify::Result<Event>>) {
    let relevant = |event: notify::Result<Event>| match event {
        Ok(event) => is_relevant(&event),
        Err(e) => {
            tracing::warn!(error = %e, "policy watch error");
            true
        }
    };
    // `reload` logs every diagnostic and keeps the last good generation on error.
    crate::fswatch::debounce(rx, MAX_DELAY, relevant, || {
        let _ = authorizer.reload();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_policy_files_are_relevant() {
        assert!(is_policy_file(Path::new("/p/a.cedar")));
        assert!(is_policy_file(Path::new("/p/schema.cedarschema")));
        assert!(is_policy_file(Path::new("/p/entities.json")));
        assert!(!is_policy_file(Path::new("/p/.a.cedar.swp")));
        assert!(!is_policy_file(Path::new("/p/README.md")));
    }
}
