//! Group commit of job outcomes on PostgreSQL. Outcomes that come while a transaction of
//! outcomes is being written wait in a queue; one task takes everything queued and writes it in
//! one transaction: the outcomes as one statement, the timeline entries of those that go on one
//! (`flow::record_on_timeline`: an incident at a time, each incident loaded and saved once), and
//! the claims of the jobs the successes released; then it commits once and
//! answers each caller. The jobs of one incident finish together (a declaration's channel,
//! ticket, page and status page), and each timeline entry locks the incident until its commit:
//! one commit for all of them, not one after another.
//!
//! As on SQLite (`sqlite/batch.rs`), a caller is answered only after the commit, and a failed
//! outcome must not fail its neighbours: if anything in a batch fails, the batch is rolled back
//! and each outcome is written again in a transaction of its own.

use std::sync::Arc;

use klaxon_core::Timestamp;
use sqlx::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};

use super::{PgStore, PgTx};
use crate::flow;
use crate::{Claim, ClaimNext, Effects, Finished, JobOutcome, StoreError};

/// The most outcomes in one transaction: bounds how long a batch holds its incidents.
const MOST: usize = 256;

pub(crate) struct Outcome {
    pub claim: Claim,
    pub outcome: JobOutcome,
    pub now: Timestamp,
    pub effects: Arc<dyn Effects>,
    pub next: Option<ClaimNext>,
    pub done: oneshot::Sender<Result<Finished, StoreError>>,
}

/// Takes the queued outcomes until every sender is gone (the store was dropped).
pub(crate) async fn run(pool: PgPool, mut queue: mpsc::UnboundedReceiver<Outcome>) {
    let mut batch = Vec::with_capacity(MOST);
    while queue.recv_many(&mut batch, MOST).await > 0 {
        let results = match together(&pool, &batch).await {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(e) => {
                if batch.len() > 1 {
                    tracing::debug!(error = %e, outcomes = batch.len(), "a batch of outcomes failed; writing each alone");
                }
                let mut results = Vec::with_capacity(batch.len());
                for outcome in &batch {
                    results.push(alone(&pool, outcome).await);
                }
                results
            }
        };
        for (outcome, result) in batch.drain(..).zip(results) {
            // A caller that stopped waiting (its runner stopped) needs no answer.
            let _ = outcome.done.send(result);
        }
    }
}

async fn together(pool: &PgPool, batch: &[Outcome]) -> Result<Vec<Finished>, StoreError> {
    let pooled = super::resend::Pooled(pool);
    crate::shared::in_transaction!(pooled, |_| true, |tx| finish_all(tx, batch)).await
}

async fn alone(pool: &PgPool, outcome: &Outcome) -> Result<Finished, StoreError> {
    let mut finished = together(pool, std::slice::from_ref(outcome)).await?;
    finished
        .pop()
        .ok_or_else(|| StoreError::Corrupt("an outcome went unanswered".into()))
}

/// The outcomes in one statement (each only where its claim still holds), then the timeline
/// entries of those that go on one, then the claims of the waiting jobs
/// the successes released where their runners asked for them.
async fn finish_all(tx: &mut PgTx, batch: &[Outcome]) -> Result<Vec<Finished>, StoreError> {
    let outcomes: Vec<_> = batch
        .iter()
        .map(|o| (&o.claim, &o.outcome, o.now))
        .collect();
    let held = crate::shared::record_outcomes!(Postgres, tx.0, outcomes).await?;
    let on_timeline: Vec<flow::Outcome> = batch
        .iter()
        .filter_map(|o| {
            let (kind, incident, _) = held.get(&o.claim.job.0)?;
            let of = (kind.as_str(), *incident);
            Some(flow::Outcome::of(
                o.claim.job,
                of,
                &o.outcome,
                o.now,
                &o.effects,
            ))
        })
        .collect();
    flow::record_on_timeline(tx, &on_timeline).await?;
    let mut results = Vec::with_capacity(batch.len());
    for o in batch {
        let Some((_, _, waiting)) = held.get(&o.claim.job.0) else {
            results.push(Finished::default());
            continue;
        };
        let (released, next) = crate::common::to_claim(&o.outcome, *waiting, o.next.as_ref());
        results.push(PgStore::claim_released(&mut *tx.0, &o.claim, released, next, o.now).await?);
    }
    Ok(results)
}
