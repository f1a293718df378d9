//! Phase 9: revocation at scale (issue 31), run alone with `--only-revocation`.
//! - **restart with rejected assignments**: `--revoke-n` delegations in force, and
//!   `--filler-bindings` RoleBindings that are not the controller's (a cluster's own RBAC: a
//!   list across the cluster reads them all), the controller restarted, and the time until
//!   every delegation is reconciled; then `--rejected-n` assignments that name no definition
//!   (Failed, `DefinitionNotFound`) added, and the restart timed again. A rejection revokes
//!   whatever the assignment may hold, so the second restart pays for however a rejection
//!   finds that out.
//! - **mass deletion**: every one of the `--revoke-n` definitions deleted at once (64
//!   deletes in flight, as a teardown script or `kubectl delete --all` would), and the time
//!   until the last RoleBinding the controller wrote for them is gone (the last grant), and
//!   until the team's identity is denied in each of a sample of namespaces spread over all.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams};
use kube::Client;
use kube_lighthouse::api::{ProvisioningState, RegistrationAssignment, RegistrationDefinition};
use serde::Serialize;

use crate::controller::ControllerProcess;
use crate::objects::{assignment_of, create_namespaces, onboard, retry, until_succeeded};
use crate::probe::{verdict, Team};
use crate::report::{latency_summary, round3, say, LatencySummary};
use crate::GIVE_UP;

/// Namespaces whose revocation is timed by SubjectAccessReview.
const SAMPLE: usize = 20;
/// Deletes the harness has in flight during the mass deletion.
const DELETES_IN_FLIGHT: usize = 64;

/// Phase 9's figures.
#[derive(Debug, Serialize)]
pub struct Revocation {
    /// Delegations in force (one definition and assignment each).
    pub delegations: usize,
    /// Assignments that name no definition, added for the second restart.
    pub rejected: usize,
    /// RoleBindings in the cluster that are not the controller's.
    pub filler_bindings: usize,
    /// Restart with the delegations alone: until every definition and assignment is reconciled.
    pub restart_without_rejected_s: f64,
    /// The same with the rejected assignments as well.
    pub restart_with_rejected_s: f64,
    /// Every definition deleted at once → the last of the controller's RoleBindings gone.
    pub mass_deletion_last_binding_gone_s: f64,
    /// The same → the team's identity denied, in each of a sample of namespaces.
    pub mass_deletion_sample_denied: LatencySummary,
    /// The same → every assignment gone (their finalizers done).
    pub mass_deletion_all_assignments_gone_s: f64,
    /// The controller's CPU seconds over the whole phase (every process).
    pub controller_cpu_s: f64,
}

async fn reconciled(controller: &ControllerProcess, kind: &str) -> usize {
    controller.metric("kube_lighthouse_reconcile_duration_seconds_count", &format!("controller=\"{kind}\"")).await
        as usize
}

/// Starts a controller and times it until `assignments` and `definitions` are reconciled.
async fn restart(
    config: &Path,
    log: &Path,
    concurrency: usize,
    assignments: usize,
    definitions: usize,
) -> (Duration, ControllerProcess) {
    let started = Instant::now();
    let mut controller = ControllerProcess::start(config, log, concurrency);
    controller.wait_ready().await;
    while reconciled(&controller, "assignment").await < assignments
        || reconciled(&controller, "definition").await < definitions
    {
        assert!(started.elapsed() < GIVE_UP, "the restarted controller never reconciled everything");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (started.elapsed(), controller)
}

async fn count_failed(client: &Client) -> usize {
    let api: Api<RegistrationAssignment> = Api::all(client.clone());
    api.list(&ListParams::default()).await.map_or(0, |l| {
        l.items
            .iter()
            .filter(|a| a.status.as_ref().and_then(|s| s.provisioning_state) == Some(ProvisioningState::Failed))
            .count()
    })
}

async fn our_bindings(client: &Client) -> Option<usize> {
    let api: Api<RoleBinding> = Api::all(client.clone());
    let params = ListParams::default().labels("app.kubernetes.io/managed-by=kube-lighthouse");
    api.list_metadata(&params).await.ok().map(|l| l.items.len())
}

/// `count` RoleBindings that are not the controller's, spread over 10 namespaces.
async fn filler(client: &Client, count: usize, concurrency: usize) {
    let namespaces: Vec<String> = (0..10).map(|i| format!("bench-filler-{i}")).collect();
    create_namespaces(client, &namespaces, false, concurrency).await;
    stream::iter(0..count)
        .for_each_concurrent(2 * concurrency, |i| {
            let ns = &namespaces[i % namespaces.len()];
            async move {
                let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
                let binding: RoleBinding = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("filler-{i:06}"), "labels": {"team": "platform"}},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("user-{i}")}]}))
                .expect("binding");
                retry(|| api.create(&crate::POST, &binding)).await;
            }
        })
        .await;
}

/// Phase 9 (see the module docs).
pub async fn revocation(
    client: &Client,
    config: &Path,
    workdir: &Path,
    (n, rejected, fillers): (usize, usize, usize),
    concurrency: usize,
) -> Revocation {
    let team = Team::new(9);
    let subs: Vec<String> = (0..n).map(|i| format!("bench-rev-{i:05}")).collect();
    create_namespaces(client, &subs, true, concurrency).await;
    let started = Instant::now();
    filler(client, fillers, concurrency).await;
    say(&format!("{fillers} RoleBindings of the cluster's own after {:?}", started.elapsed()));
    let mut controller = ControllerProcess::start(config, &workdir.join("controller-revocation-1.log"), concurrency);
    controller.wait_ready().await;
    let started = Instant::now();
    onboard(client, &subs, &team, concurrency).await;
    until_succeeded(client, n).await;
    say(&format!("{n} delegations in force after {:?}", started.elapsed()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut cpu = controller.cpu_seconds();
    controller.stop();

    let (without, controller) = restart(config, &workdir.join("controller-revocation-2.log"), concurrency, n, n).await;
    say(&format!("restart with {n} delegations: all reconciled after {without:?}"));
    let orphans: Vec<String> = (0..rejected).map(|i| format!("bench-rej-{i:05}")).collect();
    create_namespaces(client, &orphans, true, concurrency).await;
    stream::iter(&orphans)
        .for_each_concurrent(concurrency, |ns| async move {
            let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), ns);
            let assignment = assignment_of(ns, "nowhere");
            retry(|| api.create(&crate::POST, &assignment)).await;
        })
        .await;
    while count_failed(client).await < rejected {
        assert!(started.elapsed() < GIVE_UP, "the assignments without a definition never all failed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    say(&format!("{rejected} rejected assignments in the cluster"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    cpu += controller.cpu_seconds();
    controller.stop();
    let (with, controller) =
        restart(config, &workdir.join("controller-revocation-3.log"), concurrency, n + rejected, n).await;
    say(&format!("restart with {n} delegations and {rejected} rejected: all reconciled after {with:?}"));
    tokio::time::sleep(Duration::from_secs(5)).await;

    let sample: Vec<&String> = (0..SAMPLE).map(|i| &subs[i * (n - 1) / (SAMPLE - 1).max(1)]).collect();
    let started = Instant::now();
    let deletes = async {
        stream::iter(&subs)
            .for_each_concurrent(DELETES_IN_FLIGHT, |ns| async move {
                let api: Api<RegistrationDefinition> = Api::namespaced(client.clone(), ns);
                let params = DeleteParams::default();
                retry(|| api.delete("contoso", &params)).await;
            })
            .await
    };
    let last_binding = async {
        loop {
            if our_bindings(client).await == Some(0) {
                return started.elapsed();
            }
            assert!(started.elapsed() < GIVE_UP, "the mass deletion's bindings never all went");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let denied = stream::iter(sample)
        .map(|ns| {
            let probe = team.engineers_may_list_pods(ns);
            async move {
                loop {
                    if verdict(client, &probe).await == Some(false) {
                        return started.elapsed();
                    }
                    assert!(started.elapsed() < GIVE_UP, "{probe:?} never denied");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
        .buffer_unordered(SAMPLE)
        .collect::<Vec<_>>();
    let ((), last_binding, denied) = tokio::join!(deletes, last_binding, denied);
    let assignments: Api<RegistrationAssignment> = Api::all(client.clone());
    loop {
        let left = assignments.list_metadata(&ListParams::default()).await.map_or(usize::MAX, |l| {
            l.items
                .iter()
                .filter(|a| a.metadata.namespace.as_deref().is_some_and(|ns| ns.starts_with("bench-rev-")))
                .count()
        });
        if left == 0 {
            break;
        }
        assert!(started.elapsed() < GIVE_UP, "the assignments were never all removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_gone = started.elapsed();
    say(&format!(
        "mass deletion of {n}: last binding gone after {last_binding:?}, every assignment after {all_gone:?}"
    ));
    cpu += controller.cpu_seconds();
    Revocation {
        delegations: n,
        rejected,
        filler_bindings: fillers,
        restart_without_rejected_s: round3(without.as_secs_f64()),
        restart_with_rejected_s: round3(with.as_secs_f64()),
        mass_deletion_last_binding_gone_s: round3(last_binding.as_secs_f64()),
        mass_deletion_sample_denied: latency_summary(denied),
        mass_deletion_all_assignments_gone_s: round3(all_gone.as_secs_f64()),
        controller_cpu_s: round3(cpu),
    }
}
