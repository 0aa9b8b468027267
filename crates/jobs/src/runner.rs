use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use klaxon_store::{ClaimNext, Job, JobOutcome, Store, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Clock, Done, Handler, JobContext, JobError, RetryPolicy};

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Unique among the runners sharing a database: it names the leases this runner holds.
    pub id: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim holds without renewal; a dead runner's jobs wait this long.
    pub lease: Duration,
    /// How often the leases of running jobs are renewed; well under `lease`.
    pub heartbeat: Duration,
    /// The longest an idle runner sleeps before looking for due jobs again (jobs enqueued by
    /// another replica, timers coming due). Jobs enqueued in this process wake it at once.
    pub poll_interval: Duration,
    /// The longest one attempt may run.
    pub job_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            id: format!("runner-{:016x}", fastrand::u64(..)),
            concurrency: 16,
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
            job_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// Attempts by kind and outcome (`succeeded`, `retried`, `dead`, `lost`), for metrics.
pub type RunnerStats = BTreeMap<(String, &'static str), u64>;

pub struct Runner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: RunnerConfig,
    handlers: HashMap<String, Arc<dyn Handler>>,
    wake: Arc<Notify>,
    stats: Mutex<RunnerStats>,
    /// What a job's entry on its incident's timeline causes in turn.
    effects: Arc<dyn klaxon_store::Effects>,
    /// Set once the runner is stopping: a finishing job then takes no waiting job with it.
    stopping: AtomicBool,
}

impl Runner {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: RunnerConfig) -> Runner {
        Runner {
            store,
            clock,
            config,
            handlers: HashMap::new(),
            wake: Arc::new(Notify::new()),
            stats: Mutex::new(BTreeMap::new()),
            effects: Arc::new(klaxon_store::NoEffects),
            stopping: AtomicBool::new(false),
        }
    }

    /// The jobs that a job's success or failure, once on its incident's timeline, causes (the
    /// chat headline showing a new ticket's link); nothing by default.
    pub fn set_effects(&mut self, effects: Arc<dyn klaxon_store::Effects>) -> &mut Self {
        self.effects = effects;
        self
    }

    pub fn register(&mut self, kind: &str, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Wakes an idle runner: call it after enqueueing jobs that are due now.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn stats(&self) -> RunnerStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn lease_until(&self) -> klaxon_core::Timestamp {
        self.clock.now()
            + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX)
    }

    /// Claims what is due now (up to the concurrency), runs it all (with the waiting jobs
    /// claimed as those finish), and returns how many jobs it ran. Tests use it, through
    /// [`Runner::drain`], instead of waiting for a background loop.
    pub async fn run_once(self: &Arc<Self>) -> Result<usize, StoreError> {
        let jobs = self
            .store
            .claim_jobs(
                &self.config.id,
                self.clock.now(),
                self.lease_until(),
                self.config.concurrency as u32,
            )
            .await?;
        let mut set = JoinSet::new();
        for job in jobs {
            let me = self.clone();
            set.spawn(async move { me.execute(job).await });
        }
        let mut n = 0;
        while let Some(ran) = set.join_next().await {
            n += ran.unwrap_or(1);
        }
        Ok(n)
    }

    /// Runs jobs until none is due (jobs that become due as others finish, such as one waiting
    /// for another, included). Returns how many it ran.
    pub async fn drain(self: &Arc<Self>) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            match self.run_once().await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Runs until `shutdown` is cancelled, then lets the jobs in hand finish. Everything this
    /// runner does (claims, jobs, lease renewal) happens inside this future, so aborting it
    /// stops all of it, as a crash would.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut running: JoinSet<()> = JoinSet::new();
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0u32;
        tracing::info!(runner = %self.config.id, "job runner started");
        // With a backlog, claiming each time one job finishes would be a write for every job;
        // waiting until a quarter of the slots are free makes one claim serve several. An idle
        // or lightly loaded runner still claims at once.
        let batch = (self.config.concurrency / 4).max(1);
        loop {
            let free = self.config.concurrency.saturating_sub(running.len());
            if free > 0 && (free >= batch || running.is_empty()) {
                match self
                    .store
                    .claim_jobs(
                        &self.config.id,
                        self.clock.now(),
                        self.lease_until(),
                        free as u32,
                    )
                    .await
                {
                    Ok(jobs) => {
                        failures = 0;
                        if !jobs.is_empty() {
                            tracing::debug!(jobs = ?jobs.iter().map(|j| j.id.0).collect::<Vec<_>>(), "jobs claimed");
                        }
                        for job in jobs {
                            let me = self.clone();
                            running.spawn(async move {
                                me.execute(job).await;
                            });
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, "could not claim jobs; trying again");
                    }
                }
            }
            let idle = if failures > 0 {
                self.config.poll_interval.saturating_mul(failures.min(10))
            } else {
                self.config.poll_interval
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = heartbeat.tick() => self.renew_leases(running.len()).await,
                _ = tokio::time::sleep(idle) => {}
            }
        }
        self.stopping.store(true, Ordering::Relaxed);
        tracing::info!(runner = %self.config.id, in_hand = running.len(), "job runner stopping");
        while !running.is_empty() {
            tokio::select! {
                _ = running.join_next() => {}
                _ = heartbeat.tick() => self.renew_leases(running.len()).await,
            }
        }
    }

    async fn renew_leases(&self, running: usize) {
        if running == 0 {
            return;
        }
        if let Err(e) = self
            .store
            .extend_leases(&self.config.id, self.clock.now(), self.lease_until())
            .await
        {
            tracing::warn!(error = %e, "could not renew job leases");
        }
    }

    /// Runs a claimed job, then each job that waited for it and was claimed with its success,
    /// in the slot it frees: a chain of jobs goes on without a claim of its own at each link.
    /// Returns how many jobs it ran.
    async fn execute(self: Arc<Self>, job: Job) -> usize {
        let mut ran = 0;
        let mut next = Some(job);
        while let Some(job) = next.take() {
            ran += 1;
            let finished = self.execute_one(job).await;
            if finished.released_more {
                // The others it released wait for a free slot: the main loop claims them.
                self.wake.notify_one();
            }
            // At most one: the limit asked for.
            next = finished.claimed.into_iter().next();
            if let Some(job) = &next {
                tracing::debug!(job = %job.id, "job claimed as the one it waited for finished");
            }
        }
        ran
    }

    async fn execute_one(&self, job: Job) -> klaxon_store::Finished {
        let Some(claim) = job.claim() else {
            return Default::default();
        };
        let kind = job.kind.clone();
        let attempt = job.attempts;
        let outcome = if attempt > job.max_attempts {
            // Only a runner that died mid-job can push attempts past the limit: the job
            // itself may be what kills it, so stop giving it runners.
            JobOutcome::Dead {
                error: format!(
                    "gave up after {} attempts: the runner running it stopped before it finished",
                    job.max_attempts
                ),
            }
        } else {
            let result = self.attempt(job.clone(), claim.clone()).await;
            self.outcome(&job, result)
        };
        let label = match &outcome {
            JobOutcome::Succeeded { .. } => "succeeded",
            JobOutcome::Retry { .. } => "retried",
            JobOutcome::Deferred { .. } => "deferred",
            JobOutcome::Dead { .. } => "dead",
        };
        match &outcome {
            JobOutcome::Succeeded { .. } => {
                tracing::debug!(job = %job.id, kind, attempt, "job succeeded")
            }
            JobOutcome::Retry { error, run_at } => {
                tracing::info!(job = %job.id, kind, attempt, error, %run_at, "job failed; will retry")
            }
            JobOutcome::Deferred { reason, run_at } => {
                tracing::debug!(job = %job.id, kind, reason, %run_at, "job deferred")
            }
            JobOutcome::Dead { error } => {
                tracing::warn!(job = %job.id, kind, attempt, error, "job dead-lettered")
            }
        }
        let finished = self.finish(&claim, &outcome).await;
        let label = match finished.held {
            true => label,
            false => "lost",
        };
        *self
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((kind, label))
            .or_default() += 1;
        finished
    }

    /// Records an outcome, trying a few times through a database hiccup, and with a success
    /// claims a job that waited for this one (unless the runner is stopping). Not held when
    /// the claim was lost or the database stayed away; either way the job's lease will run out
    /// and it will be run again, which its idempotency key makes harmless.
    async fn finish(
        &self,
        claim: &klaxon_store::Claim,
        outcome: &JobOutcome,
    ) -> klaxon_store::Finished {
        for wait in [100u64, 500, 2000, 0] {
            let next = (!self.stopping.load(Ordering::Relaxed)).then(|| ClaimNext {
                runner: self.config.id.clone(),
                lease_until: self.lease_until(),
                limit: 1,
            });
            match self
                .store
                .finish_job_claiming(
                    claim,
                    outcome,
                    self.clock.now(),
                    self.effects.clone(),
                    next.as_ref(),
                )
                .await
            {
                Ok(finished) if finished.held => return finished,
                Ok(_) => {
                    tracing::warn!(job = %claim.job, "lease lost before the job finished; its result is dropped");
                    return Default::default();
                }
                Err(e) if wait > 0 => {
                    tracing::warn!(job = %claim.job, error = %e, "could not record a job's outcome; retrying");
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Err(e) => {
                    tracing::error!(job = %claim.job, error = %e, "could not record a job's outcome")
                }
            }
        }
        Default::default()
    }

    /// One attempt, under the timeout, with a panicking handler caught so that it is an
    /// error, not a dead runner. The handler runs inside this job's own task (no second task
    /// per job): dropping the attempt, as a stopped or crashed runner does, drops the handler.
    async fn attempt(&self, job: Job, claim: klaxon_store::Claim) -> Result<Done, JobError> {
        let Some(handler) = self.handlers.get(&job.kind).cloned() else {
            // Maybe a newer replica knows it: retry, and let the attempts run out if none does.
            return Err(JobError::retry(format!(
                "no handler for jobs of kind `{}` in this Klaxon",
                job.kind
            )));
        };
        let ctx = JobContext {
            job,
            claim,
            store: self.store.clone(),
            clock: self.clock.clone(),
        };
        let run = AssertUnwindSafe(handler.run(&ctx)).catch_unwind();
        match tokio::time::timeout(self.config.job_timeout, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(JobError::retry(format!(
                "the handler panicked: {}",
                panic_message(panic)
            ))),
            Err(_) => Err(JobError::retry(format!(
                "timed out after {:?}",
                self.config.job_timeout
            ))),
        }
    }

    fn outcome(&self, job: &Job, result: Result<Done, JobError>) -> JobOutcome {
        match result {
            Ok(done) => JobOutcome::Succeeded {
                result: done.result,
                timeline: done.timeline,
            },
            Err(JobError::Permanent(error)) => JobOutcome::Dead { error },
            Err(JobError::Deferred { message, wait }) => JobOutcome::Deferred {
                reason: message,
                run_at: self.clock.now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
            },
            Err(JobError::Retryable { message, .. }) if job.attempts >= job.max_attempts => {
                JobOutcome::Dead {
                    error: format!("gave up after {} attempts: {message}", job.attempts),
                }
            }
            Err(JobError::Retryable {
                message,
                retry_after,
            }) => {
                let delay = self.config.retry.delay(job.attempts, retry_after);
                let run_at = self.clock.now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                JobOutcome::Retry {
                    error: message,
                    run_at,
                }
            }
        }
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}
