//! `mobilise`: declarations through the API, one at a time, with every peer (Slack, PagerDuty,
//! Jira, Statuspage, SMTP) answering each call after a fixed latency; for each, the time from
//! the request to the last peer's answer once no job is left to run, next to the lower bound
//! of the calls that must follow one another (create the channel, then post, then pin).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use klaxon_chat::slack::fake::Timing;

use crate::peers::Peers;
use crate::server::{ms, percentile, Server};
use crate::{fake_slack, Cli};

/// The calls that cannot overlap: the channel must exist before the headline is posted in
/// it, and the headline before it is pinned.
const CHAIN: u32 = 3;

/// The Slack calls every declaration makes (`conversations.create`, `conversations.setTopic`,
/// `chat.postMessage` for the headline and the announcement, `pins.add`, `bookmarks.list`,
/// `bookmarks.add`), and the other peers' (PagerDuty, Jira, Statuspage, SMTP).
const SLACK_CALLS: usize = 7;
const OTHER_CALLS: usize = 4;

/// The counted declarations shown apart as the first after the start.
const EARLY: usize = 10;

fn config(p: &Peers) -> String {
    format!(
        r#"
[pagerduty]
events_url = "{pd}"
routing_key = "R0123456789abcdef0123456789abcde"
severity_at_least = "SEV2"

[jira]
url = "{jira}"
email = "bench@example.test"
api_token = "jira-bench-token"
project = "OPS"

[statuspage]
api_url = "{sp}"
api_key = "statuspage-bench-key"
page_id = "benchpage"
components = {{ api = "cmp-api" }}

[smtp]
host = "127.0.0.1"
port = {port}
security = "plain"
from = "Klaxon <klaxon@example.test>"
recipients = [{{ to = ["stakeholders@example.test"], severity_at_least = "SEV2" }}]
"#,
        pd = p.pagerduty,
        jira = p.jira,
        sp = p.statuspage,
        port = p.smtp_port,
    )
}

/// Jobs waiting or running, from `/metrics` (every kind with its count).
pub(crate) async fn unfinished(
    http: &reqwest::Client,
    addr: &str,
) -> anyhow::Result<Vec<(String, u64)>> {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("klaxon_jobs{")
                && (l.contains("state=\"pending\"") || l.contains("state=\"running\""))
        })
        .filter_map(|l| {
            let (labels, n) = l.rsplit_once(' ')?;
            let n: u64 = n.parse().ok()?;
            (n > 0).then(|| (labels.to_string(), n))
        })
        .collect())
}

pub async fn run(
    cli: &Cli,
    count: usize,
    every: Duration,
    latency: Duration,
) -> anyhow::Result<serde_json::Value> {
    let fake = fake_slack().await;
    fake.set_latency(latency);
    fake.record_timings();
    let peers = Peers::start(latency).await?;
    let mut setup = cli.setup();
    setup.config = Some(config(&peers));
    setup.api_token = true;
    let server = Server::start(&cli.klaxon, &fake, setup).await?;
    let token = server.api_token.clone().context("no API token")?;
    let http = reqwest::Client::new();
    let bound = latency * CHAIN;
    let mut took = Vec::new();
    // When each counted declaration was sent and when its last answer went out.
    let mut spans = Vec::new();
    let begun = Instant::now();
    // The same moment on the wall clock: the slowest declarations are printed with theirs, to
    // be matched with the database's log (a PostgreSQL checkpoint, say).
    let begun_at = chrono::Utc::now();
    // One more at the start, not counted: the first call to Slack after a start also asks who
    // the bot is (`auth.test`, once per process).
    for n in 0..=count {
        // Declarations spaced so that Slack's rate tiers (conversations.create: 20 a minute)
        // never hold one back: this measures how the actions overlap, not Slack's limits.
        let slot = begun + every * n as u32;
        tokio::time::sleep_until(slot.into()).await;
        // What the peers had answered before this declaration (the one before it is done,
        // with any `chat.update` it made): this one's answers come on top.
        let before = (fake.answers(), peers.answers());
        let sent = Instant::now();
        let res = http
            .post(format!("http://{}/api/v1/incidents", server.addr))
            .bearer_auth(&token)
            .json(&json!({
                "title": format!("Checkout failing {n}"),
                "summary": "Payments time out at the gateway.",
                "impact": "Customers cannot pay.",
                "severity": "SEV1",
                "services": ["api"],
                "labels": { "customer-facing": "yes" },
            }))
            .send()
            .await?;
        if !res.status().is_success() {
            bail!(
                "declaration {n} refused: {} {}",
                res.status(),
                res.text().await?
            );
        }
        // Polling `/metrics` costs the server two queries each time, on the cores the
        // declaration needs: first wait, in this process, for the answers every declaration
        // gets (Slack's 7, one more for `auth.test` the first time, and the 4 other peers'),
        // then ask the server whether anything is left (a headline's update).
        let first = usize::from(n == 0);
        let (slack, others) = (before.0 + SLACK_CALLS + first, before.1 + OTHER_CALLS);
        let quiet = Instant::now() + Duration::from_secs(10);
        while (fake.answers() < slack || peers.answers() < others) && Instant::now() < quiet {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = unfinished(&http, &server.addr).await?;
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!("declaration {n}: jobs still unfinished after 60 s: {left:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let last = [fake.last_answered(), peers.last_answered()]
            .into_iter()
            .flatten()
            .max()
            .context("no peer answered")?;
        if n > 0 {
            took.push(last.saturating_duration_since(sent));
            spans.push((n, sent, last));
        }
    }
    let mut timings = fake.timings();
    timings.extend(peers.timings());
    timings.sort_by_key(|t| t.arrived);
    let slowest = slowest(&timings, spans, 5);
    let sent_at = |sent: Instant| {
        let after = chrono::Duration::from_std(sent.duration_since(begun)).unwrap_or_default();
        (begun_at + after).format("%H:%M:%S%.3f UTC").to_string()
    };
    // The first declarations after a start meet connections that have prepared none of their
    // statements yet: they are shown apart from the rest.
    let mut early = took.clone();
    let mut later = early.split_off(EARLY.min(early.len()));
    early.sort();
    later.sort();
    took.sort();
    let (p50, p99) = (percentile(&took, 0.5), percentile(&took, 0.99));
    // How long the peers themselves took to answer (their latency, plus their timers' and the
    // scheduler's lateness): the bound assumes exactly the latency, so what the peers add
    // beyond it counts against Klaxon in the ratio.
    let mut answering: Vec<Duration> = timings
        .iter()
        .map(|t| t.answered.saturating_duration_since(t.arrived))
        .collect();
    answering.sort();
    let answer_p50 = percentile(&answering, 0.5);
    let ratio = |d: Duration| d.as_secs_f64() / bound.as_secs_f64();
    let channels = fake
        .channels()
        .iter()
        .filter(|c| c.name.starts_with("inc-") && !c.pins.is_empty())
        .count();
    let announcements = fake
        .channel("CINCIDENTS")
        .map(|c| c.messages.len())
        .unwrap_or(0);
    let mut slack_calls = std::collections::BTreeMap::<String, u64>::new();
    for c in fake.calls() {
        *slack_calls
            .entry(format!("slack {}", c.method))
            .or_default() += 1;
    }
    let calls: Vec<(String, u64)> = slack_calls.into_iter().chain(peers.calls()).collect();
    println!(
        "declare to mobilised: {count} declarations (after one to warm up), every peer answering after {} ms",
        latency.as_millis()
    );
    println!("  lower bound (create, post, pin)  {:8.1} ms", ms(bound));
    println!(
        "  a peer's answer, p50             {:8.1} ms  (the chain's three calls: {:.1} ms)",
        ms(answer_p50),
        ms(answer_p50) * CHAIN as f64
    );
    println!(
        "  p50                              {:8.1} ms  ({:.2} × bound)",
        ms(p50),
        ratio(p50)
    );
    println!(
        "  p99                              {:8.1} ms  ({:.2} × bound)",
        ms(p99),
        ratio(p99)
    );
    println!(
        "  max                              {:8.1} ms",
        ms(took.last().copied().unwrap_or_default())
    );
    let max = |d: &[Duration]| d.last().copied().unwrap_or_default();
    println!(
        "  the first {EARLY}: p50 / max       {:8.1} / {:.1} ms; the rest: {:.1} / {:.1} ms",
        ms(percentile(&early, 0.5)),
        ms(max(&early)),
        ms(percentile(&later, 0.5)),
        ms(max(&later))
    );
    println!("  channels with a pinned headline  {channels:8}");
    println!("  announcements                    {announcements:8}");
    println!("  calls to the peers:");
    for (what, n) in &calls {
        println!("    {n:6}  {what}");
    }
    println!("  the slowest declarations, each call's arrival and answer after the request:");
    for (n, sent, calls) in &slowest {
        println!("    declaration {n} (sent at {}):", sent_at(*sent));
        for (what, arrived, answered) in calls {
            println!("      {arrived:7.1} ms → {answered:7.1} ms  {what}");
        }
    }
    Ok(json!({
        "declarations": count, "latency_ms": ms(latency), "bound_ms": ms(bound),
        "answer_p50_ms": ms(answer_p50), "p50_ms": ms(p50), "p99_ms": ms(p99), "p50_over_bound": ratio(p50), "p99_over_bound": ratio(p99),
        "early": { "declarations": early.len(), "p50_ms": ms(percentile(&early, 0.5)), "max_ms": ms(max(&early)) },
        "later": { "declarations": later.len(), "p50_ms": ms(percentile(&later, 0.5)), "max_ms": ms(max(&later)) },
        "channels": channels, "announcements": announcements,
        "calls": calls.into_iter().map(|(k, n)| (k, json!(n))).collect::<serde_json::Map<_, _>>(),
        "slowest": slowest.iter().map(|(n, sent, calls)| json!({
            "declaration": n,
            "sent_at": sent_at(*sent),
            "calls": calls.iter().map(|(what, a, b)| json!({ "call": what, "arrived_ms": a, "answered_ms": b })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }))
}

/// A call's name, and when it arrived and was answered, in ms after its declaration was sent.
type Explained = (String, f64, f64);

/// The `most` slowest declarations (by when their last answer went out), each with the calls
/// the peers answered for it (`timings`, in the order they arrived): where a slow one lost its time.
fn slowest(
    timings: &[Timing],
    mut spans: Vec<(usize, Instant, Instant)>,
    most: usize,
) -> Vec<(usize, Instant, Vec<Explained>)> {
    spans.sort_by_key(|(_, sent, last)| std::cmp::Reverse(last.saturating_duration_since(*sent)));
    spans
        .into_iter()
        .take(most)
        .map(|(n, sent, last)| {
            let after = |t: Instant| ms(t.saturating_duration_since(sent));
            let calls = timings
                .iter()
                .filter(|t| t.arrived >= sent && t.answered <= last)
                .map(|t| (t.what.clone(), after(t.arrived), after(t.answered)))
                .collect();
            (n, sent, calls)
        })
        .collect()
}
