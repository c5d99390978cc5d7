//! The event-time watermark, tracked per partition.
//!
//! In: the event time of every decoded event with its topic and partition, and which
//! partitions are caught up (nothing more to read). Out: the watermark (ms), the event time up
//! to which the state is taken as complete; indicators evaluate at it, and events older than it
//! are late.
//!
//! As in Flink, the watermark is the minimum over the active partitions of the largest event
//! time each has delivered, minus the allowed lateness: one partition read ahead of another
//! (the consumer interleaves them) does not make the other's events late. An assigned partition
//! with data still to read but none read yet holds the watermark where it is. A partition that
//! is caught up (its high watermark reached) is idle and does not hold the watermark back; when
//! every partition is idle the watermark follows the largest event time seen. The watermark
//! never moves backwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    /// Largest event time delivered; None before the first event.
    max_event_time: Option<i64>,
    caught_up: bool,
}

/// Per-partition event-time progress and the resulting watermark.
#[derive(Debug, Clone)]
pub struct Watermark {
    partitions: HashMap<(Arc<str>, i32), PartitionClock>,
    lateness_ms: i64,
    current: Option<i64>,
}

impl Watermark {
    pub fn new(lateness: Duration) -> Self {
        Watermark {
            partitions: HashMap::new(),
            lateness_ms: lateness.as_millis() as i64,
            current: None,
        }
    }

    pub fn lateness_ms(&self) -> i64 {
        self.lateness_ms
    }

    /// The current watermark (0 before any event).
    pub fn current(&self) -> i64 {
        self.current.unwrap_or(0)
    }

    /// Is an event at `t` older than the watermark?
    pub fn is_late(&self, t: i64) -> bool {
        self.current.is_some_and(|c| t < c)
    }

    /// Record an (on-time) event of a partition and move the watermark.
    pub fn observe(&mut self, topic: &Arc<str>, partition: i32, t: i64) {
        let clock = self
            .partitions
            .entry((topic.clone(), partition))
            .or_insert(PartitionClock {
                max_event_time: None,
                caught_up: false,
            });
        clock.max_event_time = Some(clock.max_event_time.map_or(t, |m| m.max(t)));
        clock.caught_up = false;
        self.recompute();
    }

    /// The assigned partitions and whether each is caught up; partitions no longer assigned are
    /// forgotten. Then moves the watermark. Returns true when it moved.
    pub fn set_assignment(
        &mut self,
        assigned: impl IntoIterator<Item = (Arc<str>, i32, bool)>,
    ) -> bool {
        let before = self.current;
        let mut keep = HashMap::new();
        for (topic, partition, caught_up) in assigned {
            let key = (topic, partition);
            let mut clock = self.partitions.remove(&key).unwrap_or(PartitionClock {
                max_event_time: None,
                caught_up,
            });
            clock.caught_up = caught_up;
            keep.insert(key, clock);
        }
        self.partitions = keep;
        self.recompute();
        self.current != before
    }

    fn recompute(&mut self) {
        let mut active = self.partitions.values().filter(|c| !c.caught_up).peekable();
        let candidate = if active.peek().is_some() {
            // None when an active partition has delivered nothing yet: hold.
            active
                .map(|c| c.max_event_time)
                .try_fold(i64::MAX, |m, t| t.map(|t| m.min(t)))
        } else {
            self.partitions
                .values()
                .filter_map(|c| c.max_event_time)
                .max()
        };
        if let Some(t) = candidate {
            let w = t - self.lateness_ms;
            self.current = Some(self.current.map_or(w, |c| c.max(w)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn one_partition_admits_in_time_and_flags_late() {
        let mut w = Watermark::new(Duration::from_millis(100));
        assert_eq!(w.current(), 0);
        assert!(!w.is_late(0), "nothing is late before the first event");
        w.observe(&tp("a"), 0, 1_000);
        assert_eq!(w.current(), 900);
        assert!(!w.is_late(950), "within the allowed lateness");
        w.observe(&tp("a"), 0, 950);
        assert_eq!(w.current(), 900, "an older event does not move it back");
        assert!(w.is_late(899));
    }

    #[test]
    fn the_slowest_active_partition_holds_the_watermark() {
        let mut w = Watermark::new(Duration::ZERO);
        w.observe(&tp("erp"), 0, 1_000);
        w.observe(&tp("erp"), 1, 5_000);
        assert_eq!(
            w.current(),
            1_000,
            "partition 0 may still deliver events after 1000"
        );
        assert!(
            !w.is_late(2_000),
            "partition 1 read ahead does not make partition 0 late"
        );
        w.observe(&tp("erp"), 0, 3_000);
        assert_eq!(w.current(), 3_000);
    }

    #[test]
    fn an_assigned_partition_not_yet_read_holds_the_watermark() {
        let mut w = Watermark::new(Duration::ZERO);
        w.set_assignment([
            (tp("erp"), 0, false),
            (tp("erp"), 1, false),
            (tp("wms"), 0, true),
        ]);
        w.observe(&tp("erp"), 0, 5_000);
        assert_eq!(w.current(), 0, "erp/1 has data but delivered none yet");
        assert!(!w.is_late(1_000));
        w.observe(&tp("erp"), 1, 2_000);
        assert_eq!(w.current(), 2_000);
        assert!(w.set_assignment([
            (tp("erp"), 0, false),
            (tp("erp"), 1, true),
            (tp("wms"), 0, true)
        ]));
        assert_eq!(w.current(), 5_000, "erp/1 caught up: no longer holds it");
    }

    #[test]
    fn caught_up_partitions_do_not_hold_it_back_and_it_never_goes_back() {
        let mut w = Watermark::new(Duration::ZERO);
        w.observe(&tp("erp"), 0, 1_000);
        w.observe(&tp("wms"), 0, 9_000);
        assert_eq!(w.current(), 1_000);
        w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, false)]);
        assert_eq!(w.current(), 9_000, "erp has nothing more to read");
        assert!(!w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, true)]));
        assert_eq!(w.current(), 9_000);
        w.observe(&tp("erp"), 0, 2_000);
        assert_eq!(
            w.current(),
            9_000,
            "monotonic even when erp becomes active again"
        );
        assert!(w.is_late(8_999));
    }
}
