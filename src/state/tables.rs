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

use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Array, Date32Builder, Float64Array,
    Float64Builder, Int64Array, Int64Builder, StringArray, StringBuilder,
    TimestampMillisecondArray, TimestampMillisecondBuilder,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::{Delivery, LineKey, PurchaseLine, State, DAY_MS};
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

/// End of the promised day: a line promised for day D is on time until D+1 00:00 UTC.
fn due_at(promised_date: i32) -> i64 {
    (promised_date as i64 + 1) * DAY_MS
}

fn batch(i: usize, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schemas()[i].clone(), columns)
        .expect("snapshot columns follow the table schema")
}

// The two big tables are built in one pass over their records: a pass per column walked a
// million boxed lines 19 times, each time missing the cache.

fn str_builder(n: usize) -> StringBuilder {
    StringBuilder::with_capacity(n, n * 8)
}
fn stamp_builder(n: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC")
}
fn done(b: &mut dyn ArrayBuilder) -> ArrayRef {
    b.finish()
}

/// The `po_lines` table of `rows` (`n` of them), in one pass.
fn po_lines_of<'a>(
    n: usize,
    rows: impl Iterator<Item = (&'a LineKey, &'a PurchaseLine)>,
) -> RecordBatch {
    let [mut po, mut supplier, mut part, mut site, mut shipment] = [(); 5].map(|_| str_builder(n));
    let [mut quantity, mut received, mut open, mut price] =
        [(); 4].map(|_| Float64Builder::with_capacity(n));
    let [mut line_no, mut reschedules] = [(); 2].map(|_| Int64Builder::with_capacity(n));
    let [mut ordered, mut promised, mut original] =
        [(); 3].map(|_| Date32Builder::with_capacity(n));
    let [mut due, mut created, mut delivered] = [(); 3].map(|_| stamp_builder(n));
    let [mut confirmed, mut backordered] = [(); 2].map(|_| BooleanBuilder::with_capacity(n));
    for ((k_po, k_line), l) in rows {
        po.append_value(k_po);
        line_no.append_value(*k_line);
        supplier.append_value(&l.supplier);
        part.append_value(&l.part);
        site.append_value(&l.site);
        quantity.append_value(l.quantity);
        received.append_value(l.received_quantity);
        open.append_value((l.quantity - l.received_quantity).max(0.0));
        price.append_value(l.unit_price);
        ordered.append_value(l.order_date);
        promised.append_value(l.promised_date);
        original.append_value(l.original_promised_date);
        due.append_value(due_at(l.promised_date));
        confirmed.append_value(l.confirmed);
        backordered.append_value(l.backordered);
        reschedules.append_value(i64::from(l.reschedule_count));
        shipment.append_option(l.shipment.as_deref());
        created.append_value(l.created_at);
        delivered.append_option(l.delivered_at.get());
    }
    batch(
        0,
        vec![
            done(&mut po),
            done(&mut line_no),
            done(&mut supplier),
            done(&mut part),
            done(&mut site),
            done(&mut quantity),
            done(&mut received),
            done(&mut open),
            done(&mut price),
            done(&mut ordered),
            done(&mut promised),
            done(&mut original),
            done(&mut due),
            done(&mut confirmed),
            done(&mut backordered),
            done(&mut reschedules),
            done(&mut shipment),
            done(&mut created),
            done(&mut delivered),
        ],
    )
}

/// The last snapshot's `po_lines` table, and the rows changed since: positions in
/// `State::lines` set, added, or filled by another line moved there (an `IndexMap` swap
/// removal). The next snapshot builds only the changed rows and copies the others from it as
/// slices: about as many changes per tick as events, against a million open lines built from
/// their records. A copy of the state starts without it.
#[derive(Debug, Default)]
pub(crate) struct LinesCache(Mutex<LinesTable>);

#[derive(Debug, Default)]
struct LinesTable {
    table: Option<RecordBatch>,
    /// Positions changed since `table` was built, in any order, repeats allowed.
    changed: Vec<usize>,
    /// Too many changes to be worth patching: the next snapshot builds the table whole.
    whole: bool,
    /// Snapshots that patched the last table (for tests: the cache is used at all).
    patched: u64,
}

impl Clone for LinesCache {
    fn clone(&self) -> Self {
        LinesCache::default()
    }
}

impl LinesCache {
    /// How many snapshots patched the last table instead of building it whole.
    #[cfg(test)]
    pub(crate) fn patched(&self) -> u64 {
        self.0.lock().map_or(0, |t| t.patched)
    }

    /// The row at `index` of `State::lines` changed. No lock: the state is borrowed mutably.
    pub(crate) fn changed(&mut self, index: usize) {
        let t = self
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(table) = &t.table else {
            return;
        };
        if t.whole {
            return;
        }
        t.changed.push(index);
        if t.changed.len() > table.num_rows() / 4 + 1024 {
            t.whole = true;
            t.changed = Vec::new();
        }
    }
}

/// The `po_lines` table, from the last snapshot's where it can be.
fn po_lines(s: &State) -> RecordBatch {
    let n = s.lines.len();
    let all = || po_lines_of(n, s.lines.iter().map(|(k, l)| (k, &**l)));
    // A poisoned lock only means a panic elsewhere mid-snapshot: build without the cache.
    let Ok(mut cache) = s.lines_table.0.lock() else {
        return all();
    };
    let mut changed = std::mem::take(&mut cache.changed);
    let mut patched = cache.patched;
    let table = match cache.table.take() {
        Some(last) if !cache.whole => match patch_lines(s, &last, &mut changed) {
            Some(t) => {
                patched += 1;
                t
            }
            None => all(),
        },
        _ => all(),
    };
    changed.clear();
    *cache = LinesTable {
        table: Some(table.clone()),
        changed,
        whole: false,
        patched,
    };
    table
}

/// `last` with the `changed` rows built again from `s.lines`, as concatenated slices: runs of
/// unchanged rows from `last`, runs of changed ones built fresh. None when `last` lacks a row
/// that did not change (an untracked change: a bug, the table is then built whole).
fn patch_lines(s: &State, last: &RecordBatch, changed: &mut Vec<usize>) -> Option<RecordBatch> {
    let n = s.lines.len();
    changed.retain(|i| *i < n);
    changed.sort_unstable();
    changed.dedup();
    if changed.is_empty() && last.num_rows() == n {
        return Some(last.clone());
    }
    let fresh = po_lines_of(
        changed.len(),
        changed
            .iter()
            .filter_map(|i| s.lines.get_index(*i))
            .map(|(k, l)| (k, &**l)),
    );
    if fresh.num_rows() != changed.len() {
        return None;
    }
    let kept =
        |from: usize, to: usize| (to <= last.num_rows()).then(|| last.slice(from, to - from));
    let mut parts = Vec::new();
    let (mut next, mut c) = (0, 0);
    while c < changed.len() {
        let start = changed[c];
        if start > next {
            parts.push(kept(next, start)?);
        }
        let mut end = c + 1;
        while end < changed.len() && changed[end] == changed[end - 1] + 1 {
            end += 1;
        }
        parts.push(fresh.slice(c, end - c));
        next = changed[end - 1] + 1;
        c = end;
    }
    if next < n {
        parts.push(kept(next, n)?);
    }
    match concat_batches(&last.schema(), &parts) {
        Ok(b) => Some(b),
        Err(e) => {
            // Same schema on every side: a bug, not data. Rebuild rather than fail.
            tracing::error!(error = %e, "Could not patch the po_lines table.");
            None
        }
    }
}

/// The `deliveries` table of `rows` (`n` of them), in one pass.
fn deliveries_of<'a>(n: usize, rows: impl Iterator<Item = &'a Delivery>) -> RecordBatch {
    let [mut po, mut supplier, mut part, mut site] = [(); 4].map(|_| str_builder(n));
    let [mut quantity, mut received, mut price] = [(); 3].map(|_| Float64Builder::with_capacity(n));
    let [mut line, mut reschedules] = [(); 2].map(|_| Int64Builder::with_capacity(n));
    let [mut promised, mut original] = [(); 2].map(|_| Date32Builder::with_capacity(n));
    let [mut due, mut received_at] = [(); 2].map(|_| stamp_builder(n));
    for x in rows {
        po.append_value(&x.po);
        line.append_value(x.line);
        supplier.append_value(&x.supplier);
        part.append_value(&x.part);
        site.append_value(&x.site);
        quantity.append_value(x.quantity);
        received.append_value(x.received_quantity);
        price.append_value(x.unit_price);
        promised.append_value(x.promised_date);
        original.append_value(x.original_promised_date);
        due.append_value(due_at(x.promised_date));
        received_at.append_value(x.received_at);
        reschedules.append_value(i64::from(x.reschedule_count));
    }
    batch(
        1,
        vec![
            done(&mut po),
            done(&mut line),
            done(&mut supplier),
            done(&mut part),
            done(&mut site),
            done(&mut quantity),
            done(&mut received),
            done(&mut price),
            done(&mut promised),
            done(&mut original),
            done(&mut due),
            done(&mut received_at),
            done(&mut reschedules),
        ],
    )
}

/// The last snapshot's `deliveries` table and the sequence number of its first row (see
/// `State::deliveries_evicted`). Deliveries join the window at the back and leave it at the
/// front, so the next snapshot slices off the rows that left, builds only the rows that
/// joined, and concatenates: a copy of Arrow buffers instead of every row built again from
/// its record (with 1 M deliveries in the window, most of a snapshot's time). A copy of the
/// state starts without it.
#[derive(Debug, Default)]
pub(crate) struct DeliveriesCache(Mutex<Option<(u64, RecordBatch)>>);

impl Clone for DeliveriesCache {
    fn clone(&self) -> Self {
        DeliveriesCache::default()
    }
}

/// The `deliveries` table, from the last snapshot's where it can be.
fn deliveries(s: &State) -> RecordBatch {
    let all = || deliveries_of(s.deliveries.len(), s.deliveries.iter());
    // A poisoned lock only means a panic elsewhere mid-snapshot: build without the cache.
    let Ok(mut cache) = s.deliveries_table.0.lock() else {
        return all();
    };
    let first = s.deliveries_evicted;
    let end = first + s.deliveries.len() as u64;
    let table = match cache.take() {
        Some((from, cached)) => {
            let cached_end = from + cached.num_rows() as u64;
            if from <= first && first <= cached_end && cached_end <= end {
                // Both fit in usize: they are at most the cached table's and the window's length.
                let kept = cached.slice((first - from) as usize, (cached_end - first) as usize);
                let joined = (cached_end - first) as usize;
                let fresh =
                    deliveries_of(s.deliveries.len() - joined, s.deliveries.range(joined..));
                match (kept.num_rows(), fresh.num_rows()) {
                    (_, 0) => kept,
                    (0, _) => fresh,
                    _ => concat_batches(&kept.schema(), [&kept, &fresh]).unwrap_or_else(|e| {
                        // Same schema on both sides: a bug, not data. Rebuild rather than fail.
                        tracing::error!(error = %e, "Could not extend the deliveries table.");
                        all()
                    }),
                }
            } else {
                all()
            }
        }
        None => all(),
    };
    *cache = Some((first, table.clone()));
    table
}

/// Build every table from the state.
pub(super) fn snapshot(s: &State) -> Tables {
    let po_lines = po_lines(s);
    let deliveries = deliveries(s);
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
