//! Removal never waits for creation (issue 26, item 3), on the real control plane: access
//! that is no longer delegated goes at once even when a write of the access that replaces it
//! fails, and the failure is reported (status and a Warning Event) until its obstacle is gone,
//! when the delegation converges. Two delegates cause the failure with their own rights:
//! - a Resource Policy Contributor sets a ResourceQuota of zero RoleBindings;
//! - someone other than the controller creates a RoleBinding under the predictable name of
//!   the binding the controller is about to write (plain, or held by a finalizer so that its
//!   deletion alone would leave it in place). Without the webhook that is anyone who may
//!   create RoleBindings there (a User Access Administrator is then never in force); with it,
//!   a User Access Administrator's attempt within its limit is refused at admission.
//!
//! Access is proven with SubjectAccessReview and with the person's own token (see
//! `common::expect_access`). The real binary runs first without its webhook (the
//! controller's side, which must hold whatever admission lets through), then with it.

mod common;

use common::webhook::Deployed;
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
async fn a_quota_on_rolebindings_holds_back_no_downgrade(client: &Client) {
    let client = client.clone();
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

fn binding(namespace: &str, name: &str, role_ref: serde_json::Value, finalizer: Option<&str>) -> RoleBinding {
    serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "finalizers": finalizer.into_iter().collect::<Vec<_>>()},
        "roleRef": role_ref,
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }))
    .expect("binding")
}

/// The name of the Reader binding the controller writes for `sub/contoso`.
fn reader_binding_name(sub: &str) -> String {
    let assignment_ref = AssignmentRef { namespace: sub.to_string(), name: "contoso".into(), uid: String::new() };
    object_name(&assignment_ref, "kubelighthouse:reader")
}

/// After the downgrade: Contributor gone at once, Reader in force, and our binding at the
/// squatted name: our roleRef and subjects, no foreign finalizer, the ServiceAccount the
/// squatter bound holding nothing.
async fn the_name_holds_ours(client: &Client, sub: &str, person: &str) {
    expect_access(client, person, &[], access("create", "deployments.apps", sub), false).await;
    converged_to_reader(client, person, sub).await;
    let ours = reader_binding_name(sub);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), sub);
    let held_by = bindings.get(&ours).await.expect("our binding");
    assert_eq!(held_by.role_ref.name, ours, "our Reader Role, not the squatter's");
    assert!(
        held_by.subjects.iter().flatten().all(|s| s.kind != "ServiceAccount"),
        "the squatter's subjects are gone: {:?}",
        held_by.subjects
    );
    assert!(held_by.metadata.finalizers.iter().flatten().next().is_none(), "no foreign finalizer adopted");
    let identity = format!("system:serviceaccount:{sub}:default");
    expect_access(client, &identity, &[], access("list", "pods", sub), false).await;
}

/// Input 2, without the webhook. A User Access Administrator is then never in force (it is
/// withheld until the webhook guards RoleBindings: docs/roles.md), so the squatter is anyone
/// else who may create RoleBindings there (a customer's automation): it writes a binding of
/// `view` to a ServiceAccount under the name of the Reader binding the controller will write
/// when the customer downgrades its Contributor. The Contributor access goes at once all the
/// same, and the squatter is replaced by ours: deleted, its finalizer (which the controller
/// never sets, so someone else's) taken off, never adopted.
async fn a_squatted_name_holds_back_no_downgrade(client: &Client, held: bool) {
    let sub = unique(if held { "squat-held" } else { "squat" });
    subscription(client, &sub, &tenant_id()).await;
    let person = projected(MSP_TENANT, PERSON);
    definition(client, &sub, "contoso", MSP_TENANT, vec![authorization(PERSON, "User", CONTRIBUTOR)]).await;
    assignment(client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(client, &sub, "contoso", "Succeeded").await;
    expect_access(client, &person, &[], access("create", "deployments.apps", &sub), true).await;

    let view = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"});
    let squat = binding(&sub, &reader_binding_name(&sub), view, held.then_some("someone.example/hold"));
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &sub);
    bindings.create(&PostParams::default(), &squat).await.expect("the squatter takes the Reader binding's name");

    definition(client, &sub, "contoso", MSP_TENANT, vec![authorization(PERSON, "User", READER)]).await;
    the_name_holds_ours(client, &sub, &person).await;
}

/// Input 2, with the webhook: the User Access Administrator (in force now) tries to squat the
/// Reader binding's name within its limit (its assignable Reader Role, bound to a
/// ServiceAccount of the namespace): admission refuses it, since only the controller writes
/// objects that look like ours; the downgrade takes effect at once.
async fn a_delegate_may_not_squat_our_names(client: &Client) {
    let sub = unique("squat-uaa");
    subscription(client, &sub, &tenant_id()).await;
    let person = projected(MSP_TENANT, PERSON);
    let uaa = json!({"principalId": PERSON, "principalType": "User", "roleDefinitionId": UAA,
        "delegatedRoleDefinitionIds": [READER]});
    definition(client, &sub, "contoso", MSP_TENANT, vec![uaa.clone(), authorization(PERSON, "User", CONTRIBUTOR)])
        .await;
    assignment(client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(client, &sub, "contoso", "Succeeded").await;
    expect_access(client, &person, &[], access("create", "deployments.apps", &sub), true).await;
    expect_access(client, &person, &[], access("create", "rolebindings.rbac.authorization.k8s.io", &sub), true).await;

    let assignment_ref = AssignmentRef { namespace: sub.clone(), name: "contoso".into(), uid: String::new() };
    let assignable = assignable_name(&assignment_ref, "kubelighthouse:reader");
    let role_ref = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": assignable});
    let as_person: Api<RoleBinding> = Api::namespaced(client_as(&person, &[]).await, &sub);
    // The assignable Role may still be on its way: wait for a refusal by admission.
    let message = poll(
        "admission refuses the delegate's binding at our name",
        || {
            let squat = binding(&sub, &reader_binding_name(&sub), role_ref.clone(), None);
            let api = as_person.clone();
            async move {
                match api.create(&PostParams::default(), &squat).await {
                    Err(kube::Error::Api(s)) => s.message,
                    Ok(_) => panic!("the delegate squatted our name through the webhook"),
                    Err(e) => e.to_string(),
                }
            }
        },
        |m| m.contains("MaterializedByController"),
    )
    .await;
    assert!(message.contains("MaterializedByController"), "{message}");

    definition(client, &sub, "contoso", MSP_TENANT, vec![uaa, authorization(PERSON, "User", READER)]).await;
    the_name_holds_ours(client, &sub, &person).await;
}

/// Another instance of the kind: a finalizer someone else put on a binding of ours (the
/// controller never sets one) would keep the binding, and its access, after the prune
/// deleted it. The downgrade still ends the Contributor access at once.
async fn a_finalizer_on_our_binding_holds_back_no_prune(client: &Client) {
    let client = client.clone();
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

/// The scenarios run one after the other against the real binary: without its webhook (the
/// controller's side, which must hold whatever admission lets through), then with it.
#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn removal_never_waits_for_creation_with_and_without_the_webhook() {
    let path = kubeconfig();
    let client = client_for(&path).await;
    {
        eprintln!("== webhook: false");
        let _deployed = Deployed::start(&path, false);
        a_quota_on_rolebindings_holds_back_no_downgrade(&client).await;
        for held in [false, true] {
            a_squatted_name_holds_back_no_downgrade(&client, held).await;
        }
        a_finalizer_on_our_binding_holds_back_no_prune(&client).await;
    }
    eprintln!("== webhook: true");
    let _deployed = Deployed::start(&path, true);
    a_delegate_may_not_squat_our_names(&client).await;
}
