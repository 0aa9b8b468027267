//! Every integration against a scripted fake of its vendor, with the real store and runner on
//! a manual clock: what is sent, when it is retried and when it is not, and that each action
//! happens once. Nothing sleeps: the clock is moved and the queue drained.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use klaxon_core::{Command, Declare};
use klaxon_integrations::config::*;
use klaxon_integrations::Settings;
use klaxon_store::JobState;
use serde_json::json;

fn pagerduty(url: &str) -> Settings {
    Settings {
        pagerduty: PagerDutyConfig {
            events_url: url.into(),
            routing_key: "R0UT1NG".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn accepted() -> Answer {
    (
        202,
        vec![],
        json!({"status": "success", "message": "Event processed"}).to_string(),
    )
}

#[tokio::test]
async fn pagerduty_pages_once_acknowledges_and_resolves_with_the_reference_as_dedup_key() {
    let pd = FakeVendor::start(|_, _| accepted()).await;
    let w = World::new(pagerduty(&pd.url)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let events = pd.calls("POST", "/enqueue");
    assert_eq!(events.len(), 1);
    let e = events[0].json();
    assert_eq!(e["routing_key"], "R0UT1NG");
    assert_eq!(e["event_action"], "trigger");
    assert_eq!(e["dedup_key"], "INC-1");
    assert_eq!(e["payload"]["severity"], "critical");
    assert_eq!(e["payload"]["source"], "klaxon");
    assert_eq!(e["payload"]["summary"], "INC-1 [SEV1] Checkout is down");
    assert_eq!(e["client_url"], "https://klaxon.test/incidents/INC-1");

    // Escalating again does not page again; acknowledging and resolving reach the alert.
    // Jobs of one incident run concurrently: each step is drained as it would be in real
    // time, seconds apart.
    for c in [
        Command::SetSeverity {
            severity: Some("SEV3".into()),
        },
        Command::SetSeverity {
            severity: Some("SEV1".into()),
        },
        status("investigating"),
        status("identified"),
        status("resolved"),
    ] {
        w.run(r, c).await;
        runner.drain().await.unwrap();
    }
    let actions: Vec<String> = pd
        .calls("POST", "/enqueue")
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s.json()["event_action"].as_str().unwrap(),
                s.json()["dedup_key"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec!["trigger INC-1", "acknowledge INC-1", "resolve INC-1"]
    );
    let timeline = w.store.events(r, 0, 100).await.unwrap();
    assert!(timeline.iter().any(|e| matches!(&e.kind, klaxon_core::EventKind::ActionSucceeded { detail, .. } if detail.contains("paged on-call"))));
}

#[tokio::test]
async fn pagerduty_leaves_less_severe_incidents_and_drills_alone() {
    let pd = FakeVendor::start(|_, _| accepted()).await;
    let w = World::new(pagerduty(&pd.url)).await;
    let runner = w.runner();
    let r = w
        .declare(Declare {
            severity: Some("SEV3".into()),
            ..sev1("Slow search")
        })
        .await;
    w.run(r, status("resolved")).await;
    let drill = w
        .declare(Declare {
            drill: true,
            ..sev1("Game day")
        })
        .await;
    runner.drain().await.unwrap();
    assert!(pd.seen().is_empty(), "{:?}", pd.seen());
    let skipped = w.job(&format!("{drill}:pagerduty:trigger")).await;
    assert_eq!(skipped.state, JobState::Succeeded);
    assert!(skipped.result.unwrap()["skipped"]
        .as_str()
        .unwrap()
        .contains("drill"));
    // A SEV3 that escalates to SEV2 pages then.
    w.run(r, status("investigating")).await;
    w.run(
        r,
        Command::SetSeverity {
            severity: Some("SEV2".into()),
        },
    )
    .await;
    runner.drain().await.unwrap();
    assert_eq!(pd.calls("POST", "/enqueue").len(), 1);
}

#[tokio::test]
async fn a_5xx_and_a_429_are_retried_and_a_4xx_is_not() {
    // 503, then 429 with Retry-After: 120, then accepted.
    let pd = FakeVendor::start(|_, n| match n {
        0 => (503, vec![], "{}".into()),
        1 => (
            429,
            vec![("retry-after", "120".into())],
            json!({"message": "slow down"}).to_string(),
        ),
        _ => accepted(),
    })
    .await;
    let w = World::new(pagerduty(&pd.url)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let job = w.job(&format!("{r}:pagerduty:trigger")).await;
    assert_eq!(job.state, JobState::Pending);
    assert!(job.last_error.unwrap().contains("HTTP 503"));
    w.advance(10);
    runner.drain().await.unwrap();
    let job = w.job(&format!("{r}:pagerduty:trigger")).await;
    assert!(job.last_error.as_deref().unwrap().contains("HTTP 429"));
    // Not before the vendor's Retry-After.
    w.advance(100);
    runner.drain().await.unwrap();
    assert_eq!(pd.seen().len(), 2);
    w.advance(30);
    runner.drain().await.unwrap();
    assert_eq!(pd.seen().len(), 3);
    assert_eq!(
        w.job(&format!("{r}:pagerduty:trigger")).await.state,
        JobState::Succeeded
    );

    // A 400 is dead at once, with the vendor's words.
    let bad = FakeVendor::start(|_, _| {
        (400, vec![], json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]}).to_string())
    })
    .await;
    let w = World::new(pagerduty(&bad.url)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    w.advance(3600);
    runner.drain().await.unwrap();
    let job = w.job(&format!("{r}:pagerduty:trigger")).await;
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(bad.seen().len(), 1, "not retried");
    assert!(job.last_error.unwrap().contains("should be 32 characters"));
}

#[tokio::test]
async fn a_refused_credential_says_which_setting_holds_it() {
    let og = FakeVendor::start(|_, _| {
        (
            401,
            vec![],
            json!({"message": "Key format is not valid!"}).to_string(),
        )
    })
    .await;
    let w = World::new(Settings {
        opsgenie: OpsgenieConfig {
            api_url: og.url.clone(),
            api_key: "nope".into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let job = w.job(&format!("{r}:opsgenie:create")).await;
    assert_eq!(job.state, JobState::Dead);
    let e = job.last_error.unwrap();
    assert!(
        e.contains("Key format is not valid!") && e.contains("[opsgenie] api_key"),
        "{e}"
    );
    let checks = klaxon_integrations::test::run_all(&w.settings).await;
    assert_eq!(checks.len(), 1);
    assert!(
        !checks[0].ok && checks[0].message.contains("HTTP 401"),
        "{:?}",
        checks[0]
    );
}

#[tokio::test]
async fn a_vendor_that_does_not_answer_in_time_is_tried_again() {
    // Accepts the connection and never answers; the runner's timeout ends the attempt.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let w = World::new(pagerduty(&url)).await;
    let config = klaxon_jobs::RunnerConfig {
        job_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let mut runner = klaxon_jobs::Runner::new(w.store.clone(), w.clock.clone(), config);
    for (kind, h) in klaxon_integrations::handlers(&w.context()) {
        runner.register(kind, h);
    }
    let runner = Arc::new(runner);
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let job = w.job(&format!("{r}:pagerduty:trigger")).await;
    assert_eq!(job.state, JobState::Pending, "retried, not dead");
    assert!(job.last_error.unwrap().contains("timed out"));
}

#[tokio::test]
async fn opsgenie_creates_notes_and_closes_one_alert_by_alias() {
    let og = FakeVendor::start(|_, _| {
        (
            202,
            vec![],
            json!({"result": "Request will be processed", "requestId": "abc"}).to_string(),
        )
    })
    .await;
    let w = World::new(Settings {
        opsgenie: OpsgenieConfig {
            api_url: og.url.clone(),
            api_key: "k".into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    w.run(r, status("investigating")).await;
    runner.drain().await.unwrap();
    w.run(r, status("resolved")).await;
    runner.drain().await.unwrap();
    let seen = og.seen();
    let paths: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}?{}", s.method, s.path, s.query))
        .collect();
    assert_eq!(
        paths,
        vec![
            "POST /v2/alerts?",
            "POST /v2/alerts/INC-1/notes?identifierType=alias",
            "POST /v2/alerts/INC-1/close?identifierType=alias"
        ]
    );
    assert_eq!(seen[0].headers["authorization"], "GenieKey k");
    assert_eq!(seen[0].json()["alias"], "INC-1");
    assert_eq!(seen[0].json()["priority"], "P1");
}

/// A Jira that keeps the issues it creates, answers searches by label and offers a Done
/// transition; `lose_first` makes it create the first issue and then fail the request, as a
/// connection dropped after the vendor acted would.
fn fake_jira(lose_first: bool) -> impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static {
    let issues: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    move |s, _| {
        let mut issues = issues.lock().unwrap();
        match (s.method.as_str(), s.path.as_str()) {
            ("POST", "/rest/api/3/issue") => {
                let key = format!("OPS-{}", issues.len() + 1);
                let mut f = s.json()["fields"].clone();
                f["key"] = json!(key);
                issues.push(f);
                if lose_first && issues.len() == 1 {
                    return (502, vec![], "{}".into());
                }
                (
                    201,
                    vec![],
                    json!({"id": "1000", "key": key, "self": "x"}).to_string(),
                )
            }
            ("GET", "/rest/api/3/search") => {
                let found: Vec<_> = issues
                    .iter()
                    .filter(|i| s.query.contains(i["labels"][1].as_str().unwrap()))
                    .map(|i| json!({"key": i["key"]}))
                    .collect();
                ok(json!({"issues": found}))
            }
            ("GET", p) if p.ends_with("/transitions") => ok(
                json!({"transitions": [{"id": "11", "name": "Start"}, {"id": "31", "name": "Done"}]}),
            ),
            ("POST", p) if p.ends_with("/transitions") => (204, vec![], String::new()),
            ("POST", p) if p.ends_with("/comment") => (201, vec![], json!({"id": "5"}).to_string()),
            _ => (
                404,
                vec![],
                json!({"errorMessages": ["no such thing"]}).to_string(),
            ),
        }
    }
}

fn jira(url: &str) -> Settings {
    Settings {
        jira: JiraConfig {
            url: url.into(),
            email: "bot@example.test".into(),
            api_token: "tok".into(),
            project: "OPS".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn jira_opens_a_ticket_per_incident_and_follow_up_comments_and_closes() {
    let j = FakeVendor::start(fake_jira(false)).await;
    let w = World::new(jira(&j.url)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let created = j.calls("POST", "/rest/api/3/issue");
    assert_eq!(created.len(), 1);
    let f = &created[0].json()["fields"];
    assert_eq!(f["project"]["key"], "OPS");
    assert_eq!(f["issuetype"]["name"], "Task");
    assert_eq!(f["summary"], "INC-1 [SEV1] Checkout is down");
    assert_eq!(f["description"]["type"], "doc");
    assert_eq!(f["description"]["version"], 1);
    let last = f["description"]["content"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["content"][0]["marks"][0]["attrs"]["href"],
        "https://klaxon.test/incidents/INC-1"
    );
    assert_eq!(
        created[0].headers["authorization"],
        format!("Basic {}", base64_of("bot@example.test:tok"))
    );
    // The link is on the incident.
    let i = w.store.incident(r).await.unwrap().unwrap();
    let link = &i.links["jira.ticket"];
    assert_eq!(link.url, format!("{}/browse/OPS-1", j.url));

    for c in [
        Command::AddFollowUp {
            text: "Add an alert on checkout errors".into(),
            owner: None,
            due_at: None,
        },
        status("investigating"),
        status("resolved"),
        Command::CompleteFollowUp { id: 1 },
    ] {
        w.run(r, c).await;
        runner.drain().await.unwrap();
    }
    let created = j.calls("POST", "/rest/api/3/issue");
    assert_eq!(created.len(), 2);
    assert_eq!(
        created[1].json()["fields"]["summary"],
        "INC-1 follow-up: Add an alert on checkout errors"
    );
    let comments: Vec<String> = j
        .calls("POST", "/comment")
        .iter()
        .map(|s| {
            s.json()["body"]["content"][0]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        comments,
        vec![
            "INC-1 moved from triage to investigating in Klaxon.",
            "INC-1 moved from investigating to resolved in Klaxon."
        ]
    );
    let transitions: Vec<(String, serde_json::Value)> = j
        .calls("POST", "/transitions")
        .iter()
        .map(|s| (s.path.clone(), s.json()))
        .collect();
    assert_eq!(
        transitions,
        vec![
            (
                "/rest/api/3/issue/OPS-1/transitions".to_string(),
                json!({"transition": {"id": "31"}})
            ),
            (
                "/rest/api/3/issue/OPS-2/transitions".to_string(),
                json!({"transition": {"id": "31"}})
            ),
        ]
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn a_ticket_created_by_an_attempt_that_lost_its_answer_is_adopted_not_duplicated() {
    let j = FakeVendor::start(fake_jira(true)).await;
    let w = World::new(jira(&j.url)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    w.advance(60);
    runner.drain().await.unwrap();
    assert_eq!(j.calls("POST", "/rest/api/3/issue").len(), 1, "one ticket");
    assert_eq!(j.calls("GET", "/rest/api/3/search").len(), 1);
    let job = w.job(&format!("{r}:jira:ticket")).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result.unwrap()["id"], "OPS-1");
}

#[tokio::test]
async fn jira_without_the_configured_transition_says_which_ones_it_offers() {
    let j = FakeVendor::start(fake_jira(false)).await;
    let mut s = jira(&j.url);
    s.jira.done_transition = "Closed".into();
    let w = World::new(s).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    w.run(r, status("resolved")).await;
    runner.drain().await.unwrap();
    let update = w
        .jobs(r)
        .await
        .into_iter()
        .find(|j| j.kind == "jira.update")
        .unwrap();
    assert_eq!(update.state, JobState::Dead);
    let e = update.last_error.unwrap();
    assert!(
        e.contains("offers: Start, Done") && e.contains("[jira] done_transition"),
        "{e}"
    );
}

#[tokio::test]
async fn github_opens_and_closes_an_issue_with_a_marker() {
    let gh = FakeVendor::start(|s, _| match s.method.as_str() {
        "POST" if s.path.ends_with("/issues") => (
            201,
            vec![],
            json!({"number": 42, "html_url": "https://github.com/acme/ops/issues/42"}).to_string(),
        ),
        "POST" => (201, vec![], json!({"id": 1}).to_string()),
        "PATCH" => ok(json!({"number": 42, "state": "closed"})),
        _ => ok(json!([])),
    })
    .await;
    let w = World::new(Settings {
        github: GithubConfig {
            api_url: gh.url.clone(),
            token: "ghp_x".into(),
            repository: "acme/ops".into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    w.run(r, status("resolved")).await;
    runner.drain().await.unwrap();
    let created = gh.calls("POST", "/repos/acme/ops/issues");
    assert_eq!(created.len(), 1, "{:?} {:?}", gh.seen(), w.jobs(r).await);
    let body = created[0].json();
    assert_eq!(body["labels"], json!(["incident"]));
    assert!(body["body"]
        .as_str()
        .unwrap()
        .contains("<!-- klaxon-INC-1-github-ticket -->"));
    assert_eq!(created[0].headers["authorization"], "Bearer ghp_x");
    assert_eq!(
        gh.calls("POST", "/repos/acme/ops/issues/42/comments").len(),
        1
    );
    let closed = gh.calls("PATCH", "/repos/acme/ops/issues/42");
    assert_eq!(closed[0].json()["state"], "closed");
    let i = w.store.incident(r).await.unwrap().unwrap();
    assert_eq!(
        i.links["github.issue"].url,
        "https://github.com/acme/ops/issues/42"
    );
}

fn statuspage(url: &str) -> Settings {
    Settings {
        statuspage: StatuspageConfig {
            api_url: url.into(),
            api_key: "sp".into(),
            page_id: "pg1".into(),
            components: [("checkout".to_string(), "cmp9".to_string())].into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn customer_facing(d: Declare) -> Declare {
    Declare {
        labels: [("customer-facing".to_string(), "yes".to_string())].into(),
        ..d
    }
}

#[tokio::test]
async fn statuspage_posts_customer_facing_incidents_only_and_follows_their_status() {
    let sp = FakeVendor::start(|s, _| match s.method.as_str() {
        "POST" => (
            201,
            vec![],
            json!({"id": "sp123", "shortlink": "https://stspg.io/abc"}).to_string(),
        ),
        _ => ok(json!({"id": "sp123"})),
    })
    .await;
    let w = World::new(statuspage(&sp.url)).await;
    let runner = w.runner();
    w.declare(sev1("Internal only")).await;
    w.declare(customer_facing(Declare {
        private: true,
        ..sev1("Secret")
    }))
    .await;
    w.declare(customer_facing(Declare {
        drill: true,
        ..sev1("Game day")
    }))
    .await;
    let r = w.declare(customer_facing(sev1("Checkout is down"))).await;
    runner.drain().await.unwrap();
    w.run(r, status("monitoring")).await;
    runner.drain().await.unwrap();
    w.run(r, status("resolved")).await;
    runner.drain().await.unwrap();
    let created = sp.calls("POST", "/pages/pg1/incidents");
    assert_eq!(created.len(), 1, "only the public, real one");
    assert_eq!(created[0].headers["authorization"], "OAuth sp");
    let inc = &created[0].json()["incident"];
    assert_eq!(inc["name"], "Checkout is down");
    assert_eq!(inc["status"], "investigating");
    assert_eq!(inc["impact_override"], "critical");
    assert_eq!(inc["component_ids"], json!(["cmp9"]));
    assert_eq!(inc["components"], json!({"cmp9": "major_outage"}));
    assert_eq!(inc["metadata"]["klaxon"]["incident"], r.to_string());
    let updates: Vec<serde_json::Value> = sp
        .calls("PATCH", "/pages/pg1/incidents/sp123")
        .iter()
        .map(|s| s.json()["incident"].clone())
        .collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0]["status"], "monitoring");
    assert_eq!(updates[1]["status"], "resolved");
    assert_eq!(updates[1]["components"], json!({"cmp9": "operational"}));
    let i = w.store.incident(r).await.unwrap().unwrap();
    assert_eq!(i.links["statuspage.incident"].url, "https://stspg.io/abc");
}

fn smtp(port: u16) -> Settings {
    Settings {
        smtp: SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            security: "plain".into(),
            username: "klaxon".into(),
            password: "pw".into(),
            from: "Klaxon <klaxon@example.test>".into(),
            recipients: vec![
                Recipients {
                    to: vec!["execs@example.test".into()],
                    severity_at_least: "SEV1".into(),
                    services: vec![],
                },
                Recipients {
                    to: vec!["payments@example.test".into()],
                    severity_at_least: String::new(),
                    services: vec!["checkout".into()],
                },
            ],
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn stakeholders_get_email_on_declare_severity_change_and_resolve() {
    let m = FakeSmtp::start(|_| None).await;
    let w = World::new(smtp(m.port)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    w.run(
        r,
        Command::SetSeverity {
            severity: Some("SEV2".into()),
        },
    )
    .await;
    runner.drain().await.unwrap();
    w.run(r, status("resolved")).await;
    runner.drain().await.unwrap();
    // Nobody is to hear of a SEV3 on another service.
    w.declare(Declare {
        severity: Some("SEV3".into()),
        services: vec!["search".into()],
        ..sev1("Slow search")
    })
    .await;
    runner.drain().await.unwrap();
    let sessions = m.sessions();
    assert_eq!(sessions.len(), 3);
    let first = &sessions[0];
    let auth = format!("AUTH PLAIN {}", base64_of("\0klaxon\0pw"));
    assert!(first.contains(&auth), "{first:?}");
    assert!(first.contains(&"MAIL FROM:<klaxon@example.test>".to_string()));
    assert!(first.contains(&"RCPT TO:<execs@example.test>".to_string()));
    assert!(first.contains(&"RCPT TO:<payments@example.test>".to_string()));
    assert!(first.contains(&"Subject: [SEV1] INC-1 declared: Checkout is down".to_string()));
    assert!(first
        .iter()
        .any(|l| l.starts_with("Content-Type: multipart/alternative")));
    assert!(first
        .iter()
        .any(|l| l.starts_with("Content-Type: text/html")));
    // At SEV2 the executives no longer hear of it.
    assert!(!sessions[1].contains(&"RCPT TO:<execs@example.test>".to_string()));
    assert!(
        sessions[1].contains(&"Subject: [SEV2] INC-1 is now SEV2: Checkout is down".to_string())
    );
    assert!(sessions[2].contains(&"Subject: [resolved] INC-1: Checkout is down".to_string()));
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_and_a_busy_server_is_retried() {
    let m = FakeSmtp::start(|l| {
        if l.contains("execs@") {
            Some("550 no such user".into())
        } else {
            None
        }
    })
    .await;
    let w = World::new(smtp(m.port)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let job = w
        .jobs(r)
        .await
        .into_iter()
        .find(|j| j.kind == "email.send")
        .unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert!(job.last_error.unwrap().contains("550 no such user"));

    let busy =
        FakeSmtp::start(|l| (l.starts_with("MAIL FROM")).then(|| "451 try again later".into()))
            .await;
    let w = World::new(smtp(busy.port)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let job = w
        .jobs(r)
        .await
        .into_iter()
        .find(|j| j.kind == "email.send")
        .unwrap();
    assert_eq!(job.state, JobState::Pending);
    assert!(job.last_error.unwrap().contains("451"));
}

#[tokio::test]
async fn webhooks_are_signed_filtered_and_keep_their_id_across_retries() {
    let hook = FakeVendor::start(|_, n| {
        if n == 0 {
            (500, vec![], "{}".into())
        } else {
            (204, vec![], String::new())
        }
    })
    .await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let w = World::new(Settings {
        webhooks: vec![WebhookConfig {
            url: format!("{}/hook", hook.url),
            secret: secret.into(),
            events: vec!["declared".into(), "status_changed".into()],
        }],
        ..Default::default()
    })
    .await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    w.run(
        r,
        Command::AddNote {
            text: "not sent".into(),
        },
    )
    .await;
    w.run(r, status("investigating")).await;
    runner.drain().await.unwrap();
    w.advance(60);
    runner.drain().await.unwrap();
    let seen = hook.seen();
    let types: Vec<String> = seen
        .iter()
        .map(|s| s.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        vec![
            "incident.declared",
            "incident.status_changed",
            "incident.declared"
        ]
    );
    for s in &seen {
        let id = &s.headers["webhook-id"];
        let ts: i64 = s.headers["webhook-timestamp"].parse().unwrap();
        assert!(klaxon_integrations::webhooks::verify(
            secret,
            id,
            ts,
            &s.body,
            &s.headers["webhook-signature"]
        ));
        assert!(!klaxon_integrations::webhooks::verify(
            "whsec_b3RoZXI=",
            id,
            ts,
            &s.body,
            &s.headers["webhook-signature"]
        ));
    }
    assert_eq!(
        seen[0].headers["webhook-id"], seen[2].headers["webhook-id"],
        "a retry is the same message"
    );
    assert_ne!(
        seen[0].headers["webhook-timestamp"],
        seen[2].headers["webhook-timestamp"]
    );
    let body = seen[1].json();
    assert_eq!(body["data"]["incident"]["reference"], "INC-1");
    assert_eq!(body["data"]["event"]["to"], "investigating");
    assert_eq!(body["data"]["event"]["type"], "status_changed");
}

#[tokio::test]
async fn paging_a_team_adds_its_responders_or_pages_its_own_service() {
    use klaxon_store::ManualActions;
    let pd = FakeVendor::start(|s, _| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/incidents") => ok(json!({"incidents": [{"id": "PINC1"}]})),
        ("GET", "/users") => ok(json!({"users": [{"id": "PUSER1"}]})),
        ("POST", _) => (202, vec![], json!({"status": "success"}).to_string()),
        _ => (404, vec![], "{}".into()),
    })
    .await;
    let mut settings = pagerduty(&pd.url);
    settings.pagerduty.api_url = pd.url.clone();
    settings.pagerduty.api_token = "tok".into();
    settings.pagerduty.from_email = "bot@example.test".into();
    settings.pagerduty.teams = [
        (
            "payments".to_string(),
            Team {
                escalation_policy: "PEP1".into(),
                routing_key: String::new(),
            },
        ),
        (
            "dba".to_string(),
            Team {
                escalation_policy: String::new(),
                routing_key: "DBAKEY".into(),
            },
        ),
    ]
    .into();
    let w = World::new(settings).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let i = w.store.incident(r).await.unwrap().unwrap();

    let refused = w.effects.page_team(&i, "marketing", "Ada").unwrap_err();
    assert_eq!(
        refused,
        "`marketing` is not a team Klaxon can page: use one of dba, payments."
    );
    let jobs = w.effects.page_team(&i, "@Payments", "Ada").unwrap();
    w.store.enqueue(&jobs, w.now()).await.unwrap();
    w.store
        .enqueue(&w.effects.page_team(&i, "dba", "Ada").unwrap(), w.now())
        .await
        .unwrap();
    runner.drain().await.unwrap();

    let asked = pd.calls("POST", "/incidents/PINC1/responder_requests");
    assert_eq!(asked.len(), 1, "{:?}", pd.seen());
    let body = asked[0].json();
    assert_eq!(body["requester_id"], "PUSER1");
    assert_eq!(
        body["responder_request_targets"][0]["responder_request_target"],
        json!({"id": "PEP1", "type": "escalation_policy_reference"})
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Ada asks payments to join"));
    assert_eq!(asked[0].headers["from"], "bot@example.test");
    assert!(pd.calls("GET", "/incidents")[0]
        .query
        .contains("incident_key=INC-1"));
    let dba: Vec<serde_json::Value> = pd
        .calls("POST", "/enqueue")
        .iter()
        .map(|s| s.json())
        .filter(|e| e["routing_key"] == "DBAKEY")
        .collect();
    assert_eq!(dba.len(), 1);
    assert_eq!(dba[0]["dedup_key"], "INC-1:dba");
}

#[tokio::test]
async fn a_status_page_update_by_hand_creates_the_public_incident_first() {
    use klaxon_store::ManualActions;
    let sp = FakeVendor::start(|s, _| match s.method.as_str() {
        "POST" => (201, vec![], json!({"id": "sp9"}).to_string()),
        _ => ok(json!({"id": "sp9"})),
    })
    .await;
    let w = World::new(statuspage(&sp.url)).await;
    let runner = w.runner();
    // Not labelled customer-facing: nothing goes out by itself, but a person may post.
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    assert!(sp.seen().is_empty());
    let i = w.store.incident(r).await.unwrap().unwrap();
    assert!(w
        .effects
        .post_status(&i, "  ", "Ada", w.now())
        .unwrap_err()
        .contains("Say what to post"));
    let jobs = w
        .effects
        .post_status(&i, "We are looking into failed payments.", "Ada", w.now())
        .unwrap();
    w.store.enqueue(&jobs, w.now()).await.unwrap();
    runner.drain().await.unwrap();
    let calls: Vec<String> = sp
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        calls,
        vec![
            "POST /pages/pg1/incidents",
            "PATCH /pages/pg1/incidents/sp9"
        ]
    );
    assert_eq!(
        sp.seen()[1].json()["incident"]["body"],
        "We are looking into failed payments."
    );

    let private = w
        .declare(Declare {
            private: true,
            ..sev1("Secret")
        })
        .await;
    let p = w.store.incident(private).await.unwrap().unwrap();
    assert!(w
        .effects
        .post_status(&p, "x", "Ada", w.now())
        .unwrap_err()
        .contains("private"));
}

#[tokio::test]
async fn a_ticket_on_the_timeline_reaches_the_effects_and_failed_webhooks_do_not_loop() {
    let gh = FakeVendor::start(|s, _| match s.method.as_str() {
        "POST" => (
            201,
            vec![],
            json!({"number": 7, "html_url": "https://github.com/acme/ops/issues/7"}).to_string(),
        ),
        _ => ok(json!([])),
    })
    .await;
    let hook = FakeVendor::start(|_, _| (400, vec![], json!({"message": "no"}).to_string())).await;
    let w = World::new(Settings {
        github: GithubConfig {
            api_url: gh.url.clone(),
            token: "t".into(),
            repository: "acme/ops".into(),
            ..Default::default()
        },
        webhooks: vec![WebhookConfig {
            url: hook.url.clone(),
            secret: "s".into(),
            events: vec![],
        }],
        ..Default::default()
    })
    .await;
    // What the chat platforms do on a new link (update the headline), stood in for by a job.
    let on_link = |i: &klaxon_core::Incident, events: &[klaxon_core::Event]| {
        events
            .iter()
            .filter(|e| {
                matches!(
                    &e.kind,
                    klaxon_core::EventKind::ActionSucceeded { link: Some(_), .. }
                )
            })
            .map(|e| {
                klaxon_store::NewJob::new(
                    format!("{}:headline:{}", i.reference, e.seq),
                    "test.headline",
                    json!({}),
                )
                .for_incident(i.reference)
            })
            .collect::<Vec<_>>()
    };
    let mut runner = klaxon_jobs::Runner::new(w.store.clone(), w.clock.clone(), Default::default());
    for (kind, h) in klaxon_integrations::handlers(&w.context()) {
        runner.register(kind, h);
    }
    runner.set_effects(Arc::new(klaxon_store::AllEffects(vec![
        w.effects.clone(),
        Arc::new(on_link),
    ])));
    let runner = Arc::new(runner);
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let jobs = w.jobs(r).await;
    assert!(
        jobs.iter().any(|j| j.kind == "test.headline"),
        "the link reached the effects: {jobs:?}"
    );
    // The webhook for the declaration died (a 400); its failure on the timeline sends nothing.
    let hooks: Vec<_> = jobs
        .iter()
        .filter(|j| j.kind == "webhook.deliver")
        .collect();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].state, JobState::Dead);
    assert_eq!(hook.seen().len(), 1);
}

fn tls_smtp(port: u16, security: &str, ca: &str) -> Settings {
    let mut s = smtp(port);
    s.smtp.security = security.into();
    s.smtp.tls_ca = ca.into();
    s
}

#[tokio::test]
async fn starttls_comes_before_the_password_and_tls_from_the_start_works_too() {
    let m = FakeSmtp::start_with(Some(FakeTls::new(false)), |_| None).await;
    let w = World::new(tls_smtp(m.port, "starttls", TEST_CA)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let job = w
        .jobs(r)
        .await
        .into_iter()
        .find(|j| j.kind == "email.send")
        .unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.last_error);
    let lines = &m.sessions()[0];
    assert_eq!(
        &lines[..3],
        &["plain: EHLO klaxon", "plain: STARTTLS", "EHLO klaxon"]
    );
    assert!(lines[3].starts_with("AUTH PLAIN "), "{lines:?}");
    assert!(!lines
        .iter()
        .any(|l| l.starts_with("plain: AUTH") || l.starts_with("plain: MAIL")));

    let m = FakeSmtp::start_with(Some(FakeTls::new(true)), |_| None).await;
    let w = World::new(tls_smtp(m.port, "tls", TEST_CA)).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let job = w
        .jobs(r)
        .await
        .into_iter()
        .find(|j| j.kind == "email.send")
        .unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.last_error);
    assert!(m.sessions()[0].iter().all(|l| !l.starts_with("plain: ")));
}

#[tokio::test]
async fn an_untrusted_certificate_or_a_server_without_starttls_is_a_clear_permanent_error() {
    let m = FakeSmtp::start_with(Some(FakeTls::new(false)), |_| None).await;
    let w = World::new(tls_smtp(m.port, "starttls", "")).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let job = w
        .jobs(r)
        .await
        .into_iter()
        .find(|j| j.kind == "email.send")
        .unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert!(
        job.last_error.as_deref().unwrap().contains("tls_ca_file"),
        "{:?}",
        job.last_error
    );

    let plain = FakeSmtp::start(|_| None).await;
    let w = World::new(tls_smtp(plain.port, "starttls", "")).await;
    let runner = w.runner();
    let r = w.declare(sev1("Checkout is down")).await;
    runner.drain().await.unwrap();
    let job = w
        .jobs(r)
        .await
        .into_iter()
        .find(|j| j.kind == "email.send")
        .unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("does not offer STARTTLS"),
        "{:?}",
        job.last_error
    );
    assert!(
        !plain.sessions()[0].iter().any(|l| l.starts_with("AUTH")),
        "no password in the clear"
    );
}
