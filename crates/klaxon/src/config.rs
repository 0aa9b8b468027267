//! Configuration: built-in defaults, then the TOML file, then `KLAXON_<SECTION>_<KEY>`
//! environment variables, then secrets from files (`<key>_file` in the file, or
//! `KLAXON_<SECTION>_<KEY>_FILE`), then validation. Unknown keys are errors, and every error
//! names the key that holds it and says how to fix it.
//!
//! Every setting has a value in the defaults (strings are empty when unset, never absent), so
//! the defaults, serialised, are also the schema an environment variable is checked against.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use klaxon_core::{Catalog, RoleDef, Roles, Severities, SeverityDef, Statuses};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub jobs: JobsConfig,
    pub severities: SeveritiesConfig,
    pub statuses: Statuses,
    pub roles: RolesConfig,
    pub incidents: IncidentsConfig,
    pub slack: SlackConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// The URL people reach Klaxon at, for links in chat and email; `http://<listen>` when empty.
    pub public_url: String,
    /// Where Klaxon keeps its files, the SQLite database among them.
    pub data_dir: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`; empty means SQLite in `data_dir`.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A level (`info`) or a filter (`info,klaxon_jobs=debug`).
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// The Web API's base URL; change it only to point at a test double.
    pub api_url: String,
    /// The bot token (`xoxb-…`); Slack is off while it is empty.
    pub bot_token: String,
    /// From the app's Basic Information page; every request from Slack is checked against it.
    pub signing_secret: String,
    /// An app-level token (`xapp-…`), for Socket Mode.
    pub app_token: String,
    /// `http`: Slack calls Klaxon's public URL; `socket`: Klaxon connects to Slack (Socket
    /// Mode, for installs without a public URL; needs `app_token`).
    pub mode: String,
    /// The channel id (`C…`) where new incidents are announced; empty for no announcements.
    pub incidents_channel: String,
    /// The reaction that puts a message on the timeline.
    pub timeline_reaction: String,
    /// What a Slack user Klaxon has not seen before may do: viewer, responder or admin.
    pub default_role: String,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            api_url: "https://slack.com/api".into(),
            bot_token: String::new(),
            signing_secret: String::new(),
            app_token: String::new(),
            mode: "http".into(),
            incidents_channel: String::new(),
            timeline_reaction: "pushpin".into(),
            default_role: "responder".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The password of the local `admin` account. Empty: on first start Klaxon creates the
    /// account with a random password and prints it once.
    pub admin_password: String,
    /// How long a web sign-in lasts.
    pub session_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs one replica runs at once.
    pub concurrency: u32,
    /// The longest one attempt of an external action may take.
    pub timeout_seconds: u64,
    /// How long a replica's claim on a job holds without renewal: a crashed replica's jobs
    /// are taken over after this.
    pub lease_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeveritiesConfig {
    /// Most severe first.
    pub levels: Vec<SeverityDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolesConfig {
    /// The lead role is always there, added first when this list leaves it out.
    pub list: Vec<RoleDef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Allowed incident types; empty accepts any.
    pub types: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: String::new(),
            data_dir: "./klaxon-data".into(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            admin_password: String::new(),
            session_hours: 12,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            concurrency: 16,
            timeout_seconds: 30,
            lease_seconds: 60,
        }
    }
}

impl Default for SeveritiesConfig {
    fn default() -> Self {
        SeveritiesConfig {
            levels: Severities::default_list(),
        }
    }
}

impl Default for RolesConfig {
    fn default() -> Self {
        RolesConfig {
            list: Roles::default_list(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            jobs: JobsConfig::default(),
            severities: SeveritiesConfig::default(),
            statuses: Statuses::default_statuses(),
            roles: RolesConfig::default(),
            incidents: IncidentsConfig::default(),
            slack: SlackConfig::default(),
        }
    }
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where: `server.listen`, or an environment variable's name.
    pub key: String,
    /// The line in the file, when the problem is in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {line}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Every problem found, so that one run of `klaxon check-config` lists them all.
#[derive(Debug, Clone, PartialEq)]
pub struct Problems {
    pub source: String,
    pub list: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the configuration ({}) has {} problem(s):",
            self.source,
            self.list.len()
        )?;
        for p in &self.list {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Variables that are not settings: the CLI's own, and the tests'.
const NOT_SETTINGS: &[&str] = &["KLAXON_CONFIG", "KLAXON_URL", "KLAXON_TOKEN"];

#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub catalog: Catalog,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

/// Loads the configuration from an optional file and the given environment.
pub fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Loaded, Problems> {
    let source = match path {
        Some(p) => p.display().to_string(),
        None => "built-in defaults and environment".to_string(),
    };
    let fail = |list: Vec<Problem>| Problems {
        source: source.clone(),
        list,
    };
    let text = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|e| {
            fail(vec![Problem {
                key: "--config".into(),
                line: None,
                message: format!("cannot read {}: {e}; check the path, or leave --config out to use the defaults", p.display()),
            }])
        })?,
        None => String::new(),
    };
    let mut problems = Vec::new();
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            return Err(fail(vec![Problem {
                key: "file".into(),
                line,
                message: format!("not valid TOML: {}", e.message()),
            }]));
        }
    };
    let schema = toml::Table::try_from(Config::default()).expect("the defaults serialise");
    read_secret_files(&mut table, &schema, &text, &mut problems);
    apply_env(&mut table, &schema, env, &mut problems);

    let config: Option<Config> = match serde_path_to_error::deserialize(toml::Value::Table(table)) {
        Ok(c) => Some(c),
        Err(e) => {
            let key = e.path().to_string();
            let message = e.inner().message().to_string();
            let hint = if message.starts_with("unknown field") {
                "; remove it or correct its spelling"
            } else {
                ""
            };
            problems.push(Problem {
                line: line_of(&text, &key),
                key,
                message: format!("{message}{hint}"),
            });
            None
        }
    };
    let Some(config) = config else {
        return Err(fail(problems));
    };
    validate(&config, &text, &mut problems);
    let catalog = match Catalog::new(
        config.severities.levels.clone(),
        config.statuses.clone(),
        config.roles.list.clone(),
        config.incidents.types.clone(),
    ) {
        Ok(c) => Some(c),
        Err(errors) => {
            for e in errors {
                let key = match e.key.split_once('[') {
                    Some(("severities", rest)) => format!("severities.levels[{rest}"),
                    Some(("statuses", rest)) => format!("statuses.list[{rest}"),
                    Some(("roles", rest)) => format!("roles.list[{rest}"),
                    Some(("types", rest)) => format!("incidents.types[{rest}"),
                    _ => e.key.clone(),
                };
                problems.push(Problem {
                    line: line_of(&text, &key),
                    key,
                    message: e.message,
                });
            }
            None
        }
    };
    match catalog {
        Some(catalog) if problems.is_empty() => Ok(Loaded {
            config,
            catalog,
            path: path.map(Path::to_path_buf),
        }),
        _ => Err(fail(problems)),
    }
}

/// `token_file = "/run/secrets/x"` in the file stands for `token = <contents of the file>`.
fn read_secret_files(
    table: &mut toml::Table,
    schema: &toml::Table,
    text: &str,
    problems: &mut Vec<Problem>,
) {
    for (section, value) in table.iter_mut() {
        let (Some(values), Some(toml::Value::Table(known))) =
            (value.as_table_mut(), schema.get(section))
        else {
            continue;
        };
        let file_keys: Vec<String> = values
            .keys()
            .filter(|k| {
                k.strip_suffix("_file")
                    .is_some_and(|base| matches!(known.get(base), Some(toml::Value::String(_))))
            })
            .cloned()
            .collect();
        for key in file_keys {
            let base = key.trim_end_matches("_file").to_string();
            let full = format!("{section}.{key}");
            let Some(toml::Value::String(path)) = values.remove(&key) else {
                problems.push(Problem {
                    line: line_of(text, &full),
                    key: full,
                    message: "must be a file path in quotes".into(),
                });
                continue;
            };
            match std::fs::read_to_string(&path) {
                Ok(secret) => {
                    values.insert(
                        base,
                        toml::Value::String(secret.trim_end_matches(['\n', '\r']).to_string()),
                    );
                }
                Err(e) => problems.push(Problem {
                    line: line_of(text, &full),
                    key: full,
                    message: format!("cannot read the secret file {path}: {e}"),
                }),
            }
        }
    }
}

/// `KLAXON_SERVER_LISTEN=0.0.0.0:8080` sets `[server] listen`. A value is taken as it is for
/// a string setting, and as a TOML value (`true`, `16`, `["a", "b"]`) for any other.
fn apply_env(
    table: &mut toml::Table,
    schema: &toml::Table,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("KLAXON_") else {
            continue;
        };
        if NOT_SETTINGS.contains(&name.as_str()) || rest.starts_with("TEST_") {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let Some((section, key)) = lower.split_once('_') else {
            problems.push(Problem {
                key: name.clone(),
                line: None,
                message: "name a setting as KLAXON_<SECTION>_<KEY>, such as KLAXON_SERVER_LISTEN"
                    .into(),
            });
            continue;
        };
        let Some(toml::Value::Table(known)) = schema.get(section) else {
            let sections: Vec<&String> = schema.keys().collect();
            problems.push(Problem {
                key: name.clone(),
                line: None,
                message: format!(
                    "there is no [{section}] section; the sections are {}",
                    join(sections)
                ),
            });
            continue;
        };
        let (key, value) = match (known.get(key), key.strip_suffix("_file")) {
            (Some(default), _) => match coerce(raw, default) {
                Ok(v) => (key.to_string(), v),
                Err(m) => {
                    problems.push(Problem {
                        key: name.clone(),
                        line: None,
                        message: m,
                    });
                    continue;
                }
            },
            (None, Some(base)) if matches!(known.get(base), Some(toml::Value::String(_))) => {
                match std::fs::read_to_string(raw) {
                    Ok(s) => (
                        base.to_string(),
                        toml::Value::String(s.trim_end_matches(['\n', '\r']).to_string()),
                    ),
                    Err(e) => {
                        problems.push(Problem {
                            key: name.clone(),
                            line: None,
                            message: format!("cannot read the secret file {raw}: {e}"),
                        });
                        continue;
                    }
                }
            }
            _ => {
                let keys: Vec<&String> = known.keys().collect();
                problems.push(Problem {
                    key: name.clone(),
                    line: None,
                    message: format!(
                        "[{section}] has no key `{key}`; its keys are {}",
                        join(keys)
                    ),
                });
                continue;
            }
        };
        let section_table = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(t) = section_table.as_table_mut() {
            t.insert(key, value);
        }
    }
}

fn coerce(raw: &str, default: &toml::Value) -> Result<toml::Value, String> {
    if default.is_str() {
        return Ok(toml::Value::String(raw.to_string()));
    }
    let parsed: toml::Table = format!("v = {raw}").parse().map_err(|_| {
        format!(
            "`{raw}` is not a valid value: write it as in TOML, such as {}",
            example(default)
        )
    })?;
    let v = parsed
        .get("v")
        .cloned()
        .unwrap_or(toml::Value::Boolean(false));
    if v.same_type(default) {
        Ok(v)
    } else {
        Err(format!(
            "`{raw}` is a {} but this setting takes a {}, such as {}",
            v.type_str(),
            default.type_str(),
            example(default)
        ))
    }
}

fn example(v: &toml::Value) -> String {
    match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(_) => "[\"a\", \"b\"]".into(),
        other => other.to_string(),
    }
}

fn join<T: fmt::Display>(items: Vec<T>) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The line that sets `key` (`section.key`, or `section.list[2].name`) in the file: a best
/// guess, good enough to point a person at the right place. It looks for the innermost name
/// first, then the names around it (an inline table's key is on its array's line).
fn line_of(text: &str, key: &str) -> Option<usize> {
    let mut names: Vec<&str> = key
        .split('.')
        .map(|p| p.split('[').next().unwrap_or(p))
        .collect();
    let section = names.remove(0);
    names.reverse();
    names.iter().find_map(|name| {
        let mut in_section = false;
        text.lines().enumerate().find_map(|(i, line)| {
            let l = line.trim();
            if l.starts_with('[') {
                let header = l.trim_matches(|c| c == '[' || c == ']').trim();
                in_section = header == section || header.starts_with(&format!("{section}."));
                return None;
            }
            let sets = l
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='));
            (in_section && sets).then_some(i + 1)
        })
    })
}

fn validate(c: &Config, text: &str, problems: &mut Vec<Problem>) {
    let mut bad = |key: &str, message: String| {
        problems.push(Problem {
            key: key.into(),
            line: line_of(text, key),
            message,
        });
    };
    if c.server.listen.parse::<std::net::SocketAddr>().is_err() {
        bad(
            "server.listen",
            format!(
                "`{}` is not an address and port: write it as 127.0.0.1:8080 or 0.0.0.0:8080",
                c.server.listen
            ),
        );
    }
    let public = &c.server.public_url;
    let web = public.starts_with("http://") || public.starts_with("https://");
    if !public.is_empty() && !web {
        bad(
            "server.public_url",
            format!(
                "`{}` must start with https:// (or http://)",
                c.server.public_url
            ),
        );
    }
    if c.server.data_dir.trim().is_empty() {
        bad(
            "server.data_dir",
            "must not be empty: name a directory Klaxon may write to, such as ./klaxon-data".into(),
        );
    }
    let url = &c.database.url;
    if !(url.is_empty()
        || url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        bad("database.url", format!("`{}` is not a database URL Klaxon knows: use sqlite://PATH or postgres://USER@HOST/DB", klaxon_store::redact(url)));
    }
    if !["text", "json"].contains(&c.log.format.as_str()) {
        bad(
            "log.format",
            format!(
                "`{}` is not a log format: use \"text\" or \"json\"",
                c.log.format
            ),
        );
    }
    if tracing_subscriber::EnvFilter::try_new(&c.log.level).is_err() {
        bad(
            "log.level",
            format!(
                "`{}` is not a level: use error, warn, info, debug or trace",
                c.log.level
            ),
        );
    }
    if c.auth.session_hours == 0 || c.auth.session_hours > 24 * 90 {
        bad(
            "auth.session_hours",
            format!(
                "{} is out of range: use 1 to 2160 (90 days)",
                c.auth.session_hours
            ),
        );
    }
    if !c.auth.admin_password.is_empty() && c.auth.admin_password.chars().count() < 12 {
        bad("auth.admin_password", "is shorter than 12 characters: choose a longer one, or leave it empty to have Klaxon generate one".into());
    }
    let sl = &c.slack;
    if !(sl.api_url.starts_with("https://") || sl.api_url.starts_with("http://")) {
        bad(
            "slack.api_url",
            format!(
                "`{}` must be a URL, such as https://slack.com/api",
                sl.api_url
            ),
        );
    }
    if klaxon_core::Access::parse(&sl.default_role).is_none() {
        bad(
            "slack.default_role",
            format!(
                "`{}` is not a role: use viewer, responder or admin",
                sl.default_role
            ),
        );
    }
    match sl.mode.as_str() {
        "http" => {
            if !sl.bot_token.is_empty() && sl.signing_secret.is_empty() {
                bad("slack.signing_secret", "is needed with a bot token: copy it from the app's Basic Information page".into());
            }
        }
        "socket" => {
            if !sl.bot_token.is_empty() && !sl.app_token.starts_with("xapp-") {
                bad("slack.app_token", "Socket Mode needs an app-level token (xapp-…): create one with the connections:write scope on the app's Basic Information page".into());
            }
        }
        other => bad("slack.mode", format!("`{other}` is not a mode: use \"http\" (Slack calls Klaxon's public URL) or \"socket\" (Klaxon connects to Slack)")),
    }
    if !sl.bot_token.is_empty() && !sl.bot_token.starts_with("xoxb-") {
        bad(
            "slack.bot_token",
            "is not a bot token: it starts with xoxb- (the OAuth & Permissions page)".into(),
        );
    }
    if c.jobs.concurrency == 0 || c.jobs.concurrency > 1024 {
        bad(
            "jobs.concurrency",
            format!("{} is out of range: use 1 to 1024", c.jobs.concurrency),
        );
    }
    if c.jobs.timeout_seconds == 0 {
        bad("jobs.timeout_seconds", "must be at least 1".into());
    }
    if c.jobs.lease_seconds < 10 {
        bad("jobs.lease_seconds", format!("{} is too short: use at least 10, so that a slow database does not hand running jobs to another replica", c.jobs.lease_seconds));
    }
}

impl Config {
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}",
                Path::new(&self.server.data_dir).join("klaxon.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// The configuration as TOML with every secret replaced, for the settings page.
    pub fn redacted(&self) -> String {
        let mut table = toml::Table::try_from(self).expect("the configuration serialises");
        for (_, section) in table.iter_mut() {
            let Some(section) = section.as_table_mut() else {
                continue;
            };
            for (key, value) in section.iter_mut() {
                let secret = ["password", "token", "secret"]
                    .iter()
                    .any(|s| key.contains(s));
                match value {
                    toml::Value::String(v) if secret && !v.is_empty() => *v = "<redacted>".into(),
                    toml::Value::String(v) if key == "url" => *v = klaxon_store::redact(v),
                    _ => {}
                }
            }
        }
        toml::to_string_pretty(&table).unwrap_or_default()
    }

    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// The default configuration file, with a comment for each setting.
pub fn default_file() -> String {
    let d = Config::default();
    let body = toml::to_string_pretty(&d).expect("the defaults serialise");
    format!(
        "# Klaxon configuration. Every setting here is the built-in default, so this file changes\n\
         # nothing until you edit it. Any setting can also come from the environment as\n\
         # KLAXON_<SECTION>_<KEY> (KLAXON_SERVER_LISTEN, KLAXON_DATABASE_URL), and any string\n\
         # setting from a file: `<key>_file = \"/run/secrets/x\"` here, or KLAXON_<SECTION>_<KEY>_FILE.\n\
         #\n\
         # [server]    listen: address and port; public_url: the URL people reach Klaxon at\n\
         #             (http://<listen> when empty); data_dir: where the SQLite database lives.\n\
         # [database]  url: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB (SQLite in data_dir\n\
         #             when empty). Use PostgreSQL to run several replicas.\n\
         # [log]       format: text or json; level: error, warn, info, debug or trace.\n\
         # [auth]      admin_password: the local `admin` account's password (empty: generated and\n\
         #             printed once on first start; better from a file: admin_password_file);\n\
         #             session_hours: how long a web sign-in lasts.\n\
         # [jobs]      concurrency: external actions run at once per replica; timeout_seconds: the\n\
         #             longest one attempt may take; lease_seconds: after how long a crashed\n\
         #             replica's actions are taken over.\n\
         # [severities] levels: most severe first. [statuses] the statuses, each with its phase\n\
         #             (triage, active, mitigated, resolved, closed) and where it may move next.\n\
         # [roles]     list: roles besides the incident lead, with a description and checklist.\n\
         # [incidents] types: allowed incident types; empty accepts any.\n\
         # [slack]     bot_token (xoxb-…) and signing_secret turn Slack on; incidents_channel: the\n\
         #             channel id (C…) for announcements; timeline_reaction: the emoji that puts a\n\
         #             message on the timeline; default_role: what new Slack users may do.\n\
         #             `klaxon slack manifest --url https://…` prints the app to install.\n\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("klaxon.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn zero_configuration_works() {
        let l = load(None, &env(&[])).unwrap();
        assert_eq!(l.config, Config::default());
        assert_eq!(l.config.database_url(), "sqlite://./klaxon-data/klaxon.db");
        assert_eq!(l.config.public_url(), "http://127.0.0.1:8080");
        assert_eq!(l.catalog, Catalog::default());
    }

    #[test]
    fn the_default_file_loads_to_the_defaults() {
        let (_d, p) = file(&default_file());
        assert_eq!(load(Some(&p), &env(&[])).unwrap().config, Config::default());
    }

    #[test]
    fn file_then_environment_then_secret_files() {
        let (dir, p) = file("[server]\nlisten = \"127.0.0.1:9000\"\n[jobs]\nconcurrency = 4\n");
        let secret = dir.path().join("db-url");
        std::fs::write(&secret, "postgres://k:pw@db/klaxon\n").unwrap();
        let l = load(
            Some(&p),
            &env(&[
                ("KLAXON_JOBS_CONCURRENCY", "8"),
                ("KLAXON_DATABASE_URL_FILE", secret.to_str().unwrap()),
                ("KLAXON_URL", "http://ignored"),
                ("KLAXON_TEST_DATABASE_URL", "ignored"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(l.config.server.listen, "127.0.0.1:9000", "from the file");
        assert_eq!(l.config.jobs.concurrency, 8, "environment over file");
        assert_eq!(
            l.config.database.url, "postgres://k:pw@db/klaxon",
            "secret file, newline trimmed"
        );
    }

    #[test]
    fn secret_file_keys_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("url"), "sqlite://x.db").unwrap();
        let (_d, p) = file(&format!(
            "[database]\nurl_file = \"{}\"\n",
            dir.path().join("url").display()
        ));
        assert_eq!(
            load(Some(&p), &env(&[])).unwrap().config.database.url,
            "sqlite://x.db"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_line_and_fix() {
        let (_d, p) = file("[server]\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n");
        let e = load(Some(&p), &env(&[])).unwrap_err();
        assert_eq!(e.list.len(), 1, "{e}");
        assert_eq!(e.list[0].key, "server.lisen");
        assert_eq!(e.list[0].line, Some(3));
        assert!(
            e.list[0]
                .message
                .contains("unknown field `lisen`, expected one of `listen`"),
            "{e}"
        );
        assert!(
            e.list[0]
                .message
                .contains("remove it or correct its spelling"),
            "{e}"
        );

        let (_d, p) = file("[sever]\nlisten = 1\n");
        let e = load(Some(&p), &env(&[])).unwrap_err();
        assert_eq!(e.list[0].key, "sever");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let (_d, p) = file(
            "[server]\nlisten = \"localhost\"\n[log]\nformat = \"xml\"\n[jobs]\nlease_seconds = 2\n\
             [severities]\nlevels = [{ key = \"SEV1\", name = \"a\" }, { key = \"sev1\", name = \"b\" }]\n",
        );
        let e = load(
            Some(&p),
            &env(&[
                ("KLAXON_JOBS_CONCURRENCY", "lots"),
                ("KLAXON_NOPE_X", "1"),
                ("KLAXON_SERVER_PORT", "1"),
            ]),
        )
        .unwrap_err();
        let keys: Vec<&str> = e.list.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "KLAXON_JOBS_CONCURRENCY",
                "KLAXON_NOPE_X",
                "KLAXON_SERVER_PORT",
                "server.listen",
                "log.format",
                "jobs.lease_seconds",
                "severities.levels[1].key"
            ],
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains("`lots` is not a valid value: write it as in TOML, such as 16"),
            "{text}"
        );
        assert!(text.contains("there is no [nope] section"), "{text}");
        assert!(
            text.contains(
                "[server] has no key `port`; its keys are `data_dir`, `listen`, `public_url`"
            ),
            "{text}"
        );
        assert!(
            text.contains("server.listen (line 2): `localhost` is not an address and port"),
            "{text}"
        );
        assert!(
            text.contains("severities.levels[1].key (line 8): `sev1` is listed twice"),
            "{text}"
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        let (_d, p) = file("[jobs]\nconcurrency = \"many\"\n");
        let e = load(Some(&p), &env(&[])).unwrap_err();
        assert_eq!(e.list[0].key, "jobs.concurrency");
        assert_eq!(e.list[0].line, Some(2));
        assert!(
            e.list[0]
                .message
                .contains("invalid type: string \"many\", expected u32"),
            "{e}"
        );
        let e = load(None, &env(&[("KLAXON_JOBS_CONCURRENCY", "\"8\"")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("is a string but this setting takes a integer"),
            "{e}"
        );
    }

    #[test]
    fn slack_settings_are_checked_by_mode() {
        let e = load(None, &env(&[("KLAXON_SLACK_BOT_TOKEN", "xoxb-1")])).unwrap_err();
        assert_eq!(e.list[0].key, "slack.signing_secret", "{e}");
        let ok = load(
            None,
            &env(&[
                ("KLAXON_SLACK_BOT_TOKEN", "xoxb-1"),
                ("KLAXON_SLACK_SIGNING_SECRET", "s"),
            ]),
        );
        assert!(ok.is_ok());
        let e = load(
            None,
            &env(&[
                ("KLAXON_SLACK_BOT_TOKEN", "xoxb-1"),
                ("KLAXON_SLACK_MODE", "socket"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.list[0].key, "slack.app_token", "{e}");
        assert!(e.to_string().contains("connections:write"), "{e}");
        let ok = load(
            None,
            &env(&[
                ("KLAXON_SLACK_BOT_TOKEN", "xoxb-1"),
                ("KLAXON_SLACK_MODE", "socket"),
                ("KLAXON_SLACK_APP_TOKEN", "xapp-1"),
            ]),
        );
        assert!(ok.is_ok(), "Socket Mode needs no signing secret");
        let e = load(
            None,
            &env(&[
                ("KLAXON_SLACK_BOT_TOKEN", "xoxp-1"),
                ("KLAXON_SLACK_SIGNING_SECRET", "s"),
                ("KLAXON_SLACK_MODE", "pigeon"),
            ]),
        )
        .unwrap_err();
        let keys: Vec<&str> = e.list.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["slack.mode", "slack.bot_token"], "{e}");
        let shown = load(
            None,
            &env(&[
                ("KLAXON_SLACK_BOT_TOKEN", "xoxb-secret"),
                ("KLAXON_SLACK_SIGNING_SECRET", "shh"),
            ]),
        )
        .unwrap()
        .config
        .redacted();
        assert!(
            !shown.contains("xoxb-secret") && !shown.contains("shh"),
            "{shown}"
        );
    }

    #[test]
    fn secrets_are_redacted_for_display() {
        let (_d, p) = file("[auth]\nadmin_password = \"correct horse battery\"\n[database]\nurl = \"postgres://k:pw@db/x\"\n");
        let shown = load(Some(&p), &env(&[])).unwrap().config.redacted();
        assert!(shown.contains("admin_password = \"<redacted>\""), "{shown}");
        assert!(shown.contains("url = \"postgres://k:***@db/x\""), "{shown}");
        assert!(
            !shown.contains("correct horse") && !shown.contains(":pw@"),
            "{shown}"
        );
    }

    #[test]
    fn bad_toml_and_missing_files_are_explained() {
        let (_d, p) = file("[server]\nlisten = \n");
        let e = load(Some(&p), &env(&[])).unwrap_err();
        assert_eq!((e.list[0].key.as_str(), e.list[0].line), ("file", Some(2)));
        let e = load(Some(Path::new("/nonexistent/klaxon.toml")), &env(&[])).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot read /nonexistent/klaxon.toml"),
            "{e}"
        );
    }
}
