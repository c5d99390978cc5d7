//! The injected disruption scenario: which entities are hit, when, and how hard.
//!
//! In: the network and the simulated start time. Out: a [`Scenario`] the order planner and the
//! daily inventory step consult ("is this supplier slipping for a line due then?", "is this hub
//! congested?", "how much does demand surge?"), and the public [`Disruption`] records.
//!
//! Schedule, in days after `SimConfig::start`:
//! - day 20..50, [`DisruptionKind::SupplierSlip`]: one tier-1 supplier (with several parts,
//!   preferably on short road/rail/air lanes) delivers 6-15 days late on nearly every line due
//!   from day 12 on, so lines are overdue from day ~14 and late receipts arrive from day ~19
//!   (its 30-day on-time ratio is below 0.6 around day 20-25 and about 0.2-0.45 by day 35).
//!   From day 20 it re-confirms open late lines with later dates, and its confirmations of new
//!   lines are often rescheduled or backordered.
//! - day 25..45, [`DisruptionKind::PortCongestion`]: shipments leaving one hub (SGSIN when it
//!   serves a few lanes, else the busiest) from day 25 on dwell about 5x the normal 1-3 days
//!   there; some get a `held` milestone, all get an ETA update, sent from day 25 on.
//! - day 28..42, [`DisruptionKind::StockOut`]: one part at one site sees ~3x demand and every
//!   inbound that would arrive in days 28..42 is held or rescheduled to day 42-44.

use chrono::{DateTime, Duration, Utc};

use super::network::{Network, Topology};
use super::SimConfig;

/// First day of the supplier slip.
pub const SLIP_START_DAY: i64 = 20;
/// Day the slipping supplier recovers (lines due from then on are normal again).
pub const SLIP_END_DAY: i64 = 50;
/// Lines due this many days before the slip starts are already delivered late.
pub const SLIP_LOOKBACK_DAYS: i64 = 8;
/// First day of the hub congestion (departures from then on are delayed).
pub const CONGESTION_START_DAY: i64 = 25;
/// Day the hub clears (arrivals from then on dwell normally).
pub const CONGESTION_END_DAY: i64 = 45;
/// Dwell multiplier at the congested hub.
pub const CONGESTION_FACTOR: f64 = 5.0;
/// First day of the demand surge and inbound hold of the stock-out part.
pub const STOCK_OUT_START_DAY: i64 = 28;
/// Last day (exclusive) of the surge; held inbound is released from this day on.
pub const STOCK_OUT_END_DAY: i64 = 42;
/// Demand multiplier of the stock-out part at its site.
pub const STOCK_OUT_SURGE: f64 = 3.0;

/// What kind of disruption was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisruptionKind {
    /// A tier-1 supplier delivers late, reschedules and backorders.
    SupplierSlip,
    /// A transshipment hub holds shipments far longer than usual.
    PortCongestion,
    /// A part at a site runs out: demand surges while its inbound is delayed.
    StockOut,
}

/// One injected disruption, as ground truth for evaluating alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct Disruption {
    /// What happened.
    pub kind: DisruptionKind,
    /// The ids hit: `[supplier]`, `[hub LOCODE]` or `[site, part]`.
    pub targets: Vec<String>,
    /// When the disruption starts acting on events.
    pub start: DateTime<Utc>,
    /// When it stops acting on new lines, arrivals or demand.
    pub end: DateTime<Utc>,
}

/// A disruption's target and active window.
#[derive(Debug, Clone)]
pub(super) struct Window<T> {
    pub target: T,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl<T> Window<T> {
    fn new(target: T, start: DateTime<Utc>, from: i64, to: i64) -> Self {
        Window {
            target,
            start: start + Duration::days(from),
            end: start + Duration::days(to),
        }
    }
}

/// The resolved scenario: targets as indices into the network.
#[derive(Debug, Clone, Default)]
pub(super) struct Scenario {
    /// Index of the slipping tier-1 supplier.
    pub slip: Option<Window<usize>>,
    /// LOCODE of the congested hub.
    pub congestion: Option<Window<String>>,
    /// Index of the part-site that runs out.
    pub stock_out: Option<Window<usize>>,
}

impl Scenario {
    /// Picks the targets deterministically from the network (no RNG involved).
    pub fn build(cfg: &SimConfig, net: &Network, topo: &Topology) -> Self {
        if !cfg.disruptions {
            return Scenario::default();
        }
        let hub = congested_hub(net);
        let slip = pick_slip_supplier(net, topo, hub.as_deref());
        let stock_out = pick_stock_out(net, topo, hub.as_deref(), slip);
        Scenario {
            slip: slip.map(|s| Window::new(s, cfg.start, SLIP_START_DAY, SLIP_END_DAY)),
            congestion: hub
                .map(|h| Window::new(h, cfg.start, CONGESTION_START_DAY, CONGESTION_END_DAY)),
            stock_out: stock_out
                .map(|ps| Window::new(ps, cfg.start, STOCK_OUT_START_DAY, STOCK_OUT_END_DAY)),
        }
    }

    /// The public description of what is injected.
    pub fn disruptions(&self, net: &Network, topo: &Topology) -> Vec<Disruption> {
        let mut out = Vec::new();
        if let Some(w) = &self.slip {
            out.push(Disruption {
                kind: DisruptionKind::SupplierSlip,
                targets: vec![net.suppliers[w.target].id.clone()],
                start: w.start,
                end: w.end,
            });
        }
        if let Some(w) = &self.congestion {
            out.push(Disruption {
                kind: DisruptionKind::PortCongestion,
                targets: vec![w.target.clone()],
                start: w.start,
                end: w.end,
            });
        }
        if let Some(w) = &self.stock_out {
            let ps = &topo.part_sites[w.target];
            out.push(Disruption {
                kind: DisruptionKind::StockOut,
                targets: vec![net.sites[ps.site].id.clone(), net.parts[ps.part].id.clone()],
                start: w.start,
                end: w.end,
            });
        }
        out
    }

    /// Whether `supplier` delivers a line due on the day starting at `due` late.
    pub fn delivers_late(&self, supplier: usize, due: DateTime<Utc>) -> bool {
        self.slip.as_ref().is_some_and(|w| {
            w.target == supplier
                && due >= w.start - Duration::days(SLIP_LOOKBACK_DAYS)
                && due < w.end
        })
    }

    /// Whether `supplier` is in trouble at `t` (its confirmations go bad).
    pub fn slip_active(&self, supplier: usize, t: DateTime<Utc>) -> bool {
        self.slip
            .as_ref()
            .is_some_and(|w| w.target == supplier && t >= w.start && t < w.end)
    }

    /// When the slipping supplier starts re-confirming open lines (`None` if not slipping).
    pub fn slip_start(&self, supplier: usize) -> Option<DateTime<Utc>> {
        self.slip
            .as_ref()
            .filter(|w| w.target == supplier)
            .map(|w| w.start)
    }

    /// Whether a shipment arriving at `hub` at `arrival` and normally leaving at `departure` is
    /// caught in the congestion.
    pub fn congested(&self, hub: &str, arrival: DateTime<Utc>, departure: DateTime<Utc>) -> bool {
        self.congestion
            .as_ref()
            .is_some_and(|w| w.target == hub && departure >= w.start && arrival < w.end)
    }

    /// When the hub congestion starts, if there is one.
    pub fn congestion_start(&self) -> Option<DateTime<Utc>> {
        self.congestion.as_ref().map(|w| w.start)
    }

    /// Demand multiplier of a part-site on the day starting at `day`.
    pub fn demand_factor(&self, part_site: usize, day: DateTime<Utc>) -> f64 {
        match &self.stock_out {
            Some(w) if w.target == part_site && day >= w.start && day < w.end => STOCK_OUT_SURGE,
            _ => 1.0,
        }
    }

    /// If a PO ordered at `ordered` carrying `part_sites` would be delivered at `delivered`
    /// inside the stock-out window, the window: its inbound is held until the window ends.
    pub fn stock_out_hold(
        &self,
        part_sites: &[usize],
        ordered: DateTime<Utc>,
        delivered: DateTime<Utc>,
    ) -> Option<&Window<usize>> {
        self.stock_out.as_ref().filter(|w| {
            part_sites.contains(&w.target)
                && ordered < w.start
                && delivered >= w.start
                && delivered < w.end
        })
    }
}

/// Hub congested when it serves at least [`MIN_HUB_LANES`] lanes.
pub const PREFERRED_HUB: &str = "SGSIN";
/// Lanes the preferred hub needs to be picked; else the busiest hub is.
const MIN_HUB_LANES: usize = 3;

/// Singapore if enough lanes go through it, else the hub with the most lanes (ties: smallest
/// LOCODE).
fn congested_hub(net: &Network) -> Option<String> {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for hub in net.lanes.iter().filter_map(|l| l.via.as_deref()) {
        *counts.entry(hub).or_default() += 1;
    }
    if counts
        .get(PREFERRED_HUB)
        .is_some_and(|&n| n >= MIN_HUB_LANES)
    {
        return Some(PREFERRED_HUB.to_string());
    }
    let best = counts.values().copied().max()?;
    counts
        .into_iter()
        .find(|&(_, c)| c == best)
        .map(|(h, _)| h.to_string())
}

fn via_hub(net: &Network, lane: usize, hub: Option<&str>) -> bool {
    hub.is_some() && net.lanes[lane].via.as_deref() == hub
}

/// Lanes up to this many days of transit count as short.
const SHORT_LANE_DAYS: f64 = 10.0;

/// A tier-1 supplier with several part-sites, preferring short lanes (so its late ship-outs
/// and their ETAs show close to the slip start), then one clear of the congested hub, then the
/// one with the most part-sites.
fn pick_slip_supplier(net: &Network, topo: &Topology, hub: Option<&str>) -> Option<usize> {
    let tier1 = net.suppliers.iter().filter(|s| s.tier == 1).count();
    (0..tier1).max_by_key(|&s| {
        let lines = topo.part_sites.iter().filter(|ps| ps.supplier == s).count();
        let lanes = || {
            topo.supplier_sites
                .iter()
                .filter(move |ss| ss.supplier == s)
        };
        let short = lanes().all(|ss| net.lanes[ss.lane].transit_days <= SHORT_LANE_DAYS);
        let clear = !lanes().any(|ss| via_hub(net, ss.lane, hub));
        (lines >= 2, short, clear, lines, std::cmp::Reverse(s))
    })
}

/// A single-source part-site of another supplier, clear of the congested hub.
fn pick_stock_out(
    net: &Network,
    topo: &Topology,
    hub: Option<&str>,
    slip: Option<usize>,
) -> Option<usize> {
    (0..topo.part_sites.len()).max_by_key(|&i| {
        let ps = &topo.part_sites[i];
        (
            Some(ps.supplier) != slip,
            !via_hub(net, ps.lane, hub),
            net.parts[ps.part].alternates.is_empty(),
            std::cmp::Reverse(i),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::network;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn scenario() -> (Network, Topology, Scenario) {
        let cfg = SimConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let (net, topo) = network::build(&cfg, &mut rng);
        let sc = Scenario::build(&cfg, &net, &topo);
        (net, topo, sc)
    }

    #[test]
    fn all_three_disruptions_are_recorded_in_order() {
        let (net, topo, sc) = scenario();
        let d = sc.disruptions(&net, &topo);
        let kinds: Vec<_> = d.iter().map(|d| d.kind).collect();
        use DisruptionKind::*;
        assert_eq!(kinds, [SupplierSlip, PortCongestion, StockOut]);
        let start = SimConfig::default().start;
        assert_eq!(d[0].start, start + Duration::days(SLIP_START_DAY));
        assert_eq!(d[2].targets.len(), 2);
        assert!(d.iter().all(|d| d.end > d.start));
    }

    #[test]
    fn stock_out_avoids_the_slipping_supplier_and_the_hub() {
        let (net, topo, sc) = scenario();
        let (slip, hub, so) = (
            sc.slip.unwrap(),
            sc.congestion.unwrap(),
            sc.stock_out.unwrap(),
        );
        let ps = &topo.part_sites[so.target];
        assert_ne!(ps.supplier, slip.target);
        assert_ne!(net.lanes[ps.lane].via.as_deref(), Some(hub.target.as_str()));
    }

    #[test]
    fn windows_answer_by_time() {
        let (_, _, sc) = scenario();
        let start = SimConfig::default().start;
        let slip = sc.slip.clone().unwrap().target;
        assert!(!sc.delivers_late(slip, start + Duration::days(10)));
        assert!(sc.delivers_late(slip, start + Duration::days(16)));
        assert!(!sc.slip_active(slip, start + Duration::days(16)));
        assert!(sc.slip_active(slip, start + Duration::days(20)));
        assert!(!sc.delivers_late(slip + 1, start + Duration::days(16)));
        let hub = sc.congestion.clone().unwrap().target;
        let day = |d| start + Duration::days(d);
        assert!(!sc.congested(&hub, day(20), day(22)));
        assert!(sc.congested(&hub, day(24), day(26)));
        let ps = sc.stock_out.clone().unwrap().target;
        assert_eq!(sc.demand_factor(ps, day(30)), STOCK_OUT_SURGE);
        assert_eq!(sc.demand_factor(ps, day(27)), 1.0);
    }

    #[test]
    fn no_disruptions_when_disabled() {
        let cfg = SimConfig {
            disruptions: false,
            ..SimConfig::default()
        };
        let sc = Scenario::build(&cfg, &Network::default(), &Topology::default());
        assert!(sc.slip.is_none() && sc.congestion.is_none() && sc.stock_out.is_none());
    }
}
