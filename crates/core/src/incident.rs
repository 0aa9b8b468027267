//! The incident projection: the state that a fold of an incident's events produces.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    Actor, Declared, Event, EventKind, FieldChange, IncidentRef, Link, PersonId, Phase, Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    pub id: u32,
    pub text: String,
    pub owner: Option<PersonId>,
    pub created_at: Timestamp,
    pub done_at: Option<Timestamp>,
    #[serde(default)]
    pub due_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub reference: IncidentRef,
    pub title: String,
    pub summary: String,
    pub impact: String,
    pub severity: Option<String>,
    pub status: String,
    pub phase: Phase,
    #[serde(rename = "type")]
    pub incident_type: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Sorted and without duplicates.
    pub services: Vec<String>,
    pub private: bool,
    pub drill: bool,
    /// Role key to the person holding it.
    pub roles: BTreeMap<String, PersonId>,
    /// Who may see the incident when it is private: the person who declared it and everyone
    /// who has held a role in it.
    #[serde(default)]
    pub members: BTreeSet<PersonId>,
    pub follow_ups: Vec<FollowUp>,
    /// Chat messages on the timeline now (`platform:message id`), so that pinning and reacting
    /// to the same message puts it there once.
    #[serde(default)]
    pub captured: BTreeSet<String>,
    /// What the incident's external actions made: the channel, the ticket, keyed by action.
    pub links: BTreeMap<String, Link>,
    pub declared_by: Actor,
    pub declared_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub mitigated_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub impact_started_at: Option<Timestamp>,
    pub impact_ended_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// The `seq` of the last event applied.
    pub version: u64,
}

impl Incident {
    /// Rebuilds an incident from its events, oldest first. `None` when the first event is not
    /// a declaration.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<Incident> {
        let mut it = events.into_iter();
        let mut incident = Incident::declared(it.next()?)?;
        for e in it {
            incident.apply(e);
        }
        Some(incident)
    }

    /// The state right after a `Declared` event.
    pub fn declared(event: &Event) -> Option<Incident> {
        let EventKind::Declared(d) = &event.kind else {
            return None;
        };
        let Declared {
            title,
            summary,
            impact,
            severity,
            status,
            phase,
            incident_type,
            labels,
            services,
            private,
            drill,
            impact_started_at,
        } = d.clone();
        let mut incident = Incident {
            reference: event.incident,
            title,
            summary,
            impact,
            severity,
            status,
            phase: Phase::Triage,
            incident_type,
            labels,
            services,
            private,
            drill,
            roles: BTreeMap::new(),
            members: match event.actor {
                Actor::Person { id } => BTreeSet::from([id]),
                Actor::System { .. } => BTreeSet::new(),
            },
            follow_ups: Vec::new(),
            captured: BTreeSet::new(),
            links: BTreeMap::new(),
            declared_by: event.actor.clone(),
            declared_at: event.at,
            acknowledged_at: None,
            mitigated_at: None,
            resolved_at: None,
            closed_at: None,
            impact_started_at,
            impact_ended_at: None,
            updated_at: event.at,
            version: event.seq,
        };
        incident.enter_phase(phase, event.at);
        Some(incident)
    }

    /// Folds one event into the state. Total: it never fails, so that a stored event can
    /// always be replayed; validation happens earlier, in [`crate::decide`].
    pub fn apply(&mut self, event: &Event) {
        let at = event.at;
        match &event.kind {
            // A second declaration cannot be decided; if one were stored it changes nothing.
            EventKind::Declared(_) => {}
            EventKind::FieldChanged(change) => self.apply_field(change),
            EventKind::StatusChanged { to, phase, .. } => {
                self.status = to.clone();
                self.enter_phase(*phase, at);
            }
            EventKind::RoleAssigned { role, person, .. } => {
                self.roles.insert(role.clone(), *person);
                self.members.insert(*person);
            }
            EventKind::RoleReleased { role, .. } => {
                self.roles.remove(role);
            }
            EventKind::FollowUpAdded {
                id,
                text,
                owner,
                due_at,
            } => self.follow_ups.push(FollowUp {
                id: *id,
                text: text.clone(),
                owner: *owner,
                created_at: at,
                done_at: None,
                due_at: *due_at,
            }),
            EventKind::FollowUpDone { id } => {
                if let Some(f) = self.follow_ups.iter_mut().find(|f| f.id == *id) {
                    f.done_at.get_or_insert(at);
                }
            }
            EventKind::ActionSucceeded {
                action,
                link: Some(link),
                ..
            } => {
                self.links.insert(action.clone(), link.clone());
            }
            EventKind::ChatMessageCaptured(m) => {
                self.captured
                    .insert(format!("{}:{}", m.platform, m.message_id));
            }
            EventKind::ChatMessageRemoved {
                platform,
                message_id,
            } => {
                self.captured.remove(&format!("{platform}:{message_id}"));
            }
            EventKind::NoteAdded { .. }
            | EventKind::ActionSucceeded { .. }
            | EventKind::ActionFailed { .. } => {}
        }
        self.updated_at = at;
        self.version = event.seq;
    }

    fn apply_field(&mut self, change: &FieldChange) {
        match change.clone() {
            FieldChange::Title { new, .. } => self.title = new,
            FieldChange::Summary { new, .. } => self.summary = new,
            FieldChange::Impact { new, .. } => self.impact = new,
            FieldChange::Severity { new, .. } => self.severity = new,
            FieldChange::Type { new, .. } => self.incident_type = new,
            FieldChange::Services { new, .. } => self.services = new,
            FieldChange::Label {
                key, new: Some(v), ..
            } => {
                self.labels.insert(key, v);
            }
            FieldChange::Label { key, new: None, .. } => {
                self.labels.remove(&key);
            }
            FieldChange::Private { new, .. } => self.private = new,
            FieldChange::ImpactStartedAt { new, .. } => self.impact_started_at = new,
            FieldChange::ImpactEndedAt { new, .. } => self.impact_ended_at = new,
        }
    }

    /// Sets the milestones the phase has reached for the first time and clears those it is
    /// back below (a reopened incident is no longer resolved).
    fn enter_phase(&mut self, phase: Phase, at: Timestamp) {
        self.phase = phase;
        for (milestone, slot) in [
            (Phase::Active, &mut self.acknowledged_at),
            (Phase::Mitigated, &mut self.mitigated_at),
            (Phase::Resolved, &mut self.resolved_at),
            (Phase::Closed, &mut self.closed_at),
        ] {
            if phase >= milestone {
                slot.get_or_insert(at);
            } else if milestone > Phase::Active {
                // Acknowledgement stays: somebody did pick the incident up.
                *slot = None;
            }
        }
    }

    pub fn lead(&self) -> Option<PersonId> {
        self.roles.get(crate::LEAD_ROLE).copied()
    }

    pub fn is_open(&self) -> bool {
        self.phase.is_open()
    }

    /// Whether `access` (held by `person`, if a person) may see this incident.
    pub fn visible_to(&self, person: Option<PersonId>, access: crate::Access) -> bool {
        !self.private
            || access == crate::Access::Admin
            || person.is_some_and(|p| self.members.contains(&p))
    }

    pub(crate) fn next_follow_up_id(&self) -> u32 {
        self.follow_ups.iter().map(|f| f.id).max().unwrap_or(0) + 1
    }
}
