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
pub mod triggers;

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use kube::api::ListParams;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{reflector, watcher, Controller};
use kube::{Api, Client};
use thiserror::Error;
use tracing::{info, warn};

use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::config::Config;
use context::{Caches, Context};

/// Reconcile errors. Each variant is also the `reason` label of the error metric.
#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("cache {0} never synced")]
    CacheNotReady(&'static str),
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("the CustomResourceDefinitions are not installed: apply crds/ (or install the Helm chart) first")]
    CrdsMissing,
}

impl Error {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::CacheNotReady(_) => "cache_not_ready",
            Error::MissingField(_) => "missing_field",
            Error::CrdsMissing => "crds_missing",
        }
    }
}

/// Parallel reconciles: enough to onboard many customers quickly without opening a
/// connection per delegation.
const CONCURRENCY: u16 = 16;

fn error_policy<K>(_object: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    // Transient by nature (a 403 or 5xx while the API server restarts, a conflict): retry,
    // and never treat it as a reason to grant or revoke.
    warn!(error = %error, reason = error.metric_label(), "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
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

    let (namespaces, ns_writer) = reflector::store();
    let (definitions, def_writer) = reflector::store();
    let (cluster_roles, cr_writer) = reflector::store();
    let (roles, role_writer) = reflector::store();
    let (bindings, binding_writer) = reflector::store();
    let assignment_controller =
        Controller::new(Api::<RegistrationAssignment>::all(client.clone()), watcher::Config::default())
            .with_config(ControllerConfig::default().concurrency(CONCURRENCY));
    let caches =
        Caches { namespaces, definitions, assignments: assignment_controller.store(), cluster_roles, roles, bindings };

    let (assignment_tx, assignment_rx) = mpsc::unbounded();
    let (definition_tx, definition_rx) = mpsc::unbounded();
    let instance = std::env::var("POD_NAME").ok().or_else(|| std::env::var("HOSTNAME").ok());
    let ctx = Arc::new(Context {
        client: client.clone(),
        caches: caches.clone(),
        templates: config.templates(),
        limits: config.limits(),
        recorder: Recorder::new(client.clone(), Reporter { controller: "kube-lighthouse".into(), instance }),
        assignment_triggers: assignment_tx.clone(),
    });

    let writers = triggers::Writers {
        namespaces: ns_writer,
        definitions: def_writer,
        cluster_roles: cr_writer,
        roles: role_writer,
        bindings: binding_writer,
    };
    let sinks = triggers::Sinks { assignments: assignment_tx, definitions: definition_tx };
    let watches = triggers::run(client.clone(), writers, caches.clone(), sinks);

    let assignments = assignment_controller
        .reconcile_on(assignment_rx)
        .shutdown_on_signal()
        .run(assignment::reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let definitions = Controller::for_stream(
        futures::stream::pending::<Result<RegistrationDefinition, watcher::Error>>(),
        caches.definitions.clone(),
    )
    .with_config(ControllerConfig::default().concurrency(CONCURRENCY))
    .reconcile_on(definition_rx)
    .shutdown_on_signal()
    .run(definition::reconcile, error_policy, ctx)
    .for_each(|_| futures::future::ready(()));

    info!("kube-lighthouse controller started");
    tokio::select! {
        _ = futures::future::join(assignments, definitions) => info!("controllers stopped"),
        _ = watches => warn!("watches ended"),
    }
    Ok(())
}
