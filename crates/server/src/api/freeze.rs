//! The deploy freeze: CI/CD pipelines ask whether deploys should stop, and why. By default any
//! open incident of SEV2 or worse freezes deploys (drills never do); an incident that names
//! its affected services freezes those services, one that names none freezes every service.
//! Private incidents freeze too, but only their members (and admins) see which.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use klaxon_store::IncidentQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Params;
use crate::auth::Caller;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/deploy-freeze", get(deploy_freeze))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct FreezeParams {
    /// The service about to be deployed; without it, any freezing incident counts.
    pub service: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FreezingIncident {
    /// `INC-42`; for a private incident the caller may not see, null.
    pub reference: Option<String>,
    pub title: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub url: Option<String>,
    pub private: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Freeze {
    /// Whether deploys should stop.
    pub freeze: bool,
    /// In words, for a pipeline's log.
    pub reason: String,
    pub incidents: Vec<FreezingIncident>,
}

/// Should deploys stop? For CI/CD pipelines.
#[utoipa::path(get, path = "/api/v1/deploy-freeze", tag = "incidents", params(FreezeParams),
    responses((status = 200, description = "Whether deploys should stop, and the incidents that cause it", body = Freeze)),
    security(("bearer" = [])))]
pub async fn deploy_freeze(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<FreezeParams>,
) -> Result<Json<Freeze>, ApiError> {
    let threshold = &state.settings.freeze_severity;
    let q = IncidentQuery {
        open: Some(true),
        severities: state.catalog.severities.at_least_keys(threshold),
        include_private: true,
        include_drills: false,
        limit: 200,
        ..Default::default()
    };
    let service = p
        .service
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let page = state.store.list_incidents(&q).await?;
    let incidents: Vec<FreezingIncident> = page
        .incidents
        .iter()
        .filter(|i| match &service {
            Some(s) => {
                i.services.is_empty() || i.services.iter().any(|x| x.eq_ignore_ascii_case(s))
            }
            None => true,
        })
        .map(|i| {
            if i.visible_to(caller.person_id(), caller.access) {
                FreezingIncident {
                    reference: Some(i.reference.to_string()),
                    title: Some(i.title.clone()),
                    severity: i.severity.clone(),
                    status: Some(i.status.clone()),
                    url: Some(format!(
                        "{}/incidents/{}",
                        state.settings.public_url, i.reference
                    )),
                    private: i.private,
                }
            } else {
                FreezingIncident {
                    reference: None,
                    title: None,
                    severity: None,
                    status: None,
                    url: None,
                    private: true,
                }
            }
        })
        .collect();
    let target = service
        .as_deref()
        .map(|s| format!(" for {s}"))
        .unwrap_or_default();
    let reason = match incidents.len() {
        0 => format!("no open incident of {threshold} or worse affects deploys{target}"),
        n => {
            let refs: Vec<String> = incidents
                .iter()
                .map(|i| {
                    i.reference
                        .clone()
                        .unwrap_or_else(|| "a private incident".into())
                })
                .collect();
            format!(
                "deploys{target} are frozen by {n} open incident{} of {threshold} or worse: {}",
                if n == 1 { "" } else { "s" },
                refs.join(", ")
            )
        }
    };
    Ok(Json(Freeze {
        freeze: !incidents.is_empty(),
        reason,
        incidents,
    }))
}
