//! Alternate sources for an alert: the parts an indicator row is about, each with its
//! qualified alternates ranked from the supply network, and the `alternates` annotation text.
//!
//! In: an indicator row (labels and related columns) and the [`Network`]. Out: one
//! [`PartAlternates`] per part the network knows, and a line per part for people.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::network::{Network, RankedAlternate};

/// The re-sourcing options of one part named by an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartAlternates {
    /// Part id.
    pub part: String,
    /// Days until the part runs out (`days_of_supply` of the row), when known.
    pub days_until_stop: Option<f64>,
    /// `single_source`, `dual_source` or `multi_source` (qualified alternates with capacity).
    pub risk_class: crate::network::RiskClass,
    /// Qualified alternates with capacity, ranked.
    pub alternates: Vec<RankedAlternate>,
}

/// The parts an indicator row is about: its `part` label, else its `affected_parts` column
/// (a list, or its text: ids separated by commas or spaces, in brackets or not).
fn parts_of(
    labels: &BTreeMap<String, String>,
    row: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    if let Some(p) = labels.get("part").filter(|p| !p.is_empty()) {
        return vec![p.clone()];
    }
    match row.get("affected_parts") {
        // A list column reaches rows as its display text, `[P-1, P-2]`.
        Some(serde_json::Value::String(s)) => s
            .split([',', ' ', '[', ']'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The ranked alternates of each part of the row that the network knows.
pub(crate) fn part_alternates(
    net: &Network,
    labels: &BTreeMap<String, String>,
    row: &BTreeMap<String, serde_json::Value>,
) -> Vec<PartAlternates> {
    let days = row
        .get("days_of_supply")
        .and_then(serde_json::Value::as_f64)
        .filter(|d| d.is_finite());
    let mut parts = parts_of(labels, row);
    parts.sort();
    parts.dedup();
    parts
        .into_iter()
        .filter_map(|part| {
            let known = net.part(&part)?;
            let qualified = known.alternates.iter().filter(|a| a.is_usable()).count();
            Some(PartAlternates {
                alternates: net.ranked_alternates(&part, days),
                risk_class: crate::network::RiskClass::from_alternates(qualified),
                part,
                days_until_stop: days,
            })
        })
        .collect()
}

/// One line per part for the `alternates` annotation, e.g.
/// `P-1007 (stops in 9.5 d): SUP-T1-011 400/day lead 7 d in time; SUP-T1-015 250/day lead 21 d too late`.
pub fn describe_alternates(parts: &[PartAlternates]) -> String {
    parts
        .iter()
        .map(|p| {
            let head = match p.days_until_stop {
                Some(d) => format!("{} (stops in {d:.1} d)", p.part),
                None => p.part.clone(),
            };
            if p.alternates.is_empty() {
                return format!(
                    "{head}: no qualified alternate with capacity ({})",
                    p.risk_class.as_str()
                );
            }
            let alts = p
                .alternates
                .iter()
                .map(|a| {
                    format!(
                        "{} {}/day lead {} d{}",
                        a.supplier,
                        short(a.capacity_per_day),
                        short(a.lead_time_days),
                        if p.days_until_stop.is_none() {
                            ""
                        } else if a.in_time {
                            " in time"
                        } else {
                            " too late"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            format!("{head}: {alts}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A number for people: whole when it is (or is large), else one decimal.
fn short(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
