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

use super::index::Index;
use super::Error;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::catalog::Catalog;
use crate::model::keys;
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
    /// Who is where, without scanning the caches.
    pub indexes: Arc<Indexes>,
}

/// The secondary indexes over [`Caches`], fed by the watches in [`super::triggers`].
pub struct Indexes {
    pub assignments_by_namespace: Index<RegistrationAssignment>,
    pub assignments_by_uid: Index<RegistrationAssignment>,
    pub definitions_by_namespace: Index<RegistrationDefinition>,
    pub roles_by_assignment: Index<Role>,
    pub bindings_by_assignment: Index<RoleBinding>,
    pub bindings_by_namespace: Index<RoleBinding>,
    /// Resource-group namespaces by the subscription they belong to.
    pub namespaces_by_subscription: Index<PartialObjectMeta<Namespace>>,
}

fn owner_uid<K: Resource>(object: &K) -> Option<String> {
    object.meta().labels.as_ref()?.get(keys::ASSIGNMENT_UID).cloned()
}

impl Default for Indexes {
    fn default() -> Self {
        Indexes {
            assignments_by_namespace: Index::new(|a| a.namespace()),
            assignments_by_uid: Index::new(|a| a.uid()),
            definitions_by_namespace: Index::new(|d| d.namespace()),
            roles_by_assignment: Index::new(owner_uid),
            bindings_by_assignment: Index::new(owner_uid),
            bindings_by_namespace: Index::new(|b| b.namespace()),
            namespaces_by_subscription: Index::new(|ns| {
                NamespaceInfo::from_labels(ns.labels(), false).parent_subscription().map(String::from)
            }),
        }
    }
}

fn resolve<K>(store: &Store<K>, references: Vec<ObjectRef<K>>) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    references.iter().filter_map(|r| store.get(r)).collect()
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

    pub fn assignments_in(&self, namespace: &str) -> Vec<Arc<RegistrationAssignment>> {
        resolve(&self.assignments, self.indexes.assignments_by_namespace.get(namespace))
    }

    /// Assignments in `subscription` and in its resource groups.
    pub fn assignments_under(&self, subscription: &str) -> Vec<Arc<RegistrationAssignment>> {
        let mut all = self.assignments_in(subscription);
        for rg in self.resource_groups_of(subscription) {
            all.extend(self.assignments_in(&rg));
        }
        all
    }

    pub fn assignment_exists(&self, uid: &str) -> bool {
        self.indexes.assignments_by_uid.contains(uid)
    }

    pub fn definitions_in(&self, namespace: &str) -> Vec<Arc<RegistrationDefinition>> {
        resolve(&self.definitions, self.indexes.definitions_by_namespace.get(namespace))
    }

    /// Roles labelled as the assignment with `uid`'s.
    pub fn roles_of(&self, uid: &str) -> Vec<Arc<Role>> {
        resolve(&self.roles, self.indexes.roles_by_assignment.get(uid))
    }

    /// RoleBindings labelled as the assignment with `uid`'s.
    pub fn bindings_of(&self, uid: &str) -> Vec<Arc<RoleBinding>> {
        resolve(&self.bindings, self.indexes.bindings_by_assignment.get(uid))
    }

    pub fn bindings_in(&self, namespace: &str) -> Vec<Arc<RoleBinding>> {
        resolve(&self.bindings, self.indexes.bindings_by_namespace.get(namespace))
    }
}

impl Namespaces for Caches {
    fn get(&self, name: &str) -> Option<NamespaceInfo> {
        self.namespaces
            .get(&ObjectRef::new(name))
            .map(|ns| NamespaceInfo::from_labels(ns.labels(), ns.metadata.deletion_timestamp.is_some()))
    }

    fn resource_groups_of(&self, subscription: &str) -> Vec<String> {
        let mut names: Vec<String> =
            resolve(&self.namespaces, self.indexes.namespaces_by_subscription.get(subscription))
                .iter()
                // The index follows labels as they were; the cache has them as they are.
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
    /// RBAC writes in flight, which bookkeeping writes give way to.
    pub grants: GrantActivity,
    /// Assignment status writes waiting for `grants` to be quiet.
    pub deferred_status: super::assignment::DeferredStatus,
    /// Bounds deferred writes in flight (to the reconcile concurrency).
    pub bookkeeping: tokio::sync::Semaphore,
}

impl Context {
    /// Validation against the current catalog, namespaces and configuration; the catalog is
    /// taken from the cache once per call.
    pub fn validate<T>(&self, judge: impl FnOnce(&crate::model::validate::Context<'_>) -> T) -> T {
        let catalog = self.caches.catalog();
        judge(&crate::model::validate::Context {
            catalog: &catalog,
            namespaces: &self.caches,
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

/// Grant first, account later: while RBAC is being written, writes that only record what
/// happened (definition status and finalizers, the managed-by-tenants annotation) wait, so
/// that on an API server that is the bottleneck the capacity goes to what users are waiting
/// for: access. They wait for a short quiet spell, never longer than [`MAX_DEFERRAL`], so
/// a steady stream of grants delays them but cannot starve them.
#[derive(Default)]
pub struct GrantActivity {
    in_flight: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long RBAC writes must have paused before bookkeeping goes ahead.
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(250);
/// The longest bookkeeping waits.
pub const MAX_DEFERRAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Marks one RBAC write in flight.
pub struct GrantWrite<'a>(&'a GrantActivity);

impl Drop for GrantWrite<'_> {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl GrantActivity {
    pub fn write(&self) -> GrantWrite<'_> {
        self.in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        GrantWrite(self)
    }

    fn is_quiet(&self) -> bool {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        self.in_flight.load(std::sync::atomic::Ordering::Acquire) == 0 && last.is_none_or(|t| t.elapsed() >= QUIET)
    }

    /// Returns once RBAC writes have paused for [`QUIET`], or after [`MAX_DEFERRAL`].
    pub async fn quiet(&self) {
        let deadline = tokio::time::Instant::now() + MAX_DEFERRAL;
        while !self.is_quiet() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(QUIET / 4).await;
        }
    }
}
