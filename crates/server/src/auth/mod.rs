//! Who is calling: an API token (`Authorization: Bearer klx_…`) or a web session (the
//! `klaxon_session` cookie). Sessions carry a CSRF token that every state-changing request
//! must repeat: in a form field (`csrf`) for the web UI's forms, in the `X-CSRF-Token` header
//! for API calls made with the cookie. Token requests need none: a browser never sends them on
//! its own.

pub mod secret;
mod web;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use klaxon_core::{Access, Actor, NewPerson, Person, PersonId};
use klaxon_store::Store;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::{ApiError, AppState};

pub use web::router;

pub const SESSION_COOKIE: &str = "klaxon_session";

#[derive(Debug, Clone)]
pub enum Via {
    Session { id_hash: String, csrf: String },
    Token { name: String },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub person: Option<Person>,
    pub access: Access,
    pub via: Via,
}

impl Caller {
    pub fn person_id(&self) -> Option<PersonId> {
        self.person.as_ref().map(|p| p.id)
    }

    pub fn name(&self) -> String {
        match (&self.person, &self.via) {
            (Some(p), _) => p.name.clone(),
            (None, Via::Token { name }) => format!("API token {name}"),
            (None, Via::Session { .. }) => "someone".into(),
        }
    }

    /// Refuses callers below `access`, saying what they lack.
    pub fn require(&self, access: Access) -> Result<(), ApiError> {
        if self.access >= access {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs {} access and {} has {}: ask an admin",
                access.as_str(),
                self.name(),
                self.access.as_str()
            )))
        }
    }

    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf, .. } => csrf,
            Via::Token { .. } => "",
        }
    }

    fn check_csrf(&self, given: Option<&str>) -> Result<(), ApiError> {
        match &self.via {
            Via::Token { .. } => Ok(()),
            Via::Session { csrf, .. } => match given {
                Some(g) if secret::constant_time_eq(g.as_bytes(), csrf.as_bytes()) => Ok(()),
                _ => Err(ApiError::forbidden(
                    "the form was stale or did not come from Klaxon (CSRF check failed): reload the page and try again",
                )
                .field("csrf")),
            },
        }
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Finds the caller from the request headers: `None` when the request carries no credentials;
/// an error when it carries bad ones (so that a typo in a token is not silently anonymous).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    let now = klaxon_core::now();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::bad_request("the Authorization header must be `Bearer <token>`")
            })?;
        let found = state
            .store
            .api_token(&secret::sha256_hex(token), now)
            .await?;
        let Some(t) = found else {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_token",
                "this API token is unknown or revoked: create a new one with `klaxon token create`",
            ));
        };
        let person = match t.person {
            Some(id) => state.store.person(id).await?,
            None => None,
        };
        let actor = match &person {
            Some(p) => Actor::person(p.id),
            None => Actor::system(&format!("token:{}", t.name)),
        };
        return Ok(Some(Caller {
            actor,
            person,
            access: t.access,
            via: Via::Token { name: t.name },
        }));
    }
    if let Some(value) = cookie(headers, SESSION_COOKIE) {
        let id_hash = secret::sha256_hex(value);
        if let Some(session) = state.store.session(&id_hash, now).await? {
            let p = session.person;
            return Ok(Some(Caller {
                actor: Actor::person(p.id),
                access: p.access,
                person: Some(p),
                via: Via::Session {
                    id_hash,
                    csrf: session.csrf,
                },
            }));
        }
    }
    Ok(None)
}

/// API authentication: 401 without credentials; for state-changing requests made with the
/// session cookie, the `X-CSRF-Token` header must match the session's.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticate(state, &parts.headers)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            caller.check_csrf(
                parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok()),
            )?;
        }
        Ok(caller)
    }
}

/// Web authentication: without a session, a redirect to the sign-in page that comes back here.
pub struct WebCaller(pub Caller);

pub struct ToLogin(String);

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to(&format!("/login?next={}", urlencode(&self.0))).into_response()
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e[1..].to_string())
        .unwrap_or_default()
}

impl FromRequestParts<AppState> for WebCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        match authenticate(state, &parts.headers).await {
            Ok(Some(caller)) => Ok(WebCaller(caller)),
            Ok(None) => Err(ToLogin(next).into_response()),
            Err(e) => Err(crate::web::error_page(e.status, &e.message)),
        }
    }
}

/// A web form from a signed-in caller, its CSRF token checked before the form is parsed.
pub struct WebForm<T> {
    pub caller: Caller,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for WebForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let WebCaller(caller) = WebCaller::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, 1 << 20).await.map_err(|_| {
            crate::web::error_page(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "the form is larger than 1 MiB",
            )
        })?;
        let field: CsrfField =
            serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField { csrf: None });
        caller
            .check_csrf(field.csrf.as_deref())
            .map_err(|e| crate::web::error_page(e.status, &e.message))?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            crate::web::error_page(
                axum::http::StatusCode::BAD_REQUEST,
                &format!("the form could not be read: {e}"),
            )
        })?;
        Ok(WebForm { caller, form })
    }
}

/// Makes sure the local `admin` account exists. With a configured password, the account
/// gets that password; without one, a new account gets a random password, which is returned
/// so that it can be printed once.
pub async fn ensure_admin(store: &dyn Store, configured: &str) -> Result<Option<String>, ApiError> {
    let existing = store.credentials("admin").await?;
    let password = match (&existing, configured) {
        (Some((_, hash)), pw) if pw.is_empty() || verify_blocking(pw, hash).await => {
            return Ok(None)
        }
        (_, "") => secret::new_password(),
        (_, pw) => pw.to_string(),
    };
    let hash = hash_blocking(&password).await;
    let person = match existing {
        Some((p, _)) => p,
        None => {
            let new = NewPerson {
                name: "Administrator".into(),
                access: Access::Admin,
                ..Default::default()
            };
            store.create_person(&new, klaxon_core::now()).await?
        }
    };
    match store.set_login(person.id, "admin", &hash).await {
        Ok(()) => Ok(configured.is_empty().then_some(password)),
        // Another replica starting at the same moment made the account first.
        Err(klaxon_store::StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn hash_blocking(password: &str) -> String {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || secret::hash_password(&pw))
        .await
        .expect("hashing does not panic")
}

pub(crate) async fn verify_blocking(password: &str, hash: &str) -> bool {
    let (pw, h) = (password.to_string(), hash.to_string());
    tokio::task::spawn_blocking(move || secret::verify_password(&pw, &h))
        .await
        .unwrap_or(false)
}
