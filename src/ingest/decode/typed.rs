//! The decoder's fast path: a payload that is a plain event object -> one row of Arrow columns.
//!
//! In: one payload at a time. Out: its row appended to the column builders, or `false` when
//! the fast path does not take it; [`Columns::finish`] turns the rows into a [`RecordBatch`]
//! in [`event_schema`].
//!
//! The payload's UTF-8 is checked once (simdutf8), serde_json deserializes it into a struct
//! that borrows its strings, and the values go straight into Arrow builders: 1.07-1.26x the
//! rate of arrow-json's tape decoder on the simulator's events, depending on the CPU
//! (docs/benchmarks.md, "Fifteenth session" and "Eighteenth session"). It takes only what it
//! decodes exactly as arrow-json does, and declines the rest before anything is appended:
//! strings with escapes (they cannot be borrowed), a number written as a string, a timestamp
//! as a number, a duplicate key, a top-level value that is not an object, a date or timestamp
//! that does not parse, invalid UTF-8, anything that is not valid JSON. The caller hands what
//! it declines to arrow-json, which accepts it or rejects it with its reason, so the outcome
//! for every payload is arrow-json's (a property test compares the two paths).

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    StructBuilder, TimestampMillisecondBuilder,
};
use arrow::compute::kernels::cast_utils::{string_to_datetime, Parser};
use arrow::datatypes::{Date32Type, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::events::{po_line_item, po_line_ref_fields, timestamp_type};

/// One event as written, every field optional (which ones a kind needs is checked after
/// decoding, as for arrow-json's rows). Field order is the schema's.
#[derive(Deserialize)]
struct Raw<'a> {
    event_id: Option<&'a str>,
    kind: Option<&'a str>,
    event_time: Option<&'a str>,
    source: Option<&'a str>,
    po: Option<&'a str>,
    line: Option<i64>,
    supplier: Option<&'a str>,
    part: Option<&'a str>,
    site: Option<&'a str>,
    quantity: Option<f64>,
    unit_price: Option<f64>,
    order_date: Option<&'a str>,
    promised_date: Option<&'a str>,
    status: Option<&'a str>,
    received_at: Option<&'a str>,
    on_hand: Option<f64>,
    daily_demand: Option<f64>,
    movement: Option<&'a str>,
    shipment: Option<&'a str>,
    #[serde(borrow)]
    po_lines: Option<Vec<PoRef<'a>>>,
    origin: Option<&'a str>,
    destination: Option<&'a str>,
    carrier: Option<&'a str>,
    mode: Option<&'a str>,
    shipped_at: Option<&'a str>,
    eta: Option<&'a str>,
    location: Option<&'a str>,
    reason_code: Option<&'a str>,
}

/// An element of `po_lines`. Deserialized from a JSON object only: a derived impl would also
/// take an array (`["PO-1", 1]`), which arrow-json rejects.
struct PoRef<'a> {
    po: Option<&'a str>,
    line: Option<i64>,
}

impl<'de: 'a, 'a> Deserialize<'de> for PoRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = PoRef<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object with po and line")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<PoRef<'a>, M::Error> {
                let (mut po, mut line) = (None, None);
                while let Some(key) = map.next_key::<&'de str>()? {
                    match key {
                        "po" if po.is_none() => po = Some(map.next_value::<Option<&'a str>>()?),
                        "line" if line.is_none() => line = Some(map.next_value::<Option<i64>>()?),
                        "po" | "line" => return Err(serde::de::Error::duplicate_field("po_lines")),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(PoRef {
                    po: po.flatten(),
                    line: line.flatten(),
                })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The column builders of one micro-batch's fast-path rows.
pub(super) struct Columns {
    strings: [StringBuilder; 16],
    stamps: [TimestampMillisecondBuilder; 4],
    numbers: [Float64Builder; 4],
    dates: [Date32Builder; 2],
    line: Int64Builder,
    po_lines: ListBuilder<StructBuilder>,
    rows: usize,
}

fn timestamp(s: Option<&str>) -> Result<Option<i64>, ()> {
    s.map(|s| {
        string_to_datetime(&chrono::Utc, s)
            .map(|d| d.timestamp_millis())
            .map_err(|_| ())
    })
    .transpose()
}

fn date(s: Option<&str>) -> Result<Option<i32>, ()> {
    s.map(|s| Date32Type::parse(s).ok_or(())).transpose()
}

impl Columns {
    pub(super) fn with_capacity(rows: usize) -> Self {
        Columns {
            strings: std::array::from_fn(|_| StringBuilder::with_capacity(rows, rows * 8)),
            stamps: std::array::from_fn(|_| {
                TimestampMillisecondBuilder::with_capacity(rows).with_data_type(timestamp_type())
            }),
            numbers: std::array::from_fn(|_| Float64Builder::with_capacity(rows)),
            dates: std::array::from_fn(|_| Date32Builder::with_capacity(rows)),
            line: Int64Builder::with_capacity(rows),
            po_lines: ListBuilder::new(StructBuilder::from_fields(po_line_ref_fields(), 0))
                .with_field(po_line_item()),
            rows: 0,
        }
    }

    /// Rows appended so far.
    pub(super) fn len(&self) -> usize {
        self.rows
    }

    /// Append the payload's row; `false` (nothing appended) when the fast path declines it.
    pub(super) fn push(&mut self, bytes: &[u8]) -> bool {
        // serde would read a struct from an array too; arrow-json takes objects only.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return false;
        }
        // One SIMD pass over the payload; serde_json's `str` reader then skips the UTF-8 check
        // of every string it reads. Invalid UTF-8 goes to arrow-json, which says why.
        let Ok(text) = simdutf8::basic::from_utf8(bytes) else {
            return false;
        };
        let Ok(raw) = serde_json::from_str::<Raw>(text) else {
            return false;
        };
        // Everything that can fail before anything is appended: a row is all or nothing.
        let (Ok(event_time), Ok(received_at), Ok(shipped_at), Ok(eta)) = (
            timestamp(raw.event_time),
            timestamp(raw.received_at),
            timestamp(raw.shipped_at),
            timestamp(raw.eta),
        ) else {
            return false;
        };
        let (Ok(order_date), Ok(promised_date)) = (date(raw.order_date), date(raw.promised_date))
        else {
            return false;
        };

        // Schema order within each type (crate::events::event_schema), as `finish` takes them.
        for (b, v) in self.strings.iter_mut().zip([
            raw.event_id,
            raw.kind,
            raw.source,
            raw.po,
            raw.supplier,
            raw.part,
            raw.site,
            raw.status,
            raw.movement,
            raw.shipment,
            raw.origin,
            raw.destination,
            raw.carrier,
            raw.mode,
            raw.location,
            raw.reason_code,
        ]) {
            b.append_option(v);
        }
        for (b, v) in self
            .stamps
            .iter_mut()
            .zip([event_time, received_at, shipped_at, eta])
        {
            b.append_option(v);
        }
        for (b, v) in self.numbers.iter_mut().zip([
            raw.quantity,
            raw.unit_price,
            raw.on_hand,
            raw.daily_demand,
        ]) {
            b.append_option(v);
        }
        for (b, v) in self.dates.iter_mut().zip([order_date, promised_date]) {
            b.append_option(v);
        }
        self.line.append_option(raw.line);
        match raw.po_lines {
            None => self.po_lines.append(false),
            Some(refs) => {
                let items = self.po_lines.values();
                for r in refs {
                    append_ref(items, r);
                }
                self.po_lines.append(true);
            }
        }
        self.rows += 1;
        true
    }

    /// The rows appended so far as a batch in `schema` (the event schema); the builders are
    /// left empty.
    pub(super) fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
        let mut s = self
            .strings
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut t = self
            .stamps
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut n = self
            .numbers
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut d = self
            .dates
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let next = |it: &mut dyn Iterator<Item = ArrayRef>| {
            it.next()
                .ok_or_else(|| ArrowError::SchemaError("fast-path columns out of step".into()))
        };
        // Schema order (crate::events::event_schema).
        let columns = vec![
            next(&mut s)?, // event_id
            next(&mut s)?, // kind
            next(&mut t)?, // event_time
            next(&mut s)?, // source
            next(&mut s)?, // po
            Arc::new(self.line.finish()),
            next(&mut s)?, // supplier
            next(&mut s)?, // part
            next(&mut s)?, // site
            next(&mut n)?, // quantity
            next(&mut n)?, // unit_price
            next(&mut d)?, // order_date
            next(&mut d)?, // promised_date
            next(&mut s)?, // status
            next(&mut t)?, // received_at
            next(&mut n)?, // on_hand
            next(&mut n)?, // daily_demand
            next(&mut s)?, // movement
            next(&mut s)?, // shipment
            Arc::new(self.po_lines.finish()),
            next(&mut s)?, // origin
            next(&mut s)?, // destination
            next(&mut s)?, // carrier
            next(&mut s)?, // mode
            next(&mut t)?, // shipped_at
            next(&mut t)?, // eta
            next(&mut s)?, // location
            next(&mut s)?, // reason_code
        ];
        self.rows = 0;
        RecordBatch::try_new(schema.clone(), columns)
    }
}

fn append_ref(items: &mut StructBuilder, r: PoRef<'_>) {
    if let Some(b) = items.field_builder::<StringBuilder>(0) {
        b.append_option(r.po);
    }
    if let Some(b) = items.field_builder::<Int64Builder>(1) {
        b.append_option(r.line);
    }
    items.append(true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event_schema;
    use crate::ingest::decode::EventDecoder;
    use crate::sim::{SimConfig, Simulator};

    /// Every event the simulator writes (all ten kinds, shipments with `po_lines`) takes the
    /// fast path, and the batch equals arrow-json's.
    #[test]
    fn the_simulators_events_take_the_fast_path_and_decode_as_arrow_json_does() {
        let mut sim = Simulator::new(SimConfig::default());
        let until = sim.now() + chrono::Duration::days(20);
        let payloads: Vec<Vec<u8>> = sim
            .run_until(until)
            .into_iter()
            .map(|e| e.payload)
            .collect();
        assert!(payloads.len() > 1000, "{}", payloads.len());
        let mut columns = Columns::with_capacity(payloads.len());
        for p in &payloads {
            assert!(columns.push(p), "declined: {}", String::from_utf8_lossy(p));
        }
        let fast = columns.finish(&event_schema()).expect("batch");
        let slices: Vec<Option<&[u8]>> = payloads.iter().map(|p| Some(p.as_slice())).collect();
        let reference = EventDecoder::new(1 << 20).decode_with_arrow_json(&slices);
        assert!(reference.rejects.is_empty(), "{:?}", reference.rejects);
        assert_eq!(Some(fast), reference.batch);
    }

    #[test]
    fn what_arrow_json_reads_differently_is_declined() {
        let good = r#"{"event_id":"e1","kind":"shipment_dispatched","event_time":"2026-03-02T08:15:00Z","source":"tms","shipment":"SH-1","po_lines":[{"po":"PO-1","line":1}]}"#;
        let mut columns = Columns::with_capacity(8);
        assert!(columns.push(good.as_bytes()));
        for declined in [
            good.replace("\"e1\"", "\"e\\u0031\""),       // an escape
            good.replace("\"line\":1", "\"line\":\"1\""), // a number as a string
            good.replace("\"2026-03-02T08:15:00Z\"", "1772439300000"), // a timestamp as a number
            good.replace("{\"po\":\"PO-1\",\"line\":1}", "[\"PO-1\",1]"), // a struct as an array
            good.replace("\"source\":\"tms\"", "\"source\":\"tms\",\"source\":\"x\""), // a duplicate
            good.replace("2026-03-02T08", "2026-02-30T08"), // no such day
            format!("[{good}]"),
            // serde reads a struct from an array of its fields in order.
            format!("[\"e1\",\"po_line_cancelled\",{}]", ["null"; 26].join(",")),
            format!("{good} {good}"),
        ] {
            assert!(!columns.push(declined.as_bytes()), "{declined}");
        }
        // Invalid UTF-8 in a string (the one check made on the whole payload, before serde).
        let mut bad_utf8 = good.as_bytes().to_vec();
        let at = good.find("tms").expect("source");
        bad_utf8[at] = 0xFF;
        assert!(!columns.push(&bad_utf8));
        assert_eq!(columns.len(), 1, "nothing appended for a declined payload");
        let batch = columns.finish(&event_schema()).expect("batch");
        assert_eq!(batch.num_rows(), 1);

        // The decoder hands it to arrow-json, whose outcome it is: rejected as non-UTF-8.
        let payloads = [Some(good.as_bytes()), Some(bad_utf8.as_slice())];
        let decoded = EventDecoder::new(4096).decode(&payloads);
        let reference = EventDecoder::new(4096).decode_with_arrow_json(&payloads);
        assert_eq!(decoded.declined, 1);
        assert_eq!(decoded.batch, reference.batch);
        assert!(
            decoded
                .rejects
                .iter()
                .any(|r| r.index == 1 && r.detail.contains("UTF-8")),
            "{:?}",
            decoded.rejects
        );
        assert_eq!(
            format!("{:?}", decoded.rejects),
            format!("{:?}", reference.rejects)
        );
    }
}
