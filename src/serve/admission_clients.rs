//! Who may call the admission webhook (`POST /validate`, `POST /mutate`).
//!
//! An AdmissionReview names its caller in its body, and that body is what admission judges;
//! a client that is not the API server could post one to learn what the author's-authority
//! check answers for any user (it asks SubjectAccessReviews on the author's behalf). So, as
//! Gatekeeper's `--client-ca-name`/`--client-cn-name` do, the webhook can require the API
//! server's client certificate: with `--admission-client-ca`, a request to the admission
//! paths is served only over a connection that presented a certificate chaining to that CA
//! for client authentication (and, with `--admission-client-names`, whose common name is
//! listed). The API server presents one when its admission configuration
//! (`--admission-control-config-file`, `WebhookAdmissionConfiguration.kubeConfigFile`) names
//! a client certificate for the webhook's host (docs/install.md). Without a certificate the
//! answer is `401`, with one that is not trusted `403`, both before anything is judged.
//!
//! Without the option every caller is served, as before: admission then changes nothing
//! ([`crate::webhook`] keeps no state a request can set beyond a short-lived claim), but the
//! author's-authority answers stay observable to whoever reaches the port (docs/install.md,
//! "Admission clients").

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::RootCertStore;
use tracing::debug;

use super::tls::PeerCertificates;
use super::ServeError;

/// Why an admission call is refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    /// No client certificate (401).
    #[error("no client certificate: only the API server may call the admission webhook")]
    NoCertificate,
    /// The certificate does not chain to the admission client CA for client authentication (403).
    #[error("the client certificate is not trusted: {0}")]
    Untrusted(String),
    /// The certificate's common name is not one of `--admission-client-names` (403).
    #[error("the client certificate's common name {0:?} is not an allowed admission client")]
    NameNotAllowed(String),
}

impl Refused {
    /// The HTTP status of the refusal: 401 without a certificate, 403 with an untrusted one.
    pub fn status(&self) -> StatusCode {
        match self {
            Refused::NoCertificate => StatusCode::UNAUTHORIZED,
            Refused::Untrusted(_) | Refused::NameNotAllowed(_) => StatusCode::FORBIDDEN,
        }
    }
}

/// The admission clients trusted: a CA, and optionally the common names it may have signed.
pub struct AdmissionClients {
    verifier: Arc<dyn ClientCertVerifier>,
    /// Allowed common names; empty: any the CA signed.
    pub allowed_names: Vec<String>,
}

impl std::fmt::Debug for AdmissionClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionClients").field("allowed_names", &self.allowed_names).finish_non_exhaustive()
    }
}

impl AdmissionClients {
    /// Trusts the PEM CA certificates in `pem`, for client certificates named `allowed_names`
    /// (empty: any name). `source` names `pem` in errors.
    ///
    /// # Errors
    /// [`ServeError::ClientCa`] when `pem` holds no certificate rustls accepts as a trust anchor.
    pub fn from_pem(pem: &[u8], allowed_names: Vec<String>, source: &str) -> Result<AdmissionClients, ServeError> {
        let bad = |why: String| ServeError::ClientCa(source.to_string(), why);
        let certs: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut &pem[..]).collect::<Result<_, _>>().map_err(|e| bad(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad("no usable CA certificate".into()));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::tls::provider())
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(AdmissionClients { verifier, allowed_names })
    }

    /// As [`AdmissionClients::from_pem`], from the file at `path`.
    ///
    /// # Errors
    /// [`ServeError::Read`] when the file cannot be read, else as [`AdmissionClients::from_pem`].
    pub fn load(path: &Path, allowed_names: Vec<String>) -> Result<AdmissionClients, ServeError> {
        let pem = std::fs::read(path).map_err(|e| ServeError::Read(path.display().to_string(), e))?;
        AdmissionClients::from_pem(&pem, allowed_names, &path.display().to_string())
    }

    /// Whether the connection's certificates `peer` authenticate an admission client at `now`.
    ///
    /// # Errors
    /// [`Refused`]: no certificate, a chain that does not verify for client authentication,
    /// or a common name not allowed.
    pub fn authenticate(&self, peer: &PeerCertificates, now: UnixTime) -> Result<(), Refused> {
        let (leaf, intermediates) = peer.chain().ok_or(Refused::NoCertificate)?;
        self.verifier.verify_client_cert(leaf, intermediates, now).map_err(|e| Refused::Untrusted(e.to_string()))?;
        if !self.allowed_names.is_empty() {
            let name = super::front_proxy::common_name(leaf).unwrap_or_default();
            if !self.allowed_names.contains(&name) {
                return Err(Refused::NameNotAllowed(name));
            }
        }
        Ok(())
    }
}

/// Middleware of the admission routes: refuses, before anything is judged, a caller that
/// [`AdmissionClients::authenticate`] does not accept.
pub async fn require(State(clients): State<Arc<AdmissionClients>>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<PeerCertificates>().cloned().unwrap_or_default();
    match clients.authenticate(&peer, UnixTime::now()) {
        Ok(()) => next.run(request).await,
        Err(why) => {
            debug!(error = %why, path = %request.uri().path(), "admission call refused");
            (why.status(), why.to_string()).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };

    use super::*;

    fn ca() -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, "webhook-client-ca");
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
    }

    fn issue(ca: &CertifiedIssuer<'static, KeyPair>, cn: &str, usage: ExtendedKeyUsagePurpose) -> PeerCertificates {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, ca).expect("sign");
        PeerCertificates(Arc::new(vec![cert.der().clone()]))
    }

    #[test]
    fn only_a_client_certificate_of_the_ca_is_served() {
        let ca = ca();
        let clients = AdmissionClients::from_pem(ca.pem().as_bytes(), Vec::new(), "test").expect("valid");
        let now = UnixTime::now();
        let api_server = issue(&ca, "kube-apiserver", ExtendedKeyUsagePurpose::ClientAuth);
        assert_eq!(clients.authenticate(&api_server, now), Ok(()));
        let refused = clients.authenticate(&PeerCertificates::default(), now);
        assert_eq!(refused, Err(Refused::NoCertificate));
        assert_eq!(refused.unwrap_err().status(), StatusCode::UNAUTHORIZED);
        let impostor = issue(&self::ca(), "kube-apiserver", ExtendedKeyUsagePurpose::ClientAuth);
        let refused = clients.authenticate(&impostor, now).unwrap_err();
        assert!(matches!(refused, Refused::Untrusted(_)));
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let server_only = issue(&ca, "kube-apiserver", ExtendedKeyUsagePurpose::ServerAuth);
        assert!(matches!(clients.authenticate(&server_only, now), Err(Refused::Untrusted(_))));
    }

    #[test]
    fn allowed_names_narrow_the_ca() {
        let ca = ca();
        let clients =
            AdmissionClients::from_pem(ca.pem().as_bytes(), vec!["kube-apiserver".into()], "test").expect("valid");
        let now = UnixTime::now();
        assert_eq!(
            clients.authenticate(&issue(&ca, "kube-apiserver", ExtendedKeyUsagePurpose::ClientAuth), now),
            Ok(())
        );
        assert_eq!(
            clients.authenticate(&issue(&ca, "someone", ExtendedKeyUsagePurpose::ClientAuth), now),
            Err(Refused::NameNotAllowed("someone".into()))
        );
    }

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        assert!(matches!(
            AdmissionClients::from_pem(b"not a certificate", Vec::new(), "ca.crt"),
            Err(ServeError::ClientCa(source, _)) if source == "ca.crt"
        ));
    }
}
