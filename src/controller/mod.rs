//! The shell around [`crate::model`]: watch caches, two reconcilers, and the writes.
//!
//! - [`assignment`]: materializes one assignment's RBAC in every namespace of its scope.
//! - [`definition`]: status of a definition and the cascade when it is deleted.
//! - [`triggers`]: one watch per kind; maps every change to the delegations it affects.
//! - [`apply`]: server-side apply of what differs, prune by label, revoke.

pub mod apply;
pub mod assignment;
pub mod context;
pub mod definition;
pub mod events;
pub mod expectations;
pub mod finalizer;
pub mod guard;
pub mod index;
pub mod materialized;
pub mod namespace;
pub mod sweep;
pub mod triggers;

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use kube::api::ListParams;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::Reporter;
use kube::runtime::{reflector, watcher, Controller};
use kube::{Api, Client};
use thiserror::Error;
use tracing::{info, warn};

use crate::api::RegistrationAssignment;
use crate::config::Config;
use context::{Caches, Context};

/// Reconcile errors. Each variant is also the `reason` label of the error metric.
#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0} the finalizer: {1}")]
    Finalizer(&'static str, #[source] kube::Error),
    #[error("malformed patch: {0}")]
    InvalidPatch(String),
    #[error("cache {0} never synced")]
    CacheNotReady(&'static str),
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("the CustomResourceDefinitions are not installed: apply crds/ (or install the Helm chart) first")]
    CrdsMissing,
    #[error("cannot listen on the {0} port: {1}")]
    Bind(&'static str, #[source] std::io::Error),
    #[error("admission webhook: {0}")]
    Webhook(#[from] crate::webhook::WebhookError),
}

impl Error {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(..) => "finalizer",
            Error::InvalidPatch(_) => "invalid_patch",
            Error::CacheNotReady(_) => "cache_not_ready",
            Error::MissingField(_) => "missing_field",
            Error::CrdsMissing => "crds_missing",
            Error::Bind(..) => "bind",
            Error::Webhook(_) => "webhook",
        }
    }
}

/// How long in-flight reconciles get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// One kube-runtime controller over the cache `store`, triggered only through `triggers`
/// (which the watches in [`triggers`] feed), stopping on SIGINT or SIGTERM. Its runner is the
/// only waiter on its own store (see docs/architecture.md on `wait_until_ready`).
fn spawn_controller<K, R, F, S>(
    shutdown: S,
    store: reflector::Store<K>,
    triggers: mpsc::UnboundedReceiver<reflector::ObjectRef<K>>,
    reconcile: R,
    name: &'static str,
    ctx: &Arc<Context>,
    config: &Config,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    R: FnMut(Arc<K>, Arc<Context>) -> F + Send + 'static,
    F: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
    S: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    tokio::spawn(
        Controller::for_stream(futures::stream::pending::<Result<K, watcher::Error>>(), store)
            .with_config(ControllerConfig::default().concurrency(config.concurrency))
            .reconcile_on(triggers)
            .graceful_shutdown_on(shutdown)
            .run(reconcile, error_policy(name), ctx.clone())
            .for_each(log_outcome),
    )
}

/// Reconcile errors are transient by nature (a 403 or 5xx while the API server restarts, a
/// conflict): retry, and never treat one as a reason to grant or revoke.
fn error_policy<K>(controller: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |_object, error, ctx| {
        warn!(error = %error, reason = error.metric_label(), controller, "reconcile failed; retrying");
        ctx.metrics.error(controller, error.metric_label());
        Action::requeue(Duration::from_secs(5))
    }
}

/// Reconcile failures are logged by `error_policy`; this surfaces the rest (watch and queue
/// errors), which would otherwise be silent.
fn log_outcome<K, E1: std::fmt::Debug, E2: std::fmt::Debug>(
    outcome: Result<K, kube::runtime::controller::Error<E1, E2>>,
) -> futures::future::Ready<()> {
    match outcome {
        // A trigger for an object that is already gone: nothing to do.
        Err(kube::runtime::controller::Error::ObjectNotFound(o)) => {
            tracing::debug!(object = %o, "gone before reconcile")
        }
        Err(e) => warn!(error = ?e, "controller stream error"),
        Ok(_) => {}
    }
    futures::future::ready(())
}

async fn check_crds(client: &Client) -> Result<(), Error> {
    let api: Api<RegistrationAssignment> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(s)) if s.code == 404 => Err(Error::CrdsMissing),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

/// Runs both reconcilers against the cluster of `client` until SIGINT or SIGTERM.
pub async fn run(client: Client, config: &Config) -> Result<(), Error> {
    check_crds(&client).await?;
    // Bind first: a port in use is a configuration error to report before doing anything.
    let health = crate::http::bind(config.health_port, "health").await.map_err(|e| Error::Bind("health", e))?;
    let metrics_listener =
        crate::http::bind(config.metrics_port, "metrics").await.map_err(|e| Error::Bind("metrics", e))?;
    let metrics = Arc::new(crate::metrics::Metrics::default());

    let (namespaces, ns_writer) = reflector::store();
    let (definitions, def_writer) = reflector::store();
    let (assignments, assignment_writer) = reflector::store();
    let caches = Caches {
        namespaces,
        definitions,
        assignments,
        catalog: Arc::default(),
        roles: Arc::default(),
        bindings: Arc::default(),
        indexes: Arc::default(),
    };
    let (readiness, ready) = triggers::Readiness::new(triggers::CACHES);

    let (assignment_tx, assignment_rx) = mpsc::unbounded();
    let (definition_tx, definition_rx) = mpsc::unbounded();
    let (namespace_tx, namespace_rx) = mpsc::unbounded();
    let (sweep_tx, sweep_rx) = mpsc::unbounded();
    let (guard_tx, guard_rx) = mpsc::unbounded();
    let instance = std::env::var("POD_NAME").ok().or_else(|| std::env::var("HOSTNAME").ok());
    let ctx = Arc::new(Context {
        client: client.clone(),
        caches: caches.clone(),
        templates: config.templates(),
        limits: config.limits(),
        recorder: events::Publisher::new(client.clone(), Reporter { controller: "kube-lighthouse".into(), instance }),
        assignment_triggers: assignment_tx.clone(),
        ready: ready.clone(),
        metrics: metrics.clone(),
        grants: context::GrantActivity::default(),
        expectations: expectations::Expectations::default(),
        deferred_status: assignment::DeferredStatus::default(),
        bookkeeping: tokio::sync::Semaphore::new(usize::from(config.concurrency)),
    });
    tokio::spawn({
        let ctx = ctx.clone();
        async move { ctx.grants.follow().await }
    });
    if let Some(listener) = health {
        tokio::spawn(crate::http::serve_health(listener, ready));
    }
    if let Some(listener) = metrics_listener {
        tokio::spawn(crate::http::serve_metrics(listener, metrics, caches.clone()));
    }
    match (&config.webhook_cert, &config.webhook_key) {
        (Some(cert), Some(key)) => crate::webhook::serve(config.webhook_port, cert, key, ctx.clone()).await?,
        (None, None) => info!("admission webhook off: no --webhook-cert/--webhook-key"),
        _ => warn!("admission webhook off: both --webhook-cert and --webhook-key are needed"),
    }

    let writers = triggers::Writers { namespaces: ns_writer, definitions: def_writer, assignments: assignment_writer };
    let sinks = triggers::Sinks {
        assignments: assignment_tx,
        definitions: definition_tx,
        namespaces: namespace_tx,
        sweep: sweep_tx,
        guard: guard_tx,
    };
    // Each long-lived part runs as its own task on the worker threads.
    let watches = tokio::spawn(triggers::run(client.clone(), writers, ctx.clone(), sinks, readiness));
    let shutdown = shutdown_signal().shared();
    let (stop, store) = (shutdown.clone(), caches.assignments.clone());
    let assignments = spawn_controller(stop, store, assignment_rx, assignment::reconcile, "assignment", &ctx, config);
    let (stop, store) = (shutdown.clone(), caches.definitions.clone());
    let definitions = spawn_controller(stop, store, definition_rx, definition::reconcile, "definition", &ctx, config);
    let (stop, store) = (shutdown.clone(), caches.namespaces.clone());
    let namespaces = spawn_controller(stop, store, namespace_rx, namespace::reconcile, "namespace", &ctx, config);
    let sweeper = tokio::spawn(sweep::run(ctx.clone(), sweep_rx));
    let guard = tokio::spawn(guard::run(ctx, guard_rx));

    info!("kube-lighthouse controller started");
    tokio::select! {
        _ = shutdown => {
            // In-flight reconciles may finish; the trigger channels never close by themselves,
            // so the controllers are not awaited past a short grace period.
            info!("shutting down");
            let _ =
                tokio::time::timeout(SHUTDOWN_GRACE, futures::future::join3(assignments, definitions, namespaces)).await;
            sweeper.abort();
            guard.abort();
        }
        r = watches => warn!(result = ?r, "watches ended"),
    }
    Ok(())
}
