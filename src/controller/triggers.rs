//! Watches and fan-out: one watch per kind feeds a cache and maps each change to the
//! assignments and definitions it can affect. Other objects never reconcile themselves;
//! they only point at the delegations that depend on them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::channel::mpsc::UnboundedSender;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::warn;

use super::caches::Caches;
use super::context::Context;
use super::definition::assignments_of;
use super::guard::{self, Offence};
use super::index::map_event;
use super::materialized::{Key, MaterializedCache, Record};
use super::sweep::Candidate;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::keys;
use crate::model::scope::{NamespaceInfo, Namespaces};

/// Where triggers go.
#[derive(Clone)]
pub struct Sinks {
    pub assignments: UnboundedSender<ObjectRef<RegistrationAssignment>>,
    pub definitions: UnboundedSender<ObjectRef<RegistrationDefinition>>,
    pub namespaces: UnboundedSender<ObjectRef<PartialObjectMeta<Namespace>>>,
    pub sweep: UnboundedSender<Candidate>,
    /// RoleBindings beyond User Access Administrator's limit.
    pub guard: UnboundedSender<Offence>,
}

impl Sinks {
    fn assignment(&self, a: &RegistrationAssignment) {
        let _ = self.assignments.unbounded_send(reference(a));
    }

    fn definition(&self, d: &RegistrationDefinition) {
        let _ = self.definitions.unbounded_send(reference(d));
    }

    fn namespace(&self, name: &str) {
        let _ = self.namespaces.unbounded_send(ObjectRef::new(name));
    }

    /// The subscription `a` belongs to re-computes managed-by-tenants.
    fn subscription_of(&self, a: &RegistrationAssignment, caches: &Caches) {
        let ns = a.namespace().unwrap_or_default();
        let parent = Namespaces::get(caches, &ns).and_then(|i| i.parent_subscription().map(String::from));
        self.namespace(parent.as_deref().unwrap_or(&ns));
    }
}

/// A trigger: name and namespace only. (`ObjectRef::from_obj` also copies the uid and the
/// resourceVersion, which the queue does not need and which add up at thousands.)
fn reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectRef<K> {
    ObjectRef::new(object.meta().name.as_deref().unwrap_or_default())
        .within(object.meta().namespace.as_deref().unwrap_or_default())
}

/// The writers of the reflector caches this module fills.
pub struct Writers {
    pub namespaces: Writer<PartialObjectMeta<Namespace>>,
    pub definitions: Writer<RegistrationDefinition>,
    pub assignments: Writer<RegistrationAssignment>,
}

/// What a watch event means to the triggers.
enum Change<'a, T> {
    /// Seen in a (re)list: a restart re-checks everything.
    Listed(&'a T),
    Applied(&'a T),
    Deleted(&'a T),
    /// A (re)list is complete.
    ListDone,
}

// --- what is worth a reconcile --------------------------------------------------------

/// Per object (a hash of its namespace and name), a hash of the parts of it a trigger
/// depends on. An update that leaves them alone (a status the controller wrote, a label
/// nobody reads) then triggers nothing, and a burst of onboarding does not re-run every
/// reconcile for its own bookkeeping.
#[derive(Default)]
struct Relevant(HashMap<u64, u64>);

fn fingerprint(parts: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

impl Relevant {
    /// Whether `object`'s relevant parts differ from when it was last seen.
    fn key<K: Resource>(object: &K) -> u64 {
        fingerprint((&object.meta().namespace, &object.meta().name))
    }

    fn changed<K: Resource>(&mut self, object: &K, parts: u64) -> bool {
        self.0.insert(Relevant::key(object), parts) != Some(parts)
    }

    fn forget<K: Resource>(&mut self, object: &K) {
        self.0.remove(&Relevant::key(object));
    }
}

fn has_finalizer<K: Resource>(object: &K, finalizer: &str) -> bool {
    object.meta().finalizers.iter().flatten().any(|f| f == finalizer)
}

/// What an assignment's own reconcile depends on: its spec, its deletion, our finalizer.
fn assignment_parts(a: &RegistrationAssignment) -> u64 {
    let meta = a.meta();
    fingerprint((meta.generation, meta.deletion_timestamp.is_some(), has_finalizer(a, keys::ASSIGNMENT_FINALIZER)))
}

/// What managed-by-tenants depends on: whether the assignment is in force, and for whom.
fn assignment_tenant_parts(a: &RegistrationAssignment) -> u64 {
    let status = a.status.as_ref();
    fingerprint((
        a.meta().deletion_timestamp.is_some(),
        status.map(|s| format!("{:?}", s.provisioning_state)),
        status.and_then(|s| s.managed_by_tenant_id.as_deref()),
    ))
}

/// What a definition's assignments depend on: its spec, its deletion, and the generation it
/// was accepted at (after which catalog changes narrow instead of reject).
fn definition_parts(d: &RegistrationDefinition) -> u64 {
    let meta = d.meta();
    fingerprint((
        meta.generation,
        meta.deletion_timestamp.is_some(),
        d.status.as_ref().and_then(|s| s.accepted_generation),
    ))
}

/// What the definition's own reconcile depends on besides: our finalizer.
fn definition_own_parts(d: &RegistrationDefinition) -> u64 {
    fingerprint((definition_parts(d), has_finalizer(d, keys::DEFINITION_FINALIZER)))
}

/// What the model reads of a namespace: its tenant and subscription labels, its deletion.
fn namespace_info(ns: &PartialObjectMeta<Namespace>) -> NamespaceInfo {
    NamespaceInfo::from_labels(ns.labels(), ns.metadata.deletion_timestamp.is_some())
}

// --- fan-out ---------------------------------------------------------------------------

/// A namespace's tenant or subscription label changed, or it is terminating or gone. Every
/// fact a reconcile took from it is re-read (docs/architecture.md, "What is read from a
/// namespace"):
/// - assignments in it, and in its resource groups (their home tenant is its tenant);
/// - the subscription it belongs to now and the one it belonged to before (a resource group
///   that moved): their assignments re-compute their scope, and their managed-by-tenants;
/// - assignments holding objects in it (it may have just left their scope);
/// - definitions in it (a transfer, or a definition left outside any subscription);
/// - definitions with a ServiceAccount principal in it or in its resource groups: that
///   principal's home tenant is this namespace's (or its subscription's) tenant.
fn namespace_moved(name: &str, now: &NamespaceInfo, before: Option<&NamespaceInfo>, caches: &Caches, sinks: &Sinks) {
    let parents: std::collections::BTreeSet<String> = [Some(now), before]
        .into_iter()
        .flatten()
        .filter_map(|info| info.parent_subscription().map(String::from))
        .collect();
    let mut affected = caches.assignments_under(name);
    for parent in &parents {
        affected.extend(caches.assignments_in(parent));
    }
    for a in affected {
        sinks.assignment(&a);
    }
    let holders: std::collections::HashSet<_> =
        caches.bindings.in_namespace(name).iter().filter_map(|b| b.owning_assignment()).collect();
    for owner in holders {
        let _ = sinks.assignments.unbounded_send(owner);
    }
    for d in caches.definitions_in(name) {
        sinks.definition(&d);
    }
    let mut principal_namespaces = caches.resource_groups_of(name);
    principal_namespaces.push(name.to_string());
    for ns in &principal_namespaces {
        for d in caches.definitions_with_principals_in(ns) {
            definition_changed(&d, caches, sinks);
        }
    }
    for parent in &parents {
        sinks.namespace(parent);
    }
}

/// Its assignments depend on the definition: they re-check it.
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

/// A materialized object changed: its assignment checks it (drift is reverted there), unless
/// it is the version the controller itself just wrote; and the sweep checks it has an owner.
fn materialized_changed(
    kind: &'static str,
    record: &Record,
    ctx: &Context,
    sinks: &Sinks,
    owner_too: bool,
    candidate: Candidate,
) {
    if !ctx.expectations.observed(kind, record) && owner_too {
        if let Some(owner) = record.owning_assignment() {
            let _ = sinks.assignments.unbounded_send(owner);
        }
    }
    let _ = sinks.sweep.unbounded_send(candidate);
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

/// Feeds one cache and its indexes (`observe`), then tells `on_change` what happened,
/// including the initial list (so that a restart re-checks every delegation).
async fn drive<T, S>(
    kind: &'static str,
    stream: S,
    readiness: Arc<Readiness>,
    observe: impl Fn(&watcher::Event<T>),
    mut on_change: impl FnMut(Change<'_, T>),
) where
    S: Stream<Item = Result<watcher::Event<T>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut synced = false;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                warn!(kind, error = %e, "watch failed; retrying with backoff");
                continue;
            }
        };
        observe(&event);
        match &event {
            watcher::Event::Apply(object) => on_change(Change::Applied(object)),
            watcher::Event::Delete(object) => on_change(Change::Deleted(object)),
            watcher::Event::InitApply(object) => on_change(Change::Listed(object)),
            watcher::Event::InitDone => {
                on_change(Change::ListDone);
                if !synced {
                    synced = true;
                    readiness.cache_synced();
                }
            }
            watcher::Event::Init => {}
        }
    }
}

/// Drains a watch that is only inspected as it goes by (no cache, no readiness).
async fn judge_only<T>(kind: &'static str, stream: impl Stream<Item = Result<watcher::Event<T>, watcher::Error>>) {
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            warn!(kind, error = %e, "watch failed; retrying with backoff");
        }
    }
}

/// Only what the reconcilers read stays in a cache: of our own custom resources, no
/// managedFields, labels or annotations (`kubectl apply` keeps a whole copy of the object in
/// one).
fn compact_custom_resource<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    meta.labels = None;
}

/// Of a namespace, the name and what the model reads: its tenant and subscription labels,
/// the managed-by-tenants annotation, its deletion. There are often thousands.
fn compact_namespace(ns: &mut PartialObjectMeta<Namespace>) {
    ns.types = None;
    let meta = &mut ns.metadata;
    meta.managed_fields = None;
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    meta.owner_references = None;
    meta.finalizers = None;
    let keep = |map: &mut Option<std::collections::BTreeMap<String, String>>, keys: &[&str]| {
        if let Some(m) = map.as_mut() {
            m.retain(|k, _| keys.contains(&k.as_str()));
        }
        if map.as_ref().is_some_and(|m| m.is_empty()) {
            *map = None;
        }
    };
    keep(&mut meta.labels, &[keys::TENANT_ID, keys::SUBSCRIPTION]);
    keep(&mut meta.annotations, &[keys::MANAGED_BY_TENANTS]);
}

/// Objects per page of an initial list (kube's default is 500).
const LIST_PAGE: u32 = 200;

/// The number of caches [`run`] fills (for [`Readiness::new`]).
pub const CACHES: usize = 6;

/// Runs every watch until the process ends.
pub async fn run(client: Client, writers: Writers, ctx: Arc<Context>, sinks: Sinks, readiness: Arc<Readiness>) {
    // Lists come in pages of a few hundred objects: each page is parsed whole before it is
    // compacted, so smaller pages keep the start-up peak down at thousands of delegations.
    let all = || watcher::Config::default().page_size(LIST_PAGE);
    let managed = all().labels(&format!("{}={}", keys::MANAGED_BY, keys::MANAGER));
    let namespaces = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), all())
        .default_backoff()
        .modify(compact_namespace)
        .reflect(writers.namespaces);
    let definitions = watcher(Api::<RegistrationDefinition>::all(client.clone()), all())
        .default_backoff()
        .modify(compact_custom_resource)
        .reflect(writers.definitions);
    let assignments = watcher(Api::<RegistrationAssignment>::all(client.clone()), all())
        .default_backoff()
        .modify(compact_custom_resource)
        .reflect(writers.assignments);
    // ClusterRoles are never stored: the catalog keeps what it needs of its members.
    let cluster_roles = watcher(Api::<ClusterRole>::all(client.clone()), all()).default_backoff();
    let roles = watcher(Api::<Role>::all(client.clone()), managed.clone())
        .default_backoff()
        .map_ok(|e| map_event(&e, Record::from_role));
    // Every RoleBinding is judged against User Access Administrator's limit as it goes by
    // (ours as well, in case someone forged our label); those that are not ours are watched
    // for that alone and never stored.
    let guard_sink = sinks.guard.clone();
    let judge = move |event: &watcher::Event<RoleBinding>| {
        if let watcher::Event::Apply(b) | watcher::Event::InitApply(b) = event {
            if let Some(offence) = guard::judge(b) {
                let _ = guard_sink.unbounded_send(offence);
            }
        }
    };
    let bindings = watcher(Api::<RoleBinding>::all(client.clone()), managed)
        .default_backoff()
        .inspect_ok(judge.clone())
        .map_ok(|e| map_event(&e, Record::from_binding));
    let others =
        watcher(Api::<RoleBinding>::all(client), all().labels(&format!("{}!={}", keys::MANAGED_BY, keys::MANAGER)))
            .default_backoff()
            .inspect_ok(judge);

    let caches = ctx.caches.clone();
    let r = || readiness.clone();
    let on_materialized = |kind: &'static str, candidate: fn(Key) -> Candidate| {
        // The first list triggers no owner: every assignment is being listed itself.
        let mut listed = false;
        let (ctx, sinks) = (ctx.clone(), sinks.clone());
        move |change: Change<'_, Record>| match change {
            Change::Deleted(record) => {
                ctx.expectations.forget(kind, record.namespace(), record.name());
                materialized_changed(kind, record, &ctx, &sinks, true, candidate(record.key.clone()))
            }
            Change::Listed(record) | Change::Applied(record) => {
                let owner_too = listed || !matches!(change, Change::Listed(_));
                materialized_changed(kind, record, &ctx, &sinks, owner_too, candidate(record.key.clone()))
            }
            Change::ListDone => listed = true,
        }
    };
    let ix = caches.indexes.clone();
    let feed = |cache: &Arc<MaterializedCache>| {
        let cache = cache.clone();
        move |e: &watcher::Event<Record>| cache.observe(e)
    };

    // Assignments: their own reconcile, and managed-by-tenants of their subscription.
    let mut own = Relevant::default();
    let mut tenants = Relevant::default();
    let on_assignment = |change: Change<'_, RegistrationAssignment>| match change {
        Change::Listed(a) | Change::Applied(a) => {
            let listed = matches!(change, Change::Listed(_));
            if own.changed(a, assignment_parts(a)) || listed {
                sinks.assignment(a);
            }
            if tenants.changed(a, assignment_tenant_parts(a)) || listed {
                sinks.subscription_of(a, &caches);
            }
        }
        Change::Deleted(a) => {
            own.forget(a);
            tenants.forget(a);
            sinks.assignment(a);
            sinks.subscription_of(a, &caches);
        }
        Change::ListDone => {}
    };

    let (mut definition_own, mut definition_seen) = (Relevant::default(), Relevant::default());
    let on_definition = |change: Change<'_, RegistrationDefinition>| match change {
        Change::Listed(d) | Change::Applied(d) => {
            let listed = matches!(change, Change::Listed(_));
            let own = definition_own.changed(d, definition_own_parts(d));
            if definition_seen.changed(d, definition_parts(d)) || listed {
                definition_changed(d, &caches, &sinks);
            } else if own {
                sinks.definition(d);
            }
        }
        Change::Deleted(d) => {
            definition_own.forget(d);
            definition_seen.forget(d);
            definition_changed(d, &caches, &sinks);
        }
        Change::ListDone => {}
    };

    // Namespaces: every change may need the annotation put back; only a tenant, a
    // subscription or a deletion moves delegations. What each namespace was is kept (two
    // labels), because a resource group that moves must also be taken out of its old
    // subscription.
    let mut namespace_seen: HashMap<String, NamespaceInfo> = HashMap::new();
    let mut namespaces_listed = false;
    // Names seen in a relist: those missing when it is done were deleted while the watch was
    // down (a relist reports no deletions), and what they decided is re-read too.
    let mut relisted: std::collections::HashSet<String> = std::collections::HashSet::new();
    let on_namespace = |change: Change<'_, PartialObjectMeta<Namespace>>| {
        let (ns, gone) = match change {
            Change::Listed(ns) | Change::Applied(ns) => (ns, false),
            Change::Deleted(ns) => (ns, true),
            Change::ListDone => {
                if namespaces_listed {
                    let vanished: Vec<String> =
                        namespace_seen.keys().filter(|n| !relisted.contains(*n)).cloned().collect();
                    for name in vanished {
                        if let Some(before) = namespace_seen.remove(&name) {
                            namespace_moved(&name, &before, Some(&before), &caches, &sinks);
                        }
                    }
                }
                relisted.clear();
                namespaces_listed = true;
                return;
            }
        };
        let name = ns.name_any();
        if namespaces_listed && matches!(change, Change::Listed(_)) {
            relisted.insert(name.clone());
        }
        let now = namespace_info(ns);
        let before = if gone { namespace_seen.remove(&name) } else { namespace_seen.insert(name.clone(), now.clone()) };
        let moved = match change {
            // The first list moves nothing: every delegation is being listed anyway. A
            // relist finds what moved while the watch was down.
            Change::Listed(_) => namespaces_listed && before.as_ref() != Some(&now),
            Change::Applied(_) => before.as_ref() != Some(&now),
            _ => true,
        };
        if moved {
            namespace_moved(&name, &now, before.as_ref(), &caches, &sinks);
        }
        // Only a subscription, or a namespace still carrying the annotation, has one to keep.
        if ns.labels().contains_key(keys::TENANT_ID) || ns.annotations().contains_key(keys::MANAGED_BY_TENANTS) {
            sinks.namespace(&name);
        }
    };

    // The catalog: a change re-judges everything, except during the first list, when
    // every delegation is being listed (and so triggered) anyway.
    let mut catalog_seen = caches.catalog.version();
    let mut catalog_listed = false;
    let on_cluster_role = |change: Change<'_, ClusterRole>| {
        let version = caches.catalog.version();
        let changed = std::mem::replace(&mut catalog_seen, version) != version;
        let first_list = matches!(change, Change::ListDone) && !std::mem::replace(&mut catalog_listed, true);
        if changed && !first_list {
            catalog_changed(&caches, &sinks);
        }
    };

    futures::join!(
        drive("Namespace", namespaces, r(), |e| ix.namespaces_by_subscription.observe(e), on_namespace),
        drive(
            "RegistrationDefinition",
            definitions,
            r(),
            |e| {
                ix.definitions_by_namespace.observe(e);
                ix.definitions_by_principal_namespace.observe(e);
            },
            on_definition
        ),
        drive(
            "RegistrationAssignment",
            assignments,
            r(),
            |e| {
                ix.assignments_by_namespace.observe(e);
                ix.assignments_by_uid.observe(e);
            },
            on_assignment
        ),
        drive("ClusterRole", cluster_roles, r(), |e| caches.catalog.observe(e), on_cluster_role),
        drive("Role", roles, r(), feed(&caches.roles), on_materialized("Role", Candidate::Role)),
        drive("RoleBinding", bindings, r(), feed(&caches.bindings), on_materialized("RoleBinding", Candidate::Binding)),
        judge_only("RoleBinding (not ours)", others),
    );
}
