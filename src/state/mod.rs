//! Live supply-chain state, updated from decoded event batches.
//!
//! In: [`RecordBatch`]es of valid events (in [`event_schema`](crate::events::event_schema))
//! and the event-time watermark. Out: [`Tables`], an Arrow snapshot of the state that the
//! indicator SQL queries (see [`tables`] for the table schemas).
//!
//! What is kept: open PO lines, in-flight shipments and their open stops, inventory positions
//! (all live, bounded by the business itself), and a rolling window in event time of completed
//! deliveries, reschedules and completed stops. Older completed records age out as the
//! watermark moves, so the cost of an evaluation depends on live state and the window, not on
//! the length of history. Applying is idempotent by `event_id`: a redelivered event is
//! counted as a duplicate and changes nothing.

pub mod buffer;
pub mod checkpoint;
pub mod tables;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use indexmap::map::raw_entry_v1::RawEntryMut;
use indexmap::map::RawEntryApiV1;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use arrow::array::{
    Array, AsArray, Date32Array, Float64Array, Int64Array, ListArray, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow::record_batch::RecordBatch;

use crate::events::{col, EventKind};

pub use buffer::EventBuffer;
pub use tables::Tables;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// How long completed records and de-duplication ids are kept, in event time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// Completed deliveries, reschedules and stops older than this (before the watermark)
    /// are dropped; it bounds the longest indicator window and baseline.
    pub window_ms: i64,
    /// Event ids are remembered this long for de-duplication.
    pub dedup_ms: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            window_ms: 90 * DAY_MS,
            dedup_ms: 7 * DAY_MS,
        }
    }
}

/// (po, line): the identity of a purchase-order line.
pub type LineKey = (Box<str>, i64);

/// A borrowed [`LineKey`], to look a line up without allocating its key. Hashes as the key
/// does (a tuple hashes its fields in order, and `&str` hashes as `str`).
#[derive(Hash)]
pub(crate) struct LineRef<'a>(pub &'a str, pub i64);

impl indexmap::Equivalent<LineKey> for LineRef<'_> {
    fn equivalent(&self, key: &LineKey) -> bool {
        self.1 == key.1 && self.0 == &*key.0
    }
}

/// An optional event time in 8 bytes (`i64::MIN` stands for none, an instant no event can
/// have), written to checkpoints exactly as an `Option<i64>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptTime(i64);

impl OptTime {
    pub const NONE: OptTime = OptTime(i64::MIN);

    pub fn some(t: i64) -> Self {
        // i64::MIN is 292 million years before the epoch: saturate rather than mean "none".
        OptTime(t.max(i64::MIN + 1))
    }

    pub fn get(self) -> Option<i64> {
        (self.0 != i64::MIN).then_some(self.0)
    }
}

impl Default for OptTime {
    fn default() -> Self {
        Self::NONE
    }
}

impl Serialize for OptTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for OptTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.map_or(Self::NONE, Self::some))
    }
}

/// An open purchase-order line. Its layout is kept to 128 bytes (a million open lines is a
/// normal size): 32-bit counts, an 8-byte optional time, a shared shipment id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseLine {
    pub supplier: Arc<str>,
    pub part: Arc<str>,
    pub site: Arc<str>,
    pub quantity: f64,
    pub received_quantity: f64,
    pub unit_price: f64,
    /// Days since the epoch.
    pub order_date: i32,
    /// The supplier's current promise (days since the epoch); due by its end.
    pub promised_date: i32,
    /// The first promise, kept to measure total slip.
    pub original_promised_date: i32,
    pub confirmed: bool,
    pub backordered: bool,
    /// Encoded as a varint like the i64 it once was: checkpoints read either way.
    pub reschedule_count: i32,
    /// The shipment carrying it: one copy of the id shared by all the shipment's lines.
    pub shipment: Option<Arc<str>>,
    pub created_at: i64,
    /// When the carrier delivered the line's shipment: the goods are at the site and only the
    /// goods receipt is pending, so the line must not look unshipped to the lateness model.
    pub delivered_at: OptTime,
}

/// A completed delivery: a PO line whose received quantity reached the ordered quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub po: String,
    pub line: i64,
    pub supplier: Arc<str>,
    pub part: Arc<str>,
    pub site: Arc<str>,
    pub quantity: f64,
    pub received_quantity: f64,
    pub unit_price: f64,
    pub promised_date: i32,
    pub original_promised_date: i32,
    pub received_at: i64,
    pub reschedule_count: i32,
}

/// A supplier moving its promise or back-ordering a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reschedule {
    pub event_time: i64,
    pub po: String,
    pub line: i64,
    pub supplier: Arc<str>,
    pub part: Arc<str>,
    pub status: Arc<str>,
    pub previous_promised_date: Option<i32>,
    pub promised_date: Option<i32>,
}

/// An in-flight shipment (advance ship notice seen, not yet delivered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    pub supplier: String,
    pub origin: String,
    pub destination: String,
    pub carrier: String,
    pub mode: String,
    pub shipped_at: i64,
    pub eta: i64,
    pub first_eta: i64,
    pub eta_updates: i64,
    pub status: String,
    pub location: String,
    pub last_event_at: i64,
    pub held_since: Option<i64>,
    pub reason_code: Option<String>,
    /// The stop the shipment is at: (location, arrived at).
    pub open_stop: Option<(String, i64)>,
    pub lines: Vec<LineKey>,
}

/// A completed stop of a shipment at a location: the dwell is `departed_at - arrived_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    pub shipment: String,
    pub supplier: String,
    pub location: String,
    pub arrived_at: i64,
    pub departed_at: i64,
}

/// Stock of a part at a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub on_hand: f64,
    pub daily_demand: f64,
    pub updated_at: i64,
}

/// What one [`State::apply`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ApplyStats {
    /// Events applied, per kind.
    pub applied: HashMap<EventKind, u64>,
    /// Events skipped because their event id was seen before.
    pub duplicates: u64,
    /// Events referring to a PO line or shipment chainwatch does not know (e.g. a receipt
    /// for a line created before chainwatch started); applied as far as possible.
    pub orphans: u64,
}

/// What one supplier feed has sent since chainwatch started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedActivity {
    /// The supplier the feed belongs to.
    pub supplier: String,
    /// Records read from its messages (mapped, skipped and rejected).
    pub records: u64,
    /// Canonical events its records were mapped to.
    pub events: u64,
    /// Records (and events) rejected.
    pub rejected: u64,
    /// The latest event time of an event it delivered.
    pub last_event_at: Option<i64>,
    /// The watermark when its first record arrived.
    pub first_seen_at: i64,
}

/// One micro-batch's worth of a feed's records, as ingest read them. Counted when read (a
/// record may be rejected and have no event time); the events a feed delivered are counted
/// in event time, as they are applied (their `source` is the feed's name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeedTally {
    pub feed: String,
    pub supplier: String,
    pub records: u64,
    pub rejected: u64,
}

/// The whole live state. Maps that become snapshot rows keep insertion order (indexmap), so a
/// snapshot lists rows in an order that depends only on the events applied: the same after a
/// restore from a checkpoint as in a run that never stopped.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct State {
    retention: Retention,
    /// Boxed: the map's entry array grows ahead of its length (up to 1.8x at 1M lines), and
    /// that slack then costs a pointer per line instead of a whole line.
    pub(crate) lines: IndexMap<LineKey, Box<PurchaseLine>>,
    /// Joined at the back as lines complete, left at the front only in [`State::advance`]
    /// (which counts them in `deliveries_evicted`): the snapshot's cache relies on both.
    pub(crate) deliveries: VecDeque<Delivery>,
    pub(crate) reschedules: VecDeque<Reschedule>,
    pub(crate) shipments: IndexMap<String, Shipment>,
    pub(crate) stops: VecDeque<Stop>,
    pub(crate) inventory: IndexMap<(String, String), Position>,
    /// Lines a shipment notice named before the line itself was applied (topics are not
    /// ordered with each other): the shipment is linked when the line is created.
    awaiting_line: IndexMap<LineKey, Arc<str>>,
    /// What each supplier feed has sent (records, rejects, latest event time), by feed name.
    pub(crate) feeds: BTreeMap<String, FeedActivity>,
    /// Event ids seen, as 128-bit hashes (a fixed 16 bytes however long the id; a collision
    /// within the retention is not a practical risk), with the event time they were seen at.
    /// An id counts as seen while its time is within the de-duplication retention of the
    /// watermark; older ones are swept out in bulk (a queue of ids in time order to expire
    /// them one by one cost 32 bytes per event more).
    seen: HashMap<IdHash, i64, BuildHasherDefault<PreHashed>>,
    /// Always empty: kept so the checkpoint format (positional) stays the same. A checkpoint
    /// of an older version fills it; it is cleared on the first step.
    legacy_seen_order: VecDeque<(i64, u128)>,
    /// The watermark at the last sweep of `seen`.
    #[serde(skip)]
    seen_swept: i64,
    watermark: i64,
    /// Events applied since start (duplicates excluded).
    applied: u64,
    /// Supplier, part, site and status names, each held once however many records name it.
    #[serde(skip)]
    names: Names,
    /// Deliveries taken off the front of `deliveries` since this state was built or restored:
    /// `deliveries[i]` is the `deliveries_evicted + i`-th delivery ever in the window.
    #[serde(skip)]
    deliveries_evicted: u64,
    /// The last snapshot's `deliveries` table, for the next snapshot to build on.
    #[serde(skip)]
    deliveries_table: tables::DeliveriesCache,
    /// The last snapshot's `po_lines` table and the rows changed since: every change to
    /// `lines` (a line set, added or removed) tells it the position.
    #[serde(skip)]
    lines_table: tables::LinesCache,
}

/// An interner for the names records repeat: a line holds a pointer to a shared name
/// instead of its own copy.
#[derive(Debug, Default, Clone)]
struct Names {
    set: HashSet<Arc<str>>,
    /// Size after the last sweep: the next one runs when the set has doubled.
    swept: usize,
}

impl Names {
    /// The shared copy of `name`.
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(a) = self.set.get(name) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(name);
        self.set.insert(a.clone());
        a
    }

    /// Drop the names no record holds any more (only once the set doubled: amortised, and a
    /// flood of one-off ids cannot grow it for ever).
    fn sweep(&mut self) {
        if self.set.len() > 2 * self.swept + 1024 {
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.swept = self.set.len();
        }
    }
}

/// The de-duplication key of an event id: its 128-bit hash as two u64s, 8-aligned where a
/// u128 is 16-aligned (a map entry with its time is then 24 bytes, not 32). Written to
/// checkpoints as the u128 it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdHash([u64; 2]);

impl From<u128> for IdHash {
    fn from(v: u128) -> Self {
        IdHash([v as u64, (v >> 64) as u64])
    }
}

impl From<IdHash> for u128 {
    fn from(h: IdHash) -> Self {
        u128::from(h.0[0]) | (u128::from(h.0[1]) << 64)
    }
}

impl std::hash::Hash for IdHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a hash: its low half is the bucket hash (see PreHashed).
        state.write_u64(self.0[0]);
    }
}

impl Serialize for IdHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        u128::from(*self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for IdHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u128::deserialize(d).map(IdHash::from)
    }
}

/// The de-duplication key of an event id.
fn event_id_hash(id: &str) -> IdHash {
    IdHash::from(twox_hash::XxHash3_128::oneshot(id.as_bytes()))
}

/// A hasher for keys that are already hashes: passes their low 64 bits through.
#[derive(Default)]
pub(crate) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only IdHash keys are hashed with it (write_u64); fold anything else in anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Typed views of the columns of one decoded batch.
struct Cols<'a> {
    event_id: &'a StringArray,
    source: &'a StringArray,
    kind: &'a StringArray,
    event_time: &'a TimestampMillisecondArray,
    po: &'a StringArray,
    line: &'a Int64Array,
    supplier: &'a StringArray,
    part: &'a StringArray,
    site: &'a StringArray,
    quantity: &'a Float64Array,
    unit_price: &'a Float64Array,
    order_date: &'a Date32Array,
    promised_date: &'a Date32Array,
    status: &'a StringArray,
    received_at: &'a TimestampMillisecondArray,
    on_hand: &'a Float64Array,
    daily_demand: &'a Float64Array,
    movement: &'a StringArray,
    shipment: &'a StringArray,
    po_lines: &'a ListArray,
    origin: &'a StringArray,
    destination: &'a StringArray,
    carrier: &'a StringArray,
    mode: &'a StringArray,
    shipped_at: &'a TimestampMillisecondArray,
    eta: &'a TimestampMillisecondArray,
    location: &'a StringArray,
    reason_code: &'a StringArray,
}

impl<'a> Cols<'a> {
    fn new(b: &'a RecordBatch) -> Self {
        let s = |i: usize| b.column(i).as_string::<i32>();
        let t = |i: usize| b.column(i).as_primitive();
        let f = |i: usize| b.column(i).as_primitive();
        Cols {
            event_id: s(col::EVENT_ID),
            source: s(col::SOURCE),
            kind: s(col::KIND),
            event_time: t(col::EVENT_TIME),
            po: s(col::PO),
            line: b.column(col::LINE).as_primitive(),
            supplier: s(col::SUPPLIER),
            part: s(col::PART),
            site: s(col::SITE),
            quantity: f(col::QUANTITY),
            unit_price: f(col::UNIT_PRICE),
            order_date: b.column(col::ORDER_DATE).as_primitive(),
            promised_date: b.column(col::PROMISED_DATE).as_primitive(),
            status: s(col::STATUS),
            received_at: t(col::RECEIVED_AT),
            on_hand: f(col::ON_HAND),
            daily_demand: f(col::DAILY_DEMAND),
            movement: s(col::MOVEMENT),
            shipment: s(col::SHIPMENT),
            po_lines: b.column(col::PO_LINES).as_list::<i32>(),
            origin: s(col::ORIGIN),
            destination: s(col::DESTINATION),
            carrier: s(col::CARRIER),
            mode: s(col::MODE),
            shipped_at: t(col::SHIPPED_AT),
            eta: t(col::ETA),
            location: s(col::LOCATION),
            reason_code: s(col::REASON_CODE),
        }
    }
}

fn opt_str(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_string())
}

impl State {
    pub fn new(retention: Retention) -> Self {
        State {
            retention,
            ..State::default()
        }
    }

    /// Keep completed records and event ids this long from now on (a restored state takes the
    /// configuration's retention).
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    /// Every feed's activity, by feed name.
    pub fn feeds(&self) -> impl Iterator<Item = (&str, &FeedActivity)> {
        self.feeds.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The event-time watermark the state has been aged to.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Events applied since start (duplicates excluded).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn open_lines(&self) -> usize {
        self.lines.len()
    }

    pub fn in_flight_shipments(&self) -> usize {
        self.shipments.len()
    }

    pub fn positions(&self) -> usize {
        self.inventory.len()
    }

    pub fn window_records(&self) -> usize {
        self.deliveries.len() + self.reschedules.len() + self.stops.len()
    }

    /// Add a micro-batch's feed activity.
    pub fn record_feeds(&mut self, tallies: &[FeedTally]) {
        for t in tallies {
            let a = self
                .feeds
                .entry(t.feed.clone())
                .or_insert_with(|| FeedActivity {
                    supplier: t.supplier.clone(),
                    records: 0,
                    events: 0,
                    rejected: 0,
                    last_event_at: None,
                    first_seen_at: self.watermark,
                });
            a.supplier.clone_from(&t.supplier);
            a.records += t.records;
            a.rejected += t.rejected;
        }
    }

    /// What a feed has sent so far.
    pub fn feed_activity(&self, feed: &str) -> Option<&FeedActivity> {
        self.feeds.get(feed)
    }

    /// Forget the activity of feeds no longer defined.
    pub fn retain_feeds(&mut self, keep: impl Fn(&str) -> bool) {
        self.feeds.retain(|k, _| keep(k));
    }

    /// Apply a batch of validated events (rows must have passed
    /// [`EventDecoder`](crate::ingest::decode::EventDecoder)'s checks), then age the window
    /// to `watermark`.
    pub fn apply(&mut self, batch: &RecordBatch, watermark: i64) -> ApplyStats {
        let mut stats = ApplyStats::default();
        let c = Cols::new(batch);
        for i in 0..batch.num_rows() {
            let t = c.event_time.value(i);
            let id = event_id_hash(c.event_id.value(i));
            let horizon = self.watermark.saturating_sub(self.retention.dedup_ms);
            if self.seen.get(&id).is_some_and(|at| *at >= horizon) {
                stats.duplicates += 1;
                continue;
            }
            let Ok(kind) = c.kind.value(i).parse::<EventKind>() else {
                continue; // validated upstream; unreachable for decoder output
            };
            self.seen.insert(id, t);
            // A supplier feed's events carry the feed's name as their source: its activity
            // in event time, counted as the events are applied.
            if let Some(a) = self.feeds.get_mut(c.source.value(i)) {
                a.events += 1;
                a.last_event_at = a.last_event_at.max(Some(t));
            }
            let known = self.apply_row(kind, &c, i, t);
            if !known {
                stats.orphans += 1;
            }
            *stats.applied.entry(kind).or_default() += 1;
            self.applied += 1;
        }
        self.advance(watermark);
        stats
    }

    /// Apply one row; returns false when it referred to something unknown.
    fn apply_row(&mut self, kind: EventKind, c: &Cols, i: usize, t: i64) -> bool {
        let key = LineRef(c.po.value(i), c.line.value(i));
        match kind {
            EventKind::PoLineCreated | EventKind::PoLineChanged => {
                let promised = c.promised_date.value(i);
                // Looked up by the borrowed key, hashed once: only a new line allocates its key.
                let (index, line) = match self.lines.raw_entry_mut_v1().from_key(&key) {
                    RawEntryMut::Occupied(e) => (e.index(), e.into_mut()),
                    RawEntryMut::Vacant(e) => {
                        let index = e.index();
                        let new = Box::new(PurchaseLine {
                            supplier: Arc::from(""),
                            part: Arc::from(""),
                            site: Arc::from(""),
                            quantity: 0.0,
                            received_quantity: 0.0,
                            unit_price: 0.0,
                            order_date: 0,
                            promised_date: promised,
                            original_promised_date: promised,
                            confirmed: false,
                            backordered: false,
                            reschedule_count: 0,
                            shipment: None,
                            created_at: t,
                            delivered_at: OptTime::NONE,
                        });
                        (index, e.insert((key.0.into(), key.1), new).1)
                    }
                };
                self.lines_table.changed(index);
                if line.shipment.is_none() && !self.awaiting_line.is_empty() {
                    line.shipment = self.awaiting_line.swap_remove(&key);
                }
                line.supplier = self.names.get(c.supplier.value(i));
                line.part = self.names.get(c.part.value(i));
                line.site = self.names.get(c.site.value(i));
                line.quantity = c.quantity.value(i);
                line.unit_price = c.unit_price.value(i);
                line.order_date = c.order_date.value(i);
                line.promised_date = promised;
                true
            }
            EventKind::PoLineCancelled => match self.lines.swap_remove_full(&key) {
                Some((index, ..)) => {
                    // The last line moved into its place.
                    self.lines_table.changed(index);
                    true
                }
                None => false,
            },
            EventKind::SupplierConfirmation => {
                let Some((index, _, line)) = self.lines.get_full_mut(&key) else {
                    return false;
                };
                self.lines_table.changed(index);
                let status = c.status.value(i);
                let previous = line.promised_date;
                match status {
                    "accepted" => {
                        line.confirmed = true;
                        line.backordered = false;
                        return true;
                    }
                    "rescheduled" => {
                        line.confirmed = true;
                        line.promised_date = c.promised_date.value(i);
                        line.reschedule_count += 1;
                    }
                    _ => line.backordered = true,
                }
                let new_date = c
                    .promised_date
                    .is_valid(i)
                    .then(|| c.promised_date.value(i));
                self.reschedules.push_back(Reschedule {
                    event_time: t,
                    po: c.po.value(i).to_string(),
                    line: c.line.value(i),
                    supplier: line.supplier.clone(),
                    part: line.part.clone(),
                    status: self.names.get(status),
                    previous_promised_date: Some(previous),
                    promised_date: new_date,
                });
                true
            }
            EventKind::GoodsReceipt => {
                let Some((index, _, line)) = self.lines.get_full_mut(&key) else {
                    return false;
                };
                // Received more, or complete and removed (the last line moved into its place).
                self.lines_table.changed(index);
                line.received_quantity += c.quantity.value(i);
                // A line is complete when at most 2% is missing (split shipments, counting noise).
                if line.received_quantity >= line.quantity * 0.98 {
                    let (k, line) = self
                        .lines
                        .swap_remove_index(index)
                        .expect("present: just looked up");
                    self.deliveries.push_back(Delivery {
                        po: k.0.into(),
                        line: k.1,
                        supplier: line.supplier,
                        part: line.part,
                        site: line.site,
                        quantity: line.quantity,
                        received_quantity: line.received_quantity,
                        unit_price: line.unit_price,
                        promised_date: line.promised_date,
                        original_promised_date: line.original_promised_date,
                        received_at: c.received_at.value(i),
                        reschedule_count: line.reschedule_count,
                    });
                }
                true
            }
            EventKind::InventoryPosition => {
                self.inventory.insert(
                    (c.site.value(i).to_string(), c.part.value(i).to_string()),
                    Position {
                        on_hand: c.on_hand.value(i),
                        daily_demand: c.daily_demand.value(i),
                        updated_at: t,
                    },
                );
                true
            }
            EventKind::StockMovement => {
                let k = (c.site.value(i).to_string(), c.part.value(i).to_string());
                let Some(p) = self.inventory.get_mut(&k) else {
                    return false;
                };
                let q = c.quantity.value(i);
                p.on_hand = match c.movement.value(i) {
                    "receipt" => p.on_hand + q,
                    _ => (p.on_hand - q).max(0.0),
                };
                p.updated_at = t;
                true
            }
            EventKind::ShipmentCreated => self.create_shipment(c, i, t),
            EventKind::Milestone => self.milestone(c, i, t),
            EventKind::EtaUpdate => {
                let Some(s) = self.shipments.get_mut(c.shipment.value(i)) else {
                    return false;
                };
                s.eta = c.eta.value(i);
                s.eta_updates += 1;
                s.last_event_at = t;
                if let Some(r) = opt_str(c.reason_code, i) {
                    s.reason_code = Some(r);
                }
                true
            }
            EventKind::Heartbeat => true,
        }
    }

    fn create_shipment(&mut self, c: &Cols, i: usize, t: i64) -> bool {
        let id = c.shipment.value(i).to_string();
        let shared: Arc<str> = Arc::from(id.as_str());
        let refs = c.po_lines.value(i);
        let refs: &StructArray = refs.as_struct();
        let (pos, nums) = (
            refs.column(0).as_string::<i32>(),
            refs.column(1).as_primitive::<arrow::datatypes::Int64Type>(),
        );
        let mut lines = Vec::with_capacity(refs.len());
        let mut all_known = true;
        for j in 0..refs.len() {
            if pos.is_null(j) || nums.is_null(j) {
                continue;
            }
            let k: LineKey = (pos.value(j).into(), nums.value(j));
            match self.lines.get_full_mut(&k) {
                Some((index, _, l)) => {
                    l.shipment = Some(shared.clone());
                    self.lines_table.changed(index);
                }
                None => {
                    all_known = false;
                    self.awaiting_line.insert(k.clone(), shared.clone());
                }
            }
            lines.push(k);
        }
        let origin = c.origin.value(i).to_string();
        self.shipments.insert(
            id,
            Shipment {
                supplier: c.supplier.value(i).to_string(),
                destination: c.destination.value(i).to_string(),
                carrier: c.carrier.value(i).to_string(),
                mode: c.mode.value(i).to_string(),
                shipped_at: c.shipped_at.value(i),
                eta: c.eta.value(i),
                first_eta: c.eta.value(i),
                eta_updates: 0,
                status: "created".into(),
                location: origin.clone(),
                origin,
                last_event_at: t,
                held_since: None,
                reason_code: None,
                open_stop: None,
                lines,
            },
        );
        all_known
    }

    fn milestone(&mut self, c: &Cols, i: usize, t: i64) -> bool {
        let id = c.shipment.value(i);
        let Some(s) = self.shipments.get_mut(id) else {
            return false;
        };
        let status = c.status.value(i);
        let location = c.location.value(i);
        s.last_event_at = s.last_event_at.max(t);
        s.location = location.to_string();
        if let Some(r) = opt_str(c.reason_code, i) {
            s.reason_code = Some(r);
        }
        match status {
            "held" => {
                s.held_since.get_or_insert(t);
            }
            "delayed" => {}
            _ => s.held_since = None,
        }
        s.status = status.to_string();
        match status {
            "arrived" => s.open_stop = Some((location.to_string(), t)),
            "departed" => {
                if let Some((at, arrived)) = s.open_stop.take() {
                    if at == location {
                        self.stops.push_back(Stop {
                            shipment: id.to_string(),
                            supplier: s.supplier.clone(),
                            location: at,
                            arrived_at: arrived,
                            departed_at: t,
                        });
                    }
                }
            }
            "delivered" => {
                let s = self
                    .shipments
                    .swap_remove(id)
                    .expect("present: just looked up");
                for k in &s.lines {
                    self.awaiting_line.swap_remove(k);
                    if let Some((index, _, l)) = self.lines.get_full_mut(k) {
                        l.shipment = None;
                        l.delivered_at = OptTime::some(t);
                        self.lines_table.changed(index);
                    }
                }
            }
            _ => {}
        }
        true
    }

    /// Move the watermark forward and drop what fell out of the window.
    pub fn advance(&mut self, watermark: i64) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        let horizon = watermark - self.retention.window_ms;
        while self
            .deliveries
            .front()
            .is_some_and(|d| d.received_at < horizon)
        {
            self.deliveries.pop_front();
            self.deliveries_evicted += 1;
        }
        while self
            .reschedules
            .front()
            .is_some_and(|r| r.event_time < horizon)
        {
            self.reschedules.pop_front();
        }
        while self.stops.front().is_some_and(|s| s.departed_at < horizon) {
            self.stops.pop_front();
        }
        self.names.sweep();
        // Every quarter of the retention: ids are kept up to 1.25 times the retention.
        if watermark.saturating_sub(self.seen_swept) >= self.retention.dedup_ms / 4 {
            let dedup_horizon = watermark.saturating_sub(self.retention.dedup_ms);
            self.seen.retain(|_, at| *at >= dedup_horizon);
            self.seen_swept = watermark;
            self.legacy_seen_order = VecDeque::new();
        }
    }

    /// Share the names of records decoded from a checkpoint (each holds its own copy then).
    pub fn share_names(&mut self) {
        let names = &mut self.names;
        // Shipment ids are shared by their lines only: not kept in the interner afterwards.
        let mut shipments: HashSet<Arc<str>> = HashSet::new();
        let mut shared = |id: &mut Arc<str>| match shipments.get(&**id) {
            Some(a) => *id = a.clone(),
            None => {
                shipments.insert(id.clone());
            }
        };
        for l in self.lines.values_mut() {
            l.supplier = names.get(&l.supplier);
            l.part = names.get(&l.part);
            l.site = names.get(&l.site);
            if let Some(id) = &mut l.shipment {
                shared(id);
            }
        }
        for id in self.awaiting_line.values_mut() {
            shared(id);
        }
        for d in &mut self.deliveries {
            d.supplier = names.get(&d.supplier);
            d.part = names.get(&d.part);
            d.site = names.get(&d.site);
        }
        for r in &mut self.reschedules {
            r.supplier = names.get(&r.supplier);
            r.part = names.get(&r.part);
            r.status = names.get(&r.status);
        }
        names.swept = names.set.len();
    }

    /// An Arrow snapshot of the state for the indicator queries.
    pub fn snapshot(&self) -> Tables {
        tables::snapshot(self)
    }
}

#[cfg(test)]
pub(crate) mod tests;
