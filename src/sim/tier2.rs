//! Tier-2 suppliers' own feeds: messy supplier files for `feeds/sup-t2-00*.yaml`.
//!
//! In: the simulated [`Network`] (its first three tier-2 suppliers and their tier links), a seed
//! and the simulation start. Out: [`FeedMessage`]s in non-decreasing time, each one whole "file"
//! as the supplier (or its logistics provider) would send it, NOT canonical events:
//! - `SUP-T2-001` (`feeds.sup-t2-001`): a daily open-order report, windows-1252, `;`, CRLF,
//!   decimal commas, `dd.mm.yyyy` dates (some `yyyy-mm-dd`), "Date Not Captured". From day
//!   [`TIER2_SLIP_START_DAY`] on it stops delivering on time: deliveries slip 15-30 days, so its
//!   open lines pass their promised dates and stay open.
//! - `SUP-T2-002` (`feeds.sup-t2-002`): another vendor's daily report, UTF-8 with BOM, `,`,
//!   bare CR, `mm/dd/yy`, "N/A", quantities in lb. It goes silent from day
//!   [`TIER2_SILENT_DAY`] on.
//! - `SUP-T2-003` (`feeds.sup-t2-003`): GS1 EPCIS 2.0 JSON documents from its logistics
//!   provider (shipping / departing / arriving / receiving ObjectEvents), one every 4 hours
//!   (an empty `eventList` when nothing happened).
//!
//! About 1% of the records are broken on purpose (an impossible date, a missing column, a
//! milestone without readPoint) so feed health shows rejects. All randomness comes from this
//! module's own `ChaCha8Rng` (seeded from the seed xor a constant), so adding these feeds leaves
//! [`Simulator`](super::Simulator)'s canonical stream byte-identical. Like the simulator, the
//! feeds are generated a whole day at a time, so chunking `run_until` does not change them.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, SecondsFormat, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::network::Network;

/// From this simulated day on, `SUP-T2-001` delivers 15-30 days after the promised date.
pub const TIER2_SLIP_START_DAY: i64 = 20;
/// From this simulated day on, `SUP-T2-002` sends nothing.
pub const TIER2_SILENT_DAY: i64 = 40;
/// Topics of the three feeds, in supplier order (`SUP-T2-001`, `-002`, `-003`).
pub const TIER2_TOPICS: [&str; 3] = ["feeds.sup-t2-001", "feeds.sup-t2-002", "feeds.sup-t2-003"];

/// Keeps this RNG's stream apart from the simulator's own (same seed, different stream).
const SEED_SALT: u64 = 0x7469_6572_325f_6665;
/// Share of records broken on purpose.
const BAD_SHARE: f64 = 0.01;
/// EPCIS has few records (and only milestones are broken): a higher share there still gives
/// about 1% of all records and a few rejects a quarter.
const BAD_SHARE_EPCIS: f64 = 0.04;
/// Orders placed before day 0, so the first report already lists open lines.
const WARM_UP_DAYS: i64 = 30;
/// Delivered lines stay on the report this long after delivery.
const KEEP_DELIVERED_DAYS: i64 = 3;
/// EPCIS documents are cut at these hours (UTC) of each day.
const EPCIS_SLOTS_H: [i64; 6] = [2, 6, 10, 14, 18, 22];
/// The logistics provider's GS1 company prefix (business transaction URNs).
const GS1_PREFIX: &str = "6901234000003";

/// One message of a tier-2 feed, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMessage {
    /// `feeds.sup-t2-00n`.
    pub topic: String,
    /// The supplier id, so one supplier's files stay in order on one partition.
    pub key: String,
    /// When the file was sent (simulated clock).
    pub time: DateTime<Utc>,
    /// The file as sent: bytes in the feed's own encoding.
    pub payload: Vec<u8>,
}

/// A record broken on purpose, listed when generated (tests check the mapper rejects exactly
/// these).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRecord {
    pub topic: String,
    pub time: DateTime<Utc>,
    /// 1-based record number in the message (CSV: after the header; EPCIS: in `eventList`).
    pub row: usize,
}

/// The two CSV layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `SUP-T2-001`: German ERP export.
    German,
    /// `SUP-T2-002`: US vendor portal export.
    Us,
}

impl Layout {
    fn header(self) -> &'static [&'static str] {
        match self {
            Layout::German => &[
                "Customer",
                "Order No",
                "Pos",
                "Material",
                "Material Text",
                "Qty",
                "UoM",
                "Price (€)",
                "Order Date",
                "Promised Date",
                "Delivered Date",
                "Status",
                "Report Date",
            ],
            Layout::Us => &[
                "PO Number",
                "Line",
                "Item",
                "Description",
                "Qty (lb)",
                "Price/lb (USD)",
                "PO Date",
                "Promise Date",
                "Receipt Date",
                "Status",
                "Ship-To",
                "Run Date",
            ],
        }
    }

    /// Index of the free-text column a "missing column" row drops.
    fn text_column(self) -> usize {
        match self {
            Layout::German => 4,
            Layout::Us => 3,
        }
    }

    fn delimiter(self) -> char {
        match self {
            Layout::German => ';',
            Layout::Us => ',',
        }
    }

    /// The zone the supplier's system writes local times in.
    fn offset(self) -> FixedOffset {
        let secs = match self {
            Layout::German => 3600,
            Layout::Us => -5 * 3600,
        };
        FixedOffset::east_opt(secs).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
    }

    /// UTC hour the daily report is run.
    fn report_hour(self) -> i64 {
        match self {
            Layout::German => 5,
            Layout::Us => 12,
        }
    }

    fn materials(self) -> &'static [(&'static str, f64)] {
        match self {
            Layout::German => &[
                ("Gehäusedeckel Alu-Druckguss", 4.85),
                ("Lagerbuchse Messing Ø12", 0.62),
                ("Dichtungsring für Kühlmittelpumpe", 0.18),
                ("Kühlkörper, eloxiert", 2.4),
                ("Steckergehäuse PA6 grün", 0.35),
            ],
            Layout::Us => &[
                ("Resin, PA66 GF30 natural", 1.95),
                ("Copper wire 0.5mm, tinned", 4.1),
                ("Steel coil 0.04\" DC04", 0.48),
                ("Aluminum ingot A380", 1.15),
            ],
        }
    }
}

/// One order line a tier-1 customer placed with the tier-2 supplier.
#[derive(Debug, Clone)]
struct Line {
    customer: String,
    po: String,
    pos: u32,
    material: usize,
    /// Pieces (German layout) or kg (US layout, written in lb).
    qty: f64,
    order_day: i64,
    confirm_day: i64,
    promised_day: i64,
    delivered_at: DateTime<Utc>,
    /// This line's dates are written `yyyy-mm-dd` (another clerk's habit).
    iso_dates: bool,
}

#[derive(Debug, Clone)]
struct Customer {
    id: String,
    /// Indices into the layout's materials.
    materials: Vec<usize>,
    next_order_day: i64,
    /// Typical order size.
    base_qty: f64,
}

/// A daily CSV report feed.
#[derive(Debug, Clone)]
struct CsvFeed {
    supplier: String,
    topic: &'static str,
    layout: Layout,
    customers: Vec<Customer>,
    lines: Vec<Line>,
    next_po: u64,
    /// Deliveries slip from [`TIER2_SLIP_START_DAY`] on.
    slips: bool,
    /// No report from this day on.
    silent_from: Option<i64>,
}

#[derive(Debug, Clone)]
struct ShipTo {
    id: String,
    locode: String,
    port: String,
    country: String,
    next_ship_day: i64,
}

/// One EPCIS event waiting for its document.
#[derive(Debug, Clone)]
struct PendingEvent {
    time: DateTime<Utc>,
    seq: u64,
    body: Value,
    /// Broken on purpose (listed in `Tier2Feeds::bad` when its document is cut).
    #[cfg(test)]
    bad: bool,
}

/// The EPCIS feed of a logistics provider.
#[derive(Debug, Clone)]
struct EpcisFeed {
    supplier: String,
    topic: &'static str,
    locode: String,
    port: String,
    country: String,
    customers: Vec<ShipTo>,
    next_shipment: u32,
    next_seq: u64,
    pending: Vec<PendingEvent>,
}

/// The tier-2 feeds of a network, advanced by [`Tier2Feeds::run_until`].
pub struct Tier2Feeds {
    start: DateTime<Utc>,
    rng: ChaCha8Rng,
    csv: Vec<CsvFeed>,
    epcis: Option<EpcisFeed>,
    /// Next day to generate.
    next_day: i64,
    /// Generated, not yet handed out, in time order.
    buffer: VecDeque<FeedMessage>,
    #[cfg(test)]
    pub(crate) bad: Vec<BadRecord>,
}

impl Tier2Feeds {
    /// Feeds for the first three tier-2 suppliers of `network` (those that exist), with day 0 at
    /// `start`. Orders of a warm-up month are placed before day 0.
    pub fn new(network: &Network, seed: u64, start: DateTime<Utc>) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SEED_SALT);
        let tier2: Vec<&super::Supplier> =
            network.suppliers.iter().filter(|s| s.tier == 2).collect();
        let mut csv = Vec::new();
        for (i, layout) in [Layout::German, Layout::Us].into_iter().enumerate() {
            let Some(s) = tier2.get(i) else { break };
            let customers = network
                .tier_links
                .iter()
                .filter(|l| l.tier2 == s.id)
                .map(|l| {
                    let n = layout.materials().len();
                    let k = l.parts.len().clamp(1, 2);
                    let first = rng.random_range(0..n);
                    Customer {
                        id: l.tier1.clone(),
                        materials: (0..k).map(|j| (first + j * 2) % n).collect(),
                        next_order_day: -WARM_UP_DAYS + rng.random_range(0..4),
                        base_qty: f64::from(rng.random_range(4..=40u32)) * 50.0,
                    }
                })
                .collect();
            csv.push(CsvFeed {
                supplier: s.id.clone(),
                topic: TIER2_TOPICS[i],
                layout,
                customers,
                lines: Vec::new(),
                next_po: match layout {
                    Layout::German => 4_500_010_000,
                    Layout::Us => 70_100,
                },
                slips: i == 0,
                silent_from: (i == 1).then_some(TIER2_SILENT_DAY),
            });
        }
        let epcis = tier2.get(2).map(|s| EpcisFeed {
            supplier: s.id.clone(),
            topic: TIER2_TOPICS[2],
            locode: s.locode.clone(),
            port: s.port.clone(),
            country: s.country.clone(),
            customers: network
                .tier_links
                .iter()
                .filter(|l| l.tier2 == s.id)
                .filter_map(|l| network.suppliers.iter().find(|t| t.id == l.tier1))
                .map(|t| ShipTo {
                    id: t.id.clone(),
                    locode: t.locode.clone(),
                    port: t.port.clone(),
                    country: t.country.clone(),
                    next_ship_day: rng.random_range(0..3),
                })
                .collect(),
            next_shipment: 1,
            next_seq: 0,
            pending: Vec::new(),
        });
        let mut feeds = Tier2Feeds {
            start,
            rng,
            csv,
            epcis,
            next_day: 0,
            buffer: VecDeque::new(),
            #[cfg(test)]
            bad: Vec::new(),
        };
        for d in -WARM_UP_DAYS..0 {
            for f in 0..feeds.csv.len() {
                feeds.place_orders(f, d);
            }
        }
        feeds
    }

    /// All messages with `time <= until` not returned before, in non-decreasing time order.
    pub fn run_until(&mut self, until: DateTime<Utc>) -> Vec<FeedMessage> {
        while self.day(self.next_day) <= until {
            self.generate_day(self.next_day);
            self.next_day += 1;
        }
        let mut out = Vec::new();
        while self.buffer.front().is_some_and(|m| m.time <= until) {
            if let Some(m) = self.buffer.pop_front() {
                out.push(m);
            }
        }
        out
    }

    fn day(&self, d: i64) -> DateTime<Utc> {
        self.start + Duration::days(d)
    }

    fn date(&self, d: i64) -> NaiveDate {
        self.day(d).date_naive()
    }

    /// Every message sent during day `d`, appended to the buffer in time order.
    fn generate_day(&mut self, d: i64) {
        let mut today: Vec<FeedMessage> = Vec::new();
        for f in 0..self.csv.len() {
            if let Some(m) = self.report(f, d) {
                today.push(m);
            }
            self.place_orders(f, d);
        }
        if self.epcis.is_some() {
            self.plan_shipments(d);
            today.extend(self.epcis_documents(d));
        }
        // Stable: same-time messages keep generation order.
        today.sort_by_key(|m| m.time);
        self.buffer.extend(today);
    }

    /// Orders the customers of CSV feed `f` place on day `d` (they appear in the next report).
    fn place_orders(&mut self, f: usize, d: i64) {
        let rng = &mut self.rng;
        let feed = &mut self.csv[f];
        for c in 0..feed.customers.len() {
            if feed.customers[c].next_order_day > d {
                continue;
            }
            feed.customers[c].next_order_day = d + rng.random_range(2..=5);
            let po = feed.next_po.to_string();
            feed.next_po += 1;
            let positions = rng.random_range(1..=3u32);
            let iso_dates = feed.layout == Layout::German && rng.random_bool(0.1);
            for p in 1..=positions {
                let cust = &feed.customers[c];
                let material = *cust.materials.choose(rng).unwrap_or(&0);
                let qty = (cust.base_qty * rng.random_range(0.5..1.5) / 10.0).round() * 10.0;
                let promised_day = d + rng.random_range(20..=30);
                let mut delivery_day = promised_day + rng.random_range(-2..=2);
                if feed.slips && delivery_day >= TIER2_SLIP_START_DAY {
                    delivery_day = promised_day + rng.random_range(15..=30);
                }
                let delivered_at = self.start
                    + Duration::days(delivery_day)
                    + Duration::minutes(rng.random_range(7 * 60..16 * 60));
                feed.lines.push(Line {
                    customer: cust.id.clone(),
                    po: po.clone(),
                    pos: match feed.layout {
                        Layout::German => p * 10,
                        Layout::Us => p,
                    },
                    material,
                    qty,
                    order_day: d,
                    confirm_day: d + rng.random_range(1..=3),
                    promised_day,
                    delivered_at,
                    iso_dates,
                });
            }
        }
    }

    /// CSV feed `f`'s report of day `d`, or `None` when the feed is silent.
    fn report(&mut self, f: usize, d: i64) -> Option<FeedMessage> {
        let layout = self.csv[f].layout;
        let time = self.day(d)
            + Duration::hours(layout.report_hour())
            + Duration::minutes(self.rng.random_range(0..60));
        // Lines delivered long enough ago drop off the report (and out of memory).
        let keep = Duration::days(KEEP_DELIVERED_DAYS);
        self.csv[f].lines.retain(|l| l.delivered_at + keep > time);
        if self.csv[f].silent_from.is_some_and(|s| d >= s) {
            return None;
        }
        let delim = layout.delimiter();
        let local = time.with_timezone(&layout.offset());
        let report_time = match layout {
            Layout::German => local.format("%d.%m.%Y %H:%M").to_string(),
            Layout::Us => local.format("%m/%d/%y %H:%M").to_string(),
        };
        let mut rows: Vec<String> = vec![join(layout.header().iter().copied(), delim)];
        let lines: Vec<Line> = self.csv[f]
            .lines
            .iter()
            .filter(|l| l.order_day < d)
            .cloned()
            .collect();
        for l in &lines {
            let mut cells = self.cells(layout, l, d, time, &report_time);
            if self.rng.random_bool(BAD_SHARE) {
                if self.rng.random_bool(0.5) {
                    // An impossible promised date.
                    let year = self.date(l.promised_day).format("%Y").to_string();
                    let (idx, text) = match layout {
                        Layout::German => (9, format!("30.02.{year}")),
                        Layout::Us => (7, format!("02/30/{}", &year[2..])),
                    };
                    cells[idx] = text;
                } else {
                    cells.remove(layout.text_column());
                }
                #[cfg(test)]
                self.bad.push(BadRecord {
                    topic: self.csv[f].topic.to_string(),
                    time,
                    row: rows.len(),
                });
            }
            rows.push(join(cells.iter().map(String::as_str), delim));
        }
        let feed = &self.csv[f];
        let payload = match layout {
            Layout::German => {
                let mut text = rows.join("\r\n");
                text.push_str("\r\n");
                windows_1252(&text)
            }
            Layout::Us => {
                let mut bytes = vec![0xEF, 0xBB, 0xBF];
                bytes.extend_from_slice(rows.join("\r").as_bytes());
                bytes.push(b'\r');
                bytes
            }
        };
        Some(FeedMessage {
            topic: feed.topic.to_string(),
            key: feed.supplier.clone(),
            time,
            payload,
        })
    }

    /// One report row's cells (unquoted).
    fn cells(
        &mut self,
        layout: Layout,
        l: &Line,
        d: i64,
        time: DateTime<Utc>,
        report_time: &str,
    ) -> Vec<String> {
        let (text, price) = layout.materials()[l.material];
        let material = format!(
            "C-{}",
            match layout {
                Layout::German => 2001 + l.material,
                Layout::Us => 2101 + l.material,
            }
        );
        let delivered = l.delivered_at <= time;
        let local_delivery = l.delivered_at.with_timezone(&layout.offset()).date_naive();
        match layout {
            Layout::German => {
                let fmt = if l.iso_dates { "%Y-%m-%d" } else { "%d.%m.%Y" };
                let date = |n: NaiveDate| n.format(fmt).to_string();
                let status = if delivered {
                    "Delivered"
                } else if l.confirm_day < d {
                    "Confirmed"
                } else {
                    "Open"
                };
                let delivered_date = if delivered {
                    date(local_delivery)
                } else if self.rng.random_bool(0.85) {
                    "Date Not Captured".to_string()
                } else {
                    String::new()
                };
                vec![
                    l.customer.clone(),
                    l.po.clone(),
                    l.pos.to_string(),
                    material,
                    text.to_string(),
                    decimal_comma(l.qty, 3),
                    "ST".to_string(),
                    decimal_comma(price, 2),
                    date(self.date(l.order_day)),
                    date(self.date(l.promised_day)),
                    delivered_date,
                    status.to_string(),
                    report_time.to_string(),
                ]
            }
            Layout::Us => {
                let date = |n: NaiveDate| n.format("%m/%d/%y").to_string();
                let status = if delivered {
                    "RECEIVED"
                } else if l.confirm_day < d {
                    "ACKNOWLEDGED"
                } else {
                    "OPEN"
                };
                let lb = (l.qty * 2.204_622_621_8 * 10.0).round() / 10.0;
                vec![
                    l.po.clone(),
                    l.pos.to_string(),
                    material,
                    text.to_string(),
                    format!("{lb:.1}"),
                    format!("{price:.2}"),
                    date(self.date(l.order_day)),
                    date(self.date(l.promised_day)),
                    if delivered {
                        date(local_delivery)
                    } else {
                        "N/A".to_string()
                    },
                    status.to_string(),
                    l.customer.clone(),
                    report_time.to_string(),
                ]
            }
        }
    }

    /// Shipments the EPCIS supplier sends on day `d`: their four events go to `pending`.
    fn plan_shipments(&mut self, d: i64) {
        let start = self.start;
        let rng = &mut self.rng;
        let Some(feed) = self.epcis.as_mut() else {
            return;
        };
        for c in 0..feed.customers.len() {
            if feed.customers[c].next_ship_day > d {
                continue;
            }
            feed.customers[c].next_ship_day = d + rng.random_range(1..=4);
            let to = feed.customers[c].clone();
            let n = feed.next_shipment;
            feed.next_shipment += 1;
            let shipment = format!("SH-T2-003-{n:04}");
            let po = format!("45000{:05}", 31_000 + n * 3 + c as u32);
            let (mode, carrier, transit_h) = if to.country == feed.country {
                ("road", "SINOTRANS", rng.random_range(20..72))
            } else if rng.random_bool(0.15) {
                ("air", "CX-CARGO", rng.random_range(48..96))
            } else {
                (
                    "ocean",
                    *["COSCO", "MAERSK", "ONE"].choose(rng).unwrap_or(&"COSCO"),
                    rng.random_range(18 * 24..32 * 24),
                )
            };
            let (origin, destination) = if mode == "road" {
                (feed.locode.clone(), to.locode.clone())
            } else {
                (feed.port.clone(), to.port.clone())
            };
            // Local 09:00-17:00 at +08:00 is 01:00-09:00 UTC.
            let shipped = start + Duration::days(d) + Duration::minutes(rng.random_range(60..540));
            let eta = shipped + Duration::hours(transit_h);
            let departed = shipped + Duration::minutes(rng.random_range(120..1_200));
            let arrived = shipped
                + Duration::hours(transit_h)
                + Duration::minutes(rng.random_range(-720..1_440));
            let received = arrived.max(departed) + Duration::minutes(rng.random_range(180..2_000));
            let steps = [
                ("shipping", shipped, feed.locode.clone()),
                ("departing", departed, origin.clone()),
                ("arriving", arrived, destination.clone()),
                ("receiving", received, to.locode.clone()),
            ];
            for (step, time, place) in steps {
                let mut body = json!({
                    "type": "ObjectEvent",
                    "eventTime": epcis_time(rng, time),
                    "eventTimeZoneOffset": "+08:00",
                    "epcList": [format!("urn:epc:id:sscc:6901234.{:010}", u64::from(n) * 10 + 1)],
                    "action": "OBSERVE",
                    "bizStep": if rng.random_bool(0.6) {
                        step.to_string()
                    } else {
                        format!("urn:epcglobal:cbv:bizstep:{step}")
                    },
                    "disposition": if step == "receiving" { "in_progress" } else { "in_transit" },
                    "readPoint": {"id": format!("urn:x-t2-3pl:loc:{place}:{}", if step == "shipping" { "dock-1" } else { "gate" })},
                    "bizTransactionList": [
                        {"type": "po", "bizTransaction": format!("urn:epcglobal:cbv:bt:{GS1_PREFIX}:{po}")},
                        {"type": "desadv", "bizTransaction": format!("urn:epcglobal:cbv:bt:{GS1_PREFIX}:{shipment}")},
                    ],
                });
                if step == "shipping" {
                    body["sourceList"] = json!([{"type": "location", "source": format!("urn:x-t2-3pl:loc:{origin}:terminal")}]);
                    body["destinationList"] = json!([
                        {"type": "location", "destination": format!("urn:x-t2-3pl:loc:{destination}:terminal")},
                        {"type": "owning_party", "destination": format!("urn:x-t2-3pl:party:{}", to.id)},
                    ]);
                    body["cw:carrier"] = json!(carrier);
                    body["cw:transportMode"] = json!(mode);
                    body["cw:eta"] = json!(eta
                        .with_timezone(&plus8())
                        .to_rfc3339_opts(SecondsFormat::Secs, true));
                }
                // Milestones only: a broken shipping event would orphan the whole shipment.
                let bad = step != "shipping" && rng.random_bool(BAD_SHARE_EPCIS);
                if bad {
                    if rng.random_bool(0.5) {
                        body["eventTime"] =
                            json!(format!("{}-02-30T10:00:00.000+08:00", time.format("%Y")));
                    } else if let Some(o) = body.as_object_mut() {
                        o.remove("readPoint");
                    }
                }
                feed.next_seq += 1;
                let seq = feed.next_seq;
                // Deterministic stand-in for a UUID: the supplier's event number in hex.
                body["eventID"] = json!(format!("urn:uuid:7f3a2c10-0003-4000-8000-{seq:012x}"));
                feed.pending.push(PendingEvent {
                    time,
                    seq,
                    body,
                    #[cfg(test)]
                    bad,
                });
            }
        }
    }

    /// The EPCIS documents cut during day `d`: each holds the events since the previous cut
    /// (the provider's export runs on a schedule, so a quiet slot sends an empty `eventList`).
    fn epcis_documents(&mut self, d: i64) -> Vec<FeedMessage> {
        let day = self.day(d);
        let mut out = Vec::new();
        for h in EPCIS_SLOTS_H {
            let cut = day + Duration::hours(h);
            let sent = cut + Duration::minutes(self.rng.random_range(1..25));
            let Some(feed) = self.epcis.as_mut() else {
                return out;
            };
            let (mut due, rest): (Vec<PendingEvent>, Vec<PendingEvent>) =
                feed.pending.drain(..).partition(|e| e.time < cut);
            feed.pending = rest;
            due.sort_by_key(|e| (e.time, e.seq));
            #[cfg(test)]
            for (i, e) in due.iter().enumerate() {
                if e.bad {
                    self.bad.push(BadRecord {
                        topic: feed.topic.to_string(),
                        time: sent,
                        row: i + 1,
                    });
                }
            }
            let events: Vec<Value> = due.into_iter().map(|e| e.body).collect();
            let doc = json!({
                "@context": [
                    "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
                    {"cw": "https://chainwatch.example/epcis/"}
                ],
                "type": "EPCISDocument",
                "schemaVersion": "2.0",
                "creationDate": sent.with_timezone(&plus8()).to_rfc3339_opts(SecondsFormat::Millis, true),
                "epcisBody": {"eventList": events},
            });
            out.push(FeedMessage {
                topic: feed.topic.to_string(),
                key: feed.supplier.clone(),
                time: sent,
                payload: serde_json::to_vec(&doc).unwrap_or_default(),
            });
        }
        out
    }
}

/// The logistics provider's zone.
fn plus8() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

/// An EPCIS `eventTime`: mostly local with offset, some in UTC, a few without offset (then
/// `eventTimeZoneOffset` says which zone).
fn epcis_time(rng: &mut ChaCha8Rng, t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&plus8());
    match rng.random_range(0..10) {
        0..=6 => local.to_rfc3339_opts(SecondsFormat::Millis, true),
        7 | 8 => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        _ => local.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
    }
}

/// `1234.5` -> `1.234,500` (German thousands dots and decimal comma).
fn decimal_comma(v: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(ch);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped},{frac}")
    }
}

/// Joins cells with `delim`, quoting (RFC 4180) the ones that need it.
fn join<'a>(cells: impl Iterator<Item = &'a str>, delim: char) -> String {
    cells
        .map(|c| {
            if c.contains([delim, '"', '\r', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(&delim.to_string())
}

/// Encodes text as windows-1252: ASCII and U+00A0..U+00FF map to themselves, `€` to 0x80;
/// anything else (not used by the generator) becomes `?`.
fn windows_1252(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '€' => 0x80,
            c if (c as u32) < 0x80 || (0xA0..=0xFF).contains(&(c as u32)) => c as u32 as u8,
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests;
