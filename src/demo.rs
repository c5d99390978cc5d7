//! Demo feed: the simulator's events -> Kafka topics.
//!
//! In: a [`Simulator`] and a producer. Out: messages on the input topics (keyed as producers
//! should key them: by supplier, WMS events by site), either a finite history
//! (`chainwatch simulate --days D`) or a history followed by live simulated time running
//! `speed` times faster than the clock (the embedded default). The embedded demo also produces
//! the tier-2 suppliers' own feed files ([`Tier2Feeds`], topics [`TIER2_TOPICS`]) on the same
//! simulated clock; `chainwatch simulate` stays canonical-only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::config::{Config, KafkaConfig, Topics};
use crate::ingest::kafka;
use crate::pipeline::{self, PipelineError, Running};
use crate::sim::{FeedMessage, SimConfig, SimEvent, Simulator, Tier2Feeds, TIER2_TOPICS};

/// Why the embedded demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Feed(#[from] ProduceError),
    #[error("embedded producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error("simulator.history is out of range")]
    History,
    /// A tier-2 feed topic could not be created.
    #[error("creating feed topic {topic}: {message}")]
    FeedTopic { topic: String, message: String },
}

/// The embedded default (`make run`): an in-process broker, the simulator's history on its
/// topics (like a backfill, produced before the consumer starts), then the pipeline, with
/// simulated time running live at `simulator.speed` until shutdown.
pub async fn start_demo(
    mut config: Config,
) -> Result<
    (
        Running,
        tokio::task::JoinHandle<Result<usize, ProduceError>>,
    ),
    DemoError,
> {
    // Simulated time runs `speed` times faster than the wall clock: evaluate every 4 s of
    // wall time (every 4 simulated hours at 3600x) rather than every simulated minute, so the
    // 40-day history (240 steps, every one evaluated) is caught up quickly even on a debug
    // build.
    let step = Duration::from_secs_f64((config.simulator.speed * 4.0).clamp(1.0, 86_400.0));
    if config.evaluation.step < step {
        tracing::info!(step = ?step, "Demo: evaluation step set to 4 s of wall time at the simulation speed.");
        config.evaluation.step = step;
    }
    let cluster = pipeline::start_embedded(&config)?;
    create_feed_topics(&cluster, config.kafka.partitions)?;
    let brokers = cluster.bootstrap_servers();
    let feeder = Feeder {
        producer: kafka::producer_config(&config.kafka, &brokers).create()?,
        topics: config.kafka.topics.clone(),
    };
    let s = &config.simulator;
    let mut sim = Simulator::new(SimConfig {
        seed: s.seed,
        malformed_every: s.malformed_every,
        ..SimConfig::default()
    });
    let history = chrono::Duration::from_std(s.history).map_err(|_| DemoError::History)?;
    let history_end = sim.now() + history;
    let mut feeds = Tier2Feeds::new(sim.network(), s.seed, sim.now());
    let n = feeder
        .history_with_feeds(&mut sim, Some(&mut feeds), history_end)
        .await?;
    tracing::info!(events = n, until = %history_end, "Simulated history produced; simulated time now runs live.");
    // The supply network as a master-data system would publish it: keyed records on the
    // compacted network topic (one partition keeps suppliers before the links naming them).
    let _ = cluster.create_topic(&config.network.topic, 1, 1);
    let net = crate::network::Network::from_sim(sim.network());
    let records =
        crate::catalog::publish_network(&feeder.producer, &config.network.topic, &net).await?;
    tracing::info!(records, topic = %config.network.topic, "Simulated supply network published.");
    let speed = s.speed;
    let running = pipeline::start_on(config, Some(cluster)).await?;
    let shutdown = running.shutdown_signal();
    let live = tokio::spawn(async move {
        feeder
            .live_with_feeds(sim, Some(feeds), speed, shutdown)
            .await
    });
    Ok((running, live))
}

/// Creates the tier-2 feed topics ([`TIER2_TOPICS`]) on the embedded broker.
pub fn create_feed_topics(
    cluster: &MockCluster<'static, DefaultProducerContext>,
    partitions: i32,
) -> Result<(), DemoError> {
    for topic in TIER2_TOPICS {
        cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| DemoError::FeedTopic {
                topic: topic.to_string(),
                message: e.to_string(),
            })?;
    }
    Ok(())
}

/// Creates the tier-2 feed topics ([`TIER2_TOPICS`]) on a real broker when missing, like
/// [`kafka::ensure_topics`] does for the input topics.
pub async fn ensure_feed_topics(cfg: &KafkaConfig, brokers: &str) -> Result<(), DemoError> {
    kafka::create_topics(cfg, brokers, &TIER2_TOPICS, &[])
        .await
        .map_err(|e| DemoError::FeedTopic {
            topic: TIER2_TOPICS.join(","),
            message: e.to_string(),
        })
}

/// A message could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("producing to {topic}: {message}")]
pub struct ProduceError {
    pub topic: String,
    pub message: String,
}

/// Produces simulator events.
pub struct Feeder {
    pub producer: FutureProducer,
    pub topics: Topics,
}

impl Feeder {
    /// Produce events and wait until every one is acknowledged.
    pub async fn produce(&self, events: &[SimEvent]) -> Result<usize, ProduceError> {
        for chunk in events.chunks(5_000) {
            let sends = chunk.iter().map(|e| {
                let topic = self.topics.for_source(e.source);
                let record = FutureRecord::to(topic)
                    .key(e.key.as_bytes())
                    .payload(e.payload.as_slice())
                    .timestamp(e.event_time.timestamp_millis());
                self.producer.send(record, Duration::from_secs(30))
            });
            for (r, e) in join_all(sends).await.into_iter().zip(chunk) {
                if let Err((err, _)) = r {
                    return Err(ProduceError {
                        topic: self.topics.for_source(e.source).to_string(),
                        message: err.to_string(),
                    });
                }
            }
        }
        Ok(events.len())
    }

    /// Produce tier-2 feed files to their topics and wait until every one is acknowledged.
    pub async fn produce_feeds(&self, messages: &[FeedMessage]) -> Result<usize, ProduceError> {
        for chunk in messages.chunks(5_000) {
            let sends = chunk.iter().map(|m| {
                let record = FutureRecord::to(&m.topic)
                    .key(m.key.as_bytes())
                    .payload(m.payload.as_slice())
                    .timestamp(m.time.timestamp_millis());
                self.producer.send(record, Duration::from_secs(30))
            });
            for (r, m) in join_all(sends).await.into_iter().zip(chunk) {
                if let Err((err, _)) = r {
                    return Err(ProduceError {
                        topic: m.topic.clone(),
                        message: err.to_string(),
                    });
                }
            }
        }
        Ok(messages.len())
    }

    /// Produce everything up to `until` in simulated time, in chunks of one simulated day.
    pub async fn history(
        &self,
        sim: &mut Simulator,
        until: DateTime<Utc>,
    ) -> Result<usize, ProduceError> {
        self.history_with_feeds(sim, None, until).await
    }

    /// [`Feeder::history`], plus the tier-2 feed files of the same simulated days when `feeds`
    /// is given. Returns canonical events + feed messages produced.
    pub async fn history_with_feeds(
        &self,
        sim: &mut Simulator,
        mut feeds: Option<&mut Tier2Feeds>,
        until: DateTime<Utc>,
    ) -> Result<usize, ProduceError> {
        let mut total = 0;
        while sim.now() < until {
            let step = (sim.now() + chrono::Duration::days(1)).min(until);
            total += self.produce(&sim.run_until(step)).await?;
            if let Some(f) = feeds.as_deref_mut() {
                total += self.produce_feeds(&f.run_until(step)).await?;
            }
        }
        Ok(total)
    }

    /// Keep simulated time running `speed` times faster than the clock until shutdown.
    pub async fn live(
        &self,
        sim: Simulator,
        speed: f64,
        shutdown: watch::Receiver<bool>,
    ) -> Result<usize, ProduceError> {
        self.live_with_feeds(sim, None, speed, shutdown).await
    }

    /// [`Feeder::live`], plus the tier-2 feed files on the same simulated clock when `feeds` is
    /// given.
    pub async fn live_with_feeds(
        &self,
        mut sim: Simulator,
        mut feeds: Option<Tier2Feeds>,
        speed: f64,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<usize, ProduceError> {
        let started = tokio::time::Instant::now();
        let sim_start = sim.now();
        let mut total = 0;
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = ticker.tick() => {}
            }
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0 * speed;
            let target = sim_start + chrono::Duration::milliseconds(elapsed_ms as i64);
            let events = sim.run_until(target);
            total += self.produce(&events).await?;
            if let Some(f) = feeds.as_mut() {
                total += self.produce_feeds(&f.run_until(target)).await?;
            }
        }
        Ok(total)
    }
}
