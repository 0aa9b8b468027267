//! One suite, run against every store: SQLite always, PostgreSQL when
//! `KLAXON_TEST_DATABASE_URL` is set (those variants are `#[ignore]`d so that a plain
//! `cargo test` passes without a database server; `.ci/run` runs them with `--ignored`).
//! Each test gets a fresh database: a temporary SQLite file, or a new PostgreSQL schema.

mod support;

use std::sync::Arc;

use chrono::Duration;
use klaxon_core::*;
use klaxon_store::*;
use support::{catalog, declare, req, t, TestDb};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL and run with --ignored"]
                async fn $name() {
                    super::$name(super::support::postgres().await).await
                }
            )*
        }
    };
}

conformance!(
    declares_and_reads_back,
    references_are_unique_under_concurrent_declares,
    refused_commands_write_nothing,
    projection_equals_replay_of_random_commands,
    concurrent_commands_on_one_incident_lose_nothing,
    lists_with_filters_and_pages,
    searches_titles_summaries_and_timeline,
    a_search_pages_through_a_long_history,
    a_search_finds_every_word_a_beginning_begins,
    people_are_one_across_platforms,
    jobs_are_written_with_the_change_that_caused_them,
    enqueue_is_idempotent_and_dependencies_are_checked,
    writes_at_the_same_moment_succeed_or_fail_each_on_its_own,
    outcomes_at_the_same_moment_are_each_recorded_as_told,
    an_outcome_that_cannot_be_written_fails_alone,
    outcomes_on_several_incidents_at_once_are_each_recorded,
    claims_respect_time_dependencies_and_exclusivity,
    a_success_claims_the_jobs_that_waited_for_it,
    a_stale_claim_cannot_finish_a_job,
    expired_leases_are_reclaimed,
    dead_jobs_go_on_the_timeline_and_can_be_retried,
    timers_can_be_cancelled,
    checkpoints_survive_a_reclaim,
    logins_tokens_and_sessions,
    private_incidents_are_listed_for_members_only,
    an_edit_of_several_fields_applies_all_or_nothing,
    open_incidents_are_counted_by_severity,
    chat_channels_map_both_ways,
    a_declaration_with_an_origin_happens_once,
    cursors_are_kept_and_moved,
    a_deferral_is_not_an_attempt,
);

async fn declares_and_reads_back(db: TestDb) {
    let s = &db.store;
    s.ready().await.expect("ready after migrations");
    let d = Declare {
        title: "Checkout is down".into(),
        severity: Some("sev1".into()),
        services: vec!["checkout".into()],
        labels: [("team".to_string(), "payments".to_string())].into(),
        lead: Some(PersonId(5)),
        ..Default::default()
    };
    let applied = s.declare(req(d, t(0))).await.unwrap();
    assert_eq!(applied.incident.reference.to_string(), "INC-1");
    assert_eq!(applied.events.len(), 2, "declared and lead assigned");
    let r = applied.incident.reference;
    let stored = s.incident(r).await.unwrap().expect("stored");
    assert_eq!(stored, applied.incident);
    assert_eq!(stored.severity.as_deref(), Some("SEV1"));
    assert_eq!(stored.lead(), Some(PersonId(5)));
    assert_eq!(stored.declared_at, t(0));

    let events = s.events(r, 0, 100).await.unwrap();
    assert_eq!(events, applied.events);
    assert_eq!(s.events(r, 1, 100).await.unwrap().len(), 1);
    assert!(s
        .incident(IncidentRef::new(99).unwrap())
        .await
        .unwrap()
        .is_none());
    let missing = s
        .execute(
            IncidentRef::new(99).unwrap(),
            req(Command::AddNote { text: "x".into() }, t(1)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound(ref m) if m == "INC-99"),
        "{missing}"
    );
}

async fn references_are_unique_under_concurrent_declares(db: TestDb) {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let d = Declare {
                title: format!("Incident {i}"),
                ..Default::default()
            };
            s.declare(req(d, t(0)))
                .await
                .unwrap()
                .incident
                .reference
                .number()
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap());
    }
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=50).collect::<Vec<u64>>(),
        "unique and without gaps"
    );
}

async fn refused_commands_write_nothing(db: TestDb) {
    let s = &db.store;
    let r = declare(s, "Queue backlog").await;
    let before = s.incident(r).await.unwrap().unwrap();
    let err = s
        .execute(
            r,
            req(
                Command::SetSeverity {
                    severity: Some("SEV7".into()),
                },
                t(1),
            ),
        )
        .await
        .unwrap_err();
    match err {
        StoreError::Command(e) => assert_eq!(e.code(), "unknown_severity"),
        other => panic!("expected a command error, got {other}"),
    }
    let err = s
        .execute(
            r,
            req(
                Command::ChangeStatus {
                    status: "closed".into(),
                },
                t(1),
            ),
        )
        .await;
    assert!(matches!(
        err,
        Err(StoreError::Command(
            CommandError::TransitionNotAllowed { .. }
        ))
    ));
    // A command that changes nothing writes nothing either.
    let same = s
        .execute(
            r,
            req(
                Command::SetTitle {
                    title: "Queue backlog".into(),
                },
                t(2),
            ),
        )
        .await;
    assert!(same.unwrap().events.is_empty());
    assert_eq!(s.incident(r).await.unwrap().unwrap(), before);
    assert_eq!(s.events(r, 0, 100).await.unwrap().len(), 1);
    // A declaration that is refused takes no number.
    assert!(s.declare(req(Declare::default(), t(3))).await.is_err());
    assert_eq!(declare(s, "next").await.number(), 2);
}

fn random_command(rng: &mut fastrand::Rng) -> Command {
    let pick = |rng: &mut fastrand::Rng, xs: &[&str]| xs[rng.usize(..xs.len())].to_string();
    match rng.u8(..10) {
        0 => Command::SetSeverity {
            severity: Some(pick(rng, &["SEV1", "SEV2", "SEV3", "SEV4", "SEV9"])),
        },
        1 => Command::ChangeStatus {
            status: pick(
                rng,
                &[
                    "investigating",
                    "identified",
                    "monitoring",
                    "resolved",
                    "closed",
                    "triage",
                ],
            ),
        },
        2 => Command::AssignRole {
            role: pick(rng, &["lead", "comms", "scribe", "nobody"]),
            person: PersonId(rng.i64(1..4)),
        },
        3 => Command::ReleaseRole {
            role: pick(rng, &["lead", "comms", "scribe"]),
        },
        4 => Command::AddNote {
            text: pick(rng, &["rolled back", "paged db team", ""]),
        },
        5 => Command::SetServices {
            services: vec![pick(rng, &["api", "db", "web"])],
        },
        6 => Command::SetLabel {
            key: pick(rng, &["team", "region"]),
            value: Some(pick(rng, &["a", "b"])),
        },
        7 => Command::AddFollowUp {
            text: "add an alert".into(),
            owner: None,
            due_at: None,
        },
        8 => Command::CompleteFollowUp { id: rng.u32(1..4) },
        _ => Command::SetTitle {
            title: pick(rng, &["Checkout down", "Checkout slow", " "]),
        },
    }
}

async fn projection_equals_replay_of_random_commands(db: TestDb) {
    let s = &db.store;
    for seed in 0..12u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let r = declare(s, "start").await;
        for step in 0..25 {
            let c = random_command(&mut rng);
            let _ = s.execute(r, req(c, t(step))).await;
        }
        let stored = s.incident(r).await.unwrap().unwrap();
        let events = s.events(r, 0, 10_000).await.unwrap();
        assert_eq!(
            Incident::replay(&events).as_ref(),
            Some(&stored),
            "seed {seed}"
        );
        assert_eq!(stored.version, events.len() as u64, "seed {seed}");
    }
}

async fn concurrent_commands_on_one_incident_lose_nothing(db: TestDb) {
    let r = declare(&db.store, "busy").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            s.execute(
                r,
                req(
                    Command::AddNote {
                        text: format!("note {i}"),
                    },
                    t(1),
                ),
            )
            .await
            .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let events = db.store.events(r, 0, 1000).await.unwrap();
    assert_eq!(events.len(), 41);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=41).collect::<Vec<_>>()
    );
    let stored = db.store.incident(r).await.unwrap().unwrap();
    assert_eq!(Incident::replay(&events).unwrap(), stored);
}

async fn lists_with_filters_and_pages(db: TestDb) {
    let s = &db.store;
    let mk = |title: &str, sev: &str, services: &[&str], private: bool, drill: bool| Declare {
        title: title.into(),
        severity: Some(sev.into()),
        services: services.iter().map(|x| x.to_string()).collect(),
        labels: [(
            "team".to_string(),
            if private { "sec" } else { "core" }.to_string(),
        )]
        .into(),
        private,
        drill,
        ..Default::default()
    };
    for d in [
        mk("one", "SEV1", &["api"], false, false),
        mk("two", "SEV2", &["api", "db"], false, false),
        mk("three", "SEV3", &["db"], true, false),
        mk("four", "SEV1", &["web"], false, true),
        mk("five", "SEV4", &[], false, false),
    ] {
        s.declare(req(d, t(0))).await.unwrap();
    }
    s.execute(
        IncidentRef::new(2).unwrap(),
        req(
            Command::ChangeStatus {
                status: "resolved".into(),
            },
            t(5),
        ),
    )
    .await
    .unwrap();
    let titles = |p: IncidentPage| p.incidents.into_iter().map(|i| i.title).collect::<Vec<_>>();
    let all = IncidentQuery {
        include_private: true,
        include_drills: true,
        ..Default::default()
    };
    let list = |q: IncidentQuery| {
        let s = s.clone();
        async move { titles(s.list_incidents(&q).await.unwrap()) }
    };
    assert_eq!(
        list(all.clone()).await,
        vec!["five", "four", "three", "two", "one"]
    );
    assert_eq!(
        list(IncidentQuery::default()).await,
        vec!["five", "two", "one"],
        "no private, no drills"
    );
    assert_eq!(
        list(IncidentQuery {
            severities: catalog().severities.at_least_keys("SEV2"),
            ..all.clone()
        })
        .await,
        vec!["four", "two", "one"]
    );
    assert_eq!(
        list(IncidentQuery {
            service: Some("db".into()),
            ..all.clone()
        })
        .await,
        vec!["three", "two"]
    );
    assert_eq!(
        list(IncidentQuery {
            label: Some(("team".into(), "sec".into())),
            ..all.clone()
        })
        .await,
        vec!["three"]
    );
    assert_eq!(
        list(IncidentQuery {
            open: Some(false),
            ..all.clone()
        })
        .await,
        vec!["two"]
    );
    assert_eq!(
        list(IncidentQuery {
            statuses: vec!["triage".into()],
            open: Some(true),
            ..all.clone()
        })
        .await
        .len(),
        4
    );

    // Pages of two, newest first, until there is no next page.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .list_incidents(&IncidentQuery {
                limit: 2,
                before,
                ..all.clone()
            })
            .await
            .unwrap();
        assert!(page.incidents.len() <= 2);
        seen.extend(page.incidents.iter().map(|i| i.reference.number()));
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, vec![5, 4, 3, 2, 1]);

    // Changing services moves the incident between filters.
    s.execute(
        IncidentRef::new(1).unwrap(),
        req(
            Command::SetServices {
                services: vec!["db".into()],
            },
            t(6),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        list(IncidentQuery {
            service: Some("api".into()),
            ..all.clone()
        })
        .await,
        vec!["two"]
    );
}

async fn searches_titles_summaries_and_timeline(db: TestDb) {
    let s = &db.store;
    let a = declare(s, "Checkout is down").await;
    let b = declare(s, "Database failover").await;
    let c = declare(s, "Slow search").await;
    s.execute(
        b,
        req(
            Command::SetSummary {
                summary: "Primary lost; payments degraded".into(),
            },
            t(1),
        ),
    )
    .await
    .unwrap();
    s.execute(
        c,
        req(
            Command::AddNote {
                text: "Rolled back the Elasticsearch upgrade".into(),
            },
            t(1),
        ),
    )
    .await
    .unwrap();
    let search = |text: &str| {
        let s = s.clone();
        let q = IncidentQuery {
            text: Some(text.into()),
            ..Default::default()
        };
        async move {
            s.list_incidents(&q)
                .await
                .unwrap()
                .incidents
                .iter()
                .map(|i| i.reference)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("checkout").await, vec![a]);
    assert_eq!(search("CHECK").await, vec![a], "prefix, any case");
    assert_eq!(search("payments").await, vec![b], "summary");
    assert_eq!(search("elasticsearch").await, vec![c], "timeline note");
    assert_eq!(
        search("slow elastic").await,
        vec![c],
        "words found in different places"
    );
    assert_eq!(
        search("slow payments").await,
        Vec::<IncidentRef>::new(),
        "every word must match"
    );
    assert_eq!(search("\"; DROP TABLE incidents; --").await.len(), 0);
    s.execute(
        a,
        req(
            Command::SetTitle {
                title: "Cart is down".into(),
            },
            t(2),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        search("checkout").await,
        Vec::<IncidentRef>::new(),
        "old title forgotten"
    );
    assert_eq!(search("cart").await, vec![a]);
    // Several events written at once (one statement for them all): each one's text is found,
    // and the events keep their order.
    let notes = ["Drained the eu-west pool", "Paged the Kafka owners"]
        .map(|text| Command::AddNote { text: text.into() });
    let applied = s.execute_all(b, req(notes.to_vec(), t(3))).await.unwrap();
    assert_eq!(applied.events.len(), 2);
    assert_eq!(search("drained").await, vec![b]);
    assert_eq!(search("kafka").await, vec![b]);
    let events = s.events(b, 0, 100).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let last: Vec<_> = events[events.len() - 2..]
        .iter()
        .map(|e| e.kind.search_text())
        .collect();
    assert_eq!(
        last,
        [
            Some("Drained the eu-west pool"),
            Some("Paged the Kafka owners")
        ]
    );
}

/// A search finds a rare word wherever it is in a long history, newest first and a page at a
/// time, however the store looks for it (SQLite looks a slice of the incidents at a time).
async fn a_search_pages_through_a_long_history(db: TestDb) {
    let s = &db.store;
    let needles = [7u64, 150, 260, 299];
    for n in 1..=300u64 {
        let title = if needles.contains(&n) {
            format!("Haystack {n} needle")
        } else {
            format!("Haystack {n}")
        };
        assert_eq!(declare(s, &title).await.number(), n);
    }
    let search = |text: &str, limit: u32, before: Option<u64>| {
        let s = s.clone();
        let q = IncidentQuery {
            text: Some(text.into()),
            limit,
            before,
            ..Default::default()
        };
        async move {
            let page = s.list_incidents(&q).await.unwrap();
            let found: Vec<u64> = page
                .incidents
                .iter()
                .map(|i| i.reference.number())
                .collect();
            (found, page.next)
        }
    };
    assert_eq!(search("needle", 2, None).await, (vec![299, 260], Some(260)));
    assert_eq!(search("needle", 2, Some(260)).await, (vec![150, 7], None));
    assert_eq!(
        search("needle", 10, None).await,
        (vec![299, 260, 150, 7], None)
    );
    assert_eq!(
        search("need", 3, Some(299)).await,
        (vec![260, 150, 7], None)
    );
    assert_eq!(search("needle", 10, Some(7)).await, (vec![], None));
    assert_eq!(
        search("haystack", 3, None).await,
        (vec![300, 299, 298], Some(298))
    );
    assert_eq!(
        search("haystack needle", 3, Some(290)).await,
        (vec![260, 150, 7], None),
        "every word, in whichever slice"
    );
}

/// A word's beginning finds every word it begins, few or many, in any case and across
/// punctuation, as the text was written or edited later. (SQLite also folds accents, "cafe"
/// finds "Café"; PostgreSQL's 'simple' configuration does not.)
async fn a_search_finds_every_word_a_beginning_begins(db: TestDb) {
    let s = &db.store;
    for n in 1..=70u64 {
        assert_eq!(
            declare(s, &format!("Disk full on host{n}")).await.number(),
            n
        );
    }
    let cafe_ref = declare(s, "Café card terminals offline").await;
    let cafe = cafe_ref.number();
    let deploy = declare(s, "Rollback of deploy_v2 (gateway)").await.number();
    let search = |text: &str| {
        let s = s.clone();
        let q = IncidentQuery {
            text: Some(text.into()),
            limit: 200,
            ..Default::default()
        };
        async move {
            let page = s.list_incidents(&q).await.unwrap();
            let mut found: Vec<u64> = page
                .incidents
                .iter()
                .map(|i| i.reference.number())
                .collect();
            found.sort_unstable();
            found
        }
    };
    assert_eq!(
        search("host").await,
        (1..=70).collect::<Vec<_>>(),
        "70 words"
    );
    assert_eq!(
        search("host1").await,
        [1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
        "a few words"
    );
    assert_eq!(search("host70").await, [70], "one word");
    assert_eq!(search("host71").await, Vec::<u64>::new(), "no word");
    for text in ["caf", "café", "CAFÉ"] {
        assert_eq!(search(text).await, [cafe], "{text}");
    }
    for text in ["v2", "deploy", "gate", "roll dep"] {
        assert_eq!(search(text).await, [deploy], "{text}");
    }
    s.execute(
        cafe_ref,
        req(
            Command::SetTitle {
                title: "Kiosks offline".into(),
            },
            t(2),
        ),
    )
    .await
    .unwrap();
    assert_eq!(search("kios").await, [cafe], "a word of an edited title");
    assert_eq!(
        search("caf").await,
        Vec::<u64>::new(),
        "the old title forgotten"
    );
}

async fn people_are_one_across_platforms(db: TestDb) {
    let s = &db.store;
    let web = s
        .create_person(
            &NewPerson {
                name: "Ada".into(),
                email: Some("ada@example.test".into()),
                ..Default::default()
            },
            t(0),
        )
        .await
        .unwrap();
    let dup = s
        .create_person(
            &NewPerson {
                name: "Other".into(),
                email: Some("ada@example.test".into()),
                ..Default::default()
            },
            t(0),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    // A Slack user with the same email is the same person.
    let details = NewPerson {
        name: "ada".into(),
        email: Some("ada@example.test".into()),
        ..Default::default()
    };
    let slack = s
        .person_for_identity(&ChatIdentity::Slack("U1".into()), &details, t(1))
        .await
        .unwrap();
    assert_eq!(slack.id, web.id);
    assert_eq!(slack.slack_user_id.as_deref(), Some("U1"));

    // Many first sightings at once of a new Matrix user make one person.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s: Arc<dyn Store> = s.clone();
        tasks.push(tokio::spawn(async move {
            let d = NewPerson {
                name: "Bob".into(),
                ..Default::default()
            };
            s.person_for_identity(&ChatIdentity::Matrix("@bob:localhost".into()), &d, t(2))
                .await
                .unwrap()
                .id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let bob = s.person(ids[0]).await.unwrap().unwrap();
    assert_eq!(bob.matrix_id.as_deref(), Some("@bob:localhost"));
    assert_ne!(bob.id, web.id);
}

/// Effects for tests: on declaration, a channel then a post that waits for it.
fn channel_effects(i: &Incident, events: &[Event]) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    for e in events {
        if let EventKind::Declared(_) = e.kind {
            let r = i.reference;
            jobs.push(
                NewJob::new(
                    format!("{r}:channel"),
                    "chat.create_channel",
                    serde_json::json!({"incident": r}),
                )
                .for_incident(r),
            );
            jobs.push(
                NewJob::new(
                    format!("{r}:post"),
                    "chat.post",
                    serde_json::json!({"incident": r}),
                )
                .for_incident(r)
                .after(format!("{r}:channel")),
            );
        }
    }
    jobs
}

async fn jobs_are_written_with_the_change_that_caused_them(db: TestDb) {
    let s = &db.store;
    let cat = catalog();
    let applied = s
        .declare(Request {
            command: Declare {
                title: "With jobs".into(),
                ..Default::default()
            },
            actor: Actor::system("test"),
            at: t(0),
            catalog: cat,
            effects: &channel_effects,
        })
        .await
        .unwrap();
    assert_eq!(applied.jobs.len(), 2);
    let jobs = s.incident_jobs(applied.incident.reference).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>(),
        vec!["chat.create_channel", "chat.post"]
    );
    assert!(jobs
        .iter()
        .all(|j| j.state == JobState::Pending && j.attempts == 0));

    // A refused declaration writes no job.
    let refused = s
        .declare(Request {
            command: Declare::default(),
            actor: Actor::system("test"),
            at: t(0),
            catalog: cat,
            effects: &channel_effects,
        })
        .await;
    assert!(refused.is_err());
    assert!(s.job_by_key("INC-2:channel").await.unwrap().is_none());
}

/// Many job writes at once (SQLite commits them together): one that fails fails alone, and
/// every other caller is told its own outcome, which is what was written.
async fn writes_at_the_same_moment_succeed_or_fail_each_on_its_own(db: TestDb) {
    let s = db.store.clone();
    s.enqueue(
        &[NewJob::new("held", "test", serde_json::json!({})).at(t(5))],
        t(0),
    )
    .await
    .unwrap();
    let held = s.claim_jobs("r0", t(5), t(6), 1).await.unwrap()[0]
        .claim()
        .unwrap();
    let stale = Claim {
        runner: "someone-else".into(),
        ..held.clone()
    };
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..40 {
        let s = s.clone();
        tasks.spawn(async move {
            let mut job = NewJob::new(format!("job-{n}"), "test", serde_json::json!({ "n": n }));
            if n == 17 {
                job = job.after("never-enqueued");
            }
            (n, s.enqueue(&[job], t(0)).await.map(|ids| ids.len()))
        });
    }
    for (n, claim) in [(100, held.clone()), (101, stale)] {
        let s = s.clone();
        tasks.spawn(async move {
            let checkpoint = serde_json::json!({ "step": n });
            let saved = s.save_checkpoint(&claim, &checkpoint, t(5)).await;
            (n, saved.map(usize::from))
        });
    }
    let mut outcomes = std::collections::BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (n, result) = done.unwrap();
        outcomes.insert(n, result);
    }
    for (n, result) in &outcomes {
        match n {
            17 => assert!(
                matches!(result, Err(StoreError::InvalidJob(m)) if m.contains("never-enqueued")),
                "{result:?}"
            ),
            100 => assert_eq!(result.as_ref().unwrap(), &1, "the claim holds"),
            101 => assert_eq!(result.as_ref().unwrap(), &0, "not this runner's claim"),
            _ => assert_eq!(result.as_ref().unwrap(), &1, "job {n}"),
        }
    }
    for n in 0..40 {
        let job = s.job_by_key(&format!("job-{n}")).await.unwrap();
        assert_eq!(job.is_some(), n != 17, "job {n}");
    }
    let checkpoint = s.job_by_key("held").await.unwrap().unwrap().checkpoint;
    assert_eq!(checkpoint, Some(serde_json::json!({ "step": 100 })));
    let claimed = s.claim_jobs("r1", t(0), t(1), 100).await.unwrap();
    assert_eq!(claimed.len(), 39, "every job written, the bad one not");
}

/// Many enqueues at their own times and many outcomes at once (SQLite writes neighbouring ones
/// as one statement): each job is due from its own enqueue's time, each outcome is recorded
/// only where its claim holds, and the ones that go on the timeline are there, once each.
async fn outcomes_at_the_same_moment_are_each_recorded_as_told(db: TestDb) {
    let s = db.store.clone();
    let r = declare(&s, "Many actions").await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..30i64 {
        let s = s.clone();
        tasks.spawn(async move {
            let job = NewJob::new(
                format!("act-{n}"),
                format!("kind-{n}"),
                serde_json::json!({}),
            )
            .for_incident(r);
            s.enqueue(&[job], t(n)).await.map(|ids| (n, ids))
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (n, ids) = done.unwrap().unwrap();
        assert_eq!(ids.len(), 1, "job {n}");
        let job = s.job(ids[0]).await.unwrap().unwrap();
        assert_eq!((job.key, job.run_at), (format!("act-{n}"), t(n)));
    }
    let claimed = s.claim_jobs("r", t(30), t(40), 100).await.unwrap();
    assert_eq!(claimed.len(), 30);
    let mut tasks = tokio::task::JoinSet::new();
    for job in claimed {
        let n: i64 = job.key.trim_start_matches("act-").parse().unwrap();
        let mut claim = job.claim().unwrap();
        if n == 7 {
            claim.runner = "someone-else".into();
        }
        let outcome = match n % 4 {
            0 => JobOutcome::Succeeded {
                result: serde_json::json!({ "n": n }),
                timeline: Some(TimelineEntry {
                    detail: format!("did {n}"),
                    link: None,
                }),
            },
            1 => JobOutcome::Retry {
                error: format!("try {n} again"),
                run_at: t(50),
            },
            2 => JobOutcome::Dead {
                error: format!("{n} gave up"),
            },
            _ => JobOutcome::Deferred {
                reason: format!("{n} waits"),
                run_at: t(60),
            },
        };
        let s = s.clone();
        tasks.spawn(async move {
            let effects = std::sync::Arc::new(klaxon_store::NoEffects);
            (n, s.finish_job(&claim, &outcome, t(31), effects).await)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (n, held) = done.unwrap();
        assert_eq!(held.unwrap(), n != 7, "job {n}");
    }
    for n in 0..30i64 {
        let job = s.job_by_key(&format!("act-{n}")).await.unwrap().unwrap();
        let seen = (
            job.state,
            job.attempts,
            job.run_at,
            job.last_error.as_deref(),
        );
        let error = |e: &str| Some(e.to_string());
        let want = match n % 4 {
            _ if n == 7 => (JobState::Running, 1, t(n), None),
            0 => (JobState::Succeeded, 1, t(n), None),
            1 => (
                JobState::Pending,
                1,
                t(50),
                error(&format!("try {n} again")),
            ),
            2 => (JobState::Dead, 1, t(n), error(&format!("{n} gave up"))),
            _ => (JobState::Pending, 0, t(60), error(&format!("{n} waits"))),
        };
        assert_eq!(
            (seen.0, seen.1, seen.2, seen.3.map(str::to_string)),
            want,
            "job {n}"
        );
        if n % 4 == 0 {
            assert_eq!(job.result, Some(serde_json::json!({ "n": n })), "job {n}");
            assert_eq!(job.finished_at, Some(t(31)), "job {n}");
        }
    }
    let events = s.events(r, 0, 1000).await.unwrap();
    let mut recorded: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActionSucceeded { action, detail, .. } => {
                Some(format!("{action}: {detail}"))
            }
            EventKind::ActionFailed { action, error, .. } => Some(format!("{action}: {error}")),
            _ => None,
        })
        .collect();
    recorded.sort();
    let mut want: Vec<String> = (0..30i64)
        .filter_map(|n| match n % 4 {
            0 => Some(format!("kind-{n}: did {n}")),
            2 => Some(format!("kind-{n}: {n} gave up")),
            _ => None,
        })
        .collect();
    want.sort();
    assert_eq!(recorded, want);
    let incident = s.incident(r).await.unwrap().unwrap();
    assert_eq!(Incident::replay(&events).unwrap(), incident);
}

/// Outcomes recorded at once are written together (both stores group them), yet one that
/// cannot be written (its timeline entry causes a job that waits for a job nobody enqueued)
/// fails on its own: its job stays claimed, to be run again, and every other outcome, with its
/// timeline entry, is recorded.
async fn an_outcome_that_cannot_be_written_fails_alone(db: TestDb) {
    let s = db.store.clone();
    let r = declare(&s, "One bad outcome").await;
    let jobs: Vec<NewJob> = (0..20)
        .map(|n| {
            NewJob::new(
                format!("act-{n}"),
                format!("kind-{n}"),
                serde_json::json!({}),
            )
            .for_incident(r)
        })
        .collect();
    s.enqueue(&jobs, t(0)).await.unwrap();
    let claimed = s.claim_jobs("r", t(1), t(60), 100).await.unwrap();
    assert_eq!(claimed.len(), 20);
    let effects = |_: &Incident, events: &[Event]| -> Vec<NewJob> {
        let bad = events.iter().any(
            |e| matches!(&e.kind, EventKind::ActionSucceeded { action, .. } if action == "kind-13"),
        );
        if bad {
            vec![NewJob::new("follow-up", "test", serde_json::json!({})).after("never-enqueued")]
        } else {
            Vec::new()
        }
    };
    let effects: Arc<dyn Effects> = Arc::new(effects);
    let mut tasks = tokio::task::JoinSet::new();
    for job in claimed {
        let (s, effects) = (s.clone(), effects.clone());
        tasks.spawn(async move {
            let outcome = did(&job.key);
            let claim = job.claim().unwrap();
            // Each outcome's own time, which its timeline entry carries.
            let now = t(2 + job.id.0 % 3);
            (job.key, s.finish_job(&claim, &outcome, now, effects).await)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (key, result) = done.unwrap();
        match key.as_str() {
            "act-13" => assert!(
                matches!(&result, Err(StoreError::InvalidJob(m)) if m.contains("never-enqueued")),
                "{result:?}"
            ),
            _ => assert!(result.unwrap(), "{key}"),
        }
    }
    for n in 0..20 {
        let job = s.job_by_key(&format!("act-{n}")).await.unwrap().unwrap();
        let want = match n {
            13 => JobState::Running,
            _ => JobState::Succeeded,
        };
        assert_eq!(job.state, want, "act-{n}");
    }
    assert!(s.job_by_key("follow-up").await.unwrap().is_none());
    let events = s.events(r, 0, 1000).await.unwrap();
    let mut recorded = Vec::new();
    for e in &events {
        if let EventKind::ActionSucceeded { job_id, detail, .. } = &e.kind {
            assert_eq!(e.at, t(2 + job_id % 3), "{detail}");
            recorded.push(detail.clone());
        }
    }
    recorded.sort();
    let mut want: Vec<String> = (0..20)
        .filter(|n| *n != 13)
        .map(|n| format!("did act-{n}"))
        .collect();
    want.sort();
    assert_eq!(recorded, want);
    let incident = s.incident(r).await.unwrap().unwrap();
    assert_eq!(Incident::replay(&events).unwrap(), incident);
}

/// Outcomes on several incidents at once, each with a timeline entry whose effect enqueues
/// one follow-up per incident under one key (both stores write them in batches, an incident at a
/// time in the order of their numbers): every outcome and entry is recorded once, and
/// each incident gets its follow-up once, waiting for the job named in it.
async fn outcomes_on_several_incidents_at_once_are_each_recorded(db: TestDb) {
    let s = db.store.clone();
    let mut incidents = Vec::new();
    for n in 0..4 {
        incidents.push(declare(&s, &format!("Incident {n}")).await);
    }
    let mut jobs = Vec::new();
    for (i, r) in incidents.iter().enumerate() {
        jobs.push(
            NewJob::new(format!("{r}-first"), "first", serde_json::json!({})).for_incident(*r),
        );
        for n in 0..10 {
            jobs.push(
                NewJob::new(
                    format!("{r}-act-{n}"),
                    format!("kind-{i}"),
                    serde_json::json!({}),
                )
                .for_incident(*r),
            );
        }
    }
    s.enqueue(&jobs, t(0)).await.unwrap();
    let claimed = s.claim_jobs("r", t(1), t(60), 100).await.unwrap();
    assert_eq!(claimed.len(), 44);
    let effects = |i: &Incident, _: &[Event]| -> Vec<NewJob> {
        let r = i.reference;
        vec![
            NewJob::new(format!("{r}-follow-up"), "follow", serde_json::json!({}))
                .for_incident(r)
                .after(format!("{r}-first")),
        ]
    };
    let effects: Arc<dyn Effects> = Arc::new(effects);
    let mut tasks = tokio::task::JoinSet::new();
    // The last incident's first, so that outcomes come in no order of incidents.
    for job in claimed.into_iter().rev().filter(|j| j.kind != "first") {
        let (s, effects) = (s.clone(), effects.clone());
        tasks.spawn(async move {
            let outcome = did(&job.key);
            let claim = job.claim().unwrap();
            (job.key, s.finish_job(&claim, &outcome, t(2), effects).await)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (key, result) = done.unwrap();
        assert!(result.unwrap(), "{key}");
    }
    for r in &incidents {
        let events = s.events(*r, 0, 1000).await.unwrap();
        let mut recorded: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ActionSucceeded { detail, .. } => Some(detail.clone()),
                _ => None,
            })
            .collect();
        recorded.sort();
        let mut want: Vec<String> = (0..10).map(|n| format!("did {r}-act-{n}")).collect();
        want.sort();
        assert_eq!(recorded, want, "{r}");
        assert_eq!(
            Incident::replay(&events).unwrap(),
            s.incident(*r).await.unwrap().unwrap()
        );
        let follow = s.job_by_key(&format!("{r}-follow-up")).await.unwrap();
        assert_eq!(follow.map(|j| j.state), Some(JobState::Pending), "{r}");
        let mine = s.incident_jobs(*r).await.unwrap();
        assert_eq!(mine.iter().filter(|j| j.kind == "follow").count(), 1, "{r}");
    }
    // The follow-ups wait for their incident's first job, which has not finished.
    let next = s.claim_jobs("r", t(3), t(60), 100).await.unwrap();
    assert!(next.iter().all(|j| j.kind != "follow"), "{next:?}");
}

/// A success that goes on the timeline as "did KEY".
fn did(key: &str) -> JobOutcome {
    JobOutcome::Succeeded {
        result: serde_json::json!({}),
        timeline: Some(TimelineEntry {
            detail: format!("did {key}"),
            link: None,
        }),
    }
}

async fn enqueue_is_idempotent_and_dependencies_are_checked(db: TestDb) {
    let s = &db.store;
    let a = NewJob::new("k1", "test", serde_json::json!({"n": 1}));
    let first = s.enqueue(std::slice::from_ref(&a), t(0)).await.unwrap();
    let again = s
        .enqueue(
            &[NewJob {
                payload: serde_json::json!({"n": 2}),
                ..a
            }],
            t(1),
        )
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(
        s.job(first[0]).await.unwrap().unwrap().payload,
        serde_json::json!({"n": 1})
    );

    let orphan = s
        .enqueue(
            &[NewJob::new("k2", "test", serde_json::json!({})).after("never")],
            t(0),
        )
        .await;
    assert!(
        matches!(orphan, Err(StoreError::InvalidJob(ref m)) if m.contains("never")),
        "{orphan:?}"
    );
    assert!(
        s.job_by_key("k2").await.unwrap().is_none(),
        "nothing written"
    );
    let bad = s
        .enqueue(&[NewJob::new("", "test", serde_json::json!({}))], t(0))
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidJob(_))));

    // An optional dependency binds only when its job exists.
    s.enqueue(
        &[
            NewJob::new("alone", "test", serde_json::json!({})).after_if_enqueued("never"),
            NewJob::new("waits", "test", serde_json::json!({})).after_if_enqueued("k1"),
        ],
        t(0),
    )
    .await
    .unwrap();
    let claimed = s.claim_jobs("r", t(5), t(6), 10).await.unwrap();
    let keys: Vec<&str> = claimed.iter().map(|j| j.key.as_str()).collect();
    assert!(keys.contains(&"alone") && keys.contains(&"k1"), "{keys:?}");
    assert!(!keys.contains(&"waits"), "k1 has not succeeded yet");
}

async fn claims_respect_time_dependencies_and_exclusivity(db: TestDb) {
    let s = &db.store;
    s.enqueue(
        &[
            NewJob::new("first", "test", serde_json::json!({})),
            NewJob::new("second", "test", serde_json::json!({})).after("first"),
            NewJob::new("later", "test", serde_json::json!({})).at(t(10)),
        ],
        t(0),
    )
    .await
    .unwrap();
    let lease = t(1);
    let claimed = s.claim_jobs("r1", t(0), lease, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        vec!["first"]
    );
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(claimed[0].state, JobState::Running);
    assert!(
        s.claim_jobs("r2", t(0), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "held by r1"
    );

    let claim = claimed[0].claim().unwrap();
    let ok = JobOutcome::Succeeded {
        result: serde_json::json!({"channel": "C1"}),
        timeline: None,
    };
    assert!(s
        .finish_job(
            &claim,
            &ok,
            t(0),
            std::sync::Arc::new(klaxon_store::NoEffects)
        )
        .await
        .unwrap());
    let done = s.job(claim.job).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(serde_json::json!({"channel": "C1"})));
    assert_eq!(done.finished_at, Some(t(0)));

    let next = s.claim_jobs("r2", t(0), lease, 10).await.unwrap();
    assert_eq!(
        next.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        vec!["second"],
        "dependency met"
    );
    assert_eq!(
        s.next_due().await.unwrap(),
        Some(t(1)),
        "r2's lease ends before `later` is due"
    );
    let later = s.claim_jobs("r3", t(10), t(11), 10).await.unwrap();
    assert_eq!(
        later.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        vec!["second", "later"],
        "due, and r2's lease ran out"
    );
}

async fn a_success_claims_the_jobs_that_waited_for_it(db: TestDb) {
    let s = &db.store;
    let job = |key: &str| NewJob::new(key, "test", serde_json::json!({}));
    s.enqueue(
        &[
            job("a"),
            job("x"),
            job("other"),
            job("b").after("a"),
            job("c").after("a"),
            job("d").after("a").after("x"),
            job("e").after("a").at(t(10)),
        ],
        t(0),
    )
    .await
    .unwrap();
    let first = s.claim_jobs("r1", t(0), t(60), 10).await.unwrap();
    let keys = |jobs: &[Job]| jobs.iter().map(|j| j.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&first), ["a", "x", "other"]);
    let claim_of = |key: &str, jobs: &[Job]| {
        jobs.iter()
            .find(|j| j.key == key)
            .and_then(Job::claim)
            .unwrap()
    };
    let ok = JobOutcome::Succeeded {
        result: serde_json::json!({}),
        timeline: None,
    };
    let next = |limit| ClaimNext {
        runner: "r1".into(),
        lease_until: t(60),
        limit,
    };
    let fx = || Arc::new(NoEffects) as Arc<dyn Effects>;

    // `a` releases b and c (d still waits for x, e is not due): one taken, as asked.
    let a = s
        .finish_job_claiming(&claim_of("a", &first), &ok, t(0), fx(), Some(&next(1)))
        .await
        .unwrap();
    assert!(a.held);
    assert_eq!(keys(&a.claimed), ["b"]);
    assert!(a.released_more, "c was released too");
    let b = &a.claimed[0];
    assert_eq!(b.state, JobState::Running);
    assert_eq!(b.lease_owner.as_deref(), Some("r1"));
    assert_eq!((b.attempts, b.lease_until), (1, Some(t(60))));
    assert_eq!(
        keys(&s.claim_jobs("r2", t(0), t(60), 10).await.unwrap()),
        ["c"],
        "b is held; c is left for any runner"
    );

    // A job nothing waits for releases nothing.
    let b = s
        .finish_job_claiming(&b.claim().unwrap(), &ok, t(0), fx(), Some(&next(1)))
        .await
        .unwrap();
    assert_eq!((b.held, b.claimed.len(), b.released_more), (true, 0, false));

    // A failure releases nothing, though d waits for x.
    let retry = JobOutcome::Retry {
        error: "try later".into(),
        run_at: t(5),
    };
    let x = s
        .finish_job_claiming(&claim_of("x", &first), &retry, t(0), fx(), Some(&next(5)))
        .await
        .unwrap();
    assert_eq!((x.held, x.claimed.len(), x.released_more), (true, 0, false));
    let again = s.claim_jobs("r1", t(5), t(60), 10).await.unwrap();
    assert_eq!(keys(&again), ["x"]);

    // A stale claim is refused and claims nothing.
    let stale = s
        .finish_job_claiming(&claim_of("x", &first), &ok, t(5), fx(), Some(&next(5)))
        .await
        .unwrap();
    assert_eq!(stale, Finished::default());

    // Its success now releases d (both it waits for have succeeded), not e (due at t(10)),
    // and all that was released fits the limit.
    let x = s
        .finish_job_claiming(&claim_of("x", &again), &ok, t(5), fx(), Some(&next(5)))
        .await
        .unwrap();
    assert_eq!(keys(&x.claimed), ["d"]);
    assert!(!x.released_more);
    assert_eq!(
        s.job_by_key("e").await.unwrap().unwrap().state,
        JobState::Pending
    );
    // Without `next`, nothing is claimed.
    let other = s
        .finish_job_claiming(&claim_of("other", &first), &ok, t(5), fx(), None)
        .await
        .unwrap();
    assert_eq!((other.held, other.claimed.len()), (true, 0));
}

async fn a_stale_claim_cannot_finish_a_job(db: TestDb) {
    let s = &db.store;
    s.enqueue(&[NewJob::new("j", "test", serde_json::json!({}))], t(0))
        .await
        .unwrap();
    let first = s
        .claim_jobs("slow", t(0), t(1), 1)
        .await
        .unwrap()
        .remove(0)
        .claim()
        .unwrap();
    // The lease runs out; another runner takes over.
    let second = s
        .claim_jobs("fast", t(2), t(3), 1)
        .await
        .unwrap()
        .remove(0)
        .claim()
        .unwrap();
    assert_eq!(second.attempt, 2);
    let ok = JobOutcome::Succeeded {
        result: serde_json::json!("late"),
        timeline: None,
    };
    assert!(
        !s.finish_job(
            &first,
            &ok,
            t(2),
            std::sync::Arc::new(klaxon_store::NoEffects)
        )
        .await
        .unwrap(),
        "fenced out"
    );
    assert!(!s
        .save_checkpoint(&first, &serde_json::json!(1), t(2))
        .await
        .unwrap());
    assert_eq!(s.extend_leases("slow", t(2), t(9)).await.unwrap(), 0);
    assert_eq!(
        s.job(second.job).await.unwrap().unwrap().state,
        JobState::Running
    );
    let ok = JobOutcome::Succeeded {
        result: serde_json::json!("on time"),
        timeline: None,
    };
    assert!(s
        .finish_job(
            &second,
            &ok,
            t(2),
            std::sync::Arc::new(klaxon_store::NoEffects)
        )
        .await
        .unwrap());
    assert_eq!(
        s.job(second.job).await.unwrap().unwrap().result,
        Some(serde_json::json!("on time"))
    );
}

async fn expired_leases_are_reclaimed(db: TestDb) {
    let s = &db.store;
    s.enqueue(&[NewJob::new("j", "test", serde_json::json!({}))], t(0))
        .await
        .unwrap();
    s.claim_jobs("a", t(0), t(1), 1).await.unwrap();
    assert_eq!(s.extend_leases("a", t(0), t(5)).await.unwrap(), 1);
    assert!(
        s.claim_jobs("b", t(3), t(4), 1).await.unwrap().is_empty(),
        "lease extended"
    );
    let taken = s.claim_jobs("b", t(6), t(7), 1).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].lease_owner.as_deref(), Some("b"));
}

async fn dead_jobs_go_on_the_timeline_and_can_be_retried(db: TestDb) {
    let s = &db.store;
    let r = declare(s, "Pager broken").await;
    let job = NewJob::new("page", "pagerduty.trigger", serde_json::json!({}))
        .for_incident(r)
        .max_attempts(2);
    s.enqueue(&[job], t(0)).await.unwrap();
    let c = s
        .claim_jobs("r", t(0), t(1), 1)
        .await
        .unwrap()
        .remove(0)
        .claim()
        .unwrap();
    let retry = JobOutcome::Retry {
        error: "503 from PagerDuty".into(),
        run_at: t(2),
    };
    assert!(s
        .finish_job(
            &c,
            &retry,
            t(0),
            std::sync::Arc::new(klaxon_store::NoEffects)
        )
        .await
        .unwrap());
    let j = s.job(c.job).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.run_at, j.last_error.as_deref()),
        (JobState::Pending, t(2), Some("503 from PagerDuty"))
    );
    assert!(
        s.claim_jobs("r", t(1), t(2), 1).await.unwrap().is_empty(),
        "backing off"
    );

    let c = s
        .claim_jobs("r", t(2), t(3), 1)
        .await
        .unwrap()
        .remove(0)
        .claim()
        .unwrap();
    assert!(s
        .finish_job(
            &c,
            &JobOutcome::Dead {
                error: "gave up after 2 attempts".into()
            },
            t(2),
            std::sync::Arc::new(klaxon_store::NoEffects),
        )
        .await
        .unwrap());
    let events = s.events(r, 0, 100).await.unwrap();
    assert!(matches!(
        &events.last().unwrap().kind,
        EventKind::ActionFailed { action, error, .. } if action == "pagerduty.trigger" && error.contains("gave up")
    ));
    assert!(
        s.claim_jobs("r", t(9), t(10), 1).await.unwrap().is_empty(),
        "dead letters stay put"
    );
    let err = s.retry_job(JobId(c.job.0 + 100), t(3)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));

    let j = s.retry_job(c.job, t(3)).await.unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Pending, 0));
    let c = s
        .claim_jobs("r", t(3), t(4), 1)
        .await
        .unwrap()
        .remove(0)
        .claim()
        .unwrap();
    let link = Link {
        label: "PD-1".into(),
        url: "https://pd.example/incidents/1".into(),
    };
    let ok = JobOutcome::Succeeded {
        result: serde_json::json!({}),
        timeline: Some(TimelineEntry {
            detail: "paged on-call".into(),
            link: Some(link.clone()),
        }),
    };
    assert!(s
        .finish_job(&c, &ok, t(3), std::sync::Arc::new(klaxon_store::NoEffects))
        .await
        .unwrap());
    let incident = s.incident(r).await.unwrap().unwrap();
    assert_eq!(incident.links.get("pagerduty.trigger"), Some(&link));
    let conflict = s.retry_job(c.job, t(4)).await.unwrap_err();
    assert!(conflict.to_string().contains("succeeded"), "{conflict}");
    let events = s.events(r, 0, 100).await.unwrap();
    assert_eq!(Incident::replay(&events).unwrap(), incident);
}

async fn timers_can_be_cancelled(db: TestDb) {
    let s = &db.store;
    let at = t(0) + Duration::minutes(5);
    s.enqueue(
        &[NewJob::new("remind:sev", "reminder", serde_json::json!({})).at(at)],
        t(0),
    )
    .await
    .unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(at));
    assert!(s.cancel_job("remind:sev", t(1)).await.unwrap());
    assert!(
        !s.cancel_job("remind:sev", t(1)).await.unwrap(),
        "already cancelled"
    );
    assert!(s.claim_jobs("r", at, at, 5).await.unwrap().is_empty());
    assert_eq!(s.next_due().await.unwrap(), None);
    let counts = s.job_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![JobCount {
            kind: "reminder".into(),
            state: JobState::Cancelled,
            count: 1
        }]
    );
}

async fn checkpoints_survive_a_reclaim(db: TestDb) {
    let s = &db.store;
    s.enqueue(&[NewJob::new("multi", "test", serde_json::json!({}))], t(0))
        .await
        .unwrap();
    let c = s
        .claim_jobs("a", t(0), t(1), 1)
        .await
        .unwrap()
        .remove(0)
        .claim()
        .unwrap();
    assert!(s
        .save_checkpoint(&c, &serde_json::json!({"channel": "C9"}), t(0))
        .await
        .unwrap());
    let again = s.claim_jobs("b", t(2), t(3), 1).await.unwrap().remove(0);
    assert_eq!(again.checkpoint, Some(serde_json::json!({"channel": "C9"})));
}

#[tokio::test]
async fn sqlite_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/klaxon.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let cat = catalog();
    let r = store
        .declare(Request {
            command: Declare {
                title: "Survives".into(),
                ..Default::default()
            },
            actor: Actor::system("test"),
            at: t(0),
            catalog: cat,
            effects: &NoEffects,
        })
        .await
        .unwrap()
        .incident;
    store.close().await;
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(reopened.incident(r.reference).await.unwrap(), Some(r));
    reopened.ready().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(
            &sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn unknown_database_urls_are_explained() {
    let err = klaxon_store::connect("mysql://root:pw@localhost/x")
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "the database is not usable: `mysql://root:***@localhost/x` is not a database URL Klaxon \
         knows: use sqlite://PATH or postgres://USER@HOST/DB"
    );
}

async fn logins_tokens_and_sessions(db: TestDb) {
    let s = &db.store;
    let ada = s
        .create_person(
            &NewPerson {
                name: "Ada".into(),
                access: Access::Admin,
                ..Default::default()
            },
            t(0),
        )
        .await
        .unwrap();
    let bob = s
        .create_person(
            &NewPerson {
                name: "Bob".into(),
                ..Default::default()
            },
            t(0),
        )
        .await
        .unwrap();
    assert_eq!((ada.access, bob.access), (Access::Admin, Access::Responder));
    s.set_login(ada.id, "ada", "hash-a").await.unwrap();
    let taken = s.set_login(bob.id, "ada", "hash-b").await.unwrap_err();
    assert!(
        taken.to_string().contains("`ada` belongs to someone else"),
        "{taken}"
    );
    let (who, hash) = s.credentials("ada").await.unwrap().unwrap();
    assert_eq!(
        (who.id, who.login.as_deref(), hash.as_str()),
        (ada.id, Some("ada"), "hash-a")
    );
    assert!(
        s.credentials("bob").await.unwrap().is_none(),
        "no password, no login"
    );
    s.set_access(bob.id, Access::Viewer).await.unwrap();
    assert_eq!(
        s.person(bob.id).await.unwrap().unwrap().access,
        Access::Viewer
    );
    assert_eq!(
        s.people(10)
            .await
            .unwrap()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        vec!["Ada", "Bob"]
    );

    let token = s
        .create_api_token("ci", "h1", Access::Responder, None, t(0))
        .await
        .unwrap();
    let found = s.api_token("h1", t(1)).await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.name.as_str(), found.access),
        (token.id, "ci", Access::Responder)
    );
    assert_eq!(
        s.api_tokens().await.unwrap()[0].last_used_at,
        Some(t(1)),
        "use is noted"
    );
    assert!(s.api_token("h2", t(1)).await.unwrap().is_none());
    assert!(s.revoke_api_token(token.id, t(2)).await.unwrap());
    assert!(!s.revoke_api_token(token.id, t(2)).await.unwrap());
    assert!(s.api_token("h1", t(3)).await.unwrap().is_none(), "revoked");

    s.create_session("sess", ada.id, "csrf-1", t(0), t(60))
        .await
        .unwrap();
    let session = s.session("sess", t(59)).await.unwrap().unwrap();
    assert_eq!(
        (session.person.id, session.csrf.as_str(), session.expires_at),
        (ada.id, "csrf-1", t(60))
    );
    assert!(s.session("sess", t(60)).await.unwrap().is_none(), "expired");
    s.create_session("other", bob.id, "csrf-2", t(0), t(600))
        .await
        .unwrap();
    s.delete_session("other", t(0)).await.unwrap();
    assert!(
        s.session("other", t(1)).await.unwrap().is_none(),
        "signed out"
    );
}

async fn private_incidents_are_listed_for_members_only(db: TestDb) {
    let s = &db.store;
    let declarer = PersonId(1);
    let secret = Declare {
        title: "Credential leak".into(),
        private: true,
        ..Default::default()
    };
    let r = s
        .declare(req(secret, t(0)))
        .await
        .unwrap()
        .incident
        .reference;
    declare(s, "Public one").await;
    let visible = |member: Option<PersonId>, all: bool| {
        let s = s.clone();
        async move {
            let q = IncidentQuery {
                member,
                include_private: all,
                ..Default::default()
            };
            s.list_incidents(&q)
                .await
                .unwrap()
                .incidents
                .iter()
                .map(|i| i.title.clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(visible(None, false).await, vec!["Public one"]);
    assert_eq!(
        visible(Some(declarer), false).await,
        vec!["Public one", "Credential leak"]
    );
    assert_eq!(visible(Some(PersonId(9)), false).await, vec!["Public one"]);
    assert_eq!(visible(None, true).await.len(), 2);
    s.execute(
        r,
        req(
            Command::AssignRole {
                role: "comms".into(),
                person: PersonId(9),
            },
            t(1),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        visible(Some(PersonId(9)), false).await,
        vec!["Public one", "Credential leak"]
    );
    let incident = s.incident(r).await.unwrap().unwrap();
    assert!(incident.visible_to(Some(PersonId(9)), Access::Viewer));
    assert!(!incident.visible_to(Some(PersonId(8)), Access::Responder));
    assert!(incident.visible_to(None, Access::Admin));
}

async fn an_edit_of_several_fields_applies_all_or_nothing(db: TestDb) {
    let s = &db.store;
    let r = declare(s, "Edit me").await;
    let bad = vec![
        Command::SetTitle {
            title: "Edited".into(),
        },
        Command::SetSeverity {
            severity: Some("SEV0".into()),
        },
    ];
    assert!(s.execute_all(r, req(bad, t(1))).await.is_err());
    assert_eq!(
        s.incident(r).await.unwrap().unwrap().title,
        "Edit me",
        "nothing applied"
    );
    let good = vec![
        Command::SetTitle {
            title: "Edited".into(),
        },
        Command::SetSeverity {
            severity: Some("SEV2".into()),
        },
        Command::SetSummary {
            summary: "Both at once".into(),
        },
    ];
    let applied = s.execute_all(r, req(good, t(1))).await.unwrap();
    assert_eq!(applied.events.len(), 3);
    let i = s.incident(r).await.unwrap().unwrap();
    assert_eq!(
        (i.title.as_str(), i.severity.as_deref(), i.version),
        ("Edited", Some("SEV2"), 4)
    );
}

async fn open_incidents_are_counted_by_severity(db: TestDb) {
    let s = &db.store;
    for (sev, drill) in [
        (Some("SEV1"), false),
        (Some("SEV1"), false),
        (Some("SEV2"), true),
        (None, false),
    ] {
        let d = Declare {
            title: "x".into(),
            severity: sev.map(String::from),
            drill,
            ..Default::default()
        };
        s.declare(req(d, t(0))).await.unwrap();
    }
    s.execute(
        IncidentRef::new(1).unwrap(),
        req(
            Command::ChangeStatus {
                status: "resolved".into(),
            },
            t(1),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        s.open_by_severity().await.unwrap(),
        vec![(None, 1), (Some("SEV1".to_string()), 1)]
    );
}

async fn chat_channels_map_both_ways(db: TestDb) {
    let s = &db.store;
    let a = declare(s, "one").await;
    let b = declare(s, "two").await;
    let channel = ChatChannel {
        platform: "slack".into(),
        channel_id: "C1".into(),
        incident: a,
        name: "inc-1-one".into(),
        url: Some("https://slack.example/archives/C1".into()),
        headline_id: None,
        headline_digest: None,
        topic: None,
    };
    s.link_chat_channel(&channel).await.unwrap();
    s.link_chat_channel(&channel).await.unwrap(); // a rerun of the job that made it
    assert_eq!(
        s.chat_channel(a, "slack").await.unwrap(),
        Some(channel.clone())
    );
    assert_eq!(
        s.chat_channel_by_id("slack", "C1")
            .await
            .unwrap()
            .unwrap()
            .incident,
        a
    );
    assert!(s.chat_channel(a, "matrix").await.unwrap().is_none());
    let stolen = s
        .link_chat_channel(&ChatChannel {
            incident: b,
            ..channel.clone()
        })
        .await;
    assert!(matches!(stolen, Err(StoreError::Conflict(_))), "{stolen:?}");
    let second = s
        .link_chat_channel(&ChatChannel {
            channel_id: "C2".into(),
            ..channel.clone()
        })
        .await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    let shown = |s: &Arc<dyn Store>| {
        let s = s.clone();
        async move {
            let c = s.chat_channel(a, "slack").await.unwrap().unwrap();
            (c.headline_digest, c.topic)
        }
    };
    assert_eq!(shown(s).await, (None, None));
    // The posted headline, with what the room shows once it is.
    s.set_headline(a, "slack", "C1/1700000000.000100", "d0", "INC-1 one | SEV3")
        .await
        .unwrap();
    assert_eq!(
        shown(s).await,
        (Some("d0".into()), Some("INC-1 one | SEV3".into()))
    );
    assert_eq!(
        s.chat_channel(a, "slack")
            .await
            .unwrap()
            .unwrap()
            .headline_id
            .as_deref(),
        Some("C1/1700000000.000100")
    );

    // What the room shows after: the headline's digest and the topic, each left as it is when
    // not given.
    s.set_shown(a, "slack", Some("d1"), Some("INC-1 one | SEV2"))
        .await
        .unwrap();
    assert_eq!(
        shown(s).await,
        (Some("d1".into()), Some("INC-1 one | SEV2".into()))
    );
    s.set_shown(a, "slack", Some("d2"), None).await.unwrap();
    s.set_shown(a, "slack", None, Some("INC-1 one | SEV1"))
        .await
        .unwrap();
    assert_eq!(
        shown(s).await,
        (Some("d2".into()), Some("INC-1 one | SEV1".into()))
    );
    assert_eq!(
        s.chat_channel(b, "slack").await.unwrap(),
        None,
        "another incident's room is untouched"
    );
}

async fn a_declaration_with_an_origin_happens_once(db: TestDb) {
    let s = &db.store;
    let d = || Declare {
        title: "From Slack".into(),
        ..Default::default()
    };
    let first = s
        .declare_once("slack.command:111.222", req(d(), t(0)))
        .await
        .unwrap();
    assert_eq!(first.events.len(), 1);
    let again = s
        .declare_once("slack.command:111.222", req(d(), t(1)))
        .await
        .unwrap();
    assert_eq!(again.incident.reference, first.incident.reference);
    assert!(
        again.events.is_empty() && again.jobs.is_empty(),
        "nothing written the second time"
    );
    let other = s
        .declare_once("slack.command:333.444", req(d(), t(1)))
        .await
        .unwrap();
    assert_eq!(other.incident.reference.number(), 2);
    assert_eq!(
        s.list_incidents(&IncidentQuery::default())
            .await
            .unwrap()
            .incidents
            .len(),
        2
    );
}

async fn cursors_are_kept_and_moved(db: TestDb) {
    let s = &db.store;
    assert_eq!(s.cursor("matrix.sync").await.unwrap(), None);
    s.set_cursor("matrix.sync", "s1_2").await.unwrap();
    s.set_cursor("other", "x").await.unwrap();
    s.set_cursor("matrix.sync", "s9_9").await.unwrap();
    assert_eq!(
        s.cursor("matrix.sync").await.unwrap().as_deref(),
        Some("s9_9")
    );
    assert_eq!(s.cursor("other").await.unwrap().as_deref(), Some("x"));
}

async fn a_deferral_is_not_an_attempt(db: TestDb) {
    let s = &db.store;
    s.enqueue(
        &[NewJob::new("paced", "test", serde_json::json!({})).max_attempts(1)],
        t(0),
    )
    .await
    .unwrap();
    for round in 0..3 {
        let claimed = s
            .claim_jobs("r", t(round * 10), t(round * 10 + 5), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "round {round}");
        assert_eq!(claimed[0].attempts, 1, "never more than the one attempt");
        let outcome = JobOutcome::Deferred {
            reason: "waiting for Slack's rate limit".into(),
            run_at: t(round * 10 + 10),
        };
        assert!(s
            .finish_job(
                &claimed[0].claim().unwrap(),
                &outcome,
                t(round * 10),
                std::sync::Arc::new(klaxon_store::NoEffects)
            )
            .await
            .unwrap());
        let j = s.job_by_key("paced").await.unwrap().unwrap();
        assert_eq!(
            (j.state, j.attempts, j.run_at),
            (JobState::Pending, 0, t(round * 10 + 10))
        );
    }
}

/// PostgreSQL keeps statistics of up to 10,000 words of the searchable text (migration 7),
/// so that a search for a rare word reads the GIN index.
#[tokio::test]
#[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL and run with --ignored"]
async fn postgres_knows_how_rare_a_searched_word_is() {
    let db = support::postgres().await;
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    let target: i64 = sqlx::query_scalar(
        "SELECT a.attstattarget::bigint FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'incident_text' AND a.attname = 'tsv'",
    )
    .bind(db.schema.clone().unwrap())
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(target, 1000);
}

/// A table that changed much since it was last analysed is analysed when a replica starts, so
/// the planner has statistics even where autovacuum is off.
#[tokio::test]
#[ignore = "needs PostgreSQL: set KLAXON_TEST_DATABASE_URL and run with --ignored"]
async fn postgres_tables_that_changed_much_are_analysed_at_the_start() {
    let db = support::postgres().await;
    for n in 0..80 {
        declare(&db.store, &format!("incident {n}")).await;
    }
    let schema = db.schema.clone().unwrap();
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    let stat = |column: &'static str| {
        let admin = admin.clone();
        let schema = schema.clone();
        async move {
            sqlx::query_scalar::<_, bool>(&format!(
                "SELECT {column} FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'incidents'"
            ))
            .bind(schema)
            .fetch_optional(&admin)
            .await
            .unwrap()
            .unwrap_or(false)
        }
    };
    // Statistics reach the view within a second or so of the commits.
    let until = |condition: &'static str, failure: &'static str| {
        let stat = &stat;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !stat(condition).await {
                assert!(std::time::Instant::now() < deadline, "{failure}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    until(
        "n_mod_since_analyze >= 80",
        "no counts in pg_stat_user_tables",
    )
    .await;
    assert!(!stat("last_analyze IS NOT NULL").await);
    let _second = db.replica().await;
    until("last_analyze IS NOT NULL", "incidents was not analysed").await;
}
