//! Commands: what people and integrations ask of an incident. [`decide`] validates a command
//! against the current state and the catalog and returns the events it causes; an empty list
//! means the command changes nothing (setting the severity it already has), which makes a
//! retried request harmless.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::text::{label_key, long_text, short_name};
use crate::{
    Catalog, ChatMessage, CommandError, Declared, EventKind, FieldChange, Incident, Link, PersonId,
    Timestamp, Title,
};

/// A new incident. Only the title is required.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Declare {
    pub title: String,
    pub summary: String,
    pub impact: String,
    pub severity: Option<String>,
    /// The catalog's initial status when not given.
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub incident_type: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub services: Vec<String>,
    pub private: bool,
    pub drill: bool,
    pub lead: Option<PersonId>,
    pub impact_started_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    SetTitle {
        title: String,
    },
    SetSummary {
        summary: String,
    },
    SetImpact {
        impact: String,
    },
    SetSeverity {
        severity: Option<String>,
    },
    SetType {
        incident_type: Option<String>,
    },
    SetServices {
        services: Vec<String>,
    },
    SetLabel {
        key: String,
        value: Option<String>,
    },
    SetPrivate {
        private: bool,
    },
    SetImpactStartedAt {
        at: Option<Timestamp>,
    },
    SetImpactEndedAt {
        at: Option<Timestamp>,
    },
    ChangeStatus {
        status: String,
    },
    AssignRole {
        role: String,
        person: PersonId,
    },
    ReleaseRole {
        role: String,
    },
    AddNote {
        text: String,
    },
    CaptureChatMessage {
        message: ChatMessage,
    },
    RemoveChatMessage {
        platform: String,
        message_id: String,
    },
    AddFollowUp {
        text: String,
        owner: Option<PersonId>,
        /// When it should be done; a `follow_up_overdue` playbook fires then if it is not.
        #[serde(default)]
        due_at: Option<Timestamp>,
    },
    CompleteFollowUp {
        id: u32,
    },
    RecordActionSucceeded {
        job_id: i64,
        action: String,
        detail: String,
        link: Option<Link>,
    },
    RecordActionFailed {
        job_id: i64,
        action: String,
        error: String,
    },
}

fn severity(catalog: &Catalog, s: &Option<String>) -> Result<Option<String>, CommandError> {
    match s.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(given) => catalog
            .severities
            .canonical(given)
            .map(|k| Some(k.to_string()))
            .ok_or_else(|| CommandError::UnknownSeverity {
                given: given.to_string(),
                allowed: catalog.severities.keys(),
            }),
    }
}

fn incident_type(catalog: &Catalog, t: &Option<String>) -> Result<Option<String>, CommandError> {
    let Some(given) = t.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if catalog.types.is_empty() {
        return short_name("type", given).map(Some);
    }
    catalog
        .types
        .iter()
        .find(|k| k.eq_ignore_ascii_case(given))
        .map(|k| Some(k.clone()))
        .ok_or_else(|| CommandError::UnknownType {
            given: given.to_string(),
            allowed: catalog.types.clone(),
        })
}

fn services(list: &[String]) -> Result<Vec<String>, CommandError> {
    let mut out = list
        .iter()
        .map(|s| short_name("services", s))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn role_key(catalog: &Catalog, role: &str) -> Result<String, CommandError> {
    catalog
        .roles
        .get(role.trim())
        .map(|r| r.key.clone())
        .ok_or_else(|| CommandError::UnknownRole {
            given: role.to_string(),
            allowed: catalog.roles.keys(),
        })
}

fn check_impact_window(
    start: Option<Timestamp>,
    end: Option<Timestamp>,
) -> Result<(), CommandError> {
    match (start, end) {
        (Some(s), Some(e)) if e < s => Err(CommandError::ImpactEndsBeforeStart {
            start: s.to_rfc3339(),
            end: e.to_rfc3339(),
        }),
        _ => Ok(()),
    }
}

/// The events of a new incident: its declaration and, when a lead is named, the lead's
/// assignment.
pub fn decide_declare(catalog: &Catalog, d: &Declare) -> Result<Vec<EventKind>, CommandError> {
    let title = Title::parse(&d.title)?;
    let status_key = d.status.as_deref().unwrap_or(&catalog.statuses.initial);
    let status = catalog
        .statuses
        .get(status_key)
        .ok_or_else(|| CommandError::UnknownStatus {
            given: status_key.to_string(),
            allowed: catalog.statuses.keys(),
        })?;
    let mut labels = BTreeMap::new();
    for (k, v) in &d.labels {
        labels.insert(label_key(k)?, short_name("labels", v)?);
    }
    let declared = Declared {
        title: title.into(),
        summary: long_text("summary", &d.summary)?,
        impact: long_text("impact", &d.impact)?,
        severity: severity(catalog, &d.severity)?,
        status: status.key.clone(),
        phase: status.phase,
        incident_type: incident_type(catalog, &d.incident_type)?,
        labels,
        services: services(&d.services)?,
        private: d.private,
        drill: d.drill,
        impact_started_at: d.impact_started_at,
    };
    let mut events = vec![EventKind::Declared(declared)];
    if let Some(lead) = d.lead {
        events.push(EventKind::RoleAssigned {
            role: crate::LEAD_ROLE.to_string(),
            person: lead,
            previous: None,
        });
    }
    Ok(events)
}

/// Decides what a command does to an existing incident.
pub fn decide(
    catalog: &Catalog,
    incident: &Incident,
    command: &Command,
) -> Result<Vec<EventKind>, CommandError> {
    use FieldChange as F;
    let field = |change: F| Ok(vec![EventKind::FieldChanged(change)]);
    match command {
        Command::SetTitle { title } => {
            let new: String = Title::parse(title)?.into();
            if new == incident.title {
                return Ok(vec![]);
            }
            field(F::Title {
                old: incident.title.clone(),
                new,
            })
        }
        Command::SetSummary { summary } => {
            let new = long_text("summary", summary)?;
            if new == incident.summary {
                return Ok(vec![]);
            }
            field(F::Summary {
                old: incident.summary.clone(),
                new,
            })
        }
        Command::SetImpact { impact } => {
            let new = long_text("impact", impact)?;
            if new == incident.impact {
                return Ok(vec![]);
            }
            field(F::Impact {
                old: incident.impact.clone(),
                new,
            })
        }
        Command::SetSeverity { severity: s } => {
            let new = severity(catalog, s)?;
            if new == incident.severity {
                return Ok(vec![]);
            }
            field(F::Severity {
                old: incident.severity.clone(),
                new,
            })
        }
        Command::SetType { incident_type: t } => {
            let new = incident_type(catalog, t)?;
            if new == incident.incident_type {
                return Ok(vec![]);
            }
            field(F::Type {
                old: incident.incident_type.clone(),
                new,
            })
        }
        Command::SetServices { services: list } => {
            let new = services(list)?;
            if new == incident.services {
                return Ok(vec![]);
            }
            field(F::Services {
                old: incident.services.clone(),
                new,
            })
        }
        Command::SetLabel { key, value } => {
            let key = label_key(key)?;
            let new = match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                Some(v) => Some(short_name("labels", v)?),
                None => None,
            };
            let old = incident.labels.get(&key).cloned();
            if new == old {
                return Ok(vec![]);
            }
            field(F::Label { key, old, new })
        }
        Command::SetPrivate { private } => {
            if *private == incident.private {
                return Ok(vec![]);
            }
            field(F::Private {
                old: incident.private,
                new: *private,
            })
        }
        Command::SetImpactStartedAt { at } => {
            if *at == incident.impact_started_at {
                return Ok(vec![]);
            }
            check_impact_window(*at, incident.impact_ended_at)?;
            field(F::ImpactStartedAt {
                old: incident.impact_started_at,
                new: *at,
            })
        }
        Command::SetImpactEndedAt { at } => {
            if *at == incident.impact_ended_at {
                return Ok(vec![]);
            }
            check_impact_window(incident.impact_started_at, *at)?;
            field(F::ImpactEndedAt {
                old: incident.impact_ended_at,
                new: *at,
            })
        }
        Command::ChangeStatus { status } => {
            let to =
                catalog
                    .statuses
                    .get(status.trim())
                    .ok_or_else(|| CommandError::UnknownStatus {
                        given: status.clone(),
                        allowed: catalog.statuses.keys(),
                    })?;
            if to.key == incident.status {
                return Ok(vec![]);
            }
            // A status the operator has since removed from the catalog may still be on old
            // incidents; from there any status is allowed, so they are not stuck.
            if let Some(from) = catalog.statuses.get(&incident.status) {
                if !from.next.iter().any(|n| n.eq_ignore_ascii_case(&to.key)) {
                    return Err(CommandError::TransitionNotAllowed {
                        from: from.key.clone(),
                        to: to.key.clone(),
                        allowed: from.next.clone(),
                    });
                }
            }
            Ok(vec![EventKind::StatusChanged {
                from: incident.status.clone(),
                to: to.key.clone(),
                phase: to.phase,
            }])
        }
        Command::AssignRole { role, person } => {
            let role = role_key(catalog, role)?;
            let previous = incident.roles.get(&role).copied();
            if previous == Some(*person) {
                return Ok(vec![]);
            }
            Ok(vec![EventKind::RoleAssigned {
                role,
                person: *person,
                previous,
            }])
        }
        Command::ReleaseRole { role } => {
            // Releasing a role the operator has since removed must still work.
            let key = incident
                .roles
                .keys()
                .find(|k| k.eq_ignore_ascii_case(role.trim()))
                .cloned()
                .map(Ok)
                .unwrap_or_else(|| role_key(catalog, role))?;
            match incident.roles.get(&key) {
                Some(person) => Ok(vec![EventKind::RoleReleased {
                    role: key,
                    person: *person,
                }]),
                None => Err(CommandError::RoleNotHeld { role: key }),
            }
        }
        Command::AddNote { text } => {
            let text = long_text("note", text)?;
            if text.is_empty() {
                return Err(CommandError::InvalidText {
                    field: "note",
                    reason: "the note is empty: write what happened or what was decided",
                });
            }
            Ok(vec![EventKind::NoteAdded { text }])
        }
        Command::CaptureChatMessage { message } => {
            if incident
                .captured
                .contains(&format!("{}:{}", message.platform, message.message_id))
            {
                return Ok(vec![]);
            }
            let mut message = message.clone();
            message.text = long_text("message", &message.text)?;
            Ok(vec![EventKind::ChatMessageCaptured(message)])
        }
        Command::RemoveChatMessage {
            platform,
            message_id,
        } => Ok(vec![EventKind::ChatMessageRemoved {
            platform: platform.clone(),
            message_id: message_id.clone(),
        }]),
        Command::AddFollowUp {
            text,
            owner,
            due_at,
        } => {
            let text = short_follow_up(text)?;
            Ok(vec![EventKind::FollowUpAdded {
                id: incident.next_follow_up_id(),
                text,
                owner: *owner,
                due_at: *due_at,
            }])
        }
        Command::CompleteFollowUp { id } => {
            match incident.follow_ups.iter().find(|f| f.id == *id) {
                None => Err(CommandError::UnknownFollowUp { id: *id }),
                Some(f) if f.done_at.is_some() => Ok(vec![]),
                Some(_) => Ok(vec![EventKind::FollowUpDone { id: *id }]),
            }
        }
        Command::RecordActionSucceeded {
            job_id,
            action,
            detail,
            link,
        } => Ok(vec![EventKind::ActionSucceeded {
            job_id: *job_id,
            action: action.clone(),
            detail: detail.clone(),
            link: link.clone(),
        }]),
        Command::RecordActionFailed {
            job_id,
            action,
            error,
        } => Ok(vec![EventKind::ActionFailed {
            job_id: *job_id,
            action: action.clone(),
            error: error.clone(),
        }]),
    }
}

fn short_follow_up(text: &str) -> Result<String, CommandError> {
    let t = long_text("follow_up", text)?;
    if t.is_empty() {
        return Err(CommandError::InvalidText {
            field: "follow_up",
            reason: "say what needs doing, such as \"Add an alert on queue depth\"",
        });
    }
    if t.chars().count() > 500 {
        return Err(CommandError::TooLong {
            field: "follow_up",
            len: t.chars().count(),
            max: 500,
        });
    }
    Ok(t)
}
