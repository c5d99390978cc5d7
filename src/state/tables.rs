//! The state as Arrow tables: the schemas indicator SQL is written against, and the snapshot.
//!
//! In: a [`State`]. Out: [`Tables`], one [`RecordBatch`] per table, named as in SQL:
//!
//! | table | one row per | columns |
//! |---|---|---|
//! | `po_lines` | open PO line | po, line, supplier, part, site, quantity, received_quantity, open_quantity, unit_price, order_date, promised_date, original_promised_date, due_at, confirmed, backordered, reschedule_count, shipment, created_at, delivered_at (its shipment delivered, receipt pending) |
//! | `deliveries` | completed line in the window | po, line, supplier, part, site, quantity, received_quantity, unit_price, promised_date, original_promised_date, due_at, received_at, reschedule_count |
//! | `reschedules` | reschedule or back-order in the window | event_time, po, line, supplier, part, status, previous_promised_date, promised_date |
//! | `shipments` | in-flight shipment | shipment, supplier, origin, destination, lane, carrier, mode, shipped_at, eta, first_eta, eta_updates, status, location, last_event_at, held_since, reason_code |
//! | `stops` | stop of a shipment at a location: completed ones in the window and open ones (departed_at null) | shipment, supplier, location, arrived_at, departed_at |
//! | `inventory` | site and part | site, part, on_hand, daily_demand, updated_at |
//! | `feed_activity` | supplier feed that sent records | feed, supplier, records, events, rejected, last_event_at (latest event time mapped), first_seen_at (watermark when its first record came) |
//!
//! Dates are `Date32`; `due_at` is the end of the promised day (UTC); timestamps are
//! `Timestamp(ms, UTC)`.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::{State, DAY_MS};
use crate::events::timestamp_type;

/// Names of the state tables, in the order of [`schemas`].
pub const TABLE_NAMES: [&str; 7] = [
    "po_lines",
    "deliveries",
    "reschedules",
    "shipments",
    "stops",
    "inventory",
    "feed_activity",
];

/// One snapshot of every state table, named.
#[derive(Debug, Clone)]
pub struct Tables {
    pub tables: Vec<(&'static str, RecordBatch)>,
    /// The event-time watermark the snapshot was taken at (ms).
    pub watermark: i64,
    /// Events applied to the state when the snapshot was taken.
    pub applied: u64,
}

impl Tables {
    /// Empty tables with the right schemas: used to plan SQL at load time.
    pub fn empty() -> Self {
        Tables {
            tables: TABLE_NAMES
                .iter()
                .zip(schemas())
                .map(|(n, s)| (*n, RecordBatch::new_empty(s.clone())))
                .collect(),
            watermark: 0,
            applied: 0,
        }
    }

    pub fn get(&self, name: &str) -> Option<&RecordBatch> {
        self.tables.iter().find(|(n, _)| *n == name).map(|(_, b)| b)
    }
}

fn utf8(n: &str, nullable: bool) -> Field {
    Field::new(n, DataType::Utf8, nullable)
}
fn f64f(n: &str) -> Field {
    Field::new(n, DataType::Float64, false)
}
fn i64f(n: &str) -> Field {
    Field::new(n, DataType::Int64, false)
}
fn date(n: &str, nullable: bool) -> Field {
    Field::new(n, DataType::Date32, nullable)
}
fn ts(n: &str, nullable: bool) -> Field {
    Field::new(n, timestamp_type(), nullable)
}

/// The schemas of the state tables, in the order of [`TABLE_NAMES`].
pub fn schemas() -> &'static [SchemaRef; 7] {
    static S: OnceLock<[SchemaRef; 7]> = OnceLock::new();
    S.get_or_init(|| {
        [
            Arc::new(Schema::new(vec![
                utf8("po", false),
                i64f("line"),
                utf8("supplier", false),
                utf8("part", false),
                utf8("site", false),
                f64f("quantity"),
                f64f("received_quantity"),
                f64f("open_quantity"),
                f64f("unit_price"),
                date("order_date", false),
                date("promised_date", false),
                date("original_promised_date", false),
                ts("due_at", false),
                Field::new("confirmed", DataType::Boolean, false),
                Field::new("backordered", DataType::Boolean, false),
                i64f("reschedule_count"),
                utf8("shipment", true),
                ts("created_at", false),
                ts("delivered_at", true),
            ])),
            Arc::new(Schema::new(vec![
                utf8("po", false),
                i64f("line"),
                utf8("supplier", false),
                utf8("part", false),
                utf8("site", false),
                f64f("quantity"),
                f64f("received_quantity"),
                f64f("unit_price"),
                date("promised_date", false),
                date("original_promised_date", false),
                ts("due_at", false),
                ts("received_at", false),
                i64f("reschedule_count"),
            ])),
            Arc::new(Schema::new(vec![
                ts("event_time", false),
                utf8("po", false),
                i64f("line"),
                utf8("supplier", false),
                utf8("part", false),
                utf8("status", false),
                date("previous_promised_date", true),
                date("promised_date", true),
            ])),
            Arc::new(Schema::new(vec![
                utf8("shipment", false),
                utf8("supplier", false),
                utf8("origin", false),
                utf8("destination", false),
                utf8("lane", false),
                utf8("carrier", false),
                utf8("mode", false),
                ts("shipped_at", false),
                ts("eta", false),
                ts("first_eta", false),
                i64f("eta_updates"),
                utf8("status", false),
                utf8("location", false),
                ts("last_event_at", false),
                ts("held_since", true),
                utf8("reason_code", true),
            ])),
            Arc::new(Schema::new(vec![
                utf8("shipment", false),
                utf8("supplier", false),
                utf8("location", false),
                ts("arrived_at", false),
                ts("departed_at", true),
            ])),
            Arc::new(Schema::new(vec![
                utf8("site", false),
                utf8("part", false),
                f64f("on_hand"),
                f64f("daily_demand"),
                ts("updated_at", false),
            ])),
            Arc::new(Schema::new(vec![
                utf8("feed", false),
                utf8("supplier", false),
                i64f("records"),
                i64f("events"),
                i64f("rejected"),
                ts("last_event_at", true),
                ts("first_seen_at", false),
            ])),
        ]
    })
}

fn strs<'a>(it: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(it))
}
fn opt_strs<'a>(it: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(it.collect::<StringArray>())
}
fn f64s(it: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(it))
}
fn i64s(it: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(it))
}
fn dates(it: impl Iterator<Item = i32>) -> ArrayRef {
    Arc::new(Date32Array::from_iter_values(it))
}
fn opt_dates(it: impl Iterator<Item = Option<i32>>) -> ArrayRef {
    Arc::new(it.collect::<Date32Array>())
}
fn stamps(it: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(it).with_timezone("UTC"))
}
fn opt_stamps(it: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        it.collect::<TimestampMillisecondArray>()
            .with_timezone("UTC"),
    )
}
fn bools(it: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(it.map(Some).collect::<BooleanArray>())
}

/// End of the promised day: a line promised for day D is on time until D+1 00:00 UTC.
fn due_at(promised_date: i32) -> i64 {
    (promised_date as i64 + 1) * DAY_MS
}

fn batch(i: usize, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schemas()[i].clone(), columns)
        .expect("snapshot columns follow the table schema")
}

/// Build every table from the state.
pub(super) fn snapshot(s: &State) -> Tables {
    let lines: Vec<_> = s.lines.iter().collect();
    let po_lines = batch(
        0,
        vec![
            strs(lines.iter().map(|(k, _)| &*k.0)),
            i64s(lines.iter().map(|(k, _)| k.1)),
            strs(lines.iter().map(|(_, l)| &*l.supplier)),
            strs(lines.iter().map(|(_, l)| &*l.part)),
            strs(lines.iter().map(|(_, l)| &*l.site)),
            f64s(lines.iter().map(|(_, l)| l.quantity)),
            f64s(lines.iter().map(|(_, l)| l.received_quantity)),
            f64s(
                lines
                    .iter()
                    .map(|(_, l)| (l.quantity - l.received_quantity).max(0.0)),
            ),
            f64s(lines.iter().map(|(_, l)| l.unit_price)),
            dates(lines.iter().map(|(_, l)| l.order_date)),
            dates(lines.iter().map(|(_, l)| l.promised_date)),
            dates(lines.iter().map(|(_, l)| l.original_promised_date)),
            stamps(lines.iter().map(|(_, l)| due_at(l.promised_date))),
            bools(lines.iter().map(|(_, l)| l.confirmed)),
            bools(lines.iter().map(|(_, l)| l.backordered)),
            i64s(lines.iter().map(|(_, l)| i64::from(l.reschedule_count))),
            opt_strs(lines.iter().map(|(_, l)| l.shipment.as_deref())),
            stamps(lines.iter().map(|(_, l)| l.created_at)),
            opt_stamps(lines.iter().map(|(_, l)| l.delivered_at.get())),
        ],
    );
    let d = &s.deliveries;
    let deliveries = batch(
        1,
        vec![
            strs(d.iter().map(|x| x.po.as_str())),
            i64s(d.iter().map(|x| x.line)),
            strs(d.iter().map(|x| &*x.supplier)),
            strs(d.iter().map(|x| &*x.part)),
            strs(d.iter().map(|x| &*x.site)),
            f64s(d.iter().map(|x| x.quantity)),
            f64s(d.iter().map(|x| x.received_quantity)),
            f64s(d.iter().map(|x| x.unit_price)),
            dates(d.iter().map(|x| x.promised_date)),
            dates(d.iter().map(|x| x.original_promised_date)),
            stamps(d.iter().map(|x| due_at(x.promised_date))),
            stamps(d.iter().map(|x| x.received_at)),
            i64s(d.iter().map(|x| i64::from(x.reschedule_count))),
        ],
    );
    let r = &s.reschedules;
    let reschedules = batch(
        2,
        vec![
            stamps(r.iter().map(|x| x.event_time)),
            strs(r.iter().map(|x| x.po.as_str())),
            i64s(r.iter().map(|x| x.line)),
            strs(r.iter().map(|x| &*x.supplier)),
            strs(r.iter().map(|x| &*x.part)),
            strs(r.iter().map(|x| &*x.status)),
            opt_dates(r.iter().map(|x| x.previous_promised_date)),
            opt_dates(r.iter().map(|x| x.promised_date)),
        ],
    );
    let sh: Vec<_> = s.shipments.iter().collect();
    let lanes: Vec<String> = sh
        .iter()
        .map(|(_, x)| format!("{}-{}", x.origin, x.destination))
        .collect();
    let shipments = batch(
        3,
        vec![
            strs(sh.iter().map(|(k, _)| k.as_str())),
            strs(sh.iter().map(|(_, x)| &*x.supplier)),
            strs(sh.iter().map(|(_, x)| x.origin.as_str())),
            strs(sh.iter().map(|(_, x)| x.destination.as_str())),
            strs(lanes.iter().map(String::as_str)),
            strs(sh.iter().map(|(_, x)| x.carrier.as_str())),
            strs(sh.iter().map(|(_, x)| x.mode.as_str())),
            stamps(sh.iter().map(|(_, x)| x.shipped_at)),
            stamps(sh.iter().map(|(_, x)| x.eta)),
            stamps(sh.iter().map(|(_, x)| x.first_eta)),
            i64s(sh.iter().map(|(_, x)| x.eta_updates)),
            strs(sh.iter().map(|(_, x)| &*x.status)),
            strs(sh.iter().map(|(_, x)| x.location.as_str())),
            stamps(sh.iter().map(|(_, x)| x.last_event_at)),
            opt_stamps(sh.iter().map(|(_, x)| x.held_since)),
            opt_strs(sh.iter().map(|(_, x)| x.reason_code.as_deref())),
        ],
    );
    // Completed stops from the window, then the open ones (departed_at null).
    let open: Vec<(&str, &str, &str, i64)> = sh
        .iter()
        .filter_map(|(id, x)| {
            x.open_stop
                .as_ref()
                .map(|(loc, at)| (id.as_str(), &*x.supplier, loc.as_str(), *at))
        })
        .collect();
    let st = &s.stops;
    let stops = batch(
        4,
        vec![
            strs(
                st.iter()
                    .map(|x| x.shipment.as_str())
                    .chain(open.iter().map(|o| o.0)),
            ),
            strs(
                st.iter()
                    .map(|x| &*x.supplier)
                    .chain(open.iter().map(|o| o.1)),
            ),
            strs(
                st.iter()
                    .map(|x| x.location.as_str())
                    .chain(open.iter().map(|o| o.2)),
            ),
            stamps(
                st.iter()
                    .map(|x| x.arrived_at)
                    .chain(open.iter().map(|o| o.3)),
            ),
            opt_stamps(
                st.iter()
                    .map(|x| Some(x.departed_at))
                    .chain(open.iter().map(|_| None)),
            ),
        ],
    );
    let inv: Vec<_> = s.inventory.iter().collect();
    let inventory = batch(
        5,
        vec![
            strs(inv.iter().map(|(k, _)| k.0.as_str())),
            strs(inv.iter().map(|(k, _)| k.1.as_str())),
            f64s(inv.iter().map(|(_, p)| p.on_hand)),
            f64s(inv.iter().map(|(_, p)| p.daily_demand)),
            stamps(inv.iter().map(|(_, p)| p.updated_at)),
        ],
    );
    let fa: Vec<_> = s.feeds.iter().collect();
    let feed_activity = batch(
        6,
        vec![
            strs(fa.iter().map(|(k, _)| k.as_str())),
            strs(fa.iter().map(|(_, a)| a.supplier.as_str())),
            i64s(fa.iter().map(|(_, a)| a.records as i64)),
            i64s(fa.iter().map(|(_, a)| a.events as i64)),
            i64s(fa.iter().map(|(_, a)| a.rejected as i64)),
            opt_stamps(fa.iter().map(|(_, a)| a.last_event_at)),
            stamps(fa.iter().map(|(_, a)| a.first_seen_at)),
        ],
    );
    Tables {
        tables: TABLE_NAMES
            .iter()
            .copied()
            .zip([
                po_lines,
                deliveries,
                reschedules,
                shipments,
                stops,
                inventory,
                feed_activity,
            ])
            .collect(),
        watermark: s.watermark,
        applied: s.applied,
    }
}
