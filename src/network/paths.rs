//! Multi-tier roll-up paths: which sub-tier supplier feeds which downstream supplier, for which
//! of our parts, with what cumulative share.
//!
//! In: a [`Network`]. Out: [`PathRow`]s, one per (source, downstream supplier, part, depth):
//! for every supplier S of tier >= 2 and every supplier D it reaches through links (depth 1 =
//! its direct customer), the share of D's input for part P that traces back to S: the product
//! of the link shares along the path, summed over the paths of that depth and capped at 1. A
//! link without parts carries every part its customer makes or feeds. The parts of a tier-1
//! supplier are the parts bought from it; those of a sub-tier supplier are the parts its links
//! carry. Also the dependency f(N, P) of each part on each node, used by the exposure maths.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::model::{Link, Network, MAX_TIER};

/// One roll-up path (aggregated over the paths of equal depth between the same two nodes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathRow {
    /// The sub-tier supplier where a problem starts.
    pub source: String,
    /// Its tier (>= 2).
    pub source_tier: u8,
    /// The downstream supplier it reaches.
    pub supplier: String,
    /// That supplier's tier.
    pub tier: u8,
    /// Our part whose supply goes through both.
    pub part: String,
    /// Number of links from `source` to `supplier` (1 = direct customer).
    pub depth: u32,
    /// Share of `supplier`'s input for `part` that comes from `source`, in (0, 1].
    pub share: f64,
}

type Filter<'a> = Option<BTreeSet<&'a str>>;

impl Network {
    /// The parts each supplier makes or feeds for us (see the module header).
    pub(crate) fn parts_of(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for p in self.parts.values() {
            out.entry(p.supplier.as_str()).or_default().insert(&p.id);
        }
        // Lower tiers first, so a customer's parts are known before its suppliers' (links go
        // from a higher tier to a lower one; a link breaking that rule just adds nothing).
        let mut order: Vec<(u8, &str)> = self
            .suppliers
            .values()
            .map(|s| (s.tier, s.id.as_str()))
            .collect();
        order.sort();
        let outgoing = self.outgoing();
        for (_, id) in order {
            let mut parts: BTreeSet<&str> = BTreeSet::new();
            for link in outgoing.get(id).into_iter().flatten() {
                let Some(downstream) = out.get(link.to.as_str()) else {
                    continue;
                };
                parts.extend(downstream.iter().copied().filter(|p| link.applies_to(p)));
            }
            if !parts.is_empty() {
                out.entry(id).or_default().extend(parts);
            }
        }
        out
    }

    /// Links by their `from` supplier.
    fn outgoing(&self) -> BTreeMap<&str, Vec<&Link>> {
        let mut out: BTreeMap<&str, Vec<&Link>> = BTreeMap::new();
        for link in self.links.values() {
            out.entry(link.from.as_str()).or_default().push(link);
        }
        out
    }

    /// Every roll-up path up to `max_depth` links, sorted by source, depth, supplier, part.
    pub fn paths(&self, max_depth: u32) -> Vec<PathRow> {
        let parts_of = self.parts_of();
        let outgoing = self.outgoing();
        let mut rows: BTreeMap<(&str, u32, &str, &str), f64> = BTreeMap::new();
        for source in self.suppliers.values().filter(|s| s.tier >= 2) {
            // Depth-first over (node, depth, cumulative share, parts still carried); the depth
            // bound also ends the walk in a network whose tiers were broken by a merge.
            let mut stack: Vec<(&str, u32, f64, Filter)> = vec![(&source.id, 0, 1.0, None)];
            while let Some((node, depth, share, filter)) = stack.pop() {
                if depth >= max_depth {
                    continue;
                }
                for link in outgoing.get(node).into_iter().flatten() {
                    let filter = narrow(&filter, link);
                    let here: Vec<&str> = parts_of
                        .get(link.to.as_str())
                        .into_iter()
                        .flatten()
                        .copied()
                        .filter(|p| filter.as_ref().is_none_or(|f| f.contains(p)))
                        .collect();
                    if here.is_empty() {
                        continue;
                    }
                    let share = share * link.share;
                    for part in here {
                        *rows
                            .entry((&source.id, depth + 1, &link.to, part))
                            .or_default() += share;
                    }
                    stack.push((&link.to, depth + 1, share, filter));
                }
            }
        }
        rows.into_iter()
            .map(|((source, depth, supplier, part), share)| PathRow {
                source: source.to_string(),
                source_tier: self.tier(source).unwrap_or(0),
                supplier: supplier.to_string(),
                tier: self.tier(supplier).unwrap_or(0),
                part: part.to_string(),
                depth,
                share: share.min(1.0),
            })
            .collect()
    }

    /// f(N, P) for every node N and every part P that depends on it: 1 when N is P's primary
    /// supplier, else the share of P's primary's input that traces back to N (summed over all
    /// paths, capped at 1). Parts that do not depend on N are absent.
    pub fn dependencies(&self) -> BTreeMap<String, BTreeMap<String, f64>> {
        let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for p in self.parts.values() {
            out.entry(p.supplier.clone())
                .or_default()
                .insert(p.id.clone(), 1.0);
        }
        for row in self.paths(u32::from(MAX_TIER)) {
            let primary = self.parts.get(&row.part).map(|p| p.supplier.as_str());
            if primary != Some(row.supplier.as_str()) {
                continue;
            }
            let f = out
                .entry(row.source)
                .or_default()
                .entry(row.part)
                .or_default();
            *f = (*f + row.share).min(1.0);
        }
        out
    }
}

/// The parts still carried after `link`: a link with parts keeps only those.
fn narrow<'a>(filter: &Filter<'a>, link: &'a Link) -> Filter<'a> {
    if link.parts.is_empty() {
        return filter.clone();
    }
    let named = link.parts.iter().map(String::as_str);
    Some(match filter {
        None => named.collect(),
        Some(f) => named.filter(|p| f.contains(p)).collect(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::network::model::{Part, Supplier};

    pub(crate) fn sup(id: &str, tier: u8) -> Supplier {
        Supplier {
            id: id.into(),
            name: None,
            tier,
            recovery_time: None,
            country: None,
        }
    }

    pub(crate) fn part(id: &str, supplier: &str) -> Part {
        Part {
            id: id.into(),
            supplier: supplier.into(),
            description: None,
            unit_price: None,
            alternates: vec![],
        }
    }

    pub(crate) fn link(from: &str, to: &str, parts: &[&str], share: f64) -> Link {
        Link {
            from: from.into(),
            to: to.into(),
            parts: parts.iter().map(|p| p.to_string()).collect(),
            share,
        }
    }

    /// T3 -> T2a (all parts, 0.5) -> A (P1 only, 0.8); T2a -> B (all, 1.0);
    /// T3 -> T2b (all, 0.4) -> A (all, 0.2). A makes P1, P2; B makes P3.
    fn diamond() -> Network {
        let mut n = Network::default();
        for (id, tier) in [("A", 1), ("B", 1), ("T2a", 2), ("T2b", 2), ("T3", 3)] {
            n.upsert_supplier(sup(id, tier));
        }
        n.upsert_part(part("P1", "A"));
        n.upsert_part(part("P2", "A"));
        n.upsert_part(part("P3", "B"));
        n.upsert_link(link("T2a", "A", &["P1"], 0.8));
        n.upsert_link(link("T2a", "B", &[], 1.0));
        n.upsert_link(link("T2b", "A", &[], 0.2));
        n.upsert_link(link("T3", "T2a", &[], 0.5));
        n.upsert_link(link("T3", "T2b", &[], 0.4));
        assert_eq!(n.check(), vec![]);
        n
    }

    fn row(r: &PathRow) -> (String, String, String, u32, f64) {
        (
            r.source.clone(),
            r.supplier.clone(),
            r.part.clone(),
            r.depth,
            (r.share * 1e9).round() / 1e9,
        )
    }

    #[test]
    fn paths_multiply_shares_and_follow_part_filters() {
        let n = diamond();
        let rows: Vec<_> = n.paths(5).iter().map(row).collect();
        let s = |a: &str, b: &str, p: &str, d: u32, x: f64| {
            (a.to_string(), b.to_string(), p.to_string(), d, x)
        };
        assert_eq!(
            rows,
            [
                s("T2a", "A", "P1", 1, 0.8),
                s("T2a", "B", "P3", 1, 1.0),
                s("T2b", "A", "P1", 1, 0.2),
                s("T2b", "A", "P2", 1, 0.2),
                // T2a carries P1 (to A) and P3 (to B); T2b carries P1, P2.
                s("T3", "T2a", "P1", 1, 0.5),
                s("T3", "T2a", "P3", 1, 0.5),
                s("T3", "T2b", "P1", 1, 0.4),
                s("T3", "T2b", "P2", 1, 0.4),
                // Depth 2 into A for P1: 0.5 * 0.8 + 0.4 * 0.2 = 0.48, two paths summed.
                s("T3", "A", "P1", 2, 0.48),
                s("T3", "A", "P2", 2, 0.08),
                s("T3", "B", "P3", 2, 0.5),
            ]
        );
        assert!(n.paths(1).iter().all(|r| r.depth == 1));
        assert_eq!(n.paths(0), vec![]);
        let t3 = n.paths(5).into_iter().find(|r| r.source == "T3").unwrap();
        assert_eq!((t3.source_tier, t3.tier), (3, 2));
    }

    #[test]
    fn dependencies_are_one_for_the_primary_and_path_shares_for_sub_tiers() {
        let deps = diamond().dependencies();
        assert_eq!(
            deps["A"],
            BTreeMap::from([("P1".into(), 1.0), ("P2".into(), 1.0)])
        );
        assert_eq!(
            deps["T2a"],
            BTreeMap::from([("P1".into(), 0.8), ("P3".into(), 1.0)])
        );
        let t3 = &deps["T3"];
        assert!((t3["P1"] - 0.48).abs() < 1e-12);
        assert!((t3["P2"] - 0.08).abs() < 1e-12);
        assert!((t3["P3"] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_link_whose_parts_the_customer_does_not_make_rolls_up_nothing() {
        let mut n = diamond();
        n.upsert_link(link("T2b", "B", &["P1"], 0.5)); // B does not make P1
        let rows = n.paths(5);
        assert!(!rows.iter().any(|r| r.source == "T2b" && r.supplier == "B"));
    }
}
