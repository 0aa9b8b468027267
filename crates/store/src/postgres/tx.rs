use klaxon_core::{to_millis, Event, Incident, IncidentRef, Timestamp};
use sqlx::{Postgres, Transaction};

use super::JOB_COLUMNS;
use crate::flow::{fields_text, Tx};
use crate::{rows, Claim, Job, JobId, JobOutcome, NewJob, StoreError};

pub(crate) struct PgTx(pub(crate) Transaction<'static, Postgres>);

impl Tx for PgTx {
    async fn next_incident_number(&mut self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'incident' RETURNING value",
        )
        .fetch_one(&mut *self.0)
        .await?;
        Ok(n as u64)
    }

    async fn load_incident(&mut self, r: IncidentRef) -> Result<Option<Incident>, StoreError> {
        // The row stays locked until commit: commands on one incident run one after another.
        let row =
            sqlx::query("SELECT state::text AS state FROM incidents WHERE number = $1 FOR UPDATE")
                .bind(r.number() as i64)
                .fetch_optional(&mut *self.0)
                .await?;
        row.as_ref().map(rows::incident).transpose()
    }

    async fn save_incident(&mut self, i: &Incident, new: bool) -> Result<(), StoreError> {
        let number = i.reference.number() as i64;
        let sql = if new {
            "INSERT INTO incidents (title, status, phase, severity, private, drill, updated_at_ms, \
                 version, state, declared_at_ms, number) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)"
        } else {
            "UPDATE incidents SET title = $1, status = $2, phase = $3, severity = $4, private = $5, \
                 drill = $6, updated_at_ms = $7, version = $8, state = $9::jsonb, declared_at_ms = $10 \
             WHERE number = $11"
        };
        sqlx::query(sql)
            .bind(&i.title)
            .bind(&i.status)
            .bind(i.phase as i64)
            .bind(&i.severity)
            .bind(i.private)
            .bind(i.drill)
            .bind(to_millis(i.updated_at))
            .bind(i.version as i64)
            .bind(serde_json::to_string(i)?)
            .bind(to_millis(i.declared_at))
            .bind(number)
            .execute(&mut *self.0)
            .await?;
        if !new {
            sqlx::query("DELETE FROM incident_services WHERE incident_number = $1")
                .bind(number)
                .execute(&mut *self.0)
                .await?;
            sqlx::query("DELETE FROM incident_labels WHERE incident_number = $1")
                .bind(number)
                .execute(&mut *self.0)
                .await?;
            sqlx::query("DELETE FROM incident_members WHERE incident_number = $1")
                .bind(number)
                .execute(&mut *self.0)
                .await?;
        }
        for person in &i.members {
            sqlx::query(
                "INSERT INTO incident_members (person_id, incident_number) VALUES ($1, $2)",
            )
            .bind(person.0)
            .bind(number)
            .execute(&mut *self.0)
            .await?;
        }
        for s in &i.services {
            sqlx::query("INSERT INTO incident_services (service, incident_number) VALUES ($1, $2)")
                .bind(s)
                .bind(number)
                .execute(&mut *self.0)
                .await?;
        }
        for (k, v) in &i.labels {
            sqlx::query(
                "INSERT INTO incident_labels (key, value, incident_number) VALUES ($1, $2, $3)",
            )
            .bind(k)
            .bind(v)
            .bind(number)
            .execute(&mut *self.0)
            .await?;
        }
        sqlx::query(
            "INSERT INTO incident_text (incident_number, seq, body) VALUES ($1, 0, $2) \
             ON CONFLICT (incident_number, seq) DO UPDATE SET body = excluded.body \
             WHERE incident_text.body <> excluded.body",
        )
        .bind(number)
        .bind(fields_text(i))
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_event(&mut self, e: &Event) -> Result<(), StoreError> {
        let number = e.incident.number() as i64;
        sqlx::query(
            "INSERT INTO events (incident_number, seq, at_ms, kind, data) VALUES ($1, $2, $3, $4, $5::jsonb)",
        )
        .bind(number)
        .bind(e.seq as i64)
        .bind(to_millis(e.at))
        .bind(e.kind.name())
        .bind(serde_json::to_string(e)?)
        .execute(&mut *self.0)
        .await?;
        if let Some(text) = e.kind.search_text() {
            sqlx::query(
                "INSERT INTO incident_text (incident_number, seq, body) VALUES ($1, $2, $3)",
            )
            .bind(number)
            .bind(e.seq as i64)
            .bind(text)
            .execute(&mut *self.0)
            .await?;
        }
        Ok(())
    }

    async fn insert_jobs(
        &mut self,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> Result<Vec<JobId>, StoreError> {
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            job.validate()?;
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO jobs (key, kind, payload, incident_number, state, attempts, max_attempts, \
                     run_at_ms, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3::jsonb, $4, 'pending', 0, $5, $6, $7, $7) \
                 ON CONFLICT (key) DO NOTHING RETURNING id",
            )
            .bind(&job.key)
            .bind(&job.kind)
            .bind(job.payload.to_string())
            .bind(job.incident.map(|r| r.number() as i64))
            .bind(i64::from(job.max_attempts))
            .bind(to_millis(job.run_at.unwrap_or(now)))
            .bind(to_millis(now))
            .fetch_optional(&mut *self.0)
            .await?;
            let id = match inserted {
                Some(id) => id,
                None => {
                    ids.push(JobId(self.job_id(&job.key).await?.unwrap_or_default()));
                    continue;
                }
            };
            for dep in &job.depends_on {
                let dep_id = self.job_id(dep).await?.ok_or_else(|| {
                    StoreError::InvalidJob(format!(
                        "job `{}` depends on `{dep}`, which was never enqueued",
                        job.key
                    ))
                })?;
                sqlx::query("INSERT INTO job_deps (job_id, depends_on) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(dep_id)
                    .execute(&mut *self.0)
                    .await?;
            }
            ids.push(JobId(id));
        }
        Ok(ids)
    }
}

impl PgTx {
    async fn job_id(&mut self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM jobs WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *self.0)
            .await?)
    }

    /// Records an attempt's outcome if the claim still holds; the job as it is now.
    pub(crate) async fn finish(
        &mut self,
        claim: &Claim,
        outcome: &JobOutcome,
        now: Timestamp,
    ) -> Result<Option<Job>, StoreError> {
        let (state, run_at, error, result, finished) = crate::common::outcome_columns(outcome, now);
        let row = sqlx::query(&format!(
            "UPDATE jobs SET state = $1, run_at_ms = COALESCE($2, run_at_ms), \
                 last_error = COALESCE($3, last_error), result = $4::jsonb, finished_at_ms = $5, \
                 lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = $6 \
             WHERE id = $7 AND state = 'running' AND lease_owner = $8 AND attempts = $9 \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(state)
        .bind(run_at)
        .bind(error)
        .bind(result)
        .bind(finished)
        .bind(to_millis(now))
        .bind(claim.job.0)
        .bind(&claim.runner)
        .bind(i64::from(claim.attempt))
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(rows::job).transpose()
    }
}
