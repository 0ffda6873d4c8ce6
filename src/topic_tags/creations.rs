//! Tags asked for by topic creations still in flight. The backend creates a topic without its
//! tags (an upstream cluster refuses the config), and they are stored once it answers: until
//! then the new topic would be decided as untagged, so a `forbid` keyed on the tags it is
//! getting would not yet apply. While a creation is in flight, decisions on that topic hold
//! under its stored tags *and* under every set of tags asked for, allowing only when all allow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

#[derive(Default)]
pub struct Creations {
    /// Entries in `asked`: a decision with none in flight reads this counter only.
    in_flight: AtomicUsize,
    asked: Mutex<HashMap<String, Vec<Arc<[String]>>>>,
}

impl Creations {
    /// Records that `topic` is being created with `tags` until the guard is dropped (once the
    /// tags are stored, or the creation failed).
    pub fn begin(self: &Arc<Self>, topic: &str, tags: &[String]) -> InFlight {
        let tags: Arc<[String]> = Arc::from(tags.to_vec());
        self.asked
            .lock()
            .entry(topic.to_string())
            .or_default()
            .push(Arc::clone(&tags));
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            creations: Arc::clone(self),
            topic: topic.to_string(),
            tags,
        }
    }

    /// The tags creations in flight asked `topic` to get (usually none).
    pub fn asked(&self, topic: &str) -> Vec<Arc<[String]>> {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        self.asked.lock().get(topic).cloned().unwrap_or_default()
    }
}

/// One creation in flight; dropping it ends it.
pub struct InFlight {
    creations: Arc<Creations>,
    topic: String,
    tags: Arc<[String]>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut asked = self.creations.asked.lock();
        if let Some(sets) = asked.get_mut(&self.topic) {
            if let Some(i) = sets.iter().position(|t| Arc::ptr_eq(t, &self.tags)) {
                sets.swap_remove(i);
                self.creations.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            if sets.is_empty() {
                asked.remove(&self.topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn asked_tags_last_as_long_as_their_creation() {
        let c = Arc::new(Creations::default());
        assert!(c.asked("orders").is_empty());
        let first = c.begin("orders", &tags(&["pii"]));
        let second = c.begin("orders", &tags(&["payments"]));
        let _other = c.begin("audit", &tags(&["ops"]));
        let asked: Vec<Vec<String>> = c.asked("orders").iter().map(|t| t.to_vec()).collect();
        assert_eq!(asked, vec![tags(&["pii"]), tags(&["payments"])]);
        drop(first);
        let asked: Vec<Vec<String>> = c.asked("orders").iter().map(|t| t.to_vec()).collect();
        assert_eq!(asked, vec![tags(&["payments"])]);
        drop(second);
        assert!(c.asked("orders").is_empty());
        assert_eq!(c.asked("audit").len(), 1);
    }
}
