//! Incidents: declare, read, list and search, change, and their timeline and actions.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use klaxon_core::{Access, Command, Declare, Incident, IncidentRef, PersonId};
use klaxon_store::{IncidentQuery, JobId, JobState};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Body, Params};
use crate::auth::Caller;
use crate::views::{self, ActionView, EventView, IncidentView, People};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", post(declare).get(list))
        .route("/api/v1/incidents/{reference}", get(show).patch(edit))
        .route("/api/v1/incidents/{reference}/status", post(change_status))
        .route(
            "/api/v1/incidents/{reference}/roles/{role}",
            put(assign_role).delete(release_role),
        )
        .route("/api/v1/incidents/{reference}/notes", post(add_note))
        .route(
            "/api/v1/incidents/{reference}/follow-ups",
            post(add_follow_up),
        )
        .route(
            "/api/v1/incidents/{reference}/follow-ups/{id}/done",
            post(complete_follow_up),
        )
        .route("/api/v1/incidents/{reference}/timeline", get(timeline))
        .route("/api/v1/incidents/{reference}/actions", get(actions))
        .route(
            "/api/v1/incidents/{reference}/actions/{id}/retry",
            post(retry_action),
        )
        .route("/api/v1/me", get(me))
        .route("/api/v1/catalog", get(catalog))
}

/// A new incident: only the title is required.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeclareBody {
    /// What is broken, in a few words (at most 200 characters).
    pub title: String,
    pub summary: String,
    pub impact: String,
    /// A severity key such as `SEV2`; can be set later.
    pub severity: Option<String>,
    /// The initial status; the configured initial status (`triage`) when left out.
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub incident_type: Option<String>,
    pub services: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Visible only to its members (and admins).
    pub private: bool,
    /// A practice run of the procedure.
    pub drill: bool,
    /// The lead's person id; the declarer when left out.
    pub lead: Option<i64>,
    pub impact_started_at: Option<DateTime<Utc>>,
}

fn some<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Fields to change; those left out stay as they are, and `null` clears one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EditBody {
    pub title: Option<String>,
    pub summary: Option<String>,
    pub impact: Option<String>,
    #[serde(deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub severity: Option<Option<String>>,
    #[serde(rename = "type", deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub incident_type: Option<Option<String>>,
    pub services: Option<Vec<String>>,
    /// Labels to set; a `null` value removes that label.
    pub labels: Option<BTreeMap<String, Option<String>>>,
    pub private: Option<bool>,
    #[serde(deserialize_with = "some")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub impact_started_at: Option<Option<DateTime<Utc>>>,
    #[serde(deserialize_with = "some")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub impact_ended_at: Option<Option<DateTime<Utc>>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub status: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub person_id: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub text: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpBody {
    /// What needs doing.
    pub text: String,
    /// The person who owns it.
    #[serde(default)]
    pub owner_id: Option<i64>,
    /// When it should be done (RFC 3339); a `follow_up_overdue` playbook fires then.
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct ListParams {
    /// Statuses, comma-separated.
    pub status: Option<String>,
    /// Severities, comma-separated.
    pub severity: Option<String>,
    /// This severity or worse.
    pub severity_at_least: Option<String>,
    pub service: Option<String>,
    /// `key:value`.
    pub label: Option<String>,
    /// Words that must all appear in the title, summary, impact or timeline.
    pub q: Option<String>,
    /// Only open (`true`) or only resolved and closed (`false`) incidents.
    pub open: Option<bool>,
    /// Include drills (default `true`).
    pub drills: Option<bool>,
    /// For the next page: the `next` of the previous one.
    pub before: Option<String>,
    /// 1 to 200, 50 by default.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentList {
    pub incidents: Vec<IncidentView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct TimelineParams {
    /// Events after this sequence number.
    pub after: u64,
    /// At most this many (1 to 1000, 200 by default).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub events: Vec<EventView>,
    /// Pass as `after` to get what happened since.
    pub next_after: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionList {
    pub actions: Vec<ActionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub name: String,
    /// `viewer`, `responder` or `admin`.
    pub access: String,
    pub person_id: Option<i64>,
}

pub(crate) fn parse_ref(s: &str) -> Result<IncidentRef, ApiError> {
    s.parse::<IncidentRef>()
        .map_err(|e| ApiError::not_found(e.0).field("reference"))
}

/// The incident, if it exists and the caller may see it; 404 otherwise, so that a private
/// incident's existence does not leak.
pub(crate) async fn visible(
    state: &AppState,
    caller: &Caller,
    reference: IncidentRef,
) -> Result<Incident, ApiError> {
    match state.store.incident(reference).await? {
        Some(i) if i.visible_to(caller.person_id(), caller.access) => Ok(i),
        _ => Err(ApiError::not_found(reference)),
    }
}

async fn view(state: &AppState, i: &Incident) -> Result<IncidentView, ApiError> {
    let people = People::load(state.store.as_ref(), views::incident_people(i)).await?;
    Ok(views::incident_view(i, &people, &state.settings.public_url))
}

pub(crate) fn declare_command(caller: &Caller, b: DeclareBody) -> Declare {
    Declare {
        title: b.title,
        summary: b.summary,
        impact: b.impact,
        severity: b.severity,
        status: b.status,
        incident_type: b.incident_type,
        labels: b.labels,
        services: b.services,
        private: b.private,
        drill: b.drill,
        lead: b.lead.map(PersonId).or(caller.person_id()),
        impact_started_at: b.impact_started_at,
    }
}

/// Declare an incident.
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents", request_body = DeclareBody,
    responses(
        (status = 201, description = "Declared; `Location` names its resource", body = IncidentView),
        (status = 422, description = "A field is not valid", body = crate::ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn declare(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<DeclareBody>,
) -> Result<Response, ApiError> {
    caller.require(Access::Responder)?;
    if let Some(lead) = body.lead {
        check_person(&state, lead).await?;
    }
    let applied = state
        .store
        .declare(state.request(&caller, declare_command(&caller, body)))
        .await?;
    state.jobs_enqueued(applied.jobs.len());
    let v = view(&state, &applied.incident).await?;
    let location = format!("/api/v1/incidents/{}", v.reference);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(v)).into_response())
}

/// The query the list parameters ask for, checked against the catalog; `None` when the
/// filters cannot match anything (`severity=SEV3&severity_at_least=SEV2`).
pub(crate) fn list_query(
    state: &AppState,
    caller: &Caller,
    p: ListParams,
) -> Result<Option<IncidentQuery>, ApiError> {
    let split = |s: Option<String>| -> Vec<String> {
        s.unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    };
    let mut severities = Vec::new();
    for s in split(p.severity) {
        match state.catalog.severities.canonical(&s) {
            Some(k) => severities.push(k.to_string()),
            None => {
                return Err(klaxon_core::CommandError::UnknownSeverity {
                    given: s,
                    allowed: state.catalog.severities.keys(),
                }
                .into())
            }
        }
    }
    if let Some(t) = p.severity_at_least.filter(|t| !t.trim().is_empty()) {
        let at_least = state.catalog.severities.at_least_keys(&t);
        if at_least.is_empty() {
            return Err(klaxon_core::CommandError::UnknownSeverity {
                given: t,
                allowed: state.catalog.severities.keys(),
            }
            .into());
        }
        let asked = !severities.is_empty();
        severities = if asked {
            severities
                .into_iter()
                .filter(|s| at_least.contains(s))
                .collect()
        } else {
            at_least
        };
        if severities.is_empty() {
            return Ok(None);
        }
    }
    let mut statuses = Vec::new();
    for s in split(p.status) {
        match state.catalog.statuses.get(&s) {
            Some(def) => statuses.push(def.key.clone()),
            None => {
                return Err(klaxon_core::CommandError::UnknownStatus {
                    given: s,
                    allowed: state.catalog.statuses.keys(),
                }
                .into())
            }
        }
    }
    let label = match p.label.filter(|l| !l.trim().is_empty()) {
        None => None,
        Some(l) => match l.split_once(':') {
            Some((k, v)) => Some((k.trim().to_string(), v.trim().to_string())),
            None => {
                return Err(ApiError::bad_request(format!(
                    "label `{l}` must be written key:value, such as team:payments"
                ))
                .field("label"))
            }
        },
    };
    let before = match p.before.filter(|b| !b.is_empty()) {
        Some(b) => Some(parse_ref(&b)?.number()),
        None => None,
    };
    Ok(Some(IncidentQuery {
        statuses,
        open: p.open,
        severities,
        service: p
            .service
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string()),
        label,
        text: p.q.filter(|q| !q.trim().is_empty()),
        include_private: caller.access == Access::Admin,
        member: caller.person_id(),
        include_drills: p.drills.unwrap_or(true),
        before,
        limit: p.limit.unwrap_or(50),
    }))
}

/// List and search incidents, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(ListParams),
    responses((status = 200, description = "A page of incidents", body = IncidentList),
              (status = 422, description = "A filter names an unknown severity or status", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<ListParams>,
) -> Result<Json<IncidentList>, ApiError> {
    let page = match list_query(&state, &caller, p)? {
        Some(q) => state.store.list_incidents(&q).await?,
        None => klaxon_store::IncidentPage {
            incidents: Vec::new(),
            next: None,
        },
    };
    let ids = page
        .incidents
        .iter()
        .flat_map(views::incident_people)
        .collect();
    let people = People::load(state.store.as_ref(), ids).await?;
    Ok(Json(IncidentList {
        incidents: page
            .incidents
            .iter()
            .map(|i| views::incident_view(i, &people, &state.settings.public_url))
            .collect(),
        next: page.next.and_then(IncidentRef::new).map(|r| r.to_string()),
    }))
}

/// One incident.
#[utoipa::path(get, path = "/api/v1/incidents/{reference}", tag = "incidents",
    params(("reference" = String, Path, description = "`INC-42`")),
    responses((status = 200, description = "The incident", body = IncidentView),
              (status = 404, description = "No such incident, or a private one you are not a member of", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<Json<IncidentView>, ApiError> {
    let i = visible(&state, &caller, parse_ref(&reference)?).await?;
    Ok(Json(view(&state, &i).await?))
}

pub(crate) fn edit_commands(b: EditBody) -> Vec<Command> {
    let mut c = Vec::new();
    if let Some(title) = b.title {
        c.push(Command::SetTitle { title });
    }
    if let Some(summary) = b.summary {
        c.push(Command::SetSummary { summary });
    }
    if let Some(impact) = b.impact {
        c.push(Command::SetImpact { impact });
    }
    if let Some(severity) = b.severity {
        c.push(Command::SetSeverity { severity });
    }
    if let Some(incident_type) = b.incident_type {
        c.push(Command::SetType { incident_type });
    }
    if let Some(services) = b.services {
        c.push(Command::SetServices { services });
    }
    for (key, value) in b.labels.unwrap_or_default() {
        c.push(Command::SetLabel { key, value });
    }
    if let Some(private) = b.private {
        c.push(Command::SetPrivate { private });
    }
    if let Some(at) = b.impact_started_at {
        c.push(Command::SetImpactStartedAt { at });
    }
    if let Some(at) = b.impact_ended_at {
        c.push(Command::SetImpactEndedAt { at });
    }
    c
}

/// Change fields; all of them or, if one is refused, none.
#[utoipa::path(patch, path = "/api/v1/incidents/{reference}", tag = "incidents", request_body = EditBody,
    params(("reference" = String, Path, description = "`INC-42`")),
    responses((status = 200, description = "The incident after the change", body = IncidentView),
              (status = 422, description = "A field is not valid; nothing was changed", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    Body(body): Body<EditBody>,
) -> Result<Json<IncidentView>, ApiError> {
    caller.require(Access::Responder)?;
    let r = visible(&state, &caller, parse_ref(&reference)?)
        .await?
        .reference;
    let applied = state
        .store
        .execute_all(r, state.request(&caller, edit_commands(body)))
        .await?;
    state.jobs_enqueued(applied.jobs.len());
    Ok(Json(view(&state, &applied.incident).await?))
}

pub(crate) async fn run(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    command: Command,
) -> Result<Incident, ApiError> {
    caller.require(Access::Responder)?;
    let r = visible(state, caller, parse_ref(reference)?)
        .await?
        .reference;
    let applied = state
        .store
        .execute(r, state.request(caller, command))
        .await?;
    state.jobs_enqueued(applied.jobs.len());
    Ok(applied.incident)
}

/// Move the status (resolve, reopen …) along the configured transitions.
#[utoipa::path(post, path = "/api/v1/incidents/{reference}/status", tag = "incidents", request_body = StatusBody,
    params(("reference" = String, Path, description = "`INC-42`")),
    responses((status = 200, description = "The incident after the change", body = IncidentView),
              (status = 422, description = "Unknown status, or a transition the configuration does not allow", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn change_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    Body(b): Body<StatusBody>,
) -> Result<Json<IncidentView>, ApiError> {
    let i = run(
        &state,
        &caller,
        &reference,
        Command::ChangeStatus { status: b.status },
    )
    .await?;
    Ok(Json(view(&state, &i).await?))
}

pub(crate) async fn check_person(state: &AppState, id: i64) -> Result<PersonId, ApiError> {
    match state.store.person(PersonId(id)).await? {
        Some(p) => Ok(p.id),
        None => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_person",
            format!("there is no person with id {id}"),
        )
        .field("person_id")),
    }
}

/// Give a role to a person.
#[utoipa::path(put, path = "/api/v1/incidents/{reference}/roles/{role}", tag = "incidents", request_body = RoleBody,
    params(("reference" = String, Path, description = "`INC-42`"), ("role" = String, Path, description = "A role key: `lead`, `comms` …")),
    responses((status = 200, description = "The incident after the change", body = IncidentView),
              (status = 422, description = "Unknown role or person", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn assign_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((reference, role)): Path<(String, String)>,
    Body(b): Body<RoleBody>,
) -> Result<Json<IncidentView>, ApiError> {
    let person = check_person(&state, b.person_id).await?;
    let i = run(
        &state,
        &caller,
        &reference,
        Command::AssignRole { role, person },
    )
    .await?;
    Ok(Json(view(&state, &i).await?))
}

/// Release a role.
#[utoipa::path(delete, path = "/api/v1/incidents/{reference}/roles/{role}", tag = "incidents",
    params(("reference" = String, Path, description = "`INC-42`"), ("role" = String, Path, description = "A role key")),
    responses((status = 200, description = "The incident after the change", body = IncidentView),
              (status = 422, description = "Nobody holds the role", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn release_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((reference, role)): Path<(String, String)>,
) -> Result<Json<IncidentView>, ApiError> {
    let i = run(&state, &caller, &reference, Command::ReleaseRole { role }).await?;
    Ok(Json(view(&state, &i).await?))
}

/// Add a note to the timeline.
#[utoipa::path(post, path = "/api/v1/incidents/{reference}/notes", tag = "incidents", request_body = NoteBody,
    params(("reference" = String, Path, description = "`INC-42`")),
    responses((status = 201, description = "The note, as a timeline event", body = EventView),
              (status = 422, description = "The note is empty or too long", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    Body(b): Body<NoteBody>,
) -> Result<Response, ApiError> {
    caller.require(Access::Responder)?;
    let r = visible(&state, &caller, parse_ref(&reference)?)
        .await?
        .reference;
    let applied = state
        .store
        .execute(r, state.request(&caller, Command::AddNote { text: b.text }))
        .await?;
    let event = applied
        .events
        .last()
        .ok_or_else(|| ApiError::internal("the note was not recorded", "no event"))?;
    let people = People::load(state.store.as_ref(), views::event_people(&applied.events)).await?;
    Ok((
        StatusCode::CREATED,
        Json(views::event_view(event, &people, &state.catalog)),
    )
        .into_response())
}

/// Add a follow-up action.
#[utoipa::path(post, path = "/api/v1/incidents/{reference}/follow-ups", tag = "incidents", request_body = FollowUpBody,
    params(("reference" = String, Path, description = "`INC-42`")),
    responses((status = 201, description = "The incident with its new follow-up", body = IncidentView),
              (status = 422, description = "The text is empty or too long, or the owner unknown", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_follow_up(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    Body(b): Body<FollowUpBody>,
) -> Result<Response, ApiError> {
    let owner = match b.owner_id {
        Some(id) => Some(check_person(&state, id).await?),
        None => None,
    };
    let command = Command::AddFollowUp {
        text: b.text,
        owner,
        due_at: b.due_at,
    };
    let i = run(&state, &caller, &reference, command).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &i).await?)).into_response())
}

/// Mark a follow-up action done.
#[utoipa::path(post, path = "/api/v1/incidents/{reference}/follow-ups/{id}/done", tag = "incidents",
    params(("reference" = String, Path, description = "`INC-42`"), ("id" = u32, Path, description = "The follow-up's number")),
    responses((status = 200, description = "The incident after the change", body = IncidentView),
              (status = 422, description = "No such follow-up", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn complete_follow_up(
    State(state): State<AppState>,
    caller: Caller,
    Path((reference, id)): Path<(String, u32)>,
) -> Result<Json<IncidentView>, ApiError> {
    let i = run(
        &state,
        &caller,
        &reference,
        Command::CompleteFollowUp { id },
    )
    .await?;
    Ok(Json(view(&state, &i).await?))
}

/// The timeline: every change, oldest first.
#[utoipa::path(get, path = "/api/v1/incidents/{reference}/timeline", tag = "incidents",
    params(("reference" = String, Path, description = "`INC-42`"), TimelineParams),
    responses((status = 200, description = "Events after `after`", body = Timeline)),
    security(("bearer" = [])))]
pub async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    Params(p): Params<TimelineParams>,
) -> Result<Json<Timeline>, ApiError> {
    let i = visible(&state, &caller, parse_ref(&reference)?).await?;
    let events = state
        .store
        .events(i.reference, p.after, p.limit.unwrap_or(200).clamp(1, 1000))
        .await?;
    let people = People::load(state.store.as_ref(), views::event_people(&events)).await?;
    Ok(Json(Timeline {
        next_after: events.last().map(|e| e.seq).unwrap_or(p.after),
        events: events
            .iter()
            .map(|e| views::event_view(e, &people, &state.catalog))
            .collect(),
    }))
}

/// The external actions the incident caused, with their state, attempts and last error.
#[utoipa::path(get, path = "/api/v1/incidents/{reference}/actions", tag = "incidents",
    params(("reference" = String, Path, description = "`INC-42`")),
    responses((status = 200, description = "The actions, oldest first", body = ActionList)),
    security(("bearer" = [])))]
pub async fn actions(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<Json<ActionList>, ApiError> {
    let i = visible(&state, &caller, parse_ref(&reference)?).await?;
    let jobs = state.store.incident_jobs(i.reference).await?;
    Ok(Json(ActionList {
        actions: jobs.iter().map(views::action_view).collect(),
    }))
}

pub(crate) async fn retry(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    id: i64,
) -> Result<ActionView, ApiError> {
    caller.require(Access::Responder)?;
    let i = visible(state, caller, parse_ref(reference)?).await?;
    match state.store.job(JobId(id)).await? {
        Some(j) if j.incident == Some(i.reference) => {
            if !matches!(j.state, JobState::Dead | JobState::Cancelled) {
                return Err(ApiError::new(StatusCode::CONFLICT, "not_retryable", format!("action {id} is {}: only a failed (dead) or cancelled action can be retried", j.state.as_str())));
            }
            let job = state.store.retry_job(j.id, klaxon_core::now()).await?;
            state.jobs_enqueued(1);
            Ok(views::action_view(&job))
        }
        _ => Err(ApiError::not_found(format!(
            "action {id} of {}",
            i.reference
        ))),
    }
}

/// Run a failed action again.
#[utoipa::path(post, path = "/api/v1/incidents/{reference}/actions/{id}/retry", tag = "incidents",
    params(("reference" = String, Path, description = "`INC-42`"), ("id" = i64, Path, description = "The action's id")),
    responses((status = 200, description = "The action, queued again", body = ActionView),
              (status = 409, description = "The action has not failed", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry_action(
    State(state): State<AppState>,
    caller: Caller,
    Path((reference, id)): Path<(String, i64)>,
) -> Result<Json<ActionView>, ApiError> {
    Ok(Json(retry(&state, &caller, &reference, id).await?))
}

/// Who the credentials belong to.
#[utoipa::path(get, path = "/api/v1/me", tag = "people",
    responses((status = 200, description = "The caller", body = Me), (status = 401, description = "No or bad credentials", body = crate::ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        name: caller.name(),
        access: caller.access.as_str().into(),
        person_id: caller.person_id().map(|p| p.0),
    })
}

/// The configured severities, statuses (with their transitions), roles and incident types.
#[utoipa::path(get, path = "/api/v1/catalog", tag = "incidents",
    responses((status = 200, description = "The catalog", body = Object)),
    security(("bearer" = [])))]
pub async fn catalog(State(state): State<AppState>, _caller: Caller) -> Json<klaxon_core::Catalog> {
    Json(state.catalog.as_ref().clone())
}
