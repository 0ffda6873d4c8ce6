//! The append order of one connection while produces run their plugin chains off its task:
//! the one statement of the pipelining rule.
//!
//! A produce to a topic with plugins is pipelined ([`super::pipeline`]): its checks run in
//! order on the connection's task, its chains on the blocking pool while the connection reads
//! on, and its batches are appended later, by a task of its own. The [`Turn`] it takes when it
//! is routed, synchronously and in request order, keeps those appends in request order: a turn
//! ends (its appends have happened or were abandoned) when it is dropped, and the next turn
//! waits for that first. Every other request calls [`AppendOrder::settle`] before it is
//! applied, so it observes the effects of all earlier requests of the connection; with nothing
//! pipelined that costs nothing.

use std::sync::Arc;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Pipelined produces one connection may have pending at once. Responses are bounded by the
/// writer's queue already, but acks=0 produces have none, so the turns carry their own bound.
const MAX_PENDING: usize = 32;

/// Per-connection state: the end of the chain of turns taken so far.
pub struct AppendOrder {
    /// Closed once the last turn taken has ended (its sender is dropped).
    last: Option<watch::Receiver<()>>,
    pending: Arc<Semaphore>,
}

impl Default for AppendOrder {
    fn default() -> Self {
        AppendOrder {
            last: None,
            pending: Arc::new(Semaphore::new(MAX_PENDING)),
        }
    }
}

impl AppendOrder {
    /// Waits until every turn taken so far has ended, i.e. every pipelined append of the
    /// connection has happened (or was abandoned with an error response).
    pub async fn settle(&mut self) {
        if let Some(mut last) = self.last.take() {
            // `Err` means the sender is gone: that is the signal, nothing is ever sent.
            let _ = last.changed().await;
        }
    }

    /// Takes the next turn, in the order of the calls. Waits (backpressure on the connection's
    /// reading) while [`MAX_PENDING`] turns are still running.
    pub async fn take_turn(&mut self) -> Turn {
        // The semaphore is never closed; without a permit the turn is merely unbounded.
        let permit = Arc::clone(&self.pending).acquire_owned().await.ok();
        let (done, ended) = watch::channel(());
        Turn {
            previous: self.last.replace(ended),
            done: Some(done),
            permit,
        }
    }
}

/// One pipelined produce's place in the connection's append order. Dropping it ends the turn.
pub struct Turn {
    previous: Option<watch::Receiver<()>>,
    /// Dropped when the turn ends: the next turn's signal.
    done: Option<watch::Sender<()>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Turn {
    /// A turn dropped before it waited (its task failed early) still ends only after the
    /// previous one: otherwise the next turn could append before the previous turn did.
    fn drop(&mut self) {
        let (Some(mut previous), Some(done)) = (self.previous.take(), self.done.take()) else {
            return;
        };
        let permit = self.permit.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = previous.changed().await;
                drop((done, permit));
            });
        }
        // Without a runtime no task is running either: the turn simply ends.
    }
}

impl Turn {
    /// Waits until the previous turn has ended: from then on this one may append.
    pub async fn wait(&mut self) {
        if let Some(mut previous) = self.previous.take() {
            let _ = previous.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn turns_end_in_the_order_they_were_taken_and_settle_waits_for_the_last() {
        let mut order = AppendOrder::default();
        order.settle().await; // nothing pending: returns at once
        let first = order.take_turn().await;
        let mut second = order.take_turn().await;
        let waited = tokio::spawn(async move {
            second.wait().await;
            second
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waited.is_finished(), "the second turn waits for the first");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waited)
            .await
            .unwrap()
            .unwrap();
        let mut settle = Box::pin(order.settle());
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut settle)
                .await
                .is_err(),
            "settle waits for the last turn"
        );
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), settle)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_turn_dropped_early_still_ends_after_the_previous_one() {
        let mut order = AppendOrder::default();
        let first = order.take_turn().await;
        let second = order.take_turn().await;
        let mut third = order.take_turn().await;
        drop(second); // its task failed before waiting
        let mut waited = Box::pin(third.wait());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waited)
                .await
                .is_err(),
            "the third turn went ahead of the first"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waited)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_turn_dropped_without_waiting_still_releases_the_next() {
        let mut order = AppendOrder::default();
        let first = order.take_turn().await;
        let mut second = order.take_turn().await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second.wait())
            .await
            .unwrap();
    }
}
