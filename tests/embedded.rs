//! The embedded default (`make run`): in-process broker + simulator, firing alerts from the
//! injected disruptions, seen through the real `/metrics` and `/api/alerts`.

use std::time::{Duration, Instant};

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_fires_alerts_for_the_injected_disruptions() {
    let (running, live, base) = start_demo().await;
    let started = Instant::now();
    // The slipping supplier, the congested hub and the stock-out part (see src/sim).
    let wanted = [
        ("SupplierOnTimeRatioLow", "supplier", "SUP-T1-018"),
        ("LocationCongested", "location", "SGSIN"),
        ("PartCoverageGap", "part", "P-1002"),
    ];
    loop {
        let m = get_text(&base, "/metrics").await;
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(alert, label, value)| {
                sample(
                    &m,
                    "chainwatch_alerts",
                    &[
                        ("alertname", alert),
                        ("alertstate", "firing"),
                        (label, value),
                    ],
                )
                .is_none()
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not firing within 120 s (debug build, tests in parallel): {missing:?}\n{:#}",
            get_json(&base, "/api/alerts").await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = get_json(&base, "/api/status").await;
    assert!(status["brokers"]
        .as_str()
        .unwrap_or_default()
        .starts_with("embedded"));
    assert!(
        status["records_applied"].as_u64() > Some(10_000),
        "{status:#}"
    );
    // Malformed simulated events (every 5000th) are dead-lettered, nothing is late.
    let m = get_text(&base, "/metrics").await;
    assert_eq!(late_events(&m), Some(0.0));
    assert!(sample(&m, "chainwatch_ingest_dead_letters_total", &[]) >= Some(3.0));
    // Each query's time in the last evaluation, the view's too.
    for (metric, label, name) in [
        (
            "chainwatch_indicator_view_last_duration_seconds",
            "view",
            "line_risk",
        ),
        (
            "chainwatch_indicator_last_duration_seconds",
            "indicator",
            "line_lateness",
        ),
    ] {
        let t = sample(&m, metric, &[(label, name)]);
        assert!(
            t.is_some_and(|t| t > 0.0),
            "{metric}{{{label}={name:?}}}: {t:?}"
        );
    }
    // The shipped rule book: its view and its indicators, as the evaluator runs them.
    let rules = get_json(&base, "/api/rules").await;
    assert_eq!(
        rules["views"],
        serde_json::json!(["line_risk"]),
        "{rules:#}"
    );
    assert_eq!(rules["indicators"].as_array().map(Vec::len), Some(10));
    running.shutdown().await;
    live.abort();
}
