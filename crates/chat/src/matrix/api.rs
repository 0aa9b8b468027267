//! The Matrix client-server API, as a bot account: JSON over HTTPS with a bearer token (or a
//! password, exchanged once for a token with `POST /login`), errors as `{errcode, error}`,
//! rate limits as 429 `M_LIMIT_EXCEEDED` with `retry_after_ms`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::ChatError;

pub struct MatrixApi {
    base: String,
    user_id: String,
    access_token: String,
    password: String,
    token: OnceCell<String>,
    http: reqwest::Client,
    txn: AtomicU64,
    /// What makes this process's transaction ids its own (with the counter).
    txn_prefix: String,
}

/// Path segments are percent-encoded: room ids (`!a:b`) and aliases (`#a:b`) carry `!#:`.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl MatrixApi {
    pub fn new(base: &str, user_id: &str, access_token: &str, password: &str) -> MatrixApi {
        let mut seed = [0u8; 6];
        let _ = getrandom::fill(&mut seed);
        MatrixApi {
            base: base.trim_end_matches('/').to_string(),
            user_id: user_id.to_string(),
            access_token: access_token.to_string(),
            password: password.to_string(),
            token: OnceCell::new(),
            http: reqwest::Client::builder()
                // Long enough for a long-poll `/sync` (30 s) and then some.
                .timeout(Duration::from_secs(60))
                .build()
                .expect("the HTTP client builds"),
            txn: AtomicU64::new(0),
            txn_prefix: seed.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The server name of the bot's user id (`localhost` in `@klaxon:localhost`).
    pub fn server_name(&self) -> &str {
        self.user_id.split_once(':').map(|(_, s)| s).unwrap_or("")
    }

    /// A transaction id unique to this process.
    pub fn next_txn(&self) -> String {
        format!(
            "klaxon-{}-{}",
            self.txn_prefix,
            self.txn.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn token(&self) -> Result<String, ChatError> {
        if !self.access_token.is_empty() {
            return Ok(self.access_token.clone());
        }
        self.token
            .get_or_try_init(|| async {
                let body = json!({
                    "type": "m.login.password",
                    "identifier": { "type": "m.id.user", "user": self.user_id },
                    "password": self.password,
                    "initial_device_display_name": "Klaxon",
                });
                let v = self
                    .send(Method::POST, "/login", Some(body), &[], None)
                    .await?;
                v["access_token"].as_str().map(String::from).ok_or_else(|| {
                    ChatError::Permanent("the Matrix login returned no access token".into())
                })
            })
            .await
            .cloned()
    }

    /// Calls `/_matrix/client/v3{path}` as the bot.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        query: &[(&str, String)],
    ) -> Result<Value, ChatError> {
        let token = self.token().await?;
        self.send(method, path, body, query, Some(&token)).await
    }

    /// Like `call`, but an error with one of these codes is `Ok(None)`.
    pub async fn call_unless(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        query: &[(&str, String)],
        fine: &[&str],
    ) -> Result<Option<Value>, ChatError> {
        let token = self.token().await?;
        match self
            .send_raw(method, path, body, query, Some(&token))
            .await?
        {
            Ok(v) => Ok(Some(v)),
            Err((code, _)) if fine.contains(&code.as_str()) => Ok(None),
            Err((_, e)) => Err(e),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        query: &[(&str, String)],
        token: Option<&str>,
    ) -> Result<Value, ChatError> {
        self.send_raw(method, path, body, query, token)
            .await?
            .map_err(|(_, e)| e)
    }

    /// The answer, or the Matrix error code with the error it means.
    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        query: &[(&str, String)],
        token: Option<&str>,
    ) -> Result<Result<Value, (String, ChatError)>, ChatError> {
        let url = format!("{}/_matrix/client/v3{path}", self.base);
        let mut req = self.http.request(method, &url).query(query);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.map_err(|e| ChatError::Retryable {
            message: format!("could not reach the Matrix homeserver: {e}"),
            retry_after: None,
        })?;
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(Ok(v));
        }
        let code = v["errcode"].as_str().unwrap_or("").to_string();
        let said = v["error"].as_str().unwrap_or("");
        let message = format!("Matrix {path} failed: HTTP {status} {code} {said}");
        let err = match status {
            429 => ChatError::Retryable {
                message,
                retry_after: v["retry_after_ms"].as_u64().map(Duration::from_millis),
            },
            500..=599 => ChatError::Retryable {
                message,
                retry_after: None,
            },
            401 => ChatError::Permanent(format!(
                "{message} (check [matrix] access_token, or user_id and password)"
            )),
            _ => ChatError::Permanent(message),
        };
        Ok(Err((code, err)))
    }
}
