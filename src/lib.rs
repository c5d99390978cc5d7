//! chainwatch: supply-chain risk early warning on the event streams manufacturers already have.
//!
//! # Layout (the modules follow the data flow)
//!
//! - [`config`]: strict TOML configuration -> validated [`config::Config`].
//! - [`events`]: the canonical ERP / WMS / logistics events and their Arrow schemas.
//! - [`feeds`]: supplier feed definitions (CSV / JSON in their own formats) mapped to
//!   canonical events, and their dry run (`chainwatch feeds validate`).
//! - [`ingest`]: Kafka consumer, JSON -> Arrow decoding and validation, feed mapping, dead
//!   letters, the per-partition event-time watermark.
//! - [`state`]: the event buffer (events wait until the watermark passes their evaluation
//!   step), open PO lines, shipments, inventory and a rolling window as Arrow tables, and
//!   checkpoints (state + alerts + offsets, atomically).
//! - [`indicators`]: DataFusion SQL over the state tables, in event time.
//! - [`rules`]: threshold rule files (Prometheus alerting-rule shape), parsed and checked.
//! - [`network`]: the supply network (tiers, links, alternates): roll-up paths, concentration,
//!   time to survive / recover and the risk exposure ranking.
//! - [`catalog`]: master data in force (feeds + network from files and the network topic),
//!   reloaded while running.
//! - [`alerts`]: the alert state machine (pending -> firing -> resolved) keyed by label set,
//!   with the ranked alternates of the parts an alert names, and the alert history.
//! - [`export`]: metrics and the HTTP API.
//! - [`pipeline`]: wires the stages together with bounded channels; restores the newest
//!   checkpoint on start.
//! - [`reload`]: hot reload of the rules (file change, SIGHUP, `POST /-/reload`).
//! - [`sim`] and [`demo`]: the simulated supply network and its Kafka producer.
//! - [`backtest`]: replay of recorded events through the rules, scored against real breaches.
//! - [`ruletest`]: rule unit tests (`chainwatch rules test`), on the same replay.

pub mod alerts;
pub mod backtest;
pub mod catalog;
pub mod config;
pub mod demo;
pub mod events;
pub mod export;
pub mod feeds;
pub mod indicators;
pub mod ingest;
pub mod network;
pub mod pipeline;
pub mod reload;
pub mod rules;
pub mod ruletest;
pub mod sim;
pub mod state;
