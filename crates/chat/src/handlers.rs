//! The chat jobs, run by the job runner: create the channel, post and keep the headline
//! current, bookmark the incident page, invite people, announce, archive. Each reloads what it
//! needs (jobs carry ids only) and is safe to run again: it records what it made (the channel,
//! the headline) before moving on, and after an interrupted post it looks for the message it
//! may already have posted rather than posting it twice.

use std::sync::Arc;

use async_trait::async_trait;
use klaxon_core::{Catalog, Incident, IncidentRef, Link, PersonId};
use klaxon_jobs::{Done, Handler, JobContext, JobError, Runner};
use klaxon_store::{ChatChannel, Store, TimelineEntry};
use serde_json::json;

use crate::effects::*;
use crate::message::{announcement, channel_name, headline, Message};
use crate::{ChatPlatform, ChatSettings, Platforms};

/// What the chat jobs need.
pub struct ChatJobs {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub platforms: Platforms,
    pub settings: ChatSettings,
    /// The shared incidents channel of each platform that announces.
    pub announce_in: Vec<(&'static str, String)>,
}

impl ChatJobs {
    /// Registers a handler for every chat job kind.
    pub fn register(self: &Arc<Self>, runner: &mut Runner) {
        for kind in KINDS {
            runner.register(
                kind,
                ChatJob {
                    jobs: self.clone(),
                    kind,
                },
            );
        }
    }

    fn page_url(&self, r: IncidentRef) -> String {
        format!("{}/incidents/{r}", self.settings.public_url)
    }

    async fn names(&self, i: &Incident) -> Result<impl Fn(PersonId) -> String, JobError> {
        let ids: Vec<PersonId> = i.roles.values().copied().collect();
        let people = self
            .store
            .persons_by_id(&ids)
            .await
            .map_err(klaxon_jobs::store_error)?;
        Ok(move |id: PersonId| {
            people
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| format!("person #{id}"))
        })
    }

    pub(crate) async fn headline_for(&self, i: &Incident) -> Result<Message, JobError> {
        let names = self.names(i).await?;
        Ok(headline(
            i,
            &self.catalog,
            &names,
            &self.page_url(i.reference),
        ))
    }

    pub(crate) fn topic(&self, i: &Incident) -> String {
        let sev = i.severity.as_deref().unwrap_or("severity not set");
        format!(
            "{} {} | {sev} | {} | {}",
            i.reference,
            i.title,
            i.status,
            self.page_url(i.reference)
        )
    }
}

struct ChatJob {
    jobs: Arc<ChatJobs>,
    kind: &'static str,
}

fn retry(m: impl Into<String>) -> JobError {
    JobError::retry(m)
}

#[async_trait]
impl Handler for ChatJob {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let j = &self.jobs;
        let payload = ctx.payload();
        let platform_name = payload["platform"].as_str().unwrap_or_default();
        let platform = j
            .platforms
            .get(platform_name)
            .ok_or_else(|| {
                JobError::permanent(format!(
                    "the chat platform `{platform_name}` is not configured in this Klaxon"
                ))
            })?
            .clone();
        let r: IncidentRef = payload["incident"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| JobError::permanent("the job names no incident"))?;
        let incident = j
            .store
            .incident(r)
            .await
            .map_err(klaxon_jobs::store_error)?
            .ok_or_else(|| JobError::permanent(format!("{r} does not exist")))?;
        match self.kind {
            CREATE_CHANNEL => create_channel(j, ctx, platform.as_ref(), &incident).await,
            ANNOUNCE => announce(j, ctx, platform.as_ref(), &incident).await,
            kind => {
                let found = j
                    .store
                    .chat_channel(r, platform.name())
                    .await
                    .map_err(klaxon_jobs::store_error)?;
                let Some(channel) = found else {
                    // A platform where rooms open on request, and none was opened: nothing to do.
                    let asked = j
                        .store
                        .job_by_key(&format!("{r}:{}:channel", platform.name()))
                        .await
                        .map_err(klaxon_jobs::store_error)?;
                    if asked.is_none() {
                        return Ok(Done {
                            result: json!({ "skipped": format!("{r} has no {} room", platform.name()) }),
                            timeline: None,
                        });
                    }
                    return Err(retry(format!("{r} has no {} channel yet", platform.name())));
                };
                match kind {
                    POST_HEADLINE => {
                        post_headline(j, ctx, platform.as_ref(), &incident, &channel).await
                    }
                    UPDATE_HEADLINE => {
                        update_headline(j, platform.as_ref(), &incident, &channel).await
                    }
                    BOOKMARK => {
                        platform
                            .bookmark(&channel.channel_id, "Incident page", &j.page_url(r))
                            .await?;
                        Ok(Done::default())
                    }
                    INVITE => invite(j, ctx, platform.as_ref(), &channel).await,
                    ARCHIVE => {
                        platform.archive(&channel.channel_id).await?;
                        Ok(Done {
                            result: json!({}),
                            timeline: Some(TimelineEntry {
                                detail: format!("archived #{}", channel.name),
                                link: None,
                            }),
                        })
                    }
                    other => Err(JobError::permanent(format!("unknown chat job `{other}`"))),
                }
            }
        }
    }
}

async fn create_channel(
    j: &ChatJobs,
    ctx: &JobContext,
    p: &dyn ChatPlatform,
    i: &Incident,
) -> Result<Done, JobError> {
    if let Some(existing) = j
        .store
        .chat_channel(i.reference, p.name())
        .await
        .map_err(klaxon_jobs::store_error)?
    {
        return Ok(Done {
            result: json!({ "channel": existing.channel_id }),
            timeline: None,
        });
    }
    let name = channel_name(i);
    // An earlier attempt that got as far as asking the platform may have made the channel.
    let adopt = ctx.checkpoint().is_some();
    ctx.save_checkpoint(json!({ "creating": name })).await?;
    let channel = p.create_channel(&name, i.private, adopt).await?;
    j.store
        .link_chat_channel(&ChatChannel {
            platform: p.name().to_string(),
            channel_id: channel.id.clone(),
            incident: i.reference,
            name: channel.name.clone(),
            url: channel.url.clone(),
            headline_id: None,
        })
        .await
        .map_err(klaxon_jobs::store_error)?;
    p.set_topic(&channel.id, &j.topic(i)).await?;
    let link = channel.url.clone().map(|url| Link {
        label: format!("#{}", channel.name),
        url,
    });
    Ok(Done {
        result: json!({ "channel": channel.id, "name": channel.name }),
        timeline: Some(TimelineEntry {
            detail: format!("created the {} channel #{}", p.name(), channel.name),
            link,
        }),
    })
}

/// Posts `message` once: after an interrupted attempt, the message found by its marker counts.
async fn post_once(
    ctx: &JobContext,
    p: &dyn ChatPlatform,
    channel: &str,
    message: &Message,
) -> Result<String, JobError> {
    if ctx.checkpoint().is_some() {
        if let Some(marker) = &message.marker {
            if let Some(id) = p.find_marked(channel, marker).await? {
                return Ok(id);
            }
        }
    }
    ctx.save_checkpoint(json!({ "posting": true })).await?;
    Ok(p.post(channel, message).await?)
}

async fn post_headline(
    j: &ChatJobs,
    ctx: &JobContext,
    p: &dyn ChatPlatform,
    i: &Incident,
    channel: &ChatChannel,
) -> Result<Done, JobError> {
    let id = match &channel.headline_id {
        Some(id) => id.clone(),
        None => {
            let message = j.headline_for(i).await?;
            let id = post_once(ctx, p, &channel.channel_id, &message).await?;
            j.store
                .set_headline(i.reference, p.name(), &id)
                .await
                .map_err(klaxon_jobs::store_error)?;
            id
        }
    };
    p.pin(&channel.channel_id, &id).await?;
    Ok(Done {
        result: json!({ "message": id }),
        timeline: None,
    })
}

async fn update_headline(
    j: &ChatJobs,
    p: &dyn ChatPlatform,
    i: &Incident,
    channel: &ChatChannel,
) -> Result<Done, JobError> {
    let id = channel
        .headline_id
        .clone()
        .ok_or_else(|| retry("the headline is not posted yet"))?;
    // Rendered from the incident as it is now: updates that run late or twice show the same.
    let message = j.headline_for(i).await?;
    p.update(&channel.channel_id, &id, &message).await?;
    p.set_topic(&channel.channel_id, &j.topic(i)).await?;
    Ok(Done {
        result: json!({ "version": i.version }),
        timeline: None,
    })
}

async fn invite(
    j: &ChatJobs,
    ctx: &JobContext,
    p: &dyn ChatPlatform,
    channel: &ChatChannel,
) -> Result<Done, JobError> {
    let ids: Vec<PersonId> = ctx.payload()["people"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_i64())
        .map(PersonId)
        .collect();
    let people = j
        .store
        .persons_by_id(&ids)
        .await
        .map_err(klaxon_jobs::store_error)?;
    let users: Vec<String> = people
        .iter()
        .filter_map(|person| p.user_of(person))
        .collect();
    if !users.is_empty() {
        p.invite(&channel.channel_id, &users).await?;
    }
    Ok(Done {
        result: json!({ "invited": users }),
        timeline: None,
    })
}

async fn announce(
    j: &ChatJobs,
    ctx: &JobContext,
    p: &dyn ChatPlatform,
    i: &Incident,
) -> Result<Done, JobError> {
    let Some((_, target)) = j.announce_in.iter().find(|(name, _)| *name == p.name()) else {
        return Ok(Done::default());
    };
    let channel = j
        .store
        .chat_channel(i.reference, p.name())
        .await
        .map_err(klaxon_jobs::store_error)?;
    let message = announcement(
        i,
        channel.as_ref().map(|c| c.name.as_str()),
        &j.page_url(i.reference),
    );
    let id = post_once(ctx, p, target, &message).await?;
    Ok(Done {
        result: json!({ "message": id }),
        timeline: Some(TimelineEntry {
            detail: format!("announced the incident in {}", target),
            link: p.message_link(target, &id).map(|url| Link {
                label: "Announcement".into(),
                url,
            }),
        }),
    })
}
