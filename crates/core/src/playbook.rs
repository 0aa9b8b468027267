//! Playbooks: the organisation's procedure as configuration. A playbook has a trigger (an
//! event of the incident), a condition on the incident, and steps (post a message, add to the
//! timeline, remind after a delay and again every so often until a condition holds). This
//! module is the pure part: matching triggers, evaluating conditions, rendering templates,
//! parsing durations, and checking a playbook against the catalog. Running the steps is the
//! job of the `playbooks` effects and handlers, as durable jobs and timers.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Catalog, Event, EventKind, FieldChange, Incident};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Unique; it names the playbook's jobs, so renaming one restarts its reminders.
    pub name: String,
    pub trigger: Trigger,
    /// Checked when the trigger fires.
    #[serde(default = "Condition::always")]
    pub when: Condition,
    pub steps: Vec<Step>,
    /// Run once per incident, however often the trigger fires.
    #[serde(default)]
    pub once: bool,
    /// For keyword triggers: answer at most once in this long in a channel (10m by default).
    #[serde(default)]
    pub cooldown: Option<Span>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Declared,
    /// `severity`, `status`, `type`, `services`, `private`, `title`.
    FieldChanged(String),
    StatusReached(String),
    /// Any status of this phase: `resolved`, whatever the operator's statuses are called.
    PhaseReached(crate::Phase),
    RoleAssigned(String),
    /// A phrase written in the incident's channel (any case, whole words).
    Keyword(String),
    /// A follow-up action is added.
    FollowUpAdded,
    /// A follow-up action with a due date is still open when it comes: its steps are due
    /// then (a reminder's `after` counts from it), and are dropped if it is done by then.
    FollowUpOverdue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Always,
    Open,
    SeveritySet,
    SeverityUnset,
    SeverityAtLeast(String),
    SeverityAtMost(String),
    SeverityIs(String),
    StatusIn(Vec<String>),
    /// The status is in this phase (`triage`, `active`, `mitigated`, `resolved`, `closed`).
    Phase(crate::Phase),
    TypeIs(String),
    ServiceIn(Vec<String>),
    Label {
        key: String,
        value: String,
    },
    Private,
    Drill,
    RoleFilled(String),
    RoleEmpty(String),
    /// Some follow-up action is not done yet.
    FollowUpsOpen,
    /// Some open follow-up action has no owner.
    FollowUpsUnowned,
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The incident's channel.
    Channel,
    /// The shared incidents channel.
    Incidents,
    /// A direct message to the holder of a role.
    Role(String),
    /// A direct message to the next person after the current lead in the configured list of
    /// incident leads (`[incidents] leads`); the incident's channel when there is no list.
    NextLead,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Message {
        to: Target,
        text: String,
    },
    Note {
        text: String,
    },
    /// After `after`, unless `until` holds by then: the message; then again every `every`,
    /// until `until` holds.
    Remind {
        after: Span,
        #[serde(default)]
        every: Option<Span>,
        until: Condition,
        to: Target,
        text: String,
    },
    /// POSTs the incident as JSON to an operator's URL; with a `secret`, the request is signed
    /// like a custom command's (`x-klaxon-signature`). Retried until the endpoint answers 2xx;
    /// every attempt carries the same `idempotency-key`, so the endpoint can drop repeats.
    Webhook {
        url: String,
        #[serde(default)]
        secret: Option<String>,
    },
    /// Pages on-call through the paging integrations ([pagerduty], [opsgenie]), once per
    /// incident. In a drill it is recorded as skipped unless `in_drills`.
    Page {
        #[serde(default)]
        in_drills: bool,
    },
    /// Opens the incident's ticket in the trackers ([jira], [github]), once per incident.
    Ticket {},
    /// Invites people (emails) into the incident's channel on every chat platform.
    Invite {
        people: Vec<String>,
    },
    /// Pages a team listed in `[pagerduty] teams` (a template: `{args}` in a command).
    PageTeam {
        team: String,
    },
    /// Opens the incident's room on a chat platform (`slack`, `matrix`) that does not get one
    /// on declaration (`[incidents] chat_platforms`), and invites everyone in the incident.
    OpenChannel {
        platform: String,
    },
    /// Puts the incident on the status page (once), or with `text` posts an update. Never for
    /// private incidents; in a drill only with `in_drills`.
    Statuspage {
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        in_drills: bool,
    },
    /// Emails `to` through [smtp]; `subject` and `text` are templates. In a drill it is
    /// recorded as skipped unless `in_drills`.
    Email {
        to: Vec<String>,
        subject: String,
        text: String,
        #[serde(default)]
        in_drills: bool,
    },
}

/// A duration as people write it: `90s`, `5m`, `4h`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(pub Duration);

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_span(&s).map(Span)
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        s.to_string()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return write!(f, "0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

pub fn parse_span(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration: write it as 90s, 5m, 4h or 1h30m");
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

impl Condition {
    pub fn always() -> Condition {
        Condition::Always
    }

    pub fn holds(&self, i: &Incident, catalog: &Catalog) -> bool {
        let sev = i.severity.as_deref();
        match self {
            Condition::Always => true,
            Condition::Open => i.is_open(),
            Condition::SeveritySet => sev.is_some(),
            Condition::SeverityUnset => sev.is_none(),
            Condition::SeverityAtLeast(t) => sev.is_some_and(|s| catalog.severities.at_least(s, t)),
            Condition::SeverityAtMost(t) => sev.is_some_and(|s| catalog.severities.at_least(t, s)),
            Condition::SeverityIs(t) => sev.is_some_and(|s| s.eq_ignore_ascii_case(t)),
            Condition::StatusIn(list) => list.iter().any(|s| s.eq_ignore_ascii_case(&i.status)),
            Condition::Phase(p) => i.phase == *p,
            Condition::TypeIs(t) => i
                .incident_type
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(t)),
            Condition::ServiceIn(list) => i.services.iter().any(|s| list.contains(s)),
            Condition::Label { key, value } => i.labels.get(key) == Some(value),
            Condition::Private => i.private,
            Condition::Drill => i.drill,
            Condition::RoleFilled(r) => i.roles.contains_key(r),
            Condition::RoleEmpty(r) => !i.roles.contains_key(r),
            Condition::FollowUpsOpen => i.follow_ups.iter().any(|f| f.done_at.is_none()),
            Condition::FollowUpsUnowned => i
                .follow_ups
                .iter()
                .any(|f| f.done_at.is_none() && f.owner.is_none()),
            Condition::All(list) => list.iter().all(|c| c.holds(i, catalog)),
            Condition::Any(list) => list.iter().any(|c| c.holds(i, catalog)),
            Condition::Not(c) => !c.holds(i, catalog),
        }
    }

    /// Problems with the names the condition uses, as `(what, fix)`.
    fn check(&self, catalog: &Catalog, out: &mut Vec<String>) {
        let sev = |s: &str, out: &mut Vec<String>| {
            if catalog.severities.rank(s).is_none() {
                out.push(format!(
                    "the severity `{s}` does not exist: use one of {}",
                    catalog.severities.keys().join(", ")
                ));
            }
        };
        match self {
            Condition::SeverityAtLeast(s)
            | Condition::SeverityAtMost(s)
            | Condition::SeverityIs(s) => sev(s, out),
            Condition::StatusIn(list) => {
                for s in list.iter().filter(|s| catalog.statuses.get(s).is_none()) {
                    out.push(format!(
                        "the status `{s}` does not exist: use one of {}",
                        catalog.statuses.keys().join(", ")
                    ));
                }
            }
            Condition::RoleFilled(r) | Condition::RoleEmpty(r) => check_role(catalog, r, out),
            Condition::All(list) | Condition::Any(list) => {
                list.iter().for_each(|c| c.check(catalog, out))
            }
            Condition::Not(c) => c.check(catalog, out),
            _ => {}
        }
    }
}

fn check_role(catalog: &Catalog, r: &str, out: &mut Vec<String>) {
    if catalog.roles.get(r).is_none() {
        out.push(format!(
            "the role `{r}` does not exist: use one of {}",
            catalog.roles.keys().join(", ")
        ));
    }
}

impl Trigger {
    /// Whether a chat message fires this trigger: its phrase, as whole words, in any case.
    pub fn mentioned_in(&self, text: &str) -> bool {
        let Trigger::Keyword(phrase) = self else {
            return false;
        };
        let words = |s: &str| -> Vec<String> {
            s.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect()
        };
        let (text, phrase) = (words(text), words(phrase));
        !phrase.is_empty() && text.windows(phrase.len()).any(|w| w == phrase.as_slice())
    }

    /// Whether `event` fires this trigger.
    pub fn fires(&self, event: &Event) -> bool {
        match (self, &event.kind) {
            (Trigger::Declared, EventKind::Declared(_)) => true,
            (Trigger::FieldChanged(f), EventKind::FieldChanged(change)) => {
                field_name(change) == f.as_str()
            }
            (Trigger::FieldChanged(f), EventKind::StatusChanged { .. }) => f == "status",
            (Trigger::StatusReached(s), EventKind::StatusChanged { to, .. }) => {
                to.eq_ignore_ascii_case(s)
            }
            (Trigger::RoleAssigned(r), EventKind::RoleAssigned { role, .. }) => {
                role.eq_ignore_ascii_case(r)
            }
            (Trigger::PhaseReached(p), EventKind::StatusChanged { phase, .. }) => phase == p,
            (Trigger::FollowUpAdded, EventKind::FollowUpAdded { .. }) => true,
            (
                Trigger::FollowUpOverdue,
                EventKind::FollowUpAdded {
                    due_at: Some(_), ..
                },
            ) => true,
            _ => false,
        }
    }
}

fn field_name(change: &FieldChange) -> &'static str {
    match change {
        FieldChange::Title { .. } => "title",
        FieldChange::Summary { .. } => "summary",
        FieldChange::Impact { .. } => "impact",
        FieldChange::Severity { .. } => "severity",
        FieldChange::Type { .. } => "type",
        FieldChange::Services { .. } => "services",
        FieldChange::Label { .. } => "labels",
        FieldChange::Private { .. } => "private",
        FieldChange::ImpactStartedAt { .. } => "impact_started_at",
        FieldChange::ImpactEndedAt { .. } => "impact_ended_at",
    }
}

const FIELDS: &[&str] = &[
    "title",
    "summary",
    "impact",
    "severity",
    "status",
    "type",
    "services",
    "labels",
    "private",
    "impact_started_at",
    "impact_ended_at",
];

impl Playbook {
    /// Every problem with this playbook, each with what to fix.
    pub fn problems(&self, catalog: &Catalog) -> Vec<String> {
        let mut out = Vec::new();
        if self.name.trim().is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            out.push(format!(
                "`{}` is not a playbook name: use letters, digits, `-` and `_`",
                self.name
            ));
        }
        match &self.trigger {
            Trigger::FieldChanged(f) if !FIELDS.contains(&f.as_str()) => out.push(format!(
                "`{f}` is not a field a trigger can watch: use one of {}",
                FIELDS.join(", ")
            )),
            Trigger::StatusReached(s) if catalog.statuses.get(s).is_none() => out.push(format!(
                "the status `{s}` does not exist: use one of {}",
                catalog.statuses.keys().join(", ")
            )),
            Trigger::RoleAssigned(r) => check_role(catalog, r, &mut out),
            Trigger::Keyword(k) if k.trim().is_empty() => {
                out.push("a keyword trigger needs a phrase".into())
            }
            _ => {}
        }
        self.when.check(catalog, &mut out);
        if self.steps.is_empty() {
            out.push("a playbook needs at least one step".into());
        }
        for step in &self.steps {
            match step {
                Step::Remind { until, to, .. } => {
                    until.check(catalog, &mut out);
                    if let Target::Role(r) = to {
                        check_role(catalog, r, &mut out);
                    }
                }
                Step::Message {
                    to: Target::Role(r),
                    ..
                } => check_role(catalog, r, &mut out),
                Step::Webhook { url, .. } => check_url(url, &mut out),
                Step::Invite { people: to } | Step::Email { to, .. } => {
                    if to.is_empty() {
                        out.push("an email or invite step needs one address or more".into());
                    }
                    for a in to {
                        let ok = a.split_once('@').is_some_and(|(l, d)| {
                            !l.is_empty() && d.contains('.') && !a.contains(' ')
                        });
                        if !ok {
                            out.push(format!("`{a}` in an email step is not an address"));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}

fn check_url(url: &str, out: &mut Vec<String>) {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let host = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    if !scheme_ok || host.is_empty() || host.starts_with('/') {
        out.push(format!(
            "`{url}` is not a webhook URL: write it in full, like https://hooks.example.com/klaxon"
        ));
    }
}

/// Fills `{reference}`, `{title}`, `{severity}`, `{status}` and `{url}` in a template.
pub fn render(template: &str, i: &Incident, page_url: &str) -> String {
    template
        .replace("{reference}", &i.reference.to_string())
        .replace("{title}", &i.title)
        .replace("{severity}", i.severity.as_deref().unwrap_or("not set"))
        .replace("{status}", &i.status)
        .replace("{url}", page_url)
}

fn span(s: &str) -> Span {
    Span(parse_span(s).expect("a valid built-in duration"))
}

/// Good practice out of the box: a nudge when no severity is set after 5 minutes, and a
/// reminder to post a status update every 15 minutes for SEV1 and every 30 for SEV2, until
/// the incident is resolved.
pub fn defaults() -> Vec<Playbook> {
    let update = |name: &str, sev: &str, every: &str| {
        Playbook {
        name: name.into(),
        trigger: Trigger::FieldChanged("severity".into()),
        when: Condition::All(vec![Condition::SeverityIs(sev.into()), Condition::Open]),
        once: false,
        cooldown: None,
        steps: vec![Step::Remind {
            after: span(every),
            every: Some(span(every)),
            until: Condition::Any(vec![Condition::Not(Box::new(Condition::Open)), Condition::Not(Box::new(Condition::SeverityIs(sev.into())))]),
            to: Target::Channel,
            text: format!("{{reference}} is {sev}: time for a status update (every {every} at {sev}). Post it with `/incident note` or the status page."),
        }],
    }
    };
    vec![
        Playbook {
            name: "severity-nudge".into(),
            trigger: Trigger::Declared,
            when: Condition::SeverityUnset,
            once: true,
            cooldown: None,
            steps: vec![Step::Remind {
                after: span("5m"),
                every: None,
                until: Condition::SeveritySet,
                to: Target::Channel,
                text: "{reference} still has no severity. Set one with `/incident severity SEV1` (to SEV4), or the incident page: {url}".into(),
            }],
        },
        update("status-updates-sev1", "SEV1", "15m"),
        update("status-updates-sev2", "SEV2", "30m"),
        Playbook {
            name: "name-a-person".into(),
            trigger: Trigger::Keyword("can someone".into()),
            when: Condition::Open,
            once: false,
            cooldown: Some(span("10m")),
            steps: vec![Step::Message {
                to: Target::Channel,
                text: "\u{201c}Can someone…?\u{201d} tends to go unanswered in an incident: name a person instead (\u{201c}@name, can you …?\u{201d}).".into(),
            }],
        },
        Playbook {
            name: "lead-handover".into(),
            trigger: Trigger::RoleAssigned(crate::LEAD_ROLE.into()),
            when: Condition::Open,
            once: false,
            cooldown: None,
            steps: vec![Step::Remind {
                after: span("4h"),
                every: Some(span("2h")),
                until: Condition::Not(Box::new(Condition::Open)),
                to: Target::NextLead,
                text: "{reference}: {lead} has led for a while. Time to hand over? {next_lead} is next on the list of incident leads: {url}".into(),
            }],
        },
        Playbook {
            name: "after-resolve".into(),
            trigger: Trigger::PhaseReached(crate::Phase::Resolved),
            when: Condition::Always,
            once: false,
            cooldown: None,
            steps: vec![Step::Remind {
                after: span("1h"),
                every: Some(span("1d")),
                until: Condition::Any(vec![Condition::Open, Condition::Phase(crate::Phase::Closed)]),
                to: Target::Role(crate::LEAD_ROLE.into()),
                text: "{reference} is resolved. Write the retrospective and give each follow-up an owner, then close it: {url}".into(),
            }],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(parse_span("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_span("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_span("90s"), Ok(Duration::from_secs(90)));
        for bad in ["", "5", "m", "5x", "0m", "-5m"] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
        assert_eq!(Span(Duration::from_secs(5400)).to_string(), "1h30m");
    }

    #[test]
    fn the_defaults_are_valid() {
        for p in defaults() {
            assert_eq!(
                p.problems(&Catalog::default()),
                Vec::<String>::new(),
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn problems_name_what_to_fix() {
        let p = Playbook {
            name: "bad name".into(),
            trigger: Trigger::StatusReached("fixed".into()),
            when: Condition::All(vec![
                Condition::SeverityAtLeast("SEV0".into()),
                Condition::RoleEmpty("chef".into()),
            ]),
            steps: vec![],
            once: false,
            cooldown: None,
        };
        let problems = p.problems(&Catalog::default());
        assert_eq!(problems.len(), 5, "{problems:#?}");
        let hook = |url: &str| Playbook {
            name: "hook".into(),
            trigger: Trigger::Declared,
            when: Condition::Always,
            steps: vec![Step::Webhook {
                url: url.into(),
                secret: None,
            }],
            once: false,
            cooldown: None,
        };
        assert_eq!(
            hook("https://hooks.example.com/x").problems(&Catalog::default()),
            Vec::<String>::new()
        );
        for bad in ["hooks.example.com/x", "ftp://x", "https://", "http:///x"] {
            let problems = hook(bad).problems(&Catalog::default());
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert!(problems[0].contains("is not a webhook URL"), "{problems:?}");
        }
        assert!(problems[1].starts_with("the status `fixed` does not exist"));
        assert!(problems[2].starts_with("the severity `SEV0` does not exist: use one of SEV1"));
        assert!(problems[3].starts_with("the role `chef` does not exist"));
    }

    #[test]
    fn triggers_fire_on_their_events() {
        use crate::{from_millis, Actor, IncidentRef, Phase};
        let ev = |kind| Event {
            incident: IncidentRef::new(1).unwrap(),
            seq: 2,
            at: from_millis(0),
            actor: Actor::system("t"),
            kind,
        };
        let resolved = ev(EventKind::StatusChanged {
            from: "triage".into(),
            to: "fixed".into(),
            phase: Phase::Resolved,
        });
        assert!(Trigger::PhaseReached(Phase::Resolved).fires(&resolved));
        assert!(!Trigger::PhaseReached(Phase::Closed).fires(&resolved));
        assert!(Trigger::StatusReached("FIXED".into()).fires(&resolved));
        assert!(Trigger::FieldChanged("status".into()).fires(&resolved));
        let sev = ev(EventKind::FieldChanged(FieldChange::Severity {
            old: None,
            new: Some("SEV1".into()),
        }));
        assert!(Trigger::FieldChanged("severity".into()).fires(&sev));
        assert!(!Trigger::FieldChanged("title".into()).fires(&sev));
        assert!(!Trigger::Declared.fires(&sev));
        let lead = ev(EventKind::RoleAssigned {
            role: "lead".into(),
            person: crate::PersonId(1),
            previous: None,
        });
        assert!(Trigger::RoleAssigned("Lead".into()).fires(&lead));
        assert!(!Trigger::RoleAssigned("comms".into()).fires(&lead));
        let kw = Trigger::Keyword("can someone".into());
        assert!(kw.mentioned_in("Hey, CAN  someone look at the DB?"));
        assert!(!kw.mentioned_in("scan someone's logs"), "whole words only");
        assert!(!kw.fires(&lead), "keywords fire on messages, not events");
        let added = ev(EventKind::FollowUpAdded {
            id: 1,
            text: "add an alert".into(),
            owner: None,
            due_at: None,
        });
        assert!(Trigger::FollowUpAdded.fires(&added));
        assert!(!Trigger::FollowUpAdded.fires(&lead));
        assert!(
            !Trigger::FollowUpOverdue.fires(&added),
            "no due date, never overdue"
        );
        let due = ev(EventKind::FollowUpAdded {
            id: 2,
            text: "rotate the keys".into(),
            owner: None,
            due_at: Some(crate::from_millis(86_400_000)),
        });
        assert!(Trigger::FollowUpOverdue.fires(&due));
    }
}

/// An `/incident <name>` command the operator defines: its steps run like a playbook's, or
/// the command is handed to an HTTP endpoint of the operator's (a plugin, in any language)
/// whose answer is posted back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomCommand {
    pub name: String,
    /// For `/incident help`.
    pub description: String,
    /// What follows the name, for the help (`<team>`).
    #[serde(default)]
    pub usage: String,
    /// Steps: `message` (to the channel) and `note`; `{args}` is what followed the name.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Or an endpoint that gets the command as signed JSON and answers with `{"text": …}`.
    #[serde(default)]
    pub url: Option<String>,
    /// The key the request to `url` is signed with (HMAC-SHA256).
    #[serde(default)]
    pub secret: String,
    /// How long the endpoint may take (10s by default).
    #[serde(default)]
    pub timeout: Option<Span>,
}

/// The built-in subcommands, which a custom command may not take the name of.
pub const BUILT_IN_COMMANDS: &[&str] = &[
    "declare",
    "list",
    "help",
    "lead",
    "role",
    "severity",
    "sev",
    "status",
    "summary",
    "impact",
    "note",
    "action",
    "page",
    "statuspage",
    "rename",
    "invite",
    "catchup",
    "resolve",
    "close",
];

impl CustomCommand {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            out.push(format!(
                "`{}` is not a command name: use lowercase letters, digits and `-`",
                self.name
            ));
        }
        if BUILT_IN_COMMANDS.contains(&self.name.as_str()) {
            out.push(format!(
                "`{}` is a built-in command: choose another name",
                self.name
            ));
        }
        match (&self.url, self.steps.is_empty()) {
            (Some(_), false) => out.push("give a command either steps or a url, not both".into()),
            (None, true) => out.push("a command needs steps or a url".into()),
            (Some(url), true) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    out.push(format!("`{url}` is not a URL: it starts with https://"));
                }
                if self.secret.is_empty() {
                    out.push(
                        "a command with a url needs a secret to sign its requests with".into(),
                    );
                }
            }
            (None, false) => {}
        }
        for step in &self.steps {
            match step {
                Step::Message { to: Target::Channel, .. } | Step::Note { .. } | Step::PageTeam { .. } => {}
                _ => out.push("a command's steps are `message` to the channel, `note` and `page_team`; use a playbook for the rest".into()),
            }
        }
        out
    }
}
