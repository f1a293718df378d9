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
