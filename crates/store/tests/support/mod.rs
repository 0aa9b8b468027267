//! Small builders for the conformance suite; fresh stores come from `klaxon_store::testing`.

use std::sync::{Arc, OnceLock};

use klaxon_core::{from_millis, Actor, Catalog, Declare, IncidentRef, PersonId, Timestamp};
use klaxon_store::{NoEffects, Request, Store};

pub use klaxon_store::testing::{postgres, sqlite, TestDb};

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
