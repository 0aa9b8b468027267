//! The one writer connection, kept here rather than in sqlx's pool, and its transactions.
//!
//! sqlx's pool pings a connection each time it takes it back (a round trip to the
//! connection's thread, in a task of its own), and sqlx's `BEGIN IMMEDIATE` is dearer still:
//! the connection's thread waits for the caller to take each `BEGIN` and `COMMIT`'s answer,
//! and a custom `BEGIN` is checked by lending the connection's handle out and back. For a
//! group commit of a few writes these hand-offs were most of the writer thread's work (see
//! docs/BENCHMARKS.md). Here a transaction is three plain statements: `BEGIN IMMEDIATE`,
//! `COMMIT`, and `ROLLBACK` when it was not committed.
//!
//! A transaction given up midway (an error returned with `?`, a caller that stopped waiting)
//! cannot be rolled back as it is dropped, since that is a statement to await. It stays open,
//! marked, and whoever takes the connection next rolls it back before anything else; so does
//! `close`. Until then it holds SQLite's write lock, which nobody else in this process can
//! want: every write here waits for this one connection.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::StoreError;

/// Cloned, it is the same connection.
#[derive(Clone)]
pub(crate) struct Writer {
    slot: Arc<Mutex<Slot>>,
}

struct Slot {
    /// None once closed.
    connection: Option<SqliteConnection>,
    /// A transaction was begun and may not have ended: roll it back before the next use.
    open: bool,
}

/// The connection, lent out until this is dropped.
pub(crate) struct Lent {
    slot: OwnedMutexGuard<Slot>,
}

/// A write transaction, begun IMMEDIATE: the write lock is taken up front, so that even
/// another process on the same file cannot interleave. Rolled back unless committed.
pub(crate) struct WriteTx {
    lent: Lent,
}

impl Writer {
    pub(crate) async fn open(options: SqliteConnectOptions) -> Result<Writer, StoreError> {
        let connection = options.connect().await?;
        Ok(Writer {
            slot: Arc::new(Mutex::new(Slot {
                connection: Some(connection),
                open: false,
            })),
        })
    }

    /// The connection, once the write before has let go of it (in the order asked).
    pub(crate) async fn get(&self) -> Result<Lent, StoreError> {
        let slot = tokio::time::timeout(crate::CONNECTION_WAIT, self.slot.clone().lock_owned())
            .await
            .map_err(|_| {
                StoreError::Busy(format!(
                    "a write waited {} s for the database's writer; is the disk stalled?",
                    crate::CONNECTION_WAIT.as_secs()
                ))
            })?;
        let mut lent = Lent { slot };
        if lent.slot.connection.is_none() {
            return Err(StoreError::Config("the database has been closed".into()));
        }
        lent.end_abandoned().await;
        Ok(lent)
    }

    pub(crate) async fn begin(&self) -> Result<WriteTx, StoreError> {
        let mut lent = self.get().await?;
        // Marked first: a caller that stops waiting may leave it begun.
        lent.slot.open = true;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *lent).await?;
        Ok(WriteTx { lent })
    }

    /// Closes the connection (SQLite runs its `optimize` as it closes) and refuses further
    /// writes.
    pub(crate) async fn close(&self) {
        let mut lent = Lent {
            slot: self.slot.clone().lock_owned().await,
        };
        if lent.slot.connection.is_none() {
            return;
        }
        lent.end_abandoned().await;
        if let Some(connection) = lent.slot.connection.take() {
            // A connection that fails to close cleanly has released the file all the same.
            let _ = connection.close().await;
        }
    }
}

impl Lent {
    async fn end_abandoned(&mut self) {
        if !self.slot.open {
            return;
        }
        // Fails when the transaction had ended after all (its COMMIT ran, but the caller
        // had stopped waiting for the answer): there is nothing to roll back then. Were it
        // still open, the next BEGIN would fail and say so.
        if let Err(e) = sqlx::query("ROLLBACK").execute(&mut **self).await {
            tracing::debug!(error = %e, "no abandoned transaction to roll back");
        }
        self.slot.open = false;
    }
}

impl WriteTx {
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        sqlx::query("COMMIT").execute(&mut *self.lent).await?;
        self.lent.slot.open = false;
        Ok(())
    }
}

impl Deref for Lent {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.slot.connection.as_ref().expect("checked when lent")
    }
}

impl DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.slot.connection.as_mut().expect("checked when lent")
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.lent
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.lent
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::str::FromStr;

    use super::*;

    async fn writer(dir: &tempfile::TempDir) -> Writer {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let writer = Writer::open(options).await.unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER NOT NULL)")
            .execute(&mut *writer.get().await.unwrap())
            .await
            .unwrap();
        writer
    }

    async fn values(writer: &Writer) -> Vec<i64> {
        sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&mut *writer.get().await.unwrap())
            .await
            .unwrap()
    }

    async fn insert(tx: &mut WriteTx, v: i64) {
        sqlx::query("INSERT INTO t (v) VALUES ($1)")
            .bind(v)
            .execute(&mut **tx)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_committed_transaction_stays_and_a_dropped_one_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let mut tx = writer.begin().await.unwrap();
        insert(&mut tx, 1).await;
        tx.commit().await.unwrap();
        let mut tx = writer.begin().await.unwrap();
        insert(&mut tx, 2).await;
        drop(tx);
        assert_eq!(values(&writer).await, [1], "the uncommitted insert is gone");
        // And the connection is out of that transaction: a new one begins and commits.
        let mut tx = writer.begin().await.unwrap();
        insert(&mut tx, 3).await;
        tx.commit().await.unwrap();
        assert_eq!(values(&writer).await, [1, 3]);
    }

    #[tokio::test]
    async fn a_write_waits_for_the_one_before_to_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let tx = writer.begin().await.unwrap();
        let next = tokio::time::timeout(std::time::Duration::from_millis(50), writer.get());
        assert!(next.await.is_err(), "waits while a transaction holds it");
        tx.commit().await.unwrap();
        let lent = tokio::time::timeout(std::time::Duration::from_secs(5), writer.get()).await;
        assert!(lent.expect("lent once committed").is_ok());
    }

    #[tokio::test]
    async fn a_commit_whose_caller_stopped_waiting_is_not_undone() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let mut tx = writer.begin().await.unwrap();
        insert(&mut tx, 7).await;
        // The commit is sent, then given up on before its answer is read (had the answer
        // come at once, there would be nothing left open: the same result).
        {
            let mut commit = std::pin::pin!(tx.commit());
            std::future::poll_fn(|cx| {
                let _ = commit.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
        }
        assert_eq!(values(&writer).await, [7], "committed all the same");
    }

    #[tokio::test]
    async fn after_close_a_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let tx = writer.begin().await.unwrap();
        drop(tx);
        writer.close().await;
        let refused = writer.get().await.err().expect("closed");
        assert!(refused.to_string().contains("closed"), "{refused}");
        writer.close().await;
    }
}
