//! The real binary with Matrix configured, against a real Synapse that `.ci/run` starts
//! (`KLAXON_TEST_SYNAPSE_URL`, with the users `klaxon` and `alice` registered): a declaration
//! makes a room with the pinned headline and an announcement; `!incident severity SEV1` typed by
//! a second Matrix user edits the headline and lands on the timeline; a command typed while
//! Klaxon is down runs once after the restart, and none runs twice.
//!
//! `#[ignore]` and named `peer_…`: it needs Synapse.

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: .ci/run starts Synapse and sets it"))
}

struct Matrix {
    base: String,
    token: String,
    user: String,
    http: reqwest::Client,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Matrix {
    async fn login(base: &str, user: &str, password: &str) -> Matrix {
        let http = reqwest::Client::new();
        let v: Value = http
            .post(format!("{base}/_matrix/client/v3/login"))
            .json(&json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Matrix {
            base: base.to_string(),
            token: v["access_token"].as_str().expect("a token").to_string(),
            user: v["user_id"].as_str().unwrap().to_string(),
            http,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/_matrix/client/v3{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn say(&self, room: &str, text: &str, txn: &str) -> String {
        let (s, v) = self
            .call(
                reqwest::Method::PUT,
                &format!("/rooms/{}/send/m.room.message/{txn}", enc(room)),
                Some(json!({"msgtype": "m.text", "body": text})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["event_id"].as_str().unwrap().to_string()
    }

    /// The room's latest events, oldest first.
    async fn events(&self, room: &str) -> Vec<Value> {
        let (_, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/rooms/{}/messages?dir=b&limit=200", enc(room)),
                None,
            )
            .await;
        let mut list = v["chunk"].as_array().cloned().unwrap_or_default();
        list.reverse();
        list
    }
}

/// Kills the server when dropped, so that a failing test leaves nothing running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, base: &str, incidents_room: &str) -> (Server, String) {
    let password = env("KLAXON_TEST_SYNAPSE_BOT_PASSWORD");
    let config = dir.join("klaxon.toml").display().to_string();
    let (child, addr, _) = common::serve(
        dir,
        &[
            ("KLAXON_MATRIX_HOMESERVER_URL", base),
            ("KLAXON_MATRIX_USER_ID", "@klaxon:localhost"),
            ("KLAXON_MATRIX_PASSWORD", password.as_str()),
            ("KLAXON_MATRIX_INCIDENTS_ROOM", incidents_room),
            ("KLAXON_JOBS_LEASE_SECONDS", "10"),
            ("KLAXON_CONFIG", config.as_str()),
            ("KLAXON_AUTH_ADMIN_PASSWORD", "a long enough password"),
        ],
    );
    (Server(child), addr)
}

/// Waits for `check` to give something, up to `deadline`.
async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(t) = check().await {
            return t;
        }
        if Instant::now() >= until {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The incident's timeline, through the API.
async fn timeline_of(http: &reqwest::Client, addr: &str, token: &str, reference: &str) -> Value {
    http.get(format!(
        "http://{addr}/api/v1/incidents/{reference}/timeline"
    ))
    .bearer_auth(token)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

fn replies_to<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Synapse, which .ci/run starts"]
async fn peer_matrix_rooms_commands_and_a_restart() {
    let base = env("KLAXON_TEST_SYNAPSE_URL");
    let bot = Matrix::login(&base, "klaxon", &env("KLAXON_TEST_SYNAPSE_BOT_PASSWORD")).await;
    let alice = Matrix::login(&base, "alice", &env("KLAXON_TEST_SYNAPSE_ALICE_PASSWORD")).await;
    // The announcements room, made by the bot's account, which Alice joins.
    let (_, v) = bot
        .call(
            reqwest::Method::POST,
            "/createRoom",
            Some(json!({"name": "incidents", "preset": "public_chat"})),
        )
        .await;
    let incidents = v["room_id"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    // A playbook that writes to whoever becomes comms lead: a direct message on Matrix.
    std::fs::write(
        dir.path().join("klaxon.toml"),
        "[incidents]\ndefault_playbooks = false\n\
         [[playbooks]]\nname = \"comms-brief\"\ntrigger = { role_assigned = \"comms\" }\n\
         steps = [{ message = { to = { role = \"comms\" }, text = \"You are the comms lead of {reference}: {title}.\" } }]\n",
    )
    .unwrap();
    let (klaxon, addr) = start(dir.path(), &base, &incidents);
    let token = {
        let out = common::klaxon()
            .args(["token", "create", "--name", "e2e", "--role", "responder"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace()
            .find(|w| w.starts_with("klx_"))
            .expect("a token")
            .to_string()
    };
    let http = reqwest::Client::new();
    let unique = chrono::Utc::now().timestamp_millis();
    let title = format!("Checkout is down {unique}");
    let res = http
        .post(format!("http://{addr}/api/v1/incidents"))
        .bearer_auth(&token)
        .json(&json!({"title": title, "severity": "SEV3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let declared: Value = res.json().await.unwrap();
    let reference = declared["reference"].as_str().unwrap().to_string();

    // The room's alias, from the link on the incident, and the room with the pinned headline.
    let alias: String = wait_for(
        "the room's link on the incident",
        Duration::from_secs(60),
        || {
            let http = &http;
            let (addr, reference, token) = (&addr, &reference, &token);
            async move {
                let v: Value = http
                    .get(format!("http://{addr}/api/v1/incidents/{reference}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                v["links"].as_object()?.values().find_map(|l| {
                    // The channel's link is to its alias (#…); the announcement's to a message.
                    let alias = l["url"].as_str()?.strip_prefix("https://matrix.to/#/#")?;
                    Some(format!("#{alias}"))
                })
            }
        },
    )
    .await;
    assert!(
        alias.starts_with("#inc-1-checkout-is-down") && alias.ends_with(":localhost"),
        "{alias}"
    );
    let room: String = wait_for("the incident's room", Duration::from_secs(60), || {
        let bot = &bot;
        let alias = alias.clone();
        async move {
            let (s, v) = bot
                .call(
                    reqwest::Method::GET,
                    &format!("/directory/room/{}", enc(&alias)),
                    None,
                )
                .await;
            (s == 200).then(|| v["room_id"].as_str().unwrap().to_string())
        }
    })
    .await;
    let headline: String = wait_for("the pinned headline", Duration::from_secs(60), || {
        let bot = &bot;
        let room = room.clone();
        async move {
            let (s, v) = bot
                .call(
                    reqwest::Method::GET,
                    &format!("/rooms/{}/state/m.room.pinned_events", enc(&room)),
                    None,
                )
                .await;
            (s == 200)
                .then(|| v["pinned"][0].as_str().map(String::from))
                .flatten()
        }
    })
    .await;
    let events = bot.events(&room).await;
    let first = events
        .iter()
        .find(|e| e["event_id"] == headline.as_str())
        .expect("the headline");
    assert!(
        first["content"]["body"].as_str().unwrap().contains(&title),
        "{first}"
    );
    assert_eq!(first["content"]["format"], "org.matrix.custom.html");
    // The announcement.
    let announced = bot.events(&incidents).await;
    assert!(
        announced.iter().any(|e| e["sender"] == bot.user
            && e["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains(&reference))),
        "{announced:?}"
    );

    // Alice joins and raises the severity.
    let (s, v) = alice
        .call(
            reqwest::Method::POST,
            &format!("/join/{}", enc(&alias)),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let command = alice
        .say(&room, "!incident severity SEV1", &format!("t1-{unique}"))
        .await;
    wait_for(
        "the headline edited to SEV1",
        Duration::from_secs(60),
        || {
            let bot = &bot;
            let room = room.clone();
            let headline = headline.clone();
            async move {
                let events = bot.events(&room).await;
                events
                    .iter()
                    .any(|e| {
                        e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                            && e["content"]["m.relates_to"]["event_id"] == headline.as_str()
                            && e["content"]["m.new_content"]["body"]
                                .as_str()
                                .is_some_and(|b| b.contains("SEV1"))
                    })
                    .then_some(())
            }
        },
    )
    .await;
    let timeline = timeline_of(&http, &addr, &token, &reference).await;
    let change = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["type"] == "field_changed" && e["text"].as_str().is_some_and(|t| t.contains("SEV1"))
        })
        .expect("the severity change on the timeline");
    assert_eq!(change["actor"]["name"], "alice", "{change}");

    // Klaxon goes down; Alice types a command meanwhile; Klaxon comes back.
    drop(klaxon);
    let while_down = alice
        .say(
            &room,
            "!incident status investigating",
            &format!("t2-{unique}"),
        )
        .await;
    let (again, addr) = start(dir.path(), &base, &incidents);
    wait_for(
        "the command typed while Klaxon was down",
        Duration::from_secs(60),
        || {
            let http = &http;
            let (addr, reference, token) = (&addr, &reference, &token);
            async move {
                let v: Value = http
                    .get(format!("http://{addr}/api/v1/incidents/{reference}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (v["status"] == "investigating").then_some(())
            }
        },
    )
    .await;
    // Each command answered once, the first not run again.
    let events: Vec<Value> = wait_for(
        "the answer to the second command",
        Duration::from_secs(30),
        || {
            let bot = &bot;
            let room = room.clone();
            let while_down = while_down.clone();
            async move {
                let events = bot.events(&room).await;
                (!replies_to(&events, &while_down).is_empty()).then_some(events)
            }
        },
    )
    .await;
    assert_eq!(
        replies_to(&events, &command).len(),
        1,
        "the first command answered once: {:#?}",
        replies_to(&events, &command)
    );
    assert_eq!(replies_to(&events, &while_down).len(), 1);
    let timeline = timeline_of(&http, &addr, &token, &reference).await;
    let severity_changes = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["type"] == "field_changed" && e["text"].as_str().is_some_and(|t| t.contains("SEV1"))
        })
        .count();
    assert_eq!(severity_changes, 1, "not run twice");

    // Alice's message, given the timeline reaction, goes on the timeline.
    let said = alice
        .say(
            &room,
            "The cache node restarted at 10:02",
            &format!("t3-{unique}"),
        )
        .await;
    let (s, v) = alice
        .call(
            reqwest::Method::PUT,
            &format!("/rooms/{}/send/m.reaction/t4-{unique}", enc(&room)),
            Some(json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": said, "key": "📌"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wait_for(
        "the message on the timeline",
        Duration::from_secs(60),
        || {
            let http = &http;
            let (addr, reference, token) = (&addr, &reference, &token);
            async move {
                let v: Value = http
                    .get(format!(
                        "http://{addr}/api/v1/incidents/{reference}/timeline"
                    ))
                    .bearer_auth(token)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                v["events"]
                    .as_array()?
                    .iter()
                    .any(|e| {
                        e["type"] == "chat_message_captured"
                            && e["text"]
                                .as_str()
                                .is_some_and(|t| t.contains("The cache node restarted"))
                    })
                    .then_some(())
            }
        },
    )
    .await;

    // Alice takes the comms role: the playbook writes to her directly, in the room of two the
    // bot lists for her in its `m.direct` account data.
    alice
        .say(&room, "!incident role comms me", &format!("t5-{unique}"))
        .await;
    let text = format!("You are the comms lead of {reference}: {title}.");
    let dm: String = wait_for("a direct message", Duration::from_secs(60), || {
        let (alice, bot, text) = (&alice, &bot, &text);
        async move {
            let (_, direct) = bot
                .call(
                    reqwest::Method::GET,
                    &format!("/user/{}/account_data/m.direct", enc(&bot.user)),
                    None,
                )
                .await;
            let dm = direct[&alice.user][0].as_str()?.to_string();
            // Joining is idempotent: invited the first time, already there after.
            let (s, _) = alice
                .call(
                    reqwest::Method::POST,
                    &format!("/join/{}", enc(&dm)),
                    Some(json!({})),
                )
                .await;
            if s != 200 {
                return None;
            }
            let said = alice.events(&dm).await;
            said.iter()
                .any(|e| e["sender"] == bot.user && e["content"]["body"] == text.as_str())
                .then_some(dm)
        }
    })
    .await;
    assert_ne!(dm, room, "not in the incident's room");

    // Resolving and closing the incident closes the room.
    for status in ["resolved", "closed"] {
        let res = http
            .post(format!("http://{addr}/api/v1/incidents/{reference}/status"))
            .bearer_auth(&token)
            .json(&json!({"status": status}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    wait_for("the room closed", Duration::from_secs(60), || {
        let bot = &bot;
        let room = room.clone();
        async move {
            let (_, v) = bot
                .call(
                    reqwest::Method::GET,
                    &format!("/rooms/{}/state/m.room.name", enc(&room)),
                    None,
                )
                .await;
            v["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("(closed)"))
                .then_some(())
        }
    })
    .await;
    drop(again);
}
