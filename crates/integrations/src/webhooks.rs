//! Outgoing webhooks in the style of the Standard Webhooks specification: a JSON message
//! `{type, timestamp, data}` per incident event, with `webhook-id` (the job's key, the same on
//! every retry, so receivers deduplicate on it), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` (`v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed with the
//! secret; a `whsec_` secret is base64 after the prefix).

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use klaxon_core::{Event, Incident};
use klaxon_jobs::{Done, Handler, JobContext, JobError};
use serde_json::json;
use sha2::Sha256;

use crate::http::client;
use crate::{incident_of, nothing, Context};

/// The key bytes of a secret.
pub fn key_bytes(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .unwrap_or_else(|_| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    }
}

/// `v1,<base64 signature>` of one message.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key_bytes(secret)).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Sends one signed message to `url` and judges the answer (as every webhook is sent: a
/// delivery, or `klaxon integrations test`'s ping).
pub async fn deliver(
    url: &str,
    secret: &str,
    id: &str,
    at: chrono::DateTime<chrono::Utc>,
    body: String,
) -> Result<crate::http::Answer, JobError> {
    let ts = at.timestamp();
    let req = client()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature(secret, id, ts, &body))
        .body(body);
    let name = format!("the webhook {url}");
    crate::http::send(&name, "the endpoint's secret ([[webhooks]] secret)", req).await
}

/// Whether a `webhook-signature` header (space-separated `v1,…` entries) holds a valid
/// signature: what a receiver checks, here for tests and for operators' reference.
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &str, header: &str) -> bool {
    let expected = signature(secret, id, timestamp, body);
    header.split(' ').any(|s| {
        s.len() == expected.len()
            && s.bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// The message for one event.
pub fn message(cx: &Context, i: &Incident, e: &Event) -> serde_json::Value {
    json!({
        "type": format!("incident.{}", e.kind.name()),
        "timestamp": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "incident": {
                "reference": i.reference,
                "title": i.title,
                "summary": i.summary,
                "impact": i.impact,
                "severity": i.severity,
                "status": i.status,
                "phase": i.phase.as_str(),
                "type": i.incident_type,
                "services": i.services,
                "labels": i.labels,
                "private": i.private,
                "drill": i.drill,
                "declared_at": i.declared_at,
                "resolved_at": i.resolved_at,
                "url": cx.page(i.reference),
            },
            "event": e,
        },
    })
}

pub struct WebhookHandler {
    pub cx: Context,
}

#[async_trait]
impl Handler for WebhookHandler {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let cx = &self.cx;
        let r = incident_of(ctx)?;
        let url = ctx.payload()["url"].as_str().unwrap_or_default();
        // The endpoint as configured now, found by its URL (the list may have changed).
        let Some(endpoint) = cx.settings.webhooks.iter().find(|w| w.url == url) else {
            return Ok(nothing("the endpoint is no longer configured"));
        };
        let seq = ctx.payload()["seq"].as_u64().unwrap_or(0);
        let Some(e) = cx.event(r, seq).await? else {
            return Ok(nothing("the event is not on the timeline"));
        };
        let i = cx.incident(ctx).await?;
        let body = message(cx, &i, &e).to_string();
        let answer = deliver(url, &endpoint.secret, &ctx.job.key, ctx.now(), body).await?;
        Ok(Done {
            result: json!({ "url": url, "status": answer.status, "type": format!("incident.{}", e.kind.name()) }),
            timeline: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, id, ts, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(verify(
            secret,
            id,
            ts,
            body,
            "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        assert!(!verify(
            secret,
            id,
            ts + 1,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
    }
}
