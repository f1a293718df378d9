//! The managing tenants' own issuers: their discovery documents and keys, fetched over HTTPS
//! ahead of any exchange ([`Upstream::refresh`], driven by the broker's prefetch:
//! [`super::Broker::prefetch`]) and cached per tenant; the subject token's signature, issuer,
//! audience and times verified with `jsonwebtoken` against the cache alone
//! ([`Upstream::verify`] never fetches: an exchange of a delegated tenant takes as long as one
//! of an undelegated tenant, so the answer's time is no oracle). A key ID the cache lacks asks
//! the prefetch for a refresh ([`Upstream::wanted`]), at most once per [`REFRESH_INTERVAL`] per
//! tenant, so forged key IDs cannot make the broker hammer an authority.

use std::collections::{BTreeSet, HashMap, HashSet};
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

use super::core::{KeysState, RefreshTimes, Refusal, SubjectClaims};
use crate::model::tenant::Guid;

/// Least time between two fetches of one tenant's keys, whatever asks.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Keys this old are fetched again even when every key ID is known (Entra ID rotates its keys
/// every few weeks and publishes new ones well ahead).
pub const REFRESH_PERIOD: Duration = Duration::from_secs(3600);
/// When to fetch a prefetched tenant's keys ([`super::core::refresh_due`]).
pub const REFRESH_TIMES: RefreshTimes = RefreshTimes { min_interval: REFRESH_INTERVAL, period: REFRESH_PERIOD };
/// Keys older than this are not used (their authority has not answered for a day).
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

/// The cache of every prefetched tenant's keys, and the client that fetches them.
pub struct Upstream {
    client: HttpClient<Https, Empty<Bytes>>,
    tenants: Mutex<HashMap<String, Arc<TenantKeys>>>,
    /// When each tenant's keys were last fetched or tried: the refresh rate limit.
    attempts: Mutex<HashMap<String, Instant>>,
    /// Tenants whose keys an exchange found lacking (no keys, or an unknown key ID).
    wanted: Mutex<HashSet<String>>,
    /// Wakes the prefetch when a tenant is newly wanted.
    wake: tokio::sync::Notify,
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
            wanted: Mutex::default(),
            wake: tokio::sync::Notify::new(),
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
        if let Ok(mut w) = self.wanted.lock() {
            w.clear();
        }
    }

    /// Forgets the keys of every tenant not in `tenants` (no longer delegated).
    pub fn retain(&self, tenants: &BTreeSet<Guid>) {
        let keep = |t: &String| Guid::parse(t).is_some_and(|g| tenants.contains(&g));
        if let Ok(mut t) = self.tenants.lock() {
            t.retain(|k, _| keep(k));
        }
        if let Ok(mut a) = self.attempts.lock() {
            a.retain(|k, _| keep(k));
        }
        if let Ok(mut w) = self.wanted.lock() {
            w.retain(keep);
        }
    }

    /// What the cache knows of `tenant`'s keys, for [`super::core::refresh_due`].
    pub fn state(&self, tenant: &str) -> KeysState {
        KeysState {
            fetched: self.tenants.lock().ok().and_then(|t| t.get(tenant).map(|k| k.fetched.elapsed())),
            tried: self.attempts.lock().ok().and_then(|a| a.get(tenant).map(Instant::elapsed)),
            wanted: self.wanted.lock().is_ok_and(|w| w.contains(tenant)),
        }
    }

    /// Resolves when an exchange has newly found a tenant's keys lacking: the prefetch then
    /// looks again at once instead of at its next tick.
    pub async fn wanted(&self) {
        self.wake.notified().await;
    }

    /// Marks `tenant`'s keys as wanted; wakes the prefetch the first time only, so a flood of
    /// unknown key IDs wakes it once.
    fn want(&self, tenant: &str) {
        if self.wanted.lock().is_ok_and(|mut w| w.insert(tenant.to_owned())) {
            self.wake.notify_one();
        }
    }

    /// Fetches `tenant`'s discovery document at `authority`, then its JWKS, and caches the
    /// keys; recorded as tried whatever comes of it, and no longer wanted. Called by the
    /// prefetch only ([`super::core::refresh_due`] says when), never by an exchange.
    ///
    /// # Errors
    /// Why the keys could not be fetched or read (the cache keeps what it had).
    pub async fn refresh(&self, tenant: &str, authority: &str) -> Result<usize, String> {
        if let Ok(mut a) = self.attempts.lock() {
            a.insert(tenant.to_owned(), Instant::now());
        }
        if let Ok(mut w) = self.wanted.lock() {
            w.remove(tenant);
        }
        let fetched = self.fetch(authority).await?;
        let count = fetched.keys.len();
        if let Ok(mut t) = self.tenants.lock() {
            t.insert(tenant.to_owned(), Arc::new(fetched));
        }
        Ok(count)
    }

    /// Verifies `token`, admitted as of `tenant` with `authority` as its issuer, against the
    /// cache alone: its key (by `kid`) from that authority's JWKS as last fetched, its
    /// signature, `iss` = `authority`, `aud` one of the accepted audiences, `exp` and `nbf`.
    /// Never fetches: a key ID the cache lacks marks the tenant wanted, and the prefetch fetches
    /// its keys again (at most once per [`REFRESH_INTERVAL`]).
    ///
    /// # Errors
    /// The [`Refusal`]: the token is not what it must be ([`Refusal::UnknownKey`] for a key ID
    /// the tenant's held keys lack), or the tenant's keys are not held
    /// ([`Refusal::AuthorityUnavailable`]: not fetched yet, or its authority cannot be read).
    pub fn verify(&self, token: &str, tenant: &str, authority: &str) -> Result<SubjectClaims, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        let kid = header.kid.ok_or(Refusal::Malformed)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Refusal::Malformed);
        }
        let (key, algorithm) = self.key(tenant, &kid)?;
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

    /// The key `kid` of `tenant` from the cache; when it lacks it, the tenant is wanted.
    fn key(&self, tenant: &str, kid: &str) -> Result<(DecodingKey, Option<Algorithm>), Refusal> {
        if let Some(found) = self.cached(tenant, kid) {
            return Ok(found);
        }
        let held = self.tenants.lock().ok().and_then(|t| t.get(tenant).map(|k| k.fetched.elapsed() < MAX_AGE));
        self.want(tenant);
        Err(if held == Some(true) { Refusal::UnknownKey } else { Refusal::AuthorityUnavailable })
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
pub(crate) mod tests {
    use base64::Engine as _;
    use kl_token_issuer::{Issuer, TokenRequest};

    use super::*;

    /// A port on 127.0.0.1 that accepts connections and never answers (an authority that
    /// hangs), and the task holding them; abort it to close them.
    pub(crate) async fn silent_authority() -> (u16, tokio::task::JoinHandle<()>) {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                open.push(stream);
            }
        });
        (port, held)
    }

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
        assert_eq!(upstream.verify(&good, TENANT, issuer.url()), Err(Refusal::AuthorityUnavailable), "not fetched yet");
        assert!(upstream.state(TENANT).wanted, "the prefetch is asked for the keys");
        upstream.refresh(TENANT, issuer.url()).await.expect("fetched");
        assert!(!upstream.state(TENANT).wanted);
        let claims = upstream.verify(&good, TENANT, issuer.url()).expect("a good token verifies");
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
            assert_eq!(upstream.verify(&token, TENANT, issuer.url()), Err(refusal), "{request:?}");
        }
        // An authority that serves no discovery document for the tenant.
        let elsewhere = format!("{}/elsewhere", issuer.url());
        upstream.clear();
        assert!(upstream.refresh(TENANT, &elsewhere).await.is_err());
        assert_eq!(upstream.verify(&good, TENANT, &elsewhere), Err(Refusal::AuthorityUnavailable));
        assert_eq!(upstream.verify("x.y.z", TENANT, issuer.url()), Err(Refusal::Malformed));
    }

    #[tokio::test]
    async fn verifying_never_fetches_and_a_failed_fetch_is_recorded() {
        let (issuer, upstream) = served().await;
        let token = issuer.mint(&TokenRequest::new("o1")).expect("mint");
        // An authority that accepts connections and never answers: a fetch would wait the
        // whole timeout, and verifying must not.
        let (port, held) = silent_authority().await;
        let nowhere = format!("https://127.0.0.1:{port}/{TENANT}/v2.0");
        let started = Instant::now();
        assert_eq!(upstream.verify(&token, TENANT, &nowhere), Err(Refusal::AuthorityUnavailable));
        assert!(started.elapsed() < Duration::from_millis(500), "verify waited: {:?}", started.elapsed());
        assert!(upstream.attempts.lock().expect("lock").is_empty(), "nothing fetched by verify");
        assert!(upstream.refresh(TENANT, "https://127.0.0.1:1/nowhere/v2.0").await.is_err());
        let state = upstream.state(TENANT);
        assert!(state.tried.is_some() && state.fetched.is_none() && !state.wanted, "{state:?}");
        // A token naming a key ID the held keys lack wants them again; the flood wakes the
        // prefetch once.
        upstream.refresh(TENANT, issuer.url()).await.expect("fetched");
        let forged = issuer.mint(&TokenRequest::new("o1").unknown_key()).expect("mint");
        let mut header = jsonwebtoken::decode_header(&forged).expect("header");
        header.kid = Some("never-published".into());
        let parts: Vec<&str> = forged.split('.').collect();
        let encoded =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json"));
        let unknown = format!("{encoded}.{}.{}", parts[1], parts[2]);
        assert_eq!(upstream.verify(&unknown, TENANT, issuer.url()), Err(Refusal::UnknownKey));
        assert!(upstream.state(TENANT).wanted);
        tokio::time::timeout(Duration::from_secs(1), upstream.wanted()).await.expect("the prefetch is woken");
        assert_eq!(upstream.verify(&unknown, TENANT, issuer.url()), Err(Refusal::UnknownKey));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), upstream.wanted()).await.is_err(),
            "woken once per want"
        );
        held.abort();
    }
}
