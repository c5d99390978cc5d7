//! Every metric chainwatch exports, defined in one place.
//!
//! In: counts and timings from the pipeline stages, indicator rows and alerts from each
//! evaluation. Out: the Prometheus text exposition served on `/metrics`.
//!
//! Self-metrics live in a [`Registry`]. Indicator and alert series change shape with every
//! evaluation (a supplier appears, an alert resolves), so they are built as whole metric
//! families per evaluation and swapped in at once: a scrape never sees half an evaluation.
//! Names follow `chainwatch_<subsystem>_<name>_<unit>`; indicator columns in days are
//! exported in seconds (`mean_delay_days` -> `..._mean_delay_seconds`).

use std::collections::BTreeMap;

use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::alerts::{Alert, AlertState};
use crate::indicators::{IndicatorResult, IndicatorRow};

/// Names and help of every self-metric; a test checks `/metrics` against this list.
pub const SELF_METRICS: &[(&str, &str)] = &[
    (
        "chainwatch_feed_records_total",
        "Records read from a supplier feed's messages (mapped, skipped and rejected), by feed.",
    ),
    (
        "chainwatch_feed_events_total",
        "Canonical events a supplier feed's records were mapped to, by feed.",
    ),
    (
        "chainwatch_feed_rejected_total",
        "Records and events of a supplier feed dead-lettered, by feed and reason.",
    ),
    (
        "chainwatch_feed_last_event_timestamp_seconds",
        "Event time of the latest event a supplier feed delivered, by feed.",
    ),
    (
        "chainwatch_feeds_loaded",
        "Supplier feed definitions in force.",
    ),
    (
        "chainwatch_feeds_reloads_total",
        "Reloads of the feed definitions, by result (success | failure).",
    ),
    (
        "chainwatch_network_suppliers",
        "Suppliers in the supply network, by tier.",
    ),
    (
        "chainwatch_network_records_total",
        "Records read from the network topic, by result (applied | refused).",
    ),
    (
        "chainwatch_network_time_to_survive_seconds",
        "How long demand can still be met if the supplier goes down (LP over stock, alternates' capacity and lead time), by supplier.",
    ),
    (
        "chainwatch_network_time_to_recover_seconds",
        "The supplier's declared time to recover, by supplier.",
    ),
    (
        "chainwatch_network_risk_exposure_index",
        "Lost value if the supplier is down for its time to recover, relative to the worst node (0..1), by supplier.",
    ),
    (
        "chainwatch_network_lost_value",
        "Value of demand that cannot be met if the supplier is down for its time to recover, by supplier.",
    ),
    (
        "chainwatch_ingest_messages_total",
        "Kafka messages consumed, by topic.",
    ),
    (
        "chainwatch_ingest_bytes_total",
        "Payload bytes consumed, by topic.",
    ),
    (
        "chainwatch_ingest_skipped_offsets_total",
        "Offsets a partition's next message jumped over, by topic: expected with compacted or transactional topics, otherwise messages the broker or client never delivered.",
    ),
    (
        "chainwatch_ingest_reread_messages_total",
        "Messages dropped because this process had read their offset already (or its restored checkpoint covers it): a consumer resumed before where it was, after a rebalance or restart. Their events are in the state already.",
    ),
    (
        "chainwatch_ingest_rejected_total",
        "Messages rejected (dead-lettered), by reason.",
    ),
    (
        "chainwatch_ingest_decode_declined_messages_total",
        "Messages the fast JSON decoder declined (escaped strings, numbers written as strings, timestamps as numbers, duplicate keys, invalid JSON): decoded or rejected by arrow-json instead, at about 1.2x the cost. Not errors.",
    ),
    (
        "chainwatch_ingest_dead_letters_total",
        "Records written to the dead-letter topic.",
    ),
    (
        "chainwatch_ingest_dead_letter_errors_total",
        "Failed writes to the dead-letter topic (retried).",
    ),
    ("chainwatch_ingest_batch_rows", "Messages per micro-batch."),
    (
        "chainwatch_ingest_consumer_lag_messages",
        "High watermark minus committed offset, by topic and partition.",
    ),
    (
        "chainwatch_ingest_connected",
        "1 while the consumer can reach the brokers.",
    ),
    (
        "chainwatch_ingest_lag_query_errors_total",
        "Lag queries (committed offsets, or one partition's high watermark) the brokers failed or answered late (over 2 s).",
    ),
    (
        "chainwatch_ingest_high_watermark_age_seconds",
        "Seconds since the broker last answered the partition's high watermark: lag figures are that old; over 3 s the partition cannot turn idle.",
    ),
    (
        "chainwatch_ingest_partition_event_time_seconds",
        "Largest event time read from each assigned partition: the slowest active one holds the watermark.",
    ),
    (
        "chainwatch_ingest_partition_idle",
        "1 when a partition is caught up and silent past the idle timeout (it no longer holds the watermark back).",
    ),
    (
        "chainwatch_ingest_partition_paused",
        "1 while watermark alignment holds a partition paused (ahead of the slowest, or waiting for a partition that has delivered nothing yet).",
    ),
    (
        "chainwatch_ingest_unassigned_partitions",
        "Partitions of the subscribed topics not assigned to this instance (0 while no broker connection is up): another member of the consumer group holds them (or a rebalance is under way), and the watermark waits for them.",
    ),
    (
        "chainwatch_ingest_paused_partitions",
        "Partitions paused because their event time ran more than [event_time] max_drift ahead of the slowest one (watermark alignment).",
    ),
    (
        "chainwatch_state_events_applied_total",
        "Events applied to state, by kind.",
    ),
    (
        "chainwatch_state_duplicate_events_total",
        "Events skipped because their event id was already applied.",
    ),
    (
        "chainwatch_state_orphan_events_total",
        "Events referring to a PO line, shipment or position not in state.",
    ),
    (
        "chainwatch_state_watermark_seconds",
        "Event-time watermark (Unix seconds): evaluation time of indicators.",
    ),
    (
        "chainwatch_state_open_po_lines",
        "Open purchase-order lines in state.",
    ),
    (
        "chainwatch_state_in_flight_shipments",
        "In-flight shipments in state.",
    ),
    (
        "chainwatch_state_inventory_positions",
        "Site-part inventory positions in state.",
    ),
    (
        "chainwatch_state_window_records",
        "Completed deliveries, reschedules and stops in the rolling window.",
    ),
    (
        "chainwatch_evaluation_duration_seconds",
        "Wall time of one evaluation of all indicators and rules.",
    ),
    ("chainwatch_evaluations_total", "Evaluations run."),
    (
        "chainwatch_evaluation_event_time_seconds",
        "Event time (Unix seconds) of the last evaluation: the end of the last evaluation step the watermark passed.",
    ),
    (
        "chainwatch_state_buffered_events",
        "Events received but not yet applied: their evaluation step is not complete (the watermark has not passed its end).",
    ),
    (
        "chainwatch_alert_transitions_total",
        "Alert transitions, by change (pending, firing, resolved, cancelled).",
    ),
    (
        "chainwatch_checkpoints_total",
        "Checkpoints written, by result (success | failure).",
    ),
    (
        "chainwatch_checkpoint_size_bytes",
        "Size of the last checkpoint written.",
    ),
    (
        "chainwatch_checkpoint_duration_seconds",
        "Time to encode and durably write one checkpoint.",
    ),
    (
        "chainwatch_checkpoint_last_success_timestamp_seconds",
        "Unix time of the last checkpoint written.",
    ),
    (
        "chainwatch_indicator_errors_total",
        "Indicator queries that failed, by indicator.",
    ),
    (
        "chainwatch_indicator_limit_exceeded_total",
        "Indicator queries stopped by the sandbox's time or memory limit, by indicator and limit.",
    ),
    (
        "chainwatch_indicator_last_duration_seconds",
        "Wall time of each indicator's query in the last evaluation (without the views it reads), by indicator.",
    ),
    (
        "chainwatch_indicator_view_errors_total",
        "Views that failed (their readers were not run), by view and reason (time, memory, error).",
    ),
    (
        "chainwatch_indicator_view_last_duration_seconds",
        "Wall time of each view in the last evaluation, by view.",
    ),
    ("chainwatch_rules_loaded", "Alerting rules loaded."),
    ("chainwatch_indicators_loaded", "Indicators loaded."),
    (
        "chainwatch_export_capped_rows",
        "Indicator rows left out of /metrics at the last evaluation by evaluation.max_exported_rows, by indicator.",
    ),
    (
        "chainwatch_export_capped_alerts",
        "Active alerts of a rule left out of /metrics at the last evaluation by evaluation.max_exported_rows (firing and critical ones are kept first); /api/alerts has them all.",
    ),
    (
        "chainwatch_rules_last_reload_success",
        "1 when the last reload of the rule files succeeded (or none was tried since start), 0 when it failed and the previous rules still run.",
    ),
    (
        "chainwatch_rules_last_reload_success_timestamp_seconds",
        "Unix time of the last successful load of the rule files (start-up included).",
    ),
    (
        "chainwatch_rules_reloads_total",
        "Reloads of the rule files, by result (success, failure).",
    ),
];

/// The `result` label values of `chainwatch_rules_reloads_total`.
pub const RELOAD_RESULTS: [&str; 2] = ["success", "failure"];

/// Families built per evaluation (not in the registry).
pub const ALERT_METRICS: &[(&str, &str)] = &[
    (
        "chainwatch_alerts",
        "Pending and firing alerts, like Prometheus' ALERTS: 1 per alert and state.",
    ),
    (
        "chainwatch_alerts_for_state_seconds",
        "Unix time an alert became active, like ALERTS_FOR_STATE.",
    ),
    (
        "chainwatch_alert_value",
        "The indicator value of each pending or firing alert.",
    ),
    (
        "chainwatch_alert_threshold",
        "The threshold each pending or firing alert crossed.",
    ),
];

fn help(name: &str) -> &'static str {
    SELF_METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, h)| *h)
        .expect("metric listed in SELF_METRICS")
}

/// The self-metrics of a running chainwatch.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub messages: IntCounterVec,
    pub bytes: IntCounterVec,
    pub skipped_offsets: IntCounterVec,
    pub reread: IntCounterVec,
    pub rejected: IntCounterVec,
    pub decode_declined: IntCounter,
    pub dead_letters: IntCounter,
    pub dead_letter_errors: IntCounter,
    pub batch_rows: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub connected: IntGauge,
    pub lag_query_errors: IntCounter,
    pub high_watermark_age: prometheus::GaugeVec,
    pub partition_event_time: prometheus::GaugeVec,
    pub partition_idle: IntGaugeVec,
    pub partition_paused: IntGaugeVec,
    pub paused_partitions: IntGauge,
    pub unassigned_partitions: IntGauge,
    pub applied: IntCounterVec,
    pub duplicates: IntCounter,
    pub orphans: IntCounter,
    pub watermark: prometheus::Gauge,
    pub open_lines: IntGauge,
    pub shipments: IntGauge,
    pub positions: IntGauge,
    pub window_records: IntGauge,
    pub eval_duration: Histogram,
    pub evaluations: IntCounter,
    pub evaluated_time: prometheus::Gauge,
    pub buffered: IntGauge,
    pub alert_transitions: IntCounterVec,
    pub checkpoints: IntCounterVec,
    pub checkpoint_bytes: IntGauge,
    pub checkpoint_duration: Histogram,
    pub checkpoint_time: prometheus::Gauge,
    pub indicator_errors: IntCounterVec,
    /// Queries stopped at a limit (`limit` = time | memory); also counted as errors.
    pub indicator_limits: IntCounterVec,
    pub indicator_duration: prometheus::GaugeVec,
    pub view_duration: prometheus::GaugeVec,
    pub view_errors: IntCounterVec,
    pub rules_loaded: IntGauge,
    pub indicators_loaded: IntGauge,
    /// Rows per indicator left out of /metrics by the cap at the last evaluation.
    pub capped_rows: IntGaugeVec,
    pub capped_alerts: IntGaugeVec,
    pub reload_success: IntGauge,
    pub reload_success_time: prometheus::Gauge,
    pub reloads: IntCounterVec,
    pub feed_records: IntCounterVec,
    pub feed_events: IntCounterVec,
    pub feed_rejected: IntCounterVec,
    pub feed_last_event: prometheus::GaugeVec,
    pub feeds_loaded: IntGauge,
    pub feed_reloads: IntCounterVec,
    pub network_suppliers: IntGaugeVec,
    pub network_records: IntCounterVec,
    pub tts: prometheus::GaugeVec,
    pub ttr: prometheus::GaugeVec,
    pub rei: prometheus::GaugeVec,
    pub lost_value: prometheus::GaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let opts = |n: &str| Opts::new(n, help(n));
        let hopts = |n: &str, buckets: Vec<f64>| HistogramOpts::new(n, help(n)).buckets(buckets);
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("valid metric definition");
                registry
                    .register(Box::new(m.clone()))
                    .expect("metric names are unique");
                m
            }};
        }
        let m = Metrics {
            messages: reg!(IntCounterVec::new(
                opts("chainwatch_ingest_messages_total"),
                &["topic"]
            )),
            bytes: reg!(IntCounterVec::new(
                opts("chainwatch_ingest_bytes_total"),
                &["topic"]
            )),
            skipped_offsets: reg!(IntCounterVec::new(
                opts("chainwatch_ingest_skipped_offsets_total"),
                &["topic"]
            )),
            reread: reg!(IntCounterVec::new(
                opts("chainwatch_ingest_reread_messages_total"),
                &["topic"]
            )),
            rejected: reg!(IntCounterVec::new(
                opts("chainwatch_ingest_rejected_total"),
                &["reason"]
            )),
            decode_declined: reg!(IntCounter::with_opts(opts(
                "chainwatch_ingest_decode_declined_messages_total"
            ))),
            dead_letters: reg!(IntCounter::with_opts(opts(
                "chainwatch_ingest_dead_letters_total"
            ))),
            dead_letter_errors: reg!(IntCounter::with_opts(opts(
                "chainwatch_ingest_dead_letter_errors_total"
            ))),
            batch_rows: reg!(Histogram::with_opts(hopts(
                "chainwatch_ingest_batch_rows",
                vec![1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 4096.0, 8192.0, 16384.0],
            ))),
            consumer_lag: reg!(IntGaugeVec::new(
                opts("chainwatch_ingest_consumer_lag_messages"),
                &["topic", "partition"]
            )),
            connected: reg!(IntGauge::with_opts(opts("chainwatch_ingest_connected"))),
            lag_query_errors: reg!(IntCounter::with_opts(opts(
                "chainwatch_ingest_lag_query_errors_total"
            ))),
            high_watermark_age: reg!(prometheus::GaugeVec::new(
                opts("chainwatch_ingest_high_watermark_age_seconds"),
                &["topic", "partition"]
            )),
            partition_event_time: reg!(prometheus::GaugeVec::new(
                opts("chainwatch_ingest_partition_event_time_seconds"),
                &["topic", "partition"]
            )),
            partition_idle: reg!(IntGaugeVec::new(
                opts("chainwatch_ingest_partition_idle"),
                &["topic", "partition"]
            )),
            partition_paused: reg!(IntGaugeVec::new(
                opts("chainwatch_ingest_partition_paused"),
                &["topic", "partition"]
            )),
            paused_partitions: reg!(IntGauge::with_opts(opts(
                "chainwatch_ingest_paused_partitions"
            ))),
            unassigned_partitions: reg!(IntGauge::with_opts(opts(
                "chainwatch_ingest_unassigned_partitions"
            ))),
            applied: reg!(IntCounterVec::new(
                opts("chainwatch_state_events_applied_total"),
                &["kind"]
            )),
            duplicates: reg!(IntCounter::with_opts(opts(
                "chainwatch_state_duplicate_events_total"
            ))),
            orphans: reg!(IntCounter::with_opts(opts(
                "chainwatch_state_orphan_events_total"
            ))),
            watermark: reg!(prometheus::Gauge::with_opts(opts(
                "chainwatch_state_watermark_seconds"
            ))),
            open_lines: reg!(IntGauge::with_opts(opts("chainwatch_state_open_po_lines"))),
            shipments: reg!(IntGauge::with_opts(opts(
                "chainwatch_state_in_flight_shipments"
            ))),
            positions: reg!(IntGauge::with_opts(opts(
                "chainwatch_state_inventory_positions"
            ))),
            window_records: reg!(IntGauge::with_opts(opts("chainwatch_state_window_records"))),
            eval_duration: reg!(Histogram::with_opts(hopts(
                "chainwatch_evaluation_duration_seconds",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ))),
            evaluations: reg!(IntCounter::with_opts(opts("chainwatch_evaluations_total"))),
            evaluated_time: reg!(prometheus::Gauge::with_opts(opts(
                "chainwatch_evaluation_event_time_seconds"
            ))),
            buffered: reg!(IntGauge::with_opts(opts(
                "chainwatch_state_buffered_events"
            ))),
            alert_transitions: reg!(IntCounterVec::new(
                opts("chainwatch_alert_transitions_total"),
                &["change"]
            )),
            checkpoints: reg!(IntCounterVec::new(
                opts("chainwatch_checkpoints_total"),
                &["result"]
            )),
            checkpoint_bytes: reg!(IntGauge::with_opts(opts(
                "chainwatch_checkpoint_size_bytes"
            ))),
            checkpoint_duration: reg!(Histogram::with_opts(hopts(
                "chainwatch_checkpoint_duration_seconds",
                vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ))),
            checkpoint_time: reg!(prometheus::Gauge::with_opts(opts(
                "chainwatch_checkpoint_last_success_timestamp_seconds"
            ))),
            indicator_errors: reg!(IntCounterVec::new(
                opts("chainwatch_indicator_errors_total"),
                &["indicator"]
            )),
            indicator_limits: reg!(IntCounterVec::new(
                opts("chainwatch_indicator_limit_exceeded_total"),
                &["indicator", "limit"]
            )),
            indicator_duration: reg!(prometheus::GaugeVec::new(
                opts("chainwatch_indicator_last_duration_seconds"),
                &["indicator"]
            )),
            view_duration: reg!(prometheus::GaugeVec::new(
                opts("chainwatch_indicator_view_last_duration_seconds"),
                &["view"]
            )),
            view_errors: reg!(IntCounterVec::new(
                opts("chainwatch_indicator_view_errors_total"),
                &["view", "reason"]
            )),
            rules_loaded: reg!(IntGauge::with_opts(opts("chainwatch_rules_loaded"))),
            indicators_loaded: reg!(IntGauge::with_opts(opts("chainwatch_indicators_loaded"))),
            capped_alerts: reg!(IntGaugeVec::new(
                opts("chainwatch_export_capped_alerts"),
                &["rule"]
            )),
            capped_rows: reg!(IntGaugeVec::new(
                opts("chainwatch_export_capped_rows"),
                &["indicator"]
            )),
            reload_success: reg!(IntGauge::with_opts(opts(
                "chainwatch_rules_last_reload_success"
            ))),
            reload_success_time: reg!(prometheus::Gauge::with_opts(opts(
                "chainwatch_rules_last_reload_success_timestamp_seconds"
            ))),
            reloads: reg!(IntCounterVec::new(
                opts("chainwatch_rules_reloads_total"),
                &["result"]
            )),
            feed_records: reg!(IntCounterVec::new(
                opts("chainwatch_feed_records_total"),
                &["feed"]
            )),
            feed_events: reg!(IntCounterVec::new(
                opts("chainwatch_feed_events_total"),
                &["feed"]
            )),
            feed_rejected: reg!(IntCounterVec::new(
                opts("chainwatch_feed_rejected_total"),
                &["feed", "reason"]
            )),
            feed_last_event: reg!(prometheus::GaugeVec::new(
                opts("chainwatch_feed_last_event_timestamp_seconds"),
                &["feed"]
            )),
            feeds_loaded: reg!(IntGauge::with_opts(opts("chainwatch_feeds_loaded"))),
            feed_reloads: reg!(IntCounterVec::new(
                opts("chainwatch_feeds_reloads_total"),
                &["result"]
            )),
            network_suppliers: reg!(IntGaugeVec::new(
                opts("chainwatch_network_suppliers"),
                &["tier"]
            )),
            network_records: reg!(IntCounterVec::new(
                opts("chainwatch_network_records_total"),
                &["result"]
            )),
            tts: reg!(prometheus::GaugeVec::new(
                opts("chainwatch_network_time_to_survive_seconds"),
                &["supplier"]
            )),
            ttr: reg!(prometheus::GaugeVec::new(
                opts("chainwatch_network_time_to_recover_seconds"),
                &["supplier"]
            )),
            rei: reg!(prometheus::GaugeVec::new(
                opts("chainwatch_network_risk_exposure_index"),
                &["supplier"]
            )),
            lost_value: reg!(prometheus::GaugeVec::new(
                opts("chainwatch_network_lost_value"),
                &["supplier"]
            )),
            registry,
        };
        for r in ["success", "failure"] {
            m.feed_reloads.with_label_values(&[r]);
            m.checkpoints.with_label_values(&[r]);
        }
        for c in crate::alerts::history::Change::ALL {
            m.alert_transitions.with_label_values(&[c.as_str()]);
        }
        for r in ["applied", "refused"] {
            m.network_records.with_label_values(&[r]);
        }
        // Reasons are a closed set: export them all at 0 so rate() works from the start.
        for r in crate::ingest::decode::RejectReason::ALL {
            m.rejected.with_label_values(&[r.as_str()]);
        }
        for r in RELOAD_RESULTS {
            m.reloads.with_label_values(&[r]);
        }
        // The rules a pipeline starts with were loaded successfully (or it did not start).
        m.reload_success.set(1);
        m
    }

    /// Render self-metrics plus the given evaluation families as Prometheus text.
    pub fn render(&self, evaluation: &[MetricFamily]) -> String {
        let mut families = self.registry.gather();
        // The text encoder refuses a family without samples (no alert active, an indicator
        // with no rows): leave those out rather than fail the whole page.
        families.extend(
            evaluation
                .iter()
                .filter(|f| !f.get_metric().is_empty())
                .cloned(),
        );
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "Could not encode metrics.");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

fn gauge_metric(labels: &BTreeMap<String, String>, value: f64) -> Metric {
    let mut m = Metric::default();
    m.set_label(labels.iter().map(|(k, v)| label(k, v)).collect());
    let mut g = Gauge::default();
    g.set_value(value);
    m.set_gauge(g);
    m
}

fn family(name: String, help: String, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name);
    f.set_help(help);
    f.set_field_type(MetricType::GAUGE);
    f.set_metric(metrics);
    f
}

/// The metric name of an indicator column, and the factor to base units.
pub fn indicator_metric_name(indicator: &str, column: &str) -> (String, f64) {
    match column.strip_suffix("_days") {
        Some(stem) => (format!("chainwatch_{indicator}_{stem}_seconds"), 86_400.0),
        None => (format!("chainwatch_{indicator}_{column}"), 1.0),
    }
}

/// Indicator gauges, at most `max_rows` rows per indicator so a flood of new ids (suppliers,
/// parts, lanes) cannot blow up `/metrics`. Rows that have an active alert are kept first (a
/// supply manager must see the value behind an alert), then the others in label order;
/// [`capped_rows`] counts the rows left out (`chainwatch_export_capped_rows`).
/// Rules still see every row: only the export is capped.
pub fn indicator_families(
    results: &[IndicatorResult],
    alerts: &[Alert],
    max_rows: usize,
) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    for r in results {
        let Some(first) = r.rows.first() else {
            continue;
        };
        let rows = kept_rows(r, alerts, max_rows);
        for column in first.values.keys() {
            let (name, factor) = indicator_metric_name(&r.name, column);
            let metrics = rows
                .iter()
                .filter_map(|row| {
                    let v = row.values.get(column).copied().flatten()?;
                    v.is_finite().then(|| gauge_metric(&row.labels, v * factor))
                })
                .collect::<Vec<_>>();
            if metrics.is_empty() {
                continue;
            }
            let help = format!("Indicator {}, column {column}.", r.name);
            out.push(family(name, help, metrics));
        }
    }
    out
}

/// Rows [`indicator_families`] leaves out, per indicator (without building the series).
pub fn capped_rows(results: &[IndicatorResult], max_rows: usize) -> BTreeMap<String, usize> {
    results
        .iter()
        .map(|r| (r.name.clone(), r.rows.len().saturating_sub(max_rows)))
        .collect()
}

/// Alerts [`alert_families`] leaves out, per rule with any left out.
pub fn capped_alerts(alerts: &[Alert], max_per_rule: usize) -> BTreeMap<String, usize> {
    let mut active: BTreeMap<&str, usize> = BTreeMap::new();
    for a in alerts.iter().filter(|a| a.state != AlertState::Resolved) {
        *active.entry(a.rule.as_str()).or_default() += 1;
    }
    active
        .into_iter()
        .filter(|(_, n)| *n > max_per_rule)
        .map(|(rule, n)| (rule.to_string(), n - max_per_rule))
        .collect()
}

/// The rows to export: all when within `max_rows`, else alerted rows first, then label order.
fn kept_rows<'a>(
    r: &'a IndicatorResult,
    alerts: &[Alert],
    max_rows: usize,
) -> Vec<&'a IndicatorRow> {
    if r.rows.len() <= max_rows {
        return r.rows.iter().collect();
    }
    // A row is alerted when an active alert carries all its labels. Every row of an indicator
    // has the same label columns: project each alert onto them once (a lookup per row, not a
    // scan of every alert).
    let keys: Vec<&String> = r.rows[0].labels.keys().collect();
    let projected: std::collections::HashSet<Vec<&str>> = alerts
        .iter()
        .filter(|a| a.state != AlertState::Resolved)
        .filter_map(|a| {
            keys.iter()
                .map(|k| a.labels.get(*k).map(String::as_str))
                .collect::<Option<Vec<&str>>>()
        })
        .collect();
    let alerted = |row: &IndicatorRow| {
        let values: Vec<&str> = row.labels.values().map(String::as_str).collect();
        row.labels.len() == keys.len() && projected.contains(&values)
    };
    let mut rows: Vec<(bool, &IndicatorRow)> =
        r.rows.iter().map(|row| (!alerted(row), row)).collect();
    rows.sort_by(|a, b| (a.0, &a.1.labels).cmp(&(b.0, &b.1.labels)));
    rows.into_iter()
        .take(max_rows)
        .map(|(_, row)| row)
        .collect()
}

/// `chainwatch_alerts` and friends, from the pending and firing alerts.
/// The alert series of the active alerts, at most `max_per_rule` per rule (firing before
/// pending, critical before warning, the oldest first): a flood of new label values (supplier
/// ids) cannot blow up `/metrics`. [`capped_alerts`] counts the alerts left out.
pub fn alert_families(alerts: &[Alert], max_per_rule: usize) -> Vec<MetricFamily> {
    let mut by_rule: BTreeMap<&str, Vec<&Alert>> = BTreeMap::new();
    for a in alerts.iter().filter(|a| a.state != AlertState::Resolved) {
        by_rule.entry(a.rule.as_str()).or_default().push(a);
    }
    let mut active = Vec::new();
    for (_, mut list) in by_rule {
        if list.len() > max_per_rule {
            list.sort_by_key(|a| {
                (
                    a.state != AlertState::Firing,
                    std::cmp::Reverse(a.severity),
                    a.active_at,
                )
            });
            list.truncate(max_per_rule);
        }
        active.extend(list);
    }
    let mut alerts_m = Vec::new();
    let mut for_state = Vec::new();
    let mut values = Vec::new();
    let mut thresholds = Vec::new();
    for a in active {
        let mut labels = a.labels.clone();
        labels.insert("alertname".into(), a.rule.clone());
        let state = match a.state {
            AlertState::Pending => "pending",
            _ => "firing",
        };
        let mut with_state = labels.clone();
        with_state.insert("alertstate".into(), state.into());
        alerts_m.push(gauge_metric(&with_state, 1.0));
        for_state.push(gauge_metric(&labels, a.active_at as f64 / 1000.0));
        values.push(gauge_metric(&labels, a.value));
        thresholds.push(gauge_metric(&labels, a.threshold));
    }
    ALERT_METRICS
        .iter()
        .zip([alerts_m, for_state, values, thresholds])
        .map(|((name, help), m)| family(name.to_string(), help.to_string(), m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Severity;

    #[test]
    fn no_active_alert_still_renders_the_page() {
        let m = Metrics::new();
        let families = alert_families(&[], 10);
        let text = m.render(&families);
        assert!(
            text.contains("# TYPE chainwatch_ingest_connected gauge"),
            "{text}"
        );
        assert!(!text.contains("chainwatch_alerts{"));
    }

    #[test]
    fn a_flood_of_alerts_is_capped_per_rule_keeping_the_most_urgent() {
        let alert = |rule: &str, i: usize, state: AlertState, severity: Severity| Alert {
            rule: rule.into(),
            labels: [("supplier".to_string(), format!("S-{i}"))].into(),
            state,
            severity,
            value: 1.0,
            threshold: 0.5,
            active_at: i as i64,
            fired_at: None,
            resolved_at: None,
            last_evaluated: 0,
            annotations: BTreeMap::new(),
            alternates: Vec::new(),
        };
        let mut alerts: Vec<Alert> = (0..1_000)
            .map(|i| alert("Flood", i, AlertState::Pending, Severity::Warning))
            .collect();
        alerts.push(alert("Flood", 5_000, AlertState::Firing, Severity::Warning));
        alerts.push(alert(
            "Flood",
            6_000,
            AlertState::Firing,
            Severity::Critical,
        ));
        alerts.push(alert(
            "Flood",
            7_000,
            AlertState::Resolved,
            Severity::Critical,
        ));
        alerts.push(alert("Calm", 1, AlertState::Firing, Severity::Warning));
        let families = alert_families(&alerts, 3);
        let capped = capped_alerts(&alerts, 3);
        assert_eq!(capped.get("Flood"), Some(&999), "1,002 active, 3 kept");
        assert_eq!(capped.get("Calm"), None);
        let series = &families[0].get_metric();
        assert_eq!(series.len(), 4);
        let suppliers: Vec<String> = series
            .iter()
            .filter_map(|m| {
                let l = m.get_label();
                l.iter()
                    .find(|p| p.name() == "supplier")
                    .map(|p| p.value().to_string())
            })
            .collect();
        assert_eq!(suppliers, ["S-1", "S-6000", "S-5000", "S-0"]);
    }

    #[test]
    fn every_self_metric_is_registered_and_rendered() {
        let m = Metrics::new();
        m.messages.with_label_values(&["t"]).inc();
        m.bytes.with_label_values(&["t"]).inc();
        m.skipped_offsets.with_label_values(&["t"]).inc();
        m.reread.with_label_values(&["t"]).inc();
        m.consumer_lag.with_label_values(&["t", "0"]).set(0);
        m.high_watermark_age.with_label_values(&["t", "0"]).set(0.0);
        m.partition_event_time
            .with_label_values(&["t", "0"])
            .set(1.0);
        m.partition_idle.with_label_values(&["t", "0"]).set(0);
        m.partition_paused.with_label_values(&["t", "0"]).set(0);
        m.applied.with_label_values(&["milestone"]).inc();
        m.indicator_errors.with_label_values(&["x"]).inc();
        m.indicator_limits.with_label_values(&["x", "time"]).inc();
        m.indicator_duration.with_label_values(&["x"]).set(0.1);
        m.view_duration.with_label_values(&["v"]).set(0.1);
        m.view_errors.with_label_values(&["v", "time"]).inc();
        m.capped_rows.with_label_values(&["x"]).set(0);
        m.capped_alerts.with_label_values(&["x"]).set(0);
        for v in [&m.feed_records, &m.feed_events] {
            v.with_label_values(&["f"]).inc();
        }
        m.feed_rejected
            .with_label_values(&["f", "invalid_date"])
            .inc();
        m.feed_last_event.with_label_values(&["f"]).set(1.0);
        m.network_suppliers.with_label_values(&["1"]).set(1);
        for g in [&m.tts, &m.ttr, &m.rei, &m.lost_value] {
            g.with_label_values(&["S"]).set(1.0);
        }
        let text = m.render(&[]);
        for (name, _) in SELF_METRICS {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
            assert!(name.starts_with("chainwatch_"));
        }
        assert!(text.contains("chainwatch_ingest_rejected_total{reason=\"late_event\"} 0"));
        assert!(text.contains("chainwatch_rules_reloads_total{result=\"failure\"} 0"));
        assert!(text.contains("chainwatch_rules_last_reload_success 1"));
    }

    fn supplier_rows(n: usize) -> IndicatorResult {
        IndicatorResult {
            name: "supplier_delivery".into(),
            rows: (0..n)
                .map(|i| IndicatorRow {
                    labels: BTreeMap::from([("supplier".to_string(), format!("S{i:05}"))]),
                    values: BTreeMap::from([("open_lines".to_string(), Some(i as f64))]),
                })
                .collect(),
            batch: arrow::record_batch::RecordBatch::new_empty(std::sync::Arc::new(
                arrow::datatypes::Schema::empty(),
            )),
        }
    }

    fn exported(families: &[MetricFamily]) -> Vec<String> {
        families[0]
            .get_metric()
            .iter()
            .map(|m| m.get_label()[0].value().to_string())
            .collect()
    }

    #[test]
    fn a_flood_of_ids_is_capped_keeping_alerted_rows_and_counting_the_rest() {
        let alert = |supplier: &str, state| Alert {
            rule: "R".into(),
            labels: BTreeMap::from([
                ("alertname".to_string(), "R".to_string()),
                ("supplier".to_string(), supplier.to_string()),
            ]),
            state,
            severity: crate::alerts::Severity::Warning,
            value: 1.0,
            threshold: 1.0,
            active_at: 0,
            fired_at: None,
            resolved_at: None,
            last_evaluated: 0,
            annotations: BTreeMap::new(),
            alternates: Vec::new(),
        };
        let results = [supplier_rows(50_000)];
        let alerts = [
            alert("S49999", AlertState::Firing),
            alert("S20000", AlertState::Pending),
            alert("S30000", AlertState::Resolved),
        ];
        let families = indicator_families(&results, &alerts, 3);
        let capped = capped_rows(&results, 3);
        assert_eq!(exported(&families), ["S20000", "S49999", "S00000"]);
        assert_eq!(capped["supplier_delivery"], 49_997);
        let families = indicator_families(&results, &[], 100_000);
        let capped = capped_rows(&results, 100_000);
        assert_eq!(families[0].get_metric().len(), 50_000);
        assert_eq!(capped["supplier_delivery"], 0);
    }

    #[test]
    fn day_columns_are_exported_in_seconds() {
        assert_eq!(
            indicator_metric_name("supplier_delivery", "mean_delay_days"),
            (
                "chainwatch_supplier_delivery_mean_delay_seconds".into(),
                86_400.0
            )
        );
        assert_eq!(
            indicator_metric_name("supplier_delivery", "on_time_ratio").0,
            "chainwatch_supplier_delivery_on_time_ratio"
        );
    }
}
