//! `make bench`: every figure of docs/benchmarks.md, measured side by side in one run, each
//! printed beside its target.
//!
//! 1. decode: JSON -> Arrow rows/s (chainwatch's decoder) vs the same decoder with arrow-json
//!    alone and vs `serde_json::Value` parsing of the same bytes, one core;
//! 2. decode + apply to state, events already in memory: on one core, and pipelined on two
//!    threads as the service runs it (ingest decodes, the state stage applies);
//! 3. evaluation: one whole tick (snapshot, every shipped indicator and rule, the `/metrics`
//!    series) at 10k / 100k / 1M open PO lines, and again with 10x the completed history;
//! 4. memory: bytes per open PO line and per shipment in state (counted by the allocator),
//!    resident memory at the sizes of 3;
//! 5. end to end from a real broker (tansu, when on PATH): events/s from topic to applied state,
//!    against a bare rdkafka consumer draining the same topics in the same run;
//! 6. latency: event-to-alert p50 / p99 at a sustained event rate through tansu.
//!
//! 7. soak (only with `--only=soak`, `make soak`): a warm-up until the 90-day window is full,
//!    then 10 minutes at a steady rate, resident memory and state sizes every 30 s.
//!
//! Options: `--quick` (smaller sizes), `--no-broker`, `--only=decode,apply,eval,memory,e2e,latency,soak`,
//! `--soak-rate=N` and `--latency-rate=N` (events/s).

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chainwatch::alerts::{AlertEngine, AlertState};
use chainwatch::config::Config;
use chainwatch::export::Evaluation;
use chainwatch::ingest::decode::{EventDecoder, RejectReason};
use chainwatch::pipeline::{self, load_rulebook, tick};
use chainwatch::sim::{SimConfig, Simulator};
use chainwatch::state::{Retention, State};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message};

const DAY_MS: i64 = 86_400_000;

/// The allocator chainwatch's binary uses (src/main.rs), so that resident memory here is what
/// the service would have; `--features system-allocator` measures glibc's malloc instead.
#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
const INNER: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(any(target_env = "msvc", feature = "system-allocator"))]
const INNER: std::alloc::System = std::alloc::System;

/// Counts live heap bytes while `COUNTING` is on (the memory figures); otherwise one relaxed
/// load per allocation.
struct CountingAlloc;
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The soak's load generator's share of `LIVE` (allocations on its thread).
static SIM_LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Set on the soak's load-generator thread.
    static SIM_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
        if SIM_THREAD.try_with(std::cell::Cell::get).unwrap_or(false) {
            SIM_LIVE.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Resident memory of this process (bytes), from /proc.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT MET"
    }
}

fn sim_payloads(days: i64) -> Vec<Vec<u8>> {
    let mut sim = Simulator::new(SimConfig::default());
    let until = sim.now() + chrono::Duration::days(days);
    sim.run_until(until)
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

/// Rows/s of chainwatch's decoder, of the same decoder with arrow-json alone (no fast path),
/// and of `serde_json::Value` parsing, measured round-robin in the same rounds; then the
/// median of each round's ratio of the decoder to the other two. A round is tens of
/// milliseconds and these machines drift by more than the differences measured, so there are
/// many rounds and the ratios are taken within a round.
fn bench_decode(payloads: &[Vec<u8>]) -> (f64, f64, f64, f64, f64) {
    let decoder = EventDecoder::new(1 << 20);
    let refs: Vec<Option<&[u8]>> = payloads.iter().map(|p| Some(p.as_slice())).collect();
    let (mut fast_rates, mut arrow_rates, mut serde_rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..21 {
        let t = Instant::now();
        let mut rows = 0;
        for chunk in refs.chunks(4096) {
            rows += decoder.decode(chunk).batch.map_or(0, |b| b.num_rows());
        }
        fast_rates.push(rows as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut rows = 0;
        for chunk in refs.chunks(4096) {
            rows += decoder
                .decode_with_arrow_json(chunk)
                .batch
                .map_or(0, |b| b.num_rows());
        }
        arrow_rates.push(rows as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut n = 0;
        for p in payloads {
            if serde_json::from_slice::<serde_json::Value>(p).is_ok() {
                n += 1;
            }
        }
        serde_rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    let ratio = |other: &[f64]| median(fast_rates.iter().zip(other).map(|(f, o)| f / o).collect());
    let (to_arrow, to_serde) = (ratio(&arrow_rates), ratio(&serde_rates));
    (
        median(fast_rates),
        median(arrow_rates),
        median(serde_rates),
        to_arrow,
        to_serde,
    )
}

/// Decode and apply on one thread.
fn bench_apply(payloads: &[Vec<u8>]) -> f64 {
    let decoder = EventDecoder::new(1 << 20);
    let refs: Vec<Option<&[u8]>> = payloads.iter().map(|p| Some(p.as_slice())).collect();
    let mut rates = Vec::new();
    for _ in 0..3 {
        let mut state = State::new(Retention::default());
        let t = Instant::now();
        let mut n = 0;
        for chunk in refs.chunks(4096) {
            if let Some(b) = decoder.decode(chunk).batch {
                n += b.num_rows();
                state.apply(&b, 0);
            }
        }
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    median(rates)
}

/// Decode on one thread, apply on another, joined by a bounded channel of record batches:
/// the service's ingest and state stages.
fn bench_apply_pipelined(payloads: &[Vec<u8>]) -> f64 {
    let mut rates = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = std::sync::mpsc::sync_channel::<arrow::record_batch::RecordBatch>(4);
        let t = Instant::now();
        let applier = std::thread::spawn(move || {
            let mut state = State::new(Retention::default());
            let mut n = 0;
            for b in rx {
                n += b.num_rows();
                state.apply(&b, 0);
            }
            n
        });
        let decoder = EventDecoder::new(1 << 20);
        let refs: Vec<Option<&[u8]>> = payloads.iter().map(|p| Some(p.as_slice())).collect();
        for chunk in refs.chunks(4096) {
            if let Some(b) = decoder.decode(chunk).batch {
                if tx.send(b).is_err() {
                    break;
                }
            }
        }
        drop(tx);
        let n = applier.join().unwrap_or(0);
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    median(rates)
}

/// How big a synthetic state to build.
#[derive(Clone, Copy)]
struct Sizes {
    lines: usize,
    shipments: usize,
    positions: usize,
    /// Completed deliveries in the window.
    completed: usize,
}

impl Sizes {
    /// The issue's shape: lines over 10k suppliers, lines/10 shipments, lines/20 positions,
    /// lines/10 x `history` completed deliveries.
    fn scaled(lines: usize, history: usize) -> Self {
        Sizes {
            lines,
            shipments: lines / 10,
            positions: (lines / 20).max(1),
            completed: lines / 10 * history,
        }
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("valid")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("valid")
        .format("%Y-%m-%d")
        .to_string()
}

/// 2026-03-02T00:00:00Z
const T0: i64 = 1_772_409_600_000;

/// A synthetic state of the given sizes, built through the decoder like real events.
fn synthetic_state(z: Sizes) -> State {
    let decoder = EventDecoder::new(1 << 20);
    let mut state = State::new(Retention::default());
    let mut events: Vec<String> = Vec::with_capacity(4096);
    let flush = |events: &mut Vec<String>, state: &mut State| {
        let refs: Vec<Option<&[u8]>> = events.iter().map(|e| Some(e.as_bytes())).collect();
        if let Some(b) = decoder.decode(&refs).batch {
            state.apply(&b, T0 + 20 * DAY_MS);
        }
        events.clear();
    };
    let positions = z.positions.max(1);
    for i in 0..z.lines {
        let promised = T0 + ((i % 40) as i64) * DAY_MS;
        events.push(format!(
            r#"{{"event_id":"l{i}","kind":"po_line_created","event_time":"{}","source":"b","po":"PO-{}","line":{},"supplier":"S{}","part":"P{}","site":"D{}","quantity":100,"unit_price":3.5,"order_date":"{}","promised_date":"{}"}}"#,
            iso(T0),
            i / 4,
            i % 4,
            i % 10_000,
            (i % positions) / 3,
            i % 3,
            date(T0 - 20 * DAY_MS),
            date(promised)
        ));
        if events.len() == 4096 {
            flush(&mut events, &mut state);
        }
    }
    for s in 0..z.shipments {
        events.push(format!(
            r#"{{"event_id":"s{s}","kind":"shipment_created","event_time":"{}","source":"b","shipment":"SH{s}","supplier":"S{}","po_lines":[{{"po":"PO-{}","line":0}}],"origin":"CNSHA","destination":"DEHAM","carrier":"C","mode":"ocean","shipped_at":"{}","eta":"{}"}}"#,
            iso(T0),
            s % 10_000,
            s * 2,
            iso(T0),
            iso(T0 + 30 * DAY_MS)
        ));
        if events.len() == 4096 {
            flush(&mut events, &mut state);
        }
    }
    for p in 0..z.positions {
        events.push(format!(
            r#"{{"event_id":"p{p}","kind":"inventory_position","event_time":"{}","source":"b","site":"D{}","part":"P{}","on_hand":500,"daily_demand":20}}"#,
            iso(T0),
            p % 3,
            p / 3
        ));
        if events.len() == 4096 {
            flush(&mut events, &mut state);
        }
    }
    // Completed history: deliveries in the window.
    for c in 0..z.completed {
        let t = T0 + 10 * DAY_MS + (c as i64 % 1000) * 60_000;
        events.extend(completed_line(
            &format!("h{c}"),
            &format!("H-{c}"),
            c % 10_000,
            9,
            t,
        ));
        if events.len() >= 4096 {
            flush(&mut events, &mut state);
        }
    }
    flush(&mut events, &mut state);
    state.advance(T0 + 20 * DAY_MS);
    state
}

/// Heap bytes a state of `z` holds (the decoder's transient batches are freed by then).
fn state_bytes(z: Sizes) -> (State, f64) {
    LIVE.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let state = synthetic_state(z);
    let bytes = LIVE.load(Ordering::SeqCst) as f64;
    COUNTING.store(false, Ordering::SeqCst);
    (state, bytes)
}

struct EvalFigures {
    /// A snapshot after a step of new events (see [`step_of_completions`]).
    snapshot_ms: f64,
    /// The state's first snapshot: every table built from the records, as after a restart.
    first_snapshot_ms: f64,
    /// The indicator queries alone (and their rows), inside `tick_ms`.
    queries_ms: f64,
    tick_ms: f64,
    /// Building the `/metrics` series of one evaluation (once per scrape, not per tick).
    series_ms: f64,
    alerts: usize,
    /// Each indicator's query run alone (median of 3), slowest first; with the views it reads.
    alone_ms: Vec<(String, f64)>,
    /// Each view computed alone (median of 3).
    views_ms: Vec<(String, f64)>,
}

/// Median over 3 ticks (after one warm-up) of a whole evaluation: snapshot, every shipped
/// indicator and rule, and the `/metrics` series.
/// The median wall time of three runs of `run`, in ms.
async fn median_ms_of_3<F: std::future::Future<Output = ()>>(run: impl Fn() -> F) -> f64 {
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        run().await;
        runs.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    median(runs)
}

/// A line of one unit created and received in full at `t` (a delivery in the window), promised
/// `promised_day` days after T0: the events `{id}` and `{id}r`.
fn completed_line(id: &str, po: &str, supplier: usize, promised_day: i64, t: i64) -> [String; 2] {
    [
        format!(
            r#"{{"event_id":"{id}","kind":"po_line_created","event_time":"{}","source":"b","po":"{po}","line":1,"supplier":"S{supplier}","part":"P1","site":"D1","quantity":1,"unit_price":1,"order_date":"{}","promised_date":"{}"}}"#,
            iso(t),
            date(T0),
            date(T0 + promised_day * DAY_MS)
        ),
        format!(
            r#"{{"event_id":"{id}r","kind":"goods_receipt","event_time":"{}","source":"b","po":"{po}","line":1,"supplier":"S{supplier}","quantity":1,"received_at":"{}"}}"#,
            iso(t),
            iso(t)
        ),
    ]
}

/// A step's worth of new events before each measured tick: 250 lines created and received in
/// full (250 new deliveries: 1,000 a second at the service's 250 ms step), so that a snapshot
/// has new rows to add to the last one's tables.
fn step_of_completions(state: &mut State, round: usize) {
    let t = T0 + 20 * DAY_MS + round as i64 * 250;
    let mut events = Vec::with_capacity(500);
    for k in 0..250 {
        let (id, po) = (format!("s{round}-{k}"), format!("ST-{round}-{k}"));
        events.extend(completed_line(&id, &po, k * 37 % 10_000, 19, t));
    }
    let refs: Vec<Option<&[u8]>> = events.iter().map(|e| Some(e.as_bytes())).collect();
    if let Some(b) = EventDecoder::new(1 << 20).decode(&refs).batch {
        state.apply(&b, t);
    }
}

async fn bench_eval(book: &pipeline::RuleBook, state: &mut State) -> EvalFigures {
    let mut engine = AlertEngine::new(&book.rules);
    let mut first_snapshot_ms = 0.0;
    let mut snap_ms = Vec::new();
    let mut tick_ms = Vec::new();
    let mut queries_ms = Vec::new();
    let mut series_ms = Vec::new();
    let mut alerts = 0;
    for round in 0..4 {
        if round > 0 {
            step_of_completions(state, round);
        }
        let t = Instant::now();
        let tables = state.snapshot();
        let s = t.elapsed().as_secs_f64() * 1000.0;
        if round == 0 {
            first_snapshot_ms = s;
        }
        let t = Instant::now();
        let out = tick(book, &mut engine, &tables, 10_000).await;
        let e = t.elapsed().as_secs_f64() * 1000.0;
        for err in &out.errors {
            eprintln!("evaluation error: {err}");
        }
        alerts = out
            .alerts
            .iter()
            .filter(|a| a.state != AlertState::Resolved)
            .count();
        let evaluation = Evaluation::new(0, 0, 0, out.alerts, out.results, 10_000, Vec::new());
        let t = Instant::now();
        let series: usize = evaluation
            .families()
            .iter()
            .map(|f| f.get_metric().len())
            .sum();
        let r = t.elapsed().as_secs_f64() * 1000.0;
        std::hint::black_box(series);
        let t = Instant::now();
        drop(book.indicators.evaluate(&tables).await);
        let q = t.elapsed().as_secs_f64() * 1000.0;
        if round > 0 {
            snap_ms.push(s);
            tick_ms.push(e);
            queries_ms.push(q);
            series_ms.push(r);
        }
    }
    // Each query alone: the tick runs them concurrently, so its time does not say which
    // ones it goes to.
    let tables = state.snapshot();
    let mut alone_ms = Vec::new();
    for (i, def) in book.indicators.defs().iter().enumerate() {
        let ms = median_ms_of_3(|| async {
            drop(book.indicators.evaluate_alone(&tables, i).await);
        })
        .await;
        alone_ms.push((def.name.clone(), ms));
    }
    alone_ms.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut views_ms = Vec::new();
    for (i, view) in book.indicators.views().iter().enumerate() {
        let ms = median_ms_of_3(|| async {
            drop(book.indicators.compute_view_alone(&tables, i).await);
        })
        .await;
        views_ms.push((view.name.clone(), ms));
    }
    EvalFigures {
        alone_ms,
        views_ms,
        snapshot_ms: median(snap_ms),
        first_snapshot_ms,
        queries_ms: median(queries_ms),
        tick_ms: median(tick_ms),
        series_ms: median(series_ms),
        alerts,
    }
}

struct Broker(Child, #[allow(dead_code)] tempfile::TempDir);
impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tansu on a free port with `storage` (a tansu storage URL).
fn start_tansu(storage: &str) -> Option<(Broker, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = tempfile::tempdir().ok()?;
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new("tansu")
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", storage])
        // A RUST_LOG meant for chainwatch would have tansu log every request: formatting
        // those lines took most of its CPU and it fell behind the producer.
        .env("RUST_LOG", "warn")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let broker = Broker(child, dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((broker, format!("127.0.0.1:{port}")))
}

/// A per-topic counter summed over the input topics.
fn by_topic(v: &prometheus::IntCounterVec, topics: &chainwatch::config::Topics) -> u64 {
    topics
        .all()
        .iter()
        .map(|t| v.with_label_values(&[t]).get())
        .sum()
}

/// tansu's storage for the end-to-end run and the soak (both replay history, so alignment pauses
/// and resumes partitions): SQLite, the correct one.
///
/// tansu 0.6.0's memory storage gets offsets inside a record batch wrong: its high watermark is
/// one past the last batch's base offset, and a fetch that starts inside a batch returns
/// nothing (one batch of 3,000 records: high watermark 1, a fetch from offset 500 returns no
/// record; SQLite: 3,000 and 2,500). chainwatch fetches from inside batches (resuming a paused
/// partition, resuming after a rebalance where it left off): from memory storage it skipped up
/// to 32 K of 817 K offsets or stopped short of the end (the stalls), with alignment on or off.
/// A bare consumer reading from offset 0 never starts inside a batch. SQLite is correct but
/// slow (about 33 K msgs/s here): the ratio then measures the broker more than chainwatch.
const CORRECT_STORAGE: &str = "sqlite://tansu.db";

/// tansu with `storage` and chainwatch's topics created, and a config for it at evaluation
/// `step`; checkpoints and other files go to the returned directory.
async fn broker_setup(
    storage: &str,
    step: Duration,
) -> Option<(Broker, String, tempfile::TempDir, Config)> {
    let (broker, brokers) = start_tansu(storage)?;
    let dir = tempfile::tempdir().ok()?;
    let config = broker_config(&brokers, step, dir.path());
    chainwatch::ingest::kafka::ensure_topics(&config.kafka, &brokers)
        .await
        .ok()?;
    Some((broker, brokers, dir, config))
}

fn broker_config(brokers: &str, step: Duration, checkpoints: &Path) -> Config {
    let mut config = Config::default();
    config.kafka.brokers = Some(brokers.to_string());
    config.kafka.partitions = 2;
    config.http.listen = "127.0.0.1:0".parse().expect("valid address");
    config.evaluation.rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    config.evaluation.step = step;
    config.checkpoint.dir = checkpoints.to_path_buf();
    config
}

/// A producer for the broker benchmarks (batches of up to 10,000 records).
fn bench_producer(brokers: &str) -> Option<ThreadedProducer<DefaultProducerContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .ok()
}

/// Send one payload, waiting while the producer's queue is full.
fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, partition: i32, payload: &[u8]) {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .payload(payload)
        .partition(partition);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                record = r;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

/// Applied + rejected events so far (what ingest has finished with).
fn done_count(running: &pipeline::Running) -> u64 {
    let applied = running
        .shared
        .state
        .read()
        .map(|s| s.records_applied + s.duplicates)
        .unwrap_or(0);
    let rejected: u64 = RejectReason::ALL
        .iter()
        .map(|r| {
            running
                .shared
                .metrics
                .rejected
                .with_label_values(&[r.as_str()])
                .get()
        })
        .sum();
    applied + rejected
}

struct E2e {
    events: usize,
    chainwatch: f64,
    bare: f64,
    /// Events applied when chainwatch stopped making progress short of all of them.
    stalled: Option<(u64, usize)>,
    /// `GET /healthz` response times (ms, sorted) while chainwatch caught up: a runtime worker
    /// held by CPU work answers late.
    healthz_ms: Vec<f64>,
}

/// `GET /healthz` every 20 ms until `stop` turns true: each response time in ms, sorted. A
/// request that fails counts as its time to fail.
async fn probe_healthz(base: String, stop: tokio::sync::watch::Receiver<bool>) -> Vec<f64> {
    let client = reqwest::Client::new();
    let url = format!("{base}/healthz");
    let mut took = Vec::new();
    while !*stop.borrow() {
        let t = Instant::now();
        let _ = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        took.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    took.sort_by(f64::total_cmp);
    took
}

/// A scaled simulator history (a realistic mix of all kinds) produced to tansu, then drained
/// by a bare consumer and by chainwatch, one after the other, in the same run.
async fn bench_end_to_end(suppliers: usize, days: i64) -> Option<E2e> {
    let (_broker, brokers, _dir, config) =
        broker_setup(CORRECT_STORAGE, Duration::from_secs(86_400)).await?;
    let producer = bench_producer(&brokers)?;
    let mut sim = Simulator::new(SimConfig {
        tier1_suppliers: suppliers,
        tier2_suppliers: suppliers / 2,
        ..SimConfig::default()
    });
    let until = sim.now() + chrono::Duration::days(days);
    let events = sim.run_until(until);
    let last = events
        .iter()
        .map(|e| e.event_time.timestamp_millis())
        .max()?;
    let topics = config.kafka.topics.clone();
    let mut n = 0usize;
    let produce_start = Instant::now();
    for (i, e) in events.iter().enumerate() {
        send(
            &producer,
            topics.for_source(e.source),
            (i % 2) as i32,
            &e.payload,
        );
        n += 1;
    }
    // Close the last evaluation step on every partition: event time moves only with events.
    let beyond = last + 2 * DAY_MS;
    let mut heartbeats = 0;
    for topic in topics.all() {
        for partition in 0..2 {
            let hb = format!(
                r#"{{"event_id":"hb-{topic}-{partition}","kind":"heartbeat","event_time":"{}","source":"bench"}}"#,
                iso(beyond)
            );
            send(&producer, topic, partition, hb.as_bytes());
            n += 1;
            heartbeats += 1;
        }
    }
    if let Err(e) = producer.flush(Duration::from_secs(900)) {
        eprintln!("  (producing did not finish: {e})");
        return None;
    }
    drop(events);
    eprintln!(
        "  (produced {n} events in {:.0} s)",
        produce_start.elapsed().as_secs_f64()
    );

    // Bare consumer: no decoding, just drain every message of the three topics.
    let bare_brokers = brokers.clone();
    let bare_topics = topics.all().map(str::to_string);
    let bare = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bare_brokers)
            .set("broker.address.family", "v4")
            .set("group.id", "bench-bare")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .ok()?;
        let refs: Vec<&str> = bare_topics.iter().map(String::as_str).collect();
        c.subscribe(&refs).ok()?;
        let mut got = 0usize;
        let mut start = None;
        let deadline = Instant::now() + Duration::from_secs(600);
        while got < n && Instant::now() < deadline {
            if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
                start.get_or_insert_with(Instant::now);
                got += 1;
            }
        }
        if got < n {
            eprintln!("  (bare consumer read {got} of {n})");
        }
        Some(got as f64 / start?.elapsed().as_secs_f64())
    })
    .await
    .ok()??;
    eprintln!("  (bare consumer done)");

    // The heartbeats' own step stays open: done when every other event is applied.
    let target = n - heartbeats;
    let running = pipeline::start(config).await.ok()?;
    let (stop_probe, probe_stop) = tokio::sync::watch::channel(false);
    let probe = tokio::spawn(probe_healthz(
        format!("http://{}", running.http_addr),
        probe_stop,
    ));
    let mut first: Option<Instant> = None;
    // A run takes seconds: a minute without progress is a stall, reported as such.
    let mut progress = (0, Instant::now());
    let stalled = loop {
        let done = done_count(&running);
        if done > 0 {
            first.get_or_insert_with(Instant::now);
        }
        if done as usize >= target {
            break None;
        }
        if done != progress.0 {
            progress = (done, Instant::now());
        } else if progress.1.elapsed() > Duration::from_secs(60) {
            break Some((done, target));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let chainwatch = target as f64 / first?.elapsed().as_secs_f64().max(1e-9);
    let _ = stop_probe.send(true);
    let healthz_ms = probe.await.unwrap_or_default();
    if stalled.is_some() {
        let m = &running.shared.metrics;
        let (received, skipped) = (
            by_topic(&m.messages, &topics),
            by_topic(&m.skipped_offsets, &topics),
        );
        eprintln!("  (stalled: messages received {received} of {n}, offsets skipped {skipped})");
        // Which partition starves, and how: its offsets and its clock.
        let base = format!("http://{}", running.http_addr);
        if let Ok(r) = reqwest::get(format!("{base}/api/status")).await {
            if let Ok(status) = r.json::<serde_json::Value>().await {
                eprintln!("  (partitions: {})", status["partitions"]);
            }
        }
        if let Ok(r) = reqwest::get(format!("{base}/metrics")).await {
            for line in r.text().await.unwrap_or_default().lines() {
                if line.starts_with("chainwatch_ingest_partition_")
                    || line.starts_with("chainwatch_state_watermark")
                    || line.starts_with("chainwatch_state_buffered")
                {
                    eprintln!("  ({line})");
                }
            }
        }
    }
    running.shutdown().await;
    Some(E2e {
        events: n,
        chainwatch,
        bare,
        stalled,
        healthz_ms,
    })
}

struct Latency {
    rate: f64,
    /// Probes sent, and those whose alert was seen before the deadline.
    probes: usize,
    seen: usize,
    /// The same probes as a bare consumer of their topic received them (the broker's part).
    broker_p50_ms: f64,
    broker_p99_ms: f64,
    /// Over all probes sent: one never seen counts as infinitely late.
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    lag_end: u64,
    /// Evaluations run, and their mean duration (the evaluator's histogram).
    evaluations: u64,
    eval_mean_ms: f64,
    /// The slowest probes: (seconds after the first probe, latency ms).
    slowest: Vec<(f64, f64)>,
    /// From the load's start until chainwatch had caught up with it (probes start then).
    warm_up: Duration,
    /// Offsets the consumer jumped over: tansu's memory storage loses records on a fetch
    /// from inside a batch (see `CORRECT_STORAGE`); a run with any is not valid.
    skipped: u64,
}

/// Each probe's latency in ms, sorted. A probe sent but never seen is a miss, not a sample
/// to leave out: it counts as infinitely late, so misses push the percentiles up.
fn latencies_ms(sent: &[Option<Instant>], seen: &[Option<Instant>]) -> Vec<f64> {
    let mut lat: Vec<f64> = sent
        .iter()
        .zip(seen)
        .filter_map(|(s, r)| {
            let s = s.as_ref()?;
            Some(r.as_ref().map_or(f64::INFINITY, |r| {
                r.duration_since(*s).as_secs_f64() * 1000.0
            }))
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    lat
}

/// The `q` quantile of sorted samples (infinite when there are none).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::INFINITY;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// A latency in ms; a probe never seen is "missed".
fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0} ms")
    } else {
        "missed".to_string()
    }
}

/// Copy a directory tree (the indicators, their `views/` included).
fn copy_dir(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let p = entry?.path();
        let Some(name) = p.file_name() else { continue };
        if p.is_dir() {
            copy_dir(&p, &dst.join(name))?;
        } else {
            std::fs::copy(&p, dst.join(name))?;
        }
    }
    Ok(())
}

/// The rules with `PartCoverageGap` firing at once (its `for: 6h` would hold a probe 6 h of
/// event time): the probe alert is that rule's.
fn latency_rules(dir: &Path) -> std::io::Result<PathBuf> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    let dst = dir.join("rules");
    copy_dir(&src.join("indicators"), &dst.join("indicators"))?;
    for entry in std::fs::read_dir(&src)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "yaml") {
            let mut text = std::fs::read_to_string(&p)?;
            if p.file_name().is_some_and(|n| n == "inventory.yaml") {
                let patched = text.replacen("for: 6h", "for: 0s", 1);
                if patched == text {
                    return Err(std::io::Error::other(
                        "rules/inventory.yaml: PartCoverageGap no longer has `for: 6h`",
                    ));
                }
                text = patched;
            }
            std::fs::write(dst.join(p.file_name().unwrap_or_default()), text)?;
        }
    }
    Ok(dst)
}

/// The latency run's evaluation step. A probe waits for its step to close, so the step is a
/// floor under the latency (with 1 s the slowest probes were those just after a step began).
const LATENCY_STEP: Duration = Duration::from_millis(250);

/// Background events at `rate`/s with event time = now (ERP lines and receipts, WMS
/// positions, logistics milestones), and every 100 ms a probe: a stock position of 0 for a part
/// whose next inbound is 10 days out, which `PartCoverageGap` turns into a critical alert.
/// Latency: from producing the probe to its alert in the evaluation `/metrics` renders.
async fn bench_latency(rate: usize, seconds: u64) -> Option<Latency> {
    // SQLite: tansu's memory storage loses records on a fetch from inside a batch, and this
    // run starts such fetches whenever it resumes a partition (docs/benchmarks.md).
    let (_broker, brokers, dir, mut config) = broker_setup(CORRECT_STORAGE, LATENCY_STEP).await?;
    config.evaluation.rules = match latency_rules(dir.path()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("latency: the rules could not be copied: {e}");
            return None;
        }
    };
    config.allowed_lateness = Duration::ZERO;
    config.batch.linger = Duration::from_millis(20);
    let topics = config.kafka.topics.clone();
    let producer = Arc::new(bench_producer(&brokers)?);
    let probes = (seconds * 10) as usize;
    let now_ms = || chrono::Utc::now().timestamp_millis();
    // Open lines for the probe parts, due in 10 days.
    let t = now_ms();
    for k in 0..probes {
        let line = format!(
            r#"{{"event_id":"probe-line-{k}","kind":"po_line_created","event_time":"{}","source":"bench","po":"PROBE-{k}","line":1,"supplier":"S-PROBE","part":"PROBE-{k}","site":"LAT","quantity":100,"unit_price":1,"order_date":"{}","promised_date":"{}"}}"#,
            iso(t),
            date(t),
            date(t + 10 * DAY_MS)
        );
        send(&producer, &topics.erp, (k % 2) as i32, line.as_bytes());
    }
    producer.flush(Duration::from_secs(30)).ok()?;
    let running = match pipeline::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("latency: chainwatch did not start: {e}");
            return None;
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    // Probes start once chainwatch has caught up with the load (joined its group, read and
    // evaluated its first seconds): the figure is for a sustained rate, not for the start.
    let warm = Arc::new(AtomicBool::new(false));
    let sent_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; probes]));
    // The broker alone, side by side: a bare consumer of the probes' topic notes when each
    // probe arrives. What it sees is the floor that tansu (and the producer queue) sets.
    let bare = {
        let stop = stop.clone();
        let brokers = brokers.clone();
        let topic = topics.wms.clone();
        std::thread::spawn(move || -> Vec<Option<Instant>> {
            let mut got = vec![None; probes];
            let Ok(c) = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("broker.address.family", "v4")
                .set("group.id", "bench-latency-bare")
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "10")
                .create::<BaseConsumer>()
            else {
                return got;
            };
            let mut tpl = rdkafka::TopicPartitionList::new();
            for p in 0..2 {
                let _ = tpl.add_partition_offset(&topic, p, rdkafka::Offset::Beginning);
            }
            if c.assign(&tpl).is_err() {
                return got;
            }
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(m)) = c.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let k = m
                    .payload()
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .and_then(|p| p.split(r#""event_id":"probe-"#).nth(1))
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|k| k.parse::<usize>().ok());
                if let Some(k) = k.filter(|k| *k < probes) {
                    got[k].get_or_insert_with(Instant::now);
                }
            }
            got
        })
    };
    let load = {
        let producer = producer.clone();
        let stop = stop.clone();
        let sent_at = sent_at.clone();
        let topics = topics.clone();
        let warm = warm.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut sent = 0usize;
            let mut next_probe = 0usize;
            let mut probes_from: Option<Duration> = None;
            while !stop.load(Ordering::Relaxed) {
                let elapsed = start.elapsed();
                let due = (elapsed.as_secs_f64() * rate as f64) as usize;
                let t = iso(chrono::Utc::now().timestamp_millis());
                while sent < due {
                    let i = sent;
                    let (topic, payload) = match i % 4 {
                        0 => (
                            &topics.erp,
                            format!(
                                r#"{{"event_id":"b{i}","kind":"po_line_created","event_time":"{t}","source":"bench","po":"B-{}","line":{},"supplier":"S{}","part":"P{}","site":"D{}","quantity":100,"unit_price":2,"order_date":"2026-01-01","promised_date":"2099-01-01"}}"#,
                                i / 40,
                                i % 40,
                                i % 10_000,
                                i % 5_000,
                                i % 3
                            ),
                        ),
                        1 => (
                            &topics.erp,
                            format!(
                                r#"{{"event_id":"b{i}","kind":"goods_receipt","event_time":"{t}","source":"bench","po":"B-{}","line":{},"supplier":"S{}","quantity":100,"received_at":"{t}"}}"#,
                                (i - 1) / 40,
                                (i - 1) % 40,
                                (i - 1) % 10_000
                            ),
                        ),
                        2 => (
                            &topics.wms,
                            format!(
                                r#"{{"event_id":"b{i}","kind":"inventory_position","event_time":"{t}","source":"bench","site":"D{}","part":"P{}","on_hand":1000,"daily_demand":10}}"#,
                                i % 3,
                                i % 5_000
                            ),
                        ),
                        _ => (
                            &topics.logistics,
                            format!(
                                r#"{{"event_id":"b{i}","kind":"heartbeat","event_time":"{t}","source":"bench-carrier"}}"#
                            ),
                        ),
                    };
                    // Both partitions of every topic take events: with `i % 2` each topic
                    // fed one partition only (i % 4 picks the topic), and the empty ones held
                    // the watermark until they counted as idle.
                    send(&producer, topic, ((i / 4) % 2) as i32, payload.as_bytes());
                    sent += 1;
                }
                if probes_from.is_none() && warm.load(Ordering::Relaxed) {
                    probes_from = Some(elapsed);
                }
                if next_probe < probes
                    && probes_from.is_some_and(|from| {
                        elapsed >= from + Duration::from_millis(100 * next_probe as u64)
                    })
                {
                    let k = next_probe;
                    let probe = format!(
                        r#"{{"event_id":"probe-{k}","kind":"inventory_position","event_time":"{t}","source":"bench","site":"LAT","part":"PROBE-{k}","on_hand":0,"daily_demand":10}}"#
                    );
                    if let Ok(mut s) = sent_at.lock() {
                        s[k] = Some(Instant::now());
                    }
                    send(&producer, &topics.wms, (k % 2) as i32, probe.as_bytes());
                    next_probe += 1;
                }
                producer.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_millis(1));
            }
            sent as f64 / start.elapsed().as_secs_f64()
        })
    };

    // Warm-up: until the evaluated watermark is within 2 s of the wall clock (the load's
    // event time), at least 2 s after the load started; at most 60 s.
    let load_started = Instant::now();
    let warm_deadline = load_started + Duration::from_secs(60);
    loop {
        let evaluated = running
            .shared
            .state
            .read()
            .map(|s| s.evaluated_to)
            .unwrap_or(0);
        if (load_started.elapsed() >= Duration::from_secs(2) && evaluated >= now_ms() - 2_000)
            || Instant::now() >= warm_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let warm_up = load_started.elapsed();
    warm.store(true, Ordering::Relaxed);
    // Watch the published evaluation (what /metrics renders) for each probe's alert.
    let mut seen_at: Vec<Option<Instant>> = vec![None; probes];
    let deadline = Instant::now() + Duration::from_secs(seconds + 30);
    while Instant::now() < deadline && seen_at.iter().any(Option::is_none) {
        let evaluation = running.shared.evaluation.read().ok().map(|e| e.clone());
        if let Some(e) = evaluation {
            let now = Instant::now();
            for a in &e.alerts {
                if a.rule == "PartCoverageGap" && a.state == AlertState::Firing {
                    if let Some(k) = a
                        .labels
                        .get("part")
                        .and_then(|p| p.strip_prefix("PROBE-"))
                        .and_then(|k| k.parse::<usize>().ok())
                    {
                        if k < probes && seen_at[k].is_none() {
                            seen_at[k] = Some(now);
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // One look through HTTP: the probe alerts are on /metrics, not only in memory.
    let metrics = reqwest::get(format!("http://{}/metrics", running.http_addr))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    if !metrics.contains("part=\"PROBE-0\"") {
        eprintln!("latency: the probe alert is not on /metrics");
    }
    stop.store(true, Ordering::Relaxed);
    let achieved = load.join().ok()?;
    let bare_seen = bare.join().unwrap_or_default();
    let lag_end = running
        .shared
        .partitions
        .read()
        .map(|p| p.iter().map(|s| s.lag.max(0)).sum::<i64>() as u64)
        .unwrap_or(0);
    let skipped = by_topic(&running.shared.metrics.skipped_offsets, &topics);
    let evaluations = running.shared.metrics.eval_duration.get_sample_count();
    let eval_mean_ms =
        running.shared.metrics.eval_duration.get_sample_sum() * 1e3 / evaluations.max(1) as f64;
    running.shutdown().await;
    let sent = sent_at.lock().ok()?.clone();
    // Probe k goes out k x 100 ms after the warm-up.
    let mut slowest: Vec<(f64, f64)> = sent
        .iter()
        .zip(&seen_at)
        .enumerate()
        .map(|(k, (s, r))| {
            let ms = match (s, r) {
                (Some(s), Some(r)) => r.saturating_duration_since(*s).as_secs_f64() * 1e3,
                _ => f64::INFINITY,
            };
            (k as f64 * 0.1, ms)
        })
        .collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    slowest.truncate(5);
    let lat = latencies_ms(&sent, &seen_at);
    let seen = lat.iter().filter(|l| l.is_finite()).count();
    if seen == 0 {
        eprintln!(
            "latency: no probe alert was seen ({} probes sent)",
            sent.iter().flatten().count()
        );
        return None;
    }
    let broker = latencies_ms(&sent, &bare_seen);
    let pct = |q: f64| percentile(&lat, q);
    Some(Latency {
        rate: achieved,
        probes: lat.len(),
        seen,
        broker_p50_ms: percentile(&broker, 0.5),
        broker_p99_ms: percentile(&broker, 0.99),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: lat[lat.len() - 1],
        lag_end,
        evaluations,
        eval_mean_ms,
        slowest,
        warm_up,
        skipped,
    })
}

/// Soak: the scaled simulator's history produced at a steady `rate` while chainwatch consumes
/// it; every 30 s the process's resident memory and the state's sizes. A warm-up runs until
/// the state's watermark has passed the retention window (90 days of event time after the
/// first event): until then the window is still filling and memory grows as it should. Then `minutes` are measured, and the
/// target compares resident memory at the start of the measured part with its end.
async fn bench_soak(suppliers: usize, rate: usize, minutes: u64) -> Option<()> {
    // The Rust heap is counted from here on: chainwatch's share and the load generator's
    // (librdkafka's buffers are C allocations, only in RSS).
    LIVE.store(0, Ordering::SeqCst);
    SIM_LIVE.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let (_broker, brokers, _dir, config) =
        broker_setup(CORRECT_STORAGE, Duration::from_secs(86_400)).await?;
    let topics = config.kafka.topics.clone();
    let running = pipeline::start(config).await.ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let producer = bench_producer(&brokers)?;
    // Messages waiting in the producer's queue (not yet acknowledged by tansu): they are in
    // this process's memory too.
    let queue = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let feeder = {
        let stop = stop.clone();
        let produced = produced.clone();
        let queue = queue.clone();
        let topics = topics.clone();
        std::thread::spawn(move || {
            SIM_THREAD.with(|c| c.set(true));
            let mut sim = Simulator::new(SimConfig {
                tier1_suppliers: suppliers,
                tier2_suppliers: suppliers / 2,
                ..SimConfig::default()
            });
            let start = Instant::now();
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let until = sim.now() + chrono::Duration::hours(6);
                for e in sim.run_until(until) {
                    while sent as f64 > start.elapsed().as_secs_f64() * rate as f64 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    send(
                        &producer,
                        topics.for_source(e.source),
                        (sent % 2) as i32,
                        &e.payload,
                    );
                    sent += 1;
                    produced.store(sent as u64, Ordering::Relaxed);
                    if sent % 1024 == 0 {
                        queue.store(i64::from(producer.in_flight_count()), Ordering::Relaxed);
                    }
                }
            }
        })
    };
    println!(
        "  {:>5} {:>10} {:>10} {:>8} {:>8} {:>7} {:>9} {:>10} {:>10} {:>9} {:>9} {:>6} {:>11} {:>10}",
        "t (s)",
        "produced",
        "applied",
        "RSS MiB",
        "heap MiB",
        "sim MiB",
        "buffered",
        "open lines",
        "shipments",
        "positions",
        "window",
        "paused",
        "clocks-wm d",
        "prod queue"
    );
    let started = Instant::now();
    // Whole run, and the measured part (after the warm-up).
    let mut rss = Vec::new();
    let mut measured: Vec<u64> = Vec::new();
    let total = Duration::from_secs(minutes * 60);
    // The warm-up gives up after this long (the feed not keeping up, say): then the whole run
    // is what there is, and the line says so.
    let warm_up_cap = Duration::from_secs(15 * 60);
    let window_ms = Retention::default().window_ms;
    let mut first_watermark: Option<i64> = None;
    let mut measuring_since: Option<Instant> = None;
    loop {
        if let Some(since) = measuring_since {
            if since.elapsed() >= total {
                break;
            }
        } else if started.elapsed() >= warm_up_cap {
            println!(
                "  warm-up: the window did not fill within {} s; no measured part",
                warm_up_cap.as_secs()
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        let s = running.shared.state.read().ok()?.clone();
        let r = rss_bytes().unwrap_or(0) >> 20;
        rss.push(r);
        if s.watermark > 0 {
            let first = *first_watermark.get_or_insert(s.watermark);
            if measuring_since.is_none() && s.watermark - first >= window_ms + DAY_MS {
                measuring_since = Some(Instant::now());
                println!(
                    "  -- window full (watermark {:.0} days past the first): the next {minutes} min are measured --",
                    (s.watermark - first) as f64 / DAY_MS as f64
                );
            }
        }
        if measuring_since.is_some() {
            measured.push(r);
        }
        // Partition clocks relative to the watermark (days): how far event time is spread
        // over the partitions, i.e. what the buffer has to hold.
        let clocks: Vec<f64> = {
            use prometheus::core::Collector;
            running
                .shared
                .metrics
                .partition_event_time
                .collect()
                .iter()
                .flat_map(|f| f.get_metric().iter().map(|m| m.get_gauge().get_value()))
                .collect()
        };
        let wm = s.watermark as f64 / 1000.0;
        let spread = |f: fn(f64, f64) -> f64, init: f64| clocks.iter().copied().fold(init, f);
        let span = if clocks.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{:+.1}..{:+.1}",
                (spread(f64::min, f64::MAX) - wm) / 86_400.0,
                (spread(f64::max, f64::MIN) - wm) / 86_400.0
            )
        };
        println!(
            "  {:>5.0} {:>10} {:>10} {:>8} {:>8} {:>7} {:>9} {:>10} {:>10} {:>9} {:>9} {:>6} {:>11} {:>10}",
            started.elapsed().as_secs_f64(),
            produced.load(Ordering::Relaxed),
            s.records_applied,
            r,
            (LIVE.load(Ordering::Relaxed) - SIM_LIVE.load(Ordering::Relaxed)) >> 20,
            SIM_LIVE.load(Ordering::Relaxed) >> 20,
            s.buffered_events,
            s.open_po_lines,
            s.in_flight_shipments,
            s.inventory_positions,
            s.window_records,
            running.shared.metrics.paused_partitions.get(),
            span,
            queue.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.join();
    let skipped: u64 = by_topic(&running.shared.metrics.skipped_offsets, &topics);
    let late = running
        .shared
        .metrics
        .rejected
        .with_label_values(&["late_event"])
        .get();
    let lag_errors = running.shared.metrics.lag_query_errors.get();
    running.shutdown().await;
    COUNTING.store(false, Ordering::SeqCst);
    // Records the broker never delivered would make the figures above those of a smaller load.
    println!("  offsets skipped by the consumer: {skipped} (must be 0)");
    // The simulator's events are on time: a late one means a partition turned idle too early.
    println!("  events rejected as late: {late} (must be 0); lag queries failed: {lag_errors}");
    let pct = |from: u64, to: u64| (to as f64 / from.max(1) as f64 - 1.0) * 100.0;
    let third = rss.get(rss.len() / 3).copied().unwrap_or(0);
    let last = rss.last().copied().unwrap_or(0);
    println!(
        "  resident memory, whole run (warm-up included), from a third to the end: {third} -> {last} MiB ({:+.1}%)",
        pct(third, last)
    );
    match (measured.first(), measured.last()) {
        (Some(&from), Some(&to)) => {
            let peak = measured.iter().copied().max().unwrap_or(to);
            println!(
                "  resident memory over the measured {minutes} min (window full): {from} -> {to} MiB ({:+.1}%), peak {peak} MiB ({:+.1}%)   target flat (within 10%): {}",
                pct(from, to),
                pct(from, peak),
                mark(to as f64 <= from as f64 * 1.1)
            );
        }
        _ => println!("  target flat (within 10%): not measured (the warm-up never ended)"),
    }
    Some(())
}

/// The bench's options, for `--help` and for refusing what it does not know.
const USAGE: &str = "usage: bench [--quick] [--no-broker] [--only=SECTION,...] [--soak-rate=N] \
[--latency-rate=N] [--explain=INDICATOR_OR_VIEW]
  --quick             smaller sizes (a few minutes)
  --no-broker         skip the sections that need tansu (e2e, latency, soak)
  --only=...          decode, apply, eval, memory, e2e, latency, soak (soak only when named)
  --soak-rate=N       the soak's events/s (default 50000; 20000 with --quick)
  --latency-rate=N    the latency run's events/s (default 10000; 5000 with --quick)
  --explain=NAME      EXPLAIN ANALYZE of that indicator or view at the largest eval size";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    // chainwatch's own log, only when asked for (`RUST_LOG=chainwatch=info`), to stderr: the
    // figures on stdout stay clean.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let known = ["--quick", "--no-broker"];
    let known_prefixes = ["--only=", "--soak-rate=", "--latency-rate=", "--explain="];
    if let Some(bad) = args
        .iter()
        .skip(1)
        .find(|a| !known.contains(&a.as_str()) && !known_prefixes.iter().any(|p| a.starts_with(p)))
    {
        anyhow::bail!("unknown option {bad:?}\n{USAGE}");
    }
    let quick = args.iter().any(|a| a == "--quick");
    let no_broker = args.iter().any(|a| a == "--no-broker");
    let only: Option<Vec<String>> = args
        .iter()
        .find_map(|a| a.strip_prefix("--only="))
        .map(|s| s.split(',').map(str::to_string).collect());
    // The soak's rate, events/s (default 50,000; 20,000 with --quick).
    let rate_arg = |name: &str| -> anyhow::Result<Option<usize>> {
        match args.iter().find_map(|a| a.strip_prefix(name)) {
            Some(r) => Ok(Some(
                r.parse().map_err(|e| anyhow::anyhow!("{name}{r}: {e}"))?,
            )),
            None => Ok(None),
        }
    };
    let soak_rate = rate_arg("--soak-rate=")?;
    // The latency run's rate (default 10,000; 5,000 with --quick): below what tansu's SQLite
    // storage takes in on these 2 cores (about 17,000/s, beyond which the probes queue in the
    // producer), far from the target's 100,000.
    let latency_rate = rate_arg("--latency-rate=")?;
    // `--explain=<indicator or view>`: EXPLAIN ANALYZE of that query at the largest eval size.
    let explain = args.iter().find_map(|a| a.strip_prefix("--explain="));
    let run = |section: &str| {
        only.as_ref().is_none_or(|o| o.iter().any(|s| s == section))
            && !(no_broker && matches!(section, "e2e" | "latency" | "soak"))
            // The soak takes 10 minutes: only when asked for (`make soak`).
            && (section != "soak" || only.is_some())
    };
    // Sections that were to run and could not (they fail the run at the end).
    let mut skipped: Vec<&str> = Vec::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "chainwatch benchmarks ({} cores, release build{})\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if quick { ", --quick sizes" } else { "" }
    );

    if run("decode") || run("apply") {
        let payloads = sim_payloads(if quick { 10 } else { 60 });
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        println!(
            "input: {} simulated events, {:.0} bytes/event on average",
            payloads.len(),
            bytes as f64 / payloads.len() as f64
        );
        if run("decode") {
            let (fast, arrow, serde, to_arrow, to_serde) = bench_decode(&payloads);
            println!(
                "decode JSON->Arrow (1 core):         {:>10.0} rows/s   arrow-json alone {:>10.0} rows/s ({:.2}x)   serde_json::Value {:>10.0} rows/s ({:.2}x)   target >= 2,000,000: {}",
                fast,
                arrow,
                to_arrow,
                serde,
                to_serde,
                mark(fast >= 2e6)
            );
        }
        if run("apply") {
            let one = bench_apply(&payloads);
            let two = bench_apply_pipelined(&payloads);
            println!(
                "decode + apply (1 thread, in memory): {:>9.0} events/s",
                one
            );
            println!(
                "decode + apply (2 threads, pipelined): {:>8.0} events/s   target >= 1,000,000 on 2 cores: {}",
                two,
                mark(two >= 1e6)
            );
        }
    }

    let sizes: &[usize] = if quick {
        &[1_000, 10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    if run("eval") {
        let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
        let book = rt
            .block_on(load_rulebook(&rules))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        println!(
            "\nevaluation tick: snapshot + {} indicators + {} rules; the /metrics series of an evaluation are built once per scrape (median of 3 after a warm-up; before each, a step of 250 lines created and received; first is the warm-up's snapshot, every table built from the records)",
            book.indicators.defs().len(),
            book.rules.rules().count()
        );
        let mut at_top: BTreeMap<usize, f64> = BTreeMap::new();
        for &n in sizes {
            for history in [1, 10] {
                let z = Sizes::scaled(n, history);
                let t = Instant::now();
                let mut state = synthetic_state(z);
                let build = t.elapsed().as_secs_f64();
                let f = rt.block_on(bench_eval(&book, &mut state));
                if let (Some(name), true) = (explain, n == *sizes.last().unwrap_or(&0)) {
                    let tables = state.snapshot();
                    match rt.block_on(book.indicators.explain_analyze(&tables, name)) {
                        Some(text) => println!("EXPLAIN ANALYZE {name}:\n{text}"),
                        None => println!("--explain={name}: no such indicator or view"),
                    }
                }
                let total = f.snapshot_ms + f.tick_ms;
                if n == *sizes.last().unwrap_or(&0) {
                    at_top.insert(history, total);
                }
                println!(
                    "  {:>9} open lines, {:>7} shipments, {:>6} positions, {:>8} window records: snapshot {:>7.1} ms (first {:>6.1}), rules {:>7.1} ms (queries {:>7.1}), total {:>7.1} ms, {:>4} alerts; series per scrape {:>6.1} ms; RSS {:>5} MiB (state built in {:.1} s)",
                    state.open_lines(),
                    state.in_flight_shipments(),
                    state.positions(),
                    state.window_records(),
                    f.snapshot_ms,
                    f.first_snapshot_ms,
                    f.tick_ms,
                    f.queries_ms,
                    total,
                    f.alerts,
                    f.series_ms,
                    rss_bytes().unwrap_or(0) >> 20,
                    build
                );
                let alone: Vec<String> = f
                    .alone_ms
                    .iter()
                    .map(|(name, ms)| format!("{name} {ms:.1}"))
                    .collect();
                let views: Vec<String> = f
                    .views_ms
                    .iter()
                    .map(|(name, ms)| format!("{name} {ms:.1}"))
                    .collect();
                println!(
                    "      each query alone (ms; an indicator's includes the views it reads): {}; views: {}",
                    alone.join(", "),
                    views.join(", ")
                );
            }
        }
        if let (Some(&one), Some(&ten)) = (at_top.get(&1), at_top.get(&10)) {
            println!(
                "  at {} lines: {:.1} ms per tick, target <= 100 ms: {};   10x history / 1x: {:.2}, target <= 1.2: {}",
                sizes.last().unwrap_or(&0),
                one,
                mark(one <= 100.0),
                ten / one,
                mark(ten / one <= 1.2)
            );
        }
    }

    if run("memory") {
        let n = *sizes.last().unwrap_or(&100_000);
        let (lines_state, line_bytes) = state_bytes(Sizes {
            lines: n,
            shipments: 0,
            positions: 0,
            completed: 0,
        });
        drop(lines_state);
        let (ship_state, ship_bytes) = state_bytes(Sizes {
            lines: 0,
            shipments: n / 10,
            positions: 0,
            completed: 0,
        });
        drop(ship_state);
        let per_line = line_bytes / n as f64;
        println!(
            "\nmemory in state (heap bytes counted by the allocator, de-duplication ids included)"
        );
        println!(
            "  per open PO line: {:>6.0} B ({} lines)   target <= 300 B: {}",
            per_line,
            n,
            mark(per_line <= 300.0)
        );
        println!(
            "  per shipment:     {:>6.0} B ({} shipments)",
            ship_bytes / (n / 10) as f64,
            n / 10
        );
    }

    if run("e2e") {
        let (suppliers, days) = if quick { (240, 10) } else { (2_400, 14) };
        println!(
            "\nend to end from tansu (SQLite storage, 2 partitions per topic, broker on the same 2 cores)"
        );
        let e2e = rt.block_on(bench_end_to_end(suppliers, days));
        match &e2e {
            Some(E2e {
                stalled: Some((done, target)),
                ..
            }) => println!(
                "  STALLED: chainwatch applied {done} of {target} events and made no progress for 60 s (no figure)"
            ),
            Some(e) => println!(
                "  {} events ({suppliers} tier-1 suppliers, {days} days): chainwatch {:>9.0} events/s   bare rdkafka consumer {:>9.0} msgs/s   ratio {:.2}   target >= 500,000/s: {}, ratio >= 0.5: {}",
                e.events,
                e.chainwatch,
                e.bare,
                e.chainwatch / e.bare,
                mark(e.chainwatch >= 5e5),
                mark(e.chainwatch / e.bare >= 0.5)
            ),
            None => {
                println!("  skipped: tansu not on PATH or the broker did not start (make deps)");
                skipped.push("e2e");
            }
        }
        if let Some(e) = e2e.as_ref().filter(|e| !e.healthz_ms.is_empty()) {
            println!(
                "  GET /healthz while catching up ({} requests, every 20 ms): p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
                e.healthz_ms.len(),
                percentile(&e.healthz_ms, 0.5),
                percentile(&e.healthz_ms, 0.99),
                e.healthz_ms.last().copied().unwrap_or(0.0),
            );
        }
    }

    if run("latency") {
        let (rate, seconds) = if quick { (5_000, 10) } else { (10_000, 30) };
        let rate = latency_rate.unwrap_or(rate);
        println!(
            "\nevent-to-alert latency through tansu at a sustained rate (SQLite storage, step {} ms, allowed lateness 0, batch linger 20 ms)",
            LATENCY_STEP.as_millis()
        );
        match rt.block_on(bench_latency(rate, seconds)) {
            Some(l) if l.skipped > 0 => println!(
                "  INVALID: the consumer skipped {} offsets (no figure)",
                l.skipped
            ),
            Some(l) => {
                println!(
                    "  {:.0} events/s for {seconds} s, {} of {} probes seen: p50 {}, p99 {}, max {}, lag at the end {}   target p99 <= 1 s at 100,000/s: {}",
                    l.rate,
                    l.seen,
                    l.probes,
                    ms(l.p50_ms),
                    ms(l.p99_ms),
                    ms(l.max_ms),
                    l.lag_end,
                    mark(l.p99_ms <= 1000.0 && l.rate >= 95_000.0)
                );
                println!(
                    "  the broker alone (a bare consumer of the probes' topic, same run): p50 {}, p99 {}",
                    ms(l.broker_p50_ms),
                    ms(l.broker_p99_ms)
                );
                let slowest: Vec<String> = l
                    .slowest
                    .iter()
                    .map(|(at, lat)| format!("{} at {at:.1} s", ms(*lat)))
                    .collect();
                println!(
                    "  warm-up {:.1} s; {} evaluations, {:.0} ms each on average; slowest probes (time after the first): {}",
                    l.warm_up.as_secs_f64(),
                    l.evaluations,
                    l.eval_mean_ms,
                    slowest.join(", ")
                );
            }
            None => {
                println!(
                    "  skipped: tansu not on PATH, the broker did not start or no probe alert fired"
                );
                skipped.push("latency");
            }
        }
    }

    if run("soak") {
        let (suppliers, rate, minutes) = if quick {
            (240, 20_000, 2)
        } else {
            (2_400, 50_000, 10)
        };
        let rate = soak_rate.unwrap_or(rate);
        println!(
            "\nsoak: a warm-up until the 90-day window is full, then {minutes} min measured, at {rate} events/s through tansu ({suppliers} tier-1 suppliers, step 1 d of event time)"
        );
        if rt.block_on(bench_soak(suppliers, rate, minutes)).is_none() {
            println!("  skipped: tansu not on PATH or the broker did not start (make deps)");
            skipped.push("soak");
        }
    }
    // A section that could not run fails the run: the latency figures were missing for two
    // sessions behind a "skipped" line nobody read. `--no-broker` leaves them out on purpose.
    if !skipped.is_empty() {
        anyhow::bail!(
            "section(s) skipped, no figures: {} (see above; --no-broker leaves out the broker sections)",
            skipped.join(", ")
        );
    }
    Ok(())
}
