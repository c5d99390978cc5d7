//! Configuration: a strict TOML file (unknown keys are errors) -> a validated [`Config`].
//!
//! In: the text of `chainwatch.toml` (optional; every key has a default) and command-line
//! overrides. Out: [`Config`], or every problem found, each naming its key.
//! Durations are strings (`"100ms"`, `"5s"`, `"90d"`); sizes carry their unit in the key.

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
}

impl Default for RawEventTime {
    fn default() -> Self {
        RawEventTime {
            allowed_lateness: "1h".into(),
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
    interval: String,
    rules: PathBuf,
}

impl Default for RawEvaluation {
    fn default() -> Self {
        RawEvaluation {
            interval: "5s".into(),
            rules: PathBuf::from("rules"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:9750".into(),
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
    pub retention: Retention,
    pub evaluation: EvaluationConfig,
    pub http: HttpConfig,
    pub simulator: SimulatorConfig,
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
    pub options: BTreeMap<String, String>,
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
    /// Wall-clock time between evaluations of the indicators and rules.
    pub interval: Duration,
    /// Directory of rule files; indicator SQL lives in its `indicators/` subdirectory.
    pub rules: PathBuf,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
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

    /// Parse and validate; `path` is used in messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
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
        let window = duration("state.window", &raw.state.window);
        let dedup = duration("state.dedup_retention", &raw.state.dedup_retention);
        let interval = duration("evaluation.interval", &raw.evaluation.interval);
        let history = duration("simulator.history", &raw.simulator.history);
        let mut invalid = |key: &str, message: String| {
            errors.push(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: key.to_string(),
                message,
            })
        };
        if raw.batch.max_rows == 0 {
            invalid("batch.max_rows", "must be at least 1".into());
        }
        if raw.batch.max_message_bytes < 64 {
            invalid("batch.max_message_bytes", "must be at least 64".into());
        }
        if interval < Duration::from_millis(10) {
            invalid("evaluation.interval", "must be at least 10ms".into());
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
        for key in raw.kafka.options.keys() {
            if key == "group.id" || key == "bootstrap.servers" {
                invalid(
                    &format!("kafka.options.{key:?}"),
                    "set kafka.group_id / kafka.brokers instead".into(),
                );
            }
        }
        let listen = match raw.http.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                invalid("http.listen", format!("{:?}: {e}", raw.http.listen));
                None
            }
        };
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
                options: raw.kafka.options,
            },
            batch: BatchConfig {
                max_rows: raw.batch.max_rows,
                linger,
                max_message_bytes: raw.batch.max_message_bytes,
            },
            allowed_lateness: lateness,
            retention: Retention {
                window_ms: window.as_millis() as i64,
                dedup_ms: dedup.as_millis() as i64,
            },
            evaluation: EvaluationConfig {
                interval,
                rules: raw.evaluation.rules,
            },
            http: HttpConfig {
                listen: listen.expect("checked above"),
            },
            simulator: SimulatorConfig {
                seed: raw.simulator.seed,
                history,
                speed: raw.simulator.speed,
                malformed_every: raw.simulator.malformed_every,
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
        assert_eq!(c.evaluation.interval, Duration::from_secs(5));
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:9750");
        assert_eq!(c.retention.window_ms, 90 * 86_400_000);
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
[evaluation]
interval = "1ms"
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
                "evaluation.interval",
                "kafka.dead_letter_topic",
                "kafka.options.\"group.id\"",
                "http.listen"
            ]
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
