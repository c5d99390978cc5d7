use std::collections::BTreeMap;

use super::super::*;
use super::*;

fn fnv1a(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// Hash of the canonical stream of the default simulator over 10 days, computed on the code
/// before this module existed: adding the tier-2 feeds must not change it.
#[test]
fn canonical_stream_unchanged() {
    let cfg = SimConfig::default();
    let until = cfg.start + chrono::Duration::days(10);
    let events = Simulator::new(cfg).run_until(until);
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for e in &events {
        fnv1a(&mut h, e.key.as_bytes());
        fnv1a(&mut h, &e.event_time.timestamp_millis().to_le_bytes());
        fnv1a(&mut h, &e.payload);
        fnv1a(&mut h, b"\n");
    }
    assert_eq!(events.len(), 6357);
    assert_eq!(h, 0x6851_1141_3313_a07c);
}

fn start() -> DateTime<Utc> {
    SimConfig::default().start
}

fn day(d: i64) -> DateTime<Utc> {
    start() + Duration::days(d)
}

/// The default simulator's network with its tier-2 feeds, run to `days`.
fn run(seed: u64, days: i64) -> (Tier2Feeds, Vec<FeedMessage>) {
    let sim = Simulator::new(SimConfig {
        seed,
        ..SimConfig::default()
    });
    let mut feeds = Tier2Feeds::new(sim.network(), seed, start());
    let msgs = feeds.run_until(day(days));
    (feeds, msgs)
}

/// Test-side windows-1252 decoding of the characters the generator writes.
fn from_1252(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| if b == 0x80 { '€' } else { char::from(b) })
        .collect()
}

/// Rows (after the header) of a CSV report, in UTF-8.
fn rows(m: &FeedMessage) -> Vec<Vec<String>> {
    let (text, delim, eol) = if m.topic == TIER2_TOPICS[0] {
        (from_1252(&m.payload), ';', "\r\n")
    } else {
        let body = m.payload.strip_prefix(b"\xEF\xBB\xBF").expect("a BOM");
        (String::from_utf8(body.to_vec()).expect("UTF-8"), ',', "\r")
    };
    assert!(text.ends_with(eol), "{} ends with {eol:?}", m.topic);
    text.split(eol)
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| split_quoted(l, delim))
        .collect()
}

/// Splits one CSV line, honouring `"` quotes and `""` escapes.
fn split_quoted(line: &str, delim: char) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().expect("a cell").push('"');
            }
            '"' => quoted = !quoted,
            c if c == delim && !quoted => cells.push(String::new()),
            c => cells.last_mut().expect("a cell").push(c),
        }
    }
    cells
}

#[test]
fn same_seed_same_messages_however_chunked() {
    let (_, whole) = run(42, 45);
    let sim = Simulator::new(SimConfig::default());
    let mut feeds = Tier2Feeds::new(sim.network(), 42, start());
    let mut chunked = Vec::new();
    let mut t = start();
    while t < day(45) {
        t = (t + Duration::hours(7)).min(day(45));
        chunked.extend(feeds.run_until(t));
    }
    assert!(whole.len() > 100, "{} messages", whole.len());
    assert_eq!(whole, chunked);
    let (_, other) = run(7, 45);
    assert_ne!(whole, other);
    assert!(whole.windows(2).all(|w| w[0].time <= w[1].time));
    assert!(whole.iter().all(|m| m.time >= start() && m.time <= day(45)));
    for (i, topic) in TIER2_TOPICS.iter().enumerate() {
        let key = format!("SUP-T2-{:03}", i + 1);
        let n = whole.iter().filter(|m| m.topic == *topic).count();
        assert!(n >= 40, "{topic}: {n} messages");
        assert!(whole
            .iter()
            .filter(|m| m.topic == *topic)
            .all(|m| m.key == key));
    }
}

#[test]
fn reports_are_in_their_vendors_formats() {
    let (_, msgs) = run(42, 5);
    let german = msgs
        .iter()
        .find(|m| m.topic == TIER2_TOPICS[0])
        .expect("a report");
    assert!(german.payload.starts_with(b"Customer;Order No;Pos;"));
    // "Price (€)" in windows-1252 and the umlauts of the material texts.
    assert!(german.payload.windows(9).any(|w| w == b"Price (\x80)"));
    assert!(german.payload.contains(&0xE4) || german.payload.contains(&0xFC));
    assert!(std::str::from_utf8(&german.payload).is_err());
    let text = from_1252(&german.payload);
    assert!(text.contains("Date Not Captured") || text.contains(";;"));
    let us = msgs
        .iter()
        .find(|m| m.topic == TIER2_TOPICS[1])
        .expect("a report");
    assert!(us.payload.starts_with(b"\xEF\xBB\xBFPO Number,Line,Item,"));
    assert!(!us.payload.contains(&b'\n'));
    assert!(String::from_utf8_lossy(&us.payload).contains(",N/A,"));
    let docs: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic == TIER2_TOPICS[2])
        .map(|m| serde_json::from_slice(&m.payload).expect("JSON"))
        .collect();
    // One every 4 hours, events or not.
    assert_eq!(docs.len(), 5 * EPCIS_SLOTS_H.len());
    assert!(docs.iter().all(|d| d["type"] == "EPCISDocument"));
    let events: Vec<&Value> = docs
        .iter()
        .flat_map(|d| d["epcisBody"]["eventList"].as_array().expect("eventList"))
        .collect();
    assert!(events.len() >= 4, "{} events", events.len());
    assert!(events.iter().all(|e| e["eventTimeZoneOffset"] == "+08:00"));
}

/// (days late, open) of every well-formed line of a report, at the report's date.
fn lateness(m: &FeedMessage) -> Vec<(i64, bool)> {
    if m.topic == TIER2_TOPICS[2] {
        return Vec::new();
    }
    let german = m.topic == TIER2_TOPICS[0];
    let (promised, status, formats): (usize, usize, &[&str]) = if german {
        (9, 11, &["%d.%m.%Y", "%Y-%m-%d"])
    } else {
        (7, 9, &["%m/%d/%y"])
    };
    let today = m.time.date_naive();
    rows(m)
        .into_iter()
        .filter(|r| r.len() == if german { 13 } else { 12 })
        .filter_map(|r| {
            let p = formats
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(&r[promised], f).ok())?;
            let open = !matches!(r[status].as_str(), "Delivered" | "RECEIVED");
            Some(((today - p).num_days(), open))
        })
        .collect()
}

#[test]
fn sup_t2_001_lines_go_late_from_day_20() {
    let (_, msgs) = run(42, 45);
    let mut before = 0;
    let mut late_after = 0;
    let mut late_other = 0;
    for m in &msgs {
        let d = (m.time - start()).num_days();
        for (late, open) in lateness(m) {
            if m.topic == TIER2_TOPICS[0] && d < TIER2_SLIP_START_DAY {
                before += 1;
                assert!(!open || late <= 2, "day {d}: open line {late} days late");
            }
            if m.topic == TIER2_TOPICS[0] && d >= 35 && open && late >= 5 {
                late_after += 1;
            }
            if m.topic == TIER2_TOPICS[1] && open {
                assert!(late <= 2, "SUP-T2-002 line {late} days late on day {d}");
                late_other += usize::from(late > 0);
            }
        }
    }
    assert!(before > 100, "{before} lines before the slip");
    assert!(
        late_after >= 20,
        "{late_after} late open lines after day 35"
    );
    // The well-behaved feed has its share of lines due today or a day overdue, no more.
    assert!(late_other < late_after, "{late_other}");
}

#[test]
fn sup_t2_002_goes_silent_on_day_40() {
    let (_, msgs) = run(42, 60);
    let days: std::collections::BTreeSet<i64> = msgs
        .iter()
        .filter(|m| m.topic == TIER2_TOPICS[1])
        .map(|m| (m.time - start()).num_days())
        .collect();
    assert_eq!(days, (0..TIER2_SILENT_DAY).collect());
    // The others keep sending.
    for topic in [TIER2_TOPICS[0], TIER2_TOPICS[2]] {
        assert!(msgs
            .iter()
            .any(|m| m.topic == topic && m.time >= day(TIER2_SILENT_DAY + 15)));
    }
}

#[test]
fn about_one_percent_of_records_are_broken_on_purpose() {
    let (feeds, msgs) = run(42, 30);
    let records: usize = msgs
        .iter()
        .map(|m| match m.topic.as_str() {
            t if t == TIER2_TOPICS[2] => {
                let doc: Value = serde_json::from_slice(&m.payload).expect("JSON");
                doc["epcisBody"]["eventList"].as_array().map_or(0, Vec::len)
            }
            _ => rows(m).len(),
        })
        .sum();
    let bad = feeds.bad.iter().filter(|b| b.time <= day(30)).count();
    let share = bad as f64 / records as f64;
    assert!((0.003..0.03).contains(&share), "{bad} of {records}");
}

#[test]
fn networks_without_tier2_suppliers_give_no_messages() {
    let sim = Simulator::new(SimConfig {
        tier2_suppliers: 0,
        ..SimConfig::default()
    });
    let mut feeds = Tier2Feeds::new(sim.network(), 42, start());
    assert!(feeds.run_until(day(10)).is_empty());
}

/// Records, rejects per topic and the canonical events of `days` of the default network's
/// messages mapped by the shipped definitions (feeds/*.yaml); panics on a reject that is not
/// a deliberately broken record.
fn map_shipped(days: i64) -> (usize, BTreeMap<String, usize>, Vec<Vec<u8>>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("feeds");
    let set = crate::feeds::load_dir(&dir).unwrap_or_else(|errors| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("feeds/ does not load:\n{}", text.join("\n"))
    });
    let (feeds, msgs) = run(42, days);
    let mut total = 0;
    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    let mut events: Vec<Vec<u8>> = Vec::new();
    for m in &msgs {
        let feed = set.by_topic(&m.topic).expect("a definition per topic");
        for r in feed.map_message(&m.payload) {
            total += 1;
            match r.result {
                Ok(ev) => events.extend(ev),
                Err(reject) => {
                    *rejected.entry(m.topic.clone()).or_default() += 1;
                    let id = BadRecord {
                        topic: m.topic.clone(),
                        time: m.time,
                        row: r.row,
                    };
                    assert!(
                        feeds.bad.contains(&id),
                        "{} {} row {}: {reject}\n{}",
                        m.topic,
                        m.time,
                        r.row,
                        String::from_utf8_lossy(&r.raw)
                    );
                }
            }
        }
    }
    // Every deliberately broken record handed out is rejected (and, above, nothing else is);
    // `bad` also lists those generated for later today.
    let handed_out = feeds.bad.iter().filter(|b| b.time <= day(days)).count();
    assert_eq!(rejected.values().sum::<usize>(), handed_out);
    (total, rejected, events)
}

#[test]
fn every_feed_rejects_exactly_its_broken_records() {
    let (total, rejected, _) = map_shipped(90);
    for topic in TIER2_TOPICS {
        assert!(rejected.get(topic).is_some_and(|n| *n > 0), "{rejected:?}");
    }
    assert!(
        rejected.values().sum::<usize>() * 50 < total,
        "{rejected:?} of {total}"
    );
}

/// The shipped definitions read 30 days of these messages: at least 97% of the records map
/// (the rest are the broken ones), and what comes out is canonical and carries the signal.
#[test]
fn shipped_definitions_map_thirty_days() {
    let (total, rejected, events) = map_shipped(30);
    let rejected: usize = rejected.values().sum();
    assert!(rejected > 0);
    assert!(
        (total - rejected) as f64 >= 0.97 * total as f64,
        "{rejected} of {total} rejected"
    );
    assert!(total > 500, "{total} records");

    let payloads: Vec<Option<&[u8]>> = events.iter().map(|e| Some(e.as_slice())).collect();
    let decoded = crate::ingest::decode::EventDecoder::new(1 << 20).decode(&payloads);
    assert!(decoded.rejects.is_empty(), "{:?}", decoded.rejects.first());

    let json: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_slice(e).expect("JSON"))
        .collect();
    let count = |kind: &str, supplier: &str| {
        json.iter()
            .filter(|e| e["kind"] == kind && e["supplier"] == supplier)
            .count()
    };
    for s in ["SUP-T2-001", "SUP-T2-002"] {
        assert!(count("po_line_created", s) > 0 && count("goods_receipt", s) > 0);
    }
    assert!(count("shipment_created", "SUP-T2-003") > 0);
    assert!(count("milestone", "SUP-T2-003") > 0);
    // lb -> kg: the generator's kg are multiples of 10, written in lb to 0.1.
    for e in json
        .iter()
        .filter(|e| e["kind"] == "po_line_created" && e["supplier"] == "SUP-T2-002")
    {
        let q = e["quantity"].as_f64().expect("quantity");
        assert!((q - (q / 10.0).round() * 10.0).abs() < 0.05, "{e}");
    }
    // The disruption in canonical terms: at day 30, SUP-T2-001 has lines open more than 3
    // days past their promised date; SUP-T2-002 has none.
    let today = day(30).date_naive();
    let late_open = |supplier: &str| {
        let received: std::collections::HashSet<(String, i64)> = json
            .iter()
            .filter(|e| e["kind"] == "goods_receipt" && e["supplier"] == supplier)
            .map(|e| (e["po"].to_string(), e["line"].as_i64().unwrap_or(0)))
            .collect();
        let mut lines: std::collections::HashMap<(String, i64), NaiveDate> =
            std::collections::HashMap::new();
        for e in json
            .iter()
            .filter(|e| e["kind"] == "po_line_created" && e["supplier"] == supplier)
        {
            let promised = e["promised_date"].as_str().expect("promised_date");
            lines.insert(
                (e["po"].to_string(), e["line"].as_i64().unwrap_or(0)),
                NaiveDate::parse_from_str(promised, "%Y-%m-%d").expect("a date"),
            );
        }
        lines
            .iter()
            .filter(|(k, p)| !received.contains(*k) && (today - **p).num_days() > 3)
            .count()
    };
    assert!(late_open("SUP-T2-001") >= 3, "{}", late_open("SUP-T2-001"));
    assert_eq!(late_open("SUP-T2-002"), 0);
}
