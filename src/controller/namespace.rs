//! Namespace reconcile: keeps `kubelighthouse.io/managed-by-tenants` on each subscription
//! namespace equal to the managing tenants whose delegations are in force there (Azure's
//! `managedByTenants` of `az account list`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use serde_json::json;
use tracing::info;

use super::context::{Caches, Context};
use super::Error;
use crate::api::ProvisioningState;
use crate::model::keys;
use crate::model::scope::NamespaceInfo;

const RESYNC: Duration = Duration::from_secs(15 * 60);

/// The annotation value for `subscription`: the sorted managing tenants of its assignments
/// in force, in it or in its resource groups. None when there are none.
pub fn managed_by_tenants(subscription: &str, caches: &Caches) -> Option<String> {
    let tenants: BTreeSet<String> = caches
        .assignments_under(subscription)
        .iter()
        .filter_map(|a| a.status.as_ref())
        .filter(|s| s.provisioning_state == Some(ProvisioningState::Succeeded))
        .filter_map(|s| s.managed_by_tenant_id.clone())
        .collect();
    (!tenants.is_empty()).then(|| tenants.into_iter().collect::<Vec<_>>().join(","))
}

/// The controller's reconcile function.
pub async fn reconcile(ns: Arc<PartialObjectMeta<Namespace>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("namespace");
    ctx.caches_synced().await?;
    let name = ns.name_any();
    let info = NamespaceInfo::from_labels(ns.labels(), ns.metadata.deletion_timestamp.is_some());
    if info.terminating {
        return Ok(Action::await_change());
    }
    let want = if info.tenant_id.is_some() { managed_by_tenants(&name, &ctx.caches) } else { None };
    let have = ns.annotations().get(keys::MANAGED_BY_TENANTS).cloned();
    if want != have {
        ctx.grants.quiet().await;
        // A merge patch, not an apply: it can never create a namespace that was just deleted.
        let api: Api<Namespace> = Api::all(ctx.client.clone());
        let patch = json!({"metadata": {"annotations": {keys::MANAGED_BY_TENANTS: want}}});
        let params = PatchParams { field_manager: Some(keys::FIELD_MANAGER.into()), ..Default::default() };
        ctx.metrics.write("Namespace", "patch");
        match api.patch(&name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => info!(namespace = %name, managed_by_tenants = ?want, "annotation updated"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(RESYNC))
}
