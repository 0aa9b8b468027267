//! Wiring the configured chat platforms, the playbooks and the integrations: their jobs on the
//! runner, their effects on incident changes, their endpoints on the HTTP server.

use std::sync::Arc;

use axum::Router;
use klaxon_chat::commands::Commands;
use klaxon_chat::effects::ChatEffects;
use klaxon_chat::handlers::ChatJobs;
use klaxon_chat::matrix::jobs::MatrixJobs;
use klaxon_chat::matrix::sync::MatrixSync;
use klaxon_chat::matrix::{MatrixApi, MatrixPlatform};
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
    /// Matrix's `/sync` loop, to run beside the server.
    pub sync: Option<MatrixSync>,
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
    let chat = wire_chat(
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
            integrations: integrations.settings.clone(),
            actions: Some(integrations.clone()),
        },
    );
    Wired {
        effects: chat.effects,
        routes: chat.routes,
        socket: chat.socket,
        sync: chat.sync,
        actions: integrations,
    }
}

struct Chat {
    /// Everything an incident change causes: the chat jobs and the playbooks' steps.
    effects: Arc<dyn Effects>,
    routes: Router,
    socket: Option<SocketMode>,
    sync: Option<MatrixSync>,
    platforms: Platforms,
    incidents_channels: Vec<(&'static str, String)>,
}

/// Slack and Matrix, each if configured: one incident gets a channel on each.
fn wire_chat(
    config: &Config,
    store: &Arc<dyn Store>,
    catalog: &Arc<Catalog>,
    public_url: &str,
    runner: &mut Runner,
    playbooks: Arc<PlaybookEffects>,
    integrations: Arc<IntegrationEffects>,
) -> Chat {
    let slack = &config.slack;
    let matrix = &config.matrix;
    let slack_on = config.chat_platform("slack") == Some(true);
    let matrix_on = config.chat_platform("matrix") == Some(true);
    let mut platforms = Platforms::default();
    let mut announce = Vec::new();
    let mut incidents_channels = Vec::new();
    let slack_platform =
        slack_on.then(|| Arc::new(SlackPlatform::new(&slack.api_url, &slack.bot_token)));
    if let Some(p) = &slack_platform {
        platforms.add(p.clone());
        announce.push(("slack", !slack.incidents_channel.is_empty()));
        if !slack.incidents_channel.is_empty() {
            incidents_channels.push(("slack", slack.incidents_channel.clone()));
        }
    }
    let matrix_platform = matrix_on.then(|| {
        Arc::new(MatrixPlatform::new(
            MatrixApi::new(
                &matrix.homeserver_url,
                &matrix.user_id,
                &matrix.access_token,
                &matrix.password,
            ),
            matrix.encryption,
        ))
    });
    if let Some(p) = &matrix_platform {
        platforms.add(p.clone());
        announce.push(("matrix", !matrix.incidents_room.is_empty()));
        if !matrix.incidents_room.is_empty() {
            incidents_channels.push(("matrix", matrix.incidents_room.clone()));
        }
    }
    let mut all: Vec<Arc<dyn Effects>> = Vec::new();
    if !announce.is_empty() {
        // Platforms left out of [incidents] chat_platforms open rooms on request only.
        let chosen = &config.incidents.chat_platforms;
        let on_request = announce
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !chosen.is_empty() && !chosen.iter().any(|c| c == p))
            .collect();
        all.push(Arc::new(ChatEffects {
            platforms: announce,
            on_request,
        }));
    }
    all.push(playbooks.clone());
    all.push(integrations.clone());
    let effects: Arc<dyn Effects> = Arc::new(AllEffects(all));
    let commands = |role: &str| {
        Arc::new(Commands {
            store: store.clone(),
            catalog: catalog.clone(),
            effects: effects.clone(),
            public_url: public_url.to_string(),
            default_access: Access::parse(role).unwrap_or_default(),
            custom: Arc::new(config.commands.clone()),
            actions: Some(integrations.clone()),
            on_call: (!config.pagerduty.api_token.is_empty()).then(|| {
                Arc::new(crate::integrations::PagerDutyOnCall(
                    config.pagerduty.clone(),
                )) as Arc<dyn klaxon_chat::commands::OnCall>
            }),
        })
    };
    if !platforms.is_empty() {
        Arc::new(ChatJobs {
            store: store.clone(),
            catalog: catalog.clone(),
            platforms: platforms.clone(),
            settings: ChatSettings {
                public_url: public_url.to_string(),
            },
            announce_in: incidents_channels.clone(),
            updating: Default::default(),
        })
        .register(runner);
    }
    let mut routes = Router::new();
    let mut socket = None;
    if let Some(platform) = slack_platform {
        let mut slack_jobs = SlackJobs::new(
            platform,
            commands(&slack.default_role),
            &slack.timeline_reaction,
        );
        slack_jobs.listener = Some(playbooks.clone());
        Arc::new(slack_jobs).register(runner);
        let inbound = SlackInbound {
            store: store.clone(),
            catalog: catalog.clone(),
            signing_secret: slack.signing_secret.clone(),
            wake: Some(runner.waker()),
        };
        // Without a signing secret nothing could be verified: no HTTP endpoints then.
        if !slack.signing_secret.is_empty() {
            routes = inbound::router(inbound.clone());
        }
        socket = (slack.mode == "socket").then(|| SocketMode {
            api: SlackApi::new(&slack.api_url, &slack.app_token),
            inbound,
        });
        tracing::info!(mode = %slack.mode, "Slack is on");
    }
    let mut sync = None;
    if let Some(platform) = matrix_platform {
        Arc::new(MatrixJobs {
            platform: platform.clone(),
            commands: commands(&matrix.default_role),
            timeline_reaction: matrix.timeline_reaction.clone(),
            listener: Some(playbooks),
        })
        .register(runner);
        sync = Some(MatrixSync {
            platform,
            store: store.clone(),
            wake: Some(runner.waker()),
            poll: std::time::Duration::from_secs(30),
        });
        tracing::info!(homeserver = %matrix.homeserver_url, "Matrix is on");
    }
    Chat {
        effects,
        routes,
        socket,
        sync,
        platforms,
        incidents_channels,
    }
}
