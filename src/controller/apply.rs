//! Apply step: make the cluster hold exactly the desired Roles and RoleBindings of one
//! assignment. Server-side apply under one field manager, only for objects whose cached
//! state differs (and that were not just written: [`super::expectations`]); then prune, by
//! the assignment's UID label, whatever is no longer desired.

use std::collections::BTreeSet;

use futures::{stream, StreamExt};

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, info};

use super::context::Context;
use super::materialized::{binding_digest, role_digest, role_ref_digest, Digest, MaterializedCache};
use super::Error;
use crate::model::desired::DesiredRbac;
use crate::model::keys;

/// What one sync changed, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Objects applied (created or changed).
    pub applied: usize,
    /// Objects deleted.
    pub deleted: usize,
}

/// What step 4 did: synced to the desired RBAC, or revoked everything (how many objects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The objects now match the desired RBAC.
    Synced(SyncStats),
    /// Every object of the assignment deleted; how many.
    Revoked(usize),
}

/// Which step a delete belongs to, for the error it fails with.
type Step = fn(kube::Error) -> Error;

fn key<K: Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// What the controller materializes: Roles and RoleBindings.
trait Materialized:
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

/// Applies `object` unless the cache (`cache`) or a write not yet seen there already holds
/// content `digest`; whether it wrote.
async fn apply_unless_current<K>(
    ctx: &Context,
    cache: &MaterializedCache,
    object: &K,
    digest: Digest,
) -> Result<bool, Error>
where
    K: Materialized,
{
    let (namespace, name) = key(object);
    let cached = cache.get(&namespace, &name);
    if cached.as_ref().is_some_and(|c| c.digest == digest) {
        return Ok(false);
    }
    let before = cached.and_then(|c| c.resource_version.clone());
    if ctx.expectations.in_flight(K::KIND, &namespace, &name, before.as_deref(), digest) {
        return Ok(false);
    }
    let written = server_side_apply(ctx, object).await?;
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

async fn delete<K>(ctx: &Context, namespace: &str, name: &str, step: Step) -> Result<(), Error>
where
    K: Materialized,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.metrics.write(<K as k8s_openapi::Resource>::KIND, "delete");
    ctx.expectations.forget(K::KIND, namespace, name);
    let _grant = ctx.grants.write();
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            info!(kind = K::kind(&()).as_ref(), %namespace, %name, "revoked");
            Ok(())
        }
        // Already gone, or its namespace is being deleted with it.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(step(e)),
    }
}

/// Writes of one phase in flight at once. Within a phase the objects are independent, so the
/// access of an assignment spanning many namespaces takes two round trips (Roles, then
/// bindings) rather than one per object.
const PARALLEL_WRITES: usize = 8;

/// Runs the writes of one phase, [`PARALLEL_WRITES`] at a time, each to completion (so every
/// write that happened is noted in the expectations); how many wrote, or the first error.
async fn phase<Fut>(writes: Vec<Fut>) -> Result<usize, Error>
where
    Fut: std::future::Future<Output = Result<bool, Error>>,
{
    let results: Vec<Result<bool, Error>> = stream::iter(writes).buffer_unordered(PARALLEL_WRITES).collect().await;
    let mut wrote = 0;
    for result in results {
        wrote += usize::from(result?);
    }
    Ok(wrote)
}

/// Brings the assignment with `uid` to exactly `desired`. Roles are written before the
/// bindings that reference them, and bindings are pruned before their Roles, so access that
/// should stay never has a gap.
///
/// # Errors
/// [`Error::Apply`] or [`Error::Prune`] for the first write that failed; every other write of its phase ran.
pub async fn sync(ctx: &Context, uid: &str, desired: &DesiredRbac) -> Result<SyncStats, Error> {
    let caches = &ctx.caches;
    let roles: Vec<_> =
        desired.roles.iter().map(|role| apply_unless_current(ctx, &caches.roles, role, role_digest(role))).collect();
    let mut stats = SyncStats { applied: phase(roles).await?, deleted: 0 };
    let bindings: Vec<_> = desired.bindings.iter().map(|binding| apply_binding(ctx, binding)).collect();
    stats.applied += phase(bindings).await?;

    let wanted_bindings: BTreeSet<_> = desired.bindings.iter().map(key).collect();
    let wanted_roles: BTreeSet<_> = desired.roles.iter().map(key).collect();
    let stale = |cache: &MaterializedCache, wanted: &BTreeSet<(String, String)>| {
        let mut stale: Vec<(String, String)> = cache
            .of_owner(uid)
            .iter()
            .map(|r| (r.namespace().to_string(), r.name().to_string()))
            .filter(|k| !wanted.contains(k))
            .collect();
        stale.sort();
        stale
    };
    stats.deleted += delete_all::<RoleBinding>(ctx, stale(&caches.bindings, &wanted_bindings), Error::Prune).await?;
    stats.deleted += delete_all::<Role>(ctx, stale(&caches.roles, &wanted_roles), Error::Prune).await?;
    Ok(stats)
}

/// Applies `binding` unless current, replacing an object of ours with another roleRef (which
/// is immutable); whether it wrote.
async fn apply_binding(ctx: &Context, binding: &RoleBinding) -> Result<bool, Error> {
    let (ns, name) = key(binding);
    let cached = ctx.caches.bindings.get(&ns, &name);
    if cached.is_some_and(|c| c.role_ref.is_some_and(|r| r != role_ref_digest(&binding.role_ref))) {
        delete::<RoleBinding>(ctx, &ns, &name, Error::Apply).await?;
    }
    apply_unless_current(ctx, &ctx.caches.bindings, binding, binding_digest(binding)).await
}

/// Deletes the objects at `keys` (namespace, name) as one phase; how many.
async fn delete_all<K: Materialized>(ctx: &Context, keys: Vec<(String, String)>, step: Step) -> Result<usize, Error> {
    let deletes: Vec<_> = keys.iter().map(|(ns, name)| delete_counted::<K>(ctx, ns, name, step)).collect();
    phase(deletes).await
}

async fn delete_counted<K: Materialized>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    step: Step,
) -> Result<bool, Error> {
    delete::<K>(ctx, namespace, name, step).await.map(|()| true)
}

/// Revokes everything the assignment with `uid` owns, listing live rather than trusting the
/// cache: this is the path that must never leave access behind. Bindings go first: their
/// deletion is what ends the access.
///
/// # Errors
/// [`Error::Revoke`] when the live list or a delete fails; the finalizer then stays.
pub async fn revoke_all(ctx: &Context, uid: &str) -> Result<usize, Error> {
    let selector = ListParams::default().labels(&format!("{}={uid}", keys::ASSIGNMENT_UID));
    Ok(delete_listed::<RoleBinding>(ctx, &selector).await? + delete_listed::<Role>(ctx, &selector).await?)
}

/// Deletes every object of kind `K` that `selector` finds, listed live; how many.
async fn delete_listed<K: Materialized>(ctx: &Context, selector: &ListParams) -> Result<usize, Error> {
    let items = Api::<K>::all(ctx.client.clone()).list_metadata(selector).await.map_err(Error::Revoke)?.items;
    let keys = items.iter().map(|o| (o.namespace().unwrap_or_default(), o.name_any())).collect();
    delete_all::<K>(ctx, keys, Error::Revoke).await
}
