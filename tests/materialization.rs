//! What a catalog role turns into, on the real control plane, with the managing tenants' own
//! tokens (issue 26, items 1, 8, 9 and 13):
//! - an activated Delete role deletes its own assignment, never another tenant's in the same
//!   namespace (with the webhook: activations need its stamp);
//! - a second ClusterRole claiming Reader's GUID and display name takes over nothing: the
//!   delegate still reads only, and new delegations naming Reader are refused, naming both;
//! - a ClusterRole with write verbs aggregated into `view` (and so into Reader) makes no
//!   Reader delegate a writer;
//! - a ClusterRole reading activations aggregated into `view` shows no Reader delegate any
//!   managing tenant's activations (item 14: activations are reached per object);
//! - Contributor writes no Endpoints and no status, and still does not when its ClusterRole
//!   regains those writes.
//!
//! The scenarios change cluster-wide ClusterRoles, so they run one after the other in a single
//! test, each undoing its change; once with the controller alone, once with its webhook.

mod common;

use common::webhook::Deployed;
use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Service};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kl_token_issuer::TokenRequest;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use kube_lighthouse::api::{ActivationPhase, RegistrationAssignment, RegistrationDefinition, RoleActivation};
use serde_json::json;

const PERSON: &str = "00000000-0000-0000-0000-0000000000c8";
const ENGINEER: &str = "00000000-0000-0000-0000-00000000e101";
const READER_ROLE: &str = "kubelighthouse:reader";
const CONTRIBUTOR_ROLE: &str = "kubelighthouse:contributor";

/// A client signed in as `user` of the managing tenant, with its issuer's token.
async fn signed(user: &str) -> Client {
    let token = token(MSP_TENANT, &TokenRequest::new(user)).expect("the managing tenant's issuer");
    client_with_token(&token).await
}

/// Applies a RegistrationDefinition, returning the API server's answer (the webhook may refuse).
async fn try_definition(client: &Client, ns: &str, name: &str, spec: serde_json::Value) -> Result<(), kube::Error> {
    let api: Api<RegistrationDefinition> = Api::namespaced(client.clone(), ns);
    let body = json!({"apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationDefinition",
        "metadata": {"name": name, "namespace": ns}, "spec": spec});
    api.patch(name, &PatchParams::apply("kube-lighthouse-tests").force(), &Patch::Apply(body)).await.map(|_| ())
}

/// A subscription with a definition of MSP_TENANT granting `role` to PERSON, assigned and in force.
async fn delegated(client: &Client, prefix: &str, role: &str) -> String {
    let sub = unique(prefix);
    subscription(client, &sub, &tenant_id()).await;
    definition(client, &sub, "contoso", MSP_TENANT, vec![authorization(PERSON, "User", role)]).await;
    assignment(client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(client, &sub, "contoso", "Succeeded").await;
    sub
}

/// Waits until the assignment's `Degraded` condition is `status` with `needle` in its message.
async fn wait_degraded(client: &Client, sub: &str, status: &str, needle: &str) {
    eventually(&format!("{sub}/contoso Degraded={status} mentioning {needle:?}"), || async {
        assignment_status(client, sub, "contoso").await.is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Degraded"
                    && serde_json::to_value(c.status).ok() == Some(json!(status))
                    && (c.message.contains(needle) || c.reason.contains(needle))
            })
        })
    })
    .await;
}

/// A new delegation naming `role` is refused for `rule`: at apply with the webhook, in the
/// assignment's status without it. The refusal names every text of `names`.
async fn new_delegation_refused(client: &Client, role: &str, webhook: bool, rule: &str, names: &[&str]) {
    let sub = unique("refused");
    subscription(client, &sub, &tenant_id()).await;
    let spec = json!({"registrationDefinitionName": "new offer", "managedByTenantId": MSP_TENANT,
        "authorizations": [authorization(PERSON, "User", role)]});
    let applied = try_definition(client, &sub, "contoso", spec).await;
    let message = if webhook {
        match applied {
            Err(kube::Error::Api(s)) => s.message,
            other => panic!("the webhook admitted a new delegation of {role}: {other:?}"),
        }
    } else {
        applied.expect("without the webhook the definition is stored");
        assignment(client, &sub, "contoso", "contoso").await;
        let status = wait_for_assignment_state(client, &sub, "contoso", "Failed").await;
        status.conditions.iter().map(|c| format!("{} {}", c.reason, c.message)).collect::<Vec<_>>().join("; ")
    };
    assert!(message.contains(rule), "{rule} not in: {message}");
    for name in names {
        assert!(message.contains(name), "{name} not in: {message}");
    }
    expect_access(client, &projected(MSP_TENANT, PERSON), &[], access("list", "pods", &sub), false).await;
}

/// A real create of a ConfigMap with `client`'s own identity (server-side dry run: authorized
/// exactly as a real create): whether it was allowed.
async fn creates_configmap(client: &Client, ns: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": unique("cm")}})).expect("cm");
    match api.create(&PostParams { dry_run: true, ..Default::default() }, &cm).await {
        Ok(_) => true,
        Err(kube::Error::Api(s)) if s.code == 403 => false,
        Err(e) => panic!("create configmap in {ns}: {e}"),
    }
}

fn labelled_cluster_role(name: &str, labels: serde_json::Value, annotations: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "rules": [{"apiGroups": [""], "resources": ["configmaps", "pods"], "verbs": ["get", "list", "create", "update", "patch", "delete"]}]})
}

/// A request that must be refused by RBAC (403).
fn denied<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("{what}: expected 403, got {other:?}"),
    }
}

// --- item 1 -----------------------------------------------------------------------------------

/// U, eligible for the Delete role without approvers, activates it: it may delete its own
/// assignment, never another tenant's assignment `a2` in the same namespace.
async fn an_activated_delete_role_deletes_only_its_own_assignment(admin: &Client) {
    let sub = unique("jit-delete");
    subscription(admin, &sub, &tenant_id()).await;
    let spec = json!({"registrationDefinitionName": "Contoso", "managedByTenantId": MSP_TENANT,
        "authorizations": [authorization(ENGINEER, "User", READER)],
        "eligibleAuthorizations": [{"principalId": ENGINEER, "principalType": "User", "roleDefinitionId": DELETE_ROLE}]});
    try_definition(admin, &sub, "contoso", spec).await.expect("definition");
    assignment(admin, &sub, "contoso", "contoso").await;
    definition(admin, &sub, "fabrikam", OTHER_MSP_TENANT, vec![authorization(PERSON, "User", READER)]).await;
    assignment(admin, &sub, "a2", "fabrikam").await;
    wait_for_assignment_state(admin, &sub, "contoso", "Succeeded").await;
    wait_for_assignment_state(admin, &sub, "a2", "Succeeded").await;

    let engineer = signed(ENGINEER).await;
    let as_engineer: Api<RegistrationAssignment> = Api::namespaced(engineer.clone(), &sub);
    denied(as_engineer.delete("contoso", &DeleteParams::default()).await, "delete before activating");

    let activations: Api<RoleActivation> = Api::namespaced(engineer.clone(), &sub);
    let body: RoleActivation = serde_json::from_value(json!({
        "apiVersion": "activation.kubelighthouse.io/v1alpha1", "kind": "RoleActivation",
        "metadata": {"name": "offboard"},
        "spec": {"registrationAssignmentRef": {"name": "contoso"}, "roleDefinitionId": DELETE_ROLE,
                 "duration": "PT1H", "justification": "the contract ends"}}))
    .expect("activation");
    eventually("the engineer's activation is admitted", || async {
        activations.create(&PostParams::default(), &body).await.is_ok()
    })
    .await;
    let admin_activations: Api<RoleActivation> = Api::namespaced(admin.clone(), &sub);
    eventually("the activation is Active", || async {
        admin_activations.get_opt("offboard").await.expect("get").and_then(|a| a.status).and_then(|s| s.phase)
            == Some(ActivationPhase::Active)
    })
    .await;
    // Active: it deletes its own assignment (once RBAC shows the Role), never a2.
    let engineer_user = projected(MSP_TENANT, ENGINEER);
    let mut delete_own = access("delete", "registrationassignments.managedservices.kubelighthouse.io", &sub);
    delete_own.name = "contoso";
    expect_access(admin, &engineer_user, &[], delete_own, true).await;
    denied(as_engineer.delete("a2", &DeleteParams::default()).await, "delete another tenant's assignment");
    denied(
        as_engineer.delete_collection(&DeleteParams::default(), &Default::default()).await,
        "delete every assignment",
    );
    let admins: Api<RegistrationAssignment> = Api::namespaced(admin.clone(), &sub);
    assert!(admins.get_opt("a2").await.expect("get").is_some(), "tenant M2 lost its assignment");
    as_engineer.delete("contoso", &DeleteParams::default()).await.expect("its own assignment, with its own token");
    eventually("its own assignment is gone", || async { admins.get_opt("contoso").await.expect("get").is_none() })
        .await;
    wait_for_assignment_state(admin, &sub, "a2", "Succeeded").await;
}

// --- item 8 -----------------------------------------------------------------------------------

/// A ClusterRole created after the catalog claims Reader's GUID and display name, and writes.
async fn a_second_claimant_of_readers_guid_takes_over_nothing(admin: &Client, webhook: bool) {
    let sub = delegated(admin, "takeover", READER).await;
    let person = signed(PERSON).await;
    expect_list_pods(&person, &sub, 200, "the Reader delegate").await;
    assert!(!creates_configmap(&person, &sub).await, "Reader writes before any takeover");

    // Sorts before kubelighthouse:reader, so the order of names cannot save it.
    let claimant = unique("aaa-reader");
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let body = labelled_cluster_role(
        &claimant,
        json!({"kubelighthouse.io/built-in": "true"}),
        json!({"kubelighthouse.io/role-definition-id": READER, "kubelighthouse.io/role-display-name": "Reader"}),
    );
    apply_json(&roles, &claimant, body).await;

    wait_degraded(admin, &sub, "True", "AmbiguousRole").await;
    let status = assignment_status(admin, &sub, "contoso").await.expect("status");
    assert_eq!(status.provisioning_state.map(|p| p.as_str().to_string()).as_deref(), Some("Succeeded"));
    assert!(!creates_configmap(&person, &sub).await, "the newcomer's writes reached the Reader delegate");
    expect_list_pods(&person, &sub, 200, "the Reader delegate, after the takeover attempt").await;
    for id in [READER, "Reader"] {
        new_delegation_refused(admin, id, webhook, "AmbiguousRole", &[READER_ROLE, &claimant]).await;
    }

    delete(&roles, &claimant).await;
    wait_degraded(admin, &sub, "False", "").await;
}

// --- item 9 -----------------------------------------------------------------------------------

/// A ClusterRole with write verbs labelled `rbac.authorization.k8s.io/aggregate-to-view`:
/// kube-controller-manager aggregates it into `view` and Reader.
async fn writes_aggregated_into_view_make_no_reader_a_writer(admin: &Client, webhook: bool) {
    let sub = delegated(admin, "aggregated", READER).await;
    let person = signed(PERSON).await;
    expect_list_pods(&person, &sub, 200, "the Reader delegate").await;

    let name = unique("crd-operator-view");
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let body = labelled_cluster_role(&name, json!({"rbac.authorization.k8s.io/aggregate-to-view": "true"}), json!({}));
    apply_json(&roles, &name, body).await;
    let reader_writes = || async {
        let reader = roles.get(READER_ROLE).await.expect("Reader");
        reader.rules.unwrap_or_default().iter().any(|r| r.verbs.iter().any(|v| v == "create"))
    };
    eventually("kube-controller-manager aggregates the writes into Reader", &reader_writes).await;

    wait_degraded(admin, &sub, "True", "outside what the role is documented to grant").await;
    assert!(!creates_configmap(&person, &sub).await, "the aggregated writes reached the Reader delegate");
    expect_access(admin, &projected(MSP_TENANT, PERSON), &[], access("delete", "pods", &sub), false).await;
    expect_list_pods(&person, &sub, 200, "the Reader delegate, reads kept").await;
    new_delegation_refused(admin, READER, webhook, "RoleNotDelegable", &["create configmaps"]).await;

    delete(&roles, &name).await;
    eventually("Reader is read-only again", || async { !reader_writes().await }).await;
    wait_degraded(admin, &sub, "False", "").await;
}

/// A ClusterRole reading activations labelled `aggregate-to-view` (as a customer restoring the
/// old `view` would write it): Reader's delegates still list no activation of any managing
/// tenant, and new Reader delegations are refused while it is there.
async fn activations_aggregated_into_view_reach_no_reader(admin: &Client, webhook: bool) {
    let sub = delegated(admin, "act-view", READER).await;
    let person = signed(PERSON).await;
    expect_list_pods(&person, &sub, 200, "the Reader delegate").await;

    let name = unique("activations-view");
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let body = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["activation.kubelighthouse.io"], "resources": ["roleactivations", "activationreviews"],
            "verbs": ["get", "list", "watch"]}]});
    apply_json(&roles, &name, body).await;
    let reader_reads_activations = || async {
        let reader = roles.get(READER_ROLE).await.expect("Reader");
        reader.rules.unwrap_or_default().iter().any(|r| r.resources.iter().flatten().any(|x| x == "roleactivations"))
    };
    eventually("kube-controller-manager aggregates activation reads into Reader", &reader_reads_activations).await;

    wait_degraded(admin, &sub, "True", "just-in-time activations").await;
    let activations: Api<RoleActivation> = Api::namespaced(person.clone(), &sub);
    denied(activations.list(&Default::default()).await, "the Reader delegate lists activations");
    expect_list_pods(&person, &sub, 200, "the Reader delegate, reads kept").await;
    new_delegation_refused(admin, READER, webhook, "RoleNotDelegable", &["roleactivations"]).await;

    delete(&roles, &name).await;
    eventually("Reader reads no activations again", || async { !reader_reads_activations().await }).await;
    wait_degraded(admin, &sub, "False", "").await;
}

// --- item 13 ----------------------------------------------------------------------------------

async fn creates_endpoints(client: &Client, ns: &str) -> Result<(), kube::Error> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let endpoints: Endpoints = serde_json::from_value(json!({"metadata": {"name": unique("web")},
        "subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]}))
    .expect("endpoints");
    api.create(&PostParams { dry_run: true, ..Default::default() }, &endpoints).await.map(|_| ())
}

/// Contributor manages Services but writes no Endpoints (CVE-2021-25740), even after its
/// ClusterRole regains the write.
async fn contributor_writes_no_endpoints(admin: &Client, webhook: bool) {
    let sub = delegated(admin, "endpoints", CONTRIBUTOR).await;
    let person = signed(PERSON).await;
    let services: Api<Service> = Api::namespaced(person.clone(), &sub);
    let service: Service =
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})).expect("svc");
    eventually("the Contributor delegate creates a Service", || async {
        services.create(&PostParams { dry_run: true, ..Default::default() }, &service).await.is_ok()
    })
    .await;
    denied(creates_endpoints(&person, &sub).await, "Contributor creates Endpoints");

    // The ClusterRole regains the write, as an older chart or a hand edit would have it.
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let original = roles.get(CONTRIBUTOR_ROLE).await.expect("Contributor");
    let mut regained = original.clone();
    // With the status writes Kubernetes' `edit` never had: a load balancer's address claimed
    // through an Ingress's status (CVE-2020-8554), a pod's health misreported.
    for rule in [
        json!({"apiGroups": [""], "resources": ["endpoints"], "verbs": ["create", "update", "patch", "delete"]}),
        json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update", "patch"]}),
        json!({"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update", "patch"]}),
    ] {
        regained.rules.get_or_insert_with(Vec::new).push(serde_json::from_value(rule).expect("rule"));
    }
    roles.replace(CONTRIBUTOR_ROLE, &PostParams::default(), &regained).await.expect("Contributor regains endpoints");
    wait_degraded(admin, &sub, "True", "CVE-2021-25740").await;
    denied(creates_endpoints(&person, &sub).await, "Contributor creates Endpoints after its role regained them");
    let delegate = projected(MSP_TENANT, PERSON);
    for status in ["ingresses.networking.k8s.io/status", "pods/status"] {
        expect_access(admin, &delegate, &[], access("patch", status, &sub), false).await;
    }
    new_delegation_refused(admin, CONTRIBUTOR, webhook, "RoleNotDelegable", &["create endpoints", "CVE-2021-25740"])
        .await;

    let mut restored = roles.get(CONTRIBUTOR_ROLE).await.expect("Contributor");
    restored.rules = original.rules;
    roles.replace(CONTRIBUTOR_ROLE, &PostParams::default(), &restored).await.expect("restore Contributor");
    wait_degraded(admin, &sub, "False", "").await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_catalog_role_grants_what_it_is_documented_to_grant() {
    let path = kubeconfig();
    let admin = client_for(&path).await;
    assert!(!issuers().is_empty(), "the managing tenants' issuers are needed: hack/control-plane.sh up");
    for webhook in [false, true] {
        eprintln!("== webhook: {webhook}");
        let _deployed = Deployed::start(&path, webhook);
        if webhook {
            an_activated_delete_role_deletes_only_its_own_assignment(&admin).await;
        }
        a_second_claimant_of_readers_guid_takes_over_nothing(&admin, webhook).await;
        writes_aggregated_into_view_make_no_reader_a_writer(&admin, webhook).await;
        activations_aggregated_into_view_reach_no_reader(&admin, webhook).await;
        contributor_writes_no_endpoints(&admin, webhook).await;
    }
}
