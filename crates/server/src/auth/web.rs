//! Sign in and out of the web UI.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{secret, WebForm, SESSION_COOKIE};
use crate::web::{render, LoginPage};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextParam {
    next: String,
}

#[derive(Deserialize)]
struct LoginForm {
    login: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Only paths on this site: `next` must not send a person elsewhere after signing in.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/"
    }
}

async fn login_page(Query(p): Query<NextParam>) -> Response {
    render(
        StatusCode::OK,
        &LoginPage {
            error: String::new(),
            next: safe_next(&p.next).to_string(),
            login: String::new(),
        },
    )
}

async fn login(State(state): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let refuse = |message: &str| {
        render(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                error: message.to_string(),
                next: safe_next(&f.next).to_string(),
                login: f.login.clone(),
            },
        )
    };
    let found = match state.store.credentials(f.login.trim()).await {
        Ok(found) => found,
        Err(e) => {
            return crate::web::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("cannot check the password now: {e}"),
            )
        }
    };
    let Some((person, hash)) = found else {
        // Spend the time a real check takes, so that timing does not tell which logins exist.
        let _ = super::verify_blocking(&f.password, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
        return refuse("That login and password do not match.");
    };
    if !super::verify_blocking(&f.password, &hash).await {
        return refuse("That login and password do not match.");
    }
    let value = secret::random_hex(32);
    let csrf = secret::random_hex(32);
    let now = klaxon_core::now();
    let hours = i64::from(state.settings.session_hours.max(1));
    let expires = now + chrono::Duration::hours(hours);
    if let Err(e) = state
        .store
        .create_session(&secret::sha256_hex(&value), person.id, &csrf, now, expires)
        .await
    {
        return crate::web::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("cannot start a session now: {e}"),
        );
    }
    tracing::info!(person = %person.id, "signed in");
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        hours * 3600
    );
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, cookie.parse().expect("a valid cookie"));
    (headers, Redirect::to(safe_next(&f.next))).into_response()
}

async fn logout(State(state): State<AppState>, form: WebForm<serde::de::IgnoredAny>) -> Response {
    if let super::Via::Session { id_hash, .. } = &form.caller.via {
        if let Err(e) = state
            .store
            .delete_session(id_hash, klaxon_core::now())
            .await
        {
            tracing::warn!(error = %e, "could not delete a session");
        }
    }
    let mut headers = HeaderMap::new();
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    headers.insert(header::SET_COOKIE, clear.parse().expect("a valid cookie"));
    (headers, Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(super::safe_next("/incidents/INC-1"), "/incidents/INC-1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "",
        ] {
            assert_eq!(super::safe_next(bad), "/", "{bad}");
        }
    }
}
