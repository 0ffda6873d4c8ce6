//! The broker-wide budget for request and response bytes held in memory (Kafka's
//! `queued.max.request.bytes`, but on by default).
//!
//! A connection reserves a frame's declared size after reading its 4-byte prefix and before
//! reading its body; the reservation lives until the request has been handled. A response
//! reserves its encoded size and keeps it until it is written. When the budget is spent, a
//! connection whose next frame does not fit stops reading (TCP pushes back on the client)
//! until another reservation is released. A frame larger than the whole budget can never fit
//! and is refused.
//!
//! Reservations are released when dropped, so every path gives the memory back: a request
//! handled or failed, a connection closed in the middle of a frame, a response written or
//! abandoned.
//!
//! Waiters are not served in arrival order: whoever fits when memory is released goes first.
//! A client holding reservations with frames it sends slowly therefore blocks only frames
//! larger than what is left, never the small requests of everyone else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A request or response that can never fit.
#[derive(Debug, thiserror::Error)]
#[error(
    "{wanted} bytes exceed the whole memory budget of {limit} bytes (`limits.memory_budget_bytes`)"
)]
pub struct ExceedsBudget {
    pub wanted: usize,
    pub limit: usize,
}

/// The shared budget; clones share it.
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    used: AtomicUsize,
    released: Notify,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        MemoryBudget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
                released: Notify::new(),
            }),
        }
    }

    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Reserves `bytes` if they fit now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        self.inner.take(bytes).then(|| Reservation {
            inner: self.inner.clone(),
            bytes,
        })
    }

    /// Reserves `bytes`, waiting until they fit. Cancel-safe: dropping the future reserves
    /// nothing.
    pub async fn reserve(&self, bytes: usize) -> Result<Reservation, ExceedsBudget> {
        self.check(bytes)?;
        loop {
            // Registered before trying, so a release between the try and the wait wakes us.
            let released = self.inner.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(r) = self.try_reserve(bytes) {
                return Ok(r);
            }
            released.await;
        }
    }

    fn check(&self, bytes: usize) -> Result<(), ExceedsBudget> {
        if bytes > self.inner.limit {
            return Err(ExceedsBudget {
                wanted: bytes,
                limit: self.inner.limit,
            });
        }
        Ok(())
    }
}

impl Inner {
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
        self.released.notify_waiters();
    }
}

/// Bytes held against the budget until dropped.
pub struct Reservation {
    inner: Arc<Inner>,
    bytes: usize,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.give_back(self.bytes);
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({} bytes)", self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn reservations_are_given_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let a = budget.reserve(60).await.unwrap();
        assert!(budget.try_reserve(50).is_none());
        let b = budget.try_reserve(40).unwrap();
        assert_eq!(budget.in_use(), 100);
        drop(a);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_refused() {
        let budget = MemoryBudget::new(100);
        assert!(budget.reserve(101).await.is_err());
        assert!(budget.try_reserve(101).is_none());
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_proceeds_when_memory_is_released() {
        let budget = MemoryBudget::new(100);
        let held = budget.reserve(80).await.unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(50).await.map(|r| r.bytes()) }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "50 bytes do not fit beside 80");
        // A small request still fits while the large one waits.
        assert!(budget.try_reserve(20).is_some());
        drop(held);
        assert_eq!(waiter.await.unwrap().unwrap(), 50);
        assert_eq!(budget.in_use(), 0);
    }
}
