//! A small migration runner: each backend lists its SQL files in order, and the versions
//! applied are recorded in `klaxon_migrations`. Migrations run in one transaction each, so a
//! failed one leaves nothing half-applied.

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS klaxon_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL
)";

pub(crate) fn latest(list: &[Migration]) -> i64 {
    list.iter().map(|m| m.version).max().unwrap_or(0)
}

pub(crate) fn check_current(
    applied: Option<i64>,
    list: &[Migration],
) -> Result<(), crate::StoreError> {
    let want = latest(list);
    match applied {
        Some(v) if v >= want => Ok(()),
        v => Err(crate::StoreError::Config(format!(
            "the database schema is at version {} but this Klaxon needs {want}: restart Klaxon to migrate",
            v.unwrap_or(0)
        ))),
    }
}

/// Applies the migrations not yet recorded, inside the caller's transaction: the same
/// statements on both databases.
macro_rules! apply_pending {
    ($tx:expr, $migrations:expr, $database:literal) => {{
        sqlx::query($crate::migrate::CREATE_TABLE)
            .execute(&mut *$tx)
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM klaxon_migrations")
            .fetch_all(&mut *$tx)
            .await?;
        for m in $migrations.iter().filter(|m| !applied.contains(&m.version)) {
            tracing::info!(
                version = m.version,
                name = m.name,
                concat!("applying a ", $database, " migration")
            );
            sqlx::raw_sql(m.sql).execute(&mut *$tx).await?;
            sqlx::query(
                "INSERT INTO klaxon_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(klaxon_core::to_millis(klaxon_core::now()))
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

pub(crate) use apply_pending;
