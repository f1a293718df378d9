//! Shared state of the reconcilers: the client, configuration, watch caches, the event
//! recorder, and the channels that re-trigger reconciles.

use std::sync::Arc;

use futures::channel::mpsc::UnboundedSender;
use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Event;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::warn;

use super::expectations::Expectations;
use super::index::Index;
use super::materialized::MaterializedCache;
use super::Error;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::catalog::{Catalog, CatalogRole};
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
    /// The role catalog: the built-in subset of the ClusterRoles.
    pub catalog: Arc<CatalogCache>,
    /// Roles and RoleBindings labelled as ours: compared before writing, pruned by label.
    pub roles: Arc<MaterializedCache>,
    pub bindings: Arc<MaterializedCache>,
    /// Who is where, without scanning the caches.
    pub indexes: Arc<Indexes>,
}

/// The secondary indexes over [`Caches`], fed by the watches in [`super::triggers`].
pub struct Indexes {
    pub assignments_by_namespace: Index<RegistrationAssignment>,
    pub assignments_by_uid: Index<RegistrationAssignment>,
    pub definitions_by_namespace: Index<RegistrationDefinition>,
    /// Definitions by the namespaces of their ServiceAccount principals, whose home tenant
    /// they depend on.
    pub definitions_by_principal_namespace: Index<RegistrationDefinition>,
    /// Resource-group namespaces by the subscription they belong to.
    pub namespaces_by_subscription: Index<PartialObjectMeta<Namespace>>,
}

impl Default for Indexes {
    fn default() -> Self {
        Indexes {
            assignments_by_namespace: Index::new(|a| a.namespace()),
            assignments_by_uid: Index::new(|a| a.uid()),
            definitions_by_namespace: Index::new(|d| d.namespace()),
            definitions_by_principal_namespace: Index::multi(|d: &RegistrationDefinition| {
                d.spec.service_account_namespaces()
            }),
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

    /// Definitions with a ServiceAccount principal in `namespace`.
    pub fn definitions_with_principals_in(&self, namespace: &str) -> Vec<Arc<RegistrationDefinition>> {
        resolve(&self.definitions, self.indexes.definitions_by_principal_namespace.get(namespace))
    }
}

type Members = BTreeMap<String, CatalogRole>;

/// The role catalog, rebuilt from the ClusterRole watch only when a member changes, so that
/// reconciles share one snapshot instead of each building it from every ClusterRole.
#[derive(Default)]
pub struct CatalogCache {
    /// Members by ClusterRole name, and those of a relist in progress.
    members: Mutex<(Members, Option<Members>)>,
    snapshot: RwLock<Arc<Catalog>>,
    /// Counts changes, so that watchers of the catalog can tell one happened.
    version: std::sync::atomic::AtomicU64,
}

impl CatalogCache {
    pub fn current(&self) -> Arc<Catalog> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times the catalog changed.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Follows one ClusterRole watch event. A (re)list counts as one change when it is
    /// done, and only if it found the catalog different.
    pub fn observe(&self, event: &watcher::Event<ClusterRole>) {
        let mut guard = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let (members, relist) = &mut *guard;
        let changed = match event {
            watcher::Event::Apply(role) => match CatalogRole::from_cluster_role(role) {
                Some(member) => members.insert(role.name_any(), member.clone()) != Some(member),
                None => members.remove(&role.name_any()).is_some(),
            },
            watcher::Event::Delete(role) => members.remove(&role.name_any()).is_some(),
            watcher::Event::Init => {
                *relist = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(role) => {
                if let (Some(listed), Some(member)) = (relist.as_mut(), CatalogRole::from_cluster_role(role)) {
                    listed.insert(role.name_any(), member);
                }
                false
            }
            watcher::Event::InitDone => match relist.take() {
                Some(listed) if listed != *members => {
                    *members = listed;
                    true
                }
                _ => false,
            },
        };
        if changed {
            let catalog = Catalog::new(members.values().cloned().collect());
            *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
            self.version.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
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
    pub recorder: super::events::Publisher,
    /// Re-triggers assignment reconciles, e.g. a duplicate once the original is gone.
    pub assignment_triggers: UnboundedSender<ObjectRef<RegistrationAssignment>>,
    /// True once every cache has its first list.
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// Reconcile, error and write counters.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// RBAC writes in flight, which bookkeeping writes give way to.
    pub grants: GrantActivity,
    /// RBAC writes not yet seen by the watch.
    pub expectations: Expectations,
    /// Assignment status writes waiting for `grants` to be quiet.
    pub deferred_status: super::assignment::DeferredStatus,
    /// Bounds deferred writes in flight (to the reconcile concurrency).
    pub bookkeeping: tokio::sync::Semaphore,
}

impl Context {
    /// Validation against the current catalog, namespaces and configuration.
    pub fn validate<T>(&self, judge: impl FnOnce(&crate::model::validate::Context<'_>) -> T) -> T {
        let catalog = self.caches.catalog.current();
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

/// Message of a `Degraded=False` condition: says what holds, rather than an empty message.
pub const CATALOG_CURRENT: &str = "every granted role is as delegable as when the definition was accepted";

/// A reference to a namespace, for Events about it. The Event is recorded in that namespace
/// itself (`kubectl get events -n <namespace>`), where its owner looks; the API server
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
/// happened (statuses of granted delegations, success Events, the managed-by-tenants
/// annotation) wait, so that on an API server that is the bottleneck the capacity goes to
/// what users are waiting for: access. They wait for a short quiet spell, never longer than
/// [`MAX_DEFERRAL`], so a steady stream of grants delays them but cannot starve them.
/// Finalizers and rejections never wait.
pub struct GrantActivity {
    in_flight: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// True while quiet; what waiters watch, so that thousands of them cost no polling.
    quiet: tokio::sync::watch::Sender<bool>,
}

impl Default for GrantActivity {
    fn default() -> Self {
        GrantActivity {
            in_flight: Default::default(),
            last: Default::default(),
            quiet: tokio::sync::watch::Sender::new(true),
        }
    }
}

/// How long RBAC writes must have paused before bookkeeping goes ahead.
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(250);
/// The longest bookkeeping waits. Long enough for a whole onboarding wave of a thousand
/// customers to get its access first: with 5 s, status writes came back into the wave and
/// the last access came 30 % later, while the last status came no sooner (docs/benchmarks.md).
pub const MAX_DEFERRAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Marks one RBAC write in flight.
pub struct GrantWrite<'a>(&'a GrantActivity);

impl Drop for GrantWrite<'_> {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl GrantActivity {
    pub fn write(&self) -> GrantWrite<'_> {
        self.in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.quiet.send_if_modified(|quiet| std::mem::replace(quiet, false));
        GrantWrite(self)
    }

    fn is_quiet(&self) -> bool {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        self.in_flight.load(std::sync::atomic::Ordering::Acquire) == 0 && last.is_none_or(|t| t.elapsed() >= QUIET)
    }

    /// Tells the waiters when writes have paused for [`QUIET`]; runs for the life of the
    /// controller, and sleeps while nothing is written.
    pub async fn follow(&self) {
        let mut changes = self.quiet.subscribe();
        loop {
            if changes.wait_for(|quiet| !*quiet).await.is_err() {
                return;
            }
            while !self.is_quiet() {
                tokio::time::sleep(QUIET / 4).await;
            }
            self.quiet.send_replace(true);
        }
    }

    /// Returns once RBAC writes have paused for [`QUIET`], or after [`MAX_DEFERRAL`].
    pub async fn quiet(&self) {
        let mut changes = self.quiet.subscribe();
        let _ = tokio::time::timeout(MAX_DEFERRAL, changes.wait_for(|quiet| *quiet)).await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::PolicyRule;

    use super::*;
    use crate::model::catalog::tests::{catalog_cluster_role, READER};
    use crate::model::catalog::Lookup;

    fn reader(verbs: &[&str]) -> ClusterRole {
        let rule = PolicyRule { verbs: verbs.iter().map(|v| v.to_string()).collect(), ..Default::default() };
        catalog_cluster_role("kubelighthouse:reader", Some(READER), Some("Reader"), vec![rule])
    }

    fn other(name: &str) -> ClusterRole {
        ClusterRole {
            metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
            ..Default::default()
        }
    }

    fn found(cache: &CatalogCache) -> bool {
        matches!(cache.current().lookup(READER), Lookup::Found(_))
    }

    #[test]
    fn a_list_is_one_change_and_only_members_count() {
        let cache = CatalogCache::default();
        cache.observe(&watcher::Event::Init);
        cache.observe(&watcher::Event::InitApply(reader(&["get"])));
        cache.observe(&watcher::Event::InitApply(other("system:basic-user")));
        assert_eq!(cache.version(), 0, "nothing changes before the list is done");
        assert!(!found(&cache));
        cache.observe(&watcher::Event::InitDone);
        assert_eq!(cache.version(), 1);
        assert!(found(&cache));

        cache.observe(&watcher::Event::Apply(other("system:discovery")));
        cache.observe(&watcher::Event::Apply(reader(&["get"])));
        assert_eq!(cache.version(), 1, "neither a non-member nor an unchanged member is a change");

        cache.observe(&watcher::Event::Apply(reader(&["get", "list"])));
        assert_eq!(cache.version(), 2, "an edited member is");
        cache.observe(&watcher::Event::Delete(reader(&["get", "list"])));
        assert_eq!(cache.version(), 3);
        assert!(!found(&cache));
    }

    #[test]
    fn a_relist_that_finds_the_same_catalog_changes_nothing() {
        let cache = CatalogCache::default();
        for _ in 0..2 {
            cache.observe(&watcher::Event::Init);
            cache.observe(&watcher::Event::InitApply(reader(&["get"])));
            cache.observe(&watcher::Event::InitDone);
        }
        assert_eq!(cache.version(), 1);
        cache.observe(&watcher::Event::Init);
        cache.observe(&watcher::Event::InitDone);
        assert_eq!(cache.version(), 2, "a member deleted while the watch was down");
        assert!(!found(&cache));
    }

    #[tokio::test(start_paused = true)]
    async fn bookkeeping_waits_for_a_pause_in_grants_but_not_forever() {
        let grants = Arc::new(GrantActivity::default());
        tokio::spawn({
            let grants = grants.clone();
            async move { grants.follow().await }
        });
        let started = tokio::time::Instant::now();
        grants.quiet().await;
        assert_eq!(started.elapsed(), std::time::Duration::ZERO, "nothing written: no wait");

        drop(grants.write());
        let started = tokio::time::Instant::now();
        grants.quiet().await;
        let waited = started.elapsed();
        assert!(waited >= QUIET && waited < QUIET * 2, "a pause of QUIET after the last write: {waited:?}");

        let _in_flight = grants.write();
        let started = tokio::time::Instant::now();
        grants.quiet().await;
        assert_eq!(started.elapsed(), MAX_DEFERRAL, "a write that never ends delays bookkeeping, never starves it");
    }
}
