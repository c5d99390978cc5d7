//! The dry run: a feed definition against a sample message, before it goes live.
//!
//! In: a checked [`Feed`] and a sample payload (one message: a CSV file or a JSON document).
//! Out: a [`ValidationReport`]: records read, mapped, skipped and rejected, events per kind,
//! every rejected record with its reason, the coverage of every canonical field (from the
//! source, a default, a const, or missing) and the range of event times. The events are also
//! run through [`EventDecoder`], the same check the live ingest applies, so a definition that
//! passes here produces nothing the pipeline dead-letters for its shape.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::map::{self, Origin};
use super::{Feed, MapReject};
use crate::ingest::decode::EventDecoder;

/// What a sample message gives with a feed definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationReport {
    /// The feed's name.
    pub feed: String,
    /// Records in the message (0 when it could not be read at all).
    pub records: usize,
    /// Records that produced events that all pass the decoder.
    pub mapped: usize,
    /// Records no mapping's `when` matched (and blank CSV rows).
    pub skipped: usize,
    /// Rejected records (including "row 0": the message could not be read).
    pub rejected: usize,
    /// Events produced per kind (of mapped records).
    pub events: BTreeMap<String, usize>,
    /// Rejections per reason.
    pub reasons: BTreeMap<String, usize>,
    /// Every rejected record, in order.
    pub rejects: Vec<RejectedRecord>,
    /// Per (kind, canonical field) where the values came from.
    pub coverage: Vec<FieldCoverage>,
    /// Earliest event time seen (RFC 3339).
    pub first_event_time: Option<String>,
    /// Latest event time seen (RFC 3339).
    pub last_event_time: Option<String>,
}

/// One rejected record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedRecord {
    /// 1-based record number (0: the whole message).
    pub row: usize,
    /// CSV physical line.
    pub line: Option<u64>,
    /// The reject reason code (`invalid_date`, ...).
    pub reason: String,
    /// The canonical field at fault.
    pub field: Option<String>,
    /// What and where.
    pub detail: String,
}

/// Where the values of one canonical field of one kind came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldCoverage {
    /// The event kind.
    pub kind: String,
    /// The canonical field.
    pub field: String,
    /// Events whose value came from the record.
    pub source: usize,
    /// Events that got the spec's `default`.
    pub default: usize,
    /// Events that got a `const`.
    #[serde(rename = "const")]
    pub const_: usize,
    /// Events without the value (optional fields only).
    pub missing: usize,
}

/// Runs `feed` over `sample`, one message.
pub fn validate(feed: &Feed, sample: &[u8]) -> ValidationReport {
    let traced = map::map_message(feed, sample);
    let mut report = ValidationReport {
        feed: feed.name.clone(),
        records: traced.iter().filter(|t| t.record.row > 0).count(),
        mapped: 0,
        skipped: 0,
        rejected: 0,
        events: BTreeMap::new(),
        reasons: BTreeMap::new(),
        rejects: Vec::new(),
        coverage: Vec::new(),
        first_event_time: None,
        last_event_time: None,
    };
    // The decoder's verdict on every event, one micro-batch for the whole sample.
    let payloads: Vec<Option<&[u8]>> = traced
        .iter()
        .filter_map(|t| t.record.result.as_ref().ok())
        .flat_map(|events| events.iter().map(|e| Some(e.as_slice())))
        .collect();
    let decoded = EventDecoder::new(usize::MAX).decode(&payloads);
    let mut decoder_rejects: BTreeMap<usize, MapReject> = BTreeMap::new();
    for r in decoded.rejects {
        decoder_rejects
            .entry(r.index)
            .or_insert_with(|| map::decoder_reject(r.reason, r.detail));
    }

    let mut coverage: BTreeMap<(String, &'static str), FieldCoverage> = BTreeMap::new();
    let mut first = None;
    let mut last = None;
    let mut index = 0;
    for t in &traced {
        let outcome = match &t.record.result {
            Err(e) => Err(e.clone()),
            Ok(events) => {
                let range = index..index + events.len();
                index += events.len();
                match range.clone().find_map(|i| decoder_rejects.get(&i)) {
                    Some(e) => Err(e.clone()),
                    None => Ok(events.len()),
                }
            }
        };
        match outcome {
            Err(e) => {
                report.rejected += 1;
                *report
                    .reasons
                    .entry(e.reason.as_str().to_string())
                    .or_default() += 1;
                report.rejects.push(RejectedRecord {
                    row: t.record.row,
                    line: t.record.line,
                    reason: e.reason.as_str().to_string(),
                    field: e.field.clone(),
                    detail: e.detail.clone(),
                });
            }
            Ok(0) => report.skipped += 1,
            Ok(_) => {
                report.mapped += 1;
                for ev in &t.events {
                    *report
                        .events
                        .entry(ev.kind.as_str().to_string())
                        .or_default() += 1;
                    if let Some(time) = ev.event_time {
                        first = Some(
                            first.map_or(time, |f: chrono::DateTime<chrono::Utc>| f.min(time)),
                        );
                        last =
                            Some(last.map_or(time, |l: chrono::DateTime<chrono::Utc>| l.max(time)));
                    }
                    for (field, origin) in &ev.origins {
                        let c = coverage
                            .entry((ev.kind.as_str().to_string(), field))
                            .or_insert_with(|| FieldCoverage {
                                kind: ev.kind.as_str().to_string(),
                                field: field.to_string(),
                                source: 0,
                                default: 0,
                                const_: 0,
                                missing: 0,
                            });
                        match origin {
                            Origin::Source => c.source += 1,
                            Origin::Default => c.default += 1,
                            Origin::Const => c.const_ += 1,
                            Origin::Missing => c.missing += 1,
                        }
                    }
                }
            }
        }
    }
    report.coverage = coverage.into_values().collect();
    report.first_event_time = first.map(|t| map::format_timestamp(&t));
    report.last_event_time = last.map(|t| map::format_timestamp(&t));
    report
}

/// Reads the sample file and runs [`validate`].
pub fn validate_file(feed: &Feed, sample: &Path) -> std::io::Result<ValidationReport> {
    let bytes = std::fs::read(sample)?;
    Ok(validate(feed, &bytes))
}

impl ValidationReport {
    /// True when every record was mapped or skipped.
    pub fn is_clean(&self) -> bool {
        self.rejected == 0
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "feed {}", self.feed)?;
        writeln!(
            f,
            "records: {} read, {} mapped, {} skipped (no mapping matched), {} rejected",
            self.records, self.mapped, self.skipped, self.rejected
        )?;
        let events: Vec<String> = self
            .events
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let total: usize = self.events.values().sum();
        writeln!(
            f,
            "events: {total} ({})",
            if events.is_empty() {
                "none".into()
            } else {
                events.join(", ")
            }
        )?;
        match (&self.first_event_time, &self.last_event_time) {
            (Some(a), Some(b)) => writeln!(f, "event_time: {a} .. {b}")?,
            _ => writeln!(f, "event_time: none")?,
        }
        if !self.rejects.is_empty() {
            let reasons: Vec<String> = self
                .reasons
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "\nrejected ({}):", reasons.join(", "))?;
            for r in &self.rejects {
                let at = match r.line {
                    Some(l) => format!("row {} (line {l})", r.row),
                    None => format!("row {}", r.row),
                };
                match &r.field {
                    Some(field) => writeln!(f, "  {at}: {}: {field}: {}", r.reason, r.detail)?,
                    None => writeln!(f, "  {at}: {}: {}", r.reason, r.detail)?,
                }
            }
        }
        if !self.coverage.is_empty() {
            writeln!(
                f,
                "\nfield coverage (events: source / default / const / missing):"
            )?;
            let width = self
                .coverage
                .iter()
                .map(|c| c.kind.len() + c.field.len() + 1)
                .max()
                .unwrap_or(0);
            for c in &self.coverage {
                let name = format!("{}.{}", c.kind, c.field);
                writeln!(
                    f,
                    "  {name:<width$}  {:>5} / {:>5} / {:>5} / {:>5}",
                    c.source, c.default, c.const_, c.missing
                )?;
            }
        }
        Ok(())
    }
}
