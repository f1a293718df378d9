//! Namespace reconcile: keeps `kubelighthouse.io/managed-by-tenants` on each subscription
//! namespace equal to the managing tenants whose delegations are in force there (Azure's
//! `managedByTenants` of `az account list`; SPEC §7). The value is computed by
//! [`crate::model::status::managed_by_tenants`] and written by [`super::bookkeeping`].

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::bookkeeping::Record;
use super::context::Context;
use super::Error;
use crate::model::keys;
use crate::model::scope::NamespaceInfo;
use crate::model::status;

/// The controller's reconcile function.
///
/// # Errors
/// [`Error::CacheNotReady`] when the watches stopped before their first list.
pub async fn reconcile(ns: Arc<PartialObjectMeta<Namespace>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("namespace");
    ctx.caches_synced().await?;
    let name = ns.name_any();
    let info = NamespaceInfo::from_labels(ns.labels(), ns.metadata.deletion_timestamp.is_some());
    if info.terminating {
        return Ok(Action::await_change());
    }
    let want = match info.tenant_id {
        Some(_) => {
            let assignments = ctx.caches.assignments_under(&name);
            status::managed_by_tenants(assignments.iter().filter_map(|a| a.status.as_ref()))
        }
        None => None,
    };
    if ns.annotations().get(keys::MANAGED_BY_TENANTS) != want.as_ref() {
        ctx.bookkeeping.defer(Record::ManagedByTenants { namespace: name, value: want });
    }
    // No requeue: the periodic resync is one paced pass ([`super::triggers::resync`]).
    Ok(Action::await_change())
}
