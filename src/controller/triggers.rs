//! Watches and fan-out: one watch per kind feeds a cache and maps each change to the
//! assignments and definitions it can affect. Other objects never reconcile themselves;
//! they only point at the delegations that depend on them.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::channel::mpsc::UnboundedSender;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::warn;

use super::apply;
use super::context::Caches;
use super::definition::assignments_of;
use super::sweep::Candidate;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::catalog::CatalogRole;
use crate::model::keys;
use crate::model::scope::{NamespaceInfo, Namespaces};

/// Where triggers go.
#[derive(Clone)]
pub struct Sinks {
    pub assignments: UnboundedSender<ObjectRef<RegistrationAssignment>>,
    pub definitions: UnboundedSender<ObjectRef<RegistrationDefinition>>,
    pub namespaces: UnboundedSender<ObjectRef<PartialObjectMeta<Namespace>>>,
    pub sweep: UnboundedSender<Candidate>,
}

impl Sinks {
    fn assignment(&self, a: &RegistrationAssignment) {
        let _ = self.assignments.unbounded_send(ObjectRef::from_obj(a));
    }

    fn definition(&self, d: &RegistrationDefinition) {
        let _ = self.definitions.unbounded_send(ObjectRef::from_obj(d));
    }

    /// A materialized object changed: its assignment checks it (drift is reverted there).
    fn owner_of<K: Resource>(&self, object: &K) {
        if let Some(a) = owning_assignment(object) {
            let _ = self.assignments.unbounded_send(a);
        }
    }

    fn namespace(&self, name: &str) {
        let _ = self.namespaces.unbounded_send(ObjectRef::new(name));
    }

    /// An assignment changed: the subscription it belongs to re-computes managed-by-tenants.
    fn assignment_changed(&self, a: &RegistrationAssignment, caches: &Caches) {
        self.assignment(a);
        let ns = a.namespace().unwrap_or_default();
        let parent = Namespaces::get(caches, &ns).and_then(|i| i.parent_subscription().map(String::from));
        self.namespace(parent.as_deref().unwrap_or(&ns));
    }
}

/// The writers of the caches this module fills.
pub struct Writers {
    pub namespaces: Writer<PartialObjectMeta<Namespace>>,
    pub definitions: Writer<RegistrationDefinition>,
    pub assignments: Writer<RegistrationAssignment>,
    pub cluster_roles: Writer<ClusterRole>,
    pub roles: Writer<Role>,
    pub bindings: Writer<RoleBinding>,
}

/// `namespace/name` of the assignment a materialized object belongs to.
fn owning_assignment<K: Resource>(object: &K) -> Option<ObjectRef<RegistrationAssignment>> {
    let value = object.meta().annotations.as_ref()?.get(keys::ASSIGNMENT)?;
    let (namespace, name) = value.split_once('/')?;
    Some(ObjectRef::new(name).within(namespace))
}

/// A namespace changed: assignments in it, over it (its subscription's), under it (its
/// resource groups'), and those holding objects in it (it may have left their scope).
fn namespace_changed(ns: &PartialObjectMeta<Namespace>, caches: &Caches, sinks: &Sinks) {
    let name = ns.name_any();
    let info = NamespaceInfo::from_labels(ns.labels(), false);
    let parent = info.parent_subscription().map(String::from);
    let mut affected = caches.assignments_under(&name);
    if let Some(parent) = &parent {
        affected.extend(caches.assignments_in(parent));
    }
    for a in affected {
        sinks.assignment(&a);
    }
    let holders: std::collections::HashSet<_> =
        caches.bindings_in(&name).iter().filter_map(|b| owning_assignment(b.as_ref())).collect();
    for owner in holders {
        let _ = sinks.assignments.unbounded_send(owner);
    }
    for d in caches.definitions_in(&name) {
        sinks.definition(&d);
    }
    sinks.namespace(&name);
    if let Some(p) = &parent {
        sinks.namespace(p);
    }
}

fn definition_changed(d: &RegistrationDefinition, caches: &Caches, sinks: &Sinks) {
    sinks.definition(d);
    for a in assignments_of(d, caches) {
        sinks.assignment(&a);
    }
    // Definitions are limited per subscription: one going may admit another.
    if d.meta().deletion_timestamp.is_some() {
        for other in caches.definitions_in(&d.namespace().unwrap_or_default()) {
            sinks.definition(&other);
        }
    }
}

/// Catalog roles are few and change rarely; a change re-judges every delegation.
fn catalog_changed(caches: &Caches, sinks: &Sinks) {
    for d in caches.definitions.state() {
        sinks.definition(&d);
    }
    for a in caches.assignments.state() {
        sinks.assignment(&a);
    }
}

/// Counts the caches that have not finished their first list, and tells everyone waiting
/// once all have. (`Store::wait_until_ready` cannot serve many concurrent waiters: it wakes
/// only the last one to poll it.)
pub struct Readiness {
    pending: std::sync::atomic::AtomicUsize,
    ready: tokio::sync::watch::Sender<bool>,
}

impl Readiness {
    pub fn new(caches: usize) -> (Arc<Readiness>, tokio::sync::watch::Receiver<bool>) {
        let (ready, rx) = tokio::sync::watch::channel(caches == 0);
        (Arc::new(Readiness { pending: std::sync::atomic::AtomicUsize::new(caches), ready }), rx)
    }

    fn cache_synced(&self) {
        if self.pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            let _ = self.ready.send(true);
        }
    }
}

/// Feeds one cache and its indexes (`observe`), then calls `on_change` for every object
/// seen, including the initial list (so that a restart re-checks every delegation).
async fn drive<K, S>(
    stream: S,
    readiness: Arc<Readiness>,
    observe: impl Fn(&watcher::Event<K>),
    mut on_change: impl FnMut(&K),
) where
    K: Resource<DynamicType = ()>,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut synced = false;
    while let Some(item) = stream.next().await {
        if let Ok(event) = &item {
            observe(event);
        }
        match item {
            Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object) | watcher::Event::InitApply(object)) => {
                tracing::trace!(kind = %K::kind(&()), name = %object.name_any(), "changed");
                on_change(&object);
            }
            Ok(watcher::Event::InitDone) if !synced => {
                synced = true;
                readiness.cache_synced();
            }
            Ok(_) => {}
            Err(e) => warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying with backoff"),
        }
    }
}

/// Nothing reads managedFields from a cache, and they are often the bulk of an object.
fn forget_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// The number of caches [`run`] fills (for [`Readiness::new`]).
pub const CACHES: usize = 6;

/// Runs every watch until the process ends.
pub async fn run(client: Client, writers: Writers, caches: Caches, sinks: Sinks, readiness: Arc<Readiness>) {
    let managed = watcher::Config::default().labels(&format!("{}={}", keys::MANAGED_BY, keys::MANAGER));
    let all = watcher::Config::default;
    let namespaces = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), all())
        .default_backoff()
        .modify(forget_managed_fields)
        .reflect(writers.namespaces);
    let definitions = watcher(Api::<RegistrationDefinition>::all(client.clone()), all())
        .default_backoff()
        .modify(forget_managed_fields)
        .reflect(writers.definitions);
    let assignments = watcher(Api::<RegistrationAssignment>::all(client.clone()), all())
        .default_backoff()
        .modify(forget_managed_fields)
        .reflect(writers.assignments);
    let cluster_roles = watcher(Api::<ClusterRole>::all(client.clone()), all())
        .default_backoff()
        .modify(forget_managed_fields)
        .reflect(writers.cluster_roles);
    let roles = watcher(Api::<Role>::all(client.clone()), managed.clone())
        .default_backoff()
        .modify(apply::compact_role)
        .reflect(writers.roles);
    let bindings = watcher(Api::<RoleBinding>::all(client), managed)
        .default_backoff()
        .modify(forget_managed_fields)
        .reflect(writers.bindings);

    // Names that were in the catalog: a role leaving it (unlabelled, deleted) must re-judge too.
    let mut catalog_names: BTreeSet<String> = BTreeSet::new();
    let (c1, c2, c3, c4) = (caches.clone(), caches.clone(), caches.clone(), caches);
    let (s1, s2, s3, s4, s5, s6) = (sinks.clone(), sinks.clone(), sinks.clone(), sinks.clone(), sinks.clone(), sinks);
    let r = || readiness.clone();
    let ix = c1.indexes.clone();
    let no_index = |_: &watcher::Event<ClusterRole>| {};
    futures::join!(
        drive(namespaces, r(), |e| ix.namespaces_by_subscription.observe(e), move |ns| namespace_changed(ns, &c1, &s1)),
        drive(definitions, r(), |e| ix.definitions_by_namespace.observe(e), move |d| definition_changed(d, &c2, &s2)),
        drive(
            assignments,
            r(),
            |e| {
                ix.assignments_by_namespace.observe(e);
                ix.assignments_by_uid.observe(e);
            },
            move |a: &RegistrationAssignment| s6.assignment_changed(a, &c4)
        ),
        drive(cluster_roles, r(), no_index, move |role: &ClusterRole| {
            let name = role.name_any();
            let in_catalog = CatalogRole::from_cluster_role(role).is_some();
            let was = catalog_names.contains(&name);
            if in_catalog {
                catalog_names.insert(name);
            }
            if in_catalog || was {
                catalog_changed(&c3, &s3);
            }
        }),
        drive(
            roles,
            r(),
            |e| ix.roles_by_assignment.observe(e),
            move |role: &Role| {
                s4.owner_of(role);
                let _ = s4.sweep.unbounded_send(Candidate::Role(ObjectRef::from_obj(role)));
            }
        ),
        drive(
            bindings,
            r(),
            |e| {
                ix.bindings_by_assignment.observe(e);
                ix.bindings_by_namespace.observe(e);
            },
            move |binding: &RoleBinding| {
                s5.owner_of(binding);
                let _ = s5.sweep.unbounded_send(Candidate::Binding(ObjectRef::from_obj(binding)));
            }
        ),
    );
}
