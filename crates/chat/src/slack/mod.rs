//! Slack: the Web API behind [`ChatPlatform`], and Slack's ways in (slash commands, events,
//! interactions) over HTTP. Everything Slack-specific lives in this module.

pub mod api;
pub mod blocks;
#[cfg(feature = "testing")]
pub mod fake;
pub mod inbound;
pub mod jobs;
pub mod manifest;
pub mod signature;
pub mod socket;

use async_trait::async_trait;
use klaxon_core::{from_millis, ChatIdentity};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use self::api::SlackApi;
use crate::{Channel, ChatError, ChatPlatform, ChatUser, Message, PostedMessage};

/// Who the bot is, from `auth.test`.
struct Me {
    user_id: String,
    /// The workspace's URL, `https://example.slack.com/`.
    url: String,
}

pub struct SlackPlatform {
    api: SlackApi,
    me: OnceCell<Me>,
}

impl SlackPlatform {
    pub fn new(api_url: &str, bot_token: &str) -> SlackPlatform {
        SlackPlatform {
            api: SlackApi::new(api_url, bot_token),
            me: OnceCell::new(),
        }
    }

    pub fn api(&self) -> &SlackApi {
        &self.api
    }

    async fn me(&self) -> Result<&Me, ChatError> {
        self.me
            .get_or_try_init(|| async {
                let v = self.api.call("auth.test", &[]).await?;
                Ok::<_, ChatError>(Me {
                    user_id: v["user_id"].as_str().unwrap_or_default().to_string(),
                    url: v["url"]
                        .as_str()
                        .unwrap_or("https://slack.com/")
                        .to_string(),
                })
            })
            .await
    }

    fn channel_url(&self, id: &str) -> Option<String> {
        self.me.get().map(|m| format!("{}archives/{id}", m.url))
    }

    /// A channel this bot created with exactly this name, still open.
    async fn find_own_channel(&self, name: &str) -> Result<Option<Channel>, ChatError> {
        let me = self.me().await?.user_id.clone();
        let mut cursor = String::new();
        for _ in 0..20 {
            let mut params = vec![
                ("types", "public_channel,private_channel".to_string()),
                ("exclude_archived", "true".into()),
                ("limit", "200".into()),
            ];
            if !cursor.is_empty() {
                params.push(("cursor", cursor.clone()));
            }
            let v = self.api.call("conversations.list", &params).await?;
            for c in v["channels"].as_array().into_iter().flatten() {
                if c["name"] == name && c["creator"] == me.as_str() {
                    let id = c["id"].as_str().unwrap_or_default().to_string();
                    return Ok(Some(Channel {
                        url: self.channel_url(&id),
                        id,
                        name: name.to_string(),
                    }));
                }
            }
            cursor = v["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if cursor.is_empty() {
                break;
            }
        }
        Ok(None)
    }

    fn message_params(channel: &str, m: &Message) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("channel", channel.to_string()),
            ("text", m.text.clone()),
            ("blocks", blocks::render(m).to_string()),
            ("unfurl_links", "false".into()),
        ];
        if let Some(marker) = &m.marker {
            params.push((
                "metadata",
                json!({ "event_type": "klaxon_message", "event_payload": { "marker": marker } })
                    .to_string(),
            ));
        }
        params
    }

    /// Runs a call whose listed error codes mean "already done".
    async fn idempotent(
        &self,
        method: &str,
        params: &[(&str, String)],
        done: &[&str],
    ) -> Result<Value, ChatError> {
        match self.api.call(method, params).await {
            Ok(v) => Ok(v),
            Err(e) if done.contains(&e.code.as_str()) => Ok(Value::Null),
            Err(e) => Err(e.into()),
        }
    }
}

/// A Slack timestamp (`1599529504.000400`) as a time.
pub fn ts_time(ts: &str) -> klaxon_core::Timestamp {
    let secs: f64 = ts.parse().unwrap_or(0.0);
    from_millis((secs * 1000.0) as i64)
}

#[async_trait]
impl ChatPlatform for SlackPlatform {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn identity(&self, user: &str) -> ChatIdentity {
        ChatIdentity::Slack(user.to_string())
    }

    fn user_of(&self, person: &klaxon_core::Person) -> Option<String> {
        person.slack_user_id.clone()
    }

    async fn create_channel(
        &self,
        name: &str,
        private: bool,
        adopt: bool,
    ) -> Result<Channel, ChatError> {
        self.me().await?;
        if adopt {
            if let Some(c) = self.find_own_channel(name).await? {
                return Ok(c);
            }
        }
        for n in 1..=20 {
            let candidate = if n == 1 {
                name.to_string()
            } else {
                format!("{name}-{n}")
            };
            let params = [
                ("name", candidate.clone()),
                ("is_private", private.to_string()),
            ];
            match self.api.call("conversations.create", &params).await {
                Ok(v) => {
                    let id = v["channel"]["id"].as_str().unwrap_or_default().to_string();
                    let name = v["channel"]["name"]
                        .as_str()
                        .unwrap_or(&candidate)
                        .to_string();
                    return Ok(Channel {
                        url: self.channel_url(&id),
                        id,
                        name,
                    });
                }
                // Someone has the name: Slack's advice is to add a suffix and try again.
                Err(e) if e.code == "name_taken" => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ChatError::Permanent(format!(
            "every channel name from {name} to {name}-20 is taken"
        )))
    }

    async fn set_topic(&self, channel: &str, topic: &str) -> Result<(), ChatError> {
        let topic: String = topic.chars().take(250).collect();
        self.api
            .call(
                "conversations.setTopic",
                &[("channel", channel.to_string()), ("topic", topic)],
            )
            .await?;
        Ok(())
    }

    async fn invite(&self, channel: &str, users: &[String]) -> Result<(), ChatError> {
        // One at a time: a user who is in already would fail the whole call for the others.
        for user in users {
            let params = [("channel", channel.to_string()), ("users", user.clone())];
            self.idempotent(
                "conversations.invite",
                &params,
                &["already_in_channel", "cant_invite_self"],
            )
            .await?;
        }
        Ok(())
    }

    async fn post(&self, channel: &str, message: &Message) -> Result<String, ChatError> {
        let v = self
            .api
            .call("chat.postMessage", &Self::message_params(channel, message))
            .await?;
        Ok(v["ts"].as_str().unwrap_or_default().to_string())
    }

    async fn update(
        &self,
        channel: &str,
        message_id: &str,
        message: &Message,
    ) -> Result<(), ChatError> {
        let mut params = Self::message_params(channel, message);
        params.retain(|(k, _)| *k != "unfurl_links");
        params.push(("ts", message_id.to_string()));
        self.api.call("chat.update", &params).await?;
        Ok(())
    }

    async fn find_marked(&self, channel: &str, marker: &str) -> Result<Option<String>, ChatError> {
        let params = [
            ("channel", channel.to_string()),
            ("limit", "100".into()),
            ("include_all_metadata", "true".into()),
        ];
        let v = self.api.call("conversations.history", &params).await?;
        let found = v["messages"].as_array().into_iter().flatten().find(|m| {
            m["metadata"]["event_type"] == "klaxon_message"
                && m["metadata"]["event_payload"]["marker"] == marker
        });
        Ok(found.and_then(|m| m["ts"].as_str()).map(String::from))
    }

    async fn pin(&self, channel: &str, message_id: &str) -> Result<(), ChatError> {
        let params = [
            ("channel", channel.to_string()),
            ("timestamp", message_id.to_string()),
        ];
        self.idempotent("pins.add", &params, &["already_pinned"])
            .await?;
        Ok(())
    }

    async fn bookmark(&self, channel: &str, title: &str, url: &str) -> Result<(), ChatError> {
        let list = self
            .api
            .call("bookmarks.list", &[("channel_id", channel.to_string())])
            .await?;
        if list["bookmarks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b["link"] == url)
        {
            return Ok(());
        }
        let params = [
            ("channel_id", channel.to_string()),
            ("title", title.to_string()),
            ("type", "link".into()),
            ("link", url.to_string()),
        ];
        self.api.call("bookmarks.add", &params).await?;
        Ok(())
    }

    async fn direct_message(&self, user: &str, message: &Message) -> Result<String, ChatError> {
        let v = self
            .api
            .call("conversations.open", &[("users", user.to_string())])
            .await?;
        let channel = v["channel"]["id"].as_str().unwrap_or_default().to_string();
        self.post(&channel, message).await
    }

    async fn archive(&self, channel: &str) -> Result<(), ChatError> {
        self.idempotent(
            "conversations.archive",
            &[("channel", channel.to_string())],
            &["already_archived"],
        )
        .await?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<String>, ChatError> {
        match self
            .api
            .call("users.lookupByEmail", &[("email", email.to_string())])
            .await
        {
            Ok(v) => Ok(v["user"]["id"].as_str().map(String::from)),
            Err(e) if e.code == "users_not_found" => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn user(&self, user: &str) -> Result<ChatUser, ChatError> {
        let v = self
            .api
            .call("users.info", &[("user", user.to_string())])
            .await?;
        let u = &v["user"];
        let pick = |vals: &[&Value]| {
            vals.iter()
                .filter_map(|v| v.as_str())
                .find(|s| !s.is_empty())
                .map(String::from)
        };
        Ok(ChatUser {
            id: user.to_string(),
            name: pick(&[
                &u["real_name"],
                &u["profile"]["real_name"],
                &u["profile"]["display_name"],
                &u["name"],
            ])
            .unwrap_or_else(|| user.to_string()),
            email: pick(&[&u["profile"]["email"]]),
            is_bot: u["is_bot"].as_bool().unwrap_or(false),
        })
    }

    async fn message(
        &self,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<PostedMessage>, ChatError> {
        let params = [
            ("channel", channel.to_string()),
            ("latest", message_id.to_string()),
            ("inclusive", "true".into()),
            ("limit", "1".into()),
        ];
        let v = self.api.call("conversations.history", &params).await?;
        let m = v["messages"]
            .as_array()
            .and_then(|l| l.iter().find(|m| m["ts"] == message_id));
        Ok(m.map(|m| PostedMessage {
            id: message_id.to_string(),
            author: m["user"].as_str().map(String::from),
            text: m["text"].as_str().unwrap_or_default().to_string(),
            sent_at: ts_time(message_id),
        }))
    }

    fn message_link(&self, channel: &str, message_id: &str) -> Option<String> {
        self.me.get().map(|m| {
            format!(
                "{}archives/{channel}/p{}",
                m.url,
                message_id.replace('.', "")
            )
        })
    }
}
