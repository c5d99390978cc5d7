//! Golden tests of the shipped indicator SQL: events in, expected indicator rows out.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;
use crate::state::tests::batch_of;
use crate::state::{Retention, State, DAY_MS};

const T0: i64 = 1_772_409_600_000; // 2026-03-02T00:00:00Z
const H: i64 = 3_600_000;

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

async fn shipped() -> Indicators {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules/indicators");
    Indicators::load_dir(&dir)
        .await
        .expect("shipped indicators plan")
}

async fn eval(state: &State) -> BTreeMap<String, Vec<IndicatorRow>> {
    results(state)
        .await
        .into_iter()
        .map(|(name, r)| (name, r.rows))
        .collect()
}

async fn results(state: &State) -> BTreeMap<String, IndicatorResult> {
    shipped()
        .await
        .evaluate(&state.snapshot())
        .await
        .into_iter()
        .map(|r| r.expect("indicator runs"))
        .map(|r| (r.name.clone(), r))
        .collect()
}

/// The JSON view templates get of the row with `labels`.
fn json_of(
    result: &IndicatorResult,
    labels: &[(&str, &str)],
) -> BTreeMap<String, serde_json::Value> {
    let row = find(&result.rows, labels);
    let index = result
        .rows
        .iter()
        .position(|r| std::ptr::eq(r, row))
        .expect("found in these rows");
    result.row(index).json().into_owned()
}

fn find<'a>(rows: &'a [IndicatorRow], labels: &[(&str, &str)]) -> &'a IndicatorRow {
    rows.iter()
        .find(|r| {
            labels
                .iter()
                .all(|(k, v)| r.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no row {labels:?} in {rows:#?}"))
}

fn v(row: &IndicatorRow, col: &str) -> Option<f64> {
    *row.values
        .get(col)
        .unwrap_or_else(|| panic!("no column {col}"))
}

fn approx(a: Option<f64>, b: f64) {
    let a = a.expect("a value");
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

fn line(id: &str, supplier: &str, po: &str, part: &str, site: &str, promised: i64) -> Value {
    json!({"event_id": id, "kind": "po_line_created", "event_time": iso(T0), "source": "t",
        "po": po, "line": 1, "supplier": supplier, "part": part, "site": site,
        "quantity": 10.0, "unit_price": 5.0, "order_date": date(T0), "promised_date": date(promised)})
}

fn receipt(id: &str, supplier: &str, po: &str, at: i64) -> Value {
    json!({"event_id": id, "kind": "goods_receipt", "event_time": iso(at), "source": "t",
        "po": po, "line": 1, "supplier": supplier, "quantity": 10.0, "received_at": iso(at)})
}

#[tokio::test]
async fn supplier_delivery_ratios_delays_and_open_late_lines() {
    let mut s = State::new(Retention::default());
    let mut ev = vec![];
    // S1: due end of T0+5d. Received at +5d (early 1d), +7d (1d late: within tolerance),
    // +8d (2d late), +11d (5d late). One more open line due +3d: late at eval time.
    for (i, at) in [5, 7, 8, 11].iter().enumerate() {
        ev.push(line(
            &format!("l{i}"),
            "S1",
            &format!("P{i}"),
            "X",
            "D",
            T0 + 5 * DAY_MS,
        ));
        ev.push(receipt(
            &format!("r{i}"),
            "S1",
            &format!("P{i}"),
            T0 + at * DAY_MS,
        ));
    }
    ev.push(line("open", "S1", "P9", "X", "D", T0 + 3 * DAY_MS));
    ev.push(
        json!({"event_id": "rs", "kind": "supplier_confirmation", "event_time": iso(T0 + H),
        "source": "t", "po": "P9", "line": 1, "supplier": "S1", "status": "rescheduled",
        "promised_date": date(T0 + 4 * DAY_MS)}),
    );
    // S2: only two deliveries: too few for a ratio.
    for i in 0..2 {
        ev.push(line(
            &format!("m{i}"),
            "S2",
            &format!("Q{i}"),
            "X",
            "D",
            T0 + 5 * DAY_MS,
        ));
        ev.push(receipt(
            &format!("n{i}"),
            "S2",
            &format!("Q{i}"),
            T0 + 2 * DAY_MS,
        ));
    }
    ev.sort_by_key(|e| e["event_time"].as_str().unwrap().to_string());
    s.apply(&batch_of(&ev), T0 + 12 * DAY_MS);
    let full = results(&s).await;
    let rows = &full["supplier_delivery"].rows;
    let s1 = find(rows, &[("supplier", "S1")]);
    approx(v(s1, "deliveries"), 4.0);
    approx(v(s1, "on_time_ratio"), 0.5);
    approx(v(s1, "mean_delay_days"), (-1.0 + 1.0 + 2.0 + 5.0) / 4.0);
    approx(v(s1, "open_lines"), 1.0);
    approx(v(s1, "open_late_lines"), 1.0);
    approx(v(s1, "open_late_value"), 50.0);
    // Promise moved to T0+4d, due end of day: 12 - 5 = 7 days late now.
    approx(v(s1, "max_open_late_days"), 7.0);
    approx(v(s1, "reschedules"), 1.0);
    assert!(v(s1, "p90_delay_days").unwrap() >= 2.0);
    let s2 = find(rows, &[("supplier", "S2")]);
    assert_eq!(v(s2, "on_time_ratio"), None);
    approx(v(s2, "deliveries"), 2.0);
    let s1_json = json_of(&full["supplier_delivery"], &[("supplier", "S1")]);
    assert_eq!(s1_json["supplier"], json!("S1"));
    assert_eq!(s1_json["open_late_lines"], json!(1.0));
}

fn milestone(id: &str, sh: &str, status: &str, loc: &str, t: i64) -> Value {
    json!({"event_id": id, "kind": "milestone", "event_time": iso(t), "source": "t",
        "shipment": sh, "supplier": "S1", "status": status, "location": loc})
}

fn shipment(sh: &str, po: &str, mode: &str, eta: i64) -> Value {
    json!({"event_id": format!("c-{sh}"), "kind": "shipment_created", "event_time": iso(T0), "source": "t",
        "shipment": sh, "supplier": "S1", "po_lines": [{"po": po, "line": 1}], "origin": "CNSHA",
        "destination": "DEHAM", "carrier": "C", "mode": mode, "shipped_at": iso(T0), "eta": iso(eta)})
}

#[tokio::test]
async fn congestion_against_the_location_baseline_and_lane_status() {
    let mut s = State::new(Retention::default());
    let mut ev = vec![];
    // Baseline at SGSIN: 6 stops of 1 day each, ended before now - 3 days.
    for i in 0..6 {
        let sh = format!("B{i}");
        ev.push(shipment(&sh, "none", "ocean", T0 + 5 * DAY_MS));
        ev.push(milestone(
            &format!("a{i}"),
            &sh,
            "arrived",
            "SGSIN",
            T0 + i * H,
        ));
        ev.push(milestone(
            &format!("d{i}"),
            &sh,
            "departed",
            "SGSIN",
            T0 + DAY_MS + i * H,
        ));
    }
    // Now (T0+20d): one shipment there for 4 days and held for 3; it carries a line due T0+10d
    // with an ETA of T0+25d (slippage 14 days).
    ev.push(line("l", "S1", "PX", "X", "D", T0 + 10 * DAY_MS));
    ev.push(shipment("H1", "PX", "ocean", T0 + 25 * DAY_MS));
    ev.push(milestone("h-a", "H1", "arrived", "SGSIN", T0 + 16 * DAY_MS));
    ev.push(milestone("h-h", "H1", "held", "SGSIN", T0 + 17 * DAY_MS));
    // An air shipment quiet for 5 days but not yet due: not silent.
    ev.push(shipment("A1", "none", "air", T0 + 21 * DAY_MS));
    ev.push(milestone(
        "a-d",
        "A1",
        "departed",
        "CNSHA",
        T0 + 15 * DAY_MS,
    ));
    ev.sort_by_key(|e| e["event_time"].as_str().unwrap().to_string());
    s.apply(&batch_of(&ev), T0 + 20 * DAY_MS);
    let out = eval(&s).await;
    let sg = find(&out["location_congestion"], &[("location", "SGSIN")]);
    approx(v(sg, "baseline_dwell_days"), 1.0);
    approx(v(sg, "dwell_days"), 4.0);
    approx(v(sg, "congestion_ratio"), 4.0);
    approx(v(sg, "shipments_at_location"), 1.0);
    let lane = find(&out["lane_shipments"], &[("lane", "CNSHA-DEHAM")]);
    approx(v(lane, "in_flight"), 8.0);
    approx(v(lane, "held_shipments"), 1.0);
    // B0..B5 last spoke at T0+1d, 19 days ago and 15 days past their ETA (limit 3 days
    // after the ETA); A1 spoke 5 days ago, before its ETA (limit 25 days).
    approx(v(lane, "silent_shipments"), 6.0);
    // Only H1 carries an open line: ETA T0+25d vs due end of T0+10d = 14 days.
    approx(v(lane, "max_eta_slippage_days"), 14.0);
}

#[tokio::test]
async fn coverage_gap_uses_the_next_inbound_eta() {
    let mut s = State::new(Retention::default());
    let ev = vec![
        line("l1", "S1", "P1", "X", "D", T0 + 20 * DAY_MS),
        line("l2", "S1", "P2", "X", "D", T0 + 30 * DAY_MS),
        shipment("SH", "P2", "air", T0 + 8 * DAY_MS),
        json!({"event_id": "i", "kind": "inventory_position", "event_time": iso(T0), "source": "t",
            "site": "D", "part": "X", "on_hand": 50.0, "daily_demand": 10.0}),
        json!({"event_id": "j", "kind": "inventory_position", "event_time": iso(T0), "source": "t",
            "site": "D", "part": "Y", "on_hand": 50.0, "daily_demand": 0.0}),
    ];
    s.apply(&batch_of(&ev), T0);
    let out = eval(&s).await;
    let x = find(&out["inventory_coverage"], &[("site", "D"), ("part", "X")]);
    approx(v(x, "days_of_supply"), 5.0);
    // The shipped line P2 arrives first (ETA +8d) although promised later.
    approx(v(x, "next_inbound_days"), 8.0);
    approx(v(x, "coverage_gap_days"), -3.0);
    approx(v(x, "inbound_lines"), 2.0);
    let y = find(&out["inventory_coverage"], &[("part", "Y")]);
    assert_eq!(v(y, "coverage_gap_days"), None, "no demand: no gap");
}

#[tokio::test]
async fn eval_time_is_the_watermark_not_the_clock() {
    let ind = Indicators::from_sources(vec![(
        PathBuf::from("clock.sql"),
        "SELECT 'x' AS k, CAST(eval_time() AS BIGINT) AS now_ms".into(),
    )])
    .await
    .expect("plans");
    let mut tables = Tables::empty();
    tables.watermark = 1_234_000;
    let r = ind.evaluate(&tables).await.pop().unwrap().unwrap();
    approx(r.rows[0].values["now_ms"], 1_234_000.0);
}

#[tokio::test]
async fn planning_errors_name_the_file_and_statements_are_refused() {
    let cases = [
        (
            "bad_column.sql",
            "SELECT supplier, nope FROM po_lines",
            "nope",
        ),
        (
            "bad_table.sql",
            "SELECT supplier, 1 AS x FROM orders",
            "orders",
        ),
        (
            "no_labels.sql",
            "SELECT COUNT(*) AS n FROM po_lines",
            "at least one string column",
        ),
        ("ddl.sql", "CREATE TABLE t AS SELECT 1", "DDL not supported"),
        (
            "dml.sql",
            "INSERT INTO po_lines SELECT * FROM po_lines",
            "DML not supported",
        ),
        (
            "set.sql",
            "SET datafusion.execution.batch_size = 1",
            "Statement not supported",
        ),
        (
            "Bad-Name.sql",
            "SELECT supplier, 1 AS x FROM po_lines",
            "snake_case",
        ),
        (
            "bad_days.sql",
            "SELECT supplier, days_between(supplier, due_at) AS d FROM po_lines",
            "days_between",
        ),
    ];
    for (file, sql, expect) in cases {
        let err = Indicators::from_sources(vec![(PathBuf::from(file), sql.to_string())])
            .await
            .err()
            .unwrap_or_else(|| panic!("{file} should fail"));
        let msg = err[0].to_string();
        assert!(msg.starts_with(file), "{msg}");
        assert!(msg.contains(expect), "{file}: {msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Predictive indicators: line_lateness, supplier_lateness, supplier_delay_anomaly.

/// P(T > x) for T = loc + scale * t(df): the reference the SQL model is checked against.
fn t_sf(x: f64, loc: f64, scale: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    StudentsT::new(loc, scale, df).expect("valid t").sf(x)
}

/// A line of `supplier` created at T0, promised so that it is due (end of the promised day)
/// `due` ms after the epoch; `due` must be a midnight.
fn line_due(id: &str, supplier: &str, po: &str, part: &str, site: &str, due: i64) -> Value {
    line(id, supplier, po, part, site, due - DAY_MS)
}

fn ship(sh: &str, po: &str, lane: (&str, &str), at: i64, eta: i64) -> Value {
    json!({"event_id": format!("c-{sh}"), "kind": "shipment_created", "event_time": iso(at),
        "source": "t", "shipment": sh, "supplier": "S1", "po_lines": [{"po": po, "line": 1}],
        "origin": lane.0, "destination": lane.1, "carrier": "C", "mode": "road",
        "shipped_at": iso(at), "eta": iso(eta)})
}

/// Evaluation time of the predictive golden tests: a midnight, so delays are whole days.
const NOW: i64 = T0 + 20 * DAY_MS;

/// History received at NOW (recency weight 1): S1 delays 0, 2, 4, 6 days; S2 -2, -2, -1, -1,
/// 0, 0 days.
fn history() -> Vec<Value> {
    let mut ev = vec![];
    let delays = [
        ("S1", &[0, 2, 4, 6][..]),
        ("S2", &[-2, -2, -1, -1, 0, 0][..]),
    ];
    for (supplier, ds) in delays {
        for (i, d) in ds.iter().enumerate() {
            let po = format!("H-{supplier}-{i}");
            ev.push(line_due(
                &format!("hl-{po}"),
                supplier,
                &po,
                "X",
                "D0",
                NOW - d * DAY_MS,
            ));
            ev.push(receipt(&format!("hr-{po}"), supplier, &po, NOW));
        }
    }
    ev
}

fn sorted(mut ev: Vec<Value>) -> Vec<Value> {
    ev.sort_by_key(|e| e["event_time"].as_str().unwrap_or_default().to_string());
    ev
}

/// S1's predictive delay distribution for the history above, worked by hand:
/// population (10 records): m0 = (12 - 6) / 10 = 0.6, E[x^2] = (56 + 10) / 10 = 6.6,
/// v0 = 6.6 - 0.36 = 6.24. S1: n = 4, m = 3, SS = 56 - 4 * 9 = 20.
/// loc = (5 * 0.6 + 4 * 3) / 9 = 15/9;
/// s2 = (5 * 6.24 + 20 + 5 * 4 / 9 * (3 - 0.6)^2) / 9 = (31.2 + 20 + 12.8) / 9 = 64/9;
/// scale^2 = 64/9 * (1 + 1/9) = 640/81; df = 9.
fn s1_predictive() -> (f64, f64, f64) {
    (15.0 / 9.0, (640.0f64 / 81.0).sqrt(), 9.0)
}

#[tokio::test]
async fn line_lateness_from_the_supplier_history_shrunk_towards_the_population() {
    let mut s = State::new(Retention::default());
    let mut ev = history();
    ev.push(line_due("l1", "S1", "L1", "P1", "D3", NOW + 10 * DAY_MS));
    ev.push(line_due("l2", "S2", "L2", "P2", "D3", NOW + 10 * DAY_MS));
    ev.push(line_due("l3", "S3", "L3", "P3", "D3", NOW + 10 * DAY_MS));
    s.apply(&batch_of(&sorted(ev)), NOW);
    let out = eval(&s).await;
    let rows = &out["line_lateness"];

    // S1, due in 10 days, no shipment, no transit known: P(D > 1 | D > -10).
    let (loc, scale, df) = s1_predictive();
    let p1 = t_sf(1.0, loc, scale, df) / t_sf(-10.0, loc, scale, df);
    assert!((0.55..0.65).contains(&p1), "hand check: {p1}");
    let l1 = find(rows, &[("po", "L1"), ("line", "1")]);
    approx(v(l1, "p_late"), p1);
    approx(v(l1, "days_to_due"), 10.0);
    approx(v(l1, "expected_delay_days"), loc);
    approx(v(l1, "history_deliveries"), 4.0);
    approx(v(l1, "shipped"), 0.0);
    approx(v(l1, "open_value"), 50.0);
    assert_eq!(l1.labels["supplier"], "S1");
    assert_eq!(l1.labels["part"], "P1");
    // S2 is mostly early: n = 6, m = -1, SS = 10 - 6 = 4 -> loc = (3 - 6) / 11 < 0, below 0.5.
    assert!(rows.iter().all(|r| r.labels["po"] != "L2"), "{rows:#?}");

    // S3 has no history: the population prior alone, t(5) at 0.6 with scale^2 = 6.24 * 1.2.
    // P(D > 1 | D > -10) is under 0.5, so only the supplier aggregate shows it.
    let p3 =
        t_sf(1.0, 0.6, (6.24f64 * 1.2).sqrt(), 5.0) / t_sf(-10.0, 0.6, (6.24f64 * 1.2).sqrt(), 5.0);
    assert!(p3 < 0.5 && p3 > 0.3, "{p3}");
    assert!(rows.iter().all(|r| r.labels["po"] != "L3"));
    let s3 = find(&out["supplier_lateness"], &[("supplier", "S3")]);
    approx(v(s3, "lines_due"), 1.0);
    approx(v(s3, "expected_late_lines"), p3);
    assert_eq!(v(s3, "expected_late_share"), None, "fewer than 3 lines");
    approx(v(s3, "predicted_late_lines"), 0.0);
}

#[tokio::test]
async fn without_any_history_lateness_is_unknown_not_certain() {
    // No deliveries and no past-due lines anywhere: no population prior (it needs 10 records),
    // so p_late is null. It was once clamped with LEAST(p_late, 1.0), which skips nulls and
    // made every such line count as surely late in supplier_lateness.
    let mut s = State::new(Retention::default());
    let ev = vec![
        line_due("n1", "S9", "N1", "P1", "D1", NOW + 5 * DAY_MS),
        line_due("n2", "S9", "N2", "P1", "D1", NOW + 6 * DAY_MS),
        line_due("n3", "S9", "N3", "P1", "D1", NOW + 7 * DAY_MS),
    ];
    s.apply(&batch_of(&sorted(ev)), NOW);
    let out = eval(&s).await;
    assert!(
        out["line_lateness"].is_empty(),
        "{:#?}",
        out["line_lateness"]
    );
    let s9 = find(&out["supplier_lateness"], &[("supplier", "S9")]);
    approx(v(s9, "lines_due"), 3.0);
    assert_eq!(v(s9, "expected_late_lines"), None);
    assert_eq!(v(s9, "expected_late_share"), None);
    assert_eq!(v(s9, "max_p_late"), None);
    approx(v(s9, "predicted_late_lines"), 0.0);
}

#[tokio::test]
async fn line_lateness_uses_transit_time_etas_lane_slippage_and_deliveries() {
    let mut s = State::new(Retention::default());
    let road = ("PLPOZ", "DEMUC");
    let sea = ("CNSHA", "DEHAM");
    let mut ev = history();
    // A: shipped on a 5-day road trip (NOW - 1d -> NOW + 4d), due in 10 days: early.
    ev.push(line_due("a", "S1", "A", "PA", "D1", NOW + 10 * DAY_MS));
    ev.push(ship("SA", "A", road, NOW - DAY_MS, NOW + 4 * DAY_MS));
    // B: same supplier and site, not shipped, due in 3 days: the 5-day transit cannot make it.
    ev.push(line_due("b", "S1", "B", "PB", "D1", NOW + 3 * DAY_MS));
    // C: at sea, ETA NOW + 5d, due in 2 days. X on the same lane had its ETA moved 4 days.
    ev.push(line_due("c", "S1", "C", "PC", "D2", NOW + 2 * DAY_MS));
    ev.push(ship("Y", "C", sea, T0, NOW + 5 * DAY_MS));
    ev.push(ship("X", "none", sea, T0, NOW + DAY_MS));
    ev.push(
        json!({"event_id": "x-eta", "kind": "eta_update", "event_time": iso(NOW - DAY_MS),
        "source": "t", "shipment": "X", "supplier": "S1", "eta": iso(NOW + 5 * DAY_MS)}),
    );
    // E: its truck was delivered 2 hours ago, the goods receipt is not booked yet; due in 1 day.
    ev.push(line_due("e", "S1", "E", "PE", "D1", NOW + DAY_MS));
    ev.push(ship("SE", "E", road, NOW - 3 * DAY_MS, NOW - 2 * H));
    ev.push(milestone("se-d", "SE", "delivered", "DEMUC", NOW - 2 * H));
    // F: its shipment notice was applied before the line itself (another topic, read ahead);
    // ETA NOW + 1d, due in 3 days.
    ev.push(ship("SF", "F", road, T0 - H, NOW + DAY_MS));
    ev.push(line_due("f", "S1", "F", "PF", "D1", NOW + 3 * DAY_MS));
    s.apply(&batch_of(&sorted(ev)), NOW);
    let out = eval(&s).await;
    let rows = &out["line_lateness"];

    // A: ETA 6 days before due; scale 0.5 + 0.1 * 4 = 0.9; P(D > 1 | D > -10), t(3).
    let pa = t_sf(1.0, -6.0, 0.9, 3.0) / t_sf(-10.0, -6.0, 0.9, 3.0);
    assert!(rows.iter().all(|r| r.labels["po"] != "A"));
    // B: lower = max(-3, 5 - 3) = 2 >= 1: certainly late; expected delay max(15/9, 2) = 2.
    let b = find(rows, &[("po", "B")]);
    approx(v(b, "p_late"), 1.0);
    approx(v(b, "expected_delay_days"), 2.0);
    approx(v(b, "shipped"), 0.0);
    // C: lane mean ETA change (4 + 0) / 2 = 2, C's own 0: arrival = ETA + 2 = due + 5 days;
    // scale 0.5 + 0.1 * 5 = 1; P(D > 1 | D > -2).
    let pc = t_sf(1.0, 5.0, 1.0, 3.0) / t_sf(-2.0, 5.0, 1.0, 3.0);
    let c = find(rows, &[("po", "C")]);
    approx(v(c, "p_late"), pc);
    approx(v(c, "expected_delay_days"), 5.0);
    approx(v(c, "shipped"), 1.0);
    approx(v(c, "days_to_due"), 2.0);
    // E: delivered 1 day + 2 hours before due (scale 0.5, the ETA has passed): not late, where
    // as an unshipped line its 5-day transit would have made it "certainly late".
    let de = -(1.0 + 2.0 / 24.0);
    let pe = t_sf(1.0, de, 0.5, 3.0) / t_sf(-1.0, de, 0.5, 3.0);
    assert!(pe < 0.1, "{pe}");
    assert!(rows.iter().all(|r| r.labels["po"] != "E"), "{rows:#?}");
    // F is linked to SF all the same: ETA 2 days early, scale 0.5 + 0.1 * 1 (unshipped, the
    // 5-day transit would again have made it certainly late).
    let pf = t_sf(1.0, -2.0, 0.6, 3.0) / t_sf(-3.0, -2.0, 0.6, 3.0);
    assert!(pf < 0.1, "{pf}");
    assert!(rows.iter().all(|r| r.labels["po"] != "F"), "{rows:#?}");

    // The supplier aggregate over the same lines (A, B, C, E, F).
    let s1 = find(&out["supplier_lateness"], &[("supplier", "S1")]);
    let expected = pa + 1.0 + pc + pe + pf;
    approx(v(s1, "lines_due"), 5.0);
    approx(v(s1, "expected_late_lines"), expected);
    approx(v(s1, "expected_late_share"), expected / 5.0);
    approx(v(s1, "predicted_late_lines"), 2.0);
    approx(v(s1, "predicted_late_value"), 100.0);
    approx(v(s1, "max_p_late"), 1.0);
    approx(v(s1, "next_predicted_late_due_days"), 2.0);
    let full = results(&s).await;
    let s1_json = json_of(&full["supplier_lateness"], &[("supplier", "S1")]);
    assert_eq!(s1_json["affected_parts"], json!("[PB, PC]"));
}

#[tokio::test]
async fn supplier_delay_anomaly_against_its_own_baseline() {
    let mut s = State::new(Retention::default());
    let mut ev = vec![];
    // S1 baseline: 10 deliveries received 10 days ago, delays alternating -1 and +1 day:
    // mean 0, sample sd sqrt(10 / 9) = 1.054 (below the 1.5-day floor).
    for i in 0..10 {
        let po = format!("B{i}");
        let d = if i % 2 == 0 { -1 } else { 1 };
        let at = NOW - 10 * DAY_MS;
        ev.push(line_due(
            &format!("bl{i}"),
            "S1",
            &po,
            "X",
            "D",
            at - d * DAY_MS,
        ));
        ev.push(receipt(&format!("br{i}"), "S1", &po, at));
    }
    // Recent: received yesterday 3 and 5 days late, and one open line 4 days past due.
    for (i, d) in [3, 5].iter().enumerate() {
        let po = format!("R{i}");
        let at = NOW - DAY_MS;
        ev.push(line_due(
            &format!("rl{i}"),
            "S1",
            &po,
            "X",
            "D",
            at - d * DAY_MS,
        ));
        ev.push(receipt(&format!("rr{i}"), "S1", &po, at));
    }
    ev.push(line_due("open", "S1", "O1", "X", "D", NOW - 4 * DAY_MS));
    // S2: two recent deliveries only: too few for a z-score.
    for i in 0..2 {
        let po = format!("Q{i}");
        ev.push(line_due(&format!("ql{i}"), "S2", &po, "X", "D", NOW));
        ev.push(receipt(&format!("qr{i}"), "S2", &po, NOW - DAY_MS));
    }
    s.apply(&batch_of(&sorted(ev)), NOW);
    let out = eval(&s).await;
    let rows = &out["supplier_delay_anomaly"];
    let s1 = find(rows, &[("supplier", "S1")]);
    // z = (4 - 0) / (1.5 * sqrt(1/3 + 1/10)) = 4 / 0.98742 = 4.051
    approx(v(s1, "recent_mean_delay_days"), 4.0);
    approx(v(s1, "recent_max_delay_days"), 5.0);
    approx(v(s1, "recent_lines"), 3.0);
    approx(v(s1, "recent_past_due_lines"), 1.0);
    approx(v(s1, "baseline_deliveries"), 10.0);
    approx(v(s1, "baseline_mean_delay_days"), 0.0);
    approx(v(s1, "baseline_sd_delay_days"), (10.0f64 / 9.0).sqrt());
    approx(v(s1, "delay_z"), 4.0 / (1.5 * (1.0f64 / 3.0 + 0.1).sqrt()));
    let s2 = find(rows, &[("supplier", "S2")]);
    approx(v(s2, "recent_lines"), 2.0);
    assert_eq!(v(s2, "delay_z"), None);
}

#[tokio::test]
async fn line_and_supplier_lateness_read_one_model_the_line_risk_view() {
    let ind = shipped().await;
    let views: Vec<&str> = ind.views().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(views, ["line_risk"]);
    for name in ["line_lateness", "supplier_lateness"] {
        let def = ind.defs().iter().find(|d| d.name == name).expect(name);
        assert_eq!(def.reads, [0], "{name} reads the line_risk view");
    }
}

/// The default simulation run through the real decoder into a [`State`], one day at a time;
/// the shipped indicators are evaluated at the end of each day in `days`.
async fn simulated(days: &[i64]) -> (String, BTreeMap<i64, BTreeMap<String, Vec<IndicatorRow>>>) {
    use crate::ingest::decode::EventDecoder;
    use crate::sim::{DisruptionKind, SimConfig, Simulator};
    let cfg = SimConfig::default();
    let mut sim = Simulator::new(cfg.clone());
    let slip = sim
        .disruptions()
        .iter()
        .find(|d| d.kind == DisruptionKind::SupplierSlip)
        .expect("the default scenario has a slipping supplier")
        .targets[0]
        .clone();
    let indicators = shipped().await;
    let decoder = EventDecoder::new(1 << 20);
    let mut state = State::new(Retention::default());
    let mut out = BTreeMap::new();
    let last = days.iter().copied().max().unwrap_or(0);
    for day in 1..=last {
        let until = cfg.start + chrono::Duration::days(day);
        let events = sim.run_until(until);
        let payloads: Vec<Option<&[u8]>> = events.iter().map(|e| Some(&e.payload[..])).collect();
        let decoded = decoder.decode(&payloads);
        assert!(decoded.rejects.is_empty(), "{:?}", decoded.rejects);
        let batch = decoded.batch.expect("events every day");
        state.apply(&batch, until.timestamp_millis());
        if days.contains(&day) {
            let results = indicators.evaluate(&state.snapshot()).await;
            let by_name = results
                .into_iter()
                .map(|r| r.expect("indicator runs"))
                .map(|r| (r.name, r.rows))
                .collect();
            out.insert(day, by_name);
        }
    }
    (slip, out)
}

#[tokio::test]
async fn the_simulated_supplier_slip_shows_in_lateness_and_anomaly_while_others_stay_low() {
    // SupplierSlip: SUP-T1-018's lines due from day 12 are delivered 7-16 days late.
    let (slip, at) = simulated(&[10, 20, 24, 28]).await;
    assert_eq!(slip, "SUP-T1-018");
    let share = |day: i64, supplier: &str| {
        let rows = &at[&day]["supplier_lateness"];
        v(find(rows, &[("supplier", supplier)]), "expected_late_share").unwrap_or(0.0)
    };
    let z = |day: i64| -> BTreeMap<String, Option<f64>> {
        at[&day]["supplier_delay_anomaly"]
            .iter()
            .map(|r| (r.labels["supplier"].clone(), r.values["delay_z"]))
            .collect()
    };

    // Before: nothing stands out for SUP-T1-018.
    assert!(share(10, &slip) < 0.3, "day 10 share {}", share(10, &slip));
    assert!(z(10).get(&slip).copied().flatten().is_none_or(|z| z < 3.0));

    // Day 20: its late lines (open past due, first late receipts) make it anomalous; other
    // suppliers at most marginally so.
    let z20 = z(20);
    let slip_z = z20[&slip].expect("enough records for a z-score");
    assert!(slip_z >= 5.0, "slip z {slip_z}");
    let others_high: Vec<_> = z20
        .iter()
        .filter(|(s, z)| **s != slip && z.is_some_and(|z| z >= 3.0))
        .collect();
    assert!(others_high.len() <= 1, "{others_high:?}");

    // Day 24: it has the highest expected share of late lines of all suppliers.
    let rows = &at[&24]["supplier_lateness"];
    let top = rows
        .iter()
        .max_by(|a, b| {
            let s = |r: &IndicatorRow| r.values["expected_late_share"].unwrap_or(0.0);
            s(a).total_cmp(&s(b))
        })
        .expect("suppliers with lines due");
    assert_eq!(top.labels["supplier"], slip, "day 24: {rows:#?}");

    // Day 28: most of its open lines due within 21 days are predicted late (p >= 0.5, the
    // line_lateness rows); most other suppliers stay low.
    let s28 = find(&at[&28]["supplier_lateness"], &[("supplier", &slip)]);
    let due = v(s28, "lines_due").unwrap_or(0.0);
    let flagged = at[&28]["line_lateness"]
        .iter()
        .filter(|r| r.labels["supplier"] == slip)
        .count() as f64;
    assert!(
        due >= 5.0 && flagged >= 0.8 * due,
        "{flagged} of {due} lines"
    );
    assert!(share(28, &slip) >= 0.5, "day 28 share {}", share(28, &slip));
    let others: Vec<f64> = at[&28]["supplier_lateness"]
        .iter()
        .filter(|r| r.labels["supplier"] != slip)
        .map(|r| r.values["expected_late_share"].unwrap_or(0.0))
        .collect();
    let low = others.iter().filter(|s| **s < 0.3).count();
    assert!(
        others.len() >= 20 && low as f64 >= 0.8 * others.len() as f64,
        "{low} of {} others low: {others:?}",
        others.len()
    );
}

/// The render cache's row hash: equal values hash equally across batches; any change of a
/// value, null included, changes it.
#[test]
fn row_content_hash_follows_every_value_of_the_row() {
    use arrow::array::{ArrayRef, Float64Array, StringArray};
    let batch = |supplier: Option<&str>, delay: Option<f64>| {
        RecordBatch::try_from_iter([
            (
                "supplier",
                Arc::new(StringArray::from(vec![Some("S-0"), supplier])) as ArrayRef,
            ),
            (
                "delay_days",
                Arc::new(Float64Array::from(vec![Some(0.0), delay])) as ArrayRef,
            ),
        ])
        .unwrap()
    };
    let a = batch(Some("S-1"), Some(2.5));
    let hash = |b: &RecordBatch, i: usize| RowRef::Batch(b, i).content_hash();
    assert_eq!(hash(&a, 1), hash(&batch(Some("S-1"), Some(2.5)), 1));
    assert_ne!(hash(&a, 0), hash(&a, 1));
    assert_ne!(hash(&a, 1), hash(&batch(Some("S-1"), Some(2.6)), 1));
    assert_ne!(hash(&a, 1), hash(&batch(Some("S-2"), Some(2.5)), 1));
    assert_ne!(hash(&a, 1), hash(&batch(Some("S-1"), None), 1));
    assert_ne!(hash(&a, 1), hash(&batch(None, Some(2.5)), 1));
    // Out of range: no row, no panic.
    assert_eq!(hash(&a, 9), hash(&a, 10));
}
