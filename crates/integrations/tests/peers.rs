//! The integrations against real peers, which `.ci/run` starts: Prism 5.16 mocks built from
//! each vendor's own OpenAPI document in `../shared/specs` (every request must satisfy it:
//! Prism's `sl-violations` header names nothing in the request and it answers with no error
//! status; Prism runs without `--errors`, because some specs' own response examples break
//! their schemas and `--errors` turns those into 500s), MailDev for
//! SMTP (the mail that arrived is read back over its HTTP API), and a local receiver that
//! verifies the webhook signatures.
//!
//! Marked `#[ignore]` (they need the peers) and named `peer_…`, so that the PostgreSQL step's
//! `--ignored` run leaves them to the step that starts the peers.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use klaxon_core::Declare;
use klaxon_integrations::config::*;
use klaxon_integrations::Settings;
use klaxon_store::JobState;
use serde_json::json;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: .ci/run starts the peers and sets it"))
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Peers {
    pd: PrismProxy,
    pd_rest: PrismProxy,
    opsgenie: PrismProxy,
    jira: PrismProxy,
    github: PrismProxy,
    statuspage: PrismProxy,
    hook: FakeVendor,
    /// Webhook deliveries whose signature did not verify.
    forged: Arc<Mutex<u32>>,
    maildev: String,
    settings: Settings,
}

async fn peers() -> Peers {
    let pd = PrismProxy::start(&env("KLAXON_PRISM_PAGERDUTY_EVENTS"), |_| None).await;
    let pd_rest = PrismProxy::start(&env("KLAXON_PRISM_PAGERDUTY_REST"), |_| None).await;
    let opsgenie = PrismProxy::start(&env("KLAXON_PRISM_OPSGENIE"), |_| None).await;
    // Prism's transitions are random; a real Jira offers the workflow's own.
    let jira = PrismProxy::start_with(&env("KLAXON_PRISM_JIRA"), true, |s| {
        (s.method == "GET" && s.path.ends_with("/transitions"))
            .then(|| ok(json!({"transitions": [{"id": "31", "name": "Done"}]})))
    })
    .await;
    let github = PrismProxy::start(&env("KLAXON_PRISM_GITHUB"), |_| None).await;
    let statuspage = PrismProxy::start(&env("KLAXON_PRISM_STATUSPAGE"), |_| None).await;
    let forged = Arc::new(Mutex::new(0));
    let f2 = forged.clone();
    let hook = FakeVendor::start(move |s, _| {
        let ts: i64 = s
            .headers
            .get("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let good = klaxon_integrations::webhooks::verify(
            SECRET,
            s.headers
                .get("webhook-id")
                .map(String::as_str)
                .unwrap_or(""),
            ts,
            &s.body,
            s.headers
                .get("webhook-signature")
                .map(String::as_str)
                .unwrap_or(""),
        );
        if good {
            (204, vec![], String::new())
        } else {
            *f2.lock().unwrap() += 1;
            (401, vec![], "{}".into())
        }
    })
    .await;
    // Mail is told apart by subject, not cleared: MailDev can crash when its mail is deleted
    // while another test's message is being written.
    let maildev = env("KLAXON_MAILDEV_URL");
    let settings = Settings {
        pagerduty: PagerDutyConfig {
            events_url: pd.url.clone(),
            api_url: pd_rest.url.clone(),
            routing_key: "e93facc04764012d7bfb002500d5d1a6".into(),
            api_token: "y_NbAkKc66ryYTWUXYEu".into(),
            from_email: "oncall-bot@example.test".into(),
            ..Default::default()
        },
        opsgenie: OpsgenieConfig {
            api_url: opsgenie.url.clone(),
            api_key: "eb243592-faa2-4ba2-a551q-1afdf565c889".into(),
            ..Default::default()
        },
        jira: JiraConfig {
            url: jira.url.clone(),
            email: "bot@example.test".into(),
            api_token: "tok".into(),
            project: "OPS".into(),
            ..Default::default()
        },
        github: GithubConfig {
            api_url: github.url.clone(),
            token: "ghp_test".into(),
            repository: "acme/ops".into(),
            ..Default::default()
        },
        statuspage: StatuspageConfig {
            api_url: statuspage.url.clone(),
            api_key: "sp-key".into(),
            page_id: "kctbh9vrtdwd".into(),
            components: [("checkout".to_string(), "8kbf7d35c070".to_string())].into(),
            ..Default::default()
        },
        smtp: SmtpConfig {
            host: "127.0.0.1".into(),
            port: env("KLAXON_MAILDEV_SMTP_PORT").parse().unwrap(),
            security: "plain".into(),
            from: "Klaxon <klaxon@example.test>".into(),
            recipients: vec![Recipients {
                to: vec!["stakeholders@example.test".into()],
                severity_at_least: "SEV2".into(),
                services: vec![],
            }],
            ..Default::default()
        },
        webhooks: vec![WebhookConfig {
            url: format!("{}/klaxon", hook.url),
            secret: SECRET.into(),
            events: vec!["declared".into(), "status_changed".into()],
        }],
    };
    Peers {
        pd,
        pd_rest,
        opsgenie,
        jira,
        github,
        statuspage,
        hook,
        forged,
        maildev,
        settings,
    }
}

/// The mail MailDev holds whose subject mentions `about`.
async fn mail(maildev: &str, about: &str) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> = reqwest::get(format!("{maildev}/email"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.into_iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(about)))
        .collect()
}

/// A title no other run has used, so that its mail is its own.
fn unique(title: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{title} {n}")
}

#[tokio::test]
#[ignore = "needs the peers .ci/run starts (Prism, MailDev)"]
async fn peer_one_customer_facing_sev1_reaches_everyone_once_and_resolving_resolves_each() {
    let p = peers().await;
    let w = World::new(p.settings.clone()).await;
    let runner = w.runner();
    let title = unique("Checkout is down");
    let r = w
        .declare(Declare {
            labels: [("customer-facing".to_string(), "yes".to_string())].into(),
            summary: "Payments fail at the last step".into(),
            ..sev1(&title)
        })
        .await;
    runner.drain().await.unwrap();
    let stuck: Vec<String> = w
        .jobs(r)
        .await
        .into_iter()
        .filter(|j| j.state != JobState::Succeeded)
        .map(|j| format!("{} {:?} {:?}", j.key, j.state, j.last_error))
        .collect();
    assert!(stuck.is_empty(), "{stuck:?}");

    assert_eq!(p.pd.requests(), vec!["POST /enqueue"]);
    assert_eq!(p.pd.bodies("POST", "/enqueue")[0]["dedup_key"], "INC-1");
    assert_eq!(p.opsgenie.requests(), vec!["POST /v2/alerts"]);
    assert_eq!(p.jira.requests(), vec!["POST /rest/api/3/issue"]);
    assert_eq!(p.github.requests(), vec!["POST /repos/acme/ops/issues"]);
    assert_eq!(
        p.statuspage.requests(),
        vec!["POST /pages/kctbh9vrtdwd/incidents"]
    );
    let mails = mail(&p.maildev, &title).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0]["subject"],
        format!("[SEV1] INC-1 declared: {title}")
    );
    assert_eq!(mails[0]["to"][0]["address"], "stakeholders@example.test");
    assert!(mails[0]["html"]
        .as_str()
        .unwrap()
        .contains("https://klaxon.test/incidents/INC-1"));
    assert!(mails[0]["text"]
        .as_str()
        .unwrap()
        .contains("Summary: Payments fail at the last step"));
    assert_eq!(p.hook.seen().len(), 1);

    w.run(r, status("resolved")).await;
    runner.drain().await.unwrap();
    let stuck: Vec<String> = w
        .jobs(r)
        .await
        .into_iter()
        .filter(|j| j.state != JobState::Succeeded)
        .map(|j| format!("{} {:?} {:?}", j.key, j.state, j.last_error))
        .collect();
    assert!(stuck.is_empty(), "{stuck:?}");
    assert_eq!(p.pd.requests(), vec!["POST /enqueue", "POST /enqueue"]);
    assert_eq!(
        p.pd.bodies("POST", "/enqueue")[1]["event_action"],
        "resolve"
    );
    assert_eq!(
        p.opsgenie.requests(),
        vec!["POST /v2/alerts", "POST /v2/alerts/INC-1/close"]
    );
    let jira = p.jira.requests();
    assert_eq!(jira.len(), 4, "{jira:?}");
    assert!(
        jira[1].ends_with("/comment") && jira[3].ends_with("/transitions"),
        "{jira:?}"
    );
    let gh = p.github.requests();
    assert_eq!(gh.len(), 3, "{gh:?}");
    assert!(
        gh[1].starts_with("POST") && gh[1].ends_with("/comments") && gh[2].starts_with("PATCH"),
        "{gh:?}"
    );
    let sp = p.statuspage.requests();
    assert_eq!(sp.len(), 2, "{sp:?}");
    assert!(
        sp[1].starts_with("PATCH /pages/kctbh9vrtdwd/incidents/"),
        "{sp:?}"
    );
    assert_eq!(
        p.statuspage.bodies("PATCH", "")[0]["incident"]["status"],
        "resolved"
    );
    let mails = mail(&p.maildev, &title).await;
    assert_eq!(mails.len(), 2);
    assert!(mails
        .iter()
        .any(|m| m["subject"] == format!("[resolved] INC-1: {title}")));
    assert_eq!(p.hook.seen().len(), 2);
    assert_eq!(
        *p.forged.lock().unwrap(),
        0,
        "every webhook signature verified"
    );
}

#[tokio::test]
#[ignore = "needs the peers .ci/run starts (Prism, MailDev)"]
async fn peer_integrations_test_checks_every_integration() {
    let p = peers().await;
    let checks = klaxon_integrations::test::run_all(&p.settings).await;
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(checks.len(), 8, "{checks:?}");
    assert_eq!(p.pd_rest.requests(), vec!["GET /abilities"]);
    assert_eq!(
        p.jira.requests(),
        vec!["GET /rest/api/3/myself", "GET /rest/api/3/project/OPS"]
    );
    assert_eq!(p.github.requests(), vec!["GET /repos/acme/ops"]);
    assert_eq!(p.statuspage.requests(), vec!["GET /pages/kctbh9vrtdwd"]);
    assert_eq!(p.opsgenie.requests(), vec!["GET /v2/alerts"]);
    let ids =
        klaxon_integrations::pagerduty::on_call(&p.settings.pagerduty, Some("PSCHED1"), None).await;
    assert!(ids.is_ok(), "{ids:?}");
    assert_eq!(p.pd_rest.requests(), vec!["GET /abilities", "GET /oncalls"]);
}

#[tokio::test]
#[ignore = "needs the peers .ci/run starts (Prism, MailDev)"]
async fn peer_prism_catches_a_request_that_breaks_the_specification() {
    // The checks above are worth something only if Prism does refuse a bad request.
    let p = peers().await;
    reqwest::Client::new()
        .post(format!("{}/enqueue", p.pd.url))
        .json(&json!({ "routing_key": "x", "event_action": "explode" }))
        .send()
        .await
        .unwrap();
    let seen = p.pd.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (_, status, violations) = &seen[0];
    assert!(*status >= 400, "{status}");
    let ours = request_violations(violations);
    assert_eq!(ours.len(), 1, "{violations}");
    assert_eq!(
        ours[0]["location"],
        json!(["request", "body", "event_action"])
    );
}

#[tokio::test]
#[ignore = "needs the peers .ci/run starts (Prism, MailDev)"]
async fn peer_paging_a_team_asks_pagerduty_for_responders_as_its_spec_says() {
    use klaxon_store::ManualActions;
    let p = peers().await;
    // Prism's lists are random; answer as PagerDuty would for the alert Klaxon opened.
    let rest = PrismProxy::start(&env("KLAXON_PRISM_PAGERDUTY_REST"), |s| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/incidents") => Some(ok(json!({"incidents": [{"id": "PT4KHLK"}]}))),
            ("GET", "/users") => Some(ok(json!({"users": [{"id": "PXPGF42"}]}))),
            _ => None,
        }
    })
    .await;
    let mut settings = Settings {
        pagerduty: p.settings.pagerduty.clone(),
        ..Default::default()
    };
    settings.pagerduty.api_url = rest.url.clone();
    settings.pagerduty.teams = [(
        "payments".to_string(),
        Team {
            escalation_policy: "PANZZEQ".into(),
            routing_key: String::new(),
        },
    )]
    .into();
    let w = World::new(settings).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let i = w.store.incident(r).await.unwrap().unwrap();
    w.store
        .enqueue(
            &w.effects.page_team(&i, "payments", "Ada").unwrap(),
            w.now(),
        )
        .await
        .unwrap();
    runner.drain().await.unwrap();
    let job = w.job("INC-1:pagerduty:team:payments").await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.last_error);
    assert_eq!(
        rest.requests(),
        vec![
            "GET /incidents",
            "GET /users",
            "POST /incidents/PT4KHLK/responder_requests"
        ]
    );
}
