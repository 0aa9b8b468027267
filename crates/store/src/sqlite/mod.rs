//! The embedded store: one SQLite file in WAL mode. All writes go through a single
//! connection, so writers never contend for SQLite's one write lock (and never see
//! `SQLITE_BUSY`); reads use a pool of read-only connections that WAL lets run beside it.
//! Every write transaction starts with `BEGIN IMMEDIATE`, which takes the write lock up front,
//! so that even another process on the same file cannot interleave.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use klaxon_core::{
    to_millis, ChatIdentity, Command, Declare, Event, Incident, IncidentRef, NewPerson, Person,
    PersonId, Timestamp,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

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

const JOB_COLUMNS: &str = "id, key, kind, payload, incident_number, state, attempts, \
    max_attempts, run_at_ms, lease_owner, lease_until_ms, last_error, checkpoint, result, \
    created_at_ms, updated_at_ms, finished_at_ms";

pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database at `path` and applies
    /// the migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Config(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Full);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(
                options
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(|e| {
                StoreError::Config(format!("cannot open the database {}: {e}", path.display()))
            })?;
        apply_migrations(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            writer,
            reader,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn begin(&self) -> Result<tx::SqliteTx, StoreError> {
        Ok(tx::SqliteTx(
            self.writer.begin_with("BEGIN IMMEDIATE").await?,
        ))
    }

    /// Runs SQL as it is, for tests that need to break things on purpose.
    #[cfg(feature = "testing")]
    pub async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql).execute(&self.writer).await?;
        Ok(())
    }

    /// Releases the database file (used by tests that reopen it).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

async fn apply_migrations(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(migrate::CREATE_TABLE).execute(&mut *tx).await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM klaxon_migrations")
        .fetch_all(&mut *tx)
        .await?;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying SQLite migration"
        );
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO klaxon_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
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
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM klaxon_migrations")
            .fetch_one(&self.reader)
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
        .fetch_all(&self.reader)
        .await?;
        // Sorted here: the databases order NULL differently.
        let mut counts: Vec<(Option<String>, u64)> =
            found.into_iter().map(|(s, n)| (s, n as u64)).collect();
        counts.sort();
        Ok(counts)
    }

    async fn incident(&self, r: IncidentRef) -> Result<Option<Incident>, StoreError> {
        let row = sqlx::query("SELECT state FROM incidents WHERE number = ?1")
            .bind(r.number() as i64)
            .fetch_optional(&self.reader)
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
            "SELECT data FROM events WHERE incident_number = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )
        .bind(r.number() as i64)
        .bind(after as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        found.iter().map(rows::event).collect()
    }

    async fn list_incidents(&self, q: &IncidentQuery) -> Result<IncidentPage, StoreError> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT i.state FROM incidents i WHERE 1 = 1");
        query::push_filters(&mut qb, q, |qb, word| {
            qb.push(
                " AND i.number IN (SELECT t.incident_number FROM incident_text_fts f \
                 JOIN incident_text t ON t.id = f.rowid WHERE incident_text_fts MATCH ",
            );
            // A quoted FTS5 string followed by `*` is a prefix query for exactly that token.
            qb.push_bind(format!("\"{word}\"*"));
            qb.push(")");
        });
        let found = qb.build().fetch_all(&self.reader).await?;
        let incidents = found
            .iter()
            .map(rows::incident)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(query::page(incidents, q))
    }

    async fn create_person(&self, p: &NewPerson, at: Timestamp) -> Result<Person, StoreError> {
        let row = sqlx::query(
            "INSERT INTO persons (name, email, slack_user_id, matrix_id, created_at_ms, access) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING *",
        )
        .bind(&p.name)
        .bind(&p.email)
        .bind(&p.slack_user_id)
        .bind(&p.matrix_id)
        .bind(to_millis(at))
        .bind(p.access.as_str())
        .fetch_one(&self.writer)
        .await
        .map_err(crate::common::conflict)?;
        rows::person(&row)
    }

    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        let row = sqlx::query("SELECT * FROM persons WHERE id = ?1")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(rows::person).transpose()
    }

    async fn person_by_identity(
        &self,
        identity: &ChatIdentity,
    ) -> Result<Option<Person>, StoreError> {
        let (column, value) = crate::common::column(identity);
        let row = sqlx::query(&format!("SELECT * FROM persons WHERE {column} = ?1"))
            .bind(value)
            .fetch_optional(&self.reader)
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
            "UPDATE persons SET {column} = ?1 WHERE id = ?2 AND {column} IS NULL"
        ))
        .bind(value)
        .bind(id.0)
        .execute(&self.writer)
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
        // One statement on the one writer connection: the claim is atomic.
        let found = sqlx::query(&format!(
            "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until_ms = ?2, \
                 attempts = attempts + 1, updated_at_ms = ?3 \
             WHERE id IN (SELECT j.id FROM jobs j WHERE j.state = 'pending' AND j.run_at_ms <= ?3 \
                     AND NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs p ON p.id = d.depends_on \
                                     WHERE d.job_id = j.id AND p.state <> 'succeeded') \
                     ORDER BY j.run_at_ms, j.id LIMIT ?4) \
                OR id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_until_ms < ?3 \
                     ORDER BY lease_until_ms LIMIT ?4) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(runner)
        .bind(to_millis(lease_until))
        .bind(to_millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
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
            "UPDATE jobs SET lease_until_ms = ?1, updated_at_ms = ?2 \
             WHERE lease_owner = ?3 AND state = 'running'",
        )
        .bind(to_millis(until))
        .bind(to_millis(now))
        .bind(runner)
        .execute(&self.writer)
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
            "UPDATE jobs SET checkpoint = ?1, updated_at_ms = ?2 \
             WHERE id = ?3 AND state = 'running' AND lease_owner = ?4 AND attempts = ?5",
        )
        .bind(checkpoint.to_string())
        .bind(to_millis(now))
        .bind(claim.job.0)
        .bind(&claim.runner)
        .bind(i64::from(claim.attempt))
        .execute(&self.writer)
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
            "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = ?1, updated_at_ms = ?1, \
                 lease_owner = NULL, lease_until_ms = NULL, finished_at_ms = NULL \
             WHERE id = ?2 AND state IN ('dead', 'cancelled') RETURNING {JOB_COLUMNS}"
        ))
        .bind(to_millis(now))
        .bind(id.0)
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(row) => rows::job(&row),
            None => Err(crate::common::not_retryable(id, self.job(id).await?)),
        }
    }

    async fn cancel_job(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', updated_at_ms = ?1, finished_at_ms = ?1 \
             WHERE key = ?2 AND state = 'pending'",
        )
        .bind(to_millis(now))
        .bind(key)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn job_by_key(&self, key: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE key = ?1"))
            .bind(key)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn incident_jobs(&self, r: IncidentRef) -> Result<Vec<Job>, StoreError> {
        let found = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE incident_number = ?1 ORDER BY id"
        ))
        .bind(r.number() as i64)
        .fetch_all(&self.reader)
        .await?;
        found.iter().map(rows::job).collect()
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM (SELECT MIN(run_at_ms) AS t FROM jobs WHERE state = 'pending' \
             UNION ALL SELECT MIN(lease_until_ms) FROM jobs WHERE state = 'running')",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(ms.map(klaxon_core::from_millis))
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError> {
        let found: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
        )
        .fetch_all(&self.reader)
        .await?;
        crate::common::job_counts(found)
    }
}
