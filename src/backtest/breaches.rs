//! Breaches found in replayed history: the supply failures alerts are meant to warn of.
//!
//! In: during a replay, each applied slice of events (shipments, milestones, inventory) and each
//! delivery the state completes; at the end, the PO lines still open. Out: [`Breach`]es, sorted
//! by time:
//! - [`BreachKind::LateDelivery`]: a PO line received more than one day after the end of its
//!   promised day (the `on_time_ratio` definition of `supplier_delivery.sql`, against the
//!   supplier's current promise), or still open at the end of the data that late. Breach time:
//!   the end of the promised day + 1 day, when the line became late. Key: supplier, po, line,
//!   part, site, and, when the line travelled in a shipment, lane / origin / destination and every location
//!   the shipment reported a milestone at.
//! - [`BreachKind::StockOut`]: `on_hand` of a site and part reaching zero or below (an
//!   `inventory_position`, or a `stock_movement` issue that empties it). Breach time: the
//!   event's time. Key: site, part. Staying at zero is one breach; a new one needs stock first.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::{Array, AsArray, RecordBatch, StructArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use serde::Serialize;

use crate::events::col;
use crate::state::{Delivery, LineKey, PurchaseLine, DAY_MS};

/// The kinds of breach a rule can be scored against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreachKind {
    /// A PO line delivered (or still open) more than a day past its promised day.
    LateDelivery,
    /// A part at a site out of stock.
    StockOut,
}

impl BreachKind {
    /// `late_delivery` or `stock_out`, as in a rule's `backtest_breach` label.
    pub fn as_str(self) -> &'static str {
        match self {
            BreachKind::LateDelivery => "late_delivery",
            BreachKind::StockOut => "stock_out",
        }
    }

    /// Parses `late_delivery` or `stock_out`.
    pub fn parse(text: &str) -> Option<BreachKind> {
        match text {
            "late_delivery" => Some(BreachKind::LateDelivery),
            "stock_out" => Some(BreachKind::StockOut),
            _ => None,
        }
    }
}

/// One breach.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    /// What failed.
    pub kind: BreachKind,
    /// When it failed (event-time ms).
    #[serde(serialize_with = "super::ser::time")]
    pub at: i64,
    /// What failed, as alert-label names: supplier, po, line, part, site, lane, origin,
    /// destination.
    pub key: BTreeMap<String, String>,
    /// Locations the shipment carrying a late line reported at (matches `location` labels).
    pub locations: Vec<String>,
    /// One line for people: which line or position, and how late.
    pub detail: String,
    /// A late line that was still open when the data ended.
    pub open: bool,
}

/// The route of a shipment, to key late deliveries by lane and location.
#[derive(Debug, Default)]
struct Route {
    origin: String,
    destination: String,
    locations: BTreeSet<String>,
}

/// Collects breaches while a replay runs.
#[derive(Debug, Default)]
pub(crate) struct BreachFinder {
    /// The shipment that (last) carried each PO line.
    line_shipment: HashMap<LineKey, String>,
    routes: HashMap<String, Route>,
    /// Stock of each (site, part), following the state's own rules.
    on_hand: HashMap<(String, String), f64>,
    found: Vec<Breach>,
}

impl BreachFinder {
    /// Looks at a slice of events about to be applied, in event-time order.
    pub fn observe_events(&mut self, batch: &RecordBatch) {
        let s = |i: usize| batch.column(i).as_string::<i32>();
        let (kind, site, part, movement) =
            (s(col::KIND), s(col::SITE), s(col::PART), s(col::MOVEMENT));
        let (shipment, origin, destination, location) = (
            s(col::SHIPMENT),
            s(col::ORIGIN),
            s(col::DESTINATION),
            s(col::LOCATION),
        );
        let f = |i: usize| batch.column(i).as_primitive::<Float64Type>();
        let (on_hand, quantity) = (f(col::ON_HAND), f(col::QUANTITY));
        let times = batch
            .column(col::EVENT_TIME)
            .as_primitive::<TimestampMillisecondType>();
        for i in 0..batch.num_rows() {
            match kind.value(i) {
                "shipment_created" => {
                    let id = shipment.value(i).to_string();
                    let refs = batch.column(col::PO_LINES).as_list::<i32>().value(i);
                    let refs: &StructArray = refs.as_struct();
                    let (pos, nums) = (
                        refs.column(0).as_string::<i32>(),
                        refs.column(1).as_primitive::<Int64Type>(),
                    );
                    for j in 0..refs.len() {
                        if pos.is_valid(j) && nums.is_valid(j) {
                            let line = (pos.value(j).into(), nums.value(j));
                            self.line_shipment.insert(line, id.clone());
                        }
                    }
                    self.routes.insert(
                        id,
                        Route {
                            origin: origin.value(i).to_string(),
                            destination: destination.value(i).to_string(),
                            locations: BTreeSet::new(),
                        },
                    );
                }
                "milestone" => {
                    if let Some(r) = self.routes.get_mut(shipment.value(i)) {
                        r.locations.insert(location.value(i).to_string());
                    }
                }
                "inventory_position" => {
                    let key = (site.value(i).to_string(), part.value(i).to_string());
                    let level = on_hand.value(i);
                    let detail = format!("position of {} {} is {level}", key.0, key.1);
                    self.stock(key, level, times.value(i), detail);
                }
                "stock_movement" => {
                    let key = (site.value(i).to_string(), part.value(i).to_string());
                    // Like the state: a movement without a known position is ignored, and
                    // issues never take stock below zero.
                    let Some(&before) = self.on_hand.get(&key) else {
                        continue;
                    };
                    let q = quantity.value(i);
                    let level = match movement.value(i) {
                        "receipt" => before + q,
                        _ => (before - q).max(0.0),
                    };
                    let detail = format!(
                        "{} {} at {} {}: on hand {before} -> {level}",
                        movement.value(i),
                        q,
                        key.0,
                        key.1
                    );
                    self.stock(key, level, times.value(i), detail);
                }
                _ => {}
            }
        }
    }

    /// Records a new stock level; a breach when it reaches zero from above (or is first seen
    /// at zero).
    fn stock(&mut self, key: (String, String), level: f64, at: i64, detail: String) {
        let before = self.on_hand.insert(key.clone(), level);
        if level <= 0.0 && before.is_none_or(|b| b > 0.0) {
            self.found.push(Breach {
                kind: BreachKind::StockOut,
                at,
                key: BTreeMap::from([("site".to_string(), key.0), ("part".to_string(), key.1)]),
                locations: Vec::new(),
                detail,
                open: false,
            });
        }
    }

    /// Looks at a delivery the state just completed.
    pub fn observe_delivery(&mut self, d: &Delivery) {
        let due = due_at(d.promised_date);
        if d.received_at > due + DAY_MS {
            let days = (d.received_at - due) as f64 / DAY_MS as f64;
            let detail = format!(
                "{}/{} due {} received {} ({days:.1} days late)",
                d.po,
                d.line,
                date(d.promised_date),
                rfc3339(d.received_at)
            );
            let line = (d.po.as_str().into(), d.line);
            let b = self.late(&line, &d.supplier, &d.part, &d.site, due, detail, false);
            self.found.push(b);
        }
    }

    /// The breaches found, plus the lines still open at `end` more than a day past their
    /// promised day; sorted by time, then kind and key.
    pub fn finish<'a>(
        mut self,
        open_lines: impl Iterator<Item = (&'a LineKey, &'a PurchaseLine)>,
        end: i64,
    ) -> Vec<Breach> {
        let mut open: Vec<_> = open_lines
            .filter(|(_, l)| due_at(l.promised_date) + DAY_MS < end)
            .collect();
        open.sort_by(|a, b| a.0.cmp(b.0));
        for (k, l) in open {
            let due = due_at(l.promised_date);
            let detail = format!(
                "{}/{} due {} still open at {}",
                k.0,
                k.1,
                date(l.promised_date),
                rfc3339(end)
            );
            let b = self.late(k, &l.supplier, &l.part, &l.site, due, detail, true);
            self.found.push(b);
        }
        let mut found = self.found;
        found.sort_by(|a, b| (a.at, a.kind, &a.key).cmp(&(b.at, b.kind, &b.key)));
        found
    }

    #[allow(clippy::too_many_arguments)]
    fn late(
        &self,
        line: &LineKey,
        supplier: &str,
        part: &str,
        site: &str,
        due: i64,
        detail: String,
        open: bool,
    ) -> Breach {
        let mut key = BTreeMap::from([
            ("supplier".to_string(), supplier.to_string()),
            ("po".to_string(), line.0.to_string()),
            ("line".to_string(), line.1.to_string()),
            ("part".to_string(), part.to_string()),
            ("site".to_string(), site.to_string()),
        ]);
        let mut locations = Vec::new();
        if let Some(r) = self
            .line_shipment
            .get(line)
            .and_then(|s| self.routes.get(s))
        {
            key.insert(
                "lane".to_string(),
                format!("{}-{}", r.origin, r.destination),
            );
            key.insert("origin".to_string(), r.origin.clone());
            key.insert("destination".to_string(), r.destination.clone());
            locations = r.locations.iter().cloned().collect();
        }
        Breach {
            kind: BreachKind::LateDelivery,
            at: due + DAY_MS,
            key,
            locations,
            detail,
            open,
        }
    }
}

/// End of the promised day, as `due_at` in the state tables.
fn due_at(promised_date: i32) -> i64 {
    (i64::from(promised_date) + 1) * DAY_MS
}

fn date(days: i32) -> String {
    chrono::DateTime::from_timestamp_millis(i64::from(days) * DAY_MS)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| days.to_string())
}

/// An event time as RFC 3339 (UTC, seconds).
pub fn rfc3339(ms: i64) -> String {
    crate::rules::template::rfc3339(ms)
}
