//! Onboarding tier-2 feeds end to end against a real broker (tansu): `feeds validate` as the
//! dry run, then the same file live (what the dry run predicted is what happens), a tier-2
//! disruption rolled up to a tier-1 exposure alert that names the parts and their
//! alternates, a feed added and a bad one refused while running, and a silent feed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

const NETWORK: &str = r#"
suppliers:
  - {id: SUP-T1-004, name: Harness Works, tier: 1, recovery_time: 20d}
  - {id: SUP-T1-002, tier: 1, recovery_time: 15d}
  - {id: SUP-T1-011, tier: 1}
  - {id: SUP-T1-015, tier: 1}
parts:
  - id: P-1007
    supplier: SUP-T1-004
    unit_price: 12.5
    alternates:
      - {supplier: SUP-T1-015, capacity_per_day: 900, lead_time: 30d}
      - {supplier: SUP-T1-011, capacity_per_day: 400, lead_time: 7d}
      - {supplier: SUP-T1-002, qualified: false, capacity_per_day: 500, lead_time: 3d}
  - {id: P-1011, supplier: SUP-T1-004, unit_price: 40}
  - {id: P-1003, supplier: SUP-T1-002}
"#;

/// An open order report in the fixture's layout: lines of SUP-T2-003 promised for
/// 01.03.2026, still open at the report time (so past due).
fn late_report(report_time: &str) -> Vec<u8> {
    let mut csv = String::from("Order No;Pos;Material;Cust. Part;Description;Qty;UoM;Price;Order Date;Promised;Orig. Promised;Status;Delivered;Report Time\r\n");
    for (po, part) in [("4500019001", "P-1007"), ("4500019002", "P-1011")] {
        csv.push_str(&format!(
            "{po};10;GS-1;{part};Rohling;10.000;lb;10,00;01.02.2026;01.03.2026;01.03.2026;Open;;{report_time}\r\n"
        ));
    }
    csv.into_bytes()
}

fn feeds_status(api: &Value, feed: &str) -> Option<Value> {
    api["feeds"]
        .as_array()?
        .iter()
        .find(|f| f["feed"] == feed)
        .cloned()
}

async fn wait_json(base: &str, path: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = get_json(base, path).await;
        if pred(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting on {path}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn dry_run(def: &Path, sample: &Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(["feeds", "validate"])
        .arg(def)
        .arg("--sample")
        .arg(sample)
        .arg("--json")
        .output()
        .expect("run chainwatch feeds validate");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "validate --json: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier2_feeds_onboard_live_and_a_disruption_reaches_tier1_with_alternates() {
    let fixtures = repo_path("tests/fixtures/feeds");
    let csv_def = fixtures.join("tier2-orders.yaml");
    let csv_sample = fixtures.join("tier2-orders.csv");
    let json_def = fixtures.join("epcis-milestones.yaml");
    let json_sample = fixtures.join("epcis-milestones.json");

    // 1. The dry runs: the messy files map, except the rows they should not.
    let (code, csv_report) = dry_run(&csv_def, &csv_sample);
    assert_eq!(code, 1, "some rows are rejected: exit 1: {csv_report:#}");
    let csv_rejected = csv_report["rejected"].as_u64().expect("rejected");
    let csv_records = csv_report["records"].as_u64().expect("records");
    assert!(csv_rejected > 0 && csv_report["mapped"].as_u64() > Some(3));
    let (_, json_report) = dry_run(&json_def, &json_sample);
    assert!(json_report["mapped"].as_u64() > Some(3), "{json_report:#}");

    // 2. Live: a feeds dir with the CSV feed only, a network, the real broker.
    let dir = tempfile::tempdir().expect("tempdir");
    let feeds_dir = dir.path().join("feeds");
    let network_dir = dir.path().join("network");
    std::fs::create_dir_all(&feeds_dir).expect("mkdir");
    std::fs::create_dir_all(&network_dir).expect("mkdir");
    std::fs::copy(&csv_def, feeds_dir.join("tier2-orders.yaml")).expect("copy");
    std::fs::write(network_dir.join("network.yaml"), NETWORK).expect("write");
    let broker = Tansu::start();
    let mut config = test_config(&broker.brokers, "onb");
    config.feeds.dir = feeds_dir.clone();
    config.network.dir = network_dir.clone();
    // Produced in event-time order; a day of lateness lets an EPCIS document list its events
    // out of order (the watermark trails the latest event time by this much).
    config.allowed_lateness = Duration::from_secs(86_400);
    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);
    let p = producer(&broker.brokers);

    let network = get_json(&base, "/api/network").await;
    let links = network["network"]["links"].as_array().expect("links");
    assert!(
        links
            .iter()
            .any(|l| l["from"] == "SUP-T2-003" && l["to"] == "SUP-T1-004" && l["share"] == 0.7),
        "the feed's supplier block joins the network: {links:?}"
    );

    // Master data also arrives on the compacted network topic: a new alternate source is
    // added, a link naming an unknown supplier is refused (and the network stays), a
    // tombstone deletes.
    produce_keyed(
        &p,
        "onb.network",
        &[
            (
                "supplier:SUP-T1-020",
                Some(br#"{"id": "SUP-T1-020", "tier": 1, "name": "Kabel Nord"}"#.to_vec()),
            ),
            (
                "supplier:SUP-T1-021",
                Some(br#"{"id": "SUP-T1-021", "tier": 1}"#.to_vec()),
            ),
            (
                "link:SUP-T2-099>SUP-T1-004",
                Some(br#"{"from": "SUP-T2-099", "to": "SUP-T1-004", "share": 0.2}"#.to_vec()),
            ),
            ("supplier:SUP-T1-021", None),
        ],
    )
    .await;
    let network = wait_json(&base, "/api/network", 30, |v| {
        let ids: Vec<&str> = v["network"]["suppliers"]
            .as_array()
            .map(|s| s.iter().filter_map(|x| x["id"].as_str()).collect())
            .unwrap_or_default();
        ids.contains(&"SUP-T1-020")
            && !ids.contains(&"SUP-T1-021")
            && v["refused_records"]
                .as_object()
                .is_some_and(|r| !r.is_empty())
    })
    .await;
    let refused = network["refused_records"].to_string();
    assert!(
        refused.contains("SUP-T2-099") && refused.contains("link:SUP-T2-099>SUP-T1-004"),
        "{refused}"
    );
    assert!(
        !network["network"]["links"]
            .to_string()
            .contains("SUP-T2-099"),
        "a refused record changes nothing"
    );

    produce(
        &p,
        "feeds.sup-t2-003.orders",
        &[std::fs::read(&csv_sample).expect("read")],
    )
    .await;
    let rejected_sum = |f: &Value| -> u64 {
        f["rejected"]
            .as_object()
            .map(|r| r.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    };
    // Records count when read, rejects once their batch is dead-lettered: wait for both.
    let feeds = wait_json(&base, "/api/feeds", 60, |v| {
        feeds_status(v, "sup-t2-003-orders").is_some_and(|f| {
            f["records"].as_u64() == Some(csv_records) && rejected_sum(&f) >= csv_rejected
        })
    })
    .await;
    let f = feeds_status(&feeds, "sup-t2-003-orders").expect("feed");
    let live_rejected = rejected_sum(&f);
    assert_eq!(
        live_rejected, csv_rejected,
        "live rejects = dry-run rejects: {f:#} vs {csv_report:#}"
    );
    for (reason, n) in csv_report["reasons"].as_object().expect("reasons") {
        assert_eq!(f["rejected"][reason], *n, "reason {reason}");
    }

    // Every rejected row is on the dead-letter topic with the feed, its row and line.
    let mut lines = Vec::new();
    for d in read_dead_letters(&broker.brokers, "onb.deadletter", csv_rejected as usize).await {
        let headers = &d.headers;
        assert_eq!(headers["chainwatch.feed"], "sup-t2-003-orders");
        assert_eq!(headers["chainwatch.topic"], "feeds.sup-t2-003.orders");
        assert!(headers["chainwatch.error"].contains("row "), "{headers:?}");
        lines.push(headers["chainwatch.line"].parse::<u64>().expect("line"));
    }
    lines.sort_unstable();
    let mut expected: Vec<u64> = csv_report["rejects"]
        .as_array()
        .expect("rejects")
        .iter()
        .filter_map(|r| r["line"].as_u64())
        .collect();
    expected.sort_unstable();
    assert_eq!(
        lines, expected,
        "dead letters name the rows the dry run named"
    );

    // 3. The disruption: SUP-T2-003's lines go past due, report after report, while
    // P-1007 has 10 days of stock at the plant.
    let wms = [
        json!({"event_id": "inv-1", "kind": "inventory_position", "event_time": "2026-03-10T06:00:00Z",
            "source": "wms", "site": "PLANT-1", "part": "P-1007", "on_hand": 1000.0, "daily_demand": 100.0}),
        json!({"event_id": "inv-2", "kind": "inventory_position", "event_time": "2026-03-10T06:00:00Z",
            "source": "wms", "site": "PLANT-1", "part": "P-1011", "on_hand": 400.0, "daily_demand": 10.0}),
    ];
    produce(
        &p,
        "onb.wms",
        &wms.iter()
            .map(|e| e.to_string().into_bytes())
            .collect::<Vec<_>>(),
    )
    .await;
    // One report at a time, each evaluated, so the condition is seen to hold for `for` (6 h):
    // a heartbeat a day (the lateness) after each report closes the report's step.
    for (t, utc) in [
        ("10.03.2026 08:00", "2026-03-10T07:00:00Z"),
        ("10.03.2026 15:00", "2026-03-10T14:00:00Z"),
        ("11.03.2026 08:00", "2026-03-11T07:00:00Z"),
    ] {
        produce(&p, "feeds.sup-t2-003.orders", &[late_report(t)]).await;
        let ms = chrono::DateTime::parse_from_rfc3339(utc)
            .expect("time")
            .timestamp_millis();
        tick(&p, "onb.wms", ms + 86_400_000 + 1).await;
        wait_evaluated(&base, ms).await;
    }
    let alerts = wait_firing(&base, 60, |f| {
        f.iter().any(|a| {
            a["alertname"] == "SubTierDisruptionExposure" && a["labels"]["supplier"] == "SUP-T1-004"
        })
    })
    .await;
    let a = firing(&alerts)
        .into_iter()
        .find(|a| a["alertname"] == "SubTierDisruptionExposure")
        .expect("exposure alert")
        .clone();
    assert_eq!(a["labels"]["source_supplier"], "SUP-T2-003");
    assert_eq!(a["labels"]["source_tier"], "2");
    assert_eq!(a["labels"]["depth"], "1");
    assert_eq!(a["severity"], "critical", "{a:#}");
    let summary = a["annotations"]["summary"].as_str().expect("summary");
    assert!(
        summary.contains("P-1007") && summary.contains("P-1011"),
        "{summary}"
    );
    // Ranked alternates: in time first (7 d < 10 d of supply), the slow one marked, the
    // unqualified one left out; P-1011 has none.
    let alts = a["alternates"].as_array().expect("alternates");
    let p1007 = alts.iter().find(|x| x["part"] == "P-1007").expect("P-1007");
    let ranked: Vec<(&str, bool)> = p1007["alternates"]
        .as_array()
        .expect("list")
        .iter()
        .map(|x| (x["supplier"].as_str().unwrap_or(""), x["in_time"] == true))
        .collect();
    assert_eq!(ranked, [("SUP-T1-011", true), ("SUP-T1-015", false)]);
    assert_eq!(p1007["days_until_stop"], 10.0);
    let p1011 = alts.iter().find(|x| x["part"] == "P-1011").expect("P-1011");
    assert_eq!(p1011["risk_class"], "single_source");
    let text = a["annotations"]["alternates"]
        .as_str()
        .expect("alternates annotation");
    assert!(
        text.contains("SUP-T1-011 400/day lead 7 d in time") && text.contains("P-1011"),
        "{text}"
    );

    // The exposure ranking sees SUP-T2-003 as a node whose loss hits P-1007 and P-1011.
    let network = wait_json(&base, "/api/network", 30, |v| {
        v["exposure"]["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|x| x["supplier"] == "SUP-T2-003"))
    })
    .await;
    let node = network["exposure"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|x| x["supplier"] == "SUP-T2-003"))
        .expect("node")
        .clone();
    let parts: Vec<&str> = node["affected_parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter_map(|p| p["part"].as_str())
        .collect();
    assert_eq!(parts, ["P-1007", "P-1011"]);

    // 4. A feed added while running is subscribed and ingested; a bad one changes nothing.
    std::fs::copy(&json_def, feeds_dir.join("epcis.yaml")).expect("copy");
    wait_json(&base, "/api/feeds", 30, |v| {
        feeds_status(v, "sup-t2-005-epcis").is_some()
    })
    .await;
    std::fs::write(
        feeds_dir.join("broken.yaml"),
        "feed: Not A Name\ntopic: x\n",
    )
    .expect("write");
    let feeds = wait_json(&base, "/api/feeds", 30, |v| {
        v["errors"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    assert_eq!(
        feeds["feeds"].as_array().map(Vec::len),
        Some(2),
        "last good set stays"
    );
    let errors = feeds["errors"].to_string();
    assert!(errors.contains("broken.yaml:1:"), "file:line:col: {errors}");
    // The new topic may take a rebalance to be assigned: produce until its records arrive.
    let json_records = json_report["records"].as_u64().expect("records");
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if sent < 1 {
            produce(
                &p,
                "feeds.sup-t2-005.epcis",
                &[std::fs::read(&json_sample).expect("read")],
            )
            .await;
            sent += 1;
        }
        let v = get_json(&base, "/api/feeds").await;
        if feeds_status(&v, "sup-t2-005-epcis")
            .is_some_and(|f| f["records"].as_u64() == Some(json_records))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "EPCIS feed not ingested: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 5. The EPCIS documents run to 20 March: SUP-T2-003's feed has been silent since
    // 10 March, more than 3x its daily expectation.
    // Silence grows with event time, so the alert may first fire at warning (1x) on the way:
    // wait for the level the end of the documents reaches.
    let silent_critical = |a: &Value| {
        a["alertname"] == "SupplierFeedSilent"
            && a["labels"]["feed"] == "sup-t2-003-orders"
            && a["severity"] == "critical"
    };
    wait_firing(&base, 60, |f| f.iter().any(|a| silent_critical(a))).await;
    let m = get_text(&base, "/metrics").await;
    assert_eq!(
        sample(
            &m,
            "chainwatch_feed_records_total",
            &[("feed", "sup-t2-003-orders")]
        ),
        Some((csv_records + 6) as f64)
    );
    assert!(sample(
        &m,
        "chainwatch_network_time_to_survive_seconds",
        &[("supplier", "SUP-T2-003")]
    )
    .is_some());

    // 6. Removing definitions while running: the feed goes, the errors with it.
    std::fs::remove_file(feeds_dir.join("broken.yaml")).expect("rm");
    std::fs::remove_file(feeds_dir.join("epcis.yaml")).expect("rm");
    let feeds = wait_json(&base, "/api/feeds", 30, |v| {
        v["feeds"].as_array().map(Vec::len) == Some(1)
            && v["errors"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert_eq!(feeds["feeds"][0]["feed"], "sup-t2-003-orders");
    running.shutdown().await;
}

/// `chainwatch network exposure` on the worked example of docs/network.md (network file +
/// inventory events): the ranking computed by hand there, through the real binary.
#[test]
fn network_exposure_cli_ranks_the_hand_computed_example() {
    let dir = repo_path("tests/fixtures/network/hand-example");
    let none = repo_path("tests/fixtures/none");
    let run = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chainwatch"));
        cmd.args(["network", "exposure", "--network"])
            .arg(&dir)
            .arg("--feeds")
            .arg(&none)
            .arg("--events")
            .arg(dir.join("events.jsonl"));
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run chainwatch network exposure");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let nodes: Value = serde_json::from_str(&run(true)).expect("json");
    let got: Vec<(String, f64, f64, bool, f64)> = nodes
        .as_array()
        .expect("array")
        .iter()
        .map(|n| {
            (
                n["supplier"].as_str().unwrap_or_default().to_string(),
                (n["tts_days"].as_f64().unwrap_or(-1.0) * 1000.0).round() / 1000.0,
                n["lost_value"].as_f64().unwrap_or(-1.0),
                n["exposed"] == true,
                n["rei"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    // docs/network.md: A 13.333 d / 6900 / REI 1; X 80 d / 3000; Y 10 d / 2000; B 10 d / 0.
    let want = [
        ("A", 13.333, 6900.0, true, 1.0),
        ("X", 80.0, 3000.0, true, 3000.0 / 6900.0),
        ("Y", 10.0, 2000.0, true, 2000.0 / 6900.0),
        ("B", 10.0, 0.0, false, 0.0),
    ];
    assert_eq!(got.len(), want.len(), "{nodes:#}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w.0, "rank order: {got:?}");
        assert_eq!(g.1, w.1, "{} tts", w.0);
        assert!((g.2 - w.2).abs() < 1e-6, "{} lost value {}", w.0, g.2);
        assert_eq!(g.3, w.3, "{} exposed", w.0);
        assert!((g.4 - w.4).abs() < 1e-6, "{} rei {}", w.0, g.4);
    }
    let table = run(false);
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("A")
            && l.contains("13.3")
            && l.contains("6900.00")
            && l.contains("P1,P2")),
        "{table}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(["network", "check", "--network"])
        .arg(&dir)
        .arg("--feeds")
        .arg(&none)
        .output()
        .expect("run chainwatch network check");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "network: 4 suppliers, 2 links, 3 parts: OK\n"
    );
}
