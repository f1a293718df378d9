//! Step 1 of every reconcile, and of every admission judgement: gathering from the caches
//! the facts a delegation's validation reads, into the pure snapshots of
//! [`crate::model::outcome`]. Reconciler and webhook share these functions, so both count
//! older definitions and duplicate assignments the same way.

use std::sync::Arc;

use kube::ResourceExt;

use super::caches::Caches;
use super::context::Policy;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::activation::{Refusal, Refused};
use crate::model::outcome::{self, DefinitionSnapshot, Snapshot};
use crate::model::scope::{self, Namespaces};
use crate::model::validate::eligible::Eligible;

/// The snapshot of `definition`: it and the other definitions of its subscription.
pub fn definition(caches: &Caches, definition: Arc<RegistrationDefinition>) -> DefinitionSnapshot {
    let neighbours = caches.definitions_in(definition.metadata.namespace.as_deref().unwrap_or_default());
    DefinitionSnapshot::new(definition, neighbours.iter().map(Arc::as_ref))
}

/// The snapshot of `assignment`: its neighbours, and the definition it names in the
/// subscription its namespace belongs to (looked up in the cache; `lookup` may supply one
/// the cache does not hold yet, as admission does for a definition created a moment ago).
pub fn assignment(
    caches: &Caches,
    assignment: &RegistrationAssignment,
    lookup: Option<Arc<RegistrationDefinition>>,
) -> Snapshot {
    let neighbours = caches.assignments_in(&assignment.namespace().unwrap_or_default());
    let name = &assignment.spec.registration_definition_ref.name;
    let found = subscription(caches, &assignment.namespace().unwrap_or_default())
        .and_then(|s| caches.definition(&s, name))
        .or(lookup);
    let definition = found.map(|d| self::definition(caches, d));
    let mut snapshot = Snapshot::new(assignment, neighbours.iter().map(Arc::as_ref), definition);
    // SPEC §9: the activations under it, judged at this moment (expiry).
    snapshot.activations = caches.activations_of(&assignment.namespace().unwrap_or_default(), &assignment.name_any());
    snapshot.now = jiff::Timestamp::now();
    snapshot
}

/// The subscription namespace `namespace` belongs to (itself, or its parent), if any.
pub fn subscription(caches: &Caches, namespace: &str) -> Option<String> {
    scope::subscription_of(namespace, caches as &dyn Namespaces).ok().map(|(s, _)| s)
}

/// Step 1 of an activation's reconcile and admission (SPEC §9): the eligible authorizations
/// of the assignment `assignment` that activations in `namespace` name, judged as the
/// assignment's reconcile judges it, or why there are none (no such assignment here, one
/// being deleted or not covering `namespace`, a rejected delegation).
///
/// # Errors
/// The [`Refused`] reason: [`Refusal::AssignmentNotFound`] or [`Refusal::DelegationInvalid`].
pub fn eligibility(
    caches: &Caches,
    policy: &Policy,
    namespace: &str,
    assignment: &str,
) -> Result<Vec<Eligible>, Refused> {
    let refused = |refusal, message: String| Refused { refusal, message };
    let found = caches.assignment_of(namespace, assignment).filter(|a| a.metadata.deletion_timestamp.is_none());
    let Some(found) = found else {
        return Err(refused(
            Refusal::AssignmentNotFound,
            format!("spec.registrationAssignmentRef: no RegistrationAssignment {assignment} for namespace {namespace}"),
        ));
    };
    let snapshot = self::assignment(caches, &found, None);
    match policy.judge(caches, |rules| outcome::validate(&snapshot, rules, false)) {
        Ok((scope, valid, _)) if scope.namespaces.iter().any(|n| n == namespace) => Ok(valid.eligible),
        Ok(_) => Err(refused(
            Refusal::AssignmentNotFound,
            format!("spec.registrationAssignmentRef: assignment {assignment} does not cover namespace {namespace}"),
        )),
        Err(rejected) => Err(refused(
            Refusal::DelegationInvalid,
            format!("the delegation of assignment {assignment} is rejected: {}", rejected.rejection),
        )),
    }
}
