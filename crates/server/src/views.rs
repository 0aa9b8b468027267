//! What the API returns and the web UI shows: incidents, events and actions with people's
//! names put to their ids. The JSON names are the ones a user would guess (`reference`,
//! `severity`, `services`); they are the API's contract, apart from the domain's types.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use klaxon_core::{Actor, Catalog, Event, EventKind, Incident, Person, PersonId};
use klaxon_store::{Job, Store, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActorView {
    /// `person` or `system`.
    pub kind: String,
    pub id: Option<i64>,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowUpView {
    pub id: u32,
    pub text: String,
    pub owner: Option<PersonRef>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkView {
    pub label: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentView {
    /// `INC-42`.
    pub reference: String,
    /// The incident's page in the web UI.
    pub url: String,
    pub title: String,
    pub summary: String,
    pub impact: String,
    /// A severity key such as `SEV1`, or null until someone sets one.
    pub severity: Option<String>,
    pub status: String,
    /// `triage`, `active`, `mitigated`, `resolved` or `closed`: how far the status has come.
    pub phase: String,
    #[serde(rename = "type")]
    pub incident_type: Option<String>,
    pub services: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub private: bool,
    pub drill: bool,
    pub lead: Option<PersonRef>,
    /// Role key to the person holding it.
    pub roles: BTreeMap<String, PersonRef>,
    pub follow_ups: Vec<FollowUpView>,
    /// What the incident's actions made (its chat channel, its ticket), by action.
    pub links: BTreeMap<String, LinkView>,
    pub declared_by: ActorView,
    pub declared_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub mitigated_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub impact_started_at: Option<DateTime<Utc>>,
    pub impact_ended_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Increases with every change.
    pub version: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: ActorView,
    /// `declared`, `field_changed`, `status_changed`, `role_assigned`, `note_added` …
    #[serde(rename = "type")]
    pub kind: String,
    /// The event in words.
    pub text: String,
    /// The event's own fields, as stored.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActionView {
    pub id: i64,
    /// What it does: `slack.create_channel`, `pagerduty.trigger` …
    pub kind: String,
    /// `pending`, `running`, `succeeded`, `dead` (gave up; can be retried) or `cancelled`.
    pub state: String,
    pub attempts: u32,
    pub max_attempts: u32,
    /// When it runs (next).
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Names for the people a page mentions, loaded in one query.
#[derive(Default)]
pub struct People(HashMap<PersonId, Person>);

impl People {
    pub async fn load(store: &dyn Store, mut ids: Vec<PersonId>) -> Result<People, StoreError> {
        ids.sort();
        ids.dedup();
        Ok(People(
            store
                .persons_by_id(&ids)
                .await?
                .into_iter()
                .map(|p| (p.id, p))
                .collect(),
        ))
    }

    pub fn name(&self, id: PersonId) -> String {
        self.0
            .get(&id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("person #{id}"))
    }

    pub fn person_ref(&self, id: PersonId) -> PersonRef {
        PersonRef {
            id: id.0,
            name: self.name(id),
        }
    }

    pub fn actor(&self, actor: &Actor) -> ActorView {
        match actor {
            Actor::Person { id } => ActorView {
                kind: "person".into(),
                id: Some(id.0),
                name: self.name(*id),
            },
            Actor::System { name } => ActorView {
                kind: "system".into(),
                id: None,
                name: name.clone(),
            },
        }
    }
}

/// Everyone an incident mentions.
pub fn incident_people(i: &Incident) -> Vec<PersonId> {
    let mut ids: Vec<PersonId> = i.roles.values().copied().collect();
    ids.extend(i.follow_ups.iter().filter_map(|f| f.owner));
    if let Actor::Person { id } = i.declared_by {
        ids.push(id);
    }
    ids
}

/// Everyone events mention.
pub fn event_people(events: &[Event]) -> Vec<PersonId> {
    let mut ids = Vec::new();
    for e in events {
        if let Actor::Person { id } = e.actor {
            ids.push(id);
        }
        match &e.kind {
            EventKind::RoleAssigned { person, .. } | EventKind::RoleReleased { person, .. } => {
                ids.push(*person)
            }
            EventKind::FollowUpAdded { owner: Some(p), .. } => ids.push(*p),
            _ => {}
        }
    }
    ids
}

pub fn incident_view(i: &Incident, people: &People, public_url: &str) -> IncidentView {
    IncidentView {
        reference: i.reference.to_string(),
        url: format!("{public_url}/incidents/{}", i.reference),
        title: i.title.clone(),
        summary: i.summary.clone(),
        impact: i.impact.clone(),
        severity: i.severity.clone(),
        status: i.status.clone(),
        phase: i.phase.as_str().to_string(),
        incident_type: i.incident_type.clone(),
        services: i.services.clone(),
        labels: i.labels.clone(),
        private: i.private,
        drill: i.drill,
        lead: i.lead().map(|p| people.person_ref(p)),
        roles: i
            .roles
            .iter()
            .map(|(k, p)| (k.clone(), people.person_ref(*p)))
            .collect(),
        follow_ups: i
            .follow_ups
            .iter()
            .map(|f| FollowUpView {
                id: f.id,
                text: f.text.clone(),
                owner: f.owner.map(|p| people.person_ref(p)),
                created_at: f.created_at,
                done_at: f.done_at,
                due_at: f.due_at,
            })
            .collect(),
        links: i
            .links
            .iter()
            .map(|(k, l)| {
                (
                    k.clone(),
                    LinkView {
                        label: l.label.clone(),
                        url: l.url.clone(),
                    },
                )
            })
            .collect(),
        declared_by: people.actor(&i.declared_by),
        declared_at: i.declared_at,
        acknowledged_at: i.acknowledged_at,
        mitigated_at: i.mitigated_at,
        resolved_at: i.resolved_at,
        closed_at: i.closed_at,
        impact_started_at: i.impact_started_at,
        impact_ended_at: i.impact_ended_at,
        updated_at: i.updated_at,
        version: i.version,
    }
}

pub fn event_view(e: &Event, people: &People, catalog: &Catalog) -> EventView {
    let mut details = serde_json::to_value(&e.kind).unwrap_or(serde_json::Value::Null);
    if let Some(map) = details.as_object_mut() {
        map.remove("type");
    }
    EventView {
        seq: e.seq,
        at: e.at,
        actor: people.actor(&e.actor),
        kind: e.kind.name().to_string(),
        text: klaxon_core::describe(e, catalog, &|p| people.name(p)),
        details,
    }
}

pub fn action_view(j: &Job) -> ActionView {
    ActionView {
        id: j.id.0,
        kind: j.kind.clone(),
        state: j.state.as_str().to_string(),
        attempts: j.attempts,
        max_attempts: j.max_attempts,
        run_at: j.run_at,
        last_error: j.last_error.clone(),
        created_at: j.created_at,
        updated_at: j.updated_at,
        finished_at: j.finished_at,
    }
}
