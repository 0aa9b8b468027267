//! The incident page and its forms: change every field, move the status, assign roles, add
//! notes, retry actions; and the timeline fragment the page's script polls for.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDateTime, TimeZone, Utc};
use klaxon_core::{Access, Command, Event, Incident};
use klaxon_store::JobState;
use serde::Deserialize;

use super::pages::{blank, fail, severity_options, split_list, Layout, Opt};
use super::{full_time, render, sev_class};
use crate::api::incidents as api;
use crate::auth::{Caller, WebCaller, WebForm};
use crate::views::{self, People};
use crate::{ApiError, AppState};

#[derive(Clone)]
pub struct Item {
    pub seq: u64,
    pub iso: String,
    pub time: String,
    pub actor: String,
    pub text: String,
    pub class: &'static str,
}

#[derive(Template)]
#[template(path = "timeline_items.html")]
struct TimelineItems {
    items: Vec<Item>,
}

pub struct Head {
    pub reference: String,
    pub title: String,
    pub summary: String,
    pub impact: String,
    pub severity: String,
    pub sev_class: String,
    pub status: String,
    pub phase: &'static str,
    pub incident_type: String,
    pub services: String,
    pub labels: String,
    pub private: bool,
    pub drill: bool,
    pub lead: String,
    pub links: Vec<views::LinkView>,
    pub impact_started_at: String,
    pub impact_ended_at: String,
}

pub struct RoleRow {
    pub key: String,
    pub name: String,
    pub holder: String,
    pub people: Vec<Opt>,
}

pub struct ActionRow {
    pub id: i64,
    pub kind: String,
    pub state: &'static str,
    pub attempts: u32,
    pub max_attempts: u32,
    pub error: String,
    pub retryable: bool,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    layout: Layout,
    error: String,
    i: Head,
    can_edit: bool,
    /// Whether the status page form is shown (an integration can take it).
    statuspage: bool,
    transitions: Vec<String>,
    severities: Vec<Opt>,
    roles: Vec<RoleRow>,
    milestones: Vec<(&'static str, String)>,
    timeline: Vec<Item>,
    last_seq: u64,
    actions: Vec<ActionRow>,
    follow_ups: Vec<FollowUpRow>,
    /// Reminders the playbooks will send, and what they did.
    pending: Vec<(String, String)>,
    done: Vec<(String, String, String)>,
}

struct FollowUpRow {
    id: u32,
    text: String,
    owner: String,
    due: String,
    done: bool,
    overdue: bool,
}

fn items(state: &AppState, events: &[Event], people: &People) -> Vec<Item> {
    events
        .iter()
        .map(|e| Item {
            seq: e.seq,
            iso: e.at.to_rfc3339(),
            time: e.at.format("%H:%M").to_string(),
            actor: klaxon_core::actor_name(&e.actor, &|p| people.name(p)),
            text: klaxon_core::describe(e, &state.catalog, &|p| people.name(p)),
            class: e.kind.name(),
        })
        .collect()
}

fn local_input(t: Option<chrono::DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

async fn incident_page(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    error: String,
    status: StatusCode,
) -> Response {
    let i = match api::parse_ref(reference) {
        Ok(r) => match api::visible(state, caller, r).await {
            Ok(i) => i,
            Err(e) => return fail(e),
        },
        Err(e) => return fail(e),
    };
    let (events, jobs, everyone) = match (
        state.store.events(i.reference, 0, 5000).await,
        state.store.incident_jobs(i.reference).await,
        state.store.people(500).await,
    ) {
        (Ok(e), Ok(j), Ok(p)) => (e, j, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(e.into()),
    };
    let mut ids = views::incident_people(&i);
    ids.extend(views::event_people(&events));
    let people = match People::load(state.store.as_ref(), ids).await {
        Ok(p) => p,
        Err(e) => return fail(e.into()),
    };
    let transitions = state
        .catalog
        .statuses
        .get(&i.status)
        .map(|s| s.next.clone())
        .unwrap_or_else(|| state.catalog.statuses.keys());
    let roles = state
        .catalog
        .roles
        .all()
        .iter()
        .map(|r| {
            let holder = i.roles.get(&r.key).copied();
            RoleRow {
                key: r.key.clone(),
                name: r.name.clone(),
                holder: holder
                    .map(|p| people.name(p))
                    .unwrap_or_else(|| "nobody".into()),
                people: everyone
                    .iter()
                    .map(|p| Opt {
                        value: p.id.0.to_string(),
                        label: p.name.clone(),
                        selected: Some(p.id) == holder,
                    })
                    .collect(),
            }
        })
        .collect();
    let mut milestones = vec![("Declared", full_time(i.declared_at))];
    for (label, t) in [
        ("Acknowledged", i.acknowledged_at),
        ("Mitigated", i.mitigated_at),
        ("Resolved", i.resolved_at),
        ("Closed", i.closed_at),
        ("Impact started", i.impact_started_at),
        ("Impact ended", i.impact_ended_at),
    ] {
        if let Some(t) = t {
            milestones.push((label, full_time(t)));
        }
    }
    let (steps, jobs): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j.kind == "playbook.step");
    let playbook = |j: &klaxon_store::Job| {
        j.payload["playbook"]
            .as_str()
            .unwrap_or("a playbook")
            .to_string()
    };
    let pending = steps
        .iter()
        .filter(|j| matches!(j.state, JobState::Pending | JobState::Running))
        .map(|j| {
            // A reminder whose condition already holds will drop itself when due: say so.
            let step = state.settings.playbooks.iter().find(|p| p.name == playbook(j)).and_then(|p| p.steps.get(j.payload["step"].as_u64().unwrap_or(0) as usize));
            let moot = matches!(step, Some(klaxon_core::playbook::Step::Remind { until, .. }) if until.holds(&i, &state.catalog));
            let when = full_time(j.run_at);
            (playbook(j), if moot { format!("{when} (no longer needed: it will be dropped)") } else { when })
        })
        .collect();
    let done = steps
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .map(|j| {
            let r = j.result.clone().unwrap_or_default();
            let what = r["text"]
                .as_str()
                .or(r["noted"].as_str())
                .map(String::from)
                .or(r["stopped"].as_str().map(|w| format!("stopped: {w}")))
                .unwrap_or_else(|| "done".into());
            (
                playbook(j),
                j.finished_at.map(full_time).unwrap_or_default(),
                what,
            )
        })
        .collect();
    let actions = jobs
        .iter()
        .map(|j| ActionRow {
            id: j.id.0,
            kind: j.kind.clone(),
            state: j.state.as_str(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            error: j.last_error.clone().unwrap_or_default(),
            retryable: matches!(j.state, JobState::Dead | JobState::Cancelled),
        })
        .collect();
    let page = IncidentPage {
        layout: Layout::new(caller, format!("{} {}", i.reference, i.title), "incidents"),
        error,
        can_edit: caller.access >= Access::Responder,
        statuspage: state.actions.is_some() && !i.private && !i.drill,
        transitions,
        severities: severity_options(state, i.severity.as_deref()),
        roles,
        milestones,
        last_seq: events.last().map(|e| e.seq).unwrap_or(0),
        timeline: items(state, &events, &people),
        actions,
        follow_ups: i
            .follow_ups
            .iter()
            .map(|f| FollowUpRow {
                id: f.id,
                text: f.text.clone(),
                owner: f.owner.map(|p| people.name(p)).unwrap_or_default(),
                due: f.due_at.map(full_time).unwrap_or_default(),
                done: f.done_at.is_some(),
                overdue: f.done_at.is_none() && f.due_at.is_some_and(|d| d < Utc::now()),
            })
            .collect(),
        pending,
        done,
        i: Head {
            reference: i.reference.to_string(),
            title: i.title.clone(),
            summary: i.summary.clone(),
            impact: i.impact.clone(),
            severity: i.severity.clone().unwrap_or_else(|| "No severity".into()),
            sev_class: sev_class(&state.catalog, i.severity.as_deref()),
            status: i.status.clone(),
            phase: i.phase.as_str(),
            incident_type: i.incident_type.clone().unwrap_or_default(),
            services: i.services.join(", "),
            labels: i
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            private: i.private,
            drill: i.drill,
            lead: i
                .lead()
                .map(|p| people.name(p))
                .unwrap_or_else(|| "nobody".into()),
            links: i
                .links
                .values()
                .map(|l| views::LinkView {
                    label: l.label.clone(),
                    url: l.url.clone(),
                })
                .collect(),
            impact_started_at: local_input(i.impact_started_at),
            impact_ended_at: local_input(i.impact_ended_at),
        },
    };
    render(status, &page)
}

pub async fn incident(
    State(state): State<AppState>,
    WebCaller(caller): WebCaller,
    Path(reference): Path<String>,
) -> Response {
    incident_page(&state, &caller, &reference, String::new(), StatusCode::OK).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AfterParam {
    after: u64,
}

/// The timeline entries after `after`, as HTML, for the page's live updates.
pub async fn timeline_fragment(
    State(state): State<AppState>,
    WebCaller(caller): WebCaller,
    Path(reference): Path<String>,
    axum::extract::Query(p): axum::extract::Query<AfterParam>,
) -> Response {
    let r = match api::parse_ref(&reference) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let i = match api::visible(&state, &caller, r).await {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let events = match state.store.events(i.reference, p.after, 500).await {
        Ok(e) => e,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let people = match People::load(state.store.as_ref(), views::event_people(&events)).await {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    render(
        StatusCode::OK,
        &TimelineItems {
            items: items(&state, &events, &people),
        },
    )
}

/// Runs commands from a form and goes back to the incident, or shows why they were refused.
async fn apply(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    commands: Result<Vec<Command>, String>,
) -> Response {
    let outcome = match commands {
        Err(message) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_form",
            message,
        )),
        Ok(commands) => {
            async {
                caller.require(Access::Responder)?;
                let r = api::visible(state, caller, api::parse_ref(reference)?)
                    .await?
                    .reference;
                let applied = state
                    .store
                    .execute_all(r, state.request(caller, commands))
                    .await?;
                state.jobs_enqueued(applied.jobs.len());
                Ok::<_, ApiError>(r)
            }
            .await
        }
    };
    match outcome {
        Ok(r) => Redirect::to(&format!("/incidents/{r}")).into_response(),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            incident_page(state, caller, reference, e.message, e.status).await
        }
        Err(e) => fail(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EditForm {
    title: String,
    summary: String,
    impact: String,
    #[serde(rename = "type")]
    incident_type: String,
    services: String,
    labels: String,
    impact_started_at: String,
    impact_ended_at: String,
    private: Option<String>,
}

fn parse_local(field: &str, s: &str) -> Result<Option<chrono::DateTime<Utc>>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .map(|t| Some(Utc.from_utc_datetime(&t)))
        .map_err(|_| format!("{field}: `{s}` is not a date and time; use YYYY-MM-DDTHH:MM in UTC"))
}

fn edit_commands(current: &Incident, f: EditForm) -> Result<Vec<Command>, String> {
    let mut labels = BTreeMap::new();
    for line in f.labels.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once('=')
            .or_else(|| line.split_once(':'))
            .ok_or_else(|| {
                format!("labels: write each label as key=value on its own line, not `{line}`")
            })?;
        labels.insert(k.trim().to_string(), Some(v.trim().to_string()));
    }
    let gone: Vec<String> = current
        .labels
        .keys()
        .filter(|k| !labels.contains_key(*k))
        .cloned()
        .collect();
    for key in gone {
        labels.insert(key, None);
    }
    Ok(api::edit_commands(api::EditBody {
        title: Some(f.title),
        summary: Some(f.summary),
        impact: Some(f.impact),
        severity: None,
        incident_type: Some(blank(&f.incident_type)),
        services: Some(split_list(&f.services)),
        labels: Some(labels),
        private: Some(f.private.is_some()),
        impact_started_at: Some(parse_local("impact started", &f.impact_started_at)?),
        impact_ended_at: Some(parse_local("impact ended", &f.impact_ended_at)?),
    }))
}

pub async fn edit(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    WebForm { caller, form }: WebForm<EditForm>,
) -> Response {
    let current = match api::parse_ref(&reference) {
        Ok(r) => match api::visible(&state, &caller, r).await {
            Ok(i) => i,
            Err(e) => return fail(e),
        },
        Err(e) => return fail(e),
    };
    apply(&state, &caller, &reference, edit_commands(&current, form)).await
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

pub async fn status(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    WebForm { caller, form }: WebForm<StatusForm>,
) -> Response {
    apply(
        &state,
        &caller,
        &reference,
        Ok(vec![Command::ChangeStatus {
            status: form.status,
        }]),
    )
    .await
}

#[derive(Deserialize)]
pub struct SeverityForm {
    severity: String,
}

pub async fn severity(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    WebForm { caller, form }: WebForm<SeverityForm>,
) -> Response {
    apply(
        &state,
        &caller,
        &reference,
        Ok(vec![Command::SetSeverity {
            severity: blank(&form.severity),
        }]),
    )
    .await
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
    person: String,
}

pub async fn role(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    WebForm { caller, form }: WebForm<RoleForm>,
) -> Response {
    let command = match form.person.trim() {
        "" => Ok(vec![Command::ReleaseRole { role: form.role }]),
        p => match p.parse::<i64>() {
            Ok(id) => match api::check_person(&state, id).await {
                Ok(person) => Ok(vec![Command::AssignRole {
                    role: form.role,
                    person,
                }]),
                Err(e) => Err(e.message),
            },
            Err(_) => Err(format!("`{p}` is not a person")),
        },
    };
    apply(&state, &caller, &reference, command).await
}

#[derive(Deserialize)]
pub struct NoteForm {
    text: String,
}

#[derive(Deserialize)]
pub struct FollowUpForm {
    text: String,
    #[serde(default)]
    due: String,
}

pub async fn add_follow_up(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    WebForm { caller, form }: WebForm<FollowUpForm>,
) -> Response {
    let command = parse_local("due", &form.due).map(|due_at| {
        vec![Command::AddFollowUp {
            text: form.text,
            owner: None,
            due_at,
        }]
    });
    apply(&state, &caller, &reference, command).await
}

pub async fn complete_follow_up(
    State(state): State<AppState>,
    Path((reference, id)): Path<(String, u32)>,
    WebForm { caller, .. }: WebForm<serde::de::IgnoredAny>,
) -> Response {
    apply(
        &state,
        &caller,
        &reference,
        Ok(vec![Command::CompleteFollowUp { id }]),
    )
    .await
}

pub async fn note(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    WebForm { caller, form }: WebForm<NoteForm>,
) -> Response {
    apply(
        &state,
        &caller,
        &reference,
        Ok(vec![Command::AddNote { text: form.text }]),
    )
    .await
}

/// Posts an update to the status page (creating the public incident first if need be).
pub async fn statuspage(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    WebForm { caller, form }: WebForm<NoteForm>,
) -> Response {
    let outcome = async {
        caller.require(Access::Responder)?;
        let i = api::visible(&state, &caller, api::parse_ref(&reference)?).await?;
        let Some(actions) = &state.actions else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_configured",
                "No status page is set up in this Klaxon ([statuspage]).",
            ));
        };
        let who = caller
            .person
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let jobs = actions
            .post_status(&i, &form.text, &who, klaxon_core::now())
            .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", m))?;
        state.store.enqueue(&jobs, klaxon_core::now()).await?;
        state.jobs_enqueued(jobs.len());
        Ok::<_, ApiError>(i.reference)
    }
    .await;
    match outcome {
        Ok(r) => Redirect::to(&format!("/incidents/{r}")).into_response(),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            incident_page(&state, &caller, &reference, e.message, e.status).await
        }
        Err(e) => fail(e),
    }
}

pub async fn retry(
    State(state): State<AppState>,
    Path((reference, id)): Path<(String, i64)>,
    WebForm { caller, .. }: WebForm<serde::de::IgnoredAny>,
) -> Response {
    match api::retry(&state, &caller, &reference, id).await {
        Ok(_) => Redirect::to(&format!("/incidents/{reference}")).into_response(),
        Err(e) => incident_page(&state, &caller, &reference, e.message, e.status).await,
    }
}
