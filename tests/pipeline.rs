//! End to end against a real broker (tansu): events in, indicators and alerts out through the
//! real `/metrics` and `/api/alerts`; dead letters; redelivery.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::util::*;

const HOUR_MS: i64 = 3_600_000;

fn created(id: &str, supplier: &str, po: &str, part: &str, promised_ms: i64) -> Value {
    json!({"event_id": id, "kind": "po_line_created", "event_time": iso(T0), "source": "test-erp",
        "po": po, "line": 1, "supplier": supplier, "part": part, "site": "PLANT-1",
        "quantity": 100, "unit_price": 10.0, "order_date": date(T0), "promised_date": date(promised_ms)})
}

fn receipt(id: &str, supplier: &str, po: &str, at_ms: i64) -> Value {
    json!({"event_id": id, "kind": "goods_receipt", "event_time": iso(at_ms), "source": "test-erp",
        "po": po, "line": 1, "supplier": supplier, "quantity": 100, "received_at": iso(at_ms)})
}

fn position(id: &str, at_ms: i64, on_hand: f64) -> Value {
    json!({"event_id": id, "kind": "inventory_position", "event_time": iso(at_ms), "source": "test-wms",
        "site": "PLANT-1", "part": "P-9", "on_hand": on_hand, "daily_demand": 10.0})
}

/// The `i`-th PO line of the alignment tests: event time `i` hours after T0, one key (`k`) so
/// ERP's events sit on one partition, read in order.
fn hourly_line(prefix: &str, i: i64) -> (&'static str, Option<Vec<u8>>) {
    let mut e = created(
        &format!("{prefix}{i}"),
        "S-1",
        &format!("PO-{i}"),
        "P-1",
        T0 + 30 * DAY_MS,
    );
    e["event_time"] = json!(iso(T0 + i * HOUR_MS));
    ("k", Some(e.to_string().into_bytes()))
}

/// Logistics heartbeats an hour apart over `hours` hours from T0, on one key.
fn hourly_heartbeats(hours: i64) -> Vec<(&'static str, Option<Vec<u8>>)> {
    (0..hours)
        .map(|h| {
            let hb = heartbeat(&format!("l{h}"), T0 + h * HOUR_MS);
            ("k", Some(hb.to_string().into_bytes()))
        })
        .collect()
}

fn bytes(events: &[Value]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.to_string().into_bytes()).collect()
}

fn alerts_named<'a>(api: &'a Value, name: &str) -> Vec<&'a Value> {
    api["alerts"]
        .as_array()
        .expect("alerts array")
        .iter()
        .filter(|a| a["alertname"] == name)
        .collect()
}

/// One partition per topic, so events of a phase keep their order (lateness is 0 here).
fn single_partition(mut c: chainwatch::config::Config) -> chainwatch::config::Config {
    c.kafka.partitions = 1;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicators_and_alerts_follow_event_time_through_metrics_and_api() {
    let broker = Tansu::start();
    let config = single_partition(test_config(&broker.brokers, "e2e"));
    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);
    let p = producer(&broker.brokers);

    // S-LATE: 3 of 4 lines 4 days late (due end of T0+10d, received T0+15d), one early.
    // S-GOOD: 3 lines on time, 1 open line of part P-9 promised for T0+30d.
    let mut erp = Vec::new();
    for i in 0..4 {
        erp.push(created(
            &format!("c-late-{i}"),
            "S-LATE",
            &format!("PO-L{i}"),
            "P-1",
            T0 + 10 * DAY_MS,
        ));
    }
    for i in 0..4 {
        erp.push(created(
            &format!("c-good-{i}"),
            "S-GOOD",
            &format!("PO-G{i}"),
            if i == 3 { "P-9" } else { "P-2" },
            T0 + if i == 3 { 30 } else { 10 } * DAY_MS,
        ));
    }
    erp.push(receipt("r-good-0", "S-GOOD", "PO-G0", T0 + 9 * DAY_MS));
    erp.push(receipt("r-good-1", "S-GOOD", "PO-G1", T0 + 9 * DAY_MS));
    erp.push(receipt("r-good-2", "S-GOOD", "PO-G2", T0 + 9 * DAY_MS));
    erp.push(receipt("r-late-3", "S-LATE", "PO-L3", T0 + 10 * DAY_MS));
    for i in 0..3 {
        erp.push(receipt(
            &format!("r-late-{i}"),
            "S-LATE",
            &format!("PO-L{i}"),
            T0 + 15 * DAY_MS,
        ));
    }
    produce(&p, "e2e.erp", &bytes(&erp)).await;
    // Every ERP event read (the watermark is at the last one) before the WMS topic moves it.
    wait_status(&base, 60, |s| {
        s["watermark_ms"].as_i64() == Some(T0 + 15 * DAY_MS)
    })
    .await;
    // Inventory at the same event time: 50 on hand at 10/day = 5 days of supply. Then a tick
    // just after, which closes the step ending at T0+15d.
    produce(
        &p,
        "e2e.wms",
        &bytes(&[position("inv-1", T0 + 15 * DAY_MS, 50.0)]),
    )
    .await;
    tick(&p, "e2e.wms", T0 + 15 * DAY_MS + 1).await;
    wait_evaluated(&base, T0 + 15 * DAY_MS).await;

    let m = get_text(&base, "/metrics").await;
    let late = [("supplier", "S-LATE")];
    assert_eq!(
        sample(&m, "chainwatch_supplier_delivery_on_time_ratio", &late),
        Some(0.25)
    );
    assert_eq!(
        sample(
            &m,
            "chainwatch_supplier_delivery_on_time_ratio",
            &[("supplier", "S-GOOD")]
        ),
        Some(1.0)
    );
    // Delays: 3 x 4 days and 1 x -1 day -> mean 2.75 days, exported in seconds.
    assert_eq!(
        sample(&m, "chainwatch_supplier_delivery_mean_delay_seconds", &late),
        Some(2.75 * 86_400.0)
    );
    assert_eq!(
        sample(
            &m,
            "chainwatch_supplier_delivery_open_lines",
            &[("supplier", "S-GOOD")]
        ),
        Some(1.0)
    );
    // Next inbound due end of T0+30d = 16 days away; 5 days of supply -> gap -11 days.
    let part = [("site", "PLANT-1"), ("part", "P-9")];
    assert_eq!(
        sample(
            &m,
            "chainwatch_inventory_coverage_coverage_gap_seconds",
            &part
        ),
        Some(-11.0 * 86_400.0)
    );
    // Conditions hold, but `for: 6h` of event time has not passed: pending.
    let pending = [
        ("alertname", "SupplierOnTimeRatioLow"),
        ("alertstate", "pending"),
        ("supplier", "S-LATE"),
    ];
    assert_eq!(sample(&m, "chainwatch_alerts", &pending), Some(1.0), "{m}");
    let api = get_json(&base, "/api/alerts").await;
    let a = alerts_named(&api, "SupplierOnTimeRatioLow");
    assert_eq!(a.len(), 1, "only S-LATE: {api:#}");
    assert_eq!(a[0]["state"], "pending");
    assert_eq!(a[0]["severity"], "critical");
    assert!(alerts_named(&api, "PartCoverageGap")
        .iter()
        .all(|a| a["state"] == "pending"));

    // Seven hours of event time later the conditions still hold: firing.
    let t1 = T0 + 15 * DAY_MS + 7 * HOUR_MS;
    produce(&p, "e2e.wms", &bytes(&[position("inv-2", t1, 50.0)])).await;
    tick(&p, "e2e.wms", t1 + 1).await;
    wait_evaluated(&base, t1).await;
    let m = get_text(&base, "/metrics").await;
    let firing = [
        ("alertname", "SupplierOnTimeRatioLow"),
        ("alertstate", "firing"),
        ("severity", "critical"),
        ("supplier", "S-LATE"),
        ("reason_code", "supplier_late_deliveries"),
    ];
    assert_eq!(sample(&m, "chainwatch_alerts", &firing), Some(1.0), "{m}");
    let by_alert = [
        ("alertname", "SupplierOnTimeRatioLow"),
        ("supplier", "S-LATE"),
    ];
    assert_eq!(sample(&m, "chainwatch_alert_value", &by_alert), Some(0.25));
    assert_eq!(
        sample(&m, "chainwatch_alert_threshold", &by_alert),
        Some(0.7)
    );
    assert_eq!(
        sample(&m, "chainwatch_alerts_for_state_seconds", &by_alert),
        Some((T0 + 15 * DAY_MS) as f64 / 1000.0),
        "active since the first evaluation that saw the condition"
    );
    assert_eq!(
        sample(
            &m,
            "chainwatch_alerts",
            &[
                ("alertname", "PartCoverageGap"),
                ("alertstate", "firing"),
                ("part", "P-9")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "chainwatch_alerts", &[("supplier", "S-GOOD")]),
        None
    );
    let api = get_json(&base, "/api/alerts").await;
    let a = alerts_named(&api, "SupplierOnTimeRatioLow")[0];
    assert_eq!(a["state"], "firing");
    assert_eq!(a["labels"]["supplier"], "S-LATE");
    assert_eq!(a["value"], 0.25);
    assert_eq!(a["threshold"], 0.7);
    assert_eq!(a["active_at"], iso(T0 + 15 * DAY_MS).replace(".000", ""));
    let summary = a["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("S-LATE") && summary.contains("25%") && summary.contains("70%"),
        "{summary}"
    );

    // 35 days on, the late deliveries left the 30-day window and stock is replenished.
    let t2 = T0 + 50 * DAY_MS;
    produce(&p, "e2e.wms", &bytes(&[position("inv-3", t2, 1000.0)])).await;
    tick(&p, "e2e.wms", t2 + 1).await;
    wait_evaluated(&base, t2).await;
    let m = get_text(&base, "/metrics").await;
    assert_eq!(
        sample(&m, "chainwatch_alerts", &[("supplier", "S-LATE")]),
        None,
        "{m}"
    );
    assert_eq!(
        sample(&m, "chainwatch_alerts", &[("alertname", "PartCoverageGap")]),
        None
    );
    let api = get_json(&base, "/api/alerts").await;
    let a = alerts_named(&api, "SupplierOnTimeRatioLow")[0];
    assert_eq!(a["state"], "resolved");
    assert_eq!(a["resolved_at"], iso(t2).replace(".000", ""));

    // The alert's whole life, in event time, from the history.
    let h = get_json(&base, "/api/alerts/history?rule=SupplierOnTimeRatioLow").await;
    let life: Vec<(String, String, String)> = h["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| {
            (
                t["change"].as_str().unwrap_or_default().to_string(),
                t["at"].as_str().unwrap_or_default().to_string(),
                t["labels"]["supplier"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let at = |ms: i64| iso(ms).replace(".000", "");
    let s = |x: &str| x.to_string();
    assert_eq!(
        life,
        [
            (s("pending"), at(T0 + 15 * DAY_MS), s("S-LATE")),
            (s("firing"), at(t1), s("S-LATE")),
            (s("resolved"), at(t2), s("S-LATE")),
        ],
        "{h:#}"
    );
    let resolved = get_json(&base, "/api/alerts/history?change=resolved&limit=1").await;
    assert_eq!(resolved["transitions"].as_array().map(Vec::len), Some(1));
    assert_eq!(resolved["transitions"][0]["change"], "resolved");
    let bad = http()
        .get(format!("{base}/api/alerts/history?since=yesterday"))
        .send()
        .await
        .expect("GET");
    assert_eq!(bad.status(), 400);

    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_go_to_the_dead_letter_topic_with_their_reason() {
    let broker = Tansu::start();
    let mut config = single_partition(test_config(&broker.brokers, "dlq"));
    // Small enough that an oversized message is cheap to send.
    config.batch.max_message_bytes = 2048;
    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);
    let p = producer(&broker.brokers);

    let good = |i: i64| {
        created(
            &format!("ok-{i}"),
            "S1",
            &format!("PO-{i}"),
            "P-1",
            T0 + 10 * DAY_MS,
        )
    };
    let mut late = good(99);
    late["event_id"] = json!("late");
    late["event_time"] = json!(iso(T0 - DAY_MS));
    let mut shifted = good(50);
    shifted["event_time"] = json!(iso(T0 + DAY_MS));
    let text = good(0).to_string();
    let bad: Vec<(&str, String)> = vec![
        ("invalid_json", "{\"event_id\": \"x\", ".to_string()),
        ("invalid_json", "[1, 2, 3]".to_string()),
        (
            "wrong_type",
            text.replace("\"quantity\":100", "\"quantity\":\"many\""),
        ),
        (
            "unknown_kind",
            text.replace("po_line_created", "po_line_exploded"),
        ),
        ("missing_field", text.replace("\"part\":\"P-1\",", "")),
        (
            "negative_quantity",
            text.replace("\"quantity\":100", "\"quantity\":-3"),
        ),
        (
            "invalid_date",
            text.replace(&date(T0 + 10 * DAY_MS), "2026-02-30"),
        ),
        (
            "invalid_value",
            json!({"event_id": "v", "kind": "milestone", "event_time": iso(T0), "source": "x",
            "shipment": "SH", "supplier": "S1", "status": "teleported", "location": "X"})
            .to_string(),
        ),
        (
            "too_large",
            text.replace("\"P-1\"", &format!("\"{}\"", "P".repeat(3000))),
        ),
        (
            "invalid_json",
            format!("{}{}", "[".repeat(600), "]".repeat(600)),
        ),
        (
            "invalid_date",
            text.replace(&date(T0 + 10 * DAY_MS), "9999-12-31"),
        ),
        // Sent after an event one day later: older than the watermark (lateness 0).
        ("late_event", late.to_string()),
    ];
    let mut payloads = vec![good(1).to_string(), good(2).to_string()];
    let mut expected_offsets = BTreeMap::new();
    for (i, (reason, b)) in bad.iter().enumerate() {
        if *reason == "late_event" {
            payloads.push(shifted.to_string());
        }
        expected_offsets.insert(payloads.len() as i64, (*reason, b.clone()));
        payloads.push(b.clone());
        let mut after = good(10 + i as i64);
        if *reason == "late_event" {
            after["event_time"] = json!(iso(T0 + DAY_MS));
        }
        payloads.push(after.to_string());
    }
    let valid = payloads.len() - bad.len();
    // Closes the last step (T0+1d): every valid event is then applied (the heartbeat's own
    // step stays open).
    payloads.push(heartbeat("hb", T0 + DAY_MS + 1).to_string());
    let to_bytes = |v: &[String]| v.iter().map(|s| s.clone().into_bytes()).collect::<Vec<_>>();
    // Everything up to the event that moves the watermark to T0+1d, then (once it has moved)
    // the late event and the rest.
    let (late_at, _) = expected_offsets
        .iter()
        .find(|(_, (r, _))| *r == "late_event")
        .expect("a late case");
    let split = *late_at as usize;
    produce(&p, "dlq.erp", &to_bytes(&payloads[..split])).await;
    wait_status(&base, 60, |s| {
        s["watermark_ms"].as_i64() == Some(T0 + DAY_MS)
    })
    .await;
    produce(&p, "dlq.erp", &to_bytes(&payloads[split..])).await;
    let status = wait_status(&base, 60, |s| {
        s["records_dead_lettered"].as_u64() == Some(bad.len() as u64)
            && s["records_applied"].as_u64() == Some(valid as u64)
    })
    .await;
    assert_eq!(
        status["state"]["open_po_lines"].as_u64(),
        Some(valid as u64)
    );

    // Every rejected record is on the dead-letter topic with its reason and origin.
    let mut seen = BTreeMap::new();
    for d in read_dead_letters(&broker.brokers, "dlq.deadletter", bad.len()).await {
        let headers = &d.headers;
        let offset: i64 = headers["chainwatch.offset"].parse().expect("offset header");
        assert_eq!(headers["chainwatch.topic"], "dlq.erp");
        assert_eq!(headers["chainwatch.partition"], "0");
        assert!(!headers["chainwatch.error"].is_empty());
        seen.insert(offset, (headers["chainwatch.reason"].clone(), d.payload));
    }
    for (offset, (reason, payload)) in &expected_offsets {
        let (got_reason, got_payload) = &seen[offset];
        assert_eq!(got_reason, reason, "offset {offset}");
        assert_eq!(got_payload, payload, "original payload kept");
    }
    // Offsets of the whole batch, dead letters included, get committed.
    wait_status(&base, 30, |s| {
        s["lag"].as_i64() == Some(0) && s["partitions"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    let m = get_text(&base, "/metrics").await;
    assert_eq!(
        sample(
            &m,
            "chainwatch_ingest_rejected_total",
            &[("reason", "invalid_json")]
        ),
        Some(3.0),
        "two malformed, one nested too deep"
    );
    assert_eq!(
        sample(
            &m,
            "chainwatch_ingest_rejected_total",
            &[("reason", "invalid_date")]
        ),
        Some(2.0),
        "an impossible date and an absurd one"
    );
    for reason in [
        "wrong_type",
        "unknown_kind",
        "missing_field",
        "negative_quantity",
        "invalid_value",
        "too_large",
        "late_event",
    ] {
        assert_eq!(
            sample(
                &m,
                "chainwatch_ingest_rejected_total",
                &[("reason", reason)]
            ),
            Some(1.0),
            "{reason}"
        );
    }
    assert_eq!(
        sample(&m, "chainwatch_ingest_dead_letters_total", &[]),
        Some(bad.len() as f64)
    );
    // Rejected messages are read like the others: no offset was skipped.
    assert_eq!(
        sample(
            &m,
            "chainwatch_ingest_skipped_offsets_total",
            &[("topic", "dlq.erp")]
        ),
        Some(0.0)
    );
    // Every self-metric is exported, except those labelled by feed or network node: this
    // pipeline has neither (tests/onboarding.rs sees them).
    let per_feed_or_node = |n: &str| {
        n.starts_with("chainwatch_feed_")
            || (n.starts_with("chainwatch_network_") && n != "chainwatch_network_records_total")
    };
    for (name, _) in chainwatch::export::metrics::SELF_METRICS {
        if !per_feed_or_node(name) {
            assert!(m.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_are_not_counted_twice() {
    let broker = Tansu::start();
    let mut config = test_config(&broker.brokers, "redeliver");
    // Redelivered copies come after the originals: within the allowed lateness they are
    // recognised as duplicates, not dead-lettered as late.
    config.allowed_lateness = std::time::Duration::from_secs(86_400);
    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);
    let p = producer(&broker.brokers);
    let events: Vec<Value> = (0..3)
        .map(|i| {
            created(
                &format!("c{i}"),
                "S1",
                &format!("PO-{i}"),
                "P-1",
                T0 + 10 * DAY_MS,
            )
        })
        .chain((0..3).map(|i| {
            let mut r = receipt(&format!("r{i}"), "S1", &format!("PO-{i}"), T0 + HOUR_MS);
            r["quantity"] = json!(40);
            r
        }))
        .collect();
    produce(&p, "redeliver.erp", &bytes(&events)).await;
    // The same batch again, as a producer retry or a replay would deliver it.
    produce(&p, "redeliver.erp", &bytes(&events)).await;
    // A day and a bit later: the watermark passes both steps.
    tick(&p, "redeliver.erp", T0 + DAY_MS + 3_600_001).await;
    let s = wait_status(&base, 60, |s| {
        s["duplicates"].as_u64() == Some(6) && s["records_applied"].as_u64() == Some(6)
    })
    .await;
    assert_eq!(s["records_dead_lettered"].as_u64(), Some(0));
    wait_evaluated(&base, T0 + HOUR_MS).await;
    let m = get_text(&base, "/metrics").await;
    assert_eq!(
        sample(&m, "chainwatch_state_duplicate_events_total", &[]),
        Some(6.0)
    );
    // 40 of 100 received once per line: still open, not completed by a double count.
    assert_eq!(
        sample(
            &m,
            "chainwatch_supplier_delivery_open_lines",
            &[("supplier", "S1")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &m,
            "chainwatch_supplier_delivery_deliveries",
            &[("supplier", "S1")]
        ),
        Some(0.0)
    );
    assert_eq!(sample(&m, "chainwatch_state_open_po_lines", &[]), Some(3.0));
    running.shutdown().await;
}

/// Watermark alignment: a topic whose event time runs more than `max_drift` ahead of another
/// topic still being read is paused (reading it on would only grow the event buffer) and
/// resumed once the other catches up; every event is applied once, none is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_far_ahead_in_event_time_is_paused_until_the_others_catch_up() {
    let broker = Tansu::start();
    let mut config = test_config(&broker.brokers, "align");
    config.max_drift = std::time::Duration::from_secs(86_400);
    // Empty partitions stop holding the watermark after 2 s; ERP keeps holding it, as the
    // test goes on producing to it more often than that.
    config.idle_timeout = std::time::Duration::from_secs(2);
    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);
    let p = producer(&broker.brokers);
    let line = |i: i64| hourly_line("a", i);
    let paused = |m: &str| sample(m, "chainwatch_ingest_paused_partitions", &[]);

    // Logistics runs five days ahead; ERP has read half a day.
    produce_keyed(&p, "align.logistics", &hourly_heartbeats(120)).await;
    produce_keyed(&p, "align.erp", &(0..12).map(line).collect::<Vec<_>>()).await;
    let mut next = 12;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        // ERP goes on at an hour per 300 ms: far behind, but active.
        if next < 60 {
            produce_keyed(&p, "align.erp", &[line(next)]).await;
            next += 1;
        }
        let m = get_text(&base, "/metrics").await;
        if paused(&m) == Some(1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "logistics not paused while days ahead: paused = {:?}; status {:#}",
            paused(&m),
            get_json(&base, "/api/status").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    // ERP catches up (and both go a day further, closing every step): nothing stays paused.
    produce_keyed(&p, "align.erp", &(next..120).map(line).collect::<Vec<_>>()).await;
    all_applied_once_and_none_paused(&p, &base, "align").await;
    running.shutdown().await;
}

/// A broker that stalls (tansu frozen with SIGSTOP: its connections stay open, nothing is
/// answered) is not idleness. ERP is the slowest topic and holds the watermark; logistics runs
/// five days ahead. While the broker is frozen, ERP's next events wait in the producer. ERP
/// must not turn idle on its last view of the broker ("caught up") however long the stall
/// lasts (longer than the idle timeout here): had it, the watermark would jump to logistics'
/// time and those events would be dead-lettered as late. Meanwhile `/readyz` says not ready,
/// and the lag query's failures and the age of its last answer show on `/metrics`.
///
/// What holds ERP back here is the outage rule as much as the confirmation rule: librdkafka
/// closes the connection of a frozen broker once a lag query times out in flight
/// (`socket.max.fails` = 1), so `chainwatch_ingest_connected` goes to 0 and no leader is up.
/// The next test keeps the connection up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_broker_is_not_idleness() {
    stalled_broker_is_not_idleness("stall", false).await;
}

/// The same stall with `socket.max.fails` = 0: librdkafka keeps the frozen broker's connection
/// up however many requests time out, so `chainwatch_ingest_connected` stays 1 throughout
/// (checked) and the outage rule never applies. Only the confirmation rule
/// (`QueriedHighs::confirmed`: no high watermark answered for 3 s, the partition is not
/// caught up) keeps ERP from turning idle; with it disabled this test fails with late events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_broker_with_its_connection_up_is_not_idleness() {
    stalled_broker_is_not_idleness("stallup", true).await;
}

/// The stall tests' body; `keep_connection`: `socket.max.fails` = 0, and the connection must
/// stay up through the stall.
async fn stalled_broker_is_not_idleness(name: &str, keep_connection: bool) {
    let broker = Tansu::start();
    let mut config = test_config(&broker.brokers, name);
    if keep_connection {
        config
            .kafka
            .options
            .0
            .insert("socket.max.fails".into(), "0".into());
    }
    config.max_drift = std::time::Duration::from_secs(86_400);
    // Long enough that ERP cannot turn idle between its last event and the freeze below, even
    // on a loaded machine; the stall lasts longer.
    let idle = std::time::Duration::from_secs(10);
    config.idle_timeout = idle;
    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);
    let p = producer(&broker.brokers);
    let line = |i: i64| hourly_line("s", i);
    let erp_time = |m: &str| {
        let mut times: Vec<f64> = m
            .lines()
            .filter(|l| {
                l.starts_with("chainwatch_ingest_partition_event_time_seconds{")
                    && l.contains(&format!("topic=\"{name}.erp\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .filter(|t: &f64| t.is_finite())
            .collect();
        times.sort_by(f64::total_cmp);
        times.pop()
    };

    let (erp, logistics) = (format!("{name}.erp"), format!("{name}.logistics"));
    produce_keyed(&p, &logistics, &hourly_heartbeats(120)).await;
    produce_keyed(&p, &erp, &(0..12).map(line).collect::<Vec<_>>()).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let last_erp = ((T0 + 11 * HOUR_MS) / 1000) as f64;
    while erp_time(&get_text(&base, "/metrics").await) != Some(last_erp)
        || readyz(&base).await != 200
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ERP's first 12 hours not read, or not ready: {:#}",
            get_json(&base, "/api/status").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    broker.freeze();
    let frozen = tokio::time::Instant::now();
    // ERP goes on while the broker is frozen: the events wait in the producer.
    let pending = {
        let (p, erp) = (p.clone(), erp.clone());
        tokio::spawn(async move {
            produce_keyed(&p, &erp, &(12..120).map(line).collect::<Vec<_>>()).await;
        })
    };
    let deadline = frozen + std::time::Duration::from_secs(60);
    loop {
        let m = get_text(&base, "/metrics").await;
        if keep_connection {
            assert_eq!(
                sample(&m, "chainwatch_ingest_connected", &[]),
                Some(1.0),
                "the connection was to stay up (socket.max.fails = 0)"
            );
        }
        let errors = sample(&m, "chainwatch_ingest_lag_query_errors_total", &[]);
        let age = m
            .lines()
            .filter(|l| l.starts_with("chainwatch_ingest_high_watermark_age_seconds{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        if readyz(&base).await == 503
            && errors.is_some_and(|e| e > 0.0)
            && age > 5.0
            && frozen.elapsed() > idle + std::time::Duration::from_secs(4)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stall does not show: ready {}, lag query errors {errors:?}, age {age}",
            readyz(&base).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let status = get_json(&base, "/api/status").await;
    assert_eq!(
        status["records_dead_lettered"].as_u64(),
        Some(0),
        "{status:#}"
    );

    broker.thaw();
    tokio::time::timeout(std::time::Duration::from_secs(60), pending)
        .await
        .expect("the events held in the producer are delivered")
        .expect("producer task");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while readyz(&base).await != 200 {
        assert!(tokio::time::Instant::now() < deadline, "not ready again");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    all_applied_once_and_none_paused(&p, &base, name).await;
    let m = get_text(&base, "/metrics").await;
    assert_eq!(late_events(&m), Some(0.0));
    running.shutdown().await;
}

/// Both topics of `prefix` go on to day 6 (closing every step); then all 120 lines are
/// applied, none dead-lettered or applied twice, and no partition stays paused.
async fn all_applied_once_and_none_paused(
    p: &rdkafka::producer::FutureProducer,
    base: &str,
    prefix: &str,
) {
    for topic in ["erp", "logistics"] {
        let topic = format!("{prefix}.{topic}");
        let hb = heartbeat(&format!("end-{topic}"), T0 + 6 * DAY_MS);
        produce_keyed(p, &topic, &[("k", Some(hb.to_string().into_bytes()))]).await;
    }
    let s = wait_status(base, 60, |s| {
        s["state"]["open_po_lines"].as_u64() == Some(120) && s["lag"].as_i64() == Some(0)
    })
    .await;
    assert_eq!(s["records_dead_lettered"].as_u64(), Some(0), "{s:#}");
    assert_eq!(s["duplicates"].as_u64(), Some(0), "{s:#}");
    let m = get_text(base, "/metrics").await;
    assert_eq!(
        sample(&m, "chainwatch_ingest_paused_partitions", &[]),
        Some(0.0),
        "still paused after catching up"
    );
}

/// A full event buffer pauses the partitions ahead of the slowest even within `max_drift`:
/// here logistics runs five days ahead, well within the 30-day drift, and only the buffer's
/// cap of 20 events can pause it. Once ERP catches up it is resumed; every event is applied
/// once, none is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_event_buffer_pauses_the_partitions_ahead() {
    let broker = Tansu::start();
    let mut config = test_config(&broker.brokers, "bufcap");
    config.max_drift = std::time::Duration::from_secs(30 * 86_400);
    config.max_buffered_events = 20;
    config.idle_timeout = std::time::Duration::from_secs(2);
    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);
    let p = producer(&broker.brokers);
    let line = |i: i64| hourly_line("b", i);
    let metric = |m: &str, name: &str| sample(m, name, &[]);
    let ahead = hourly_heartbeats(120);
    produce_keyed(&p, "bufcap.logistics", &ahead).await;
    let erp =
        |range: std::ops::Range<i64>| -> Vec<(&str, Option<Vec<u8>>)> { range.map(line).collect() };
    produce_keyed(&p, "bufcap.erp", &erp(0..12)).await;
    let mut next = 12;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        // ERP goes on at an hour per 300 ms: behind, but active.
        if next < 60 {
            produce_keyed(&p, "bufcap.erp", &erp(next..next + 1)).await;
            next += 1;
        }
        let m = get_text(&base, "/metrics").await;
        if metric(&m, "chainwatch_ingest_paused_partitions") == Some(1.0) {
            let buffered = metric(&m, "chainwatch_state_buffered_events").unwrap_or(0.0);
            assert!(buffered >= 20.0, "paused with {buffered} events buffered");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "logistics not paused with the buffer full: {:?} buffered; status {:#}",
            metric(&m, "chainwatch_state_buffered_events"),
            get_json(&base, "/api/status").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    produce_keyed(&p, "bufcap.erp", &erp(next..120)).await;
    all_applied_once_and_none_paused(&p, &base, "bufcap").await;
    running.shutdown().await;
}

/// Alignment while reading a backlog: with a message always ready, the ingest loop used to
/// serve only its receive branch, so the tick that pauses partitions never ran. A partition
/// paused before stayed paused (the watermark stalled) and the others were read on into the
/// event buffer: the soak's memory grew by gigabytes. Here both topics wait in Kafka before
/// chainwatch starts, logistics five days ahead of ERP: logistics must be paused while ERP
/// catches up, and ERP's backlog must never pile up in the buffer behind a watermark that
/// waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alignment_holds_while_a_backlog_is_read() {
    const MIN_MS: i64 = 60_000;
    let broker = Tansu::start();
    let mut config = test_config(&broker.brokers, "backlog");
    config.max_drift = std::time::Duration::from_secs(86_400);
    // Small micro-batches: ingest reads ahead by a few of them only, as with a real backlog
    // much larger than a batch.
    config.batch.max_rows = 20;
    // The four empty partitions hold the watermark until they are idle. With the suite's
    // 200 ms, ERP's whole backlog could be read into the buffer before that on the CI machine
    // (1,473 events; the buffer measured the idle timeout, not alignment). Idle as soon as
    // caught up: everything is produced before the start, so nothing can be late for it.
    config.idle_timeout = std::time::Duration::ZERO;
    let p = producer(&broker.brokers);
    // One event every 10 minutes: ERP over days 0..10, logistics over days 5..10 (720).
    let beats = |prefix: &str, from_day: i64| -> Vec<(&'static str, Option<Vec<u8>>)> {
        (0..(10 - from_day) * 144)
            .map(|i| {
                let hb = heartbeat(
                    &format!("{prefix}{i}"),
                    T0 + from_day * DAY_MS + i * 10 * MIN_MS,
                );
                ("k", Some(hb.to_string().into_bytes()))
            })
            .collect()
    };
    let erp = beats("e", 0);
    let logistics = beats("l", 5);
    let total = (erp.len() + logistics.len()) as u64;
    // tansu does not create topics on produce; chainwatch would, at start.
    chainwatch::ingest::kafka::ensure_topics(&config.kafka, &broker.brokers)
        .await
        .expect("topics created");
    produce_keyed(&p, "backlog.logistics", &logistics).await;
    produce_keyed(&p, "backlog.erp", &erp).await;

    let running = start(config).await;
    let base = format!("http://{}", running.http_addr);
    let mut max_buffered = 0.0f64;
    let mut max_paused = 0.0f64;
    let mut trace = Vec::new();
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let m = get_text(&base, "/metrics").await;
        max_buffered =
            max_buffered.max(sample(&m, "chainwatch_state_buffered_events", &[]).unwrap_or(0.0));
        max_paused =
            max_paused.max(sample(&m, "chainwatch_ingest_paused_partitions", &[]).unwrap_or(0.0));
        let s = get_json(&base, "/api/status").await;
        trace.push(format!(
            "{:>6} ms wm {:?} buf {:?} paused {:?} applied {} lag {} clocks {:?}",
            started.elapsed().as_millis(),
            sample(&m, "chainwatch_state_watermark_seconds", &[])
                .map(|w| (w * 1000.0 - T0 as f64) / DAY_MS as f64),
            sample(&m, "chainwatch_state_buffered_events", &[]),
            sample(&m, "chainwatch_ingest_paused_partitions", &[]),
            s["records_applied"],
            s["lag"],
            m.lines()
                .filter(
                    |l| l.starts_with("chainwatch_ingest_partition_event_time_seconds{")
                        || l.starts_with("chainwatch_ingest_partition_idle{")
                )
                .map(|l| l
                    .replace("chainwatch_ingest_partition_", "")
                    .replace("event_time_seconds", "t"))
                .collect::<Vec<_>>()
        ));
        // All read; the last step stays open (nothing after it), so not all are applied.
        if s["lag"].as_i64() == Some(0) && s["records_applied"].as_u64().unwrap_or(0) > total - 20 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog not read within 120 s: {s:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let s = get_json(&base, "/api/status").await;
    let m = get_text(&base, "/metrics").await;
    running.shutdown().await;
    eprintln!("backlog: buffer up to {max_buffered} events, up to {max_paused} paused");
    assert!(
        max_paused >= 1.0,
        "logistics was never paused while five days ahead"
    );
    assert_eq!(
        sample(&m, "chainwatch_ingest_paused_partitions", &[]),
        Some(0.0),
        "still paused after the backlog was read"
    );
    assert_eq!(s["records_dead_lettered"].as_u64(), Some(0), "{s:#}");
    assert_eq!(s["duplicates"].as_u64(), Some(0), "{s:#}");
    // Logistics, once resumed within `max_drift`, may be read whole before the next tick
    // pauses it again (720 events; 686-739 measured). What must not happen is ERP's backlog
    // piling up behind a watermark that waits: for a stopped one (the tick starved by the
    // backlog), and under load for logistics' first event when ERP's fetched backlog was read
    // before it (1,453 buffered; a batch that starts a partition's clock now aligns at once).
    if max_buffered >= 1000.0 {
        eprintln!("{}", trace.join("\n"));
    }
    assert!(
        max_buffered < 1000.0,
        "the buffer reached {max_buffered} events: ERP's backlog piled up behind the watermark"
    );
}
