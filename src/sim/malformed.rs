//! Malformed records, for exercising the ingest dead-letter path.
//!
//! In: a well-formed event's JSON bytes and the kind of damage to do. Out: the bytes of a record
//! that `docs/events.md` says must be rejected, with exactly one thing wrong, so the expected
//! dead-letter reason is known ([`Malformation::reason`]).

use serde_json::{json, Map, Value};

/// One kind of damage; with `malformed_every = Some(n)`, the n-th, 2n-th, ... event is replaced
/// by a record with the next kind of damage in [`Malformation::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformation {
    /// Not a JSON object: the encoded event cut in half.
    BrokenJson,
    /// A quantity (`quantity`, `on_hand`) below zero.
    NegativeQuantity,
    /// A `kind` no decoder knows.
    UnknownKind,
    /// A required field of the kind removed.
    MissingField,
    /// A date or timestamp set to the impossible day 2026-02-30.
    ImpossibleDate,
    /// A field of the wrong JSON type, e.g. `"quantity":"abc"`.
    WrongType,
}

/// Date written by [`Malformation::ImpossibleDate`].
pub const IMPOSSIBLE_DATE: &str = "2026-02-30";
/// Kind written by [`Malformation::UnknownKind`].
pub const UNKNOWN_KIND: &str = "carrier_invoice";

impl Malformation {
    /// Every variant, in the order they are cycled through.
    pub const ALL: [Malformation; 6] = [
        Malformation::BrokenJson,
        Malformation::NegativeQuantity,
        Malformation::UnknownKind,
        Malformation::MissingField,
        Malformation::ImpossibleDate,
        Malformation::WrongType,
    ];

    /// The damage done to the event with 1-based sequence number `seq`, if any.
    pub fn for_event(seq: u64, every: Option<u64>) -> Option<Malformation> {
        let n = every.filter(|&n| n > 0)?;
        if seq == 0 || seq % n != 0 {
            return None;
        }
        let round = (seq / n - 1) % Self::ALL.len() as u64;
        Some(Self::ALL[round as usize])
    }

    /// The dead-letter reason code chainwatch should give such a record.
    pub fn reason(self) -> &'static str {
        match self {
            Malformation::BrokenJson => "invalid_json",
            Malformation::NegativeQuantity => "negative_quantity",
            Malformation::UnknownKind => "unknown_kind",
            Malformation::MissingField => "missing_field",
            Malformation::ImpossibleDate => "invalid_date",
            Malformation::WrongType => "wrong_type",
        }
    }

    /// Damages one well-formed event (`good` is its JSON object).
    pub(super) fn apply(self, good: &[u8]) -> Vec<u8> {
        if self == Malformation::BrokenJson {
            return good[..good.len() / 2].to_vec();
        }
        let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(good) else {
            return good[..good.len() / 2].to_vec();
        };
        match self {
            Malformation::BrokenJson => {}
            Malformation::NegativeQuantity => negative_quantity(&mut obj),
            Malformation::UnknownKind => {
                obj.insert("kind".into(), json!(UNKNOWN_KIND));
            }
            Malformation::MissingField => {
                let field = required_field(str_field(&obj, "kind"));
                obj.remove(field);
            }
            Malformation::ImpossibleDate => impossible_date(&mut obj),
            Malformation::WrongType => wrong_type(&mut obj),
        }
        serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> &'a str {
    obj.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// A required, kind-specific field to drop for [`Malformation::MissingField`].
fn required_field(kind: &str) -> &'static str {
    match kind {
        "po_line_created" | "po_line_changed" => "promised_date",
        "po_line_cancelled" => "supplier",
        "supplier_confirmation" => "status",
        "goods_receipt" => "quantity",
        "inventory_position" => "on_hand",
        "stock_movement" => "movement",
        "shipment_created" => "destination",
        "milestone" => "location",
        "eta_update" => "eta",
        _ => "event_id",
    }
}

fn negative_quantity(obj: &mut Map<String, Value>) {
    for field in ["quantity", "on_hand"] {
        if let Some(q) = obj.get(field).and_then(Value::as_f64) {
            obj.insert(field.into(), json!(-(q.abs().max(1.0))));
            return;
        }
    }
    // Kinds without a quantity become a goods receipt of a negative amount, keeping the
    // event's id, time, source and supplier.
    let po_line = obj
        .get("po_lines")
        .and_then(|l| l.get(0))
        .cloned()
        .unwrap_or_else(|| json!({"po": "PO-000000", "line": 1}));
    let po = obj
        .get("po")
        .cloned()
        .unwrap_or_else(|| po_line["po"].clone());
    let line = obj
        .get("line")
        .cloned()
        .unwrap_or_else(|| po_line["line"].clone());
    let time = obj.get("event_time").cloned().unwrap_or(Value::Null);
    obj.retain(|k, _| {
        matches!(
            k.as_str(),
            "event_id" | "event_time" | "source" | "supplier"
        )
    });
    obj.insert("kind".into(), json!("goods_receipt"));
    obj.insert("po".into(), po);
    obj.insert("line".into(), line);
    obj.insert("quantity".into(), json!(-10));
    obj.insert("received_at".into(), time);
}

fn impossible_date(obj: &mut Map<String, Value>) {
    for field in ["promised_date", "order_date"] {
        if obj.contains_key(field) {
            obj.insert(field.into(), json!(IMPOSSIBLE_DATE));
            return;
        }
    }
    for field in ["received_at", "eta", "shipped_at", "event_time"] {
        if let Some(ts) = obj.get(field).and_then(Value::as_str) {
            // Keep the time of day: "2026-03-02T08:15:00Z" -> "2026-02-30T08:15:00Z".
            let time_of_day = ts.get(10..).unwrap_or("T00:00:00Z").to_string();
            obj.insert(
                field.into(),
                json!(format!("{IMPOSSIBLE_DATE}{time_of_day}")),
            );
            return;
        }
    }
}

fn wrong_type(obj: &mut Map<String, Value>) {
    for field in ["quantity", "on_hand", "line", "po_lines"] {
        if obj.contains_key(field) {
            obj.insert(field.into(), json!("abc"));
            return;
        }
    }
    for field in ["eta", "location"] {
        if obj.contains_key(field) {
            obj.insert(field.into(), json!(12345));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MILESTONE: &str = r#"{"event_id":"e1","event_time":"2026-03-28T16:00:00Z","source":"c","kind":"milestone","shipment":"SH-1","supplier":"S","status":"arrived","location":"SGSIN"}"#;
    const POSITION: &str = r#"{"event_id":"e2","event_time":"2026-03-02T00:00:00Z","source":"w","kind":"inventory_position","site":"X","part":"P","on_hand":1200,"daily_demand":80}"#;

    fn damaged(m: Malformation, good: &str) -> Value {
        serde_json::from_slice(&m.apply(good.as_bytes())).unwrap()
    }

    #[test]
    fn variants_cycle_every_nth_event() {
        assert_eq!(Malformation::for_event(5, None), None);
        assert_eq!(Malformation::for_event(4, Some(5)), None);
        assert_eq!(
            Malformation::for_event(5, Some(5)),
            Some(Malformation::BrokenJson)
        );
        assert_eq!(
            Malformation::for_event(10, Some(5)),
            Some(Malformation::NegativeQuantity)
        );
        assert_eq!(
            Malformation::for_event(35, Some(5)),
            Some(Malformation::BrokenJson)
        );
        assert_eq!(Malformation::for_event(3, Some(0)), None);
    }

    #[test]
    fn broken_json_does_not_parse() {
        let out = Malformation::BrokenJson.apply(MILESTONE.as_bytes());
        assert!(serde_json::from_slice::<Value>(&out).is_err());
    }

    #[test]
    fn negative_quantity_on_a_kind_without_quantity_becomes_a_receipt() {
        let v = damaged(Malformation::NegativeQuantity, MILESTONE);
        assert_eq!(v["kind"], "goods_receipt");
        assert_eq!(v["quantity"], -10);
        assert_eq!(v["supplier"], "S");
        let v = damaged(Malformation::NegativeQuantity, POSITION);
        assert_eq!(v["on_hand"], -1200.0);
    }

    #[test]
    fn each_variant_has_one_visible_defect() {
        assert_eq!(
            damaged(Malformation::UnknownKind, POSITION)["kind"],
            UNKNOWN_KIND
        );
        assert!(damaged(Malformation::MissingField, MILESTONE)
            .get("location")
            .is_none());
        assert_eq!(
            damaged(Malformation::ImpossibleDate, POSITION)["event_time"],
            "2026-02-30T00:00:00Z"
        );
        assert_eq!(damaged(Malformation::WrongType, POSITION)["on_hand"], "abc");
        assert_eq!(
            damaged(Malformation::WrongType, MILESTONE)["location"],
            12345
        );
    }
}
