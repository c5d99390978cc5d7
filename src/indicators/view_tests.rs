//! Views: queries computed once per evaluation and read by indicators like state tables.

use std::path::PathBuf;
use std::time::Duration;

use super::sandbox_tests::lines_state;
use super::*;
use crate::state::State;

/// A state with open PO lines: supplier `S<i % 3>`, quantity `i + 1`, unit price 2.
fn state_with_lines(n: usize) -> State {
    lines_state(n, 3, |i| (i + 1) as f64, 2.0)
}

/// (file, SQL) pairs.
type Files<'a> = &'a [(&'a str, &'a str)];

fn sources(files: Files) -> Vec<(PathBuf, String)> {
    files
        .iter()
        .map(|(f, s)| (PathBuf::from(f), s.to_string()))
        .collect()
}

async fn load(views: &[(&str, &str)], indicators: &[(&str, &str)], limits: Limits) -> Indicators {
    Indicators::from_parts_with(sources(views), sources(indicators), limits)
        .await
        .unwrap_or_else(|e| panic!("plans: {e:?}"))
}

fn values(r: &IndicatorResult, label: &str, value: &str) -> Vec<(String, Option<f64>)> {
    let mut out: Vec<_> = r
        .rows
        .iter()
        .map(|row| (row.labels[label].clone(), row.values[value]))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn indicators_read_a_view_computed_once_and_views_read_earlier_views() {
    let ind = load(
        &[
            (
                "views/a_lines.sql",
                "SELECT supplier, open_quantity * unit_price AS value FROM po_lines",
            ),
            (
                "views/b_big.sql",
                "SELECT supplier, value FROM a_lines WHERE value >= 10",
            ),
        ],
        &[
            (
                "total.sql",
                "SELECT supplier, SUM(value) AS value FROM a_lines GROUP BY supplier",
            ),
            (
                "big.sql",
                "SELECT supplier, COUNT(*) AS lines FROM b_big GROUP BY supplier",
            ),
            (
                "plain.sql",
                "SELECT supplier, COUNT(*) AS lines FROM po_lines GROUP BY supplier",
            ),
        ],
        Limits::default(),
    )
    .await;
    assert_eq!(
        ind.views()
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["a_lines", "b_big"]
    );
    assert_eq!(ind.views()[1].reads, [0]);
    let reads: Vec<_> = ind.defs().iter().map(|d| d.reads.clone()).collect();
    assert_eq!(reads, [vec![0], vec![1], vec![]]);

    // Quantities 1..=6: S0 has 1 and 4, S1 2 and 5, S2 3 and 6; value = 2 x quantity.
    let results = ind.evaluate(&state_with_lines(6).snapshot()).await;
    let total = results[0].as_ref().expect("total");
    assert_eq!(
        values(total, "supplier", "value"),
        [
            ("S0".to_string(), Some(10.0)),
            ("S1".to_string(), Some(14.0)),
            ("S2".to_string(), Some(18.0))
        ]
    );
    let big = results[1].as_ref().expect("big");
    assert_eq!(
        values(big, "supplier", "lines"),
        [("S1".to_string(), Some(1.0)), ("S2".to_string(), Some(1.0))]
    );
    assert_eq!(results[2].as_ref().expect("plain").rows.len(), 3);
    // Every query ran and was timed.
    let d = ind.last_durations();
    let names = |v: &[(String, Option<Duration>)]| -> Vec<String> {
        v.iter().map(|(n, _)| n.clone()).collect()
    };
    assert_eq!(names(&d.indicators), ["total", "big", "plain"]);
    assert_eq!(names(&d.views), ["a_lines", "b_big"]);
    assert!(
        d.indicators
            .iter()
            .chain(&d.views)
            .all(|(_, t)| t.is_some()),
        "{d:?}"
    );
    assert!(d.failed_views.is_empty());

    // The next evaluation sees the next snapshot, not the view's rows from the last one; and
    // alone, an indicator computes the views it needs.
    let again = ind.evaluate(&state_with_lines(3).snapshot()).await;
    assert_eq!(again[1].as_ref().expect("big").rows.len(), 0);
    let alone = ind
        .evaluate_alone(&state_with_lines(6).snapshot(), 1)
        .await
        .expect("index 1 exists")
        .expect("big");
    assert_eq!(alone.rows.len(), 2);
    assert!(matches!(
        ind.compute_view_alone(&state_with_lines(6).snapshot(), 1)
            .await,
        Some(Ok(()))
    ));
    assert!(ind
        .compute_view_alone(&state_with_lines(6).snapshot(), 2)
        .await
        .is_none());
    // Between evaluations the views hold no rows (memory is not kept).
    for view in ind.views() {
        assert!(view.table.batches[0].read().await.is_empty());
    }
}

#[tokio::test]
async fn a_failing_view_stops_only_the_indicators_that_read_it() {
    // Cheap on the empty tables it is planned against; a 125-billion-row cross join on data.
    let runaway = "SELECT a.supplier FROM po_lines a, po_lines b, po_lines c";
    let limits = Limits {
        time: Duration::from_millis(300),
        ..Limits::default()
    };
    let ind = load(
        &[("views/slow.sql", runaway)],
        &[
            (
                "a_reader.sql",
                "SELECT supplier, COUNT(*) AS n FROM slow GROUP BY supplier",
            ),
            (
                "b_plain.sql",
                "SELECT supplier, COUNT(*) AS n FROM po_lines GROUP BY supplier",
            ),
        ],
        limits,
    )
    .await;
    let results = ind.evaluate(&state_with_lines(5_000).snapshot()).await;
    match &results[0] {
        Err(e @ IndicatorError::ViewFailed { name, view, source }) => {
            assert_eq!((name.as_str(), view.as_str()), ("a_reader", "slow"));
            assert!(
                matches!(**source, IndicatorError::TimeLimit { .. }),
                "{source:?}"
            );
            assert_eq!(e.kind(), "time");
            assert_eq!(
                e.to_string(),
                "indicator a_reader: not run, view slow failed: stopped after the time limit \
                 of 300ms"
            );
        }
        other => panic!("expected a view failure, got {other:?}"),
    }
    assert_eq!(results[1].as_ref().map(|r| r.rows.len()).ok(), Some(3));
    // The view ran (into its limit), its reader did not.
    let d = ind.last_durations();
    assert!(d.views[0].1.is_some_and(|t| t >= limits.time), "{d:?}");
    assert_eq!(d.indicators[0], ("a_reader".to_string(), None));
    assert!(d.indicators[1].1.is_some());
    assert_eq!(d.failed_views, [("slow".to_string(), "time")]);
    // Small data fits: the next evaluation runs both.
    let again = ind.evaluate(&state_with_lines(3).snapshot()).await;
    assert_eq!(again[0].as_ref().map(|r| r.rows.len()).ok(), Some(3));
}

#[tokio::test]
async fn view_errors_name_the_file() {
    let cases: [(Files, &str); 4] = [
        (
            &[("views/bad.sql", "SELECT nope FROM po_lines")],
            "views/bad.sql: Schema error: No field named nope",
        ),
        (
            &[("views/po_lines.sql", "SELECT supplier FROM po_lines")],
            "views/po_lines.sql: a view cannot be named \"po_lines\": a table has that name",
        ),
        (
            &[("views/Bad-Name.sql", "SELECT supplier FROM po_lines")],
            "views/Bad-Name.sql: indicator names are lowercase snake_case",
        ),
        // Views that read each other cannot be ordered.
        (
            &[
                ("views/a.sql", "SELECT supplier FROM b"),
                ("views/b.sql", "SELECT supplier FROM a"),
            ],
            "views/a.sql: views read each other in a cycle: a reads b",
        ),
    ];
    for (views, expected) in cases {
        let errors = Indicators::from_parts_with(sources(views), Vec::new(), Limits::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("{views:?} was accepted"));
        let msg = errors[0].to_string();
        assert!(msg.starts_with(expected), "{msg}");
    }
}

#[tokio::test]
async fn views_are_computed_after_the_views_they_read_whatever_their_names() {
    let ind = load(
        &[
            // Reads `b_base` (through a CTE, which is not a table) and `c_mid`.
            (
                "views/a_top.sql",
                "WITH x AS (SELECT supplier, q FROM c_mid) \
                 SELECT x.supplier, x.q + b.q AS q FROM x JOIN b_base b ON b.supplier = x.supplier",
            ),
            (
                "views/b_base.sql",
                "SELECT supplier, SUM(open_quantity) AS q FROM po_lines GROUP BY supplier",
            ),
            (
                "views/c_mid.sql",
                "SELECT supplier, q * 10 AS q FROM b_base",
            ),
        ],
        &[("top.sql", "SELECT supplier, q FROM a_top")],
        Limits::default(),
    )
    .await;
    let order: Vec<&str> = ind.views().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(order, ["b_base", "c_mid", "a_top"]);
    let r = ind.evaluate(&state_with_lines(6).snapshot()).await;
    // S0: quantities 1 + 4 = 5; 5 x 10 + 5.
    assert_eq!(
        values(r[0].as_ref().expect("top"), "supplier", "q")[0],
        ("S0".to_string(), Some(55.0))
    );
}

#[tokio::test]
async fn load_dir_reads_views_from_the_views_folder() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("views")).unwrap();
    std::fs::write(
        d.path().join("views/lines.sql"),
        "SELECT supplier, open_quantity AS q FROM po_lines",
    )
    .unwrap();
    std::fs::write(d.path().join("views/notes.txt"), "not a view").unwrap();
    std::fs::write(
        d.path().join("open.sql"),
        "SELECT supplier, SUM(q) AS q FROM lines GROUP BY supplier",
    )
    .unwrap();
    let ind = Indicators::load_dir(d.path()).await.expect("loads");
    assert_eq!(ind.views().len(), 1);
    assert_eq!(ind.defs().len(), 1);
    let r = ind.evaluate(&state_with_lines(6).snapshot()).await;
    // S0: quantities 1 + 4.
    assert_eq!(
        values(r[0].as_ref().expect("open"), "supplier", "q")[0].1,
        Some(5.0)
    );
}

#[tokio::test]
async fn explain_analyze_shows_the_plan_of_an_indicator_or_a_view_with_its_rows() {
    let ind = load(
        &[(
            "views/lines.sql",
            "SELECT supplier, open_quantity AS q FROM po_lines",
        )],
        &[(
            "open.sql",
            "SELECT supplier, SUM(q) AS q FROM lines GROUP BY supplier",
        )],
        Limits::default(),
    )
    .await;
    let tables = state_with_lines(6).snapshot();
    let text = ind.explain_analyze(&tables, "open").await.expect("known");
    // The indicator's aggregate of the view's rows into 3 suppliers, with run-time metrics.
    assert!(text.contains("AggregateExec"), "{text}");
    assert!(text.contains("output_rows=3"), "{text}");
    let view = ind.explain_analyze(&tables, "lines").await.expect("known");
    assert!(view.contains("output_rows=6"), "{view}");
    assert!(ind.explain_analyze(&tables, "nope").await.is_none());
    for view in ind.views() {
        assert!(view.table.batches[0].read().await.is_empty());
    }
}
