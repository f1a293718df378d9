//! Bookkeeping: the writes that record what happened (statuses, Events, the
//! managed-by-tenants annotation), as opposed to the RBAC writes that grant or revoke access.
//! All of them go through one bounded writer, [`Bookkeeping`], which gives way to RBAC writes
//! ([`GrantActivity`]), keeps only the latest record of each object, and counts its failures in
//! the error metric (`controller="bookkeeping"`).
//!
//! It also remembers each status it was given until the watch shows it ([`Bookkeeping::status_of`]):
//! the controller is the only writer of these statuses, so the last one given here is the
//! object's status, even while the cache still shows an older one. A reconcile that runs in
//! between (another watch event of the same object) compares against it, so it neither writes
//! the same status again nor publishes the same Event twice.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::events::Publisher;
use super::Error;
use crate::api::{
    RegistrationAssignment, RegistrationAssignmentStatus, RegistrationDefinition, RegistrationDefinitionStatus,
    RoleActivation, RoleActivationStatus,
};
use crate::metrics::Metrics;
use crate::model::keys;
use crate::model::status::Notice;

/// One bookkeeping write.
#[derive(Debug)]
pub enum Record {
    /// An assignment's status, and the Events its change of outcome publishes once written.
    AssignmentStatus {
        /// The assignment the status belongs to.
        assignment: Arc<RegistrationAssignment>,
        /// The status to write.
        status: RegistrationAssignmentStatus,
        /// The Events to publish once the status is written, one per change of outcome.
        notices: Vec<Notice>,
    },
    /// A definition's status, and the Event published once written.
    DefinitionStatus {
        /// The definition the status belongs to.
        definition: Arc<RegistrationDefinition>,
        /// The status to write.
        status: RegistrationDefinitionStatus,
        /// The Event to publish once the status is written, if the outcome changed.
        notice: Option<Notice>,
    },
    /// The `managed-by-tenants` annotation of subscription `namespace` (None removes it).
    ManagedByTenants {
        /// The subscription namespace.
        namespace: String,
        /// The comma-separated managing tenant IDs; `None` removes the annotation.
        value: Option<String>,
    },
    /// A RoleActivation's status, and the Events its change of phase publishes once written.
    ActivationStatus {
        /// The activation as cached.
        activation: Arc<RoleActivation>,
        /// The status to apply.
        status: RoleActivationStatus,
        /// The Events to publish once it is written.
        notices: Vec<Notice>,
    },
}

/// Which object a [`Record`] writes: a later record of the same object replaces a pending one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// An assignment's status.
    Assignment(ObjectRef<RegistrationAssignment>),
    /// A definition's status.
    Definition(ObjectRef<RegistrationDefinition>),
    /// A namespace's annotation.
    Namespace(String),
    /// An activation's status.
    Activation(ObjectRef<RoleActivation>),
}

impl Record {
    fn target(&self) -> Target {
        match self {
            Record::AssignmentStatus { assignment, .. } => Target::Assignment(reference(assignment.as_ref())),
            Record::DefinitionStatus { definition, .. } => Target::Definition(reference(definition.as_ref())),
            Record::ManagedByTenants { namespace, .. } => Target::Namespace(namespace.clone()),
            Record::ActivationStatus { activation, .. } => Target::Activation(reference(activation.as_ref())),
        }
    }
}

impl From<ObjectRef<RegistrationAssignment>> for Target {
    fn from(r: ObjectRef<RegistrationAssignment>) -> Target {
        Target::Assignment(r)
    }
}

impl From<ObjectRef<RegistrationDefinition>> for Target {
    fn from(r: ObjectRef<RegistrationDefinition>) -> Target {
        Target::Definition(r)
    }
}

fn reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectRef<K> {
    ObjectRef::new(object.meta().name.as_deref().unwrap_or_default())
        .within(object.meta().namespace.as_deref().unwrap_or_default())
}

/// The reconciles to run again when a deferred write failed: they compute it anew.
#[derive(Clone)]
pub struct Retrigger {
    /// The assignment reconciler's queue.
    pub assignments: UnboundedSender<ObjectRef<RegistrationAssignment>>,
    /// The definition reconciler's queue.
    pub definitions: UnboundedSender<ObjectRef<RegistrationDefinition>>,
    /// The namespace reconciler's queue (the `managed-by-tenants` annotation).
    pub namespaces: UnboundedSender<ObjectRef<super::caches::CachedNamespace>>,
    /// The activation reconciler's queue (SPEC §9).
    pub activations: UnboundedSender<ObjectRef<RoleActivation>>,
}

impl Retrigger {
    fn send(&self, target: Target) {
        // A closed channel means the controller is stopping: nothing left to retry.
        let _ = match target {
            Target::Assignment(r) => self.assignments.unbounded_send(r).is_ok(),
            Target::Definition(r) => self.definitions.unbounded_send(r).is_ok(),
            Target::Namespace(name) => self.namespaces.unbounded_send(ObjectRef::new(&name)).is_ok(),
            Target::Activation(r) => self.activations.unbounded_send(r).is_ok(),
        };
    }
}

/// The one writer of bookkeeping (see the module docs).
pub struct Bookkeeping {
    client: Client,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    grants: Arc<GrantActivity>,
    retrigger: Retrigger,
    /// Deferred records, the latest per object, oldest first.
    pending: Mutex<Deferred<Target, Record>>,
    /// Deferred writes in flight at once: as many as reconciles, so that a burst of grants
    /// that just ended does not become a burst of bookkeeping.
    parallel: usize,
    /// Wakes the drain when something is deferred.
    deferred: Notify,
    /// Whether the drain task runs (started by the first deferral).
    draining: AtomicBool,
    /// The last status given for each object, until the cache shows it ([`StatusNote`]).
    statuses: Mutex<HashMap<Target, StatusNote>>,
}

/// A status given to [`Bookkeeping`] (waiting or written) that the cache may not show yet.
struct StatusNote {
    /// The object's UID: a new object of the same name starts afresh.
    uid: Option<String>,
    status: serde_json::Value,
    at: std::time::Instant,
}

/// How long a status note stands in for the cache at most: far beyond a watch's delay.
const STATUS_LAPSE: Duration = Duration::from_secs(60);

/// Deferred records: the latest per target, in the order their targets were first deferred,
/// each with the time of that first deferral. Pure; [`Bookkeeping`]'s one drain task
/// empties it, so a wave of thousands of deferred writes costs a map entry each, not a task.
#[derive(Debug)]
pub struct Deferred<T, R> {
    records: HashMap<T, (R, tokio::time::Instant)>,
    order: VecDeque<T>,
}

impl<T, R> Default for Deferred<T, R> {
    fn default() -> Self {
        Deferred { records: HashMap::new(), order: VecDeque::new() }
    }
}

impl<T: Clone + Eq + std::hash::Hash, R> Deferred<T, R> {
    /// Defers `record` of `target` at `now`; a later record replaces a waiting one and keeps
    /// its place and its time. Whether the target was not waiting yet.
    pub fn insert(&mut self, target: T, record: R, now: tokio::time::Instant) -> bool {
        match self.records.get_mut(&target) {
            Some(waiting) => {
                waiting.0 = record;
                false
            }
            None => {
                self.records.insert(target.clone(), (record, now));
                self.order.push_back(target);
                true
            }
        }
    }

    /// Takes `target`'s record out (written now instead).
    pub fn remove(&mut self, target: &T) -> Option<R> {
        self.records.remove(target).map(|(record, _)| record)
    }

    /// When the oldest waiting record was deferred.
    pub fn oldest(&mut self) -> Option<tokio::time::Instant> {
        while let Some(front) = self.order.front() {
            match self.records.get(front) {
                Some((_, since)) => return Some(*since),
                None => {
                    self.order.pop_front();
                }
            }
        }
        None
    }

    /// Takes up to `n` records, oldest first.
    pub fn take(&mut self, n: usize) -> Vec<(T, R)> {
        let mut out = Vec::with_capacity(n.min(self.records.len()));
        while out.len() < n {
            let Some(target) = self.order.pop_front() else { break };
            if let Some((record, _)) = self.records.remove(&target) {
                out.push((target, record));
            }
        }
        if self.records.is_empty() {
            self.order = VecDeque::new();
        }
        out
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl Bookkeeping {
    /// A writer through `client`, publishing Events with `publisher`, at most `parallel`
    /// deferred writes at once.
    pub fn new(
        client: Client,
        publisher: Publisher,
        metrics: Arc<Metrics>,
        grants: Arc<GrantActivity>,
        retrigger: Retrigger,
        parallel: usize,
    ) -> Bookkeeping {
        Bookkeeping {
            client,
            publisher,
            metrics,
            grants,
            retrigger,
            pending: Mutex::default(),
            parallel: parallel.max(1),
            deferred: Notify::new(),
            draining: AtomicBool::new(false),
            statuses: Mutex::default(),
        }
    }

    /// The status of `object` as last given here, when the cached `object` does not show it
    /// yet; None when the cache is current (or nothing was given). Reconciles compare their
    /// new status with this rather than with the cached one (see the module docs).
    pub fn status_of<K, S>(&self, object: &K, cached: Option<&S>) -> Option<S>
    where
        K: Resource<DynamicType = ()>,
        S: serde::Serialize + serde::de::DeserializeOwned,
        Target: From<ObjectRef<K>>,
    {
        let target = Target::from(reference(object));
        let mut statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        let note = statuses.get(&target)?;
        let current = note.uid == object.meta().uid
            && note.at.elapsed() < STATUS_LAPSE
            && cached.and_then(|c| serde_json::to_value(c).ok()).as_ref() != Some(&note.status);
        if !current {
            statuses.remove(&target);
            return None;
        }
        serde_json::from_value(note.status.clone()).ok()
    }

    /// Notes the status `record` gives its object, if any.
    fn note_status(&self, record: &Record) {
        let (uid, status) = match record {
            Record::AssignmentStatus { assignment, status, .. } => {
                (assignment.meta().uid.clone(), serde_json::to_value(status))
            }
            Record::DefinitionStatus { definition, status, .. } => {
                (definition.meta().uid.clone(), serde_json::to_value(status))
            }
            _ => return,
        };
        let Ok(status) = status else { return };
        let mut statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        if statuses.len() >= 4096 {
            statuses.retain(|_, n| n.at.elapsed() < STATUS_LAPSE);
        }
        statuses.insert(record.target(), StatusNote { uid, status, at: std::time::Instant::now() });
    }

    /// A status that did not reach the API server: the cache decides again.
    fn drop_status(&self, target: &Target) {
        self.statuses.lock().unwrap_or_else(|p| p.into_inner()).remove(target);
    }

    /// Writes `record` now, replacing any deferred record of the same object. For what the
    /// user is waiting for with nothing granted meanwhile: a rejection and its reason.
    ///
    /// # Errors
    /// [`Error::Status`] or [`Error::Annotate`] when the API server refuses the write; the
    /// reconcile is then retried.
    pub async fn write_now(&self, record: Record) -> Result<(), Error> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&record.target());
        self.write_noted(record).await
    }

    /// Writes one record, noting its status first (a reconcile that runs meanwhile compares
    /// against it); a failed write forgets it again.
    async fn write_noted(&self, record: Record) -> Result<(), Error> {
        let target = record.target();
        self.note_status(&record);
        let result = self.write(record).await;
        if result.is_err() {
            self.drop_status(&target);
        }
        result
    }

    /// Writes `record` once RBAC writes pause ([`GrantActivity::quiet`]), or at the latest
    /// [`MAX_DEFERRAL`] after it was deferred. A later record of the same object replaces it
    /// while it waits. A failure is counted and the object's reconcile runs again a second
    /// later.
    pub fn defer(self: &Arc<Self>, record: Record) {
        let target = record.target();
        self.note_status(&record);
        let now = tokio::time::Instant::now();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(target, record, now);
        if !self.draining.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().drain());
        }
        self.deferred.notify_one();
    }

    /// The one task that writes deferred records: once RBAC writes pause, or once the oldest
    /// has waited [`MAX_DEFERRAL`], up to `parallel` at a time, oldest first.
    async fn drain(self: Arc<Self>) {
        loop {
            let oldest = self.pending.lock().unwrap_or_else(|p| p.into_inner()).oldest();
            let Some(oldest) = oldest else {
                self.deferred.notified().await;
                continue;
            };
            self.grants.quiet_until(oldest + MAX_DEFERRAL).await;
            let batch = self.pending.lock().unwrap_or_else(|p| p.into_inner()).take(self.parallel);
            let this: &Bookkeeping = &self;
            futures::stream::iter(batch)
                .for_each_concurrent(self.parallel, |(target, record)| async move {
                    if let Err(e) = this.write(record).await {
                        this.drop_status(&target);
                        warn!(error = %e, object = ?target, "bookkeeping write failed; reconciling again");
                        this.metrics.error("bookkeeping", e.metric_label());
                        let retrigger = this.retrigger.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            retrigger.send(target);
                        });
                    }
                })
                .await;
        }
    }

    /// Writes one record and publishes its Events; an object already gone is not an error.
    async fn write(&self, record: Record) -> Result<(), Error> {
        let written = match &record {
            Record::AssignmentStatus { assignment, status, .. } => self.status(assignment.as_ref(), status).await,
            Record::DefinitionStatus { definition, status, .. } => self.status(definition.as_ref(), status).await,
            Record::ManagedByTenants { namespace, value } => self.annotate(namespace, value.as_deref()).await,
            Record::ActivationStatus { activation, status, .. } => self.status(activation.as_ref(), status).await,
        };
        match written {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other?,
        }
        match record {
            Record::AssignmentStatus { assignment, notices, .. } => {
                for notice in &notices {
                    self.publish(assignment.as_ref(), notice).await;
                }
            }
            Record::DefinitionStatus { definition, notice: Some(notice), .. } => {
                self.publish(definition.as_ref(), &notice).await
            }
            Record::ActivationStatus { activation, notices, .. } => {
                for notice in &notices {
                    self.publish(activation.as_ref(), notice).await;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Server-side applies `status` to `object`'s status subresource.
    async fn status<K>(&self, object: &K, status: &impl serde::Serialize) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), object.meta().namespace.as_deref().unwrap_or_default());
        let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
        let params = PatchParams::apply(keys::FIELD_MANAGER).force();
        api.patch_status(&object.name_any(), &params, &Patch::Apply(&patch)).await.map_err(Error::Status)?;
        self.metrics.write(leak_kind(&K::kind(&())), "status");
        Ok(())
    }

    async fn annotate(&self, namespace: &str, value: Option<&str>) -> Result<(), Error> {
        // A merge patch, not an apply: it can never create a namespace that was just deleted.
        let api: Api<Namespace> = Api::all(self.client.clone());
        let patch = json!({"metadata": {"annotations": {keys::MANAGED_BY_TENANTS: value}}});
        let params = PatchParams { field_manager: Some(keys::FIELD_MANAGER.into()), ..Default::default() };
        self.metrics.write("Namespace", "patch");
        api.patch(namespace, &params, &Patch::Merge(&patch)).await.map_err(Error::Annotate)?;
        info!(%namespace, managed_by_tenants = ?value, "annotation updated");
        Ok(())
    }

    /// Publishes `notice` about `object` once RBAC writes pause, at the latest after
    /// [`MAX_DEFERRAL`], from a task of its own: for a revocation, which must not wait for the
    /// record of it (a mass deletion is a queue of revocations, and each one's Event would
    /// otherwise stand between the next one and the API server).
    pub fn publish_later<K: Resource<DynamicType = ()>>(self: &Arc<Self>, object: &K, notice: Notice) {
        let regarding = object.object_ref(&());
        let this = self.clone();
        tokio::spawn(async move {
            this.grants.quiet_until(tokio::time::Instant::now() + MAX_DEFERRAL).await;
            this.publish_to(&regarding, &notice).await;
        });
    }

    /// Publishes `notice` about `object`.
    pub async fn publish<K: Resource<DynamicType = ()>>(&self, object: &K, notice: &Notice) {
        self.publish_to(&object.object_ref(&()), notice).await;
    }

    /// Publishes `notice` about the object `regarding` points at. A failure to record is
    /// logged and counted, never a reason to fail a reconcile.
    pub async fn publish_to(&self, regarding: &ObjectReference, notice: &Notice) {
        let event = Event {
            type_: if notice.warning { EventType::Warning } else { EventType::Normal },
            reason: notice.reason.clone(),
            note: notice.note.clone(),
            action: notice.action.into(),
            secondary: None,
        };
        match self.publisher.publish(&event, regarding).await {
            Ok(()) => self.metrics.write("Event", "create"),
            Err(e) => {
                warn!(error = %e, reason = %notice.reason, "could not publish event");
                self.metrics.error("bookkeeping", "event");
            }
        }
    }
}

/// The kinds whose status is written, as metric labels.
fn leak_kind(kind: &str) -> &'static str {
    match kind {
        "RegistrationAssignment" => "RegistrationAssignment",
        "RegistrationDefinition" => "RegistrationDefinition",
        "RoleActivation" => "RoleActivation",
        _ => "other",
    }
}

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
    /// Marks an RBAC write in flight until the returned guard drops; bookkeeping waits
    /// meanwhile and for [`QUIET`] after.
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
        self.quiet_until(tokio::time::Instant::now() + MAX_DEFERRAL).await
    }

    /// Returns once RBAC writes have paused for [`QUIET`], or at `deadline`.
    pub async fn quiet_until(&self, deadline: tokio::time::Instant) {
        let mut changes = self.quiet.subscribe();
        let _ = tokio::time::timeout_at(deadline, changes.wait_for(|quiet| *quiet)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deferred_records_keep_the_first_place_and_time_and_the_latest_content() {
        let mut d = Deferred::default();
        let t0 = tokio::time::Instant::now();
        assert!(d.insert("a", 1, t0));
        assert!(d.insert("b", 1, t0 + Duration::from_secs(1)));
        assert!(!d.insert("a", 2, t0 + Duration::from_secs(2)), "a waits already");
        assert_eq!(d.oldest(), Some(t0), "a's first deferral counts");
        assert_eq!(d.take(1), [("a", 2)], "the latest record of the oldest target");
        assert_eq!(d.oldest(), Some(t0 + Duration::from_secs(1)));
        assert!(d.insert("c", 1, t0 + Duration::from_secs(3)));
        assert_eq!(d.remove(&"b"), Some(1), "written now instead");
        assert_eq!(d.oldest(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(d.len(), 1);
        assert_eq!(d.take(5), [("c", 1)]);
        assert!(d.is_empty());
        assert_eq!(d.oldest(), None);
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
