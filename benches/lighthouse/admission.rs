//! Phase 7: what the admission webhook's authority check (seed 003) costs the author of a
//! delegation, on a subscription with [`RESOURCE_GROUPS`] resource groups (issue 19: the
//! answer must come well inside the webhook's 10 s timeout).
//!
//! Two authors apply the same subscription-level assignment (server-side dry run, so the
//! webhook judges it and nothing is stored):
//! - a **namespace owner**, bound to `cluster-admin` by a RoleBinding in each of the 51
//!   namespaces: it holds every permission there but may not `bind` the catalog's
//!   ClusterRoles, so the webhook asks about every permission of every delegated role in every
//!   namespace (the most SubjectAccessReviews one request can cost);
//! - a **binder**, who may also `bind` the catalog's ClusterRoles: one question per namespace
//!   and one per role.
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
        for (user, role) in
            [("bench-owner", "cluster-admin"), ("bench-owner", "bench-delegator"), ("bench-binder", "cluster-admin")]
        {
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
    let owner = measure(bench, "bench-owner").await;
    say(&format!("admission (namespace owner, {} namespaces): {owner:?}", scope.len()));
    let binder = measure(bench, "bench-binder").await;
    say(&format!("admission (binder, {} namespaces): {binder:?}", scope.len()));
    Admission { namespaces: scope.len(), namespace_owner: owner, binder }
}

async fn apply_cluster_role(client: &kube::Client, name: &str, rules: serde_json::Value) {
    let role: ClusterRole =
        serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).expect("clusterrole");
    let api: Api<ClusterRole> = Api::all(client.clone());
    retry(|| api.create(&POST, &role)).await;
}

/// `--reps` dry-run creates of the subscription's assignment by `author`, after [`WARM_UP`]
/// unmeasured ones (the first of which also waits for the webhook to answer).
async fn measure(bench: &mut Bench, author: &str) -> AdmissionCase {
    let client = client_as(author, &[]).await;
    let api: Api<RegistrationAssignment> = Api::namespaced(client, SUBSCRIPTION);
    let assignment = assignment_of(SUBSCRIPTION, "contoso");
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let started = Instant::now();
    loop {
        match api.create(&dry_run, &assignment).await {
            Ok(_) => break,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(120), "the webhook never admitted {author}: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    for _ in 1..WARM_UP {
        api.create(&dry_run, &assignment).await.expect("warm-up admitted");
    }
    bench.audit.drain();
    let mut samples = Vec::with_capacity(bench.args.reps);
    for _ in 0..bench.args.reps {
        let sent = Instant::now();
        if let Err(e) = api.create(&dry_run, &assignment).await {
            panic!("{author}'s assignment was refused: {e}");
        }
        samples.push(sent.elapsed());
    }
    let reviews = bench.audit.count("create", "subjectaccessreviews");
    AdmissionCase {
        access_reviews_per_request: reviews as f64 / bench.args.reps.max(1) as f64,
        latency: latency_summary(samples),
    }
}
