//! Small pieces both backends use the same way.

use klaxon_core::{to_millis, ChatIdentity, Timestamp};

use crate::{Job, JobCount, JobId, JobOutcome, JobState, StoreError};

/// The `persons` column that holds an identity. The names come from this match only, so they
/// are safe to put into SQL text.
pub(crate) fn column(identity: &ChatIdentity) -> (&'static str, &str) {
    match identity {
        ChatIdentity::Slack(id) => ("slack_user_id", id),
        ChatIdentity::Matrix(id) => ("matrix_id", id),
        ChatIdentity::Email(e) => ("email", e),
    }
}

pub(crate) fn conflict(e: sqlx::Error) -> StoreError {
    if StoreError::is_unique_violation(&e) {
        StoreError::Conflict(
            "another person already has this email or chat identity: link that person instead"
                .into(),
        )
    } else {
        StoreError::Database(e)
    }
}

pub(crate) fn sorted_jobs(jobs: Result<Vec<Job>, StoreError>) -> Result<Vec<Job>, StoreError> {
    let mut jobs = jobs?;
    jobs.sort_by_key(|j| (j.run_at, j.id));
    Ok(jobs)
}

pub(crate) fn not_retryable(id: JobId, job: Option<Job>) -> StoreError {
    match job {
        None => StoreError::NotFound(format!("job {id}")),
        Some(j) => StoreError::Conflict(format!(
            "job {id} is {}: only a dead or cancelled job can be retried by hand",
            j.state.as_str()
        )),
    }
}

pub(crate) fn job_counts(rows: Vec<(String, String, i64)>) -> Result<Vec<JobCount>, StoreError> {
    rows.into_iter()
        .map(|(kind, state, count)| {
            Ok(JobCount {
                kind,
                state: JobState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown job state `{state}`")))?,
                count: count as u64,
            })
        })
        .collect()
}

/// The columns an outcome sets.
pub(crate) struct OutcomeColumns {
    pub state: &'static str,
    /// The next run (retry and deferral only).
    pub run_at: Option<i64>,
    pub error: Option<String>,
    pub result: Option<String>,
    pub finished: Option<i64>,
    /// Attempts to give back: 1 for a deferral, which is no attempt.
    pub uncount: i64,
}

pub(crate) fn outcome_columns(outcome: &JobOutcome, now: Timestamp) -> OutcomeColumns {
    let pending = |run_at: &Timestamp, error: &str, uncount| OutcomeColumns {
        state: "pending",
        run_at: Some(to_millis(*run_at)),
        error: Some(error.to_string()),
        result: None,
        finished: None,
        uncount,
    };
    match outcome {
        JobOutcome::Succeeded { result, .. } => OutcomeColumns {
            state: "succeeded",
            run_at: None,
            error: None,
            result: Some(result.to_string()),
            finished: Some(to_millis(now)),
            uncount: 0,
        },
        JobOutcome::Retry { error, run_at } => pending(run_at, error, 0),
        JobOutcome::Deferred { reason, run_at } => pending(run_at, reason, 1),
        JobOutcome::Dead { error } => OutcomeColumns {
            state: "dead",
            run_at: None,
            error: Some(error.clone()),
            result: None,
            finished: Some(to_millis(now)),
            uncount: 0,
        },
    }
}

/// Whether a held outcome released jobs (a success of a job that has jobs waiting), and the
/// claim to make of them in its transaction, if the runner asked for one.
pub(crate) fn to_claim<'a>(
    outcome: &JobOutcome,
    has_waiting: bool,
    next: Option<&'a crate::ClaimNext>,
) -> (bool, Option<&'a crate::ClaimNext>) {
    let released = has_waiting && matches!(outcome, JobOutcome::Succeeded { .. });
    (released, next.filter(|n| released && n.limit > 0))
}

/// A held outcome's record: `claimed` are the released jobs claimed with it (at most `limit`);
/// more may have been released when it released any and the limit was reached.
pub(crate) fn finished(released: bool, claimed: Vec<Job>, limit: u32) -> crate::Finished {
    crate::Finished {
        held: true,
        released_more: released && claimed.len() >= limit as usize,
        claimed,
    }
}
