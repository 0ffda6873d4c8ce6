//! The bounded buffer between [`Audit::record`](super::Audit::record) and the writer thread.
//!
//! **Backpressure choice**: when the buffer is full, `record` waits for room at most the
//! configured `full_wait_ms` (a short, bounded stall of the request that caused the event:
//! the data path slows down rather than losing its trail). If the writer still has not made
//! room, the event is counted as lost: the count goes to the metric
//! `palisade_audit_events_lost_total`, an error is logged (at most once a second), and the
//! writer puts an `audit_events_lost` event carrying the count into the trail itself, so the
//! gap is visible in the chain. Events are never dropped silently.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::event::Event;

/// What happened to a pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Queued after waiting for room.
    QueuedAfterWait,
    /// The buffer stayed full (or the audit is closed): counted as lost.
    Lost,
}

struct State {
    events: VecDeque<Event>,
    lost: u64,
    closed: bool,
}

pub struct Queue {
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                events: VecDeque::new(),
                lost: 0,
                closed: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues `event`, waiting at most `wait` for room.
    pub fn push(&self, event: Event, wait: Duration) -> Pushed {
        let mut state = self.state.lock();
        let mut waited = false;
        if state.events.len() >= self.capacity && !state.closed {
            waited = true;
            let deadline = Instant::now() + wait;
            while state.events.len() >= self.capacity && !state.closed {
                if self.not_full.wait_until(&mut state, deadline).timed_out() {
                    break;
                }
            }
        }
        if state.closed || state.events.len() >= self.capacity {
            state.lost = state.lost.saturating_add(1);
            return Pushed::Lost;
        }
        state.events.push_back(event);
        drop(state);
        self.not_empty.notify_one();
        if waited {
            Pushed::QueuedAfterWait
        } else {
            Pushed::Queued
        }
    }

    /// Waits for events (or close), then moves every queued event into `out`. Returns the
    /// number of events lost since the last call, and whether the queue is closed and empty.
    pub fn take(&self, out: &mut Vec<Event>) -> (u64, bool) {
        let mut state = self.state.lock();
        while state.events.is_empty() && state.lost == 0 && !state.closed {
            self.not_empty.wait(&mut state);
        }
        out.extend(state.events.drain(..));
        let lost = std::mem::take(&mut state.lost);
        let done = state.closed && out.is_empty() && lost == 0;
        drop(state);
        self.not_full.notify_all();
        (lost, done)
    }

    /// Events waiting now.
    pub fn len(&self) -> usize {
        self.state.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses further events; the writer drains what is queued and stops.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{EventType, Outcome};

    fn e() -> Event {
        Event::new(EventType::TopicCreated, Outcome::Success)
    }

    #[test]
    fn full_buffer_waits_briefly_then_counts_the_loss() {
        let q = Queue::new(2);
        assert_eq!(q.push(e(), Duration::ZERO), Pushed::Queued);
        assert_eq!(q.push(e(), Duration::ZERO), Pushed::Queued);
        let start = Instant::now();
        assert_eq!(q.push(e(), Duration::from_millis(30)), Pushed::Lost);
        assert!(start.elapsed() >= Duration::from_millis(30));
        let mut out = Vec::new();
        assert_eq!(q.take(&mut out), (1, false));
        assert_eq!(out.len(), 2);
        q.close();
        assert_eq!(q.push(e(), Duration::ZERO), Pushed::Lost);
    }
}
