//! The real binary with Slack configured, against the fake Slack Web API: a signed
//! `/incident declare`, the server killed (SIGKILL) while Slack creates the channel, then
//! restarted on the same data. The channel, the pinned headline, the announcement and the
//! bookmark must each exist exactly once.

use std::process::Child;
use std::time::{Duration, Instant};

use klaxon_chat::slack::fake::{FakeSlack, BOT};
use klaxon_chat::slack::signature;

mod common;

const SECRET: &str = "test-signing-secret";

fn start(dir: &std::path::Path, fake: &FakeSlack) -> (Child, String) {
    let (child, addr, _) = common::serve(
        dir,
        &[
            ("KLAXON_SLACK_API_URL", fake.api_url.as_str()),
            ("KLAXON_SLACK_BOT_TOKEN", "xoxb-e2e"),
            ("KLAXON_SLACK_SIGNING_SECRET", SECRET),
            ("KLAXON_SLACK_INCIDENTS_CHANNEL", "CINCIDENTS"),
            // A crashed replica's jobs are taken over after this.
            ("KLAXON_JOBS_LEASE_SECONDS", "10"),
            ("KLAXON_AUTH_ADMIN_PASSWORD", "a long enough password"),
        ],
    );
    (child, addr)
}

async fn wait_for(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !check() {
        if Instant::now() >= until {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_mobilising_finishes_the_job_once_after_a_restart() {
    let fake = FakeSlack::start("xoxb-e2e").await;
    fake.add_user("U1", "Ada Lovelace", "ada@example.test");
    fake.add_channel("CINCIDENTS", "incidents", &[BOT]);
    let dir = tempfile::tempdir().unwrap();
    let (mut first, addr) = start(dir.path(), &fake);

    let arrived = fake.hold("conversations.create");
    let body = serde_urlencoded::to_string([
        ("command", "/incident"),
        ("text", "declare Checkout is down"),
        ("user_id", "U1"),
        ("channel_id", "CRANDOM"),
        ("trigger_id", "999.888.e2e"),
        ("response_url", &format!("{}/e2e", fake.hooks_url)),
    ])
    .unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            signature::sign(SECRET, &ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "acknowledged at once");

    tokio::time::timeout(Duration::from_secs(30), arrived.notified())
        .await
        .expect("Klaxon asks Slack for the channel");
    // Slack has made the channel; Klaxon dies before it hears so.
    first.kill().unwrap();
    first.wait().unwrap();
    fake.release("conversations.create");
    assert_eq!(
        fake.channels()
            .iter()
            .filter(|c| c.name.starts_with("inc-1-"))
            .count(),
        1
    );

    let (mut second, _) = start(dir.path(), &fake);
    wait_for(
        "the mobilisation to finish",
        Duration::from_secs(60),
        || {
            let channel = fake.channel_named("inc-1-checkout-is-down");
            let announced = fake
                .channel("CINCIDENTS")
                .is_some_and(|c| !c.messages.is_empty());
            channel.is_some_and(|c| !c.pins.is_empty() && !c.bookmarks.is_empty()) && announced
        },
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();

    let channels: Vec<_> = fake
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-1-"))
        .collect();
    assert_eq!(channels.len(), 1, "one channel");
    let c = &channels[0];
    assert_eq!(c.messages.len(), 1, "one headline");
    assert_eq!(c.pins.len(), 1);
    assert_eq!(c.bookmarks.len(), 1, "one bookmark");
    assert!(c.members.contains("U1"));
    assert_eq!(
        fake.channel("CINCIDENTS").unwrap().messages.len(),
        1,
        "one announcement"
    );
    assert_eq!(
        fake.calls_to("conversations.create").len(),
        1,
        "the channel Slack made was adopted, not made again"
    );
    let replies = fake.responses();
    assert!(
        !replies.is_empty()
            && replies[0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Declared INC-1"),
        "{replies:?}"
    );
    fake.assert_valid();
}
