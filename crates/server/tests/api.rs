//! The REST API and the web UI's forms, against a real server on port 0 with a fresh
//! SQLite database, through a real HTTP client.

use std::sync::Arc;

use klaxon_core::{Access, Catalog, IncidentRef, NewPerson, PersonId};
use klaxon_server::{auth::secret, AppState, Settings};
use klaxon_store::{JobOutcome, NewJob, Store};
use reqwest::{header, redirect, StatusCode};
use serde_json::{json, Value};

struct App {
    base: String,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    /// A responder token that belongs to no person.
    responder: String,
    viewer: String,
    admin: String,
    admin_id: PersonId,
    _db: klaxon_store::testing::TestDb,
}

async fn token(
    store: &Arc<dyn Store>,
    name: &str,
    access: Access,
    person: Option<PersonId>,
) -> String {
    let (token, hash) = secret::new_api_token();
    store
        .create_api_token(name, &hash, access, person, klaxon_core::now())
        .await
        .unwrap();
    token
}

async fn spawn_app() -> App {
    spawn_app_with(None).await
}

async fn spawn_app_with(actions: Option<Arc<dyn klaxon_store::ManualActions>>) -> App {
    let db = klaxon_store::testing::sqlite().await;
    let store = db.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let settings = Settings {
        public_url: base.clone(),
        session_hours: 1,
        config_display: "[server]\nlisten = \"x\"\n".into(),
        playbooks: klaxon_core::playbook::defaults(),
        freeze_severity: "SEV2".into(),
    };
    let mut state = AppState::new(store.clone(), Catalog::default(), settings);
    state.actions = actions;
    let app = klaxon_server::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let admin_person = store
        .create_person(
            &NewPerson {
                name: "Ada Admin".into(),
                access: Access::Admin,
                ..Default::default()
            },
            klaxon_core::now(),
        )
        .await
        .unwrap();
    store
        .set_login(
            admin_person.id,
            "ada",
            &secret::hash_password("correct horse battery"),
        )
        .await
        .unwrap();
    App {
        responder: token(&store, "ci", Access::Responder, None).await,
        viewer: token(&store, "dashboards", Access::Viewer, None).await,
        admin: token(&store, "ada", Access::Admin, Some(admin_person.id)).await,
        admin_id: admin_person.id,
        base,
        http: reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap(),
        store,
        _db: db,
    }
}

impl App {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, &self.responder, None)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, &self.responder, Some(body))
            .await
    }

    async fn declare(&self, body: Value) -> String {
        let (status, v) = self.post("/api/v1/incidents", body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["reference"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn declare_with_a_title_only_then_read_it_back() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(format!("{}/api/v1/incidents", app.base))
        .bearer_auth(&app.responder)
        .json(&json!({"title": "Checkout is down"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()[header::LOCATION], "/api/v1/incidents/INC-1");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["reference"], "INC-1");
    assert_eq!(v["title"], "Checkout is down");
    assert_eq!(v["severity"], Value::Null);
    assert_eq!(v["status"], "triage");
    assert_eq!(v["phase"], "triage");
    assert_eq!(v["type"], Value::Null);
    assert_eq!(v["services"], json!([]));
    assert_eq!(v["labels"], json!({}));
    assert_eq!(
        (v["private"].clone(), v["drill"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(v["roles"], json!({}));
    assert_eq!(
        v["declared_by"],
        json!({"kind": "system", "id": null, "name": "token:ci"})
    );
    assert_eq!(v["url"], format!("{}/incidents/INC-1", app.base));
    assert!(v["declared_at"].as_str().unwrap().ends_with('Z'));

    let (status, got) = app.get("/api/v1/incidents/inc-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, v);

    // A person's token: the declarer leads.
    let (status, v) = app.call(reqwest::Method::POST, "/api/v1/incidents", &app.admin, Some(json!({"title": "Mine", "severity": "sev1", "services": ["api", "db"], "labels": {"team": "core"}}))).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["lead"],
        json!({"id": app.admin_id.0, "name": "Ada Admin"})
    );
    assert_eq!(v["roles"]["lead"]["name"], "Ada Admin");
    assert_eq!(
        (
            v["severity"].as_str(),
            v["services"].clone(),
            v["labels"]["team"].as_str()
        ),
        (Some("SEV1"), json!(["api", "db"]), Some("core"))
    );
}

#[tokio::test]
async fn errors_have_one_shape_and_the_right_status() {
    let app = spawn_app().await;
    let check =
        |(status, v): (StatusCode, Value), want: StatusCode, code: &str, field: Option<&str>| {
            assert_eq!(status, want, "{v}");
            assert_eq!(v["error"]["code"], code, "{v}");
            assert_eq!(v["error"]["field"].as_str(), field, "{v}");
            assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        };
    check(
        app.post("/api/v1/incidents", json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty_title",
        Some("title"),
    );
    let (s, v) = app
        .post(
            "/api/v1/incidents",
            json!({"title": "x", "severity": "SEV9"}),
        )
        .await;
    assert_eq!(
        v["error"]["message"],
        "unknown severity `SEV9`: use one of SEV1, SEV2, SEV3, SEV4"
    );
    check(
        (s, v),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_severity",
        Some("severity"),
    );
    check(
        app.post("/api/v1/incidents", json!({"title": "x", "colour": "red"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        None,
    );
    check(
        app.post("/api/v1/incidents", json!({"title": "x".repeat(201)}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_long",
        Some("title"),
    );

    let res = app
        .http
        .post(format!("{}/api/v1/incidents", app.base))
        .bearer_auth(&app.responder)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "bad_request"
    );
    let res = app
        .http
        .post(format!("{}/api/v1/incidents", app.base))
        .bearer_auth(&app.responder)
        .body("title=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let res = app
        .http
        .get(format!("{}/api/v1/incidents", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    check(
        app.call(reqwest::Method::GET, "/api/v1/incidents", "klx_nope", None)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        None,
    );
    check(
        app.call(
            reqwest::Method::POST,
            "/api/v1/incidents",
            &app.viewer,
            Some(json!({"title": "x"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    check(
        app.get("/api/v1/incidents/INC-404").await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    check(
        app.get("/api/v1/incidents/banana").await,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("reference"),
    );

    let r = app.declare(json!({"title": "x"})).await;
    check(
        app.post(
            &format!("/api/v1/incidents/{r}/status"),
            json!({"status": "closed"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "transition_not_allowed",
        Some("status"),
    );
    check(
        app.call(
            reqwest::Method::PUT,
            &format!("/api/v1/incidents/{r}/roles/lead"),
            &app.responder,
            Some(json!({"person_id": 999})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_person",
        Some("person_id"),
    );
    check(
        app.get("/api/v1/incidents?severity=SEV7").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_severity",
        Some("severity"),
    );
    check(
        app.get("/api/v1/incidents?label=nocolon").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        Some("label"),
    );
    check(
        app.get("/api/v1/incidents?limit=lots").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        None,
    );
}

#[tokio::test]
async fn change_fields_status_roles_and_notes_then_read_the_timeline() {
    let app = spawn_app().await;
    let r = app.declare(json!({"title": "Queue backlog", "severity": "SEV3", "labels": {"team": "core", "region": "eu"}})).await;
    let patch = json!({"title": "Queue backlog in eu", "severity": "SEV2", "services": ["queue"], "labels": {"region": null}, "summary": "Consumers stalled"});
    let (s, v) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/incidents/{r}"),
            &app.responder,
            Some(patch),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["title"].as_str(),
            v["severity"].as_str(),
            v["labels"].clone()
        ),
        (
            Some("Queue backlog in eu"),
            Some("SEV2"),
            json!({"team": "core"})
        )
    );
    // All or nothing: a bad field refuses the whole edit.
    let (s, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/incidents/{r}"),
            &app.responder,
            Some(json!({"title": "changed", "severity": "SEV0"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, v) = app.get(&format!("/api/v1/incidents/{r}")).await;
    assert_eq!(v["title"], "Queue backlog in eu");
    // null clears.
    let (_, v) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/incidents/{r}"),
            &app.responder,
            Some(json!({"severity": null})),
        )
        .await;
    assert_eq!(v["severity"], Value::Null);

    let (s, v) = app
        .post(
            &format!("/api/v1/incidents/{r}/status"),
            json!({"status": "investigating"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["acknowledged_at"].is_string());
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/incidents/{r}/roles/comms"),
            &app.responder,
            Some(json!({"person_id": app.admin_id.0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["roles"]["comms"]["name"], "Ada Admin");
    let (s, v) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/incidents/{r}/roles/comms"),
            &app.responder,
            None,
        )
        .await;
    assert_eq!((s, v["roles"].clone()), (StatusCode::OK, json!({})));
    let (s, note) = app
        .post(
            &format!("/api/v1/incidents/{r}/notes"),
            json!({"text": "Restarted the consumers"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        (note["type"].as_str(), note["text"].as_str()),
        (Some("note_added"), Some("Restarted the consumers"))
    );

    let (_, t) = app.get(&format!("/api/v1/incidents/{r}/timeline")).await;
    let texts: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec![
            "declared the incident: Queue backlog",
            "renamed the incident to “Queue backlog in eu”",
            "updated the summary",
            "changed the severity from SEV3 to SEV2",
            "set the affected services to queue",
            "removed the label region",
            "changed the severity from SEV2 to none",
            "moved the status from triage to investigating",
            "made Ada Admin the communications lead",
            "released Ada Admin from the communications lead role",
            "Restarted the consumers",
        ]
    );
    let after = t["next_after"].as_u64().unwrap();
    assert_eq!(after, 11);
    let (_, later) = app
        .get(&format!("/api/v1/incidents/{r}/timeline?after={after}"))
        .await;
    assert_eq!(later["events"], json!([]));
    assert_eq!(
        t["events"][3]["details"],
        json!({"field": "severity", "old": "SEV3", "new": "SEV2"})
    );
}

#[tokio::test]
async fn list_filters_search_and_pages() {
    let app = spawn_app().await;
    for (title, sev, svc) in [
        ("Checkout down", "SEV1", "checkout"),
        ("Slow search", "SEV3", "search"),
        ("Payments degraded", "SEV2", "payments"),
        ("Login errors", "SEV2", "auth"),
        ("Cache misses", "SEV4", "cache"),
    ] {
        app.declare(json!({"title": title, "severity": sev, "services": [svc], "labels": {"team": if svc == "auth" { "identity" } else { "core" }}})).await;
    }
    app.post(
        "/api/v1/incidents/INC-3/status",
        json!({"status": "resolved"}),
    )
    .await;
    let titles = |v: &Value| {
        v["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (_, v) = app.get("/api/v1/incidents?severity_at_least=SEV2").await;
    assert_eq!(
        titles(&v),
        vec!["Login errors", "Payments degraded", "Checkout down"]
    );
    let (_, v) = app
        .get("/api/v1/incidents?severity_at_least=SEV2&open=true")
        .await;
    assert_eq!(titles(&v), vec!["Login errors", "Checkout down"]);
    let (_, v) = app.get("/api/v1/incidents?severity=SEV4,SEV3").await;
    assert_eq!(titles(&v), vec!["Cache misses", "Slow search"]);
    let (_, v) = app
        .get("/api/v1/incidents?severity=SEV4&severity_at_least=SEV2")
        .await;
    assert_eq!(titles(&v), Vec::<String>::new());
    let (_, v) = app.get("/api/v1/incidents?service=payments").await;
    assert_eq!(titles(&v), vec!["Payments degraded"]);
    let (_, v) = app.get("/api/v1/incidents?label=team:identity").await;
    assert_eq!(titles(&v), vec!["Login errors"]);
    let (_, v) = app.get("/api/v1/incidents?status=resolved").await;
    assert_eq!(titles(&v), vec!["Payments degraded"]);
    let (_, v) = app.get("/api/v1/incidents?q=pay%20degr").await;
    assert_eq!(titles(&v), vec!["Payments degraded"]);

    let (_, p1) = app.get("/api/v1/incidents?limit=2").await;
    assert_eq!((titles(&p1).len(), p1["next"].as_str()), (2, Some("INC-4")));
    let (_, p2) = app.get("/api/v1/incidents?limit=2&before=INC-4").await;
    assert_eq!(titles(&p2), vec!["Payments degraded", "Slow search"]);
    let (_, p3) = app.get("/api/v1/incidents?limit=2&before=INC-2").await;
    assert_eq!(
        (titles(&p3), p3.get("next").cloned()),
        (vec!["Checkout down".to_string()], Some(Value::Null))
    );
}

#[tokio::test]
async fn private_incidents_are_for_members_and_admins() {
    let app = spawn_app().await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/incidents",
            &app.admin,
            Some(json!({"title": "Credential leak", "private": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    app.declare(json!({"title": "Public"})).await;
    let (s, _) = app.get("/api/v1/incidents/INC-1").await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a non-member does not even learn it exists"
    );
    let (_, v) = app.get("/api/v1/incidents").await;
    assert_eq!(v["incidents"].as_array().unwrap().len(), 1);
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/incidents/INC-1",
            &app.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .post("/api/v1/incidents/INC-1/notes", json!({"text": "sneaky"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn actions_show_their_state_and_failed_ones_can_be_retried() {
    let app = spawn_app().await;
    let r = app.declare(json!({"title": "Pager"})).await;
    let reference: IncidentRef = r.parse().unwrap();
    let now = klaxon_core::now();
    app.store
        .enqueue(
            &[NewJob::new("page:1", "pagerduty.trigger", json!({}))
                .for_incident(reference)
                .max_attempts(1)],
            now,
        )
        .await
        .unwrap();
    let claim = app
        .store
        .claim_jobs("test", now, now + chrono::Duration::seconds(30), 1)
        .await
        .unwrap()
        .remove(0)
        .claim()
        .unwrap();
    app.store
        .finish_job(
            &claim,
            &JobOutcome::Dead {
                error: "401 from PagerDuty: check the routing key".into(),
            },
            now,
            std::sync::Arc::new(klaxon_store::NoEffects),
        )
        .await
        .unwrap();

    let (_, v) = app.get(&format!("/api/v1/incidents/{r}/actions")).await;
    let a = &v["actions"][0];
    assert_eq!(
        (
            a["kind"].as_str(),
            a["state"].as_str(),
            a["attempts"].as_u64()
        ),
        (Some("pagerduty.trigger"), Some("dead"), Some(1))
    );
    assert_eq!(a["last_error"], "401 from PagerDuty: check the routing key");
    let id = a["id"].as_i64().unwrap();
    let (s, v) = app
        .post(
            &format!("/api/v1/incidents/{r}/actions/{id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str(), v["attempts"].as_u64()),
        (StatusCode::OK, Some("pending"), Some(0))
    );
    let (s, v) = app
        .post(
            &format!("/api/v1/incidents/{r}/actions/{id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_retryable"))
    );
    let (s, _) = app
        .post(
            &format!("/api/v1/incidents/{r}/actions/{}/retry", id + 1),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, t) = app.get(&format!("/api/v1/incidents/{r}/timeline")).await;
    assert_eq!(
        t["events"][1]["text"],
        "pagerduty.trigger failed: 401 from PagerDuty: check the routing key"
    );
}

/// The session cookie from a response.
fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("klaxon_session="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

fn csrf_of(html: &str) -> String {
    let at =
        html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_string()
}

#[tokio::test]
async fn sign_in_declare_from_the_web_form_and_sign_out() {
    let app = spawn_app().await;
    let url = |p: &str| format!("{}{p}", app.base);
    let res = app.http.get(url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/login?next=%2F");

    let res = app
        .http
        .post(url("/login"))
        .form(&[("login", "ada"), ("password", "wrong"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("That login and password do not match."));
    let res = app
        .http
        .post(url("/login"))
        .form(&[
            ("login", "ada"),
            ("password", "correct horse battery"),
            ("next", "/incidents"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/incidents");
    let cookie = session_cookie(&res).expect("a session cookie");
    let set = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );

    let page = app
        .http
        .get(url("/"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Declare an incident") && page.contains("Ada Admin"),
        "{page}"
    );
    let csrf = csrf_of(&page);

    // Without the CSRF token the form is refused, and nothing is declared.
    let res = app
        .http
        .post(url("/declare"))
        .header(header::COOKIE, &cookie)
        .form(&[("title", "Forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // An invalid form comes back with the reason and what was typed.
    let res = app
        .http
        .post(url("/declare"))
        .header(header::COOKIE, &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("title", " "),
            ("summary", "keep me"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("the title is empty") && body.contains("keep me"),
        "{body}"
    );

    let res = app
        .http
        .post(url("/declare"))
        .header(header::COOKIE, &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("title", "Checkout is down"),
            ("severity", "SEV2"),
            ("services", "checkout, payments"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/incidents/INC-1");
    let (_, v) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/incidents/INC-1",
            &app.admin,
            None,
        )
        .await;
    assert_eq!(
        (
            v["severity"].as_str(),
            v["services"].clone(),
            v["lead"]["name"].as_str()
        ),
        (
            Some("SEV2"),
            json!(["checkout", "payments"]),
            Some("Ada Admin")
        )
    );

    // The incident page's forms: a note, and a status the catalog refuses.
    let res = app
        .http
        .post(url("/incidents/INC-1/notes"))
        .header(header::COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("text", "Rolled back v42")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = app
        .http
        .get(url("/incidents/INC-1"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Rolled back v42"), "{page}");
    let res = app
        .http
        .post(url("/incidents/INC-1/status"))
        .header(header::COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("status", "closed")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("cannot move from `triage` to `closed`"));
    let fragment = app
        .http
        .get(url("/incidents/INC-1/timeline?after=1"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        fragment.contains("data-seq=\"3\"") && !fragment.contains("data-seq=\"1\""),
        "{fragment}"
    );

    // The API with the cookie needs the CSRF header for changes.
    let res = app
        .http
        .post(url("/api/v1/incidents"))
        .header(header::COOKIE, &cookie)
        .json(&json!({"title": "via cookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .http
        .post(url("/api/v1/incidents"))
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"title": "via cookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let res = app
        .http
        .post(url("/logout"))
        .header(header::COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let res = app
        .http
        .get(url("/"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the old cookie no longer works"
    );
}

#[tokio::test]
async fn settings_are_for_admins_with_secrets_redacted() {
    let app = spawn_app().await;
    let login = |user: &'static str, pw: &'static str| {
        let app = &app;
        async move {
            let res = app
                .http
                .post(format!("{}/login", app.base))
                .form(&[("login", user), ("password", pw)])
                .send()
                .await
                .unwrap();
            session_cookie(&res).unwrap()
        }
    };
    let admin = login("ada", "correct horse battery").await;
    let page = app
        .http
        .get(format!("{}/settings", app.base))
        .header(header::COOKIE, &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("listen = &#34;x&#34;") || html.contains("listen = &quot;x&quot;"),
        "{html}"
    );
    assert!(
        html.contains("dashboards") && html.contains("viewer"),
        "the tokens are listed: {html}"
    );

    let bob = app
        .store
        .create_person(
            &NewPerson {
                name: "Bob".into(),
                ..Default::default()
            },
            klaxon_core::now(),
        )
        .await
        .unwrap();
    app.store
        .set_login(bob.id, "bob", &secret::hash_password("bob's long password"))
        .await
        .unwrap();
    let responder = login("bob", "bob's long password").await;
    let page = app
        .http
        .get(format!("{}/settings", app.base))
        .header(header::COOKIE, &responder)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn metrics_count_requests_jobs_and_open_incidents() {
    let app = spawn_app().await;
    app.declare(json!({"title": "a", "severity": "SEV1"})).await;
    app.get("/api/v1/incidents/INC-1").await;
    app.get("/api/v1/incidents/INC-1").await;
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("klaxon_http_requests_total{method=\"GET\",route=\"/api/v1/incidents/{reference}\",status=\"200\"} 2"), "{text}");
    assert!(text.contains("klaxon_http_requests_total{method=\"POST\",route=\"/api/v1/incidents\",status=\"201\"} 1"), "{text}");
    assert!(
        text.contains("klaxon_open_incidents{severity=\"SEV1\"} 1"),
        "{text}"
    );
}

#[test]
fn the_committed_openapi_document_is_current() {
    let generated = serde_json::to_string_pretty(&klaxon_server::api::document()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("KLAXON_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is not the document the code generates: run `KLAXON_UPDATE_OPENAPI=1 cargo test -p klaxon-server --test api` and commit it"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/api/v1/incidents",
        "/api/v1/incidents/{reference}",
        "/api/v1/incidents/{reference}/timeline",
        "/api/v1/incidents/{reference}/actions/{id}/retry",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["IncidentView"]["properties"]["reference"].is_object());
}

#[tokio::test]
async fn the_playbooks_page_and_an_incidents_reminders() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(format!("{}/login", app.base))
        .form(&[("login", "ada"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&res).unwrap();
    let page = app
        .http
        .get(format!("{}/playbooks", app.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("severity-nudge") && page.contains("an incident is declared"),
        "{page}"
    );
    assert!(
        page.contains("After 5m, unless &#34;severity_set&#34;")
            || page.contains("After 5m, unless &quot;severity_set&quot;"),
        "{page}"
    );

    let r = app.declare(json!({"title": "Reminded"})).await;
    let reference: IncidentRef = r.parse().unwrap();
    let due = klaxon_core::now() + chrono::Duration::minutes(5);
    let step = NewJob::new(
        "INC-1:playbook:severity-nudge:0",
        "playbook.step",
        json!({ "playbook": "severity-nudge", "step": 0, "incident": r }),
    )
    .for_incident(reference)
    .at(due);
    app.store
        .enqueue(&[step], klaxon_core::now())
        .await
        .unwrap();
    let page = app
        .http
        .get(format!("{}/incidents/{r}", app.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let coming = page
        .split("Coming up")
        .nth(1)
        .expect("a list of what is coming up");
    assert!(
        coming.contains("severity-nudge") && coming.contains(&klaxon_server_time(due)),
        "{page}"
    );
}

fn klaxon_server_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[tokio::test]
async fn the_deploy_freeze_answers_pipelines() {
    let app = spawn_app().await;
    let freeze = |service: &str| {
        let app = &app;
        let path = if service.is_empty() {
            "/api/v1/deploy-freeze".to_string()
        } else {
            format!("/api/v1/deploy-freeze?service={service}")
        };
        async move { app.get(&path).await.1 }
    };
    let v = freeze("checkout").await;
    assert_eq!(
        (v["freeze"].clone(), v["reason"].as_str()),
        (
            json!(false),
            Some("no open incident of SEV2 or worse affects deploys for checkout")
        )
    );

    app.declare(json!({"title": "Minor", "severity": "SEV3", "services": ["checkout"]}))
        .await;
    app.declare(json!({"title": "Practice", "severity": "SEV1", "drill": true}))
        .await;
    assert_eq!(
        freeze("checkout").await["freeze"],
        false,
        "SEV3 and drills do not freeze"
    );

    let r = app
        .declare(json!({"title": "Checkout is down", "severity": "SEV2", "services": ["checkout"]}))
        .await;
    let v = freeze("checkout").await;
    assert_eq!(v["freeze"], true);
    assert_eq!(
        v["reason"],
        format!("deploys for checkout are frozen by 1 open incident of SEV2 or worse: {r}")
    );
    assert_eq!(v["incidents"][0]["title"], "Checkout is down");
    assert_eq!(
        freeze("search").await["freeze"],
        false,
        "another service may deploy"
    );

    // A private SEV1 with no services freezes everything, without saying what it is.
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/incidents",
            &app.admin,
            Some(json!({"title": "Credential leak", "severity": "SEV1", "private": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let v = freeze("search").await;
    assert_eq!(v["freeze"], true);
    assert_eq!(
        v["incidents"][0],
        json!({"reference": null, "title": null, "severity": null, "status": null, "url": null, "private": true})
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .ends_with("a private incident"),
        "{v}"
    );
    let (_, as_admin) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/deploy-freeze?service=search",
            &app.admin,
            None,
        )
        .await;
    assert_eq!(as_admin["incidents"][0]["title"], "Credential leak");

    app.post(
        &format!("/api/v1/incidents/{r}/status"),
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(
        freeze("checkout").await["incidents"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "only the private one is left"
    );
    let res = app
        .http
        .get(format!("{}/api/v1/deploy-freeze", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "pipelines need a token"
    );
}

/// Takes every status page update as a job, except an empty one.
struct StatusPage;

impl klaxon_store::ManualActions for StatusPage {
    fn page_team(
        &self,
        _: &klaxon_core::Incident,
        _: &str,
        _: &str,
    ) -> Result<Vec<klaxon_store::NewJob>, String> {
        Err("no teams".into())
    }

    fn post_status(
        &self,
        i: &klaxon_core::Incident,
        text: &str,
        by: &str,
        _: klaxon_core::Timestamp,
    ) -> Result<Vec<klaxon_store::NewJob>, String> {
        if text.trim().is_empty() {
            return Err("Say what to post.".into());
        }
        Ok(vec![klaxon_store::NewJob::new(
            format!("{}:status", i.reference),
            "test.status",
            json!({ "text": text, "by": by }),
        )
        .for_incident(i.reference)])
    }
}

#[tokio::test]
async fn the_incident_page_posts_to_the_status_page_when_one_is_set_up() {
    let app = spawn_app_with(Some(Arc::new(StatusPage))).await;
    let url = |p: &str| format!("{}{p}", app.base);
    let res = app
        .http
        .post(url("/login"))
        .form(&[
            ("login", "ada"),
            ("password", "correct horse battery"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&res).expect("a session cookie");
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/incidents",
            &app.admin,
            Some(json!({"title": "Checkout is down"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let page = app
        .http
        .get(url("/incidents/INC-1"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Post to the status page"), "{page}");
    let csrf = csrf_of(&page);
    let post = |text: &'static str| {
        app.http
            .post(url("/incidents/INC-1/statuspage"))
            .header(header::COOKIE, &cookie)
            .form(&[("csrf", csrf.clone()), ("text", text.to_string())])
            .send()
    };
    let res = post("  ").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("Say what to post."));
    let res = post("We are looking into it.").await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let job = app
        .store
        .job_by_key("INC-1:status")
        .await
        .unwrap()
        .expect("the job");
    assert_eq!(job.payload["text"], "We are looking into it.");
    assert_eq!(job.payload["by"], "Ada Admin");

    // Without a status page there is no form.
    let plain = spawn_app().await;
    let res = plain
        .http
        .post(format!("{}/login", plain.base))
        .form(&[
            ("login", "ada"),
            ("password", "correct horse battery"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&res).unwrap();
    plain
        .call(
            reqwest::Method::POST,
            "/api/v1/incidents",
            &plain.admin,
            Some(json!({"title": "Checkout is down"})),
        )
        .await;
    let page = plain
        .http
        .get(format!("{}/incidents/INC-1", plain.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Post to the status page"));
}

#[tokio::test]
async fn follow_ups_are_added_with_an_owner_and_due_date_and_done() {
    let app = spawn_app().await;
    let (_, i) = app
        .post("/api/v1/incidents", json!({"title": "Checkout is down"}))
        .await;
    let r = i["reference"].as_str().unwrap().to_string();
    let (s, v) = app
        .post(
            &format!("/api/v1/incidents/{r}/follow-ups"),
            json!({"text": "Alert on checkout errors", "owner_id": app.admin_id.0, "due_at": "2030-01-02T09:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let f = &v["follow_ups"][0];
    assert_eq!(
        (f["id"].as_u64(), f["text"].as_str()),
        (Some(1), Some("Alert on checkout errors"))
    );
    assert_eq!(f["owner"]["name"], "Ada Admin");
    assert_eq!(f["due_at"], "2030-01-02T09:00:00Z");
    assert!(f["done_at"].is_null());

    let (s, e) = app
        .post(
            &format!("/api/v1/incidents/{r}/follow-ups"),
            json!({"text": "  "}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, e) = app
        .post(
            &format!("/api/v1/incidents/{r}/follow-ups"),
            json!({"text": "x", "owner_id": 999}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, e) = app
        .post(
            &format!("/api/v1/incidents/{r}/follow-ups"),
            json!({"text": "x", "due_at": "tomorrow"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("due_at"),
        "{e}"
    );

    let (s, v) = app
        .post(
            &format!("/api/v1/incidents/{r}/follow-ups/1/done"),
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["follow_ups"][0]["done_at"].is_string());
    let (s, _) = app
        .post(
            &format!("/api/v1/incidents/{r}/follow-ups/9/done"),
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}
