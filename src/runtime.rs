//! The process: binds the ports, builds the caches, the reconcile [`Context`] and the
//! admission handle, starts the watches, the three reconcilers, the sweep and the guard, and
//! the TLS server (admission webhook and views API), and stops them on SIGINT or SIGTERM. The
//! only module that knows every other.

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
use crate::controller::error::Error;
use crate::controller::queue::Fifo;
use crate::controller::{
    activation, assignment, audit, definition, events, guard, namespace, onboarding, sweep, triggers, webhook_watch,
};
use crate::lease;
use crate::serve::admission_clients::AdmissionClients;
use crate::serve::front_proxy::FrontProxy;
use crate::serve::views::Views;
use crate::serve::Routes;
use crate::webhook::Admission;

/// Why the process stops with a failure: it could not start (nothing was reconciled), or it
/// lost the Lease it led with (it restarts as a follower, SPEC §12).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The CRDs are not installed: nothing to watch.
    #[error("the CustomResourceDefinitions are not installed: apply crds/ (or install the Helm chart) first")]
    CrdsMissing,
    /// A call to the API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The health or metrics port could not be bound: which one, and why.
    #[error("cannot listen on the {0} port: {1}")]
    Bind(&'static str, #[source] std::io::Error),
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// Another replica took the Lease: this one stops so that two never write at once.
    #[error("lost the Lease {}: stopping so that only the new leader writes", crate::lease::LEASE_NAME)]
    LeaseLost,
    /// The sign-in broker's configuration is unusable.
    #[error("sign-in broker: {0}")]
    Federation(#[from] crate::federation::FederationError),
    /// Hub mode cannot start (docs/fleet.md).
    #[error("hub mode: {0}")]
    Hub(String),
    /// The TLS server (admission webhook, views API) failed.
    #[error("TLS server (admission webhook, views API): {0}")]
    Serve(#[from] crate::serve::ServeError),
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
fn spawn_controller<K, R, F, S, T>(
    shutdown: S,
    store: reflector::Store<K>,
    triggers: T,
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
    T: futures::Stream<Item = reflector::ObjectRef<K>> + Send + 'static,
{
    // The backlog waits in our first-in-first-out queue, not in the runner's hash set: as many
    // triggers as it has slots go in, and each outcome lets the next one in.
    let (triggers, outcomes) = Fifo::new(triggers, usize::from(config.concurrency));
    // Revocation first: an object being deleted (its finalizer revokes) goes ahead of the
    // backlog of grants (docs/architecture.md, "Revocation first and in bulk").
    let deleting = store.clone();
    let triggers = triggers.with_urgency(move |r: &reflector::ObjectRef<K>| {
        deleting.get(r).is_some_and(|o| o.meta().deletion_timestamp.is_some())
    });
    tokio::spawn(
        Controller::for_stream(futures::stream::pending::<Result<K, watcher::Error>>(), store)
            .with_config(ControllerConfig::default().concurrency(config.concurrency))
            .reconcile_on(triggers)
            .graceful_shutdown_on(shutdown)
            .run(with_retries(reconcile, name), error_policy(name), ctx.clone())
            .for_each(move |outcome| {
                if let Some(object) = reconciled(&outcome) {
                    outcomes.done(&object);
                }
                log_outcome(outcome)
            }),
    )
}

/// The object a runner's outcome is about, by name and namespace (none for a queue error;
/// the runner's errors carry the object's reference with its type erased).
fn reconciled<K, E1, E2>(
    outcome: &Result<(reflector::ObjectRef<K>, Action), kube::runtime::controller::Error<E1, E2>>,
) -> Option<reflector::ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()>,
{
    use kube::runtime::controller::Error as Runner;
    let erased = match outcome {
        Ok((object, _)) => return Some(object.clone()),
        Err(Runner::ReconcilerFailed(_, object) | Runner::ObjectNotFound(object)) => object,
        Err(_) => return None,
    };
    let object = reflector::ObjectRef::new(&erased.name);
    Some(match &erased.namespace {
        Some(ns) => object.within(ns),
        None => object,
    })
}

/// The key of `object` in [`Context::retries`].
fn retry_key<K: kube::Resource>(controller: &str, object: &K) -> String {
    let meta = object.meta();
    format!(
        "{controller}/{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// `reconcile`, noting each success so that the object's next failure starts its backoff over.
fn with_retries<K, R, F>(
    mut reconcile: R,
    controller: &'static str,
) -> impl FnMut(Arc<K>, Arc<Context>) -> futures::future::BoxFuture<'static, Result<Action, Error>>
where
    K: kube::Resource + Send + Sync + 'static,
    R: FnMut(Arc<K>, Arc<Context>) -> F + Send + 'static,
    F: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |object, ctx| {
        let key = retry_key(controller, object.as_ref());
        let attempt = reconcile(object, ctx.clone());
        Box::pin(async move {
            let outcome = attempt.await;
            if outcome.is_ok() {
                ctx.retries.succeeded(&key);
            }
            outcome
        })
    }
}

/// Reconcile errors are transient by nature (a 403 or 5xx while the API server restarts, a
/// conflict): retry, per object with a delay that doubles up to a cap
/// ([`crate::controller::backoff`]), and never treat one as a reason to grant or revoke.
fn error_policy<K: kube::Resource>(controller: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |object, error, ctx| {
        let delay = ctx.retries.failed(&retry_key(controller, object.as_ref()));
        warn!(error = %error, reason = error.metric_label(), controller, ?delay, "reconcile failed; retrying");
        ctx.metrics.error(controller, error.metric_label());
        Action::requeue(delay)
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

async fn check_crds(client: &Client) -> Result<(), RunError> {
    let api: Api<RegistrationAssignment> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(RunError::CrdsMissing),
        other => other.map(|_| ()).map_err(RunError::from)?,
    }
    // SPEC §9's kinds too: without them the activation watches would never sync, and nothing
    // would be reconciled (`helm upgrade` does not upgrade CRDs: apply crds/ first).
    let activations: Api<crate::api::RoleActivation> = Api::all(client.clone());
    match activations.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(RunError::CrdsMissing),
        other => other.map(|_| ()).map_err(RunError::from)?,
    }
    // Onboarding at scale (docs/onboarding.md): without its CRD the watch would wait for ever
    // and the caches never sync, so say so at start.
    let onboardings: Api<crate::api::Onboarding> = Api::all(client.clone());
    match onboardings.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(s)) if s.code == 404 => Err(RunError::CrdsMissing),
        other => other.map(|_| ()).map_err(RunError::from),
    }
}

/// The triggers of `receiver` while this replica leads; those that come while it follows are
/// dropped (a new leader reconciles everything, [`triggers::everything`]).
fn while_leading<T>(
    receiver: mpsc::UnboundedReceiver<T>,
    leadership: &lease::Leadership,
) -> impl futures::Stream<Item = T> + Send + Unpin + 'static
where
    T: Send + 'static,
{
    let leadership = leadership.clone();
    receiver.filter(move |_| futures::future::ready(*leadership.borrow()))
}

/// This replica's name in the election: the pod's, else the host's and the process id.
fn identity() -> String {
    std::env::var("POD_NAME").ok().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "kube-lighthouse".into());
        format!("{host}-{}", std::process::id())
    })
}

/// The controller's own user name, as the API server authenticates it (a
/// SelfSubjectReview): the admission webhook lets only it write what kube-lighthouse
/// materializes. None, logged, when the API server does not say.
async fn who_am_i(client: &Client) -> Option<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    match api.create(&kube::api::PostParams::default(), &SelfSubjectReview::default()).await {
        Ok(review) => {
            let name = review.status.and_then(|s| s.user_info).and_then(|u| u.username);
            info!(user = ?name, "the controller's identity");
            name
        }
        Err(e) => {
            warn!(error = %e, "cannot learn the controller's identity: only the chart's match conditions let its RBAC writes past the webhook");
            None
        }
    }
}

/// Runs the controller against the cluster of `client` until SIGINT or SIGTERM.
///
/// # Errors
/// [`RunError`] when the CRDs are missing, a port is taken, or the TLS server's
/// certificate or key cannot be read; nothing has been reconciled then. [`RunError::LeaseLost`]
/// when this replica, leading, lost its Lease.
pub async fn run(client: Client, config: &Config) -> Result<(), RunError> {
    if config.hub {
        return crate::hub::run(client, config, shutdown_signal()).await;
    }
    check_crds(&client).await?;
    // Bind first: a port in use is a configuration error to report before doing anything.
    let health = crate::http::bind(config.health_port, "health").await.map_err(|e| RunError::Bind("health", e))?;
    let metrics_listener =
        crate::http::bind(config.metrics_port, "metrics").await.map_err(|e| RunError::Bind("metrics", e))?;

    let (namespaces, ns_writer) = reflector::store();
    let (definitions, def_writer) = reflector::store();
    let (assignments, assignment_writer) = reflector::store();
    let (activations, activation_writer) = reflector::store();
    let (reviews, review_writer) = reflector::store();
    let (guardrails, guardrail_writer) = reflector::store();
    let (onboardings, onboarding_writer) = reflector::store();
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
        guardrails,
        onboardings,
    };
    let mut metrics = crate::metrics::Metrics::default();
    metrics.register(Box::new(CacheGauges(caches.clone())));
    // The sign-in broker, when configured: checked before anything starts.
    let broker = match crate::federation::Settings::from_config(config)? {
        Some(_) if config.webhook_cert.is_none() || config.webhook_key.is_none() => {
            return Err(crate::federation::FederationError::NoTls.into())
        }
        Some(settings) => {
            let federation_metrics = crate::federation::FederationMetrics::default();
            federation_metrics.register(&mut metrics);
            info!(issuer = %settings.issuer, audience = %settings.audience, authority = %settings.authority,
                subject_audiences = ?settings.subject_audiences, allow_list = ?settings.allow_list,
                max_lifetime_seconds = settings.max_lifetime, "sign-in broker on");
            Some(Arc::new(crate::federation::Broker::new(settings, caches.assignments.clone(), federation_metrics)?))
        }
        None => None,
    };
    let metrics = Arc::new(metrics);
    let (readiness, ready) = triggers::Readiness::new(triggers::CACHES);
    let lease_namespace = config.lease_namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let election = lease::Election::join(
        client.clone(),
        config.leader_election,
        &lease_namespace,
        &identity(),
        Duration::from_secs(config.lease_duration_seconds),
    )
    .await?;
    let mut leadership = election.leadership.clone();
    if let Some(broker) = &broker {
        // Every replica fetches the delegated tenants' keys ahead of any exchange.
        tokio::spawn(broker.clone().prefetch(ready.clone()));
        // Every replica follows the keys Secret; the leader rotates it.
        let (secret, namespace) = (broker.settings.keys_secret.clone(), lease_namespace.clone());
        tokio::spawn(crate::federation::keys::follow(
            client.clone(),
            namespace.clone(),
            secret.clone(),
            broker.keys.clone(),
        ));
        let policy = broker.settings.rotation;
        let tick = Duration::from_secs(u64::try_from(policy.publish_delay).unwrap_or(60).clamp(1, 30));
        tokio::spawn(crate::federation::keys::rotate(
            client.clone(),
            namespace,
            secret,
            policy,
            broker.keys.clone(),
            election.leadership.clone(),
            tick,
        ));
    }
    // Whether this replica reconciles: it leads, and has revoked what expired while no one
    // did (SPEC §9: before anything else is reconciled).
    let (reconciling_tx, reconciling) = tokio::sync::watch::channel(false);

    let (assignment_tx, assignment_rx) = mpsc::unbounded();
    let (definition_tx, definition_rx) = mpsc::unbounded();
    let (namespace_tx, namespace_rx) = mpsc::unbounded();
    let (sweep_tx, sweep_rx) = mpsc::unbounded();
    let (guard_tx, guard_rx) = mpsc::unbounded();
    let (activation_tx, activation_rx) = mpsc::unbounded();
    let (audit_tx, audit_rx) = mpsc::unbounded();
    let (onboard_tx, onboard_rx) = mpsc::unbounded();
    let (onboarding_tx, onboarding_rx) = mpsc::unbounded();
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
    let controller_identity = who_am_i(&client).await;
    let serves_admission = config.webhook_cert.is_some() && config.webhook_key.is_some();
    let (user_access_tx, user_access) = tokio::sync::watch::channel(None);
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
        retries: Default::default(),
        activation_triggers: activation_tx.clone(),
        clock: config.activation_clock(),
        user_access,
        audit: audit_tx,
        onboarding: Arc::new(onboarding::Shared::new(onboard_tx.clone(), onboarding_tx.clone())),
    });
    tokio::spawn(async move { grants.follow().await });
    if let Some(listener) = health {
        let broker_keys = broker.as_ref().map(|b| (b.keys.loaded(), b.primed()));
        tokio::spawn(crate::http::serve_health(listener, ready.clone(), broker_keys));
    }
    if let Some(listener) = metrics_listener {
        tokio::spawn(crate::http::serve_metrics(listener, metrics));
    }
    // Who admission saw claim to delete which activation; the activation watch records them.
    let claims = Arc::new(crate::webhook::deleter::DeleterClaims::default());
    let serving = match (&config.webhook_cert, &config.webhook_key) {
        (Some(cert), Some(key)) => {
            let views = config.views.then(|| {
                let trust = Arc::new(FrontProxy::default());
                tokio::spawn(trust.clone().follow(client.clone()));
                let source = crate::serve::views::Source::Cluster {
                    caches: caches.clone(),
                    policy: policy.clone(),
                    broker: config.federation_issuer.clone(),
                };
                Arc::new(Views { source, ready: ready.clone(), trust })
            });
            let admission_clients = match &config.admission_client_ca {
                Some(ca) => {
                    let clients = AdmissionClients::load(ca, config.admission_client_names.clone())?;
                    info!(ca = %ca.display(), names = ?clients.allowed_names, "admission served to the API server's client certificate only");
                    Some(Arc::new(clients))
                }
                None => {
                    warn!("no --admission-client-ca: admission is served to any caller (docs/install.md, \"Admission clients\")");
                    None
                }
            };
            let admission = Arc::new(Admission {
                client: client.clone(),
                caches: caches.clone(),
                policy,
                ready,
                authority: config.authority_limits(),
                controller: controller_identity.clone(),
                claims: claims.clone(),
            });
            Some(
                crate::serve::serve(
                    config.webhook_port,
                    cert,
                    key,
                    Routes { admission: Some(admission), views, admission_clients, federation: broker },
                )
                .await?,
            )
        }
        (None, None) => {
            info!("admission webhook and views API off: no --webhook-cert/--webhook-key");
            None
        }
        _ => {
            warn!("admission webhook and views API off: both --webhook-cert and --webhook-key are needed");
            None
        }
    };

    let writers = triggers::Writers {
        namespaces: ns_writer,
        definitions: def_writer,
        assignments: assignment_writer,
        activations: activation_writer,
        reviews: review_writer,
        guardrails: guardrail_writer,
        onboardings: onboarding_writer,
    };
    let sinks = triggers::Sinks {
        assignments: assignment_tx,
        definitions: definition_tx,
        namespaces: namespace_tx,
        sweep: sweep_tx,
        guard: guard_tx,
        activations: activation_tx,
        onboard: onboard_tx,
        onboardings: onboarding_tx,
    };
    // Each long-lived part runs as its own task on the worker threads. Every replica watches
    // (its caches stay warm for admission and for a failover); only the leader's triggers
    // reach the reconcilers, the sweep and the guard.
    let watches = tokio::spawn(triggers::run(client.clone(), writers, ctx.clone(), sinks.clone(), readiness, claims));
    let watched = webhook_watch::Watched {
        name: config.webhook_configuration.clone(),
        serving: serves_admission,
        controller: controller_identity,
    };
    let webhook_configuration =
        tokio::spawn(webhook_watch::run(client.clone(), watched, user_access_tx, caches.clone(), sinks.clone()));
    let shutdown = shutdown_signal().shared();
    // From SIGTERM on, the TLS server drains beside the controllers' own shutdown; the process
    // ends once both have (the Lease is released first, so the next leader need not wait).
    let drained = tokio::spawn({
        let (shutdown, delay) = (shutdown.clone(), Duration::from_secs(config.shutdown_delay_seconds));
        async move {
            shutdown.await;
            if let Some(serving) = serving {
                serving.drain(delay).await;
            }
        }
    });
    let (stop, store) = (shutdown.clone(), caches.assignments.clone());
    let assignment_rx = while_leading(assignment_rx, &reconciling);
    let assignments = spawn_controller(stop, store, assignment_rx, assignment::reconcile, "assignment", &ctx, config);
    let (stop, store) = (shutdown.clone(), caches.definitions.clone());
    let definition_rx = while_leading(definition_rx, &reconciling);
    let definitions = spawn_controller(stop, store, definition_rx, definition::reconcile, "definition", &ctx, config);
    let (stop, store) = (shutdown.clone(), caches.namespaces.clone());
    let namespace_rx = while_leading(namespace_rx, &reconciling);
    let namespaces = spawn_controller(stop, store, namespace_rx, namespace::reconcile, "namespace", &ctx, config);
    let (stop, store) = (shutdown.clone(), caches.activations.clone());
    let activation_rx = while_leading(activation_rx, &reconciling);
    let activations = spawn_controller(stop, store, activation_rx, activation::reconcile, "activation", &ctx, config);
    let (stop, store) = (shutdown.clone(), caches.namespaces.clone());
    let onboard_rx = while_leading(onboard_rx, &reconciling);
    let onboarded = spawn_controller(
        stop,
        store,
        onboard_rx,
        onboarding::reconcile_namespace,
        "onboarding-namespace",
        &ctx,
        config,
    );
    let (stop, store) = (shutdown.clone(), caches.onboardings.clone());
    let onboarding_rx = while_leading(onboarding_rx, &reconciling);
    let onboardings = spawn_controller(stop, store, onboarding_rx, onboarding::reconcile, "onboarding", &ctx, config);
    let sweeper = tokio::spawn(sweep::run(ctx.clone(), while_leading(sweep_rx, &reconciling)));
    let guard = tokio::spawn(guard::run(ctx.clone(), while_leading(guard_rx, &reconciling)));
    let auditor = tokio::spawn(audit::run(ctx.clone(), while_leading(audit_rx, &reconciling), reconciling.clone()));

    info!("watching; waiting to lead");
    tokio::select! {
        _ = lease::acquired(&mut leadership) => info!("leading: reconciling every delegation"),
        _ = shutdown.clone() => {
            info!("shutting down (never led)");
            election.leave().await;
            let _ = drained.await;
            return Ok(());
        }
    }
    // SPEC §9: expiry holds while no one reconciled; before anything else is reconciled.
    if config.test_time_scale > 1 {
        warn!(scale = config.test_time_scale, "TEST ONLY: activation durations run {}x faster", config.test_time_scale);
    }
    match activation::revoke_expired_at_start(&client, &ctx.metrics).await {
        Ok(n) => info!(revoked = n, "expired activations revoked at start"),
        Err(e) => warn!(error = %e, "could not revoke expired activations at start; their reconciles will"),
    }
    let _ = reconciling_tx.send(true);
    info!("kube-lighthouse controller started");
    // The triggers dropped while following: everything the caches hold (what they have not
    // listed yet comes as it is listed, now that this replica reconciles).
    triggers::everything(&caches, &sinks);
    let resync = tokio::spawn(triggers::resync::run(caches.clone(), sinks.clone(), triggers::resync::PERIOD));
    let foreign_bindings = tokio::spawn(triggers::watch_foreign_bindings(client.clone(), sinks.guard.clone()));
    tokio::select! {
        _ = lease::lost(&mut leadership) => {
            warn!("lost the Lease");
            foreign_bindings.abort();
            resync.abort();
            return Err(RunError::LeaseLost);
        }
        _ = shutdown => {
            // In-flight reconciles may finish; the trigger channels never close by themselves,
            // so the controllers are not awaited past a short grace period.
            info!("shutting down");
            let _ =
                tokio::time::timeout(SHUTDOWN_GRACE, futures::future::join3(assignments, definitions, namespaces)).await;
            activations.abort();
            onboarded.abort();
            onboardings.abort();
            sweeper.abort();
            guard.abort();
            auditor.abort();
            webhook_configuration.abort();
            foreign_bindings.abort();
            resync.abort();
            // The next replica leads as soon as the Lease is released.
            election.leave().await;
            let _ = drained.await;
        }
        r = watches => warn!(result = ?r, "watches ended"),
    }
    Ok(())
}
