use super::*;
use crate::ingest::decode::EventDecoder;
use serde_json::json;

/// Decode JSON events the way ingest does, so tests exercise the real path.
pub(crate) fn batch_of(events: &[serde_json::Value]) -> RecordBatch {
    let bytes: Vec<Vec<u8>> = events.iter().map(|e| e.to_string().into_bytes()).collect();
    let payloads: Vec<Option<&[u8]>> = bytes.iter().map(|b| Some(b.as_slice())).collect();
    let d = EventDecoder::new(1 << 20).decode(&payloads);
    assert!(d.rejects.is_empty(), "{:?}", d.rejects);
    d.batch.expect("events")
}

const T0: i64 = 1_772_409_600_000; // 2026-03-02T00:00:00Z

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn created(id: &str, po: &str, line: i64, promised: &str, t: i64) -> serde_json::Value {
    json!({"event_id": id, "kind": "po_line_created", "event_time": iso(t), "source": "t",
        "po": po, "line": line, "supplier": "S1", "part": "P1", "site": "D1",
        "quantity": 100.0, "unit_price": 2.0, "order_date": "2026-03-01", "promised_date": promised})
}

fn receipt(id: &str, po: &str, line: i64, qty: f64, t: i64) -> serde_json::Value {
    json!({"event_id": id, "kind": "goods_receipt", "event_time": iso(t), "source": "t",
        "po": po, "line": line, "supplier": "S1", "quantity": qty, "received_at": iso(t)})
}

#[test]
fn redelivered_events_count_once() {
    let mut s = State::new(Retention::default());
    let b = batch_of(&[
        created("e1", "PO1", 1, "2026-03-10", T0),
        receipt("e2", "PO1", 1, 60.0, T0 + DAY_MS),
    ]);
    let first = s.apply(&b, T0 + DAY_MS);
    assert_eq!(first.duplicates, 0);
    let again = s.apply(&b, T0 + DAY_MS);
    assert_eq!(again.duplicates, 2);
    assert!(again.applied.is_empty());
    let line = &s.lines[&LineRef("PO1", 1)];
    assert_eq!(
        line.received_quantity, 60.0,
        "the partial receipt is counted once"
    );
}

#[test]
fn full_receipt_closes_the_line_into_a_delivery_and_the_window_ages_it_out() {
    let mut s = State::new(Retention {
        window_ms: 10 * DAY_MS,
        dedup_ms: DAY_MS,
    });
    s.apply(
        &batch_of(&[
            created("e1", "PO1", 1, "2026-03-10", T0),
            receipt("e2", "PO1", 1, 60.0, T0 + DAY_MS),
            receipt("e3", "PO1", 1, 40.0, T0 + 2 * DAY_MS),
        ]),
        T0 + 2 * DAY_MS,
    );
    assert_eq!(s.open_lines(), 0);
    assert_eq!(s.deliveries.len(), 1);
    assert_eq!(s.deliveries[0].received_at, T0 + 2 * DAY_MS);
    s.advance(T0 + 12 * DAY_MS + 1);
    assert_eq!(s.deliveries.len(), 0, "older than the window");
    assert!(s.seen.is_empty(), "dedup ids expire too");
}

#[test]
fn reschedule_moves_the_promise_and_is_recorded() {
    let mut s = State::new(Retention::default());
    s.apply(
        &batch_of(&[
            created("e1", "PO1", 1, "2026-03-10", T0),
            json!({"event_id": "e2", "kind": "supplier_confirmation", "event_time": iso(T0 + 1000),
                "source": "t", "po": "PO1", "line": 1, "supplier": "S1", "status": "rescheduled",
                "promised_date": "2026-03-15"}),
        ]),
        T0,
    );
    let l = &s.lines[&LineRef("PO1", 1)];
    assert_eq!(l.reschedule_count, 1);
    assert_eq!(l.promised_date - l.original_promised_date, 5);
    assert_eq!(s.reschedules.len(), 1);
}

#[test]
fn milestones_make_stops_and_delivery_ends_the_shipment() {
    let mut s = State::new(Retention::default());
    let sh = |id: &str, status: &str, loc: &str, t: i64| {
        json!({"event_id": id, "kind": "milestone", "event_time": iso(t), "source": "t",
            "shipment": "SH1", "supplier": "S1", "status": status, "location": loc})
    };
    s.apply(
        &batch_of(&[
            created("e1", "PO1", 1, "2026-03-10", T0),
            json!({"event_id": "e2", "kind": "shipment_created", "event_time": iso(T0), "source": "t",
                "shipment": "SH1", "supplier": "S1", "po_lines": [{"po": "PO1", "line": 1}],
                "origin": "CNSHA", "destination": "DEHAM", "carrier": "C", "mode": "ocean",
                "shipped_at": iso(T0), "eta": iso(T0 + 9 * DAY_MS)}),
            sh("e3", "arrived", "SGSIN", T0 + 3 * DAY_MS),
            sh("e4", "held", "SGSIN", T0 + 4 * DAY_MS),
        ]),
        T0 + 4 * DAY_MS,
    );
    assert_eq!(s.shipments["SH1"].held_since, Some(T0 + 4 * DAY_MS));
    let snap = s.snapshot();
    assert_eq!(snap.get("stops").unwrap().num_rows(), 1, "the open stop");
    assert_eq!(s.lines[&LineRef("PO1", 1)].shipment.as_deref(), Some("SH1"));
    s.apply(
        &batch_of(&[
            sh("e5", "departed", "SGSIN", T0 + 6 * DAY_MS),
            sh("e6", "delivered", "DEHAM", T0 + 10 * DAY_MS),
        ]),
        T0 + 10 * DAY_MS,
    );
    assert_eq!(s.stops.len(), 1);
    assert_eq!(s.stops[0].departed_at - s.stops[0].arrived_at, 3 * DAY_MS);
    assert_eq!(s.in_flight_shipments(), 0);
    assert_eq!(s.lines[&LineRef("PO1", 1)].shipment, None);
}

#[test]
fn inventory_positions_and_movements() {
    let mut s = State::new(Retention::default());
    let mv = |id: &str, m: &str, q: f64| {
        json!({"event_id": id, "kind": "stock_movement", "event_time": iso(T0), "source": "t",
            "site": "D1", "part": "P1", "movement": m, "quantity": q})
    };
    let stats = s.apply(
        &batch_of(&[
            mv("e0", "issue", 1.0),
            json!({"event_id": "e1", "kind": "inventory_position", "event_time": iso(T0), "source": "t",
                "site": "D1", "part": "P1", "on_hand": 100.0, "daily_demand": 10.0}),
            mv("e2", "issue", 30.0),
            mv("e3", "receipt", 5.0),
            mv("e4", "issue", 500.0),
        ]),
        T0,
    );
    assert_eq!(
        stats.orphans, 1,
        "a movement before any position is an orphan"
    );
    let p = &s.inventory[&("D1".to_string(), "P1".to_string())];
    assert_eq!(p.on_hand, 0.0, "stock never goes below zero");
}

/// One table of a snapshot.
fn table(snap: &Tables, name: &str) -> RecordBatch {
    snap.get(name).cloned().expect("a state table")
}

/// A snapshot builds on the last one's `deliveries` table (the rows that left the window
/// sliced off, the new ones appended): after any mix of completions and window moves it equals
/// the table built from scratch (a clone of the state starts without the last table).
#[test]
fn the_deliveries_table_built_on_the_last_snapshot_equals_one_built_from_scratch() {
    let mut s = State::new(Retention {
        window_ms: 10 * DAY_MS,
        dedup_ms: DAY_MS,
    });
    let deliveries = |snap: Tables| table(&snap, "deliveries");
    // (rows in the window, rows that joined it) after each day.
    let mut rows = Vec::new();
    for day in 0..40i64 {
        // 0 to 3 lines complete a day (none on some days), and the window moves on.
        let t = T0 + day * DAY_MS;
        let joined = day * 7 % 4;
        let mut events = Vec::new();
        for k in 0..joined {
            let po = format!("PO{day}-{k}");
            events.push(created(&format!("c{day}-{k}"), &po, 1, "2026-03-10", t));
            events.push(receipt(&format!("r{day}-{k}"), &po, 1, 100.0, t + 1));
        }
        if !events.is_empty() {
            s.apply(&batch_of(&events), t + 1);
        }
        s.advance(t + 2);
        let scratch = deliveries(s.clone().snapshot());
        assert_eq!(deliveries(s.snapshot()), scratch, "day {day}");
        assert_eq!(deliveries(s.snapshot()), scratch, "day {day}, nothing new");
        rows.push((scratch.num_rows(), joined));
    }
    // The window filled, then rows left it on days when none joined, and on days when some did.
    assert!(rows.iter().map(|r| r.0).max() >= Some(14), "{rows:?}");
    let shrank = |joins: bool| {
        rows.windows(2)
            .any(|w| w[1].0 < w[0].0 && (w[1].1 > 0) == joins)
    };
    assert!(shrank(false) && shrank(true), "{rows:?}");
}

/// A snapshot patches the last one's `po_lines` table (the rows changed since built again,
/// the others copied): through a month of the simulated network (lines created, changed,
/// confirmed, rescheduled, cancelled, shipped, delivered and received, removals moving the
/// last line into the gap) it equals the table built from scratch after every step.
#[test]
fn the_po_lines_table_patched_from_the_last_snapshot_equals_one_built_from_scratch() {
    use crate::sim::{SimConfig, Simulator};
    let cfg = SimConfig::default();
    let mut sim = Simulator::new(cfg.clone());
    let decoder = EventDecoder::new(1 << 20);
    let mut s = State::new(Retention::default());
    let po_lines = |snap: Tables| table(&snap, "po_lines");
    let mut kinds = std::collections::BTreeSet::new();
    let mut shrank = 0;
    let mut last_rows = 0;
    let steps = 30 * 4;
    for step in 1..=steps {
        let until = cfg.start + chrono::Duration::hours(6 * step);
        let events = sim.run_until(until);
        for e in &events {
            let v: serde_json::Value = serde_json::from_slice(&e.payload).expect("json");
            kinds.insert(v["kind"].as_str().unwrap_or_default().to_string());
        }
        let payloads: Vec<Option<&[u8]>> = events.iter().map(|e| Some(&e.payload[..])).collect();
        let decoded = decoder.decode(&payloads);
        assert!(decoded.rejects.is_empty(), "{:?}", decoded.rejects);
        if let Some(b) = decoded.batch {
            s.apply(&b, until.timestamp_millis());
        }
        let scratch = po_lines(s.clone().snapshot());
        assert_eq!(po_lines(s.snapshot()), scratch, "step {step}");
        shrank += usize::from(scratch.num_rows() < last_rows);
        last_rows = scratch.num_rows();
    }
    for kind in [
        "po_line_created",
        "po_line_cancelled",
        "supplier_confirmation",
        "shipment_created",
        "goods_receipt",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    assert!(shrank > 0 && last_rows > 100, "{shrank} {last_rows}");
    // The first snapshot builds the table whole, every later one patches it.
    assert_eq!(s.lines_table.patched(), steps as u64 - 1);
}

#[test]
fn snapshot_tables_have_the_declared_schemas() {
    let s = State::new(Retention::default());
    let snap = s.snapshot();
    for ((name, b), schema) in snap.tables.iter().zip(tables::schemas()) {
        assert_eq!(b.schema(), *schema, "{name}");
    }
}

#[test]
fn a_line_and_a_seen_id_stay_small() {
    // A million open lines is a normal size: each byte here is a megabyte there.
    assert!(std::mem::size_of::<PurchaseLine>() <= 128);
    assert_eq!(std::mem::size_of::<(IdHash, i64)>(), 24);
    assert_eq!(std::mem::size_of::<OptTime>(), 8);
}

#[test]
fn a_borrowed_line_key_finds_the_owned_one() {
    use std::hash::BuildHasher;
    let build = std::hash::RandomState::new();
    let owned: LineKey = ("PO-7".into(), 3);
    assert_eq!(
        build.hash_one(&owned),
        build.hash_one(LineRef("PO-7", 3)),
        "the same hash, or lookups miss"
    );
    let mut m: IndexMap<LineKey, u8> = IndexMap::new();
    m.insert(owned, 1);
    assert_eq!(m.get(&LineRef("PO-7", 3)), Some(&1));
    assert_eq!(m.get(&LineRef("PO-7", 4)), None);
    assert_eq!(m.get(&LineRef("PO-70", 3)), None);
}

/// The layout a line and a seen id had before they were packed: checkpoints written then must
/// decode now (and the other way round), byte for byte.
#[test]
fn packed_fields_keep_the_checkpoint_encoding() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Before {
        reschedule_count: i64,
        shipment: Option<String>,
        delivered_at: Option<i64>,
        seen: HashMap<u128, i64>,
        awaiting_line: HashMap<(String, i64), String>,
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct After {
        reschedule_count: i32,
        shipment: Option<Arc<str>>,
        delivered_at: OptTime,
        seen: HashMap<IdHash, i64, BuildHasherDefault<PreHashed>>,
        awaiting_line: IndexMap<LineKey, Arc<str>>,
    }
    let id = event_id_hash("evt-1");
    for (count, shipment, delivered) in [
        (0, None, None),
        (-3, Some("SH1"), Some(T0)),
        (7, None, Some(-1)),
    ] {
        let before = Before {
            reschedule_count: count,
            shipment: shipment.map(str::to_string),
            delivered_at: delivered,
            seen: HashMap::from([(u128::from(id), T0)]),
            awaiting_line: HashMap::from([(("PO1".to_string(), 2), "SH9".to_string())]),
        };
        let after = After {
            reschedule_count: count as i32,
            shipment: shipment.map(Arc::from),
            delivered_at: delivered.map_or(OptTime::NONE, OptTime::some),
            seen: HashMap::from_iter([(id, T0)]),
            awaiting_line: IndexMap::from([(("PO1".into(), 2), Arc::from("SH9"))]),
        };
        let old_bytes = postcard::to_allocvec(&before).unwrap();
        assert_eq!(postcard::to_allocvec(&after).unwrap(), old_bytes);
        assert_eq!(postcard::from_bytes::<After>(&old_bytes).unwrap(), after);
        assert_eq!(after.delivered_at.get(), delivered);
    }
}

#[test]
fn a_shipments_lines_share_its_id_also_after_a_restore() {
    let mut s = State::new(Retention::default());
    s.apply(
        &batch_of(&[
            created("e1", "PO1", 1, "2026-03-10", T0),
            created("e2", "PO1", 2, "2026-03-10", T0),
            json!({"event_id": "e3", "kind": "shipment_created", "event_time": iso(T0), "source": "t",
                "shipment": "SH1", "supplier": "S1",
                "po_lines": [{"po": "PO1", "line": 1}, {"po": "PO1", "line": 2}, {"po": "PO1", "line": 3}],
                "origin": "CNSHA", "destination": "DEHAM", "carrier": "C", "mode": "ocean",
                "shipped_at": iso(T0), "eta": iso(T0 + 9 * DAY_MS)}),
        ]),
        T0,
    );
    let shared = |s: &State| {
        let one = s.lines[&LineRef("PO1", 1)].shipment.clone().unwrap();
        let two = s.lines[&LineRef("PO1", 2)].shipment.clone().unwrap();
        let waiting = s.awaiting_line[&LineRef("PO1", 3)].clone();
        assert_eq!(&*one, "SH1");
        Arc::ptr_eq(&one, &two) && Arc::ptr_eq(&one, &waiting)
    };
    assert!(shared(&s));
    let mut restored: State = postcard::from_bytes(&postcard::to_allocvec(&s).unwrap()).unwrap();
    assert!(!shared(&restored), "decoding gives each its own copy");
    restored.share_names();
    assert!(shared(&restored));
    // The line that arrives later takes the shipment over.
    restored.apply(&batch_of(&[created("e4", "PO1", 3, "2026-03-10", T0)]), T0);
    assert_eq!(
        restored.lines[&LineRef("PO1", 3)].shipment.as_deref(),
        Some("SH1")
    );
    assert!(restored.awaiting_line.is_empty());
}
