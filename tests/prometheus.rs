//! A real Prometheus (the Debian `prometheus` binary) scraping the embedded demo every second
//! with the rules of `docker/prometheus/rules/`: every PromQL expression of the dashboards in
//! `dashboards/` must parse and return data, and chainwatch's firing alerts must come out of
//! Prometheus as `ChainwatchRiskAlert`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// A Prometheus server on a free port with storage in a temporary directory; killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrape `target` (host:port) every second as job `chainwatch`, with `rule_files`.
    fn start(program: &Path, target: &str, rule_files: &[PathBuf]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let rules = rule_files
            .iter()
            .map(|p| format!("  - {:?}\n", p.display().to_string()))
            .collect::<String>();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{rules}\
             scrape_configs:\n  - job_name: chainwatch\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(program)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// The last lines of Prometheus' log, for failure messages.
    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn wait_ready(&mut self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(r) = http().get(format!("{}/-/ready", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {secs} s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        http()
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .expect("GET prometheus")
            .json()
            .await
            .expect("prometheus answers JSON")
    }

    /// Instant query: Ok(number of series, or 1 for a scalar) or Err(Prometheus' error).
    async fn query(&self, expr: &str) -> Result<usize, String> {
        let r = self.api("/api/v1/query", &[("query", expr)]).await;
        if r["status"] != "success" {
            return Err(format!("{}: {}", r["errorType"], r["error"]));
        }
        Ok(match r["data"]["result"].as_array() {
            Some(series) => series.len(),
            None => 1, // scalar or string
        })
    }

    /// Values of `label` on the series matching `selector` (Grafana's `label_values`).
    async fn label_values(&self, selector: &str, label: &str) -> Vec<String> {
        let r = self
            .api(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", selector)],
            )
            .await;
        r["data"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PromQL expression of a dashboard, and where it is.
#[derive(Debug)]
struct DashboardExpr {
    place: String,
    expr: String,
}

/// Every target `expr` of every panel (nested rows included), with the nearest title.
fn panel_exprs(node: &Value, place: &str, out: &mut Vec<DashboardExpr>) {
    match node {
        Value::Object(o) => {
            let place = match o.get("title").and_then(Value::as_str) {
                Some(t) => format!("{place} / {t:?}"),
                None => place.to_string(),
            };
            if let Some(Value::String(e)) = o.get("expr") {
                if !e.trim().is_empty() {
                    out.push(DashboardExpr {
                        place: place.clone(),
                        expr: e.clone(),
                    });
                }
            }
            for (k, v) in o {
                if k != "templating" {
                    panel_exprs(v, &place, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| panel_exprs(v, place, out)),
        _ => {}
    }
}

/// Replace Grafana variables (`$x`, `${x}`, `${x:fmt}`, `[[x]]`) with `values`; unknown ones
/// are an error.
fn substitute(expr: &str, values: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (name, len) = if let Some(t) = tail.strip_prefix("${") {
            let end = t
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {expr}"))?;
            (t[..end].split(':').next().unwrap_or_default(), end + 3)
        } else if let Some(t) = tail.strip_prefix("[[") {
            match t.find("]]") {
                Some(end) => (t[..end].split(':').next().unwrap_or_default(), end + 4),
                None => ("", 0),
            }
        } else if let Some(t) = tail.strip_prefix('$') {
            let end = t
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(t.len());
            (&t[..end], end + 1)
        } else {
            ("", 0)
        };
        if len == 0 {
            // A '[' that is not a variable (a range selector).
            out.push_str(&tail[..1]);
            rest = &tail[1..];
            continue;
        }
        let value = values
            .get(name)
            .ok_or_else(|| format!("unknown variable ${name} in {expr}"))?;
        out.push_str(value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `label_values(selector, label)` -> (selector, label).
fn parse_label_values(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_string(), label.trim().to_string()))
}

/// Queries for `$supplier`, in order of preference, each listing suppliers with the most firing
/// alerts first. First: suppliers with open late lines, lines predicted late, a delay z-score,
/// a disrupted sub-tier source and a time to survive and to recover, so that every panel of
/// the supplier dashboard has data to show; then the same without the supply-network panels;
/// then any supplier with firing alerts and open late lines. A supplier with no line likely
/// late has, honestly, an empty "Lines likely late" table and no z-score below 3 recent or 10
/// baseline records; one with no disrupted sub-tier source an empty "Sub-tier sources" table.
const BUSIEST_SUPPLIERS: [&str; 3] = [
    "sort_desc(count by (supplier) (chainwatch_alerts{alertstate=\"firing\"}) \
     and on (supplier) chainwatch_supplier_delivery_max_open_late_seconds \
     and on (supplier) chainwatch_line_lateness_p_late \
     and on (supplier) chainwatch_supplier_delay_anomaly_delay_z \
     and on (supplier) chainwatch_supplier_lateness_expected_late_share \
     and on (supplier) chainwatch_subtier_exposure_exposure \
     and on (supplier) chainwatch_network_time_to_survive_seconds \
     and on (supplier) chainwatch_network_time_to_recover_seconds)",
    "sort_desc(count by (supplier) (chainwatch_alerts{alertstate=\"firing\"}) \
     and on (supplier) chainwatch_supplier_delivery_max_open_late_seconds \
     and on (supplier) chainwatch_line_lateness_p_late \
     and on (supplier) chainwatch_supplier_delay_anomaly_delay_z \
     and on (supplier) chainwatch_supplier_lateness_expected_late_share)",
    "sort_desc(count by (supplier) (chainwatch_alerts{alertstate=\"firing\"}) \
     and on (supplier) chainwatch_supplier_delivery_max_open_late_seconds)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_forwarding_rule_work_against_a_real_prometheus() {
    let prometheus_bin = require_program("prometheus");
    let started = Instant::now();

    // Every dashboard's exprs and query variables, read before anything starts.
    let mut exprs = Vec::new();
    let mut variables = Vec::new(); // (dashboard, name, query)
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("dashboards"))
        .expect("dashboards/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for path in &files {
        let name = path.file_name().expect("file name").to_string_lossy();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        panel_exprs(&doc["panels"], &name, &mut exprs);
        for v in doc["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "query" {
                let q = v["query"]["query"].as_str().or(v["query"].as_str());
                variables.push((
                    name.to_string(),
                    v["name"].as_str().unwrap_or_default().to_string(),
                    q.unwrap_or_default().to_string(),
                ));
            }
        }
    }
    assert!(exprs.len() >= 20, "only {} exprs found", exprs.len());

    let (running, live, base) = start_demo().await;
    let chainwatch_alerts = wait_firing(&base, 120, |f| {
        f.iter().any(|a| a["labels"]["supplier"].is_string())
    })
    .await;
    let firing_names: BTreeSet<String> = firing(&chainwatch_alerts)
        .iter()
        .filter_map(|a| a["alertname"].as_str().map(str::to_string))
        .collect();
    let firing_suppliers: Vec<String> = firing(&chainwatch_alerts)
        .iter()
        .filter_map(|a| a["labels"]["supplier"].as_str().map(str::to_string))
        .collect();
    eprintln!(
        "prometheus: chainwatch alerts firing after {:?}",
        started.elapsed()
    );

    let mut prom = Prometheus::start(
        &prometheus_bin,
        &running.http_addr.to_string(),
        &[repo_path("docker/prometheus/rules/chainwatch.yml")],
    );
    prom.wait_ready(30).await;
    // A few scrapes before anything else: rate() needs two samples in its window.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let scrapes = prom
            .api(
                "/api/v1/query",
                &[("query", "count_over_time(up{job=\"chainwatch\"}[1m])")],
            )
            .await;
        let n: f64 = scrapes["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if n >= 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than 5 scrapes in 60 s: {scrapes}\n{}",
            prom.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let up = prom.query("up{job=\"chainwatch\"} == 1").await;
    assert_eq!(up, Ok(1), "chainwatch is not up in Prometheus");

    // Template variables: built-ins get fixed values, query variables are resolved through
    // Prometheus; `$supplier` takes a supplier that has a firing alert when one is listed.
    let mut values: BTreeMap<&str, String> = BTreeMap::from([
        ("datasource", String::new()),
        ("__rate_interval", "1m".to_string()),
        ("__interval", "15s".to_string()),
        ("__range", "5m".to_string()),
    ]);
    // Every value of each query variable, the busiest first (see below).
    let mut alternatives: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (dashboard, name, query) in &variables {
        let Some((selector, label)) = parse_label_values(query) else {
            failures.push(format!(
                "{dashboard}: variable {name}: not label_values(): {query}"
            ));
            continue;
        };
        let options = prom.label_values(&selector, &label).await;
        if options.is_empty() {
            failures.push(format!(
                "{dashboard}: variable {name}: {query} has no values"
            ));
            continue;
        }
        // Chosen now, from what Prometheus holds: an alert that fired while the history was
        // still being consumed may have resolved since. Suppliers for which every supplier
        // panel has data come first (see BUSIEST_SUPPLIERS).
        let mut busiest: Vec<String> = Vec::new();
        for query in BUSIEST_SUPPLIERS {
            let r = prom.api("/api/v1/query", &[("query", query)]).await;
            busiest.extend(
                r["data"]["result"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["metric"]["supplier"].as_str().map(str::to_string)),
            );
        }
        let pick = busiest
            .iter()
            .find(|b| options.contains(b))
            .or_else(|| options.iter().find(|o| firing_suppliers.contains(o)))
            .unwrap_or(&options[0])
            .clone();
        if let Some(old) = values.get(name.as_str()) {
            assert_eq!(
                old, &pick,
                "variable {name} resolves differently across dashboards"
            );
        }
        eprintln!(
            "prometheus: {dashboard}: ${name} = {pick} (of {})",
            options.len()
        );
        values.insert(name.as_str(), pick);
        let mut seen = BTreeSet::new();
        let ordered: Vec<String> = busiest
            .iter()
            .filter(|b| options.contains(b))
            .chain(&options)
            .filter(|o| seen.insert(o.as_str()))
            .cloned()
            .collect();
        alternatives.insert(name.clone(), ordered);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every expr: parses and returns at least one series. Counters need a few scrapes for
    // rate(), so retry the failing ones until the deadline, then report all of them. The demo
    // runs on while this checks, so the supplier picked above may lose a series (a disrupted
    // sub-tier source recovers): an expr with no series for it passes when it has data for
    // another supplier a user could pick, as the query and the metric are then sound.
    let queries: Vec<(String, &str, String)> = exprs
        .iter()
        .map(|e| {
            let q = substitute(&e.expr, &values).unwrap_or_else(|err| panic!("{}: {err}", e.place));
            (format!("{}: {}", e.place, e.expr), e.expr.as_str(), q)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending: Vec<&(String, &str, String)> = queries.iter().collect();
    loop {
        let mut failed = Vec::new();
        for q in pending {
            let why = match prom.query(&q.2).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => "no series".to_string(),
                Err(e) => {
                    failed.push((q, e));
                    continue;
                }
            };
            let mut other = None;
            for (name, picks) in &alternatives {
                if !(q.1.contains(&format!("${name}")) || q.1.contains(&format!("${{{name}"))) {
                    continue;
                }
                for pick in picks
                    .iter()
                    .filter(|p| Some(*p) != values.get(name.as_str()))
                {
                    let mut v = values.clone();
                    v.insert(name.as_str(), pick.clone());
                    let alt = substitute(q.1, &v).expect("substituted once already");
                    if matches!(prom.query(&alt).await, Ok(n) if n > 0) {
                        other = Some(format!("${name} = {pick}"));
                        break;
                    }
                }
            }
            match other {
                Some(with) => eprintln!("prometheus: {} has data with {with}", q.0),
                None => failed.push((q, why)),
            }
        }
        if failed.is_empty() {
            break;
        }
        // Only empty results can change with more scrapes; parse errors are reported at once.
        let only_errors = failed.iter().all(|(_, why)| why != "no series");
        if only_errors || Instant::now() >= deadline {
            let report: Vec<String> = failed
                .iter()
                .map(|((place, _, _), why)| format!("  {place}\n    -> {why}"))
                .collect();
            panic!(
                "{} of {} dashboard exprs fail against Prometheus (values {values:?}):\n{}",
                report.len(),
                queries.len(),
                report.join("\n")
            );
        }
        pending = failed.into_iter().map(|(q, _)| q).collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!(
        "prometheus: {} dashboard exprs return data after {:?}",
        queries.len(),
        started.elapsed()
    );

    // The forwarding rule turns chainwatch's firing alerts into Prometheus alerts.
    let deadline = Instant::now() + Duration::from_secs(30);
    let forwarded = loop {
        let a = prom.api("/api/v1/alerts", &[]).await;
        let forwarded: Vec<Value> = a["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["labels"]["alertname"] == "ChainwatchRiskAlert" && x["state"] == "firing")
            .cloned()
            .collect();
        if forwarded.iter().any(|x| {
            firing_names.contains(x["labels"]["chainwatch_alertname"].as_str().unwrap_or(""))
        }) {
            break forwarded;
        }
        assert!(
            Instant::now() < deadline,
            "no ChainwatchRiskAlert for {firing_names:?} within 30 s: {a:#}\n{}",
            prom.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for x in &forwarded {
        assert!(
            x["labels"]["alertstate"].is_null(),
            "alertstate not dropped: {x}"
        );
        assert!(x["labels"]["severity"].is_string(), "no severity: {x}");
        let summary = x["annotations"]["summary"].as_str().unwrap_or_default();
        let name = x["labels"]["chainwatch_alertname"].as_str().unwrap_or("?");
        assert!(summary.starts_with(name), "summary {summary:?} of {x}");
    }
    // No rule of docker/prometheus/rules failed to evaluate.
    let rules = prom.api("/api/v1/rules", &[]).await;
    let broken: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter(|r| r["health"] == "err")
        .collect();
    assert!(
        broken.is_empty(),
        "rules failing in Prometheus: {broken:#?}"
    );
    eprintln!(
        "prometheus: {} ChainwatchRiskAlert firing after {:?}",
        forwarded.len(),
        started.elapsed()
    );

    drop(prom);
    running.shutdown().await;
    live.abort();
}

/// The shipped Prometheus files pass promtool (config, rules and the rules' unit tests in
/// docker/prometheus/tests), and the dashboards pass the Grafana JSON model check
/// (dashboards/check_dashboards.py): `make check` runs the same, but only `make test` runs in
/// CI.
#[test]
fn shipped_prometheus_rules_pass_their_unit_tests_and_dashboards_their_model_check() {
    let promtool = require_program("promtool");
    let python = require_program("python3");
    let runs: [(&PathBuf, &[&str]); 4] = [
        (
            &promtool,
            &["check", "config", "docker/prometheus/prometheus.yml"],
        ),
        (
            &promtool,
            &["check", "rules", "docker/prometheus/rules/chainwatch.yml"],
        ),
        (
            &promtool,
            &[
                "test",
                "rules",
                "docker/prometheus/tests/chainwatch.test.yml",
            ],
        ),
        (&python, &["dashboards/check_dashboards.py"]),
    ];
    for (program, args) in runs {
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(repo_path("."))
            .output()
            .expect("run the check");
        assert!(
            out.status.success(),
            "{} {}:\n{}{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
