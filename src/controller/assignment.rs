//! Assignment reconcile: the unit of materialization. One reconcile owns every Role and
//! RoleBinding of one assignment, in every namespace of its scope (SPEC §5).
//!
//! [`reconcile`] runs it under the assignment's finalizer; [`materialize`] is the pipeline,
//! one call per step: dereference (caches) → validate and build (pure,
//! [`crate::model::outcome`]) → apply (SSA what differs, prune by label) → status (pure
//! content from [`crate::model::status`], written by [`super::bookkeeping`]). A rejection
//! builds nothing, so apply revokes whatever the assignment held.

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use tracing::{info, instrument};

use super::apply::{self, Applied};
use super::bookkeeping::Record;
use super::context::Context;
use super::dereference;
use super::finalizer::{self, Step};
use super::Error;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::keys;
use crate::model::outcome::{self, Outcome};
use crate::model::scope::Namespaces;
use crate::model::status::{self, Notice};
use crate::model::validate::Rule;

/// The controller's reconcile function.
///
/// # Errors
/// The step that failed ([`Error`]); the reconcile is retried.
pub async fn reconcile(assignment: Arc<RegistrationAssignment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("assignment");
    ctx.caches_synced().await?;
    let namespace = assignment.namespace().unwrap_or_default();
    let api: Api<RegistrationAssignment> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer::run(&api, keys::ASSIGNMENT_FINALIZER, assignment, |step| async {
        match step {
            Step::Apply(a) => materialize(a, &ctx).await,
            Step::Cleanup(a) => revoke(a, &ctx).await,
        }
    })
    .await;
    // The audit lists the assignments of each definition (docs/guardrails.md).
    let subscription =
        Namespaces::get(&ctx.caches, &namespace).and_then(|ns| ns.parent_subscription().map(String::from));
    ctx.audit(subscription.unwrap_or(namespace));
    result
}

/// The pipeline.
#[instrument(skip_all, fields(assignment = %format!("{}/{}", assignment.namespace().unwrap_or_default(), assignment.name_any())))]
async fn materialize(assignment: Arc<RegistrationAssignment>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let snapshot = dereference::assignment(&ctx.caches, &assignment, None);
    if definition_on_its_way(&assignment, &snapshot, ctx).await? {
        return Ok(Action::requeue(DEFINITION_ON_ITS_WAY_RETRY));
    }
    let withheld = ctx.user_access_withheld().await?;
    let outcome =
        ctx.policy.judge(&ctx.caches, |rules| outcome::decide_withholding(&snapshot, rules, withheld.as_deref()));
    let applied = apply(&assignment, &outcome, ctx).await?;
    write_status(assignment.clone(), &outcome, &applied, ctx).await?;
    activations_follow(&assignment, ctx);
    // A failed write is retried, with backoff, until its obstacle is gone; its status and
    // Event are written above, once per transition.
    applied.into_result()?;
    // No requeue: the periodic resync is one paced pass ([`super::triggers::resync`]).
    Ok(Action::await_change())
}

/// How soon an assignment whose definition is on its way is reconciled again (the
/// definition's watch event usually triggers it sooner).
const DEFINITION_ON_ITS_WAY_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Step 1, dereference: whether the definition the cache lacks exists nevertheless. The
/// definition and the assignment arrive on two watches, in no set order: applied together
/// (`kubectl apply -f` of both), the assignment can be judged before its definition is
/// cached, and would be Failed (`DefinitionNotFound`, with a Warning Event) for a moment. So
/// a missing definition is confirmed with one read before the assignment fails for it. Only
/// then: an assignment whose status already says `DefinitionNotFound` is not read again on
/// each resync.
///
/// # Errors
/// [`Error::DefinitionRead`] when the API server does not answer the read.
async fn definition_on_its_way(
    assignment: &RegistrationAssignment,
    snapshot: &outcome::Snapshot,
    ctx: &Context,
) -> Result<bool, Error> {
    let reported: &str = Rule::DefinitionNotFound.into();
    let already_failed_for_it =
        assignment.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == reported));
    if snapshot.definition.is_some() || already_failed_for_it {
        return Ok(false);
    }
    let Some(subscription) = dereference::subscription(&ctx.caches, &assignment.namespace().unwrap_or_default()) else {
        return Ok(false);
    };
    let api: Api<RegistrationDefinition> = Api::namespaced(ctx.client.clone(), &subscription);
    let found = api.get_opt(&snapshot.definition_name).await.map_err(Error::DefinitionRead)?;
    Ok(found.is_some())
}

/// Step 4: exactly the desired RBAC, or nothing; every write is tried, and those that
/// failed are in the result.
async fn apply(assignment: &RegistrationAssignment, outcome: &Outcome, ctx: &Context) -> Result<Applied, Error> {
    let uid = assignment.uid().ok_or(Error::MissingField("metadata.uid"))?;
    Ok(match outcome.desired() {
        Some(desired) => apply::sync(ctx, &uid, desired).await,
        None => apply::revoke_all(ctx, &uid).await,
    })
}

/// Step 5: the status the outcome and the writes imply, and its Events, when they changed.
/// A grant's record waits behind RBAC writes; a rejection's, and a failed write's, are
/// written at once (the author is waiting for the reason, and an Event that a write failed
/// must not wait for writes).
async fn write_status(
    assignment: Arc<RegistrationAssignment>,
    outcome: &Outcome,
    applied: &Applied,
    ctx: &Arc<Context>,
) -> Result<(), Error> {
    // The last status given to bookkeeping, if the cache does not show it yet: a reconcile
    // that runs in between must not write it or publish its Events again.
    let old = ctx
        .bookkeeping
        .status_of(assignment.as_ref(), assignment.status.as_ref())
        .unwrap_or_else(|| assignment.status.clone().unwrap_or_default());
    let now = outcome::now();
    let new = status::assignment_status(assignment.metadata.generation, &old, outcome, now.clone());
    let in_force = applied.in_force.as_ref().map(|n| n.iter().cloned().collect());
    let new = status::with_write_failures(&old, new, &applied.write_failures(), in_force, now);
    if status::same_assignment_status(&old, &new) {
        return Ok(());
    }
    let notices = status::assignment_notices(outcome, &old, &new);
    let reason = status::ready_of(&new.conditions).map(|(_, reason)| reason.to_string());
    info!(state = ?new.provisioning_state, ?reason, stats = ?applied.stats, failed = applied.failures.len(), "status changed");
    let record = Record::AssignmentStatus { assignment, status: new, notices };
    if outcome.is_granted() && applied.failures.is_empty() {
        ctx.bookkeeping.defer(record);
        Ok(())
    } else {
        ctx.bookkeeping.write_now(record).await
    }
}

/// Finalizer cleanup: revoke in every namespace, then let duplicates of it take over.
#[instrument(skip_all, fields(assignment = %format!("{}/{}", assignment.namespace().unwrap_or_default(), assignment.name_any())))]
async fn revoke(assignment: Arc<RegistrationAssignment>, ctx: &Context) -> Result<Action, Error> {
    let uid = assignment.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let deleted = apply::revoke_all(ctx, &uid).await.into_result()?.deleted;
    info!(deleted, "access revoked");
    // The record of it waits: the next revocation in line does not.
    ctx.bookkeeping.publish_later(assignment.as_ref(), Notice::revoked(deleted));
    let namespace = assignment.namespace().unwrap_or_default();
    for sibling in ctx.caches.assignments_in(&namespace).into_iter().filter(|o| {
        o.spec.registration_definition_ref == assignment.spec.registration_definition_ref && o.uid() != assignment.uid()
    }) {
        ctx.retrigger(ObjectRef::from_obj(sibling.as_ref()));
    }
    activations_follow(&assignment, ctx);
    Ok(Action::await_change())
}

/// SPEC §9: the activations under the assignment re-judge their eligibility (a changed or
/// deleted delegation, or a role that left the catalog, ends them).
fn activations_follow(assignment: &RegistrationAssignment, ctx: &Context) {
    let namespace = assignment.namespace().unwrap_or_default();
    for activation in ctx.caches.activations_of(&namespace, &assignment.name_any()) {
        ctx.retrigger_activation(ObjectRef::from_obj(activation.as_ref()));
    }
}

#[cfg(test)]
mod tests;
