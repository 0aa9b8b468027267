//! A chat platform that talks to no one: it keeps what it was asked to do, so that
//! `klaxon playbook simulate` can show what would be posted, and where, without posting.

use std::sync::Mutex;

use async_trait::async_trait;
use klaxon_core::ChatIdentity;

use crate::{Channel, ChatError, ChatPlatform, ChatUser, Message, PostedMessage};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The channel's name (`#inc-1-…`), or a user for direct messages.
    pub to: String,
    pub text: String,
    pub marker: Option<String>,
}

#[derive(Default)]
pub struct RecordingPlatform {
    channels: Mutex<Vec<(String, String)>>,
    posted: Mutex<Vec<Posted>>,
}

impl RecordingPlatform {
    /// What was posted since the last call.
    pub fn take(&self) -> Vec<Posted> {
        std::mem::take(&mut *self.posted.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn name_of(&self, id: &str) -> String {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, n)| format!("#{n}"))
            .unwrap_or_else(|| id.to_string())
    }

    fn record(&self, to: String, m: &Message) -> String {
        let mut posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
        posted.push(Posted {
            to,
            text: m.text.clone(),
            marker: m.marker.clone(),
        });
        format!("m{}", posted.len())
    }
}

#[async_trait]
impl ChatPlatform for RecordingPlatform {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn identity(&self, user: &str) -> ChatIdentity {
        ChatIdentity::Email(user.to_string())
    }

    fn user_of(&self, person: &klaxon_core::Person) -> Option<String> {
        Some(person.name.clone())
    }

    async fn create_channel(
        &self,
        name: &str,
        _private: bool,
        _adopt: bool,
    ) -> Result<Channel, ChatError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let id = format!("C{}", channels.len() + 1);
        channels.push((id.clone(), name.to_string()));
        Ok(Channel {
            id,
            name: name.to_string(),
            url: None,
        })
    }

    async fn set_topic(&self, _: &str, _: &str) -> Result<(), ChatError> {
        Ok(())
    }

    async fn invite(&self, _: &str, _: &[String]) -> Result<(), ChatError> {
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<String>, ChatError> {
        Ok(Some(email.to_string()))
    }

    async fn post(&self, channel: &str, message: &Message) -> Result<String, ChatError> {
        Ok(self.record(self.name_of(channel), message))
    }

    async fn update(&self, _: &str, _: &str, _: &Message) -> Result<(), ChatError> {
        Ok(())
    }

    async fn find_marked(&self, _: &str, _: &str) -> Result<Option<String>, ChatError> {
        Ok(None)
    }

    async fn pin(&self, _: &str, _: &str) -> Result<(), ChatError> {
        Ok(())
    }

    async fn bookmark(&self, _: &str, _: &str, _: &str) -> Result<(), ChatError> {
        Ok(())
    }

    async fn direct_message(&self, user: &str, message: &Message) -> Result<String, ChatError> {
        Ok(self.record(format!("@{user}"), message))
    }

    async fn archive(&self, _: &str) -> Result<(), ChatError> {
        Ok(())
    }

    async fn user(&self, user: &str) -> Result<ChatUser, ChatError> {
        Ok(ChatUser {
            id: user.to_string(),
            name: user.to_string(),
            email: None,
            is_bot: false,
        })
    }

    async fn message(&self, _: &str, _: &str) -> Result<Option<PostedMessage>, ChatError> {
        Ok(None)
    }

    fn message_link(&self, _: &str, _: &str) -> Option<String> {
        None
    }
}
