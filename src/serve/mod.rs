//! One TLS server per replica (SPEC §10, §12): the admission webhook (`POST /validate`) and the
//! views API (`/apis/view.kubelighthouse.io/v1alpha1/...`) on one port and one certificate.
//!
//! | module | owns |
//! |---|---|
//! | [`tls`] | the serving certificate; client certificates requested, never required |
//! | [`admission_clients`] | with `--admission-client-ca`, which client certificate may call admission |
//! | [`front_proxy`] | which client certificate may name the caller, from `kube-system/extension-apiserver-authentication` |
//! | [`protocol`] | discovery documents, JSON or `Table`, `Status` bodies, list parameters (pure) |
//! | [`views`] | the views' routes: authenticate, snapshot the caches, call `model::views`, encode |
//!
//! The API server calls the webhook with no client certificate unless its admission
//! configuration names one (then the admission routes can require it), and the views through
//! its front proxy with one. Each connection's certificates travel with its requests
//! ([`tls::PeerCertificates`]); the views' routes and, when configured, the admission routes
//! look at them.

pub mod admission_clients;
pub mod front_proxy;
pub mod protocol;
pub mod tls;
pub mod views;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use self::tls::PeerCertificates;
use crate::webhook::Admission;

/// Why the TLS server cannot start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// A certificate or key file cannot be read or parsed.
    #[error("cannot read {0}: {1}")]
    Read(String, #[source] std::io::Error),
    /// The key file holds no private key.
    #[error("no private key in {0}")]
    NoKey(String),
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
    /// The admission client CA holds no usable certificate.
    #[error("admission client CA {0}: {1}")]
    ClientCa(String, String),
    /// The port is taken or not ours to bind.
    #[error("cannot listen on port {0}: {1}")]
    Bind(u16, #[source] std::io::Error),
}

/// What the server answers: admission always, the views when configured.
pub struct Routes {
    /// The admission webhook's handle.
    pub admission: Arc<Admission>,
    /// The views API's handle; None: the views' paths are 404.
    pub views: Option<Arc<views::Views>>,
    /// Who may call admission; None: anyone who reaches the port (docs/install.md).
    pub admission_clients: Option<Arc<admission_clients::AdmissionClients>>,
}

impl Routes {
    fn router(self) -> Router {
        let mut router = crate::webhook::router(self.admission);
        if let Some(clients) = self.admission_clients {
            // Only the admission routes: the views authenticate their front proxy themselves.
            router = router.layer(axum::middleware::from_fn_with_state(clients, admission_clients::require));
        }
        if let Some(v) = self.views {
            router = router.merge(views::router(v));
        }
        router
    }
}

/// Binds `port` on all interfaces and serves `routes` over TLS with the PEM `cert` and `key`
/// until the process ends (the accept loop runs as its own task).
///
/// # Errors
/// [`ServeError`] when the TLS material is unusable or the port cannot be bound; nothing is
/// served then.
pub async fn serve(port: u16, cert: &Path, key: &Path, routes: Routes) -> Result<(), ServeError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(cert, key)?));
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
        .await
        .map_err(|e| ServeError::Bind(port, e))?;
    let views = routes.views.is_some();
    info!(port, views, "TLS server listening: admission webhook{}", if views { " and views API" } else { "" });
    let router = routes.router();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        debug!(error = %e, %peer, "TLS handshake failed");
                        return;
                    }
                };
                let certificates = PeerCertificates(Arc::new(
                    tls.get_ref()
                        .1
                        .peer_certificates()
                        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                        .unwrap_or_default(),
                ));
                let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(certificates.clone());
                    router.clone().oneshot(request)
                });
                let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
                if let Err(e) = served {
                    debug!(error = %e, %peer, "connection ended");
                }
            });
        }
    });
    Ok(())
}
