//! SPEC §3 rule 3 (seed 002): User Access Administrator only assigns its
//! `delegatedRoleDefinitionIds` to managed identities. It needs at least one; each must be a
//! delegable catalog role other than UAA and Owner; no other role takes delegated roles.

use super::roles::{judge_role, RoleVerdict};
use super::{FieldError, Findings, Grant, Rule};
use crate::api::Authorization;
use crate::model::catalog::{Catalog, CatalogRole};

/// The roles the authorization at `at`, whose role is `role`, may assign to managed
/// identities, with their delegable rules and no subjects; empty for any role but UAA.
pub(super) fn assignable_roles(
    catalog: &Catalog,
    auth: &Authorization,
    role: &CatalogRole,
    at: &str,
    findings: &mut Findings,
) -> Vec<Grant> {
    let mut assignable = Vec::new();
    if !role.is_user_access_administrator() {
        if !auth.delegated_role_definition_ids.is_empty() {
            findings.errors.push(FieldError::new(
                Rule::DelegatedRolesWithoutUserAccessAdministrator,
                format!("{at}.delegatedRoleDefinitionIds"),
                format!("only User Access Administrator takes delegated roles, not {}", role.label()),
            ));
        }
        return assignable;
    }
    if auth.delegated_role_definition_ids.is_empty() {
        findings.errors.push(FieldError::new(
            Rule::UserAccessAdministratorWithoutDelegatedRoles,
            format!("{at}.delegatedRoleDefinitionIds"),
            "User Access Administrator requires the roles it may assign to managed identities",
        ));
    }
    for (j, delegated) in auth.delegated_role_definition_ids.iter().enumerate() {
        let field = format!("{at}.delegatedRoleDefinitionIds[{j}]");
        match judge_role(catalog, delegated, &field) {
            RoleVerdict::Delegable(d, _) if d.is_user_access_administrator() => findings.errors.push(FieldError::new(
                Rule::DelegatedRoleNotAllowed,
                field,
                "User Access Administrator cannot assign User Access Administrator",
            )),
            RoleVerdict::Delegable(d, c) => {
                assignable.push(Grant { role: d.name.clone(), rules: c.delegable_rules, subjects: Vec::new() })
            }
            RoleVerdict::NotDelegable(_, e) | RoleVerdict::Rejected(e) => {
                findings.errors.push(FieldError { rule: Rule::DelegatedRoleNotAllowed, ..e })
            }
            // Which role a User Access Administrator hands on must be beyond doubt.
            RoleVerdict::Ambiguous(e, _) => findings.errors.push(e),
        }
    }
    assignable
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- rule 3: User Access Administrator ------------------------------------------------------

    #[test]
    fn user_access_administrator_requires_delegated_roles() {
        let w = World::new();
        for role in [USER_ACCESS_ADMINISTRATOR, "kubelighthouse:user-access-administrator", "User Access Administrator"]
        {
            assert_eq!(
                errors(w.validate(&with_at(1, auth(P2, role)))),
                one(
                    Rule::UserAccessAdministratorWithoutDelegatedRoles,
                    "spec.authorizations[1].delegatedRoleDefinitionIds"
                ),
                "{role}"
            );
        }
    }

    #[test]
    fn user_access_administrator_delegates_only_delegable_roles() {
        let w = World::new();
        let s = with_at(
            1,
            uaa(
                P2,
                &[
                    CONTRIBUTOR,
                    USER_ACCESS_ADMINISTRATOR,
                    OWNER,
                    UNKNOWN_ROLE,
                    SECRET_READER,
                    "Reader",
                    "kubelighthouse:user-access-administrator",
                ],
            ),
        );
        let r = rejection(w.validate(&s));
        let at = |j: usize| format!("spec.authorizations[1].delegatedRoleDefinitionIds[{j}]");
        assert_eq!(
            r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
            [1, 2, 3, 4, 6].map(|j| (Rule::DelegatedRoleNotAllowed, at(j)))
        );
        let messages: Vec<&str> = r.0.iter().map(|e| e.message.as_str()).collect();
        assert!(messages[0].contains("cannot assign User Access Administrator"));
        assert!(messages[1].contains("Owner"));
        assert!(messages[2].contains("not in the catalog"));
        assert!(messages[3].contains("get secrets"));
        assert!(messages[4].contains("cannot assign User Access Administrator"));
    }

    #[test]
    fn delegated_roles_belong_to_user_access_administrator_only() {
        let w = World::new();
        for role in [READER, CONTRIBUTOR, "kubelighthouse:log-analytics-contributor"] {
            let bad = Authorization { delegated_role_definition_ids: vec![READER.into()], ..auth(P3, role) };
            let r = rejection(w.validate(&with_at(2, bad)));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(
                    Rule::DelegatedRolesWithoutUserAccessAdministrator,
                    "spec.authorizations[2].delegatedRoleDefinitionIds"
                ),
                "{role}"
            );
        }
    }

    #[test]
    fn a_valid_user_access_administrator_materializes_no_grant_of_its_own() {
        let w = World::new();
        let v = valid(w.validate(&spec(vec![
            auth(P1, READER),
            uaa(P2, &[CONTRIBUTOR, "Reader"]),
            uaa(P3, &["kubelighthouse:virtual-machine-contributor"]),
        ])));
        assert_eq!(grant_roles(&v), ["kubelighthouse:reader"]);
        assert_eq!(grant(&v, "kubelighthouse:reader").subjects, [group(&projected(P1)), user(projected(P1))]);
        // Neither the RBAC writes of its catalog rules nor the delegated roles are granted to
        // the managing principal.
        assert!(v.narrowed.is_empty());
        let only_uaa = valid(w.validate(&spec(vec![uaa(P2, &[CONTRIBUTOR])])));
        assert!(only_uaa.grants.is_empty(), "{:?}", only_uaa.grants);
    }

    #[test]
    fn user_access_is_withheld_while_the_webhook_does_not_guard_and_the_rest_holds() {
        use crate::model::outcome::{decide_withholding, DefinitionSnapshot, Outcome, Snapshot};
        let w = World::new();
        let mut definition =
            crate::api::RegistrationDefinition::new("offer", spec(vec![auth(P1, CONTRIBUTOR), uaa(P2, &[READER])]));
        definition.metadata.namespace = Some("customer-a".into());
        let mut assignment = crate::api::RegistrationAssignment::new(
            "offer",
            crate::api::RegistrationAssignmentSpec {
                registration_definition_ref: crate::api::DefinitionRef { name: "offer".into() },
            },
        );
        assignment.metadata.namespace = Some("customer-a".into());
        let definition = DefinitionSnapshot::new(std::sync::Arc::new(definition), std::iter::empty());
        let snapshot = Snapshot::new(&assignment, std::iter::empty(), Some(definition));
        let roles = |outcome: &Outcome| -> Vec<String> {
            let desired = outcome.desired().expect("granted");
            desired
                .roles
                .iter()
                .filter_map(|r| r.metadata.name.clone())
                .filter(|n| n.starts_with("kubelighthouse:"))
                .collect()
        };
        let in_force = decide_withholding(&snapshot, &w.ctx(), None);
        assert!(roles(&in_force).iter().any(|n| n.contains(":assignable:")), "{:?}", roles(&in_force));
        let withheld =
            decide_withholding(&snapshot, &w.ctx(), Some("ValidatingWebhookConfiguration kl does not exist"));
        let names = roles(&withheld);
        assert!(
            !names.iter().any(|n| n.contains(":assignable:") || n.contains("user-access-administrator")),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n.ends_with(":kubelighthouse:contributor")), "the rest holds: {names:?}");
        let Outcome::Granted(granted) = withheld else { panic!("granted") };
        let narrowed = &granted.valid.narrowed;
        assert_eq!(narrowed.len(), 1);
        assert_eq!(narrowed[0].rule, Rule::UserAccessAdministratorWithheld);
        assert!(narrowed[0].message.ends_with("not in force: ValidatingWebhookConfiguration kl does not exist"));
    }
}
