//! The day-by-day world: inventory, ordering, and the time-ordered event buffer.
//!
//! In: a [`SimConfig`]. Out: [`Pending`] events in non-decreasing time order (ties in
//! generation order), popped by [`Engine::pop_through`]. Each simulated day posts an
//! `inventory_position` per part-site at 00:00, places POs on the supplier-sites' review days
//! (order-up-to policy, planned in full by [`orders::plan_po`]) and posts the day's demand as a
//! `stock_movement` issue at 22:00-23:00, after the day's receipts (always before 21:00), so
//! `on_hand` never goes below zero. Because a day only creates events at or after its own
//! start, generating whole days up to `until` and then popping up to `until` gives the same
//! stream however the calls are chunked.
//!
//! Warm-up: the POs the review cycle would have placed before the start are planned too (their
//! order dates lie before the start); those still open at the start appear as a snapshot at
//! the start time (lines, confirmations, shipments already under way), and milestones that
//! happened before the start are left out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::clock::{rand_hours, rand_minutes, Clock};
use super::network::{self, round1, Network, Topology};
use super::orders::{self, round_lot, Ctx, Effect, Ids, OrderLine, PoPlan};
use super::record::{Body, Movement, MovementKind, Pending, Position, WMS_SOURCE};
use super::scenario::Scenario;
use super::SimConfig;

/// Safety stock the buyer's order-up-to level keeps, in days of demand.
const SAFETY_DAYS: f64 = 10.0;
/// Warm-up POs delivered before this long after the start are taken as already received.
const WARM_UP_MARGIN_HOURS: i64 = 6;

/// Stock of one part at one site.
#[derive(Debug, Clone, Copy, Default)]
struct Stock {
    on_hand: i64,
    /// Ordered and not yet received (nor cancelled).
    open: i64,
}

/// The simulated world and its event buffer.
pub(super) struct Engine {
    clock: Clock,
    pub network: Network,
    pub topo: Topology,
    pub scenario: Scenario,
    rng: ChaCha8Rng,
    stock: Vec<Stock>,
    effects: BTreeMap<(DateTime<Utc>, u64), Effect>,
    queue: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    ids: Ids,
    next_day: i64,
}

impl Engine {
    /// Builds the network, the scenario, the initial stock and the warm-up pipeline.
    pub fn new(cfg: &SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let (mut network, topo) = network::build(cfg, &mut rng);
        let scenario = Scenario::build(cfg, &network, &topo);
        link_slip_to_first_tier2(&mut network, &scenario);
        let mut engine = Engine {
            clock: Clock::new(cfg.start),
            network,
            topo,
            scenario,
            rng,
            stock: Vec::new(),
            effects: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            ids: Ids::default(),
            next_day: 0,
        };
        engine.initial_stock();
        engine.warm_up();
        engine
    }

    /// Generates every day that starts at or before `until`.
    pub fn generate_through(&mut self, until: DateTime<Utc>) {
        while self.clock.day(self.next_day) <= until {
            self.simulate_day(self.next_day);
            self.next_day += 1;
        }
    }

    /// The next buffered event at or before `until`, if any.
    pub fn pop_through(&mut self, until: DateTime<Utc>) -> Option<Pending> {
        if self.queue.peek()?.0.time > until {
            return None;
        }
        self.queue.pop().map(|Reverse(p)| p)
    }

    fn initial_stock(&mut self) {
        for i in 0..self.topo.part_sites.len() {
            let ps = &self.topo.part_sites[i];
            let review = self.review_days(i) as f64;
            let cover = self.rng.random_range(SAFETY_DAYS..SAFETY_DAYS + review);
            self.stock.push(Stock {
                on_hand: (ps.demand * cover).round() as i64,
                open: 0,
            });
        }
    }

    fn review_days(&self, part_site: usize) -> i64 {
        let ps = &self.topo.part_sites[part_site];
        self.topo
            .supplier_sites
            .iter()
            .find(|ss| ss.lane == ps.lane)
            .map_or(7, |ss| ss.review_days)
    }

    /// Plans the POs of past review days whose goods are still on their way at the start.
    fn warm_up(&mut self) {
        for s in 0..self.topo.supplier_sites.len() {
            let ss = &self.topo.supplier_sites[s];
            let lead = i64::from(self.network.suppliers[ss.supplier].lead_time_days);
            let (review, offset) = (ss.review_days, ss.review_offset);
            let oldest = (offset + lead + 8) / review;
            for k in (1..=oldest).rev() {
                let day = offset - k * review;
                let lines: Vec<OrderLine> = self.topo.supplier_sites[s]
                    .part_sites
                    .iter()
                    .map(|&ps| OrderLine {
                        part_site: ps,
                        quantity: round_lot(
                            self.topo.part_sites[ps].demand
                                * review as f64
                                * self.rng.random_range(0.9..1.1),
                        ),
                    })
                    .collect();
                let ordered = self.clock.day(day) + rand_hours(&mut self.rng, 7, 11);
                let plan = self.plan(s, ordered, &lines);
                let cutoff = self.clock.start() + Duration::hours(WARM_UP_MARGIN_HOURS);
                if plan.first_receipt.is_some_and(|t| t >= cutoff) {
                    self.commit(plan);
                }
            }
        }
    }

    fn plan(
        &mut self,
        supplier_site: usize,
        ordered: DateTime<Utc>,
        lines: &[OrderLine],
    ) -> PoPlan {
        let ctx = Ctx {
            clock: self.clock,
            net: &self.network,
            topo: &self.topo,
            scenario: &self.scenario,
        };
        orders::plan_po(
            &ctx,
            &mut self.rng,
            &mut self.ids,
            supplier_site,
            ordered,
            lines,
        )
    }

    /// Queues a plan's events (clipped to the start) and its effects.
    fn commit(&mut self, mut plan: PoPlan) {
        plan.events.sort_by_key(|e| e.time);
        let start = self.clock.start();
        for e in plan.events {
            if e.time < start && matches!(e.body, Body::Milestone(_)) {
                continue; // happened before anyone was watching
            }
            self.push(e.time.max(start), e.source, e.body);
        }
        for (time, effect) in plan.effects {
            self.seq += 1;
            self.effects.insert((time, self.seq), effect);
        }
    }

    fn push(&mut self, time: DateTime<Utc>, source: String, body: Body) {
        self.seq += 1;
        self.queue.push(Reverse(Pending {
            time,
            seq: self.seq,
            source,
            body,
        }));
    }

    /// Applies every effect dated before `until`.
    fn apply_effects(&mut self, until: DateTime<Utc>) {
        while let Some(entry) = self.effects.first_entry() {
            if entry.key().0 >= until {
                break;
            }
            let e = entry.remove();
            let stock = &mut self.stock[e.part_site];
            stock.on_hand += e.on_hand;
            stock.open += e.open;
        }
    }

    fn simulate_day(&mut self, day: i64) {
        let t0 = self.clock.day(day);
        self.apply_effects(t0);
        self.post_positions(t0);
        self.place_orders(day, t0);
        self.apply_effects(t0 + Duration::hours(22));
        self.post_issues(t0);
    }

    fn demand_rate(&self, part_site: usize, t0: DateTime<Utc>) -> f64 {
        self.topo.part_sites[part_site].demand * self.scenario.demand_factor(part_site, t0)
    }

    fn names(&self, part_site: usize) -> (String, String) {
        let ps = &self.topo.part_sites[part_site];
        (
            self.network.sites[ps.site].id.clone(),
            self.network.parts[ps.part].id.clone(),
        )
    }

    fn post_positions(&mut self, t0: DateTime<Utc>) {
        for i in 0..self.topo.part_sites.len() {
            let noise = self.rng.random_range(0.95..1.05);
            let (site, part) = self.names(i);
            let body = Body::InventoryPosition(Position {
                site,
                part,
                on_hand: self.stock[i].on_hand.max(0) as u64,
                daily_demand: round1(self.demand_rate(i, t0) * noise),
            });
            self.push(t0, WMS_SOURCE.to_string(), body);
        }
    }

    /// Order-up-to: on a review day, order what brings stock plus open orders up to demand over
    /// lead time, review period and safety stock.
    fn place_orders(&mut self, day: i64, t0: DateTime<Utc>) {
        for s in 0..self.topo.supplier_sites.len() {
            let ss = &self.topo.supplier_sites[s];
            if (day - ss.review_offset).rem_euclid(ss.review_days) != 0 {
                continue;
            }
            let lead = f64::from(self.network.suppliers[ss.supplier].lead_time_days);
            let review = ss.review_days as f64;
            let mut lines = Vec::new();
            for &ps in &ss.part_sites {
                let rate = self.demand_rate(ps, t0);
                let position = (self.stock[ps].on_hand + self.stock[ps].open) as f64;
                let need = rate * (lead + review + SAFETY_DAYS) - position;
                if need > rate * review * 0.3 {
                    lines.push(OrderLine {
                        part_site: ps,
                        quantity: round_lot(need),
                    });
                }
            }
            if lines.is_empty() {
                continue;
            }
            let ordered = t0 + rand_hours(&mut self.rng, 7, 11);
            let plan = self.plan(s, ordered, &lines);
            self.commit(plan);
        }
    }

    /// The day's consumption, limited to what is on hand.
    fn post_issues(&mut self, t0: DateTime<Utc>) {
        for i in 0..self.topo.part_sites.len() {
            let wanted = (self.demand_rate(i, t0) * self.rng.random_range(0.8..1.2)).round() as i64;
            let at = t0 + Duration::hours(22) + rand_minutes(&mut self.rng, 0, 60);
            let quantity = wanted.min(self.stock[i].on_hand).max(0);
            if quantity == 0 {
                continue;
            }
            self.stock[i].on_hand -= quantity;
            let (site, part) = self.names(i);
            let body = Body::StockMovement(Movement {
                site,
                part,
                movement: MovementKind::Issue,
                quantity: quantity as u64,
            });
            self.push(at, WMS_SOURCE.to_string(), body);
        }
    }
}

/// The story the demo tells through the tiers: the first tier-2 supplier (whose own feed goes
/// late from day 20, see `tier2.rs`) is a main source of the tier-1 supplier that slips, so
/// the sub-tier problem shows on a tier-1 supplier that is itself late. Adds (or widens) the
/// link; no RNG draw, so the rest of the network and the event stream stay as they were.
fn link_slip_to_first_tier2(net: &mut Network, scenario: &Scenario) {
    let Some(slip) = &scenario.slip else { return };
    let Some(t1) = net.suppliers.get(slip.target).map(|s| s.id.clone()) else {
        return;
    };
    let Some(t2) = net
        .suppliers
        .iter()
        .find(|s| s.tier == 2)
        .map(|s| s.id.clone())
    else {
        return;
    };
    let parts: Vec<String> = net
        .parts
        .iter()
        .filter(|p| p.supplier == t1)
        .map(|p| p.id.clone())
        .collect();
    if parts.is_empty() {
        return;
    }
    net.tier_links.retain(|l| !(l.tier2 == t2 && l.tier1 == t1));
    net.tier_links.push(network::TierLink {
        tier2: t2,
        tier1: t1,
        parts,
        share: 0.8,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_leaves_open_orders_and_stock_at_the_start() {
        let mut e = Engine::new(&SimConfig::default());
        let start = SimConfig::default().start;
        e.apply_effects(start);
        assert!(e.stock.iter().all(|s| s.on_hand > 0));
        let open = e.stock.iter().filter(|s| s.open > 0).count();
        assert!(
            open * 10 >= e.stock.len() * 9,
            "{open} of {}",
            e.stock.len()
        );
        assert!(e.queue.iter().all(|Reverse(p)| p.time >= start));
    }

    #[test]
    fn days_are_generated_only_up_to_until() {
        let mut e = Engine::new(&SimConfig::default());
        let start = SimConfig::default().start;
        e.generate_through(start + Duration::hours(36));
        assert_eq!(e.next_day, 2);
        e.generate_through(start + Duration::hours(47));
        assert_eq!(e.next_day, 2);
    }
}
