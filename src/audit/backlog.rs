//! The upstream topic sink's backlog: audit lines waiting to be written to the upstream
//! cluster, bounded in lines and bytes.
//!
//! The audit writer pushes without ever waiting (the request path never stalls on the
//! upstream). Past either bound the **oldest** lines are dropped and counted: the
//! hash-chained file is the complete record, the upstream topic a copy that keeps the newest
//! lines when it must lose some (a gap there shows as a jump in `seq`).

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;

#[derive(Default)]
struct State {
    lines: VecDeque<Bytes>,
    bytes: usize,
}

pub struct Backlog {
    state: Mutex<State>,
    max_lines: usize,
    max_bytes: usize,
}

impl Backlog {
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        Backlog {
            state: Mutex::new(State::default()),
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Appends `lines`, then drops the oldest until both bounds hold; returns how many were
    /// dropped (a single line over the byte bound is dropped itself).
    pub fn push(&self, lines: impl IntoIterator<Item = Bytes>) -> u64 {
        let mut state = self.state.lock();
        for line in lines {
            state.bytes = state.bytes.saturating_add(line.len());
            state.lines.push_back(line);
        }
        let mut dropped = 0u64;
        while state.lines.len() > self.max_lines || state.bytes > self.max_bytes {
            let Some(old) = state.lines.pop_front() else {
                break;
            };
            state.bytes = state.bytes.saturating_sub(old.len());
            dropped += 1;
        }
        dropped
    }

    /// Removes the oldest lines, at most `max_bytes` of them (at least one line when any
    /// waits), in order.
    pub fn take(&self, max_bytes: usize) -> Vec<Bytes> {
        let mut state = self.state.lock();
        let mut out = Vec::new();
        let mut size = 0usize;
        while let Some(next) = state.lines.front() {
            if !out.is_empty() && size.saturating_add(next.len()) > max_bytes {
                break;
            }
            size = size.saturating_add(next.len());
            if let Some(line) = state.lines.pop_front() {
                out.push(line);
            }
        }
        state.bytes = state.bytes.saturating_sub(size);
        out
    }

    /// Empties the backlog; how many lines it held.
    pub fn clear(&self) -> usize {
        let mut state = self.state.lock();
        let n = state.lines.len();
        *state = State::default();
        n
    }

    pub fn len(&self) -> usize {
        self.state.lock().lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(names: &[&'static str]) -> Vec<Bytes> {
        names
            .iter()
            .map(|n| Bytes::from_static(n.as_bytes()))
            .collect()
    }

    #[test]
    fn past_the_line_bound_the_oldest_are_dropped() {
        let b = Backlog::new(3, 1 << 20);
        assert_eq!(b.push(lines(&["1", "2"])), 0);
        assert_eq!(b.push(lines(&["3", "4", "5"])), 2);
        assert_eq!(b.take(1 << 20), lines(&["3", "4", "5"]));
        assert!(b.is_empty());
    }

    #[test]
    fn past_the_byte_bound_the_oldest_are_dropped_and_a_huge_line_alone_goes() {
        let b = Backlog::new(100, 10);
        assert_eq!(b.push(lines(&["aaaa", "bbbb"])), 0);
        assert_eq!(b.push(lines(&["cccc"])), 1);
        assert_eq!(b.len(), 2);
        assert_eq!(b.push(lines(&["this line is too long"])), 3);
        assert!(b.is_empty());
    }

    #[test]
    fn take_returns_a_bounded_run_in_order_and_at_least_one_line() {
        let b = Backlog::new(100, 1 << 20);
        b.push(lines(&["aaaa", "bbbb", "cccc", "dddddddddddd"]));
        assert_eq!(b.take(9), lines(&["aaaa", "bbbb"]));
        assert_eq!(b.take(9), lines(&["cccc"]));
        assert_eq!(b.take(9), lines(&["dddddddddddd"]));
        assert!(b.take(9).is_empty());
        // The byte count follows what was taken: a full bound is free again.
        let b = Backlog::new(100, 8);
        b.push(lines(&["aaaa", "bbbb"]));
        b.take(4);
        assert_eq!(b.push(lines(&["cccc"])), 0);
        assert_eq!(b.clear(), 2);
    }
}
