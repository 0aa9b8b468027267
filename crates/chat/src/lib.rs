//! Klaxon's chat platforms behind one interface, [`ChatPlatform`]: create a channel, set its
//! topic, invite, post, update, pin, bookmark, direct-message, archive, and know a chat user.
//! The incident commands (`commands`), the jobs that mobilise an incident's channel
//! (`effects`, `handlers`) and the headline message (`message`) are written once against it;
//! `slack/` is one implementation, and nothing outside it knows Slack exists.

pub mod commands;
pub mod effects;
pub mod handlers;
pub mod matrix;
pub mod message;
pub mod recording;
pub mod slack;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use klaxon_core::{ChatIdentity, Timestamp};
use serde::{Deserialize, Serialize};

pub use message::{Button, Message};

/// A channel (a room) on a platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub url: Option<String>,
}

/// What a platform knows of one of its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatUser {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub is_bot: bool,
}

/// A message read back from a platform, to put on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMessage {
    pub id: String,
    pub author: Option<String>,
    pub text: String,
    pub sent_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatError {
    /// Worth another try: the platform was down, slow, or asked us to slow down.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Another try would fail the same way: a bad token, a missing scope, no such channel.
    #[error("{0}")]
    Permanent(String),
    /// Not yet: the platform's rate limit has a slot for this call after `wait`.
    #[error("{message}")]
    Deferred { message: String, wait: Duration },
}

impl From<ChatError> for klaxon_jobs::JobError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Retryable {
                message,
                retry_after,
            } => klaxon_jobs::JobError::Retryable {
                message,
                retry_after,
            },
            ChatError::Permanent(m) => klaxon_jobs::JobError::Permanent(m),
            ChatError::Deferred { message, wait } => {
                klaxon_jobs::JobError::Deferred { message, wait }
            }
        }
    }
}

/// One chat platform. Implementations make each call safe to repeat where the platform allows
/// (inviting someone already in the channel, pinning a pinned message, archiving an archived
/// channel succeed); where it does not, [`Message::marker`] and [`ChatPlatform::find_marked`]
/// let a rerun find what an interrupted attempt already posted.
#[async_trait]
pub trait ChatPlatform: Send + Sync + 'static {
    /// `slack`, `matrix`: the key of its rooms in the store.
    fn name(&self) -> &'static str;
    /// How a user of this platform is known to Klaxon.
    fn identity(&self, user: &str) -> ChatIdentity;
    /// A person's user on this platform, if they have one.
    fn user_of(&self, person: &klaxon_core::Person) -> Option<String>;
    /// Creates a channel named `name`, or the first free `name-2`, `name-3` … when it is
    /// taken. A channel this bot created under exactly `name` earlier (an interrupted attempt)
    /// is returned instead of a new one when `adopt` is set.
    async fn create_channel(
        &self,
        name: &str,
        private: bool,
        adopt: bool,
    ) -> Result<Channel, ChatError>;
    async fn set_topic(&self, channel: &str, topic: &str) -> Result<(), ChatError>;
    async fn invite(&self, channel: &str, users: &[String]) -> Result<(), ChatError>;
    /// The user with this email on the platform, for people Klaxon has not met in chat yet;
    /// `None` when there is none (or the platform cannot tell).
    async fn user_by_email(&self, _email: &str) -> Result<Option<String>, ChatError> {
        Ok(None)
    }
    /// Posts and returns the message's id.
    async fn post(&self, channel: &str, message: &Message) -> Result<String, ChatError>;
    async fn update(
        &self,
        channel: &str,
        message_id: &str,
        message: &Message,
    ) -> Result<(), ChatError>;
    /// The id of a recent message this bot posted with `marker`, if any.
    async fn find_marked(&self, channel: &str, marker: &str) -> Result<Option<String>, ChatError>;
    async fn pin(&self, channel: &str, message_id: &str) -> Result<(), ChatError>;
    /// Adds a link to the channel, unless one to the same URL is there already.
    async fn bookmark(&self, channel: &str, title: &str, url: &str) -> Result<(), ChatError>;
    async fn direct_message(&self, user: &str, message: &Message) -> Result<String, ChatError>;
    async fn archive(&self, channel: &str) -> Result<(), ChatError>;
    async fn user(&self, user: &str) -> Result<ChatUser, ChatError>;
    /// A message as it is now, to capture it on the timeline.
    async fn message(
        &self,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<PostedMessage>, ChatError>;
    /// A link that opens the message, if the platform has one.
    fn message_link(&self, channel: &str, message_id: &str) -> Option<String>;
}

/// The platforms configured in this Klaxon, by name.
#[derive(Clone, Default)]
pub struct Platforms(BTreeMap<&'static str, Arc<dyn ChatPlatform>>);

impl Platforms {
    pub fn add(&mut self, p: Arc<dyn ChatPlatform>) {
        self.0.insert(p.name(), p);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ChatPlatform>> {
        self.0.get(name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Hears what people write in incident channels (keyword playbooks): the jobs a message
/// causes. Its keys make a message's effect happen once, whoever delivers it twice.
pub trait MessageListener: Send + Sync {
    fn jobs_for_message(
        &self,
        incident: &klaxon_core::Incident,
        text: &str,
        at: klaxon_core::Timestamp,
    ) -> Vec<klaxon_store::NewJob>;
}

/// Settings every platform shares.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// Where the incident pages are, for links.
    pub public_url: String,
}
