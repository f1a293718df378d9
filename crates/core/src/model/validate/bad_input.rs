//! Bad input, tried systematically (issue 19 item 5): every field of a definition and of an
//! assignment with malformed values (empty, 64 KiB, Unicode confusables, bidirectional
//! marks, control characters), and the extremes that are valid (names of 63 and 253
//! characters, 400 authorizations × 10 delegated roles). Each malformed value is rejected
//! naming its rule and field, nothing is built from it, and the message quoting it stays
//! short and free of characters that would reorder a terminal. The same table runs against
//! the real API server in `tests/bad_input.rs`.

use super::fixtures::*;
use crate::api::{EligibleApprover, JustInTimeAccessPolicy, MultiFactorAuthProvider, Plan};

/// Longest message one error may carry: values are quoted cut (`text::quoted`).
const MESSAGE_LIMIT: usize = 512;

/// The malformed values every identifier field is tried with, by name.
fn malformed_identifiers() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("64 KiB", "a".repeat(64 * 1024)),
        // A GUID whose 'e' is CYRILLIC SMALL LETTER IE (U+0435).
        ("confusable", "fbcdd0f3-dc82-4c\u{0435}e-bcde-7301d24e9bf6".into()),
        // FULLWIDTH DIGIT ZERO looks like 0.
        ("fullwidth", "\u{FF10}0000000-0000-0000-0000-0000000000a1".into()),
        // A GUID with RIGHT-TO-LEFT OVERRIDE inside: shows reversed.
        ("bidi", "00000000-0000-0000-0000-\u{202E}1a0000000000".into()),
        ("zero width", "00000000-0000-0000-0000-0000000000a1\u{200B}".into()),
        ("newline", "00000000-0000-0000-0000-0000000000a1\n".into()),
    ]
}

/// The malformed values every free-text field is tried with.
fn malformed_text() -> Vec<(&'static str, String)> {
    vec![
        ("64 KiB", "x".repeat(64 * 1024)),
        ("bidi", "Contoso \u{202E}tnemeganam".into()),
        ("isolate", "Contoso \u{2067}support\u{2069}".into()),
        ("control", "Contoso\u{1b}[31m support".into()),
        ("NUL", "Contoso\0".into()),
    ]
}

/// One row: a name for the failure message, the spec, and the (rule, field) expected first.
type Row = (String, RegistrationDefinitionSpec, Rule, String);

fn eligible_with(
    principal: &str,
    role: &str,
    duration: Option<&str>,
    approvers: Vec<EligibleApprover>,
) -> EligibleAuthorization {
    EligibleAuthorization {
        just_in_time_access_policy: Some(JustInTimeAccessPolicy {
            multi_factor_auth_provider: MultiFactorAuthProvider::None,
            maximum_activation_duration: duration.map(String::from),
            managed_by_tenant_approvers: approvers,
        }),
        ..eligible(principal, role)
    }
}

fn approver(principal: &str, name: Option<&str>) -> EligibleApprover {
    EligibleApprover { principal_id: principal.into(), principal_id_display_name: name.map(String::from) }
}

fn plan() -> Plan {
    Plan { name: "gold".into(), publisher: "contoso".into(), product: "managed-k8s".into(), version: "1.0.0".into() }
}

/// Every field of a definition, each with each malformed value.
fn definition_rows() -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut row = |what: &str, value: &str, spec: RegistrationDefinitionSpec, rule: Rule, field: &str| {
        rows.push((format!("{field} = {what} ({} bytes)", value.len()), spec, rule, field.to_string()));
    };
    for (what, v) in malformed_identifiers() {
        let mut s = spec(vec![auth(P1, READER)]);
        s.managed_by_tenant_id = v.clone();
        row(what, &v, s, Rule::InvalidTenantId, "spec.managedByTenantId");

        row(what, &v, spec(vec![auth(&v, READER)]), Rule::InvalidPrincipalId, "spec.authorizations[0].principalId");
        let service_account = typed(&v, PrincipalType::ServiceAccount, READER);
        row(what, &v, spec(vec![service_account]), Rule::InvalidPrincipalId, "spec.authorizations[0].principalId");
        row(what, &v, spec(vec![auth(P1, &v)]), Rule::RoleNotInCatalog, "spec.authorizations[0].roleDefinitionId");
        row(
            what,
            &v,
            spec(vec![uaa(P1, &[&v])]),
            Rule::DelegatedRoleNotAllowed,
            "spec.authorizations[0].delegatedRoleDefinitionIds[0]",
        );

        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible(&v, CONTRIBUTOR)];
        row(what, &v, s, Rule::InvalidPrincipalId, "spec.eligibleAuthorizations[0].principalId");
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible(P2, &v)];
        row(what, &v, s, Rule::RoleNotInCatalog, "spec.eligibleAuthorizations[0].roleDefinitionId");
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible_with(P2, CONTRIBUTOR, Some(&v), vec![])];
        row(
            what,
            &v,
            s,
            Rule::InvalidActivationDuration,
            "spec.eligibleAuthorizations[0].justInTimeAccessPolicy.maximumActivationDuration",
        );
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible_with(P2, CONTRIBUTOR, None, vec![approver(&v, None)])];
        row(
            what,
            &v,
            s,
            Rule::IneligiblePrincipal,
            "spec.eligibleAuthorizations[0].justInTimeAccessPolicy.managedByTenantApprovers[0].principalId",
        );
    }
    for (what, v) in malformed_text() {
        let mut s = spec(vec![auth(P1, READER)]);
        s.registration_definition_name = v.clone();
        row(what, &v, s, Rule::InvalidText, "spec.registrationDefinitionName");
        let mut s = spec(vec![auth(P1, READER)]);
        s.description = Some(v.clone());
        row(what, &v, s, Rule::InvalidText, "spec.description");
        let mut a = auth(P1, READER);
        a.principal_id_display_name = Some(v.clone());
        row(what, &v, spec(vec![a]), Rule::InvalidText, "spec.authorizations[0].principalIdDisplayName");
        let mut s = spec(vec![auth(P1, READER)]);
        let mut e = eligible(P2, CONTRIBUTOR);
        e.principal_id_display_name = Some(v.clone());
        s.eligible_authorizations = vec![e];
        row(what, &v, s, Rule::InvalidText, "spec.eligibleAuthorizations[0].principalIdDisplayName");
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible_with(P2, CONTRIBUTOR, None, vec![approver(P3, Some(&v))])];
        row(
            what,
            &v,
            s,
            Rule::InvalidText,
            "spec.eligibleAuthorizations[0].justInTimeAccessPolicy.managedByTenantApprovers[0].principalIdDisplayName",
        );
        for key in ["name", "publisher", "product", "version"] {
            let mut s = spec(vec![auth(P1, READER)]);
            let mut p = plan();
            *match key {
                "name" => &mut p.name,
                "publisher" => &mut p.publisher,
                "product" => &mut p.product,
                _ => &mut p.version,
            } = v.clone();
            s.plan = Some(p);
            row(what, &v, s, Rule::InvalidText, &format!("spec.plan.{key}"));
        }
    }
    let mut s = spec(vec![auth(P1, READER)]);
    s.registration_definition_name = String::new();
    row("empty", "", s, Rule::InvalidText, "spec.registrationDefinitionName");
    // An empty list is refused with the principal rule (see `limits`).
    row("none", "", spec(vec![]), Rule::InvalidPrincipalId, "spec.authorizations");
    rows
}

#[test]
fn every_malformed_field_of_a_definition_is_rejected_naming_it() {
    let w = World::new();
    let rows = definition_rows();
    assert!(rows.len() > 100, "{} rows", rows.len());
    for (name, spec, rule, field) in rows {
        let rejection = w.validate(&spec).expect_err(&name);
        assert!(
            rejection.0.iter().any(|e| e.rule == rule && e.field == field),
            "{name}: expected {rule:?} at {field}, got {rejection}"
        );
        for e in &rejection.0 {
            assert!(e.message.len() <= MESSAGE_LIMIT, "{name}: a {} byte message", e.message.len());
            assert!(
                !e.message.chars().any(|c| c.is_control()
                    || ('\u{202A}'..='\u{202E}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c)),
                "{name}: the message quotes a control or bidirectional character raw: {:?}",
                e.message
            );
        }
        // Deterministic: the same input, the same verdict.
        assert_eq!(w.validate(&spec).expect_err(&name), rejection, "{name}");
    }
}

#[test]
fn a_definition_outside_a_subscription_at_63_characters_is_rejected_naming_the_namespace() {
    let mut w = World::new();
    let long = "n".repeat(63);
    w.namespaces.insert(long.clone(), cluster()["customer-a-web"].clone());
    let s = spec(vec![auth(P1, READER)]);
    assert_eq!(errors(w.validate_in(&long, &s)), one(Rule::NotASubscription, "metadata.namespace"));
}

#[test]
fn every_malformed_definition_reference_of_an_assignment_is_not_found() {
    use crate::model::outcome::{decide, Outcome, Snapshot};
    let w = World::new();
    for (what, name) in malformed_identifiers() {
        let mut assignment = crate::api::RegistrationAssignment::new(
            "offer",
            crate::api::RegistrationAssignmentSpec {
                registration_definition_ref: crate::api::DefinitionRef { name: name.clone() },
            },
        );
        assignment.metadata.namespace = Some("customer-a".into());
        // No definition has a malformed name: the dereference finds none.
        let snapshot = Snapshot::new(&assignment, std::iter::empty(), None);
        let outcome = decide(&snapshot, &w.ctx());
        assert!(outcome.desired().is_none(), "{what}: something was built");
        let Outcome::Rejected(rejected) = outcome else { panic!("{what}: granted") };
        let e = &rejected.rejection.0[0];
        assert_eq!(
            (e.rule, e.field.as_str()),
            (Rule::DefinitionNotFound, "spec.registrationDefinitionRef.name"),
            "{what}"
        );
        assert!(e.message.len() <= MESSAGE_LIMIT, "{what}: a {} byte message", e.message.len());
    }
}

#[test]
fn the_largest_valid_definition_is_accepted_and_its_names_fit_kubernetes() {
    // 400 authorizations (the limit), each a User Access Administrator with 10 delegated
    // roles, every display name at its limit, in a namespace of 63 characters, assigned by
    // an assignment of 253.
    // The shipped catalog holds 6 delegable roles besides UAA; four more read-only ones make 10.
    let extra = (0..4)
        .map(|i| {
            let name = format!("test:reader-{i}");
            catalog_cluster_role(&name, None, None, vec![rule(&["apps"], &["deployments"], &["get", "list"])])
        })
        .collect();
    let w = World::with_catalog(catalog_with(extra));
    let delegable: Vec<String> = w
        .catalog
        .roles()
        .iter()
        .filter(|r| !r.is_user_access_administrator() && !r.is_owner() && r.classification.is_delegable())
        .map(|r| r.name.clone())
        .take(10)
        .collect();
    assert_eq!(delegable.len(), 10, "the catalog holds 10 delegable roles");
    let delegated: Vec<&str> = delegable.iter().map(String::as_str).collect();
    let authorizations: Vec<Authorization> = (0..400)
        .map(|i| Authorization {
            principal_id_display_name: Some("é".repeat(text::MAX_NAME)),
            ..uaa(&format!("00000000-0000-4000-8000-{i:012x}"), &delegated)
        })
        .collect();
    let mut s = spec(authorizations);
    s.registration_definition_name = "Ω".repeat(text::MAX_NAME);
    s.description = Some("d".repeat(text::MAX_DESCRIPTION));
    let subscription = "s".repeat(63);
    let mut w = w;
    w.namespaces.insert(subscription.clone(), sub(CUSTOMER));
    let valid = w.validate_in(&subscription, &s).expect("valid");
    let assignment = crate::model::desired::AssignmentRef {
        namespace: subscription.clone(),
        name: "a".repeat(253),
        uid: "0a0a0a0a-0000-4000-8000-000000000001".into(),
    };
    let desired = crate::model::desired::build(&assignment, &valid, std::slice::from_ref(&subscription));
    let names = desired
        .roles
        .iter()
        .map(|r| r.metadata.name.clone())
        .chain(desired.bindings.iter().map(|b| b.metadata.name.clone()));
    let mut count = 0;
    for name in names {
        let name = name.expect("named");
        assert!(name.len() <= 253 && !name.is_empty(), "{name}");
        count += 1;
    }
    assert!(count > 0 && count <= 2 * 11, "{count} objects for one UAA grant and 10 assignable roles");
    for labels in desired.roles.iter().filter_map(|r| r.metadata.labels.as_ref()) {
        for value in labels.values() {
            assert!(value.len() <= 63, "label value {value}");
        }
    }
}
