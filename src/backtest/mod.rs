//! Backtesting: replay recorded history through the rules and score the alerts against what
//! really happened.
//!
//! In: recorded canonical events (a JSON-lines file or a Kafka topic), a rules directory, an
//! evaluation step and a horizon. Out: a [`report::Report`] of every alert episode, the
//! breaches found in the data (late deliveries, stock-outs), and per rule counts, precision,
//! recall and warning lead times; rendered as a text table, JSON, or a self-contained HTML page
//! with an SVG timeline.
//!
//! - `source.rs`: events file / topic -> [`source::EventLog`] (decoded, sorted by event time);
//! - `replay.rs`: the deterministic event-time replay -> transitions and episodes;
//! - `breaches.rs`: late deliveries and stock-outs found while replaying;
//! - `score.rs`: rule -> breach kind mapping, precision, recall, lead time;
//! - `report.rs`: the report and its three renderings.
//!
//! `chainwatch rules test` (crate::ruletest) runs on the same replay.

pub mod breaches;
pub mod replay;
pub mod report;
pub mod score;
pub mod source;

/// Serializers writing event-time milliseconds as RFC 3339, for JSON people also read.
pub(crate) mod ser {
    /// `ms` as `2026-01-05T00:00:00Z`.
    pub use crate::alerts::history::ser::time::serialize as time;
}
