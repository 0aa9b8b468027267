//! Klaxon's HTTP front. Each resource has its own module with its own `router()`; [`router`]
//! puts them together over one shared [`AppState`].

mod health;

use std::sync::Arc;

use axum::Router;
use klaxon_core::Catalog;
use klaxon_store::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
}

pub fn router(state: AppState) -> Router {
    Router::new().merge(health::router()).with_state(state)
}
