//! Which chat jobs an incident's events cause, for every configured platform. Written in the
//! same transaction as the events (through the store's `Effects`), so a declared incident
//! always gets its channel, however the process fares afterwards.

use klaxon_core::{Actor, Event, EventKind, FieldChange, Incident, Phase};
use klaxon_store::{Effects, NewJob};
use serde_json::json;

pub const CREATE_CHANNEL: &str = "chat.create_channel";
pub const POST_HEADLINE: &str = "chat.post_headline";
pub const PIN_HEADLINE: &str = "chat.pin_headline";
pub const UPDATE_HEADLINE: &str = "chat.update_headline";
pub const BOOKMARK: &str = "chat.bookmark";
pub const INVITE: &str = "chat.invite";
pub const ANNOUNCE: &str = "chat.announce";
pub const ARCHIVE: &str = "chat.archive";

pub const KINDS: &[&str] = &[
    CREATE_CHANNEL,
    POST_HEADLINE,
    PIN_HEADLINE,
    UPDATE_HEADLINE,
    BOOKMARK,
    INVITE,
    ANNOUNCE,
    ARCHIVE,
];

pub struct ChatEffects {
    /// The platforms to mobilise, with whether each announces new incidents in a shared channel.
    pub platforms: Vec<(&'static str, bool)>,
    /// Those of them where an incident gets a room only when a playbook opens one
    /// (`open_channel`), not on declaration.
    pub on_request: Vec<&'static str>,
}

/// The jobs that give an incident its room on `platform`: the channel, the pinned headline,
/// the bookmark and the announcement. On declaration, or later when a playbook opens the
/// room (then with [`invite_members`]).
/// Everyone already in the incident (who declared it, who held a role), invited into a room
/// opened after the declaration.
pub fn invite_members(i: &Incident, platform: &'static str) -> NewJob {
    let people: Vec<i64> = i.members.iter().map(|p| p.0).collect();
    chat_job(
        i.reference,
        platform,
        "invite:members",
        INVITE,
        json!({ "people": people }),
    )
    .after(format!("{}:{platform}:channel", i.reference))
}

/// A chat job of `kind` for the incident on `platform`, keyed `INC-n:platform:what`, with
/// `extra` in its payload.
fn chat_job(
    r: klaxon_core::IncidentRef,
    platform: &'static str,
    what: &str,
    kind: &str,
    mut extra: serde_json::Value,
) -> NewJob {
    extra["platform"] = json!(platform);
    NewJob::about(r, format!("{r}:{platform}:{what}"), kind, extra)
}

pub fn open_room(i: &Incident, platform: &'static str, announce: bool) -> Vec<NewJob> {
    let r = i.reference;
    let job =
        |what: &str, kind: &str, extra: serde_json::Value| chat_job(r, platform, what, kind, extra);
    let channel = format!("{r}:{platform}:channel");
    // The pin is a job of its own, so that the headline's updates (which wait for the post)
    // run beside it rather than after it. `pin: apart` tells the headline's job so; a headline
    // job written before there were pin jobs pins by itself.
    let mut jobs = vec![
        job("channel", CREATE_CHANNEL, json!({})),
        job("headline", POST_HEADLINE, json!({ "pin": "apart" })).after(&channel),
        job("pin", PIN_HEADLINE, json!({})).after(format!("{r}:{platform}:headline")),
        job("bookmark", BOOKMARK, json!({})).after(&channel),
    ];
    // After the channel, so that the announcement can say where to join.
    if announce && !i.private {
        jobs.push(job("announcement", ANNOUNCE, json!({})).after(&channel));
    }
    jobs
}

fn changes_headline(kind: &EventKind) -> bool {
    match kind {
        EventKind::FieldChanged(f) => matches!(
            f,
            FieldChange::Title { .. }
                | FieldChange::Summary { .. }
                | FieldChange::Severity { .. }
                | FieldChange::Services { .. }
        ),
        EventKind::StatusChanged { .. }
        | EventKind::RoleAssigned { .. }
        | EventKind::RoleReleased { .. } => true,
        EventKind::ActionSucceeded { link, action, .. } => {
            link.is_some() && !crate::message::is_chat_action(action)
        }
        _ => false,
    }
}

impl Effects for ChatEffects {
    fn jobs(&self, i: &Incident, events: &[Event]) -> Vec<NewJob> {
        let r = i.reference;
        let declared = events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Declared(_)));
        let mut jobs = Vec::new();
        for &(platform, announce) in &self.platforms {
            let on_request = self.on_request.contains(&platform);
            let key = |what: &str| format!("{r}:{platform}:{what}");
            let job = |what: &str, kind: &str, extra: serde_json::Value| {
                chat_job(r, platform, what, kind, extra)
            };
            let channel = key("channel");
            if declared && !on_request {
                jobs.extend(open_room(i, platform, announce));
            }
            // Where rooms open on request, what follows waits for the room if there is one.
            let after = |j: NewJob, on: &str| {
                if on_request {
                    j.after_if_enqueued(on)
                } else {
                    j.after(on)
                }
            };
            for e in events {
                // Whoever declares and whoever takes a role is invited into the channel.
                let invitee = match (&e.kind, &e.actor) {
                    (EventKind::Declared(_), Actor::Person { id }) => Some(*id),
                    (EventKind::RoleAssigned { person, .. }, _) => Some(*person),
                    _ => None,
                };
                if let Some(p) = invitee {
                    jobs.push(after(
                        job(
                            &format!("invite:{}", e.seq),
                            INVITE,
                            json!({ "people": [p] }),
                        ),
                        &channel,
                    ));
                }
                if !declared && changes_headline(&e.kind) {
                    jobs.push(after(
                        job(&format!("headline:{}", e.seq), UPDATE_HEADLINE, json!({})),
                        &key("headline"),
                    ));
                }
                if let EventKind::StatusChanged {
                    phase: Phase::Closed,
                    ..
                } = e.kind
                {
                    jobs.push(after(
                        job(&format!("archive:{}", e.seq), ARCHIVE, json!({})),
                        &channel,
                    ));
                }
            }
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_core::{from_millis, Catalog, Command, Declare, IncidentRef, PersonId};

    fn events_of(kinds: Vec<EventKind>, from: u64) -> Vec<Event> {
        kinds
            .into_iter()
            .zip(from..)
            .map(|(kind, seq)| Event {
                incident: IncidentRef::new(7).unwrap(),
                seq,
                at: from_millis(0),
                actor: Actor::person(PersonId(1)),
                kind,
            })
            .collect()
    }

    #[test]
    fn a_declaration_mobilises_the_channel_once() {
        let c = Catalog::default();
        let d = Declare {
            title: "Checkout is down".into(),
            lead: Some(PersonId(1)),
            ..Default::default()
        };
        let events = events_of(klaxon_core::decide_declare(&c, &d).unwrap(), 1);
        let i = Incident::replay(&events).unwrap();
        let fx = ChatEffects {
            platforms: vec![("slack", true)],
            on_request: Vec::new(),
        };
        let jobs = fx.jobs(&i, &events);
        let keys: Vec<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "INC-7:slack:channel",
                "INC-7:slack:headline",
                "INC-7:slack:pin",
                "INC-7:slack:bookmark",
                "INC-7:slack:announcement",
                "INC-7:slack:invite:1",
                "INC-7:slack:invite:2"
            ]
        );
        assert_eq!(jobs[1].depends_on, vec!["INC-7:slack:channel"]);
        assert_eq!(jobs[2].depends_on, vec!["INC-7:slack:headline"]);
        assert_eq!(jobs[5].payload["people"], serde_json::json!([1]));

        // A private incident is not announced.
        let private = Declare { private: true, ..d };
        let events = events_of(klaxon_core::decide_declare(&c, &private).unwrap(), 1);
        let i = Incident::replay(&events).unwrap();
        assert!(!fx.jobs(&i, &events).iter().any(|j| j.kind == ANNOUNCE));

        // Later changes update the headline; closing archives.
        let mut i = i;
        let mut later = Vec::new();
        for (n, cmd) in [
            Command::SetSeverity {
                severity: Some("SEV1".into()),
            },
            Command::AddNote { text: "x".into() },
            Command::ChangeStatus {
                status: "resolved".into(),
            },
            Command::ChangeStatus {
                status: "closed".into(),
            },
        ]
        .into_iter()
        .enumerate()
        {
            let e = events_of(klaxon_core::decide(&c, &i, &cmd).unwrap(), 3 + n as u64);
            i.apply(&e[0]);
            later.extend(e);
        }
        let keys: Vec<String> = fx.jobs(&i, &later).into_iter().map(|j| j.key).collect();
        assert_eq!(
            keys,
            vec![
                "INC-7:slack:headline:3",
                "INC-7:slack:headline:5",
                "INC-7:slack:headline:6",
                "INC-7:slack:archive:6"
            ]
        );
    }
}
