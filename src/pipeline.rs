//! The running service: spawns the stages, wires them with bounded channels, shuts down
//! cleanly.
//!
//! In: a [`Config`]. Out: a [`Running`] pipeline serving HTTP, until [`Running::shutdown`].
//!
//! ```text
//! Kafka --> ingest (decode, dead-letter) --Batch--> state (apply, store offsets)
//!                                                     | every evaluation.interval: snapshot
//!                                                     v
//!            /metrics, /api <-- Shared <-- evaluator (indicator SQL, alert rules)
//!                                                     ^ new RuleBook (only a fully valid one)
//!        file change, SIGHUP, POST /-/reload --> reload task (load_rulebook)
//!   feeds/, network/ files, network topic --> catalog task --> ingest (feed topics),
//!                                                           evaluator (network tables)
//! ```
//! Channels are bounded, so a slow stage slows the consumer instead of growing memory. The
//! evaluator gets at most one pending snapshot: if it is still busy, the tick is skipped and
//! counted. A reloaded rule book is swapped in between two evaluations (see `crate::reload`);
//! the evaluator then re-evaluates the last snapshot, so new rules show without new data.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::alerts::{AlertEngine, AlertState, Sample};
use crate::catalog::{self, Catalog, CatalogTask};
use crate::config::Config;
use crate::export::metrics::{alert_families, indicator_families, Metrics};
use crate::export::{http, Evaluation, PartitionStatus, RulesView, Shared};
use crate::indicators::{IndicatorResult, Indicators, Limits};
use crate::ingest::{kafka, store_offsets, Batch, Ingest, Watermark};
use crate::reload::{self, Fingerprint, NewBook, ReloadOutcome, ReloadTask, Reloader, Trigger};
use crate::rules::RuleSet;
use crate::state::{State, Tables};

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

/// Load `dir/indicators/*.sql` and `dir/*.yaml` with the default query limits; see
/// [`load_rulebook_with`].
pub async fn load_rulebook(dir: &Path) -> Result<RuleBook, RuleBookErrors> {
    load_rulebook_with(dir, Limits::default()).await
}

/// Load `dir/indicators/*.sql` and `dir/*.yaml`; plan every SQL (under `limits`) and check
/// every rule.
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
        since: outcome.at_ms,
        last_reload: outcome.clone(),
        successes: v.successes + u64::from(is_reload),
        failures: v.failures,
    });
}

/// Swap a reloaded book in; the alerts of rules whose definition is unchanged keep their state.
fn apply_book(new: NewBook, book: &mut RuleBook, engine: &mut AlertEngine, shared: &Shared) {
    engine.set_rules(&new.book.rules);
    for old in book.indicators.defs() {
        let kept = new
            .book
            .indicators
            .defs()
            .iter()
            .any(|d| d.name == old.name);
        if !kept {
            // Keep the label set to the indicators that exist.
            let _ = shared
                .metrics
                .indicator_errors
                .remove_label_values(&[&old.name]);
        }
    }
    *book = new.book;
    publish_rules(shared, book, new.outcome);
    // The reload task waits for this; it may have been stopped meanwhile.
    let _ = new.applied.send(());
}

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
    tasks: Vec<JoinHandle<()>>,
    /// Keeps the embedded broker alive for as long as the pipeline runs.
    _embedded: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl Running {
    /// A receiver that turns true on shutdown (for tasks started beside the pipeline).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stop every stage: ingest flushes, state applies and stores offsets, consumer commits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
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

    let consumer: Arc<StreamConsumer> = Arc::new(
        kafka::consumer_config(&config.kafka, &brokers)
            .create()
            .map_err(kafka::KafkaSetupError::Client)?,
    );
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
    let (eval_tx, eval_rx) = mpsc::channel::<Tables>(1);
    let ingest = Ingest {
        consumer: consumer.clone(),
        producer,
        dead_letter_topic: config.kafka.dead_letter_topic.clone(),
        batch: config.batch.clone(),
        watermark: Watermark::new(config.allowed_lateness),
        metrics: metrics.clone(),
        input_topics,
        feeds: feeds_rx,
        consumed: Default::default(),
    };
    let mut tasks = vec![http_task];
    tasks.push(tokio::spawn(ingest.run(batch_tx, shutdown_rx.clone())));
    tasks.push(tokio::spawn(state_stage(
        batch_rx,
        consumer.clone(),
        State::new(config.retention),
        eval_tx,
        config.evaluation.interval,
        shared.clone(),
    )));
    tasks.push(tokio::spawn(evaluator(
        eval_rx,
        book_rx,
        catalog_rx,
        book,
        shared.clone(),
        EvalOptions {
            max_exported_rows: config.evaluation.max_exported_rows,
            exposure_every: config.network.exposure_every,
            horizon_days: config.network.horizon.as_secs_f64() / 86_400.0,
        },
    )));
    tasks.push(tokio::spawn(
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
    ));
    tasks.push(tokio::spawn(
        ReloadTask {
            dir: rules_dir.clone(),
            limits: config.evaluation.limits,
            requests: reload_requests,
            books: book_tx,
            shared: shared.clone(),
        }
        .run(shutdown_rx.clone()),
    ));
    if config.evaluation.watch_rules {
        tasks.push(tokio::spawn(reload::watch_files(
            rules_dir,
            files,
            reloader.clone(),
            shutdown_rx.clone(),
        )));
    }
    #[cfg(unix)]
    if let Some(hup) = hup {
        tasks.push(tokio::spawn(reload::on_sighup(
            hup,
            reloader.clone(),
            shutdown_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(monitor(
        consumer,
        shared.clone(),
        shutdown_rx.clone(),
    )));
    Ok(Running {
        http_addr,
        brokers,
        shared,
        reloader,
        shutdown: shutdown_tx,
        tasks,
        _embedded: embedded,
    })
}

/// Apply batches to state, store their offsets, and hand snapshots to the evaluator.
/// Ends when ingest has stopped and its channel is drained; then commits synchronously.
async fn state_stage(
    mut batches: mpsc::Receiver<Batch>,
    consumer: Arc<StreamConsumer>,
    mut state: State,
    eval: mpsc::Sender<Tables>,
    interval: Duration,
    shared: Arc<Shared>,
) {
    let m = &shared.metrics;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut applied_total = 0u64;
    let mut duplicates_total = 0u64;
    let mut last_evaluated: Option<(u64, i64)> = None;
    loop {
        tokio::select! {
            batch = batches.recv() => {
                let Some(batch) = batch else { break };
                if !batch.feeds.is_empty() {
                    state.record_feeds(&batch.feeds);
                    for t in &batch.feeds {
                        if let Some(at) = state.feed_activity(&t.feed).and_then(|a| a.last_event_at) {
                            m.feed_last_event.with_label_values(&[&t.feed]).set(at as f64 / 1000.0);
                        }
                    }
                }
                if let Some(events) = &batch.events {
                    let stats = state.apply(events, batch.watermark);
                    for (kind, n) in &stats.applied {
                        m.applied.with_label_values(&[kind.as_str()]).inc_by(*n);
                        applied_total += n;
                    }
                    m.duplicates.inc_by(stats.duplicates);
                    m.orphans.inc_by(stats.orphans);
                    duplicates_total += stats.duplicates;
                } else {
                    state.advance(batch.watermark);
                }
                store_offsets(&consumer, &batch.offsets);
                shared.dead_lettered.store(m.dead_letters.get(), Ordering::SeqCst);
                m.watermark.set(state.watermark() as f64 / 1000.0);
                m.open_lines.set(state.open_lines() as i64);
                m.shipments.set(state.in_flight_shipments() as i64);
                m.positions.set(state.positions() as i64);
                m.window_records.set(state.window_records() as i64);
                if let Ok(mut s) = shared.state.write() {
                    s.watermark = state.watermark();
                    s.records_applied = applied_total;
                    s.duplicates = duplicates_total;
                    s.open_po_lines = state.open_lines();
                    s.in_flight_shipments = state.in_flight_shipments();
                    s.inventory_positions = state.positions();
                    s.window_records = state.window_records();
                }
            }
            _ = ticker.tick() => {
                // Evaluation is a function of (state, watermark): nothing new, nothing to do.
                let version = (state.applied(), state.watermark());
                if last_evaluated == Some(version) {
                    continue;
                }
                if eval.try_send(state.snapshot()).is_ok() {
                    last_evaluated = Some(version);
                } else {
                    m.eval_skipped.inc();
                }
            }
        }
    }
    // Final evaluation of the final state, then commit what was applied.
    let _ = eval.send(state.snapshot()).await;
    let c = consumer.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = c.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            tracing::debug!(error = %e, "Final commit failed (nothing stored or no assignment).");
        }
    })
    .await;
    tracing::info!(applied = applied_total, "State stage stopped.");
}

/// The samples of one rule from its indicator's rows.
pub(crate) fn samples_for(result: &IndicatorResult, value: &str) -> Vec<Sample> {
    result
        .rows
        .iter()
        .map(|r| Sample {
            labels: r.labels.clone(),
            value: r.values.get(value).copied().flatten(),
            row: r.row.clone(),
        })
        .collect()
}

/// Evaluator settings.
struct EvalOptions {
    max_exported_rows: usize,
    exposure_every: Duration,
    horizon_days: f64,
}

/// Run indicators and rules on each snapshot and publish the outcome. A new rule book from
/// the reload task is swapped in between two evaluations; so is new master data.
async fn evaluator(
    mut snapshots: mpsc::Receiver<Tables>,
    mut books: mpsc::Receiver<NewBook>,
    mut catalogs: watch::Receiver<Arc<Catalog>>,
    mut book: RuleBook,
    shared: Arc<Shared>,
    options: EvalOptions,
) {
    let max_exported_rows = options.max_exported_rows;
    let m = shared.metrics.clone();
    let mut engine = AlertEngine::new(&book.rules);
    let mut catalog = catalogs.borrow_and_update().clone();
    engine.set_network(catalog.network.clone());
    let mut catalog_open = true;
    let mut exposure_at: Option<std::time::Instant> = None;
    let mut number = 0u64;
    let mut firing_before: BTreeSet<String> = BTreeSet::new();
    // The state stage sends no snapshot while nothing changed; keep the last one to evaluate
    // a new book at once (cheap: the batches are shared, not copied).
    let mut last: Option<Tables> = None;
    loop {
        let tables = tokio::select! {
            biased;
            Some(new) = books.recv() => {
                apply_book(new, &mut book, &mut engine, &shared);
                match &last {
                    Some(t) => t.clone(),
                    None => continue,
                }
            }
            changed = catalogs.changed(), if catalog_open => {
                if changed.is_err() {
                    catalog_open = false;
                    continue;
                }
                catalog = catalogs.borrow_and_update().clone();
                engine.set_network(catalog.network.clone());
                if let Ok(mut c) = shared.catalog.write() {
                    *c = catalog.clone();
                }
                // The exposure depends on the network: recompute with the next evaluation.
                exposure_at = None;
                match &last {
                    Some(t) => t.clone(),
                    None => continue,
                }
            }
            t = snapshots.recv() => match t {
                Some(t) => t,
                None => break,
            },
        };
        last = Some(tables.clone());
        let mut tables = tables;
        tables.tables.extend(catalog.tables.iter().cloned());
        let timer = m.eval_duration.start_timer();
        let now = tables.watermark;
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (def, r) in book
            .indicators
            .defs()
            .iter()
            .zip(book.indicators.evaluate(&tables).await)
        {
            match r {
                Ok(r) => results.push(r),
                Err(e) => {
                    m.indicator_errors.with_label_values(&[&def.name]).inc();
                    if matches!(e.kind(), "time" | "memory") {
                        m.indicator_limits
                            .with_label_values(&[def.name.as_str(), e.kind()])
                            .inc();
                    }
                    tracing::warn!(indicator = %def.name, error = %e, "Indicator failed.");
                    errors.push(e.to_string());
                }
            }
        }
        for group in &book.rules.groups {
            for rule in &group.rules {
                // A failed indicator evaluates its rules on no rows: alerts resolve rather
                // than stay stale; the failure itself is counted and reported.
                let samples = results
                    .iter()
                    .find(|r| r.name == rule.indicator)
                    .map(|r| samples_for(r, &rule.value))
                    .unwrap_or_default();
                if let Err(e) = engine.evaluate(&rule.name, &samples, now) {
                    tracing::warn!(rule = %rule.name, error = %e, "Rule evaluation error.");
                    errors.push(e.to_string());
                }
            }
        }
        let alerts = engine.alerts();
        let mut firing_now = BTreeSet::new();
        for a in alerts.iter().filter(|a| a.state == AlertState::Firing) {
            let key = format!("{}{:?}", a.rule, a.labels);
            if !firing_before.contains(&key) {
                tracing::info!(
                    alert = %a.rule,
                    severity = a.labels.get("severity").map(String::as_str).unwrap_or(""),
                    summary = a.annotations.get("summary").map(String::as_str).unwrap_or(""),
                    "Alert firing."
                );
            }
            firing_now.insert(key);
        }
        firing_before = firing_now;
        let (mut families, capped) = indicator_families(&results, &alerts, max_exported_rows);
        for (indicator, n) in &capped {
            m.capped_rows
                .with_label_values(&[indicator.as_str()])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        families.extend(alert_families(&alerts));
        number += 1;
        let evaluation = Evaluation {
            number,
            watermark: now,
            records_applied: tables.applied,
            finished_at: chrono::Utc::now().timestamp_millis(),
            alerts,
            families,
            errors,
        };
        if let Ok(mut e) = shared.evaluation.write() {
            *e = Arc::new(evaluation);
        }
        m.evaluations.inc();
        timer.observe_duration();
        if exposure_at.is_none_or(|t| t.elapsed() >= options.exposure_every)
            && !catalog.network.suppliers.is_empty()
        {
            exposure_at = Some(std::time::Instant::now());
            update_exposure(
                &catalog,
                &tables,
                options.horizon_days,
                max_exported_rows,
                &shared,
            )
            .await;
        }
    }
}

/// Recompute time to survive and the risk exposure index of every node (LPs, off the
/// runtime), publish them on `/api/network` and as metrics (the top `max_rows` nodes).
async fn update_exposure(
    catalog: &Catalog,
    tables: &Tables,
    horizon_days: f64,
    max_rows: usize,
    shared: &Arc<Shared>,
) {
    let net = catalog.network.clone();
    let supply = catalog::part_supply(tables, &net);
    let watermark = tables.watermark;
    let nodes = tokio::task::spawn_blocking(move || {
        let options = crate::network::ExposureOptions {
            horizon_days,
            ..Default::default()
        };
        crate::network::ranking(&net, &supply, &options)
    })
    .await;
    let Ok(nodes) = nodes else {
        tracing::error!("Exposure computation failed.");
        return;
    };
    let m = &shared.metrics;
    m.tts.reset();
    m.ttr.reset();
    m.rei.reset();
    m.lost_value.reset();
    for n in nodes.iter().take(max_rows) {
        let s = [n.supplier.as_str()];
        m.tts.with_label_values(&s).set(n.tts_days * 86_400.0);
        if let Some(ttr) = n.ttr_days {
            m.ttr.with_label_values(&s).set(ttr * 86_400.0);
        }
        m.rei.with_label_values(&s).set(n.rei);
        m.lost_value.with_label_values(&s).set(n.lost_value);
    }
    if let Ok(mut e) = shared.exposure.write() {
        *e = Arc::new(crate::export::Exposure { watermark, nodes });
    }
}

/// Every few seconds: consumer lag per partition and readiness.
async fn monitor(
    consumer: Arc<StreamConsumer>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = ticker.tick() => {}
        }
        let c = consumer.clone();
        let partitions = tokio::task::spawn_blocking(move || partition_status(&c))
            .await
            .ok()
            .flatten();
        let Some(partitions) = partitions else {
            shared.metrics.connected.set(0);
            shared.ready.store(false, Ordering::SeqCst);
            continue;
        };
        shared.metrics.connected.set(1);
        for p in &partitions {
            shared
                .metrics
                .consumer_lag
                .with_label_values(&[&p.topic, &p.partition.to_string()])
                .set(p.lag);
        }
        shared.ready.store(!partitions.is_empty(), Ordering::SeqCst);
        if let Ok(mut s) = shared.partitions.write() {
            *s = partitions;
        }
    }
}

/// Committed offset, high watermark and lag of every assigned partition; None when the
/// brokers cannot be reached.
fn partition_status(c: &StreamConsumer) -> Option<Vec<PartitionStatus>> {
    let timeout = Duration::from_secs(2);
    let assignment = c.assignment().ok()?;
    if assignment.count() == 0 {
        return Some(Vec::new());
    }
    let committed = c.committed(timeout).ok()?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let (_, high) = c.fetch_watermarks(e.topic(), e.partition(), timeout).ok()?;
        let committed = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(-1);
        out.push(PartitionStatus {
            topic: e.topic().to_string(),
            partition: e.partition(),
            committed,
            high_watermark: high,
            lag: (high - committed.max(0)).max(0),
        });
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Some(out)
}
