//! Ingest: Kafka messages -> validated Arrow micro-batches; bad records -> dead-letter topic.
//!
//! In: messages from the input topics and from supplier feed topics (one consumer in the
//! group); a feed's message is first mapped from the supplier's own format to canonical events
//! by its definition ([`crate::feeds`]), each record on its own. Out: [`Batch`]es on a
//! bounded channel (backpressure reaches Kafka: when state falls behind, we stop polling),
//! each with the offsets to store once it is applied. Rejected messages are written to the
//! dead-letter topic, with their reason, before their batch is passed on, so an offset is
//! never committed for a message that is neither applied nor dead-lettered.
//!
//! The loop is one `select!` over shutdown, a linger tick and receive: a micro-batch is
//! flushed at `batch.max_rows` messages or at the next tick (at most `batch.linger` after its
//! first message). The tick comes before receive, so a backlog cannot starve it: it also
//! detects idle partitions and pauses partitions too far ahead (watermark alignment).

pub mod decode;
pub mod kafka;
pub mod watermark;

#[cfg(test)]
pub(crate) mod prop_tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use futures::future::join_all;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::BatchConfig;
use crate::events::col;
use crate::export::metrics::Metrics;
use crate::feeds::{Feed, FeedSet, MapReject};
use crate::state::checkpoint::CheckpointRequest;
use crate::state::FeedTally;
use decode::{EventDecoder, Reject, RejectReason};
use watermark::SavedWatermark;
pub use watermark::Watermark;

/// A decoded micro-batch on its way to state.
#[derive(Debug)]
pub struct Batch {
    /// Valid, on-time events; `None` when the whole micro-batch was rejected.
    pub events: Option<RecordBatch>,
    /// Next offset to commit per (topic, partition), once `events` is applied.
    pub offsets: BTreeMap<(String, i32), i64>,
    /// Event-time watermark after this batch (ms).
    pub watermark: i64,
    /// What each supplier feed sent in this batch.
    pub feeds: Vec<FeedTally>,
    /// Cut a checkpoint right after this batch.
    pub checkpoint: Option<CheckpointRequest>,
}

/// What a pending entry stands for.
enum Item {
    /// A canonical event to decode.
    Event,
    /// A feed record that could not be mapped: dead-letter it with this reason.
    Rejected(MapReject),
    /// Nothing to decode (a record no mapping applies to, a message of a feed removed
    /// meanwhile); only its offset counts.
    Skip,
}

/// The feed a pending entry came through, and where in its message.
struct FromFeed {
    feed: Arc<Feed>,
    /// 1-based record number in the message (0: the whole message).
    row: usize,
    /// CSV: the line the record starts on.
    line: Option<u64>,
}

/// One received message, its payload kept in the batch buffer.
struct Pending {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<std::ops::Range<usize>>,
    item: Item,
    feed: Option<FromFeed>,
}

/// The ingest stage.
pub struct Ingest {
    pub consumer: Arc<kafka::IngestConsumer>,
    pub producer: FutureProducer,
    pub dead_letter_topic: String,
    pub batch: BatchConfig,
    pub watermark: Watermark,
    pub metrics: Metrics,
    /// The canonical input topics (always subscribed).
    pub input_topics: Vec<String>,
    /// The current supplier feeds; a change re-subscribes to their topics.
    pub feeds: watch::Receiver<Arc<FeedSet>>,
    /// Next offset after the last message read, per (topic, partition).
    pub consumed: std::collections::HashMap<(String, i32), i64>,
    /// When checkpoints are cut, and what the last one held.
    pub cuts: Cuts,
    /// Event time a partition may run ahead of the slowest before it is paused.
    pub max_drift: Duration,
    /// Buffered events (the state stage's `chainwatch_state_buffered_events`) from which every
    /// partition ahead of the slowest at all is paused.
    pub max_buffered_events: usize,
    /// Partitions paused by watermark alignment.
    pub paused: std::collections::BTreeSet<(Arc<str>, i32)>,
}

/// Offsets and watermark clocks of a checkpoint cut.
type Cut = (BTreeMap<(String, i32), i64>, SavedWatermark);

/// When ingest asks for a checkpoint, and what the last one it asked for held.
pub struct Cuts {
    /// Wall-clock time between checkpoints; `None`: checkpoints are off.
    every: Option<Duration>,
    last_at: Instant,
    last: Option<Cut>,
}

impl Cuts {
    pub fn new(every: Option<Duration>) -> Self {
        Cuts {
            every,
            last_at: Instant::now(),
            last: None,
        }
    }
}

impl Ingest {
    /// Run until shutdown; flushes what it holds before returning.
    pub async fn run(mut self, out: mpsc::Sender<Batch>, mut shutdown: watch::Receiver<bool>) {
        let decoder = EventDecoder::new(self.batch.max_message_bytes);
        let mut pending: Vec<Pending> = Vec::with_capacity(self.batch.max_rows);
        let mut buf: Vec<u8> = Vec::new();
        let mut topics: Vec<Arc<str>> = Vec::new();
        let mut ticker = tokio::time::interval(self.batch.linger.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut feeds = self.feeds.borrow_and_update().clone();
        let mut tallies: BTreeMap<String, FeedTally> = BTreeMap::new();
        let mut feeds_open = true;
        // Next offset expected per partition: a jump over offsets is counted, and a message
        // below it was read before (or is in the restored checkpoint) and is dropped.
        let mut next: Vec<Expected> = self
            .consumed
            .iter()
            .map(|((t, p), o)| (intern(&mut topics, t), *p, *o, false))
            .collect();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                changed = self.feeds.changed(), if feeds_open => {
                    if changed.is_err() {
                        // The sender is gone: keep the feeds we have.
                        feeds_open = false;
                        continue;
                    }
                    let before = feeds.topics().join(",");
                    feeds = self.feeds.borrow_and_update().clone();
                    // A changed mapping needs no rebalance; a changed topic list does.
                    if feeds.topics().join(",") != before {
                        self.subscribe(&feeds);
                    }
                }
                // Before receive: with `biased`, a consumer that always has a message ready
                // (a backlog) would otherwise starve the tick, and with it watermark alignment:
                // partitions paused earlier were never resumed and the watermark stalled while
                // the others were read on into the buffer (the soak's growing memory).
                _ = ticker.tick() => {
                    self.publish_clocks();
                    // What is pending goes now (it waited at most one linger): nothing read is
                    // then unseen by the watermark when the idle check below runs.
                    if !pending.is_empty() {
                        let cut = self.checkpoint_due(false);
                        if !self.flush(&decoder, &mut pending, &mut buf, &mut tallies, cut, &out, &shutdown).await {
                            break;
                        }
                    }
                    // Idle partitions caught up: the watermark moves without new events. On
                    // every tick, a backlog too: an empty partition not yet seen caught up
                    // holds the watermark until this runs.
                    let refreshed = self.refresh_assignment();
                    self.align(refreshed.confirmed);
                    let moved = refreshed.moved;
                    // Nothing pending: the cut is at everything consumed. Only when
                    // something changed since the last one (an idle service writes none).
                    let cut = self.checkpoint_due(false).and_then(|mut r| {
                        let before = self.cuts.last.clone();
                        self.record_cut(&mut r);
                        (self.cuts.last != before).then_some(r)
                    });
                    if moved || cut.is_some() {
                        let idle = Batch {
                            events: None,
                            offsets: BTreeMap::new(),
                            watermark: self.watermark.current(),
                            feeds: Vec::new(),
                            checkpoint: cut,
                        };
                        if out.send(idle).await.is_err() {
                            break;
                        }
                    }
                }
                msg = self.consumer.recv() => match msg {
                    Ok(m) => {
                        let topic = intern(&mut topics, m.topic());
                        let bytes = m.payload().map_or(0, <[u8]>::len);
                        self.metrics.messages.with_label_values(&[&topic]).inc();
                        self.metrics.bytes.with_label_values(&[&topic]).inc_by(bytes as u64);
                        let key = m.key().map(<[u8]>::to_vec);
                        let at = (topic.clone(), m.partition(), m.offset());
                        if !count_skipped(&mut next, &at, &self.metrics) {
                            // Its events are in the state (or were dead-lettered) already.
                            continue;
                        }
                        match feeds.by_topic(&topic) {
                            Some(feed) => {
                                let tally = tallies.entry(feed.name.clone()).or_insert_with(|| FeedTally {
                                    feed: feed.name.clone(),
                                    supplier: feed.supplier.id.clone(),
                                    ..FeedTally::default()
                                });
                                receive_feed(feed, m.payload(), at, key, tally, &self.metrics, &mut pending, &mut buf);
                            }
                            None => {
                                let known = self.input_topics.iter().any(|t| **t == *topic);
                                let payload = m.payload().filter(|_| known).map(|p| {
                                    let start = buf.len();
                                    buf.extend_from_slice(p);
                                    start..buf.len()
                                });
                                pending.push(Pending {
                                    topic: at.0,
                                    partition: at.1,
                                    offset: at.2,
                                    key,
                                    payload,
                                    item: if known { Item::Event } else { Item::Skip },
                                    feed: None,
                                });
                            }
                        }
                        if pending.len() >= self.batch.max_rows {
                            let cut = self.checkpoint_due(false);
                            if !self.flush(&decoder, &mut pending, &mut buf, &mut tallies, cut, &out, &shutdown).await {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka consumer error; retrying.");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        // The last batch carries the shutdown checkpoint (even with nothing pending).
        let cut = self.checkpoint_due(true);
        if !pending.is_empty() || cut.is_some() {
            self.flush(
                &decoder,
                &mut pending,
                &mut buf,
                &mut tallies,
                cut,
                &out,
                &shutdown,
            )
            .await;
        }
        tracing::info!("Ingest stopped.");
    }

    /// A checkpoint request when one is due (`last`: the shutdown one); checkpoints off: none.
    fn checkpoint_due(&mut self, last: bool) -> Option<CheckpointRequest> {
        let every = self.cuts.every?;
        if !last && self.cuts.last_at.elapsed() < every {
            return None;
        }
        self.cuts.last_at = Instant::now();
        Some(CheckpointRequest {
            // Filled in by `record_cut` once the pending messages count as consumed.
            offsets: BTreeMap::new(),
            watermark: SavedWatermark::default(),
            last,
        })
    }

    /// Fill a checkpoint request with what is consumed now and the watermark after it; it is
    /// the last cut from now on.
    fn record_cut(&mut self, request: &mut CheckpointRequest) {
        request.offsets = self.consumed_offsets();
        request.watermark = self.watermark.save();
        self.cuts.last = Some((request.offsets.clone(), request.watermark.clone()));
    }

    /// Decode, dead-letter the rejects, pass the batch on (with `checkpoint`, cut right after
    /// it). False when the receiver is gone.
    #[allow(clippy::too_many_arguments)]
    async fn flush(
        &mut self,
        decoder: &EventDecoder,
        pending: &mut Vec<Pending>,
        buf: &mut Vec<u8>,
        tallies: &mut BTreeMap<String, FeedTally>,
        checkpoint: Option<CheckpointRequest>,
        out: &mpsc::Sender<Batch>,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        if pending.is_empty() {
            let Some(mut request) = checkpoint else {
                return true;
            };
            self.record_cut(&mut request);
            let batch = Batch {
                events: None,
                offsets: BTreeMap::new(),
                watermark: self.watermark.current(),
                feeds: std::mem::take(tallies).into_values().collect(),
                checkpoint: Some(request),
            };
            return out.send(batch).await.is_ok();
        }
        self.metrics.batch_rows.observe(pending.len() as f64);
        let payloads: Vec<Option<&[u8]>> = pending
            .iter()
            .map(|p| p.payload.clone().map(|r| &buf[r]))
            .collect();
        // Only canonical events go to the decoder; its indices are mapped back to `pending`.
        let to_decode: Vec<usize> = (0..pending.len())
            .filter(|i| matches!(pending[*i].item, Item::Event))
            .collect();
        let mut decoded = if to_decode.is_empty() {
            decode::Decoded::default()
        } else {
            let slice: Vec<Option<&[u8]>> = to_decode.iter().map(|i| payloads[*i]).collect();
            decoder.decode(&slice)
        };
        for r in &mut decoded.rows {
            *r = to_decode[*r];
        }
        for r in &mut decoded.rejects {
            r.index = to_decode[r.index];
        }
        for (i, p) in pending.iter().enumerate() {
            if let Item::Rejected(m) = &p.item {
                let at = match &p.feed {
                    Some(FromFeed {
                        feed,
                        row,
                        line: Some(line),
                    }) => format!("feed {}: row {row} (line {line}): ", feed.name),
                    Some(FromFeed { feed, row, .. }) => {
                        format!("feed {}: record {row}: ", feed.name)
                    }
                    None => String::new(),
                };
                let field = m
                    .field
                    .as_deref()
                    .map(|f| format!("{f}: "))
                    .unwrap_or_default();
                decoded.rejects.push(Reject {
                    index: i,
                    reason: m.reason,
                    detail: format!("{at}{field}{}", m.detail),
                });
            }
        }
        let events = self.drop_late(
            decoded.batch.take(),
            &decoded.rows,
            pending,
            &mut decoded.rejects,
        );
        for r in &decoded.rejects {
            if let Some(f) = &pending[r.index].feed {
                if let Some(t) = tallies.get_mut(&f.feed.name) {
                    t.rejected += 1;
                }
                self.metrics
                    .feed_rejected
                    .with_label_values(&[f.feed.name.as_str(), r.reason.as_str()])
                    .inc();
            }
        }
        if !decoded.rejects.is_empty() {
            self.dead_letter(&decoded.rejects, pending, &payloads, shutdown)
                .await;
        }
        let mut offsets = BTreeMap::new();
        for p in pending.iter() {
            let next = offsets
                .entry((p.topic.to_string(), p.partition))
                .or_insert(0);
            *next = (*next).max(p.offset + 1);
        }
        for (k, next) in &offsets {
            let seen = self.consumed.entry(k.clone()).or_insert(*next);
            *seen = (*seen).max(*next);
        }
        self.consumer
            .context()
            .remember(offsets.iter().map(|(k, v)| (k.clone(), *v)));
        self.refresh_assignment();
        pending.clear();
        buf.clear();
        let checkpoint = checkpoint.map(|mut r| {
            // After this batch: its events and its watermark are in the cut.
            self.record_cut(&mut r);
            r
        });
        let batch = Batch {
            events,
            offsets,
            watermark: self.watermark.current(),
            feeds: std::mem::take(tallies).into_values().collect(),
            checkpoint,
        };
        out.send(batch).await.is_ok()
    }

    /// Next offset to read of every partition read so far: what a checkpoint resumes from.
    fn consumed_offsets(&self) -> BTreeMap<(String, i32), i64> {
        self.consumed.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Reject rows older than the watermark as it was before this batch, then move the
    /// watermark with the others: disorder within one micro-batch (a supplier document listing
    /// its events out of order) never makes its own events late.
    fn drop_late(
        &mut self,
        batch: Option<RecordBatch>,
        rows: &[usize],
        pending: &[Pending],
        rejects: &mut Vec<Reject>,
    ) -> Option<RecordBatch> {
        let batch = batch?;
        let times = batch
            .column(col::EVENT_TIME)
            .as_primitive::<TimestampMillisecondType>();
        let mut keep = Vec::with_capacity(batch.num_rows());
        for (i, t) in times.values().iter().enumerate() {
            let late = self.watermark.is_late(*t);
            if late {
                rejects.push(Reject {
                    index: rows[i],
                    reason: RejectReason::LateEvent,
                    detail: format!(
                        "event_time {} is before the watermark {} (allowed lateness {} ms)",
                        fmt_ms(*t),
                        fmt_ms(self.watermark.current()),
                        self.watermark.lateness_ms()
                    ),
                });
            }
            keep.push(!late);
        }
        let now = std::time::Instant::now();
        for (i, t) in times.values().iter().enumerate() {
            if keep[i] {
                let p = &pending[rows[i]];
                self.watermark.observe(&p.topic, p.partition, *t, now);
            }
        }
        if keep.iter().all(|k| *k) {
            return Some(batch);
        }
        filter_record_batch(&batch, &BooleanArray::from(keep))
            .ok()
            .filter(|b| b.num_rows() > 0)
    }

    /// Tell the watermark which partitions are assigned and which are caught up (everything
    /// up to the high watermark consumed).
    fn refresh_assignment(&mut self) -> Refreshed {
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
        Refreshed {
            moved: self.watermark.set_assignment(assigned, now),
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
    fn align(&mut self, confirmed: bool) {
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

    /// Per-partition clocks as metrics. On the linger tick, not per batch: it rebuilds the
    /// label sets.
    fn publish_clocks(&self) {
        let now = std::time::Instant::now();
        self.metrics.partition_event_time.reset();
        self.metrics.partition_idle.reset();
        self.metrics.partition_paused.reset();
        for (topic, partition, max, idle) in self.watermark.clocks(now) {
            let labels = [topic.as_ref(), &partition.to_string()];
            let paused = self.paused.contains(&(topic.clone(), partition));
            self.metrics
                .partition_paused
                .with_label_values(&labels)
                .set(i64::from(paused));
            if let Some(t) = max {
                self.metrics
                    .partition_event_time
                    .with_label_values(&labels)
                    .set(t as f64 / 1000.0);
            }
            self.metrics
                .partition_idle
                .with_label_values(&labels)
                .set(i64::from(idle));
        }
    }

    /// Write every reject to the dead-letter topic; retries until written or shut down.
    async fn dead_letter(
        &self,
        rejects: &[Reject],
        pending: &[Pending],
        payloads: &[Option<&[u8]>],
        shutdown: &watch::Receiver<bool>,
    ) {
        let mut todo: Vec<&Reject> = rejects.iter().collect();
        for r in &todo {
            self.metrics
                .rejected
                .with_label_values(&[r.reason.as_str()])
                .inc();
            let p = &pending[r.index];
            tracing::debug!(feed = p.feed.as_ref().map(|f| f.feed.name.as_str()), topic = %p.topic, partition = p.partition, offset = p.offset,
                reason = r.reason.as_str(), detail = %r.detail, "Dead-lettered a message.");
        }
        let mut backoff = Duration::from_millis(100);
        while !todo.is_empty() {
            let sends = todo.iter().map(|r| {
                let p = &pending[r.index];
                let partition = p.partition.to_string();
                let offset = p.offset.to_string();
                let mut headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "chainwatch.reason",
                        value: Some(r.reason.as_str()),
                    })
                    .insert(Header {
                        key: "chainwatch.error",
                        value: Some(r.detail.as_str()),
                    })
                    .insert(Header {
                        key: "chainwatch.topic",
                        value: Some(&*p.topic),
                    })
                    .insert(Header {
                        key: "chainwatch.partition",
                        value: Some(&partition),
                    })
                    .insert(Header {
                        key: "chainwatch.offset",
                        value: Some(&offset),
                    });
                if let Some(f) = &p.feed {
                    let row = f.row.to_string();
                    headers = headers
                        .insert(Header {
                            key: "chainwatch.feed",
                            value: Some(f.feed.name.as_str()),
                        })
                        .insert(Header {
                            key: "chainwatch.row",
                            value: Some(&row),
                        });
                    if let Some(line) = f.line {
                        let line = line.to_string();
                        headers = headers.insert(Header {
                            key: "chainwatch.line",
                            value: Some(&line),
                        });
                    }
                }
                let mut record: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&self.dead_letter_topic).headers(headers);
                if let Some(k) = &p.key {
                    record = record.key(k.as_slice());
                }
                if let Some(b) = payloads[r.index] {
                    record = record.payload(b);
                }
                self.producer.send(record, Duration::from_secs(10))
            });
            let results = join_all(sends).await;
            let mut failed = Vec::new();
            for (r, res) in todo.iter().zip(results) {
                match res {
                    Ok(_) => self.metrics.dead_letters.inc(),
                    Err((e, _)) => {
                        self.metrics.dead_letter_errors.inc();
                        tracing::warn!(error = %e, "Could not write to the dead-letter topic; retrying.");
                        failed.push(*r);
                    }
                }
            }
            todo = failed;
            if !todo.is_empty() {
                if *shutdown.borrow() {
                    tracing::error!(count = todo.len(), "Shutting down with dead letters unwritten; their offsets stay uncommitted.");
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl Ingest {
    /// Subscribe to the input topics and the topics of `feeds`.
    fn subscribe(&self, feeds: &FeedSet) {
        let mut topics: Vec<&str> = self.input_topics.iter().map(String::as_str).collect();
        topics.extend(feeds.topics());
        match self.consumer.subscribe(&topics) {
            Ok(()) => tracing::info!(topics = ?topics, "Subscribed."),
            Err(e) => tracing::error!(error = %e, "Could not subscribe to the feed topics."),
        }
    }
}

/// Map one message of a supplier feed: each record becomes its canonical events, a reject
/// for the dead-letter topic, or (no mapping applies) a skip.
#[allow(clippy::too_many_arguments)]
fn receive_feed(
    feed: &Arc<Feed>,
    payload: Option<&[u8]>,
    (topic, partition, offset): (Arc<str>, i32, i64),
    key: Option<Vec<u8>>,
    tally: &mut FeedTally,
    metrics: &Metrics,
    pending: &mut Vec<Pending>,
    buf: &mut Vec<u8>,
) {
    let records = payload.map(|p| feed.map_message(p)).unwrap_or_default();
    let mut push = |bytes: Option<&[u8]>, item: Item, row: usize, line: Option<u64>| {
        let payload = bytes.map(|b| {
            let start = buf.len();
            buf.extend_from_slice(b);
            start..buf.len()
        });
        pending.push(Pending {
            topic: topic.clone(),
            partition,
            offset,
            key: key.clone(),
            payload,
            item,
            feed: Some(FromFeed {
                feed: feed.clone(),
                row,
                line,
            }),
        });
    };
    if records.is_empty() {
        push(None, Item::Skip, 0, None);
        return;
    }
    let name = [feed.name.as_str()];
    for r in records {
        if r.row > 0 {
            tally.records += 1;
            metrics.feed_records.with_label_values(&name).inc();
        }
        match r.result {
            Ok(events) if events.is_empty() => push(None, Item::Skip, r.row, r.line),
            Ok(events) => {
                metrics
                    .feed_events
                    .with_label_values(&name)
                    .inc_by(events.len() as u64);
                for e in &events {
                    push(Some(e), Item::Event, r.row, r.line);
                }
            }
            Err(reject) => push(Some(&r.raw), Item::Rejected(reject), r.row, r.line),
        }
    }
}

/// Count the offsets a partition's message jumped over since the last one read of it.
fn count_skipped(next: &mut Vec<Expected>, at: &(Arc<str>, i32, i64), metrics: &Metrics) -> bool {
    let (topic, partition, offset) = at;
    match next
        .iter_mut()
        .find(|(t, p, _, _)| Arc::ptr_eq(t, topic) && p == partition)
    {
        Some((_, _, expected, rewound)) => {
            if *offset < *expected {
                // A partition handed back after a rebalance, or a restart, may resume before
                // what this process has read: not a skip, and not news. Read again, its
                // events would be judged late against the watermark they already moved.
                if !*rewound {
                    *rewound = true;
                    tracing::warn!(
                        topic = %topic,
                        partition,
                        offset,
                        expected = *expected,
                        "Partition resumed before what was read; dropping messages up to the expected offset (a topic deleted and created again under a checkpoint needs the checkpoint removed)."
                    );
                }
                metrics.reread.with_label_values(&[topic]).inc();
                return false;
            }
            *rewound = false;
            if *offset > *expected {
                metrics
                    .skipped_offsets
                    .with_label_values(&[topic])
                    .inc_by((*offset - *expected) as u64);
            }
            *expected = offset + 1;
        }
        None => {
            // The series exist from the first message on (at 0), so they can be alerted on.
            metrics.skipped_offsets.with_label_values(&[topic]);
            metrics.reread.with_label_values(&[topic]);
            next.push((topic.clone(), *partition, offset + 1, false));
        }
    }
    true
}

/// Per partition read: the next offset expected, and whether messages below it are being
/// dropped (logged once per rewind).
type Expected = (Arc<str>, i32, i64, bool);

fn intern(topics: &mut Vec<Arc<str>>, t: &str) -> Arc<str> {
    if let Some(x) = topics.iter().find(|x| &***x == t) {
        return x.clone();
    }
    let a: Arc<str> = Arc::from(t);
    topics.push(a.clone());
    a
}

fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Store the offsets of an applied batch; the auto-commit timer commits them.
pub fn store_offsets<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    offsets: &BTreeMap<(String, i32), i64>,
) {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
            tracing::warn!(topic, partition, error = %e, "Invalid offset to store.");
        }
    }
    if let Err(e) = consumer.store_offsets(&tpl) {
        // After a rebalance the partition may belong to another member: it will re-read.
        tracing::debug!(error = %e, "Could not store offsets.");
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
struct Refreshed {
    /// The watermark moved.
    moved: bool,
    /// Every assigned partition's high watermark was answered lately (`QueriedHighs`); false
    /// when the assignment could not be read.
    confirmed: bool,
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
mod alignment_tests {
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

#[cfg(test)]
mod skipped_tests {
    use super::*;

    #[test]
    fn offsets_jumped_over_are_counted_per_topic_and_rereads_dropped() {
        let metrics = Metrics::new();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut next = Vec::new();
        for at in [
            (a.clone(), 0, 10), // first read of a/0: nothing to compare with
            (a.clone(), 0, 11),
            (a.clone(), 1, 0),
            (a.clone(), 0, 15), // 12, 13, 14 never delivered
            (a.clone(), 0, 3),  // read again from an earlier offset: not a skip, dropped
            (a.clone(), 0, 4),
            (a.clone(), 0, 16), // where it left off: new again
            (b.clone(), 0, 7),
            (b.clone(), 0, 9), // 8
        ] {
            let fresh = count_skipped(&mut next, &at, &metrics);
            assert_eq!(fresh, !(at.0 == a && [3, 4].contains(&at.2)), "{at:?}");
        }
        let skipped = |t: &str| metrics.skipped_offsets.with_label_values(&[t]).get();
        assert_eq!(skipped("a"), 3);
        assert_eq!(skipped("b"), 1);
        assert_eq!(metrics.reread.with_label_values(&["a"]).get(), 2);
        assert_eq!(metrics.reread.with_label_values(&["b"]).get(), 0);
        let c: Arc<str> = Arc::from("c");
        count_skipped(&mut next, &(c, 0, 5), &metrics);
        let text = metrics.render(&[]);
        assert!(
            text.contains("chainwatch_ingest_skipped_offsets_total{topic=\"c\"} 0"),
            "{text}"
        );
    }
}
