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
//! With `--federation-issuer`, the sign-in broker's routes too (`/federation`, [`crate::federation`]).
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
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
    /// The admission webhook's handle; None (a hub, docs/fleet.md): no admission routes.
    pub admission: Option<Arc<Admission>>,
    /// The views API's handle; None: the views' paths are 404.
    pub views: Option<Arc<views::Views>>,
    /// Who may call admission; None: anyone who reaches the port (docs/install.md).
    pub admission_clients: Option<Arc<admission_clients::AdmissionClients>>,
    /// The sign-in broker's handle; None: `/federation` is 404.
    pub federation: Option<Arc<crate::federation::Broker>>,
}

impl Routes {
    fn router(self) -> Router {
        let mut router = match self.admission {
            Some(admission) => crate::webhook::router(admission),
            None => Router::new(),
        };
        if let Some(clients) = self.admission_clients {
            // Only the admission routes: the views authenticate their front proxy themselves.
            router = router.layer(axum::middleware::from_fn_with_state(clients, admission_clients::require));
        }
        if let Some(v) = self.views {
            router = router.merge(views::router(v));
        }
        if let Some(broker) = self.federation {
            router = router.merge(crate::federation::server::router(broker));
        }
        router
    }
}

/// A running TLS server: what [`serve`] returns so that a stopping replica can drain it.
pub struct Serving {
    /// Set once draining starts: every response from then on carries `Connection: close`.
    draining: Arc<AtomicBool>,
    /// Stops the accept loop, which then closes idle connections and lets in-flight requests
    /// finish.
    stop_accepting: tokio::sync::watch::Sender<bool>,
    /// The accept loop; it ends once every connection has.
    accepting: tokio::task::JoinHandle<()>,
}

/// How long a connection may stay silent before the server closes it, so that a peer that
/// connects and sends nothing, or trickles its bytes, cannot hold a task and a socket for ever.
#[derive(Clone, Copy, Debug)]
struct ConnectionTimeouts {
    /// The TLS handshake, from the TCP connection. The API server completes one in
    /// milliseconds.
    handshake: Duration,
    /// A request's headers over HTTP/1.1 (hyper's `header_read_timeout`, which only runs with a
    /// timer). Hyper starts it as soon as it waits for a request, the first one included, so
    /// it is also how long an idle keep-alive connection stays open: longer than the 90 s
    /// client-go's transport keeps an idle connection, so that the API server closes its idle
    /// connections before this server would.
    header_read: Duration,
}

impl Default for ConnectionTimeouts {
    fn default() -> Self {
        Self { handshake: Duration::from_secs(10), header_read: Duration::from_secs(120) }
    }
}

/// How long a draining server waits for in-flight requests once it stops accepting. The API
/// server gives a webhook call at most 10 s by default (30 s at most).
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(10);

impl Serving {
    /// Drains the server of a stopping replica, so that no admission or views request the API
    /// server sends is cut off (a cut-off admission call refuses the user's apply):
    /// 1. from now on every response carries `Connection: close`, so the API server opens a new
    ///    connection for its next call, which the Service (having dropped this terminating
    ///    replica) sends to another replica; connections it keeps open are still served;
    /// 2. after `delay` (the chart's `shutdownDelaySeconds`), while the endpoints controller and
    ///    kube-proxy take the replica out of the Services, it stops accepting;
    /// 3. idle connections are closed and in-flight requests finish, for at most 10 s.
    pub async fn drain(self, delay: Duration) {
        self.draining.store(true, Ordering::Relaxed);
        info!(delay_seconds = delay.as_secs_f64(), "draining the TLS server: Connection: close on every response");
        tokio::time::sleep(delay).await;
        let _ = self.stop_accepting.send(true);
        let _ = self.accepting.await;
    }
}

/// Marks every response `Connection: close` once the server drains (see [`Serving::drain`]).
async fn close_when_draining(
    axum::extract::State(draining): axum::extract::State<Arc<AtomicBool>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if draining.load(Ordering::Relaxed) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Binds `port` on all interfaces and serves `routes` over TLS with the PEM `cert` and `key`
/// until the process ends or [`Serving::drain`] has drained it (the accept loop runs as its
/// own task).
///
/// # Errors
/// [`ServeError`] when the TLS material is unusable or the port cannot be bound; nothing is
/// served then.
pub async fn serve(port: u16, cert: &Path, key: &Path, routes: Routes) -> Result<Serving, ServeError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(cert, key)?));
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
        .await
        .map_err(|e| ServeError::Bind(port, e))?;
    let views = routes.views.is_some();
    info!(port, views, "TLS server listening: admission webhook{}", if views { " and views API" } else { "" });
    Ok(accept(listener, acceptor, routes.router(), ConnectionTimeouts::default()))
}

/// Serves `router` over TLS on every connection `listener` accepts, in a task of its own,
/// until [`Serving::drain`].
fn accept(listener: TcpListener, acceptor: TlsAcceptor, router: Router, timeouts: ConnectionTimeouts) -> Serving {
    let draining = Arc::new(AtomicBool::new(false));
    let router = router.layer(axum::middleware::from_fn_with_state(draining.clone(), close_when_draining));
    let (stop_accepting, mut stopped) = tokio::sync::watch::channel(false);
    let connections = GracefulShutdown::new();
    let accepting = tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        continue;
                    }
                },
                _ = stopped.wait_for(|stop| *stop) => break,
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            let watcher = connections.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(timeouts.handshake, acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        debug!(error = %e, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(%peer, timeout = ?timeouts.handshake, "TLS handshake not completed in time; closed");
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
                // HTTP/1.1 only: the API server speaks it here (no ALPN is offered), and without
                // protocol sniffing hyper's header timeout also covers a peer silent after its
                // handshake; HTTP/2 would be attack surface with no idle limit.
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
                builder.http1().timer(TokioTimer::new()).header_read_timeout(timeouts.header_read);
                let served = watcher.watch(builder.serve_connection(TokioIo::new(tls), service)).await;
                if let Err(e) = served {
                    debug!(error = %e, %peer, "connection ended");
                }
            });
        }
        let open = connections.count();
        info!(open, "TLS server stopped accepting; closing idle connections, finishing in-flight requests");
        if tokio::time::timeout(IN_FLIGHT_GRACE, connections.shutdown()).await.is_err() {
            warn!(open, "TLS server: connections still open after the grace period; closing them");
        }
    });
    Serving { draining, stop_accepting, accepting }
}

#[cfg(test)]
mod tests {
    //! The drain, over real TLS connections: what the API server's webhook client sees of a
    //! stopping replica.
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    use tokio_rustls::TlsConnector;

    type Conn = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

    /// A server on a free loopback port whose `/slow` answers after 300 ms, and a connector
    /// that trusts it.
    async fn server() -> (Serving, SocketAddr, TlsConnector) {
        server_with(ConnectionTimeouts::default()).await
    }

    /// [`server`] with the given connection timeouts.
    async fn server_with(timeouts: ConnectionTimeouts) -> (Serving, SocketAddr, TlsConnector) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert =
            rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params").self_signed(&key).expect("cert");
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let server = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).expect("root");
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let router = Router::new().route("/fast", axum::routing::get(|| async { "fast" })).route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        );
        let serving = accept(listener, TlsAcceptor::from(Arc::new(server)), router, timeouts);
        (serving, address, TlsConnector::from(Arc::new(client)))
    }

    async fn connect(connector: &TlsConnector, address: SocketAddr) -> Conn {
        let tcp = tokio::net::TcpStream::connect(address).await.expect("connect");
        connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("handshake")
    }

    async fn send(conn: &mut Conn, path: &str) {
        let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        conn.write_all(request.as_bytes()).await.expect("write");
    }

    /// One response's head and body, read until the body's length is complete; None on EOF
    /// before a whole response.
    async fn response(conn: &mut Conn) -> Option<String> {
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            let text = String::from_utf8_lossy(&bytes).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string))
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return Some(text.to_ascii_lowercase());
                }
            }
            match conn.read(&mut buffer).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            }
        }
    }

    #[tokio::test]
    async fn a_draining_server_finishes_in_flight_calls_and_asks_for_new_connections() {
        let (serving, address, connector) = server().await;
        let mut busy = connect(&connector, address).await;
        let mut idle = connect(&connector, address).await;
        // Before the drain: keep-alive, as the API server's webhook client expects.
        send(&mut busy, "/fast").await;
        let before = response(&mut busy).await.expect("an answer");
        assert!(before.starts_with("http/1.1 200") && !before.contains("connection: close"), "{before}");
        send(&mut idle, "/fast").await;
        response(&mut idle).await.expect("an answer");

        // A call in flight when the drain starts is answered within the delay (1 s), not cut
        // off, and the answer asks the client to open a new connection for the next one.
        send(&mut busy, "/slow").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let drained = tokio::spawn(serving.drain(Duration::from_millis(1000)));
        let during = response(&mut busy).await.expect("the in-flight call is answered");
        assert!(during.starts_with("http/1.1 200") && during.contains("connection: close"), "{during}");
        assert!(during.ends_with("slow"), "{during}");
        // The server closes that connection after the answer.
        assert!(response(&mut busy).await.is_none(), "the connection stays open after Connection: close");

        // The idle keep-alive connection is closed once the delay is over, and the drain ends.
        tokio::time::timeout(Duration::from_secs(5), drained).await.expect("the drain ends").expect("drain task");
        assert!(response(&mut idle).await.is_none(), "the idle connection was left open");
        // Nothing is accepted any more: the Service sends new calls to the replicas that stay.
        assert!(tokio::net::TcpStream::connect(address).await.is_err(), "a drained server still accepts");
    }

    /// A peer that connects and never completes its handshake, or completes it and never
    /// finishes a request's headers, is disconnected; a peer that sends its request in time is
    /// answered.
    #[tokio::test]
    async fn a_silent_peer_is_disconnected() {
        let timeouts =
            ConnectionTimeouts { handshake: Duration::from_millis(200), header_read: Duration::from_millis(200) };
        let (_serving, address, connector) = server_with(timeouts).await;

        let mut silent = tokio::net::TcpStream::connect(address).await.expect("connect");
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buffer)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a peer with no handshake is still connected: {read:?}");

        let mut trickling = connect(&connector, address).await;
        trickling.write_all(b"GET /fast HTTP/1.1\r\nhost: loc").await.expect("write");
        let answer = tokio::time::timeout(Duration::from_secs(5), response(&mut trickling)).await;
        assert!(
            matches!(answer, Ok(None)) || matches!(&answer, Ok(Some(a)) if !a.starts_with("http/1.1 200")),
            "a peer that never finishes its headers is still served: {answer:?}"
        );

        // A peer that completes its handshake and then sends nothing (no protocol to sniff).
        let mut quiet = connect(&connector, address).await;
        let answer = tokio::time::timeout(Duration::from_secs(5), response(&mut quiet)).await;
        assert!(matches!(answer, Ok(None)), "a peer silent after its handshake is still connected: {answer:?}");

        let mut prompt = connect(&connector, address).await;
        send(&mut prompt, "/fast").await;
        let answer = response(&mut prompt).await.expect("an answer");
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
    }
}
