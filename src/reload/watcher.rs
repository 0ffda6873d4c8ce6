//! The one file watcher: decides *when* to reload; [`super::run`] decides *what* serves.
//!
//! Directories are watched, never single files: after an editor (or `palisade user`, or a
//! Kubernetes `..data` symlink swap) renames a new file into place, a watch on the old inode
//! goes silent. Both ways of saving count: rename into place (`Create`, `Modify(Name)`) and
//! truncate + write (`Modify(Data)`, then `Access(Close(Write))`); so do removals and `chmod`.
//! A burst of events (an editor's save is several) gives one reload: after [`DEBOUNCE`] of
//! quiet, but never later than the source's `max_delay` after the first event, so a busy
//! directory cannot postpone it forever.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// Quiet time after the last relevant event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// What to watch for one reloadable target.
#[derive(Clone)]
pub struct Sources {
    /// Directories holding the files (each watched once, not recursively).
    pub dirs: Vec<PathBuf>,
    /// Whether a changed path is one the target reads.
    pub relevant: Arc<dyn Fn(&Path) -> bool + Send + Sync>,
    /// Longest delay between the first event of a burst and the reload.
    pub max_delay: Duration,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("dirs", &self.dirs)
            .field("max_delay", &self.max_delay)
            .finish_non_exhaustive()
    }
}

impl Sources {
    /// The file `file` alone, watched through its directory.
    pub fn file(file: &Path, max_delay: Duration) -> Self {
        let name = file.file_name().map(std::ffi::OsStr::to_os_string);
        Sources {
            dirs: vec![parent_dir(file)],
            relevant: Arc::new(move |p: &Path| name.is_some() && p.file_name() == name.as_deref()),
            max_delay,
        }
    }
}

/// A watch that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch `{dir}`: {source}")]
    Watch {
        dir: String,
        #[source]
        source: notify::Error,
    },
    #[error("cannot start the `{name}` thread: {source}")]
    Thread {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// Keeps the directories watched until dropped; the reload thread then ends.
pub struct Watch {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

/// Watches `sources` and calls `reload` on a thread named `name` once per burst of relevant
/// events. A watch error (events lost) counts as relevant: reloading is always safe.
pub fn watch(
    name: &str,
    sources: Sources,
    mut reload: impl FnMut() + Send + 'static,
) -> Result<Watch, WatchError> {
    let (tx, rx) = mpsc::channel::<notify::Result<Event>>();
    let watch_error = |dir: &Path| {
        let dir = dir.display().to_string();
        move |source| WatchError::Watch { dir, source }
    };
    let first = sources.dirs.first().map_or_else(PathBuf::new, Clone::clone);
    let mut watcher = notify::recommended_watcher(tx).map_err(watch_error(&first))?;
    for dir in &sources.dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(watch_error(dir))?;
    }
    let thread = name.to_string();
    std::thread::Builder::new()
        .name(thread.clone())
        .spawn(move || {
            let relevant = |event: notify::Result<Event>| match event {
                Ok(event) => {
                    is_content_change(&event.kind)
                        && event.paths.iter().any(|p| (sources.relevant)(p))
                }
                Err(e) => {
                    tracing::warn!(watcher = %thread, error = %e, "file watch error");
                    true
                }
            };
            debounce(&rx, sources.max_delay, relevant, &mut reload);
        })
        .map_err(|source| WatchError::Thread {
            name: name.to_string(),
            source,
        })?;
    Ok(Watch { _watcher: watcher })
}

/// Writes, renames, creations, removals, attribute changes, and a close after writing (the
/// end of a truncate+write save); not reads.
pub fn is_content_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Calls `reload` once per burst of relevant events: after [`DEBOUNCE`] without another one,
/// but never later than `max_delay` after the first. Returns when the sender (the watcher) is
/// dropped.
pub fn debounce<T>(
    rx: &Receiver<T>,
    max_delay: Duration,
    mut relevant: impl FnMut(T) -> bool,
    mut reload: impl FnMut(),
) {
    while let Ok(event) = rx.recv() {
        if !relevant(event) {
            continue;
        }
        let deadline = Instant::now() + max_delay;
        let mut quiet_until = Instant::now() + DEBOUNCE;
        loop {
            let wait = quiet_until
                .min(deadline)
                .saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            match rx.recv_timeout(wait) {
                Ok(event) => {
                    if relevant(event) {
                        quiet_until = Instant::now() + DEBOUNCE;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        reload();
    }
}

/// The directory holding `file` (`.` for a bare file name).
pub fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
