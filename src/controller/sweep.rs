//! Orphan sweep: Roles and RoleBindings labelled as ours whose assignment no longer exists
//! (deleted while its finalizer was bypassed, or left by an older version), or that name no
//! assignment at all (our label forged on a hand-made object), are deleted.
//! Every managed object seen by the watches is a candidate; it is judged only once the
//! caches are synced, so a cold cache never looks like "no assignments".

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams};
use tracing::{info, warn};

use super::context::Context;
use super::materialized::{Key, MaterializedCache, Record};

/// A materialized object to check.
#[derive(Clone, Debug)]
pub enum Candidate {
    /// A Role, by `(namespace, name)`.
    Role(Key),
    /// A RoleBinding, by `(namespace, name)`.
    Binding(Key),
}

/// An object labelled as ours whose assignment is gone, or that names none (our label put
/// on a hand-made object: nothing of ours is without an owner).
fn orphan(cache: &MaterializedCache, key: &Key, ctx: &Context) -> Option<std::sync::Arc<Record>> {
    cache.get(&key.0, &key.1).filter(|r| r.owner_uid.as_ref().is_none_or(|uid| !ctx.caches.assignment_exists(uid)))
}

async fn delete<K>(api: Api<K>, name: &str)
where
    K: k8s_openapi::Resource + kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => info!(kind = K::KIND, %name, "swept orphan"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => warn!(error = %e, %name, "could not sweep orphan"),
    }
}

/// Runs until the candidate channel closes.
pub async fn run(ctx: std::sync::Arc<Context>, candidates: impl futures::Stream<Item = Candidate>) {
    let mut candidates = std::pin::pin!(candidates);
    if ctx.caches_synced().await.is_err() {
        return;
    }
    while let Some(candidate) = candidates.next().await {
        match candidate {
            Candidate::Role(key) => {
                if let Some(role) = orphan(&ctx.caches.roles, &key, &ctx) {
                    delete(Api::<Role>::namespaced(ctx.client.clone(), role.namespace()), role.name()).await;
                }
            }
            Candidate::Binding(key) => {
                if let Some(b) = orphan(&ctx.caches.bindings, &key, &ctx) {
                    delete(Api::<RoleBinding>::namespaced(ctx.client.clone(), b.namespace()), b.name()).await;
                }
            }
        }
    }
}
