//! Slack end to end, in process: signed requests (built from the real payloads in
//! `../shared/slack/payloads`) sent to Klaxon's Slack endpoints, the jobs they become run by
//! the real runner against the real store, and a stateful fake Slack Web API on the other side.
//! No test sleeps: they drain the job queue, or wait for a condition with a deadline.

use std::sync::Arc;
use std::time::Duration;

use klaxon_chat::commands::Commands;
use klaxon_chat::effects::ChatEffects;
use klaxon_chat::handlers::ChatJobs;
use klaxon_chat::slack::fake::{Fail, FakeSlack, BOT};
use klaxon_chat::slack::inbound::{self, SlackInbound};
use klaxon_chat::slack::jobs::SlackJobs;
use klaxon_chat::slack::{signature, SlackPlatform};
use klaxon_chat::{ChatSettings, Platforms};
use klaxon_core::{Access, Actor, Catalog, Command, Declare, EventKind, IncidentRef};
use klaxon_jobs::{Clock, ManualClock, Runner, RunnerConfig, SystemClock};
use klaxon_store::{JobState, NewJob, Request, Store};
use serde_json::{json, Value};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TOKEN: &str = "xoxb-test-token";

fn shared(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/slack/payloads")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

struct Harness {
    fake: FakeSlack,
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    base: String,
    http: reqwest::Client,
    _db: klaxon_store::testing::TestDb,
}

fn runner_config(id: &str) -> RunnerConfig {
    RunnerConfig {
        id: id.into(),
        lease: Duration::from_secs(30),
        job_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(20),
        ..RunnerConfig::default()
    }
}

/// A runner with every chat and Slack job registered, as `klaxon serve` wires it.
fn runner(
    store: &Arc<dyn Store>,
    fake: &FakeSlack,
    clock: Arc<dyn Clock>,
    id: &str,
    announce: bool,
) -> Runner {
    runner_with(store, fake, clock, id, announce, Vec::new(), None)
}

fn runner_with(
    store: &Arc<dyn Store>,
    fake: &FakeSlack,
    clock: Arc<dyn Clock>,
    id: &str,
    announce: bool,
    custom: Vec<klaxon_core::playbook::CustomCommand>,
    actions: Option<Arc<dyn klaxon_store::ManualActions>>,
) -> Runner {
    let catalog = Arc::new(Catalog::default());
    let platform = Arc::new(SlackPlatform::new(&fake.api_url, TOKEN));
    let mut platforms = Platforms::default();
    platforms.add(platform.clone());
    let effects = Arc::new(ChatEffects {
        platforms: vec![("slack", announce)],
        on_request: Vec::new(),
    });
    let commands = Arc::new(Commands {
        store: store.clone(),
        catalog: catalog.clone(),
        effects,
        public_url: "https://klaxon.test".into(),
        default_access: Access::Responder,
        custom: Arc::new(custom),
        actions,
        on_call: Some(Arc::new(Rota)),
    });
    let mut r = Runner::new(store.clone(), clock, runner_config(id));
    Arc::new(SlackJobs::new(platform, commands, "pushpin")).register(&mut r);
    let announce_in = if announce {
        vec![("slack", "CINCIDENTS".to_string())]
    } else {
        vec![]
    };
    Arc::new(ChatJobs {
        store: store.clone(),
        catalog,
        platforms,
        settings: ChatSettings {
            public_url: "https://klaxon.test".into(),
        },
        announce_in,
        updating: Default::default(),
    })
    .register(&mut r);
    r
}

async fn harness() -> Harness {
    let db = klaxon_store::testing::sqlite().await;
    let store = db.store.clone();
    let fake = FakeSlack::start(TOKEN).await;
    fake.add_user("U1", "Ada Lovelace", "ada@example.test");
    fake.add_user("U2", "Grace Hopper", "grace@example.test");
    fake.add_channel("CINCIDENTS", "incidents", &[BOT]);
    fake.add_channel("CRANDOM", "random", &["U1"]);
    let runner = Arc::new(runner(&store, &fake, Arc::new(SystemClock), "r1", true));
    let app = inbound::router(SlackInbound {
        store: store.clone(),
        catalog: Arc::new(Catalog::default()),
        signing_secret: SECRET.into(),
        wake: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Harness {
        fake,
        store,
        runner,
        base,
        http: reqwest::Client::new(),
        _db: db,
    }
}

impl Harness {
    async fn send_at(
        &self,
        path: &str,
        content_type: &str,
        body: String,
        ts: i64,
        secret: &str,
    ) -> (u16, String) {
        let ts = ts.to_string();
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", &ts)
            .header(
                "x-slack-signature",
                signature::sign(secret, &ts, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn send(&self, path: &str, content_type: &str, body: String) -> (u16, String) {
        self.send_at(
            path,
            content_type,
            body,
            chrono::Utc::now().timestamp(),
            SECRET,
        )
        .await
    }

    /// A slash command, from the real payload with these fields changed.
    async fn command(&self, user: &str, channel: &str, text: &str, trigger: &str) -> u16 {
        let mut form: Vec<(String, String)> = serde_urlencoded::from_str(&shared(
            "bolt-python/slash_command__slash_command_body.form.txt",
        ))
        .unwrap();
        for (k, v) in form.iter_mut() {
            match k.as_str() {
                "command" => *v = "/incident".into(),
                "text" => *v = text.into(),
                "user_id" => *v = user.into(),
                "channel_id" => *v = channel.into(),
                "trigger_id" => *v = trigger.into(),
                "response_url" => *v = format!("{}/{trigger}", self.fake.hooks_url),
                _ => {}
            }
        }
        self.send(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            serde_urlencoded::to_string(&form).unwrap(),
        )
        .await
        .0
    }

    /// An event, in the real reaction_added envelope with this event inside.
    async fn event(&self, id: &str, event: Value) -> u16 {
        let mut envelope: Value = serde_json::from_str(&shared(
            "bolt-python/events__TestEvents_valid_reaction_added_body.json",
        ))
        .unwrap();
        envelope["event_id"] = json!(id);
        envelope["event"] = event;
        self.send("/slack/events", "application/json", envelope.to_string())
            .await
            .0
    }

    async fn drain(&self) -> usize {
        self.runner.drain().await.unwrap()
    }

    async fn incident_channel(&self, r: u64) -> klaxon_store::ChatChannel {
        self.store
            .chat_channel(IncidentRef::new(r).unwrap(), "slack")
            .await
            .unwrap()
            .expect("the incident has a channel")
    }
}

#[test]
fn the_known_answer_vector_verifies() {
    let v: Value = serde_json::from_str(&shared(
        "python-slack-sdk/signature/known_answer_vector.json",
    ))
    .unwrap();
    let (secret, ts, body, sig) = (
        v["signing_secret"].as_str().unwrap(),
        v["timestamp"].as_str().unwrap(),
        v["body"].as_str().unwrap(),
        v["valid_signature"].as_str().unwrap(),
    );
    assert_eq!(signature::sign(secret, ts, body.as_bytes()), sig);
    let at: i64 = ts.parse().unwrap();
    assert_eq!(
        signature::verify(secret, Some(ts), Some(sig), body.as_bytes(), at + 299),
        Ok(())
    );
    assert_eq!(
        signature::verify(secret, Some(ts), Some(sig), body.as_bytes(), at + 301),
        Err(signature::SignatureError::Stale(301))
    );
    assert_eq!(
        signature::verify(
            secret,
            Some(ts),
            Some(sig),
            format!("{body}x").as_bytes(),
            at
        ),
        Err(signature::SignatureError::Mismatch)
    );
    assert_eq!(
        signature::verify("other", Some(ts), Some(sig), body.as_bytes(), at),
        Err(signature::SignatureError::Mismatch)
    );
    assert_eq!(
        signature::verify(secret, None, Some(sig), body.as_bytes(), at),
        Err(signature::SignatureError::Missing)
    );
    assert_eq!(
        signature::verify(secret, Some(ts), Some("v0=zz"), body.as_bytes(), at),
        Err(signature::SignatureError::Mismatch)
    );
}

#[tokio::test]
async fn requests_are_verified_before_anything_else() {
    let h = harness().await;
    let body = shared("bolt-python/events_url_verification__event_body.json");
    let (status, answer) = h
        .send("/slack/events", "application/json", body.clone())
        .await;
    assert_eq!(status, 200);
    let challenge: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["challenge"],
        challenge["challenge"]
    );

    let (status, answer) = h
        .send_at(
            "/slack/events",
            "application/json",
            body.clone(),
            chrono::Utc::now().timestamp(),
            "wrong secret",
        )
        .await;
    assert_eq!(status, 401);
    assert!(answer.contains("check [slack] signing_secret"), "{answer}");
    let (status, answer) = h
        .send_at(
            "/slack/events",
            "application/json",
            body.clone(),
            chrono::Utc::now().timestamp() - 600,
            SECRET,
        )
        .await;
    assert_eq!(status, 401);
    assert!(answer.contains("more than 5 minutes"), "{answer}");
    let res = h
        .http
        .post(format!("{}/slack/commands", h.base))
        .body("text=declare+x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        h.store.job_counts().await.unwrap().is_empty(),
        "nothing refused was recorded"
    );
    h.fake.assert_valid();
}

#[tokio::test]
async fn declare_from_slack_mobilises_the_channel_exactly_once() {
    let h = harness().await;
    assert_eq!(
        h.command("U1", "CRANDOM", "declare Checkout is down", "111.222.aaa")
            .await,
        200
    );
    h.drain().await;

    // The reply, to the person who typed it.
    let replies = h.fake.responses();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["response_type"], "ephemeral");
    assert!(
        replies[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Declared INC-1: Checkout is down"),
        "{replies:?}"
    );

    // The incident, led by the person who declared it, known by their Slack profile.
    let i = h
        .store
        .incident(IncidentRef::new(1).unwrap())
        .await
        .unwrap()
        .unwrap();
    let lead = h.store.person(i.lead().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (
            lead.name.as_str(),
            lead.email.as_deref(),
            lead.slack_user_id.as_deref()
        ),
        ("Ada Lovelace", Some("ada@example.test"), Some("U1"))
    );

    // The channel, its topic, its members, the pinned headline, the bookmark, the announcement.
    let c = h
        .fake
        .channel_named("inc-1-checkout-is-down")
        .expect("the channel");
    assert!(
        c.topic
            .starts_with("INC-1 Checkout is down | severity not set | triage"),
        "{}",
        c.topic
    );
    assert!(c.members.contains("U1"), "the declarer is invited");
    assert_eq!(c.messages.len(), 1);
    let headline = &c.messages[0];
    assert!(c.pins.contains(&headline.ts), "the headline is pinned");
    assert_eq!(
        headline.metadata.as_ref().unwrap()["event_payload"]["marker"],
        "INC-1:headline"
    );
    assert_eq!(
        headline.blocks.as_ref().unwrap()[0]["text"]["text"],
        "INC-1: Checkout is down"
    );
    assert_eq!(
        c.bookmarks,
        vec![(
            "Incident page".to_string(),
            "https://klaxon.test/incidents/INC-1".to_string()
        )]
    );
    let incidents = h.fake.channel("CINCIDENTS").unwrap();
    assert_eq!(incidents.messages.len(), 1);
    assert!(
        incidents.messages[0]
            .text
            .contains("INC-1 declared: Checkout is down")
            && incidents.messages[0]
                .text
                .contains("#inc-1-checkout-is-down")
    );
    assert_eq!(
        h.incident_channel(1).await.headline_id.as_deref(),
        Some(headline.ts.as_str())
    );

    // Every job done, nothing dead; the channel is on the timeline with its link.
    let jobs = h
        .store
        .incident_jobs(IncidentRef::new(1).unwrap())
        .await
        .unwrap();
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{:?}",
        jobs.iter()
            .map(|j| (&j.key, j.state, j.attempts, &j.last_error))
            .collect::<Vec<_>>()
    );
    let i = h
        .store
        .incident(IncidentRef::new(1).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        i.links["chat.create_channel"].url,
        format!("https://fake.slack.test/archives/{}", c.id)
    );

    // The same command again (Slack does not retry commands, but a person may double-submit
    // through a retrying proxy): the same trigger is the same job, and nothing repeats.
    assert_eq!(
        h.command("U1", "CRANDOM", "declare Checkout is down", "111.222.aaa")
            .await,
        200
    );
    assert_eq!(h.drain().await, 0);
    assert_eq!(h.fake.calls_to("conversations.create").len(), 1);
    assert_eq!(
        h.fake.calls_to("chat.postMessage").len(),
        2,
        "the headline and the announcement, once each"
    );
    h.fake.assert_valid();
}

#[tokio::test]
async fn commands_in_the_channel_act_on_its_incident() {
    let h = harness().await;
    h.command("U1", "CRANDOM", "declare Checkout is down", "t1")
        .await;
    h.drain().await;
    let channel = h.incident_channel(1).await.channel_id;

    h.command("U1", &channel, "severity sev1", "t2").await;
    h.drain().await;
    let reply = h.fake.responses().pop().unwrap();
    assert_eq!(
        (reply["response_type"].as_str(), reply["text"].as_str()),
        (
            Some("in_channel"),
            Some("Ada Lovelace set the severity to SEV1")
        )
    );
    let c = h.fake.channel(&channel).unwrap();
    let fields = c.messages[0].blocks.as_ref().unwrap()[1]["fields"].to_string();
    assert!(
        fields.contains("*Severity*\\nSEV1"),
        "the pinned headline is updated: {fields}"
    );
    assert!(c.topic.contains("| SEV1 |"), "{}", c.topic);

    h.command("U1", &channel, "severity SEV9", "t3").await;
    h.drain().await;
    let reply = h.fake.responses().pop().unwrap();
    assert_eq!(reply["response_type"], "ephemeral");
    assert_eq!(
        reply["text"],
        "unknown severity `SEV9`: use one of SEV1, SEV2, SEV3, SEV4"
    );

    // A Slack user Klaxon has not seen becomes a person, and the role holder is invited.
    h.command("U1", &channel, "role comms <@U2|grace>", "t4")
        .await;
    h.drain().await;
    assert_eq!(
        h.fake.responses().pop().unwrap()["text"],
        "Ada Lovelace made Grace Hopper the communications lead"
    );
    assert!(h.fake.channel(&channel).unwrap().members.contains("U2"));

    h.command("U2", &channel, "catchup", "t5").await;
    h.drain().await;
    let catchup = h.fake.responses().pop().unwrap();
    let text = catchup["text"].as_str().unwrap();
    assert!(
        text.starts_with("INC-1 Checkout is down: SEV1, triage")
            && text.contains("Communications lead: Grace Hopper")
            && text.contains("set the severity to SEV1"),
        "{text}"
    );
    // A command that changed the incident keeps its answer, so a retry does not do it again;
    // one that only read is worked out again and needs no checkpoint.
    let checkpoint = |trigger: &'static str| {
        let store = h.store.clone();
        async move {
            let job = store.job_by_key(&format!("slack.command:{trigger}")).await;
            job.unwrap().expect("the command's job").checkpoint
        }
    };
    assert_eq!(
        checkpoint("t2").await,
        Some(json!({ "reply": "Ada Lovelace set the severity to SEV1" }))
    );
    assert_eq!(checkpoint("t5").await, None);

    // One after the other, as a person types them: jobs queued together run concurrently.
    h.command("U1", &channel, "resolve", "t6").await;
    h.drain().await;
    h.command("U1", &channel, "close", "t7").await;
    h.drain().await;
    assert!(
        h.fake.channel(&channel).unwrap().archived,
        "closing archives the channel"
    );
    let i = h
        .store
        .incident(IncidentRef::new(1).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(i.status, "closed");
    h.fake.assert_valid();
}

#[tokio::test]
async fn outside_an_incident_channel_only_declare_list_and_help() {
    let h = harness().await;
    h.command("U1", "CRANDOM", "severity SEV1", "t1").await;
    h.command("U1", "CRANDOM", "help", "t2").await;
    h.command("U1", "CRANDOM", "dance", "t3").await;
    h.command("U1", "CRANDOM", "declare", "t4").await;
    h.drain().await;
    let texts: Vec<String> = h
        .fake
        .responses()
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    assert!(texts.iter().any(|t| t == "Run this in an incident's channel. Here you can `declare`, `list` and ask for `help`."), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Incident commands:") && t.contains("`severity <SEV>`")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t == "`dance` is not an incident command. Try `help`."),
        "{texts:?}"
    );
    // `declare` without a title opens the form, with the trigger of that command.
    let views = h.fake.views();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0]["callback_id"], "klaxon_declare");
    assert_eq!(h.fake.calls_to("views.open")[0]["trigger_id"], "t4");
    assert!(h
        .store
        .incident(IncidentRef::new(1).unwrap())
        .await
        .unwrap()
        .is_none());
    h.fake.assert_valid();
}

#[tokio::test]
async fn the_declare_form_shows_mistakes_in_place_and_declares_when_right() {
    let h = harness().await;
    let body = |title: &str, severity: Option<&str>| {
        let mut p: Value =
            serde_json::from_str(&shared("bolt-python/view_submission__body.json")).unwrap();
        p["view"]["callback_id"] = json!("klaxon_declare");
        p["user"]["id"] = json!("U1");
        p["view"]["state"]["values"] = json!({
            "title": { "title": { "type": "plain_text_input", "value": title } },
            "severity": { "severity": { "type": "static_select", "selected_option": severity.map(|s| json!({ "value": s })) } },
            "services": { "services": { "type": "plain_text_input", "value": "checkout, payments" } },
        });
        serde_urlencoded::to_string([("payload", p.to_string())]).unwrap()
    };
    let (status, answer) = h
        .send(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body(" ", None),
        )
        .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["response_action"], "errors");
    assert!(
        v["errors"]["title"]
            .as_str()
            .unwrap()
            .starts_with("the title is empty"),
        "{v}"
    );
    let (_, answer) = h
        .send(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body("Checkout is down", Some("SEV7")),
        )
        .await;
    assert!(
        serde_json::from_str::<Value>(&answer).unwrap()["errors"]["severity"]
            .as_str()
            .unwrap()
            .contains("unknown severity"),
        "{answer}"
    );

    let (status, answer) = h
        .send(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body("Checkout is down", Some("SEV2")),
        )
        .await;
    assert_eq!(
        (status, answer.as_str()),
        (200, ""),
        "an empty answer closes the form"
    );
    h.drain().await;
    let i = h
        .store
        .incident(IncidentRef::new(1).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (i.title.as_str(), i.severity.as_deref(), i.services.clone()),
        (
            "Checkout is down",
            Some("SEV2"),
            vec!["checkout".to_string(), "payments".to_string()]
        )
    );
    let dm = h
        .fake
        .channel("DU1")
        .expect("a direct message to the declarer");
    assert!(dm.messages[0].text.starts_with("Declared INC-1"));
    h.fake.assert_valid();
}

#[tokio::test]
async fn pins_and_the_timeline_reaction_put_messages_on_the_timeline_once() {
    let h = harness().await;
    h.command("U1", "CRANDOM", "declare Checkout is down", "t1")
        .await;
    h.drain().await;
    let channel = h.incident_channel(1).await.channel_id;
    let ts = h.fake.say(
        &channel,
        "U2",
        "Root cause: the payment gateway's certificate expired",
    );
    let pin = json!({ "type": "pin_added", "user": "U1", "channel_id": channel, "item": { "type": "message", "channel": channel, "message": { "ts": ts, "text": "x" } }, "event_ts": "1" });
    assert_eq!(h.event("Ev1", pin.clone()).await, 200);
    assert_eq!(
        h.event("Ev1", pin).await,
        200,
        "Slack's retry of the same event"
    );
    let reaction = json!({ "type": "reaction_added", "user": "U1", "reaction": "pushpin", "item": { "type": "message", "channel": channel, "ts": ts }, "event_ts": "2" });
    h.event("Ev2", reaction).await;
    let other = json!({ "type": "reaction_added", "user": "U1", "reaction": "tada", "item": { "type": "message", "channel": channel, "ts": ts }, "event_ts": "3" });
    h.event("Ev3", other).await;
    h.drain().await;

    let r = IncidentRef::new(1).unwrap();
    let events = h.store.events(r, 0, 1000).await.unwrap();
    let captured: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ChatMessageCaptured(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        captured.len(),
        1,
        "pinned, retried and reacted to: on the timeline once"
    );
    let m = &captured[0];
    assert_eq!(
        (m.author_name.as_str(), m.text.as_str()),
        (
            "Grace Hopper",
            "Root cause: the payment gateway's certificate expired"
        )
    );
    assert_eq!(
        m.sent_at,
        klaxon_chat::slack::ts_time(&ts),
        "at the message's own time"
    );
    assert_eq!(
        m.link.as_deref(),
        Some(
            format!(
                "https://fake.slack.test/archives/{channel}/p{}",
                ts.replace('.', "")
            )
            .as_str()
        )
    );

    let unpin = json!({ "type": "pin_removed", "user": "U1", "channel_id": channel, "item": { "type": "message", "channel": channel, "message": { "ts": ts } }, "event_ts": "4" });
    h.event("Ev4", unpin).await;
    h.drain().await;
    let events = h.store.events(r, 0, 1000).await.unwrap();
    assert!(
        matches!(&events.last().unwrap().kind, EventKind::ChatMessageRemoved { message_id, .. } if message_id == &format!("{channel}/{ts}"))
    );
    // Events elsewhere are ignored.
    let elsewhere = json!({ "type": "pin_added", "user": "U1", "channel_id": "CRANDOM", "item": { "type": "message", "channel": "CRANDOM", "message": { "ts": "1.2" } } });
    h.event("Ev5", elsewhere).await;
    h.drain().await;
    assert_eq!(
        h.store.events(r, 0, 1000).await.unwrap().len(),
        events.len()
    );
    h.fake.assert_valid();
}

#[tokio::test]
async fn slack_errors_are_retried_or_dead_lettered_with_a_clear_reason() {
    let h = harness().await;
    h.fake.fail(
        "conversations.create",
        1,
        Fail::RateLimited { retry_after: 7 },
    );
    h.command("U1", "CRANDOM", "declare Checkout is down", "t1")
        .await;
    h.drain().await;
    let job = h
        .store
        .job_by_key("INC-1:slack:channel")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(
        job.last_error.as_deref(),
        Some("Slack conversations.create failed: ratelimited")
    );
    let wait = (job.run_at - klaxon_core::now()).num_milliseconds();
    assert!(
        (5_000..=7_000).contains(&wait),
        "Retry-After: 7 honoured, not {wait} ms"
    );

    // 8 s later the channel job runs again, and this time the bookmark meets a bad token.
    h.fake
        .fail("bookmarks.list", 1, Fail::Error("invalid_auth"));
    let clock = Arc::new(ManualClock::new(
        klaxon_core::now() + chrono::Duration::seconds(8),
    ));
    let later = Arc::new(runner(&h.store, &h.fake, clock, "r2", true));
    later.drain().await.unwrap();
    let bookmark = h
        .store
        .job_by_key("INC-1:slack:bookmark")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bookmark.state, JobState::Dead, "a bad token is not retried");
    assert_eq!(
        bookmark.last_error.as_deref(),
        Some("Slack bookmarks.list failed: invalid_auth (check [slack] bot_token)")
    );
    assert_eq!(
        h.store
            .job_by_key("INC-1:slack:headline")
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Succeeded
    );
    let events = h
        .store
        .events(IncidentRef::new(1).unwrap(), 0, 100)
        .await
        .unwrap();
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::ActionFailed { action, .. } if action == "chat.bookmark")
    ));
    h.fake.assert_valid();
}

/// Waits, with a deadline, until no job is waiting or running.
async fn until_no_job_is_left(store: &Arc<dyn Store>) {
    let mut left = usize::MAX;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while left > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "jobs still to run: {left}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        left = store
            .job_counts()
            .await
            .unwrap()
            .iter()
            .filter(|c| matches!(c.state, JobState::Pending | JobState::Running))
            .map(|c| c.count as usize)
            .sum();
    }
}

async fn set_severity(store: &Arc<dyn Store>, r: IncidentRef, severity: &str) {
    let catalog = Catalog::default();
    let effects = ChatEffects {
        platforms: vec![("slack", false)],
        on_request: Vec::new(),
    };
    store
        .execute(
            r,
            Request {
                command: Command::SetSeverity {
                    severity: Some(severity.into()),
                },
                actor: Actor::system("test"),
                at: klaxon_core::now(),
                catalog: &catalog,
                effects: &effects,
            },
        )
        .await
        .unwrap();
}

/// The headline's updates wait for its post, not for its pin: a change made while Slack is
/// still taking the pin is shown at once (one call in the chain fewer).
#[tokio::test]
async fn a_change_after_the_headline_is_posted_is_shown_beside_the_pin() {
    let h = harness().await;
    let r = declare_directly(&h.store, "Queue backlog").await;
    let pinning = h.fake.hold("pins.add");
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(h.runner.clone().run(stop.clone()));
    tokio::time::timeout(Duration::from_secs(30), pinning.notified())
        .await
        .expect("the pin arrives");
    set_severity(&h.store, r, "SEV1").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.fake.calls_to("chat.update").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the headline's update waited for the pin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.fake.release("pins.add");
    until_no_job_is_left(&h.store).await;
    stop.cancel();
    task.await.unwrap();
    let c = h.fake.channel_named("inc-1-queue-backlog").unwrap();
    assert_eq!(c.pins.len(), 1);
    assert!(
        c.messages[0].text.contains("SEV1"),
        "{}",
        c.messages[0].text
    );
    h.fake.assert_valid();
}

/// A headline job written before pins were jobs of their own (by an older Klaxon, still
/// waiting when it was upgraded) pins the headline itself.
#[tokio::test]
async fn a_headline_job_from_before_pin_jobs_pins_by_itself() {
    let h = harness().await;
    let catalog = Catalog::default();
    let r = h
        .store
        .declare(Request {
            command: Declare {
                title: "Queue backlog".into(),
                ..Default::default()
            },
            actor: Actor::system("test"),
            at: klaxon_core::now(),
            catalog: &catalog,
            effects: &klaxon_store::NoEffects,
        })
        .await
        .unwrap()
        .incident
        .reference;
    let slack = json!({ "platform": "slack" });
    let jobs = [
        NewJob::about(
            r,
            "INC-1:slack:channel",
            "chat.create_channel",
            slack.clone(),
        ),
        NewJob::about(r, "INC-1:slack:headline", "chat.post_headline", slack)
            .after("INC-1:slack:channel"),
    ];
    h.store.enqueue(&jobs, klaxon_core::now()).await.unwrap();
    h.drain().await;
    let c = h.fake.channel_named("inc-1-queue-backlog").unwrap();
    assert_eq!(c.pins.len(), 1);
    assert!(c.pins.contains(&c.messages[0].ts));
}

async fn declare_directly(store: &Arc<dyn Store>, title: &str) -> IncidentRef {
    let catalog = Catalog::default();
    let req = Request {
        command: Declare {
            title: title.into(),
            ..Default::default()
        },
        actor: Actor::system("test"),
        at: klaxon_core::now(),
        catalog: &catalog,
        effects: &ChatEffects {
            platforms: vec![("slack", false)],
            on_request: Vec::new(),
        },
    };
    store.declare(req).await.unwrap().incident.reference
}

#[tokio::test]
async fn changes_made_while_the_headline_is_posted_are_shown_once_with_no_call_to_spare() {
    let h = harness().await;
    let r = declare_directly(&h.store, "Queue backlog").await;
    let arrived = h.fake.hold("chat.postMessage");
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(h.runner.clone().run(stop.clone()));
    tokio::time::timeout(Duration::from_secs(30), arrived.notified())
        .await
        .expect("the headline's post arrives");
    // Two changes while Slack takes the post: each enqueues a headline update.
    for severity in ["SEV3", "SEV1"] {
        set_severity(&h.store, r, severity).await;
    }
    h.fake.release("chat.postMessage");
    until_no_job_is_left(&h.store).await;
    stop.cancel();
    task.await.unwrap();

    let c = h.fake.channel_named("inc-1-queue-backlog").unwrap();
    assert_eq!(c.pins.len(), 1);
    let headline = &c.messages[0];
    assert!(
        headline.text.contains("SEV1"),
        "the headline shows the latest severity: {}",
        headline.text
    );
    assert!(c.topic.contains("SEV1"), "the topic too: {}", c.topic);
    // One update brought the headline up to date, beside the pin; the other, taking its turn,
    // found nothing left to show.
    assert_eq!(h.fake.calls_to("chat.update").len(), 1);
    assert_eq!(
        h.fake.calls_to("conversations.setTopic").len(),
        2,
        "the topic beside the post, then once more for the new severity"
    );
    let shown = h.incident_channel(1).await;
    assert_eq!(shown.topic.as_deref(), Some(c.topic.as_str()));
    assert!(shown.headline_digest.is_some());
    h.fake.assert_valid();
}

#[tokio::test]
async fn a_runner_killed_in_the_middle_leaves_one_channel_and_one_headline() {
    let h = harness().await;
    let r = declare_directly(&h.store, "Queue backlog").await;
    // The manual clock starts after the declaration, so that its jobs are due on it.
    let clock = Arc::new(ManualClock::new(klaxon_core::now()));

    // The first runner dies while Slack creates the channel: Slack made it, Klaxon never heard.
    let arrived = h.fake.hold("conversations.create");
    let doomed = Arc::new(runner(&h.store, &h.fake, clock.clone(), "doomed", false));
    let task = tokio::spawn(doomed.run(tokio_util::sync::CancellationToken::new()));
    tokio::time::timeout(Duration::from_secs(30), arrived.notified())
        .await
        .expect("the create call arrives");
    task.abort();
    let _ = task.await;
    h.fake.release("conversations.create");
    assert_eq!(
        h.fake
            .channels()
            .iter()
            .filter(|c| c.name.starts_with("inc-1-"))
            .count(),
        1
    );

    // Another runner takes over when the lease runs out, and adopts that channel.
    clock.advance(chrono::Duration::seconds(31));
    let survivor = Arc::new(runner(&h.store, &h.fake, clock.clone(), "survivor", false));
    // This time it dies posting the headline.
    let arrived = h.fake.hold("chat.postMessage");
    let task = tokio::spawn(
        survivor
            .clone()
            .run(tokio_util::sync::CancellationToken::new()),
    );
    tokio::time::timeout(Duration::from_secs(30), arrived.notified())
        .await
        .expect("the headline post arrives");
    task.abort();
    let _ = task.await;
    h.fake.release("chat.postMessage");

    clock.advance(chrono::Duration::seconds(31));
    let last = Arc::new(runner(&h.store, &h.fake, clock.clone(), "last", false));
    last.drain().await.unwrap();

    let channels: Vec<_> = h
        .fake
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-1-"))
        .collect();
    assert_eq!(
        channels.len(),
        1,
        "one channel: {:?}",
        channels.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    assert_eq!(channels[0].name, "inc-1-queue-backlog");
    assert_eq!(channels[0].messages.len(), 1, "one headline");
    assert!(channels[0].pins.contains(&channels[0].messages[0].ts));
    assert_eq!(
        h.store
            .chat_channel(r, "slack")
            .await
            .unwrap()
            .unwrap()
            .channel_id,
        channels[0].id
    );
    let jobs = h.store.incident_jobs(r).await.unwrap();
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{:?}",
        jobs.iter()
            .map(|j| (&j.key, j.state, j.attempts, &j.last_error))
            .collect::<Vec<_>>()
    );
    let creates = h.fake.calls_to("conversations.create");
    assert_eq!(
        creates.len(),
        1,
        "the rerun found the channel instead of creating another: {creates:?}"
    );
    h.fake.assert_valid();
}

impl Harness {
    /// A headline button pressed, in the real block_actions payload.
    async fn press(
        &self,
        user: &str,
        channel: &str,
        action: &str,
        value: &str,
        trigger: &str,
    ) -> u16 {
        let mut p: Value =
            serde_json::from_str(&shared("bolt-python/block_actions__body.json")).unwrap();
        p["user"]["id"] = json!(user);
        p["channel"]["id"] = json!(channel);
        p["container"]["channel_id"] = json!(channel);
        p["trigger_id"] = json!(trigger);
        p["response_url"] = json!(format!("{}/{trigger}", self.fake.hooks_url));
        p["actions"][0]["action_id"] = json!(format!("klaxon:{action}"));
        p["actions"][0]["value"] = json!(value);
        let body = serde_urlencoded::to_string([("payload", p.to_string())]).unwrap();
        self.send(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body,
        )
        .await
        .0
    }

    /// The update form submitted with these values.
    async fn submit_update(
        &self,
        user: &str,
        reference: &str,
        severity: &str,
        status: &str,
    ) -> (u16, String) {
        let mut p: Value =
            serde_json::from_str(&shared("bolt-python/view_submission__body.json")).unwrap();
        p["view"]["callback_id"] = json!("klaxon_update");
        p["view"]["private_metadata"] = json!(reference);
        p["user"]["id"] = json!(user);
        p["view"]["state"]["values"] = json!({
            "title": { "title": { "type": "plain_text_input", "value": "Checkout is down" } },
            "severity": { "severity": { "type": "static_select", "selected_option": { "value": severity } } },
            "status": { "status": { "type": "static_select", "selected_option": { "value": status } } },
            "summary": { "summary": { "type": "plain_text_input", "value": "Card payments fail at the gateway" } },
            "impact": { "impact": { "type": "plain_text_input", "value": null } },
        });
        let body = serde_urlencoded::to_string([("payload", p.to_string())]).unwrap();
        self.send(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body,
        )
        .await
    }
}

#[tokio::test]
async fn the_headline_buttons_and_the_update_form() {
    let h = harness().await;
    h.command("U1", "CRANDOM", "declare Checkout is down", "t1")
        .await;
    h.drain().await;
    let channel = h.incident_channel(1).await.channel_id;

    // "I'm the lead", pressed by someone else.
    assert_eq!(h.press("U2", &channel, "lead", "INC-1", "b1").await, 200);
    h.drain().await;
    let r = IncidentRef::new(1).unwrap();
    let i = h.store.incident(r).await.unwrap().unwrap();
    assert_eq!(
        h.store
            .person(i.lead().unwrap())
            .await
            .unwrap()
            .unwrap()
            .name,
        "Grace Hopper"
    );
    assert_eq!(
        h.fake.responses().pop().unwrap()["text"],
        "Grace Hopper made Grace Hopper the incident lead"
    );

    // "Acknowledge" moves it out of triage.
    h.press("U2", &channel, "ack", "INC-1", "b2").await;
    h.drain().await;
    assert_eq!(
        h.store.incident(r).await.unwrap().unwrap().status,
        "investigating"
    );

    // "Change severity" opens the update form, filled in.
    h.press("U2", &channel, "severity", "INC-1", "b3").await;
    h.drain().await;
    let view = h.fake.views().pop().expect("the update form");
    assert_eq!(
        (
            view["callback_id"].as_str(),
            view["private_metadata"].as_str()
        ),
        (Some("klaxon_update"), Some("INC-1"))
    );
    assert_eq!(
        h.fake.calls_to("views.open").last().unwrap()["trigger_id"],
        "b3"
    );
    assert_eq!(
        view["blocks"][0]["element"]["initial_value"],
        "Checkout is down"
    );
    assert_eq!(
        view["blocks"][2]["element"]["initial_option"]["value"],
        "investigating"
    );

    // A status the configuration does not allow shows in the form; nothing changes.
    let (status, answer) = h.submit_update("U2", "INC-1", "SEV1", "triage").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["response_action"], "errors");
    assert!(
        v["errors"]["status"]
            .as_str()
            .unwrap()
            .contains("cannot move from `investigating` to `triage`"),
        "{v}"
    );
    let (_, answer) = h.submit_update("U2", "INC-1", "SEV1", "identified").await;
    assert_eq!(answer, "");
    h.drain().await;
    let i = h.store.incident(r).await.unwrap().unwrap();
    assert_eq!(
        (i.severity.as_deref(), i.status.as_str(), i.summary.as_str()),
        (
            Some("SEV1"),
            "identified",
            "Card payments fail at the gateway"
        )
    );

    // "Resolve".
    h.press("U1", &channel, "resolve", "INC-1", "b4").await;
    h.drain().await;
    let i = h.store.incident(r).await.unwrap().unwrap();
    assert_eq!(i.status, "resolved");
    let headline = &h.fake.channel(&channel).unwrap().messages[0];
    let buttons = headline
        .blocks
        .as_ref()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["type"] == "actions");
    assert!(!buttons, "a resolved incident's headline has no buttons");
    h.fake.assert_valid();
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn socket_mode_handles_envelopes_acknowledges_them_and_reconnects_when_asked() {
    use klaxon_chat::slack::api::SlackApi;
    use klaxon_chat::slack::socket::SocketMode;
    let h = harness().await;
    let socket = SocketMode {
        api: SlackApi::new(&h.fake.api_url, "xapp-1-test"),
        inbound: SlackInbound {
            store: h.store.clone(),
            catalog: Arc::new(Catalog::default()),
            signing_secret: String::new(),
            wake: None,
        },
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(socket.run(stop.clone()));
    until("the connection", || h.fake.sockets_opened() == 1).await;

    let mut command: Value = serde_json::from_str(&shared(
        "python-slack-sdk/socket-mode/envelope_slash_commands__command.json",
    ))
    .unwrap();
    command["payload"]["text"] = json!("declare Checkout is down");
    command["payload"]["user_id"] = json!("U1");
    command["payload"]["channel_id"] = json!("CRANDOM");
    command["payload"]["response_url"] = json!(format!("{}/sock", h.fake.hooks_url));
    let id = command["envelope_id"].clone();
    assert!(h.fake.socket_send(&command));
    until("the acknowledgement", || {
        h.fake.acks().iter().any(|a| a["envelope_id"] == id)
    })
    .await;
    h.drain().await;
    assert!(h.fake.channel_named("inc-1-checkout-is-down").is_some());
    assert!(h.fake.responses()[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("Declared INC-1"));

    // Slack sends an envelope again when the acknowledgement was late: acknowledged, not redone.
    h.fake.socket_send(&command);
    until("the second acknowledgement", || {
        h.fake
            .acks()
            .iter()
            .filter(|a| a["envelope_id"] == id)
            .count()
            == 2
    })
    .await;
    assert_eq!(h.drain().await, 0);

    // Slack warns that it will close the connection: Klaxon opens the next one first.
    let mut warning: Value = serde_json::from_str(&shared(
        "python-slack-sdk/socket-mode/disconnect_message.json",
    ))
    .unwrap();
    warning["reason"] = json!("warning");
    h.fake.socket_send(&warning);
    until("the next connection", || h.fake.sockets_opened() == 2).await;
    assert_eq!(h.fake.calls_to("apps.connections.open").len(), 2);

    // On the new connection: a form with a mistake, answered in the acknowledgement.
    let mut form: Value =
        serde_json::from_str(&shared("bolt-python/view_submission__body.json")).unwrap();
    form["view"]["callback_id"] = json!("klaxon_declare");
    form["view"]["state"]["values"] =
        json!({ "title": { "title": { "type": "plain_text_input", "value": "" } } });
    let envelope = json!({ "envelope_id": "env-form", "type": "interactive", "payload": form, "accepts_response_payload": true });
    assert!(h.fake.socket_send(&envelope));
    until("the form's answer", || {
        h.fake.acks().iter().any(|a| a["envelope_id"] == "env-form")
    })
    .await;
    let ack = h
        .fake
        .acks()
        .into_iter()
        .find(|a| a["envelope_id"] == "env-form")
        .unwrap();
    assert_eq!(ack["payload"]["response_action"], "errors");
    assert!(ack["payload"]["errors"]["title"]
        .as_str()
        .unwrap()
        .starts_with("the title is empty"));

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("Socket Mode stops")
        .unwrap();
    h.fake.assert_valid();
}

#[tokio::test]
async fn a_private_incident_gets_a_private_channel_and_no_announcement() {
    let h = harness().await;
    let catalog = Catalog::default();
    let req = Request {
        command: Declare {
            title: "Credential leak".into(),
            private: true,
            ..Default::default()
        },
        actor: Actor::system("test"),
        at: klaxon_core::now(),
        catalog: &catalog,
        effects: &ChatEffects {
            platforms: vec![("slack", true)],
            on_request: Vec::new(),
        },
    };
    h.store.declare(req).await.unwrap();
    h.drain().await;
    let c = h
        .fake
        .channel_named("inc-1-credential-leak")
        .expect("the channel");
    assert!(c.private, "a private channel");
    assert_eq!(
        h.fake.calls_to("conversations.create")[0]["is_private"],
        "true"
    );
    assert!(
        h.fake.channel("CINCIDENTS").unwrap().messages.is_empty(),
        "no public announcement"
    );
    assert!(h
        .store
        .job_by_key("INC-1:slack:announcement")
        .await
        .unwrap()
        .is_none());
    h.fake.assert_valid();
}

#[tokio::test]
async fn only_peoples_messages_in_incident_channels_are_recorded() {
    let h = harness().await;
    h.command("U1", "CRANDOM", "declare Checkout is down", "t1")
        .await;
    h.drain().await;
    let channel = h.incident_channel(1).await.channel_id;
    let before = h
        .store
        .job_counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum::<u64>();
    h.event("Ev1", json!({ "type": "message", "channel": "CRANDOM", "user": "U1", "text": "can someone help", "ts": "1.1" })).await;
    h.event("Ev2", json!({ "type": "message", "channel": channel, "bot_id": "B1", "text": "can someone help", "ts": "1.2" })).await;
    h.event("Ev3", json!({ "type": "message", "subtype": "channel_join", "channel": channel, "user": "U2", "text": "joined", "ts": "1.3" })).await;
    let after = h
        .store
        .job_counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum::<u64>();
    assert_eq!(
        after, before,
        "chatter elsewhere, bots and joins write nothing"
    );
    h.event("Ev4", json!({ "type": "message", "channel": channel, "user": "U1", "text": "can someone help", "ts": "1.4" })).await;
    assert!(h
        .store
        .job_by_key("slack.event:Ev4")
        .await
        .unwrap()
        .is_some());
    h.fake.assert_valid();
}

/// An endpoint of the operator's: it checks Klaxon's signature and answers.
async fn plugin_endpoint() -> String {
    use axum::routing::post;
    async fn deploys(
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> (axum::http::StatusCode, String) {
        let ts = headers["x-klaxon-timestamp"].to_str().unwrap();
        let expected = klaxon_chat::commands::sign_plugin_request("plugin-secret", ts, &body);
        if headers["x-klaxon-signature"] != expected.as_str() {
            return (axum::http::StatusCode::UNAUTHORIZED, "bad signature".into());
        }
        let v: Value = serde_json::from_slice(&body).unwrap();
        let text = format!(
            "{} deploys to {} in the last hour (asked by {} for {})",
            3,
            v["args"].as_str().unwrap(),
            v["user"]["name"].as_str().unwrap(),
            v["incident"]["reference"].as_str().unwrap()
        );
        (
            axum::http::StatusCode::OK,
            json!({ "text": text, "public": true }).to_string(),
        )
    }
    let app = axum::Router::new()
        .route("/deploys", post(deploys))
        .route(
            "/broken",
            post(|| async {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "database is on fire",
                )
            }),
        )
        .route(
            "/slow",
            post(|| async {
                // The operator's endpoint taking its time: longer than the command's timeout.
                tokio::time::sleep(Duration::from_secs(5)).await;
                "too late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn custom_commands_run_steps_or_ask_the_operators_endpoint() {
    use klaxon_core::playbook::{CustomCommand, Span, Step, Target};
    let h = harness().await;
    let base = plugin_endpoint().await;
    let plugin = |name: &str, path: &str, secret: &str| CustomCommand {
        name: name.into(),
        description: format!("{name} from the endpoint"),
        usage: "<service>".into(),
        steps: vec![],
        url: Some(format!("{base}{path}")),
        secret: secret.into(),
        timeout: Some(Span(Duration::from_secs(1))),
    };
    let custom = vec![
        CustomCommand {
            name: "escalate".into(),
            description: "hand the incident to another team".into(),
            usage: "<team>".into(),
            steps: vec![
                Step::Message {
                    to: Target::Channel,
                    text: "{reference}: escalating to {args}.".into(),
                },
                Step::Note {
                    text: "Escalated to {args}".into(),
                },
            ],
            url: None,
            secret: String::new(),
            timeout: None,
        },
        plugin("deploys", "/deploys", "plugin-secret"),
        plugin("forged", "/deploys", "wrong-secret"),
        plugin("broken", "/broken", "s"),
        plugin("slow", "/slow", "s"),
    ];
    let runner = Arc::new(runner_with(
        &h.store,
        &h.fake,
        Arc::new(SystemClock),
        "custom",
        true,
        custom,
        None,
    ));
    h.command("U1", "CRANDOM", "declare Checkout is down", "t1")
        .await;
    runner.drain().await.unwrap();
    let channel = h.incident_channel(1).await.channel_id;
    let last = |h: &Harness| h.fake.responses().pop().unwrap();

    h.command("U1", &channel, "escalate payments", "t2").await;
    runner.drain().await.unwrap();
    assert_eq!(
        (
            last(&h)["response_type"].as_str(),
            last(&h)["text"].as_str()
        ),
        (Some("in_channel"), Some("INC-1: escalating to payments."))
    );
    let events = h
        .store
        .events(IncidentRef::new(1).unwrap(), 0, 100)
        .await
        .unwrap();
    assert!(
        matches!(&events.last().unwrap().kind, EventKind::NoteAdded { text } if text == "Escalated to payments")
    );

    h.command("U1", &channel, "deploys checkout", "t3").await;
    runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "3 deploys to checkout in the last hour (asked by Ada Lovelace for INC-1)"
    );
    assert_eq!(last(&h)["response_type"], "in_channel");
    h.command("U1", &channel, "forged checkout", "t4").await;
    runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "`forged`'s endpoint answered HTTP 401: bad signature"
    );
    h.command("U1", &channel, "broken", "t5").await;
    runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "`broken`'s endpoint answered HTTP 500: database is on fire"
    );
    h.command("U1", &channel, "slow", "t6").await;
    runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "`slow` got no answer from its endpoint within 1s; nothing was done by Klaxon."
    );
    assert_eq!(last(&h)["response_type"], "ephemeral");

    h.command("U1", "CRANDOM", "escalate payments", "t7").await;
    runner.drain().await.unwrap();
    assert_eq!(last(&h)["text"], "Run `escalate` in an incident's channel.");
    h.command("U1", &channel, "help", "t8").await;
    runner.drain().await.unwrap();
    let help = last(&h)["text"].as_str().unwrap().to_string();
    assert!(
        help.contains("`escalate <team>`: hand the incident to another team")
            && help.contains("`deploys <service>`: deploys from the endpoint"),
        "{help}"
    );
    h.fake.assert_valid();
}

/// Stands in for the integrations: records what it was asked, refuses one team.
struct Asked(std::sync::Mutex<Vec<String>>);

impl klaxon_store::ManualActions for Asked {
    fn page_team(
        &self,
        i: &klaxon_core::Incident,
        team: &str,
        by: &str,
    ) -> Result<Vec<klaxon_store::NewJob>, String> {
        if team == "marketing" {
            return Err("`marketing` is not a team Klaxon can page: use one of payments.".into());
        }
        self.0.lock().unwrap().push(format!("page {team} for {by}"));
        Ok(vec![klaxon_store::NewJob::new(
            format!("{}:page:{team}", i.reference),
            "test.page",
            json!({}),
        )])
    }

    fn post_status(
        &self,
        i: &klaxon_core::Incident,
        text: &str,
        by: &str,
        _: klaxon_core::Timestamp,
    ) -> Result<Vec<klaxon_store::NewJob>, String> {
        self.0
            .lock()
            .unwrap()
            .push(format!("status {text} for {by}"));
        Ok(vec![klaxon_store::NewJob::new(
            format!("{}:status", i.reference),
            "test.status",
            json!({ "text": text }),
        )])
    }
}

#[tokio::test]
async fn page_and_statuspage_ask_the_integrations() {
    let h = harness().await;
    let asked = Arc::new(Asked(Default::default()));
    let runner = Arc::new(runner_with(
        &h.store,
        &h.fake,
        Arc::new(SystemClock),
        "actions",
        true,
        vec![klaxon_core::playbook::CustomCommand {
            name: "page-engineer".into(),
            description: "page a team's on-call engineer".into(),
            usage: "<team>".into(),
            steps: vec![klaxon_core::playbook::Step::PageTeam {
                team: "{args}".into(),
            }],
            url: None,
            secret: String::new(),
            timeout: None,
        }],
        Some(asked.clone()),
    ));
    h.command("U1", "CRANDOM", "declare Checkout is down", "t1")
        .await;
    runner.drain().await.unwrap();
    let channel = h.incident_channel(1).await.channel_id;
    let last = |h: &Harness| h.fake.responses().pop().unwrap();

    h.command("U1", &channel, "page payments", "t2").await;
    runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "Paging payments: the timeline will say when it is done."
    );
    h.command("U1", &channel, "page marketing", "t3").await;
    runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "`marketing` is not a team Klaxon can page: use one of payments."
    );
    h.command(
        "U1",
        &channel,
        "statuspage \"We are looking into failed payments.\"",
        "t4",
    )
    .await;
    runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "Posting to the status page: “We are looking into failed payments.”. The timeline will say when it is there."
    );
    h.command("U1", &channel, "page-engineer dba", "t5").await;
    runner.drain().await.unwrap();
    assert_eq!(last(&h)["text"], "Paging dba.");
    assert_eq!(last(&h)["response_type"], "in_channel");
    h.command("U1", &channel, "page-engineer marketing", "t6")
        .await;
    runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "`marketing` is not a team Klaxon can page: use one of payments."
    );
    assert_eq!(last(&h)["response_type"], "ephemeral");
    assert_eq!(
        *asked.0.lock().unwrap(),
        vec![
            "page payments for Ada Lovelace",
            "status We are looking into failed payments. for Ada Lovelace",
            "page dba for Ada Lovelace"
        ]
    );
    let job = h
        .store
        .job_by_key("INC-1:status")
        .await
        .unwrap()
        .expect("the job");
    assert_eq!(job.payload["text"], "We are looking into failed payments.");
    assert!(h
        .store
        .job_by_key("INC-1:page:payments")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn people_are_found_by_email_for_invitations() {
    use klaxon_chat::ChatPlatform;
    let h = harness().await;
    let slack = SlackPlatform::new(&h.fake.api_url, TOKEN);
    assert_eq!(
        slack
            .user_by_email("grace@example.test")
            .await
            .unwrap()
            .as_deref(),
        Some("U2")
    );
    assert_eq!(
        slack.user_by_email("nobody@example.test").await.unwrap(),
        None
    );
    h.fake.assert_valid();
}

/// Stands in for the paging service.
struct Rota;

#[async_trait::async_trait]
impl klaxon_chat::commands::OnCall for Rota {
    async fn on_call(&self, team: &str) -> Result<Vec<String>, String> {
        match team {
            "payments" => Ok(vec!["Grace Hopper (grace@example.test)".into()]),
            "quiet" => Ok(vec![]),
            other => Err(format!(
                "`{other}` is not a team Klaxon knows: use one of payments, quiet."
            )),
        }
    }
}

#[tokio::test]
async fn who_is_on_call_anywhere() {
    let h = harness().await;
    let last = |h: &Harness| h.fake.responses().pop().unwrap();
    h.command("U1", "CRANDOM", "oncall payments", "t1").await;
    h.runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "On call for payments: Grace Hopper (grace@example.test)."
    );
    assert_eq!(last(&h)["response_type"], "ephemeral");
    h.command("U1", "CRANDOM", "oncall quiet", "t2").await;
    h.runner.drain().await.unwrap();
    assert_eq!(last(&h)["text"], "Nobody is on call for quiet right now.");
    h.command("U1", "CRANDOM", "oncall marketing", "t3").await;
    h.runner.drain().await.unwrap();
    assert_eq!(
        last(&h)["text"],
        "`marketing` is not a team Klaxon knows: use one of payments, quiet."
    );
}

#[tokio::test]
async fn past_the_rate_tier_a_call_is_deferred_holding_its_slot_not_failed() {
    use klaxon_chat::slack::api::{SlackApi, MAX_PACE, PACED};
    let h = harness().await;
    let api = Arc::new(SlackApi::new(&h.fake.api_url, TOKEN));
    // users.info is Tier 4: 100 a minute, in a burst. 100 + 8 calls at once: the 101st to 108th
    // wait in the call (0.6 s each, at most MAX_PACE), the others are deferred.
    let mut calls = Vec::new();
    for n in 0..120 {
        let api = api.clone();
        calls.push(tokio::spawn(async move {
            api.call("users.info", &[("user", format!("U{n}"))]).await
        }));
    }
    let mut deferred = Vec::new();
    for (n, c) in calls.into_iter().enumerate() {
        if let Err(e) = c.await.unwrap() {
            if e.code == PACED {
                deferred.push((n, e.retry_after.unwrap()));
            }
        }
    }
    assert!(!deferred.is_empty() && deferred.len() < 20, "{deferred:?}");
    assert!(
        deferred.iter().all(|(_, wait)| *wait > MAX_PACE),
        "{deferred:?}"
    );
    // As a job error it defers the job instead of failing an attempt.
    let (n, wait) = deferred[0];
    let e: klaxon_chat::ChatError = klaxon_chat::slack::api::ApiError {
        method: "users.info".into(),
        code: PACED.into(),
        retryable: true,
        retry_after: Some(wait),
    }
    .into();
    assert!(
        matches!(e, klaxon_chat::ChatError::Deferred { .. }),
        "{e:?}"
    );
    // The deferred call, back when its slot is due, goes without waiting again.
    let due = std::time::Instant::now() + wait;
    while std::time::Instant::now() < due {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    // (U{n} is nobody the fake knows: Slack's own answer, not Klaxon's pacing.)
    let back = api.call("users.info", &[("user", format!("U{n}"))]).await;
    assert_eq!(back.unwrap_err().code, "user_not_found");
    assert!(started.elapsed() < MAX_PACE, "it used its held slot");
}
