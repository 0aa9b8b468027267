//! Starting the real binary, for the tests in this directory.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// The binary with none of the developer's own `KLAXON_*` settings.
pub fn klaxon() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_klaxon"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KLAXON_")) {
        c.env_remove(k);
    }
    c
}

/// `klaxon serve` in `dir` on a free port with `settings`: the process, its address and the
/// rest of its output. Its log shows on stderr with `KLAXON_TEST_SHOW_LOGS` set.
pub fn serve(
    dir: &Path,
    settings: &[(&str, &str)],
) -> (Child, String, Lines<BufReader<ChildStdout>>) {
    let mut child = klaxon()
        .arg("serve")
        .current_dir(dir)
        .env("KLAXON_SERVER_LISTEN", "127.0.0.1:0")
        .envs(settings.iter().copied())
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("KLAXON_TEST_SHOW_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
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
    (child, addr, lines)
}
