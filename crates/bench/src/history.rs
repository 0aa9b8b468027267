//! `history`: a database with a long past (by default 100,000 incidents and 2,000,000
//! timeline events, written through the store as Klaxon writes them), then the pages people
//! read through HTTP: the dashboard, the incident list filtered and searched, and incident
//! pages; p50 and p99 of each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use klaxon_core::{Actor, Catalog, Command, Declare, IncidentRef};
use klaxon_store::{NoEffects, Request, Store};
use serde_json::json;

use crate::server::{ms, percentile, Server};
use crate::{fake_slack, Cli};

const SERVICES: &[&str] = &[
    "api", "payments", "checkout", "search", "auth", "db", "queue", "cdn", "email", "billing",
];
const SEVERITIES: &[&str] = &["SEV1", "SEV2", "SEV3", "SEV3", "SEV4", "SEV4"];
const WORDS: &[&str] = &[
    "latency",
    "errors",
    "timeout",
    "outage",
    "degraded",
    "failing",
    "slow",
    "disk",
    "memory",
    "certificate",
    "deploy",
    "rollback",
    "replica",
    "lag",
    "login",
    "webhooks",
    "cache",
    "dns",
    "network",
    "throttling",
    "connection",
    "pool",
    "exhausted",
    "kernel",
    "upgrade",
    "migration",
    "index",
    "queue",
    "backlog",
    "consumer",
    "partition",
    "leader",
    "election",
    "quorum",
    "gateway",
    "upstream",
    "retries",
    "storm",
    "config",
    "flag",
];

/// A small deterministic generator (xorshift), so that every run seeds the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn words(&mut self, n: usize) -> String {
        let mut out: Vec<String> = (0..n).map(|_| self.pick(WORDS).to_string()).collect();
        // A rare word too (one of 5,000 hosts), for searches that find a handful.
        out.push(format!("host{}", self.next() % 5000));
        out.join(" ")
    }
}

/// Writes incidents `from..to` (numbered from 1): each declared, then its timeline in one
/// edit (notes, severity, status changes), the newest `open` left open.
async fn seed_range(
    store: Arc<dyn Store>,
    from: u64,
    to: u64,
    total: u64,
    events: usize,
    open: u64,
) -> anyhow::Result<()> {
    let catalog = Catalog::default();
    let actor = Actor::system("bench");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (from + 1));
    // Five years, oldest first, ending now.
    let span_ms = 5 * 365 * 24 * 3_600_000i64;
    let end = klaxon_core::now().timestamp_millis();
    for n in from..to {
        let at = klaxon_core::from_millis(end - span_ms + (span_ms / total as i64) * n as i64);
        let severity = rng.pick(SEVERITIES).to_string();
        let service = rng.pick(SERVICES).to_string();
        let title = format!("{} {} {}", service, rng.pick(WORDS), rng.pick(WORDS));
        let declared = store
            .declare(Request {
                command: Declare {
                    title,
                    summary: rng.words(8),
                    impact: rng.words(5),
                    severity: Some(severity),
                    services: vec![service],
                    ..Default::default()
                },
                actor: actor.clone(),
                at,
                catalog: &catalog,
                effects: &NoEffects,
            })
            .await?;
        let r: IncidentRef = declared.incident.reference;
        let still_open = n >= total - open;
        let mut commands = Vec::new();
        let statuses: &[&str] = if still_open {
            &["investigating"]
        } else {
            &["investigating", "identified", "monitoring", "resolved"]
        };
        let written = declared.events.len();
        let notes = events.saturating_sub(written + statuses.len() + 1);
        commands.push(Command::SetSeverity {
            severity: Some(rng.pick(SEVERITIES).to_string()),
        });
        for (k, status) in statuses.iter().enumerate() {
            commands.push(Command::ChangeStatus {
                status: status.to_string(),
            });
            // The notes spread between the status changes.
            for _ in 0..notes / statuses.len() + usize::from(k < notes % statuses.len()) {
                commands.push(Command::AddNote {
                    text: rng.words(10),
                });
            }
        }
        store
            .execute_all(
                r,
                Request {
                    command: commands,
                    actor: actor.clone(),
                    at: at + chrono::Duration::minutes(45),
                    catalog: &catalog,
                    effects: &NoEffects,
                },
            )
            .await?;
    }
    Ok(())
}

/// Seeds the database (unless it already holds `incidents`), returning how long it took.
async fn seed(
    url: &str,
    incidents: u64,
    events: usize,
    open: u64,
) -> anyhow::Result<Option<Duration>> {
    let store = klaxon_store::connect(url)
        .await
        .with_context(|| format!("cannot open {}", klaxon_store::redact(url)))?;
    let have = store
        .list_incidents(&klaxon_store::IncidentQuery {
            include_private: true,
            include_drills: true,
            limit: 1,
            ..Default::default()
        })
        .await?
        .incidents
        .first()
        .map(|i| i.reference.number())
        .unwrap_or(0);
    if have >= incidents {
        eprintln!("  the database holds {have} incidents already: not seeding");
        return Ok(None);
    }
    if have > 0 {
        anyhow::bail!(
            "the database holds {have} incidents, fewer than {incidents}: give an empty one"
        );
    }
    let started = Instant::now();
    // Declarations take the next number, so one writer keeps numbers in time order; the
    // writes are one transaction per declaration and one per timeline.
    let chunk = 1000;
    let mut from = 0;
    while from < incidents {
        let to = (from + chunk).min(incidents);
        seed_range(store.clone(), from, to, incidents, events, open).await?;
        from = to;
        if from % 10_000 == 0 {
            eprintln!(
                "  seeded {from} incidents in {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Some(started.elapsed()))
}

/// A page's path for its `i`th request.
type PathOf = Box<dyn FnMut(usize) -> String>;

/// `requests` GETs of the paths `path(i)` makes, one after another: latencies, sorted.
async fn measure(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    requests: usize,
    path: &mut dyn FnMut(usize) -> String,
) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::with_capacity(requests);
    for i in 0..requests {
        let url = format!("http://{}{}", server.addr, path(i));
        let t = Instant::now();
        let res = http.get(&url).bearer_auth(token).send().await?;
        let status = res.status();
        let body = res.bytes().await?;
        took.push(t.elapsed());
        if !status.is_success() {
            anyhow::bail!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    took.sort();
    Ok(took)
}

pub async fn run(
    cli: &Cli,
    incidents: u64,
    events: usize,
    requests: usize,
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let url = match &cli.database {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", dir.path().join("history.db").display()),
    };
    let open = 40.min(incidents);
    let seeded = seed(&url, incidents, events, open).await?;
    let fake = fake_slack().await;
    let mut setup = cli.setup();
    setup.database = Some(&url);
    setup.api_token = true;
    let server = Server::start(&cli.klaxon, &fake, setup).await?;
    let token = server.api_token.clone().context("no API token")?;
    let http = reqwest::Client::new();
    let mut rng = Rng(42);
    let mut rows = Vec::new();
    let mut pages: Vec<(&str, PathOf)> = vec![
        ("dashboard", Box::new(|_| "/".to_string())),
        (
            "list, filtered (status, severity, service)",
            Box::new(|i| {
                format!(
                    "/incidents?status=resolved&severity={}&service={}",
                    SEVERITIES[i % 4],
                    SERVICES[i % SERVICES.len()]
                )
            }),
        ),
        (
            "list, searched (a common word)",
            Box::new(|i| format!("/incidents?q={}", WORDS[i % WORDS.len()])),
        ),
        (
            "list, searched (a rare word)",
            Box::new(|i| format!("/incidents?q=host{}", (i * 7919) % 5000)),
        ),
        (
            "list, searched and filtered",
            Box::new(|i| {
                format!(
                    "/incidents?q={}&service={}",
                    WORDS[(i * 3) % WORDS.len()],
                    SERVICES[i % SERVICES.len()]
                )
            }),
        ),
        (
            "incident page",
            Box::new(move |_| format!("/incidents/INC-{}", 1 + rng.next() % incidents)),
        ),
        (
            "API: list, searched",
            Box::new(|i| format!("/api/v1/incidents?q={}", WORDS[(i * 5) % WORDS.len()])),
        ),
    ];
    println!(
        "history: {incidents} incidents, about {} timeline events, {requests} requests a page, one at a time",
        incidents * events as u64
    );
    if let Some(d) = seeded {
        println!("  seeded in {:.0} s", d.as_secs_f64());
    }
    println!("  page                                          p50 ms   p99 ms   max ms");
    for (name, path) in pages.iter_mut() {
        // A few first, not counted: the first reads fill the page cache.
        measure(&http, &server, &token, 5, path.as_mut()).await?;
        let took = measure(&http, &server, &token, requests, path.as_mut()).await?;
        let (p50, p99) = (percentile(&took, 0.5), percentile(&took, 0.99));
        let max = took.last().copied().unwrap_or_default();
        println!(
            "  {name:44}  {:7.2}  {:7.2}  {:7.2}",
            ms(p50),
            ms(p99),
            ms(max)
        );
        rows.push(json!({ "page": name, "p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max) }));
    }
    Ok(json!({
        "incidents": incidents, "events_per_incident": events,
        "seeded_s": seeded.map(|d| d.as_secs_f64()), "pages": rows,
    }))
}
