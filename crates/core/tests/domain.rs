//! The domain's behaviour through its public API: commands decided against the default
//! catalog, folded into the projection, and the projection equal to a replay.

use chrono::Duration;
use klaxon_core::*;
use proptest::prelude::*;

fn t(min: i64) -> Timestamp {
    from_millis(1_800_000_000_000 + min * 60_000)
}

struct Sim {
    catalog: Catalog,
    events: Vec<Event>,
    incident: Incident,
}

impl Sim {
    fn declare(d: Declare) -> Sim {
        let catalog = Catalog::default();
        let kinds = decide_declare(&catalog, &d).expect("declare");
        let r = IncidentRef::new(1).unwrap();
        let events: Vec<Event> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Event {
                incident: r,
                seq: i as u64 + 1,
                at: t(0),
                actor: Actor::person(PersonId(1)),
                kind,
            })
            .collect();
        let incident = Incident::replay(&events).unwrap();
        Sim {
            catalog,
            events,
            incident,
        }
    }

    fn run(&mut self, at: Timestamp, c: Command) -> Result<usize, CommandError> {
        let kinds = decide(&self.catalog, &self.incident, &c)?;
        let n = kinds.len();
        for kind in kinds {
            let e = Event {
                incident: self.incident.reference,
                seq: self.incident.version + 1,
                at,
                actor: Actor::system("test"),
                kind,
            };
            self.incident.apply(&e);
            self.events.push(e);
        }
        Ok(n)
    }
}

fn status(s: &str) -> Command {
    Command::ChangeStatus { status: s.into() }
}

#[test]
fn a_title_is_enough_to_declare() {
    let sim = Sim::declare(Declare {
        title: "Checkout is down".into(),
        ..Default::default()
    });
    let i = &sim.incident;
    assert_eq!(i.title, "Checkout is down");
    assert_eq!(i.status, "triage");
    assert_eq!(i.phase, Phase::Triage);
    assert_eq!(i.severity, None);
    assert_eq!(i.declared_at, t(0));
    assert_eq!(i.acknowledged_at, None);
    assert_eq!(i.version, 1);
}

#[test]
fn declare_validates_every_field() {
    let c = Catalog::default();
    let bad = |d: Declare| decide_declare(&c, &d).unwrap_err();
    let base = Declare {
        title: "Checkout is down".into(),
        ..Default::default()
    };
    assert_eq!(
        bad(Declare {
            title: " ".into(),
            ..base.clone()
        }),
        CommandError::EmptyTitle
    );
    let e = bad(Declare {
        severity: Some("SEV9".into()),
        ..base.clone()
    });
    assert_eq!(e.field(), Some("severity"));
    assert_eq!(
        e.to_string(),
        "unknown severity `SEV9`: use one of SEV1, SEV2, SEV3, SEV4"
    );
    let e = bad(Declare {
        status: Some("fixed".into()),
        ..base.clone()
    });
    assert_eq!(e.code(), "unknown_status");
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("Bad Key".to_string(), "x".to_string());
    assert_eq!(
        bad(Declare {
            labels,
            ..base.clone()
        })
        .code(),
        "invalid_label_key"
    );
    assert_eq!(
        bad(Declare {
            services: vec!["".into()],
            ..base
        })
        .field(),
        Some("services")
    );
}

#[test]
fn severity_is_canonicalised_and_unchanged_values_are_no_ops() {
    let mut sim = Sim::declare(Declare {
        title: "x".into(),
        ..Default::default()
    });
    assert_eq!(
        sim.run(
            t(1),
            Command::SetSeverity {
                severity: Some("sev2".into())
            }
        ),
        Ok(1)
    );
    assert_eq!(sim.incident.severity.as_deref(), Some("SEV2"));
    assert_eq!(
        sim.run(
            t(2),
            Command::SetSeverity {
                severity: Some("SEV2".into())
            }
        ),
        Ok(0)
    );
    let ev = &sim.events.last().unwrap().kind;
    assert_eq!(
        ev,
        &EventKind::FieldChanged(FieldChange::Severity {
            old: None,
            new: Some("SEV2".into())
        })
    );
}

#[test]
fn status_transitions_follow_the_catalog_and_set_milestones() {
    let mut sim = Sim::declare(Declare {
        title: "x".into(),
        ..Default::default()
    });
    let err = sim.run(t(1), status("closed")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "an incident cannot move from `triage` to `closed`: from `triage` it can move to \
         investigating, identified, monitoring, resolved"
    );
    sim.run(t(2), status("investigating")).unwrap();
    assert_eq!(sim.incident.acknowledged_at, Some(t(2)));
    sim.run(t(3), status("identified")).unwrap();
    assert_eq!(
        sim.incident.acknowledged_at,
        Some(t(2)),
        "first acknowledgement is kept"
    );
    sim.run(t(5), status("monitoring")).unwrap();
    sim.run(t(8), status("resolved")).unwrap();
    assert_eq!(sim.incident.mitigated_at, Some(t(5)));
    assert_eq!(sim.incident.resolved_at, Some(t(8)));
    assert!(!sim.incident.is_open());

    // Reopening clears what no longer holds and keeps the acknowledgement.
    sim.run(t(20), status("investigating")).unwrap();
    assert_eq!(sim.incident.resolved_at, None);
    assert_eq!(sim.incident.mitigated_at, None);
    assert_eq!(sim.incident.acknowledged_at, Some(t(2)));
    assert!(sim.incident.is_open());

    // Straight from triage to resolved passes every milestone at once.
    let mut quick = Sim::declare(Declare {
        title: "y".into(),
        ..Default::default()
    });
    quick.run(t(4), status("resolved")).unwrap();
    assert_eq!(quick.incident.acknowledged_at, Some(t(4)));
    assert_eq!(quick.incident.mitigated_at, Some(t(4)));
    assert_eq!(quick.incident.resolved_at, Some(t(4)));
    quick.run(t(9), status("closed")).unwrap();
    assert_eq!(quick.incident.closed_at, Some(t(9)));
}

#[test]
fn roles_follow_ups_and_impact_window() {
    let mut sim = Sim::declare(Declare {
        title: "x".into(),
        lead: Some(PersonId(7)),
        ..Default::default()
    });
    assert_eq!(sim.incident.lead(), Some(PersonId(7)));
    let e = sim.run(
        t(1),
        Command::AssignRole {
            role: "chef".into(),
            person: PersonId(2),
        },
    );
    assert_eq!(e.unwrap_err().code(), "unknown_role");
    sim.run(
        t(1),
        Command::AssignRole {
            role: "Lead".into(),
            person: PersonId(2),
        },
    )
    .unwrap();
    assert_eq!(
        sim.events.last().unwrap().kind,
        EventKind::RoleAssigned {
            role: "lead".into(),
            person: PersonId(2),
            previous: Some(PersonId(7))
        }
    );
    assert_eq!(
        sim.run(
            t(2),
            Command::ReleaseRole {
                role: "comms".into()
            }
        )
        .unwrap_err(),
        CommandError::RoleNotHeld {
            role: "comms".into()
        }
    );

    sim.run(
        t(3),
        Command::AddFollowUp {
            text: "Alert on queue depth".into(),
            owner: None,
            due_at: None,
        },
    )
    .unwrap();
    sim.run(
        t(3),
        Command::AddFollowUp {
            text: "Load test".into(),
            owner: None,
            due_at: None,
        },
    )
    .unwrap();
    assert_eq!(
        sim.incident
            .follow_ups
            .iter()
            .map(|f| f.id)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    sim.run(t(4), Command::CompleteFollowUp { id: 2 }).unwrap();
    assert_eq!(sim.run(t(5), Command::CompleteFollowUp { id: 2 }), Ok(0));
    assert_eq!(sim.incident.follow_ups[1].done_at, Some(t(4)));
    assert_eq!(
        sim.run(t(5), Command::CompleteFollowUp { id: 9 })
            .unwrap_err()
            .code(),
        "unknown_follow_up"
    );

    sim.run(t(6), Command::SetImpactStartedAt { at: Some(t(-30)) })
        .unwrap();
    let e = sim
        .run(t(6), Command::SetImpactEndedAt { at: Some(t(-31)) })
        .unwrap_err();
    assert_eq!(e.field(), Some("impact_ended_at"));
    sim.run(t(7), Command::SetImpactEndedAt { at: Some(t(-1)) })
        .unwrap();
    assert_eq!(
        sim.incident.impact_ended_at.unwrap() - sim.incident.impact_started_at.unwrap(),
        Duration::minutes(29)
    );
}

#[test]
fn events_round_trip_through_json() {
    let mut sim = Sim::declare(Declare {
        title: "x".into(),
        severity: Some("SEV1".into()),
        services: vec!["checkout".into(), "api".into(), "api".into()],
        ..Default::default()
    });
    assert_eq!(sim.incident.services, vec!["api", "checkout"]);
    sim.run(
        t(1),
        Command::AddNote {
            text: "Rolled back v42".into(),
        },
    )
    .unwrap();
    for e in &sim.events {
        let json = serde_json::to_string(e).unwrap();
        assert_eq!(&serde_json::from_str::<Event>(&json).unwrap(), e, "{json}");
    }
    let json = serde_json::to_value(&sim.events[1]).unwrap();
    assert_eq!(json["type"], "note_added");
    assert_eq!(json["incident"], "INC-1");
}

// ---- property: any sequence of commands keeps the projection equal to a replay ----

pub fn arb_command() -> impl Strategy<Value = Command> {
    let sev = prop::option::of(prop::sample::select(vec![
        "SEV1", "sev2", "SEV3", "SEV4", "SEV9",
    ]))
    .prop_map(|s| s.map(String::from));
    let statuses = prop::sample::select(vec![
        "triage",
        "investigating",
        "identified",
        "monitoring",
        "resolved",
        "closed",
        "bogus",
    ]);
    let roles = prop::sample::select(vec!["lead", "comms", "scribe", "chef"]);
    let word = "[a-z]{0,8}";
    prop_oneof![
        word.prop_map(|title| Command::SetTitle { title }),
        word.prop_map(|summary| Command::SetSummary { summary }),
        sev.prop_map(|severity| Command::SetSeverity { severity }),
        statuses.prop_map(|s| Command::ChangeStatus { status: s.into() }),
        (roles.clone(), 1i64..4).prop_map(|(r, p)| Command::AssignRole {
            role: r.into(),
            person: PersonId(p)
        }),
        roles.prop_map(|r| Command::ReleaseRole { role: r.into() }),
        word.prop_map(|text| Command::AddNote { text }),
        prop::collection::vec("[a-c]{1,2}", 0..3)
            .prop_map(|services| Command::SetServices { services }),
        ("[a-c]{1,2}", prop::option::of("[x-z]{0,2}"))
            .prop_map(|(key, value)| Command::SetLabel { key, value }),
        any::<bool>().prop_map(|private| Command::SetPrivate { private }),
        word.prop_map(|text| Command::AddFollowUp {
            text,
            owner: None,
            due_at: None
        }),
        (1u32..4).prop_map(|id| Command::CompleteFollowUp { id }),
        prop::option::of(-60i64..60).prop_map(|m| Command::SetImpactStartedAt { at: m.map(t) }),
        prop::option::of(-60i64..60).prop_map(|m| Command::SetImpactEndedAt { at: m.map(t) }),
    ]
}

proptest! {
    #[test]
    fn projection_equals_replay(commands in prop::collection::vec(arb_command(), 0..40)) {
        let mut sim = Sim::declare(Declare { title: "start".into(), ..Default::default() });
        for (i, c) in commands.into_iter().enumerate() {
            let before = sim.incident.clone();
            match sim.run(t(i as i64 + 1), c) {
                Ok(_) => {}
                // A refused command changes nothing.
                Err(_) => prop_assert_eq!(&sim.incident, &before),
            }
            prop_assert_eq!(Incident::replay(&sim.events).unwrap(), sim.incident.clone());
            // The status is always one the catalog allows to be reached.
            prop_assert!(sim.catalog.statuses.get(&sim.incident.status).is_some());
        }
    }
}

#[test]
fn follow_up_conditions_follow_the_follow_ups() {
    use klaxon_core::playbook::Condition;
    let mut sim = Sim::declare(Declare {
        title: "x".into(),
        ..Default::default()
    });
    let c = Catalog::default();
    assert!(!Condition::FollowUpsOpen.holds(&sim.incident, &c));
    sim.run(
        t(1),
        Command::AddFollowUp {
            text: "Add an alert".into(),
            owner: None,
            due_at: None,
        },
    )
    .unwrap();
    assert!(Condition::FollowUpsOpen.holds(&sim.incident, &c));
    assert!(Condition::FollowUpsUnowned.holds(&sim.incident, &c));
    sim.run(
        t(2),
        Command::AddFollowUp {
            text: "Load test".into(),
            owner: Some(PersonId(3)),
            due_at: None,
        },
    )
    .unwrap();
    sim.run(t(3), Command::CompleteFollowUp { id: 1 }).unwrap();
    assert!(
        Condition::FollowUpsOpen.holds(&sim.incident, &c),
        "#2 is still open"
    );
    assert!(
        !Condition::FollowUpsUnowned.holds(&sim.incident, &c),
        "and it has an owner"
    );
    sim.run(t(4), Command::CompleteFollowUp { id: 2 }).unwrap();
    assert!(!Condition::FollowUpsOpen.holds(&sim.incident, &c));
}
