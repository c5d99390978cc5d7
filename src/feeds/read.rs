//! Message bytes -> records: decoding, byte-order marks, CSV rows with their lines, JSON records.
//!
//! In: one Kafka payload of a feed and its [`Format`]. Out: the records of the message, each
//! with its number, its physical line (CSV), its own source text and either its values or why it
//! cannot be read (wrong column count, undecodable bytes, not an object); or, when the message as
//! a whole cannot be read (not JSON, no header row), one [`MapReject`] for "row 0".

use std::collections::HashMap;

use encoding_rs::Encoding;
use serde_json::Value;

use super::def::{CsvFormat, Format, Step};
use super::MapReject;
use crate::ingest::decode::RejectReason;

/// The values of one record.
#[derive(Debug)]
pub(crate) enum Values {
    /// A CSV row: one string per column.
    Csv(Vec<String>),
    /// A JSON object.
    Json(Value),
}

/// One record of a message.
#[derive(Debug)]
pub(crate) struct Record {
    /// 1-based number in the message.
    pub row: usize,
    /// CSV: physical line where the record starts.
    pub line: Option<u64>,
    /// The record's source text.
    pub raw: Vec<u8>,
    /// Its values, or why it cannot be read; `Ok(None)` for a blank CSV row (skipped).
    pub values: Result<Option<Values>, MapReject>,
}

/// A message split into records.
#[derive(Debug, Default)]
pub(crate) struct Message {
    /// CSV: column name -> index (the first of duplicate names wins).
    pub columns: HashMap<String, usize>,
    /// The records in order.
    pub records: Vec<Record>,
}

pub(crate) fn invalid(reason: RejectReason, detail: impl Into<String>) -> MapReject {
    MapReject {
        reason,
        field: None,
        detail: detail.into(),
    }
}

/// Splits a payload into records; `Err` when the message as a whole cannot be read.
pub(crate) fn read_message(format: &Format, payload: &[u8]) -> Result<Message, MapReject> {
    match format {
        Format::Csv(csv) => read_csv(csv, payload),
        Format::Json(json) => read_json(json.records.as_ref().map(|p| p.steps.as_slice()), payload),
    }
}

/// The encoding named by a byte-order mark, else `default`, and the payload after the mark.
fn sniff<'a>(payload: &'a [u8], default: &'static Encoding) -> (&'static Encoding, &'a [u8]) {
    match Encoding::for_bom(payload) {
        Some((enc, len)) => (enc, &payload[len..]),
        None => (default, payload),
    }
}

/// Byte offsets where lines start after the first: after each LF, CRLF or bare CR.
fn line_starts(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\r' if b.get(i + 1) == Some(&b'\n') => {
                out.push(i + 2);
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.push(i + 1),
            _ => {}
        }
        i += 1;
    }
    out
}

fn read_csv(format: &CsvFormat, payload: &[u8]) -> Result<Message, MapReject> {
    let (encoding, body) = sniff(payload, format.encoding);
    let (text, had_errors) = encoding.decode_without_bom_handling(body);
    let starts = line_starts(&text);
    let line_of = |byte: usize| 1 + starts.partition_point(|s| *s <= byte) as u64;
    // flexible: a row with the wrong number of columns is rejected alone, not the whole message.
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(format.delimiter)
        .quote(format.quote)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut message = Message::default();
    let mut names: Option<Vec<String>> = (!format.header).then(|| format.columns.clone());
    let mut record = csv::ByteRecord::new();
    let mut row = 0;
    loop {
        let before = reader.position().byte();
        let result = reader.read_byte_record(&mut record);
        let after = reader.position().byte();
        let mut start = record
            .position()
            .map(|p| p.byte())
            .unwrap_or(before)
            .min(after) as usize;
        let bytes = text.as_bytes();
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        let end = (after as usize).min(bytes.len()).max(start);
        let raw = text
            .get(start..end)
            .unwrap_or_default()
            .trim_end_matches(['\r', '\n'])
            .as_bytes()
            .to_vec();
        match result {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                if after <= before {
                    break;
                }
                row += 1;
                message.records.push(Record {
                    row,
                    line: Some(line_of(start)),
                    raw,
                    values: Err(invalid(
                        RejectReason::InvalidRecord,
                        format!("unreadable CSV row: {e}"),
                    )),
                });
                continue;
            }
        }
        let values: Vec<String> = record
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let Some(cols) = &names else {
            let header: Vec<String> = values.iter().map(|v| v.trim().to_string()).collect();
            for (i, name) in header.iter().enumerate() {
                message.columns.entry(name.clone()).or_insert(i);
            }
            names = Some(header);
            continue;
        };
        row += 1;
        let line = Some(line_of(start));
        let values = if had_errors && values.iter().any(|v| v.contains('\u{FFFD}')) {
            Err(invalid(
                RejectReason::InvalidRecord,
                format!("the row holds bytes that are not valid {}", encoding.name()),
            ))
        } else if values.iter().all(|v| v.trim().is_empty()) {
            Ok(None)
        } else if values.len() != cols.len() {
            Err(invalid(
                RejectReason::InvalidRecord,
                format!(
                    "{} columns, expected {} ({})",
                    values.len(),
                    cols.len(),
                    if format.header {
                        "as in the header row"
                    } else {
                        "format.columns"
                    }
                ),
            ))
        } else {
            Ok(Some(Values::Csv(values)))
        };
        message.records.push(Record {
            row,
            line,
            raw,
            values,
        });
    }
    match names {
        Some(_) if !format.header => {
            for (i, name) in format.columns.iter().enumerate() {
                message.columns.entry(name.clone()).or_insert(i);
            }
            Ok(message)
        }
        Some(_) => Ok(message),
        None => Err(invalid(
            RejectReason::InvalidRecord,
            "no header row: the message is empty",
        )),
    }
}

/// The value at `steps` inside `v`.
pub(crate) fn walk<'a>(v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(v, |v, step| match step {
        Step::Key(k) => v.as_object()?.get(k),
        Step::Index(i) => v.as_array()?.get(*i),
    })
}

fn read_json(records: Option<&[Step]>, payload: &[u8]) -> Result<Message, MapReject> {
    let (encoding, body) = sniff(payload, encoding_rs::UTF_8);
    let parsed = if encoding == encoding_rs::UTF_8 {
        serde_json::from_slice::<Value>(body)
    } else {
        let (text, _) = encoding.decode_without_bom_handling(body);
        serde_json::from_str::<Value>(&text)
    };
    let root = parsed.map_err(|e| invalid(RejectReason::InvalidJson, format!("not JSON: {e}")))?;
    let target = match records {
        Some(steps) => walk(&root, steps).ok_or_else(|| {
            invalid(
                RejectReason::InvalidRecord,
                "the message has no value at format.records",
            )
        })?,
        None => &root,
    };
    let items: Vec<&Value> = match target {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![target],
        other => {
            return Err(invalid(
                RejectReason::InvalidJson,
                format!(
                    "expected an object or an array of objects, got {}",
                    json_type(other)
                ),
            ))
        }
    };
    let records = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| Record {
            row: i + 1,
            line: None,
            raw: serde_json::to_vec(item).unwrap_or_default(),
            values: match item {
                Value::Object(_) => Ok(Some(Values::Json(item.clone()))),
                other => Err(invalid(
                    RejectReason::InvalidRecord,
                    format!("the record is {}, not an object", json_type(other)),
                )),
            },
        })
        .collect();
    Ok(Message {
        columns: HashMap::new(),
        records,
    })
}

/// "a string", "an array", ... for messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(delim: u8) -> CsvFormat {
        CsvFormat {
            delimiter: delim,
            quote: b'"',
            header: true,
            columns: Vec::new(),
            encoding: encoding_rs::UTF_8,
        }
    }

    fn lines(m: &Message) -> Vec<(usize, Option<u64>, String)> {
        m.records
            .iter()
            .map(|r| (r.row, r.line, String::from_utf8_lossy(&r.raw).into_owned()))
            .collect()
    }

    /// The csv crate's default terminator treats a bare CR as a line end; lines stay right with
    /// LF, CRLF, bare CR, mixed, quoted newlines and blank lines.
    #[test]
    fn line_endings_and_lines() {
        let text = "a;b\r1;x\r\n2;\"y\rz\"\n\n3;w\r4;v";
        let m = read_csv(&csv(b';'), text.as_bytes()).unwrap();
        assert_eq!(
            lines(&m),
            vec![
                (1, Some(2), "1;x".to_string()),
                (2, Some(3), "2;\"y\rz\"".to_string()),
                (3, Some(6), "3;w".to_string()),
                (4, Some(7), "4;v".to_string()),
            ]
        );
        let Ok(Some(Values::Csv(v))) = &m.records[1].values else {
            panic!("{:?}", m.records[1].values)
        };
        assert_eq!(v, &vec!["2".to_string(), "y\rz".to_string()]);
        assert_eq!(m.columns.get("b"), Some(&1));
    }

    #[test]
    fn bom_wrong_counts_and_undecodable_bytes() {
        let mut bytes = b"\xEF\xBB\xBFa,b\n1,2\n1,2,3\n\xFF,2\n,\n".to_vec();
        bytes.extend_from_slice(b"5,6");
        let m = read_csv(&csv(b','), &bytes).unwrap();
        assert_eq!(
            m.columns.get("a"),
            Some(&0),
            "the BOM is not part of the first name"
        );
        let reasons: Vec<_> = m
            .records
            .iter()
            .map(|r| match &r.values {
                Ok(Some(_)) => "ok".to_string(),
                Ok(None) => "blank".to_string(),
                Err(e) => e.detail.clone(),
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                "ok",
                "3 columns, expected 2 (as in the header row)",
                "the row holds bytes that are not valid UTF-8",
                "blank",
                "ok"
            ]
        );
    }

    #[test]
    fn utf16_with_bom_and_windows_1252() {
        let text = "Name,Qty\nGießerei,5\n";
        let mut utf16 = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        let m = read_csv(&csv(b','), &utf16).unwrap();
        assert_eq!(lines(&m), vec![(1, Some(2), "Gießerei,5".to_string())]);
        let mut f = csv(b',');
        f.encoding = encoding_rs::WINDOWS_1252;
        let m = read_csv(&f, b"Name,Qty\nGie\xDFerei \xD8 12,5\n").unwrap();
        assert_eq!(lines(&m), vec![(1, Some(2), "Gießerei Ø 12,5".to_string())]);
    }

    #[test]
    fn whole_message_failures_are_row_zero() {
        assert!(read_csv(&csv(b','), b"").is_err());
        assert!(read_json(None, b"{not json").is_err());
        assert!(read_json(None, b"42").is_err());
        let steps = vec![Step::Key("a".into())];
        assert!(read_json(Some(&steps), b"{\"b\":[]}").is_err());
        let m = read_json(Some(&steps), b"{\"a\":[{\"x\":1}, 3]}").unwrap();
        assert_eq!(m.records.len(), 2);
        assert!(m.records[1].values.is_err());
        assert_eq!(m.records[0].raw, b"{\"x\":1}");
    }
}
