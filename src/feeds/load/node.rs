//! Small readers of YAML nodes: a key's node, the allowed keys of a map (unknown ones
//! reported), strings, numbers, lists and durations, each problem pushed with its position.

use super::*;

pub(super) fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    let NodeKind::Map(pairs) = &node.kind else {
        return None;
    };
    pairs
        .iter()
        .find(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == key))
        .map(|(_, v)| v)
}

pub(super) fn is_map(node: &Node, what: &str, d: &mut Diags) -> bool {
    let ok = matches!(node.kind, NodeKind::Map(_));
    if !ok {
        d.push(
            node.pos,
            format!("{what} must be a mapping, got {}", node.kind.describe()),
        );
    }
    ok
}

pub(super) type Field<'a> = (&'static str, Pos, &'a Node);

pub(super) fn lookup<'a>(fields: &[Field<'a>], key: &str) -> Option<&'a Node> {
    fields
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, _, v)| *v)
}

/// The allowed entries of a mapping, reporting unknown, duplicate and non-string keys.
pub(super) fn entries<'a>(
    node: &'a Node,
    allowed: &[&'static str],
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
                format!("keys must be strings, got {}", key.kind.describe()),
            );
            continue;
        };
        match allowed.iter().find(|a| **a == name) {
            None => d.push(
                key.pos,
                format!("unknown key {name:?} (allowed: {})", allowed.join(", ")),
            ),
            Some(known) if lookup(&out, known).is_some() => {
                d.push(key.pos, format!("duplicate key {name:?}"))
            }
            Some(known) => out.push((known, key.pos, value)),
        }
    }
    out
}

/// A string, or an integer / float written without quotes, as text.
pub(super) fn scalar_text(n: &Node) -> Option<String> {
    match &n.kind {
        NodeKind::Str(s) => Some(s.clone()),
        NodeKind::Int(i) => Some(i.to_string()),
        NodeKind::Float(f) if f.is_finite() => Some(f.to_string()),
        NodeKind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn string(n: &Node, what: &str, d: &mut Diags) -> Option<String> {
    match &n.kind {
        NodeKind::Str(s) => Some(s.clone()),
        other => {
            d.push(
                n.pos,
                format!("{what} must be a string, got {}", other.describe()),
            );
            None
        }
    }
}

pub(super) fn non_empty(n: &Node, what: &str, d: &mut Diags) -> Option<String> {
    let s = string(n, what, d)?;
    if s.trim().is_empty() {
        d.push(n.pos, format!("{what} must not be empty"));
        return None;
    }
    Some(s)
}

pub(super) fn number(n: &Node) -> Option<f64> {
    match n.kind {
        NodeKind::Int(i) => Some(i as f64),
        NodeKind::Float(f) if f.is_finite() => Some(f),
        _ => None,
    }
}

/// A list of strings (numbers are read as their text); a single string is a list of one.
pub(super) fn string_list(n: &Node, what: &str, d: &mut Diags) -> Vec<(String, Pos)> {
    let items: Vec<&Node> = match &n.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        NodeKind::Str(_) => vec![n],
        other => {
            d.push(
                n.pos,
                format!("{what} must be a list of strings, got {}", other.describe()),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in items {
        match scalar_text(item) {
            Some(s) => out.push((s, item.pos)),
            None => d.push(
                item.pos,
                format!(
                    "{what}: items must be strings, got {}",
                    item.kind.describe()
                ),
            ),
        }
    }
    out
}

pub(super) fn duration(n: &Node, what: &str, d: &mut Diags, zero_ok: bool) -> Option<Duration> {
    let text = match &n.kind {
        NodeKind::Str(s) => s.clone(),
        NodeKind::Int(i) => i.to_string(),
        other => {
            d.push(
                n.pos,
                format!(
                    "{what} must be a duration such as 1d or 12h, got {}",
                    other.describe()
                ),
            );
            return None;
        }
    };
    match humantime::parse_duration(&text) {
        Ok(v) if zero_ok || !v.is_zero() => Some(v),
        Ok(_) => {
            d.push(n.pos, format!("{what} must be longer than zero"));
            None
        }
        Err(e) => {
            d.push(
                n.pos,
                format!("{what}: {text:?} is not a duration such as 1d or 12h: {e}"),
            );
            None
        }
    }
}
