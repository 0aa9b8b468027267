//! The web UI: pages rendered on the server from templates compiled into the binary, usable
//! without JavaScript. Every form posts back with the session's CSRF token and, on success,
//! redirects (303) to the page it came from; a refused change re-renders the page with the
//! reason.

mod incident;
mod pages;

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use klaxon_core::Catalog;

use crate::AppState;

pub use pages::LoginPage;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/declare", get(pages::declare_page).post(pages::declare))
        .route("/incidents", get(pages::list))
        .route("/incidents/{reference}", get(incident::incident))
        .route(
            "/incidents/{reference}/timeline",
            get(incident::timeline_fragment),
        )
        .route("/incidents/{reference}/edit", post(incident::edit))
        .route("/incidents/{reference}/status", post(incident::status))
        .route("/incidents/{reference}/severity", post(incident::severity))
        .route("/incidents/{reference}/roles", post(incident::role))
        .route("/incidents/{reference}/notes", post(incident::note))
        .route(
            "/incidents/{reference}/statuspage",
            post(incident::statuspage),
        )
        .route(
            "/incidents/{reference}/follow-ups",
            post(incident::add_follow_up),
        )
        .route(
            "/incidents/{reference}/follow-ups/{id}/done",
            post(incident::complete_follow_up),
        )
        .route(
            "/incidents/{reference}/actions/{id}/retry",
            post(incident::retry),
        )
        .route("/settings", get(pages::settings))
        .route("/playbooks", get(pages::playbooks))
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css", include_str!("../../assets/app.css")) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript", include_str!("../../assets/app.js")) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

pub(crate) fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; the server log has the details",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            status: status.as_u16(),
            message,
        },
    )
}

/// `sev-1` … `sev-4` by rank in the catalog, `sev-x` beyond, `sev-none` without one: the
/// colour of a severity follows its place in the list, whatever the operator calls it.
pub(crate) fn sev_class(catalog: &Catalog, severity: Option<&str>) -> String {
    match severity.and_then(|s| catalog.severities.rank(s)) {
        Some(r) if r < 4 => format!("sev-{}", r + 1),
        Some(_) => "sev-x".into(),
        None => "sev-none".into(),
    }
}

pub(crate) fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let m = (now - since).num_minutes().max(0);
    match m {
        0..=59 => format!("{m}m"),
        60..=1439 => format!("{}h {}m", m / 60, m % 60),
        _ => format!("{}d {}h", m / 1440, (m % 1440) / 60),
    }
}

pub(crate) fn full_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_classes() {
        let t0 = klaxon_core::from_millis(0);
        let at = |m: i64| t0 + chrono::Duration::minutes(m);
        assert_eq!(age(t0, at(5)), "5m");
        assert_eq!(age(t0, at(125)), "2h 5m");
        assert_eq!(age(t0, at(3 * 1440 + 61)), "3d 1h");
        let c = Catalog::default();
        assert_eq!(sev_class(&c, Some("sev1")), "sev-1");
        assert_eq!(sev_class(&c, Some("SEV4")), "sev-4");
        assert_eq!(sev_class(&c, None), "sev-none");
    }
}
