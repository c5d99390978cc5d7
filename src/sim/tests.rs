//! Scenario-level tests of the simulator: determinism, the event contract, consistency, and
//! that each injected disruption shows its signal in the events themselves.
//!
//! The indicators are recomputed here from the JSON payloads alone (a tiny replay), the way
//! chainwatch would see them, so the tests prove the signal is in the data.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;

use super::clock::midnight;
use super::*;

/// Days the shared default run covers.
const DAYS: i64 = 45;

fn day(d: i64) -> DateTime<Utc> {
    SimConfig::default().start + Duration::days(d)
}

/// The default configuration run once to day 45, shared by the tests.
fn default_run() -> &'static (Simulator, Vec<SimEvent>) {
    static RUN: OnceLock<(Simulator, Vec<SimEvent>)> = OnceLock::new();
    RUN.get_or_init(|| {
        let mut sim = Simulator::new(SimConfig::default());
        let events = sim.run_until(day(DAYS));
        (sim, events)
    })
}

fn json(e: &SimEvent) -> Value {
    serde_json::from_slice(&e.payload).expect("payload is JSON")
}

fn parsed() -> &'static Vec<Value> {
    static PARSED: OnceLock<Vec<Value>> = OnceLock::new();
    PARSED.get_or_init(|| default_run().1.iter().map(json).collect())
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} not a string in {v}"))
}

fn ts(v: &Value, field: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s(v, field))
        .unwrap_or_else(|e| panic!("{field} not RFC 3339 in {v}: {e}"))
        .with_timezone(&Utc)
}

fn date(v: &Value, field: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s(v, field), "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("{field} not a date in {v}: {e}"))
}

fn qty(v: &Value, field: &str) -> f64 {
    let q = v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} not a number in {v}"));
    assert!(q >= 0.0, "{field} negative in {v}");
    q
}

fn line_key(v: &Value) -> (String, u64) {
    (
        s(v, "po").to_string(),
        v["line"].as_u64().expect("line is an integer"),
    )
}

// ---------------------------------------------------------------------------------------------
// A replay of the events into open lines, shipments and stock, as of a time.

#[derive(Debug, Default, Clone)]
struct LineState {
    supplier: String,
    site: String,
    part: String,
    quantity: f64,
    promised: Option<NaiveDate>,
    cancelled: bool,
    received: f64,
    closed_at: Option<DateTime<Utc>>,
    shipment: Option<String>,
}

/// When a shipment arrived at and departed from one location.
type Stay = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

#[derive(Debug, Default)]
struct Replay {
    lines: BTreeMap<(String, u64), LineState>,
    eta: HashMap<String, DateTime<Utc>>,
    /// (site, part) -> (on_hand, daily_demand) of the last position.
    position: HashMap<(String, String), (f64, f64)>,
    /// (shipment, location) -> (arrived, departed)
    stays: HashMap<(String, String), Stay>,
}

impl Replay {
    fn through(events: &[Value], as_of: DateTime<Utc>) -> Self {
        let mut r = Replay::default();
        for v in events.iter().take_while(|v| ts(v, "event_time") <= as_of) {
            r.apply(v);
        }
        r
    }

    fn apply(&mut self, v: &Value) {
        match s(v, "kind") {
            "po_line_created" | "po_line_changed" => {
                let l = self.lines.entry(line_key(v)).or_default();
                l.supplier = s(v, "supplier").into();
                l.site = s(v, "site").into();
                l.part = s(v, "part").into();
                l.quantity = qty(v, "quantity");
                l.promised = Some(date(v, "promised_date"));
            }
            "po_line_cancelled" => self.line(v).cancelled = true,
            "supplier_confirmation" if s(v, "status") == "rescheduled" => {
                let p = date(v, "promised_date");
                self.line(v).promised = Some(p);
            }
            "goods_receipt" => {
                let (q, at) = (qty(v, "quantity"), ts(v, "received_at"));
                let l = self.line(v);
                l.received += q;
                if l.received >= l.quantity && l.closed_at.is_none() {
                    l.closed_at = Some(at);
                }
            }
            "shipment_created" => {
                let id = s(v, "shipment").to_string();
                self.eta.insert(id.clone(), ts(v, "eta"));
                for pl in v["po_lines"].as_array().expect("po_lines array") {
                    self.line(pl).shipment = Some(id.clone());
                }
            }
            "eta_update" => {
                self.eta.insert(s(v, "shipment").into(), ts(v, "eta"));
            }
            "milestone" => {
                let key = (s(v, "shipment").into(), s(v, "location").into());
                let stay = self.stays.entry(key).or_default();
                match s(v, "status") {
                    "arrived" => stay.0 = Some(ts(v, "event_time")),
                    "departed" => stay.1 = Some(ts(v, "event_time")),
                    _ => {}
                }
            }
            "inventory_position" => {
                let key = (s(v, "site").into(), s(v, "part").into());
                let pos = (qty(v, "on_hand"), qty(v, "daily_demand"));
                self.position.insert(key, pos);
            }
            _ => {}
        }
    }

    fn line(&mut self, v: &Value) -> &mut LineState {
        self.lines
            .get_mut(&line_key(v))
            .expect("event refers to a created line")
    }

    /// Per supplier: (on time, due) over lines due in the 30 days before `as_of`; on time =
    /// closed by the end of the promised date plus one day of tolerance.
    fn on_time(&self, as_of: DateTime<Utc>) -> BTreeMap<String, (u32, u32)> {
        let mut out = BTreeMap::<String, (u32, u32)>::new();
        for l in self.lines.values().filter(|l| !l.cancelled) {
            let Some(p) = l.promised else { continue };
            let deadline = midnight(p) + Duration::days(2);
            if midnight(p) < as_of - Duration::days(30) || deadline > as_of {
                continue;
            }
            let e = out.entry(l.supplier.clone()).or_default();
            e.1 += 1;
            if l.closed_at.is_some_and(|t| t <= deadline) {
                e.0 += 1;
            }
        }
        out
    }

    /// Days from `as_of` to the earliest expected arrival of an open line for site and part.
    fn days_to_next_inbound(&self, site: &str, part: &str, as_of: DateTime<Utc>) -> Option<f64> {
        self.lines
            .values()
            .filter(|l| l.site == site && l.part == part && !l.cancelled && l.closed_at.is_none())
            .filter_map(|l| match &l.shipment {
                Some(sh) => self.eta.get(sh).copied(),
                None => l.promised.map(midnight),
            })
            .min()
            .map(|t| (t - as_of).num_seconds() as f64 / 86_400.0)
    }

    /// Dwell in days at `hub` of shipments that departed it within `[from, to)`.
    fn dwells(&self, hub: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<f64> {
        let mut out: Vec<f64> = self
            .stays
            .iter()
            .filter(|((_, loc), _)| loc == hub)
            .filter_map(|(_, &(a, d))| Some((a?, d?)))
            .filter(|&(_, d)| d >= from && d < to)
            .map(|(a, d)| (d - a).num_seconds() as f64 / 86_400.0)
            .collect();
        out.sort_by(f64::total_cmp);
        out
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn ratio((on_time, due): (u32, u32)) -> f64 {
    f64::from(on_time) / f64::from(due.max(1))
}

fn target(kind: DisruptionKind) -> Vec<String> {
    let (sim, _) = default_run();
    let d = sim.disruptions().iter().find(|d| d.kind == kind);
    d.expect("disruption injected").targets.clone()
}

// ---------------------------------------------------------------------------------------------
// Determinism

#[test]
fn same_seed_any_chunking_gives_identical_events() {
    let mut whole = Simulator::new(SimConfig::default());
    let once = whole.run_until(day(30));
    let mut hourly = Simulator::new(SimConfig::default());
    let mut chunked = Vec::new();
    for h in 1..=30 * 24 {
        chunked.extend(hourly.run_until(day(0) + Duration::hours(h)));
    }
    assert!(once.len() > 10_000);
    assert_eq!(once.len(), chunked.len());
    assert!(once == chunked, "chunked run differs");
    assert_eq!(hourly.now(), day(30));
    // A prefix of the shared 45-day run, too.
    assert!(once[..] == default_run().1[..once.len()]);
}

#[test]
fn different_seed_gives_different_events() {
    let mut a = Simulator::new(SimConfig {
        seed: 7,
        ..SimConfig::default()
    });
    let ev = a.run_until(day(3));
    let base = &default_run().1;
    let n = ev.len().min(base.len());
    assert!(ev[..n]
        .iter()
        .zip(&base[..n])
        .any(|(x, y)| x.payload != y.payload));
    assert_ne!(a.network(), default_run().0.network());
}

// ---------------------------------------------------------------------------------------------
// The event contract

fn check_required(v: &Value) {
    let kind = s(v, "kind");
    match kind {
        "po_line_created" | "po_line_changed" => {
            for f in ["po", "supplier", "part", "site"] {
                s(v, f);
            }
            line_key(v);
            qty(v, "quantity");
            qty(v, "unit_price");
            assert!(date(v, "promised_date") >= date(v, "order_date"), "{v}");
        }
        "po_line_cancelled" => {
            line_key(v);
            s(v, "supplier");
        }
        "supplier_confirmation" => {
            line_key(v);
            s(v, "supplier");
            let status = s(v, "status");
            assert!(["accepted", "rescheduled", "backordered"].contains(&status));
            if status == "rescheduled" {
                date(v, "promised_date");
            }
            if v.get("quantity").is_some() {
                qty(v, "quantity");
            }
        }
        "goods_receipt" => {
            line_key(v);
            s(v, "supplier");
            qty(v, "quantity");
            assert!(ts(v, "received_at") <= ts(v, "event_time"));
        }
        "inventory_position" => {
            s(v, "site");
            s(v, "part");
            qty(v, "on_hand");
            qty(v, "daily_demand");
        }
        "stock_movement" => {
            s(v, "site");
            s(v, "part");
            assert!(["receipt", "issue"].contains(&s(v, "movement")));
            qty(v, "quantity");
        }
        "shipment_created" => {
            for f in ["shipment", "supplier", "origin", "destination", "carrier"] {
                s(v, f);
            }
            assert!(["ocean", "air", "road", "rail"].contains(&s(v, "mode")));
            for pl in v["po_lines"].as_array().expect("po_lines array") {
                line_key(pl);
            }
            assert!(ts(v, "eta") > ts(v, "shipped_at"));
        }
        "milestone" => {
            for f in ["shipment", "supplier", "location"] {
                s(v, f);
            }
            let status = s(v, "status");
            let known = [
                "departed",
                "arrived",
                "in_transit",
                "held",
                "delayed",
                "delivered",
            ];
            assert!(known.contains(&status), "{v}");
        }
        "eta_update" => {
            s(v, "shipment");
            s(v, "supplier");
            ts(v, "eta");
        }
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn every_payload_follows_the_documented_contract() {
    let (sim, events) = default_run();
    let start = SimConfig::default().start;
    let mut ids = BTreeSet::new();
    for (i, (e, v)) in events.iter().zip(parsed()).enumerate() {
        assert!(v.is_object());
        let id = s(v, "event_id");
        assert_eq!(id, format!("sim-42-{:08}", i + 1));
        assert!(ids.insert(id.to_string()));
        assert_eq!(ts(v, "event_time"), e.event_time, "{v}");
        assert!(e.event_time >= start);
        check_required(v);
        let (source, key) = (s(v, "source"), e.key.as_str());
        match e.source {
            Source::Erp => assert!(source == "sim-erp" && key == s(v, "supplier")),
            Source::Wms => assert!(source == "sim-wms" && key == s(v, "site")),
            Source::Logistics => {
                assert!(source.starts_with("sim-carrier-") && key == s(v, "supplier"))
            }
        }
    }
    assert_eq!(sim.now(), day(DAYS));
}

#[test]
fn event_times_never_decrease() {
    let events = &default_run().1;
    assert!(events
        .windows(2)
        .all(|w| w[0].event_time <= w[1].event_time));
}

#[test]
fn every_receipt_and_shipment_follows_its_line() {
    let mut created = BTreeSet::new();
    let mut kinds = BTreeMap::<&str, usize>::new();
    for v in parsed() {
        let kind = s(v, "kind");
        *kinds.entry(kind).or_default() += 1;
        match kind {
            "po_line_created" => {
                created.insert(line_key(v));
            }
            "goods_receipt" | "supplier_confirmation" | "po_line_cancelled" => {
                assert!(
                    created.contains(&line_key(v)),
                    "{kind} before its line: {v}"
                );
            }
            "shipment_created" => {
                for pl in v["po_lines"].as_array().expect("po_lines") {
                    assert!(created.contains(&line_key(pl)), "shipment before line: {v}");
                }
            }
            _ => {}
        }
    }
    // Every kind shows up, including the rare ones.
    assert_eq!(kinds.len(), 10, "{kinds:?}");
}

#[test]
fn the_rarer_behaviours_all_occur() {
    let mut seen = BTreeSet::new();
    let mut receipts = BTreeMap::<(String, u64), usize>::new();
    for v in parsed() {
        match s(v, "kind") {
            "supplier_confirmation" => seen.insert(s(v, "status").to_string()),
            "shipment_created" => seen.insert(s(v, "mode").to_string()),
            "milestone" => seen.insert(s(v, "status").to_string()),
            "goods_receipt" => {
                *receipts.entry(line_key(v)).or_default() += 1;
                false
            }
            _ => false,
        };
    }
    let expected = [
        "accepted",
        "rescheduled",
        "backordered",
        "ocean",
        "air",
        "road",
        "rail",
        "departed",
        "arrived",
        "held",
        "delivered",
    ];
    for what in expected {
        assert!(seen.contains(what), "never saw {what}");
    }
    assert!(receipts.values().any(|&n| n > 1), "no partial receipt");
}

#[test]
fn on_hand_follows_issues_and_receipts() {
    // (site, part) -> on hand implied by the last position and the movements since.
    let mut implied = HashMap::<(String, String), f64>::new();
    let mut checked = 0;
    for v in parsed() {
        let kind = s(v, "kind");
        if kind != "inventory_position" && kind != "stock_movement" {
            continue;
        }
        let key = (s(v, "site").to_string(), s(v, "part").to_string());
        if kind == "inventory_position" {
            let on_hand = qty(v, "on_hand");
            if let Some(expected) = implied.insert(key, on_hand) {
                assert_eq!(expected, on_hand, "position disagrees with movements: {v}");
                checked += 1;
            }
            continue;
        }
        let q = qty(v, "quantity");
        let stock = implied.entry(key).or_default();
        *stock += if s(v, "movement") == "receipt" { q } else { -q };
        assert!(*stock >= 0.0, "stock below zero after {v}");
    }
    assert!(checked > 1000);
}

#[test]
fn volume_per_day_is_in_range() {
    let mut per_day = BTreeMap::<i64, usize>::new();
    for e in &default_run().1 {
        *per_day
            .entry((e.event_time - day(0)).num_days())
            .or_default() += 1;
    }
    // Day 0 also carries the warm-up snapshot: the ~1,000 lines open at the start.
    let day0 = per_day.get(&0).copied().unwrap_or(0);
    assert!((1500..=4000).contains(&day0), "day 0: {day0} events");
    for d in 1..DAYS {
        let n = per_day.get(&d).copied().unwrap_or(0);
        assert!((300..=1500).contains(&n), "day {d}: {n} events");
    }
}

// ---------------------------------------------------------------------------------------------
// Disruptions

#[test]
fn slipping_supplier_falls_below_60_percent_on_time_by_day_35() {
    let slipper = &target(DisruptionKind::SupplierSlip)[0];
    let as_of = day(35);
    let otd = Replay::through(parsed(), as_of).on_time(as_of);
    let slip = ratio(otd[slipper]);
    let others: Vec<f64> = otd
        .iter()
        .filter(|(s, _)| *s != slipper)
        .map(|(_, &c)| ratio(c))
        .collect();
    assert!(
        otd[slipper].1 >= 10,
        "too few lines due: {:?}",
        otd[slipper]
    );
    assert!(slip < 0.6, "slipping supplier on time {slip:.2}");
    assert!(
        median(&others) >= 0.85,
        "others' median {:.2}",
        median(&others)
    );
    // Before the slip it looked like everyone else.
    let early = Replay::through(parsed(), day(13)).on_time(day(13));
    assert!(ratio(early[slipper]) >= 0.75, "{:?}", early[slipper]);
}

#[test]
fn congested_hub_dwell_is_several_times_its_baseline() {
    let hub = &target(DisruptionKind::PortCongestion)[0];
    let replay = Replay::through(parsed(), day(DAYS));
    let baseline = replay.dwells(hub, day(0), day(CONGESTION_START_DAY));
    let congested = replay.dwells(hub, day(30), day(DAYS));
    assert!(baseline.len() >= 10 && congested.len() >= 5);
    let r = median(&congested) / median(&baseline);
    assert!(
        r >= 3.0,
        "dwell ratio {r:.1}: {congested:?} vs {baseline:?}"
    );
    let held = parsed().iter().any(|v| {
        s(v, "kind") == "milestone" && s(v, "status") == "held" && s(v, "location") == hub
    });
    assert!(held, "no held milestone at {hub}");
}

#[test]
fn stock_out_part_runs_dry_before_its_next_inbound() {
    let t = target(DisruptionKind::StockOut);
    let (site, part) = (&t[0], &t[1]);
    let as_of = day(35);
    let replay = Replay::through(parsed(), as_of);
    let (on_hand, demand) = replay.position[&(site.clone(), part.clone())];
    let dos = on_hand / demand;
    let next = replay.days_to_next_inbound(site, part, as_of);
    let next = next.expect("an inbound is open");
    assert!(dos < next, "DOS {dos:.1} vs next inbound in {next:.1} days");
    // The day before, the part was covered until its next inbound.
    let before = Replay::through(parsed(), day(27));
    let (on_hand, demand) = before.position[&(site.clone(), part.clone())];
    let next = before.days_to_next_inbound(site, part, day(27));
    let next = next.expect("an inbound is open");
    assert!(
        on_hand / demand > next,
        "day 27: {on_hand} / {demand} vs {next:.1}"
    );
}

#[test]
fn disruptions_act_only_from_their_start() {
    let slipper = &target(DisruptionKind::SupplierSlip)[0];
    // (not accepted, all) confirmations of the slipping supplier before and after day 20.
    let mut answers = [(0, 0), (0, 0)];
    for (e, v) in default_run().1.iter().zip(parsed()) {
        match v.get("reason_code").and_then(Value::as_str) {
            Some("port_congestion") => assert!(e.event_time >= day(CONGESTION_START_DAY), "{v}"),
            Some("customs_hold") => assert!(e.event_time >= day(STOCK_OUT_START_DAY), "{v}"),
            _ => {}
        }
        if s(v, "kind") == "supplier_confirmation" && s(v, "supplier") == slipper {
            let a = &mut answers[usize::from(e.event_time >= day(SLIP_START_DAY))];
            a.0 += u32::from(s(v, "status") != "accepted");
            a.1 += 1;
        }
    }
    let [before, after] = answers;
    assert!(
        ratio(before) < 0.25,
        "{before:?} not accepted before the slip"
    );
    assert!(ratio(after) > 0.4, "{after:?} not accepted after the slip");
}

#[test]
fn no_disruptions_means_no_outlier() {
    let cfg = SimConfig {
        disruptions: false,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(cfg);
    assert!(sim.disruptions().is_empty());
    let events: Vec<Value> = sim.run_until(day(35)).iter().map(json).collect();
    let otd = Replay::through(&events, day(35)).on_time(day(35));
    let worst = otd.values().map(|&c| ratio(c)).fold(1.0, f64::min);
    assert!(
        worst >= 0.6,
        "worst supplier {worst:.2} without disruptions"
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed records

#[test]
fn malformed_every_cycles_through_every_variant() {
    let cfg = SimConfig {
        malformed_every: Some(50),
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(cfg);
    let events = sim.run_until(day(2));
    let good = &default_run().1;
    let mut seen = BTreeSet::new();
    for (i, e) in events.iter().enumerate() {
        let seq = i as u64 + 1;
        let Some(m) = Malformation::for_event(seq, Some(50)) else {
            assert_eq!(e.payload, good[i].payload);
            continue;
        };
        seen.insert(m.reason());
        let text = String::from_utf8_lossy(&e.payload);
        let v: Result<Value, _> = serde_json::from_slice(&e.payload);
        match m {
            Malformation::BrokenJson => assert!(v.is_err(), "{text}"),
            Malformation::NegativeQuantity => assert!(text.contains(":-"), "{text}"),
            Malformation::UnknownKind => assert_eq!(v.unwrap()["kind"], UNKNOWN_KIND),
            Malformation::MissingField => assert!(e.payload.len() < good[i].payload.len()),
            Malformation::ImpossibleDate => assert!(text.contains(IMPOSSIBLE_DATE), "{text}"),
            Malformation::WrongType => {
                assert!(text.contains("\"abc\"") || text.contains("12345"), "{text}")
            }
        }
    }
    assert_eq!(seen.len(), Malformation::ALL.len());
}

#[test]
fn config_validation_catches_degenerate_settings() {
    assert_eq!(SimConfig::default().validate(), Ok(()));
    let zero_sites = SimConfig {
        sites: 0,
        ..SimConfig::default()
    };
    assert_eq!(
        zero_sites.validate(),
        Err(SimError::Zero { field: "sites" })
    );
    let every_zero = SimConfig {
        malformed_every: Some(0),
        ..SimConfig::default()
    };
    assert_eq!(every_zero.validate(), Err(SimError::MalformedEveryZero));
    // Degenerate configs still run.
    let mut sim = Simulator::new(zero_sites);
    assert!(sim.run_until(day(3)).is_empty());
}
