//! The HTTP server: the status page `/`, `/metrics`, `/healthz`, `/readyz`, `/api/alerts`,
//! `/api/alerts/history`, `/api/status`, `/api/rules`, `/api/feeds`, `/api/network`, and the
//! admin endpoint `POST /-/reload`.
//!
//! In: [`Shared`], a [`Reloader`] and the [`HttpConfig`] (tokens, limits). Out: HTTP
//! responses; the server stops when shutdown is signalled.
//!
//! Access: `/`, `/healthz` and `/readyz` are always open (probes, the page itself). With a
//! read token, `/metrics` and `/api/*` need `Authorization: Bearer <read or admin token>`.
//! Admin endpoints need the admin token, and are disabled (403) when none is configured: a
//! fresh install cannot be reloaded by whoever reaches the port. A wrong or missing token is
//! 401. Every request body is limited to `max_request_bytes` (413) and every request to
//! `request_timeout` (408).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{FromRef, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::Shared;
use crate::alerts::{Alert, AlertState};
use crate::config::{HttpConfig, Token};
use crate::reload::{ReloadOutcome, Reloader, Trigger};
use crate::rules::{AlertRule, RuleGroup};

/// What the handlers share: the pipeline's view, the reload handle and the tokens.
#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    reloader: Reloader,
    admin: Option<Token>,
    read: Option<Token>,
}

impl FromRef<App> for Arc<Shared> {
    fn from_ref(app: &App) -> Self {
        app.shared.clone()
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"chainwatch\"")],
        "missing or wrong bearer token\n",
    )
        .into_response()
}

/// Read endpoints: open without a read token; with one, the read or the admin token.
async fn require_read(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Some(read) = &app.read {
        let presented = bearer(req.headers()).unwrap_or_default();
        let admin = app.admin.as_ref().is_some_and(|a| a.matches(presented));
        if !(read.matches(presented) || admin) {
            return unauthorized();
        }
    }
    next.run(req).await
}

/// Admin endpoints: the admin token; disabled when none is configured.
async fn require_admin(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(admin) = &app.admin else {
        return (
            StatusCode::FORBIDDEN,
            "admin endpoints are disabled: set [http] admin_token_file in the configuration \
             (or the CHAINWATCH_ADMIN_TOKEN environment variable) and send the token as \
             `Authorization: Bearer <token>`\n",
        )
            .into_response();
    };
    if !bearer(req.headers()).is_some_and(|t| admin.matches(t)) {
        return unauthorized();
    }
    next.run(req).await
}

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
        "alternates": a.alternates,
    })
}

/// `GET /api/feeds`: every feed definition in force with its health counters.
async fn feeds(State(s): State<Arc<Shared>>) -> Json<Value> {
    let catalog = s.catalog();
    let m = &s.metrics;
    let feeds: Vec<Value> = catalog
        .feeds
        .iter()
        .map(|f| {
            let name = [f.name.as_str()];
            let rejected: serde_json::Map<String, Value> =
                crate::ingest::decode::RejectReason::ALL
                    .iter()
                    .filter_map(|r| {
                        let n = m
                            .feed_rejected
                            .get_metric_with_label_values(&[f.name.as_str(), r.as_str()])
                            .map(|c| c.get())
                            .unwrap_or(0);
                        (n > 0).then(|| (r.as_str().to_string(), json!(n)))
                    })
                    .collect();
            let last = m
                .feed_last_event
                .get_metric_with_label_values(&name)
                .map(|g| g.get())
                .unwrap_or(0.0);
            json!({
                "feed": f.name,
                "supplier": f.supplier.id,
                "supplier_name": f.supplier.name,
                "tier": f.supplier.tier,
                "topic": f.topic,
                "definition": f.path,
                "expect_every": humantime::format_duration(f.expect_every).to_string(),
                "records": m.feed_records.get_metric_with_label_values(&name).map(|c| c.get()).unwrap_or(0),
                "events": m.feed_events.get_metric_with_label_values(&name).map(|c| c.get()).unwrap_or(0),
                "rejected": rejected,
                "last_event_time": (last > 0.0).then(|| rfc3339((last * 1000.0) as i64)),
            })
        })
        .collect();
    Json(json!({ "feeds": feeds, "errors": catalog.errors }))
}

/// `GET /api/network`: the supply network in force, concentration per part, and the last
/// exposure ranking (time to survive, time to recover, risk exposure index).
async fn network(State(s): State<Arc<Shared>>) -> Json<Value> {
    let catalog = s.catalog();
    let exposure = s.exposure();
    Json(json!({
        "network": &*catalog.network,
        "concentration": catalog.network.concentration(),
        "exposure": {
            "watermark": rfc3339(exposure.watermark),
            "nodes": exposure.nodes,
        },
        "refused_records": catalog.refused_records,
        "errors": catalog.errors,
    }))
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let eval = s.evaluation();
    // The first scrape of an evaluation builds its series: off the runtime, as a large state
    // has hundreds of thousands of them.
    let page = tokio::task::spawn_blocking(move || s.metrics.render(eval.families())).await;
    match page {
        Ok(page) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            page,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Rendering /metrics failed.");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
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

/// Filters of `/api/alerts/history`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Only this rule's transitions.
    rule: Option<String>,
    /// Only transitions at or after this event time (RFC 3339).
    since: Option<String>,
    /// Only `pending`, `firing`, `resolved` or `cancelled`.
    change: Option<String>,
    /// At most this many, the latest (default 1000).
    limit: Option<usize>,
}

/// `/api/alerts/history`: the alert transitions kept (`[evaluation] history`), oldest first,
/// in event time; they survive restarts with the checkpoints. 400 on a bad filter.
async fn alerts_history(
    State(s): State<Arc<Shared>>,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let since = match q.since.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) => Some(t.timestamp_millis()),
        Some(Err(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("since: not an RFC 3339 time: {e}\n"),
            )
                .into_response()
        }
    };
    let history = s.history_snapshot();
    let kept = history.len();
    let mut matching: Vec<_> = history
        .into_iter()
        .filter(|t| q.rule.as_ref().is_none_or(|r| *r == t.rule))
        .filter(|t| since.is_none_or(|s| t.at >= s))
        .filter(|t| q.change.as_deref().is_none_or(|c| t.change.as_str() == c))
        .collect();
    let limit = q.limit.unwrap_or(1000);
    let dropped = matching.len().saturating_sub(limit);
    matching.drain(..dropped);
    Json(json!({
        "kept": kept,
        "matching": matching.len() + dropped,
        "transitions": matching,
    }))
    .into_response()
}

/// The JSON form of a reload outcome (`POST /-/reload`, and `rules` in `/api/status`).
pub fn reload_json(o: &ReloadOutcome) -> Value {
    json!({
        "status": if o.success { "success" } else { "error" },
        "trigger": o.trigger.as_str(),
        "at": rfc3339(o.at_ms),
        "duration_ms": o.duration_ms,
        "rules": o.rules,
        "groups": o.groups,
        "indicators": o.indicators,
        "errors": o.errors,
    })
}

/// `POST /-/reload`: 200 with the outcome when the new rules run, 422 with every error when
/// they were rejected (the previous rules keep running).
async fn reload(State(app): State<App>) -> Response {
    match app.reloader.reload(Trigger::Http).await {
        Ok(o) if o.success => (StatusCode::OK, Json(reload_json(&o))).into_response(),
        Ok(o) => (StatusCode::UNPROCESSABLE_ENTITY, Json(reload_json(&o))).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

fn rule_json(group: &RuleGroup, r: &AlertRule) -> Value {
    json!({
        "name": r.name,
        "group": group.name,
        "file": group.file.display().to_string(),
        "location": r.location.to_string(),
        "indicator": r.indicator,
        "value": r.value,
        "op": r.op.as_str(),
        "warning": r.warning,
        "critical": r.critical,
        "for": humantime::format_duration(r.for_).to_string(),
        "for_seconds": r.for_.as_secs_f64(),
        "keep_firing_for": humantime::format_duration(r.keep_firing_for).to_string(),
        "reason_code": r.reason_code,
        "labels": r.labels,
        "annotations": r.annotations,
    })
}

/// `GET /api/rules`: the rules the evaluator runs now.
async fn rules(State(s): State<Arc<Shared>>) -> Json<Value> {
    let view = s.rules();
    let rules: Vec<Value> = view
        .rules
        .groups
        .iter()
        .flat_map(|g| g.rules.iter().map(move |r| rule_json(g, r)))
        .collect();
    Json(json!({
        "since": rfc3339(view.since),
        "indicators": view.indicators,
        "views": view.views,
        "rules": rules,
    }))
}

async fn status(State(s): State<Arc<Shared>>) -> Json<Value> {
    let eval = s.evaluation();
    let view = s.rules();
    let last = &view.last_reload;
    let partitions = s.partitions.read().map(|p| p.clone()).unwrap_or_default();
    let unassigned: Vec<Value> = s.unassigned.read().map_or_else(
        |_| Vec::new(),
        |u| {
            u.iter()
                .map(|(topic, partition)| json!({"topic": topic, "partition": partition}))
                .collect()
        },
    );
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
        "unassigned_partitions": unassigned,
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
        "rules": {
            "loaded": view.rules.rules().count(),
            "groups": view.rules.groups.len(),
            "indicators": view.indicators.len(),
            "running_since": rfc3339(view.since),
            "last_reload": rfc3339(last.at_ms),
            "last_reload_success": last.success,
            "last_reload_trigger": last.trigger.as_str(),
            "errors": last.errors,
            "reloads": {
                "success": view.successes,
                "failure": view.failures,
            },
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

pub fn router(shared: Arc<Shared>, reloader: Reloader, config: &HttpConfig) -> Router {
    let app = App {
        shared,
        reloader,
        admin: config.admin_token.clone(),
        read: config.read_token.clone(),
    };
    let read = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/alerts", get(alerts))
        .route("/api/alerts/history", get(alerts_history))
        .route("/api/status", get(status))
        .route("/api/rules", get(rules))
        .route("/api/feeds", get(feeds))
        .route("/api/network", get(network))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_read));
    let admin = Router::new()
        .route("/-/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_admin));
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(read)
        .merge(admin)
        .layer(RequestBodyLimitLayer::new(config.max_request_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .with_state(app)
}

/// Bind now (so the caller learns the port, e.g. for `127.0.0.1:0`) and serve in a task.
pub async fn serve(
    config: &HttpConfig,
    shared: Arc<Shared>,
    reloader: Reloader,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = router(shared, reloader, config);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::export::metrics::Metrics;

    /// Serve on a free port; the returned requests end is kept open but never answered.
    async fn start(
        config: &HttpConfig,
    ) -> (
        String,
        watch::Sender<bool>,
        Option<crate::reload::ReloadRequests>,
    ) {
        let shared = Shared::new(Metrics::new(), "test".into());
        let (reloader, requests) = Reloader::channel();
        let (stop, rx) = watch::channel(false);
        let (addr, _task) = serve(config, shared, reloader, rx).await.unwrap();
        (format!("http://{addr}"), stop, Some(requests))
    }

    fn http_config(admin: Option<&str>, read: Option<&str>) -> HttpConfig {
        let mut c = Config::parse_with_env(std::path::Path::new("t.toml"), "", &|_| None)
            .unwrap()
            .http;
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.admin_token = admin.and_then(Token::new);
        c.read_token = read.and_then(Token::new);
        c.request_timeout = std::time::Duration::from_millis(300);
        c.max_request_bytes = 1024;
        c
    }

    async fn post(url: &str, auth: Option<&str>) -> (u16, String) {
        let mut req = reqwest::Client::new().post(url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn get_status(url: &str, auth: Option<&str>) -> u16 {
        let mut req = reqwest::Client::new().get(url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send().await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn admin_endpoints_are_disabled_without_a_token() {
        let (base, _stop, _requests) = start(&http_config(None, None)).await;
        let (code, body) = post(&format!("{base}/-/reload"), Some("Bearer x")).await;
        assert_eq!(code, 403);
        assert!(
            body.contains("admin_token_file") && body.contains("CHAINWATCH_ADMIN_TOKEN"),
            "{body}"
        );
        assert_eq!(get_status(&format!("{base}/metrics"), None).await, 200);
    }

    #[tokio::test]
    async fn reload_needs_the_admin_token_and_is_cut_off_at_the_timeout() {
        let (base, _stop, _requests) = start(&http_config(Some("adm1n"), None)).await;
        let url = format!("{base}/-/reload");
        let resp = reqwest::Client::new().post(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"chainwatch\""
        );
        for wrong in [
            "Bearer adm1",
            "Bearer adm1nn",
            "Basic adm1n",
            "adm1n",
            "Bearer ",
        ] {
            assert_eq!(post(&url, Some(wrong)).await.0, 401, "{wrong}");
        }
        assert_eq!(
            get_status(&url, Some("Bearer adm1n")).await,
            405,
            "POST only"
        );
        // The right token gets through to the reload, which nobody answers here: the request
        // timeout (300 ms) ends it.
        let started = std::time::Instant::now();
        assert_eq!(post(&url, Some("bearer adm1n")).await.0, 408);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[tokio::test]
    async fn reload_answers_503_when_the_pipeline_stops() {
        let (base, _stop, mut requests) = start(&http_config(Some("adm1n"), None)).await;
        drop(requests.take());
        let (code, body) = post(&format!("{base}/-/reload"), Some("Bearer adm1n")).await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("stopping"), "{body}");
    }

    #[tokio::test]
    async fn read_token_protects_metrics_and_api_but_not_probes() {
        let (base, _stop, _requests) = start(&http_config(Some("adm1n"), Some("r3ad"))).await;
        for path in ["/metrics", "/api/alerts", "/api/status", "/api/rules"] {
            let url = format!("{base}{path}");
            assert_eq!(get_status(&url, None).await, 401, "{path}");
            assert_eq!(get_status(&url, Some("Bearer nope")).await, 401, "{path}");
            assert_eq!(get_status(&url, Some("Bearer r3ad")).await, 200, "{path}");
            assert_eq!(get_status(&url, Some("Bearer adm1n")).await, 200, "{path}");
        }
        for path in ["/healthz", "/"] {
            assert_eq!(
                get_status(&format!("{base}{path}"), None).await,
                200,
                "{path}"
            );
        }
        assert_eq!(get_status(&format!("{base}/readyz"), None).await, 503);
        // The read token is not an admin token.
        assert_eq!(
            post(&format!("{base}/-/reload"), Some("Bearer r3ad"))
                .await
                .0,
            401
        );
    }

    #[tokio::test]
    async fn large_bodies_are_refused() {
        let (base, _stop, _requests) = start(&http_config(Some("adm1n"), None)).await;
        let resp = reqwest::Client::new()
            .post(format!("{base}/-/reload"))
            .header("Authorization", "Bearer adm1n")
            .body(vec![b'x'; 4096])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 413);
    }
}
