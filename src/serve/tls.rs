//! TLS of the shared server: the serving certificate, and client certificates that are
//! *requested but not required*.
//!
//! The API server calls the admission webhook without a client certificate, and proxies views
//! requests with its front-proxy client certificate (`--proxy-client-cert-file`). One port
//! serves both, so the handshake accepts a connection with no certificate, and accepts any
//! certificate whose owner proves it holds the private key (the handshake signature is
//! verified). Whether that certificate chains to the front-proxy CA is decided per request by
//! [`super::front_proxy`], against the CA as it is *now* (it may rotate), so that an
//! untrusted certificate on a views path gets a Kubernetes 401 `Status` rather than a broken
//! handshake, and an admission call is never refused for a certificate it did not need.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use super::ServeError;

/// The certificate chain a client presented in the TLS handshake, leaf first; empty when it
/// presented none. Inserted into every request of the connection as an extension.
///
/// Not verified against any CA: only the client's possession of the leaf's private key is.
#[derive(Clone, Debug, Default)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

impl PeerCertificates {
    /// The leaf certificate and its intermediates, if a certificate was presented.
    pub fn chain(&self) -> Option<(&CertificateDer<'static>, &[CertificateDer<'static>])> {
        self.0.split_first()
    }
}

/// Requests a client certificate, does not require one, and checks only the handshake
/// signature (proof of the private key). Chain verification is deferred to the request
/// ([`super::front_proxy::RequestHeaderAuth::authenticate`]).
#[derive(Debug)]
struct ClientCertificateRequested {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for ClientCertificateRequested {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: the front-proxy CA may rotate while the server runs, and Go's client (the
        // API server's proxy transport) sends its one configured certificate regardless.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, tokio_rustls::rustls::Error> {
        // Deliberately deferred: see the module documentation. Nothing is trusted on the
        // strength of this assertion; every views request verifies the chain itself.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The crypto provider of every TLS operation of the server (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// The server's TLS configuration: the PEM certificate chain at `cert` and private key at
/// `key`, client certificates requested but optional.
///
/// # Errors
/// [`ServeError::Read`] when a file cannot be read or parsed, [`ServeError::NoKey`] when the
/// key file holds no private key, [`ServeError::Tls`] when rustls refuses the pair.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, ServeError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| ServeError::Read(p.display().to_string(), e));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Read(cert.display().to_string(), e))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServeError::Read(key.display().to_string(), e))?
        .ok_or_else(|| ServeError::NoKey(key.display().to_string()))?;
    let provider = provider();
    let verifier = Arc::new(ClientCertificateRequested { provider: provider.clone() });
    Ok(ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?)
}
