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

use std::sync::Arc;

use klaxon_core::Timestamp;
use sqlx::Sqlite;
use tokio::sync::{mpsc, oneshot};

use super::writer::Writer;
use super::SqliteTx;
use crate::flow::{self, Tx};
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
pub(crate) async fn run(writer: Writer, mut queue: mpsc::UnboundedReceiver<Write>) {
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

async fn begin(writer: &Writer) -> Result<SqliteTx, StoreError> {
    Ok(SqliteTx(writer.begin().await?))
}

/// Every write of the batch in one transaction, or none of them. Neighbouring enqueues are one
/// insert and neighbouring outcomes one update: on SQLite each statement is a trip to the
/// connection's thread and back, which under load costs more than the statement itself.
async fn together(writer: &Writer, batch: &[Write]) -> Result<Vec<Written>, StoreError> {
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
    let outcomes: Vec<_> = finishes.iter().map(|f| (f.0, f.1, f.2)).collect();
    let held = crate::shared::record_outcomes!(Sqlite, tx.0, outcomes).await?;
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

async fn alone(writer: &Writer, write: &Write) -> Result<Written, StoreError> {
    let mut tx = begin(writer).await?;
    let result = write.apply(&mut tx).await?;
    tx.0.commit().await?;
    Ok(result)
}
