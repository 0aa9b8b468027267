//! The server under measurement: the real `klaxon serve` in a directory of its own, started
//! against the fakes, with its CPU time and resident memory read from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use klaxon_chat::slack::fake::FakeSlack;

use crate::{SECRET, TOKEN};

/// What to start the server with besides the fake Slack.
#[derive(Default)]
pub struct Setup<'a> {
    /// `postgres://…`; SQLite in the server's directory otherwise.
    pub database: Option<&'a str>,
    /// A `klaxon.toml` to start with.
    pub config: Option<String>,
    /// Create an API token (responder) before the start.
    pub api_token: bool,
    /// The server's log level, its log on this program's stderr; no log when `None`.
    pub log: Option<&'a str>,
}

/// The server under measurement; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
    pub ready_in: Duration,
    /// The API token, when the setup asked for one.
    pub api_token: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub async fn start(bin: &Path, fake: &FakeSlack, setup: Setup<'_>) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        // The same settings for `token create` and `serve`.
        let command = || {
            let mut c = Command::new(bin);
            for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KLAXON_")) {
                c.env_remove(k);
            }
            if let Some(db) = setup.database {
                c.env("KLAXON_DATABASE_URL", db);
            }
            if setup.config.is_some() {
                c.env("KLAXON_CONFIG", dir.path().join("klaxon.toml"));
            }
            c.current_dir(dir.path())
                .env("KLAXON_SLACK_API_URL", &fake.api_url)
                .env("KLAXON_SLACK_BOT_TOKEN", TOKEN)
                .env("KLAXON_SLACK_SIGNING_SECRET", SECRET)
                .env("KLAXON_SLACK_INCIDENTS_CHANNEL", "CINCIDENTS")
                .env("KLAXON_AUTH_ADMIN_PASSWORD", "a long enough password")
                .env("KLAXON_LOG_LEVEL", setup.log.unwrap_or("warn"))
                .env("KLAXON_INCIDENTS_DEFAULT_PLAYBOOKS", "false");
            c
        };
        if let Some(config) = &setup.config {
            std::fs::write(dir.path().join("klaxon.toml"), config)?;
        }
        let api_token = if setup.api_token {
            let out = command()
                .args(["token", "create", "--name", "bench"])
                .output()
                .with_context(|| format!("cannot run {}", bin.display()))?;
            if !out.status.success() {
                bail!(
                    "klaxon token create failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            Some(
                text.lines()
                    .next()
                    .context("no token printed")?
                    .trim()
                    .to_string(),
            )
        } else {
            None
        };
        let mut c = command();
        let started = Instant::now();
        let mut child = c
            .arg("serve")
            .env("KLAXON_SERVER_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(if setup.log.is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (build it with cargo build --release -p klaxon)",
                    bin.display()
                )
            })?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let first = lines.next().context("klaxon said nothing")??;
        let addr = first
            .split("listening on http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .context("no address in klaxon's first line")?
            .to_string();
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("http://{addr}/readyz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            // Long enough for the migrations of a large database.
            if started.elapsed() > Duration::from_secs(900) {
                bail!("klaxon was not ready within 15 minutes");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Server {
            child,
            addr,
            ready_in: started.elapsed(),
            api_token,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// CPU seconds (user + system) the process has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory in MB, from `/proc/<pid>/status`.
pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}
