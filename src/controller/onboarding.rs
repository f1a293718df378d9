//! Onboarding at scale (docs/onboarding.md): the shell around [`crate::model::onboarding`].
//! Two reconciles, each as named steps:
//!
//! - [`reconcile_namespace`], per subscription namespace: 1 read (the caches) → 2 plan (pure,
//!   [`onboarding::plan`]) → 3 apply ([`apply::onboard`], the one home of the controller's
//!   writes) → 4 recount (the onboardings concerned count again). A new namespace is one small
//!   reconcile, whatever the number of namespaces: that is what keeps its latency flat.
//! - [`reconcile`], per onboarding, under its finalizer `policy.kubelighthouse.io/offboard`:
//!   1 fan out (a new generation sends every subscription namespace to the first reconcile)
//!   → 2 status (pure counts, [`onboarding::status`], at most once a second); on deletion,
//!   offboard: every namespace holding what it owns is reconciled without it, then the
//!   finalizer goes.
//!
//! Triggers ([`super::triggers`]): an onboarding's change → [`reconcile`]; a subscription
//! namespace's change, and a definition's or an assignment's in a namespace → the namespace.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use serde_json::json;
use tokio::time::Instant;
use tracing::{info, instrument};

use super::apply::{self, Onboarded};
use super::caches::CachedNamespace;
use super::context::Context;
use super::finalizer::{self, Step};
use super::Error;
use crate::api::{Onboarding, OnboardingStatus};
use crate::model::keys;
use crate::model::onboarding::{self, NamespaceFacts, Present, Source};
use crate::model::status::Notice;

/// Least time between two status computations of one onboarding (each reads every namespace).
pub const RECOUNT_EVERY: Duration = Duration::from_secs(1);

/// Namespaces offboarded at once when an onboarding is deleted: the API server is the limit
/// (each is two deletes, then the assignment's finalizer revokes), not this process.
const PARALLEL: usize = 64;

/// What the two reconciles share: their queues, and what each onboarding was last sent and
/// counted.
pub struct Shared {
    namespaces: UnboundedSender<ObjectRef<CachedNamespace>>,
    onboardings: UnboundedSender<ObjectRef<Onboarding>>,
    /// The generation of each onboarding (by uid) already sent to every namespace.
    fanned_out: Mutex<HashMap<String, i64>>,
    /// When each onboarding (by name) was last counted.
    counted: Mutex<HashMap<String, Instant>>,
}

impl Shared {
    /// Sends to `namespaces` (the namespace reconcile's queue) and `onboardings`.
    pub fn new(
        namespaces: UnboundedSender<ObjectRef<CachedNamespace>>,
        onboardings: UnboundedSender<ObjectRef<Onboarding>>,
    ) -> Shared {
        Shared { namespaces, onboardings, fanned_out: Mutex::default(), counted: Mutex::default() }
    }

    fn namespace(&self, name: &str) {
        let _ = self.namespaces.unbounded_send(ObjectRef::new(name));
    }

    fn recount(&self, name: &str) {
        let _ = self.onboardings.unbounded_send(ObjectRef::new(name));
    }
}

/// The namespace reconcile.
///
/// # Errors
/// [`Error::Onboard`] or [`Error::Offboard`]: a write failed (the others went ahead); retried.
pub async fn reconcile_namespace(ns: Arc<CachedNamespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("onboarding-namespace");
    ctx.caches_synced().await?;
    sync_namespace(&ns, &ctx, Pass::Whole).await?;
    Ok(Action::await_change())
}

/// What a namespace sync writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// The whole plan.
    Whole,
    /// Only the removal of assignments: what revokes access. Offboarding runs it over every
    /// namespace first, so that the last namespace's access does not wait for every other
    /// namespace's definition to be deleted.
    Revoke,
}

/// Steps 1-4 of the namespace reconcile.
#[instrument(skip_all, fields(namespace = %ns.name_any()))]
async fn sync_namespace(ns: &CachedNamespace, ctx: &Context, pass: Pass) -> Result<Onboarded, Error> {
    // 1. Read.
    let name = ns.name_any();
    let onboardings = ctx.caches.onboardings.state();
    let definitions = ctx.caches.definitions_in(&name);
    let assignments = ctx.caches.assignments_in(&name);
    let present: Vec<Present<'_>> = definitions
        .iter()
        .map(|d| Present::definition(d))
        .chain(assignments.iter().map(|a| Present::assignment(a)))
        .collect();
    if onboardings.is_empty() && present.iter().all(|p| p.owner.is_none()) {
        return Ok(Onboarded::default());
    }
    let labels = ns.label_map();
    let facts = NamespaceFacts { name: &name, labels: &labels, terminating: ns.info.terminating };
    let sources: Vec<Source<'_>> = onboardings.iter().filter_map(|o| Source::of(o)).collect();
    // 2. Plan.
    let mut plan = onboarding::plan(&sources, &facts, &present);
    if pass == Pass::Revoke {
        plan.definitions.clear();
        plan.assignments.clear();
        plan.removals.retain(|r| matches!(r, onboarding::Removal::Assignment(_)));
    }
    // 3. Apply.
    let owned_uid = |object: &str, definition: bool| {
        let meta = if definition {
            definitions.iter().find(|d| d.name_any() == object).map(|d| d.metadata.clone())
        } else {
            assignments.iter().find(|a| a.name_any() == object).map(|a| a.metadata.clone())
        }?;
        onboarding::owner_uid(&meta).and(meta.uid.clone())
    };
    let applied =
        if plan.is_empty() { Ok(Onboarded::default()) } else { apply::onboard(ctx, &name, &plan, owned_uid).await };
    // 4. Recount: whatever moved here moves the counts of the onboardings.
    for o in &onboardings {
        ctx.onboarding.recount(&o.name_any());
    }
    applied
}

/// The onboarding reconcile.
///
/// # Errors
/// The step that failed ([`Error`]); the reconcile is retried.
pub async fn reconcile(object: Arc<Onboarding>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("onboarding");
    ctx.caches_synced().await?;
    let api: Api<Onboarding> = Api::all(ctx.client.clone());
    finalizer::run(&api, onboarding::FINALIZER, object, |step| async {
        match step {
            Step::Apply(o) => follow(&o, &ctx).await,
            Step::Cleanup(o) => offboard(&o, &ctx).await,
        }
    })
    .await
}

/// Fan out, then status.
#[instrument(skip_all, fields(onboarding = %object.name_any()))]
async fn follow(object: &Onboarding, ctx: &Context) -> Result<Action, Error> {
    fan_out(object, ctx);
    write_status(object, ctx).await
}

/// Step 1: a generation not yet sent goes to every subscription namespace.
fn fan_out(object: &Onboarding, ctx: &Context) {
    let (Some(uid), Some(generation)) = (object.uid(), object.metadata.generation) else { return };
    let sent = ctx.onboarding.fanned_out.lock().unwrap_or_else(|p| p.into_inner()).insert(uid, generation);
    if sent == Some(generation) {
        return;
    }
    let subscriptions: Vec<String> =
        ctx.caches.namespaces.state().iter().filter(|ns| ns.labels.is_some()).map(|ns| ns.name_any()).collect();
    info!(onboarding = %object.name_any(), generation, namespaces = subscriptions.len(), "onboarding every matching namespace");
    for ns in subscriptions {
        ctx.onboarding.namespace(&ns);
    }
}

/// Step 2: the counts over every namespace, written when they changed; at most once every
/// [`RECOUNT_EVERY`] (a burst of namespace reconciles asks for many counts).
async fn write_status(object: &Onboarding, ctx: &Context) -> Result<Action, Error> {
    let name = object.name_any();
    let now = Instant::now();
    {
        let mut counted = ctx.onboarding.counted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = counted.get(&name) {
            let next = *last + RECOUNT_EVERY;
            if next > now {
                return Ok(Action::requeue(next - now));
            }
        }
        counted.insert(name.clone(), now);
    }
    let Some(source) = Source::of(object) else { return Err(Error::MissingField("metadata.uid")) };
    let selector_error = onboarding::selector(&object.spec.namespace_selector).err();
    let status = count(&source, selector_error.as_deref(), object.metadata.generation, ctx);
    let old = object.status.clone().unwrap_or_default();
    if onboarding::same_status(&status, &old) {
        return Ok(Action::await_change());
    }
    let status = with_transition_times(status, &old);
    let api: Api<Onboarding> = Api::all(ctx.client.clone());
    let patch = json!({"apiVersion": onboarding::API_VERSION, "kind": onboarding::KIND, "status": status});
    api.patch_status(&name, &PatchParams::apply(keys::FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(Error::Status)?;
    ctx.metrics.write("Onboarding", "status");
    let reason = |s: &OnboardingStatus| s.conditions.first().map(|c| c.reason.clone());
    if reason(&status) != reason(&old) {
        if let Some(ready) = status.conditions.first() {
            let warning = ready.reason == "InvalidSelector";
            let notice =
                Notice { warning, reason: ready.reason.clone(), note: Some(ready.message.clone()), action: "Onboard" };
            ctx.bookkeeping.publish(object, &notice).await;
        }
    }
    Ok(Action::await_change())
}

/// The status over every namespace in the cache.
fn count(
    source: &Source<'_>,
    selector_error: Option<&str>,
    generation: Option<i64>,
    ctx: &Context,
) -> OnboardingStatus {
    let namespaces = ctx.caches.namespaces.state();
    let held: Vec<_> = namespaces
        .iter()
        .filter(|ns| ns.labels.is_some())
        .map(|ns| {
            let name = ns.name_any();
            (
                ns.label_map(),
                ctx.caches.definitions_in(&name),
                ctx.caches.assignments_in(&name),
                name,
                ns.info.terminating,
            )
        })
        .collect();
    onboarding::status(
        source,
        selector_error,
        generation,
        held.iter().map(|(labels, definitions, assignments, name, terminating)| {
            let present = definitions
                .iter()
                .map(|d| Present::definition(d))
                .chain(assignments.iter().map(|a| Present::assignment(a)))
                .collect();
            (NamespaceFacts { name, labels, terminating: *terminating }, present)
        }),
    )
}

/// Keeps the Ready condition's transition time while its status holds.
fn with_transition_times(mut status: OnboardingStatus, old: &OnboardingStatus) -> OnboardingStatus {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    for c in &mut status.conditions {
        let before = old.conditions.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match before {
            Some(b) if b.status == c.status => b.last_transition_time.clone().or(Some(now.clone())),
            _ => Some(now.clone()),
        };
    }
    status
}

/// Deletion: every namespace holding what the onboarding owns is reconciled without it (its
/// cached copy is being deleted, so it wants nothing), at most [`PARALLEL`] at once: first
/// the assignments everywhere (their finalizers revoke), then the rest.
async fn offboard(object: &Onboarding, ctx: &Context) -> Result<Action, Error> {
    let uid = object.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let owned = |meta: &kube::api::ObjectMeta| onboarding::owner_uid(meta) == Some(uid.as_str());
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    namespaces
        .extend(ctx.caches.definitions.state().iter().filter(|d| owned(&d.metadata)).filter_map(|d| d.namespace()));
    namespaces
        .extend(ctx.caches.assignments.state().iter().filter(|a| owned(&a.metadata)).filter_map(|a| a.namespace()));
    info!(onboarding = %object.name_any(), namespaces = namespaces.len(), "offboarding");
    let namespaces: Vec<Arc<CachedNamespace>> =
        namespaces.iter().filter_map(|name| ctx.caches.namespaces.get(&ObjectRef::new(name))).collect();
    // Not in batches: a batch would wait for its slowest namespace.
    let slots = tokio::sync::Semaphore::new(PARALLEL);
    let mut results: Vec<Result<Onboarded, Error>> = Vec::with_capacity(2 * namespaces.len());
    for pass in [Pass::Revoke, Pass::Whole] {
        let slots = &slots;
        results.extend(
            futures::future::join_all(namespaces.iter().map(|ns| async move {
                let _slot = slots.acquire().await;
                sync_namespace(ns, ctx, pass).await
            }))
            .await,
        );
    }
    ctx.onboarding.fanned_out.lock().unwrap_or_else(|p| p.into_inner()).remove(&uid);
    ctx.onboarding.counted.lock().unwrap_or_else(|p| p.into_inner()).remove(&object.name_any());
    for r in results {
        r?;
    }
    Ok(Action::await_change())
}
