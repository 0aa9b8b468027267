use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use klaxon_store::{Claim, Job, Store, StoreError, TimelineEntry};

use crate::Clock;

/// Runs the jobs of one kind.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError>;
}

/// A job's successful end: what to keep as its result, and what to show on its incident's
/// timeline (nothing, for a reminder that only posted a nudge).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Done {
    pub result: serde_json::Value,
    pub timeline: Option<TimelineEntry>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt: a timeout, a 5xx, a 429. `retry_after` is the vendor's word on
    /// when to come back.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Another attempt would fail the same way (a 4xx, a bad credential): dead-letter it now.
    #[error("{0}")]
    Permanent(String),
    /// Not yet, and not a failure: run again after `wait` (the job holds a vendor's rate-limit
    /// slot then). Does not count as an attempt.
    #[error("{message}")]
    Deferred { message: String, wait: Duration },
}

impl JobError {
    pub fn retry(message: impl Into<String>) -> Self {
        JobError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        JobError::Permanent(message.into())
    }
}

/// What a handler gets: the job, and a way to save progress under the runner's claim.
pub struct JobContext {
    pub job: Job,
    pub(crate) claim: Claim,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl JobContext {
    /// Stable across every attempt of this job: pass it to the vendor as the idempotency key
    /// (`dedup_key`, `Idempotency-Key`) where the vendor has one.
    pub fn idempotency_key(&self) -> &str {
        &self.job.key
    }

    pub fn payload(&self) -> &serde_json::Value {
        &self.job.payload
    }

    /// What an earlier attempt saved, if it got that far.
    pub fn checkpoint(&self) -> Option<&serde_json::Value> {
        self.job.checkpoint.as_ref()
    }

    /// Saves progress, so that a rerun after a crash resumes after the last completed step.
    /// An error when the claim was lost (another runner has the job now): stop at once.
    pub async fn save_checkpoint(&self, value: serde_json::Value) -> Result<(), JobError> {
        match self
            .store
            .save_checkpoint(&self.claim, &value, self.clock.now())
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::retry(
                "the lease on this job was lost to another runner",
            )),
            Err(e) => Err(store_error(e)),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> klaxon_core::Timestamp {
        self.clock.now()
    }
}

/// A database error inside a handler is worth another attempt.
pub fn store_error(e: StoreError) -> JobError {
    match e {
        StoreError::NotFound(m) => JobError::Permanent(format!("{m} does not exist")),
        e => JobError::retry(e.to_string()),
    }
}

/// A shared handler is a handler: one value can serve several kinds.
#[async_trait]
impl<H: Handler + ?Sized> Handler for Arc<H> {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        (**self).run(ctx).await
    }
}
