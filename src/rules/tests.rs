//! Tests of loading and validating rule files: one per kind of error, with exact messages and
//! positions, loading from directories, [`check_against`], and the golden fixtures in
//! `tests/fixtures/rules/` (`*.good.yaml` load; `*.bad.yaml` fail with the text of `*.bad.yaml.err`).

use super::*;

/// One valid rule. Lines: 4 alert, 5 indicator, 6 value, 7 op, 8 warning, 9 critical,
/// 10 reason_code, 11 annotations, 12 summary; keys start at column 9.
const VALID: &str = r#"groups:
  - name: g
    rules:
      - alert: A
        indicator: i
        value: v
        op: "<"
        warning: 0.9
        critical: 0.75
        reason_code: r
        annotations:
          summary: s
"#;

/// The error lines for `text` read as `r.yaml`.
fn errors(text: &str) -> Vec<String> {
    match parse_str(Path::new("r.yaml"), text) {
        Ok(set) => panic!("expected errors, got {set:?}"),
        Err(errs) => errs.to_string().lines().map(str::to_string).collect(),
    }
}

/// The errors of [`VALID`] with one line replaced (`by` may hold several lines or none); the
/// first new line keeps the old line's indentation (and `- `), the others are indented 8.
fn with(line: &str, by: &str) -> Vec<String> {
    let mut text = String::new();
    let mut found = false;
    for old in VALID.lines() {
        let content = old.trim_start().trim_start_matches("- ");
        if content == line.trim_start() && !found {
            found = true;
            let prefix = &old[..old.len() - content.len()];
            let mut lines = by.lines();
            text.push_str(prefix);
            text.push_str(lines.next().unwrap_or("").trim_start());
            text.push('\n');
            for l in lines {
                text.push_str(&format!("        {l}\n"));
            }
        } else {
            text.push_str(old);
            text.push('\n');
        }
    }
    assert!(found, "no line {line:?}");
    errors(&text)
}

#[test]
fn valid_rule_is_loaded_with_positions() {
    let set = parse_str(Path::new("r.yaml"), VALID).unwrap();
    let rule = set.get("A").unwrap();
    assert_eq!(rule.op, Op::Lt);
    assert_eq!((rule.warning, rule.critical), (Some(0.9), Some(0.75)));
    assert_eq!(
        (rule.for_, rule.keep_firing_for),
        (Duration::ZERO, Duration::ZERO)
    );
    assert_eq!(rule.location.to_string(), "r.yaml:4:9");
    assert_eq!(rule.field_locations.indicator.to_string(), "r.yaml:5:20");
    assert_eq!(rule.field_locations.value.to_string(), "r.yaml:6:16");
    assert_eq!(set.groups[0].file, PathBuf::from("r.yaml"));
}

#[test]
fn durations_labels_and_annotations_are_read() {
    let text = VALID.replace(
        "        reason_code: r\n",
        "        for: 1h30m\n        keep_firing_for: 2d\n        reason_code: r\n        \
         labels: {team: procurement}\n",
    );
    let set = parse_str(Path::new("r.yaml"), &text).unwrap();
    let rule = set.get("A").unwrap();
    assert_eq!(rule.for_, Duration::from_secs(5400));
    assert_eq!(rule.keep_firing_for, Duration::from_secs(2 * 86_400));
    assert_eq!(rule.labels["team"], "procurement");
    assert_eq!(rule.annotations["summary"], "s");
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        with("op: \"<\"", "op: [\"<\""),
        ["r.yaml:8:16: illegal placement of ':' indicator"]
    );
}

#[test]
fn unquoted_operator_gets_a_hint() {
    assert_eq!(
        with("op: \"<\"", "op: >="),
        [
            "r.yaml:7:13: while scanning a block scalar, did not find expected comment or line \
          break (quote values that start with > or |, such as op: \">=\")"
        ]
    );
}

#[test]
fn unknown_fields_at_every_level() {
    let text = VALID
        .replace("    rules:\n", "    interval: 1m\n    rules:\n")
        .replace("        op:", "        expr: x\n        op:")
        .replace(
            "          summary: s\n",
            "          summary: s\nversion: 2\n",
        );
    assert_eq!(
        errors(&text),
        [
            "r.yaml:3:5: group \"g\": unknown field \"interval\" (allowed: name, rules)",
            "r.yaml:8:9: group \"g\", rule \"A\": unknown field \"expr\" (allowed: alert, \
             indicator, value, op, warning, critical, for, keep_firing_for, clear, overrides, filter, baseline, \
             reason_code, labels, \
             annotations)",
            "r.yaml:15:1: unknown field \"version\" (allowed: groups)",
        ]
    );
}

#[test]
fn missing_fields_name_the_rule_by_index_when_alert_is_missing() {
    assert_eq!(
        with("alert: A", ""),
        ["r.yaml:5:9: group \"g\", rule 1: missing field alert"]
    );
    assert_eq!(
        with("value: v", ""),
        ["r.yaml:4:9: group \"g\", rule \"A\": missing field value"]
    );
    assert_eq!(
        errors("groups:\n  - rules: []\n  - name: h\n"),
        [
            "r.yaml:2:5: group 1: missing field name",
            "r.yaml:3:5: group \"h\": missing field rules",
        ]
    );
    assert_eq!(errors("{}\n"), ["r.yaml:1:1: missing field groups"]);
}

#[test]
fn wrong_types() {
    assert_eq!(
        with("warning: 0.9", "warning: \"0.9\""),
        ["r.yaml:8:18: group \"g\", rule \"A\": warning must be a number, got a string"]
    );
    assert_eq!(
        with("alert: A", "alert: 12"),
        ["r.yaml:4:16: group \"g\", rule 1: alert must be a string, got an integer"]
    );
    assert_eq!(
        with("reason_code: r", "reason_code: r\nlabels: [team]\nfor: 1.5"),
        [
            "r.yaml:11:17: group \"g\", rule \"A\": labels must be a mapping, got a sequence",
            "r.yaml:12:14: group \"g\", rule \"A\": for must be a duration such as 15m, got a number",
        ]
    );
    assert_eq!(
        errors("groups: {name: g}\n"),
        ["r.yaml:1:9: groups must be a sequence, got a mapping"]
    );
}

#[test]
fn duplicate_keys() {
    assert_eq!(
        with("op: \"<\"", "op: \"<\"\nop: \">\""),
        ["r.yaml:8:9: group \"g\", rule \"A\": duplicate field \"op\""]
    );
}

#[test]
fn alert_name_must_be_camel_case() {
    assert_eq!(
        with("alert: A", "alert: supplier_late"),
        ["r.yaml:4:16: group \"g\", rule \"supplier_late\": alert name \"supplier_late\" is not \
          CamelCase (like SupplierDeliveriesLate)"]
    );
}

#[test]
fn group_names_are_unique_per_file() {
    let text = format!("{VALID}  - name: g\n    rules: []\n");
    assert_eq!(
        errors(&text),
        ["r.yaml:13:11: group \"g\": duplicate group name (first defined at line 2, column 11)"]
    );
}

#[test]
fn alert_names_are_unique_across_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), VALID).unwrap();
    std::fs::write(
        dir.path().join("b.yml"),
        VALID.replace("name: g", "name: h"),
    )
    .unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yml");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:4:16: group \"h\", rule \"A\": duplicate alert name (first defined at {}:4:16)",
            b.display(),
            a.display()
        )
    );
}

#[test]
fn op_must_be_a_comparison() {
    assert_eq!(
        with("op: \"<\"", "op: \"=\""),
        ["r.yaml:7:13: group \"g\", rule \"A\": op \"=\" is not one of <, <=, >, >="]
    );
}

#[test]
fn thresholds_must_be_finite() {
    assert_eq!(
        with("critical: 0.75", "critical: -.inf"),
        ["r.yaml:9:19: group \"g\", rule \"A\": critical must be a finite number, got -inf"]
    );
    assert_eq!(
        with("warning: 0.9", "warning: .NaN"),
        ["r.yaml:8:18: group \"g\", rule \"A\": warning must be a finite number, got NaN"]
    );
}

#[test]
fn critical_must_be_beyond_warning() {
    assert_eq!(
        with("critical: 0.75", "critical: 0.95"),
        ["r.yaml:9:19: group \"g\", rule \"A\": critical (0.95) must be below warning (0.9) for \
          op \"<\""]
    );
    assert_eq!(
        with("op: \"<\"", "op: \">=\""),
        ["r.yaml:9:19: group \"g\", rule \"A\": critical (0.75) must be above warning (0.9) for \
          op \">=\""]
    );
}

#[test]
fn one_threshold_is_required() {
    let text = VALID.replace(
        "        warning: 0.9\n        critical: 0.75\n",
        "        warning: ~\n",
    );
    assert_eq!(
        errors(&text),
        ["r.yaml:4:9: group \"g\", rule \"A\": at least one of warning or critical is required"]
    );
    let only_critical = VALID.replace("        warning: 0.9\n", "");
    assert!(parse_str(Path::new("r.yaml"), &only_critical).is_ok());
}

#[test]
fn durations_must_parse_and_not_be_negative() {
    assert_eq!(
        with(
            "reason_code: r",
            "reason_code: r\nfor: 6x\nkeep_firing_for: -5m"
        ),
        [
            "r.yaml:11:14: group \"g\", rule \"A\": for \"6x\" is not a valid duration: unknown \
             time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, \
             months, years (and few variations)",
            "r.yaml:12:26: group \"g\", rule \"A\": keep_firing_for \"-5m\" must be >= 0",
        ]
    );
    assert_eq!(
        with("reason_code: r", "reason_code: r\nfor: 90"),
        [
            "r.yaml:11:14: group \"g\", rule \"A\": for \"90\" is not a valid duration: time unit \
          needed, for example 90sec or 90ms"
        ]
    );
}

#[test]
fn label_names_must_be_valid_and_not_reserved() {
    assert_eq!(
        with(
            "reason_code: r",
            "reason_code: r\nlabels:\n  team-name: x\n  severity: high\n  alertname: y\n  tier: 1"
        ),
        [
            "r.yaml:12:11: group \"g\", rule \"A\": label name \"team-name\" is invalid (must \
             match [a-zA-Z_][a-zA-Z0-9_]*)",
            "r.yaml:13:11: group \"g\", rule \"A\": label name \"severity\" is reserved",
            "r.yaml:14:11: group \"g\", rule \"A\": label name \"alertname\" is reserved",
            "r.yaml:15:17: group \"g\", rule \"A\": label \"tier\" must be a string, got an integer",
        ]
    );
}

#[test]
fn annotation_templates_must_compile() {
    assert_eq!(
        with("  summary: s", "  summary: \"{{ value | percent }\""),
        ["r.yaml:12:20: group \"g\", rule \"A\": annotation \"summary\": template error: syntax \
          error: unexpected `}`, expected end of variable block (in summary:1)"]
    );
    assert_eq!(
        with("  summary: s", "  summary: \"{{ value | pct }}\""),
        ["r.yaml:12:20: group \"g\", rule \"A\": annotation \"summary\": template error: unknown \
          filter: filter pct is unknown (in summary:1)"]
    );
}

#[test]
fn summary_annotation_is_required() {
    assert_eq!(
        with("  summary: s", "  description: d"),
        ["r.yaml:11:9: group \"g\", rule \"A\": missing annotation summary"]
    );
    assert_eq!(
        with("  summary: s", ""),
        ["r.yaml:11:9: group \"g\", rule \"A\": missing annotation summary"]
    );
    let text = VALID.replace("        annotations:\n          summary: s\n", "");
    assert_eq!(
        errors(&text),
        ["r.yaml:4:9: group \"g\", rule \"A\": missing field annotations"]
    );
}

#[test]
fn reason_code_must_be_snake_case() {
    assert_eq!(
        with("reason_code: r", "reason_code: SupplierLate"),
        ["r.yaml:10:22: group \"g\", rule \"A\": reason_code \"SupplierLate\" is not snake_case \
          (like supplier_late_deliveries)"]
    );
}

#[test]
fn every_error_is_collected_and_sorted() {
    let text = VALID
        .replace("op: \"<\"", "op: \"=\"")
        .replace("reason_code: r", "reason_code: R")
        .replace("alert: A", "alert: a");
    let found = errors(&format!("{text}  - name: g\n    rules: [x]\n"));
    let positions: Vec<&str> = found
        .iter()
        .map(|l| l.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        positions,
        [
            "r.yaml:4:16",
            "r.yaml:7:13",
            "r.yaml:10:22",
            "r.yaml:13:11",
            "r.yaml:14:13"
        ]
    );
}

#[test]
fn load_dir_reads_yaml_files_only_and_not_subdirectories() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), VALID).unwrap();
    std::fs::write(
        dir.path().join("b.yml"),
        VALID.replace("alert: A", "alert: B"),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
    std::fs::create_dir(dir.path().join("indicators")).unwrap();
    std::fs::write(dir.path().join("indicators/c.yaml"), "broken: [").unwrap();
    let set = load_dir(dir.path()).unwrap();
    let names: Vec<&str> = set.rules().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["A", "B"]);
    let again = load_paths(&[dir.path().to_path_buf(), dir.path().join("a.yaml")]).unwrap();
    assert_eq!(again.rules().count(), 2, "a path given twice is read once");
}

#[test]
fn load_paths_reports_unreadable_paths_and_errors_of_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, VALID.replace("op: \"<\"", "op: \"=\"")).unwrap();
    let missing = dir.path().join("missing.yaml");
    let err = load_paths(&[missing.clone(), bad.clone()]).unwrap_err();
    assert_eq!(err.len(), 2);
    assert_eq!(
        err.errors[0].to_string(),
        format!(
            "{}:7:13: group \"g\", rule \"A\": op \"=\" is not one of <, <=, >, >=",
            bad.display()
        )
    );
    assert_eq!(
        err.errors[1].to_string(),
        format!(
            "{}: cannot read: no such file or directory (os error 2)",
            missing.display()
        )
    );
}

fn schema(labels: &[&str], values: &[&str]) -> IndicatorSchema {
    IndicatorSchema {
        labels: labels.iter().map(|s| s.to_string()).collect(),
        values: values.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn check_against_planned_indicators() {
    let text = VALID.replace(
        "        reason_code: r\n",
        "        reason_code: r\n        labels: {supplier: x}\n",
    );
    let set = parse_str(Path::new("r.yaml"), &text).unwrap();
    let good = BTreeMap::from([("i".to_string(), schema(&["part"], &["v", "w"]))]);
    assert_eq!(check_against(&set, &good), Ok(()));

    let other = BTreeMap::from([("j".to_string(), schema(&[], &[]))]);
    assert_eq!(
        check_against(&set, &other).unwrap_err().to_string(),
        "r.yaml:5:20: group \"g\", rule \"A\": unknown indicator \"i\" (known: j)"
    );
    let wrong = BTreeMap::from([("i".to_string(), schema(&["supplier", "severity"], &["w"]))]);
    assert_eq!(
        check_against(&set, &wrong).unwrap_err().to_string(),
        "r.yaml:4:9: group \"g\", rule \"A\": static label \"supplier\" collides with a label \
         column of indicator \"i\"\n\
         r.yaml:5:20: group \"g\", rule \"A\": label column \"severity\" of indicator \"i\" \
         clashes with the alert label of that name\n\
         r.yaml:6:16: group \"g\", rule \"A\": indicator \"i\" has no numeric column \"v\" \
         (numeric columns: w)"
    );
    let label_value = BTreeMap::from([("i".to_string(), schema(&["v"], &[]))]);
    assert_eq!(
        check_against(&set, &label_value).unwrap_err().to_string(),
        "r.yaml:6:16: group \"g\", rule \"A\": value \"v\" is a label column of indicator \"i\", \
         not a numeric one (numeric columns: none)"
    );
}

#[test]
fn override_labels_are_checked_against_the_indicator() {
    let text = VALID.replace(
        "        reason_code: r\n",
        "        reason_code: r\n        overrides:\n          - match: {part: P1, tier: \"2\"}\n            warning: 5\n",
    );
    let set = parse_str(Path::new("r.yaml"), &text).unwrap();
    let indicators = BTreeMap::from([("i".to_string(), schema(&["part"], &["v"]))]);
    assert_eq!(
        check_against(&set, &indicators).unwrap_err().to_string(),
        "r.yaml:12:31: group \"g\", rule \"A\": override matches label \"tier\", which \
         indicator \"i\" does not have (labels: part)"
    );
}

#[test]
fn location_and_error_display() {
    let location = Location {
        file: "rules/x.yaml".into(),
        line: 0,
        col: 0,
    };
    assert_eq!(location.to_string(), "rules/x.yaml");
    let err = RuleError {
        location: Location {
            line: 3,
            col: 5,
            ..location
        },
        context: String::new(),
        message: "m".into(),
    };
    assert_eq!(err.to_string(), "rules/x.yaml:3:5: m");
    assert!(RuleErrors::default().is_empty());
}

/// Golden fixtures; set `CHAINWATCH_BLESS=1` to rewrite the `.err` files after a deliberate change.
#[test]
fn golden_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    let bless = std::env::var_os("CHAINWATCH_BLESS").is_some();
    let (mut good, mut bad) = (0, 0);
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        let shown = Path::new("tests/fixtures/rules").join(&name);
        let result = parse_str(&shown, &text);
        if name.ends_with(".good.yaml") {
            if let Err(errs) = result {
                panic!("{name} should load:\n{errs}");
            }
            good += 1;
        } else if name.ends_with(".bad.yaml") {
            let errs = match result {
                Ok(_) => panic!("{name} should fail"),
                Err(errs) => errs.to_string(),
            };
            let err_path = dir.join(format!("{name}.err"));
            if bless {
                std::fs::write(&err_path, format!("{errs}\n")).unwrap();
            }
            let expected = std::fs::read_to_string(&err_path)
                .unwrap_or_else(|e| panic!("{name} needs {}: {e}", err_path.display()));
            assert_eq!(errs, expected.trim_end(), "{name}");
            bad += 1;
        }
    }
    assert!(
        good >= 3 && bad >= 5,
        "fixtures missing: {good} good, {bad} bad"
    );
}

#[test]
fn filter_labels_are_checked_against_the_indicator() {
    let text = VALID.replace(
        "        reason_code: r\n",
        "        reason_code: r\n        filter:\n          match: {depth: [\"1\", \"2\"]}\n",
    );
    let set = parse_str(Path::new("r.yaml"), &text).unwrap();
    let rule = set.rules().next().expect("a rule");
    let row = |depth: &str| BTreeMap::from([("depth".to_string(), depth.to_string())]);
    assert!(rule.selects(&row("2")) && !rule.selects(&row("3")));
    let indicators = BTreeMap::from([("i".to_string(), schema(&["part"], &["v"]))]);
    assert_eq!(
        check_against(&set, &indicators).unwrap_err().to_string(),
        "r.yaml:12:19: group \"g\", rule \"A\": filter matches label \"depth\", which \
         indicator \"i\" does not have (labels: part)"
    );
}
