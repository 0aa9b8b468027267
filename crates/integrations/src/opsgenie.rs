//! Opsgenie's Alert API: one alert per incident whose alias is the reference (Opsgenie
//! deduplicates on it, so a retried create is one alert), a note per status change, and the
//! alert closed when the incident resolves. Requests are asynchronous on Opsgenie's side: a
//! 202 means accepted.

use async_trait::async_trait;
use klaxon_core::Incident;
use klaxon_jobs::{Done, Handler, JobContext, JobError};
use serde_json::json;

use crate::http::{client, Vendor};
use crate::{done, skipped, Context};

const OPSGENIE: Vendor = Vendor {
    name: "Opsgenie",
    credential: "[opsgenie] api_key (an API integration's key)",
};

/// P1 for the most severe level, P2 for the next, down to P5.
pub fn priority(rank: Option<usize>) -> String {
    format!("P{}", rank.map(|r| r.min(4) + 1).unwrap_or(3))
}

fn request(cx: &Context, path: &str) -> reqwest::RequestBuilder {
    let og = &cx.settings.opsgenie;
    client()
        .post(format!("{}{path}", og.api_url.trim_end_matches('/')))
        .header("authorization", format!("GenieKey {}", og.api_key))
}

pub fn create_body(cx: &Context, i: &Incident) -> serde_json::Value {
    let message: String = cx.headline(i).chars().take(130).collect();
    let mut tags: Vec<String> = vec!["klaxon".into()];
    tags.extend(i.severity.iter().cloned());
    json!({
        "message": message,
        "alias": i.reference.to_string(),
        "description": format!("{}\n\n{}", i.summary, cx.page(i.reference)).trim().to_string(),
        "priority": priority(cx.rank(i)),
        "tags": tags,
        "details": {
            "reference": i.reference.to_string(),
            "status": i.status,
            "services": i.services.join(", "),
            "url": cx.page(i.reference),
        },
        "source": "Klaxon",
        "entity": i.services.first().cloned().unwrap_or_default(),
    })
}

pub struct AlertHandler {
    pub cx: Context,
}

#[async_trait]
impl Handler for AlertHandler {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let cx = &self.cx;
        let i = cx.incident(ctx).await?;
        let action = ctx.payload()["action"].as_str().unwrap_or("create");
        if i.drill && !cx.settings.opsgenie.drills && !crate::in_drills(ctx) {
            return Ok(skipped(format!(
                "Opsgenie {action}: {} is a drill ([opsgenie] drills = false)",
                i.reference
            )));
        }
        if action != "create"
            && cx
                .result_of(&format!("{}:opsgenie:create", i.reference))
                .await?
                .is_none()
        {
            return Ok(crate::nothing("the incident has no Opsgenie alert"));
        }
        let alias = i.reference.to_string();
        let (req, detail) = match action {
            "create" => (
                request(cx, "/v2/alerts").json(&create_body(cx, &i)),
                format!("created an Opsgenie alert ({})", priority(cx.rank(&i))),
            ),
            "note" => (
                request(cx, &format!("/v2/alerts/{alias}/notes"))
                    .query(&[("identifierType", "alias")])
                    .json(&json!({
                        "note": format!("{} is now {}", i.reference, i.status),
                        "source": "Klaxon",
                    })),
                format!("noted the status ({}) on the Opsgenie alert", i.status),
            ),
            _ => (
                request(cx, &format!("/v2/alerts/{alias}/close"))
                    .query(&[("identifierType", "alias")])
                    .json(&json!({
                        "note": format!("{} was resolved in Klaxon", i.reference),
                        "source": "Klaxon",
                    })),
                "closed the Opsgenie alert".to_string(),
            ),
        };
        let answer = OPSGENIE.send(req).await?;
        Ok(done(
            json!({ "action": action, "request_id": answer.json["requestId"] }),
            detail,
            None,
        ))
    }
}

/// Checks the key, for `klaxon integrations test`.
pub async fn check(og: &crate::config::OpsgenieConfig) -> Result<String, JobError> {
    let req = client()
        .get(format!("{}/v2/alerts", og.api_url.trim_end_matches('/')))
        .query(&[("limit", "1")])
        .header("authorization", format!("GenieKey {}", og.api_key));
    OPSGENIE.send(req).await?;
    Ok("the API key works".into())
}
