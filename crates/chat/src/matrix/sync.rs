//! Reading the homeserver: `/sync` long-polling. Each event people send in a joined room
//! becomes a durable job keyed by its event id, and only then is the sync token stored, so a
//! crash in between syncs the same events again and their jobs are the same jobs: nothing is
//! missed and nothing runs twice. The first sync of a new install only takes the token: what
//! was said before Klaxon arrived is not acted on.

use std::sync::Arc;
use std::time::Duration;

use klaxon_store::{NewJob, Store};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::api::enc;
use super::jobs::EVENT;
use super::MatrixPlatform;
use crate::ChatError;

/// The store cursor that holds the sync token.
pub const CURSOR: &str = "matrix.sync";

pub struct MatrixSync {
    pub platform: Arc<MatrixPlatform>,
    pub store: Arc<dyn Store>,
    /// Wakes the job runner when events come in.
    pub wake: Option<Arc<Notify>>,
    /// How long one `/sync` waits for something to happen.
    pub poll: Duration,
}

/// The events of a sync response worth a job: what people (not the bot) sent in joined rooms.
pub fn jobs_of(sync: &Value, me: &str) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    let Some(rooms) = sync["rooms"]["join"].as_object() else {
        return jobs;
    };
    for (room, r) in rooms {
        for e in r["timeline"]["events"].as_array().into_iter().flatten() {
            let kind = e["type"].as_str().unwrap_or_default();
            let wanted = matches!(
                kind,
                "m.room.message" | "m.reaction" | "m.room.pinned_events"
            );
            if !wanted || e["sender"] == me {
                continue;
            }
            let Some(id) = e["event_id"].as_str() else {
                continue;
            };
            jobs.push(NewJob::new(
                format!("matrix:event:{id}"),
                EVENT,
                json!({ "room": room, "event": e }),
            ));
        }
    }
    jobs
}

impl MatrixSync {
    /// One `/sync`: its jobs written, then its token. How many jobs it made.
    pub async fn once(&self) -> Result<usize, ChatError> {
        let store_err = |e: klaxon_store::StoreError| ChatError::Retryable {
            message: format!("could not record what Matrix sent: {e}"),
            retry_after: None,
        };
        let since = self.store.cursor(CURSOR).await.map_err(store_err)?;
        let filter =
            json!({ "room": { "timeline": { "limit": 100 } }, "presence": { "not_types": ["*"] } });
        let mut query = vec![
            ("filter", filter.to_string()),
            ("timeout", self.poll.as_millis().to_string()),
        ];
        if let Some(s) = &since {
            query.push(("since", s.clone()));
        }
        let api = self.platform.api();
        let v = api.call(Method::GET, "/sync", None, &query).await?;
        let next = v["next_batch"]
            .as_str()
            .ok_or_else(|| ChatError::Retryable {
                message: "Matrix /sync answered without next_batch".into(),
                retry_after: None,
            })?
            .to_string();
        let mut made = 0;
        if since.is_some() {
            let jobs = jobs_of(&v, api.user_id());
            made = jobs.len();
            if !jobs.is_empty() {
                self.store
                    .enqueue(&jobs, klaxon_core::now())
                    .await
                    .map_err(store_err)?;
            }
        }
        // Invitations (a direct message from someone): join, so they can talk to Klaxon.
        for room in v["rooms"]["invite"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let path = format!("/join/{}", enc(room));
            if let Err(e) = api.call(Method::POST, &path, Some(json!({})), &[]).await {
                tracing::warn!(%room, error = %e, "could not join a Matrix room Klaxon was invited to");
            }
        }
        self.store
            .set_cursor(CURSOR, &next)
            .await
            .map_err(store_err)?;
        if made > 0 {
            if let Some(w) = &self.wake {
                w.notify_one();
            }
        }
        Ok(made)
    }

    /// Syncs until shut down, backing off while the homeserver is away.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.once() => r,
            };
            match result {
                Ok(_) => backoff = Duration::from_millis(500),
                Err(e) => {
                    tracing::warn!(error = %e, "Matrix sync failed; trying again");
                    let wait = match &e {
                        ChatError::Retryable {
                            retry_after: Some(d),
                            ..
                        } => *d,
                        _ => backoff,
                    };
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_people_send_in_joined_rooms_becomes_a_job_keyed_by_its_event() {
        let sync = json!({
            "next_batch": "s2",
            "rooms": { "join": { "!r:hs": { "timeline": { "events": [
                { "type": "m.room.message", "sender": "@alice:hs", "event_id": "$1", "content": { "body": "!incident severity SEV1" } },
                { "type": "m.room.message", "sender": "@klaxon:hs", "event_id": "$2", "content": { "body": "an answer" } },
                { "type": "m.reaction", "sender": "@alice:hs", "event_id": "$3", "content": {} },
                { "type": "m.room.member", "sender": "@alice:hs", "event_id": "$4", "content": {} },
                { "type": "m.room.pinned_events", "sender": "@alice:hs", "event_id": "$5", "content": { "pinned": [] } }
            ] } } } }
        });
        let jobs = jobs_of(&sync, "@klaxon:hs");
        let keys: Vec<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["matrix:event:$1", "matrix:event:$3", "matrix:event:$5"]
        );
        assert_eq!(jobs[0].payload["room"], "!r:hs");
        assert!(jobs_of(&json!({ "next_batch": "s3" }), "@klaxon:hs").is_empty());
    }
}
