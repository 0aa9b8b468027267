use serde::{Deserialize, Serialize};

use crate::{PersonId, Timestamp};

/// What a person may do in Klaxon. Ordered: each level includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Reads incidents (public ones, and private ones they are a member of).
    Viewer,
    /// Declares incidents and runs them.
    #[default]
    Responder,
    /// Everything, every private incident included, and the settings.
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Viewer => "viewer",
            Access::Responder => "responder",
            Access::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Access> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Access::Viewer),
            "responder" => Some(Access::Responder),
            "admin" => Some(Access::Admin),
            _ => None,
        }
    }
}

/// One human, the same in the web UI, in every chat platform and in paging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: PersonId,
    pub name: String,
    pub email: Option<String>,
    pub slack_user_id: Option<String>,
    pub matrix_id: Option<String>,
    /// The name they sign in to the web UI with, if they have a local password.
    pub login: Option<String>,
    pub access: Access,
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
    pub access: Access,
}
