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

use super::raw::{group_context, rule_context, Diags, Entries, RawRule, RuleFile, Spanned};
use super::yaml::Pos;
use super::{
    template, AlertRule, FieldLocations, Location, Op, RuleError, RuleGroup, RESERVED_LABELS,
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
    if let (Some(op), Some(w), Some(c), Some(spanned)) = (op, warning, critical, &raw.critical) {
        if !op.beyond(c, w) {
            let side = match op {
                Op::Lt | Op::Le => "below",
                Op::Gt | Op::Ge => "above",
            };
            d.push(
                spanned.pos,
                context,
                format!("critical ({c}) must be {side} warning ({w}) for op \"{op}\""),
            );
        }
    }
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
