//! Front-proxy trust: who may tell the views API who the caller is (SPEC §10).
//!
//! The aggregation layer authenticates the user, authorizes the request against RBAC (the
//! chart's ClusterRole lets `system:authenticated` get and list the views), and proxies it
//! here with its front-proxy client certificate and the caller in headers: the user in
//! `X-Remote-User`, each group in an `X-Remote-Group`, extra attributes in `X-Remote-Extra-<key>`.
//! Those headers are believed only when the connection presented a client certificate that
//! chains to the `requestheader-client-ca-file` of the `kube-system/extension-apiserver-
//! authentication` ConfigMap, for client authentication, and whose common name is one of
//! `requestheader-allowed-names` (an empty list allows any name that CA signed). This is the
//! rule of the API server's own request-header authenticator
//! (`k8s.io/apiserver/pkg/authentication/request/headerrequest`), header names included: they
//! come from the same ConfigMap.
//!
//! [`RequestHeaderAuth::from_config_map`] and [`RequestHeaderAuth::authenticate`] are pure;
//! [`FrontProxy`] holds the current configuration and follows the ConfigMap with a watch, so
//! a rotated CA is picked up without a restart and no request costs an API call.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use thiserror::Error;
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::RootCertStore;
use tracing::{info, warn};

use super::tls::PeerCertificates;

/// Namespace of the ConfigMap the API server publishes its front-proxy trust in.
pub const CONFIG_MAP_NAMESPACE: &str = "kube-system";
/// Name of that ConfigMap.
pub const CONFIG_MAP_NAME: &str = "extension-apiserver-authentication";

const CLIENT_CA: &str = "requestheader-client-ca-file";
const ALLOWED_NAMES: &str = "requestheader-allowed-names";
const USERNAME_HEADERS: &str = "requestheader-username-headers";
const GROUP_HEADERS: &str = "requestheader-group-headers";
const EXTRA_HEADERS_PREFIX: &str = "requestheader-extra-headers-prefix";

/// Why the front-proxy configuration cannot be used.
#[derive(Debug, Error)]
pub enum FrontProxyError {
    /// The ConfigMap has no `requestheader-client-ca-file`: the API server runs without the
    /// aggregation layer (`--requestheader-client-ca-file` unset).
    #[error("{CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} has no {CLIENT_CA}: the API server's aggregation layer is off")]
    NotConfigured,
    /// A list-valued key is not a JSON array of strings.
    #[error("{CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}: {0} is not a JSON list of strings: {1}")]
    List(&'static str, #[source] serde_json::Error),
    /// The client CA is not PEM, or holds no certificate rustls accepts as a trust anchor.
    #[error("{CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}: {CLIENT_CA}: {0}")]
    ClientCa(String),
}

/// Why a views request is not authenticated (answered with 401).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Unauthenticated {
    /// The front-proxy configuration is not loaded (yet, or the ConfigMap is unreadable).
    #[error("the front-proxy trust ({CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}) is not loaded")]
    NoTrust,
    /// No client certificate: not the API server's front proxy.
    #[error("no client certificate: only the API server's front proxy may call this API")]
    NoCertificate,
    /// The certificate does not chain to the front-proxy CA for client authentication.
    #[error("the client certificate is not trusted: {0}")]
    Untrusted(String),
    /// The certificate's common name is not in `requestheader-allowed-names`.
    #[error("the client certificate's common name {0:?} is not an allowed front-proxy name")]
    NameNotAllowed(String),
    /// A trusted proxy sent no user name.
    #[error("no user name in the {0:?} headers")]
    NoUser(Vec<String>),
}

/// The caller as the front proxy states it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user name (`X-Remote-User`).
    pub username: String,
    /// The groups (every `X-Remote-Group`), in order.
    pub groups: Vec<String>,
    /// Extra attributes (`X-Remote-Extra-<key>`), keys lower-cased and unescaped.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The request-header authenticator's configuration, from the ConfigMap.
pub struct RequestHeaderAuth {
    /// Verifies a presented chain against the front-proxy CA, for client authentication.
    verifier: Arc<dyn ClientCertVerifier>,
    /// Allowed common names; empty: any.
    pub allowed_names: Vec<String>,
    /// Headers naming the user, the first non-empty one wins.
    pub username_headers: Vec<String>,
    /// Headers naming groups, every value of each.
    pub group_headers: Vec<String>,
    /// Prefixes of headers carrying extra attributes.
    pub extra_headers_prefix: Vec<String>,
}

impl std::fmt::Debug for RequestHeaderAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHeaderAuth")
            .field("allowed_names", &self.allowed_names)
            .field("username_headers", &self.username_headers)
            .field("group_headers", &self.group_headers)
            .field("extra_headers_prefix", &self.extra_headers_prefix)
            .finish_non_exhaustive()
    }
}

fn list(data: &BTreeMap<String, String>, key: &'static str) -> Result<Vec<String>, FrontProxyError> {
    match data.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(Vec::new()),
        Some(v) => serde_json::from_str(v).map_err(|e| FrontProxyError::List(key, e)),
    }
}

impl RequestHeaderAuth {
    /// Reads the `data` of `kube-system/extension-apiserver-authentication`: the PEM CA under
    /// `requestheader-client-ca-file`, and the JSON lists under `requestheader-allowed-names`,
    /// `-username-headers`, `-group-headers`, `-extra-headers-prefix` (absent: empty).
    ///
    /// # Errors
    /// [`FrontProxyError::NotConfigured`] without a client CA; [`FrontProxyError::List`] for a
    /// list that is not JSON; [`FrontProxyError::ClientCa`] for a CA rustls cannot use.
    pub fn from_config_map(data: &BTreeMap<String, String>) -> Result<RequestHeaderAuth, FrontProxyError> {
        let pem = data.get(CLIENT_CA).filter(|p| !p.trim().is_empty()).ok_or(FrontProxyError::NotConfigured)?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| FrontProxyError::ClientCa(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(FrontProxyError::ClientCa("no usable CA certificate".into()));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::tls::provider())
            .build()
            .map_err(|e| FrontProxyError::ClientCa(e.to_string()))?;
        Ok(RequestHeaderAuth {
            verifier,
            allowed_names: list(data, ALLOWED_NAMES)?,
            username_headers: list(data, USERNAME_HEADERS)?,
            group_headers: list(data, GROUP_HEADERS)?,
            extra_headers_prefix: list(data, EXTRA_HEADERS_PREFIX)?,
        })
    }

    /// The caller of a request that arrived over a connection with `peer`'s certificates and
    /// carries `headers`, at time `now`.
    ///
    /// # Errors
    /// [`Unauthenticated`]: no certificate, a chain that does not verify against the CA for
    /// client authentication at `now`, a common name not allowed, or no user name.
    pub fn authenticate(
        &self,
        peer: &PeerCertificates,
        headers: &HeaderMap,
        now: UnixTime,
    ) -> Result<Identity, Unauthenticated> {
        let (leaf, intermediates) = peer.chain().ok_or(Unauthenticated::NoCertificate)?;
        self.verifier
            .verify_client_cert(leaf, intermediates, now)
            .map_err(|e| Unauthenticated::Untrusted(e.to_string()))?;
        if !self.allowed_names.is_empty() {
            let name = common_name(leaf).unwrap_or_default();
            if !self.allowed_names.contains(&name) {
                return Err(Unauthenticated::NameNotAllowed(name));
            }
        }
        let values = |name: &String| {
            headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let username = self
            .username_headers
            .iter()
            .find_map(|h| values(h).into_iter().find(|v| !v.is_empty()))
            .ok_or_else(|| Unauthenticated::NoUser(self.username_headers.clone()))?;
        let groups = self.group_headers.iter().flat_map(values).filter(|g| !g.is_empty()).collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for prefix in &self.extra_headers_prefix {
            let prefix = prefix.to_ascii_lowercase();
            for (name, value) in headers {
                // HeaderName is lower-case already.
                let Some(key) = name.as_str().strip_prefix(prefix.as_str()) else { continue };
                let key = percent_encoding::percent_decode_str(key)
                    .decode_utf8()
                    .map_or_else(|_| key.to_string(), |k| k.into_owned());
                if let Ok(v) = value.to_str() {
                    extra.entry(key).or_default().push(v.to_string());
                }
            }
        }
        Ok(Identity { username, groups, extra })
    }
}

/// The subject common name of a DER certificate.
pub(super) fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let name = cert.subject().iter_common_name().last()?.as_str().ok()?.to_string();
    Some(name)
}

/// The front-proxy configuration in force, kept current by [`FrontProxy::follow`].
#[derive(Debug, Default)]
pub struct FrontProxy {
    current: RwLock<Option<Arc<RequestHeaderAuth>>>,
}

impl FrontProxy {
    /// A holder with `auth` in force (tests; the process uses [`FrontProxy::follow`]).
    pub fn with(auth: RequestHeaderAuth) -> FrontProxy {
        FrontProxy { current: RwLock::new(Some(Arc::new(auth))) }
    }

    /// The configuration in force, if one was loaded.
    pub fn current(&self) -> Option<Arc<RequestHeaderAuth>> {
        self.current.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |c| c.clone())
    }

    fn set(&self, auth: Option<Arc<RequestHeaderAuth>>) {
        match self.current.write() {
            Ok(mut c) => *c = auth,
            Err(poisoned) => *poisoned.into_inner() = auth,
        }
    }

    /// Authenticates a views request with the configuration in force now.
    ///
    /// # Errors
    /// [`Unauthenticated::NoTrust`] before the ConfigMap was read, else as
    /// [`RequestHeaderAuth::authenticate`].
    pub fn authenticate(&self, peer: &PeerCertificates, headers: &HeaderMap) -> Result<Identity, Unauthenticated> {
        self.current().ok_or(Unauthenticated::NoTrust)?.authenticate(peer, headers, UnixTime::now())
    }

    /// Watches `kube-system/extension-apiserver-authentication` (only that object, which the
    /// built-in Role `extension-apiserver-authentication-reader` may read) and keeps the
    /// configuration current until the process ends. An unusable ConfigMap leaves the last
    /// good configuration in force; a deleted one withdraws it (every views request is 401).
    pub async fn follow(self: Arc<Self>, client: Client) {
        let api: Api<ConfigMap> = Api::namespaced(client, CONFIG_MAP_NAMESPACE);
        let config = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP_NAME}"));
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                    match RequestHeaderAuth::from_config_map(&cm.data.unwrap_or_default()) {
                        Ok(auth) => {
                            info!(allowed_names = ?auth.allowed_names, "front-proxy trust loaded");
                            self.set(Some(Arc::new(auth)));
                        }
                        Err(e) => {
                            warn!(error = %e, "front-proxy trust unusable; views requests keep the last good one")
                        }
                    }
                }
                Ok(watcher::Event::Delete(_)) => {
                    warn!("{CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} deleted: every views request is refused");
                    self.set(None);
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(e) => warn!(error = %e, "cannot watch {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}; retrying"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };

    use super::*;

    struct Ca {
        issuer: CertifiedIssuer<'static, KeyPair>,
    }

    impl Ca {
        fn new(name: &str) -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.distinguished_name.push(DnType::CommonName, name);
            Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca") }
        }

        fn pem(&self) -> String {
            self.issuer.pem()
        }

        fn issue(&self, cn: &str, usage: ExtendedKeyUsagePurpose) -> PeerCertificates {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &self.issuer).expect("sign");
            PeerCertificates(Arc::new(vec![cert.der().clone()]))
        }
    }

    fn data(ca: &Ca, allowed: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (CLIENT_CA.to_string(), ca.pem()),
            (ALLOWED_NAMES.to_string(), allowed.to_string()),
            (USERNAME_HEADERS.to_string(), r#"["X-Remote-User"]"#.to_string()),
            (GROUP_HEADERS.to_string(), r#"["X-Remote-Group"]"#.to_string()),
            (EXTRA_HEADERS_PREFIX.to_string(), r#"["X-Remote-Extra-"]"#.to_string()),
        ])
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const CALLER: &[(&str, &str)] = &[
        ("X-Remote-User", "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6:00000000-0000-0000-0000-00000000e001"),
        ("X-Remote-Group", "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6:00000000-0000-0000-0000-0000000000a1"),
        ("X-Remote-Group", "system:authenticated"),
        ("X-Remote-Extra-Kubelighthouse.io%2famr", "pwd"),
        ("X-Remote-Extra-Kubelighthouse.io%2famr", "mfa"),
    ];

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn the_config_map_names_the_ca_the_names_and_the_headers() {
        let ca = Ca::new("front-proxy-ca");
        let auth = RequestHeaderAuth::from_config_map(&data(&ca, r#"["front-proxy-client"]"#)).expect("valid");
        assert_eq!(auth.allowed_names, ["front-proxy-client"]);
        assert_eq!(auth.username_headers, ["X-Remote-User"]);
        assert_eq!(auth.group_headers, ["X-Remote-Group"]);
        assert_eq!(auth.extra_headers_prefix, ["X-Remote-Extra-"]);

        let mut no_ca = data(&ca, "[]");
        no_ca.remove(CLIENT_CA);
        assert!(matches!(RequestHeaderAuth::from_config_map(&no_ca), Err(FrontProxyError::NotConfigured)));
        let mut bad = data(&ca, "front-proxy-client");
        assert!(matches!(RequestHeaderAuth::from_config_map(&bad), Err(FrontProxyError::List(ALLOWED_NAMES, _))));
        bad = data(&ca, "[]");
        bad.insert(CLIENT_CA.into(), "not a certificate".into());
        assert!(matches!(RequestHeaderAuth::from_config_map(&bad), Err(FrontProxyError::ClientCa(_))));
    }

    #[test]
    fn the_front_proxy_speaks_for_the_caller() {
        let ca = Ca::new("front-proxy-ca");
        let auth = RequestHeaderAuth::from_config_map(&data(&ca, r#"["front-proxy-client"]"#)).expect("valid");
        let proxy = ca.issue("front-proxy-client", ExtendedKeyUsagePurpose::ClientAuth);
        let identity = auth.authenticate(&proxy, &headers(CALLER), now()).expect("authenticated");
        assert_eq!(identity.username, CALLER[0].1);
        assert_eq!(identity.groups, [CALLER[1].1, "system:authenticated"]);
        assert_eq!(identity.extra.get("kubelighthouse.io/amr").expect("amr"), &["pwd", "mfa"]);
    }

    #[test]
    fn headers_are_never_believed_without_a_trusted_certificate() {
        let ca = Ca::new("front-proxy-ca");
        let auth = RequestHeaderAuth::from_config_map(&data(&ca, r#"["front-proxy-client"]"#)).expect("valid");
        let forged = headers(CALLER);
        assert_eq!(
            auth.authenticate(&PeerCertificates::default(), &forged, now()),
            Err(Unauthenticated::NoCertificate)
        );

        let other_ca = Ca::new("front-proxy-ca");
        let impostor = other_ca.issue("front-proxy-client", ExtendedKeyUsagePurpose::ClientAuth);
        assert!(matches!(auth.authenticate(&impostor, &forged, now()), Err(Unauthenticated::Untrusted(_))));

        let server_only = ca.issue("front-proxy-client", ExtendedKeyUsagePurpose::ServerAuth);
        assert!(matches!(auth.authenticate(&server_only, &forged, now()), Err(Unauthenticated::Untrusted(_))));

        let other_name = ca.issue("someone-else", ExtendedKeyUsagePurpose::ClientAuth);
        assert_eq!(
            auth.authenticate(&other_name, &forged, now()),
            Err(Unauthenticated::NameNotAllowed("someone-else".into()))
        );
        let proxy = ca.issue("front-proxy-client", ExtendedKeyUsagePurpose::ClientAuth);
        assert!(matches!(auth.authenticate(&proxy, &headers(&CALLER[1..]), now()), Err(Unauthenticated::NoUser(_))));
        assert_eq!(FrontProxy::default().authenticate(&proxy, &forged), Err(Unauthenticated::NoTrust));
    }

    #[test]
    fn no_allowed_names_means_any_name_the_ca_signed() {
        let ca = Ca::new("front-proxy-ca");
        let auth = RequestHeaderAuth::from_config_map(&data(&ca, "")).expect("valid");
        assert!(auth.allowed_names.is_empty());
        let anyone = ca.issue("aggregator", ExtendedKeyUsagePurpose::ClientAuth);
        let proxy = FrontProxy::with(auth);
        assert_eq!(proxy.authenticate(&anyone, &headers(CALLER)).expect("authenticated").username, CALLER[0].1);
    }
}
