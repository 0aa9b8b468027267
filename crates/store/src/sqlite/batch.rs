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
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::SqliteTx;
use crate::flow::{self, Tx};
use crate::{Claim, Effects, Job, JobId, JobOutcome, NewJob, StoreError};

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
        done: oneshot::Sender<Result<bool, StoreError>>,
    },
}

/// What a write returned, kept until its transaction commits.
enum Written {
    Jobs(Vec<Job>),
    Ids(Vec<JobId>),
    /// Whether the claim still held.
    Held(bool),
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
            Write::Finish {
                claim,
                outcome,
                now,
                effects,
                ..
            } => match tx.finish(claim, outcome, *now).await? {
                None => Written::Held(false),
                Some(job) => {
                    flow::record_on_timeline(tx, &job, outcome, *now, effects.as_ref()).await?;
                    Written::Held(true)
                }
            },
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
            (Write::Checkpoint { done, .. } | Write::Finish { done, .. }, Ok(Written::Held(h))) => {
                send(done, Ok(h))
            }
            (Write::Claim { done, .. }, r) => send(done, r.and_then(|_| Err(mismatch()))),
            (Write::Enqueue { done, .. }, r) => send(done, r.and_then(|_| Err(mismatch()))),
            (Write::Checkpoint { done, .. } | Write::Finish { done, .. }, r) => {
                send(done, r.and_then(|_| Err(mismatch())))
            }
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

/// Every write of the batch in one transaction, or none of them.
async fn together(writer: &SqlitePool, batch: &[Write]) -> Result<Vec<Written>, StoreError> {
    let mut tx = begin(writer).await?;
    let mut results = Vec::with_capacity(batch.len());
    for write in batch {
        results.push(write.apply(&mut tx).await?);
    }
    tx.0.commit().await?;
    Ok(results)
}

async fn alone(writer: &SqlitePool, write: &Write) -> Result<Written, StoreError> {
    let mut tx = begin(writer).await?;
    let result = write.apply(&mut tx).await?;
    tx.0.commit().await?;
    Ok(result)
}
