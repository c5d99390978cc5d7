//! The lag monitor: once a second, the consumer's view of the brokers and of its partitions.
//!
//! In: the ingest consumer (librdkafka's statistics, assignment, committed offsets, high
//! watermarks, topic metadata). Out: readiness and the connection, lag, high-watermark-age and
//! unassigned-partition metrics in [`Shared`], the partition list of `/api/status`, and the
//! partition counts and queried high watermarks ingest's watermark reads.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::export::{PartitionStatus, Shared};
use crate::ingest::kafka;

/// Every second: whether the brokers can be reached (librdkafka's view of its connections),
/// readiness (connected, partitions assigned, and the lag query answered within
/// [`READY_WITHIN`]), and the consumer lag per partition.
///
/// Each partition's high watermark is asked on its own, so one slow answer fails that
/// partition only; a partition not answered keeps its last lag figure, and
/// `chainwatch_ingest_high_watermark_age_seconds` says how old it is. A busy broker answers late
/// now and then, and that is not an outage; a broker that answers nothing for a few seconds
/// holds every partition back from idleness (`QueriedHighs`).
///
/// It also counts the partitions of the subscribed topics this instance is not assigned
/// (`chainwatch_ingest_unassigned_partitions`, while connected): another member of the
/// consumer group holds them, and the watermark waits for them. Warned about once it lasts
/// [`SHARED_GROUP_AFTER`].
pub(super) async fn monitor(
    consumer: Arc<kafka::IngestConsumer>,
    shared: Arc<Shared>,
    group_id: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut answering = true;
    let mut since_counted = COUNT_PARTITIONS_EVERY;
    let mut shared_group = SharedGroup::default();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = ticker.tick() => {}
        }
        let connected = consumer.context().health().connected() == Some(true);
        shared.metrics.connected.set(i64::from(connected));
        since_counted += 1;
        let subscribed: Vec<String> = consumer.subscription().map_or_else(
            |_| Vec::new(),
            |s| s.elements().iter().map(|e| e.topic().to_string()).collect(),
        );
        // A topic not counted yet (at start, a feed just subscribed) is asked at once.
        let (_, all_counted) = consumer
            .context()
            .partition_counts()
            .partitions(&subscribed);
        if !all_counted || since_counted >= COUNT_PARTITIONS_EVERY {
            count_partitions(&consumer, &subscribed).await;
            since_counted = 0;
        }
        let round = lag_round(&consumer).await;
        shared.metrics.lag_query_errors.inc_by(round.errors);
        if round.errors > 0 && answering {
            tracing::warn!(
                errors = round.errors,
                connected,
                "The lag query failed; lag figures stay as they were until it answers."
            );
        }
        answering = round.errors == 0;
        let highs = consumer.context().highs();
        let now = std::time::Instant::now();
        // A broker that stalls with its connections up serves nothing either.
        let answering_lately = highs.since_last_answer(now) <= READY_WITHIN;
        shared.ready.store(
            connected && !round.assignment.is_empty() && answering_lately,
            Ordering::SeqCst,
        );
        shared.metrics.high_watermark_age.reset();
        for (topic, partition) in &round.assignment {
            if let Some(age) = highs.age(topic, *partition, now) {
                shared
                    .metrics
                    .high_watermark_age
                    .with_label_values(&[topic, &partition.to_string()])
                    .set(age.as_secs_f64());
            }
        }
        for p in &round.answered {
            shared
                .metrics
                .consumer_lag
                .with_label_values(&[&p.topic, &p.partition.to_string()])
                .set(p.lag);
        }
        // Without brokers the assignment says nothing of other members (a long outage ends
        // in a rejoin): counted only while connected.
        let elsewhere = if connected {
            unassigned(
                &subscribed,
                consumer.context().partition_counts(),
                &round.assignment,
            )
        } else {
            Vec::new()
        };
        shared
            .metrics
            .unassigned_partitions
            .set(i64::try_from(elsewhere.len()).unwrap_or(i64::MAX));
        shared_group.observe(&elsewhere, &group_id, std::time::Instant::now());
        if let Ok(mut u) = shared.unassigned.write() {
            *u = elsewhere;
        }
        if let Ok(mut s) = shared.partitions.write() {
            *s = merge_status(&s, round);
        }
    }
}

/// The partitions of the `subscribed` topics (as many as the brokers said each has) that are
/// not in `assignment`, in topic and partition order. A topic not counted yet has none.
fn unassigned(
    subscribed: &[String],
    counts: &kafka::PartitionCounts,
    assignment: &[(String, i32)],
) -> Vec<(String, i32)> {
    let mine: std::collections::HashSet<(&str, i32)> =
        assignment.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    let (partitions, _) = counts.partitions(subscribed);
    partitions
        .into_iter()
        .filter(|(t, p)| !mine.contains(&(&**t, *p)))
        .map(|(t, p)| (t.to_string(), p))
        .collect()
}

/// A rebalance leaves partitions unassigned for a few seconds; longer, another member of the
/// group holds them.
const SHARED_GROUP_AFTER: Duration = Duration::from_secs(30);

/// Whether partitions have been unassigned for [`SHARED_GROUP_AFTER`]: logged once when it
/// starts, once when it ends.
#[derive(Debug, Default)]
struct SharedGroup {
    /// Since when some partition has been unassigned.
    since: Option<std::time::Instant>,
    warned: bool,
}

impl SharedGroup {
    /// Note this round's unassigned partitions; true when this call warned.
    fn observe(
        &mut self,
        elsewhere: &[(String, i32)],
        group_id: &str,
        now: std::time::Instant,
    ) -> bool {
        if elsewhere.is_empty() {
            if self.warned {
                tracing::info!(
                    group = group_id,
                    "Every partition of the input is assigned to this instance again."
                );
            }
            *self = SharedGroup::default();
            return false;
        }
        let since = *self.since.get_or_insert(now);
        if self.warned || now.duration_since(since) < SHARED_GROUP_AFTER {
            return false;
        }
        self.warned = true;
        let shown: Vec<String> = elsewhere
            .iter()
            .take(10)
            .map(|(t, p)| format!("{t}/{p}"))
            .collect();
        tracing::warn!(
            group = group_id,
            unassigned = elsewhere.len(),
            partitions = %shown.join(", "),
            "Partitions of the input are not assigned to this instance: another member of the \
             consumer group holds them. chainwatch runs as one instance per group \
             (docs/operations.md, Scale-out); the watermark waits for these partitions until \
             they are handed back."
        );
        true
    }
}

/// How many partitions each subscribed topic has (one metadata request per topic,
/// [`LAG_QUERIES_AT_ONCE`] at a time, 2 s each at most), noted in the consumer's
/// `PartitionCounts` for the watermark. A topic the brokers do not know counts as none; a
/// request that fails notes nothing (the topic is asked again next round).
async fn count_partitions(c: &Arc<kafka::IngestConsumer>, topics: &[String]) {
    use futures::StreamExt;
    let counted: Vec<_> = futures::stream::iter(topics.to_vec())
        .map(|topic| {
            let consumer = c.clone();
            tokio::task::spawn_blocking(move || {
                let m = consumer.fetch_metadata(Some(&topic), Duration::from_secs(2))?;
                let n = m
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map_or(0, |t| t.partitions().len());
                consumer
                    .context()
                    .partition_counts()
                    .note(&topic, i32::try_from(n).unwrap_or(i32::MAX));
                Ok::<(), rdkafka::error::KafkaError>(())
            })
        })
        .buffer_unordered(LAG_QUERIES_AT_ONCE)
        .collect()
        .await;
    for r in counted {
        if let Ok(Err(e)) = r {
            tracing::debug!(error = %e, "Partition count query failed.");
        }
    }
}

/// Partition counts of topics already counted are asked again every this many rounds (new
/// partitions are rare).
const COUNT_PARTITIONS_EVERY: u32 = 10;

/// One round of the lag query.
#[derive(Debug, Default)]
struct LagRound {
    /// The partitions assigned when the round began.
    assignment: Vec<(String, i32)>,
    /// Those whose committed offset and high watermark both came back.
    answered: Vec<PartitionStatus>,
    /// Queries that failed or answered late.
    errors: u64,
}

/// Not ready once the lag query has had no answer for this long: the broker is stalled (its
/// connections may well be up), and nothing is consumed. Several rounds of the query, so that
/// a busy broker answering late now and then does not flap readiness.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Partitions asked at once: a stalled broker then costs one timeout per round, not one per
/// partition.
const LAG_QUERIES_AT_ONCE: usize = 8;

/// Committed offsets (one request) and every assigned partition's high watermark (one each,
/// [`LAG_QUERIES_AT_ONCE`] at a time, 2 s each at most). Each high watermark answered is noted
/// in the consumer's `QueriedHighs` with the time it was asked.
async fn lag_round(c: &Arc<kafka::IngestConsumer>) -> LagRound {
    use futures::StreamExt;
    let timeout = Duration::from_secs(2);
    let assignment: Vec<(String, i32)> = match c.assignment() {
        Ok(a) => a
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect(),
        Err(_) => return LagRound::default(),
    };
    if assignment.is_empty() {
        return LagRound::default();
    }
    let mut errors = 0;
    let committed = {
        let c = c.clone();
        tokio::task::spawn_blocking(move || c.committed(timeout))
    };
    let highs: Vec<_> = futures::stream::iter(assignment.clone())
        .map(|(topic, partition)| {
            let c = c.clone();
            tokio::task::spawn_blocking(move || {
                let asked = std::time::Instant::now();
                let high = c.fetch_watermarks(&topic, partition, timeout);
                if let Ok((_, h)) = &high {
                    c.context().highs().note(&topic, partition, *h, asked);
                }
                (topic, partition, high.ok().map(|(_, h)| h))
            })
        })
        .buffer_unordered(LAG_QUERIES_AT_ONCE)
        .collect()
        .await;
    let highs: HashMap<(String, i32), i64> = highs
        .into_iter()
        .filter_map(|r| match r {
            Ok((t, p, Some(h))) => Some(((t, p), h)),
            _ => {
                errors += 1;
                None
            }
        })
        .collect();
    let committed = match committed.await {
        Ok(Ok(list)) => Some(list),
        _ => {
            errors += 1;
            None
        }
    };
    let positions = c.position().ok();
    let mut answered = Vec::new();
    for e in committed.iter().flat_map(|l| l.elements()) {
        let Some(&high) = highs.get(&(e.topic().to_string(), e.partition())) else {
            continue;
        };
        let committed = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(-1);
        let position = positions
            .as_ref()
            .and_then(|l| l.find_partition(e.topic(), e.partition()))
            .and_then(|p| p.offset().to_raw())
            .filter(|o| *o >= 0)
            .unwrap_or(-1);
        answered.push(PartitionStatus {
            topic: e.topic().to_string(),
            partition: e.partition(),
            committed,
            position,
            high_watermark: high,
            lag: (high - committed.max(0)).max(0),
        });
    }
    LagRound {
        assignment,
        answered,
        errors,
    }
}

/// The status list after a round: every assigned partition, with this round's figures where
/// it answered and the last ones where it did not.
fn merge_status(before: &[PartitionStatus], round: LagRound) -> Vec<PartitionStatus> {
    let mut fresh: HashMap<(String, i32), PartitionStatus> = round
        .answered
        .into_iter()
        .map(|p| ((p.topic.clone(), p.partition), p))
        .collect();
    let mut out: Vec<PartitionStatus> = round
        .assignment
        .into_iter()
        .filter_map(|key| {
            fresh.remove(&key).or_else(|| {
                before
                    .iter()
                    .find(|p| p.topic == key.0 && p.partition == key.1)
                    .cloned()
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unassigned_partitions_are_those_of_subscribed_topics_held_elsewhere() {
        let counts = kafka::PartitionCounts::default();
        counts.note("erp", 3);
        counts.note("wms", 2);
        let subscribed = ["wms", "erp", "logistics", "erp"].map(String::from);
        let mine = [("erp".to_string(), 1), ("wms".to_string(), 0)];
        // logistics is not counted yet: none of it is known to be missing.
        assert_eq!(
            unassigned(&subscribed, &counts, &mine),
            [("erp", 0), ("erp", 2), ("wms", 1)].map(|(t, p)| (t.to_string(), p))
        );
        let all: Vec<(String, i32)> = [("erp", 0), ("erp", 1), ("erp", 2), ("wms", 0), ("wms", 1)]
            .map(|(t, p)| (t.to_string(), p))
            .into();
        assert!(unassigned(&subscribed, &counts, &all).is_empty());
        // An assigned partition of a topic no longer subscribed does not count either way.
        assert!(unassigned(&["wms".to_string()], &counts, &all).is_empty());
    }

    #[test]
    fn a_shared_group_is_warned_about_once_after_it_lasts() {
        let t0 = std::time::Instant::now();
        let held = vec![("erp".to_string(), 1)];
        let mut g = SharedGroup::default();
        assert!(!g.observe(&held, "g", t0), "a rebalance takes a moment");
        assert!(!g.observe(&held, "g", t0 + Duration::from_secs(29)));
        assert!(g.observe(&held, "g", t0 + SHARED_GROUP_AFTER));
        assert!(!g.observe(&held, "g", t0 + Duration::from_secs(60)), "once");
        // Handed back, then held again: a new episode, warned about after it lasts again.
        assert!(!g.observe(&[], "g", t0 + Duration::from_secs(61)));
        assert!(!g.observe(&held, "g", t0 + Duration::from_secs(62)));
        assert!(!g.observe(&held, "g", t0 + Duration::from_secs(91)));
        assert!(g.observe(&held, "g", t0 + Duration::from_secs(92)));
    }

    fn status(topic: &str, partition: i32, high: i64) -> PartitionStatus {
        PartitionStatus {
            topic: topic.to_string(),
            partition,
            committed: 0,
            position: 0,
            high_watermark: high,
            lag: high,
        }
    }

    /// After a round, every assigned partition is listed once, sorted: fresh figures where it
    /// answered, the last ones where it did not, nothing for a partition no longer assigned
    /// or never answered.
    #[test]
    fn a_partition_not_answered_keeps_its_last_figures() {
        let before = vec![status("a", 0, 10), status("a", 1, 20), status("b", 0, 30)];
        let round = LagRound {
            assignment: vec![
                ("b".to_string(), 1),
                ("a".to_string(), 1),
                ("a".to_string(), 0),
            ],
            answered: vec![status("a", 0, 11)],
            errors: 2,
        };
        let after = merge_status(&before, round);
        let got: Vec<(&str, i32, i64)> = after
            .iter()
            .map(|p| (p.topic.as_str(), p.partition, p.high_watermark))
            .collect();
        assert_eq!(got, vec![("a", 0, 11), ("a", 1, 20)]);
    }
}
