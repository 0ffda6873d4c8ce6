//! Hot reload: watches the plugin folder and the keyring's folder (parent directories, as
//! every watcher here does; see `crate::fswatch`), and reloads after a burst of changes.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};

/// Longest delay between the first event and the reload: with compilation, a new plugin
/// serves within a second of being dropped in.
pub const MAX_DELAY: Duration = Duration::from_millis(300);

/// Keeps a directory watched until dropped.
pub struct DirWatcher {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher").finish_non_exhaustive()
    }
}

/// Watches `dir` (not recursively); calls `reload` on its own thread once per burst of events
/// that `relevant` accepts.
pub fn watch_dir(
    dir: &Path,
    name: &str,
    relevant: impl Fn(&Path) -> bool + Send + 'static,
    reload: impl FnMut() + Send + 'static,
) -> Result<DirWatcher, String> {
    let (tx, rx) = mpsc::channel::<notify::Result<Event>>();
    let mut watcher =
        notify::recommended_watcher(tx).map_err(|e| format!("`{}`: {e}", dir.display()))?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("`{}`: {e}", dir.display()))?;
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            crate::fswatch::debounce(
                &rx,
                MAX_DELAY,
                |event| match event {
                    Ok(e) => {
                        crate::fswatch::is_content_change(&e.kind)
                            && e.paths.iter().any(|p| relevant(p))
                    }
                    Err(_) => true,
                },
                reload,
            )
        })
        .map_err(|e| format!("cannot start watcher thread: {e}"))?;
    Ok(DirWatcher { _watcher: watcher })
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

/// The directory holding `file` (`.` for a bare file name).
pub fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
