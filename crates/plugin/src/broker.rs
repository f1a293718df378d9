//! The client of kube-lighthouse's federation broker (docs/install.md, "Sign-in through
//! kube-lighthouse"): its discovery document (`<issuer>/.well-known/openid-configuration`,
//! for the `token_endpoint`) and the OAuth 2.0 token exchange (RFC 8693) of an engineer's own
//! token for one of the broker's issuer.
//!
//! The requests and the reading of answers are pure ([`issuer_url`], [`token_endpoint_of`],
//! [`exchange_form`], [`exchange_answer`]) and unit-tested; [`Client`] only sends them, over
//! HTTPS with the system's trusted roots or the `--certificate-authority` given.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::ConfigBuilderExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use thiserror::Error;
use tokio_rustls::rustls;

use super::credential::Claims;

/// RFC 8693's grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's token type of a JWT: the subject token's and the issued token's.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// How long one request to the broker may take before it counts as unreachable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the broker gave no token. Each message says what the engineer can check.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// `--broker` is not an issuer URL this plugin will send a token to.
    #[error(
        "--broker {url:?}: {reason}; it is the broker's issuer URL, e.g. https://lighthouse.example.com/federation"
    )]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The trusted roots could not be set up.
    #[error("{0}")]
    Trust(String),
    /// No connection, no TLS handshake, or no answer in time.
    #[error(
        "cannot reach the broker at {url}: {reason}. Check the broker URL (--broker, in your kubeconfig's user entry), your network, and --certificate-authority if the broker's certificate is not from a CA this machine trusts"
    )]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The connection's, TLS's or the timeout's error, with its causes.
        reason: String,
    },
    /// The discovery document is missing or is not the broker's.
    #[error(
        "{url} is not a kube-lighthouse broker's discovery document ({reason}); check --broker: it is the issuer URL, ending in /federation"
    )]
    Discovery {
        /// The discovery URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The broker refused the subject token (`invalid_grant`). The broker says no more than
    /// that on purpose, so the message lists every cause.
    #[error(
        "the broker refused your token ({description}). Check that you are signed in to your own (managing) tenant, that your token was requested for the audience this cluster's broker accepts (docs/install.md), that it has not expired, and ask the customer whether a delegation to your tenant is in force"
    )]
    Refused {
        /// The broker's `error_description`.
        description: String,
    },
    /// The broker cannot sign now (503 `temporarily_unavailable`).
    #[error(
        "the broker cannot issue tokens right now ({description}); try again shortly. Tokens already issued keep working until they expire; if this persists, tell the cluster's administrators (the broker has no signing keys loaded)"
    )]
    Unavailable {
        /// The broker's `error_description`.
        description: String,
    },
    /// The broker did not accept the request itself (`invalid_request`,
    /// `unsupported_grant_type`, or an answer that is not a token).
    #[error(
        "the broker at {url} did not accept the exchange ({reason}); is it a kube-lighthouse version that serves the token exchange?"
    )]
    Protocol {
        /// The token endpoint.
        url: String,
        /// The status and the broker's error, or what is wrong with its answer.
        reason: String,
    },
}

/// The broker's issuer URL as given to `--broker`, without a trailing slash: `https`, or
/// `http` to a loopback address only (a subject token is a credential; it never travels in
/// clear text across a network).
///
/// # Errors
/// [`BrokerError::Url`].
pub fn issuer_url(given: &str) -> Result<String, BrokerError> {
    let bad = |reason: &str| BrokerError::Url { url: given.to_string(), reason: reason.to_string() };
    let trimmed = given.trim().trim_end_matches('/');
    if !trimmed.contains("://") {
        return Err(bad("not an https URL"));
    }
    let uri: http::Uri = trimmed.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback(host) => {}
        Some("http") => return Err(bad("http sends your token in clear text; use https")),
        _ => return Err(bad("not an https URL")),
    }
    if uri.query().is_some() || trimmed.contains('#') {
        return Err(bad("an issuer URL has no query or fragment"));
    }
    Ok(trimmed.to_string())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The discovery document's URL of an issuer (OpenID Connect Discovery 1.0, §4).
pub fn discovery_url(issuer: &str) -> String {
    format!("{issuer}/.well-known/openid-configuration")
}

/// The token endpoint a discovery document names, after checking that it is `issuer`'s (the
/// document's `issuer` is the URL asked for, as OpenID Connect Discovery requires) and that it
/// offers the token exchange.
///
/// # Errors
/// [`BrokerError::Discovery`] naming what is wrong, [`BrokerError::Url`] for a token endpoint
/// this plugin will not send a token to.
pub fn token_endpoint_of(issuer: &str, status: StatusCode, body: &[u8]) -> Result<String, BrokerError> {
    let url = discovery_url(issuer);
    let wrong = |reason: String| BrokerError::Discovery { url: url.clone(), reason };
    if !status.is_success() {
        return Err(wrong(format!("HTTP {status}")));
    }
    #[derive(Deserialize)]
    struct Discovery {
        issuer: Option<String>,
        token_endpoint: Option<String>,
        #[serde(default)]
        grant_types_supported: Vec<String>,
    }
    let doc: Discovery = serde_json::from_slice(body).map_err(|e| wrong(format!("not JSON: {e}")))?;
    let named = doc.issuer.unwrap_or_default();
    if named.trim_end_matches('/') != issuer {
        return Err(wrong(format!("it names the issuer {named:?}")));
    }
    if !doc.grant_types_supported.is_empty() && !doc.grant_types_supported.iter().any(|g| g == TOKEN_EXCHANGE_GRANT) {
        return Err(wrong("it does not offer the token exchange grant".into()));
    }
    let endpoint = doc.token_endpoint.ok_or_else(|| wrong("no token_endpoint".into()))?;
    issuer_url(&endpoint)
}

/// The exchange's form (`application/x-www-form-urlencoded`): the subject token as a JWT,
/// a JWT requested, and the audience when one is configured.
pub fn exchange_form(subject_token: &str, audience: Option<&str>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", TOKEN_EXCHANGE_GRANT)
        .append_pair("subject_token", subject_token)
        .append_pair("subject_token_type", JWT_TOKEN_TYPE)
        .append_pair("requested_token_type", JWT_TOKEN_TYPE);
    if let Some(audience) = audience {
        form.append_pair("audience", audience);
    }
    form.finish()
}

/// A token the broker issued.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issued {
    /// The token of the broker's issuer (a JWT).
    pub access_token: String,
    /// Its lifetime in seconds, as the broker says.
    pub expires_in: Option<i64>,
}

impl Issued {
    /// When it expires: the earlier of its `exp` claim and `expires_in` after `now`; without
    /// either, `now` (so it is never cached).
    pub fn expires_at(&self, now: Timestamp) -> Timestamp {
        let claimed = Claims::of(&self.access_token).ok().and_then(|c| c.expires_at());
        let stated = self.expires_in.and_then(|s| now.checked_add(SignedDuration::from_secs(s)).ok());
        match (claimed, stated) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => now,
        }
    }
}

/// The broker's answer to an exchange: the issued token, or the error it stands for.
///
/// # Errors
/// [`BrokerError::Refused`] for `invalid_grant`, [`BrokerError::Unavailable`] for 503,
/// [`BrokerError::Protocol`] for anything else.
pub fn exchange_answer(endpoint: &str, status: StatusCode, body: &[u8]) -> Result<Issued, BrokerError> {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        error_description: Option<String>,
    }
    let protocol = |reason: String| BrokerError::Protocol { url: endpoint.to_string(), reason };
    if status.is_success() {
        let issued: Issued =
            serde_json::from_slice(body).map_err(|e| protocol(format!("HTTP {status}, not a token: {e}")))?;
        if issued.access_token.is_empty() {
            return Err(protocol("an empty access_token".into()));
        }
        return Ok(issued);
    }
    let error: Option<OAuthError> = serde_json::from_slice(body).ok();
    let description =
        |e: &OAuthError| e.error_description.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| e.error.clone());
    match error {
        Some(e) if e.error == "invalid_grant" => Err(BrokerError::Refused { description: description(&e) }),
        Some(e) if status == StatusCode::SERVICE_UNAVAILABLE || e.error == "temporarily_unavailable" => {
            Err(BrokerError::Unavailable { description: description(&e) })
        }
        None if status == StatusCode::SERVICE_UNAVAILABLE => {
            Err(BrokerError::Unavailable { description: format!("HTTP {status}") })
        }
        Some(e) => Err(protocol(format!("HTTP {status}, {}: {}", e.error, description(&e)))),
        None => Err(protocol(format!("HTTP {status}"))),
    }
}

/// An HTTPS client for the broker.
pub struct Client {
    http: hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Client {
    /// A client trusting the PEM certificates of `certificate_authority` only (as kubectl's
    /// `--certificate-authority`), else the system's trusted roots.
    ///
    /// # Errors
    /// [`BrokerError::Trust`] when the file cannot be read or holds no certificate, or no
    /// roots are found.
    pub fn new(certificate_authority: Option<&Path>) -> Result<Self, BrokerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BrokerError::Trust(format!("TLS: {e}")))?;
        let config = match certificate_authority {
            Some(path) => {
                let trust = |reason: String| {
                    BrokerError::Trust(format!("--certificate-authority {}: {reason}", path.display()))
                };
                let pem = std::fs::read(path).map_err(|e| trust(e.to_string()))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| trust(e.to_string()))?;
                    roots.add(cert).map_err(|e| trust(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(trust("no PEM certificate in it".into()));
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => builder
                .with_native_roots()
                .map_err(|e| {
                    BrokerError::Trust(format!(
                        "no trusted roots on this machine ({e}); pass --certificate-authority with the broker's CA"
                    ))
                })?
                .with_no_client_auth(),
        };
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_or_http().enable_http1().build();
        Ok(Client { http: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector) })
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), BrokerError> {
        let url = request.uri().to_string();
        let unreachable = |reason: String| BrokerError::Unreachable { url: url.clone(), reason };
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| unreachable(causes(&e)))?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| unreachable(causes(&e)))?.to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer in {}s", REQUEST_TIMEOUT.as_secs())))?
    }

    /// The token endpoint of the broker whose issuer URL is `issuer` (see [`issuer_url`]).
    ///
    /// # Errors
    /// [`BrokerError`]: unreachable, or not the broker's discovery document.
    pub async fn token_endpoint(&self, issuer: &str) -> Result<String, BrokerError> {
        let url = discovery_url(issuer);
        let request = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header(header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| BrokerError::Url { url: url.clone(), reason: e.to_string() })?;
        let (status, body) = self.send(request).await?;
        token_endpoint_of(issuer, status, &body)
    }

    /// Exchanges `subject_token` at `endpoint` (RFC 8693).
    ///
    /// # Errors
    /// [`BrokerError`]: unreachable, refused, unavailable, or not a token exchange.
    pub async fn exchange(
        &self,
        endpoint: &str,
        subject_token: &str,
        audience: Option<&str>,
    ) -> Result<Issued, BrokerError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(endpoint)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(exchange_form(subject_token, audience))))
            .map_err(|e| BrokerError::Url { url: endpoint.to_string(), reason: e.to_string() })?;
        let (status, body) = self.send(request).await?;
        exchange_answer(endpoint, status, &body)
    }
}

/// An error and its causes on one line (hyper's own message is only "client error (Connect)").
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_url_is_https_or_loopback_http() {
        assert_eq!(issuer_url("https://lh.example.com/federation/").expect("ok"), "https://lh.example.com/federation");
        assert_eq!(
            issuer_url("http://127.0.0.1:8443/federation").expect("loopback"),
            "http://127.0.0.1:8443/federation"
        );
        assert_eq!(issuer_url("http://localhost/federation").expect("loopback"), "http://localhost/federation");
        assert_eq!(issuer_url("http://[::1]:1/federation").expect("loopback"), "http://[::1]:1/federation");
        for (bad, why) in [
            ("http://lh.example.com/federation", "clear text"),
            ("lh.example.com/federation", "not an https URL"),
            ("ftp://lh.example.com", "not an https URL"),
            ("https://lh.example.com/federation?x=1", "no query"),
            ("https://lh.example.com/federation#x", "no query"),
            ("https:///federation", ""),
        ] {
            let err = issuer_url(bad).expect_err(bad).to_string();
            assert!(err.contains(why) && err.contains("--broker"), "{bad}: {err}");
        }
    }

    #[test]
    fn discovery_must_name_the_issuer_asked_for_and_a_token_endpoint() {
        let issuer = "https://lh.example.com/federation";
        let doc = |v: serde_json::Value| v.to_string().into_bytes();
        let good = doc(serde_json::json!({
            "issuer": issuer, "jwks_uri": format!("{issuer}/keys"), "token_endpoint": format!("{issuer}/token"),
            "grant_types_supported": [TOKEN_EXCHANGE_GRANT],
        }));
        assert_eq!(token_endpoint_of(issuer, StatusCode::OK, &good).expect("ok"), format!("{issuer}/token"));
        let cases = [
            (StatusCode::NOT_FOUND, good.clone(), "HTTP 404"),
            (StatusCode::OK, b"<html>".to_vec(), "not JSON"),
            (
                StatusCode::OK,
                doc(serde_json::json!({"issuer": "https://other/federation", "token_endpoint": "https://other/t"})),
                "names the issuer",
            ),
            (StatusCode::OK, doc(serde_json::json!({"issuer": issuer})), "no token_endpoint"),
            (
                StatusCode::OK,
                doc(
                    serde_json::json!({"issuer": issuer, "token_endpoint": "https://x/t", "grant_types_supported": ["authorization_code"]}),
                ),
                "token exchange",
            ),
        ];
        for (status, body, why) in cases {
            let err = token_endpoint_of(issuer, status, &body).expect_err(why).to_string();
            assert!(err.contains(why) && err.contains("/.well-known/openid-configuration"), "{why}: {err}");
        }
        let clear =
            doc(serde_json::json!({"issuer": issuer, "token_endpoint": "http://lh.example.com/federation/token"}));
        assert!(token_endpoint_of(issuer, StatusCode::OK, &clear)
            .expect_err("http")
            .to_string()
            .contains("clear text"));
    }

    #[test]
    fn the_exchange_form_is_rfc_8693() {
        let form = exchange_form("a.b+c/d=", Some("kube-lighthouse"));
        let pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes()).into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("grant_type".to_string(), TOKEN_EXCHANGE_GRANT.to_string()),
                ("subject_token".into(), "a.b+c/d=".into()),
                ("subject_token_type".into(), JWT_TOKEN_TYPE.into()),
                ("requested_token_type".into(), JWT_TOKEN_TYPE.into()),
                ("audience".into(), "kube-lighthouse".into()),
            ]
        );
        assert!(!exchange_form("t", None).contains("audience"));
    }

    #[test]
    fn the_exchange_answer_is_a_token_or_an_error_that_says_what_to_check() {
        let ok = br#"{"access_token":"T","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","token_type":"N_A","expires_in":900}"#;
        assert_eq!(
            exchange_answer("e", StatusCode::OK, ok).expect("ok"),
            Issued { access_token: "T".into(), expires_in: Some(900) }
        );
        let refused = br#"{"error":"invalid_grant","error_description":"the subject token is not accepted"}"#;
        let err = exchange_answer("e", StatusCode::BAD_REQUEST, refused).expect_err("refused");
        assert!(matches!(err, BrokerError::Refused { .. }));
        let text = err.to_string();
        for hint in ["not accepted", "own (managing) tenant", "audience", "expired", "delegation"] {
            assert!(text.contains(hint), "{hint}: {text}");
        }
        let down = br#"{"error":"temporarily_unavailable","error_description":"no signing key"}"#;
        assert!(matches!(
            exchange_answer("e", StatusCode::SERVICE_UNAVAILABLE, down).expect_err("503"),
            BrokerError::Unavailable { .. }
        ));
        assert!(matches!(
            exchange_answer("e", StatusCode::SERVICE_UNAVAILABLE, b"<html>").expect_err("503"),
            BrokerError::Unavailable { .. }
        ));
        let grant = br#"{"error":"unsupported_grant_type"}"#;
        let err = exchange_answer("e", StatusCode::BAD_REQUEST, grant).expect_err("protocol").to_string();
        assert!(err.contains("unsupported_grant_type") && err.contains("HTTP 400"), "{err}");
        assert!(matches!(
            exchange_answer("e", StatusCode::OK, b"{}").expect_err("no token"),
            BrokerError::Protocol { .. }
        ));
        assert!(matches!(
            exchange_answer("e", StatusCode::OK, br#"{"access_token":""}"#).expect_err("empty"),
            BrokerError::Protocol { .. }
        ));
        assert!(matches!(
            exchange_answer("e", StatusCode::NOT_FOUND, b"").expect_err("404"),
            BrokerError::Protocol { .. }
        ));
    }

    #[test]
    fn the_issued_token_expires_at_the_earlier_of_its_claim_and_expires_in() {
        use base64::Engine as _;
        let now = Timestamp::from_second(1_800_000_000).expect("ts");
        let jwt = |exp: i64| {
            let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
            format!("{}.{}.{}", b64(b"{}"), b64(format!("{{\"exp\":{exp}}}").as_bytes()), b64(b"s"))
        };
        let issued = |token: String, expires_in| Issued { access_token: token, expires_in };
        let at = |s: i64| Timestamp::from_second(s).expect("ts");
        assert_eq!(issued(jwt(1_800_000_600), Some(900)).expires_at(now), at(1_800_000_600));
        assert_eq!(issued(jwt(1_800_000_900), Some(600)).expires_at(now), at(1_800_000_600));
        assert_eq!(issued(jwt(1_800_000_300), None).expires_at(now), at(1_800_000_300));
        assert_eq!(issued("opaque".into(), Some(60)).expires_at(now), at(1_800_000_060));
        assert_eq!(issued("opaque".into(), None).expires_at(now), now, "never cached");
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_named_with_what_to_check() {
        // A port nothing listens on: bound, then closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let client = Client::new(None).expect("client");
        let err = client.token_endpoint(&format!("http://127.0.0.1:{port}/federation")).await.expect_err("down");
        let text = err.to_string();
        assert!(matches!(err, BrokerError::Unreachable { .. }), "{text}");
        assert!(text.contains("cannot reach the broker") && text.contains("--certificate-authority"), "{text}");
        assert!(text.to_lowercase().contains("refused"), "the cause is kept: {text}");
    }

    #[test]
    fn a_certificate_authority_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("kl-broker-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = Client::new(Some(&empty)).err().expect("no certificate").to_string();
        assert!(err.contains("--certificate-authority") && err.contains("no PEM certificate"), "{err}");
        let missing = Client::new(Some(&dir.join("missing.pem"))).err().expect("missing").to_string();
        assert!(missing.contains("missing.pem"), "{missing}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
