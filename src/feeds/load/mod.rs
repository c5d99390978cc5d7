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

mod node;
mod spec;
mod syntax;

use node::*;
use spec::*;
pub(crate) use spec::{allowed, non_negative};
use syntax::*;

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
