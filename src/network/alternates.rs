//! The alternates of a part, ranked for re-sourcing (shown on alerts).
//!
//! In: a [`Network`], a part id and, when known, the days until the line stops. Out: the
//! part's usable alternates (qualified, capacity > 0) as [`RankedAlternate`]s: those that can
//! deliver before the stop first, then by lead time, then by capacity (largest first).

use serde::Serialize;

use super::model::Network;

/// One usable alternate of a part.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RankedAlternate {
    /// Alternate supplier id.
    pub supplier: String,
    /// Always true here (only qualified alternates are ranked); kept for the alert's payload.
    pub qualified: bool,
    /// Units a day it could deliver.
    pub capacity_per_day: f64,
    /// Days until its first delivery.
    pub lead_time_days: f64,
    /// It delivers before the line stops (`lead_time_days <= days_until_stop`; true when the
    /// stop is unknown).
    pub in_time: bool,
}

impl Network {
    /// The qualified alternates of `part` with capacity, ranked (empty for an unknown part).
    pub fn ranked_alternates(
        &self,
        part: &str,
        days_until_stop: Option<f64>,
    ) -> Vec<RankedAlternate> {
        let Some(p) = self.part(part) else {
            return Vec::new();
        };
        let mut out: Vec<RankedAlternate> = p
            .alternates
            .iter()
            .filter(|a| a.is_usable())
            .map(|a| {
                let lead = a.lead_time_days();
                RankedAlternate {
                    supplier: a.supplier.clone(),
                    qualified: a.qualified,
                    capacity_per_day: a.capacity_per_day,
                    lead_time_days: lead,
                    // NaN days (bad input) compare false: treated as not in time.
                    in_time: days_until_stop.is_none_or(|d| lead <= d),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.in_time
                .cmp(&a.in_time)
                .then(a.lead_time_days.total_cmp(&b.lead_time_days))
                .then(b.capacity_per_day.total_cmp(&a.capacity_per_day))
                .then_with(|| a.supplier.cmp(&b.supplier))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::network::load_str;
    use std::path::Path;

    #[test]
    fn in_time_first_then_lead_time_then_capacity() {
        let net = load_str(
            Path::new("n.yaml"),
            "\
suppliers: [{id: A, tier: 1}, {id: B, tier: 1}, {id: C, tier: 1}, {id: D, tier: 1}, {id: E, tier: 1}, {id: F, tier: 1}]
parts:
  - id: P
    supplier: A
    alternates:
      - { supplier: B, capacity_per_day: 10, lead_time: 20d }
      - { supplier: C, capacity_per_day: 50, lead_time: 7d }
      - { supplier: D, capacity_per_day: 90, lead_time: 7d }
      - { supplier: E, qualified: false, capacity_per_day: 999, lead_time: 1d }
      - { supplier: F, capacity_per_day: 0, lead_time: 1d }
",
        )
        .unwrap();
        let ids = |days: Option<f64>| -> Vec<(String, bool)> {
            net.ranked_alternates("P", days)
                .into_iter()
                .map(|a| (a.supplier, a.in_time))
                .collect()
        };
        let s = |id: &str, t: bool| (id.to_string(), t);
        assert_eq!(ids(None), [s("D", true), s("C", true), s("B", true)]);
        assert_eq!(ids(Some(10.0)), [s("D", true), s("C", true), s("B", false)]);
        assert_eq!(ids(Some(7.0)), [s("D", true), s("C", true), s("B", false)]);
        assert_eq!(
            ids(Some(3.0)),
            [s("D", false), s("C", false), s("B", false)]
        );
        assert!(net.ranked_alternates("NOPE", None).is_empty());
        let first = &net.ranked_alternates("P", None)[0];
        assert_eq!((first.capacity_per_day, first.lead_time_days), (90.0, 7.0));
    }
}
