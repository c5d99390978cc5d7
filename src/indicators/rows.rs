//! Indicator rows: a result batch turned into labels (string columns) and values (numeric
//! columns), and a row compared by reference for alert keys.

use super::*;

/// One output row of an indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorRow {
    /// String columns, by name (null becomes "").
    pub labels: BTreeMap<String, String>,
    /// Numeric columns as f64, by name (null becomes None).
    pub values: BTreeMap<String, Option<f64>>,
}

/// Every column of one indicator row as JSON, for alert templates. Built only for the rows a
/// template reads (the alerts), not for every row of every evaluation.
#[derive(Debug, Clone, Copy)]
pub enum RowRef<'a> {
    /// Row `index` of an indicator's result batch.
    Batch(&'a RecordBatch, usize),
    /// A row given as JSON already (tests, tools).
    Json(&'a BTreeMap<String, serde_json::Value>),
}

impl RowRef<'_> {
    /// The row's columns by name: labels as strings (null becomes ""), numbers as JSON numbers
    /// (null or not finite becomes null), anything else as its display text.
    pub fn json(&self) -> std::borrow::Cow<'_, BTreeMap<String, serde_json::Value>> {
        match *self {
            RowRef::Json(map) => std::borrow::Cow::Borrowed(map),
            RowRef::Batch(batch, index) => std::borrow::Cow::Owned(row_json(batch, index)),
        }
    }

    /// A hash of the row's values: rows with equal values hash equally, in this process.
    /// Straight from the Arrow columns (no JSON built): the alert engine asks it of every
    /// alerted row in every evaluation, to know whether its annotations need rendering again.
    pub fn content_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match *self {
            RowRef::Batch(batch, index) if index < batch.num_rows() => {
                let columns: Vec<_> = batch.columns().iter().map(|c| c.slice(index, 1)).collect();
                let mut hashes = [0u64];
                let state = datafusion::common::hash_utils::RandomState::with_seed(0);
                match datafusion::common::hash_utils::create_hashes(&columns, &state, &mut hashes) {
                    Ok(_) => hashes[0].hash(&mut h),
                    // A column type the hasher does not know: hash its JSON instead.
                    Err(_) => hash_json(&row_json(batch, index), &mut h),
                }
                // The column names too (templates name them); no allocation, unlike the
                // schema's own hash, and this runs for every alerted row.
                for f in batch.schema_ref().fields() {
                    f.name().hash(&mut h);
                }
            }
            RowRef::Batch(..) => {}
            RowRef::Json(map) => hash_json(map, &mut h),
        }
        h.finish()
    }
}

/// Feed a row's JSON to a hasher.
fn hash_json(row: &BTreeMap<String, serde_json::Value>, h: &mut impl std::hash::Hasher) {
    /// Serialized bytes into the hasher.
    struct HashWriter<'a, H>(&'a mut H);
    impl<H: std::hash::Hasher> std::io::Write for HashWriter<'_, H> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // Writing to a hasher cannot fail; a failure would only cost a render.
    let _ = serde_json::to_writer(HashWriter(h), row);
}

impl PartialEq for RowRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (RowRef::Batch(a, i), RowRef::Batch(b, j)) => std::ptr::eq(*a, *b) && i == j,
            (RowRef::Json(a), RowRef::Json(b)) => a == b,
            _ => false,
        }
    }
}

/// Turn a result batch into rows: labels and numeric values.
pub fn rows_of(batch: &RecordBatch) -> Vec<IndicatorRow> {
    let n = batch.num_rows();
    let schema = batch.schema();
    let mut rows: Vec<IndicatorRow> = (0..n)
        .map(|_| IndicatorRow {
            labels: BTreeMap::new(),
            values: BTreeMap::new(),
        })
        .collect();
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let column = batch.column(i);
        if is_label(field.data_type()) {
            let Ok(strings) = cast(column, &DataType::Utf8) else {
                continue;
            };
            let strings = strings.as_string::<i32>();
            for (r, row) in rows.iter_mut().enumerate() {
                let v = if strings.is_valid(r) {
                    strings.value(r)
                } else {
                    ""
                };
                row.labels.insert(name.clone(), v.to_string());
            }
        } else if is_numeric(field.data_type()) {
            let Ok(floats) = cast(column, &DataType::Float64) else {
                continue;
            };
            let floats = floats.as_primitive::<Float64Type>();
            for (r, row) in rows.iter_mut().enumerate() {
                row.values
                    .insert(name.clone(), floats.is_valid(r).then(|| floats.value(r)));
            }
        }
    }
    rows
}

/// Row `r` of `batch` with every column as JSON (see [`RowRef::json`]).
pub fn row_json(batch: &RecordBatch, r: usize) -> BTreeMap<String, serde_json::Value> {
    let mut row = BTreeMap::new();
    if r >= batch.num_rows() {
        return row;
    }
    let opts = FormatOptions::default().with_null("");
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let column = column.slice(r, 1);
        let json = if is_label(field.data_type()) {
            let Ok(strings) = cast(&column, &DataType::Utf8) else {
                continue;
            };
            let strings = strings.as_string::<i32>();
            serde_json::Value::from(if strings.is_valid(0) {
                strings.value(0)
            } else {
                ""
            })
        } else if is_numeric(field.data_type()) {
            let Ok(floats) = cast(&column, &DataType::Float64) else {
                continue;
            };
            let floats = floats.as_primitive::<Float64Type>();
            floats
                .is_valid(0)
                .then(|| floats.value(0))
                .and_then(serde_json::Number::from_f64)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        } else if let Ok(fmt) = ArrayFormatter::try_new(column.as_ref(), &opts) {
            if column.is_valid(0) {
                serde_json::Value::from(fmt.value(0).to_string())
            } else {
                serde_json::Value::Null
            }
        } else {
            continue;
        };
        row.insert(field.name().clone(), json);
    }
    row
}
