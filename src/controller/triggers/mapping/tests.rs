//! What each watch triggers, for lists, relists, applies and deletes, and that the
//! controller's own writes trigger nothing.

use std::collections::BTreeMap;

use futures::channel::mpsc::{self, UnboundedReceiver};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::*;
use crate::api::{DefinitionRef, RegistrationAssignmentSpec};
use crate::controller::triggers::Sinks;
use crate::model::catalog::test_support::{catalog_cluster_role, READER};
use crate::model::keys;

const CUSTOMER: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const OTHER: &str = "bbbbbbbb-bbbb-4ccc-8ddd-eeeeeeeeeeee";

/// Caches as the watches fill them, and the receiving ends of every sink.
struct Harness {
    caches: Caches,
    cluster: crate::controller::testing::Cluster,
    sinks: Sinks,
    assignment_rx: UnboundedReceiver<ObjectRef<RegistrationAssignment>>,
    definition_rx: UnboundedReceiver<ObjectRef<RegistrationDefinition>>,
    namespace_rx: UnboundedReceiver<ObjectRef<CachedNamespace>>,
    sweep_rx: UnboundedReceiver<Candidate>,
    activation_rx: UnboundedReceiver<ObjectRef<RoleActivation>>,
}

fn drain<T>(rx: &mut UnboundedReceiver<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        out.push(item);
    }
    out
}

fn names<K: Resource<DynamicType = ()>>(refs: Vec<ObjectRef<K>>) -> Vec<String> {
    let mut names: Vec<String> = refs
        .into_iter()
        .map(|r| match r.namespace {
            Some(ns) => format!("{ns}/{}", r.name),
            None => r.name,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

impl Harness {
    fn new() -> Harness {
        let cluster = crate::controller::testing::cluster();
        let (a_tx, assignment_rx) = mpsc::unbounded();
        let (d_tx, definition_rx) = mpsc::unbounded();
        let (n_tx, namespace_rx) = mpsc::unbounded();
        let (s_tx, sweep_rx) = mpsc::unbounded();
        let (g_tx, _guard_rx) = mpsc::unbounded();
        let (act_tx, activation_rx) = mpsc::unbounded();
        let sinks = Sinks {
            assignments: a_tx,
            definitions: d_tx,
            namespaces: n_tx,
            sweep: s_tx,
            guard: g_tx,
            activations: act_tx,
            onboard: mpsc::unbounded().0,
            onboardings: mpsc::unbounded().0,
        };
        Harness {
            caches: cluster.caches.clone(),
            cluster,
            sinks,
            assignment_rx,
            definition_rx,
            namespace_rx,
            sweep_rx,
            activation_rx,
        }
    }

    fn triggered_assignments(&mut self) -> Vec<String> {
        names(drain(&mut self.assignment_rx))
    }

    fn triggered_definitions(&mut self) -> Vec<String> {
        names(drain(&mut self.definition_rx))
    }

    fn triggered_namespaces(&mut self) -> Vec<String> {
        names(drain(&mut self.namespace_rx))
    }

    fn nothing_triggered(&mut self) -> bool {
        self.triggered_assignments().is_empty()
            && self.triggered_definitions().is_empty()
            && self.triggered_namespaces().is_empty()
    }
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> CachedNamespace {
    let mut ns = PartialObjectMeta::<Namespace>::default();
    ns.metadata.name = Some(name.into());
    ns.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    ns.into()
}

fn subscription(name: &str, tenant: &str) -> CachedNamespace {
    namespace(name, &[(keys::TENANT_ID, tenant)])
}

fn resource_group(name: &str, parent: &str) -> CachedNamespace {
    namespace(name, &[(keys::SUBSCRIPTION, parent)])
}

fn at(seconds: i64) -> Option<Time> {
    Some(Time(jiff::Timestamp::from_second(seconds).expect("timestamp")))
}

fn assignment(namespace: &str, name: &str, definition: &str, generation: i64) -> RegistrationAssignment {
    RegistrationAssignment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            generation: Some(generation),
            creation_timestamp: at(1),
            ..Default::default()
        },
        spec: RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: definition.into() } },
        status: None,
    }
}

fn definition(namespace: &str, name: &str, generation: i64) -> RegistrationDefinition {
    let spec = serde_json::from_value(serde_json::json!({
        "registrationDefinitionName": name,
        "managedByTenantId": "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6",
        "authorizations": [],
    }))
    .expect("spec");
    let mut d = RegistrationDefinition::new(name, spec);
    d.metadata.namespace = Some(namespace.into());
    d.metadata.generation = Some(generation);
    d.metadata.creation_timestamp = at(1);
    d
}

/// A customer with subscription `sub`, resource group `rg`, definition `offer` in `sub`, and
/// assignments of it in both.
fn customer(h: &mut Harness) {
    h.cluster.namespace(subscription("sub", CUSTOMER));
    h.cluster.namespace(resource_group("rg", "sub"));
    h.cluster.definition(definition("sub", "offer", 1));
    h.cluster.assignment(assignment("sub", "a", "offer", 1));
    h.cluster.assignment(assignment("rg", "b", "offer", 1));
}

#[test]
fn an_assignment_triggers_itself_on_spec_deletion_or_finalizer_and_its_subscription_on_state() {
    let mut h = Harness::new();
    customer(&mut h);
    let mut triggers = AssignmentTriggers::new(h.caches.clone(), h.sinks.clone());
    let a = assignment("rg", "b", "offer", 1);

    triggers.follow(Change::Listed(&a));
    assert_eq!(h.triggered_assignments(), ["rg/b"], "a list re-checks everything");
    assert_eq!(h.triggered_namespaces(), ["sub"], "the subscription of a resource group re-computes its tenants");
    triggers.follow(Change::Listed(&a));
    assert_eq!(h.triggered_assignments(), ["rg/b"], "a relist too, even unchanged");
    assert_eq!(h.triggered_namespaces(), ["sub"]);

    triggers.follow(Change::Applied(&a));
    assert!(h.nothing_triggered(), "an update that changes nothing relevant");

    let mut granted = a.clone();
    granted.status = Some(crate::api::RegistrationAssignmentStatus {
        provisioning_state: Some(crate::api::ProvisioningState::Succeeded),
        managed_by_tenant_id: Some("t".into()),
        ..Default::default()
    });
    triggers.follow(Change::Applied(&granted));
    assert!(h.triggered_assignments().is_empty(), "our own status write does not re-run the reconcile");
    assert_eq!(h.triggered_namespaces(), ["sub"], "but the tenants in force changed");

    let mut finalized = granted.clone();
    finalized.metadata.finalizers = Some(vec![keys::ASSIGNMENT_FINALIZER.into()]);
    triggers.follow(Change::Applied(&finalized));
    assert_eq!(h.triggered_assignments(), ["rg/b"], "the finalizer was added");

    let mut edited = finalized.clone();
    edited.metadata.generation = Some(2);
    triggers.follow(Change::Applied(&edited));
    assert_eq!(h.triggered_assignments(), ["rg/b"], "a new spec");

    triggers.follow(Change::Deleted(&edited));
    assert_eq!(h.triggered_assignments(), ["rg/b"]);
    assert_eq!(h.triggered_namespaces(), ["sub"]);
    triggers.follow(Change::Applied(&edited));
    assert_eq!(h.triggered_assignments(), ["rg/b"], "a deleted one is forgotten: re-created, it is new");
}

#[test]
fn a_definition_triggers_its_assignments_only_when_what_they_read_changed() {
    let mut h = Harness::new();
    customer(&mut h);
    h.cluster.definition(definition("sub", "neighbour", 1));
    let mut triggers = DefinitionTriggers::new(h.caches.clone(), h.sinks.clone());
    let offer = definition("sub", "offer", 1);

    triggers.follow(Change::Listed(&offer));
    assert_eq!(h.triggered_definitions(), ["sub/offer"]);
    assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a"], "its assignments, in the subscription and its groups");

    let mut finalized = offer.clone();
    finalized.metadata.finalizers = Some(vec![keys::DEFINITION_FINALIZER.into()]);
    triggers.follow(Change::Applied(&finalized));
    assert_eq!(h.triggered_definitions(), ["sub/offer"], "its finalizer concerns itself");
    assert!(h.triggered_assignments().is_empty(), "not its assignments");

    let mut status_only = finalized.clone();
    status_only.status = Some(Default::default());
    triggers.follow(Change::Applied(&status_only));
    assert!(h.nothing_triggered(), "a status without a new accepted generation");

    let mut accepted = status_only.clone();
    accepted.status =
        Some(crate::api::RegistrationDefinitionStatus { accepted_generation: Some(1), ..Default::default() });
    triggers.follow(Change::Applied(&accepted));
    assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a"], "accepted: catalog changes now narrow instead of reject");
    h.triggered_definitions();

    let mut deleting = accepted.clone();
    deleting.metadata.deletion_timestamp = at(9);
    triggers.follow(Change::Applied(&deleting));
    assert_eq!(
        h.triggered_definitions(),
        ["sub/neighbour", "sub/offer"],
        "one going may admit another under the limit per subscription"
    );
    assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a"]);
}

#[test]
fn the_first_namespace_list_moves_nothing_but_keeps_subscription_annotations() {
    let mut h = Harness::new();
    customer(&mut h);
    let mut triggers = NamespaceTriggers::new(h.caches.clone(), h.sinks.clone());
    triggers.follow(Change::Listed(&subscription("sub", CUSTOMER)));
    triggers.follow(Change::Listed(&resource_group("rg", "sub")));
    triggers.follow(Change::Listed(&namespace("plain", &[])));
    triggers.follow(Change::ListDone);
    assert!(h.triggered_assignments().is_empty(), "every delegation is being listed anyway");
    assert_eq!(h.triggered_namespaces(), ["sub"], "only a subscription has an annotation to keep");

    triggers.follow(Change::Applied(&subscription("sub", CUSTOMER)));
    assert!(h.triggered_assignments().is_empty(), "same labels: nothing moved");
    assert_eq!(h.triggered_namespaces(), ["sub"]);
}

#[test]
fn a_subscription_that_changes_tenant_re_runs_everything_read_from_it() {
    let mut h = Harness::new();
    customer(&mut h);
    let mut triggers = NamespaceTriggers::new(h.caches.clone(), h.sinks.clone());
    triggers.follow(Change::Listed(&subscription("sub", CUSTOMER)));
    triggers.follow(Change::ListDone);
    h.nothing_triggered();

    let moved = subscription("sub", OTHER);
    h.cluster.namespace(moved.clone());
    triggers.follow(Change::Applied(&moved));
    assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a"], "in it and in its resource groups");
    assert_eq!(h.triggered_definitions(), ["sub/offer"], "a transfer concerns its definitions");
    assert_eq!(h.triggered_namespaces(), ["sub"]);
}

#[test]
fn a_resource_group_that_moves_leaves_its_old_subscription_too() {
    let mut h = Harness::new();
    customer(&mut h);
    h.cluster.namespace(subscription("sub2", CUSTOMER));
    h.cluster.assignment(assignment("sub2", "c", "offer2", 1));
    let mut triggers = NamespaceTriggers::new(h.caches.clone(), h.sinks.clone());
    triggers.follow(Change::Listed(&resource_group("rg", "sub")));
    triggers.follow(Change::ListDone);
    h.nothing_triggered();

    let moved = resource_group("rg", "sub2");
    h.cluster.namespace(moved.clone());
    triggers.follow(Change::Applied(&moved));
    assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a", "sub2/c"], "the old and the new subscription's");
    assert_eq!(h.triggered_namespaces(), ["sub", "sub2"], "both re-compute managed-by-tenants");
}

#[test]
fn a_relist_that_misses_a_namespace_treats_it_as_deleted() {
    let mut h = Harness::new();
    customer(&mut h);
    let mut triggers = NamespaceTriggers::new(h.caches.clone(), h.sinks.clone());
    triggers.follow(Change::Listed(&subscription("sub", CUSTOMER)));
    triggers.follow(Change::Listed(&resource_group("rg", "sub")));
    triggers.follow(Change::ListDone);
    h.nothing_triggered();

    // The watch was down while rg was deleted: the relist simply does not show it.
    triggers.follow(Change::Listed(&subscription("sub", CUSTOMER)));
    assert!(h.triggered_assignments().is_empty(), "sub itself is unchanged");
    triggers.follow(Change::ListDone);
    assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a"], "what rg decided is re-read");
    assert!(h.triggered_namespaces().contains(&"sub".to_string()));
}

#[test]
fn a_deleted_namespace_re_runs_what_it_decided() {
    let mut h = Harness::new();
    customer(&mut h);
    let mut triggers = NamespaceTriggers::new(h.caches.clone(), h.sinks.clone());
    triggers.follow(Change::Listed(&resource_group("rg", "sub")));
    triggers.follow(Change::ListDone);
    triggers.follow(Change::Deleted(&resource_group("rg", "sub")));
    assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a"]);
    assert_eq!(h.triggered_namespaces(), ["sub"]);
}

#[test]
fn a_catalog_change_re_judges_every_delegation_but_its_first_list_does_not() {
    let mut h = Harness::new();
    customer(&mut h);
    let mut triggers = CatalogTriggers::new(h.caches.clone(), h.sinks.clone());
    let reader = |verbs: &[&str]| {
        let rule = PolicyRule { verbs: verbs.iter().map(|v| v.to_string()).collect(), ..Default::default() };
        catalog_cluster_role("kubelighthouse:reader", Some(READER), Some("Reader"), vec![rule])
    };
    let event = |e: watcher::Event<ClusterRole>| e;
    let listed = reader(&["get"]);
    for e in [watcher::Event::Init, watcher::Event::InitApply(listed.clone()), watcher::Event::InitDone] {
        h.caches.catalog.observe(&event(e.clone()));
        match &e {
            watcher::Event::InitApply(r) => triggers.follow(Change::Listed(r)),
            watcher::Event::InitDone => triggers.follow(Change::ListDone),
            _ => {}
        }
    }
    assert!(h.nothing_triggered(), "the first list: every delegation is being listed anyway");

    let same = reader(&["get"]);
    h.caches.catalog.observe(&watcher::Event::Apply(same.clone()));
    triggers.follow(Change::Applied(&same));
    assert!(h.nothing_triggered(), "an unchanged member is no change");

    let widened = reader(&["get", "list"]);
    h.caches.catalog.observe(&watcher::Event::Apply(widened.clone()));
    triggers.follow(Change::Applied(&widened));
    assert_eq!(h.triggered_definitions(), ["sub/offer"]);
    assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a"]);
}

#[test]
fn a_guardrail_change_re_judges_every_delegation_but_its_first_list_does_not() {
    let mut h = Harness::new();
    customer(&mut h);
    let mut triggers = GuardrailTriggers::new(h.caches.clone(), h.sinks.clone());
    let guardrail = Guardrail::new("tenants", crate::api::GuardrailSpec::default());
    triggers.follow(Change::Listed(&guardrail));
    triggers.follow(Change::ListDone);
    assert!(h.nothing_triggered(), "the first list: every delegation is being listed anyway");

    let mut labelled = guardrail.clone();
    labelled.metadata.labels = Some(BTreeMap::from([("team".to_string(), "platform".to_string())]));
    triggers.follow(Change::Applied(&labelled));
    assert!(h.nothing_triggered(), "only the spec decides");

    let stricter = Guardrail::new(
        "tenants",
        crate::api::GuardrailSpec { allowed_managing_tenant_ids: Some(vec![OTHER.into()]), ..Default::default() },
    );
    for change in [Change::Applied(&stricter), Change::Deleted(&stricter)] {
        triggers.follow(change);
        assert_eq!(h.triggered_definitions(), ["sub/offer"]);
        assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a"]);
    }
    // A relist finds what changed while the watch was down (it came back), and only that.
    triggers.follow(Change::Listed(&stricter));
    assert!(h.nothing_triggered());
    triggers.follow(Change::ListDone);
    assert_eq!(h.triggered_definitions(), ["sub/offer"]);
    assert_eq!(h.triggered_assignments(), ["rg/b", "sub/a"]);
    triggers.follow(Change::Listed(&stricter));
    triggers.follow(Change::ListDone);
    assert!(h.nothing_triggered(), "a relist that finds nothing changed");
}

#[test]
fn a_subscriptions_new_label_re_judges_its_definitions_for_the_guardrails() {
    let mut h = Harness::new();
    customer(&mut h);
    let mut triggers = NamespaceTriggers::new(h.caches.clone(), h.sinks.clone());
    triggers.follow(Change::Applied(&namespace("sub", &[(keys::TENANT_ID, CUSTOMER)])));
    // What the first sight of it triggered does not matter here: drain it.
    let _ = (h.triggered_definitions(), h.triggered_assignments(), h.triggered_namespaces());
    triggers.follow(Change::Applied(&namespace("sub", &[(keys::TENANT_ID, CUSTOMER), ("env", "prod")])));
    assert_eq!(h.triggered_definitions(), ["sub/offer"], "a guardrail's selector may now match it");
}

fn record(resource_version: &str, owner: Option<&str>) -> Record {
    let mut labels = BTreeMap::from([(keys::MANAGED_BY.to_string(), keys::MANAGER.to_string())]);
    let mut annotations = BTreeMap::new();
    if let Some(owner) = owner {
        labels.insert(keys::ASSIGNMENT_UID.to_string(), "uid-1".to_string());
        annotations.insert(keys::ASSIGNMENT.to_string(), owner.to_string());
    }
    Record::from_role(&Role {
        metadata: ObjectMeta {
            name: Some("r".into()),
            namespace: Some("rg".into()),
            resource_version: Some(resource_version.into()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        rules: None,
    })
}

#[test]
fn our_own_write_triggers_no_reconcile_and_anyone_else_s_edit_does() {
    let mut h = Harness::new();
    let expectations = Arc::new(Expectations::default());
    let mut triggers = MaterializedTriggers::new("Role", Candidate::Role, expectations.clone(), h.sinks.clone());

    let listed = record("1", Some("rg/b"));
    triggers.follow(Change::Listed(&listed));
    triggers.follow(Change::ListDone);
    assert!(h.triggered_assignments().is_empty(), "the first list: the owner is being listed itself");
    assert_eq!(drain(&mut h.sweep_rx).len(), 1, "but the sweep checks it has an owner");

    // The controller wrote version 2; the watch then delivers it.
    let cache = crate::controller::materialized::MaterializedCache::default();
    let written = record("2", Some("rg/b"));
    expectations.wrote("Role", &cache, "rg", "r", Some("1".into()), Some("2".into()), written.digest);
    triggers.follow(Change::Applied(&written));
    assert!(h.triggered_assignments().is_empty(), "our own write is not drift");
    assert_eq!(drain(&mut h.sweep_rx).len(), 1);

    let edited = record("3", Some("rg/b"));
    triggers.follow(Change::Applied(&edited));
    assert_eq!(h.triggered_assignments(), ["rg/b"], "someone else's edit: the owner reverts it");

    triggers.follow(Change::Listed(&edited));
    assert_eq!(h.triggered_assignments(), ["rg/b"], "a relist after the first re-checks the owner");

    triggers.follow(Change::Deleted(&edited));
    assert_eq!(h.triggered_assignments(), ["rg/b"], "a deletion: the owner puts it back");
    assert_eq!(drain(&mut h.sweep_rx).len(), 3, "the edit, the relist and the deletion");

    let ownerless = record("4", None);
    triggers.follow(Change::Applied(&ownerless));
    assert!(h.triggered_assignments().is_empty(), "no owner to trigger");
    assert_eq!(drain(&mut h.sweep_rx).len(), 1, "the sweep deletes it");
}

// --- activations (SPEC §9) ---------------------------------------------------------------------

fn activation(namespace: &str, name: &str, phase: Option<crate::api::ActivationPhase>) -> RoleActivation {
    let mut a: RoleActivation = serde_json::from_value(serde_json::json!({
        "apiVersion": "activation.kubelighthouse.io/v1alpha1",
        "kind": "RoleActivation",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {"registrationAssignmentRef": {"name": "contoso"}, "roleDefinitionId": "x", "duration": "PT1H",
                 "justification": "why"},
    }))
    .expect("activation");
    a.status = phase.map(|p| crate::api::RoleActivationStatus { phase: Some(p), ..Default::default() });
    a
}

fn triggered_activations(h: &mut Harness) -> Vec<String> {
    names(drain(&mut h.activation_rx))
}

#[test]
fn an_activation_triggers_itself_and_the_assignment_that_builds_its_access() {
    use crate::api::ActivationPhase::{Active, Expired, Pending};
    let mut h = Harness::new();
    customer(&mut h);
    h.cluster.assignment(assignment("sub", "contoso", "offer", 1));
    h.triggered_assignments();
    let mut t = ActivationTriggers::new(h.caches.clone(), h.sinks.clone());
    // In a resource group: its assignment is the subscription's.
    let pending = activation("rg", "fix", Some(Pending));
    t.follow(Change::Listed(&pending));
    assert_eq!(triggered_activations(&mut h), ["rg/fix"]);
    assert_eq!(h.triggered_assignments(), ["sub/contoso"]);
    // A write that moves nothing the reconciles read (a review record, a condition): nothing.
    let mut same = pending.clone();
    same.status.as_mut().expect("status").reviews = vec![];
    same.status.as_mut().expect("status").ended_by = Some("x".into());
    t.follow(Change::Applied(&same));
    assert!(triggered_activations(&mut h).is_empty());
    assert!(h.nothing_triggered());
    // Active, then Expired: the assignment builds, then prunes.
    for phase in [Active, Expired] {
        t.follow(Change::Applied(&activation("rg", "fix", Some(phase))));
        assert_eq!(triggered_activations(&mut h), ["rg/fix"], "{phase:?}");
        assert_eq!(h.triggered_assignments(), ["sub/contoso"], "{phase:?}");
    }
    t.follow(Change::Deleted(&activation("rg", "fix", Some(Expired))));
    assert_eq!(h.triggered_assignments(), ["sub/contoso"]);
    // An activation naming no assignment here triggers only itself.
    t.follow(Change::Applied(&activation("elsewhere", "lost", None)));
    assert_eq!(triggered_activations(&mut h), ["elsewhere/lost"]);
    assert!(h.triggered_assignments().is_empty());
}

#[test]
fn a_review_triggers_the_activation_it_reviews() {
    let mut h = Harness::new();
    let mut t = ReviewTriggers::new(h.sinks.clone());
    let review: ActivationReview = serde_json::from_value(serde_json::json!({
        "apiVersion": "activation.kubelighthouse.io/v1alpha1",
        "kind": "ActivationReview",
        "metadata": {"name": "approve", "namespace": "customer-a-web"},
        "spec": {"roleActivationRef": {"name": "fix"}, "decision": "Approve", "reason": "ok"},
    }))
    .expect("review");
    t.follow(Change::Applied(&review));
    assert_eq!(triggered_activations(&mut h), ["customer-a-web/fix"]);
    t.follow(Change::ListDone);
    assert!(triggered_activations(&mut h).is_empty());
}

/// Onboarding selects subscriptions by any label: every event of a subscription (or of a
/// namespace that just stopped being one) goes to the onboarding reconcile, a plain namespace's
/// or a deleted one's does not; an onboarding's change goes to its own reconcile.
#[test]
fn onboarding_follows_subscriptions_and_onboardings() {
    let mut h = Harness::new();
    let (onboard, mut onboard_rx) = mpsc::unbounded();
    let (onboardings, mut onboardings_rx) = mpsc::unbounded();
    h.sinks.onboard = onboard;
    h.sinks.onboardings = onboardings;
    let mut triggers = NamespaceTriggers::new(h.caches.clone(), h.sinks.clone());
    triggers.follow(Change::Listed(&subscription("sub", CUSTOMER)));
    triggers.follow(Change::Listed(&namespace("plain", &[])));
    triggers.follow(Change::ListDone);
    assert_eq!(names(drain(&mut onboard_rx)), ["sub"]);
    triggers.follow(Change::Applied(&namespace("sub", &[(keys::TENANT_ID, CUSTOMER), ("env", "prod")])));
    assert_eq!(names(drain(&mut onboard_rx)), ["sub"], "a new label may match a selector");
    triggers.follow(Change::Applied(&namespace("sub", &[("env", "prod")])));
    assert_eq!(names(drain(&mut onboard_rx)), ["sub"], "no longer a subscription: what was onboarded goes");
    triggers.follow(Change::Applied(&namespace("plain", &[("env", "prod")])));
    triggers.follow(Change::Deleted(&subscription("gone", CUSTOMER)));
    assert!(drain(&mut onboard_rx).is_empty(), "a plain namespace, or one deleted with its objects");

    let mut follow = OnboardingTriggers::new(h.sinks.clone());
    let o: crate::api::Onboarding = serde_json::from_value(serde_json::json!({
        "apiVersion": "policy.kubelighthouse.io/v1alpha1", "kind": "Onboarding", "metadata": {"name": "contoso"},
        "spec": {"namespaceSelector": {}, "definition": {"registrationDefinitionName": "x",
            "managedByTenantId": CUSTOMER, "authorizations": []}}}))
    .expect("onboarding");
    follow.follow(Change::Listed(&o));
    follow.follow(Change::Applied(&o));
    follow.follow(Change::Deleted(&o));
    assert_eq!(drain(&mut onboardings_rx).len(), 2, "listed and applied; a deleted one is gone from the store");
}

/// The cache keeps every label of a subscription (what selectors match) and none of another.
#[test]
fn the_namespace_cache_keeps_the_labels_of_subscriptions_only() {
    let sub = namespace("sub", &[(keys::TENANT_ID, CUSTOMER), ("env", "prod")]);
    assert_eq!(sub.label_map().get("env").map(String::as_str), Some("prod"));
    assert_eq!(sub.label_map().len(), 2);
    let rg = namespace("rg", &[(keys::SUBSCRIPTION, "sub"), ("env", "prod")]);
    assert!(rg.labels.is_none() && rg.label_map().is_empty());
}
