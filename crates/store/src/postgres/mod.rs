//! The store for several replicas: PostgreSQL. Concurrency comes from row locks rather than
//! one writer: a command locks its incident row (`FOR NO KEY UPDATE`, which keeps other commands
//! out but not the rows that refer to the incident, whose foreign keys only share it), a
//! declaration the counter row, and runners claim jobs with `FOR UPDATE SKIP LOCKED`, so replicas never wait on each
//! other's claims and never claim the same job. Job outcomes go through a group commit of their
//! own (`batch.rs`). Reads, `BEGIN`s and the job writes that may be sent twice go again on
//! another connection when the server had closed theirs (`resend.rs`).

mod batch;
mod resend;

pub(crate) use resend::AllClosed;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use klaxon_core::{to_millis, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Transaction};

use crate::flow::Tx;
use crate::migrate::{self, Migration};
use crate::shared::{claim_waiting_sql, JOB_COLUMNS};
use crate::{
    rows, Claim, ClaimNext, Effects, Finished, Job, JobId, JobOutcome, NewJob, StoreError,
};

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "accounts",
        sql: include_str!("migrations/0002_accounts.sql"),
    },
    Migration {
        version: 3,
        name: "chat",
        sql: include_str!("migrations/0003_chat.sql"),
    },
    Migration {
        version: 4,
        name: "cursors",
        sql: include_str!("migrations/0004_cursors.sql"),
    },
    Migration {
        version: 5,
        name: "shown",
        sql: include_str!("migrations/0005_shown.sql"),
    },
    Migration {
        version: 6,
        name: "open",
        sql: include_str!("migrations/0006_open.sql"),
    },
    Migration {
        version: 7,
        name: "text_statistics",
        sql: include_str!("migrations/0007_text_statistics.sql"),
    },
];

/// Taken while migrating, so replicas starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6b6c_6178_6f6e; // "klaxon"

pub struct PgStore {
    pub(crate) pool: PgPool,
    /// The queue of the outcomes' group commit.
    outcomes: tokio::sync::mpsc::UnboundedSender<batch::Outcome>,
}

/// The connections the pool keeps open however idle (see `connect_pinging`).
const KEPT_OPEN: u32 = 8;

/// How long a pooled connection may sit idle and still be taken out without a ping.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

impl PgStore {
    /// Connects and migrates. `schema` puts every table in that schema (tests use one schema
    /// each for a fresh database); it must exist.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<PgStore, StoreError> {
        PgStore::connect_pinging(url, schema, IDLE_BEFORE_PING).await
    }

    /// As [`PgStore::connect`], with a pooled connection pinged before use once it has been
    /// idle for `idle_before_ping`.
    async fn connect_pinging(
        url: &str,
        schema: Option<&str>,
        idle_before_ping: Duration,
    ) -> Result<PgStore, StoreError> {
        let mut options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Config(format!(
                "`{}` is not a PostgreSQL URL: {e}",
                crate::redact(url)
            ))
        })?;
        if let Some(schema) = schema {
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // Kept open however long Klaxon sits idle: incidents come hours apart, and the
            // first steps of a declaration take about this many connections at once, each of
            // which would otherwise be a new connection (a few milliseconds: TCP, start-up,
            // authentication) on the way to mobilising.
            .min_connections(KEPT_OPEN)
            .acquire_timeout(crate::CONNECTION_WAIT)
            // sqlx pings a connection when it goes back to the pool and, by default, again
            // when it is taken out: two round trips besides the query. One taken out within
            // a second of its return-time ping is used as it is; one idle for longer (it may
            // have outlived a server restart) is pinged first, as before.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= idle_before_ping {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Config(format!("cannot connect to {}: {e}", crate::redact(url)))
            })?;
        apply_migrations(&pool).await?;
        analyse_stale(&pool).await?;
        let (outcomes, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batch::run(pool.clone(), queue));
        Ok(PgStore { pool, outcomes })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// For reads: each query on a connection of the pool, sent again on another when that
    /// one turns out closed (`resend.rs`).
    pub(crate) async fn read(&self) -> Result<Box<resend::Resending>, StoreError> {
        Ok(resend::Resending::new(&self.pool))
    }

    /// A connection of the pool, for a write of one statement (writes run side by side).
    /// The write is not sent again if it fails, as whether it took effect is not known, so
    /// the connection is pinged first (`resend.rs`). These writes are of accounts, sessions
    /// and tokens (a token's last use, at most once a minute) and of jobs by a runner's
    /// heartbeat or by hand (leases, retries, cancels): none is on a declaration's chain of
    /// calls.
    pub(crate) async fn writing(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        resend::pinged(&self.pool).await
    }

    /// A transaction, begun on another connection when the one taken turns out closed.
    pub(crate) async fn begin(&self) -> Result<PgTx, StoreError> {
        resend::Pooled(&self.pool).begin().await
    }

    /// Writes run side by side on PostgreSQL, each in its own transaction.
    pub(crate) async fn enqueue_jobs(
        &self,
        jobs: &[NewJob],
        at: Timestamp,
    ) -> Result<Vec<JobId>, StoreError> {
        crate::shared::in_transaction!(self, |_| true, |tx| tx.insert_jobs(jobs, at)).await
    }

    /// Whether a transaction whose statement failed with `e` runs again (`resend.rs`).
    pub(crate) fn run_again(&self, e: StoreError, attempt: u32) -> Result<(), StoreError> {
        resend::Pooled(&self.pool).run_again(e, attempt)
    }

    /// One statement, outside a transaction: `BEGIN` and `COMMIT` would be two round trips
    /// more on a job's way to its call. Sent again if its connection was closed: the same
    /// checkpoint under the same claim changes nothing the first did not (`resend.rs`).
    pub(crate) async fn checkpoint_claimed(
        &self,
        claim: &Claim,
        checkpoint: &serde_json::Value,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Self::checkpoint_on(
            &mut *resend::Resending::new(&self.pool),
            claim,
            checkpoint,
            now,
        )
        .await
    }

    /// Hands an outcome to the group commit (`batch.rs`) and waits for its commit: the
    /// outcome, its timeline entry and the claim of the waiting jobs `next` asks for are
    /// written in one transaction, with the outcomes that came beside it.
    pub(crate) async fn finish_claimed(
        &self,
        claim: &Claim,
        outcome: &JobOutcome,
        now: Timestamp,
        effects: Arc<dyn Effects>,
        next: Option<&ClaimNext>,
    ) -> Result<Finished, StoreError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Config("the store's writer of job outcomes has stopped".into());
        self.outcomes
            .send(batch::Outcome {
                claim: claim.clone(),
                outcome: outcome.clone(),
                now,
                effects,
                next: next.cloned(),
                done,
            })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// A held outcome's record, with the jobs it released that may run now claimed for
    /// `next.runner` (`common::to_claim` decides whether to claim).
    async fn claim_released<'e, E: sqlx::Executor<'e, Database = Postgres>>(
        on: E,
        finished: &Claim,
        released: bool,
        next: Option<&ClaimNext>,
        now: Timestamp,
    ) -> Result<Finished, StoreError> {
        let Some(next) = next else {
            return Ok(crate::common::finished(released, Vec::new(), 0));
        };
        let found = sqlx::query(&claim_waiting_sql("FOR UPDATE OF j SKIP LOCKED"))
            .bind(&next.runner)
            .bind(to_millis(next.lease_until))
            .bind(to_millis(now))
            .bind(i64::from(next.limit))
            .bind(finished.job.0)
            .fetch_all(on)
            .await?;
        let claimed = crate::common::sorted_jobs(found.iter().map(rows::job).collect())?;
        Ok(crate::common::finished(released, claimed, next.limit))
    }

    pub(crate) async fn claim(
        &self,
        runner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        // SKIP LOCKED: rows another replica is claiming right now are passed over, not waited for.
        let found = sqlx::query(&format!(
            "WITH due AS ( \
                 SELECT j.id FROM jobs j WHERE j.state = 'pending' AND j.run_at_ms <= $3 \
                   AND NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs p ON p.id = d.depends_on \
                                   WHERE d.job_id = j.id AND p.state <> 'succeeded') \
                 ORDER BY j.run_at_ms, j.id LIMIT $4 FOR UPDATE SKIP LOCKED), \
             expired AS ( \
                 SELECT id FROM jobs WHERE state = 'running' AND lease_until_ms < $3 \
                 ORDER BY lease_until_ms LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET state = 'running', lease_owner = $1, lease_until_ms = $2, \
                 attempts = attempts + 1, updated_at_ms = $3 \
             WHERE id IN (SELECT id FROM due UNION SELECT id FROM expired) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(runner)
        .bind(to_millis(lease_until))
        .bind(to_millis(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *resend::Resending::new(&self.pool))
        .await?;
        crate::common::sorted_jobs(found.iter().map(rows::job).collect())
    }

    /// PostgreSQL's planner chooses between walking the newest incidents and reading the
    /// GIN index by how common the word is (its statistics: migration 7), so a search is one
    /// query.
    pub(crate) const SEARCH_IN_SLICES: bool = false;

    /// The text search query of each searched word: its beginning (`word:*`). Words are
    /// letters and digits only, so it is a valid prefix query.
    pub(crate) async fn text_matches(&self, words: &[String]) -> Result<Vec<String>, StoreError> {
        Ok(words.iter().map(|w| format!("{w}:*")).collect())
    }

    /// The incidents whose text matches `tsquery` (from `text_matches`), through the GIN
    /// index.
    pub(crate) fn push_text_match(
        qb: &mut QueryBuilder<'_, Postgres>,
        tsquery: &str,
        _: Option<crate::query::Slice>,
    ) {
        qb.push(
            " AND i.number IN (SELECT t.incident_number FROM incident_text t \
             WHERE t.tsv @@ to_tsquery('simple', ",
        );
        qb.push_bind(tsquery.to_string());
        qb.push("))");
    }
}

/// Gives the planner statistics for the tables that changed much since they were last
/// analysed, by autovacuum's own rule (50 rows and a tenth of the table), as SQLite's
/// `PRAGMA optimize` does at the start: where autovacuum is off, or has not run yet after a bulk
/// load, PostgreSQL otherwise misjudges the incident list's filters (measured on 100,000
/// incidents: 410 ms for a filtered page without statistics, 2 ms with them).
async fn analyse_stale(pool: &PgPool) -> Result<(), StoreError> {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = current_schema() \
         AND n_mod_since_analyze > 50 + n_live_tup / 10",
    )
    .fetch_all(&mut *resend::Resending::new(pool))
    .await?;
    for table in stale {
        tracing::info!(table, "analysing a table for the query planner");
        // Sent again like a read if its connection was closed: ANALYZE twice is harmless.
        sqlx::raw_sql(&format!("ANALYZE \"{}\"", table.replace('"', "\"\"")))
            .execute(&mut *resend::Resending::new(pool))
            .await?;
    }
    Ok(())
}

/// The pending migrations, in one transaction under an advisory lock, so that replicas
/// starting together apply each once. A run whose connection the server closes before its
/// `COMMIT` leaves nothing (the lock goes with the transaction) and runs again whole.
async fn apply_migrations(pool: &PgPool) -> Result<(), StoreError> {
    let pooled = resend::Pooled(pool);
    crate::shared::in_transaction!(pooled, |_| true, |tx| migrate_in(&mut tx.0)).await
}

async fn migrate_in(tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut **tx)
        .await?;
    migrate::apply_pending!(*tx, MIGRATIONS, "PostgreSQL");
    Ok(())
}

pub(crate) struct PgTx(pub(crate) Transaction<'static, Postgres>);

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose connections name themselves `name` to the server, so that a test can
    /// close exactly these from outside.
    async fn named_store(idle_before_ping: Duration) -> (PgStore, PgPool, String) {
        let db = crate::testing::postgres().await;
        let name = format!("klaxon_idle_{:016x}", fastrand::u64(..));
        let join = if db.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{join}application_name={name}", db.url);
        let store = PgStore::connect_pinging(&url, db.schema.as_deref(), idle_before_ping)
            .await
            .expect("open the store");
        // The pool opens the connections it keeps in the background: all of them must be
        // open before they are closed, or one opened after would be left.
        let all_open = || async { store.pool().num_idle() >= KEPT_OPEN as usize };
        until(
            "the pool has all the connections it keeps open and idle",
            all_open,
        )
        .await;
        let admin = PgPool::connect(&db.url).await.expect("connect as admin");
        (store, admin, name)
    }

    /// Closes the store's connections from the server's side, as a restart does, and waits
    /// until the server has let them go.
    async fn close_from_the_server(admin: &PgPool, name: &str) {
        let closed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(name)
        .fetch_all(admin)
        .await
        .expect("terminate the store's connections");
        assert!(!closed.is_empty(), "the store held no connection to close");
        let all_gone = || async {
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1",
            )
            .bind(name)
            .fetch_one(admin)
            .await
            .expect("count the store's connections");
            left == 0
        };
        until(
            "the server has let go of all the store's connections",
            all_gone,
        )
        .await;
    }

    /// Once the pool has opened again all the connections it keeps, closes them all from
    /// the server's side.
    async fn close_again(store: &PgStore, admin: &PgPool, name: &str) {
        let all_open = || async { store.pool().num_idle() >= KEPT_OPEN as usize };
        until(
            "the pool has opened the connections it keeps again",
            all_open,
        )
        .await;
        close_from_the_server(admin, name).await;
    }

    /// Declares an incident titled `title` by person 1.
    async fn declare(store: &PgStore, title: &str) -> Result<crate::Applied, StoreError> {
        use crate::{NoEffects, Request, Store};
        use klaxon_core::{Actor, Catalog, Declare, PersonId};

        let catalog = Catalog::default();
        let request = Request {
            command: Declare {
                title: title.into(),
                ..Default::default()
            },
            actor: Actor::person(PersonId(1)),
            at: klaxon_core::from_millis(1_800_000_000_000),
            catalog: &catalog,
            effects: &NoEffects,
        };
        store.declare(request).await
    }

    /// Waits until `check` holds, failing the test if it does not within 30 s.
    async fn until<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !check().await {
            assert!(
                std::time::Instant::now() < deadline,
                "not within 30 s: {what}"
            );
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL"]
    async fn a_connection_closed_while_idle_is_replaced_before_use() {
        let (store, admin, name) = named_store(Duration::ZERO).await;
        close_from_the_server(&admin, &name).await;
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(store.pool())
            .await
            .expect("a closed connection was handed out");
        assert_eq!(one, 1);
    }

    /// After a restart or a failover closed every connection the store held, reads and
    /// declarations go on, on connections the store takes instead, with no ping needed.
    #[tokio::test]
    #[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL"]
    async fn reads_and_declarations_go_on_when_the_server_closed_every_connection() {
        use crate::{AuthStore, Store};

        let (store, admin, name) = named_store(Duration::MAX).await;
        close_from_the_server(&admin, &name).await;
        store
            .ready()
            .await
            .expect("a read after the connections were closed");

        close_again(&store, &admin, &name).await;
        let declared = declare(&store, "Checkout is down")
            .await
            .expect("a declaration after the connections were closed");

        close_again(&store, &admin, &name).await;
        let page = store
            .list_incidents(&crate::IncidentQuery::default())
            .await
            .expect("a list after the connections were closed");
        let listed: Vec<_> = page.incidents.iter().map(|i| i.reference).collect();
        assert_eq!(listed, [declared.incident.reference]);

        close_again(&store, &admin, &name).await;
        let at = klaxon_core::from_millis(1_800_000_060_000);
        let token = store
            .create_api_token(
                "ci",
                "hash-of-the-secret",
                klaxon_core::Access::Admin,
                None,
                at,
            )
            .await
            .expect("a write outside a transaction after the connections were closed");
        let found = store.api_tokens().await.expect("list the tokens");
        assert_eq!(found.iter().map(|t| t.id).collect::<Vec<_>>(), [token.id]);
    }

    /// A runner's claim, checkpoint and outcome go on too after the server closed every
    /// connection: each is sent again, or begun again, on a connection that is open.
    #[tokio::test]
    #[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL"]
    async fn a_job_runs_on_when_the_server_closed_every_connection() {
        use crate::{NoEffects, Store};

        let (store, admin, name) = named_store(Duration::MAX).await;
        let at = |s: i64| klaxon_core::from_millis(1_800_000_000_000 + s * 1000);
        let job = NewJob::new("after-a-restart", "test", serde_json::json!({}));
        store.enqueue(&[job], at(0)).await.expect("enqueue");

        close_from_the_server(&admin, &name).await;
        let claimed = store
            .claim_jobs("runner", at(1), at(60), 10)
            .await
            .expect("a claim after the connections were closed");
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        let claim = claimed[0].claim().expect("claimed by the runner");

        close_again(&store, &admin, &name).await;
        let step = serde_json::json!({"step": 1});
        let held = store
            .save_checkpoint(&claim, &step, at(2))
            .await
            .expect("a checkpoint after the connections were closed");
        assert!(held, "the claim is still held");

        close_again(&store, &admin, &name).await;
        let succeeded = JobOutcome::Succeeded {
            result: serde_json::json!({}),
            timeline: None,
        };
        let finished = store
            .finish_job(&claim, &succeeded, at(3), Arc::new(NoEffects))
            .await
            .expect("an outcome after the connections were closed");
        assert!(finished, "the claim is still held");
        let job = store.job(claim.job).await.unwrap().expect("the job");
        assert_eq!(job.checkpoint, Some(step));
        assert_eq!(job.state, crate::JobState::Succeeded);
    }

    /// Makes the server terminate the connection that brings the first insert into `table`.
    /// A sequence, which a rollback does not undo, counts the inserts tried ([`inserts_tried`]).
    /// (The trigger's `pg_sleep` only lets the server act on its own termination, which it
    /// does at once; the test waits on nothing.)
    async fn cut_off_the_first_insert_into(pool: &PgPool, table: &str) {
        for statement in [
            "CREATE SEQUENCE inserts_tried".to_string(),
            "CREATE FUNCTION cut_off_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF nextval('inserts_tried') = 1 THEN \
                     PERFORM pg_terminate_backend(pg_backend_pid()); \
                     PERFORM pg_sleep(5); \
                 END IF; \
                 RETURN NEW; END $$"
                .to_string(),
            format!(
                "CREATE TRIGGER cut_off_once AFTER INSERT ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION cut_off_once()"
            ),
        ] {
            sqlx::query(&statement)
                .execute(pool)
                .await
                .expect(&statement);
        }
    }

    async fn inserts_tried(pool: &PgPool) -> i64 {
        sqlx::query_scalar("SELECT last_value FROM inserts_tried")
            .fetch_one(pool)
            .await
            .expect("read how many inserts were tried")
    }

    /// A connection the server closes in the middle of a transaction (a failover, a restart,
    /// a pooler) leaves nothing of it, and the whole transaction runs again on another
    /// connection: the declaration succeeds, once. The first insert of an incident here
    /// makes the server terminate the connection it came on.
    #[tokio::test]
    #[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL"]
    async fn a_declaration_cut_off_before_its_commit_runs_again_whole() {
        use crate::Store;

        let (store, _admin, _name) = named_store(Duration::MAX).await;
        cut_off_the_first_insert_into(store.pool(), "incidents").await;
        let declared = declare(&store, "Payments are failing")
            .await
            .expect("a declaration whose connection was closed in the middle");

        let tried = inserts_tried(store.pool()).await;
        assert_eq!(
            tried, 2,
            "the incident was inserted once, cut off, then once again"
        );
        // The first run left nothing: not its incident, not its number.
        assert_eq!(declared.incident.reference.number(), 1);
        let page = store
            .list_incidents(&crate::IncidentQuery::default())
            .await
            .unwrap();
        let listed: Vec<_> = page.incidents.iter().map(|i| i.reference).collect();
        assert_eq!(listed, [declared.incident.reference]);
        let events = store
            .events(declared.incident.reference, 0, 100)
            .await
            .unwrap();
        assert_eq!(events.len(), declared.events.len(), "{events:?}");
    }

    /// The same for the migrations a replica applies as it starts: cut off after the first
    /// migration ran, the whole transaction runs again, the store opens, and each migration
    /// is recorded once.
    #[tokio::test]
    #[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL"]
    async fn migrations_cut_off_before_their_commit_run_again_whole() {
        let (url, schema) = crate::testing::empty_postgres_schema().await;
        let options = PgConnectOptions::from_str(&url)
            .expect("the test database's URL")
            .options([("search_path", schema.as_str())]);
        let admin = PgPool::connect_with(options).await.expect("connect");
        sqlx::query(migrate::CREATE_TABLE)
            .execute(&admin)
            .await
            .expect("create the migrations' table");
        cut_off_the_first_insert_into(&admin, "klaxon_migrations").await;

        let store = PgStore::connect(&url, Some(&schema))
            .await
            .expect("a store whose migrations' connection was closed in the middle");

        let tried = inserts_tried(&admin).await;
        assert_eq!(
            tried,
            MIGRATIONS.len() as i64 + 1,
            "the first migration was recorded, cut off, then every one was recorded"
        );
        let recorded: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM klaxon_migrations ORDER BY version")
                .fetch_all(&admin)
                .await
                .unwrap();
        let mut versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        versions.sort_unstable();
        assert_eq!(recorded, versions);
        let declared = declare(&store, "Payments are failing")
            .await
            .expect("declare on the migrated schema");
        assert_eq!(declared.incident.reference.number(), 1);
    }

    /// Why the ping: without it, the first use of a connection the server closed fails.
    #[tokio::test]
    #[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL"]
    async fn without_the_ping_a_closed_connection_fails_its_first_use() {
        let (store, admin, name) = named_store(Duration::MAX).await;
        close_from_the_server(&admin, &name).await;
        let first = sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(store.pool())
            .await;
        assert!(first.is_err(), "a connection the server closed answered");
    }
}
