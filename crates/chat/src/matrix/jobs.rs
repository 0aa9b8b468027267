//! The jobs Matrix events become: `!incident …` run as the person who typed it and answered
//! in the room (as a reply); other messages in incident rooms heard by the keyword
//! playbooks; the timeline reaction, or a pin, putting a message on the timeline.

use std::sync::Arc;

use async_trait::async_trait;
use klaxon_core::{ChatMessage, Command};
use klaxon_jobs::{store_error, Done, Handler, JobContext, JobError, Runner};
use klaxon_store::Request;
use serde_json::{json, Value};

use super::MatrixPlatform;
use crate::commands::{Commands, Reply};
use crate::ChatPlatform;

pub const EVENT: &str = "matrix.event";

/// What starts a command in a Matrix room.
pub const PREFIX: &str = "!incident";

pub struct MatrixJobs {
    pub platform: Arc<MatrixPlatform>,
    pub commands: Arc<Commands>,
    /// The reaction that puts a message on the timeline (an emoji: 📌).
    pub timeline_reaction: String,
    pub listener: Option<Arc<dyn crate::MessageListener>>,
}

impl MatrixJobs {
    pub fn register(self: &Arc<Self>, runner: &mut Runner) {
        runner.register(EVENT, MatrixJob(self.clone()));
    }

    async fn reply(&self, room: &str, to: &str, text: &str) -> Result<(), JobError> {
        let c = json!({
            "msgtype": "m.notice",
            "body": text,
            "m.relates_to": { "m.in_reply_to": { "event_id": to } },
        });
        let path = format!(
            "/rooms/{}/send/m.room.message/{}",
            super::api::enc(room),
            super::api::enc(&format!("klaxon-reply-{to}"))
        );
        self.platform
            .api()
            .call(reqwest::Method::PUT, &path, Some(c), &[])
            .await?;
        Ok(())
    }

    /// Puts a message on the timeline (or takes it off), for `actor`.
    async fn capture(
        &self,
        room: &str,
        event_id: &str,
        actor: &str,
        remove: bool,
    ) -> Result<Done, JobError> {
        let c = &self.commands;
        let Some(channel) = c
            .store
            .chat_channel_by_id("matrix", room)
            .await
            .map_err(store_error)?
        else {
            return Ok(Done::default());
        };
        let p = self.platform.as_ref();
        let actor = c.person(p, actor).await?;
        let command = if remove {
            Command::RemoveChatMessage {
                platform: "matrix".into(),
                message_id: format!("{room}/{event_id}"),
            }
        } else {
            let Some(m) = p.message(room, event_id).await? else {
                return Ok(Done::default());
            };
            let author = match &m.author {
                Some(u) => Some(c.person(p, u).await?),
                None => None,
            };
            Command::CaptureChatMessage {
                message: ChatMessage {
                    platform: "matrix".into(),
                    message_id: format!("{room}/{event_id}"),
                    author: author.as_ref().map(|a| a.id),
                    author_name: author.map(|a| a.name).unwrap_or_else(|| "someone".into()),
                    text: m.text,
                    link: p.message_link(room, event_id),
                    sent_at: m.sent_at,
                },
            }
        };
        let req = Request {
            command,
            actor: klaxon_core::Actor::person(actor.id),
            at: klaxon_core::now(),
            catalog: &c.catalog,
            effects: c.effects.as_ref(),
        };
        c.store
            .execute(channel.incident, req)
            .await
            .map_err(store_error)?;
        Ok(Done::default())
    }

    /// A message in an incident room, for the keyword playbooks.
    async fn heard(
        &self,
        room: &str,
        text: &str,
        at: klaxon_core::Timestamp,
    ) -> Result<Done, JobError> {
        let store = &self.commands.store;
        let Some(listener) = &self.listener else {
            return Ok(Done::default());
        };
        let Some(channel) = store
            .chat_channel_by_id("matrix", room)
            .await
            .map_err(store_error)?
        else {
            return Ok(Done::default());
        };
        let Some(i) = store
            .incident(channel.incident)
            .await
            .map_err(store_error)?
        else {
            return Ok(Done::default());
        };
        let jobs = listener.jobs_for_message(&i, text, at);
        if !jobs.is_empty() {
            store
                .enqueue(&jobs, klaxon_core::now())
                .await
                .map_err(store_error)?;
        }
        Ok(Done {
            result: json!({ "caused": jobs.len() }),
            timeline: None,
        })
    }
}

struct MatrixJob(Arc<MatrixJobs>);

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[async_trait]
impl Handler for MatrixJob {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let j = &self.0;
        let p = ctx.payload();
        let room = str_of(&p["room"]);
        let e = &p["event"];
        let sender = str_of(&e["sender"]);
        let id = str_of(&e["event_id"]);
        match str_of(&e["type"]) {
            "m.room.message" => {
                // An edit is not a new command.
                if e["content"]["m.relates_to"]["rel_type"] == "m.replace" {
                    return Ok(Done::default());
                }
                let body = str_of(&e["content"]["body"]).trim();
                let Some(rest) = body.strip_prefix(PREFIX) else {
                    let at = klaxon_core::from_millis(e["origin_server_ts"].as_i64().unwrap_or(0));
                    return j.heard(room, body, at).await;
                };
                if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
                    return j.heard(room, body, klaxon_core::now()).await;
                }
                // The command ran already if an earlier attempt got past it: only answer again.
                let text = match ctx.checkpoint() {
                    Some(saved) => saved["reply"].as_str().unwrap_or("Done.").to_string(),
                    None => {
                        let reply = j
                            .commands
                            .run_once(
                                j.platform.as_ref(),
                                sender,
                                room,
                                rest.trim(),
                                ctx.idempotency_key(),
                            )
                            .await?;
                        let text = match reply {
                            Reply::Private(m) | Reply::Public(m) => m.text,
                            Reply::DeclareForm => {
                                format!("Say what is broken: `{PREFIX} declare Checkout is down`.")
                            }
                        };
                        if crate::commands::may_change(rest.trim()) {
                            ctx.save_checkpoint(json!({ "reply": text })).await?;
                        }
                        text
                    }
                };
                j.reply(room, id, &text).await?;
                Ok(Done::default())
            }
            "m.reaction" => {
                let rel = &e["content"]["m.relates_to"];
                if rel["rel_type"] != "m.annotation" || str_of(&rel["key"]) != j.timeline_reaction {
                    return Ok(Done::default());
                }
                j.capture(room, str_of(&rel["event_id"]), sender, false)
                    .await
            }
            "m.room.pinned_events" => {
                let list = |v: &Value| -> Vec<String> {
                    v["pinned"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                };
                let now = list(&e["content"]);
                let before = list(&e["unsigned"]["prev_content"]);
                let mut done = Done::default();
                for added in now.iter().filter(|x| !before.contains(x)) {
                    done = j.capture(room, added, sender, false).await?;
                }
                for removed in before.iter().filter(|x| !now.contains(x)) {
                    done = j.capture(room, removed, sender, true).await?;
                }
                Ok(done)
            }
            _ => Ok(Done::default()),
        }
    }
}
