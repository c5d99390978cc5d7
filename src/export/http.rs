//! The HTTP server: the status page `/`, `/metrics`, `/healthz`, `/readyz`, `/api/alerts`, `/api/status`.
//!
//! In: [`Shared`]. Out: HTTP responses; the server stops when shutdown is signalled.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::Shared;
use crate::alerts::{Alert, AlertState};

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| Value::from(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

/// The JSON form of an alert in `/api/alerts`.
pub fn alert_json(a: &Alert) -> Value {
    let state = match a.state {
        AlertState::Pending => "pending",
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
    };
    json!({
        "alertname": a.rule,
        "state": state,
        "severity": a.labels.get("severity"),
        "labels": a.labels,
        "annotations": a.annotations,
        "value": a.value,
        "threshold": a.threshold,
        "active_at": rfc3339(a.active_at),
        "fired_at": a.fired_at.map(rfc3339),
        "resolved_at": a.resolved_at.map(rfc3339),
        "last_evaluated": rfc3339(a.last_evaluated),
    })
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let eval = s.evaluation();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(&eval.families),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn alerts(State(s): State<Arc<Shared>>) -> Json<Value> {
    let eval = s.evaluation();
    Json(json!({
        "evaluation": eval.number,
        "watermark": rfc3339(eval.watermark),
        "alerts": eval.alerts.iter().map(alert_json).collect::<Vec<_>>(),
    }))
}

async fn status(State(s): State<Arc<Shared>>) -> Json<Value> {
    let eval = s.evaluation();
    let partitions = s.partitions.read().map(|p| p.clone()).unwrap_or_default();
    let state = s.state.read().map(|p| p.clone()).unwrap_or_default();
    let firing = eval
        .alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing)
        .count();
    Json(json!({
        "brokers": s.brokers,
        "ready": s.ready.load(Ordering::SeqCst),
        "watermark": rfc3339(state.watermark),
        "watermark_ms": state.watermark,
        "records_applied": state.records_applied,
        "records_dead_lettered": s.dead_lettered.load(Ordering::SeqCst),
        "duplicates": state.duplicates,
        "state": {
            "open_po_lines": state.open_po_lines,
            "in_flight_shipments": state.in_flight_shipments,
            "inventory_positions": state.inventory_positions,
            "window_records": state.window_records,
        },
        "partitions": partitions,
        "lag": partitions.iter().map(|p| p.lag).sum::<i64>(),
        "evaluation": {
            "number": eval.number,
            "watermark": rfc3339(eval.watermark),
            "watermark_ms": eval.watermark,
            "records_applied": eval.records_applied,
            "finished_at": rfc3339(eval.finished_at),
            "alerts_firing": firing,
            "errors": eval.errors,
        },
    }))
}

/// The status page: one self-contained HTML file that renders `/api/alerts` and `/api/status`.
const STATUS_PAGE: &str = include_str!("status.html");

async fn index() -> Response {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        axum::response::Html(STATUS_PAGE),
    )
        .into_response()
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/alerts", get(alerts))
        .route("/api/status", get(status))
        .with_state(shared)
}

/// Bind now (so the caller learns the port, e.g. for `127.0.0.1:0`) and serve in a task.
pub async fn serve(
    listen: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(shared);
    let handle = tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed.");
        }
    });
    Ok((addr, handle))
}
