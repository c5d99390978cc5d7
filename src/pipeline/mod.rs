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
//! Channels are bounded, so a slow stage slows the consumer instead of growing memory. Every
//! `checkpoint.interval` ingest cuts a checkpoint after a batch; it travels with the data like a
//! Flink barrier, the state stage and then the evaluator add their share, and the evaluator
//! writes it and commits its offsets (`stage`, `evaluator`, `crate::state::checkpoint`). On
//! start the newest checkpoint is restored and each partition resumes from its offsets.
//! A reloaded rule book is swapped in between two evaluations (see `crate::reload`); the
//! evaluator then re-evaluates the last snapshot, so new rules show without new data.

mod evaluator;
pub use evaluator::{tick, Tick};
mod stage;

pub(crate) use evaluator::samples_for;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::catalog::{self, CatalogTask};
use crate::config::Config;
use crate::export::metrics::Metrics;
use crate::export::{http, PartitionStatus, RulesView, Shared};
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
    tasks.push(("state", tokio::spawn(stage.run(batch_rx, eval_tx))));
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
        tokio::spawn(monitor(
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
async fn monitor(
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
        // A topic not counted yet (at start, a feed just subscribed) is asked at once.
        let uncounted = consumer.subscription().is_ok_and(|s| {
            let counts = consumer.context().partition_counts();
            s.elements().iter().any(|e| counts.get(e.topic()).is_none())
        });
        if uncounted || since_counted >= COUNT_PARTITIONS_EVERY {
            count_partitions(&consumer).await;
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
        let subscribed: Vec<String> = consumer.subscription().map_or_else(
            |_| Vec::new(),
            |s| s.elements().iter().map(|e| e.topic().to_string()).collect(),
        );
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
    let mut topics: Vec<&String> = subscribed.iter().collect();
    topics.sort();
    topics.dedup();
    topics
        .into_iter()
        .flat_map(|t| (0..counts.get(t).unwrap_or(0)).map(move |p| (t, p)))
        .filter(|(t, p)| !mine.contains(&(t.as_str(), *p)))
        .map(|(t, p)| (t.clone(), p))
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
async fn count_partitions(c: &Arc<kafka::IngestConsumer>) {
    use futures::StreamExt;
    let topics: Vec<String> = match c.subscription() {
        Ok(s) => s.elements().iter().map(|e| e.topic().to_string()).collect(),
        Err(_) => return,
    };
    let counted: Vec<_> = futures::stream::iter(topics)
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
