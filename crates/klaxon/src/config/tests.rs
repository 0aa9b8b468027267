use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use klaxon_core::Catalog;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("klaxon.toml");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

#[test]
fn zero_configuration_works() {
    let l = load(None, &env(&[])).unwrap();
    assert_eq!(l.config, Config::default());
    assert_eq!(l.config.database_url(), "sqlite://./klaxon-data/klaxon.db");
    assert_eq!(l.config.public_url(), "http://127.0.0.1:8080");
    assert_eq!(l.catalog, Catalog::default());
}

#[test]
fn the_default_file_loads_to_the_defaults() {
    let (_d, p) = file(&default_file());
    assert_eq!(load(Some(&p), &env(&[])).unwrap().config, Config::default());
}

#[test]
fn file_then_environment_then_secret_files() {
    let (dir, p) = file("[server]\nlisten = \"127.0.0.1:9000\"\n[jobs]\nconcurrency = 4\n");
    let secret = dir.path().join("db-url");
    std::fs::write(&secret, "postgres://k:pw@db/klaxon\n").unwrap();
    let l = load(
        Some(&p),
        &env(&[
            ("KLAXON_JOBS_CONCURRENCY", "8"),
            ("KLAXON_DATABASE_URL_FILE", secret.to_str().unwrap()),
            ("KLAXON_URL", "http://ignored"),
            ("KLAXON_TEST_DATABASE_URL", "ignored"),
            ("OTHER", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(l.config.server.listen, "127.0.0.1:9000", "from the file");
    assert_eq!(l.config.jobs.concurrency, 8, "environment over file");
    assert_eq!(
        l.config.database.url, "postgres://k:pw@db/klaxon",
        "secret file, newline trimmed"
    );
}

#[test]
fn secret_file_keys_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("url"), "sqlite://x.db").unwrap();
    let (_d, p) = file(&format!(
        "[database]\nurl_file = \"{}\"\n",
        dir.path().join("url").display()
    ));
    assert_eq!(
        load(Some(&p), &env(&[])).unwrap().config.database.url,
        "sqlite://x.db"
    );
}

#[test]
fn unknown_keys_are_errors_with_line_and_fix() {
    let (_d, p) = file("[server]\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n");
    let e = load(Some(&p), &env(&[])).unwrap_err();
    assert_eq!(e.list.len(), 1, "{e}");
    assert_eq!(e.list[0].key, "server.lisen");
    assert_eq!(e.list[0].line, Some(3));
    assert!(
        e.list[0]
            .message
            .contains("unknown field `lisen`, expected one of `listen`"),
        "{e}"
    );
    assert!(
        e.list[0]
            .message
            .contains("remove it or correct its spelling"),
        "{e}"
    );

    let (_d, p) = file("[sever]\nlisten = 1\n");
    let e = load(Some(&p), &env(&[])).unwrap_err();
    assert_eq!(e.list[0].key, "sever");
}

#[test]
fn every_problem_is_reported_at_once() {
    let (_d, p) = file(
        "[server]\nlisten = \"localhost\"\n[log]\nformat = \"xml\"\n[jobs]\nlease_seconds = 2\n\
         [severities]\nlevels = [{ key = \"SEV1\", name = \"a\" }, { key = \"sev1\", name = \"b\" }]\n",
    );
    let e = load(
        Some(&p),
        &env(&[
            ("KLAXON_JOBS_CONCURRENCY", "lots"),
            ("KLAXON_NOPE_X", "1"),
            ("KLAXON_SERVER_PORT", "1"),
        ]),
    )
    .unwrap_err();
    let keys: Vec<&str> = e.list.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "KLAXON_JOBS_CONCURRENCY",
            "KLAXON_NOPE_X",
            "KLAXON_SERVER_PORT",
            "server.listen",
            "log.format",
            "jobs.lease_seconds",
            "severities.levels[1].key"
        ],
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("`lots` is not a valid value: write it as in TOML, such as 16"),
        "{text}"
    );
    assert!(text.contains("there is no [nope] section"), "{text}");
    assert!(
        text.contains(
            "[server] has no key `port`; its keys are `data_dir`, `listen`, `public_url`"
        ),
        "{text}"
    );
    assert!(
        text.contains("server.listen (line 2): `localhost` is not an address and port"),
        "{text}"
    );
    assert!(
        text.contains("severities.levels[1].key (line 8): `sev1` is listed twice"),
        "{text}"
    );
}

#[test]
fn wrong_types_name_the_key() {
    let (_d, p) = file("[jobs]\nconcurrency = \"many\"\n");
    let e = load(Some(&p), &env(&[])).unwrap_err();
    assert_eq!(e.list[0].key, "jobs.concurrency");
    assert_eq!(e.list[0].line, Some(2));
    assert!(
        e.list[0]
            .message
            .contains("invalid type: string \"many\", expected u32"),
        "{e}"
    );
    let e = load(None, &env(&[("KLAXON_JOBS_CONCURRENCY", "\"8\"")])).unwrap_err();
    assert!(
        e.to_string()
            .contains("is a string but this setting takes a integer"),
        "{e}"
    );
}

#[test]
fn slack_settings_are_checked_by_mode() {
    let e = load(None, &env(&[("KLAXON_SLACK_BOT_TOKEN", "xoxb-1")])).unwrap_err();
    assert_eq!(e.list[0].key, "slack.signing_secret", "{e}");
    let ok = load(
        None,
        &env(&[
            ("KLAXON_SLACK_BOT_TOKEN", "xoxb-1"),
            ("KLAXON_SLACK_SIGNING_SECRET", "s"),
        ]),
    );
    assert!(ok.is_ok());
    let e = load(
        None,
        &env(&[
            ("KLAXON_SLACK_BOT_TOKEN", "xoxb-1"),
            ("KLAXON_SLACK_MODE", "socket"),
        ]),
    )
    .unwrap_err();
    assert_eq!(e.list[0].key, "slack.app_token", "{e}");
    assert!(e.to_string().contains("connections:write"), "{e}");
    let ok = load(
        None,
        &env(&[
            ("KLAXON_SLACK_BOT_TOKEN", "xoxb-1"),
            ("KLAXON_SLACK_MODE", "socket"),
            ("KLAXON_SLACK_APP_TOKEN", "xapp-1"),
        ]),
    );
    assert!(ok.is_ok(), "Socket Mode needs no signing secret");
    let e = load(
        None,
        &env(&[
            ("KLAXON_SLACK_BOT_TOKEN", "xoxp-1"),
            ("KLAXON_SLACK_SIGNING_SECRET", "s"),
            ("KLAXON_SLACK_MODE", "pigeon"),
        ]),
    )
    .unwrap_err();
    let keys: Vec<&str> = e.list.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, vec!["slack.mode", "slack.bot_token"], "{e}");
    let shown = load(
        None,
        &env(&[
            ("KLAXON_SLACK_BOT_TOKEN", "xoxb-secret"),
            ("KLAXON_SLACK_SIGNING_SECRET", "shh"),
        ]),
    )
    .unwrap()
    .config
    .redacted();
    assert!(
        !shown.contains("xoxb-secret") && !shown.contains("shh"),
        "{shown}"
    );
}

#[test]
fn secrets_are_redacted_for_display() {
    let (_d, p) = file("[auth]\nadmin_password = \"correct horse battery\"\n[database]\nurl = \"postgres://k:pw@db/x\"\n");
    let shown = load(Some(&p), &env(&[])).unwrap().config.redacted();
    assert!(shown.contains("admin_password = \"<redacted>\""), "{shown}");
    assert!(shown.contains("url = \"postgres://k:***@db/x\""), "{shown}");
    assert!(
        !shown.contains("correct horse") && !shown.contains(":pw@"),
        "{shown}"
    );
}

#[test]
fn bad_toml_and_missing_files_are_explained() {
    let (_d, p) = file("[server]\nlisten = \n");
    let e = load(Some(&p), &env(&[])).unwrap_err();
    assert_eq!((e.list[0].key.as_str(), e.list[0].line), ("file", Some(2)));
    let e = load(Some(Path::new("/nonexistent/klaxon.toml")), &env(&[])).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot read /nonexistent/klaxon.toml"),
        "{e}"
    );
}

#[test]
fn playbooks_are_read_checked_and_merged_with_the_defaults() {
    let (_d, p) = file(
        "[[playbooks]]\nname = \"lead-handover\"\ntrigger = { role_assigned = \"lead\" }\nwhen = \"open\"\n\
         steps = [{ remind = { after = \"4h\", until = { not = \"open\" }, to = { role = \"lead\" }, text = \"{reference}: time to hand over?\" } }]\n\
         [[playbooks]]\nname = \"severity-nudge\"\ntrigger = \"declared\"\nsteps = [{ note = { text = \"declared\" } }]\n",
    );
    let l = load(Some(&p), &env(&[])).unwrap();
    let names: Vec<String> = l
        .config
        .playbooks()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(
        names,
        vec![
            "lead-handover",
            "severity-nudge",
            "status-updates-sev1",
            "status-updates-sev2",
            "name-a-person",
            "after-resolve"
        ]
    );
    assert!(
        matches!(
            l.config.playbooks()[1].steps[0],
            klaxon_core::playbook::Step::Note { .. }
        ),
        "the configured one replaces the default"
    );

    let (_d, p) = file(
        "[[playbooks]]\nname = \"x\"\ntrigger = { status_reached = \"fixed\" }\nwhen = { severity_at_least = \"SEV0\" }\n\
         steps = [{ remind = { after = \"5 minutes\", until = \"open\", to = \"channel\", text = \"t\" } }]\n",
    );
    let e = load(Some(&p), &env(&[])).unwrap_err();
    assert_eq!(e.list[0].key, "playbooks[0].steps[0].remind.after", "{e}");
    assert!(
        e.list[0]
            .message
            .contains("`5 minutes` is not a duration: write it as 90s, 5m, 4h or 1h30m"),
        "{e}"
    );

    let (_d, p) = file("[[playbooks]]\nname = \"x\"\ntrigger = { status_reached = \"fixed\" }\nwhen = { severity_at_least = \"SEV0\" }\nsteps = [{ note = { text = \"t\" } }]\n");
    let e = load(Some(&p), &env(&[])).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("playbooks[0] (x) (line 2): the status `fixed` does not exist"),
        "{text}"
    );
    assert!(
        text.contains("the severity `SEV0` does not exist"),
        "{text}"
    );
    let (_d, p) = file("[[playbooks]]\nname = \"hook\"\ntrigger = \"declared\"\nsteps = [{ webhook = { url = \"hooks.example.com/klaxon\" } }]\n");
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(
        text.contains("playbooks[0] (hook) (line 2): `hooks.example.com/klaxon` is not a webhook URL: write it in full, like https://"),
        "{text}"
    );
    let off = load(
        None,
        &env(&[("KLAXON_INCIDENTS_DEFAULT_PLAYBOOKS", "false")]),
    )
    .unwrap();
    assert!(off.config.playbooks().is_empty());
}

#[test]
fn built_in_playbooks_must_fit_the_catalog() {
    let (_d, p) = file("[severities]\nlevels = [{ key = \"P1\", name = \"urgent\" }, { key = \"P2\", name = \"high\" }]\n");
    let e = load(Some(&p), &env(&[])).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("incidents.default_playbooks: the built-in playbook `status-updates-sev1` does not fit the configured catalog"), "{text}");
    assert!(text.contains("set default_playbooks = false"), "{text}");
    let ok = load(
        Some(&p),
        &env(&[
            ("KLAXON_INCIDENTS_DEFAULT_PLAYBOOKS", "false"),
            ("KLAXON_DEPLOY_FREEZE_SEVERITY_AT_LEAST", "P2"),
        ]),
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn custom_commands_are_checked() {
    let (_d, p) = file(
        "[[commands]]\nname = \"deploys\"\ndescription = \"recent deploys\"\nurl = \"https://plugins.example/deploys\"\nsecret = \"s\"\n\
         [[commands]]\nname = \"severity\"\ndescription = \"x\"\nsteps = [{ note = { text = \"n\" } }]\n\
         [[commands]]\nname = \"both\"\ndescription = \"x\"\nurl = \"ftp://x\"\n",
    );
    let e = load(Some(&p), &env(&[])).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("commands[1] (severity) (line 7): `severity` is a built-in command"),
        "{text}"
    );
    assert!(
        text.contains("`ftp://x` is not a URL") && text.contains("needs a secret"),
        "{text}"
    );
    assert!(!text.contains("deploys"), "the good one passes: {text}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin-secret"), "s3cret\n").unwrap();
    let (_d, p) = file(&format!(
        "[[commands]]\nname = \"deploys\"\ndescription = \"d\"\nurl = \"https://p.example/d\"\nsecret_file = \"{}\"\n",
        dir.path().join("plugin-secret").display()
    ));
    let l = load(Some(&p), &env(&[])).unwrap();
    assert_eq!(
        l.config.commands[0].secret, "s3cret",
        "read from the file, newline trimmed"
    );
    assert!(
        !l.config.redacted().contains("s3cret"),
        "and redacted on the settings page"
    );
}

#[test]
fn the_deploy_freeze_threshold_is_a_severity() {
    let e = load(
        None,
        &env(&[("KLAXON_DEPLOY_FREEZE_SEVERITY_AT_LEAST", "P1")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("deploy_freeze.severity_at_least: `P1` is not a severity: use one of SEV1, SEV2, SEV3, SEV4"), "{e}");
    let l = load(
        None,
        &env(&[("KLAXON_DEPLOY_FREEZE_SEVERITY_AT_LEAST", "SEV1")]),
    )
    .unwrap();
    assert_eq!(l.config.deploy_freeze.severity_at_least, "SEV1");
}

#[test]
fn integration_sections_are_checked_with_key_line_and_fix() {
    let (_d, p) = file(
        "[pagerduty]\nrouting_key = \"R\"\nseverity_at_least = \"SEV9\"\n\
         [jira]\nurl = \"https://acme.atlassian.net\"\n\
         [smtp]\nhost = \"mail.example.com\"\nfrom = \"nobody\"\n\
         [[webhooks]]\nurl = \"https://hooks.example.com/k\"\nsecret = \"s3cret\"\nevents = [\"exploded\"]\n",
    );
    let e = load(Some(&p), &env(&[])).unwrap_err();
    let text = e.to_string();
    for expected in [
        "pagerduty.severity_at_least (line 3): `SEV9` is not a severity: use one of SEV1, SEV2, SEV3, SEV4",
        "jira.email: is needed with [jira] url",
        "jira.project: is needed with [jira] url",
        "smtp.from (line 8): `nobody` is not an address",
        "smtp.recipients: is empty, so no email would be sent",
        "webhooks[0].events (line 12): `exploded` is not an event type",
    ] {
        assert!(text.contains(expected), "{expected}\nnot in:\n{text}");
    }
    // Secrets stay off the settings page.
    let (_d, p) = file("[pagerduty]\nrouting_key = \"R0UT1NG\"\n[statuspage]\napi_key = \"sp\"\npage_id = \"pg\"\n");
    let shown = load(Some(&p), &env(&[])).unwrap().config.redacted();
    assert!(
        !shown.contains("R0UT1NG") && shown.contains("page_id = \"pg\""),
        "{shown}"
    );
}

#[test]
fn a_playbook_step_needs_its_integration() {
    let (_d, p) = file("[[playbooks]]\nname = \"page-sev1\"\ntrigger = \"declared\"\nsteps = [{ page = {} }, { ticket = {} }]\n");
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(text.contains("playbooks[0] (page-sev1) (line 2): its `page` step needs an integration that is not configured: set up [pagerduty] or [opsgenie]"), "{text}");
    assert!(text.contains("its `ticket` step needs"), "{text}");
    let ok = load(
        Some(&p),
        &env(&[
            ("KLAXON_PAGERDUTY_ROUTING_KEY", "R"),
            ("KLAXON_GITHUB_TOKEN", "t"),
            ("KLAXON_GITHUB_REPOSITORY", "a/b"),
        ]),
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn playbooks_may_live_in_files_beside_the_configuration() {
    let (dir, p) = file("[incidents]\ndefault_playbooks = false\n");
    let pb = dir.path().join("playbooks");
    std::fs::create_dir(&pb).unwrap();
    std::fs::write(
        pb.join("comms.toml"),
        "[[playbooks]]\nname = \"comms\"\ntrigger = \"declared\"\nsteps = [{ message = { to = \"channel\", text = \"Name a comms lead.\" } }]\n",
    )
    .unwrap();
    std::fs::write(pb.join("notes.txt"), "not a playbook").unwrap();
    let l = load(Some(&p), &env(&[])).unwrap();
    assert_eq!(
        l.config
            .playbooks()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        vec!["comms"]
    );

    // A mistake in such a file is reported with the file and the line.
    std::fs::write(
        pb.join("db.toml"),
        "[[playbooks]]\nname = \"db\"\ntrigger = \"declared\"\nwhen = { severity_at_least = \"SEV9\" }\nsteps = [{ note = { text = \"x\" } }]\n",
    )
    .unwrap();
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(
        text.contains("playbooks/db.toml: playbooks[1] (db) (line 2):"),
        "{text}"
    );
    assert!(text.contains("SEV9"), "{text}");
    std::fs::write(pb.join("db.toml"), "[[playbooks]]\nname = \"db\"\ntrigger = \"declared\"\nsteps = []\n[server]\nlisten = \"x\"\n").unwrap();
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(text.contains("playbooks/db.toml: server"), "{text}");
    assert!(
        text.contains("holds [[playbooks]] and [[commands]] only"),
        "{text}"
    );
}

#[test]
fn a_page_team_step_needs_its_team() {
    let (_d, p) = file("[[commands]]\nname = \"page-engineer\"\ndescription = \"page a team\"\nusage = \"<team>\"\nsteps = [{ page_team = { team = \"{args}\" } }]\n\n[[playbooks]]\nname = \"dba\"\ntrigger = \"declared\"\nsteps = [{ page_team = { team = \"dba\" } }]\n");
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(
        text.contains(
            "commands[0] (page-engineer) (line 2): its `page_team` step needs teams to page"
        ),
        "{text}"
    );
    let with_teams = load(Some(&p), &env(&[("KLAXON_PAGERDUTY_ROUTING_KEY", "R")]));
    assert!(with_teams.is_err());
    let (_d, p) = file("[pagerduty]\nrouting_key = \"R\"\n[pagerduty.teams.payments]\nrouting_key = \"P\"\n[[playbooks]]\nname = \"dba\"\ntrigger = \"declared\"\nsteps = [{ page_team = { team = \"dba\" } }]\n");
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(
        text.contains("`dba` is not in [pagerduty] teams: use one of payments"),
        "{text}"
    );
}

#[test]
fn an_smtp_ca_that_is_not_pem_is_refused() {
    let (dir, p) = file("[smtp]\nhost = \"mail.example.com\"\nfrom = \"k@example.com\"\ntls_ca = \"not a certificate\"\n[[smtp.recipients]]\nto = [\"a@example.com\"]\n");
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(
        text.contains("smtp.tls_ca (line 4): holds no certificate"),
        "{text}"
    );
    // The usual way: the CA's file.
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, include_str!("../../../integrations/tests/tls/ca.pem")).unwrap();
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "tls_ca = \"not a certificate\"",
        &format!("tls_ca_file = \"{}\"", ca.display()),
    );
    std::fs::write(&p, text).unwrap();
    let l = load(Some(&p), &env(&[]));
    assert!(l.is_ok(), "{:?}", l.err());
}

#[test]
fn matrix_settings_are_checked() {
    let (_d, p) = file("[matrix]\nhomeserver_url = \"matrix.example.org\"\nuser_id = \"klaxon\"\n");
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    for expected in [
        "matrix.homeserver_url (line 2): `matrix.example.org` must be a URL",
        "matrix.user_id (line 3): `klaxon` is not a Matrix user id: write it as @klaxon:example.org",
        "matrix.access_token: is needed with a homeserver_url",
    ] {
        assert!(text.contains(expected), "{expected}\nnot in\n{text}");
    }
    let ok = load(
        None,
        &env(&[
            ("KLAXON_MATRIX_HOMESERVER_URL", "https://matrix.example.org"),
            ("KLAXON_MATRIX_USER_ID", "@klaxon:example.org"),
            ("KLAXON_MATRIX_PASSWORD", "secret"),
        ]),
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
    // The password stays off the settings page.
    assert!(!ok.unwrap().config.redacted().contains("\"secret\""));
}

#[test]
fn rooms_on_request_name_configured_platforms() {
    let (_d, p) = file("[incidents]\nchat_platforms = [\"teams\"]\n[[playbooks]]\nname = \"room\"\ntrigger = \"declared\"\nsteps = [{ open_channel = { platform = \"matrix\" } }]\n");
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(
        text.contains("incidents.chat_platforms (line 2): `teams` is not a chat platform"),
        "{text}"
    );
    assert!(
        text.contains(
            "its `open_channel` step names `matrix`, which is not a configured chat platform"
        ),
        "{text}"
    );
}

#[test]
fn runbooks_become_keyword_playbooks() {
    let (_d, p) = file("[incidents]\nrunbooks = { database = \"https://wiki.example/runbooks/db\", \"payment provider\" = \"wiki/pay\" }\n");
    let text = load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(
        text.contains("`wiki/pay` (for “payment provider”) is not a link"),
        "{text}"
    );
    let (_d, p) =
        file("[incidents]\nrunbooks = { database = \"https://wiki.example/runbooks/db\" }\n");
    let l = load(Some(&p), &env(&[])).unwrap();
    let all = l.config.playbooks();
    let rb = all
        .iter()
        .find(|p| p.name == "runbook-database")
        .expect("the runbook playbook");
    assert_eq!(
        rb.trigger,
        klaxon_core::playbook::Trigger::Keyword("database".into())
    );
    assert!(rb.trigger.mentioned_in("Is the Database down again?"));
    assert_eq!(
        rb.steps,
        vec![klaxon_core::playbook::Step::Message {
            to: klaxon_core::playbook::Target::Channel,
            text: "The runbook for “database”: https://wiki.example/runbooks/db".into(),
        }]
    );
}
