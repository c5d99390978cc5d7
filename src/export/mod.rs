//! Export: metrics, the HTTP API, and the shared view of the pipeline they read.
//!
//! In: [`Shared`], written by the pipeline stages (the evaluator publishes the rules it runs,
//! the reload task the outcome of the last reload). Out: `/metrics`, `/healthz`, `/readyz`,
//! `/api/alerts`, `/api/status`, `/api/rules` and `POST /-/reload` on one HTTP port.

pub mod http;
pub mod metrics;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock, RwLock};

use prometheus::proto::MetricFamily;
use serde::Serialize;

use crate::alerts::Alert;
use crate::indicators::IndicatorResult;
use crate::reload::{ReloadOutcome, Trigger};
use crate::rules::RuleSet;
use metrics::Metrics;

/// The outcome of the latest evaluation, swapped in whole.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// Sequence number, 0 before the first evaluation.
    pub number: u64,
    /// Event-time watermark the indicators were evaluated at (ms).
    pub watermark: i64,
    /// Events applied to the state the evaluation ran on.
    pub records_applied: u64,
    /// Wall-clock time the evaluation finished (ms).
    pub finished_at: i64,
    pub alerts: Vec<Alert>,
    /// The indicator rows, for `/metrics`.
    pub results: Vec<IndicatorResult>,
    /// Indicator rows and alert series exported per indicator and per rule.
    pub max_exported_rows: usize,
    /// Indicators that failed in this evaluation, with their errors.
    pub errors: Vec<String>,
    /// The series for `/metrics`, built by the first scrape that wants them: a catch-up runs
    /// many evaluations between two scrapes, and building the series of each cost as much as
    /// its queries.
    families: OnceLock<Vec<MetricFamily>>,
}

impl Evaluation {
    /// An evaluation's outcome; its series are built when first asked for.
    pub fn new(
        number: u64,
        watermark: i64,
        records_applied: u64,
        alerts: Vec<Alert>,
        results: Vec<IndicatorResult>,
        max_exported_rows: usize,
        errors: Vec<String>,
    ) -> Self {
        Evaluation {
            number,
            watermark,
            records_applied,
            finished_at: chrono::Utc::now().timestamp_millis(),
            alerts,
            results,
            max_exported_rows,
            errors,
            families: OnceLock::new(),
        }
    }

    /// Indicator and alert metric families for `/metrics` (capped, see
    /// [`metrics::indicator_families`] and [`metrics::alert_families`]).
    pub fn families(&self) -> &[MetricFamily] {
        self.families.get_or_init(|| {
            let max = self.max_exported_rows;
            let mut families = metrics::indicator_families(&self.results, &self.alerts, max);
            families.extend(metrics::alert_families(&self.alerts, max));
            families
        })
    }
}

/// Consumer position of one partition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    /// Next offset the group will read after a restart (-1 when nothing is committed).
    pub committed: i64,
    /// Next offset this consumer fetches (-1 until its first fetch returns).
    pub position: i64,
    /// Offset after the last message in the partition.
    pub high_watermark: i64,
    /// `high_watermark - committed` (all of it when nothing is committed).
    pub lag: i64,
}

/// State-side counters for `/api/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StateStatus {
    /// Event-time watermark: every event before it has arrived (ms).
    pub watermark: i64,
    /// End of the last evaluation step applied (ms); at most `watermark`.
    pub evaluated_to: i64,
    /// Events waiting for their step to complete.
    pub buffered_events: usize,
    pub records_applied: u64,
    pub duplicates: u64,
    pub open_po_lines: usize,
    pub in_flight_shipments: usize,
    pub inventory_positions: usize,
    pub window_records: usize,
}

/// The rules the evaluator runs and the last reload attempt, replaced whole so that
/// `/api/status` never shows the outcome of one reload with the rules of another.
#[derive(Debug, Clone)]
pub struct RulesView {
    pub rules: Arc<RuleSet>,
    /// Indicator names, in load order.
    pub indicators: Vec<String>,
    /// View names, in the order they are computed.
    pub views: Vec<String>,
    /// Wall-clock time these rules started running (ms).
    pub since: i64,
    /// The last load of the rules directory, at start-up or on reload.
    pub last_reload: Arc<ReloadOutcome>,
    /// Reloads since start, by result (start-up not counted).
    pub successes: u64,
    pub failures: u64,
}

impl Default for RulesView {
    fn default() -> Self {
        RulesView {
            rules: Arc::new(RuleSet::default()),
            indicators: Vec::new(),
            views: Vec::new(),
            since: 0,
            last_reload: Arc::new(ReloadOutcome {
                trigger: Trigger::Start,
                success: true,
                at_ms: 0,
                duration_ms: 0,
                rules: 0,
                groups: 0,
                indicators: 0,
                errors: Vec::new(),
            }),
            successes: 0,
            failures: 0,
        }
    }
}

/// What the stages publish and the HTTP server reads.
pub struct Shared {
    pub metrics: Metrics,
    pub evaluation: RwLock<Arc<Evaluation>>,
    pub partitions: RwLock<Vec<PartitionStatus>>,
    /// Partitions of the subscribed topics assigned to another member of the group (topic,
    /// partition), as of the monitor's last round.
    pub unassigned: RwLock<Vec<(String, i32)>>,
    pub state: RwLock<StateStatus>,
    pub dead_lettered: AtomicU64,
    /// True once the consumer has joined its group and rules are loaded.
    pub ready: AtomicBool,
    /// Which broker we consume from (`embedded` or the bootstrap servers).
    pub brokers: String,
    /// The running rules and the last reload (`/api/rules`, `/api/status`); change it with
    /// [`Shared::update_rules`].
    pub rules: RwLock<Arc<RulesView>>,
    /// Feed definitions and supply network in force (`/api/network`, `/api/feeds`).
    pub catalog: RwLock<Arc<crate::catalog::Catalog>>,
    /// The last exposure ranking (time to survive, risk exposure index) and when it was made.
    pub exposure: RwLock<Arc<Exposure>>,
    /// The newest alert transitions, oldest first (`/api/alerts/history`, checkpoints).
    pub history: RwLock<std::collections::VecDeque<crate::alerts::history::Transition>>,
}

/// The last exposure ranking of the supply network's nodes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Exposure {
    /// Watermark (event time, ms) of the state it was computed from; 0 before the first.
    pub watermark: i64,
    /// Nodes by risk exposure index, highest first.
    pub nodes: Vec<crate::network::NodeExposure>,
}

impl Shared {
    pub fn new(metrics: Metrics, brokers: String) -> Arc<Self> {
        Arc::new(Shared {
            metrics,
            evaluation: RwLock::new(Arc::new(Evaluation::default())),
            partitions: RwLock::new(Vec::new()),
            unassigned: RwLock::new(Vec::new()),
            state: RwLock::new(StateStatus::default()),
            dead_lettered: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            brokers,
            rules: RwLock::new(Arc::new(RulesView::default())),
            catalog: RwLock::new(Arc::new(crate::catalog::Catalog::default())),
            exposure: RwLock::new(Arc::new(Exposure::default())),
            history: RwLock::new(std::collections::VecDeque::new()),
        })
    }

    /// A copy of the alert history, oldest first.
    pub fn history_snapshot(&self) -> Vec<crate::alerts::history::Transition> {
        self.history
            .read()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn catalog(&self) -> Arc<crate::catalog::Catalog> {
        self.catalog
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn exposure(&self) -> Arc<Exposure> {
        self.exposure
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn evaluation(&self) -> Arc<Evaluation> {
        self.evaluation
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn rules(&self) -> Arc<RulesView> {
        self.rules
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Replace the rules view with `f(current)`, under the lock (writers do not race).
    pub fn update_rules(&self, f: impl FnOnce(&RulesView) -> RulesView) {
        let mut guard = self.rules.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(f(&guard));
    }
}
