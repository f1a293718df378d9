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
use crate::model::catalog::tests::{catalog_cluster_role, READER};

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

#[tokio::test]
async fn a_rejected_assignment_revokes_by_label_then_writes_failed_status_and_one_warning() {
    let (ctx, mut server, mut cluster) = context();
    // The namespace is no subscription: nothing can be delegated there.
    cluster.namespace(namespace("plain", &[]));
    let a = assignment("plain");
    cluster.assignment(a.clone());
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));

    for kind in ["rolebindings", "roles"] {
        let (method, path, _, send) = next(&mut server).await;
        assert_eq!(method, "GET");
        assert!(path.starts_with(&format!("/apis/rbac.authorization.k8s.io/v1/{kind}?")), "{path}");
        assert!(
            path.contains("labelSelector=kubelighthouse.io%2Fassignment-uid%3Duid-1"),
            "revoked by label, live: {path}"
        );
        answer(
            send,
            200,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": []}),
        );
    }
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
    cluster.namespace(namespace("sub", &[(keys::TENANT_ID, CUSTOMER)]));
    cluster.definition(definition());
    ctx.caches.catalog.observe(&watcher::Event::Apply(reader_role()));
    let a = assignment("sub");
    cluster.assignment(a.clone());
    let reconcile = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));

    let (method, path, role, send) = next(&mut server).await;
    assert_eq!(method, "PATCH");
    assert!(path.starts_with("/apis/rbac.authorization.k8s.io/v1/namespaces/sub/roles/"), "the Role first: {path}");
    assert!(path.contains("fieldManager=kube-lighthouse") && path.contains("force=true"), "{path}");
    assert_eq!(role["rules"][0]["resources"], json!(["pods"]));
    assert_eq!(role["metadata"]["labels"][keys::ASSIGNMENT_UID], "uid-1");
    answer(send, 200, applied(role.clone(), "10"));

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
    let (method, path, _, _send) = next(&mut server).await;
    assert_eq!(method, "GET", "then the pipeline runs: {path}");
}
