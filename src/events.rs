//! Canonical events: the kinds chainwatch understands and their Arrow schemas.
//!
//! In: nothing (this module is the contract). Out: [`event_schema`], the one wide Arrow schema
//! every payload is decoded into (the union of all kinds' fields, all nullable), and per kind
//! the fields it requires ([`EventKind::required`]) and its own schema ([`EventKind::schema`]).
//! docs/events.md documents the same contract for producers; a unit test keeps them in step.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

/// The source system an event comes from; decides its default topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Erp,
    Wms,
    Logistics,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Erp, Source::Wms, Source::Logistics];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Erp => "erp",
            Source::Wms => "wms",
            Source::Logistics => "logistics",
        }
    }
}

/// Every kind of canonical event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    PoLineCreated,
    PoLineChanged,
    PoLineCancelled,
    SupplierConfirmation,
    GoodsReceipt,
    InventoryPosition,
    StockMovement,
    ShipmentCreated,
    Milestone,
    EtaUpdate,
    /// No business content: says the source is alive and its event time has reached
    /// `event_time`, so a quiet source still moves the watermark and closes steps.
    Heartbeat,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::PoLineCreated,
        EventKind::PoLineChanged,
        EventKind::PoLineCancelled,
        EventKind::SupplierConfirmation,
        EventKind::GoodsReceipt,
        EventKind::InventoryPosition,
        EventKind::StockMovement,
        EventKind::ShipmentCreated,
        EventKind::Milestone,
        EventKind::EtaUpdate,
        EventKind::Heartbeat,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PoLineCreated => "po_line_created",
            EventKind::PoLineChanged => "po_line_changed",
            EventKind::PoLineCancelled => "po_line_cancelled",
            EventKind::SupplierConfirmation => "supplier_confirmation",
            EventKind::GoodsReceipt => "goods_receipt",
            EventKind::InventoryPosition => "inventory_position",
            EventKind::StockMovement => "stock_movement",
            EventKind::ShipmentCreated => "shipment_created",
            EventKind::Milestone => "milestone",
            EventKind::EtaUpdate => "eta_update",
            EventKind::Heartbeat => "heartbeat",
        }
    }

    /// The system that emits the kind; heartbeats come from any.
    pub fn source(self) -> Option<Source> {
        match self {
            EventKind::PoLineCreated
            | EventKind::PoLineChanged
            | EventKind::PoLineCancelled
            | EventKind::SupplierConfirmation
            | EventKind::GoodsReceipt => Some(Source::Erp),
            EventKind::InventoryPosition | EventKind::StockMovement => Some(Source::Wms),
            EventKind::ShipmentCreated | EventKind::Milestone | EventKind::EtaUpdate => {
                Some(Source::Logistics)
            }
            EventKind::Heartbeat => None,
        }
    }

    /// Fields (besides the common ones) that must be present and non-null.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            EventKind::PoLineCreated | EventKind::PoLineChanged => &[
                "po",
                "line",
                "supplier",
                "part",
                "site",
                "quantity",
                "unit_price",
                "order_date",
                "promised_date",
            ],
            EventKind::PoLineCancelled => &["po", "line", "supplier"],
            EventKind::SupplierConfirmation => &["po", "line", "supplier", "status"],
            EventKind::GoodsReceipt => &["po", "line", "supplier", "quantity", "received_at"],
            EventKind::InventoryPosition => &["site", "part", "on_hand", "daily_demand"],
            EventKind::StockMovement => &["site", "part", "movement", "quantity"],
            EventKind::ShipmentCreated => &[
                "shipment",
                "supplier",
                "po_lines",
                "origin",
                "destination",
                "carrier",
                "mode",
                "shipped_at",
                "eta",
            ],
            EventKind::Milestone => &["shipment", "supplier", "status", "location"],
            EventKind::EtaUpdate => &["shipment", "supplier", "eta"],
            EventKind::Heartbeat => &[],
        }
    }

    /// Optional fields of the kind.
    pub fn optional(self) -> &'static [&'static str] {
        match self {
            EventKind::SupplierConfirmation => &["promised_date", "quantity"],
            EventKind::Milestone | EventKind::EtaUpdate => &["reason_code"],
            _ => &[],
        }
    }

    /// Allowed values of the `status` / `mode` / `movement` fields of the kind.
    pub fn allowed_values(self) -> &'static [(&'static str, &'static [&'static str])] {
        match self {
            EventKind::SupplierConfirmation => {
                &[("status", &["accepted", "rescheduled", "backordered"])]
            }
            EventKind::StockMovement => &[("movement", &["receipt", "issue"])],
            EventKind::ShipmentCreated => &[("mode", &["ocean", "air", "road", "rail"])],
            EventKind::Milestone => &[(
                "status",
                &[
                    "departed",
                    "arrived",
                    "in_transit",
                    "held",
                    "delayed",
                    "delivered",
                ],
            )],
            _ => &[],
        }
    }

    /// The Arrow schema of this kind alone: the common fields, then its own.
    pub fn schema(self) -> Schema {
        let all = event_schema();
        let names = COMMON.iter().chain(self.required()).chain(self.optional());
        let fields: Vec<Field> = names
            .filter_map(|name| all.field_with_name(name).ok())
            .map(|f| {
                let required = COMMON.contains(&f.name().as_str())
                    || self.required().contains(&f.name().as_str());
                f.clone().with_nullable(!required)
            })
            .collect();
        Schema::new(fields)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// Fields every event carries.
pub const COMMON: [&str; 4] = ["event_id", "kind", "event_time", "source"];

/// Timestamps are milliseconds since the epoch, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The element type of `po_lines`.
pub fn po_line_ref_fields() -> Fields {
    Fields::from(vec![
        Field::new("po", DataType::Utf8, true),
        Field::new("line", DataType::Int64, true),
    ])
}

/// The element field of `po_lines` (builders of the list need it as the schema has it).
pub fn po_line_item() -> FieldRef {
    Arc::new(Field::new(
        "item",
        DataType::Struct(po_line_ref_fields()),
        true,
    ))
}

/// The wide schema every payload is decoded into: all fields of all kinds, nullable;
/// which ones a row must have is checked per kind after decoding.
pub fn event_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = timestamp_type;
            let utf8 = |n: &str| Field::new(n, DataType::Utf8, true);
            let f64 = |n: &str| Field::new(n, DataType::Float64, true);
            Arc::new(Schema::new(vec![
                utf8("event_id"),
                utf8("kind"),
                Field::new("event_time", ts(), true),
                utf8("source"),
                utf8("po"),
                Field::new("line", DataType::Int64, true),
                utf8("supplier"),
                utf8("part"),
                utf8("site"),
                f64("quantity"),
                f64("unit_price"),
                Field::new("order_date", DataType::Date32, true),
                Field::new("promised_date", DataType::Date32, true),
                utf8("status"),
                Field::new("received_at", ts(), true),
                f64("on_hand"),
                f64("daily_demand"),
                utf8("movement"),
                utf8("shipment"),
                Field::new("po_lines", DataType::List(po_line_item()), true),
                utf8("origin"),
                utf8("destination"),
                utf8("carrier"),
                utf8("mode"),
                Field::new("shipped_at", ts(), true),
                Field::new("eta", ts(), true),
                utf8("location"),
                utf8("reason_code"),
            ]))
        })
        .clone()
}

/// Column positions in [`event_schema`], so hot loops index instead of looking up names.
pub mod col {
    pub const EVENT_ID: usize = 0;
    pub const KIND: usize = 1;
    pub const EVENT_TIME: usize = 2;
    pub const SOURCE: usize = 3;
    pub const PO: usize = 4;
    pub const LINE: usize = 5;
    pub const SUPPLIER: usize = 6;
    pub const PART: usize = 7;
    pub const SITE: usize = 8;
    pub const QUANTITY: usize = 9;
    pub const UNIT_PRICE: usize = 10;
    pub const ORDER_DATE: usize = 11;
    pub const PROMISED_DATE: usize = 12;
    pub const STATUS: usize = 13;
    pub const RECEIVED_AT: usize = 14;
    pub const ON_HAND: usize = 15;
    pub const DAILY_DEMAND: usize = 16;
    pub const MOVEMENT: usize = 17;
    pub const SHIPMENT: usize = 18;
    pub const PO_LINES: usize = 19;
    pub const ORIGIN: usize = 20;
    pub const DESTINATION: usize = 21;
    pub const CARRIER: usize = 22;
    pub const MODE: usize = 23;
    pub const SHIPPED_AT: usize = 24;
    pub const ETA: usize = 25;
    pub const LOCATION: usize = 26;
    pub const REASON_CODE: usize = 27;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_constants_match_schema() {
        let s = event_schema();
        let expect = [
            (col::EVENT_ID, "event_id"),
            (col::KIND, "kind"),
            (col::EVENT_TIME, "event_time"),
            (col::SOURCE, "source"),
            (col::PO, "po"),
            (col::LINE, "line"),
            (col::SUPPLIER, "supplier"),
            (col::PART, "part"),
            (col::SITE, "site"),
            (col::QUANTITY, "quantity"),
            (col::UNIT_PRICE, "unit_price"),
            (col::ORDER_DATE, "order_date"),
            (col::PROMISED_DATE, "promised_date"),
            (col::STATUS, "status"),
            (col::RECEIVED_AT, "received_at"),
            (col::ON_HAND, "on_hand"),
            (col::DAILY_DEMAND, "daily_demand"),
            (col::MOVEMENT, "movement"),
            (col::SHIPMENT, "shipment"),
            (col::PO_LINES, "po_lines"),
            (col::ORIGIN, "origin"),
            (col::DESTINATION, "destination"),
            (col::CARRIER, "carrier"),
            (col::MODE, "mode"),
            (col::SHIPPED_AT, "shipped_at"),
            (col::ETA, "eta"),
            (col::LOCATION, "location"),
            (col::REASON_CODE, "reason_code"),
        ];
        assert_eq!(s.fields().len(), expect.len());
        for (i, name) in expect {
            assert_eq!(s.field(i).name(), name);
        }
    }

    #[test]
    fn every_kind_field_exists_and_schema_marks_required() {
        let s = event_schema();
        for kind in EventKind::ALL {
            for f in kind.required().iter().chain(kind.optional()) {
                assert!(s.field_with_name(f).is_ok(), "{kind}: {f}");
            }
            let ks = kind.schema();
            assert_eq!(
                ks.fields().len(),
                4 + kind.required().len() + kind.optional().len()
            );
            for f in kind.required() {
                assert!(!ks.field_with_name(f).unwrap().is_nullable());
            }
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        }
        assert!("po_line_deleted".parse::<EventKind>().is_err());
    }

    /// docs/events.md must describe every kind and every field the decoder knows.
    #[test]
    fn docs_cover_every_kind_and_field() {
        let docs = include_str!("../docs/events.md");
        for kind in EventKind::ALL {
            assert!(docs.contains(&format!("`{}`", kind.as_str())), "{kind}");
        }
        for f in event_schema().fields() {
            assert!(docs.contains(&format!("`{}`", f.name())), "{}", f.name());
        }
    }
}
