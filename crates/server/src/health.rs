//! Liveness and readiness for load balancers and orchestrators: `/healthz` answers while the
//! process serves HTTP; `/readyz` only when the database answers and is fully migrated.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match state.store.ready().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({ "status": "unavailable", "error": { "code": "database_unavailable", "message": e.to_string() } }),
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(app: axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
        let res = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn ready_while_the_database_answers() {
        let db = klaxon_store::testing::sqlite().await;
        let sqlite = db.store.clone();
        let app = crate::router(crate::AppState::new(
            db.store.clone(),
            Default::default(),
            Default::default(),
        ));
        assert_eq!(
            get(app.clone(), "/healthz").await,
            (StatusCode::OK, serde_json::json!({"status": "ok"}))
        );
        assert_eq!(get(app.clone(), "/readyz").await.0, StatusCode::OK);

        // Take the migration records away under the store's feet: readiness must say so.
        let path = db.url.trim_start_matches("sqlite://");
        let other = klaxon_store::SqliteStore::open(std::path::Path::new(path))
            .await
            .unwrap();
        other
            .execute_raw("DELETE FROM klaxon_migrations")
            .await
            .unwrap();
        let (status, body) = get(app, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "database_unavailable");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("schema is at version 0"),
            "{body}"
        );
        drop(sqlite);
    }
}
