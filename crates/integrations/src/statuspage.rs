//! Atlassian Statuspage: a public incident for a customer-facing incident (labelled with
//! `[statuspage] label`, never private, never a drill), its impact from the severity, its
//! components from the services, updated as the status changes, resolved on resolve.
//!
//! Statuspage has no idempotency key, so the incident carries `metadata.klaxon.incident`; an
//! attempt after an interrupted one looks for it before creating another.

use async_trait::async_trait;
use klaxon_core::{Incident, Link, Phase};
use klaxon_jobs::{Done, Handler, JobContext, JobError};
use serde_json::json;

use crate::http::{client, Vendor};
use crate::{done, incident_of, nothing, Context};

const STATUSPAGE: Vendor = Vendor {
    name: "Statuspage",
    credential: "[statuspage] api_key",
};

/// Statuspage's status for a phase.
pub fn status(phase: Phase) -> &'static str {
    match phase {
        Phase::Triage => "investigating",
        Phase::Active => "identified",
        Phase::Mitigated => "monitoring",
        Phase::Resolved | Phase::Closed => "resolved",
    }
}

/// What customers read for each status unless someone wrote an update.
fn default_text(status: &str) -> &'static str {
    match status {
        "investigating" => "We are investigating this issue.",
        "identified" => "The issue has been identified and a fix is being worked on.",
        "monitoring" => "A fix has been implemented and we are monitoring the results.",
        _ => "This incident has been resolved.",
    }
}

/// The impact: configured per severity, else critical for the most severe level, major for
/// the next, minor for the rest, none when unset.
pub fn impact(cx: &Context, i: &Incident) -> String {
    if let Some(s) = &i.severity {
        if let Some((_, v)) = cx
            .settings
            .statuspage
            .impact
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(s))
        {
            return v.clone();
        }
    }
    match cx.rank(i) {
        Some(0) => "critical",
        Some(1) => "major",
        Some(_) => "minor",
        None => "none",
    }
    .into()
}

/// The affected components (those of the incident's services) and their status.
pub fn components(cx: &Context, i: &Incident) -> serde_json::Map<String, serde_json::Value> {
    let state = if !i.is_open() || i.phase >= Phase::Resolved {
        "operational"
    } else {
        match cx.rank(i) {
            Some(0) => "major_outage",
            Some(1) => "partial_outage",
            _ => "degraded_performance",
        }
    };
    i.services
        .iter()
        .filter_map(|s| cx.settings.statuspage.components.get(s))
        .map(|id| (id.clone(), json!(state)))
        .collect()
}

fn url(cx: &Context, path: &str) -> String {
    let sp = &cx.settings.statuspage;
    format!(
        "{}/pages/{}/incidents{path}",
        sp.api_url.trim_end_matches('/'),
        sp.page_id
    )
}

fn authed(cx: &Context, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    with_key(&cx.settings.statuspage, req)
}

/// Statuspage's API key header.
fn with_key(
    sp: &crate::config::StatuspageConfig,
    req: reqwest::RequestBuilder,
) -> reqwest::RequestBuilder {
    req.header("authorization", format!("OAuth {}", sp.api_key))
}

/// The body that creates the public incident.
pub fn create_body(cx: &Context, i: &Incident) -> serde_json::Value {
    let st = status(i.phase);
    let text = if !i.impact.is_empty() {
        i.impact.clone()
    } else {
        default_text(st).to_string()
    };
    let comps = components(cx, i);
    json!({
        "incident": {
            "name": i.title.chars().take(255).collect::<String>(),
            "status": st,
            "impact_override": impact(cx, i),
            "body": text,
            "component_ids": comps.keys().collect::<Vec<_>>(),
            "components": comps,
            "metadata": { "klaxon": { "incident": i.reference.to_string() } },
            "deliver_notifications": true,
        }
    })
}

/// The public incident an interrupted attempt made, by its metadata.
async fn find(cx: &Context, i: &Incident) -> Result<Option<(String, Option<String>)>, JobError> {
    let req =
        authed(cx, client().get(url(cx, ""))).query(&[("q", i.title.as_str()), ("limit", "100")]);
    let answer = STATUSPAGE.send(req).await?;
    let r = i.reference.to_string();
    Ok(answer
        .json
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["metadata"]["klaxon"]["incident"].as_str() == Some(r.as_str()))
        .and_then(|x| {
            let id = x["id"].as_str()?.to_string();
            Some((id, x["shortlink"].as_str().map(String::from)))
        }))
}

pub struct StatuspageHandler {
    pub cx: Context,
}

#[async_trait]
impl Handler for StatuspageHandler {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let cx = &self.cx;
        let r = incident_of(ctx)?;
        let i = cx.incident(ctx).await?;
        if ctx.job.kind == crate::effects::STATUSPAGE_CREATE {
            let asked = crate::in_drills(ctx) || ctx.payload().get("in_drills").is_some();
            let allowed = if asked {
                !i.private && (!i.drill || crate::in_drills(ctx))
            } else {
                crate::effects::public(&cx.settings, &i)
            };
            if !allowed {
                return Ok(nothing("the incident is no longer customer-facing"));
            }
            let mut found = None;
            if ctx.checkpoint().is_some() {
                found = find(cx, &i).await?;
            }
            let (id, shortlink) = match found {
                Some(found) => found,
                None => {
                    ctx.save_checkpoint(json!({ "creating": true })).await?;
                    let answer = STATUSPAGE
                        .send(authed(cx, client().post(url(cx, ""))).json(&create_body(cx, &i)))
                        .await?;
                    let id = answer.json["id"]
                        .as_str()
                        .map(String::from)
                        .ok_or_else(|| {
                            JobError::retry("Statuspage created an incident but did not say its id")
                        })?;
                    (id, answer.json["shortlink"].as_str().map(String::from))
                }
            };
            let link = shortlink.unwrap_or_else(|| {
                format!(
                    "https://manage.statuspage.io/pages/{}/incidents/{id}",
                    cx.settings.statuspage.page_id
                )
            });
            return Ok(done(
                json!({ "id": id }),
                format!("posted {} on the status page ({})", i.title, impact(cx, &i)),
                Some(Link {
                    label: "Status page".into(),
                    url: link,
                }),
            ));
        }
        // An update: a status change, a severity or services change, or words from a person.
        let create = format!("{r}:statuspage:incident");
        let Some(id) = cx
            .result_of(&create)
            .await?
            .and_then(|v| v["id"].as_str().map(String::from))
        else {
            return Ok(nothing("the incident is not on the status page"));
        };
        let st = status(i.phase);
        let text = ctx.payload()["text"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| default_text(st).to_string());
        let body = json!({
            "incident": {
                "status": st,
                "body": text,
                "impact_override": impact(cx, &i),
                "components": components(cx, &i),
            }
        });
        STATUSPAGE
            .send(authed(cx, client().patch(url(cx, &format!("/{id}")))).json(&body))
            .await?;
        Ok(done(
            json!({ "id": id, "status": st }),
            format!("updated the status page: {st}: {text}"),
            None,
        ))
    }
}

/// Checks the key and the page, for `klaxon integrations test`.
pub async fn check(sp: &crate::config::StatuspageConfig) -> Result<String, JobError> {
    let req = with_key(
        sp,
        client().get(format!(
            "{}/pages/{}",
            sp.api_url.trim_end_matches('/'),
            sp.page_id
        )),
    );
    let answer = STATUSPAGE.send(req).await?;
    Ok(format!(
        "the API key reaches the page {}",
        answer.json["name"].as_str().unwrap_or(&sp.page_id)
    ))
}
