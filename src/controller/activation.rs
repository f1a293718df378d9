//! Activation reconcile (SPEC §9): the lifecycle of one RoleActivation, in the same pipeline
//! shape as the assignment's: dereference (the eligibility of its assignment, its reviews,
//! from the caches) → decide (pure, [`crate::model::activation::phase`]) → apply (remove the
//! access of an activation that ended) → status (pure content, written by
//! [`super::bookkeeping`]).
//!
//! What an Active activation grants is materialized by its assignment's reconcile (the
//! assignment is the unit of materialization), which the activation's watch triggers when
//! the phase recorded here changes. Ending access is done here, at once, by label
//! (`kubelighthouse.io/activation-uid`), so that expiry does not wait for another reconcile.
//! Expiry is scheduled precisely: the reconcile requeues itself at `expiresAt`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::bookkeeping::Record;
use super::context::Context;
use super::finalizer::{self, Step};
use super::{dereference, Error};
use crate::api::{ActivationPhase, RoleActivation, RoleActivationStatus};
use crate::metrics::Metrics;
use crate::model::activation::{self, Clock, Eligibility, PhaseDecision, PhaseInputs, ReviewInput};
use crate::model::keys;

/// The controller's reconcile function.
///
/// # Errors
/// The step that failed ([`Error`]); the reconcile is retried.
pub async fn reconcile(activation: Arc<RoleActivation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("activation");
    ctx.caches_synced().await?;
    let api: Api<RoleActivation> = Api::namespaced(ctx.client.clone(), &activation.namespace().unwrap_or_default());
    if let Some(action) = await_deleter(&activation, &ctx).await? {
        return Ok(action);
    }
    finalizer::run(&api, keys::ACTIVATION_FINALIZER, activation, |step| async {
        match step {
            Step::Apply(a) => lifecycle(a, &ctx).await,
            Step::Cleanup(a) => end(a, &ctx).await,
        }
    })
    .await
}

/// A deleted activation whose deleter is not recorded yet loses its access at once, and keeps
/// its finalizer for up to [`activation::DELETER_HOLD`] after its deletion, for the replica
/// that admitted the delete to record who it was ([`crate::webhook::deleter`]): that record
/// changes the phase, which brings the activation back here. Some(requeue) while waiting.
///
/// # Errors
/// [`Error::Revoke`] when the access cannot be removed.
async fn await_deleter(activation: &RoleActivation, ctx: &Context) -> Result<Option<Action>, Error> {
    let ours = activation.finalizers().iter().any(|f| f == keys::ACTIVATION_FINALIZER);
    let deleted_at = activation.metadata.deletion_timestamp.as_ref().map(|t| t.0);
    let Some(wait) = activation::awaiting_deleter(activation.status.as_ref(), deleted_at, jiff::Timestamp::now())
    else {
        return Ok(None);
    };
    if !ours {
        return Ok(None);
    }
    let removed = remove_access(&ctx.client, &ctx.metrics, &activation.uid().unwrap_or_default()).await?;
    info!(removed, wait = ?wait, "deleted: access removed; waiting for the record of who deleted it");
    Ok(Some(Action::requeue(Duration::try_from(wait).unwrap_or_default())))
}

/// Step 1: the facts the lifecycle reads, from the caches.
fn dereference(
    activation: &RoleActivation,
    ctx: &Context,
) -> (Result<Vec<activation::Eligible>, activation::Refused>, Vec<ReviewInput>) {
    let namespace = activation.namespace().unwrap_or_default();
    let eligibility = dereference::eligibility(
        &ctx.caches,
        &ctx.policy,
        &namespace,
        &activation.spec.registration_assignment_ref.name,
    );
    let reviews = ctx
        .caches
        .reviews_of(&namespace, &activation.name_any())
        .iter()
        .map(|r| ReviewInput {
            name: r.name_any(),
            reviewer: activation::stamped(r.metadata.annotations.as_ref(), keys::REVIEWER),
            decision: r.spec.decision,
            reason: r.spec.reason.clone(),
            time: r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            activation_uid: r.metadata.annotations.as_ref().and_then(|a| a.get(keys::REVIEWED_UID)).cloned(),
        })
        .collect();
    (eligibility, reviews)
}

/// Step 2 (pure): the phase at `now`.
fn decide(
    activation: &RoleActivation,
    eligibility: Eligibility<'_>,
    reviews: &[ReviewInput],
    clock: Clock,
    now: jiff::Timestamp,
) -> (PhaseDecision, Option<crate::api::Caller>) {
    let requester = activation::stamped(activation.metadata.annotations.as_ref(), keys::REQUESTER);
    let previous = activation.status.clone().unwrap_or_default();
    let decision = activation::phase(&PhaseInputs {
        spec: &activation.spec,
        requester: requester.as_ref(),
        reviews,
        created: activation.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
        previous: &previous,
        eligibility,
        clock,
        uid: activation.metadata.uid.as_deref(),
        now,
    });
    (decision, requester)
}

/// The pipeline of a live activation.
#[instrument(skip_all, fields(activation = %format!("{}/{}", activation.namespace().unwrap_or_default(), activation.name_any())))]
async fn lifecycle(activation: Arc<RoleActivation>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let (eligibility, reviews) = dereference(&activation, ctx);
    let now = jiff::Timestamp::now();
    let (decision, requester) =
        decide(&activation, eligibility.as_deref().map_err(Clone::clone), &reviews, ctx.clock, now);
    // Step 4: an activation that is over holds nothing, whatever its assignment still builds.
    // The phase is recorded even when a removal failed (the status says the activation is
    // over; the retry finishes the removal).
    let mut removal = Ok(());
    if decision.phase.is_final() {
        match remove_access(&ctx.client, &ctx.metrics, &activation.uid().unwrap_or_default()).await {
            Ok(removed) if removed > 0 => {
                info!(phase = decision.phase.as_str(), removed, "access removed");
                if let Some(overdue) = decision.overdue {
                    ctx.metrics.overdue(overdue.as_secs_f64());
                }
            }
            Ok(_) => {}
            Err(e) => removal = Err(e),
        }
    }
    write_status(&activation, &decision, requester.as_ref(), now, ctx).await?;
    removal?;
    Ok(match decision.recheck_in {
        // Precisely at expiresAt (or the approval deadline), not by polling.
        Some(d) => Action::requeue(Duration::try_from(d).unwrap_or_default()),
        None => Action::await_change(),
    })
}

/// Step 5: the status, when it changed, and the Event of a new phase.
async fn write_status(
    activation: &Arc<RoleActivation>,
    decision: &PhaseDecision,
    requester: Option<&crate::api::Caller>,
    now: jiff::Timestamp,
    ctx: &Context,
) -> Result<(), Error> {
    let previous = activation.status.clone().unwrap_or_default();
    let status = activation::status_of(&previous, decision, requester, now);
    if activation::same_status(&previous, &status) {
        return Ok(());
    }
    let notices = activation::notice(previous.phase, decision).into_iter().collect();
    info!(phase = decision.phase.as_str(), reason = decision.reason, "activation status changed");
    ctx.bookkeeping.write_now(Record::ActivationStatus { activation: activation.clone(), status, notices }).await
}

/// Finalizer cleanup: the access goes, and the end is recorded: Canceled when the requester
/// deleted it, Revoked otherwise. Who deleted it is what the replica that admitted the delete
/// recorded in `status.endedBy` once the deletion showed ([`crate::webhook::deleter`]; the
/// object itself cannot say); unknown after [`activation::DELETER_HOLD`].
#[instrument(skip_all, fields(activation = %format!("{}/{}", activation.namespace().unwrap_or_default(), activation.name_any())))]
async fn end(activation: Arc<RoleActivation>, ctx: &Context) -> Result<Action, Error> {
    let removed = remove_access(&ctx.client, &ctx.metrics, &activation.uid().unwrap_or_default()).await?;
    let previous = activation.status.clone().unwrap_or_default();
    let requester = activation::stamped(activation.metadata.annotations.as_ref(), keys::REQUESTER);
    let deleter = previous.ended_by.clone();
    let recorded = previous.phase.filter(|p| matches!(p, ActivationPhase::Canceled | ActivationPhase::Revoked));
    let phase =
        recorded.unwrap_or_else(|| activation::phase_on_delete(previous.phase, requester.as_ref(), deleter.as_deref()));
    info!(phase = phase.as_str(), removed, deleter = ?deleter, "activation ended by deletion");
    ctx.bookkeeping.publish(activation.as_ref(), &activation::ended_notice(phase, deleter.as_deref(), removed)).await;
    Ok(Action::await_change())
}

/// Deletes the Roles and RoleBindings of activation `uid`, listed live by label (bindings
/// first). Every delete is tried, and the Roles go whatever happened to the bindings (a
/// binding whose Role is gone grants nothing): one failure holds back no other removal.
/// Returns how many were deleted.
///
/// # Errors
/// [`Error::Revoke`], the first list or delete that failed, after every other was tried
/// (a missing object is not a failure).
pub async fn remove_access(client: &Client, metrics: &Metrics, uid: &str) -> Result<usize, Error> {
    if uid.is_empty() {
        return Ok(0);
    }
    let selector = ListParams::default().labels(&format!("{}={uid}", keys::ACTIVATION_UID));
    let (bindings, first_error) = remove_listed::<RoleBinding>(client, metrics, &selector).await;
    let (roles, error) = remove_listed::<Role>(client, metrics, &selector).await;
    match first_error.or(error) {
        Some(e) => Err(e),
        None => Ok(bindings + roles),
    }
}

/// Deletes every object of kind `K` that `selector` finds; how many, and the first error.
async fn remove_listed<K>(client: &Client, metrics: &Metrics, selector: &ListParams) -> (usize, Option<Error>)
where
    K: super::apply::Materialized,
{
    let listed = match Api::<K>::all(client.clone()).list_metadata(selector).await {
        Ok(listed) => listed,
        Err(e) => return (0, Some(Error::Revoke(e))),
    };
    let (mut removed, mut first_error) = (0, None);
    for o in listed {
        let api: Api<K> = Api::namespaced(client.clone(), &o.namespace().unwrap_or_default());
        metrics.write(K::KIND, "delete");
        match delete(&api, &o.name_any()).await {
            Ok(n) => removed += n,
            Err(e) => {
                warn!(kind = K::KIND, namespace = ?o.namespace(), name = %o.name_any(), error = %e, "could not remove activated access; the other removals go ahead");
                first_error.get_or_insert(e);
            }
        }
    }
    (removed, first_error)
}

/// Deletes `name` for good (finalizers someone else set are taken off: [`super::apply`]).
async fn delete<K: super::apply::Materialized>(api: &Api<K>, name: &str) -> Result<usize, Error> {
    super::apply::delete_for_good(api, name, &DeleteParams::default()).await.map(usize::from).map_err(Error::Revoke)
}

/// SPEC §9, "expiry holds when the controller is down": before any watch or reconcile runs,
/// every Active activation past its `expiresAt` loses its access and is recorded Expired.
/// Returns how many were revoked.
///
/// # Errors
/// [`Error::Revoke`], the first that failed after every other expired activation was
/// revoked: the process does not start reconciling then.
pub async fn revoke_expired_at_start(client: &Client, metrics: &Metrics) -> Result<usize, Error> {
    let api: Api<RoleActivation> = Api::all(client.clone());
    let now = jiff::Timestamp::now();
    let mut revoked = 0;
    let mut first_error = None;
    let list = api.list(&ListParams::default()).await.map_err(Error::Revoke)?;
    for a in list {
        let Some(status) = a.status.clone() else { continue };
        let Some(expires_at) = status.expires_at.as_ref().map(|t| t.0) else { continue };
        if status.phase != Some(ActivationPhase::Active) || now < expires_at {
            continue;
        }
        let removed = match remove_access(client, metrics, &a.uid().unwrap_or_default()).await {
            Ok(removed) => removed,
            Err(e) => {
                // One activation's failure holds back no other's revocation.
                warn!(activation = %a.name_any(), namespace = ?a.namespace(), error = %e, "could not revoke an expired activation at start");
                first_error.get_or_insert(e);
                continue;
            }
        };
        metrics.overdue(now.duration_since(expires_at).as_secs_f64());
        let decision = PhaseDecision {
            phase: ActivationPhase::Expired,
            active_from: status.active_from.as_ref().map(|t| t.0),
            expires_at: Some(expires_at),
            reviews: status.reviews.clone(),
            reason: "Expired",
            message: format!("expired at {expires_at} while the controller was stopped; revoked at start"),
            recheck_in: None,
            overdue: Some(now.duration_since(expires_at)),
        };
        let new: RoleActivationStatus = activation::status_of(&status, &decision, None, now);
        let patch =
            json!({"apiVersion": "activation.kubelighthouse.io/v1alpha1", "kind": "RoleActivation", "status": new});
        let ns_api: Api<RoleActivation> = Api::namespaced(client.clone(), &a.namespace().unwrap_or_default());
        let params = PatchParams::apply(keys::FIELD_MANAGER).force();
        if let Err(e) = ns_api.patch_status(&a.name_any(), &params, &Patch::Apply(&patch)).await {
            // The access is gone already; the reconcile records the expiry.
            warn!(error = %e, "could not record an expiry at start; the reconcile will");
        }
        info!(activation = %a.name_any(), namespace = ?a.namespace(), removed, "expired while stopped: revoked at start");
        revoked += 1;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(revoked),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::controller::testing::{answer, context, next};

    fn listed(names: &[&str]) -> serde_json::Value {
        let items: Vec<_> = names.iter().map(|n| json!({"metadata": {"name": n, "namespace": "sub"}})).collect();
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": items})
    }

    /// One failed removal holds back no other: every binding is tried, the Roles go all the
    /// same, and the failure is returned after (so the reconcile retries).
    #[tokio::test]
    async fn a_failed_removal_holds_back_no_other() {
        let (ctx, mut server, _cluster) = context();
        let removal = tokio::spawn({
            let ctx = ctx.clone();
            async move { remove_access(&ctx.client, &ctx.metrics, "act-1").await }
        });
        let (method, path, _, send) = next(&mut server).await;
        assert!(method == "GET" && path.contains("/rolebindings?"), "{method} {path}");
        answer(send, 200, listed(&["first", "second"]));
        for (name, status) in [("first", 500), ("second", 200)] {
            let (method, path, _, send) = next(&mut server).await;
            assert_eq!(method, "DELETE");
            assert!(path.contains(&format!("/namespaces/sub/rolebindings/{name}?")), "{path}");
            answer(
                send,
                status,
                json!({"apiVersion": "v1", "kind": "Status", "code": status, "status": if status == 200 { "Success" } else { "Failure" }}),
            );
        }
        let (method, path, _, send) = next(&mut server).await;
        assert!(method == "GET" && path.contains("/roles?"), "the Roles go all the same: {method} {path}");
        answer(send, 200, listed(&["role"]));
        let (method, path, _, send) = next(&mut server).await;
        assert!(method == "DELETE" && path.contains("/namespaces/sub/roles/role?"), "{method} {path}");
        answer(send, 200, json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}));
        let error = removal.await.expect("joined").expect_err("the failure is returned");
        assert!(matches!(error, Error::Revoke(_)), "{error:?}");
    }
}
