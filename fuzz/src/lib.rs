//! What the fuzz targets share: hostile text, generated RBAC rules and delegations, the world
//! a delegation is validated in, and an RBAC evaluator written from Kubernetes' rules (not
//! from the classifier's), the oracle the targets check the classifier against.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_lighthouse::api::{
    Authorization, EligibleApprover, EligibleAuthorization, JustInTimeAccessPolicy, MultiFactorAuthProvider, Plan,
    PrincipalType, RegistrationDefinitionSpec, GROUP,
};
use kube_lighthouse::model::catalog::Catalog;
use kube_lighthouse::model::desired::{self, AssignmentRef};
use kube_lighthouse::model::keys;
use kube_lighthouse::model::projection::IdentityTemplates;
use kube_lighthouse::model::rules::classify;
use kube_lighthouse::model::scope::NamespaceInfo;
use kube_lighthouse::model::validate::{self, Context, DefinitionFacts, Limits, Rejection, ValidDefinition};
use serde::Deserialize;

// --- hostile text -------------------------------------------------------------------------

/// Marks that look like nothing or like something else: bidi overrides and isolates,
/// zero-width characters, a BOM, confusables of `a`, `e`, `o`, `-` and `/`, a NUL.
pub const MARKS: &[&str] = &[
    "\u{202E}", "\u{202D}", "\u{2066}", "\u{2069}", "\u{200F}", "\u{200B}", "\u{200D}", "\u{FEFF}", "\u{0430}",
    "\u{0435}", "\u{043E}", "\u{2010}", "\u{2215}", "\u{FF0F}", "\0", " ", "\t", "\n",
];

/// A string drawn from a table of meaningful values, hostile variations of them, or anything.
#[derive(Arbitrary, Debug, Clone)]
pub enum Text {
    /// A value of the table.
    Pick(u8),
    /// A value of the table with a mark inserted at a byte position (snapped to a character).
    Marked(u8, u8, u8),
    /// A value of the table repeated: long names (63, 253, 64 KiB).
    Repeated(u8, u16),
    /// A value of the table in upper case.
    Upper(u8),
    /// Anything.
    Raw(String),
}

impl Text {
    /// The string, with `table` as the meaningful values.
    pub fn of(&self, table: &[&str]) -> String {
        let pick = |i: &u8| table.get(usize::from(*i) % table.len().max(1)).copied().unwrap_or_default();
        match self {
            Text::Pick(i) => pick(i).to_string(),
            Text::Marked(i, mark, at) => {
                let s = pick(i);
                let mut at = usize::from(*at) % (s.len() + 1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                format!("{}{}{}", &s[..at], MARKS[usize::from(*mark) % MARKS.len()], &s[at..])
            }
            Text::Repeated(i, n) => {
                let s = pick(i);
                let s = if s.is_empty() { "a" } else { s };
                s.repeat(usize::from(*n) % (70_000 / s.len() + 1))
            }
            Text::Upper(i) => pick(i).to_uppercase(),
            Text::Raw(s) => s.clone(),
        }
    }
}

// --- RBAC rules ---------------------------------------------------------------------------

/// API groups that matter to the classifier, and some that do not.
pub const GROUPS: &[&str] = &[
    "",
    "*",
    "apps",
    "batch",
    "rbac.authorization.k8s.io",
    "authentication.k8s.io",
    GROUP,
    "storage.k8s.io",
    "example.com",
];

/// Resources and patterns (`*`, `r/*`, `*/s`) that matter to the classifier, and some that do not.
pub const RESOURCES: &[&str] = &[
    "*",
    "*/*",
    "pods",
    "pods/*",
    "pods/exec",
    "pods/attach",
    "pods/portforward",
    "pods/proxy",
    "pods/log",
    "*/exec",
    "*/proxy",
    "*/token",
    "*/scale",
    "*/status",
    "secrets",
    "secrets/*",
    "configmaps",
    "serviceaccounts",
    "serviceaccounts/token",
    "serviceaccounts/*",
    "users",
    "groups",
    "uids",
    "userextras/scopes",
    "userextras/*",
    "namespaces",
    "namespaces/status",
    "namespaces/finalize",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
    "registrationdefinitions",
    "registrationdefinitions/status",
    "registrationassignments",
    "registrationassignments/status",
    "roleactivations",
    "nodes",
    "nodes/proxy",
    "services",
    "services/proxy",
    "deployments",
    "deployments/scale",
    "jobs",
    "widgets",
];

/// Verbs: every standard one, the escalating ones, and `*`.
pub const VERBS: &[&str] = &[
    "*",
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "bind",
    "escalate",
    "impersonate",
    "use",
    "approve",
];

/// Resource names and non-resource URLs.
pub const NAMES: &[&str] = &["db-password", "contoso", "*", "", "/healthz", "/api/*", "a"];

/// An RBAC PolicyRule built from [`Text`]s.
#[derive(Arbitrary, Debug, Clone)]
pub struct RuleInput {
    groups: Option<Vec<Text>>,
    resources: Option<Vec<Text>>,
    verbs: Vec<Text>,
    resource_names: Option<Vec<Text>>,
    non_resource_urls: Option<Vec<Text>>,
}

impl RuleInput {
    /// The PolicyRule.
    pub fn rule(&self) -> PolicyRule {
        let all = |v: &Option<Vec<Text>>, table: &[&str]| v.as_ref().map(|v| v.iter().map(|t| t.of(table)).collect());
        PolicyRule {
            api_groups: all(&self.groups, GROUPS),
            resources: all(&self.resources, RESOURCES),
            verbs: self.verbs.iter().map(|t| t.of(VERBS)).collect(),
            resource_names: all(&self.resource_names, NAMES),
            non_resource_urls: all(&self.non_resource_urls, NAMES),
        }
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().flatten().any(|g| g == "*" || g == group)
}

fn resource_matches(rule: &PolicyRule, resource: &str) -> bool {
    let subresource = resource.split_once('/').map_or("", |(_, s)| s);
    rule.resources
        .iter()
        .flatten()
        .any(|p| p == "*" || p == resource || (!subresource.is_empty() && p.strip_prefix("*/") == Some(subresource)))
}

fn name_matches(rule: &PolicyRule, name: Option<&str>) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
    }
}

/// Kubernetes' RBAC evaluation of one request against `rules` (pkg/apis/rbac/v1
/// evaluation_helpers.go): `*` matches any group, verb or resource; `*/sub` matches the
/// subresource `sub` of any resource; nothing else is a pattern (`pods/*` matches only a
/// resource literally named so). A rule with resource names matches only those names.
pub fn rbac_allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
    rules.iter().any(|r| {
        verb_matches(r, verb) && group_matches(r, group) && resource_matches(r, resource) && name_matches(r, name)
    })
}

fn concrete(value: &str) -> bool {
    !value.contains('*')
}

/// A concrete request: (group, resource, verb, resource name).
pub type Request = (String, String, String, Option<String>);

/// Every concrete request worth asking that `allowing` allows: the values of the tables and of
/// `rules`, without wildcards.
pub fn requests(rules: &[PolicyRule], allowing: &[PolicyRule]) -> BTreeSet<Request> {
    let mut groups: BTreeSet<String> = GROUPS.iter().map(|s| s.to_string()).collect();
    let mut resources: BTreeSet<String> = RESOURCES.iter().map(|s| s.to_string()).collect();
    let mut verbs: BTreeSet<String> = VERBS.iter().map(|s| s.to_string()).collect();
    let mut names: BTreeSet<Option<String>> = BTreeSet::from([None]);
    for r in rules.iter().chain(allowing) {
        groups.extend(r.api_groups.iter().flatten().cloned());
        resources.extend(r.resources.iter().flatten().cloned());
        verbs.extend(r.verbs.iter().cloned());
        names.extend(r.resource_names.iter().flatten().cloned().map(Some));
    }
    // Subresources named by `*/sub` patterns, on a resource of the tables.
    let subs: Vec<String> = resources
        .iter()
        .filter_map(|r| r.strip_prefix("*/"))
        .filter(|s| concrete(s))
        .map(|s| format!("pods/{s}"))
        .collect();
    resources.extend(subs);
    let mut out = BTreeSet::new();
    for rule in allowing {
        for g in groups.iter().filter(|g| concrete(g) && group_matches(rule, g)) {
            for r in resources.iter().filter(|r| concrete(r) && resource_matches(rule, r)) {
                for v in verbs.iter().filter(|v| concrete(v) && verb_matches(rule, v)) {
                    for n in names.iter().filter(|n| name_matches(rule, n.as_deref())) {
                        out.insert((g.clone(), r.clone(), v.clone(), n.clone()));
                    }
                }
            }
        }
    }
    out
}

/// The classifier's verdict on one concrete permission: whether it is rejected.
pub fn rejected(group: &str, resource: &str, verb: &str) -> bool {
    let rule = PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(vec![resource.to_string()]),
        verbs: vec![verb.to_string()],
        ..Default::default()
    };
    !classify(&[rule]).is_delegable()
}

/// The classifier's filter against Kubernetes' evaluation: whatever the filtered rules allow,
/// the original rules allow (filtering never widens) and the classifier accepts (filtering
/// keeps nothing rejected); the filtered rules are delegable and filtering them again changes
/// nothing.
pub fn check_filter(rules: &[PolicyRule]) {
    let c = classify(rules);
    let filtered = &c.delegable_rules;
    assert!(filtered.iter().all(|r| r.non_resource_urls.is_none()), "a Role holds no non-resource URLs: {filtered:?}");
    let again = classify(filtered);
    assert!(again.findings.is_empty(), "filtered rules are rejected: {:?} from {rules:?}", again.findings);
    assert_eq!(&again.delegable_rules, filtered, "filtering is not idempotent for {rules:?}");
    let mut verdicts: BTreeMap<(String, String, String), bool> = BTreeMap::new();
    for (g, r, v, n) in requests(rules, filtered) {
        assert!(
            rbac_allows(rules, &g, &r, &v, n.as_deref()),
            "filtering widened {rules:?} to {filtered:?}: {v} {g}/{r} {n:?}"
        );
        let is_rejected = *verdicts.entry((g.clone(), r.clone(), v.clone())).or_insert_with(|| rejected(&g, &r, &v));
        assert!(!is_rejected, "filtered {rules:?} to {filtered:?}, which allows the rejected {v} {g}/{r}");
    }
}

// --- delegations --------------------------------------------------------------------------

/// The customer's home tenant.
pub const CUSTOMER: &str = "11111111-1111-1111-1111-111111111111";
/// The managing tenant.
pub const MSP: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";

/// Tenants and principals: valid GUIDs, the customer's and the managing tenant's, the nil
/// GUID, braces, upper case, too short, ServiceAccounts in and out of the managing tenant.
pub const PRINCIPALS: &[&str] = &[
    MSP,
    CUSTOMER,
    "33333333-3333-3333-3333-333333333333",
    "00000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-0000000000a1",
    "00000000-0000-0000-0000-0000000000A2",
    "{00000000-0000-0000-0000-0000000000a3}",
    "00000000-0000-0000-0000-0000000000a",
    "0000000000000000000000000000000000a4",
    "msp-automation/robot",
    "msp-automation-jobs/robot",
    "customer-a/robot",
    "third-party/robot",
    "msp-automation/",
    "/robot",
    "a/b/c",
    "",
];

/// Role references: every catalog GUID, Owner, names, display names, unknown GUIDs.
pub const ROLES: &[&str] = &[
    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "91c1777a-f3dc-4fae-b103-61d183457e46",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "92aaf0da-9dab-42b6-94a3-d43ce8d16293",
    "36243c78-bf99-498c-9df9-86d9f8d28608",
    "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "a1b2c3d4-0000-4000-8000-000000000000",
    "kubelighthouse:reader",
    "kubelighthouse:contributor",
    "Contributor",
    "Owner",
    "cluster-admin",
    "view",
    "edit",
    "admin",
    "fuzz:secret-reader",
    "",
];

/// Namespaces of [`world`]: a subscription, its resource groups, the managing tenant's own,
/// and namespaces that cannot be delegated.
pub const NAMESPACES: &[&str] = &[
    "customer-a",
    "customer-a-web",
    "customer-a-db",
    "plain",
    "orphan-rg",
    "bad-tenant",
    "msp-automation",
    "msp-automation-jobs",
    "third-party",
    "missing",
    "",
];

/// Free text: display names, descriptions, durations.
pub const WORDS: &[&str] = &["Contoso Operations", "PT30M", "PT8H", "PT4H", "P1D", "PT29M", "PT8H1M", "", "x"];

fn principal_type(t: u8) -> Option<PrincipalType> {
    [
        None,
        Some(PrincipalType::User),
        Some(PrincipalType::Group),
        Some(PrincipalType::ServicePrincipal),
        Some(PrincipalType::ServiceAccount),
    ][usize::from(t) % 5]
}

/// An authorization built from [`Text`]s.
#[derive(Arbitrary, Debug, Clone)]
pub struct AuthorizationInput {
    principal: Text,
    display_name: Option<Text>,
    principal_type: u8,
    role: Text,
    delegated: Vec<Text>,
}

/// Approvers: principal and display name.
type Approvers = Vec<(Text, Option<Text>)>;

/// An eligible authorization built from [`Text`]s.
#[derive(Arbitrary, Debug, Clone)]
pub struct EligibleInput {
    principal: Text,
    principal_type: u8,
    role: Text,
    policy: Option<(bool, Option<Text>, Approvers)>,
}

/// A definition and the facts around it.
#[derive(Arbitrary, Debug, Clone)]
pub struct DefinitionInput {
    namespace: Text,
    generation: Option<i8>,
    accepted_generation: Option<i8>,
    older_definitions: u8,
    name: Text,
    description: Option<Text>,
    managed_by: Text,
    authorizations: Vec<AuthorizationInput>,
    /// The authorizations repeated this many times, to reach the limits with little input.
    repeat: u8,
    eligible: Vec<EligibleInput>,
    plan: Option<(Text, Text)>,
}

impl DefinitionInput {
    /// The spec.
    pub fn spec(&self) -> RegistrationDefinitionSpec {
        let authorizations: Vec<Authorization> = self
            .authorizations
            .iter()
            .map(|a| Authorization {
                principal_id: a.principal.of(PRINCIPALS),
                principal_id_display_name: a.display_name.as_ref().map(|t| t.of(WORDS)),
                principal_type: principal_type(a.principal_type),
                role_definition_id: a.role.of(ROLES),
                delegated_role_definition_ids: a.delegated.iter().map(|t| t.of(ROLES)).collect(),
            })
            .collect();
        let copies = usize::from(self.repeat % 8).max(1) * if self.repeat >= 200 { 60 } else { 1 };
        RegistrationDefinitionSpec {
            registration_definition_name: self.name.of(WORDS),
            description: self.description.as_ref().map(|t| t.of(WORDS)),
            managed_by_tenant_id: self.managed_by.of(PRINCIPALS),
            authorizations: authorizations.iter().cycle().take(authorizations.len() * copies).cloned().collect(),
            eligible_authorizations: self
                .eligible
                .iter()
                .map(|e| EligibleAuthorization {
                    principal_id: e.principal.of(PRINCIPALS),
                    principal_id_display_name: None,
                    principal_type: principal_type(e.principal_type),
                    role_definition_id: e.role.of(ROLES),
                    just_in_time_access_policy: e.policy.as_ref().map(|(mfa, duration, approvers)| {
                        JustInTimeAccessPolicy {
                            multi_factor_auth_provider: if *mfa {
                                MultiFactorAuthProvider::Azure
                            } else {
                                MultiFactorAuthProvider::None
                            },
                            maximum_activation_duration: duration.as_ref().map(|t| t.of(WORDS)),
                            managed_by_tenant_approvers: approvers
                                .iter()
                                .map(|(p, d)| EligibleApprover {
                                    principal_id: p.of(PRINCIPALS),
                                    principal_id_display_name: d.as_ref().map(|t| t.of(WORDS)),
                                })
                                .collect(),
                        }
                    }),
                })
                .collect(),
            plan: self.plan.as_ref().map(|(n, p)| Plan {
                name: n.of(WORDS),
                publisher: p.of(WORDS),
                product: String::new(),
                version: String::new(),
            }),
        }
    }

    /// The namespace the definition lives in.
    pub fn namespace(&self) -> String {
        self.namespace.of(NAMESPACES)
    }

    /// The facts of `spec` in `namespace`.
    pub fn facts<'a>(&self, namespace: &'a str, spec: &'a RegistrationDefinitionSpec) -> DefinitionFacts<'a> {
        DefinitionFacts {
            namespace,
            spec,
            generation: self.generation.map(i64::from),
            accepted_generation: self.accepted_generation.map(i64::from),
            older_definitions: usize::from(self.older_definitions),
        }
    }
}

/// The catalog, namespaces, limits and identity templates a delegation is validated in.
pub struct World {
    /// The shipped catalog plus `view`, `edit` (reads Secrets), `cluster-admin` and a
    /// labelled role that reads Secrets.
    pub catalog: Catalog,
    /// [`NAMESPACES`].
    pub namespaces: BTreeMap<String, NamespaceInfo>,
    /// The defaults.
    pub limits: Limits,
    /// The defaults.
    pub templates: IdentityTemplates,
}

fn cluster_role(name: &str, built_in: bool, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: built_in.then(|| BTreeMap::from([(keys::BUILT_IN.to_string(), "true".to_string())])),
            ..Default::default()
        },
        rules: Some(rules),
        ..Default::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The world of every target.
pub fn world() -> World {
    let mut roles: Vec<ClusterRole> =
        serde_yaml::Deserializer::from_str(include_str!("../../charts/kube-lighthouse/files/catalog.yaml"))
            .map(|doc| ClusterRole::deserialize(doc).expect("catalog.yaml holds ClusterRoles"))
            .collect();
    roles.push(cluster_role(
        "view",
        false,
        vec![rule(&["", "apps"], &["pods", "configmaps", "deployments"], &["get", "list", "watch"])],
    ));
    roles.push(cluster_role("edit", false, vec![rule(&[""], &["pods", "secrets"], &["get", "create", "delete"])]));
    roles.push(cluster_role("cluster-admin", false, vec![rule(&["*"], &["*"], &["*"])]));
    roles.push(cluster_role("fuzz:secret-reader", true, vec![rule(&[""], &["pods", "secrets"], &["get", "list"])]));
    let sub = |tenant: &str| NamespaceInfo { tenant_id: Some(tenant.into()), ..Default::default() };
    let rg = |s: &str| NamespaceInfo { subscription: Some(s.into()), ..Default::default() };
    let namespaces = BTreeMap::from([
        ("customer-a".to_string(), sub(CUSTOMER)),
        ("customer-a-web".to_string(), rg("customer-a")),
        ("customer-a-db".to_string(), NamespaceInfo { terminating: true, ..rg("customer-a") }),
        ("plain".to_string(), NamespaceInfo::default()),
        ("orphan-rg".to_string(), rg("nowhere")),
        ("bad-tenant".to_string(), sub("not-a-guid")),
        ("msp-automation".to_string(), sub(MSP)),
        ("msp-automation-jobs".to_string(), rg("msp-automation")),
        ("third-party".to_string(), sub("33333333-3333-3333-3333-333333333333")),
    ]);
    World {
        catalog: Catalog::from_cluster_roles(&roles),
        namespaces,
        limits: Limits::default(),
        templates: IdentityTemplates::default(),
    }
}

impl World {
    /// Validates `facts` in this world.
    pub fn validate(&self, facts: &DefinitionFacts<'_>) -> Result<ValidDefinition, Rejection> {
        let ctx = Context {
            catalog: &self.catalog,
            namespaces: &self.namespaces,
            limits: &self.limits,
            templates: &self.templates,
            guardrails: &Default::default(),
        };
        validate::validate_definition(facts, &ctx)
    }
}

/// A DNS-1123 label (namespace names).
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_subdomain(s) && !s.contains('.')
}

/// A DNS-1123 subdomain (most object names).
pub fn is_dns_subdomain(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !s.is_empty()
        && s.len() <= 253
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// A label value: at most 63 characters, alphanumerics with `-_.` inside.
pub fn is_label_value(v: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    v.len() <= 63
        && (v.is_empty()
            || (edge(v.chars().next())
                && edge(v.chars().last())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))))
}

/// An RBAC object name: what the API server accepts for Roles and RoleBindings (a path
/// segment: not `.` or `..`, no `/` or `%`), within the 253 bytes of a name.
pub fn is_rbac_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 253 && n != "." && n != ".." && !n.contains('/') && !n.contains('%')
}

/// The verdict on a definition is a function of it: the same twice; a rejection names at
/// least one rule, each with a field and a message; a valid definition grants only delegable
/// rules, and its RBAC has names and labels Kubernetes accepts.
pub fn check_definition(world: &World, facts: &DefinitionFacts<'_>) {
    let first = world.validate(facts);
    let second = world.validate(facts);
    assert_eq!(first, second, "validation is not deterministic");
    match first {
        Err(rejection) => {
            assert!(!rejection.0.is_empty(), "a rejection without a reason");
            for e in &rejection.0 {
                assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}");
            }
        }
        Ok(valid) => check_valid(&valid, facts.namespace),
    }
}

fn check_valid(valid: &ValidDefinition, namespace: &str) {
    let grants = valid.grants.iter().chain(valid.user_access.iter().flat_map(|u| &u.assignable));
    for grant in grants {
        let c = classify(&grant.rules);
        assert!(c.findings.is_empty(), "{} grants rejected permissions: {:?}", grant.role, c.findings);
        let mut sorted = grant.subjects.clone();
        sorted.sort_by(|a, b| (&a.kind, &a.name, &a.namespace).cmp(&(&b.kind, &b.name, &b.namespace)));
        sorted.dedup();
        assert_eq!(sorted.len(), grant.subjects.len(), "duplicate subjects in {}", grant.role);
    }
    let assignments = [
        AssignmentRef { namespace: namespace.to_string(), name: "contoso".into(), uid: "0b8a7c1e-uid".into() },
        AssignmentRef {
            namespace: "a".repeat(63),
            name: format!("{}.{}", "b".repeat(63), "c".repeat(189)),
            uid: "e2b5c0d4-5c7e-4f2b-9a51-3b0c7a1f9e11".into(),
        },
    ];
    for assignment in &assignments {
        let rbac = desired::build(assignment, valid, &["customer-a".to_string(), "customer-a-web".to_string()]);
        let names: BTreeSet<(&str, &str)> = rbac
            .roles
            .iter()
            .map(|r| (r.metadata.namespace.as_deref().unwrap_or(""), r.metadata.name.as_deref().unwrap_or("")))
            .collect();
        for meta in rbac.roles.iter().map(|r| &r.metadata).chain(rbac.bindings.iter().map(|b| &b.metadata)) {
            let name = meta.name.as_deref().unwrap_or("");
            assert!(is_rbac_name(name), "object name {name:?} ({} bytes)", name.len());
            for (key, value) in meta.labels.iter().flatten() {
                assert!(is_label_value(value), "label {key}={value:?}");
            }
        }
        for b in &rbac.bindings {
            let ns = b.metadata.namespace.as_deref().unwrap_or("");
            assert!(names.contains(&(ns, b.role_ref.name.as_str())), "binding to a Role we do not make: {b:?}");
        }
        for role in &rbac.roles {
            let source = role.metadata.annotations.as_ref().and_then(|a| a.get(keys::SOURCE_ROLE));
            if source.map(String::as_str) == Some(kube_lighthouse::model::catalog::USER_ACCESS_ADMINISTRATOR) {
                continue; // binds the assignable roles: RBAC writes by design, pinned by name
            }
            let rules = role.rules.as_deref().unwrap_or_default();
            let c = classify(rules);
            assert!(
                c.findings.is_empty(),
                "Role {:?} holds rejected permissions: {:?}",
                role.metadata.name,
                c.findings
            );
        }
    }
}
