//! The jobs Slack's requests become: run a command and answer it, put a pinned or marked
//! message on the timeline, act on a headline button, declare from the form.

use std::sync::Arc;

use async_trait::async_trait;
use klaxon_core::{ChatMessage, Command, Declare, Phase};
use klaxon_jobs::{Done, Handler, JobContext, JobError, Runner};
use klaxon_store::Request;
use serde_json::{json, Value};

use super::{blocks, SlackPlatform};
use crate::commands::{Commands, Reply};
use crate::{ChatError, ChatPlatform, Message};

pub const COMMAND: &str = "slack.command";
pub const EVENT: &str = "slack.event";
pub const ACTION: &str = "slack.action";
pub const DECLARE: &str = "slack.declare";
pub const UPDATE: &str = "slack.update";
pub const DECLARE_FORM: &str = "klaxon_declare";
pub const UPDATE_FORM: &str = "klaxon_update";

pub struct SlackJobs {
    pub platform: Arc<SlackPlatform>,
    pub commands: Arc<Commands>,
    /// The reaction that puts a message on the timeline (`pushpin`).
    pub timeline_reaction: String,
    pub http: reqwest::Client,
    /// Hears messages in incident channels (keyword playbooks).
    pub listener: Option<Arc<dyn crate::MessageListener>>,
}

impl SlackJobs {
    pub fn new(
        platform: Arc<SlackPlatform>,
        commands: Arc<Commands>,
        timeline_reaction: &str,
    ) -> SlackJobs {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .expect("the HTTP client builds");
        SlackJobs {
            platform,
            commands,
            timeline_reaction: timeline_reaction.trim_matches(':').to_string(),
            http,
            listener: None,
        }
    }

    pub fn register(self: &Arc<Self>, runner: &mut Runner) {
        for kind in [COMMAND, EVENT, ACTION, DECLARE, UPDATE] {
            runner.register(
                kind,
                SlackJob {
                    jobs: self.clone(),
                    kind,
                },
            );
        }
    }

    /// Answers through the command's `response_url` (Slack's way to reply to a command or a
    /// button, privately or to the channel).
    async fn respond(
        &self,
        response_url: Option<&str>,
        trigger: Option<&str>,
        reply: Reply,
    ) -> Result<(), JobError> {
        let (message, visibility) = match reply {
            Reply::DeclareForm => {
                let trigger = trigger.ok_or_else(|| {
                    JobError::permanent("the command has no trigger_id to open the form with")
                })?;
                let params = [
                    ("trigger_id", trigger.to_string()),
                    ("view", declare_modal(&self.commands.catalog).to_string()),
                ];
                self.platform
                    .api()
                    .call("views.open", &params)
                    .await
                    .map_err(ChatError::from)?;
                return Ok(());
            }
            Reply::Private(m) => (m, "ephemeral"),
            Reply::Public(m) => (m, "in_channel"),
        };
        let Some(url) = response_url.filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        let body = json!({ "response_type": visibility, "text": message.text, "blocks": blocks::render(&message) });
        let res = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| JobError::retry(format!("could not answer Slack: {e}")))?;
        match res.status() {
            s if s.is_success() => Ok(()),
            // response_url takes five answers within 30 minutes; past that there is no one to tell.
            s if s.is_client_error() => Err(JobError::permanent(format!(
                "Slack refused the answer: HTTP {s}"
            ))),
            s => Err(JobError::retry(format!(
                "Slack did not take the answer: HTTP {s}"
            ))),
        }
    }
}

struct SlackJob {
    jobs: Arc<SlackJobs>,
    kind: &'static str,
}

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

#[async_trait]
impl Handler for SlackJob {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let j = &self.jobs;
        let p = ctx.payload();
        match self.kind {
            COMMAND => {
                let (user, channel) = (
                    s(&p["user_id"]).unwrap_or_default(),
                    s(&p["channel_id"]).unwrap_or_default(),
                );
                // The command ran already if an earlier attempt got past it: only answer again.
                let reply = match ctx.checkpoint() {
                    Some(saved) => {
                        Reply::Private(Message::text(saved["reply"].as_str().unwrap_or("Done.")))
                    }
                    None => {
                        let origin = ctx.idempotency_key().to_string();
                        let reply = j
                            .commands
                            .run_once(
                                j.platform.as_ref(),
                                user,
                                channel,
                                s(&p["text"]).unwrap_or_default(),
                                &origin,
                            )
                            .await?;
                        // A command that only reads is worked out again on a retry: no
                        // checkpoint, which is one write less for the busiest commands.
                        let text = s(&p["text"]).unwrap_or_default();
                        if let (Reply::Private(m) | Reply::Public(m), true) =
                            (&reply, crate::commands::may_change(text))
                        {
                            ctx.save_checkpoint(json!({ "reply": m.text })).await?;
                        }
                        reply
                    }
                };
                j.respond(s(&p["response_url"]), s(&p["trigger_id"]), reply)
                    .await?;
                Ok(Done::default())
            }
            ACTION if s(&p["action"]) == Some("severity") => {
                // "Change severity" opens the update form on the incident.
                let r: klaxon_core::IncidentRef = s(&p["value"])
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| JobError::permanent("the button names no incident"))?;
                let i = j
                    .commands
                    .store
                    .incident(r)
                    .await
                    .map_err(klaxon_jobs::store_error)?
                    .ok_or_else(|| JobError::permanent(format!("{r} does not exist")))?;
                let trigger = s(&p["trigger_id"])
                    .ok_or_else(|| JobError::permanent("the button press has no trigger_id"))?;
                let params = [
                    ("trigger_id", trigger.to_string()),
                    ("view", update_modal(&j.commands.catalog, &i).to_string()),
                ];
                j.platform
                    .api()
                    .call("views.open", &params)
                    .await
                    .map_err(ChatError::from)?;
                Ok(Done::default())
            }
            UPDATE => {
                let user = s(&p["user"]).unwrap_or_default();
                let person = j.commands.person(j.platform.as_ref(), user).await?;
                let r: klaxon_core::IncidentRef = s(&p["incident"])
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| JobError::permanent("the form names no incident"))?;
                let c = &j.commands;
                let req = Request {
                    command: update_commands(&p["values"]),
                    actor: klaxon_core::Actor::person(person.id),
                    at: klaxon_core::now(),
                    catalog: &c.catalog,
                    effects: c.effects.as_ref(),
                };
                match c.store.execute_all(r, req).await {
                    // Checked when submitted; refused now only if the incident moved on meanwhile.
                    Err(klaxon_store::StoreError::Command(e)) => {
                        j.platform
                            .direct_message(
                                user,
                                &Message::text(format!("Your update to {r} was not applied: {e}")),
                            )
                            .await?;
                        Ok(Done::default())
                    }
                    Err(e) => Err(klaxon_jobs::store_error(e)),
                    Ok(_) => Ok(Done::default()),
                }
            }
            ACTION => {
                let text = match s(&p["action"]) {
                    Some("ack") => {
                        let active = j
                            .commands
                            .catalog
                            .statuses
                            .in_phase(|ph| ph == Phase::Active)
                            .into_iter()
                            .next()
                            .unwrap_or_default();
                        format!("status {active}")
                    }
                    Some("lead") => "lead me".into(),
                    Some("resolve") => "resolve".into(),
                    other => return Err(JobError::permanent(format!("unknown button {other:?}"))),
                };
                let reply = j
                    .commands
                    .run(
                        j.platform.as_ref(),
                        s(&p["user"]).unwrap_or_default(),
                        s(&p["channel"]).unwrap_or_default(),
                        &text,
                    )
                    .await?;
                j.respond(s(&p["response_url"]), None, reply).await?;
                Ok(Done::default())
            }
            DECLARE => {
                let user = s(&p["user"]).unwrap_or_default();
                let person = j.commands.person(j.platform.as_ref(), user).await?;
                let mut values = declare_values(&p["values"]);
                values.lead = Some(person.id);
                let c = &j.commands;
                let req = Request {
                    command: values,
                    actor: klaxon_core::Actor::person(person.id),
                    at: klaxon_core::now(),
                    catalog: &c.catalog,
                    effects: c.effects.as_ref(),
                };
                let applied = c
                    .store
                    .declare_once(ctx.idempotency_key(), req)
                    .await
                    .map_err(klaxon_jobs::store_error)?;
                let i = &applied.incident;
                if !applied.events.is_empty() || ctx.checkpoint().is_none() {
                    ctx.save_checkpoint(json!({ "incident": i.reference }))
                        .await?;
                    let text = format!("Declared {}: {}. Its channel is on its way; you are the lead. {}/incidents/{}", i.reference, i.title, c.public_url, i.reference);
                    j.platform
                        .direct_message(user, &Message::text(text))
                        .await?;
                }
                Ok(Done {
                    result: json!({ "incident": i.reference }),
                    timeline: None,
                })
            }
            EVENT => capture(j, &p["event"]).await,
            other => Err(JobError::permanent(format!("unknown Slack job `{other}`"))),
        }
    }
}

/// A pinned message, or one given the timeline reaction, goes on the timeline; unpinning or
/// removing the reaction takes it off.
async fn capture(j: &SlackJobs, event: &Value) -> Result<Done, JobError> {
    if event["type"] == "message" {
        return heard(j, event).await;
    }
    let kind = event["type"].as_str().unwrap_or_default();
    let (channel, ts) = match kind {
        "pin_added" | "pin_removed" => (
            s(&event["channel_id"]).or(s(&event["item"]["channel"])),
            s(&event["item"]["message"]["ts"]).or(s(&event["item"]["ts"])),
        ),
        "reaction_added" | "reaction_removed" => {
            if event["reaction"].as_str() != Some(j.timeline_reaction.as_str())
                || event["item"]["type"] != "message"
            {
                return Ok(Done::default());
            }
            (s(&event["item"]["channel"]), s(&event["item"]["ts"]))
        }
        _ => return Ok(Done::default()),
    };
    let (Some(channel), Some(ts)) = (channel, ts) else {
        return Ok(Done::default());
    };
    let Some(room) = incident_channel(j, channel).await? else {
        // Not an incident's channel.
        return Ok(Done::default());
    };
    let Some(actor_user) = s(&event["user"]) else {
        return Ok(Done::default());
    };
    let actor = j.commands.person(j.platform.as_ref(), actor_user).await?;
    let command = if kind.ends_with("_removed") {
        Command::RemoveChatMessage {
            platform: "slack".into(),
            message_id: format!("{channel}/{ts}"),
        }
    } else {
        let Some(m) = j.platform.message(channel, ts).await? else {
            return Ok(Done::default());
        };
        let author = match &m.author {
            Some(u) => Some(j.commands.person(j.platform.as_ref(), u).await?),
            None => None,
        };
        Command::CaptureChatMessage {
            message: ChatMessage {
                platform: "slack".into(),
                message_id: format!("{channel}/{ts}"),
                author: author.as_ref().map(|a| a.id),
                author_name: author.map(|a| a.name).unwrap_or_else(|| "someone".into()),
                text: m.text,
                link: j.platform.message_link(channel, ts),
                sent_at: m.sent_at,
            },
        }
    };
    let c = &j.commands;
    let req = Request {
        command,
        actor: klaxon_core::Actor::person(actor.id),
        at: klaxon_core::now(),
        catalog: &c.catalog,
        effects: c.effects.as_ref(),
    };
    c.store
        .execute(room.incident, req)
        .await
        .map_err(klaxon_jobs::store_error)?;
    Ok(Done::default())
}

/// The update form's values as commands; fields left as they were change nothing.
pub fn update_commands(values: &Value) -> Vec<Command> {
    let text = |block: &str| {
        values[block][block]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let selected = |block: &str| {
        values[block][block]["selected_option"]["value"]
            .as_str()
            .map(String::from)
    };
    let mut commands = vec![
        Command::SetTitle {
            title: text("title"),
        },
        Command::SetSeverity {
            severity: selected("severity"),
        },
        Command::SetSummary {
            summary: text("summary"),
        },
        Command::SetImpact {
            impact: text("impact"),
        },
    ];
    if let Some(status) = selected("status") {
        commands.push(Command::ChangeStatus { status });
    }
    commands
}

/// The update form on an incident, filled in with what it is now.
pub fn update_modal(catalog: &klaxon_core::Catalog, i: &klaxon_core::Incident) -> Value {
    let option = |value: &str, label: &str| json!({ "text": plain(label), "value": value });
    let severities: Vec<Value> = catalog
        .severities
        .all()
        .iter()
        .map(|sv| option(&sv.key, &format!("{} ({})", sv.key, sv.name)))
        .collect();
    let mut statuses = vec![i.status.clone()];
    statuses.extend(
        catalog
            .statuses
            .get(&i.status)
            .map(|st| st.next.clone())
            .unwrap_or_default(),
    );
    let statuses: Vec<Value> = statuses.iter().map(|st| option(st, st)).collect();
    let mut severity = json!({ "type": "static_select", "action_id": "severity", "placeholder": plain("Not set"), "options": severities });
    if let Some(sv) = catalog
        .severities
        .all()
        .iter()
        .find(|sv| Some(&sv.key) == i.severity.as_ref())
    {
        severity["initial_option"] = option(&sv.key, &format!("{} ({})", sv.key, sv.name));
    }
    let input = |block: &str, label: &str, optional: bool, element: Value| json!({ "type": "input", "block_id": block, "optional": optional, "label": plain(label), "element": element });
    let text = |action: &str, initial: &str, multiline: bool| {
        let mut e =
            json!({ "type": "plain_text_input", "action_id": action, "multiline": multiline });
        if !initial.is_empty() {
            e["initial_value"] = json!(initial);
        }
        e
    };
    json!({
        "type": "modal",
        "callback_id": UPDATE_FORM,
        "private_metadata": i.reference.to_string(),
        "title": plain(&format!("Update {}", i.reference)),
        "submit": plain("Update"),
        "close": plain("Cancel"),
        "blocks": [
            input("title", "Title", false, { let mut t = text("title", &i.title, false); t["max_length"] = json!(200); t }),
            input("severity", "Severity", true, severity),
            input("status", "Status", false, json!({ "type": "static_select", "action_id": "status", "options": statuses, "initial_option": option(&i.status, &i.status) })),
            input("summary", "Summary", true, text("summary", &i.summary, true)),
            input("impact", "Customer impact", true, text("impact", &i.impact, true)),
        ]
    })
}

/// The declare form's values as a declaration.
pub fn declare_values(values: &Value) -> Declare {
    let text = |block: &str| {
        values[block][block]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    Declare {
        title: text("title"),
        summary: text("description"),
        severity: values["severity"]["severity"]["selected_option"]["value"]
            .as_str()
            .map(String::from),
        incident_type: Some(text("type")).filter(|t| !t.trim().is_empty()),
        services: text("services")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        private: values["private"]["private"]["selected_options"]
            .as_array()
            .is_some_and(|o| !o.is_empty()),
        ..Default::default()
    }
}

fn plain(text: &str) -> Value {
    json!({ "type": "plain_text", "text": text })
}

/// The declare form: only the title is required.
pub fn declare_modal(catalog: &klaxon_core::Catalog) -> Value {
    let options: Vec<Value> = catalog
        .severities
        .all()
        .iter()
        .map(|sv| json!({ "text": plain(&format!("{} ({})", sv.key, sv.name)), "value": sv.key }))
        .collect();
    let input = |block: &str, label: &str, optional: bool, element: Value| json!({ "type": "input", "block_id": block, "optional": optional, "label": plain(label), "element": element });
    json!({
        "type": "modal",
        "callback_id": DECLARE_FORM,
        "title": plain("Declare an incident"),
        "submit": plain("Declare"),
        "close": plain("Cancel"),
        "blocks": [
            input("title", "What is broken?", false, json!({ "type": "plain_text_input", "action_id": "title", "max_length": 200, "placeholder": plain("Checkout is down") })),
            input("severity", "Severity", true, json!({ "type": "static_select", "action_id": "severity", "placeholder": plain("Not sure yet"), "options": options })),
            input("type", "Type", true, json!({ "type": "plain_text_input", "action_id": "type" })),
            input("services", "Affected services", true, json!({ "type": "plain_text_input", "action_id": "services", "placeholder": plain("checkout, payments") })),
            input("description", "Description", true, json!({ "type": "plain_text_input", "action_id": "description", "multiline": true })),
            input("private", "Private", true, json!({ "type": "checkboxes", "action_id": "private", "options": [{ "text": plain("Security incident: members only"), "value": "private" }] })),
        ]
    })
}

/// A message in an incident's channel, for the keyword playbooks.
async fn heard(j: &SlackJobs, event: &Value) -> Result<Done, JobError> {
    let (Some(listener), Some(channel), Some(text)) =
        (&j.listener, s(&event["channel"]), s(&event["text"]))
    else {
        return Ok(Done::default());
    };
    let store = &j.commands.store;
    let Some(room) = incident_channel(j, channel).await? else {
        return Ok(Done::default());
    };
    let Some(incident) = store
        .incident(room.incident)
        .await
        .map_err(klaxon_jobs::store_error)?
    else {
        return Ok(Done::default());
    };
    let at = s(&event["ts"])
        .map(super::ts_time)
        .unwrap_or_else(klaxon_core::now);
    let jobs = listener.jobs_for_message(&incident, text, at);
    if !jobs.is_empty() {
        store
            .enqueue(&jobs, klaxon_core::now())
            .await
            .map_err(klaxon_jobs::store_error)?;
    }
    Ok(Done {
        result: json!({ "caused": jobs.len() }),
        timeline: None,
    })
}

/// The incident whose Slack channel this is, if any.
async fn incident_channel(
    j: &SlackJobs,
    channel: &str,
) -> Result<Option<klaxon_store::ChatChannel>, JobError> {
    j.commands
        .store
        .chat_channel_by_id("slack", channel)
        .await
        .map_err(klaxon_jobs::store_error)
}
