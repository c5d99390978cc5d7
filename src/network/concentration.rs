//! Sourcing concentration of our parts: HHI, single source flag and supply risk class.
//!
//! In: a [`Network`] (parts with their alternates), or volumes per supplier for [`hhi`]. Out:
//! one [`PartConcentration`] per part. The risk class follows from how many *qualified*
//! alternates with capacity a part has besides its primary supplier:
//!
//! | qualified alternates | class | risk |
//! |---|---|---|
//! | 0 | `single_source` | high: a failure of the primary stops the part |
//! | 1 | `dual_source` | medium: one fallback, itself a single point of failure |
//! | >= 2 | `multi_source` | low |
//!
//! Alternates approved on paper but not qualified, or with no capacity, do not count.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::Network;

/// Supply risk class of a part, from its number of qualified alternates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskClass {
    /// No qualified alternate: high risk.
    SingleSource,
    /// One qualified alternate: medium risk.
    DualSource,
    /// Two or more qualified alternates: low risk.
    MultiSource,
}

impl RiskClass {
    /// The class for a number of qualified alternates.
    pub fn from_alternates(qualified: usize) -> Self {
        match qualified {
            0 => RiskClass::SingleSource,
            1 => RiskClass::DualSource,
            _ => RiskClass::MultiSource,
        }
    }

    /// `single_source`, `dual_source` or `multi_source` (the value in SQL and labels).
    pub fn as_str(self) -> &'static str {
        match self {
            RiskClass::SingleSource => "single_source",
            RiskClass::DualSource => "dual_source",
            RiskClass::MultiSource => "multi_source",
        }
    }

    /// `high`, `medium` or `low`.
    pub fn level(self) -> &'static str {
        match self {
            RiskClass::SingleSource => "high",
            RiskClass::DualSource => "medium",
            RiskClass::MultiSource => "low",
        }
    }
}

/// The concentration of one part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartConcentration {
    /// Part id.
    pub part: String,
    /// Its primary (tier-1) supplier.
    pub supplier: String,
    /// Alternates that are qualified and have capacity.
    pub qualified_alternates: usize,
    /// No qualified alternate.
    pub single_source: bool,
    /// Class from `qualified_alternates`.
    pub risk_class: RiskClass,
}

/// Herfindahl-Hirschman index of volumes by supplier: the sum of squared shares, in (0, 1]
/// (1 = one supplier has it all). Volumes of the same supplier are added first; negative and
/// non-finite volumes are ignored. `None` when there is no positive volume.
pub fn hhi<S: AsRef<str>>(volumes: &[(S, f64)]) -> Option<f64> {
    let mut by: BTreeMap<&str, f64> = BTreeMap::new();
    for (supplier, v) in volumes {
        if v.is_finite() && *v > 0.0 {
            *by.entry(supplier.as_ref()).or_default() += v;
        }
    }
    let total: f64 = by.values().sum();
    (total > 0.0).then(|| by.values().map(|v| (v / total).powi(2)).sum())
}

impl Network {
    /// The concentration of every part, in part id order.
    pub fn concentration(&self) -> Vec<PartConcentration> {
        self.parts
            .values()
            .map(|p| {
                let qualified = p.alternates.iter().filter(|a| a.is_usable()).count();
                PartConcentration {
                    part: p.id.clone(),
                    supplier: p.supplier.clone(),
                    qualified_alternates: qualified,
                    single_source: qualified == 0,
                    risk_class: RiskClass::from_alternates(qualified),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::model::Alternate;
    use crate::network::paths::tests::{part, sup};
    use std::time::Duration;

    fn alt(supplier: &str, qualified: bool, capacity: f64) -> Alternate {
        Alternate {
            supplier: supplier.into(),
            qualified,
            capacity_per_day: capacity,
            lead_time: Duration::ZERO,
        }
    }

    #[test]
    fn hhi_of_volumes() {
        assert_eq!(hhi(&[("A", 100.0)]), Some(1.0));
        // 60/40: 0.36 + 0.16.
        assert!((hhi(&[("A", 60.0), ("B", 40.0)]).unwrap() - 0.52).abs() < 1e-12);
        // The same supplier twice is one supplier.
        assert_eq!(hhi(&[("A", 30.0), ("A", 70.0)]), Some(1.0));
        // Four equal suppliers: 4 * 0.0625.
        let four: Vec<(String, f64)> = (0..4).map(|i| (format!("S{i}"), 5.0)).collect();
        assert!((hhi(&four).unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(hhi::<&str>(&[]), None);
        assert_eq!(hhi(&[("A", -1.0), ("B", f64::NAN), ("C", 0.0)]), None);
        assert_eq!(hhi(&[("A", 5.0), ("B", -3.0)]), Some(1.0));
    }

    #[test]
    fn classes_count_only_qualified_alternates_with_capacity() {
        let mut n = Network::default();
        for id in ["A", "B", "C", "D"] {
            n.upsert_supplier(sup(id, 1));
        }
        let mut p1 = part("P1", "A");
        p1.alternates = vec![alt("B", false, 100.0), alt("C", true, 0.0)];
        let mut p2 = part("P2", "A");
        p2.alternates = vec![alt("B", true, 10.0), alt("C", false, 10.0)];
        let mut p3 = part("P3", "A");
        p3.alternates = vec![
            alt("B", true, 10.0),
            alt("C", true, 1.0),
            alt("D", true, 1.0),
        ];
        for p in [p1, p2, p3] {
            n.upsert_part(p);
        }
        let c = n.concentration();
        let got: Vec<(&str, usize, bool, &str, &str)> = c
            .iter()
            .map(|c| {
                (
                    c.part.as_str(),
                    c.qualified_alternates,
                    c.single_source,
                    c.risk_class.as_str(),
                    c.risk_class.level(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("P1", 0, true, "single_source", "high"),
                ("P2", 1, false, "dual_source", "medium"),
                ("P3", 3, false, "multi_source", "low"),
            ]
        );
        assert_eq!(
            serde_json::to_value(RiskClass::DualSource).unwrap(),
            "dual_source"
        );
    }
}
