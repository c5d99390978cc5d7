//! Test helpers: a real Kafka-protocol broker (tansu) on a free port, a chainwatch pipeline
//! wired to it, producing raw payloads, polling the HTTP API.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chainwatch::config::Config;
use chainwatch::pipeline::{self, Running};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;

/// A tansu broker with sqlite storage in a temporary directory; killed on drop.
pub struct Tansu {
    child: Child,
    pub brokers: String,
    dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Tansu {
    pub fn start() -> Tansu {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Tansu::spawn(dir.path(), port);
        Tansu {
            child,
            brokers: format!("127.0.0.1:{port}"),
            dir,
        }
    }

    fn spawn(dir: &std::path::Path, port: u16) -> Child {
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("tansu.log"))
            .expect("log file");
        let child = Command::new(std::env::var("TANSU").unwrap_or_else(|_| "tansu".into()))
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            // A RUST_LOG meant for chainwatch would have tansu log every request (most of
            // its CPU, measured with perf while the soak fell behind).
            .env("RUST_LOG", "warn")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tansu on PATH (installed by .ci/run / scripts/install-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Kill the broker (its storage stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freeze the broker (SIGSTOP): its connections stay open, nothing is answered, as when a
    /// broker stalls.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Let a frozen broker go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} tansu");
    }

    /// Start it again on the same port and storage.
    pub fn restart(&mut self) {
        let port: u16 = self
            .brokers
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        self.child = Tansu::spawn(self.dir.path(), port);
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn repo_path(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A config for tests: the given broker, own topics and group, fast evaluation, no lateness.
pub fn test_config(brokers: &str, name: &str) -> Config {
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "cw-{name}"
dead_letter_topic = "{name}.deadletter"
partitions = 2
[kafka.topics]
erp = "{name}.erp"
wms = "{name}.wms"
logistics = "{name}.logistics"
[batch]
linger = "20ms"
[event_time]
allowed_lateness = "0s"
idle_timeout = "200ms"
[evaluation]
step = "1h"
rules = "{rules}"
[checkpoint]
enabled = false
[http]
listen = "127.0.0.1:0"
[feeds]
dir = "{none}"
[network]
dir = "{none}"
topic = "{name}.network"
"#,
        rules = repo_path("rules").display(),
        // No supplier feeds and no network unless a test sets them.
        none = repo_path("tests/fixtures/none").display()
    );
    Config::parse(std::path::Path::new("test.toml"), &text).expect("valid test config")
}

pub async fn start(config: Config) -> Running {
    pipeline::start(config).await.expect("pipeline starts")
}

pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("linger.ms", "1")
        .create()
        .expect("producer")
}

/// Produce raw payloads (key = none) and wait for every acknowledgement.
pub async fn produce(p: &FutureProducer, topic: &str, payloads: &[Vec<u8>]) {
    for payload in payloads {
        let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(payload.as_slice());
        p.send(rec, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

/// Produce keyed records (`None` value = tombstone) and wait for every acknowledgement.
pub async fn produce_keyed(p: &FutureProducer, topic: &str, records: &[(&str, Option<Vec<u8>>)]) {
    for (key, value) in records {
        let mut rec: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(key);
        if let Some(v) = value {
            rec = rec.payload(v.as_slice());
        }
        p.send(rec, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

/// An HTTP client whose requests fail after 30 s instead of hanging a test.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

pub async fn get_json(base: &str, path: &str) -> Value {
    http()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

pub async fn get_text(base: &str, path: &str) -> String {
    http()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("text")
}

/// Poll `/api/status` until `pred` holds; panics with the last status after `secs`.
pub async fn wait_status(base: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = get_json(base, "/api/status").await;
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out; last status: {s:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the step ending at `at_ms` (and every one before) has been evaluated: the
/// watermark is past it and the evaluator has seen every applied event.
pub async fn wait_evaluated(base: &str, at_ms: i64) -> Value {
    wait_status(base, 60, |s| {
        s["watermark_ms"].as_i64() > Some(at_ms)
            && s["evaluation"]["records_applied"] == s["records_applied"]
    })
    .await
}

/// Value of the sample of `metric` whose label set contains all of `labels`.
pub fn sample(metrics: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| rest.rsplit(' ').next()?.parse().ok()).flatten()
    })
}

/// `/readyz`'s status code (0 when the request fails).
/// Poll `/metrics` until the unlabelled `metric` reads `want` (within `secs`).
pub async fn wait_metric(base: &str, secs: u64, metric: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let m = get_text(base, "/metrics").await;
        let got = sample(&m, metric, &[]);
        if got == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{metric} is {got:?}, not {want}, after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn readyz(base: &str) -> u16 {
    http()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Events rejected as later than the allowed lateness, from a `/metrics` text.
pub fn late_events(metrics: &str) -> Option<f64> {
    sample(
        metrics,
        "chainwatch_ingest_rejected_total",
        &[("reason", "late_event")],
    )
}

/// A heartbeat event at `at_ms`: moves event time, changes no table.
pub fn heartbeat(id: &str, at_ms: i64) -> Value {
    serde_json::json!({"event_id": id, "kind": "heartbeat", "event_time": iso(at_ms), "source": "test"})
}

/// Produce a heartbeat at `at_ms` to `topic`: an evaluation step closes once the watermark is
/// past its end, so a test ticks just after the instant it wants evaluated.
pub async fn tick(p: &FutureProducer, topic: &str, at_ms: i64) {
    let hb = heartbeat(&format!("hb-{topic}-{at_ms}"), at_ms);
    produce(p, topic, &[hb.to_string().into_bytes()]).await;
}

/// Once every event up to `at_ms` has been read (the watermark is there), tick just after it
/// and wait for the evaluation at `at_ms`.
pub async fn evaluate_at(p: &FutureProducer, base: &str, topic: &str, at_ms: i64) -> Value {
    wait_status(base, 60, |s| s["watermark_ms"].as_i64() >= Some(at_ms)).await;

    tick(p, topic, at_ms + 1).await;
    wait_evaluated(base, at_ms).await
}

pub const DAY_MS: i64 = 86_400_000;
/// 2026-03-02T00:00:00Z
pub const T0: i64 = 1_772_409_600_000;

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("valid time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("valid time")
        .format("%Y-%m-%d")
        .to_string()
}

/// The embedded demo (`make run`: in-process broker + simulator) on a free port, with the
/// repository's rules (evaluated once per simulated hour). Returns the pipeline, the live feeder task and
/// the HTTP base URL.
pub async fn start_demo() -> (
    Running,
    tokio::task::JoinHandle<Result<usize, chainwatch::demo::ProduceError>>,
    String,
) {
    let mut config = Config::default();
    config.http.listen = "127.0.0.1:0".parse().expect("addr");
    config.evaluation.rules = repo_path("rules");
    // The simulator's tier-2 feeds; its network comes over the network topic.
    config.feeds.dir = repo_path("feeds");
    config.network.dir = repo_path("tests/fixtures/none");
    let (running, live) = chainwatch::demo::start_demo(config)
        .await
        .expect("demo starts");
    let base = format!("http://{}", running.http_addr);
    (running, live, base)
}

/// The firing alerts in an `/api/alerts` response.
pub fn firing(alerts: &Value) -> Vec<&Value> {
    alerts["alerts"]
        .as_array()
        .map(|a| a.iter().filter(|a| a["state"] == "firing").collect())
        .unwrap_or_default()
}

/// Poll `/api/alerts` until `pred` holds for its firing alerts; panics with the last response
/// after `secs`.
pub async fn wait_firing(base: &str, secs: u64, pred: impl Fn(&[&Value]) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let a = get_json(base, "/api/alerts").await;
        if pred(&firing(&a)) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no matching firing alerts within {secs} s; last /api/alerts: {a:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The path of an external program a test needs, from PATH. Missing is a failure, not a skip:
/// `scripts/install-deps.sh` installs it.
pub fn require_program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed (not on PATH): run scripts/install-deps.sh")
        })
}

/// `target/test-artifacts/<name>` (the directory is created).
pub fn artifact_path(name: &str) -> PathBuf {
    let dir = repo_path("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir.join(name)
}

/// One message of a dead-letter topic: its headers and payload (lossy UTF-8).
pub struct DeadLetter {
    pub headers: std::collections::BTreeMap<String, String>,
    pub payload: String,
}

/// Read `n` messages of `topic` from its beginning (own consumer group), 30 s at most each.
pub async fn read_dead_letters(brokers: &str, topic: &str, n: usize) -> Vec<DeadLetter> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("dead letters arrive")
            .expect("message");
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| {
                        let v = String::from_utf8_lossy(x.value.unwrap_or_default());
                        (x.key.to_string(), v.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let payload = String::from_utf8_lossy(msg.payload().unwrap_or_default()).into_owned();
        out.push(DeadLetter { headers, payload });
    }
    out
}
