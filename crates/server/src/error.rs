//! One error type for the API: it becomes `{"error": {"code", "message", "field"}}` with the
//! right status, logs internal detail, and shows the user a message that says what to do.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use klaxon_core::CommandError;
use klaxon_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// When a client should try again after a 503 (the database was busy).
const RETRY_BUSY_AFTER_SECONDS: &str = "5";

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `unknown_severity`, `not_found`, `unauthenticated` …
    pub code: String,
    /// For people: what was wrong and how to fix it.
    pub message: String,
    /// The request field the error is about, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} does not exist, or you may not see it"),
        )
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in, or send an API token as `Authorization: Bearer <token>` (create one with `klaxon token create`)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        // The detail goes to the log; the user gets a message that does not leak internals.
        tracing::error!(error = %e, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context}; the server log has the details. Try again, and report it if it persists"),
        )
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        let field = e.field().map(String::from);
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: e.code(),
            message: e.to_string(),
            field,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Command(c) => c.into(),
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::InvalidJob(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_job", m)
            }
            StoreError::Busy(m) => {
                tracing::warn!(error = %m, "a request gave up waiting for the database");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!("the database is busy ({m}). Try again in a few seconds"),
                )
            }
            e @ (StoreError::Database(_) | StoreError::Corrupt(_) | StoreError::Config(_)) => {
                ApiError::internal("the database could not complete the request", e)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_BUSY_AFTER_SECONDS),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_is_a_503_to_try_again_not_a_500() {
        let e = ApiError::from(StoreError::Busy("a write waited 30 s".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, "busy");
        assert!(e.message.contains("a write waited 30 s"), "{}", e.message);
        let res = e.into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], RETRY_BUSY_AFTER_SECONDS);
    }
}
