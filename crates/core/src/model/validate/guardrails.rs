//! Guardrails in validation (docs/guardrails.md): every rule of a guardrail, its namespace
//! selector, rejection of new definitions, narrowing of accepted ones; and the property that
//! no sequence of guardrail and delegation changes leaves a grant the guardrails forbid.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use proptest::prelude::*;
use proptest::sample::select;

use super::fixtures::*;
use crate::api::{
    AllowedRoles, GuardrailSpec, JustInTimeAccessLimits, JustInTimeAccessPolicy, MultiFactorAuthProvider,
};
use crate::model::guardrail::{same_role, Guardrails, NamedGuardrail};

fn guardrail(name: &str, spec: GuardrailSpec) -> NamedGuardrail {
    NamedGuardrail { name: name.into(), spec }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn tenants(allowed: &[&str]) -> GuardrailSpec {
    GuardrailSpec { allowed_managing_tenant_ids: Some(strings(allowed)), ..Default::default() }
}

fn world_with(guardrails: Vec<NamedGuardrail>) -> World {
    let mut w = World::new();
    w.guardrails = Guardrails::new(guardrails);
    w
}

fn label(w: &mut World, namespace: &str, key: &str, value: &str) {
    w.namespaces.get_mut(namespace).expect("namespace").labels.insert(key.into(), value.into());
}

fn jit(role: &str, duration: Option<&str>, mfa: bool) -> EligibleAuthorization {
    EligibleAuthorization {
        just_in_time_access_policy: Some(JustInTimeAccessPolicy {
            multi_factor_auth_provider: if mfa {
                MultiFactorAuthProvider::Azure
            } else {
                MultiFactorAuthProvider::None
            },
            maximum_activation_duration: duration.map(String::from),
            managed_by_tenant_approvers: Vec::new(),
        }),
        ..eligible(P2, role)
    }
}

fn messages(result: Result<ValidDefinition, Rejection>) -> Vec<String> {
    rejection(result).0.into_iter().map(|e| e.message).collect()
}

// --- each rule ------------------------------------------------------------------------------

#[test]
fn a_tenant_outside_the_allowed_list_is_rejected_naming_the_guardrail_and_both_fields() {
    let w = world_with(vec![guardrail("contoso-only", tenants(&[THIRD]))]);
    let result = w.validate(&spec(vec![auth(P1, READER)]));
    assert_eq!(errors(result.clone()), one(Rule::GuardrailTenantNotAllowed, "spec.managedByTenantId"));
    let message = &messages(result)[0];
    assert!(message.contains("\"contoso-only\""), "{message}");
    assert!(message.contains("spec.allowedManagingTenantIds"), "{message}");
    assert!(message.contains(MSP), "{message}");
}

#[test]
fn an_allowed_tenant_passes_in_any_case() {
    let w = world_with(vec![guardrail("msp", tenants(&[THIRD, &MSP.to_uppercase()]))]);
    valid(w.validate(&spec(vec![auth(P1, READER)])));
}

#[test]
fn an_empty_tenant_list_allows_no_tenant_and_an_absent_one_allows_any() {
    let w = world_with(vec![guardrail("nobody", tenants(&[]))]);
    assert_eq!(
        errors(w.validate(&spec(vec![auth(P1, READER)]))),
        one(Rule::GuardrailTenantNotAllowed, "spec.managedByTenantId")
    );
    let w = world_with(vec![guardrail("anything", GuardrailSpec::default())]);
    valid(w.validate(&spec(vec![auth(P1, READER)])));
}

#[test]
fn standing_roles_outside_the_allowed_list_are_rejected_by_guid_name_or_display_name() {
    let allowed = GuardrailSpec {
        allowed_role_definition_ids: Some(AllowedRoles {
            authorizations: Some(strings(&[READER])),
            eligible_authorizations: None,
        }),
        ..Default::default()
    };
    let w = world_with(vec![guardrail("readers", allowed)]);
    for reader in [READER, "kubelighthouse:reader", "reader"] {
        valid(w.validate(&spec(vec![auth(P1, reader)])));
    }
    for contributor in [CONTRIBUTOR, "kubelighthouse:contributor", "Contributor"] {
        assert_eq!(
            errors(w.validate(&spec(vec![auth(P1, READER), auth(P2, contributor)]))),
            one(Rule::GuardrailRoleNotAllowed, "spec.authorizations[1].roleDefinitionId"),
            "{contributor}"
        );
    }
}

#[test]
fn eligible_roles_are_allowed_apart_from_standing_ones() {
    let allowed = GuardrailSpec {
        allowed_role_definition_ids: Some(AllowedRoles {
            authorizations: Some(strings(&[READER])),
            eligible_authorizations: Some(strings(&[CONTRIBUTOR])),
        }),
        ..Default::default()
    };
    let w = world_with(vec![guardrail("split", allowed)]);
    let mut s = spec(vec![auth(P1, READER)]);
    s.eligible_authorizations = vec![eligible(P2, CONTRIBUTOR)];
    valid(w.validate(&s));
    s.eligible_authorizations = vec![eligible(P2, CONTRIBUTOR), eligible(P3, READER)];
    assert_eq!(
        errors(w.validate(&s)),
        one(Rule::GuardrailRoleNotAllowed, "spec.eligibleAuthorizations[1].roleDefinitionId")
    );
}

#[test]
fn an_eligible_only_role_is_refused_as_standing_and_allowed_as_eligible() {
    let only = GuardrailSpec { eligible_only_role_definition_ids: strings(&["Contributor"]), ..Default::default() };
    let w = world_with(vec![guardrail("jit-contributor", only)]);
    assert_eq!(
        errors(w.validate(&spec(vec![auth(P1, READER), auth(P2, CONTRIBUTOR)]))),
        one(Rule::GuardrailRoleEligibleOnly, "spec.authorizations[1].roleDefinitionId")
    );
    let mut s = spec(vec![auth(P1, READER)]);
    s.eligible_authorizations = vec![eligible(P2, CONTRIBUTOR)];
    valid(w.validate(&s));
}

#[test]
fn activation_duration_and_mfa_are_bounded() {
    let limits = GuardrailSpec {
        just_in_time_access_policy: Some(JustInTimeAccessLimits {
            maximum_activation_duration: Some("PT2H".into()),
            require_multi_factor_auth: true,
        }),
        ..Default::default()
    };
    let w = world_with(vec![guardrail("short", limits)]);
    let at = "spec.eligibleAuthorizations[0].justInTimeAccessPolicy";
    let cases: Vec<(EligibleAuthorization, Vec<(Rule, String)>)> = vec![
        (jit(CONTRIBUTOR, Some("PT2H"), true), vec![]),
        (jit(CONTRIBUTOR, Some("PT1H30M"), true), vec![]),
        (
            jit(CONTRIBUTOR, Some("PT2H1M"), true),
            one(Rule::GuardrailActivationTooLong, &format!("{at}.maximumActivationDuration")),
        ),
        // No duration means PT8H.
        (
            jit(CONTRIBUTOR, None, true),
            one(Rule::GuardrailActivationTooLong, &format!("{at}.maximumActivationDuration")),
        ),
        (
            jit(CONTRIBUTOR, Some("PT1H"), false),
            one(Rule::GuardrailMultiFactorAuthRequired, &format!("{at}.multiFactorAuthProvider")),
        ),
        (
            eligible(P2, CONTRIBUTOR),
            vec![
                (Rule::GuardrailActivationTooLong, format!("{at}.maximumActivationDuration")),
                (Rule::GuardrailMultiFactorAuthRequired, format!("{at}.multiFactorAuthProvider")),
            ],
        ),
    ];
    for (e, want) in cases {
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![e.clone()];
        match want.is_empty() {
            true => {
                valid(w.validate(&s));
            }
            false => assert_eq!(errors(w.validate(&s)), want, "{e:?}"),
        }
    }
}

#[test]
fn an_unreadable_duration_limit_fails_closed() {
    let limits = GuardrailSpec {
        just_in_time_access_policy: Some(JustInTimeAccessLimits {
            maximum_activation_duration: Some("PT".into()),
            require_multi_factor_auth: false,
        }),
        ..Default::default()
    };
    let w = world_with(vec![guardrail("broken", limits)]);
    let mut s = spec(vec![auth(P1, READER)]);
    s.eligible_authorizations = vec![jit(CONTRIBUTOR, Some("PT30M"), false)];
    assert_eq!(errors(w.validate(&s))[0].0, Rule::GuardrailActivationTooLong);
}

#[test]
fn the_delete_role_is_required_as_a_standing_authorization() {
    let w = world_with(vec![guardrail("removable", GuardrailSpec { require_delete_role: true, ..Default::default() })]);
    assert_eq!(
        errors(w.validate(&spec(vec![auth(P1, READER)]))),
        one(Rule::GuardrailDeleteRoleRequired, "spec.authorizations")
    );
    let mut eligible_only = spec(vec![auth(P1, READER)]);
    eligible_only.eligible_authorizations = vec![eligible(P2, REGISTRATION_ASSIGNMENT_DELETE)];
    assert_eq!(errors(w.validate(&eligible_only))[0].0, Rule::GuardrailDeleteRoleRequired);
    for delete in [REGISTRATION_ASSIGNMENT_DELETE, "kubelighthouse:registration-assignment-delete"] {
        valid(w.validate(&spec(vec![auth(P1, READER), auth(P2, delete)])));
    }
}

#[test]
fn every_guardrail_in_scope_must_allow_and_each_is_named() {
    let w = world_with(vec![
        guardrail("b-tenants", tenants(&[THIRD])),
        guardrail("a-removable", GuardrailSpec { require_delete_role: true, ..Default::default() }),
    ]);
    let r = rejection(w.validate(&spec(vec![auth(P1, READER)])));
    let named: Vec<bool> =
        [("a-removable", 0), ("b-tenants", 1)].iter().map(|(name, i)| r.0[*i].message.contains(name)).collect();
    assert_eq!(named, [true, true], "{r}");
}

// --- the namespace selector -----------------------------------------------------------------

#[test]
fn a_guardrail_governs_only_the_subscription_namespaces_its_selector_matches() {
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([("env".to_string(), "prod".to_string())])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "team".into(),
            operator: "NotIn".into(),
            values: Some(strings(&["platform"])),
        }]),
    };
    let mut w =
        world_with(vec![guardrail("prod", GuardrailSpec { namespace_selector: Some(selector), ..tenants(&[THIRD]) })]);
    let s = spec(vec![auth(P1, READER)]);
    valid(w.validate(&s));
    label(&mut w, "customer-a", "env", "prod");
    assert_eq!(errors(w.validate(&s)), one(Rule::GuardrailTenantNotAllowed, "spec.managedByTenantId"));
    label(&mut w, "customer-a", "team", "platform");
    valid(w.validate(&s));
}

#[test]
fn an_unreadable_selector_governs_every_namespace() {
    let selector = LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "env".into(),
            operator: "Near".into(),
            values: None,
        }]),
    };
    let w =
        world_with(vec![guardrail("odd", GuardrailSpec { namespace_selector: Some(selector), ..tenants(&[THIRD]) })]);
    assert_eq!(errors(w.validate(&spec(vec![auth(P1, READER)])))[0].0, Rule::GuardrailTenantNotAllowed);
}

#[test]
fn only_subscription_namespaces_keep_their_labels_and_selectors_see_every_label() {
    let labels = BTreeMap::from([
        (crate::model::keys::SUBSCRIPTION.to_string(), "customer-a".to_string()),
        ("env".to_string(), "prod".to_string()),
    ]);
    assert!(NamespaceInfo::from_labels(&labels, false).labels.is_empty());
    let mut labels = BTreeMap::from([
        (crate::model::keys::TENANT_ID.to_string(), CUSTOMER.to_string()),
        ("kubernetes.io/metadata.name".to_string(), "customer-a".to_string()),
    ]);
    let plain = NamespaceInfo::from_labels(&labels, false);
    assert!(plain.labels.is_empty(), "the tenancy labels and the name are not kept twice");
    assert_eq!(plain.selector_labels("customer-a"), labels, "a selector sees them all the same");
    labels.insert("env".into(), "prod".into());
    let info = NamespaceInfo::from_labels(&labels, false);
    assert_eq!(info.labels, BTreeMap::from([("env".to_string(), "prod".to_string())]));
    assert_eq!(info.selector_labels("customer-a"), labels);
}

// --- accepted definitions: narrowed, or rejected ---------------------------------------------

#[test]
fn a_guardrail_added_after_acceptance_withholds_the_forbidden_authorization_and_keeps_the_rest() {
    let only = GuardrailSpec { eligible_only_role_definition_ids: strings(&[CONTRIBUTOR]), ..Default::default() };
    let w = world_with(vec![guardrail("jit-contributor", only)]);
    let s = spec(vec![auth(P1, READER), auth(P2, CONTRIBUTOR)]);
    let v = valid(w.revalidate(&s, Some(1), Some(1)));
    assert_eq!(grant_roles(&v), ["kubelighthouse:reader"]);
    assert_eq!(v.narrowed.len(), 1);
    assert_eq!(v.narrowed[0].rule, Rule::GuardrailRoleEligibleOnly);
    assert!(v.narrowed[0].message.contains("\"jit-contributor\""), "{}", v.narrowed[0].message);
    // A new generation is judged afresh: rejected.
    assert_eq!(errors(w.revalidate(&s, Some(2), Some(1)))[0].0, Rule::GuardrailRoleEligibleOnly);
}

#[test]
fn a_guardrail_added_after_acceptance_withholds_forbidden_eligible_authorizations() {
    let limits = GuardrailSpec {
        just_in_time_access_policy: Some(JustInTimeAccessLimits {
            maximum_activation_duration: None,
            require_multi_factor_auth: true,
        }),
        ..Default::default()
    };
    let w = world_with(vec![guardrail("mfa", limits)]);
    let mut s = spec(vec![auth(P1, READER)]);
    s.eligible_authorizations = vec![jit(CONTRIBUTOR, None, false), jit(READER, None, true)];
    let v = valid(w.revalidate(&s, Some(1), Some(1)));
    assert_eq!(v.eligible.iter().map(|e| e.index).collect::<Vec<_>>(), [1]);
    assert_eq!(v.narrowed[0].rule, Rule::GuardrailMultiFactorAuthRequired);
}

#[test]
fn a_forbidden_tenant_or_a_missing_delete_role_rejects_even_an_accepted_definition() {
    let s = spec(vec![auth(P1, READER)]);
    let w = world_with(vec![guardrail("contoso-only", tenants(&[THIRD]))]);
    assert_eq!(
        errors(w.revalidate(&s, Some(1), Some(1))),
        one(Rule::GuardrailTenantNotAllowed, "spec.managedByTenantId")
    );
    let w = world_with(vec![guardrail("removable", GuardrailSpec { require_delete_role: true, ..Default::default() })]);
    assert_eq!(
        errors(w.revalidate(&s, Some(1), Some(1))),
        one(Rule::GuardrailDeleteRoleRequired, "spec.authorizations")
    );
}

#[test]
fn roles_are_the_same_through_the_catalog_or_as_text() {
    let c = World::new().catalog;
    assert!(same_role(&c, READER, "kubelighthouse:reader"));
    assert!(same_role(&c, "Reader", &READER.to_uppercase()));
    assert!(!same_role(&c, READER, CONTRIBUTOR));
    assert!(same_role(&c, "not-a-role", "NOT-A-ROLE"));
    assert!(!same_role(&c, "not-a-role", READER));
}

// --- the property ---------------------------------------------------------------------------

const ROLES: &[&str] =
    &[READER, CONTRIBUTOR, LOG_ANALYTICS, REGISTRATION_ASSIGNMENT_DELETE, "Contributor", "kubelighthouse:reader"];
const DURATIONS: &[Option<&str>] = &[None, Some("PT30M"), Some("PT2H"), Some("PT4H"), Some("PT8H")];

fn role_list() -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::of(prop::collection::vec(select(ROLES).prop_map(String::from), 0..3))
}

fn guardrail_spec() -> impl Strategy<Value = GuardrailSpec> {
    (
        prop::option::of(prop::collection::vec(select(&[MSP, THIRD, CUSTOMER][..]).prop_map(String::from), 0..2)),
        role_list(),
        role_list(),
        prop::collection::vec(select(ROLES).prop_map(String::from), 0..2),
        prop::option::of((select(DURATIONS), any::<bool>())),
        any::<bool>(),
        prop::option::of(select(&["prod", "dev"][..])),
    )
        .prop_map(|(tenants, standing, eligible, only, jit, delete, env)| GuardrailSpec {
            namespace_selector: env.map(|env| LabelSelector {
                match_labels: Some(BTreeMap::from([("env".to_string(), env.to_string())])),
                match_expressions: None,
            }),
            allowed_managing_tenant_ids: tenants,
            allowed_role_definition_ids: (standing.is_some() || eligible.is_some())
                .then_some(AllowedRoles { authorizations: standing, eligible_authorizations: eligible }),
            eligible_only_role_definition_ids: only,
            just_in_time_access_policy: jit.map(|(d, mfa)| JustInTimeAccessLimits {
                maximum_activation_duration: d.map(String::from),
                require_multi_factor_auth: mfa,
            }),
            require_delete_role: delete,
        })
}

const PRINCIPALS: &[&str] = &[P1, P2, P3];

fn definition() -> impl Strategy<Value = RegistrationDefinitionSpec> {
    (
        select(&[MSP, THIRD][..]),
        prop::collection::vec((select(PRINCIPALS), select(ROLES)), 1..4),
        prop::collection::vec((select(PRINCIPALS), select(ROLES), select(DURATIONS), any::<bool>()), 0..3),
    )
        .prop_map(|(tenant, standing, eligibles)| {
            let mut s = spec_for(tenant, standing.iter().map(|(p, r)| auth(p, r)).collect());
            s.eligible_authorizations = eligibles
                .iter()
                .map(|(p, r, d, mfa)| EligibleAuthorization { principal_id: p.to_string(), ..jit(r, *d, *mfa) })
                .collect();
            s
        })
}

/// One change a platform team or a customer makes, or the controller's reconcile.
#[derive(Clone, Debug)]
enum Step {
    AddGuardrail(GuardrailSpec),
    RemoveGuardrail(usize),
    EditDefinition(RegistrationDefinitionSpec),
    Relabel(Option<&'static str>),
    Reconcile,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        guardrail_spec().prop_map(Step::AddGuardrail),
        any::<usize>().prop_map(Step::RemoveGuardrail),
        definition().prop_map(Step::EditDefinition),
        prop::option::of(select(&["prod", "dev"][..])).prop_map(Step::Relabel),
        Just(Step::Reconcile),
        Just(Step::Reconcile),
    ]
}

/// What the guardrails governing `customer-a` forbid in `v` (the grant of `spec`), if anything.
fn forbidden(w: &World, spec: &RegistrationDefinitionSpec, v: &ValidDefinition) -> Option<String> {
    let labels = w.namespaces.get("customer-a").map(|ns| ns.selector_labels("customer-a")).unwrap_or_default();
    let c = &w.catalog;
    for g in w.guardrails.governing(&labels) {
        let r = &g.spec;
        if let Some(t) = &r.allowed_managing_tenant_ids {
            if !t.iter().any(|t| t.eq_ignore_ascii_case(v.managing_tenant.as_str())) {
                return Some(format!("tenant granted despite {}", g.name));
            }
        }
        if r.require_delete_role
            && !spec.authorizations.iter().any(|a| same_role(c, REGISTRATION_ASSIGNMENT_DELETE, &a.role_definition_id))
        {
            return Some(format!("granted without the Delete role despite {}", g.name));
        }
        for grant in &v.grants {
            if r.eligible_only_role_definition_ids.iter().any(|o| same_role(c, o, &grant.role)) {
                return Some(format!("{} standing despite {}", grant.role, g.name));
            }
            if let Some(list) = r.allowed_role_definition_ids.as_ref().and_then(|a| a.authorizations.as_ref()) {
                if !list.iter().any(|l| same_role(c, l, &grant.role)) {
                    return Some(format!("{} standing, not allowed by {}", grant.role, g.name));
                }
            }
        }
        for e in &v.eligible {
            if let Some(list) = r.allowed_role_definition_ids.as_ref().and_then(|a| a.eligible_authorizations.as_ref())
            {
                if !list.iter().any(|l| same_role(c, l, &e.role)) {
                    return Some(format!("{} eligible, not allowed by {}", e.role, g.name));
                }
            }
            if let Some(limits) = &r.just_in_time_access_policy {
                if limits.require_multi_factor_auth && !e.requires_mfa {
                    return Some(format!("{} eligible without MFA despite {}", e.role, g.name));
                }
                let max = limits
                    .maximum_activation_duration
                    .as_deref()
                    .map(|d| super::eligible::parse_duration(d).expect("duration"));
                if max.is_some_and(|max| e.max_duration > max) {
                    return Some(format!("{} eligible for {} despite {}", e.role, e.max_duration, g.name));
                }
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No sequence of guardrail changes, definition edits, namespace relabels and reconciles
    /// (which record acceptance, as the controller does) leaves a grant, standing or
    /// eligible, that a guardrail in force forbids.
    #[test]
    fn no_sequence_of_changes_leaves_a_grant_the_guardrails_forbid(
        first in definition(),
        steps in prop::collection::vec(step(), 1..12),
    ) {
        let mut w = World::new();
        let mut guardrails: Vec<NamedGuardrail> = Vec::new();
        let mut s = first;
        let (mut generation, mut accepted) = (1_i64, None::<i64>);
        let mut made = 0;
        for step in steps {
            let reconcile = matches!(step, Step::Reconcile);
            match step {
                Step::AddGuardrail(spec) => {
                    made += 1;
                    guardrails.push(guardrail(&format!("g{made}"), spec));
                }
                Step::RemoveGuardrail(i) if !guardrails.is_empty() => {
                    guardrails.remove(i % guardrails.len());
                }
                Step::RemoveGuardrail(_) => {}
                Step::EditDefinition(next) => {
                    s = next;
                    generation += 1;
                }
                Step::Relabel(env) => {
                    let ns = w.namespaces.get_mut("customer-a").expect("customer-a");
                    match env {
                        Some(env) => ns.labels.insert("env".into(), env.into()),
                        None => ns.labels.remove("env"),
                    };
                }
                Step::Reconcile => {}
            }
            w.guardrails = Guardrails::new(guardrails.clone());
            let result = w.revalidate(&s, Some(generation), accepted);
            if let Ok(v) = &result {
                prop_assert_eq!(forbidden(&w, &s, v), None);
                if reconcile {
                    accepted = Some(generation);
                }
            }
        }
    }
}

#[test]
fn a_selector_may_name_the_tenant_or_the_namespace_itself() {
    let by_name = LabelSelector {
        match_labels: Some(BTreeMap::from([("kubernetes.io/metadata.name".to_string(), "customer-a".to_string())])),
        match_expressions: None,
    };
    let by_tenant = LabelSelector {
        match_labels: Some(BTreeMap::from([(crate::model::keys::TENANT_ID.to_string(), CUSTOMER.to_string())])),
        match_expressions: None,
    };
    for selector in [by_name, by_tenant] {
        let w = world_with(vec![guardrail(
            "one",
            GuardrailSpec { namespace_selector: Some(selector.clone()), ..tenants(&[THIRD]) },
        )]);
        assert_eq!(
            errors(w.validate(&spec(vec![auth(P1, READER)])))[0].0,
            Rule::GuardrailTenantNotAllowed,
            "{selector:?}"
        );
    }
}
