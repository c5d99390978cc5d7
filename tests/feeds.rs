//! Supplier feed definitions against their golden fixtures (tests/fixtures/feeds): exact
//! counts, exact rejected rows with reasons, exact canonical events, exact definition errors.

use std::path::PathBuf;

use chainwatch::feeds::validate::{self, RejectedRecord, ValidationReport};
use chainwatch::feeds::{self, Feed};
use chainwatch::ingest::decode::EventDecoder;
use serde_json::{json, Value};

/// Relative to the crate root (the test's working directory), so messages read as typed.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from("tests/fixtures/feeds").join(name)
}

fn load(name: &str) -> Feed {
    feeds::load_file(&fixture(name)).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{name}:\n{}", lines.join("\n"))
    })
}

fn report(def: &str, sample: &str) -> ValidationReport {
    validate::validate_file(&load(def), &fixture(sample)).expect("sample readable")
}

/// All events of a sample, parsed, in record order.
fn events(def: &str, sample: &str) -> Vec<Value> {
    let payload = std::fs::read(fixture(sample)).expect("sample readable");
    load(def)
        .map_message(&payload)
        .into_iter()
        .filter_map(|r| r.result.ok())
        .flatten()
        .map(|e| serde_json::from_slice(&e).expect("events are JSON"))
        .collect()
}

fn reject(
    row: usize,
    line: Option<u64>,
    reason: &str,
    field: Option<&str>,
    detail: &str,
) -> RejectedRecord {
    RejectedRecord {
        row,
        line,
        reason: reason.into(),
        field: field.map(Into::into),
        detail: detail.into(),
    }
}

/// Compares field by field, so a failure names the field.
fn assert_event(got: &Value, want: Value) {
    let (Some(got), Some(want)) = (got.as_object(), want.as_object()) else {
        panic!("not objects: {got} / {want}");
    };
    for (k, v) in want {
        assert_eq!(got.get(k), Some(v), "field {k} of {got:?}");
    }
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(extra.is_empty(), "unexpected fields {extra:?}");
}

fn decoder_accepts_all(evs: &[Value]) {
    let bytes: Vec<Vec<u8>> = evs.iter().map(|e| serde_json::to_vec(e).unwrap()).collect();
    let payloads: Vec<Option<&[u8]>> = bytes.iter().map(|b| Some(b.as_slice())).collect();
    let decoded = EventDecoder::new(1 << 20).decode(&payloads);
    assert!(decoded.rejects.is_empty(), "{:?}", decoded.rejects);
    assert_eq!(decoded.batch.map(|b| b.num_rows()), Some(evs.len()));
}

#[test]
fn tier2_orders_windows_1252_report() {
    let r = report("tier2-orders.yaml", "tier2-orders.csv");
    assert_eq!(
        (r.records, r.mapped, r.skipped, r.rejected),
        (10, 4, 2, 4),
        "{r}"
    );
    assert_eq!(r.events.get("po_line_created"), Some(&3));
    assert_eq!(r.events.get("goods_receipt"), Some(&1));
    assert_eq!(
        r.rejects,
        vec![
            reject(
                5,
                Some(6),
                "invalid_record",
                None,
                "13 columns, expected 14 (as in the header row)"
            ),
            reject(
                6,
                Some(7),
                "invalid_date",
                Some("promised_date"),
                "column \"Promised\" = \"31.02.2026\" matches none of %d.%m.%Y, %Y-%m-%d"
            ),
            reject(
                7,
                Some(8),
                "negative_quantity",
                Some("quantity"),
                "column \"Qty\" = \"-25\" is negative"
            ),
            reject(
                9,
                Some(10),
                "missing_field",
                Some("received_at"),
                "column \"Delivered\" = \"Date Not Captured\" (a sentinel)"
            ),
        ]
    );
    assert_eq!(r.first_event_time.as_deref(), Some("2026-03-09T06:30:00Z"));
    let price = r
        .coverage
        .iter()
        .find(|c| c.kind == "po_line_created" && c.field == "unit_price")
        .expect("unit_price coverage");
    assert_eq!(
        (price.source, price.default, price.const_, price.missing),
        (2, 1, 0, 0)
    );
    let site = r
        .coverage
        .iter()
        .find(|c| c.field == "site")
        .expect("site coverage");
    assert_eq!(site.const_, 3);
    let text = r.to_string();
    assert!(
        text.contains("row 6 (line 7): invalid_date: promised_date: column \"Promised\" = \"31.02.2026\" matches none of %d.%m.%Y, %Y-%m-%d"),
        "{text}"
    );
    let json = serde_json::to_value(&r).expect("serialisable");
    assert_eq!(json["rejected"], 4);
    assert_eq!(json["coverage"][0]["const"], 0);
}

#[test]
fn tier2_orders_exact_events() {
    let evs = events("tier2-orders.yaml", "tier2-orders.csv");
    assert_eq!(evs.len(), 4);
    // Decimal comma with thousands point, lb -> kg, windows-1252 text decoded, Berlin time.
    assert_event(
        &evs[0],
        json!({"event_id": "sup-t2-003/4500012345/10/09.03.2026 07:30", "kind": "po_line_created",
               "event_time": "2026-03-09T06:30:00Z", "source": "sup-t2-003-orders",
               "po": "4500012345", "line": 10, "supplier": "SUP-T2-003", "part": "P-1007",
               "site": "SUP-T1-004", "quantity": 567.217258685, "unit_price": 3.4,
               "order_date": "2026-03-02", "promised_date": "2026-03-30"}),
    );
    // "N/A" price -> default 0; "Date Not Captured" promised -> the next column; ISO order date.
    assert_event(
        &evs[1],
        json!({"event_id": "sup-t2-003/4500012345/20/09.03.2026 07:30", "kind": "po_line_created",
               "event_time": "2026-03-09T06:30:00Z", "source": "sup-t2-003-orders",
               "po": "4500012345", "line": 20, "supplier": "SUP-T2-003", "part": "P-1011",
               "site": "SUP-T1-004", "quantity": 362.873896, "unit_price": 0,
               "order_date": "2026-03-05", "promised_date": "2026-04-06"}),
    );
    // US two-digit-year date; German status "Offen" through the code table.
    assert_eq!(evs[2]["order_date"], "2026-03-09");
    assert_eq!(evs[2]["quantity"], 907.18474);
    // Delivered row -> goods_receipt, derived event id, date-only received_at at Berlin midnight.
    assert_event(
        &evs[3],
        json!({"event_id": "sup-t2-003-orders:fba6b236bfde1817", "kind": "goods_receipt",
               "event_time": "2026-03-09T06:30:00Z", "source": "sup-t2-003-orders",
               "po": "4500012299", "line": 10, "supplier": "SUP-T2-003",
               "quantity": 226.796185, "received_at": "2026-03-02T23:00:00Z"}),
    );
    decoder_accepts_all(&evs);
}

#[test]
fn tier2_orders_raw_text_and_lines_for_dead_letters() {
    let payload = std::fs::read(fixture("tier2-orders.csv")).unwrap();
    let records = load("tier2-orders.yaml").map_message(&payload);
    assert_eq!(records.len(), 10);
    assert_eq!(records[1].row, 2);
    assert_eq!(records[1].line, Some(3));
    assert_eq!(
        String::from_utf8(records[1].raw.clone()).unwrap(),
        "4500012345;20;GS-4471-B;P-1011;\"Flansch; DN 50, Ø 12 mm\";800;lb;N/A;2026-03-05;Date Not Captured;06.04.2026;Confirmed;;09.03.2026 07:30"
    );
    // The same message again gives the same events (derived ids are stable).
    assert_eq!(records, load("tier2-orders.yaml").map_message(&payload));
}

/// UTF-8 with a byte-order mark and bare-CR line ends (old Mac / some exporters), a quoted CR
/// inside a field: the BOM wins over the declared windows-1252 and lines stay right.
#[test]
fn tier2_orders_bom_and_bare_cr() {
    let r = report("tier2-orders.yaml", "tier2-orders-bom-cr.csv");
    assert_eq!(
        (r.records, r.mapped, r.skipped, r.rejected),
        (3, 2, 0, 1),
        "{r}"
    );
    assert_eq!(
        r.rejects,
        vec![reject(
            3,
            Some(5),
            "wrong_type",
            Some("quantity"),
            "column \"Qty\" = \"x\" is not a number (decimal comma)"
        )]
    );
    let evs = events("tier2-orders.yaml", "tier2-orders-bom-cr.csv");
    assert_eq!(
        evs[0]["po"], "4500012360",
        "the BOM is not part of the first column name"
    );
    assert_eq!(evs[0]["quantity"], 45.359237);
    assert_eq!(evs[1]["promised_date"], "2026-04-08");
    decoder_accepts_all(&evs);
}

#[test]
fn epcis_report() {
    let r = report("epcis-milestones.yaml", "epcis-milestones.json");
    assert_eq!(
        (r.records, r.mapped, r.skipped, r.rejected),
        (8, 5, 1, 2),
        "{r}"
    );
    assert_eq!(r.events.get("milestone"), Some(&5));
    assert_eq!(r.events.get("eta_update"), Some(&2));
    assert_eq!(
        r.rejects,
        vec![
            reject(5, None, "invalid_value", Some("status"), "path \"bizStep\" = \"urn:nbl:bizstep:gate_check\" is not in code table \"epcis_bizstep\""),
            reject(6, None, "missing_field", Some("event_time"), "path \"eventTime\" is absent"),
        ]
    );
    assert_eq!(r.first_event_time.as_deref(), Some("2026-03-10T00:00:00Z"));
    assert_eq!(r.last_event_time.as_deref(), Some("2026-04-09T05:45:00Z"));
    let reason = r
        .coverage
        .iter()
        .find(|c| c.field == "reason_code")
        .expect("coverage");
    assert_eq!((reason.source, reason.missing), (4, 1));
}

#[test]
fn epcis_exact_events() {
    let evs = events("epcis-milestones.yaml", "epcis-milestones.json");
    assert_eq!(evs.len(), 7);
    assert_event(
        &evs[0],
        json!({"event_id": "ni:///sha-256;8f1c0a52e1d7b9f4c0a1?ver=CBV2.0", "kind": "milestone",
               "event_time": "2026-03-10T00:00:00Z", "source": "sup-t2-005-epcis",
               "shipment": "SH-T2-0091", "supplier": "SUP-T2-005", "status": "departed",
               "location": "CNNGB", "reason_code": "in_transit"}),
    );
    assert_event(
        &evs[1],
        json!({"event_id": "ni:///sha-256;8f1c0a52e1d7b9f4c0a1?ver=CBV2.0/eta", "kind": "eta_update",
               "event_time": "2026-03-10T00:00:00Z", "source": "sup-t2-005-epcis",
               "shipment": "SH-T2-0091", "supplier": "SUP-T2-005", "eta": "2026-04-08T08:00:00Z"}),
    );
    // URN bizStep, location from readPoint when there is no bizLocation.
    assert_eq!(
        (evs[2]["status"].as_str(), evs[2]["location"].as_str()),
        (Some("departed"), Some("CNNGB"))
    );
    // Web-URI bizStep; eventTime without offset read in eventTimeZoneOffset (+08:00).
    assert_eq!(evs[3]["status"], "arrived");
    assert_eq!(evs[3]["event_time"], "2026-03-18T06:30:00Z");
    assert_event(
        &evs[5],
        json!({"event_id": "ni:///sha-256;71f0d4c8a6e2b3951d07?ver=CBV2.0", "kind": "milestone",
               "event_time": "2026-03-19T01:15:00Z", "source": "sup-t2-005-epcis",
               "shipment": "SH-T2-0091", "supplier": "SUP-T2-005", "status": "held", "location": "SGSIN"}),
    );
    assert_eq!(evs[6]["status"], "delivered");
    assert_eq!(evs[6]["location"], "DEBRE");
    decoder_accepts_all(&evs);
}

#[test]
fn bad_definitions_report_every_error_with_its_position() {
    let errors = |name: &str| -> Vec<String> {
        feeds::load_file(&fixture(name))
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let f = "tests/fixtures/feeds/bad-structure.yaml";
    let n = "feed \"Bad Name\"";
    let m2 = "mapping 2 (goods_receipt)";
    assert_eq!(
        errors("bad-structure.yaml"),
        vec![
            format!("{f}:1:7: {n}: feed name \"Bad Name\" must match [a-z0-9][a-z0-9._-]*"),
            format!("{f}:4:9: {n}: supplier.tier must be an integer from 1 to 9"),
            format!("{f}:6:1: {n}: unknown key \"colour\" (allowed: feed, supplier, topic, expect_every, timezone, sentinels, format, codes, mappings)"),
            format!("{f}:9:14: {n}: format.delimiter must be one ASCII character"),
            format!("{f}:10:13: {n}: unknown encoding \"klingon\" (a WHATWG label such as utf-8, windows-1252, iso-8859-1, shift_jis, gbk, utf-16le)"),
            format!("{f}:12:11: {n}: mapping 1: unknown kind \"po_line_deleted\" (kinds: po_line_created, po_line_changed, po_line_cancelled, supplier_confirmation, goods_receipt, inventory_position, stock_movement, shipment_created, milestone, eta_update, heartbeat)"),
            format!("{f}:15:5: {n}: {m2}: missing field supplier (required by goods_receipt)"),
            format!("{f}:15:5: {n}: {m2}: missing field quantity (required by goods_receipt)"),
            format!("{f}:15:5: {n}: {m2}: missing field received_at (required by goods_receipt)"),
            format!("{f}:16:7: {n}: {m2}: kind cannot be mapped: kind comes from the mapping's kind, source is the feed's name"),
            format!("{f}:18:33: {n}: {m2}: line: type date does not fit the field, which is an integer"),
            format!("{f}:19:7: {n}: {m2}: \"colour\" is not a field of goods_receipt (fields: event_id, event_time, po, line, supplier, quantity, received_at)"),
        ]
    );
    let f = "tests/fixtures/feeds/bad-values.yaml";
    let n = "feed \"bad-values\"";
    assert_eq!(
        errors("bad-values.yaml"),
        vec![
            format!("{f}:4:11: {n}: timezone: unknown time zone \"Europe/Atlantis\" (an IANA name such as Europe/Berlin, or an offset such as +08:00)"),
            format!("{f}:5:31: {n}: format.records: path \"data..items\" has an empty key"),
            format!("{f}:11:41: {n}: mapping 1 (milestone): event_time: format \"%d.%m.%Y %Q\" is not a strftime format chrono can use"),
            format!("{f}:12:38: {n}: mapping 1 (milestone): shipment: extract is not a valid regex: error: unclosed group"),
            format!("{f}:14:34: {n}: mapping 1 (milestone): status: code table gives \"vanished\", which is not a milestone status (departed, arrived, in_transit, held, delayed, delivered)"),
            format!("{f}:15:37: {n}: mapping 1 (milestone): location: no code table \"no_such_table\" (tables: status_map, x12_214, epcis_bizstep)"),
            format!("{f}:16:28: {n}: mapping 1 (milestone): event_id: template \"x/{{id\": unclosed placeholder {{id"),
            format!("{f}:23:36: {n}: mapping 2 (goods_receipt): quantity: cannot convert mass to length"),
            format!("{f}:24:42: {n}: mapping 2 (goods_receipt): received_at: timezone: unknown time zone \"+25:00\" (an IANA name such as Europe/Berlin, or an offset such as +08:00)"),
        ]
    );
}

/// A directory of good feeds loads; the fixtures directory itself holds bad ones and fails
/// with every file's errors, sorted by file.
#[test]
fn load_dir_good_and_bad() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tier2-orders.yaml", "epcis-milestones.yaml"] {
        std::fs::copy(fixture(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a feed").unwrap();
    let set = feeds::load_dir(dir.path()).expect("good feeds load");
    assert_eq!(set.len(), 2);
    let feed = set.by_topic("feeds.sup-t2-005.epcis").expect("by topic");
    assert_eq!(feed.name, "sup-t2-005-epcis");
    assert_eq!(feed.supplier.supplies[0].to, "SUP-T1-002");
    assert!(set.by_topic("feeds.unknown").is_none());
    let hashes = set.hashes();
    assert_eq!(
        feeds::load_dir(dir.path()).unwrap().hashes(),
        hashes,
        "stable hash"
    );

    let errors = feeds::load_dir(&fixture("")).unwrap_err();
    let files: Vec<String> = errors
        .iter()
        .map(|e| e.location.file.display().to_string())
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    assert!(files.iter().any(|f| f.ends_with("bad-structure.yaml")));
    assert!(files.iter().any(|f| f.ends_with("bad-values.yaml")));
    assert!(!files.iter().any(|f| f.ends_with("tier2-orders.yaml")));
}
