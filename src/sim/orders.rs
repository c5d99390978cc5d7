//! The life of one purchase order, planned in full when it is placed.
//!
//! In: which supplier-site orders what, when; the network, the scenario and the seeded RNG.
//! Out: a [`PoPlan`]: every ERP and logistics event of the PO (lines created, buyer changes and
//! cancellations, supplier confirmations and reschedules, the shipment and its milestones, ETA
//! updates, goods receipts) and the WMS receipts, each at its time, plus the inventory
//! [`Effect`]s the engine applies when those times come. Disruptions are known in advance
//! (the scenario is a fixed schedule), so a PO placed on day 10 already carries the reschedules
//! and holds it will meet on day 28.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::clock::{midnight, rand_days, rand_hours, rand_minutes, Clock};
use super::network::{Network, Topology};
use super::record::{
    Body, ConfirmStatus, Confirmation, EtaBody, LineRef, MilestoneBody, Movement, MovementKind,
    PoLine, PoLineKey, Receipt, ShipmentNotice, ERP_SOURCE, WMS_SOURCE,
};
use super::scenario::Scenario;
use super::transit::{plan_trip, Trip};

/// Reason code of the ETA update of a shipment held in the stock-out scenario.
const HOLD_REASON: &str = "customs_hold";

/// Read-only context of planning.
pub(super) struct Ctx<'a> {
    pub clock: Clock,
    pub net: &'a Network,
    pub topo: &'a Topology,
    pub scenario: &'a Scenario,
}

/// Running PO and shipment numbers.
#[derive(Debug, Clone)]
pub(super) struct Ids {
    pub po: u64,
    pub shipment: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            po: 4_500_000,
            shipment: 800_000,
        }
    }
}

/// One line to order.
#[derive(Debug, Clone, Copy)]
pub(super) struct OrderLine {
    pub part_site: usize,
    pub quantity: u64,
}

/// A change to one part-site's stock or open (ordered, not received) quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Effect {
    pub part_site: usize,
    pub on_hand: i64,
    pub open: i64,
}

/// An event at its time, with its `source` field.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub time: DateTime<Utc>,
    pub source: String,
    pub body: Body,
}

/// Everything one PO will do.
#[derive(Debug, Clone, Default)]
pub(super) struct PoPlan {
    pub events: Vec<Planned>,
    pub effects: Vec<(DateTime<Utc>, Effect)>,
    /// The first goods receipt, if any line is received at all.
    pub first_receipt: Option<DateTime<Utc>>,
}

impl PoPlan {
    fn erp(&mut self, time: DateTime<Utc>, body: Body) {
        self.events.push(Planned {
            time,
            source: ERP_SOURCE.to_string(),
            body,
        });
    }

    fn effect(&mut self, time: DateTime<Utc>, part_site: usize, on_hand: i64, open: i64) {
        let e = Effect {
            part_site,
            on_hand,
            open,
        };
        self.effects.push((time, e));
    }
}

/// The promised date of a PO over time: the buyer's request, then the supplier's answers.
#[derive(Debug, Clone)]
struct Promise(Vec<(DateTime<Utc>, NaiveDate)>);

impl Promise {
    fn at(&self, t: DateTime<Utc>) -> NaiveDate {
        let i = self.0.partition_point(|(from, _)| *from <= t);
        self.0[i.saturating_sub(1)].1
    }

    fn current(&self) -> NaiveDate {
        self.0[self.0.len() - 1].1
    }

    fn moved(&mut self, at: DateTime<Utc>, by_days: i64) -> NaiveDate {
        let date = self.current() + Duration::days(by_days);
        self.0.push((at, date));
        date
    }
}

/// A supplier answer to be sent for every live line of the PO.
#[derive(Debug, Clone, Copy)]
struct Answer {
    time: DateTime<Utc>,
    status: ConfirmStatus,
    promised: Option<NaiveDate>,
}

/// A line of the PO as planned.
#[derive(Debug, Clone)]
struct Line {
    no: u32,
    order: OrderLine,
    /// Quantity after a buyer change, if any, and when it was changed.
    changed: Option<(DateTime<Utc>, u64)>,
    cancelled: Option<DateTime<Utc>>,
}

impl Line {
    fn quantity_at(&self, t: DateTime<Utc>) -> u64 {
        match self.changed {
            Some((at, q)) if at <= t => q,
            _ => self.order.quantity,
        }
    }

    fn final_quantity(&self) -> u64 {
        self.changed.map_or(self.order.quantity, |(_, q)| q)
    }
}

/// Plans a PO placed at `ordered` by `supplier_site` for `lines`.
pub(super) fn plan_po(
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
    ids: &mut Ids,
    supplier_site: usize,
    ordered: DateTime<Utc>,
    lines: &[OrderLine],
) -> PoPlan {
    let ss = &ctx.topo.supplier_sites[supplier_site];
    ids.po += 1;
    let po = format!("PO-{}", ids.po);
    let lead = i64::from(ctx.net.suppliers[ss.supplier].lead_time_days);
    let mut promise = Promise(vec![(ordered, ordered.date_naive() + Duration::days(lead))]);
    let mut answers = confirm(ctx, rng, ss.supplier, ordered, &mut promise);
    let ready = answers[answers.len() - 1].time + rand_days(rng, 0.5, 1.5);
    let late = slip_late(ctx, rng, ss.supplier, &promise);
    if late {
        reconfirm(ctx, rng, ss.supplier, &mut promise, &mut answers);
    }
    let target = delivery_target(ctx, rng, ss.supplier, promise.current(), late);
    let lane = &ctx.net.lanes[ss.lane];
    let site = &ctx.net.sites[ss.site];
    let mut trip = plan_trip(&ctx.clock, ctx.scenario, rng, lane, site, ready, target);
    let part_sites: Vec<usize> = lines.iter().map(|l| l.part_site).collect();
    if let Some(w) = ctx
        .scenario
        .stock_out_hold(&part_sites, ordered, trip.delivered())
    {
        let (start, end) = (w.start, w.end);
        hold_for_stock_out(ctx, rng, &mut trip, &mut promise, &mut answers, start, end);
    }
    let lines = buyer_actions(rng, lines, ordered, trip.ship);

    let mut plan = PoPlan::default();
    let key = PoKey {
        po: &po,
        supplier: &ctx.net.suppliers[ss.supplier].id,
    };
    for line in &lines {
        line_events(ctx, &mut plan, &key, line, ordered, &promise, &answers);
    }
    let live: Vec<&Line> = lines.iter().filter(|l| l.cancelled.is_none()).collect();
    if !live.is_empty() {
        ids.shipment += 1;
        let shipment = format!("SH-{}", ids.shipment);
        shipment_events(ctx, &mut plan, &key, &shipment, supplier_site, &trip, &live);
        for line in live {
            receive(ctx, rng, &mut plan, &key, line, trip.delivered());
        }
    }
    plan
}

/// Confirmation 1-3 days after the order: mostly accepted, some rescheduled or backordered
/// (a backorder is followed by a reschedule a few days later).
fn confirm(
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
    supplier: usize,
    ordered: DateTime<Utc>,
    promise: &mut Promise,
) -> Vec<Answer> {
    let time = ordered + rand_hours(rng, 20, 72);
    let slipping = ctx.scenario.slip_active(supplier, time);
    // (probability, days moved) of a reschedule and of a backorder.
    let ((p_resched, resched), (p_back, back)) = if slipping {
        ((0.45, 3..=10), (0.2, 5..=15))
    } else {
        ((0.06, 2..=7), (0.03, 4..=10))
    };
    let roll: f64 = rng.random();
    if roll < p_resched {
        let date = promise.moved(time, rng.random_range(resched));
        return vec![answer(time, ConfirmStatus::Rescheduled, Some(date))];
    }
    if roll < p_resched + p_back {
        let later = time + rand_days(rng, 2.0, 5.0);
        let date = promise.moved(later, rng.random_range(back));
        return vec![
            answer(time, ConfirmStatus::Backordered, None),
            answer(later, ConfirmStatus::Rescheduled, Some(date)),
        ];
    }
    vec![answer(time, ConfirmStatus::Accepted, None)]
}

fn answer(time: DateTime<Utc>, status: ConfirmStatus, promised: Option<NaiveDate>) -> Answer {
    Answer {
        time,
        status,
        promised,
    }
}

/// Whether the slipping supplier delivers this PO late (nearly always, when it is slipping).
fn slip_late(ctx: &Ctx, rng: &mut ChaCha8Rng, supplier: usize, promise: &Promise) -> bool {
    ctx.scenario
        .delivers_late(supplier, midnight(promise.current()))
        && rng.random_bool(0.95)
}

/// When the slip starts, the supplier pushes out lines it had confirmed before.
fn reconfirm(
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
    supplier: usize,
    promise: &mut Promise,
    answers: &mut Vec<Answer>,
) {
    let Some(start) = ctx.scenario.slip_start(supplier) else {
        return;
    };
    let last = answers[answers.len() - 1].time;
    if last < start && rng.random_bool(0.5) {
        let time = start + rand_hours(rng, 0, 72);
        let date = promise.moved(time, rng.random_range(1..=4));
        answers.push(answer(time, ConfirmStatus::Rescheduled, Some(date)));
    }
}

/// When the supplier means the goods to arrive, relative to the promised date `due`: on time
/// (up to 3 days early) mostly, 1-4 days late sometimes, 6-15 days late when slipping.
fn delivery_target(
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
    supplier: usize,
    due: NaiveDate,
    late: bool,
) -> DateTime<Utc> {
    let due = midnight(due);
    if late {
        return due + Duration::days(1) + rand_days(rng, 6.0, 15.0);
    }
    if !ctx.scenario.delivers_late(supplier, due) && rng.random_bool(0.06) {
        return due + rand_days(rng, 2.0, 5.0);
    }
    due + rand_days(rng, -3.0, 0.6)
}

/// Delays a PO whose delivery falls in the stock-out window until the window ends: a PO not yet
/// shipped is rescheduled by the supplier, one in transit is held at its destination port.
fn hold_for_stock_out(
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
    trip: &mut Trip,
    promise: &mut Promise,
    answers: &mut Vec<Answer>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) {
    let release = ctx.clock.working(end + rand_days(rng, 0.0, 2.0), rng);
    let announce = start + rand_hours(rng, 1, 6);
    if trip.ship >= start + Duration::hours(8) {
        trip.shift(release - trip.delivered());
        let days = (release.date_naive() - promise.current()).num_days();
        if days > 0 {
            let date = promise.moved(announce, days);
            answers.push(answer(announce, ConfirmStatus::Rescheduled, Some(date)));
        }
    } else {
        trip.hold_at_destination(rng, announce, release, HOLD_REASON);
    }
}

/// Buyer changes (quantity) and cancellations, all before the goods ship.
fn buyer_actions(
    rng: &mut ChaCha8Rng,
    lines: &[OrderLine],
    ordered: DateTime<Utc>,
    ship: DateTime<Utc>,
) -> Vec<Line> {
    let window = (ship - ordered - Duration::hours(14)).num_seconds();
    let pick = |rng: &mut ChaCha8Rng| {
        (window > 0)
            .then(|| ordered + Duration::hours(12) + Duration::seconds(rng.random_range(0..window)))
    };
    lines
        .iter()
        .enumerate()
        .map(|(i, &order)| {
            let roll: f64 = rng.random();
            let mut line = Line {
                no: i as u32 + 1,
                order,
                changed: None,
                cancelled: None,
            };
            if roll < 0.012 {
                line.cancelled = pick(rng);
            } else if roll < 0.045 {
                let factor = rng.random_range(0.7..1.3);
                let quantity = round_lot(order.quantity as f64 * factor);
                line.changed = pick(rng).map(|t| (t, quantity));
            }
            line
        })
        .collect()
}

/// Rounds a quantity up to a sensible lot size.
pub(super) fn round_lot(q: f64) -> u64 {
    let lot = if q >= 1000.0 { 50.0 } else { 10.0 };
    ((q / lot).ceil() * lot).max(lot) as u64
}

struct PoKey<'a> {
    po: &'a str,
    supplier: &'a str,
}

impl PoKey<'_> {
    fn line_ref(&self, no: u32) -> LineRef {
        LineRef {
            po: self.po.to_string(),
            line: no,
            supplier: self.supplier.to_string(),
        }
    }
}

/// ERP events of one line: created, changed or cancelled, and the supplier's answers.
fn line_events(
    ctx: &Ctx,
    plan: &mut PoPlan,
    key: &PoKey,
    line: &Line,
    ordered: DateTime<Utc>,
    promise: &Promise,
    answers: &[Answer],
) {
    let ps = &ctx.topo.part_sites[line.order.part_site];
    let part = &ctx.net.parts[ps.part];
    let full = |quantity, promised_date| PoLine {
        po: key.po.to_string(),
        line: line.no,
        supplier: key.supplier.to_string(),
        part: part.id.clone(),
        site: ctx.net.sites[ps.site].id.clone(),
        quantity,
        unit_price: part.unit_price,
        order_date: ordered.date_naive(),
        promised_date,
    };
    let qty = line.order.quantity;
    plan.erp(ordered, Body::PoLineCreated(full(qty, promise.at(ordered))));
    plan.effect(ordered, line.order.part_site, 0, qty as i64);
    if let Some((t, new_qty)) = line.changed {
        plan.erp(t, Body::PoLineChanged(full(new_qty, promise.at(t))));
        plan.effect(t, line.order.part_site, 0, new_qty as i64 - qty as i64);
    }
    if let Some(t) = line.cancelled {
        plan.erp(t, Body::PoLineCancelled(key.line_ref(line.no)));
        plan.effect(t, line.order.part_site, 0, -(qty as i64));
    }
    for a in answers
        .iter()
        .filter(|a| line.cancelled.is_none_or(|c| a.time < c))
    {
        let r = key.line_ref(line.no);
        let quantity = (a.status == ConfirmStatus::Accepted).then(|| line.quantity_at(a.time));
        let body = Body::SupplierConfirmation(Confirmation {
            po: r.po,
            line: r.line,
            supplier: r.supplier,
            status: a.status,
            promised_date: a.promised,
            quantity,
        });
        plan.erp(a.time, body);
    }
}

/// `shipment_created`, milestones and ETA updates of the PO's shipment.
fn shipment_events(
    ctx: &Ctx,
    plan: &mut PoPlan,
    key: &PoKey,
    shipment: &str,
    supplier_site: usize,
    trip: &Trip,
    live: &[&Line],
) {
    let lane = &ctx.net.lanes[ctx.topo.supplier_sites[supplier_site].lane];
    let source = format!("sim-carrier-{}", lane.carrier.to_lowercase());
    let mut push = |time, body| {
        plan.events.push(Planned {
            time,
            source: source.clone(),
            body,
        })
    };
    let notice = ShipmentNotice {
        shipment: shipment.to_string(),
        supplier: key.supplier.to_string(),
        po_lines: live
            .iter()
            .map(|l| PoLineKey {
                po: key.po.to_string(),
                line: l.no,
            })
            .collect(),
        origin: lane.origin.clone(),
        destination: lane.destination.clone(),
        carrier: lane.carrier.clone(),
        mode: lane.mode.as_str(),
        shipped_at: trip.ship,
        eta: trip.eta,
    };
    push(trip.ship, Body::ShipmentCreated(notice));
    for stop in &trip.stops {
        let body = Body::Milestone(MilestoneBody {
            shipment: shipment.to_string(),
            supplier: key.supplier.to_string(),
            status: stop.status,
            location: stop.location.clone(),
            reason_code: stop.reason,
        });
        push(stop.time, body);
    }
    for change in &trip.eta_changes {
        let body = Body::EtaUpdate(EtaBody {
            shipment: shipment.to_string(),
            supplier: key.supplier.to_string(),
            eta: change.eta,
            reason_code: Some(change.reason),
        });
        push(change.time, body);
    }
}

/// Goods receipt (ERP) and stock receipt (WMS) of a delivered line; occasionally a partial
/// receipt with the rest a day later.
fn receive(
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
    plan: &mut PoPlan,
    key: &PoKey,
    line: &Line,
    delivered: DateTime<Utc>,
) {
    let total = line.final_quantity();
    let mut parts = vec![(delivered, total)];
    if total >= 20 && rng.random_bool(0.04) {
        let first = ((total as f64 * rng.random_range(0.5..0.9)) as u64).clamp(1, total - 1);
        let later = ctx.clock.working(delivered + rand_hours(rng, 4, 28), rng);
        parts = vec![(delivered, first), (later, total - first)];
    }
    let ps = line.order.part_site;
    let site = &ctx.net.sites[ctx.topo.part_sites[ps].site].id;
    let part = &ctx.net.parts[ctx.topo.part_sites[ps].part].id;
    for (at, quantity) in parts {
        let r = key.line_ref(line.no);
        let body = Body::GoodsReceipt(Receipt {
            po: r.po,
            line: r.line,
            supplier: r.supplier,
            quantity,
            received_at: at,
        });
        plan.erp(at + rand_minutes(rng, 5, 90), body);
        let stocked = at + rand_minutes(rng, 5, 55);
        plan.events.push(Planned {
            time: stocked,
            source: WMS_SOURCE.to_string(),
            body: Body::StockMovement(Movement {
                site: site.clone(),
                part: part.clone(),
                movement: MovementKind::Receipt,
                quantity,
            }),
        });
        plan.effect(stocked, ps, quantity as i64, -(quantity as i64));
        plan.first_receipt = Some(plan.first_receipt.map_or(at, |f| f.min(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn promise_answers_by_time() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
        let d0 = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        let mut p = Promise(vec![(t0, d0)]);
        let later = p.moved(t0 + Duration::days(2), 5);
        assert_eq!(later, NaiveDate::from_ymd_opt(2026, 2, 6).unwrap());
        assert_eq!(p.at(t0), d0);
        assert_eq!(p.at(t0 + Duration::days(1)), d0);
        assert_eq!(p.at(t0 + Duration::days(3)), later);
        assert_eq!(p.current(), later);
    }

    #[test]
    fn lots_round_up() {
        assert_eq!(round_lot(1.0), 10);
        assert_eq!(round_lot(101.0), 110);
        assert_eq!(round_lot(1001.0), 1050);
    }
}
