//! [`RuleFile`] (as written) -> validated [`RuleGroup`]s.
//!
//! In: the raw groups of one file. Out: the groups whose rules passed every check, the alert
//! names seen (for the cross-file uniqueness check), and every problem pushed to the file's
//! [`Diags`]: names (CamelCase alerts, snake_case reason codes, label names), group names unique
//! in the file, `op`, finite thresholds with critical beyond warning, durations, and annotation
//! templates that compile.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::Environment;

use super::raw::{
    group_context, rule_context, Diags, Entries, RawBaseline, RawOverride, RawRule, RuleFile,
    Spanned,
};
use super::yaml::Pos;
use super::{
    template, AlertRule, Baseline, BaselineMethod, FieldLocations, Location, Matcher, Op, Override,
    RuleError, RuleGroup, Thresholds, RESERVED_LABELS,
};

/// An alert name and where it was written, for the uniqueness check across files.
#[derive(Debug, Clone)]
pub(crate) struct NameSite {
    /// The alert name.
    pub name: String,
    /// Where the name's value is.
    pub location: Location,
    /// `group "g", rule "R"`.
    pub context: String,
}

/// Checks one file; returns its valid groups and the alert names it defines.
pub(crate) fn check_file(file: &RuleFile, d: &mut Diags) -> (Vec<RuleGroup>, Vec<NameSite>) {
    let env = template::environment();
    let mut groups = Vec::new();
    let mut names = Vec::new();
    let mut group_names: BTreeMap<&str, Pos> = BTreeMap::new();
    for raw in &file.groups {
        let name = raw.name.as_ref().map(|n| n.value.as_str());
        let context = group_context(name, raw.index);
        if let Some(spanned) = &raw.name {
            if spanned.value.trim().is_empty() {
                d.push(spanned.pos, &context, "group name must not be empty");
            } else if let Some(first) = group_names.get(spanned.value.as_str()) {
                d.push(
                    spanned.pos,
                    &context,
                    format!(
                        "duplicate group name (first defined at line {}, column {})",
                        first.line, first.col
                    ),
                );
            } else {
                group_names.insert(&spanned.value, spanned.pos);
            }
        }
        let mut rules = Vec::new();
        for rule in &raw.rules {
            let rule_ctx = rule_context(
                &context,
                rule.alert.as_ref().map(|a| a.value.as_str()),
                rule.index,
            );
            if let Some(alert) = &rule.alert {
                names.push(NameSite {
                    name: alert.value.clone(),
                    location: d.location(alert.pos),
                    context: rule_ctx.clone(),
                });
            }
            let before = d.errors.len();
            match check_rule(rule, &rule_ctx, &env, d) {
                Some(valid) => rules.push(valid),
                // Every path to `None` reports why; this keeps a rule from vanishing silently.
                None if d.errors.len() == before && rule.complete => {
                    d.push(rule.pos, &rule_ctx, "rule is incomplete")
                }
                None => {}
            }
        }
        groups.push(RuleGroup {
            name: name.unwrap_or_default().to_string(),
            file: file.path.clone(),
            rules,
        });
    }
    (groups, names)
}

/// Reports every alert name defined more than once, at each later definition. `sites` must be in
/// load order (files in order, each file top to bottom).
pub(crate) fn check_unique_names(sites: &[NameSite], errors: &mut Vec<RuleError>) {
    let mut first: BTreeMap<&str, &Location> = BTreeMap::new();
    for site in sites {
        match first.get(site.name.as_str()) {
            Some(original) => errors.push(RuleError {
                location: site.location.clone(),
                context: site.context.clone(),
                message: format!("duplicate alert name (first defined at {original})"),
            }),
            None => {
                first.insert(&site.name, &site.location);
            }
        }
    }
}

/// Checks one rule; `Some` only when neither this pass nor the structural one found a problem.
fn check_rule(
    raw: &RawRule,
    context: &str,
    env: &Environment<'_>,
    d: &mut Diags,
) -> Option<AlertRule> {
    let before = d.errors.len();
    if let Some(alert) = &raw.alert {
        if !is_camel_case(&alert.value) {
            d.push(
                alert.pos,
                context,
                format!(
                    "alert name {:?} is not CamelCase (like SupplierDeliveriesLate)",
                    alert.value
                ),
            );
        }
    }
    if let Some(indicator) = &raw.indicator {
        if indicator.value.is_empty() || !indicator.value.chars().all(is_name_char) {
            d.push(
                indicator.pos,
                context,
                format!(
                    "indicator {:?} must be a name of letters, digits and _",
                    indicator.value
                ),
            );
        }
    }
    if let Some(value) = &raw.value {
        if value.value.trim().is_empty() {
            d.push(
                value.pos,
                context,
                "value must name a column, got an empty string",
            );
        }
    }
    let op = raw.op.as_ref().and_then(|op| {
        let parsed = Op::parse(&op.value);
        if parsed.is_none() {
            d.push(
                op.pos,
                context,
                format!("op {:?} is not one of <, <=, >, >=", op.value),
            );
        }
        parsed
    });
    let warning = finite(raw.warning.as_ref(), "warning", context, d);
    let critical = finite(raw.critical.as_ref(), "critical", context, d);
    let clear = finite(raw.clear.as_ref(), "clear", context, d);
    let thresholds = Thresholds {
        warning,
        critical,
        clear,
    };
    if let Some(op) = op {
        check_ladder(
            op,
            &thresholds,
            raw.critical.as_ref(),
            raw.clear.as_ref(),
            context,
            d,
        );
    }
    let baseline = raw
        .baseline
        .as_ref()
        .and_then(|b| check_baseline(b, context, d));
    if let Some(b) = &baseline {
        check_score_range(b, &thresholds, raw, context, d);
    }
    let mut overrides = Vec::new();
    for o in &raw.overrides {
        if let Some(valid) = check_override(o, op, &thresholds, context, d) {
            overrides.push(valid);
        }
    }
    let (filter, filter_locations) = match &raw.filter {
        Some(f) => check_matchers(f, &format!("{context}, filter"), d),
        None => (Vec::new(), Vec::new()),
    };
    let for_ = duration(raw.for_.as_ref(), "for", context, d);
    let keep_firing_for = duration(raw.keep_firing_for.as_ref(), "keep_firing_for", context, d);
    if let Some(code) = &raw.reason_code {
        if !is_snake_case(&code.value) {
            d.push(
                code.pos,
                context,
                format!(
                    "reason_code {:?} is not snake_case (like supplier_late_deliveries)",
                    code.value
                ),
            );
        }
    }
    for (name, _) in &raw.labels {
        if !is_label_name(&name.value) {
            d.push(
                name.pos,
                context,
                format!(
                    "label name {:?} is invalid (must match [a-zA-Z_][a-zA-Z0-9_]*)",
                    name.value
                ),
            );
        } else if RESERVED_LABELS.contains(&name.value.as_str()) || name.value.starts_with("__") {
            d.push(
                name.pos,
                context,
                format!("label name {:?} is reserved", name.value),
            );
        }
    }
    if let Some(annotations) = &raw.annotations {
        check_annotations(annotations, context, env, d);
    }
    if d.errors.len() != before || !raw.complete {
        return None;
    }
    let field = |s: &Option<Spanned<String>>| s.as_ref().map(|s| (s.value.clone(), s.pos));
    let (name, _) = field(&raw.alert)?;
    let (indicator, indicator_pos) = field(&raw.indicator)?;
    let (value, value_pos) = field(&raw.value)?;
    let (reason_code, _) = field(&raw.reason_code)?;
    let pairs = |v: &Entries| {
        v.iter()
            .map(|(k, v)| (k.value.clone(), v.value.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    Some(AlertRule {
        name,
        indicator,
        value,
        op: op?,
        warning,
        critical,
        clear,
        overrides,
        filter,
        filter_locations,
        baseline,
        for_: for_?,
        keep_firing_for: keep_firing_for?,
        reason_code,
        labels: pairs(&raw.labels),
        annotations: pairs(&raw.annotations.as_ref()?.value),
        location: d.location(raw.pos),
        field_locations: FieldLocations {
            indicator: d.location(indicator_pos),
            value: d.location(value_pos),
        },
    })
}

fn check_annotations(
    annotations: &Spanned<Entries>,
    context: &str,
    env: &Environment<'_>,
    d: &mut Diags,
) {
    for (name, text) in &annotations.value {
        if !is_label_name(&name.value) {
            d.push(
                name.pos,
                context,
                format!(
                    "annotation name {:?} is invalid (must match [a-zA-Z_][a-zA-Z0-9_]*)",
                    name.value
                ),
            );
            continue;
        }
        if let Err(err) = template::check(env, &name.value, &text.value) {
            d.push(
                text.pos,
                context,
                format!("annotation {:?}: template error: {err}", name.value),
            );
        }
    }
}

/// Critical beyond warning, clear not beyond the lowest level (warning, else critical).
fn check_ladder(
    op: Op,
    t: &Thresholds,
    critical_at: Option<&Spanned<f64>>,
    clear_at: Option<&Spanned<f64>>,
    context: &str,
    d: &mut Diags,
) {
    let (beyond, short) = match op {
        Op::Lt | Op::Le => ("below", "above"),
        Op::Gt | Op::Ge => ("above", "below"),
    };
    if let (Some(w), Some(c), Some(at)) = (t.warning, t.critical, critical_at) {
        if !op.beyond(c, w) {
            d.push(
                at.pos,
                context,
                format!("critical ({c}) must be {beyond} warning ({w}) for op \"{op}\""),
            );
        }
    }
    if let (Some(clear), Some(at)) = (t.clear, clear_at) {
        let lowest = t.warning.map(|w| ("warning", w));
        let lowest = lowest.or(t.critical.map(|c| ("critical", c)));
        if let Some((name, level)) = lowest {
            if op.beyond(clear, level) {
                d.push(
                    at.pos,
                    context,
                    format!(
                        "clear ({clear}) must not be {beyond} {name} ({level}) for op \"{op}\": \
                         it lies between {name} and normal values ({short} {name})"
                    ),
                );
            }
        }
    }
}

/// The `match` / `match_re` matchers of an override or a filter, with their label locations.
fn check_matchers(
    raw: &RawOverride,
    context: &str,
    d: &mut Diags,
) -> (Vec<Matcher>, Vec<Location>) {
    let context = context.to_string();
    let mut matchers = Vec::new();
    let mut label_locations = Vec::new();
    for (label, values) in &raw.match_eq {
        if check_matcher_label(label, &context, d) {
            matchers.push(Matcher::Eq {
                label: label.value.clone(),
                values: values.iter().map(|v| v.value.clone()).collect(),
            });
            label_locations.push(d.location(label.pos));
        }
    }
    for (label, pattern) in &raw.match_re {
        if !check_matcher_label(label, &context, d) {
            continue;
        }
        match regex::Regex::new(&format!("^(?:{})$", pattern.value)) {
            Ok(regex) => {
                matchers.push(Matcher::Re {
                    label: label.value.clone(),
                    pattern: pattern.value.clone(),
                    regex,
                });
                label_locations.push(d.location(label.pos));
            }
            Err(err) => {
                let first = err.to_string();
                let first = first.lines().last().unwrap_or_default().trim();
                let first = first.strip_prefix("error: ").unwrap_or(first);
                d.push(
                    pattern.pos,
                    &context,
                    format!("match_re {:?} is not a valid regex: {first}", pattern.value),
                );
            }
        }
    }
    (matchers, label_locations)
}

fn check_override(
    raw: &RawOverride,
    op: Option<Op>,
    rule: &Thresholds,
    context: &str,
    d: &mut Diags,
) -> Option<Override> {
    let context = format!("{context}, override {}", raw.index);
    let before = d.errors.len();
    let (matchers, label_locations) = check_matchers(raw, &context, d);
    let warning = finite(raw.warning.as_ref(), "warning", &context, d);
    let critical = finite(raw.critical.as_ref(), "critical", &context, d);
    let clear = finite(raw.clear.as_ref(), "clear", &context, d);
    // An override replaces the levels it names; the others are the rule's.
    let thresholds = Thresholds {
        warning: if raw.warning.is_some() {
            warning
        } else {
            rule.warning
        },
        critical: if raw.critical.is_some() {
            critical
        } else {
            rule.critical
        },
        clear: if raw.clear.is_some() {
            clear
        } else {
            rule.clear
        },
    };
    if let Some(op) = op {
        let at = raw.critical.as_ref().or(raw.warning.as_ref());
        let clear_at = raw.clear.as_ref().or(raw.warning.as_ref());
        check_ladder(op, &thresholds, at, clear_at, &context, d);
    }
    (d.errors.len() == before).then(|| Override {
        matchers,
        thresholds,
        location: d.location(raw.pos),
        label_locations,
    })
}

fn check_matcher_label(label: &Spanned<String>, context: &str, d: &mut Diags) -> bool {
    if is_label_name(&label.value) {
        return true;
    }
    d.push(
        label.pos,
        context,
        format!(
            "label name {:?} is invalid (must match [a-zA-Z_][a-zA-Z0-9_]*)",
            label.value
        ),
    );
    false
}

/// Most samples a baseline keeps per entity (window / every), to bound memory.
const MAX_BASELINE_SAMPLES: u128 = 10_000;

fn check_baseline(raw: &RawBaseline, context: &str, d: &mut Diags) -> Option<Baseline> {
    let before = d.errors.len();
    let method = raw.method.as_ref().and_then(|m| match m.value.as_str() {
        "zscore" => Some(BaselineMethod::ZScore),
        "percentile" => Some(BaselineMethod::Percentile),
        other => {
            d.push(
                m.pos,
                context,
                format!("baseline method {other:?} is not one of zscore, percentile"),
            );
            None
        }
    });
    let window = match &raw.window {
        Some(_) => duration(raw.window.as_ref(), "baseline window", context, d),
        None => Some(Duration::from_secs(30 * 86_400)),
    };
    let every = match &raw.every {
        Some(_) => duration(raw.every.as_ref(), "baseline every", context, d),
        None => Some(Duration::from_secs(3_600)),
    };
    if let (Some(w), Some(e)) = (window, every) {
        let at = raw
            .every
            .as_ref()
            .or(raw.window.as_ref())
            .map_or(raw.pos, |s| s.pos);
        if e.is_zero() || e > w {
            d.push(
                at,
                context,
                "baseline every must be > 0 and at most the window",
            );
        } else if w.as_millis() / e.as_millis().max(1) > MAX_BASELINE_SAMPLES {
            d.push(
                at,
                context,
                format!(
                    "baseline keeps window / every = {} samples per entity; at most {MAX_BASELINE_SAMPLES}",
                    w.as_millis() / e.as_millis().max(1)
                ),
            );
        }
    }
    let min_samples = match &raw.min_samples {
        Some(n) if n.value.fract() != 0.0 || n.value < 2.0 || n.value > 1e6 => {
            d.push(
                n.pos,
                context,
                format!(
                    "baseline min_samples must be an integer >= 2, got {}",
                    n.value
                ),
            );
            None
        }
        Some(n) => Some(n.value as usize),
        None => Some(10),
    };
    let min_stddev = match &raw.min_stddev {
        Some(s) if !s.value.is_finite() || s.value < 0.0 => {
            d.push(
                s.pos,
                context,
                format!(
                    "baseline min_stddev must be a finite number >= 0, got {}",
                    s.value
                ),
            );
            None
        }
        Some(s) => Some(s.value),
        None => Some(0.0),
    };
    if d.errors.len() != before {
        return None;
    }
    Some(Baseline {
        method: method?,
        window: window?,
        every: every?,
        min_samples: min_samples?,
        min_stddev: min_stddev?,
    })
}

/// Percentile scores run from 0 to 100: a threshold outside can never (or always) hold.
fn check_score_range(b: &Baseline, t: &Thresholds, raw: &RawRule, context: &str, d: &mut Diags) {
    if b.method != BaselineMethod::Percentile {
        return;
    }
    for (name, value, at) in [
        ("warning", t.warning, &raw.warning),
        ("critical", t.critical, &raw.critical),
        ("clear", t.clear, &raw.clear),
    ] {
        if let (Some(v), Some(at)) = (value, at) {
            if !(0.0..=100.0).contains(&v) {
                d.push(
                    at.pos,
                    context,
                    format!("{name} ({v}) must be within 0..100 for a percentile baseline"),
                );
            }
        }
    }
}

/// A threshold that must be finite; `None` when absent or reported.
fn finite(value: Option<&Spanned<f64>>, field: &str, context: &str, d: &mut Diags) -> Option<f64> {
    let value = value?;
    if value.value.is_finite() {
        Some(value.value)
    } else {
        d.push(
            value.pos,
            context,
            format!("{field} must be a finite number, got {}", value.value),
        );
        None
    }
}

/// A duration; absent means zero, `None` when reported.
fn duration(
    text: Option<&Spanned<String>>,
    field: &str,
    context: &str,
    d: &mut Diags,
) -> Option<Duration> {
    let Some(text) = text else {
        return Some(Duration::ZERO);
    };
    let trimmed = text.value.trim();
    if trimmed.starts_with('-') {
        d.push(
            text.pos,
            context,
            format!("{field} {:?} must be >= 0", text.value),
        );
        return None;
    }
    match humantime::parse_duration(trimmed) {
        Ok(duration) => Some(duration),
        Err(err) => {
            d.push(
                text.pos,
                context,
                format!("{field} {:?} is not a valid duration: {err}", text.value),
            );
            None
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `SupplierDeliveriesLate`: an upper-case ASCII letter, then letters and digits.
pub(crate) fn is_camel_case(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// `supplier_late_deliveries`: lower-case words of letters and digits joined by single `_`.
pub(crate) fn is_snake_case(code: &str) -> bool {
    code.starts_with(|c: char| c.is_ascii_lowercase())
        && code.split('_').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_name_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_shapes() {
        assert!(is_camel_case("SupplierOnTimeRatioLow"));
        assert!(is_camel_case("OTDLow2"));
        assert!(!is_camel_case("supplierLate"));
        assert!(!is_camel_case("Supplier_Late"));
        assert!(!is_camel_case(""));
        assert!(is_snake_case("supplier_late_deliveries"));
        assert!(is_snake_case("tier2_risk"));
        assert!(!is_snake_case("Supplier_late"));
        assert!(!is_snake_case("late__lines"));
        assert!(!is_snake_case("late_"));
        assert!(!is_snake_case("_late"));
        assert!(!is_snake_case("2late"));
        assert!(is_label_name("_team"));
        assert!(is_label_name("team2"));
        assert!(!is_label_name("2team"));
        assert!(!is_label_name("team-name"));
        assert!(!is_label_name(""));
    }
}
