//! The classifier over Kubernetes' real bootstrap ClusterRoles, as the local control plane
//! serves them (aggregated by kube-controller-manager), and over the shipped catalog.

mod common;

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube_lighthouse::model::catalog::CatalogRole;
use kube_lighthouse::model::rules::{classify, Violation};

async fn violations(api: &Api<ClusterRole>, name: &str) -> BTreeSet<Violation> {
    let role = api.get(name).await.expect("bootstrap role");
    assert!(
        !role.rules.clone().unwrap_or_default().is_empty(),
        "{name} has no rules: is clusterrole-aggregation running?"
    );
    classify(&role.rules.unwrap_or_default()).violations()
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn bootstrap_roles_are_judged_for_their_specific_reasons() {
    let path = common::kubeconfig();
    let client = common::client_for(&path).await;
    let api: Api<ClusterRole> = Api::all(client);
    assert_eq!(violations(&api, "view").await, BTreeSet::new(), "view must be delegable");
    // Reader and `view` as the cluster aggregates them hold to their read-only class, and edit
    // writes endpoints no more (Kubernetes 1.22).
    for name in ["view", "kubelighthouse:reader"] {
        let role = api.get(name).await.expect("aggregated role");
        let entry = CatalogRole::from_cluster_role(&role).expect("in the catalog");
        assert!(entry.classification.is_delegable(), "{name}: {:?}", entry.classification.findings);
    }
    let edit = violations(&api, "edit").await;
    for v in [Violation::SecretRead, Violation::DataAction, Violation::PrivilegeEscalation] {
        assert!(edit.contains(&v), "edit should be rejected for {v:?}: {edit:?}");
    }
    assert!(!edit.contains(&Violation::RbacWrite), "edit writes no RBAC: {edit:?}");
    assert!(!edit.contains(&Violation::TrafficRedirect), "edit writes no endpoints since 1.22: {edit:?}");
    let admin = violations(&api, "admin").await;
    for v in [Violation::SecretRead, Violation::DataAction, Violation::PrivilegeEscalation, Violation::RbacWrite] {
        assert!(admin.contains(&v), "admin should be rejected for {v:?}: {admin:?}");
    }
    let cluster_admin = violations(&api, "cluster-admin").await;
    assert!(
        cluster_admin.contains(&Violation::WildcardVerb) && cluster_admin.contains(&Violation::WildcardResource),
        "{cluster_admin:?}"
    );
}

#[test]
fn the_shipped_catalog_is_delegable_except_user_access_administrator() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kube-lighthouse/files/catalog.yaml");
    let text = std::fs::read_to_string(path).expect("catalog.yaml");
    let mut seen = BTreeSet::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let role: ClusterRole = serde::Deserialize::deserialize(doc).expect("a ClusterRole");
        let entry = CatalogRole::from_cluster_role(&role).expect("labelled built-in");
        let guid = entry.guid.clone().expect("every catalog role has a GUID").to_string();
        seen.insert(guid);
        // Judged as the catalog judges it: by the classifier and by the role's documented class.
        let verdict = entry.classification.clone();
        if entry.is_user_access_administrator() {
            assert!(!verdict.is_delegable(), "UAA's own rules are RBAC writes; it is materialized specially");
        } else {
            assert!(verdict.is_delegable(), "{} is not delegable: {:?}", entry.name, verdict.findings);
        }
    }
    let spec: BTreeSet<String> = [
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "91c1777a-f3dc-4fae-b103-61d183457e46",
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "92aaf0da-9dab-42b6-94a3-d43ce8d16293",
        "36243c78-bf99-498c-9df9-86d9f8d28608",
        "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(seen, spec, "the catalog holds exactly the SPEC §4 roles");
}
