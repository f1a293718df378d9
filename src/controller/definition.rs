//! Definition reconcile: validity and status of the offer itself, the limit per
//! subscription, removal after a transfer (seed 002), and the cascade on delete (its
//! assignments go, which revokes their access; SPEC §6).
//!
//! [`check`] is the pipeline: dereference → transfer check → validate (pure) → status (pure
//! content, written by [`super::bookkeeping`]). A definition materializes nothing itself.

use std::sync::Arc;

use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use super::bookkeeping::{namespace_reference, Record};
use super::caches::Caches;
use super::context::Context;
use super::dereference;
use super::finalizer::{self, Step};
use super::Error;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::keys;
use crate::model::outcome;
use crate::model::scope::{self, Namespaces};
use crate::model::status::{self, Notice};
use crate::model::transfer::removed_by_transfer;
use crate::model::validate;

/// The controller's reconcile function.
///
/// # Errors
/// The step that failed ([`Error`]); the reconcile is retried.
pub async fn reconcile(definition: Arc<RegistrationDefinition>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("definition");
    ctx.caches_synced().await?;
    let api: Api<RegistrationDefinition> =
        Api::namespaced(ctx.client.clone(), &definition.namespace().unwrap_or_default());
    let namespace = definition.namespace().unwrap_or_default();
    let result = finalizer::run(&api, keys::DEFINITION_FINALIZER, definition, |step| async {
        match step {
            Step::Apply(d) => check(d, &ctx).await,
            Step::Cleanup(d) => cascade(d, &ctx).await,
        }
    })
    .await;
    // The audit's report of the namespace follows its definitions (docs/guardrails.md).
    ctx.audit(namespace);
    result
}

/// The pipeline.
#[instrument(skip_all, fields(definition = %format!("{}/{}", definition.namespace().unwrap_or_default(), definition.name_any())))]
async fn check(definition: Arc<RegistrationDefinition>, ctx: &Context) -> Result<Action, Error> {
    let snapshot = dereference::definition(&ctx.caches, definition.clone());
    let namespace = definition.namespace().unwrap_or_default();
    let home_tenant =
        scope::subscription_of(&namespace, &ctx.caches as &dyn Namespaces).ok().map(|(_, tenant)| tenant.to_string());
    if transferred_away(&definition, home_tenant.as_deref()) {
        return remove_after_transfer(&definition, ctx).await;
    }
    let verdict = ctx.policy.judge(&ctx.caches, |rules| validate::validate_definition(&snapshot.facts(), rules));
    write_status(definition, &verdict, home_tenant, ctx);
    // No requeue: the periodic resync is one paced pass ([`super::triggers::resync`]).
    Ok(Action::await_change())
}

/// The status the verdict implies, when it changed, and its Event when `Ready`'s reason
/// changed. Bookkeeping: the definition's assignments are granted without waiting for it.
/// (Its finalizer is not deferred: without it, deleting the definition could not cascade.)
fn write_status(
    definition: Arc<RegistrationDefinition>,
    verdict: &Result<validate::ValidDefinition, validate::Rejection>,
    home_tenant: Option<String>,
    ctx: &Context,
) {
    // The last status given to bookkeeping, if the cache does not show it yet: a reconcile
    // that runs in between must not publish the same Event again.
    let old = ctx
        .bookkeeping
        .status_of(definition.as_ref(), definition.status.as_ref())
        .unwrap_or_else(|| definition.status.clone().unwrap_or_default());
    let (new, notice) =
        status::definition_status(definition.meta().generation, &old, verdict, home_tenant, outcome::now());
    if status::same_definition_status(&old, &new) {
        return;
    }
    let reason = |s: &crate::api::RegistrationDefinitionStatus| {
        status::ready_of(&s.conditions).map(|(_, reason)| reason.to_string())
    };
    let changed = reason(&old) != reason(&new);
    info!(state = ?new.provisioning_state, reason = ?reason(&new), "status changed");
    let notice = changed.then_some(notice);
    ctx.bookkeeping.defer(Record::DefinitionStatus { definition, status: new, notice });
}

/// Whether the subscription now belongs to the tenant this definition delegates to.
fn transferred_away(definition: &RegistrationDefinition, home_now: Option<&str>) -> bool {
    let Some(home_now) = home_now.and_then(crate::model::tenant::Guid::parse) else { return false };
    let recorded = definition.status.as_ref().and_then(|s| s.managee_tenant_id.as_deref());
    removed_by_transfer(&definition.spec.managed_by_tenant_id, recorded, &home_now)
}

/// Seed 002: the delegation resources for the new home tenant are removed. Deleting the
/// definition cascades to its assignments, whose finalizers revoke the access.
async fn remove_after_transfer(definition: &RegistrationDefinition, ctx: &Context) -> Result<Action, Error> {
    let namespace = definition.namespace().unwrap_or_default();
    let tenant = &definition.spec.managed_by_tenant_id;
    let notice = Notice::removed_on_transfer(&namespace, &definition.name_any(), tenant);
    for regarding in [namespace_reference(&namespace), definition.object_ref(&())] {
        ctx.bookkeeping.publish_to(&regarding, &notice).await;
    }
    let api: Api<RegistrationDefinition> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.delete(&definition.name_any(), &DeleteParams::default()).await {
        Ok(_) => info!(%namespace, definition = %definition.name_any(), %tenant, "removed on transfer"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(Error::Transfer(e)),
    }
    Ok(Action::await_change())
}

/// The assignments that assign `definition`: in its subscription namespace and its
/// resource groups.
pub fn assignments_of(definition: &RegistrationDefinition, caches: &Caches) -> Vec<Arc<RegistrationAssignment>> {
    let namespace = definition.namespace().unwrap_or_default();
    let name = definition.name_any();
    let mut assignments = caches.assignments_under(&namespace);
    assignments.retain(|a| a.spec.registration_definition_ref.name == name);
    assignments
}

/// The assignments of `definition` as the API server has them: in its subscription namespace
/// and the resource groups the caches know. The cascade reads them live because its
/// finalizer goes once it is done, and the caches may not hold yet an assignment created
/// just before the definition was deleted (or while the watch was down): that assignment
/// would stay for good, Failed, and come back to life with a new definition of the name.
async fn live_assignments_of(
    definition: &RegistrationDefinition,
    ctx: &Context,
) -> Result<Vec<Arc<RegistrationAssignment>>, Error> {
    let subscription = definition.namespace().unwrap_or_default();
    let name = definition.name_any();
    let mut namespaces = vec![subscription.clone()];
    namespaces.extend(Namespaces::resource_groups_of(&ctx.caches, &subscription));
    let mut found = Vec::new();
    for namespace in namespaces {
        let api: Api<RegistrationAssignment> = Api::namespaced(ctx.client.clone(), &namespace);
        let listed = api.list(&ListParams::default()).await.map_err(Error::Cascade)?;
        found
            .extend(listed.items.into_iter().filter(|a| a.spec.registration_definition_ref.name == name).map(Arc::new));
    }
    Ok(found)
}

/// Finalizer cleanup: deleting a definition deletes its assignments (SPEC §6); their own
/// finalizers revoke the access, and they already see the definition as gone.
#[instrument(skip_all, fields(definition = %format!("{}/{}", definition.namespace().unwrap_or_default(), definition.name_any())))]
///
/// Every deletion is tried whatever failed before it (the cached assignments go even when
/// the live list fails); the first failure then fails the reconcile, which keeps the
/// finalizer and retries.
async fn cascade(definition: Arc<RegistrationDefinition>, ctx: &Context) -> Result<Action, Error> {
    let mut assignments = assignments_of(&definition, &ctx.caches);
    let mut first_error = None;
    match live_assignments_of(&definition, ctx).await {
        Ok(live) => {
            for live in live {
                if !assignments.iter().any(|a| a.namespace() == live.namespace() && a.name_any() == live.name_any()) {
                    assignments.push(live);
                }
            }
        }
        Err(e) => first_error = Some(e),
    }
    for a in &assignments {
        let api: Api<RegistrationAssignment> = Api::namespaced(ctx.client.clone(), &a.namespace().unwrap_or_default());
        let assignment = format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any());
        // Deleted, then its access revoked at once: not after its finalizer's turn in the
        // assignment queue, behind every other assignment of a mass deletion.
        match super::apply::delete_assignment_and_revoke(ctx, &api, &a.name_any(), a.uid().as_deref()).await {
            Ok(true) => info!(%assignment, "deleted with its definition"),
            Ok(false) => {}
            Err(e) => {
                warn!(%assignment, error = %e, "could not delete with its definition; the others go ahead");
                first_error.get_or_insert(Error::Cascade(e));
            }
        }
        ctx.retrigger(ObjectRef::from_obj(a.as_ref()));
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    // The record of it waits for a pause in RBAC writes; the next cascade does not.
    ctx.bookkeeping.publish_later(definition.as_ref(), Notice::cascading(assignments.len()));
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::controller::testing::{answer, context, next};

    /// The definition `sub/offer` both cascade tests delete.
    fn offer() -> RegistrationDefinition {
        serde_json::from_value(json!({
            "apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationDefinition",
            "metadata": {"name": "offer", "namespace": "sub"},
            "spec": {"registrationDefinitionName": "Contoso", "managedByTenantId": "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6",
                "authorizations": [{"principalId": "00000000-0000-0000-0000-0000000000a1",
                    "roleDefinitionId": "acdd72a7-3385-48ef-bd42-f606fba81ae7"}]},
        }))
        .expect("definition")
    }

    /// An assignment the caches do not hold yet (created just before its definition was
    /// deleted, or while the watch was down) is deleted with the definition all the same
    /// (SPEC §6): the cascade asks the API server.
    #[tokio::test]
    async fn the_cascade_deletes_an_assignment_the_caches_do_not_hold_yet() {
        let (ctx, mut server, _cluster) = context();
        let definition = offer();
        let late = json!({
            "apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationAssignment",
            "metadata": {"name": "late", "namespace": "sub", "uid": "uid-late"},
            "spec": {"registrationDefinitionRef": {"name": "offer"}},
        });
        let other = json!({
            "apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationAssignment",
            "metadata": {"name": "other", "namespace": "sub", "uid": "uid-other"},
            "spec": {"registrationDefinitionRef": {"name": "another-offer"}},
        });
        let cascade = tokio::spawn({
            let ctx = ctx.clone();
            async move { cascade(Arc::new(definition), &ctx).await }
        });
        let (method, path, _, send) = next(&mut server).await;
        assert_eq!(method, "GET");
        assert!(
            path.starts_with("/apis/managedservices.kubelighthouse.io/v1alpha1/namespaces/sub/registrationassignments"),
            "{path}"
        );
        answer(
            send,
            200,
            json!({"apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
            "kind": "RegistrationAssignmentList", "metadata": {}, "items": [late, other]}),
        );
        let (method, path, _, send) = next(&mut server).await;
        assert_eq!(
            (method.as_str(), path.as_str()),
            ("DELETE", "/apis/managedservices.kubelighthouse.io/v1alpha1/namespaces/sub/registrationassignments/late?")
        );
        answer(send, 200, late);
        // Then the Event saying so.
        let (method, _, body, send) = next(&mut server).await;
        assert_eq!(method, "POST");
        assert!(body["note"].as_str().is_some_and(|n| n.contains("1 assignment")), "{body}");
        answer(send, 201, body);
        cascade.await.expect("task").expect("cascade");
    }

    /// A failed live list holds back no deletion: the assignments the caches hold are deleted
    /// all the same, then the reconcile fails (the finalizer stays, and it is retried).
    #[tokio::test]
    async fn a_failed_list_holds_back_the_deletion_of_the_cached_assignments() {
        let (ctx, mut server, mut cluster) = context();
        let definition = offer();
        let cached = json!({
            "apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationAssignment",
            "metadata": {"name": "cached", "namespace": "sub", "uid": "uid-cached"},
            "spec": {"registrationDefinitionRef": {"name": "offer"}},
        });
        cluster.assignment(serde_json::from_value(cached.clone()).expect("assignment"));
        let cascade = tokio::spawn({
            let ctx = ctx.clone();
            async move { cascade(Arc::new(definition), &ctx).await }
        });
        let (method, _, _, send) = next(&mut server).await;
        assert_eq!(method, "GET");
        answer(send, 500, json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 500}));
        let (method, path, _, send) = next(&mut server).await;
        assert_eq!(
            (method.as_str(), path.as_str()),
            (
                "DELETE",
                "/apis/managedservices.kubelighthouse.io/v1alpha1/namespaces/sub/registrationassignments/cached?"
            )
        );
        answer(send, 200, cached);
        let error = cascade.await.expect("task").expect_err("the list failure is returned");
        assert!(matches!(error, Error::Cascade(_)), "{error:?}");
    }
}
