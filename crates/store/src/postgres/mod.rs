//! The store for several replicas: PostgreSQL. Concurrency comes from row locks rather than
//! one writer: a command locks its incident row (`FOR UPDATE`), a declaration the counter row,
//! and runners claim jobs with `FOR UPDATE SKIP LOCKED`, so replicas never wait on each
//! other's claims and never claim the same job.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use klaxon_core::{
    to_millis, ChatIdentity, Command, Declare, Event, Incident, IncidentRef, NewPerson, Person,
    PersonId, Timestamp,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder};

use crate::migrate::{self, Migration};
use crate::{
    flow, query, rows, Applied, Backend, Claim, IncidentPage, IncidentQuery, Job, JobCount, JobId,
    JobOutcome, NewJob, Request, Store, StoreError,
};

mod tx;

const MIGRATIONS: &[Migration] = &[
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
];

/// Taken while migrating, so replicas starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6b6c_6178_6f6e; // "klaxon"

const JOB_COLUMNS: &str = "id, key, kind, payload::text AS payload, incident_number, state, \
    attempts, max_attempts, run_at_ms, lease_owner, lease_until_ms, last_error, \
    checkpoint::text AS checkpoint, result::text AS result, created_at_ms, updated_at_ms, \
    finished_at_ms";

pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    /// Connects and migrates. `schema` puts every table in that schema (tests use one schema
    /// each for a fresh database); it must exist.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<PgStore, StoreError> {
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
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Config(format!("cannot connect to {}: {e}", crate::redact(url)))
            })?;
        apply_migrations(&pool).await?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<tx::PgTx, StoreError> {
        Ok(tx::PgTx(self.pool.begin().await?))
    }
}

async fn apply_migrations(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(migrate::CREATE_TABLE).execute(&mut *tx).await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM klaxon_migrations")
        .fetch_all(&mut *tx)
        .await?;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying PostgreSQL migration"
        );
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO klaxon_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(to_millis(klaxon_core::now()))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM klaxon_migrations")
            .fetch_one(&self.pool)
            .await?;
        migrate::check_current(v, MIGRATIONS)
    }

    async fn declare(&self, req: Request<'_, Declare>) -> Result<Applied, StoreError> {
        let mut tx = self.begin().await?;
        let applied = flow::declare(&mut tx, &req).await?;
        tx.0.commit().await?;
        Ok(applied)
    }

    async fn execute(
        &self,
        incident: IncidentRef,
        req: Request<'_, Command>,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.begin().await?;
        let applied = flow::execute(&mut tx, incident, &req).await?;
        if !applied.events.is_empty() {
            tx.0.commit().await?;
        }
        Ok(applied)
    }

    async fn execute_all(
        &self,
        incident: IncidentRef,
        req: Request<'_, Vec<Command>>,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.begin().await?;
        let applied = flow::execute_commands(&mut tx, incident, &req, &req.command).await?;
        if !applied.events.is_empty() {
            tx.0.commit().await?;
        }
        Ok(applied)
    }

    async fn open_by_severity(&self) -> Result<Vec<(Option<String>, u64)>, StoreError> {
        let found: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT severity, COUNT(*) FROM incidents WHERE phase < $1 AND NOT drill \
             GROUP BY severity",
        )
        .bind(klaxon_core::Phase::Resolved as i64)
        .fetch_all(&self.pool)
        .await?;
        // Sorted here: the databases order NULL differently.
        let mut counts: Vec<(Option<String>, u64)> =
            found.into_iter().map(|(s, n)| (s, n as u64)).collect();
        counts.sort();
        Ok(counts)
    }

    async fn incident(&self, r: IncidentRef) -> Result<Option<Incident>, StoreError> {
        let row = sqlx::query("SELECT state::text AS state FROM incidents WHERE number = $1")
            .bind(r.number() as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::incident).transpose()
    }

    async fn events(
        &self,
        r: IncidentRef,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let found = sqlx::query(
            "SELECT data::text AS data FROM events WHERE incident_number = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(r.number() as i64)
        .bind(after as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        found.iter().map(rows::event).collect()
    }

    async fn list_incidents(&self, q: &IncidentQuery) -> Result<IncidentPage, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT i.state::text AS state FROM incidents i WHERE 1 = 1",
        );
        query::push_filters(&mut qb, q, |qb, word| {
            qb.push(
                " AND i.number IN (SELECT t.incident_number FROM incident_text t \
                 WHERE t.tsv @@ to_tsquery('simple', ",
            );
            // Words are letters and digits only, so `word:*` is a valid prefix query.
            qb.push_bind(format!("{word}:*"));
            qb.push("))");
        });
        let found = qb.build().fetch_all(&self.pool).await?;
        let incidents = found
            .iter()
            .map(rows::incident)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(query::page(incidents, q))
    }

    async fn create_person(&self, p: &NewPerson, at: Timestamp) -> Result<Person, StoreError> {
        let row = sqlx::query(
            "INSERT INTO persons (name, email, slack_user_id, matrix_id, created_at_ms, access) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(&p.name)
        .bind(&p.email)
        .bind(&p.slack_user_id)
        .bind(&p.matrix_id)
        .bind(to_millis(at))
        .bind(p.access.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(crate::common::conflict)?;
        rows::person(&row)
    }

    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        let row = sqlx::query("SELECT * FROM persons WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::person).transpose()
    }

    async fn person_by_identity(
        &self,
        identity: &ChatIdentity,
    ) -> Result<Option<Person>, StoreError> {
        let (column, value) = crate::common::column(identity);
        let row = sqlx::query(&format!("SELECT * FROM persons WHERE {column} = $1"))
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::person).transpose()
    }

    async fn link_identity(
        &self,
        id: PersonId,
        identity: &ChatIdentity,
    ) -> Result<bool, StoreError> {
        let (column, value) = crate::common::column(identity);
        let done = sqlx::query(&format!(
            "UPDATE persons SET {column} = $1 WHERE id = $2 AND {column} IS NULL"
        ))
        .bind(value)
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(crate::common::conflict)?;
        Ok(done.rows_affected() == 1)
    }

    async fn enqueue(&self, jobs: &[NewJob], at: Timestamp) -> Result<Vec<JobId>, StoreError> {
        let mut tx = self.begin().await?;
        let ids = flow::Tx::insert_jobs(&mut tx, jobs, at).await?;
        tx.0.commit().await?;
        Ok(ids)
    }

    async fn claim_jobs(
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
        .fetch_all(&self.pool)
        .await?;
        crate::common::sorted_jobs(found.iter().map(rows::job).collect())
    }

    async fn extend_leases(
        &self,
        runner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until_ms = $1, updated_at_ms = $2 \
             WHERE lease_owner = $3 AND state = 'running'",
        )
        .bind(to_millis(until))
        .bind(to_millis(now))
        .bind(runner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn save_checkpoint(
        &self,
        claim: &Claim,
        checkpoint: &serde_json::Value,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET checkpoint = $1::jsonb, updated_at_ms = $2 \
             WHERE id = $3 AND state = 'running' AND lease_owner = $4 AND attempts = $5",
        )
        .bind(checkpoint.to_string())
        .bind(to_millis(now))
        .bind(claim.job.0)
        .bind(&claim.runner)
        .bind(i64::from(claim.attempt))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_job(
        &self,
        claim: &Claim,
        outcome: &JobOutcome,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let Some(job) = tx.finish(claim, outcome, now).await? else {
            return Ok(false);
        };
        flow::record_on_timeline(&mut tx, &job, outcome, now).await?;
        tx.0.commit().await?;
        Ok(true)
    }

    async fn retry_job(&self, id: JobId, now: Timestamp) -> Result<Job, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = $1, updated_at_ms = $1, \
                 lease_owner = NULL, lease_until_ms = NULL, finished_at_ms = NULL \
             WHERE id = $2 AND state IN ('dead', 'cancelled') RETURNING {JOB_COLUMNS}"
        ))
        .bind(to_millis(now))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => rows::job(&row),
            None => Err(crate::common::not_retryable(id, self.job(id).await?)),
        }
    }

    async fn cancel_job(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', updated_at_ms = $1, finished_at_ms = $1 \
             WHERE key = $2 AND state = 'pending'",
        )
        .bind(to_millis(now))
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn job_by_key(&self, key: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE key = $1"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn incident_jobs(&self, r: IncidentRef) -> Result<Vec<Job>, StoreError> {
        let found = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE incident_number = $1 ORDER BY id"
        ))
        .bind(r.number() as i64)
        .fetch_all(&self.pool)
        .await?;
        found.iter().map(rows::job).collect()
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT LEAST((SELECT MIN(run_at_ms) FROM jobs WHERE state = 'pending'), \
                          (SELECT MIN(lease_until_ms) FROM jobs WHERE state = 'running'))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(ms.map(klaxon_core::from_millis))
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError> {
        let found: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
        )
        .fetch_all(&self.pool)
        .await?;
        crate::common::job_counts(found)
    }
}
