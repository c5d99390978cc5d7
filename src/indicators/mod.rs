//! Indicators: DataFusion SQL over the state tables, evaluated in event time.
//!
//! In: indicator definitions, one SQL file per indicator (`rules/indicators/<name>.sql`), and a
//! [`Tables`] snapshot of the state. Out: per indicator a [`RecordBatch`] whose string columns
//! are its labels (e.g. `supplier`) and whose numeric columns are its values (e.g.
//! `on_time_ratio`), turned into [`IndicatorRow`]s for the rules and the exporter.
//!
//! Views (`rules/indicators/views/<name>.sql`) are queries several indicators share: each is
//! computed once per evaluation, before the indicators that read it, and read under its name
//! like a state table (views may read views: each is computed after those it reads, a cycle is
//! a load error). An indicator that reads no view runs alongside the views.
//!
//! Every query is planned at load time against empty tables, so a wrong column or type fails
//! when the files are loaded, not at evaluation. Queries run read-only: no DDL, DML or
//! statements (`SET`, `CREATE EXTERNAL TABLE`, ...) are accepted.
//!
//! The sandbox: queries can read only the registered state tables. DDL, DML and statements are
//! refused when planning; reading files or URLs as tables is not enabled; spilling to disk is
//! disabled. Each indicator's run has a time limit and the session a memory limit
//! ([`Limits`]): a runaway query is stopped with [`IndicatorError::TimeLimit`] or
//! [`IndicatorError::MemoryLimit`] and the other indicators still run.
//!
//! SQL functions chainwatch adds:
//! - `eval_time()`: the evaluation time, i.e. the event-time watermark (a `Timestamp(ms, UTC)`).
//!   Use it instead of `now()`, which is the wall clock, so replays give the same results.
//! - `days_between(later, earlier)`: `later - earlier` in days, as a float.
//! - `normal_cdf(x, mean, sd)`, `normal_sf(x, mean, sd)`, `students_t_cdf(x, location, scale,
//!   df)`, `students_t_sf(...)`: distribution and survival functions (`stats.rs`); null or
//!   invalid parameters give null.

mod rows;
mod stats;
mod udf;

pub use rows::{row_json, rows_of, IndicatorRow, RowRef};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{LogicalPlan, ScalarUDF};

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
    /// The query ran longer than its time limit and was stopped.
    #[error("indicator {name}: stopped after the time limit of {limit:?}")]
    TimeLimit {
        name: String,
        limit: std::time::Duration,
    },
    /// The query needed more memory than the limit and was stopped.
    #[error("indicator {name}: stopped at the memory limit of {limit} bytes: {message}")]
    MemoryLimit {
        name: String,
        limit: usize,
        message: String,
    },
    /// A view the indicator reads failed in this evaluation, so the indicator was not run.
    #[error("indicator {name}: not run, view {view} failed: {}", source.detail())]
    ViewFailed {
        name: String,
        view: String,
        source: Arc<IndicatorError>,
    },
}

impl IndicatorError {
    /// `time`, `memory` or `error`: a bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            IndicatorError::TimeLimit { .. } => "time",
            IndicatorError::MemoryLimit { .. } => "memory",
            IndicatorError::ViewFailed { source, .. } => source.kind(),
            _ => "error",
        }
    }

    /// What went wrong, without naming the query (for a view's error told in an indicator's).
    fn detail(&self) -> String {
        match self {
            IndicatorError::Execute { message, .. } => message.clone(),
            IndicatorError::TimeLimit { limit, .. } => {
                format!("stopped after the time limit of {limit:?}")
            }
            IndicatorError::MemoryLimit { limit, message, .. } => {
                format!("stopped at the memory limit of {limit} bytes: {message}")
            }
            other => other.to_string(),
        }
    }
}

/// Resource limits of indicator queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one indicator may run in one evaluation.
    pub time: std::time::Duration,
    /// Memory the operators of one query may hold (hash tables, sorts, joins); the state
    /// tables themselves are not counted. The pool is the session's: indicators running at the
    /// same time share it.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time: std::time::Duration::from_secs(10),
            memory_bytes: 1 << 30,
        }
    }
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
    /// The analysed and optimised logical plan, made once at load: each evaluation only plans
    /// it physically (which reads the current tables), saving about two thirds of the per-tick
    /// planning cost.
    pub plan: LogicalPlan,
    /// The views it reads, as indices into [`Indicators::views`].
    pub reads: Vec<usize>,
}

/// A loaded, planned view: computed once per evaluation before the indicators that read it, and
/// registered as a table under its name.
#[derive(Debug, Clone)]
pub struct ViewDef {
    pub name: String,
    pub path: PathBuf,
    pub sql: String,
    /// The output schema found when planning (the schema of its table).
    pub output: SchemaRef,
    pub plan: LogicalPlan,
    /// The views it reads, all earlier in [`Indicators::views`].
    pub reads: Vec<usize>,
    table: Arc<MemTable>,
}

/// The result of one indicator in one evaluation.
#[derive(Debug, Clone)]
pub struct IndicatorResult {
    pub name: String,
    pub rows: Vec<IndicatorRow>,
    /// The result batch the rows were read from (row `i` is `rows[i]`).
    pub batch: RecordBatch,
}

impl IndicatorResult {
    /// Row `index` with every column, for templates.
    pub fn row(&self, index: usize) -> RowRef<'_> {
        RowRef::Batch(&self.batch, index)
    }
}

/// The registered state tables, by name.
type StateTables = Vec<(&'static str, Arc<MemTable>)>;

/// The set of indicators and the DataFusion session that runs them.
pub struct Indicators {
    ctx: SessionContext,
    clock: Arc<AtomicI64>,
    /// The state tables, registered once; each evaluation swaps their contents, so the cached
    /// logical plans (which hold the providers) see the new data.
    tables: StateTables,
    views: Vec<ViewDef>,
    defs: Vec<IndicatorDef>,
    limits: Limits,
    /// How long each query took in the last evaluation.
    durations: std::sync::Mutex<QueryDurations>,
}

/// Wall time of each query of the last evaluation, in the order of [`Indicators::defs`] and
/// [`Indicators::views`]; `None` for one not run (a view it reads failed, or never
/// evaluated). An indicator's time is its own query's, without the views it reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryDurations {
    pub indicators: Vec<(String, Option<Duration>)>,
    pub views: Vec<(String, Option<Duration>)>,
    /// The views that failed themselves (not through a view they read), with the reason
    /// ([`IndicatorError::kind`]).
    pub failed_views: Vec<(String, &'static str)>,
}

/// A view that failed (it, or one it reads) and its error.
type ViewFailure = Option<(String, Arc<IndicatorError>)>;

/// An indicator's run and how long it took.
type Timed = (Result<IndicatorResult, IndicatorError>, Duration);

/// An indicator's task in one evaluation.
enum Pending {
    Running(tokio::task::JoinHandle<Timed>),
    /// Waits for the views it reads.
    Waiting,
    Failed(IndicatorError),
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
    fn session(limits: &Limits) -> (SessionContext, Arc<AtomicI64>, StateTables) {
        // One partition: state snapshots are single batches and the machine is small.
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_information_schema(false);
        // A memory pool with a hard limit and no disk to spill to: a query that needs more fails.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc();
        let ctx = match runtime {
            Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
            Err(e) => {
                // Only a broken disk-manager setup fails here, and "Disabled" has none.
                tracing::error!(error = %e, "Could not build the limited runtime; no memory limit.");
                SessionContext::new_with_config(config)
            }
        };
        let clock = Arc::new(AtomicI64::new(0));
        ctx.register_udf(ScalarUDF::from(udf::EvalTime::new(clock.clone())));
        ctx.register_udf(ScalarUDF::from(udf::DaysBetween::new()));
        for kind in stats::Kind::ALL {
            ctx.register_udf(ScalarUDF::from(stats::Probability::new(kind)));
        }
        let mut tables = Vec::new();
        // State tables and master data (network, feeds): each snapshot carries both.
        for (name, batch) in Tables::empty()
            .tables
            .into_iter()
            .chain(crate::catalog::empty_tables())
        {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]])
                .expect("a batch always fits its own schema");
            let table = Arc::new(table);
            ctx.register_table(name, table.clone())
                .expect("fresh session: no table registered yet");
            tables.push((name, table));
        }
        (ctx, clock, tables)
    }

    /// Load every `*.sql` file of `dir` with the default [`Limits`]; see [`Self::load_dir_with`].
    pub async fn load_dir(dir: &Path) -> Result<Self, Vec<IndicatorError>> {
        Self::load_dir_with(dir, Limits::default()).await
    }

    /// Load every `*.sql` file of `dir` as an indicator and of `dir/views` (if it exists) as a
    /// view; each is planned now. All errors are collected.
    pub async fn load_dir_with(dir: &Path, limits: Limits) -> Result<Self, Vec<IndicatorError>> {
        let mut errors = Vec::new();
        let views_dir = dir.join("views");
        let views = if views_dir.is_dir() {
            read_sql_files(&views_dir, &mut errors)
        } else {
            Vec::new()
        };
        let sources = read_sql_files(dir, &mut errors);
        match Self::from_parts_with(views, sources, limits).await {
            Ok(me) if errors.is_empty() => Ok(me),
            Ok(_) => Err(errors),
            Err(mut more) => {
                errors.append(&mut more);
                Err(errors)
            }
        }
    }

    /// Plan indicators given as (path, SQL) with the default [`Limits`].
    pub async fn from_sources(
        sources: Vec<(PathBuf, String)>,
    ) -> Result<Self, Vec<IndicatorError>> {
        Self::from_sources_with(sources, Limits::default()).await
    }

    /// Plan indicators given as (path, SQL); the name is the file stem.
    pub async fn from_sources_with(
        sources: Vec<(PathBuf, String)>,
        limits: Limits,
    ) -> Result<Self, Vec<IndicatorError>> {
        Self::from_parts_with(Vec::new(), sources, limits).await
    }

    /// Plan views, then indicators, each given as (path, SQL); names are the file stems. Views
    /// are planned in the order their reads require (see [`view_order`]), each registered as an
    /// (empty) table before the next.
    pub async fn from_parts_with(
        view_sources: Vec<(PathBuf, String)>,
        sources: Vec<(PathBuf, String)>,
        limits: Limits,
    ) -> Result<Self, Vec<IndicatorError>> {
        let (ctx, clock, tables) = Self::session(&limits);
        let mut views: Vec<ViewDef> = Vec::new();
        let mut defs = Vec::new();
        let mut errors = Vec::new();
        let name_of = |path: &Path| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let (view_sources, mut cycles) = view_order(&ctx, view_sources);
        errors.append(&mut cycles);
        for (path, sql) in view_sources {
            let name = name_of(&path);
            if !valid_name(&name) {
                errors.push(IndicatorError::BadName { path, name });
                continue;
            }
            if tables.iter().any(|(t, _)| *t == name) || views.iter().any(|v| v.name == name) {
                errors.push(IndicatorError::Plan {
                    path,
                    message: format!("a view cannot be named {name:?}: a table has that name"),
                });
                continue;
            }
            let (output, plan) = match plan_query(&ctx, &path, &sql, &limits).await {
                Ok(planned) => planned,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let table = match MemTable::try_new(output.clone(), vec![Vec::new()]) {
                Ok(table) => Arc::new(table),
                Err(e) => {
                    errors.push(IndicatorError::Plan {
                        path,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            if let Err(e) = ctx.register_table(name.as_str(), table.clone()) {
                errors.push(IndicatorError::Plan {
                    path,
                    message: e.to_string(),
                });
                continue;
            }
            let reads = views_read(&plan, &views);
            views.push(ViewDef {
                name,
                path,
                sql,
                output,
                plan,
                reads,
                table,
            });
        }
        for (path, sql) in sources {
            let name = name_of(&path);
            if !valid_name(&name) {
                errors.push(IndicatorError::BadName { path, name });
                continue;
            }
            match plan(&ctx, &path, &sql, &limits).await {
                Ok((output, schema, plan)) => defs.push(IndicatorDef {
                    name,
                    path,
                    sql,
                    output,
                    schema,
                    reads: views_read(&plan, &views),
                    plan,
                }),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            let durations = std::sync::Mutex::new(QueryDurations {
                indicators: defs.iter().map(|d| (d.name.clone(), None)).collect(),
                views: views.iter().map(|v| (v.name.clone(), None)).collect(),
                failed_views: Vec::new(),
            });
            Ok(Indicators {
                ctx,
                clock,
                tables,
                views,
                defs,
                limits,
                durations,
            })
        } else {
            Err(errors)
        }
    }

    /// The limits every query runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn defs(&self) -> &[IndicatorDef] {
        &self.defs
    }

    /// The views, in the order they are computed.
    pub fn views(&self) -> &[ViewDef] {
        &self.views
    }

    /// The schema of every indicator, for checking rules against.
    pub fn schemas(&self) -> BTreeMap<String, IndicatorSchema> {
        self.defs
            .iter()
            .map(|d| (d.name.clone(), d.schema.clone()))
            .collect()
    }

    /// Run every indicator on a snapshot; `eval_time()` is the snapshot's watermark.
    /// One failing indicator does not stop the others; a failing view stops only the
    /// indicators that read it ([`IndicatorError::ViewFailed`]).
    pub async fn evaluate(&self, tables: &Tables) -> Vec<Result<IndicatorResult, IndicatorError>> {
        self.load(tables).await;
        // Independent queries over the same snapshot: each on its own task, so both cores
        // work on them. Those that read no view start now, alongside the views.
        let spawn = |def: &IndicatorDef| {
            let query = run(
                self.ctx.clone(),
                def.name.clone(),
                def.plan.clone(),
                def.output.clone(),
                self.limits,
            );
            Pending::Running(tokio::spawn(async move {
                let started = std::time::Instant::now();
                let result = query.await;
                (result, started.elapsed())
            }))
        };
        let mut pending: Vec<Pending> = self
            .defs
            .iter()
            .map(|def| {
                if def.reads.is_empty() {
                    spawn(def)
                } else {
                    Pending::Waiting
                }
            })
            .collect();
        let mut view_times = vec![None; self.views.len()];
        let mut failed_views = Vec::new();
        if pending.iter().any(|p| matches!(p, Pending::Waiting)) {
            let (failed, times) = self.compute_views(&vec![true; self.views.len()]).await;
            view_times = times;
            for (view, f) in self.views.iter().zip(&failed) {
                if let Some((name, e)) = f.as_ref().filter(|(name, _)| *name == view.name) {
                    failed_views.push((name.clone(), e.kind()));
                }
            }
            for (def, p) in self.defs.iter().zip(pending.iter_mut()) {
                if matches!(p, Pending::Waiting) {
                    *p = match def.reads.iter().find_map(|&v| failed[v].clone()) {
                        Some((view, source)) => Pending::Failed(IndicatorError::ViewFailed {
                            name: def.name.clone(),
                            view,
                            source,
                        }),
                        None => spawn(def),
                    };
                }
            }
        }
        let mut out = Vec::with_capacity(pending.len());
        let mut times = Vec::with_capacity(pending.len());
        for (def, p) in self.defs.iter().zip(pending) {
            let (result, time) = match p {
                Pending::Running(task) => match task.await {
                    Ok((result, time)) => (result, Some(time)),
                    Err(e) => (
                        Err(IndicatorError::Execute {
                            name: def.name.clone(),
                            message: format!("query task failed: {e}"),
                        }),
                        None,
                    ),
                },
                Pending::Failed(e) => (Err(e), None),
                // Every waiting indicator was either spawned or failed above.
                Pending::Waiting => (
                    Err(IndicatorError::Execute {
                        name: def.name.clone(),
                        message: "not run".into(),
                    }),
                    None,
                ),
            };
            out.push(result);
            times.push((def.name.clone(), time));
        }
        self.clear_views().await;
        let views = self
            .views
            .iter()
            .zip(view_times)
            .map(|(v, t)| (v.name.clone(), t))
            .collect();
        if let Ok(mut d) = self.durations.lock() {
            *d = QueryDurations {
                indicators: times,
                views,
                failed_views,
            };
        }
        out
    }

    /// How long each query took in the last [`Self::evaluate`].
    pub fn last_durations(&self) -> QueryDurations {
        self.durations.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Run the indicator at `index` of [`Self::defs`] alone on a snapshot, with the views it
    /// needs (`make bench` times each query this way, to show which ones the tick's time goes
    /// to).
    pub async fn evaluate_alone(
        &self,
        tables: &Tables,
        index: usize,
    ) -> Option<Result<IndicatorResult, IndicatorError>> {
        let def = self.defs.get(index)?;
        self.load(tables).await;
        let (failed, _) = self.compute_views(&self.views_needed(&def.reads)).await;
        let result = match def.reads.iter().find_map(|&v| failed[v].clone()) {
            Some((view, source)) => Err(IndicatorError::ViewFailed {
                name: def.name.clone(),
                view,
                source,
            }),
            None => {
                run(
                    self.ctx.clone(),
                    def.name.clone(),
                    def.plan.clone(),
                    def.output.clone(),
                    self.limits,
                )
                .await
            }
        };
        self.clear_views().await;
        Some(result)
    }

    /// Compute the view at `index` of [`Self::views`] alone on a snapshot, with the views it
    /// reads, and drop its rows (`make bench` times views this way).
    pub async fn compute_view_alone(
        &self,
        tables: &Tables,
        index: usize,
    ) -> Option<Result<(), Arc<IndicatorError>>> {
        self.views.get(index)?;
        self.load(tables).await;
        let (failed, _) = self.compute_views(&self.views_needed(&[index])).await;
        self.clear_views().await;
        Some(match failed.into_iter().nth(index).flatten() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        })
    }

    /// `EXPLAIN ANALYZE` of the indicator or view `name` on a snapshot (after the views it
    /// reads): the plan with each operator's rows and time, for finding where a query's time
    /// goes (`make bench` prints it with `--explain=<name>`).
    pub async fn explain_analyze(&self, tables: &Tables, name: &str) -> Option<String> {
        let (sql, reads) = match self.defs.iter().find(|d| d.name == name) {
            Some(d) => (&d.sql, d.reads.clone()),
            None => {
                let v = self.views.iter().find(|v| v.name == name)?;
                (&v.sql, v.reads.clone())
            }
        };
        self.load(tables).await;
        self.compute_views(&self.views_needed(&reads)).await;
        let explained = async {
            let df = self
                .ctx
                .sql_with_options(&format!("EXPLAIN ANALYZE {sql}"), sql_options())
                .await?;
            let batches = df.collect().await?;
            Ok::<_, DataFusionError>(
                arrow::util::pretty::pretty_format_batches(&batches)?.to_string(),
            )
        };
        let text = explained
            .await
            .unwrap_or_else(|e: DataFusionError| format!("{name}: {e}"));
        self.clear_views().await;
        Some(text)
    }

    /// Which views (flags by index) computing the views `reads` needs: those and, before them,
    /// the views they read.
    fn views_needed(&self, reads: &[usize]) -> Vec<bool> {
        let mut needed = vec![false; self.views.len()];
        for &v in reads {
            needed[v] = true;
        }
        // A view reads only earlier views: one pass from the last down closes the set.
        for v in (0..self.views.len()).rev() {
            if needed[v] {
                for &w in &self.views[v].reads {
                    needed[w] = true;
                }
            }
        }
        needed
    }

    /// The indicators `keep` accepts by name, with the views they read, planned again in a
    /// session of their own (rule tests run only what their rules use).
    pub async fn only(&self, keep: impl Fn(&str) -> bool) -> Result<Self, Vec<IndicatorError>> {
        let defs: Vec<&IndicatorDef> = self.defs.iter().filter(|d| keep(&d.name)).collect();
        let reads: Vec<usize> = defs.iter().flat_map(|d| d.reads.iter().copied()).collect();
        let views = self
            .views
            .iter()
            .zip(self.views_needed(&reads))
            .filter(|(_, needed)| *needed)
            .map(|(v, _)| (v.path.clone(), v.sql.clone()))
            .collect();
        let sources = defs
            .iter()
            .map(|d| (d.path.clone(), d.sql.clone()))
            .collect();
        Self::from_parts_with(views, sources, self.limits).await
    }

    /// Compute the views marked in `needed`, in order, into their tables. Returns per view the
    /// failed view and its error, if it or a view it reads failed (its table is left empty),
    /// and how long it took, if it ran.
    async fn compute_views(&self, needed: &[bool]) -> (Vec<ViewFailure>, Vec<Option<Duration>>) {
        let mut failed: Vec<ViewFailure> = vec![None; self.views.len()];
        let mut times = vec![None; self.views.len()];
        for (i, view) in self.views.iter().enumerate() {
            if !needed.get(i).copied().unwrap_or(false) {
                continue;
            }
            if let Some(e) = view.reads.iter().find_map(|&v| failed[v].clone()) {
                failed[i] = Some(e);
                continue;
            }
            let started = std::time::Instant::now();
            let batches = query(&self.ctx, &view.name, &view.plan, &view.output, self.limits).await;
            times[i] = Some(started.elapsed());
            match batches {
                Ok(batches) => *view.table.batches[0].write().await = batches,
                Err(e) => {
                    tracing::warn!(view = %view.name, error = %e, "View failed.");
                    failed[i] = Some((view.name.clone(), Arc::new(e)));
                }
            }
        }
        (failed, times)
    }

    /// Empty the views' tables: their rows are only needed during an evaluation.
    async fn clear_views(&self) {
        for view in &self.views {
            view.table.batches[0].write().await.clear();
        }
    }

    /// Point the session's tables at a snapshot and its clock at the snapshot's watermark.
    async fn load(&self, tables: &Tables) {
        self.clock.store(tables.watermark, Ordering::SeqCst);
        for (name, batch) in &tables.tables {
            match self.tables.iter().find(|(n, _)| n == name) {
                Some((_, table)) => *table.batches[0].write().await = vec![batch.clone()],
                None => tracing::error!(table = name, "Snapshot has a table the session lacks."),
            }
        }
    }
}

/// The views (path, SQL) in an order where each comes after the views it reads, by name
/// otherwise (a topological sort, as dbt orders models). The reads are the table names the
/// parsed SQL refers to (CTE names excluded); SQL that does not parse keeps its place and
/// fails when planned. Views that read each other in a cycle are left out, each with an error.
fn view_order(
    ctx: &SessionContext,
    sources: Vec<(PathBuf, String)>,
) -> (Vec<(PathBuf, String)>, Vec<IndicatorError>) {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let names: Vec<String> = sources
        .iter()
        .map(|(p, _)| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    // reads[i]: the other views view i reads.
    let reads: Vec<Vec<usize>> = sources
        .iter()
        .enumerate()
        .map(|(i, (_, sql))| {
            let refs = state
                .sql_to_statement(sql, &dialect)
                .and_then(|st| state.resolve_table_references(&st))
                .unwrap_or_default();
            let mut deps: Vec<usize> = refs
                .iter()
                .filter_map(|r| names.iter().position(|n| n == r.table()))
                .filter(|&j| j != i)
                .collect();
            deps.sort_unstable();
            deps.dedup();
            deps
        })
        .collect();
    let mut by_name: Vec<usize> = (0..sources.len()).collect();
    by_name.sort_by(|&a, &b| names[a].cmp(&names[b]));
    let mut placed = vec![false; sources.len()];
    let mut order = Vec::with_capacity(sources.len());
    // Each round places the first view (by name) whose reads are all placed.
    while let Some(&next) = by_name
        .iter()
        .find(|&&i| !placed[i] && reads[i].iter().all(|&j| placed[j]))
    {
        placed[next] = true;
        order.push(next);
    }
    let errors = (0..sources.len())
        .filter(|&i| !placed[i])
        .map(|i| {
            let waits: Vec<&str> = reads[i]
                .iter()
                .filter(|&&j| !placed[j])
                .map(|&j| names[j].as_str())
                .collect();
            IndicatorError::Plan {
                path: sources[i].0.clone(),
                message: format!(
                    "views read each other in a cycle: {} reads {}",
                    names[i],
                    waits.join(", ")
                ),
            }
        })
        .collect();
    let mut sources: Vec<Option<(PathBuf, String)>> = sources.into_iter().map(Some).collect();
    let ordered = order
        .into_iter()
        .filter_map(|i| sources[i].take())
        .collect();
    (ordered, errors)
}

/// `.sql` files of `dir`, in name order, with their text; read errors go to `errors`.
fn read_sql_files(dir: &Path, errors: &mut Vec<IndicatorError>) -> Vec<(PathBuf, String)> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(source) => {
            errors.push(IndicatorError::Read {
                path: dir.to_path_buf(),
                source,
            });
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut sources = Vec::new();
    for path in files {
        match std::fs::read_to_string(&path) {
            Ok(sql) => sources.push((path, sql)),
            Err(source) => errors.push(IndicatorError::Read { path, source }),
        }
    }
    sources
}

/// The views (indices into `views`) a plan scans, subqueries included.
fn views_read(plan: &LogicalPlan, views: &[ViewDef]) -> Vec<usize> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut reads = Vec::new();
    // The closure never fails, so neither does the walk.
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let table = scan.table_name.table();
            if let Some(i) = views.iter().position(|v| v.name == table) {
                if !reads.contains(&i) {
                    reads.push(i);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    reads.sort_unstable();
    reads
}

/// One indicator under the time limit; DataFusion's streams yield to tokio's budget, so a
/// long query is interrupted at its next batch and dropped (which frees its memory).
async fn run(
    ctx: SessionContext,
    name: String,
    plan: LogicalPlan,
    output: SchemaRef,
    limits: Limits,
) -> Result<IndicatorResult, IndicatorError> {
    let batches = query(&ctx, &name, &plan, &output, limits).await?;
    let batch = concat_batches(&output, &batches).map_err(|e| IndicatorError::Execute {
        name: name.clone(),
        message: e.to_string(),
    })?;
    Ok(IndicatorResult {
        rows: rows_of(&batch),
        batch,
        name,
    })
}

/// Run a planned query (an indicator's or a view's, named `name`) under the limits; its batches
/// carry `output`, the schema found when planning.
async fn query(
    ctx: &SessionContext,
    name: &str,
    plan: &LogicalPlan,
    output: &SchemaRef,
    limits: Limits,
) -> Result<Vec<RecordBatch>, IndicatorError> {
    let name = name.to_string();
    let err = |e: DataFusionError| match e.find_root() {
        DataFusionError::ResourcesExhausted(message) => IndicatorError::MemoryLimit {
            name: name.clone(),
            limit: limits.memory_bytes,
            message: message.clone(),
        },
        _ => IndicatorError::Execute {
            name: name.clone(),
            message: e.to_string(),
        },
    };
    let batches = match tokio::time::timeout(limits.time, collect_cooperatively(ctx, plan)).await {
        Ok(r) => r.map_err(err)?,
        Err(_) => {
            return Err(IndicatorError::TimeLimit {
                name,
                limit: limits.time,
            })
        }
    };
    // The planned schema on every batch (no copy): a view's table was made with it, and a
    // difference the planner let through (a field's nullability) is caught here, not downstream.
    batches
        .into_iter()
        .map(|b| RecordBatch::try_new(output.clone(), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IndicatorError::Execute {
            name,
            message: e.to_string(),
        })
}

/// Runs a query with every operator made cooperative: each batch any operator yields spends
/// tokio's task budget, so even a plan that loops inside one operator (a cross join feeding an
/// aggregate) returns to the runtime regularly and the time limit can stop it. DataFusion only
/// does this at leaf scans by itself.
async fn collect_cooperatively(
    ctx: &SessionContext,
    plan: &LogicalPlan,
) -> Result<Vec<RecordBatch>, DataFusionError> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::{coop::CooperativeExec, ExecutionPlan};
    let state = ctx.state();
    // The plan is already optimised: only physical planning, which scans the current tables.
    let plan = state
        .query_planner()
        .create_physical_plan(plan, &state)
        .await?;
    let plan = plan
        .transform_up(|node| {
            let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
            Ok(Transformed::yes(wrapped))
        })?
        .data;
    datafusion::physical_plan::collect(plan, ctx.task_ctx()).await
}

/// Plan an indicator's query against the (empty) state tables and work out its labels and
/// values.
async fn plan(
    ctx: &SessionContext,
    path: &Path,
    sql: &str,
    limits: &Limits,
) -> Result<(SchemaRef, IndicatorSchema, LogicalPlan), IndicatorError> {
    let (output, optimized) = plan_query(ctx, path, sql, limits).await?;
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
    Ok((output, IndicatorSchema { labels, values }, optimized))
}

/// Plan a query (an indicator's or a view's) against the session's (empty) tables: its output
/// schema and its optimised logical plan.
async fn plan_query(
    ctx: &SessionContext,
    path: &Path,
    sql: &str,
    limits: &Limits,
) -> Result<(SchemaRef, LogicalPlan), IndicatorError> {
    let plan_error = |message: String| IndicatorError::Plan {
        path: path.to_path_buf(),
        message,
    };
    let df = ctx
        .sql_with_options(sql, sql_options())
        .await
        .map_err(|e| plan_error(e.to_string()))?;
    let output: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    // Run it once on the empty tables: catches errors the planner leaves to execution, and a
    // query that runs away even without data (under the same limits as at evaluation).
    let optimized = ctx
        .state()
        .optimize(df.logical_plan())
        .map_err(|e| plan_error(e.to_string()))?;
    match tokio::time::timeout(limits.time, collect_cooperatively(ctx, &optimized)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(plan_error(e.to_string())),
        Err(_) => {
            return Err(plan_error(format!(
                "running on empty tables took longer than the time limit of {:?}",
                limits.time
            )))
        }
    }
    Ok((output, optimized))
}

#[cfg(test)]
mod sandbox_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod view_tests;
