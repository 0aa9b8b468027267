//! Klaxon's reach beyond chat. Each integration is a set of durable jobs: the incident's
//! events cause them (`effects`), in the command's transaction, and a handler per kind makes
//! the vendor call when a runner claims it, reloading the incident as it is then.
//!
//! - `pagerduty`: Events API v2 (trigger, acknowledge, resolve; `dedup_key` = the reference).
//! - `opsgenie`: an alert (alias = the reference), notes, close.
//! - `tracker`: Jira (REST v3, Atlassian Document Format) and GitHub issues behind one
//!   `Tracker`: a ticket per incident and per follow-up, comments and closing on resolve.
//! - `statuspage`: an Atlassian Statuspage incident for customer-facing incidents.
//! - `email` (with `smtp`, our own client): stakeholder mail, HTML and plain text.
//! - `webhooks`: signed JSON messages for incident events (Standard Webhooks style).
//! - `http`: how every HTTP vendor is called and its answer judged (retry or not).
//!
//! Every handler is idempotent: the vendor's own key where it has one (PagerDuty's
//! `dedup_key`, Opsgenie's alias, a webhook's id), and where it has none (a Jira ticket, a
//! GitHub issue, a Statuspage incident) a marker the handler looks for before it creates
//! again, when an earlier attempt may have got as far as the call.

pub mod config;
pub mod effects;
pub mod email;
pub mod http;
pub mod opsgenie;
pub mod pagerduty;
pub mod smtp;
pub mod statuspage;
pub mod test;
pub mod tracker;
pub mod webhooks;

use std::sync::Arc;

use klaxon_core::{Catalog, Event, Incident, IncidentRef, Link};
use klaxon_jobs::{store_error, Done, Handler, JobContext, JobError};
use klaxon_store::{JobState, Store, TimelineEntry};
use serde_json::json;

pub use config::Settings;
pub use effects::IntegrationEffects;

/// What every handler needs.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub settings: Arc<Settings>,
    /// Klaxon's own address, for links back to the incident.
    pub public_url: String,
}

impl Context {
    /// The job's incident, as it is now.
    pub async fn incident(&self, job: &JobContext) -> Result<Incident, JobError> {
        let r = incident_of(job)?;
        self.store
            .incident(r)
            .await
            .map_err(store_error)?
            .ok_or_else(|| JobError::permanent(format!("{r} does not exist")))
    }

    /// The event that caused the job (`seq` in its payload).
    pub async fn event(&self, r: IncidentRef, seq: u64) -> Result<Option<Event>, JobError> {
        let events = self
            .store
            .events(r, seq.saturating_sub(1), 1)
            .await
            .map_err(store_error)?;
        Ok(events.into_iter().find(|e| e.seq == seq))
    }

    /// What the job with this key returned, once it has succeeded.
    pub async fn result_of(&self, key: &str) -> Result<Option<serde_json::Value>, JobError> {
        let job = self.store.job_by_key(key).await.map_err(store_error)?;
        Ok(job
            .filter(|j| j.state == JobState::Succeeded)
            .and_then(|j| j.result))
    }

    pub fn page(&self, r: IncidentRef) -> String {
        format!("{}/incidents/{r}", self.public_url.trim_end_matches('/'))
    }

    /// `SEV1 · Checkout is down` style one-line headline.
    pub fn headline(&self, i: &Incident) -> String {
        match &i.severity {
            Some(s) => format!("{} [{s}] {}", i.reference, i.title),
            None => format!("{} {}", i.reference, i.title),
        }
    }

    /// 0 for the most severe level; `None` when unset.
    pub fn rank(&self, i: &Incident) -> Option<usize> {
        i.severity
            .as_deref()
            .and_then(|s| self.catalog.severities.rank(s))
    }
}

/// The incident a job's payload names.
pub fn incident_of(job: &JobContext) -> Result<IncidentRef, JobError> {
    job.payload()["incident"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| JobError::permanent("the job names no incident"))
}

/// Whether a playbook step asked for this job in drills too.
pub fn in_drills(job: &JobContext) -> bool {
    job.payload()["in_drills"].as_bool().unwrap_or(false)
}

/// A success, shown on the timeline (with a link when there is one).
pub fn done(result: serde_json::Value, detail: String, link: Option<Link>) -> Done {
    Done {
        result,
        timeline: Some(TimelineEntry { detail, link }),
    }
}

/// Nothing to do, and why, on the timeline so that a drill shows the step it skipped.
pub fn skipped(reason: String) -> Done {
    Done {
        result: json!({ "skipped": reason }),
        timeline: Some(TimelineEntry {
            detail: format!("skipped: {reason}"),
            link: None,
        }),
    }
}

/// Nothing to do, quietly (a follow-on job whose first step never happened).
pub fn nothing(reason: &str) -> Done {
    Done {
        result: json!({ "skipped": reason }),
        timeline: None,
    }
}

/// Every integration's handlers, by job kind.
pub fn handlers(cx: &Context) -> Vec<(&'static str, Arc<dyn Handler>)> {
    use effects::*;
    let jira: Arc<dyn tracker::Tracker> = Arc::new(tracker::Jira::new(&cx.settings.jira));
    let github: Arc<dyn tracker::Tracker> = Arc::new(tracker::Github::new(&cx.settings.github));
    let ticket = |t: &Arc<dyn tracker::Tracker>| -> Arc<dyn Handler> {
        Arc::new(tracker::TicketHandler {
            cx: cx.clone(),
            tracker: t.clone(),
        })
    };
    vec![
        (
            PAGERDUTY,
            Arc::new(pagerduty::EventHandler { cx: cx.clone() }) as Arc<dyn Handler>,
        ),
        (
            PAGERDUTY_TEAM,
            Arc::new(pagerduty::TeamHandler { cx: cx.clone() }),
        ),
        (
            OPSGENIE,
            Arc::new(opsgenie::AlertHandler { cx: cx.clone() }),
        ),
        (JIRA_TICKET, ticket(&jira)),
        (JIRA_FOLLOW_UP, ticket(&jira)),
        (JIRA_UPDATE, ticket(&jira)),
        (GITHUB_ISSUE, ticket(&github)),
        (GITHUB_FOLLOW_UP, ticket(&github)),
        (GITHUB_UPDATE, ticket(&github)),
        (
            STATUSPAGE_CREATE,
            Arc::new(statuspage::StatuspageHandler { cx: cx.clone() }),
        ),
        (
            STATUSPAGE_UPDATE,
            Arc::new(statuspage::StatuspageHandler { cx: cx.clone() }),
        ),
        (EMAIL, Arc::new(email::EmailHandler { cx: cx.clone() })),
        (
            WEBHOOK,
            Arc::new(webhooks::WebhookHandler { cx: cx.clone() }),
        ),
    ]
}

/// What a job of an integration would do, in words (for the simulator).
pub fn describe(kind: &str, payload: &serde_json::Value) -> String {
    let action = payload["action"].as_str().unwrap_or_default();
    match kind {
        effects::PAGERDUTY => format!("send PagerDuty a {action} event"),
        effects::PAGERDUTY_TEAM => format!(
            "page the team {} through PagerDuty",
            payload["team"].as_str().unwrap_or("?")
        ),
        effects::OPSGENIE => match action {
            "create" => "create an Opsgenie alert".into(),
            "note" => "add a note to the Opsgenie alert".into(),
            _ => "close the Opsgenie alert".into(),
        },
        effects::JIRA_TICKET => "open a Jira ticket".into(),
        effects::GITHUB_ISSUE => "open a GitHub issue".into(),
        effects::JIRA_FOLLOW_UP | effects::GITHUB_FOLLOW_UP => {
            "open a ticket for a follow-up".into()
        }
        effects::JIRA_UPDATE | effects::GITHUB_UPDATE => "comment on the ticket".into(),
        effects::STATUSPAGE_CREATE => "put the incident on the status page".into(),
        effects::STATUSPAGE_UPDATE => "update the status page".into(),
        effects::EMAIL => format!(
            "email the stakeholders ({})",
            payload["what"].as_str().unwrap_or("update")
        ),
        effects::WEBHOOK => format!(
            "send the webhook {} an event",
            payload["url"].as_str().unwrap_or("?")
        ),
        other => format!("run {other}"),
    }
}

/// Says what a job would do instead of doing it: every integration's handler in
/// `klaxon playbook simulate`.
pub struct DryRun;

#[async_trait::async_trait]
impl Handler for DryRun {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        Ok(Done {
            result: json!({ "would": describe(&ctx.job.kind, ctx.payload()) }),
            timeline: None,
        })
    }
}

/// Every integration job kind.
pub const KINDS: &[&str] = &[
    effects::PAGERDUTY,
    effects::PAGERDUTY_TEAM,
    effects::OPSGENIE,
    effects::JIRA_TICKET,
    effects::JIRA_FOLLOW_UP,
    effects::JIRA_UPDATE,
    effects::GITHUB_ISSUE,
    effects::GITHUB_FOLLOW_UP,
    effects::GITHUB_UPDATE,
    effects::STATUSPAGE_CREATE,
    effects::STATUSPAGE_UPDATE,
    effects::EMAIL,
    effects::WEBHOOK,
];
