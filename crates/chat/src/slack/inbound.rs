//! Slack's requests: `POST /slack/commands`, `/slack/events`, `/slack/interactions`. Each is
//! verified by its signature before anything is parsed, written down as a durable job, and
//! acknowledged at once (Slack waits three seconds); the job does the work. A job's key is
//! the request's own id (the trigger, the event), so Slack's retries of an event land on the
//! job already written and are answered without doing anything twice.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use klaxon_core::Catalog;
use klaxon_store::{NewJob, Store};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::jobs::{ACTION, COMMAND, DECLARE, EVENT, UPDATE};
use super::signature;

#[derive(Clone)]
pub struct SlackInbound {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub signing_secret: String,
    /// Wakes the job runner, so the work starts at once.
    pub wake: Option<Arc<Notify>>,
}

pub fn router(state: SlackInbound) -> Router {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/events", post(events))
        .route("/slack/interactions", post(interactions))
        .with_state(state)
}

/// The events that put messages on (and off) the timeline.
pub const EVENTS: &[&str] = &[
    "pin_added",
    "pin_removed",
    "reaction_added",
    "reaction_removed",
];

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "code": "slack_request_refused", "message": message.into() } })),
    )
        .into_response()
}

/// The refusal of a request whose signature does not hold, if it does not.
fn unverified(state: &SlackInbound, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    let ts = header("x-slack-request-timestamp");
    let e = signature::verify(
        &state.signing_secret,
        ts,
        header("x-slack-signature"),
        body,
        now,
    )
    .err()?;
    tracing::warn!(error = %e, "refused a Slack request");
    Some(refuse(StatusCode::UNAUTHORIZED, e.to_string()))
}

/// Writes the job down; the answer to Slack.
async fn record(state: &SlackInbound, job: NewJob) -> Response {
    match state.store.enqueue(&[job], klaxon_core::now()).await {
        Ok(_) => {
            if let Some(w) = &state.wake {
                w.notify_one();
            }
            // An empty 200 acknowledges; the job does the work and answers.
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record a Slack request");
            // Slack retries events that fail; a person can run the command again.
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "Klaxon could not record the request; try again",
            )
        }
    }
}

async fn commands(State(state): State<SlackInbound>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refusal) = unverified(&state, &headers, &body) {
        return refusal;
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (Some(trigger), Some(_user), Some(_channel)) = (
        form.get("trigger_id"),
        form.get("user_id"),
        form.get("channel_id"),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a slash command needs trigger_id, user_id and channel_id",
        );
    };
    let job = NewJob::new(format!("{COMMAND}:{trigger}"), COMMAND, json!(form)).max_attempts(5);
    record(&state, job).await
}

async fn events(State(state): State<SlackInbound>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refusal) = unverified(&state, &headers, &body) {
        return refusal;
    }
    let Ok(envelope) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the event is not JSON");
    };
    match envelope["type"].as_str() {
        Some("url_verification") => {
            Json(json!({ "challenge": envelope["challenge"] })).into_response()
        }
        Some("event_callback") => {
            let kind = envelope["event"]["type"].as_str().unwrap_or_default();
            let Some(id) = envelope["event_id"].as_str() else {
                return refuse(StatusCode::BAD_REQUEST, "the event has no event_id");
            };
            if !EVENTS.contains(&kind) {
                return StatusCode::OK.into_response();
            }
            let job = NewJob::new(
                format!("{EVENT}:{id}"),
                EVENT,
                json!({ "event": envelope["event"], "event_id": id }),
            );
            record(&state, job).await
        }
        _ => StatusCode::OK.into_response(),
    }
}

async fn interactions(
    State(state): State<SlackInbound>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = unverified(&state, &headers, &body) {
        return refusal;
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let Some(payload) = form
        .get("payload")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "an interaction needs a JSON `payload` field",
        );
    };
    match payload["type"].as_str() {
        Some("block_actions") => {
            let trigger = payload["trigger_id"].as_str().unwrap_or_default();
            for action in payload["actions"].as_array().into_iter().flatten() {
                let Some(what) = action["action_id"]
                    .as_str()
                    .and_then(|a| a.strip_prefix("klaxon:"))
                else {
                    continue;
                };
                let job = NewJob::new(
                    format!("{ACTION}:{trigger}:{what}"),
                    ACTION,
                    json!({
                        "action": what,
                        "value": action["value"],
                        "user": payload["user"]["id"],
                        "channel": payload["channel"]["id"].as_str().or(payload["container"]["channel_id"].as_str()),
                        "trigger_id": trigger,
                        "response_url": payload["response_url"],
                    }),
                )
                .max_attempts(5);
                let answer = record(&state, job).await;
                if !answer.status().is_success() {
                    return answer;
                }
            }
            StatusCode::OK.into_response()
        }
        Some("view_submission") if payload["view"]["callback_id"] == super::jobs::DECLARE_FORM => {
            let values = super::jobs::declare_values(&payload["view"]["state"]["values"]);
            // Checked here, so a mistake shows in the form itself.
            if let Err(e) = klaxon_core::decide_declare(&state.catalog, &values) {
                let block = match e.field() {
                    Some("severity") => "severity",
                    Some("services") => "services",
                    Some("type") => "type",
                    Some("summary") => "description",
                    _ => "title",
                };
                return Json(
                    json!({ "response_action": "errors", "errors": { block: e.to_string() } }),
                )
                .into_response();
            }
            let view_id = payload["view"]["id"].as_str().unwrap_or_default();
            let job = NewJob::new(
                format!("{DECLARE}:{view_id}"),
                DECLARE,
                json!({ "user": payload["user"]["id"], "values": payload["view"]["state"]["values"] }),
            );
            record(&state, job).await
        }
        Some("view_submission") if payload["view"]["callback_id"] == super::jobs::UPDATE_FORM => {
            update(&state, &payload).await
        }
        _ => StatusCode::OK.into_response(),
    }
}

/// The update form: checked against the incident as it is, so a mistake (a status it cannot
/// move to) shows in the form; then done by a job.
async fn update(state: &SlackInbound, payload: &Value) -> Response {
    let Some(r) = payload["view"]["private_metadata"]
        .as_str()
        .and_then(|m| m.parse::<klaxon_core::IncidentRef>().ok())
    else {
        return refuse(StatusCode::BAD_REQUEST, "the form names no incident");
    };
    let mut incident = match state.store.incident(r).await {
        Ok(Some(i)) => i,
        Ok(None) => return Json(json!({ "response_action": "errors", "errors": { "title": format!("{r} does not exist any more") } })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not load an incident for a Slack form");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "Klaxon could not check the form; try again");
        }
    };
    let values = &payload["view"]["state"]["values"];
    for command in super::jobs::update_commands(values) {
        match klaxon_core::decide(&state.catalog, &incident, &command) {
            Ok(kinds) => {
                for (n, kind) in kinds.into_iter().enumerate() {
                    let e = klaxon_core::Event {
                        incident: r,
                        seq: incident.version + 1 + n as u64,
                        at: klaxon_core::now(),
                        actor: klaxon_core::Actor::system("check"),
                        kind,
                    };
                    incident.apply(&e);
                }
            }
            Err(e) => {
                let block = match e.field() {
                    Some("severity") => "severity",
                    Some("status") => "status",
                    Some("summary") => "summary",
                    Some("impact") => "impact",
                    _ => "title",
                };
                return Json(
                    json!({ "response_action": "errors", "errors": { block: e.to_string() } }),
                )
                .into_response();
            }
        }
    }
    let key = format!(
        "{UPDATE}:{}:{}",
        payload["view"]["id"].as_str().unwrap_or_default(),
        payload["view"]["hash"].as_str().unwrap_or_default()
    );
    record(
        state,
        NewJob::new(
            key,
            UPDATE,
            json!({ "user": payload["user"]["id"], "incident": r, "values": values }),
        ),
    )
    .await
}
