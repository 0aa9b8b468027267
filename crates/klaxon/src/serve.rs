//! `klaxon serve`: opens the database (migrating it), starts the job runner and the HTTP
//! server, and stops both cleanly on Ctrl-C or SIGTERM.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use klaxon_jobs::{RetryPolicy, Runner, RunnerConfig, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Loaded};

pub async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let Loaded {
        config,
        catalog,
        path,
    } = loaded;
    init_logging(&config);
    let url = config.database_url();
    tracing::info!(config = ?path, database = %klaxon_store::redact(&url), "starting Klaxon");
    let store = klaxon_store::connect(&url)
        .await
        .with_context(|| format!("cannot open the database {}", klaxon_store::redact(&url)))?;

    let generated = klaxon_server::auth::ensure_admin(store.as_ref(), &config.auth.admin_password)
        .await
        .map_err(|e| anyhow::anyhow!("cannot set up the admin account: {}", e.message))?;

    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.listen): is another program using it?",
                config.server.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let public = if config.server.public_url.is_empty() {
        format!("http://{addr}")
    } else {
        config.public_url()
    };

    let catalog = Arc::new(catalog);
    let mut runner = Runner::new(store.clone(), Arc::new(SystemClock), runner_config(&config));
    let chat = crate::chat::wire(&config, &store, &catalog, &public, &mut runner);
    // A job's entry on the timeline causes what any change does (a headline showing a link).
    runner.set_effects(chat.effects.clone());
    let runner = Arc::new(runner);
    let shutdown = CancellationToken::new();
    let runner_task = tokio::spawn(runner.clone().run(shutdown.clone()));
    if let Some(socket) = chat.socket {
        tokio::spawn(socket.run(shutdown.clone()));
    }
    if let Some(sync) = chat.sync {
        tokio::spawn(sync.run(shutdown.clone()));
    }

    let settings = klaxon_server::Settings {
        public_url: public.clone(),
        session_hours: config.auth.session_hours,
        config_display: config.redacted(),
        playbooks: config.playbooks(),
        freeze_severity: config.deploy_freeze.severity_at_least.clone(),
    };
    let mut state = klaxon_server::AppState::new(store, (*catalog).clone(), settings);
    state.catalog = catalog;
    state.effects = chat.effects;
    state.runner = Some(runner);
    if config.statuspage.enabled() {
        state.actions = Some(chat.actions.clone());
    }
    let app = klaxon_server::router_with(state, chat.routes);
    // Printed, not logged: the first thing a new user needs, whatever the log settings. A
    // closed standard output (a supervisor that does not read it) must not stop the server.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "Klaxon is listening on http://{addr} (public URL {public}); health: /healthz, readiness: /readyz");
    let _ = match generated {
        Some(password) => writeln!(
            out,
            "Sign in at {public}/login as `admin` with the password {password} (shown once; set [auth] admin_password to choose your own)."
        ),
        None => writeln!(out, "Sign in at {public}/login (the `admin` account's password is the one set or printed before)."),
    };
    let _ = out.flush();

    let stop = shutdown.clone();
    // Each answer goes out at once: with Nagle's algorithm a small response written after
    // another still unacknowledged waits for the client's delayed ACK (up to 40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            stop.cancel();
        })
        .await
        .context("the HTTP server failed")?;
    shutdown.cancel();
    // Jobs in hand get a moment to finish; any still running are taken over after their lease.
    let _ = tokio::time::timeout(
        Duration::from_secs(config.jobs.timeout_seconds + 5),
        runner_task,
    )
    .await;
    Ok(())
}

fn runner_config(c: &Config) -> RunnerConfig {
    let lease = Duration::from_secs(c.jobs.lease_seconds);
    RunnerConfig {
        concurrency: c.jobs.concurrency as usize,
        lease,
        heartbeat: lease / 4,
        job_timeout: Duration::from_secs(c.jobs.timeout_seconds),
        retry: RetryPolicy::default(),
        ..RunnerConfig::default()
    }
}

fn init_logging(c: &Config) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&c.log.level).unwrap_or_else(|_| "info".into());
    // Logs go to standard error; standard output carries only what a person needs to read.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if c.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("klaxon: logging was set up already: {e}");
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
