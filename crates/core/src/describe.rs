//! Events in words, for the timeline in the web UI, the API and chat.

use crate::{Actor, Catalog, Event, EventKind, FieldChange, PersonId};

fn role_name(catalog: &Catalog, key: &str) -> String {
    catalog
        .roles
        .get(key)
        .map(|r| r.name.clone())
        .unwrap_or_else(|| key.to_string())
}

fn or_none(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "none".into())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Who did it, in words.
pub fn actor_name(actor: &Actor, name_of: &dyn Fn(PersonId) -> String) -> String {
    match actor {
        Actor::Person { id } => name_of(*id),
        Actor::System { name } => name.clone(),
    }
}

/// What an event did, as a phrase that follows the actor's name ("changed the severity from
/// SEV2 to SEV1"); for notes and captured messages, their text.
pub fn describe(event: &Event, catalog: &Catalog, name_of: &dyn Fn(PersonId) -> String) -> String {
    match &event.kind {
        EventKind::Declared(d) => format!("declared the incident: {}", d.title),
        EventKind::FieldChanged(change) => match change {
            FieldChange::Title { new, .. } => format!("renamed the incident to “{new}”"),
            FieldChange::Summary { .. } => "updated the summary".into(),
            FieldChange::Impact { .. } => "updated the impact statement".into(),
            FieldChange::Severity {
                old: None,
                new: Some(n),
            } => format!("set the severity to {n}"),
            FieldChange::Severity { old, new } => {
                format!(
                    "changed the severity from {} to {}",
                    or_none(old),
                    or_none(new)
                )
            }
            FieldChange::Type { old, new } => {
                format!("changed the type from {} to {}", or_none(old), or_none(new))
            }
            FieldChange::Services { new, .. } => {
                format!("set the affected services to {}", list(new))
            }
            FieldChange::Label {
                key, new: Some(v), ..
            } => format!("set the label {key} to {v}"),
            FieldChange::Label { key, new: None, .. } => format!("removed the label {key}"),
            FieldChange::Private { new: true, .. } => "made the incident private".into(),
            FieldChange::Private { new: false, .. } => "made the incident public".into(),
            FieldChange::ImpactStartedAt { new: Some(t), .. } => {
                format!(
                    "set the start of customer impact to {}",
                    t.format("%Y-%m-%d %H:%M UTC")
                )
            }
            FieldChange::ImpactStartedAt { new: None, .. } => {
                "cleared the start of customer impact".into()
            }
            FieldChange::ImpactEndedAt { new: Some(t), .. } => {
                format!(
                    "set the end of customer impact to {}",
                    t.format("%Y-%m-%d %H:%M UTC")
                )
            }
            FieldChange::ImpactEndedAt { new: None, .. } => {
                "cleared the end of customer impact".into()
            }
        },
        EventKind::StatusChanged { from, to, .. } => {
            format!("moved the status from {from} to {to}")
        }
        EventKind::RoleAssigned { role, person, .. } => {
            format!(
                "made {} the {}",
                name_of(*person),
                role_name(catalog, role).to_lowercase()
            )
        }
        EventKind::RoleReleased { role, person } => {
            format!(
                "released {} from the {} role",
                name_of(*person),
                role_name(catalog, role).to_lowercase()
            )
        }
        EventKind::NoteAdded { text } => text.clone(),
        EventKind::ChatMessageCaptured(m) => format!("{} wrote: {}", m.author_name, m.text),
        EventKind::ChatMessageRemoved { .. } => "took a chat message off the timeline".into(),
        EventKind::FollowUpAdded {
            id,
            text,
            due_at: None,
            ..
        } => format!("added follow-up #{id}: {text}"),
        EventKind::FollowUpAdded {
            id,
            text,
            due_at: Some(due),
            ..
        } => format!(
            "added follow-up #{id}: {text} (due {})",
            due.format("%Y-%m-%d %H:%M UTC")
        ),
        EventKind::FollowUpDone { id } => format!("completed follow-up #{id}"),
        EventKind::ActionSucceeded { action, detail, .. } => format!("{action}: {detail}"),
        EventKind::ActionFailed { action, error, .. } => format!("{action} failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{from_millis, IncidentRef, Phase};

    #[test]
    fn phrases() {
        let c = Catalog::default();
        let name = |p: PersonId| format!("person {}", p.0);
        let ev = |kind| Event {
            incident: IncidentRef::new(1).unwrap(),
            seq: 2,
            at: from_millis(0),
            actor: Actor::person(PersonId(1)),
            kind,
        };
        let s = |kind| describe(&ev(kind), &c, &name);
        assert_eq!(
            s(EventKind::FieldChanged(FieldChange::Severity {
                old: Some("SEV2".into()),
                new: Some("SEV1".into())
            })),
            "changed the severity from SEV2 to SEV1"
        );
        assert_eq!(
            s(EventKind::FieldChanged(FieldChange::Severity {
                old: None,
                new: Some("SEV3".into())
            })),
            "set the severity to SEV3"
        );
        assert_eq!(
            s(EventKind::StatusChanged {
                from: "triage".into(),
                to: "investigating".into(),
                phase: Phase::Active
            }),
            "moved the status from triage to investigating"
        );
        assert_eq!(
            s(EventKind::RoleAssigned {
                role: "lead".into(),
                person: PersonId(4),
                previous: None
            }),
            "made person 4 the incident lead"
        );
        assert_eq!(
            actor_name(&Actor::system("alertmanager"), &name),
            "alertmanager"
        );
    }
}
