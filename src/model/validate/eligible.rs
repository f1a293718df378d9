//! SPEC §9: eligible authorizations are validated like standing ones (§3 applies too) and
//! grant nothing until activated. User Access Administrator cannot be eligible.

use super::narrowing::eligible_role;
use super::{FieldError, Findings, Rule};
use crate::api::EligibleAuthorization;
use crate::model::catalog::Catalog;
use crate::model::tenant::Guid;

/// Records what is wrong with `spec.eligibleAuthorizations[i]`, and what a catalog change
/// after acceptance narrowed.
pub(super) fn check(
    catalog: &Catalog,
    eligible: &EligibleAuthorization,
    i: usize,
    accepted: bool,
    findings: &mut Findings,
) {
    let at = format!("spec.eligibleAuthorizations[{i}]");
    if Guid::parse(&eligible.principal_id).is_none() {
        findings.errors.push(FieldError::new(
            Rule::InvalidPrincipalId,
            format!("{at}.principalId"),
            format!("{:?} is not a GUID", eligible.principal_id),
        ));
    }
    let role_field = format!("{at}.roleDefinitionId");
    let role = eligible_role(catalog, &eligible.role_definition_id, &role_field, accepted, findings);
    if role.is_some_and(|role| role.is_user_access_administrator()) {
        findings.errors.push(FieldError::new(
            Rule::UserAccessAdministratorWithoutDelegatedRoles,
            role_field,
            "User Access Administrator cannot be an eligible authorization: it requires delegatedRoleDefinitionIds",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- eligible authorizations ------------------------------------------------------------------

    #[test]
    fn eligible_authorizations_are_validated_like_standing_ones() {
        let w = World::new();
        let cases: Vec<(EligibleAuthorization, Rule, &str)> = vec![
            (eligible("not-a-guid", READER), Rule::InvalidPrincipalId, "principalId"),
            (eligible(P1, SECRET_READER), Rule::RoleNotDelegable, "roleDefinitionId"),
            (eligible(P1, OWNER), Rule::OwnerRole, "roleDefinitionId"),
            (eligible(P1, UNKNOWN_ROLE), Rule::RoleNotInCatalog, "roleDefinitionId"),
            (
                eligible(P1, USER_ACCESS_ADMINISTRATOR),
                Rule::UserAccessAdministratorWithoutDelegatedRoles,
                "roleDefinitionId",
            ),
        ];
        for (e, rule, field) in cases {
            let mut s = spec(vec![auth(P1, READER)]);
            s.eligible_authorizations = vec![eligible(P2, CONTRIBUTOR), e.clone()];
            assert_eq!(errors(w.validate(&s)), one(rule, &format!("spec.eligibleAuthorizations[1].{field}")), "{e:?}");
        }
    }

    #[test]
    fn eligible_authorizations_grant_nothing_until_activated() {
        let w = World::new();
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible(P2, CONTRIBUTOR), eligible(P3, READER)];
        let v = valid(w.validate(&s));
        assert_eq!(grant_roles(&v), ["kubelighthouse:reader"]);
        assert_eq!(grant(&v, "kubelighthouse:reader").subjects, [group(&projected(P1)), user(projected(P1))]);
    }

    #[test]
    fn both_eligible_problems_are_reported() {
        let w = World::new();
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible("bob", SECRET_READER)];
        assert_eq!(
            errors(w.validate(&s)),
            [
                (Rule::InvalidPrincipalId, "spec.eligibleAuthorizations[0].principalId".to_string()),
                (Rule::RoleNotDelegable, "spec.eligibleAuthorizations[0].roleDefinitionId".to_string()),
            ]
        );
    }
}
