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
    shipped()
        .await
        .evaluate(&state.snapshot())
        .await
        .into_iter()
        .map(|r| r.expect("indicator runs"))
        .map(|r| (r.name, r.rows))
        .collect()
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
    let out = eval(&s).await;
    let rows = &out["supplier_delivery"];
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
    assert_eq!(s1.row["supplier"], json!("S1"));
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
