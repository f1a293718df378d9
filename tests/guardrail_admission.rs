//! The API server enforces guardrails and tenancy labels by itself (docs/guardrails.md): the
//! chart's ValidatingAdmissionPolicies, on the real control plane, with **no kube-lighthouse
//! running**: this test binary never starts the controller nor registers its webhook, so
//! every refusal here is the API server's own.
//!
//! - `kubectl apply` of a definition a guardrail forbids is refused, naming the guardrail and
//!   the field, for each rule; what the guardrail allows is admitted; a namespace outside the
//!   guardrail's selector is not governed;
//! - tenancy labels: an identity signed in with its own token (a managing tenant's issuer, a
//!   ServiceAccount) that may update namespaces still may not set, change or remove
//!   `kubelighthouse.io/tenant-id` or `kubelighthouse.io/subscription` until it is bound to
//!   `kubelighthouse:tenancy-labels`; other labels stay as RBAC says.

mod common;

use std::process::Command;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

/// The admin client, without starting the controller.
async fn admin() -> Client {
    client_for(&kubeconfig()).await
}

/// A guardrail governing the namespaces labelled `guardrail-test: <label>`.
async fn guardrail(client: &Client, name: &str, label: &str, rules: serde_json::Value) {
    let api: Api<kube_lighthouse::api::Guardrail> = Api::all(client.clone());
    let mut spec = json!({"namespaceSelector": {"matchLabels": {"guardrail-test": label}}});
    spec.as_object_mut().expect("object").extend(rules.as_object().expect("rules").clone());
    let body = json!({"apiVersion": "policy.kubelighthouse.io/v1alpha1", "kind": "Guardrail",
                      "metadata": {"name": name}, "spec": spec});
    apply_json(&api, name, body).await;
}

/// `kubectl apply -f -` of `manifest` as the admin: Ok, or the API server's message.
fn kubectl_apply(manifest: &serde_json::Value) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig())
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().expect("stdin").write_all(manifest.to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("kubectl apply");
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

fn definition_manifest(namespace: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut full = json!({"registrationDefinitionName": "Contoso", "managedByTenantId": MSP_TENANT});
    full.as_object_mut().expect("object").extend(spec.as_object().expect("spec").clone());
    json!({"apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationDefinition",
           "metadata": {"name": name, "namespace": namespace}, "spec": full})
}

const P1: &str = "00000000-0000-0000-0000-00000000a101";
const P2: &str = "00000000-0000-0000-0000-00000000a102";

/// Waits until the API server has the guardrail as a parameter of its policy: a definition
/// it forbids is refused (parameters reach the policy through an informer).
async fn until_enforced(namespace: &str) {
    // A new name each time: an update that leaves the spec alone is never judged.
    eventually("the API server enforces the guardrail", || async {
        let spec = json!({"managedByTenantId": OTHER_MSP_TENANT, "authorizations": [authorization(P1, "", READER)]});
        kubectl_apply(&definition_manifest(namespace, &unique("probe"), spec)).is_err()
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn the_api_server_refuses_what_a_guardrail_forbids_with_no_kube_lighthouse_running() {
    let client = admin().await;
    let (label, sub, elsewhere) = (unique("gr"), unique("gr-sub"), unique("gr-free"));
    let customer = tenant_id();
    subscription(&client, &sub, &customer).await;
    relabel(&client, &sub, json!({"guardrail-test": label})).await;
    subscription(&client, &elsewhere, &customer).await;
    let name = unique("platform");
    guardrail(
        &client,
        &name,
        &label,
        json!({
            "allowedManagingTenantIds": [MSP_TENANT],
            "allowedRoleDefinitionIds": {"authorizations": [READER, DELETE_ROLE, CONTRIBUTOR], "eligibleAuthorizations": [CONTRIBUTOR]},
            "eligibleOnlyRoleDefinitionIds": [CONTRIBUTOR],
            "justInTimeAccessPolicy": {"maximumActivationDuration": "PT2H", "requireMultiFactorAuth": true},
            "requireDeleteRole": true,
        }),
    )
    .await;
    until_enforced(&sub).await;

    let delete_role = authorization(P2, "", DELETE_ROLE);
    let jit = |role: &str, duration: &str, mfa: &str| {
        json!({"principalId": P2, "roleDefinitionId": role,
               "justInTimeAccessPolicy": {"maximumActivationDuration": duration, "multiFactorAuthProvider": mfa}})
    };
    let cases = [
        (
            json!({"managedByTenantId": OTHER_MSP_TENANT, "authorizations": [authorization(P1, "", READER), delete_role]}),
            "spec.managedByTenantId",
            "spec.allowedManagingTenantIds",
        ),
        (
            json!({"authorizations": [authorization(P1, "", "Log Analytics Contributor"), delete_role]}),
            "spec.authorizations[].roleDefinitionId",
            "spec.allowedRoleDefinitionIds.authorizations",
        ),
        (
            json!({"authorizations": [authorization(P1, "", CONTRIBUTOR), delete_role]}),
            "spec.authorizations[].roleDefinitionId",
            "spec.eligibleOnlyRoleDefinitionIds",
        ),
        (
            json!({"authorizations": [authorization(P1, "", READER), delete_role], "eligibleAuthorizations": [jit(READER, "PT1H", "Azure")]}),
            "spec.eligibleAuthorizations[].roleDefinitionId",
            "spec.allowedRoleDefinitionIds.eligibleAuthorizations",
        ),
        (
            json!({"authorizations": [authorization(P1, "", READER), delete_role], "eligibleAuthorizations": [jit(CONTRIBUTOR, "PT4H", "Azure")]}),
            "spec.eligibleAuthorizations[].justInTimeAccessPolicy.maximumActivationDuration",
            "spec.justInTimeAccessPolicy.maximumActivationDuration",
        ),
        (
            json!({"authorizations": [authorization(P1, "", READER), delete_role], "eligibleAuthorizations": [jit(CONTRIBUTOR, "PT1H", "None")]}),
            "spec.eligibleAuthorizations[].justInTimeAccessPolicy.multiFactorAuthProvider",
            "spec.justInTimeAccessPolicy.requireMultiFactorAuth",
        ),
        (json!({"authorizations": [authorization(P1, "", READER)]}), "spec.authorizations", "spec.requireDeleteRole"),
    ];
    for (spec, field, guardrail_field) in cases {
        let refused = kubectl_apply(&definition_manifest(&sub, "offer", spec.clone()))
            .expect_err(&format!("the API server refuses {spec}"));
        for part in ["kube-lighthouse-guardrails", &format!("{field}: guardrail \"{name}\" ({guardrail_field})")] {
            assert!(refused.contains(part), "the refusal of {spec} names {part}: {refused}");
        }
        // The same definition where no guardrail governs is admitted.
        kubectl_apply(&definition_manifest(&elsewhere, &unique("offer"), spec)).expect("not governed: admitted");
    }

    // What the guardrail allows is admitted, and a change of anything but the spec (a label,
    // as the controller's finalizer writes) is never judged.
    let allowed = json!({"authorizations": [authorization(P1, "", "Reader"), delete_role],
                         "eligibleAuthorizations": [jit(CONTRIBUTOR, "PT1H30M", "Azure")]});
    kubectl_apply(&definition_manifest(&sub, "offer", allowed)).expect("allowed");
    let stricter = unique("stricter");
    guardrail(&client, &stricter, &label, json!({"allowedManagingTenantIds": [OTHER_MSP_TENANT]})).await;
    eventually("the stricter guardrail is enforced", || async {
        kubectl_apply(&definition_manifest(
            &sub,
            &unique("new"),
            json!({"authorizations": [authorization(P1, "", READER), delete_role]}),
        ))
        .is_err_and(|e| e.contains(&stricter))
    })
    .await;
    let api: Api<kube_lighthouse::api::RegistrationDefinition> = Api::namespaced(client.clone(), &sub);
    api.patch("offer", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})))
        .await
        .expect("a metadata change of a definition that predates a guardrail is admitted");

    let guardrails: Api<kube_lighthouse::api::Guardrail> = Api::all(client.clone());
    delete(&guardrails, &name).await;
    delete(&guardrails, &stricter).await;
}

/// A role that may update and patch namespaces, bound to `user` (and to ServiceAccount
/// `sa` when given): enough to relabel any namespace, were it not for the policy.
async fn namespace_editor(client: &Client, name: &str, subjects: serde_json::Value) {
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    apply_json(
        &roles,
        name,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
               "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "create", "update", "patch"]}]}),
    )
    .await;
    bind(client, name, name, subjects).await;
}

async fn bind(client: &Client, name: &str, role: &str, subjects: serde_json::Value) {
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    apply_json(
        &bindings,
        name,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": subjects}),
    )
    .await;
}

/// Relabels `ns` as `client`'s own identity: Ok, or the API server's message.
async fn relabel_as(client: &Client, ns: &str, labels: serde_json::Value) -> Result<(), String> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.patch(ns, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": labels}}))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => Err(format!("{} {}", s.code, s.message)),
        Err(e) => panic!("patch namespace {ns}: {e}"),
    }
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn only_named_identities_may_set_change_or_remove_tenancy_labels() {
    let client = admin().await;
    let (sub, rg, home) = (unique("tl-sub"), unique("tl-rg"), unique("tl-home"));
    let customer = tenant_id();
    subscription(&client, &sub, &customer).await;
    resource_group(&client, &rg, &sub).await;
    plain_namespace(&client, &home).await;
    service_account(&client, &home, "platform-bot").await;
    let oid = "00000000-0000-0000-0000-00000000b0b1";
    let person = signed_in(&format!("{OTHER_MSP_TENANT}:{oid}"), &[]).await.expect("a token of the fabrikam issuer");
    let robot = client_with_token(&service_account_token(&home, "platform-bot")).await;
    let editor = unique("tl-editor");
    namespace_editor(
        &client,
        &editor,
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("{OTHER_MSP_TENANT}:{oid}")},
               {"kind": "ServiceAccount", "name": "platform-bot", "namespace": home}]),
    )
    .await;
    eventually("the editor may relabel namespaces", || async {
        relabel_as(&person, &sub, json!({"team": "web"})).await.is_ok()
            && relabel_as(&robot, &sub, json!({"team": "api"})).await.is_ok()
    })
    .await;

    for (who, identity) in [("a managing-tenant user", &person), ("a ServiceAccount", &robot)] {
        let attempts = [
            (sub.as_str(), json!({"kubelighthouse.io/tenant-id": tenant_id()}), "change"),
            (sub.as_str(), json!({"kubelighthouse.io/tenant-id": null}), "remove"),
            (rg.as_str(), json!({"kubelighthouse.io/subscription": null}), "remove"),
            (home.as_str(), json!({"kubelighthouse.io/tenant-id": OTHER_MSP_TENANT}), "set"),
            (home.as_str(), json!({"kubelighthouse.io/subscription": sub}), "set"),
        ];
        for (ns, labels, what) in attempts {
            let refused =
                relabel_as(identity, ns, labels.clone()).await.expect_err(&format!("{who} may not {what} {labels}"));
            assert!(
                refused.starts_with("403") && refused.contains("kube-lighthouse-tenancy-labels"),
                "{who}: {refused}"
            );
        }
        // Creating a namespace that carries a tenancy label is setting it.
        let api: Api<Namespace> = Api::all(identity.clone());
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": unique("tl-new"), "labels": {"kubelighthouse.io/tenant-id": customer}}}))
                    .expect("namespace"),
            )
            .await;
        assert!(
            matches!(created, Err(kube::Error::Api(ref s)) if s.code == 403),
            "{who} created a subscription: {created:?}"
        );
    }
    let still: Api<Namespace> = Api::all(client.clone());
    let labels = still.get(&sub).await.expect("sub").metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("kubelighthouse.io/tenant-id"), Some(&customer));

    // Bound to kubelighthouse:tenancy-labels (the chart's value `tenancyLabels` does this),
    // the same identities may.
    let trusted = unique("tl-trusted");
    bind(
        &client,
        &trusted,
        "kubelighthouse:tenancy-labels",
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("{OTHER_MSP_TENANT}:{oid}")},
               {"kind": "ServiceAccount", "name": "platform-bot", "namespace": home}]),
    )
    .await;
    eventually("a named identity may set the tenancy labels", || async {
        relabel_as(&person, &home, json!({"kubelighthouse.io/subscription": sub})).await.is_ok()
    })
    .await;
    relabel_as(&robot, &home, json!({"kubelighthouse.io/subscription": null})).await.expect("named: may remove");

    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    delete(&bindings, &editor).await;
    delete(&bindings, &trusted).await;
}
