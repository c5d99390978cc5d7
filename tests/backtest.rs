//! `chainwatch rules test` and `chainwatch backtest`: the shipped rule tests, a failing rule
//! test, a hand-computed backtest, replay determinism, reading a topic, and the CLI on a
//! simulator history in all three formats.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chainwatch::backtest::breaches::BreachKind;
use chainwatch::backtest::replay::{self, Change, Episode, ReplayOutcome, Schedule};
use chainwatch::backtest::score;
use chainwatch::backtest::source::{EventLog, TopicSource};
use chainwatch::pipeline::{load_rulebook, RuleBook};
use chainwatch::sim::{SimConfig, Simulator};
use chainwatch::state::Retention;
use serde_json::Value;

use crate::util::repo_path;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
/// 2026-01-05T00:00:00Z.
const T0: i64 = 1_767_571_200_000;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chainwatch"))
}

fn test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("rules/tests"))
        .expect("rules/tests")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn shipped_rule_tests_pass_and_cover_every_shipped_rule() {
    let files = test_files();
    assert!(files.len() >= 3, "{files:?}");
    let mut fired = std::collections::BTreeSet::new();
    for f in &files {
        let report = chainwatch::ruletest::run_file(f).await;
        assert!(report.passed(), "{report}");
        let file = chainwatch::ruletest::load(f)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        for t in &file.tests {
            for c in t.checks.iter().filter(|c| !c.expected.is_empty()) {
                fired.insert(c.alertname.clone());
            }
        }
    }
    let shipped = chainwatch::rules::load_dir(&repo_path("rules")).expect("shipped rules load");
    let untested: Vec<&str> = shipped
        .rules()
        .map(|r| r.name.as_str())
        .filter(|n| !fired.contains(*n))
        .collect();
    assert!(
        untested.is_empty(),
        "rules never expected to fire in rules/tests: {untested:?}"
    );
}

#[test]
fn rules_test_cli_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.test.yaml");
    let text = format!(
        "rule_files: [{}]\nevaluation_interval: 1h\nstart: 2026-01-05T00:00:00Z\ntests:\n  - name: wrong severity\n    events:\n{}    alert_rule_test:\n      - eval_time: 31h\n        alertname: SupplierOpenLinesLate\n        exp_alerts:\n          - exp_labels: {{supplier: SUP-A, severity: critical}}\n  - name: right\n    alert_rule_test:\n      - eval_time: 2h\n        alertname: SupplierOpenLinesLate\n",
        repo_path("rules/supplier.yaml").display(),
        (1..=3)
            .map(|i| format!("      - {{at: 0h, event: {{kind: po_line_created, po: PO-1, line: {i}, supplier: SUP-A, part: P-1, site: S-1, quantity: 1, unit_price: 1, order_date: 2026-01-01, promised_date: 2026-01-05}}}}\n"))
            .collect::<String>()
    );
    std::fs::write(&file, text).unwrap();
    let out = bin()
        .args(["rules", "test"])
        .arg(&file)
        .output()
        .expect("run chainwatch");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let name = file.display();
    for expected in [
        format!("Unit Testing: {name}\n  FAILED (1 of 2 tests):\n"),
        format!("    {name}:5:5: test \"wrong severity\":\n"),
        format!("      {name}:11:9: alertname: SupplierOpenLinesLate, time: 31h,\n"),
        "          missing (expected, not firing):\n            - {severity=\"critical\", supplier=\"SUP-A\"}\n".to_string(),
        "          unexpected (firing, not expected):\n            + {severity=\"warning\", supplier=\"SUP-A\"}\n".to_string(),
    ] {
        assert!(stdout.contains(&expected), "missing {expected:?} in:\n{stdout}");
    }
    // The passing shipped tests exit 0.
    let ok = bin()
        .args(["rules", "test"])
        .arg(repo_path("rules/tests/inventory.test.yaml"))
        .output()
        .expect("run chainwatch");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("SUCCESS"));
}

/// A rules directory with two simple rules the hand-computed test can follow exactly.
fn hand_rules(dir: &Path) {
    std::fs::create_dir_all(dir.join("indicators")).unwrap();
    std::fs::write(
        dir.join("indicators/open_late.sql"),
        "SELECT supplier, CAST(COUNT(*) AS DOUBLE) AS late_lines FROM po_lines \
         WHERE due_at < eval_time() GROUP BY supplier",
    )
    .unwrap();
    std::fs::write(
        dir.join("indicators/stock.sql"),
        "SELECT site, part, on_hand FROM inventory",
    )
    .unwrap();
    std::fs::write(
        dir.join("hand.yaml"),
        r#"groups:
  - name: hand
    rules:
      - alert: SupplierLate
        indicator: open_late
        value: late_lines
        op: ">="
        warning: 1
        for: 0s
        reason_code: supplier_late
        annotations: {summary: "{{ labels.supplier }} late"}
      - alert: StockLow
        indicator: stock
        value: on_hand
        op: "<"
        warning: 20
        for: 2h
        reason_code: stock_low
        annotations: {summary: "{{ labels.part }} low"}
"#,
    )
    .unwrap();
}

fn at(h: i64) -> String {
    chainwatch::backtest::breaches::rfc3339(T0 + h * H)
}

fn ev(id: &str, h: i64, body: &str) -> Vec<u8> {
    format!(
        r#"{{"event_id":"{id}","event_time":"{}","source":"t",{body}}}"#,
        at(h)
    )
    .into_bytes()
}

fn po_line(id: &str, h: i64, supplier: &str, promised: &str) -> Vec<u8> {
    ev(
        id,
        h,
        &format!(
            r#""kind":"po_line_created","po":"PO-{supplier}","line":1,"supplier":"{supplier}","part":"P","site":"PL","quantity":10,"unit_price":1,"order_date":"2026-01-01","promised_date":"{promised}""#
        ),
    )
}

fn receipt(id: &str, h: i64, supplier: &str) -> Vec<u8> {
    ev(
        id,
        h,
        &format!(
            r#""kind":"goods_receipt","po":"PO-{supplier}","line":1,"supplier":"{supplier}","quantity":10,"received_at":"{}""#,
            at(h)
        ),
    )
}

fn stock(id: &str, h: i64, kind: &str, part: &str, amount: f64) -> Vec<u8> {
    let body = match kind {
        "position" => format!(
            r#""kind":"inventory_position","site":"PL","part":"{part}","on_hand":{amount},"daily_demand":1"#
        ),
        movement => format!(
            r#""kind":"stock_movement","site":"PL","part":"{part}","movement":"{movement}","quantity":{amount}"#
        ),
    };
    ev(id, h, &body)
}

/// The hand-built history, deliberately out of order (the replay sorts by event time).
fn hand_events() -> Vec<Vec<u8>> {
    vec![
        // S1: due at 24h, received at 60h (1.5 days late): breach at 48h.
        po_line("e1", 0, "S1", "2026-01-05"),
        receipt("e2", 60, "S1"),
        // S2: due at 24h, received at 40h (0.7 days late, within the tolerance): no breach.
        po_line("e3", 0, "S2", "2026-01-05"),
        receipt("e4", 40, "S2"),
        // S3: due at 24h, but the line only shows up at 70h and is received at 71h: breach at
        // 48h, before any alert could fire.
        po_line("e5", 70, "S3", "2026-01-05"),
        receipt("e6", 71, "S3"),
        // P1: 100 -> 15 at 10h (low), -> 0 at 30h (stock-out), back to 50 at 40h.
        stock("e7", 0, "position", "P1", 100.0),
        stock("e8", 10, "issue", "P1", 85.0),
        stock("e9", 30, "issue", "P1", 15.0),
        stock("e10", 40, "receipt", "P1", 50.0),
        // P2: low from 50h to 60h, never out.
        stock("e11", 50, "position", "P2", 5.0),
        stock("e12", 60, "position", "P2", 30.0),
        // P3: first seen empty at 90h (stock-out) and still empty at the end (100h).
        stock("e14", 100, "position", "P3", 0.0),
        stock("e13", 90, "position", "P3", 0.0),
    ]
}

async fn hand_book(dir: &Path) -> RuleBook {
    hand_rules(dir);
    load_rulebook(dir)
        .await
        .unwrap_or_else(|e| panic!("hand rules: {e}"))
}

fn decode(payloads: &[Vec<u8>]) -> EventLog {
    let log = EventLog::decode(payloads, |i| format!("#{i}")).expect("decode");
    assert!(log.rejects.is_empty(), "{:?}", log.rejects);
    log
}

fn episode_times(o: &ReplayOutcome, rule: &str) -> Vec<(String, i64, Option<i64>, Option<i64>)> {
    let key = |e: &Episode| {
        e.labels
            .get("supplier")
            .or_else(|| e.labels.get("part"))
            .cloned()
            .unwrap_or_default()
    };
    let h = |t: i64| (t - T0) / H;
    o.episodes
        .iter()
        .filter(|e| e.rule == rule)
        .map(|e| {
            (
                key(e),
                h(e.pending_at),
                e.fired_at.map(h),
                e.resolved_at.map(h),
            )
        })
        .collect()
}

#[tokio::test]
async fn hand_built_history_gives_the_hand_computed_alerts_breaches_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let book = hand_book(dir.path()).await;
    let log = decode(&hand_events());
    let schedule = Schedule::covering(log.times(), H).expect("events");
    assert_eq!((schedule.start, schedule.end), (T0, T0 + 100 * H));
    let o = replay::run(&book, &log, schedule, Retention::default(), &mut |_, _| {}).await;
    assert_eq!((o.evaluations, o.applied), (101, 14));
    assert!(o.problems.is_empty(), "{:?}", o.problems);

    // Alerts, by hand: SupplierLate (for 0s) fires at the first evaluation after the due time
    // (24h) and resolves at the receipt; S3's line is past due as soon as it appears.
    let s = |x: &str| x.to_string();
    assert_eq!(
        episode_times(&o, "SupplierLate"),
        [
            (s("S1"), 25, Some(25), Some(60)),
            (s("S2"), 25, Some(25), Some(40)),
            (s("S3"), 70, Some(70), Some(71)),
        ]
    );
    // StockLow (< 20 for 2h): P1 low at 10h, firing at 12h, back at 40h; P2 from 50h to 60h;
    // P3 from 90h, firing at 92h, still firing at the end.
    assert_eq!(
        episode_times(&o, "StockLow"),
        [
            (s("P1"), 10, Some(12), Some(40)),
            (s("P2"), 50, Some(52), Some(60)),
            (s("P3"), 90, Some(92), None),
        ]
    );
    // Transitions: pending and firing at the same time for `for: 0s`, each with annotations.
    let first: Vec<(i64, &str, Change)> = o
        .transitions
        .iter()
        .take(8)
        .map(|t| ((t.at - T0) / H, t.rule.as_str(), t.change))
        .collect();
    assert_eq!(
        first,
        [
            (10, "StockLow", Change::Pending),
            (12, "StockLow", Change::Firing),
            (25, "SupplierLate", Change::Pending),
            (25, "SupplierLate", Change::Firing),
            (25, "SupplierLate", Change::Pending),
            (25, "SupplierLate", Change::Firing),
            (40, "StockLow", Change::Resolved),
            (40, "SupplierLate", Change::Resolved),
        ]
    );
    let fired_s1 = o
        .transitions
        .iter()
        .find(|t| {
            t.rule == "SupplierLate"
                && t.labels.get("supplier").map(String::as_str) == Some("S1")
                && t.change == Change::Firing
        })
        .expect("S1 fires");
    assert_eq!(
        (fired_s1.at, fired_s1.value, fired_s1.threshold),
        (T0 + 25 * H, 1.0, 1.0)
    );
    assert_eq!(fired_s1.annotations["summary"], "S1 late");
    assert_eq!(fired_s1.labels["severity"], "warning");

    // Breaches: S1 and S3 late (at due + 1 day = 48h), P1 out at 30h, P3 out at 90h.
    let breaches: Vec<(BreachKind, i64, String)> = o
        .breaches
        .iter()
        .map(|b| {
            let who = b.key.get("supplier").or_else(|| b.key.get("part")).cloned();
            (b.kind, (b.at - T0) / H, who.unwrap_or_default())
        })
        .collect();
    assert_eq!(
        breaches,
        [
            (BreachKind::StockOut, 30, s("P1")),
            (BreachKind::LateDelivery, 48, s("S1")),
            (BreachKind::LateDelivery, 48, s("S3")),
            (BreachKind::StockOut, 90, s("P3")),
        ]
    );

    // Scores with a 1-day horizon:
    // SupplierLate: S1 (fired 25h, breach 48h): true; S2: no breach, false; S3 (fired 70h,
    // its breach was at 48h, before): false. Precision 1/3. Breach episodes S1@48h (alert
    // firing since 25h: lead 23h) and S3@48h (nothing firing before): recall 1/2.
    // StockLow: P1 (fired 12h, out at 30h): true, lead 18h; P2: false; P3 fired at 92h, its
    // horizon (116h) runs past the end (100h) with no breach after: undecided. Recall: P1
    // recalled, P3 (out at 90h, alert only at 92h) missed: 1/2.
    let scores = score::score(&o, &book, DAY);
    let by: BTreeMap<&str, &score::RuleScore> =
        scores.iter().map(|s| (s.rule.as_str(), s)).collect();
    let late = by["SupplierLate"];
    assert_eq!(late.mapping.breach, Some(BreachKind::LateDelivery));
    assert_eq!(
        (
            late.fired,
            late.true_positives,
            late.false_positives,
            late.undecided
        ),
        (3, 1, 2, 0)
    );
    assert_eq!(late.precision, Some(1.0 / 3.0));
    assert_eq!((late.breach_episodes, late.recalled), (2, 1));
    assert_eq!(late.recall, Some(0.5));
    assert_eq!(late.lead_days, [23.0 / 24.0]);
    assert_eq!(late.lead_median_days, Some(23.0 / 24.0));
    assert_eq!(late.lead_p90_days, Some(23.0 / 24.0));
    let low = by["StockLow"];
    assert_eq!(low.mapping.breach, Some(BreachKind::StockOut));
    assert_eq!(
        (
            low.fired,
            low.true_positives,
            low.false_positives,
            low.undecided
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(low.precision, Some(0.5));
    assert_eq!(
        (low.breach_episodes, low.recalled, low.recall),
        (2, 1, Some(0.5))
    );
    assert_eq!(low.lead_days, [0.75]);
    assert_eq!(low.firing_at_end, 1);
}

/// A short simulator history: (event time, JSON payload), in time order.
fn sim_history(days: i64) -> Vec<(i64, Vec<u8>)> {
    let mut sim = Simulator::new(SimConfig::default());
    let until = sim.now() + chrono::Duration::days(days);
    sim.run_until(until)
        .into_iter()
        .map(|e| (e.event_time.timestamp_millis(), e.payload))
        .collect()
}

fn outcome_json(o: &ReplayOutcome) -> String {
    serde_json::to_string(o).expect("outcome serializes")
}

/// Equal outcomes, bit for bit; on failure names the first difference instead of printing
/// megabytes of JSON.
fn assert_same(a: &ReplayOutcome, b: &ReplayOutcome) {
    fn first_diff<T: serde::Serialize>(what: &str, a: &[T], b: &[T]) {
        let json = |x: &T| serde_json::to_string(x).expect("serializes");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(json(x), json(y), "{what} #{i} differ");
        }
        assert_eq!(a.len(), b.len(), "number of {what}");
    }
    first_diff("transitions", &a.transitions, &b.transitions);
    first_diff("episodes", &a.episodes, &b.episodes);
    first_diff("breaches", &a.breaches, &b.breaches);
    first_diff("problems", &a.problems, &b.problems);
    assert!(outcome_json(a) == outcome_json(b), "outcomes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_deterministic_sequential_or_parallel() {
    let book = load_rulebook(&repo_path("rules"))
        .await
        .expect("shipped rules");
    let history = sim_history(30);
    let payloads: Vec<Vec<u8>> = history.iter().map(|(_, p)| p.clone()).collect();
    let log = decode(&payloads);
    // Input order does not matter as long as events of one time keep their order (the replay
    // sorts stably by event time): the second half of the history first.
    let mut cut = history.len() / 2;
    while cut < history.len() && history[cut].0 == history[cut - 1].0 {
        cut += 1;
    }
    let swapped: Vec<Vec<u8>> = payloads[cut..]
        .iter()
        .chain(&payloads[..cut])
        .cloned()
        .collect();
    let reversed = EventLog::decode(&swapped, |i| format!("#{i}")).expect("decode");
    let schedule = Schedule::covering(log.times(), 12 * H).expect("events");
    assert_eq!(schedule.len(), 61);
    let a = replay::run(&book, &log, schedule, Retention::default(), &mut |_, _| {}).await;
    let b = replay::run(&book, &log, schedule, Retention::default(), &mut |_, _| {}).await;
    assert_same(&a, &b);
    assert!(
        !a.episodes.is_empty() && !a.breaches.is_empty(),
        "a 30-day simulator history has alerts and breaches"
    );
    let mut progress = Vec::new();
    let workers = vec![
        chainwatch::indicators::Indicators::load_dir(&repo_path("rules/indicators"))
            .await
            .expect("indicators"),
        chainwatch::indicators::Indicators::load_dir(&repo_path("rules/indicators"))
            .await
            .expect("indicators"),
    ];
    let c = tokio::task::block_in_place(|| {
        replay::run_parallel(
            &book,
            &reversed,
            schedule,
            Retention::default(),
            workers,
            &mut |done, total| progress.push((done, total)),
        )
    })
    .expect("parallel replay");
    assert_same(&a, &c);
    assert_eq!(progress.len(), 61);
    assert_eq!(progress.last(), Some(&(61, 61)));
}

#[tokio::test]
async fn reads_a_topic_from_its_beginning_to_its_end() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("bt.events", 3, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    let producer = crate::util::producer(&brokers);
    let mut payloads = hand_events();
    payloads.push(b"not json".to_vec());
    crate::util::produce(&producer, "bt.events", &payloads).await;
    let src = TopicSource {
        brokers,
        topics: vec!["bt.events".into()],
        options: Vec::new(),
        idle_timeout: std::time::Duration::from_secs(20),
    };
    let log = tokio::task::spawn_blocking(move || chainwatch::backtest::source::read_topics(&src))
        .await
        .expect("join")
        .expect("read topic");
    assert_eq!((log.records, log.len(), log.rejects.len()), (15, 14, 1));
    assert!(
        log.rejects[0].at.starts_with("bt.events/"),
        "{:?}",
        log.rejects
    );
    // Same events as from the list itself, in event-time order.
    let dir = tempfile::tempdir().unwrap();
    let book = hand_book(dir.path()).await;
    let direct = decode(&hand_events());
    let schedule = Schedule::covering(direct.times(), H).expect("events");
    let a = replay::run(
        &book,
        &direct,
        schedule,
        Retention::default(),
        &mut |_, _| {},
    )
    .await;
    let b = replay::run(&book, &log, schedule, Retention::default(), &mut |_, _| {}).await;
    assert_same(&a, &b);
}

#[test]
fn backtest_cli_on_a_simulator_history_in_three_formats() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("history.jsonl");
    let out = bin()
        .args(["simulate", "--days", "30", "--out"])
        .arg(&events)
        .output()
        .expect("simulate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = std::fs::read_to_string(&events).expect("history written");
    assert!(lines.lines().count() > 1000);
    let rules = repo_path("rules");
    let shipped = chainwatch::rules::load_dir(&rules).expect("shipped rules");
    let names: Vec<String> = shipped.rules().map(|r| r.name.clone()).collect();
    let run = |format: &str, out_file: Option<&Path>| {
        let mut cmd = bin();
        cmd.args(["backtest", "--events"])
            .arg(&events)
            .arg("--rules")
            .arg(&rules)
            .args(["--step", "12h", "--format", format]);
        if let Some(f) = out_file {
            cmd.arg("--out").arg(f);
        }
        let out = cmd.output().expect("backtest");
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let json: Value = serde_json::from_str(&run("json", None)).expect("JSON report");
    assert_eq!(json["evaluations"], 61);
    assert_eq!(json["start"], "2026-01-05T00:00:00Z");
    assert_eq!(json["rejected"], 0);
    let rules_out = json["rules"].as_array().expect("rules");
    let reported: Vec<&str> = rules_out
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert_eq!(
        reported,
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let episodes = json["episodes"].as_array().expect("episodes");
    assert!(!episodes.is_empty());
    for e in episodes {
        assert!(names.iter().any(|n| e["rule"] == n.as_str()), "{e}");
        assert!(
            e["pending_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
    }
    let fired: u64 = rules_out.iter().filter_map(|r| r["fired"].as_u64()).sum();
    assert_eq!(
        fired,
        episodes.iter().filter(|e| !e["fired_at"].is_null()).count() as u64
    );
    assert!(
        json["breach_counts"]["late_delivery"].as_u64() > Some(0),
        "{}",
        json["breach_counts"]
    );
    for r in rules_out {
        for key in ["precision", "recall"] {
            let v = &r[key];
            assert!(
                v.is_null() || v.as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)),
                "{r}"
            );
        }
    }

    let html_file = dir.path().join("report.html");
    let stdout = run("html", Some(&html_file));
    assert!(stdout.is_empty(), "--out writes the file, not stdout");
    let html = std::fs::read_to_string(&html_file).expect("html written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("</svg>"));
    assert!(
        html.contains("<rect class=\"warning\"") || html.contains("<rect class=\"critical\""),
        "no firing episode drawn"
    );
    for n in &names {
        assert!(html.contains(n.as_str()), "{n} missing from the HTML");
    }
    // Self-contained: no script, no stylesheet link, no URL but the SVG namespace.
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for external in ["<script", "<link", "http://", "https://"] {
        assert!(!without_ns.contains(external), "{external} in the HTML");
    }

    let table = run("table", None);
    assert!(table.starts_with("chainwatch backtest: "), "{table}");
    assert!(table.contains("RULE") && table.contains("PRECISION") && table.contains("RECALL"));
    for n in &names {
        assert!(table.contains(n.as_str()), "{n} missing from the table");
    }
}
