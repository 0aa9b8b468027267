//! The CLI's client side: `declare`, `list`, `show`, `resolve` against a running Klaxon
//! (`KLAXON_URL`, `KLAXON_TOKEN`), through the same REST API as everyone else.

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(url: &str, token: Option<&str>) -> anyhow::Result<Client> {
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
            anyhow!("no API token: set KLAXON_TOKEN (create one with `klaxon token create --name me --role responder`)")
        })?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("klaxon-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.map_err(|e| {
            anyhow!(
                "cannot reach Klaxon at {}: {e}. Is `klaxon serve` running there? (set KLAXON_URL)",
                self.base
            )
        })?;
        let status = res.status();
        let text = res.text().await.context("reading the answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let message = value["error"]["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| value.to_string());
        match status {
            StatusCode::UNAUTHORIZED => bail!("{message} (check KLAXON_TOKEN)"),
            _ => bail!("{message}"),
        }
    }

    pub async fn declare(&self, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, "/incidents", Some(body)).await
    }

    pub async fn list(&self, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let qs = serde_urlencoded::to_string(query)?;
        self.call(Method::GET, &format!("/incidents?{qs}"), None)
            .await
    }

    pub async fn show(&self, reference: &str) -> anyhow::Result<(Value, Value)> {
        let incident = self
            .call(Method::GET, &format!("/incidents/{reference}"), None)
            .await?;
        let timeline = self
            .call(
                Method::GET,
                &format!("/incidents/{reference}/timeline"),
                None,
            )
            .await?;
        Ok((incident, timeline))
    }

    /// Moves the incident to the configured status that resolves (the first in the `resolved`
    /// phase), so the CLI works whatever the operator calls it.
    pub async fn resolve(&self, reference: &str) -> anyhow::Result<Value> {
        let catalog = self.call(Method::GET, "/catalog", None).await?;
        let status = catalog["statuses"]["list"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["phase"] == "resolved"))
            .and_then(|s| s["key"].as_str())
            .ok_or_else(|| {
                anyhow!("the server's configuration has no status that resolves an incident")
            })?
            .to_string();
        self.call(
            Method::POST,
            &format!("/incidents/{reference}/status"),
            Some(json!({ "status": status })),
        )
        .await
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("—")
}

pub fn line(i: &Value) -> String {
    format!(
        "{:<9} {:<5} {:<14} {}{}",
        s(i, "reference"),
        i["severity"].as_str().unwrap_or("-"),
        s(i, "status"),
        s(i, "title"),
        if i["private"] == true {
            " [private]"
        } else {
            ""
        }
    )
}

pub fn details(i: &Value, timeline: &Value) -> String {
    let mut out = format!(
        "{} {}\n  severity: {}\n  status:   {}\n  lead:     {}\n  declared: {}\n  url:      {}\n",
        s(i, "reference"),
        s(i, "title"),
        i["severity"].as_str().unwrap_or("none"),
        s(i, "status"),
        i["lead"]["name"].as_str().unwrap_or("nobody"),
        s(i, "declared_at"),
        s(i, "url"),
    );
    if let Some(summary) = i["summary"].as_str().filter(|x| !x.is_empty()) {
        out.push_str(&format!("  summary:  {summary}\n"));
    }
    out.push_str("\nTimeline:\n");
    for e in timeline["events"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}  {}: {}\n",
            s(e, "at"),
            e["actor"]["name"].as_str().unwrap_or("?"),
            s(e, "text")
        ));
    }
    out
}
