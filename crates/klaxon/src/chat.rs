//! Wiring the configured chat platforms, the playbooks and the integrations: their jobs on the
//! runner, their effects on incident changes, their endpoints on the HTTP server.

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
use klaxon_integrations::IntegrationEffects;
use klaxon_jobs::Runner;
use klaxon_playbooks::{PlaybookEffects, StepHandler, STEP};
use klaxon_store::{AllEffects, Effects, Store};

use crate::config::Config;

pub struct Wired {
    pub effects: Arc<dyn Effects>,
    pub routes: Router,
    /// Slack's Socket Mode connection, to run beside the server.
    pub socket: Option<SocketMode>,
    /// What people ask of the integrations by hand (the status page form).
    pub actions: Arc<IntegrationEffects>,
}

pub fn wire(
    config: &Config,
    store: &Arc<dyn Store>,
    catalog: &Arc<Catalog>,
    public_url: &str,
    runner: &mut Runner,
) -> Wired {
    let playbooks = Arc::new(config.playbooks());
    let playbook_effects = Arc::new(PlaybookEffects {
        playbooks: playbooks.clone(),
        catalog: catalog.clone(),
    });
    let integrations = crate::integrations::wire(config, store, catalog, public_url, runner);
    let chat = wire_slack(
        config,
        store,
        catalog,
        public_url,
        runner,
        playbook_effects.clone(),
        integrations.clone(),
    );
    runner.register(
        STEP,
        StepHandler {
            store: store.clone(),
            catalog: catalog.clone(),
            playbooks: playbooks.clone(),
            platforms: chat.platforms.clone(),
            incidents_channels: chat.incidents_channels.clone(),
            public_url: public_url.to_string(),
            leads: config.incidents.leads.clone(),
            dry_run: false,
            integrations: Arc::new(config.integrations()),
            actions: Some(integrations.clone()),
        },
    );
    Wired {
        effects: chat.effects,
        routes: chat.routes,
        socket: chat.socket,
        actions: integrations,
    }
}

struct Chat {
    /// Everything an incident change causes: the chat jobs and the playbooks' steps.
    effects: Arc<dyn Effects>,
    routes: Router,
    socket: Option<SocketMode>,
    platforms: Platforms,
    incidents_channels: Vec<(&'static str, String)>,
}

fn wire_slack(
    config: &Config,
    store: &Arc<dyn Store>,
    catalog: &Arc<Catalog>,
    public_url: &str,
    runner: &mut Runner,
    playbooks: Arc<PlaybookEffects>,
    integrations: Arc<IntegrationEffects>,
) -> Chat {
    let slack = &config.slack;
    if slack.bot_token.is_empty() {
        return Chat {
            effects: Arc::new(AllEffects(vec![playbooks, integrations])),
            routes: Router::new(),
            socket: None,
            platforms: Platforms::default(),
            incidents_channels: Vec::new(),
        };
    }
    let platform = Arc::new(SlackPlatform::new(&slack.api_url, &slack.bot_token));
    let mut platforms = Platforms::default();
    platforms.add(platform.clone());
    let announce = !slack.incidents_channel.is_empty();
    let effects: Arc<dyn Effects> = Arc::new(AllEffects(vec![
        Arc::new(ChatEffects {
            platforms: vec![("slack", announce)],
        }),
        playbooks.clone() as Arc<dyn Effects>,
        integrations.clone(),
    ]));
    let commands = Arc::new(Commands {
        store: store.clone(),
        catalog: catalog.clone(),
        effects: effects.clone(),
        public_url: public_url.to_string(),
        default_access: Access::parse(&slack.default_role).unwrap_or_default(),
        custom: Arc::new(config.commands.clone()),
        actions: Some(integrations.clone()),
    });
    let mut slack_jobs = SlackJobs::new(platform, commands, &slack.timeline_reaction);
    slack_jobs.listener = Some(playbooks);
    Arc::new(slack_jobs).register(runner);
    let incidents_channels = if announce {
        vec![("slack", slack.incidents_channel.clone())]
    } else {
        Vec::new()
    };
    Arc::new(ChatJobs {
        store: store.clone(),
        catalog: catalog.clone(),
        platforms: platforms.clone(),
        settings: ChatSettings {
            public_url: public_url.to_string(),
        },
        announce_in: incidents_channels.clone(),
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
    Chat {
        effects,
        routes,
        socket,
        platforms,
        incidents_channels,
    }
}
