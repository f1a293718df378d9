//! docs/reference.md is what the code generates (the API's fields, the rules, the role
//! catalog): `cargo run --bin crdgen` fixes it.

#[test]
fn the_reference_page_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == kube_lighthouse::reference::markdown(),
        "docs/reference.md is stale: run `cargo run --bin crdgen`"
    );
}

/// The page names every rule, every finding and every catalog role: what a user meets in a
/// status, an Event or a refusal is explained there.
#[test]
fn the_reference_page_names_every_rule_and_role() {
    use strum::IntoEnumIterator;
    let page = kube_lighthouse::reference::markdown();
    for rule in kube_lighthouse::model::validate::Rule::iter() {
        assert!(page.contains(&format!("| `{}` |", rule.reason())), "no row for rule {}", rule.reason());
    }
    for violation in kube_lighthouse::model::rules::Violation::iter() {
        assert!(page.contains(&format!("| `{}` |", violation.reason())), "no row for {}", violation.reason());
    }
    let catalog = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kube-lighthouse/files/catalog.yaml"),
    )
    .expect("catalog");
    for line in catalog.lines() {
        if let Some(name) = line.strip_prefix("  name: ") {
            assert!(page.contains(&format!("| `{name}` |")), "no row for catalog role {name}");
        }
    }
    for field in [
        "`spec.managedByTenantId`",
        "`spec.authorizations[].roleDefinitionId`",
        "`spec.registrationDefinitionRef.name`",
    ] {
        assert!(page.contains(field), "no row for {field}");
    }
}
