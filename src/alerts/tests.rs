use super::*;
use crate::rules::{FieldLocations, Location, Op, RuleGroup};
use std::time::Duration;

const MIN: i64 = 60_000;

/// `Late`: supplier_delivery.on_time_ratio < 0.9 warning, < 0.75 critical.
fn rule(name: &str, for_min: u64, keep_min: u64) -> AlertRule {
    AlertRule {
        name: name.to_string(),
        indicator: "supplier_delivery".to_string(),
        value: "on_time_ratio".to_string(),
        op: Op::Lt,
        warning: Some(0.9),
        critical: Some(0.75),
        clear: None,
        overrides: Vec::new(),
        filter: Vec::new(),
        filter_locations: Vec::new(),
        baseline: None,
        for_: Duration::from_secs(60 * for_min),
        keep_firing_for: Duration::from_secs(60 * keep_min),
        reason_code: "supplier_late_deliveries".to_string(),
        labels: BTreeMap::from([("team".to_string(), "procurement".to_string())]),
        annotations: BTreeMap::from([(
            "summary".to_string(),
            "{{ labels.supplier }} {{ value | percent }}".to_string(),
        )]),
        location: Location::default(),
        field_locations: FieldLocations::default(),
    }
}

fn set(rules: Vec<AlertRule>) -> RuleSet {
    RuleSet {
        groups: vec![RuleGroup {
            name: "g".to_string(),
            file: "r.yaml".into(),
            rules,
        }],
    }
}

fn engine(for_min: u64, keep_min: u64) -> AlertEngine {
    AlertEngine::new(&set(vec![rule("Late", for_min, keep_min)]))
}

fn sample(supplier: &str, value: Option<f64>) -> Sample<'static> {
    // Leaked: a test's handful of rows outlive the engine that reads them.
    Sample {
        labels: Box::leak(Box::new(BTreeMap::from([(
            "supplier".to_string(),
            supplier.to_string(),
        )]))),
        value,
        row: RowRef::Json(Box::leak(Box::new(BTreeMap::from([(
            "open_late_lines".to_string(),
            serde_json::json!(7),
        )])))),
    }
}

fn eval(e: &mut AlertEngine, value: Option<f64>, now: i64) {
    e.evaluate("Late", &[sample("S1", value)], now).unwrap();
}

/// (state, severity) of the only alert, or None.
fn only(e: &AlertEngine) -> Option<(AlertState, Severity)> {
    let alerts = e.alerts();
    assert!(alerts.len() <= 1, "{alerts:?}");
    alerts.first().map(|a| (a.state, a.severity))
}

#[test]
fn pending_becomes_firing_after_for() {
    let mut e = engine(10, 0);
    eval(&mut e, Some(0.8), 0);
    assert_eq!(only(&e), Some((AlertState::Pending, Severity::Warning)));
    eval(&mut e, Some(0.8), 9 * MIN);
    assert_eq!(only(&e), Some((AlertState::Pending, Severity::Warning)));
    eval(&mut e, Some(0.8), 10 * MIN);
    let a = &e.alerts()[0];
    assert_eq!(
        (a.state, a.active_at, a.fired_at),
        (AlertState::Firing, 0, Some(10 * MIN))
    );
    assert_eq!(a.last_evaluated, 10 * MIN);
}

#[test]
fn for_zero_fires_on_first_evaluation() {
    let mut e = engine(0, 0);
    eval(&mut e, Some(0.8), 5);
    let a = &e.alerts()[0];
    assert_eq!(
        (a.state, a.active_at, a.fired_at),
        (AlertState::Firing, 5, Some(5))
    );
}

#[test]
fn labels_combine_sample_static_and_engine_labels() {
    let mut e = engine(0, 0);
    eval(&mut e, Some(0.8), 0);
    let labels = &e.alerts()[0].labels;
    let expected = [
        ("alertname", "Late"),
        ("reason_code", "supplier_late_deliveries"),
        ("severity", "warning"),
        ("supplier", "S1"),
        ("team", "procurement"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(labels, &BTreeMap::from(expected));
}

#[test]
fn escalates_and_de_escalates_in_place() {
    let mut e = engine(10, 0);
    eval(&mut e, Some(0.8), 0);
    eval(&mut e, Some(0.7), 5 * MIN);
    let a = &e.alerts()[0];
    assert_eq!(
        (a.state, a.severity, a.threshold),
        (AlertState::Pending, Severity::Critical, 0.75)
    );
    assert_eq!(
        (a.active_at, a.labels["severity"].as_str()),
        (0, "critical")
    );
    eval(&mut e, Some(0.7), 10 * MIN);
    eval(&mut e, Some(0.85), 11 * MIN);
    let alerts = e.alerts();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(
        (a.state, a.severity, a.threshold, a.value),
        (AlertState::Firing, Severity::Warning, 0.9, 0.85)
    );
    assert_eq!(
        (a.active_at, a.fired_at, a.labels["severity"].as_str()),
        (0, Some(10 * MIN), "warning")
    );
}

#[test]
fn only_critical_threshold() {
    let mut r = rule("Late", 0, 0);
    r.warning = None;
    let mut e = AlertEngine::new(&set(vec![r]));
    eval(&mut e, Some(0.8), 0);
    assert_eq!(only(&e), None);
    eval(&mut e, Some(0.5), MIN);
    assert_eq!(only(&e), Some((AlertState::Firing, Severity::Critical)));
}

#[test]
fn resolves_then_keeps_resolved_alert_fifteen_minutes() {
    let mut e = engine(0, 0);
    eval(&mut e, Some(0.8), 0);
    eval(&mut e, Some(0.95), MIN);
    let a = &e.alerts()[0];
    assert_eq!(
        (a.state, a.resolved_at, a.value),
        (AlertState::Resolved, Some(MIN), 0.8)
    );
    e.evaluate("Late", &[], 15 * MIN).unwrap();
    assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
    assert_eq!(e.alerts()[0].last_evaluated, 15 * MIN);
    e.evaluate("Late", &[], 16 * MIN).unwrap();
    assert_eq!(only(&e), None);
}

#[test]
fn resolved_alert_whose_condition_returns_starts_pending_again() {
    let mut e = engine(5, 0);
    eval(&mut e, Some(0.8), 0);
    eval(&mut e, Some(0.8), 5 * MIN);
    eval(&mut e, Some(0.95), 6 * MIN);
    assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
    eval(&mut e, Some(0.8), 7 * MIN);
    let a = &e.alerts()[0];
    assert_eq!(
        (a.state, a.active_at, a.fired_at, a.resolved_at),
        (AlertState::Pending, 7 * MIN, None, None)
    );
}

#[test]
fn keep_firing_for_holds_a_firing_alert() {
    let mut e = engine(0, 5);
    eval(&mut e, Some(0.8), 0);
    eval(&mut e, Some(0.95), MIN);
    e.evaluate("Late", &[], 4 * MIN).unwrap();
    assert_eq!(only(&e), Some((AlertState::Firing, Severity::Warning)));
    eval(&mut e, Some(0.95), 5 * MIN);
    let a = &e.alerts()[0];
    assert_eq!(
        (a.state, a.resolved_at),
        (AlertState::Resolved, Some(5 * MIN))
    );
}

#[test]
fn pending_alert_is_dropped_when_false_or_absent() {
    let mut e = engine(10, 5);
    eval(&mut e, Some(0.8), 0);
    eval(&mut e, Some(0.95), MIN);
    assert_eq!(only(&e), None);
    eval(&mut e, Some(0.8), 2 * MIN);
    e.evaluate("Late", &[sample("S2", Some(0.99))], 3 * MIN)
        .unwrap();
    assert_eq!(only(&e), None);
}

#[test]
fn none_and_nan_values_are_false() {
    let mut e = engine(0, 0);
    eval(&mut e, None, 0);
    eval(&mut e, Some(f64::NAN), MIN);
    assert_eq!(only(&e), None);
    eval(&mut e, Some(0.8), 2 * MIN);
    eval(&mut e, Some(f64::NAN), 3 * MIN);
    assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
}

#[test]
fn rows_that_meet_no_threshold_are_skipped_but_still_checked() {
    // Duplicates among rows that alert on nothing are still reported.
    let mut e = engine(0, 0);
    let quiet = [sample("S1", Some(0.99)), sample("S1", Some(0.98))];
    let err = e.evaluate("Late", &quiet, 0).unwrap_err();
    assert!(err.to_string().contains("supplier=\"S1\""), "{err}");
    assert!(e.alerts().is_empty());
    // A firing alert whose row is back between warning and clear keeps firing: the row is
    // not skipped although it meets no threshold by itself.
    let mut r = rule("Late", 0, 0);
    r.clear = Some(0.95);
    let mut e = AlertEngine::new(&set(vec![r]));
    e.evaluate("Late", &[sample("S1", Some(0.8))], 0).unwrap();
    e.evaluate(
        "Late",
        &[sample("S1", Some(0.92)), sample("S2", Some(0.99))],
        MIN,
    )
    .unwrap();
    assert_eq!(only(&e), Some((AlertState::Firing, Severity::Warning)));
    e.evaluate("Late", &[sample("S1", Some(0.97))], 2 * MIN)
        .unwrap();
    assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
}

#[test]
fn duplicate_label_sets_are_an_error_for_those_samples_only() {
    let mut e = engine(0, 0);
    eval(&mut e, Some(0.8), 0);
    let samples = [
        sample("S1", Some(0.1)),
        sample("S1", Some(0.99)),
        sample("S2", Some(0.8)),
    ];
    let err = e.evaluate("Late", &samples, MIN).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule \"Late\": several samples share a label set, skipped: {alertname=\"Late\", \
         reason_code=\"supplier_late_deliveries\", supplier=\"S1\", team=\"procurement\"}"
    );
    let alerts = e.alerts();
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        (
            alerts[0].labels["supplier"].as_str(),
            alerts[0].last_evaluated
        ),
        ("S1", 0)
    );
    assert_eq!(
        (alerts[0].state, alerts[0].value),
        (AlertState::Firing, 0.8)
    );
    assert_eq!(
        (alerts[1].labels["supplier"].as_str(), alerts[1].state),
        ("S2", AlertState::Firing)
    );
}

#[test]
fn unknown_rule_is_an_error() {
    let mut e = engine(0, 0);
    let err = e.evaluate("Nope", &[], 0).unwrap_err();
    assert_eq!(
        err,
        AlertError::UnknownRule {
            rule: "Nope".to_string()
        }
    );
}

#[test]
fn annotations_follow_every_input_though_unchanged_ones_are_not_rendered_again() {
    let mut r = rule("Late", 0, 0);
    r.annotations = BTreeMap::from([(
        "summary".to_string(),
        "{{ value | percent }}, {{ row.open_late_lines }} late".to_string(),
    )]);
    let mut e = AlertEngine::new(&set(vec![r]));
    let summary = |e: &AlertEngine| e.alerts()[0].annotations["summary"].clone();
    let row = |n: i64| BTreeMap::from([("open_late_lines".to_string(), serde_json::json!(n))]);
    let (seven, eight) = (row(7), row(8));
    let at = |value: f64, row: &BTreeMap<String, serde_json::Value>| Sample {
        row: RowRef::Json(Box::leak(Box::new(row.clone()))),
        ..sample("S1", Some(value))
    };
    e.evaluate("Late", &[at(0.8, &seven)], 0).unwrap();
    assert_eq!(summary(&e), "80%, 7 late");
    e.evaluate("Late", &[at(0.8, &seven)], MIN).unwrap();
    assert_eq!(summary(&e), "80%, 7 late");
    // Only a column the value does not show changed: rendered again.
    e.evaluate("Late", &[at(0.8, &eight)], 2 * MIN).unwrap();
    assert_eq!(summary(&e), "80%, 8 late");
    e.evaluate("Late", &[at(0.7, &eight)], 3 * MIN).unwrap();
    assert_eq!(summary(&e), "70%, 8 late");
}

#[test]
fn annotations_render_value_threshold_row_and_labels() {
    let mut r = rule("Late", 0, 0);
    r.annotations = BTreeMap::from([
        ("summary".to_string(), "{{ alertname }} {{ labels.supplier }} {{ value | percent }} < {{ threshold | percent }} ({{ severity }}, {{ indicator }})".to_string()),
        ("description".to_string(), "{{ row.open_late_lines }} late lines since {{ active_at }}; {{ row.lead_days | days }}, {{ value | round(2) }}".to_string()),
    ]);
    let mut e = AlertEngine::new(&set(vec![r]));
    let mut s = sample("S1", Some(0.7312));
    let mut row = s.row.json().into_owned();
    row.insert("lead_days".to_string(), serde_json::json!(3.24));
    s.row = RowRef::Json(&row);
    e.evaluate("Late", &[s], 1_709_272_800_000).unwrap();
    let a = &e.alerts()[0];
    assert_eq!(
        a.annotations["summary"],
        "Late S1 73.1% < 75% (critical, supplier_delivery)"
    );
    assert_eq!(
        a.annotations["description"],
        "7 late lines since 2024-03-01T06:00:00Z; 3.2 days, 0.73"
    );
}

#[test]
fn render_errors_fall_back_to_the_template_text() {
    let mut r = rule("Late", 0, 0);
    r.annotations = BTreeMap::from([
        (
            "summary".to_string(),
            "{{ row.missing | percent }}".to_string(),
        ),
        (
            "description".to_string(),
            "{{ value | percent }".to_string(),
        ),
    ]);
    let mut e = AlertEngine::new(&set(vec![r]));
    eval(&mut e, Some(0.8), 0);
    let a = &e.alerts()[0];
    assert!(
        a.annotations["summary"].starts_with("{{ row.missing | percent }} (template error: "),
        "{}",
        a.annotations["summary"]
    );
    assert!(
        a.annotations["description"]
            .starts_with("{{ value | percent } (template error: syntax error"),
        "{}",
        a.annotations["description"]
    );
}

#[test]
fn set_rules_keeps_state_of_unchanged_rules_only() {
    let mut e = AlertEngine::new(&set(vec![
        rule("Late", 0, 0),
        rule("Other", 0, 0),
        rule("Gone", 0, 0),
    ]));
    for name in ["Late", "Other", "Gone"] {
        e.evaluate(name, &[sample("S1", Some(0.8))], 0).unwrap();
    }
    let mut moved = rule("Late", 0, 0);
    moved.location.line = 40;
    let mut changed = rule("Other", 0, 0);
    changed.warning = Some(0.95);
    e.set_rules(&set(vec![moved, changed]));
    let alerts = e.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].rule.as_str(), alerts[0].state),
        ("Late", AlertState::Firing)
    );
    assert_eq!(e.rule("Other").and_then(|r| r.warning), Some(0.95));
    assert!(e.evaluate("Gone", &[], MIN).is_err());
}

#[test]
fn alerts_are_sorted_by_rule_then_labels() {
    let mut e = AlertEngine::new(&set(vec![rule("B", 0, 0), rule("A", 0, 0)]));
    let samples = [sample("S2", Some(0.8)), sample("S1", Some(0.8))];
    e.evaluate("B", &samples, 0).unwrap();
    e.evaluate("A", &samples, 0).unwrap();
    let order: Vec<_> = e
        .alerts()
        .iter()
        .map(|a| format!("{}/{}", a.rule, a.labels["supplier"]))
        .collect();
    assert_eq!(order, ["A/S1", "A/S2", "B/S1", "B/S2"]);
}

#[test]
fn example_rule_file_renders_its_summary() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rules/supplier_delivery.good.yaml");
    let rules = crate::rules::load_paths(&[path]).unwrap();
    let mut e = AlertEngine::new(&rules);
    let s = sample("S1", Some(0.873));
    e.evaluate("SupplierOnTimeRatioLow", &[s], 0).unwrap();
    let a = &e.alerts()[0];
    assert_eq!(a.state, AlertState::Pending, "for: 6h");
    assert_eq!(
        a.annotations["summary"],
        "Supplier S1 delivered 87.3% on time over 30 days (threshold 90%)."
    );
    assert_eq!(
        a.annotations["description"],
        "7 open lines are late; active since 1970-01-01T00:00:00Z."
    );
}

/// A rule set parsed from YAML, as users write it.
fn parsed(yaml: &str) -> RuleSet {
    crate::rules::parse_str(std::path::Path::new("t.yaml"), yaml).unwrap()
}

const HYSTERESIS: &str = "groups:\n- name: g\n  rules:\n  - alert: Late\n    indicator: supplier_delivery\n    value: on_time_ratio\n    op: '<'\n    warning: 0.85\n    critical: 0.7\n    clear: 0.9\n    reason_code: late\n    annotations: {summary: 'clear at {{ thresholds.clear }}'}\n";

#[test]
fn clear_threshold_keeps_a_firing_alert_until_the_value_is_back_beyond_it() {
    let mut e = AlertEngine::new(&parsed(HYSTERESIS));
    eval(&mut e, Some(0.6), 0);
    assert_eq!(only(&e), Some((AlertState::Firing, Severity::Critical)));
    // Between warning and clear: still firing, de-escalated to warning.
    eval(&mut e, Some(0.87), MIN);
    assert_eq!(only(&e), Some((AlertState::Firing, Severity::Warning)));
    let alert = &e.alerts()[0];
    assert_eq!((alert.value, alert.threshold), (0.87, 0.85));
    assert_eq!(alert.annotations["summary"], "clear at 0.9");
    eval(&mut e, Some(0.89), 2 * MIN);
    assert_eq!(only(&e), Some((AlertState::Firing, Severity::Warning)));
    // Back beyond clear: resolved.
    eval(&mut e, Some(0.9), 3 * MIN);
    assert_eq!(only(&e), Some((AlertState::Resolved, Severity::Warning)));
    // The band alone never starts an alert.
    eval(&mut e, Some(0.87), 20 * MIN);
    assert_eq!(only(&e), None);
}

const OVERRIDES: &str = "groups:\n- name: g\n  rules:\n  - alert: Late\n    indicator: supplier_delivery\n    value: on_time_ratio\n    op: '<'\n    warning: 0.85\n    critical: 0.7\n    reason_code: late\n    overrides:\n    - match: {supplier: [S-STRATEGIC, S-KEY]}\n      warning: 0.95\n      critical: 0.9\n    - match_re: {supplier: 'T2-.*'}\n      warning: 0.75\n    annotations: {summary: '{{ labels.supplier }} {{ threshold }}'}\n";

#[test]
fn overrides_pick_thresholds_by_labels_first_match_wins() {
    let mut e = AlertEngine::new(&parsed(OVERRIDES));
    let samples = [
        sample("S-STRATEGIC", Some(0.92)),
        sample("S-KEY", Some(0.89)),
        sample("T2-001", Some(0.8)),
        sample("T2-002", Some(0.72)),
        sample("S-OTHER", Some(0.8)),
        sample("XT2-003", Some(0.8)),
    ];
    e.evaluate("Late", &samples, 0).unwrap();
    let got: Vec<(String, Severity, f64)> = e
        .alerts()
        .into_iter()
        .map(|a| (a.labels["supplier"].clone(), a.severity, a.threshold))
        .collect();
    assert_eq!(
        got,
        [
            ("S-KEY".to_string(), Severity::Critical, 0.9),
            ("S-OTHER".to_string(), Severity::Warning, 0.85),
            ("S-STRATEGIC".to_string(), Severity::Warning, 0.95),
            // T2-001 at 0.8 is above its 0.75 warning; T2-002 inherits critical 0.7.
            ("T2-002".to_string(), Severity::Warning, 0.75),
            // The regex is anchored: XT2-003 gets the defaults.
            ("XT2-003".to_string(), Severity::Warning, 0.85),
        ]
    );
}

fn baseline_rule(method: &str, extra: &str) -> RuleSet {
    parsed(&format!(
        "groups:\n- name: g\n  rules:\n  - alert: Late\n    indicator: supplier_delivery\n    value: mean_delay_days\n    op: '>='\n    warning: {}\n    critical: {}\n    reason_code: late\n    baseline: {{method: {method}, window: 10h, every: 1h, min_samples: 4{extra}}}\n    annotations: {{summary: '{{{{ baseline.raw }}}} vs {{{{ baseline.mean }}}} over {{{{ baseline.samples }}}}'}}\n",
        if method == "zscore" { "2" } else { "90" },
        if method == "zscore" { "3" } else { "99" },
    ))
}

const HOUR: i64 = 60 * MIN;

#[test]
fn zscore_baseline_scores_against_the_entitys_own_history() {
    let mut e = AlertEngine::new(&baseline_rule("zscore", ""));
    // History 1, 2, 3, 2: mean 2, sample sd sqrt(2/3).
    for (i, v) in [1.0, 2.0, 3.0, 2.0].into_iter().enumerate() {
        eval(&mut e, Some(v), i as i64 * HOUR);
        assert_eq!(only(&e), None, "too few samples yet, or within range");
    }
    // Sub-hour evaluations score but do not record.
    eval(&mut e, Some(2.5), 4 * HOUR - MIN);
    assert_eq!(only(&e), None);
    let sd = (2.0f64 / 3.0).sqrt();
    eval(&mut e, Some(2.0 + 2.5 * sd), 4 * HOUR);
    let a = &e.alerts()[0];
    assert_eq!(
        (a.state, a.severity),
        (AlertState::Firing, Severity::Warning)
    );
    assert!((a.value - 2.5).abs() < 1e-9, "z = {}", a.value);
    assert_eq!(
        a.annotations["summary"],
        format!("{} vs 2.0 over 4", 2.0 + 2.5 * sd)
    );
    // An entity of its own: S2 has no history, so no score.
    e.evaluate("Late", &[sample("S2", Some(100.0))], 5 * HOUR)
        .unwrap();
    assert!(e.alerts().iter().all(|a| a.labels["supplier"] == "S1"));
}

#[test]
fn flat_history_gives_no_zscore_unless_a_floor_is_set() {
    let mut e = AlertEngine::new(&baseline_rule("zscore", ""));
    for i in 0..5 {
        eval(&mut e, Some(1.0), i * HOUR);
    }
    eval(&mut e, Some(5.0), 5 * HOUR);
    assert_eq!(only(&e), None);
    let mut e = AlertEngine::new(&baseline_rule("zscore", ", min_stddev: 0.5"));
    for i in 0..5 {
        eval(&mut e, Some(1.0), i * HOUR);
    }
    eval(&mut e, Some(5.0), 5 * HOUR);
    assert_eq!(e.alerts()[0].value, 8.0);
}

#[test]
fn percentile_baseline_and_window() {
    let mut e = AlertEngine::new(&baseline_rule("percentile", ""));
    for i in 0..10 {
        eval(&mut e, Some(i as f64), i * HOUR);
    }
    // At 10h the window [0h, 10h] holds 0..=9: 9.5 is above all of them.
    eval(&mut e, Some(9.5), 10 * HOUR);
    let a = &e.alerts()[0];
    assert_eq!((a.severity, a.value), (Severity::Critical, 100.0));
    // At 11h the 0 of 0h has left the window: 1..=9 and 9.5; 9 of those 10 are <= 9.2.
    eval(&mut e, Some(9.2), 11 * HOUR);
    let a = &e.alerts()[0];
    assert_eq!((a.severity, a.value), (Severity::Warning, 90.0));
}

#[test]
fn baseline_history_survives_a_reload_of_an_unchanged_rule_only() {
    let rules = baseline_rule("zscore", "");
    let mut e = AlertEngine::new(&rules);
    for (i, v) in [1.0, 2.0, 3.0, 2.0].into_iter().enumerate() {
        eval(&mut e, Some(v), i as i64 * HOUR);
    }
    e.set_rules(&rules);
    eval(&mut e, Some(10.0), 4 * HOUR);
    assert_eq!(only(&e).map(|(s, _)| s), Some(AlertState::Firing));
    let mut e = AlertEngine::new(&rules);
    for (i, v) in [1.0, 2.0, 3.0, 2.0].into_iter().enumerate() {
        eval(&mut e, Some(v), i as i64 * HOUR);
    }
    e.set_rules(&baseline_rule("zscore", ", min_stddev: 0.1"));
    eval(&mut e, Some(10.0), 4 * HOUR);
    assert_eq!(
        only(&e),
        None,
        "history restarted with the changed baseline"
    );
}
