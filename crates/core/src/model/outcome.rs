//! Steps 2 and 3 of an assignment's reconcile, pure: a [`Snapshot`] (step 1's output, the
//! facts gathered from the caches) is validated (SPEC §3) and, when valid, built into the
//! desired RBAC (SPEC §5). The reconciler and the admission webhook judge the same snapshot,
//! so they cannot count "older" objects differently.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;

use super::activation;
use super::desired::{self, AssignmentRef, DesiredRbac};
use super::scope::Scope;
use super::validate::{self, AssignmentFacts, DefinitionFacts, Rejection, ValidDefinition};
use crate::api::{RegistrationAssignment, RegistrationDefinition, RoleActivation};

/// Creation order, the tie broken by name: the older of two duplicates wins (SPEC §3, one
/// assignment per definition and scope; the limit of definitions per subscription). An object
/// without a creation time is one being created (admission): newer than every stored one.
pub fn created_before<K: Resource>(a: &K, b: &K) -> bool {
    // `None` must sort last: a new object is the newest.
    let stamp = |k: &K| k.meta().creation_timestamp.as_ref().map_or((1, None), |t| (0, Some(t.0)));
    (stamp(a), a.meta().name.as_deref()) < (stamp(b), b.meta().name.as_deref())
}

/// What a definition's validation reads from outside its spec.
#[derive(Clone, Debug)]
pub struct DefinitionSnapshot {
    /// The definition as cached (or, at admission, as submitted).
    pub definition: Arc<RegistrationDefinition>,
    /// Definitions in the same subscription created before it (SPEC §3, the limit per
    /// subscription).
    pub older_definitions: usize,
}

impl DefinitionSnapshot {
    /// The definition's snapshot, counting `others` (the definitions of its namespace, itself
    /// possibly among them) created before it.
    pub fn new<'a>(
        definition: Arc<RegistrationDefinition>,
        others: impl IntoIterator<Item = &'a RegistrationDefinition>,
    ) -> DefinitionSnapshot {
        let name = definition.metadata.name.as_deref();
        let older_definitions = others
            .into_iter()
            .filter(|other| other.metadata.name.as_deref() != name && created_before(*other, definition.as_ref()))
            .count();
        DefinitionSnapshot { definition, older_definitions }
    }

    /// The facts [`validate::validate_definition`] takes.
    pub fn facts(&self) -> DefinitionFacts<'_> {
        let definition = self.definition.as_ref();
        DefinitionFacts {
            namespace: definition.metadata.namespace.as_deref().unwrap_or_default(),
            spec: &definition.spec,
            generation: definition.metadata.generation,
            accepted_generation: definition.status.as_ref().and_then(|s| s.accepted_generation),
            older_definitions: self.older_definitions,
        }
    }
}

/// Step 1's output for an assignment: everything its validation reads besides the catalog,
/// the namespaces and the configuration (which [`validate::Context`] carries).
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Namespace, name and uid of the assignment (the owner of what is built).
    pub assignment: AssignmentRef,
    /// `spec.registrationDefinitionRef.name`.
    pub definition_name: String,
    /// Assignments of the same definition in the same namespace, created before this one and
    /// not being deleted, by name.
    pub older_duplicates: Vec<String>,
    /// The definition it names, in the subscription its namespace belongs to; None when
    /// there is none, or it is being deleted.
    pub definition: Option<DefinitionSnapshot>,
    /// The RoleActivations that name it (SPEC §9); empty unless the shell adds them.
    pub activations: Vec<Arc<RoleActivation>>,
    /// The time activations are judged at (expiry); the shell sets it.
    pub now: jiff::Timestamp,
}

impl Snapshot {
    /// The snapshot of `assignment`, given the assignments of its namespace (itself possibly
    /// among them) and the definition it names.
    pub fn new<'a>(
        assignment: &RegistrationAssignment,
        neighbours: impl IntoIterator<Item = &'a RegistrationAssignment>,
        definition: Option<DefinitionSnapshot>,
    ) -> Snapshot {
        let meta = assignment.meta();
        let definition_name = assignment.spec.registration_definition_ref.name.clone();
        let older_duplicates = neighbours
            .into_iter()
            .filter(|other| {
                other.meta().name != meta.name
                    && other.spec.registration_definition_ref.name == definition_name
                    && other.meta().deletion_timestamp.is_none()
                    && created_before(*other, assignment)
            })
            .filter_map(|other| other.meta().name.clone())
            .collect();
        Snapshot {
            assignment: AssignmentRef {
                namespace: meta.namespace.clone().unwrap_or_default(),
                name: meta.name.clone().unwrap_or_default(),
                uid: meta.uid.clone().unwrap_or_default(),
            },
            definition_name,
            older_duplicates,
            definition: definition.filter(|d| d.definition.meta().deletion_timestamp.is_none()),
            activations: Vec::new(),
            now: jiff::Timestamp::UNIX_EPOCH,
        }
    }
}

/// A delegation that passed validation, and what it materializes.
#[derive(Clone, Debug)]
pub struct Granted {
    /// Where the assignment applies.
    pub scope: Scope,
    /// The validated definition.
    pub valid: ValidDefinition,
    /// Empty when every role it names left the catalog: valid, but nothing in force.
    pub desired: DesiredRbac,
    /// `spec.managedByTenantId` of the definition, as written.
    pub managed_by: String,
}

/// A delegation that failed validation: nothing is granted, whatever it held is revoked.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// Every rule broken, the first giving the reason.
    pub rejection: Rejection,
    /// The managing tenant, when the definition was found (status shows it even on failure).
    pub managed_by: Option<String>,
    /// The customer tenant, when the scope resolved.
    pub managee: Option<String>,
}

/// The result of steps 2 and 3.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Valid: the access to materialize.
    Granted(Box<Granted>),
    /// Invalid: nothing granted.
    Rejected(Rejected),
}

impl Outcome {
    /// What this outcome materializes: nothing when rejected.
    pub fn desired(&self) -> Option<&DesiredRbac> {
        match self {
            Outcome::Granted(g) if !g.desired.roles.is_empty() => Some(&g.desired),
            _ => None,
        }
    }

    /// Whether the delegation passed validation.
    pub fn is_granted(&self) -> bool {
        matches!(self, Outcome::Granted(_))
    }

    /// `(managedByTenantId, manageeTenantId)` for the status.
    pub fn tenants(&self) -> (Option<String>, Option<String>) {
        match self {
            Outcome::Granted(g) => (Some(g.managed_by.clone()), Some(g.scope.home_tenant.to_string())),
            Outcome::Rejected(r) => (r.managed_by.clone(), r.managee.clone()),
        }
    }
}

/// Step 2, validate (SPEC §3): the assignment's scope, then the definition it names, judged
/// as a new delegation when `as_new` (admission: catalog changes since the definition was
/// accepted do not excuse it).
///
/// # Errors
/// The [`Rejection`], with the assignment's own rule and field, or the definition's problem
/// as `spec.registrationDefinitionRef` (SPEC §3).
pub fn validate(
    snapshot: &Snapshot,
    ctx: &validate::Context<'_>,
    as_new: bool,
) -> Result<(Scope, ValidDefinition, String), Rejected> {
    let assignment = &snapshot.assignment;
    let facts = AssignmentFacts {
        namespace: &assignment.namespace,
        name: &assignment.name,
        definition_name: &snapshot.definition_name,
        older_duplicates: snapshot.older_duplicates.clone(),
    };
    let scope = validate::validate_assignment(&facts, ctx.namespaces).map_err(|rejection| Rejected {
        rejection,
        managed_by: None,
        managee: None,
    })?;
    let managee = Some(scope.home_tenant.to_string());
    let definition = snapshot
        .definition
        .as_ref()
        .filter(|d| d.definition.metadata.namespace.as_deref() == Some(scope.subscription.as_str()));
    let Some(definition) = definition else {
        let rejection = validate::definition_problem(&snapshot.definition_name, &scope.subscription, None);
        return Err(Rejected { rejection, managed_by: None, managee });
    };
    let managed_by = definition.definition.spec.managed_by_tenant_id.clone();
    let mut facts = definition.facts();
    if as_new {
        facts.accepted_generation = None;
    }
    match validate::validate_definition(&facts, ctx) {
        Ok(valid) => Ok((scope, valid, managed_by)),
        Err(r) => Err(Rejected {
            rejection: validate::definition_problem(&snapshot.definition_name, &scope.subscription, Some(&r)),
            managed_by: Some(managed_by),
            managee,
        }),
    }
}

/// Step 3, build (SPEC §5): the RBAC a valid delegation materializes in its scope.
pub fn build(snapshot: &Snapshot, (scope, valid, managed_by): (Scope, ValidDefinition, String)) -> Granted {
    let mut desired = desired::build(&snapshot.assignment, &valid, &scope.namespaces);
    desired.extend(activation::desired(snapshot, &valid, &scope.namespaces));
    Granted { scope, valid, desired, managed_by }
}

/// Steps 2 and 3 together, as the reconciler runs them.
pub fn decide(snapshot: &Snapshot, ctx: &validate::Context<'_>) -> Outcome {
    decide_withholding(snapshot, ctx, None)
}

/// [`decide`], with User Access Administrator withheld for `withheld` (why it may not be in
/// force, e.g. the admission webhook that bounds it is not serving): its Roles and bindings
/// are not built, and the narrowing says why (a `Degraded` condition and a Warning Event).
/// Everything else the delegation grants is unaffected.
pub fn decide_withholding(snapshot: &Snapshot, ctx: &validate::Context<'_>, withheld: Option<&str>) -> Outcome {
    match validate(snapshot, ctx, false) {
        Ok((scope, mut valid, managed_by)) => {
            if let Some(reason) = withheld.filter(|_| !valid.user_access.is_empty()) {
                valid.user_access.clear();
                valid.narrowed.push(validate::FieldError {
                    rule: validate::Rule::UserAccessAdministratorWithheld,
                    field: "spec.authorizations".into(),
                    message: format!("User Access Administrator is not in force: {reason}"),
                });
            }
            Outcome::Granted(Box::new(build(snapshot, (scope, valid, managed_by))))
        }
        Err(rejected) => Outcome::Rejected(rejected),
    }
}

/// The current time, as conditions record it. The shell calls this once per reconcile and
/// passes it to the pure status functions.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DefinitionRef, RegistrationAssignmentSpec};
    use kube::core::ObjectMeta;

    fn at(seconds: i64) -> Option<Time> {
        Some(Time(jiff::Timestamp::from_second(seconds).expect("timestamp")))
    }

    fn assignment(name: &str, definition: &str, created: Option<Time>) -> RegistrationAssignment {
        RegistrationAssignment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("sub".into()),
                creation_timestamp: created,
                ..Default::default()
            },
            spec: RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: definition.into() } },
            status: None,
        }
    }

    #[test]
    fn the_older_duplicate_wins_and_a_new_object_is_the_newest() {
        let old = assignment("b", "offer", at(10));
        let young = assignment("a", "offer", at(20));
        let same_time = assignment("a", "offer", at(10));
        let new = assignment("z", "offer", None);
        assert!(created_before(&old, &young));
        assert!(!created_before(&young, &old));
        assert!(created_before(&same_time, &old), "a tie is broken by name");
        assert!(created_before(&young, &new), "an object being created is newer than any stored one");
        assert!(!created_before(&new, &young));
    }

    #[test]
    fn a_snapshot_counts_older_live_duplicates_of_the_same_definition_only() {
        let this = assignment("this", "offer", at(20));
        let older = assignment("older", "offer", at(10));
        let newer = assignment("newer", "offer", at(30));
        let other_offer = assignment("other", "another", at(5));
        let mut deleting = assignment("deleting", "offer", at(1));
        deleting.metadata.deletion_timestamp = at(40);
        let all = [this.clone(), older, newer, other_offer, deleting];
        let snapshot = Snapshot::new(&this, all.iter(), None);
        assert_eq!(snapshot.older_duplicates, ["older"]);
        assert_eq!(snapshot.definition_name, "offer");

        // At admission the new object has no creation time: every stored duplicate is older.
        let submitted = assignment("submitted", "offer", None);
        let snapshot = Snapshot::new(&submitted, all.iter(), None);
        assert_eq!(snapshot.older_duplicates, ["this", "older", "newer"]);
    }

    #[test]
    fn a_definition_snapshot_counts_older_definitions_but_not_itself() {
        let definition = |name: &str, created: Option<Time>| {
            let mut d = RegistrationDefinition::new(
                name,
                serde_json::from_value(serde_json::json!({
                    "registrationDefinitionName": name,
                    "managedByTenantId": "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6",
                    "authorizations": [],
                }))
                .expect("spec"),
            );
            d.metadata.namespace = Some("sub".into());
            d.metadata.creation_timestamp = created;
            d
        };
        let all = [definition("a", at(1)), definition("b", at(2)), definition("c", at(3))];
        let b = DefinitionSnapshot::new(Arc::new(all[1].clone()), all.iter());
        assert_eq!(b.older_definitions, 1);
        let new = DefinitionSnapshot::new(Arc::new(definition("d", None)), all.iter());
        assert_eq!(new.older_definitions, 3, "at admission every stored definition is older");
        assert_eq!(new.facts().namespace, "sub");
    }
}
