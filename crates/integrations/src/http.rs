//! One way to call a vendor's HTTP API and judge its answer, so every integration retries
//! and gives up for the same reasons: a network failure, a timeout, 408, 429 and 5xx are worth
//! another attempt (after the vendor's `Retry-After` when it sends one); 401 and 403 mean the
//! credential is wrong and say which setting holds it; any other 4xx means the request itself
//! is refused, and asking again would not change that.

use std::time::Duration;

use klaxon_jobs::JobError;
use reqwest::{Client, RequestBuilder};

/// How long a vendor has to answer one request.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// A client for one vendor: a timeout, and who is calling.
pub fn client() -> Client {
    Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("Klaxon/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The body as JSON (`null` when it was empty or not JSON).
    pub json: serde_json::Value,
}

/// Who is called and which setting holds the credential, for the messages.
#[derive(Debug, Clone, Copy)]
pub struct Vendor {
    pub name: &'static str,
    pub credential: &'static str,
}

impl Vendor {
    /// Sends the request and judges the answer.
    pub async fn send(&self, req: RequestBuilder) -> Result<Answer, JobError> {
        send(self.name, self.credential, req).await
    }
}

/// Sends the request to `name` and judges the answer; `credential` says where the
/// credential is set, for a 401 or 403.
pub async fn send(name: &str, credential: &str, req: RequestBuilder) -> Result<Answer, JobError> {
    let res = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Err(JobError::retry(format!(
                "{} did not answer within {}s",
                name,
                TIMEOUT.as_secs()
            )))
        }
        Err(e) => {
            return Err(JobError::retry(format!(
                "could not reach {}: {}",
                name,
                error_chain(&e)
            )))
        }
    };
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = res.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        return Ok(Answer { status, json });
    }
    let said = vendor_message(&text);
    let message = format!("{name} answered HTTP {status}: {said}");
    Err(match status {
        408 | 429 | 500..=599 => JobError::Retryable {
            message,
            retry_after,
        },
        401 | 403 => JobError::permanent(format!(
            "{message} (the credential was refused: check {credential})"
        )),
        _ => JobError::permanent(format!(
            "{message} (the request was refused; Klaxon does not retry it)"
        )),
    })
}

/// What the vendor said went wrong, short: its `message`/`error`/`errorMessages` when the
/// body is JSON, else the start of the body.
pub fn vendor_message(text: &str) -> String {
    let short = |s: &str| s.chars().take(300).collect::<String>();
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return if text.trim().is_empty() {
            "(no body)".into()
        } else {
            short(text.trim())
        };
    };
    let mut parts = Vec::new();
    for key in ["message", "error", "status"] {
        if let Some(s) = json.get(key).and_then(|v| v.as_str()) {
            parts.push(s.to_string());
        }
    }
    if let Some(list) = json.get("errorMessages").and_then(|v| v.as_array()) {
        parts.extend(list.iter().filter_map(|m| m.as_str()).map(String::from));
    }
    for key in ["errors"] {
        match json.get(key) {
            Some(serde_json::Value::Object(m)) if !m.is_empty() => {
                parts.push(serde_json::Value::Object(m.clone()).to_string())
            }
            Some(serde_json::Value::Array(a)) if !a.is_empty() => {
                parts.push(serde_json::Value::Array(a.clone()).to_string())
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        short(text.trim())
    } else {
        short(&parts.join("; "))
    }
}

/// An error with its causes, which is where reqwest keeps the interesting part
/// ("connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_messages_are_found_in_each_shape() {
        assert_eq!(
            vendor_message(
                r#"{"status":"invalid event","message":"Event object is invalid","errors":["'routing_key' is missing"]}"#
            ),
            "Event object is invalid; invalid event; [\"'routing_key' is missing\"]"
        );
        assert_eq!(
            vendor_message(r#"{"errorMessages":["Issue does not exist"],"errors":{}}"#),
            "Issue does not exist"
        );
        assert_eq!(vendor_message(""), "(no body)");
        assert_eq!(vendor_message("<html>bad gateway"), "<html>bad gateway");
    }
}
