//! Records -> canonical events: each value spec evaluated, converted, checked.
//!
//! In: a [`Feed`] and one message. Out: per record its [`MappedRecord`] (canonical JSON events,
//! one per matching mapping, or the first problem as a [`MapReject`] naming the canonical field,
//! the source column / path and the offending value) plus a trace of where each field's value
//! came from (source, default, const, missing) for the dry run's coverage.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::def::*;
use super::load::{allowed, non_negative};
use super::read::{self, invalid, json_type, Message, Values};
use super::{MapReject, MappedRecord};
use crate::events::EventKind;
use crate::ingest::decode::RejectReason;

/// Where an event's field got its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// From the record (a field, a template, with codes / extract applied).
    Source,
    /// From the spec's `default`.
    Default,
    /// From a `const`.
    Const,
    /// Optional and missing: not in the event.
    Missing,
}

/// One produced event and how its fields were filled.
#[derive(Debug, Clone)]
pub(crate) struct EventTrace {
    pub kind: EventKind,
    pub origins: Vec<(&'static str, Origin)>,
    pub event_time: Option<DateTime<Utc>>,
}

/// A record's outcome plus the traces of its events (empty when rejected).
#[derive(Debug, Clone)]
pub(crate) struct Traced {
    pub record: MappedRecord,
    pub events: Vec<EventTrace>,
}

/// Earliest and latest accepted dates, as the decoder has them.
fn in_range(d: NaiveDate) -> bool {
    let lo = NaiveDate::from_ymd_opt(2000, 1, 1);
    let hi = NaiveDate::from_ymd_opt(2100, 1, 1);
    matches!((lo, hi), (Some(lo), Some(hi)) if d >= lo && d < hi)
}

pub(crate) fn map_message(feed: &Feed, payload: &[u8]) -> Vec<Traced> {
    let message = match read::read_message(&feed.format, payload) {
        Ok(m) => m,
        Err(reject) => {
            return vec![Traced {
                record: MappedRecord {
                    row: 0,
                    line: None,
                    raw: payload.to_vec(),
                    result: Err(reject),
                },
                events: Vec::new(),
            }]
        }
    };
    let mut out = Vec::with_capacity(message.records.len());
    for record in &message.records {
        let (result, events) = match &record.values {
            Err(e) => (Err(e.clone()), Vec::new()),
            Ok(None) => (Ok(Vec::new()), Vec::new()),
            Ok(Some(values)) => {
                let rec = Rec {
                    feed,
                    message: &message,
                    values,
                };
                match map_record(&rec, &record.raw) {
                    Ok(pairs) => {
                        let (events, traces) = pairs.into_iter().unzip();
                        (Ok(events), traces)
                    }
                    Err(e) => (Err(e), Vec::new()),
                }
            }
        };
        out.push(Traced {
            record: MappedRecord {
                row: record.row,
                line: record.line,
                raw: record.raw.clone(),
                result,
            },
            events,
        });
    }
    out
}

/// A record being mapped, with what its lookups need.
struct Rec<'a> {
    feed: &'a Feed,
    message: &'a Message,
    values: &'a Values,
}

/// A raw value found in a record.
#[derive(Debug, Clone)]
enum Raw<'a> {
    /// Text (CSV cell, JSON string), trimmed.
    Text(String),
    /// A JSON number, boolean, array or object.
    Json(&'a Value),
}

impl Raw<'_> {
    /// The value as text: JSON scalars as written, arrays / objects as compact JSON.
    fn text(&self) -> String {
        match self {
            Raw::Text(s) => s.clone(),
            Raw::Json(v) => match v {
                Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            },
        }
    }
}

/// Looking up one field: absent (no such column / path), missing (empty or sentinel), or a value.
enum Found<'a> {
    Absent,
    Missing(String),
    Value(Raw<'a>),
}

impl<'a> Rec<'a> {
    fn get(&self, f: &FieldPath) -> Found<'a> {
        let raw = match self.values {
            Values::Csv(cells) => {
                let Some(cell) = self
                    .message
                    .columns
                    .get(&f.text)
                    .and_then(|i| cells.get(*i))
                else {
                    return Found::Absent;
                };
                Raw::Text(cell.trim().to_string())
            }
            Values::Json(v) => match read::walk(v, &f.steps) {
                None | Some(Value::Null) => return Found::Absent,
                Some(Value::String(s)) => Raw::Text(s.trim().to_string()),
                Some(other) => Raw::Json(other),
            },
        };
        match &raw {
            Raw::Text(s) if s.is_empty() => Found::Missing(String::new()),
            Raw::Text(s) if self.feed.sentinels.contains(&s.to_lowercase()) => {
                Found::Missing(s.clone())
            }
            _ => Found::Value(raw),
        }
    }

    fn describe(&self, f: &FieldPath) -> String {
        match self.values {
            Values::Csv(_) => format!("column {:?}", f.text),
            Values::Json(_) => format!("path {:?}", f.text),
        }
    }

    /// The first present of `fields`, with its description; else why none is.
    fn first(&self, fields: &[FieldPath]) -> Result<(Raw<'a>, String), String> {
        let mut why = Vec::new();
        for f in fields {
            let d = self.describe(f);
            match self.get(f) {
                Found::Value(v) => return Ok((v, d)),
                Found::Absent => why.push(match self.values {
                    Values::Csv(_) => format!("{d} is not in the header"),
                    Values::Json(_) => format!("{d} is absent"),
                }),
                Found::Missing(s) if s.is_empty() => why.push(format!("{d} is empty")),
                Found::Missing(s) => why.push(format!("{d} = {s:?} (a sentinel)")),
            }
        }
        Err(why.join(", "))
    }
}

fn reject(reason: RejectReason, field: &str, detail: impl Into<String>) -> MapReject {
    MapReject {
        reason,
        field: Some(field.to_string()),
        detail: detail.into(),
    }
}

fn map_record(rec: &Rec, raw: &[u8]) -> Result<Vec<(Vec<u8>, EventTrace)>, MapReject> {
    let mut out = Vec::new();
    for mapping in &rec.feed.mappings {
        if let Some(when) = &mapping.when {
            if !holds(rec, when) {
                continue;
            }
        }
        out.push(map_one(rec, mapping, raw)?);
    }
    Ok(out)
}

fn holds(rec: &Rec, when: &When) -> bool {
    let mut value = rec.first(&when.field).ok().map(|(v, _)| v.text());
    if let (Some(table), Some(v)) = (&when.codes, &value) {
        value = lookup_code(table, v);
        if value.is_none() {
            // Not in the table: present, but in no list.
            return matches!(when.test, WhenTest::Present(true) | WhenTest::NotIn(_));
        }
    }
    match (&when.test, value) {
        (WhenTest::Present(p), v) => *p == v.is_some(),
        (WhenTest::In(list), Some(v)) => list.contains(&v),
        (WhenTest::In(_), None) => false,
        (WhenTest::NotIn(list), Some(v)) => !list.contains(&v),
        (WhenTest::NotIn(_), None) => true,
    }
}

fn map_one(rec: &Rec, mapping: &Mapping, raw: &[u8]) -> Result<(Vec<u8>, EventTrace), MapReject> {
    let kind = mapping.kind;
    let mut fields: Vec<(&'static str, Value)> = Vec::new();
    let mut origins = Vec::new();
    let mut event_time = None;
    for (name, spec) in &mapping.fields {
        let (value, origin) = eval(rec, kind, name, spec)?;
        origins.push((*name, origin));
        if let Some(v) = value {
            if *name == "event_time" {
                event_time = v
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc));
            }
            fields.push((name, v));
        }
    }
    let get = |n: &str| fields.iter().find(|(f, _)| *f == n).map(|(_, v)| v);
    if kind == EventKind::SupplierConfirmation
        && get("status").and_then(Value::as_str) == Some("rescheduled")
        && get("promised_date").is_none()
    {
        return Err(reject(
            RejectReason::MissingField,
            "promised_date",
            "a rescheduled confirmation needs a promised_date",
        ));
    }
    let event_id = match get("event_id") {
        Some(v) => v.clone(),
        None => Value::String(format!(
            "{}:{:016x}",
            rec.feed.name,
            super::fnv1a(&[kind.as_str().as_bytes(), b"\n", raw])
        )),
    };
    let mut obj: Vec<(&str, Value)> = vec![
        ("event_id", event_id),
        ("kind", Value::String(kind.as_str().into())),
        (
            "event_time",
            get("event_time").cloned().unwrap_or(Value::Null),
        ),
        ("source", Value::String(rec.feed.name.clone())),
    ];
    obj.extend(
        fields
            .iter()
            .filter(|(n, _)| !matches!(*n, "event_id" | "event_time"))
            .map(|(n, v)| (*n, v.clone())),
    );
    Ok((
        to_json(&obj),
        EventTrace {
            kind,
            origins,
            event_time,
        },
    ))
}

/// A JSON object with its keys in this order.
fn to_json(fields: &[(&str, Value)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a String key and a Value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, k);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, v);
    }
    out.push(b'}');
    out
}

/// One field's canonical value and where it came from; `None` = optional and missing.
fn eval(
    rec: &Rec,
    kind: EventKind,
    field: &str,
    spec: &ValueSpec,
) -> Result<(Option<Value>, Origin), MapReject> {
    let fallback = |why: String| -> Result<(Option<Value>, Origin), MapReject> {
        match &spec.default {
            Some(d) => Ok((Some(d.clone()), Origin::Default)),
            None if spec.required => Err(reject(RejectReason::MissingField, field, why)),
            None => Ok((None, Origin::Missing)),
        }
    };
    let (raw, desc) = match &spec.source {
        ValueSource::Const(v) => return Ok((Some(v.clone()), Origin::Const)),
        ValueSource::Field(list) => match rec.first(list) {
            Ok(found) => found,
            Err(why) => return fallback(why),
        },
        ValueSource::Template(parts) => {
            let mut text = String::new();
            for part in parts {
                match part {
                    TemplatePart::Text(t) => text.push_str(t),
                    TemplatePart::Field(f) => match rec.first(std::slice::from_ref(f)) {
                        Ok((v, _)) => text.push_str(&v.text()),
                        Err(why) => return fallback(format!("template: {why}")),
                    },
                }
            }
            (Raw::Text(text.clone()), format!("template = {text:?}"))
        }
    };
    let raw = match &spec.extract {
        Some(re) => {
            let text = raw.text();
            let Some(caps) = re.captures(&text) else {
                return fallback(format!(
                    "{desc} = {text:?} does not match extract /{}/",
                    re.as_str()
                ));
            };
            let m = caps
                .get(1)
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().trim())
                .unwrap_or("");
            if m.is_empty() {
                return fallback(format!(
                    "{desc} = {text:?}: extract /{}/ matched nothing",
                    re.as_str()
                ));
            }
            Raw::Text(m.to_string())
        }
        None => raw,
    };
    let raw = match &spec.codes {
        Some(table) => {
            let text = raw.text();
            match lookup_code(table, &text) {
                Some(v) => Raw::Text(v),
                None if spec.default.is_some() => return fallback(String::new()),
                None => {
                    return Err(reject(
                        RejectReason::InvalidValue,
                        field,
                        format!(
                            "{desc} = {text:?} is not in code table {:?}",
                            table_name(table)
                        ),
                    ))
                }
            }
        }
        None => raw,
    };
    let value = convert(rec, spec, field, &raw, &desc)?;
    if let (Some(allowed), Some(s)) = (allowed(kind, field), value.as_str()) {
        if !allowed.contains(&s) {
            return Err(reject(
                RejectReason::InvalidValue,
                field,
                format!(
                    "{desc} = {:?} is not one of {}",
                    raw.text(),
                    allowed.join(", ")
                ),
            ));
        }
    }
    if non_negative(field) && value.as_f64().is_some_and(|v| v < 0.0) {
        return Err(reject(
            RejectReason::NegativeQuantity,
            field,
            format!("{desc} = {:?} is negative", raw.text()),
        ));
    }
    Ok((Some(value), Origin::Source))
}

fn table_name(t: &CodeTable) -> &str {
    match t {
        CodeTable::Own { name, .. } => name,
        CodeTable::Builtin(b) => b.name(),
    }
}

/// Exact match first, then ignoring ASCII case (built-ins have their own normalisation).
fn lookup_code(table: &CodeTable, code: &str) -> Option<String> {
    match table {
        CodeTable::Builtin(b) => b.lookup(code).map(str::to_string),
        CodeTable::Own { map, .. } => map
            .get(code)
            .or_else(|| {
                map.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(code))
                    .map(|(_, v)| v)
            })
            .cloned(),
    }
}

/// Converts a raw value to the spec's canonical type.
fn convert(
    rec: &Rec,
    spec: &ValueSpec,
    field: &str,
    raw: &Raw,
    desc: &str,
) -> Result<Value, MapReject> {
    let text = raw.text();
    let wrong = |what: &str| {
        reject(
            RejectReason::WrongType,
            field,
            format!("{desc} = {text:?} is not {what}"),
        )
    };
    match spec.ty {
        ValueType::String => match raw {
            Raw::Json(Value::Array(_) | Value::Object(_)) => Err(reject(
                RejectReason::WrongType,
                field,
                format!(
                    "{desc} is {}, not a string",
                    json_type(match raw {
                        Raw::Json(v) => v,
                        Raw::Text(_) => &Value::Null,
                    })
                ),
            )),
            _ => Ok(Value::String(text)),
        },
        ValueType::Integer | ValueType::Number => {
            let n = match raw {
                Raw::Json(Value::Number(n)) => n.as_f64(),
                Raw::Json(_) => None,
                Raw::Text(s) => parse_number(s, spec.decimal_comma),
            };
            let Some(n) = n else {
                return Err(wrong(if spec.decimal_comma {
                    "a number (decimal comma)"
                } else {
                    "a number"
                }));
            };
            if spec.ty == ValueType::Integer {
                if n.fract() != 0.0 || n.abs() > 9.0e15 {
                    return Err(wrong("an integer"));
                }
                return Ok(Value::from(n as i64));
            }
            let v = if spec.factor == 1.0 {
                n
            } else {
                round_sig(n * spec.factor)
            };
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| wrong("a finite number"))
        }
        ValueType::Date => {
            let Raw::Text(s) = raw else {
                return Err(wrong("a date"));
            };
            let Some(d) = parse_date(s, &spec.formats) else {
                return Err(reject(
                    RejectReason::InvalidDate,
                    field,
                    format!(
                        "{desc} = {s:?} matches none of {}",
                        formats_list(&spec.formats, "%Y-%m-%d")
                    ),
                ));
            };
            if !in_range(d) {
                return Err(reject(
                    RejectReason::InvalidDate,
                    field,
                    format!("{desc} = {s:?} is outside 2000-01-01..2100-01-01"),
                ));
            }
            Ok(Value::String(d.format("%Y-%m-%d").to_string()))
        }
        ValueType::Timestamp => {
            let Raw::Text(s) = raw else {
                return Err(wrong("a timestamp"));
            };
            let zone = match &spec.offset_field {
                Some(f) => match rec.get(f) {
                    Found::Value(v) => match parse_offset(&v.text()) {
                        Some(off) => Zone::Fixed(off),
                        None => {
                            return Err(reject(
                                RejectReason::InvalidDate,
                                field,
                                format!(
                                    "{} = {:?} is not an offset such as +08:00",
                                    rec.describe(f),
                                    v.text()
                                ),
                            ))
                        }
                    },
                    _ => spec.timezone.unwrap_or(rec.feed.timezone),
                },
                None => spec.timezone.unwrap_or(rec.feed.timezone),
            };
            match parse_timestamp(s, &spec.formats, &zone) {
                Ok(t) if in_range(t.date_naive()) => Ok(Value::String(format_timestamp(&t))),
                Ok(_) => Err(reject(
                    RejectReason::InvalidDate,
                    field,
                    format!("{desc} = {s:?} is outside 2000-01-01..2100-01-01"),
                )),
                Err(TsError::Gap) => Err(reject(
                    RejectReason::InvalidDate,
                    field,
                    format!("{desc} = {s:?} does not exist in its time zone (clock change)"),
                )),
                Err(TsError::NoMatch) => Err(reject(
                    RejectReason::InvalidDate,
                    field,
                    format!(
                        "{desc} = {s:?} matches none of {}",
                        formats_list(&spec.formats, "RFC 3339")
                    ),
                )),
            }
        }
        ValueType::PoLineRefs => {
            let items: Vec<Value> = match raw {
                Raw::Text(s) => s
                    .split(spec.separator.as_str())
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .map(|i| po_line_ref(i).ok_or_else(|| wrong("a list of PO/LINE")))
                    .collect::<Result<_, _>>()?,
                Raw::Json(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        json_po_line_ref(i).ok_or_else(|| wrong("a list of PO/LINE or {po, line}"))
                    })
                    .collect::<Result<_, _>>()?,
                Raw::Json(_) => return Err(wrong("a list of PO/LINE")),
            };
            Ok(Value::Array(items))
        }
    }
}

fn formats_list(formats: &[String], default: &str) -> String {
    if formats.is_empty() {
        default.to_string()
    } else {
        formats.join(", ")
    }
}

/// `PO-1/2` -> `{"po": "PO-1", "line": 2}` (split at the last `/`).
pub(crate) fn po_line_ref(s: &str) -> Option<Value> {
    let (po, line) = s.trim().rsplit_once('/')?;
    let po = po.trim();
    let line: i64 = line.trim().parse().ok()?;
    if po.is_empty() {
        return None;
    }
    Some(serde_json::json!({"po": po, "line": line}))
}

fn json_po_line_ref(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) => po_line_ref(s),
        Value::Object(o) => {
            let po = o.get("po")?.as_str()?.trim();
            let line = match o.get("line")? {
                Value::Number(n) => n.as_i64()?,
                Value::String(s) => s.trim().parse().ok()?,
                _ => return None,
            };
            (!po.is_empty()).then(|| serde_json::json!({"po": po, "line": line}))
        }
        _ => None,
    }
}

/// 12 significant digits: `100 lb` is `45.359237 kg`, not `45.359237000000004`.
fn round_sig(v: f64) -> f64 {
    format!("{v:.11e}").parse().unwrap_or(v)
}

/// A decimal number: sign (leading, or trailing as SAP writes `5,000-`), thousands separators
/// only between groups of three digits (so `12.5` in a decimal-comma feed is an error, not 125).
pub(crate) fn parse_number(s: &str, decimal_comma: bool) -> Option<f64> {
    let s = s.trim();
    let (neg, body) = if let Some(r) = s.strip_prefix('-') {
        (true, r)
    } else if let Some(r) = s.strip_suffix('-') {
        (true, r.trim_end())
    } else {
        (false, s.strip_prefix('+').unwrap_or(s))
    };
    let (dec, seps): (char, &[char]) = if decimal_comma {
        (',', &['.', ' ', '\'', '\u{a0}', '\u{202f}'])
    } else {
        ('.', &[',', ' ', '\'', '\u{a0}', '\u{202f}'])
    };
    let (int, frac) = match body.split_once(dec) {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let int_digits: String = if int.contains(seps) {
        let groups: Vec<&str> = int.split(seps).collect();
        let ok = groups.first().is_some_and(|g| digits(g) && g.len() <= 3)
            && groups[1..].iter().all(|g| digits(g) && g.len() == 3);
        if !ok {
            return None;
        }
        groups.concat()
    } else {
        int.to_string()
    };
    let int_ok = digits(&int_digits) || (int_digits.is_empty() && frac.is_some_and(digits));
    let frac_ok = frac.is_none_or(|f| digits(f) || (f.is_empty() && digits(&int_digits)));
    if !int_ok || !frac_ok {
        return None;
    }
    let text = format!(
        "{}{}.{}",
        if neg { "-" } else { "" },
        if int_digits.is_empty() {
            "0"
        } else {
            &int_digits
        },
        frac.filter(|f| !f.is_empty()).unwrap_or("0")
    );
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A date in the first of `formats` that reads it (default `%Y-%m-%d`).
pub(crate) fn parse_date(s: &str, formats: &[String]) -> Option<NaiveDate> {
    if formats.is_empty() {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    }
    formats
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
}

/// Why a timestamp was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsError {
    /// No format reads it.
    NoMatch,
    /// A local time skipped by a clock change.
    Gap,
}

/// A timestamp: with an offset it keeps it; without, it is local time in `zone`; a date alone is
/// midnight local time. Without `formats`: RFC 3339, or the same without offset (local).
pub(crate) fn parse_timestamp(
    s: &str,
    formats: &[String],
    zone: &Zone,
) -> Result<DateTime<Utc>, TsError> {
    let local = |n: NaiveDateTime| zone.resolve(&n).ok_or(TsError::Gap);
    if formats.is_empty() {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(t.with_timezone(&Utc));
        }
        for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
                return local(n);
            }
        }
        return Err(TsError::NoMatch);
    }
    for f in formats {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Ok(t.with_timezone(&Utc));
        }
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return local(n);
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return local(d.and_time(chrono::NaiveTime::MIN));
        }
    }
    Err(TsError::NoMatch)
}

/// `+08:00`, `-0530`, `Z` -> a fixed offset.
pub(crate) fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s == "Z" || s == "z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => return None,
    };
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// RFC 3339 in UTC with `Z`, fractional seconds only when there are some.
pub(crate) fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Reject for a record that could not be read at all (used by the dry run's decoder check).
pub(crate) fn decoder_reject(reason: RejectReason, detail: String) -> MapReject {
    invalid(reason, format!("rejected by the event decoder: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("1.234,5", true), Some(1234.5));
        assert_eq!(parse_number("12,5", true), Some(12.5));
        assert_eq!(parse_number("12.5", true), None);
        assert_eq!(parse_number("1 234 567,25", true), Some(1_234_567.25));
        assert_eq!(parse_number("5.000-", true), Some(-5000.0));
        assert_eq!(parse_number("-3", false), Some(-3.0));
        assert_eq!(parse_number("1,234.5", false), Some(1234.5));
        assert_eq!(parse_number("12,5", false), None);
        assert_eq!(parse_number(",5", true), Some(0.5));
        assert_eq!(parse_number("5.", false), Some(5.0));
        assert_eq!(parse_number("inf", false), None);
        assert_eq!(parse_number("NaN", false), None);
        assert_eq!(parse_number("1e5", false), None);
        assert_eq!(parse_number("", false), None);
        assert_eq!(parse_number("-", false), None);
        assert_eq!(parse_number("12 kg", false), None);
    }

    #[test]
    fn unit_rounding() {
        assert_eq!(round_sig(100.0 * 0.453_592_37), 45.359237);
        assert_eq!(round_sig(0.1 + 0.2), 0.3);
    }

    #[test]
    fn timestamps() {
        let berlin = Zone::Tz(chrono_tz::Europe::Berlin);
        let f = vec!["%d.%m.%Y %H:%M".to_string()];
        let t = parse_timestamp("02.03.2026 09:15", &f, &berlin).unwrap();
        assert_eq!(format_timestamp(&t), "2026-03-02T08:15:00Z");
        let t = parse_timestamp("01.07.2026 09:15", &f, &berlin).unwrap();
        assert_eq!(format_timestamp(&t), "2026-07-01T07:15:00Z");
        assert_eq!(
            parse_timestamp("29.03.2026 02:30", &f, &berlin),
            Err(TsError::Gap)
        );
        let t = parse_timestamp("2026-03-10T08:00:00.000+01:00", &[], &berlin).unwrap();
        assert_eq!(format_timestamp(&t), "2026-03-10T07:00:00Z");
        let t = parse_timestamp(
            "2026-03-10T08:00:00",
            &[],
            &Zone::Fixed(FixedOffset::east_opt(8 * 3600).unwrap()),
        )
        .unwrap();
        assert_eq!(format_timestamp(&t), "2026-03-10T00:00:00Z");
        let d = vec!["%d.%m.%Y".to_string()];
        let t = parse_timestamp("10.03.2026", &d, &berlin).unwrap();
        assert_eq!(format_timestamp(&t), "2026-03-09T23:00:00Z");
        assert_eq!(
            parse_timestamp("yesterday", &d, &berlin),
            Err(TsError::NoMatch)
        );
    }

    #[test]
    fn dates_and_offsets() {
        let f = vec!["%d.%m.%Y".to_string(), "%m/%d/%y".to_string()];
        assert_eq!(parse_date("31.02.2026", &f), None);
        assert_eq!(
            parse_date("03/14/26", &f),
            NaiveDate::from_ymd_opt(2026, 3, 14)
        );
        assert_eq!(
            parse_date("2026-03-14", &[]),
            NaiveDate::from_ymd_opt(2026, 3, 14)
        );
        assert_eq!(parse_offset("+08:00"), FixedOffset::east_opt(8 * 3600));
        assert_eq!(
            parse_offset("-0530"),
            FixedOffset::east_opt(-(5 * 3600 + 1800))
        );
        assert_eq!(parse_offset("08:00"), None);
        assert_eq!(parse_offset("+8:00"), None);
    }

    #[test]
    fn po_line_refs() {
        assert_eq!(
            po_line_ref("PO-1/2"),
            Some(serde_json::json!({"po": "PO-1", "line": 2}))
        );
        assert_eq!(
            po_line_ref("A/B/3"),
            Some(serde_json::json!({"po": "A/B", "line": 3}))
        );
        assert_eq!(po_line_ref("PO-1"), None);
        assert_eq!(po_line_ref("/3"), None);
        assert_eq!(
            json_po_line_ref(&serde_json::json!({"po": "X", "line": "4"})),
            Some(serde_json::json!({"po": "X", "line": 4}))
        );
    }
}
