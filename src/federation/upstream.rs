//! The managing tenants' own issuers: their discovery documents and keys, fetched over HTTPS,
//! cached per tenant, refreshed when a token names a key ID the cache does not know (at most
//! once per [`REFRESH_INTERVAL`] per tenant, so forged key IDs cannot make the broker hammer an
//! authority), and the subject token's signature, issuer, audience and times verified with
//! `jsonwebtoken`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tracing::{debug, warn};

use super::core::{Refusal, SubjectClaims};

/// Least time between two fetches of one tenant's keys on an unknown key ID.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Keys older than this are fetched again even when every key ID is known (Entra ID rotates
/// its keys every few weeks and publishes new ones well ahead).
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Longest wait for one fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or JWKS read.
const MAX_BODY: usize = 1 << 20;
/// Clock skew allowed on `nbf` (an issued token never outlives the subject token's `exp`).
const LEEWAY: u64 = 60;
/// The algorithms a subject token may be signed with: asymmetric only (Entra ID: RS256).
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Why the HTTPS client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra CA file cannot be read or holds no certificate.
    #[error("authority CA {0}: {1}")]
    Ca(String, String),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
}

/// One tenant's keys as fetched.
struct TenantKeys {
    keys: HashMap<String, (DecodingKey, Option<Algorithm>)>,
    fetched: Instant,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// The cache of every admitted tenant's keys, and the client that fetches them.
pub struct Upstream {
    client: HttpClient<Https, Empty<Bytes>>,
    tenants: Mutex<HashMap<String, Arc<TenantKeys>>>,
    /// When each tenant's keys were last fetched or tried: the refresh rate limit.
    attempts: Mutex<HashMap<String, Instant>>,
    /// One fetch per tenant at a time.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    audiences: BTreeSet<String>,
}

impl Upstream {
    /// A cache verifying subject tokens for `audiences`, fetching with the system's trusted
    /// CAs plus those of `extra_ca` (PEM; a private authority, the local control plane's).
    ///
    /// # Errors
    /// [`ClientError`] when `extra_ca` is unusable.
    pub fn new(audiences: BTreeSet<String>, extra_ca: Option<&Path>) -> Result<Upstream, ClientError> {
        use tokio_rustls::rustls::{ClientConfig, RootCertStore};
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            debug!(error = %e, "a system CA certificate could not be loaded");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if let Some(path) = extra_ca {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|e| ClientError::Ca(shown.clone(), e.to_string()))?;
            let certs = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError::Ca(shown.clone(), e.to_string()))?;
            if certs.is_empty() {
                return Err(ClientError::Ca(shown, "no certificate".into()));
            }
            for cert in certs {
                roots.add(cert)?;
            }
        } else if added == 0 {
            warn!("no system CA certificates: the managing tenants' authorities cannot be verified");
        }
        let tls = ClientConfig::builder_with_provider(crate::serve::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
        Ok(Upstream {
            client: HttpClient::builder(TokioExecutor::new()).build(https),
            tenants: Mutex::default(),
            attempts: Mutex::default(),
            fetching: Mutex::default(),
            audiences,
        })
    }

    /// Forgets every tenant's keys (a benchmark's cold cache).
    pub fn clear(&self) {
        if let Ok(mut t) = self.tenants.lock() {
            t.clear();
        }
        if let Ok(mut a) = self.attempts.lock() {
            a.clear();
        }
    }

    /// Verifies `token`, admitted as of `tenant` with `authority` as its issuer: its key (by
    /// `kid`) from that authority's JWKS, its signature, `iss` = `authority`, `aud` one of the
    /// accepted audiences, `exp` and `nbf`.
    ///
    /// # Errors
    /// The [`Refusal`]: the token is not what it must be, or the authority cannot be read.
    pub async fn verify(&self, token: &str, tenant: &str, authority: &str) -> Result<SubjectClaims, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        let kid = header.kid.ok_or(Refusal::Malformed)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Refusal::Malformed);
        }
        let (key, algorithm) = self.key(tenant, authority, &kid).await?;
        if algorithm.is_some_and(|a| a != header.alg) {
            return Err(Refusal::BadSignature);
        }
        // Only the header's algorithm (one of ALGORITHMS, checked above): jsonwebtoken refuses a
        // validation that lists algorithms of another family than the key's.
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[authority]);
        validation.set_audience(&self.audiences.iter().collect::<Vec<_>>());
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY;
        match jsonwebtoken::decode::<SubjectClaims>(token, &key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err({
                debug!(tenant, error = %e, "subject token not verified");
                match e.kind() {
                    ErrorKind::ExpiredSignature => Refusal::Expired,
                    ErrorKind::ImmatureSignature => Refusal::NotYetValid,
                    ErrorKind::InvalidAudience => Refusal::WrongAudience,
                    ErrorKind::InvalidIssuer => Refusal::IssuerMismatch,
                    ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidEcdsaKey => {
                        Refusal::BadSignature
                    }
                    _ => Refusal::Malformed,
                }
            }),
        }
    }

    /// The key `kid` of `tenant`: from the cache, or fetched when the cache has none of the
    /// tenant's keys, they are older than [`MAX_AGE`], or `kid` is unknown; one fetch per tenant
    /// at a time (concurrent exchanges wait for it and use what it brought), and at most one
    /// per [`REFRESH_INTERVAL`], so unknown key IDs cannot make the broker hammer an authority.
    async fn key(&self, tenant: &str, authority: &str, kid: &str) -> Result<(DecodingKey, Option<Algorithm>), Refusal> {
        if let Some(found) = self.cached(tenant, kid) {
            return Ok(found);
        }
        let lock = {
            let mut fetching = self.fetching.lock().map_err(|_| Refusal::AuthorityUnavailable)?;
            fetching.entry(tenant.to_owned()).or_default().clone()
        };
        let _fetching = lock.lock().await;
        // Another exchange may have fetched while this one waited.
        if let Some(found) = self.cached(tenant, kid) {
            return Ok(found);
        }
        let has_keys = self.tenants.lock().ok().is_some_and(|t| t.contains_key(tenant));
        {
            let mut attempts = self.attempts.lock().map_err(|_| Refusal::AuthorityUnavailable)?;
            if attempts.get(tenant).is_some_and(|last| last.elapsed() < REFRESH_INTERVAL) {
                return Err(if has_keys { Refusal::UnknownKey } else { Refusal::AuthorityUnavailable });
            }
            attempts.insert(tenant.to_owned(), Instant::now());
        }
        let fetched = match self.fetch(authority).await {
            Ok(keys) => Arc::new(keys),
            Err(e) => {
                warn!(tenant, authority, error = %e, "cannot fetch the tenant's keys");
                return Err(Refusal::AuthorityUnavailable);
            }
        };
        if let Ok(mut t) = self.tenants.lock() {
            t.insert(tenant.to_owned(), fetched.clone());
        }
        fetched.keys.get(kid).cloned().ok_or(Refusal::UnknownKey)
    }

    /// The key `kid` of `tenant` when the cache has it and is younger than [`MAX_AGE`].
    fn cached(&self, tenant: &str, kid: &str) -> Option<(DecodingKey, Option<Algorithm>)> {
        let keys = self.tenants.lock().ok()?.get(tenant).cloned()?;
        (keys.fetched.elapsed() < MAX_AGE).then(|| keys.keys.get(kid).cloned()).flatten()
    }

    async fn fetch(&self, authority: &str) -> Result<TenantKeys, String> {
        let discovery: Discovery = self.get_json(&discovery_url(authority)).await?;
        if discovery.issuer != authority {
            return Err(format!("the discovery document names issuer {:?}, not {authority:?}", discovery.issuer));
        }
        let jwks: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature) {
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    let algorithm = jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
                    keys.insert(kid, (key, algorithm));
                }
                Err(e) => debug!(kid, error = %e, "skipping an unusable key"),
            }
        }
        Ok(TenantKeys { keys, fetched: Instant::now() })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.get(uri))
            .await
            .map_err(|_| format!("{url}: no answer within {FETCH_TIMEOUT:?}"))?
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = tokio::time::timeout(FETCH_TIMEOUT, Limited::new(response.into_body(), MAX_BODY).collect())
            .await
            .map_err(|_| format!("{url}: body not read within {FETCH_TIMEOUT:?}"))?
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }
}

/// The discovery document's URL of `authority`: OpenID Connect Discovery 1.0 §4 drops a
/// terminating `/` before appending `/.well-known/openid-configuration`, so that Entra ID's v1.0
/// issuer (`https://sts.windows.net/<tid>/`, docs/install.md "Which audience") works as an
/// authority while `iss` is still compared with the authority as written.
fn discovery_url(authority: &str) -> String {
    format!("{}/.well-known/openid-configuration", authority.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use kl_token_issuer::{Issuer, TokenRequest};

    use super::*;

    #[test]
    fn the_discovery_url_drops_a_terminating_slash_of_the_authority() {
        assert_eq!(
            discovery_url("https://login.microsoftonline.com/t/v2.0"),
            "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://sts.windows.net/t/"),
            "https://sts.windows.net/t/.well-known/openid-configuration",
            "Entra ID's v1.0 issuer ends in /"
        );
    }

    const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const AUDIENCE: &str = "api://kube-lighthouse";

    /// A local issuer served over HTTPS on a free port, and a cache trusting its CA.
    async fn served() -> (&'static Issuer, Upstream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let dir = std::env::temp_dir().join(format!("kl-upstream-{}-{port}", std::process::id()));
        let url = format!("https://127.0.0.1:{port}/{TENANT}/v2.0");
        let issuer: &'static Issuer = Box::leak(Box::new(Issuer::init(&dir, TENANT, &url, AUDIENCE).expect("issuer")));
        tokio::spawn(kl_token_issuer::serve_on(listener, issuer, std::future::pending()));
        let upstream =
            Upstream::new(BTreeSet::from([AUDIENCE.to_owned()]), Some(&issuer.ca_cert_path())).expect("client");
        (issuer, upstream)
    }

    #[tokio::test]
    async fn subject_tokens_verify_against_their_tenants_own_keys_only() {
        let (issuer, upstream) = served().await;
        let good = issuer.mint(&TokenRequest::new("o1").group("g1").amr(["pwd", "mfa"])).expect("mint");
        let claims = upstream.verify(&good, TENANT, issuer.url()).await.expect("a good token verifies");
        assert_eq!((claims.tid.as_str(), claims.oid.as_str()), (TENANT, "o1"));
        assert_eq!((claims.groups, claims.amr), (vec!["g1".to_owned()], vec!["pwd".to_owned(), "mfa".to_owned()]));
        let cases = [
            (TokenRequest::new("o1").unknown_key(), Refusal::BadSignature),
            (TokenRequest::new("o1").expired(), Refusal::Expired),
            (TokenRequest::new("o1").not_yet_valid(), Refusal::NotYetValid),
            (TokenRequest::new("o1").audience("api://other"), Refusal::WrongAudience),
        ];
        for (request, refusal) in cases {
            let token = issuer.mint(&request).expect("mint");
            assert_eq!(upstream.verify(&token, TENANT, issuer.url()).await, Err(refusal), "{request:?}");
        }
        // An authority that serves no discovery document for the tenant.
        let elsewhere = format!("{}/elsewhere", issuer.url());
        upstream.clear();
        assert_eq!(upstream.verify(&good, TENANT, &elsewhere).await, Err(Refusal::AuthorityUnavailable));
        assert_eq!(upstream.verify("x.y.z", TENANT, issuer.url()).await, Err(Refusal::Malformed));
    }

    #[tokio::test]
    async fn an_unreachable_authority_is_tried_once_per_interval() {
        let (issuer, upstream) = served().await;
        let token = issuer.mint(&TokenRequest::new("o1")).expect("mint");
        let nowhere = "https://127.0.0.1:1/nowhere/v2.0";
        assert_eq!(upstream.verify(&token, TENANT, nowhere).await, Err(Refusal::AuthorityUnavailable));
        // Within the interval, no second fetch: the answer does not wait for a connection.
        let started = Instant::now();
        assert_eq!(upstream.verify(&token, TENANT, issuer.url()).await, Err(Refusal::AuthorityUnavailable));
        assert!(upstream.attempts.lock().expect("lock").contains_key(TENANT));
        assert!(
            upstream.tenants.lock().expect("lock").get(TENANT).is_none(),
            "nothing fetched: {:?}",
            started.elapsed()
        );
    }
}
