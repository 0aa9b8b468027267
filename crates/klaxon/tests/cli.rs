//! The real binary, as a user runs it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::klaxon;

/// A plain HTTP/1.1 GET: status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `klaxon serve` in `dir` with zero configuration on a free port: the process, its address,
/// and its second line of output (how to sign in).
fn start_server(dir: &std::path::Path) -> (std::process::Child, String, String) {
    let (child, addr, mut lines) = common::serve(dir, &[]);
    let second = lines.next().expect("a second line").unwrap();
    (child, addr, second)
}

/// The password in `klaxon serve`'s sign-in line, when it made one.
fn password_in(line: &str) -> Option<String> {
    line.split("with the password ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(String::from)
}

fn stop(mut child: std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "klaxon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_starts_ready_on_sqlite_with_zero_configuration_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (child, addr, sign_in) = start_server(dir.path());
    eprintln!("ready after {:?}", started.elapsed());
    let password = password_in(&sign_in)
        .unwrap_or_else(|| panic!("the second line should say how to sign in: {sign_in:?}"));
    assert_eq!(password.len(), 20, "a generated admin password");
    assert_eq!(
        get(&addr, "/healthz"),
        (200, r#"{"status":"ok"}"#.to_string())
    );
    assert_eq!(get(&addr, "/readyz").0, 200);
    assert!(
        dir.path().join("klaxon-data/klaxon.db").exists(),
        "the default data directory"
    );
    let status = stop(child);
    assert!(status.success(), "{status}");

    // Restarted on the same data, it keeps the admin account and prints no new password.
    let (child, _, sign_in) = start_server(dir.path());
    assert!(
        sign_in.contains("password is the one set or printed before"),
        "{sign_in}"
    );
    assert_eq!(password_in(&sign_in), None);
    stop(child);
}

fn run(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut c = klaxon();
    c.args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_cli_declares_lists_shows_and_resolves_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, _) = start_server(dir.path());
    // The first token needs no server: it goes straight to the database in ./klaxon-data.
    let (code, out, err) = run(
        dir.path(),
        &[],
        &["token", "create", "--name", "ci", "--role", "responder"],
    );
    assert_eq!(code, 0, "{err}");
    let token = out.lines().next().unwrap().to_string();
    assert!(token.starts_with("klx_"), "{out}");
    let url = format!("http://{addr}");
    let env = [
        ("KLAXON_URL", url.as_str()),
        ("KLAXON_TOKEN", token.as_str()),
    ];

    let (code, out, err) = run(
        dir.path(),
        &env,
        &[
            "declare",
            "Checkout is down",
            "--severity",
            "SEV2",
            "--service",
            "checkout",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Declared INC-1")
            && out.contains("SEV2")
            && out.contains(&format!("{url}/incidents/INC-1")),
        "{out}"
    );
    let (_, out, _) = run(dir.path(), &env, &["list", "--open"]);
    assert!(
        out.contains("INC-1") && out.contains("Checkout is down") && out.contains("triage"),
        "{out}"
    );
    let (code, out, _) = run(dir.path(), &env, &["resolve", "INC-1"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Resolved INC-1") && out.contains("resolved"),
        "{out}"
    );
    let (_, out, _) = run(dir.path(), &env, &["show", "INC-1"]);
    assert!(
        out.contains("Timeline:") && out.contains("moved the status from triage to resolved"),
        "{out}"
    );
    let (_, out, _) = run(dir.path(), &env, &["show", "INC-1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "resolved");
    assert_eq!(
        run(dir.path(), &env, &["list", "--open"]).1.trim(),
        "No incident matches."
    );

    let (code, _, err) = run(dir.path(), &env, &["show", "INC-9"]);
    assert_eq!(code, 1);
    assert!(err.contains("INC-9 does not exist"), "{err}");
    let (code, _, err) = run(dir.path(), &env, &["declare", "x", "--severity", "SEV9"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown severity `SEV9`: use one of SEV1, SEV2, SEV3, SEV4"),
        "{err}"
    );
    let (code, _, err) = run(dir.path(), &[("KLAXON_URL", url.as_str())], &["list"]);
    assert_eq!(code, 1);
    assert!(err.contains("no API token: set KLAXON_TOKEN"), "{err}");
    let (_, _, err) = run(
        dir.path(),
        &[("KLAXON_URL", url.as_str()), ("KLAXON_TOKEN", "klx_wrong")],
        &["list"],
    );
    assert!(
        err.contains("unknown or revoked") && err.contains("check KLAXON_TOKEN"),
        "{err}"
    );
    stop(child);
    let (code, _, err) = run(dir.path(), &env, &["list"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("cannot reach Klaxon at {url}")),
        "{err}"
    );
}

#[test]
fn check_config_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("klaxon.toml");
    std::fs::write(&file, "[server]\nlisten = \"nowhere\"\ncolour = \"red\"\n").unwrap();
    let out = klaxon()
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("server.colour (line 3): unknown field `colour`"),
        "{err}"
    );

    let out = klaxon()
        .arg("check-config")
        .env("KLAXON_SERVER_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("server.listen: `nowhere` is not an address and port"));

    // serve refuses to start on a bad configuration, with the same report.
    let out = klaxon()
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("Run `klaxon check-config`"));
}

#[test]
fn the_default_file_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let out = klaxon().args(["config", "default"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("# Klaxon configuration."));
    assert!(
        text.contains("[server]") && text.contains("listen = \"127.0.0.1:8080\""),
        "{text}"
    );
    let file = dir.path().join("klaxon.toml");
    std::fs::write(&file, text).unwrap();
    let out = klaxon()
        .arg("check-config")
        .env("KLAXON_CONFIG", &file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap().contains("is valid"));
}

#[test]
fn a_simulated_scenario_says_what_the_playbooks_would_do_and_when() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("checkout.toml");
    std::fs::write(
        &scenario,
        "title = \"Checkout is down\"\nduration = \"2h\"\n\
         [[at]]\ntime = \"3m\"\nlead = \"Ada\"\n\
         [[at]]\ntime = \"7m\"\nseverity = \"SEV1\"\n\
         [[at]]\ntime = \"40m\"\nseverity = \"SEV2\"\nnote = \"Rolled back v42\"\n\
         [[at]]\ntime = \"70m\"\nstatus = \"resolved\"\n",
    )
    .unwrap();
    let out = klaxon()
        .args(["playbook", "simulate"])
        .arg(&scenario)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sev1 = "[status-updates-sev1] in the incident's channel: INC-1 is SEV1: time for a status update (every 15m at SEV1). Post it with `/incident note` or the status page.";
    let expected = [
        "Simulating \"Checkout is down\" for 2h with the playbooks severity-nudge, status-updates-sev1, status-updates-sev2, name-a-person, lead-handover, after-resolve:".to_string(),
        "     0m  INC-1 declared: Checkout is down".into(),
        "     3m  Ada becomes lead".into(),
        "     5m  [severity-nudge] in the incident's channel: INC-1 still has no severity. Set one with `/incident severity SEV1` (to SEV4), or the incident page: https://klaxon.example/incidents/INC-1".into(),
        "     7m  severity SEV1".into(),
        format!("    22m  {sev1}"),
        format!("    37m  {sev1}"),
        "    40m  severity SEV2, note: Rolled back v42".into(),
        "    52m  [status-updates-sev1] stopped: its condition holds".into(),
        "  1h10m  status resolved".into(),
        "  1h10m  [status-updates-sev2] stopped: its condition holds".into(),
        "  2h00m  end of the simulation. Nothing was sent anywhere.".into(),
    ];
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim_end(),
        expected.join("\n")
    );
    assert!(
        !dir.path().join("klaxon-data").exists(),
        "a simulation touches no real data"
    );

    // A webhook step is reported, not called: nothing listens on the discard port, and a real
    // call would fail and be retried instead of being reported.
    let config = dir.path().join("klaxon.toml");
    std::fs::write(
        &config,
        "[incidents]\ndefault_playbooks = false\n\
         [[playbooks]]\nname = \"tell-the-cmdb\"\ntrigger = \"declared\"\n\
         steps = [{ webhook = { url = \"http://127.0.0.1:9/hook\" } }]\n",
    )
    .unwrap();
    let out = klaxon()
        .args(["playbook", "simulate"])
        .arg(&scenario)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("     0m  [tell-the-cmdb] would call the webhook http://127.0.0.1:9/hook"),
        "{text}"
    );

    // The integrations' own rules and the steps that reach them are reported too; the vendors
    // are on the discard port, where a real call would fail.
    std::fs::write(
        &config,
        "[incidents]\ndefault_playbooks = false\n\
         [pagerduty]\nevents_url = \"http://127.0.0.1:9\"\nrouting_key = \"R\"\n\
         [[playbooks]]\nname = \"sev1-ticket\"\ntrigger = { field_changed = \"severity\" }\n\
         when = { severity_is = \"SEV1\" }\nsteps = [{ page = {} }]\n",
    )
    .unwrap();
    let out = klaxon()
        .args(["playbook", "simulate"])
        .arg(&scenario)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "     7m  [sev1-ticket] would page on-call",
        "     7m  [pagerduty] would send PagerDuty a trigger event",
        "  1h10m  [pagerduty] would send PagerDuty a resolve event",
    ] {
        assert!(text.contains(line), "{line}\nnot in\n{text}");
    }

    std::fs::write(&scenario, "title = \"x\"\nduration = \"soon\"\n").unwrap();
    let out = klaxon()
        .args(["playbook", "simulate"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("is not valid") && err.contains("`soon` is not a duration"),
        "{err}"
    );
}
