//! Per kind, what a watch event means to the reconcilers: plain structs that follow one
//! watch each ([`Follow`]) and send the delegations an event affects to [`Sinks`]. Other
//! objects never reconcile themselves; they only point at the delegations that depend on
//! them. No I/O here beyond those channels, so every mapping is unit-tested.
//!
//! | watch | triggers |
//! |---|---|
//! | assignment | itself (spec, deletion, finalizer), its subscription's managed-by-tenants |
//! | definition | itself, its assignments, its neighbours when it goes (limit per subscription) |
//! | namespace | everything read from it (docs/architecture.md, "What is read from a namespace") |
//! | ClusterRole | every delegation, when the catalog changed |
//! | Role, RoleBinding of ours | the owning assignment (drift), unless our own write; the sweep |
//! | RoleActivation | itself, and its assignment (which builds what an active one grants) |
//! | ActivationReview | the activation it reviews |

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::{Resource, ResourceExt};

use super::relevant::{
    activation_parts, assignment_parts, assignment_tenant_parts, definition_own_parts, definition_parts, Relevant,
};
use super::{Change, Sinks};
use crate::api::{ActivationReview, Guardrail, RegistrationAssignment, RegistrationDefinition, RoleActivation};
use crate::controller::caches::{CachedNamespace, Caches};
use crate::controller::definition::assignments_of;
use crate::controller::expectations::Expectations;
use crate::controller::materialized::{Key, Record};
use crate::controller::sweep::Candidate;
use crate::model::scope::{NamespaceInfo, Namespaces};

/// Follows one watch: called for every event after the caches and indexes took it.
pub trait Follow<T> {
    /// Takes one change, after the caches and indexes did.
    fn follow(&mut self, change: Change<'_, T>);
}

/// A namespace's tenant or subscription label changed, or it is terminating or gone. Every
/// fact a reconcile took from it is re-read (docs/architecture.md, "What is read from a
/// namespace"):
/// - assignments in it, and in its resource groups (their home tenant is its tenant);
/// - the subscription it belongs to now and the one it belonged to before (a resource group
///   that moved): their assignments re-compute their scope, and their managed-by-tenants;
/// - assignments holding objects in it (it may have just left their scope);
/// - definitions in it (a transfer, or a definition left outside any subscription);
/// - definitions with a ServiceAccount principal in it or in its resource groups: that
///   principal's home tenant is this namespace's (or its subscription's) tenant.
fn namespace_moved(name: &str, now: &NamespaceInfo, before: Option<&NamespaceInfo>, caches: &Caches, sinks: &Sinks) {
    let parents: BTreeSet<String> = [Some(now), before]
        .into_iter()
        .flatten()
        .filter_map(|info| info.parent_subscription().map(String::from))
        .collect();
    let mut affected = caches.assignments_under(name);
    for parent in &parents {
        affected.extend(caches.assignments_in(parent));
    }
    for a in affected {
        sinks.assignment(&a);
    }
    let holders: HashSet<_> = caches.bindings.in_namespace(name).iter().filter_map(|b| b.owning_assignment()).collect();
    for owner in holders {
        let _ = sinks.assignments.unbounded_send(owner);
    }
    for d in caches.definitions_in(name) {
        sinks.definition(&d);
    }
    let mut principal_namespaces = caches.resource_groups_of(name);
    principal_namespaces.push(name.to_string());
    for ns in &principal_namespaces {
        for d in caches.definitions_with_principals_in(ns) {
            definition_changed(&d, caches, sinks);
        }
    }
    for parent in &parents {
        sinks.namespace(parent);
    }
}

/// Its assignments depend on the definition: they re-check it.
fn definition_changed(d: &RegistrationDefinition, caches: &Caches, sinks: &Sinks) {
    sinks.definition(d);
    for a in assignments_of(d, caches) {
        sinks.assignment(&a);
    }
    // Definitions are limited per subscription: one going may admit another.
    if d.meta().deletion_timestamp.is_some() {
        for other in caches.definitions_in(&d.namespace().unwrap_or_default()) {
            sinks.definition(&other);
        }
    }
}

/// Assignments: their own reconcile, and managed-by-tenants of their subscription.
pub struct AssignmentTriggers {
    caches: Caches,
    sinks: Sinks,
    own: Relevant,
    tenants: Relevant,
}

impl AssignmentTriggers {
    /// Triggers that read `caches` and send to `sinks`.
    pub fn new(caches: Caches, sinks: Sinks) -> Self {
        AssignmentTriggers { caches, sinks, own: Relevant::default(), tenants: Relevant::default() }
    }
}

impl Follow<RegistrationAssignment> for AssignmentTriggers {
    fn follow(&mut self, change: Change<'_, RegistrationAssignment>) {
        match change {
            Change::Listed(a) | Change::Applied(a) => {
                // A (re)list re-checks everything: a restart must not trust what it remembers.
                let listed = matches!(change, Change::Listed(_));
                if self.own.changed(a, assignment_parts(a)) || listed {
                    self.sinks.assignment(a);
                }
                if self.tenants.changed(a, assignment_tenant_parts(a)) || listed {
                    self.sinks.subscription_of(a, &self.caches);
                }
            }
            Change::Deleted(a) => {
                self.own.forget(a);
                self.tenants.forget(a);
                self.sinks.assignment(a);
                self.sinks.subscription_of(a, &self.caches);
            }
            Change::ListDone => {}
        }
    }
}

/// Definitions: their own reconcile, and their assignments when what those read changed.
pub struct DefinitionTriggers {
    caches: Caches,
    sinks: Sinks,
    own: Relevant,
    seen: Relevant,
}

impl DefinitionTriggers {
    /// Triggers that read `caches` and send to `sinks`.
    pub fn new(caches: Caches, sinks: Sinks) -> Self {
        DefinitionTriggers { caches, sinks, own: Relevant::default(), seen: Relevant::default() }
    }
}

impl Follow<RegistrationDefinition> for DefinitionTriggers {
    fn follow(&mut self, change: Change<'_, RegistrationDefinition>) {
        match change {
            Change::Listed(d) | Change::Applied(d) => {
                let listed = matches!(change, Change::Listed(_));
                let own = self.own.changed(d, definition_own_parts(d));
                if self.seen.changed(d, definition_parts(d)) || listed {
                    definition_changed(d, &self.caches, &self.sinks);
                } else if own {
                    self.sinks.definition(d);
                }
            }
            Change::Deleted(d) => {
                self.own.forget(d);
                self.seen.forget(d);
                definition_changed(d, &self.caches, &self.sinks);
            }
            Change::ListDone => {}
        }
    }
}

/// Namespaces: every change may need the annotation put back; only a tenant, a
/// subscription or a deletion moves delegations. What each namespace was is kept (two
/// labels), because a resource group that moves must also be taken out of its old
/// subscription.
pub struct NamespaceTriggers {
    caches: Caches,
    sinks: Sinks,
    seen: HashMap<String, NamespaceInfo>,
    listed: bool,
    /// Names seen in a relist: those missing when it is done were deleted while the watch
    /// was down (a relist reports no deletions), and what they decided is re-read too.
    relisted: HashSet<String>,
}

impl NamespaceTriggers {
    /// Triggers that read `caches` and send to `sinks`.
    pub fn new(caches: Caches, sinks: Sinks) -> Self {
        NamespaceTriggers { caches, sinks, seen: HashMap::new(), listed: false, relisted: HashSet::new() }
    }

    fn list_done(&mut self) {
        if self.listed {
            let vanished: Vec<String> = self.seen.keys().filter(|n| !self.relisted.contains(*n)).cloned().collect();
            for name in vanished {
                if let Some(before) = self.seen.remove(&name) {
                    namespace_moved(&name, &before, Some(&before), &self.caches, &self.sinks);
                }
            }
        }
        self.relisted.clear();
        self.listed = true;
    }
}

impl Follow<CachedNamespace> for NamespaceTriggers {
    fn follow(&mut self, change: Change<'_, CachedNamespace>) {
        let (ns, gone) = match change {
            Change::Listed(ns) | Change::Applied(ns) => (ns, false),
            Change::Deleted(ns) => (ns, true),
            Change::ListDone => return self.list_done(),
        };
        let name = ns.name_any();
        if self.listed && matches!(change, Change::Listed(_)) {
            self.relisted.insert(name.clone());
        }
        let now = ns.info.clone();
        let before = if gone { self.seen.remove(&name) } else { self.seen.insert(name.clone(), now.clone()) };
        let moved = match change {
            // The first list moves nothing: every delegation is being listed anyway. A
            // relist finds what moved while the watch was down.
            Change::Listed(_) => self.listed && before.as_ref() != Some(&now),
            Change::Applied(_) => before.as_ref() != Some(&now),
            _ => true,
        };
        if moved {
            namespace_moved(&name, &now, before.as_ref(), &self.caches, &self.sinks);
        }
        // Only a subscription, or a namespace still carrying the annotation, has one to keep.
        if ns.keeps_annotation() {
            self.sinks.namespace(&name);
        }
        // Onboarding selects subscriptions by any label: each change of one (or of one that
        // just stopped being one) is looked at again. Deleted: its objects go with it.
        if !gone && (ns.labels.is_some() || before.is_some_and(|b| b.tenant_id.is_some())) {
            self.sinks.onboard(&name);
        }
    }
}

/// The catalog: a change re-judges everything, except during the first list, when every
/// delegation is being listed (and so triggered) anyway. Catalog roles are few and change
/// rarely. Follows the watch after [`crate::controller::catalog::CatalogCache`] took the event.
pub struct CatalogTriggers {
    caches: Caches,
    sinks: Sinks,
    seen: u64,
    listed: bool,
}

impl CatalogTriggers {
    /// Triggers that read `caches` and send to `sinks`; the catalog version now is the one
    /// already seen.
    pub fn new(caches: Caches, sinks: Sinks) -> Self {
        let seen = caches.catalog.version();
        CatalogTriggers { caches, sinks, seen, listed: false }
    }
}

impl Follow<ClusterRole> for CatalogTriggers {
    fn follow(&mut self, change: Change<'_, ClusterRole>) {
        let version = self.caches.catalog.version();
        let changed = std::mem::replace(&mut self.seen, version) != version;
        let first_list = matches!(change, Change::ListDone) && !std::mem::replace(&mut self.listed, true);
        if changed && !first_list {
            for d in self.caches.definitions.state() {
                self.sinks.definition(&d);
            }
            for a in self.caches.assignments.state() {
                self.sinks.assignment(&a);
            }
        }
    }
}

/// Guardrails (docs/guardrails.md): a change of a guardrail's spec, or its deletion, re-judges
/// every definition and assignment, except during the first list, when every delegation is
/// being listed anyway. Guardrails are few and change rarely; which delegations a selector
/// governs depends on namespace labels, so everything is simpler and sure. A change of
/// anything but the spec (labels, annotations) re-judges nothing.
pub struct GuardrailTriggers {
    caches: Caches,
    sinks: Sinks,
    listed: bool,
    /// Each guardrail's spec as last seen, by name.
    seen: HashMap<String, crate::api::GuardrailSpec>,
    /// The specs of the (re)list in progress.
    relisted: HashMap<String, crate::api::GuardrailSpec>,
}

impl GuardrailTriggers {
    /// Triggers that read `caches` and send to `sinks`.
    pub fn new(caches: Caches, sinks: Sinks) -> Self {
        GuardrailTriggers { caches, sinks, listed: false, seen: HashMap::new(), relisted: HashMap::new() }
    }
}

impl Follow<Guardrail> for GuardrailTriggers {
    fn follow(&mut self, change: Change<'_, Guardrail>) {
        let rejudge = match change {
            Change::Applied(g) => self.seen.insert(g.name_any(), g.spec.clone()).as_ref() != Some(&g.spec),
            Change::Deleted(g) => {
                self.seen.remove(&g.name_any());
                true
            }
            Change::Listed(g) => {
                self.relisted.insert(g.name_any(), g.spec.clone());
                false
            }
            // A relist finds what changed while the watch was down.
            Change::ListDone => {
                let listed = std::mem::take(&mut self.relisted);
                let moved = listed != self.seen;
                self.seen = listed;
                std::mem::replace(&mut self.listed, true) && moved
            }
        };
        if rejudge {
            for d in self.caches.definitions.state() {
                self.sinks.definition(&d);
            }
            for a in self.caches.assignments.state() {
                self.sinks.assignment(&a);
            }
        }
    }
}

/// Our Roles or RoleBindings: a change sends the owning assignment to check it (drift is
/// reverted there), unless it is the version the controller itself just wrote; and the
/// sweep checks it has an owner. The first list triggers no owner: every assignment is
/// being listed itself.
pub struct MaterializedTriggers {
    kind: &'static str,
    candidate: fn(Key) -> Candidate,
    expectations: Arc<Expectations>,
    sinks: Sinks,
    listed: bool,
}

impl MaterializedTriggers {
    /// For kind `kind` ("Role" or "RoleBinding"), whose sweep candidates `candidate` makes.
    pub fn new(
        kind: &'static str,
        candidate: fn(Key) -> Candidate,
        expectations: Arc<Expectations>,
        sinks: Sinks,
    ) -> Self {
        MaterializedTriggers { kind, candidate, expectations, sinks, listed: false }
    }

    fn changed(&self, record: &Record, owner_too: bool) {
        if !self.expectations.observed(self.kind, record) && owner_too {
            if let Some(owner) = record.owning_assignment() {
                let _ = self.sinks.assignments.unbounded_send(owner);
            }
        }
        let _ = self.sinks.sweep.unbounded_send((self.candidate)(record.key.clone()));
    }
}

impl Follow<Record> for MaterializedTriggers {
    fn follow(&mut self, change: Change<'_, Record>) {
        match change {
            Change::Deleted(record) => {
                self.expectations.forget(self.kind, record.namespace(), record.name());
                self.changed(record, true);
            }
            Change::Listed(record) => self.changed(record, self.listed),
            Change::Applied(record) => self.changed(record, true),
            Change::ListDone => self.listed = true,
        }
    }
}

#[cfg(test)]
mod tests;

/// RoleActivations: their own reconcile (phase, expiry), and their assignment, which
/// materializes what an active one grants, whenever phase, expiry, stamp or deletion moved.
pub struct ActivationTriggers {
    caches: Caches,
    sinks: Sinks,
    own: Relevant,
}

impl ActivationTriggers {
    /// Triggers from `caches` into `sinks`.
    pub fn new(caches: Caches, sinks: Sinks) -> Self {
        ActivationTriggers { caches, sinks, own: Relevant::default() }
    }

    fn assignment_of(&self, a: &RoleActivation) {
        let namespace = a.namespace().unwrap_or_default();
        if let Some(assignment) = self.caches.assignment_of(&namespace, &a.spec.registration_assignment_ref.name) {
            self.sinks.assignment(&assignment);
        }
    }
}

impl Follow<RoleActivation> for ActivationTriggers {
    fn follow(&mut self, change: Change<'_, RoleActivation>) {
        match change {
            Change::Listed(a) | Change::Applied(a) => {
                let listed = matches!(change, Change::Listed(_));
                if self.own.changed(a, activation_parts(a)) || listed {
                    self.sinks.activation(a);
                    self.assignment_of(a);
                }
            }
            Change::Deleted(a) => {
                self.own.forget(a);
                self.assignment_of(a);
            }
            Change::ListDone => {}
        }
    }
}

/// ActivationReviews: the activation each reviews (create-only, so any event counts).
pub struct ReviewTriggers {
    sinks: Sinks,
}

impl ReviewTriggers {
    /// Triggers into `sinks`.
    pub fn new(sinks: Sinks) -> Self {
        ReviewTriggers { sinks }
    }
}

impl Follow<ActivationReview> for ReviewTriggers {
    fn follow(&mut self, change: Change<'_, ActivationReview>) {
        if let Change::Listed(r) | Change::Applied(r) = change {
            let reference = kube::runtime::reflector::ObjectRef::new(&r.spec.role_activation_ref.name)
                .within(&r.namespace().unwrap_or_default());
            let _ = self.sinks.activations.unbounded_send(reference);
        }
    }
}

/// Onboardings: each change goes to the onboarding reconcile (few objects, written by the
/// platform team; the reconcile decides whether a new generation fans out).
pub struct OnboardingTriggers {
    sinks: Sinks,
}

impl OnboardingTriggers {
    /// Triggers into `sinks`.
    pub fn new(sinks: Sinks) -> Self {
        OnboardingTriggers { sinks }
    }
}

impl Follow<crate::api::Onboarding> for OnboardingTriggers {
    fn follow(&mut self, change: Change<'_, crate::api::Onboarding>) {
        if let Change::Listed(o) | Change::Applied(o) = change {
            let _ = self.sinks.onboardings.unbounded_send(kube::runtime::reflector::ObjectRef::new(&o.name_any()));
        }
    }
}
