//! Playbooks at run time. [`PlaybookEffects`] turns an incident's events into the steps of
//! the playbooks they trigger — durable jobs, due at once or after a delay (a timer), written
//! in the same transaction as the events. [`StepHandler`] runs a step when it is due: it
//! reloads the incident, checks the step's condition as things are *then* (a reminder to set
//! the severity is dropped if someone has set it), posts through the chat interface, and
//! schedules the next repetition. Jobs carry the playbook's name and the step's index, not the
//! step itself, so a restart runs what the configuration says at that moment.

use std::sync::Arc;

use async_trait::async_trait;
use klaxon_chat::{ChatPlatform, Message, MessageListener, Platforms};
use klaxon_core::playbook::{render, Playbook, Span, Step, Target, Trigger};
use klaxon_core::{Actor, Catalog, Command, Event, Incident, IncidentRef};
use klaxon_jobs::{store_error, Done, Handler, JobContext, JobError};
use klaxon_store::{Effects, NewJob, Request, Store};
use serde_json::json;

pub const STEP: &str = "playbook.step";

pub struct PlaybookEffects {
    pub playbooks: Arc<Vec<Playbook>>,
    pub catalog: Arc<Catalog>,
}

/// The key of a step's job: once per incident for `once` playbooks, once per triggering event
/// otherwise; `n` counts a reminder's repetitions.
fn step_key(r: IncidentRef, p: &Playbook, step: usize, seq: u64, n: u32) -> String {
    let base = if p.once {
        format!("{r}:playbook:{}:{step}", p.name)
    } else {
        format!("{r}:playbook:{}:{step}:{seq}", p.name)
    };
    if n == 0 {
        base
    } else {
        format!("{base}:{n}")
    }
}

impl Effects for PlaybookEffects {
    fn jobs(&self, i: &Incident, events: &[Event]) -> Vec<NewJob> {
        let mut jobs = Vec::new();
        for e in events {
            for p in self
                .playbooks
                .iter()
                .filter(|p| p.trigger.fires(e) && p.when.holds(i, &self.catalog))
            {
                // An overdue follow-up's steps count from its due date, the others' from the event.
                let base = match (&p.trigger, &e.kind) {
                    (
                        Trigger::FollowUpOverdue,
                        klaxon_core::EventKind::FollowUpAdded {
                            due_at: Some(due), ..
                        },
                    ) => (*due).max(e.at),
                    _ => e.at,
                };
                for (n, step) in p.steps.iter().enumerate() {
                    let run_at = match step {
                        Step::Remind { after, .. } => {
                            base + chrono::Duration::from_std(after.0)
                                .unwrap_or(chrono::Duration::MAX)
                        }
                        _ => base,
                    };
                    let mut payload = json!({ "incident": i.reference, "playbook": p.name, "step": n, "seq": e.seq, "repeat": 0 });
                    if let klaxon_core::EventKind::RoleAssigned { person, .. } = &e.kind {
                        payload["holder"] = json!(person.0);
                    }
                    if let klaxon_core::EventKind::FollowUpAdded { id, .. } = &e.kind {
                        payload["follow_up"] = json!(id);
                    }
                    jobs.push(
                        NewJob::new(step_key(i.reference, p, n, e.seq, 0), STEP, payload)
                            .for_incident(i.reference)
                            .at(run_at),
                    );
                }
            }
        }
        jobs
    }
}

/// How long a keyword playbook stays quiet in a channel after answering, unless it says.
pub const DEFAULT_COOLDOWN: std::time::Duration = std::time::Duration::from_secs(600);

fn cooldown(p: &Playbook) -> std::time::Duration {
    p.cooldown.map(|Span(d)| d).unwrap_or(DEFAULT_COOLDOWN)
}

/// Keyword playbooks: a message that mentions a playbook's phrase, in an incident whose
/// condition holds, runs its steps, at most once per cooldown window (the window is in the
/// job's key, so repeats within it are the same job).
impl MessageListener for PlaybookEffects {
    fn jobs_for_message(
        &self,
        i: &Incident,
        text: &str,
        at: klaxon_core::Timestamp,
    ) -> Vec<NewJob> {
        let mut jobs = Vec::new();
        for p in self
            .playbooks
            .iter()
            .filter(|p| p.trigger.mentioned_in(text) && p.when.holds(i, &self.catalog))
        {
            let window = at.timestamp() / cooldown(p).as_secs().max(1) as i64;
            for (n, _) in p.steps.iter().enumerate() {
                let key = format!("{}:playbook:{}:{n}:heard:{window}", i.reference, p.name);
                let payload = json!({ "incident": i.reference, "playbook": p.name, "step": n, "seq": 0, "repeat": 0 });
                jobs.push(
                    NewJob::new(key, STEP, payload)
                        .for_incident(i.reference)
                        .at(at),
                );
            }
        }
        jobs
    }
}

pub struct StepHandler {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub playbooks: Arc<Vec<Playbook>>,
    pub platforms: Platforms,
    /// The shared incidents channel of each platform.
    pub incidents_channels: Vec<(&'static str, String)>,
    pub public_url: String,
    /// The incident leads, in the order they take over (emails).
    pub leads: Vec<String>,
    /// Record webhook calls instead of making them (the simulator).
    pub dry_run: bool,
    /// The integrations that page, open tickets, post to the status page and send email.
    pub integrations: Arc<klaxon_integrations::Settings>,
    /// What pages a team (`page_team`); without it the step says paging is not set up.
    pub actions: Option<Arc<dyn klaxon_store::ManualActions>>,
}

/// How long a webhook's endpoint has to answer before the attempt counts as failed.
pub const WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// POSTs the incident to an operator's endpoint. Network failures, timeouts, 429 and 5xx are
/// retried by the job runner; another 4xx is permanent (the endpoint refuses the request, and
/// asking again will not change that).
async fn call_webhook(
    url: &str,
    secret: Option<&str>,
    key: &str,
    body: String,
    at: klaxon_core::Timestamp,
) -> Result<u16, JobError> {
    let req = klaxon_chat::commands::signed_post(url, secret, at, WEBHOOK_TIMEOUT, body)
        .map_err(|e| JobError::retry(format!("could not make an HTTP client: {e}")))?;
    let res = match req.header("idempotency-key", key).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Err(JobError::retry(format!(
                "the webhook {url} did not answer within {}s",
                WEBHOOK_TIMEOUT.as_secs()
            )))
        }
        Err(e) => {
            return Err(JobError::retry(format!(
                "could not reach the webhook {url}: {e}"
            )))
        }
    };
    let status = res.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let text: String = res
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let message = format!(
        "the webhook {url} answered HTTP {}: {text}",
        status.as_u16()
    );
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(JobError::retry(message))
    } else {
        Err(JobError::permanent(format!(
            "{message} (fix the endpoint or the playbook's url; Klaxon does not retry a 4xx)"
        )))
    }
}

impl StepHandler {
    /// A step that reaches an integration: the integration's own job, with the key the
    /// integration uses for it, so that a playbook and the integration's own rules page (or
    /// open a ticket) once between them. In a drill, paging, the status page and email are
    /// recorded as skipped unless the step says `in_drills`.
    async fn integration_step(
        &self,
        ctx: &JobContext,
        i: &Incident,
        step: &Step,
        page: &str,
    ) -> Result<Done, JobError> {
        use klaxon_integrations::effects as k;
        let s = &self.integrations;
        let r = i.reference;
        let in_drills = match step {
            Step::Page { in_drills }
            | Step::Statuspage { in_drills, .. }
            | Step::Email { in_drills, .. } => *in_drills,
            _ => true,
        };
        let skip = |reason: String| Ok(klaxon_integrations::skipped(reason));
        if i.drill && !in_drills {
            return skip(format!(
                "{r} is a drill and the step does not say in_drills = true"
            ));
        }
        let job = |key: String, kind: &str, mut fields: serde_json::Value| {
            fields["in_drills"] = json!(in_drills);
            NewJob::about(r, key, kind, fields).at(ctx.now())
        };
        let (jobs, what): (Vec<NewJob>, String) = match step {
            Step::Page { .. } => {
                let mut jobs = Vec::new();
                if s.pagerduty.enabled() {
                    jobs.push(job(
                        format!("{r}:pagerduty:trigger"),
                        k::PAGERDUTY,
                        json!({ "action": "trigger" }),
                    ));
                }
                if s.opsgenie.enabled() {
                    jobs.push(job(
                        format!("{r}:opsgenie:create"),
                        k::OPSGENIE,
                        json!({ "action": "create" }),
                    ));
                }
                (jobs, "page on-call".into())
            }
            Step::Ticket {} => {
                let mut jobs = Vec::new();
                if s.jira.enabled() {
                    jobs.push(job(format!("{r}:jira:ticket"), k::JIRA_TICKET, json!({})));
                }
                if s.github.enabled() {
                    jobs.push(job(
                        format!("{r}:github:ticket"),
                        k::GITHUB_ISSUE,
                        json!({}),
                    ));
                }
                (jobs, "open a ticket".into())
            }
            Step::Statuspage { text, .. } => {
                if i.private {
                    return skip(format!("{r} is private: it never goes on the status page"));
                }
                let create = format!("{r}:statuspage:incident");
                let mut jobs = Vec::new();
                if s.statuspage.enabled() {
                    jobs.push(job(create.clone(), k::STATUSPAGE_CREATE, json!({})));
                    if let Some(t) = text {
                        let t = self.fill(t, i, page).await?;
                        jobs.push(
                            job(
                                format!("{}:statuspage", ctx.job.key),
                                k::STATUSPAGE_UPDATE,
                                json!({ "text": t }),
                            )
                            .after(&create),
                        );
                    }
                }
                (jobs, "post on the status page".into())
            }
            Step::Email {
                to, subject, text, ..
            } => {
                let mut jobs = Vec::new();
                if s.smtp.enabled() {
                    let subject = self.fill(subject, i, page).await?;
                    let text = self.fill(text, i, page).await?;
                    jobs.push(job(
                        format!("{}:email", ctx.job.key),
                        k::EMAIL,
                        json!({ "what": "custom", "to": to, "subject": subject, "text": text }),
                    ));
                }
                (jobs, format!("email {}", to.join(", ")))
            }
            _ => (Vec::new(), String::new()),
        };
        if jobs.is_empty() {
            return skip(format!("no integration is configured to {what}"));
        }
        let kinds: Vec<String> = jobs.iter().map(|j| j.kind.clone()).collect();
        if self.dry_run {
            return Ok(Done {
                result: json!({ "would": what, "through": kinds }),
                timeline: None,
            });
        }
        self.store
            .enqueue(&jobs, ctx.now())
            .await
            .map_err(store_error)?;
        Ok(Done {
            result: json!({ "asked": what, "through": kinds }),
            timeline: None,
        })
    }

    /// Invites people, by email, into the incident's channel on each platform: as the person
    /// Klaxon knows there, else as the platform's user with that email. Who was invited, and
    /// who could not be found.
    async fn invite(
        &self,
        i: &Incident,
        emails: &[String],
    ) -> Result<(Vec<String>, Vec<String>), JobError> {
        let mut invited = Vec::new();
        let mut missing = Vec::new();
        for name in self.platforms.names() {
            let Some(platform) = self.platforms.get(name) else {
                continue;
            };
            let Some(channel) = self
                .store
                .chat_channel(i.reference, name)
                .await
                .map_err(store_error)?
            else {
                continue;
            };
            let mut users = Vec::new();
            for email in emails {
                let known = self
                    .store
                    .person_by_identity(&klaxon_core::ChatIdentity::Email(email.clone()))
                    .await
                    .map_err(store_error)?
                    .and_then(|p| platform.user_of(&p));
                let user = match known {
                    Some(u) => Some(u),
                    None => platform.user_by_email(email).await?,
                };
                match user {
                    Some(u) => {
                        invited.push(format!("{name}: {email}"));
                        users.push(u);
                    }
                    None => missing.push(format!("{name}: {email}")),
                }
            }
            if !users.is_empty() {
                platform.invite(&channel.channel_id, &users).await?;
            }
        }
        Ok((invited, missing))
    }

    /// The person after the current lead in the list of incident leads (the first when the
    /// lead is not on it).
    async fn next_lead(&self, i: &Incident) -> Result<Option<klaxon_core::Person>, JobError> {
        let current = match i.lead() {
            Some(id) => self
                .store
                .persons_by_id(&[id])
                .await
                .map_err(store_error)?
                .into_iter()
                .next(),
            None => None,
        };
        let at = current
            .as_ref()
            .and_then(|c| c.email.as_ref())
            .and_then(|e| self.leads.iter().position(|l| l.eq_ignore_ascii_case(e)));
        let order: Vec<&String> = match at {
            Some(n) => self.leads[n + 1..]
                .iter()
                .chain(self.leads[..n].iter())
                .collect(),
            None => self.leads.iter().collect(),
        };
        for email in order {
            let who = self
                .store
                .person_by_identity(&klaxon_core::ChatIdentity::Email(email.clone()))
                .await
                .map_err(store_error)?;
            if let Some(p) = who.filter(|p| Some(p.id) != i.lead()) {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// A template filled in: the incident's fields, and `{lead}` and `{next_lead}`.
    async fn fill(&self, template: &str, i: &Incident, page: &str) -> Result<String, JobError> {
        let mut text = render(template, i, page);
        if text.contains("{lead}") {
            let lead = match i.lead() {
                Some(id) => self
                    .store
                    .persons_by_id(&[id])
                    .await
                    .map_err(store_error)?
                    .into_iter()
                    .next()
                    .map(|p| p.name),
                None => None,
            };
            text = text.replace("{lead}", &lead.unwrap_or_else(|| "nobody".into()));
        }
        if text.contains("{next_lead}") {
            let next = self.next_lead(i).await?.map(|p| p.name);
            text = text.replace("{next_lead}", &next.unwrap_or_else(|| "someone".into()));
        }
        Ok(text)
    }

    /// Delivers a message; what was done, for the job's result.
    async fn deliver(
        &self,
        i: &Incident,
        to: &Target,
        text: &str,
    ) -> Result<Vec<String>, JobError> {
        let message = Message::text(text);
        // Who a direct message is for; without anyone, a next-lead message goes to the channel.
        let person = match to {
            Target::Role(role) => match i.roles.get(role) {
                Some(id) => self
                    .store
                    .persons_by_id(&[*id])
                    .await
                    .map_err(store_error)?
                    .into_iter()
                    .next(),
                None => None,
            },
            Target::NextLead => self.next_lead(i).await?,
            _ => None,
        };
        let mut done = Vec::new();
        for name in self.platforms.names() {
            let Some(platform) = self.platforms.get(name) else {
                continue;
            };
            if let Some(p) = &person {
                if let Some(user) = platform.user_of(p) {
                    platform.direct_message(&user, &message).await?;
                    done.push(format!("{name}: direct message to {user}"));
                }
                continue;
            }
            let channel = match to {
                Target::Channel | Target::NextLead => self
                    .store
                    .chat_channel(i.reference, name)
                    .await
                    .map_err(store_error)?
                    .map(|c| c.channel_id),
                Target::Incidents => self
                    .incidents_channels
                    .iter()
                    .find(|(p, _)| *p == name)
                    .map(|(_, c)| c.clone()),
                Target::Role(_) => None,
            };
            if let Some(channel) = channel {
                post(platform.as_ref(), &channel, &message).await?;
                done.push(format!("{name}: posted in {channel}"));
            }
        }
        Ok(done)
    }
}

async fn post(p: &dyn ChatPlatform, channel: &str, m: &Message) -> Result<(), JobError> {
    p.post(channel, m).await?;
    Ok(())
}

#[async_trait]
impl Handler for StepHandler {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let payload = ctx.payload();
        let r: IncidentRef = payload["incident"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| JobError::permanent("the step names no incident"))?;
        let name = payload["playbook"].as_str().unwrap_or_default();
        let index = payload["step"].as_u64().unwrap_or(0) as usize;
        // The configuration may have changed since the step was scheduled.
        let Some(playbook) = self.playbooks.iter().find(|p| p.name == name) else {
            return Ok(Done {
                result: json!({ "skipped": format!("the playbook `{name}` is no longer configured") }),
                timeline: None,
            });
        };
        let Some(step) = playbook.steps.get(index) else {
            return Ok(Done {
                result: json!({ "skipped": "the step is no longer configured" }),
                timeline: None,
            });
        };
        let i = self
            .store
            .incident(r)
            .await
            .map_err(store_error)?
            .ok_or_else(|| JobError::permanent(format!("{r} does not exist")))?;
        // A reminder about a role holder stops when the role changes hands.
        if let (Trigger::RoleAssigned(role), Some(holder)) =
            (&playbook.trigger, payload["holder"].as_i64())
        {
            if i.roles.get(role).map(|p| p.0) != Some(holder) {
                return Ok(Done {
                    result: json!({ "stopped": "the role changed hands" }),
                    timeline: None,
                });
            }
        }
        // An overdue follow-up's steps stop once it is done.
        let follow_up = payload["follow_up"]
            .as_u64()
            .and_then(|id| i.follow_ups.iter().find(|f| u64::from(f.id) == id));
        if matches!(playbook.trigger, Trigger::FollowUpOverdue)
            && follow_up.is_none_or(|f| f.done_at.is_some())
        {
            return Ok(Done {
                result: json!({ "stopped": "the follow-up is done" }),
                timeline: None,
            });
        }
        if matches!(playbook.trigger, Trigger::Keyword(_)) {
            // Windows in the keys keep repeats apart; this keeps two answers a cooldown apart
            // even across a window's edge.
            let quiet =
                chrono::Duration::from_std(cooldown(playbook)).unwrap_or(chrono::Duration::MAX);
            let jobs = self.store.incident_jobs(r).await.map_err(store_error)?;
            let recent = jobs.iter().any(|j| {
                j.id != ctx.job.id
                    && j.kind == STEP
                    && j.payload["playbook"] == name
                    && j.finished_at.is_some_and(|f| f > ctx.now() - quiet)
                    && j.result.as_ref().is_some_and(|r| r.get("text").is_some())
            });
            if recent {
                return Ok(Done {
                    result: json!({ "stopped": "it answered in this channel a moment ago" }),
                    timeline: None,
                });
            }
        }
        let page = format!("{}/incidents/{r}", self.public_url);
        // `{follow_up}` in a follow-up's playbook: its number and words.
        let follow_up_text = follow_up.map(|f| format!("#{} {}", f.id, f.text));
        let with_follow_up = |t: &String| match &follow_up_text {
            Some(f) => t.replace("{follow_up}", f),
            None => t.clone(),
        };
        let step = &match step {
            Step::Message { to, text } => Step::Message {
                to: to.clone(),
                text: with_follow_up(text),
            },
            Step::Note { text } => Step::Note {
                text: with_follow_up(text),
            },
            Step::Remind {
                after,
                every,
                until,
                to,
                text,
            } => Step::Remind {
                after: *after,
                every: *every,
                until: until.clone(),
                to: to.clone(),
                text: with_follow_up(text),
            },
            other => other.clone(),
        };
        match step {
            Step::Message { to, text } => {
                let text = self.fill(text, &i, &page).await?;
                let done = self.deliver(&i, to, &text).await?;
                Ok(Done {
                    result: json!({ "delivered": done, "text": text }),
                    timeline: None,
                })
            }
            Step::Note { text } => {
                let text = self.fill(text, &i, &page).await?;
                let req = Request {
                    command: Command::AddNote { text: text.clone() },
                    actor: Actor::system(&format!("playbook {name}")),
                    at: ctx.now(),
                    catalog: &self.catalog,
                    effects: &klaxon_store::NoEffects,
                };
                self.store.execute(r, req).await.map_err(store_error)?;
                Ok(Done {
                    result: json!({ "noted": text }),
                    timeline: None,
                })
            }
            Step::Remind {
                every,
                until,
                to,
                text,
                ..
            } => {
                if until.holds(&i, &self.catalog) {
                    return Ok(Done {
                        result: json!({ "stopped": "its condition holds" }),
                        timeline: None,
                    });
                }
                let text = self.fill(text, &i, &page).await?;
                let done = self.deliver(&i, to, &text).await?;
                if let Some(every) = every {
                    let repeat = payload["repeat"].as_u64().unwrap_or(0) as u32 + 1;
                    let seq = payload["seq"].as_u64().unwrap_or(0);
                    let mut next = payload.clone();
                    next["repeat"] = json!(repeat);
                    let at = ctx.now()
                        + chrono::Duration::from_std(every.0).unwrap_or(chrono::Duration::MAX);
                    let job = NewJob::new(step_key(r, playbook, index, seq, repeat), STEP, next)
                        .for_incident(r)
                        .at(at);
                    self.store
                        .enqueue(&[job], ctx.now())
                        .await
                        .map_err(store_error)?;
                }
                Ok(Done {
                    result: json!({ "delivered": done, "text": text }),
                    timeline: None,
                })
            }
            Step::PageTeam { team } => {
                let team = self.fill(team, &i, &page).await?;
                let Some(actions) = &self.actions else {
                    return Ok(Done {
                        result: json!({ "skipped": format!("paging is not set up, so {team} was not paged") }),
                        timeline: None,
                    });
                };
                if self.dry_run {
                    return Ok(Done {
                        result: json!({ "would": format!("page {team}") }),
                        timeline: None,
                    });
                }
                match actions.page_team(&i, &team, &format!("playbook {name}")) {
                    Ok(jobs) => {
                        self.store
                            .enqueue(&jobs, ctx.now())
                            .await
                            .map_err(store_error)?;
                        Ok(Done {
                            result: json!({ "asked": format!("page {team}") }),
                            timeline: None,
                        })
                    }
                    Err(why) => Err(JobError::permanent(why)),
                }
            }
            Step::OpenChannel { platform } => {
                let Some(p) = self.platforms.get(platform) else {
                    return Ok(Done {
                        result: json!({ "skipped": format!("{platform} is not configured") }),
                        timeline: None,
                    });
                };
                let name = p.name();
                let announce = self.incidents_channels.iter().any(|(q, _)| *q == name);
                let mut jobs = klaxon_chat::effects::open_room(&i, name, announce);
                jobs.push(klaxon_chat::effects::invite_members(&i, name));
                if self.dry_run {
                    return Ok(Done {
                        result: json!({ "would": format!("open the incident's room on {name}") }),
                        timeline: None,
                    });
                }
                self.store
                    .enqueue(&jobs, ctx.now())
                    .await
                    .map_err(store_error)?;
                Ok(Done {
                    result: json!({ "opened": name }),
                    timeline: None,
                })
            }
            Step::Invite { people } => {
                let (invited, missing) = self.invite(&i, people).await?;
                Ok(Done {
                    result: json!({ "invited": invited, "not_found": missing }),
                    timeline: None,
                })
            }
            Step::Page { .. } | Step::Ticket {} | Step::Statuspage { .. } | Step::Email { .. } => {
                self.integration_step(ctx, &i, step, &page).await
            }
            Step::Webhook { url, secret } => {
                if self.dry_run {
                    return Ok(Done {
                        result: json!({ "would_call": url }),
                        timeline: None,
                    });
                }
                let body = json!({
                    "playbook": name,
                    "incident": {
                        "reference": i.reference,
                        "title": i.title,
                        "summary": i.summary,
                        "severity": i.severity,
                        "status": i.status,
                        "type": i.incident_type,
                        "services": i.services,
                        "labels": i.labels,
                        "private": i.private,
                        "drill": i.drill,
                        "url": page,
                    },
                })
                .to_string();
                let status =
                    call_webhook(url, secret.as_deref(), &ctx.job.key, body, ctx.now()).await?;
                Ok(Done {
                    result: json!({ "called": url, "status": status }),
                    timeline: None,
                })
            }
        }
    }
}
