use serde::{Deserialize, Serialize};

use crate::{PersonId, Timestamp};

/// One human, the same in the web UI, in every chat platform and in paging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: PersonId,
    pub name: String,
    pub email: Option<String>,
    pub slack_user_id: Option<String>,
    pub matrix_id: Option<String>,
    pub created_at: Timestamp,
}

/// How a chat platform names a person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "platform", content = "id", rename_all = "snake_case")]
pub enum ChatIdentity {
    Slack(String),
    Matrix(String),
    Email(String),
}

/// What is known of a person when they first turn up (a Slack user, a sign-in).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NewPerson {
    pub name: String,
    pub email: Option<String>,
    pub slack_user_id: Option<String>,
    pub matrix_id: Option<String>,
}
