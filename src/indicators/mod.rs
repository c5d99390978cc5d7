//! Indicators: DataFusion SQL over the state tables, evaluated in event time.
//!
//! In: indicator definitions, one SQL file per indicator (`rules/indicators/<name>.sql`), and a
//! [`Tables`] snapshot of the state. Out: per indicator a [`RecordBatch`] whose string columns
//! are its labels (e.g. `supplier`) and whose numeric columns are its values (e.g.
//! `on_time_ratio`), turned into [`IndicatorRow`]s for the rules and the exporter.
//!
//! Every query is planned at load time against empty tables, so a wrong column or type fails
//! when the files are loaded, not at evaluation. Queries run read-only: no DDL, DML or
//! statements (`SET`, `CREATE EXTERNAL TABLE`, ...) are accepted.
//!
//! SQL functions chainwatch adds:
//! - `eval_time()`: the evaluation time, i.e. the event-time watermark (a `Timestamp(ms, UTC)`).
//!   Use it instead of `now()`, which is the wall clock, so replays give the same results.
//! - `days_between(later, earlier)`: `later - earlier` in days, as a float.

mod udf;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::logical_expr::ScalarUDF;

use crate::rules::IndicatorSchema;
use crate::state::Tables;

/// Errors loading or evaluating indicators.
#[derive(Debug, thiserror::Error)]
pub enum IndicatorError {
    /// The indicator directory or a file in it could not be read.
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file name is not a valid indicator name.
    #[error("{path}: indicator names are lowercase snake_case (the file stem), got {name:?}")]
    BadName { path: PathBuf, name: String },
    /// The SQL did not parse or plan against the state tables.
    #[error("{path}: {message}")]
    Plan { path: PathBuf, message: String },
    /// The query has no string column to label its rows, or no numeric value column.
    #[error("{path}: {message}")]
    Shape { path: PathBuf, message: String },
    /// The query failed while running.
    #[error("indicator {name}: {message}")]
    Execute { name: String, message: String },
}

/// A loaded, planned indicator.
#[derive(Debug, Clone)]
pub struct IndicatorDef {
    pub name: String,
    pub path: PathBuf,
    pub sql: String,
    /// The output schema found when planning.
    pub output: SchemaRef,
    pub schema: IndicatorSchema,
}

/// One output row of an indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorRow {
    /// String columns, by name (null becomes "").
    pub labels: BTreeMap<String, String>,
    /// Numeric columns as f64, by name (null becomes None).
    pub values: BTreeMap<String, Option<f64>>,
    /// Every column as JSON, for alert templates.
    pub row: BTreeMap<String, serde_json::Value>,
}

/// The result of one indicator in one evaluation.
#[derive(Debug, Clone)]
pub struct IndicatorResult {
    pub name: String,
    pub rows: Vec<IndicatorRow>,
}

/// The set of indicators and the DataFusion session that runs them.
pub struct Indicators {
    ctx: SessionContext,
    clock: Arc<AtomicI64>,
    defs: Vec<IndicatorDef>,
}

fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric() || matches!(dt, DataType::Boolean)
}

fn is_label(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _)
    )
}

impl Indicators {
    /// A session with the state tables (empty) and chainwatch's functions registered.
    fn session() -> (SessionContext, Arc<AtomicI64>) {
        // One partition: state snapshots are single batches and the machine is small.
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_information_schema(false);
        let ctx = SessionContext::new_with_config(config);
        let clock = Arc::new(AtomicI64::new(0));
        ctx.register_udf(ScalarUDF::from(udf::EvalTime::new(clock.clone())));
        ctx.register_udf(ScalarUDF::from(udf::DaysBetween::new()));
        let empty = Tables::empty();
        for (name, batch) in empty.tables {
            ctx.register_batch(name, batch)
                .expect("fresh session: no table registered yet");
        }
        (ctx, clock)
    }

    /// Load every `*.sql` file of `dir`; each is planned now. All errors are collected.
    pub async fn load_dir(dir: &Path) -> Result<Self, Vec<IndicatorError>> {
        let read = std::fs::read_dir(dir).map_err(|source| {
            vec![IndicatorError::Read {
                path: dir.to_path_buf(),
                source,
            }]
        })?;
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for path in files {
            match std::fs::read_to_string(&path) {
                Ok(sql) => sources.push((path, sql)),
                Err(source) => errors.push(IndicatorError::Read { path, source }),
            }
        }
        match Self::from_sources(sources).await {
            Ok(me) if errors.is_empty() => Ok(me),
            Ok(_) => Err(errors),
            Err(mut more) => {
                errors.append(&mut more);
                Err(errors)
            }
        }
    }

    /// Plan indicators given as (path, SQL); the name is the file stem.
    pub async fn from_sources(
        sources: Vec<(PathBuf, String)>,
    ) -> Result<Self, Vec<IndicatorError>> {
        let (ctx, clock) = Self::session();
        let mut defs = Vec::new();
        let mut errors = Vec::new();
        for (path, sql) in sources {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !valid_name(&name) {
                errors.push(IndicatorError::BadName { path, name });
                continue;
            }
            match plan(&ctx, &path, &sql).await {
                Ok((output, schema)) => defs.push(IndicatorDef {
                    name,
                    path,
                    sql,
                    output,
                    schema,
                }),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(Indicators { ctx, clock, defs })
        } else {
            Err(errors)
        }
    }

    pub fn defs(&self) -> &[IndicatorDef] {
        &self.defs
    }

    /// The schema of every indicator, for checking rules against.
    pub fn schemas(&self) -> BTreeMap<String, IndicatorSchema> {
        self.defs
            .iter()
            .map(|d| (d.name.clone(), d.schema.clone()))
            .collect()
    }

    /// Run every indicator on a snapshot; `eval_time()` is the snapshot's watermark.
    /// One failing indicator does not stop the others.
    pub async fn evaluate(&self, tables: &Tables) -> Vec<Result<IndicatorResult, IndicatorError>> {
        self.clock.store(tables.watermark, Ordering::SeqCst);
        for (name, batch) in &tables.tables {
            // Swapping the data of a registered name; cannot fail for a registered table.
            let _ = self.ctx.deregister_table(*name);
            if let Err(e) = self.ctx.register_batch(*name, batch.clone()) {
                tracing::error!(table = name, error = %e, "Could not register state table.");
            }
        }
        let mut out = Vec::with_capacity(self.defs.len());
        for def in &self.defs {
            out.push(self.run(def).await);
        }
        out
    }

    async fn run(&self, def: &IndicatorDef) -> Result<IndicatorResult, IndicatorError> {
        let err = |e: datafusion::error::DataFusionError| IndicatorError::Execute {
            name: def.name.clone(),
            message: e.to_string(),
        };
        let df = self
            .ctx
            .sql_with_options(&def.sql, sql_options())
            .await
            .map_err(err)?;
        let batches = df.collect().await.map_err(err)?;
        let batch = concat_batches(&def.output, &batches).map_err(|e| IndicatorError::Execute {
            name: def.name.clone(),
            message: e.to_string(),
        })?;
        Ok(IndicatorResult {
            name: def.name.clone(),
            rows: rows_of(&batch),
        })
    }
}

/// Plan one query against the (empty) state tables and work out its labels and values.
async fn plan(
    ctx: &SessionContext,
    path: &Path,
    sql: &str,
) -> Result<(SchemaRef, IndicatorSchema), IndicatorError> {
    let df = ctx
        .sql_with_options(sql, sql_options())
        .await
        .map_err(|e| IndicatorError::Plan {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let output: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut labels = Vec::new();
    let mut values = Vec::new();
    for f in output.fields() {
        if is_label(f.data_type()) {
            labels.push(f.name().clone());
        } else if is_numeric(f.data_type()) {
            values.push(f.name().clone());
        }
    }
    if labels.is_empty() || values.is_empty() {
        return Err(IndicatorError::Shape {
            path: path.to_path_buf(),
            message: format!(
                "an indicator needs at least one string column (its labels) and one numeric \
                 column (its values); got labels {labels:?}, values {values:?}"
            ),
        });
    }
    // Run it once on the empty tables: catches errors the planner leaves to execution.
    df.collect().await.map_err(|e| IndicatorError::Plan {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok((output, IndicatorSchema { labels, values }))
}

/// Turn a result batch into rows: labels, numeric values and a JSON view of every column.
pub fn rows_of(batch: &RecordBatch) -> Vec<IndicatorRow> {
    let n = batch.num_rows();
    let schema = batch.schema();
    let mut rows: Vec<IndicatorRow> = (0..n)
        .map(|_| IndicatorRow {
            labels: BTreeMap::new(),
            values: BTreeMap::new(),
            row: BTreeMap::new(),
        })
        .collect();
    let opts = FormatOptions::default().with_null("");
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
                row.row.insert(name.clone(), serde_json::Value::from(v));
            }
        } else if is_numeric(field.data_type()) {
            let Ok(floats) = cast(column, &DataType::Float64) else {
                continue;
            };
            let floats = floats.as_primitive::<Float64Type>();
            for (r, row) in rows.iter_mut().enumerate() {
                let v = floats.is_valid(r).then(|| floats.value(r));
                row.values.insert(name.clone(), v);
                let json = v
                    .and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number);
                row.row.insert(name.clone(), json);
            }
        } else if let Ok(fmt) = ArrayFormatter::try_new(column.as_ref(), &opts) {
            for (r, row) in rows.iter_mut().enumerate() {
                let v = if column.is_valid(r) {
                    serde_json::Value::from(fmt.value(r).to_string())
                } else {
                    serde_json::Value::Null
                };
                row.row.insert(name.clone(), v);
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests;
