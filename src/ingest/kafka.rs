//! Kafka clients: consumer, producer and admin configuration, topic creation.
//!
//! In: [`KafkaConfig`]. Out: configured rdkafka clients. Options under `[kafka.options]` are
//! passed through to librdkafka unchanged (TLS, SASL, tuning), after chainwatch's defaults, so
//! a user can override any of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
#[derive(Debug, Default, Clone)]
pub struct ResumeContext {
    positions: Arc<Mutex<HashMap<(String, i32), i64>>>,
}

impl ResumeContext {
    /// A context resuming from these next offsets.
    pub fn new(positions: impl IntoIterator<Item = ((String, i32), i64)>) -> Self {
        ResumeContext {
            positions: Arc::new(Mutex::new(positions.into_iter().collect())),
        }
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

impl ClientContext for ResumeContext {}

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
        .set("session.timeout.ms", "10000")
        .set("partition.assignment.strategy", "range")
        .set("topic.metadata.refresh.interval.ms", "10000");
    with_options(c, cfg)
}

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
}
