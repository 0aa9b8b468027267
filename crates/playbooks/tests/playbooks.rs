//! Playbooks on a manual clock, with the real store, runner and chat jobs against the fake
//! Slack Web API. Nothing sleeps: the clock is moved and the queue drained.

use std::sync::Arc;

use chrono::Duration;
use klaxon_chat::effects::ChatEffects;
use klaxon_chat::handlers::ChatJobs;
use klaxon_chat::slack::fake::{FakeSlack, BOT};
use klaxon_chat::slack::SlackPlatform;
use klaxon_chat::{ChatSettings, Platforms};
use klaxon_core::playbook::{defaults, Condition, Playbook, Step, Trigger};
use klaxon_core::{from_millis, Actor, Catalog, Command, Declare, IncidentRef};
use klaxon_jobs::{Clock, ManualClock, Runner, RunnerConfig};
use klaxon_playbooks::{PlaybookEffects, StepHandler, STEP};
use klaxon_store::{AllEffects, Effects, JobState, Request, Store};

struct World {
    /// The incident leads, in order (emails).
    leads: Vec<String>,
    playbooks: Arc<Vec<Playbook>>,
    fake: FakeSlack,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    effects: Arc<dyn Effects>,
    catalog: Arc<Catalog>,
    integrations: Arc<klaxon_integrations::Settings>,
    _db: klaxon_store::testing::TestDb,
}

impl World {
    async fn new() -> World {
        World::with(defaults()).await
    }

    async fn with(playbooks: Vec<Playbook>) -> World {
        let playbooks = Arc::new(playbooks);
        let db = klaxon_store::testing::sqlite().await;
        let fake = FakeSlack::start("xoxb-pb").await;
        fake.add_channel("CINCIDENTS", "incidents", &[BOT]);
        let catalog = Arc::new(Catalog::default());
        let effects: Arc<dyn Effects> = Arc::new(AllEffects(vec![
            Arc::new(ChatEffects {
                platforms: vec![("slack", false)],
                on_request: Vec::new(),
            }),
            Arc::new(PlaybookEffects {
                playbooks: playbooks.clone(),
                catalog: catalog.clone(),
            }),
        ]));
        World {
            leads: vec!["ada@example.test".into(), "grace@example.test".into()],
            playbooks,
            store: db.store.clone(),
            fake,
            clock: Arc::new(ManualClock::new(from_millis(1_800_000_000_000))),
            effects,
            catalog,
            integrations: Arc::default(),
            _db: db,
        }
    }

    /// A runner as `klaxon serve` wires it (a new one is a restarted Klaxon).
    fn runner(&self) -> Arc<Runner> {
        let platform = Arc::new(SlackPlatform::new(&self.fake.api_url, "xoxb-pb"));
        let mut platforms = Platforms::default();
        platforms.add(platform);
        let mut r = Runner::new(
            self.store.clone(),
            self.clock.clone(),
            RunnerConfig {
                id: format!("r{}", fastid()),
                ..RunnerConfig::default()
            },
        );
        // Slack's messages reach the keyword playbooks through the Slack event job.
        let commands = Arc::new(klaxon_chat::commands::Commands {
            store: self.store.clone(),
            catalog: self.catalog.clone(),
            effects: self.effects.clone(),
            public_url: "https://k".into(),
            default_access: klaxon_core::Access::Responder,
            custom: Arc::new(Vec::new()),
            actions: None,
            on_call: None,
        });
        let mut slack_jobs = klaxon_chat::slack::jobs::SlackJobs::new(
            Arc::new(SlackPlatform::new(&self.fake.api_url, "xoxb-pb")),
            commands,
            "pushpin",
        );
        slack_jobs.listener = Some(Arc::new(PlaybookEffects {
            playbooks: self.playbooks.clone(),
            catalog: self.catalog.clone(),
        }));
        Arc::new(slack_jobs).register(&mut r);
        Arc::new(ChatJobs {
            store: self.store.clone(),
            catalog: self.catalog.clone(),
            platforms: platforms.clone(),
            settings: ChatSettings {
                public_url: "https://k".into(),
            },
            announce_in: vec![],
            updating: Default::default(),
        })
        .register(&mut r);
        r.register(
            STEP,
            StepHandler {
                store: self.store.clone(),
                catalog: self.catalog.clone(),
                playbooks: self.playbooks.clone(),
                platforms,
                incidents_channels: vec![("slack", "CINCIDENTS".into())],
                public_url: "https://k".into(),
                leads: self.leads.clone(),
                dry_run: false,
                integrations: self.integrations.clone(),
                actions: None,
            },
        );
        Arc::new(r)
    }

    fn req<C>(&self, command: C) -> Request<'_, C> {
        Request {
            command,
            actor: Actor::system("test"),
            at: self.clock.now(),
            catalog: &self.catalog,
            effects: self.effects.as_ref(),
        }
    }

    async fn declare(&self, severity: Option<&str>) -> IncidentRef {
        let d = Declare {
            title: "Checkout is down".into(),
            severity: severity.map(String::from),
            ..Default::default()
        };
        self.store
            .declare(self.req(d))
            .await
            .unwrap()
            .incident
            .reference
    }

    async fn run(&self, r: IncidentRef, c: Command) {
        self.store.execute(r, self.req(c)).await.unwrap();
    }

    /// What was posted in the incident's channel after the headline.
    fn posts(&self) -> Vec<String> {
        let c = self
            .fake
            .channel_named("inc-1-checkout-is-down")
            .expect("the channel");
        c.messages.iter().skip(1).map(|m| m.text.clone()).collect()
    }

    fn advance(&self, minutes: i64) {
        self.clock.advance(Duration::minutes(minutes));
    }
}

fn fastid() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn a_nudge_when_no_severity_is_set_after_five_minutes() {
    let w = World::new().await;
    let runner = w.runner();
    w.declare(None).await;
    runner.drain().await.unwrap();
    assert!(w.posts().is_empty());
    w.advance(4);
    runner.drain().await.unwrap();
    assert!(w.posts().is_empty(), "not before five minutes");
    w.advance(1);
    runner.drain().await.unwrap();
    assert_eq!(w.posts(), vec!["INC-1 still has no severity. Set one with `/incident severity SEV1` (to SEV4), or the incident page: https://k/incidents/INC-1"]);
    w.advance(60);
    runner.drain().await.unwrap();
    assert_eq!(w.posts().len(), 1, "once");
}

#[tokio::test]
async fn the_nudge_is_dropped_when_the_severity_is_set_in_time() {
    let w = World::new().await;
    let runner = w.runner();
    let r = w.declare(None).await;
    runner.drain().await.unwrap();
    w.advance(2);
    w.run(
        r,
        Command::SetSeverity {
            severity: Some("SEV3".into()),
        },
    )
    .await;
    w.advance(3);
    runner.drain().await.unwrap();
    assert!(w.posts().is_empty());
    let job = w
        .store
        .job_by_key("INC-1:playbook:severity-nudge:0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result.unwrap()["stopped"], "its condition holds");
}

#[tokio::test]
async fn status_update_reminders_repeat_by_severity_until_resolved() {
    let w = World::new().await;
    let runner = w.runner();
    let r = w.declare(None).await;
    w.run(
        r,
        Command::SetSeverity {
            severity: Some("SEV1".into()),
        },
    )
    .await;
    runner.drain().await.unwrap();
    for _ in 0..3 {
        w.advance(15);
        runner.drain().await.unwrap();
    }
    let reminder = "INC-1 is SEV1: time for a status update (every 15m at SEV1). Post it with `/incident note` or the status page.";
    assert_eq!(w.posts(), vec![reminder; 3], "at 15, 30 and 45 minutes");
    // Down to SEV2: the SEV1 reminders stop, the SEV2 ones start at their own pace.
    w.advance(5);
    w.run(
        r,
        Command::SetSeverity {
            severity: Some("SEV2".into()),
        },
    )
    .await;
    w.advance(15);
    runner.drain().await.unwrap();
    assert_eq!(w.posts().len(), 3, "no SEV1 reminder after the change");
    w.advance(15);
    runner.drain().await.unwrap();
    assert!(
        w.posts()[3].contains("is SEV2: time for a status update (every 30m at SEV2)"),
        "{:?}",
        w.posts()
    );
    w.run(
        r,
        Command::ChangeStatus {
            status: "resolved".into(),
        },
    )
    .await;
    w.advance(120);
    runner.drain().await.unwrap();
    assert_eq!(w.posts().len(), 4, "resolved: no more reminders");
}

#[tokio::test]
async fn a_reminder_survives_a_restart_and_fires_once_at_its_time() {
    let w = World::new().await;
    let first = w.runner();
    w.declare(None).await;
    first.drain().await.unwrap();
    drop(first); // Klaxon stops in the middle of the delay…
    w.advance(3);
    let second = w.runner(); // …and starts again.
    second.drain().await.unwrap();
    assert!(w.posts().is_empty());
    w.advance(2);
    second.drain().await.unwrap();
    second.drain().await.unwrap();
    assert_eq!(w.posts().len(), 1);
    let due = w.store.next_due().await.unwrap();
    assert_eq!(due, None, "nothing left to run");
}

#[tokio::test]
async fn after_resolve_the_lead_is_reminded_of_the_retrospective_until_it_is_closed() {
    let w = World::new().await;
    w.fake.add_user("U1", "Ada Lovelace", "ada@example.test");
    let ada = w
        .store
        .person_for_identity(
            &klaxon_core::ChatIdentity::Slack("U1".into()),
            &klaxon_core::NewPerson {
                name: "Ada Lovelace".into(),
                ..Default::default()
            },
            w.clock.now(),
        )
        .await
        .unwrap();
    let runner = w.runner();
    let r = w.declare(Some("SEV3")).await;
    w.run(
        r,
        Command::AssignRole {
            role: "lead".into(),
            person: ada.id,
        },
    )
    .await;
    w.run(
        r,
        Command::ChangeStatus {
            status: "resolved".into(),
        },
    )
    .await;
    runner.drain().await.unwrap();
    w.advance(59);
    runner.drain().await.unwrap();
    assert!(w.fake.channel("DU1").is_none(), "not before an hour");
    w.advance(1);
    runner.drain().await.unwrap();
    let dm = w.fake.channel("DU1").expect("a direct message to the lead");
    assert_eq!(dm.messages.len(), 1);
    assert!(
        dm.messages[0]
            .text
            .starts_with("INC-1 is resolved. Write the retrospective"),
        "{}",
        dm.messages[0].text
    );
    w.run(
        r,
        Command::ChangeStatus {
            status: "closed".into(),
        },
    )
    .await;
    w.advance(24 * 60);
    runner.drain().await.unwrap();
    assert_eq!(
        w.fake.channel("DU1").unwrap().messages.len(),
        1,
        "closed: no more reminders"
    );
}

impl World {
    /// A message in a channel, as Slack's event becomes a job.
    async fn said(&self, channel: &str, text: &str, id: &str) {
        let event = serde_json::json!({ "event": { "type": "message", "channel": channel, "user": "U9", "text": text, "ts": format!("{}.000100", self.clock.now().timestamp()) }, "event_id": id });
        let job = klaxon_store::NewJob::new(format!("slack.event:{id}"), "slack.event", event);
        self.store.enqueue(&[job], self.clock.now()).await.unwrap();
    }
}

#[tokio::test]
async fn can_someone_is_answered_with_a_nudge_at_most_once_in_ten_minutes() {
    let w = World::new().await;
    let runner = w.runner();
    let r = w.declare(Some("SEV3")).await;
    runner.drain().await.unwrap();
    let channel = w
        .store
        .chat_channel(r, "slack")
        .await
        .unwrap()
        .unwrap()
        .channel_id;
    let nudge = "\u{201c}Can someone…?\u{201d} tends to go unanswered in an incident: name a person instead (\u{201c}@name, can you …?\u{201d}).";

    w.said(&channel, "Can someone look at the database?", "Ev1")
        .await;
    runner.drain().await.unwrap();
    assert_eq!(w.posts(), vec![nudge.to_string()]);
    w.advance(2);
    w.said(&channel, "can someone restart the workers", "Ev2")
        .await;
    w.said(&channel, "the scanner someone left on", "Ev3").await;
    runner.drain().await.unwrap();
    assert_eq!(w.posts().len(), 1, "quiet for ten minutes in the channel");
    w.advance(10);
    w.said(&channel, "Can someone page payments?", "Ev4").await;
    runner.drain().await.unwrap();
    assert_eq!(w.posts().len(), 2, "and again after them");

    // Not in other channels, and not once the incident is resolved.
    w.said("CINCIDENTS", "can someone help", "Ev5").await;
    w.run(
        r,
        Command::ChangeStatus {
            status: "resolved".into(),
        },
    )
    .await;
    w.advance(15);
    w.said(&channel, "can someone write the retro", "Ev6").await;
    runner.drain().await.unwrap();
    assert_eq!(w.posts().len(), 2);
    assert!(w.fake.channel("CINCIDENTS").unwrap().messages.is_empty());
}

#[tokio::test]
async fn after_four_hours_the_next_incident_lead_is_asked_to_take_over() {
    let w = World::new().await;
    w.fake.add_user("U1", "Ada Lovelace", "ada@example.test");
    w.fake.add_user("U2", "Grace Hopper", "grace@example.test");
    let person = |id: &str, name: &str, email: &str| {
        let details = klaxon_core::NewPerson {
            name: name.into(),
            email: Some(email.into()),
            ..Default::default()
        };
        let identity = klaxon_core::ChatIdentity::Slack(id.into());
        let store = w.store.clone();
        let now = w.clock.now();
        async move {
            store
                .person_for_identity(&identity, &details, now)
                .await
                .unwrap()
        }
    };
    let ada = person("U1", "Ada Lovelace", "ada@example.test").await;
    let grace = person("U2", "Grace Hopper", "grace@example.test").await;
    let runner = w.runner();
    let r = w.declare(Some("SEV3")).await;
    w.run(
        r,
        Command::AssignRole {
            role: "lead".into(),
            person: ada.id,
        },
    )
    .await;
    runner.drain().await.unwrap();
    w.advance(239);
    runner.drain().await.unwrap();
    assert!(w.fake.channel("DU2").is_none(), "not before four hours");
    w.advance(1);
    runner.drain().await.unwrap();
    let dm = w
        .fake
        .channel("DU2")
        .expect("a direct message to Grace, next on the list");
    assert_eq!(dm.messages[0].text, "INC-1: Ada Lovelace has led for a while. Time to hand over? Grace Hopper is next on the list of incident leads: https://k/incidents/INC-1");

    // Grace takes over: Ada's reminders stop, and Grace's own start from now.
    w.run(
        r,
        Command::AssignRole {
            role: "lead".into(),
            person: grace.id,
        },
    )
    .await;
    w.advance(120);
    runner.drain().await.unwrap();
    assert_eq!(
        w.fake.channel("DU2").unwrap().messages.len(),
        1,
        "no more about Ada's turn"
    );
    w.advance(120);
    runner.drain().await.unwrap();
    let to_ada = w
        .fake
        .channel("DU1")
        .expect("after Grace's four hours, Ada is next (the list wraps)");
    assert!(
        to_ada.messages[0]
            .text
            .starts_with("INC-1: Grace Hopper has led for a while."),
        "{}",
        to_ada.messages[0].text
    );
}

/// A request's headers (names in lower case) and body.
type Received = (Vec<(String, String)>, String);

/// A webhook endpoint on a local port: it answers with the statuses it is given, in order
/// (200 once they run out), and keeps each request's headers and body.
struct Endpoint {
    url: String,
    seen: Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Endpoint {
    async fn start(statuses: Vec<u16>) -> Endpoint {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut statuses = statuses.into_iter();
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then as many bytes as content-length says.
                let (head, body) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break (String::new(), String::new());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break (head.to_string(), body.to_string());
                        }
                    }
                };
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                log.lock().unwrap().push((headers, body));
                let status = statuses.next().unwrap_or(200);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            }
        });
        Endpoint { url, seen }
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

fn webhook_playbook(url: &str) -> Playbook {
    Playbook {
        name: "tell-the-cmdb".into(),
        trigger: Trigger::Declared,
        when: Condition::Always,
        steps: vec![Step::Webhook {
            url: url.into(),
            secret: Some("hook-secret".into()),
        }],
        once: false,
        cooldown: None,
    }
}

#[tokio::test]
async fn a_webhook_step_is_signed_and_retried_with_one_idempotency_key_until_it_lands() {
    let hook = Endpoint::start(vec![503]).await;
    let w = World::with(vec![webhook_playbook(&hook.url)]).await;
    let runner = w.runner();
    w.declare(Some("SEV2")).await;
    runner.drain().await.unwrap();
    let key = "INC-1:playbook:tell-the-cmdb:0:1";
    let job = w.store.job_by_key(key).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Pending, "a 503 is retried");
    assert!(
        job.last_error
            .as_deref()
            .unwrap_or("")
            .contains("answered HTTP 503"),
        "{job:?}"
    );
    assert_eq!(hook.requests().len(), 1);
    // A restarted Klaxon makes the retry when it is due.
    w.advance(30);
    w.runner().drain().await.unwrap();
    let job = w.store.job_by_key(key).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.result.unwrap()["status"], 200);
    let requests = hook.requests();
    assert_eq!(requests.len(), 2, "one retry, then nothing more");
    for (headers, body) in &requests {
        assert_eq!(header(headers, "idempotency-key"), key);
        let ts = header(headers, "x-klaxon-timestamp");
        assert_eq!(
            header(headers, "x-klaxon-signature"),
            klaxon_chat::commands::sign_plugin_request("hook-secret", ts, body.as_bytes())
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["playbook"], "tell-the-cmdb");
        assert_eq!(v["incident"]["reference"], "INC-1");
        assert_eq!(v["incident"]["severity"], "SEV2");
        assert_eq!(v["incident"]["url"], "https://k/incidents/INC-1");
    }
    w.advance(60);
    w.runner().drain().await.unwrap();
    assert_eq!(hook.requests().len(), 2, "a landed call is not repeated");
}

#[tokio::test]
async fn a_webhook_refused_with_a_4xx_is_not_retried_and_says_why() {
    let hook = Endpoint::start(vec![404]).await;
    let w = World::with(vec![webhook_playbook(&hook.url)]).await;
    let runner = w.runner();
    w.declare(None).await;
    runner.drain().await.unwrap();
    w.advance(60);
    runner.drain().await.unwrap();
    let job = w
        .store
        .job_by_key("INC-1:playbook:tell-the-cmdb:0:1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Dead);
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("answered HTTP 404"), "{error}");
    assert!(error.contains("does not retry a 4xx"), "{error}");
    assert_eq!(hook.requests().len(), 1);
}

#[tokio::test]
async fn paging_and_email_steps_are_skipped_in_drills_unless_the_step_says_so() {
    let playbooks = vec![Playbook {
        name: "page-sev1".into(),
        trigger: Trigger::Declared,
        when: Condition::SeverityIs("SEV1".into()),
        once: true,
        cooldown: None,
        steps: vec![
            Step::Page { in_drills: false },
            Step::Email {
                to: vec!["execs@example.test".into()],
                subject: "{reference} paged".into(),
                text: "{title}".into(),
                in_drills: true,
            },
        ],
    }];
    let mut w = World::with(playbooks).await;
    w.integrations = Arc::new(klaxon_integrations::Settings {
        pagerduty: klaxon_integrations::config::PagerDutyConfig {
            routing_key: "R".into(),
            ..Default::default()
        },
        smtp: klaxon_integrations::config::SmtpConfig {
            host: "127.0.0.1".into(),
            from: "k@example.test".into(),
            ..Default::default()
        },
        ..Default::default()
    });
    let runner = w.runner();
    let d = Declare {
        title: "Game day".into(),
        severity: Some("SEV1".into()),
        drill: true,
        ..Default::default()
    };
    let r = w.store.declare(w.req(d)).await.unwrap().incident.reference;
    runner.drain().await.unwrap();
    let jobs = w.store.incident_jobs(r).await.unwrap();
    let page = jobs
        .iter()
        .find(|j| j.key == format!("{r}:playbook:page-sev1:0"))
        .unwrap();
    assert!(page.result.as_ref().unwrap()["skipped"]
        .as_str()
        .unwrap()
        .contains("drill"));
    assert!(
        !jobs.iter().any(|j| j.kind == "pagerduty.event"),
        "not paged"
    );
    // The email step says in_drills: its email job is there, addressed as the step says.
    let email = jobs
        .iter()
        .find(|j| j.kind == "email.send")
        .expect("an email job");
    assert_eq!(
        email.payload["to"],
        serde_json::json!(["execs@example.test"])
    );
    assert_eq!(email.payload["subject"], "INC-1 paged");
    let events = w.store.events(r, 0, 100).await.unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind, klaxon_core::EventKind::ActionSucceeded { detail, .. } if detail.starts_with("skipped:"))));

    // A real SEV1 pages, with the key the PagerDuty rules use: once between them.
    let d = Declare {
        title: "Checkout is down".into(),
        severity: Some("SEV1".into()),
        ..Default::default()
    };
    let r = w.store.declare(w.req(d)).await.unwrap().incident.reference;
    runner.drain().await.unwrap();
    let jobs = w.store.incident_jobs(r).await.unwrap();
    let pages: Vec<_> = jobs
        .iter()
        .filter(|j| j.kind == "pagerduty.event")
        .collect();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].key, format!("{r}:pagerduty:trigger"));
}

#[tokio::test]
async fn an_overdue_follow_up_is_chased_until_it_is_done() {
    let playbooks = vec![Playbook {
        name: "overdue".into(),
        trigger: Trigger::FollowUpOverdue,
        when: Condition::Always,
        once: false,
        cooldown: None,
        steps: vec![Step::Remind {
            after: klaxon_core::playbook::Span(std::time::Duration::ZERO),
            every: Some(klaxon_core::playbook::Span(std::time::Duration::from_secs(
                86_400,
            ))),
            until: Condition::Not(Box::new(Condition::FollowUpsOpen)),
            to: klaxon_core::playbook::Target::Channel,
            text: "Follow-up {follow_up} of {reference} is overdue.".into(),
        }],
    }];
    let w = World::with(playbooks).await;
    let runner = w.runner();
    let r = w.declare(Some("SEV2")).await;
    runner.drain().await.unwrap();
    let due = w.clock.now() + Duration::hours(48);
    w.run(
        r,
        Command::AddFollowUp {
            text: "Alert on checkout errors".into(),
            owner: None,
            due_at: Some(due),
        },
    )
    .await;
    w.run(
        r,
        Command::AddFollowUp {
            text: "No due date".into(),
            owner: None,
            due_at: None,
        },
    )
    .await;
    runner.drain().await.unwrap();
    w.advance(47 * 60);
    runner.drain().await.unwrap();
    assert!(w.posts().is_empty(), "not before it is due");
    w.advance(60);
    runner.drain().await.unwrap();
    assert_eq!(
        w.posts(),
        vec!["Follow-up #1 Alert on checkout errors of INC-1 is overdue."]
    );
    w.advance(24 * 60);
    runner.drain().await.unwrap();
    assert_eq!(w.posts().len(), 2, "again a day later");
    w.run(r, Command::CompleteFollowUp { id: 1 }).await;
    w.advance(24 * 60);
    runner.drain().await.unwrap();
    assert_eq!(w.posts().len(), 2, "done: no more");
}

#[tokio::test]
async fn an_invite_step_brings_people_into_the_channel_by_email() {
    let playbooks = vec![Playbook {
        name: "dba-for-sev1".into(),
        trigger: Trigger::FieldChanged("severity".into()),
        when: Condition::SeverityIs("SEV1".into()),
        once: true,
        cooldown: None,
        steps: vec![Step::Invite {
            people: vec!["grace@example.test".into(), "nobody@example.test".into()],
        }],
    }];
    let w = World::with(playbooks).await;
    w.fake.add_user("U2", "Grace Hopper", "grace@example.test");
    let runner = w.runner();
    let r = w.declare(Some("SEV3")).await;
    runner.drain().await.unwrap();
    let channel = w.fake.channel_named("inc-1-checkout-is-down").unwrap();
    assert!(!channel.members.contains("U2"));
    w.run(
        r,
        Command::SetSeverity {
            severity: Some("SEV1".into()),
        },
    )
    .await;
    runner.drain().await.unwrap();
    let channel = w.fake.channel_named("inc-1-checkout-is-down").unwrap();
    assert!(channel.members.contains("U2"), "{:?}", channel.members);
    let job = w
        .store
        .job_by_key(&format!("{r}:playbook:dba-for-sev1:0"))
        .await
        .unwrap()
        .unwrap();
    let result = job.result.unwrap();
    assert_eq!(
        result["invited"],
        serde_json::json!(["slack: grace@example.test"])
    );
    assert_eq!(
        result["not_found"],
        serde_json::json!(["slack: nobody@example.test"])
    );
}

#[tokio::test]
async fn a_room_opened_by_a_playbook_where_rooms_open_on_request() {
    let playbooks = vec![Playbook {
        name: "sev1-room".into(),
        trigger: Trigger::FieldChanged("severity".into()),
        when: Condition::SeverityIs("SEV1".into()),
        once: true,
        cooldown: None,
        steps: vec![Step::OpenChannel {
            platform: "slack".into(),
        }],
    }];
    let mut w = World::with(playbooks).await;
    w.effects = Arc::new(AllEffects(vec![
        Arc::new(ChatEffects {
            platforms: vec![("slack", false)],
            on_request: vec!["slack"],
        }),
        Arc::new(PlaybookEffects {
            playbooks: w.playbooks.clone(),
            catalog: w.catalog.clone(),
        }),
    ]));
    let runner = w.runner();
    let r = w.declare(Some("SEV3")).await;
    w.run(
        r,
        Command::SetSummary {
            summary: "Payments fail".into(),
        },
    )
    .await;
    runner.drain().await.unwrap();
    assert!(
        w.fake.channel_named("inc-1-checkout-is-down").is_none(),
        "no room for a SEV3"
    );
    let jobs = w.store.incident_jobs(r).await.unwrap();
    let update = jobs
        .iter()
        .find(|j| j.kind == "chat.update_headline")
        .expect("an update");
    assert_eq!(
        update.state,
        JobState::Succeeded,
        "skipped, not stuck: {:?}",
        update.last_error
    );

    w.run(
        r,
        Command::SetSeverity {
            severity: Some("SEV1".into()),
        },
    )
    .await;
    runner.drain().await.unwrap();
    let room = w
        .fake
        .channel_named("inc-1-checkout-is-down")
        .expect("the room, now");
    assert_eq!(room.pins.len(), 1, "its headline pinned");
    let headline = &room.messages[0].text;
    assert!(headline.contains("SEV1"), "{headline}");
}
