//! Ingest: Kafka messages -> validated Arrow micro-batches; bad records -> dead-letter topic.
//!
//! In: messages from the input topics (one consumer in the group). Out: [`Batch`]es on a
//! bounded channel (backpressure reaches Kafka: when state falls behind, we stop polling),
//! each with the offsets to store once it is applied. Rejected messages are written to the
//! dead-letter topic, with their reason, before their batch is passed on, so an offset is
//! never committed for a message that is neither applied nor dead-lettered.
//!
//! The loop is one `select!` over receive, a linger timer and shutdown: a micro-batch is
//! flushed at `batch.max_rows` messages or `batch.linger` after its first message.

pub mod decode;
pub mod kafka;
pub mod watermark;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use futures::future::join_all;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::BatchConfig;
use crate::events::col;
use crate::export::metrics::Metrics;
use decode::{EventDecoder, Reject, RejectReason};
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
}

/// One received message, its payload kept in the batch buffer.
struct Pending {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<std::ops::Range<usize>>,
}

/// The ingest stage.
pub struct Ingest {
    pub consumer: Arc<StreamConsumer>,
    pub producer: FutureProducer,
    pub dead_letter_topic: String,
    pub batch: BatchConfig,
    pub watermark: Watermark,
    pub metrics: Metrics,
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
        let mut first_at: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                msg = self.consumer.recv() => match msg {
                    Ok(m) => {
                        self.metrics.connected.set(1);
                        let topic = intern(&mut topics, m.topic());
                        let payload = m.payload().map(|p| {
                            let start = buf.len();
                            buf.extend_from_slice(p);
                            start..buf.len()
                        });
                        let bytes = payload.as_ref().map_or(0, |r| r.len());
                        self.metrics.messages.with_label_values(&[&topic]).inc();
                        self.metrics.bytes.with_label_values(&[&topic]).inc_by(bytes as u64);
                        pending.push(Pending {
                            topic,
                            partition: m.partition(),
                            offset: m.offset(),
                            key: m.key().map(<[u8]>::to_vec),
                            payload,
                        });
                        first_at.get_or_insert_with(Instant::now);
                        if pending.len() >= self.batch.max_rows {
                            if !self.flush(&decoder, &mut pending, &mut buf, &out, &shutdown).await {
                                break;
                            }
                            first_at = None;
                        }
                    }
                    Err(e) => {
                        self.metrics.connected.set(0);
                        tracing::warn!(error = %e, "Kafka consumer error; retrying.");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                _ = ticker.tick() => {
                    if first_at.is_some_and(|t| t.elapsed() >= self.batch.linger) {
                        if !self.flush(&decoder, &mut pending, &mut buf, &out, &shutdown).await {
                            break;
                        }
                        first_at = None;
                    } else if pending.is_empty() && self.refresh_assignment() {
                        // Idle partitions caught up: the watermark moves without new events.
                        let idle = Batch {
                            events: None,
                            offsets: BTreeMap::new(),
                            watermark: self.watermark.current(),
                        };
                        if out.send(idle).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        if !pending.is_empty() {
            self.flush(&decoder, &mut pending, &mut buf, &out, &shutdown)
                .await;
        }
        tracing::info!("Ingest stopped.");
    }

    /// Decode, dead-letter the rejects, pass the batch on. False when the receiver is gone.
    async fn flush(
        &mut self,
        decoder: &EventDecoder,
        pending: &mut Vec<Pending>,
        buf: &mut Vec<u8>,
        out: &mpsc::Sender<Batch>,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        if pending.is_empty() {
            return true;
        }
        self.metrics.batch_rows.observe(pending.len() as f64);
        let payloads: Vec<Option<&[u8]>> = pending
            .iter()
            .map(|p| p.payload.clone().map(|r| &buf[r]))
            .collect();
        let mut decoded = decoder.decode(&payloads);
        let events = self.drop_late(
            decoded.batch.take(),
            &decoded.rows,
            pending,
            &mut decoded.rejects,
        );
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
        self.refresh_assignment();
        pending.clear();
        buf.clear();
        let batch = Batch {
            events,
            offsets,
            watermark: self.watermark.current(),
        };
        out.send(batch).await.is_ok()
    }

    /// Reject rows older than the watermark; admit the others in message order, then let
    /// caught-up partitions stop holding the watermark back.
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
            let p = &pending[rows[i]];
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
            } else {
                self.watermark.observe(&p.topic, p.partition, *t);
            }
            keep.push(!late);
        }
        if keep.iter().all(|k| *k) {
            return Some(batch);
        }
        filter_record_batch(&batch, &BooleanArray::from(keep))
            .ok()
            .filter(|b| b.num_rows() > 0)
    }

    /// Tell the watermark which partitions are assigned and which are caught up (everything
    /// up to the high watermark consumed). Returns true when the watermark moved.
    fn refresh_assignment(&mut self) -> bool {
        let Ok(positions) = self.consumer.position() else {
            return false;
        };
        let consumer = &self.consumer;
        let assigned: Vec<(Arc<str>, i32, bool)> = positions
            .elements()
            .iter()
            .map(|e| {
                let high = cached_high_watermark(consumer, e.topic(), e.partition());
                let caught_up = match (e.offset().to_raw(), high) {
                    (_, None) => false,
                    (Some(pos), Some(high)) if pos >= 0 => pos >= high,
                    (_, Some(high)) => high == 0,
                };
                (Arc::from(e.topic()), e.partition(), caught_up)
            })
            .collect();
        self.watermark.set_assignment(assigned)
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
            tracing::debug!(topic = %p.topic, partition = p.partition, offset = p.offset,
                reason = r.reason.as_str(), detail = %r.detail, "Dead-lettered a message.");
        }
        let mut backoff = Duration::from_millis(100);
        while !todo.is_empty() {
            let sends = todo.iter().map(|r| {
                let p = &pending[r.index];
                let partition = p.partition.to_string();
                let offset = p.offset.to_string();
                let headers = OwnedHeaders::new()
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
pub fn store_offsets(consumer: &StreamConsumer, offsets: &BTreeMap<(String, i32), i64>) {
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
fn cached_high_watermark(consumer: &StreamConsumer, topic: &str, partition: i32) -> Option<i64> {
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
