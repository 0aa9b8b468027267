//! Matrix behind [`ChatPlatform`]: a room per incident (its alias from the channel name), the
//! topic as room state, messages with an HTML body and a plain fallback, the headline kept
//! current by edits (`m.replace`) and pinned (`m.room.pinned_events`), direct messages in
//! rooms recorded in the bot's `m.direct` account data, and the room marked closed on close.
//! `sync.rs` reads what people write (`/sync` long-polling, its token kept in the store), and
//! `jobs.rs` runs it: `!incident` commands, keywords, reactions and pins onto the timeline.

pub mod api;
pub mod jobs;
pub mod sync;

use std::collections::HashMap;

use async_trait::async_trait;
use klaxon_core::ChatIdentity;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use api::enc;
pub use api::MatrixApi;

use crate::{Channel, ChatError, ChatPlatform, ChatUser, Message, PostedMessage};

/// Where Klaxon's marker goes in a message's content, to find the message again.
pub const MARKER: &str = "org.klaxon.marker";

pub struct MatrixPlatform {
    api: MatrixApi,
    /// Create incident rooms with end-to-end encryption on (the bot then cannot read them).
    encrypt: bool,
    /// Direct-message rooms by user, as far as this process knows.
    dm_rooms: Mutex<HashMap<String, String>>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A message's `m.room.message` content: HTML, a plain fallback, and its marker.
pub fn content(m: &Message) -> Value {
    let mut html = String::new();
    if let Some(t) = &m.title {
        html.push_str(&format!("<p><strong>{}</strong></p>", escape(t)));
    }
    if !m.fields.is_empty() {
        let fields: Vec<String> = m
            .fields
            .iter()
            .map(|(k, v)| format!("<strong>{}</strong>: {}", escape(k), escape(v)))
            .collect();
        html.push_str(&format!("<p>{}</p>", fields.join("<br>")));
    }
    if let Some(b) = &m.body {
        html.push_str(&format!("<p>{}</p>", escape(b).replace('\n', "<br>")));
    }
    if m.title.is_none() && m.fields.is_empty() && m.body.is_none() {
        html.push_str(&format!("<p>{}</p>", escape(&m.text).replace('\n', "<br>")));
    }
    if !m.links.is_empty() {
        let links: Vec<String> = m
            .links
            .iter()
            .map(|(label, url)| format!("<a href=\"{}\">{}</a>", escape(url), escape(label)))
            .collect();
        html.push_str(&format!("<p>{}</p>", links.join(" · ")));
    }
    if !m.buttons.is_empty() {
        // Matrix has no buttons: say what to type instead.
        let hints: Vec<String> = m
            .buttons
            .iter()
            .map(|b| format!("<code>{}</code>", escape(&button_command(&b.action))))
            .collect();
        html.push_str(&format!("<p>{}</p>", hints.join(" · ")));
    }
    let mut c = json!({
        "msgtype": "m.text",
        "body": m.text,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    });
    if let Some(marker) = &m.marker {
        c[MARKER] = json!(marker);
    }
    c
}

/// The command a headline button stands for.
fn button_command(action: &str) -> String {
    match action {
        "ack" => "!incident status investigating".into(),
        "lead" => "!incident lead me".into(),
        "resolve" => "!incident resolve".into(),
        "severity" => "!incident severity SEV1".into(),
        other => format!("!incident {other}"),
    }
}

impl MatrixPlatform {
    pub fn new(api: MatrixApi, encrypt: bool) -> MatrixPlatform {
        MatrixPlatform {
            api,
            encrypt,
            dm_rooms: Mutex::new(HashMap::new()),
        }
    }

    pub fn api(&self) -> &MatrixApi {
        &self.api
    }

    async fn send(&self, room: &str, txn: &str, content: &Value) -> Result<String, ChatError> {
        let path = format!("/rooms/{}/send/m.room.message/{}", enc(room), enc(txn));
        let v = self
            .api
            .call(Method::PUT, &path, Some(content.clone()), &[])
            .await?;
        v["event_id"].as_str().map(String::from).ok_or_else(|| {
            ChatError::Permanent("Matrix sent the message but gave no event id".into())
        })
    }

    /// A notice (what bots say) in a room.
    pub async fn notice(&self, room: &str, text: &str) -> Result<String, ChatError> {
        let c = json!({ "msgtype": "m.notice", "body": text });
        self.send(room, &self.api.next_txn(), &c).await
    }

    async fn state(&self, room: &str, kind: &str) -> Result<Option<Value>, ChatError> {
        let path = format!("/rooms/{}/state/{kind}", enc(room));
        self.api
            .call_unless(Method::GET, &path, None, &[], &["M_NOT_FOUND"])
            .await
    }

    async fn set_state(&self, room: &str, kind: &str, content: Value) -> Result<(), ChatError> {
        let path = format!("/rooms/{}/state/{kind}", enc(room));
        self.api
            .call(Method::PUT, &path, Some(content), &[])
            .await?;
        Ok(())
    }

    /// The room an alias points at, if it is one of the bot's own.
    async fn own_room(&self, alias: &str) -> Result<Option<String>, ChatError> {
        let path = format!("/directory/room/{}", enc(alias));
        let Some(v) = self
            .api
            .call_unless(Method::GET, &path, None, &[], &["M_NOT_FOUND"])
            .await?
        else {
            return Ok(None);
        };
        let Some(room) = v["room_id"].as_str() else {
            return Ok(None);
        };
        let create = self.state(room, "m.room.create").await.ok().flatten();
        let mine = create
            .as_ref()
            .and_then(|c| c["creator"].as_str())
            .is_some_and(|c| c == self.api.user_id());
        Ok(mine.then(|| room.to_string()))
    }

    async fn dm_room(&self, user: &str) -> Result<String, ChatError> {
        if let Some(r) = self.dm_rooms.lock().await.get(user) {
            return Ok(r.clone());
        }
        let me = self.api.user_id().to_string();
        let path = format!("/user/{}/account_data/m.direct", enc(&me));
        let mut direct = self
            .api
            .call_unless(Method::GET, &path, None, &[], &["M_NOT_FOUND"])
            .await?
            .unwrap_or_else(|| json!({}));
        if let Some(room) = direct[user]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r.as_str())
        {
            let room = room.to_string();
            self.dm_rooms.lock().await.insert(user.into(), room.clone());
            return Ok(room);
        }
        let v = self
            .api
            .call(
                Method::POST,
                "/createRoom",
                Some(json!({ "is_direct": true, "invite": [user], "preset": "trusted_private_chat" })),
                &[],
            )
            .await?;
        let room = v["room_id"]
            .as_str()
            .ok_or_else(|| ChatError::Permanent("Matrix created a room but gave no id".into()))?
            .to_string();
        direct[user] = json!([room]);
        self.api.call(Method::PUT, &path, Some(direct), &[]).await?;
        self.dm_rooms.lock().await.insert(user.into(), room.clone());
        Ok(room)
    }
}

#[async_trait]
impl ChatPlatform for MatrixPlatform {
    fn name(&self) -> &'static str {
        "matrix"
    }

    fn identity(&self, user: &str) -> ChatIdentity {
        ChatIdentity::Matrix(user.to_string())
    }

    fn user_of(&self, person: &klaxon_core::Person) -> Option<String> {
        person.matrix_id.clone()
    }

    async fn create_channel(
        &self,
        name: &str,
        private: bool,
        adopt: bool,
    ) -> Result<Channel, ChatError> {
        let server = self.api.server_name().to_string();
        for n in 1..=20 {
            let local = if n == 1 {
                name.to_string()
            } else {
                format!("{name}-{n}")
            };
            let alias = format!("#{local}:{server}");
            let mut body = json!({
                "name": local,
                "room_alias_name": local,
                "preset": if private { "private_chat" } else { "public_chat" },
                "visibility": "private",
            });
            if self.encrypt {
                body["initial_state"] = json!([{
                    "type": "m.room.encryption", "state_key": "",
                    "content": { "algorithm": "m.megolm.v1.aes-sha2" }
                }]);
            }
            match self
                .api
                .call_unless(
                    Method::POST,
                    "/createRoom",
                    Some(body),
                    &[],
                    &["M_ROOM_IN_USE"],
                )
                .await?
            {
                Some(v) => {
                    let id = v["room_id"].as_str().unwrap_or_default().to_string();
                    return Ok(Channel {
                        id,
                        name: local,
                        url: Some(format!("https://matrix.to/#/{alias}")),
                    });
                }
                None if adopt && n == 1 => {
                    // An interrupted attempt may have made it: take it back if it is ours.
                    if let Some(id) = self.own_room(&alias).await? {
                        return Ok(Channel {
                            id,
                            name: local,
                            url: Some(format!("https://matrix.to/#/{alias}")),
                        });
                    }
                }
                None => {}
            }
        }
        Err(ChatError::Permanent(format!(
            "every alias from #{name} to #{name}-20 is taken on {server}"
        )))
    }

    async fn set_topic(&self, channel: &str, topic: &str) -> Result<(), ChatError> {
        self.set_state(channel, "m.room.topic", json!({ "topic": topic }))
            .await
    }

    async fn invite(&self, channel: &str, users: &[String]) -> Result<(), ChatError> {
        for user in users.iter().filter(|u| u.as_str() != self.api.user_id()) {
            let path = format!("/rooms/{}/invite", enc(channel));
            match self
                .api
                .call(Method::POST, &path, Some(json!({ "user_id": user })), &[])
                .await
            {
                Ok(_) => {}
                // Already there (or invited): what was asked for is so.
                Err(ChatError::Permanent(m)) if m.contains("already") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn post(&self, channel: &str, message: &Message) -> Result<String, ChatError> {
        // With a marker the transaction id is the marker's: the homeserver drops a repeat of it.
        let txn = match &message.marker {
            Some(m) => format!("klaxon-{m}"),
            None => self.api.next_txn(),
        };
        self.send(channel, &txn, &content(message)).await
    }

    async fn update(
        &self,
        channel: &str,
        message_id: &str,
        message: &Message,
    ) -> Result<(), ChatError> {
        let new = content(message);
        let mut c = json!({
            "msgtype": "m.text",
            "body": format!("* {}", message.text),
            "format": "org.matrix.custom.html",
            "formatted_body": format!("* {}", new["formatted_body"].as_str().unwrap_or_default()),
            "m.new_content": new,
            "m.relates_to": { "rel_type": "m.replace", "event_id": message_id },
        });
        if let Some(m) = &message.marker {
            c[MARKER] = json!(format!("{m}:edit"));
        }
        self.send(channel, &self.api.next_txn(), &c).await?;
        Ok(())
    }

    async fn find_marked(&self, channel: &str, marker: &str) -> Result<Option<String>, ChatError> {
        let path = format!("/rooms/{}/messages", enc(channel));
        let v = self
            .api
            .call(
                Method::GET,
                &path,
                None,
                &[("dir", "b".into()), ("limit", "100".into())],
            )
            .await?;
        let me = self.api.user_id();
        let found = v["chunk"].as_array().into_iter().flatten().find(|e| {
            e["sender"] == me && e["type"] == "m.room.message" && e["content"][MARKER] == marker
        });
        Ok(found.and_then(|e| e["event_id"].as_str()).map(String::from))
    }

    async fn pin(&self, channel: &str, message_id: &str) -> Result<(), ChatError> {
        let current = self.state(channel, "m.room.pinned_events").await?;
        let mut pinned: Vec<Value> = current
            .and_then(|c| c["pinned"].as_array().cloned())
            .unwrap_or_default();
        if pinned.iter().any(|p| p == message_id) {
            return Ok(());
        }
        pinned.push(json!(message_id));
        self.set_state(channel, "m.room.pinned_events", json!({ "pinned": pinned }))
            .await
    }

    async fn bookmark(&self, _channel: &str, _title: &str, _url: &str) -> Result<(), ChatError> {
        // Matrix rooms have no bookmarks: the link is in the pinned headline and the topic.
        Ok(())
    }

    async fn direct_message(&self, user: &str, message: &Message) -> Result<String, ChatError> {
        let room = self.dm_room(user).await?;
        self.post(&room, message).await
    }

    async fn archive(&self, channel: &str) -> Result<(), ChatError> {
        let name = self
            .state(channel, "m.room.name")
            .await?
            .and_then(|n| n["name"].as_str().map(String::from))
            .unwrap_or_default();
        if name.ends_with("(closed)") {
            return Ok(());
        }
        self.notice(
            channel,
            "This incident is closed. The room stays, for the record.",
        )
        .await?;
        self.set_state(
            channel,
            "m.room.name",
            json!({ "name": format!("{name} (closed)") }),
        )
        .await
    }

    async fn user(&self, user: &str) -> Result<ChatUser, ChatError> {
        let path = format!("/profile/{}", enc(user));
        let v = self
            .api
            .call_unless(Method::GET, &path, None, &[], &["M_NOT_FOUND"])
            .await?
            .unwrap_or_default();
        let name = v["displayname"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(String::from)
            .unwrap_or_else(|| {
                user.trim_start_matches('@')
                    .split(':')
                    .next()
                    .unwrap_or(user)
                    .to_string()
            });
        Ok(ChatUser {
            id: user.to_string(),
            name,
            email: None,
            is_bot: user == self.api.user_id(),
        })
    }

    async fn message(
        &self,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<PostedMessage>, ChatError> {
        let path = format!("/rooms/{}/event/{}", enc(channel), enc(message_id));
        let Some(e) = self
            .api
            .call_unless(Method::GET, &path, None, &[], &["M_NOT_FOUND"])
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(PostedMessage {
            id: message_id.to_string(),
            author: e["sender"].as_str().map(String::from),
            text: e["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            sent_at: klaxon_core::from_millis(e["origin_server_ts"].as_i64().unwrap_or(0)),
        }))
    }

    fn message_link(&self, channel: &str, message_id: &str) -> Option<String> {
        Some(format!("https://matrix.to/#/{channel}/{message_id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Button;

    #[test]
    fn a_message_has_html_a_plain_fallback_its_marker_and_commands_for_buttons() {
        let m = Message {
            text: "INC-1 Checkout <down>".into(),
            title: Some("INC-1 Checkout <down>".into()),
            fields: vec![("Severity".into(), "SEV1".into())],
            links: vec![("Incident page".into(), "https://k/incidents/INC-1".into())],
            buttons: vec![Button {
                action: "ack".into(),
                label: "Acknowledge".into(),
                value: "INC-1".into(),
                primary: true,
            }],
            marker: Some("INC-1:headline".into()),
            ..Default::default()
        };
        let c = content(&m);
        assert_eq!(c["body"], "INC-1 Checkout <down>");
        assert_eq!(c["format"], "org.matrix.custom.html");
        let html = c["formatted_body"].as_str().unwrap();
        assert!(
            html.contains("<strong>INC-1 Checkout &lt;down&gt;</strong>"),
            "{html}"
        );
        assert!(html.contains("<strong>Severity</strong>: SEV1"), "{html}");
        assert!(
            html.contains("<a href=\"https://k/incidents/INC-1\">Incident page</a>"),
            "{html}"
        );
        assert!(
            html.contains("<code>!incident status investigating</code>"),
            "{html}"
        );
        assert_eq!(c[MARKER], "INC-1:headline");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("!abc:example.org"), "%21abc%3Aexample.org");
        assert_eq!(enc("#inc-1:hs"), "%23inc-1%3Ahs");
    }
}
