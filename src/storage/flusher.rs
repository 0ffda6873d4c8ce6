//! Group commit: one flusher thread per data directory. Appends register the segment they
//! wrote to (and, for acks=all, a waiter); the thread takes everything pending, fsyncs each
//! dirty file once, then wakes all waiters of that round. Appends arriving during an fsync
//! form the next round, so concurrent producers share fsyncs.
//!
//! A round may also publish: an append under group commit hands in the step that makes its
//! batch visible (advancing the high watermark), run only after a round that synced it
//! succeeded and before the round's acknowledgements, so nobody reads a batch that a failed
//! fsync or a crash could still take back.
//!
//! A failed fsync is fatal for the directory (fsyncgate: after a failed fsync the kernel may
//! have dropped the dirty pages, so a retry that succeeds proves nothing). The directory is
//! marked failed and every waiting and later operation gets `LogDirFailed`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::segment::Segment;
use super::StorageError;

/// Health of one data directory, shared by its partitions and its flusher.
pub struct DirHealth {
    dir: PathBuf,
    failed: Mutex<Option<String>>,
    /// Set by shutdown: operations stop, but pending flushes still run.
    closed: std::sync::atomic::AtomicBool,
    /// Tests: make the next fsync round fail as if the disk reported an error.
    #[cfg(test)]
    pub inject_fsync_error: std::sync::atomic::AtomicBool,
}

impl DirHealth {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            failed: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            inject_fsync_error: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn error(&self, reason: &str) -> StorageError {
        StorageError::LogDirFailed(self.dir.clone(), reason.to_string())
    }

    /// Ok while the directory is healthy and storage is not shut down.
    pub fn check(&self) -> Result<(), StorageError> {
        self.check_failed()?;
        if self.closed.load(Ordering::Acquire) {
            return Err(self.error("storage is shut down"));
        }
        Ok(())
    }

    /// Ok unless an I/O failure took the directory offline.
    pub fn check_failed(&self) -> Result<(), StorageError> {
        match &*self.failed.lock() {
            Some(reason) => Err(self.error(reason)),
            None => Ok(()),
        }
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Marks the directory failed; the first reason is kept.
    pub fn fail(&self, reason: String) -> StorageError {
        let mut failed = self.failed.lock();
        let reason = failed.get_or_insert(reason).clone();
        tracing::error!(dir = %self.dir.display(), %reason, "log directory failed");
        self.error(&reason)
    }
}

/// Run once a round covering the registered write succeeded; dropped unrun on failure.
pub type OnSynced = Box<dyn FnOnce() + Send>;

/// Completed by the flusher once the round covering a write is done.
pub type FsyncWait = oneshot::Receiver<Result<(), String>>;

enum Waiter {
    Async(oneshot::Sender<Result<(), String>>),
    Blocking(std::sync::mpsc::Sender<Result<(), String>>),
    Publish(OnSynced),
}

impl Waiter {
    fn wake(self, result: Result<(), String>) {
        // A waiter whose task was cancelled is gone; nothing to tell it.
        match self {
            Waiter::Async(tx) => drop(tx.send(result)),
            Waiter::Blocking(tx) => drop(tx.send(result)),
            Waiter::Publish(publish) => {
                if result.is_ok() {
                    publish();
                }
            }
        }
    }
}

/// Wakes a round's waiters: publications first, so an acknowledged batch is already visible.
fn wake_all(waiters: Vec<Waiter>, result: &Result<(), String>) {
    let (publish, rest): (Vec<_>, Vec<_>) = waiters
        .into_iter()
        .partition(|w| matches!(w, Waiter::Publish(_)));
    for waiter in publish.into_iter().chain(rest) {
        waiter.wake(result.clone());
    }
}

#[derive(Default)]
struct State {
    dirty: HashMap<usize, Arc<Segment>>,
    dirty_dirs: HashSet<PathBuf>,
    waiters: Vec<Waiter>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    health: Arc<DirHealth>,
    interval: Option<Duration>,
    fsyncs: AtomicU64,
    rounds: AtomicU64,
}

pub struct Flusher {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Flusher {
    /// Starts the flusher; `interval` is the background flush period (None = only on demand).
    pub fn start(health: Arc<DirHealth>, interval: Option<Duration>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            health,
            interval,
            fsyncs: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("palisade-flusher".into())
            .spawn(move || run(&thread_shared))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn register(
        &self,
        segment: &Arc<Segment>,
        waiters: impl IntoIterator<Item = Waiter>,
    ) -> Result<(), StorageError> {
        let mut state = self.shared.state.lock();
        if state.shutdown {
            return Err(self.shared.health.error("storage is shut down"));
        }
        state
            .dirty
            .insert(Arc::as_ptr(segment) as usize, Arc::clone(segment));
        let before = state.waiters.len();
        state.waiters.extend(waiters);
        if state.waiters.len() > before {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Remembers that `segment` has unsynced writes (synced by the next round).
    pub fn mark_dirty(&self, segment: &Arc<Segment>) -> Result<(), StorageError> {
        self.register(segment, None)
    }

    /// Starts a round for `segment`'s writes: `publish` runs once they are synced; with
    /// `wait`, the returned receiver completes then too (after `publish`).
    pub fn sync_and_publish(
        &self,
        segment: &Arc<Segment>,
        publish: OnSynced,
        wait: bool,
    ) -> Result<Option<FsyncWait>, StorageError> {
        let mut waiters = vec![Waiter::Publish(publish)];
        let rx = wait.then(|| {
            let (tx, rx) = oneshot::channel();
            waiters.push(Waiter::Async(tx));
            rx
        });
        self.register(segment, waiters)?;
        Ok(rx)
    }

    /// Directory entries changed (segment created or deleted).
    pub fn mark_dir_dirty(&self, dir: &Path) {
        self.shared
            .state
            .lock()
            .dirty_dirs
            .insert(dir.to_path_buf());
    }

    /// Registers `segment` and returns a receiver completed once it is synced.
    pub fn sync_segment(&self, segment: &Arc<Segment>) -> Result<FsyncWait, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.register(segment, Some(Waiter::Async(tx)))?;
        Ok(rx)
    }

    /// Runs a flush round now and waits for it (shutdown, tests).
    pub fn flush_blocking(&self) -> Result<(), StorageError> {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let mut state = self.shared.state.lock();
            if state.shutdown {
                return self.shared.health.check_failed();
            }
            state.waiters.push(Waiter::Blocking(tx));
            self.shared.wake.notify_one();
        }
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(self.shared.health.error(&reason)),
            Err(_) => Err(self.shared.health.error("flusher stopped")),
        }
    }

    /// Number of fsync calls issued so far (metrics; tests check group commit with it).
    pub fn fsync_count(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// Number of flush rounds so far.
    pub fn round_count(&self) -> u64 {
        self.shared.rounds.load(Ordering::Relaxed)
    }

    /// Flushes what is pending and stops the thread.
    pub fn stop(&self) {
        {
            let mut state = self.shared.state.lock();
            state.shutdown = true;
            self.shared.wake.notify_one();
        }
        if let Some(thread) = self.thread.lock().take() {
            if thread.thread().id() != std::thread::current().id() && thread.join().is_err() {
                tracing::error!("flusher thread panicked");
            }
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.shutdown = true;
        self.shared.wake.notify_one();
    }
}

fn run(shared: &Shared) {
    let mut next_periodic = shared.interval.map(|i| Instant::now() + i);
    loop {
        let (segments, dirs, waiters, exit) = {
            let mut state = shared.state.lock();
            loop {
                if !state.waiters.is_empty() || state.shutdown {
                    break;
                }
                let has_dirty = !state.dirty.is_empty() || !state.dirty_dirs.is_empty();
                match next_periodic {
                    Some(at) if Instant::now() >= at && has_dirty => break,
                    Some(at) if Instant::now() >= at => {
                        next_periodic = shared.interval.map(|i| Instant::now() + i)
                    }
                    Some(at) => {
                        shared.wake.wait_until(&mut state, at);
                    }
                    None => shared.wake.wait(&mut state),
                }
            }
            next_periodic = shared.interval.map(|i| Instant::now() + i);
            (
                std::mem::take(&mut state.dirty),
                std::mem::take(&mut state.dirty_dirs),
                std::mem::take(&mut state.waiters),
                state.shutdown,
            )
        };
        let result = match shared.health.check_failed() {
            Err(err) => Err(err.to_string()),
            Ok(()) => sync_all(shared, segments.into_values(), dirs),
        };
        if let Err(reason) = &result {
            shared.health.fail(reason.clone());
        }
        wake_all(waiters, &result);
        if exit {
            let mut state = shared.state.lock();
            for waiter in std::mem::take(&mut state.waiters) {
                waiter.wake(Err("storage is shut down".into()));
            }
            return;
        }
    }
}

/// Files synced at once in a round; larger rounds go in chunks of this size.
const MAX_PARALLEL_FSYNCS: usize = 32;

fn sync_concurrently(shared: &Shared, segments: &[Arc<Segment>]) -> Result<(), String> {
    let results: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = segments
            .iter()
            .map(|segment| {
                s.spawn(move || {
                    segment.sync().map_err(|err| {
                        format!("fsync of `{}` failed: {err}", segment.log_path().display())
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("fsync thread panicked".to_string()))
            })
            .collect()
    });
    for result in results {
        shared.fsyncs.fetch_add(result?, Ordering::Relaxed);
    }
    Ok(())
}

fn sync_all(
    shared: &Shared,
    segments: impl Iterator<Item = Arc<Segment>>,
    dirs: HashSet<PathBuf>,
) -> Result<(), String> {
    shared.rounds.fetch_add(1, Ordering::Relaxed);
    #[cfg(test)]
    if shared
        .health
        .inject_fsync_error
        .swap(false, Ordering::AcqRel)
    {
        return Err("fsync failed: injected i/o error".into());
    }
    // Every dirty segment of the round is synced concurrently: the device absorbs parallel
    // flushes far better than a queue of them, and the round ends with its slowest file.
    let segments: Vec<Arc<Segment>> = segments.collect();
    for chunk in segments.chunks(MAX_PARALLEL_FSYNCS) {
        sync_concurrently(shared, chunk)?;
    }
    for dir in dirs {
        // The directory may be gone (topic deleted), which is fine.
        if dir.exists() {
            super::fsutil::sync_dir(&dir)
                .map_err(|err| format!("fsync of `{}` failed: {err}", dir.display()))?;
            shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}
