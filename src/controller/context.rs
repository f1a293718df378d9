//! Shared state of the reconcilers: the client, configuration, watch caches, the event
//! recorder, and the channels that re-trigger reconciles.

use std::sync::Arc;

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tracing::warn;

use super::Error;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::catalog::Catalog;
use crate::model::projection::IdentityTemplates;
use crate::model::scope::{NamespaceInfo, Namespaces};
use crate::model::validate::Limits;

/// Watch caches. Reconcilers read state only from here (never with a GET), so an idle
/// cluster costs no API calls.
#[derive(Clone)]
pub struct Caches {
    /// Namespaces, metadata only: labels and deletion are all the model needs.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub definitions: Store<RegistrationDefinition>,
    pub assignments: Store<RegistrationAssignment>,
    /// All ClusterRoles; the catalog is the built-in subset.
    pub cluster_roles: Store<ClusterRole>,
    /// Roles and RoleBindings labelled as ours: compared before writing, pruned by label.
    pub roles: Store<Role>,
    pub bindings: Store<RoleBinding>,
}

impl Caches {
    /// The role catalog as the cluster has it now.
    pub fn catalog(&self) -> Catalog {
        let roles = self.cluster_roles.state();
        Catalog::from_cluster_roles(roles.iter().map(|r| r.as_ref()))
    }

    pub fn definition(&self, namespace: &str, name: &str) -> Option<Arc<RegistrationDefinition>> {
        self.definitions.get(&ObjectRef::new(name).within(namespace))
    }
}

impl Namespaces for Store<PartialObjectMeta<Namespace>> {
    fn get(&self, name: &str) -> Option<NamespaceInfo> {
        Store::get(self, &ObjectRef::new(name))
            .map(|ns| NamespaceInfo::from_labels(ns.labels(), ns.metadata.deletion_timestamp.is_some()))
    }

    fn resource_groups_of(&self, subscription: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .state()
            .iter()
            .filter(|ns| NamespaceInfo::from_labels(ns.labels(), false).parent_subscription() == Some(subscription))
            .map(|ns| ns.name_any())
            .collect();
        names.sort();
        names
    }
}

/// Everything a reconcile needs.
pub struct Context {
    /// API client; its identity needs only the chart's RBAC.
    pub client: Client,
    pub caches: Caches,
    /// How managing-tenant principals appear to RBAC.
    pub templates: IdentityTemplates,
    pub limits: Limits,
    /// Publishes Events on our objects (`kubectl describe`).
    pub recorder: Recorder,
    /// Re-triggers assignment reconciles, e.g. a duplicate once the original is gone.
    pub assignment_triggers: UnboundedSender<ObjectRef<RegistrationAssignment>>,
    /// True once every cache has its first list.
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// Reconcile, error and write counters.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Context {
    /// Validation against the current catalog, namespaces and configuration; the catalog is
    /// taken from the cache once per call.
    pub fn validate<T>(&self, judge: impl FnOnce(&crate::model::validate::Context<'_>) -> T) -> T {
        let catalog = self.caches.catalog();
        judge(&crate::model::validate::Context {
            catalog: &catalog,
            namespaces: &self.caches.namespaces,
            limits: &self.limits,
            templates: &self.templates,
        })
    }

    /// Waits until every cache has its initial list. Reconciling earlier would read an empty
    /// cache as "nothing exists" and revoke access that should stay.
    pub async fn caches_synced(&self) -> Result<(), Error> {
        let mut ready = self.ready.clone();
        ready.wait_for(|r| *r).await.map(|_| ()).map_err(|_| Error::CacheNotReady("watches stopped"))
    }

    /// Publishes an Event; a failure to record is logged, never a reason to fail a reconcile.
    pub async fn publish<K: Resource<DynamicType = ()>>(&self, object: &K, event: Event) {
        self.publish_to(&object.object_ref(&()), event).await;
    }

    /// Publishes an Event about the object `reference` points at.
    pub async fn publish_to(&self, reference: &ObjectReference, event: Event) {
        if let Err(e) = self.recorder.publish(&event, reference).await {
            warn!(error = %e, reason = %event.reason, "could not publish event");
        }
    }
}

/// Message of a `Degraded=False` condition. Never empty: Kubernetes 1.20's server-side apply
/// turns an empty string into null, which the CRD schema then rejects.
pub const CATALOG_CURRENT: &str = "every granted role is as delegable as when the definition was accepted";

/// A reference to a namespace, for Events about it. The Event is recorded in that namespace
/// itself (`kubectl get events -n <namespace>`), where its owner looks; Kubernetes 1.20
/// refuses an Event whose regarding object has no namespace outside `default`.
pub fn namespace_reference(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Namespace".into()),
        name: Some(name.into()),
        namespace: Some(name.into()),
        ..Default::default()
    }
}

/// Event notes are limited to 1 kB.
pub fn note(message: &str) -> Option<String> {
    const MAX: usize = 1000;
    if message.len() <= MAX {
        return Some(message.to_string());
    }
    let mut cut = MAX - 3;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}...", &message[..cut]))
}
