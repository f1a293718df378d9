//! The status and Events each outcome implies, and when nothing needs writing.

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

use super::*;
use crate::model::desired::DesiredRbac;
use crate::model::outcome::{Granted, Rejected};
use crate::model::projection::user;
use crate::model::scope::Scope;
use crate::model::tenant::Guid;
use crate::model::validate::{FieldError, Grant, Rule};

const MSP: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
const CUSTOMER: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

fn at(seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(seconds).expect("timestamp"))
}

fn valid(narrowed: Vec<FieldError>, warnings: Vec<String>) -> ValidDefinition {
    ValidDefinition {
        managing_tenant: Guid::parse(MSP).expect("guid"),
        home_tenant: Guid::parse(CUSTOMER).expect("guid"),
        subscription: "sub".into(),
        grants: vec![Grant {
            role: "kubelighthouse:reader".into(),
            rules: vec![],
            subjects: vec![user("a"), user("b")],
        }],
        warnings,
        narrowed,
        user_access: vec![],
        eligible: vec![],
    }
}

fn narrowing() -> FieldError {
    FieldError {
        rule: Rule::RoleRemovedFromCatalog,
        field: "spec.authorizations[1].roleDefinitionId".into(),
        message: "left the catalog".into(),
    }
}

fn granted(narrowed: Vec<FieldError>, in_force: bool) -> Outcome {
    let desired = if in_force {
        DesiredRbac { roles: vec![Role::default()], bindings: vec![RoleBinding::default()] }
    } else {
        DesiredRbac::default()
    };
    Outcome::Granted(Box::new(Granted {
        scope: Scope {
            namespace: "sub".into(),
            subscription: "sub".into(),
            home_tenant: Guid::parse(CUSTOMER).expect("guid"),
            namespaces: vec!["rg".into(), "sub".into()],
        },
        valid: valid(narrowed, vec![]),
        desired,
        managed_by: MSP.into(),
    }))
}

fn rejection() -> Rejection {
    Rejection(vec![FieldError {
        rule: Rule::OwnerRole,
        field: "spec.authorizations[0].roleDefinitionId".into(),
        message: "Owner cannot be delegated".into(),
    }])
}

fn rejected() -> Outcome {
    Outcome::Rejected(Rejected { rejection: rejection(), managed_by: Some(MSP.into()), managee: None })
}

fn ready_condition(status: &RegistrationAssignmentStatus) -> &Condition {
    status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready")
}

#[test]
fn a_granted_assignment_is_succeeded_and_in_force_in_its_scope() {
    let status = assignment_status(Some(3), &Default::default(), &granted(vec![], true), at(100));
    assert_eq!(status.provisioning_state, Some(ProvisioningState::Succeeded));
    assert_eq!(status.namespaces, ["rg", "sub"]);
    assert_eq!(status.managed_by_tenant_id.as_deref(), Some(MSP));
    assert_eq!(status.managee_tenant_id.as_deref(), Some(CUSTOMER));
    assert_eq!(status.observed_generation, Some(3));
    let ready = ready_condition(&status);
    assert_eq!((ready.status, ready.reason.as_str()), (ConditionStatus::True, "Granted"));
    assert_eq!(ready.message, format!("access of tenant {MSP} in force in 2 namespace(s): 1 role(s), 2 subject(s)"));
    assert_eq!(ready.last_transition_time, Some(at(100)));
    let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["Degraded", "Ready"], "conditions are sorted by type");
    let degraded = &status.conditions[0];
    assert_eq!((degraded.status, degraded.message.as_str()), (ConditionStatus::False, CATALOG_CURRENT));
}

#[test]
fn valid_with_nothing_left_to_grant_is_not_ready_and_names_the_narrowing() {
    let status = assignment_status(Some(1), &Default::default(), &granted(vec![narrowing()], false), at(1));
    assert_eq!(status.provisioning_state, Some(ProvisioningState::Succeeded));
    assert!(status.namespaces.is_empty(), "nothing is in force");
    let ready = ready_condition(&status);
    assert_eq!((ready.status, ready.reason.as_str()), (ConditionStatus::False, "RoleRemovedFromCatalog"));
    let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded").expect("Degraded");
    assert_eq!(degraded.status, ConditionStatus::True);

    let status = assignment_status(Some(1), &Default::default(), &granted(vec![], false), at(1));
    assert_eq!(ready_condition(&status).reason, "NothingGranted");
}

#[test]
fn a_rejected_assignment_fails_with_the_rule_and_drops_degraded() {
    let before = assignment_status(Some(1), &Default::default(), &granted(vec![narrowing()], true), at(1));
    let status = assignment_status(Some(2), &before, &rejected(), at(2));
    assert_eq!(status.provisioning_state, Some(ProvisioningState::Failed));
    assert!(status.namespaces.is_empty());
    assert_eq!(status.managed_by_tenant_id.as_deref(), Some(MSP));
    assert_eq!(status.managee_tenant_id, None);
    assert_eq!(status.conditions.len(), 1, "a failed delegation is not degraded");
    let ready = ready_condition(&status);
    assert_eq!(ready.reason, "OwnerRole");
    assert!(ready.message.contains("spec.authorizations[0].roleDefinitionId"), "{}", ready.message);
    assert_eq!(ready.last_transition_time, Some(at(2)));
}

#[test]
fn an_unchanged_outcome_keeps_transition_times_and_needs_no_write() {
    let outcome = granted(vec![], true);
    let first = assignment_status(Some(1), &Default::default(), &outcome, at(1));
    let again = assignment_status(Some(1), &first, &outcome, at(50));
    assert!(same_assignment_status(&first, &again));
    assert_eq!(ready_condition(&again).last_transition_time, Some(at(1)), "no transition, no new time");
    assert!(assignment_notices(&outcome, &first, &again).is_empty(), "idle costs no Event");

    let later_generation = assignment_status(Some(2), &first, &outcome, at(50));
    assert!(!same_assignment_status(&first, &later_generation), "observedGeneration moved");
}

#[test]
fn a_change_of_outcome_publishes_one_event_and_a_new_narrowing_another() {
    let granted_outcome = granted(vec![], true);
    let empty = RegistrationAssignmentStatus::default();
    let granted_status = assignment_status(Some(1), &empty, &granted_outcome, at(1));
    let notices = assignment_notices(&granted_outcome, &empty, &granted_status);
    assert_eq!(notices.len(), 1);
    assert_eq!((notices[0].warning, notices[0].reason.as_str(), notices[0].action), (false, "Granted", "Materialize"));
    assert_eq!(notices[0].note.as_deref(), Some(ready_condition(&granted_status).message.as_str()));

    let rejected_status = assignment_status(Some(2), &granted_status, &rejected(), at(2));
    let notices = assignment_notices(&rejected(), &granted_status, &rejected_status);
    assert_eq!(notices.len(), 1);
    assert!(notices[0].warning);
    assert_eq!(notices[0].reason, "OwnerRole");
    assert!(notices[0].note.as_deref().is_some_and(|n| n.starts_with("nothing granted: ")));

    let narrowed = granted(vec![narrowing()], true);
    let narrowed_status = assignment_status(Some(1), &granted_status, &narrowed, at(3));
    let notices = assignment_notices(&narrowed, &granted_status, &narrowed_status);
    assert_eq!(notices.len(), 1, "still Granted; only the narrowing is news");
    assert_eq!(
        (notices[0].warning, notices[0].reason.as_str(), notices[0].action),
        (true, "RoleRemovedFromCatalog", "Narrow")
    );
    let again = assignment_status(Some(1), &narrowed_status, &narrowed, at(4));
    assert!(assignment_notices(&narrowed, &narrowed_status, &again).is_empty(), "the same narrowing is told once");
}

#[test]
fn a_valid_definition_is_accepted_at_its_generation() {
    let verdict = Ok(valid(vec![], vec![]));
    let (status, notice) = definition_status(Some(4), &Default::default(), &verdict, None, at(1));
    assert_eq!(status.provisioning_state, Some(ProvisioningState::Succeeded));
    assert_eq!(status.accepted_generation, Some(4));
    assert_eq!(status.managee_tenant_id.as_deref(), Some(CUSTOMER));
    assert_eq!(notice, Notice { warning: false, reason: "Valid".into(), note: None, action: "Validate" });
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.message, format!("valid: 1 role(s) for tenant {MSP}"));

    let again = definition_status(Some(4), &status, &verdict, None, at(9)).0;
    assert!(same_definition_status(&status, &again));
}

#[test]
fn a_definition_with_warnings_is_valid_with_a_warning_event() {
    let verdict = Ok(valid(vec![], vec!["secrets readable through pods/exec".into()]));
    let (status, notice) = definition_status(Some(1), &Default::default(), &verdict, None, at(1));
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert!(ready.message.ends_with("; warnings: secrets readable through pods/exec"), "{}", ready.message);
    assert!(notice.warning);
    assert_eq!(notice.reason, "IndirectDataExposure");
}

#[test]
fn a_rejected_definition_keeps_its_accepted_generation_and_records_the_subscription_tenant() {
    let accepted =
        definition_status(Some(1), &Default::default(), &Ok(valid(vec![narrowing()], vec![])), None, at(1)).0;
    let (status, notice) = definition_status(Some(2), &accepted, &Err(rejection()), Some(CUSTOMER.into()), at(2));
    assert_eq!(status.provisioning_state, Some(ProvisioningState::Failed));
    assert_eq!(status.accepted_generation, Some(1), "catalog changes later narrow what was accepted");
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.managee_tenant_id.as_deref(), Some(CUSTOMER));
    assert!(status.conditions.iter().all(|c| c.type_ != "Degraded"));
    assert_eq!((notice.warning, notice.reason.as_str()), (true, "OwnerRole"));
}

#[test]
fn managed_by_tenants_lists_each_tenant_in_force_once_sorted() {
    let status = |state, tenant: &str| RegistrationAssignmentStatus {
        provisioning_state: Some(state),
        managed_by_tenant_id: Some(tenant.into()),
        ..Default::default()
    };
    let statuses = [
        status(ProvisioningState::Succeeded, "b"),
        status(ProvisioningState::Succeeded, "a"),
        status(ProvisioningState::Succeeded, "b"),
        status(ProvisioningState::Failed, "c"),
    ];
    assert_eq!(managed_by_tenants(&statuses).as_deref(), Some("a,b"));
    assert_eq!(managed_by_tenants(&statuses[3..]), None, "a failed delegation manages nothing");
    assert_eq!(managed_by_tenants(&[]), None);
}

fn failure(revoke: bool) -> WriteFailure {
    WriteFailure {
        kind: "RoleBinding".into(),
        namespace: "rg".into(),
        name: "kubelighthouse:abc:kubelighthouse:reader".into(),
        revoke,
        error: "exceeded quota: no-bindings (403 Forbidden)".into(),
    }
}

#[test]
fn a_failed_write_fails_the_assignment_naming_the_object_and_the_answer() {
    let outcome = granted(vec![], true);
    let granted_status = assignment_status(Some(1), &Default::default(), &outcome, at(1));
    let computed = assignment_status(Some(2), &granted_status, &outcome, at(2));
    let status = with_write_failures(&granted_status, computed, &[failure(false)], Some(vec!["sub".into()]), at(2));
    assert_eq!(status.provisioning_state, Some(ProvisioningState::Failed));
    assert_eq!(status.namespaces, ["sub"], "where RBAC really is in force, not the whole scope");
    let ready = ready_condition(&status);
    assert_eq!((ready.status, ready.reason.as_str()), (ConditionStatus::False, APPLY_FAILED));
    assert!(
        ready.message.contains("writing RoleBinding rg/kubelighthouse:abc:kubelighthouse:reader: exceeded quota"),
        "{}",
        ready.message
    );
    assert_eq!(ready.last_transition_time, Some(at(2)));
    assert_eq!(ready.observed_generation, Some(2));

    // One Warning Event for the transition, none for each retry.
    let notices = assignment_notices(&outcome, &granted_status, &status);
    assert_eq!(notices.len(), 1);
    assert_eq!((notices[0].warning, notices[0].reason.as_str()), (true, APPLY_FAILED));
    assert!(notices[0].note.as_deref().is_some_and(|n| n.contains("exceeded quota")));
    let computed = assignment_status(Some(2), &status, &outcome, at(9));
    let retried = with_write_failures(&status, computed, &[failure(false)], Some(vec!["sub".into()]), at(9));
    assert!(same_assignment_status(&status, &retried), "a retry that fails the same way writes nothing");
    assert_eq!(ready_condition(&retried).last_transition_time, Some(at(2)));
    assert!(assignment_notices(&outcome, &status, &retried).is_empty());

    // The obstacle gone: Succeeded again, with a Normal Granted Event.
    let recovered = assignment_status(Some(2), &retried, &outcome, at(20));
    let recovered = with_write_failures(&retried, recovered, &[], Some(vec![]), at(20));
    assert_eq!(recovered.provisioning_state, Some(ProvisioningState::Succeeded));
    assert_eq!(recovered.namespaces, ["rg", "sub"]);
    let notices = assignment_notices(&outcome, &retried, &recovered);
    assert_eq!((notices[0].warning, notices[0].reason.as_str()), (false, "Granted"));
}

#[test]
fn a_failed_removal_is_revoke_failed_and_a_rejection_keeps_its_rule() {
    let outcome = granted(vec![], true);
    let computed = assignment_status(Some(1), &Default::default(), &outcome, at(1));
    let failures = [failure(false), failure(true)];
    let status = with_write_failures(&Default::default(), computed, &failures, Some(vec!["rg".into()]), at(1));
    let ready = ready_condition(&status);
    assert_eq!(ready.reason, REVOKE_FAILED, "access that should be gone is the graver news");
    assert!(ready.message.contains("2 write(s) failed"), "{}", ready.message);
    assert!(ready.message.contains("deleting RoleBinding rg/"), "{}", ready.message);

    let computed = assignment_status(Some(2), &Default::default(), &rejected(), at(2));
    let status = with_write_failures(&Default::default(), computed, &[failure(true)], Some(vec!["rg".into()]), at(2));
    assert_eq!(status.provisioning_state, Some(ProvisioningState::Failed));
    assert_eq!(status.namespaces, ["rg"], "the binding not yet removed is still in force");
    let ready = ready_condition(&status);
    assert_eq!(ready.reason, "OwnerRole");
    assert!(ready.message.contains("access not yet removed, retrying: deleting RoleBinding rg/"), "{}", ready.message);

    // A list that failed: where access is in force is unknown, the recorded namespaces stay.
    let recorded = RegistrationAssignmentStatus { namespaces: vec!["sub".into()], ..Default::default() };
    let computed = assignment_status(Some(2), &recorded, &rejected(), at(2));
    let list = WriteFailure { namespace: String::new(), name: String::new(), ..failure(true) };
    let status = with_write_failures(&recorded, computed, &[list], None, at(2));
    assert_eq!(status.namespaces, ["sub"]);
    assert!(ready_condition(&status).message.contains("listing RoleBindings: exceeded"), "{status:?}");
}

#[test]
fn a_failed_assignment_still_in_force_is_among_the_managing_tenants() {
    let failed = RegistrationAssignmentStatus {
        provisioning_state: Some(ProvisioningState::Failed),
        managed_by_tenant_id: Some("c".into()),
        namespaces: vec!["sub".into()],
        ..Default::default()
    };
    assert_eq!(managed_by_tenants(&[failed]).as_deref(), Some("c"), "its RBAC still grants");
}

#[test]
fn notes_are_cut_to_the_event_limit_on_a_character_boundary() {
    assert_eq!(note("short").as_deref(), Some("short"));
    let long = "é".repeat(600);
    let cut = note(&long).expect("note");
    assert!(cut.len() <= NOTE_MAX && cut.ends_with("..."), "{}", cut.len());
}

#[test]
fn removal_on_transfer_names_the_subscription_the_definition_and_the_tenant() {
    let notice = Notice::removed_on_transfer("sub", "offer", MSP);
    assert_eq!((notice.reason.as_str(), notice.action, notice.warning), ("RemovedOnTransfer", "Transfer", false));
    assert!(notice.note.as_deref().is_some_and(|n| n.starts_with("sub/offer: subscription sub now belongs to tenant")));
}
