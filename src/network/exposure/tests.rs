//! The exposure maths against hand-computed examples (arithmetic in the comments).

use super::*;
use crate::network::model::{from_days, Alternate, Supplier};
use crate::network::paths::tests::{link, part};

fn sup(id: &str, tier: u8, ttr: Option<f64>) -> Supplier {
    Supplier {
        id: id.into(),
        name: None,
        tier,
        recovery_time: ttr.map(from_days),
        country: None,
    }
}

fn alt(supplier: &str, capacity: f64, lead: f64) -> Alternate {
    Alternate {
        supplier: supplier.into(),
        qualified: true,
        capacity_per_day: capacity,
        lead_time: from_days(lead),
    }
}

fn ps(part: &str, daily_demand: f64, stock: f64, unit_price: f64) -> PartSupply {
    PartSupply {
        part: part.into(),
        daily_demand,
        stock,
        unit_price,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn node<'a>(rows: &'a [NodeExposure], id: &str) -> &'a NodeExposure {
    rows.iter().find(|n| n.supplier == id).unwrap()
}

/// The example of docs/network.md.
///
/// Tier 1: A (TTR 21 d) makes P1, P2; B (TTR 8 d) makes P3.
/// Tier 2: X (TTR 100 d) -> A, all parts, share 0.5; Y (TTR 30 d) -> B, P3, share 1.
/// Alternates: P1 and P2 from B (60/day each, lead 5 d, B's days shared); P3 from A
/// (40/day, lead 20 d).
/// Supply: P1 100/day, stock 1000, price 10; P2 50/day, stock 500, price 20;
/// P3 40/day, stock 400, price 5.
fn example() -> (Network, Vec<PartSupply>) {
    let mut n = Network::default();
    n.upsert_supplier(sup("A", 1, Some(21.0)));
    n.upsert_supplier(sup("B", 1, Some(8.0)));
    n.upsert_supplier(sup("X", 2, Some(100.0)));
    n.upsert_supplier(sup("Y", 2, Some(30.0)));
    let mut p1 = part("P1", "A");
    p1.alternates = vec![alt("B", 60.0, 5.0)];
    let mut p2 = part("P2", "A");
    p2.alternates = vec![alt("B", 60.0, 5.0)];
    let mut p3 = part("P3", "B");
    p3.alternates = vec![alt("A", 40.0, 20.0)];
    for p in [p1, p2, p3] {
        n.upsert_part(p);
    }
    n.upsert_link(link("X", "A", &[], 0.5));
    n.upsert_link(link("Y", "B", &["P3"], 1.0));
    assert_eq!(n.check(), vec![]);
    let supply = vec![
        ps("P1", 100.0, 1000.0, 10.0),
        ps("P2", 50.0, 500.0, 20.0),
        ps("P3", 40.0, 400.0, 5.0),
    ];
    (n, supply)
}

#[test]
fn hand_computed_example() {
    let (n, supply) = example();
    let rows = ranking(&n, &supply, &ExposureOptions::default());

    // A down: f(P1) = f(P2) = 1. Without alternates: min(1000/100, 500/50) = 10 d.
    // With B (t >= 5): y1 >= 100t - 1000, y2 >= 50t - 500, y1 + y2 <= 60(t - 5) (shared).
    // For t >= 10 both are needed: 150t - 1500 <= 60t - 300 => t <= 1200/90 = 13.333 d.
    // (Per part, each with B's full 60/day, P1 would last until 17.5 d and P2 forever: the
    // shared capacity is what decides.)
    let a = node(&rows, "A");
    assert!(close(a.tts_days, 40.0 / 3.0), "{a:?}");
    // Lost over TTR = 21 d: shortfalls P1 2100 - 1000 = 1100, P2 1050 - 500 = 550; B gives
    // 60 x (21 - 5) = 960 units, to the dearer P2 first (550), then 410 to P1:
    // lost = 1100 - 410 = 690 units of P1 x 10 = 6900.
    assert!(close(a.lost_value, 6900.0), "{a:?}");
    assert!(close(a.affected_parts[0].lost_units, 690.0));
    assert!(close(a.affected_parts[1].lost_units, 0.0));
    assert!(a.exposed); // 13.3 < 21

    // X down: f(P1) = f(P2) = 0.5: rates 50/day and 25/day. Without alternates:
    // min(1000/50, 500/25) = 20 d. With B: 75t - 1500 <= 60(t - 5) => t <= 80 d.
    let x = node(&rows, "X");
    assert!(close(x.tts_days, 80.0), "{x:?}");
    // Over TTR = 100 d: shortfalls 5000 - 1000 = 4000 and 2500 - 500 = 2000; B gives
    // 60 x 95 = 5700; 300 units short, taken from the cheaper P1: 300 x 10 = 3000.
    assert!(close(x.lost_value, 3000.0), "{x:?}");
    assert!(close(x.affected_parts[0].fraction, 0.5));
    assert!(x.exposed); // 80 < 100

    // Y down: f(P3) = 1. Without alternates 400/40 = 10 d. A (lead 20) would need
    // 400 + 40(t - 20) >= 40t, i.e. -400 >= 0: infeasible, so TTS = 10 d.
    // Over TTR = 30 d: shortfall 1200 - 400 = 800; A gives 40 x (30 - 20) = 400;
    // lost 400 x 5 = 2000.
    let y = node(&rows, "Y");
    assert!(close(y.tts_days, 10.0), "{y:?}");
    assert!(close(y.lost_value, 2000.0), "{y:?}");

    // B down: the same TTS of 10 d, but TTR = 8 d: 320 units needed, 400 in stock: no loss,
    // not exposed (10 >= 8).
    let b = node(&rows, "B");
    assert!(close(b.tts_days, 10.0), "{b:?}");
    assert!(close(b.lost_value, 0.0));
    assert!(!b.exposed);

    // REI = lost / 6900; ranked by REI, then TTS.
    let order: Vec<(&str, f64)> = rows.iter().map(|n| (n.supplier.as_str(), n.rei)).collect();
    assert_eq!(
        order.iter().map(|o| o.0).collect::<Vec<_>>(),
        ["A", "X", "Y", "B"]
    );
    assert!(close(order[0].1, 1.0));
    assert!(close(order[1].1, round6(3000.0 / 6900.0)));
    assert!(close(order[2].1, round6(2000.0 / 6900.0)));
    assert_eq!(order[3].1, 0.0);

    let table = RankingTable(&rows).to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "  #  supplier  tier  tts_days  ttr_days  exposed      lost_value    rei  parts"
    );
    assert_eq!(
        lines[1],
        "  1  A            1      13.3      21.0  yes             6900.00  1.000  P1,P2"
    );
    assert_eq!(lines.len(), 5);
    let json = serde_json::to_value(&rows).unwrap();
    assert_eq!(json[0]["supplier"], "A");
    assert_eq!(json[0]["affected_parts"][0]["part"], "P1");
}

#[test]
fn no_alternates() {
    // Stock 300, 20/day: 15 d. TTR 20 d: 100 units short x 3 = 300.
    let mut n = Network::default();
    n.upsert_supplier(sup("A", 1, Some(20.0)));
    n.upsert_part(part("P", "A"));
    let rows = ranking(
        &n,
        &[ps("P", 20.0, 300.0, 3.0)],
        &ExposureOptions::default(),
    );
    assert!(close(rows[0].tts_days, 15.0));
    assert!(close(rows[0].lost_value, 300.0));
    assert!(close(rows[0].rei, 1.0));
    assert!(rows[0].exposed);
}

#[test]
fn alternates_faster_than_stock_runs_out() {
    // Stock 1000 at 100/day lasts 10 d; an alternate from day 3.
    let build = |capacity: f64| {
        let mut n = Network::default();
        n.upsert_supplier(sup("A", 1, Some(30.0)));
        n.upsert_supplier(sup("C", 1, None));
        let mut p = part("P", "A");
        p.alternates = vec![alt("C", capacity, 3.0)];
        n.upsert_part(p);
        ranking(
            &n,
            &[ps("P", 100.0, 1000.0, 1.0)],
            &ExposureOptions::default(),
        )
    };
    // 150/day covers the demand for ever: TTS = horizon, no loss.
    let rows = build(150.0);
    let a = node(&rows, "A");
    assert!(close(a.tts_days, 365.0), "{a:?}");
    assert!(close(a.lost_value, 0.0));
    assert!(!a.exposed);
    // 80/day: 1000 + 80(t - 3) >= 100t => t <= 760/20 = 38 d; over TTR 30 d: 3000 - 1000 =
    // 2000 short, 80 x 27 = 2160 available: no loss, and 38 >= 30: not exposed.
    let rows = build(80.0);
    let a = node(&rows, "A");
    assert!(close(a.tts_days, 38.0), "{a:?}");
    assert!(close(a.lost_value, 0.0));
    assert!(!a.exposed);
}

#[test]
fn an_alternate_that_is_down_or_unqualified_does_not_help() {
    let mut n = Network::default();
    n.upsert_supplier(sup("A", 1, Some(30.0)));
    n.upsert_supplier(sup("C", 1, None));
    n.upsert_supplier(sup("D", 1, None));
    let mut p = part("P", "A");
    let mut unqualified = alt("D", 1000.0, 0.0);
    unqualified.qualified = false;
    p.alternates = vec![alt("C", 150.0, 3.0), unqualified];
    n.upsert_part(p);
    let options = ExposureOptions {
        down: BTreeSet::from(["C".to_string()]),
        ..ExposureOptions::default()
    };
    let rows = ranking(&n, &[ps("P", 100.0, 1000.0, 1.0)], &options);
    let a = node(&rows, "A");
    assert!(close(a.tts_days, 10.0), "{a:?}");
    // 3000 - 1000 = 2000 units lost at 1 each.
    assert!(close(a.lost_value, 2000.0), "{a:?}");
}

#[test]
fn horizon_cap() {
    // 1000 units at 10/day would last 100 d; the horizon is 30 d.
    let mut n = Network::default();
    n.upsert_supplier(sup("A", 1, None));
    n.upsert_part(part("P", "A"));
    let options = ExposureOptions {
        horizon_days: 30.0,
        ..ExposureOptions::default()
    };
    let rows = ranking(&n, &[ps("P", 10.0, 1000.0, 1.0)], &options);
    assert!(close(rows[0].tts_days, 30.0));
    // No TTR declared: no lost value, not exposed.
    assert_eq!(rows[0].ttr_days, None);
    assert!(!rows[0].exposed);
    assert_eq!(rows[0].rei, 0.0);
}

#[test]
fn a_node_whose_failure_affects_nothing() {
    let (mut n, supply) = example();
    n.upsert_supplier(sup("Z", 3, Some(50.0)));
    let rows = ranking(&n, &supply, &ExposureOptions::default());
    let z = node(&rows, "Z");
    assert_eq!(z.tts_days, 365.0);
    assert_eq!(z.lost_value, 0.0);
    assert_eq!(z.rei, 0.0);
    assert!(z.affected_parts.is_empty());
    assert!(!z.exposed);
    // Ranked last: REI 0 and the longest TTS.
    assert_eq!(rows.last().unwrap().supplier, "Z");
}

#[test]
fn parts_without_supply_are_listed_not_counted() {
    let (n, supply) = example();
    let rows = ranking(&n, &supply[..1], &ExposureOptions::default());
    let a = node(&rows, "A");
    assert_eq!(a.parts_without_supply, ["P2"]);
    // P1 alone: 1000 + 60(t - 5) >= 100t => t <= 17.5 d.
    assert!(close(a.tts_days, 17.5), "{a:?}");
}

#[test]
fn ranking_of_the_simulated_network() {
    let sim = crate::sim::Simulator::new(crate::sim::SimConfig::default());
    let n = Network::from_sim(sim.network());
    // Ten days of stock for every part.
    let supply: Vec<PartSupply> = sim
        .network()
        .parts
        .iter()
        .map(|p| {
            let demand: f64 = p.uses.iter().map(|u| u.daily_demand).sum();
            ps(&p.id, demand, demand * 10.0, p.unit_price)
        })
        .collect();
    let started = std::time::Instant::now();
    let rows = ranking(&n, &supply, &ExposureOptions::default());
    let took = started.elapsed();
    assert_eq!(rows.len(), n.suppliers.len());
    assert_eq!(rows[0].rei, 1.0);
    for w in rows.windows(2) {
        assert!(w[0].rei >= w[1].rei, "{:?} before {:?}", w[0], w[1]);
    }
    for r in &rows {
        assert!((0.0..=365.0).contains(&r.tts_days), "{r:?}");
        if !r.affected_parts.is_empty() && r.affected_parts.iter().all(|p| p.fraction == 1.0) {
            // Ten days of stock: a primary lasts at least that long.
            assert!(r.tts_days >= 10.0 - 1e-6, "{r:?}");
        }
    }
    assert!(rows.iter().any(|r| r.tier == 2 && r.lost_value > 0.0));
    assert!(took.as_secs() < 10, "ranking took {took:?}");
}
