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
