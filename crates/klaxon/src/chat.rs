//! Wiring the configured chat platforms: their jobs on the runner, their effects on incident
//! changes, their endpoints on the HTTP server.

use std::sync::Arc;

use axum::Router;
use klaxon_chat::commands::Commands;
use klaxon_chat::effects::ChatEffects;
use klaxon_chat::handlers::ChatJobs;
use klaxon_chat::slack::api::SlackApi;
use klaxon_chat::slack::inbound::{self, SlackInbound};
use klaxon_chat::slack::jobs::SlackJobs;
use klaxon_chat::slack::socket::SocketMode;
use klaxon_chat::slack::SlackPlatform;
use klaxon_chat::{ChatSettings, Platforms};
use klaxon_core::{Access, Catalog};
use klaxon_jobs::Runner;
use klaxon_store::{Effects, NoEffects, Store};

use crate::config::Config;

pub struct Wired {
    pub effects: Arc<dyn Effects>,
    pub routes: Router,
    /// Slack's Socket Mode connection, to run beside the server.
    pub socket: Option<SocketMode>,
}

pub fn wire(
    config: &Config,
    store: &Arc<dyn Store>,
    catalog: &Arc<Catalog>,
    public_url: &str,
    runner: &mut Runner,
) -> Wired {
    let slack = &config.slack;
    if slack.bot_token.is_empty() {
        return Wired {
            effects: Arc::new(NoEffects),
            routes: Router::new(),
            socket: None,
        };
    }
    let platform = Arc::new(SlackPlatform::new(&slack.api_url, &slack.bot_token));
    let mut platforms = Platforms::default();
    platforms.add(platform.clone());
    let announce = !slack.incidents_channel.is_empty();
    let effects: Arc<dyn Effects> = Arc::new(ChatEffects {
        platforms: vec![("slack", announce)],
    });
    let commands = Arc::new(Commands {
        store: store.clone(),
        catalog: catalog.clone(),
        effects: effects.clone(),
        public_url: public_url.to_string(),
        default_access: Access::parse(&slack.default_role).unwrap_or_default(),
    });
    Arc::new(SlackJobs::new(platform, commands, &slack.timeline_reaction)).register(runner);
    let announce_in = if announce {
        vec![("slack", slack.incidents_channel.clone())]
    } else {
        Vec::new()
    };
    Arc::new(ChatJobs {
        store: store.clone(),
        catalog: catalog.clone(),
        platforms,
        settings: ChatSettings {
            public_url: public_url.to_string(),
        },
        announce_in,
    })
    .register(runner);
    let inbound = SlackInbound {
        store: store.clone(),
        catalog: catalog.clone(),
        signing_secret: slack.signing_secret.clone(),
        wake: Some(runner.waker()),
    };
    // Without a signing secret nothing could be verified: no HTTP endpoints then.
    let routes = if slack.signing_secret.is_empty() {
        Router::new()
    } else {
        inbound::router(inbound.clone())
    };
    let socket = (slack.mode == "socket").then(|| SocketMode {
        api: SlackApi::new(&slack.api_url, &slack.app_token),
        inbound,
    });
    tracing::info!(mode = %slack.mode, "Slack is on");
    Wired {
        effects,
        routes,
        socket,
    }
}
