//! Fresh, empty stores for tests (feature `testing`): a temporary SQLite file, or a new schema
//! in the PostgreSQL database that `KLAXON_TEST_DATABASE_URL` names.

use std::sync::Arc;

use crate::{PgStore, SqliteStore, Store};

pub struct TestDb {
    pub store: Arc<dyn Store>,
    /// Open further stores on the same database, as other replicas would.
    pub url: String,
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Another store on the same database: another replica.
    pub async fn replica(&self) -> Arc<dyn Store> {
        match &self.schema {
            Some(schema) => Arc::new(
                PgStore::connect(&self.url, Some(schema))
                    .await
                    .expect("open replica"),
            ),
            None => panic!("SQLite has one replica; share `store` instead"),
        }
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("klaxon.db");
    let store = SqliteStore::open(&path).await.expect("open SQLite");
    TestDb {
        store: Arc::new(store),
        url: format!("sqlite://{}", path.display()),
        schema: None,
        _dir: Some(dir),
    }
}

pub const PG_URL_VAR: &str = "KLAXON_TEST_DATABASE_URL";

/// Panics with instructions when `KLAXON_TEST_DATABASE_URL` is not set: tests that call it are
/// `#[ignore]`d, so reaching it means PostgreSQL was asked for.
pub async fn postgres() -> TestDb {
    let (url, schema) = empty_postgres_schema().await;
    let store = PgStore::connect(&url, Some(&schema))
        .await
        .expect("open PostgreSQL store");
    TestDb {
        store: Arc::new(store),
        url,
        schema: Some(schema),
        _dir: None,
    }
}

/// The database's URL and a new, empty schema in it, for a test that opens the store itself.
pub async fn empty_postgres_schema() -> (String, String) {
    let url = std::env::var(PG_URL_VAR)
        .unwrap_or_else(|_| panic!("set {PG_URL_VAR} to a PostgreSQL database to run this test"));
    let schema = format!("t_{:016x}", fastrand::u64(..));
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    (url, schema)
}
