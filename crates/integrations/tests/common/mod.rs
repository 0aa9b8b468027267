//! What the integration tests share: a recording HTTP vendor that answers as a test says, a
//! recording SMTP server, and a world with a real store and runner on a manual clock.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use klaxon_core::{from_millis, Actor, Catalog, Command, Declare, IncidentRef};
use klaxon_integrations::{Context, IntegrationEffects, Settings};
use klaxon_jobs::{Clock, ManualClock, Runner, RunnerConfig};
use klaxon_store::{Job, Request, Store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One request a fake vendor got.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Seen {
    fn of(
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        headers: &axum::http::HeaderMap,
        body: String,
    ) -> Seen {
        Seen {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect(),
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An answer: status, headers, body.
pub type Answer = (u16, Vec<(&'static str, String)>, String);
pub type Responder = Arc<dyn Fn(&Seen, usize) -> Answer + Send + Sync>;

/// A vendor's HTTP API as the test scripts it: every request is recorded, and the responder
/// (given the request and how many came before it) says what to answer.
#[derive(Clone)]
pub struct FakeVendor {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeVendor {
    pub async fn start(
        responder: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static,
    ) -> FakeVendor {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let responder: Responder = Arc::new(responder);
        let state = (seen.clone(), responder);
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: String| {
                let (seen, responder) = state.clone();
                async move {
                    let s = Seen::of(&method, &uri, &headers, body);
                    let n = {
                        let mut list = seen.lock().unwrap();
                        list.push(s.clone());
                        list.len() - 1
                    };
                    let (status, hdrs, body) = responder(&s, n);
                    let mut res = axum::response::Response::builder()
                        .status(status)
                        .header("content-type", "application/json");
                    for (k, v) in hdrs {
                        res = res.header(k, v);
                    }
                    res.body(axum::body::Body::from(body)).unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        FakeVendor { url, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests to paths that end with `suffix`, with this method.
    pub fn calls(&self, method: &str, suffix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path.ends_with(suffix))
            .collect()
    }
}

pub fn ok(body: serde_json::Value) -> Answer {
    (200, vec![], body.to_string())
}

/// A mail server that accepts everything (or refuses what the test says) and keeps each
/// conversation's lines.
#[derive(Clone)]
pub struct FakeSmtp {
    pub port: u16,
    pub sessions: Arc<Mutex<Vec<Vec<String>>>>,
}

/// TLS for the fake mail server: the test CA's `localhost` certificate, and whether TLS
/// starts at once (`tls`) or after `STARTTLS`.
#[derive(Clone)]
pub struct FakeTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub implicit: bool,
}

/// The test CA (`tests/tls/ca.pem`, made for these tests with openssl, valid for a century),
/// which signed `server.pem` for `localhost` and 127.0.0.1.
pub const TEST_CA: &str = include_str!("../tls/ca.pem");

impl FakeTls {
    pub fn new(implicit: bool) -> FakeTls {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(include_bytes!("../tls/server.pem"))
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("../tls/server.key")).unwrap();
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        FakeTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            implicit,
        }
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

impl FakeSmtp {
    /// `refuse(line)` may answer a client line with its own reply instead of the usual one.
    pub async fn start(
        refuse: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> FakeSmtp {
        Self::start_with(None, refuse).await
    }

    /// With TLS: `STARTTLS` offered (and required before AUTH), or TLS from the start.
    pub async fn start_with(
        tls: Option<FakeTls>,
        refuse: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> FakeSmtp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sessions: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let refuse = Arc::new(refuse);
        let s2 = sessions.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sessions = s2.clone();
                let refuse = refuse.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let n = {
                        let mut s = sessions.lock().unwrap();
                        s.push(Vec::new());
                        s.len() - 1
                    };
                    let mut io: Box<dyn Io> = Box::new(stream);
                    let mut secure = false;
                    if let Some(t) = tls.as_ref().filter(|t| t.implicit) {
                        match t.acceptor.accept(io).await {
                            Ok(s) => io = Box::new(s),
                            Err(_) => return,
                        }
                        secure = true;
                    }
                    let mut r = BufReader::new(io);
                    r.get_mut().write_all(b"220 fake ESMTP\r\n").await.ok();
                    let mut in_data = false;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end_matches("\r\n").to_string();
                        let log = if secure {
                            line.clone()
                        } else {
                            format!("plain: {line}")
                        };
                        sessions.lock().unwrap()[n].push(if tls.is_some() {
                            log
                        } else {
                            line.clone()
                        });
                        if in_data {
                            if line == "." {
                                in_data = false;
                                let reply = refuse(".").unwrap_or_else(|| "250 queued".into());
                                r.get_mut()
                                    .write_all(format!("{reply}\r\n").as_bytes())
                                    .await
                                    .ok();
                            }
                            continue;
                        }
                        let offer_starttls = tls.as_ref().is_some_and(|t| !t.implicit) && !secure;
                        let reply = if let Some(x) = refuse(&line) {
                            x
                        } else if line.starts_with("EHLO") {
                            if offer_starttls {
                                "250-fake\r\n250-STARTTLS\r\n250 8BITMIME".into()
                            } else {
                                "250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME".into()
                            }
                        } else if line == "STARTTLS" && offer_starttls {
                            r.get_mut().write_all(b"220 go ahead\r\n").await.ok();
                            let plain = r.into_inner();
                            let acceptor = tls.as_ref().unwrap().acceptor.clone();
                            match acceptor.accept(plain).await {
                                Ok(s) => {
                                    r = BufReader::new(Box::new(s) as Box<dyn Io>);
                                    secure = true;
                                    continue;
                                }
                                Err(_) => return,
                            }
                        } else if line.starts_with("AUTH PLAIN") {
                            "235 ok".into()
                        } else if line == "DATA" {
                            in_data = true;
                            "354 go on".into()
                        } else if line == "QUIT" {
                            r.get_mut().write_all(b"221 bye\r\n").await.ok();
                            return;
                        } else {
                            "250 ok".into()
                        };
                        r.get_mut()
                            .write_all(format!("{reply}\r\n").as_bytes())
                            .await
                            .ok();
                    }
                });
            }
        });
        FakeSmtp { port, sessions }
    }

    pub fn sessions(&self) -> Vec<Vec<String>> {
        self.sessions.lock().unwrap().clone()
    }
}

pub struct World {
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub catalog: Arc<Catalog>,
    pub settings: Arc<Settings>,
    pub effects: Arc<IntegrationEffects>,
    _db: klaxon_store::testing::TestDb,
}

impl World {
    pub async fn new(settings: Settings) -> World {
        let db = klaxon_store::testing::sqlite().await;
        let catalog = Arc::new(Catalog::default());
        let settings = Arc::new(settings);
        World {
            store: db.store.clone(),
            clock: Arc::new(ManualClock::new(from_millis(1_800_000_000_000))),
            effects: Arc::new(IntegrationEffects {
                settings: settings.clone(),
                catalog: catalog.clone(),
            }),
            catalog,
            settings,
            _db: db,
        }
    }

    pub fn context(&self) -> Context {
        Context {
            store: self.store.clone(),
            catalog: self.catalog.clone(),
            settings: self.settings.clone(),
            public_url: "https://klaxon.test".into(),
        }
    }

    pub fn runner(&self) -> Arc<Runner> {
        let mut r = Runner::new(
            self.store.clone(),
            self.clock.clone(),
            RunnerConfig::default(),
        );
        for (kind, h) in klaxon_integrations::handlers(&self.context()) {
            r.register(kind, h);
        }
        // As `klaxon serve` has it: what a job puts on the timeline goes through the effects.
        r.set_effects(self.effects.clone());
        Arc::new(r)
    }

    pub async fn declare(&self, d: Declare) -> IncidentRef {
        let req = Request {
            command: d,
            actor: Actor::system("test"),
            at: self.clock.now(),
            catalog: &self.catalog,
            effects: self.effects.as_ref(),
        };
        self.store.declare(req).await.unwrap().incident.reference
    }

    pub async fn run(&self, r: IncidentRef, command: Command) {
        let req = Request {
            command,
            actor: Actor::system("test"),
            at: self.clock.now(),
            catalog: &self.catalog,
            effects: self.effects.as_ref(),
        };
        self.store.execute(r, req).await.unwrap();
    }

    pub fn now(&self) -> klaxon_core::Timestamp {
        self.clock.now()
    }

    pub fn advance(&self, seconds: i64) {
        self.clock.advance(chrono::Duration::seconds(seconds));
    }

    pub async fn job(&self, key: &str) -> Job {
        self.store
            .job_by_key(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no job {key}"))
    }

    pub async fn jobs(&self, r: IncidentRef) -> Vec<Job> {
        self.store.incident_jobs(r).await.unwrap()
    }
}

pub fn sev1(title: &str) -> Declare {
    Declare {
        title: title.into(),
        severity: Some("SEV1".into()),
        services: vec!["checkout".into()],
        ..Default::default()
    }
}

pub fn status(s: &str) -> Command {
    Command::ChangeStatus { status: s.into() }
}

/// A recording proxy in front of a Prism mock: every request is forwarded, and
/// Prism's `sl-violations` header, which lists how the request broke the vendor's
/// specification, is kept with it. `answer` may replace Prism's answer for requests whose
/// reply must be stateful (a ticket's transitions), after Prism has validated them.
#[derive(Clone)]
pub struct PrismProxy {
    pub url: String,
    pub seen: Arc<Mutex<Vec<(Seen, u16, String)>>>,
}

type Override = Arc<dyn Fn(&Seen) -> Option<Answer> + Send + Sync>;

impl PrismProxy {
    /// With the spec's examples as answers.
    pub async fn start(
        prism: &str,
        answer: impl Fn(&Seen) -> Option<Answer> + Send + Sync + 'static,
    ) -> PrismProxy {
        Self::start_with(prism, false, answer).await
    }

    /// `dynamic`: answers generated from the schema (`Prefer: dynamic=true`), for specs whose
    /// examples are not objects (Jira's).
    pub async fn start_with(
        prism: &str,
        dynamic: bool,
        answer: impl Fn(&Seen) -> Option<Answer> + Send + Sync + 'static,
    ) -> PrismProxy {
        let seen: Arc<Mutex<Vec<(Seen, u16, String)>>> = Arc::default();
        let answer: Override = Arc::new(answer);
        let state = (
            seen.clone(),
            answer,
            prism.trim_end_matches('/').to_string(),
            reqwest::Client::new(),
        );
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: String| {
                let (seen, answer, prism, client) = state.clone();
                async move {
                    let s = Seen::of(&method, &uri, &headers, body.clone());
                    let target = format!(
                        "{prism}{}",
                        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
                    );
                    let mut req = client.request(
                        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
                        target,
                    );
                    if dynamic {
                        req = req.header("prefer", "dynamic=true");
                    }
                    for (k, v) in headers.iter() {
                        if k != "host" && k != "content-length" {
                            req = req.header(k.as_str(), v.as_bytes());
                        }
                    }
                    let res = req.body(body).send().await.expect("Prism answers");
                    let status = res.status().as_u16();
                    let violations = res
                        .headers()
                        .get("sl-violations")
                        .map(|v| v.to_str().unwrap_or_default().to_string())
                        .unwrap_or_default();
                    let text = res.text().await.unwrap_or_default();
                    seen.lock().unwrap().push((s.clone(), status, violations));
                    let (status, hdrs, text) = answer(&s).unwrap_or((status, vec![], text));
                    let mut out = axum::response::Response::builder()
                        .status(status)
                        .header("content-type", "application/json");
                    for (k, v) in hdrs {
                        out = out.header(k, v);
                    }
                    out.body(axum::body::Body::from(text)).unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        PrismProxy { url, seen }
    }

    /// Every request, as `METHOD path`, after checking that none broke the specification:
    /// no violation located in the request, and no error status. (Prism also reports where
    /// the spec's own examples break its schemas, located in the response: not ours.)
    pub fn requests(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap().clone();
        for (s, status, violations) in &seen {
            let ours = request_violations(violations);
            assert!(
                ours.is_empty() && *status < 400,
                "{} {} broke the vendor's specification (HTTP {status}): {ours:?}\nbody: {}",
                s.method,
                s.path,
                s.body
            );
        }
        seen.iter()
            .map(|(s, _, _)| format!("{} {}", s.method, s.path))
            .collect()
    }

    pub fn bodies(&self, method: &str, suffix: &str) -> Vec<serde_json::Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _, _)| s.method == method && s.path.ends_with(suffix))
            .map(|(s, _, _)| s.json())
            .collect()
    }
}

/// The violations in an `sl-violations` header that are located in the request.
pub fn request_violations(header: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<Vec<serde_json::Value>>(header)
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v["location"][0] == "request")
        .collect()
}
