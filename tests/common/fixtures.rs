//! What a test creates: unique names and tenants, subscription and resource-group
//! namespaces, ServiceAccounts, definitions and assignments, all by server-side apply; and
//! the well-known tenants and roles they name.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Client;
use kube_lighthouse::api::{RegistrationAssignment, RegistrationDefinition};
use serde_json::json;

use super::wait::eventually;

/// The managing tenant with the local issuer `contoso`.
pub const MSP_TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
/// The other managing tenant, with the local issuer `fabrikam`.
pub const OTHER_MSP_TENANT: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
/// Reader.
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
/// Contributor.
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// Managed Services Registration Assignment Delete Role.
pub const DELETE_ROLE: &str = "91c1777a-f3dc-4fae-b103-61d183457e46";

/// A name unique to this test run, so tests share one cluster without seeing each other.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{:x}{n}", nanos % 0xfffff)
}

/// A fresh GUID-shaped tenant ID for a customer.
pub fn tenant_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let hex = format!("{:032x}", nanos ^ 0x5eed_0000_0000_0000_0000_0000_0000_0000);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Server-side apply of `value` as the tests' field manager.
pub async fn apply_json<K>(api: &Api<K>, name: &str, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply("kube-lighthouse-tests").force(), &Patch::Apply(value)).await.expect("apply");
}

/// A subscription namespace of `tenant`.
pub async fn subscription(client: &Client, name: &str, tenant: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubelighthouse.io/tenant-id": tenant}}});
    apply_json(&api, name, ns).await;
}

/// A resource-group namespace of `subscription`.
pub async fn resource_group(client: &Client, name: &str, subscription: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubelighthouse.io/subscription": subscription}}});
    apply_json(&api, name, ns).await;
}

/// A namespace that is neither a subscription nor a resource group.
pub async fn plain_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    apply_json(&api, name, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).await;
}

/// Merges `labels` into the labels of namespace `ns` (null removes one).
pub async fn relabel(client: &Client, ns: &str, labels: serde_json::Value) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(ns, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": labels}})))
        .await
        .expect("relabel");
}

/// ServiceAccount `namespace/name`, retried until its namespace accepts it.
pub async fn service_account(client: &Client, namespace: &str, name: &str) {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("ServiceAccount {namespace}/{name} is created"), || async {
        let sa =
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}});
        api.patch(name, &PatchParams::apply("kube-lighthouse-tests"), &Patch::Apply(sa)).await.is_ok()
    })
    .await;
}

/// An authorization as JSON: (principalId, principalType or "", roleDefinitionId).
pub fn authorization(principal: &str, kind: &str, role: &str) -> serde_json::Value {
    let mut a = json!({"principalId": principal, "roleDefinitionId": role});
    if !kind.is_empty() {
        a["principalType"] = json!(kind);
    }
    a
}

/// RegistrationDefinition `namespace/name` by `tenant` with `authorizations`.
pub async fn definition(
    client: &Client,
    namespace: &str,
    name: &str,
    tenant: &str,
    authorizations: Vec<serde_json::Value>,
) {
    let api: Api<RegistrationDefinition> = Api::namespaced(client.clone(), namespace);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"registrationDefinitionName": format!("{name} offer"), "managedByTenantId": tenant, "authorizations": authorizations},
    });
    apply_json(&api, name, body).await;
}

/// RegistrationAssignment `namespace/name` of `definition`.
pub async fn assignment(client: &Client, namespace: &str, name: &str, definition: &str) {
    let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), namespace);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationAssignment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"registrationDefinitionRef": {"name": definition}},
    });
    apply_json(&api, name, body).await;
}

/// Deletes `name`; gone already is fine.
pub async fn delete<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!("delete {name}: {e}"),
    }
}
