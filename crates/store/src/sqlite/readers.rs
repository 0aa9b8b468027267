//! The read-only connections, kept here rather than in sqlx's pool. The pool hands a
//! connection back by spawning a task that pings it first (a round trip to the connection's
//! thread), which on a busy server was a large part of a read's CPU (see docs/BENCHMARKS.md).
//! A connection to a file in this process cannot have gone away, so here it simply goes back
//! on the list. A read that is cancelled midway leaves its connection usable: sqlx's worker
//! stops stepping the statement when nobody waits for the rows, and these connections hold no
//! transactions.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::StoreError;

pub(crate) struct Readers {
    options: SqliteConnectOptions,
    /// One permit for each connection that may be open at once.
    permits: Semaphore,
    /// The open connections nobody is using.
    idle: Mutex<Vec<SqliteConnection>>,
    /// How many may be open at once.
    most: usize,
    /// The longest a read waits for a connection before it fails.
    wait: std::time::Duration,
}

/// A connection lent out; it goes back to the idle ones when this is dropped.
pub(crate) struct Reader<'a> {
    readers: &'a Readers,
    connection: Option<SqliteConnection>,
    _permit: SemaphorePermit<'a>,
}

impl Readers {
    /// Up to `most` connections opened with `options` (read-only), the first opened now so
    /// that a database that cannot be read is an error at start.
    pub(crate) async fn open(
        options: SqliteConnectOptions,
        most: usize,
    ) -> Result<Readers, StoreError> {
        let first = options.connect().await?;
        Ok(Readers {
            options,
            permits: Semaphore::new(most),
            idle: Mutex::new(vec![first]),
            most,
            wait: crate::CONNECTION_WAIT,
        })
    }

    pub(crate) async fn get(&self) -> Result<Reader<'_>, StoreError> {
        let permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .map_err(|_| {
                StoreError::Busy(format!(
                    "a read waited {} s for one of the database's {} read connections; \
                     are reads stuck on a stalled disk?",
                    self.wait.as_secs(),
                    self.most
                ))
            })?
            .map_err(|_| StoreError::Config("the database has been closed".into()))?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => self.options.connect().await?,
        };
        Ok(Reader {
            readers: self,
            connection: Some(connection),
            _permit: permit,
        })
    }

    /// Closes the idle connections and refuses further reads; a connection still lent out is
    /// closed when it comes back.
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for connection in idle {
            // A connection that fails to close cleanly has released the file all the same.
            let _ = connection.close().await;
        }
    }
}

impl Deref for Reader<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.connection.as_ref().expect("lent until dropped")
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.connection.as_mut().expect("lent until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if self.readers.permits.is_closed() {
            // Dropping it shuts its thread down and releases the file.
            return;
        }
        self.readers
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn readers(dir: &tempfile::TempDir, most: usize) -> Readers {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(dir.path().join("r.db"))
            .create_if_missing(true);
        Readers::open(options, most).await.unwrap()
    }

    #[tokio::test]
    async fn a_returned_connection_is_lent_again_and_no_more_than_the_most_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 2).await;
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut *readers.get().await.unwrap())
            .await
            .unwrap();
        assert_eq!(one, 1);
        assert_eq!(readers.idle.lock().unwrap().len(), 1, "the first went back");
        let (a, b) = (readers.get().await.unwrap(), readers.get().await.unwrap());
        assert_eq!(readers.idle.lock().unwrap().len(), 0);
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), readers.get());
        assert!(third.await.is_err(), "a third waits while two are lent");
        drop(a);
        let c = readers.get().await.unwrap();
        drop((b, c));
        assert_eq!(readers.idle.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_read_cancelled_midway_leaves_its_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 1).await;
        {
            let mut reader = readers.get().await.unwrap();
            // A query of many rows, given up on while it runs.
            let rows = sqlx::query_scalar::<_, i64>(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) \
                 SELECT i FROM n",
            )
            .fetch_all(&mut *reader);
            let given_up = tokio::time::timeout(std::time::Duration::from_millis(20), rows).await;
            assert!(given_up.is_err(), "still running when given up on");
        }
        // Promptly: not after the rest of the rows given up on.
        let next = async {
            let mut reader = readers.get().await.unwrap();
            sqlx::query_scalar::<_, i64>("SELECT 2")
                .fetch_one(&mut *reader)
                .await
                .unwrap()
        };
        let two = tokio::time::timeout(std::time::Duration::from_secs(5), next)
            .await
            .expect("the connection answers the next read");
        assert_eq!(two, 2);
    }

    #[tokio::test]
    async fn a_read_that_waits_too_long_for_a_connection_fails_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut readers = readers(&dir, 1).await;
        readers.wait = std::time::Duration::from_millis(20);
        let lent = readers.get().await.unwrap();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), readers.get())
            .await
            .expect("the read gave up by itself")
            .err()
            .expect("no connection was free");
        assert!(waited.to_string().contains("read connections"), "{waited}");
        drop(lent);
        assert!(readers.get().await.is_ok(), "one is free again");
    }

    #[tokio::test]
    async fn after_close_a_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 2).await;
        let lent = readers.get().await.unwrap();
        readers.close().await;
        drop(lent);
        assert!(readers.idle.lock().unwrap().is_empty());
        let refused = readers.get().await.err().expect("closed");
        assert!(refused.to_string().contains("closed"), "{refused}");
    }
}
