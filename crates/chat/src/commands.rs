//! The `/incident` grammar, the same on every platform (`/incident` in Slack, `!incident` in
//! Matrix): parsing, and running a command as the person who typed it. In an incident's
//! channel a command acts on that incident; elsewhere only `declare`, `list` and `help` make
//! sense. A mistake gets the usage back.

use std::sync::Arc;
use std::time::Duration;

use klaxon_core::playbook::{render, CustomCommand, Step};
use klaxon_core::{
    Access, Actor, Catalog, Command, Declare, Incident, IncidentRef, NewPerson, Person, PersonId,
    Phase,
};
use klaxon_store::{Effects, IncidentQuery, Request, Store, StoreError};

use crate::{ChatError, ChatPlatform, Message};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Declare(Option<String>),
    List,
    Help,
    Lead(Option<String>),
    Role(String, Option<String>),
    Severity(String),
    Status(String),
    Summary(String),
    Impact(String),
    Note(String),
    Action(String),
    Page(String),
    OnCall(String),
    Statuspage(String),
    Rename(String),
    Invite(Vec<String>),
    Catchup,
    Resolve,
    Close,
}

impl Parsed {
    /// Whether the command changes an incident (or declares one); the others only read.
    pub fn changes(&self) -> bool {
        !matches!(
            self,
            Parsed::List | Parsed::Help | Parsed::Catchup | Parsed::OnCall(_)
        )
    }
}

/// Whether running `text` again could do something twice: true but for the commands that only
/// read, whose answer can simply be worked out again (so their jobs need no checkpoint). Text
/// that does not parse may be a custom command, which may change things.
pub fn may_change(text: &str) -> bool {
    parse(text).map_or(true, |p| p.changes())
}

pub const USAGE: &[(&str, &str)] = &[
    (
        "declare <title>",
        "declare an incident (without a title: open the form)",
    ),
    ("list", "the open incidents"),
    ("lead [@someone|me]", "name the incident lead"),
    ("role <role> [@someone|me]", "give someone a role"),
    ("severity <SEV>", "set the severity"),
    ("status <status>", "move the status"),
    ("summary <text>", "set the summary"),
    ("impact <text>", "describe the customer impact"),
    ("note <text>", "add a note to the timeline"),
    (
        "action <text> [due 3d]",
        "add a follow-up action, with a due date if you like",
    ),
    ("page <team>", "page another team's on-call"),
    ("oncall <team>", "who is on call for a team"),
    ("statuspage <text>", "post a status page update"),
    ("rename <title>", "change the title"),
    ("invite @someone …", "invite people into this channel"),
    ("catchup", "what has happened so far"),
    ("resolve", "resolve the incident"),
    ("close", "close the incident"),
    ("help", "this list"),
];

fn usage_of(sub: &str) -> String {
    USAGE
        .iter()
        .find(|(u, _)| u.split_whitespace().next() == Some(sub))
        .map(|(u, _)| format!("Usage: {u}"))
        .unwrap_or_default()
}

/// Parses the text after the command name.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let text = text.trim();
    let (sub, rest) = match text.split_once(char::is_whitespace) {
        Some((s, r)) => (s.to_lowercase(), r.trim().to_string()),
        None => (text.to_lowercase(), String::new()),
    };
    let need = |what: &str| -> Result<String, String> {
        if rest.is_empty() {
            Err(format!("`{sub}` needs {what}. {}", usage_of(&sub)))
        } else {
            Ok(rest.clone())
        }
    };
    let one_user = |s: &str| -> Option<String> { s.split_whitespace().next().map(String::from) };
    Ok(match sub.as_str() {
        "" | "help" => Parsed::Help,
        "declare" => Parsed::Declare((!rest.is_empty()).then(|| rest.clone())),
        "list" => Parsed::List,
        "lead" => Parsed::Lead(one_user(&rest)),
        "role" => {
            let mut words = rest.split_whitespace();
            let role = words
                .next()
                .ok_or_else(|| format!("`role` needs a role. {}", usage_of("role")))?;
            Parsed::Role(role.to_string(), words.next().map(String::from))
        }
        "severity" | "sev" => Parsed::Severity(need("a severity")?),
        "status" => Parsed::Status(need("a status")?),
        "summary" => Parsed::Summary(need("the summary")?),
        "impact" => Parsed::Impact(need("the impact")?),
        "note" => Parsed::Note(need("the note")?),
        "action" => Parsed::Action(need("what needs doing")?),
        "page" => Parsed::Page(need("a team")?),
        "oncall" | "on-call" => Parsed::OnCall(need("a team")?),
        "statuspage" => Parsed::Statuspage(need("the update")?),
        "rename" => Parsed::Rename(need("the new title")?),
        "invite" => {
            let people: Vec<String> = rest.split_whitespace().map(String::from).collect();
            if people.is_empty() {
                return Err(format!(
                    "`invite` needs someone to invite. {}",
                    usage_of("invite")
                ));
            }
            Parsed::Invite(people)
        }
        "catchup" => Parsed::Catchup,
        "resolve" => Parsed::Resolve,
        "close" => Parsed::Close,
        other => return Err(format!("`{other}` is not an incident command. Try `help`.")),
    })
}

/// A user reference as typed: Slack's escaped mention `<@U123|name>`, a Matrix id, or `me`.
fn user_ref(token: &str, caller: &str) -> String {
    if token.eq_ignore_ascii_case("me") {
        return caller.to_string();
    }
    let t = token.trim_start_matches("<@").trim_end_matches('>');
    t.split('|').next().unwrap_or(t).to_string()
}

/// What the caller sees in reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Only to the person who typed the command.
    Private(Message),
    /// To everyone in the channel: a change everyone there should know about.
    Public(Message),
    /// Open the declare form (the platform has a form for it).
    DeclareForm,
}

/// Runs chat commands against the store.
pub struct Commands {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub effects: Arc<dyn Effects>,
    pub public_url: String,
    /// What a chat user Klaxon has not seen before may do.
    pub default_access: Access,
    /// The operator's own `/incident` commands.
    pub custom: Arc<Vec<CustomCommand>>,
    /// What `page` and `statuspage` ask of the integrations; without it they say that nothing
    /// is set up.
    pub actions: Option<Arc<dyn klaxon_store::ManualActions>>,
    /// Who is on call (`oncall <team>`); without it the command says it is not set up.
    pub on_call: Option<Arc<dyn OnCall>>,
}

/// Who is on call for a team, from the paging service.
#[async_trait::async_trait]
pub trait OnCall: Send + Sync {
    /// Names (and emails) of who is on call now, or what went wrong, for the person asking.
    async fn on_call(&self, team: &str) -> Result<Vec<String>, String>;
}

/// `Fix the alert due 3d`: the words, and the due date's distance when the last two words
/// are `due` and a duration.
fn follow_up_due(text: &str) -> (String, Option<Duration>) {
    if let Some((words, span)) = text.trim().rsplit_once(" due ") {
        if let Ok(d) = klaxon_core::playbook::parse_span(span.trim()) {
            if !words.trim().is_empty() {
                return (words.trim().to_string(), Some(d));
            }
        }
    }
    (text.trim().to_string(), None)
}

fn private(text: impl Into<String>) -> Reply {
    Reply::Private(Message::text(text))
}

impl Commands {
    /// The person behind a chat user, created from the platform's profile on first sight.
    pub async fn person(
        &self,
        platform: &dyn ChatPlatform,
        user: &str,
    ) -> Result<Person, ChatError> {
        let identity = platform.identity(user);
        if let Some(p) = self
            .store
            .person_by_identity(&identity)
            .await
            .map_err(store_err)?
        {
            return Ok(p);
        }
        let profile = platform.user(user).await?;
        let details = NewPerson {
            name: profile.name,
            email: profile.email,
            access: self.default_access,
            ..Default::default()
        };
        self.store
            .person_for_identity(&identity, &details, klaxon_core::now())
            .await
            .map_err(store_err)
    }

    fn request<C>(&self, person: &Person, command: C) -> Request<'_, C> {
        Request {
            command,
            actor: Actor::person(person.id),
            at: klaxon_core::now(),
            catalog: &self.catalog,
            effects: self.effects.as_ref(),
        }
    }

    fn page(&self, r: IncidentRef) -> String {
        format!("{}/incidents/{r}", self.public_url)
    }

    /// Runs `text` typed by `user` in `channel`.
    pub async fn run(
        &self,
        platform: &dyn ChatPlatform,
        user: &str,
        channel: &str,
        text: &str,
    ) -> Result<Reply, ChatError> {
        self.run_with(platform, user, channel, text, None).await
    }

    /// Runs a command that may be run again after a crash: a declaration it makes is made once
    /// for `origin` (the platform's id of the command).
    pub async fn run_once(
        &self,
        platform: &dyn ChatPlatform,
        user: &str,
        channel: &str,
        text: &str,
        origin: &str,
    ) -> Result<Reply, ChatError> {
        self.run_with(platform, user, channel, text, Some(origin))
            .await
    }

    async fn run_with(
        &self,
        platform: &dyn ChatPlatform,
        user: &str,
        channel: &str,
        text: &str,
        origin: Option<&str>,
    ) -> Result<Reply, ChatError> {
        let parsed = match parse(text) {
            Ok(p) => p,
            Err(message) => {
                let (name, args) = text
                    .trim()
                    .split_once(char::is_whitespace)
                    .unwrap_or((text.trim(), ""));
                if let Some(c) = self
                    .custom
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(name))
                {
                    return self
                        .run_custom(platform, user, channel, c, args.trim())
                        .await;
                }
                return Ok(private(message));
            }
        };
        let person = self.person(platform, user).await?;
        let changes = parsed.changes();
        if changes && person.access < Access::Responder {
            return Ok(private(format!("You have {} access in Klaxon: ask an admin for responder access to change incidents.", person.access.as_str())));
        }
        // Only a command about the channel's incident needs to know which incident that is:
        // the busiest commands (`help`, `list`) skip the lookup.
        let incident = match &parsed {
            Parsed::Declare(_) | Parsed::List | Parsed::Help | Parsed::OnCall(_) => None,
            _ => match self
                .store
                .chat_channel_by_id(platform.name(), channel)
                .await
                .map_err(store_err)?
            {
                Some(c) => Some(c.incident),
                None => return Ok(private("Run this in an incident's channel. Here you can `declare`, `list` and ask for `help`.")),
            },
        };
        let outcome = self
            .execute(platform, &person, incident, (user, channel, origin), parsed)
            .await;
        match outcome {
            Ok(reply) => Ok(reply),
            Err(StoreError::Command(e)) => Ok(private(e.to_string())),
            Err(StoreError::NotFound(what)) => Ok(private(format!("{what} does not exist."))),
            Err(StoreError::Conflict(m)) => Ok(private(m)),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn change(
        &self,
        person: &Person,
        r: IncidentRef,
        command: Command,
        said: impl Into<String>,
    ) -> Result<Reply, StoreError> {
        let applied = self.store.execute(r, self.request(person, command)).await?;
        if applied.events.is_empty() {
            return Ok(private("Nothing to change: it is like that already."));
        }
        Ok(Reply::Public(Message::text(format!(
            "{} {}",
            person.name,
            said.into()
        ))))
    }

    /// `at` is where the command came from: the user, the channel, and its origin.
    async fn execute(
        &self,
        platform: &dyn ChatPlatform,
        person: &Person,
        incident: Option<IncidentRef>,
        at: (&str, &str, Option<&str>),
        parsed: Parsed,
    ) -> Result<Reply, StoreError> {
        let (user, channel, origin) = at;
        let r = incident.unwrap_or_else(|| IncidentRef::new(1).expect("1 is a reference"));
        Ok(match parsed {
            Parsed::Help => Reply::Private(self.help()),
            Parsed::Declare(None) => Reply::DeclareForm,
            Parsed::Declare(Some(title)) => {
                let d = Declare { title, lead: Some(person.id), ..Default::default() };
                let applied = match origin {
                    Some(origin) => self.store.declare_once(origin, self.request(person, d)).await?,
                    None => self.store.declare(self.request(person, d)).await?,
                };
                let i = &applied.incident;
                let message = Message {
                    text: format!("Declared {}: {}. Its channel is on its way; you are the lead. {}", i.reference, i.title, self.page(i.reference)),
                    links: vec![("Incident page".into(), self.page(i.reference))],
                    ..Default::default()
                };
                Reply::Private(message)
            }
            Parsed::List => {
                let q = IncidentQuery { open: Some(true), member: Some(person.id), include_private: person.access == Access::Admin, include_drills: true, limit: 20, ..Default::default() };
                let page = self.store.list_incidents(&q).await?;
                if page.incidents.is_empty() {
                    Reply::Private(Message::text("No open incidents."))
                } else {
                    let lines: Vec<String> = page
                        .incidents
                        .iter()
                        .map(|i| format!("{} {} ({}, {}) {}", i.reference, i.title, i.severity.as_deref().unwrap_or("no severity"), i.status, self.page(i.reference)))
                        .collect();
                    Reply::Private(Message::text(lines.join("\n")))
                }
            }
            Parsed::Lead(who) => {
                let target = self.person_of(platform, who.as_deref(), user).await?;
                self.change(person, r, Command::AssignRole { role: klaxon_core::LEAD_ROLE.into(), person: target.id }, format!("made {} the incident lead", target.name)).await?
            }
            Parsed::Role(role, who) => {
                let target = self.person_of(platform, who.as_deref(), user).await?;
                let name = self.catalog.roles.get(&role).map(|d| d.name.to_lowercase()).unwrap_or(role.clone());
                self.change(person, r, Command::AssignRole { role, person: target.id }, format!("made {} the {name}", target.name)).await?
            }
            Parsed::Severity(s) => self.change(person, r, Command::SetSeverity { severity: Some(s.clone()) }, format!("set the severity to {}", s.to_uppercase())).await?,
            Parsed::Status(s) => self.change(person, r, Command::ChangeStatus { status: s.clone() }, format!("moved the status to {s}")).await?,
            Parsed::Summary(t) => self.change(person, r, Command::SetSummary { summary: t }, "updated the summary").await?,
            Parsed::Impact(t) => self.change(person, r, Command::SetImpact { impact: t }, "updated the impact statement").await?,
            Parsed::Note(t) => {
                self.store.execute(r, self.request(person, Command::AddNote { text: t })).await?;
                Reply::Private(Message::text("Added to the timeline."))
            }
            Parsed::Action(t) => {
                let (t, due) = follow_up_due(&t);
                let due_at = due.map(|d| klaxon_core::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
                let said = match due_at {
                    Some(at) => format!("added a follow-up: {t} (due {})", at.format("%Y-%m-%d %H:%M UTC")),
                    None => format!("added a follow-up: {t}"),
                };
                self.change(person, r, Command::AddFollowUp { text: t, owner: None, due_at }, said).await?
            }
            Parsed::Rename(t) => self.change(person, r, Command::SetTitle { title: t.clone() }, format!("renamed the incident to “{t}”")).await?,
            Parsed::Page(team) => match &self.actions {
                None => private(format!(
                    "Paging is not set up in this Klaxon, so {team} was not paged: page them by hand, and say so with `note`."
                )),
                Some(a) => {
                    let i = self.store.incident(r).await?.ok_or_else(|| StoreError::NotFound(r.to_string()))?;
                    match a.page_team(&i, &team, &person.name) {
                        Ok(jobs) => {
                            self.store.enqueue(&jobs, klaxon_core::now()).await?;
                            private(format!("Paging {team}: the timeline will say when it is done."))
                        }
                        Err(why) => private(why),
                    }
                }
            },
            Parsed::OnCall(team) => match &self.on_call {
                None => private("No paging service is set up in this Klaxon ([pagerduty] api_token), so it cannot say who is on call."),
                Some(o) => match o.on_call(&team).await {
                    Ok(people) if people.is_empty() => private(format!("Nobody is on call for {team} right now.")),
                    Ok(people) => private(format!("On call for {team}: {}.", people.join(", "))),
                    Err(why) => private(why),
                },
            },
            Parsed::Statuspage(text) => match &self.actions {
                None => private("No status page is set up in this Klaxon, so nothing was posted."),
                Some(a) => {
                    let i = self.store.incident(r).await?.ok_or_else(|| StoreError::NotFound(r.to_string()))?;
                    // `"…"` or `“…”` around the words are the person's quoting, not the update.
                    let text = text.trim().trim_start_matches(['"', '“']).trim_end_matches(['"', '”']).trim().to_string();
                    match a.post_status(&i, &text, &person.name, klaxon_core::now()) {
                        Ok(jobs) => {
                            self.store.enqueue(&jobs, klaxon_core::now()).await?;
                            private(format!("Posting to the status page: “{text}”. The timeline will say when it is there."))
                        }
                        Err(why) => private(why),
                    }
                }
            },
            Parsed::Invite(people) => {
                let ids: Vec<String> = people.iter().map(|p| user_ref(p, user)).collect();
                platform.invite(channel, &ids).await.map_err(|e| StoreError::Conflict(format!("could not invite: {e}")))?;
                private(format!("Invited {}.", people.join(", ")))
            }
            Parsed::Catchup => {
                let i = self.store.incident(r).await?.ok_or_else(|| StoreError::NotFound(r.to_string()))?;
                Reply::Private(self.catchup(&i).await?)
            }
            Parsed::Resolve => self.to_phase(person, r, Phase::Resolved, "resolved the incident").await?,
            Parsed::Close => self.to_phase(person, r, Phase::Closed, "closed the incident").await?,
        })
    }

    async fn to_phase(
        &self,
        person: &Person,
        r: IncidentRef,
        phase: Phase,
        said: &str,
    ) -> Result<Reply, StoreError> {
        let status = self
            .catalog
            .statuses
            .in_phase(|p| p == phase)
            .into_iter()
            .next();
        match status {
            Some(status) => {
                self.change(person, r, Command::ChangeStatus { status }, said)
                    .await
            }
            None => Ok(private(format!(
                "No status is configured for the {} phase.",
                phase.as_str()
            ))),
        }
    }

    async fn person_of(
        &self,
        platform: &dyn ChatPlatform,
        who: Option<&str>,
        caller: &str,
    ) -> Result<Person, StoreError> {
        let id = user_ref(who.unwrap_or("me"), caller);
        self.person(platform, &id)
            .await
            .map_err(|e| StoreError::Conflict(format!("could not find {id}: {e}")))
    }

    /// The commands, built-in and the operator's.
    pub fn help(&self) -> Message {
        let mut m = help();
        for c in self.custom.iter() {
            let usage = if c.usage.is_empty() {
                c.name.clone()
            } else {
                format!("{} {}", c.name, c.usage)
            };
            m.text.push_str(&format!("\n`{usage}`: {}", c.description));
        }
        m
    }

    async fn run_custom(
        &self,
        platform: &dyn ChatPlatform,
        user: &str,
        channel: &str,
        c: &CustomCommand,
        args: &str,
    ) -> Result<Reply, ChatError> {
        let person = self.person(platform, user).await?;
        if person.access < Access::Responder {
            return Ok(private(format!(
                "You have {} access in Klaxon: ask an admin for responder access.",
                person.access.as_str()
            )));
        }
        let Some(room) = self
            .store
            .chat_channel_by_id(platform.name(), channel)
            .await
            .map_err(store_err)?
        else {
            return Ok(private(format!(
                "Run `{}` in an incident's channel.",
                c.name
            )));
        };
        let i = self
            .store
            .incident(room.incident)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ChatError::Permanent(format!("{} does not exist", room.incident)))?;
        let page = self.page(i.reference);
        let fill = |t: &str| render(t, &i, &page).replace("{args}", args);
        if let Some(url) = &c.url {
            return Ok(plugin::call(c, url, args, &i, &page, &person).await);
        }
        let mut said = Vec::new();
        for step in &c.steps {
            match step {
                Step::Message { text, .. } => said.push(fill(text)),
                Step::Note { text } => {
                    let req = self.request(&person, Command::AddNote { text: fill(text) });
                    self.store
                        .execute(i.reference, req)
                        .await
                        .map_err(store_err)?;
                }
                Step::PageTeam { team } => {
                    let team = fill(team);
                    let Some(actions) = &self.actions else {
                        said.push(format!(
                            "Paging is not set up in this Klaxon, so {team} was not paged."
                        ));
                        continue;
                    };
                    match actions.page_team(&i, &team, &person.name) {
                        Ok(jobs) => {
                            self.store
                                .enqueue(&jobs, klaxon_core::now())
                                .await
                                .map_err(store_err)?;
                            said.push(format!("Paging {team}."));
                        }
                        // Not a team, or a drill: the person who typed it is told, nobody else.
                        Err(why) => return Ok(private(why)),
                    }
                }
                // `check-config` refuses these in commands.
                Step::Remind { .. }
                | Step::Webhook { .. }
                | Step::Page { .. }
                | Step::Ticket {}
                | Step::Invite { .. }
                | Step::OpenChannel { .. }
                | Step::Statuspage { .. }
                | Step::Email { .. } => {}
            }
        }
        Ok(if said.is_empty() {
            private("Done.")
        } else {
            Reply::Public(Message::text(said.join("\n")))
        })
    }

    /// What someone joining late needs: the state, the people, and the latest of the timeline.
    pub async fn catchup(&self, i: &Incident) -> Result<Message, StoreError> {
        let events = self.store.events(i.reference, 0, 10_000).await?;
        let mut ids: Vec<PersonId> = i.roles.values().copied().collect();
        ids.extend(events.iter().filter_map(|e| match e.actor {
            Actor::Person { id } => Some(id),
            _ => None,
        }));
        let people = self.store.persons_by_id(&ids).await?;
        let name_of = |id: PersonId| {
            people
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| format!("person #{id}"))
        };
        let age = klaxon_core::now() - i.declared_at;
        let mut lines = vec![format!(
            "{} {}: {}, {}, open for {}h {}m.",
            i.reference,
            i.title,
            i.severity.as_deref().unwrap_or("no severity"),
            i.status,
            age.num_hours(),
            age.num_minutes() % 60
        )];
        let roles: Vec<String> = i
            .roles
            .iter()
            .map(|(k, p)| {
                format!(
                    "{}: {}",
                    self.catalog
                        .roles
                        .get(k)
                        .map(|r| r.name.as_str())
                        .unwrap_or(k),
                    name_of(*p)
                )
            })
            .collect();
        if !roles.is_empty() {
            lines.push(roles.join(", "));
        }
        if !i.summary.is_empty() {
            lines.push(format!("Summary: {}", i.summary));
        }
        lines.push("Latest:".into());
        let start = events.len().saturating_sub(10);
        for e in &events[start..] {
            lines.push(format!(
                "• {} {}: {}",
                e.at.format("%H:%M"),
                klaxon_core::actor_name(&e.actor, &name_of),
                klaxon_core::describe(e, &self.catalog, &name_of)
            ));
        }
        Ok(Message {
            text: lines.join("\n"),
            links: vec![("Incident page".into(), self.page(i.reference))],
            ..Default::default()
        })
    }
}

pub fn help() -> Message {
    let lines: Vec<String> = USAGE.iter().map(|(u, d)| format!("`{u}`: {d}")).collect();
    Message {
        text: format!("Incident commands:\n{}", lines.join("\n")),
        ..Default::default()
    }
}

fn store_err(e: StoreError) -> ChatError {
    match e {
        StoreError::NotFound(m) | StoreError::Conflict(m) => ChatError::Permanent(m),
        e => ChatError::Retryable {
            message: e.to_string(),
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follow_up_may_end_with_its_due_date() {
        assert_eq!(
            follow_up_due("Alert on checkout errors due 3d"),
            (
                "Alert on checkout errors".to_string(),
                Some(Duration::from_secs(3 * 86_400))
            )
        );
        assert_eq!(
            follow_up_due("Review the due diligence"),
            ("Review the due diligence".to_string(), None)
        );
        assert_eq!(follow_up_due("due 3d"), ("due 3d".to_string(), None));
        assert_eq!(
            follow_up_due("Pay what is due tomorrow"),
            ("Pay what is due tomorrow".to_string(), None)
        );
    }

    #[test]
    fn only_reading_commands_may_be_worked_out_again() {
        for text in ["help", "list", "catchup", "oncall payments"] {
            assert!(!may_change(text), "{text}");
        }
        // Custom commands (text that does not parse) may change things.
        for text in [
            "note checked the logs",
            "resolve",
            "declare x",
            "escalate payments",
        ] {
            assert!(may_change(text), "{text}");
        }
    }

    #[test]
    fn the_grammar() {
        assert_eq!(
            parse("declare Checkout is down"),
            Ok(Parsed::Declare(Some("Checkout is down".into())))
        );
        assert_eq!(parse("declare"), Ok(Parsed::Declare(None)));
        assert_eq!(
            parse("  SEVERITY  sev1 "),
            Ok(Parsed::Severity("sev1".into()))
        );
        assert_eq!(
            parse("role comms <@U123|ada>"),
            Ok(Parsed::Role("comms".into(), Some("<@U123|ada>".into())))
        );
        assert_eq!(parse("lead"), Ok(Parsed::Lead(None)));
        assert_eq!(parse(""), Ok(Parsed::Help));
        assert_eq!(
            parse("note   rolled back  v42"),
            Ok(Parsed::Note("rolled back  v42".into()))
        );
        assert_eq!(
            parse("severity"),
            Err("`severity` needs a severity. Usage: severity <SEV>".into())
        );
        assert_eq!(
            parse("dance"),
            Err("`dance` is not an incident command. Try `help`.".into())
        );
        assert_eq!(user_ref("<@U123|ada>", "U9"), "U123");
        assert_eq!(user_ref("<@U123>", "U9"), "U123");
        assert_eq!(user_ref("me", "U9"), "U9");
        assert!(help().text.contains("`declare <title>`"));
    }
}

/// Commands handed to an operator's HTTP endpoint.
mod plugin {
    use std::time::Duration;

    use hmac::{Hmac, Mac};
    use klaxon_core::playbook::CustomCommand;
    use klaxon_core::{Incident, Person};
    use serde_json::{json, Value};
    use sha2::Sha256;

    use super::{private, Reply};
    use crate::Message;

    /// `v1=` + hex HMAC-SHA256(secret, `{timestamp}.{body}`): what an endpoint checks.
    pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("v1={hex}")
    }

    /// A JSON POST of `body` to `url` with `x-klaxon-timestamp` (`at`, Unix seconds) and, with a
    /// secret, `x-klaxon-signature`: how Klaxon calls operators' endpoints (custom commands and
    /// playbook webhooks). The caller adds any other header and sends it.
    pub fn signed_post(
        url: &str,
        secret: Option<&str>,
        at: chrono::DateTime<chrono::Utc>,
        timeout: Duration,
        body: String,
    ) -> Result<reqwest::RequestBuilder, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        let ts = at.timestamp().to_string();
        let mut req = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-klaxon-timestamp", &ts);
        if let Some(secret) = secret {
            req = req.header("x-klaxon-signature", sign(secret, &ts, body.as_bytes()));
        }
        Ok(req.body(body))
    }

    /// Calls the endpoint; its answer, or what went wrong, for the person who typed it.
    pub async fn call(
        c: &CustomCommand,
        url: &str,
        args: &str,
        i: &Incident,
        page: &str,
        person: &Person,
    ) -> Reply {
        let body = json!({
            "command": c.name,
            "args": args,
            "incident": { "reference": i.reference, "title": i.title, "severity": i.severity, "status": i.status, "url": page },
            "user": { "name": person.name, "email": person.email },
        })
        .to_string();
        let timeout = c.timeout.map(|s| s.0).unwrap_or(Duration::from_secs(10));
        let req = match signed_post(url, Some(&c.secret), chrono::Utc::now(), timeout, body) {
            Ok(req) => req,
            Err(e) => return private(format!("`{}` could not be run: {e}", c.name)),
        };
        let res = req.send().await;
        let res = match res {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return private(format!(
                    "`{}` got no answer from its endpoint within {}s; nothing was done by Klaxon.",
                    c.name,
                    timeout.as_secs()
                ))
            }
            Err(e) => return private(format!("`{}` could not reach its endpoint: {e}", c.name)),
        };
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            return private(format!(
                "`{}`'s endpoint answered HTTP {}: {}",
                c.name,
                status.as_u16(),
                text.chars().take(300).collect::<String>()
            ));
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => {
                let answer = v["text"].as_str().unwrap_or("Done.").to_string();
                if v["public"].as_bool() == Some(true) {
                    Reply::Public(Message::text(answer))
                } else {
                    private(answer)
                }
            }
            Err(_) => private(text),
        }
    }
}

pub use plugin::{sign as sign_plugin_request, signed_post};
