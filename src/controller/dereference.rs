//! Step 1 of every reconcile, and of every admission judgement: gathering from the caches
//! the facts a delegation's validation reads, into the pure snapshots of
//! [`crate::model::outcome`]. Reconciler and webhook share these functions, so both count
//! older definitions and duplicate assignments the same way.

use std::sync::Arc;

use kube::ResourceExt;

use super::caches::Caches;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::outcome::{DefinitionSnapshot, Snapshot};
use crate::model::scope::{self, Namespaces};

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
    Snapshot::new(assignment, neighbours.iter().map(Arc::as_ref), definition)
}

/// The subscription namespace `namespace` belongs to (itself, or its parent), if any.
pub fn subscription(caches: &Caches, namespace: &str) -> Option<String> {
    scope::subscription_of(namespace, caches as &dyn Namespaces).ok().map(|(s, _)| s)
}
