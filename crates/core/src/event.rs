//! Events: every change to an incident, with who made it and when. Events carry everything
//! [`crate::Incident::apply`] needs, so a replay never consults configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{IncidentRef, PersonId, Phase, Timestamp};

/// Who caused a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    Person {
        id: PersonId,
    },
    /// Klaxon itself or an integration acting on its own (an alert rule, a job).
    System {
        name: String,
    },
}

impl Actor {
    pub fn person(id: PersonId) -> Self {
        Actor::Person { id }
    }

    pub fn system(name: &str) -> Self {
        Actor::System {
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub incident: IncidentRef,
    /// 1 for the declaration, then one more for each event of this incident.
    pub seq: u64,
    pub at: Timestamp,
    pub actor: Actor,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declared {
    pub title: String,
    pub summary: String,
    pub impact: String,
    pub severity: Option<String>,
    pub status: String,
    pub phase: Phase,
    pub incident_type: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub services: Vec<String>,
    pub private: bool,
    pub drill: bool,
    pub impact_started_at: Option<Timestamp>,
}

/// A chat message put on the timeline (pinned, or given the timeline reaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `slack` or `matrix`.
    pub platform: String,
    /// The platform's id of the message, unique within the platform.
    pub message_id: String,
    pub author: Option<PersonId>,
    pub author_name: String,
    pub text: String,
    pub link: Option<String>,
    /// When the message was sent, which is where it belongs on the timeline.
    pub sent_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub label: String,
    pub url: String,
}

/// A change of one field, with the value before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum FieldChange {
    Title {
        old: String,
        new: String,
    },
    Summary {
        old: String,
        new: String,
    },
    Impact {
        old: String,
        new: String,
    },
    Severity {
        old: Option<String>,
        new: Option<String>,
    },
    Type {
        old: Option<String>,
        new: Option<String>,
    },
    Services {
        old: Vec<String>,
        new: Vec<String>,
    },
    Label {
        key: String,
        old: Option<String>,
        new: Option<String>,
    },
    Private {
        old: bool,
        new: bool,
    },
    ImpactStartedAt {
        old: Option<Timestamp>,
        new: Option<Timestamp>,
    },
    ImpactEndedAt {
        old: Option<Timestamp>,
        new: Option<Timestamp>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Declared(Declared),
    FieldChanged(FieldChange),
    StatusChanged {
        from: String,
        to: String,
        /// The phase of `to` when the change was made.
        phase: Phase,
    },
    RoleAssigned {
        role: String,
        person: PersonId,
        previous: Option<PersonId>,
    },
    RoleReleased {
        role: String,
        person: PersonId,
    },
    NoteAdded {
        text: String,
    },
    ChatMessageCaptured(ChatMessage),
    ChatMessageRemoved {
        platform: String,
        message_id: String,
    },
    FollowUpAdded {
        id: u32,
        text: String,
        owner: Option<PersonId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<Timestamp>,
    },
    FollowUpDone {
        id: u32,
    },
    /// An external action (a job) this incident caused has done its work.
    ActionSucceeded {
        job_id: i64,
        action: String,
        detail: String,
        link: Option<Link>,
    },
    /// An external action gave up after its retries; it can be retried by hand.
    ActionFailed {
        job_id: i64,
        action: String,
        error: String,
    },
}

impl EventKind {
    /// The `type` tag as stored, for filtering the timeline by kind.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Declared(_) => "declared",
            EventKind::FieldChanged(_) => "field_changed",
            EventKind::StatusChanged { .. } => "status_changed",
            EventKind::RoleAssigned { .. } => "role_assigned",
            EventKind::RoleReleased { .. } => "role_released",
            EventKind::NoteAdded { .. } => "note_added",
            EventKind::ChatMessageCaptured(_) => "chat_message_captured",
            EventKind::ChatMessageRemoved { .. } => "chat_message_removed",
            EventKind::FollowUpAdded { .. } => "follow_up_added",
            EventKind::FollowUpDone { .. } => "follow_up_done",
            EventKind::ActionSucceeded { .. } => "action_succeeded",
            EventKind::ActionFailed { .. } => "action_failed",
        }
    }

    /// Words on the timeline that text search should find.
    pub fn search_text(&self) -> Option<&str> {
        match self {
            EventKind::NoteAdded { text } | EventKind::FollowUpAdded { text, .. } => Some(text),
            EventKind::ChatMessageCaptured(m) => Some(&m.text),
            _ => None,
        }
    }
}
