//! Property tests of the decoder: whatever bytes a micro-batch holds, decoding never panics,
//! every message ends up exactly once, either as a row or as a reject with a reason, and the
//! fast path changes nothing: the outcome equals arrow-json's alone.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::events::event_schema;
use crate::ingest::decode::EventDecoder;

/// Decode `payloads`; every message index must appear exactly once among the rows and the
/// rejects, and every reject must say why. Returns the number of rows. Also used by the feed
/// mapping's property tests.
pub(crate) fn accounted(payloads: &[Option<Vec<u8>>]) -> Result<usize, TestCaseError> {
    let slices: Vec<Option<&[u8]>> = payloads.iter().map(|p| p.as_deref()).collect();
    let d = EventDecoder::new(4096).decode(&slices);
    let rows = d.batch.as_ref().map_or(0, |b| b.num_rows());
    prop_assert_eq!(rows, d.rows.len());
    let mut seen = vec![0u8; payloads.len()];
    for i in d
        .rows
        .iter()
        .copied()
        .chain(d.rejects.iter().map(|r| r.index))
    {
        prop_assert!(i < seen.len());
        seen[i] += 1;
    }
    prop_assert!(seen.iter().all(|n| *n == 1), "{seen:?}");
    for r in &d.rejects {
        prop_assert!(!r.detail.is_empty());
    }
    Ok(rows)
}

/// The decoder with its fast path and arrow-json alone give the same rows and rejects.
fn agrees(payloads: &[Option<Vec<u8>>]) -> Result<(), TestCaseError> {
    let slices: Vec<Option<&[u8]>> = payloads.iter().map(|p| p.as_deref()).collect();
    let decoder = EventDecoder::new(4096);
    let (fast, reference) = (
        decoder.decode(&slices),
        decoder.decode_with_arrow_json(&slices),
    );
    prop_assert_eq!(&fast.rows, &reference.rows);
    prop_assert_eq!(&fast.batch, &reference.batch);
    let sorted = |mut r: Vec<crate::ingest::decode::Reject>| {
        r.sort_by_key(|r| r.index);
        r
    };
    prop_assert_eq!(sorted(fast.rejects), sorted(reference.rejects));
    Ok(())
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        Just(json!("2026-02-30")),
        Just(json!("9999-12-31T23:59:59Z")),
        Just(json!("-1")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const VALID: &str = r#"{"event_id":"e1","kind":"po_line_created","event_time":"2026-03-02T08:15:00Z","source":"erp","po":"PO-1","line":1,"supplier":"S1","part":"P1","site":"D1","quantity":500,"unit_price":12.5,"order_date":"2026-03-02","promised_date":"2026-03-30"}"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        payloads in proptest::collection::vec(
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..600)), 0..12)
    ) {
        accounted(&payloads)?;
        agrees(&payloads)?;
    }

    /// A valid event with fields replaced by values of any type, removed, or added (known
    /// field names, so the typed paths are hit rather than only "unknown field").
    #[test]
    fn valid_events_with_any_field_changed_are_kept_or_rejected(
        changes in proptest::collection::vec((0usize..40, any_json(), any::<bool>()), 1..6),
        valid_too in any::<bool>(),
    ) {
        let names: Vec<String> = event_schema().fields().iter().map(|f| f.name().clone()).collect();
        let mut obj: Map<String, Value> = serde_json::from_str(VALID).expect("valid");
        for (field, value, remove) in changes {
            let name = &names[field % names.len()];
            if remove {
                obj.remove(name);
            } else {
                obj.insert(name.clone(), value);
            }
        }
        let mut payloads = vec![Some(Value::Object(obj).to_string().into_bytes())];
        if valid_too {
            payloads.push(Some(VALID.as_bytes().to_vec()));
        }
        let rows = accounted(&payloads)?;
        agrees(&payloads)?;
        if valid_too {
            prop_assert!(rows >= 1, "a bad neighbour does not take the valid event down");
        }
    }

    /// Valid events written the ways JSON allows and producers do: whitespace, escapes, keys
    /// in any order, numbers as strings, integers as floats, timestamps with offsets or as
    /// numbers, duplicate keys; mixed in one micro-batch with valid events.
    #[test]
    fn every_way_of_writing_an_event_decodes_as_arrow_json_does(
        edits in proptest::collection::vec((0usize..12, any::<u8>()), 0..6),
        valid_before in any::<bool>(),
    ) {
        let mut text = VALID.to_string();
        for (edit, n) in edits {
            let n = usize::from(n);
            text = match edit {
                0 => text.replacen(',', ", \n", 1 + n % 3),
                1 => text.replace("\"e1\"", "\"e\\u0031\""),
                2 => text.replace("\"line\":1", &format!("\"line\":\"{}\"", n)),
                3 => text.replace("\"quantity\":500", &format!("\"quantity\":{n}.{n}e{}", n % 5)),
                4 => text.replace("08:15:00Z", &format!("08:15:00+0{}:00", n % 10)),
                5 => text.replace("\"2026-03-02T08:15:00Z\"", &format!("{}", 1_772_439_300_000i64 + n as i64)),
                6 => text.replace("\"source\":\"erp\"", "\"source\":\"erp\",\"source\":\"other\""),
                7 => text.replace("\"unit_price\":12.5", &format!("\"unit_price\":\"{n}.5\"")),
                8 => text.replace("\"line\":1", "\"line\":1.0"),
                9 => text.replace("2026-03-30", &format!("2026-03-{:02}", n % 40)),
                10 => text.replacen('{', &format!("{{\"x{n}\":[{{\"y\":null}}],"), 1),
                _ => text.replace("\"S1\"", &format!("\"S{}\\\"\"", n)),
            };
        }
        let mut payloads = vec![Some(text.into_bytes())];
        if valid_before {
            payloads.insert(0, Some(VALID.replace("\"e1\"", "\"e0\"").into_bytes()));
        }
        accounted(&payloads)?;
        agrees(&payloads)?;
    }

    /// Numbers: serde_json's and arrow-json's float parsers must agree to the bit.
    #[test]
    fn every_number_decodes_to_the_same_float(
        f in any::<f64>(),
        digits in proptest::collection::vec(0u8..10, 1..25),
        exp in -330i32..330,
    ) {
        let long: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
        let payloads: Vec<Option<Vec<u8>>> = [format!("{f:e}"), format!("{f}"), format!("0.{long}e{exp}"), format!("-{long}"), "-0".into(), long]
            .iter()
            .map(|n| Some(VALID.replace("\"quantity\":500", &format!("\"quantity\":{n}")).into_bytes()))
            .collect();
        agrees(&payloads)?;
    }
}

#[test]
fn deeply_nested_json_is_rejected_not_a_stack_overflow() {
    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let with_deep_field = format!("{},\"x\":{deep}}}", &VALID[..VALID.len() - 1]);
    // Brackets inside strings are text, not nesting.
    let brackets_in_text = VALID.replace(
        "\"source\":\"erp\"",
        &format!("\"source\":\"{}\"", "[{".repeat(50)),
    );
    let payloads = [
        Some(deep.into_bytes()),
        Some(with_deep_field.into_bytes()),
        Some(VALID.as_bytes().to_vec()),
        Some(brackets_in_text.replace("\"e1\"", "\"e2\"").into_bytes()),
    ];
    let slices: Vec<Option<&[u8]>> = payloads.iter().map(|p| p.as_deref()).collect();
    let d = EventDecoder::new(1 << 20).decode(&slices);
    assert_eq!(d.rows, [2, 3], "{:?}", d.rejects);
    assert_eq!(d.rejects.len(), 2);
    assert!(d
        .rejects
        .iter()
        .all(|r| r.detail.contains("nested deeper than")));
}
