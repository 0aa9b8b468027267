//! `ack`: signed Slack requests at rising load, each acknowledged only once it is durably
//! recorded as a job. Two kinds: slash commands (`/incident help`, each answered by its job
//! through `response_url`) and Events API messages in an incident's channel (each heard by its
//! job, for keyword playbooks). Two ways to load the server:
//!
//! - closed loop (`--concurrency`): N senders, each sending again once its last request is
//!   answered; shows the throughput the server reaches and the latency at that concurrency;
//! - open loop (`--rates`): requests sent on a schedule whatever the answers, each one's latency
//!   counted from when it was due, so that a server falling behind cannot hide its queue
//!   (coordinated omission); shows the latency at an offered rate, and past which rate the p99
//!   passes Slack's 3 s deadline.
//!
//! For each level: throughput, p50/p99/max time to acknowledge, errors, the server's CPU per
//! request (from `/proc/<pid>/stat`) for the whole of it (its job included, once every job is
//! done) and apart for the acknowledgement and for the job, the jobs left when the sending
//! stopped and how long they took, and the peak resident memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::ValueEnum;
use klaxon_chat::slack::fake::{FakeSlack, BOT};
use klaxon_chat::slack::signature;
use serde_json::json;
use tokio::task::JoinSet;

use crate::server::{cpu_seconds, ms, percentile, rss_mb, Server};
use crate::{fake_slack, mobilise, Cli, SECRET};

/// What the load is made of.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Requests {
    /// `/incident help` slash commands.
    Commands,
    /// `message` events in an incident's channel.
    Events,
}

/// One level of load.
#[derive(Clone, Copy)]
pub enum Load {
    /// This many senders, each waiting for its answer.
    Senders(usize),
    /// Requests a second, on a schedule.
    Rate(u64),
}

/// Where requests go and how each is made.
#[derive(Clone)]
struct Target {
    url: String,
    requests: Requests,
    hooks_url: String,
    /// The incident channel events are sent from.
    channel: String,
}

impl Target {
    /// The `n`th request: its body, content type, timestamp and signature.
    fn request(&self, n: u64) -> (String, &'static str, String, String) {
        let (body, content_type) = match self.requests {
            Requests::Commands => (
                serde_urlencoded::to_string([
                    ("command", "/incident"),
                    ("text", "help"),
                    ("user_id", "U1"),
                    ("channel_id", "CRANDOM"),
                    ("trigger_id", &format!("{n}.bench")),
                    ("response_url", &format!("{}/bench", self.hooks_url)),
                ])
                .expect("a form"),
                "application/x-www-form-urlencoded",
            ),
            Requests::Events => (
                json!({
                    "type": "event_callback",
                    "team_id": "T1",
                    "api_app_id": "A1",
                    "event_id": format!("Ev{n}"),
                    "event_time": chrono::Utc::now().timestamp(),
                    "authorizations": [{ "team_id": "T1", "user_id": BOT, "is_bot": true }],
                    "event": {
                        "type": "message",
                        "channel": self.channel,
                        "channel_type": "channel",
                        "user": "U1",
                        "text": format!("checked the gateway's dashboards again, still timing out ({n})"),
                        "ts": format!("1700000000.{n:06}"),
                    },
                })
                .to_string(),
                "application/json",
            ),
        };
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = signature::sign(SECRET, &ts, body.as_bytes());
        (body, content_type, ts, sig)
    }

    /// Sends the `n`th request: acknowledged, or why not.
    async fn send(&self, http: &reqwest::Client, n: u64) -> Result<(), String> {
        let (body, content_type, ts, sig) = self.request(n);
        let res = http
            .post(&self.url)
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) if e.is_connect() => Err("could not connect".into()),
            Err(e) if e.is_timeout() => Err("timed out".into()),
            Err(_) => Err("connection lost".into()),
        }
    }
}

/// What one level's sending gave: each acknowledged request's latency, and the others by
/// what went wrong.
#[derive(Default)]
struct Sent {
    latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
}

impl Sent {
    fn add(&mut self, result: Result<Duration, String>) {
        match result {
            Ok(l) => self.latencies.push(l),
            Err(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Sent) {
        self.latencies.extend(other.latencies);
        for (e, n) in other.errors {
            *self.errors.entry(e).or_default() += n;
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

pub async fn run(
    cli: &Cli,
    requests: Requests,
    levels: &[Load],
    seconds: u64,
) -> anyhow::Result<serde_json::Value> {
    let fake = fake_slack().await;
    let server = Server::start(&cli.klaxon, &fake, cli.setup()).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()?;
    let channel = match requests {
        Requests::Commands => String::new(),
        Requests::Events => incident_channel(&server, &fake, &http).await?,
    };
    let path = match requests {
        Requests::Commands => "commands",
        Requests::Events => "events",
    };
    let target = Arc::new(Target {
        url: format!("http://{}/slack/{path}", server.addr),
        requests,
        hooks_url: fake.hooks_url.clone(),
        channel,
    });
    let what = match requests {
        Requests::Commands => "signed slash commands (/incident help)",
        Requests::Events => "signed message events in an incident's channel",
    };
    println!("acknowledgement of {what}, {seconds} s a level");
    println!(
        "  load          requests/s   p50 ms   p99 ms   max ms   CPU ms/req    ack CPU    job CPU   RSS MB   errors   jobs left   drained s"
    );
    let mut rows = Vec::new();
    // Every request of the run has its own number: a trigger or event id Slack never repeats.
    let mut next = 0u64;
    for &load in levels {
        let responses_before = fake.responses_len();
        let cpu_before = cpu_seconds(server.pid());
        let pid = server.pid();
        let started = Instant::now();
        let until = started + Duration::from_secs(seconds);
        // Resident memory sampled while the level runs; its highest.
        let sampler = tokio::spawn(async move {
            let mut peak = 0.0f64;
            while Instant::now() < until {
                peak = peak.max(rss_mb(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        });
        let mut sent = match load {
            Load::Senders(c) => closed(&http, &target, c, until, &mut next).await?,
            Load::Rate(r) => open(&http, &target, r, seconds, &mut next).await?,
        };
        let peak = sampler.await?;
        let wall = started.elapsed().as_secs_f64();
        let cpu_sending = cpu_seconds(server.pid()) - cpu_before;
        let acked = sent.latencies.len() as u64;
        // The jobs may still be running: count what is left, wait for it, and count its CPU.
        let stopped = Instant::now();
        let backlog = match requests {
            Requests::Commands => {
                acked.saturating_sub((fake.responses_len() - responses_before) as u64)
            }
            Requests::Events => unfinished(&http, &server).await?,
        };
        loop {
            let left = match requests {
                // Every command's job answers through response_url: counted in the fake, so
                // the wait costs the server nothing.
                Requests::Commands => {
                    acked.saturating_sub((fake.responses_len() - responses_before) as u64)
                }
                Requests::Events => unfinished(&http, &server).await?,
            };
            if left == 0 {
                break;
            }
            if stopped.elapsed() > Duration::from_secs(1200) {
                bail!("{left} jobs were still unfinished 20 minutes after the sending stopped");
            }
            let poll = match requests {
                Requests::Commands => 20,
                // Counting jobs is a query of the server's: not too often.
                Requests::Events => 1000,
            };
            tokio::time::sleep(Duration::from_millis(poll)).await;
        }
        let drained = stopped.elapsed().as_secs_f64();
        let cpu = cpu_seconds(server.pid()) - cpu_before;
        sent.latencies.sort();
        let lat = &sent.latencies;
        let rate = acked as f64 / wall;
        let n = acked.max(1) as f64;
        let cpu_ms = cpu * 1000.0 / n;
        // Apart: a job's CPU is what the backlog cost to run after the sending stopped; an
        // acknowledgement's is what is left of the CPU while sending once the jobs that ran
        // then are taken away. Only with a backlog large enough to measure.
        let split = (backlog >= 200).then(|| {
            let job = (cpu - cpu_sending) * 1000.0 / backlog as f64;
            let ack = (cpu_sending * 1000.0 - job * (n - backlog as f64)) / n;
            (ack, job)
        });
        let shown = |v: Option<f64>| v.map_or("       —".to_string(), |v| format!("{v:8.3}"));
        let label = match load {
            Load::Senders(c) => format!("{c} senders"),
            Load::Rate(r) => format!("{r}/s"),
        };
        println!(
            "  {label:<12}  {rate:10.0}   {:6.2}   {:6.2}   {:6.1}   {cpu_ms:10.3}   {}   {}   {peak:6.1}   {:6}   {backlog:9}   {drained:9.2}",
            ms(percentile(lat, 0.5)),
            ms(percentile(lat, 0.99)),
            ms(lat.last().copied().unwrap_or_default()),
            shown(split.map(|s| s.0)),
            shown(split.map(|s| s.1)),
            sent.error_count(),
        );
        for (e, n) in &sent.errors {
            println!("      {n} not acknowledged: {e}");
        }
        let (senders, offered) = match load {
            Load::Senders(c) => (Some(c), None),
            Load::Rate(r) => (None, Some(r)),
        };
        rows.push(json!({
            "senders": senders, "offered_per_second": offered,
            "requests_per_second": rate.round(), "acknowledged": acked,
            "p50_ms": ms(percentile(lat, 0.5)), "p99_ms": ms(percentile(lat, 0.99)),
            "max_ms": ms(lat.last().copied().unwrap_or_default()),
            "cpu_ms_per_request": cpu_ms, "ack_cpu_ms": split.map(|s| s.0), "job_cpu_ms": split.map(|s| s.1),
            "rss_mb": peak, "errors": sent.error_count(), "error_kinds": sent.errors, "jobs_left": backlog, "jobs_drained_s": drained,
        }));
    }
    let key = match requests {
        Requests::Commands => "commands",
        Requests::Events => "events",
    };
    Ok(json!({ "ack": { key: rows } }))
}

/// `c` senders, each sending its next request once the last is answered, until `until`.
async fn closed(
    http: &reqwest::Client,
    target: &Arc<Target>,
    c: usize,
    until: Instant,
    next: &mut u64,
) -> anyhow::Result<Sent> {
    let mut tasks = JoinSet::new();
    for _ in 0..c {
        let (http, target) = (http.clone(), target.clone());
        // Each sender numbers its requests from a range of its own.
        let first = *next;
        *next += 10_000_000;
        tasks.spawn(async move {
            let mut sent = Sent::default();
            let mut n = first;
            while Instant::now() < until {
                n += 1;
                let t = Instant::now();
                sent.add(target.send(&http, n).await.map(|()| t.elapsed()));
            }
            sent
        });
    }
    let mut all = Sent::default();
    while let Some(s) = tasks.join_next().await {
        all.merge(s?);
    }
    Ok(all)
}

/// `rate` requests a second for `seconds`, each sent when it is due whether or not the
/// earlier ones were answered; a latency counts from when its request was due, so time spent
/// waiting for a connection or in the server's queue is counted.
async fn open(
    http: &reqwest::Client,
    target: &Arc<Target>,
    rate: u64,
    seconds: u64,
    next: &mut u64,
) -> anyhow::Result<Sent> {
    let total = rate * seconds;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut i = 0u64;
    while i < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while i < due {
            let at = start + Duration::from_secs_f64(i as f64 / rate as f64);
            let (http, target) = (http.clone(), target.clone());
            let n = *next + i;
            tasks.spawn(async move { target.send(&http, n).await.map(|()| at.elapsed()) });
            i += 1;
        }
    }
    *next += total;
    let mut sent = Sent::default();
    while let Some(r) = tasks.join_next().await {
        sent.add(r?);
    }
    Ok(sent)
}

/// Jobs waiting or running, from `/metrics`.
async fn unfinished(http: &reqwest::Client, server: &Server) -> anyhow::Result<u64> {
    Ok(mobilise::unfinished(http, &server.addr)
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum())
}

/// Declares an incident with a signed slash command and waits for its channel: the one the
/// events come from (Klaxon records only messages in incident channels).
async fn incident_channel(
    server: &Server,
    fake: &FakeSlack,
    http: &reqwest::Client,
) -> anyhow::Result<String> {
    let (body, ts, sig) = crate::command(fake, "declare Gateway timeouts", 0);
    let res = http
        .post(format!("http://{}/slack/commands", server.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("the declaration was refused: {}", res.status());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let channel = fake
            .channels()
            .into_iter()
            .find(|c| c.name.starts_with("inc-") && !c.pins.is_empty());
        if let Some(c) = channel {
            if unfinished(http, server).await? == 0 {
                return Ok(c.id);
            }
        }
        if Instant::now() > deadline {
            bail!("the incident's channel was not made within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The levels asked for: rates when given, senders otherwise.
pub fn levels(senders: &[usize], rates: &[u64]) -> anyhow::Result<Vec<Load>> {
    if rates.is_empty() {
        if senders.is_empty() {
            bail!("give --concurrency or --rates");
        }
        return Ok(senders.iter().map(|&c| Load::Senders(c)).collect());
    }
    if rates.contains(&0) {
        bail!("a rate must be at least 1 request a second");
    }
    Ok(rates.iter().map(|&r| Load::Rate(r)).collect())
}
