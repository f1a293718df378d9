//! The HTTPS server: an issuer's OIDC discovery document and JWKS on 127.0.0.1, with its own
//! serving certificate, every request logged, until told to stop.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::issuer::{TLS_CERT_FILE, TLS_KEY_FILE};
use crate::{Error, Issuer};

/// The routes, without TLS: `GET <url path>/.well-known/openid-configuration` (the
/// [`Issuer::discovery`] document) and `GET /<tenant>/discovery/v2.0/keys` (the
/// [`Issuer::jwks`]); anything else is 404. Each request is logged at `info`.
pub fn router(issuer: &Issuer) -> Router {
    let discovery = Arc::new(issuer.discovery());
    let jwks = Arc::new(issuer.jwks());
    Router::new()
        .route(&issuer.discovery_path(), get(move || async move { Json(discovery.as_ref().clone()) }))
        .route(&issuer.jwks_path(), get(move || async move { Json(jwks.as_ref().clone()) }))
        .layer(middleware::from_fn(log_request))
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    info!(%method, %uri, status = response.status().as_u16(), micros = started.elapsed().as_micros(), "request");
    response
}

/// Listens on 127.0.0.1 at the port of the issuer URL and serves [`router`] over HTTPS with
/// the directory's serving certificate, until `shutdown` completes.
///
/// # Errors
///
/// [`Error::Bind`] when the port cannot be opened; see [`serve_on`] for the rest.
pub async fn serve(issuer: &Issuer, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    serve_all(std::slice::from_ref(issuer), shutdown).await
}

/// Serves several issuers on one port, as Entra ID serves every tenant on one host: their
/// URLs must name the same port (their paths differ by tenant), and the first one's serving
/// certificate is presented for all (give them the same CA, as `hack/control-plane.sh up
/// --federation` does).
///
/// # Errors
///
/// [`Error::Url`] when the issuers are none or their ports differ, [`Error::Bind`] when the
/// port cannot be opened; see [`serve_on`] for the rest.
pub async fn serve_all(issuers: &[Issuer], shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let first =
        issuers.first().ok_or_else(|| Error::Url { url: String::new(), reason: "no issuer to serve".into() })?;
    if let Some(other) = issuers.iter().find(|i| i.port() != first.port()) {
        return Err(Error::Url {
            url: other.url().to_owned(),
            reason: format!("must name port {} as {} does", first.port(), first.url()),
        });
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, first.port()));
    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
    serve_all_on(listener, issuers, shutdown).await
}

/// Serves [`router`] over HTTPS on an already bound `listener` until `shutdown` completes,
/// then closes every open connection. Useful in tests: bind `127.0.0.1:0`, build the issuer
/// URL from the port, [`Issuer::init`], then call this.
///
/// # Errors
///
/// [`Error::Io`] / [`Error::Pem`] when [`TLS_CERT_FILE`] or [`TLS_KEY_FILE`] cannot be read,
/// [`Error::Tls`] when rustls rejects them. Failed accepts and handshakes are logged, not
/// returned.
pub async fn serve_on(listener: TcpListener, issuer: &Issuer, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    serve_all_on(listener, std::slice::from_ref(issuer), shutdown).await
}

async fn serve_all_on(
    listener: TcpListener,
    issuers: &[Issuer],
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let Some(issuer) = issuers.first() else { return Ok(()) };
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(issuer.dir())?));
    let router = issuers.iter().skip(1).fold(router(issuer), |all, i| all.merge(router(i)));
    let local = listener.local_addr().map_err(Error::io(issuer.dir()))?;
    info!(issuer = issuer.url(), %local, discovery = issuer.discovery_url(), jwks = issuer.jwks_uri(), "serving");
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(connection) => connection,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        // A bare TCP probe (a readiness check) closes without a handshake.
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            debug!(error = %e, %peer, "connection closed before the TLS handshake");
                            return;
                        }
                        Err(e) => {
                            warn!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                    };
                    let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                    if let Err(e) = served {
                        debug!(error = %e, %peer, "connection ended");
                    }
                });
            }
        }
    }
    connections.shutdown().await;
    info!(issuer = issuer.url(), "stopped");
    Ok(())
}

fn tls_config(dir: &Path) -> Result<ServerConfig, Error> {
    let cert_path = dir.join(TLS_CERT_FILE);
    let key_path = dir.join(TLS_KEY_FILE);
    let cert_pem = std::fs::read(&cert_path).map_err(Error::io(&cert_path))?;
    let key_pem = std::fs::read(&key_path).map_err(Error::io(&key_path))?;
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut cert_pem.as_slice()).collect::<Result<_, _>>().map_err(Error::io(&cert_path))?;
    if certs.is_empty() {
        return Err(Error::Pem(cert_path, "certificate"));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(Error::io(&key_path))?
        .ok_or(Error::Pem(key_path, "private key"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use tower::ServiceExt;

    use super::*;
    use crate::fixture::{shared, AUDIENCE, TENANT};
    use crate::{Claims, TokenRequest};

    async fn get(path: &str) -> (StatusCode, serde_json::Value) {
        let response = router(shared()).oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn serves_discovery_under_the_issuer_path() {
        let (status, doc) = get(&format!("/{TENANT}/v2.0/.well-known/openid-configuration")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["issuer"], shared().url());
        assert_eq!(doc["jwks_uri"], shared().jwks_uri());
    }

    #[tokio::test]
    async fn a_token_verifies_against_the_served_jwks() {
        let (status, jwks) = get(&format!("/{TENANT}/discovery/v2.0/keys")).await;
        assert_eq!(status, StatusCode::OK);
        let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
        let token = shared().mint(&TokenRequest::new("u").group("g").amr(["pwd", "mfa"])).unwrap();
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[shared().url()]);
        validation.set_audience(&[AUDIENCE]);
        let claims = jsonwebtoken::decode::<Claims>(&token, &key, &validation).unwrap().claims;
        assert_eq!((claims.oid.as_str(), claims.tid.as_str()), ("u", TENANT));
        assert_eq!(claims.groups, ["g"]);
        assert_eq!(claims.amr, ["pwd", "mfa"]);

        let stranger = shared().mint(&TokenRequest::new("u").unknown_key()).unwrap();
        assert!(jsonwebtoken::decode::<Claims>(&stranger, &key, &validation).is_err());
    }

    #[tokio::test]
    async fn anything_else_is_not_found() {
        for path in ["/", "/.well-known/openid-configuration", "/other/discovery/v2.0/keys"] {
            assert_eq!(get(path).await.0, StatusCode::NOT_FOUND, "{path}");
        }
    }
}
