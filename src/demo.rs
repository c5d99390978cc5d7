//! Demo feed: the simulator's events -> Kafka topics.
//!
//! In: a [`Simulator`] and a producer. Out: messages on the input topics (keyed as producers
//! should key them: by supplier, WMS events by site), either a finite history
//! (`chainwatch simulate --days D`) or a history followed by live simulated time running
//! `speed` times faster than the clock (the embedded default).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::config::{Config, Topics};
use crate::ingest::kafka;
use crate::pipeline::{self, PipelineError, Running};
use crate::sim::{SimConfig, SimEvent, Simulator};

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
}

/// The embedded default (`make run`): an in-process broker, the simulator's history on its
/// topics (like a backfill, produced before the consumer starts), then the pipeline, with
/// simulated time running live at `simulator.speed` until shutdown.
pub async fn start_demo(
    mut config: Config,
) -> Result<(Running, tokio::task::JoinHandle<Result<usize, ProduceError>>), DemoError> {
    // Simulated time runs `speed` times faster than the wall clock, so the allowed lateness
    // must cover the wall-clock skew between partitions (a busy machine easily lags a few
    // seconds): at least 30 s of wall time, i.e. 30 h of event time at 3600x.
    let skew = Duration::from_secs_f64((config.simulator.speed * 30.0).clamp(0.0, 1e9));
    if config.allowed_lateness < skew {
        tracing::info!(
            allowed_lateness = ?skew,
            "Demo: allowed lateness raised to 30 s of wall time at the simulation speed."
        );
        config.allowed_lateness = skew;
    }
    let cluster = pipeline::start_embedded(&config)?;
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
    let n = feeder.history(&mut sim, history_end).await?;
    tracing::info!(events = n, until = %history_end, "Simulated history produced; simulated time now runs live.");
    let speed = s.speed;
    let running = pipeline::start_on(config, Some(cluster)).await?;
    let shutdown = running.shutdown_signal();
    let live = tokio::spawn(async move { feeder.live(sim, speed, shutdown).await });
    Ok((running, live))
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

    /// Produce everything up to `until` in simulated time, in chunks of one simulated day.
    pub async fn history(
        &self,
        sim: &mut Simulator,
        until: DateTime<Utc>,
    ) -> Result<usize, ProduceError> {
        let mut total = 0;
        while sim.now() < until {
            let step = (sim.now() + chrono::Duration::days(1)).min(until);
            total += self.produce(&sim.run_until(step)).await?;
        }
        Ok(total)
    }

    /// Keep simulated time running `speed` times faster than the clock until shutdown.
    pub async fn live(
        &self,
        mut sim: Simulator,
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
        }
        Ok(total)
    }
}
