//! Scoring rules against breaches: which alerts came before a real failure, and how early.
//!
//! In: the [`Episode`]s of a replay, the [`Breach`]es found in the data, each rule's
//! [`Mapping`] to the breach kind it predicts, and a horizon. Out: a [`RuleScore`] per rule.
//!
//! Mapping (by the labels of the rule's indicator, overridable per rule with the static label
//! `backtest_breach: late_delivery | stock_out | none`):
//! - `site` and `part` without `supplier` -> stock-outs of that site and part;
//! - any of `supplier`, `po`, `line`, `part`, `site`, `lane`, `origin`, `destination`,
//!   `location` -> late deliveries; an alert matches a late line when every one of those labels
//!   it has equals the line's (`location`: any location the line's shipment reported at), so a
//!   per-line prediction is matched with that very line;
//! - otherwise the rule is not scored (counts only).
//!
//! Measures, with `H` the horizon:
//! - precision: of the episodes that fired, the share followed by a matching breach within
//!   `[fired, fired + H]`. An episode with no such breach whose window runs past the end of the
//!   data is *undecided* and left out.
//! - recall: matching breaches are grouped per key into breach episodes (a breach more than `H`
//!   after the first of the current episode starts a new one); an episode starting at `t` is
//!   recalled when an alert of the rule for that key was firing at some time in `[t - H, t]`.
//!   Breach episodes before the first evaluation are left out (nothing could have warned).
//! - lead time: for each recalled breach episode, `t` minus the first firing of the earliest
//!   such alert; median and 90th percentile (linear interpolation), in days.

use std::collections::BTreeMap;

use serde::Serialize;

use super::breaches::{Breach, BreachKind};
use super::replay::{Episode, ReplayOutcome};
use crate::pipeline::RuleBook;
use crate::rules::AlertRule;
use crate::state::DAY_MS;

/// The static label that overrides a rule's breach kind.
pub const OVERRIDE_LABEL: &str = "backtest_breach";

/// Labels a late delivery can be matched on.
const LATE_DIMS: [&str; 9] = [
    "supplier",
    "po",
    "line",
    "part",
    "site",
    "lane",
    "origin",
    "destination",
    "location",
];
/// Labels a stock-out can be matched on.
const STOCK_DIMS: [&str; 2] = ["site", "part"];

/// What a rule is scored against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mapping {
    /// The breach kind it predicts; `None`: not scored.
    pub breach: Option<BreachKind>,
    /// The labels alerts and breaches are matched on.
    pub match_labels: Vec<String>,
    /// How the mapping was chosen, for the report.
    pub note: String,
}

/// The mapping of `rule`, whose indicator has the label columns `labels`.
pub fn mapping(rule: &AlertRule, labels: &[String]) -> Mapping {
    let has = |l: &str| labels.iter().any(|x| x == l);
    let dims = |kind: BreachKind| -> Vec<String> {
        let wanted: &[&str] = match kind {
            BreachKind::LateDelivery => &LATE_DIMS,
            BreachKind::StockOut => &STOCK_DIMS,
        };
        labels
            .iter()
            .filter(|l| wanted.contains(&l.as_str()))
            .cloned()
            .collect()
    };
    let make = |breach: Option<BreachKind>, note: String| {
        let match_labels = breach.map(dims).unwrap_or_default();
        if breach.is_some() && match_labels.is_empty() {
            return Mapping {
                breach: None,
                match_labels,
                note: format!("{note}, but the indicator has no label to match on"),
            };
        }
        Mapping {
            breach,
            match_labels,
            note,
        }
    };
    if let Some(text) = rule.labels.get(OVERRIDE_LABEL) {
        return match text.as_str() {
            "none" => make(None, format!("{OVERRIDE_LABEL}: none")),
            other => match BreachKind::parse(other) {
                Some(kind) => make(Some(kind), format!("{OVERRIDE_LABEL}: {other}")),
                None => make(
                    None,
                    format!(
                        "invalid {OVERRIDE_LABEL} {other:?} (late_delivery, stock_out or none)"
                    ),
                ),
            },
        };
    }
    if has("site") && has("part") && !has("supplier") {
        make(Some(BreachKind::StockOut), "by labels site+part".into())
    } else if LATE_DIMS.iter().any(|d| has(d)) {
        let m = make(Some(BreachKind::LateDelivery), String::new());
        Mapping {
            note: format!("by labels {}", m.match_labels.join("+")),
            ..m
        }
    } else {
        make(
            None,
            "no supplier, site+part, lane or location label".into(),
        )
    }
}

/// The scores of one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleScore {
    /// The rule.
    pub rule: String,
    /// Its indicator.
    pub indicator: String,
    /// What it is scored against.
    pub mapping: Mapping,
    /// Alert episodes (pending or more).
    pub episodes: usize,
    /// Episodes that fired.
    pub fired: usize,
    /// Fired episodes that were resolved.
    pub resolved: usize,
    /// Fired episodes still firing at the end.
    pub firing_at_end: usize,
    /// Episodes dropped before firing.
    pub cancelled: usize,
    /// Fired episodes followed by a matching breach within the horizon.
    pub true_positives: usize,
    /// Fired episodes with no matching breach within the horizon.
    pub false_positives: usize,
    /// Fired episodes without a breach so far whose horizon runs past the data.
    pub undecided: usize,
    /// `true_positives / (true_positives + false_positives)`.
    pub precision: Option<f64>,
    /// Breach episodes of the mapped kind, per matching key, after the first evaluation.
    pub breach_episodes: usize,
    /// Breach episodes before the first evaluation (not counted in recall).
    pub breach_episodes_before_start: usize,
    /// Breach episodes preceded by a firing alert within the horizon.
    pub recalled: usize,
    /// `recalled / breach_episodes`.
    pub recall: Option<f64>,
    /// Lead time of each recalled breach episode, in days, ascending.
    pub lead_days: Vec<f64>,
    /// Median lead time (days).
    pub lead_median_days: Option<f64>,
    /// 90th percentile lead time (days).
    pub lead_p90_days: Option<f64>,
}

/// Scores every rule of `book` on a replay's outcome.
pub fn score(outcome: &ReplayOutcome, book: &RuleBook, horizon_ms: i64) -> Vec<RuleScore> {
    let schemas = book.indicators.schemas();
    let window = (outcome.schedule.start, outcome.schedule.end);
    book.rules
        .rules()
        .map(|rule| {
            let labels = schemas
                .get(&rule.indicator)
                .map(|s| s.labels.clone())
                .unwrap_or_default();
            let m = mapping(rule, &labels);
            score_rule(
                &rule.name,
                &rule.indicator,
                m,
                &outcome.episodes,
                &outcome.breaches,
                window,
                horizon_ms,
            )
        })
        .collect()
}

/// Scores one rule; `window` is the first and last evaluation time.
pub fn score_rule(
    rule: &str,
    indicator: &str,
    mapping: Mapping,
    episodes: &[Episode],
    breaches: &[Breach],
    window: (i64, i64),
    horizon_ms: i64,
) -> RuleScore {
    let mine: Vec<&Episode> = episodes.iter().filter(|e| e.rule == rule).collect();
    let fired: Vec<&Episode> = mine
        .iter()
        .copied()
        .filter(|e| e.fired_at.is_some())
        .collect();
    let mut s = RuleScore {
        rule: rule.to_string(),
        indicator: indicator.to_string(),
        mapping: mapping.clone(),
        episodes: mine.len(),
        fired: fired.len(),
        resolved: fired.iter().filter(|e| e.resolved_at.is_some()).count(),
        firing_at_end: fired.iter().filter(|e| e.resolved_at.is_none()).count(),
        cancelled: mine.iter().filter(|e| e.cancelled_at.is_some()).count(),
        true_positives: 0,
        false_positives: 0,
        undecided: 0,
        precision: None,
        breach_episodes: 0,
        breach_episodes_before_start: 0,
        recalled: 0,
        recall: None,
        lead_days: Vec::new(),
        lead_median_days: None,
        lead_p90_days: None,
    };
    let Some(kind) = mapping.breach else {
        return s;
    };
    let dims = &mapping.match_labels;
    // Breach times per matching key, ascending (breaches come sorted by time).
    let mut by_key: BTreeMap<BTreeMap<String, String>, Vec<i64>> = BTreeMap::new();
    for b in breaches.iter().filter(|b| b.kind == kind) {
        for key in breach_keys(b, dims) {
            by_key.entry(key).or_default().push(b.at);
        }
    }
    for e in &fired {
        let fired_at = e.fired_at.unwrap_or(e.pending_at);
        let hit = alert_key(e, dims)
            .and_then(|k| by_key.get(&k))
            .is_some_and(|ts| {
                ts.iter()
                    .any(|&t| t >= fired_at && t <= fired_at.saturating_add(horizon_ms))
            });
        if hit {
            s.true_positives += 1;
        } else if fired_at.saturating_add(horizon_ms) > window.1 {
            s.undecided += 1;
        } else {
            s.false_positives += 1;
        }
    }
    let judged = s.true_positives + s.false_positives;
    s.precision = (judged > 0).then(|| s.true_positives as f64 / judged as f64);
    let mut alerts_by_key: BTreeMap<BTreeMap<String, String>, Vec<&Episode>> = BTreeMap::new();
    for e in &fired {
        if let Some(k) = alert_key(e, dims) {
            alerts_by_key.entry(k).or_default().push(e);
        }
    }
    for (key, times) in &by_key {
        for t0 in episode_starts(times, horizon_ms) {
            if t0 < window.0 {
                s.breach_episodes_before_start += 1;
                continue;
            }
            s.breach_episodes += 1;
            let first_fire = alerts_by_key
                .get(key)
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    let fired = e.fired_at?;
                    let until = e.resolved_at.unwrap_or(i64::MAX);
                    (fired <= t0 && until >= t0.saturating_sub(horizon_ms)).then_some(fired)
                })
                .min();
            if let Some(f) = first_fire {
                s.recalled += 1;
                s.lead_days.push((t0 - f) as f64 / DAY_MS as f64);
            }
        }
    }
    s.recall = (s.breach_episodes > 0).then(|| s.recalled as f64 / s.breach_episodes as f64);
    s.lead_days.sort_by(f64::total_cmp);
    s.lead_median_days = percentile(&s.lead_days, 0.5);
    s.lead_p90_days = percentile(&s.lead_days, 0.9);
    s
}

/// The starts of breach episodes: a breach more than `horizon` after the current episode's
/// first starts the next one. `times` ascending.
fn episode_starts(times: &[i64], horizon: i64) -> Vec<i64> {
    let mut starts: Vec<i64> = Vec::new();
    for &t in times {
        if starts.last().is_none_or(|&s| t.saturating_sub(s) > horizon) {
            starts.push(t);
        }
    }
    starts
}

/// The alert's labels restricted to `dims`; `None` when one is missing.
fn alert_key(e: &Episode, dims: &[String]) -> Option<BTreeMap<String, String>> {
    dims.iter()
        .map(|d| Some((d.clone(), e.labels.get(d)?.clone())))
        .collect()
}

/// Every key of `dims` a breach matches (one per location for `location`).
fn breach_keys(b: &Breach, dims: &[String]) -> Vec<BTreeMap<String, String>> {
    let mut keys = vec![BTreeMap::new()];
    for d in dims {
        let values: Vec<String> = if d == "location" {
            b.locations.clone()
        } else {
            b.key.get(d).cloned().into_iter().collect()
        };
        keys = keys
            .into_iter()
            .flat_map(|k| {
                values.iter().map(move |v| {
                    let mut k = k.clone();
                    k.insert(d.clone(), v.clone());
                    k
                })
            })
            .collect();
    }
    keys
}

/// The `p` quantile (0..=1) of ascending `sorted`, linearly interpolated.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = p.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (a, b) = (sorted[lo], sorted[hi.min(last)]);
    Some(a + (b - a) * (pos - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Severity;

    const D: i64 = DAY_MS;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn episode(supplier: &str, fired: Option<i64>, resolved: Option<i64>) -> Episode {
        Episode {
            rule: "R".into(),
            labels: labels(&[("alertname", "R"), ("supplier", supplier)]),
            severity: Severity::Warning,
            pending_at: fired.unwrap_or(0),
            fired_at: fired,
            resolved_at: resolved,
            cancelled_at: fired.is_none().then_some(1),
            value: 1.0,
            threshold: 1.0,
            summary: String::new(),
        }
    }

    fn late(supplier: &str, at: i64) -> Breach {
        Breach {
            kind: BreachKind::LateDelivery,
            at,
            key: labels(&[("supplier", supplier), ("part", "P"), ("site", "S")]),
            locations: vec!["SGSIN".into()],
            detail: String::new(),
            open: false,
        }
    }

    fn rule(labels_: &[(&str, &str)]) -> AlertRule {
        let mut r = crate::rules::load_paths(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rules/supplier_delivery.good.yaml"
        ))])
        .unwrap()
        .rules()
        .next()
        .unwrap()
        .clone();
        r.labels = labels(labels_);
        r
    }

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mapping_follows_indicator_labels_and_the_override() {
        let r = rule(&[]);
        let m = mapping(&r, &cols(&["supplier"]));
        assert_eq!(
            (m.breach, m.match_labels),
            (Some(BreachKind::LateDelivery), cols(&["supplier"]))
        );
        let m = mapping(&r, &cols(&["site", "part"]));
        assert_eq!(
            (m.breach, m.match_labels),
            (Some(BreachKind::StockOut), cols(&["site", "part"]))
        );
        let m = mapping(&r, &cols(&["lane", "origin", "destination"]));
        assert_eq!(m.breach, Some(BreachKind::LateDelivery));
        assert_eq!(m.match_labels.len(), 3);
        assert_eq!(mapping(&r, &cols(&["region"])).breach, None);
        let m = mapping(&rule(&[(OVERRIDE_LABEL, "none")]), &cols(&["supplier"]));
        assert_eq!(m.breach, None);
        let m = mapping(
            &rule(&[(OVERRIDE_LABEL, "stock_out")]),
            &cols(&["supplier", "part", "site"]),
        );
        assert_eq!(
            (m.breach, m.match_labels),
            (Some(BreachKind::StockOut), cols(&["part", "site"]))
        );
        let m = mapping(&rule(&[(OVERRIDE_LABEL, "soon")]), &cols(&["supplier"]));
        assert_eq!(m.breach, None);
        assert!(
            m.note.starts_with("invalid backtest_breach \"soon\""),
            "{}",
            m.note
        );
    }

    #[test]
    fn precision_recall_and_lead_by_hand() {
        let m = Mapping {
            breach: Some(BreachKind::LateDelivery),
            match_labels: cols(&["supplier"]),
            note: String::new(),
        };
        let episodes = vec![
            // A: fired day 10, breaches day 12 and 13 (one episode) and day 30 (another).
            episode("A", Some(10 * D), Some(20 * D)),
            // B: fired day 5, nothing follows within 14 days: false positive.
            episode("B", Some(5 * D), Some(6 * D)),
            // C: fired day 55, horizon runs past the end (day 60): undecided.
            episode("C", Some(55 * D), None),
            // Never fired: not in precision.
            episode("A", None, None),
        ];
        let breaches = vec![
            late("Z", D / 2), // before the first evaluation (day 1)
            late("A", 12 * D),
            late("A", 13 * D),
            late("A", 30 * D), // 18 days after 12: new episode; alert resolved day 20 >= 16
            late("D", 40 * D), // no alert for D
        ];
        let s = score_rule("R", "i", m, &episodes, &breaches, (D, 60 * D), 14 * D);
        assert_eq!((s.episodes, s.fired, s.cancelled), (4, 3, 1));
        assert_eq!((s.resolved, s.firing_at_end), (2, 1));
        assert_eq!(
            (s.true_positives, s.false_positives, s.undecided),
            (1, 1, 1)
        );
        assert_eq!(s.precision, Some(0.5));
        assert_eq!(
            (
                s.breach_episodes,
                s.breach_episodes_before_start,
                s.recalled
            ),
            (3, 1, 2)
        );
        assert_eq!(s.recall, Some(2.0 / 3.0));
        assert_eq!(s.lead_days, [2.0, 20.0]);
        assert_eq!(s.lead_median_days, Some(11.0));
        assert_eq!(s.lead_p90_days, Some(2.0 + 0.9 * 18.0));
    }

    #[test]
    fn location_rules_match_any_location_of_the_shipment() {
        let m = Mapping {
            breach: Some(BreachKind::LateDelivery),
            match_labels: cols(&["location"]),
            note: String::new(),
        };
        let mut e = episode("A", Some(10 * D), None);
        e.labels = labels(&[("location", "SGSIN")]);
        let s = score_rule("R", "i", m, &[e], &[late("A", 11 * D)], (0, 60 * D), 14 * D);
        assert_eq!((s.true_positives, s.recalled), (1, 1));
        assert_eq!(s.lead_days, [1.0]);
    }

    #[test]
    fn unscored_rules_only_count() {
        let m = Mapping {
            breach: None,
            match_labels: vec![],
            note: String::new(),
        };
        let s = score_rule(
            "R",
            "i",
            m,
            &[episode("A", Some(D), None)],
            &[late("A", 2 * D)],
            (0, 60 * D),
            14 * D,
        );
        assert_eq!((s.fired, s.true_positives, s.precision), (1, 0, None));
        assert_eq!((s.breach_episodes, s.recall), (0, None));
    }

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0], 0.9), Some(3.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(percentile(&[0.0, 10.0], 0.9), Some(9.0));
    }
}
