//! `make bench`: throughput and evaluation-time figures, measured side by side in one run.
//!
//! 1. decode: JSON -> Arrow rows/s (chainwatch's decoder) vs `serde_json::Value` parsing of the
//!    same bytes, on one core, same run;
//! 2. decode + apply to state, events already in memory;
//! 3. evaluation time of every shipped indicator and rule at 10k / 100k / 1M open PO lines;
//! 4. end to end from a real broker (tansu, when on PATH): events/s from topic to applied state,
//!    against a bare rdkafka consumer draining the same topics in the same run.
//!
//! Options: `--quick` (smaller sizes), `--no-broker`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chainwatch::config::Config;
use chainwatch::demo::Feeder;
use chainwatch::indicators::Indicators;
use chainwatch::ingest::decode::{EventDecoder, RejectReason};
use chainwatch::pipeline;
use chainwatch::sim::{SimConfig, Simulator};
use chainwatch::state::{Retention, State};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

const DAY_MS: i64 = 86_400_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn sim_payloads(days: i64) -> Vec<Vec<u8>> {
    let mut sim = Simulator::new(SimConfig::default());
    let until = sim.now() + chrono::Duration::days(days);
    sim.run_until(until)
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

fn bench_decode(payloads: &[Vec<u8>]) -> (f64, f64) {
    let decoder = EventDecoder::new(1 << 20);
    let refs: Vec<Option<&[u8]>> = payloads.iter().map(|p| Some(p.as_slice())).collect();
    let mut arrow_rates = Vec::new();
    let mut serde_rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut rows = 0;
        for chunk in refs.chunks(4096) {
            rows += decoder.decode(chunk).batch.map_or(0, |b| b.num_rows());
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
    (median(arrow_rates), median(serde_rates))
}

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

/// A state with `lines` open PO lines over 10k suppliers, lines/10 shipments, lines/20 positions.
fn synthetic_state(lines: usize, history_factor: usize) -> State {
    let t0: i64 = 1_772_409_600_000;
    let decoder = EventDecoder::new(1 << 20);
    let mut state = State::new(Retention::default());
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("valid")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let date = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("valid")
            .format("%Y-%m-%d")
            .to_string()
    };
    let mut events: Vec<String> = Vec::with_capacity(4096);
    let flush = |events: &mut Vec<String>, state: &mut State| {
        let refs: Vec<Option<&[u8]>> = events.iter().map(|e| Some(e.as_bytes())).collect();
        if let Some(b) = decoder.decode(&refs).batch {
            state.apply(&b, t0 + 20 * DAY_MS);
        }
        events.clear();
    };
    let positions = (lines / 20).max(1);
    for i in 0..lines {
        let promised = t0 + ((i % 40) as i64) * DAY_MS;
        events.push(format!(
            r#"{{"event_id":"l{i}","kind":"po_line_created","event_time":"{}","source":"b","po":"PO-{}","line":{},"supplier":"S{}","part":"P{}","site":"D{}","quantity":100,"unit_price":3.5,"order_date":"{}","promised_date":"{}"}}"#,
            iso(t0),
            i / 4,
            i % 4,
            i % 10_000,
            (i % positions) / 3,
            i % 3,
            date(t0 - 20 * DAY_MS),
            date(promised)
        ));
        if events.len() == 4096 {
            flush(&mut events, &mut state);
        }
    }
    for s in 0..lines / 10 {
        events.push(format!(
            r#"{{"event_id":"s{s}","kind":"shipment_created","event_time":"{}","source":"b","shipment":"SH{s}","supplier":"S{}","po_lines":[{{"po":"PO-{}","line":0}}],"origin":"CNSHA","destination":"DEHAM","carrier":"C","mode":"ocean","shipped_at":"{}","eta":"{}"}}"#,
            iso(t0),
            s % 10_000,
            s * 2,
            iso(t0),
            iso(t0 + 30 * DAY_MS)
        ));
        if events.len() == 4096 {
            flush(&mut events, &mut state);
        }
    }
    for p in 0..positions {
        events.push(format!(
            r#"{{"event_id":"p{p}","kind":"inventory_position","event_time":"{}","source":"b","site":"D{}","part":"P{}","on_hand":500,"daily_demand":20}}"#,
            iso(t0),
            p % 3,
            p / 3
        ));
        if events.len() == 4096 {
            flush(&mut events, &mut state);
        }
    }
    // Completed history: deliveries in the window (lines/10 x history_factor).
    let completed = lines / 10 * history_factor;
    for c in 0..completed {
        let t = t0 + 10 * DAY_MS + (c as i64 % 1000) * 60_000;
        events.push(format!(
            r#"{{"event_id":"h{c}","kind":"po_line_created","event_time":"{}","source":"b","po":"H-{c}","line":1,"supplier":"S{}","part":"P1","site":"D1","quantity":1,"unit_price":1,"order_date":"{}","promised_date":"{}"}}"#,
            iso(t),
            c % 10_000,
            date(t0),
            date(t0 + 9 * DAY_MS)
        ));
        events.push(format!(
            r#"{{"event_id":"hr{c}","kind":"goods_receipt","event_time":"{}","source":"b","po":"H-{c}","line":1,"supplier":"S{}","quantity":1,"received_at":"{}"}}"#,
            iso(t),
            c % 10_000,
            iso(t)
        ));
        if events.len() >= 4096 {
            flush(&mut events, &mut state);
        }
    }
    flush(&mut events, &mut state);
    state.advance(t0 + 20 * DAY_MS);
    state
}

async fn bench_eval(indicators: &Indicators, state: &State) -> (f64, f64) {
    let mut snap_ms = Vec::new();
    let mut eval_ms = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let tables = state.snapshot();
        snap_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        for r in indicators.evaluate(&tables).await {
            if let Err(e) = r {
                eprintln!("indicator failed: {e}");
            }
        }
        eval_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (median(snap_ms), median(eval_ms))
}

struct Broker(Child, #[allow(dead_code)] tempfile::TempDir);
impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tansu() -> Option<(Broker, String)> {
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
        .args(["--storage-engine", "sqlite://tansu.db"])
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

async fn bench_end_to_end(days: i64) -> Option<(usize, f64, f64)> {
    let (_broker, brokers) = start_tansu()?;
    let mut config = Config::default();
    config.kafka.brokers = Some(brokers.clone());
    config.kafka.partitions = 2;
    config.http.listen = "127.0.0.1:0".parse().ok()?;
    config.evaluation.rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    config.evaluation.step = Duration::from_secs(3600);
    chainwatch::ingest::kafka::ensure_topics(&config.kafka, &brokers)
        .await
        .ok()?;
    let producer = chainwatch::ingest::kafka::producer_config(&config.kafka, &brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .ok()?;
    let feeder = Feeder {
        producer,
        topics: config.kafka.topics.clone(),
    };
    let mut sim = Simulator::new(SimConfig::default());
    let until = sim.now() + chrono::Duration::days(days);
    let n = feeder.history(&mut sim, until).await.ok()?;

    // Bare consumer: no decoding, just drain every message of the three topics.
    let topics = config.kafka.topics.clone();
    let bare_brokers = brokers.clone();
    let bare_rate = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bare_brokers)
            .set("broker.address.family", "v4")
            .set("group.id", "bench-bare")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .ok()?;
        c.subscribe(&topics.all()).ok()?;
        let mut got = 0usize;
        let mut start = None;
        let deadline = Instant::now() + Duration::from_secs(600);
        while got < n && Instant::now() < deadline {
            if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
                start.get_or_insert_with(Instant::now);
                got += 1;
            }
        }
        Some(got as f64 / start?.elapsed().as_secs_f64())
    })
    .await
    .ok()??;

    let running = pipeline::start(config).await.ok()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<Instant> = None;
    loop {
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
        let done = applied + rejected;
        if done > 0 {
            first.get_or_insert_with(Instant::now);
        }
        if done as usize >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let e2e_rate = n as f64 / first?.elapsed().as_secs_f64().max(1e-9);
    running.shutdown().await;
    Some((n, e2e_rate, bare_rate))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let no_broker = args.iter().any(|a| a == "--no-broker");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "chainwatch benchmarks ({} cores, release build)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let payloads = sim_payloads(if quick { 10 } else { 60 });
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "input: {} simulated events, {:.0} bytes/event on average",
        payloads.len(),
        bytes as f64 / payloads.len() as f64
    );
    let (arrow, serde) = bench_decode(&payloads);
    println!(
        "decode JSON->Arrow (1 core):       {:>12.0} rows/s   serde_json::Value: {:>10.0} rows/s   ratio {:.2}   (target >= 2,000,000 rows/s)",
        arrow, serde, arrow / serde
    );
    let apply = bench_apply(&payloads);
    println!(
        "decode + apply (1 core, in memory): {:>11.0} events/s (target >= 1,000,000 on 2 cores)",
        apply
    );

    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules/indicators");
    let indicators = rt
        .block_on(Indicators::load_dir(&rules))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    println!(
        "\nevaluation of {} indicators (median of 3; target <= 100 ms at 1M lines)",
        indicators.defs().len()
    );
    for &n in sizes {
        for factor in [1, 10] {
            let t = Instant::now();
            let state = synthetic_state(n, factor);
            let build = t.elapsed().as_secs_f64();
            let (snap, eval) = rt.block_on(bench_eval(&indicators, &state));
            println!(
                "  {:>9} open lines, {:>7} shipments, {:>6} positions, {:>8} window records: snapshot {:>8.1} ms, queries {:>8.1} ms, total {:>8.1} ms  (state built in {:.1} s)",
                state.open_lines(),
                state.in_flight_shipments(),
                state.positions(),
                state.window_records(),
                snap,
                eval,
                snap + eval,
                build
            );
        }
    }

    if no_broker {
        return Ok(());
    }
    println!("\nend to end from tansu (sqlite storage, 2 partitions per topic, broker on the same 2 cores)");
    match rt.block_on(bench_end_to_end(if quick { 10 } else { 60 })) {
        Some((n, e2e, bare)) => println!(
            "  {n} events: chainwatch {e2e:>10.0} events/s   bare rdkafka consumer {bare:>10.0} msgs/s   ratio {:.2}   (target >= 0.5)",
            e2e / bare
        ),
        None => println!("  skipped: tansu not on PATH or the broker did not start (make deps)"),
    }
    Ok(())
}
