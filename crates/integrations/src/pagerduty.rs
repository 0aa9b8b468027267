//! PagerDuty: the Events API v2 (`POST {events_url}/enqueue`) pages on-call with the
//! incident's reference as `dedup_key`, so that a repeated trigger — a retry after a crash, an
//! incident escalating twice — is one alert, and acknowledge and resolve reach that alert. The
//! REST API answers who is on call.

use async_trait::async_trait;
use klaxon_core::Incident;
use klaxon_jobs::{Done, Handler, JobContext, JobError};
use serde_json::json;

use crate::config::PagerDutyConfig;
use crate::http::{client, Vendor};
use crate::{done, in_drills, skipped, Context};

const EVENTS: Vendor = Vendor {
    name: "PagerDuty's Events API",
    credential: "[pagerduty] routing_key (the integration key of an Events API v2 integration)",
};
const REST: Vendor = Vendor {
    name: "PagerDuty's REST API",
    credential: "[pagerduty] api_token",
};

/// PagerDuty's severity for the incident's: the most severe level is critical, the next
/// error, the next warning, the rest (and unset) info.
pub fn severity(rank: Option<usize>) -> &'static str {
    match rank {
        Some(0) => "critical",
        Some(1) => "error",
        Some(2) => "warning",
        _ => "info",
    }
}

/// The Events API v2 body for `action` (trigger, acknowledge or resolve).
pub fn event_body(cx: &Context, i: &Incident, action: &str) -> serde_json::Value {
    let page = cx.page(i.reference);
    let mut body = json!({
        "routing_key": cx.settings.pagerduty.routing_key,
        "event_action": action,
        "dedup_key": i.reference.to_string(),
    });
    if action == "trigger" {
        let summary: String = cx.headline(i).chars().take(1024).collect();
        let mut payload = json!({
            "summary": summary,
            "source": "klaxon",
            "severity": severity(cx.rank(i)),
            "timestamp": i.declared_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "class": i.incident_type.clone().unwrap_or_else(|| "incident".into()),
            "custom_details": {
                "reference": i.reference,
                "status": i.status,
                "summary": i.summary,
                "impact": i.impact,
                "services": i.services,
                "url": page,
            },
        });
        if let Some(first) = i.services.first() {
            payload["component"] = json!(first);
        }
        body["payload"] = payload;
        body["client"] = json!("Klaxon");
        body["client_url"] = json!(page);
        body["links"] = json!([{ "href": page, "text": format!("{} in Klaxon", i.reference) }]);
    }
    body
}

/// Sends one event; PagerDuty's answer (`dedup_key`, `message`).
pub async fn send_event(
    cx: &Context,
    body: &serde_json::Value,
) -> Result<serde_json::Value, JobError> {
    let url = format!(
        "{}/enqueue",
        cx.settings.pagerduty.events_url.trim_end_matches('/')
    );
    let answer = EVENTS.send(client().post(url).json(body)).await?;
    Ok(answer.json)
}

pub struct EventHandler {
    pub cx: Context,
}

#[async_trait]
impl Handler for EventHandler {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let cx = &self.cx;
        let i = cx.incident(ctx).await?;
        let action = ctx.payload()["action"].as_str().unwrap_or("trigger");
        if i.drill && !cx.settings.pagerduty.drills && !in_drills(ctx) {
            return Ok(skipped(format!(
                "PagerDuty {action}: {} is a drill ([pagerduty] drills = false)",
                i.reference
            )));
        }
        if action != "trigger"
            && cx
                .result_of(&format!("{}:pagerduty:trigger", i.reference))
                .await?
                .is_none()
        {
            return Ok(crate::nothing("the incident never paged"));
        }
        let answer = send_event(cx, &event_body(cx, &i, action)).await?;
        let detail = match action {
            "trigger" => format!(
                "paged on-call through PagerDuty ({})",
                severity(cx.rank(&i))
            ),
            "acknowledge" => "acknowledged the page in PagerDuty".into(),
            _ => "resolved the page in PagerDuty".into(),
        };
        Ok(done(
            json!({ "action": action, "answer": answer }),
            detail,
            None,
        ))
    }
}

/// Who is on call now for a schedule or an escalation policy (REST API `GET /oncalls`):
/// names and emails.
pub async fn on_call(
    pd: &PagerDutyConfig,
    schedule: Option<&str>,
    escalation_policy: Option<&str>,
) -> Result<Vec<(String, Option<String>)>, JobError> {
    let mut query: Vec<(&str, &str)> = vec![("include[]", "users")];
    if let Some(s) = schedule {
        query.push(("schedule_ids[]", s));
    }
    if let Some(p) = escalation_policy {
        query.push(("escalation_policy_ids[]", p));
    }
    let req = rest(
        pd,
        client().get(format!("{}/oncalls", pd.api_url.trim_end_matches('/'))),
    )
    .query(&query);
    let answer = REST.send(req).await?;
    let mut people = Vec::new();
    for oncall in answer.json["oncalls"].as_array().into_iter().flatten() {
        let user = &oncall["user"];
        let name = user["name"]
            .as_str()
            .or(user["summary"].as_str())
            .unwrap_or("someone")
            .to_string();
        let email = user["email"].as_str().map(String::from);
        if !people.iter().any(|(n, _)| n == &name) {
            people.push((name, email));
        }
    }
    Ok(people)
}

/// The headers PagerDuty's REST API wants: the token, its media type, and `From` on writes.
pub fn rest(pd: &PagerDutyConfig, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let mut req = req
        .header("authorization", format!("Token token={}", pd.api_token))
        .header(
            "accept",
            "application/vnd.pagerduty+json;version=2, application/json;q=0.9",
        )
        .header("content-type", "application/json");
    if !pd.from_email.is_empty() {
        req = req.header("from", &pd.from_email);
    }
    req
}

/// Checks the REST token, for `klaxon integrations test`.
pub async fn check_token(pd: &PagerDutyConfig) -> Result<String, JobError> {
    let req = rest(
        pd,
        client().get(format!("{}/abilities", pd.api_url.trim_end_matches('/'))),
    );
    let answer = REST.send(req).await?;
    let n = answer.json["abilities"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    Ok(format!("the API token works ({n} abilities)"))
}

/// `/incident page TEAM`: the team's escalation policy added as responders to the incident's
/// PagerDuty incident (REST API), or, when the incident has none or the team has no policy,
/// the team's own service paged through the Events API.
pub struct TeamHandler {
    pub cx: Context,
}

#[async_trait]
impl Handler for TeamHandler {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let cx = &self.cx;
        let pd = &cx.settings.pagerduty;
        let i = cx.incident(ctx).await?;
        let r = i.reference;
        let name = ctx.payload()["team"].as_str().unwrap_or_default();
        let by = ctx.payload()["by"].as_str().unwrap_or("someone");
        let Some(team) = pd.teams.get(name) else {
            return Ok(skipped(format!(
                "the team {name} is no longer in [pagerduty] teams"
            )));
        };
        let page = cx.page(r);
        if !team.escalation_policy.is_empty() && !pd.api_token.is_empty() {
            if let Some(id) = incident_id(pd, &r.to_string()).await? {
                let requester = user_id(pd).await?;
                let body = json!({
                    "requester_id": requester,
                    "message": format!("{}: {by} asks {name} to join. {page}", cx.headline(&i)),
                    "responder_request_targets": [{
                        "responder_request_target": {
                            "id": team.escalation_policy,
                            "type": "escalation_policy_reference",
                        }
                    }],
                });
                let url = format!(
                    "{}/incidents/{id}/responder_requests",
                    pd.api_url.trim_end_matches('/')
                );
                REST.send(rest(pd, client().post(url)).json(&body)).await?;
                return Ok(done(
                    json!({ "team": name, "pagerduty_incident": id }),
                    format!("asked {name} to join through PagerDuty (for {by})"),
                    None,
                ));
            }
        }
        if team.routing_key.is_empty() {
            return Err(JobError::permanent(format!(
                "{r} has no PagerDuty incident to add {name} to (it did not page through [pagerduty]), and {name} has no routing_key of its own: add one to [pagerduty] teams.{name}"
            )));
        }
        let mut body = event_body(cx, &i, "trigger");
        body["routing_key"] = json!(team.routing_key);
        body["dedup_key"] = json!(format!("{r}:{name}"));
        send_event(cx, &body).await?;
        Ok(done(
            json!({ "team": name, "dedup_key": format!("{r}:{name}") }),
            format!("paged {name} through PagerDuty (for {by})"),
            None,
        ))
    }
}

/// The PagerDuty incident our alert for `key` opened, if any.
async fn incident_id(pd: &PagerDutyConfig, key: &str) -> Result<Option<String>, JobError> {
    let url = format!("{}/incidents", pd.api_url.trim_end_matches('/'));
    let answer = REST
        .send(rest(pd, client().get(url)).query(&[("incident_key", key)]))
        .await?;
    Ok(answer.json["incidents"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|i| i["id"].as_str())
        .map(String::from))
}

/// The PagerDuty user whose email is `from_email`: the requester of responder requests.
async fn user_id(pd: &PagerDutyConfig) -> Result<String, JobError> {
    let url = format!("{}/users", pd.api_url.trim_end_matches('/'));
    let answer = REST
        .send(rest(pd, client().get(url)).query(&[("query", pd.from_email.as_str())]))
        .await?;
    answer.json["users"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|u| u["id"].as_str())
        .map(String::from)
        .ok_or_else(|| {
            JobError::permanent(format!(
                "PagerDuty has no user with the email {} ([pagerduty] from_email): use the email of a PagerDuty user",
                pd.from_email
            ))
        })
}
