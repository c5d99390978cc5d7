//! Canonical event bodies as the simulator produces them, and their JSON encoding.
//!
//! In: typed bodies built by the order planner and the inventory step. Out: one JSON object per
//! event, exactly as `docs/events.md` describes (`event_id`, `event_time`, `source`, `kind` and
//! the kind's fields), plus the [`Source`] and message key the event is published with.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::events::Source;

/// `source` field of ERP events.
pub(super) const ERP_SOURCE: &str = "sim-erp";
/// `source` field of WMS events.
pub(super) const WMS_SOURCE: &str = "sim-wms";

/// The body of one canonical event: `kind` plus its fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Body {
    PoLineCreated(PoLine),
    PoLineChanged(PoLine),
    PoLineCancelled(LineRef),
    SupplierConfirmation(Confirmation),
    GoodsReceipt(Receipt),
    InventoryPosition(Position),
    StockMovement(Movement),
    ShipmentCreated(ShipmentNotice),
    Milestone(MilestoneBody),
    EtaUpdate(EtaBody),
}

/// A PO line in full (`po_line_created`, `po_line_changed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct PoLine {
    pub po: String,
    pub line: u32,
    pub supplier: String,
    pub part: String,
    pub site: String,
    pub quantity: u64,
    pub unit_price: f64,
    pub order_date: NaiveDate,
    pub promised_date: NaiveDate,
}

/// A reference to a PO line (`po_line_cancelled`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct LineRef {
    pub po: String,
    pub line: u32,
    pub supplier: String,
}

/// Supplier's answer to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ConfirmStatus {
    Accepted,
    Rescheduled,
    Backordered,
}

/// `supplier_confirmation`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Confirmation {
    pub po: String,
    pub line: u32,
    pub supplier: String,
    pub status: ConfirmStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
}

/// `goods_receipt`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Receipt {
    pub po: String,
    pub line: u32,
    pub supplier: String,
    pub quantity: u64,
    pub received_at: DateTime<Utc>,
}

/// `inventory_position`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Position {
    pub site: String,
    pub part: String,
    pub on_hand: u64,
    pub daily_demand: f64,
}

/// Direction of a stock movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum MovementKind {
    Receipt,
    Issue,
}

/// `stock_movement`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Movement {
    pub site: String,
    pub part: String,
    pub movement: MovementKind,
    pub quantity: u64,
}

/// One entry of `shipment_created.po_lines`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct PoLineKey {
    pub po: String,
    pub line: u32,
}

/// `shipment_created`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct ShipmentNotice {
    pub shipment: String,
    pub supplier: String,
    pub po_lines: Vec<PoLineKey>,
    pub origin: String,
    pub destination: String,
    pub carrier: String,
    pub mode: &'static str,
    pub shipped_at: DateTime<Utc>,
    pub eta: DateTime<Utc>,
}

/// Shipment status of a milestone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Status {
    Departed,
    Arrived,
    Held,
    Delivered,
}

/// `milestone`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct MilestoneBody {
    pub shipment: String,
    pub supplier: String,
    pub status: Status,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<&'static str>,
}

/// `eta_update`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct EtaBody {
    pub shipment: String,
    pub supplier: String,
    pub eta: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<&'static str>,
}

impl Body {
    /// The source system that emits this kind.
    pub fn source(&self) -> Source {
        match self {
            Body::PoLineCreated(_)
            | Body::PoLineChanged(_)
            | Body::PoLineCancelled(_)
            | Body::SupplierConfirmation(_)
            | Body::GoodsReceipt(_) => Source::Erp,
            Body::InventoryPosition(_) | Body::StockMovement(_) => Source::Wms,
            Body::ShipmentCreated(_) | Body::Milestone(_) | Body::EtaUpdate(_) => Source::Logistics,
        }
    }

    /// The message key: the supplier for ERP and logistics events, the site for WMS events.
    pub fn key(&self) -> &str {
        match self {
            Body::PoLineCreated(l) | Body::PoLineChanged(l) => &l.supplier,
            Body::PoLineCancelled(l) => &l.supplier,
            Body::SupplierConfirmation(c) => &c.supplier,
            Body::GoodsReceipt(r) => &r.supplier,
            Body::InventoryPosition(p) => &p.site,
            Body::StockMovement(m) => &m.site,
            Body::ShipmentCreated(s) => &s.supplier,
            Body::Milestone(m) => &m.supplier,
            Body::EtaUpdate(e) => &e.supplier,
        }
    }
}

/// The full JSON object: common fields, then the body.
#[derive(Serialize)]
pub(super) struct Record<'a> {
    pub event_id: &'a str,
    pub event_time: DateTime<Utc>,
    pub source: &'a str,
    #[serde(flatten)]
    pub body: &'a Body,
}

impl Record<'_> {
    /// Encodes the record as one JSON object.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain structs, strings, numbers and chrono values into a Vec cannot fail.
        serde_json::to_vec(self).expect("sim records always serialize")
    }
}

/// An event waiting in the time-ordered buffer.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub time: DateTime<Utc>,
    /// Generation order: breaks ties between equal times deterministically.
    pub seq: u64,
    /// The `source` field (`sim-erp`, `sim-wms`, `sim-carrier-<carrier>`).
    pub source: String,
    pub body: Body,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn record_matches_the_documented_shape() {
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 8, 15, 0).unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let body = Body::PoLineCreated(PoLine {
            po: "PO-10001".into(),
            line: 1,
            supplier: "SUP-ACME".into(),
            part: "P-1001".into(),
            site: "PLANT-DE1".into(),
            quantity: 500,
            unit_price: 12.5,
            order_date: day(2),
            promised_date: day(30),
        });
        let rec = Record {
            event_id: "erp-000001",
            event_time: t,
            source: "sap-erp-eu",
            body: &body,
        };
        let text = String::from_utf8(rec.to_bytes()).unwrap();
        assert_eq!(
            text,
            r#"{"event_id":"erp-000001","event_time":"2026-03-02T08:15:00Z","source":"sap-erp-eu","kind":"po_line_created","po":"PO-10001","line":1,"supplier":"SUP-ACME","part":"P-1001","site":"PLANT-DE1","quantity":500,"unit_price":12.5,"order_date":"2026-03-02","promised_date":"2026-03-30"}"#
        );
        assert_eq!(body.source(), Source::Erp);
        assert_eq!(body.key(), "SUP-ACME");
    }

    #[test]
    fn optional_fields_are_left_out() {
        let body = Body::SupplierConfirmation(Confirmation {
            po: "PO-1".into(),
            line: 2,
            supplier: "S".into(),
            status: ConfirmStatus::Accepted,
            promised_date: None,
            quantity: None,
        });
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["status"], "accepted");
        assert!(v.get("promised_date").is_none() && v.get("quantity").is_none());
    }

    #[test]
    fn pending_orders_by_time_then_sequence() {
        let t = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        let body = Body::StockMovement(Movement {
            site: "S".into(),
            part: "P".into(),
            movement: MovementKind::Issue,
            quantity: 1,
        });
        let p = |time, seq| Pending {
            time,
            seq,
            source: WMS_SOURCE.into(),
            body: body.clone(),
        };
        assert!(p(t, 2) < p(t, 3));
        assert!(p(t + chrono::Duration::seconds(1), 1) > p(t, 3));
        assert_eq!(body.key(), "S");
    }
}
