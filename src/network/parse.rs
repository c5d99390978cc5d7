//! Network files and topic record values -> checked entries.
//!
//! In: the text of `network/*.yaml` files (parsed into positioned nodes by
//! `crate::rules::yaml`), or one JSON record value (turned into the same nodes, without
//! positions). Out: a [`Network`], or every problem as a [`NetworkError`]
//! (`file:line:col: message`): syntax, unknown / duplicate / missing keys, wrong types, values
//! out of range, duplicate ids across files, and the cross-entry checks of
//! [`Network::check`] placed on the field at fault. Nothing stops at the first error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::{
    link_key, part_key, supplier_key, Alternate, Link, Network, Part, Supplier, MAX_TIER,
};
use crate::rules::yaml::{self, Node, NodeKind, Pos};
use crate::rules::Location;

/// One problem in the network files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
#[error("{location}: {message}")]
pub struct NetworkError {
    /// The file, line and column of the key or value at fault (line 0 when unknown).
    pub location: Location,
    /// Lowercase message, naming the entry (`supplier "SUP-T1-004": ...`).
    pub message: String,
}

/// Errors found in one entry: where and what.
type Diags = Vec<(Pos, String)>;

const TOP_FIELDS: &[&str] = &["suppliers", "links", "parts"];
const SUPPLIER_FIELDS: &[&str] = &["id", "name", "tier", "recovery_time", "country"];
const LINK_FIELDS: &[&str] = &["from", "to", "parts", "share"];
const PART_FIELDS: &[&str] = &["id", "supplier", "description", "unit_price", "alternates"];
const ALTERNATE_FIELDS: &[&str] = &["supplier", "qualified", "capacity_per_day", "lead_time"];

/// Positions of an entry's fields (`share`, `parts.2`, `alternates.1.supplier`), to place the
/// cross-entry problems found later.
#[derive(Debug, Default)]
struct Spots {
    file: usize,
    entry: Pos,
    fields: HashMap<String, Pos>,
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (sorted by name) into one checked network.
/// An id defined twice, in one file or across files, is an error.
pub fn load_dir(dir: &Path) -> Result<Network, Vec<NetworkError>> {
    let file_error = |path: &Path, message: String| NetworkError {
        location: Location {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
        },
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| vec![file_error(dir, format!("cannot read directory: {e}"))])?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((path, text)),
            Err(e) => errors.push(file_error(&path, format!("cannot read file: {e}"))),
        }
    }
    let refs: Vec<(&Path, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    match load_texts(&refs) {
        Ok(net) if errors.is_empty() => Ok(net),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            errors.sort();
            Err(errors)
        }
    }
}

/// Loads one file's text (`path` only names it in errors).
pub fn load_str(path: &Path, text: &str) -> Result<Network, Vec<NetworkError>> {
    load_texts(&[(path, text)])
}

/// Loads several files' texts as one network.
fn load_texts(files: &[(&Path, &str)]) -> Result<Network, Vec<NetworkError>> {
    let mut net = Network::default();
    let mut spots: HashMap<String, Spots> = HashMap::new();
    let mut errors: Vec<NetworkError> = Vec::new();
    for (index, (path, text)) in files.iter().enumerate() {
        let at = |pos: Pos, message: String| NetworkError {
            location: Location {
                file: path.to_path_buf(),
                line: pos.line,
                col: pos.col,
            },
            message,
        };
        let root = match yaml::parse(text) {
            Ok(Some(root)) => root,
            Ok(None) => continue,
            Err(e) => {
                let message = if e.message.starts_with("a rule file must") {
                    "a network file must hold a single yaml document".to_string()
                } else {
                    format!("yaml syntax: {}", e.message)
                };
                errors.push(at(e.pos, message));
                continue;
            }
        };
        let mut d: Diags = Vec::new();
        if !matches!(root.kind, NodeKind::Map(_)) {
            d.push((
                root.pos,
                format!(
                    "a network file must be a mapping with suppliers, links and parts, got {}",
                    root.kind.describe()
                ),
            ));
        }
        for (key, _, value) in fields(&root, TOP_FIELDS, "", &mut d) {
            for (i, item) in seq(value, key, "", &mut d).iter().enumerate() {
                let n = i + 1;
                let duplicate = match key {
                    "suppliers" => read_supplier(item, n, &mut d).and_then(|(s, ctx, sp)| {
                        let dup = net.suppliers.contains_key(&s.id);
                        let k = supplier_key(&s.id);
                        place(
                            &mut net,
                            &mut spots,
                            (k, ctx, sp, index),
                            dup,
                            Entry::Supplier(s),
                        )
                    }),
                    "links" => read_link(item, n, &mut d).and_then(|(l, ctx, sp)| {
                        let dup = net.links.contains_key(&l.key());
                        let k = link_key(&l.from, &l.to);
                        place(
                            &mut net,
                            &mut spots,
                            (k, ctx, sp, index),
                            dup,
                            Entry::Link(l),
                        )
                    }),
                    _ => read_part(item, n, &mut d).and_then(|(p, ctx, sp)| {
                        let dup = net.parts.contains_key(&p.id);
                        let k = part_key(&p.id);
                        place(
                            &mut net,
                            &mut spots,
                            (k, ctx, sp, index),
                            dup,
                            Entry::Part(p),
                        )
                    }),
                };
                if let Some((entry_key, ctx, pos)) = duplicate {
                    let first = spots.get(&entry_key).map(|s| {
                        let file = files.get(s.file).map(|f| f.0).unwrap_or(Path::new(""));
                        format!("{}:{}:{}", file.display(), s.entry.line, s.entry.col)
                    });
                    d.push((
                        pos,
                        format!(
                            "{ctx}: duplicate id (first defined at {})",
                            first.unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        errors.extend(d.into_iter().map(|(pos, m)| at(pos, m)));
    }
    for problem in net.check() {
        let (file, pos) = match spots.get(&problem.key) {
            Some(s) => (
                s.file,
                s.fields.get(&problem.field).copied().unwrap_or(s.entry),
            ),
            None => (0, Pos::default()),
        };
        let path = files.get(file).map(|f| f.0).unwrap_or(Path::new(""));
        errors.push(NetworkError {
            location: Location {
                file: path.to_path_buf(),
                line: pos.line,
                col: pos.col,
            },
            message: format!("{}: {}", context_of(&problem.key), problem.message),
        });
    }
    if errors.is_empty() {
        Ok(net)
    } else {
        errors.sort();
        Err(errors)
    }
}

/// A read entry, before it goes into the network.
enum Entry {
    Supplier(Supplier),
    Link(Link),
    Part(Part),
}

/// Puts a new entry into the network; for a duplicate id, keeps the first and returns
/// `(key, context, position)` of the second so the caller reports it.
fn place(
    net: &mut Network,
    spots: &mut HashMap<String, Spots>,
    (key, ctx, sp, file): (String, String, Spots, usize),
    duplicate: bool,
    entry: Entry,
) -> Option<(String, String, Pos)> {
    if duplicate {
        return Some((key, ctx, sp.entry));
    }
    match entry {
        Entry::Supplier(s) => net.upsert_supplier(s),
        Entry::Link(l) => net.upsert_link(l),
        Entry::Part(p) => net.upsert_part(p),
    }
    spots.insert(key, Spots { file, ..sp });
    None
}

/// `supplier "X"`, `link "A>B"`, `part "P"` from a record key.
fn context_of(key: &str) -> String {
    match key.split_once(':') {
        Some((kind, id)) => format!("{kind} {id:?}"),
        None => key.to_string(),
    }
}

/// One supplier entry from a record value (no positions): the entry or every problem.
pub(crate) fn supplier_entry(node: &Node) -> Result<Supplier, String> {
    let mut d = Vec::new();
    let out = read_supplier(node, 1, &mut d);
    finish(out.map(|(s, _, _)| s), d)
}

/// One link entry from a record value.
pub(crate) fn link_entry(node: &Node) -> Result<Link, String> {
    let mut d = Vec::new();
    let out = read_link(node, 1, &mut d);
    finish(out.map(|(l, _, _)| l), d)
}

/// One part entry from a record value.
pub(crate) fn part_entry(node: &Node) -> Result<Part, String> {
    let mut d = Vec::new();
    let out = read_part(node, 1, &mut d);
    finish(out.map(|(p, _, _)| p), d)
}

fn finish<T>(out: Option<T>, d: Diags) -> Result<T, String> {
    match out {
        Some(v) if d.is_empty() => Ok(v),
        _ if d.is_empty() => Err("not a valid entry".to_string()),
        _ => Err(d.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; ")),
    }
}

/// A JSON value as a node tree (every position 0:0).
pub(crate) fn node_from_json(v: &serde_json::Value) -> Node {
    use serde_json::Value;
    let kind = match v {
        Value::Null => NodeKind::Null,
        Value::Bool(b) => NodeKind::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => NodeKind::Int(i),
            None => NodeKind::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => NodeKind::Str(s.clone()),
        Value::Array(items) => NodeKind::Seq(items.iter().map(node_from_json).collect()),
        Value::Object(map) => NodeKind::Map(
            map.iter()
                .map(|(k, v)| {
                    (
                        Node {
                            kind: NodeKind::Str(k.clone()),
                            pos: Pos::default(),
                        },
                        node_from_json(v),
                    )
                })
                .collect(),
        ),
    };
    Node {
        kind,
        pos: Pos::default(),
    }
}

/// Reads one supplier; `None` when it is unusable (errors pushed).
fn read_supplier(node: &Node, n: usize, d: &mut Diags) -> Option<(Supplier, String, Spots)> {
    let ctx = context("supplier", first_str(node, "id"), n);
    if !is_map(node, &ctx, d) {
        return None;
    }
    let before = d.len();
    let mut sp = Spots {
        entry: node.pos,
        ..Spots::default()
    };
    let mut s = Supplier {
        id: String::new(),
        name: None,
        tier: 0,
        recovery_time: None,
        country: None,
    };
    let mut has = (false, false);
    for (key, key_pos, value) in fields(node, SUPPLIER_FIELDS, &ctx, d) {
        sp.fields.insert(key.to_string(), key_pos);
        match key {
            "id" => {
                if let Some(id) = id_str(value, key, &ctx, d) {
                    s.id = id;
                    has.0 = true;
                }
            }
            "name" => s.name = opt_str(value, key, &ctx, d),
            "country" => s.country = opt_str(value, key, &ctx, d),
            "tier" => match &value.kind {
                NodeKind::Int(t) if (1..=i64::from(MAX_TIER)).contains(t) => {
                    s.tier = *t as u8;
                    has.1 = true;
                }
                NodeKind::Int(t) => d.push((
                    value.pos,
                    format!("{ctx}: tier must be between 1 and {MAX_TIER}, got {t}"),
                )),
                other => d.push((
                    value.pos,
                    format!("{ctx}: tier must be an integer, got {}", other.describe()),
                )),
            },
            "recovery_time" => s.recovery_time = opt_duration(value, key, &ctx, d),
            _ => {}
        }
    }
    require(node, &ctx, &[("id", has.0), ("tier", has.1)], d);
    (d.len() == before).then_some((s, ctx, sp))
}

fn read_link(node: &Node, n: usize, d: &mut Diags) -> Option<(Link, String, Spots)> {
    let name = match (first_str(node, "from"), first_str(node, "to")) {
        (Some(f), Some(t)) => Some(format!("{f}>{t}")),
        _ => None,
    };
    let ctx = context("link", name.as_deref(), n);
    if !is_map(node, &ctx, d) {
        return None;
    }
    let before = d.len();
    let mut sp = Spots {
        entry: node.pos,
        ..Spots::default()
    };
    let mut l = Link {
        from: String::new(),
        to: String::new(),
        parts: Vec::new(),
        share: 1.0,
    };
    let mut has = (false, false);
    for (key, key_pos, value) in fields(node, LINK_FIELDS, &ctx, d) {
        sp.fields.insert(key.to_string(), key_pos);
        match key {
            "from" => {
                if let Some(v) = id_str(value, key, &ctx, d) {
                    l.from = v;
                    has.0 = true;
                }
            }
            "to" => {
                if let Some(v) = id_str(value, key, &ctx, d) {
                    l.to = v;
                    has.1 = true;
                }
            }
            "parts" => {
                for (i, item) in seq(value, key, &ctx, d).iter().enumerate() {
                    sp.fields.insert(format!("parts.{}", i + 1), item.pos);
                    if let Some(p) = id_str(item, "parts", &ctx, d) {
                        if l.parts.contains(&p) {
                            d.push((item.pos, format!("{ctx}: part {p} listed twice")));
                        }
                        l.parts.push(p);
                    }
                }
            }
            "share" => {
                if let Some(x) = number(value, key, &ctx, d) {
                    if x > 0.0 && x <= 1.0 {
                        l.share = x;
                    } else {
                        d.push((
                            value.pos,
                            format!("{ctx}: share must be in (0, 1], got {x}"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    require(node, &ctx, &[("from", has.0), ("to", has.1)], d);
    (d.len() == before).then_some((l, ctx, sp))
}

fn read_part(node: &Node, n: usize, d: &mut Diags) -> Option<(Part, String, Spots)> {
    let ctx = context("part", first_str(node, "id"), n);
    if !is_map(node, &ctx, d) {
        return None;
    }
    let before = d.len();
    let mut sp = Spots {
        entry: node.pos,
        ..Spots::default()
    };
    let mut p = Part {
        id: String::new(),
        supplier: String::new(),
        description: None,
        unit_price: None,
        alternates: Vec::new(),
    };
    let mut has = (false, false);
    for (key, key_pos, value) in fields(node, PART_FIELDS, &ctx, d) {
        sp.fields.insert(key.to_string(), key_pos);
        match key {
            "id" => {
                if let Some(v) = id_str(value, key, &ctx, d) {
                    p.id = v;
                    has.0 = true;
                }
            }
            "supplier" => {
                if let Some(v) = id_str(value, key, &ctx, d) {
                    p.supplier = v;
                    has.1 = true;
                }
            }
            "description" => p.description = opt_str(value, key, &ctx, d),
            "unit_price" if value.kind != NodeKind::Null => {
                p.unit_price = non_negative(value, key, &ctx, d);
            }
            "alternates" => {
                for (i, item) in seq(value, key, &ctx, d).iter().enumerate() {
                    let actx = format!("{ctx}, alternate {}", i + 1);
                    if let Some(a) = read_alternate(item, i + 1, &actx, &mut sp, d) {
                        p.alternates.push(a);
                    }
                }
            }
            _ => {}
        }
    }
    require(node, &ctx, &[("id", has.0), ("supplier", has.1)], d);
    (d.len() == before).then_some((p, ctx, sp))
}

fn read_alternate(
    node: &Node,
    n: usize,
    ctx: &str,
    sp: &mut Spots,
    d: &mut Diags,
) -> Option<Alternate> {
    if !is_map(node, ctx, d) {
        return None;
    }
    let before = d.len();
    let mut a = Alternate {
        supplier: String::new(),
        qualified: true,
        capacity_per_day: 0.0,
        lead_time: Duration::ZERO,
    };
    let mut has = (false, false, false);
    sp.fields.insert(format!("alternates.{n}"), node.pos);
    for (key, key_pos, value) in fields(node, ALTERNATE_FIELDS, ctx, d) {
        sp.fields.insert(format!("alternates.{n}.{key}"), key_pos);
        match key {
            "supplier" => {
                if let Some(v) = id_str(value, key, ctx, d) {
                    a.supplier = v;
                    has.0 = true;
                }
            }
            "qualified" => match value.kind {
                NodeKind::Bool(b) => a.qualified = b,
                ref other => d.push((
                    value.pos,
                    format!(
                        "{ctx}: qualified must be true or false, got {}",
                        other.describe()
                    ),
                )),
            },
            "capacity_per_day" => {
                if let Some(x) = non_negative(value, key, ctx, d) {
                    a.capacity_per_day = x;
                    has.1 = true;
                }
            }
            "lead_time" => {
                if let Some(t) = opt_duration(value, key, ctx, d) {
                    a.lead_time = t;
                    has.2 = true;
                } else if value.kind == NodeKind::Null {
                    d.push((
                        value.pos,
                        format!("{ctx}: lead_time must be a duration like 14d"),
                    ));
                }
            }
            _ => {}
        }
    }
    require(
        node,
        ctx,
        &[
            ("supplier", has.0),
            ("capacity_per_day", has.1),
            ("lead_time", has.2),
        ],
        d,
    );
    (d.len() == before).then_some(a)
}

/// `supplier "X"` or `supplier 3` when the id is missing.
fn context(kind: &str, id: Option<&str>, n: usize) -> String {
    match id {
        Some(id) => format!("{kind} {id:?}"),
        None => format!("{kind} {n}"),
    }
}

fn is_map(node: &Node, ctx: &str, d: &mut Diags) -> bool {
    let ok = matches!(node.kind, NodeKind::Map(_));
    if !ok {
        d.push((
            node.pos,
            format!("{ctx}: must be a mapping, got {}", node.kind.describe()),
        ));
    }
    ok
}

fn require(node: &Node, ctx: &str, fields: &[(&str, bool)], d: &mut Diags) {
    for (name, present) in fields {
        if !present && !has_key(node, name) {
            d.push((node.pos, format!("{ctx}: missing field {name}")));
        }
    }
}

fn has_key(node: &Node, key: &str) -> bool {
    match &node.kind {
        NodeKind::Map(pairs) => pairs
            .iter()
            .any(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == key)),
        _ => false,
    }
}

fn first_str<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    let NodeKind::Map(pairs) = &node.kind else {
        return None;
    };
    pairs.iter().find_map(|(k, v)| match (&k.kind, &v.kind) {
        (NodeKind::Str(k), NodeKind::Str(v)) if k == key => Some(v.as_str()),
        _ => None,
    })
}

/// The allowed entries of a mapping (first of each key); unknown, duplicate and non-string
/// keys are reported.
fn fields<'a>(
    node: &'a Node,
    allowed: &[&'static str],
    ctx: &str,
    d: &mut Diags,
) -> Vec<(&'static str, Pos, &'a Node)> {
    let mut out: Vec<(&'static str, Pos, &'a Node)> = Vec::new();
    let NodeKind::Map(pairs) = &node.kind else {
        return out;
    };
    let prefix = if ctx.is_empty() {
        String::new()
    } else {
        format!("{ctx}: ")
    };
    for (key, value) in pairs {
        let NodeKind::Str(name) = &key.kind else {
            d.push((
                key.pos,
                format!(
                    "{prefix}field names must be strings, got {}",
                    key.kind.describe()
                ),
            ));
            continue;
        };
        match allowed.iter().find(|a| **a == name) {
            None => d.push((
                key.pos,
                format!(
                    "{prefix}unknown field {name:?} (allowed: {})",
                    allowed.join(", ")
                ),
            )),
            Some(known) if out.iter().any(|(k, _, _)| k == known) => {
                d.push((key.pos, format!("{prefix}duplicate field {name:?}")))
            }
            Some(known) => out.push((known, key.pos, value)),
        }
    }
    out
}

/// The items of a sequence (null = none).
fn seq<'a>(node: &'a Node, field: &str, ctx: &str, d: &mut Diags) -> &'a [Node] {
    match &node.kind {
        NodeKind::Seq(items) => items,
        NodeKind::Null => &[],
        other => {
            let prefix = if ctx.is_empty() {
                String::new()
            } else {
                format!("{ctx}: ")
            };
            d.push((
                node.pos,
                format!(
                    "{prefix}{field} must be a sequence, got {}",
                    other.describe()
                ),
            ));
            &[]
        }
    }
}

/// A non-empty id string without surrounding spaces.
fn id_str(node: &Node, field: &str, ctx: &str, d: &mut Diags) -> Option<String> {
    match &node.kind {
        NodeKind::Str(s) if !s.trim().is_empty() && s.trim() == s => Some(s.clone()),
        NodeKind::Str(s) if s.trim().is_empty() => {
            d.push((node.pos, format!("{ctx}: {field} must not be empty")));
            None
        }
        NodeKind::Str(s) => {
            d.push((
                node.pos,
                format!("{ctx}: {field} {s:?} has leading or trailing spaces"),
            ));
            None
        }
        other => {
            d.push((
                node.pos,
                format!("{ctx}: {field} must be a string, got {}", other.describe()),
            ));
            None
        }
    }
}

fn opt_str(node: &Node, field: &str, ctx: &str, d: &mut Diags) -> Option<String> {
    match &node.kind {
        NodeKind::Null => None,
        NodeKind::Str(s) => Some(s.clone()),
        other => {
            d.push((
                node.pos,
                format!("{ctx}: {field} must be a string, got {}", other.describe()),
            ));
            None
        }
    }
}

fn number(node: &Node, field: &str, ctx: &str, d: &mut Diags) -> Option<f64> {
    let x = match node.kind {
        NodeKind::Int(i) => i as f64,
        NodeKind::Float(f) => f,
        ref other => {
            d.push((
                node.pos,
                format!("{ctx}: {field} must be a number, got {}", other.describe()),
            ));
            return None;
        }
    };
    if !x.is_finite() {
        d.push((node.pos, format!("{ctx}: {field} must be finite, got {x}")));
        return None;
    }
    Some(x)
}

fn non_negative(node: &Node, field: &str, ctx: &str, d: &mut Diags) -> Option<f64> {
    let x = number(node, field, ctx, d)?;
    if x < 0.0 {
        d.push((node.pos, format!("{ctx}: {field} must be >= 0, got {x}")));
        return None;
    }
    Some(x)
}

/// A humantime duration string (`14d`, `36h`); null = absent.
fn opt_duration(node: &Node, field: &str, ctx: &str, d: &mut Diags) -> Option<Duration> {
    match &node.kind {
        NodeKind::Null => None,
        NodeKind::Str(s) => match humantime::parse_duration(s) {
            Ok(t) => Some(t),
            Err(e) => {
                d.push((
                    node.pos,
                    format!("{ctx}: {field} {s:?} is not a duration like 14d: {e}"),
                ));
                None
            }
        },
        other => {
            d.push((
                node.pos,
                format!(
                    "{ctx}: {field} must be a duration like 14d, got {}",
                    other.describe()
                ),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
suppliers:
  - id: SUP-T1-004
    name: Shenzhen Harness Ltd.
    tier: 1
    recovery_time: 21d
    country: CN
  - id: SUP-T1-011
    tier: 1
  - id: SUP-T2-003
    tier: 2
    recovery_time: 35d
links:
  - from: SUP-T2-003
    to: SUP-T1-004
    parts: [P-1007]
    share: 0.6
parts:
  - id: P-1007
    supplier: SUP-T1-004
    description: wire harness
    unit_price: 12.5
    alternates:
      - supplier: SUP-T1-011
        capacity_per_day: 400
        lead_time: 14d
";

    fn errors(text: &str) -> Vec<String> {
        load_str(Path::new("n.yaml"), text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_contract_example_loads() {
        let net = load_str(Path::new("n.yaml"), GOOD).unwrap();
        assert_eq!(net.suppliers.len(), 3);
        let s = net.supplier("SUP-T1-004").unwrap();
        assert_eq!(s.recovery_days(), Some(21.0));
        assert_eq!(s.country.as_deref(), Some("CN"));
        let p = net.part("P-1007").unwrap();
        assert_eq!(p.unit_price, Some(12.5));
        assert!(p.alternates[0].qualified);
        assert_eq!(p.alternates[0].lead_time_days(), 14.0);
        assert_eq!(net.links.values().next().unwrap().share, 0.6);
    }

    #[test]
    fn structural_errors_are_all_reported_with_positions() {
        let text = "\
suppliers:
  - id: A
    tier: 12
    colour: red
  - tier: 1
  - id: B
    tier: 1
    recovery_time: soon
links:
  - from: B
    to: A
    share: 1.5
parts:
  - id: P
    supplier: B
    unit_price: -1
    alternates:
      - supplier: A
        qualified: maybe
        capacity_per_day: -4
bogus: 1
";
        assert_eq!(
            errors(text),
            [
                "n.yaml:3:11: supplier \"A\": tier must be between 1 and 9, got 12",
                "n.yaml:4:5: supplier \"A\": unknown field \"colour\" (allowed: id, name, tier, recovery_time, country)",
                "n.yaml:5:5: supplier 2: missing field id",
                "n.yaml:8:20: supplier \"B\": recovery_time \"soon\" is not a duration like 14d: expected number at 0",
                "n.yaml:12:12: link \"B>A\": share must be in (0, 1], got 1.5",
                "n.yaml:16:17: part \"P\": unit_price must be >= 0, got -1",
                "n.yaml:18:9: part \"P\", alternate 1: missing field lead_time",
                "n.yaml:19:20: part \"P\", alternate 1: qualified must be true or false, got a string",
                "n.yaml:20:27: part \"P\", alternate 1: capacity_per_day must be >= 0, got -4",
                "n.yaml:21:1: unknown field \"bogus\" (allowed: suppliers, links, parts)",
            ]
        );
    }

    #[test]
    fn cross_entry_errors_point_at_the_field() {
        let text = "\
suppliers:
  - { id: A, tier: 1 }
  - { id: X, tier: 2 }
  - { id: Y, tier: 2 }
  - { id: A, tier: 1 }
links:
  - { from: A, to: X }
  - { from: X, to: A, share: 0.7 }
  - { from: Y, to: A, share: 0.5 }
  - { from: Y, to: GHOST, parts: [P, NOPE] }
parts:
  - id: P
    supplier: X
    alternates:
      - { supplier: A, capacity_per_day: 1, lead_time: 1d }
";
        assert_eq!(
            errors(text),
            [
                "n.yaml:5:5: supplier \"A\": duplicate id (first defined at n.yaml:2:5)",
                "n.yaml:7:7: link \"A>X\": a link goes from a higher tier to a lower one: A is tier 1, X is tier 2",
                "n.yaml:9:23: link \"Y>A\": shares of the links into A for all parts sum to 1.2 (more than 1): X 0.7, Y 0.5",
                "n.yaml:10:16: link \"Y>GHOST\": unknown supplier \"GHOST\"",
                "n.yaml:10:38: link \"Y>GHOST\": unknown part \"NOPE\"",
                "n.yaml:13:5: part \"P\": parts are bought from tier-1 suppliers; X is tier 2",
            ]
        );
    }

    #[test]
    fn syntax_errors_and_odd_documents() {
        assert_eq!(
            errors("suppliers: [1, 2\n"),
            ["n.yaml:1:12: yaml syntax: unclosed bracket '['"]
        );
        assert_eq!(
            errors("- 1\n"),
            ["n.yaml:1:1: a network file must be a mapping with suppliers, links and parts, got a sequence"]
        );
        assert!(load_str(Path::new("n.yaml"), "# nothing yet\n")
            .unwrap()
            .parts
            .is_empty());
    }

    #[test]
    fn load_dir_reads_yaml_files_in_order_and_reports_duplicates_across_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "suppliers:\n  - { id: A, tier: 1 }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            "parts:\n  - { id: P, supplier: A }\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        let net = load_dir(dir.path()).unwrap();
        assert_eq!(net.part("P").unwrap().supplier, "A");
        std::fs::write(
            dir.path().join("c.yaml"),
            "suppliers:\n  - { id: A, tier: 1 }\n",
        )
        .unwrap();
        let errs = load_dir(dir.path()).unwrap_err();
        let a = dir.path().join("a.yaml");
        let c = dir.path().join("c.yaml");
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [format!(
                "{}:2:5: supplier \"A\": duplicate id (first defined at {}:2:5)",
                c.display(),
                a.display()
            )]
        );
        let missing = load_dir(&dir.path().join("nope")).unwrap_err();
        assert!(missing[0].to_string().contains("cannot read directory"));
    }
}
