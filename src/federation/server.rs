//! The broker's routes on the TLS server, under `/federation`: the discovery document, the
//! JWKS, and the token exchange (RFC 8693). OAuth errors are JSON `{"error",
//! "error_description"}`; token responses are never cached.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::core::{self, ExchangeForm, REFUSED_DESCRIPTION, TOKEN_TYPE_JWT};
use super::keys::ALGORITHM;
use super::{Broker, ExchangeError};

/// The path prefix every route is under; the issuer URL ends in it.
pub const PREFIX: &str = "/federation";

/// `GET /federation/.well-known/openid-configuration`, `GET /federation/keys`,
/// `POST /federation/token`.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route(&format!("{PREFIX}/.well-known/openid-configuration"), get(discovery))
        .route(&format!("{PREFIX}/keys"), get(jwks))
        .route(&format!("{PREFIX}/token"), post(token))
        .with_state(broker)
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store((status, Json(json!({"error": error, "error_description": description}))).into_response())
}

async fn discovery(State(broker): State<Arc<Broker>>) -> Response {
    let algorithm = format!("{ALGORITHM:?}");
    Json(core::discovery(&broker.settings.issuer, &algorithm)).into_response()
}

async fn jwks(State(broker): State<Arc<Broker>>) -> Response {
    match broker.keys.current() {
        Some(keys) => Json(keys.jwks()).into_response(),
        None => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "this replica has not loaded the signing keys yet",
        ),
    }
}

async fn token(State(broker): State<Arc<Broker>>, body: Bytes) -> Response {
    let mut form = ExchangeForm::default();
    for (name, value) in form_urlencoded::parse(&body) {
        let slot = match name.as_ref() {
            "grant_type" => &mut form.grant_type,
            "subject_token" => &mut form.subject_token,
            "subject_token_type" => &mut form.subject_token_type,
            "audience" => &mut form.audience,
            "requested_token_type" => &mut form.requested_token_type,
            _ => continue,
        };
        if slot.is_some() {
            // RFC 6749 §3.2: a parameter must not be repeated.
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("{name} is repeated"));
        }
        *slot = Some(value.into_owned());
    }
    let subject = match core::check_request(&form, &broker.settings.audience) {
        Ok(subject) => subject,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, e.error, &e.description),
    };
    match broker.exchange(subject).await {
        Ok(issued) => no_store(
            Json(json!({
                "access_token": issued.token,
                "issued_token_type": TOKEN_TYPE_JWT,
                "token_type": "N_A",
                "expires_in": issued.expires_in,
            }))
            .into_response(),
        ),
        Err(ExchangeError::Refused(_)) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", REFUSED_DESCRIPTION),
        Err(ExchangeError::Unavailable) => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "this replica cannot sign tokens: its signing keys are not loaded (see its /readyz and logs)",
        ),
    }
}
