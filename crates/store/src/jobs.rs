//! Job records of the durable outbox. A job is an external side effect (or a timer) written
//! in the same transaction as the change that caused it, then claimed and run by a runner
//! (`klaxon-jobs`). Its `key` is unique: enqueueing the same key twice is a no-op, and the key
//! is handed to the job's handler so that a rerun after a crash does not repeat the effect.

use std::fmt;

use klaxon_core::{Event, Incident, IncidentRef, Link, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its time, its dependencies or a runner.
    Pending,
    /// Claimed by a runner whose lease has not run out.
    Running,
    Succeeded,
    /// Failed permanently or ran out of attempts: a dead letter, retried only by hand.
    Dead,
    /// A timer that was called off.
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "pending" => JobState::Pending,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "dead" => JobState::Dead,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }
}

/// A job to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// Unique for all time: what makes enqueueing and running idempotent.
    pub key: String,
    /// Which handler runs it (`slack.create_channel`, `reminder`).
    pub kind: String,
    /// Ids and parameters only; the handler reloads current state, so a rerun is harmless.
    pub payload: serde_json::Value,
    pub incident: Option<IncidentRef>,
    /// Not before this time (a timer); now when `None`.
    pub run_at: Option<Timestamp>,
    /// Keys of jobs that must succeed first (post in a channel once the channel exists).
    pub depends_on: Vec<String>,
    /// Keys of jobs that must succeed first if they were ever enqueued: resolve the page
    /// after the page, when there was one.
    #[serde(default)]
    pub depends_on_if_enqueued: Vec<String>,
    pub max_attempts: u32,
}

impl NewJob {
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

    pub fn new(
        key: impl Into<String>,
        kind: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        NewJob {
            key: key.into(),
            kind: kind.into(),
            payload,
            incident: None,
            run_at: None,
            depends_on: Vec::new(),
            depends_on_if_enqueued: Vec::new(),
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// A job about an incident: its payload `{"incident": "INC-n"}` and `fields`.
    pub fn about(
        incident: IncidentRef,
        key: impl Into<String>,
        kind: impl Into<String>,
        fields: serde_json::Value,
    ) -> Self {
        let mut payload = serde_json::json!({ "incident": incident });
        if let (Some(p), Some(extra)) = (payload.as_object_mut(), fields.as_object()) {
            p.extend(extra.clone());
        }
        NewJob::new(key, kind, payload).for_incident(incident)
    }

    pub fn for_incident(mut self, incident: IncidentRef) -> Self {
        self.incident = Some(incident);
        self
    }

    pub fn at(mut self, run_at: Timestamp) -> Self {
        self.run_at = Some(run_at);
        self
    }

    pub fn after(mut self, key: impl Into<String>) -> Self {
        self.depends_on.push(key.into());
        self
    }

    /// After the job with this key, if there is one; at once if it was never enqueued.
    pub fn after_if_enqueued(mut self, key: impl Into<String>) -> Self {
        self.depends_on_if_enqueued.push(key.into());
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), crate::StoreError> {
        let bad = |m: String| Err(crate::StoreError::InvalidJob(m));
        if self.key.is_empty() || self.key.len() > 300 {
            return bad(format!("key `{}` must be 1 to 300 bytes", self.key));
        }
        if self.kind.is_empty() {
            return bad(format!("job `{}` has no kind", self.key));
        }
        if self
            .depends_on
            .iter()
            .chain(&self.depends_on_if_enqueued)
            .any(|d| d == &self.key)
        {
            return bad(format!("job `{}` depends on itself", self.key));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub key: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub incident: Option<IncidentRef>,
    pub state: JobState,
    /// Attempts since it was enqueued or last retried by hand, the running one included.
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_at: Timestamp,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    pub checkpoint: Option<serde_json::Value>,
    pub result: Option<serde_json::Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl Job {
    /// The claim a runner holds while it runs this job.
    pub fn claim(&self) -> Option<Claim> {
        Some(Claim {
            job: self.id,
            runner: self.lease_owner.clone()?,
            attempt: self.attempts,
        })
    }
}

/// A runner's hold on one attempt of a job. A store accepts a write under a claim only while
/// the job is still running under that same runner and attempt: a runner whose lease ran out
/// cannot overwrite the work of the runner that took over (a fencing token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub job: JobId,
    pub runner: String,
    pub attempt: u32,
}

/// The next work a runner asks for as it records a job's success: the jobs that waited only
/// for that job, claimed in the transaction that records it, so that a chain of jobs (create
/// the channel, then post in it, then pin) does not wait a claim of its own at every link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNext {
    pub runner: String,
    pub lease_until: Timestamp,
    /// The most to claim: the slots the finished job frees.
    pub limit: u32,
}

/// How recording an outcome went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    /// False, and nothing written, when the claim no longer held.
    pub held: bool,
    /// The waiting jobs claimed for the runner (see [`ClaimNext`]), at most its limit.
    pub claimed: Vec<Job>,
    /// Whether jobs that waited for this one were released beyond those claimed here, so
    /// that the runner knows to look for them at once.
    pub released_more: bool,
}

/// What goes on the incident's timeline when a job succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub detail: String,
    pub link: Option<Link>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Succeeded {
        result: serde_json::Value,
        timeline: Option<TimelineEntry>,
    },
    /// Try again at `run_at`.
    Retry { error: String, run_at: Timestamp },
    /// Not yet, and not a failure: come back at `run_at` (a vendor's rate limit that the job
    /// has a slot for then). The attempt is not counted.
    Deferred { reason: String, run_at: Timestamp },
    /// Give up: a dead letter, on the timeline as a failed action.
    Dead { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobCount {
    pub kind: String,
    pub state: JobState,
    pub count: u64,
}

/// Which jobs events cause. The playbooks implement it; the store calls it inside the
/// command's transaction and writes what it returns.
pub trait Effects: Send + Sync {
    fn jobs(&self, incident: &Incident, events: &[Event]) -> Vec<NewJob>;
}

/// What people ask of the integrations by hand (`/incident page TEAM`, `/incident statuspage
/// "…"`, the incident page's form): the jobs to write, or why it cannot be done, in words for
/// the person who asked.
pub trait ManualActions: Send + Sync {
    fn page_team(&self, incident: &Incident, team: &str, by: &str) -> Result<Vec<NewJob>, String>;
    fn post_status(
        &self,
        incident: &Incident,
        text: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<Vec<NewJob>, String>;
}

/// Causes nothing.
pub struct NoEffects;

impl Effects for NoEffects {
    fn jobs(&self, _: &Incident, _: &[Event]) -> Vec<NewJob> {
        Vec::new()
    }
}

impl<F> Effects for F
where
    F: Fn(&Incident, &[Event]) -> Vec<NewJob> + Send + Sync,
{
    fn jobs(&self, incident: &Incident, events: &[Event]) -> Vec<NewJob> {
        self(incident, events)
    }
}

/// Several effects at once: the jobs of each, in order.
pub struct AllEffects(pub Vec<std::sync::Arc<dyn Effects>>);

impl Effects for AllEffects {
    fn jobs(&self, incident: &Incident, events: &[Event]) -> Vec<NewJob> {
        self.0
            .iter()
            .flat_map(|e| e.jobs(incident, events))
            .collect()
    }
}
