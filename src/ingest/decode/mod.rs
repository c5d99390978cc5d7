//! Payload bytes -> Arrow: decode JSON events straight into a [`RecordBatch`] and validate them.
//!
//! In: a micro-batch of raw Kafka payloads. Out: one [`RecordBatch`] in
//! [`event_schema`](crate::events::event_schema) holding every valid event, the index of the
//! message each row came from, and a [`Reject`] for every message that is not a valid event.
//!
//! Two paths. A payload that is a plain event object (all the simulator writes) takes the
//! fast path, [`typed`]: serde_json into borrowed fields, then Arrow builders. Every other
//! payload goes to one arrow-json [`Decoder`] (no `serde_json::Value` in between), flushed
//! once. Per-message isolation comes from checking, after each payload, that exactly one
//! complete JSON value was added; a payload that breaks the tokenizer is rejected and the
//! decoder is rebuilt from the good payloads of the batch so far. Type errors only show at
//! flush: then the segment is decoded message by message to find the culprits. Bad input is
//! therefore paid for only by batches that contain it. The fast path declines whatever it
//! would not decode exactly as arrow-json does, so every payload's outcome is arrow-json's.

mod typed;

use std::collections::HashMap;
use std::sync::OnceLock;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt32Array};
use arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use arrow::datatypes::{Date32Type, Float64Type, SchemaRef, TimestampMillisecondType};
use arrow::error::ArrowError;
use arrow::json::reader::{Decoder, ReaderBuilder};
use arrow::record_batch::RecordBatch;

use crate::events::{col, event_schema, EventKind};

/// Why a message was rejected; the `reason` label of `chainwatch_ingest_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not exactly one JSON object.
    InvalidJson,
    /// A field holds a value of the wrong JSON type.
    WrongType,
    /// `kind` names no known event kind.
    UnknownKind,
    /// A field the kind requires is missing or null.
    MissingField,
    /// A field has a value outside its allowed set (e.g. milestone status).
    InvalidValue,
    /// A quantity, price, stock or demand below zero (or not finite).
    NegativeQuantity,
    /// A date or timestamp that does not exist or lies outside 2000..2100.
    InvalidDate,
    /// Event time older than the watermark minus the allowed lateness.
    LateEvent,
    /// Payload larger than the configured maximum.
    TooLarge,
    /// A record of a supplier feed that cannot be read in the feed's format (a CSV row with
    /// the wrong number of columns, bytes the encoding cannot decode, a JSON record that is
    /// not an object).
    InvalidRecord,
    /// chainwatch could not process a valid-looking message (an Arrow kernel failed where it
    /// cannot fail on good code): a bug, dead-lettered rather than lost. Report it.
    Internal,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        RejectReason::InvalidJson,
        RejectReason::WrongType,
        RejectReason::UnknownKind,
        RejectReason::MissingField,
        RejectReason::InvalidValue,
        RejectReason::NegativeQuantity,
        RejectReason::InvalidDate,
        RejectReason::LateEvent,
        RejectReason::TooLarge,
        RejectReason::InvalidRecord,
        RejectReason::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::WrongType => "wrong_type",
            RejectReason::UnknownKind => "unknown_kind",
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidValue => "invalid_value",
            RejectReason::NegativeQuantity => "negative_quantity",
            RejectReason::InvalidDate => "invalid_date",
            RejectReason::LateEvent => "late_event",
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidRecord => "invalid_record",
            RejectReason::Internal => "internal_error",
        }
    }
}

/// One rejected message of a micro-batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// Position of the message in the micro-batch.
    pub index: usize,
    pub reason: RejectReason,
    /// Human-readable detail, e.g. `field 'quantity' is -5, must be >= 0`.
    pub detail: String,
}

/// The outcome of decoding one micro-batch.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Valid events in [`event_schema`]; `None` when there are none.
    pub batch: Option<RecordBatch>,
    /// For each row of `batch`, the index of its message in the micro-batch.
    pub rows: Vec<usize>,
    /// Rejected messages, in no particular order.
    pub rejects: Vec<Reject>,
    /// Messages the fast path declined, decoded (or rejected) by arrow-json instead.
    pub declined: usize,
}

/// Deepest nesting of arrays and objects accepted. An event is flat; the limit keeps a
/// hostile payload from exhausting the stack of the JSON reader (which recurses on nesting).
pub const MAX_DEPTH: usize = 32;

/// Is the JSON in `bytes` nested deeper than [`MAX_DEPTH`]? Brackets inside strings do not
/// count. A cheap count of opening brackets first: nearly every payload stops there. memchr
/// skips the bytes between brackets; a byte-by-byte count was a tenth of the decode time.
fn too_deep(bytes: &[u8]) -> bool {
    if memchr::memchr2_iter(b'[', b'{', bytes)
        .nth(MAX_DEPTH)
        .is_none()
    {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Decodes and validates micro-batches of canonical JSON events.
pub struct EventDecoder {
    schema: SchemaRef,
    max_bytes: usize,
}

/// Earliest and latest accepted dates (2000-01-01 and 2100-01-01) in days and milliseconds.
const MIN_DAY: i32 = 10_957;
const MAX_DAY: i32 = 47_482;
const MIN_MS: i64 = MIN_DAY as i64 * 86_400_000;
const MAX_MS: i64 = MAX_DAY as i64 * 86_400_000;

impl EventDecoder {
    /// `max_bytes`: payloads larger than this are rejected as [`RejectReason::TooLarge`].
    pub fn new(max_bytes: usize) -> Self {
        EventDecoder {
            schema: event_schema(),
            max_bytes,
        }
    }

    /// A decoder for up to `rows` rows (one more, so an extra value in a message is seen).
    fn decoder(&self, rows: usize) -> Decoder {
        ReaderBuilder::new(self.schema.clone())
            .with_batch_size(rows + 1)
            .build_decoder()
            .expect("the event schema is supported by arrow-json")
    }

    /// Decode and validate one micro-batch of payloads (`None` = a message without payload).
    pub fn decode(&self, payloads: &[Option<&[u8]>]) -> Decoded {
        self.decode_with(payloads, true)
    }

    /// [`decode`](Self::decode) with arrow-json alone, no fast path: the reference the fast
    /// path is tested and benchmarked against.
    pub fn decode_with_arrow_json(&self, payloads: &[Option<&[u8]>]) -> Decoded {
        self.decode_with(payloads, false)
    }

    fn decode_with(&self, payloads: &[Option<&[u8]>], fast: bool) -> Decoded {
        let mut rejects = Vec::new();
        let mut columns = typed::Columns::with_capacity(if fast { payloads.len() } else { 0 });
        let mut rows = Vec::with_capacity(payloads.len());
        // Messages for arrow-json: those the fast path declines (or all, without it).
        let mut slow: Vec<usize> = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let Some(bytes) = payload else {
                rejects.push(reject(
                    i,
                    RejectReason::InvalidJson,
                    "message has no payload",
                ));
                continue;
            };
            if bytes.len() > self.max_bytes {
                let detail = format!("{} bytes, limit {}", bytes.len(), self.max_bytes);
                rejects.push(reject(i, RejectReason::TooLarge, detail));
                continue;
            }
            if too_deep(bytes) {
                let detail = format!("JSON nested deeper than {MAX_DEPTH} levels");
                rejects.push(reject(i, RejectReason::InvalidJson, detail));
                continue;
            }
            if fast && columns.push(bytes) {
                rows.push(i);
            } else {
                slow.push(i);
            }
        }
        let mut batches = Vec::new();
        if columns.len() > 0 {
            match columns.finish(&self.schema) {
                Ok(b) => batches.push(b),
                Err(e) => {
                    // The builders follow the schema; this would be a bug, not bad input.
                    tracing::error!(error = %e, "Could not build the fast path's batch.");
                    slow.append(&mut rows);
                    slow.sort_unstable();
                }
            }
        }
        let declined = if fast { slow.len() } else { 0 };
        if !slow.is_empty() {
            let (batch, slow_rows) = self.decode_arrow_json(payloads, &slow, &mut rejects);
            batches.extend(batch);
            rows.extend(slow_rows);
        }

        let batch = match batches.len() {
            0 => None,
            1 => batches.pop(),
            _ => match in_message_order(&self.schema, &batches, &mut rows) {
                Some(b) => Some(b),
                // A bug, not bad input (logged): rather than lose the rows, decode them all
                // again on arrow-json alone (one batch there, so no second try).
                None => return self.decode_with(payloads, false),
            },
        };
        let Some(batch) = batch else {
            return Decoded {
                rejects,
                declined,
                ..Decoded::default()
            };
        };
        Decoded {
            declined,
            ..validate(batch, rows, rejects)
        }
    }

    /// Decode the messages `indexes` of `payloads` with arrow-json: their batch and, for each
    /// of its rows, the index of its message; rejects are added to `rejects`.
    fn decode_arrow_json(
        &self,
        payloads: &[Option<&[u8]>],
        indexes: &[usize],
        rejects: &mut Vec<Reject>,
    ) -> (Option<RecordBatch>, Vec<usize>) {
        let mut batches = Vec::new();
        let mut rows = Vec::new();
        let mut decoder = self.decoder(indexes.len());
        let mut segment: Vec<usize> = Vec::new();
        for &i in indexes {
            let bytes = payloads[i].unwrap_or_default();
            if let Err(detail) = feed_one(&mut decoder, bytes) {
                rejects.push(reject(i, RejectReason::InvalidJson, detail));
                // The decoder may hold half of the bad value: rebuild it from the good ones.
                decoder = self.decoder(indexes.len());
                for &j in &segment {
                    if let Some(good) = payloads[j] {
                        // These were accepted by the same decoder state moments ago.
                        let _ = feed_one(&mut decoder, good);
                    }
                }
            } else {
                segment.push(i);
            }
        }
        self.flush_segment(
            &mut decoder,
            payloads,
            &segment,
            &mut batches,
            &mut rows,
            rejects,
        );
        let batch = match batches.len() {
            0 => None,
            1 => batches.pop(),
            _ => match concat(&self.schema, &batches) {
                Some(b) => Some(b),
                None => {
                    // A bug (logged): the rows are dead-lettered, not dropped.
                    rejects.extend(rows.drain(..).map(|i| internal(i, "could not concatenate")));
                    None
                }
            },
        };
        (batch, rows)
    }

    fn flush_segment(
        &self,
        decoder: &mut Decoder,
        payloads: &[Option<&[u8]>],
        segment: &[usize],
        batches: &mut Vec<RecordBatch>,
        rows: &mut Vec<usize>,
        rejects: &mut Vec<Reject>,
    ) {
        if segment.is_empty() {
            return;
        }
        match decoder.flush() {
            Ok(Some(batch)) if batch.num_rows() == segment.len() => {
                batches.push(batch);
                rows.extend_from_slice(segment);
            }
            _ => {
                // Some payload has a wrongly typed field: find it message by message.
                for &i in segment {
                    let mut one = self.decoder(1);
                    let bytes = payloads[i].unwrap_or_default();
                    let result = feed_one(&mut one, bytes)
                        .map_err(|d| (RejectReason::InvalidJson, d))
                        .and_then(|()| one.flush().map_err(classify));
                    match result {
                        Ok(Some(b)) if b.num_rows() == 1 => {
                            batches.push(b);
                            rows.push(i);
                        }
                        Ok(_) => {
                            rejects.push(reject(i, RejectReason::InvalidJson, "no JSON object"))
                        }
                        Err((reason, detail)) => rejects.push(reject(i, reason, detail)),
                    }
                }
            }
        }
    }
}

/// A message lost to a bug rather than to its content: dead-lettered with the step that failed.
pub(crate) fn internal(index: usize, step: &str) -> Reject {
    reject(
        index,
        RejectReason::Internal,
        format!("{step} (a chainwatch bug, not bad input: please report it)"),
    )
}

fn reject(index: usize, reason: RejectReason, detail: impl Into<String>) -> Reject {
    Reject {
        index,
        reason,
        detail: detail.into(),
    }
}

/// Feed one payload; it must add exactly one complete JSON value.
fn feed_one(decoder: &mut Decoder, bytes: &[u8]) -> Result<(), String> {
    let before = decoder.len();
    let mut rest = bytes;
    while !rest.is_empty() {
        match decoder.decode(rest) {
            Ok(0) => break,
            Ok(n) => rest = &rest[n..],
            Err(e) => return Err(strip_arrow_prefix(&e.to_string())),
        }
    }
    if decoder.has_partial_record() {
        return Err("truncated JSON: the value is not complete".into());
    }
    match decoder.len() - before {
        1 => Ok(()),
        0 => Err("empty message: no JSON value".into()),
        n => Err(format!(
            "{n} JSON values in one message, expected one object"
        )),
    }
}

/// Map an arrow-json flush error to a reason.
fn classify(e: ArrowError) -> (RejectReason, String) {
    let detail = strip_arrow_prefix(&e.to_string());
    let reason = if detail.contains("as Date32") || detail.contains("as Timestamp") {
        RejectReason::InvalidDate
    } else if detail.starts_with("expected {") || detail.contains("expected { got") {
        RejectReason::InvalidJson
    } else {
        RejectReason::WrongType
    };
    (reason, detail)
}

fn strip_arrow_prefix(s: &str) -> String {
    s.trim_start_matches("Json error: ")
        .trim_start_matches("Parser error: ")
        .to_string()
}

fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Option<RecordBatch> {
    match concat_batches(schema, batches) {
        Ok(b) => Some(b),
        Err(e) => {
            // Every batch has the same schema; this would be a bug, not bad input.
            tracing::error!(error = %e, "Could not concatenate decoded batches.");
            None
        }
    }
}

/// Concatenate the fast path's and arrow-json's rows and put them back in message order
/// (`rows`, the message index of each row, is sorted along).
fn in_message_order(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    rows: &mut Vec<usize>,
) -> Option<RecordBatch> {
    let batch = concat(schema, batches)?;
    let mut order: Vec<u32> = (0..rows.len() as u32).collect();
    order.sort_unstable_by_key(|&r| rows[r as usize]);
    *rows = order.iter().map(|&r| rows[r as usize]).collect();
    match take_record_batch(&batch, &UInt32Array::from(order)) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!(error = %e, "Could not reorder decoded rows.");
            None
        }
    }
}

/// Required and value-checked columns per kind, resolved to indexes once.
struct KindRules {
    required: Vec<(usize, &'static str)>,
    allowed: Vec<(usize, &'static str, &'static [&'static str])>,
}

fn kind_rules() -> &'static HashMap<EventKind, KindRules> {
    static RULES: OnceLock<HashMap<EventKind, KindRules>> = OnceLock::new();
    RULES.get_or_init(|| {
        let schema = event_schema();
        let idx = |name: &str| {
            schema
                .index_of(name)
                .expect("kind fields are in the schema")
        };
        EventKind::ALL
            .iter()
            .map(|&k| {
                let required = k.required().iter().map(|&n| (idx(n), n)).collect();
                let allowed = k
                    .allowed_values()
                    .iter()
                    .map(|&(n, vals)| (idx(n), n, vals))
                    .collect();
                (k, KindRules { required, allowed })
            })
            .collect()
    })
}

/// Row checks arrow-json cannot do: kind, required fields per kind, value sets, signs, ranges.
fn validate(batch: RecordBatch, rows: Vec<usize>, mut rejects: Vec<Reject>) -> Decoded {
    let n = batch.num_rows();
    let mut keep = vec![true; n];
    let kinds = batch.column(col::KIND).as_string::<i32>();
    let rules = kind_rules();
    let common = [
        (col::EVENT_ID, "event_id"),
        (col::KIND, "kind"),
        (col::EVENT_TIME, "event_time"),
        (col::SOURCE, "source"),
    ];
    let non_negative = [
        col::QUANTITY,
        col::UNIT_PRICE,
        col::ON_HAND,
        col::DAILY_DEMAND,
    ];
    let dates = [col::ORDER_DATE, col::PROMISED_DATE];
    let stamps = [col::EVENT_TIME, col::RECEIVED_AT, col::SHIPPED_AT, col::ETA];
    let columns: &[ArrayRef] = batch.columns();

    for row in 0..n {
        let fail = |reason, detail: String| Some((reason, detail));
        let problem = (|| {
            if let Some((_, name)) = common.iter().find(|(c, _)| columns[*c].is_null(row)) {
                return fail(
                    RejectReason::MissingField,
                    format!("missing field '{name}'"),
                );
            }
            let kind_str = kinds.value(row);
            let Ok(kind) = kind_str.parse::<EventKind>() else {
                return fail(
                    RejectReason::UnknownKind,
                    format!("unknown kind '{kind_str}'"),
                );
            };
            let kr = &rules[&kind];
            if let Some((_, name)) = kr.required.iter().find(|(c, _)| columns[*c].is_null(row)) {
                return fail(
                    RejectReason::MissingField,
                    format!("missing field '{name}' required by {kind}"),
                );
            }
            for &(c, name, allowed) in &kr.allowed {
                let v = columns[c].as_string::<i32>().value(row);
                if !allowed.contains(&v) {
                    return fail(
                        RejectReason::InvalidValue,
                        format!(
                            "field '{name}' is '{v}', expected one of {}",
                            allowed.join(", ")
                        ),
                    );
                }
            }
            if kind == EventKind::SupplierConfirmation
                && kinds_status(columns, row) == Some("rescheduled")
                && columns[col::PROMISED_DATE].is_null(row)
            {
                return fail(
                    RejectReason::MissingField,
                    "missing field 'promised_date' required by a rescheduled confirmation".into(),
                );
            }
            for &c in &non_negative {
                let a = columns[c].as_primitive::<Float64Type>();
                if a.is_valid(row) {
                    let v = a.value(row);
                    if !(v >= 0.0 && v.is_finite()) {
                        let name = event_schema().field(c).name().clone();
                        return fail(
                            RejectReason::NegativeQuantity,
                            format!("field '{name}' is {v}, must be >= 0"),
                        );
                    }
                }
            }
            for &c in &dates {
                let a = columns[c].as_primitive::<Date32Type>();
                if a.is_valid(row) && !(MIN_DAY..MAX_DAY).contains(&a.value(row)) {
                    let name = event_schema().field(c).name().clone();
                    return fail(
                        RejectReason::InvalidDate,
                        format!("field '{name}' is outside 2000-01-01..2100-01-01"),
                    );
                }
            }
            for &c in &stamps {
                let a = columns[c].as_primitive::<TimestampMillisecondType>();
                if a.is_valid(row) && !(MIN_MS..MAX_MS).contains(&a.value(row)) {
                    let name = event_schema().field(c).name().clone();
                    return fail(
                        RejectReason::InvalidDate,
                        format!("field '{name}' is outside 2000-01-01..2100-01-01"),
                    );
                }
            }
            None
        })();
        if let Some((reason, detail)) = problem {
            keep[row] = false;
            rejects.push(reject(rows[row], reason, detail));
        }
    }

    if keep.iter().all(|k| *k) {
        return Decoded {
            batch: Some(batch),
            rows,
            rejects,
            ..Decoded::default()
        };
    }
    let mask = BooleanArray::from(keep.clone());
    let kept_rows = rows
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(r, _)| *r)
        .collect::<Vec<_>>();
    match filter_record_batch(&batch, &mask) {
        Ok(b) if b.num_rows() > 0 => Decoded {
            batch: Some(b),
            rows: kept_rows,
            rejects,
            ..Decoded::default()
        },
        Ok(_) => Decoded {
            rejects,
            ..Decoded::default()
        },
        Err(e) => {
            tracing::error!(error = %e, "Could not filter a decoded batch.");
            rejects.extend(kept_rows.iter().map(|&i| internal(i, "could not filter")));
            Decoded {
                rejects,
                ..Decoded::default()
            }
        }
    }
}

fn kinds_status(columns: &[ArrayRef], row: usize) -> Option<&str> {
    let a = columns[col::STATUS].as_string::<i32>();
    a.is_valid(row).then(|| a.value(row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    const GOOD: &str = r#"{"event_id":"e1","kind":"po_line_created","event_time":"2026-03-02T08:15:00Z","source":"erp","po":"PO-1","line":1,"supplier":"S1","part":"P1","site":"D1","quantity":500,"unit_price":12.5,"order_date":"2026-03-02","promised_date":"2026-03-30"}"#;

    fn good(id: &str) -> String {
        GOOD.replace("\"e1\"", &format!("\"{id}\""))
    }

    fn run(msgs: &[&str]) -> Decoded {
        let payloads: Vec<Option<&[u8]>> = msgs.iter().map(|m| Some(m.as_bytes())).collect();
        EventDecoder::new(4096).decode(&payloads)
    }

    fn ids(d: &Decoded) -> Vec<String> {
        let Some(b) = &d.batch else { return vec![] };
        let a = b
            .column(col::EVENT_ID)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        a.iter().map(|v| v.unwrap().to_string()).collect()
    }

    #[test]
    fn what_the_fast_path_declines_is_counted_and_decoded_all_the_same() {
        let escaped = good("e\\u0032");
        let quantity_as_string = good("e3").replace("500", "\"500\"");
        let msgs = [
            good("e1"),
            escaped,
            quantity_as_string,
            "not json".to_string(),
        ];
        let msgs: Vec<&str> = msgs.iter().map(String::as_str).collect();
        let d = run(&msgs);
        assert_eq!(d.declined, 3, "all but the plain event");
        // arrow-json reads the escape, and a number written as a string.
        assert_eq!(ids(&d), ["e1", "e2", "e3"]);
        assert_eq!(d.rejects.len(), 1, "{:?}", d.rejects);
        let payloads: Vec<Option<&[u8]>> = msgs.iter().map(|m| Some(m.as_bytes())).collect();
        let reference = EventDecoder::new(4096).decode_with_arrow_json(&payloads);
        assert_eq!(reference.declined, 0, "no fast path to decline");
        assert_eq!(ids(&reference), ids(&d));
    }

    #[test]
    fn decodes_every_kind_of_the_docs_examples() {
        // The JSON examples in docs/events.md must all decode and validate.
        let docs = include_str!("../../../docs/events.md");
        let mut examples = Vec::new();
        let mut cur = String::new();
        let mut inside = false;
        for line in docs.lines() {
            if line.starts_with("```json") {
                inside = true;
                cur.clear();
            } else if inside && line.starts_with("```") {
                inside = false;
                examples.push(cur.clone());
            } else if inside {
                cur.push_str(line);
            }
        }
        assert_eq!(examples.len(), EventKind::ALL.len());
        let refs: Vec<&str> = examples.iter().map(String::as_str).collect();
        let d = run(&refs);
        assert!(d.rejects.is_empty(), "{:?}", d.rejects);
        assert_eq!(d.batch.unwrap().num_rows(), EventKind::ALL.len());
    }

    #[test]
    fn each_bad_message_is_rejected_with_its_reason_and_the_rest_kept() {
        let cases: Vec<(String, RejectReason)> = vec![
            ("{\"event_id\":".into(), RejectReason::InvalidJson),
            ("not json".into(), RejectReason::InvalidJson),
            ("[1,2]".into(), RejectReason::InvalidJson),
            ("{}{}".into(), RejectReason::InvalidJson),
            ("".into(), RejectReason::InvalidJson),
            (GOOD.replace("500", "\"abc\""), RejectReason::WrongType),
            (
                GOOD.replace("po_line_created", "po_line_deleted"),
                RejectReason::UnknownKind,
            ),
            (
                GOOD.replace(",\"part\":\"P1\"", ""),
                RejectReason::MissingField,
            ),
            (GOOD.replace("500", "-5"), RejectReason::NegativeQuantity),
            (
                GOOD.replace("2026-03-30", "2026-02-30"),
                RejectReason::InvalidDate,
            ),
            (
                GOOD.replace("2026-03-30", "2226-03-30"),
                RejectReason::InvalidDate,
            ),
            (
                GOOD.replace("\"source\":\"erp\",", ""),
                RejectReason::MissingField,
            ),
        ];
        let mut msgs = vec![good("ok-0")];
        for (i, (bad, _)) in cases.iter().enumerate() {
            msgs.push(bad.clone());
            msgs.push(good(&format!("ok-{}", i + 1)));
        }
        let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
        let d = run(&refs);
        let want: Vec<String> = (0..=cases.len()).map(|i| format!("ok-{i}")).collect();
        assert_eq!(ids(&d), want);
        assert_eq!(d.rows, (0..=cases.len()).map(|i| 2 * i).collect::<Vec<_>>());
        let mut rejects = d.rejects.clone();
        rejects.sort_by_key(|r| r.index);
        assert_eq!(rejects.len(), cases.len());
        for (r, (msg, reason)) in rejects.iter().zip(&cases) {
            assert_eq!(r.reason, *reason, "{msg}: {}", r.detail);
        }
        assert!(
            rejects[8].detail.contains("'quantity' is -5"),
            "{}",
            rejects[8].detail
        );
        assert!(
            rejects[7].detail.contains("'part'"),
            "{}",
            rejects[7].detail
        );
    }

    #[test]
    fn invalid_status_and_rescheduled_without_date() {
        let confirm = r#"{"event_id":"c","kind":"supplier_confirmation","event_time":"2026-03-02T08:15:00Z","source":"erp","po":"PO-1","line":1,"supplier":"S1","status":"rescheduled"}"#;
        let wrong = confirm.replace("rescheduled", "maybe");
        let d = run(&[confirm, &wrong]);
        let mut r = d.rejects.clone();
        r.sort_by_key(|r| r.index);
        assert_eq!(r[0].reason, RejectReason::MissingField);
        assert_eq!(r[1].reason, RejectReason::InvalidValue);
        assert!(d.batch.is_none());
    }

    #[test]
    fn nesting_is_measured_outside_strings_up_to_the_limit() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(!too_deep(nested(MAX_DEPTH).as_bytes()));
        assert!(too_deep(nested(MAX_DEPTH + 1).as_bytes()));
        // Many brackets, little depth: the quick count passes them on to the exact scan.
        let wide = format!("[{}]", vec!["{}"; 3 * MAX_DEPTH].join(","));
        assert!(!too_deep(wide.as_bytes()));
        let in_text = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(40), "{".repeat(40));
        assert!(!too_deep(in_text.as_bytes()));
        assert!(!too_deep(GOOD.as_bytes()));
    }

    #[test]
    fn oversized_and_empty_payloads() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(5000));
        let payloads: Vec<Option<&[u8]>> = vec![Some(big.as_bytes()), None, Some(GOOD.as_bytes())];
        let d = EventDecoder::new(4096).decode(&payloads);
        let mut r = d.rejects.clone();
        r.sort_by_key(|r| r.index);
        assert_eq!(r[0].reason, RejectReason::TooLarge);
        assert_eq!(r[1].reason, RejectReason::InvalidJson);
        assert_eq!(d.rows, vec![2]);
    }

    /// Arbitrary bytes and mangled events never panic; every message is accounted for.
    #[test]
    fn garbage_never_panics_and_every_message_is_accounted_for() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_obj = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
        for round in 0..200 {
            let mut msgs: Vec<Vec<u8>> = Vec::new();
            for _ in 0..20 {
                let m = match rng.random_range(0..4) {
                    0 => (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
                    1 => {
                        // A valid event with a few bytes flipped.
                        let mut b = good(&format!("r{round}")).into_bytes();
                        for _ in 0..rng.random_range(1..4) {
                            let i = rng.random_range(0..b.len());
                            b[i] = rng.random();
                        }
                        b
                    }
                    2 => {
                        let b = good("t").into_bytes();
                        b[..rng.random_range(0..b.len())].to_vec()
                    }
                    _ => good(&format!("g{}", rng.random::<u32>())).into_bytes(),
                };
                msgs.push(m);
            }
            msgs.push(deep.clone().into_bytes());
            msgs.push(deep_obj.clone().into_bytes());
            let payloads: Vec<Option<&[u8]>> = msgs.iter().map(|m| Some(m.as_slice())).collect();
            let d = EventDecoder::new(1 << 20).decode(&payloads);
            let mut seen: Vec<usize> = d.rows.clone();
            seen.extend(d.rejects.iter().map(|r| r.index));
            seen.sort_unstable();
            assert_eq!(seen, (0..msgs.len()).collect::<Vec<_>>(), "round {round}");
        }
    }

    #[test]
    fn timestamps_with_offsets_are_normalised_to_utc() {
        let m = GOOD.replace("2026-03-02T08:15:00Z", "2026-03-02T09:15:00+01:00");
        let d = run(&[&m]);
        let b = d.batch.unwrap();
        let t = b
            .column(col::EVENT_TIME)
            .as_primitive::<TimestampMillisecondType>();
        assert_eq!(t.value(0), 1_772_439_300_000);
        assert_eq!(
            b.schema().field(col::EVENT_TIME).data_type(),
            &crate::events::timestamp_type()
        );
    }
}
