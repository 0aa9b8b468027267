//! Slack's requests: slash commands, events and interactions, over HTTP (`POST
//! /slack/commands`, `/slack/events`, `/slack/interactions`) or Socket Mode (`socket.rs`).
//! Each is written down as a durable job and acknowledged at once (Slack waits three
//! seconds); the job does the work. A job's key is the request's own id (the trigger, the
//! event), so Slack's retries land on the job already written and nothing happens twice.
//! Over HTTP every request is verified by its signature before anything is parsed.

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

/// What Slack is told, whichever way the request came.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Acknowledged; the job answers later, if at all.
    Ok,
    /// Acknowledged with a body (the challenge, a form's errors).
    Json(Value),
    /// Not acknowledged: Slack may send it again.
    Refused(StatusCode, String),
}

pub fn router(state: SlackInbound) -> Router {
    Router::new()
        .route("/slack/commands", post(http_command))
        .route("/slack/events", post(http_event))
        .route("/slack/interactions", post(http_interaction))
        .with_state(state)
}

/// The events that put messages on (and off) the timeline, and messages (for keywords).
pub const EVENTS: &[&str] = &[
    "pin_added",
    "pin_removed",
    "reaction_added",
    "reaction_removed",
    "message",
];

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            // An empty 200 acknowledges without a message.
            Answer::Ok => StatusCode::OK.into_response(),
            Answer::Json(v) => Json(v).into_response(),
            Answer::Refused(status, message) => (
                status,
                Json(json!({ "error": { "code": "slack_request_refused", "message": message } })),
            )
                .into_response(),
        }
    }
}

/// The refusal of a request whose signature does not hold, if it does not.
fn unverified(state: &SlackInbound, headers: &HeaderMap, body: &[u8]) -> Option<Answer> {
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
    Some(Answer::Refused(StatusCode::UNAUTHORIZED, e.to_string()))
}

async fn http_command(
    State(state): State<SlackInbound>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    if let Some(refusal) = unverified(&state, &headers, &body) {
        return refusal;
    }
    command(
        &state,
        serde_urlencoded::from_bytes(&body).unwrap_or_default(),
    )
    .await
}

async fn http_event(State(state): State<SlackInbound>, headers: HeaderMap, body: Bytes) -> Answer {
    if let Some(refusal) = unverified(&state, &headers, &body) {
        return refusal;
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(envelope) => event(&state, &envelope).await,
        Err(_) => Answer::Refused(StatusCode::BAD_REQUEST, "the event is not JSON".into()),
    }
}

async fn http_interaction(
    State(state): State<SlackInbound>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    if let Some(refusal) = unverified(&state, &headers, &body) {
        return refusal;
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    match form
        .get("payload")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
    {
        Some(payload) => interaction(&state, &payload).await,
        None => Answer::Refused(
            StatusCode::BAD_REQUEST,
            "an interaction needs a JSON `payload` field".into(),
        ),
    }
}

/// Writes the job down.
async fn record(state: &SlackInbound, job: NewJob) -> Answer {
    match state.store.enqueue(&[job], klaxon_core::now()).await {
        Ok(_) => {
            if let Some(w) = &state.wake {
                w.notify_one();
            }
            Answer::Ok
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record a Slack request");
            Answer::Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Klaxon could not record the request; try again".into(),
            )
        }
    }
}

/// A slash command, its fields as Slack sends them.
pub async fn command(state: &SlackInbound, form: HashMap<String, String>) -> Answer {
    let (Some(trigger), Some(_), Some(_)) = (
        form.get("trigger_id"),
        form.get("user_id"),
        form.get("channel_id"),
    ) else {
        return Answer::Refused(
            StatusCode::BAD_REQUEST,
            "a slash command needs trigger_id, user_id and channel_id".into(),
        );
    };
    record(
        state,
        NewJob::new(format!("{COMMAND}:{trigger}"), COMMAND, json!(form)).max_attempts(5),
    )
    .await
}

/// An Events API envelope.
pub async fn event(state: &SlackInbound, envelope: &Value) -> Answer {
    match envelope["type"].as_str() {
        Some("url_verification") => Answer::Json(json!({ "challenge": envelope["challenge"] })),
        Some("event_callback") => {
            let kind = envelope["event"]["type"].as_str().unwrap_or_default();
            let Some(id) = envelope["event_id"].as_str() else {
                return Answer::Refused(
                    StatusCode::BAD_REQUEST,
                    "the event has no event_id".into(),
                );
            };
            if !EVENTS.contains(&kind) {
                return Answer::Ok;
            }
            if kind == "message" && !worth_hearing(state, &envelope["event"]).await {
                return Answer::Ok;
            }
            record(
                state,
                NewJob::new(
                    format!("{EVENT}:{id}"),
                    EVENT,
                    json!({ "event": envelope["event"], "event_id": id }),
                ),
            )
            .await
        }
        _ => Answer::Ok,
    }
}

/// A button press or a form submission.
pub async fn interaction(state: &SlackInbound, payload: &Value) -> Answer {
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
                let answer = record(state, job).await;
                if answer != Answer::Ok {
                    return answer;
                }
            }
            Answer::Ok
        }
        Some("view_submission") if payload["view"]["callback_id"] == super::jobs::DECLARE_FORM => {
            declare(state, payload).await
        }
        Some("view_submission") if payload["view"]["callback_id"] == super::jobs::UPDATE_FORM => {
            update(state, payload).await
        }
        _ => Answer::Ok,
    }
}

fn form_errors(block: &str, message: String) -> Answer {
    Answer::Json(json!({ "response_action": "errors", "errors": { block: message } }))
}

/// The declare form: checked here, so a mistake shows in the form itself.
async fn declare(state: &SlackInbound, payload: &Value) -> Answer {
    let values = super::jobs::declare_values(&payload["view"]["state"]["values"]);
    if let Err(e) = klaxon_core::decide_declare(&state.catalog, &values) {
        let block = match e.field() {
            Some("severity") => "severity",
            Some("services") => "services",
            Some("type") => "type",
            Some("summary") => "description",
            _ => "title",
        };
        return form_errors(block, e.to_string());
    }
    let view_id = payload["view"]["id"].as_str().unwrap_or_default();
    let job = NewJob::new(
        format!("{DECLARE}:{view_id}"),
        DECLARE,
        json!({ "user": payload["user"]["id"], "values": payload["view"]["state"]["values"] }),
    );
    record(state, job).await
}

/// The update form: checked against the incident as it is, so a mistake (a status it cannot
/// move to) shows in the form; then done by a job.
async fn update(state: &SlackInbound, payload: &Value) -> Answer {
    let Some(r) = payload["view"]["private_metadata"]
        .as_str()
        .and_then(|m| m.parse::<klaxon_core::IncidentRef>().ok())
    else {
        return Answer::Refused(StatusCode::BAD_REQUEST, "the form names no incident".into());
    };
    let mut incident = match state.store.incident(r).await {
        Ok(Some(i)) => i,
        Ok(None) => return form_errors("title", format!("{r} does not exist any more")),
        Err(e) => {
            tracing::error!(error = %e, "could not load an incident for a Slack form");
            return Answer::Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Klaxon could not check the form; try again".into(),
            );
        }
    };
    let values = &payload["view"]["state"]["values"];
    for command in super::jobs::update_commands(values) {
        match klaxon_core::decide(&state.catalog, &incident, &command) {
            Ok(kinds) => {
                for kind in kinds {
                    let e = klaxon_core::Event {
                        incident: r,
                        seq: incident.version + 1,
                        at: klaxon_core::now(),
                        actor: klaxon_core::Actor::system("check"),
                        kind,
                    };
                    incident.apply(&e);
                }
            }
            Err(e) => {
                // The form's blocks are named after the fields they change.
                let block = e.field().unwrap_or("title");
                return form_errors(block, e.to_string());
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

/// Only people's new messages in incident channels: not edits or joins (subtypes), not bots
/// (Klaxon's own posts included). Checked here so that chatter elsewhere writes nothing.
async fn worth_hearing(state: &SlackInbound, event: &Value) -> bool {
    if event.get("subtype").is_some_and(|s| !s.is_null())
        || event.get("bot_id").is_some_and(|b| !b.is_null())
    {
        return false;
    }
    let Some(channel) = event["channel"].as_str() else {
        return false;
    };
    matches!(
        state.store.chat_channel_by_id("slack", channel).await,
        Ok(Some(_))
    )
}
