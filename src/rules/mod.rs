//! Threshold rule files: parse, validate with line:col, check against planned indicators.
//!
//! In: `*.yaml` / `*.yml` files in the Prometheus alerting-rule shape (`groups:` of `rules:`),
//! each rule naming an indicator, a numeric value column, an `op` and warning / critical
//! thresholds. Out: a validated [`RuleSet`] for the alert engine (`crate::alerts`), or
//! [`RuleErrors`] listing every problem in every file, sorted by path, line and column, one per
//! line as `path:line:col: group "g", rule "R": message`.
//!
//! The stages, one file each:
//! - `yaml.rs`: text -> a tree of positioned nodes (YAML syntax errors);
//! - `raw.rs`: tree -> [`RuleFile`] as written (unknown keys, duplicates, types, missing fields);
//! - `validate.rs`: [`RuleFile`] -> [`RuleGroup`]s (names, op, thresholds, durations, templates);
//! - `template.rs`: the minijinja environment shared with the alert engine.
//!
//! [`check_against`] runs after the indicators' SQL has been planned: it knows their columns.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod raw;
pub mod template;
mod validate;
pub(crate) mod yaml;

pub use raw::{Entries, RawBaseline, RawGroup, RawOverride, RawRule, RuleFile, Spanned};
pub use yaml::Pos;

use raw::Diags;
use validate::NameSite;

/// Label names the alert engine sets on every alert; rules and indicators may not use them.
pub const RESERVED_LABELS: &[&str] = &["alertname", "severity", "reason_code"];

/// Where something is in a rule file; `Display` is `file:line:col`, or just `file` when the line
/// is unknown (0), as for a file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Location {
    /// The path as given by the caller (not canonicalised, so messages match what was typed).
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column in characters, 0 when unknown.
    pub col: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }
}

/// One problem in the rules: where, in which group / rule, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {}{message}", if context.is_empty() { String::new() } else { format!("{context}: ") })]
pub struct RuleError {
    /// The key or value at fault (the rule's start for a missing field).
    pub location: Location,
    /// `group "g", rule "R"`, `group "g", rule 2`, `group "g"`, or empty for file-level errors.
    pub context: String,
    /// Lowercase message.
    pub message: String,
}

/// Every problem found, sorted by path, line and column; `Display` writes one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
#[error("{}", lines(errors))]
pub struct RuleErrors {
    /// The errors, sorted.
    pub errors: Vec<RuleError>,
}

fn lines(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl RuleErrors {
    /// Sorts `errors` by location (stable, so one position keeps the order found).
    pub fn new(mut errors: Vec<RuleError>) -> Self {
        errors.sort_by(|a, b| a.location.cmp(&b.location));
        RuleErrors { errors }
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The comparison of a rule's value with its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// Parses `<`, `<=`, `>` or `>=` (surrounding spaces allowed).
    pub fn parse(text: &str) -> Option<Op> {
        match text.trim() {
            "<" => Some(Op::Lt),
            "<=" => Some(Op::Le),
            ">" => Some(Op::Gt),
            ">=" => Some(Op::Ge),
            _ => None,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// `value op threshold`; false when either is NaN.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
        }
    }

    /// True when `a` lies strictly further than `b` in the direction of the operator
    /// (critical must be beyond warning).
    pub fn beyond(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt | Op::Le => a < b,
            Op::Gt | Op::Ge => a > b,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule's `indicator` and `value` were written, for errors found after SQL planning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldLocations {
    /// The `indicator` value.
    pub indicator: Location,
    /// The `value` value.
    pub value: Location,
}

/// A validated alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// `alert`: CamelCase, unique in the rule set; the `alertname` label.
    pub name: String,
    /// The indicator (SQL file `rules/indicators/<indicator>.sql`) whose rows are evaluated.
    pub indicator: String,
    /// The numeric column of the indicator compared with the thresholds.
    pub value: String,
    /// How the value is compared with the thresholds.
    pub op: Op,
    /// Warning threshold; at least one of warning / critical is set.
    pub warning: Option<f64>,
    /// Critical threshold, beyond warning in the direction of `op`.
    pub critical: Option<f64>,
    /// Clear threshold (hysteresis): a firing alert stays firing while `value op clear` holds,
    /// so a value hovering around the warning threshold does not flap. Not beyond warning.
    pub clear: Option<f64>,
    /// Per-entity thresholds: the first override whose matchers all match an indicator row's
    /// labels gives that row's thresholds.
    pub overrides: Vec<Override>,
    /// Only indicator rows whose labels match all of these are evaluated (e.g. a roll-up
    /// depth or a tier); the others are as if absent.
    pub filter: Vec<Matcher>,
    /// Where each filter matcher's label name is.
    pub filter_locations: Vec<Location>,
    /// When set, the thresholds apply to a score of the value against the entity's own history
    /// (z-score or percentile rank), not to the value itself.
    pub baseline: Option<Baseline>,
    /// Event time the condition must hold before the alert fires.
    pub for_: Duration,
    /// Event time a firing alert keeps firing after its condition cleared (hysteresis).
    pub keep_firing_for: Duration,
    /// snake_case reason code, the `reason_code` label.
    pub reason_code: String,
    /// Static labels added to every alert of the rule.
    pub labels: BTreeMap<String, String>,
    /// Annotation templates (minijinja); `summary` is always present.
    pub annotations: BTreeMap<String, String>,
    /// Where the rule starts.
    pub location: Location,
    /// Where `indicator` and `value` were written.
    pub field_locations: FieldLocations,
}

impl AlertRule {
    /// True when both rules mean the same, wherever they were written (positions ignored). The
    /// engine keeps an alert's state across a reload only for such rules.
    pub fn same_definition(&self, other: &AlertRule) -> bool {
        self.name == other.name
            && self.indicator == other.indicator
            && self.value == other.value
            && self.op == other.op
            && same_threshold(self.warning, other.warning)
            && same_threshold(self.critical, other.critical)
            && same_threshold(self.clear, other.clear)
            && self.overrides == other.overrides
            && self.filter == other.filter
            && self.baseline == other.baseline
            && self.for_ == other.for_
            && self.keep_firing_for == other.keep_firing_for
            && self.reason_code == other.reason_code
            && self.labels == other.labels
            && self.annotations == other.annotations
    }

    /// A text that is equal for two rules exactly when [`AlertRule::same_definition`] holds:
    /// a checkpoint keeps it to tell whether the alerts it saved still belong to the rule.
    pub fn definition_key(&self) -> String {
        format!(
            "{:?}",
            (
                &self.name,
                &self.indicator,
                &self.value,
                &self.op,
                self.warning.map(f64::to_bits),
                self.critical.map(f64::to_bits),
                self.clear.map(f64::to_bits),
                &self.overrides,
                &self.filter,
                &self.baseline,
                (&self.for_, &self.keep_firing_for),
                (&self.reason_code, &self.labels, &self.annotations),
            )
        )
    }
}

impl AlertRule {
    /// True when the rule evaluates an indicator row with these labels (its filter matches).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.filter.iter().all(|m| m.matches(labels))
    }

    /// The rule's own thresholds, before overrides.
    pub fn default_thresholds(&self) -> Thresholds {
        Thresholds {
            warning: self.warning,
            critical: self.critical,
            clear: self.clear,
        }
    }

    /// The thresholds for an indicator row with these labels: the first matching override's,
    /// else the rule's.
    pub fn thresholds_for(&self, labels: &BTreeMap<String, String>) -> Thresholds {
        self.overrides
            .iter()
            .find(|o| o.matches(labels))
            .map_or_else(|| self.default_thresholds(), |o| o.thresholds)
    }
}

/// The warning / critical / clear levels that apply to one indicator row.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Thresholds {
    /// Warning threshold.
    pub warning: Option<f64>,
    /// Critical threshold.
    pub critical: Option<f64>,
    /// Clear threshold (hysteresis), not beyond the lowest level.
    pub clear: Option<f64>,
}

/// One label matcher of an override (Alertmanager's `match` / `match_re`).
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The label equals one of the values.
    Eq {
        /// Label name (an indicator label column).
        label: String,
        /// Accepted values.
        values: Vec<String>,
    },
    /// The label matches the regex, anchored at both ends.
    Re {
        /// Label name (an indicator label column).
        label: String,
        /// The pattern as written.
        pattern: String,
        /// `^(?:pattern)$`, compiled.
        regex: regex::Regex,
    },
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Matcher::Eq {
                    label: a,
                    values: x,
                },
                Matcher::Eq {
                    label: b,
                    values: y,
                },
            ) => a == b && x == y,
            (
                Matcher::Re {
                    label: a,
                    pattern: x,
                    ..
                },
                Matcher::Re {
                    label: b,
                    pattern: y,
                    ..
                },
            ) => a == b && x == y,
            _ => false,
        }
    }
}

impl Matcher {
    /// The label it reads.
    pub fn label(&self) -> &str {
        match self {
            Matcher::Eq { label, .. } | Matcher::Re { label, .. } => label,
        }
    }

    /// True when `labels` has the label with an accepted value (a missing label is "").
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(self.label()).map_or("", String::as_str);
        match self {
            Matcher::Eq { values, .. } => values.iter().any(|v| v == value),
            Matcher::Re { regex, .. } => regex.is_match(value),
        }
    }
}

/// Thresholds for the indicator rows whose labels match every matcher.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// The effective thresholds: the ones the override sets, the rule's for the others.
    pub thresholds: Thresholds,
    /// Where the override starts.
    pub location: Location,
    /// Where each matcher's label name is, for errors found against the indicator.
    pub label_locations: Vec<Location>,
}

impl Override {
    /// True when every matcher matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// How a value is scored against the entity's own history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaselineMethod {
    /// `(value - mean) / stddev` of the history.
    ZScore,
    /// Percentage (0-100) of the history at or below the value.
    Percentile,
}

impl BaselineMethod {
    /// `zscore` or `percentile`.
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineMethod::ZScore => "zscore",
            BaselineMethod::Percentile => "percentile",
        }
    }
}

/// A statistical threshold: compare a value with the same entity's recent history.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// Score used in place of the raw value.
    pub method: BaselineMethod,
    /// Event time of history kept (default 30 days).
    pub window: Duration,
    /// Event time between two recorded samples (default 1 hour).
    pub every: Duration,
    /// Fewer recorded samples give no score, so nothing fires (default 10).
    pub min_samples: usize,
    /// Floor of the standard deviation for z-scores (default 0: a flat history gives no score).
    pub min_stddev: f64,
}

fn same_threshold(a: Option<f64>, b: Option<f64>) -> bool {
    a.map(f64::to_bits) == b.map(f64::to_bits)
}

/// A validated group of rules from one file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    /// Group name, unique in its file.
    pub name: String,
    /// The file it came from, as given.
    pub file: PathBuf,
    /// Its rules in file order.
    pub rules: Vec<AlertRule>,
}

/// Every validated rule, groups in load order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    /// Groups in load order (files sorted by name within a directory).
    pub groups: Vec<RuleGroup>,
}

impl RuleSet {
    /// All rules, in load order.
    pub fn rules(&self) -> impl Iterator<Item = &AlertRule> {
        self.groups.iter().flat_map(|g| g.rules.iter())
    }

    /// The rule named `alert`.
    pub fn get(&self, alert: &str) -> Option<&AlertRule> {
        self.rules().find(|r| r.name == alert)
    }
}

/// What the main engineer knows about each indicator after planning its SQL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndicatorSchema {
    /// String key columns: they become alert labels.
    pub labels: Vec<String>,
    /// Numeric columns a rule may compare.
    pub values: Vec<String>,
}

/// Loads every `*.yaml` / `*.yml` file directly in `dir` (subdirectories are ignored).
///
/// # Errors
/// Every problem in every file, sorted; see [`RuleErrors`].
pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleErrors> {
    load_paths(&[dir.to_path_buf()])
}

/// Loads rule files and directories (each directory as [`load_dir`]); a file named explicitly
/// is read whatever its extension. A path given twice is read once.
///
/// # Errors
/// Unreadable paths and every problem in every file, sorted.
pub fn load_paths(paths: &[PathBuf]) -> Result<RuleSet, RuleErrors> {
    let mut errors = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => match rule_files_in(path) {
                Ok(found) => files.extend(found),
                Err(err) => errors.push(io_error(path, "cannot list directory", &err)),
            },
            Ok(_) => files.push(path.clone()),
            Err(err) => errors.push(io_error(path, "cannot read", &err)),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(f.clone()));
    let mut groups = Vec::new();
    let mut names = Vec::new();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => parse_into(file, &text, &mut groups, &mut names, &mut errors),
            Err(err) => errors.push(io_error(file, "cannot read file", &err)),
        }
    }
    finish(groups, &names, errors)
}

/// Parses and validates the text of one rule file; `path` only names it in errors.
///
/// # Errors
/// Every problem in the text, sorted.
pub fn parse_str(path: &Path, text: &str) -> Result<RuleSet, RuleErrors> {
    let (mut groups, mut names, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    parse_into(path, text, &mut groups, &mut names, &mut errors);
    finish(groups, &names, errors)
}

/// Checks rules against the planned indicators: the indicator exists, the value column is one of
/// its numeric columns, and no static label collides with one of its label columns.
///
/// # Errors
/// Every mismatch, at the `indicator` / `value` field or the rule, sorted.
pub fn check_against(
    rules: &RuleSet,
    indicators: &BTreeMap<String, IndicatorSchema>,
) -> Result<(), RuleErrors> {
    let mut errors = Vec::new();
    for group in &rules.groups {
        for rule in &group.rules {
            let context = format!("group {:?}, rule {:?}", group.name, rule.name);
            let mut push = |location: &Location, message: String| {
                errors.push(RuleError {
                    location: location.clone(),
                    context: context.clone(),
                    message,
                })
            };
            let Some(schema) = indicators.get(&rule.indicator) else {
                let known = indicators.keys().cloned().collect::<Vec<_>>();
                push(
                    &rule.field_locations.indicator,
                    format!(
                        "unknown indicator {:?} (known: {})",
                        rule.indicator,
                        list(&known)
                    ),
                );
                continue;
            };
            if !schema.values.contains(&rule.value) {
                let what = if schema.labels.contains(&rule.value) {
                    format!(
                        "value {:?} is a label column of indicator {:?}, not a numeric one",
                        rule.value, rule.indicator
                    )
                } else {
                    format!(
                        "indicator {:?} has no numeric column {:?}",
                        rule.indicator, rule.value
                    )
                };
                push(
                    &rule.field_locations.value,
                    format!("{what} (numeric columns: {})", list(&schema.values)),
                );
            }
            for column in &schema.labels {
                if RESERVED_LABELS.contains(&column.as_str()) {
                    push(
                        &rule.field_locations.indicator,
                        format!(
                            "label column {column:?} of indicator {:?} clashes with the alert label of that name",
                            rule.indicator
                        ),
                    );
                }
            }
            for (m, location) in rule.filter.iter().zip(&rule.filter_locations) {
                if !schema.labels.iter().any(|l| l == m.label()) {
                    push(
                        location,
                        format!(
                            "filter matches label {:?}, which indicator {:?} does not have (labels: {})",
                            m.label(),
                            rule.indicator,
                            list(&schema.labels)
                        ),
                    );
                }
            }
            for o in &rule.overrides {
                for (m, location) in o.matchers.iter().zip(&o.label_locations) {
                    if !schema.labels.iter().any(|l| l == m.label()) {
                        push(
                            location,
                            format!(
                                "override matches label {:?}, which indicator {:?} does not have (labels: {})",
                                m.label(),
                                rule.indicator,
                                list(&schema.labels)
                            ),
                        );
                    }
                }
            }
            for label in rule.labels.keys() {
                if schema.labels.contains(label) {
                    push(
                        &rule.location,
                        format!(
                            "static label {label:?} collides with a label column of indicator {:?}",
                            rule.indicator
                        ),
                    );
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RuleErrors::new(errors))
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn parse_into(
    path: &Path,
    text: &str,
    groups: &mut Vec<RuleGroup>,
    names: &mut Vec<NameSite>,
    errors: &mut Vec<RuleError>,
) {
    let mut d = Diags::new(path);
    match yaml::parse(text) {
        Ok(root) => {
            let file = raw::read_file(path, root.as_ref(), &mut d);
            let (found, sites) = validate::check_file(&file, &mut d);
            groups.extend(found);
            names.extend(sites);
        }
        Err(err) => d.push(err.pos, "", err.message),
    }
    errors.append(&mut d.errors);
}

fn finish(
    groups: Vec<RuleGroup>,
    names: &[NameSite],
    mut errors: Vec<RuleError>,
) -> Result<RuleSet, RuleErrors> {
    validate::check_unique_names(names, &mut errors);
    if errors.is_empty() {
        Ok(RuleSet { groups })
    } else {
        Err(RuleErrors::new(errors))
    }
}

/// The `*.yaml` / `*.yml` files directly in `dir`, sorted by name.
fn rule_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_rule = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if is_rule && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn io_error(path: &Path, what: &str, err: &std::io::Error) -> RuleError {
    RuleError {
        location: Location {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
        },
        context: String::new(),
        message: format!("{what}: {}", err.to_string().to_lowercase()),
    }
}

#[cfg(test)]
mod tests;
