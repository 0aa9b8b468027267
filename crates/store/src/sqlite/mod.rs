//! The embedded store: one SQLite file in WAL mode. All writes go through a single
//! connection, so writers never contend for SQLite's one write lock (and never see
//! `SQLITE_BUSY`); reads use a few read-only connections that WAL lets run beside it (`readers.rs`).
//! Every write transaction starts with `BEGIN IMMEDIATE`, which takes the write lock up front,
//! so that even another process on the same file cannot interleave.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use klaxon_core::{to_millis, Timestamp};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite};

use crate::migrate::{self, Migration};
use crate::shared::JOB_COLUMNS;
use crate::{
    rows, Claim, ClaimNext, Effects, Finished, Job, JobId, JobOutcome, NewJob, StoreError,
};

mod batch;
mod readers;
mod writer;

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
        name: "text_ids",
        sql: include_str!("migrations/0007_text_ids.sql"),
    },
    Migration {
        version: 8,
        name: "words",
        sql: include_str!("migrations/0008_words.sql"),
    },
    Migration {
        version: 9,
        name: "waiting",
        sql: include_str!("migrations/0009_waiting.sql"),
    },
];

pub struct SqliteStore {
    writer: writer::Writer,
    readers: readers::Readers,
    path: PathBuf,
    /// Jobs to enqueue and outcomes to record, committed in groups (`batch.rs`).
    writes: tokio::sync::mpsc::UnboundedSender<batch::Write>,
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
            .synchronous(SqliteSynchronous::Full)
            // Keeps the query planner's statistics current (see `open`).
            .optimize_on_close(true, 1000);
        let writer = writer::Writer::open(
            options
                .clone()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .pragma("cache_size", "-65536"),
        )
        .await
        .map_err(|e| {
            StoreError::Config(format!("cannot open the database {}: {e}", path.display()))
        })?;
        apply_migrations(&writer).await?;
        // Without statistics SQLite's planner may sort a whole table where walking the primary
        // key backwards would stop after one page (measured: 30 ms against 0.3 ms on 100,000
        // incidents). `optimize` analyses the tables that need it, with a bounded effort.
        sqlx::raw_sql("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            .execute(&mut *writer.get().await?)
            .await?;
        let readers = readers::Readers::open(options.read_only(true), 4).await?;
        let (writes, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batch::run(writer.clone(), queue));
        Ok(SqliteStore {
            writer,
            readers,
            path: path.to_path_buf(),
            writes,
        })
    }

    /// Hands a write to the group commit and waits for its commit.
    async fn write<T>(
        &self,
        write: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, StoreError>>) -> batch::Write,
    ) -> Result<T, StoreError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Config("the database's writer has stopped".into());
        self.writes.send(write(done)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    pub(crate) async fn enqueue_jobs(
        &self,
        jobs: &[NewJob],
        at: Timestamp,
    ) -> Result<Vec<JobId>, StoreError> {
        let jobs = jobs.to_vec();
        self.write(|done| batch::Write::Enqueue { jobs, at, done })
            .await
    }

    pub(crate) async fn finish_claimed(
        &self,
        claim: &Claim,
        outcome: &JobOutcome,
        now: Timestamp,
        effects: Arc<dyn Effects>,
        next: Option<&ClaimNext>,
    ) -> Result<Finished, StoreError> {
        let (claim, outcome, next) = (claim.clone(), outcome.clone(), next.cloned());
        self.write(|done| batch::Write::Finish {
            claim,
            outcome,
            now,
            effects,
            next,
            done,
        })
        .await
    }

    /// A read-only connection, beside the writer (WAL).
    pub(crate) async fn read(&self) -> Result<readers::Reader<'_>, StoreError> {
        self.readers.get().await
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn begin(&self) -> Result<SqliteTx, StoreError> {
        Ok(SqliteTx(self.writer.begin().await?))
    }

    /// A transaction whose statement failed is not run again: the writer is a file of this
    /// process's own, which no server closes.
    pub(crate) fn run_again(&self, e: StoreError, _attempt: u32) -> Result<(), StoreError> {
        Err(e)
    }

    /// The writer connection, for a write of one statement.
    pub(crate) async fn writing(&self) -> Result<writer::Lent, StoreError> {
        self.writer.get().await
    }

    pub(crate) async fn claim(
        &self,
        runner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let runner = runner.to_string();
        self.write(|done| batch::Write::Claim {
            runner,
            now,
            lease_until,
            limit,
            done,
        })
        .await
    }

    pub(crate) async fn checkpoint_claimed(
        &self,
        claim: &Claim,
        checkpoint: &serde_json::Value,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (claim, checkpoint) = (claim.clone(), checkpoint.clone());
        self.write(|done| batch::Write::Checkpoint {
            claim,
            checkpoint,
            now,
            done,
        })
        .await
    }
}

impl SqliteTx {
    /// One statement: the claim is atomic.
    pub(crate) async fn claim(
        &mut self,
        runner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let found = sqlx::query(&format!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until_ms = $2, \
                 attempts = attempts + 1, updated_at_ms = $3 \
             WHERE id IN (SELECT j.id FROM jobs j WHERE j.state = 'pending' AND j.run_at_ms <= $3 \
                     AND NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs p ON p.id = d.depends_on \
                                     WHERE d.job_id = j.id AND p.state <> 'succeeded') \
                     ORDER BY j.run_at_ms, j.id LIMIT $4) \
                OR id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_until_ms < $3 \
                     ORDER BY lease_until_ms LIMIT $4) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(runner)
        .bind(to_millis(lease_until))
        .bind(to_millis(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.0)
        .await?;
        crate::common::sorted_jobs(found.iter().map(rows::job).collect())
    }

    /// A held outcome's record, with the jobs it released that may run now claimed for
    /// `next.runner` (`common::to_claim` decides whether to claim).
    pub(crate) async fn claim_released(
        &mut self,
        finished: &Claim,
        released: bool,
        next: Option<&ClaimNext>,
        now: Timestamp,
    ) -> Result<Finished, StoreError> {
        let Some(next) = next else {
            return Ok(crate::common::finished(released, Vec::new(), 0));
        };
        let found = sqlx::query(&crate::shared::claim_waiting_sql(""))
            .bind(&next.runner)
            .bind(to_millis(next.lease_until))
            .bind(to_millis(now))
            .bind(i64::from(next.limit))
            .bind(finished.job.0)
            .fetch_all(&mut *self.0)
            .await?;
        let claimed = crate::common::sorted_jobs(found.iter().map(rows::job).collect())?;
        Ok(crate::common::finished(released, claimed, next.limit))
    }
}

impl SqliteStore {
    /// A search looks through the incidents a slice at a time (`query::slices`): SQLite
    /// gathers every match of an `IN (…)` before it walks the incidents, which for a common
    /// word is most of the full-text index (measured on 100,000 incidents: 42 ms for the page),
    /// while the matches within a slice are few.
    pub(crate) const SEARCH_IN_SLICES: bool = true;

    /// How many whole words a word's beginning may stand for in a search before it is asked
    /// as a prefix query instead (a one- or two-letter beginning of many words).
    const MOST_WORDS: usize = 64;

    /// The FTS5 query for each searched word. A word's beginning is asked as the whole words
    /// of the index that start with it (migration 8), `("gateway" OR "gateways")`, which FTS5
    /// reads lazily within a slice's rowids; a prefix query (`"gate"*`) would merge every
    /// match of every such word first, however few the slice needs. A word that is not ASCII
    /// (the tokenizer folds its accents, which the list of words would not find by its
    /// beginning) or that begins more than `MOST_WORDS` words stays a prefix query.
    pub(crate) async fn text_matches(&self, words: &[String]) -> Result<Vec<String>, StoreError> {
        let mut matches = Vec::with_capacity(words.len());
        for word in words {
            let prefix = format!("\"{word}\"*");
            let Some(after) = word.is_ascii().then(|| after_prefix(word)).flatten() else {
                matches.push(prefix);
                continue;
            };
            let terms: Vec<String> = sqlx::query_scalar(
                "SELECT term FROM incident_words WHERE term >= $1 AND term < $2 ORDER BY term LIMIT $3",
            )
            .bind(word)
            .bind(after)
            .bind(Self::MOST_WORDS as i64 + 1)
            .fetch_all(&mut *self.read().await?)
            .await?;
            matches.push(if terms.is_empty() || terms.len() > Self::MOST_WORDS {
                // None: the prefix query finds nothing at once (and anything written since).
                prefix
            } else {
                let quoted: Vec<String> = terms
                    .iter()
                    .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                    .collect();
                format!("({})", quoted.join(" OR "))
            });
        }
        Ok(matches)
    }

    /// The incidents whose text matches `fts` (an FTS5 query from `text_matches`), within
    /// `slice`, through the FTS5 index.
    pub(crate) fn push_text_match(
        qb: &mut QueryBuilder<'_, Sqlite>,
        fts: &str,
        slice: Option<crate::query::Slice>,
    ) {
        // A text row's id is its incident's number × 2^20 + its seq (migration 7), so the
        // index's rowids give the incidents without reading the rows, and a slice of the
        // incidents is a range of rowids.
        qb.push(
            " AND i.number IN (SELECT rowid >> 20 FROM incident_text_fts \
             WHERE incident_text_fts MATCH ",
        );
        qb.push_bind(fts.to_string());
        if let Some(s) = slice {
            qb.push(" AND rowid >= ").push_bind((s.from as i64) << 20);
            qb.push(" AND rowid < ").push_bind((s.before as i64) << 20);
        }
        qb.push(")");
    }

    /// Runs SQL as it is, for tests that need to break things on purpose.
    #[cfg(feature = "testing")]
    pub async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql)
            .execute(&mut *self.writing().await?)
            .await?;
        Ok(())
    }

    /// Releases the database file (used by tests that reopen it).
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }
}

async fn apply_migrations(writer: &writer::Writer) -> Result<(), StoreError> {
    let mut tx = writer.begin().await?;
    migrate::apply_pending!(tx, MIGRATIONS, "SQLite");
    tx.commit().await?;
    Ok(())
}

/// The first string after every string that starts with `prefix` (ASCII), in byte order: the
/// prefix with its last byte one higher. None when there is no such string.
fn after_prefix(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.pop()?;
    bytes.push(last.checked_add(1).filter(u8::is_ascii)?);
    String::from_utf8(bytes).ok()
}

/// A write transaction, begun IMMEDIATE.
pub(crate) struct SqliteTx(pub(crate) writer::WriteTx);

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    /// A database in `dir` with the first `migrations` applied, incident 3 and the text rows
    /// `(id, incident_number, seq, body)` of `text` written under them, then opened as a store
    /// (which applies the rest).
    async fn opened_after(dir: &tempfile::TempDir, migrations: usize, text: &str) -> SqliteStore {
        let path = dir.path().join("k.db");
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let before: Result<(), StoreError> = async {
            let mut tx = pool.begin().await?;
            migrate::apply_pending!(tx, MIGRATIONS[..migrations], "SQLite");
            sqlx::raw_sql(&format!(
                "INSERT INTO incidents (number, title, status, phase, private, drill, \
                     declared_at_ms, updated_at_ms, version, state) \
                 VALUES (3, 'Down', 'triage', 0, 0, 0, 0, 0, 5, '{{}}'); \
                 INSERT INTO incident_text (id, incident_number, seq, body) VALUES {text};"
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        before.unwrap();
        pool.close().await;
        SqliteStore::open(&path).await.unwrap()
    }

    /// Migration 7 gives existing text rows the ids that name their incident, and rebuilds the
    /// full-text index on them.
    #[tokio::test]
    async fn text_rows_written_before_migration_7_are_found_by_incident() {
        let dir = tempfile::tempdir().unwrap();
        let store = opened_after(
            &dir,
            6,
            "(1, 3, 0, 'Checkout down'), (2, 3, 4, 'Rolled back the deploy')",
        )
        .await;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM incident_text ORDER BY id")
            .fetch_all(&mut *store.read().await.unwrap())
            .await
            .unwrap();
        assert_eq!(ids, [3 << 20, (3 << 20) + 4]);
        for word in ["rolled", "checkout"] {
            let found: Vec<i64> = sqlx::query_scalar(
                "SELECT rowid >> 20 FROM incident_text_fts WHERE incident_text_fts MATCH $1",
            )
            .bind(format!("\"{word}\"*"))
            .fetch_all(&mut *store.read().await.unwrap())
            .await
            .unwrap();
            assert_eq!(found, [3], "{word}");
        }
    }

    #[test]
    fn the_strings_after_a_prefix_begin_one_byte_higher() {
        assert_eq!(after_prefix("gate").as_deref(), Some("gatf"));
        assert_eq!(after_prefix("host9").as_deref(), Some("host:"));
        assert_eq!(after_prefix(""), None);
        assert_eq!(after_prefix("a\u{7f}"), None);
    }

    /// Migration 8 lists the words of the text written before it, and a beginning is asked
    /// as those words; text written after it adds its words.
    #[tokio::test]
    async fn a_beginning_is_asked_as_the_words_it_begins() {
        let dir = tempfile::tempdir().unwrap();
        let store = opened_after(
            &dir,
            7,
            "(3145728, 3, 0, 'Gateway down'), (3145732, 3, 4, 'Both gateways, Zürich')",
        )
        .await;
        let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let matches = store
            .text_matches(&words(&["gate", "zu", "zür", "nothing"]))
            .await
            .unwrap();
        assert_eq!(
            matches,
            [
                "(\"gateway\" OR \"gateways\")",
                "(\"zurich\")",
                "\"zür\"*",
                "\"nothing\"*"
            ]
        );
        sqlx::raw_sql(
            "INSERT INTO incident_text (id, incident_number, seq, body) \
             VALUES (3145733, 3, 5, 'gateway_east is back');",
        )
        .execute(&mut *store.writing().await.unwrap())
        .await
        .unwrap();
        let matches = store.text_matches(&words(&["gate", "ea"])).await.unwrap();
        assert_eq!(matches, ["(\"gateway\" OR \"gateways\")", "(\"east\")"]);
        for m in &matches {
            let found: Vec<i64> = sqlx::query_scalar(
                "SELECT rowid >> 20 FROM incident_text_fts WHERE incident_text_fts MATCH $1",
            )
            .bind(m)
            .fetch_all(&mut *store.read().await.unwrap())
            .await
            .unwrap();
            assert!(found.iter().all(|n| *n == 3) && !found.is_empty(), "{m}");
        }
    }
}
