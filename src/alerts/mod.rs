//! The alert state machine: indicator rows + event time -> pending, firing and resolved alerts.
//!
//! In: for one rule at a time, the rows of its indicator at this tick ([`Sample`]s: key columns as
//! labels, the value column, the whole row) and the tick's event time in milliseconds. Out:
//! [`AlertEngine::alerts`], the current [`Alert`]s with rendered annotations, ready to be exported
//! as `ALERTS` / `ALERTS_FOR_STATE` series and sent to alert sinks.
//!
//! Prometheus semantics (`rules/alerting.go`), made a pure function of (samples, now): no clock is
//! read, so replays and tests are deterministic.
//! - Severity: critical when `value op critical`, else warning when `value op warning`, else the
//!   condition is false (so is a missing or NaN value).
//! - Identity: rule + labels without `severity`, so an alert escalates and de-escalates in place.
//! - inactive -> pending (`active_at = now`) -> firing once `now - active_at >= for` (at once when
//!   `for` is 0). When the condition is false or the row is absent, a pending alert is dropped and
//!   a firing one stays firing while `now - last_true < keep_firing_for`, then is resolved.
//! - Resolved alerts are kept [`RESOLVED_RETENTION_MS`] of event time so sinks can re-send them;
//!   if the condition comes back meanwhile a new pending alert replaces it.
//! - Several rows with one label set in one evaluation are an error for those rows only; the
//!   alerts with that label set are left as they were.

mod alternates;
pub mod history;

use alternates::part_alternates;
pub use alternates::{describe_alternates, PartAlternates};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Empirical};
use statrs::statistics::Statistics;

use crate::indicators::RowRef;
use crate::network::Network;
use crate::rules::template::{self, Templates};
use crate::rules::{AlertRule, Baseline, BaselineMethod, Op, RuleSet, Thresholds};

/// How long a resolved alert is kept (15 minutes of event time).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// One indicator row as seen by a rule.
/// Borrows the indicator row: every rule of an indicator reads the same rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// The indicator's key columns (supplier, site, part, lane ...); they become alert labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The rule's value column; `None` (SQL NULL) never meets a threshold.
    pub value: Option<f64>,
    /// Every column of the row, for annotation templates (`row.open_late_lines`).
    pub row: RowRef<'a>,
}

/// Alert severity, the `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The warning threshold is met.
    Warning,
    /// The critical threshold is met.
    Critical,
}

impl Severity {
    /// `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds but not yet for `for`.
    Pending,
    /// The condition has held for `for` (or is kept firing by `keep_firing_for`).
    Firing,
    /// It fired and its condition cleared; kept for re-sending, then removed.
    Resolved,
}

impl AlertState {
    /// `pending`, `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert of one rule for one label set. Times are event-time milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule's name, also the `alertname` label.
    pub rule: String,
    /// alertname, severity, reason_code, the rule's static labels and the indicator key labels.
    pub labels: BTreeMap<String, String>,
    /// Pending, firing or resolved.
    pub state: AlertState,
    /// Current (or last) severity.
    pub severity: Severity,
    /// The value at the last evaluation where the condition held.
    pub value: f64,
    /// The threshold of `severity`.
    pub threshold: f64,
    /// When the condition started to hold.
    pub active_at: i64,
    /// When it started firing.
    pub fired_at: Option<i64>,
    /// When it was resolved.
    pub resolved_at: Option<i64>,
    /// The last evaluation that saw it.
    pub last_evaluated: i64,
    /// Rendered annotations (summary, description, runbook_url ...).
    pub annotations: BTreeMap<String, String>,
    /// For an alert on parts (a `part` label, or `affected_parts` in its row): each part's
    /// qualified alternate sources, ranked (those that deliver before the line stops first).
    pub alternates: Vec<PartAlternates>,
}

/// Evaluation errors; the engine's state stays consistent after any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// The rule is not in the engine's rule set.
    #[error("unknown rule {rule:?}")]
    UnknownRule {
        /// The name asked for.
        rule: String,
    },
    /// Several samples of one evaluation had the same label set (the indicator's key columns
    /// are not unique); those samples were skipped, the others evaluated.
    #[error("rule {rule:?}: several samples share a label set, skipped: {}", sets.join(", "))]
    DuplicateLabelSets {
        /// The rule evaluated.
        rule: String,
        /// Each label set seen more than once, as `{k="v", ...}`.
        sets: Vec<String>,
    },
}

/// An alert and the last time its condition held (for `keep_firing_for`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    alert: Alert,
    last_true: i64,
    /// What the annotations were rendered from (see [`render_key`]): unchanged inputs are
    /// not rendered again. Not saved: a restored alert renders on its first evaluation.
    #[serde(skip)]
    rendered: Option<u64>,
}

impl Entry {
    /// A new pending alert; the caller fills in value, threshold, labels and annotations.
    fn pending(rule: &str, severity: Severity, now_ms: i64) -> Self {
        Entry {
            alert: Alert {
                rule: rule.to_string(),
                labels: BTreeMap::new(),
                state: AlertState::Pending,
                severity,
                value: f64::NAN,
                threshold: f64::NAN,
                active_at: now_ms,
                fired_at: None,
                resolved_at: None,
                last_evaluated: now_ms,
                annotations: BTreeMap::new(),
                alternates: Vec::new(),
            },
            last_true: now_ms,
            rendered: None,
        }
    }
}

/// Labels identifying an alert within its rule: every label but `severity`.
type Identity = BTreeMap<String, String>;

/// Evaluates rules into alerts; see the module docs for the semantics.
#[derive(Debug)]
pub struct AlertEngine {
    /// Rules by name.
    rules: BTreeMap<String, AlertRule>,
    /// Annotation templates of every rule, compiled once.
    templates: Templates,
    /// Alerts by rule, then identity.
    active: BTreeMap<String, BTreeMap<Identity, Entry>>,
    /// Value histories of rules with a baseline, by rule, then identity.
    baselines: BTreeMap<String, BTreeMap<Identity, History>>,
    /// The supply network, for the alternates of alerts on parts.
    network: Option<std::sync::Arc<Network>>,
}

/// The engine's state as a checkpoint keeps it ([`AlertEngine::save`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineSnapshot {
    rules: BTreeMap<String, SavedRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedRule {
    /// [`AlertRule::definition_key`] when saved.
    definition: String,
    alerts: BTreeMap<Identity, Entry>,
    baselines: BTreeMap<Identity, History>,
}

/// Recorded values of one entity for a baseline, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct History {
    samples: VecDeque<(i64, f64)>,
}

/// A value scored against its entity's history; what templates see as `baseline`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BaselineScore {
    /// `zscore` or `percentile`.
    pub method: &'static str,
    /// The indicator's value itself.
    pub raw: f64,
    /// Mean of the history.
    pub mean: f64,
    /// Sample standard deviation of the history.
    pub stddev: f64,
    /// Number of recorded samples the score is based on.
    pub samples: usize,
    /// The score compared with the thresholds; `None` with too few samples or a flat history.
    pub score: Option<f64>,
}

impl History {
    /// Scores `raw` against the history as it was before this evaluation.
    fn score(&self, b: &Baseline, raw: f64) -> BaselineScore {
        let values = || self.samples.iter().map(|(_, v)| *v);
        let n = self.samples.len();
        let (mean, stddev) = if n >= 2 {
            (values().mean(), values().std_dev())
        } else {
            (f64::NAN, f64::NAN)
        };
        let score = (n >= b.min_samples)
            .then_some(())
            .and_then(|()| match b.method {
                BaselineMethod::ZScore => {
                    let sd = stddev.max(b.min_stddev);
                    (sd > 0.0 && sd.is_finite()).then(|| (raw - mean) / sd)
                }
                BaselineMethod::Percentile => Some(100.0 * Empirical::from_iter(values()).cdf(raw)),
            });
        BaselineScore {
            method: b.method.as_str(),
            raw,
            mean,
            stddev,
            samples: n,
            score,
        }
    }

    /// Records `raw` when `every` has passed since the last sample; forgets what left the window.
    fn record(&mut self, b: &Baseline, now_ms: i64, raw: f64) {
        let due = self
            .samples
            .back()
            .is_none_or(|(t, _)| now_ms.saturating_sub(*t) >= millis(b.every));
        if due {
            self.samples.push_back((now_ms, raw));
        }
        self.forget(b, now_ms);
    }

    fn forget(&mut self, b: &Baseline, now_ms: i64) {
        let oldest = now_ms.saturating_sub(millis(b.window));
        while self.samples.front().is_some_and(|(t, _)| *t < oldest) {
            self.samples.pop_front();
        }
    }
}

impl AlertEngine {
    /// An engine for `rules`, with no alerts.
    pub fn new(rules: &RuleSet) -> Self {
        let mut engine = AlertEngine {
            rules: BTreeMap::new(),
            templates: Templates::default(),
            active: BTreeMap::new(),
            baselines: BTreeMap::new(),
            network: None,
        };
        engine.set_rules(rules);
        engine
    }

    /// Replaces the rule set; alerts of rules whose definition did not change keep their state,
    /// others are dropped.
    pub fn set_rules(&mut self, rules: &RuleSet) {
        let new: BTreeMap<String, AlertRule> = rules
            .rules()
            .map(|rule| (rule.name.clone(), rule.clone()))
            .collect();
        let old = &self.rules;
        self.active
            .retain(|name, _| match (old.get(name), new.get(name)) {
                (Some(old), Some(new)) => old.same_definition(new),
                _ => false,
            });
        // A history depends only on what is recorded: keep it while that stays the same.
        self.baselines
            .retain(|name, _| match (old.get(name), new.get(name)) {
                (Some(old), Some(new)) => {
                    old.indicator == new.indicator
                        && old.value == new.value
                        && old.baseline == new.baseline
                }
                _ => false,
            });
        self.templates = Templates::compile(new.values());
        self.rules = new;
    }

    /// The alerts and baseline histories of every rule, with the rule's definition, for a
    /// checkpoint.
    pub fn save(&self) -> EngineSnapshot {
        let rules = self
            .rules
            .values()
            .map(|r| {
                let state = SavedRule {
                    definition: r.definition_key(),
                    alerts: self.active.get(&r.name).cloned().unwrap_or_default(),
                    baselines: self.baselines.get(&r.name).cloned().unwrap_or_default(),
                };
                (r.name.clone(), state)
            })
            .collect();
        EngineSnapshot { rules }
    }

    /// Take back what [`AlertEngine::save`] saved, for each rule whose definition is unchanged
    /// (as a reload keeps them); returns how many rules got their state back.
    pub fn restore(&mut self, saved: EngineSnapshot) -> usize {
        let mut restored = 0;
        for (name, s) in saved.rules {
            let Some(rule) = self.rules.get(&name) else {
                continue;
            };
            if rule.definition_key() != s.definition {
                continue;
            }
            self.active.insert(name.clone(), s.alerts);
            self.baselines.insert(name, s.baselines);
            restored += 1;
        }
        restored
    }

    /// The supply network alerts on parts take their alternates from.
    pub fn set_network(&mut self, network: std::sync::Arc<Network>) {
        self.network = Some(network);
    }

    /// The rule named `name`, to find its indicator and value column.
    pub fn rule(&self, name: &str) -> Option<&AlertRule> {
        self.rules.get(name)
    }

    /// Evaluates one rule with the indicator rows of this tick at event time `now_ms`.
    ///
    /// # Errors
    /// [`AlertError::UnknownRule`]; [`AlertError::DuplicateLabelSets`] after evaluating every
    /// other sample.
    pub fn evaluate(
        &mut self,
        rule: &str,
        samples: &[Sample<'_>],
        now_ms: i64,
    ) -> Result<(), AlertError> {
        let AlertEngine {
            rules,
            templates,
            active,
            baselines,
            network,
        } = self;
        let Some(rule) = rules.get(rule) else {
            return Err(AlertError::UnknownRule {
                rule: rule.to_string(),
            });
        };
        // The templates and the network every rendering of this rule depends on.
        let rendering = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            rule.annotations.hash(&mut h);
            network.as_ref().map(std::sync::Arc::as_ptr).hash(&mut h);
            h.finish()
        };
        let alerts = active.entry(rule.name.clone()).or_default();
        // Building an identity (a label map) for every row is most of the cost on a large
        // state, and most rows neither meet a threshold nor have an alert. Such a row changes
        // nothing, so it is skipped, unless its labels hash like another row's (it may be a
        // duplicate label set, reported below) or like an active alert's, or the rule keeps a
        // baseline history of every row.
        let selected: Vec<(&Sample<'_>, u64)> = samples
            .iter()
            .filter(|s| rule.selects(s.labels))
            .map(|s| (s, identity_hash(rule, s.labels)))
            .collect();
        let mut counts: std::collections::HashMap<u64, u32> =
            std::collections::HashMap::with_capacity(selected.len());
        for (_, h) in &selected {
            *counts.entry(*h).or_default() += 1;
        }
        let alerted: std::collections::HashSet<u64> = alerts
            .values()
            .map(|e| identity_hash(rule, &e.alert.labels))
            .collect();
        let mut by_identity: BTreeMap<Identity, Vec<&Sample<'_>>> = BTreeMap::new();
        for (sample, h) in selected {
            let needed = rule.baseline.is_some()
                || counts.get(&h).is_some_and(|&n| n > 1)
                || alerted.contains(&h)
                || classify(
                    rule.op,
                    &rule.thresholds_for(sample.labels),
                    sample.value.filter(|v| !v.is_nan()),
                )
                .is_some();
            if needed {
                by_identity
                    .entry(identity(rule, sample.labels))
                    .or_default()
                    .push(sample);
            }
        }
        let mut duplicates = Vec::new();
        let mut handled: BTreeSet<Identity> = BTreeSet::new();
        let for_ms = millis(rule.for_);
        for (id, group) in by_identity {
            let [sample] = group.as_slice() else {
                duplicates.push(format_labels(&id));
                handled.insert(id);
                continue;
            };
            let thresholds = rule.thresholds_for(sample.labels);
            let raw = sample.value.filter(|v| !v.is_nan());
            let (value, baseline) = match (&rule.baseline, raw) {
                (None, _) => (raw, None),
                (Some(_), None) => (None, None),
                (Some(b), Some(raw)) => {
                    let history = baselines
                        .entry(rule.name.clone())
                        .or_default()
                        .entry(id.clone())
                        .or_default();
                    history.forget(b, now_ms);
                    let scored = history.score(b, raw);
                    history.record(b, now_ms, raw);
                    (scored.score, Some(scored))
                }
            };
            let firing = alerts
                .get(&id)
                .and_then(|e| (e.alert.state == AlertState::Firing).then_some(e.alert.severity));
            let hit = classify(rule.op, &thresholds, value)
                .or_else(|| firing.and_then(|s| still_firing(rule.op, &thresholds, s, value)));
            let Some((severity, threshold, value)) = hit else {
                continue;
            };
            if alerts
                .get(&id)
                .is_none_or(|entry| entry.alert.state == AlertState::Resolved)
            {
                alerts.insert(id.clone(), Entry::pending(&rule.name, severity, now_ms));
            }
            let Some(entry) = alerts.get_mut(&id) else {
                continue;
            };
            let alert = &mut entry.alert;
            entry.last_true = now_ms;
            alert.last_evaluated = now_ms;
            alert.severity = severity;
            alert.threshold = threshold;
            alert.value = value;
            // The labels are the identity plus the severity: set when either is new (a clone
            // of the label map per alert per evaluation otherwise).
            if alert.labels.get("severity").map(String::as_str) != Some(severity.as_str()) {
                alert.labels = id.clone();
                alert
                    .labels
                    .insert("severity".to_string(), severity.as_str().to_string());
            }
            if alert.state == AlertState::Pending
                && now_ms.saturating_sub(alert.active_at) >= for_ms
            {
                alert.state = AlertState::Firing;
                alert.fired_at = Some(now_ms);
            }
            // Rendering is most of the cost of an alert that stays active: only when what the
            // templates see changed.
            let key = render_key(
                rendering,
                alert,
                &thresholds,
                baseline.as_ref(),
                sample.row.content_hash(),
            );
            if entry.rendered != Some(key) {
                let row = sample.row.json();
                let alert = &mut entry.alert;
                if let Some(net) = network.as_deref() {
                    alert.alternates = part_alternates(net, sample.labels, &row);
                }
                let ctx = context(rule, alert, &row, &thresholds, baseline.as_ref());
                alert.annotations = templates.render(rule, &ctx);
                if !alert.alternates.is_empty() && !rule.annotations.contains_key("alternates") {
                    alert.annotations.insert(
                        "alternates".to_string(),
                        describe_alternates(&alert.alternates),
                    );
                }
                entry.rendered = Some(key);
            }
            handled.insert(id);
        }
        let keep_ms = millis(rule.keep_firing_for);
        alerts.retain(|id, entry| {
            if handled.contains(id) {
                return true;
            }
            let alert = &mut entry.alert;
            alert.last_evaluated = now_ms;
            match alert.state {
                AlertState::Pending => false,
                AlertState::Firing => {
                    if now_ms.saturating_sub(entry.last_true) >= keep_ms {
                        alert.state = AlertState::Resolved;
                        alert.resolved_at = Some(now_ms);
                    }
                    true
                }
                AlertState::Resolved => {
                    let since = now_ms.saturating_sub(alert.resolved_at.unwrap_or(now_ms));
                    since < RESOLVED_RETENTION_MS
                }
            }
        });
        if alerts.is_empty() {
            active.remove(&rule.name);
        }
        if let (Some(b), Some(histories)) = (&rule.baseline, baselines.get_mut(&rule.name)) {
            histories.retain(|_, h| {
                h.forget(b, now_ms);
                !h.samples.is_empty()
            });
        }
        if duplicates.is_empty() {
            Ok(())
        } else {
            Err(AlertError::DuplicateLabelSets {
                rule: rule.name.clone(),
                sets: duplicates,
            })
        }
    }

    /// Pending, firing and recently resolved alerts, sorted by rule then labels.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut out: Vec<Alert> = self
            .active
            .values()
            .flat_map(|alerts| alerts.values().map(|entry| entry.alert.clone()))
            .collect();
        out.sort_by(|a, b| (&a.rule, &a.labels).cmp(&(&b.rule, &b.labels)));
        out
    }
}

/// The severity, its threshold and the value when the condition holds.
fn classify(op: Op, t: &Thresholds, value: Option<f64>) -> Option<(Severity, f64, f64)> {
    let value = value.filter(|v| !v.is_nan())?;
    if let Some(critical) = t.critical.filter(|c| op.holds(value, *c)) {
        return Some((Severity::Critical, critical, value));
    }
    let warning = t.warning.filter(|w| op.holds(value, *w))?;
    Some((Severity::Warning, warning, value))
}

/// Hysteresis: a firing alert whose value is no longer beyond its lowest level but still
/// beyond `clear` stays firing, at the lowest level's severity.
fn still_firing(
    op: Op,
    t: &Thresholds,
    was: Severity,
    value: Option<f64>,
) -> Option<(Severity, f64, f64)> {
    let value = value.filter(|v| !v.is_nan())?;
    let clear = t.clear.filter(|c| op.holds(value, *c))?;
    let _ = clear;
    match (t.warning, t.critical) {
        (Some(w), _) => Some((Severity::Warning, w, value)),
        (None, Some(c)) => Some((was.max(Severity::Critical), c, value)),
        (None, None) => None,
    }
}

/// Sample labels, overridden by the rule's static labels, then alertname and reason_code.
fn identity(rule: &AlertRule, sample_labels: &BTreeMap<String, String>) -> Identity {
    let mut labels = sample_labels.clone();
    labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert("alertname".to_string(), rule.name.clone());
    labels.insert("reason_code".to_string(), rule.reason_code.clone());
    labels.remove("severity");
    labels
}

/// A hash of the labels [`identity`] takes from a row: equal identities hash equally.
fn identity_hash(rule: &AlertRule, labels: &BTreeMap<String, String>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, v) in labels {
        let fixed = matches!(k.as_str(), "alertname" | "reason_code" | "severity")
            || rule.labels.contains_key(k);
        if !fixed {
            k.hash(&mut h);
            v.hash(&mut h);
        }
    }
    h.finish()
}

fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let inner = labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{{inner}}}")
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A hash of everything [`context`] and the alternates are made of: equal keys render equal
/// annotations. `rendering` covers the rule's templates and the network.
fn render_key(
    rendering: u64,
    alert: &Alert,
    thresholds: &Thresholds,
    baseline: Option<&BaselineScore>,
    row: u64,
) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rendering.hash(&mut h);
    alert.labels.hash(&mut h);
    alert.severity.hash(&mut h);
    alert.active_at.hash(&mut h);
    for x in [alert.value, alert.threshold] {
        x.to_bits().hash(&mut h);
    }
    for x in [thresholds.warning, thresholds.critical, thresholds.clear] {
        x.map(f64::to_bits).hash(&mut h);
    }
    if let Some(b) = baseline {
        b.method.hash(&mut h);
        b.samples.hash(&mut h);
        for x in [b.raw, b.mean, b.stddev] {
            x.to_bits().hash(&mut h);
        }
        b.score.map(f64::to_bits).hash(&mut h);
    }
    row.hash(&mut h);
    h.finish()
}

/// What annotation templates see.
fn context(
    rule: &AlertRule,
    alert: &Alert,
    row: &BTreeMap<String, serde_json::Value>,
    thresholds: &Thresholds,
    baseline: Option<&BaselineScore>,
) -> minijinja::Value {
    minijinja::context! {
        labels => &alert.labels,
        value => alert.value,
        threshold => alert.threshold,
        thresholds => minijinja::context! {
            warning => thresholds.warning,
            critical => thresholds.critical,
            clear => thresholds.clear,
        },
        baseline => baseline,
        severity => alert.severity.as_str(),
        alertname => &rule.name,
        indicator => &rule.indicator,
        row => row,
        alternates => &alert.alternates,
        active_at => template::rfc3339(alert.active_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{FieldLocations, Location, Op, RuleGroup};
    use std::time::Duration;

    const MIN: i64 = 60_000;

    /// `Late`: supplier_delivery.on_time_ratio < 0.9 warning, < 0.75 critical.
    fn rule(name: &str, for_min: u64, keep_min: u64) -> AlertRule {
        AlertRule {
            name: name.to_string(),
            indicator: "supplier_delivery".to_string(),
            value: "on_time_ratio".to_string(),
            op: Op::Lt,
            warning: Some(0.9),
            critical: Some(0.75),
            clear: None,
            overrides: Vec::new(),
            filter: Vec::new(),
            filter_locations: Vec::new(),
            baseline: None,
            for_: Duration::from_secs(60 * for_min),
            keep_firing_for: Duration::from_secs(60 * keep_min),
            reason_code: "supplier_late_deliveries".to_string(),
            labels: BTreeMap::from([("team".to_string(), "procurement".to_string())]),
            annotations: BTreeMap::from([(
                "summary".to_string(),
                "{{ labels.supplier }} {{ value | percent }}".to_string(),
            )]),
            location: Location::default(),
            field_locations: FieldLocations::default(),
        }
    }

    fn set(rules: Vec<AlertRule>) -> RuleSet {
        RuleSet {
            groups: vec![RuleGroup {
                name: "g".to_string(),
                file: "r.yaml".into(),
                rules,
            }],
        }
    }

    fn engine(for_min: u64, keep_min: u64) -> AlertEngine {
        AlertEngine::new(&set(vec![rule("Late", for_min, keep_min)]))
    }

    fn sample(supplier: &str, value: Option<f64>) -> Sample<'static> {
        // Leaked: a test's handful of rows outlive the engine that reads them.
        Sample {
            labels: Box::leak(Box::new(BTreeMap::from([(
                "supplier".to_string(),
                supplier.to_string(),
            )]))),
            value,
            row: RowRef::Json(Box::leak(Box::new(BTreeMap::from([(
                "open_late_lines".to_string(),
                serde_json::json!(7),
            )])))),
        }
    }

    fn eval(e: &mut AlertEngine, value: Option<f64>, now: i64) {
        e.evaluate("Late", &[sample("S1", value)], now).unwrap();
    }

    /// (state, severity) of the only alert, or None.
    fn only(e: &AlertEngine) -> Option<(AlertState, Severity)> {
        let alerts = e.alerts();
        assert!(alerts.len() <= 1, "{alerts:?}");
        alerts.first().map(|a| (a.state, a.severity))
    }

    #[test]
    fn pending_becomes_firing_after_for() {
        let mut e = engine(10, 0);
        eval(&mut e, Some(0.8), 0);
        assert_eq!(only(&e), Some((AlertState::Pending, Severity::Warning)));
        eval(&mut e, Some(0.8), 9 * MIN);
        assert_eq!(only(&e), Some((AlertState::Pending, Severity::Warning)));
        eval(&mut e, Some(0.8), 10 * MIN);
        let a = &e.alerts()[0];
        assert_eq!(
            (a.state, a.active_at, a.fired_at),
            (AlertState::Firing, 0, Some(10 * MIN))
        );
        assert_eq!(a.last_evaluated, 10 * MIN);
    }

    #[test]
    fn for_zero_fires_on_first_evaluation() {
        let mut e = engine(0, 0);
        eval(&mut e, Some(0.8), 5);
        let a = &e.alerts()[0];
        assert_eq!(
            (a.state, a.active_at, a.fired_at),
            (AlertState::Firing, 5, Some(5))
        );
    }

    #[test]
    fn labels_combine_sample_static_and_engine_labels() {
        let mut e = engine(0, 0);
        eval(&mut e, Some(0.8), 0);
        let labels = &e.alerts()[0].labels;
        let expected = [
            ("alertname", "Late"),
            ("reason_code", "supplier_late_deliveries"),
            ("severity", "warning"),
            ("supplier", "S1"),
            ("team", "procurement"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(labels, &BTreeMap::from(expected));
    }

    #[test]
    fn escalates_and_de_escalates_in_place() {
        let mut e = engine(10, 0);
        eval(&mut e, Some(0.8), 0);
        eval(&mut e, Some(0.7), 5 * MIN);
        let a = &e.alerts()[0];
        assert_eq!(
            (a.state, a.severity, a.threshold),
            (AlertState::Pending, Severity::Critical, 0.75)
        );
        assert_eq!(
            (a.active_at, a.labels["severity"].as_str()),
            (0, "critical")
        );
        eval(&mut e, Some(0.7), 10 * MIN);
        eval(&mut e, Some(0.85), 11 * MIN);
        let alerts = e.alerts();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(
            (a.state, a.severity, a.threshold, a.value),
            (AlertState::Firing, Severity::Warning, 0.9, 0.85)
        );
        assert_eq!(
            (a.active_at, a.fired_at, a.labels["severity"].as_str()),
            (0, Some(10 * MIN), "warning")
        );
    }

    #[test]
    fn only_critical_threshold() {
        let mut r = rule("Late", 0, 0);
        r.warning = None;
        let mut e = AlertEngine::new(&set(vec![r]));
        eval(&mut e, Some(0.8), 0);
        assert_eq!(only(&e), None);
        eval(&mut e, Some(0.5), MIN);
        assert_eq!(only(&e), Some((AlertState::Firing, Severity::Critical)));
    }

    #[test]
    fn resolves_then_keeps_resolved_alert_fifteen_minutes() {
        let mut e = engine(0, 0);
        eval(&mut e, Some(0.8), 0);
        eval(&mut e, Some(0.95), MIN);
        let a = &e.alerts()[0];
        assert_eq!(
            (a.state, a.resolved_at, a.value),
            (AlertState::Resolved, Some(MIN), 0.8)
        );
        e.evaluate("Late", &[], 15 * MIN).unwrap();
        assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
        assert_eq!(e.alerts()[0].last_evaluated, 15 * MIN);
        e.evaluate("Late", &[], 16 * MIN).unwrap();
        assert_eq!(only(&e), None);
    }

    #[test]
    fn resolved_alert_whose_condition_returns_starts_pending_again() {
        let mut e = engine(5, 0);
        eval(&mut e, Some(0.8), 0);
        eval(&mut e, Some(0.8), 5 * MIN);
        eval(&mut e, Some(0.95), 6 * MIN);
        assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
        eval(&mut e, Some(0.8), 7 * MIN);
        let a = &e.alerts()[0];
        assert_eq!(
            (a.state, a.active_at, a.fired_at, a.resolved_at),
            (AlertState::Pending, 7 * MIN, None, None)
        );
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut e = engine(0, 5);
        eval(&mut e, Some(0.8), 0);
        eval(&mut e, Some(0.95), MIN);
        e.evaluate("Late", &[], 4 * MIN).unwrap();
        assert_eq!(only(&e), Some((AlertState::Firing, Severity::Warning)));
        eval(&mut e, Some(0.95), 5 * MIN);
        let a = &e.alerts()[0];
        assert_eq!(
            (a.state, a.resolved_at),
            (AlertState::Resolved, Some(5 * MIN))
        );
    }

    #[test]
    fn pending_alert_is_dropped_when_false_or_absent() {
        let mut e = engine(10, 5);
        eval(&mut e, Some(0.8), 0);
        eval(&mut e, Some(0.95), MIN);
        assert_eq!(only(&e), None);
        eval(&mut e, Some(0.8), 2 * MIN);
        e.evaluate("Late", &[sample("S2", Some(0.99))], 3 * MIN)
            .unwrap();
        assert_eq!(only(&e), None);
    }

    #[test]
    fn none_and_nan_values_are_false() {
        let mut e = engine(0, 0);
        eval(&mut e, None, 0);
        eval(&mut e, Some(f64::NAN), MIN);
        assert_eq!(only(&e), None);
        eval(&mut e, Some(0.8), 2 * MIN);
        eval(&mut e, Some(f64::NAN), 3 * MIN);
        assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
    }

    #[test]
    fn rows_that_meet_no_threshold_are_skipped_but_still_checked() {
        // Duplicates among rows that alert on nothing are still reported.
        let mut e = engine(0, 0);
        let quiet = [sample("S1", Some(0.99)), sample("S1", Some(0.98))];
        let err = e.evaluate("Late", &quiet, 0).unwrap_err();
        assert!(err.to_string().contains("supplier=\"S1\""), "{err}");
        assert!(e.alerts().is_empty());
        // A firing alert whose row is back between warning and clear keeps firing: the row is
        // not skipped although it meets no threshold by itself.
        let mut r = rule("Late", 0, 0);
        r.clear = Some(0.95);
        let mut e = AlertEngine::new(&set(vec![r]));
        e.evaluate("Late", &[sample("S1", Some(0.8))], 0).unwrap();
        e.evaluate(
            "Late",
            &[sample("S1", Some(0.92)), sample("S2", Some(0.99))],
            MIN,
        )
        .unwrap();
        assert_eq!(only(&e), Some((AlertState::Firing, Severity::Warning)));
        e.evaluate("Late", &[sample("S1", Some(0.97))], 2 * MIN)
            .unwrap();
        assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
    }

    #[test]
    fn duplicate_label_sets_are_an_error_for_those_samples_only() {
        let mut e = engine(0, 0);
        eval(&mut e, Some(0.8), 0);
        let samples = [
            sample("S1", Some(0.1)),
            sample("S1", Some(0.99)),
            sample("S2", Some(0.8)),
        ];
        let err = e.evaluate("Late", &samples, MIN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rule \"Late\": several samples share a label set, skipped: {alertname=\"Late\", \
             reason_code=\"supplier_late_deliveries\", supplier=\"S1\", team=\"procurement\"}"
        );
        let alerts = e.alerts();
        assert_eq!(alerts.len(), 2);
        assert_eq!(
            (
                alerts[0].labels["supplier"].as_str(),
                alerts[0].last_evaluated
            ),
            ("S1", 0)
        );
        assert_eq!(
            (alerts[0].state, alerts[0].value),
            (AlertState::Firing, 0.8)
        );
        assert_eq!(
            (alerts[1].labels["supplier"].as_str(), alerts[1].state),
            ("S2", AlertState::Firing)
        );
    }

    #[test]
    fn unknown_rule_is_an_error() {
        let mut e = engine(0, 0);
        let err = e.evaluate("Nope", &[], 0).unwrap_err();
        assert_eq!(
            err,
            AlertError::UnknownRule {
                rule: "Nope".to_string()
            }
        );
    }

    #[test]
    fn annotations_follow_every_input_though_unchanged_ones_are_not_rendered_again() {
        let mut r = rule("Late", 0, 0);
        r.annotations = BTreeMap::from([(
            "summary".to_string(),
            "{{ value | percent }}, {{ row.open_late_lines }} late".to_string(),
        )]);
        let mut e = AlertEngine::new(&set(vec![r]));
        let summary = |e: &AlertEngine| e.alerts()[0].annotations["summary"].clone();
        let row = |n: i64| BTreeMap::from([("open_late_lines".to_string(), serde_json::json!(n))]);
        let (seven, eight) = (row(7), row(8));
        let at = |value: f64, row: &BTreeMap<String, serde_json::Value>| Sample {
            row: RowRef::Json(Box::leak(Box::new(row.clone()))),
            ..sample("S1", Some(value))
        };
        e.evaluate("Late", &[at(0.8, &seven)], 0).unwrap();
        assert_eq!(summary(&e), "80%, 7 late");
        e.evaluate("Late", &[at(0.8, &seven)], MIN).unwrap();
        assert_eq!(summary(&e), "80%, 7 late");
        // Only a column the value does not show changed: rendered again.
        e.evaluate("Late", &[at(0.8, &eight)], 2 * MIN).unwrap();
        assert_eq!(summary(&e), "80%, 8 late");
        e.evaluate("Late", &[at(0.7, &eight)], 3 * MIN).unwrap();
        assert_eq!(summary(&e), "70%, 8 late");
    }

    #[test]
    fn annotations_render_value_threshold_row_and_labels() {
        let mut r = rule("Late", 0, 0);
        r.annotations = BTreeMap::from([
            ("summary".to_string(), "{{ alertname }} {{ labels.supplier }} {{ value | percent }} < {{ threshold | percent }} ({{ severity }}, {{ indicator }})".to_string()),
            ("description".to_string(), "{{ row.open_late_lines }} late lines since {{ active_at }}; {{ row.lead_days | days }}, {{ value | round(2) }}".to_string()),
        ]);
        let mut e = AlertEngine::new(&set(vec![r]));
        let mut s = sample("S1", Some(0.7312));
        let mut row = s.row.json().into_owned();
        row.insert("lead_days".to_string(), serde_json::json!(3.24));
        s.row = RowRef::Json(&row);
        e.evaluate("Late", &[s], 1_709_272_800_000).unwrap();
        let a = &e.alerts()[0];
        assert_eq!(
            a.annotations["summary"],
            "Late S1 73.1% < 75% (critical, supplier_delivery)"
        );
        assert_eq!(
            a.annotations["description"],
            "7 late lines since 2024-03-01T06:00:00Z; 3.2 days, 0.73"
        );
    }

    #[test]
    fn render_errors_fall_back_to_the_template_text() {
        let mut r = rule("Late", 0, 0);
        r.annotations = BTreeMap::from([
            (
                "summary".to_string(),
                "{{ row.missing | percent }}".to_string(),
            ),
            (
                "description".to_string(),
                "{{ value | percent }".to_string(),
            ),
        ]);
        let mut e = AlertEngine::new(&set(vec![r]));
        eval(&mut e, Some(0.8), 0);
        let a = &e.alerts()[0];
        assert!(
            a.annotations["summary"].starts_with("{{ row.missing | percent }} (template error: "),
            "{}",
            a.annotations["summary"]
        );
        assert!(
            a.annotations["description"]
                .starts_with("{{ value | percent } (template error: syntax error"),
            "{}",
            a.annotations["description"]
        );
    }

    #[test]
    fn set_rules_keeps_state_of_unchanged_rules_only() {
        let mut e = AlertEngine::new(&set(vec![
            rule("Late", 0, 0),
            rule("Other", 0, 0),
            rule("Gone", 0, 0),
        ]));
        for name in ["Late", "Other", "Gone"] {
            e.evaluate(name, &[sample("S1", Some(0.8))], 0).unwrap();
        }
        let mut moved = rule("Late", 0, 0);
        moved.location.line = 40;
        let mut changed = rule("Other", 0, 0);
        changed.warning = Some(0.95);
        e.set_rules(&set(vec![moved, changed]));
        let alerts = e.alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].rule.as_str(), alerts[0].state),
            ("Late", AlertState::Firing)
        );
        assert_eq!(e.rule("Other").and_then(|r| r.warning), Some(0.95));
        assert!(e.evaluate("Gone", &[], MIN).is_err());
    }

    #[test]
    fn alerts_are_sorted_by_rule_then_labels() {
        let mut e = AlertEngine::new(&set(vec![rule("B", 0, 0), rule("A", 0, 0)]));
        let samples = [sample("S2", Some(0.8)), sample("S1", Some(0.8))];
        e.evaluate("B", &samples, 0).unwrap();
        e.evaluate("A", &samples, 0).unwrap();
        let order: Vec<_> = e
            .alerts()
            .iter()
            .map(|a| format!("{}/{}", a.rule, a.labels["supplier"]))
            .collect();
        assert_eq!(order, ["A/S1", "A/S2", "B/S1", "B/S2"]);
    }

    #[test]
    fn example_rule_file_renders_its_summary() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rules/supplier_delivery.good.yaml");
        let rules = crate::rules::load_paths(&[path]).unwrap();
        let mut e = AlertEngine::new(&rules);
        let s = sample("S1", Some(0.873));
        e.evaluate("SupplierOnTimeRatioLow", &[s], 0).unwrap();
        let a = &e.alerts()[0];
        assert_eq!(a.state, AlertState::Pending, "for: 6h");
        assert_eq!(
            a.annotations["summary"],
            "Supplier S1 delivered 87.3% on time over 30 days (threshold 90%)."
        );
        assert_eq!(
            a.annotations["description"],
            "7 open lines are late; active since 1970-01-01T00:00:00Z."
        );
    }

    /// A rule set parsed from YAML, as users write it.
    fn parsed(yaml: &str) -> RuleSet {
        crate::rules::parse_str(std::path::Path::new("t.yaml"), yaml).unwrap()
    }

    const HYSTERESIS: &str = "groups:\n- name: g\n  rules:\n  - alert: Late\n    indicator: supplier_delivery\n    value: on_time_ratio\n    op: '<'\n    warning: 0.85\n    critical: 0.7\n    clear: 0.9\n    reason_code: late\n    annotations: {summary: 'clear at {{ thresholds.clear }}'}\n";

    #[test]
    fn clear_threshold_keeps_a_firing_alert_until_the_value_is_back_beyond_it() {
        let mut e = AlertEngine::new(&parsed(HYSTERESIS));
        eval(&mut e, Some(0.6), 0);
        assert_eq!(only(&e), Some((AlertState::Firing, Severity::Critical)));
        // Between warning and clear: still firing, de-escalated to warning.
        eval(&mut e, Some(0.87), MIN);
        assert_eq!(only(&e), Some((AlertState::Firing, Severity::Warning)));
        let alert = &e.alerts()[0];
        assert_eq!((alert.value, alert.threshold), (0.87, 0.85));
        assert_eq!(alert.annotations["summary"], "clear at 0.9");
        eval(&mut e, Some(0.89), 2 * MIN);
        assert_eq!(only(&e), Some((AlertState::Firing, Severity::Warning)));
        // Back beyond clear: resolved.
        eval(&mut e, Some(0.9), 3 * MIN);
        assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
        // The band alone never starts an alert.
        eval(&mut e, Some(0.87), 20 * MIN);
        assert_eq!(only(&e), None);
    }

    const OVERRIDES: &str = "groups:\n- name: g\n  rules:\n  - alert: Late\n    indicator: supplier_delivery\n    value: on_time_ratio\n    op: '<'\n    warning: 0.85\n    critical: 0.7\n    reason_code: late\n    overrides:\n    - match: {supplier: [S-STRATEGIC, S-KEY]}\n      warning: 0.95\n      critical: 0.9\n    - match_re: {supplier: 'T2-.*'}\n      warning: 0.75\n    annotations: {summary: '{{ labels.supplier }} {{ threshold }}'}\n";

    #[test]
    fn overrides_pick_thresholds_by_labels_first_match_wins() {
        let mut e = AlertEngine::new(&parsed(OVERRIDES));
        let samples = [
            sample("S-STRATEGIC", Some(0.92)),
            sample("S-KEY", Some(0.89)),
            sample("T2-001", Some(0.8)),
            sample("T2-002", Some(0.72)),
            sample("S-OTHER", Some(0.8)),
            sample("XT2-003", Some(0.8)),
        ];
        e.evaluate("Late", &samples, 0).unwrap();
        let got: Vec<(String, Severity, f64)> = e
            .alerts()
            .into_iter()
            .map(|a| (a.labels["supplier"].clone(), a.severity, a.threshold))
            .collect();
        assert_eq!(
            got,
            [
                ("S-KEY".to_string(), Severity::Critical, 0.9),
                ("S-OTHER".to_string(), Severity::Warning, 0.85),
                ("S-STRATEGIC".to_string(), Severity::Warning, 0.95),
                // T2-001 at 0.8 is above its 0.75 warning; T2-002 inherits critical 0.7.
                ("T2-002".to_string(), Severity::Warning, 0.75),
                // The regex is anchored: XT2-003 gets the defaults.
                ("XT2-003".to_string(), Severity::Warning, 0.85),
            ]
        );
    }

    fn baseline_rule(method: &str, extra: &str) -> RuleSet {
        parsed(&format!(
            "groups:\n- name: g\n  rules:\n  - alert: Late\n    indicator: supplier_delivery\n    value: mean_delay_days\n    op: '>='\n    warning: {}\n    critical: {}\n    reason_code: late\n    baseline: {{method: {method}, window: 10h, every: 1h, min_samples: 4{extra}}}\n    annotations: {{summary: '{{{{ baseline.raw }}}} vs {{{{ baseline.mean }}}} over {{{{ baseline.samples }}}}'}}\n",
            if method == "zscore" { "2" } else { "90" },
            if method == "zscore" { "3" } else { "99" },
        ))
    }

    const HOUR: i64 = 60 * MIN;

    #[test]
    fn zscore_baseline_scores_against_the_entitys_own_history() {
        let mut e = AlertEngine::new(&baseline_rule("zscore", ""));
        // History 1, 2, 3, 2: mean 2, sample sd sqrt(2/3).
        for (i, v) in [1.0, 2.0, 3.0, 2.0].into_iter().enumerate() {
            eval(&mut e, Some(v), i as i64 * HOUR);
            assert_eq!(only(&e), None, "too few samples yet, or within range");
        }
        // Sub-hour evaluations score but do not record.
        eval(&mut e, Some(2.5), 4 * HOUR - MIN);
        assert_eq!(only(&e), None);
        let sd = (2.0f64 / 3.0).sqrt();
        eval(&mut e, Some(2.0 + 2.5 * sd), 4 * HOUR);
        let a = &e.alerts()[0];
        assert_eq!(
            (a.state, a.severity),
            (AlertState::Firing, Severity::Warning)
        );
        assert!((a.value - 2.5).abs() < 1e-9, "z = {}", a.value);
        assert_eq!(
            a.annotations["summary"],
            format!("{} vs 2.0 over 4", 2.0 + 2.5 * sd)
        );
        // An entity of its own: S2 has no history, so no score.
        e.evaluate("Late", &[sample("S2", Some(100.0))], 5 * HOUR)
            .unwrap();
        assert!(e.alerts().iter().all(|a| a.labels["supplier"] == "S1"));
    }

    #[test]
    fn flat_history_gives_no_zscore_unless_a_floor_is_set() {
        let mut e = AlertEngine::new(&baseline_rule("zscore", ""));
        for i in 0..5 {
            eval(&mut e, Some(1.0), i * HOUR);
        }
        eval(&mut e, Some(5.0), 5 * HOUR);
        assert_eq!(only(&e), None);
        let mut e = AlertEngine::new(&baseline_rule("zscore", ", min_stddev: 0.5"));
        for i in 0..5 {
            eval(&mut e, Some(1.0), i * HOUR);
        }
        eval(&mut e, Some(5.0), 5 * HOUR);
        assert_eq!(e.alerts()[0].value, 8.0);
    }

    #[test]
    fn percentile_baseline_and_window() {
        let mut e = AlertEngine::new(&baseline_rule("percentile", ""));
        for i in 0..10 {
            eval(&mut e, Some(i as f64), i * HOUR);
        }
        // At 10h the window [0h, 10h] holds 0..=9: 9.5 is above all of them.
        eval(&mut e, Some(9.5), 10 * HOUR);
        let a = &e.alerts()[0];
        assert_eq!((a.severity, a.value), (Severity::Critical, 100.0));
        // At 11h the 0 of 0h has left the window: 1..=9 and 9.5; 9 of those 10 are <= 9.2.
        eval(&mut e, Some(9.2), 11 * HOUR);
        let a = &e.alerts()[0];
        assert_eq!((a.severity, a.value), (Severity::Warning, 90.0));
    }

    #[test]
    fn baseline_history_survives_a_reload_of_an_unchanged_rule_only() {
        let rules = baseline_rule("zscore", "");
        let mut e = AlertEngine::new(&rules);
        for (i, v) in [1.0, 2.0, 3.0, 2.0].into_iter().enumerate() {
            eval(&mut e, Some(v), i as i64 * HOUR);
        }
        e.set_rules(&rules);
        eval(&mut e, Some(10.0), 4 * HOUR);
        assert_eq!(only(&e).map(|(s, _)| s), Some(AlertState::Firing));
        let mut e = AlertEngine::new(&rules);
        for (i, v) in [1.0, 2.0, 3.0, 2.0].into_iter().enumerate() {
            eval(&mut e, Some(v), i as i64 * HOUR);
        }
        e.set_rules(&baseline_rule("zscore", ", min_stddev: 0.1"));
        eval(&mut e, Some(10.0), 4 * HOUR);
        assert_eq!(
            only(&e),
            None,
            "history restarted with the changed baseline"
        );
    }
}
