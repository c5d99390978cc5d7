//! Built-in simulator of a supply network with injected disruptions.
//!
//! In: a [`SimConfig`] (seed, start time, network size, whether to inject the disruption
//! scenario, how often to emit malformed records). Out: [`SimEvent`]s, each one canonical JSON
//! event as in `docs/events.md` with the [`Source`] and message key to publish it with, in
//! non-decreasing `event_time` order; plus the [`Network`] master data and the injected
//! [`Disruption`]s as ground truth.
//!
//! The same seed gives byte-identical events however [`Simulator::run_until`] is chunked: the
//! world is generated a whole simulated day at a time into a time-ordered buffer (ties broken
//! by generation order), all randomness comes from one `ChaCha8Rng` seeded with
//! [`SimConfig::seed`], and event ids are numbered in emission order.
//!
//! Layout:
//! - `network.rs`: suppliers (tier 1 and 2), parts, sites, lanes, alternates.
//! - `scenario.rs`: the disruption schedule (supplier slip day 20, hub congestion day 25,
//!   stock-out day 28) and its targets.
//! - `engine.rs`: the daily loop (inventory positions, ordering, demand), warm-up, the buffer.
//! - `orders.rs`: one PO's life, planned when it is placed; `transit.rs`: its shipment's trip.
//! - `record.rs`: event bodies and JSON; `malformed.rs`: damaged records; `clock.rs`: time.
//! - `tier2.rs`: the tier-2 suppliers' own feed files ([`Tier2Feeds`]: CSV reports, EPCIS), not
//!   canonical events, from a separate RNG so the canonical stream does not change.

mod clock;
mod engine;
mod malformed;
mod network;
mod orders;
mod record;
mod scenario;
mod tier2;
mod transit;

#[cfg(test)]
mod tests;

use chrono::{DateTime, TimeZone, Utc};

use crate::events::Source;
use engine::Engine;
use record::Record;

pub use malformed::{Malformation, IMPOSSIBLE_DATE, UNKNOWN_KIND};
pub use network::{Alternate, Lane, Mode, Network, Part, PartUse, Site, Supplier, TierLink};
pub use scenario::{
    Disruption, DisruptionKind, CONGESTION_END_DAY, CONGESTION_FACTOR, CONGESTION_START_DAY,
    SLIP_END_DAY, SLIP_START_DAY, STOCK_OUT_END_DAY, STOCK_OUT_START_DAY, STOCK_OUT_SURGE,
};
pub use tier2::{FeedMessage, Tier2Feeds, TIER2_SILENT_DAY, TIER2_SLIP_START_DAY, TIER2_TOPICS};

/// Errors of an unusable simulator configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    /// A count that must be positive is zero.
    #[error("sim: {field} must be at least 1")]
    Zero {
        /// The offending config field.
        field: &'static str,
    },
    /// `malformed_every = Some(0)` would replace every event and then some.
    #[error("sim: malformed_every must be at least 1 when set")]
    MalformedEveryZero,
    /// The disruption scenario needs a second tier-1 supplier to compare against.
    #[error("sim: disruptions need at least 2 tier-1 suppliers, got {tier1_suppliers}")]
    TooFewSuppliers {
        /// The configured number of tier-1 suppliers.
        tier1_suppliers: usize,
    },
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Seeds all randomness; the same seed gives the same events.
    pub seed: u64,
    /// Simulated clock at the start (day 0); every event time is at or after it.
    pub start: DateTime<Utc>,
    /// Number of tier-1 suppliers (they ship to our sites).
    pub tier1_suppliers: usize,
    /// Number of tier-2 suppliers (they feed tier-1 suppliers; master data only).
    pub tier2_suppliers: usize,
    /// Number of consuming sites.
    pub sites: usize,
    /// Parts made by each tier-1 supplier.
    pub parts_per_supplier: usize,
    /// Inject the disruption scenario (see [`SimConfig::start`] + the `*_DAY` constants).
    pub disruptions: bool,
    /// `Some(n)`: every n-th event is replaced by a malformed record, cycling through
    /// [`Malformation::ALL`].
    pub malformed_every: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            start: Utc
                .with_ymd_and_hms(2026, 1, 5, 0, 0, 0)
                .single()
                .expect("2026-01-05T00:00:00Z is a valid instant"),
            tier1_suppliers: 24,
            tier2_suppliers: 12,
            sites: 3,
            parts_per_supplier: 3,
            disruptions: true,
            malformed_every: None,
        }
    }
}

impl SimConfig {
    /// Checks that the configuration produces a meaningful stream. [`Simulator::new`] accepts
    /// any configuration (a degenerate one simply yields few or no events); a CLI should call
    /// this first.
    pub fn validate(&self) -> Result<(), SimError> {
        for (field, value) in [
            ("tier1_suppliers", self.tier1_suppliers),
            ("sites", self.sites),
            ("parts_per_supplier", self.parts_per_supplier),
        ] {
            if value == 0 {
                return Err(SimError::Zero { field });
            }
        }
        if self.malformed_every == Some(0) {
            return Err(SimError::MalformedEveryZero);
        }
        if self.disruptions && self.tier1_suppliers < 2 {
            return Err(SimError::TooFewSuppliers {
                tier1_suppliers: self.tier1_suppliers,
            });
        }
        Ok(())
    }
}

/// One simulated message, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// The system that emits it; decides the default topic.
    pub source: Source,
    /// Message key: the supplier id for ERP and logistics events, the site id for WMS events.
    pub key: String,
    /// The event's time (also inside the payload, unless the record is malformed).
    pub event_time: DateTime<Utc>,
    /// One JSON object as in `docs/events.md` (or a malformed record).
    pub payload: Vec<u8>,
}

/// A deterministic, seeded simulation of the network, advanced by [`Simulator::run_until`].
pub struct Simulator {
    cfg: SimConfig,
    engine: Engine,
    disruptions: Vec<Disruption>,
    /// Events handed out so far; the next event's sequence number is this plus one.
    emitted: u64,
    now: DateTime<Utc>,
}

impl Simulator {
    /// Builds the network, the scenario and the warm-up state; no event is emitted yet.
    pub fn new(cfg: SimConfig) -> Self {
        let engine = Engine::new(&cfg);
        let disruptions = engine.scenario.disruptions(&engine.network, &engine.topo);
        Simulator {
            now: cfg.start,
            cfg,
            engine,
            disruptions,
            emitted: 0,
        }
    }

    /// All events with `event_time <= until` not returned before, in non-decreasing
    /// `event_time` order. A call with `until` earlier than [`Simulator::now`] returns nothing.
    pub fn run_until(&mut self, until: DateTime<Utc>) -> Vec<SimEvent> {
        self.engine.generate_through(until);
        let mut out = Vec::new();
        while let Some(p) = self.engine.pop_through(until) {
            out.push(self.emit(p));
        }
        self.now = self.now.max(until);
        out
    }

    /// How far [`Simulator::run_until`] has gone: the latest `until` passed so far, or `start`
    /// before the first call.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The simulated network: suppliers, parts, sites, lanes, tier links, alternates.
    pub fn network(&self) -> &Network {
        &self.engine.network
    }

    /// The injected disruptions (empty when `disruptions` is off).
    pub fn disruptions(&self) -> &[Disruption] {
        &self.disruptions
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    fn emit(&mut self, p: record::Pending) -> SimEvent {
        self.emitted += 1;
        let event_id = format!("sim-{}-{:08}", self.cfg.seed, self.emitted);
        let record = Record {
            event_id: &event_id,
            event_time: p.time,
            source: &p.source,
            body: &p.body,
        };
        let mut payload = record.to_bytes();
        if let Some(m) = Malformation::for_event(self.emitted, self.cfg.malformed_every) {
            payload = m.apply(&payload);
        }
        SimEvent {
            source: p.body.source(),
            key: p.body.key().to_string(),
            event_time: p.time,
            payload,
        }
    }
}
