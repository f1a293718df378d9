//! SPEC §4 and seed 002: a catalog change after a definition was accepted narrows it instead
//! of rejecting it. A role that became undelegable keeps working without its rejected
//! permissions; one that left the catalog is revoked. A definition never accepted at its
//! current generation is judged afresh.

use super::roles::{judge_role, RoleVerdict};
use super::text::quoted;
use super::{FieldError, Findings, Rule};
use crate::model::catalog::{Catalog, CatalogRole};
use crate::model::rules::Classification;

/// The role of the standing authorization at `at`, with the classification whose delegable
/// rules it grants; None when it grants nothing (rejected, or revoked after acceptance).
pub(super) fn standing_role<'a>(
    catalog: &'a Catalog,
    id: &str,
    at: &str,
    accepted: bool,
    findings: &mut Findings,
) -> Option<(&'a CatalogRole, Classification)> {
    let field = format!("{at}.roleDefinitionId");
    match judge_role(catalog, id, &field) {
        RoleVerdict::Delegable(role, c) => Some((role, c)),
        RoleVerdict::NotDelegable(role, e) if accepted => {
            findings.narrowed.push(FieldError::new(
                Rule::RoleNotDelegable,
                field,
                format!("{}; those permissions are withheld, the rest stays in force", e.message),
            ));
            Some((role, role.classification.clone()))
        }
        RoleVerdict::Rejected(e) if accepted && e.rule == Rule::RoleNotInCatalog => {
            findings.narrowed.push(FieldError::new(
                Rule::RoleRemovedFromCatalog,
                field,
                format!("role {} left the catalog; its access is revoked", quoted(id)),
            ));
            None
        }
        RoleVerdict::NotDelegable(_, e) | RoleVerdict::Rejected(e) => {
            findings.errors.push(e);
            None
        }
    }
}

/// The role of the eligible authorization whose role is named at `field`, as for standing
/// access: after acceptance, a catalog change narrows, never rejects. None when it is not
/// delegable as it is.
pub(super) fn eligible_role<'a>(
    catalog: &'a Catalog,
    id: &str,
    field: &str,
    accepted: bool,
    findings: &mut Findings,
) -> Option<&'a CatalogRole> {
    match judge_role(catalog, id, field) {
        RoleVerdict::Delegable(role, _) => Some(role),
        RoleVerdict::NotDelegable(_, e) if accepted => {
            findings.narrowed.push(e);
            None
        }
        RoleVerdict::Rejected(e) if accepted && e.rule == Rule::RoleNotInCatalog => {
            findings.narrowed.push(FieldError::new(
                Rule::RoleRemovedFromCatalog,
                field,
                format!("role {} left the catalog; it can no longer be activated", quoted(id)),
            ));
            None
        }
        RoleVerdict::NotDelegable(_, e) | RoleVerdict::Rejected(e) => {
            findings.errors.push(e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- catalog changes after onboarding (seed 002) ----------------------------------------------

    const CHANGING: &str = "test:changing";
    const CHANGING_GUID: &str = "c0ffee00-0000-4000-8000-000000000001";

    fn changing_role(rules: Vec<PolicyRule>) -> ClusterRole {
        catalog_cluster_role(CHANGING, Some(CHANGING_GUID), Some("Changing"), rules)
    }

    fn before_change() -> World {
        World::with_catalog(catalog_with(vec![changing_role(vec![rule(&[""], &["pods"], &["get", "list"])])]))
    }

    /// The role now also reads Secrets (in the same rule as pods) and ConfigMaps.
    fn after_change() -> World {
        World::with_catalog(catalog_with(vec![changing_role(vec![
            rule(&[""], &["pods", "secrets"], &["get", "list"]),
            rule(&[""], &["configmaps"], &["get"]),
        ])]))
    }

    fn changing_spec() -> RegistrationDefinitionSpec {
        spec(vec![auth(P1, READER), typed(P2, PrincipalType::Group, CHANGING_GUID)])
    }

    #[test]
    fn a_role_that_became_undelegable_is_narrowed_for_accepted_definitions() {
        let s = changing_spec();
        let before = valid(before_change().revalidate(&s, Some(4), Some(4)));
        assert_eq!(grant(&before, CHANGING).rules, [rule(&[""], &["pods"], &["get", "list"])]);
        assert!(before.narrowed.is_empty());

        let after = valid(after_change().revalidate(&s, Some(4), Some(4)));
        assert_eq!(grant_roles(&after), ["kubelighthouse:reader", CHANGING]);
        let g = grant(&after, CHANGING);
        // Secrets are withheld; the harmless addition is granted.
        assert_eq!(g.rules, [rule(&[""], &["pods"], &["get", "list"]), rule(&[""], &["configmaps"], &["get"]),]);
        assert!(g.rules.iter().all(|r| !r.resources.iter().flatten().any(|x| x == "secrets")));
        assert_eq!(g.subjects, [group(&projected(P2))]);
        assert_eq!(
            after.narrowed.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
            [(Rule::RoleNotDelegable, "spec.authorizations[1].roleDefinitionId")]
        );
        let message = &after.narrowed[0].message;
        assert!(message.contains("get secrets"), "{message}");
        assert!(message.contains("withheld"), "{message}");
    }

    #[test]
    fn a_role_that_became_undelegable_is_rejected_without_acceptance() {
        let s = changing_spec();
        for (generation, accepted) in [(Some(4), None), (Some(5), Some(4)), (None, Some(4)), (None, None)] {
            let r = rejection(after_change().revalidate(&s, generation, accepted));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
                [(Rule::RoleNotDelegable, "spec.authorizations[1].roleDefinitionId")],
                "{generation:?} {accepted:?}"
            );
        }
    }

    #[test]
    fn a_role_removed_from_the_catalog_is_revoked_for_accepted_definitions() {
        let s = changing_spec();
        let removed = World::new();
        let v = valid(removed.revalidate(&s, Some(2), Some(2)));
        assert_eq!(grant_roles(&v), ["kubelighthouse:reader"]);
        assert_eq!(
            v.narrowed.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
            [(Rule::RoleRemovedFromCatalog, "spec.authorizations[1].roleDefinitionId")]
        );
        assert!(v.narrowed[0].message.contains("revoked"));

        assert_eq!(
            errors(removed.revalidate(&s, Some(3), Some(2))),
            one(Rule::RoleNotInCatalog, "spec.authorizations[1].roleDefinitionId")
        );
    }

    #[test]
    fn acceptance_does_not_excuse_other_rules() {
        let w = after_change();
        let cases: Vec<(Authorization, Rule, &str)> = vec![
            (auth(P3, OWNER), Rule::OwnerRole, "spec.authorizations[1].roleDefinitionId"),
            (auth("bob", READER), Rule::InvalidPrincipalId, "spec.authorizations[1].principalId"),
            (
                uaa(P3, &[CHANGING_GUID]),
                Rule::DelegatedRoleNotAllowed,
                "spec.authorizations[1].delegatedRoleDefinitionIds[0]",
            ),
        ];
        for (a, rule, field) in cases {
            let s = spec(vec![auth(P1, READER), a]);
            assert_eq!(errors(w.revalidate(&s, Some(1), Some(1))), one(rule, field), "{rule:?}");
        }
    }

    #[test]
    fn eligible_authorizations_are_narrowed_not_rejected_after_a_catalog_change() {
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible(P2, CHANGING_GUID)];

        let v = valid(after_change().revalidate(&s, Some(1), Some(1)));
        assert_eq!(grant_roles(&v), ["kubelighthouse:reader"]);
        assert_eq!(
            v.narrowed.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
            [(Rule::RoleNotDelegable, "spec.eligibleAuthorizations[0].roleDefinitionId")]
        );
        let v = valid(World::new().revalidate(&s, Some(1), Some(1)));
        assert_eq!(v.narrowed.iter().map(|e| e.rule).collect::<Vec<_>>(), [Rule::RoleRemovedFromCatalog]);

        assert_eq!(
            errors(after_change().revalidate(&s, Some(2), Some(1))),
            one(Rule::RoleNotDelegable, "spec.eligibleAuthorizations[0].roleDefinitionId")
        );
    }
}
