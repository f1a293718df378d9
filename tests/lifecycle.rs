//! Scopes, every removal path, transfer, managed-by-tenants and the orphan sweep (SPEC §1,
//! §5, §6), each proven with SubjectAccessReview against a real API server.

mod common;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, DeleteParams};
use kube_lighthouse::api::{RegistrationAssignment, RegistrationDefinition};
use serde_json::json;

const ENGINEERS: &str = "00000000-0000-0000-0000-0000000000a1";
const ON_CALL: &str = "00000000-0000-0000-0000-0000000000b2";

fn group(tenant: &str, principal: &str) -> String {
    projected(tenant, principal)
}

async fn reads(client: &kube::Client, tenant: &str, principal: &str, ns: &str, expected: bool) {
    expect_access(client, "someone", &[&group(tenant, principal)], access("list", "pods", ns), expected).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn resource_group_assignment_covers_only_its_namespace() {
    let client = cluster().await;
    let (sub, web, db) = (unique("sub"), unique("web"), unique("db"));
    subscription(&client, &sub, &tenant_id()).await;
    resource_group(&client, &web, &sub).await;
    resource_group(&client, &db, &sub).await;
    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    assignment(&client, &web, "contoso", "contoso").await;

    let status = wait_for_assignment_state(&client, &web, "contoso", "Succeeded").await;
    assert_eq!(status.namespaces, vec![web.clone()]);
    reads(&client, MSP_TENANT, ENGINEERS, &web, true).await;
    reads(&client, MSP_TENANT, ENGINEERS, &sub, false).await;
    reads(&client, MSP_TENANT, ENGINEERS, &db, false).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn subscription_scope_follows_resource_groups_created_moved_and_deleted() {
    let client = cluster().await;
    let (sub, other_sub, late) = (unique("sub"), unique("sub2"), unique("late"));
    subscription(&client, &sub, &tenant_id()).await;
    subscription(&client, &other_sub, &tenant_id()).await;
    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    assignment(&client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;

    // A resource group created after onboarding is covered.
    resource_group(&client, &late, &sub).await;
    reads(&client, MSP_TENANT, ENGINEERS, &late, true).await;
    // Moved to another subscription: the access goes with the old scope.
    relabel(&client, &late, json!({"kubelighthouse.io/subscription": other_sub})).await;
    reads(&client, MSP_TENANT, ENGINEERS, &late, false).await;
    assert_eq!(managed_objects(&client, &late).await, 0);
    // Moved back, then deleted: the assignment's status follows.
    relabel(&client, &late, json!({"kubelighthouse.io/subscription": sub})).await;
    reads(&client, MSP_TENANT, ENGINEERS, &late, true).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    delete(&namespaces, &late).await;
    eventually("the deleted resource group leaves the assignment's namespaces", || async {
        assignment_status(&client, &sub, "contoso").await.is_some_and(|s| s.namespaces == vec![sub.clone()])
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_second_assignment_of_one_definition_at_one_scope_fails_until_the_first_goes() {
    let client = cluster().await;
    let sub = unique("sub");
    subscription(&client, &sub, &tenant_id()).await;
    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    assignment(&client, &sub, "first", "contoso").await;
    wait_for_assignment_state(&client, &sub, "first", "Succeeded").await;
    assignment(&client, &sub, "second", "contoso").await;
    let status = wait_for_assignment_state(&client, &sub, "second", "Failed").await;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.reason, "DuplicateAssignment");
    assert!(ready.message.contains("first"), "{}", ready.message);

    let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), &sub);
    delete(&api, "first").await;
    wait_for_assignment_state(&client, &sub, "second", "Succeeded").await;
    reads(&client, MSP_TENANT, ENGINEERS, &sub, true).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn the_delete_role_lets_the_managing_tenant_remove_its_own_access() {
    let client = cluster().await;
    let (sub, rg) = (unique("sub"), unique("rg"));
    subscription(&client, &sub, &tenant_id()).await;
    resource_group(&client, &rg, &sub).await;
    definition(
        &client,
        &sub,
        "contoso",
        MSP_TENANT,
        vec![
            authorization(ENGINEERS, "Group", READER),
            authorization(ENGINEERS, "Group", DELETE_ROLE),
            authorization(ON_CALL, "User", READER),
        ],
    )
    .await;
    assignment(&client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;
    reads(&client, MSP_TENANT, ENGINEERS, &rg, true).await;

    // Someone without the Delete role is refused by the API server itself.
    let on_call = client_as(&projected(MSP_TENANT, ON_CALL), &[]).await;
    let as_on_call: Api<RegistrationAssignment> = Api::namespaced(on_call, &sub);
    match as_on_call.delete("contoso", &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("a Reader deleted the assignment: {other:?}"),
    }
    // The Delete role covers only the assignment that granted it.
    let engineer = client_as("engineer@contoso", &[&group(MSP_TENANT, ENGINEERS)]).await;
    let as_engineer: Api<RegistrationDefinition> = Api::namespaced(engineer.clone(), &sub);
    assert!(as_engineer.delete("contoso", &DeleteParams::default()).await.is_err(), "deleted the definition");
    // A real DELETE by the projected group member removes the delegation and all its access.
    let as_engineer: Api<RegistrationAssignment> = Api::namespaced(engineer, &sub);
    as_engineer.delete("contoso", &DeleteParams::default()).await.expect("the Delete role deletes its assignment");
    for ns in [&sub, &rg] {
        reads(&client, MSP_TENANT, ENGINEERS, ns, false).await;
        expect_access(&client, &projected(MSP_TENANT, ON_CALL), &[], access("list", "pods", ns), false).await;
    }
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn dropping_one_authorization_removes_exactly_that_access() {
    let client = cluster().await;
    let sub = unique("sub");
    subscription(&client, &sub, &tenant_id()).await;
    let both = vec![authorization(ENGINEERS, "Group", READER), authorization(ON_CALL, "User", CONTRIBUTOR)];
    definition(&client, &sub, "contoso", MSP_TENANT, both).await;
    assignment(&client, &sub, "contoso", "contoso").await;
    let on_call = projected(MSP_TENANT, ON_CALL);
    expect_access(&client, &on_call, &[], access("create", "deployments.apps", &sub), true).await;
    reads(&client, MSP_TENANT, ENGINEERS, &sub, true).await;

    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    expect_access(&client, &on_call, &[], access("create", "deployments.apps", &sub), false).await;
    expect_access(&client, &on_call, &[], access("list", "pods", &sub), false).await;
    reads(&client, MSP_TENANT, ENGINEERS, &sub, true).await;
    eventually("the Contributor Role is pruned", || async { managed_objects(&client, &sub).await == 2 }).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn transfer_removes_only_the_new_home_tenants_delegation() {
    let client = cluster().await;
    let (sub, rg) = (unique("sub"), unique("rg"));
    let original_home = tenant_id();
    subscription(&client, &sub, &original_home).await;
    resource_group(&client, &rg, &sub).await;
    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    definition(&client, &sub, "fabrikam", OTHER_MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    assignment(&client, &sub, "contoso", "contoso").await;
    assignment(&client, &rg, "contoso-rg", "contoso").await;
    assignment(&client, &sub, "fabrikam", "fabrikam").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;
    wait_for_assignment_state(&client, &rg, "contoso-rg", "Succeeded").await;
    wait_for_assignment_state(&client, &sub, "fabrikam", "Succeeded").await;
    let mut both = [MSP_TENANT, OTHER_MSP_TENANT];
    both.sort();
    eventually("managed-by-tenants names both managing tenants", || async {
        managed_by_tenants(&client, &sub).await.as_deref() == Some(both.join(",").as_str())
    })
    .await;

    // The subscription moves to Contoso's own tenant.
    relabel(&client, &sub, json!({"kubelighthouse.io/tenant-id": MSP_TENANT})).await;
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), &sub);
    eventually("Contoso's definition is removed", || async {
        definitions.get_opt("contoso").await.expect("get").is_none()
    })
    .await;
    let rg_assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), &rg);
    eventually("its resource-group assignment is removed too", || async {
        rg_assignments.get_opt("contoso-rg").await.expect("get").is_none()
    })
    .await;
    reads(&client, MSP_TENANT, ENGINEERS, &sub, false).await;
    reads(&client, MSP_TENANT, ENGINEERS, &rg, false).await;
    // Fabrikam keeps its access, and the annotation now names only Fabrikam.
    reads(&client, OTHER_MSP_TENANT, ENGINEERS, &sub, true).await;
    reads(&client, OTHER_MSP_TENANT, ENGINEERS, &rg, true).await;
    assert!(definitions.get_opt("fabrikam").await.expect("get").is_some());
    eventually("managed-by-tenants names only the remaining managing tenant", || async {
        managed_by_tenants(&client, &sub).await.as_deref() == Some(OTHER_MSP_TENANT)
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &sub);
    eventually("an Event on the namespace says what happened", || async {
        events.list(&Default::default()).await.expect("events").items.iter().any(|e| {
            e.reason.as_deref() == Some("RemovedOnTransfer")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(sub.as_str())
        })
    })
    .await;

    // The last delegation goes: so does the annotation.
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), &sub);
    delete(&assignments, "fabrikam").await;
    eventually("managed-by-tenants is removed", || async { managed_by_tenants(&client, &sub).await.is_none() }).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn objects_matching_no_delegation_are_swept() {
    let client = cluster().await;
    let ns = unique("orphans");
    plain_namespace(&client, &ns).await;
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    let orphan = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "kubelighthouse:orphan", "namespace": ns, "labels": {
            "app.kubernetes.io/managed-by": "kube-lighthouse",
            "kubelighthouse.io/assignment-uid": "00000000-dead-4000-8000-000000000000"}},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    });
    apply_json(&roles, "kubelighthouse:orphan", orphan).await;
    // A Role of someone else's, without our labels, is never touched.
    apply_json(
        &roles,
        "theirs",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "theirs", "namespace": ns}, "rules": []}),
    )
    .await;
    eventually("the orphan is swept", || async {
        roles.get_opt("kubelighthouse:orphan").await.expect("get").is_none()
    })
    .await;
    assert!(roles.get_opt("theirs").await.expect("get").is_some());
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn deleting_a_delegated_namespace_never_hangs_on_our_finalizers() {
    let client = cluster().await;
    let sub = unique("doomed");
    subscription(&client, &sub, &tenant_id()).await;
    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    assignment(&client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    delete(&namespaces, &sub).await;
    eventually("the namespace is gone", || async { namespaces.get_opt(&sub).await.expect("get").is_none() }).await;
    reads(&client, MSP_TENANT, ENGINEERS, &sub, false).await;
}
