//! Every catalog role through every materialization path: as a standing authorization, as a
//! role a User Access Administrator may bind, and as an activated eligible authorization. For
//! the same (assignment, namespace) each path must hold the same rules
//! ([`crate::model::desired::materialized_rules`]), and a role refused by one path is refused
//! by all. The catalog is the chart's (`charts/kube-lighthouse/files/catalog.yaml`, Reader with
//! what Kubernetes aggregates into `view`) and Kubernetes' bootstrap roles.

use jiff::Timestamp;

use super::fixtures::*;
use crate::model::activation::{activation_part, activation_rbac, InForce};
use crate::model::desired::{self, assignable_name, object_name, AssignmentRef};

const EVERY_VERB: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

/// Kubernetes' bootstrap roles, as Kubernetes 1.37 aggregates them (the rules that matter to
/// the verdict; plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go).
fn bootstrap_roles() -> Vec<ClusterRole> {
    let read = &["get", "list", "watch"][..];
    let view = vec![
        rule(
            &[""],
            &[
                "pods",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "configmaps",
                "serviceaccounts",
            ],
            read,
        ),
        rule(&[""], &["limitranges", "resourcequotas", "pods/log", "pods/status", "namespaces"], read),
        rule(&["", "events.k8s.io"], &["events"], read),
        rule(&["discovery.k8s.io"], &["endpointslices"], read),
        rule(&["apps"], &["deployments", "deployments/scale", "replicasets", "statefulsets", "daemonsets"], read),
        rule(&["batch"], &["jobs", "cronjobs"], read),
        rule(&["networking.k8s.io"], &["ingresses", "networkpolicies"], read),
    ];
    let mut edit = view.clone();
    edit.extend([
        rule(&[""], &["secrets", "pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "services/proxy"], read),
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        rule(&[""], &["pods", "services", "configmaps", "secrets"], EVERY_VERB),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&["apps"], &["deployments", "replicasets"], EVERY_VERB),
    ]);
    let mut admin = edit.clone();
    admin.push(rule(&["rbac.authorization.k8s.io"], &["roles", "rolebindings"], EVERY_VERB));
    let cluster_admin = vec![rule(&["*"], &["*"], &["*"])];
    let plain = |name: &str, rules: Vec<PolicyRule>| ClusterRole {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        rules: Some(rules),
        aggregation_rule: None,
    };
    vec![plain("view", view), plain("edit", edit), plain("admin", admin), plain("cluster-admin", cluster_admin)]
}

/// The chart's catalog, Reader holding what the cluster aggregates into `view`, and the
/// bootstrap roles.
fn every_catalog_role() -> Catalog {
    let bootstrap = bootstrap_roles();
    let view_rules = bootstrap[0].rules.clone();
    let mut roles = shipped_cluster_roles();
    for role in &mut roles {
        if role.metadata.name.as_deref() == Some("kubelighthouse:reader") {
            role.rules = view_rules.clone();
        }
    }
    roles.extend(bootstrap);
    Catalog::from_cluster_roles(&roles)
}

fn assignment() -> AssignmentRef {
    AssignmentRef { namespace: "customer-a".into(), name: "contoso".into(), uid: "uid-1".into() }
}

fn rules_of(rbac: &desired::DesiredRbac, namespace: &str, name: &str) -> Vec<PolicyRule> {
    rbac.roles
        .iter()
        .find(|r| r.metadata.namespace.as_deref() == Some(namespace) && r.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no Role {name} in {namespace}"))
        .rules
        .clone()
        .unwrap_or_default()
}

#[test]
fn every_catalog_role_grants_the_same_through_every_path() {
    let world = World::with_catalog(every_catalog_role());
    let a = assignment();
    let namespaces = ["customer-a".to_string(), "customer-a-web".to_string()];
    let mut materialized = 0;
    for role in world.catalog.roles() {
        if role.is_user_access_administrator() {
            // Never materialized from its own rules: see delegated_roles.
            continue;
        }
        let id = role.name.as_str();
        let standing = world.validate(&spec(vec![auth(P1, id)]));
        let delegated = world.validate(&spec(vec![auth(P1, READER), uaa(P2, &[id])]));
        let mut only_eligible = spec(vec![auth(P1, READER)]);
        only_eligible.eligible_authorizations = vec![eligible(P3, id)];
        let activatable = world.validate(&only_eligible);
        if standing.is_err() {
            assert!(delegated.is_err(), "{id}: refused standing, but a User Access Administrator may bind it");
            assert!(activatable.is_err(), "{id}: refused standing, but eligible");
            continue;
        }
        let mut every = spec(vec![auth(P1, id), uaa(P2, &[id])]);
        every.eligible_authorizations = vec![eligible(P3, id)];
        let valid = valid(world.validate(&every));
        let rbac = desired::build(&a, &valid, &namespaces);
        let used = valid.eligible.iter().find(|e| e.role == role.name).expect("the eligible authorization");
        for namespace in &namespaces {
            let activation = InForce {
                namespace: namespace.clone(),
                name: "oncall".into(),
                uid: "act-1".into(),
                username: "oidc-engineer".into(),
                role: used.role.clone(),
                rules: used.rules.clone(),
                expires_at: Timestamp::UNIX_EPOCH,
            };
            let activated = activation_rbac(&a, MSP, &[activation]);
            let standing = rules_of(&rbac, namespace, &object_name(&a, id));
            let assignable = rules_of(&rbac, namespace, &assignable_name(&a, id));
            let active = rules_of(&activated, namespace, &object_name(&a, &activation_part("oncall")));
            assert_eq!(standing, assignable, "{id} in {namespace}: standing and assignable differ");
            assert_eq!(standing, active, "{id} in {namespace}: standing and activated differ");
            assert_eq!(standing, desired::materialized_rules(&role.classification.delegable_rules, &a, namespace));
            // Whatever the role, no path reaches another assignment.
            for r in &standing {
                let deletes_assignments = r.resources.iter().flatten().any(|x| x == "registrationassignments")
                    && r.verbs.iter().any(|v| v == "delete");
                if deletes_assignments {
                    assert_eq!(r.resource_names, Some(vec![a.name.clone()]), "{id} in {namespace}: {r:?}");
                    assert_eq!(namespace, &a.namespace, "{id}: deletes assignments outside its own namespace");
                }
            }
            materialized += 1;
        }
    }
    // Reader, Contributor, Delete, Log Analytics, Resource Policy, Virtual Machine Contributor
    // and `view`, in two namespaces each.
    assert_eq!(materialized, 14);
}

/// The input: U activates the Delete role (no approvers) and may delete its own
/// assignment, never another tenant's assignment `a2` in the same namespace.
#[test]
fn an_activated_delete_role_is_pinned_to_its_assignment() {
    let world = World::new();
    let mut s = spec(vec![auth(P1, READER)]);
    s.eligible_authorizations = vec![eligible(P3, REGISTRATION_ASSIGNMENT_DELETE)];
    let valid = valid(world.validate(&s));
    let used = &valid.eligible[0];
    let a = assignment();
    let activation = InForce {
        namespace: a.namespace.clone(),
        name: "leave".into(),
        uid: "act-1".into(),
        username: "oidc-u".into(),
        role: used.role.clone(),
        rules: used.rules.clone(),
        expires_at: Timestamp::UNIX_EPOCH,
    };
    let rbac = activation_rbac(&a, MSP, &[activation]);
    let rules = rbac.roles[0].rules.clone().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].resource_names, Some(vec!["contoso".to_string()]), "not a2, not every assignment");
    assert!(rules[0].verbs.iter().any(|v| v == "delete"));
}
