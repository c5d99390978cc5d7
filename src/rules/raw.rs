//! Positioned YAML tree -> [`RuleFile`], the rule file as written.
//!
//! In: the root [`Node`] of one file. Out: a [`RuleFile`] whose fields keep their positions, plus
//! every structural problem pushed to a [`Diags`]: unknown keys, duplicate keys, wrong types and
//! missing required fields. A field that is wrong is left out (`None`) and the walk goes on, so
//! one pass reports all of them; the meaning of the values is checked later in `validate.rs`.

use std::path::{Path, PathBuf};

use super::yaml::{Node, NodeKind, Pos};
use super::{Location, RuleError};

/// A value with the position of its YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value as read.
    pub value: T,
    /// Where its node starts.
    pub pos: Pos,
}

/// A mapping of names to strings as written (`labels`, `annotations`), in file order.
pub type Entries = Vec<(Spanned<String>, Spanned<String>)>;

/// A rule file as written: every group, even the broken ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleFile {
    /// The path as given by the caller; it prefixes every error.
    pub path: PathBuf,
    /// The groups in file order.
    pub groups: Vec<RawGroup>,
}

/// One group as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawGroup {
    /// 1-based position in the file, named in errors when the name is missing.
    pub index: usize,
    /// Where the group's mapping starts.
    pub pos: Pos,
    /// `name`, if it is a string.
    pub name: Option<Spanned<String>>,
    /// `rules`, each rule that is a mapping.
    pub rules: Vec<RawRule>,
}

/// One alerting rule as written; a field is `None` when absent or of the wrong type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawRule {
    /// 1-based position in its group, named in errors when the alert name is missing.
    pub index: usize,
    /// Where the rule's mapping starts.
    pub pos: Pos,
    /// False when a structural error was reported, so no validated rule is built from it.
    pub complete: bool,
    /// `alert`: the alert name.
    pub alert: Option<Spanned<String>>,
    /// `indicator`: the indicator the rule reads.
    pub indicator: Option<Spanned<String>>,
    /// `value`: the numeric column compared with the thresholds.
    pub value: Option<Spanned<String>>,
    /// `op`: the comparison, still unchecked text.
    pub op: Option<Spanned<String>>,
    /// `warning` threshold.
    pub warning: Option<Spanned<f64>>,
    /// `critical` threshold.
    pub critical: Option<Spanned<f64>>,
    /// `for`, still unparsed duration text.
    pub for_: Option<Spanned<String>>,
    /// `keep_firing_for`, still unparsed duration text.
    pub keep_firing_for: Option<Spanned<String>>,
    /// `clear` threshold (hysteresis).
    pub clear: Option<Spanned<f64>>,
    /// `overrides`, each one that is a mapping.
    pub overrides: Vec<RawOverride>,
    /// `filter`: only indicator rows whose labels match are evaluated (thresholds unused).
    pub filter: Option<RawOverride>,
    /// `baseline`, when it is a mapping.
    pub baseline: Option<RawBaseline>,
    /// `reason_code`.
    pub reason_code: Option<Spanned<String>>,
    /// `labels`, name and value nodes in file order.
    pub labels: Entries,
    /// `annotations`: the mapping's position and its entries in file order.
    pub annotations: Option<Spanned<Entries>>,
}

/// One entry of a rule's `overrides` as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawOverride {
    /// 1-based position in `overrides`.
    pub index: usize,
    /// Where the override's mapping starts.
    pub pos: Pos,
    /// `match`: label = value (a list of values means any of them).
    pub match_eq: Vec<(Spanned<String>, Vec<Spanned<String>>)>,
    /// `match_re`: label =~ regex (anchored, like Prometheus).
    pub match_re: Entries,
    /// `warning` threshold.
    pub warning: Option<Spanned<f64>>,
    /// `critical` threshold.
    pub critical: Option<Spanned<f64>>,
    /// `clear` threshold.
    pub clear: Option<Spanned<f64>>,
}

/// A rule's `baseline` as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawBaseline {
    /// Where the mapping starts.
    pub pos: Pos,
    /// `method`: zscore or percentile.
    pub method: Option<Spanned<String>>,
    /// `window`: how much event time of history the baseline covers.
    pub window: Option<Spanned<String>>,
    /// `every`: event time between two recorded samples.
    pub every: Option<Spanned<String>>,
    /// `min_samples`: fewer recorded samples give no score.
    pub min_samples: Option<Spanned<f64>>,
    /// `min_stddev`: floor of the standard deviation (zscore).
    pub min_stddev: Option<Spanned<f64>>,
}

/// Keys allowed at the top of a rule file.
const FILE_FIELDS: &[&str] = &["groups"];
/// Keys allowed in a group.
const GROUP_FIELDS: &[&str] = &["name", "rules"];
/// Keys allowed in a rule.
const RULE_FIELDS: &[&str] = &[
    "alert",
    "indicator",
    "value",
    "op",
    "warning",
    "critical",
    "for",
    "keep_firing_for",
    "clear",
    "overrides",
    "filter",
    "baseline",
    "reason_code",
    "labels",
    "annotations",
];
/// Keys allowed in an override.
const OVERRIDE_FIELDS: &[&str] = &["match", "match_re", "warning", "critical", "clear"];
/// Keys allowed in a filter.
const FILTER_FIELDS: &[&str] = &["match", "match_re"];
/// Keys allowed in a baseline.
const BASELINE_FIELDS: &[&str] = &["method", "window", "every", "min_samples", "min_stddev"];
/// Keys a rule must have.
const RULE_REQUIRED: &[&str] = &[
    "alert",
    "indicator",
    "value",
    "op",
    "reason_code",
    "annotations",
];

/// Errors of one file, each tied to a position in it.
#[derive(Debug)]
pub(crate) struct Diags {
    /// The file, as given.
    pub file: PathBuf,
    /// Errors found so far.
    pub errors: Vec<RuleError>,
}

impl Diags {
    /// Starts an empty list for `file`.
    pub fn new(file: &Path) -> Self {
        Diags {
            file: file.to_path_buf(),
            errors: Vec::new(),
        }
    }

    /// The location of `pos` in this file.
    pub fn location(&self, pos: Pos) -> Location {
        Location {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
        }
    }

    /// Records an error at `pos` with its context (`group "g", rule "R"`, or empty).
    pub fn push(&mut self, pos: Pos, context: &str, message: impl Into<String>) {
        self.errors.push(RuleError {
            location: self.location(pos),
            context: context.to_string(),
            message: message.into(),
        });
    }
}

/// `group "g"`, or `group N` when the name is missing.
pub(crate) fn group_context(name: Option<&str>, index: usize) -> String {
    match name {
        Some(name) => format!("group {name:?}"),
        None => format!("group {index}"),
    }
}

/// `group "g", rule "R"`, or `..., rule N` when the alert name is missing.
pub(crate) fn rule_context(group: &str, alert: Option<&str>, index: usize) -> String {
    match alert {
        Some(alert) => format!("{group}, rule {alert:?}"),
        None => format!("{group}, rule {index}"),
    }
}

/// Reads a whole file; `root` is `None` for an empty document.
pub(crate) fn read_file(path: &Path, root: Option<&Node>, d: &mut Diags) -> RuleFile {
    let mut file = RuleFile {
        path: path.to_path_buf(),
        groups: Vec::new(),
    };
    let Some(root) = root else {
        return file;
    };
    if !matches!(root.kind, NodeKind::Map(_)) {
        d.push(
            root.pos,
            "",
            format!(
                "a rule file must be a mapping with a groups field, got {}",
                root.kind.describe()
            ),
        );
        return file;
    }
    let fields = entries(root, FILE_FIELDS, "", d);
    let Some(groups) = lookup(&fields, "groups") else {
        d.push(root.pos, "", "missing field groups");
        return file;
    };
    match &groups.kind {
        NodeKind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(group) = read_group(item, i + 1, d) {
                    file.groups.push(group);
                }
            }
        }
        NodeKind::Null => {}
        other => d.push(
            groups.pos,
            "",
            format!("groups must be a sequence, got {}", other.describe()),
        ),
    }
    file
}

fn read_group(node: &Node, index: usize, d: &mut Diags) -> Option<RawGroup> {
    if !matches!(node.kind, NodeKind::Map(_)) {
        let context = group_context(None, index);
        d.push(
            node.pos,
            &context,
            format!("group must be a mapping, got {}", node.kind.describe()),
        );
        return None;
    }
    let name = first_str(node, "name");
    let context = group_context(name, index);
    let fields = entries(node, GROUP_FIELDS, &context, d);
    let mut group = RawGroup {
        index,
        pos: node.pos,
        name: None,
        rules: Vec::new(),
    };
    match lookup(&fields, "name") {
        Some(value) => group.name = string(value, "name", &context, d),
        None => d.push(node.pos, &context, "missing field name"),
    }
    match lookup(&fields, "rules") {
        Some(Node {
            kind: NodeKind::Seq(items),
            ..
        }) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(rule) = read_rule(item, i + 1, &context, d) {
                    group.rules.push(rule);
                }
            }
        }
        Some(Node {
            kind: NodeKind::Null,
            ..
        }) => {}
        Some(other) => d.push(
            other.pos,
            &context,
            format!("rules must be a sequence, got {}", other.kind.describe()),
        ),
        None => d.push(node.pos, &context, "missing field rules"),
    }
    Some(group)
}

fn read_rule(node: &Node, index: usize, group: &str, d: &mut Diags) -> Option<RawRule> {
    if !matches!(node.kind, NodeKind::Map(_)) {
        let context = rule_context(group, None, index);
        d.push(
            node.pos,
            &context,
            format!("rule must be a mapping, got {}", node.kind.describe()),
        );
        return None;
    }
    let context = rule_context(group, first_str(node, "alert"), index);
    let before = d.errors.len();
    let fields = entries(node, RULE_FIELDS, &context, d);
    let mut rule = RawRule {
        index,
        pos: node.pos,
        ..RawRule::default()
    };
    for &(key, key_pos, value) in &fields {
        let ctx = context.as_str();
        match key {
            "alert" => rule.alert = string(value, key, ctx, d),
            "indicator" => rule.indicator = string(value, key, ctx, d),
            "value" => rule.value = string(value, key, ctx, d),
            "op" => rule.op = string(value, key, ctx, d),
            "warning" => rule.warning = number(value, key, ctx, d),
            "critical" => rule.critical = number(value, key, ctx, d),
            "for" => rule.for_ = duration(value, key, ctx, d),
            "keep_firing_for" => rule.keep_firing_for = duration(value, key, ctx, d),
            "clear" => rule.clear = number(value, key, ctx, d),
            "overrides" => rule.overrides = read_overrides(value, ctx, d),
            "filter" => rule.filter = read_filter(value, ctx, d),
            "baseline" => rule.baseline = read_baseline(value, ctx, d),
            "reason_code" => rule.reason_code = string(value, key, ctx, d),
            "labels" => {
                rule.labels = string_map(value, "labels", "label", ctx, d)
                    .map(|m| m.value)
                    .unwrap_or_default()
            }
            "annotations" => {
                rule.annotations = string_map(value, "annotations", "annotation", ctx, d);
                let null = value.kind == NodeKind::Null;
                if null || has_key(value, "summary") == Some(false) {
                    d.push(key_pos, ctx, "missing annotation summary");
                }
            }
            _ => {}
        }
    }
    let is_set = |key| lookup(&fields, key).is_some_and(|v| v.kind != NodeKind::Null);
    if !is_set("warning") && !is_set("critical") {
        d.push(
            node.pos,
            &context,
            "at least one of warning or critical is required",
        );
    }
    for required in RULE_REQUIRED {
        if lookup(&fields, required).is_none() {
            d.push(node.pos, &context, format!("missing field {required}"));
        }
    }
    rule.complete = d.errors.len() == before;
    Some(rule)
}

fn read_overrides(node: &Node, context: &str, d: &mut Diags) -> Vec<RawOverride> {
    let items = match &node.kind {
        NodeKind::Seq(items) => items,
        NodeKind::Null => return Vec::new(),
        other => {
            d.push(
                node.pos,
                context,
                format!("overrides must be a sequence, got {}", other.describe()),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ctx = format!("{context}, override {}", i + 1);
        if !matches!(item.kind, NodeKind::Map(_)) {
            d.push(
                item.pos,
                &ctx,
                format!("override must be a mapping, got {}", item.kind.describe()),
            );
            continue;
        }
        let fields = entries(item, OVERRIDE_FIELDS, &ctx, d);
        let mut o = RawOverride {
            index: i + 1,
            pos: item.pos,
            ..RawOverride::default()
        };
        for &(key, _, value) in &fields {
            match key {
                "match" => o.match_eq = read_match(value, &ctx, d),
                "match_re" => {
                    o.match_re = string_map(value, "match_re", "label", &ctx, d)
                        .map(|m| m.value)
                        .unwrap_or_default()
                }
                "warning" => o.warning = number(value, key, &ctx, d),
                "critical" => o.critical = number(value, key, &ctx, d),
                "clear" => o.clear = number(value, key, &ctx, d),
                _ => {}
            }
        }
        if o.match_eq.is_empty() && o.match_re.is_empty() {
            d.push(item.pos, &ctx, "override needs match or match_re");
        }
        if o.warning.is_none() && o.critical.is_none() && o.clear.is_none() {
            d.push(
                item.pos,
                &ctx,
                "override sets none of warning, critical or clear",
            );
        }
        out.push(o);
    }
    out
}

/// `filter`: a mapping of `match` / `match_re`, like an override without thresholds.
fn read_filter(node: &Node, context: &str, d: &mut Diags) -> Option<RawOverride> {
    let ctx = format!("{context}, filter");
    if !matches!(node.kind, NodeKind::Map(_)) {
        d.push(
            node.pos,
            &ctx,
            format!("filter must be a mapping, got {}", node.kind.describe()),
        );
        return None;
    }
    let fields = entries(node, FILTER_FIELDS, &ctx, d);
    let mut f = RawOverride {
        index: 0,
        pos: node.pos,
        ..RawOverride::default()
    };
    for &(key, _, value) in &fields {
        match key {
            "match" => f.match_eq = read_match(value, &ctx, d),
            "match_re" => {
                f.match_re = string_map(value, "match_re", "label", &ctx, d)
                    .map(|m| m.value)
                    .unwrap_or_default()
            }
            _ => {}
        }
    }
    if f.match_eq.is_empty() && f.match_re.is_empty() {
        d.push(node.pos, &ctx, "filter needs match or match_re");
    }
    Some(f)
}

/// `match`: label names to a string or a list of strings.
fn read_match(
    node: &Node,
    context: &str,
    d: &mut Diags,
) -> Vec<(Spanned<String>, Vec<Spanned<String>>)> {
    let pairs = match &node.kind {
        NodeKind::Map(pairs) => pairs,
        NodeKind::Null => return Vec::new(),
        other => {
            d.push(
                node.pos,
                context,
                format!("match must be a mapping, got {}", other.describe()),
            );
            return Vec::new();
        }
    };
    let mut out: Vec<(Spanned<String>, Vec<Spanned<String>>)> = Vec::new();
    for (key, value) in pairs {
        let NodeKind::Str(name) = &key.kind else {
            d.push(
                key.pos,
                context,
                format!("label names must be strings, got {}", key.kind.describe()),
            );
            continue;
        };
        if out.iter().any(|(k, _)| &k.value == name) {
            d.push(key.pos, context, format!("duplicate label {name:?}"));
            continue;
        }
        let scalar = |n: &Node| match &n.kind {
            NodeKind::Str(s) => Some(s.clone()),
            NodeKind::Int(i) => Some(i.to_string()),
            _ => None,
        };
        let mut values = Vec::new();
        let nodes: Vec<&Node> = match &value.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![value],
        };
        for n in nodes {
            match scalar(n) {
                Some(v) => values.push(Spanned {
                    value: v,
                    pos: n.pos,
                }),
                None => d.push(
                    n.pos,
                    context,
                    format!(
                        "match value of label {name:?} must be a string or a list of strings, got {}",
                        n.kind.describe()
                    ),
                ),
            }
        }
        out.push((
            Spanned {
                value: name.clone(),
                pos: key.pos,
            },
            values,
        ));
    }
    out
}

fn read_baseline(node: &Node, context: &str, d: &mut Diags) -> Option<RawBaseline> {
    if node.kind == NodeKind::Null {
        return None;
    }
    if !matches!(node.kind, NodeKind::Map(_)) {
        d.push(
            node.pos,
            context,
            format!("baseline must be a mapping, got {}", node.kind.describe()),
        );
        return None;
    }
    let fields = entries(node, BASELINE_FIELDS, context, d);
    let mut b = RawBaseline {
        pos: node.pos,
        ..RawBaseline::default()
    };
    for &(key, _, value) in &fields {
        let field = format!("baseline {key}");
        match key {
            "method" => b.method = string(value, &field, context, d),
            "window" => b.window = duration(value, &field, context, d),
            "every" => b.every = duration(value, &field, context, d),
            "min_samples" => b.min_samples = number(value, &field, context, d),
            "min_stddev" => b.min_stddev = number(value, &field, context, d),
            _ => {}
        }
    }
    if b.method.is_none() && lookup(&fields, "method").is_none() {
        d.push(node.pos, context, "missing field baseline method");
    }
    Some(b)
}

/// Whether a mapping has the string key `key`; `None` when `node` is not a mapping.
fn has_key(node: &Node, key: &str) -> Option<bool> {
    let NodeKind::Map(pairs) = &node.kind else {
        return None;
    };
    Some(
        pairs
            .iter()
            .any(|(k, _)| k.kind == NodeKind::Str(key.to_string())),
    )
}

/// The value of the first `key` in a mapping, if it is a string (used to name the context).
fn first_str<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    let NodeKind::Map(pairs) = &node.kind else {
        return None;
    };
    pairs.iter().find_map(|(k, v)| match (&k.kind, &v.kind) {
        (NodeKind::Str(k), NodeKind::Str(v)) if k == key => Some(v.as_str()),
        _ => None,
    })
}

/// An allowed mapping entry: the key, where the key is, and its value.
type Field<'a> = (&'static str, Pos, &'a Node);

fn lookup<'a>(fields: &[Field<'a>], key: &str) -> Option<&'a Node> {
    fields
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, _, v)| *v)
}

/// The allowed entries of a mapping (first of each key), reporting unknown, duplicate and
/// non-string keys.
fn entries<'a>(
    node: &'a Node,
    allowed: &[&'static str],
    context: &str,
    d: &mut Diags,
) -> Vec<Field<'a>> {
    let mut out: Vec<Field<'a>> = Vec::new();
    let NodeKind::Map(pairs) = &node.kind else {
        return out;
    };
    for (key, value) in pairs {
        let NodeKind::Str(name) = &key.kind else {
            d.push(
                key.pos,
                context,
                format!("field names must be strings, got {}", key.kind.describe()),
            );
            continue;
        };
        match allowed.iter().find(|a| **a == name) {
            None => d.push(
                key.pos,
                context,
                format!("unknown field {name:?} (allowed: {})", allowed.join(", ")),
            ),
            Some(known) if lookup(&out, known).is_some() => {
                d.push(key.pos, context, format!("duplicate field {name:?}"))
            }
            Some(known) => out.push((known, key.pos, value)),
        }
    }
    out
}

fn string(node: &Node, field: &str, context: &str, d: &mut Diags) -> Option<Spanned<String>> {
    match &node.kind {
        NodeKind::Str(s) => Some(Spanned {
            value: s.clone(),
            pos: node.pos,
        }),
        other => {
            d.push(
                node.pos,
                context,
                format!("{field} must be a string, got {}", other.describe()),
            );
            None
        }
    }
}

/// An optional number: null means absent.
fn number(node: &Node, field: &str, context: &str, d: &mut Diags) -> Option<Spanned<f64>> {
    let value = match &node.kind {
        NodeKind::Null => return None,
        NodeKind::Int(i) => *i as f64,
        NodeKind::Float(f) => *f,
        other => {
            d.push(
                node.pos,
                context,
                format!("{field} must be a number, got {}", other.describe()),
            );
            return None;
        }
    };
    Some(Spanned {
        value,
        pos: node.pos,
    })
}

/// An optional duration text (`15m`); a bare integer is kept as text so `0` reads as zero and
/// `90` gets the duration parser's "time unit needed" message.
fn duration(node: &Node, field: &str, context: &str, d: &mut Diags) -> Option<Spanned<String>> {
    let value = match &node.kind {
        NodeKind::Null => return None,
        NodeKind::Str(s) => s.clone(),
        NodeKind::Int(i) => i.to_string(),
        other => {
            d.push(
                node.pos,
                context,
                format!(
                    "{field} must be a duration such as 15m, got {}",
                    other.describe()
                ),
            );
            return None;
        }
    };
    Some(Spanned {
        value,
        pos: node.pos,
    })
}

/// An optional mapping of names to strings (`labels`, `annotations`); null means absent.
fn string_map(
    node: &Node,
    field: &str,
    item: &str,
    context: &str,
    d: &mut Diags,
) -> Option<Spanned<Entries>> {
    let pairs = match &node.kind {
        NodeKind::Map(pairs) => pairs,
        NodeKind::Null => return None,
        other => {
            d.push(
                node.pos,
                context,
                format!("{field} must be a mapping, got {}", other.describe()),
            );
            return None;
        }
    };
    let mut out: Entries = Vec::new();
    for (key, value) in pairs {
        let NodeKind::Str(name) = &key.kind else {
            d.push(
                key.pos,
                context,
                format!("{item} names must be strings, got {}", key.kind.describe()),
            );
            continue;
        };
        if out.iter().any(|(k, _)| &k.value == name) {
            d.push(key.pos, context, format!("duplicate {item} {name:?}"));
            continue;
        }
        let NodeKind::Str(text) = &value.kind else {
            d.push(
                value.pos,
                context,
                format!(
                    "{item} {name:?} must be a string, got {}",
                    value.kind.describe()
                ),
            );
            continue;
        };
        out.push((
            Spanned {
                value: name.clone(),
                pos: key.pos,
            },
            Spanned {
                value: text.clone(),
                pos: value.pos,
            },
        ));
    }
    Some(Spanned {
        value: out,
        pos: node.pos,
    })
}

#[cfg(test)]
mod tests {
    use super::super::yaml;
    use super::*;

    fn read(text: &str) -> (RuleFile, Vec<String>) {
        let path = Path::new("r.yaml");
        let mut d = Diags::new(path);
        let root = yaml::parse(text).expect("test yaml parses");
        let file = read_file(path, root.as_ref(), &mut d);
        (file, d.errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn reads_a_complete_rule_with_positions() {
        let (file, errors) = read(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        indicator: i\n        \
             value: v\n        op: \"<\"\n        warning: 1\n        for: 0\n        \
             reason_code: r\n        labels: {team: x}\n        annotations: {summary: s}\n",
        );
        assert_eq!(errors, Vec::<String>::new());
        let rule = &file.groups[0].rules[0];
        assert!(rule.complete);
        assert_eq!(rule.pos, Pos { line: 4, col: 9 });
        assert_eq!(rule.warning.as_ref().map(|w| w.value), Some(1.0));
        assert_eq!(rule.for_.as_ref().map(|f| f.value.as_str()), Some("0"));
        assert_eq!(rule.labels[0].1.value, "x");
        assert_eq!(rule.annotations.as_ref().map(|a| a.value.len()), Some(1));
    }

    #[test]
    fn empty_and_null_groups_are_fine() {
        assert_eq!(read("").1, Vec::<String>::new());
        assert_eq!(read("groups:\n").1, Vec::<String>::new());
        assert_eq!(read("groups: []\n").1, Vec::<String>::new());
    }

    #[test]
    fn non_string_keys_and_non_mapping_root() {
        assert_eq!(
            read("- a\n").1,
            ["r.yaml:1:1: a rule file must be a mapping with a groups field, got a sequence"]
        );
        assert_eq!(
            read("groups: []\n1: x\n").1,
            ["r.yaml:2:1: field names must be strings, got an integer"]
        );
    }

    #[test]
    fn contexts_name_groups_and_rules() {
        assert_eq!(group_context(Some("g"), 3), "group \"g\"");
        assert_eq!(group_context(None, 3), "group 3");
        assert_eq!(rule_context("group 3", None, 2), "group 3, rule 2");
        assert_eq!(
            rule_context("group \"g\"", Some("A"), 2),
            "group \"g\", rule \"A\""
        );
    }
}
