//! The broker's routes on the TLS server, under `/federation`: the discovery document, the
//! JWKS, and the token exchange (RFC 8693). OAuth errors are JSON `{"error",
//! "error_description"}`; token responses are never cached.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tracing::debug;

use super::core::{self, ExchangeForm, REFUSED_DESCRIPTION, TOKEN_TYPE_JWT};
use super::keys::ALGORITHM;
use super::{Broker, ExchangeError};

/// The path prefix every route is under; the issuer URL ends in it.
pub const PREFIX: &str = "/federation";

/// Largest exchange request body, in bytes (413 beyond). An Entra ID access token is a few
/// KiB (group overage replaces long group lists); without a cap, axum's 2 MiB default let a
/// padded token cost a delegated tenant's signature check milliseconds more than an
/// undelegated one's refusal, and each exchange megabytes of memory.
pub const MAX_EXCHANGE_BODY: usize = 64 * 1024;

/// Seconds a shed exchange is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// `GET /federation/.well-known/openid-configuration`, `GET /federation/keys`,
/// `POST /federation/token`. The exchange sheds load: at most
/// [`Settings::max_concurrent_exchanges`](super::Settings) at a time ([`Broker::exchanges`],
/// taken once the body is read: a client that never finishes its body holds a connection,
/// not a slot), the others answered at once with 503 `temporarily_unavailable` and
/// `Retry-After` ([`RETRY_AFTER_SECONDS`]).
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route(&format!("{PREFIX}/.well-known/openid-configuration"), get(discovery))
        .route(&format!("{PREFIX}/keys"), get(jwks))
        .route(&format!("{PREFIX}/token"), post(token))
        // Bodies are read only by the exchange; the others have none.
        .layer(DefaultBodyLimit::max(MAX_EXCHANGE_BODY))
        .with_state(broker)
}

/// The answer to an exchange shed by the concurrency limit: 503 with `Retry-After`; counted,
/// and logged at debug level (never the token).
fn overloaded(metrics: &super::FederationMetrics, limit: usize) -> Response {
    metrics.shed.inc();
    debug!(limit, "token exchange shed: this replica answers {limit} at a time (503)");
    let mut response = oauth_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "this replica is answering as many token exchanges as it may at once: retry shortly",
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
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
    let Ok(_slot) = broker.exchanges.try_acquire() else {
        return overloaded(&broker.metrics, broker.settings.max_concurrent_exchanges.max(1));
    };
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use kube::runtime::reflector;
    use tower::ServiceExt;

    use super::*;
    use crate::federation::keys::{generate, KeySet};
    use crate::federation::rotation::Policy;
    use crate::federation::{FederationMetrics, Settings};

    fn broker() -> Arc<Broker> {
        let settings = Settings {
            issuer: "https://lh.example/federation".into(),
            audience: "kube-lighthouse".into(),
            max_lifetime: 900,
            authority: core::DEFAULT_AUTHORITY.into(),
            subject_audiences: BTreeSet::from(["api://a".to_owned()]),
            allow_list: None,
            keys_secret: "k".into(),
            authority_ca: None,
            rotation: Policy::new(604_800, 900),
            max_concurrent_exchanges: 1,
        };
        let (store, _writer) = reflector::store();
        Arc::new(Broker::new(settings, store, FederationMetrics::default()).expect("broker"))
    }

    async fn call(broker: &Arc<Broker>, request: Request<Body>) -> (StatusCode, serde_json::Value, Option<String>) {
        let response = router(broker.clone()).oneshot(request).await.expect("response");
        let status = response.status();
        let cache = response.headers().get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null), cache)
    }

    fn token(body: &str) -> Request<Body> {
        Request::post("/federation/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .expect("request")
    }

    #[tokio::test]
    async fn discovery_and_keys_are_served_under_the_prefix() {
        let broker = broker();
        let get = |path: &str| Request::get(path).body(Body::empty()).expect("request");
        let (status, doc, _) = call(&broker, get("/federation/.well-known/openid-configuration")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["token_endpoint"], "https://lh.example/federation/token");
        assert_eq!(doc["id_token_signing_alg_values_supported"][0], "ES256");
        // No keys loaded: the JWKS is unavailable rather than empty.
        let (status, body, _) = call(&broker, get("/federation/keys")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable"))
        );
        let key = generate(0).expect("key");
        broker
            .keys
            .set(Some(KeySet::parse(&serde_json::to_vec(std::slice::from_ref(&key)).expect("json")).expect("keys")));
        let (status, jwks, _) = call(&broker, get("/federation/keys")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(jwks["keys"][0]["kid"], key.kid.as_str());
        assert_eq!(jwks["keys"][0]["kty"], "EC");
        assert!(jwks["keys"][0].get("d").is_none(), "the private part is never published");
    }

    #[tokio::test]
    async fn malformed_requests_and_refusals_are_oauth_errors_never_cached() {
        let broker = broker();
        let (status, body, cache) = call(&broker, token("grant_type=password")).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
        assert_eq!(cache.as_deref(), Some("no-store"));
        let repeated =
            format!("grant_type={EXCHANGE}&grant_type={EXCHANGE}", EXCHANGE = core::GRANT_TYPE_TOKEN_EXCHANGE);
        let (status, body, _) = call(&broker, token(&repeated)).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
        assert!(body["error_description"].as_str().unwrap_or_default().contains("repeated"), "{body}");
        // A well-formed request with a token of a tenant no delegation names (the cache is empty).
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", core::GRANT_TYPE_TOKEN_EXCHANGE)
            .append_pair("subject_token_type", TOKEN_TYPE_JWT)
            .append_pair(
                "subject_token",
                "eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJmYmNkZDBmMy1kYzgyLTRjZWUtYmNkZS03MzAxZDI0ZTliZjYifQ.c2ln",
            )
            .finish();
        let (status, body, cache) = call(&broker, token(&form)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "invalid_grant", "error_description": REFUSED_DESCRIPTION}));
        assert_eq!(cache.as_deref(), Some("no-store"));
    }

    #[tokio::test]
    async fn an_oversized_exchange_is_refused_before_any_token_work() {
        let app = router(broker());
        let padded = format!("grant_type=x&subject_token={}", "a".repeat(MAX_EXCHANGE_BODY));
        let request = Request::post("/federation/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(padded))
            .expect("request");
        let response = tower::ServiceExt::oneshot(app, request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn exchanges_beyond_the_limit_are_shed_at_once_with_retry_after() {
        let broker = broker();
        let app = router(broker.clone());
        // A client whose body never ends holds a connection, not the only slot (limit 1).
        let (open, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let slow = Request::post("/federation/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from_stream(rx))
            .expect("request");
        let in_flight = tokio::spawn(app.clone().oneshot(slow));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (status, body, _) = call(&broker, token("grant_type=password")).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
        // One exchange in flight holds the only slot: the next is shed.
        let slot = broker.exchanges.clone().try_acquire_owned().expect("the slot is free");
        let shed = app.clone().oneshot(token("grant_type=password")).await.expect("response");
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
        assert_eq!(shed.headers().get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-store"));
        let bytes = shed.into_body().collect().await.expect("body").to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["error"], "temporarily_unavailable");
        assert_eq!(broker.metrics.shed.get(), 1, "counted");
        // The slot freed, exchanges are answered again.
        drop(slot);
        let (status, body, _) = call(&broker, token("grant_type=password")).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
        drop(open);
        let first = in_flight.await.expect("task").expect("response");
        assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    }
}
