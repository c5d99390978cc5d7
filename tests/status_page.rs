//! The status page on `/`, rendered by a real browser (headless Chromium) against the embedded
//! demo: the firing alerts of `/api/alerts` must show up in the DOM the page's script builds.
//! A screenshot goes to `target/test-artifacts/status-page.png`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const PAGE: &str = include_str!("../src/export/status.html");

/// Run headless Chromium on `url` with a fresh profile; returns its stdout.
async fn chromium(program: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("temp dir");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--virtual-time-budget=8000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium {extra:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (alertname, supplier) of the firing alerts.
fn firing_names(alerts: &Value) -> BTreeSet<(String, Option<String>)> {
    firing(alerts)
        .iter()
        .map(|a| {
            (
                a["alertname"].as_str().unwrap_or_default().to_string(),
                a["labels"]["supplier"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn status_page_is_self_contained_and_escapes_data() {
    for forbidden in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
    ] {
        assert!(!PAGE.contains(forbidden), "status.html uses {forbidden}");
    }
    for external in ["http://", "https://", "src=\"//", "href=\"//", "@import"] {
        assert!(
            !PAGE.contains(external),
            "status.html refers to an external resource ({external})"
        );
    }
    for link in ["/metrics", "/api/alerts", "/api/status"] {
        assert!(
            PAGE.contains(&format!("href=\"{link}\"")),
            "no link to {link}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_firing_alerts_in_a_browser() {
    let chromium_bin = require_program("chromium");
    let (running, live, base) = start_demo().await;
    let started = Instant::now();
    wait_firing(&base, 120, |f| {
        f.iter().any(|a| a["labels"]["supplier"].is_string())
            && f.iter().any(|a| a["labels"]["location"].is_string())
    })
    .await;
    eprintln!("status_page: alerts firing after {:?}", started.elapsed());

    let page = get_text(&base, "/").await;
    assert_eq!(page, PAGE, "/ serves status.html");

    // Alerts firing before and after the browser ran must be on the page. While the demo
    // catches up on its history alerts change with every evaluation (the page fetches its own
    // copy in between): a few tries.
    let mut tries = 0;
    let (before, dom, after, stable) = loop {
        let before = get_json(&base, "/api/alerts").await;
        let dom = chromium(&chromium_bin, &format!("{base}/"), &["--dump-dom"]).await;
        let after = get_json(&base, "/api/alerts").await;
        let stable: BTreeSet<_> = firing_names(&before)
            .intersection(&firing_names(&after))
            .cloned()
            .collect();
        let missing: Vec<_> = stable
            .iter()
            .filter(|(name, supplier)| {
                !dom.contains(&format!(">{name}<"))
                    || supplier
                        .as_ref()
                        .is_some_and(|s| !dom.contains(&format!("</i>{s}<")))
            })
            .collect();
        tries += 1;
        if !stable.is_empty() && missing.is_empty() {
            break (before, dom, after, stable);
        }
        assert!(
            tries < 5,
            "firing alerts not on the page: {missing:?} of {stable:?}\n{dom}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let suppliers: BTreeSet<&str> = stable.iter().filter_map(|(_, s)| s.as_deref()).collect();
    assert!(
        !suppliers.is_empty(),
        "no firing supplier alert: {stable:?}"
    );
    let missing: Vec<_> = suppliers
        .iter()
        .filter(|s| !dom.contains(&format!("</i>{s}<")))
        .collect();
    assert!(
        missing.is_empty(),
        "suppliers not on the page: {missing:?}\n{dom}"
    );

    // The pipeline line and a summary annotation are rendered; the refresh did not fail.
    let status = get_json(&base, "/api/status").await;
    assert!(dom.contains("dead-lettered <b>"), "{dom}");
    assert!(
        dom.contains(status["brokers"].as_str().unwrap_or("?")),
        "{dom}"
    );
    // A summary that did not change while the browser ran (values move with every evaluation).
    let summaries = |v: &Value| -> Vec<(String, String)> {
        firing(v)
            .iter()
            .filter_map(|a| {
                let s = a["annotations"]["summary"].as_str()?;
                Some((format!("{}{}", a["alertname"], a["labels"]), s.to_string()))
            })
            .collect()
    };
    let earlier = summaries(&before);
    let summary = summaries(&after)
        .into_iter()
        .find(|pair| earlier.contains(pair))
        .map(|(_, s)| s)
        .expect("a firing alert whose summary stayed the same");
    let first_words: String = summary.chars().take(20).collect();
    let escaped = first_words
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(
        dom.contains(&escaped),
        "summary {summary:?} not on the page"
    );
    // Re-sourcing: the alternates of a firing alert on parts (the demo's network has them)
    // are on the page, each alternate named.
    let with_alternates = |v: &Value| -> BTreeSet<(String, String)> {
        firing(v)
            .iter()
            .flat_map(|a| a["alternates"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| {
                let first = p["alternates"].as_array()?.first()?["supplier"]
                    .as_str()?
                    .to_string();
                Some((p["part"].as_str()?.to_string(), first))
            })
            .collect()
    };
    let alts: BTreeSet<_> = with_alternates(&before)
        .intersection(&with_alternates(&after))
        .cloned()
        .collect();
    let (part, supplier) = alts
        .iter()
        .next()
        .expect("a firing alert on a part with alternates");
    assert!(
        dom.contains(&format!("<b>Alternates for {part}"))
            && dom.contains(&format!(">{supplier} ")),
        "alternates of {part} ({supplier}) not on the page"
    );
    // (The DOM dump includes the script, so look for rendered markup only.)
    assert!(
        dom.contains(">updated "),
        "the page did not refresh:\n{dom}"
    );
    assert!(!dom.contains("id=\"updated\" class=\"error\""), "{dom}");

    // Critical first: the first severity badge of the table is the most severe firing one.
    let most_severe = if firing(&after).iter().any(|a| a["severity"] == "critical") {
        "critical"
    } else {
        "warning"
    };
    assert!(
        dom.contains(&format!("<span class=\"sev {most_severe}\">")),
        "{dom}"
    );
    let first_badge = dom
        .split("<span class=\"sev ")
        .nth(1)
        .and_then(|s| s.split('"').next());
    assert_eq!(first_badge, Some(most_severe), "not sorted critical first");

    let png = artifact_path("status-page.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        &chromium_bin,
        &format!("{base}/"),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,900",
            "--hide-scrollbars",
        ],
    )
    .await;
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "screenshot {} looks empty ({} bytes)",
        png.display(),
        bytes.len()
    );
    eprintln!(
        "status_page: screenshot {} after {:?}",
        png.display(),
        started.elapsed()
    );
    running.shutdown().await;
    live.abort();
}
