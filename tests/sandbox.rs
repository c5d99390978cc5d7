//! The sandbox against the running service on a real broker (tansu): an indicator whose query
//! runs away on real data is stopped at the time limit, one that needs too much memory at the
//! memory limit; both are reported on /metrics and /api/status while the rules of a healthy
//! indicator keep firing.

use std::time::Duration;

use chainwatch::indicators::Limits;
use serde_json::{json, Value};

use crate::util::*;

/// Cheap on the empty tables it is planned against; 8 billion rows with 2,000 open lines.
const RUNAWAY_SQL: &str = "SELECT a.supplier, COUNT(*) AS n \
    FROM po_lines a, po_lines b, po_lines c GROUP BY a.supplier";
/// 4 million distinct groups with 2,000 open lines: far beyond a 16 MiB pool. One output row,
/// so should it ever fit it makes one alert, not thousands.
const HOG_SQL: &str = "SELECT 'all' AS supplier, COUNT(*) AS n FROM \
    (SELECT a.po || b.po AS k, COUNT(*) AS c FROM po_lines a, po_lines b GROUP BY 1) AS g";
const GOOD_SQL: &str = "SELECT supplier, COUNT(*) AS open_lines FROM po_lines GROUP BY supplier";

const RULES: &str = r#"
groups:
  - name: sandbox
    rules:
      - alert: OpenLines
        indicator: good
        value: open_lines
        op: ">="
        warning: 1
        reason_code: open_lines
        annotations: {summary: "{{ labels.supplier }}: {{ value | int }} open lines"}
      - alert: RunawayRule
        indicator: runaway
        value: n
        op: ">="
        warning: 1
        reason_code: runaway
        annotations: {summary: "never evaluated on data"}
      - alert: HogRule
        indicator: hog
        value: n
        op: ">="
        warning: 1
        reason_code: hog
        annotations: {summary: "never evaluated on data"}
"#;

fn line(i: usize) -> Value {
    json!({"event_id": format!("c{i}"), "kind": "po_line_created", "event_time": iso(T0),
        "source": "test-erp", "po": format!("PO-{i}"), "line": 1,
        "supplier": format!("S-{}", i % 4), "part": "P-1", "site": "PLANT-1", "quantity": 10,
        "unit_price": 1.0, "order_date": date(T0), "promised_date": date(T0 + 20 * DAY_MS)})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_queries_are_stopped_and_reported_while_other_rules_keep_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("indicators")).expect("mkdir");
    for (name, sql) in [
        ("runaway", RUNAWAY_SQL),
        ("hog", HOG_SQL),
        ("good", GOOD_SQL),
    ] {
        std::fs::write(dir.path().join(format!("indicators/{name}.sql")), sql).expect("write");
    }
    std::fs::write(dir.path().join("sandbox.yaml"), RULES).expect("write rules");

    let broker = Tansu::start();
    let mut config = test_config(&broker.brokers, "sandbox");
    config.kafka.partitions = 1;
    config.evaluation.rules = dir.path().to_path_buf();
    config.evaluation.limits = Limits {
        time: Duration::from_secs(2),
        memory_bytes: 16 << 20,
    };
    let started = std::time::Instant::now();
    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);

    let payloads: Vec<Vec<u8>> = (0..2_000)
        .map(|i| line(i).to_string().into_bytes())
        .collect();
    let p = producer(&broker.brokers);
    produce(&p, "sandbox.erp", &payloads).await;
    // Closes the step: all 2,000 lines are applied and evaluated at once (the heartbeat's
    // own step stays open).
    tick(&p, "sandbox.erp", T0 + 1).await;

    // The healthy indicator's rule fires for all four suppliers, evaluated on all 2,000 lines.
    let alerts = wait_firing(&base, 120, |f| {
        f.iter()
            .filter(|a| a["labels"]["alertname"] == "OpenLines")
            .filter(|a| {
                a["annotations"]["summary"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(": 500 open lines")
            })
            .count()
            == 4
    })
    .await;
    let open: Vec<&str> = firing(&alerts)
        .iter()
        .filter(|a| a["labels"]["alertname"] == "OpenLines")
        .filter_map(|a| a["annotations"]["summary"].as_str())
        .collect();
    assert!(open.contains(&"S-0: 500 open lines"), "{open:?}");

    eprintln!("open lines alerts after {:?}", started.elapsed());
    // Both runaways were stopped at their limit, counted, and shown in the status.
    let status = wait_status(&base, 90, |s| {
        let errors = s["evaluation"]["errors"].to_string();
        errors.contains("indicator runaway: stopped after the time limit of 2s")
            && errors.contains("indicator hog: stopped at the memory limit of 16777216 bytes")
    })
    .await;
    eprintln!("errors seen after {:?}", started.elapsed());
    assert_eq!(status["evaluation"]["records_applied"], 2_000, "{status:#}");
    let metrics = get_text(&base, "/metrics").await;
    let stopped = |indicator: &str, limit: &str| {
        sample(
            &metrics,
            "chainwatch_indicator_limit_exceeded_total",
            &[("indicator", indicator), ("limit", limit)],
        )
        .unwrap_or(0.0)
    };
    assert!(stopped("runaway", "time") >= 1.0, "{metrics}");
    assert!(stopped("hog", "memory") >= 1.0, "{metrics}");
    assert_eq!(stopped("good", "time") + stopped("good", "memory"), 0.0);
    assert_eq!(stopped("runaway", "memory"), 0.0);
    // Their rules see no rows while stopped: nothing of theirs is firing.
    let alerts = get_json(&base, "/api/alerts").await;
    let stuck: Vec<&Value> = firing(&alerts)
        .into_iter()
        .filter(|a| a["labels"]["alertname"] != "OpenLines")
        .collect();
    assert!(stuck.is_empty(), "{stuck:#?}");
    running.shutdown().await;
}
