//! Which integration jobs an incident's events cause, written in the command's transaction.
//! Keys make each action happen once: one page per incident however often it escalates, one
//! ticket per incident and per follow-up, one email per event.

use std::sync::Arc;

use klaxon_core::{Catalog, Event, EventKind, FieldChange, Incident, Phase};
use klaxon_store::{Effects, ManualActions, NewJob};
use serde_json::json;

use crate::config::Settings;

pub const PAGERDUTY: &str = "pagerduty.event";
pub const OPSGENIE: &str = "opsgenie.alert";
pub const JIRA_TICKET: &str = "jira.ticket";
pub const JIRA_FOLLOW_UP: &str = "jira.follow_up";
pub const JIRA_UPDATE: &str = "jira.update";
pub const GITHUB_ISSUE: &str = "github.issue";
pub const GITHUB_FOLLOW_UP: &str = "github.follow_up";
pub const GITHUB_UPDATE: &str = "github.update";
pub const STATUSPAGE_CREATE: &str = "statuspage.incident";
pub const STATUSPAGE_UPDATE: &str = "statuspage.update";
pub const EMAIL: &str = "email.send";
pub const WEBHOOK: &str = "webhook.deliver";
pub const PAGERDUTY_TEAM: &str = "pagerduty.page_team";

pub struct IntegrationEffects {
    pub settings: Arc<Settings>,
    pub catalog: Arc<Catalog>,
}

/// Whether the incident is `threshold` or worse; an empty threshold lets every incident pass.
fn severe_enough(c: &Catalog, i: &Incident, threshold: &str) -> bool {
    threshold.is_empty()
        || i.severity
            .as_deref()
            .is_some_and(|s| c.severities.at_least(s, threshold))
}

/// Whether this batch of events makes the incident `threshold` or worse when it was not
/// before: its declaration, or a severity change across the threshold.
fn becomes_severe(c: &Catalog, i: &Incident, e: &Event, threshold: &str) -> bool {
    let at_least = |s: &Option<String>| {
        threshold.is_empty()
            || s.as_deref()
                .is_some_and(|s| c.severities.at_least(s, threshold))
    };
    match &e.kind {
        EventKind::Declared(_) => severe_enough(c, i, threshold),
        EventKind::FieldChanged(FieldChange::Severity { old, new }) => {
            !at_least(old) && at_least(new) && i.is_open()
        }
        _ => false,
    }
}

/// Whether a status page incident is allowed for it: customer-facing, not private, no drill.
pub fn public(s: &Settings, i: &Incident) -> bool {
    i.labels.contains_key(&s.statuspage.label) && !i.private && !i.drill
}

impl Effects for IntegrationEffects {
    fn jobs(&self, i: &Incident, events: &[Event]) -> Vec<NewJob> {
        let s = &self.settings;
        let c = &self.catalog;
        let r = i.reference;
        let mut jobs = Vec::new();
        let job = |key: String, kind: &str, fields| NewJob::about(r, key, kind, fields);
        for e in events {
            let seq = e.seq;
            let resolved = matches!(
                e.kind,
                EventKind::StatusChanged {
                    phase: Phase::Resolved,
                    ..
                }
            );
            let acknowledged = matches!(
                e.kind,
                EventKind::StatusChanged {
                    phase: Phase::Active,
                    ..
                }
            );
            let status_change = matches!(e.kind, EventKind::StatusChanged { .. });

            // Paging: a drill pages only where the operator said so (else the job records that
            // it skipped, so the drill's timeline shows the step).
            let pd = &s.pagerduty;
            if pd.enabled() {
                let trigger = format!("{r}:pagerduty:trigger");
                if becomes_severe(c, i, e, &pd.severity_at_least) {
                    jobs.push(job(
                        trigger.clone(),
                        PAGERDUTY,
                        json!({ "action": "trigger" }),
                    ));
                }
                if acknowledged {
                    jobs.push(
                        job(
                            format!("{r}:pagerduty:acknowledge"),
                            PAGERDUTY,
                            json!({ "action": "acknowledge" }),
                        )
                        .after_if_enqueued(&trigger),
                    );
                }
                if resolved {
                    jobs.push(
                        job(
                            format!("{r}:pagerduty:resolve:{seq}"),
                            PAGERDUTY,
                            json!({ "action": "resolve" }),
                        )
                        .after_if_enqueued(&trigger),
                    );
                }
            }
            let og = &s.opsgenie;
            if og.enabled() {
                let create = format!("{r}:opsgenie:create");
                if becomes_severe(c, i, e, &og.severity_at_least) {
                    jobs.push(job(create.clone(), OPSGENIE, json!({ "action": "create" })));
                }
                if status_change && !resolved {
                    jobs.push(
                        job(
                            format!("{r}:opsgenie:note:{seq}"),
                            OPSGENIE,
                            json!({ "action": "note", "seq": seq }),
                        )
                        .after_if_enqueued(&create),
                    );
                }
                if resolved {
                    jobs.push(
                        job(
                            format!("{r}:opsgenie:close:{seq}"),
                            OPSGENIE,
                            json!({ "action": "close" }),
                        )
                        .after_if_enqueued(&create),
                    );
                }
            }

            // Tickets: one for the incident, one per follow-up, a comment (and on resolve a
            // transition) per status change.
            for (on, tracker, threshold, ticket, follow_up, update) in [
                (
                    s.jira.enabled(),
                    "jira",
                    &s.jira.severity_at_least,
                    JIRA_TICKET,
                    JIRA_FOLLOW_UP,
                    JIRA_UPDATE,
                ),
                (
                    s.github.enabled(),
                    "github",
                    &s.github.severity_at_least,
                    GITHUB_ISSUE,
                    GITHUB_FOLLOW_UP,
                    GITHUB_UPDATE,
                ),
            ] {
                if !on {
                    continue;
                }
                let create = format!("{r}:{tracker}:ticket");
                if becomes_severe(c, i, e, threshold) {
                    jobs.push(job(create.clone(), ticket, json!({})));
                }
                if status_change {
                    jobs.push(
                        job(
                            format!("{r}:{tracker}:update:{seq}"),
                            update,
                            json!({ "seq": seq }),
                        )
                        .after_if_enqueued(&create),
                    );
                }
                match &e.kind {
                    EventKind::FollowUpAdded { id, .. } => jobs.push(job(
                        format!("{r}:{tracker}:follow_up:{id}"),
                        follow_up,
                        json!({ "follow_up": id }),
                    )),
                    EventKind::FollowUpDone { id } => jobs.push(
                        job(
                            format!("{r}:{tracker}:follow_up_done:{id}"),
                            update,
                            json!({ "follow_up": id, "seq": seq }),
                        )
                        .after_if_enqueued(format!("{r}:{tracker}:follow_up:{id}")),
                    ),
                    _ => {}
                }
            }

            // The status page: only customer-facing incidents, never private ones or drills.
            if s.statuspage.enabled() && public(s, i) {
                let create = format!("{r}:statuspage:incident");
                let becomes_public = match &e.kind {
                    EventKind::Declared(_) => true,
                    EventKind::FieldChanged(FieldChange::Label { key, old: None, .. }) => {
                        key == &s.statuspage.label && i.is_open()
                    }
                    EventKind::FieldChanged(FieldChange::Private { new: false, .. }) => i.is_open(),
                    _ => false,
                };
                if becomes_public {
                    jobs.push(job(create.clone(), STATUSPAGE_CREATE, json!({})));
                }
                let changes = status_change
                    || matches!(
                        e.kind,
                        EventKind::FieldChanged(FieldChange::Severity { .. })
                            | EventKind::FieldChanged(FieldChange::Services { .. })
                    );
                if changes && !becomes_public {
                    jobs.push(
                        job(
                            format!("{r}:statuspage:update:{seq}"),
                            STATUSPAGE_UPDATE,
                            json!({ "seq": seq }),
                        )
                        .after_if_enqueued(&create),
                    );
                }
            }

            // Stakeholder email: declaration, severity change, resolve.
            if s.smtp.enabled() {
                let what = match &e.kind {
                    EventKind::Declared(_) => Some("declared"),
                    EventKind::FieldChanged(FieldChange::Severity { .. }) => Some("severity"),
                    _ if resolved => Some("resolved"),
                    _ => None,
                };
                if let Some(what) = what {
                    if !crate::email::recipients(&s.smtp, c, i).is_empty() {
                        jobs.push(job(
                            format!("{r}:email:{what}:{seq}"),
                            EMAIL,
                            json!({ "what": what, "seq": seq }),
                        ));
                    }
                }
            }

            // Outgoing webhooks: every event a endpoint asked for. Private incidents are sent
            // too (the receiver is the operator's own); the message says they are private.
            for (n, w) in s.webhooks.iter().enumerate() {
                let name = e.kind.name();
                // Never the outcome of a job (its own delivery's failure would cause another).
                let listed = crate::config::EVENT_TYPES.contains(&name);
                if listed && (w.events.is_empty() || w.events.iter().any(|t| t == name)) {
                    jobs.push(job(
                        format!("{r}:webhook:{n}:{seq}"),
                        WEBHOOK,
                        json!({ "endpoint": n, "url": w.url, "seq": seq }),
                    ));
                }
            }
        }
        jobs
    }
}

impl ManualActions for IntegrationEffects {
    fn page_team(&self, i: &Incident, team: &str, by: &str) -> Result<Vec<NewJob>, String> {
        let pd = &self.settings.pagerduty;
        let r = i.reference;
        let found = pd
            .teams
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(team.trim_start_matches('@')));
        let Some((name, _)) = found else {
            return Err(if pd.teams.is_empty() {
                format!("No team can be paged from Klaxon: list them in [pagerduty] teams. {team} was not paged; page them by hand and say so with `note`.")
            } else {
                format!(
                    "`{team}` is not a team Klaxon can page: use one of {}.",
                    pd.teams.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            });
        };
        if i.drill && !pd.drills {
            return Err(format!(
                "{r} is a drill, and drills page nobody ([pagerduty] drills = false): {name} was not paged."
            ));
        }
        Ok(vec![NewJob::new(
            format!("{r}:pagerduty:team:{name}"),
            PAGERDUTY_TEAM,
            json!({ "incident": r, "team": name, "by": by }),
        )
        .for_incident(r)
        .after_if_enqueued(format!("{r}:pagerduty:trigger"))])
    }

    fn post_status(
        &self,
        i: &Incident,
        text: &str,
        by: &str,
        at: klaxon_core::Timestamp,
    ) -> Result<Vec<NewJob>, String> {
        let s = &self.settings;
        let r = i.reference;
        if !s.statuspage.enabled() {
            return Err(
                "No status page is set up in this Klaxon ([statuspage]), so nothing was posted."
                    .into(),
            );
        }
        if i.private {
            return Err(format!("{r} is private: it never goes on the status page."));
        }
        if i.drill {
            return Err(format!("{r} is a drill: it never goes on the status page."));
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "Say what to post: `/incident statuspage \"We are looking into slow checkouts.\"`"
                    .into(),
            );
        }
        if text.chars().count() > 25_000 {
            return Err("That is longer than Statuspage takes (25,000 characters).".into());
        }
        let create = format!("{r}:statuspage:incident");
        let digest = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        let payload = json!({ "incident": r, "in_drills": false, "asked_by": by });
        let mut update = payload.clone();
        update["text"] = json!(text);
        Ok(vec![
            NewJob::new(create.clone(), STATUSPAGE_CREATE, payload).for_incident(r),
            NewJob::new(
                format!(
                    "{r}:statuspage:update:by-hand:{}:{digest:x}",
                    at.timestamp_millis()
                ),
                STATUSPAGE_UPDATE,
                update,
            )
            .for_incident(r)
            .after(&create),
        ])
    }
}
