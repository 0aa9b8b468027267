//! Statements sent again when the connection they were given turns out closed.
//!
//! The pool hands out a connection that was idle for less than a second without a ping (see
//! `connect_pinging`), and a failover, a restart, a pooler or `idle_session_timeout` may have
//! closed it since. Its first use then fails, though nothing may have happened on the server.
//! What may be sent twice is sent again, on another connection:
//! - a read, which changes nothing;
//! - a `BEGIN`, whose transaction no statement has used yet;
//! - a write outside a transaction whose second sending changes nothing the first did not: a
//!   job's checkpoint (set to the same value, under the same claim) and a claim of due jobs
//!   (were the first answer lost, the jobs it leased wait for their lease to end, resent or not).
//!
//! A transaction whose connection was closed before its `COMMIT` was sent was rolled back by
//! the server, and it is run again whole, from its `BEGIN` ([`run_again`]). A `COMMIT` and
//! any other write are never sent again: whether they took effect is not known.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnection, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection, Either, Execute, Executor, PgPool, Postgres};

use super::PgTx;
use crate::StoreError;

/// Whether `e` says the connection is gone: the socket failed, or the server said it is
/// closing the connection (`57P01` terminated by an administrator, `57P02` crash shutdown,
/// `57P03` not accepting connections yet, class `08` connection exceptions). It does not say
/// whether the server ran the statement, so only what may be sent twice is sent again.
pub(crate) fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// Every connection tried was closed. A read's error is sqlx's, so this travels inside one
/// (`AnyDriverError`) and becomes [`StoreError::Busy`] (`error.rs`).
#[derive(Debug, thiserror::Error)]
#[error("the database closed each of the {0} connections tried; is it restarting or failing over?")]
pub(crate) struct AllClosed(pub(crate) u32);

/// How many connections are tried before giving up: every one the pool holds, and a new one.
fn tries(pool: &PgPool) -> u32 {
    pool.options().get_max_connections() + 1
}

/// Runs `send` until it does not find its connection closed, trying every connection the
/// pool holds and a new one before giving up ([`tries`]).
async fn until_open<T, F>(
    pool: &PgPool,
    what: &str,
    mut send: impl FnMut() -> F,
) -> Result<T, sqlx::Error>
where
    F: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let most = tries(pool);
    for attempt in 1..=most {
        match send().await {
            Err(e) if connection_lost(&e) => {
                tracing::debug!(attempt, error = %e, what, "found its connection closed; trying another");
            }
            answer => return answer,
        }
    }
    Err(sqlx::Error::AnyDriverError(Box::new(AllClosed(most))))
}

/// Begins a transaction, on another connection when the one taken turns out closed.
pub(crate) async fn begin(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
    Ok(until_open(pool, "BEGIN", || pool.begin()).await?)
}

/// What comes of a transaction's statement that failed with `e` on the transaction's
/// `attempt`th run: `Ok` to run the whole transaction again, or the error to give. It runs
/// again when the statement found its connection closed: no `COMMIT` was sent, so the server
/// rolled the transaction back and nothing of it stays. At most [`tries`] runs. A `COMMIT`
/// that fails is never sent again: whether it took effect is not known
/// (`shared::in_transaction!`).
pub(crate) fn run_again(pool: &PgPool, e: StoreError, attempt: u32) -> Result<(), StoreError> {
    if !matches!(&e, StoreError::Database(d) if connection_lost(d)) {
        return Err(e);
    }
    let most = tries(pool);
    if attempt >= most {
        return Err(StoreError::Busy(AllClosed(most).to_string()));
    }
    tracing::debug!(attempt, error = %e, "a transaction found its connection closed; running it again");
    Ok(())
}

/// A pool as `shared::in_transaction!` takes a store: the store's transactions and the
/// outcomes' group commit (`batch.rs`), which holds the pool, not the store, begin here.
pub(crate) struct Pooled<'p>(pub(crate) &'p PgPool);

impl Pooled<'_> {
    /// A transaction, begun on another connection when the one taken turns out closed.
    pub(crate) async fn begin(&self) -> Result<PgTx, StoreError> {
        Ok(PgTx(begin(self.0).await?))
    }

    pub(crate) fn run_again(&self, e: StoreError, attempt: u32) -> Result<(), StoreError> {
        run_again(self.0, e, attempt)
    }
}

/// A connection for a write outside a transaction, which is never sent again: one that
/// answered a ping just now, so that a connection closed while idle is not the one taken.
/// A connection closed between the ping and the write still fails it, once.
pub(crate) async fn pinged(pool: &PgPool) -> Result<PoolConnection<Postgres>, StoreError> {
    let connection = || async {
        let mut conn = pool.acquire().await?;
        conn.ping().await?;
        Ok(conn)
    };
    Ok(until_open(pool, "a ping before a write", connection).await?)
}

/// Runs each query given to it on a connection of the pool, and again on another when that
/// one turns out closed: for the statements the module's comment names, and no others.
/// Reads take it as `&mut *store.read().await?`, as they take SQLite's reader, which derefs
/// to a connection: hence the box.
#[derive(Debug)]
pub(crate) struct Resending {
    pool: PgPool,
}

impl Resending {
    pub(crate) fn new(pool: &PgPool) -> Box<Resending> {
        Box::new(Resending { pool: pool.clone() })
    }
}

/// A query as it was given, to be sent as often as it takes: each sending gets its own copy
/// of the arguments, which the connection fills in with its own type ids.
struct Replay<'q> {
    sql: &'q str,
    arguments: Option<PgArguments>,
    persistent: bool,
}

impl<'a, 'q> Execute<'a, Postgres> for &'a Replay<'q> {
    fn sql(&self) -> &'a str {
        self.sql
    }

    fn statement(&self) -> Option<&PgStatement<'a>> {
        None
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, sqlx::error::BoxDynError> {
        Ok(self.arguments.clone())
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Sends `query` with `run` until a connection answers, or every one tried was closed.
async fn replayed<'q, T>(
    pool: &PgPool,
    mut query: impl Execute<'q, Postgres>,
    run: for<'a> fn(&'a mut PgConnection, &'a Replay<'q>) -> BoxFuture<'a, Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    let replay = Replay {
        sql: query.sql(),
        arguments: query.take_arguments().map_err(sqlx::Error::Encode)?,
        persistent: query.persistent(),
    };
    let send = || async {
        let mut conn = pool.acquire().await?;
        run(&mut conn, &replay).await
    };
    until_open(pool, "a statement that may be sent twice", send).await
}

fn all<'a>(
    conn: &'a mut PgConnection,
    query: &'a Replay<'_>,
) -> BoxFuture<'a, Result<Vec<Either<PgQueryResult, PgRow>>, sqlx::Error>> {
    conn.fetch_many(query).try_collect().boxed()
}

fn optional<'a>(
    conn: &'a mut PgConnection,
    query: &'a Replay<'_>,
) -> BoxFuture<'a, Result<Option<PgRow>, sqlx::Error>> {
    conn.fetch_optional(query)
}

impl<'c> Executor<'c> for &'c mut Resending {
    type Database = Postgres;

    /// Every row is read before the first is given out, so that a query sent again gives out
    /// none twice. What is sent here are pages, single rows and claims of a few jobs.
    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        async move { replayed(&self.pool, query, all).await }
            .map(|answer| match answer {
                Ok(steps) => futures_util::stream::iter(steps.into_iter().map(Ok)).left_stream(),
                Err(e) => futures_util::stream::once(async { Err(e) }).right_stream(),
            })
            .flatten_stream()
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        async move { replayed(&self.pool, query, optional).await }.boxed()
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        async move { self.pool.prepare_with(sql, parameters).await }.boxed()
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        async move { self.pool.describe(sql).await }.boxed()
    }
}
