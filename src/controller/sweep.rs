//! Orphan sweep: Roles and RoleBindings labelled as ours whose assignment no longer exists
//! (deleted while its finalizer was bypassed, or left by an older version) are deleted.
//! Every managed object seen by the watches is a candidate; it is judged only once the
//! caches are synced, so a cold cache never looks like "no assignments".

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use tracing::{info, warn};

use super::context::Context;
use crate::model::keys;

/// A materialized object to check.
#[derive(Clone, Debug)]
pub enum Candidate {
    Role(ObjectRef<Role>),
    Binding(ObjectRef<RoleBinding>),
}

fn orphaned(labels: &std::collections::BTreeMap<String, String>, ctx: &Context) -> bool {
    match labels.get(keys::ASSIGNMENT_UID) {
        Some(uid) => !ctx.caches.assignment_exists(uid),
        None => false,
    }
}

async fn delete<K>(api: Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            info!(kind = std::any::type_name::<K>().rsplit("::").next().unwrap_or("object"), %name, "swept orphan")
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => warn!(error = %e, %name, "could not sweep orphan"),
    }
}

/// Runs until the candidate channel closes.
pub async fn run(ctx: std::sync::Arc<Context>, mut candidates: UnboundedReceiver<Candidate>) {
    if ctx.caches_synced().await.is_err() {
        return;
    }
    while let Some(candidate) = candidates.next().await {
        match candidate {
            Candidate::Role(r) => {
                if let Some(role) = ctx.caches.roles.get(&r).filter(|o| orphaned(o.labels(), &ctx)) {
                    let ns = role.namespace().unwrap_or_default();
                    delete(Api::<Role>::namespaced(ctx.client.clone(), &ns), &role.name_any()).await;
                }
            }
            Candidate::Binding(r) => {
                if let Some(b) = ctx.caches.bindings.get(&r).filter(|o| orphaned(o.labels(), &ctx)) {
                    let ns = b.namespace().unwrap_or_default();
                    delete(Api::<RoleBinding>::namespaced(ctx.client.clone(), &ns), &b.name_any()).await;
                }
            }
        }
    }
}
