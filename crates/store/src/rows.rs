//! Reading rows into domain values, written once for both databases. Incidents and events
//! are stored as JSON documents (with indexed columns beside them for filtering), so reading
//! one is deserialising one column; jobs and people are plain columns.

use klaxon_core::{from_millis, Access, Event, Incident, IncidentRef, Person, PersonId};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::{Job, JobId, JobState, StoreError};

fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(s)?)
}

fn opt_json(s: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    s.as_deref().map(json).transpose()
}

pub(crate) fn incident<'r, R>(row: &'r R) -> Result<Incident, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    json(&row.try_get::<String, _>("state")?)
}

pub(crate) fn event<'r, R>(row: &'r R) -> Result<Event, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    json(&row.try_get::<String, _>("data")?)
}

pub(crate) fn person<'r, R>(row: &'r R) -> Result<Person, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Person {
        id: PersonId(row.try_get("id")?),
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        slack_user_id: row.try_get("slack_user_id")?,
        matrix_id: row.try_get("matrix_id")?,
        login: row.try_get("login")?,
        access: access(&row.try_get::<String, _>("access")?)?,
        created_at: from_millis(row.try_get("created_at_ms")?),
    })
}

pub(crate) fn job<'r, R>(row: &'r R) -> Result<Job, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    let incident: Option<i64> = row.try_get("incident_number")?;
    let count = |c: &'r str| -> Result<u32, StoreError> {
        Ok(u32::try_from(row.try_get::<i64, _>(c)?).unwrap_or(u32::MAX))
    };
    Ok(Job {
        id: JobId(row.try_get("id")?),
        key: row.try_get("key")?,
        kind: row.try_get("kind")?,
        payload: json(&row.try_get::<String, _>("payload")?)?,
        incident: incident.and_then(|n| IncidentRef::new(n as u64)),
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown job state `{state}`")))?,
        attempts: count("attempts")?,
        max_attempts: count("max_attempts")?,
        run_at: from_millis(row.try_get("run_at_ms")?),
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row
            .try_get::<Option<i64>, _>("lease_until_ms")?
            .map(from_millis),
        last_error: row.try_get("last_error")?,
        checkpoint: opt_json(row.try_get("checkpoint")?)?,
        result: opt_json(row.try_get("result")?)?,
        created_at: from_millis(row.try_get("created_at_ms")?),
        updated_at: from_millis(row.try_get("updated_at_ms")?),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at_ms")?
            .map(from_millis),
    })
}

pub(crate) fn access(s: &str) -> Result<Access, StoreError> {
    Access::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown access level `{s}`")))
}

pub(crate) fn api_token<'r, R>(row: &'r R) -> Result<crate::ApiToken, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        access: access(&row.try_get::<String, _>("access")?)?,
        person: row.try_get::<Option<i64>, _>("person_id")?.map(PersonId),
        created_at: from_millis(row.try_get("created_at_ms")?),
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at_ms")?
            .map(from_millis),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at_ms")?
            .map(from_millis),
    })
}

pub(crate) fn chat_channel<'r, R>(row: &'r R) -> Result<crate::ChatChannel, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let n: i64 = row.try_get("incident_number")?;
    Ok(crate::ChatChannel {
        platform: row.try_get("platform")?,
        channel_id: row.try_get("channel_id")?,
        incident: IncidentRef::new(n as u64)
            .ok_or_else(|| StoreError::Corrupt(format!("incident number {n}")))?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        headline_id: row.try_get("headline_id")?,
        headline_digest: row.try_get("headline_digest")?,
        topic: row.try_get("topic")?,
    })
}
