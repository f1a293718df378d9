//! The fleet's pure core: a report holds one tenant's delegations and nothing else, and a
//! caller sees at a hub exactly the union of what each cluster's own views show it.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::api::{
    Authorization, DefinitionRef, EligibleApprover, EligibleAuthorization, JustInTimeAccessPolicy,
    MultiFactorAuthProvider, ProvisioningState, RegistrationAssignmentSpec, RegistrationAssignmentStatus,
    RegistrationDefinitionSpec,
};
use crate::model::catalog::tests::{catalog_cluster_role, READER};
use crate::model::catalog::Catalog;
use crate::model::projection::IdentityTemplates;
use crate::model::scope::tests::{rg, sub};
use crate::model::scope::NamespaceInfo;

const TENANTS: [&str; 2] = ["aaaaaaaa-0000-0000-0000-00000000000a", "bbbbbbbb-0000-0000-0000-00000000000b"];
const CUSTOMER_1: &str = "11111111-1111-1111-1111-111111111111";
const CUSTOMER_2: &str = "22222222-2222-2222-2222-222222222222";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// Principals shared by both tenants (the same object IDs can exist in two tenants).
const PRINCIPALS: [&str; 4] = [
    "00000000-0000-0000-0000-0000000000a1",
    "00000000-0000-0000-0000-0000000000a2",
    "00000000-0000-0000-0000-0000000000e1",
    "00000000-0000-0000-0000-0000000000e2",
];
const ROLES: [&str; 3] = [READER, CONTRIBUTOR, OWNER];
const SCOPES: [(&str, &str); 4] =
    [("cust1", "cust1"), ("cust1", "cust1-web"), ("cust2", "cust2"), ("cust2", "cust2-app")];

fn namespaces() -> BTreeMap<String, NamespaceInfo> {
    BTreeMap::from([
        ("cust1".to_string(), sub(CUSTOMER_1)),
        ("cust1-web".to_string(), rg("cust1")),
        ("cust2".to_string(), sub(CUSTOMER_2)),
        ("cust2-app".to_string(), rg("cust2")),
    ])
}

fn catalog() -> Catalog {
    Catalog::from_cluster_roles(&[
        catalog_cluster_role("kubelighthouse:reader", Some(READER), Some("Reader"), vec![]),
        catalog_cluster_role("kubelighthouse:contributor", Some(CONTRIBUTOR), Some("Contributor"), vec![]),
    ])
}

fn guid(s: &str) -> Guid {
    Guid::parse(s).expect("a GUID")
}

/// One generated authorization: (principal index, type 0..3: none, User, Group, role index).
type Auth = (usize, usize, usize);

fn kind(k: usize) -> Option<PrincipalType> {
    [None, Some(PrincipalType::User), Some(PrincipalType::Group)][k % 3]
}

fn definition(
    sub: &str,
    name: &str,
    tenant: &str,
    auths: &[Auth],
    eligible: &[(Auth, Vec<usize>)],
) -> RegistrationDefinition {
    let mut d = RegistrationDefinition::new(
        name,
        RegistrationDefinitionSpec {
            registration_definition_name: format!("Offer {name}"),
            description: None,
            managed_by_tenant_id: tenant.into(),
            authorizations: auths
                .iter()
                .map(|&(p, k, r)| Authorization {
                    principal_id: PRINCIPALS[p].into(),
                    principal_id_display_name: Some(format!("p{p}")),
                    principal_type: kind(k),
                    role_definition_id: ROLES[r].into(),
                    delegated_role_definition_ids: vec![],
                })
                .collect(),
            eligible_authorizations: eligible
                .iter()
                .map(|&((p, k, r), ref approvers)| EligibleAuthorization {
                    principal_id: PRINCIPALS[p].into(),
                    principal_id_display_name: None,
                    principal_type: kind(k),
                    role_definition_id: ROLES[r].into(),
                    just_in_time_access_policy: Some(JustInTimeAccessPolicy {
                        multi_factor_auth_provider: MultiFactorAuthProvider::None,
                        maximum_activation_duration: None,
                        managed_by_tenant_approvers: approvers
                            .iter()
                            .map(|&a| EligibleApprover {
                                principal_id: PRINCIPALS[a].into(),
                                principal_id_display_name: None,
                            })
                            .collect(),
                    }),
                })
                .collect(),
            plan: None,
        },
    );
    d.metadata.namespace = Some(sub.into());
    d
}

fn assignment(scope: &str, name: &str, state: ProvisioningState, in_force: bool) -> RegistrationAssignment {
    let mut a = RegistrationAssignment::new(
        name,
        RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: name.into() } },
    );
    a.metadata.namespace = Some(scope.into());
    a.status = Some(RegistrationAssignmentStatus {
        provisioning_state: Some(state),
        namespaces: if in_force { vec![scope.to_string()] } else { vec![] },
        ..Default::default()
    });
    a
}

fn caller(tenant: &str, user: usize, groups: &[usize]) -> Caller {
    let mut all: Vec<String> = groups.iter().map(|g| format!("{tenant}:{}", PRINCIPALS[*g])).collect();
    all.push("system:authenticated".into());
    Caller { username: format!("{tenant}:{}", PRINCIPALS[user]), groups: all, extra: Default::default() }
}

/// A generated cluster: definitions (one assignment each, at one of the scopes).
#[derive(Clone, Debug)]
struct Delegated {
    scope: usize,
    tenant: usize,
    auths: Vec<Auth>,
    eligible: Vec<(Auth, Vec<usize>)>,
    state: usize,
    in_force: bool,
}

fn auth() -> impl Strategy<Value = Auth> {
    (0..PRINCIPALS.len(), 0..3usize, 0..ROLES.len())
}

fn delegated() -> impl Strategy<Value = Delegated> {
    (
        0..SCOPES.len(),
        0..2usize,
        proptest::collection::vec(auth(), 1..3),
        proptest::collection::vec((auth(), proptest::collection::vec(0..PRINCIPALS.len(), 0..2)), 0..2),
        0..4usize,
        any::<bool>(),
    )
        .prop_map(|(scope, tenant, auths, eligible, state, in_force)| Delegated {
            scope,
            tenant,
            auths,
            eligible,
            state,
            in_force,
        })
}

struct World {
    definitions: Vec<RegistrationDefinition>,
    assignments: Vec<RegistrationAssignment>,
    namespaces: BTreeMap<String, NamespaceInfo>,
    catalog: Catalog,
    templates: IdentityTemplates,
}

impl World {
    fn of(delegated: &[Delegated]) -> World {
        let states = [
            ProvisioningState::Succeeded,
            ProvisioningState::Failed,
            ProvisioningState::Accepted,
            ProvisioningState::Deleting,
        ];
        let mut w = World {
            definitions: vec![],
            assignments: vec![],
            namespaces: namespaces(),
            catalog: catalog(),
            templates: IdentityTemplates::default(),
        };
        for (i, d) in delegated.iter().enumerate() {
            let (sub, scope) = SCOPES[d.scope];
            let name = format!("d{i}");
            w.definitions.push(definition(sub, &name, TENANTS[d.tenant], &d.auths, &d.eligible));
            w.assignments.push(assignment(scope, &name, states[d.state], d.in_force));
        }
        w
    }

    fn ctx(&self) -> ViewContext<'_> {
        ViewContext { namespaces: &self.namespaces, templates: &self.templates, catalog: &self.catalog }
    }

    fn report(&self, tenant: &str) -> Report {
        report(&guid(tenant), &self.definitions, &self.assignments, &self.ctx(), "2026-01-01T00:00:00Z".into())
    }
}

#[test]
fn a_report_holds_its_tenants_delegations_and_nothing_else() {
    let d = |scope, tenant, auths: Vec<Auth>| Delegated {
        scope,
        tenant,
        auths,
        eligible: vec![],
        state: 0,
        in_force: true,
    };
    let mut w = World::of(&[d(0, 0, vec![(0, 1, 0)]), d(2, 1, vec![(0, 1, 0)]), d(3, 0, vec![(2, 2, 1)])]);
    // An assignment whose definition is gone is reported to no one.
    w.assignments.push(assignment("cust1", "orphan", ProvisioningState::Succeeded, true));
    let a = w.report(TENANTS[0]);
    assert_eq!(a.metadata.name.as_deref(), Some(TENANTS[0]));
    assert_eq!(a.delegations.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["cust1.d0", "cust2-app.d2"]);
    let rg = &a.delegations[1];
    assert_eq!((rg.customer_tenant_id.as_str(), rg.subscription.as_str()), (CUSTOMER_2, "cust2"));
    assert_eq!(rg.scope_kind.as_str(), "ResourceGroup");
    assert_eq!(rg.authorizations[0].role, "Contributor");
    assert_eq!(rg.authorizations[0].principal.principal_type.as_deref(), Some("Group"));
    assert_eq!(rg.authorizations[0].principal.subjects.len(), 1);
    assert_eq!(rg.authorizations[0].principal.subjects[0].name, format!("{}:{}", TENANTS[0], PRINCIPALS[2]));
    let b = w.report(TENANTS[1]);
    assert_eq!(b.delegations.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["cust2.d1"]);
    assert!(!serde_json::to_string(&b).expect("json").contains(TENANTS[0]), "B's report names tenant A");
    // The report's fields are exactly the documented ones.
    let json = serde_json::to_value(&a).expect("json");
    let mut keys: Vec<&str> = json.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["apiVersion", "delegations", "kind", "managedByTenantId", "metadata", "observedTime"]);
    let mut keys: Vec<&str> = json["delegations"][0].as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "assignment",
            "authorizations",
            "compliance",
            "customerTenantId",
            "name",
            "namespace",
            "namespaces",
            "offer",
            "scopeKind",
            "state",
            "subscription"
        ]
    );
}

#[test]
fn a_hub_shows_only_reports_it_read_and_names_them_by_cluster() {
    let w = World::of(&[Delegated {
        scope: 0,
        tenant: 0,
        auths: vec![(0, 1, 0)],
        eligible: vec![],
        state: 0,
        in_force: true,
    }]);
    let alice = caller(TENANTS[0], 0, &[]);
    let read = Followed::Read { report: w.report(TENANTS[0]).into(), observed_time: "2026-01-01T00:00:05Z".into() };
    let clusters = BTreeMap::from([
        (("east".to_string(), TENANTS[0].to_string()), read.clone()),
        (
            ("west".to_string(), TENANTS[0].to_string()),
            Followed::Unreadable { error: "timed out".into(), last_observed: None },
        ),
        (("north".to_string(), TENANTS[0].to_string()), Followed::Withdrawn { since: "2026-01-01T00:00:00Z".into() }),
    ]);
    let seen = fleet_delegations(&alice, &clusters);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].metadata.name.as_deref(), Some("east.cust1.d0"));
    assert_eq!(seen[0].cluster.as_deref(), Some("east"));
    assert_eq!(seen[0].observed_time.as_deref(), Some("2026-01-01T00:00:05Z"));
    let customers = views::customers(&seen);
    assert_eq!(customers[0].clusters, ["east"]);
    let table = views::delegation_table(&seen, views::IncludeObject::None);
    assert_eq!(table.column_definitions[1].name, "Cluster");
    assert_eq!(table.rows[0].cells[1], "east");
    // Another tenant's engineer with the same object ID sees nothing of A's report.
    assert!(fleet_delegations(&caller(TENANTS[1], 0, &[]), &clusters).is_empty());
    // The clusters of A's reports, each with its state, to A's engineers only.
    let states: Vec<(String, String, Option<String>)> =
        fleet_clusters(&alice, &clusters).into_iter().map(|c| (c.cluster, c.state, c.observed_time)).collect();
    assert_eq!(
        states,
        [
            ("east".to_string(), "Current".to_string(), Some("2026-01-01T00:00:05Z".to_string())),
            ("north".to_string(), "Withdrawn".to_string(), None),
            ("west".to_string(), "Unreadable".to_string(), None),
        ]
    );
    assert!(fleet_clusters(&caller(TENANTS[1], 0, &[]), &clusters).is_empty());
}

/// A report counts only for the tenant it was read for: one that names another tenant (or is
/// read under another tenant's key) shows nothing to anyone.
#[test]
fn a_report_under_another_tenants_key_shows_nothing() {
    let w = World::of(&[Delegated {
        scope: 0,
        tenant: 0,
        auths: vec![(0, 1, 0)],
        eligible: vec![],
        state: 0,
        in_force: true,
    }]);
    let forged = Followed::Read { report: w.report(TENANTS[0]).into(), observed_time: "2026-01-01T00:00:05Z".into() };
    let clusters = BTreeMap::from([(("east".to_string(), TENANTS[1].to_string()), forged)]);
    assert!(fleet_delegations(&caller(TENANTS[0], 0, &[]), &clusters).is_empty());
    assert!(fleet_delegations(&caller(TENANTS[1], 0, &[]), &clusters).is_empty());
}

#[test]
fn a_cluster_row_carries_its_endpoint_and_its_reports_broker_never_a_credential() {
    let w = World::of(&[Delegated {
        scope: 0,
        tenant: 0,
        auths: vec![(0, 1, 0)],
        eligible: vec![],
        state: 0,
        in_force: true,
    }]);
    let mut report = w.report(TENANTS[0]);
    report.broker = Some("https://lighthouse.customer.example/federation".into());
    let clusters = BTreeMap::from([
        (
            ("east".to_string(), TENANTS[0].to_string()),
            Followed::Read { report: report.into(), observed_time: "t".into() },
        ),
        (("west".to_string(), TENANTS[0].to_string()), Followed::Unreadable { error: "e".into(), last_observed: None }),
    ]);
    // A kubeconfig as a hand-written profile's Secret holds it: two clusters, the current one used.
    let secret = "apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n\
        - {name: a, cluster: {server: 'https://a:6443'}}\n\
        - {name: b, cluster: {server: 'https://b:6443', certificate-authority-data: Q0E=}}\n\
        contexts:\n- {name: b, context: {cluster: b, user: u}}\nusers:\n- {name: u, user: {token: secret-token}}\n";
    let east = endpoint(secret).expect("an endpoint");
    assert_eq!(east, Endpoint { server: "https://b:6443".into(), certificate_authority_data: Some("Q0E=".into()) });
    // The kubeconfig the hub writes for an access provider (JSON is YAML), without a CA.
    let west = endpoint(r#"{"clusters": [{"name": "w", "cluster": {"server": "https://w"}}], "users": []}"#);
    assert_eq!(west, Some(Endpoint { server: "https://w".into(), certificate_authority_data: None }));
    assert_eq!(endpoint("clusters: []"), None);
    assert_eq!(endpoint("current-context: gone\nclusters: [{name: a, cluster: {server: s}}]\ncontexts: []"), None);
    let endpoints = BTreeMap::from([("east".to_string(), east), ("west".to_string(), west.expect("west"))]);
    let rows = with_endpoints(fleet_clusters(&caller(TENANTS[0], 0, &[]), &clusters), &endpoints);
    assert_eq!(rows[0].server.as_deref(), Some("https://b:6443"));
    assert_eq!(rows[0].certificate_authority_data.as_deref(), Some("Q0E="));
    assert_eq!(rows[0].broker.as_deref(), Some("https://lighthouse.customer.example/federation"));
    // A row whose report this tenant is not read (not Current) shows no endpoint: a cluster
    // that granted only another tenant is not located for this one.
    assert_ne!(rows[1].state, "Current");
    assert_eq!((rows[1].server.as_deref(), rows[1].broker.as_deref()), (None, None));
    let text = serde_json::to_string(&rows).expect("json");
    assert!(!text.contains("secret-token") && !text.contains("token"), "{text}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For every caller, the union over managing tenants of what the reports show it equals
    /// what the cluster's own views show it (activations aside: they stay in the cluster).
    #[test]
    fn the_reports_show_each_caller_what_the_cluster_shows_it(
        delegated in proptest::collection::vec(delegated(), 0..8),
        tenant in 0..2usize,
        user in 0..PRINCIPALS.len(),
        groups in proptest::collection::vec(0..PRINCIPALS.len(), 0..3),
    ) {
        let w = World::of(&delegated);
        let who = caller(TENANTS[tenant], user, &groups);
        let own = views::delegations(&who, &w.definitions, &w.assignments, &w.ctx());
        let mut reported: Vec<Delegation> =
            TENANTS.iter().flat_map(|t| delegations(&who, &w.report(t))).collect();
        reported.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        prop_assert_eq!(&reported, &own);
        // At a hub reading every tenant's report under one cluster name: the same, renamed.
        let clusters: FleetState = TENANTS
            .iter()
            .map(|t| ((format!("c-{t}"), t.to_string()), Followed::Read { report: w.report(t).into(), observed_time: "t".into() }))
            .collect();
        let hub = fleet_delegations(&who, &clusters);
        prop_assert_eq!(hub.len(), own.len());
        for d in &hub {
            let cluster = d.cluster.clone().unwrap_or_default();
            let mut back = d.clone();
            back.cluster = None;
            back.observed_time = None;
            back.metadata.name = Some(delegation_name(&d.namespace, &d.assignment));
            prop_assert_eq!(d.metadata.name.clone(), Some(hub_name(&cluster, &d.namespace, &d.assignment)));
            prop_assert!(own.contains(&back), "{:?} not in the cluster's own view", back);
        }
    }
}

#[test]
fn report_grants_are_found_by_rule_and_binding() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
    let role = |name: &str, resources: &[&str], names: Option<&[&str]>| ClusterRole {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["view.kubelighthouse.io".into()]),
            resources: Some(resources.iter().map(|r| r.to_string()).collect()),
            resource_names: names.map(|n| n.iter().map(|r| r.to_string()).collect()),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    let binding = |name: &str, role: &str| ClusterRoleBinding {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "hub".into(),
            namespace: Some("hubs".into()),
            ..Default::default()
        }]),
    };
    let roles = [
        role("a", &["reports"], Some(&[TENANTS[0]])),
        role("views", &["customers", "delegations"], None),
        role("every", &["reports"], None),
    ];
    let bindings =
        [binding("grant-a", "a"), binding("views", "views"), binding("all", "every"), binding("dangling", "gone")];
    let grants = report_grants(&roles, &bindings);
    assert_eq!(
        grants.iter().map(|g| (g.tenant.as_str(), g.binding.as_str(), g.subject.as_str())).collect::<Vec<_>>(),
        [("*", "all", "ServiceAccount:hubs/hub"), (TENANTS[0], "grant-a", "ServiceAccount:hubs/hub")]
    );
}

#[test]
fn access_follows_the_hubs_provider_order_then_the_secret_annotation() {
    use crate::api::cluster_profile::{
        AccessProvider, ClusterProfile, ClusterProfileStatus, ProviderEntry, ProviderFile,
    };
    let provider = |name: &str, server: &str| AccessProvider {
        name: name.into(),
        cluster: BTreeMap::from([("server".to_string(), serde_json::json!(server))]),
    };
    let mut profile = ClusterProfile {
        metadata: ObjectMeta { name: Some("east".into()), namespace: Some("fleet".into()), ..Default::default() },
        status: Some(ClusterProfileStatus {
            access_providers: vec![provider("token", "https://new:6443")],
            credential_providers: vec![provider("token", "https://old:6443"), provider("other", "https://o:6443")],
        }),
    };
    let file = ProviderFile {
        providers: vec![ProviderEntry {
            name: "token".into(),
            exec_config: serde_json::json!({"apiVersion": "client.authentication.k8s.io/v1", "command": "cp-creds", "provideClusterInfo": true}),
        }],
    };
    let Ok(Access::Kubeconfig(yaml)) = access(&profile, &file) else { panic!("a kubeconfig") };
    let k: serde_json::Value = serde_yaml::from_str(&yaml).expect("yaml");
    assert_eq!(k["clusters"][0]["cluster"]["server"], "https://new:6443", "accessProviders wins");
    assert_eq!(k["users"][0]["user"]["exec"]["command"], "cp-creds");
    assert_eq!(k["current-context"], "east");
    // No provider the hub knows: the Secret annotation, else an error naming what was offered.
    let none = ProviderFile::default();
    assert_eq!(access(&profile, &none), Err(AccessError::NoProvider("other, token".into())));
    profile.metadata.annotations = Some(BTreeMap::from([(
        crate::api::cluster_profile::KUBECONFIG_SECRET_ANNOTATION.to_string(),
        "east-kubeconfig".into(),
    )]));
    assert_eq!(access(&profile, &none), Ok(Access::Secret("east-kubeconfig".into())));
}
