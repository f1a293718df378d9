//! Removal never waits for creation (issue 26, item 3), on the real control plane: access
//! that is no longer delegated goes at once even when a write of the access that replaces it
//! fails, and the failure is reported (status and a Warning Event) until its obstacle is gone,
//! when the delegation converges. Two delegates cause the failure with their own rights:
//! - a Resource Policy Contributor sets a ResourceQuota of zero RoleBindings;
//! - a User Access Administrator creates, within its limit, a RoleBinding under the
//!   predictable name of the binding the controller is about to write (plain, or held by a
//!   finalizer so that its deletion alone would leave it in place).
//!
//! Access is proven with SubjectAccessReview and with the person's own token (see
//! `common::expect_access`). The controller runs alone (no webhook): this is the controller's
//! side, which must hold whatever admission lets through.

mod common;

use common::*;
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use kube_lighthouse::model::desired::{assignable_name, object_name, AssignmentRef};
use serde_json::json;

const PERSON: &str = "00000000-0000-0000-0000-0000000000d3";
const UAA: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
const RESOURCE_POLICY_CONTRIBUTOR: &str = "36243c78-bf99-498c-9df9-86d9f8d28608";
const COUNT_BINDINGS: &str = "count/rolebindings.rbac.authorization.k8s.io";

/// Waits until the assignment `sub/contoso` reports a failed write: Failed, Ready=False with
/// `reason`, the message containing each of `mentions`, `status.namespaces` = `in_force`
/// (where RBAC of the delegation really is in force); and a Warning Event with that reason.
async fn failure_reported(client: &Client, sub: &str, reason: &str, mentions: &[&str], in_force: &[&str]) {
    let status = poll(
        &format!("contoso in {sub} reports {reason}"),
        || assignment_status(client, sub, "contoso"),
        |s| {
            s.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Ready" && c.status == kube_lighthouse::api::ConditionStatus::False && c.reason == reason
                })
            })
        },
    )
    .await
    .expect("status");
    assert_eq!(status.provisioning_state.map(|p| p.as_str()), Some("Failed"), "{status:#?}");
    assert_eq!(status.namespaces, in_force, "where the delegation is in force: {status:#?}");
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    for mention in mentions {
        assert!(ready.message.contains(mention), "Ready names {mention}: {}", ready.message);
    }
    eventually(&format!("a Warning Event {reason} on contoso in {sub}"), || async {
        warning_events(client, sub, "contoso").await.iter().any(|(r, note)| r == reason && note.contains(mentions[0]))
    })
    .await;
}

/// The person's Contributor access is gone and the Reader access it was downgraded to is not
/// (yet) in force.
async fn contributor_gone_reader_withheld(client: &Client, person: &str, sub: &str) {
    expect_access(client, person, &[], access("create", "deployments.apps", sub), false).await;
    expect_access(client, person, &[], access("list", "pods", sub), false).await;
}

/// The downgrade has converged: Reader in force, Contributor not, status Succeeded.
async fn converged_to_reader(client: &Client, person: &str, sub: &str) {
    expect_access(client, person, &[], access("list", "pods", sub), true).await;
    expect_access(client, person, &[], access("create", "deployments.apps", sub), false).await;
    let status = wait_for_assignment_state(client, sub, "contoso", "Succeeded").await;
    assert_eq!(status.namespaces, vec![sub.to_string()]);
}

/// Input 1: a Resource Policy Contributor (a delegate) sets a ResourceQuota of zero
/// RoleBindings in the delegated namespace; then the customer downgrades the delegation from
/// Contributor to Reader. The Contributor access goes at once, though the Reader binding
/// cannot be created; status and an Event say why; without the quota Reader comes.
#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_quota_on_rolebindings_holds_back_no_downgrade() {
    let client = cluster().await;
    let sub = unique("quota");
    subscription(&client, &sub, &tenant_id()).await;
    let person = projected(MSP_TENANT, PERSON);
    let contributor =
        vec![authorization(PERSON, "User", CONTRIBUTOR), authorization(PERSON, "User", RESOURCE_POLICY_CONTRIBUTOR)];
    definition(&client, &sub, "contoso", MSP_TENANT, contributor).await;
    assignment(&client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;
    expect_access(&client, &person, &[], access("create", "deployments.apps", &sub), true).await;
    expect_access(&client, &person, &[], access("create", "resourcequotas", &sub), true).await;

    // The delegate sets the quota with its own rights.
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "no-bindings", "namespace": sub},
        "spec": {"hard": {COUNT_BINDINGS: "0"}}});
    let as_person: Api<ResourceQuota> = Api::namespaced(client_as(&person, &[]).await, &sub);
    as_person
        .create(&PostParams::default(), &serde_json::from_value(quota).expect("quota"))
        .await
        .expect("a Resource Policy Contributor sets a quota");
    // The local control plane runs no quota controller: record the usage it would.
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &sub);
    let usage = json!({"status": {"hard": {COUNT_BINDINGS: "0"}, "used": {COUNT_BINDINGS: "0"}}});
    quotas.patch_status("no-bindings", &PatchParams::default(), &Patch::Merge(usage)).await.expect("quota status");

    // The downgrade, with the quota in place.
    let reader = vec![authorization(PERSON, "User", READER)];
    definition(&client, &sub, "contoso", MSP_TENANT, reader).await;
    contributor_gone_reader_withheld(&client, &person, &sub).await;
    // Nothing of the delegation is in force any more.
    failure_reported(&client, &sub, "ApplyFailed", &["RoleBinding", "exceeded quota"], &[]).await;

    // The obstacle goes: the Reader access comes, status says Succeeded.
    delete(&quotas, "no-bindings").await;
    converged_to_reader(&client, &person, &sub).await;
}

fn binding(namespace: &str, name: &str, role: &str, finalizer: Option<&str>) -> RoleBinding {
    serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "finalizers": finalizer.into_iter().collect::<Vec<_>>()},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }))
    .expect("binding")
}

/// Input 2: a User Access Administrator creates, within its limit (its assignable Reader
/// Role, bound to a ServiceAccount of the namespace), a RoleBinding under the name of the
/// Reader binding the controller will write when the customer downgrades its Contributor.
/// The Contributor access goes at once all the same, and the squatter is replaced by ours:
/// deleted, its finalizer (which the controller never sets, so someone else's) taken off,
/// never adopted.
async fn a_squatted_name_holds_back_no_downgrade(client: &Client, held: bool) {
    let sub = unique(if held { "squat-held" } else { "squat" });
    subscription(client, &sub, &tenant_id()).await;
    let person = projected(MSP_TENANT, PERSON);
    let uaa = json!({"principalId": PERSON, "principalType": "User", "roleDefinitionId": UAA,
        "delegatedRoleDefinitionIds": [READER]});
    definition(client, &sub, "contoso", MSP_TENANT, vec![uaa.clone(), authorization(PERSON, "User", CONTRIBUTOR)])
        .await;
    assignment(client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(client, &sub, "contoso", "Succeeded").await;
    expect_access(client, &person, &[], access("create", "deployments.apps", &sub), true).await;

    // The predictable name of the Reader binding, squatted with the delegate's own rights.
    let assignment_ref = AssignmentRef { namespace: sub.clone(), name: "contoso".into(), uid: String::new() };
    let ours = object_name(&assignment_ref, "kubelighthouse:reader");
    let assignable = assignable_name(&assignment_ref, "kubelighthouse:reader");
    let finalizer = held.then_some("delegate.example/hold");
    let as_person: Api<RoleBinding> = Api::namespaced(client_as(&person, &[]).await, &sub);
    eventually("the User Access Administrator squats the Reader binding's name", || {
        let squat = binding(&sub, &ours, &assignable, finalizer);
        let api = as_person.clone();
        async move { api.create(&PostParams::default(), &squat).await.is_ok() }
    })
    .await;

    // The downgrade.
    definition(client, &sub, "contoso", MSP_TENANT, vec![uaa, authorization(PERSON, "User", READER)]).await;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &sub);
    expect_access(client, &person, &[], access("create", "deployments.apps", &sub), false).await;
    converged_to_reader(client, &person, &sub).await;
    // The name now holds ours, never the squatter's roleRef or subjects.
    let held_by = bindings.get(&ours).await.expect("our binding");
    assert_eq!(held_by.role_ref.name, ours, "our Reader Role, not the assignable one");
    assert!(
        held_by.subjects.iter().flatten().all(|s| s.kind != "ServiceAccount"),
        "the squatter's subjects are gone: {:?}",
        held_by.subjects
    );
    assert!(held_by.metadata.finalizers.iter().flatten().next().is_none(), "no foreign finalizer adopted");
    let identity = format!("system:serviceaccount:{sub}:default");
    expect_access(client, &identity, &[], access("list", "pods", &sub), false).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_binding_squatted_under_our_name_holds_back_no_downgrade() {
    let client = cluster().await;
    for held in [false, true] {
        a_squatted_name_holds_back_no_downgrade(&client, held).await;
    }
}

/// Another instance of the kind: a finalizer someone else put on a binding of ours (the
/// controller never sets one) would keep the binding, and its access, after the prune
/// deleted it. The downgrade still ends the Contributor access at once.
#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_finalizer_on_our_binding_holds_back_no_prune() {
    let client = cluster().await;
    let sub = unique("held");
    subscription(&client, &sub, &tenant_id()).await;
    let person = projected(MSP_TENANT, PERSON);
    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(PERSON, "User", CONTRIBUTOR)]).await;
    assignment(&client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;
    expect_access(&client, &person, &[], access("create", "deployments.apps", &sub), true).await;

    let assignment_ref = AssignmentRef { namespace: sub.clone(), name: "contoso".into(), uid: String::new() };
    let contributor = object_name(&assignment_ref, "kubelighthouse:contributor");
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &sub);
    let hold = Patch::Merge(json!({"metadata": {"finalizers": ["someone.example/hold"]}}));
    bindings.patch(&contributor, &PatchParams::default(), &hold).await.expect("a finalizer on our binding");

    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(PERSON, "User", READER)]).await;
    converged_to_reader(&client, &person, &sub).await;
    eventually("the Contributor binding is gone, finalizer or not", || async {
        bindings.get_opt(&contributor).await.expect("get").is_none()
    })
    .await;
}
