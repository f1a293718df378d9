//! Waiting and reading back: polling until a condition holds (within [`PATIENCE`]), and what
//! the controller reported or holds: statuses, Warning Events, managed Roles and bindings,
//! the managed-by-tenants annotation.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::Client;
use kube_lighthouse::api::RegistrationAssignment;

/// How long an eventually-true condition may take before the test fails. Generous: this is
/// correctness on a loaded 2-core machine, not a latency measurement (see the benchmarks).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls until `check` holds, or fails the test with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `fetch` until `done` holds and returns that value; on timeout the test fails showing
/// the last value seen.
pub async fn poll<T, F, Fut>(what: &str, mut fetch: F, done: impl Fn(&T) -> bool) -> T
where
    T: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let value = fetch().await;
        if done(&value) {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}; last seen: {value:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The status of assignment `namespace/name`, if it exists and has one.
pub async fn assignment_status(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Option<kube_lighthouse::api::RegistrationAssignmentStatus> {
    let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name).await.expect("get assignment").and_then(|a| a.status)
}

/// Waits until the assignment reports `state` and returns its status.
pub async fn wait_for_assignment_state(
    client: &Client,
    namespace: &str,
    name: &str,
    state: &str,
) -> kube_lighthouse::api::RegistrationAssignmentStatus {
    eventually(&format!("assignment {namespace}/{name} is {state}"), || async {
        assignment_status(client, namespace, name)
            .await
            .and_then(|s| s.provisioning_state)
            .is_some_and(|p| p.as_str() == state)
    })
    .await;
    assignment_status(client, namespace, name).await.expect("status")
}

/// Warning Events recorded for an object, as (reason, note).
pub async fn warning_events(client: &Client, namespace: &str, name: &str) -> Vec<(String, String)> {
    warnings_about(client, namespace, |r| r.name.as_deref() == Some(name)).await
}

/// Warning Events in `namespace` whose regarding object `is_it`, as (reason, note).
pub async fn warnings_about(
    client: &Client,
    namespace: &str,
    is_it: impl Fn(&k8s_openapi::api::core::v1::ObjectReference) -> bool,
) -> Vec<(String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    let events = api.list(&Default::default()).await.expect("list events");
    events
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().is_some_and(&is_it) && e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Roles and RoleBindings the controller holds for anything in `namespace`.
pub async fn managed_objects(client: &Client, namespace: &str) -> usize {
    let selector = kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=kube-lighthouse");
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), namespace);
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::namespaced(client.clone(), namespace);
    roles.list(&selector).await.expect("roles").items.len()
        + bindings.list(&selector).await.expect("bindings").items.len()
}

/// Names of every Role in `ns`, ours or not.
pub async fn roles_of(client: &Client, ns: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), ns);
    api.list(&Default::default()).await.expect("roles").items.into_iter().filter_map(|r| r.metadata.name).collect()
}

/// The `kubelighthouse.io/managed-by-tenants` annotation of namespace `ns`, if any.
pub async fn managed_by_tenants(client: &Client, ns: &str) -> Option<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    api.get(ns)
        .await
        .expect("namespace")
        .metadata
        .annotations
        .and_then(|a| a.get("kubelighthouse.io/managed-by-tenants").cloned())
}
