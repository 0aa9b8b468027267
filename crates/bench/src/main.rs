//! `klaxon-bench`: the real `klaxon serve` (build it with `cargo build --release -p klaxon`)
//! against the fake Slack Web API, measured from outside, with figures printed as a table and
//! as JSON. A benchmark, not a test: nothing fails on a figure.
//!
//! - `footprint`: binary size, time from start to ready (`/readyz`), resident memory idle.
//! - `ack` (`ack.rs`): signed Slack slash commands or events at rising concurrency or at
//!   rising offered rates: throughput, p50/p99 time to acknowledge (each request durably
//!   recorded before the answer), the server's CPU per request, the jobs' backlog, memory.
//! - `burst`: N signed declarations sent at once; every one must become an incident with its
//!   own channel, headline and announcement; how long until the last is mobilised.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use klaxon_chat::slack::fake::{FakeSlack, BOT};
use klaxon_chat::slack::signature;
use serde_json::json;

mod ack;
mod history;
mod mobilise;
mod peers;
mod server;

use server::{ms, rss_mb, Server, Setup};

const SECRET: &str = "bench-signing-secret";
const TOKEN: &str = "xoxb-bench";

#[derive(Parser)]
struct Cli {
    /// The klaxon binary to measure.
    #[arg(long, default_value = "target/release/klaxon")]
    klaxon: PathBuf,
    /// `postgres://…` to run on PostgreSQL (a fresh database); SQLite in a temporary
    /// directory otherwise.
    #[arg(long)]
    database: Option<String>,
    /// The server's log level (its log goes to this program's stderr); none when left out.
    #[arg(long)]
    server_log: Option<String>,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    Footprint,
    Ack {
        /// What to send.
        #[arg(long, value_enum, default_value = "commands")]
        send: ack::Requests,
        /// Concurrent senders (closed loop), one level after another.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512")]
        concurrency: Vec<usize>,
        /// Offered rates in requests a second (open loop), one level after another, instead
        /// of concurrent senders.
        #[arg(long, value_delimiter = ',')]
        rates: Vec<u64>,
        /// How long each level runs.
        #[arg(long, default_value = "10")]
        seconds: u64,
    },
    Burst {
        #[arg(long, default_value = "1000")]
        declarations: usize,
    },
    History {
        #[arg(long, default_value = "100000")]
        incidents: u64,
        /// Timeline events per incident.
        #[arg(long, default_value = "20")]
        events: usize,
        /// Requests per page measured.
        #[arg(long, default_value = "300")]
        requests: usize,
    },
    Mobilise {
        #[arg(long, default_value = "200")]
        declarations: usize,
        /// Milliseconds between declarations (at 3,000, Slack's Tier 2 never holds one back).
        #[arg(long, default_value = "3000")]
        every_ms: u64,
        /// Milliseconds every peer takes to answer a call.
        #[arg(long, default_value = "50")]
        latency_ms: u64,
    },
}

impl Cli {
    fn setup(&self) -> Setup<'_> {
        Setup {
            database: self.database.as_deref(),
            log: self.server_log.as_deref(),
            ..Setup::default()
        }
    }
}

/// A signed `/incident` slash command, as Slack sends it.
fn command(fake: &FakeSlack, text: &str, n: usize) -> (String, String, String) {
    let body = serde_urlencoded::to_string([
        ("command", "/incident"),
        ("text", text),
        ("user_id", "U1"),
        ("channel_id", "CRANDOM"),
        ("trigger_id", &format!("{n}.bench")),
        ("response_url", &format!("{}/bench", fake.hooks_url)),
    ])
    .expect("a form");
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = signature::sign(SECRET, &ts, body.as_bytes());
    (body, ts, sig)
}

pub(crate) async fn fake_slack() -> FakeSlack {
    let fake = FakeSlack::start(TOKEN).await;
    fake.add_user("U1", "Ada Lovelace", "ada@example.test");
    fake.add_channel("CINCIDENTS", "incidents", &[BOT]);
    fake.add_channel("CRANDOM", "random", &["U1"]);
    fake
}

async fn footprint(cli: &Cli) -> anyhow::Result<serde_json::Value> {
    let size = std::fs::metadata(&cli.klaxon)
        .with_context(|| format!("no binary at {}", cli.klaxon.display()))?
        .len() as f64
        / 1_000_000.0;
    let fake = fake_slack().await;
    let mut ready = Vec::new();
    let mut idle = 0.0;
    for _ in 0..5 {
        let s = Server::start(&cli.klaxon, &fake, cli.setup()).await?;
        ready.push(s.ready_in);
        tokio::time::sleep(Duration::from_secs(2)).await;
        idle = rss_mb(s.pid());
    }
    ready.sort();
    println!("footprint");
    println!("  binary            {size:8.1} MB");
    println!("  start to ready    {:8.1} ms (median of 5)", ms(ready[2]));
    println!("  resident, idle    {idle:8.1} MB");
    Ok(json!({ "binary_mb": size, "ready_ms": ms(ready[2]), "idle_rss_mb": idle }))
}

async fn burst(cli: &Cli, count: usize) -> anyhow::Result<serde_json::Value> {
    let fake = fake_slack().await;
    let server = Server::start(&cli.klaxon, &fake, cli.setup()).await?;
    let url = format!("http://{}/slack/commands", server.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .build()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..count {
        let (body, ts, sig) = command(&fake, &format!("declare Burst {i}"), i);
        let http = http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            http.post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", ts)
                .header("x-slack-signature", sig)
                .body(body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += usize::from(t.await?);
    }
    let acked_in = started.elapsed();
    let fake = Arc::new(fake);
    // Slack's Tier 2 lets about 20 channels a minute be made: allow for that and more.
    let deadline = Instant::now() + Duration::from_secs(600 + 4 * count as u64);
    let mut last_said = Instant::now();
    let (channels, headlines, announcements) = loop {
        let chans = fake.channels();
        let incident_channels: Vec<_> = chans
            .iter()
            .filter(|c| c.name.starts_with("inc-"))
            .collect();
        let headlines = incident_channels
            .iter()
            .filter(|c| !c.pins.is_empty())
            .count();
        let announcements = fake
            .channel("CINCIDENTS")
            .map(|c| c.messages.len())
            .unwrap_or(0);
        if (headlines >= count && announcements >= count) || Instant::now() > deadline {
            break (incident_channels.len(), headlines, announcements);
        }
        if last_said.elapsed() >= Duration::from_secs(30) {
            last_said = Instant::now();
            eprintln!(
                "  {:4.0} s: {} channels, {headlines} headlines, {announcements} announcements",
                started.elapsed().as_secs_f64(),
                incident_channels.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mobilised_in = started.elapsed();
    println!("burst of {count} signed declarations sent at once");
    println!(
        "  acknowledged          {acked:6} in {:8.1} ms",
        ms(acked_in)
    );
    println!("  incident channels     {channels:6}");
    println!("  pinned headlines      {headlines:6}");
    println!("  announcements         {announcements:6}");
    println!(
        "  last mobilised after  {:8.1} s",
        mobilised_in.as_secs_f64()
    );
    Ok(json!({
        "declarations": count, "acknowledged": acked, "channels": channels, "headlines": headlines,
        "announcements": announcements, "acknowledged_ms": ms(acked_in), "mobilised_s": mobilised_in.as_secs_f64(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    // The server runs in a directory of its own: a relative path would not find the binary.
    cli.klaxon = std::fs::canonicalize(&cli.klaxon).with_context(|| {
        format!(
            "no klaxon binary at {} (build it with cargo build --release -p klaxon)",
            cli.klaxon.display()
        )
    })?;
    let result = match &cli.what {
        What::Footprint => footprint(&cli).await?,
        What::Ack {
            send,
            concurrency,
            rates,
            seconds,
        } => ack::run(&cli, *send, &ack::levels(concurrency, rates)?, *seconds).await?,
        What::Burst { declarations } => burst(&cli, *declarations).await?,
        What::History {
            incidents,
            events,
            requests,
        } => history::run(&cli, *incidents, *events, *requests).await?,
        What::Mobilise {
            declarations,
            every_ms,
            latency_ms,
        } => {
            mobilise::run(
                &cli,
                *declarations,
                Duration::from_millis(*every_ms),
                Duration::from_millis(*latency_ms),
            )
            .await?
        }
    };
    println!("{result}");
    Ok(())
}
