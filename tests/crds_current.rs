//! The committed CRD YAML is what the API types generate: `cargo run --bin crdgen` fixes it.

#[test]
fn committed_crds_match_the_api_types() {
    for (file, yaml) in kube_lighthouse::api::crd_yaml() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds").join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == yaml, "crds/{file} is stale: run `cargo run --bin crdgen`");
    }
}

#[test]
fn crds_carry_the_contract() {
    let all: String = kube_lighthouse::api::crd_yaml().into_iter().map(|(_, y)| y).collect();
    for needle in [
        "group: managedservices.kubelighthouse.io",
        "- regdef",
        "- regassign",
        "- lighthouse",
        "status: {}",
        "name: v1alpha1",
    ] {
        assert!(all.contains(needle), "CRDs lack {needle:?}");
    }
}
