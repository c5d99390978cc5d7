//! The sandbox: what an indicator's SQL cannot do, and the time and memory limits that stop a
//! runaway query while the other indicators still run.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::state::tests::batch_of;
use crate::state::{Retention, State};

const T0: i64 = 1_772_409_600_000; // 2026-03-02T00:00:00Z

/// A state with `n` open PO lines: line `i` from supplier `S<i % suppliers>`, of quantity
/// `quantity(i)` at `unit_price`.
pub(super) fn lines_state(
    n: usize,
    suppliers: usize,
    quantity: impl Fn(usize) -> f64,
    unit_price: f64,
) -> State {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            json!({"event_id": format!("e{i}"), "kind": "po_line_created",
                "event_time": "2026-03-02T00:00:00.000Z", "source": "t",
                "po": format!("PO-{i}"), "line": 1, "supplier": format!("S{}", i % suppliers),
                "part": "P1", "site": "SITE", "quantity": quantity(i), "unit_price": unit_price,
                "order_date": "2026-03-01", "promised_date": "2026-03-20"})
        })
        .collect();
    let mut state = State::new(Retention::default());
    state.apply(&batch_of(&events), T0);
    state
}

/// A state with `n` open PO lines over 50 suppliers.
fn state_with_lines(n: usize) -> State {
    lines_state(n, 50, |_| 10.0, 5.0)
}

const GOOD: &str = "SELECT supplier, COUNT(*) AS open_lines FROM po_lines GROUP BY supplier";

async fn load(sources: &[(&str, &str)], limits: Limits) -> Indicators {
    let sources = sources
        .iter()
        .map(|(f, s)| (PathBuf::from(f), s.to_string()))
        .collect();
    Indicators::from_sources_with(sources, limits)
        .await
        .expect("plans")
}

#[tokio::test]
async fn statements_that_write_read_files_or_change_settings_are_refused_at_load() {
    let cases = [
        (
            "create_external.sql",
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
        ),
        (
            "copy_to.sql",
            "COPY (SELECT supplier FROM po_lines) TO '/tmp/chainwatch-leak.csv'",
        ),
        ("drop.sql", "DROP TABLE po_lines"),
        ("delete.sql", "DELETE FROM po_lines"),
        ("update.sql", "UPDATE po_lines SET supplier = 'x'"),
        ("set.sql", "SET datafusion.execution.target_partitions = 64"),
        ("file_table.sql", "SELECT * FROM '/etc/passwd'"),
        ("url_table.sql", "SELECT * FROM 'http://example.com/x.csv'"),
        ("read_csv.sql", "SELECT * FROM read_csv('/etc/passwd')"),
        ("create_view.sql", "CREATE VIEW v AS SELECT * FROM po_lines"),
        ("prepare.sql", "PREPARE q AS SELECT supplier FROM po_lines"),
    ];
    for (file, sql) in cases {
        let result = Indicators::from_sources(vec![(PathBuf::from(file), sql.to_string())]).await;
        let Err(errors) = result else {
            panic!("{file}: {sql:?} was accepted");
        };
        let msg = errors[0].to_string();
        assert!(msg.starts_with(file), "{msg}");
    }
    assert!(!std::path::Path::new("/tmp/chainwatch-leak.csv").exists());
}

#[tokio::test]
async fn a_query_over_the_time_limit_is_stopped_and_the_others_still_run() {
    // Cheap on the empty tables it is planned against; a 125-billion-row cross join on data.
    let runaway = "SELECT a.supplier, COUNT(*) AS n FROM po_lines a, po_lines b, po_lines c \
                   GROUP BY a.supplier";
    let limits = Limits {
        time: Duration::from_millis(300),
        ..Limits::default()
    };
    let ind = load(&[("a_runaway.sql", runaway), ("b_good.sql", GOOD)], limits).await;
    let started = std::time::Instant::now();
    let results = ind.evaluate(&state_with_lines(5_000).snapshot()).await;
    // Not a timing assertion on speed: only that the runaway was cut off, not run to the end
    // (which would take hours).
    assert!(started.elapsed() < Duration::from_secs(60));
    match &results[0] {
        Err(e @ IndicatorError::TimeLimit { name, limit }) => {
            assert_eq!((name.as_str(), *limit), ("a_runaway", limits.time));
            assert_eq!(e.kind(), "time");
            assert_eq!(
                e.to_string(),
                "indicator a_runaway: stopped after the time limit of 300ms"
            );
        }
        other => panic!("expected a time limit error, got {other:?}"),
    }
    let good = results[1].as_ref().expect("the good indicator runs");
    assert_eq!(good.rows.len(), 50);
    // The session is usable afterwards: a second evaluation behaves the same.
    let again = ind.evaluate(&state_with_lines(100).snapshot()).await;
    assert!(again[0].is_ok(), "small data fits: {:?}", again[0]);
    assert_eq!(again[1].as_ref().map(|r| r.rows.len()).ok(), Some(50));
}

#[tokio::test]
async fn a_query_over_the_memory_limit_is_stopped_and_the_others_still_run() {
    // 4 million distinct groups: far more than 16 MiB of hash table.
    let hog = "SELECT a.po || b.po AS supplier, COUNT(*) AS n FROM po_lines a, po_lines b \
               GROUP BY 1";
    let limits = Limits {
        memory_bytes: 16 << 20,
        time: Duration::from_secs(120),
    };
    let ind = load(&[("a_hog.sql", hog), ("b_good.sql", GOOD)], limits).await;
    let results = ind.evaluate(&state_with_lines(2_000).snapshot()).await;
    match &results[0] {
        Err(e @ IndicatorError::MemoryLimit { name, limit, .. }) => {
            assert_eq!((name.as_str(), *limit), ("a_hog", 16 << 20));
            assert_eq!(e.kind(), "memory");
        }
        other => panic!("expected a memory limit error, got {other:?}"),
    }
    assert_eq!(results[1].as_ref().map(|r| r.rows.len()).ok(), Some(50));
}

#[tokio::test]
async fn a_query_that_runs_away_on_empty_tables_is_refused_at_load() {
    let limits = Limits {
        time: Duration::from_millis(300),
        ..Limits::default()
    };
    let sql = "SELECT CAST(value AS VARCHAR) AS supplier, value AS n \
               FROM generate_series(1, 100000000000) ORDER BY value DESC";
    let errors =
        Indicators::from_sources_with(vec![(PathBuf::from("series.sql"), sql.into())], limits)
            .await
            .err()
            .expect("refused");
    let msg = errors[0].to_string();
    assert!(msg.starts_with("series.sql: "), "{msg}");
    assert!(
        msg.contains("time limit")
            || msg.contains("memory limit")
            || msg.contains("Resources exhausted"),
        "{msg}"
    );
}
