//! Descriptors of segment files, shared through one bounded cache per data directory.
//!
//! A segment has four files; holding all of them open for every segment of every partition
//! makes the number of descriptors grow with the partition count until the process runs out
//! (and then cannot accept connections either). Instead each file is a [`CachedFile`]: opened
//! on demand, kept in a least-recently-used cache of at most `capacity` descriptors, closed
//! when evicted and reopened on the next use. An operation holds its descriptor (`Arc<File>`)
//! only while it runs, so eviction never closes a file in use.
//!
//! Closing a descriptor does not drop the file's unsynced writes: they stay in the page cache,
//! and an fsync through a later descriptor flushes every dirty page of the file, whichever
//! descriptor wrote it (Linux also reports a writeback error nobody has seen yet to a
//! descriptor opened after it happened).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

pub struct FileCache {
    capacity: usize,
    next_id: AtomicU64,
    lru: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    /// File id -> (descriptor, last use).
    open: HashMap<u64, (Arc<File>, u64)>,
    /// Last use -> file id, oldest first.
    by_use: BTreeMap<u64, u64>,
    clock: u64,
}

impl Lru {
    fn touch(&mut self, id: u64) -> Option<Arc<File>> {
        self.clock += 1;
        let clock = self.clock;
        let (file, used) = self.open.get_mut(&id)?;
        self.by_use.remove(used);
        *used = clock;
        self.by_use.insert(clock, id);
        Some(Arc::clone(file))
    }

    fn insert(&mut self, id: u64, file: Arc<File>, capacity: usize) {
        self.clock += 1;
        if let Some((_, used)) = self.open.insert(id, (file, self.clock)) {
            self.by_use.remove(&used);
        }
        self.by_use.insert(self.clock, id);
        while self.open.len() > capacity {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.open.remove(&oldest);
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some((_, used)) = self.open.remove(&id) {
            self.by_use.remove(&used);
        }
    }
}

impl FileCache {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            next_id: AtomicU64::new(0),
            lru: Mutex::new(Lru::default()),
        })
    }

    /// Takes over `file`, already open at `path`.
    pub fn adopt(self: &Arc<Self>, path: PathBuf, file: File) -> CachedFile {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lru.lock().insert(id, Arc::new(file), self.capacity);
        CachedFile {
            id,
            path,
            cache: Arc::clone(self),
        }
    }

    /// Descriptors held by the cache now.
    pub fn open_count(&self) -> usize {
        self.lru.lock().open.len()
    }

    fn get(&self, id: u64, path: &Path) -> std::io::Result<Arc<File>> {
        if let Some(file) = self.lru.lock().touch(id) {
            return Ok(file);
        }
        // Opened without the lock: other files stay usable meanwhile.
        let file = Arc::new(OpenOptions::new().read(true).write(true).open(path)?);
        let mut lru = self.lru.lock();
        if let Some(raced) = lru.touch(id) {
            return Ok(raced);
        }
        lru.insert(id, Arc::clone(&file), self.capacity);
        Ok(file)
    }
}

/// One segment file, open while in use or cached, reopened on demand.
pub struct CachedFile {
    id: u64,
    path: PathBuf,
    cache: Arc<FileCache>,
}

impl CachedFile {
    /// Runs `op` on the file's descriptor, opening it if it was closed.
    pub fn with<R>(&self, op: impl FnOnce(&File) -> std::io::Result<R>) -> std::io::Result<R> {
        let file = self.cache.get(self.id, &self.path)?;
        op(&file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `fdatasync`. A file that no longer exists (its segment or topic was deleted since) has
    /// nothing left to make durable, exactly as an fsync through a descriptor kept open on
    /// the unlinked file would succeed.
    pub fn sync_data(&self) -> std::io::Result<()> {
        match self.cache.get(self.id, &self.path) {
            Ok(file) => file.sync_data(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        self.cache.lru.lock().remove(self.id);
    }
}
