//! Group commit on the one writer connection. The writes that come in many small, independent
//! pieces (a Slack request written down as a job; a runner's claim; a job's checkpoint and
//! its outcome) wait in a queue;
//! one task takes everything queued, writes it in one transaction and commits once, then
//! answers each caller. A caller is answered only after the commit, so what it was told is
//! written is durable; nothing waits to fill a batch: the first write is taken at once, and
//! the batch is whatever queued while the last commit's fsync ran.
//!
//! A failed write must not fail its neighbours: if anything in a batch fails (or the commit
//! does), the batch is rolled back and each write is done again in a transaction of its own,
//! so each caller gets its own outcome.

use std::collections::HashMap;
use std::sync::Arc;

use klaxon_core::{to_millis, Timestamp};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::SqliteTx;
use crate::common::outcome_columns;
use crate::flow::{self, Tx};
use crate::shared::{HAS_WAITING, JOBS_A_STATEMENT};
use crate::{Claim, ClaimNext, Effects, Finished, Job, JobId, JobOutcome, NewJob, StoreError};

/// The most writes in one transaction: bounds how long a batch holds the writer.
const MOST: usize = 256;

pub(crate) enum Write {
    Claim {
        runner: String,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        done: oneshot::Sender<Result<Vec<Job>, StoreError>>,
    },
    Enqueue {
        jobs: Vec<NewJob>,
        at: Timestamp,
        done: oneshot::Sender<Result<Vec<JobId>, StoreError>>,
    },
    Checkpoint {
        claim: Claim,
        checkpoint: serde_json::Value,
        now: Timestamp,
        done: oneshot::Sender<Result<bool, StoreError>>,
    },
    Finish {
        claim: Claim,
        outcome: JobOutcome,
        now: Timestamp,
        effects: Arc<dyn Effects>,
        next: Option<ClaimNext>,
        done: oneshot::Sender<Result<Finished, StoreError>>,
    },
}

/// What a write returned, kept until its transaction commits.
enum Written {
    Jobs(Vec<Job>),
    Ids(Vec<JobId>),
    /// Whether the claim still held.
    Held(bool),
    Finished(Finished),
}

impl Write {
    async fn apply(&self, tx: &mut SqliteTx) -> Result<Written, StoreError> {
        Ok(match self {
            Write::Claim {
                runner,
                now,
                lease_until,
                limit,
                ..
            } => Written::Jobs(tx.claim(runner, *now, *lease_until, *limit).await?),
            Write::Enqueue { jobs, at, .. } => Written::Ids(tx.insert_jobs(jobs, *at).await?),
            Write::Checkpoint {
                claim,
                checkpoint,
                now,
                ..
            } => Written::Held(
                super::SqliteStore::checkpoint_on(&mut *tx.0, claim, checkpoint, *now).await?,
            ),
            Write::Finish { .. } => {
                let mut held = finish_all(tx, std::slice::from_ref(self)).await?;
                held.pop()
                    .ok_or_else(|| StoreError::Corrupt("an outcome went unanswered".into()))?
            }
        })
    }

    fn answer(self, result: Result<Written, StoreError>) {
        fn send<T>(done: oneshot::Sender<Result<T, StoreError>>, result: Result<T, StoreError>) {
            // A caller that stopped waiting (its request was dropped) needs no answer.
            let _ = done.send(result);
        }
        let mismatch = || StoreError::Corrupt("a write's result was of another kind".into());
        match (self, result) {
            (Write::Claim { done, .. }, Ok(Written::Jobs(jobs))) => send(done, Ok(jobs)),
            (Write::Enqueue { done, .. }, Ok(Written::Ids(ids))) => send(done, Ok(ids)),
            (Write::Checkpoint { done, .. }, Ok(Written::Held(h))) => send(done, Ok(h)),
            (Write::Finish { done, .. }, Ok(Written::Finished(f))) => send(done, Ok(f)),
            (Write::Claim { done, .. }, r) => send(done, r.and_then(|_| Err(mismatch()))),
            (Write::Enqueue { done, .. }, r) => send(done, r.and_then(|_| Err(mismatch()))),
            (Write::Checkpoint { done, .. }, r) => send(done, r.and_then(|_| Err(mismatch()))),
            (Write::Finish { done, .. }, r) => send(done, r.and_then(|_| Err(mismatch()))),
        }
    }
}

/// Takes the queued writes until every sender is gone (the store was dropped).
pub(crate) async fn run(writer: SqlitePool, mut queue: mpsc::UnboundedReceiver<Write>) {
    let mut batch = Vec::with_capacity(MOST);
    while queue.recv_many(&mut batch, MOST).await > 0 {
        match together(&writer, &batch).await {
            Ok(results) => {
                for (write, result) in batch.drain(..).zip(results) {
                    write.answer(Ok(result));
                }
            }
            Err(e) => {
                if batch.len() > 1 {
                    tracing::debug!(error = %e, writes = batch.len(), "a batch of writes failed; writing each alone");
                }
                for write in batch.drain(..) {
                    let result = alone(&writer, &write).await;
                    write.answer(result);
                }
            }
        }
    }
}

async fn begin(writer: &SqlitePool) -> Result<SqliteTx, StoreError> {
    Ok(SqliteTx(writer.begin_with("BEGIN IMMEDIATE").await?))
}

/// Every write of the batch in one transaction, or none of them. Neighbouring enqueues are one
/// insert and neighbouring outcomes one update: on SQLite each statement is a trip to the
/// connection's thread and back, which under load costs more than the statement itself.
async fn together(writer: &SqlitePool, batch: &[Write]) -> Result<Vec<Written>, StoreError> {
    let mut tx = begin(writer).await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut rest = batch;
    while let Some(first) = rest.first() {
        let alike = std::mem::discriminant(first);
        let run = rest
            .iter()
            .take_while(|w| std::mem::discriminant(*w) == alike)
            .count();
        let (these, after) = rest.split_at(run);
        match first {
            Write::Enqueue { .. } if run > 1 => results.extend(enqueue_all(&mut tx, these).await?),
            Write::Finish { .. } => results.extend(finish_all(&mut tx, these).await?),
            _ => {
                for write in these {
                    results.push(write.apply(&mut tx).await?);
                }
            }
        }
        rest = after;
    }
    tx.0.commit().await?;
    Ok(results)
}

/// Several enqueues as one list, as if written one after another: a key already written (by
/// an earlier enqueue of the list or before it) keeps its job. Each job is due from its own
/// enqueue's time; the rows are stamped with the latest of those times.
async fn enqueue_all(tx: &mut SqliteTx, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
    let mut all = Vec::new();
    let mut sizes = Vec::with_capacity(writes.len());
    let mut latest = None;
    for write in writes {
        let Write::Enqueue { jobs, at, .. } = write else {
            return Err(StoreError::Corrupt(
                "an enqueue's run held another write".into(),
            ));
        };
        all.extend(jobs.iter().map(|job| NewJob {
            run_at: Some(job.run_at.unwrap_or(*at)),
            ..job.clone()
        }));
        sizes.push(jobs.len());
        latest = latest.max(Some(*at));
    }
    let Some(latest) = latest else {
        return Ok(Vec::new());
    };
    let mut ids = tx.insert_jobs(&all, latest).await?.into_iter();
    Ok(sizes
        .into_iter()
        .map(|n| Written::Ids(ids.by_ref().take(n).collect()))
        .collect())
}

/// Outcomes in one statement (each only where its claim still holds), then the timeline
/// entries of those that go on one, in the order the outcomes came, and the claims of the
/// waiting jobs a success released where its runner asked for them: SQLite's one way of
/// recording an outcome, for one as for many.
async fn finish_all(tx: &mut SqliteTx, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
    let mut finishes = Vec::with_capacity(writes.len());
    for write in writes {
        let Write::Finish {
            claim,
            outcome,
            now,
            effects,
            next,
            ..
        } = write
        else {
            return Err(StoreError::Corrupt(
                "an outcome's run held another write".into(),
            ));
        };
        finishes.push((claim, outcome, *now, effects, next));
    }
    let mut held: HashMap<i64, (String, Option<i64>, bool)> =
        HashMap::with_capacity(finishes.len());
    for chunk in finishes.chunks(JOBS_A_STATEMENT) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE jobs SET state = v.column2, run_at_ms = COALESCE(v.column3, jobs.run_at_ms), \
                 last_error = COALESCE(v.column4, jobs.last_error), result = v.column5, \
                 finished_at_ms = v.column6, lease_owner = NULL, lease_until_ms = NULL, \
                 updated_at_ms = v.column7, attempts = jobs.attempts - v.column8 FROM (",
        );
        qb.push_values(chunk, |mut row, (claim, outcome, now, _, _)| {
            let c = outcome_columns(outcome, *now);
            row.push_bind(claim.job.0)
                .push_bind(c.state)
                .push_bind(c.run_at)
                .push_bind(c.error)
                .push_bind(c.result)
                .push_bind(c.finished)
                .push_bind(to_millis(*now))
                .push_bind(c.uncount)
                .push_bind(claim.runner.as_str())
                .push_bind(i64::from(claim.attempt));
        });
        qb.push(
            ") AS v WHERE jobs.id = v.column1 AND jobs.state = 'running' \
             AND jobs.lease_owner = v.column9 AND jobs.attempts = v.column10 \
             RETURNING id, kind, incident_number, ",
        );
        qb.push(HAS_WAITING);
        let rows: Vec<(i64, String, Option<i64>, bool)> =
            qb.build_query_as().fetch_all(&mut *tx.0).await?;
        held.extend(
            rows.into_iter()
                .map(|(id, kind, n, waiting)| (id, (kind, n, waiting))),
        );
    }
    let on_timeline: Vec<flow::Outcome> = finishes
        .iter()
        .filter_map(|(claim, outcome, now, effects, _)| {
            let (kind, incident, _) = held.get(&claim.job.0)?;
            let of = (kind.as_str(), *incident);
            Some(flow::Outcome::of(claim.job, of, outcome, *now, effects))
        })
        .collect();
    flow::record_on_timeline(tx, &on_timeline).await?;
    let mut results = Vec::with_capacity(finishes.len());
    for (claim, outcome, now, _, next) in finishes {
        let Some((_, _, waiting)) = held.get(&claim.job.0) else {
            results.push(Written::Finished(Finished::default()));
            continue;
        };
        let (released, next) = crate::common::to_claim(outcome, *waiting, next.as_ref());
        results.push(Written::Finished(
            tx.claim_released(claim, released, next, now).await?,
        ));
    }
    Ok(results)
}

async fn alone(writer: &SqlitePool, write: &Write) -> Result<Written, StoreError> {
    let mut tx = begin(writer).await?;
    let result = write.apply(&mut tx).await?;
    tx.0.commit().await?;
    Ok(result)
}
