//! Apply step: make the cluster hold exactly the desired Roles and RoleBindings of one
//! assignment. Server-side apply under one field manager, only for objects whose cached
//! state differs (and that were not just written: [`super::expectations`]); then prune, by
//! the assignment's UID label, whatever is no longer desired.

use std::collections::BTreeSet;

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
    pub applied: usize,
    pub deleted: usize,
}

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
    let applied = api.patch(&name, &params, &Patch::Apply(object)).await?;
    ctx.metrics.write(<K as k8s_openapi::Resource>::KIND, "apply");
    debug!(kind = K::kind(&()).as_ref(), %namespace, %name, "applied");
    Ok(applied.meta().resource_version.clone())
}

async fn delete<K>(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error>
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
        Err(e) => Err(e.into()),
    }
}

/// Brings the assignment with `uid` to exactly `desired`. Roles are written before the
/// bindings that reference them, and bindings are pruned before their Roles, so access that
/// should stay never has a gap.
pub async fn sync(ctx: &Context, uid: &str, desired: &DesiredRbac) -> Result<SyncStats, Error> {
    let mut stats = SyncStats::default();
    let caches = &ctx.caches;
    for role in &desired.roles {
        if apply_unless_current(ctx, &caches.roles, role, role_digest(role)).await? {
            stats.applied += 1;
        }
    }
    for binding in &desired.bindings {
        let (ns, name) = key(binding);
        // roleRef is immutable: an object of ours with another roleRef is replaced.
        let cached = caches.bindings.get(&ns, &name);
        if cached.is_some_and(|c| c.role_ref.is_some_and(|r| r != role_ref_digest(&binding.role_ref))) {
            delete::<RoleBinding>(ctx, &ns, &name).await?;
        }
        if apply_unless_current(ctx, &caches.bindings, binding, binding_digest(binding)).await? {
            stats.applied += 1;
        }
    }

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
    for (ns, name) in stale(&caches.bindings, &wanted_bindings) {
        delete::<RoleBinding>(ctx, &ns, &name).await?;
        stats.deleted += 1;
    }
    for (ns, name) in stale(&caches.roles, &wanted_roles) {
        delete::<Role>(ctx, &ns, &name).await?;
        stats.deleted += 1;
    }
    Ok(stats)
}

/// Revokes everything the assignment with `uid` owns, listing live rather than trusting the
/// cache: this is the path that must never leave access behind.
pub async fn revoke_all(ctx: &Context, uid: &str) -> Result<usize, Error> {
    let selector = ListParams::default().labels(&format!("{}={uid}", keys::ASSIGNMENT_UID));
    let mut deleted = 0;
    let bindings: Api<RoleBinding> = Api::all(ctx.client.clone());
    for b in bindings.list_metadata(&selector).await?.items {
        delete::<RoleBinding>(ctx, &b.namespace().unwrap_or_default(), &b.name_any()).await?;
        deleted += 1;
    }
    let roles: Api<Role> = Api::all(ctx.client.clone());
    for r in roles.list_metadata(&selector).await?.items {
        delete::<Role>(ctx, &r.namespace().unwrap_or_default(), &r.name_any()).await?;
        deleted += 1;
    }
    Ok(deleted)
}
