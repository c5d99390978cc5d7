//! Crash recovery against a real broker (tansu), through the real binary: chainwatch consumes
//! a simulated history while it is killed (SIGKILL) at random points and stopped once
//! gracefully (SIGTERM), restarted each time from its checkpoints. Its final indicators and its
//! whole alert history must equal those of a run over the same topics that was never
//! interrupted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::util::*;

/// The simulated history: 2026-01-05 and 20 days on.
const START: &str = "2026-01-05T00:00:00Z";
const START_MS: i64 = 1_767_571_200_000;
const DAYS: i64 = 20;

/// One chainwatch process and where it listens.
struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    fn spawn(config: &Path, log: &Path) -> Instance {
        let text = std::fs::read_to_string(config).expect("config");
        let listen = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = "))
            .expect("listen")
            .trim_matches('"')
            .to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start chainwatch");
        Instance {
            child,
            base: format!("http://{listen}"),
        }
    }

    async fn wait_up(&self) {
        for _ in 0..600 {
            if let Ok(r) = http().get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chainwatch at {} did not come up", self.base);
    }

    /// SIGKILL: no chance to drain or checkpoint.
    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM: drain, write a last checkpoint, commit, exit 0.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        // Bounded: chainwatch gives its tasks 30 s (pipeline::SHUTDOWN_TIMEOUT).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let code = loop {
            if let Some(code) = self.child.try_wait().expect("wait") {
                break code;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(code.success(), "graceful shutdown exits 0: {code:?}");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file for one deployment (`name`: its group id and checkpoint directory).
fn write_config(dir: &Path, brokers: &str, name: &str) -> PathBuf {
    let text = format!(
        r#"[kafka]
brokers = "{brokers}"
group_id = "cw-{name}"
dead_letter_topic = "rec.deadletter.{name}"
partitions = 2
[kafka.options]
"group.instance.id" = "cw-{name}-1"
[kafka.topics]
erp = "rec.erp"
wms = "rec.wms"
logistics = "rec.logistics"
[batch]
linger = "20ms"
max_rows = 500
[event_time]
allowed_lateness = "1d"
idle_timeout = "200ms"
[evaluation]
step = "6h"
rules = "{rules}"
watch_rules = false
[checkpoint]
dir = "{checkpoints}"
interval = "100ms"
[http]
listen = "127.0.0.1:{port}"
[feeds]
dir = "{none}"
watch = false
[network]
dir = "{none}"
topic = "rec.network.{name}"
"#,
        rules = repo_path("rules").display(),
        none = repo_path("tests/fixtures/none").display(),
        checkpoints = dir.join(format!("checkpoints-{name}")).display(),
        port = free_port(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Has the instance read everything up to the closing heartbeat, evaluated every step before
/// it and committed its offsets?
fn finished(s: &Value) -> bool {
    s["watermark_ms"].as_i64() == Some(START_MS + (DAYS + 2) * DAY_MS)
        && s["evaluation"]["records_applied"] == s["records_applied"]
        && s["lag"].as_i64() == Some(0)
        // Lag is over the assigned partitions: a restarted instance restores the watermark at
        // once but gets its partitions later, and with none its lag is 0. Seen once in CI:
        // the test then judged a just-restored instance finished, 4,532 events short.
        && s["partitions"].as_array().is_some_and(|p| !p.is_empty())
}

/// The indicator and alert samples of `/metrics` (not chainwatch's own metrics).
fn indicator_samples(metrics: &str) -> BTreeMap<String, f64> {
    let own: Vec<&str> = chainwatch::export::metrics::SELF_METRICS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    metrics
        .lines()
        .filter(|l| l.starts_with("chainwatch_"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            let is_own = own.iter().any(|o| {
                name == *o
                    || name
                        .strip_prefix(o)
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
            });
            let value: f64 = value.parse().ok()?;
            (!is_own).then(|| (series.to_string(), value))
        })
        .collect()
}

/// The distinct (topic, partition, offset, reason) of a dead-letter topic, read from its start
/// to its end (5 s without a new message ends it).
async fn dead_letter_origins(
    brokers: &str,
    topic: &str,
) -> std::collections::BTreeSet<(String, String, String, String)> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("group.id", format!("{topic}-origins"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await
        else {
            break;
        };
        let header = |name: &str| {
            msg.headers()
                .and_then(|h| h.iter().find(|x| x.key == name))
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        seen.insert((
            header("chainwatch.topic"),
            header("chainwatch.partition"),
            header("chainwatch.offset"),
            header("chainwatch.reason"),
        ));
    }
    seen
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) || (a.is_nan() && b.is_nan())
}

/// Final indicators and alert history of an instance.
async fn outcome(base: &str) -> (BTreeMap<String, f64>, Vec<Value>) {
    let metrics = indicator_samples(&get_text(base, "/metrics").await);
    let history = get_json(base, "/api/alerts/history?limit=1000000").await;
    let transitions = history["transitions"]
        .as_array()
        .expect("transitions")
        .clone();
    (metrics, transitions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_runs_end_exactly_where_an_uninterrupted_run_ends() {
    let seed: u64 = std::env::var("CHAINWATCH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("recovery test seed {seed} (CHAINWATCH_TEST_SEED={seed} repeats it)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    let broker = Tansu::start();
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::var_os("CHAINWATCH_KEEP_TEST_DIR").is_some() {
        eprintln!("keeping {}", dir.path().display());
    }
    let reference = write_config(dir.path(), &broker.brokers, "reference");
    let crashing = write_config(dir.path(), &broker.brokers, "crashing");
    // The simulator publishes its supply network on its own topic, which neither reads:
    // master data arriving at wall-clock moments would re-evaluate at arbitrary points.
    let simulator = write_config(dir.path(), &broker.brokers, "simulator");

    // The history, on the topics before either deployment starts (it creates them).
    let out = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(["simulate", "--brokers", &broker.brokers, "--config"])
        .arg(&simulator)
        .args(["--seed", "7", "--start", START, "--days", &DAYS.to_string()])
        .args(["--malformed-every", "997"])
        .output()
        .expect("chainwatch simulate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A heartbeat two days after the end: closes every step of the history.
    tick(
        &producer(&broker.brokers),
        "rec.erp",
        START_MS + (DAYS + 3) * DAY_MS,
    )
    .await;

    // The run that is never interrupted.
    let r = Instance::spawn(&reference, &dir.path().join("reference.log"));
    r.wait_up().await;
    let done = wait_status(&r.base, 300, finished).await;
    let total = done["records_applied"].as_u64().expect("applied");
    assert!(total > 5_000, "a real history: {done:#}");
    let (want_metrics, want_history) = outcome(&r.base).await;
    r.terminate();
    assert!(
        want_metrics.len() > 50 && want_history.len() > 5,
        "something to compare: {} series, {} transitions",
        want_metrics.len(),
        want_history.len()
    );

    // The same topics, killed at random points on the way (and once stopped gracefully).
    let log = dir.path().join("crashing.log");
    let stops = ["kill -9", "kill -9", "SIGTERM", "kill -9"];
    let mut last_applied = 0;
    for (i, stop) in stops.iter().enumerate() {
        let c = Instance::spawn(&crashing, &log);
        c.wait_up().await;
        // Somewhere in the next stretch of the history (a fraction of what is left).
        let left = total - last_applied;
        let target = last_applied + rng.random_range(left / 8..=left / 4);
        wait_status(&c.base, 300, |s| {
            s["records_applied"].as_u64() >= Some(target) || finished(s)
        })
        .await;
        // This incarnation has checkpointed (else a stop tests nothing new), plus a random
        // moment, so stops land anywhere relative to checkpoints and steps.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while sample(
            &get_text(&c.base, "/metrics").await,
            "chainwatch_checkpoints_total",
            &[("result", "success")],
        ) < Some(1.0)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        let s = get_json(&c.base, "/api/status").await;
        // The first stop is early in the history; later ones may come after the end.
        assert!(i > 0 || !finished(&s), "stop {i} came too late: {s:#}");
        last_applied = s["records_applied"].as_u64().unwrap_or(0);
        eprintln!("stop {i} ({stop}) at about {last_applied} of {total} events applied");
        if *stop == "SIGTERM" {
            c.terminate();
        } else {
            c.kill9();
        }
    }
    let c = Instance::spawn(&crashing, &log);
    c.wait_up().await;
    let s = wait_status(&c.base, 300, finished).await;
    let (got_metrics, got_history) = outcome(&c.base).await;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let stuck = log_text.matches("did not stop in time").count();
    if stuck > 0 {
        // Seen once (a SIGTERM 0.2 s after a restart): the stop was forced after 30 s; the
        // restart then restores the checkpoint before it, which the equality below covers.
        eprintln!("warning: {stuck} task(s) did not stop in time on SIGTERM:\n{log_text}");
    }
    assert!(
        log_text.matches("Restored from checkpoint.").count() >= stops.len(),
        "every restart restored a checkpoint:\n{log_text}"
    );
    c.terminate();

    // Every malformed event the reference dead-lettered is on the crashing deployment's
    // dead-letter topic too (some twice: dead letters are at-least-once across a crash).
    let want = dead_letter_origins(&broker.brokers, "rec.deadletter.reference").await;
    let got = dead_letter_origins(&broker.brokers, "rec.deadletter.crashing").await;
    if std::env::var_os("CHAINWATCH_KEEP_TEST_DIR").is_some() {
        std::mem::forget(dir);
    }
    // On failure, what explains it: the dead letters only the crashing deployment wrote (by
    // reason) and its log without the alert lines.
    let explain = || {
        let mut reasons = BTreeMap::<&str, usize>::new();
        for (.., reason) in got.difference(&want) {
            *reasons.entry(reason.as_str()).or_default() += 1;
        }
        let lines: Vec<&str> = log_text
            .lines()
            .filter(|l| !l.contains("Alert firing") && !l.contains("Alert resolved"))
            .collect();
        format!(
            "extra dead letters by reason: {reasons:?}\ncrashing log without alerts:\n{}",
            lines.join("\n")
        )
    };
    assert_eq!(
        s["records_applied"].as_u64(),
        Some(total),
        "every event applied exactly once: {s:#}\n{}",
        explain()
    );
    let rejected = done["records_dead_lettered"].as_u64().unwrap_or(0) as usize;
    assert!(rejected > 0, "the history has malformed events");
    assert_eq!(want.len(), rejected);
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(missing.is_empty(), "dead letters lost: {missing:?}");
    let extra: Vec<_> = got.difference(&want).collect();
    if !extra.is_empty() {
        // Seen once under load: after a restart the first offsets of a partition were read
        // again and judged late (their events were already in the restored state, which the
        // equality checks below cover). Ingest now drops what lies below the checkpoint's
        // offsets (`chainwatch_ingest_reread_messages_total`); kept as a warning until runs
        // under load show that was the cause.
        eprintln!("warning: extra dead letters after restarts: {extra:?}");
    }
    let missing: Vec<_> = want_metrics
        .keys()
        .filter(|k| !got_metrics.contains_key(*k))
        .collect();
    let extra: Vec<_> = got_metrics
        .keys()
        .filter(|k| !want_metrics.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (series, want) in &want_metrics {
        let got = got_metrics[series];
        assert!(close(got, *want), "{series}: {got} vs {want}");
    }
    assert_eq!(got_history.len(), want_history.len(), "alert transitions");
    for (got, want) in got_history.iter().zip(&want_history) {
        for key in ["at", "rule", "change", "labels", "severity", "annotations"] {
            assert_eq!(got[key], want[key], "{key}: {got:#} vs {want:#}");
        }
        for key in ["value", "threshold"] {
            let (g, w) = (got[key].as_f64(), want[key].as_f64());
            assert!(
                g == w || g.zip(w).is_some_and(|(g, w)| close(g, w)),
                "{key}: {got:#} vs {want:#}"
            );
        }
    }
}

/// The broker goes away while chainwatch consumes: it stays up, says it is not ready, and once
/// the broker is back it reconnects, catches up and has every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_loses_nothing_and_shows_in_readiness() {
    let mut broker = Tansu::start();
    let mut config = test_config(&broker.brokers, "outage");
    let dir = tempfile::tempdir().expect("tempdir");
    config.checkpoint.enabled = true;
    config.checkpoint.dir = dir.path().to_path_buf();
    config.checkpoint.interval = Duration::from_millis(200);
    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);
    let line = |i: usize, at: i64| -> Vec<u8> {
        serde_json::json!({"event_id": format!("c{i}"), "kind": "po_line_created",
            "event_time": iso(at), "source": "test-erp", "po": format!("PO-{i}"), "line": 1,
            "supplier": format!("S-{}", i % 3), "part": "P-1", "site": "PLANT-1",
            "quantity": 10, "unit_price": 1.0, "order_date": date(T0),
            "promised_date": date(T0 + 30 * DAY_MS)})
        .to_string()
        .into_bytes()
    };

    let p = producer(&broker.brokers);
    let first: Vec<Vec<u8>> = (0..300).map(|i| line(i, T0 + i as i64 * 60_000)).collect();
    produce(&p, "outage.erp", &first).await;
    wait_status(&base, 60, |s| s["records_applied"].as_u64() >= Some(200)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while readyz(&base).await != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // More events, then the broker dies before chainwatch has necessarily read them.
    let second: Vec<Vec<u8>> = (300..600)
        .map(|i| line(i, T0 + i as i64 * 60_000))
        .collect();
    produce(&p, "outage.erp", &second).await;
    broker.stop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let m = get_text(&base, "/metrics").await;
        if readyz(&base).await == 503 && sample(&m, "chainwatch_ingest_connected", &[]) == Some(0.0)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reported as not ready / disconnected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Still serving what it had.
    let status = get_json(&base, "/api/status").await;
    assert!(status["records_applied"].as_u64() >= Some(200));

    broker.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while readyz(&base).await != 200 {
        assert!(tokio::time::Instant::now() < deadline, "not ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = producer(&broker.brokers);
    tick(&p, "outage.erp", T0 + 600 * 60_000 + 1).await;
    let s = wait_status(&base, 90, |s| {
        let done = s["records_applied"].as_u64().unwrap_or(0)
            + s["records_dead_lettered"].as_u64().unwrap_or(0);
        done >= 600 && s["lag"].as_i64() == Some(0)
    })
    .await;
    let dead = s["records_dead_lettered"].as_u64().unwrap_or(0);
    if dead > 0 {
        // What was lost and why (a late event, in the two failures seen so far?).
        let letters = read_dead_letters(&broker.brokers, "outage.deadletter", dead as usize).await;
        let why: Vec<String> = letters
            .iter()
            .map(|d| format!("{:?}: {}", d.headers, d.payload))
            .collect();
        panic!("{dead} events dead-lettered:\n{}\n{s:#}", why.join("\n"));
    }
    assert_eq!(s["records_applied"].as_u64(), Some(600), "{s:#}");
    assert_eq!(s["duplicates"].as_u64(), Some(0), "{s:#}");
    assert_eq!(s["state"]["open_po_lines"].as_u64(), Some(600));
    let m = get_text(&base, "/metrics").await;
    assert_eq!(sample(&m, "chainwatch_ingest_connected", &[]), Some(1.0));
    running.shutdown().await;
}

/// SIGTERM while the broker is down: the consumer cannot leave its group nor commit, yet the
/// process ends, within the shutdown bound (tasks 30 s, leaving the group 10 s), instead of
/// waiting for the broker for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_broker_is_down_still_ends_the_process() {
    let mut broker = Tansu::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &broker.brokers, "brokerdown");
    let log = dir.path().join("brokerdown.log");
    let c = Instance::spawn(&config, &log);
    c.wait_up().await;
    // Consuming for real: joined the group (ready) and applied what it read.
    let p = producer(&broker.brokers);
    wait_status(&c.base, 60, |s| s["ready"] == true).await;
    // Past the allowed lateness (1 d), so that the watermark moves.
    tick(&p, "rec.erp", START_MS + 2 * DAY_MS).await;
    wait_status(&c.base, 60, |s| {
        s["watermark_ms"].as_i64() >= Some(START_MS)
    })
    .await;

    broker.stop();
    wait_status(&c.base, 60, |s| s["ready"] == false).await;
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut c = c;
    let status = Command::new("kill")
        .args(["-TERM", &c.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let signalled = std::time::Instant::now();
    while c.child.try_wait().expect("wait").is_none() {
        assert!(
            signalled.elapsed() < Duration::from_secs(60),
            "no exit within 60 s of SIGTERM with the broker down; log:\n{}",
            log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "exited {:?} after SIGTERM with the broker down",
        signalled.elapsed()
    );
}

/// Another member of the group holds some partitions while chainwatch, restarted from its
/// checkpoint, reads the others to their end: the watermark must wait for the partitions it
/// does not hold (their events come to it once they are handed back), not run ahead and judge
/// them late. The likely cause of a CI failure: a restarted instance applied 71 more events,
/// judged itself finished, and half the history never reached its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_held_by_another_member_hold_the_watermark_until_handed_back() {
    handover("handover", true).await;
}

/// The same on a first start (no checkpoint): the partitions chainwatch has never seen, known
/// from the brokers' metadata, hold the watermark too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_never_seen_hold_the_watermark_until_handed_over() {
    handover("handfresh", false).await;
}

/// `restarted`: chainwatch first reads one event of every partition and checkpoints it.
async fn handover(name: &str, restarted: bool) {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::producer::FutureRecord;
    use std::sync::Arc;
    const HOUR_MS: i64 = 3_600_000;

    let broker = Tansu::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || {
        let mut c = test_config(&broker.brokers, name);
        c.checkpoint.enabled = true;
        c.checkpoint.dir = dir.path().to_path_buf();
        c.checkpoint.interval = Duration::from_millis(100);
        c
    };
    let topics = ["erp", "wms", "logistics"].map(|t| format!("{name}.{t}"));
    let p = producer(&broker.brokers);
    // One heartbeat at `at` on every partition of every topic.
    let everywhere = |at: i64| {
        let p = p.clone();
        let topics = topics.clone();
        async move {
            for topic in &topics {
                for partition in 0..2 {
                    let id = format!("hb-{topic}-{partition}-{at}");
                    let payload = heartbeat(&id, at).to_string();
                    let rec: FutureRecord<'_, [u8], str> = FutureRecord::to(topic)
                        .partition(partition)
                        .payload(&payload);
                    p.send(rec, Duration::from_secs(10))
                        .await
                        .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
                }
            }
        }
    };
    let lags_zero = |n: usize| {
        move |s: &Value| {
            s["partitions"]
                .as_array()
                .is_some_and(|p| p.len() == n && p.iter().all(|x| x["lag"] == 0))
        }
    };

    if restarted {
        // Every partition read once and checkpointed; stopped (a last checkpoint).
        let first = start(config()).await;
        let base = format!("http://{}", first.http_addr);
        everywhere(T0).await;
        wait_status(&base, 60, lags_zero(6)).await;
        first.shutdown().await;
    } else {
        // The topics as chainwatch creates them, with the same first events.
        chainwatch::ingest::kafka::ensure_topics(&config().kafka, &broker.brokers)
            .await
            .expect("topics created");
        everywhere(T0).await;
    }

    // More on every partition: an hour later, then ten days later.
    everywhere(T0 + HOUR_MS).await;
    everywhere(T0 + 10 * DAY_MS).await;

    // Another member takes every partition, then chainwatch joins and gets half.
    let other: Arc<StreamConsumer> = Arc::new(
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &broker.brokers)
            .set("broker.address.family", "v4")
            .set("group.id", format!("cw-{name}"))
            .set("partition.assignment.strategy", "range")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("consumer"),
    );
    let subscribed: Vec<&str> = topics.iter().map(String::as_str).collect();
    other.subscribe(&subscribed).expect("subscribe");
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let polling = {
        let other = other.clone();
        tokio::spawn(async move {
            // Polled so that it takes part in rebalances; what it reads is not committed.
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = other.recv() => {}
                }
            }
        })
    };
    let held = |n: usize| other.assignment().is_ok_and(|a| a.count() == n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !held(6) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other member got no partitions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = start(config()).await;
    let base = format!("http://{}", second.http_addr);
    let s = wait_status(&base, 90, lags_zero(3)).await;
    assert!(held(3), "the other member holds the other half");
    // chainwatch's three partitions read to their end, then paused (ahead of the others) or
    // idle (caught up and quiet: what let the watermark pass the others before).
    let mine: Vec<(String, String)> = s["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|x| {
            (
                x["topic"].as_str().unwrap_or_default().to_string(),
                x["partition"].to_string(),
            )
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = get_text(&base, "/metrics").await;
        let settled = mine.iter().all(|(t, p)| {
            let labels = [("topic", t.as_str()), ("partition", p.as_str())];
            sample(&m, "chainwatch_ingest_partition_idle", &labels) == Some(1.0)
                || sample(&m, "chainwatch_ingest_partition_paused", &labels) == Some(1.0)
        });
        if settled {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "neither idle nor paused: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The other member's three partitions are counted as held elsewhere.
    wait_metric(&base, 10, "chainwatch_ingest_unassigned_partitions", 3.0).await;
    let s = get_json(&base, "/api/status").await;
    let elsewhere: Vec<(String, String)> = s["unassigned_partitions"]
        .as_array()
        .expect("unassigned_partitions")
        .iter()
        .map(|x| {
            let topic = x["topic"].as_str().unwrap_or_default().to_string();
            (topic, x["partition"].to_string())
        })
        .collect();
    assert_eq!(elsewhere.len(), 3, "{s:#}");
    assert!(
        elsewhere.iter().all(|p| !mine.contains(p)),
        "the others' partitions, not this one's: {s:#}"
    );
    // Restarted: where the other member's partitions were checkpointed. First start: it has
    // not moved (the other member's partitions delivered nothing here).
    let held = if restarted { Some(T0) } else { Some(0) };
    assert_eq!(s["watermark_ms"].as_i64(), held, "{s:#}");

    // Handed back: their events are read, none late.
    stop_tx.send(()).expect("polling");
    polling.await.expect("polling task");
    drop(other);
    let s = wait_status(&base, 90, |s| {
        lags_zero(6)(s) && s["watermark_ms"].as_i64() == Some(T0 + 10 * DAY_MS)
    })
    .await;
    let m = get_text(&base, "/metrics").await;
    assert_eq!(late_events(&m).unwrap_or(0.0), 0.0, "{s:#}");
    assert_eq!(s["records_dead_lettered"].as_u64(), Some(0), "{s:#}");
    wait_metric(&base, 10, "chainwatch_ingest_unassigned_partitions", 0.0).await;
    // The first two rounds applied (their steps closed), the last one buffered.
    assert_eq!(s["records_applied"].as_u64(), Some(12), "{s:#}");
    second.shutdown().await;
}
