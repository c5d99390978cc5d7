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
//! is caught up (its high watermark reached) and has delivered nothing and had nothing to read
//! for the idle timeout (wall clock, Flink's `withIdleness`) is idle and does not hold the
//! watermark back; when every partition is idle the watermark follows the largest event time
//! seen. The timeout keeps a partition whose producer is a moment behind the others (batching,
//! a busy machine) from being passed by and having its next events judged late. The watermark
//! never moves backwards. Times of the wall clock are passed in, so tests need no sleeps.
//!
//! Every partition of the input holds the watermark, assigned to this instance right now or
//! not: one instance owns every partition (docs/operations.md), so the events of a partition
//! another member holds for a while (a rebalance, an assignment that names only some
//! partitions at first) will come here, and a watermark run ahead over the others would make
//! them late (the likely cause of a CI failure: restarted from a checkpoint, an instance
//! applied a few more events and judged itself finished). A partition not assigned holds it at
//! its clock; one never seen, known from the brokers' metadata ([`Watermark::expect`]), holds
//! it where it is; until the partitions are known the watermark does not move. Partitions of
//! topics no longer subscribed are forgotten ([`Watermark::retain_topics`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    /// Largest event time delivered; None before the first event.
    max_event_time: Option<i64>,
    caught_up: bool,
    /// When it last delivered an event (or was assigned or restored).
    active_at: Instant,
}

impl PartitionClock {
    fn idle(&self, now: Instant, timeout: Duration) -> bool {
        self.caught_up && now.saturating_duration_since(self.active_at) >= timeout
    }
}

/// Per-partition event-time progress and the resulting watermark.
#[derive(Debug, Clone)]
pub struct Watermark {
    partitions: HashMap<(Arc<str>, i32), PartitionClock>,
    /// Clocks of partitions no longer assigned: a partition that comes back (a rebalance
    /// revokes everything before it assigns) resumes its clock. Until then it holds the
    /// watermark (never idle: whether it has more to read cannot be told).
    parked: HashMap<(Arc<str>, i32), PartitionClock>,
    lateness_ms: i64,
    idle_timeout: Duration,
    current: Option<i64>,
    /// False until the partitions of every subscribed topic are known ([`Watermark::expect`]):
    /// until then it does not move.
    complete: bool,
}

/// A watermark as a checkpoint keeps it: each partition's clock and the current value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedWatermark {
    /// (topic, partition, largest event time delivered, caught up).
    partitions: Vec<(String, i32, Option<i64>, bool)>,
    current: Option<i64>,
}

impl SavedWatermark {
    /// The watermark value saved (0 before any event).
    pub fn current(&self) -> i64 {
        self.current.unwrap_or(0)
    }
}

impl Watermark {
    /// The clocks and the current value, for a checkpoint.
    pub fn save(&self) -> SavedWatermark {
        let mut partitions: Vec<_> = self
            .partitions
            .iter()
            .chain(&self.parked)
            .map(|((t, p), c)| (t.to_string(), *p, c.max_event_time, c.caught_up))
            .collect();
        partitions.sort();
        SavedWatermark {
            partitions,
            current: self.current,
        }
    }

    /// Continue from a saved watermark (the allowed lateness stays this one's); the restored
    /// partitions count as active now.
    pub fn restore(&mut self, saved: &SavedWatermark, now: Instant) {
        self.partitions = saved
            .partitions
            .iter()
            .map(|(t, p, max, caught_up)| {
                (
                    (Arc::from(t.as_str()), *p),
                    PartitionClock {
                        max_event_time: *max,
                        caught_up: *caught_up,
                        active_at: now,
                    },
                )
            })
            .collect();
        self.parked.clear();
        self.current = saved.current;
    }

    /// A watermark trailing the event times by `lateness`, where a caught-up partition stops
    /// holding it back after `idle_timeout` without events.
    pub fn new(lateness: Duration, idle_timeout: Duration) -> Self {
        Watermark {
            partitions: HashMap::new(),
            parked: HashMap::new(),
            lateness_ms: lateness.as_millis() as i64,
            idle_timeout,
            current: None,
            complete: true,
        }
    }

    /// Do not move until [`Watermark::expect`] has named every partition of the input: an
    /// assignment may name only some at first (another member holds the others), and a
    /// watermark moved over those would make the others' events late.
    pub fn wait_for_partitions(&mut self) {
        self.complete = false;
    }

    /// Every partition of the subscribed topics, as the brokers' metadata lists them: those
    /// this watermark has never seen hold it (as partitions not assigned do) until they are
    /// assigned and deliver or are caught up. Returns true when it moved.
    pub fn expect(
        &mut self,
        partitions: impl IntoIterator<Item = (Arc<str>, i32)>,
        now: Instant,
    ) -> bool {
        let before = self.current;
        for key in partitions {
            if !self.partitions.contains_key(&key) && !self.parked.contains_key(&key) {
                self.parked.insert(
                    key,
                    PartitionClock {
                        max_event_time: None,
                        caught_up: false,
                        active_at: now,
                    },
                );
            }
        }
        self.complete = true;
        self.recompute(now);
        self.current != before
    }

    pub fn lateness_ms(&self) -> i64 {
        self.lateness_ms
    }

    /// Every partition's clock at `now`: (topic, partition, largest event time, idle); those
    /// not assigned too (never idle).
    pub fn clocks(&self, now: Instant) -> Vec<(Arc<str>, i32, Option<i64>, bool)> {
        self.partitions
            .iter()
            .chain(&self.parked)
            .map(|((t, p), c)| {
                (
                    t.clone(),
                    *p,
                    c.max_event_time,
                    c.idle(now, self.idle_timeout),
                )
            })
            .collect()
    }

    /// The current watermark (0 before any event).
    pub fn current(&self) -> i64 {
        self.current.unwrap_or(0)
    }

    /// How many partitions (assigned or parked) have delivered an event: when it grows, a
    /// partition [`Self::ahead`] counted as waiting for its first events may have a clock.
    pub fn started(&self) -> usize {
        self.partitions
            .values()
            .chain(self.parked.values())
            .filter(|c| c.max_event_time.is_some())
            .count()
    }

    /// Assigned partitions to pause at `now` (watermark alignment, as in Flink): those whose
    /// largest event time is more than `drift_ms` ahead of the slowest active partition.
    /// Reading them on only grows the event buffer: their events wait for the slowest one.
    /// The slowest partition itself is never among them; a partition not assigned counts for
    /// the slowest but is not named (it is not read). A caught-up partition that has
    /// delivered nothing does not count (nothing of it is to be read; it holds the watermark
    /// only until it is idle).
    ///
    /// While a partition with data to read has delivered nothing yet, its events may be the
    /// oldest of all: every partition with events still to read waits for its first ones.
    /// Otherwise a backlog of one topic is read whole into the buffer before the other topic's
    /// first fetch returns (seen under load: 1,432 of 2,160 events buffered).
    pub fn ahead(&self, drift_ms: i64, now: Instant) -> Vec<(Arc<str>, i32)> {
        let active = || self.holding(now);
        let waiting = active().any(|c| c.max_event_time.is_none() && !c.caught_up);
        let slowest = active().filter_map(|c| c.max_event_time).min();
        self.partitions
            .iter()
            .filter(|(_, c)| match (c.max_event_time, slowest) {
                (Some(_), _) if waiting => !c.caught_up,
                (Some(t), Some(slowest)) => t.saturating_sub(slowest) > drift_ms,
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Is an event at `t` older than the watermark?
    pub fn is_late(&self, t: i64) -> bool {
        self.current.is_some_and(|c| t < c)
    }

    /// Record an (on-time) event of a partition, read at `now`, and move the watermark.
    pub fn observe(&mut self, topic: &Arc<str>, partition: i32, t: i64, now: Instant) {
        let key = (topic.clone(), partition);
        // Delivered before the next refresh saw it assigned: its clock comes back from the
        // parked ones (a key is in one of the two maps only).
        let parked = if self.parked.is_empty() {
            None
        } else {
            self.parked.remove(&key)
        };
        let clock = self
            .partitions
            .entry(key)
            .or_insert(parked.unwrap_or(PartitionClock {
                max_event_time: None,
                caught_up: false,
                active_at: now,
            }));
        clock.max_event_time = Some(clock.max_event_time.map_or(t, |m| m.max(t)));
        clock.caught_up = false;
        clock.active_at = now;
        self.recompute(now);
    }

    /// The assigned partitions and whether each is caught up; partitions no longer assigned
    /// are parked (they hold the watermark at their clocks until they come back). Then moves
    /// the watermark. Returns true when it moved.
    pub fn set_assignment(
        &mut self,
        assigned: impl IntoIterator<Item = (Arc<str>, i32, bool)>,
        now: Instant,
    ) -> bool {
        let before = self.current;
        let mut keep = HashMap::new();
        for (topic, partition, caught_up) in assigned {
            let key = (topic, partition);
            let mut clock = self
                .partitions
                .remove(&key)
                .or_else(|| self.parked.remove(&key))
                .unwrap_or(PartitionClock {
                    max_event_time: None,
                    caught_up,
                    active_at: now,
                });
            clock.caught_up = caught_up;
            // Idle means nothing delivered and nothing to read for the timeout: a partition
            // with data to read (or one that cannot be told caught up, as in a broker outage)
            // starts the timeout again.
            if !caught_up {
                clock.active_at = now;
            }
            keep.insert(key, clock);
        }
        // Not assigned: whether it has more to read cannot be told (see `parked`).
        self.parked
            .extend(self.partitions.drain().map(|(k, mut c)| {
                c.caught_up = false;
                (k, c)
            }));
        self.partitions = keep;
        self.recompute(now);
        self.current != before
    }

    /// Forget the partitions of topics not kept (no longer subscribed): they no longer hold
    /// the watermark. Returns true when it moved.
    pub fn retain_topics(&mut self, keep: impl Fn(&str) -> bool, now: Instant) -> bool {
        let before = self.current;
        self.partitions.retain(|(t, _), _| keep(t));
        self.parked.retain(|(t, _), _| keep(t));
        self.recompute(now);
        self.current != before
    }

    /// The clocks that hold the watermark at `now`: assigned partitions not idle, and every
    /// partition not assigned.
    fn holding(&self, now: Instant) -> impl Iterator<Item = &PartitionClock> {
        let timeout = self.idle_timeout;
        self.partitions
            .values()
            .filter(move |c| !c.idle(now, timeout))
            .chain(self.parked.values())
    }

    fn recompute(&mut self, now: Instant) {
        if !self.complete {
            return;
        }
        let candidate = {
            let mut active = self.holding(now).peekable();
            if active.peek().is_some() {
                // None when an active partition has delivered nothing yet: hold.
                active
                    .map(|c| c.max_event_time)
                    .try_fold(i64::MAX, |m, t| t.map(|t| m.min(t)))
            } else {
                self.partitions
                    .values()
                    .filter_map(|c| c.max_event_time)
                    .max()
            }
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

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn one_partition_admits_in_time_and_flags_late() {
        let mut w = Watermark::new(Duration::from_millis(100), Duration::ZERO);
        assert_eq!(w.current(), 0);
        assert!(!w.is_late(0), "nothing is late before the first event");
        w.observe(&tp("a"), 0, 1_000, now());
        assert_eq!(w.current(), 900);
        assert!(!w.is_late(950), "within the allowed lateness");
        w.observe(&tp("a"), 0, 950, now());
        assert_eq!(w.current(), 900, "an older event does not move it back");
        assert!(w.is_late(899));
    }

    #[test]
    fn the_slowest_active_partition_holds_the_watermark() {
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.observe(&tp("erp"), 0, 1_000, now());
        w.observe(&tp("erp"), 1, 5_000, now());
        assert_eq!(
            w.current(),
            1_000,
            "partition 0 may still deliver events after 1000"
        );
        assert!(
            !w.is_late(2_000),
            "partition 1 read ahead does not make partition 0 late"
        );
        w.observe(&tp("erp"), 0, 3_000, now());
        assert_eq!(w.current(), 3_000);
    }

    #[test]
    fn an_assigned_partition_not_yet_read_holds_the_watermark() {
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.set_assignment(
            [
                (tp("erp"), 0, false),
                (tp("erp"), 1, false),
                (tp("wms"), 0, true),
            ],
            now(),
        );
        w.observe(&tp("erp"), 0, 5_000, now());
        assert_eq!(w.current(), 0, "erp/1 has data but delivered none yet");
        assert!(!w.is_late(1_000));
        w.observe(&tp("erp"), 1, 2_000, now());
        assert_eq!(w.current(), 2_000);
        assert!(w.set_assignment(
            [
                (tp("erp"), 0, false),
                (tp("erp"), 1, true),
                (tp("wms"), 0, true)
            ],
            now()
        ));
        assert_eq!(w.current(), 5_000, "erp/1 caught up: no longer holds it");
    }

    #[test]
    fn caught_up_partitions_do_not_hold_it_back_and_it_never_goes_back() {
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.observe(&tp("erp"), 0, 1_000, now());
        w.observe(&tp("wms"), 0, 9_000, now());
        assert_eq!(w.current(), 1_000);
        w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, false)], now());
        assert_eq!(w.current(), 9_000, "erp has nothing more to read");
        assert!(!w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, true)], now()));
        assert_eq!(w.current(), 9_000);
        w.observe(&tp("erp"), 0, 2_000, now());
        assert_eq!(
            w.current(),
            9_000,
            "monotonic even when erp becomes active again"
        );
        assert!(w.is_late(8_999));
    }

    /// A 5 s idle timeout; erp's clock at 1,000 and wms's at 9,000, both read at t0.
    fn erp_behind_wms() -> (Watermark, Instant) {
        let t0 = Instant::now();
        let mut w = Watermark::new(Duration::ZERO, Duration::from_secs(5));
        w.set_assignment([(tp("erp"), 0, false), (tp("wms"), 0, false)], t0);
        w.observe(&tp("erp"), 0, 1_000, t0);
        w.observe(&tp("wms"), 0, 9_000, t0);
        (w, t0)
    }

    #[test]
    fn a_caught_up_partition_holds_it_until_the_idle_timeout() {
        let (mut w, t0) = erp_behind_wms();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(w.current(), 1_000);
        // erp has nothing more to read right now, but its producer may just be behind.
        w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, false)], secs(4));
        assert_eq!(
            w.current(),
            1_000,
            "within the idle timeout erp still holds it"
        );
        w.observe(&tp("erp"), 0, 2_000, secs(4));
        assert_eq!(w.current(), 2_000, "its next event is not late");
        w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, false)], secs(8));
        assert_eq!(w.current(), 2_000, "4 s since its last event");
        w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, false)], secs(9));
        assert_eq!(w.current(), 9_000, "idle after 5 s: no longer holds it");
    }

    #[test]
    fn an_outage_is_not_idleness() {
        let (mut w, t0) = erp_behind_wms();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        // The broker is down for 20 s: ingest cannot tell a partition caught up.
        for s in 1..=20 {
            w.set_assignment([(tp("erp"), 0, false), (tp("wms"), 0, true)], secs(s));
        }
        assert_eq!(
            w.current(),
            1_000,
            "erp has not delivered for 20 s, but was not idle"
        );
        // Back: erp's cached high watermark is stale and says caught up. Its events still in
        // Kafka must not be made late within the idle timeout (a fetch refreshes it first).
        w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, true)], secs(21));
        assert_eq!(w.current(), 1_000);
        w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, true)], secs(24));
        assert_eq!(w.current(), 1_000, "4 s since it could last be told");
        w.set_assignment([(tp("erp"), 0, true), (tp("wms"), 0, true)], secs(25));
        assert_eq!(w.current(), 9_000, "5 s caught up and quiet: idle");
    }

    #[test]
    fn a_partition_revoked_and_assigned_again_resumes_its_clock() {
        let t0 = Instant::now();
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.observe(&tp("erp"), 0, 1_000, t0);
        w.observe(&tp("erp"), 1, 5_000, t0);
        let saved = w.save();
        w.set_assignment([], t0);
        assert_eq!(w.save(), saved, "parked clocks are still saved");
        w.set_assignment([(tp("erp"), 0, true), (tp("erp"), 1, true)], t0);
        assert_eq!(
            w.current(),
            5_000,
            "both clocks back: idle, the largest counts"
        );
    }

    /// Restarted from a checkpoint, an instance is assigned some partitions first: the
    /// watermark ran to the end over them, and the others' events, assigned later, were
    /// dead-lettered as late (the likely cause of a CI failure).
    #[test]
    fn a_partition_not_assigned_holds_the_watermark_at_its_clock() {
        let t0 = Instant::now();
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.observe(&tp("erp"), 0, 1_000, t0);
        w.observe(&tp("erp"), 1, 1_000, t0);
        w.observe(&tp("wms"), 0, 1_000, t0);
        let mut r = Watermark::new(Duration::ZERO, Duration::ZERO);
        r.restore(&w.save(), t0);
        // Restarted: only erp/0 assigned, read on to the end of the history.
        r.set_assignment([(tp("erp"), 0, false)], t0);
        r.observe(&tp("erp"), 0, 100_000, t0);
        assert!(!r.set_assignment([(tp("erp"), 0, true)], t0));
        assert_eq!(r.current(), 1_000, "erp/1 and wms/0 still hold it");
        assert!(!r.is_late(1_000));
        r.set_assignment([(tp("erp"), 0, false), (tp("erp"), 1, false)], t0);
        assert_eq!(
            r.ahead(50_000, t0),
            vec![(tp("erp"), 0)],
            "wms/0, not assigned, is the slowest: erp/0 waits"
        );
        // erp/1 delivered before a refresh saw it assigned: same clock, not a second one.
        r.observe(&tp("erp"), 1, 3_000, t0);
        assert_eq!(r.current(), 1_000, "wms/0 holds it");
        r.set_assignment(
            [
                (tp("erp"), 0, true),
                (tp("erp"), 1, true),
                (tp("wms"), 0, true),
            ],
            t0,
        );
        assert_eq!(r.current(), 100_000, "all assigned, caught up and idle");
    }

    /// Ingest aligns at once when this grows: a partition's first events, assigned or
    /// delivered before a refresh saw it assigned; a revoked partition's clock still counts.
    #[test]
    fn started_counts_the_partitions_that_delivered_an_event() {
        let t0 = Instant::now();
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.set_assignment([(tp("erp"), 0, false), (tp("erp"), 1, false)], t0);
        assert_eq!(w.started(), 0, "assigned, nothing delivered");
        w.observe(&tp("erp"), 0, 5_000, t0);
        w.observe(&tp("erp"), 0, 6_000, t0);
        assert_eq!(w.started(), 1, "a second event is no new start");
        w.observe(&tp("wms"), 0, 1_000, t0);
        assert_eq!(w.started(), 2, "delivered before the assignment named it");
        w.set_assignment([(tp("erp"), 1, false), (tp("wms"), 0, false)], t0);
        assert_eq!(
            w.started(),
            2,
            "erp/0 revoked: its clock is parked, not gone"
        );
    }

    #[test]
    fn an_unassigned_partition_that_delivered_nothing_holds_it_entirely() {
        let t0 = Instant::now();
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.set_assignment([(tp("erp"), 0, false), (tp("erp"), 1, false)], t0);
        w.observe(&tp("erp"), 0, 5_000, t0);
        assert_eq!(w.current(), 0);
        w.set_assignment([(tp("erp"), 0, false)], t0);
        assert_eq!(w.current(), 0, "erp/1 revoked before its first event");
        let clocks = w.clocks(t0);
        assert!(
            clocks
                .iter()
                .any(|(t, p, max, idle)| &**t == "erp" && *p == 1 && max.is_none() && !idle),
            "an unassigned partition is among the clocks, not idle: {clocks:?}"
        );
    }

    #[test]
    fn it_waits_for_the_partitions_to_be_known_and_those_never_seen_hold_it() {
        let t0 = Instant::now();
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.wait_for_partitions();
        w.set_assignment([(tp("erp"), 0, false)], t0);
        w.observe(&tp("erp"), 0, 5_000, t0);
        assert_eq!(
            w.current(),
            0,
            "how many partitions erp has is not known yet"
        );
        assert!(!w.expect([(tp("erp"), 0), (tp("erp"), 1)], t0));
        assert_eq!(
            w.current(),
            0,
            "erp/1, held elsewhere, has delivered nothing here"
        );
        w.set_assignment([(tp("erp"), 0, false), (tp("erp"), 1, false)], t0);
        w.observe(&tp("erp"), 1, 2_000, t0);
        assert_eq!(w.current(), 2_000);
        assert!(!w.expect([(tp("erp"), 0), (tp("erp"), 1)], t0));
        assert_eq!(
            w.save().partitions.len(),
            2,
            "no second clock for a known partition"
        );

        // Known to have no partitions (a topic not created yet): nothing to wait for.
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.wait_for_partitions();
        w.observe(&tp("erp"), 0, 5_000, t0);
        assert_eq!(w.current(), 0);
        assert!(w.expect([(tp("erp"), 0)], t0));
        assert_eq!(w.current(), 5_000);
    }

    #[test]
    fn partitions_of_topics_no_longer_read_are_forgotten() {
        let t0 = Instant::now();
        let mut w = Watermark::new(Duration::ZERO, Duration::ZERO);
        w.observe(&tp("feed.acme"), 0, 1_000, t0);
        w.observe(&tp("erp"), 0, 5_000, t0);
        w.set_assignment([(tp("erp"), 0, false)], t0);
        assert_eq!(
            w.current(),
            1_000,
            "the feed's partition is parked and holds it"
        );
        assert!(w.retain_topics(|t| t == "erp", t0));
        assert_eq!(w.current(), 5_000);
        assert!(w.save().partitions.iter().all(|(t, ..)| t == "erp"));
    }

    #[test]
    fn partitions_too_far_ahead_of_the_slowest_are_named() {
        let mut w = Watermark::new(Duration::from_secs(60), Duration::from_secs(5));
        let (a, b, e) = (tp("a"), tp("b"), tp("empty"));
        let n = now();
        let assign = |w: &mut Watermark, b_caught_up: bool| {
            w.set_assignment(
                [
                    (a.clone(), 0, false),
                    (b.clone(), 0, b_caught_up),
                    (e.clone(), 0, true),
                ],
                n,
            )
        };
        assign(&mut w, false);
        w.observe(&a, 0, 1_000_000, n);
        // b has data to read and has delivered nothing: its events may be older than a's, so
        // a waits for them however far a is (or is not) ahead.
        assert_eq!(w.ahead(i64::MAX, n), vec![(a.clone(), 0)]);
        // Nothing to read of b either: nothing to wait for, and a is the slowest.
        assign(&mut w, true);
        assert!(w.ahead(0, n).is_empty());
        assign(&mut w, false);
        w.observe(&b, 0, 1_000_000 + 3_600_000, n);
        // a is the slowest: never paused. b is 1 h ahead. The empty partition, not yet idle,
        // holds the watermark but not the alignment.
        assert_eq!(w.current(), 0, "held by the empty partition");
        assert!(w.ahead(3_600_000, n).is_empty());
        assert_eq!(w.ahead(3_599_999, n), vec![(b.clone(), 0)]);
        // Once a is idle (caught up, nothing for 5 s) it no longer counts: b is the slowest.
        w.set_assignment(
            [
                (a.clone(), 0, true),
                (b.clone(), 0, false),
                (e.clone(), 0, true),
            ],
            n,
        );
        assert!(w.ahead(0, n + Duration::from_secs(5)).is_empty());
        assert_eq!(
            w.ahead(3_599_999, n),
            vec![(b.clone(), 0)],
            "a not idle yet"
        );
        w.observe(&a, 0, 1_000_000 + 3_600_000, n);
        assert!(w.ahead(0, n).is_empty());
    }

    #[test]
    fn save_and_restore_keep_every_clock() {
        let t0 = Instant::now();
        let mut w = Watermark::new(Duration::from_millis(10), Duration::ZERO);
        w.observe(&tp("erp"), 0, 1_000, t0);
        w.observe(&tp("erp"), 1, 5_000, t0);
        let saved = w.save();
        let mut r = Watermark::new(Duration::from_millis(10), Duration::ZERO);
        r.restore(&saved, t0);
        assert_eq!(r.current(), w.current());
        assert_eq!(r.save(), saved);
        r.observe(&tp("erp"), 0, 3_000, t0);
        w.observe(&tp("erp"), 0, 3_000, t0);
        assert_eq!(r.current(), w.current());
    }
}
