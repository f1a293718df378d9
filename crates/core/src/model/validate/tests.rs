//! Tests of SPEC §3 over a whole definition: every rule family's errors are collected in
//! field order, and the reasons and messages they show. Each family's own tests are beside it.

use super::fixtures::*;

// --- all errors, reason, display --------------------------------------------------------------

#[test]
fn every_error_is_collected_in_field_order() {
    let w = World::new();
    let s = spec_for("contoso", vec![auth("bob", READER), auth(P2, "my-custom-role")]);
    let r = rejection(w.validate(&s));
    assert_eq!(
        r.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
        [
            (Rule::InvalidTenantId, "spec.managedByTenantId"),
            (Rule::InvalidPrincipalId, "spec.authorizations[0].principalId"),
            (Rule::RoleNotInCatalog, "spec.authorizations[1].roleDefinitionId"),
        ]
    );
    assert_eq!(r.reason(), "InvalidTenantId");
    let text = r.to_string();
    for part in [
        "spec.managedByTenantId: \"contoso\" is not a GUID (InvalidTenantId)",
        "spec.authorizations[0].principalId: \"bob\" is not a GUID (InvalidPrincipalId)",
        "spec.authorizations[1].roleDefinitionId: ",
        "(RoleNotInCatalog)",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
    assert_eq!(text.matches("; ").count(), 2, "{text}");
}

#[test]
fn errors_of_every_section_are_collected() {
    let w = World::new();
    let mut s = spec(vec![auth("bob", OWNER), auth(P1, "edit")]);
    s.authorizations[1].delegated_role_definition_ids = vec![READER.into()];
    let mut w2 = World::new();
    w2.limits.max_authorizations_per_definition = 1;
    assert_eq!(
        errors(w2.validate_facts(&DefinitionFacts { older_definitions: 500, ..fresh("customer-a-web", &s) })),
        [
            (Rule::NotASubscription, "metadata.namespace".to_string()),
            (Rule::TooManyDefinitions, "metadata.namespace".to_string()),
            (Rule::TooManyAuthorizations, "spec.authorizations".to_string()),
            (Rule::InvalidPrincipalId, "spec.authorizations[0].principalId".to_string()),
            (Rule::OwnerRole, "spec.authorizations[0].roleDefinitionId".to_string()),
            (Rule::RoleNotInCatalog, "spec.authorizations[1].roleDefinitionId".to_string()),
        ]
    );
    // `edit` is not in this catalog; the same spec fails in the default world too.
    assert_eq!(rejection(w.validate(&s)).reason(), "InvalidPrincipalId");
}

#[test]
fn reasons_are_the_variant_names() {
    use Rule::*;
    let all = [
        InvalidTenantId,
        SameTenant,
        NotASubscription,
        InvalidScope,
        DefinitionNotFound,
        DefinitionInvalid,
        DuplicateAssignment,
        RoleNotInCatalog,
        RoleRemovedFromCatalog,
        AmbiguousRole,
        OwnerRole,
        RoleNotDelegable,
        UserAccessAdministratorWithoutDelegatedRoles,
        DelegatedRoleNotAllowed,
        DelegatedRolesWithoutUserAccessAdministrator,
        TooManyDefinitions,
        TooManyAuthorizations,
        InvalidPrincipalId,
        ServiceAccountOutsideManagingTenant,
        DuplicateAuthorization,
    ];
    for rule in all {
        assert_eq!(rule.reason(), format!("{rule:?}"));
    }
    assert_eq!(Rejection(Vec::new()).reason(), "Invalid");
    let e = FieldError::new(SameTenant, "spec.managedByTenantId", "same");
    assert_eq!(e.to_string(), "spec.managedByTenantId: same (SameTenant)");
}
// --- SPEC §9's own rules on eligible authorizations (validate/eligible.rs) ---------------------

fn with_policy(principal: &str, role: &str, duration: Option<&str>, approvers: &[&str]) -> EligibleAuthorization {
    let mut e = eligible(principal, role);
    e.just_in_time_access_policy = Some(crate::api::JustInTimeAccessPolicy {
        multi_factor_auth_provider: crate::api::MultiFactorAuthProvider::None,
        maximum_activation_duration: duration.map(String::from),
        managed_by_tenant_approvers: approvers
            .iter()
            .map(|a| crate::api::EligibleApprover { principal_id: a.to_string(), principal_id_display_name: None })
            .collect(),
    });
    e
}

#[test]
fn eligible_authorizations_break_spec_9_rules_with_rule_and_field() {
    let w = World::new();
    let mut service_account = eligible(P1, CONTRIBUTOR);
    service_account.principal_type = Some(PrincipalType::ServiceAccount);
    let eleven: Vec<&str> = std::iter::repeat_n(P3, 11).collect();
    let cases: Vec<(Vec<EligibleAuthorization>, Rule, &str)> = vec![
        (vec![service_account], Rule::IneligiblePrincipal, "spec.eligibleAuthorizations[0].principalType"),
        (
            vec![with_policy(P1, CONTRIBUTOR, Some("PT20M"), &[])],
            Rule::InvalidActivationDuration,
            "spec.eligibleAuthorizations[0].justInTimeAccessPolicy.maximumActivationDuration",
        ),
        (
            vec![with_policy(P1, CONTRIBUTOR, Some("PT9H"), &[])],
            Rule::InvalidActivationDuration,
            "spec.eligibleAuthorizations[0].justInTimeAccessPolicy.maximumActivationDuration",
        ),
        (
            vec![with_policy(P1, CONTRIBUTOR, Some("four hours"), &[])],
            Rule::InvalidActivationDuration,
            "spec.eligibleAuthorizations[0].justInTimeAccessPolicy.maximumActivationDuration",
        ),
        (
            vec![with_policy(P1, CONTRIBUTOR, None, &eleven)],
            Rule::TooManyApprovers,
            "spec.eligibleAuthorizations[0].justInTimeAccessPolicy.managedByTenantApprovers",
        ),
        (
            vec![with_policy(P1, CONTRIBUTOR, None, &["msp-automation/deployer"])],
            Rule::IneligiblePrincipal,
            "spec.eligibleAuthorizations[0].justInTimeAccessPolicy.managedByTenantApprovers[0].principalId",
        ),
        (
            vec![with_policy(P1, CONTRIBUTOR, Some("PT1H"), &[]), with_policy(P1, CONTRIBUTOR, Some("PT2H"), &[])],
            Rule::ConflictingEligiblePolicies,
            "spec.eligibleAuthorizations[1]",
        ),
    ];
    for (eligible, rule, field) in cases {
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = eligible.clone();
        assert_eq!(errors(w.validate(&s)), one(rule, field), "{eligible:?}");
    }
}

#[test]
fn a_valid_eligible_authorization_is_resolved_for_activation() {
    let w = World::new();
    let mut s = spec(vec![auth(P1, READER)]);
    let mut e = with_policy(P2, CONTRIBUTOR, Some("PT4H"), &[P3]);
    e.principal_type = Some(PrincipalType::Group);
    // The same role and principal twice with the same policy is no conflict.
    s.eligible_authorizations = vec![e.clone(), e];
    let v = valid(w.validate(&s));
    assert_eq!(v.eligible.len(), 1);
    let e = &v.eligible[0];
    assert_eq!(e.role, "kubelighthouse:contributor");
    assert_eq!(e.subjects, [group(&projected(P2))], "a Group principal projects to its group only");
    assert_eq!(e.approvers, [group(&projected(P3)), user(projected(P3))], "approvers match by user or group");
    assert_eq!(e.max_duration, jiff::SignedDuration::from_hours(4));
    assert!(!e.requires_mfa);
    assert!(!e.rules.is_empty());
}
