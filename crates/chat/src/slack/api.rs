//! The Slack Web API client: form-encoded POSTs to `{api_url}/{method}` with the bot token.
//! Slack reports logical errors as HTTP 200 with `ok: false` and an error code; those become
//! [`ApiError`]s that say whether another try can help. A 429 carries `Retry-After`, which is
//! honoured; each method is also held to its rate-limit tier here, so a burst of incidents
//! does not run into Slack's limits in the first place.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ChatError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub method: String,
    /// Slack's error code (`name_taken`, `channel_not_found`), or `http_503` and the like.
    pub code: String,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl From<ApiError> for ChatError {
    fn from(e: ApiError) -> Self {
        let message = format!("Slack {} failed: {}{}", e.method, e.code, hint(&e.code));
        if e.code == PACED {
            return ChatError::Deferred {
                message: format!("waiting for Slack's rate limit on {}", e.method),
                wait: e.retry_after.unwrap_or(MAX_PACE),
            };
        }
        if e.retryable {
            ChatError::Retryable {
                message,
                retry_after: e.retry_after,
            }
        } else {
            ChatError::Permanent(message)
        }
    }
}

fn hint(code: &str) -> &'static str {
    match code {
        "invalid_auth" | "not_authed" | "token_revoked" | "account_inactive" => " (check [slack] bot_token)",
        "missing_scope" => " (the app lacks a scope: reinstall it from the manifest `klaxon slack manifest` prints)",
        "not_in_channel" => " (invite the Klaxon app into that channel)",
        "channel_not_found" => " (check the channel id, and that the app can see it)",
        _ => "",
    }
}

/// Codes that say "try again later" rather than "this will never work".
fn retryable(code: &str) -> bool {
    matches!(
        code,
        "ratelimited"
            | "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
            | "team_added_to_org"
    )
}

/// Methods that only read, called with GET and query parameters as Slack's OpenAPI document
/// declares them; everything else is a form-encoded POST.
pub const READ_METHODS: &[&str] = &[
    "auth.test",
    "conversations.list",
    "conversations.history",
    "users.info",
    "users.lookupByEmail",
    "bookmarks.list",
];

/// Slack's published tiers: calls a minute per method (Tier 2: 20, Tier 3: 50, Tier 4: 100);
/// posting is limited per channel to about one message a second.
fn per_minute(method: &str) -> u32 {
    match method {
        "conversations.create" | "conversations.list" | "bookmarks.list" => 20,
        "conversations.setTopic"
        | "conversations.invite"
        | "conversations.archive"
        | "conversations.open"
        | "pins.add"
        | "bookmarks.add"
        | "conversations.history"
        | "chat.update"
        | "users.lookupByEmail"
        | "views.open" => 50,
        "users.info" | "auth.test" | "chat.getPermalink" => 100,
        _ => 60,
    }
}

/// A token bucket: `capacity` calls at once, refilled at `per_second`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct SlackApi {
    base: String,
    token: String,
    http: reqwest::Client,
    /// One bucket per method, and per channel for posting.
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Slots held by calls that were deferred (by method and parameters): when each may go.
    held: Mutex<HashMap<String, Instant>>,
}

/// The longest a call waits for its rate tier inside a job's attempt. Beyond it the call holds
/// its slot and the job is deferred until then (not a failed attempt), so that a burst of
/// incidents queues behind Slack's limits instead of timing out against them.
pub const MAX_PACE: Duration = Duration::from_secs(5);

/// The error code of a call deferred by Klaxon's own pacing.
pub const PACED: &str = "klaxon_paced";

impl SlackApi {
    pub fn new(base: &str, token: &str) -> SlackApi {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("klaxon/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        SlackApi {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
            buckets: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until the method's tier (and, for posts, the channel's one message a second)
    /// allows another call. A tier's calls a minute may come in a burst, as Slack allows.
    async fn pace(&self, method: &str, channel: Option<&str>, call: &str) -> Result<(), Duration> {
        // A deferred call comes back for the slot it holds.
        let held = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            match held.get(call) {
                Some(at) if at.saturating_duration_since(Instant::now()) > MAX_PACE => {
                    return Err(at.saturating_duration_since(Instant::now()));
                }
                // Its slot is (nearly) due: take it.
                Some(_) => held.remove(call),
                None => None,
            }
        };
        if let Some(at) = held {
            tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
            return Ok(());
        }
        let (key, capacity, per_second) = match (method, channel) {
            ("chat.postMessage", Some(c)) => (format!("{method}:{c}"), 3.0, 1.0),
            _ => {
                let n = f64::from(per_minute(method));
                (method.to_string(), n, n / 60.0)
            }
        };
        let wait = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let b = buckets.entry(key).or_insert(Bucket {
                tokens: capacity,
                at: now,
            });
            b.tokens =
                (b.tokens + now.duration_since(b.at).as_secs_f64() * per_second).min(capacity);
            b.at = now;
            b.tokens -= 1.0;
            if b.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-b.tokens / per_second)
            }
        };
        if wait > MAX_PACE {
            self.held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(call.to_string(), Instant::now() + wait);
            return Err(wait);
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Calls a method with form parameters; the JSON answer when `ok`.
    pub async fn call(&self, method: &str, params: &[(&str, String)]) -> Result<Value, ApiError> {
        let channel = params
            .iter()
            .find(|(k, _)| *k == "channel")
            .map(|(_, v)| v.as_str());
        let err = |code: String, retryable: bool, retry_after: Option<Duration>| ApiError {
            method: method.to_string(),
            code,
            retryable,
            retry_after,
        };
        let call = format!(
            "{method}?{}",
            serde_urlencoded::to_string(params).unwrap_or_default()
        );
        if let Err(wait) = self.pace(method, channel, &call).await {
            return Err(err(PACED.into(), true, Some(wait)));
        }
        let url = format!("{}/{method}", self.base);
        let req = if READ_METHODS.contains(&method) {
            self.http.get(url).query(params)
        } else {
            self.http.post(url).form(params)
        };
        let res = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| err(format!("no answer ({e})"), true, None))?;
        let status = res.status();
        if status.as_u16() == 429 {
            let after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            return Err(err(
                "ratelimited".into(),
                true,
                Some(Duration::from_secs(after.unwrap_or(30))),
            ));
        }
        if !status.is_success() {
            return Err(err(
                format!("http_{}", status.as_u16()),
                status.is_server_error(),
                None,
            ));
        }
        let body: Value = res
            .json()
            .await
            .map_err(|e| err(format!("an answer that is not JSON ({e})"), true, None))?;
        if body["ok"].as_bool() == Some(true) {
            Ok(body)
        } else {
            let code = body["error"]
                .as_str()
                .unwrap_or("unknown_error")
                .to_string();
            let r = retryable(&code);
            Err(err(code, r, None))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes() {
        assert!(super::retryable("ratelimited") && super::retryable("internal_error"));
        assert!(!super::retryable("channel_not_found") && !super::retryable("invalid_auth"));
        let e: crate::ChatError = super::ApiError {
            method: "chat.postMessage".into(),
            code: "invalid_auth".into(),
            retryable: false,
            retry_after: None,
        }
        .into();
        assert_eq!(
            e.to_string(),
            "Slack chat.postMessage failed: invalid_auth (check [slack] bot_token)"
        );
    }
}
