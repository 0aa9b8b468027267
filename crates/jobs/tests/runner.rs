//! The runner against real stores: SQLite always, PostgreSQL with `--ignored` and
//! `KLAXON_TEST_DATABASE_URL` (as in the store's conformance suite). No test sleeps to wait:
//! they drain the queue, move a manual clock, or wait for a condition with a deadline.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use klaxon_core::{from_millis, Actor, Catalog, Declare, EventKind, Timestamp};
use klaxon_jobs::*;
use klaxon_store::testing::TestDb;
use klaxon_store::{JobState, NewJob, NoEffects, Request, TimelineEntry};
use tokio_util::sync::CancellationToken;

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(klaxon_store::testing::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL and run with --ignored"]
                async fn $name() {
                    super::$name(klaxon_store::testing::postgres().await).await
                }
            )*
        }
    };
}

both_stores!(
    a_failing_job_backs_off_dead_letters_and_succeeds_when_retried_by_hand,
    a_killed_runners_job_is_finished_once_by_another,
    three_runners_run_a_thousand_jobs_exactly_once,
    a_job_waits_for_the_job_it_depends_on,
    the_other_jobs_a_success_releases_start_beside_the_one_it_takes,
    timeouts_and_panics_are_retried_and_permanent_errors_are_not,
    timers_fire_when_due_and_not_before,
    a_busy_runner_claims_several_jobs_at_a_time,
);

fn t0() -> Timestamp {
    from_millis(1_800_000_000_000)
}

fn config(id: &str) -> RunnerConfig {
    RunnerConfig {
        id: id.to_string(),
        concurrency: 8,
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        job_timeout: Duration::from_secs(10),
        retry: RetryPolicy::default(),
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Counts how often each job ran.
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<HashMap<String, u32>>>);

#[async_trait]
impl Handler for Counter {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        *self
            .0
            .lock()
            .unwrap()
            .entry(ctx.idempotency_key().to_string())
            .or_default() += 1;
        Ok(Done::default())
    }
}

/// Answers from a script, then succeeds.
struct Scripted(Mutex<VecDeque<Result<Done, JobError>>>);

#[async_trait]
impl Handler for Scripted {
    async fn run(&self, _: &JobContext) -> Result<Done, JobError> {
        self.0
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(Done::default()))
    }
}

/// A vendor that deduplicates on the idempotency key, as PagerDuty does on `dedup_key`.
#[derive(Clone, Default)]
struct Vendor {
    calls: Arc<Mutex<u32>>,
    effects: Arc<Mutex<HashSet<String>>>,
}

impl Vendor {
    fn call(&self, key: &str) {
        *self.calls.lock().unwrap() += 1;
        self.effects.lock().unwrap().insert(key.to_string());
    }
}

/// Calls the vendor, then hangs: a runner that dies right after the external effect and
/// before it could record it.
struct CallThenHang(Vendor, Arc<tokio::sync::Notify>);

#[async_trait]
impl Handler for CallThenHang {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        self.0.call(ctx.idempotency_key());
        ctx.save_checkpoint(serde_json::json!({"called": true}))
            .await?;
        self.1.notify_one();
        std::future::pending().await
    }
}

struct Call(Vendor, Arc<Mutex<Option<serde_json::Value>>>);

#[async_trait]
impl Handler for Call {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        *self.1.lock().unwrap() = ctx.checkpoint().cloned();
        self.0.call(ctx.idempotency_key());
        Ok(Done {
            result: serde_json::json!({"ok": true}),
            timeline: Some(TimelineEntry {
                detail: "paged".into(),
                link: None,
            }),
        })
    }
}

async fn a_failing_job_backs_off_dead_letters_and_succeeds_when_retried_by_hand(db: TestDb) {
    let clock = Arc::new(ManualClock::new(t0()));
    let cat = Catalog::default();
    let incident = db
        .store
        .declare(Request {
            command: Declare {
                title: "Pager".into(),
                ..Default::default()
            },
            actor: Actor::system("test"),
            at: t0(),
            catalog: &cat,
            effects: &NoEffects,
        })
        .await
        .unwrap()
        .incident
        .reference;
    let script = vec![
        Err(JobError::Retryable {
            message: "429 Too Many Requests".into(),
            retry_after: Some(Duration::from_secs(120)),
        }),
        Err(JobError::retry("503 Service Unavailable")),
        Err(JobError::retry("503 Service Unavailable")),
    ];
    let mut runner = Runner::new(db.store.clone(), clock.clone(), config("r"));
    runner.register("vendor.call", Scripted(Mutex::new(script.into())));
    let runner = Arc::new(runner);
    let id = db
        .store
        .enqueue(
            &[NewJob::new("page-1", "vendor.call", serde_json::json!({}))
                .for_incident(incident)
                .max_attempts(3)],
            t0(),
        )
        .await
        .unwrap()[0];

    // Attempt 1: the vendor's Retry-After decides when to come back.
    assert_eq!(runner.drain().await.unwrap(), 1);
    let job = db.store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.run_at, t0() + chrono::Duration::seconds(120));
    assert_eq!(job.last_error.as_deref(), Some("429 Too Many Requests"));
    assert_eq!(runner.drain().await.unwrap(), 0, "not due yet");

    // Attempt 2: exponential backoff with jitter (2 s doubled once, ±20%).
    clock.advance(chrono::Duration::seconds(120));
    assert_eq!(runner.drain().await.unwrap(), 1);
    let job = db.store.job(id).await.unwrap().unwrap();
    let (lo, hi) = RetryPolicy::default().bounds(2);
    let delay = (job.run_at - clock.now()).to_std().unwrap();
    assert!(
        delay >= lo - Duration::from_millis(1) && delay <= hi,
        "{delay:?} not in {lo:?}..{hi:?}"
    );

    // Attempt 3 is the last: a dead letter, on the incident's timeline.
    clock.set(job.run_at);
    assert_eq!(runner.drain().await.unwrap(), 1);
    let job = db.store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(
        job.last_error.as_deref(),
        Some("gave up after 3 attempts: 503 Service Unavailable")
    );
    clock.advance(chrono::Duration::days(1));
    assert_eq!(
        runner.drain().await.unwrap(),
        0,
        "dead letters are not retried on their own"
    );
    let events = db.store.events(incident, 0, 100).await.unwrap();
    assert!(
        matches!(&events.last().unwrap().kind, EventKind::ActionFailed { action, .. } if action == "vendor.call")
    );

    // Retried by hand, it runs again (the script is used up, so it succeeds).
    db.store.retry_job(id, clock.now()).await.unwrap();
    assert_eq!(runner.drain().await.unwrap(), 1);
    let job = db.store.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1));
    assert_eq!(
        runner.stats().get(&("vendor.call".to_string(), "dead")),
        Some(&1)
    );
    assert_eq!(
        runner
            .stats()
            .get(&("vendor.call".to_string(), "succeeded")),
        Some(&1)
    );
}

async fn a_killed_runners_job_is_finished_once_by_another(db: TestDb) {
    let clock = Arc::new(ManualClock::new(t0()));
    let vendor = Vendor::default();
    let started = Arc::new(tokio::sync::Notify::new());
    let mut doomed = Runner::new(db.store.clone(), clock.clone(), config("doomed"));
    doomed.register("vendor.call", CallThenHang(vendor.clone(), started.clone()));
    let seen_checkpoint = Arc::new(Mutex::new(None));
    let mut survivor = Runner::new(
        match db.schema {
            Some(_) => db.replica().await,
            None => db.store.clone(),
        },
        clock.clone(),
        config("survivor"),
    );
    survivor.register("vendor.call", Call(vendor.clone(), seen_checkpoint.clone()));
    let survivor = Arc::new(survivor);

    let id = db
        .store
        .enqueue(
            &[NewJob::new(
                "page-INC-1",
                "vendor.call",
                serde_json::json!({}),
            )],
            t0(),
        )
        .await
        .unwrap()[0];
    let task = tokio::spawn(Arc::new(doomed).run(CancellationToken::new()));
    started.notified().await;
    task.abort(); // the runner dies mid-job, after its external call
    let _ = task.await;
    assert_eq!(
        db.store.job(id).await.unwrap().unwrap().state,
        JobState::Running
    );

    assert_eq!(
        survivor.drain().await.unwrap(),
        0,
        "the dead runner's lease still holds"
    );
    clock.advance(chrono::Duration::seconds(31));
    assert_eq!(survivor.drain().await.unwrap(), 1);
    let job = db.store.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 2));
    assert_eq!(
        *seen_checkpoint.lock().unwrap(),
        Some(serde_json::json!({"called": true})),
        "resumed from the checkpoint"
    );
    assert_eq!(
        *vendor.calls.lock().unwrap(),
        2,
        "the call was made again..."
    );
    assert_eq!(
        vendor.effects.lock().unwrap().len(),
        1,
        "...with the same idempotency key, so one effect"
    );
    assert_eq!(
        survivor.drain().await.unwrap(),
        0,
        "and the job is not run a third time"
    );
}

/// Each job waits for a permit; the ninth to start notes how many permits had been given.
#[derive(Clone)]
struct Gated {
    permits: Arc<tokio::sync::Semaphore>,
    given: Arc<std::sync::atomic::AtomicUsize>,
    started: Arc<std::sync::atomic::AtomicUsize>,
    given_when_ninth_started: Arc<Mutex<Option<usize>>>,
}

impl Gated {
    fn new() -> Gated {
        Gated {
            permits: Arc::new(tokio::sync::Semaphore::new(0)),
            given: Default::default(),
            started: Default::default(),
            given_when_ninth_started: Default::default(),
        }
    }

    fn give(&self) {
        self.given.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.permits.add_permits(1);
    }

    fn started(&self) -> usize {
        self.started.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl Handler for Gated {
    async fn run(&self, _: &JobContext) -> Result<Done, JobError> {
        if self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            == 8
        {
            *self.given_when_ninth_started.lock().unwrap() =
                Some(self.given.load(std::sync::atomic::Ordering::SeqCst));
        }
        self.permits.acquire().await.unwrap().forget();
        Ok(Done::default())
    }
}

/// With every slot busy and more jobs waiting, one job finishing does not make a claim of its
/// own (a write per job): the runner claims again once a quarter of its slots (2 of 8) are
/// free.
async fn a_busy_runner_claims_several_jobs_at_a_time(db: TestDb) {
    let gated = Gated::new();
    let jobs: Vec<NewJob> = (0..12)
        .map(|i| NewJob::new(format!("gated-{i}"), "gated", serde_json::json!({})))
        .collect();
    db.store.enqueue(&jobs, klaxon_core::now()).await.unwrap();
    let mut r = Runner::new(db.store.clone(), Arc::new(SystemClock), config("r"));
    r.register("gated", gated.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(Arc::new(r).run(shutdown.clone()));
    wait_until("every slot to be busy", || async { gated.started() == 8 }).await;
    let succeeded = || async {
        db.store
            .job_counts()
            .await
            .unwrap()
            .iter()
            .filter(|c| c.state == JobState::Succeeded)
            .map(|c| c.count)
            .sum::<u64>()
    };
    gated.give();
    wait_until("one job to finish", || async { succeeded().await == 1 }).await;
    gated.give();
    wait_until("the next claim", || async { gated.started() == 10 }).await;
    assert_eq!(
        *gated.given_when_ninth_started.lock().unwrap(),
        Some(2),
        "the ninth job was claimed when only one slot was free"
    );
    for _ in 0..12 {
        gated.give();
    }
    wait_until("every job to finish", || async { succeeded().await == 12 }).await;
    shutdown.cancel();
    task.await.unwrap();
}

async fn three_runners_run_a_thousand_jobs_exactly_once(db: TestDb) {
    let counter = Counter::default();
    let jobs: Vec<NewJob> = (0..1000)
        .map(|i| NewJob::new(format!("job-{i}"), "count", serde_json::json!({ "i": i })))
        .collect();
    db.store.enqueue(&jobs, klaxon_core::now()).await.unwrap();
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut runners = Vec::new();
    for n in 0..3 {
        let store = match db.schema {
            Some(_) => db.replica().await,
            None => db.store.clone(),
        };
        let mut r = Runner::new(store, Arc::new(SystemClock), config(&format!("runner-{n}")));
        r.register("count", counter.clone());
        let r = Arc::new(r);
        runners.push(r.clone());
        tasks.push(tokio::spawn(r.run(shutdown.clone())));
    }
    let store = db.store.clone();
    wait_until("all jobs to succeed", || {
        let store = store.clone();
        async move {
            let counts = store.job_counts().await.unwrap();
            counts
                .iter()
                .any(|c| c.state == JobState::Succeeded && c.count == 1000)
        }
    })
    .await;
    shutdown.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let runs = counter.0.lock().unwrap();
    assert_eq!(runs.len(), 1000);
    assert!(
        runs.values().all(|&n| n == 1),
        "a job ran twice: {:?}",
        runs.iter().filter(|(_, &n)| n != 1).collect::<Vec<_>>()
    );
    let per_runner: Vec<u64> = runners.iter().map(|r| r.stats().values().sum()).collect();
    assert_eq!(per_runner.iter().sum::<u64>(), 1000, "{per_runner:?}");
    assert!(
        per_runner.iter().filter(|&&n| n > 0).count() >= 2,
        "the work was shared: {per_runner:?}"
    );
}

async fn a_job_waits_for_the_job_it_depends_on(db: TestDb) {
    let order = Arc::new(Mutex::new(Vec::new()));
    struct Log(Arc<Mutex<Vec<String>>>);
    #[async_trait]
    impl Handler for Log {
        async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
            self.0
                .lock()
                .unwrap()
                .push(ctx.idempotency_key().to_string());
            Ok(Done::default())
        }
    }
    let mut r = Runner::new(db.store.clone(), Arc::new(SystemClock), config("r"));
    r.register("log", Log(order.clone()));
    let r = Arc::new(r);
    // Enqueued post first, channel second: the dependency, not the order, decides.
    db.store
        .enqueue(
            &[
                NewJob::new("create-channel", "log", serde_json::json!({})),
                NewJob::new("pin", "log", serde_json::json!({})).after("post"),
                NewJob::new("post", "log", serde_json::json!({})).after("create-channel"),
            ],
            klaxon_core::now(),
        )
        .await
        .unwrap_err(); // `pin` names `post` before it exists
    db.store
        .enqueue(
            &[
                NewJob::new("create-channel", "log", serde_json::json!({})),
                NewJob::new("post", "log", serde_json::json!({})).after("create-channel"),
                NewJob::new("pin", "log", serde_json::json!({})).after("post"),
            ],
            klaxon_core::now(),
        )
        .await
        .unwrap();
    // One claim: each link is claimed in the transaction that records the one before.
    assert_eq!(r.run_once().await.unwrap(), 3, "the whole chain in one run");
    assert_eq!(
        *order.lock().unwrap(),
        vec!["create-channel", "post", "pin"]
    );
}

async fn the_other_jobs_a_success_releases_start_beside_the_one_it_takes(db: TestDb) {
    // `post` and `topic` both wait for `channel`; the runner takes `post` with the channel's
    // success and must start `topic` beside it at once, not when `post` is done or the next
    // poll comes: `post` here waits for `topic` to have run.
    struct Gate(Arc<tokio::sync::Semaphore>);
    #[async_trait]
    impl Handler for Gate {
        async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
            match ctx.idempotency_key() {
                "post" => {
                    let topic = tokio::time::timeout(Duration::from_secs(30), self.0.acquire());
                    match topic.await {
                        Ok(permit) => permit.expect("the gate stays open").forget(),
                        Err(_) => return Err(JobError::permanent("topic never ran beside post")),
                    }
                }
                "topic" => self.0.add_permits(1),
                _ => {}
            }
            Ok(Done::default())
        }
    }
    let mut r = Runner::new(
        db.store.clone(),
        Arc::new(SystemClock),
        RunnerConfig {
            // Longer than the wait: only a wake can start `topic` in time.
            poll_interval: Duration::from_secs(600),
            ..config("r")
        },
    );
    r.register("gate", Gate(Arc::new(tokio::sync::Semaphore::new(0))));
    let r = Arc::new(r);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(r.clone().run(shutdown.clone()));
    db.store
        .enqueue(
            &[
                NewJob::new("channel", "gate", serde_json::json!({})),
                NewJob::new("post", "gate", serde_json::json!({})).after("channel"),
                NewJob::new("topic", "gate", serde_json::json!({})).after("channel"),
            ],
            klaxon_core::now(),
        )
        .await
        .unwrap();
    r.waker().notify_one();
    wait_until("all three to succeed", || async {
        let mut done = 0;
        for key in ["channel", "post", "topic"] {
            if let Some(j) = db.store.job_by_key(key).await.unwrap() {
                assert_ne!(j.state, JobState::Dead, "{key}: {:?}", j.last_error);
                done += usize::from(j.state == JobState::Succeeded);
            }
        }
        done == 3
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();
}

async fn timeouts_and_panics_are_retried_and_permanent_errors_are_not(db: TestDb) {
    struct Slow;
    #[async_trait]
    impl Handler for Slow {
        async fn run(&self, _: &JobContext) -> Result<Done, JobError> {
            std::future::pending().await
        }
    }
    struct Panics;
    #[async_trait]
    impl Handler for Panics {
        async fn run(&self, _: &JobContext) -> Result<Done, JobError> {
            panic!("index out of bounds")
        }
    }
    let clock = Arc::new(ManualClock::new(t0()));
    let mut cfg = config("r");
    cfg.job_timeout = Duration::from_millis(50);
    cfg.concurrency = 1;
    let mut impatient = Runner::new(db.store.clone(), clock.clone(), cfg);
    impatient.register("slow", Slow);
    // The panic hook may print a backtrace, which takes longer than 50 ms: a normal timeout.
    let mut r = Runner::new(db.store.clone(), clock.clone(), config("r"));
    r.register("panics", Panics);
    r.register(
        "refused",
        Scripted(Mutex::new(
            vec![Err(JobError::permanent(
                "401 Unauthorized: check the API token",
            ))]
            .into(),
        )),
    );
    let (r, impatient) = (Arc::new(r), Arc::new(impatient));
    let ids = db
        .store
        .enqueue(
            &[
                NewJob::new("a", "slow", serde_json::json!({}))
                    .at(t0() - chrono::Duration::seconds(1)),
                NewJob::new("b", "panics", serde_json::json!({})),
                NewJob::new("c", "refused", serde_json::json!({})),
                NewJob::new("d", "unknown.kind", serde_json::json!({})),
            ],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        impatient.run_once().await.unwrap(),
        1,
        "the oldest job, `a`, first"
    );
    assert_eq!(r.run_once().await.unwrap(), 3);
    let job = |i: usize| {
        let store = db.store.clone();
        let id = ids[i];
        async move { store.job(id).await.unwrap().unwrap() }
    };
    let a = job(0).await;
    assert_eq!(
        (a.state, a.last_error.as_deref()),
        (JobState::Pending, Some("timed out after 50ms"))
    );
    let b = job(1).await;
    assert_eq!(
        (b.state, b.last_error.as_deref()),
        (
            JobState::Pending,
            Some("the handler panicked: index out of bounds")
        )
    );
    let c = job(2).await;
    assert_eq!((c.state, c.attempts), (JobState::Dead, 1));
    assert_eq!(
        c.last_error.as_deref(),
        Some("401 Unauthorized: check the API token")
    );
    let d = job(3).await;
    assert_eq!(d.state, JobState::Pending);
    assert!(d
        .last_error
        .unwrap()
        .contains("no handler for jobs of kind `unknown.kind`"));
}

async fn timers_fire_when_due_and_not_before(db: TestDb) {
    let clock = Arc::new(ManualClock::new(t0()));
    let counter = Counter::default();
    let mut r = Runner::new(db.store.clone(), clock.clone(), config("r"));
    r.register("remind", counter.clone());
    let r = Arc::new(r);
    let five = t0() + chrono::Duration::minutes(5);
    db.store
        .enqueue(
            &[
                NewJob::new("nudge-severity", "remind", serde_json::json!({})).at(five),
                NewJob::new("nudge-update", "remind", serde_json::json!({})).at(five),
            ],
            t0(),
        )
        .await
        .unwrap();
    assert!(db.store.cancel_job("nudge-update", t0()).await.unwrap());
    clock.advance(chrono::Duration::minutes(4));
    assert_eq!(r.drain().await.unwrap(), 0);
    clock.advance(chrono::Duration::minutes(1));
    assert_eq!(r.drain().await.unwrap(), 1);
    assert_eq!(
        counter.0.lock().unwrap().keys().collect::<Vec<_>>(),
        vec!["nudge-severity"]
    );
}
