//! The requests one assignment reconcile makes, against a mocked API server: which calls,
//! in which order, with which content. (That access is really granted or revoked is proven
//! on the real control plane, in tests/.)

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use serde_json::json;

use super::*;
use crate::api::{DefinitionRef, RegistrationAssignmentSpec, RegistrationDefinition};
use crate::controller::testing::{answer, context, next};
use crate::model::catalog::test_support::{catalog_cluster_role, READER};

const CUSTOMER: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const MSP: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
const PRINCIPAL: &str = "00000000-0000-0000-0000-0000000000a1";

fn namespace(name: &str, labels: &[(&str, &str)]) -> PartialObjectMeta<Namespace> {
    let mut ns = PartialObjectMeta::<Namespace>::default();
    ns.metadata.name = Some(name.into());
    ns.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    ns
}

fn assignment(namespace: &str) -> RegistrationAssignment {
    RegistrationAssignment {
        metadata: ObjectMeta {
            name: Some("contoso".into()),
            namespace: Some(namespace.into()),
            uid: Some("uid-1".into()),
            generation: Some(1),
            finalizers: Some(vec![keys::ASSIGNMENT_FINALIZER.into()]),
            ..Default::default()
        },
        spec: RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: "offer".into() } },
        status: None,
    }
}

fn definition() -> RegistrationDefinition {
    let spec = serde_json::from_value(json!({
        "registrationDefinitionName": "Contoso",
        "managedByTenantId": MSP,
        "authorizations": [{"principalId": PRINCIPAL, "roleDefinitionId": READER}],
    }))
    .expect("spec");
    let mut d = RegistrationDefinition::new("offer", spec);
    d.metadata.namespace = Some("sub".into());
    d.metadata.generation = Some(1);
    d
}

fn reader_role() -> k8s_openapi::api::rbac::v1::ClusterRole {
    let rule = PolicyRule {
        api_groups: Some(vec!["".into()]),
        resources: Some(vec!["pods".into()]),
        verbs: vec!["get".into(), "list".into()],
        ..Default::default()
    };
    catalog_cluster_role("kubelighthouse:reader", Some(READER), Some("Reader"), vec![rule])
}

/// The object the API server returns for a server-side apply: what was sent, versioned.
fn applied(mut body: serde_json::Value, version: &str) -> serde_json::Value {
    body["metadata"]["resourceVersion"] = json!(version);
    body
}

/// The assignment as the API server returns it after a status patch `patch`.
fn with_status(a: &RegistrationAssignment, patch: &serde_json::Value) -> serde_json::Value {
    let mut object = serde_json::to_value(a).expect("json");
    object["status"] = patch["status"].clone();
    object
}

/// A 404 `Status`.
fn not_found(send: tower_test::mock::SendResponse<http::Response<kube::client::Body>>) {
    answer(
        send,
        404,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}),
    );
}

/// The answer to a DeleteCollection that deleted `names` (in namespace `sub`).
fn deleted(send: tower_test::mock::SendResponse<http::Response<kube::client::Body>>, kind: &str, names: &[&str]) {
    let items: Vec<_> = names.iter().map(|n| json!({"metadata": {"name": n, "namespace": "sub"}})).collect();
    let list = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": format!("{kind}List"), "metadata": {}, "items": items});
    answer(send, 200, list);
}

/// A Role or RoleBinding of the assignment with UID `uid`, as the materialized cache records it.
fn ours<K: kube::Resource<DynamicType = ()> + Default>(name: &str, uid: &str) -> K {
    let mut object = K::default();
    let meta = object.meta_mut();
    meta.name = Some(name.into());
    meta.namespace = Some("sub".into());
    meta.resource_version = Some("5".into());
    meta.labels = Some(
        [
            (keys::MANAGED_BY.to_string(), keys::MANAGER.to_string()),
            (keys::ASSIGNMENT_UID.to_string(), uid.to_string()),
        ]
        .into(),
    );
    object
}

/// The subscription `sub` of the customer, holding the Reader definition, with Reader in
/// the catalog: what every reconcile below starts from.
fn a_reader_offer_in_sub(ctx: &Context, cluster: &mut crate::controller::testing::Cluster) {
    cluster.namespace(namespace("sub", &[(keys::TENANT_ID, CUSTOMER)]));
    cluster.definition(definition());
    ctx.caches.catalog.observe(&watcher::Event::Apply(reader_role()));
}

/// The cache holds a Contributor Role and RoleBinding of the assignment (before a downgrade).
fn holds_contributor(ctx: &Context) {
    use crate::controller::materialized::Record;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let role: Role = ours("kubelighthouse:old:contributor", "uid-1");
    let mut binding: RoleBinding = ours("kubelighthouse:old:contributor", "uid-1");
    binding.role_ref.kind = "Role".into();
    binding.role_ref.name = "kubelighthouse:old:contributor".into();
    ctx.caches.roles.observe(&watcher::Event::Apply(Record::from_role(&role)));
    ctx.caches.bindings.observe(&watcher::Event::Apply(Record::from_binding(&binding)));
}

/// Issue 26, item 3: a downgrade whose new RoleBinding the API server refuses (a quota of
/// zero RoleBindings) still removes the Contributor access at once, then says so in status
/// (Failed, Ready=False `ApplyFailed` naming the object and the API server's answer) and in
/// one Warning Event, and fails the reconcile so that it is retried.
#[tokio::test]
async fn a_refused_new_binding_holds_back_no_prune_and_is_reported() {
    let (ctx, mut server, mut cluster) = context();
    a_reader_offer_in_sub(&ctx, &mut cluster);
    holds_contributor(&ctx);
    let a = assignment("sub");
    cluster.assignment(a.clone());
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));

    let (method, _, _, send) = next(&mut server).await;
    assert_eq!(method, "GET");
    not_found(send);
    let (method, path, role, send) = next(&mut server).await;
    assert!(method == "PATCH" && path.contains("/roles/"), "{method} {path}");
    answer(send, 200, applied(role, "10"));
    let (method, _, _, send) = next(&mut server).await;
    assert_eq!(method, "GET");
    not_found(send);
    let (method, path, binding, send) = next(&mut server).await;
    assert!(method == "PATCH" && path.contains("/rolebindings/"), "{method} {path}");
    let binding_name = binding["metadata"]["name"].as_str().expect("name").to_string();
    let quota = "rolebindings.rbac.authorization.k8s.io \"x\" is forbidden: exceeded quota: no-bindings";
    answer(
        send,
        403,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403, "message": quota}),
    );

    // The refusal holds back no removal: the Contributor binding, then its Role.
    let (method, path, _, send) = next(&mut server).await;
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/sub/rolebindings/kubelighthouse:old:contributor?")
    );
    answer(send, 200, json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}));
    let (method, path, _, send) = next(&mut server).await;
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/sub/roles/kubelighthouse:old:contributor?")
    );
    answer(send, 200, json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}));

    // Then the failure, at once: status and one Warning Event.
    let (method, path, body, send) = next(&mut server).await;
    assert!(method == "PATCH" && path.contains("/registrationassignments/contoso/status?"), "{method} {path}");
    let status = &body["status"];
    assert_eq!(status["provisioningState"], "Failed");
    assert!(
        status["namespaces"].as_array().is_none_or(Vec::is_empty),
        "nothing of the assignment is in force: {status}"
    );
    let conditions = status["conditions"].as_array().expect("conditions");
    let ready = conditions.iter().find(|c| c["type"] == "Ready").expect("Ready");
    assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("False"), Some("ApplyFailed")));
    let message = ready["message"].as_str().expect("message");
    assert!(message.contains(&format!("RoleBinding sub/{binding_name}")), "{message}");
    assert!(message.contains("exceeded quota: no-bindings"), "{message}");
    answer(send, 200, with_status(&a, &body));
    let (method, _, event, send) = next(&mut server).await;
    assert_eq!(method, "POST");
    assert_eq!((event["type"].as_str(), event["reason"].as_str()), (Some("Warning"), Some("ApplyFailed")));
    assert!(event["note"].as_str().is_some_and(|n| n.contains("exceeded quota")), "{event}");
    answer(send, 201, event);

    let error = reconcile.await.expect("joined").expect_err("retried until the quota allows it");
    assert!(matches!(error, Error::Apply(_)), "{error:?}");
}

/// Issue 26, item 3: a RoleBinding someone else created under the name of the binding the
/// controller is about to write is deleted (only that object: its UID is the
/// precondition), then ours is created; it is never adopted with its roleRef or subjects.
#[tokio::test]
async fn a_foreign_binding_at_our_name_is_replaced_not_adopted() {
    let (ctx, mut server, mut cluster) = context();
    a_reader_offer_in_sub(&ctx, &mut cluster);
    let a = assignment("sub");
    cluster.assignment(a.clone());
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));

    let (_, _, _, send) = next(&mut server).await;
    not_found(send);
    let (_, _, role, send) = next(&mut server).await;
    answer(send, 200, applied(role, "10"));
    let (method, path, _, send) = next(&mut server).await;
    assert!(method == "GET" && path.contains("/rolebindings/"), "{method} {path}");
    let name = path.split("/rolebindings/").nth(1).and_then(|p| p.split('?').next()).expect("name").to_string();
    answer(
        send,
        200,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": name, "namespace": "sub", "uid": "squatter-uid", "resourceVersion": "3",
                "labels": {"team": "delegate"}}}),
    );
    let (method, delete_path, options, send) = next(&mut server).await;
    assert_eq!(method, "DELETE");
    assert!(delete_path.contains(&format!("/namespaces/sub/rolebindings/{name}")), "{delete_path}");
    assert_eq!(options["preconditions"]["uid"], "squatter-uid", "only the object judged: {options}");
    answer(send, 200, json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}));
    let (method, path, binding, send) = next(&mut server).await;
    assert!(method == "PATCH" && path.contains(&format!("/rolebindings/{name}?")), "{method} {path}");
    assert_eq!(binding["metadata"]["labels"][keys::ASSIGNMENT_UID], "uid-1");
    answer(send, 200, applied(binding, "11"));
    let action = reconcile.await.expect("joined").expect("reconciled");
    assert_eq!(action, Action::await_change());
}

/// An object at our name carrying this assignment's UID label is ours (the watch has not
/// shown it yet): it is applied over, not deleted.
#[tokio::test]
async fn our_own_object_not_yet_cached_is_not_evicted() {
    let (ctx, mut server, mut cluster) = context();
    a_reader_offer_in_sub(&ctx, &mut cluster);
    let a = assignment("sub");
    cluster.assignment(a.clone());
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));
    for kind in ["roles", "rolebindings"] {
        let (method, path, _, send) = next(&mut server).await;
        assert!(method == "GET" && path.contains(&format!("/{kind}/")), "{method} {path}");
        answer(
            send,
            200,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": "x", "namespace": "sub", "uid": "ours", "labels": {keys::ASSIGNMENT_UID: "uid-1"}}}),
        );
        let (method, path, body, send) = next(&mut server).await;
        assert!(method == "PATCH" && path.contains(&format!("/{kind}/")), "no delete: {method} {path}");
        answer(send, 200, applied(body, "12"));
    }
    reconcile.await.expect("joined").expect("reconciled");
}

#[tokio::test]
async fn a_rejected_assignment_revokes_by_label_then_writes_failed_status_and_one_warning() {
    let (ctx, mut server, mut cluster) = context();
    // The namespace is no subscription: nothing can be delegated there.
    cluster.namespace(namespace("plain", &[]));
    // What it held: a Role and RoleBinding the cache shows in `sub`, and a write to `rg`
    // sent but not seen by the watch yet.
    holds_contributor(&ctx);
    ctx.expectations.sending("RoleBinding", "rg", "kubelighthouse:x", "uid-1");
    let a = assignment("plain");
    cluster.assignment(a.clone());
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));

    // From the cache and the writes in flight, not a list across the cluster: one
    // DeleteCollection by label per kind and namespace, every binding before any Role.
    let mut seen = vec![];
    for kind in ["rolebindings", "rolebindings", "roles", "roles"] {
        let (method, path, _, send) = next(&mut server).await;
        assert_eq!(method, "DELETE");
        let namespace = ["rg", "sub"]
            .into_iter()
            .find(|ns| path.starts_with(&format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{kind}?")));
        let namespace = namespace.unwrap_or_else(|| panic!("{kind} of rg or sub: {path}"));
        assert!(path.contains("labelSelector=kubelighthouse.io%2Fassignment-uid%3Duid-1"), "revoked by label: {path}");
        seen.push((kind, namespace));
        let names: &[&str] = if namespace == "sub" { &["kubelighthouse:old:contributor"] } else { &[] };
        deleted(send, if kind == "roles" { "Role" } else { "RoleBinding" }, names);
    }
    seen.sort();
    assert_eq!(seen, [("rolebindings", "rg"), ("rolebindings", "sub"), ("roles", "rg"), ("roles", "sub")]);
    assert!(ctx.expectations.namespaces_in_flight("uid-1").is_empty(), "revoked there");
    let (method, path, body, send) = next(&mut server).await;
    assert_eq!(method, "PATCH");
    assert!(
        path.starts_with(
            "/apis/managedservices.kubelighthouse.io/v1alpha1/namespaces/plain/registrationassignments/contoso/status?"
        ),
        "{path}"
    );
    assert!(path.contains("fieldManager=kube-lighthouse") && path.contains("force=true"), "{path}");
    assert_eq!(body["status"]["provisioningState"], "Failed");
    let ready = &body["status"]["conditions"][0];
    assert_eq!((ready["type"].as_str(), ready["status"].as_str()), (Some("Ready"), Some("False")));
    answer(send, 200, with_status(&a, &body));

    let (method, path, event, send) = next(&mut server).await;
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/apis/events.k8s.io/v1/namespaces/plain/events?"));
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], ready["reason"]);
    assert!(event["note"].as_str().is_some_and(|n| n.starts_with("nothing granted: ")), "{event}");
    answer(send, 201, event.clone());

    let action = reconcile.await.expect("joined").expect("reconciled");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_granted_assignment_applies_its_role_before_its_binding_and_records_the_grant_after() {
    let (ctx, mut server, mut cluster) = context();
    a_reader_offer_in_sub(&ctx, &mut cluster);
    let a = assignment("sub");
    cluster.assignment(a.clone());
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));

    // A name the cache does not know as the assignment's is asked of the API server first:
    // an object someone else put there is never adopted.
    let (method, path, _, send) = next(&mut server).await;
    assert_eq!(method, "GET");
    assert!(path.starts_with("/apis/rbac.authorization.k8s.io/v1/namespaces/sub/roles/"), "the Role first: {path}");
    not_found(send);
    let (method, path, role, send) = next(&mut server).await;
    assert_eq!(method, "PATCH");
    assert!(path.starts_with("/apis/rbac.authorization.k8s.io/v1/namespaces/sub/roles/"), "the Role first: {path}");
    assert!(path.contains("fieldManager=kube-lighthouse") && path.contains("force=true"), "{path}");
    assert_eq!(role["rules"][0]["resources"], json!(["pods"]));
    assert_eq!(role["metadata"]["labels"][keys::ASSIGNMENT_UID], "uid-1");
    answer(send, 200, applied(role.clone(), "10"));

    let (method, path, _, send) = next(&mut server).await;
    assert_eq!(method, "GET");
    assert!(path.starts_with("/apis/rbac.authorization.k8s.io/v1/namespaces/sub/rolebindings/"), "{path}");
    not_found(send);
    let (method, path, binding, send) = next(&mut server).await;
    assert_eq!(method, "PATCH");
    assert!(path.starts_with("/apis/rbac.authorization.k8s.io/v1/namespaces/sub/rolebindings/"), "{path}");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    // No principalType: the principal may be a user or a group (SPEC §2).
    let subject = |kind: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": format!("{MSP}:{PRINCIPAL}")});
    assert_eq!(binding["subjects"], json!([subject("Group"), subject("User")]));
    answer(send, 200, applied(binding, "11"));

    // The reconcile ends before its record is written: the grant does not wait for it.
    let action = reconcile.await.expect("joined").expect("reconciled");
    assert_eq!(action, Action::await_change());

    let (method, path, body, send) = next(&mut server).await;
    assert_eq!(method, "PATCH");
    assert!(path.contains("/registrationassignments/contoso/status?"), "{path}");
    assert_eq!(body["status"]["provisioningState"], "Succeeded");
    assert_eq!(body["status"]["namespaces"], json!(["sub"]));
    answer(send, 200, with_status(&a, &body));
    let (method, _, event, send) = next(&mut server).await;
    assert_eq!((method.as_str(), event["reason"].as_str()), ("POST", Some("Granted")));
    answer(send, 201, event);
}

#[tokio::test]
async fn an_unclaimed_assignment_gets_the_finalizer_before_anything_is_granted() {
    let (ctx, mut server, mut cluster) = context();
    cluster.namespace(namespace("plain", &[]));
    let mut a = assignment("plain");
    a.metadata.finalizers = None;
    cluster.assignment(a.clone());
    let _reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));
    let (method, path, patch, send) = next(&mut server).await;
    assert_eq!(method, "PATCH");
    assert_eq!(
        path,
        "/apis/managedservices.kubelighthouse.io/v1alpha1/namespaces/plain/registrationassignments/contoso?"
    );
    assert!(patch.to_string().contains(keys::ASSIGNMENT_FINALIZER), "{patch}");
    let mut claimed = serde_json::to_value(&a).expect("json");
    claimed["metadata"]["finalizers"] = json!([keys::ASSIGNMENT_FINALIZER]);
    answer(send, 200, claimed);
    // Then the pipeline runs on the object the patch returned: a rejection (no subscription
    // here), which holds nothing to revoke, so its status is what comes next.
    let (method, path, _, _send) = next(&mut server).await;
    assert!(method == "PATCH" && path.contains("/registrationassignments/contoso/status?"), "{method} {path}");
}

/// The subscription `sub` of the customer, with Reader in the catalog, and no definition in
/// the cache.
fn a_subscription_without_cached_definitions(ctx: &Context, cluster: &mut crate::controller::testing::Cluster) {
    cluster.namespace(namespace("sub", &[(keys::TENANT_ID, CUSTOMER)]));
    ctx.caches.catalog.observe(&watcher::Event::Apply(reader_role()));
}

/// Applied together, an assignment can be judged before its definition's watch event: the
/// definition is read once, found, and the assignment waits for it (a requeue), with no
/// revoke, no `DefinitionNotFound` status and no Warning Event.
#[tokio::test]
async fn an_assignment_whose_definition_is_not_cached_yet_waits_for_it() {
    let (ctx, mut server, mut cluster) = context();
    a_subscription_without_cached_definitions(&ctx, &mut cluster);
    let a = assignment("sub");
    cluster.assignment(a.clone());
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));

    let (method, path, _, send) = next(&mut server).await;
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("GET", "/apis/managedservices.kubelighthouse.io/v1alpha1/namespaces/sub/registrationdefinitions/offer")
    );
    answer(send, 200, serde_json::to_value(definition()).expect("json"));
    let action = reconcile.await.expect("joined").expect("reconciled");
    assert_eq!(action, Action::requeue(DEFINITION_ON_ITS_WAY_RETRY));
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), server.next_request()).await.is_err(),
        "nothing written while the definition is on its way"
    );
}

/// A definition missing from the cache and from the API server: the assignment fails for
/// `DefinitionNotFound`, as before, after one read.
#[tokio::test]
async fn an_assignment_whose_definition_is_gone_fails_after_one_read() {
    let (ctx, mut server, mut cluster) = context();
    a_subscription_without_cached_definitions(&ctx, &mut cluster);
    let a = assignment("sub");
    cluster.assignment(a.clone());
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));

    let (method, path, _, send) = next(&mut server).await;
    assert!(method == "GET" && path.contains("/registrationdefinitions/offer"), "{method} {path}");
    not_found(send);
    // It holds nothing (nothing cached, nothing in flight): no revoke request.
    let (method, path, body, send) = next(&mut server).await;
    assert!(method == "PATCH" && path.contains("/registrationassignments/contoso/status?"), "{method} {path}");
    assert_eq!(body["status"]["provisioningState"], "Failed");
    assert_eq!(body["status"]["conditions"][0]["reason"], "DefinitionNotFound", "{body}");
    answer(send, 200, with_status(&a, &body));
    let (method, _, event, send) = next(&mut server).await;
    assert_eq!(method, "POST");
    answer(send, 201, event);
    reconcile.await.expect("joined").expect("reconciled");
}

/// An assignment already Failed for `DefinitionNotFound` is not read again on each resync:
/// the reconcile goes straight to revoking.
#[tokio::test]
async fn an_assignment_already_failed_for_its_missing_definition_is_not_read_again() {
    let (ctx, mut server, mut cluster) = context();
    a_subscription_without_cached_definitions(&ctx, &mut cluster);
    let mut a = assignment("sub");
    a.status = Some(
        serde_json::from_value(json!({"provisioningState": "Failed", "conditions": [{"type": "Ready",
            "status": "False", "reason": "DefinitionNotFound", "message": "no RegistrationDefinition \"offer\"",
            "lastTransitionTime": "2026-12-07T00:00:00Z"}]}))
        .expect("status"),
    );
    cluster.assignment(a.clone());
    holds_contributor(&ctx);
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));
    let (method, path, _, send) = next(&mut server).await;
    assert!(
        method == "DELETE" && path.contains("/namespaces/sub/rolebindings?"),
        "no read of the definition first: {method} {path}"
    );
    deleted(send, "RoleBinding", &[]);
    let (_, path, _, send) = next(&mut server).await;
    assert!(path.contains("/namespaces/sub/roles?"), "{path}");
    deleted(send, "Role", &[]);
    reconcile.abort();
}
