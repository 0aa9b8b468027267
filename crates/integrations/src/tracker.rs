//! Tickets: Jira and GitHub issues behind one [`Tracker`], and one [`TicketHandler`] that
//! runs every ticket job for either — a ticket for the incident, one per follow-up action, a
//! comment on each status change, and closing on resolve (the incident's) or when a
//! follow-up is done (its own).
//!
//! Neither vendor has an idempotency key, so each ticket carries a marker made from the job's
//! key (a Jira label, an HTML comment in a GitHub issue). Before the create call the handler
//! saves a checkpoint; an attempt that finds that checkpoint looks for the marker first and
//! adopts the ticket an interrupted attempt made instead of opening a second one.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use klaxon_core::{EventKind, Link, Phase};
use klaxon_jobs::{Done, Handler, JobContext, JobError};
use serde_json::json;

use crate::config::{GithubConfig, JiraConfig};
use crate::http::{client, Vendor};
use crate::{done, incident_of, nothing, Context};

/// A ticket in a tracker: its id there (`OPS-12`, `42`) and where people open it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: String,
    pub url: String,
}

/// What a new ticket says.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub title: String,
    /// Paragraphs.
    pub body: Vec<String>,
    /// The incident's page in Klaxon.
    pub link: String,
    /// Unique to the job that creates it, found again by [`Tracker::find`].
    pub marker: String,
    pub follow_up: bool,
}

#[async_trait]
pub trait Tracker: Send + Sync {
    /// `Jira`, `GitHub`.
    fn name(&self) -> &'static str;
    /// A ticket an earlier attempt made, by its marker.
    async fn find(&self, marker: &str) -> Result<Option<Ticket>, JobError>;
    async fn create(&self, t: &NewTicket) -> Result<Ticket, JobError>;
    async fn comment(&self, t: &Ticket, text: &str, link: &str) -> Result<(), JobError>;
    async fn close(&self, t: &Ticket) -> Result<(), JobError>;
    /// Whether the credential works and the project or repository is reachable.
    async fn check(&self) -> Result<String, JobError>;
}

fn ticket_of(v: &serde_json::Value) -> Option<Ticket> {
    Some(Ticket {
        id: v["id"].as_str()?.to_string(),
        url: v["url"].as_str()?.to_string(),
    })
}

/// Runs `<tracker>.ticket`, `<tracker>.follow_up` and `<tracker>.update` jobs.
pub struct TicketHandler {
    pub cx: Context,
    pub tracker: Arc<dyn Tracker>,
}

impl TicketHandler {
    async fn create(
        &self,
        ctx: &JobContext,
        new: NewTicket,
        label: &str,
    ) -> Result<Done, JobError> {
        let name = self.tracker.name();
        let mut found = None;
        if ctx.checkpoint().is_some() {
            found = self.tracker.find(&new.marker).await?;
        }
        let ticket = match found {
            Some(t) => t,
            None => {
                ctx.save_checkpoint(json!({ "creating": new.marker }))
                    .await?;
                self.tracker.create(&new).await?
            }
        };
        Ok(done(
            json!({ "id": ticket.id, "url": ticket.url }),
            format!("opened {name} ticket {}: {}", ticket.id, new.title),
            Some(Link {
                label: format!("{label} {}", ticket.id),
                url: ticket.url,
            }),
        ))
    }
}

#[async_trait]
impl Handler for TicketHandler {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let cx = &self.cx;
        let r = incident_of(ctx)?;
        let i = cx.incident(ctx).await?;
        let name = self.tracker.name();
        let tracker_key = name.to_ascii_lowercase();
        let kind = ctx
            .job
            .kind
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string();
        let marker = format!("klaxon-{}", ctx.job.key.replace(':', "-"));
        let page = cx.page(r);
        let follow_up = ctx.payload()["follow_up"].as_u64();
        match (kind.as_str(), follow_up) {
            ("ticket" | "issue", _) => {
                let mut body = vec![
                    format!(
                        "Incident {} declared in Klaxon. Severity: {}. Status: {}.",
                        r,
                        i.severity.as_deref().unwrap_or("not set"),
                        i.status
                    ),
                    i.summary.clone(),
                ];
                if !i.impact.is_empty() {
                    body.push(format!("Impact: {}", i.impact));
                }
                if !i.services.is_empty() {
                    body.push(format!("Services: {}", i.services.join(", ")));
                }
                let new = NewTicket {
                    title: cx.headline(&i),
                    body,
                    link: page,
                    marker,
                    follow_up: false,
                };
                self.create(ctx, new, &format!("{name} ticket")).await
            }
            ("follow_up", Some(id)) => {
                let Some(f) = i.follow_ups.iter().find(|f| u64::from(f.id) == id) else {
                    return Ok(nothing("the follow-up no longer exists"));
                };
                let new = NewTicket {
                    title: format!(
                        "{r} follow-up: {}",
                        f.text.chars().take(200).collect::<String>()
                    ),
                    body: vec![
                        format!("A follow-up action from incident {r}: {}", i.title),
                        f.text.clone(),
                    ],
                    link: page,
                    marker,
                    follow_up: true,
                };
                self.create(ctx, new, &format!("{name} follow-up #{id}"))
                    .await
            }
            ("update", Some(id)) => {
                let key = format!("{r}:{tracker_key}:follow_up:{id}");
                let Some(t) = cx.result_of(&key).await?.as_ref().and_then(ticket_of) else {
                    return Ok(nothing("the follow-up has no ticket"));
                };
                self.tracker.close(&t).await?;
                Ok(done(
                    json!({ "closed": t.id }),
                    format!("closed {name} ticket {} (follow-up #{id} done)", t.id),
                    None,
                ))
            }
            ("update", None) => {
                let key = format!("{r}:{tracker_key}:ticket");
                let Some(t) = cx.result_of(&key).await?.as_ref().and_then(ticket_of) else {
                    return Ok(nothing("the incident has no ticket"));
                };
                let seq = ctx.payload()["seq"].as_u64().unwrap_or(0);
                let Some(e) = cx.event(r, seq).await? else {
                    return Ok(nothing("the status change is not on the timeline"));
                };
                let EventKind::StatusChanged { from, to, phase } = &e.kind else {
                    return Ok(nothing("not a status change"));
                };
                // A checkpoint says an earlier attempt got as far as commenting.
                if ctx.checkpoint().is_none() {
                    let text = format!("{r} moved from {from} to {to} in Klaxon.");
                    self.tracker.comment(&t, &text, &page).await?;
                    ctx.save_checkpoint(json!({ "commented": true })).await?;
                }
                let closed = *phase == Phase::Resolved;
                if closed {
                    self.tracker.close(&t).await?;
                }
                Ok(done(
                    json!({ "ticket": t.id, "status": to, "closed": closed }),
                    if closed {
                        format!("commented on and closed {name} ticket {}", t.id)
                    } else {
                        format!("commented the status ({to}) on {name} ticket {}", t.id)
                    },
                    None,
                ))
            }
            _ => Err(JobError::permanent(format!(
                "`{}` is not a ticket job Klaxon knows",
                ctx.job.kind
            ))),
        }
    }
}

/// Atlassian Document Format: one paragraph per line of text, and a link back.
pub fn adf(paragraphs: &[String], link: &str) -> serde_json::Value {
    let mut content: Vec<serde_json::Value> = paragraphs
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| json!({ "type": "paragraph", "content": [{ "type": "text", "text": p }] }))
        .collect();
    content.push(json!({
        "type": "paragraph",
        "content": [{
            "type": "text",
            "text": "Open the incident in Klaxon",
            "marks": [{ "type": "link", "attrs": { "href": link } }],
        }],
    }));
    json!({ "type": "doc", "version": 1, "content": content })
}

pub struct Jira {
    config: JiraConfig,
    vendor: Vendor,
}

impl Jira {
    pub fn new(config: &JiraConfig) -> Self {
        Jira {
            config: config.clone(),
            vendor: Vendor {
                name: "Jira",
                credential: "[jira] email and api_token",
            },
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.config.email, self.config.api_token));
        client()
            .request(
                method,
                format!("{}{path}", self.config.url.trim_end_matches('/')),
            )
            .header("authorization", format!("Basic {auth}"))
            .header("accept", "application/json")
    }

    fn browse(&self, key: &str) -> String {
        format!("{}/browse/{key}", self.config.url.trim_end_matches('/'))
    }
}

#[async_trait]
impl Tracker for Jira {
    fn name(&self) -> &'static str {
        "Jira"
    }

    async fn find(&self, marker: &str) -> Result<Option<Ticket>, JobError> {
        let jql = format!("labels = \"{marker}\"");
        let req = self
            .req(reqwest::Method::GET, "/rest/api/3/search")
            .query(&[
                ("jql", jql.as_str()),
                ("fields", "key"),
                ("maxResults", "1"),
            ]);
        let answer = self.vendor.send(req).await?;
        Ok(answer.json["issues"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|i| i["key"].as_str())
            .map(|k| Ticket {
                id: k.to_string(),
                url: self.browse(k),
            }))
    }

    async fn create(&self, t: &NewTicket) -> Result<Ticket, JobError> {
        let issue_type = if t.follow_up {
            &self.config.follow_up_issue_type
        } else {
            &self.config.issue_type
        };
        let body = json!({
            "fields": {
                "project": { "key": self.config.project },
                "summary": t.title.chars().take(250).collect::<String>(),
                "issuetype": { "name": issue_type },
                "description": adf(&t.body, &t.link),
                "labels": ["klaxon", t.marker],
            }
        });
        let answer = self
            .vendor
            .send(
                self.req(reqwest::Method::POST, "/rest/api/3/issue")
                    .json(&body),
            )
            .await?;
        let key = answer.json["key"]
            .as_str()
            .ok_or_else(|| JobError::retry("Jira created an issue but did not say its key"))?;
        Ok(Ticket {
            id: key.to_string(),
            url: self.browse(key),
        })
    }

    async fn comment(&self, t: &Ticket, text: &str, link: &str) -> Result<(), JobError> {
        let body = json!({ "body": adf(&[text.to_string()], link) });
        let path = format!("/rest/api/3/issue/{}/comment", t.id);
        self.vendor
            .send(self.req(reqwest::Method::POST, &path).json(&body))
            .await?;
        Ok(())
    }

    async fn close(&self, t: &Ticket) -> Result<(), JobError> {
        let path = format!("/rest/api/3/issue/{}/transitions", t.id);
        let answer = self
            .vendor
            .send(self.req(reqwest::Method::GET, &path))
            .await?;
        let want = &self.config.done_transition;
        let list = answer.json["transitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found = list.iter().find(|tr| {
            tr["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(want))
                || tr["to"]["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(want))
        });
        let Some(id) = found.and_then(|tr| tr["id"].as_str()) else {
            let names: Vec<&str> = list.iter().filter_map(|tr| tr["name"].as_str()).collect();
            return Err(JobError::permanent(format!(
                "Jira offers no transition `{want}` for {} (it offers: {}): set [jira] done_transition to one of them",
                t.id,
                if names.is_empty() { "none".into() } else { names.join(", ") }
            )));
        };
        self.vendor
            .send(
                self.req(reqwest::Method::POST, &path)
                    .json(&json!({ "transition": { "id": id } })),
            )
            .await?;
        Ok(())
    }

    async fn check(&self) -> Result<String, JobError> {
        let me = self
            .vendor
            .send(self.req(reqwest::Method::GET, "/rest/api/3/myself"))
            .await?;
        let project = self
            .vendor
            .send(self.req(
                reqwest::Method::GET,
                &format!("/rest/api/3/project/{}", self.config.project),
            ))
            .await?;
        Ok(format!(
            "signed in as {}; project {} ({})",
            me.json["displayName"].as_str().unwrap_or("?"),
            self.config.project,
            project.json["name"].as_str().unwrap_or("?")
        ))
    }
}

pub struct Github {
    config: GithubConfig,
    vendor: Vendor,
}

impl Github {
    pub fn new(config: &GithubConfig) -> Self {
        Github {
            config: config.clone(),
            vendor: Vendor {
                name: "GitHub",
                credential: "[github] token",
            },
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(
                method,
                format!(
                    "{}/repos/{}{path}",
                    self.config.api_url.trim_end_matches('/'),
                    self.config.repository
                ),
            )
            .header("authorization", format!("Bearer {}", self.config.token))
            .header(
                "accept",
                "application/vnd.github+json, application/json;q=0.9",
            )
            .header("x-github-api-version", "2022-11-28")
    }

    fn ticket(v: &serde_json::Value) -> Option<Ticket> {
        Some(Ticket {
            id: v["number"].as_u64()?.to_string(),
            url: v["html_url"].as_str()?.to_string(),
        })
    }
}

#[async_trait]
impl Tracker for Github {
    fn name(&self) -> &'static str {
        "GitHub"
    }

    async fn find(&self, marker: &str) -> Result<Option<Ticket>, JobError> {
        let mut query = vec![
            ("state", "all".to_string()),
            ("sort", "created".into()),
            ("direction", "desc".into()),
            ("per_page", "50".into()),
        ];
        if let Some(l) = self.config.labels.first() {
            query.push(("labels", l.clone()));
        }
        let answer = self
            .vendor
            .send(self.req(reqwest::Method::GET, "/issues").query(&query))
            .await?;
        let needle = format!("<!-- {marker} -->");
        Ok(answer
            .json
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["body"].as_str().is_some_and(|b| b.contains(&needle)))
            .and_then(Self::ticket))
    }

    async fn create(&self, t: &NewTicket) -> Result<Ticket, JobError> {
        let mut body = t
            .body
            .iter()
            .filter(|p| !p.trim().is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n");
        body.push_str(&format!(
            "\n\n[Open the incident in Klaxon]({})\n\n<!-- {} -->",
            t.link, t.marker
        ));
        let answer = self
            .vendor
            .send(self.req(reqwest::Method::POST, "/issues").json(&json!({
                "title": t.title,
                "body": body,
                "labels": self.config.labels,
            })))
            .await?;
        Self::ticket(&answer.json)
            .ok_or_else(|| JobError::retry("GitHub created an issue but did not say its number"))
    }

    async fn comment(&self, t: &Ticket, text: &str, link: &str) -> Result<(), JobError> {
        let path = format!("/issues/{}/comments", t.id);
        self.vendor
            .send(
                self.req(reqwest::Method::POST, &path)
                    .json(&json!({ "body": format!("{text}\n\n[Klaxon]({link})") })),
            )
            .await?;
        Ok(())
    }

    async fn close(&self, t: &Ticket) -> Result<(), JobError> {
        let path = format!("/issues/{}", t.id);
        self.vendor
            .send(
                self.req(reqwest::Method::PATCH, &path)
                    .json(&json!({ "state": "closed", "state_reason": "completed" })),
            )
            .await?;
        Ok(())
    }

    async fn check(&self) -> Result<String, JobError> {
        let answer = self.vendor.send(self.req(reqwest::Method::GET, "")).await?;
        let push = answer.json["permissions"]["push"].as_bool();
        Ok(match push {
            Some(false) => format!(
                "the token reaches {} but may not write to it: give it the issues write permission",
                self.config.repository
            ),
            _ => format!("the token reaches {}", self.config.repository),
        })
    }
}
