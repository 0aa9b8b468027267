//! The Slack app manifest (schema v1): scopes, the slash command, events, interactivity and
//! Socket Mode, so that installing the app is one paste.

use serde_json::{json, Value};

/// The bot scopes Klaxon uses, each for a call it makes.
pub const BOT_SCOPES: &[&str] = &[
    "commands",          // /incident
    "chat:write",        // chat.postMessage, chat.update
    "chat:write.public", // announce in a channel without joining it first
    "channels:manage",   // conversations.create/setTopic/invite/archive (public)
    "groups:write",      // the same for private channels
    "channels:read",     // conversations.list (finding a channel an interrupted attempt made)
    "groups:read",
    "channels:history", // conversations.history: messages put on the timeline
    "groups:history",
    "pins:read",
    "pins:write",     // pin the headline
    "reactions:read", // the timeline reaction
    "bookmarks:read",
    "bookmarks:write",  // bookmark the incident page
    "users:read",       // users.info: a new person's name
    "users:read.email", // … and email, to match the person signed in to the web UI
    "im:write",         // direct messages
];

pub const BOT_EVENTS: &[&str] = &[
    "pin_added",
    "pin_removed",
    "reaction_added",
    "reaction_removed",
    // Messages in the channels the app is in: the keyword playbooks.
    "message.channels",
    "message.groups",
];

/// The manifest for a Klaxon reachable at `url` (HTTP mode), or without a URL (Socket Mode).
pub fn manifest(url: Option<&str>) -> Value {
    let socket = url.is_none();
    let base = url.unwrap_or_default().trim_end_matches('/');
    let mut command = json!({
        "command": "/incident",
        "description": "Declare and run incidents",
        "usage_hint": "declare Checkout is down | help",
        "should_escape": true
    });
    let mut events = json!({ "bot_events": BOT_EVENTS });
    let mut interactivity = json!({ "is_enabled": true });
    if !socket {
        command["url"] = json!(format!("{base}/slack/commands"));
        events["request_url"] = json!(format!("{base}/slack/events"));
        interactivity["request_url"] = json!(format!("{base}/slack/interactions"));
    }
    json!({
        "_metadata": { "major_version": 1, "minor_version": 1 },
        "display_information": {
            "name": "Klaxon",
            "description": "Declare incidents and run them from the channel.",
            "background_color": "#7f1d1d"
        },
        "features": {
            "bot_user": { "display_name": "Klaxon", "always_online": true },
            "slash_commands": [command]
        },
        "oauth_config": { "scopes": { "bot": BOT_SCOPES } },
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": false,
            "socket_mode_enabled": socket,
            "token_rotation_enabled": false
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_follow_the_mode() {
        let http = super::manifest(Some("https://klaxon.example.com/"));
        assert_eq!(
            http["features"]["slash_commands"][0]["url"],
            "https://klaxon.example.com/slack/commands"
        );
        assert_eq!(
            http["settings"]["event_subscriptions"]["request_url"],
            "https://klaxon.example.com/slack/events"
        );
        assert_eq!(http["settings"]["socket_mode_enabled"], false);
        let socket = super::manifest(None);
        assert_eq!(socket["settings"]["socket_mode_enabled"], true);
        assert!(socket["features"]["slash_commands"][0].get("url").is_none());
    }
}
