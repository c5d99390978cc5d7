//! Rule unit tests, in the spirit of `promtool test rules`: events in, expected alerts out.
//!
//! In: a test file (YAML) naming rule files, an evaluation interval, a start time, and tests;
//! each test lists canonical events (docs/events.md) at offsets from the start and, at given
//! evaluation times, the alerts of one rule expected to be firing:
//!
//! ```yaml
//! rule_files: [../supplier.yaml]   # relative to this file; indicators from ../indicators
//! evaluation_interval: 1h
//! start: 2026-01-05T00:00:00Z
//! tests:
//!   - name: three late lines fire after 6h
//!     events:                      # `at` (offset from start) fills event_time;
//!       - {at: 0h, event: {kind: po_line_created, po: PO-1, line: 1, ...}}  # event_id and
//!     alert_rule_test:             # source are filled in when missing
//!       - eval_time: 31h
//!         alertname: SupplierOpenLinesLate
//!         exp_alerts:              # firing alerts only; [] (or nothing) asserts none fires
//!           - exp_labels: {supplier: SUP-1, severity: warning}
//!             exp_annotations: {summary: "..."}
//! ```
//!
//! Out: a [`FileReport`] per file, printed like promtool's (expected and got alerts, then what
//! is missing and what is unexpected), and whether every test passed.
//!
//! Semantics: each test replays its own events from `start` on the grid `start + k *
//! evaluation_interval` (crate::backtest::replay, the service's own state, SQL and alert
//! engine); an `eval_time` is checked against the last grid evaluation at or before it.
//! `exp_labels` must equal the alert's labels, leaving out `alertname` and, unless listed,
//! `reason_code` and the rule's static labels. Each annotation listed in `exp_annotations` must
//! equal the rendered text; annotations not listed are not checked. The file is parsed
//! strictly: unknown keys are errors with `file:line:col`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::alerts::{Alert, AlertState};
use crate::backtest::replay::Replay;
use crate::backtest::source::EventLog;
use crate::indicators::Indicators;
use crate::pipeline::RuleBook;
use crate::state::Retention;

/// Why a test file could not be run (each is reported; the file counts as failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct TestFileError {
    /// `file:line:col`, or `file` when the position is unknown.
    pub at: String,
    /// Lowercase message.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rule_files: Vec<Spanned<String>>,
    #[serde(default)]
    indicators: Option<Spanned<String>>,
    /// A network directory (network/*.yaml format), relative to the test file.
    #[serde(default)]
    network: Option<Spanned<String>>,
    /// A feed definitions directory, relative to the test file.
    #[serde(default)]
    feeds: Option<Spanned<String>>,
    evaluation_interval: Spanned<String>,
    start: Spanned<String>,
    tests: Vec<Spanned<RawTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    #[serde(default)]
    events: Vec<Spanned<RawEvent>>,
    #[serde(default)]
    alert_rule_test: Vec<Spanned<RawAlertTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    #[serde(default)]
    at: Option<Spanned<String>>,
    /// The event arrived through this supplier feed (counts as the feed's activity).
    #[serde(default)]
    feed: Option<Spanned<String>>,
    event: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertTest {
    eval_time: Spanned<String>,
    alertname: Spanned<String>,
    #[serde(default)]
    exp_alerts: Vec<RawExpected>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpected {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

/// One expected alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Labels, compared exactly (see the module docs for what is left out).
    pub labels: BTreeMap<String, String>,
    /// Annotations that must match.
    pub annotations: BTreeMap<String, String>,
}

/// The firing alerts of one rule expected at one time.
#[derive(Debug, Clone)]
pub struct AlertCheck {
    /// Where the check is written.
    pub at: String,
    /// Offset from the start, as written (`30h`).
    pub eval_text: String,
    /// Offset from the start, in ms.
    pub eval_ms: i64,
    /// The rule.
    pub alertname: String,
    /// Expected firing alerts; empty: none.
    pub expected: Vec<Expected>,
}

/// One test: events and checks.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// Its name.
    pub name: String,
    /// Where it starts.
    pub at: String,
    /// The events as JSON payloads, with where each was written.
    pub events: Vec<(String, Vec<u8>)>,
    /// The checks, in time order.
    pub checks: Vec<AlertCheck>,
    /// (event time ms, feed name, supplier) of the events that came through a feed.
    pub feed_marks: Vec<(i64, String, String)>,
}

/// A parsed test file with its rules loaded.
pub struct TestFile {
    /// The file.
    pub path: PathBuf,
    /// The rules (and indicators) under test.
    pub book: RuleBook,
    /// Evaluation interval (ms).
    pub interval_ms: i64,
    /// Start time (ms).
    pub start_ms: i64,
    /// The tests.
    pub tests: Vec<TestCase>,
    /// Network and feed definitions the tests run with (empty when the file names none).
    pub catalog: std::sync::Arc<crate::catalog::Catalog>,
}

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// The test's name.
    pub name: String,
    /// Where it starts.
    pub at: String,
    /// Each failed check (or rejected event), rendered; empty: passed.
    pub failures: Vec<String>,
}

/// The outcome of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Problems that kept the file from running.
    pub errors: Vec<TestFileError>,
    /// The tests run.
    pub tests: Vec<TestOutcome>,
}

impl FileReport {
    /// True when the file ran and every test passed.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.tests.iter().all(|t| t.failures.is_empty())
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Unit Testing: {}", self.path.display())?;
        if !self.errors.is_empty() {
            writeln!(f, "  FAILED:")?;
            for e in &self.errors {
                writeln!(f, "    {e}")?;
            }
            return Ok(());
        }
        let failed: Vec<&TestOutcome> = self
            .tests
            .iter()
            .filter(|t| !t.failures.is_empty())
            .collect();
        if failed.is_empty() {
            return writeln!(f, "  SUCCESS ({} tests)", self.tests.len());
        }
        writeln!(
            f,
            "  FAILED ({} of {} tests):",
            failed.len(),
            self.tests.len()
        )?;
        for t in failed {
            writeln!(f, "    {}: test {:?}:", t.at, t.name)?;
            for failure in &t.failures {
                f.write_str(failure)?;
            }
        }
        Ok(())
    }
}

/// Parses, loads and runs one test file.
pub async fn run_file(path: &Path) -> FileReport {
    let file = match load(path).await {
        Ok(f) => f,
        Err(errors) => {
            return FileReport {
                path: path.to_path_buf(),
                errors,
                tests: Vec::new(),
            }
        }
    };
    let mut tests = Vec::new();
    for t in &file.tests {
        tests.push(run_test(&file, t).await);
    }
    FileReport {
        path: path.to_path_buf(),
        errors: Vec::new(),
        tests,
    }
}

/// Reads and checks a test file and loads the rules it names.
///
/// # Errors
/// Every problem found: YAML and structure (stops there), then bad values, rules and
/// indicators.
pub async fn load(path: &Path) -> Result<TestFile, Vec<TestFileError>> {
    let name = path.display().to_string();
    let err = |at: String, message: String| vec![TestFileError { at, message }];
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            name.clone(),
            format!("cannot read: {}", e.to_string().to_lowercase()),
        )
    })?;
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    let raw: RawFile = serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("{name}:{}:{}", l.line(), l.column()))
            .unwrap_or_else(|| name.clone());
        use serde_saphyr::MessageFormatter;
        let message = serde_saphyr::DefaultMessageFormatter
            .format_message(e.without_snippet())
            .replace('\n', " ");
        err(at, message)
    })?;
    let at = |s: &serde_saphyr::Location| format!("{name}:{}:{}", s.line(), s.column());
    let mut errors = Vec::new();
    let mut push = |at: String, message: String| errors.push(TestFileError { at, message });
    let base = path.parent().unwrap_or(Path::new(""));

    let interval_ms = match duration_ms(&raw.evaluation_interval.value) {
        Ok(ms) if ms > 0 => ms,
        Ok(_) => {
            push(
                at(&raw.evaluation_interval.referenced),
                "evaluation_interval must be positive".into(),
            );
            1
        }
        Err(e) => {
            push(at(&raw.evaluation_interval.referenced), e);
            1
        }
    };
    let start_ms = match chrono::DateTime::parse_from_rfc3339(raw.start.value.trim()) {
        Ok(t) => t.timestamp_millis(),
        Err(e) => {
            push(
                at(&raw.start.referenced),
                format!("start must be an RFC 3339 time: {e}"),
            );
            0
        }
    };

    // Rules and indicators.
    if raw.rule_files.is_empty() {
        push(
            name.clone(),
            "rule_files must name at least one file".into(),
        );
    }
    let rule_paths: Vec<PathBuf> = raw.rule_files.iter().map(|f| base.join(&f.value)).collect();
    let indicator_dir = match &raw.indicators {
        Some(d) => base.join(&d.value),
        None => rule_paths
            .first()
            .and_then(|p| p.parent())
            .unwrap_or(base)
            .join("indicators"),
    };
    let rules = crate::rules::load_paths(&rule_paths);
    let indicators = Indicators::load_dir(&indicator_dir).await;
    let book = match (rules, indicators) {
        (Ok(rules), Ok(indicators)) => {
            match crate::rules::check_against(&rules, &indicators.schemas()) {
                Ok(()) => match only_used(&indicators, &rules).await {
                    Ok(indicators) => Some(RuleBook { indicators, rules }),
                    Err(es) => {
                        for e in es {
                            push(name.clone(), format!("indicators: {e}"));
                        }
                        None
                    }
                },
                Err(e) => {
                    push(name.clone(), format!("rules:\n{e}"));
                    None
                }
            }
        }
        (rules, indicators) => {
            if let Err(e) = rules {
                push(name.clone(), format!("rules:\n{e}"));
            }
            if let Err(es) = indicators {
                for e in es {
                    push(name.clone(), format!("indicators: {e}"));
                }
            }
            None
        }
    };

    // Master data: a network directory and feed definitions.
    let mut sources = crate::catalog::Sources::default();
    if let Some(d) = &raw.network {
        match crate::catalog::load_network(&base.join(&d.value)) {
            Ok(n) => sources.files = n,
            Err(e) => push(at(&d.referenced), e.to_string()),
        }
    }
    if let Some(d) = &raw.feeds {
        match crate::catalog::load_feeds(&base.join(&d.value)) {
            Ok(f) => sources.feeds = std::sync::Arc::new(f),
            Err(e) => push(at(&d.referenced), e.to_string()),
        }
    }
    let catalog = std::sync::Arc::new(sources.build());
    for e in &catalog.errors {
        push(name.clone(), e.clone());
    }

    let mut tests = Vec::new();
    for (ti, t) in raw.tests.iter().enumerate() {
        let mut feed_marks = Vec::new();
        let test_at = at(&t.referenced);
        let mut events = Vec::new();
        for (ei, e) in t.value.events.iter().enumerate() {
            let e_at = at(&e.referenced);
            let mut event = e.value.event.clone();
            if let Some(feed) = &e.value.feed {
                let time = match (&e.value.at, event.get("event_time")) {
                    (Some(offset), _) => duration_ms(&offset.value).ok().map(|ms| start_ms + ms),
                    (None, Some(serde_json::Value::String(t))) => {
                        chrono::DateTime::parse_from_rfc3339(t)
                            .ok()
                            .map(|t| t.timestamp_millis())
                    }
                    _ => None,
                };
                match (catalog.feeds.get(&feed.value), time) {
                    (Some(f), Some(time)) => {
                        feed_marks.push((time, f.name.clone(), f.supplier.id.clone()))
                    }
                    (None, _) => push(
                        at(&feed.referenced),
                        format!("feed {:?} is not defined in `feeds`", feed.value),
                    ),
                    (_, None) => {}
                }
            }
            match (&e.value.at, event.contains_key("event_time")) {
                (Some(offset), false) => match duration_ms(&offset.value) {
                    Ok(ms) => {
                        let time = crate::backtest::breaches::rfc3339(start_ms + ms);
                        event.insert("event_time".into(), time.into());
                    }
                    Err(msg) => push(at(&offset.referenced), msg),
                },
                (Some(offset), true) => push(
                    at(&offset.referenced),
                    "give either `at` or `event.event_time`, not both".into(),
                ),
                (None, true) => {}
                (None, false) => push(
                    e_at.clone(),
                    "an event needs `at` (offset from start) or `event.event_time`".into(),
                ),
            }
            event
                .entry("event_id")
                .or_insert_with(|| format!("test{}-{}", ti + 1, ei + 1).into());
            // A feed's events carry its name as their source, as the feed mapping sets it:
            // that is what counts as the feed's activity.
            let source = e.value.feed.as_ref().map_or("test", |f| f.value.as_str());
            event.entry("source").or_insert_with(|| source.into());
            let json = serde_json::Value::Object(event).to_string().into_bytes();
            events.push((e_at, json));
        }
        let mut checks = Vec::new();
        for c in &t.value.alert_rule_test {
            let c_at = at(&c.referenced);
            let eval_ms = match duration_ms(&c.value.eval_time.value) {
                Ok(ms) => ms,
                Err(msg) => {
                    push(at(&c.value.eval_time.referenced), msg);
                    continue;
                }
            };
            let alertname = c.value.alertname.value.clone();
            if let Some(b) = &book {
                if b.rules.get(&alertname).is_none() {
                    let known: Vec<&str> = b.rules.rules().map(|r| r.name.as_str()).collect();
                    push(
                        at(&c.value.alertname.referenced),
                        format!(
                            "alertname {alertname:?} is not a rule of the rule files (known: {})",
                            known.join(", ")
                        ),
                    );
                }
            }
            checks.push(AlertCheck {
                at: c_at,
                eval_text: c.value.eval_time.value.trim().to_string(),
                eval_ms,
                alertname,
                expected: c
                    .value
                    .exp_alerts
                    .iter()
                    .map(|x| Expected {
                        labels: x.exp_labels.clone(),
                        annotations: x.exp_annotations.clone(),
                    })
                    .collect(),
            });
        }
        // The replay only moves forward.
        checks.sort_by_key(|c| c.eval_ms);
        feed_marks.sort();
        tests.push(TestCase {
            name: t.value.name.clone(),
            at: test_at,
            events,
            checks,
            feed_marks,
        });
    }
    match book {
        Some(book) if errors.is_empty() => Ok(TestFile {
            path: path.to_path_buf(),
            book,
            interval_ms,
            start_ms,
            tests,
            catalog,
        }),
        _ => Err(errors),
    }
}

/// The indicators the rules use (with the views they read), planned again without the others:
/// every evaluation runs every indicator, and the SQL is most of a test's time.
async fn only_used(
    all: &Indicators,
    rules: &crate::rules::RuleSet,
) -> Result<Indicators, Vec<crate::indicators::IndicatorError>> {
    let used: BTreeSet<&str> = rules.rules().map(|r| r.indicator.as_str()).collect();
    all.only(|name| used.contains(name)).await
}

/// Longest duration accepted (100 years): keeps time arithmetic far from overflow.
const MAX_DURATION_MS: i64 = 100 * 366 * 86_400_000;

/// A duration such as `30h`, `1d 6h`, `90m`, `0s`, in ms.
fn duration_ms(text: &str) -> Result<i64, String> {
    let d = crate::config::parse_duration(text)?;
    i64::try_from(d.as_millis())
        .ok()
        .filter(|ms| *ms <= MAX_DURATION_MS)
        .ok_or_else(|| format!("duration {text:?} is longer than 100 years"))
}

/// Runs one test on its own replay.
pub async fn run_test(file: &TestFile, test: &TestCase) -> TestOutcome {
    let mut failures = Vec::new();
    let payloads: Vec<Vec<u8>> = test.events.iter().map(|(_, p)| p.clone()).collect();
    let log = match EventLog::decode(&payloads, |i| {
        test.events.get(i).map(|e| e.0.clone()).unwrap_or_default()
    }) {
        Ok(log) => log,
        Err(e) => {
            failures.push(format!("      cannot decode the events: {e}\n"));
            return outcome(test, failures);
        }
    };
    for r in &log.rejects {
        failures.push(format!(
            "      {}: event rejected ({}): {}\n",
            r.at,
            r.reason.as_str(),
            r.detail
        ));
    }
    if !failures.is_empty() {
        return outcome(test, failures);
    }
    let mut replay = Replay::new(&file.book, &log, Retention::default())
        .with_catalog(file.catalog.clone())
        .with_feed_marks(test.feed_marks.clone());
    let mut next = file.start_ms;
    for check in &test.checks {
        let until = file.start_ms + check.eval_ms;
        while next <= until {
            replay.evaluate_at(next).await;
            next += file.interval_ms;
        }
        let alerts = replay.alerts();
        if let Some(diff) = compare(file, check, &alerts) {
            failures.push(diff);
        }
    }
    outcome(test, failures)
}

fn outcome(test: &TestCase, failures: Vec<String>) -> TestOutcome {
    TestOutcome {
        name: test.name.clone(),
        at: test.at.clone(),
        failures,
    }
}

/// Compares the firing alerts of the check's rule with the expected ones; a promtool-like
/// diff when they differ.
fn compare(file: &TestFile, check: &AlertCheck, alerts: &[Alert]) -> Option<String> {
    let listed: BTreeSet<&String> = check
        .expected
        .iter()
        .flat_map(|e| e.labels.keys())
        .collect();
    let listed_annotations: BTreeSet<&String> = check
        .expected
        .iter()
        .flat_map(|e| e.annotations.keys())
        .collect();
    let static_labels: BTreeSet<&String> = file
        .book
        .rules
        .get(&check.alertname)
        .map(|r| r.labels.keys().collect())
        .unwrap_or_default();
    let compared = |a: &Alert| -> BTreeMap<String, String> {
        a.labels
            .iter()
            .filter(|(k, _)| {
                k.as_str() != "alertname"
                    && (listed.contains(k)
                        || (k.as_str() != "reason_code" && !static_labels.contains(k)))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let of_rule: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.rule == check.alertname)
        .collect();
    let firing: Vec<&Alert> = of_rule
        .iter()
        .copied()
        .filter(|a| a.state == AlertState::Firing)
        .collect();
    let got: Vec<Expected> = firing
        .iter()
        .map(|a| Expected {
            labels: compared(a),
            annotations: a.annotations.clone(),
        })
        .collect();
    let mut unmatched_got: Vec<usize> = (0..got.len()).collect();
    let mut missing = Vec::new();
    for e in &check.expected {
        let hit = unmatched_got.iter().position(|&g| {
            got[g].labels == e.labels
                && e.annotations
                    .iter()
                    .all(|(k, v)| got[g].annotations.get(k) == Some(v))
        });
        match hit {
            Some(i) => {
                unmatched_got.remove(i);
            }
            None => missing.push(e),
        }
    }
    if missing.is_empty() && unmatched_got.is_empty() {
        return None;
    }
    let shown = |x: &Expected| Expected {
        labels: x.labels.clone(),
        annotations: x
            .annotations
            .iter()
            .filter(|(k, _)| listed_annotations.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "      {}: alertname: {}, time: {},",
        check.at, check.alertname, check.eval_text
    );
    let _ = writeln!(s, "          exp:{},", list(check.expected.iter().cloned()));
    let _ = writeln!(s, "          got:{}", list(got.iter().map(shown)));
    if !missing.is_empty() {
        let _ = writeln!(s, "          missing (expected, not firing):");
        for m in missing {
            let _ = writeln!(s, "            - {}", one_line(m));
        }
    }
    if !unmatched_got.is_empty() {
        let _ = writeln!(s, "          unexpected (firing, not expected):");
        for &g in &unmatched_got {
            let _ = writeln!(s, "            + {}", one_line(&shown(&got[g])));
        }
    }
    let pending: Vec<&&Alert> = of_rule
        .iter()
        .filter(|a| a.state == AlertState::Pending)
        .collect();
    for p in pending {
        let since = u64::try_from(p.active_at - file.start_ms).unwrap_or(0);
        let _ = writeln!(
            s,
            "          note: pending (not firing yet) since {}: {}",
            humantime::format_duration(std::time::Duration::from_millis(since)),
            braces(&compared(p))
        );
    }
    Some(s)
}

/// `[ 0: Labels:{...} Annotations:{...} ]` as promtool prints it.
fn list(items: impl Iterator<Item = Expected>) -> String {
    let items: Vec<Expected> = items.collect();
    if items.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[\n");
    for (i, x) in items.iter().enumerate() {
        let _ = writeln!(s, "              {i}:");
        let _ = writeln!(s, "                Labels:{}", braces(&x.labels));
        let _ = writeln!(s, "                Annotations:{}", braces(&x.annotations));
    }
    s.push_str("              ]");
    s
}

fn one_line(x: &Expected) -> String {
    if x.annotations.is_empty() {
        braces(&x.labels)
    } else {
        format!("{} {}", braces(&x.labels), braces(&x.annotations))
    }
}

fn braces(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A temp dir with the shipped rules and indicators copied in, and `tests/`.
    fn rules_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        std::fs::create_dir_all(dir.path().join("indicators/views")).unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        for d in [
            src.clone(),
            src.join("indicators"),
            src.join("indicators/views"),
        ] {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() {
                    let rel = p.strip_prefix(&src).unwrap();
                    std::fs::copy(&p, dir.path().join(rel)).unwrap();
                }
            }
        }
        dir
    }

    const HEAD: &str =
        "rule_files: [../supplier.yaml]\nevaluation_interval: 1h\nstart: 2026-01-05T00:00:00Z\n";

    #[tokio::test]
    async fn unknown_keys_are_errors_with_positions() {
        let dir = rules_dir();
        let p = write(
            &dir.path().join("tests"),
            "bad.test.yaml",
            &format!("{HEAD}tests:\n  - name: x\n    evnts: []\n"),
        );
        let r = run_file(&p).await;
        assert!(!r.passed());
        let text = r.to_string();
        assert!(
            text.contains("bad.test.yaml:6:5: unknown field `evnts`"),
            "{text}"
        );
        assert!(text.contains("evnts"), "{text}");
    }

    #[tokio::test]
    async fn bad_values_are_all_reported() {
        let dir = rules_dir();
        let text = "rule_files: [../supplier.yaml]\nevaluation_interval: soon\nstart: yesterday\ntests:\n  - name: x\n    events:\n      - {at: 1q, event: {kind: po_line_cancelled}}\n      - {event: {kind: po_line_cancelled}}\n    alert_rule_test:\n      - eval_time: 1h\n        alertname: NoSuchRule\n";
        let p = write(&dir.path().join("tests"), "bad.test.yaml", text);
        let errors = load(&p).await.err().unwrap();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let has = |s: &str| lines.iter().any(|l| l.contains(s));
        assert!(
            has("bad.test.yaml:2:22: invalid duration \"soon\""),
            "{lines:?}"
        );
        assert!(
            has("bad.test.yaml:3:8: start must be an RFC 3339 time"),
            "{lines:?}"
        );
        assert!(
            has("bad.test.yaml:7:14: invalid duration \"1q\""),
            "{lines:?}"
        );
        assert!(has("bad.test.yaml:8:9: an event needs `at`"), "{lines:?}");
        assert!(
            has("bad.test.yaml:11:20: alertname \"NoSuchRule\" is not a rule"),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn rejected_events_fail_the_test_with_their_position() {
        let dir = rules_dir();
        let text = format!(
            "{HEAD}tests:\n  - name: bad event\n    events:\n      - {{at: 0h, event: {{kind: po_line_cancelled, po: P}}}}\n"
        );
        let p = write(&dir.path().join("tests"), "ev.test.yaml", &text);
        let r = run_file(&p).await;
        assert!(!r.passed());
        let out = r.to_string();
        assert!(
            out.contains("ev.test.yaml:7:9: event rejected (missing_field)"),
            "{out}"
        );
    }
}
