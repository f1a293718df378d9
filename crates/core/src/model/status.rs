//! Step 5's content, pure: the status an outcome implies, whether it differs from the one
//! recorded, the Events ([`Notice`]s) a change of outcome publishes, and the
//! `managed-by-tenants` annotation of a subscription (SPEC §5, §6, §7). The time is passed in,
//! so every function here is deterministic.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::outcome::Outcome;
use super::validate::{FieldError, Rejection, ValidDefinition};
use crate::api::status::merge_condition;
use crate::api::{
    Condition, ConditionStatus, ProvisioningState, RegistrationAssignmentStatus, RegistrationDefinitionStatus,
};

/// Message of a `Degraded=False` condition: says what holds, rather than an empty message.
pub const CATALOG_CURRENT: &str = "every granted role is as delegable as when the definition was accepted";

/// Event notes are limited to 1 kB by the API server.
const NOTE_MAX: usize = 1000;

/// `message` cut to fit an Event note, on a character boundary, with "..." when cut.
pub fn note(message: &str) -> Option<String> {
    if message.len() <= NOTE_MAX {
        return Some(message.to_string());
    }
    let mut cut = NOTE_MAX - 3;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}...", &message[..cut]))
}

/// The content of an Event (`kubectl describe`), which the shell publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// A Warning rather than a Normal Event.
    pub warning: bool,
    /// CamelCase, e.g. `Granted` or a rule's reason.
    pub reason: String,
    /// The Event's note: the detail, for a person (truncated to 1 kB when published).
    pub note: Option<String>,
    /// What the controller did, e.g. `Materialize`, `Validate`.
    pub action: &'static str,
}

impl Notice {
    fn normal(reason: &str, note: Option<String>, action: &'static str) -> Notice {
        Notice { warning: false, reason: reason.into(), note, action }
    }

    fn warning(reason: &str, note: Option<String>, action: &'static str) -> Notice {
        Notice { warning: true, reason: reason.into(), note, action }
    }

    /// A delegation was rejected: nothing is granted (SPEC §3).
    pub fn rejected(rejection: &Rejection) -> Notice {
        Notice::warning(rejection.reason(), note(&format!("nothing granted: {rejection}")), "Validate")
    }

    /// An assignment's access was revoked, `deleted` RBAC objects removed (SPEC §6).
    pub fn revoked(deleted: usize) -> Notice {
        Notice::normal("Revoked", note(&format!("removed {deleted} RBAC object(s)")), "Revoke")
    }

    /// A definition being deleted deletes its `assignments` (SPEC §6).
    pub fn cascading(assignments: usize) -> Notice {
        Notice::normal("Deleting", note(&format!("deleting {assignments} assignment(s)")), "Cascade")
    }

    /// A RoleBinding beyond User Access Administrator's limit was deleted (SPEC §3);
    /// `offence` says why.
    pub fn user_access_limit(offence: &str) -> Notice {
        Notice::warning("UserAccessAdministratorLimit", note(&format!("deleted: {offence}")), "Revoke")
    }

    /// Seed 002: subscription `namespace` was transferred to `tenant`, which definition
    /// `definition` delegated to; the delegation is removed.
    pub fn removed_on_transfer(namespace: &str, definition: &str, tenant: &str) -> Notice {
        let text = format!(
            "{namespace}/{definition}: subscription {namespace} now belongs to tenant {tenant}, which this definition delegated to: the delegation is removed (other managing tenants keep their access)"
        );
        Notice::normal("RemovedOnTransfer", note(&text), "Transfer")
    }
}

fn condition(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: None,
    }
}

/// `Degraded`: True with every narrowing when the catalog narrowed an accepted definition
/// (SPEC §4), else False.
fn degraded(valid: &ValidDefinition, generation: Option<i64>) -> Condition {
    match valid.narrowed.first() {
        Some(first) => {
            let all: Vec<String> = valid.narrowed.iter().map(ToString::to_string).collect();
            condition("Degraded", ConditionStatus::True, first.rule.reason(), all.join("; "), generation)
        }
        None => {
            condition("Degraded", ConditionStatus::False, "CatalogCurrent", CATALOG_CURRENT.to_string(), generation)
        }
    }
}

/// `Compliant` (docs/guardrails.md, the audit): False with every guardrail finding when a
/// guardrail forbids part of the definition (whether that rejected it or withheld the part),
/// else True. The providers and delegations views and the PolicyReports read it.
pub fn compliant(verdict: &Result<ValidDefinition, Rejection>, generation: Option<i64>) -> Condition {
    let findings: Vec<&FieldError> = match verdict {
        Ok(valid) => valid.narrowed.iter().filter(|e| e.rule.is_guardrail()).collect(),
        Err(rejection) => rejection.0.iter().filter(|e| e.rule.is_guardrail()).collect(),
    };
    match findings.first() {
        Some(first) => {
            let all: Vec<String> = findings.iter().map(ToString::to_string).collect();
            condition(COMPLIANT, ConditionStatus::False, first.rule.reason(), all.join("; "), generation)
        }
        None => condition(
            COMPLIANT,
            ConditionStatus::True,
            "GuardrailsAllow",
            "no guardrail forbids any part of it".to_string(),
            generation,
        ),
    }
}

/// The condition type of [`compliant`].
pub const COMPLIANT: &str = "Compliant";

/// The conditions without `Degraded`: a rejected delegation is not degraded, it is failed.
fn without_degraded(conditions: &[Condition]) -> Vec<Condition> {
    conditions.iter().filter(|c| c.type_ != "Degraded").cloned().collect()
}

/// The status of an assignment with `generation` and recorded status `existing` after
/// `outcome`, at `now` (transition times move only when a condition changes).
pub fn assignment_status(
    generation: Option<i64>,
    existing: &RegistrationAssignmentStatus,
    outcome: &Outcome,
    now: Time,
) -> RegistrationAssignmentStatus {
    let (managed_by_tenant_id, managee_tenant_id) = outcome.tenants();
    let (state, namespaces, mut conditions) = match outcome {
        Outcome::Granted(granted) => {
            let valid = &granted.valid;
            let principals: usize = valid.grants.iter().map(|g| g.subjects.len()).sum();
            let in_force = if granted.desired.bindings.is_empty() { vec![] } else { granted.scope.namespaces.clone() };
            let ready = if in_force.is_empty() {
                // Valid, but nothing left to grant (every role it names left the catalog).
                let reason = valid.narrowed.first().map_or("NothingGranted", |n| n.rule.reason());
                let message = format!("no access of tenant {} is in force", valid.managing_tenant);
                condition("Ready", ConditionStatus::False, reason, message, generation)
            } else {
                let message = format!(
                    "access of tenant {} in force in {} namespace(s): {} role(s), {} subject(s)",
                    valid.managing_tenant,
                    in_force.len(),
                    valid.grants.len(),
                    principals
                );
                condition("Ready", ConditionStatus::True, "Granted", message, generation)
            };
            let conditions = merge_condition(&existing.conditions, ready, now.clone());
            let conditions = merge_condition(&conditions, degraded(valid, generation), now);
            (ProvisioningState::Succeeded, in_force, conditions)
        }
        Outcome::Rejected(rejected) => {
            let r = &rejected.rejection;
            let ready = condition("Ready", ConditionStatus::False, r.reason(), r.to_string(), generation);
            (ProvisioningState::Failed, vec![], merge_condition(&without_degraded(&existing.conditions), ready, now))
        }
    };
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    RegistrationAssignmentStatus {
        provisioning_state: Some(state),
        managed_by_tenant_id,
        managee_tenant_id,
        namespaces,
        observed_generation: generation,
        conditions,
    }
}

/// One write of the apply step that the API server refused: the object, what the write was
/// for, and the API server's answer. The shell reports them; nothing else is skipped because
/// of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteFailure {
    /// `Role` or `RoleBinding`.
    pub kind: String,
    /// The object's namespace (empty for a list across namespaces).
    pub namespace: String,
    /// The object's name (empty for a list).
    pub name: String,
    /// A deletion of access no longer wanted, rather than a write of access wanted.
    pub revoke: bool,
    /// The API server's answer, or why the controller did not write.
    pub error: String,
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.revoke { "deleting" } else { "writing" };
        if self.name.is_empty() {
            write!(f, "listing {}s: {}", self.kind, self.error)
        } else {
            write!(f, "{what} {} {}/{}: {}", self.kind, self.namespace, self.name, self.error)
        }
    }
}

/// Ready's reason when access no longer wanted could not be removed.
pub const REVOKE_FAILED: &str = "RevokeFailed";
/// Ready's reason when access wanted could not be written (and every removal succeeded).
pub const APPLY_FAILED: &str = "ApplyFailed";

/// `status` (what the outcome implies, from [`assignment_status`]) corrected for the writes
/// of the apply step that failed: `provisioningState` Failed (the provisioning did not
/// complete), `Ready=False` naming each failed write with the API server's answer, and
/// `namespaces` where RBAC of the assignment really is in force (`in_force`; None when it
/// could not be listed: the recorded namespaces stay). A rejection keeps its rule as the
/// reason and says what it could not remove. Unchanged when nothing failed.
pub fn with_write_failures(
    existing: &RegistrationAssignmentStatus,
    mut status: RegistrationAssignmentStatus,
    failures: &[WriteFailure],
    in_force: Option<Vec<String>>,
    now: Time,
) -> RegistrationAssignmentStatus {
    if failures.is_empty() {
        return status;
    }
    let details: Vec<String> = failures.iter().map(ToString::to_string).collect();
    let details = details.join("; ");
    let rejected = status.provisioning_state == Some(ProvisioningState::Failed);
    let generation = status.observed_generation;
    let ready = match condition_of(&status.conditions, "Ready") {
        Some(r) if rejected => {
            let message = format!("{}; access not yet removed, retrying: {details}", r.message);
            condition("Ready", ConditionStatus::False, &r.reason, message, generation)
        }
        _ => {
            let revoke = failures.iter().any(|f| f.revoke);
            let (reason, what) = if revoke {
                (REVOKE_FAILED, "access no longer delegated is still in force")
            } else {
                (APPLY_FAILED, "access delegated is not all in force")
            };
            let message = format!("{what}: {} write(s) failed, retrying: {details}", failures.len());
            condition("Ready", ConditionStatus::False, reason, message, generation)
        }
    };
    // Transition time as against the recorded Ready, not the one `status` just computed.
    let mut base: Vec<Condition> = status.conditions.iter().filter(|c| c.type_ != "Ready").cloned().collect();
    base.extend(condition_of(&existing.conditions, "Ready").cloned());
    status.conditions = merge_condition(&base, ready, now);
    status.provisioning_state = Some(ProvisioningState::Failed);
    if let Some(in_force) = in_force {
        status.namespaces = in_force;
    } else {
        status.namespaces = existing.namespaces.clone();
    }
    status
}

fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
}

/// Equal apart from transition times: no status write is needed.
pub fn same_assignment_status(a: &RegistrationAssignmentStatus, b: &RegistrationAssignmentStatus) -> bool {
    same_conditions(&a.conditions, &b.conditions)
        && a.provisioning_state == b.provisioning_state
        && a.managed_by_tenant_id == b.managed_by_tenant_id
        && a.managee_tenant_id == b.managee_tenant_id
        && a.namespaces == b.namespaces
        && a.observed_generation == b.observed_generation
}

fn condition_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `Ready`'s status and reason: what a transition Event is about.
pub fn ready_of(conditions: &[Condition]) -> Option<(&ConditionStatus, &str)> {
    condition_of(conditions, "Ready").map(|c| (&c.status, c.reason.as_str()))
}

/// Events for a change of outcome from status `old` to `new`; none when nothing changed, so
/// an idle controller writes nothing.
pub fn assignment_notices(
    outcome: &Outcome,
    old: &RegistrationAssignmentStatus,
    new: &RegistrationAssignmentStatus,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    if ready_of(&old.conditions) != ready_of(&new.conditions) {
        let ready = condition_of(&new.conditions, "Ready");
        let failed_write = ready.filter(|c| [APPLY_FAILED, REVOKE_FAILED].contains(&c.reason.as_str()));
        notices.push(match (outcome, failed_write) {
            (Outcome::Granted(_), Some(c)) => Notice::warning(&c.reason, note(&c.message), "Materialize"),
            (Outcome::Granted(_), None) => {
                Notice::normal("Granted", ready.and_then(|c| note(&c.message)), "Materialize")
            }
            (Outcome::Rejected(rejected), _) => Notice::rejected(&rejected.rejection),
        });
    }
    fn degraded_message(s: &RegistrationAssignmentStatus) -> Option<&String> {
        condition_of(&s.conditions, "Degraded").filter(|c| c.status == ConditionStatus::True).map(|c| &c.message)
    }
    if let Some(message) = degraded_message(new).filter(|m| degraded_message(old) != Some(*m)) {
        let reason = condition_of(&new.conditions, "Degraded").map_or("Degraded", |c| c.reason.as_str());
        notices.push(Notice::warning(reason, note(message), "Narrow"));
    }
    notices
}

/// The status of a definition with `generation` and recorded status `existing` after its
/// validation `verdict`, at `now`, and the Event to publish if `Ready`'s reason changed.
/// `managee` is the subscription's tenant, recorded even when the definition is rejected.
pub fn definition_status(
    generation: Option<i64>,
    existing: &RegistrationDefinitionStatus,
    verdict: &Result<ValidDefinition, Rejection>,
    managee: Option<String>,
    now: Time,
) -> (RegistrationDefinitionStatus, Notice) {
    match verdict {
        Ok(valid) => {
            let mut message = format!("valid: {} role(s) for tenant {}", valid.grants.len(), valid.managing_tenant);
            if !valid.warnings.is_empty() {
                message.push_str(&format!("; warnings: {}", valid.warnings.join("; ")));
            }
            let ready = condition("Ready", ConditionStatus::True, "Valid", message, generation);
            let conditions = merge_condition(&existing.conditions, ready, now.clone());
            let conditions = merge_condition(&conditions, degraded(valid, generation), now.clone());
            let conditions = merge_condition(&conditions, compliant(verdict, generation), now);
            let notice = if valid.warnings.is_empty() {
                Notice::normal("Valid", None, "Validate")
            } else {
                Notice::warning("IndirectDataExposure", note(&valid.warnings.join("; ")), "Validate")
            };
            let status = RegistrationDefinitionStatus {
                provisioning_state: Some(ProvisioningState::Succeeded),
                managee_tenant_id: Some(valid.home_tenant.to_string()),
                observed_generation: generation,
                accepted_generation: generation,
                conditions,
            };
            (status, notice)
        }
        Err(rejection) => {
            let ready =
                condition("Ready", ConditionStatus::False, rejection.reason(), rejection.to_string(), generation);
            let status = RegistrationDefinitionStatus {
                provisioning_state: Some(ProvisioningState::Failed),
                managee_tenant_id: managee,
                observed_generation: generation,
                accepted_generation: existing.accepted_generation,
                conditions: merge_condition(
                    &merge_condition(&without_degraded(&existing.conditions), ready, now.clone()),
                    compliant(verdict, generation),
                    now,
                ),
            };
            (status, Notice::rejected(rejection))
        }
    }
}

/// Equal apart from transition times: no status write is needed.
pub fn same_definition_status(a: &RegistrationDefinitionStatus, b: &RegistrationDefinitionStatus) -> bool {
    same_conditions(&a.conditions, &b.conditions)
        && a.provisioning_state == b.provisioning_state
        && a.managee_tenant_id == b.managee_tenant_id
        && a.observed_generation == b.observed_generation
        && a.accepted_generation == b.accepted_generation
}

/// The `kubelighthouse.io/managed-by-tenants` value of a subscription (Azure's
/// `managedByTenants`, SPEC §7): the sorted, comma-separated managing tenants of the
/// assignments in force in it and its resource groups, given their statuses: Succeeded, or
/// Failed with RBAC still in force somewhere (a write failed: what is there still grants).
/// None when none.
pub fn managed_by_tenants<'a>(statuses: impl IntoIterator<Item = &'a RegistrationAssignmentStatus>) -> Option<String> {
    let tenants: BTreeSet<&str> = statuses
        .into_iter()
        .filter(|s| s.provisioning_state == Some(ProvisioningState::Succeeded) || !s.namespaces.is_empty())
        .filter_map(|s| s.managed_by_tenant_id.as_deref())
        .collect();
    (!tenants.is_empty()).then(|| tenants.into_iter().collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests;
