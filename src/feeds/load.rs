//! Feed definition text -> checked [`Feed`], every problem collected with its position.
//!
//! In: the bytes of one `feeds/*.yaml` file. Out: the [`Feed`], or every [`FeedError`] found
//! (unknown keys, wrong types, unknown kinds and canonical fields, unmapped required fields,
//! strftime formats chrono cannot use, zones, units, code tables, regexes, templates). A part
//! that is wrong is left out and the walk goes on, so one pass reports all of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::format::{Item, Numeric, StrftimeItems};
use chrono::{FixedOffset, NaiveDate, TimeZone};
use regex::Regex;
use serde_json::Value;

use super::codes::{self, Builtin};
use super::def::*;
use super::map;
use super::FeedError;
use crate::events::{EventKind, COMMON};
use crate::rules::yaml::{self, Node, NodeKind};
use crate::rules::{Location, Pos};

/// Keys of a definition file.
const TOP: &[&str] = &[
    "feed",
    "supplier",
    "topic",
    "expect_every",
    "timezone",
    "sentinels",
    "format",
    "codes",
    "mappings",
];
const SUPPLIER: &[&str] = &["id", "name", "tier", "recovery_time", "supplies"];
const SUPPLY: &[&str] = &["to", "parts", "share"];
const CSV_KEYS: &[&str] = &[
    "type",
    "delimiter",
    "quote",
    "header",
    "columns",
    "encoding",
];
const JSON_KEYS: &[&str] = &["type", "records"];
const MAPPING: &[&str] = &["kind", "when", "fields"];
const WHEN: &[&str] = &["field", "codes", "in", "not_in", "present"];
const SPEC: &[&str] = &[
    "field",
    "const",
    "template",
    "type",
    "formats",
    "timezone",
    "offset_field",
    "decimal",
    "unit",
    "scale",
    "codes",
    "extract",
    "default",
    "required",
    "separator",
];
/// Options that read a source value; a `const` takes none of them.
const READING: &[&str] = &[
    "formats",
    "timezone",
    "offset_field",
    "decimal",
    "unit",
    "scale",
    "codes",
    "extract",
    "default",
    "separator",
];

/// Errors of one file.
struct Diags<'a> {
    file: &'a Path,
    feed: Option<String>,
    errors: Vec<FeedError>,
}

impl Diags<'_> {
    fn push(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(FeedError {
            location: Location {
                file: self.file.to_path_buf(),
                line: pos.line,
                col: pos.col,
            },
            feed: self.feed.clone(),
            message: message.into(),
        });
    }
}

/// Loads one definition from its bytes; `path` names it in errors.
pub(crate) fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Feed, Vec<FeedError>> {
    let mut d = Diags {
        file: path,
        feed: None,
        errors: Vec::new(),
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        d.push(Pos { line: 1, col: 1 }, "a feed definition must be UTF-8");
        return Err(d.errors);
    };
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            d.push(Pos { line: 1, col: 1 }, "empty feed definition");
            return Err(d.errors);
        }
        Err(e) => {
            let message = e.message.replace("a rule file", "a feed definition");
            d.push(e.pos, format!("yaml: {message}"));
            return Err(d.errors);
        }
    };
    if !matches!(root.kind, NodeKind::Map(_)) {
        d.push(
            root.pos,
            format!(
                "a feed definition must be a mapping, got {}",
                root.kind.describe()
            ),
        );
        return Err(d.errors);
    }
    if let Some(NodeKind::Str(name)) = get(&root, "feed").map(|n| &n.kind) {
        d.feed = Some(name.clone());
    }
    let feed = read_feed(path, &root, &mut d, super::fnv1a(&[bytes]));
    match feed {
        Some(feed) if d.errors.is_empty() => Ok(feed),
        _ => {
            d.errors.sort_by(|a, b| a.location.cmp(&b.location));
            Err(d.errors)
        }
    }
}

fn read_feed(path: &Path, root: &Node, d: &mut Diags, hash: u64) -> Option<Feed> {
    let fields = entries(root, TOP, d);
    for key in ["feed", "supplier", "topic", "format", "mappings"] {
        if lookup(&fields, key).is_none() {
            d.push(root.pos, format!("missing field {key}"));
        }
    }
    let name = lookup(&fields, "feed").and_then(|n| {
        let s = string(n, "feed", d)?;
        if !valid_name(&s) {
            d.push(
                n.pos,
                format!("feed name {s:?} must match [a-z0-9][a-z0-9._-]*"),
            );
            return None;
        }
        Some((s, n.pos))
    });
    let supplier = lookup(&fields, "supplier").and_then(|n| read_supplier(n, d));
    let topic = lookup(&fields, "topic").and_then(|n| {
        let s = string(n, "topic", d)?;
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if s.is_empty() || s.len() > 249 || !s.chars().all(legal) {
            d.push(
                n.pos,
                format!("topic {s:?} is not a legal Kafka topic name ([a-zA-Z0-9._-], 1 to 249 characters)"),
            );
            return None;
        }
        Some((s, n.pos))
    });
    let expect_every = match lookup(&fields, "expect_every") {
        Some(n) => duration(n, "expect_every", d, false),
        None => Some(Duration::from_secs(86_400)),
    };
    let timezone = match lookup(&fields, "timezone") {
        Some(n) => zone(n, "timezone", d),
        None => Some(Zone::utc()),
    };
    let sentinels = lookup(&fields, "sentinels")
        .map(|n| {
            string_list(n, "sentinels", d)
                .into_iter()
                .map(|(s, _)| s.trim().to_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let format = lookup(&fields, "format").and_then(|n| read_format(n, d));
    let tables = lookup(&fields, "codes")
        .map(|n| read_tables(n, d))
        .unwrap_or_default();
    let is_json = matches!(format, Some(Format::Json(_)));
    let columns: Option<Vec<String>> = match &format {
        Some(Format::Csv(c)) if !c.header => Some(c.columns.clone()),
        _ => None,
    };
    let ctx = Ctx {
        is_json,
        columns: columns.as_deref(),
        tables: &tables,
    };
    let mappings = lookup(&fields, "mappings").and_then(|n| read_mappings(n, &ctx, d));

    let ((name, name_pos), supplier, (topic, topic_pos)) = (name?, supplier?, topic?);
    Some(Feed {
        name,
        path: path.to_path_buf(),
        supplier,
        topic,
        expect_every: expect_every?,
        timezone: timezone?,
        sentinels,
        format: format?,
        mappings: mappings?,
        hash,
        name_pos,
        topic_pos,
    })
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn read_supplier(node: &Node, d: &mut Diags) -> Option<Supplier> {
    if !is_map(node, "supplier", d) {
        return None;
    }
    let fields = entries(node, SUPPLIER, d);
    for key in ["id", "tier"] {
        if lookup(&fields, key).is_none() {
            d.push(node.pos, format!("missing field supplier.{key}"));
        }
    }
    let id = lookup(&fields, "id").and_then(|n| non_empty(n, "supplier.id", d));
    let name = lookup(&fields, "name").and_then(|n| string(n, "supplier.name", d));
    let tier = lookup(&fields, "tier").and_then(|n| match n.kind {
        NodeKind::Int(t @ 1..=9) => Some(t as u8),
        _ => {
            d.push(n.pos, "supplier.tier must be an integer from 1 to 9");
            None
        }
    });
    let recovery_time = match lookup(&fields, "recovery_time") {
        Some(n) => Some(duration(n, "supplier.recovery_time", d, true)?),
        None => None,
    };
    let mut supplies = Vec::new();
    if let Some(n) = lookup(&fields, "supplies") {
        match &n.kind {
            NodeKind::Seq(items) => {
                for item in items {
                    if let Some(s) = read_supply(item, d) {
                        supplies.push(s);
                    }
                }
            }
            other => d.push(
                n.pos,
                format!(
                    "supplier.supplies must be a sequence, got {}",
                    other.describe()
                ),
            ),
        }
    }
    Some(Supplier {
        id: id?,
        name,
        tier: tier?,
        recovery_time,
        supplies,
    })
}

fn read_supply(node: &Node, d: &mut Diags) -> Option<Supply> {
    if !is_map(node, "supplier.supplies entry", d) {
        return None;
    }
    let fields = entries(node, SUPPLY, d);
    for key in ["to", "parts"] {
        if lookup(&fields, key).is_none() {
            d.push(node.pos, format!("missing field supplies.{key}"));
        }
    }
    let to = lookup(&fields, "to").and_then(|n| non_empty(n, "supplies.to", d));
    let parts: Vec<String> = lookup(&fields, "parts")
        .map(|n| {
            let parts = string_list(n, "supplies.parts", d);
            if parts.is_empty() {
                d.push(n.pos, "supplies.parts must name at least one part");
            }
            parts.into_iter().map(|(s, _)| s).collect()
        })
        .unwrap_or_default();
    let share = match lookup(&fields, "share") {
        Some(n) => match number(n) {
            Some(s) if s > 0.0 && s <= 1.0 => Some(s),
            _ => {
                d.push(n.pos, "supplies.share must be a number in (0, 1]");
                return None;
            }
        },
        None => None,
    };
    Some(Supply {
        to: to?,
        parts,
        share,
    })
}

fn read_format(node: &Node, d: &mut Diags) -> Option<Format> {
    if !is_map(node, "format", d) {
        return None;
    }
    let ty = get(node, "type");
    let kind = match ty.map(|n| &n.kind) {
        Some(NodeKind::Str(s)) if s == "csv" || s == "json" => s.as_str(),
        Some(_) => {
            let n = ty?;
            d.push(n.pos, "format.type must be csv or json");
            // Still report unknown keys against the union of both formats.
            let mut all: Vec<&'static str> = CSV_KEYS.to_vec();
            all.extend_from_slice(&JSON_KEYS[1..]);
            entries(node, &all, d);
            return None;
        }
        None => {
            d.push(node.pos, "missing field format.type (csv or json)");
            return None;
        }
    };
    if kind == "json" {
        let fields = entries(node, JSON_KEYS, d);
        let records = match lookup(&fields, "records") {
            Some(n) => Some(field_path(n, true, None, "format.records", d)?),
            None => None,
        };
        return Some(Format::Json(JsonFormat { records }));
    }
    let fields = entries(node, CSV_KEYS, d);
    let byte = |key: &str, default: u8, d: &mut Diags| -> Option<u8> {
        let Some(n) = lookup(&fields, key) else {
            return Some(default);
        };
        match &n.kind {
            NodeKind::Str(s) if s.len() == 1 && s.is_ascii() && s != "\n" && s != "\r" => {
                Some(s.as_bytes()[0])
            }
            _ => {
                d.push(n.pos, format!("format.{key} must be one ASCII character"));
                None
            }
        }
    };
    let delimiter = byte("delimiter", b',', d);
    let quote = byte("quote", b'"', d);
    if let (Some(a), Some(b)) = (delimiter, quote) {
        if a == b {
            d.push(node.pos, "format.delimiter and format.quote must differ");
        }
    }
    let header = match lookup(&fields, "header") {
        Some(n) => match n.kind {
            NodeKind::Bool(b) => Some(b),
            _ => {
                d.push(n.pos, "format.header must be true or false");
                None
            }
        },
        None => Some(true),
    };
    let columns = match lookup(&fields, "columns") {
        Some(n) => {
            let cols = string_list(n, "format.columns", d);
            let mut seen: Vec<&str> = Vec::new();
            for (c, pos) in &cols {
                if seen.contains(&c.as_str()) {
                    d.push(*pos, format!("duplicate column {c:?}"));
                }
                seen.push(c);
            }
            if header == Some(true) {
                d.push(
                    n.pos,
                    "format.columns is only used with header: false (the header row names the columns)",
                );
            }
            cols.into_iter().map(|(c, _)| c).collect()
        }
        None => {
            if header == Some(false) {
                d.push(node.pos, "format.columns is required when header: false");
            }
            Vec::new()
        }
    };
    let encoding = match lookup(&fields, "encoding") {
        Some(n) => {
            let label = string(n, "format.encoding", d)?;
            match encoding_rs::Encoding::for_label_no_replacement(label.as_bytes()) {
                Some(e) => Some(e),
                None => {
                    d.push(
                        n.pos,
                        format!("unknown encoding {label:?} (a WHATWG label such as utf-8, windows-1252, iso-8859-1, shift_jis, gbk, utf-16le)"),
                    );
                    None
                }
            }
        }
        None => Some(encoding_rs::UTF_8),
    };
    Some(Format::Csv(CsvFormat {
        delimiter: delimiter?,
        quote: quote?,
        header: header?,
        columns,
        encoding: encoding?,
    }))
}

/// The feed's `codes:` tables.
fn read_tables(node: &Node, d: &mut Diags) -> BTreeMap<String, CodeTable> {
    let mut out = BTreeMap::new();
    let NodeKind::Map(pairs) = &node.kind else {
        d.push(
            node.pos,
            format!(
                "codes must be a mapping of table names to tables, got {}",
                node.kind.describe()
            ),
        );
        return out;
    };
    for (k, v) in pairs {
        let Some(name) = scalar_text(k) else {
            d.push(k.pos, "code table names must be strings");
            continue;
        };
        if Builtin::parse(&name).is_some() {
            d.push(
                k.pos,
                format!("code table {name:?} would hide the built-in table of that name"),
            );
            continue;
        }
        if out.contains_key(&name) {
            d.push(k.pos, format!("duplicate code table {name:?}"));
            continue;
        }
        if let Some(map) = read_table(v, &format!("code table {name:?}"), d) {
            out.insert(name.clone(), CodeTable::Own { name, map });
        }
    }
    out
}

fn read_table(node: &Node, what: &str, d: &mut Diags) -> Option<BTreeMap<String, String>> {
    let NodeKind::Map(pairs) = &node.kind else {
        d.push(
            node.pos,
            format!(
                "{what} must be a mapping of their codes to canonical values, got {}",
                node.kind.describe()
            ),
        );
        return None;
    };
    let mut map = BTreeMap::new();
    let mut ok = true;
    for (k, v) in pairs {
        let (Some(code), Some(value)) = (scalar_text(k), scalar_text(v)) else {
            d.push(
                k.pos,
                format!("{what}: codes and values must be strings or numbers"),
            );
            ok = false;
            continue;
        };
        if map.insert(code.clone(), value).is_some() {
            d.push(k.pos, format!("{what}: duplicate code {code:?}"));
            ok = false;
        }
    }
    ok.then_some(map)
}

/// What value specs need to know about the rest of the file.
struct Ctx<'a> {
    is_json: bool,
    /// The column names when the CSV has no header row (field names are checked against them).
    columns: Option<&'a [String]>,
    tables: &'a BTreeMap<String, CodeTable>,
}

fn read_mappings(node: &Node, ctx: &Ctx, d: &mut Diags) -> Option<Vec<Mapping>> {
    let NodeKind::Seq(items) = &node.kind else {
        d.push(
            node.pos,
            format!("mappings must be a sequence, got {}", node.kind.describe()),
        );
        return None;
    };
    if items.is_empty() {
        d.push(node.pos, "mappings must hold at least one mapping");
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match read_mapping(item, i + 1, ctx, d) {
            Some(m) => out.push(m),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_mapping(node: &Node, index: usize, ctx: &Ctx, d: &mut Diags) -> Option<Mapping> {
    let what = format!("mapping {index}");
    if !is_map(node, &what, d) {
        return None;
    }
    let before = d.errors.len();
    let fields = entries(node, MAPPING, d);
    for key in ["kind", "fields"] {
        if lookup(&fields, key).is_none() {
            d.push(node.pos, format!("{what}: missing field {key}"));
        }
    }
    let kind = lookup(&fields, "kind").and_then(|n| {
        let s = string(n, "kind", d)?;
        match s.parse::<EventKind>() {
            Ok(k) => Some(k),
            Err(()) => {
                let all: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                d.push(
                    n.pos,
                    format!("{what}: unknown kind {s:?} (kinds: {})", all.join(", ")),
                );
                None
            }
        }
    });
    let what = match kind {
        Some(k) => format!("mapping {index} ({k})"),
        None => what,
    };
    let when = lookup(&fields, "when").and_then(|n| read_when(n, &what, ctx, d));
    let mut specs: Vec<(&'static str, ValueSpec)> = Vec::new();
    // Errors about the whole `fields` mapping point at its key.
    let fields_pos = fields
        .iter()
        .find(|(k, _, _)| *k == "fields")
        .map_or(node.pos, |f| f.1);
    if let (Some(kind), Some(fnode)) = (kind, lookup(&fields, "fields")) {
        let NodeKind::Map(pairs) = &fnode.kind else {
            d.push(
                fnode.pos,
                format!(
                    "{what}: fields must be a mapping, got {}",
                    fnode.kind.describe()
                ),
            );
            return None;
        };
        let known: Vec<&'static str> = COMMON
            .iter()
            .filter(|f| !matches!(**f, "kind" | "source"))
            .chain(kind.required())
            .chain(kind.optional())
            .copied()
            .collect();
        for (k, v) in pairs {
            let Some(name) = scalar_text(k) else {
                d.push(k.pos, format!("{what}: field names must be strings"));
                continue;
            };
            if name == "kind" || name == "source" {
                d.push(
                    k.pos,
                    format!("{what}: {name} cannot be mapped: kind comes from the mapping's kind, source is the feed's name"),
                );
                continue;
            }
            let Some(canon) = known.iter().find(|f| **f == name) else {
                d.push(
                    k.pos,
                    format!(
                        "{what}: {name:?} is not a field of {kind} (fields: {})",
                        known.join(", ")
                    ),
                );
                continue;
            };
            if specs.iter().any(|(f, _)| f == canon) {
                d.push(k.pos, format!("{what}: duplicate field {name:?}"));
                continue;
            }
            if let Some(spec) = read_spec(v, kind, canon, &what, ctx, d) {
                specs.push((canon, spec));
            }
        }
        let must: Vec<&str> = std::iter::once("event_time")
            .chain(kind.required().iter().copied())
            .collect();
        for f in must {
            if !pairs
                .iter()
                .any(|(k, _)| scalar_text(k).as_deref() == Some(f))
            {
                d.push(
                    fields_pos,
                    format!("{what}: missing field {f} (required by {kind})"),
                );
            }
        }
        // Output in the kind's order, so events read the same whatever the file's order.
        specs.sort_by_key(|(f, _)| known.iter().position(|k| k == f));
    }
    if d.errors.len() > before {
        return None;
    }
    Some(Mapping {
        index,
        kind: kind?,
        when,
        fields: specs,
    })
}

fn read_when(node: &Node, what: &str, ctx: &Ctx, d: &mut Diags) -> Option<When> {
    if !is_map(node, &format!("{what}: when"), d) {
        return None;
    }
    let fields = entries(node, WHEN, d);
    let field = match lookup(&fields, "field") {
        Some(n) => field_list(n, ctx, &format!("{what}: when.field"), d)?,
        None => {
            d.push(node.pos, format!("{what}: when needs field"));
            return None;
        }
    };
    let codes = match lookup(&fields, "codes") {
        Some(n) => Some(code_table(n, &format!("{what}: when"), ctx, d)?),
        None => None,
    };
    let tests: Vec<_> = ["in", "not_in", "present"]
        .into_iter()
        .filter_map(|k| lookup(&fields, k).map(|n| (k, n)))
        .collect();
    if tests.len() != 1 {
        d.push(
            node.pos,
            format!("{what}: when needs exactly one of in, not_in, present"),
        );
        return None;
    }
    let (key, n) = tests[0];
    let test = match key {
        "present" => match n.kind {
            NodeKind::Bool(b) => WhenTest::Present(b),
            _ => {
                d.push(n.pos, format!("{what}: when.present must be true or false"));
                return None;
            }
        },
        _ => {
            let values: Vec<String> = string_list(n, &format!("when.{key}"), d)
                .into_iter()
                .map(|(s, _)| s.trim().to_string())
                .collect();
            if key == "in" {
                WhenTest::In(values)
            } else {
                WhenTest::NotIn(values)
            }
        }
    };
    Some(When { field, codes, test })
}

/// The canonical type of a field: a spec's `type` must produce it.
fn canonical_type(field: &str) -> ValueType {
    match field {
        "line" => ValueType::Integer,
        "quantity" | "unit_price" | "on_hand" | "daily_demand" => ValueType::Number,
        "order_date" | "promised_date" => ValueType::Date,
        "event_time" | "received_at" | "shipped_at" | "eta" => ValueType::Timestamp,
        "po_lines" => ValueType::PoLineRefs,
        _ => ValueType::String,
    }
}

/// The canonical fields that must not be negative.
pub(crate) fn non_negative(field: &str) -> bool {
    matches!(
        field,
        "quantity" | "unit_price" | "on_hand" | "daily_demand"
    )
}

/// The allowed values of `field` in `kind`, if it has a fixed set.
pub(crate) fn allowed(kind: EventKind, field: &str) -> Option<&'static [&'static str]> {
    kind.allowed_values()
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, v)| *v)
}

fn read_spec(
    node: &Node,
    kind: EventKind,
    field: &'static str,
    mapping: &str,
    ctx: &Ctx,
    d: &mut Diags,
) -> Option<ValueSpec> {
    let what = format!("{mapping}: {field}");
    if !is_map(node, &what, d) {
        return None;
    }
    let before = d.errors.len();
    let fields = entries(node, SPEC, d);
    let canon = canonical_type(field);
    let ty = match lookup(&fields, "type") {
        Some(n) => {
            let s = string(n, &format!("{what}: type"), d)?;
            let Some(t) = ValueType::parse(&s) else {
                d.push(n.pos, format!("{what}: unknown type {s:?} (string, integer, number, date, timestamp, po_line_refs)"));
                return None;
            };
            let fits = t == canon || (canon == ValueType::Number && t == ValueType::Integer);
            if !fits {
                d.push(
                    n.pos,
                    format!(
                        "{what}: type {s} does not fit the field, which is {} {}",
                        if canon == ValueType::Integer {
                            "an"
                        } else {
                            "a"
                        },
                        canon.as_str()
                    ),
                );
                return None;
            }
            t
        }
        None => canon,
    };
    let sources: Vec<_> = ["field", "const", "template"]
        .into_iter()
        .filter_map(|k| lookup(&fields, k).map(|n| (k, n)))
        .collect();
    if sources.len() != 1 {
        d.push(
            node.pos,
            format!("{what}: needs exactly one of field, const, template"),
        );
        return None;
    }
    let only_for = |key: &str, ok: bool, needs: &str, d: &mut Diags| {
        if let (Some(n), false) = (lookup(&fields, key), ok) {
            d.push(n.pos, format!("{what}: {key} is only for {needs}"));
        }
    };
    let is_time = matches!(ty, ValueType::Date | ValueType::Timestamp);
    only_for("formats", is_time, "type date or timestamp", d);
    only_for("timezone", ty == ValueType::Timestamp, "type timestamp", d);
    only_for(
        "offset_field",
        ty == ValueType::Timestamp,
        "type timestamp",
        d,
    );
    let numeric = matches!(ty, ValueType::Number | ValueType::Integer);
    only_for("decimal", numeric, "type number or integer", d);
    only_for("unit", ty == ValueType::Number, "type number", d);
    only_for("scale", ty == ValueType::Number, "type number", d);
    only_for(
        "separator",
        ty == ValueType::PoLineRefs,
        "type po_line_refs",
        d,
    );

    let (src_key, src_node) = sources[0];
    if src_key == "const" {
        for key in READING {
            if let Some(n) = lookup(&fields, key) {
                d.push(n.pos, format!("{what}: {key} cannot be used with const"));
            }
        }
    }
    let formats: Vec<String> = match lookup(&fields, "formats") {
        Some(n) => {
            let list = string_list(n, &format!("{what}: formats"), d);
            if list.is_empty() {
                d.push(n.pos, format!("{what}: formats must not be empty"));
            }
            for (f, pos) in &list {
                if let Err(e) = check_format(f, ty) {
                    d.push(*pos, format!("{what}: format {f:?} {e}"));
                }
            }
            list.into_iter().map(|(f, _)| f).collect()
        }
        None => Vec::new(),
    };
    let timezone =
        lookup(&fields, "timezone").and_then(|n| zone(n, &format!("{what}: timezone"), d));
    let offset_field = lookup(&fields, "offset_field").and_then(|n| {
        field_path(
            n,
            ctx.is_json,
            ctx.columns,
            &format!("{what}: offset_field"),
            d,
        )
    });
    let decimal_comma = match lookup(&fields, "decimal") {
        Some(n) => match &n.kind {
            NodeKind::Str(s) if s == "," => true,
            NodeKind::Str(s) if s == "." => false,
            _ => {
                d.push(n.pos, format!("{what}: decimal must be \",\" or \".\""));
                false
            }
        },
        None => false,
    };
    let mut factor = 1.0;
    if let Some(n) = lookup(&fields, "unit") {
        factor *= unit_factor(n, &what, d).unwrap_or(1.0);
    }
    if let Some(n) = lookup(&fields, "scale") {
        match number(n) {
            Some(s) if s.is_finite() && s > 0.0 => factor *= s,
            _ => d.push(n.pos, format!("{what}: scale must be a positive number")),
        }
    }
    let allowed_values = allowed(kind, field);
    let codes = lookup(&fields, "codes").and_then(|n| {
        let table = code_table(n, &what, ctx, d)?;
        if let Some(allowed) = allowed_values {
            let values: Vec<String> = match &table {
                CodeTable::Own { map, .. } => map.values().cloned().collect(),
                CodeTable::Builtin(b) => b.values().iter().map(|s| s.to_string()).collect(),
            };
            for v in values {
                if !allowed.contains(&v.as_str()) {
                    d.push(
                        n.pos,
                        format!(
                            "{what}: code table gives {v:?}, which is not a {kind} {field} ({})",
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        Some(table)
    });
    let extract = lookup(&fields, "extract").and_then(|n| {
        let s = string(n, &format!("{what}: extract"), d)?;
        match Regex::new(&s) {
            Ok(r) => Some(r),
            Err(e) => {
                let msg = e.to_string();
                let last = msg
                    .lines()
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                d.push(
                    n.pos,
                    format!("{what}: extract is not a valid regex: {last}"),
                );
                None
            }
        }
    });
    let literal = |n: &Node, key: &str, d: &mut Diags| -> Option<Value> {
        match literal_value(n, ty) {
            Ok(v) => {
                if let (Some(allowed), Value::String(s)) = (allowed_values, &v) {
                    if !allowed.contains(&s.as_str()) {
                        d.push(
                            n.pos,
                            format!(
                                "{what}: {key} {s:?} is not a {kind} {field} ({})",
                                allowed.join(", ")
                            ),
                        );
                        return None;
                    }
                }
                if non_negative(field) && v.as_f64().is_some_and(|x| x < 0.0) {
                    d.push(n.pos, format!("{what}: {key} must not be negative"));
                    return None;
                }
                Some(v)
            }
            Err(e) => {
                d.push(n.pos, format!("{what}: {key} {e}"));
                None
            }
        }
    };
    let default = lookup(&fields, "default").and_then(|n| literal(n, "default", d));
    let must = kind.required().contains(&field) || field == "event_time";
    let required = match lookup(&fields, "required") {
        Some(n) => match n.kind {
            NodeKind::Bool(false) if must => {
                d.push(
                    n.pos,
                    format!(
                        "{what}: {field} is required by {kind}; required: false is not allowed"
                    ),
                );
                true
            }
            NodeKind::Bool(b) => b || must,
            _ => {
                d.push(n.pos, format!("{what}: required must be true or false"));
                must
            }
        },
        None => must,
    };
    let separator = match lookup(&fields, "separator") {
        Some(n) => match &n.kind {
            NodeKind::Str(s) if !s.is_empty() && !s.contains('/') => s.clone(),
            _ => {
                d.push(
                    n.pos,
                    format!("{what}: separator must be a non-empty string without '/'"),
                );
                ",".into()
            }
        },
        None => ",".into(),
    };
    let source = match src_key {
        "field" => ValueSource::Field(field_list(src_node, ctx, &format!("{what}: field"), d)?),
        "const" => ValueSource::Const(literal(src_node, "const", d)?),
        _ => {
            let text = string(src_node, &format!("{what}: template"), d)?;
            match parse_template(&text) {
                Ok(parts) => {
                    let mut ok = true;
                    for part in &parts {
                        if let TemplatePart::Field(f) = part {
                            ok &=
                                check_field(f, src_node.pos, ctx, &format!("{what}: template"), d)
                                    .is_some();
                        }
                    }
                    if !ok {
                        return None;
                    }
                    ValueSource::Template(
                        parts
                            .into_iter()
                            .map(|p| match p {
                                TemplatePart::Field(f) if ctx.is_json => {
                                    let steps = parse_path(&f.text).unwrap_or_default();
                                    TemplatePart::Field(FieldPath {
                                        text: f.text,
                                        steps,
                                    })
                                }
                                p => p,
                            })
                            .collect(),
                    )
                }
                Err(e) => {
                    d.push(src_node.pos, format!("{what}: template {e}"));
                    return None;
                }
            }
        }
    };
    if d.errors.len() > before {
        return None;
    }
    Some(ValueSpec {
        source,
        ty,
        formats,
        timezone,
        offset_field,
        decimal_comma,
        factor,
        codes,
        extract,
        default,
        required,
        separator,
    })
}

/// `codes`: a table name (the feed's or a built-in) or an inline mapping.
fn code_table(n: &Node, what: &str, ctx: &Ctx, d: &mut Diags) -> Option<CodeTable> {
    let table = match &n.kind {
        NodeKind::Str(name) => match (ctx.tables.get(name), Builtin::parse(name)) {
            (Some(t), _) => t.clone(),
            (None, Some(b)) => CodeTable::Builtin(b),
            (None, None) => {
                let mut names: Vec<&str> = ctx.tables.keys().map(String::as_str).collect();
                names.extend(Builtin::ALL.iter().map(|b| b.name()));
                d.push(
                    n.pos,
                    format!(
                        "{what}: no code table {name:?} (tables: {})",
                        names.join(", ")
                    ),
                );
                return None;
            }
        },
        NodeKind::Map(_) => CodeTable::Own {
            name: "inline".into(),
            map: read_table(n, &format!("{what}: codes"), d)?,
        },
        other => {
            d.push(
                n.pos,
                format!(
                    "{what}: codes must be a table name or a mapping, got {}",
                    other.describe()
                ),
            );
            return None;
        }
    };
    Some(table)
}

/// `unit: {from, to}` -> the multiplier.
fn unit_factor(n: &Node, what: &str, d: &mut Diags) -> Option<f64> {
    if !is_map(n, &format!("{what}: unit"), d) {
        return None;
    }
    let fields = entries(n, &["from", "to"], d);
    let get_unit = |key: &str, d: &mut Diags| {
        let Some(v) = lookup(&fields, key) else {
            d.push(n.pos, format!("{what}: unit needs {key}"));
            return None;
        };
        let name = string(v, &format!("{what}: unit.{key}"), d)?;
        match codes::unit(&name) {
            Some(u) => Some(u),
            None => {
                let all: Vec<&str> = codes::UNITS.iter().map(|u| u.0).collect();
                d.push(
                    v.pos,
                    format!("{what}: unknown unit {name:?} (units: {})", all.join(" ")),
                );
                None
            }
        }
    };
    let from = get_unit("from", d);
    let to = get_unit("to", d);
    let ((fd, ff), (td, tf)) = (from?, to?);
    if fd != td {
        d.push(
            n.pos,
            format!("{what}: cannot convert {} to {}", fd.as_str(), td.as_str()),
        );
        return None;
    }
    Some(ff / tf)
}

/// A `const` / `default` literal as the canonical JSON value of type `ty`.
fn literal_value(n: &Node, ty: ValueType) -> Result<Value, String> {
    let got = n.kind.describe();
    match (ty, &n.kind) {
        (ValueType::String, NodeKind::Str(s)) => Ok(Value::String(s.clone())),
        (ValueType::String, NodeKind::Int(i)) => Ok(Value::String(i.to_string())),
        (ValueType::String, NodeKind::Float(f)) if f.is_finite() => {
            Ok(Value::String(f.to_string()))
        }
        (ValueType::String, _) => Err(format!("must be a string, got {got}")),
        (ValueType::Integer, NodeKind::Int(i)) => Ok(Value::from(*i)),
        (ValueType::Integer, _) => Err(format!("must be an integer, got {got}")),
        (ValueType::Number, NodeKind::Int(i)) => Ok(Value::from(*i)),
        (ValueType::Number, NodeKind::Float(f)) if f.is_finite() => Ok(Value::from(*f)),
        (ValueType::Number, _) => Err(format!("must be a finite number, got {got}")),
        (ValueType::Date, NodeKind::Str(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|_| Value::String(s.clone()))
            .map_err(|_| format!("{s:?} is not a date YYYY-MM-DD")),
        (ValueType::Date, _) => Err(format!("must be a date YYYY-MM-DD, got {got}")),
        (ValueType::Timestamp, NodeKind::Str(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Value::String(map::format_timestamp(&t.with_timezone(&chrono::Utc))))
            .map_err(|_| format!("{s:?} is not an RFC 3339 timestamp")),
        (ValueType::Timestamp, _) => Err(format!("must be an RFC 3339 timestamp, got {got}")),
        (ValueType::PoLineRefs, NodeKind::Seq(items)) => {
            let mut out = Vec::new();
            for item in items {
                let NodeKind::Str(s) = &item.kind else {
                    return Err("must be a list of \"PO/LINE\" strings".into());
                };
                let r = map::po_line_ref(s).ok_or_else(|| format!("item {s:?} is not PO/LINE"))?;
                out.push(r);
            }
            Ok(Value::Array(out))
        }
        (ValueType::PoLineRefs, _) => {
            Err(format!("must be a list of \"PO/LINE\" strings, got {got}"))
        }
    }
}

/// Checks a strftime format: chrono must know every specifier, and a value written with it must
/// read back (so a date format holds year, month and day).
pub(crate) fn check_format(f: &str, ty: ValueType) -> Result<(), String> {
    if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
        return Err("is not a strftime format chrono can use".into());
    }
    let offset = FixedOffset::east_opt(3600).ok_or("offset")?;
    let sample = offset
        .with_ymd_and_hms(2026, 11, 28, 13, 45, 30)
        .single()
        .ok_or("sample")?;
    let mut text = String::new();
    if write!(text, "{}", sample.format_with_items(StrftimeItems::new(f))).is_err() {
        return Err("is not a strftime format chrono can use".into());
    }
    let formats = [f.to_string()];
    match ty {
        ValueType::Date => match map::parse_date(&text, &formats) {
            Some(d) if d == sample.date_naive() => Ok(()),
            _ => Err("does not hold a full date (year, month and day)".into()),
        },
        _ => {
            // A format with a time must read it whole: chrono would otherwise fall back to the
            // date alone and `%d.%m.%Y %H` would silently read midnight.
            let has_time = StrftimeItems::new(f).any(|i| {
                matches!(
                    i,
                    Item::Numeric(
                        Numeric::Hour | Numeric::Hour12 | Numeric::Minute | Numeric::Second,
                        _
                    )
                )
            });
            let full = chrono::DateTime::parse_from_str(&text, f).is_ok()
                || chrono::NaiveDateTime::parse_from_str(&text, f).is_ok();
            match map::parse_timestamp(&text, &formats, &Zone::utc()) {
                Ok(_) if full || !has_time => Ok(()),
                _ => Err("does not hold a full date, or its time is incomplete".into()),
            }
        }
    }
}

/// An IANA zone name or a fixed offset `+08:00`.
pub(crate) fn parse_zone(s: &str) -> Option<Zone> {
    if let Some(off) = map::parse_offset(s) {
        return Some(Zone::Fixed(off));
    }
    s.parse::<chrono_tz::Tz>().ok().map(Zone::Tz)
}

fn zone(n: &Node, what: &str, d: &mut Diags) -> Option<Zone> {
    let s = string(n, what, d)?;
    let z = parse_zone(&s);
    if z.is_none() {
        d.push(n.pos, format!("{what}: unknown time zone {s:?} (an IANA name such as Europe/Berlin, or an offset such as +08:00)"));
    }
    z
}

/// `{name}` placeholders; `{{` and `}}` are literal braces.
pub(crate) fn parse_template(text: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') => return Err(format!("{text:?}: '{{' inside a placeholder")),
                        Some(c) => name.push(c),
                        None => return Err(format!("{text:?}: unclosed placeholder {{{name}")),
                    }
                }
                if name.trim().is_empty() {
                    return Err(format!("{text:?}: empty placeholder {{}}"));
                }
                if !lit.is_empty() {
                    parts.push(TemplatePart::Text(std::mem::take(&mut lit)));
                }
                parts.push(TemplatePart::Field(FieldPath {
                    text: name,
                    steps: Vec::new(),
                }));
            }
            '}' => {
                return Err(format!(
                    "{text:?}: '}}' without '{{' (write }}}} for a brace)"
                ))
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(TemplatePart::Text(lit));
    }
    if !parts.iter().any(|p| matches!(p, TemplatePart::Field(_))) {
        return Err(format!(
            "{text:?} has no {{field}} placeholder (use const for a fixed value)"
        ));
    }
    Ok(parts)
}

/// A JSON path: `a.b[0].c`, `[2].x`; keys may hold any character but `.`, `[` and `]`.
pub(crate) fn parse_path(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = text;
    let mut first = true;
    loop {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let key = &rest[..end];
        if key.contains(']') {
            return Err(format!("path {text:?}: ']' without '['"));
        }
        if key.is_empty() && !(first && rest.starts_with('[')) {
            return Err(format!("path {text:?} has an empty key"));
        }
        if !key.is_empty() {
            steps.push(Step::Key(key.to_string()));
        }
        rest = &rest[end..];
        while let Some(after) = rest.strip_prefix('[') {
            let close = after
                .find(']')
                .ok_or_else(|| format!("path {text:?}: unclosed '['"))?;
            let index: usize = after[..close].parse().map_err(|_| {
                format!("path {text:?}: [{}] is not an array index", &after[..close])
            })?;
            steps.push(Step::Index(index));
            rest = &after[close + 1..];
        }
        first = false;
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None if rest.is_empty() => return Ok(steps),
            None => {
                return Err(format!(
                    "path {text:?}: expected '.' or '[' before {rest:?}"
                ))
            }
        }
    }
}

/// Checks one field name: a JSON path must parse; a CSV column must be one of `columns` when
/// the feed has no header row.
fn check_field(f: &FieldPath, pos: Pos, ctx: &Ctx, what: &str, d: &mut Diags) -> Option<Vec<Step>> {
    if ctx.is_json {
        return match parse_path(&f.text) {
            Ok(steps) => Some(steps),
            Err(e) => {
                d.push(pos, format!("{what}: {e}"));
                None
            }
        };
    }
    if let Some(cols) = ctx.columns {
        if !cols.contains(&f.text) {
            d.push(
                pos,
                format!("{what}: no column {:?} in format.columns", f.text),
            );
            return None;
        }
    }
    Some(Vec::new())
}

fn field_path(
    n: &Node,
    is_json: bool,
    columns: Option<&[String]>,
    what: &str,
    d: &mut Diags,
) -> Option<FieldPath> {
    let text = scalar_text(n).filter(|s| !s.is_empty());
    let Some(text) = text else {
        d.push(n.pos, format!("{what} must be a non-empty string"));
        return None;
    };
    let tables = BTreeMap::new();
    let ctx = Ctx {
        is_json,
        columns,
        tables: &tables,
    };
    let mut f = FieldPath {
        text,
        steps: Vec::new(),
    };
    f.steps = check_field(&f, n.pos, &ctx, what, d)?;
    Some(f)
}

/// A field name or a list of them (first present).
fn field_list(n: &Node, ctx: &Ctx, what: &str, d: &mut Diags) -> Option<Vec<FieldPath>> {
    let nodes: Vec<&Node> = match &n.kind {
        NodeKind::Seq(items) if !items.is_empty() => items.iter().collect(),
        NodeKind::Seq(_) => {
            d.push(n.pos, format!("{what} must name at least one field"));
            return None;
        }
        _ => vec![n],
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in nodes {
        match field_path(item, ctx.is_json, ctx.columns, what, d) {
            Some(f) => out.push(f),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

// --- small readers -------------------------------------------------------------------------

fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    let NodeKind::Map(pairs) = &node.kind else {
        return None;
    };
    pairs
        .iter()
        .find(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == key))
        .map(|(_, v)| v)
}

fn is_map(node: &Node, what: &str, d: &mut Diags) -> bool {
    let ok = matches!(node.kind, NodeKind::Map(_));
    if !ok {
        d.push(
            node.pos,
            format!("{what} must be a mapping, got {}", node.kind.describe()),
        );
    }
    ok
}

type Field<'a> = (&'static str, Pos, &'a Node);

fn lookup<'a>(fields: &[Field<'a>], key: &str) -> Option<&'a Node> {
    fields
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, _, v)| *v)
}

/// The allowed entries of a mapping, reporting unknown, duplicate and non-string keys.
fn entries<'a>(node: &'a Node, allowed: &[&'static str], d: &mut Diags) -> Vec<Field<'a>> {
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
fn scalar_text(n: &Node) -> Option<String> {
    match &n.kind {
        NodeKind::Str(s) => Some(s.clone()),
        NodeKind::Int(i) => Some(i.to_string()),
        NodeKind::Float(f) if f.is_finite() => Some(f.to_string()),
        NodeKind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string(n: &Node, what: &str, d: &mut Diags) -> Option<String> {
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

fn non_empty(n: &Node, what: &str, d: &mut Diags) -> Option<String> {
    let s = string(n, what, d)?;
    if s.trim().is_empty() {
        d.push(n.pos, format!("{what} must not be empty"));
        return None;
    }
    Some(s)
}

fn number(n: &Node) -> Option<f64> {
    match n.kind {
        NodeKind::Int(i) => Some(i as f64),
        NodeKind::Float(f) if f.is_finite() => Some(f),
        _ => None,
    }
}

/// A list of strings (numbers are read as their text); a single string is a list of one.
fn string_list(n: &Node, what: &str, d: &mut Diags) -> Vec<(String, Pos)> {
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

fn duration(n: &Node, what: &str, d: &mut Diags, zero_ok: bool) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("bizTransactionList[0].bizTransaction"),
            Ok(vec![
                Step::Key("bizTransactionList".into()),
                Step::Index(0),
                Step::Key("bizTransaction".into())
            ])
        );
        assert_eq!(
            parse_path("[2].x"),
            Ok(vec![Step::Index(2), Step::Key("x".into())])
        );
        assert_eq!(
            parse_path("a:b.c"),
            Ok(vec![Step::Key("a:b".into()), Step::Key("c".into())])
        );
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a[x]").is_err());
        assert!(parse_path("a[1").is_err());
        assert!(parse_path("a[1]b").is_err());
        assert!(parse_path("").is_err());
        assert!(parse_path("a.").is_err());
    }

    #[test]
    fn templates() {
        let t = parse_template("x/{Order No}/{{lit}}/{Pos}").unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[2], TemplatePart::Text("/{lit}/".into()));
        assert!(parse_template("x/{a").is_err());
        assert!(parse_template("x/{}").is_err());
        assert!(parse_template("x}").is_err());
        assert!(parse_template("no placeholders").is_err());
    }

    #[test]
    fn formats() {
        assert!(check_format("%d.%m.%Y", ValueType::Date).is_ok());
        assert!(check_format("%m/%d/%y", ValueType::Date).is_ok());
        assert!(check_format("%d.%m.%Y %H:%M", ValueType::Timestamp).is_ok());
        assert!(check_format("%d.%m.%Y", ValueType::Timestamp).is_ok());
        assert!(check_format("%Y-%m-%dT%H:%M:%S%:z", ValueType::Timestamp).is_ok());
        assert!(check_format("%d.%m.", ValueType::Date).is_err());
        assert!(check_format("%Q-%m", ValueType::Date).is_err());
        assert!(check_format("%d.%m.%Y %H", ValueType::Timestamp).is_err());
    }

    #[test]
    fn zones() {
        assert!(matches!(parse_zone("Europe/Berlin"), Some(Zone::Tz(_))));
        assert!(matches!(parse_zone("+08:00"), Some(Zone::Fixed(_))));
        assert!(matches!(parse_zone("-05:30"), Some(Zone::Fixed(_))));
        assert!(parse_zone("Mars/Olympus").is_none());
        assert!(parse_zone("+25:00").is_none());
    }
}
