//! What is worth a reconcile: per object, a fingerprint of the parts a trigger depends on,
//! so that an update leaving them alone (a status the controller wrote, a label nobody
//! reads) triggers nothing.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use kube::{Resource, ResourceExt};

use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::keys;

/// Per object (a hash of its namespace and name), a hash of the parts of it a trigger
/// depends on. An update that leaves them alone (a status the controller wrote, a label
/// nobody reads) then triggers nothing, and a burst of onboarding does not re-run every
/// reconcile for its own bookkeeping.
#[derive(Default)]
pub struct Relevant(HashMap<u64, u64>);

fn fingerprint(parts: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

impl Relevant {
    /// Whether `object`'s relevant parts differ from when it was last seen.
    fn key<K: Resource>(object: &K) -> u64 {
        fingerprint((&object.meta().namespace, &object.meta().name))
    }

    pub fn changed<K: Resource>(&mut self, object: &K, parts: u64) -> bool {
        self.0.insert(Relevant::key(object), parts) != Some(parts)
    }

    pub fn forget<K: Resource>(&mut self, object: &K) {
        self.0.remove(&Relevant::key(object));
    }
}

fn has_finalizer<K: Resource>(object: &K, finalizer: &str) -> bool {
    object.meta().finalizers.iter().flatten().any(|f| f == finalizer)
}

/// What an assignment's own reconcile depends on: its spec, its deletion, our finalizer.
pub fn assignment_parts(a: &RegistrationAssignment) -> u64 {
    let meta = a.meta();
    fingerprint((meta.generation, meta.deletion_timestamp.is_some(), has_finalizer(a, keys::ASSIGNMENT_FINALIZER)))
}

/// What managed-by-tenants depends on: whether the assignment is in force, and for whom.
pub fn assignment_tenant_parts(a: &RegistrationAssignment) -> u64 {
    let status = a.status.as_ref();
    fingerprint((
        a.meta().deletion_timestamp.is_some(),
        status.map(|s| format!("{:?}", s.provisioning_state)),
        status.and_then(|s| s.managed_by_tenant_id.as_deref()),
        // A Failed assignment with RBAC still in force counts (a write failed).
        status.is_some_and(|s| s.namespaces.is_empty()),
    ))
}

/// What a definition's assignments depend on: its spec, its deletion, and the generation it
/// was accepted at (after which catalog changes narrow instead of reject).
pub fn definition_parts(d: &RegistrationDefinition) -> u64 {
    let meta = d.meta();
    fingerprint((
        meta.generation,
        meta.deletion_timestamp.is_some(),
        d.status.as_ref().and_then(|s| s.accepted_generation),
    ))
}

/// What the definition's own reconcile depends on besides: our finalizer.
pub fn definition_own_parts(d: &RegistrationDefinition) -> u64 {
    fingerprint((definition_parts(d), has_finalizer(d, keys::DEFINITION_FINALIZER)))
}

/// What an activation's reconcile and its assignment's build read: the spec, the stamp, the
/// phase and expiry the controller recorded, deletion and finalizers.
pub fn activation_parts(a: &crate::api::RoleActivation) -> u64 {
    let status = a.status.as_ref();
    fingerprint((
        a.meta().generation,
        a.meta().deletion_timestamp.is_some(),
        &a.meta().finalizers,
        a.annotations().get(keys::REQUESTER),
        status.and_then(|s| s.phase),
        status.and_then(|s| s.expires_at.as_ref().map(|t| t.0.as_second())),
    ))
}
