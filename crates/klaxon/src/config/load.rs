//! Loading: the file, the environment, secret files, then validation, collecting every
//! problem with its key, its line and its fix.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use klaxon_core::Catalog;

use super::Config;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where: `server.listen`, or an environment variable's name.
    pub key: String,
    /// The line in the file, when the problem is in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {line}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Every problem found, so that one run of `klaxon check-config` lists them all.
#[derive(Debug, Clone, PartialEq)]
pub struct Problems {
    pub source: String,
    pub list: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the configuration ({}) has {} problem(s):",
            self.source,
            self.list.len()
        )?;
        for p in &self.list {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Variables that are not settings: the CLI's own, and the tests'.
const NOT_SETTINGS: &[&str] = &["KLAXON_CONFIG", "KLAXON_URL", "KLAXON_TOKEN"];

#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub catalog: Catalog,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

/// Loads the configuration from an optional file and the given environment.
pub fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Loaded, Problems> {
    let source = match path {
        Some(p) => p.display().to_string(),
        None => "built-in defaults and environment".to_string(),
    };
    let fail = |list: Vec<Problem>| Problems {
        source: source.clone(),
        list,
    };
    let text = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|e| {
            fail(vec![Problem {
                key: "--config".into(),
                line: None,
                message: format!("cannot read {}: {e}; check the path, or leave --config out to use the defaults", p.display()),
            }])
        })?,
        None => String::new(),
    };
    let mut problems = Vec::new();
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            return Err(fail(vec![Problem {
                key: "file".into(),
                line,
                message: format!("not valid TOML: {}", e.message()),
            }]));
        }
    };
    let schema = toml::Table::try_from(Config::default()).expect("the defaults serialise");
    read_secret_files(&mut table, &schema, &text, &mut problems);
    apply_env(&mut table, &schema, env, &mut problems);

    let config: Option<Config> = match serde_path_to_error::deserialize(toml::Value::Table(table)) {
        Ok(c) => Some(c),
        Err(e) => {
            let key = e.path().to_string();
            let message = e.inner().message().to_string();
            let hint = if message.starts_with("unknown field") {
                "; remove it or correct its spelling"
            } else {
                ""
            };
            problems.push(Problem {
                line: line_of(&text, &key),
                key,
                message: format!("{message}{hint}"),
            });
            None
        }
    };
    let Some(mut config) = config else {
        return Err(fail(problems));
    };
    // Playbooks (and commands) may also live in files of their own, in `playbooks/` beside
    // the configuration file.
    let mut sources = vec![(String::new(), text.clone())];
    if let Some(dir) = path.and_then(Path::parent).map(|d| d.join("playbooks")) {
        read_playbook_dir(&dir, &mut config, &mut sources, &mut problems);
    }
    validate(&config, &text, &mut problems);
    let catalog = match Catalog::new(
        config.severities.levels.clone(),
        config.statuses.clone(),
        config.roles.list.clone(),
        config.incidents.types.clone(),
    ) {
        Ok(c) => Some(c),
        Err(errors) => {
            for e in errors {
                let key = match e.key.split_once('[') {
                    Some(("severities", rest)) => format!("severities.levels[{rest}"),
                    Some(("statuses", rest)) => format!("statuses.list[{rest}"),
                    Some(("roles", rest)) => format!("roles.list[{rest}"),
                    Some(("types", rest)) => format!("incidents.types[{rest}"),
                    _ => e.key.clone(),
                };
                problems.push(Problem {
                    line: line_of(&text, &key),
                    key,
                    message: e.message,
                });
            }
            None
        }
    };
    if let Some(catalog) = &catalog {
        check_playbooks(&config, catalog, &sources, &mut problems);
        let threshold = &config.deploy_freeze.severity_at_least;
        if catalog.severities.rank(threshold).is_none() {
            let key = "deploy_freeze.severity_at_least".to_string();
            problems.push(Problem {
                line: line_of(&text, &key),
                key,
                message: format!(
                    "`{threshold}` is not a severity: use one of {}",
                    catalog.severities.keys().join(", ")
                ),
            });
        }
    }
    match catalog {
        Some(catalog) if problems.is_empty() => Ok(Loaded {
            config,
            catalog,
            path: path.map(Path::to_path_buf),
        }),
        _ => Err(fail(problems)),
    }
}

/// `token_file = "/run/secrets/x"` in the file stands for `token = <contents of the file>`.
fn read_secret_files(
    table: &mut toml::Table,
    schema: &toml::Table,
    text: &str,
    problems: &mut Vec<Problem>,
) {
    for (section, value) in table.iter_mut() {
        // In `[[commands]]` and the like, every `<key>_file` reads `<key>` from a file.
        if let Some(list) = value.as_array_mut() {
            for (i, entry) in list.iter_mut().enumerate() {
                let Some(entry) = entry.as_table_mut() else {
                    continue;
                };
                let keys: Vec<String> = entry
                    .keys()
                    .filter(|k| k.ends_with("_file"))
                    .cloned()
                    .collect();
                for key in keys {
                    let full = format!("{section}[{i}].{key}");
                    let base = key.trim_end_matches("_file").to_string();
                    match entry.remove(&key) {
                        Some(toml::Value::String(path)) => match std::fs::read_to_string(&path) {
                            Ok(secret) => {
                                entry.insert(
                                    base,
                                    toml::Value::String(
                                        secret.trim_end_matches(['\n', '\r']).to_string(),
                                    ),
                                );
                            }
                            Err(e) => problems.push(Problem {
                                line: line_of(text, &full),
                                key: full,
                                message: format!("cannot read the secret file {path}: {e}"),
                            }),
                        },
                        _ => problems.push(Problem {
                            line: line_of(text, &full),
                            key: full,
                            message: "must be a file path in quotes".into(),
                        }),
                    }
                }
            }
            continue;
        }
        let (Some(values), Some(toml::Value::Table(known))) =
            (value.as_table_mut(), schema.get(section))
        else {
            continue;
        };
        let file_keys: Vec<String> = values
            .keys()
            .filter(|k| {
                k.strip_suffix("_file")
                    .is_some_and(|base| matches!(known.get(base), Some(toml::Value::String(_))))
            })
            .cloned()
            .collect();
        for key in file_keys {
            let base = key.trim_end_matches("_file").to_string();
            let full = format!("{section}.{key}");
            let Some(toml::Value::String(path)) = values.remove(&key) else {
                problems.push(Problem {
                    line: line_of(text, &full),
                    key: full,
                    message: "must be a file path in quotes".into(),
                });
                continue;
            };
            match std::fs::read_to_string(&path) {
                Ok(secret) => {
                    values.insert(
                        base,
                        toml::Value::String(secret.trim_end_matches(['\n', '\r']).to_string()),
                    );
                }
                Err(e) => problems.push(Problem {
                    line: line_of(text, &full),
                    key: full,
                    message: format!("cannot read the secret file {path}: {e}"),
                }),
            }
        }
    }
}

/// `KLAXON_SERVER_LISTEN=0.0.0.0:8080` sets `[server] listen`. A value is taken as it is for
/// a string setting, and as a TOML value (`true`, `16`, `["a", "b"]`) for any other.
fn apply_env(
    table: &mut toml::Table,
    schema: &toml::Table,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("KLAXON_") else {
            continue;
        };
        if NOT_SETTINGS.contains(&name.as_str()) || rest.starts_with("TEST_") {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        // The longest section the name starts with: `deploy_freeze` before a `deploy` would.
        let longest = schema
            .keys()
            .filter(|s| {
                lower.len() > s.len() + 1
                    && lower.starts_with(s.as_str())
                    && lower.as_bytes()[s.len()] == b'_'
            })
            .max_by_key(|s| s.len())
            .map(|s| (s.as_str(), &lower[s.len() + 1..]));
        let Some((section, key)) = longest.or_else(|| lower.split_once('_')) else {
            problems.push(Problem {
                key: name.clone(),
                line: None,
                message: "name a setting as KLAXON_<SECTION>_<KEY>, such as KLAXON_SERVER_LISTEN"
                    .into(),
            });
            continue;
        };
        let Some(toml::Value::Table(known)) = schema.get(section) else {
            let sections: Vec<&String> = schema.keys().collect();
            problems.push(Problem {
                key: name.clone(),
                line: None,
                message: format!(
                    "there is no [{section}] section; the sections are {}",
                    join(sections)
                ),
            });
            continue;
        };
        let (key, value) = match (known.get(key), key.strip_suffix("_file")) {
            (Some(default), _) => match coerce(raw, default) {
                Ok(v) => (key.to_string(), v),
                Err(m) => {
                    problems.push(Problem {
                        key: name.clone(),
                        line: None,
                        message: m,
                    });
                    continue;
                }
            },
            (None, Some(base)) if matches!(known.get(base), Some(toml::Value::String(_))) => {
                match std::fs::read_to_string(raw) {
                    Ok(s) => (
                        base.to_string(),
                        toml::Value::String(s.trim_end_matches(['\n', '\r']).to_string()),
                    ),
                    Err(e) => {
                        problems.push(Problem {
                            key: name.clone(),
                            line: None,
                            message: format!("cannot read the secret file {raw}: {e}"),
                        });
                        continue;
                    }
                }
            }
            _ => {
                let keys: Vec<&String> = known.keys().collect();
                problems.push(Problem {
                    key: name.clone(),
                    line: None,
                    message: format!(
                        "[{section}] has no key `{key}`; its keys are {}",
                        join(keys)
                    ),
                });
                continue;
            }
        };
        let section_table = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(t) = section_table.as_table_mut() {
            t.insert(key, value);
        }
    }
}

fn coerce(raw: &str, default: &toml::Value) -> Result<toml::Value, String> {
    if default.is_str() {
        return Ok(toml::Value::String(raw.to_string()));
    }
    let parsed: toml::Table = format!("v = {raw}").parse().map_err(|_| {
        format!(
            "`{raw}` is not a valid value: write it as in TOML, such as {}",
            example(default)
        )
    })?;
    let v = parsed
        .get("v")
        .cloned()
        .unwrap_or(toml::Value::Boolean(false));
    if v.same_type(default) {
        Ok(v)
    } else {
        Err(format!(
            "`{raw}` is a {} but this setting takes a {}, such as {}",
            v.type_str(),
            default.type_str(),
            example(default)
        ))
    }
}

fn example(v: &toml::Value) -> String {
    match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(_) => "[\"a\", \"b\"]".into(),
        other => other.to_string(),
    }
}

fn join<T: fmt::Display>(items: Vec<T>) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The line that sets `key` (`section.key`, or `section.list[2].name`) in the file: a best
/// guess, good enough to point a person at the right place. It looks for the innermost name
/// first, then the names around it (an inline table's key is on its array's line).
fn line_of(text: &str, key: &str) -> Option<usize> {
    let mut names: Vec<&str> = key
        .split('.')
        .map(|p| p.split('[').next().unwrap_or(p))
        .collect();
    let section = names.remove(0);
    names.reverse();
    names.iter().find_map(|name| {
        let mut in_section = false;
        text.lines().enumerate().find_map(|(i, line)| {
            let l = line.trim();
            if l.starts_with('[') {
                let header = l.trim_matches(|c| c == '[' || c == ']').trim();
                in_section = header == section || header.starts_with(&format!("{section}."));
                return None;
            }
            let sets = l
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='));
            (in_section && sets).then_some(i + 1)
        })
    })
}

fn validate(c: &Config, text: &str, problems: &mut Vec<Problem>) {
    let mut bad = |key: &str, message: String| {
        problems.push(Problem {
            key: key.into(),
            line: line_of(text, key),
            message,
        });
    };
    if c.server.listen.parse::<std::net::SocketAddr>().is_err() {
        bad(
            "server.listen",
            format!(
                "`{}` is not an address and port: write it as 127.0.0.1:8080 or 0.0.0.0:8080",
                c.server.listen
            ),
        );
    }
    let public = &c.server.public_url;
    let web = public.starts_with("http://") || public.starts_with("https://");
    if !public.is_empty() && !web {
        bad(
            "server.public_url",
            format!(
                "`{}` must start with https:// (or http://)",
                c.server.public_url
            ),
        );
    }
    if c.server.data_dir.trim().is_empty() {
        bad(
            "server.data_dir",
            "must not be empty: name a directory Klaxon may write to, such as ./klaxon-data".into(),
        );
    }
    let url = &c.database.url;
    if !(url.is_empty()
        || url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        bad("database.url", format!("`{}` is not a database URL Klaxon knows: use sqlite://PATH or postgres://USER@HOST/DB", klaxon_store::redact(url)));
    }
    if !["text", "json"].contains(&c.log.format.as_str()) {
        bad(
            "log.format",
            format!(
                "`{}` is not a log format: use \"text\" or \"json\"",
                c.log.format
            ),
        );
    }
    if tracing_subscriber::EnvFilter::try_new(&c.log.level).is_err() {
        bad(
            "log.level",
            format!(
                "`{}` is not a level: use error, warn, info, debug or trace",
                c.log.level
            ),
        );
    }
    if c.auth.session_hours == 0 || c.auth.session_hours > 24 * 90 {
        bad(
            "auth.session_hours",
            format!(
                "{} is out of range: use 1 to 2160 (90 days)",
                c.auth.session_hours
            ),
        );
    }
    if !c.auth.admin_password.is_empty() && c.auth.admin_password.chars().count() < 12 {
        bad("auth.admin_password", "is shorter than 12 characters: choose a longer one, or leave it empty to have Klaxon generate one".into());
    }
    let sl = &c.slack;
    if !(sl.api_url.starts_with("https://") || sl.api_url.starts_with("http://")) {
        bad(
            "slack.api_url",
            format!(
                "`{}` must be a URL, such as https://slack.com/api",
                sl.api_url
            ),
        );
    }
    if klaxon_core::Access::parse(&sl.default_role).is_none() {
        bad(
            "slack.default_role",
            format!(
                "`{}` is not a role: use viewer, responder or admin",
                sl.default_role
            ),
        );
    }
    match sl.mode.as_str() {
        "http" => {
            if !sl.bot_token.is_empty() && sl.signing_secret.is_empty() {
                bad("slack.signing_secret", "is needed with a bot token: copy it from the app's Basic Information page".into());
            }
        }
        "socket" => {
            if !sl.bot_token.is_empty() && !sl.app_token.starts_with("xapp-") {
                bad("slack.app_token", "Socket Mode needs an app-level token (xapp-…): create one with the connections:write scope on the app's Basic Information page".into());
            }
        }
        other => bad("slack.mode", format!("`{other}` is not a mode: use \"http\" (Slack calls Klaxon's public URL) or \"socket\" (Klaxon connects to Slack)")),
    }
    if !sl.bot_token.is_empty() && !sl.bot_token.starts_with("xoxb-") {
        bad(
            "slack.bot_token",
            "is not a bot token: it starts with xoxb- (the OAuth & Permissions page)".into(),
        );
    }
    for (keyword, url) in &c.incidents.runbooks {
        if keyword.trim().is_empty() {
            bad(
                "incidents.runbooks",
                "has an empty keyword: name the words that should bring up the runbook".into(),
            );
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bad("incidents.runbooks", format!("`{url}` (for “{keyword}”) is not a link: write it in full, like https://wiki.example/runbooks/db"));
        }
    }
    for p in &c.incidents.chat_platforms {
        let on = match c.chat_platform(p) {
            Some(on) => on,
            None => {
                bad(
                    "incidents.chat_platforms",
                    format!("`{p}` is not a chat platform: use slack or matrix"),
                );
                continue;
            }
        };
        if !on {
            bad(
                "incidents.chat_platforms",
                format!("`{p}` is not configured: set up [{p}] or leave it out"),
            );
        }
    }
    let mx = &c.matrix;
    if !mx.homeserver_url.is_empty() {
        if !(mx.homeserver_url.starts_with("https://") || mx.homeserver_url.starts_with("http://"))
        {
            bad(
                "matrix.homeserver_url",
                format!(
                    "`{}` must be a URL, such as https://matrix.example.org",
                    mx.homeserver_url
                ),
            );
        }
        let parts: Vec<&str> = mx.user_id.trim_start_matches('@').splitn(2, ':').collect();
        if !mx.user_id.starts_with('@')
            || parts.len() != 2
            || parts[0].is_empty()
            || parts[1].is_empty()
        {
            bad(
                "matrix.user_id",
                format!(
                    "`{}` is not a Matrix user id: write it as @klaxon:example.org",
                    mx.user_id
                ),
            );
        }
        if mx.access_token.is_empty() && mx.password.is_empty() {
            bad(
                "matrix.access_token",
                "is needed with a homeserver_url (or set password, and Klaxon signs in at start)"
                    .into(),
            );
        }
        if klaxon_core::Access::parse(&mx.default_role).is_none() {
            bad(
                "matrix.default_role",
                format!(
                    "`{}` is not a role: use viewer, responder or admin",
                    mx.default_role
                ),
            );
        }
        if mx.timeline_reaction.trim().is_empty() {
            bad(
                "matrix.timeline_reaction",
                "must not be empty: pick an emoji, such as 📌".into(),
            );
        }
    }
    if c.jobs.concurrency == 0 || c.jobs.concurrency > 1024 {
        bad(
            "jobs.concurrency",
            format!("{} is out of range: use 1 to 1024", c.jobs.concurrency),
        );
    }
    if c.jobs.timeout_seconds == 0 {
        bad("jobs.timeout_seconds", "must be at least 1".into());
    }
    if c.jobs.lease_seconds < 10 {
        bad("jobs.lease_seconds", format!("{} is too short: use at least 10, so that a slow database does not hand running jobs to another replica", c.jobs.lease_seconds));
    }
}

/// Every playbook checked against the catalog, each problem with the playbook's place.
/// What a file in `playbooks/` may hold.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybookFile {
    #[serde(default)]
    playbooks: Vec<klaxon_core::playbook::Playbook>,
    #[serde(default)]
    commands: Vec<klaxon_core::playbook::CustomCommand>,
}

/// Adds the playbooks and commands of every `*.toml` in `dir` (in name order) to the
/// configuration, and each file's text to `sources`, so that problems name the file.
fn read_playbook_dir(
    dir: &Path,
    config: &mut Config,
    sources: &mut Vec<(String, String)>,
    problems: &mut Vec<Problem>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for file in files {
        let label = format!(
            "playbooks/{}",
            file.file_name().unwrap_or_default().to_string_lossy()
        );
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem {
                    key: label,
                    line: None,
                    message: format!("cannot read {}: {e}", file.display()),
                });
                continue;
            }
        };
        let value: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem {
                    key: label,
                    line: e.span().map(|s| text[..s.start].lines().count().max(1)),
                    message: format!("not valid TOML: {}", e.message()),
                });
                continue;
            }
        };
        match serde_path_to_error::deserialize::<_, PlaybookFile>(toml::Value::Table(value)) {
            Ok(f) => {
                config.playbooks.extend(f.playbooks);
                config.commands.extend(f.commands);
                sources.push((label, text));
            }
            Err(e) => {
                let key = e.path().to_string();
                let message = e.inner().message().to_string();
                let hint = if message.starts_with("unknown field") {
                    "; a file in playbooks/ holds [[playbooks]] and [[commands]] only: remove it or correct its spelling"
                } else {
                    ""
                };
                problems.push(Problem {
                    line: line_of(&text, &key),
                    key: format!("{label}: {key}"),
                    message: format!("{message}{hint}"),
                });
            }
        }
    }
}

/// Where the `name = "…"` line of a playbook or command is: the file (empty for the main
/// one) and the line, the best place to point at.
fn locate(sources: &[(String, String)], name: &str) -> (String, Option<usize>) {
    let quoted = format!("\"{name}\"");
    for (label, text) in sources {
        let found = text.lines().position(|l| {
            let l = l.trim();
            l.starts_with("name") && l.contains(&quoted)
        });
        if let Some(n) = found {
            let prefix = if label.is_empty() {
                String::new()
            } else {
                format!("{label}: ")
            };
            return (prefix, Some(n + 1));
        }
    }
    (String::new(), None)
}

/// A `page_team` step needs `[pagerduty] teams`, and a team named outright must be one; an
/// `open_channel` step a configured chat platform.
fn page_team_problems(config: &Config, steps: &[klaxon_core::playbook::Step]) -> Vec<String> {
    let teams = &config.pagerduty.teams;
    let mut out = Vec::new();
    for step in steps {
        if let klaxon_core::playbook::Step::OpenChannel { platform } = step {
            if config.chat_platform(platform) != Some(true) {
                out.push(format!("its `open_channel` step names `{platform}`, which is not a configured chat platform: set up [slack] or [matrix]"));
            }
            continue;
        }
        let klaxon_core::playbook::Step::PageTeam { team } = step else {
            continue;
        };
        if teams.is_empty() {
            out.push(
                "its `page_team` step needs teams to page: list them in [pagerduty] teams".into(),
            );
        } else if !team.contains('{') && !teams.contains_key(team) {
            out.push(format!(
                "`{team}` is not in [pagerduty] teams: use one of {}",
                teams.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    out
}

fn check_playbooks(
    config: &Config,
    catalog: &Catalog,
    sources: &[(String, String)],
    problems: &mut Vec<Problem>,
) {
    let text = &sources[0].1;
    if config.incidents.default_playbooks {
        for d in klaxon_core::playbook::defaults()
            .iter()
            .filter(|d| !config.playbooks.iter().any(|p| p.name == d.name))
        {
            for message in d.problems(catalog) {
                problems.push(Problem {
                    key: "incidents.default_playbooks".into(),
                    line: None,
                    message: format!("the built-in playbook `{}` does not fit the configured catalog ({message}): replace it with a `[[playbooks]]` named `{}`, or set default_playbooks = false", d.name, d.name),
                });
            }
        }
    }
    for (key, message) in config.integrations().problems(catalog) {
        problems.push(Problem {
            line: line_of(text, &key),
            key,
            message,
        });
    }
    for (i, c) in config.commands.iter().enumerate() {
        let (file, line) = locate(sources, &c.name);
        if config.commands[..i].iter().any(|d| d.name == c.name) {
            problems.push(Problem {
                key: format!("{file}commands[{i}]"),
                line,
                message: format!("`{}` is the name of another command too", c.name),
            });
        }
        for message in page_team_problems(config, &c.steps) {
            problems.push(Problem {
                key: format!("{file}commands[{i}] ({})", c.name),
                line,
                message,
            });
        }
        for message in c.problems() {
            problems.push(Problem {
                key: format!("{file}commands[{i}] ({})", c.name),
                line,
                message,
            });
        }
    }
    let on = config.integrations().enabled();
    for (i, p) in config.playbooks.iter().enumerate() {
        let (file, line) = locate(sources, &p.name);
        let key = format!("{file}playbooks[{i}]");
        if config.playbooks[..i].iter().any(|q| q.name == p.name) {
            problems.push(Problem {
                key: key.clone(),
                line,
                message: format!(
                    "`{}` is the name of another playbook too: names must be unique",
                    p.name
                ),
            });
        }
        for step in &p.steps {
            use klaxon_core::playbook::Step;
            let (what, needs): (&str, &[&str]) = match step {
                Step::Page { .. } => ("page", &["pagerduty", "opsgenie"]),
                Step::Ticket {} => ("ticket", &["jira", "github"]),
                Step::Statuspage { .. } => ("statuspage", &["statuspage"]),
                Step::Email { .. } => ("email", &["smtp"]),
                _ => continue,
            };
            if !needs.iter().any(|n| on.contains(n)) {
                problems.push(Problem {
                    key: format!("{key} ({})", p.name),
                    line,
                    message: format!(
                        "its `{what}` step needs an integration that is not configured: set up [{}]",
                        needs.join("] or [")
                    ),
                });
            }
        }
        for message in page_team_problems(config, &p.steps)
            .into_iter()
            .chain(p.problems(catalog))
        {
            problems.push(Problem {
                key: format!("{key} ({})", p.name),
                line,
                message,
            });
        }
    }
}
