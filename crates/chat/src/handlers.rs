//! The chat jobs, run by the job runner: create the channel, post and keep the headline
//! current, bookmark the incident page, invite people, announce, archive. Each reloads what it
//! needs (jobs carry ids only) and is safe to run again: it records what it made (the channel,
//! the headline) before moving on, and after an interrupted post it looks for the message it
//! may already have posted rather than posting it twice.

use std::collections::HashMap;
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
    /// One headline update at a time per room in this process (see [`show_latest`]).
    pub updating: RoomLocks,
}

/// Locks by room, so that updates of one headline that run at once (two changes in quick
/// succession each enqueue one) take turns: the second then finds the headline shown and
/// makes no call. Across replicas they may still overlap, which costs a call, not a wrong
/// headline. An entry lives only while someone holds or waits for it.
#[derive(Default)]
pub struct RoomLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl RoomLocks {
    async fn lock(&self, room: String) -> RoomGuard<'_> {
        let lock = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(room.clone())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        RoomGuard {
            locks: self,
            room,
            lock,
            _guard: Some(guard),
        }
    }
}

struct RoomGuard<'a> {
    locks: &'a RoomLocks,
    room: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for RoomGuard<'_> {
    fn drop(&mut self) {
        self._guard = None;
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and this guard's: nobody else holds or waits for the room.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.room);
        }
    }
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
        // Every chat job needs the incident and its channel (if it has one yet): both reads
        // at once, each on a connection of its own, not one after the other.
        let (incident, found) = tokio::try_join!(
            j.store.incident(r),
            j.store.chat_channel(r, platform.name())
        )
        .map_err(klaxon_jobs::store_error)?;
        let incident =
            incident.ok_or_else(|| JobError::permanent(format!("{r} does not exist")))?;
        match self.kind {
            CREATE_CHANNEL => create_channel(j, ctx, platform.as_ref(), &incident, found).await,
            ANNOUNCE => announce(j, ctx, platform.as_ref(), &incident, found).await,
            kind => {
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
                    PIN_HEADLINE => {
                        let id = channel
                            .headline_id
                            .as_deref()
                            .ok_or_else(|| retry("the headline is not posted yet"))?;
                        platform.pin(&channel.channel_id, id).await?;
                        Ok(Done::default())
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
    found: Option<ChatChannel>,
) -> Result<Done, JobError> {
    if let Some(existing) = found {
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
            headline_digest: None,
            topic: None,
        })
        .await
        .map_err(klaxon_jobs::store_error)?;
    // The topic is set by the headline's job, beside the post: not one more call in the way
    // of everything that waits for the channel.
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

/// Posts the headline, setting the topic at the same time. Its pin is a job of its own, as are
/// the updates for changes made meanwhile (a ticket's link, say): all of them wait only for
/// this post, so they run beside each other.
async fn post_headline(
    j: &ChatJobs,
    ctx: &JobContext,
    p: &dyn ChatPlatform,
    i: &Incident,
    channel: &ChatChannel,
) -> Result<Done, JobError> {
    let r = i.reference;
    let id = match &channel.headline_id {
        Some(id) => id.clone(),
        None => {
            let message = j.headline_for(i).await?;
            let topic = j.topic(i);
            let (id, ()) =
                tokio::try_join!(post_once(ctx, p, &channel.channel_id, &message), async {
                    Ok(p.set_topic(&channel.channel_id, &topic).await?)
                },)?;
            j.store
                .set_headline(r, p.name(), &id, &message.digest(), &topic)
                .await
                .map_err(klaxon_jobs::store_error)?;
            id
        }
    };
    // A headline job from before pins were jobs of their own: pin, and show what changed.
    if ctx.payload()["pin"] != "apart" {
        tokio::try_join!(
            async { Ok::<_, JobError>(p.pin(&channel.channel_id, &id).await?) },
            show_latest(j, p, r, &channel.channel_id, &id),
        )?;
    }
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
    let calls = show_latest(j, p, i.reference, &channel.channel_id, &id).await?;
    Ok(Done {
        result: json!({ "rounds": calls }),
        timeline: None,
    })
}

/// Brings the headline and the topic up to the incident as it is now, calling the platform
/// only for what differs from what they last showed; returns how many rounds of calls it
/// made. Rendered from the incident as it is at each round, so updates that run late, twice or
/// out of order converge on the same message: a round whose incident moved on while it called
/// goes again (a few rounds at most; every later change has an update of its own).
async fn show_latest(
    j: &ChatJobs,
    p: &dyn ChatPlatform,
    r: IncidentRef,
    channel_id: &str,
    headline_id: &str,
) -> Result<u32, JobError> {
    let store_error = klaxon_jobs::store_error;
    let _turn = j.updating.lock(format!("{r}:{}", p.name())).await;
    // What this call showed, once it has: from then on compared with its own rendering, not
    // the note (another update may have noted a newer one and landed before this one).
    let mut mine: Option<(String, String)> = None;
    let mut rounds = 0;
    while rounds < 3 {
        let i = j
            .store
            .incident(r)
            .await
            .map_err(store_error)?
            .ok_or_else(|| JobError::permanent(format!("{r} does not exist")))?;
        let shown = j
            .store
            .chat_channel(r, p.name())
            .await
            .map_err(store_error)?
            .ok_or_else(|| retry(format!("{r} has no {} channel yet", p.name())))?;
        let message = j.headline_for(&i).await?;
        let digest = message.digest();
        let topic = j.topic(&i);
        let (was_headline, was_topic) = match &mine {
            Some((h, t)) => (Some(h.as_str()), Some(t.as_str())),
            None => (shown.headline_digest.as_deref(), shown.topic.as_deref()),
        };
        let headline_due = was_headline != Some(digest.as_str());
        let topic_due = was_topic != Some(topic.as_str());
        if !headline_due && !topic_due {
            break;
        }
        let update = async {
            if headline_due {
                p.update(channel_id, headline_id, &message).await?;
            }
            Ok::<_, JobError>(())
        };
        let set_topic = async {
            if topic_due {
                p.set_topic(channel_id, &topic).await?;
            }
            Ok::<_, JobError>(())
        };
        tokio::try_join!(update, set_topic)?;
        j.store
            .set_shown(
                r,
                p.name(),
                headline_due.then_some(digest.as_str()),
                topic_due.then_some(topic.as_str()),
            )
            .await
            .map_err(store_error)?;
        mine = Some((digest, topic));
        rounds += 1;
    }
    Ok(rounds)
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
    channel: Option<ChatChannel>,
) -> Result<Done, JobError> {
    let Some((_, target)) = j.announce_in.iter().find(|(name, _)| *name == p.name()) else {
        return Ok(Done::default());
    };
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
