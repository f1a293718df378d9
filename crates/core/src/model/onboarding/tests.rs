//! The planner, rule by rule: selection, opt-out, the customer's own definition, names taken,
//! the home tenant, removals, status counts, and the template's judgement.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};
use serde::Deserialize;

use super::*;
use crate::api::{Authorization, OnboardingSpec, Plan as OfferPlan};
use crate::model::catalog::Catalog;
use crate::model::keys;
use crate::model::projection::IdentityTemplates;
use crate::model::validate::Limits;

const MSP: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
const CUSTOMER: &str = "11111111-1111-1111-1111-111111111111";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
const UID: &str = "uid-1";

fn spec(name: &str) -> RegistrationDefinitionSpec {
    RegistrationDefinitionSpec {
        registration_definition_name: name.into(),
        description: None,
        managed_by_tenant_id: MSP.into(),
        authorizations: vec![Authorization {
            principal_id: "00000000-0000-0000-0000-0000000000a1".into(),
            principal_id_display_name: Some("MSP Engineers".into()),
            principal_type: None,
            role_definition_id: READER.into(),
            delegated_role_definition_ids: Vec::new(),
        }],
        eligible_authorizations: Vec::new(),
        plan: None,
    }
}

fn onboarding(selector: LabelSelector) -> Onboarding {
    let mut o =
        Onboarding::new("contoso", OnboardingSpec { namespace_selector: selector, definition: spec("Contoso") });
    o.metadata.uid = Some(UID.into());
    o.metadata.generation = Some(3);
    o
}

fn env(value: &str) -> LabelSelector {
    LabelSelector { match_labels: Some(BTreeMap::from([("env".to_string(), value.to_string())])), ..Default::default() }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn subscription(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = labels(extra);
    l.insert(keys::TENANT_ID.into(), CUSTOMER.into());
    l
}

fn facts<'a>(name: &'a str, labels: &'a BTreeMap<String, String>) -> NamespaceFacts<'a> {
    NamespaceFacts { name, labels, terminating: false }
}

fn owned_definition(source: &Source<'_>, ns: &str) -> RegistrationDefinition {
    desired_definition(source, ns)
}

#[test]
fn a_matching_subscription_is_onboarded_with_an_owned_definition_and_assignment() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let l = subscription(&[("env", "prod")]);
    let plan = plan(std::slice::from_ref(&source), &facts("customer-a", &l), &[]);
    assert_eq!(plan.definitions.len(), 1);
    assert_eq!(plan.assignments.len(), 1);
    let d = &plan.definitions[0];
    assert_eq!(d.metadata.namespace.as_deref(), Some("customer-a"));
    assert_eq!(d.spec, o.spec.definition);
    assert_eq!(owner_uid(&d.metadata), Some(UID));
    assert_eq!(plan.assignments[0].spec.registration_definition_ref.name, "contoso");
    assert_eq!(owner_uid(&plan.assignments[0].metadata), Some(UID));
    assert!(plan.removals.is_empty());
}

#[test]
fn nothing_is_written_when_the_namespace_already_holds_what_is_wanted() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let l = subscription(&[("env", "prod")]);
    let d = owned_definition(&source, "customer-a");
    let a = desired_assignment(&source, "customer-a");
    let present = [Present::definition(&d), Present::assignment(&a)];
    assert!(plan(&[source], &facts("customer-a", &l), &present).is_empty());
}

#[test]
fn an_edited_owned_definition_is_brought_back_to_the_template() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let l = subscription(&[("env", "prod")]);
    let mut d = owned_definition(&source, "customer-a");
    d.spec.description = Some("edited".into());
    let a = desired_assignment(&source, "customer-a");
    let present = [Present::definition(&d), Present::assignment(&a)];
    let p = plan(&[source], &facts("customer-a", &l), &present);
    assert_eq!(p.definitions.len(), 1);
    assert_eq!(p.definitions[0].spec.description, None);
    assert!(p.assignments.is_empty());
}

#[test]
fn only_subscriptions_the_selector_matches_are_selected() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let staging = subscription(&[("env", "staging")]);
    let resource_group = labels(&[("env", "prod"), (keys::SUBSCRIPTION, "customer-a")]);
    let plain = labels(&[("env", "prod")]);
    for l in [&staging, &resource_group, &plain] {
        assert_eq!(verdict(&source, &facts("ns", l), &[]), Verdict::NotSelected, "{l:?}");
    }
    let prod = subscription(&[("env", "prod")]);
    let mut terminating = facts("ns", &prod);
    terminating.terminating = true;
    assert_eq!(verdict(&source, &terminating, &[]), Verdict::NotSelected);
}

#[test]
fn match_expressions_select_too_and_an_empty_selector_selects_every_subscription() {
    let expr = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec!["gold".into(), "silver".into()]),
        }]),
        ..Default::default()
    };
    let o = onboarding(expr);
    let source = Source::of(&o).expect("source");
    let gold = subscription(&[("tier", "gold")]);
    let bronze = subscription(&[("tier", "bronze")]);
    assert_eq!(verdict(&source, &facts("a", &gold), &[]), Verdict::Onboard);
    assert_eq!(verdict(&source, &facts("b", &bronze), &[]), Verdict::NotSelected);
    let all = onboarding(LabelSelector::default());
    let all = Source::of(&all).expect("source");
    assert_eq!(verdict(&all, &facts("b", &bronze), &[]), Verdict::Onboard);
}

#[test]
fn an_invalid_selector_selects_nothing_and_says_why() {
    let bad = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "Near".into(),
            values: None,
        }]),
        ..Default::default()
    };
    assert!(selector(&bad).expect_err("invalid").contains("spec.namespaceSelector"));
    let o = onboarding(bad);
    let source = Source::of(&o).expect("source");
    let l = subscription(&[("tier", "gold")]);
    assert_eq!(verdict(&source, &facts("a", &l), &[]), Verdict::NotSelected);
}

#[test]
fn the_opt_out_label_removes_what_the_onboarding_created_assignment_first() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let l = subscription(&[("env", "prod"), (OPT_OUT, "true")]);
    assert_eq!(verdict(&source, &facts("customer-a", &l), &[]), Verdict::OptedOut);
    let d = owned_definition(&source, "customer-a");
    let a = desired_assignment(&source, "customer-a");
    let present = [Present::definition(&d), Present::assignment(&a)];
    let p = plan(std::slice::from_ref(&source), &facts("customer-a", &l), &present);
    assert_eq!(p.removals, [Removal::Assignment("contoso".into()), Removal::Definition("contoso".into())]);
    // Any other value does not opt out.
    let l = subscription(&[("env", "prod"), (OPT_OUT, "false")]);
    assert_eq!(verdict(&source, &facts("customer-a", &l), &[]), Verdict::Onboard);
}

#[test]
fn leaving_the_selector_or_the_onboarding_going_removes_what_it_owns() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let d = owned_definition(&source, "customer-a");
    let a = desired_assignment(&source, "customer-a");
    let present = [Present::definition(&d), Present::assignment(&a)];
    let left = subscription(&[("env", "staging")]);
    assert_eq!(plan(std::slice::from_ref(&source), &facts("customer-a", &left), &present).removals.len(), 2);
    let prod = subscription(&[("env", "prod")]);
    let mut deleting = o.clone();
    deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
    let going = Source::of(&deleting).expect("source");
    assert_eq!(plan(&[going], &facts("customer-a", &prod), &present).removals.len(), 2);
    // Gone from the cache entirely (or recreated with another UID).
    assert_eq!(plan(&[], &facts("customer-a", &prod), &present).removals.len(), 2);
}

#[test]
fn objects_already_being_deleted_are_not_deleted_again() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let mut d = owned_definition(&source, "customer-a");
    d.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
    let left = subscription(&[]);
    assert!(plan(&[source], &facts("customer-a", &left), &[Present::definition(&d)]).is_empty());
}

#[test]
fn the_customers_own_definition_of_the_same_offer_is_never_overwritten() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let l = subscription(&[("env", "prod")]);
    let mut own = RegistrationDefinition::new("their-own", spec("Contoso"));
    own.metadata.namespace = Some("customer-a".into());
    let present = [Present::definition(&own)];
    let v = verdict(&source, &facts("customer-a", &l), &present);
    assert!(matches!(&v, Verdict::Skipped("CustomerDefinition", m) if m.contains("their-own")), "{v:?}");
    assert!(plan(std::slice::from_ref(&source), &facts("customer-a", &l), &present).is_empty());
    // The same plan under another display name is the same offer too.
    let offer = OfferPlan { name: "p".into(), publisher: "c".into(), product: "o".into(), version: "1".into() };
    let mut with_plan = o.clone();
    with_plan.spec.definition.plan = Some(offer.clone());
    let source = Source::of(&with_plan).expect("source");
    let mut renamed = spec("Contoso, renamed");
    renamed.plan = Some(OfferPlan { version: "2".into(), ..offer });
    let own = RegistrationDefinition::new("their-own", renamed);
    assert!(matches!(verdict(&source, &facts("customer-a", &l), &[Present::definition(&own)]), Verdict::Skipped(..)));
    // Another tenant's offer of the same name is not the same offer.
    let mut other = spec("Contoso");
    other.managed_by_tenant_id = "22222222-2222-2222-2222-222222222222".into();
    let other = RegistrationDefinition::new("other", other);
    assert_eq!(verdict(&source, &facts("customer-a", &l), &[Present::definition(&other)]), Verdict::Onboard);
}

#[test]
fn a_name_taken_by_an_object_the_onboarding_did_not_create_is_left_alone() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let l = subscription(&[("env", "prod")]);
    let theirs = RegistrationDefinition::new("contoso", spec("Something else"));
    let present = [Present::definition(&theirs)];
    assert!(matches!(verdict(&source, &facts("customer-a", &l), &present), Verdict::Skipped("NameTaken", _)));
    assert!(plan(&[source], &facts("customer-a", &l), &present).is_empty());
}

#[test]
fn a_namespace_of_the_managing_tenant_itself_is_skipped() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let mut l = subscription(&[("env", "prod")]);
    l.insert(keys::TENANT_ID.into(), MSP.to_uppercase());
    assert!(matches!(verdict(&source, &facts("msp", &l), &[]), Verdict::Skipped("HomeTenant", _)));
}

#[test]
fn status_counts_onboarded_skipped_and_opted_out_namespaces() {
    let o = onboarding(env("prod"));
    let source = Source::of(&o).expect("source");
    let prod = subscription(&[("env", "prod")]);
    let out = subscription(&[("env", "prod"), (OPT_OUT, "true")]);
    let staging = subscription(&[("env", "staging")]);
    let d = owned_definition(&source, "a");
    let a = desired_assignment(&source, "a");
    let own = RegistrationDefinition::new("their-own", spec("Contoso"));
    let namespaces = vec![
        (facts("a", &prod), vec![Present::definition(&d), Present::assignment(&a)]),
        (facts("b", &prod), vec![Present::definition(&own)]),
        (facts("c", &out), vec![]),
        (facts("d", &staging), vec![]),
    ];
    let s = status(&source, None, Some(3), namespaces);
    assert_eq!((s.onboarded, s.skipped, s.opted_out), (1, 1, 1));
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.skipped_namespaces.len(), 1);
    assert_eq!(s.skipped_namespaces[0].namespace, "b");
    assert_eq!(s.skipped_namespaces[0].reason, "CustomerDefinition");
    assert_eq!(s.conditions[0].status, ConditionStatus::True);

    // One still to create: not Ready, and said so.
    let s = status(&source, None, Some(3), vec![(facts("e", &prod), vec![])]);
    assert_eq!(s.onboarded, 0);
    assert_eq!((s.conditions[0].status, s.conditions[0].reason.as_str()), (ConditionStatus::False, "Onboarding"));

    let s = status(&source, Some("spec.namespaceSelector: bad"), Some(3), vec![]);
    assert_eq!(s.conditions[0].reason, "InvalidSelector");
}

#[test]
fn status_lists_at_most_the_first_hundred_skipped_namespaces() {
    let o = onboarding(LabelSelector::default());
    let source = Source::of(&o).expect("source");
    let mut home = subscription(&[]);
    home.insert(keys::TENANT_ID.into(), MSP.into());
    let names: Vec<String> = (0..150).map(|i| format!("ns-{i:03}")).collect();
    let s = status(&source, None, None, names.iter().map(|n| (facts(n, &home), vec![])));
    assert_eq!(s.skipped, 150);
    assert_eq!(s.skipped_namespaces.len(), MAX_LISTED);
    assert_eq!(s.skipped_namespaces[0].namespace, "ns-000");
}

fn catalog() -> Catalog {
    let yaml = include_str!("../../../../../charts/kube-lighthouse/files/catalog.yaml");
    let roles: Vec<k8s_openapi::api::rbac::v1::ClusterRole> = serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| k8s_openapi::api::rbac::v1::ClusterRole::deserialize(doc).expect("ClusterRole"))
        .collect();
    Catalog::from_cluster_roles(&roles)
}

#[test]
fn a_template_is_judged_as_each_definition_it_creates_will_be() {
    let catalog = catalog();
    let namespaces: BTreeMap<String, crate::model::scope::NamespaceInfo> = BTreeMap::new();
    let (limits, templates) = (Limits::default(), IdentityTemplates::default());
    let guardrails = crate::model::guardrail::Guardrails::default();
    let ctx = Context {
        catalog: &catalog,
        namespaces: &namespaces,
        limits: &limits,
        templates: &templates,
        guardrails: &guardrails,
    };
    let valid = validate_template(&spec("Contoso"), &ctx).expect("valid");
    assert_eq!(valid.grants.len(), 1);
    let mut owner = spec("Contoso");
    owner.authorizations[0].role_definition_id = OWNER.into();
    let rejection = validate_template(&owner, &ctx).expect_err("Owner is never delegable");
    assert!(rejection.to_string().contains("spec.authorizations[0]"), "{rejection}");
    let mut nil = spec("Contoso");
    nil.managed_by_tenant_id = "00000000-0000-0000-0000-000000000000".into();
    assert!(validate_template(&nil, &ctx).is_ok(), "the stand-in's home tenant is never the managing tenant");
}

#[test]
fn refusals_name_the_onboarding_the_rule_and_the_field_as_written() {
    let catalog = catalog();
    let namespaces: BTreeMap<String, crate::model::scope::NamespaceInfo> = BTreeMap::new();
    let (limits, templates) = (Limits::default(), IdentityTemplates::default());
    let guardrails = crate::model::guardrail::Guardrails::default();
    let ctx = Context {
        catalog: &catalog,
        namespaces: &namespaces,
        limits: &limits,
        templates: &templates,
        guardrails: &guardrails,
    };
    let mut owner = spec("Contoso");
    owner.authorizations[0].role_definition_id = OWNER.into();
    let message = template_refused("contoso", &validate_template(&owner, &ctx).expect_err("Owner"));
    assert!(message.starts_with("Onboarding contoso is rejected: "), "{message}");
    assert!(message.contains("spec.definition.authorizations[0]"), "{message}");
    let message = authority_refused("contoso", "alice may not create rolebindings.rbac.authorization.k8s.io");
    assert!(message.contains("cluster-wide") && message.contains("alice may not create"), "{message}");
}

/// One namespace of a generated world: (selected label, opted out, home tenant is the
/// managing tenant's, the customer's own definition: 0 none, 1 of the same offer, 2 under
/// the onboarding's name but another offer, 3 an unrelated one).
type World = Vec<(bool, bool, bool, u8)>;

fn customer_object(kind: u8) -> Option<RegistrationDefinition> {
    let mut d = match kind {
        1 => RegistrationDefinition::new("their-own", spec("Contoso")),
        2 => RegistrationDefinition::new("contoso", spec("Another offer")),
        3 => RegistrationDefinition::new("unrelated", spec("Another offer")),
        _ => return None,
    };
    if kind == 3 {
        d.spec.managed_by_tenant_id = "22222222-2222-2222-2222-222222222222".into();
    }
    Some(d)
}

proptest::proptest! {
    /// Whatever the namespaces, their labels and what the customer holds there: applying a plan
    /// reaches a fixed point in one step (the next plan is empty); the namespace then holds the
    /// onboarding's objects exactly where the verdict is Onboard; no write or removal ever
    /// touches an object the onboarding does not own; and once the onboarding goes, a plan
    /// removes everything it owned and nothing else.
    #[test]
    fn plans_reach_a_fixed_point_and_never_touch_the_customers_objects(
        world in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY, proptest::bool::ANY, 0u8..4), 1..8),
        select_all in proptest::bool::ANY,
    ) {
        let world: World = world;
        let o = onboarding(if select_all { LabelSelector::default() } else { env("prod") });
        let source = Source::of(&o).expect("source");
        for (selected, opted_out, home, customer) in world {
            let mut l = subscription(&[("env", if selected { "prod" } else { "staging" })]);
            if opted_out {
                l.insert(OPT_OUT.into(), "true".into());
            }
            if home {
                l.insert(keys::TENANT_ID.into(), MSP.into());
            }
            let ns = facts("ns", &l);
            let theirs = customer_object(customer);
            let mut definitions: Vec<RegistrationDefinition> = theirs.iter().cloned().collect();
            let mut assignments: Vec<RegistrationAssignment> = Vec::new();
            for round in 0..2 {
                let present: Vec<Present<'_>> = definitions
                    .iter()
                    .map(Present::definition)
                    .chain(assignments.iter().map(Present::assignment))
                    .collect();
                let p = plan(std::slice::from_ref(&source), &ns, &present);
                if round == 1 {
                    proptest::prop_assert!(p.is_empty(), "not a fixed point: {p:?}");
                }
                for d in &p.definitions {
                    proptest::prop_assert!(
                        !theirs.iter().any(|t| t.metadata.name == d.metadata.name),
                        "a write over the customer's own {:?}", d.metadata.name
                    );
                }
                for r in &p.removals {
                    let name = match r { Removal::Assignment(n) | Removal::Definition(n) => n };
                    proptest::prop_assert_eq!(name.as_str(), "contoso");
                }
                let (new_definitions, new_assignments) = (p.definitions.clone(), p.assignments.clone());
                definitions.retain(|d| !p.removals.contains(&Removal::Definition(d.metadata.name.clone().unwrap_or_default())));
                assignments.retain(|a| !p.removals.contains(&Removal::Assignment(a.metadata.name.clone().unwrap_or_default())));
                definitions.extend(new_definitions);
                assignments.extend(new_assignments);
            }
            let owned = definitions.iter().filter(|d| owner_uid(&d.metadata) == Some(UID)).count()
                + assignments.iter().filter(|a| owner_uid(&a.metadata) == Some(UID)).count();
            let onboarded = verdict(&source, &ns, &[]) == Verdict::Onboard && !matches!(customer, 1 | 2);
            proptest::prop_assert_eq!(owned, if onboarded { 2 } else { 0 });
            proptest::prop_assert!(theirs.iter().all(|t| definitions.iter().any(|d| d.metadata.name == t.metadata.name && d.spec == t.spec)), "the customer's object is gone");
            // The onboarding goes: everything it owned, and nothing else, is removed.
            let present: Vec<Present<'_>> =
                definitions.iter().map(Present::definition).chain(assignments.iter().map(Present::assignment)).collect();
            let gone = plan(&[], &ns, &present);
            proptest::prop_assert_eq!(gone.removals.len(), owned);
            proptest::prop_assert!(gone.definitions.is_empty() && gone.assignments.is_empty());
        }
    }
}
