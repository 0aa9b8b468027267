//! Fake vendors for `mobilise`: PagerDuty's Events API, Jira, Statuspage (one HTTP server,
//! a path prefix each) and an SMTP server. Every call is answered after a fixed latency, and
//! the time of the last answer is kept, so the benchmark can tell when the last action of a
//! declaration was done.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use klaxon_chat::slack::fake::Timing;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Default)]
struct Seen {
    /// Calls by vendor and path pattern (`POST jira /rest/api/3/issue`).
    calls: BTreeMap<String, u64>,
    next: u64,
    /// Every answer, in the order they went out.
    timings: Vec<Timing>,
}

#[derive(Clone)]
pub struct Peers {
    /// Base URLs for the configuration.
    pub pagerduty: String,
    pub jira: String,
    pub statuspage: String,
    /// The SMTP server's port on 127.0.0.1.
    pub smtp_port: u16,
    latency: Duration,
    seen: Arc<Mutex<Seen>>,
}

impl Peers {
    pub async fn start(latency: Duration) -> anyhow::Result<Peers> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = http.local_addr()?;
        let smtp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let peers = Peers {
            pagerduty: format!("http://{addr}/pagerduty/v2"),
            jira: format!("http://{addr}/jira"),
            statuspage: format!("http://{addr}/statuspage/v1"),
            smtp_port: smtp.local_addr()?.port(),
            latency,
            seen,
        };
        let app = Router::new().fallback(http_call).with_state(peers.clone());
        tokio::spawn(async move { axum::serve(http, app).await });
        let p = peers.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = smtp.accept().await {
                let p = p.clone();
                tokio::spawn(async move {
                    let _ = p.smtp_session(conn).await;
                });
            }
        });
        Ok(peers)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        f(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits out the latency, then notes the answer's time.
    async fn answer(&self, what: String, arrived: Instant) {
        tokio::time::sleep(self.latency).await;
        let now = Instant::now();
        self.with(|s| {
            s.timings.push(Timing {
                what,
                arrived,
                answered: now,
            })
        });
    }

    /// Every answer's call and times, in the order they went out.
    pub fn timings(&self) -> Vec<Timing> {
        self.with(|s| s.timings.clone())
    }

    pub fn last_answered(&self) -> Option<Instant> {
        self.with(|s| s.timings.iter().map(|t| t.answered).max())
    }

    /// How many calls have been answered, latency waited.
    pub fn answers(&self) -> usize {
        self.with(|s| s.timings.len())
    }

    /// Calls so far, by vendor, method and path.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.with(|s| s.calls.clone())
    }

    async fn smtp_session(&self, conn: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = conn.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 bench ESMTP\r\n").await?;
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250-bench\r\n250 8BITMIME\r\n",
                "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
                "DATA" => {
                    write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await? == 0 {
                            return Ok(());
                        }
                        if line == ".\r\n" || line == ".\n" {
                            break;
                        }
                    }
                    // The message is the call: its acceptance takes the latency.
                    let arrived = Instant::now();
                    self.with(|s| *s.calls.entry("smtp message".into()).or_default() += 1);
                    self.answer("smtp message".into(), arrived).await;
                    b"250 queued\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await?;
                    return Ok(());
                }
                _ => b"502 not here\r\n",
            };
            write.write_all(reply).await?;
        }
    }
}

async fn http_call(State(p): State<Peers>, req: Request) -> Response {
    let arrived = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let body: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Ids in paths are folded, so the counts stay one line per kind of call.
    let pattern: Vec<&str> = path
        .split('/')
        .map(|seg| {
            if seg.chars().any(|c| c.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect();
    let what = format!("{method} {}", pattern.join("/"));
    let n = p.with(|s| {
        *s.calls.entry(what.clone()).or_default() += 1;
        s.next += 1;
        s.next
    });
    let (status, answer) = match (method.as_str(), path.as_str()) {
        ("POST", "/pagerduty/v2/enqueue") => (
            StatusCode::ACCEPTED,
            json!({ "status": "success", "message": "Event processed", "dedup_key": body["dedup_key"] }),
        ),
        ("POST", "/jira/rest/api/3/issue") => (
            StatusCode::CREATED,
            json!({ "id": format!("{}", 10_000 + n), "key": format!("OPS-{n}"), "self": format!("{}/rest/api/3/issue/{}", p.jira, 10_000 + n) }),
        ),
        ("POST", s) if s.starts_with("/statuspage/v1/pages/") && s.ends_with("/incidents") => (
            StatusCode::CREATED,
            json!({ "id": format!("sp{n}"), "name": body["incident"]["name"], "status": body["incident"]["status"], "shortlink": format!("https://stspg.io/{n}") }),
        ),
        ("POST", _) => (StatusCode::CREATED, json!({ "id": format!("{n}") })),
        _ => (StatusCode::OK, json!({})),
    };
    p.answer(what, arrived).await;
    (status, Json(answer)).into_response()
}
