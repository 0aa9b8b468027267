//! A stateful fake of the Slack Web API, for tests: it keeps channels, members, messages,
//! pins and bookmarks, records every call, and answers as Slack does — logical errors as HTTP
//! 200 with `ok: false` (`name_taken`, `already_in_channel`, `not_in_channel`,
//! `channel_not_found`), rate limits as 429 with `Retry-After`. It also takes the answers sent
//! to a command's `response_url`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub const BOT: &str = "UKLAXONBOT";

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub params: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct FakeMessage {
    pub ts: String,
    pub user: String,
    pub text: String,
    pub blocks: Option<Value>,
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct FakeChannel {
    pub id: String,
    pub name: String,
    pub private: bool,
    pub creator: String,
    pub archived: bool,
    pub topic: String,
    pub members: BTreeSet<String>,
    pub messages: Vec<FakeMessage>,
    pub pins: BTreeSet<String>,
    pub bookmarks: Vec<(String, String)>,
}

/// How a method should fail, the next `times` it is called.
#[derive(Debug, Clone)]
pub enum Fail {
    RateLimited { retry_after: u64 },
    Error(&'static str),
    Http(u16),
}

/// The Socket Mode side: WebSocket connections Klaxon opened, and what it acknowledged.
#[derive(Default)]
struct Sockets {
    url: String,
    opened: usize,
    /// Frames to send, one sender per connection, newest last.
    senders: Vec<tokio::sync::mpsc::UnboundedSender<String>>,
    acks: Vec<Value>,
}

#[derive(Default)]
struct FakeState {
    sockets: Sockets,
    /// Methods whose answers are withheld: the call is carried out, then the fake waits.
    holds: HashMap<String, Arc<tokio::sync::Notify>>,
    arrived: HashMap<String, Arc<tokio::sync::Notify>>,
    token: String,
    calls: Vec<Call>,
    channels: Vec<FakeChannel>,
    users: HashMap<String, (String, String)>,
    next: u64,
    failures: Vec<(String, u32, Fail)>,
    /// Where every call is also sent for validation against Slack's OpenAPI document (Prism).
    prism: Option<String>,
    violations: Vec<String>,
    validated: usize,
    responses: Vec<(String, Value)>,
    views: Vec<Value>,
    /// How long every answer waits (for benchmarks: a peer that takes its time).
    latency: std::time::Duration,
    /// When the last answer went out.
    answered: Option<std::time::Instant>,
    answers: usize,
    /// Every answer's call and times, once [`FakeSlack::record_timings`] asked for them.
    timings: Option<Vec<Timing>>,
}

/// When a call arrived and when its answer went out (for benchmarks that explain a slow run).
#[derive(Debug, Clone)]
pub struct Timing {
    /// The Web API method, or `response_url`.
    pub what: String,
    pub arrived: std::time::Instant,
    pub answered: std::time::Instant,
}

#[derive(Clone)]
pub struct FakeSlack {
    /// The Web API base URL, for `[slack] api_url`.
    pub api_url: String,
    /// Where `response_url`s point.
    pub hooks_url: String,
    state: Arc<Mutex<FakeState>>,
}

type Shared = Arc<Mutex<FakeState>>;

impl FakeSlack {
    /// Starts on a free port of 127.0.0.1, accepting `token`.
    pub async fn start(token: &str) -> FakeSlack {
        let state: Shared = Arc::new(Mutex::new(FakeState {
            token: token.to_string(),
            next: 1,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/api/{method}", get(api).post(api))
            .route("/hooks/{id}", post(hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Slack");
        let addr = listener.local_addr().expect("an address");
        let sockets = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Socket Mode");
        state.lock().unwrap_or_else(|e| e.into_inner()).sockets.url =
            format!("ws://{}/link", sockets.local_addr().expect("an address"));
        tokio::spawn(serve_sockets(sockets, state.clone()));
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake Slack serves")
        });
        FakeSlack {
            api_url: format!("http://{addr}/api"),
            hooks_url: format!("http://{addr}/hooks"),
            state,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn add_user(&self, id: &str, name: &str, email: &str) {
        self.with(|s| s.users.insert(id.into(), (name.into(), email.into())));
    }

    /// A channel made by someone else, with these members.
    pub fn add_channel(&self, id: &str, name: &str, members: &[&str]) {
        self.with(|s| {
            s.channels.push(FakeChannel {
                id: id.into(),
                name: name.into(),
                private: false,
                creator: "UOTHER".into(),
                archived: false,
                topic: String::new(),
                members: members.iter().map(|m| m.to_string()).collect(),
                messages: Vec::new(),
                pins: BTreeSet::new(),
                bookmarks: Vec::new(),
            })
        });
    }

    /// Makes every answer (Web API and `response_url`) wait `latency` before it goes out.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.with(|s| s.latency = latency);
    }

    /// When the last answer went out, if any did.
    pub fn last_answered(&self) -> Option<std::time::Instant> {
        self.with(|s| s.answered)
    }

    /// How many answers (Web API and `response_url`) have gone out, latency waited.
    pub fn answers(&self) -> usize {
        self.with(|s| s.answers)
    }

    /// Keeps the times of every answer from now on (off by default: a long load would pile
    /// them up).
    pub fn record_timings(&self) {
        self.with(|s| s.timings = Some(Vec::new()));
    }

    /// The answers' times since [`FakeSlack::record_timings`], in the order they went out.
    pub fn timings(&self) -> Vec<Timing> {
        self.with(|s| s.timings.clone().unwrap_or_default())
    }

    /// A person's message in a channel; its ts.
    pub fn say(&self, channel: &str, user: &str, text: &str) -> String {
        self.with(|s| {
            let ts = next_ts(s);
            if let Some(c) = s.channels.iter_mut().find(|c| c.id == channel) {
                c.messages.push(FakeMessage {
                    ts: ts.clone(),
                    user: user.into(),
                    text: text.into(),
                    blocks: None,
                    metadata: None,
                });
            }
            ts
        })
    }

    pub fn fail(&self, method: &str, times: u32, how: Fail) {
        self.with(|s| s.failures.push((method.into(), times, how)));
    }

    /// From now on, `method` is carried out but its answer never comes, as if the caller died
    /// while waiting. Returns what fires when such a call has arrived.
    pub fn hold(&self, method: &str) -> Arc<tokio::sync::Notify> {
        self.with(|s| {
            s.holds
                .insert(method.into(), Arc::new(tokio::sync::Notify::new()));
            s.arrived
                .entry(method.into())
                .or_insert_with(|| Arc::new(tokio::sync::Notify::new()))
                .clone()
        })
    }

    /// Lets the calls of `method` held so far (and the next, if none has arrived yet) answer.
    pub fn release(&self, method: &str) {
        if let Some(gate) = self.with(|s| s.holds.remove(method)) {
            gate.notify_waiters();
            gate.notify_one();
        }
    }

    /// Panics if a call broke Slack's OpenAPI document. Without `KLAXON_TEST_SLACK_PRISM_URL`
    /// there is nothing to check against; with it, at least one call must have been checked.
    pub fn assert_valid(&self) {
        self.with(|s| {
            assert!(
                s.violations.is_empty(),
                "requests that break Slack's OpenAPI document:\n{}",
                s.violations.join("\n")
            );
            if s.prism.is_some() {
                assert!(
                    s.validated > 0,
                    "KLAXON_TEST_SLACK_PRISM_URL is set but no call was validated"
                );
            }
        })
    }

    /// Sends a Socket Mode frame on the newest connection; false when none is open.
    pub fn socket_send(&self, frame: &Value) -> bool {
        self.with(|s| {
            s.sockets
                .senders
                .last()
                .is_some_and(|tx| tx.send(frame.to_string()).is_ok())
        })
    }

    /// How many Socket Mode connections Klaxon has opened.
    pub fn sockets_opened(&self) -> usize {
        self.with(|s| s.sockets.opened)
    }

    /// What Klaxon acknowledged over Socket Mode.
    pub fn acks(&self) -> Vec<Value> {
        self.with(|s| s.sockets.acks.clone())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    pub fn calls_to(&self, method: &str) -> Vec<HashMap<String, String>> {
        self.with(|s| {
            s.calls
                .iter()
                .filter(|c| c.method == method)
                .map(|c| c.params.clone())
                .collect()
        })
    }

    pub fn channel_named(&self, name: &str) -> Option<FakeChannel> {
        self.with(|s| s.channels.iter().find(|c| c.name == name).cloned())
    }

    pub fn channel(&self, id: &str) -> Option<FakeChannel> {
        self.with(|s| s.channels.iter().find(|c| c.id == id).cloned())
    }

    pub fn channels(&self) -> Vec<FakeChannel> {
        self.with(|s| s.channels.clone())
    }

    /// What was posted to `response_url`s, in order.
    pub fn responses(&self) -> Vec<Value> {
        self.with(|s| s.responses.iter().map(|(_, v)| v.clone()).collect())
    }

    /// How many answers were posted to `response_url`s (without copying them).
    pub fn responses_len(&self) -> usize {
        self.with(|s| s.responses.len())
    }

    pub fn views(&self) -> Vec<Value> {
        self.with(|s| s.views.clone())
    }
}

fn next_ts(s: &mut FakeState) -> String {
    s.next += 1;
    format!("1700000000.{:06}", s.next)
}

fn ok(extra: Value) -> Response {
    let mut v = json!({ "ok": true });
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    Json(v).into_response()
}

fn slack_error(code: &str) -> Response {
    Json(json!({ "ok": false, "error": code })).into_response()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

async fn hook(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let arrived = std::time::Instant::now();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let latency = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.responses.push((id, v));
        s.latency
    };
    answered(&state, latency, "response_url", arrived).await;
    StatusCode::OK.into_response()
}

async fn api(
    State(state): State<Shared>,
    Path(method): Path<String>,
    verb: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = std::time::Instant::now();
    let params = match &query {
        Some(q) if verb == Method::GET => q.as_bytes().to_vec(),
        _ => body.to_vec(),
    };
    let prism = state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .prism
        .clone();
    if let Some(prism) = prism {
        let verdict = validate(&prism, &verb, &method, query.as_deref(), &headers, &body).await;
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        match verdict {
            Ok(true) => s.validated += 1,
            Ok(false) => {}
            Err(v) => s.violations.push(v),
        }
    }
    let response = answer(&state, &method, &headers, &params);
    let held = {
        let s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.holds
            .get(&method)
            .cloned()
            .map(|gate| (gate, s.arrived.get(&method).cloned()))
    };
    if let Some((gate, arrived)) = held {
        if let Some(a) = arrived {
            a.notify_one();
        }
        gate.notified().await;
    }
    let latency = state.lock().unwrap_or_else(|e| e.into_inner()).latency;
    answered(&state, latency, &method, arrived).await;
    response
}

/// Waits out the fake's latency, then notes when the answer went out.
async fn answered(
    state: &Shared,
    latency: std::time::Duration,
    what: &str,
    arrived: std::time::Instant,
) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let now = std::time::Instant::now();
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.answered = Some(now);
    s.answers += 1;
    if let Some(t) = &mut s.timings {
        t.push(Timing {
            what: what.to_string(),
            arrived,
            answered: now,
        });
    }
}

/// Sends the same request to Prism. `Ok(true)` when Prism checked it and found nothing wrong,
/// `Ok(false)` for a method Slack's document leaves out (the `bookmarks.*` family), and the
/// violation otherwise.
async fn validate(
    prism: &str,
    verb: &Method,
    method: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<bool, String> {
    let mut url = format!("{}/{method}", prism.trim_end_matches('/'));
    if let Some(q) = query {
        url = format!("{url}?{q}");
    }
    let client = reqwest::Client::new();
    let mut req = client.request(verb.clone(), &url).body(body.to_vec());
    for name in ["authorization", "content-type"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            req = req.header(name, v);
        }
    }
    let res = req
        .send()
        .await
        .map_err(|e| format!("{verb} {method}: Prism did not answer ({e})"))?;
    let status = res.status().as_u16();
    if let Some(v) = res
        .headers()
        .get("sl-violations")
        .and_then(|v| v.to_str().ok())
    {
        return Err(format!("{verb} {method}: {v}"));
    }
    match status {
        404 => Ok(false),
        200..=299 => Ok(true),
        other => Err(format!("{verb} {method}: Prism answered HTTP {other}")),
    }
}

fn answer(state: &Shared, method: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let method = method.to_string();
    let params: HashMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.calls.push(Call {
        method: method.clone(),
        params: params.clone(),
    });
    if let Some(i) = s
        .failures
        .iter()
        .position(|(m, n, _)| *m == method && *n > 0)
    {
        s.failures[i].1 -= 1;
        return match s.failures[i].2.clone() {
            Fail::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after.to_string())],
                Json(json!({ "ok": false, "error": "ratelimited" })),
            )
                .into_response(),
            Fail::Error(code) => slack_error(code),
            Fail::Http(status) => StatusCode::from_u16(status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
        };
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if method == "apps.connections.open" {
        // The one method that takes the app-level token.
        return match token {
            Some(t) if t.starts_with("xapp-") => ok(json!({ "url": s.sockets.url })),
            Some(t) if t.starts_with("xoxb-") => slack_error("not_allowed_token_type"),
            _ => slack_error("invalid_auth"),
        };
    }
    if token != Some(s.token.as_str()) {
        return slack_error("invalid_auth");
    }
    let p = |k: &str| params.get(k).cloned().unwrap_or_default();
    let channel_ix = |s: &FakeState, key: &str| s.channels.iter().position(|c| c.id == p(key));
    match method.as_str() {
        "auth.test" => ok(
            json!({ "user_id": BOT, "user": "klaxon", "team_id": "T1", "url": "https://fake.slack.test/" }),
        ),
        "conversations.create" => {
            let name = p("name");
            if !valid_name(&name) {
                return slack_error("invalid_name_specials");
            }
            if s.channels.iter().any(|c| c.name == name) {
                return slack_error("name_taken");
            }
            s.next += 1;
            let id = format!("C{:06}", s.next);
            let private = p("is_private") == "true";
            s.channels.push(FakeChannel {
                id: id.clone(),
                name: name.clone(),
                private,
                creator: BOT.into(),
                archived: false,
                topic: String::new(),
                members: BTreeSet::from([BOT.to_string()]),
                messages: Vec::new(),
                pins: BTreeSet::new(),
                bookmarks: Vec::new(),
            });
            ok(
                json!({ "channel": { "id": id, "name": name, "is_private": private, "creator": BOT } }),
            )
        }
        "conversations.list" => {
            let list: Vec<Value> = s
                .channels
                .iter()
                .filter(|c| !(p("exclude_archived") == "true" && c.archived))
                .map(|c| json!({ "id": c.id, "name": c.name, "creator": c.creator, "is_private": c.private, "is_archived": c.archived }))
                .collect();
            ok(json!({ "channels": list, "response_metadata": { "next_cursor": "" } }))
        }
        "conversations.setTopic" => match channel_ix(&s, "channel") {
            None => slack_error("channel_not_found"),
            Some(i) => {
                s.channels[i].topic = p("topic");
                ok(json!({}))
            }
        },
        "conversations.invite" => match channel_ix(&s, "channel") {
            None => slack_error("channel_not_found"),
            Some(i) => {
                for user in p("users").split(',').filter(|u| !u.is_empty()) {
                    if !s.users.contains_key(user) {
                        return slack_error("user_not_found");
                    }
                    if s.channels[i].members.contains(user) {
                        return slack_error("already_in_channel");
                    }
                    s.channels[i].members.insert(user.to_string());
                }
                ok(json!({ "channel": { "id": s.channels[i].id } }))
            }
        },
        "chat.postMessage" => match channel_ix(&s, "channel") {
            None => slack_error("channel_not_found"),
            Some(i) if !s.channels[i].members.contains(BOT) && s.channels[i].private => {
                slack_error("not_in_channel")
            }
            Some(i) if s.channels[i].archived => slack_error("is_archived"),
            Some(i) => {
                let ts = next_ts(&mut s);
                let blocks = params
                    .get("blocks")
                    .and_then(|b| serde_json::from_str(b).ok());
                let metadata = params
                    .get("metadata")
                    .and_then(|b| serde_json::from_str(b).ok());
                s.channels[i].messages.push(FakeMessage {
                    ts: ts.clone(),
                    user: BOT.into(),
                    text: p("text"),
                    blocks,
                    metadata,
                });
                ok(json!({ "channel": p("channel"), "ts": ts }))
            }
        },
        "chat.update" => match channel_ix(&s, "channel") {
            None => slack_error("channel_not_found"),
            Some(i) => match s.channels[i].messages.iter_mut().find(|m| m.ts == p("ts")) {
                None => slack_error("message_not_found"),
                Some(m) => {
                    m.text = p("text");
                    m.blocks = params
                        .get("blocks")
                        .and_then(|b| serde_json::from_str(b).ok());
                    ok(json!({ "channel": p("channel"), "ts": p("ts") }))
                }
            },
        },
        "conversations.history" => match channel_ix(&s, "channel") {
            None => slack_error("channel_not_found"),
            Some(i) => {
                let latest = params.get("latest").cloned();
                let limit: usize = p("limit").parse().unwrap_or(100);
                let messages: Vec<Value> = s.channels[i]
                    .messages
                    .iter()
                    .rev()
                    .filter(|m| latest.as_ref().is_none_or(|l| m.ts.as_str() <= l.as_str()))
                    .take(limit)
                    .map(|m| json!({ "type": "message", "ts": m.ts, "user": m.user, "text": m.text, "metadata": m.metadata }))
                    .collect();
                ok(json!({ "messages": messages, "has_more": false }))
            }
        },
        "pins.add" => match channel_ix(&s, "channel") {
            None => slack_error("channel_not_found"),
            Some(i) => {
                if !s.channels[i]
                    .messages
                    .iter()
                    .any(|m| m.ts == p("timestamp"))
                {
                    return slack_error("message_not_found");
                }
                if !s.channels[i].pins.insert(p("timestamp")) {
                    return slack_error("already_pinned");
                }
                ok(json!({}))
            }
        },
        "bookmarks.list" => match channel_ix(&s, "channel_id") {
            None => slack_error("channel_not_found"),
            Some(i) => {
                let list: Vec<Value> = s.channels[i]
                    .bookmarks
                    .iter()
                    .map(|(t, l)| json!({ "title": t, "link": l, "type": "link" }))
                    .collect();
                ok(json!({ "bookmarks": list }))
            }
        },
        "bookmarks.add" => match channel_ix(&s, "channel_id") {
            None => slack_error("channel_not_found"),
            Some(i) => {
                s.channels[i].bookmarks.push((p("title"), p("link")));
                ok(json!({ "bookmark": { "title": p("title"), "link": p("link") } }))
            }
        },
        "conversations.open" => {
            let user = p("users");
            let id = format!("D{user}");
            if !s.channels.iter().any(|c| c.id == id) {
                s.channels.push(FakeChannel {
                    id: id.clone(),
                    name: id.clone(),
                    private: true,
                    creator: BOT.into(),
                    archived: false,
                    topic: String::new(),
                    members: BTreeSet::from([BOT.to_string(), user]),
                    messages: Vec::new(),
                    pins: BTreeSet::new(),
                    bookmarks: Vec::new(),
                });
            }
            ok(json!({ "channel": { "id": id } }))
        }
        "conversations.archive" => match channel_ix(&s, "channel") {
            None => slack_error("channel_not_found"),
            Some(i) if s.channels[i].archived => slack_error("already_archived"),
            Some(i) => {
                s.channels[i].archived = true;
                ok(json!({}))
            }
        },
        "users.lookupByEmail" => match s
            .users
            .iter()
            .find(|(_, (_, e))| e.eq_ignore_ascii_case(&p("email")))
        {
            None => slack_error("users_not_found"),
            Some((id, (name, email))) => ok(json!({ "user": {
                "id": id, "name": name.to_lowercase(), "real_name": name, "is_bot": false,
                "profile": { "real_name": name, "display_name": name, "email": email }
            } })),
        },
        "users.info" => match s.users.get(&p("user")) {
            None => slack_error("user_not_found"),
            Some((name, email)) => ok(json!({ "user": {
                "id": p("user"), "name": name.to_lowercase(), "real_name": name, "is_bot": false,
                "profile": { "real_name": name, "display_name": name, "email": email }
            } })),
        },
        "views.open" => {
            let view = params
                .get("view")
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or(Value::Null);
            s.views.push(view);
            ok(json!({ "view": { "id": "V1" } }))
        }
        _ => slack_error("unknown_method"),
    }
}

/// Accepts Socket Mode connections: greets each with `hello`, sends what the test queues, and
/// records the acknowledgements.
async fn serve_sockets(listener: tokio::net::TcpListener, state: Shared) {
    use futures_util::{SinkExt, StreamExt};
    while let Ok((tcp, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let hello = json!({ "type": "hello", "num_connections": 1, "debug_info": { "host": "fake" }, "connection_info": { "app_id": "A1" } });
            let _ = tx.send(hello.to_string());
            {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                s.sockets.opened += 1;
                s.sockets.senders.push(tx);
            }
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(text) => {
                            if sink.send(tokio_tungstenite::tungstenite::Message::Text(text.into())).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                    incoming = stream.next() => match incoming {
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                            if let Ok(v) = serde_json::from_str::<Value>(&t) {
                                state.lock().unwrap_or_else(|e| e.into_inner()).sockets.acks.push(v);
                            }
                        }
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                    },
                }
            }
        });
    }
}
