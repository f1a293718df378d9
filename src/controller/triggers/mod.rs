//! The watches, wired in one place: one task and one tracing span per watch. Each watch
//! feeds its cache and indexes, then tells its [`mapping`] struct what changed, which sends
//! the delegations the change affects to the reconcilers ([`Sinks`]).

mod mapping;
mod relevant;
pub mod resync;

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
use tracing::{info_span, warn, Instrument};

use super::caches::{CachedNamespace, Caches};
use super::context::Context;
use super::guard::{self, Offence};
use super::index::map_event;
use super::materialized::{MaterializedCache, Record};
use super::sweep::Candidate;
use crate::api::{
    ActivationReview, Guardrail, Onboarding, RegistrationAssignment, RegistrationDefinition, RoleActivation,
};
use crate::model::keys;
use crate::model::scope::Namespaces;
pub use mapping::{
    ActivationTriggers, AssignmentTriggers, CatalogTriggers, DefinitionTriggers, Follow, GuardrailTriggers,
    MaterializedTriggers, NamespaceTriggers, OnboardingTriggers, ReviewTriggers,
};

/// Where triggers go.
#[derive(Clone)]
pub struct Sinks {
    /// Assignments to reconcile.
    pub assignments: UnboundedSender<ObjectRef<RegistrationAssignment>>,
    /// Definitions to reconcile.
    pub definitions: UnboundedSender<ObjectRef<RegistrationDefinition>>,
    /// Namespaces whose `managed-by-tenants` annotation to recompute.
    pub namespaces: UnboundedSender<ObjectRef<CachedNamespace>>,
    /// Materialized objects that may be orphans.
    pub sweep: UnboundedSender<Candidate>,
    /// RoleBindings beyond User Access Administrator's limit.
    pub guard: UnboundedSender<Offence>,
    /// RoleActivations to reconcile (SPEC §9).
    pub activations: UnboundedSender<ObjectRef<RoleActivation>>,
    /// Namespaces whose onboarded delegations to reconcile ([`crate::controller::onboarding`]).
    pub onboard: UnboundedSender<ObjectRef<CachedNamespace>>,
    /// Onboardings to reconcile (fan-out, status, offboarding).
    pub onboardings: UnboundedSender<ObjectRef<Onboarding>>,
}

impl Sinks {
    fn assignment(&self, a: &RegistrationAssignment) {
        let _ = self.assignments.unbounded_send(reference(a));
    }

    fn definition(&self, d: &RegistrationDefinition) {
        let _ = self.definitions.unbounded_send(reference(d));
    }

    fn activation(&self, a: &RoleActivation) {
        let _ = self.activations.unbounded_send(reference(a));
    }

    fn namespace(&self, name: &str) {
        let _ = self.namespaces.unbounded_send(ObjectRef::new(name));
    }

    /// The onboarding reconcile of namespace `name` looks again.
    fn onboard(&self, name: &str) {
        let _ = self.onboard.unbounded_send(ObjectRef::new(name));
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
    /// Fills [`super::Caches::namespaces`].
    pub namespaces: Writer<CachedNamespace>,
    /// Fills [`super::Caches::definitions`].
    pub definitions: Writer<RegistrationDefinition>,
    /// Fills [`super::Caches::assignments`].
    pub assignments: Writer<RegistrationAssignment>,
    /// Fills [`super::Caches::activations`].
    pub activations: Writer<RoleActivation>,
    /// Fills [`super::Caches::reviews`].
    pub reviews: Writer<ActivationReview>,
    /// Fills [`super::Caches::guardrails`].
    pub guardrails: Writer<Guardrail>,
    /// Fills [`super::Caches::onboardings`].
    pub onboardings: Writer<Onboarding>,
}

/// What a watch event means to the triggers.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a, T> {
    /// Seen in a (re)list: a restart re-checks everything.
    Listed(&'a T),
    /// Created or changed.
    Applied(&'a T),
    /// Deleted (or gone between two lists).
    Deleted(&'a T),
    /// A (re)list is complete.
    ListDone,
}

/// Counts the caches that have not finished their first list, and tells everyone waiting
/// once all have. (`Store::wait_until_ready` cannot serve many concurrent waiters: it wakes
/// only the last one to poll it.)
pub struct Readiness {
    pending: std::sync::atomic::AtomicUsize,
    ready: tokio::sync::watch::Sender<bool>,
}

impl Readiness {
    /// Counts `caches` caches still to list; the receiver turns `true` once all have (at once
    /// when `caches` is 0).
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
///
/// The objects of a (re)list are told once the list is done, not as they come: a reflector
/// store swaps in a list only at its end (`InitDone`), and a reconciler looks its object up
/// in the store when it takes the trigger. Told earlier, a trigger for an object created
/// while the watch was down (an API server restart, an expired watch) found no object and
/// was dropped for good, and one for an object changed meanwhile (say, being deleted) found
/// its old version: the delegation was never granted, or never revoked.
///
/// `hold` keeps the listed objects until then: by name from the store the watch fills, where
/// there is one, so that a list of thousands is not held twice (the store's writer buffers
/// its own copy until the list is done).
async fn drive<T, S, H>(
    kind: &'static str,
    stream: S,
    readiness: Arc<Readiness>,
    observe: impl Fn(&watcher::Event<T>),
    mut follower: impl Follow<T>,
    hold: H,
) where
    S: Stream<Item = Result<watcher::Event<T>, watcher::Error>>,
    H: Hold<T>,
{
    let mut stream = std::pin::pin!(stream);
    let mut synced = false;
    let mut listed: Vec<H::Held> = Vec::new();
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                warn!(kind, error = %e, "watch failed; retrying with backoff");
                continue;
            }
        };
        observe(&event);
        match event {
            watcher::Event::Apply(object) => follower.follow(Change::Applied(&object)),
            watcher::Event::Delete(object) => follower.follow(Change::Deleted(&object)),
            watcher::Event::InitApply(object) => listed.push(hold.hold(object)),
            watcher::Event::InitDone => {
                for held in listed.drain(..) {
                    hold.release(held, |object| follower.follow(Change::Listed(object)));
                }
                listed.shrink_to_fit();
                follower.follow(Change::ListDone);
                if !synced {
                    synced = true;
                    readiness.cache_synced();
                }
            }
            // A list that starts over drops what an interrupted one had gathered.
            watcher::Event::Init => listed.clear(),
        }
    }
}

/// How [`drive`] keeps a list's objects until the list is done.
trait Hold<T> {
    /// What is kept of one object.
    type Held;
    /// Keeps `object`.
    fn hold(&self, object: T) -> Self::Held;
    /// Calls `f` with the object again, once the list is done (not at all if it is gone).
    fn release(&self, held: Self::Held, f: impl FnOnce(&T));
}

/// Keeps the objects themselves: for watches without a store, whose objects are few or
/// small (ClusterRoles; the records of our Roles and RoleBindings).
struct Copies;

impl<T> Hold<T> for Copies {
    type Held = T;

    fn hold(&self, object: T) -> T {
        object
    }

    fn release(&self, held: T, f: impl FnOnce(&T)) {
        f(&held)
    }
}

/// Keeps name and namespace, and reads the object back from the store the watch fills,
/// which holds the list once the list is done (the event that says so reaches the store
/// first).
struct ByName<K: kube::runtime::reflector::Lookup + Clone + 'static>(kube::runtime::reflector::Store<K>)
where
    K::DynamicType: Eq + std::hash::Hash + Clone;

impl<K> Hold<K> for ByName<K>
where
    K: Resource<DynamicType = ()> + kube::runtime::reflector::Lookup<DynamicType = ()> + Clone + 'static,
{
    type Held = ObjectRef<K>;

    fn hold(&self, object: K) -> ObjectRef<K> {
        // As the store keys it: a cluster-scoped object has no namespace (not an empty one).
        let name = ObjectRef::new(object.meta().name.as_deref().unwrap_or_default());
        match object.meta().namespace.as_deref() {
            Some(ns) => name.within(ns),
            None => name,
        }
    }

    fn release(&self, held: ObjectRef<K>, f: impl FnOnce(&K)) {
        if let Some(object) = self.0.get(&held) {
            f(&object)
        }
    }
}

/// A definition or assignment that changed, appeared or went: the onboarding reconcile of its
/// namespace looks again (it may be one an onboarding owns, edited or deleted by someone, or
/// the customer's own definition of an onboarded offer). Nothing is sent during a list: the
/// namespace watch's list sends every subscription.
fn onboarding_follows<K: Resource>(event: &watcher::Event<K>, sinks: &Sinks) {
    if let watcher::Event::Apply(o) | watcher::Event::Delete(o) = event {
        if let Some(ns) = o.meta().namespace.as_deref() {
            sinks.onboard(ns);
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

/// Of an activation or a review, what is read: no managedFields, and of the annotations only
/// the admission stamps (requester, reviewer, and the reviewed activation's UID).
fn compact_activation_kind<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| [keys::REQUESTER, keys::REVIEWER, keys::REVIEWED_UID].contains(&k.as_str()));
    }
}

/// Sends every RoleBinding of a watch event that is beyond User Access Administrator's
/// limit to the guard.
fn judge_bindings(guard: UnboundedSender<Offence>) -> impl Fn(&watcher::Event<RoleBinding>) + Clone {
    move |event| {
        if let watcher::Event::Apply(b) | watcher::Event::InitApply(b) = event {
            if let Some(offence) = guard::judge(b) {
                let _ = guard.unbounded_send(offence);
            }
        }
    }
}

/// Watches the RoleBindings that are not ours, for User Access Administrator's limit alone,
/// storing none of them; runs only on the leader (its first list judges every binding, which
/// is how a new leader catches up). Ends only with the process.
pub async fn watch_foreign_bindings(client: Client, guard: UnboundedSender<Offence>) {
    let selector = format!("{}!={}", keys::MANAGED_BY, keys::MANAGER);
    let others =
        watcher(Api::<RoleBinding>::all(client), watcher::Config::default().page_size(LIST_PAGE).labels(&selector))
            .default_backoff()
            .inspect_ok(judge_bindings(guard));
    judge_only("RoleBinding (not ours)", others).instrument(info_span!("watch", kind = "RoleBinding (not ours)")).await
}

/// Sends every delegation, subscription and materialized object in the caches to be
/// reconciled or swept: what a replica that just became leader does, because it dropped the
/// triggers it saw as a follower.
pub fn everything(caches: &Caches, sinks: &Sinks) {
    for d in caches.definitions.state() {
        sinks.definition(&d);
    }
    for a in caches.assignments.state() {
        sinks.assignment(&a);
    }
    for a in caches.activations.state() {
        sinks.activation(&a);
    }
    for ns in caches.namespaces.state() {
        if ns.keeps_annotation() {
            sinks.namespace(&ns.name_any());
        }
        if ns.labels.is_some() {
            sinks.onboard(&ns.name_any());
        }
    }
    for o in caches.onboardings.state() {
        let _ = sinks.onboardings.unbounded_send(reference(o.as_ref()));
    }
    for key in caches.roles.keys() {
        let _ = sinks.sweep.unbounded_send(Candidate::Role(key));
    }
    for key in caches.bindings.keys() {
        let _ = sinks.sweep.unbounded_send(Candidate::Binding(key));
    }
}

/// Objects per page of an initial list (kube's default is 500).
const LIST_PAGE: u32 = 200;

/// The number of caches [`run`] fills (for [`Readiness::new`]).
pub const CACHES: usize = 10;

/// Runs every watch until the process ends.
///
/// `claims`: who admission saw claim to delete which activation, recorded here once this
/// replica's watch shows the deletion ([`crate::webhook::deleter`]).
pub async fn run(
    client: Client,
    writers: Writers,
    ctx: Arc<Context>,
    sinks: Sinks,
    readiness: Arc<Readiness>,
    claims: Arc<crate::webhook::deleter::DeleterClaims>,
) {
    // Lists come in pages of a few hundred objects: each page is parsed whole before it is
    // compacted, so smaller pages keep the start-up peak down at thousands of delegations.
    let all = || watcher::Config::default().page_size(LIST_PAGE);
    let managed = all().labels(&format!("{}={}", keys::MANAGED_BY, keys::MANAGER));
    let namespaces = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), all())
        .default_backoff()
        .map_ok(|e| map_event(&e, CachedNamespace::from_meta))
        .reflect(writers.namespaces);
    let definitions = watcher(Api::<RegistrationDefinition>::all(client.clone()), all())
        .default_backoff()
        .modify(compact_custom_resource)
        .reflect(writers.definitions);
    let assignments = watcher(Api::<RegistrationAssignment>::all(client.clone()), all())
        .default_backoff()
        .modify(compact_custom_resource)
        .reflect(writers.assignments);
    let activations = watcher(Api::<RoleActivation>::all(client.clone()), all())
        .default_backoff()
        .modify(compact_activation_kind)
        .reflect(writers.activations);
    let reviews = watcher(Api::<ActivationReview>::all(client.clone()), all())
        .default_backoff()
        .modify(compact_activation_kind)
        .reflect(writers.reviews);
    // Guardrails are few and read whole (docs/guardrails.md); managedFields are never read.
    let guardrails = watcher(Api::<Guardrail>::all(client.clone()), all())
        .default_backoff()
        .modify(|g: &mut Guardrail| g.metadata.managed_fields = None)
        .reflect(writers.guardrails);
    let onboardings = watcher(Api::<Onboarding>::all(client.clone()), all())
        .default_backoff()
        .modify(|o: &mut Onboarding| o.metadata.managed_fields = None)
        .reflect(writers.onboardings);
    // ClusterRoles are never stored: the catalog keeps what it needs of its members.
    let cluster_roles = watcher(Api::<ClusterRole>::all(client.clone()), all()).default_backoff();
    let roles = watcher(Api::<Role>::all(client.clone()), managed.clone())
        .default_backoff()
        .map_ok(|e| map_event(&e, Record::from_role));
    // Every RoleBinding is judged against User Access Administrator's limit as it goes by:
    // ours here (in case someone forged our label), the others by `watch_foreign_bindings`.
    let bindings = watcher(Api::<RoleBinding>::all(client.clone()), managed)
        .default_backoff()
        .inspect_ok(judge_bindings(sinks.guard.clone()))
        .map_ok(|e| map_event(&e, Record::from_binding));

    let caches = ctx.caches.clone();
    let ix = caches.indexes.clone();
    let feed = |cache: &Arc<MaterializedCache>| {
        let cache = cache.clone();
        move |e: &watcher::Event<Record>| cache.observe(e)
    };
    let materialized =
        |kind, candidate| MaterializedTriggers::new(kind, candidate, ctx.expectations.clone(), sinks.clone());
    let mut watches = tokio::task::JoinSet::new();
    let mut spawn = |kind: &'static str, watch: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        watches.spawn(watch.instrument(info_span!("watch", kind)));
    };
    let ns_index = ix.clone();
    spawn(
        "Namespace",
        Box::pin(drive(
            "Namespace",
            namespaces,
            readiness.clone(),
            move |e| ns_index.namespaces_by_subscription.observe(e),
            NamespaceTriggers::new(caches.clone(), sinks.clone()),
            ByName(caches.namespaces.clone()),
        )),
    );
    let def_index = ix.clone();
    spawn(
        "RegistrationDefinition",
        Box::pin(drive(
            "RegistrationDefinition",
            definitions,
            readiness.clone(),
            {
                let sinks = sinks.clone();
                move |e| {
                    def_index.definitions_by_namespace.observe(e);
                    def_index.definitions_by_principal_namespace.observe(e);
                    onboarding_follows(e, &sinks);
                }
            },
            DefinitionTriggers::new(caches.clone(), sinks.clone()),
            ByName(caches.definitions.clone()),
        )),
    );
    spawn(
        "RegistrationAssignment",
        Box::pin(drive(
            "RegistrationAssignment",
            assignments,
            readiness.clone(),
            {
                let sinks = sinks.clone();
                move |e| {
                    ix.assignments_by_namespace.observe(e);
                    ix.assignments_by_uid.observe(e);
                    onboarding_follows(e, &sinks);
                }
            },
            AssignmentTriggers::new(caches.clone(), sinks.clone()),
            ByName(caches.assignments.clone()),
        )),
    );
    spawn(
        "RoleActivation",
        Box::pin(drive(
            "RoleActivation",
            activations,
            readiness.clone(),
            {
                let client = client.clone();
                move |e: &watcher::Event<RoleActivation>| {
                    if let watcher::Event::Apply(a) = e {
                        crate::webhook::deleter::record(&client, &claims, a);
                    }
                }
            },
            ActivationTriggers::new(caches.clone(), sinks.clone()),
            ByName(caches.activations.clone()),
        )),
    );
    spawn(
        "ActivationReview",
        Box::pin(drive(
            "ActivationReview",
            reviews,
            readiness.clone(),
            |_| {},
            ReviewTriggers::new(sinks.clone()),
            ByName(caches.reviews.clone()),
        )),
    );
    spawn(
        "Guardrail",
        Box::pin(drive(
            "Guardrail",
            guardrails,
            readiness.clone(),
            |_| {},
            GuardrailTriggers::new(caches.clone(), sinks.clone()),
            ByName(caches.guardrails.clone()),
        )),
    );
    spawn(
        "Onboarding",
        Box::pin(drive(
            "Onboarding",
            onboardings,
            readiness.clone(),
            |_| {},
            OnboardingTriggers::new(sinks.clone()),
            ByName(caches.onboardings.clone()),
        )),
    );
    let catalog = caches.catalog.clone();
    spawn(
        "ClusterRole",
        Box::pin(drive(
            "ClusterRole",
            cluster_roles,
            readiness.clone(),
            move |e| catalog.observe(e),
            CatalogTriggers::new(caches.clone(), sinks.clone()),
            Copies,
        )),
    );
    spawn(
        "Role",
        Box::pin(drive(
            "Role",
            roles,
            readiness.clone(),
            feed(&caches.roles),
            materialized("Role", Candidate::Role),
            Copies,
        )),
    );
    spawn(
        "RoleBinding",
        Box::pin(drive(
            "RoleBinding",
            bindings,
            readiness,
            feed(&caches.bindings),
            materialized("RoleBinding", Candidate::Binding),
            Copies,
        )),
    );
    // A watch retries for ever; one that ends means the process is going.
    watches.join_next().await;
}

#[cfg(test)]
mod compaction_tests {
    use std::collections::BTreeMap;

    use kube::api::ObjectMeta;

    use super::*;
    use crate::api::{ActivationReview, ActivationReviewSpec};

    /// The lifecycle reads the reviewed activation's UID from the cached review: a cache that
    /// dropped it let a stale approval decide a new activation of the same name.
    #[test]
    fn an_activation_kind_keeps_every_admission_stamp_and_nothing_else() {
        let mut review = ActivationReview {
            metadata: ObjectMeta {
                name: Some("approve".into()),
                annotations: Some(BTreeMap::from([
                    (keys::REVIEWER.to_string(), "{}".to_string()),
                    (keys::REVIEWED_UID.to_string(), "uid-1".to_string()),
                    ("kubectl.kubernetes.io/last-applied-configuration".to_string(), "{…}".to_string()),
                ])),
                ..Default::default()
            },
            spec: serde_json::from_value::<ActivationReviewSpec>(serde_json::json!({
                "roleActivationRef": {"name": "hotfix"}, "decision": "Approve", "reason": "ok"}))
            .expect("spec"),
        };
        compact_activation_kind(&mut review);
        let kept: Vec<&String> = review.metadata.annotations.as_ref().expect("annotations").keys().collect();
        assert_eq!(kept, [keys::REVIEWER, keys::REVIEWED_UID]);
    }
}

#[cfg(test)]
mod drive_tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::WatchStreamExt;

    fn assignment(name: &str, generation: i64) -> RegistrationAssignment {
        let mut a = RegistrationAssignment::new(
            name,
            crate::api::RegistrationAssignmentSpec {
                registration_definition_ref: crate::api::DefinitionRef { name: "offer".into() },
            },
        );
        a.metadata.namespace = Some("customer".into());
        a.metadata.generation = Some(generation);
        a
    }

    /// Each object told of: its name, and the generation the store holds at that moment.
    type Seen = Arc<std::sync::Mutex<Vec<(String, Option<i64>)>>>;

    /// Records, for each object it is told of, the version the store holds at that moment.
    struct Recorder {
        store: reflector::Store<RegistrationAssignment>,
        seen: Seen,
    }

    impl Follow<RegistrationAssignment> for Recorder {
        fn follow(&mut self, change: Change<'_, RegistrationAssignment>) {
            if let Change::Listed(a) | Change::Applied(a) = change {
                let held = self.store.get(&reflector::ObjectRef::from_obj(a)).and_then(|s| s.metadata.generation);
                self.seen.lock().expect("seen").push((a.metadata.name.clone().unwrap_or_default(), held));
            }
        }
    }

    /// What a reconciler finds in the store when it takes a trigger of a (re)list: the
    /// object, as listed. (The API server restarted: `b` was created and `a` changed while
    /// the watch was down.) Whether the list is held as copies or by name.
    #[tokio::test]
    async fn triggers_of_a_relist_find_the_listed_objects_in_the_store() {
        for by_name in [false, true] {
            use watcher::Event::{Apply, Init, InitApply, InitDone};
            let (store, writer) = reflector::store();
            let events = vec![
                Init,
                InitApply(assignment("a", 1)),
                InitDone,
                Apply(assignment("a", 1)),
                // The relist after the watch expired.
                Init,
                InitApply(assignment("a", 2)),
                InitApply(assignment("b", 1)),
                InitDone,
            ];
            let stream = futures::stream::iter(events.into_iter().map(Ok)).reflect(writer);
            let seen: Seen = Arc::default();
            let (readiness, _ready) = Readiness::new(1);
            let recorder = Recorder { store: store.clone(), seen: seen.clone() };
            if by_name {
                drive("RegistrationAssignment", stream, readiness, |_| {}, recorder, ByName(store)).await;
            } else {
                drive("RegistrationAssignment", stream, readiness, |_| {}, recorder, Copies).await;
            }
            let seen = seen.lock().expect("seen").clone();
            let want: Vec<(String, Option<i64>)> = [("a", Some(1)), ("a", Some(1)), ("a", Some(2)), ("b", Some(1))]
                .map(|(n, g)| (n.to_string(), g))
                .to_vec();
            assert_eq!(seen, want, "held by name: {by_name}");
        }
    }

    /// A cluster-scoped object held by name is found again (the store keys it without a
    /// namespace).
    #[tokio::test]
    async fn a_namespace_held_by_name_is_found_in_the_store() {
        use watcher::Event::{Init, InitApply, InitDone};
        let (store, writer) = reflector::store::<CachedNamespace>();
        let mut ns = PartialObjectMeta::<Namespace>::default();
        ns.metadata.name = Some("sub".into());
        let stream =
            futures::stream::iter([Init, InitApply(CachedNamespace::from(ns)), InitDone].map(Ok)).reflect(writer);
        struct Names(Arc<std::sync::Mutex<Vec<String>>>);
        impl Follow<CachedNamespace> for Names {
            fn follow(&mut self, change: Change<'_, CachedNamespace>) {
                if let Change::Listed(ns) = change {
                    self.0.lock().expect("names").push(ns.name_any());
                }
            }
        }
        let names = Arc::default();
        let (readiness, _ready) = Readiness::new(1);
        drive("Namespace", stream, readiness, |_| {}, Names(Arc::clone(&names)), ByName(store)).await;
        assert_eq!(*names.lock().expect("names"), ["sub"]);
    }
}
