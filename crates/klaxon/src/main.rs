//! The `klaxon` binary: subcommands, configuration, wiring. Everything else lives in the
//! library crates; this file decides which of them run.

mod chat;
mod client;
mod config;
mod integrations;
mod serve;
mod simulate;
mod token;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc rather than glibc's allocator, which under load was about a fifth of the runtime
/// threads' time (much of it consolidating freed chunks): measured, a twelfth less CPU a
/// request (docs/BENCHMARKS.md). mimalloc kept 44 MB resident idle, and tuned down to 17 MB
/// it saved less.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "klaxon", version, about = "Self-hosted incident response")]
struct Cli {
    /// The configuration file (TOML). Without it, built-in defaults and KLAXON_* variables.
    #[arg(long, global = true, env = "KLAXON_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum IntegrationsCommands {
    /// Check each configured integration's credential and reach; exit 1 if any fails.
    Test,
}

#[derive(Subcommand)]
enum Commands {
    /// Run Klaxon: the HTTP server and the job runner, on the configured database.
    Serve,
    /// Check the configuration and report every problem with the key that holds it.
    CheckConfig,
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommands,
    },
    /// Playbook helpers.
    Playbook {
        #[command(subcommand)]
        command: PlaybookCommands,
    },
    /// Integration helpers.
    Integrations {
        #[command(subcommand)]
        command: IntegrationsCommands,
    },
    /// Slack helpers.
    Slack {
        #[command(subcommand)]
        command: SlackCommands,
    },
    /// API tokens, written straight to the configured database (no server needed).
    Token {
        #[command(subcommand)]
        command: TokenCommands,
    },
    /// Declare an incident on a running Klaxon (KLAXON_URL, KLAXON_TOKEN).
    Declare {
        /// What is broken, in a few words.
        title: String,
        #[arg(long)]
        severity: Option<String>,
        /// An affected service; repeat for several.
        #[arg(long = "service")]
        services: Vec<String>,
        #[arg(long = "type")]
        incident_type: Option<String>,
        #[arg(long)]
        summary: Option<String>,
        #[arg(long)]
        private: bool,
        #[arg(long)]
        drill: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List incidents, newest first.
    List {
        /// Only open incidents.
        #[arg(long)]
        open: bool,
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        service: Option<String>,
        /// Words to search for.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show an incident and its timeline.
    Show {
        /// INC-42
        reference: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resolve an incident.
    Resolve {
        reference: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(clap::Args)]
struct Remote {
    /// The Klaxon server.
    #[arg(long, env = "KLAXON_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API token (`klaxon token create`).
    #[arg(long, env = "KLAXON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON as it is.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum PlaybookCommands {
    /// Run a scripted incident (a TOML file) through the configured playbooks on a virtual
    /// clock, and print what would happen and when, without calling anything outside.
    Simulate {
        /// The scenario: `title`, `duration`, and `[[at]]` moments (`time`, `severity`,
        /// `status`, `lead`, `role`, `summary`, `note`).
        scenario: PathBuf,
    },
}

#[derive(Subcommand)]
enum SlackCommands {
    /// Print the Slack app manifest: paste it at https://api.slack.com/apps → Create New App.
    Manifest {
        /// Klaxon's public URL, which Slack will call.
        #[arg(long, required_unless_present = "socket")]
        url: Option<String>,
        /// For Socket Mode, without a public URL.
        #[arg(long)]
        socket: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommands {
    /// Create a token and print it (it is shown once).
    Create {
        /// What uses the token, such as `ci`.
        #[arg(long)]
        name: String,
        /// viewer, responder or admin.
        #[arg(long, default_value = "responder")]
        role: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommands {
    /// Print a commented configuration file with every default.
    Default,
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("klaxon: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Runs a client command and prints its answer.
fn remote<F>(f: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<String>>,
{
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(f) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("klaxon: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn json_or(
    json: bool,
    v: &serde_json::Value,
    text: impl FnOnce(&serde_json::Value) -> String,
) -> String {
    if json {
        serde_json::to_string_pretty(v).unwrap_or_default()
    } else {
        text(v)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    match cli.command {
        Commands::Playbook {
            command: PlaybookCommands::Simulate { scenario },
        } => {
            let loaded = match config::load(cli.config.as_deref(), &env) {
                Ok(l) => l,
                Err(problems) => {
                    eprint!("{problems}");
                    return ExitCode::from(2);
                }
            };
            remote(simulate::run(loaded, &scenario))
        }
        Commands::Slack {
            command: SlackCommands::Manifest { url, socket },
        } => {
            let url = if socket { None } else { url.as_deref() };
            let manifest = klaxon_chat::slack::manifest::manifest(url);
            println!(
                "{}",
                serde_json::to_string_pretty(&manifest).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Commands::Token {
            command: TokenCommands::Create { name, role },
        } => {
            let loaded = match config::load(cli.config.as_deref(), &env) {
                Ok(l) => l,
                Err(problems) => {
                    eprint!("{problems}");
                    return ExitCode::from(2);
                }
            };
            remote(async move {
                let token = token::create(loaded, &name, &role).await?;
                Ok(format!("{token}\n\nThis is the only time the token is shown. Use it as `Authorization: Bearer <token>`, or export KLAXON_TOKEN={token} for the CLI."))
            })
        }
        Commands::Declare {
            title,
            severity,
            services,
            incident_type,
            summary,
            private,
            drill,
            remote: r,
        } => remote(async move {
            let c = client::Client::new(&r.url, r.token.as_deref())?;
            let v = c
                .declare(serde_json::json!({
                    "title": title, "severity": severity, "services": services, "type": incident_type,
                    "summary": summary.unwrap_or_default(), "private": private, "drill": drill,
                }))
                .await?;
            Ok(json_or(r.json, &v, |v| {
                format!(
                    "Declared {}: {}",
                    client::line(v),
                    v["url"].as_str().unwrap_or("")
                )
            }))
        }),
        Commands::List {
            open,
            severity,
            status,
            service,
            search,
            limit,
            remote: r,
        } => remote(async move {
            let c = client::Client::new(&r.url, r.token.as_deref())?;
            let mut q = vec![("limit", limit.to_string())];
            if open {
                q.push(("open", "true".into()));
            }
            for (k, v) in [
                ("severity", severity),
                ("status", status),
                ("service", service),
                ("q", search),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let v = c.list(&q).await?;
            Ok(json_or(r.json, &v, |v| {
                let lines: Vec<String> = v["incidents"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(client::line)
                    .collect();
                if lines.is_empty() {
                    "No incident matches.".into()
                } else {
                    lines.join("\n")
                }
            }))
        }),
        Commands::Show {
            reference,
            remote: r,
        } => remote(async move {
            let c = client::Client::new(&r.url, r.token.as_deref())?;
            let (i, t) = c.show(&reference).await?;
            Ok(json_or(r.json, &i, |i| client::details(i, &t)))
        }),
        Commands::Resolve {
            reference,
            remote: r,
        } => remote(async move {
            let c = client::Client::new(&r.url, r.token.as_deref())?;
            let v = c.resolve(&reference).await?;
            Ok(json_or(r.json, &v, |v| {
                format!("Resolved {}", client::line(v))
            }))
        }),
        Commands::Config {
            command: ConfigCommands::Default,
        } => {
            print!("{}", config::default_file());
            ExitCode::SUCCESS
        }
        Commands::Integrations {
            command: IntegrationsCommands::Test,
        } => {
            let loaded = match config::load(cli.config.as_deref(), &env) {
                Ok(l) => l,
                Err(problems) => {
                    eprint!("{problems}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("klaxon: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(integrations::test(&loaded)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("klaxon: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Commands::CheckConfig => match config::load(cli.config.as_deref(), &env) {
            Ok(loaded) => {
                let source = loaded
                    .path
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the built-in defaults".into());
                println!("The configuration from {source} is valid.");
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprint!("{problems}");
                ExitCode::from(2)
            }
        },
        Commands::Serve => {
            let loaded = match config::load(cli.config.as_deref(), &env) {
                Ok(l) => l,
                Err(problems) => {
                    eprint!("{problems}");
                    eprintln!("Run `klaxon check-config` after fixing them.");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("klaxon: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve::run(loaded)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("klaxon: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
