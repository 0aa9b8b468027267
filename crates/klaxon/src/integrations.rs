//! Wiring the integrations (PagerDuty, Opsgenie, Jira, GitHub, Statuspage, email, webhooks):
//! their handlers on the runner and their effects on incident changes; and
//! `klaxon integrations test`.

use std::sync::Arc;

use klaxon_core::Catalog;
use klaxon_integrations::{Context, IntegrationEffects};
use klaxon_jobs::Runner;
use klaxon_store::Store;

use crate::config::{Config, Loaded};

fn context(
    config: &Config,
    store: &Arc<dyn Store>,
    catalog: &Arc<Catalog>,
    public_url: &str,
) -> Context {
    Context {
        store: store.clone(),
        catalog: catalog.clone(),
        settings: Arc::new(config.integrations()),
        public_url: public_url.to_string(),
    }
}

/// Registers every integration's handlers (a job enqueued while an integration was on still
/// runs, and says so, after it is turned off) and returns their effects.
pub fn wire(
    config: &Config,
    store: &Arc<dyn Store>,
    catalog: &Arc<Catalog>,
    public_url: &str,
    runner: &mut Runner,
) -> Arc<IntegrationEffects> {
    let cx = context(config, store, catalog, public_url);
    for (kind, handler) in klaxon_integrations::handlers(&cx) {
        runner.register(kind, handler);
    }
    let on = cx.settings.enabled();
    if !on.is_empty() {
        tracing::info!(integrations = ?on, "integrations are on");
    }
    Arc::new(IntegrationEffects {
        settings: cx.settings.clone(),
        catalog: catalog.clone(),
    })
}

/// `klaxon integrations test`: each configured integration checked; false if any failed.
pub async fn test(loaded: &Loaded) -> anyhow::Result<bool> {
    let config = &loaded.config;
    let settings = config.integrations();
    if settings.enabled().is_empty() {
        println!("No integration is configured: set up [pagerduty], [opsgenie], [jira], [github], [statuspage], [smtp] or [[webhooks]] (see `klaxon config default`).");
        return Ok(true);
    }
    let checks = klaxon_integrations::test::run_all(&settings).await;
    let mut all = true;
    for c in &checks {
        all &= c.ok;
        println!(
            "{} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.message
        );
    }
    Ok(all)
}
