//! Klaxon's incident domain, pure and free of I/O.
//!
//! The model is event-sourced: an incident is the fold of its [`Event`]s. A caller turns a
//! [`Command`] into events with [`decide`] (which validates against the operator's
//! [`Catalog`] and returns a typed [`CommandError`] when the command is not allowed), and
//! folds them into the [`Incident`] projection with [`Incident::apply`]. Storage keeps both the
//! events and the projection; because `apply` needs nothing but the event itself (no catalog,
//! no clock), a replay of the stored events always rebuilds the stored projection, even after
//! the operator has changed the catalog.

mod catalog;
mod command;
mod describe;
mod error;
mod event;
mod ids;
mod incident;
mod person;
pub mod playbook;
mod text;
mod time;

pub use catalog::{
    Catalog, CatalogError, Phase, RoleDef, Roles, Severities, SeverityDef, StatusDef, Statuses,
    LEAD_ROLE,
};
pub use command::{decide, decide_declare, Command, Declare};
pub use describe::{actor_name, describe};
pub use error::CommandError;
pub use event::{Actor, ChatMessage, Declared, Event, EventKind, FieldChange, Link};
pub use ids::{IncidentRef, ParseRefError, PersonId};
pub use incident::{FollowUp, Incident};
pub use person::{Access, ChatIdentity, NewPerson, Person};
pub use text::{Title, TITLE_MAX_CHARS};
pub use time::{from_millis, now, to_millis, Timestamp};
