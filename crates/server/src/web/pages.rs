use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use klaxon_core::{Access, Declare, Incident, IncidentRef};
use klaxon_store::IncidentQuery;
use serde::Deserialize;

use super::{age, error_page, full_time, render, sev_class};
use crate::api::incidents::{self as api, ListParams};
use crate::auth::{Caller, WebCaller, WebForm};
use crate::views::{self, People};
use crate::{ApiError, AppState};

pub struct Layout {
    pub title: String,
    pub user: String,
    pub access: &'static str,
    pub csrf: String,
    pub admin: bool,
    pub nav: &'static str,
}

impl Layout {
    pub(super) fn new(caller: &Caller, title: impl Into<String>, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            user: caller.name(),
            access: caller.access.as_str(),
            csrf: caller.csrf().to_string(),
            admin: caller.access == Access::Admin,
            nav,
        }
    }
}

#[derive(Clone)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Clone)]
pub struct Row {
    pub reference: String,
    pub title: String,
    pub severity: String,
    pub sev_class: String,
    pub status: String,
    pub phase: &'static str,
    pub lead: String,
    pub age: String,
    pub declared: String,
    pub private: bool,
    pub drill: bool,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub error: String,
    pub next: String,
    pub login: String,
}

pub struct Group {
    pub label: String,
    pub sev_class: String,
    pub rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    groups: Vec<Group>,
    open_count: usize,
    resolved: Vec<Row>,
}

#[derive(Template)]
#[template(path = "declare.html")]
struct DeclarePage {
    layout: Layout,
    error: String,
    title: String,
    severities: Vec<Opt>,
    incident_type: String,
    types: Vec<String>,
    services: String,
    summary: String,
    private: bool,
}

pub struct Filters {
    pub q: String,
    pub service: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage {
    layout: Layout,
    error: String,
    f: Filters,
    statuses: Vec<Opt>,
    severities: Vec<Opt>,
    rows: Vec<Row>,
    next: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    tokens: Vec<(String, &'static str, String, String, &'static str)>,
    config: String,
}

pub(super) fn fail(e: ApiError) -> Response {
    error_page(e.status, &e.message)
}

pub(super) fn severity_options(state: &AppState, selected: Option<&str>) -> Vec<Opt> {
    state
        .catalog
        .severities
        .all()
        .iter()
        .map(|s| Opt {
            value: s.key.clone(),
            label: format!("{} ({})", s.key, s.name),
            selected: selected.is_some_and(|x| x.eq_ignore_ascii_case(&s.key)),
        })
        .collect()
}

fn rows(state: &AppState, incidents: &[Incident], people: &People) -> Vec<Row> {
    let now = klaxon_core::now();
    incidents
        .iter()
        .map(|i| Row {
            reference: i.reference.to_string(),
            title: i.title.clone(),
            severity: i.severity.clone().unwrap_or_else(|| "—".into()),
            sev_class: sev_class(&state.catalog, i.severity.as_deref()),
            status: i.status.clone(),
            phase: i.phase.as_str(),
            lead: i
                .lead()
                .map(|p| people.name(p))
                .unwrap_or_else(|| "—".into()),
            age: age(i.declared_at, i.resolved_at.unwrap_or(now)),
            declared: full_time(i.declared_at),
            private: i.private,
            drill: i.drill,
        })
        .collect()
}

async fn load_people(state: &AppState, incidents: &[Incident]) -> Result<People, ApiError> {
    let ids = incidents.iter().flat_map(views::incident_people).collect();
    Ok(People::load(state.store.as_ref(), ids).await?)
}

fn visibility(caller: &Caller) -> IncidentQuery {
    IncidentQuery {
        include_private: caller.access == Access::Admin,
        member: caller.person_id(),
        include_drills: true,
        ..Default::default()
    }
}

pub async fn dashboard(State(state): State<AppState>, WebCaller(caller): WebCaller) -> Response {
    let open = IncidentQuery {
        open: Some(true),
        limit: 200,
        ..visibility(&caller)
    };
    let closed = IncidentQuery {
        open: Some(false),
        limit: 50,
        ..visibility(&caller)
    };
    let (open, closed) = match (
        state.store.list_incidents(&open).await,
        state.store.list_incidents(&closed).await,
    ) {
        (Ok(o), Ok(c)) => (o.incidents, c.incidents),
        (Err(e), _) | (_, Err(e)) => return fail(e.into()),
    };
    let mut recent = closed;
    recent.sort_by_key(|i| std::cmp::Reverse(i.resolved_at));
    recent.truncate(10);
    let all: Vec<Incident> = open.iter().chain(recent.iter()).cloned().collect();
    let people = match load_people(&state, &all).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let mut by_severity: BTreeMap<usize, Vec<Incident>> = BTreeMap::new();
    for i in &open {
        let rank = i
            .severity
            .as_deref()
            .and_then(|s| state.catalog.severities.rank(s))
            .unwrap_or(usize::MAX);
        by_severity.entry(rank).or_default().push(i.clone());
    }
    let groups = by_severity
        .into_iter()
        .map(|(rank, list)| {
            let def = state.catalog.severities.all().get(rank);
            Group {
                label: def
                    .map(|d| format!("{} {}", d.key, d.name))
                    .unwrap_or_else(|| "No severity yet".into()),
                sev_class: sev_class(&state.catalog, def.map(|d| d.key.as_str())),
                rows: rows(&state, &list, &people),
            }
        })
        .collect();
    let page = DashboardPage {
        layout: Layout::new(&caller, "Dashboard", "dashboard"),
        groups,
        open_count: open.len(),
        resolved: rows(&state, &recent, &people),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeclareForm {
    title: String,
    severity: String,
    #[serde(rename = "type")]
    incident_type: String,
    services: String,
    summary: String,
    private: Option<String>,
}

fn declare_form_page(
    state: &AppState,
    caller: &Caller,
    f: DeclareForm,
    error: String,
) -> DeclarePage {
    DeclarePage {
        layout: Layout::new(caller, "Declare an incident", "dashboard"),
        error,
        severities: severity_options(state, Some(&f.severity)),
        types: state.catalog.types.clone(),
        title: f.title,
        incident_type: f.incident_type,
        services: f.services,
        summary: f.summary,
        private: f.private.is_some(),
    }
}

pub async fn declare_page(State(state): State<AppState>, WebCaller(caller): WebCaller) -> Response {
    if let Err(e) = caller.require(Access::Responder) {
        return fail(e);
    }
    render(
        StatusCode::OK,
        &declare_form_page(&state, &caller, DeclareForm::default(), String::new()),
    )
}

pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

pub(super) fn blank(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

pub async fn declare(
    State(state): State<AppState>,
    WebForm { caller, form }: WebForm<DeclareForm>,
) -> Response {
    if let Err(e) = caller.require(Access::Responder) {
        return fail(e);
    }
    let d = Declare {
        title: form.title.clone(),
        summary: form.summary.clone(),
        severity: blank(&form.severity),
        incident_type: blank(&form.incident_type),
        services: split_list(&form.services),
        private: form.private.is_some(),
        lead: caller.person_id(),
        ..Default::default()
    };
    match state.store.declare(state.request(&caller, d)).await {
        Ok(applied) => {
            state.jobs_enqueued(applied.jobs.len());
            Redirect::to(&format!("/incidents/{}", applied.incident.reference)).into_response()
        }
        Err(e) => {
            let e = ApiError::from(e);
            render(
                e.status,
                &declare_form_page(&state, &caller, form, e.message),
            )
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListForm {
    q: String,
    status: String,
    severity: String,
    service: String,
    label: String,
    before: String,
}

pub async fn list(
    State(state): State<AppState>,
    WebCaller(caller): WebCaller,
    axum::extract::Query(f): axum::extract::Query<ListForm>,
) -> Response {
    let params = ListParams {
        status: blank(&f.status),
        severity: blank(&f.severity),
        service: blank(&f.service),
        label: blank(&f.label),
        q: blank(&f.q),
        before: blank(&f.before),
        limit: Some(50),
        ..Default::default()
    };
    let (found, error) = match api::list_query(&state, &caller, params) {
        Ok(Some(q)) => match state.store.list_incidents(&q).await {
            Ok(page) => (page, String::new()),
            Err(e) => return fail(e.into()),
        },
        Ok(None) => (
            klaxon_store::IncidentPage {
                incidents: vec![],
                next: None,
            },
            String::new(),
        ),
        Err(e) => (
            klaxon_store::IncidentPage {
                incidents: vec![],
                next: None,
            },
            e.message,
        ),
    };
    let people = match load_people(&state, &found.incidents).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let next = match found.next.and_then(IncidentRef::new) {
        Some(r) => {
            let mut q: Vec<(&str, String)> = vec![("before", r.to_string())];
            for (k, v) in [
                ("q", &f.q),
                ("status", &f.status),
                ("severity", &f.severity),
                ("service", &f.service),
                ("label", &f.label),
            ] {
                if !v.is_empty() {
                    q.push((k, v.clone()));
                }
            }
            format!(
                "/incidents?{}",
                serde_urlencoded::to_string(q).unwrap_or_default()
            )
        }
        None => String::new(),
    };
    let statuses = state
        .catalog
        .statuses
        .list
        .iter()
        .map(|s| Opt {
            value: s.key.clone(),
            label: s.key.clone(),
            selected: s.key.eq_ignore_ascii_case(&f.status),
        })
        .collect();
    let page = IncidentsPage {
        layout: Layout::new(&caller, "Incidents", "incidents"),
        error,
        statuses,
        severities: severity_options(&state, Some(&f.severity)),
        rows: rows(&state, &found.incidents, &people),
        f: Filters {
            q: f.q,
            service: f.service,
            label: f.label,
        },
        next,
    };
    render(StatusCode::OK, &page)
}

pub async fn settings(State(state): State<AppState>, WebCaller(caller): WebCaller) -> Response {
    if let Err(e) = caller.require(Access::Admin) {
        return fail(e);
    }
    let tokens = match state.store.api_tokens().await {
        Ok(t) => t,
        Err(e) => return fail(e.into()),
    };
    let page = SettingsPage {
        layout: Layout::new(&caller, "Settings", "settings"),
        tokens: tokens
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.access.as_str(),
                    full_time(t.created_at),
                    t.last_used_at
                        .map(full_time)
                        .unwrap_or_else(|| "never".into()),
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                )
            })
            .collect(),
        config: state.settings.config_display.clone(),
    };
    render(StatusCode::OK, &page)
}

pub struct PlaybookView {
    pub name: String,
    pub once: bool,
    pub trigger: String,
    pub when: String,
    pub steps: Vec<String>,
}

#[derive(Template)]
#[template(path = "playbooks.html")]
struct PlaybooksPage {
    layout: Layout,
    playbooks: Vec<PlaybookView>,
}

fn trigger_words(t: &klaxon_core::playbook::Trigger) -> String {
    use klaxon_core::playbook::Trigger;
    match t {
        Trigger::Declared => "an incident is declared".into(),
        Trigger::FieldChanged(f) => format!("the {f} changes"),
        Trigger::StatusReached(s) => format!("the status becomes {s}"),
        Trigger::PhaseReached(p) => format!("the incident is {}", p.as_str()),
        Trigger::RoleAssigned(r) => format!("someone becomes {r}"),
        Trigger::FollowUpAdded => "a follow-up action is added".into(),
        Trigger::FollowUpOverdue => "a follow-up action is still open when it is due".into(),
        Trigger::Keyword(k) => format!("someone writes “{k}” in the incident's channel"),
    }
}

fn target_words(t: &klaxon_core::playbook::Target) -> String {
    use klaxon_core::playbook::Target;
    match t {
        Target::Channel => "in the incident's channel".into(),
        Target::Incidents => "in the incidents channel".into(),
        Target::Role(r) => format!("to the {r}"),
        Target::NextLead => "to the next person on the list of incident leads".into(),
    }
}

fn step_words(s: &klaxon_core::playbook::Step) -> String {
    use klaxon_core::playbook::Step;
    let json = |c: &klaxon_core::playbook::Condition| serde_json::to_string(c).unwrap_or_default();
    match s {
        Step::Message { to, text } => format!("Post {}: “{text}”", target_words(to)),
        Step::Note { text } => format!("Add to the timeline: “{text}”"),
        Step::Remind {
            after,
            every,
            until,
            to,
            text,
        } => format!(
            "After {after}{}, unless {}: remind {}: “{text}”",
            every
                .map(|e| format!(" and then every {e}"))
                .unwrap_or_default(),
            json(until),
            target_words(to)
        ),
        Step::Webhook { url, secret } => format!(
            "Send the incident to the webhook {url}{}",
            if secret.is_some() { " (signed)" } else { "" }
        ),
        Step::Page { in_drills } => {
            format!("Page on-call (PagerDuty, Opsgenie){}", drills(*in_drills))
        }
        Step::Ticket {} => "Open the incident's ticket (Jira, GitHub)".into(),
        Step::Invite { people } => {
            format!("Invite {} into the incident's channel", people.join(", "))
        }
        Step::PageTeam { team } => format!("Page the team {team}"),
        Step::OpenChannel { platform } => format!("Open the incident's room on {platform}"),
        Step::Statuspage {
            text: None,
            in_drills,
        } => format!("Put the incident on the status page{}", drills(*in_drills)),
        Step::Statuspage {
            text: Some(t),
            in_drills,
        } => format!("Post “{t}” on the status page{}", drills(*in_drills)),
        Step::Email {
            to,
            subject,
            in_drills,
            ..
        } => format!("Email {}: “{subject}”{}", to.join(", "), drills(*in_drills)),
    }
}

fn drills(in_drills: bool) -> &'static str {
    if in_drills {
        ", in drills too"
    } else {
        " (skipped in drills)"
    }
}

/// The playbooks as loaded.
pub async fn playbooks(State(state): State<AppState>, WebCaller(caller): WebCaller) -> Response {
    let playbooks = state
        .settings
        .playbooks
        .iter()
        .map(|p| PlaybookView {
            name: p.name.clone(),
            once: p.once,
            trigger: trigger_words(&p.trigger),
            when: serde_json::to_string(&p.when).unwrap_or_default(),
            steps: p.steps.iter().map(step_words).collect(),
        })
        .collect();
    render(
        StatusCode::OK,
        &PlaybooksPage {
            layout: Layout::new(&caller, "Playbooks", "playbooks"),
            playbooks,
        },
    )
}
