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
mod tests;
