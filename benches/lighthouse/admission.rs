//! Phase 7: what the admission webhook's authority check (seed 003) costs the author of a
//! delegation, on a subscription with [`RESOURCE_GROUPS`] resource groups (issue 19: the
//! answer must come well inside the webhook's 10 s timeout).
//!
//! Three authors apply the same subscription-level assignment (server-side dry run, so the
//! webhook judges it and nothing is stored):
//! - a **namespace admin**, bound to the `admin` ClusterRole (and to writing delegations) by a
//!   RoleBinding in each of the 51 namespaces: it may not `bind` the catalog's ClusterRoles,
//!   so the webhook asks about every permission of every delegated role in every namespace
//!   until the first it lacks (the most SubjectAccessReviews one request can cost);
//! - a **namespace cluster-admin**, bound to `cluster-admin` by a RoleBinding in each
//!   namespace: it holds everything there, one question per namespace says so;
//! - a **binder**, who may also `bind` the catalog's ClusterRoles.
//!
//! Each request's round trip is measured whether the webhook admits or refuses it.
//!
//! The controller (release binary, webhook on) runs as the benchmark's impersonated user, so
//! the audit log counts the SubjectAccessReviews it sends per request.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, PostParams};
use kube_lighthouse::api::{RegistrationAssignment, RegistrationDefinition};
use serde_json::json;

use crate::common::client_as;
use crate::common::webhook::Deployed;
use crate::objects::{assignment_of, create_namespaces, definition_of, retry};
use crate::phases::Bench;
use crate::probe::Team;
use crate::report::{latency_summary, say, Admission, AdmissionCase};
use crate::POST;

/// Resource groups of the subscription the authors delegate (issue 19 asks for 50).
pub const RESOURCE_GROUPS: usize = 50;
/// The subscription namespace; its resource groups are `{SUBSCRIPTION}-rg-NN`.
const SUBSCRIPTION: &str = "bench-admission";
/// Unmeasured requests before each author's measured ones.
const WARM_UP: usize = 3;

/// Phase 7: the webhook's answer time for each author, over `--reps` dry-run creates.
pub async fn admission(bench: &mut Bench, team: &Team) -> Admission {
    let client = &bench.client;
    create_namespaces(client, &[SUBSCRIPTION.to_string()], true, 1).await;
    let groups: Vec<String> = (0..RESOURCE_GROUPS).map(|i| format!("{SUBSCRIPTION}-rg-{i:02}")).collect();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in &groups {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": {
            "kubelighthouse.io/bench": "true", "kubelighthouse.io/subscription": SUBSCRIPTION}}}))
        .expect("namespace");
        retry(|| namespaces.create(&POST, &ns)).await;
    }
    let scope: Vec<String> = std::iter::once(SUBSCRIPTION.to_string()).chain(groups).collect();

    // What both authors may do: write delegations, and everything inside each namespace.
    apply_cluster_role(
        client,
        "bench-delegator",
        json!([{"apiGroups": ["managedservices.kubelighthouse.io"],
            "resources": ["registrationassignments", "registrationdefinitions"], "verbs": ["get", "list", "create"]}]),
    )
    .await;
    apply_cluster_role(
        client,
        "bench-binder",
        json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"]}]),
    )
    .await;
    let bindings = |ns: &str| -> Api<RoleBinding> { Api::namespaced(client.clone(), ns) };
    for ns in &scope {
        for (user, role) in [
            ("bench-admin", "admin"),
            ("bench-admin", "bench-delegator"),
            ("bench-owner", "cluster-admin"),
            ("bench-binder", "cluster-admin"),
        ] {
            let binding: RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": format!("{user}-{role}"), "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            }))
            .expect("rolebinding");
            let api = bindings(ns);
            retry(|| api.create(&POST, &binding)).await;
        }
    }
    let binder: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "bench-binder"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-binder"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench-binder"}],
    }))
    .expect("clusterrolebinding");
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    retry(|| cluster_bindings.create(&POST, &binder)).await;

    // The definition the assignments reference, written by the admin.
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), SUBSCRIPTION);
    let definition = definition_of(SUBSCRIPTION, "contoso", team);
    retry(|| definitions.create(&POST, &definition)).await;

    let _deployed = Deployed::start(&bench.controller_config, true);
    let namespace_admin = measure(bench, "bench-admin").await;
    say(&format!("admission (namespace admin, {} namespaces): {namespace_admin:?}", scope.len()));
    let namespace_cluster_admin = measure(bench, "bench-owner").await;
    say(&format!("admission (namespace cluster-admin, {} namespaces): {namespace_cluster_admin:?}", scope.len()));
    let binder = measure(bench, "bench-binder").await;
    say(&format!("admission (binder, {} namespaces): {binder:?}", scope.len()));
    Admission { namespaces: scope.len(), namespace_admin, namespace_cluster_admin, binder }
}

async fn apply_cluster_role(client: &kube::Client, name: &str, rules: serde_json::Value) {
    let role: ClusterRole =
        serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).expect("clusterrole");
    let api: Api<ClusterRole> = Api::all(client.clone());
    retry(|| api.create(&POST, &role)).await;
}

/// The webhook's answer to one request: admitted, refused by it, or no answer in time (the
/// API server's call timed out, or the webhook was not up yet, or still listing: its "caches
/// are not synced yet" refusal is no judgement of the request).
fn answer(result: &Result<RegistrationAssignment, kube::Error>) -> Option<bool> {
    match result {
        Ok(_) => Some(true),
        Err(kube::Error::Api(e)) if e.message.contains("not synced") => None,
        Err(kube::Error::Api(e)) if e.message.contains("denied the request") => Some(false),
        Err(_) => None,
    }
}

/// `--reps` dry-run creates of the subscription's assignment by `author`, after [`WARM_UP`]
/// unmeasured ones (the first of which also waits for the webhook to answer).
async fn measure(bench: &mut Bench, author: &str) -> AdmissionCase {
    let client = client_as(author, &[]).await;
    let api: Api<RegistrationAssignment> = Api::namespaced(client, SUBSCRIPTION);
    let assignment = assignment_of(SUBSCRIPTION, "contoso");
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let started = Instant::now();
    let mut first = api.create(&dry_run, &assignment).await;
    while answer(&first).is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            say(&format!("the webhook never answered {author} within its timeout"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        first = api.create(&dry_run, &assignment).await;
    }
    if let Err(e) = &first {
        say(&format!("admission ({author}): {e}"));
    }
    for _ in 1..WARM_UP {
        let _ = api.create(&dry_run, &assignment).await;
    }
    bench.audit.drain();
    let (mut samples, mut admitted, mut refused, mut timed_out) = (Vec::with_capacity(bench.args.reps), 0, 0, 0);
    for _ in 0..bench.args.reps {
        let sent = Instant::now();
        match answer(&api.create(&dry_run, &assignment).await) {
            Some(true) => admitted += 1,
            Some(false) => refused += 1,
            None => timed_out += 1,
        }
        samples.push(sent.elapsed());
    }
    let reviews = bench.audit.count("create", "subjectaccessreviews");
    AdmissionCase {
        admitted,
        refused,
        timed_out,
        access_reviews_per_request: reviews as f64 / bench.args.reps.max(1) as f64,
        latency: latency_summary(samples),
    }
}
