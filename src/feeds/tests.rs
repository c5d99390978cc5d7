//! Unit tests of loading and mapping small inline definitions, and garbage that must not panic.

use std::path::Path;

use super::*;
use crate::ingest::decode::EventDecoder;

fn feed(yaml: &str) -> Feed {
    load::load_bytes(Path::new("f.yaml"), yaml.as_bytes()).unwrap_or_else(|e| {
        let lines: Vec<String> = e.iter().map(ToString::to_string).collect();
        panic!("{}", lines.join("\n"))
    })
}

fn errors(yaml: &str) -> Vec<String> {
    match load::load_bytes(Path::new("f.yaml"), yaml.as_bytes()) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// An X12 214-like CSV without header row: AT7 codes, po_line_refs, every shipment kind.
const LOGISTICS: &str = r#"
feed: carrier-214
supplier: {id: SUP-T1-009, tier: 1}
topic: feeds.carrier-214
timezone: "-05:00"
format: {type: csv, header: false, columns: [rec, shipment, code, reason, when, loc, eta, lines, mode]}
mappings:
  - kind: shipment_created
    when: {field: rec, in: [ASN]}
    fields:
      event_time: {field: when, formats: ["%Y%m%d%H%M"]}
      shipment: {field: shipment}
      supplier: {const: SUP-T1-009}
      po_lines: {field: lines, separator: "|"}
      origin: {const: USCHI}
      destination: {field: loc}
      carrier: {const: ACME}
      mode: {field: mode, codes: {M: road, O: ocean}}
      shipped_at: {field: when, formats: ["%Y%m%d%H%M"]}
      eta: {field: eta, formats: ["%Y%m%d%H%M"]}
  - kind: milestone
    when: {field: rec, in: [AT7]}
    fields:
      event_time: {field: when, formats: ["%Y%m%d%H%M"]}
      shipment: {field: shipment}
      supplier: {const: SUP-T1-009}
      status: {field: code, codes: x12_214}
      location: {field: loc}
      reason_code: {field: reason, required: true}
"#;

#[test]
fn x12_like_csv_without_header_maps_every_kind_and_the_decoder_accepts_it() {
    let f = feed(LOGISTICS);
    let msg = "ASN,SH-1,,,202603020815,DEHAM,202603200000,PO-1/1| PO-2/3,O\n\
               AT7,SH-1,X6,NS,202603031000,USCHI,,,\n\
               AT7,SH-1,SD,AO,202603041000,USCHI,,,\n\
               AT7,SH-1,ZZ,NS,202603041000,USCHI,,,\n\
               AT7,SH-1,AF,,202603041000,USCHI,,,\n\
               990,SH-1,,,,,,,\n";
    let out = f.map_message(msg.as_bytes());
    assert_eq!(out.len(), 6);
    let ok: Vec<&Vec<Vec<u8>>> = out.iter().filter_map(|r| r.result.as_ref().ok()).collect();
    assert_eq!(
        ok.iter().map(|e| e.len()).collect::<Vec<_>>(),
        vec![1, 1, 1, 0]
    );
    let first: serde_json::Value = serde_json::from_slice(&ok[0][0]).unwrap();
    assert_eq!(
        first["po_lines"],
        serde_json::json!([{"po": "PO-1", "line": 1}, {"po": "PO-2", "line": 3}])
    );
    assert_eq!(first["mode"], "ocean");
    assert_eq!(first["event_time"], "2026-03-02T13:15:00Z");
    assert_eq!(first["line"], serde_json::Value::Null);
    let delayed: serde_json::Value = serde_json::from_slice(&ok[2][0]).unwrap();
    assert_eq!(
        (delayed["status"].as_str(), delayed["reason_code"].as_str()),
        (Some("delayed"), Some("AO"))
    );
    let e = out[3].result.as_ref().unwrap_err();
    assert_eq!(e.reason, RejectReason::InvalidValue);
    assert_eq!(
        e.detail,
        "column \"code\" = \"ZZ\" is not in code table \"x12_214\""
    );
    let e = out[4].result.as_ref().unwrap_err();
    assert_eq!(
        (e.reason, e.field.as_deref()),
        (RejectReason::MissingField, Some("reason_code"))
    );
    assert_eq!(e.detail, "column \"reason\" is empty");

    let events: Vec<&[u8]> = ok
        .iter()
        .flat_map(|e| e.iter().map(Vec::as_slice))
        .collect();
    let payloads: Vec<Option<&[u8]>> = events.iter().map(|e| Some(*e)).collect();
    let decoded = EventDecoder::new(1 << 20).decode(&payloads);
    assert!(decoded.rejects.is_empty(), "{:?}", decoded.rejects);
    assert_eq!(decoded.batch.map(|b| b.num_rows()), Some(3));
}

#[test]
fn rescheduled_confirmation_needs_a_promised_date() {
    let f = feed(
        r#"
feed: conf
supplier: {id: S, tier: 1}
topic: t
format: {type: json}
mappings:
  - kind: supplier_confirmation
    fields:
      event_time: {field: at}
      po: {field: po}
      line: {field: line}
      supplier: {const: S}
      status: {field: st, codes: {R: rescheduled, A: accepted}}
      promised_date: {field: new_date}
      quantity: {field: qty, type: integer}
"#,
    );
    let msg = br#"[{"at":"2026-03-02T08:00:00Z","po":"P","line":"1","st":"R"},
                  {"at":"2026-03-02T08:00:00Z","po":"P","line":2,"st":"a","qty":"1.5"},
                  {"at":"2026-03-02T08:00:00Z","po":"P","line":2,"st":"A","qty":7},
                  {"at":"2026-03-02T08:00:00Z","po":"P","line":2.5,"st":"A"}, 5]"#;
    let out = f.map_message(msg);
    let reasons: Vec<Option<RejectReason>> = out
        .iter()
        .map(|r| r.result.as_ref().err().map(|e| e.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            Some(RejectReason::MissingField),
            Some(RejectReason::WrongType),
            None,
            Some(RejectReason::WrongType),
            Some(RejectReason::InvalidRecord)
        ]
    );
    let ev: serde_json::Value =
        serde_json::from_slice(&out[2].result.as_ref().unwrap()[0]).unwrap();
    assert_eq!(ev["quantity"], 7);
    assert!(
        ev.get("promised_date").is_none(),
        "optional and missing: left out"
    );
    assert_eq!(out[4].raw, b"5");
}

#[test]
fn whole_message_failures_are_one_row_zero_reject() {
    let f = feed(LOGISTICS);
    let out = f.map_message(b"");
    assert_eq!(
        out.len(),
        0,
        "header: false: an empty message has no records"
    );
    let json = feed("feed: j\nsupplier: {id: S, tier: 1}\ntopic: t\nformat: {type: json}\nmappings:\n  - kind: eta_update\n    fields:\n      event_time: {field: t}\n      shipment: {field: s}\n      supplier: {field: x}\n      eta: {field: e}\n");
    let out = json.map_message(b"{\"truncated\": ");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].row, 0);
    assert_eq!(
        out[0].result.as_ref().unwrap_err().reason,
        RejectReason::InvalidJson
    );
}

#[test]
fn definition_errors_need_positions_and_every_one_is_reported() {
    assert_eq!(
        errors("feed: x\n"),
        vec![
            "f.yaml:1:1: feed \"x\": missing field supplier",
            "f.yaml:1:1: feed \"x\": missing field topic",
            "f.yaml:1:1: feed \"x\": missing field format",
            "f.yaml:1:1: feed \"x\": missing field mappings",
        ]
    );
    assert_eq!(
        errors("- a\n"),
        vec!["f.yaml:1:1: a feed definition must be a mapping, got a sequence"]
    );
    assert_eq!(errors(""), vec!["f.yaml:1:1: empty feed definition"]);
    let base = "feed: x\nsupplier: {id: S, tier: 1}\ntopic: t\nformat: {type: csv, header: false, columns: [a, b]}\nmappings:\n  - kind: eta_update\n    fields:\n";
    let errs = errors(&format!(
        "{base}      event_time: {{field: a, formats: [\"%d.%m.\"]}}\n      shipment: {{template: \"{{c}}/x\"}}\n      supplier: {{const: S, default: T}}\n      eta: {{field: b, required: false, decimal: \",\"}}\n      reason_code: {{field: a, unit: {{from: lb, to: furlong}}}}\n"
    ));
    assert_eq!(
        errs,
        vec![
            "f.yaml:8:40: feed \"x\": mapping 1 (eta_update): event_time: format \"%d.%m.\" does not hold a full date, or its time is incomplete",
            "f.yaml:9:28: feed \"x\": mapping 1 (eta_update): shipment: template: no column \"c\" in format.columns",
            "f.yaml:10:37: feed \"x\": mapping 1 (eta_update): supplier: default cannot be used with const",
            "f.yaml:11:33: feed \"x\": mapping 1 (eta_update): eta: eta is required by eta_update; required: false is not allowed",
            "f.yaml:11:49: feed \"x\": mapping 1 (eta_update): eta: decimal is only for type number or integer",
            "f.yaml:12:37: feed \"x\": mapping 1 (eta_update): reason_code: unit is only for type number",
            "f.yaml:12:52: feed \"x\": mapping 1 (eta_update): reason_code: unknown unit \"furlong\" (units: kg g t lb oz m cm mm km ft in l ml m3 gal each pcs dozen pair hundred thousand)",
        ]
    );
}

#[test]
fn load_dir_rejects_duplicate_names_and_topics() {
    let dir = tempfile::tempdir().unwrap();
    let def = |name: &str, topic: &str| {
        format!("feed: {name}\nsupplier: {{id: S, tier: 1}}\ntopic: {topic}\nformat: {{type: json}}\nmappings:\n  - kind: eta_update\n    fields:\n      event_time: {{field: t}}\n      shipment: {{field: s}}\n      supplier: {{const: S}}\n      eta: {{field: e}}\n")
    };
    std::fs::write(dir.path().join("a.yaml"), def("a", "t1")).unwrap();
    std::fs::write(dir.path().join("b.yml"), def("a", "t2")).unwrap();
    std::fs::write(dir.path().join("c.yaml"), def("c", "t1")).unwrap();
    let errs: Vec<String> = load_dir(dir.path())
        .unwrap_err()
        .iter()
        .map(|e| {
            let s = e.to_string();
            s.replace(&dir.path().display().to_string(), "D")
        })
        .collect();
    assert_eq!(
        errs,
        vec![
            "D/b.yml:1:7: feed \"a\": duplicate feed name, also defined at D/a.yaml:1:7",
            "D/c.yaml:3:8: feed \"c\": topic \"t1\" is already the topic of feed \"a\" (D/a.yaml:3:8)",
        ]
    );
    std::fs::remove_file(dir.path().join("b.yml")).unwrap();
    std::fs::write(dir.path().join("c.yaml"), def("c", "t3")).unwrap();
    let set = load_dir(dir.path()).unwrap();
    assert_eq!(set.topics(), vec!["t1", "t3"]);
    let before = set.hashes();
    std::fs::write(dir.path().join("c.yaml"), def("c", "t4")).unwrap();
    let after = load_dir(dir.path()).unwrap().hashes();
    assert_eq!(before["a"], after["a"]);
    assert_ne!(before["c"], after["c"]);
}

/// Random bytes, truncations and flipped bytes of the fixtures never panic, and every record
/// is accounted for with a row number in order.
#[test]
fn garbage_never_panics() {
    use rand::{Rng, SeedableRng};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feeds");
    let cases = [
        ("tier2-orders.yaml", "tier2-orders.csv"),
        ("tier2-orders.yaml", "tier2-orders-bom-cr.csv"),
        ("epcis-milestones.yaml", "epcis-milestones.json"),
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for (def, sample) in cases {
        let f = load_file(&root.join(def)).expect("fixture loads");
        let good = std::fs::read(root.join(sample)).expect("fixture");
        for _ in 0..300 {
            let msg: Vec<u8> = match rng.random_range(0..3) {
                0 => (0..rng.random_range(0..200))
                    .map(|_| rng.random())
                    .collect(),
                1 => good[..rng.random_range(0..good.len())].to_vec(),
                _ => {
                    let mut b = good.clone();
                    for _ in 0..rng.random_range(1..8) {
                        let i = rng.random_range(0..b.len());
                        b[i] = rng.random();
                    }
                    b
                }
            };
            let out = f.map_message(&msg);
            let rows: Vec<usize> = out.iter().map(|r| r.row).collect();
            if rows != [0] {
                assert_eq!(rows, (1..=rows.len()).collect::<Vec<_>>());
            }
            let _ = validate::validate(&f, &msg);
        }
    }
}
