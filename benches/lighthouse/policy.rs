//! Phase 8: onboarding at scale by an `Onboarding` (docs/onboarding.md). `--policy-n`
//! subscription namespaces labelled `kubelighthouse.io/bench-onboard: "true"`, one onboarding
//! selecting them (the benchmark team's delegation as its template), then, with all of them
//! onboarded and every assignment Succeeded (the controller settled):
//! - **new namespace → working access**: a new labelled subscription namespace is created,
//!   and the time until the team's first identity is allowed to list pods there
//!   (SubjectAccessReview), over `--policy-reps` namespaces;
//! - **opt-out → revoked**: one of those is labelled `kubelighthouse.io/onboarding-opt-out`,
//!   and the time until that identity is denied;
//! - **leaving the selector → revoked**: another has its `bench-onboard` label changed;
//! - **deletion → revoked**: the onboarding is deleted, and the time until the identity is
//!   denied in each of a sample of namespaces spread over all of them, and until every
//!   object the onboarding created is gone.

use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;
use kube_lighthouse::api::{Onboarding, RegistrationAssignment, RegistrationDefinition};
use serde_json::json;

use crate::common::MSP_TENANT;
use crate::objects::{retry, until_succeeded};
use crate::probe::{verdict, Probe, Team};
use crate::report::{latency_summary, round3, say, PolicyOnboarding};
use crate::{GIVE_UP, POST};

const NAME: &str = "bench-onboarding";
const SELECTED: &str = "kubelighthouse.io/bench-onboard";
/// Namespaces whose revocation is timed when the onboarding is deleted.
const DELETE_SAMPLE: usize = 20;

fn customer_tenant(i: usize) -> String {
    format!("00000000-0000-4000-9000-{:012x}", 0xb0_0000 + i)
}

async fn create_labelled(client: &Client, name: &str, i: usize) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": {
        "kubelighthouse.io/bench": "true", "kubelighthouse.io/tenant-id": customer_tenant(i), SELECTED: "true"}}}))
    .expect("namespace");
    retry(|| api.create(&POST, &ns)).await;
}

async fn relabel(client: &Client, name: &str, labels: serde_json::Value) {
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = Patch::Merge(json!({"metadata": {"labels": labels}}));
    let params = PatchParams::default();
    retry(|| api.patch(name, &params, &patch)).await;
}

/// Polls `probe` until it gets `expected`; the time since `since`.
async fn until(client: &Client, probe: &Probe, expected: bool, since: Instant) -> Duration {
    loop {
        if verdict(client, probe).await == Some(expected) {
            return since.elapsed();
        }
        assert!(since.elapsed() < GIVE_UP, "{probe:?} never got {expected}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn onboarded(client: &Client) -> i32 {
    let api: Api<Onboarding> = Api::all(client.clone());
    api.get_opt(NAME).await.ok().flatten().and_then(|o| o.status).map_or(0, |s| s.onboarded)
}

async fn created(client: &Client) -> usize {
    let params = ListParams::default().labels(&format!("kubelighthouse.io/onboarding={NAME}"));
    let d = Api::<RegistrationDefinition>::all(client.clone())
        .list_metadata(&params)
        .await
        .map_or(usize::MAX, |l| l.items.len());
    let a = Api::<RegistrationAssignment>::all(client.clone())
        .list_metadata(&params)
        .await
        .map_or(usize::MAX, |l| l.items.len());
    d.saturating_add(a)
}

/// Phase 8 (see the module docs).
pub async fn policy_onboarding(client: &Client, n: usize, reps: usize, concurrency: usize) -> PolicyOnboarding {
    let team = Team::new(8);
    let names: Vec<String> = (0..n).map(|i| format!("bench-onb-{i:05}")).collect();
    stream::iter(names.iter().enumerate())
        .for_each_concurrent(concurrency, |(i, ns)| create_labelled(client, ns, i))
        .await;
    say(&format!("{n} labelled subscription namespaces exist"));
    let onboarding: Onboarding = serde_json::from_value(json!({
        "apiVersion": "policy.kubelighthouse.io/v1alpha1", "kind": "Onboarding", "metadata": {"name": NAME},
        "spec": {"namespaceSelector": {"matchLabels": {SELECTED: "true"}},
            "definition": {"registrationDefinitionName": "Contoso managed services", "managedByTenantId": MSP_TENANT,
                "authorizations": team.authorizations()}}}))
    .expect("onboarding");
    let api: Api<Onboarding> = Api::all(client.clone());
    let started = Instant::now();
    retry(|| api.create(&POST, &onboarding)).await;
    while (onboarded(client).await as usize) < n {
        assert!(started.elapsed() < GIVE_UP, "the onboarding never onboarded {n} namespaces");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bulk = started.elapsed();
    say(&format!("{n} namespaces onboarded after {bulk:?}"));
    // The latencies are taken from a settled controller: every assignment Succeeded (its RBAC
    // in force and its status written), not only every object created.
    until_succeeded(client, n).await;
    let settled = started.elapsed();
    say(&format!("{n} assignments Succeeded after {settled:?}"));
    let last = team.engineers_may_list_pods(&names[n - 1]);
    until(client, &last, true, Instant::now()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let (mut grants, mut opt_outs, mut departures) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps + 2 {
        let (opting, leaving) = (format!("bench-onb-new-{rep:03}-a"), format!("bench-onb-new-{rep:03}-b"));
        let started = Instant::now();
        create_labelled(client, &opting, n + 2 * rep).await;
        let grant = until(client, &team.engineers_may_list_pods(&opting), true, started).await;
        create_labelled(client, &leaving, n + 2 * rep + 1).await;
        until(client, &team.engineers_may_list_pods(&leaving), true, Instant::now()).await;
        let started = Instant::now();
        relabel(client, &opting, json!({"kubelighthouse.io/onboarding-opt-out": "true"})).await;
        let opt_out = until(client, &team.engineers_may_list_pods(&opting), false, started).await;
        let started = Instant::now();
        relabel(client, &leaving, json!({SELECTED: "no"})).await;
        let departure = until(client, &team.engineers_may_list_pods(&leaving), false, started).await;
        // Two warm-up repetitions.
        if rep >= 2 {
            grants.push(grant);
            opt_outs.push(opt_out);
            departures.push(departure);
        }
    }
    let new_namespace = latency_summary(grants);
    say(&format!("new namespace → access: {}", crate::report::json(&new_namespace)));

    let sample: Vec<&String> = (0..DELETE_SAMPLE).map(|i| &names[i * (n - 1) / (DELETE_SAMPLE - 1).max(1)]).collect();
    let started = Instant::now();
    let params = DeleteParams::default();
    retry(|| api.delete(NAME, &params)).await;
    let revoked: Vec<Duration> = stream::iter(sample)
        .map(|ns| {
            let probe = team.engineers_may_list_pods(ns);
            async move { until(client, &probe, false, started).await }
        })
        .buffer_unordered(DELETE_SAMPLE)
        .collect()
        .await;
    let all_revoked = revoked.iter().max().copied().unwrap_or_default();
    while created(client).await > 0 {
        assert!(started.elapsed() < GIVE_UP, "the onboarding's objects were never all removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_removed = started.elapsed();
    say(&format!("deleted: sample revoked after at most {all_revoked:?}, every object gone after {all_removed:?}"));
    PolicyOnboarding {
        namespaces: n,
        bulk_onboarded_s: round3(bulk.as_secs_f64()),
        bulk_succeeded_s: round3(settled.as_secs_f64()),
        new_namespace_access: new_namespace,
        opt_out_revoked: latency_summary(opt_outs),
        left_selector_revoked: latency_summary(departures),
        deleted_sample_revoked: latency_summary(revoked),
        deleted_all_objects_removed_s: round3(all_removed.as_secs_f64()),
    }
}
