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
//! detects idle partitions and pauses partitions too far ahead (watermark alignment). A
//! micro-batch that starts a partition's clock aligns at once (a fetched backlog is read fast
//! between two ticks).

mod alignment;
pub mod decode;
mod feed;
pub mod kafka;
mod offsets;
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
use feed::receive_feed;
use offsets::ReadPositions;
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
        let mut ticker = tokio::time::interval(self.batch.linger.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut feeds = self.feeds.borrow_and_update().clone();
        let mut tallies: BTreeMap<String, FeedTally> = BTreeMap::new();
        let mut feeds_open = true;
        // A jump over offsets is counted; a message read before (or in the restored
        // checkpoint) is dropped.
        let mut read = ReadPositions::resume_from(&self.consumed);
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
                        let topic = read.topic(m.topic());
                        let bytes = m.payload().map_or(0, <[u8]>::len);
                        self.metrics.messages.with_label_values(&[&topic]).inc();
                        self.metrics.bytes.with_label_values(&[&topic]).inc_by(bytes as u64);
                        let key = m.key().map(<[u8]>::to_vec);
                        let at = (topic.clone(), m.partition(), m.offset());
                        if !read.is_new(&at, &self.metrics) {
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
        self.metrics.decode_declined.inc_by(decoded.declined as u64);
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
        let started = self.watermark.started();
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
        let refreshed = self.refresh_assignment();
        // A partition's first events: while another still waits for its own, those with a
        // clock are paused ([`Watermark::ahead`]). Left to the next tick, a fetched backlog was
        // read on in between: the backlog test failed under load with 733 ERP events buffered
        // before logistics' first one. Not after every batch: aligned that often, chainwatch
        // drained 25-37 K events/s in the e2e bench against 46-60 K (more pauses, and each
        // drops what librdkafka had fetched).
        if self.watermark.started() > started {
            self.align(refreshed.confirmed);
        }
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
        match filter_record_batch(&batch, &BooleanArray::from(keep.clone())) {
            Ok(b) => Some(b).filter(|b| b.num_rows() > 0),
            Err(e) => {
                // A bug, not bad input (logged): the on-time rows are dead-lettered, not lost.
                tracing::error!(error = %e, "Could not filter late events out of a batch.");
                let kept = rows.iter().zip(&keep).filter(|(_, k)| **k);
                rejects
                    .extend(kept.map(|(&i, _)| decode::internal(i, "could not drop late events")));
                None
            }
        }
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
