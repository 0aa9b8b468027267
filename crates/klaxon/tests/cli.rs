//! The real binary, as a user runs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn klaxon() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_klaxon"));
    // The developer's own settings must not leak into the test.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KLAXON_")) {
        c.env_remove(k);
    }
    c
}

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

#[test]
fn serve_starts_ready_on_sqlite_with_zero_configuration_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = klaxon()
        .arg("serve")
        .current_dir(dir.path())
        .env("KLAXON_SERVER_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    let addr = first
        .split("listening on http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| {
            panic!("the first line of output should say where Klaxon listens: {first:?}")
        })
        .to_string();
    eprintln!("ready after {:?}", started.elapsed());
    assert_eq!(
        get(&addr, "/healthz"),
        (200, r#"{"status":"ok"}"#.to_string())
    );
    assert_eq!(get(&addr, "/readyz").0, 200);
    assert!(
        dir.path().join("klaxon-data/klaxon.db").exists(),
        "the default data directory"
    );

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "klaxon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
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
