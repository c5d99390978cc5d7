//! Watermark alignment: the assignment and the brokers' answers -> caught-up and paused
//! partitions.
//!
//! In: on every linger tick and after a micro-batch that started a partition's clock, the
//! consumer's assigned partitions and positions, the high watermarks librdkafka fetched or the
//! lag monitor queried (`QueriedHighs`), broker health and the state stage's buffered-events
//! gauge. Out: which partitions the watermark may treat as caught up (idle), and which
//! partitions are paused because they ran ahead of the slowest in event time
//! (`chainwatch_ingest_paused_partitions`).

use std::sync::Arc;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::TopicPartitionList;

use super::{Ingest, Watermark};

impl Ingest {
    /// Tell the watermark which partitions are assigned and which are caught up (everything
    /// up to the high watermark consumed).
    pub(super) fn refresh_assignment(&mut self) -> Refreshed {
        let Ok(positions) = self.consumer.position() else {
            return Refreshed::default();
        };
        let consumer = &self.consumer;
        let consumed = &self.consumed;
        let paused = &self.paused;
        // While a partition's leader cannot be reached, its cached high watermark is stale: a
        // partition whose new events were never fetched would look caught up, turn idle, and
        // the watermark would pass those events, to be dead-lettered as late once the broker
        // is back. An outage is not idleness.
        let health = self.consumer.context().health();
        let queried = self.consumer.context().highs();
        let now = std::time::Instant::now();
        let mut all_confirmed = true;
        let assigned: Vec<(Arc<str>, i32, bool)> = positions
            .elements()
            .iter()
            .map(|e| {
                // The fetched and the queried high watermark, whichever is further (see
                // `QueriedHighs`; None < Some).
                let high = cached_high_watermark(consumer, e.topic(), e.partition())
                    .max(queried.get(e.topic(), e.partition()));
                // Right after a rebalance the position is unknown until a fetch returns, and
                // a partition with nothing new never returns one: what this consumer read of
                // it before tells whether it is caught up.
                let read = consumed
                    .get(&(e.topic().to_string(), e.partition()))
                    .copied();
                let key = (Arc::from(e.topic()), e.partition());
                // A paused partition is fetched no more, so its cached high watermark goes
                // stale and it would look caught up, then idle, and the watermark would pass
                // the events still waiting in Kafka. It is ahead anyway: it holds nothing back.
                // And a broker that stalls with its connections up answers neither fetches
                // nor queries: only what it confirmed lately counts (`QueriedHighs`).
                let confirmed = queried.confirmed(e.topic(), e.partition(), now);
                all_confirmed &= confirmed;
                let caught_up = health.leader_up(e.topic(), e.partition())
                    && confirmed
                    && !paused.contains(&key)
                    && match (e.offset().to_raw(), high) {
                        (_, None) => false,
                        (Some(pos), Some(high)) if pos >= 0 => pos >= high,
                        (_, Some(high)) => high == 0 || read.is_some_and(|next| next >= high),
                    };
                (key.0, key.1, caught_up)
            })
            .collect();
        let mut moved = self.watermark.set_assignment(assigned, now);
        if let Ok(s) = self.consumer.subscription() {
            let topics: Vec<String> = s.elements().iter().map(|e| e.topic().to_string()).collect();
            if !topics.is_empty() {
                // Partitions of topics no longer subscribed (a feed removed, or gone from the
                // config since the checkpoint) would hold the watermark for ever: forgotten.
                moved |= self
                    .watermark
                    .retain_topics(|t| topics.iter().any(|x| x == t), now);
            }
            // Every partition of the input, assigned here or not, once the brokers have said
            // how many each topic has.
            let (known, all) = self
                .consumer
                .context()
                .partition_counts()
                .partitions(&topics);
            if all && !topics.is_empty() {
                moved |= self.watermark.expect(known, now);
            }
        }
        Refreshed {
            moved,
            confirmed: all_confirmed,
        }
    }

    /// Watermark alignment: pause the partitions whose event time ran more than `max_drift`
    /// ahead of the slowest one, resume those back within it. Without it, a replay that reads
    /// one topic faster than another fills the event buffer with the fast topic's events
    /// (seen in the soak: 2.7 M events buffered in 3 minutes); paused, they wait in Kafka.
    ///
    /// A full event buffer pauses every partition ahead of the slowest at all (a drift of 0):
    /// the events that would move the watermark on, and so drain the buffer, still come in,
    /// and an empty partition holding the watermark until it is idle still turns idle. The
    /// buffer's size comes from the state stage's gauge, which it sets after every batch.
    ///
    /// `confirmed`: whether the broker answered every assigned partition's high watermark
    /// lately ([`Refreshed::confirmed`]).
    pub(super) fn align(&mut self, confirmed: bool) {
        let full = usize::try_from(self.metrics.buffered.get())
            .is_ok_and(|n| n >= self.max_buffered_events);
        let drift = if full {
            0
        } else {
            i64::try_from(self.max_drift.as_millis()).unwrap_or(i64::MAX)
        };
        // Not known yet (no statistics in the first second): as if connected, or a backlog
        // would be read unaligned until they come. A broker that answers no lag query is as
        // good as unreachable: no partition can be told caught up.
        let now = std::time::Instant::now();
        let reachable = confirmed && self.consumer.context().health().connected() != Some(false);
        let ahead = to_pause(&self.watermark, &self.paused, reachable, drift, now);
        let list = |set: &mut dyn Iterator<Item = &(Arc<str>, i32)>| {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in set {
                tpl.add_partition(t, *p);
            }
            tpl
        };
        let resume = list(&mut self.paused.difference(&ahead));
        // Pause again every tick: pausing only the changes let a partition read on while
        // counted paused (the backlog test failed that way). Why is not known; a pause racing
        // the assignment (librdkafka #2190 is of that kind) is the suspect.
        let pause = list(&mut ahead.iter());
        if pause.count() > 0 {
            if let Err(e) = self.consumer.pause(&pause) {
                tracing::debug!(error = %e, "Could not pause partitions ahead in event time.");
            }
        }
        if resume.count() > 0 {
            if let Err(e) = self.consumer.resume(&resume) {
                tracing::debug!(error = %e, "Could not resume partitions.");
            }
        }
        if ahead != self.paused {
            tracing::debug!(paused = ahead.len(), "Watermark alignment changed.");
        }
        self.metrics
            .paused_partitions
            .set(i64::try_from(ahead.len()).unwrap_or(i64::MAX));
        self.paused = ahead;
    }
}

/// The high watermark librdkafka cached from its last fetch response (no network call).
fn cached_high_watermark<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime; the function only reads
    // librdkafka's cached offsets into the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// What [`Ingest::refresh_assignment`] found.
#[derive(Debug, Default)]
pub(super) struct Refreshed {
    /// The watermark moved.
    pub(super) moved: bool,
    /// Every assigned partition's high watermark was answered lately (`QueriedHighs`); false
    /// when the assignment could not be read.
    pub(super) confirmed: bool,
}

/// The partitions watermark alignment holds paused: while the brokers can be reached (a
/// connection up and every assigned partition's high watermark answered lately), those ahead
/// of the slowest in event time ([`Watermark::ahead`]); while they cannot, the set as it was.
///
/// Without the brokers no partition can be told caught up, so every empty partition looks as
/// if it waited for its first events, and every partition with events, the slowest too, would
/// be paused, then resumed once they were back. Each pause throws away what librdkafka had
/// fetched for the partition: when a lag query answered late every few seconds was taken for
/// an outage, the slowest partition was paused and resumed faster than its fetches returned
/// and nothing was read any more (the soak stalled so, `connected` flapping between 0 and 1).
fn to_pause(
    watermark: &Watermark,
    paused: &std::collections::BTreeSet<(Arc<str>, i32)>,
    reachable: bool,
    drift_ms: i64,
    now: std::time::Instant,
) -> std::collections::BTreeSet<(Arc<str>, i32)> {
    if !reachable {
        return paused.clone();
    }
    watermark.ahead(drift_ms, now).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// erp 0 is the slowest, wms 0 a day ahead of it, and feeds 0 empty.
    fn clocks(feeds_caught_up: bool, now: std::time::Instant) -> Watermark {
        let mut w = Watermark::new(Duration::ZERO, Duration::from_secs(5));
        let (erp, wms, feeds): (Arc<str>, Arc<str>, Arc<str>) =
            (Arc::from("erp"), Arc::from("wms"), Arc::from("feeds"));
        w.set_assignment(
            [
                (erp.clone(), 0, false),
                (wms.clone(), 0, false),
                (feeds, 0, feeds_caught_up),
            ],
            now,
        );
        w.observe(&erp, 0, 1_000, now);
        w.observe(&wms, 0, 1_000 + 86_400_000, now);
        w
    }

    fn set(items: &[(&str, i32)]) -> std::collections::BTreeSet<(Arc<str>, i32)> {
        items.iter().map(|(t, p)| (Arc::from(*t), *p)).collect()
    }

    #[test]
    fn while_the_brokers_answer_the_partitions_ahead_are_paused() {
        let now = std::time::Instant::now();
        let drift = 3_600_000;
        let w = clocks(true, now);
        assert_eq!(
            to_pause(&w, &set(&[]), true, drift, now),
            set(&[("wms", 0)])
        );
        // An empty partition with events to read: everything with events waits for it.
        let w = clocks(false, now);
        assert_eq!(
            to_pause(&w, &set(&[]), true, drift, now),
            set(&[("erp", 0), ("wms", 0)])
        );
    }

    /// Without an answer the ingest stage takes no partition as caught up (the empty one
    /// looks as if it waited); the pause set stays as it was: the slowest partition reads on.
    #[test]
    fn while_they_do_not_the_pause_set_stays_as_it_was() {
        let now = std::time::Instant::now();
        let w = clocks(false, now);
        let before = set(&[("wms", 0)]);
        assert_eq!(to_pause(&w, &before, false, 3_600_000, now), before);
        assert_eq!(to_pause(&w, &set(&[]), false, 0, now), set(&[]));
    }
}
