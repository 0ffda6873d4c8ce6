//! [`Slot`]: the generation serving now, swapped whole. Readers take an `Arc` and keep it for
//! as long as they work with it (a TLS handshake, a request): a swap never changes what a
//! reader already holds, and a generation still loading is never visible.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The current generation of `T` and its number (1 for the first, +1 per swap).
#[derive(Debug)]
pub struct Slot<T> {
    current: ArcSwap<T>,
    generation: AtomicU64,
}

impl<T> Slot<T> {
    /// Serves `first` as generation 1.
    pub fn new(first: T) -> Self {
        Slot {
            current: ArcSwap::from_pointee(first),
            generation: AtomicU64::new(1),
        }
    }

    /// The generation serving now; keep the `Arc` for the whole unit of work.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Its number.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Serves `next` from now on (one pointer store); returns its number.
    pub fn swap(&self, next: T) -> u64 {
        self.current.store(Arc::new(next));
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }
}
