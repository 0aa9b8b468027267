//! Klaxon's storage behind one trait, [`Store`], with two implementations: SQLite (embedded,
//! the default, one replica) and PostgreSQL (several replicas). Each owns its migrations,
//! applied at start.
//!
//! The store is where the domain's guarantees become durable: a command's events, the
//! incident projection they produce and the jobs they cause are written in one transaction
//! ([`flow`] holds that sequence once for both databases), so that an external side effect is
//! never lost and never happens without the change that caused it.

mod auth;
mod auth_impl;
mod common;
mod error;
mod flow;
mod jobs;
mod migrate;
mod postgres;
mod query;
mod rows;
mod shared;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use klaxon_core::{
    Actor, Catalog, ChatIdentity, Command, Declare, Event, Incident, IncidentRef, NewPerson,
    Person, PersonId, Timestamp,
};

pub use auth::{ApiToken, AuthStore, Session};
pub use error::StoreError;
pub use jobs::{
    AllEffects, Claim, ClaimNext, Effects, Finished, Job, JobCount, JobId, JobOutcome, JobState,
    ManualActions, NewJob, NoEffects, TimelineEntry,
};
pub use postgres::PgStore;
pub use query::{IncidentPage, IncidentQuery};
pub use sqlite::SqliteStore;

/// Timeline events of an incident from this seq on are not indexed for search (SQLite keeps the
/// seq in the low 20 bits of a text row's id).
pub(crate) const TEXT_SEQ_LIMIT: u64 = 1 << 20;

/// The longest a read or a write waits for a database connection before it fails as
/// [`StoreError::Busy`], on either database.
pub(crate) const CONNECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// An incident's room on a chat platform.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatChannel {
    pub platform: String,
    pub channel_id: String,
    pub incident: IncidentRef,
    pub name: String,
    pub url: Option<String>,
    /// The platform's id of the pinned headline message.
    pub headline_id: Option<String>,
    /// A digest of the headline as last rendered.
    pub headline_digest: Option<String>,
    /// The topic last set.
    pub topic: Option<String>,
}

/// A command with who gave it, when, and what it is validated against.
pub struct Request<'a, C> {
    pub command: C,
    pub actor: Actor,
    pub at: Timestamp,
    pub catalog: &'a Catalog,
    /// Which jobs the resulting events cause; written in the same transaction.
    pub effects: &'a dyn Effects,
}

/// What a command did: the incident after it, the events it wrote (empty when it changed
/// nothing) and the jobs those events caused.
#[derive(Debug, Clone)]
pub struct Applied {
    pub incident: Incident,
    pub events: Vec<Event>,
    pub jobs: Vec<JobId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[async_trait]
pub trait Store: AuthStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Ok when the database answers and every migration is applied.
    async fn ready(&self) -> Result<(), StoreError>;

    // ---- incidents ----
    async fn declare(&self, req: Request<'_, Declare>) -> Result<Applied, StoreError>;
    /// Declares once per `origin` (a chat command's id, an alert's fingerprint): when a
    /// declaration with this origin was made already, its incident is returned, with no events.
    async fn declare_once(
        &self,
        origin: &str,
        req: Request<'_, Declare>,
    ) -> Result<Applied, StoreError>;
    async fn execute(
        &self,
        incident: IncidentRef,
        req: Request<'_, Command>,
    ) -> Result<Applied, StoreError>;
    /// Several commands on one incident, all or nothing (an edit form that changes several
    /// fields).
    async fn execute_all(
        &self,
        incident: IncidentRef,
        req: Request<'_, Vec<Command>>,
    ) -> Result<Applied, StoreError>;
    async fn incident(&self, incident: IncidentRef) -> Result<Option<Incident>, StoreError>;
    /// Open incidents (drills left out) by severity, `None` for those without one.
    async fn open_by_severity(&self) -> Result<Vec<(Option<String>, u64)>, StoreError>;
    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn events(
        &self,
        incident: IncidentRef,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;
    async fn list_incidents(&self, query: &IncidentQuery) -> Result<IncidentPage, StoreError>;

    // ---- people ----
    /// Creates a person; a conflict when the email or a chat identity is taken.
    async fn create_person(&self, person: &NewPerson, at: Timestamp) -> Result<Person, StoreError>;
    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError>;
    async fn person_by_identity(
        &self,
        identity: &ChatIdentity,
    ) -> Result<Option<Person>, StoreError>;
    /// Gives a person an identity they did not have yet; false when they have one already.
    async fn link_identity(
        &self,
        person: PersonId,
        identity: &ChatIdentity,
    ) -> Result<bool, StoreError>;

    /// The person with this identity, created from `details` the first time it is seen, or
    /// linked to the person who already has `details.email`, so that one human is one person
    /// across the web UI and every chat platform. Safe under concurrent calls: they all get
    /// the same person.
    async fn person_for_identity(
        &self,
        identity: &ChatIdentity,
        details: &NewPerson,
        at: Timestamp,
    ) -> Result<Person, StoreError> {
        for _ in 0..3 {
            if let Some(p) = self.person_by_identity(identity).await? {
                return Ok(p);
            }
            if let Some(email) = details
                .email
                .as_ref()
                .filter(|_| !matches!(identity, ChatIdentity::Email(_)))
            {
                if let Some(p) = self
                    .person_by_identity(&ChatIdentity::Email(email.clone()))
                    .await?
                {
                    if self.link_identity(p.id, identity).await? {
                        return self
                            .person(p.id)
                            .await?
                            .ok_or_else(|| StoreError::NotFound(format!("person {}", p.id)));
                    }
                }
            }
            let mut new = details.clone();
            match identity {
                ChatIdentity::Slack(id) => new.slack_user_id = Some(id.clone()),
                ChatIdentity::Matrix(id) => new.matrix_id = Some(id.clone()),
                ChatIdentity::Email(e) => new.email = Some(e.clone()),
            }
            match self.create_person(&new, at).await {
                // Someone else created them (or took the email) meanwhile: look again.
                Err(StoreError::Conflict(_)) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict(format!(
            "could not settle who {identity:?} is: their email belongs to a person with another identity"
        )))
    }

    // ---- jobs: the durable outbox ----
    /// Adds jobs outside any incident command. A job whose key exists already is left as it
    /// is and its id returned, so enqueueing twice is harmless.
    async fn enqueue(&self, jobs: &[NewJob], at: Timestamp) -> Result<Vec<JobId>, StoreError>;
    /// Claims up to `limit` jobs that are due, whose dependencies have all succeeded, or
    /// whose runner's lease has run out. Each claim counts as an attempt.
    async fn claim_jobs(
        &self,
        runner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError>;
    /// Extends the leases of every job this runner holds; returns how many.
    async fn extend_leases(
        &self,
        runner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Saves progress of a multi-step job, so that a rerun after a crash resumes rather than
    /// repeats. False when the claim is no longer held.
    async fn save_checkpoint(
        &self,
        claim: &Claim,
        checkpoint: &serde_json::Value,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Records how an attempt ended, and on success or final failure puts the action on its
    /// incident's timeline in the same transaction. False, and nothing written, when the
    /// claim is no longer held (the lease ran out and another runner took the job).
    async fn finish_job(
        &self,
        claim: &Claim,
        outcome: &JobOutcome,
        now: Timestamp,
        effects: Arc<dyn Effects>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .finish_job_claiming(claim, outcome, now, effects, None)
            .await?
            .held)
    }
    /// As [`Store::finish_job`]; on a success, with `next`, also claims (in the same
    /// transaction) up to `next.limit` of the jobs that waited for this one and may run now.
    async fn finish_job_claiming(
        &self,
        claim: &Claim,
        outcome: &JobOutcome,
        now: Timestamp,
        effects: Arc<dyn Effects>,
        next: Option<&ClaimNext>,
    ) -> Result<Finished, StoreError>;
    /// Puts a dead (or cancelled) job back in the queue by hand, with a fresh set of attempts.
    async fn retry_job(&self, id: JobId, now: Timestamp) -> Result<Job, StoreError>;
    /// Cancels a pending job (a timer that is no longer wanted). False when there is no
    /// pending job with that key.
    async fn cancel_job(&self, key: &str, now: Timestamp) -> Result<bool, StoreError>;
    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    async fn job_by_key(&self, key: &str) -> Result<Option<Job>, StoreError>;
    async fn incident_jobs(&self, incident: IncidentRef) -> Result<Vec<Job>, StoreError>;
    /// When the earliest pending job is due, so an idle runner knows how long it may sleep.
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;
    /// Jobs by kind and state, for metrics.
    async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError>;

    // ---- chat channels ----
    /// Records an incident's channel on a platform. Recording the same channel again is
    /// harmless; a second, different channel for the same incident and platform is a conflict.
    async fn link_chat_channel(&self, channel: &ChatChannel) -> Result<(), StoreError>;
    async fn chat_channel(
        &self,
        incident: IncidentRef,
        platform: &str,
    ) -> Result<Option<ChatChannel>, StoreError>;
    async fn chat_channel_by_id(
        &self,
        platform: &str,
        channel_id: &str,
    ) -> Result<Option<ChatChannel>, StoreError>;
    /// Where the reader `name` of an outside stream got to.
    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError>;
    async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError>;
    /// Notes the posted headline's id with what the room shows once it is posted (the
    /// headline's digest and the topic), in one write.
    async fn set_headline(
        &self,
        incident: IncidentRef,
        platform: &str,
        headline_id: &str,
        headline_digest: &str,
        topic: &str,
    ) -> Result<(), StoreError>;
    /// Notes what the room now shows: the headline's digest and the topic; `None` leaves
    /// either as it is.
    async fn set_shown(
        &self,
        incident: IncidentRef,
        platform: &str,
        headline_digest: Option<&str>,
        topic: Option<&str>,
    ) -> Result<(), StoreError>;
}

/// Opens the store a URL names and applies its migrations: `sqlite://PATH` (the file is
/// created with its directory) or `postgres://…`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, None).await?))
    } else {
        Err(StoreError::Config(format!(
            "`{}` is not a database URL Klaxon knows: use sqlite://PATH or postgres://USER@HOST/DB",
            redact(url)
        )))
    }
}

/// A database URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://k:secret@db/x"),
            "postgres://k:***@db/x"
        );
        assert_eq!(super::redact("postgres://k@db/x"), "postgres://k@db/x");
        assert_eq!(
            super::redact("sqlite://./data/k.db"),
            "sqlite://./data/k.db"
        );
    }
}
