//! [`Reloadable`] and [`run`]: the one way a generation is replaced. Load and validate the
//! next generation off to the side, swap it in whole, or keep the one serving; then log one
//! line and tell the observers (audit, metrics) in the order the swaps happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};

use super::problem::Problem;

/// Something served in generations and reloaded from files.
pub trait Reloadable: Send + Sync {
    /// A loaded and fully validated generation, not yet serving.
    type Next;
    /// Why a load was refused.
    type Error;

    /// What is reloaded, in log lines and metrics: `policies`, `tls`, `credentials`, ...
    fn kind(&self) -> &'static str;

    /// Loads and validates the next generation. Nothing a reader sees changes here.
    fn load(&self) -> Result<Self::Next, Self::Error>;

    /// Serves `next` from now on, atomically; its number, or `None` when it is identical to
    /// the generation serving (nothing swapped).
    fn swap(&self, next: Self::Next) -> Option<u64>;

    /// The number of the generation serving now.
    fn generation(&self) -> u64;

    /// `error` as located problems (`file:line:column` where the source has them).
    fn problems(&self, error: &Self::Error) -> Vec<Problem>;

    /// The reload state [`run`] keeps for this target.
    fn reloads(&self) -> &Reloads;
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: &'static str,
    /// The generation serving after the reload: the new one, or the one kept.
    pub generation: u64,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new generation serves.
    Reloaded,
    /// The new content was refused; the generation serving stays.
    Kept(Vec<Problem>),
}

/// Told of every reload that swapped or refused (not of unchanged ones), while the next reload
/// of the same target waits: it must not reload that target itself.
pub type Observer = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// Per target: one reload at a time, the observers, and what the last refusal said.
#[derive(Default)]
pub struct Reloads {
    one_at_a_time: Mutex<()>,
    observers: RwLock<Vec<Observer>>,
    failures: AtomicU64,
    last_error: Mutex<Option<Vec<Problem>>>,
}

impl std::fmt::Debug for Reloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloads")
            .field("failures", &self.failures())
            .field("last_error", &self.last_error())
            .finish_non_exhaustive()
    }
}

impl Reloads {
    /// Tells `observer` of every later swap and refusal.
    pub fn observe(&self, observer: Observer) {
        self.observers.write().push(observer);
    }

    /// Held by [`run`] from load to the observers; take it to change the target another way
    /// (an API writing the file and swapping) so that the two never interleave.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.one_at_a_time.lock()
    }

    /// How many reloads were refused.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// The problems of the last refused reload; `None` once a load succeeds.
    pub fn last_error(&self) -> Option<Vec<Problem>> {
        self.last_error.lock().clone()
    }

    fn tell(&self, outcome: &Outcome) {
        for observer in self.observers.read().iter() {
            observer(outcome);
        }
    }
}

/// Loads `target`'s next generation and swaps it in, or keeps the generation serving when the
/// load fails. Logs `<kind> reloaded generation N` or `<kind> kept generation N (keeping the
/// last good one): <problems>`; tells the observers. Returns the new generation's number
/// (`None`: identical content, nothing swapped) or the load's error.
pub fn run<R: Reloadable + ?Sized>(target: &R) -> Result<Option<u64>, R::Error> {
    let reloads = target.reloads();
    let _one_at_a_time = reloads.lock();
    let kind = target.kind();
    match target.load() {
        Ok(next) => {
            *reloads.last_error.lock() = None;
            let swapped = target.swap(next);
            if let Some(generation) = swapped {
                tracing::info!(kind, generation, "{kind} reloaded generation {generation}");
                reloads.tell(&Outcome {
                    kind,
                    generation,
                    change: Change::Reloaded,
                });
            }
            Ok(swapped)
        }
        Err(error) => {
            let problems = target.problems(&error);
            let generation = target.generation();
            reloads.failures.fetch_add(1, Ordering::SeqCst);
            tracing::error!(
                kind,
                generation,
                "{kind} kept generation {generation} (keeping the last good one): {}",
                Problem::join(&problems)
            );
            *reloads.last_error.lock() = Some(problems.clone());
            reloads.tell(&Outcome {
                kind,
                generation,
                change: Change::Kept(problems),
            });
            Err(error)
        }
    }
}
