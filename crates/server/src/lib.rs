//! Klaxon's HTTP front: the REST API under `/api/v1`, the web UI, sign-in, health and
//! metrics. Each resource has its own module with its own `router()`; [`router`] puts them
//! together over one shared [`AppState`].

pub mod api;
pub mod auth;
mod error;
mod health;
mod metrics;
mod views;
mod web;

use std::sync::Arc;

use axum::Router;
use klaxon_core::Catalog;
use klaxon_jobs::Runner;
use klaxon_store::{Effects, NoEffects, Store};

pub use error::{ApiError, ErrorBody};
pub use metrics::Metrics;

/// Settings the HTTP layer needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where people reach Klaxon, for links; no trailing slash.
    pub public_url: String,
    pub session_hours: u32,
    /// The effective configuration, secrets redacted, for the settings page.
    pub config_display: String,
    /// The playbooks in force, for the playbooks page.
    pub playbooks: Vec<klaxon_core::playbook::Playbook>,
    /// Open incidents of this severity or worse freeze deploys.
    pub freeze_severity: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            public_url: "http://127.0.0.1:8080".into(),
            session_hours: 12,
            config_display: String::new(),
            playbooks: Vec::new(),
            freeze_severity: "SEV2".into(),
        }
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    /// Which jobs incident changes cause (the playbooks); nothing by default.
    pub effects: Arc<dyn Effects>,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// This replica's job runner, for its statistics and to wake it when a change enqueues jobs.
    pub runner: Option<Arc<Runner>>,
    /// What people ask of the integrations by hand (a status page update); none by default.
    pub actions: Option<Arc<dyn klaxon_store::ManualActions>>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, catalog: Catalog, settings: Settings) -> AppState {
        AppState {
            store,
            catalog: Arc::new(catalog),
            effects: Arc::new(NoEffects),
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::default()),
            runner: None,
            actions: None,
        }
    }

    /// Wakes the runner after a change that enqueued jobs, so they start at once.
    pub(crate) fn jobs_enqueued(&self, n: usize) {
        if n > 0 {
            if let Some(r) = &self.runner {
                r.waker().notify_one();
            }
        }
    }

    /// A command's request, as the caller.
    pub(crate) fn request<C>(
        &self,
        caller: &auth::Caller,
        command: C,
    ) -> klaxon_store::Request<'_, C> {
        klaxon_store::Request {
            command,
            actor: caller.actor.clone(),
            at: klaxon_core::now(),
            catalog: &self.catalog,
            effects: self.effects.as_ref(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The router with more routes that bring their own state (a chat platform's endpoints),
/// under the same middleware.
pub fn router_with(state: AppState, extra: Router) -> Router {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(api::router())
        .merge(auth::router())
        .merge(web::router())
        .with_state(state.clone())
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(state, metrics::track))
}
