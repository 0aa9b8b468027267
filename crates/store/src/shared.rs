//! The statements both databases share, written once. SQLite and PostgreSQL accept the same
//! SQL for nearly everything Klaxon does (`$N` placeholders work on both); what differs is
//! left to each backend: how a write transaction begins (`BEGIN IMMEDIATE` on SQLite), the
//! lock a command takes on its incident (`FOR NO KEY UPDATE` on PostgreSQL: it keeps other
//! commands out, not the rows that refer to the incident), how runners claim jobs
//! (`SKIP LOCKED` on PostgreSQL) and full-text search (FTS5 against `tsvector`).
//!
//! Each backend provides: `begin()` and `run_again()` (for `in_transaction!`), `claim()`,
//! `enqueue_jobs()`, `checkpoint_claimed()`, `finish_claimed()` and `push_text_match()` on its
//! store, and a transaction type wrapping `sqlx::Transaction`. (Claiming, enqueueing,
//! checkpointing and finishing jobs are each backend's own: SQLite commits them in groups.)

/// The most jobs (or dependencies, or keys) one statement writes or asks for: eight bound values
/// a job, well under SQLite's limit of 32,766 and PostgreSQL's of 65,535.
pub(crate) const JOBS_A_STATEMENT: usize = 500;

/// The most events (five bound values each), or rows of their text, one statement writes.
pub(crate) const EVENTS_A_STATEMENT: usize = 500;

/// Claims for runner `$1` (lease until `$2`, now `$3`) up to `$4` of the jobs that wait for job
/// `$5` and may run now: pending, due, and with every job they wait for succeeded. Run in the
/// transaction that records job `$5`'s success. `lock` is PostgreSQL's row lock (rows another
/// replica is claiming are passed over), empty on SQLite, whose writer is one connection.
pub(crate) fn claim_waiting_sql(lock: &str) -> String {
    format!(
        "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until_ms = $2, \
             attempts = attempts + 1, updated_at_ms = $3 \
         WHERE id IN (SELECT j.id FROM job_deps w JOIN jobs j ON j.id = w.job_id \
                 WHERE w.depends_on = $5 AND j.state = 'pending' AND j.run_at_ms <= $3 \
                 AND NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs p ON p.id = d.depends_on \
                                 WHERE d.job_id = j.id AND p.state <> 'succeeded') \
                 ORDER BY j.run_at_ms, j.id LIMIT $4 {lock}) \
         RETURNING {JOB_COLUMNS}"
    )
}

/// Whether job `jobs.id` has jobs waiting for it, as a column of a statement on `jobs`.
pub(crate) const HAS_WAITING: &str =
    "EXISTS (SELECT 1 FROM job_deps w WHERE w.depends_on = jobs.id)";

/// What an outcome's update said of a job whose claim held: its kind, its incident's number and
/// whether jobs wait for it.
pub(crate) type Held = std::collections::HashMap<i64, (String, Option<i64>, bool)>;

/// Records outcomes, each only where its claim still holds, a statement for up to
/// [`JOBS_A_STATEMENT`] of them (`VALUES` names its columns `column1`… on both databases), and
/// says what each held one's job is: `record_outcomes!(Database, connection, outcomes)` with
/// `outcomes` a slice of `(&Claim, &JobOutcome, Timestamp)`, an `async` block giving
/// `Result<Held, StoreError>`. A macro because sqlx's query builder over a generic database
/// cannot be borrowed for less than its arguments live.
macro_rules! record_outcomes {
    ($db:ty, $on:expr, $outcomes:expr) => {
        async {
            let mut held = $crate::shared::Held::with_capacity($outcomes.len());
            for chunk in $outcomes.chunks($crate::shared::JOBS_A_STATEMENT) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE jobs SET state = v.column2, \
                         run_at_ms = COALESCE(v.column3, jobs.run_at_ms), \
                         last_error = COALESCE(v.column4, jobs.last_error), result = v.column5, \
                         finished_at_ms = v.column6, lease_owner = NULL, lease_until_ms = NULL, \
                         updated_at_ms = v.column7, attempts = jobs.attempts - v.column8 FROM (",
                );
                qb.push_values(chunk, |mut row, &(claim, outcome, now)| {
                    let c = $crate::common::outcome_columns(outcome, now);
                    row.push_bind(claim.job.0)
                        .push_bind(c.state)
                        .push_bind(c.run_at)
                        .push_bind(c.error)
                        .push_bind(c.result)
                        .push_bind(c.finished)
                        .push_bind(klaxon_core::to_millis(now))
                        .push_bind(c.uncount)
                        .push_bind(claim.runner.as_str())
                        .push_bind(i64::from(claim.attempt));
                });
                qb.push(
                    ") AS v WHERE jobs.id = v.column1 AND jobs.state = 'running' \
                     AND jobs.lease_owner = v.column9 AND jobs.attempts = v.column10 \
                     RETURNING jobs.id, jobs.kind, jobs.incident_number, ",
                );
                qb.push($crate::shared::HAS_WAITING);
                let rows: Vec<(i64, String, Option<i64>, bool)> =
                    qb.build_query_as().fetch_all(&mut *$on).await?;
                held.extend(
                    rows.into_iter()
                        .map(|(id, kind, n, waiting)| (id, (kind, n, waiting))),
                );
            }
            Ok::<_, $crate::StoreError>(held)
        }
    };
}
pub(crate) use record_outcomes;

/// Runs `work` in a transaction of `store` and commits it where `commit` (a function of what
/// `work` gave) says so: `in_transaction!(store, commit, |tx| work)`, an `async` block giving
/// `work`'s result. When a statement of `work` fails, the store's `run_again` says whether the
/// whole transaction is run again from its `BEGIN` (PostgreSQL, when the server closed the
/// connection before the `COMMIT`: `postgres/resend.rs`) or the error is given. A macro, not a
/// function taking an async closure, because such a closure's future cannot be shown to be
/// `Send` for every borrow of the transaction.
macro_rules! in_transaction {
    ($store:expr, $commit:expr, |$tx:ident| $work:expr) => {
        async {
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let mut tx = $store.begin().await?;
                let $tx = &mut tx;
                let done = match $work.await {
                    Ok(done) => done,
                    Err(e) => {
                        $store.run_again(e, attempt)?;
                        continue;
                    }
                };
                if $commit(&done) {
                    tx.0.commit().await?;
                }
                break Ok(done);
            }
        }
    };
}
pub(crate) use in_transaction;

pub(crate) const JOB_COLUMNS: &str = "id, key, kind, payload, incident_number, state, attempts, \
    max_attempts, run_at_ms, lease_owner, lease_until_ms, last_error, checkpoint, result, \
    created_at_ms, updated_at_ms, finished_at_ms";

macro_rules! impl_store {
    (
        store: $store:ty,
        tx: $tx:ty,
        db: $db:ty,
        backend: $backend:expr,
        migrations: $migrations:expr,
        lock: $lock:literal,
        // Whether a row of searchable text has an id of its own to give (on SQLite: number ×
        // 2^20 + seq, see `TEXT_SEQ_LIMIT`).
        text_ids: $text_ids:literal,
        writer: $w:ident $(,)?
    ) => {
        const _: () = {
            use async_trait::async_trait;
            use klaxon_core::{
                to_millis, ChatIdentity, Command, Declare, Event, Incident, IncidentRef, NewPerson, Person,
                PersonId, Timestamp,
            };

            use crate::flow::{self, fields_text, Tx};
            use crate::shared::{EVENTS_A_STATEMENT, JOBS_A_STATEMENT, JOB_COLUMNS};
            use crate::{
                migrate, query, rows, Applied, Backend, Claim, IncidentPage, IncidentQuery, Job, JobCount,
                JobId, JobOutcome, NewJob, Request, Store, StoreError,
            };

            impl $tx {
                /// Rows of searchable text, from (incident number, seq, body), as few statements
                /// as the list allows, each ending with `then` (an `ON CONFLICT` clause, say).
                async fn insert_texts(&mut self, texts: &[(i64, i64, &str)], then: &str) -> Result<(), StoreError> {
                    for chunk in texts.chunks(EVENTS_A_STATEMENT) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(if $text_ids {
                            "INSERT INTO incident_text (id, incident_number, seq, body) "
                        } else {
                            "INSERT INTO incident_text (incident_number, seq, body) "
                        });
                        qb.push_values(chunk, |mut row, (number, seq, text)| {
                            if $text_ids {
                                row.push_bind(number * crate::TEXT_SEQ_LIMIT as i64 + seq);
                            }
                            row.push_bind(*number).push_bind(*seq).push_bind(*text);
                        });
                        qb.push(then);
                        qb.build().execute(&mut *self.0).await?;
                    }
                    Ok(())
                }
            }

            impl Tx for $tx {
                async fn next_incident_number(&mut self) -> Result<u64, StoreError> {
                    let n: i64 = sqlx::query_scalar(
                        "UPDATE counters SET value = value + 1 WHERE name = 'incident' RETURNING value",
                    )
                    .fetch_one(&mut *self.0)
                    .await?;
                    Ok(n as u64)
                }

                async fn load_incident(&mut self, r: IncidentRef) -> Result<Option<Incident>, StoreError> {
                    // SQLite's transaction began IMMEDIATE and holds the write lock; PostgreSQL locks the
                    // row until commit. Either way, commands on one incident run one after another.
                    let row = sqlx::query(concat!("SELECT state FROM incidents WHERE number = $1", $lock))
                        .bind(r.number() as i64)
                        .fetch_optional(&mut *self.0)
                        .await?;
                    row.as_ref().map(rows::incident).transpose()
                }

                async fn save_incident(&mut self, i: &Incident, before: Option<&flow::Indexed>) -> Result<(), StoreError> {
                    let number = i.reference.number() as i64;
                    let sql = if before.is_none() {
                        "INSERT INTO incidents (title, status, phase, severity, private, drill, updated_at_ms, \
                             version, state, declared_at_ms, number) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    } else {
                        "UPDATE incidents SET title = $1, status = $2, phase = $3, severity = $4, private = $5, \
                             drill = $6, updated_at_ms = $7, version = $8, state = $9, declared_at_ms = $10 \
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
                    // What changed is written again whole: the sets are small.
                    let members = before.is_none_or(|b| b.members != i.members);
                    let services = before.is_none_or(|b| b.services != i.services);
                    let labels = before.is_none_or(|b| b.labels != i.labels);
                    if before.is_some() {
                        for (table, changed) in [
                            ("incident_members", members),
                            ("incident_services", services),
                            ("incident_labels", labels),
                        ] {
                            if changed {
                                sqlx::query(&format!("DELETE FROM {table} WHERE incident_number = $1"))
                                    .bind(number)
                                    .execute(&mut *self.0)
                                    .await?;
                            }
                        }
                    }
                    for person in i.members.iter().filter(|_| members) {
                        sqlx::query("INSERT INTO incident_members (person_id, incident_number) VALUES ($1, $2)")
                            .bind(person.0)
                            .bind(number)
                            .execute(&mut *self.0)
                            .await?;
                    }
                    for s in i.services.iter().filter(|_| services) {
                        sqlx::query("INSERT INTO incident_services (service, incident_number) VALUES ($1, $2)")
                            .bind(s)
                            .bind(number)
                            .execute(&mut *self.0)
                            .await?;
                    }
                    for (k, v) in i.labels.iter().filter(|_| labels) {
                        sqlx::query("INSERT INTO incident_labels (key, value, incident_number) VALUES ($1, $2, $3)")
                            .bind(k)
                            .bind(v)
                            .bind(number)
                            .execute(&mut *self.0)
                            .await?;
                    }
                    let text = fields_text(i);
                    if before.is_none_or(|b| b.text != text) {
                        // The fields' text is seq 0, written again whenever it changes.
                        self.insert_texts(
                            &[(number, 0, text.as_str())],
                            " ON CONFLICT (incident_number, seq) DO UPDATE SET body = excluded.body \
                             WHERE incident_text.body <> excluded.body",
                        )
                        .await?;
                    }
                    Ok(())
                }

                async fn incident_by_origin(&mut self, origin: &str) -> Result<Option<Incident>, StoreError> {
                    let row = sqlx::query("SELECT state FROM incidents WHERE origin = $1")
                        .bind(origin)
                        .fetch_optional(&mut *self.0)
                        .await?;
                    row.as_ref().map(rows::incident).transpose()
                }

                async fn set_origin(&mut self, r: IncidentRef, origin: &str) -> Result<(), StoreError> {
                    sqlx::query("UPDATE incidents SET origin = $1 WHERE number = $2")
                        .bind(origin)
                        .bind(r.number() as i64)
                        .execute(&mut *self.0)
                        .await?;
                    Ok(())
                }

                async fn insert_events(&mut self, events: &[Event]) -> Result<(), StoreError> {
                    for chunk in events.chunks(EVENTS_A_STATEMENT) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO events (incident_number, seq, at_ms, kind, data) ",
                        );
                        let mut rows = Vec::with_capacity(chunk.len());
                        for e in chunk {
                            rows.push((e, serde_json::to_string(e)?));
                        }
                        qb.push_values(&rows, |mut row, (e, data)| {
                            row.push_bind(e.incident.number() as i64)
                                .push_bind(e.seq as i64)
                                .push_bind(to_millis(e.at))
                                .push_bind(e.kind.name())
                                .push_bind(data.as_str());
                        });
                        qb.build().execute(&mut *self.0).await?;
                    }
                    // Past 2^20 - 1 events an incident's text is no longer indexed: on SQLite a
                    // text row's id holds the seq in its low 20 bits.
                    let texts: Vec<(i64, i64, &str)> = events
                        .iter()
                        .filter(|e| e.seq < crate::TEXT_SEQ_LIMIT)
                        .filter_map(|e| {
                            let text = e.kind.search_text()?;
                            Some((e.incident.number() as i64, e.seq as i64, text))
                        })
                        .collect();
                    self.insert_texts(&texts, "").await
                }

                async fn insert_jobs(
                    &mut self,
                    jobs: &[NewJob],
                    now: Timestamp,
                ) -> Result<Vec<JobId>, StoreError> {
                    use std::collections::{HashMap, HashSet};
                    for job in jobs {
                        job.validate()?;
                    }
                    // The jobs in one statement (a few, for a long list) and their dependencies in
                    // one more, rather than two or three statements a job: on PostgreSQL each
                    // statement is a round trip, and a declaration writes about ten jobs.
                    let listed: HashSet<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
                    let mut ids: HashMap<&str, i64> = HashMap::with_capacity(jobs.len());
                    let mut inserted: HashSet<&str> = HashSet::with_capacity(jobs.len());
                    for chunk in jobs.chunks(JOBS_A_STATEMENT) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO jobs (key, kind, payload, incident_number, state, attempts, max_attempts, \
                                 run_at_ms, created_at_ms, updated_at_ms) ",
                        );
                        qb.push_values(chunk, |mut row, job| {
                            row.push_bind(job.key.as_str())
                                .push_bind(job.kind.as_str())
                                .push_bind(job.payload.to_string())
                                .push_bind(job.incident.map(|r| r.number() as i64))
                                .push("'pending'")
                                .push("0")
                                .push_bind(i64::from(job.max_attempts))
                                .push_bind(to_millis(job.run_at.unwrap_or(now)))
                                .push_bind(to_millis(now))
                                .push_bind(to_millis(now));
                        });
                        // A key that exists already (enqueued before) keeps its job as it is.
                        qb.push(" ON CONFLICT (key) DO NOTHING RETURNING id, key");
                        let rows: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *self.0).await?;
                        for (id, key) in rows {
                            if let Some(key) = listed.get(key.as_str()) {
                                ids.insert(key, id);
                                inserted.insert(key);
                            }
                        }
                    }
                    // The ids of the keys that existed already and of dependencies enqueued before.
                    let mut wanted: HashSet<&str> = HashSet::new();
                    for job in jobs {
                        let deps = job.depends_on.iter().chain(&job.depends_on_if_enqueued);
                        let mine = inserted.contains(job.key.as_str());
                        for key in std::iter::once(&job.key).chain(deps.filter(|_| mine)) {
                            if !ids.contains_key(key.as_str()) {
                                wanted.insert(key.as_str());
                            }
                        }
                    }
                    let asked: Vec<&str> = wanted.iter().copied().collect();
                    for chunk in asked.chunks(JOBS_A_STATEMENT) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT id, key FROM jobs WHERE key IN (");
                        let mut keys = qb.separated(", ");
                        for key in chunk {
                            keys.push_bind(*key);
                        }
                        qb.push(")");
                        let rows: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *self.0).await?;
                        for (id, key) in rows {
                            if let Some(k) = wanted.get(key.as_str()) {
                                ids.insert(k, id);
                            }
                        }
                    }
                    // As if written one at a time: a job may depend only on one listed before it
                    // (or enqueued before), so a list cannot make a cycle.
                    let mut first: HashMap<&str, usize> = HashMap::new();
                    for (at, job) in jobs.iter().enumerate() {
                        first.entry(job.key.as_str()).or_insert(at);
                    }
                    let mut deps: Vec<(i64, i64)> = Vec::new();
                    for (at, job) in jobs.iter().enumerate() {
                        // A key twice in one list is one job: its first entry names its dependencies.
                        if !inserted.contains(job.key.as_str()) || first[job.key.as_str()] != at {
                            continue;
                        }
                        let id = ids[job.key.as_str()];
                        let optional = job.depends_on_if_enqueued.iter().map(|d| (d, false));
                        for (dep, required) in job.depends_on.iter().map(|d| (d, true)).chain(optional) {
                            let later = inserted.contains(dep.as_str()) && first[dep.as_str()] > at;
                            match ids.get(dep.as_str()).filter(|_| !later) {
                                Some(dep_id) => deps.push((id, *dep_id)),
                                None if !required => {}
                                None => {
                                    return Err(StoreError::InvalidJob(format!(
                                        "job `{}` depends on `{dep}`, which was never enqueued",
                                        job.key
                                    )))
                                }
                            }
                        }
                    }
                    for chunk in deps.chunks(JOBS_A_STATEMENT) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO job_deps (job_id, depends_on) ");
                        qb.push_values(chunk, |mut row, (job, dep)| {
                            row.push_bind(*job).push_bind(*dep);
                        });
                        qb.push(" ON CONFLICT DO NOTHING");
                        qb.build().execute(&mut *self.0).await?;
                    }
                    jobs.iter()
                        .map(|job| {
                            ids.get(job.key.as_str()).map(|id| JobId(*id)).ok_or_else(|| {
                                StoreError::Corrupt(format!("job `{}` was neither written nor found", job.key))
                            })
                        })
                        .collect()
                }
            }

            impl $store {
                /// Saves a running job's checkpoint if the claim still holds: one statement, on any
                /// connection, in a transaction or not.
                pub(crate) async fn checkpoint_on<'e, E: sqlx::Executor<'e, Database = $db>>(
                    on: E,
                    claim: &Claim,
                    checkpoint: &serde_json::Value,
                    now: Timestamp,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE jobs SET checkpoint = $1, updated_at_ms = $2 \
                         WHERE id = $3 AND state = 'running' AND lease_owner = $4 AND attempts = $5",
                    )
                    .bind(checkpoint.to_string())
                    .bind(to_millis(now))
                    .bind(claim.job.0)
                    .bind(&claim.runner)
                    .bind(i64::from(claim.attempt))
                    .execute(on)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }
            }

            /// Whether a command changed anything: one that did not is not committed, a round
            /// trip less.
            fn changed(applied: &Applied) -> bool {
                !applied.events.is_empty()
            }

            #[async_trait]
                    impl Store for $store {
                fn backend(&self) -> Backend {
                    $backend
                }

                async fn ready(&self) -> Result<(), StoreError> {
                    let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM klaxon_migrations")
                        .fetch_one(&mut *self.read().await?)
                        .await?;
                    migrate::check_current(v, $migrations)
                }

                async fn declare(&self, req: Request<'_, Declare>) -> Result<Applied, StoreError> {
                    in_transaction!(self, |_| true, |tx| flow::declare(tx, &req, None)).await
                }

                async fn declare_once(&self, origin: &str, req: Request<'_, Declare>) -> Result<Applied, StoreError> {
                    in_transaction!(self, |_| true, |tx| flow::declare(tx, &req, Some(origin))).await
                }

                async fn execute(
                    &self,
                    incident: IncidentRef,
                    req: Request<'_, Command>,
                ) -> Result<Applied, StoreError> {
                    in_transaction!(self, changed, |tx| flow::execute(tx, incident, &req)).await
                }

                async fn execute_all(
                    &self,
                    incident: IncidentRef,
                    req: Request<'_, Vec<Command>>,
                ) -> Result<Applied, StoreError> {
                    in_transaction!(self, changed, |tx| {
                        flow::execute_commands(tx, incident, &req, &req.command)
                    })
                    .await
                }

                async fn open_by_severity(&self) -> Result<Vec<(Option<String>, u64)>, StoreError> {
                    // The phase as a literal, so that the open incidents' partial index is used.
                    const _: () = assert!(klaxon_core::Phase::Resolved as i64 == 3);
                    let found: Vec<(Option<String>, i64)> = sqlx::query_as(
                        "SELECT severity, COUNT(*) FROM incidents WHERE phase < 3 AND NOT drill \
                         GROUP BY severity",
                    )
                    .fetch_all(&mut *self.read().await?)
                    .await?;
                    // Sorted here: the databases order NULL differently.
                    let mut counts: Vec<(Option<String>, u64)> =
                        found.into_iter().map(|(s, n)| (s, n as u64)).collect();
                    counts.sort();
                    Ok(counts)
                }

                async fn incident(&self, r: IncidentRef) -> Result<Option<Incident>, StoreError> {
                    let row = sqlx::query("SELECT state FROM incidents WHERE number = $1")
                        .bind(r.number() as i64)
                        .fetch_optional(&mut *self.read().await?)
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
                        "SELECT data FROM events WHERE incident_number = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .bind(r.number() as i64)
                    .bind(after as i64)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.read().await?)
                    .await?;
                    found.iter().map(rows::event).collect()
                }

                async fn list_incidents(&self, q: &IncidentQuery) -> Result<IncidentPage, StoreError> {
                    let words = q.words();
                    let matches = self.text_matches(&words).await?;
                    let matches = &matches;
                    let fetch = |slice| async move {
                        let mut qb = query::select::<$db, _>(q, slice, matches, <$store>::push_text_match);
                        let found = qb.build().fetch_all(&mut *self.read().await?).await?;
                        found
                            .iter()
                            .map(rows::incident)
                            .collect::<Result<Vec<_>, StoreError>>()
                    };
                    if words.is_empty() || !<$store>::SEARCH_IN_SLICES {
                        return Ok(query::page(fetch(None).await?, q));
                    }
                    // Newest first, a slice of the incidents at a time, until the page is full.
                    let top = match q.before {
                        Some(before) => before,
                        None => {
                            let highest: Option<i64> = sqlx::query_scalar("SELECT MAX(number) FROM incidents")
                                .fetch_one(&mut *self.read().await?)
                                .await?;
                            highest.unwrap_or(0) as u64 + 1
                        }
                    };
                    let mut incidents = Vec::new();
                    for slice in query::slices(top, q.effective_limit()) {
                        incidents.extend(fetch(Some(slice)).await?);
                        if incidents.len() > q.effective_limit() as usize {
                            break;
                        }
                    }
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
                    .fetch_one(&mut *self.$w().await?)
                    .await
                    .map_err(crate::common::conflict)?;
                    rows::person(&row)
                }

                async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
                    let row = sqlx::query("SELECT * FROM persons WHERE id = $1")
                        .bind(id.0)
                        .fetch_optional(&mut *self.read().await?)
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
                        .fetch_optional(&mut *self.read().await?)
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
                    .execute(&mut *self.$w().await?)
                    .await
                    .map_err(crate::common::conflict)?;
                    Ok(done.rows_affected() == 1)
                }

                async fn enqueue(&self, jobs: &[NewJob], at: Timestamp) -> Result<Vec<JobId>, StoreError> {
                    self.enqueue_jobs(jobs, at).await
                }

                async fn claim_jobs(
                    &self,
                    runner: &str,
                    now: Timestamp,
                    lease_until: Timestamp,
                    limit: u32,
                ) -> Result<Vec<Job>, StoreError> {
                    self.claim(runner, now, lease_until, limit).await
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
                    .execute(&mut *self.$w().await?)
                    .await?;
                    Ok(done.rows_affected())
                }

                async fn save_checkpoint(
                    &self,
                    claim: &Claim,
                    checkpoint: &serde_json::Value,
                    now: Timestamp,
                ) -> Result<bool, StoreError> {
                    self.checkpoint_claimed(claim, checkpoint, now).await
                }

                async fn finish_job_claiming(
                    &self,
                    claim: &Claim,
                    outcome: &JobOutcome,
                    now: Timestamp,
                    effects: std::sync::Arc<dyn crate::Effects>,
                    next: Option<&crate::ClaimNext>,
                ) -> Result<crate::Finished, StoreError> {
                    self.finish_claimed(claim, outcome, now, effects, next).await
                }

                async fn retry_job(&self, id: JobId, now: Timestamp) -> Result<Job, StoreError> {
                    let row = sqlx::query(&format!(
                        "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = $1, updated_at_ms = $1, \
                             lease_owner = NULL, lease_until_ms = NULL, finished_at_ms = NULL \
                         WHERE id = $2 AND state IN ('dead', 'cancelled') RETURNING {JOB_COLUMNS}"
                    ))
                    .bind(to_millis(now))
                    .bind(id.0)
                    .fetch_optional(&mut *self.$w().await?)
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
                    .execute(&mut *self.$w().await?)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
                    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
                        .bind(id.0)
                        .fetch_optional(&mut *self.read().await?)
                        .await?;
                    row.as_ref().map(rows::job).transpose()
                }

                async fn job_by_key(&self, key: &str) -> Result<Option<Job>, StoreError> {
                    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE key = $1"))
                        .bind(key)
                        .fetch_optional(&mut *self.read().await?)
                        .await?;
                    row.as_ref().map(rows::job).transpose()
                }

                async fn incident_jobs(&self, r: IncidentRef) -> Result<Vec<Job>, StoreError> {
                    let found = sqlx::query(&format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE incident_number = $1 ORDER BY id"
                    ))
                    .bind(r.number() as i64)
                    .fetch_all(&mut *self.read().await?)
                    .await?;
                    found.iter().map(rows::job).collect()
                }

                async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
                    let ms: Option<i64> = sqlx::query_scalar(
                        "SELECT MIN(t) FROM (SELECT MIN(run_at_ms) AS t FROM jobs WHERE state = 'pending' \
                         UNION ALL SELECT MIN(lease_until_ms) FROM jobs WHERE state = 'running') AS due",
                    )
                    .fetch_one(&mut *self.read().await?)
                    .await?;
                    Ok(ms.map(klaxon_core::from_millis))
                }

                async fn link_chat_channel(&self, c: &crate::ChatChannel) -> Result<(), StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO chat_channels (platform, channel_id, incident_number, name, url, headline_id) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (platform, channel_id) DO NOTHING",
                )
                .bind(&c.platform)
                .bind(&c.channel_id)
                .bind(c.incident.number() as i64)
                .bind(&c.name)
                .bind(&c.url)
                .bind(&c.headline_id)
                .execute(&mut *self.$w().await?)
                .await
                .map_err(|e| match crate::common::conflict(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "{} has a {} channel already", c.incident, c.platform
                    )),
                    e => e,
                })?;
                if inserted.rows_affected() == 0 {
                    match self.chat_channel_by_id(&c.platform, &c.channel_id).await? {
                        Some(existing) if existing.incident == c.incident => {}
                        _ => {
                            return Err(StoreError::Conflict(format!(
                                "the {} channel {} belongs to another incident",
                                c.platform, c.channel_id
                            )))
                        }
                    }
                }
                Ok(())
            }

            async fn chat_channel(
                &self,
                r: IncidentRef,
                platform: &str,
            ) -> Result<Option<crate::ChatChannel>, StoreError> {
                let row = sqlx::query("SELECT * FROM chat_channels WHERE incident_number = $1 AND platform = $2")
                    .bind(r.number() as i64)
                    .bind(platform)
                    .fetch_optional(&mut *self.read().await?)
                    .await?;
                row.as_ref().map(rows::chat_channel).transpose()
            }

            async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT value FROM cursors WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *self.read().await?)
                    .await?)
            }

            async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO cursors (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(name)
                .bind(value)
                .execute(&mut *self.$w().await?)
                .await?;
                Ok(())
            }

            async fn chat_channel_by_id(
                &self,
                platform: &str,
                channel_id: &str,
            ) -> Result<Option<crate::ChatChannel>, StoreError> {
                let row = sqlx::query("SELECT * FROM chat_channels WHERE platform = $1 AND channel_id = $2")
                    .bind(platform)
                    .bind(channel_id)
                    .fetch_optional(&mut *self.read().await?)
                    .await?;
                row.as_ref().map(rows::chat_channel).transpose()
            }

            async fn set_headline(
                &self,
                r: IncidentRef,
                platform: &str,
                headline_id: &str,
                headline_digest: &str,
                topic: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE chat_channels SET headline_id = $1, headline_digest = $2, topic = $3 \
                     WHERE incident_number = $4 AND platform = $5",
                )
                    .bind(headline_id)
                    .bind(headline_digest)
                    .bind(topic)
                    .bind(r.number() as i64)
                    .bind(platform)
                    .execute(&mut *self.$w().await?)
                    .await?;
                Ok(())
            }

            async fn set_shown(
                &self,
                r: IncidentRef,
                platform: &str,
                headline_digest: Option<&str>,
                topic: Option<&str>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE chat_channels SET headline_digest = COALESCE($1, headline_digest), \
                     topic = COALESCE($2, topic) WHERE incident_number = $3 AND platform = $4",
                )
                .bind(headline_digest)
                .bind(topic)
                .bind(r.number() as i64)
                .bind(platform)
                .execute(&mut *self.$w().await?)
                .await?;
                Ok(())
            }

            async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError> {
                    let found: Vec<(String, String, i64)> = sqlx::query_as(
                        "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
                    )
                    .fetch_all(&mut *self.read().await?)
                    .await?;
                    crate::common::job_counts(found)
                }
            }
        };
    };
}

impl_store!(
    store: crate::SqliteStore,
    tx: crate::sqlite::SqliteTx,
    db: sqlx::Sqlite,
    backend: crate::Backend::Sqlite,
    migrations: crate::sqlite::MIGRATIONS,
    lock: "",
    // The id names the incident (number × 2^20 + seq), so that the full-text index's rowids do
    // too and a search needs no join (migration 7).
    text_ids: true,
    writer: writing,
);

impl_store!(
    store: crate::PgStore,
    tx: crate::postgres::PgTx,
    db: sqlx::Postgres,
    backend: crate::Backend::Postgres,
    migrations: crate::postgres::MIGRATIONS,
    lock: " FOR NO KEY UPDATE",
    text_ids: false,
    writer: writing,
);
