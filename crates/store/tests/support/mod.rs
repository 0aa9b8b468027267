//! Fresh stores for tests, and small builders.

use std::sync::{Arc, OnceLock};

use klaxon_core::{from_millis, Actor, Catalog, Declare, IncidentRef, PersonId, Timestamp};
use klaxon_store::{NoEffects, PgStore, Request, SqliteStore, Store};

pub struct TestDb {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("klaxon.db"))
        .await
        .expect("open SQLite");
    TestDb {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

/// A new schema in the database `KLAXON_TEST_DATABASE_URL` names, so each test starts empty.
pub async fn postgres() -> TestDb {
    let url = std::env::var("KLAXON_TEST_DATABASE_URL")
        .expect("set KLAXON_TEST_DATABASE_URL to a PostgreSQL database to run this test");
    TestDb {
        store: Arc::new(postgres_store(&url).await),
        _dir: None,
    }
}

pub async fn postgres_store(url: &str) -> PgStore {
    let schema = format!("t_{}", fastrand::u64(..));
    let admin = sqlx::PgPool::connect(url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    PgStore::connect(url, Some(&schema))
        .await
        .expect("open PostgreSQL store")
}

pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(Catalog::default)
}

/// Minutes after a fixed instant.
pub fn t(min: i64) -> Timestamp {
    from_millis(1_800_000_000_000 + min * 60_000)
}

pub fn req<C>(command: C, at: Timestamp) -> Request<'static, C> {
    Request {
        command,
        actor: Actor::person(PersonId(1)),
        at,
        catalog: catalog(),
        effects: &NoEffects,
    }
}

pub async fn declare(store: &Arc<dyn Store>, title: &str) -> IncidentRef {
    let d = Declare {
        title: title.into(),
        ..Default::default()
    };
    store
        .declare(req(d, t(0)))
        .await
        .expect("declare")
        .incident
        .reference
}
