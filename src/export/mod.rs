//! Export: metrics, the HTTP API, and the shared view of the pipeline they read.
//!
//! In: [`Shared`], written by the pipeline stages. Out: `/metrics`, `/healthz`, `/readyz`,
//! `/api/alerts` and `/api/status` on one HTTP port.

pub mod http;
pub mod metrics;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, RwLock};

use prometheus::proto::MetricFamily;
use serde::Serialize;

use crate::alerts::Alert;
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
    /// Indicator and alert metric families for `/metrics`.
    pub families: Vec<MetricFamily>,
    /// Indicators that failed in this evaluation, with their errors.
    pub errors: Vec<String>,
}

/// Consumer position of one partition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    /// Next offset the group will read after a restart (-1 when nothing is committed).
    pub committed: i64,
    /// Offset after the last message in the partition.
    pub high_watermark: i64,
    /// `high_watermark - committed` (all of it when nothing is committed).
    pub lag: i64,
}

/// State-side counters for `/api/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StateStatus {
    pub watermark: i64,
    pub records_applied: u64,
    pub duplicates: u64,
    pub open_po_lines: usize,
    pub in_flight_shipments: usize,
    pub inventory_positions: usize,
    pub window_records: usize,
}

/// What the stages publish and the HTTP server reads.
pub struct Shared {
    pub metrics: Metrics,
    pub evaluation: RwLock<Arc<Evaluation>>,
    pub partitions: RwLock<Vec<PartitionStatus>>,
    pub state: RwLock<StateStatus>,
    pub dead_lettered: AtomicU64,
    /// True once the consumer has joined its group and rules are loaded.
    pub ready: AtomicBool,
    /// Which broker we consume from (`embedded` or the bootstrap servers).
    pub brokers: String,
}

impl Shared {
    pub fn new(metrics: Metrics, brokers: String) -> Arc<Self> {
        Arc::new(Shared {
            metrics,
            evaluation: RwLock::new(Arc::new(Evaluation::default())),
            partitions: RwLock::new(Vec::new()),
            state: RwLock::new(StateStatus::default()),
            dead_lettered: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            brokers,
        })
    }

    pub fn evaluation(&self) -> Arc<Evaluation> {
        self.evaluation
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}
