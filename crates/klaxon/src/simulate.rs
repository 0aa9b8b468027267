//! `klaxon playbook simulate SCENARIO`: runs a scripted incident through the playbooks on a
//! virtual clock and says what would happen and when, calling nothing outside. It is the real
//! engine — the store (a throw-away SQLite file), the job runner, the chat jobs, the playbook
//! steps — with a chat platform that only records, so what it prints is what Klaxon would do.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use klaxon_chat::effects::ChatEffects;
use klaxon_chat::handlers::ChatJobs;
use klaxon_chat::recording::RecordingPlatform;
use klaxon_chat::{ChatSettings, Platforms};
use klaxon_core::playbook::{Span, Step, Target};
use klaxon_core::{from_millis, Actor, Command, Declare, NewPerson, PersonId, Timestamp};
use klaxon_jobs::{Clock, ManualClock, Runner, RunnerConfig};
use klaxon_playbooks::{PlaybookEffects, StepHandler, STEP};
use klaxon_store::{AllEffects, Effects, Request, SqliteStore, Store};
use serde::Deserialize;

use crate::config::Loaded;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    title: String,
    #[serde(default)]
    severity: Option<String>,
    /// How long to follow the incident.
    duration: Span,
    #[serde(default)]
    at: Vec<Moment>,
}

/// What happens at a moment, counted from the declaration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Moment {
    time: Span,
    severity: Option<String>,
    status: Option<String>,
    /// A person's name: they become the lead.
    lead: Option<String>,
    /// Role to a person's name.
    #[serde(default)]
    role: BTreeMap<String, String>,
    summary: Option<String>,
    note: Option<String>,
}

fn offset(t0: Timestamp, t: Timestamp) -> String {
    let m = (t - t0).num_minutes();
    if m >= 60 {
        format!("{:>3}h{:02}m", m / 60, m % 60)
    } else {
        format!("{m:>6}m")
    }
}

fn request<'a, C>(
    command: C,
    at: Timestamp,
    catalog: &'a klaxon_core::Catalog,
    effects: &'a dyn Effects,
) -> Request<'a, C> {
    Request {
        command,
        actor: Actor::system("scenario"),
        at,
        catalog,
        effects,
    }
}

pub async fn run(loaded: Loaded, scenario: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(scenario)
        .with_context(|| format!("cannot read the scenario {}", scenario.display()))?;
    let sc: Scenario = toml::from_str(&text)
        .map_err(|e| anyhow!("the scenario {} is not valid: {e}", scenario.display()))?;
    let catalog = Arc::new(loaded.catalog);
    let playbooks = Arc::new(loaded.config.playbooks());

    let dir = std::env::temp_dir().join(format!(
        "klaxon-simulate-{}-{}",
        std::process::id(),
        klaxon_core::now().timestamp_millis()
    ));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("simulation.db")).await?);
    let t0 = from_millis(1_767_225_600_000); // 2026-01-01 00:00 UTC: any fixed instant will do
    let clock = Arc::new(ManualClock::new(t0));
    let recording = Arc::new(RecordingPlatform::default());
    let mut platforms = Platforms::default();
    platforms.add(recording.clone());
    let public_url = "https://klaxon.example".to_string();
    let effects: Arc<dyn Effects> = Arc::new(AllEffects(vec![
        Arc::new(ChatEffects {
            platforms: vec![("simulated", true)],
            on_request: Vec::new(),
        }),
        Arc::new(PlaybookEffects {
            playbooks: playbooks.clone(),
            catalog: catalog.clone(),
        }),
        // The integrations' own rules (page at SEV2 …), reported, not run.
        Arc::new(klaxon_integrations::IntegrationEffects {
            settings: Arc::new(loaded.config.integrations()),
            catalog: catalog.clone(),
        }),
    ]));
    let mut runner = Runner::new(store.clone(), clock.clone(), RunnerConfig::default());
    for kind in klaxon_integrations::KINDS {
        runner.register(kind, klaxon_integrations::DryRun);
    }
    Arc::new(ChatJobs {
        store: store.clone(),
        catalog: catalog.clone(),
        platforms: platforms.clone(),
        settings: ChatSettings {
            public_url: public_url.clone(),
        },
        announce_in: vec![("simulated", "incidents".into())],
        updating: Default::default(),
    })
    .register(&mut runner);
    runner.register(
        STEP,
        StepHandler {
            store: store.clone(),
            catalog: catalog.clone(),
            playbooks: playbooks.clone(),
            platforms,
            incidents_channels: vec![("simulated", "incidents".into())],
            public_url,
            leads: loaded.config.incidents.leads.clone(),
            dry_run: true,
            integrations: Arc::new(loaded.config.integrations()),
            actions: None,
        },
    );
    let runner = Arc::new(runner);

    let names: Vec<&str> = playbooks.iter().map(|p| p.name.as_str()).collect();
    let mut out = vec![format!(
        "Simulating \"{}\" for {} with the playbooks {}:",
        sc.title,
        sc.duration,
        names.join(", ")
    )];
    let mut people: BTreeMap<String, PersonId> = BTreeMap::new();

    let declare = Declare {
        title: sc.title.clone(),
        severity: sc.severity.clone(),
        ..Default::default()
    };
    let declared = store
        .declare(request(declare, t0, &catalog, effects.as_ref()))
        .await?;
    let r = declared.incident.reference;
    out.push(format!("{}  {r} declared: {}", offset(t0, t0), sc.title));
    let end = t0 + chrono::Duration::from_std(sc.duration.0)?;
    let mut moments = sc.at;
    moments.sort_by_key(|m| m.time.0);
    let mut moments = moments.into_iter().peekable();
    let mut reported = std::collections::BTreeSet::new();
    let mut now = t0;
    loop {
        runner.drain().await?;
        recording.take();
        let mut finished: Vec<_> = store
            .incident_jobs(r)
            .await?
            .into_iter()
            .filter(|j| {
                (j.kind == STEP || klaxon_integrations::KINDS.contains(&j.kind.as_str()))
                    && j.finished_at.is_some()
                    && !reported.contains(&j.id)
            })
            .collect();
        finished.sort_by_key(|j| (j.finished_at, j.id));
        for j in finished {
            reported.insert(j.id);
            let name = j.payload["playbook"]
                .as_str()
                .unwrap_or_else(|| j.kind.split('.').next().unwrap_or_default());
            let step = playbooks.iter().find(|p| p.name == name).and_then(|p| {
                p.steps
                    .get(j.payload["step"].as_u64().unwrap_or(0) as usize)
            });
            let to = match step {
                Some(Step::Message { to, .. }) | Some(Step::Remind { to, .. }) => match to {
                    Target::Channel => "in the incident's channel".to_string(),
                    Target::Incidents => "in the incidents channel".to_string(),
                    Target::Role(role) => format!("to the {role} (direct message)"),
                    Target::NextLead => "to the next incident lead (direct message)".to_string(),
                },
                _ => "on the timeline".to_string(),
            };
            let at = offset(t0, j.finished_at.unwrap_or(now));
            let result = j.result.unwrap_or_default();
            if let Some(text) = result["text"].as_str().or(result["noted"].as_str()) {
                out.push(format!("{at}  [{name}] {to}: {text}"));
            } else if let Some(url) = result["would_call"].as_str() {
                out.push(format!("{at}  [{name}] would call the webhook {url}"));
            } else if let Some(what) = result["would"].as_str() {
                out.push(format!("{at}  [{name}] would {what}"));
            } else if let Some(why) = result["stopped"].as_str().or(result["skipped"].as_str()) {
                out.push(format!("{at}  [{name}] stopped: {why}"));
            }
        }
        let next_moment = moments
            .peek()
            .map(|m| t0 + chrono::Duration::from_std(m.time.0).unwrap_or_default());
        let next_job = store.next_due().await?;
        let next = match (next_moment, next_job) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        if next > end {
            break;
        }
        now = next.max(now);
        clock.set(now);
        while moments
            .peek()
            .is_some_and(|m| t0 + chrono::Duration::from_std(m.time.0).unwrap_or_default() <= now)
        {
            let m = moments.next().expect("peeked");
            let mut commands = Vec::new();
            let mut said = Vec::new();
            if let Some(s) = m.severity {
                said.push(format!("severity {s}"));
                commands.push(Command::SetSeverity { severity: Some(s) });
            }
            if let Some(s) = m.status {
                said.push(format!("status {s}"));
                commands.push(Command::ChangeStatus { status: s });
            }
            let mut roles: Vec<(String, String)> = m.role.into_iter().collect();
            if let Some(lead) = m.lead {
                roles.insert(0, (klaxon_core::LEAD_ROLE.into(), lead));
            }
            for (role, name) in roles {
                let id = match people.get(&name) {
                    Some(id) => *id,
                    None => {
                        let p = store
                            .create_person(
                                &NewPerson {
                                    name: name.clone(),
                                    ..Default::default()
                                },
                                now,
                            )
                            .await?;
                        people.insert(name.clone(), p.id);
                        p.id
                    }
                };
                said.push(format!("{name} becomes {role}"));
                commands.push(Command::AssignRole { role, person: id });
            }
            if let Some(s) = m.summary {
                said.push("summary updated".into());
                commands.push(Command::SetSummary { summary: s });
            }
            if let Some(n) = m.note {
                said.push(format!("note: {n}"));
                commands.push(Command::AddNote { text: n });
            }
            store
                .execute_all(r, request(commands, now, &catalog, effects.as_ref()))
                .await
                .map_err(|e| anyhow!("at {}: {e}", m.time))?;
            out.push(format!("{}  {}", offset(t0, now), said.join(", ")));
        }
        if clock.now() >= end {
            break;
        }
    }
    out.push(format!(
        "{}  end of the simulation. Nothing was sent anywhere.",
        offset(t0, end)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out.join("\n"))
}
