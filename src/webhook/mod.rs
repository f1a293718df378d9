//! The validating admission webhook: refuses at `kubectl apply` what the reconciler would
//! reject (the same `model::validate` code), refuses delegations that grant more than their
//! author could grant directly, and keeps User Access Administrator to managed identities.
//!
//! Served over TLS only when a certificate and key are configured.

mod activation;
mod admit;
mod authority;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::controller::caches::Caches;
use crate::controller::context::Policy;

/// What admission reads: a narrow handle, not the reconcile context. The caches and the
/// policy are the reconcilers' own (so both judge alike); the client asks
/// SubjectAccessReviews and reads a definition the cache does not hold yet.
#[derive(Clone)]
pub struct Admission {
    pub client: kube::Client,
    pub caches: Caches,
    pub policy: Arc<Policy>,
    /// True once every cache has its first list; until then every judged request is refused.
    pub ready: tokio::sync::watch::Receiver<bool>,
}

/// Why the webhook cannot start.
#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("cannot read {0}: {1}")]
    Read(String, #[source] std::io::Error),
    #[error("no private key in {0}")]
    NoKey(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
    #[error("cannot listen on port {0}: {1}")]
    Bind(u16, #[source] std::io::Error),
}

fn tls_config(cert: &Path, key: &Path) -> Result<ServerConfig, WebhookError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| WebhookError::Read(p.display().to_string(), e));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| WebhookError::Read(cert.display().to_string(), e))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| WebhookError::Read(key.display().to_string(), e))?
        .ok_or_else(|| WebhookError::NoKey(key.display().to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    Ok(ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?)
}

async fn validate(
    State(admission): State<Arc<Admission>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")).into_review()),
    };
    let response = admit::review(&request, &admission).await;
    debug!(kind = %request.kind.kind, name = %request.name, user = ?request.user_info.username, allowed = response.allowed, "admission");
    Json(response.into_review())
}

/// The mutating webhook: stamps who created a RoleActivation or an ActivationReview.
async fn mutate(Json(review): Json<AdmissionReview<DynamicObject>>) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")).into_review()),
    };
    Json(activation::mutate(&request).into_review())
}

/// Serves `POST /validate` and `POST /mutate` over TLS on `port` until the process ends.
///
/// # Errors
/// [`WebhookError`] when the certificate or key cannot be read or the port cannot be bound.
pub async fn serve(port: u16, cert: &Path, key: &Path, admission: Arc<Admission>) -> Result<(), WebhookError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(cert, key)?));
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
        .await
        .map_err(|e| WebhookError::Bind(port, e))?;
    info!(port, "admission webhook listening");
    let router = Router::new().route("/validate", post(validate)).route("/mutate", post(mutate)).with_state(admission);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "webhook accept failed");
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        debug!(error = %e, %peer, "TLS handshake failed");
                        return;
                    }
                };
                let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
                if let Err(e) = served {
                    debug!(error = %e, %peer, "webhook connection ended");
                }
            });
        }
    });
    Ok(())
}
