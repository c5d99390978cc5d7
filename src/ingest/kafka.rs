//! Kafka clients: consumer, producer and admin configuration, topic creation.
//!
//! In: [`KafkaConfig`]. Out: configured rdkafka clients. Options under `[kafka.options]` are
//! passed through to librdkafka unchanged (TLS, SASL, tuning), after chainwatch's defaults, so
//! a user can override any of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

/// Kafka client errors that stop start-up.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// librdkafka rejected the configuration.
    #[error("kafka client configuration: {0}")]
    Client(#[source] KafkaError),
    /// A topic could not be created.
    #[error("creating topic {topic}: {message}")]
    CreateTopic { topic: String, message: String },
}

/// The ingest consumer: a stream consumer whose rebalances resume each partition where this
/// process has it (see [`ResumeContext`]), closed off the runtime (see [`Closing`]).
pub type IngestConsumer = Closing<StreamConsumer<ResumeContext>>;

/// A Kafka consumer that is closed on a thread of its own when dropped.
///
/// Dropping a consumer that has a `group.id` closes it, and rdkafka polls for that close with
/// no time limit: with the broker unreachable (or the embedded broker already destroyed) it
/// never returns. Dropped on a runtime worker, that would block the worker, and the runtime's
/// own shutdown, which drops every task left behind; the process could not exit. Here the
/// close runs on a detached thread: [`Closing::close`] waits for it for a bounded time, a
/// plain drop does not wait at all.
pub struct Closing<C: Send + 'static>(Option<C>);

impl<C: Send + 'static> Closing<C> {
    pub fn new(consumer: C) -> Self {
        Closing(Some(consumer))
    }

    /// Close the consumer (leave the group) and wait up to `within` for it. False when the
    /// close did not finish in time: it goes on in the background.
    pub async fn close(mut self, within: Duration) -> bool {
        let Some(consumer) = self.0.take() else {
            return true;
        };
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        close_off_thread(consumer, Some(done_tx));
        matches!(tokio::time::timeout(within, done_rx).await, Ok(Ok(())))
    }
}

fn close_off_thread<C: Send + 'static>(
    consumer: C,
    done: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let spawned = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || {
            drop(consumer);
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
    if let Err(e) = spawned {
        // The closure, consumer included, was dropped here: the close ran on this thread.
        tracing::warn!(error = %e, "No thread to close a Kafka consumer on.");
    }
}

impl<C: Send + 'static> std::ops::Deref for Closing<C> {
    type Target = C;
    fn deref(&self) -> &C {
        // Only `close` and `drop` take the consumer, and both consume `self`.
        self.0.as_ref().expect("consumer present until closed")
    }
}

impl<C: Send + 'static> Drop for Closing<C> {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            close_off_thread(consumer, None);
        }
    }
}

/// Rebalance handling of the ingest consumer: a partition assigned to this process is read
/// from the offset its state holds (the restored checkpoint's, then the next one after what
/// ingest has read), not from the group's committed offset, which follows the checkpoints
/// and may lag behind the state. Partitions it never had start from the committed offset.
///
/// It also keeps librdkafka's own view of the broker connections ([`BrokerHealth`]), from the
/// statistics the consumer emits every `statistics.interval.ms`.
#[derive(Debug, Default, Clone)]
pub struct ResumeContext {
    positions: Arc<Mutex<HashMap<(String, i32), i64>>>,
    health: BrokerHealth,
    highs: QueriedHighs,
    counts: PartitionCounts,
}

impl ResumeContext {
    /// A context resuming from these next offsets.
    pub fn new(positions: impl IntoIterator<Item = ((String, i32), i64)>) -> Self {
        ResumeContext {
            positions: Arc::new(Mutex::new(positions.into_iter().collect())),
            health: BrokerHealth::default(),
            highs: QueriedHighs::default(),
            counts: PartitionCounts::default(),
        }
    }

    /// The high watermarks the lag query has seen.
    pub fn highs(&self) -> &QueriedHighs {
        &self.highs
    }

    /// How many partitions each subscribed topic has, as the brokers last said.
    pub fn partition_counts(&self) -> &PartitionCounts {
        &self.counts
    }

    /// The broker connections as the consumer last reported them.
    pub fn health(&self) -> &BrokerHealth {
        &self.health
    }

    /// Note the next offset to read of partitions ingest has read.
    pub fn remember(&self, positions: impl IntoIterator<Item = ((String, i32), i64)>) {
        if let Ok(mut p) = self.positions.lock() {
            for (k, v) in positions {
                let e = p.entry(k).or_insert(v);
                *e = (*e).max(v);
            }
        }
    }

    fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions
            .lock()
            .ok()?
            .get(&(topic.to_string(), partition))
            .copied()
    }
}

impl ClientContext for ResumeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.health.connection_lost();
        }
        // What librdkafka's default context does with the error.
        tracing::error!(target: "rdkafka::client", "librdkafka: {error}: {reason}");
    }

    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<Stats>(statistics) {
            Ok(stats) => self.health.update(&stats),
            Err(e) => tracing::debug!(error = %e, "Unreadable librdkafka statistics."),
        }
    }
}

/// The partitions of each subscribed topic, from the brokers' metadata (asked by the lag
/// monitor): the watermark waits for every one, assigned to this instance or not
/// ([`Watermark::expect`](super::Watermark::expect)).
#[derive(Debug, Default, Clone)]
pub struct PartitionCounts(Arc<Mutex<HashMap<String, i32>>>);

impl PartitionCounts {
    /// The brokers said `topic` has `n` partitions (0: it does not exist yet).
    pub fn note(&self, topic: &str, n: i32) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(topic.to_string(), n);
        }
    }

    /// Every partition of `topics` (in topic and partition order, each topic once) as far as
    /// the brokers have said, and whether they have said for every topic: a topic not counted
    /// yet adds none.
    pub fn partitions<T: AsRef<str>>(&self, topics: &[T]) -> (Vec<(Arc<str>, i32)>, bool) {
        let mut topics: Vec<&str> = topics.iter().map(AsRef::as_ref).collect();
        topics.sort_unstable();
        topics.dedup();
        let Ok(counts) = self.0.lock() else {
            return (Vec::new(), false);
        };
        let mut all = true;
        let mut partitions = Vec::new();
        for t in topics {
            match counts.get(t) {
                Some(&n) => {
                    let topic: Arc<str> = Arc::from(t);
                    partitions.extend((0..n).map(|p| (topic.clone(), p)));
                }
                None => all = false,
            }
        }
        (partitions, all)
    }
}

/// Whether the consumer is connected to the brokers, as librdkafka sees it: a broker is up
/// when its connection is (state `UP` in librdkafka's statistics), and a partition can be
/// told caught up only while its leader is up.
///
/// This is not inferred from queries of chainwatch's own: a busy broker answers a lag query
/// late now and then, and taking that for an outage made the ingest stage flap between
/// trusting and distrusting every partition's high watermark (the soak stalled so). A closed
/// connection shows here within a statistics interval. A broker that hangs with its
/// connection open stays `UP` until librdkafka's request timeouts close it.
#[derive(Debug, Default, Clone)]
pub struct BrokerHealth(Arc<Mutex<HealthView>>);

#[derive(Debug, Default)]
struct HealthView {
    /// Statistics have arrived at least once.
    known: bool,
    /// Node id -> connection up, of the brokers learned from metadata.
    brokers: HashMap<i32, bool>,
    /// (topic, partition) -> leader's node id.
    leaders: HashMap<(String, i32), i32>,
    /// librdkafka reported a lost broker connection after the last statistics: no leader
    /// counts as up until the next statistics say which connections are.
    lost_since_stats: bool,
}

impl BrokerHealth {
    /// Is the connection to at least one broker up? None before the first statistics (within
    /// a second of the start).
    pub fn connected(&self) -> Option<bool> {
        let v = self.0.lock().ok()?;
        v.known.then(|| v.brokers.values().any(|up| *up))
    }

    /// Can the partition's leader be taken as reachable? False when the statistics say its
    /// connection is not up, or do not know the partition. True before the first statistics:
    /// then the only high watermarks known come from fetch responses that just arrived.
    pub fn leader_up(&self, topic: &str, partition: i32) -> bool {
        self.0.lock().is_ok_and(|v| {
            if v.lost_since_stats {
                return false;
            }
            !v.known
                || v.leaders
                    .get(&(topic.to_string(), partition))
                    .and_then(|leader| v.brokers.get(leader))
                    .copied()
                    .unwrap_or(false)
        })
    }

    /// A broker connection was lost (librdkafka's error callback, at once). The statistics
    /// say so only at their next interval (1 s): until then a partition whose last records
    /// reached the broker just before it went down could look caught up, turn idle (the test
    /// idle timeout is 200 ms) and let the watermark pass records it has not read, which are
    /// late when the broker is back (seen in the broker-outage test, 1 event of 600).
    pub fn connection_lost(&self) {
        if let Ok(mut v) = self.0.lock() {
            v.lost_since_stats = true;
        }
    }

    fn update(&self, stats: &Stats) {
        let Ok(mut v) = self.0.lock() else {
            return;
        };
        v.known = true;
        v.lost_since_stats = false;
        // Bootstrap and internal entries have no node id (-1): only brokers from metadata.
        v.brokers = stats
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0)
            .map(|b| (b.nodeid, b.state == "UP"))
            .collect();
        v.leaders = stats
            .topics
            .iter()
            .flat_map(|(topic, t)| {
                t.partitions
                    .values()
                    // -1 is librdkafka's "unassigned" pseudo-partition.
                    .filter(|p| p.partition >= 0 && p.leader >= 0)
                    .map(move |p| ((topic.clone(), p.partition), p.leader))
            })
            .collect();
    }
}

/// The largest high watermark the lag query (`ListOffsets`, once a second) has seen, per
/// partition, and when the broker last answered it: a lower bound of where the partition ends.
/// librdkafka's cached high watermark comes from fetch responses only, so while a busy broker
/// holds a fetch for seconds a partition that has read everything fetched looks caught up
/// though the broker holds more; past the idle timeout it would turn idle and its events would
/// come late (822 of them did in a soak). Neither answer is ever ahead of the broker, so the
/// larger is the better.
///
/// A broker that stalls with its connections open answers no query either: a partition is
/// *confirmed* only while its last answer is recent ([`QueriedHighs::confirmed`]), and only a
/// confirmed partition can be caught up, so none turns idle on a stale view (11,962 events were
/// judged late in a soak when tansu stalled and the last view said "caught up").
#[derive(Debug, Clone)]
pub struct QueriedHighs(Arc<Mutex<Highs>>);

#[derive(Debug)]
struct Highs {
    partitions: HashMap<(String, i32), (i64, Instant)>,
    /// When the query last answered any partition; at first, when this was made (start-up is
    /// given one window before the first answer).
    last: Instant,
}

impl Default for QueriedHighs {
    fn default() -> Self {
        QueriedHighs::new(Instant::now())
    }
}

impl QueriedHighs {
    /// How recent a partition's answer must be for it to count as confirmed: a healthy lag
    /// query answers every second; it is well under the default idle timeout (5 s), so a
    /// stalled broker stops any partition from turning idle.
    pub const CONFIRM_WITHIN: Duration = Duration::from_secs(3);

    /// None answered yet, made at `now`.
    pub fn new(now: Instant) -> Self {
        QueriedHighs(Arc::new(Mutex::new(Highs {
            partitions: HashMap::new(),
            last: now,
        })))
    }

    /// Note a high watermark the query answered at `at`.
    pub fn note(&self, topic: &str, partition: i32, high: i64, at: Instant) {
        if high < 0 {
            return;
        }
        if let Ok(mut m) = self.0.lock() {
            m.last = m.last.max(at);
            let e = m
                .partitions
                .entry((topic.to_string(), partition))
                .or_insert((high, at));
            *e = (e.0.max(high), e.1.max(at));
        }
    }

    /// The largest high watermark seen of the partition.
    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0
            .lock()
            .ok()?
            .partitions
            .get(&(topic.to_string(), partition))
            .map(|(h, _)| *h)
    }

    /// How long ago the broker last answered the partition's high watermark (None: never).
    pub fn age(&self, topic: &str, partition: i32, now: Instant) -> Option<Duration> {
        self.0
            .lock()
            .ok()?
            .partitions
            .get(&(topic.to_string(), partition))
            .map(|(_, at)| now.saturating_duration_since(*at))
    }

    /// How long since the query last answered any partition (at first: since this was made).
    pub fn since_last_answer(&self, now: Instant) -> Duration {
        self.0
            .lock()
            .map(|m| now.saturating_duration_since(m.last))
            .unwrap_or(Duration::MAX)
    }

    /// Whether the broker answered the partition's high watermark within
    /// [`Self::CONFIRM_WITHIN`] of `now`. A partition never answered (just assigned) borrows
    /// the query's last answer for any partition: a rebalance does not hold everything back
    /// for a second, a stalled broker still does.
    pub fn confirmed(&self, topic: &str, partition: i32, now: Instant) -> bool {
        let Ok(m) = self.0.lock() else {
            return false;
        };
        let at = m
            .partitions
            .get(&(topic.to_string(), partition))
            .map_or(m.last, |(_, at)| *at);
        now.saturating_duration_since(at) <= Self::CONFIRM_WITHIN
    }
}

/// The part of librdkafka's statistics JSON (STATISTICS.md) chainwatch reads.
#[derive(Debug, serde::Deserialize)]
struct Stats {
    #[serde(default)]
    brokers: HashMap<String, StatsBroker>,
    #[serde(default)]
    topics: HashMap<String, StatsTopic>,
}

#[derive(Debug, serde::Deserialize)]
struct StatsBroker {
    nodeid: i32,
    state: String,
}

#[derive(Debug, serde::Deserialize)]
struct StatsTopic {
    #[serde(default)]
    partitions: HashMap<String, StatsPartition>,
}

#[derive(Debug, serde::Deserialize)]
struct StatsPartition {
    partition: i32,
    leader: i32,
}

impl ConsumerContext for ResumeContext {
    fn rebalance(
        &self,
        base: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let known: Vec<(String, i32, i64)> = tpl
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        let at = self.position(e.topic(), e.partition())?;
                        Some((e.topic().to_string(), e.partition(), at))
                    })
                    .collect();
                for (topic, partition, at) in known {
                    if let Err(e) = tpl.set_partition_offset(&topic, partition, Offset::Offset(at))
                    {
                        tracing::warn!(topic, partition, error = %e, "Could not set a resume offset.");
                    }
                }
                tracing::info!(partitions = tpl.count(), "Partitions assigned.");
                if let Err(e) = base.assign(tpl) {
                    tracing::error!(error = %e, "Could not take the assigned partitions.");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = tpl.count(), "Partitions revoked.");
                if let Err(e) = base.unassign() {
                    tracing::warn!(error = %e, "Could not release the revoked partitions.");
                }
            }
            other => {
                tracing::warn!(error = ?other, "Rebalance error.");
                let _ = base.unassign();
            }
        }
    }
}

fn base(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        // tansu and small clusters advertise IPv4 loopback; don't try ::1 first.
        .set("broker.address.family", "v4")
        .set("client.id", "chainwatch");
    c
}

fn with_options(mut c: ClientConfig, cfg: &KafkaConfig) -> ClientConfig {
    for (k, v) in &cfg.options {
        c.set(k, v);
    }
    c
}

/// Consumer settings: offsets are stored by chainwatch only once what they cover is safe (in a
/// checkpoint, or read when checkpoints are off), and committed by the auto-commit timer (the
/// at-least-once pattern of rust-rdkafka's examples). Range assignment keeps partition `n`
/// of every input topic on one member (topics keyed alike stay together when scaled out).
pub fn consumer_config(cfg: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut c = base(brokers);
    c.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Brokers such as tansu hold every fetch for fetch.wait.max.ms: keep it short.
        .set("fetch.wait.max.ms", "10")
        // Kafka's default since 3.0 (KIP-735): with 10 s a broker too busy to answer
        // heartbeats in time (tansu in the soak) evicted the consumer from its group.
        .set("session.timeout.ms", "45000")
        .set("partition.assignment.strategy", "range")
        .set("topic.metadata.refresh.interval.ms", "10000");
    with_options(c, cfg)
}

/// The ingest consumer's settings: [`consumer_config`] with the statistics its
/// [`ResumeContext`] reads the broker connections' state from ([`BrokerHealth`]); without them
/// it would never count as connected. A user's own interval is kept.
pub fn ingest_consumer_config(cfg: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut c = consumer_config(cfg, brokers);
    if c.get("statistics.interval.ms")
        .is_none_or(|v| v.trim() == "0")
    {
        c.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    }
    c
}

/// How often the consumer reports its statistics, broker connections included (ms).
const STATISTICS_INTERVAL_MS: &str = "1000";

/// Producer settings for the dead-letter topic and the simulator: idempotent, all acks.
pub fn producer_config(cfg: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut c = base(brokers);
    c.set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    with_options(c, cfg)
}

/// Create the input and dead-letter topics when missing (existing ones are left alone).
pub async fn ensure_topics(cfg: &KafkaConfig, brokers: &str) -> Result<(), KafkaSetupError> {
    let names: Vec<&str> = cfg
        .topics
        .all()
        .into_iter()
        .chain([cfg.dead_letter_topic.as_str()])
        .collect();
    create_topics(cfg, brokers, &names, &[]).await
}

/// Create the named topics when missing, with `cfg.partitions` partitions and the given
/// topic configs (e.g. `cleanup.policy=compact`); existing ones are left alone.
pub async fn create_topics(
    cfg: &KafkaConfig,
    brokers: &str,
    names: &[&str],
    configs: &[(&str, &str)],
) -> Result<(), KafkaSetupError> {
    if names.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = with_options(base(brokers), cfg)
        .create()
        .map_err(KafkaSetupError::Client)?;
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|t| {
            configs.iter().fold(
                NewTopic::new(
                    t,
                    cfg.partitions,
                    TopicReplication::Fixed(cfg.replication_factor),
                ),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(topics.iter(), &opts)
        .await
        .map_err(|e| KafkaSetupError::CreateTopic {
            topic: names.join(","),
            message: e.to_string(),
        })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaSetupError::CreateTopic {
                    topic,
                    message: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;

    /// A consumer in a group whose broker is gone: a plain rdkafka drop would poll for the
    /// close forever. `close` gives up after its bound and a drop returns at once.
    #[tokio::test]
    async fn a_consumer_whose_broker_is_gone_closes_without_blocking() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 1, 1).expect("topic");
        let brokers = cluster.bootstrap_servers();
        let producer: rdkafka::producer::FutureProducer =
            base(&brokers).create().expect("producer");
        producer
            .send(
                rdkafka::producer::FutureRecord::<(), _>::to("t").payload("x"),
                Duration::from_secs(5),
            )
            .await
            .expect("produced");
        let cfg = crate::config::Config::default().kafka;
        let consumer = || {
            let c: StreamConsumer<ResumeContext> = consumer_config(&cfg, &brokers)
                .create_with_context(ResumeContext::default())
                .expect("consumer");
            c.subscribe(&["t"]).expect("subscribe");
            Closing::new(c)
        };
        let (a, b) = (consumer(), consumer());
        // Both join the group; whichever has the partition reads the record and stores its
        // offset, which a close would commit.
        for c in [&a, &b] {
            if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(3000), c.recv()).await {
                c.store_offset_from_message(&m).expect("store");
            }
        }
        drop(cluster);

        let started = std::time::Instant::now();
        let closed = a.close(Duration::from_millis(300)).await;
        drop(b);
        let took = started.elapsed();
        // Generous bound: the point is that neither waits on the missing broker.
        assert!(
            took < Duration::from_secs(5),
            "close and drop took {took:?} (closed: {closed})"
        );
    }

    /// The broker connections as librdkafka's statistics give them: a broker that goes down
    /// makes the consumer disconnected and its partitions' leader unreachable; back up, both
    /// come back. The consumer must be polled for its statistics to arrive.
    #[tokio::test]
    async fn the_broker_connections_follow_librdkafkas_statistics() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 2, 1).expect("topic");
        let brokers = cluster.bootstrap_servers();
        let cfg = crate::config::Config::default().kafka;
        let c: StreamConsumer<ResumeContext> = ingest_consumer_config(&cfg, &brokers)
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "200")
            .create_with_context(ResumeContext::default())
            .expect("consumer");
        c.subscribe(&["t"]).expect("subscribe");
        let health = c.context().health().clone();
        assert_eq!(health.connected(), None, "known before any statistics");
        let poll_until = |want: bool| {
            let (c, health) = (&c, health.clone());
            async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                while (health.connected(), health.leader_up("t", 1)) != (Some(want), want) {
                    // Before the first statistics a leader counts as up (see `leader_up`).
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "never connected={want}"
                    );
                    let _ = tokio::time::timeout(Duration::from_millis(100), c.recv()).await;
                }
            }
        };
        poll_until(true).await;
        assert!(!health.leader_up("t", 7), "a partition that does not exist");
        cluster.broker_down(1).expect("broker down");
        poll_until(false).await;
        cluster.broker_up(1).expect("broker up");
        poll_until(true).await;
    }

    /// Every partition of the counted topics, each topic once and in order; a topic not
    /// counted makes the list incomplete, a topic the brokers do not know (0) does not.
    #[test]
    fn partitions_lists_counted_topics_and_says_whether_all_were() {
        let counts = PartitionCounts::default();
        counts.note("b", 2);
        counts.note("a", 1);
        counts.note("gone", 0);
        let (parts, all) = counts.partitions(&["b", "a", "b", "gone"]);
        let parts: Vec<(&str, i32)> = parts.iter().map(|(t, p)| (&**t, *p)).collect();
        assert_eq!(parts, [("a", 0), ("b", 0), ("b", 1)]);
        assert!(all);
        let (parts, all) = counts.partitions(&["a", "new"]);
        assert_eq!(parts.len(), 1);
        assert!(!all, "\"new\" is not counted yet");
        let (parts, all) = counts.partitions::<&str>(&[]);
        assert!(parts.is_empty() && all);
    }

    /// A lost connection (the error callback) takes every leader down at once, until the next
    /// statistics say which connections are up.
    #[test]
    fn a_lost_connection_holds_leaders_down_until_the_next_statistics() {
        let stats = |state: &str| -> Stats {
            serde_json::from_value(serde_json::json!({
                "brokers": {"127.0.0.1:9092/1": {"nodeid": 1, "state": state}},
                "topics": {"t": {"partitions": {"0": {"partition": 0, "leader": 1}}}}
            }))
            .expect("statistics")
        };
        let health = BrokerHealth::default();
        health.update(&stats("UP"));
        assert!(health.leader_up("t", 0));
        health.connection_lost();
        assert!(!health.leader_up("t", 0), "down at once");
        assert_eq!(
            health.connected(),
            Some(true),
            "readiness waits for the statistics"
        );
        health.update(&stats("UP"));
        assert!(health.leader_up("t", 0), "the statistics say it is back");
        health.connection_lost();
        health.update(&stats("DOWN"));
        assert!(!health.leader_up("t", 0));
        assert_eq!(health.connected(), Some(false));
    }

    /// The queried high watermarks only go forward: an answer from before a later one (the
    /// query races nothing, but a restarted broker may answer low) does not take it back.
    #[test]
    fn queried_high_watermarks_keep_the_largest() {
        let t0 = Instant::now();
        let highs = QueriedHighs::new(t0);
        assert_eq!(highs.get("t", 0), None);
        highs.note("t", 0, 10, t0);
        highs.note("t", 0, 7, t0);
        highs.note("t", 0, -1, t0);
        highs.note("t", 1, 3, t0);
        assert_eq!(highs.get("t", 0), Some(10));
        assert_eq!(highs.get("t", 1), Some(3));
        // The order `refresh_assignment` relies on: a known high beats an unknown one.
        assert_eq!(None.max(highs.get("t", 0)), Some(10));
        assert_eq!(Some(12).max(highs.get("t", 0)), Some(12));
    }

    /// A partition is confirmed while its last answer is recent; one never answered borrows
    /// the last answer for any partition (at first, start-up); a stall ends both.
    #[test]
    fn a_partition_is_confirmed_only_while_the_broker_answers() {
        let t0 = Instant::now();
        let w = QueriedHighs::CONFIRM_WITHIN;
        let s = Duration::from_secs(1);
        let highs = QueriedHighs::new(t0);
        // Start-up: nothing answered yet, one window of grace.
        assert!(highs.confirmed("t", 0, t0 + w));
        assert!(!highs.confirmed("t", 0, t0 + w + s));
        // Answers for partition 0 only: 1 was never answered and borrows them.
        highs.note("t", 0, 5, t0 + 2 * w);
        assert!(highs.confirmed("t", 0, t0 + 3 * w));
        assert!(highs.confirmed("t", 1, t0 + 3 * w));
        assert_eq!(highs.age("t", 0, t0 + 3 * w), Some(w));
        assert_eq!(highs.age("t", 1, t0 + 3 * w), None);
        // The broker stalls: no answer for longer than the window.
        assert!(!highs.confirmed("t", 0, t0 + 3 * w + s));
        assert!(!highs.confirmed("t", 1, t0 + 3 * w + s));
        // Partition 1 answered once, then only 0: 1 goes stale on its own.
        highs.note("t", 1, 9, t0 + 4 * w);
        highs.note("t", 0, 6, t0 + 5 * w);
        assert!(highs.confirmed("t", 0, t0 + 5 * w + s));
        assert!(!highs.confirmed("t", 1, t0 + 5 * w + s));
        // An answer from before a later one does not take the time back.
        highs.note("t", 0, 6, t0);
        assert_eq!(highs.age("t", 0, t0 + 5 * w), Some(Duration::ZERO));
        assert_eq!(highs.since_last_answer(t0 + 5 * w + s), s);
    }

    #[test]
    fn statistics_are_read_for_brokers_from_metadata_and_partition_leaders() {
        let health = BrokerHealth::default();
        let stats = serde_json::json!({
            "name": "chainwatch#consumer-1", "type": "consumer", "ts": 1,
            "brokers": {
                "127.0.0.1:9092/bootstrap": {"name": "127.0.0.1:9092/bootstrap", "nodeid": -1,
                    "state": "UP", "source": "configured"},
                "127.0.0.1:9092/1": {"name": "127.0.0.1:9092/1", "nodeid": 1, "state": "UP",
                    "source": "learned"},
                "127.0.0.1:9093/2": {"name": "127.0.0.1:9093/2", "nodeid": 2,
                    "state": "TRY_CONNECT", "source": "learned"}
            },
            "topics": {"t": {"topic": "t", "partitions": {
                "0": {"partition": 0, "leader": 1},
                "1": {"partition": 1, "leader": 2},
                "-1": {"partition": -1, "leader": -1}
            }}}
        });
        let ctx = ResumeContext::default();
        ctx.stats_raw(stats.to_string().as_bytes());
        let health_of_ctx = ctx.health();
        assert_eq!(health_of_ctx.connected(), Some(true));
        assert!(health_of_ctx.leader_up("t", 0));
        assert!(
            !health_of_ctx.leader_up("t", 1),
            "its leader is reconnecting"
        );
        assert!(!health_of_ctx.leader_up("u", 0), "unknown topic");
        // Only the bootstrap connection up: not connected (it serves no partition).
        let only_bootstrap = serde_json::json!({"brokers": {"b/bootstrap":
            {"nodeid": -1, "state": "UP"}}, "topics": {}});
        assert_eq!(health.connected(), None);
        assert!(health.leader_up("t", 0), "before the first statistics");
        health.update(&serde_json::from_value(only_bootstrap).expect("stats"));
        assert_eq!(health.connected(), Some(false));
        // Unreadable statistics leave the last view in place.
        ctx.stats_raw(b"{not json");
        assert!(ctx.health().leader_up("t", 0));
    }
}
