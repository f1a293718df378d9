//! Namespace reconcile: keeps `kubelighthouse.io/managed-by-tenants` on each subscription
//! namespace equal to the managing tenants whose delegations are in force there (Azure's
//! `managedByTenants` of `az account list`; SPEC §7). The value is computed by
//! [`crate::model::status::managed_by_tenants`] and written by [`super::bookkeeping`].

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::bookkeeping::Record;
use super::caches::CachedNamespace;
use super::context::Context;
use super::Error;
use crate::model::status;

/// The controller's reconcile function.
///
/// # Errors
/// [`Error::CacheNotReady`] when the watches stopped before their first list.
pub async fn reconcile(ns: Arc<CachedNamespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("namespace");
    ctx.caches_synced().await?;
    let name = ns.name_any();
    let info = &ns.info;
    if info.terminating {
        return Ok(Action::await_change());
    }
    let want = match &info.tenant_id {
        Some(_) => {
            let assignments = ctx.caches.assignments_under(&name);
            status::managed_by_tenants(assignments.iter().filter_map(|a| a.status.as_ref()))
        }
        None => None,
    };
    if ns.managed_by_tenants != want {
        ctx.bookkeeping.defer(Record::ManagedByTenants { namespace: name, value: want });
    }
    // No requeue: the periodic resync is one paced pass ([`super::triggers::resync`]).
    Ok(Action::await_change())
}
