//! `/metrics` in the Prometheus text format: HTTP requests by route and status, jobs by kind
//! and outcome (this replica's runner) and by state (the whole database), open incidents by
//! severity. Counters are kept here, not in a metrics library: a few maps under a lock.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// (method, route, status) → (count, seconds).
type HttpCounts = BTreeMap<(String, String, u16), (u64, f64)>;

#[derive(Default)]
pub struct Metrics {
    http: Mutex<HttpCounts>,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let entry = http
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    // The route pattern, not the path: `/incidents/{reference}` is one series, not one per incident.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let res = next.run(req).await;
    let seconds = start.elapsed().as_secs_f64();
    state
        .metrics
        .record(&method, &route, res.status().as_u16(), seconds);
    tracing::debug!(
        method,
        route,
        status = res.status().as_u16(),
        ms = seconds * 1000.0,
        "request"
    );
    res
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    out.push_str("# HELP klaxon_http_requests_total HTTP requests by method, route and status.\n");
    out.push_str("# TYPE klaxon_http_requests_total counter\n");
    let http = state
        .metrics
        .http
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for ((m, r, s), (n, _)) in &http {
        let _ = writeln!(
            out,
            "klaxon_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}",
            escape(r)
        );
    }
    out.push_str("# HELP klaxon_http_request_duration_seconds_sum Time spent answering, by method, route and status.\n");
    out.push_str("# TYPE klaxon_http_request_duration_seconds_sum counter\n");
    for ((m, r, s), (_, secs)) in &http {
        let _ = writeln!(out, "klaxon_http_request_duration_seconds_sum{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {secs:.6}", escape(r));
    }
    if let Some(runner) = &state.runner {
        out.push_str("# HELP klaxon_job_attempts_total Job attempts this replica ran, by kind and outcome.\n");
        out.push_str("# TYPE klaxon_job_attempts_total counter\n");
        for ((kind, outcome), n) in runner.stats() {
            let _ = writeln!(
                out,
                "klaxon_job_attempts_total{{kind=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(&kind)
            );
        }
    }
    match state.store.job_counts().await {
        Ok(counts) => {
            out.push_str("# HELP klaxon_jobs Jobs in the database, by kind and state.\n# TYPE klaxon_jobs gauge\n");
            for c in counts {
                let _ = writeln!(
                    out,
                    "klaxon_jobs{{kind=\"{}\",state=\"{}\"}} {}",
                    escape(&c.kind),
                    c.state.as_str(),
                    c.count
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not count jobs"),
    }
    match state.store.open_by_severity().await {
        Ok(counts) => {
            out.push_str("# HELP klaxon_open_incidents Open incidents (drills aside), by severity.\n# TYPE klaxon_open_incidents gauge\n");
            for (sev, n) in counts {
                let _ = writeln!(
                    out,
                    "klaxon_open_incidents{{severity=\"{}\"}} {n}",
                    escape(sev.as_deref().unwrap_or("none"))
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not count open incidents"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
