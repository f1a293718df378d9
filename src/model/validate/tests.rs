//! Table-driven tests of SPEC §3.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Subject};
use serde::Deserialize;

use super::*;
use crate::api::EligibleAuthorization;
use crate::model::catalog::tests::{catalog_cluster_role, READER};
use crate::model::catalog::{OWNER, REGISTRATION_ASSIGNMENT_DELETE, USER_ACCESS_ADMINISTRATOR};
use crate::model::projection::user;
use crate::model::scope::tests::{cluster, rg, sub, CUSTOMER};
use crate::model::scope::NamespaceInfo;

// --- fixtures -------------------------------------------------------------------------------

/// The managing tenant (the MSP).
const MSP: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
/// A third tenant, neither customer nor MSP.
const THIRD: &str = "33333333-3333-3333-3333-333333333333";
const P1: &str = "00000000-0000-0000-0000-0000000000a1";
const P2: &str = "00000000-0000-0000-0000-0000000000a2";
const P3: &str = "00000000-0000-0000-0000-0000000000a3";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
const LOG_ANALYTICS: &str = "92aaf0da-9dab-42b6-94a3-d43ce8d16293";
const RESOURCE_POLICY: &str = "36243c78-bf99-498c-9df9-86d9f8d28608";
const VM_CONTRIBUTOR: &str = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c";
/// A GUID no catalog role carries.
const UNKNOWN_ROLE: &str = "a1b2c3d4-0000-4000-8000-000000000000";
/// A catalog role that reads Secrets (Azure: a role with DataActions).
const SECRET_READER: &str = "test:secret-reader";

const SHIPPED_CATALOG: &str = include_str!("../../../charts/kube-lighthouse/files/catalog.yaml");

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn shipped_cluster_roles() -> Vec<ClusterRole> {
    serde_yaml::Deserializer::from_str(SHIPPED_CATALOG)
        .map(|doc| ClusterRole::deserialize(doc).expect("catalog.yaml holds ClusterRoles"))
        .collect()
}

/// The shipped catalog plus a role that reads Secrets.
fn catalog_with(extra: Vec<ClusterRole>) -> Catalog {
    let mut roles = shipped_cluster_roles();
    roles.push(catalog_cluster_role(
        SECRET_READER,
        None,
        None,
        vec![rule(&[""], &["pods", "secrets"], &["get", "list"])],
    ));
    roles.extend(extra);
    Catalog::from_cluster_roles(&roles)
}

/// `cluster()` plus the managing tenant's own namespaces and a third tenant's.
fn namespaces() -> BTreeMap<String, NamespaceInfo> {
    let mut ns = cluster();
    ns.insert("msp-automation".into(), sub(MSP));
    ns.insert("msp-automation-jobs".into(), rg("msp-automation"));
    ns.insert("third-party".into(), sub(THIRD));
    ns
}

struct World {
    catalog: Catalog,
    namespaces: BTreeMap<String, NamespaceInfo>,
    limits: Limits,
    templates: IdentityTemplates,
}

impl World {
    fn new() -> World {
        World::with_catalog(catalog_with(Vec::new()))
    }

    fn with_catalog(catalog: Catalog) -> World {
        World { catalog, namespaces: namespaces(), limits: Limits::default(), templates: IdentityTemplates::default() }
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            catalog: &self.catalog,
            namespaces: &self.namespaces,
            limits: &self.limits,
            templates: &self.templates,
        }
    }

    fn validate_facts(&self, facts: &DefinitionFacts<'_>) -> Result<ValidDefinition, Rejection> {
        validate_definition(facts, &self.ctx())
    }

    /// A fresh definition (never accepted) in the subscription namespace `customer-a`.
    fn validate(&self, spec: &RegistrationDefinitionSpec) -> Result<ValidDefinition, Rejection> {
        self.validate_in("customer-a", spec)
    }

    fn validate_in(&self, namespace: &str, spec: &RegistrationDefinitionSpec) -> Result<ValidDefinition, Rejection> {
        self.validate_facts(&fresh(namespace, spec))
    }

    /// The same definition after acceptance of `generation` at `accepted`.
    fn revalidate(
        &self,
        spec: &RegistrationDefinitionSpec,
        generation: Option<i64>,
        accepted: Option<i64>,
    ) -> Result<ValidDefinition, Rejection> {
        self.validate_facts(&DefinitionFacts {
            namespace: "customer-a",
            spec,
            generation,
            accepted_generation: accepted,
            older_definitions: 0,
        })
    }
}

fn fresh<'a>(namespace: &'a str, spec: &'a RegistrationDefinitionSpec) -> DefinitionFacts<'a> {
    DefinitionFacts { namespace, spec, generation: Some(1), accepted_generation: None, older_definitions: 0 }
}

fn auth(principal: &str, role: &str) -> Authorization {
    Authorization {
        principal_id: principal.into(),
        principal_id_display_name: None,
        principal_type: None,
        role_definition_id: role.into(),
        delegated_role_definition_ids: Vec::new(),
    }
}

fn typed(principal: &str, kind: PrincipalType, role: &str) -> Authorization {
    Authorization { principal_type: Some(kind), ..auth(principal, role) }
}

fn uaa(principal: &str, delegated: &[&str]) -> Authorization {
    Authorization {
        delegated_role_definition_ids: delegated.iter().map(|s| s.to_string()).collect(),
        ..auth(principal, USER_ACCESS_ADMINISTRATOR)
    }
}

fn eligible(principal: &str, role: &str) -> EligibleAuthorization {
    EligibleAuthorization {
        principal_id: principal.into(),
        principal_id_display_name: None,
        principal_type: None,
        role_definition_id: role.into(),
        just_in_time_access_policy: None,
    }
}

fn spec(authorizations: Vec<Authorization>) -> RegistrationDefinitionSpec {
    spec_for(MSP, authorizations)
}

fn spec_for(managing: &str, authorizations: Vec<Authorization>) -> RegistrationDefinitionSpec {
    RegistrationDefinitionSpec {
        registration_definition_name: "Contoso Managed Services".into(),
        description: None,
        managed_by_tenant_id: managing.into(),
        authorizations,
        eligible_authorizations: Vec::new(),
        plan: None,
    }
}

/// A spec whose authorizations are all valid Reader grants, with `bad` at index `at`.
fn with_at(at: usize, bad: Authorization) -> RegistrationDefinitionSpec {
    let principals = [P1, P2, P3, "00000000-0000-0000-0000-0000000000a4"];
    let mut auths: Vec<Authorization> = principals[..at].iter().map(|p| auth(p, READER)).collect();
    auths.push(bad);
    spec(auths)
}

/// (rule, field) of every error, in order; panics when the definition is valid.
fn errors(result: Result<ValidDefinition, Rejection>) -> Vec<(Rule, String)> {
    match result {
        Ok(v) => panic!("expected a rejection, got {v:?}"),
        Err(r) => r.0.into_iter().map(|e| (e.rule, e.field)).collect(),
    }
}

fn one(rule: Rule, field: &str) -> Vec<(Rule, String)> {
    vec![(rule, field.to_string())]
}

fn rejection(result: Result<ValidDefinition, Rejection>) -> Rejection {
    result.expect_err("expected a rejection")
}

fn valid(result: Result<ValidDefinition, Rejection>) -> ValidDefinition {
    match result {
        Ok(v) => v,
        Err(r) => panic!("expected a valid definition, got: {r}"),
    }
}

fn grant<'a>(v: &'a ValidDefinition, role: &str) -> &'a Grant {
    v.grants.iter().find(|g| g.role == role).unwrap_or_else(|| panic!("no grant for {role} in {:?}", v.grants))
}

fn grant_roles(v: &ValidDefinition) -> Vec<&str> {
    v.grants.iter().map(|g| g.role.as_str()).collect()
}

fn group(name: &str) -> Subject {
    Subject { kind: "Group".into(), ..user(name) }
}

fn projected(principal: &str) -> String {
    format!("{MSP}:{principal}")
}

// --- rule 1: the managing tenant --------------------------------------------------------------

#[test]
fn managed_by_tenant_id_must_be_a_guid() {
    let w = World::new();
    for bad in [
        "",
        "contoso",
        "contoso.onmicrosoft.com",
        "fbcdd0f3dc824ceebcde7301d24e9bf6",
        "{fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6}",
        "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf",
    ] {
        let s = spec_for(bad, vec![auth(P1, READER)]);
        assert_eq!(errors(w.validate(&s)), one(Rule::InvalidTenantId, "spec.managedByTenantId"), "{bad:?}");
    }
}

#[test]
fn managed_by_tenant_id_is_canonicalised() {
    let w = World::new();
    let v = valid(w.validate(&spec_for(&MSP.to_uppercase(), vec![auth(P1, READER)])));
    assert_eq!(v.managing_tenant.as_str(), MSP);
    assert_eq!(v.home_tenant.as_str(), CUSTOMER);
    assert_eq!(v.subscription, "customer-a");
    assert_eq!(grant(&v, "kubelighthouse:reader").subjects, [group(&projected(P1)), user(projected(P1))]);
}

#[test]
fn the_home_tenant_cannot_manage_itself() {
    let w = World::new();
    for same in [CUSTOMER.to_string(), CUSTOMER.to_uppercase()] {
        let r = rejection(w.validate(&spec_for(&same, vec![auth(P1, READER)])));
        assert_eq!(r.rules().collect::<Vec<_>>(), [Rule::SameTenant], "{same}");
        assert_eq!(r.0[0].field, "spec.managedByTenantId");
        assert!(r.0[0].message.contains("across tenants"), "{r}");
    }
    // A third tenant is fine: the check is against the home tenant, not a fixed one.
    assert!(w.validate(&spec_for(THIRD, vec![auth(P1, READER)])).is_ok());
}

// --- rule 2: where a definition lives ---------------------------------------------------------

#[test]
fn definitions_live_in_subscription_namespaces_only() {
    let w = World::new();
    let s = spec(vec![auth(P1, READER)]);
    for (namespace, in_message) in [
        ("customer-a-web", "resource group of customer-a"),
        ("plain", "neither a subscription"),
        ("missing", "does not exist"),
        ("orphan-rg", "nowhere"),
        ("bad-tenant", "not a GUID"),
    ] {
        let r = rejection(w.validate_in(namespace, &s));
        assert_eq!(
            r.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
            [(Rule::NotASubscription, "metadata.namespace")],
            "{namespace}"
        );
        assert!(r.0[0].message.contains(in_message), "{namespace}: {r}");
    }
    // The managing tenant's own subscription namespace is a valid home for a definition by
    // another tenant (here, the customer managing the MSP).
    assert!(w.validate_in("msp-automation", &spec_for(CUSTOMER, vec![auth(P1, READER)])).is_ok());
}

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
            &["controllerrevisions", "daemonsets", "deployments", "deployments/scale", "replicasets", "statefulsets"],
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

// --- rule 3: User Access Administrator ------------------------------------------------------

#[test]
fn user_access_administrator_requires_delegated_roles() {
    let w = World::new();
    for role in [USER_ACCESS_ADMINISTRATOR, "kubelighthouse:user-access-administrator", "User Access Administrator"] {
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

// --- rule 4: limits ---------------------------------------------------------------------------

#[test]
fn default_limits_are_those_of_azure() {
    assert_eq!(
        Limits::default(),
        Limits { max_definitions_per_subscription: 200, max_authorizations_per_definition: 400 }
    );
}

#[test]
fn too_many_definitions_in_one_subscription() {
    for limits in [Limits::default(), Limits { max_definitions_per_subscription: 3, ..Limits::default() }] {
        let mut w = World::new();
        let max = limits.max_definitions_per_subscription;
        w.limits = limits;
        let s = spec(vec![auth(P1, READER)]);
        let facts = |older| DefinitionFacts { older_definitions: older, ..fresh("customer-a", &s) };
        assert!(w.validate_facts(&facts(0)).is_ok());
        assert!(w.validate_facts(&facts(max - 1)).is_ok(), "{max}");
        for older in [max, max + 1] {
            let r = rejection(w.validate_facts(&facts(older)));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::TooManyDefinitions, "metadata.namespace"),
                "{older}/{max}"
            );
            assert!(r.0[0].message.contains(&format!("the limit is {max}")));
        }
    }
}

fn many_authorizations(n: usize) -> Vec<Authorization> {
    (0..n).map(|i| auth(&format!("00000000-0000-0000-0000-{i:012x}"), READER)).collect()
}

#[test]
fn too_many_authorizations_in_one_definition() {
    for max in [2, 400] {
        let mut w = World::new();
        w.limits.max_authorizations_per_definition = max;
        let ok = valid(w.validate(&spec(many_authorizations(max))));
        assert_eq!(
            grant(&ok, "kubelighthouse:reader").subjects.len(),
            2 * max,
            "untyped principals bind a User and a Group each"
        );
        let r = rejection(w.validate(&spec(many_authorizations(max + 1))));
        assert_eq!(
            r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
            one(Rule::TooManyAuthorizations, "spec.authorizations"),
            "{max}"
        );
        assert_eq!(r.0[0].message, format!("{} authorizations; the limit is {max}", max + 1));
    }
}

#[test]
fn a_definition_needs_an_authorization() {
    let w = World::new();
    assert_eq!(errors(w.validate(&spec(Vec::new()))), one(Rule::InvalidPrincipalId, "spec.authorizations"));
}

// --- rule 5: principal IDs --------------------------------------------------------------------

#[test]
fn entra_principals_must_be_guids() {
    let w = World::new();
    let kinds = [None, Some(PrincipalType::User), Some(PrincipalType::Group), Some(PrincipalType::ServicePrincipal)];
    for kind in kinds {
        for bad in [
            "",
            "alice@contoso.com",
            "msp-automation/deployer",
            "{00000000-0000-0000-0000-0000000000a1}",
            "000000000000000000000000000000a1",
            " 00000000-0000-0000-0000-0000000000a1",
        ] {
            let a = Authorization { principal_type: kind, ..auth(bad, READER) };
            let r = rejection(w.validate(&with_at(3, a)));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::InvalidPrincipalId, "spec.authorizations[3].principalId"),
                "{kind:?} {bad:?}"
            );
            assert!(r.0[0].message.contains("not a GUID"));
        }
    }
}

#[test]
fn service_accounts_of_the_managing_tenant_pass() {
    let w = World::new();
    for (principal, namespace, name) in [
        ("msp-automation/deployer", "msp-automation", "deployer"),
        ("msp-automation-jobs/ci.bot-1", "msp-automation-jobs", "ci.bot-1"),
    ] {
        let v = valid(w.validate(&spec(vec![typed(principal, PrincipalType::ServiceAccount, CONTRIBUTOR)])));
        assert_eq!(
            grant(&v, "kubelighthouse:contributor").subjects,
            [Subject {
                kind: "ServiceAccount".into(),
                name: name.into(),
                namespace: Some(namespace.into()),
                api_group: Some(String::new()),
            }],
            "{principal}"
        );
    }
}

#[test]
fn service_accounts_of_other_tenants_are_refused() {
    let w = World::new();
    for (principal, in_message) in [
        ("customer-a/backup", "tenant 11111111"),
        ("customer-a-web/app", "tenant 11111111"),
        ("third-party/bot", "tenant 33333333"),
        ("missing/bot", "no tenant"),
        ("plain/bot", "no tenant"),
        ("orphan-rg/bot", "no tenant"),
    ] {
        let r = rejection(w.validate(&with_at(1, typed(principal, PrincipalType::ServiceAccount, READER))));
        assert_eq!(
            r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
            one(Rule::ServiceAccountOutsideManagingTenant, "spec.authorizations[1].principalId"),
            "{principal}"
        );
        assert!(r.0[0].message.contains(in_message), "{principal}: {r}");
    }
}

#[test]
fn a_service_account_follows_its_namespace_out_of_the_managing_tenant() {
    let definition = spec(vec![typed("msp-automation-jobs/ci", PrincipalType::ServiceAccount, READER)]);
    let refused = |w: &World, why: &str| {
        let r = rejection(w.validate(&definition));
        assert_eq!(
            r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
            one(Rule::ServiceAccountOutsideManagingTenant, "spec.authorizations[0].principalId"),
            "{why}"
        );
    };
    let mut w = World::new();
    valid(w.validate(&definition));
    // Its resource group's subscription relabelled to another tenant.
    let subscription = w.namespaces["msp-automation-jobs"].parent_subscription().expect("a resource group").to_string();
    w.namespaces.get_mut(&subscription).expect("exists").tenant_id =
        Some("33333333-3333-3333-3333-333333333333".into());
    refused(&w, "subscription relabelled");
    // Moved under another tenant's subscription.
    let mut w = World::new();
    w.namespaces.get_mut("msp-automation-jobs").expect("exists").subscription = Some("third-party".into());
    refused(&w, "moved");
    // Being deleted: a namespace of that name may come back for anyone.
    let mut w = World::new();
    w.namespaces.get_mut("msp-automation-jobs").expect("exists").terminating = true;
    refused(&w, "terminating");
    // Gone.
    let mut w = World::new();
    w.namespaces.remove("msp-automation-jobs");
    refused(&w, "deleted");
}

#[test]
fn malformed_service_account_names_are_invalid() {
    let w = World::new();
    for bad in [
        "foo",
        "a/b/c",
        "UPPER/x",
        "msp-automation/UPPER",
        "/x",
        "msp-automation/",
        "-ns/x",
        "ns-/x",
        "msp_automation/x",
        "msp-automation/a..b",
        P1,
    ] {
        let r = rejection(w.validate(&with_at(2, typed(bad, PrincipalType::ServiceAccount, READER))));
        assert_eq!(
            r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
            one(Rule::InvalidPrincipalId, "spec.authorizations[2].principalId"),
            "{bad:?}"
        );
        assert!(r.0[0].message.contains("namespace/name"), "{r}");
    }
}

// --- duplicates -------------------------------------------------------------------------------

#[test]
fn duplicate_authorizations_are_rejected() {
    let w = World::new();
    let cases: Vec<(&str, Vec<Authorization>, usize)> = vec![
        ("identical", vec![auth(P1, READER), auth(P2, READER), auth(P1, READER)], 2),
        ("GUID and ClusterRole name", vec![auth(P1, READER), auth(P1, "kubelighthouse:reader")], 1),
        (
            "ClusterRole name and display name",
            vec![
                typed(P1, PrincipalType::Group, "kubelighthouse:contributor"),
                auth(P2, READER),
                auth(P3, READER),
                typed(P1, PrincipalType::Group, "contributor"),
            ],
            3,
        ),
        ("principal GUID in another case", vec![auth(P1, READER), auth(&P1.to_uppercase(), READER)], 1),
        (
            "role GUID in another case",
            vec![
                typed(P1, PrincipalType::User, CONTRIBUTOR),
                typed(P1, PrincipalType::User, &CONTRIBUTOR.to_uppercase()),
            ],
            1,
        ),
        (
            "service account",
            vec![
                typed("msp-automation/deployer", PrincipalType::ServiceAccount, READER),
                typed("msp-automation/deployer", PrincipalType::ServiceAccount, "Reader"),
            ],
            1,
        ),
    ];
    for (case, auths, at) in cases {
        let r = rejection(w.validate(&spec(auths)));
        assert_eq!(
            r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
            one(Rule::DuplicateAuthorization, &format!("spec.authorizations[{at}]")),
            "{case}"
        );
        assert!(r.0[0].message.contains("already has role"), "{r}");
    }
}

#[test]
fn same_principal_with_another_role_or_type_is_no_duplicate() {
    let w = World::new();
    let v = valid(w.validate(&spec(vec![
        auth(P1, READER),
        auth(P1, CONTRIBUTOR),
        typed(P1, PrincipalType::User, READER),
        typed(P1, PrincipalType::Group, READER),
    ])));
    assert_eq!(grant_roles(&v), ["kubelighthouse:contributor", "kubelighthouse:reader"]);
    // The overlapping subjects are bound once.
    assert_eq!(grant(&v, "kubelighthouse:reader").subjects, [group(&projected(P1)), user(projected(P1))]);
}

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
            "Virtual Machine Contributor (kubelighthouse:virtual-machine-contributor)",
        ],
        "{:?}",
        v.warnings
    );
    assert!(v.warnings.iter().any(|w| w.contains("ConfigMaps")));
    assert!(v.warnings.iter().all(|w| !w.contains("Resource Policy")));
}

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

// --- assignments ------------------------------------------------------------------------------

fn assignment<'a>(namespace: &'a str, older: &[&str]) -> AssignmentFacts<'a> {
    AssignmentFacts {
        namespace,
        name: "contoso-msp",
        definition_name: "contoso-msp",
        older_duplicates: older.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn assignments_outside_a_subscription_are_refused() {
    let ns = namespaces();
    for (namespace, in_message) in [
        ("plain", "neither a subscription"),
        ("missing", "does not exist"),
        ("orphan-rg", "nowhere"),
        ("bad-tenant", "not a GUID"),
    ] {
        let r = validate_assignment(&assignment(namespace, &[]), &ns).expect_err("not a delegation scope");
        assert_eq!(
            r.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
            [(Rule::InvalidScope, "metadata.namespace")],
            "{namespace}"
        );
        assert!(r.0[0].message.contains(in_message), "{namespace}: {r}");
        assert_eq!(r.reason(), "InvalidScope");
    }
}

#[test]
fn a_second_assignment_of_a_definition_at_one_scope_is_refused() {
    let ns = namespaces();
    let r = validate_assignment(&assignment("customer-a-web", &["first", "second"]), &ns).expect_err("duplicate");
    assert_eq!(
        r.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
        [(Rule::DuplicateAssignment, "spec.registrationDefinitionRef.name")]
    );
    assert!(r.0[0].message.contains("by assignment first"), "{r}");
}

#[test]
fn assignment_scopes() {
    let ns = namespaces();
    let rg = validate_assignment(&assignment("customer-a-web", &[]), &ns).expect("valid");
    assert_eq!(rg.namespaces, ["customer-a-web"]);
    assert_eq!(rg.subscription, "customer-a");
    assert_eq!(rg.home_tenant.as_str(), CUSTOMER);
    let s = validate_assignment(&assignment("customer-a", &[]), &ns).expect("valid");
    assert_eq!(s.namespaces, ["customer-a", "customer-a-db", "customer-a-web"]);
}

#[test]
fn an_assignment_without_a_valid_definition_is_refused() {
    let missing = definition_problem("contoso-msp", "customer-a", None);
    assert_eq!(
        missing.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
        [(Rule::DefinitionNotFound, "spec.registrationDefinitionRef.name")]
    );
    assert!(missing.to_string().contains("customer-a"));

    let inner = rejection(World::new().validate(&spec(vec![auth(P1, OWNER)])));
    let invalid = definition_problem("contoso-msp", "customer-a", Some(&inner));
    assert_eq!(
        invalid.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
        [(Rule::DefinitionInvalid, "spec.registrationDefinitionRef.name")]
    );
    let text = invalid.to_string();
    assert!(text.contains("customer-a/contoso-msp"), "{text}");
    assert!(text.contains("spec.authorizations[0].roleDefinitionId"), "{text}");
    assert!(text.contains("(OwnerRole)"), "{text}");
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
