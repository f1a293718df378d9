//! The process: binds the ports, builds the caches, the reconcile [`Context`] and the
//! admission handle, starts the watches, the three reconcilers, the sweep and the guard, and
//! the webhook, and stops them on SIGINT or SIGTERM. The only module that knows every other.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use kube::api::ListParams;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::Reporter;
use kube::runtime::{reflector, watcher, Controller};
use kube::{Api, Client};
use tracing::{info, warn};

use crate::api::RegistrationAssignment;
use crate::config::Config;
use crate::controller::bookkeeping::{Bookkeeping, GrantActivity, Retrigger};
use crate::controller::caches::{CacheGauges, Caches};
use crate::controller::context::{Context, Policy};
use crate::controller::error::{Error, StartupError};
use crate::controller::{activation, assignment, definition, events, guard, namespace, sweep, triggers};
use crate::webhook::Admission;

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

async fn check_crds(client: &Client) -> Result<(), StartupError> {
    let api: Api<RegistrationAssignment> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(StartupError::CrdsMissing),
        other => other.map(|_| ()).map_err(StartupError::from)?,
    }
    // SPEC §9's kinds too: without them the activation watches would never sync, and nothing
    // would be reconciled (`helm upgrade` does not upgrade CRDs: apply crds/ first).
    let activations: Api<crate::api::RoleActivation> = Api::all(client.clone());
    match activations.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(s)) if s.code == 404 => Err(StartupError::CrdsMissing),
        other => other.map(|_| ()).map_err(StartupError::from),
    }
}

/// Runs the controller against the cluster of `client` until SIGINT or SIGTERM.
///
/// # Errors
/// [`StartupError`] when the CRDs are missing, a port is taken, or the webhook's TLS
/// material cannot be read; nothing has been reconciled then.
pub async fn run(client: Client, config: &Config) -> Result<(), StartupError> {
    check_crds(&client).await?;
    // Bind first: a port in use is a configuration error to report before doing anything.
    let health = crate::http::bind(config.health_port, "health").await.map_err(|e| StartupError::Bind("health", e))?;
    let metrics_listener =
        crate::http::bind(config.metrics_port, "metrics").await.map_err(|e| StartupError::Bind("metrics", e))?;

    let (namespaces, ns_writer) = reflector::store();
    let (definitions, def_writer) = reflector::store();
    let (assignments, assignment_writer) = reflector::store();
    let (activations, activation_writer) = reflector::store();
    let (reviews, review_writer) = reflector::store();
    let caches = Caches {
        namespaces,
        definitions,
        assignments,
        catalog: Arc::default(),
        roles: Arc::default(),
        bindings: Arc::default(),
        indexes: Arc::default(),
        activations,
        reviews,
    };
    let mut metrics = crate::metrics::Metrics::default();
    metrics.register(Box::new(CacheGauges(caches.clone())));
    let metrics = Arc::new(metrics);
    let (readiness, ready) = triggers::Readiness::new(triggers::CACHES);

    let (assignment_tx, assignment_rx) = mpsc::unbounded();
    let (definition_tx, definition_rx) = mpsc::unbounded();
    let (namespace_tx, namespace_rx) = mpsc::unbounded();
    let (sweep_tx, sweep_rx) = mpsc::unbounded();
    let (guard_tx, guard_rx) = mpsc::unbounded();
    let (activation_tx, activation_rx) = mpsc::unbounded();
    let instance = std::env::var("POD_NAME").ok().or_else(|| std::env::var("HOSTNAME").ok());
    let publisher = events::Publisher::new(client.clone(), Reporter { controller: "kube-lighthouse".into(), instance });
    let grants = Arc::new(GrantActivity::default());
    let retrigger = Retrigger {
        assignments: assignment_tx.clone(),
        definitions: definition_tx.clone(),
        namespaces: namespace_tx.clone(),
        activations: activation_tx.clone(),
    };
    let bookkeeping = Bookkeeping::new(
        client.clone(),
        publisher,
        metrics.clone(),
        grants.clone(),
        retrigger,
        usize::from(config.concurrency),
    );
    let policy = Arc::new(Policy { templates: config.templates(), limits: config.limits() });
    let ctx = Arc::new(Context {
        client: client.clone(),
        caches: caches.clone(),
        policy: policy.clone(),
        ready: ready.clone(),
        metrics: metrics.clone(),
        grants: grants.clone(),
        expectations: Arc::default(),
        bookkeeping: Arc::new(bookkeeping),
        assignment_triggers: assignment_tx.clone(),
        activation_triggers: activation_tx.clone(),
        clock: config.activation_clock(),
    });
    tokio::spawn(async move { grants.follow().await });
    if let Some(listener) = health {
        tokio::spawn(crate::http::serve_health(listener, ready.clone()));
    }
    if let Some(listener) = metrics_listener {
        tokio::spawn(crate::http::serve_metrics(listener, metrics));
    }
    match (&config.webhook_cert, &config.webhook_key) {
        (Some(cert), Some(key)) => {
            let admission = Admission { client: client.clone(), caches: caches.clone(), policy, ready };
            crate::webhook::serve(config.webhook_port, cert, key, Arc::new(admission)).await?
        }
        (None, None) => info!("admission webhook off: no --webhook-cert/--webhook-key"),
        _ => warn!("admission webhook off: both --webhook-cert and --webhook-key are needed"),
    }

    let writers = triggers::Writers {
        namespaces: ns_writer,
        definitions: def_writer,
        assignments: assignment_writer,
        activations: activation_writer,
        reviews: review_writer,
    };
    let sinks = triggers::Sinks {
        assignments: assignment_tx,
        definitions: definition_tx,
        namespaces: namespace_tx,
        sweep: sweep_tx,
        guard: guard_tx,
        activations: activation_tx,
    };
    // SPEC §9: expiry holds while the controller was down; before any watch or reconcile.
    if config.test_time_scale > 1 {
        warn!(scale = config.test_time_scale, "TEST ONLY: activation durations run {}x faster", config.test_time_scale);
    }
    match activation::revoke_expired_at_start(&client, &ctx.metrics).await {
        Ok(n) => info!(revoked = n, "expired activations revoked at start"),
        Err(e) => warn!(error = %e, "could not revoke expired activations at start; their reconciles will"),
    }
    // Each long-lived part runs as its own task on the worker threads.
    let watches = tokio::spawn(triggers::run(client.clone(), writers, ctx.clone(), sinks, readiness));
    let shutdown = shutdown_signal().shared();
    let (stop, store) = (shutdown.clone(), caches.assignments.clone());
    let assignments = spawn_controller(stop, store, assignment_rx, assignment::reconcile, "assignment", &ctx, config);
    let (stop, store) = (shutdown.clone(), caches.definitions.clone());
    let definitions = spawn_controller(stop, store, definition_rx, definition::reconcile, "definition", &ctx, config);
    let (stop, store) = (shutdown.clone(), caches.namespaces.clone());
    let namespaces = spawn_controller(stop, store, namespace_rx, namespace::reconcile, "namespace", &ctx, config);
    let (stop, store) = (shutdown.clone(), caches.activations.clone());
    let activations = spawn_controller(stop, store, activation_rx, activation::reconcile, "activation", &ctx, config);
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
            activations.abort();
            sweeper.abort();
            guard.abort();
        }
        r = watches => warn!(result = ?r, "watches ended"),
    }
    Ok(())
}
