//! Recorded events for a replay: JSON lines or a Kafka topic -> one Arrow batch in event-time order.
//!
//! In: canonical JSON events (docs/events.md), one per line of a file or one per Kafka message.
//! Out: an [`EventLog`], every valid event decoded by the pipeline's own
//! [`EventDecoder`](crate::ingest::decode::EventDecoder) into one [`RecordBatch`] sorted by
//! `event_time` (stable: ties keep input order), plus a [`LineReject`] for each record that is
//! not a valid event. Rejects are reported, never fatal: a replay of real history should not
//! stop at one bad record, exactly like the live pipeline dead-letters it.
//!
//! Reading a topic uses a plain consumer with partitions assigned by hand, from each
//! partition's low watermark to the high watermark seen at start: no consumer group is joined
//! and no offset is committed, so a backtest never disturbs the service's group.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::events::{col, event_schema};
use crate::ingest::decode::{EventDecoder, RejectReason};
use crate::ingest::kafka::Closing;

/// Messages decoded per call of the decoder (the pipeline's default micro-batch size).
const CHUNK: usize = 4096;
/// Largest accepted record, as `[batch] max_message_bytes` defaults to.
const MAX_BYTES: usize = 1 << 20;

/// Why events could not be read at all (bad records are [`LineReject`]s, not errors).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The events file could not be opened or read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Kafka client could not be created or the topic could not be read.
    #[error("kafka: {0}")]
    Kafka(String),
    /// Decoded batches could not be joined or sorted (a bug, not bad input).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// A record that is not a valid event.
#[derive(Debug, Clone, PartialEq)]
pub struct LineReject {
    /// Where it was: `file:line` or `topic/partition@offset`.
    pub at: String,
    /// The decoder's reason code (as in `chainwatch_ingest_rejected_total`).
    pub reason: RejectReason,
    /// The decoder's detail.
    pub detail: String,
}

/// Valid events in event-time order.
#[derive(Debug, Clone)]
pub struct EventLog {
    /// Every valid event in [`event_schema`], sorted by `event_time`; `None` when there is none.
    pub batch: Option<RecordBatch>,
    /// Records read (valid or not).
    pub records: usize,
    /// The records that were not valid events.
    pub rejects: Vec<LineReject>,
}

impl EventLog {
    /// Decodes payloads; `at(i)` names payload `i` in reject messages.
    pub fn decode(
        payloads: &[Vec<u8>],
        at: impl Fn(usize) -> String,
    ) -> Result<EventLog, SourceError> {
        let decoder = EventDecoder::new(MAX_BYTES);
        let mut batches = Vec::new();
        let mut rejects = Vec::new();
        for (c, chunk) in payloads.chunks(CHUNK).enumerate() {
            let refs: Vec<Option<&[u8]>> = chunk.iter().map(|p| Some(p.as_slice())).collect();
            let decoded = decoder.decode(&refs);
            batches.extend(decoded.batch);
            rejects.extend(
                decoded
                    .rejects
                    .into_iter()
                    .map(|r| (c * CHUNK + r.index, r)),
            );
        }
        // The decoder reports rejects in no particular order: report them in input order.
        rejects.sort_by_key(|(i, _)| *i);
        let rejects = rejects
            .into_iter()
            .map(|(i, r)| LineReject {
                at: at(i),
                reason: r.reason,
                detail: r.detail,
            })
            .collect();
        let batch = match batches.len() {
            0 => None,
            _ => Some(sort_by_event_time(&concat_batches(
                &event_schema(),
                &batches,
            )?)?),
        };
        Ok(EventLog {
            batch,
            records: payloads.len(),
            rejects,
        })
    }

    /// Reads a JSON-lines file: one event per non-blank line.
    pub fn read_jsonl(path: &Path) -> Result<EventLog, SourceError> {
        let read = |source| SourceError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut payloads = Vec::new();
        let mut line_numbers = Vec::new();
        for (n, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let mut line = line.map_err(read)?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            payloads.push(line);
            line_numbers.push(n + 1);
        }
        let name = path.display().to_string();
        EventLog::decode(&payloads, |i| {
            format!("{name}:{}", line_numbers.get(i).copied().unwrap_or(0))
        })
    }

    /// Number of valid events.
    pub fn len(&self) -> usize {
        self.batch.as_ref().map_or(0, RecordBatch::num_rows)
    }

    /// True when there is no valid event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Event times (ms), ascending; empty when there is no event.
    pub fn times(&self) -> &[i64] {
        match &self.batch {
            Some(b) => b
                .column(col::EVENT_TIME)
                .as_primitive::<TimestampMillisecondType>()
                .values(),
            None => &[],
        }
    }
}

/// Stable sort of a decoded batch by `event_time` (the decoder guarantees it is non-null).
fn sort_by_event_time(batch: &RecordBatch) -> Result<RecordBatch, SourceError> {
    let times = batch
        .column(col::EVENT_TIME)
        .as_primitive::<TimestampMillisecondType>();
    if times.values().is_sorted() {
        return Ok(batch.clone());
    }
    let mut order: Vec<u32> = (0..u32::try_from(times.len()).unwrap_or(u32::MAX)).collect();
    order.sort_by_key(|&i| times.value(i as usize));
    Ok(take_record_batch(batch, &UInt32Array::from(order))?)
}

/// Where to read a topic from.
#[derive(Debug, Clone)]
pub struct TopicSource {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topics to read, each from its beginning to its end at start.
    pub topics: Vec<String>,
    /// librdkafka options passed as is (TLS, SASL), applied last.
    pub options: Vec<(String, String)>,
    /// Give up when no message arrives for this long while some partition is not at its end.
    pub idle_timeout: Duration,
}

/// Reads every message of the topics, from the start to the end seen when reading starts.
/// Blocking: call it from `spawn_blocking` in async code.
pub fn read_topics(src: &TopicSource) -> Result<EventLog, SourceError> {
    let kafka = |e: rdkafka::error::KafkaError| SourceError::Kafka(e.to_string());
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &src.brokers)
        .set("broker.address.family", "v4")
        .set("client.id", "chainwatch-backtest")
        // Partitions are assigned by hand and nothing is committed: no group is joined.
        .set("group.id", "chainwatch-backtest-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "10");
    for (k, v) in &src.options {
        config.set(k, v);
    }
    // Closed off this thread: with the broker gone mid-read, a close would never return.
    let consumer: Closing<BaseConsumer> = Closing::new(config.create().map_err(kafka)?);
    let timeout = Duration::from_secs(10);
    let mut assignment = TopicPartitionList::new();
    // (topic, partition) -> high watermark still to reach.
    let mut ends: std::collections::BTreeMap<(String, i32), i64> = Default::default();
    for topic in &src.topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(kafka)?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(SourceError::Kafka(format!("topic {topic} not found")));
        };
        if let Some(e) = t.error() {
            return Err(SourceError::Kafka(format!(
                "topic {topic}: {}",
                rdkafka::types::RDKafkaErrorCode::from(e)
            )));
        }
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .map_err(kafka)?;
            if high > low {
                assignment
                    .add_partition_offset(topic, p.id(), Offset::Offset(low))
                    .map_err(kafka)?;
                ends.insert((topic.clone(), p.id()), high);
            }
        }
    }
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut places: Vec<String> = Vec::new();
    if !ends.is_empty() {
        consumer.assign(&assignment).map_err(kafka)?;
    }
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let key = (m.topic().to_string(), m.partition());
                let Some(&end) = ends.get(&key) else { continue };
                if m.offset() >= end {
                    ends.remove(&key);
                    continue;
                }
                payloads.push(m.payload().map(<[u8]>::to_vec).unwrap_or_default());
                places.push(format!("{}/{}@{}", m.topic(), m.partition(), m.offset()));
                if m.offset() + 1 >= end {
                    ends.remove(&key);
                }
            }
            Some(Err(e)) => return Err(kafka(e)),
            None => {
                if last_progress.elapsed() > src.idle_timeout {
                    let left: Vec<String> = ends.keys().map(|(t, p)| format!("{t}/{p}")).collect();
                    return Err(SourceError::Kafka(format!(
                        "no message for {:?} before the end of {}",
                        src.idle_timeout,
                        left.join(", ")
                    )));
                }
            }
        }
    }
    EventLog::decode(&payloads, |i| places.get(i).cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, t: &str, on_hand: f64) -> Vec<u8> {
        format!(
            r#"{{"event_id":"{id}","kind":"inventory_position","event_time":"{t}","source":"t","site":"S","part":"P","on_hand":{on_hand},"daily_demand":1}}"#
        )
        .into_bytes()
    }

    #[test]
    fn decodes_sorts_stably_and_reports_rejects_by_place() {
        let payloads = vec![
            event("b", "2026-01-02T00:00:00Z", 2.0),
            b"{not json".to_vec(),
            event("a", "2026-01-01T00:00:00Z", 1.0),
            event("c", "2026-01-02T00:00:00Z", 3.0),
            event("d", "2026-01-01T00:00:00Z", -4.0),
        ];
        let log = EventLog::decode(&payloads, |i| format!("f:{}", i + 1)).unwrap();
        assert_eq!((log.records, log.len()), (5, 3));
        let ids = log.batch.as_ref().unwrap().column(col::EVENT_ID);
        let ids: Vec<&str> = ids.as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(log.times().is_sorted());
        let rejects: Vec<(&str, &str)> = log
            .rejects
            .iter()
            .map(|r| (r.at.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            rejects,
            [("f:2", "invalid_json"), ("f:5", "negative_quantity")]
        );
    }

    #[test]
    fn jsonl_skips_blank_lines_and_names_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        let mut text = String::from_utf8(event("a", "2026-01-01T00:00:00Z", 1.0)).unwrap();
        text.push_str("\n\n   \r\n{\"kind\":\"nope\"}\r\n");
        std::fs::write(&path, text).unwrap();
        let log = EventLog::read_jsonl(&path).unwrap();
        assert_eq!((log.records, log.len()), (2, 1));
        assert_eq!(log.rejects.len(), 1);
        assert!(
            log.rejects[0].at.ends_with("e.jsonl:4"),
            "{}",
            log.rejects[0].at
        );
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let err = EventLog::read_jsonl(Path::new("/nonexistent/e.jsonl")).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/e.jsonl: "),
            "{err}"
        );
    }
}
