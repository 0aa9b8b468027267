//! What sign-in needs from storage: local logins, API tokens and web sessions. Secrets are
//! never stored: tokens and session ids as SHA-256 hashes (they are long random values, so a
//! fast hash is enough), passwords as the caller's slow hash (Argon2).

use async_trait::async_trait;
use klaxon_core::{Access, Person, PersonId, Timestamp};
use serde::Serialize;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub access: Access,
    /// Whose actions the token's requests are, if a person's; otherwise they are the token's own.
    pub person: Option<PersonId>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub person: Person,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait AuthStore: Send + Sync {
    /// Gives a person a login and password hash; a conflict when the login is taken by another.
    async fn set_login(
        &self,
        person: PersonId,
        login: &str,
        password_hash: &str,
    ) -> Result<(), StoreError>;
    /// The person with this login, and their password hash.
    async fn credentials(&self, login: &str) -> Result<Option<(Person, String)>, StoreError>;
    async fn set_access(&self, person: PersonId, access: Access) -> Result<(), StoreError>;
    /// People by name, for pickers.
    async fn people(&self, limit: u32) -> Result<Vec<Person>, StoreError>;
    /// The people with these ids (those that exist), to put names to a page of incidents.
    async fn persons_by_id(&self, ids: &[PersonId]) -> Result<Vec<Person>, StoreError>;

    async fn create_api_token(
        &self,
        name: &str,
        token_hash: &str,
        access: Access,
        person: Option<PersonId>,
        at: Timestamp,
    ) -> Result<ApiToken, StoreError>;
    /// The unrevoked token with this hash; notes its use (at most once a minute, to spare the
    /// database a write per request).
    async fn api_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<ApiToken>, StoreError>;
    async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    async fn revoke_api_token(&self, id: i64, at: Timestamp) -> Result<bool, StoreError>;

    async fn create_session(
        &self,
        id_hash: &str,
        person: PersonId,
        csrf: &str,
        at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// The unexpired session with this hash.
    async fn session(&self, id_hash: &str, now: Timestamp) -> Result<Option<Session>, StoreError>;
    /// Ends a session, and clears out every expired one while at it.
    async fn delete_session(&self, id_hash: &str, now: Timestamp) -> Result<(), StoreError>;
}
