//! Configuration: built-in defaults, then the TOML file, then `KLAXON_<SECTION>_<KEY>`
//! environment variables, then secrets from files (`<key>_file` in the file, or
//! `KLAXON_<SECTION>_<KEY>_FILE`), then validation. Unknown keys are errors, and every error
//! names the key that holds it and says how to fix it.
//!
//! Every setting has a value in the defaults (strings are empty when unset, never absent), so
//! the defaults, serialised, are also the schema an environment variable is checked against.

use std::path::Path;

use klaxon_core::playbook::{CustomCommand, Playbook};
use klaxon_core::{RoleDef, Roles, Severities, SeverityDef, Statuses};
use klaxon_integrations::config::{
    GithubConfig, JiraConfig, OpsgenieConfig, PagerDutyConfig, SmtpConfig, StatuspageConfig,
    WebhookConfig,
};
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
    pub matrix: MatrixConfig,
    pub deploy_freeze: DeployFreezeConfig,
    pub pagerduty: PagerDutyConfig,
    pub opsgenie: OpsgenieConfig,
    pub jira: JiraConfig,
    pub github: GithubConfig,
    pub statuspage: StatuspageConfig,
    pub smtp: SmtpConfig,
    /// Outgoing webhooks: `[[webhooks]]` tables.
    pub webhooks: Vec<WebhookConfig>,
    /// The organisation's procedure: `[[playbooks]]` tables (see `klaxon_core::playbook`).
    pub playbooks: Vec<Playbook>,
    /// The operator's own `/incident` commands: `[[commands]]` tables.
    pub commands: Vec<CustomCommand>,
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
pub struct MatrixConfig {
    /// The homeserver's base URL (`https://matrix.example.org`); Matrix is off while empty.
    pub homeserver_url: String,
    /// The bot account: `@klaxon:example.org`.
    pub user_id: String,
    /// The bot's access token; or leave it empty and set `password` to sign in at start.
    pub access_token: String,
    pub password: String,
    /// The room (`!id:server`) where new incidents are announced; empty for none.
    pub incidents_room: String,
    /// The reaction that puts a message on the timeline.
    pub timeline_reaction: String,
    /// Create incident rooms end-to-end encrypted. Klaxon cannot read encrypted rooms, so
    /// commands and keywords stop working in them: leave it off unless policy demands it.
    pub encryption: bool,
    /// What a Matrix user Klaxon has not seen before may do: viewer, responder or admin.
    pub default_role: String,
}

impl Default for MatrixConfig {
    fn default() -> Self {
        MatrixConfig {
            homeserver_url: String::new(),
            user_id: String::new(),
            access_token: String::new(),
            password: String::new(),
            incidents_room: String::new(),
            timeline_reaction: "📌".into(),
            encryption: false,
            default_role: "responder".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployFreezeConfig {
    /// Open incidents of this severity or worse freeze deploys (`GET /api/v1/deploy-freeze`).
    pub severity_at_least: String,
}

impl Default for DeployFreezeConfig {
    fn default() -> Self {
        DeployFreezeConfig {
            severity_at_least: "SEV2".into(),
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Allowed incident types; empty accepts any.
    pub types: Vec<String>,
    /// Run the built-in playbooks (the severity nudge, status update reminders) besides the
    /// configured ones; a configured playbook with the same name replaces a built-in one.
    pub default_playbooks: bool,
    /// The incident leads (emails), in the order they take over: the lead-handover playbook
    /// suggests the next one.
    pub leads: Vec<String>,
    /// Runbooks by keyword: `runbooks = { database = "https://wiki/runbooks/db" }` answers a
    /// message that mentions "database" in an incident's channel with the link.
    pub runbooks: std::collections::BTreeMap<String, String>,
    /// The chat platforms (`slack`, `matrix`) where every incident gets a room when declared;
    /// empty: every configured one. On the others a room opens when a playbook's
    /// `open_channel` step says so.
    pub chat_platforms: Vec<String>,
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

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            types: Vec::new(),
            default_playbooks: true,
            leads: Vec::new(),
            runbooks: std::collections::BTreeMap::new(),
            chat_platforms: Vec::new(),
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
            matrix: MatrixConfig::default(),
            deploy_freeze: DeployFreezeConfig::default(),
            pagerduty: PagerDutyConfig::default(),
            opsgenie: OpsgenieConfig::default(),
            jira: JiraConfig::default(),
            github: GithubConfig::default(),
            statuspage: StatuspageConfig::default(),
            smtp: SmtpConfig::default(),
            webhooks: Vec::new(),
            playbooks: Vec::new(),
            commands: Vec::new(),
        }
    }
}

mod load;
#[cfg(test)]
mod tests;

pub use load::{load, Loaded};

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

    /// The playbooks in force: the configured ones, and the built-in ones they do not replace.
    pub fn playbooks(&self) -> Vec<Playbook> {
        let mut all = self.playbooks.clone();
        // A keyword playbook per runbook.
        for (keyword, url) in &self.incidents.runbooks {
            all.push(Playbook {
                name: format!("runbook-{keyword}"),
                trigger: klaxon_core::playbook::Trigger::Keyword(keyword.clone()),
                when: klaxon_core::playbook::Condition::Always,
                steps: vec![klaxon_core::playbook::Step::Message {
                    to: klaxon_core::playbook::Target::Channel,
                    text: format!("The runbook for “{keyword}”: {url}"),
                }],
                once: false,
                cooldown: None,
            });
        }
        if self.incidents.default_playbooks {
            let builtin = klaxon_core::playbook::defaults();
            all.extend(
                builtin
                    .into_iter()
                    .filter(|d| !self.playbooks.iter().any(|p| p.name == d.name)),
            );
        }
        all
    }

    /// Whether the chat platform `name` is configured; `None` when Klaxon has no such platform.
    pub fn chat_platform(&self, name: &str) -> Option<bool> {
        match name {
            "slack" => Some(!self.slack.bot_token.is_empty()),
            "matrix" => Some(!self.matrix.homeserver_url.is_empty()),
            _ => None,
        }
    }

    /// The integrations' sections together.
    pub fn integrations(&self) -> klaxon_integrations::Settings {
        klaxon_integrations::Settings {
            pagerduty: self.pagerduty.clone(),
            opsgenie: self.opsgenie.clone(),
            jira: self.jira.clone(),
            github: self.github.clone(),
            statuspage: self.statuspage.clone(),
            smtp: self.smtp.clone(),
            webhooks: self.webhooks.clone(),
        }
    }

    /// The configuration as TOML with every secret replaced, for the settings page.
    pub fn redacted(&self) -> String {
        /// Replaces the secrets of one table: sections and `[[…]]` entries alike.
        fn scrub(table: &mut toml::Table) {
            for (key, value) in table.iter_mut() {
                let secret = ["password", "token", "secret", "routing_key", "api_key"]
                    .iter()
                    .any(|s| key.contains(s));
                match value {
                    toml::Value::String(v) if secret && !v.is_empty() => *v = "<redacted>".into(),
                    toml::Value::String(v) if key == "url" => *v = klaxon_store::redact(v),
                    toml::Value::Table(t) => scrub(t),
                    toml::Value::Array(list) => list
                        .iter_mut()
                        .filter_map(|e| e.as_table_mut())
                        .for_each(scrub),
                    _ => {}
                }
            }
        }
        let mut table = toml::Table::try_from(self).expect("the configuration serialises");
        scrub(&mut table);
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
         #             `klaxon slack manifest --url https://…` prints the app to install.\n\
         # [matrix]    homeserver_url, user_id (@klaxon:example.org) and access_token (or password)\n\
         #             turn Matrix on; incidents_room: where incidents are announced;\n\
         #             timeline_reaction: the emoji that puts a message on the timeline.\n\
         # [deploy_freeze] severity_at_least: open incidents this severe or worse freeze deploys\n\
         #             (GET /api/v1/deploy-freeze?service=X).\n\
         # [pagerduty] routing_key (an Events API v2 integration key) turns paging on for incidents\n\
         #             of severity_at_least or worse; api_token + from_email for the REST API.\n\
         # [opsgenie]  api_key turns on an alert per incident of severity_at_least or worse.\n\
         # [jira]      url, email, api_token, project: a ticket per incident and per follow-up.\n\
         # [github]    token, repository (owner/name): an issue per incident and per follow-up.\n\
         # [statuspage] api_key, page_id: incidents labelled `label` (customer-facing) go on the\n\
         #             status page; components maps services to component ids.\n\
         # [smtp]      host, port, security (starttls, tls, plain), username, password, from, and\n\
         #             [[smtp.recipients]] to, severity_at_least, services: stakeholder email.\n\
         # [[webhooks]] url, secret, events: a signed JSON message per incident event.\n\
         # Every integration's *_url can point elsewhere (a proxy, a test double). Drills page,\n\
         # email and post to a status page only where a section says drills = true.\n\n{body}"
    )
}
