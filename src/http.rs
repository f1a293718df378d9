//! Probe and metrics endpoints: `/healthz` (the process serves), `/readyz` (every watch cache
//! has its first list, so reconciles see the cluster as it is) and Prometheus `/metrics`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// Binds `port` on all interfaces; None when the port is 0 (the endpoint is disabled).
///
/// # Errors
/// The I/O error of the bind, e.g. the port is in use.
pub async fn bind(port: u16, what: &'static str) -> std::io::Result<Option<TcpListener>> {
    if port == 0 {
        return Ok(None);
    }
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await?;
    info!(%what, port, "listening");
    Ok(Some(listener))
}

async fn serve(listener: TcpListener, router: Router, what: &'static str) {
    if let Err(e) = axum::serve(listener, router).await {
        warn!(error = %e, %what, "server stopped");
    }
}

/// `/healthz` and `/readyz`; with the sign-in broker on, `broker` says whether its signing
/// keys are loaded and whether its first prefetch of the tenants' keys is over, and a replica
/// short of either is not ready.
pub async fn serve_health(
    listener: TcpListener,
    ready: watch::Receiver<bool>,
    broker: Option<(watch::Receiver<bool>, watch::Receiver<bool>)>,
) {
    let router = Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(move || {
            let ready = *ready.borrow();
            let keys = broker.as_ref().is_none_or(|(k, _)| *k.borrow());
            let primed = broker.as_ref().is_none_or(|(_, p)| *p.borrow());
            async move {
                match (ready, keys, primed) {
                    (true, true, true) => (StatusCode::OK, "ok"),
                    (false, _, _) => (StatusCode::SERVICE_UNAVAILABLE, "watch caches not synced"),
                    (true, false, _) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "sign-in broker: signing keys not loaded from their Secret")
                    }
                    (true, true, false) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "sign-in broker: the delegated tenants' keys are being fetched",
                    ),
                }
            }
        }),
    );
    serve(listener, router, "health").await;
}

/// `/metrics` in the OpenMetrics text format.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let body = metrics.render();
            async move {
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                    .into_response()
            }
        }),
    );
    serve(listener, router, "metrics").await;
}
