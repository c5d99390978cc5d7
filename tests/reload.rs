//! Hot reload of the rules against the running service (embedded broker): file edits picked
//! up with alert state kept, invalid edits rejected and shown, `POST /-/reload` behind the
//! admin token, and SIGHUP to the real `chainwatch` binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use chainwatch::config::{Config, Token};
use chainwatch::pipeline::{self, Running};
use serde_json::{json, Value};

use crate::util::*;

const LATE_RULE: &str = r#"
      - alert: SupplierLate
        indicator: supplier_delivery
        value: on_time_ratio
        op: "<"
        warning: 0.85
        for: 0s
        reason_code: supplier_late_deliveries
        annotations:
          summary: "{{ labels.supplier }} is late."
"#;

const OPEN_RULE: &str = r#"
      - alert: SupplierOpenLines
        indicator: supplier_delivery
        value: open_lines
        op: ">="
        warning: 1
        for: 0s
        reason_code: open_lines
        annotations:
          summary: "{{ labels.supplier }} has open lines."
"#;

fn rule_file(rules: &[&str]) -> String {
    format!("groups:\n  - name: delivery\n    rules:{}", rules.concat())
}

/// A rules directory with the repository's supplier indicator and the given rule file.
fn rules_dir(rules: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("indicators")).expect("mkdir");
    std::fs::copy(
        repo_path("rules/indicators/supplier_delivery.sql"),
        dir.path().join("indicators/supplier_delivery.sql"),
    )
    .expect("copy indicator");
    write_atomically(&dir.path().join("supplier.yaml"), rules);
    dir
}

/// Write like an editor does: a temporary file, then a rename over the original.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp~");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename over");
}

/// A pipeline on the embedded broker (one partition per topic) with the given rules.
async fn start_embedded(
    name: &str,
    rules: &Path,
    admin_token: Option<&str>,
    watch_rules: bool,
) -> (Running, String, String) {
    let mut config = test_config("unused", name);
    config.kafka.brokers = None;
    config.kafka.partitions = 1;
    config.evaluation.rules = rules.to_path_buf();
    config.evaluation.watch_rules = watch_rules;
    config.http.admin_token = admin_token.and_then(Token::new);
    let cluster = pipeline::start_embedded(&config).expect("embedded broker");
    let brokers = cluster.bootstrap_servers();
    let running = pipeline::start_on(config, Some(cluster))
        .await
        .expect("pipeline starts");
    let base = format!("http://{}", running.http_addr);
    (running, base, brokers)
}

fn created(id: &str, supplier: &str, po: &str, promised_ms: i64) -> Value {
    json!({"event_id": id, "kind": "po_line_created", "event_time": iso(T0), "source": "test-erp",
        "po": po, "line": 1, "supplier": supplier, "part": "P-1", "site": "PLANT-1",
        "quantity": 100, "unit_price": 10.0, "order_date": date(T0), "promised_date": date(promised_ms)})
}

fn receipt(id: &str, supplier: &str, po: &str, at_ms: i64) -> Value {
    json!({"event_id": id, "kind": "goods_receipt", "event_time": iso(at_ms), "source": "test-erp",
        "po": po, "line": 1, "supplier": supplier, "quantity": 100, "received_at": iso(at_ms)})
}

/// S-LATE: 3 of 4 deliveries 4 days late (on-time ratio 0.25), watermark T0+15d.
async fn feed_late_supplier(brokers: &str, topic: &str, base: &str) {
    let mut events = Vec::new();
    for i in 0..4 {
        events.push(created(
            &format!("c{i}"),
            "S-LATE",
            &format!("PO-{i}"),
            T0 + 10 * DAY_MS,
        ));
    }
    events.push(receipt("r3", "S-LATE", "PO-3", T0 + 10 * DAY_MS));
    for i in 0..3 {
        events.push(receipt(
            &format!("r{i}"),
            "S-LATE",
            &format!("PO-{i}"),
            T0 + 15 * DAY_MS,
        ));
    }
    let payloads: Vec<Vec<u8>> = events.iter().map(|e| e.to_string().into_bytes()).collect();
    let p = producer(brokers);
    produce(&p, topic, &payloads).await;
    evaluate_at(&p, base, topic, T0 + 15 * DAY_MS).await;
}

/// One more supplier with one open line, at T0+16d: the watermark moves on.
async fn feed_open_line(brokers: &str, topic: &str, base: &str) {
    let mut e = created("c-open", "S-OPEN", "PO-OPEN", T0 + 40 * DAY_MS);
    e["event_time"] = json!(iso(T0 + 16 * DAY_MS));
    let p = producer(brokers);
    produce(&p, topic, &[e.to_string().into_bytes()]).await;
    evaluate_at(&p, base, topic, T0 + 16 * DAY_MS).await;
}

fn alert<'a>(alerts: &'a Value, name: &str, supplier: &str) -> Option<&'a Value> {
    alerts["alerts"].as_array()?.iter().find(|a| {
        a["alertname"] == name && a["labels"]["supplier"] == supplier && a["state"] != "resolved"
    })
}

fn rule_names(rules: &Value) -> Vec<String> {
    rules["rules"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Poll `/api/alerts` until `pred` holds; panics with the last response after `secs`.
async fn wait_alerts(base: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let a = get_json(base, "/api/alerts").await;
        if pred(&a) {
            return a;
        }
        assert!(Instant::now() < deadline, "timed out; last alerts: {a:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn at(ms: i64) -> Value {
    json!(iso(ms).replace(".000", ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_edit_is_picked_up_and_unchanged_rules_keep_their_alerts() {
    let dir = rules_dir(&rule_file(&[LATE_RULE]));
    let (running, base, brokers) = start_embedded("rl-edit", dir.path(), None, true).await;
    feed_late_supplier(&brokers, "rl-edit.erp", &base).await;
    let a = get_json(&base, "/api/alerts").await;
    let late = alert(&a, "SupplierLate", "S-LATE").expect("S-LATE alert");
    assert_eq!(late["state"], "firing", "{a:#}");
    assert_eq!(late["active_at"], at(T0 + 15 * DAY_MS));
    assert_eq!(late["fired_at"], at(T0 + 15 * DAY_MS));
    feed_open_line(&brokers, "rl-edit.erp", &base).await;
    let status = get_json(&base, "/api/status").await;
    assert_eq!(status["rules"]["loaded"], 1);
    assert_eq!(status["rules"]["last_reload_trigger"], "start");

    // Add a rule on disk; the unchanged one keeps its alert (active since T0+15d, not the
    // T0+16d a new alert would get).
    write_atomically(
        &dir.path().join("supplier.yaml"),
        &rule_file(&[LATE_RULE, OPEN_RULE]),
    );
    let s = wait_status(&base, 20, |s| s["rules"]["loaded"] == 2).await;
    assert_eq!(s["rules"]["last_reload_success"], true, "{s:#}");
    assert_eq!(s["rules"]["last_reload_trigger"], "file");
    assert_eq!(s["rules"]["reloads"], json!({"success": 1, "failure": 0}));
    let rules = get_json(&base, "/api/rules").await;
    assert_eq!(
        rule_names(&rules),
        ["SupplierLate", "SupplierOpenLines"],
        "{rules:#}"
    );
    let open = &rules["rules"][1];
    assert_eq!(
        (
            &open["group"],
            &open["indicator"],
            &open["value"],
            &open["op"]
        ),
        (
            &json!("delivery"),
            &json!("supplier_delivery"),
            &json!("open_lines"),
            &json!(">=")
        )
    );
    assert_eq!(
        (&open["warning"], &open["for"]),
        (&json!(1.0), &json!("0s"))
    );
    assert!(open["file"]
        .as_str()
        .is_some_and(|f| f.ends_with("supplier.yaml")));
    // No new data arrived: the new rule is evaluated on the last snapshot.
    let a = wait_alerts(&base, 20, |a| {
        alert(a, "SupplierOpenLines", "S-OPEN").is_some()
    })
    .await;
    let late = alert(&a, "SupplierLate", "S-LATE").expect("still there");
    assert_eq!(late["state"], "firing");
    assert_eq!(late["active_at"], at(T0 + 15 * DAY_MS), "state kept: {a:#}");
    assert_eq!(late["fired_at"], at(T0 + 15 * DAY_MS));
    let m = get_text(&base, "/metrics").await;
    let open_firing = [
        ("alertname", "SupplierOpenLines"),
        ("alertstate", "firing"),
        ("supplier", "S-OPEN"),
    ];
    assert_eq!(
        sample(&m, "chainwatch_alerts", &open_firing),
        Some(1.0),
        "{m}"
    );
    assert_eq!(sample(&m, "chainwatch_rules_loaded", &[]), Some(2.0));
    assert_eq!(
        sample(&m, "chainwatch_rules_last_reload_success", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "chainwatch_rules_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );

    // A changed rule starts over: its alert is new at the current watermark.
    write_atomically(
        &dir.path().join("supplier.yaml"),
        &rule_file(&[&LATE_RULE.replace("0.85", "0.9"), OPEN_RULE]),
    );
    let a = wait_alerts(&base, 20, |a| {
        alert(a, "SupplierLate", "S-LATE").is_some_and(|l| l["active_at"] == at(T0 + 16 * DAY_MS))
    })
    .await;
    let open = alert(&a, "SupplierOpenLines", "S-OPEN").expect("open alert");
    assert_eq!(open["active_at"], at(T0 + 16 * DAY_MS));
    assert_eq!(
        get_json(&base, "/api/rules").await["rules"][0]["warning"],
        0.9
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_edits_are_rejected_and_the_running_rules_stay() {
    let valid = rule_file(&[LATE_RULE]);
    let dir = rules_dir(&valid);
    let (running, base, brokers) = start_embedded("rl-bad", dir.path(), None, true).await;
    feed_late_supplier(&brokers, "rl-bad.erp", &base).await;
    let rules_file = dir.path().join("supplier.yaml");
    let sql_file = dir.path().join("indicators/supplier_delivery.sql");
    let sql = std::fs::read_to_string(&sql_file).expect("sql");

    // (file, content, expected text in the error): bad YAML, an unknown key, a value column
    // the indicator does not have, an SQL column the state tables do not have.
    let bad_sql = sql.replacen(
        "COUNT(*) AS open_lines",
        "COUNT(no_such_column) AS open_lines",
        1,
    );
    assert_ne!(bad_sql, sql, "the SQL edit applies");
    let cases: Vec<(&PathBuf, String, String)> = vec![
        (
            &rules_file,
            valid.replace("    rules:", "    rules: [\n"),
            "supplier.yaml:5:7: \"-\" is only valid inside a block".to_string(),
        ),
        (
            &rules_file,
            valid.replace("for: 0s", "for: 0s\n        severity_level: 3"),
            "supplier.yaml:10:9: group \"delivery\", rule \"SupplierLate\": unknown field \"severity_level\"".to_string(),
        ),
        (
            &rules_file,
            valid.replace("value: on_time_ratio", "value: on_time_ratoi"),
            "supplier.yaml:6:16: group \"delivery\", rule \"SupplierLate\": indicator \"supplier_delivery\" has no numeric column \"on_time_ratoi\"".to_string(),
        ),
        (
            &sql_file,
            bad_sql,
            // DataFusion's planner gives no position: the file and the message.
            "indicators/supplier_delivery.sql: Schema error: No field named no_such_column"
                .to_string(),
        ),
    ];
    for (i, (file, text, expected)) in cases.iter().enumerate() {
        let failures = i as u64 + 1;
        write_atomically(file, text);
        let s = wait_status(&base, 20, |s| {
            s["rules"]["reloads"]["failure"].as_u64() == Some(failures)
        })
        .await;
        let r = &s["rules"];
        assert_eq!(r["last_reload_success"], false, "{s:#}");
        assert_eq!(r["last_reload_trigger"], "file");
        assert_eq!(r["loaded"], 1, "the previous rules still run");
        let errors = r["errors"].as_array().expect("errors");
        assert!(
            errors
                .iter()
                .any(|e| e.as_str().is_some_and(|e| e.contains(expected.as_str()))),
            "case {i}: no error with {expected:?} in {errors:#?}"
        );
        let m = get_text(&base, "/metrics").await;
        assert_eq!(
            sample(&m, "chainwatch_rules_last_reload_success", &[]),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &m,
                "chainwatch_rules_reloads_total",
                &[("result", "failure")]
            ),
            Some(failures as f64)
        );
        assert_eq!(
            rule_names(&get_json(&base, "/api/rules").await),
            ["SupplierLate"]
        );
        // Restore the file before breaking the next one (this rule file stays broken
        // otherwise: the SQL case needs valid rules to report the SQL alone).
        if *file == &sql_file {
            write_atomically(file, &sql);
        } else {
            std::fs::write(file, &valid).expect("restore");
        }
        let s = wait_status(&base, 20, |s| s["rules"]["last_reload_success"] == true).await;
        assert_eq!(s["rules"]["errors"], json!([]));
    }
    // The old rules kept running all along, with their alert.
    let a = get_json(&base, "/api/alerts").await;
    let late = alert(&a, "SupplierLate", "S-LATE").expect("S-LATE alert");
    assert_eq!(late["active_at"], at(T0 + 15 * DAY_MS));
    let m = get_text(&base, "/metrics").await;
    assert_eq!(
        sample(&m, "chainwatch_rules_last_reload_success", &[]),
        Some(1.0)
    );
    assert!(
        sample(
            &m,
            "chainwatch_rules_last_reload_success_timestamp_seconds",
            &[]
        ) > Some(1.7e9)
    );
    running.shutdown().await;
}

async fn post_reload(base: &str, auth: Option<&str>) -> (u16, String) {
    let mut req = http().post(format!("{base}/-/reload"));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.expect("POST");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_endpoint_needs_the_admin_token() {
    let dir = rules_dir(&rule_file(&[LATE_RULE]));
    // Watching off: only the endpoint reloads here.
    let (running, base, _) = start_embedded("rl-http", dir.path(), Some("t0ken"), false).await;
    assert_eq!(post_reload(&base, None).await.0, 401);
    assert_eq!(post_reload(&base, Some("Bearer t0ke")).await.0, 401);
    assert_eq!(post_reload(&base, Some("Bearer t0ken-")).await.0, 401);
    let s = get_json(&base, "/api/status").await;
    assert_eq!(s["rules"]["reloads"], json!({"success": 0, "failure": 0}));

    std::fs::write(
        dir.path().join("supplier.yaml"),
        rule_file(&[LATE_RULE, OPEN_RULE]),
    )
    .expect("write");
    let (code, body) = post_reload(&base, Some("Bearer t0ken")).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["status"], "success");
    assert_eq!(v["trigger"], "http");
    assert_eq!((&v["rules"], &v["indicators"]), (&json!(2), &json!(1)));
    // 200 means running: the rules are listed at once.
    assert_eq!(
        rule_names(&get_json(&base, "/api/rules").await),
        ["SupplierLate", "SupplierOpenLines"]
    );

    std::fs::write(
        dir.path().join("supplier.yaml"),
        rule_file(&[LATE_RULE, &OPEN_RULE.replace("op: \">=\"", "op: \"=>\"")]),
    )
    .expect("write");
    let (code, body) = post_reload(&base, Some("Bearer t0ken")).await;
    assert_eq!(code, 422, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["status"], "error");
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{v:#}");
    assert!(
        errors[0]
            .as_str()
            .is_some_and(|e| e
                .contains("supplier.yaml:17:13: group \"delivery\", rule \"SupplierOpenLines\"")),
        "{v:#}"
    );
    assert_eq!(rule_names(&get_json(&base, "/api/rules").await).len(), 2);
    running.shutdown().await;
    std::fs::write(dir.path().join("supplier.yaml"), rule_file(&[LATE_RULE])).expect("write");

    // No token configured: admin endpoints are off, whatever is sent.
    let (running, base, _) = start_embedded("rl-http-off", dir.path(), None, false).await;
    let (code, body) = post_reload(&base, Some("Bearer t0ken")).await;
    assert_eq!(code, 403);
    assert!(body.contains("admin_token_file"), "{body}");
    running.shutdown().await;
}

/// The `chainwatch` binary as a child process; terminated (then killed) on drop.
struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Poll `/api/status` of a child service until `pred` holds (connection errors while it
/// starts are retried); panics with the last status and the service log after `secs`.
async fn wait_service(
    svc: &mut Service,
    base: &str,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Value::Null;
    loop {
        if let Ok(Some(exit)) = svc.child.try_wait() {
            panic!("chainwatch exited ({exit}); log:\n{}", svc.log());
        }
        if let Ok(resp) = http().get(format!("{base}/api/status")).send().await {
            if let Ok(s) = resp.json::<Value>().await {
                if pred(&s) {
                    return s;
                }
                last = s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out; last status: {last:#}\nlog:\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_rules_of_the_running_binary() {
    let dir = rules_dir(&rule_file(&[LATE_RULE]));
    let port = free_port();
    let config = dir.path().join("chainwatch.toml");
    // Embedded broker and a short simulated history; file watching off, so only SIGHUP
    // reloads.
    std::fs::write(
        &config,
        format!(
            "[evaluation]\nstep = \"1h\"\nrules = \"{}\"\nwatch_rules = false\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n[simulator]\nhistory = \"2d\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    Config::load(&config).expect("the test config is valid");
    let log = dir.path().join("chainwatch.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("CHAINWATCH_BROKERS")
        .env_remove("CHAINWATCH_LISTEN")
        .env_remove("CHAINWATCH_RULES")
        .env_remove("CHAINWATCH_CONFIG")
        .env("RUST_LOG", "info")
        // tracing writes to stdout, errors go to stderr: both to the log.
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("start chainwatch");
    let mut svc = Service { child, log };
    let base = format!("http://127.0.0.1:{port}");
    wait_service(&mut svc, &base, 60, |s| s["rules"]["loaded"] == 1).await;

    std::fs::write(
        dir.path().join("supplier.yaml"),
        rule_file(&[LATE_RULE, OPEN_RULE]),
    )
    .expect("write");
    svc.signal("HUP");
    let s = wait_service(&mut svc, &base, 30, |s| s["rules"]["loaded"] == 2).await;
    assert_eq!(s["rules"]["last_reload_trigger"], "signal", "{s:#}");
    assert_eq!(s["rules"]["last_reload_success"], true);

    std::fs::write(dir.path().join("supplier.yaml"), "groups: [").expect("write");
    svc.signal("HUP");
    let s = wait_service(&mut svc, &base, 30, |s| {
        s["rules"]["reloads"]["failure"] == 1
    })
    .await;
    assert_eq!(s["rules"]["last_reload_success"], false, "{s:#}");
    assert_eq!(s["rules"]["loaded"], 2, "previous rules still run");
    let m = get_text(&base, "/metrics").await;
    assert_eq!(
        sample(&m, "chainwatch_rules_last_reload_success", &[]),
        Some(0.0)
    );
    let log = svc.log();
    assert!(log.contains("SIGHUP: reloading rules."), "{log}");
    assert!(log.contains("Rules reload failed"), "{log}");
    // The service is still alive and answering.
    assert!(matches!(svc.child.try_wait(), Ok(None)));
}
