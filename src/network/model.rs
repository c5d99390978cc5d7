//! The supply network model: suppliers, links, parts with alternates, and their invariants.
//!
//! In: entries from YAML files (`parse.rs`), records of the compacted network topic
//! ([`Network::apply_record`]), another network to overlay ([`Network::merge`]) or the
//! simulator's network ([`Network::from_sim`]). Out: a [`Network`] keyed by id (deterministic
//! order), its problems ([`Network::check`]) and its JSON form for `/api/network` (the same
//! shape as the YAML files, durations as strings).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use super::parse;

/// Highest tier a supplier may have; tier 1 ships to our sites.
pub const MAX_TIER: u8 = 9;

/// Slack on "shares into one (to, part) sum to at most 1", for decimal shares like 0.7 + 0.3.
const SHARE_EPS: f64 = 1e-9;

const DAY_SECS: f64 = 86_400.0;

/// A supplier node of any tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Supplier {
    /// Unique id, e.g. `SUP-T1-004`.
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1..=[`MAX_TIER`]; tier 1 ships to our sites, tier n+1 supplies tier n.
    pub tier: u8,
    /// Time to recover (TTR) after a disruption; `None` when not declared.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_duration"
    )]
    pub recovery_time: Option<Duration>,
    /// ISO 3166 alpha-2 country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Supplier {
    /// TTR in days, when declared.
    pub fn recovery_days(&self) -> Option<f64> {
        self.recovery_time.map(days)
    }
}

/// Identity of a link: the sub-tier supplier and its customer (record key `link:<from>><to>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkKey {
    /// The sub-tier supplier.
    pub from: String,
    /// Its customer, one or more tiers closer to us.
    pub to: String,
}

/// `from` supplies `share` of `to`'s input for `parts` (all of `to`'s parts when empty).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// The sub-tier supplier.
    pub from: String,
    /// Its customer.
    pub to: String,
    /// OUR parts that depend on this input; empty = every part `to` makes (or feeds) for us.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// (0, 1]: the share of `to`'s input for those parts that `from` supplies.
    pub share: f64,
}

impl Link {
    /// The link's identity.
    pub fn key(&self) -> LinkKey {
        LinkKey {
            from: self.from.clone(),
            to: self.to.clone(),
        }
    }

    /// Whether the link carries input for `part` (a link without parts carries all).
    pub fn applies_to(&self, part: &str) -> bool {
        self.parts.is_empty() || self.parts.iter().any(|p| p == part)
    }
}

/// An approved alternate source of a part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternate {
    /// The alternate supplier's id.
    pub supplier: String,
    /// False: approved on paper, not yet qualified (not counted as a usable source).
    pub qualified: bool,
    /// Units of this part per day it could deliver.
    pub capacity_per_day: f64,
    /// Time until its first delivery.
    #[serde(serialize_with = "serialize_duration")]
    pub lead_time: Duration,
}

impl Alternate {
    /// Lead time in days.
    pub fn lead_time_days(&self) -> f64 {
        days(self.lead_time)
    }

    /// A usable second source: qualified and able to deliver something.
    pub fn is_usable(&self) -> bool {
        self.qualified && self.capacity_per_day > 0.0
    }
}

/// One of OUR purchased parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    /// Unique id, e.g. `P-1007`.
    pub id: String,
    /// The tier-1 supplier we buy it from today (primary).
    pub supplier: String,
    /// Short description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Price per unit, for value at risk and lost value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<f64>,
    /// Approved alternate sources; none = single source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternates: Vec<Alternate>,
}

/// The whole network, keyed by id so iteration (and every output) is deterministic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Network {
    /// Suppliers by id.
    pub suppliers: BTreeMap<String, Supplier>,
    /// Links by (from, to).
    pub links: BTreeMap<LinkKey, Link>,
    /// Parts by id.
    pub parts: BTreeMap<String, Part>,
}

/// A broken invariant: which entry (as a record key), which field, and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// `supplier:<id>`, `link:<from>><to>` or `part:<id>`.
    pub key: String,
    /// The field at fault as a path (`to`, `parts.2`, `alternates.1.supplier`).
    pub field: String,
    /// Lowercase message.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A topic record that was not applied; the network is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The key is not `supplier:<id>`, `link:<from>><to>` or `part:<id>`.
    #[error("record key {key:?} is not supplier:<id>, link:<from>><to> or part:<id>")]
    BadKey {
        /// The key as received (lossy UTF-8).
        key: String,
    },
    /// The value is not valid JSON or not a valid entry, or names another id than the key.
    #[error("record {key}: {reason}")]
    BadValue {
        /// The record key.
        key: String,
        /// Every problem, joined with "; ".
        reason: String,
    },
    /// The entry is valid alone but would break an invariant of the network.
    #[error("record {key} refused: {reason}")]
    Refused {
        /// The record key.
        key: String,
        /// Every new problem, joined with "; ".
        reason: String,
    },
}

/// Days as a float.
pub(crate) fn days(d: Duration) -> f64 {
    d.as_secs_f64() / DAY_SECS
}

/// A duration from days (negative and non-finite give zero).
pub(crate) fn from_days(d: f64) -> Duration {
    if d.is_finite() && d > 0.0 {
        Duration::from_secs_f64(d * DAY_SECS)
    } else {
        Duration::ZERO
    }
}

/// `14d` for whole days, humantime's form (`1day 12h`) otherwise: parses back either way.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn serialize_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

impl Serialize for Network {
    /// `{"suppliers": [...], "links": [...], "parts": [...]}`, each entry as in the YAML files.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Network", 3)?;
        st.serialize_field("suppliers", &self.suppliers.values().collect::<Vec<_>>())?;
        st.serialize_field("links", &self.links.values().collect::<Vec<_>>())?;
        st.serialize_field("parts", &self.parts.values().collect::<Vec<_>>())?;
        st.end()
    }
}

/// The record key of a supplier.
pub fn supplier_key(id: &str) -> String {
    format!("supplier:{id}")
}

/// The record key of a link.
pub fn link_key(from: &str, to: &str) -> String {
    format!("link:{from}>{to}")
}

/// The record key of a part.
pub fn part_key(id: &str) -> String {
    format!("part:{id}")
}

/// One entry to put in place (`None`: remove), keyed like the network's maps.
enum Change {
    Supplier(String, Option<Supplier>),
    Link(LinkKey, Option<Link>),
    Part(String, Option<Part>),
}

/// What a record key names.
enum RecordKey {
    Supplier(String),
    Link(LinkKey),
    Part(String),
}

fn parse_key(key: &str) -> Option<RecordKey> {
    let (kind, id) = key.split_once(':')?;
    if id.is_empty() {
        return None;
    }
    match kind {
        "supplier" => Some(RecordKey::Supplier(id.to_string())),
        "part" => Some(RecordKey::Part(id.to_string())),
        "link" => {
            let (from, to) = id.split_once('>')?;
            (!from.is_empty() && !to.is_empty()).then(|| {
                RecordKey::Link(LinkKey {
                    from: from.to_string(),
                    to: to.to_string(),
                })
            })
        }
        _ => None,
    }
}

impl Network {
    /// The supplier with this id.
    pub fn supplier(&self, id: &str) -> Option<&Supplier> {
        self.suppliers.get(id)
    }

    /// The part with this id.
    pub fn part(&self, id: &str) -> Option<&Part> {
        self.parts.get(id)
    }

    /// The tier of a supplier, when known.
    pub fn tier(&self, id: &str) -> Option<u8> {
        self.suppliers.get(id).map(|s| s.tier)
    }

    /// Adds or replaces a supplier (no checks).
    pub fn upsert_supplier(&mut self, s: Supplier) {
        self.suppliers.insert(s.id.clone(), s);
    }

    /// Adds or replaces a link (no checks).
    pub fn upsert_link(&mut self, l: Link) {
        self.links.insert(l.key(), l);
    }

    /// Adds or replaces a part (no checks).
    pub fn upsert_part(&mut self, p: Part) {
        self.parts.insert(p.id.clone(), p);
    }

    /// Overlays `other` on this network: its entries replace ours with the same id (later
    /// source wins). Nothing is checked: call [`Network::check`] on the result.
    pub fn merge(&mut self, other: Network) {
        self.suppliers.extend(other.suppliers);
        self.links.extend(other.links);
        self.parts.extend(other.parts);
    }

    /// Every broken cross-entry invariant, sorted: links and parts naming unknown suppliers or
    /// parts, a link whose `from` tier is not greater than its `to` tier, a part bought from a
    /// supplier that is not tier 1, alternates that repeat or equal the primary, and shares into
    /// one (to, part) summing to more than 1. Checks of single entries (tier range, share range,
    /// capacity >= 0) are done when an entry is read.
    pub fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |key: String, field: String, message: String| {
            out.push(Problem {
                key,
                field,
                message,
            })
        };
        for link in self.links.values() {
            let key = link_key(&link.from, &link.to);
            let from = self.tier(&link.from);
            let to = self.tier(&link.to);
            if from.is_none() {
                push(
                    key.clone(),
                    "from".into(),
                    format!("unknown supplier {:?}", link.from),
                );
            }
            if to.is_none() {
                push(
                    key.clone(),
                    "to".into(),
                    format!("unknown supplier {:?}", link.to),
                );
            }
            if let (Some(f), Some(t)) = (from, to) {
                if f <= t {
                    push(
                        key.clone(),
                        "from".into(),
                        format!(
                            "a link goes from a higher tier to a lower one: {} is tier {f}, {} is tier {t}",
                            link.from, link.to
                        ),
                    );
                }
            }
            for (i, part) in link.parts.iter().enumerate() {
                if !self.parts.contains_key(part) {
                    push(
                        key.clone(),
                        format!("parts.{}", i + 1),
                        format!("unknown part {part:?}"),
                    );
                }
            }
        }
        self.check_shares(&mut push);
        for part in self.parts.values() {
            let key = part_key(&part.id);
            match self.tier(&part.supplier) {
                None => push(
                    key.clone(),
                    "supplier".into(),
                    format!("unknown supplier {:?}", part.supplier),
                ),
                Some(t) if t != 1 => push(
                    key.clone(),
                    "supplier".into(),
                    format!(
                        "parts are bought from tier-1 suppliers; {} is tier {t}",
                        part.supplier
                    ),
                ),
                Some(_) => {}
            }
            let mut seen = BTreeSet::new();
            for (i, alt) in part.alternates.iter().enumerate() {
                let field = format!("alternates.{}.supplier", i + 1);
                if !self.suppliers.contains_key(&alt.supplier) {
                    push(
                        key.clone(),
                        field,
                        format!("unknown supplier {:?}", alt.supplier),
                    );
                } else if alt.supplier == part.supplier {
                    push(
                        key.clone(),
                        field,
                        format!("alternate {} is the primary supplier", alt.supplier),
                    );
                } else if !seen.insert(alt.supplier.as_str()) {
                    push(
                        key.clone(),
                        field,
                        format!("duplicate alternate {}", alt.supplier),
                    );
                }
            }
        }
        out.sort();
        out
    }

    /// Shares into one (to, part): links without parts count for every part of `to`.
    fn check_shares(&self, push: &mut impl FnMut(String, String, String)) {
        let mut by_to: BTreeMap<&str, Vec<&Link>> = BTreeMap::new();
        for link in self.links.values() {
            by_to.entry(link.to.as_str()).or_default().push(link);
        }
        for (to, links) in by_to {
            let named: BTreeSet<&str> = links
                .iter()
                .flat_map(|l| l.parts.iter().map(String::as_str))
                .collect();
            // A part nobody names explicitly only gets the "all parts" links: check those too.
            let mut groups: Vec<Option<&str>> = vec![None];
            groups.extend(named.into_iter().map(Some));
            for part in groups {
                let into: Vec<&&Link> = links
                    .iter()
                    .filter(|l| match part {
                        None => l.parts.is_empty(),
                        Some(p) => l.applies_to(p),
                    })
                    .collect();
                let sum: f64 = into.iter().map(|l| l.share).sum();
                if sum > 1.0 + SHARE_EPS {
                    let Some(last) = into.last() else { continue };
                    let terms: Vec<String> = into
                        .iter()
                        .map(|l| format!("{} {}", l.from, l.share))
                        .collect();
                    let what = match part {
                        Some(p) => format!("part {p}"),
                        None => "all parts".to_string(),
                    };
                    push(
                        link_key(&last.from, &last.to),
                        "share".into(),
                        format!(
                            "shares of the links into {to} for {what} sum to {} (more than 1): {}",
                            round6(sum),
                            terms.join(", ")
                        ),
                    );
                }
            }
        }
    }

    /// Applies one record of the compacted network topic: `value` `None` (tombstone) deletes the
    /// entry, otherwise the JSON form of one YAML entry replaces it. The result is checked: a
    /// record that adds a problem is refused and the network stays as it was.
    pub fn apply_record(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), RecordError> {
        let Some(parsed) = parse_key(key) else {
            return Err(RecordError::BadKey {
                key: key.to_string(),
            });
        };
        let bad = |reason: String| RecordError::BadValue {
            key: key.to_string(),
            reason,
        };
        // The entry to put in place (None: delete), validated alone first.
        let change = match (parsed, value) {
            (RecordKey::Supplier(id), None) => Change::Supplier(id, None),
            (RecordKey::Link(k), None) => Change::Link(k, None),
            (RecordKey::Part(id), None) => Change::Part(id, None),
            (kind, Some(bytes)) => {
                let json: serde_json::Value =
                    serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid json: {e}")))?;
                let node = parse::node_from_json(&json);
                match kind {
                    RecordKey::Supplier(id) => {
                        let s = parse::supplier_entry(&node).map_err(&bad)?;
                        if s.id != id {
                            return Err(bad(format!("value has id {:?}, key has {id:?}", s.id)));
                        }
                        Change::Supplier(id, Some(s))
                    }
                    RecordKey::Link(k) => {
                        let l = parse::link_entry(&node).map_err(&bad)?;
                        if l.key() != k {
                            return Err(bad(format!(
                                "value is the link {}>{}, key names {}>{}",
                                l.from, l.to, k.from, k.to
                            )));
                        }
                        Change::Link(k, Some(l))
                    }
                    RecordKey::Part(id) => {
                        let p = parse::part_entry(&node).map_err(&bad)?;
                        if p.id != id {
                            return Err(bad(format!("value has id {:?}, key has {id:?}", p.id)));
                        }
                        Change::Part(id, Some(p))
                    }
                }
            }
        };
        // Applied in place and undone when refused: no copy of the network per record.
        let undo = self.swap(change);
        let after = self.check();
        if after.is_empty() {
            return Ok(());
        }
        // Only problems this record adds refuse it; an overlay that was already broken (merge
        // does not check) must not block every later record.
        let redo = self.swap(undo);
        let before: BTreeSet<Problem> = self.check().into_iter().collect();
        let added: Vec<String> = after
            .into_iter()
            .filter(|p| !before.contains(p))
            .map(|p| p.to_string())
            .collect();
        if !added.is_empty() {
            return Err(RecordError::Refused {
                key: key.to_string(),
                reason: added.join("; "),
            });
        }
        self.swap(redo);
        Ok(())
    }

    /// Puts one entry in place (or removes it) and returns the change that undoes it.
    fn swap(&mut self, change: Change) -> Change {
        fn put<K: Ord + Clone, V>(map: &mut BTreeMap<K, V>, k: K, v: Option<V>) -> Option<V> {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            }
        }
        match change {
            Change::Supplier(id, v) => {
                let old = put(&mut self.suppliers, id.clone(), v);
                Change::Supplier(id, old)
            }
            Change::Link(k, v) => {
                let old = put(&mut self.links, k.clone(), v);
                Change::Link(k, old)
            }
            Change::Part(id, v) => {
                let old = put(&mut self.parts, id.clone(), v);
                Change::Part(id, old)
            }
        }
    }

    /// The simulator's network as master data: suppliers with tier, name and country, tier
    /// links, parts with their (qualified) alternates. Recovery time is not simulated: it is
    /// set to half the supplier's quoted lead time, clamped to 7..=45 days (deterministic).
    /// Link shares are clipped so that the shares into one (tier-1, part) sum to at most 1.
    pub fn from_sim(sim: &crate::sim::Network) -> Network {
        let mut net = Network::default();
        for s in &sim.suppliers {
            let ttr = (f64::from(s.lead_time_days) / 2.0).round().clamp(7.0, 45.0);
            net.upsert_supplier(Supplier {
                id: s.id.clone(),
                name: Some(s.name.clone()),
                tier: s.tier,
                recovery_time: Some(from_days(ttr)),
                country: Some(s.country.clone()),
            });
        }
        let mut used: BTreeMap<(String, String), f64> = BTreeMap::new();
        for l in &sim.tier_links {
            let room = l
                .parts
                .iter()
                .map(|p| 1.0 - used.get(&(l.tier1.clone(), p.clone())).unwrap_or(&0.0))
                .fold(1.0_f64, f64::min);
            let share = round6(l.share.min(room));
            if share <= 0.0 || l.parts.is_empty() {
                continue;
            }
            for p in &l.parts {
                *used.entry((l.tier1.clone(), p.clone())).or_default() += share;
            }
            net.upsert_link(Link {
                from: l.tier2.clone(),
                to: l.tier1.clone(),
                parts: l.parts.clone(),
                share,
            });
        }
        for p in &sim.parts {
            net.upsert_part(Part {
                id: p.id.clone(),
                supplier: p.supplier.clone(),
                description: Some(p.description.clone()),
                unit_price: Some(p.unit_price),
                alternates: p
                    .alternates
                    .iter()
                    .map(|a| Alternate {
                        supplier: a.supplier.clone(),
                        qualified: true,
                        capacity_per_day: a.capacity_per_day,
                        lead_time: from_days(f64::from(a.lead_time_days)),
                    })
                    .collect(),
            });
        }
        net
    }
}

/// Rounds to 6 decimals, for messages and clipped shares.
pub(crate) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sup(id: &str, tier: u8) -> Supplier {
        Supplier {
            id: id.into(),
            name: None,
            tier,
            recovery_time: None,
            country: None,
        }
    }

    fn base() -> Network {
        let mut n = Network::default();
        n.upsert_supplier(sup("A", 1));
        n.upsert_supplier(sup("B", 1));
        n.upsert_supplier(sup("X", 2));
        n.upsert_part(Part {
            id: "P1".into(),
            supplier: "A".into(),
            description: None,
            unit_price: Some(2.0),
            alternates: vec![],
        });
        n
    }

    #[test]
    fn records_upsert_and_delete() {
        let mut n = base();
        n.apply_record("link:X>A", Some(br#"{"from":"X","to":"A","share":0.5}"#))
            .unwrap();
        assert_eq!(n.links.len(), 1);
        n.apply_record(
            "supplier:C",
            Some(br#"{"id":"C","tier":1,"recovery_time":"21d"}"#),
        )
        .unwrap();
        assert_eq!(n.supplier("C").unwrap().recovery_days(), Some(21.0));
        n.apply_record("link:X>A", None).unwrap();
        assert!(n.links.is_empty());
        // Deleting something unknown is a no-op, not an error (compaction may replay it).
        n.apply_record("part:NOPE", None).unwrap();
    }

    #[test]
    fn records_that_break_invariants_are_refused_and_change_nothing() {
        let mut n = base();
        n.apply_record("link:X>A", Some(br#"{"from":"X","to":"A","share":0.7}"#))
            .unwrap();
        let before = n.clone();
        // Deleting a supplier still named by a link and a part.
        let err = n.apply_record("supplier:A", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "record supplier:A refused: link:X>A: unknown supplier \"A\"; part:P1: unknown supplier \"A\""
        );
        assert_eq!(n, before);
        // Shares into (A, P1) would sum to 1.3.
        n.upsert_supplier(sup("Y", 2));
        let before_y = n.clone();
        let err = n
            .apply_record(
                "link:Y>A",
                Some(br#"{"from":"Y","to":"A","parts":["P1"],"share":0.6}"#),
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("shares of the links into A for part P1 sum to 1.3"),
            "{err}"
        );
        assert_eq!(n, before_y);
        // Tier rule, key/value mismatch, bad json, bad key.
        let err = n
            .apply_record("link:A>X", Some(br#"{"from":"A","to":"X"}"#))
            .unwrap_err();
        assert!(
            err.to_string().contains("A is tier 1, X is tier 2"),
            "{err}"
        );
        let err = n
            .apply_record("part:P2", Some(br#"{"id":"P1","supplier":"A"}"#))
            .unwrap_err();
        assert!(matches!(err, RecordError::BadValue { .. }), "{err}");
        let err = n.apply_record("part:P2", Some(b"{")).unwrap_err();
        assert!(err.to_string().starts_with("record part:P2: invalid json"));
        let err = n
            .apply_record("part:P2", Some(br#"{"id":"P2","supplier":"A","colour":1}"#))
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown field \"colour\""),
            "{err}"
        );
        assert!(matches!(
            n.apply_record("widget:1", None),
            Err(RecordError::BadKey { .. })
        ));
        assert!(matches!(
            n.apply_record("link:X", None),
            Err(RecordError::BadKey { .. })
        ));
    }

    #[test]
    fn a_network_broken_by_a_merge_still_takes_unrelated_records() {
        let mut n = base();
        n.upsert_part(Part {
            id: "P9".into(),
            supplier: "GHOST".into(),
            description: None,
            unit_price: None,
            alternates: vec![],
        });
        assert_eq!(n.check().len(), 1);
        n.apply_record("supplier:C", Some(br#"{"id":"C","tier":1}"#))
            .unwrap();
        assert!(n.supplier("C").is_some());
        // A record adding a second problem is still refused, and undone.
        let before = n.clone();
        let err = n
            .apply_record("part:P8", Some(br#"{"id":"P8","supplier":"NOPE"}"#))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "record part:P8 refused: part:P8: unknown supplier \"NOPE\""
        );
        assert_eq!(n, before);
        // Fixing the broken part is accepted.
        n.apply_record("part:P9", Some(br#"{"id":"P9","supplier":"C"}"#))
            .unwrap();
        assert_eq!(n.check(), vec![]);
    }

    #[test]
    fn merge_later_wins_and_check_finds_cross_entry_problems() {
        let mut n = base();
        let mut other = Network::default();
        other.upsert_supplier(Supplier {
            name: Some("new".into()),
            ..sup("A", 1)
        });
        other.upsert_part(Part {
            id: "P2".into(),
            supplier: "X".into(),
            description: None,
            unit_price: None,
            alternates: vec![
                Alternate {
                    supplier: "X".into(),
                    qualified: true,
                    capacity_per_day: 1.0,
                    lead_time: Duration::ZERO,
                },
                Alternate {
                    supplier: "Q".into(),
                    qualified: true,
                    capacity_per_day: 1.0,
                    lead_time: Duration::ZERO,
                },
            ],
        });
        n.merge(other);
        assert_eq!(n.supplier("A").unwrap().name.as_deref(), Some("new"));
        let msgs: Vec<String> = n.check().iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "part:P2: alternate X is the primary supplier",
                "part:P2: unknown supplier \"Q\"",
                "part:P2: parts are bought from tier-1 suppliers; X is tier 2",
            ]
        );
    }

    #[test]
    fn json_form_has_the_yaml_shape() {
        let mut n = base();
        n.upsert_link(Link {
            from: "X".into(),
            to: "A".into(),
            parts: vec![],
            share: 0.5,
        });
        n.parts.get_mut("P1").unwrap().alternates.push(Alternate {
            supplier: "B".into(),
            qualified: false,
            capacity_per_day: 40.0,
            lead_time: from_days(14.0),
        });
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(
            json["links"][0],
            serde_json::json!({"from":"X","to":"A","share":0.5})
        );
        assert_eq!(
            json["parts"][0]["alternates"][0],
            serde_json::json!({"supplier":"B","qualified":false,"capacity_per_day":40.0,"lead_time":"14d"})
        );
        assert_eq!(json["suppliers"][0], serde_json::json!({"id":"A","tier":1}));
        // What /api/network shows can be fed back as records.
        let mut m = Network::default();
        for s in json["suppliers"].as_array().unwrap() {
            let key = format!("supplier:{}", s["id"].as_str().unwrap());
            m.apply_record(&key, Some(s.to_string().as_bytes()))
                .unwrap();
        }
        for p in json["parts"].as_array().unwrap() {
            let key = format!("part:{}", p["id"].as_str().unwrap());
            m.apply_record(&key, Some(p.to_string().as_bytes()))
                .unwrap();
        }
        m.apply_record("link:X>A", Some(json["links"][0].to_string().as_bytes()))
            .unwrap();
        assert_eq!(m, n);
    }

    #[test]
    fn simulator_network_converts_to_a_valid_network() {
        let sim = crate::sim::Simulator::new(crate::sim::SimConfig::default());
        let net = Network::from_sim(sim.network());
        assert_eq!(net.suppliers.len(), sim.network().suppliers.len());
        assert_eq!(net.parts.len(), sim.network().parts.len());
        assert!(!net.links.is_empty());
        assert_eq!(net.check(), vec![]);
        for s in net.suppliers.values() {
            let ttr = s.recovery_days().unwrap();
            assert!((7.0..=45.0).contains(&ttr), "{s:?}");
        }
    }

    #[test]
    fn durations_format_as_days_when_whole() {
        assert_eq!(format_duration(from_days(14.0)), "14d");
        assert_eq!(format_duration(from_days(1.5)), "1day 12h");
    }
}
