//! The evaluator: state snapshots in, alerts, metrics and checkpoints out.
//!
//! In: [`ToEvaluator`] messages from the state stage (a snapshot per evaluation step, the state
//! side of a checkpoint), new rule books from the reload task, new master data from the
//! catalog task. Out: the published [`Evaluation`] (alerts and metric families for `/metrics`
//! and `/api/alerts`), the alert history (`/api/alerts/history`), the exposure ranking, and
//! checkpoint files (then the checkpoint's offsets are committed).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use tokio::sync::{mpsc, watch};

use super::stage::ToEvaluator;
use super::RuleBook;
use crate::alerts::history::{Tracker, Transition};
use crate::alerts::{AlertEngine, AlertState, Sample};
use crate::catalog::{self, Catalog};
use crate::export::metrics::{capped_alerts, capped_rows};
use crate::export::{Evaluation, Shared};
use crate::indicators::IndicatorResult;
use crate::ingest::store_offsets;
use crate::reload::NewBook;
use crate::state::checkpoint::{Checkpoint, CheckpointStore, EvaluatorPart, StatePart};
use crate::state::Tables;

/// The samples of one rule from its indicator's rows.
pub(crate) fn samples_for<'a>(result: &'a IndicatorResult, value: &str) -> Vec<Sample<'a>> {
    result
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| Sample {
            labels: &r.labels,
            value: r.values.get(value).copied().flatten(),
            row: result.row(i),
        })
        .collect()
}

/// Evaluator settings.
pub(crate) struct EvalOptions {
    pub max_exported_rows: usize,
    pub exposure_every: Duration,
    pub horizon_days: f64,
    /// Alert transitions kept.
    pub history: usize,
}

/// Where checkpoints go, and the consumer that commits their offsets.
pub(crate) struct Checkpoints {
    pub store: CheckpointStore,
    pub consumer: Arc<crate::ingest::kafka::IngestConsumer>,
    pub group_id: String,
}

/// What a restored checkpoint gives the evaluator.
#[derive(Default)]
pub(crate) struct Restored {
    pub engine: Option<crate::alerts::EngineSnapshot>,
    pub tracker: Tracker,
    pub history: Vec<Transition>,
    pub evaluations: u64,
}

/// The evaluator task.
pub(crate) struct Evaluator {
    pub book: RuleBook,
    pub shared: Arc<Shared>,
    pub options: EvalOptions,
    pub checkpoints: Option<Checkpoints>,
    pub restored: Restored,
}

impl Evaluator {
    /// Run until the state stage's channel closes. A new rule book is swapped in between two
    /// evaluations, so is new master data; either re-evaluates the last snapshot, so new rules
    /// show without new data.
    pub async fn run(
        self,
        mut input: mpsc::Receiver<ToEvaluator>,
        mut books: mpsc::Receiver<NewBook>,
        mut catalogs: watch::Receiver<Arc<Catalog>>,
    ) {
        let Evaluator {
            mut book,
            shared,
            options,
            checkpoints,
            restored,
        } = self;
        let m = shared.metrics.clone();
        let mut engine = AlertEngine::new(&book.rules);
        if let Some(saved) = restored.engine {
            let n = engine.restore(saved);
            tracing::info!(rules = n, "Alert state restored from the checkpoint.");
        }
        let mut tracker = restored.tracker;
        if let Ok(mut h) = shared.history.write() {
            *h = restored.history.into();
        }
        let mut number = restored.evaluations;
        let mut catalog = catalogs.borrow_and_update().clone();
        engine.set_network(catalog.network.clone());
        let mut catalog_open = true;
        let mut exposure_at: Option<std::time::Instant> = None;
        let mut firing_before: BTreeSet<String> = BTreeSet::new();
        // Kept to evaluate a new book or new master data at once (cheap: batches are shared).
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
                msg = input.recv() => match msg {
                    Some(ToEvaluator::Evaluate(t)) => t,
                    Some(ToEvaluator::Checkpoint(part)) => {
                        let evaluator = EvaluatorPart {
                            engine: engine.save(),
                            tracker: tracker.clone(),
                            history: shared.history_snapshot(),
                            evaluations: number,
                        };
                        match &checkpoints {
                            Some(c) => checkpoint(c, *part, evaluator, &shared).await,
                            None => tracing::debug!("Checkpoint asked for, but checkpoints are off."),
                        }
                        continue;
                    }
                    None => break,
                },
            };
            last = Some(tables.clone());
            let mut tables = tables;
            tables.tables.extend(catalog.tables.iter().cloned());
            let timer = m.eval_duration.start_timer();
            let now = tables.watermark;
            let Tick {
                alerts,
                results,
                errors,
                capped_rows,
                capped_alerts,
                failed,
            } = tick(&book, &mut engine, &tables, options.max_exported_rows).await;
            let durations = book.indicators.last_durations();
            for (name, time) in &durations.indicators {
                if let Some(t) = time {
                    m.indicator_duration
                        .with_label_values(&[name.as_str()])
                        .set(t.as_secs_f64());
                }
            }
            for (name, time) in &durations.views {
                if let Some(t) = time {
                    m.view_duration
                        .with_label_values(&[name.as_str()])
                        .set(t.as_secs_f64());
                }
            }
            for (view, reason) in &durations.failed_views {
                m.view_errors
                    .with_label_values(&[view.as_str(), reason])
                    .inc();
            }
            for (indicator, kind) in &failed {
                m.indicator_errors.with_label_values(&[indicator]).inc();
                if matches!(*kind, "time" | "memory") {
                    m.indicator_limits
                        .with_label_values(&[indicator.as_str(), kind])
                        .inc();
                }
            }
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
            let tracked = tracker.track(now, &alerts);
            if !tracked.transitions.is_empty() {
                for t in &tracked.transitions {
                    m.alert_transitions
                        .with_label_values(&[t.change.as_str()])
                        .inc();
                }
                if let Ok(mut h) = shared.history.write() {
                    h.extend(tracked.transitions);
                    let excess = h.len().saturating_sub(options.history);
                    h.drain(..excess);
                }
            }
            for (indicator, n) in &capped_rows {
                m.capped_rows
                    .with_label_values(&[indicator.as_str()])
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
            // Every rule has the series (0 when nothing was left out): bounded by the rules.
            m.capped_alerts.reset();
            for rule in book.rules.rules() {
                let n = capped_alerts.get(&rule.name).copied().unwrap_or(0);
                m.capped_alerts
                    .with_label_values(&[rule.name.as_str()])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            number += 1;
            let evaluation = Evaluation::new(
                number,
                now,
                tables.applied,
                alerts,
                results,
                options.max_exported_rows,
                errors,
            );
            if let Ok(mut e) = shared.evaluation.write() {
                *e = Arc::new(evaluation);
            }
            m.evaluations.inc();
            m.evaluated_time.set(now as f64 / 1000.0);
            timer.observe_duration();
            if exposure_at.is_none_or(|t| t.elapsed() >= options.exposure_every)
                && !catalog.network.suppliers.is_empty()
            {
                exposure_at = Some(std::time::Instant::now());
                update_exposure(
                    &catalog,
                    &tables,
                    options.horizon_days,
                    options.max_exported_rows,
                    &shared,
                )
                .await;
            }
        }
        tracing::info!(evaluations = number, "Evaluator stopped.");
    }
}

/// What one evaluation of the rule book over a snapshot produced.
pub struct Tick {
    /// Every alert the engine holds after the evaluation (pending, firing, resolved).
    pub alerts: Vec<crate::alerts::Alert>,
    /// Every indicator's rows (the series for `/metrics` are built from them when scraped).
    pub results: Vec<IndicatorResult>,
    /// Indicator and rule errors, as text.
    pub errors: Vec<String>,
    /// Indicator rows left off `/metrics` by the cap, by indicator.
    pub capped_rows: std::collections::BTreeMap<String, usize>,
    /// Alert series left off `/metrics` by the cap, by rule.
    pub capped_alerts: std::collections::BTreeMap<String, usize>,
    /// Indicators that failed, with the error kind (`time`, `memory`, ...).
    pub failed: Vec<(String, &'static str)>,
}

/// One evaluation: every indicator of the book over `tables` and every rule over its
/// indicator's rows. The evaluator runs it once per step; `make bench`
/// times it.
pub async fn tick(
    book: &RuleBook,
    engine: &mut AlertEngine,
    tables: &Tables,
    max_exported_rows: usize,
) -> Tick {
    let now = tables.watermark;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let mut failed = Vec::new();
    for (def, r) in book
        .indicators
        .defs()
        .iter()
        .zip(book.indicators.evaluate(tables).await)
    {
        match r {
            Ok(r) => results.push(r),
            Err(e) => {
                tracing::warn!(indicator = %def.name, error = %e, "Indicator failed.");
                failed.push((def.name.clone(), e.kind()));
                errors.push(e.to_string());
            }
        }
    }
    for group in &book.rules.groups {
        for rule in &group.rules {
            // A failed indicator evaluates its rules on no rows: alerts resolve rather than
            // stay stale; the failure itself is counted and reported.
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
    let capped_rows = capped_rows(&results, max_exported_rows);
    let capped_alerts = capped_alerts(&alerts, max_exported_rows);
    Tick {
        alerts,
        results,
        errors,
        capped_rows,
        capped_alerts,
        failed,
    }
}

/// Write one checkpoint (off the runtime), then store and commit its offsets: the group's
/// committed offsets follow the checkpoints, so lag shows what a restart would re-read.
async fn checkpoint(c: &Checkpoints, part: StatePart, evaluator: EvaluatorPart, shared: &Shared) {
    let m = &shared.metrics;
    let started = std::time::Instant::now();
    let last = part.request.last;
    let offsets = part.request.offsets.clone();
    let store = c.store.clone();
    let group = c.group_id.clone();
    let written = tokio::task::spawn_blocking(move || {
        let cp = Checkpoint::assemble(&group, part, evaluator)?;
        store.write(&cp)
    })
    .await;
    match written {
        Ok(Ok((path, bytes))) => {
            m.checkpoints.with_label_values(&["success"]).inc();
            m.checkpoint_bytes.set(bytes as i64);
            m.checkpoint_duration
                .observe(started.elapsed().as_secs_f64());
            m.checkpoint_time
                .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
            tracing::debug!(path = %path.display(), bytes, "Checkpoint written.");
            store_offsets(&c.consumer, &offsets);
            let consumer = c.consumer.clone();
            let mode = if last {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            let committed =
                tokio::task::spawn_blocking(move || consumer.commit_consumer_state(mode)).await;
            if let Ok(Err(e)) = committed {
                // The checkpoint holds the offsets; Kafka's copy only serves lag and fallback.
                tracing::debug!(error = %e, "Commit after checkpoint failed.");
            }
        }
        Ok(Err(e)) => {
            m.checkpoints.with_label_values(&["failure"]).inc();
            tracing::error!(error = %e, "Checkpoint failed; the previous one stays.");
        }
        Err(e) => {
            m.checkpoints.with_label_values(&["failure"]).inc();
            tracing::error!(error = %e, "Checkpoint task failed.");
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
    // Query times are refilled by the next evaluation, for the queries that exist then; view
    // error counters are made again for the views of the new book.
    shared.metrics.indicator_duration.reset();
    shared.metrics.view_duration.reset();
    shared.metrics.view_errors.reset();
    *book = new.book;
    super::publish_rules(shared, book, new.outcome);
    // The reload task waits for this; it may have been stopped meanwhile.
    let _ = new.applied.send(());
}
