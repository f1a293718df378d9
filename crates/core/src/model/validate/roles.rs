//! SPEC §3 rule 3 and §4: the verdict on one role reference. Custom roles (outside the
//! catalog) and Owner are rejected; a catalog role is delegable when its rules hold no
//! rejected permission ([`crate::model::rules`] judges them).

use super::text::quoted;
use super::{FieldError, Rule};
use crate::model::catalog::{Catalog, CatalogRole, Lookup};
use crate::model::rules::Classification;

/// The verdict on one role reference.
pub(super) enum RoleVerdict<'a> {
    /// In the catalog and delegable. User Access Administrator comes with an empty
    /// classification: its own rules (RBAC writes) are never materialized.
    Delegable(&'a CatalogRole, Classification),
    /// In the catalog, but holding rejected permissions: the error names them.
    NotDelegable(&'a CatalogRole, FieldError),
    /// Several catalog ClusterRoles answer to the reference: the error names them; the boxed
    /// verdict is on the oldest claimant, the role an accepted delegation keeps.
    Ambiguous(FieldError, Box<RoleVerdict<'a>>),
    /// Owner, or not in the catalog.
    Rejected(FieldError),
}

/// Judges the role `id` named at `field`.
pub(super) fn judge_role<'a>(catalog: &'a Catalog, id: &str, field: &str) -> RoleVerdict<'a> {
    match catalog.lookup(id) {
        Lookup::Owner => RoleVerdict::Rejected(FieldError::new(Rule::OwnerRole, field, "Owner can never be delegated")),
        Lookup::NotInCatalog => RoleVerdict::Rejected(FieldError::new(
            Rule::RoleNotInCatalog,
            field,
            format!("role {} is not in the catalog (custom roles are not supported)", quoted(id)),
        )),
        Lookup::Found(role) => match catalog.conflict(id) {
            Some(claimants) => RoleVerdict::Ambiguous(
                FieldError::new(
                    Rule::AmbiguousRole,
                    field,
                    format!(
                        "role {} is claimed by more than one catalog ClusterRole ({}): by GUID, name or display name; \
                         new delegations cannot name it until only one claims it; existing ones keep {}, the oldest",
                        quoted(id.trim()),
                        claimants.join(", "),
                        role.name
                    ),
                ),
                Box::new(judge_found(role, field)),
            ),
            None => judge_found(role, field),
        },
    }
}

/// The verdict on the catalog role `role` named at `field`.
fn judge_found<'a>(role: &'a CatalogRole, field: &str) -> RoleVerdict<'a> {
    match role {
        // Its own rules (RBAC writes) are never materialized: it only assigns its
        // delegatedRoleDefinitionIds to managed identities (seed 002), see `delegated_roles`.
        role if role.is_user_access_administrator() => RoleVerdict::Delegable(role, Classification::default()),
        role => {
            let c = role.classification.clone();
            if c.is_delegable() {
                RoleVerdict::Delegable(role, c)
            } else {
                let why: Vec<String> = c.findings.iter().map(ToString::to_string).collect();
                RoleVerdict::NotDelegable(
                    role,
                    FieldError::new(
                        Rule::RoleNotDelegable,
                        field,
                        format!("role {} is not delegable: {}", role.label(), why.join(", ")),
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- rule 3: roles ----------------------------------------------------------------------------

    #[test]
    fn roles_outside_the_catalog_are_rejected() {
        let w = World::new();
        for (at, role) in [
            (0, UNKNOWN_ROLE),
            (1, "my-custom-role"),
            (2, "system:node"),
            (3, "Storage Blob Data Contributor"),
            (1, "kubelighthouse:reader-typo"),
            (2, "8e3af657a8ff443ca75c2fe8c4bcb635"),
        ] {
            let r = rejection(w.validate(&with_at(at, auth(P3, role))));
            let field = format!("spec.authorizations[{at}].roleDefinitionId");
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::RoleNotInCatalog, &field),
                "{role}"
            );
            assert!(r.0[0].message.contains("custom roles"), "{r}");
        }
    }

    #[test]
    fn owner_is_never_delegable() {
        let in_catalog = catalog_with(vec![catalog_cluster_role(
            "owner",
            Some(OWNER),
            Some("Owner"),
            vec![rule(&[""], &["pods"], &["get"])],
        )]);
        for (w, role) in [
            (World::new(), OWNER.to_string()),
            (World::new(), OWNER.to_uppercase()),
            (World::with_catalog(in_catalog.clone()), OWNER.to_string()),
            (World::with_catalog(in_catalog.clone()), "owner".to_string()),
            (World::with_catalog(in_catalog), "Owner".to_string()),
        ] {
            assert_eq!(
                errors(w.validate(&with_at(2, auth(P3, &role)))),
                one(Rule::OwnerRole, "spec.authorizations[2].roleDefinitionId"),
                "{role}"
            );
        }
    }

    #[test]
    fn catalog_roles_with_rejected_permissions_are_not_delegable() {
        let cases: &[(&str, Vec<PolicyRule>, &[&str])] = &[
            (
                "reads-secrets",
                vec![rule(&[""], &["pods"], &["get"]), rule(&[""], &["secrets"], &["get", "list"])],
                &["rules[1] grants get secrets", "rules[1] grants list secrets", "reads secrets"],
            ),
            ("wildcard-verb", vec![rule(&[""], &["configmaps"], &["*"])], &["grants * configmaps", "wildcard verb"]),
            ("wildcard-resource", vec![rule(&["apps"], &["*"], &["get"])], &["grants get apps/*", "wildcard resource"]),
            (
                "rbac-writer",
                vec![rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["create"])],
                &["grants create rbac.authorization.k8s.io/rolebindings", "writes RBAC objects"],
            ),
            (
                "binder",
                vec![rule(&["rbac.authorization.k8s.io"], &["roles"], &["bind"])],
                &["bind, escalate or impersonate"],
            ),
            (
                "exec",
                vec![rule(&[""], &["pods/exec"], &["create"])],
                &["grants create pods/exec", "exec, attach, port-forward or proxy"],
            ),
            (
                "token-minter",
                vec![rule(&[""], &["serviceaccounts/token"], &["create"])],
                &["creates service account tokens"],
            ),
            ("namespace-writer", vec![rule(&[""], &["namespaces"], &["delete"])], &["writes namespaces"]),
            (
                "delegator",
                vec![rule(&["managedservices.kubelighthouse.io"], &["registrationdefinitions"], &["create"])],
                &["writes delegations"],
            ),
        ];
        let extra = cases
            .iter()
            .map(|(name, rules, _)| catalog_cluster_role(name, None, Some(&format!("Test {name}")), rules.clone()))
            .collect();
        let w = World::with_catalog(catalog_with(extra));
        for (name, _, findings) in cases {
            let r = rejection(w.validate(&with_at(1, auth(P2, name))));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::RoleNotDelegable, "spec.authorizations[1].roleDefinitionId"),
                "{name}"
            );
            let message = &r.0[0].message;
            assert!(message.starts_with(&format!("role Test {name} ({name}) is not delegable: ")), "{message}");
            for finding in *findings {
                assert!(message.contains(finding), "{name}: {finding:?} not in {message}");
            }
        }
    }

    /// Representative rules of Kubernetes' bootstrap ClusterRoles (as aggregated in v1.30).
    fn view_rules() -> Vec<PolicyRule> {
        vec![
            rule(
                &[""],
                &[
                    "configmaps",
                    "endpoints",
                    "persistentvolumeclaims",
                    "persistentvolumeclaims/status",
                    "pods",
                    "replicationcontrollers",
                    "replicationcontrollers/scale",
                    "serviceaccounts",
                    "services",
                    "services/status",
                ],
                &["get", "list", "watch"],
            ),
            rule(
                &[""],
                &[
                    "bindings",
                    "events",
                    "limitranges",
                    "namespaces/status",
                    "pods/log",
                    "pods/status",
                    "resourcequotas",
                    "resourcequotas/status",
                ],
                &["get", "list", "watch"],
            ),
            rule(&[""], &["namespaces"], &["get", "list", "watch"]),
            rule(
                &["apps"],
                &[
                    "controllerrevisions",
                    "daemonsets",
                    "deployments",
                    "deployments/scale",
                    "replicasets",
                    "statefulsets",
                ],
                &["get", "list", "watch"],
            ),
            rule(&["batch"], &["cronjobs", "jobs"], &["get", "list", "watch"]),
            rule(&["networking.k8s.io"], &["ingresses", "networkpolicies"], &["get", "list", "watch"]),
        ]
    }

    fn edit_rules() -> Vec<PolicyRule> {
        let mut rules = view_rules();
        rules.extend([
            rule(
                &[""],
                &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"],
                &["get", "list", "watch"],
            ),
            rule(&[""], &["serviceaccounts"], &["impersonate"]),
            rule(
                &[""],
                &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
                &["create", "delete", "deletecollection", "patch", "update"],
            ),
            rule(&[""], &["pods/eviction"], &["create"]),
            rule(
                &[""],
                &["configmaps", "secrets", "services", "services/proxy"],
                &["create", "delete", "deletecollection", "patch", "update"],
            ),
            rule(&[""], &["serviceaccounts/token"], &["create"]),
            rule(
                &["apps"],
                &["deployments", "deployments/scale", "statefulsets"],
                &["create", "delete", "deletecollection", "patch", "update"],
            ),
        ]);
        rules
    }

    fn admin_rules() -> Vec<PolicyRule> {
        let mut rules = edit_rules();
        rules.extend([
            rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
            rule(
                &["rbac.authorization.k8s.io"],
                &["rolebindings", "roles"],
                &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            ),
        ]);
        rules
    }

    fn cluster_admin_rules() -> Vec<PolicyRule> {
        vec![
            rule(&["*"], &["*"], &["*"]),
            PolicyRule { non_resource_urls: Some(vec!["*".into()]), verbs: vec!["*".into()], ..Default::default() },
        ]
    }

    fn bootstrap(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
        let mut role = catalog_cluster_role(name, None, None, rules);
        // Bootstrap roles are in the catalog by name, labelled or not.
        role.metadata.labels = None;
        role.metadata.annotations = None;
        role
    }

    fn bootstrap_world() -> World {
        World::with_catalog(catalog_with(vec![
            bootstrap("view", view_rules()),
            bootstrap("edit", edit_rules()),
            bootstrap("admin", admin_rules()),
            bootstrap("cluster-admin", cluster_admin_rules()),
        ]))
    }

    #[test]
    fn bootstrap_view_passes_with_its_rules_copied() {
        let w = bootstrap_world();
        let v = valid(w.validate(&spec(vec![typed(P1, PrincipalType::Group, "view")])));
        assert_eq!(grant_roles(&v), ["view"]);
        assert_eq!(grant(&v, "view").rules, view_rules());
        assert_eq!(grant(&v, "view").subjects, [group(&projected(P1))]);
        // view reads ConfigMaps: the indirect exposure is a warning, not a rejection.
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert!(v.warnings[0].starts_with("view: can read ConfigMaps"));
    }

    #[test]
    fn bootstrap_edit_admin_and_cluster_admin_are_rejected() {
        let w = bootstrap_world();
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "edit",
                &[
                    "grants get secrets",
                    "grants create pods/exec",
                    "grants create pods/attach",
                    "grants create pods/portforward",
                    "grants get services/proxy",
                    "grants impersonate serviceaccounts",
                    "grants create serviceaccounts/token",
                ],
                &["rbac.authorization.k8s.io", "wildcard"],
            ),
            (
                "admin",
                &[
                    "grants get secrets",
                    "grants create pods/exec",
                    "grants create rbac.authorization.k8s.io/rolebindings",
                    "grants update rbac.authorization.k8s.io/roles",
                ],
                &["wildcard"],
            ),
            ("cluster-admin", &["grants * */*", "wildcard verb", "wildcard resource", "grants * on *"], &[]),
        ];
        for (role, present, absent) in cases {
            let r = rejection(w.validate(&spec(vec![auth(P1, role)])));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::RoleNotDelegable, "spec.authorizations[0].roleDefinitionId"),
                "{role}"
            );
            let message = &r.0[0].message;
            for p in *present {
                assert!(message.contains(p), "{role}: {p:?} not in {message}");
            }
            for a in *absent {
                assert!(!message.contains(a), "{role}: {a:?} in {message}");
            }
        }
    }

    // --- the shipped catalog ----------------------------------------------------------------------

    #[test]
    fn every_shipped_role_is_delegable_by_guid_name_and_display_name() {
        let w = World::new();
        let shipped = shipped_cluster_roles();
        assert_eq!(shipped.len(), 7);
        for role in shipped {
            let name = role.metadata.name.clone().expect("named");
            let annotations = role.metadata.annotations.clone().expect("annotated");
            let guid = &annotations["kubelighthouse.io/role-definition-id"];
            let display = &annotations["kubelighthouse.io/role-display-name"];
            for reference in [guid.clone(), name.clone(), display.to_lowercase()] {
                let a = if guid == USER_ACCESS_ADMINISTRATOR { uaa(P1, &[READER]) } else { auth(P1, &reference) };
                let a = Authorization { role_definition_id: reference.clone(), ..a };
                let v = valid(w.validate(&spec(vec![a])));
                if guid == USER_ACCESS_ADMINISTRATOR {
                    assert!(v.grants.is_empty(), "{reference}");
                } else {
                    assert_eq!(grant_roles(&v), [name.as_str()], "{reference}");
                }
            }
        }
    }
}
