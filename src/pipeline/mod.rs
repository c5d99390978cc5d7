//! The running service: spawns the stages, wires them with bounded channels, shuts down
//! cleanly.
//!
//! In: a [`Config`]. Out: a [`Running`] pipeline serving HTTP, until [`Running::shutdown`].
//!
//! ```text
//! Kafka --> ingest (decode, watermark, dead-letter) --Batch--> state stage (event buffer,
//!                                                   apply each completed evaluation step)
//!                                                     | a snapshot per step, none skipped
//!                                                     v
//!            /metrics, /api <-- Shared <-- evaluator (indicator SQL, alert rules) --> checkpoint
//!                                                     ^ new RuleBook (only a fully valid one)
//!        file change, SIGHUP, POST /-/reload --> reload task (load_rulebook)
//!   feeds/, network/ files, network topic --> catalog task --> ingest (feed topics),
//!                                                           evaluator (network tables)
//! ```
//! Channels are bounded, so a slow stage slows the consumer instead of growing memory. The
//! state stage runs on a thread of its own (its apply and snapshot are CPU work that would hold
//! a runtime worker); the other stages are tasks on the runtime. Every
//! `checkpoint.interval` ingest cuts a checkpoint after a batch; it travels with the data like a
//! Flink barrier, the state stage and then the evaluator add their share, and the evaluator
//! writes it and commits its offsets (`stage`, `evaluator`, `crate::state::checkpoint`). On
//! start the newest checkpoint is restored and each partition resumes from its offsets.
//! A reloaded rule book is swapped in between two evaluations (see `crate::reload`); the
//! evaluator then re-evaluates the last snapshot, so new rules show without new data.

mod evaluator;
pub use evaluator::{tick, Tick};
mod monitor;
mod stage;

pub(crate) use evaluator::samples_for;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::catalog::{self, CatalogTask};
use crate::config::Config;
use crate::export::metrics::Metrics;
use crate::export::{http, RulesView, Shared};
use crate::indicators::{Indicators, Limits};
use crate::ingest::{kafka, Batch, Ingest, Watermark};
use crate::reload::{self, Fingerprint, NewBook, ReloadOutcome, ReloadTask, Reloader, Trigger};
use crate::rules::RuleSet;
use crate::state::checkpoint::{CheckpointError, CheckpointStore};
use crate::state::{EventBuffer, State};
use evaluator::{Checkpoints, EvalOptions, Evaluator, Restored};
use stage::{StateStage, ToEvaluator};

/// Errors that stop the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Rule or indicator files are invalid; every problem is listed, one per line.
    #[error("invalid rules:\n{0}")]
    Rules(String),
    /// Feed definitions or network files are invalid.
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    /// Kafka clients could not be set up.
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaSetupError),
    /// The embedded broker could not start.
    #[error("embedded broker: {0}")]
    Embedded(String),
    /// The checkpoint directory could not be used or holds another group's checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The HTTP port could not be bound.
    #[error("http listen {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Indicators and rules loaded from one rules directory, checked against each other.
pub struct RuleBook {
    pub indicators: Indicators,
    pub rules: RuleSet,
}

/// Every problem of a rules directory; `Display` writes one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", errors.join("\n"))]
pub struct RuleBookErrors {
    /// One entry per problem: `file:line:col: ...` for rules, `file: ...` for indicator SQL.
    pub errors: Vec<String>,
}

/// Load `dir/indicators/*.sql` (and `views/*.sql` there) and `dir/*.yaml` with the default
/// query limits; see [`load_rulebook_with`].
pub async fn load_rulebook(dir: &Path) -> Result<RuleBook, RuleBookErrors> {
    load_rulebook_with(dir, Limits::default()).await
}

/// Load `dir/indicators/*.sql` (and `views/*.sql` there) and `dir/*.yaml`; plan every SQL
/// (under `limits`) and check every rule.
pub async fn load_rulebook_with(dir: &Path, limits: Limits) -> Result<RuleBook, RuleBookErrors> {
    let indicators = Indicators::load_dir_with(&dir.join("indicators"), limits).await;
    let rules = crate::rules::load_dir(dir);
    let mut errors = Vec::new();
    if let Err(e) = &indicators {
        errors.extend(e.iter().map(|e| e.to_string()));
    }
    if let Err(e) = &rules {
        errors.extend(e.errors.iter().map(|e| e.to_string()));
    }
    let (Ok(indicators), Ok(rules)) = (indicators, rules) else {
        return Err(RuleBookErrors { errors });
    };
    if let Err(e) = crate::rules::check_against(&rules, &indicators.schemas()) {
        return Err(RuleBookErrors {
            errors: e.errors.iter().map(|e| e.to_string()).collect(),
        });
    }
    Ok(RuleBook { indicators, rules })
}

/// Publish the rule book the evaluator runs with the load that produced it: `/api/rules`,
/// `/api/status` and the `chainwatch_rules_*` / `*_loaded` metrics.
fn publish_rules(shared: &Shared, book: &RuleBook, outcome: Arc<ReloadOutcome>) {
    let m = &shared.metrics;
    m.rules_loaded.set(book.rules.rules().count() as i64);
    m.indicators_loaded.set(book.indicators.defs().len() as i64);
    for def in book.indicators.defs() {
        // A bounded label set: export each at 0 so increase() works from the start.
        m.indicator_errors.with_label_values(&[&def.name]);
        m.capped_rows.with_label_values(&[def.name.as_str()]);
        for limit in ["time", "memory"] {
            m.indicator_limits
                .with_label_values(&[def.name.as_str(), limit]);
        }
    }
    for view in book.indicators.views() {
        for reason in ["time", "memory", "error"] {
            m.view_errors
                .with_label_values(&[view.name.as_str(), reason]);
        }
    }
    let is_reload = outcome.trigger != Trigger::Start;
    if is_reload {
        reload::count(m, &outcome);
    } else {
        m.reload_success_time.set(outcome.at_ms as f64 / 1000.0);
    }
    let indicators = book.indicators.defs().iter().map(|d| d.name.clone());
    shared.update_rules(|v| RulesView {
        rules: Arc::new(book.rules.clone()),
        indicators: indicators.collect(),
        views: book
            .indicators
            .views()
            .iter()
            .map(|v| v.name.clone())
            .collect(),
        since: outcome.at_ms,
        last_reload: outcome.clone(),
        successes: v.successes + u64::from(is_reload),
        failures: v.failures,
    });
}

/// How long a graceful shutdown may take.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A started pipeline.
pub struct Running {
    /// The bound HTTP address (useful with port 0).
    pub http_addr: std::net::SocketAddr,
    /// The bootstrap servers in use (the embedded broker's when embedded).
    pub brokers: String,
    pub shared: Arc<Shared>,
    /// Reload the rules as SIGHUP, a file change or `POST /-/reload` would.
    pub reloader: Reloader,
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    /// Closed (the group left) once the tasks sharing it have stopped.
    consumer: Option<Arc<kafka::IngestConsumer>>,
    /// Keeps the embedded broker alive for as long as the pipeline runs.
    embedded: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl Running {
    /// A receiver that turns true on shutdown (for tasks started beside the pipeline).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stop every stage: ingest flushes, state applies and stores offsets, consumer commits.
    /// A task still running after [`SHUTDOWN_TIMEOUT`] is named in the log and left behind
    /// (the process then exits without it), so a stop is bounded as orchestrators expect.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_TIMEOUT;
        for (name, t) in std::mem::take(&mut self.tasks) {
            tracing::debug!(task = name, "Waiting for the task to stop.");
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                tracing::error!(task = name, timeout = ?SHUTDOWN_TIMEOUT, "Task did not stop in time; left behind.");
            }
        }
        // Leave the group now rather than when the process ends, so that the partitions move
        // to another member at once; bounded, as the broker may be gone.
        if let Some(consumer) = self.consumer.take() {
            match Arc::try_unwrap(consumer) {
                Ok(c) => {
                    if !c.close(CLOSE_TIMEOUT).await {
                        tracing::warn!(timeout = ?CLOSE_TIMEOUT, "The consumer did not leave its group in time (broker unreachable?); closing it in the background.");
                        self.keep_embedded_broker();
                    }
                }
                // Held by a task left behind: it closes when that task goes.
                Err(_) => self.keep_embedded_broker(),
            }
        }
    }

    /// Leak the embedded broker instead of destroying it: a consumer still closing against it
    /// would otherwise wait for it forever.
    fn keep_embedded_broker(&mut self) {
        if let Some(cluster) = self.embedded.take() {
            std::mem::forget(cluster);
        }
    }
}

/// How long a stopping pipeline waits for its consumer to leave the group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Dropped without [`Running::shutdown`] (a panicking test, a failed start-up in a caller):
/// stop the tasks, and keep an embedded broker alive for the clients they still hold.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        let running = self.tasks.iter().any(|(_, t)| !t.is_finished());
        if running || self.consumer.is_some() {
            self.keep_embedded_broker();
        }
    }
}

/// Start the embedded broker: librdkafka's in-process mock cluster with the topics created.
pub fn start_embedded(
    config: &Config,
) -> Result<MockCluster<'static, DefaultProducerContext>, PipelineError> {
    let cluster = MockCluster::new(1).map_err(|e| PipelineError::Embedded(e.to_string()))?;
    let k = &config.kafka;
    for t in k
        .topics
        .all()
        .into_iter()
        .chain([k.dead_letter_topic.as_str()])
    {
        cluster
            .create_topic(t, k.partitions, 1)
            .map_err(|e| PipelineError::Embedded(e.to_string()))?;
    }
    Ok(cluster)
}

/// Start the pipeline. With no brokers configured, starts the embedded broker.
pub async fn start(config: Config) -> Result<Running, PipelineError> {
    let embedded = match &config.kafka.brokers {
        Some(_) => None,
        None => Some(start_embedded(&config)?),
    };
    start_on(config, embedded).await
}

/// Start the pipeline on a given embedded broker (e.g. one already fed with a history), or on
/// the configured brokers when `embedded` is `None`.
pub async fn start_on(
    config: Config,
    embedded: Option<MockCluster<'static, DefaultProducerContext>>,
) -> Result<Running, PipelineError> {
    let rules_dir = config.evaluation.rules.clone();
    // Before loading: a change made during the load is then seen by the watcher.
    let files = {
        let d = rules_dir.clone();
        tokio::task::spawn_blocking(move || Fingerprint::of(&d))
            .await
            .unwrap_or_default()
    };
    let started = std::time::Instant::now();
    let book = load_rulebook_with(&rules_dir, config.evaluation.limits)
        .await
        .map_err(|e| PipelineError::Rules(e.to_string()))?;
    let loaded = ReloadOutcome::loaded(Trigger::Start, &book, started.elapsed());
    let brokers = match (&embedded, &config.kafka.brokers) {
        (Some(c), _) => c.bootstrap_servers(),
        (None, Some(b)) => b.clone(),
        (None, None) => {
            return Err(PipelineError::Embedded(
                "no brokers and no embedded broker".into(),
            ))
        }
    };
    let sources = {
        let c = config.clone();
        tokio::task::spawn_blocking(move || catalog::load_sources(&c))
            .await
            .map_err(|e| PipelineError::Embedded(format!("loading master data: {e}")))??
    };
    let feed_topics: Vec<String> = sources
        .feeds
        .topics()
        .into_iter()
        .map(str::to_string)
        .collect();
    let k = &config.kafka;
    if let Some(cluster) = &embedded {
        for t in feed_topics.iter().chain([&config.network.topic]) {
            // Already there when the demo created it: nothing to do.
            let _ = cluster.create_topic(t, k.partitions, 1);
        }
    } else if k.create_topics {
        kafka::ensure_topics(k, &brokers).await?;
        let names: Vec<&str> = feed_topics.iter().map(String::as_str).collect();
        kafka::create_topics(k, &brokers, &names, &[]).await?;
        let compact = [("cleanup.policy", "compact")];
        if let Err(e) =
            kafka::create_topics(k, &brokers, &[config.network.topic.as_str()], &compact).await
        {
            tracing::warn!(error = %e, "Could not create the network topic.");
        }
    }
    let metrics = Metrics::new();
    let shared = Shared::new(
        metrics.clone(),
        if embedded.is_some() {
            format!("embedded ({brokers})")
        } else {
            brokers.clone()
        },
    );
    publish_rules(&shared, &book, Arc::new(loaded));
    let first = Arc::new(sources.build());
    catalog::publish_network_metrics(&metrics, &first.network);
    metrics.feeds_loaded.set(first.feeds.len() as i64);
    if let Ok(mut c) = shared.catalog.write() {
        *c = first.clone();
    }
    let (feeds_tx, feeds_rx) = watch::channel(first.feeds.clone());
    let (catalog_tx, catalog_rx) = watch::channel(first.clone());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Installed before the port opens, so a SIGHUP sent once the service answers is handled.
    #[cfg(unix)]
    let hup = reload::listen_sighup();
    let (reloader, reload_requests) = Reloader::channel();
    // Capacity 1: the reload task waits until the evaluator has taken the book.
    let (book_tx, book_rx) = mpsc::channel::<NewBook>(1);

    // Checkpoints: off on the embedded broker, whose topics die with the process.
    let store = if config.checkpoint.enabled && embedded.is_none() {
        let dir = config.checkpoint.dir.clone();
        let group = config.kafka.group_id.clone();
        Some(
            tokio::task::spawn_blocking(move || CheckpointStore::open(&dir, &group))
                .await
                .map_err(|e| PipelineError::Embedded(format!("checkpoint store: {e}")))??,
        )
    } else {
        None
    };
    let latest = match &store {
        Some(store) => {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.latest())
                .await
                .map_err(|e| PipelineError::Embedded(format!("reading checkpoint: {e}")))??
        }
        None => None,
    };
    let step_ms = i64::try_from(config.evaluation.step.as_millis()).unwrap_or(i64::MAX);
    let mut watermark = Watermark::new(config.allowed_lateness, config.idle_timeout);
    // Until the lag monitor has asked the brokers how many partitions each input topic has.
    watermark.wait_for_partitions();
    let mut state = State::new(config.retention);
    let mut buffer = EventBuffer::new(step_ms);
    let mut restored = Restored::default();
    let mut resume = Vec::new();
    if let Some((path, cp)) = latest {
        buffer = cp.buffer(step_ms)?;
        watermark.restore(&cp.watermark, std::time::Instant::now());
        resume = cp
            .offsets
            .iter()
            .map(|(t, p, o)| ((t.clone(), *p), *o))
            .collect();
        tracing::info!(
            checkpoint = %path.display(),
            written_at = %crate::rules::template::rfc3339(cp.written_at),
            applied = cp.state.applied(),
            buffered = buffer.len(),
            watermark = %crate::rules::template::rfc3339(cp.watermark.current()),
            "Restored from checkpoint."
        );
        state = cp.state;
        state.share_names();
        state.set_retention(config.retention);
        restored = Restored {
            engine: Some(cp.engine),
            tracker: cp.tracker,
            history: cp.history,
            evaluations: cp.evaluations,
        };
    }
    let restored_watermark = restored.engine.is_some().then(|| watermark.current());
    let consumer: Arc<kafka::IngestConsumer> = Arc::new(kafka::Closing::new(
        kafka::ingest_consumer_config(&config.kafka, &brokers)
            .create_with_context(kafka::ResumeContext::new(resume.iter().cloned()))
            .map_err(kafka::KafkaSetupError::Client)?,
    ));
    let input_topics: Vec<String> = config
        .kafka
        .topics
        .all()
        .iter()
        .map(|t| t.to_string())
        .collect();
    let subscribed: Vec<&str> = input_topics
        .iter()
        .chain(&feed_topics)
        .map(String::as_str)
        .collect();
    consumer
        .subscribe(&subscribed)
        .map_err(kafka::KafkaSetupError::Client)?;
    let producer: FutureProducer = kafka::producer_config(&config.kafka, &brokers)
        .create()
        .map_err(kafka::KafkaSetupError::Client)?;

    let (http_addr, http_task) = http::serve(
        &config.http,
        shared.clone(),
        reloader.clone(),
        shutdown_rx.clone(),
    )
    .await
    .map_err(|source| PipelineError::Listen {
        addr: config.http.listen,
        source,
    })?;

    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(4);
    let (eval_tx, eval_rx) = mpsc::channel::<ToEvaluator>(1);
    let checkpoints = store.map(|store| Checkpoints {
        store,
        consumer: consumer.clone(),
        group_id: config.kafka.group_id.clone(),
    });
    let ingest = Ingest {
        consumer: consumer.clone(),
        producer,
        dead_letter_topic: config.kafka.dead_letter_topic.clone(),
        batch: config.batch.clone(),
        watermark,
        metrics: metrics.clone(),
        input_topics,
        feeds: feeds_rx,
        consumed: resume.into_iter().collect(),
        cuts: crate::ingest::Cuts::new(checkpoints.as_ref().map(|_| config.checkpoint.interval)),
        max_drift: config.max_drift,
        max_buffered_events: config.max_buffered_events,
        paused: Default::default(),
    };
    let stage = StateStage {
        state,
        buffer,
        consumer: consumer.clone(),
        shared: shared.clone(),
        store_on_read: checkpoints.is_none(),
        restored: restored_watermark,
    };
    let evaluator = Evaluator {
        book,
        shared: shared.clone(),
        options: EvalOptions {
            max_exported_rows: config.evaluation.max_exported_rows,
            exposure_every: config.network.exposure_every,
            horizon_days: config.network.horizon.as_secs_f64() / 86_400.0,
            history: config.evaluation.history,
        },
        checkpoints,
        restored,
    };
    let mut tasks = vec![("http", http_task)];
    tasks.push((
        "ingest",
        tokio::spawn(ingest.run(batch_tx, shutdown_rx.clone())),
    ));
    // Applying and snapshotting is CPU work: on a thread of its own, off the runtime.
    tasks.push((
        "state",
        tokio::task::spawn_blocking(move || stage.run(batch_rx, eval_tx)),
    ));
    let no_checkpoints = !config.checkpoint.enabled || embedded.is_some();
    let final_commit = consumer.clone();
    tasks.push(("evaluator", tokio::spawn(async move {
        evaluator.run(eval_rx, book_rx, catalog_rx).await;
        if no_checkpoints {
            // Offsets were stored as read; commit them before the consumer goes.
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = final_commit.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
                    tracing::debug!(error = %e, "Final commit failed (nothing stored or no assignment).");
                }
            })
            .await;
        }
    })));
    tasks.push((
        "catalog",
        tokio::spawn(
            CatalogTask {
                config: config.clone(),
                brokers: brokers.clone(),
                sources,
                catalog: catalog_tx,
                feeds: feeds_tx,
                metrics: metrics.clone(),
                create_topics: embedded.is_none() && config.kafka.create_topics,
            }
            .run(shutdown_rx.clone()),
        ),
    ));
    tasks.push((
        "reload",
        tokio::spawn(
            ReloadTask {
                dir: rules_dir.clone(),
                limits: config.evaluation.limits,
                requests: reload_requests,
                books: book_tx,
                shared: shared.clone(),
            }
            .run(shutdown_rx.clone()),
        ),
    ));
    if config.evaluation.watch_rules {
        tasks.push((
            "watch-rules",
            tokio::spawn(reload::watch_files(
                rules_dir,
                files,
                reloader.clone(),
                shutdown_rx.clone(),
            )),
        ));
    }
    #[cfg(unix)]
    if let Some(hup) = hup {
        tasks.push((
            "sighup",
            tokio::spawn(reload::on_sighup(
                hup,
                reloader.clone(),
                shutdown_rx.clone(),
            )),
        ));
    }
    tasks.push((
        "monitor",
        tokio::spawn(monitor::monitor(
            consumer.clone(),
            shared.clone(),
            config.kafka.group_id.clone(),
            shutdown_rx.clone(),
        )),
    ));
    Ok(Running {
        http_addr,
        brokers,
        shared,
        reloader,
        shutdown: shutdown_tx,
        tasks,
        consumer: Some(consumer),
        embedded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipeline dropped without `shutdown` (as when a caller panics) while it is consuming
    /// from the embedded broker: the runtime that ran it must still shut down. It used to
    /// hang for ever: the broker was destroyed first, and the consumer's close, run when the
    /// runtime dropped the ingest task, waited for it.
    #[test]
    fn a_pipeline_dropped_while_consuming_lets_its_runtime_end() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut config = Config::default();
                config.http.listen = "127.0.0.1:0".parse().expect("addr");
                config.evaluation.rules =
                    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
                config.evaluation.watch_rules = false;
                let topic = config.kafka.topics.erp.clone();
                let kafka_config = config.kafka.clone();
                let running = start(config).await.expect("pipeline starts");
                let producer: FutureProducer = kafka::producer_config(&kafka_config, &running.brokers)
                    .create()
                    .expect("producer");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                let mut n = 0;
                // Consuming for real: joined, and events applied.
                while tokio::time::Instant::now() < deadline
                    && running.shared.state.read().map(|s| s.watermark).unwrap_or(0) == 0
                {
                    n += 1;
                    let hb = format!(
                        r#"{{"event_id":"hb-{n}","kind":"heartbeat","event_time":"2026-03-02T00:00:0{}Z","source":"test"}}"#,
                        n % 10
                    );
                    let _ = producer
                        .send(
                            rdkafka::producer::FutureRecord::<(), _>::to(&topic).payload(&hb),
                            Duration::from_secs(5),
                        )
                        .await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                drop(running);
            });
            let dropped = std::time::Instant::now();
            drop(rt);
            let _ = done_tx.send(dropped.elapsed());
        });
        // Closing a consumer normally takes milliseconds; 10 s is far beyond that and far
        // below the forever this guards against.
        match done_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(took) => assert!(
                took < Duration::from_secs(10),
                "the runtime took {took:?} to end after the pipeline was dropped"
            ),
            Err(_) => panic!("the runtime did not end within 120 s of dropping the pipeline"),
        }
    }
}
