//! `klaxon integrations test`: each configured integration's credential and reach, checked
//! with a request that changes nothing (except a webhook, which gets a `klaxon.test` message).

use klaxon_jobs::JobError;
use serde_json::json;

use crate::tracker::Tracker;
use crate::Settings;

/// One integration's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub message: String,
}

fn verdict(name: impl Into<String>, r: Result<String, JobError>) -> Check {
    match r {
        Ok(message) => Check {
            name: name.into(),
            ok: true,
            message,
        },
        Err(e) => Check {
            name: name.into(),
            ok: false,
            message: e.to_string(),
        },
    }
}

/// Every configured integration, checked one after another.
pub async fn run_all(s: &Settings) -> Vec<Check> {
    let mut out = Vec::new();
    if s.pagerduty.enabled() {
        out.push(Check {
            name: "pagerduty events".into(),
            ok: true,
            message: "a routing key is set; the Events API cannot check it without paging someone, so declare a drill with [pagerduty] drills = true to try it".into(),
        });
    }
    if !s.pagerduty.api_token.is_empty() {
        out.push(verdict(
            "pagerduty api",
            crate::pagerduty::check_token(&s.pagerduty).await,
        ));
    }
    if s.opsgenie.enabled() {
        out.push(verdict(
            "opsgenie",
            crate::opsgenie::check(&s.opsgenie).await,
        ));
    }
    if s.jira.enabled() {
        let jira = crate::tracker::Jira::new(&s.jira);
        out.push(verdict("jira", jira.check().await));
    }
    if s.github.enabled() {
        let github = crate::tracker::Github::new(&s.github);
        out.push(verdict("github", github.check().await));
    }
    if s.statuspage.enabled() {
        out.push(verdict(
            "statuspage",
            crate::statuspage::check(&s.statuspage).await,
        ));
    }
    if s.smtp.enabled() {
        out.push(verdict("smtp", crate::smtp::check_server(&s.smtp).await));
    }
    for (n, w) in s.webhooks.iter().enumerate() {
        out.push(verdict(format!("webhooks[{n}] {}", w.url), ping(w).await));
    }
    out
}

/// A signed `klaxon.test` message.
async fn ping(w: &crate::config::WebhookConfig) -> Result<String, JobError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| JobError::retry(e.to_string()))?;
    let id = format!(
        "test-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let now = chrono::Utc::now();
    let body = json!({
        "type": "klaxon.test",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": { "message": "a test from `klaxon integrations test`" },
    })
    .to_string();
    let answer = crate::webhooks::deliver(&w.url, &w.secret, &id, now, body).await?;
    Ok(format!(
        "answered HTTP {} to a signed test message",
        answer.status
    ))
}
