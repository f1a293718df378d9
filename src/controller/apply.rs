//! Apply step: make the cluster hold exactly the desired Roles and RoleBindings of one
//! assignment. Server-side apply under one field manager, only for objects whose cached
//! state differs (and that were not just written: [`super::expectations`]); then prune, by
//! the assignment's UID label, whatever is no longer desired. A failed write stops nothing:
//! every phase runs to its end, the prune included, and the failures are returned for status
//! and the Event ([`Applied`]). An object at one of our names that the assignment did not
//! write is replaced, never adopted.

use std::collections::BTreeSet;

use futures::{stream, StreamExt};

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, info, warn};

use super::context::Context;
use super::materialized::{binding_digest, held, role_digest, role_ref_digest, Digest, MaterializedCache};
use super::Error;
use crate::model::desired::DesiredRbac;
use crate::model::keys;
use crate::model::status::WriteFailure;

/// What one sync changed, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Objects applied (created or changed).
    pub applied: usize,
    /// Objects deleted.
    pub deleted: usize,
}

/// One write of step 4 that failed. The others of the sync went ahead all the same: a
/// failed write never holds back the removal of access no longer wanted.
#[derive(Debug)]
pub struct Failure {
    /// What failed, for status and the Event (pure: [`WriteFailure`]).
    pub what: WriteFailure,
    /// The error the reconcile fails with, so that it is retried.
    pub error: Error,
}

/// What step 4 did: the writes that went through, those that failed, and where the
/// assignment's RBAC is in force afterwards.
#[derive(Debug, Default)]
pub struct Applied {
    /// Every object of the assignment was to go (a rejection), rather than a sync to the
    /// desired RBAC.
    pub revoked_all: bool,
    /// Writes that went through.
    pub stats: SyncStats,
    /// Writes that failed, each with the API server's answer.
    pub failures: Vec<Failure>,
    /// Namespaces where a RoleBinding of the assignment is in force after the step, sorted;
    /// None when it could not be listed.
    pub in_force: Option<BTreeSet<String>>,
}

impl Applied {
    /// The failures as status reports them.
    pub fn write_failures(&self) -> Vec<WriteFailure> {
        self.failures.iter().map(|f| f.what.clone()).collect()
    }

    /// Ok when every write went through; else the first failure's error, so that the
    /// reconcile is retried (with backoff) until the obstacle is gone.
    ///
    /// # Errors
    /// The first failed write's [`Error`].
    pub fn into_result(self) -> Result<SyncStats, Error> {
        match self.failures.into_iter().next() {
            Some(first) => Err(first.error),
            None => Ok(self.stats),
        }
    }

    fn failed(&mut self, kind: &str, (namespace, name): &(String, String), revoke: bool, error: Error) {
        let detail = match &error {
            Error::Apply(e) | Error::Prune(e) | Error::Revoke(e) => api_message(e),
            other => other.to_string(),
        };
        let what =
            WriteFailure { kind: kind.into(), namespace: namespace.clone(), name: name.clone(), revoke, error: detail };
        warn!(%what, "RBAC write failed; the other writes go ahead");
        self.failures.push(Failure { what, error });
    }

    /// Notes the results of one phase; the keys whose write failed.
    fn absorb(
        &mut self,
        kind: &str,
        revoke: bool,
        results: Vec<((String, String), Result<impl Into<usize>, Error>)>,
    ) -> BTreeSet<(String, String)> {
        let mut failed = BTreeSet::new();
        for (key, result) in results {
            match result {
                Ok(wrote) if revoke => self.stats.deleted += wrote.into(),
                Ok(wrote) => self.stats.applied += wrote.into(),
                Err(error) => {
                    self.failed(kind, &key, revoke, error);
                    failed.insert(key);
                }
            }
        }
        failed
    }
}

/// The API server's own words for a failed request (its `Status` message), else the error.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// Which step a delete belongs to, for the error it fails with.
type Step = fn(kube::Error) -> Error;

type ObjectKey = (String, String);

fn key<K: Resource>(object: &K) -> ObjectKey {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// What the controller materializes: Roles and RoleBindings.
pub(super) trait Materialized:
    k8s_openapi::Resource
    + Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
{
}

impl<K> Materialized for K where
    K: k8s_openapi::Resource
        + Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
{
}

/// Applies `object` of the assignment with `uid` unless the cache (`cache`) or a write not
/// yet seen there already holds content `digest`; whether it wrote. An object at its name
/// that the assignment did not write is replaced first ([`evict_foreign`]).
async fn apply_unless_current<K>(
    ctx: &Context,
    uid: &str,
    cache: &MaterializedCache,
    object: &K,
    digest: Digest,
) -> Result<bool, Error>
where
    K: Materialized,
{
    let (namespace, name) = key(object);
    let cached = cache.get(&namespace, &name);
    let ours = cached.as_ref().is_some_and(|c| c.owner_uid.as_deref() == Some(uid) && !c.held);
    if ours && cached.as_ref().is_some_and(|c| c.digest == digest) {
        return Ok(false);
    }
    let before = cached.and_then(|c| c.resource_version.clone());
    if ctx.expectations.in_flight(K::KIND, &namespace, &name, before.as_deref(), digest) {
        return Ok(false);
    }
    if !ours {
        evict_foreign::<K>(ctx, uid, &namespace, &name).await?;
    }
    // Noted before it is sent: a revocation must find it even if no answer comes back.
    ctx.expectations.sending(K::KIND, &namespace, &name, uid);
    let written = server_side_apply(ctx, object).await?;
    ctx.expectations.sent(K::KIND, cache, &namespace, &name, written.clone());
    ctx.expectations.wrote(K::KIND, cache, &namespace, &name, before, written, digest);
    Ok(true)
}

/// Applies `object`; the resourceVersion the API server gave it.
async fn server_side_apply<K>(ctx: &Context, object: &K) -> Result<Option<String>, Error>
where
    K: Materialized,
{
    let (namespace, name) = key(object);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = PatchParams::apply(keys::FIELD_MANAGER).force();
    let _grant = ctx.grants.write();
    let applied = api.patch(&name, &params, &Patch::Apply(object)).await.map_err(Error::Apply)?;
    ctx.metrics.write(<K as k8s_openapi::Resource>::KIND, "apply");
    debug!(kind = K::kind(&()).as_ref(), %namespace, %name, "applied");
    Ok(applied.meta().resource_version.clone())
}

/// Makes room at one of the assignment's deterministic names: an object there that does not
/// carry this assignment's `assignment-uid` label, or that someone holds with finalizers or
/// owner references (the controller sets neither), was not written by it (someone created it
/// under the predictable name, or it is left from another assignment), and is never adopted
/// with its subjects, roleRef, finalizers or owners. It is deleted (only that object: the
/// precondition is its UID), so that the apply creates ours. The cache holds only objects
/// with our managed-by label, so a name it does not know as ours is asked of the API server.
///
/// # Errors
/// [`Error::Apply`] when the read, the delete or the release of its finalizers fails.
async fn evict_foreign<K>(ctx: &Context, uid: &str, namespace: &str, name: &str) -> Result<(), Error>
where
    K: Materialized,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(live) = api.get_metadata_opt(name).await.map_err(Error::Apply)? else {
        return Ok(());
    };
    let owner = live.labels().get(keys::ASSIGNMENT_UID).cloned();
    if owner.as_deref() == Some(uid) && !held(&live.metadata) {
        // Ours, not in the cache yet.
        return Ok(());
    }
    warn!(kind = K::KIND, %namespace, %name, ?owner, finalizers = ?live.metadata.finalizers, "an object the assignment did not write holds its name: replacing it");
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: live.metadata.uid.clone(), resource_version: None }),
        ..DeleteParams::default()
    };
    ctx.metrics.write(K::KIND, "delete");
    ctx.expectations.forget(K::KIND, namespace, name);
    let _grant = ctx.grants.write();
    delete_for_good(&api, name, &params).await.map(|_| ()).map_err(Error::Apply)
}

/// Deletes `name` and sees that it goes: the controller never sets finalizers on what it
/// materializes, so any on an object at one of its names were put there by someone else, to
/// keep the object (and the access it grants) after its deletion; they are taken off (the
/// object's UID, in the patch, pins it). Whether it was there.
pub(super) async fn delete_for_good<K>(api: &Api<K>, name: &str, params: &DeleteParams) -> Result<bool, kube::Error>
where
    K: Materialized,
{
    let deleted = match api.delete(name, params).await {
        Ok(deleted) => deleted,
        // Already gone, or its namespace is being deleted with it.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
        Err(e) => return Err(e),
    };
    let Some(held_back) = deleted.left().filter(|o| o.meta().finalizers.as_ref().is_some_and(|f| !f.is_empty())) else {
        return Ok(true);
    };
    warn!(kind = K::KIND, namespace = ?held_back.meta().namespace, %name, finalizers = ?held_back.meta().finalizers, "finalizers someone else set held a deletion back: taking them off");
    let release = serde_json::json!({"metadata": {"uid": held_back.meta().uid, "finalizers": null}});
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&release)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
        Err(e) => Err(e),
    }
}

async fn delete<K>(ctx: &Context, namespace: &str, name: &str, step: Step) -> Result<(), Error>
where
    K: Materialized,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.metrics.write(<K as k8s_openapi::Resource>::KIND, "delete");
    ctx.expectations.forget(K::KIND, namespace, name);
    let _grant = ctx.grants.write();
    if delete_for_good(&api, name, &DeleteParams::default()).await.map_err(step)? {
        info!(kind = K::kind(&()).as_ref(), %namespace, %name, "revoked");
    }
    Ok(())
}

/// Writes of one phase in flight at once. Within a phase the objects are independent, so the
/// access of an assignment spanning many namespaces takes two round trips (Roles, then
/// bindings) rather than one per object.
const PARALLEL_WRITES: usize = 8;

/// Runs the writes of one phase, [`PARALLEL_WRITES`] at a time, each to completion (so every
/// write that happened is noted in the expectations); each one's result, by key. A failed
/// write stops nothing.
async fn phase<Fut, T>(writes: Vec<(ObjectKey, Fut)>) -> Vec<(ObjectKey, Result<T, Error>)>
where
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    stream::iter(writes.into_iter().map(|(key, write)| async move { (key, write.await) }))
        .buffer_unordered(PARALLEL_WRITES)
        .collect()
        .await
}

/// Brings the assignment with `uid` to exactly `desired`, as far as the API server lets it.
/// Four phases, each run to the end whatever failed before: Roles, then the bindings whose
/// Role was written (a binding never goes ahead of its Role), then the prune of bindings no
/// longer wanted, then of Roles. So access that stays never has a gap, and access that
/// should go goes even when a write of new access fails (a quota, a name taken, a webhook):
/// removal never waits for creation.
///
/// Returns what went through, each failed write with its error, and where RBAC of the
/// assignment is in force afterwards.
pub async fn sync(ctx: &Context, uid: &str, desired: &DesiredRbac) -> Applied {
    let caches = &ctx.caches;
    let mut applied = Applied::default();
    let roles: Vec<_> = desired
        .roles
        .iter()
        .map(|role| (key(role), apply_unless_current(ctx, uid, &caches.roles, role, role_digest(role))))
        .collect();
    let failed_roles = applied.absorb(<Role as k8s_openapi::Resource>::KIND, false, phase(roles).await);
    let role_failed = |b: &RoleBinding| {
        b.role_ref.kind == <Role as k8s_openapi::Resource>::KIND
            && failed_roles.contains(&(b.namespace().unwrap_or_default(), b.role_ref.name.clone()))
    };
    let (held_back, bindings): (Vec<&RoleBinding>, Vec<&RoleBinding>) =
        desired.bindings.iter().partition(|b| role_failed(b));
    let bindings: Vec<_> = bindings.into_iter().map(|b| (key(b), apply_binding(ctx, uid, b))).collect();
    let mut not_written = applied.absorb(<RoleBinding as k8s_openapi::Resource>::KIND, false, phase(bindings).await);
    not_written.extend(held_back.iter().map(|b| key(*b)));

    let wanted_bindings: BTreeSet<_> = desired.bindings.iter().map(key).collect();
    let wanted_roles: BTreeSet<_> = desired.roles.iter().map(key).collect();
    let stale = |cache: &MaterializedCache, wanted: &BTreeSet<ObjectKey>| {
        let mut stale: Vec<ObjectKey> = cache
            .of_owner(uid)
            .iter()
            .map(|r| (r.namespace().to_string(), r.name().to_string()))
            .filter(|k| !wanted.contains(k))
            .collect();
        stale.sort();
        stale
    };
    let lingering = applied.absorb(
        <RoleBinding as k8s_openapi::Resource>::KIND,
        true,
        delete_all::<RoleBinding>(ctx, stale(&caches.bindings, &wanted_bindings), Error::Prune).await,
    );
    // Roles go whatever happened to their bindings: a binding whose Role is gone grants nothing.
    applied.absorb(
        <Role as k8s_openapi::Resource>::KIND,
        true,
        delete_all::<Role>(ctx, stale(&caches.roles, &wanted_roles), Error::Prune).await,
    );

    // In force: every desired binding written or current, or failed over one of ours that
    // was already there; and the bindings that should have gone but did not.
    let ours = |k: &ObjectKey| caches.bindings.get(&k.0, &k.1).is_some_and(|r| r.owner_uid.as_deref() == Some(uid));
    let mut in_force: BTreeSet<String> = wanted_bindings
        .iter()
        .filter(|k| !not_written.contains(*k) || ours(k))
        .map(|(namespace, _)| namespace.clone())
        .collect();
    in_force.extend(lingering.into_iter().map(|(namespace, _)| namespace));
    applied.in_force = Some(in_force);
    applied
}

/// Applies `binding` of the assignment with `uid` unless current, replacing an object of
/// ours with another roleRef (which is immutable); whether it wrote.
async fn apply_binding(ctx: &Context, uid: &str, binding: &RoleBinding) -> Result<bool, Error> {
    let (ns, name) = key(binding);
    let cached = ctx.caches.bindings.get(&ns, &name);
    let ours = cached.as_ref().is_some_and(|c| c.owner_uid.as_deref() == Some(uid) && !c.held);
    if ours && cached.is_some_and(|c| c.role_ref.is_some_and(|r| r != role_ref_digest(&binding.role_ref))) {
        delete::<RoleBinding>(ctx, &ns, &name, Error::Apply).await?;
    }
    apply_unless_current(ctx, uid, &ctx.caches.bindings, binding, binding_digest(binding)).await
}

/// Deletes the objects at `keys` (namespace, name) as one phase; each one's result.
async fn delete_all<K: Materialized>(
    ctx: &Context,
    keys: Vec<ObjectKey>,
    step: Step,
) -> Vec<(ObjectKey, Result<bool, Error>)> {
    let deletes: Vec<_> = keys
        .into_iter()
        .map(|k| {
            let (namespace, name) = k.clone();
            let write = async move { delete::<K>(ctx, &namespace, &name, step).await.map(|()| true) };
            (k, write)
        })
        .collect();
    phase(deletes).await
}

/// Revokes everything the assignment with `uid` owns: in each namespace where it may hold
/// something, one DeleteCollection by its `assignment-uid` label per kind, RoleBindings in
/// every namespace first (their deletion is what ends the access), then Roles whatever
/// happened to the bindings (a binding whose Role is gone grants nothing). The namespaces
/// come from the cache and from the writes still in flight ([`super::expectations`]), not
/// from a live list across the cluster: every object the controller wrote is in one or the
/// other, and the label selector, evaluated by the API server, deletes whatever of the
/// assignment a namespace holds, cached or not. (An object the cache missed in a namespace
/// it does not name is an orphan once the assignment is gone: the sweep deletes it when the
/// watch shows it.) Every namespace is tried; the failures are returned.
pub async fn revoke_all(ctx: &Context, uid: &str) -> Applied {
    let mut applied = Applied { revoked_all: true, in_force: Some(BTreeSet::new()), ..Applied::default() };
    let namespaces = revocation_namespaces(ctx, uid);
    let lingering = applied.absorb(
        <RoleBinding as k8s_openapi::Resource>::KIND,
        true,
        delete_by_label::<RoleBinding>(ctx, uid, &namespaces).await,
    );
    applied.in_force = Some(lingering.into_iter().map(|(namespace, _)| namespace).collect());
    applied.absorb(<Role as k8s_openapi::Resource>::KIND, true, delete_by_label::<Role>(ctx, uid, &namespaces).await);
    applied
}

/// Revokes the access of the assignment with `uid` and nothing else: its RoleBindings, one
/// DeleteCollection per namespace (see [`revoke_all`]). For a revocation in bulk that must
/// not wait for the assignment's own reconcile (an onboarding deleted): its Roles, which
/// grant nothing without a binding, are left to that reconcile. How many went.
///
/// # Errors
/// [`Error::Revoke`], the first namespace whose bindings could not be deleted (the others
/// were tried).
pub async fn revoke_access(ctx: &Context, uid: &str) -> Result<usize, Error> {
    let namespaces = revocation_namespaces(ctx, uid);
    let mut applied = Applied::default();
    applied.absorb(
        <RoleBinding as k8s_openapi::Resource>::KIND,
        true,
        delete_by_label::<RoleBinding>(ctx, uid, &namespaces).await,
    );
    applied.into_result().map(|stats| stats.deleted)
}

/// Where the assignment with `uid` may hold RBAC: the namespaces of its cached Roles and
/// RoleBindings and of its writes in flight, sorted.
fn revocation_namespaces(ctx: &Context, uid: &str) -> Vec<String> {
    let mut namespaces = ctx.expectations.namespaces_in_flight(uid);
    for cache in [&ctx.caches.roles, &ctx.caches.bindings] {
        namespaces.extend(cache.of_owner(uid).iter().map(|r| r.namespace().to_string()));
    }
    namespaces.into_iter().collect()
}

/// One DeleteCollection of kind `K` by the `assignment-uid` label of `uid` in each of
/// `namespaces`, [`PARALLEL_WRITES`] at a time; each namespace's result, keyed by
/// (namespace, ""): how many objects went there.
async fn delete_by_label<K: Materialized>(
    ctx: &Context,
    uid: &str,
    namespaces: &[String],
) -> Vec<(ObjectKey, Result<usize, Error>)> {
    let deletes: Vec<_> = namespaces
        .iter()
        .map(|namespace| {
            let key = (namespace.clone(), String::new());
            (key, delete_collection::<K>(ctx, uid, namespace))
        })
        .collect();
    phase(deletes).await
}

/// Deletes every object of kind `K` labelled with `uid` in `namespace` in one request, then
/// takes off finalizers someone else put on them (as [`delete_for_good`] does for one).
/// How many were there.
async fn delete_collection<K: Materialized>(ctx: &Context, uid: &str, namespace: &str) -> Result<usize, Error> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = ListParams::default().labels(&format!("{}={uid}", keys::ASSIGNMENT_UID));
    ctx.metrics.write(K::KIND, "deletecollection");
    let deleted = {
        let _grant = ctx.grants.write();
        match api.delete_collection(&DeleteParams::default(), &selector).await {
            Ok(deleted) => deleted,
            // The namespace is gone, or is being deleted with everything in it.
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(0),
            Err(e) => return Err(Error::Revoke(e)),
        }
    };
    ctx.expectations.revoked(uid, namespace);
    let items = deleted.left().map(|list| list.items).unwrap_or_default();
    for object in &items {
        let name = object.name_any();
        ctx.expectations.forget(K::KIND, namespace, &name);
        info!(kind = K::KIND, %namespace, %name, "revoked");
        if object.meta().finalizers.as_ref().is_some_and(|f| !f.is_empty()) {
            warn!(kind = K::KIND, %namespace, %name, finalizers = ?object.meta().finalizers, "finalizers someone else set held a deletion back: taking them off");
            let release = serde_json::json!({"metadata": {"uid": object.meta().uid, "finalizers": null}});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&release)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::Revoke(e)),
            }
        }
    }
    Ok(items.len())
}

// ---------------------------------------------------------------------------------------------
// Onboarding at scale (docs/onboarding.md): the definitions and assignments an `Onboarding`
// owns are written here too, so that one module holds every write the controller makes on a
// customer's behalf. They are ordinary delegation objects: the assignment reconcile then
// materializes (and validates, guardrails included) what they grant, as for any other.

/// What one namespace's onboarding plan wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Onboarded {
    /// Definitions and assignments created or brought back to the template.
    pub written: usize,
    /// Definitions and assignments removed.
    pub removed: usize,
    /// Creates refused because an object of that name appeared meanwhile (left alone; the
    /// next reconcile sees it and skips the namespace).
    pub taken: usize,
}

/// Writes one namespace's onboarding `plan`: creates what is missing (a create, never an
/// apply: it cannot take over an object someone made meanwhile under the same name), brings
/// an owned object back to its template (a server-side apply pinned to the owned object's
/// `uid`, from `owned_uid`), then removes what is no longer wanted, assignments first (their
/// finalizer revokes the access at once). Every write is tried; the first failure is returned
/// after the others.
///
/// # Errors
/// [`Error::Onboard`] for a failed create or apply, [`Error::Offboard`] for a failed delete.
pub async fn onboard(
    ctx: &Context,
    namespace: &str,
    plan: &crate::model::onboarding::Plan,
    owned_uid: impl Fn(&str, bool) -> Option<String>,
) -> Result<Onboarded, Error> {
    use crate::api::{RegistrationAssignment, RegistrationDefinition};
    use crate::model::onboarding::Removal;
    let mut done = Onboarded::default();
    let mut first_error = None;
    let definitions: Api<RegistrationDefinition> = Api::namespaced(ctx.client.clone(), namespace);
    let assignments: Api<RegistrationAssignment> = Api::namespaced(ctx.client.clone(), namespace);
    for d in &plan.definitions {
        let result = write_owned(&definitions, d, owned_uid(&d.name_any(), true)).await;
        note(&mut done, &mut first_error, result, "RegistrationDefinition", ctx);
    }
    for a in &plan.assignments {
        let result = write_owned(&assignments, a, owned_uid(&a.name_any(), false)).await;
        note(&mut done, &mut first_error, result, "RegistrationAssignment", ctx);
    }
    for removal in &plan.removals {
        let (kind, result) = match removal {
            Removal::Assignment(name) => {
                ("RegistrationAssignment", remove_assignment(ctx, &assignments, namespace, name).await)
            }
            Removal::Definition(name) => ("RegistrationDefinition", remove_owned(&definitions, name).await),
        };
        match result {
            Ok(removed) => {
                done.removed += usize::from(removed);
                ctx.metrics.write(kind, "delete");
            }
            Err(e) => {
                warn!(%namespace, kind, error = %e, "removing an onboarding's object failed; the others go ahead");
                first_error.get_or_insert(Error::Offboard(e));
            }
        }
    }
    if done != Onboarded::default() {
        info!(%namespace, written = done.written, removed = done.removed, taken = done.taken, "onboarding synced");
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// The outcome of one create or apply of [`onboard`]: written, or the name was taken.
enum Wrote {
    Written,
    Taken,
}

fn note(
    done: &mut Onboarded,
    first: &mut Option<Error>,
    result: Result<Wrote, kube::Error>,
    kind: &'static str,
    ctx: &Context,
) {
    match result {
        Ok(Wrote::Written) => {
            done.written += 1;
            ctx.metrics.write(kind, "apply");
        }
        Ok(Wrote::Taken) => done.taken += 1,
        Err(e) => {
            warn!(kind, error = %e, "writing an onboarding's object failed; the others go ahead");
            first.get_or_insert(Error::Onboard(e));
        }
    }
}

/// Creates `object`, or, when the onboarding already owns the object at its name (`uid`),
/// applies it pinned to that uid.
async fn write_owned<K>(api: &Api<K>, object: &K, uid: Option<String>) -> Result<Wrote, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    match uid {
        None => match api
            .create(
                &kube::api::PostParams { field_manager: Some(keys::FIELD_MANAGER.into()), ..Default::default() },
                object,
            )
            .await
        {
            Ok(_) => Ok(Wrote::Written),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Wrote::Taken),
            Err(e) => Err(e),
        },
        Some(uid) => {
            let mut pinned = object.clone();
            // A uid in an apply is a precondition: someone else's object at the name is a 409.
            pinned.meta_mut().uid = Some(uid);
            let params = PatchParams::apply(keys::FIELD_MANAGER).force();
            match api.patch(&object.name_any(), &params, &Patch::Apply(&pinned)).await {
                Ok(_) => Ok(Wrote::Written),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Wrote::Taken),
                Err(e) => Err(e),
            }
        }
    }
}

/// Deletes the assignment `name`, then revokes its access at once (its RoleBindings, by
/// label: [`revoke_access`]) rather than waiting for its finalizer's turn in the assignment
/// queue, which an onboarding's deletion fills with a thousand of them. Deleted first, so
/// that its own reconcile cannot grant again in between (a deleted assignment is only
/// cleaned up); its finalizer then removes the Roles and records the revocation. Whether it
/// was there.
async fn remove_assignment(
    ctx: &Context,
    api: &Api<crate::api::RegistrationAssignment>,
    namespace: &str,
    name: &str,
) -> Result<bool, kube::Error> {
    let uid = ctx.caches.assignments_in(namespace).into_iter().find(|a| a.name_any() == name).and_then(|a| a.uid());
    delete_assignment_and_revoke(ctx, api, name, uid.as_deref()).await
}

/// Deletes the assignment `name` (UID `uid`, when known), then revokes its access at once:
/// see [`remove_assignment`]. For every path that deletes assignments on the user's behalf
/// (an onboarding's removal, a definition's cascade). Whether it was there.
///
/// # Errors
/// The API server's answer when the delete fails (a failed early revocation is only logged:
/// the finalizer revokes as well).
pub(super) async fn delete_assignment_and_revoke(
    ctx: &Context,
    api: &Api<crate::api::RegistrationAssignment>,
    name: &str,
    uid: Option<&str>,
) -> Result<bool, kube::Error> {
    let removed = remove_owned(api, name).await?;
    if let Some(uid) = uid {
        if let Err(e) = revoke_access(ctx, uid).await {
            // The finalizer revokes as well: this was only the fast path.
            warn!(assignment = %name, error = %e, "revoking ahead of the finalizer failed; the finalizer revokes");
        }
    }
    Ok(removed)
}

/// Deletes `name` (background propagation); whether it was there.
async fn remove_owned<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
