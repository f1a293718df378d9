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
    standing_verdict(judge_role(catalog, id, &field), id, &field, accepted, findings)
}

fn standing_verdict<'a>(
    verdict: RoleVerdict<'a>,
    id: &str,
    field: &str,
    accepted: bool,
    findings: &mut Findings,
) -> Option<(&'a CatalogRole, Classification)> {
    match verdict {
        // A second claimant of the name never takes over: the accepted delegation keeps the
        // oldest claimant's role, and says so.
        RoleVerdict::Ambiguous(e, kept) if accepted => {
            findings.narrowed.push(e);
            standing_verdict(*kept, id, field, accepted, findings)
        }
        RoleVerdict::Ambiguous(e, _) => {
            findings.errors.push(e);
            None
        }
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
    eligible_verdict(judge_role(catalog, id, field), id, field, accepted, findings)
}

fn eligible_verdict<'a>(
    verdict: RoleVerdict<'a>,
    id: &str,
    field: &str,
    accepted: bool,
    findings: &mut Findings,
) -> Option<&'a CatalogRole> {
    match verdict {
        RoleVerdict::Ambiguous(e, kept) if accepted => {
            findings.narrowed.push(e);
            eligible_verdict(*kept, id, field, accepted, findings)
        }
        RoleVerdict::Ambiguous(e, _) => {
            findings.errors.push(e);
            None
        }
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

    // --- a second claimant of a role's GUID or name (issue 26, item 8) ---------------------------

    fn created(mut role: ClusterRole, second: i64) -> ClusterRole {
        let at = jiff::Timestamp::from_second(1_700_000_000 + second).expect("timestamp");
        role.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
        role
    }

    /// The chart's roles, created first; Reader with the rules the cluster aggregates into it.
    fn shipped_at_install() -> Vec<ClusterRole> {
        shipped_cluster_roles()
            .into_iter()
            .map(|mut r| {
                if r.metadata.name.as_deref() == Some("kubelighthouse:reader") {
                    r.rules = Some(vec![rule(&[""], &["pods", "configmaps"], &["get", "list", "watch"])]);
                }
                created(r, 0)
            })
            .collect()
    }

    /// A newcomer, created after the chart's roles, that writes what it likes.
    fn newcomer(name: &str, guid: Option<&str>, display: Option<&str>) -> ClusterRole {
        created(
            catalog_cluster_role(
                name,
                guid,
                display,
                vec![rule(&[""], &["configmaps", "pods"], &["create", "delete", "get"])],
            ),
            60,
        )
    }

    fn world_with(extra: ClusterRole) -> World {
        let mut roles = shipped_at_install();
        roles.push(extra);
        World::with_catalog(Catalog::from_cluster_roles(&roles))
    }

    #[test]
    fn a_second_claimant_never_takes_over_an_accepted_delegation() {
        // "aaa" sorts before "kubelighthouse:reader": the order of names must not decide.
        for (how, extra, id) in [
            ("GUID", newcomer("aaa:reader", Some(READER), None), READER),
            ("display name", newcomer("aaa:reader", None, Some("reader")), "Reader"),
            ("ClusterRole name", newcomer("Reader", None, None), "Reader"),
        ] {
            let w = world_with(extra);
            let s = spec(vec![auth(P1, id)]);
            let v = valid(w.revalidate(&s, Some(3), Some(3)));
            assert_eq!(grant_roles(&v), ["kubelighthouse:reader"], "{how}");
            let rules = &grant(&v, "kubelighthouse:reader").rules;
            assert!(
                rules.iter().all(|r| r.verbs.iter().all(|v| ["get", "list", "watch"].contains(&v.as_str()))),
                "{how}: {rules:?}"
            );
            assert_eq!(
                v.narrowed.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
                [(Rule::AmbiguousRole, "spec.authorizations[0].roleDefinitionId")],
                "{how}"
            );
            let message = &v.narrowed[0].message;
            let newcomer_name = w.catalog.claimants(id).last().map(|r| r.name.clone()).unwrap_or_default();
            assert!(message.contains(&format!("(kubelighthouse:reader, {newcomer_name})")), "{how}: {message}");
        }
    }

    #[test]
    fn a_second_claimant_makes_the_name_unusable_for_new_delegations() {
        let w = world_with(newcomer("aaa:reader", Some(READER), Some("Reader")));
        for id in [READER, "Reader", "reader"] {
            let r = rejection(w.validate(&spec(vec![auth(P1, id)])));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
                [(Rule::AmbiguousRole, "spec.authorizations[0].roleDefinitionId")],
                "{id}"
            );
            assert!(r.0[0].message.contains("(kubelighthouse:reader, aaa:reader)"), "oldest first: {}", r.0[0].message);
        }
        // Eligible and delegated references too.
        let mut s = spec(vec![auth(P1, CONTRIBUTOR), uaa(P2, &[READER])]);
        s.eligible_authorizations = vec![eligible(P3, READER)];
        assert_eq!(
            errors(w.validate(&s)),
            [
                (Rule::AmbiguousRole, "spec.authorizations[1].delegatedRoleDefinitionIds[0]".to_string()),
                (Rule::AmbiguousRole, "spec.eligibleAuthorizations[0].roleDefinitionId".to_string()),
            ]
        );
        // The name of the ClusterRole itself is no claim on anything else: still one role.
        assert!(w.validate(&spec(vec![auth(P1, "kubelighthouse:reader")])).is_ok());
        // An accepted eligible authorization keeps the oldest claimant.
        let mut s = spec(vec![auth(P1, CONTRIBUTOR)]);
        s.eligible_authorizations = vec![eligible(P3, READER)];
        let v = valid(w.revalidate(&s, Some(2), Some(2)));
        assert_eq!(v.eligible.iter().map(|e| e.role.as_str()).collect::<Vec<_>>(), ["kubelighthouse:reader"]);
        assert_eq!(v.narrowed.iter().map(|e| e.rule).collect::<Vec<_>>(), [Rule::AmbiguousRole]);
    }

    // --- a role's documented class (issue 26, item 9) ---------------------------------------------

    /// What kube-controller-manager makes of Reader once a ClusterRole labelled
    /// `rbac.authorization.k8s.io/aggregate-to-view` with write verbs exists.
    fn reader_aggregating_writes() -> World {
        let mut roles = shipped_cluster_roles();
        for r in &mut roles {
            if r.metadata.name.as_deref() == Some("kubelighthouse:reader") {
                r.rules = Some(vec![
                    rule(&[""], &["pods", "configmaps"], &["get", "list", "watch"]),
                    rule(&[""], &["configmaps"], &["create", "update", "patch", "delete"]),
                ]);
            }
        }
        World::with_catalog(Catalog::from_cluster_roles(&roles))
    }

    #[test]
    fn reader_stays_read_only_whatever_is_aggregated_into_it() {
        let w = reader_aggregating_writes();
        let s = spec(vec![auth(P1, READER)]);
        let v = valid(w.revalidate(&s, Some(1), Some(1)));
        assert_eq!(
            grant(&v, "kubelighthouse:reader").rules,
            [rule(&[""], &["pods", "configmaps"], &["get", "list", "watch"])]
        );
        assert_eq!(v.narrowed.iter().map(|e| e.rule).collect::<Vec<_>>(), [Rule::RoleNotDelegable]);
        assert!(
            v.narrowed[0].message.contains("grants create configmaps: outside what the role is documented to grant"),
            "{}",
            v.narrowed[0].message
        );
        let r = rejection(w.validate(&s));
        assert_eq!(r.0.iter().map(|e| e.rule).collect::<Vec<_>>(), [Rule::RoleNotDelegable]);
        // `view` is read-only too; Contributor is not held to it.
        let view = World::with_catalog(catalog_with(vec![ClusterRole {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("view".into()),
                ..Default::default()
            },
            rules: Some(vec![rule(&[""], &["configmaps"], &["get", "create"])]),
            aggregation_rule: None,
        }]));
        assert_eq!(
            errors(view.validate(&spec(vec![auth(P1, "view")]))),
            one(Rule::RoleNotDelegable, "spec.authorizations[0].roleDefinitionId")
        );
        assert!(World::new().validate(&spec(vec![auth(P1, CONTRIBUTOR)])).is_ok());
    }
}
