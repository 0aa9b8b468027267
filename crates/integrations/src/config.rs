//! The integrations' configuration sections. Each is off while its credential is empty, and
//! each has its vendor's base URL as a setting, so that tests (and proxies) can stand in.

use std::collections::BTreeMap;

use klaxon_core::Catalog;
use serde::{Deserialize, Serialize};

/// `[pagerduty]`: page through the Events API v2; ask the REST API who is on call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagerDutyConfig {
    /// The Events API v2 base URL.
    pub events_url: String,
    /// The REST API base URL.
    pub api_url: String,
    /// The integration key of an Events API v2 integration; paging is off while it is empty.
    pub routing_key: String,
    /// A REST API token, for who is on call and for adding responders.
    pub api_token: String,
    /// The email of a PagerDuty user, sent as `From` on REST writes.
    pub from_email: String,
    /// Incidents this severe or worse page, on declaration or when they escalate.
    pub severity_at_least: String,
    /// Page for drills too (off: a drill's page is recorded as skipped).
    pub drills: bool,
    /// Teams `/incident page TEAM` can reach: `teams.payments = { escalation_policy = "P…" }`
    /// adds that escalation policy as responders to the incident's PagerDuty incident (REST
    /// API); `routing_key = "…"` pages the team's own service through the Events API.
    pub teams: BTreeMap<String, Team>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Team {
    pub escalation_policy: String,
    pub routing_key: String,
}

impl Default for PagerDutyConfig {
    fn default() -> Self {
        PagerDutyConfig {
            events_url: "https://events.pagerduty.com/v2".into(),
            api_url: "https://api.pagerduty.com".into(),
            routing_key: String::new(),
            api_token: String::new(),
            from_email: String::new(),
            severity_at_least: "SEV2".into(),
            drills: false,
            teams: BTreeMap::new(),
        }
    }
}

/// `[opsgenie]`: an alert per incident (alias = the reference), notes, close on resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsgenieConfig {
    /// `https://api.opsgenie.com`, or `https://api.eu.opsgenie.com` for EU accounts.
    pub api_url: String,
    /// An API integration's key; Opsgenie is off while it is empty.
    pub api_key: String,
    pub severity_at_least: String,
    pub drills: bool,
}

impl Default for OpsgenieConfig {
    fn default() -> Self {
        OpsgenieConfig {
            api_url: "https://api.opsgenie.com".into(),
            api_key: String::new(),
            severity_at_least: "SEV2".into(),
            drills: false,
        }
    }
}

/// `[jira]`: a ticket per incident and per follow-up action (Jira Cloud REST v3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JiraConfig {
    /// The site, such as `https://example.atlassian.net`; Jira is off while it is empty.
    pub url: String,
    /// The account the API token belongs to.
    pub email: String,
    pub api_token: String,
    /// The project key tickets are opened in (`OPS`).
    pub project: String,
    pub issue_type: String,
    pub follow_up_issue_type: String,
    /// The transition that closes a ticket when its incident (or follow-up) is resolved.
    pub done_transition: String,
    /// Only incidents this severe or worse get a ticket; empty: every incident.
    pub severity_at_least: String,
}

impl Default for JiraConfig {
    fn default() -> Self {
        JiraConfig {
            url: String::new(),
            email: String::new(),
            api_token: String::new(),
            project: String::new(),
            issue_type: "Task".into(),
            follow_up_issue_type: "Task".into(),
            done_transition: "Done".into(),
            severity_at_least: String::new(),
        }
    }
}

/// `[github]`: an issue per incident and per follow-up action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GithubConfig {
    pub api_url: String,
    /// A token allowed to write issues; GitHub is off while it is empty.
    pub token: String,
    /// `owner/name`.
    pub repository: String,
    pub labels: Vec<String>,
    pub severity_at_least: String,
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            api_url: "https://api.github.com".into(),
            token: String::new(),
            repository: String::new(),
            labels: vec!["incident".into()],
            severity_at_least: String::new(),
        }
    }
}

/// `[statuspage]`: a public incident for customer-facing incidents (never private ones or
/// drills), updated as the status changes, resolved on resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatuspageConfig {
    pub api_url: String,
    /// Statuspage is off while it is empty.
    pub api_key: String,
    pub page_id: String,
    /// The label that marks an incident customer-facing.
    pub label: String,
    /// Service name → component id.
    pub components: BTreeMap<String, String>,
    /// Severity → impact (none, minor, major, critical); by default the most severe level is
    /// critical, the next major, the rest minor.
    pub impact: BTreeMap<String, String>,
}

impl Default for StatuspageConfig {
    fn default() -> Self {
        StatuspageConfig {
            api_url: "https://api.statuspage.io/v1".into(),
            api_key: String::new(),
            page_id: String::new(),
            label: "customer-facing".into(),
            components: BTreeMap::new(),
            impact: BTreeMap::new(),
        }
    }
}

/// `[smtp]`: stakeholder email on declaration, severity change and resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The mail server; email is off while it is empty.
    pub host: String,
    pub port: u16,
    /// `starttls` (port 587), `tls` (port 465) or `plain` (no encryption: only on a trusted
    /// network).
    pub security: String,
    pub username: String,
    pub password: String,
    /// Certificates (PEM) to trust besides the public ones, for a mail server with a
    /// certificate from the organisation's own CA; usually `tls_ca_file = "/path/ca.pem"`.
    pub tls_ca: String,
    /// `Klaxon <klaxon@example.com>`.
    pub from: String,
    pub timeout_seconds: u64,
    /// Email about drills too.
    pub drills: bool,
    /// Who hears about what: `[[smtp.recipients]] to = [...], severity_at_least, services`.
    pub recipients: Vec<Recipients>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            security: "starttls".into(),
            username: String::new(),
            password: String::new(),
            tls_ca: String::new(),
            from: String::new(),
            timeout_seconds: 30,
            drills: false,
            recipients: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipients {
    pub to: Vec<String>,
    /// Only incidents this severe or worse; empty: any severity, unset included.
    pub severity_at_least: String,
    /// Only incidents touching one of these services; empty: any.
    pub services: Vec<String>,
}

/// `[[webhooks]]`: a signed JSON message for each incident event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub url: String,
    /// `whsec_…` (base64 after the prefix, as Standard Webhooks has it) or any string.
    pub secret: String,
    /// Event types to send (`declared`, `status_changed`, …); empty: all.
    pub events: Vec<String>,
}

/// Every integration's section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub pagerduty: PagerDutyConfig,
    pub opsgenie: OpsgenieConfig,
    pub jira: JiraConfig,
    pub github: GithubConfig,
    pub statuspage: StatuspageConfig,
    pub smtp: SmtpConfig,
    pub webhooks: Vec<WebhookConfig>,
}

/// The event types a webhook may ask for.
pub const EVENT_TYPES: &[&str] = &[
    "declared",
    "field_changed",
    "status_changed",
    "role_assigned",
    "role_released",
    "note_added",
    "chat_message_captured",
    "chat_message_removed",
    "follow_up_added",
    "follow_up_done",
];

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

impl PagerDutyConfig {
    pub fn enabled(&self) -> bool {
        !self.routing_key.is_empty()
    }
}

impl OpsgenieConfig {
    pub fn enabled(&self) -> bool {
        !self.api_key.is_empty()
    }
}

impl JiraConfig {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

impl GithubConfig {
    pub fn enabled(&self) -> bool {
        !self.token.is_empty()
    }
}

impl StatuspageConfig {
    pub fn enabled(&self) -> bool {
        !self.api_key.is_empty()
    }
}

impl SmtpConfig {
    pub fn enabled(&self) -> bool {
        !self.host.is_empty()
    }
}

impl Settings {
    /// Every problem, as (key, what is wrong and how to fix it).
    pub fn problems(&self, catalog: &Catalog) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| out.push((key.to_string(), message));
        let severity = |key: &str, value: &str, bad: &mut dyn FnMut(&str, String)| {
            if !value.is_empty() && catalog.severities.rank(value).is_none() {
                bad(
                    key,
                    format!(
                        "`{value}` is not a severity: use one of {}",
                        catalog.severities.keys().join(", ")
                    ),
                );
            }
        };
        let url = |key: &str, value: &str, example: &str, bad: &mut dyn FnMut(&str, String)| {
            if !is_url(value) {
                bad(key, format!("`{value}` must be a URL, such as {example}"));
            }
        };
        let pd = &self.pagerduty;
        url(
            "pagerduty.events_url",
            &pd.events_url,
            "https://events.pagerduty.com/v2",
            &mut bad,
        );
        url(
            "pagerduty.api_url",
            &pd.api_url,
            "https://api.pagerduty.com",
            &mut bad,
        );
        if pd.enabled() {
            severity(
                "pagerduty.severity_at_least",
                &pd.severity_at_least,
                &mut bad,
            );
        }
        if !pd.api_token.is_empty() && !pd.from_email.contains('@') {
            bad("pagerduty.from_email", "is needed with an API token: PagerDuty's REST API wants the email of a PagerDuty user as `From` on writes".into());
        }
        for (name, t) in &pd.teams {
            let key = format!("pagerduty.teams.{name}");
            if t.escalation_policy.is_empty() && t.routing_key.is_empty() {
                bad(&key, "names neither an escalation_policy (its responders join the incident's PagerDuty incident) nor a routing_key (its own service is paged): set one".into());
            }
            if !t.escalation_policy.is_empty()
                && (pd.api_token.is_empty() || pd.from_email.is_empty())
            {
                bad(&key, "adds responders through PagerDuty's REST API, which needs [pagerduty] api_token and from_email".into());
            }
        }
        let og = &self.opsgenie;
        url(
            "opsgenie.api_url",
            &og.api_url,
            "https://api.opsgenie.com",
            &mut bad,
        );
        if og.enabled() {
            severity(
                "opsgenie.severity_at_least",
                &og.severity_at_least,
                &mut bad,
            );
        }
        let j = &self.jira;
        if j.enabled() {
            url(
                "jira.url",
                &j.url,
                "https://example.atlassian.net",
                &mut bad,
            );
            for (key, value, what) in [
                (
                    "jira.email",
                    &j.email,
                    "the email of the account the API token belongs to",
                ),
                (
                    "jira.api_token",
                    &j.api_token,
                    "an API token from https://id.atlassian.com/manage-profile/security/api-tokens",
                ),
                (
                    "jira.project",
                    &j.project,
                    "the key of the project tickets go to, such as OPS",
                ),
                (
                    "jira.issue_type",
                    &j.issue_type,
                    "an issue type of that project, such as Task",
                ),
            ] {
                if value.is_empty() {
                    bad(key, format!("is needed with [jira] url: set it to {what}"));
                }
            }
        }
        severity("jira.severity_at_least", &j.severity_at_least, &mut bad);
        let g = &self.github;
        url(
            "github.api_url",
            &g.api_url,
            "https://api.github.com",
            &mut bad,
        );
        if g.enabled() && g.repository.split('/').filter(|p| !p.is_empty()).count() != 2 {
            bad(
                "github.repository",
                format!(
                    "`{}` is not a repository: write it as owner/name",
                    g.repository
                ),
            );
        }
        severity("github.severity_at_least", &g.severity_at_least, &mut bad);
        let s = &self.statuspage;
        url(
            "statuspage.api_url",
            &s.api_url,
            "https://api.statuspage.io/v1",
            &mut bad,
        );
        if s.enabled() && s.page_id.is_empty() {
            bad(
                "statuspage.page_id",
                "is needed with an API key: copy the page id from the API info page of Statuspage"
                    .into(),
            );
        }
        for (sev, impact) in &s.impact {
            severity(&format!("statuspage.impact.{sev}"), sev, &mut bad);
            if !["none", "minor", "major", "critical"].contains(&impact.as_str()) {
                bad(
                    &format!("statuspage.impact.{sev}"),
                    format!("`{impact}` is not an impact: use none, minor, major or critical"),
                );
            }
        }
        let m = &self.smtp;
        if m.enabled() {
            if !["starttls", "tls", "plain"].contains(&m.security.as_str()) {
                bad(
                    "smtp.security",
                    format!(
                        "`{}` is not a choice: use starttls (port 587), tls (port 465) or plain",
                        m.security
                    ),
                );
            }
            if crate::email::address(&m.from).is_none() {
                bad("smtp.from", format!("`{}` is not an address: write it as klaxon@example.com or Klaxon <klaxon@example.com>", m.from));
            }
            if m.recipients.is_empty() {
                bad("smtp.recipients", "is empty, so no email would be sent: add [[smtp.recipients]] with to = [\"…\"]".into());
            }
            if let Err(e) = crate::smtp::extra_roots(&m.tls_ca) {
                bad("smtp.tls_ca", e);
            }
            if !m.username.is_empty() && m.password.is_empty() {
                bad(
                    "smtp.password",
                    "is needed with a username (or set password_file)".into(),
                );
            }
        }
        if m.timeout_seconds == 0 {
            bad("smtp.timeout_seconds", "must be at least 1".into());
        }
        for (n, r) in m.recipients.iter().enumerate() {
            let key = format!("smtp.recipients[{n}]");
            severity(
                &format!("{key}.severity_at_least"),
                &r.severity_at_least,
                &mut bad,
            );
            if r.to.is_empty() {
                bad(
                    &format!("{key}.to"),
                    "is empty: list one address or more".into(),
                );
            }
            for a in &r.to {
                if crate::email::address(a).is_none() {
                    bad(
                        &format!("{key}.to"),
                        format!("`{a}` is not an email address"),
                    );
                }
            }
        }
        for (n, w) in self.webhooks.iter().enumerate() {
            let key = format!("webhooks[{n}]");
            url(
                &format!("{key}.url"),
                &w.url,
                "https://hooks.example.com/klaxon",
                &mut bad,
            );
            for e in &w.events {
                if !EVENT_TYPES.contains(&e.as_str()) {
                    bad(
                        &format!("{key}.events"),
                        format!("`{e}` is not an event type: use {}", EVENT_TYPES.join(", ")),
                    );
                }
            }
            if w.secret.is_empty() {
                bad(&format!("{key}.secret"), "is empty: set a secret (whsec_ and base64, or any long random string) so the receiver can check the signature".into());
            } else if let Some(b) = w.secret.strip_prefix("whsec_") {
                use base64::Engine;
                if base64::engine::general_purpose::STANDARD.decode(b).is_err() {
                    bad(
                        &format!("{key}.secret"),
                        "starts with whsec_ but the rest is not base64".into(),
                    );
                }
            }
        }
        out
    }

    /// The integrations that are on, by name, for the settings page and the logs.
    pub fn enabled(&self) -> Vec<&'static str> {
        let mut on = Vec::new();
        for (name, yes) in [
            ("pagerduty", self.pagerduty.enabled()),
            ("opsgenie", self.opsgenie.enabled()),
            ("jira", self.jira.enabled()),
            ("github", self.github.enabled()),
            ("statuspage", self.statuspage.enabled()),
            ("smtp", self.smtp.enabled()),
            ("webhooks", !self.webhooks.is_empty()),
        ] {
            if yes {
                on.push(name);
            }
        }
        on
    }
}
