//! What a valid definition grants (SPEC §2, §4, §5): one [`Grant`] per catalog role with the
//! role's delegable rules and the projected subjects of every principal that holds it; User
//! Access Administrators grouped by the roles they may assign; and the Warnings about
//! indirect data exposure of the granted roles.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::Subject;

use super::{FieldError, Grant, UserAccess, ValidDefinition};
use crate::model::catalog::CatalogRole;
use crate::model::rules::Classification;
use crate::model::tenant::Guid;

/// The grants of the authorizations that passed their rules so far.
#[derive(Default)]
pub(super) struct Collected {
    /// By catalog role name.
    by_role: BTreeMap<String, Grant>,
    /// By the sorted names of the roles they may assign.
    user_access: BTreeMap<Vec<String>, UserAccess>,
    /// "<role label>: <warning>", de-duplicated.
    warnings: BTreeSet<String>,
}

impl Collected {
    /// Grants `role`, classified as `classification`, to `subjects`. User Access
    /// Administrator's own catalog rules are never copied: its subjects get exactly the right
    /// to bind the `assignable` roles (see `desired`).
    pub(super) fn add(
        &mut self,
        role: &CatalogRole,
        classification: &Classification,
        mut assignable: Vec<Grant>,
        subjects: Vec<Subject>,
    ) {
        self.warnings.extend(classification.warnings.iter().map(|w| format!("{}: {w}", role.label())));
        if role.is_user_access_administrator() {
            assignable.sort_by(|a, b| a.role.cmp(&b.role));
            assignable.dedup_by(|a, b| a.role == b.role);
            let key: Vec<String> = assignable.iter().map(|g| g.role.clone()).collect();
            let entry = self.user_access.entry(key).or_insert_with(|| UserAccess { subjects: Vec::new(), assignable });
            entry.subjects.extend(subjects);
            return;
        }
        let grant = self.by_role.entry(role.name.clone()).or_insert_with(|| Grant {
            role: role.name.clone(),
            rules: classification.delegable_rules.clone(),
            subjects: Vec::new(),
        });
        grant.subjects.extend(subjects);
    }

    /// The valid definition of `subscription`, its subjects sorted and de-duplicated.
    pub(super) fn into_definition(
        self,
        managing_tenant: Guid,
        home_tenant: Guid,
        subscription: &str,
        narrowed: Vec<FieldError>,
        eligible: Vec<super::eligible::Eligible>,
    ) -> ValidDefinition {
        let mut grants: Vec<Grant> = self.by_role.into_values().collect();
        for g in &mut grants {
            sort_subjects(&mut g.subjects);
        }
        let mut user_access: Vec<UserAccess> = self.user_access.into_values().collect();
        for u in &mut user_access {
            sort_subjects(&mut u.subjects);
        }
        ValidDefinition {
            managing_tenant,
            home_tenant,
            subscription: subscription.to_string(),
            grants,
            warnings: self.warnings.into_iter().collect(),
            narrowed,
            user_access,
            eligible,
        }
    }
}

pub(super) fn sort_subjects(subjects: &mut Vec<Subject>) {
    subjects.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    subjects.dedup();
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- grants -----------------------------------------------------------------------------------

    #[test]
    fn grants_are_one_per_role_with_sorted_projected_subjects() {
        let w = World::new();
        let v = valid(w.validate(&spec(vec![
            typed(P3, PrincipalType::Group, CONTRIBUTOR),
            auth(&P2.to_uppercase(), READER),
            typed(P1, PrincipalType::User, "Contributor"),
            typed(P1, PrincipalType::ServicePrincipal, READER),
            typed("msp-automation/deployer", PrincipalType::ServiceAccount, READER),
            auth(P3, REGISTRATION_ASSIGNMENT_DELETE),
        ])));
        assert_eq!(
            grant_roles(&v),
            ["kubelighthouse:contributor", "kubelighthouse:reader", "kubelighthouse:registration-assignment-delete",]
        );
        assert_eq!(grant(&v, "kubelighthouse:contributor").subjects, [group(&projected(P3)), user(projected(P1))]);
        assert_eq!(
            grant(&v, "kubelighthouse:reader").subjects,
            [
                group(&projected(P2)),
                Subject {
                    kind: "ServiceAccount".into(),
                    name: "deployer".into(),
                    namespace: Some("msp-automation".into()),
                    api_group: Some(String::new()),
                },
                user(projected(P1)),
                user(projected(P2)),
            ]
        );
        assert_eq!(
            grant(&v, "kubelighthouse:registration-assignment-delete").subjects,
            [group(&projected(P3)), user(projected(P3))]
        );
        // No upper case survives projection.
        for g in &v.grants {
            for s in &g.subjects {
                assert_eq!(s.name, s.name.to_lowercase(), "{s:?}");
            }
        }
    }

    #[test]
    fn grants_hold_the_catalog_rules_of_a_delegable_role() {
        let w = World::new();
        let v = valid(w.validate(&spec(vec![
            auth(P1, CONTRIBUTOR),
            auth(P1, LOG_ANALYTICS),
            auth(P1, RESOURCE_POLICY),
            auth(P1, VM_CONTRIBUTOR),
        ])));
        for g in &v.grants {
            let Lookup::Found(role) = w.catalog.lookup(&g.role) else {
                panic!("{} not in catalog", g.role);
            };
            assert_eq!(g.rules, role.rules, "{}", g.role);
        }
        assert!(!grant(&v, "kubelighthouse:contributor").rules.is_empty());
    }

    #[test]
    fn grants_use_the_configured_identity_templates() {
        let mut w = World::new();
        w.templates = IdentityTemplates {
            user: "oidc-{tenantId}:{principalId}".into(),
            group: "oidc-{tenantId}:groups:{principalId}".into(),
        };
        let v = valid(w.validate(&spec(vec![auth(P1, READER)])));
        assert_eq!(
            grant(&v, "kubelighthouse:reader").subjects,
            [group(&format!("oidc-{MSP}:groups:{P1}")), user(format!("oidc-{MSP}:{P1}")),]
        );
    }

    #[test]
    fn warnings_name_the_role_and_are_deduplicated() {
        let w = World::new();
        let v = valid(w.validate(&spec(vec![
            auth(P1, CONTRIBUTOR),
            auth(P2, CONTRIBUTOR),
            auth(P1, VM_CONTRIBUTOR),
            auth(P1, RESOURCE_POLICY),
        ])));
        let prefixes: Vec<&str> = v.warnings.iter().map(|w| w.split(": ").next().unwrap_or_default()).collect();
        assert_eq!(
            prefixes,
            [
                "Contributor (kubelighthouse:contributor)",
                "Contributor (kubelighthouse:contributor)",
                "Contributor (kubelighthouse:contributor)",
                "Virtual Machine Contributor (kubelighthouse:virtual-machine-contributor)",
            ],
            "{:?}",
            v.warnings
        );
        assert!(v.warnings.iter().any(|w| w.contains("ConfigMaps")));
        assert!(v.warnings.iter().all(|w| !w.contains("Resource Policy")));
    }
}
