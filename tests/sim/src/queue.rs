//! The event queue: what happens next, in a deterministic order.

use std::collections::BTreeMap;
use std::time::Duration;

/// Events keyed by (time, sequence number). Events due at the same time
/// come out in the order they were scheduled, so a run never depends on
/// anything but its inputs.
#[derive(Debug)]
pub struct EventQueue<E> {
    events: BTreeMap<(Duration, u64), E>,
    next_seq: u64,
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        EventQueue {
            events: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Schedules `event` at simulated offset `at`.
    pub fn push(&mut self, at: Duration, event: E) {
        self.events.insert((at, self.next_seq), event);
        self.next_seq += 1;
    }

    /// When the next event is due.
    pub fn next_time(&self) -> Option<Duration> {
        self.events.keys().next().map(|&(at, _)| at)
    }

    /// Takes the next event if it is due at or before `until`.
    pub fn pop_due(&mut self, until: Duration) -> Option<(Duration, E)> {
        let entry = self.events.first_entry()?;
        if entry.key().0 > until {
            return None;
        }
        let ((at, _), event) = entry.remove_entry();
        Some((at, event))
    }

    /// Events still scheduled.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_by_scheduling_order() {
        let mut q = EventQueue::new();
        q.push(Duration::from_secs(2), "late");
        q.push(Duration::from_secs(1), "first");
        q.push(Duration::from_secs(1), "second");
        assert_eq!(q.next_time(), Some(Duration::from_secs(1)));
        assert_eq!(q.pop_due(Duration::ZERO), None);
        let order: Vec<_> = std::iter::from_fn(|| q.pop_due(Duration::from_secs(5)))
            .map(|(_, e)| e)
            .collect();
        assert_eq!(order, ["first", "second", "late"]);
        assert!(q.is_empty());
    }
}
