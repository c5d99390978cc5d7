//! The checked shape of a feed definition: what `load.rs` builds and `map.rs` runs.
//!
//! In: nothing (plain data). Out: [`Feed`] and its parts. Every value here has passed the load
//! checks (known kind, canonical field names, parsable formats, zones, units, tables, regexes,
//! templates), so mapping a record never has to report a definition problem.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{FixedOffset, NaiveDateTime, TimeZone};
use encoding_rs::Encoding;
use regex::Regex;

use crate::events::EventKind;
use crate::rules::Pos;

/// One supplier feed, checked: how its messages are read and mapped to canonical events.
#[derive(Debug)]
pub struct Feed {
    /// `feed`: unique name, the `feed` label in metrics and the prefix of derived event ids.
    pub name: String,
    /// The definition file, as given.
    pub path: PathBuf,
    /// `supplier`: whose feed this is and where it sits in the supply network.
    pub supplier: Supplier,
    /// `topic`: the Kafka topic its messages arrive on.
    pub topic: String,
    /// `expect_every`: event-time silence longer than this means a stale feed (default 1 day).
    pub expect_every: Duration,
    /// `timezone`: zone of local date-times without an offset (default UTC).
    pub timezone: Zone,
    /// `sentinels`, trimmed and lowercased: values read as missing in every field.
    pub sentinels: Vec<String>,
    /// `format`: CSV or JSON and their options.
    pub format: Format,
    /// `mappings`, in file order: each record yields one event per mapping whose `when` holds.
    pub mappings: Vec<Mapping>,
    /// FNV-1a of the definition file's bytes: a reloader compares it to see what changed.
    pub hash: u64,
    /// Where `feed:` and `topic:` are written, for duplicate errors across a directory.
    pub(crate) name_pos: Pos,
    pub(crate) topic_pos: Pos,
}

/// `supplier`: the feed's owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Supplier {
    /// `id`: the supplier id the events carry.
    pub id: String,
    /// `name`: for people.
    pub name: Option<String>,
    /// `tier`: 1..=9, 1 supplies us directly.
    pub tier: u8,
    /// `recovery_time`: how long it takes to recover when it goes down.
    pub recovery_time: Option<Duration>,
    /// `supplies`: which customer suppliers it feeds, for the supply network.
    pub supplies: Vec<Supply>,
}

/// One entry of `supplier.supplies`.
#[derive(Debug, Clone, PartialEq)]
pub struct Supply {
    /// `to`: the customer supplier.
    pub to: String,
    /// `parts`: our end parts that depend on this input.
    pub parts: Vec<String>,
    /// `share`: (0, 1], the part of the customer's input that comes from this supplier.
    pub share: Option<f64>,
}

/// A zone for local date-times: an IANA zone or a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// An IANA name such as `Europe/Berlin` (follows daylight saving time).
    Tz(chrono_tz::Tz),
    /// A fixed offset such as `+08:00`.
    Fixed(FixedOffset),
}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone::Tz(chrono_tz::UTC)
    }

    /// The instant of a local date-time in this zone: the earlier one when the clock is set
    /// back, `None` when it does not exist (the hour skipped when the clock goes forward).
    pub fn resolve(&self, local: &NaiveDateTime) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Zone::Tz(tz) => tz
                .from_local_datetime(local)
                .earliest()
                .map(|t| t.with_timezone(&chrono::Utc)),
            Zone::Fixed(off) => off
                .from_local_datetime(local)
                .earliest()
                .map(|t| t.with_timezone(&chrono::Utc)),
        }
    }
}

/// `format`: how a message is split into records.
#[derive(Debug, Clone)]
pub enum Format {
    /// `type: csv`.
    Csv(CsvFormat),
    /// `type: json`.
    Json(JsonFormat),
}

/// CSV options.
#[derive(Debug, Clone)]
pub struct CsvFormat {
    /// `delimiter`: one ASCII byte (default `,`).
    pub delimiter: u8,
    /// `quote`: one ASCII byte (default `"`).
    pub quote: u8,
    /// `header`: the first record of each message names the columns (default true).
    pub header: bool,
    /// `columns`: the column names when `header: false`.
    pub columns: Vec<String>,
    /// `encoding`: the payload's encoding when it has no byte-order mark (default UTF-8).
    pub encoding: &'static Encoding,
}

/// JSON options.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    /// `records`: the path of the array of records inside each message.
    pub records: Option<FieldPath>,
}

/// One `mappings` entry: a canonical event kind and how to fill its fields.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// 1-based position in `mappings`, named in messages.
    pub index: usize,
    /// `kind`.
    pub kind: EventKind,
    /// `when`: only records where it holds produce this event.
    pub when: Option<When>,
    /// `fields`: canonical field -> value spec, in the kind's field order (common ones first).
    pub fields: Vec<(&'static str, ValueSpec)>,
}

/// `when`: a test on one raw value.
#[derive(Debug, Clone)]
pub struct When {
    /// `field`: the raw value tested (first present of a list).
    pub field: Vec<FieldPath>,
    /// `codes`: translate the value first (a value not in the table is in no `in` list).
    pub codes: Option<CodeTable>,
    /// The test.
    pub test: WhenTest,
}

/// The test of a `when`.
#[derive(Debug, Clone, PartialEq)]
pub enum WhenTest {
    /// `in`: the trimmed raw value is one of these (a missing value is in no list).
    In(Vec<String>),
    /// `not_in`: the value is none of these (a missing value passes).
    NotIn(Vec<String>),
    /// `present`: the value is (true) or is not (false) present.
    Present(bool),
}

/// A CSV column name or a JSON path (`a.b[0].c`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    /// As written: the column name, or the path text.
    pub text: String,
    /// The path's steps (JSON feeds only; empty for CSV).
    pub steps: Vec<Step>,
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Where a value comes from.
#[derive(Debug, Clone)]
pub enum ValueSource {
    /// `field`: the first present of these columns / paths.
    Field(Vec<FieldPath>),
    /// `const`: already the canonical JSON value.
    Const(serde_json::Value),
    /// `template`: literal text with `{name}` placeholders.
    Template(Vec<TemplatePart>),
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Literal text (`{{` / `}}` already unescaped).
    Text(String),
    /// `{name}`: a raw field value.
    Field(FieldPath),
}

/// The canonical type a value is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Text, as read (trimmed).
    String,
    /// A whole number.
    Integer,
    /// A number (decimal commas, units, scale).
    Number,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 UTC with `Z`.
    Timestamp,
    /// `[{"po": "...", "line": n}]`.
    PoLineRefs,
}

impl ValueType {
    /// The name used in definition files.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Integer => "integer",
            ValueType::Number => "number",
            ValueType::Date => "date",
            ValueType::Timestamp => "timestamp",
            ValueType::PoLineRefs => "po_line_refs",
        }
    }

    /// Parses a definition file's type name.
    pub fn parse(s: &str) -> Option<ValueType> {
        [
            ValueType::String,
            ValueType::Integer,
            ValueType::Number,
            ValueType::Date,
            ValueType::Timestamp,
            ValueType::PoLineRefs,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// A code table: their code -> canonical value.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeTable {
    /// A table of the feed (`codes:` or inline): exact match first, then case-insensitive.
    Own {
        /// The table's name (`inline` for an inline map).
        name: String,
        /// Their code -> canonical value.
        map: BTreeMap<String, String>,
    },
    /// A built-in table of `codes.rs`.
    Builtin(super::codes::Builtin),
}

/// How one canonical field is filled.
#[derive(Debug, Clone)]
pub struct ValueSpec {
    /// Exactly one source.
    pub source: ValueSource,
    /// `type` (default string).
    pub ty: ValueType,
    /// `formats`: strftime formats tried in order (dates and timestamps).
    pub formats: Vec<String>,
    /// `timezone`: overrides the feed's zone for this value.
    pub timezone: Option<Zone>,
    /// `offset_field`: a field holding `+08:00` that overrides both zones when present.
    pub offset_field: Option<FieldPath>,
    /// `decimal: ","`.
    pub decimal_comma: bool,
    /// `unit` and `scale` folded into one multiplier (1.0 when neither is set).
    pub factor: f64,
    /// `codes`: the table that translates the raw value.
    pub codes: Option<CodeTable>,
    /// `extract`: the value becomes the first capture group (or the whole match).
    pub extract: Option<Regex>,
    /// `default`: the canonical value used when the value is missing.
    pub default: Option<serde_json::Value>,
    /// Missing rejects the record (always true for the kind's required fields).
    pub required: bool,
    /// `separator` of `po_line_refs` items (default `,`).
    pub separator: String,
}
