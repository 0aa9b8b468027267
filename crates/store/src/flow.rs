//! The command sequence both databases share: decide, apply, write events, projection and
//! jobs, all inside the caller's transaction. Each backend supplies the statements ([`Tx`]);
//! the order of operations, and so the guarantees, live here once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use klaxon_core::{
    decide, decide_declare, Actor, Catalog, Command, Declare, Event, Incident, IncidentRef,
    PersonId, Timestamp,
};

use crate::{Applied, Effects, JobId, JobOutcome, NewJob, Request, StoreError};

/// One open transaction of a backend.
pub(crate) trait Tx: Send {
    /// Allocates the next incident number; the transaction holds it until commit, so two
    /// declarations never get the same one and an aborted one leaves no gap.
    fn next_incident_number(&mut self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Loads the projection and locks it against concurrent commands until commit.
    fn load_incident(
        &mut self,
        r: IncidentRef,
    ) -> impl Future<Output = Result<Option<Incident>, StoreError>> + Send;
    /// Writes the projection: all of it for a new incident (`before` is `None`), and of an
    /// existing one only the rows of its own that differ from `before` (an action on the
    /// timeline changes none of its members, services, labels or searchable fields, so it
    /// writes one row, not ten).
    fn save_incident(
        &mut self,
        incident: &Incident,
        before: Option<&Indexed>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The incident a declaration with this origin made, if one did.
    fn incident_by_origin(
        &mut self,
        origin: &str,
    ) -> impl Future<Output = Result<Option<Incident>, StoreError>> + Send;
    fn set_origin(
        &mut self,
        r: IncidentRef,
        origin: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The events, with the searchable text of those that have any: one statement for the
    /// events and one for their text (a few, for a long list), not one or two an event.
    fn insert_events(
        &mut self,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn insert_jobs(
        &mut self,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<JobId>, StoreError>> + Send;
}

pub(crate) async fn declare<T: Tx>(
    tx: &mut T,
    req: &Request<'_, Declare>,
    origin: Option<&str>,
) -> Result<Applied, StoreError> {
    if let Some(origin) = origin {
        if let Some(incident) = tx.incident_by_origin(origin).await? {
            return Ok(Applied {
                incident,
                events: Vec::new(),
                jobs: Vec::new(),
            });
        }
    }
    // Validate before taking a number, so a refused declaration costs nothing.
    let kinds = decide_declare(req.catalog, &req.command)?;
    let number = tx.next_incident_number().await?;
    let reference = IncidentRef::new(number)
        .ok_or_else(|| StoreError::Corrupt(format!("incident counter gave {number}")))?;
    let events: Vec<Event> = kinds
        .into_iter()
        .zip(1..)
        .map(|(kind, seq)| Event {
            incident: reference,
            seq,
            at: req.at,
            actor: req.actor.clone(),
            kind,
        })
        .collect();
    let incident = Incident::replay(&events)
        .ok_or_else(|| StoreError::Corrupt("a declaration produced no incident".into()))?;
    tx.save_incident(&incident, None).await?;
    if let Some(origin) = origin {
        tx.set_origin(reference, origin).await?;
    }
    write_events_and_jobs(tx, incident, events, req).await
}

pub(crate) async fn execute<T: Tx>(
    tx: &mut T,
    reference: IncidentRef,
    req: &Request<'_, Command>,
) -> Result<Applied, StoreError> {
    execute_commands(tx, reference, req, std::slice::from_ref(&req.command)).await
}

/// Decides and applies each command in turn against the state the previous ones left; the
/// first refusal refuses them all.
pub(crate) async fn execute_commands<T: Tx, C: Sync>(
    tx: &mut T,
    reference: IncidentRef,
    req: &Request<'_, C>,
    commands: &[Command],
) -> Result<Applied, StoreError> {
    let timed: Vec<(&Command, Timestamp)> = commands.iter().map(|c| (c, req.at)).collect();
    execute_timed(tx, reference, req, &timed).await
}

/// [`execute_commands`] with each command's own time, which its events carry.
async fn execute_timed<T: Tx, C: Sync>(
    tx: &mut T,
    reference: IncidentRef,
    req: &Request<'_, C>,
    commands: &[(&Command, Timestamp)],
) -> Result<Applied, StoreError> {
    let mut incident = tx
        .load_incident(reference)
        .await?
        .ok_or_else(|| StoreError::NotFound(reference.to_string()))?;
    let before = Indexed::of(&incident);
    let mut events = Vec::new();
    for (command, at) in commands {
        for kind in decide(req.catalog, &incident, command)? {
            let event = Event {
                incident: reference,
                seq: incident.version + 1,
                at: *at,
                actor: req.actor.clone(),
                kind,
            };
            incident.apply(&event);
            events.push(event);
        }
    }
    if events.is_empty() {
        return Ok(Applied {
            incident,
            events,
            jobs: Vec::new(),
        });
    }
    tx.save_incident(&incident, Some(&before)).await?;
    write_events_and_jobs(tx, incident, events, req).await
}

async fn write_events_and_jobs<T: Tx, C: Sync>(
    tx: &mut T,
    incident: Incident,
    events: Vec<Event>,
    req: &Request<'_, C>,
) -> Result<Applied, StoreError> {
    tx.insert_events(&events).await?;
    let new_jobs = req.effects.jobs(&incident, &events);
    let jobs = if new_jobs.is_empty() {
        Vec::new()
    } else {
        tx.insert_jobs(&new_jobs, req.at).await?
    };
    Ok(Applied {
        incident,
        events,
        jobs,
    })
}

/// What the timeline needs of a job whose outcome was recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finished<'a> {
    pub id: JobId,
    pub kind: &'a str,
    pub incident: Option<IncidentRef>,
}

/// A job whose outcome was recorded, with what goes on its incident's timeline for it.
pub(crate) struct Outcome<'a> {
    pub job: Finished<'a>,
    pub outcome: &'a JobOutcome,
    pub now: Timestamp,
    pub effects: &'a Arc<dyn Effects>,
}

impl<'a> Outcome<'a> {
    /// The outcome of job `id`, of `kind` and for incident number `incident` as its row says.
    pub fn of(
        id: JobId,
        (kind, incident): (&'a str, Option<i64>),
        outcome: &'a JobOutcome,
        now: Timestamp,
        effects: &'a Arc<dyn Effects>,
    ) -> Self {
        let incident = incident.and_then(|n| IncidentRef::new(u64::try_from(n).ok()?));
        Outcome {
            job: Finished { id, kind, incident },
            outcome,
            now,
            effects,
        }
    }
}

/// After jobs' attempts are recorded: a success with something to show, or a final failure,
/// goes on its incident's timeline in the same transaction, with the jobs that causes (a
/// headline that shows the new ticket's link). An incident at a time, in the order of their
/// numbers, so that two transactions of outcomes never lock two incidents in opposite orders;
/// within one incident in the order given, and the neighbouring outcomes of one incident (with
/// the same effects) as one change: one load and one save of the incident, not one each.
pub(crate) async fn record_on_timeline<T: Tx>(
    tx: &mut T,
    outcomes: &[Outcome<'_>],
) -> Result<(), StoreError> {
    let mut entries: Vec<(IncidentRef, Command, &Outcome)> = outcomes
        .iter()
        .filter_map(|o| Some((o.job.incident?, timeline_command(o)?, o)))
        .collect();
    entries.sort_by_key(|(incident, ..)| *incident);
    for group in
        entries.chunk_by(|(a, _, x), (b, _, y)| a == b && Arc::ptr_eq(x.effects, y.effects))
    {
        let (incident, _, first) = &group[0];
        let commands: Vec<(&Command, Timestamp)> =
            group.iter().map(|(_, c, o)| (c, o.now)).collect();
        // Recording an action is never refused, so the catalog it is checked against is moot.
        let catalog = Catalog::default();
        let req = Request {
            command: (),
            actor: Actor::system("klaxon"),
            at: group.iter().map(|(.., o)| o.now).max().unwrap_or(first.now),
            catalog: &catalog,
            effects: first.effects.as_ref(),
        };
        match execute_timed(tx, *incident, &req, &commands).await {
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The command that puts an outcome on its incident's timeline, if it goes on one.
fn timeline_command(o: &Outcome) -> Option<Command> {
    Some(match o.outcome {
        JobOutcome::Succeeded {
            timeline: Some(entry),
            ..
        } => Command::RecordActionSucceeded {
            job_id: o.job.id.0,
            action: o.job.kind.to_string(),
            detail: entry.detail.clone(),
            link: entry.link.clone(),
        },
        JobOutcome::Dead { error } => Command::RecordActionFailed {
            job_id: o.job.id.0,
            action: o.job.kind.to_string(),
            error: error.clone(),
        },
        _ => return None,
    })
}

/// The parts of an incident that have rows of their own beside the incident's, as they were
/// before a command: what [`Tx::save_incident`] compares to know what to write again.
pub(crate) struct Indexed {
    pub(crate) members: BTreeSet<PersonId>,
    pub(crate) services: Vec<String>,
    pub(crate) labels: BTreeMap<String, String>,
    /// [`fields_text`].
    pub(crate) text: String,
}

impl Indexed {
    pub(crate) fn of(i: &Incident) -> Indexed {
        Indexed {
            members: i.members.clone(),
            services: i.services.clone(),
            labels: i.labels.clone(),
            text: fields_text(i),
        }
    }
}

/// Text that search should find for an incident's fields.
pub(crate) fn fields_text(i: &Incident) -> String {
    let mut s = String::with_capacity(i.title.len() + i.summary.len() + i.impact.len() + 32);
    for part in [&i.title, &i.summary, &i.impact] {
        s.push_str(part);
        s.push('\n');
    }
    s.push_str(&i.services.join(" "));
    s
}
