//! The `klaxon` binary: subcommands, configuration, wiring. Everything else lives in the
//! library crates; this file decides which of them run.

mod config;
mod serve;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

#[derive(Subcommand)]
enum ConfigCommands {
    /// Print a commented configuration file with every default.
    Default,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    match cli.command {
        Commands::Config {
            command: ConfigCommands::Default,
        } => {
            print!("{}", config::default_file());
            ExitCode::SUCCESS
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
