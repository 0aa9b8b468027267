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

/// `oncall <team>` in chat: PagerDuty's REST API, for the team's escalation policy.
pub struct PagerDutyOnCall(pub klaxon_integrations::config::PagerDutyConfig);

#[async_trait::async_trait]
impl klaxon_chat::commands::OnCall for PagerDutyOnCall {
    async fn on_call(&self, team: &str) -> Result<Vec<String>, String> {
        let pd = &self.0;
        let Some((name, t)) = pd
            .teams
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(team.trim_start_matches('@')))
        else {
            let names: Vec<&str> = pd.teams.keys().map(String::as_str).collect();
            return Err(if names.is_empty() {
                "No teams are listed in [pagerduty] teams.".into()
            } else {
                format!(
                    "`{team}` is not a team Klaxon knows: use one of {}.",
                    names.join(", ")
                )
            });
        };
        if t.escalation_policy.is_empty() {
            return Err(format!(
                "{name} has no escalation_policy in [pagerduty] teams, so Klaxon cannot ask who is on call."
            ));
        }
        let people = klaxon_integrations::pagerduty::on_call(pd, None, Some(&t.escalation_policy))
            .await
            .map_err(|e| format!("PagerDuty could not say who is on call for {name}: {e}"))?;
        Ok(people
            .into_iter()
            .map(|(n, email)| match email {
                Some(e) => format!("{n} ({e})"),
                None => n,
            })
            .collect())
    }
}
