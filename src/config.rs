//! Configuration: a strict TOML file (unknown keys are errors) -> a validated [`Config`].
//!
//! In: the text of `chainwatch.toml` (optional; every key has a default) and command-line
//! overrides. Out: [`Config`], or every problem found, each naming its key.
//! Durations are strings (`"100ms"`, `"5s"`, `"90d"`); sizes carry their unit in the key.
//!
//! Secrets never sit in the file itself: `[http] admin_token_file` / `read_token_file` name
//! files holding the bearer tokens (relative paths are relative to the config file), and the
//! environment variables `CHAINWATCH_ADMIN_TOKEN` / `CHAINWATCH_READ_TOKEN` override them. A
//! [`Token`] prints as `<redacted>`, so a logged `Config` does not leak it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::state::Retention;

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type (the message has line and column).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value that parses but is not acceptable.
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Every problem of one configuration file.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    kafka: RawKafka,
    batch: RawBatch,
    event_time: RawEventTime,
    state: RawState,
    evaluation: RawEvaluation,
    http: RawHttp,
    simulator: RawSimulator,
    feeds: RawFeeds,
    network: RawNetwork,
    checkpoint: RawCheckpoint,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCheckpoint {
    enabled: bool,
    dir: PathBuf,
    interval: String,
}

impl Default for RawCheckpoint {
    fn default() -> Self {
        RawCheckpoint {
            enabled: true,
            dir: PathBuf::from("data/checkpoint"),
            interval: "10s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawKafka {
    brokers: Option<String>,
    group_id: String,
    topics: Topics,
    dead_letter_topic: String,
    create_topics: bool,
    partitions: i32,
    replication_factor: i32,
    options: BTreeMap<String, String>,
}

impl Default for RawKafka {
    fn default() -> Self {
        RawKafka {
            brokers: None,
            group_id: "chainwatch".into(),
            topics: Topics::default(),
            dead_letter_topic: "chainwatch.deadletter".into(),
            create_topics: true,
            partitions: 3,
            replication_factor: 1,
            options: BTreeMap::new(),
        }
    }
}

/// One topic per source system.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    pub erp: String,
    pub wms: String,
    pub logistics: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            erp: "chainwatch.erp".into(),
            wms: "chainwatch.wms".into(),
            logistics: "chainwatch.logistics".into(),
        }
    }
}

impl Topics {
    pub fn all(&self) -> [&str; 3] {
        [&self.erp, &self.wms, &self.logistics]
    }

    pub fn for_source(&self, s: crate::events::Source) -> &str {
        match s {
            crate::events::Source::Erp => &self.erp,
            crate::events::Source::Wms => &self.wms,
            crate::events::Source::Logistics => &self.logistics,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBatch {
    max_rows: usize,
    linger: String,
    max_message_bytes: usize,
}

impl Default for RawBatch {
    fn default() -> Self {
        RawBatch {
            max_rows: 4096,
            linger: "100ms".into(),
            max_message_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEventTime {
    allowed_lateness: String,
    idle_timeout: String,
    max_drift: String,
    max_buffered_events: usize,
}

impl Default for RawEventTime {
    fn default() -> Self {
        RawEventTime {
            allowed_lateness: "1h".into(),
            idle_timeout: "5s".into(),
            max_drift: "1d".into(),
            max_buffered_events: 1_000_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawState {
    window: String,
    dedup_retention: String,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            window: "90d".into(),
            dedup_retention: "7d".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEvaluation {
    step: String,
    history: usize,
    rules: PathBuf,
    watch_rules: bool,
    query_timeout: String,
    query_memory_bytes: usize,
    max_exported_rows: usize,
}

impl Default for RawEvaluation {
    fn default() -> Self {
        RawEvaluation {
            step: "1m".into(),
            history: 10_000,
            rules: PathBuf::from("rules"),
            watch_rules: true,
            query_timeout: "10s".into(),
            query_memory_bytes: 1 << 30,
            max_exported_rows: 10_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: String,
    admin_token_file: Option<PathBuf>,
    read_token_file: Option<PathBuf>,
    max_request_bytes: usize,
    request_timeout: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:9750".into(),
            admin_token_file: None,
            read_token_file: None,
            max_request_bytes: 64 * 1024,
            request_timeout: "30s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFeeds {
    dir: PathBuf,
    watch: bool,
}

impl Default for RawFeeds {
    fn default() -> Self {
        RawFeeds {
            dir: PathBuf::from("feeds"),
            watch: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNetwork {
    dir: PathBuf,
    topic: String,
    max_depth: usize,
    exposure_every: String,
    horizon: String,
}

impl Default for RawNetwork {
    fn default() -> Self {
        RawNetwork {
            dir: PathBuf::from("network"),
            topic: "chainwatch.network".into(),
            max_depth: 5,
            exposure_every: "1m".into(),
            horizon: "365d".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSimulator {
    seed: u64,
    history: String,
    speed: f64,
    malformed_every: Option<u64>,
}

impl Default for RawSimulator {
    fn default() -> Self {
        RawSimulator {
            seed: 42,
            history: "40d".into(),
            speed: 3600.0,
            malformed_every: Some(5000),
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub batch: BatchConfig,
    /// Events older than the watermark by more than this are dead-lettered as late.
    pub allowed_lateness: Duration,
    /// A caught-up partition that delivered nothing for this long (wall clock) stops holding
    /// the watermark back.
    pub idle_timeout: Duration,
    /// A partition whose event time runs more than this ahead of the slowest one is paused
    /// until the others catch up (watermark alignment): bounds the event buffer in replays.
    pub max_drift: Duration,
    /// Events the buffer may hold before every partition but the slowest is paused (the event
    /// time spread alone does not bound it: a partition not yet idle, a burst within the drift).
    pub max_buffered_events: usize,
    pub retention: Retention,
    pub evaluation: EvaluationConfig,
    pub http: HttpConfig,
    pub simulator: SimulatorConfig,
    pub feeds: FeedsConfig,
    pub network: NetworkConfig,
    pub checkpoint: CheckpointConfig,
}

/// Checkpoints of the state, the alerts and the consumed offsets (docs/operations.md).
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Off: no checkpoint is read or written; a restart starts from the committed offsets
    /// with an empty state. Always off on the embedded broker (its data dies with it).
    pub enabled: bool,
    /// Directory of the checkpoint files (created when missing).
    pub dir: PathBuf,
    /// Wall-clock time between checkpoints (one is also written on shutdown).
    pub interval: Duration,
}

/// Supplier feeds in their own formats (`feeds/*.yaml`, docs/feeds.md).
#[derive(Debug, Clone)]
pub struct FeedsConfig {
    /// Directory of feed definitions; a missing directory means no feeds.
    pub dir: PathBuf,
    /// Apply added, changed and removed definitions while running.
    pub watch: bool,
}

/// The supply network (docs/network.md): files, a compacted topic, exposure maths.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Directory of network files; a missing directory means none.
    pub dir: PathBuf,
    /// Compacted topic with network records (read from the beginning on every start).
    pub topic: String,
    /// How many tiers a disruption is rolled up through.
    pub max_depth: usize,
    /// Wall-clock time between recomputations of time-to-survive and the exposure ranking.
    pub exposure_every: Duration,
    /// Time to survive is capped at this.
    pub horizon: Duration,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `None`: run the embedded broker fed by the simulator.
    pub brokers: Option<String>,
    pub group_id: String,
    pub topics: Topics,
    pub dead_letter_topic: String,
    /// Create missing topics at start.
    pub create_topics: bool,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Passed through to librdkafka (TLS, SASL, tuning), for consumer and producer alike.
    pub options: KafkaOptions,
}

/// librdkafka options, secrets resolved (`${VAR}`, `<key>_file`). Prints secret values as
/// `<redacted>`, so a logged config does not leak them.
#[derive(Clone, Default, PartialEq)]
pub struct KafkaOptions(pub BTreeMap<String, String>);

impl KafkaOptions {
    /// Does the key of a librdkafka option hold a secret?
    pub fn is_secret(key: &str) -> bool {
        let k = key.to_ascii_lowercase();
        ["password", "secret", ".pem", "oauthbearer.config", "jaas"]
            .iter()
            .any(|s| k.contains(s))
    }
}

impl std::fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if KafkaOptions::is_secret(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

impl<'a> IntoIterator for &'a KafkaOptions {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for KafkaOptions {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// `${NAME}` in `value` replaced by the environment variable `NAME`; a `$` not followed by
/// `{` is kept. Err names the first unset variable or an unclosed `${`.
fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed ${{ in {value:?}"));
        };
        let name = &after[..end];
        match env(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// A micro-batch is flushed at this many messages ...
    pub max_rows: usize,
    /// ... or this long after its first message, whichever comes first.
    pub linger: Duration,
    /// Larger payloads are dead-lettered as too_large.
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct EvaluationConfig {
    /// Event time between evaluations: the rules are evaluated at every multiple of `step`
    /// whose step holds events, once the watermark has passed it, with exactly the events
    /// before it applied. Alert times (`for`, active since) have this resolution.
    pub step: Duration,
    /// Alert transitions kept for `/api/alerts/history` (and in checkpoints).
    pub history: usize,
    /// Directory of rule files; indicator SQL lives in its `indicators/` subdirectory.
    pub rules: PathBuf,
    /// Reload the rules when their files change (SIGHUP and `POST /-/reload` work regardless).
    pub watch_rules: bool,
    /// Time and memory limits of each indicator query (the sandbox).
    pub limits: crate::indicators::Limits,
    /// Rows per indicator exported to /metrics (label cardinality cap); rules see every row.
    pub max_exported_rows: usize,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Bearer token for admin endpoints (`POST /-/reload`); `None` disables them.
    pub admin_token: Option<Token>,
    /// Bearer token for `/metrics` and `/api/*`; `None` leaves them open. The admin token is
    /// accepted there too.
    pub read_token: Option<Token>,
    /// Larger request bodies are refused (413) before the handler runs.
    pub max_request_bytes: usize,
    /// A request not answered within this is cut off (408).
    pub request_timeout: Duration,
}

/// A bearer token. `Debug` does not print it; compare with [`Token::matches`] only.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text, trimmed; `None` when blank (a blank token would match anything
    /// sent as `Bearer `).
    pub fn new(text: &str) -> Option<Token> {
        let t = text.trim();
        (!t.is_empty()).then(|| Token(t.to_string()))
    }

    /// True when `presented` is the token. The time taken depends on the lengths only, not on
    /// where the first differing byte is, so the token cannot be guessed byte by byte.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        let mut diff = u8::from(a.len() != b.len());
        for i in 0..a.len().max(b.len()) {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            diff |= x ^ y;
        }
        // Keep the optimiser from turning the loop into an early exit.
        std::hint::black_box(diff) == 0
    }
}

#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    pub seed: u64,
    /// History produced at start, as fast as possible, before live simulation.
    pub history: Duration,
    /// Simulated seconds per wall-clock second once live.
    pub speed: f64,
    /// Replace every n-th simulated event by a malformed one (shows the dead-letter path).
    pub malformed_every: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse(Path::new("<defaults>"), "").expect("defaults are valid")
    }
}

/// Parse a duration: humantime (`1h 30m`, `100ms`) or Prometheus style (`90s`, `15m`, `2d`, `1w`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

impl Config {
    /// Load from a file (must exist).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            ConfigErrors(vec![ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }])
        })?;
        Config::parse(path, &text)
    }

    /// Parse and validate; `path` names the file in messages and anchors relative token
    /// files. Token environment variables are read from the process environment.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        Config::parse_with_env(path, text, &|key| std::env::var(key).ok())
    }

    /// [`Config::parse`] with the environment given as a lookup function (for tests).
    pub fn parse_with_env(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string().trim_end().replace('\n', " "),
            }])
        })?;
        let mut errors = Vec::new();
        let mut invalid = |key: &str, message: String| {
            errors.push(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: key.to_string(),
                message,
            })
        };
        let mut duration = |key: &str, s: &str| match parse_duration(s) {
            Ok(d) => d,
            Err(m) => {
                invalid(key, m);
                Duration::ZERO
            }
        };
        let linger = duration("batch.linger", &raw.batch.linger);
        let lateness = duration(
            "event_time.allowed_lateness",
            &raw.event_time.allowed_lateness,
        );
        let idle_timeout = duration("event_time.idle_timeout", &raw.event_time.idle_timeout);
        let max_drift = duration("event_time.max_drift", &raw.event_time.max_drift);
        let window = duration("state.window", &raw.state.window);
        let dedup = duration("state.dedup_retention", &raw.state.dedup_retention);
        let step = duration("evaluation.step", &raw.evaluation.step);
        let checkpoint_interval = duration("checkpoint.interval", &raw.checkpoint.interval);
        let query_timeout = duration("evaluation.query_timeout", &raw.evaluation.query_timeout);
        let history = duration("simulator.history", &raw.simulator.history);
        let request_timeout = duration("http.request_timeout", &raw.http.request_timeout);
        let exposure_every = duration("network.exposure_every", &raw.network.exposure_every);
        let horizon = duration("network.horizon", &raw.network.horizon);
        let mut invalid = |key: &str, message: String| {
            errors.push(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: key.to_string(),
                message,
            })
        };
        if !(1..=9).contains(&raw.network.max_depth) {
            invalid("network.max_depth", "must be between 1 and 9".into());
        }
        if exposure_every < Duration::from_secs(1) {
            invalid("network.exposure_every", "must be at least 1s".into());
        }
        if horizon < Duration::from_secs(86_400) {
            invalid("network.horizon", "must be at least 1d".into());
        }
        if raw.network.topic.is_empty() {
            invalid("network.topic", "must not be empty".into());
        }
        if raw.batch.max_rows == 0 {
            invalid("batch.max_rows", "must be at least 1".into());
        }
        if raw.event_time.max_buffered_events == 0 {
            invalid(
                "event_time.max_buffered_events",
                "must be at least 1".into(),
            );
        }
        if raw.batch.max_message_bytes < 64 {
            invalid("batch.max_message_bytes", "must be at least 64".into());
        }
        if step < Duration::from_millis(10) {
            invalid("evaluation.step", "must be at least 10ms".into());
        }
        if step > Duration::from_secs(86_400) {
            invalid("evaluation.step", "must be at most 1d".into());
        }
        if checkpoint_interval < Duration::from_millis(100) {
            invalid("checkpoint.interval", "must be at least 100ms".into());
        }
        if raw.evaluation.max_exported_rows == 0 {
            invalid("evaluation.max_exported_rows", "must be at least 1".into());
        }
        if query_timeout < Duration::from_millis(10) {
            invalid("evaluation.query_timeout", "must be at least 10ms".into());
        }
        if raw.evaluation.query_memory_bytes < 1 << 20 {
            invalid(
                "evaluation.query_memory_bytes",
                "must be at least 1048576 (1 MiB)".into(),
            );
        }
        if window < Duration::from_secs(86_400) {
            invalid(
                "state.window",
                "must be at least 1d (indicators look back 30 days)".into(),
            );
        }
        if raw.kafka.partitions < 1 {
            invalid("kafka.partitions", "must be at least 1".into());
        }
        if raw.kafka.replication_factor < 1 {
            invalid("kafka.replication_factor", "must be at least 1".into());
        }
        if raw.kafka.group_id.is_empty() {
            invalid("kafka.group_id", "must not be empty".into());
        }
        if raw.simulator.speed <= 0.0 || !raw.simulator.speed.is_finite() {
            invalid("simulator.speed", "must be a positive number".into());
        }
        if raw.simulator.malformed_every == Some(0) {
            invalid(
                "simulator.malformed_every",
                "must be at least 1 (omit to disable)".into(),
            );
        }
        let names = [
            &raw.kafka.topics.erp,
            &raw.kafka.topics.wms,
            &raw.kafka.topics.logistics,
            &raw.kafka.dead_letter_topic,
        ];
        if raw
            .kafka
            .topics
            .all()
            .into_iter()
            .chain([raw.kafka.dead_letter_topic.as_str()])
            .any(|t| t == raw.network.topic)
        {
            invalid(
                "network.topic",
                "must differ from the input and dead-letter topics".into(),
            );
        }
        if names.iter().any(|t| t.is_empty()) {
            invalid("kafka.topics", "topic names must not be empty".into());
        }
        if raw
            .kafka
            .topics
            .all()
            .contains(&raw.kafka.dead_letter_topic.as_str())
        {
            invalid(
                "kafka.dead_letter_topic",
                "must differ from the input topics".into(),
            );
        }
        let mut kafka_options = BTreeMap::new();
        for (key, value) in &raw.kafka.options {
            let at = format!("kafka.options.{key:?}");
            if key == "group.id" || key == "bootstrap.servers" {
                invalid(&at, "set kafka.group_id / kafka.brokers instead".into());
                continue;
            }
            let value = match expand_env(value, env) {
                Ok(v) => v,
                Err(e) => {
                    invalid(&at, e);
                    continue;
                }
            };
            // `sasl.password_file = "/run/secrets/kafka"`: the value of `sasl.password`.
            let Some(target) = key.strip_suffix("_file") else {
                kafka_options.insert(key.clone(), value);
                continue;
            };
            if raw.kafka.options.contains_key(target) {
                invalid(&at, format!("set {target:?} or {key:?}, not both"));
                continue;
            }
            let file = Path::new(&value);
            let file = match path.parent() {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.to_path_buf(),
            };
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let text = text.trim_end_matches(['\n', '\r']).to_string();
                    kafka_options.insert(target.to_string(), text);
                }
                Err(e) => invalid(&at, format!("{}: {e}", file.display())),
            }
        }
        let listen = match raw.http.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                invalid("http.listen", format!("{:?}: {e}", raw.http.listen));
                None
            }
        };
        if request_timeout < Duration::from_millis(100) {
            invalid("http.request_timeout", "must be at least 100ms".into());
        }
        if raw.http.max_request_bytes < 1024 {
            invalid("http.max_request_bytes", "must be at least 1024".into());
        }
        let mut token = |key: &str, file: Option<&Path>, var: &str| -> Option<Token> {
            // A blank variable counts as unset (`VAR=` in a compose file): the file, or none.
            if let Some(t) = env(var).as_deref().and_then(Token::new) {
                return Some(t);
            }
            let file = file?;
            let file = match path.parent() {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.to_path_buf(),
            };
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let t = Token::new(&text);
                    if t.is_none() {
                        invalid(key, format!("{}: the file is empty", file.display()));
                    }
                    t
                }
                Err(e) => {
                    invalid(key, format!("{}: {e}", file.display()));
                    None
                }
            }
        };
        let admin_token = token(
            "http.admin_token_file",
            raw.http.admin_token_file.as_deref(),
            "CHAINWATCH_ADMIN_TOKEN",
        );
        let read_token = token(
            "http.read_token_file",
            raw.http.read_token_file.as_deref(),
            "CHAINWATCH_READ_TOKEN",
        );
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            kafka: KafkaConfig {
                brokers: raw.kafka.brokers.filter(|b| !b.trim().is_empty()),
                group_id: raw.kafka.group_id,
                topics: raw.kafka.topics,
                dead_letter_topic: raw.kafka.dead_letter_topic,
                create_topics: raw.kafka.create_topics,
                partitions: raw.kafka.partitions,
                replication_factor: raw.kafka.replication_factor,
                options: KafkaOptions(kafka_options),
            },
            batch: BatchConfig {
                max_rows: raw.batch.max_rows,
                linger,
                max_message_bytes: raw.batch.max_message_bytes,
            },
            allowed_lateness: lateness,
            idle_timeout,
            max_drift,
            max_buffered_events: raw.event_time.max_buffered_events,
            retention: Retention {
                window_ms: window.as_millis() as i64,
                dedup_ms: dedup.as_millis() as i64,
            },
            evaluation: EvaluationConfig {
                step,
                history: raw.evaluation.history,
                rules: raw.evaluation.rules,
                watch_rules: raw.evaluation.watch_rules,
                max_exported_rows: raw.evaluation.max_exported_rows,
                limits: crate::indicators::Limits {
                    time: query_timeout,
                    memory_bytes: raw.evaluation.query_memory_bytes,
                },
            },
            http: HttpConfig {
                listen: listen.expect("checked above"),
                admin_token,
                read_token,
                max_request_bytes: raw.http.max_request_bytes,
                request_timeout,
            },
            simulator: SimulatorConfig {
                seed: raw.simulator.seed,
                history,
                speed: raw.simulator.speed,
                malformed_every: raw.simulator.malformed_every,
            },
            feeds: FeedsConfig {
                dir: raw.feeds.dir,
                watch: raw.feeds.watch,
            },
            network: NetworkConfig {
                dir: raw.network.dir,
                topic: raw.network.topic,
                max_depth: raw.network.max_depth,
                exposure_every,
                horizon,
            },
            checkpoint: CheckpointConfig {
                enabled: raw.checkpoint.enabled,
                dir: raw.checkpoint.dir,
                interval: checkpoint_interval,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_embedded() {
        let c = Config::default();
        assert!(c.kafka.brokers.is_none());
        assert_eq!(c.batch.max_rows, 4096);
        assert_eq!(c.max_buffered_events, 1_000_000);
        assert_eq!(c.evaluation.step, Duration::from_secs(60));
        assert!(c.checkpoint.enabled);
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:9750");
        assert_eq!(c.retention.window_ms, 90 * 86_400_000);
    }

    #[test]
    fn shipped_configs_parse_and_network_keys_are_checked() {
        let docker = include_str!("../docker/chainwatch.toml");
        let c = Config::parse(Path::new("docker/chainwatch.toml"), docker).expect("valid");
        assert_eq!(c.feeds.dir, PathBuf::from("/etc/chainwatch/feeds"));
        assert_eq!(c.network.max_depth, 5);
        let e = Config::parse(
            Path::new("c.toml"),
            "[network]\nmax_depth = 0\ntopic = \"chainwatch.erp\"\nhorizon = \"1h\"\n",
        )
        .unwrap_err()
        .to_string();
        for key in ["network.max_depth", "network.topic", "network.horizon"] {
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn unknown_key_is_an_error_with_its_position() {
        let e = Config::parse(
            Path::new("c.toml"),
            "[batch]\nmax_rows = 10\nlinger_ms = 5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("c.toml: TOML parse error at line 3, column 1"),
            "{e}"
        );
        assert!(e.contains("unknown field `linger_ms`"), "{e}");
    }

    #[test]
    fn every_invalid_value_is_reported() {
        let text = r#"
[batch]
max_rows = 0
linger = "soon"
[event_time]
max_buffered_events = 0
[evaluation]
step = "1ms"
[http]
listen = "nowhere"
[kafka]
dead_letter_topic = "chainwatch.erp"
[kafka.options]
"group.id" = "x"
"#;
        let e = Config::parse(Path::new("c.toml"), text).unwrap_err();
        let keys: Vec<String> =
            e.0.iter()
                .map(|e| match e {
                    ConfigError::Invalid { key, .. } => key.clone(),
                    other => panic!("{other}"),
                })
                .collect();
        assert_eq!(
            keys,
            [
                "batch.linger",
                "batch.max_rows",
                "event_time.max_buffered_events",
                "evaluation.step",
                "kafka.dead_letter_topic",
                "kafka.options.\"group.id\"",
                "http.listen"
            ]
        );
    }

    #[test]
    fn kafka_secrets_come_from_the_environment_or_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kafka.pw"), "pw-from-file\n").unwrap();
        let cfg_path = dir.path().join("c.toml");
        let env = |k: &str| (k == "KAFKA_USER").then(|| "svc-chainwatch".to_string());
        let text = "[kafka.options]\n\"security.protocol\" = \"SASL_SSL\"\n\
            \"sasl.username\" = \"${KAFKA_USER}\"\n\"sasl.password_file\" = \"kafka.pw\"\n";
        let c = Config::parse_with_env(&cfg_path, text, &env).unwrap();
        let o = &c.kafka.options.0;
        assert_eq!(o["sasl.username"], "svc-chainwatch");
        assert_eq!(
            o["sasl.password"], "pw-from-file",
            "relative to the config, newline cut"
        );
        assert!(!o.contains_key("sasl.password_file"));
        let printed = format!("{c:?}");
        assert!(!printed.contains("pw-from-file"), "{printed}");
        assert!(printed.contains("SASL_SSL") && printed.contains("<redacted>"));

        let bad = "[kafka.options]\n\"sasl.password\" = \"${NOPE}\"\n\
            \"ssl.key.password_file\" = \"missing.pw\"\n";
        let e = Config::parse_with_env(&cfg_path, bad, &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NOPE is not set"), "{e}");
        assert!(e.contains("missing.pw"), "{e}");
    }

    #[test]
    fn tokens_come_from_files_or_the_environment_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), "s3cret-admin\n").unwrap();
        std::fs::write(dir.path().join("empty.token"), "  \n").unwrap();
        let cfg_path = dir.path().join("c.toml");
        let no_env = |_: &str| None;
        let text = "[http]\nadmin_token_file = \"admin.token\"\n";
        let c = Config::parse_with_env(&cfg_path, text, &no_env).unwrap();
        let admin = c.http.admin_token.clone().unwrap();
        assert!(
            admin.matches("s3cret-admin"),
            "relative to the config file, trimmed"
        );
        assert!(!admin.matches("s3cret-admi"));
        assert!(!admin.matches("s3cret-admin2"));
        assert!(!admin.matches(""));
        assert!(c.http.read_token.is_none());
        assert!(!format!("{c:?}").contains("s3cret"), "Debug redacts tokens");

        let env = |k: &str| (k == "CHAINWATCH_READ_TOKEN").then(|| "from-env".to_string());
        let c = Config::parse_with_env(&cfg_path, text, &env).unwrap();
        assert!(c.http.read_token.unwrap().matches("from-env"));
        let env = |k: &str| (k == "CHAINWATCH_ADMIN_TOKEN").then(|| "override".to_string());
        let c = Config::parse_with_env(&cfg_path, text, &env).unwrap();
        assert!(c.http.admin_token.unwrap().matches("override"), "env wins");
        let blank = |_: &str| Some(String::new());
        let c = Config::parse_with_env(&cfg_path, "", &blank).unwrap();
        assert!(c.http.admin_token.is_none(), "blank variable = unset");

        let text = "[http]\nadmin_token_file = \"empty.token\"\nread_token_file = \"missing\"\n";
        let e = Config::parse_with_env(&cfg_path, text, &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http.admin_token_file: ") && e.contains("the file is empty"),
            "{e}"
        );
        assert!(
            e.contains("http.read_token_file: ") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn http_limits_and_watch_have_defaults_and_bounds() {
        let c = Config::parse_with_env(Path::new("c.toml"), "", &|_| None).unwrap();
        assert!(
            c.http.admin_token.is_none(),
            "admin endpoints are off by default"
        );
        assert_eq!(c.http.max_request_bytes, 65_536);
        assert_eq!(c.http.request_timeout, Duration::from_secs(30));
        assert!(c.evaluation.watch_rules);
        let text = "[http]\nmax_request_bytes = 10\nrequest_timeout = \"1ms\"\n[evaluation]\nwatch_rules = false\n";
        let e = Config::parse_with_env(Path::new("c.toml"), text, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http.request_timeout: must be at least 100ms"),
            "{e}"
        );
        assert!(
            e.contains("http.max_request_bytes: must be at least 1024"),
            "{e}"
        );
    }

    #[test]
    fn durations_in_both_styles() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("-1s").is_err());
    }
}
