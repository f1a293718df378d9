//! The chart as users install it, on a real node (`hack/control-plane.sh up --node`, with the
//! image of `hack/image.sh --load`): `helm install` with only the image's repository and tag
//! set, into a namespace that enforces the `restricted` Pod Security profile; then, with real
//! tokens of both managing tenants' issuers, everything a platform team relies on:
//!
//! - both pods Ready, one leader (the Lease), a delegation granted and checked with real
//!   requests, a bad delegation refused at apply by the webhook through its Service, the views
//!   through the APIService, filtered per caller;
//! - the leader pod deleted, then (separately) its container SIGKILLed: a new leader reconciles
//!   a new delegation, and access is sampled with real requests throughout;
//! - `helm upgrade` to another image tag with 200 live delegations: no access lost at any
//!   sample, no apply refused but for a real rule, the webhook certificate unchanged;
//! - eviction (as `kubectl drain` does it) held by the PodDisruptionBudget;
//! - uninstall as docs/install.md describes it: nothing left granted, nothing stuck.
//!
//! The figures (failover, upgrade) are printed; docs/reliability.md records them. One test, as
//! every step acts on the one release; `hack/test.sh` runs it in its node phase.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::stream::{self, StreamExt};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kl_token_issuer::TokenRequest;
use kube::api::{Api, DeleteParams, ListParams};
use kube::Client;
use kube_lighthouse::api::view::Customer;
use kube_lighthouse::api::{RegistrationAssignment, RegistrationDefinition};
use serde_json::json;

const RELEASE: &str = "kube-lighthouse";
const RELEASE_NAMESPACE: &str = "kube-lighthouse";
const REPOSITORY: &str = "ghcr.io/kube-lighthouse/kube-lighthouse";
/// The second tag of the same image, for `helm upgrade`: hack/test.sh loads it with
/// `hack/image.sh --tag e2e-upgrade --load`.
const UPGRADE_TAG: &str = "e2e-upgrade";
const PODS: &str = "app.kubernetes.io/name=kube-lighthouse,app.kubernetes.io/component=controller";
/// How long a new leader may take to reconcile a new delegation.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);
/// Live delegations during `helm upgrade`.
const LIVE_DELEGATIONS: usize = 200;

const CONTOSO_ENGINEERS: &str = "00000000-0000-0000-0000-0000000e2ea1";
const CONTOSO_ON_CALL: &str = "00000000-0000-0000-0000-0000000e2eb2";
const FABRIKAM_ENGINEERS: &str = "00000000-0000-0000-0000-0000000e2ec3";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

// --- the node and the release ------------------------------------------------------------------

/// The test cluster's kubeconfig, after checking that it has a Ready node: without one the
/// chart's pods never run, so this fails (it never skips).
fn node_cluster() -> PathBuf {
    let path = std::env::var_os("KL_TEST_KUBECONFIG").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "the node suite needs a cluster with a node: hack/control-plane.sh up --node, hack/image.sh --load \
             (and --tag {UPGRADE_TAG} --load), then KL_TEST_KUBECONFIG (`hack/test.sh` does it all)"
        )
    });
    let ready = Command::new("kubectl")
        .env("KUBECONFIG", &path)
        .args([
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        ])
        .output()
        .expect("kubectl");
    let text = String::from_utf8_lossy(&ready.stdout);
    assert!(
        ready.status.success() && text.lines().any(|l| l == "True"),
        "no Ready node in the cluster of {}: run hack/control-plane.sh up --node (`hack/test.sh` \
         does): {text}{}",
        path.display(),
        String::from_utf8_lossy(&ready.stderr)
    );
    path
}

fn helm_binary() -> PathBuf {
    let out =
        Command::new(repo().join("hack/install-helm.sh")).stderr(Stdio::inherit()).output().expect("install-helm");
    assert!(out.status.success(), "hack/install-helm.sh failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// What the cluster says about the release's pods, for a failed step's message.
fn diagnose(kubeconfig: &Path) -> String {
    let mut text = String::new();
    for args in [
        vec!["get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide"],
        vec!["get", "events", "-n", RELEASE_NAMESPACE, "--sort-by=.lastTimestamp"],
    ] {
        let out = Command::new("kubectl").env("KUBECONFIG", kubeconfig).args(&args).output().expect("kubectl");
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    text
}

/// `helm ARGS` against the cluster; on failure, the test fails with the pods and events.
fn helm(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new(helm_binary()).env("KUBECONFIG", kubeconfig).args(args).output().expect("helm");
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        diagnose(kubeconfig)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn app_version() -> String {
    let chart = std::fs::read_to_string(repo().join("charts/kube-lighthouse/Chart.yaml")).expect("Chart.yaml");
    let chart: serde_yaml::Value = serde_yaml::from_str(&chart).expect("yaml");
    chart["appVersion"].as_str().expect("appVersion").to_string()
}

/// `helm upgrade --install` of the chart as shipped, with only the image's repository and tag.
fn install(kubeconfig: &Path, tag: &str) {
    let chart = repo().join("charts/kube-lighthouse");
    let (repository, tag) = (format!("image.repository={REPOSITORY}"), format!("image.tag={tag}"));
    helm(
        kubeconfig,
        &[
            "upgrade",
            "--install",
            RELEASE,
            &chart.to_string_lossy(),
            "-n",
            RELEASE_NAMESPACE,
            "--set",
            &repository,
            "--set",
            &tag,
            "--wait",
            "--timeout",
            "180s",
        ],
    );
}

/// `helm upgrade --install` of a packaged chart (a release's `.tgz`) with its values as shipped:
/// the image is the chart's own, `REPOSITORY:appVersion`.
fn install_packaged(kubeconfig: &Path, chart: &Path) {
    let chart = chart.to_string_lossy();
    helm(
        kubeconfig,
        &["upgrade", "--install", RELEASE, &chart, "-n", RELEASE_NAMESPACE, "--wait", "--timeout", "180s"],
    );
}

/// The image every controller pod runs; fails unless they all run `image`.
async fn all_pods_run(admin: &Client, image: &str) {
    for pod in controller_pods(admin).await {
        let running = pod.spec.and_then(|s| s.containers.first().and_then(|c| c.image.clone())).unwrap_or_default();
        assert_eq!(running, image, "pod {:?} runs another image", pod.metadata.name);
    }
}

fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn controller_pods(admin: &Client) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    pods.list(&ListParams::default().labels(PODS)).await.expect("list pods").items
}

/// Waits until exactly two controller pods exist, both Ready, and returns their names.
async fn two_ready_pods(admin: &Client) -> Vec<String> {
    let pods = poll(
        "two controller pods, both Ready",
        || async { controller_pods(admin).await },
        |pods: &Vec<Pod>| pods.len() == 2 && pods.iter().all(ready),
    )
    .await;
    pods.iter().filter_map(|p| p.metadata.name.clone()).collect()
}

/// Evicts a controller pod through the Eviction API (as `kubectl drain` does), once, without
/// retrying: Ok, or the API server's refusal.
fn evict(kubeconfig: &Path, pod: &str) -> Result<(), String> {
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": pod, "namespace": RELEASE_NAMESPACE}});
    let file = std::env::temp_dir().join(format!("{}.json", unique("eviction")));
    std::fs::write(&file, eviction.to_string()).expect("write the eviction");
    let path = format!("/api/v1/namespaces/{RELEASE_NAMESPACE}/pods/{pod}/eviction");
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["create", "--raw", &path, "-f"])
        .arg(&file)
        .output()
        .expect("kubectl");
    let _ = std::fs::remove_file(&file);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// How often the pod's controller container was restarted.
fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(0, |c| c.restart_count)
}

async fn leader(admin: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    let lease = leases.get_opt("kube-lighthouse").await.expect("get lease")?;
    lease.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty())
}

// --- delegations and real requests -------------------------------------------------------------

/// A delegation of Reader to group `group` of `tenant` in a new subscription namespace.
async fn reader_delegation(admin: &Client, sub: &str, tenant: &str, group: &str) {
    subscription(admin, sub, &tenant_id()).await;
    definition(admin, sub, "offer", tenant, vec![authorization(group, "Group", READER)]).await;
    assignment(admin, sub, "offer", "offer").await;
}

/// A client signed in with its own token as a member of `group` of `tenant`.
async fn member_of(tenant: &str, group: &str) -> Client {
    let token = token(tenant, &TokenRequest::new("00000000-0000-0000-0000-00000000e2e0").group(group))
        .expect("a token issuer for the tenant (hack/control-plane.sh starts them)");
    client_with_token(&token).await
}

/// The managed RoleBindings of `namespace`, as (Role, subjects): a RoleBinding written twice
/// shows up as a repeated entry.
async fn granted(admin: &Client, namespace: &str) -> Vec<String> {
    let api: Api<RoleBinding> = Api::namespaced(admin.clone(), namespace);
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=kube-lighthouse");
    let mut out: Vec<String> = api
        .list(&managed)
        .await
        .expect("rolebindings")
        .items
        .iter()
        .map(|b| {
            let subjects: Vec<String> = b.subjects.iter().flatten().map(|s| format!("{}:{}", s.kind, s.name)).collect();
            format!("{} -> {}", b.role_ref.name, subjects.join(","))
        })
        .collect();
    out.sort();
    out
}

/// Real requests sampled in the background: each sample is a `list pods` with an identity's
/// own token, expected to answer 200 (granted) or 403 (not granted).
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<AtomicUsize>,
    wrong: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(checks: Vec<(Client, String, bool)>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(AtomicUsize::new(0));
        let wrong = Arc::new(std::sync::Mutex::new(Vec::new()));
        let checks = Arc::new(checks);
        let (s, n, w) = (stop.clone(), samples.clone(), wrong.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let round: Vec<(usize, u16)> = stream::iter(0..checks.len())
                    .map(|i| {
                        let checks = checks.clone();
                        async move { (i, list_pods_status(&checks[i].0, &checks[i].1).await) }
                    })
                    .buffer_unordered(16)
                    .collect()
                    .await;
                for (i, status) in round {
                    let (_, ns, expected) = &checks[i];
                    n.fetch_add(1, Ordering::Relaxed);
                    if status != if *expected { 200 } else { 403 } {
                        w.lock().expect("lock").push(format!("{ns}: {status}, expected granted={expected}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Sampler { stop, samples, wrong, task }
    }

    /// Stops sampling; returns the number of samples and the wrong answers.
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("sampler");
        let wrong = self.wrong.lock().expect("lock").clone();
        (self.samples.load(Ordering::Relaxed), wrong)
    }
}

/// The webhook's and the views' TLS material: the Secret's certificate and the CA bundles the
/// API server trusts.
async fn certificates(admin: &Client) -> (String, String, String) {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    let secret = secrets.get(&format!("{RELEASE}-webhook-tls")).await.expect("the webhook's Secret");
    let crt = secret.data.and_then(|d| d.get("tls.crt").map(|b| webhook::base64(&b.0))).expect("tls.crt");
    let hooks: Api<ValidatingWebhookConfiguration> = Api::all(admin.clone());
    let hook = hooks.get(RELEASE).await.expect("the webhook configuration");
    // The distinct CA bundles: a release may add or merge webhooks, never change their CA.
    let bundle = hook
        .webhooks
        .iter()
        .flatten()
        .map(|w| w.client_config.ca_bundle.as_ref().map(|b| webhook::base64(&b.0)).unwrap_or_default())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(",");
    let services: Api<APIService> = Api::all(admin.clone());
    let service = services.get("v1alpha1.view.kubelighthouse.io").await.expect("the views' APIService");
    let views = service.spec.and_then(|s| s.ca_bundle).map(|b| webhook::base64(&b.0)).unwrap_or_default();
    (crt, bundle, views)
}

/// Applies a bad delegation (Owner) in `namespace`: must be refused by the webhook, naming
/// the rule. Returns the error text.
async fn refused_owner(admin: &Client, namespace: &str) -> String {
    let api: Api<RegistrationDefinition> = Api::namespaced(admin.clone(), namespace);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": "owner", "namespace": namespace},
        "spec": {"registrationDefinitionName": "owner", "managedByTenantId": MSP_TENANT,
                 "authorizations": [authorization(CONTOSO_ENGINEERS, "Group", OWNER)]},
    });
    let params = kube::api::PatchParams::apply("kube-lighthouse-tests").force();
    match api.patch("owner", &params, &kube::api::Patch::Apply(body)).await {
        Ok(_) => panic!("a delegation of Owner in {namespace} was admitted"),
        Err(e) => e.to_string(),
    }
}

fn is_rule_refusal(error: &str) -> bool {
    error.contains("denied the request") && error.contains("Owner can never be delegated")
}

/// What [`delegation_scenario`] leaves in force, for the steps after it.
struct Scenario {
    /// Contoso's subscription namespace (Reader for its engineers, Contributor for on-call).
    sub: String,
    /// A resource group of `sub`, under the same delegation.
    rg: String,
    /// Fabrikam's subscription namespace (Reader for its engineers).
    fab: String,
    contoso_client: Client,
    fabrikam_client: Client,
}

/// The delegation scenario a platform team checks after installing: delegations of both
/// managing tenants granted and checked with their own tokens, a bad delegation refused at
/// `kubectl apply` by the webhook through its Service, and the views through the APIService,
/// filtered per caller.
async fn delegation_scenario(admin: &Client, path: &Path) -> Scenario {
    // 2. Delegations of both managing tenants, checked with their own tokens.
    let (sub, rg, fab) = (unique("node-sub"), unique("node-rg"), unique("node-fab"));
    subscription(admin, &sub, &tenant_id()).await;
    resource_group(admin, &rg, &sub).await;
    definition(
        admin,
        &sub,
        "contoso",
        MSP_TENANT,
        vec![authorization(CONTOSO_ENGINEERS, "Group", READER), authorization(CONTOSO_ON_CALL, "User", CONTRIBUTOR)],
    )
    .await;
    assignment(admin, &sub, "contoso", "contoso").await;
    reader_delegation(admin, &fab, OTHER_MSP_TENANT, FABRIKAM_ENGINEERS).await;
    wait_for_assignment_state(admin, &sub, "contoso", "Succeeded").await;
    wait_for_assignment_state(admin, &fab, "offer", "Succeeded").await;
    let engineers = projected(MSP_TENANT, CONTOSO_ENGINEERS);
    let on_call = projected(MSP_TENANT, CONTOSO_ON_CALL);
    let fabrikam = projected(OTHER_MSP_TENANT, FABRIKAM_ENGINEERS);
    for ns in [&sub, &rg] {
        expect_access(admin, "someone", &[&engineers], access("list", "pods", ns), true).await;
        expect_access(admin, "someone", &[&engineers], access("create", "deployments.apps", ns), false).await;
        expect_access(admin, &on_call, &[], access("create", "deployments.apps", ns), true).await;
        expect_access(admin, &on_call, &[], access("get", "secrets", ns), false).await;
        expect_access(admin, "someone", &[&fabrikam], access("list", "pods", ns), false).await;
    }
    expect_access(admin, "someone", &[&fabrikam], access("list", "pods", &fab), true).await;
    expect_access(admin, "someone", &[&engineers], access("list", "pods", &fab), false).await;

    // 3. A bad delegation is refused at apply, by the webhook reached through its Service.
    let out = Command::new("kubectl")
        .env("KUBECONFIG", path)
        .args(["apply", "-f"])
        .arg(repo().join("examples/rejected/owner-role.yaml"))
        .output()
        .expect("kubectl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "kubectl apply of examples/rejected/owner-role.yaml succeeded");
    assert!(
        stderr.contains("denied the request") && stderr.contains("Owner can never be delegated"),
        "not refused by the webhook naming the rule: {stderr}"
    );
    assert!(granted(admin, "rejected-owner-role").await.is_empty(), "a refused delegation granted something");

    // 4. The views, through the APIService and its Service, filtered per caller.
    let contoso_client = member_of(MSP_TENANT, CONTOSO_ENGINEERS).await;
    let fabrikam_client = member_of(OTHER_MSP_TENANT, FABRIKAM_ENGINEERS).await;
    let customer_of = |ns: &str| {
        let namespaces: Api<Namespace> = Api::all(admin.clone());
        let ns = ns.to_string();
        async move {
            let n = namespaces.get(&ns).await.expect("namespace");
            n.metadata.labels.and_then(|l| l.get("kubelighthouse.io/tenant-id").cloned()).expect("tenant label")
        }
    };
    let (contoso_customer, fabrikam_customer) = (customer_of(&sub).await, customer_of(&fab).await);
    for (client, mine, theirs) in [
        (&contoso_client, &contoso_customer, &fabrikam_customer),
        (&fabrikam_client, &fabrikam_customer, &contoso_customer),
    ] {
        eventually("each managing tenant sees its own customer and not the other's", || async {
            let api: Api<Customer> = Api::all(client.clone());
            match api.list(&ListParams::default()).await {
                Ok(list) => {
                    let names: Vec<String> = list.items.iter().filter_map(|c| c.metadata.name.clone()).collect();
                    names.contains(mine) && !names.contains(theirs)
                }
                Err(_) => false,
            }
        })
        .await;
    }

    Scenario { sub, rg, fab, contoso_client, fabrikam_client }
}

// --- the suite ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn the_chart_on_a_node() {
    let started = Instant::now();
    let path = node_cluster();
    let admin = client_for(&path).await;
    let state = path.parent().expect("the state dir").to_path_buf();

    // 1. The release namespace enforces the restricted profile; the chart as shipped.
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let release_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NAMESPACE,
        "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    apply_json(&namespaces, RELEASE_NAMESPACE, release_ns).await;
    let t = Instant::now();
    install(&path, &app_version());
    let install_time = t.elapsed();
    // The CRDs came with the chart; the harness's own apply (kubeconfig()) now only confirms them.
    let _ = kubeconfig();
    let pods = two_ready_pods(&admin).await;
    let first_leader = poll("a leader holds the Lease", || leader(&admin), |l| l.is_some()).await.expect("leader");
    assert!(pods.contains(&first_leader), "the Lease is held by {first_leader}, not by a pod of {pods:?}");
    // Ready pods are not yet a routed Service: kube-proxy programs a new ClusterIP a moment
    // later, and until then the API server's calls to the fail-closed webhook are refused
    // (docs/install.md says to wait for it too).
    let probe = unique("node-probe");
    subscription(&admin, &probe, &tenant_id()).await;
    let routed = Instant::now();
    eventually("the webhook answers through its Service", || async {
        is_rule_refusal(&refused_owner(&admin, &probe).await)
    })
    .await;
    eprintln!(
        "installed and both pods Ready in {install_time:?}; the webhook answered through its Service {:?} later; leader \
         {first_leader}",
        routed.elapsed()
    );

    // 2-4. Delegations granted and checked, a bad one refused, the views filtered per caller.
    let Scenario { sub, rg, fab, contoso_client, fabrikam_client } = delegation_scenario(&admin, &path).await;

    // 5. Failover, twice: the leader pod deleted, then the leader's container SIGKILLed.
    let mut baseline = BTreeMap::new();
    for ns in [&sub, &rg, &fab] {
        baseline.insert(ns.clone(), granted(&admin, ns).await);
    }
    let checks = vec![
        (contoso_client.clone(), sub.clone(), true),
        (contoso_client.clone(), rg.clone(), true),
        (contoso_client.clone(), fab.clone(), false),
        (fabrikam_client.clone(), fab.clone(), true),
        (fabrikam_client.clone(), sub.clone(), false),
    ];
    let mut failovers = Vec::new();
    for how in ["pod deleted", "container SIGKILLed"] {
        let pods = two_ready_pods(&admin).await;
        let old = poll("a leader", || leader(&admin), |l| l.as_ref().is_some_and(|l| pods.contains(l)))
            .await
            .expect("leader");
        let sampler = Sampler::start(checks.clone());
        let new_sub = unique("node-failover");
        subscription(&admin, &new_sub, &tenant_id()).await;
        let t = Instant::now();
        let mut restarts_before = 0;
        if how == "pod deleted" {
            let api: Api<Pod> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
            api.delete(&old, &DeleteParams::default()).await.expect("delete the leader pod");
        } else {
            let pod = controller_pods(&admin)
                .await
                .into_iter()
                .find(|p| p.metadata.name.as_deref() == Some(&old))
                .expect("leader pod");
            restarts_before = restarts(&pod);
            let id = pod
                .status
                .and_then(|s| s.container_statuses)
                .and_then(|c| c.first().and_then(|c| c.container_id.clone()))
                .expect("container ID");
            run(Command::new(repo().join("hack/node.sh")).env("KL_STATE_DIR", &state).args(["kill-container", &id]));
        }
        // A new delegation, applied while the leader is gone.
        definition(&admin, &new_sub, "offer", MSP_TENANT, vec![authorization(CONTOSO_ENGINEERS, "Group", READER)])
            .await;
        assignment(&admin, &new_sub, "offer", "offer").await;
        while list_pods_status(&contoso_client, &new_sub).await != 200 {
            assert!(t.elapsed() < Duration::from_secs(120), "the new delegation was never reconciled after the {how}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reconciled_after = t.elapsed();
        // A deleted pod's successor is another pod. A killed container is restarted in its
        // pod, under the same identity: whichever replica leads next, it leads once the new
        // delegation is granted.
        // The old leader reconciles until its SIGTERM; then
        // another pod leads, and a delegation made now is the new leader's to grant.
        let (leader_after, new_leader_granted_after) = if how == "pod deleted" {
            poll("a new leader", || leader(&admin), |l| l.as_ref().is_some_and(|l| *l != old)).await;
            let leader_after = t.elapsed();
            let second = unique("node-failover");
            reader_delegation(&admin, &second, MSP_TENANT, CONTOSO_ENGINEERS).await;
            while list_pods_status(&contoso_client, &second).await != 200 {
                assert!(t.elapsed() < Duration::from_secs(120), "the new leader never granted a new delegation");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (Some(leader_after), t.elapsed())
        } else {
            (None, reconciled_after)
        };
        let new_leader = leader(&admin).await;
        wait_for_assignment_state(&admin, &new_sub, "offer", "Succeeded").await;
        if how != "pod deleted" {
            let pod = poll(
                "the killed container is restarted",
                || async {
                    controller_pods(&admin).await.into_iter().find(|p| p.metadata.name.as_deref() == Some(&old))
                },
                |p| p.as_ref().is_some_and(|p| restarts(p) > restarts_before),
            )
            .await;
            eprintln!("the killed leader {old} restarted ({} restarts)", pod.as_ref().map_or(0, restarts));
        }
        let (samples, wrong) = sampler.finish().await;
        eprintln!(
            "failover ({how}): a delegation made at once is granted after {reconciled_after:?}; another pod holds \
             the Lease after {leader_after:?}; a delegation made then is granted after {new_leader_granted_after:?} \
             (leader {new_leader:?}); {samples} samples, {} wrong",
            wrong.len()
        );
        assert!(wrong.is_empty(), "access changed during the failover ({how}): {wrong:?}");
        assert!(
            new_leader_granted_after <= FAILOVER_BOUND,
            "after the {how}, the new leader granted a new delegation after {new_leader_granted_after:?} (promised: \
             within {FAILOVER_BOUND:?})"
        );
        for (ns, before) in &baseline {
            assert_eq!(
                &granted(&admin, ns).await,
                before,
                "the RoleBindings of {ns} changed across the failover ({how})"
            );
        }
        assert_eq!(
            granted(&admin, &new_sub).await.len(),
            1,
            "the new delegation's RoleBindings: {:?}",
            granted(&admin, &new_sub).await
        );
        failovers.push((how, reconciled_after, leader_after, new_leader_granted_after, samples));
    }

    // 6. helm upgrade to another tag of the image, with 200 live delegations.
    let t = Instant::now();
    let live: Vec<(String, &str, &str)> = (0..LIVE_DELEGATIONS)
        .map(|i| {
            let (tenant, group) =
                if i % 2 == 0 { (MSP_TENANT, CONTOSO_ENGINEERS) } else { (OTHER_MSP_TENANT, FABRIKAM_ENGINEERS) };
            (format!("node-live-{i:03}"), tenant, group)
        })
        .collect();
    stream::iter(live.iter())
        .for_each_concurrent(16, |(ns, tenant, group)| {
            let admin = admin.clone();
            async move { reader_delegation(&admin, ns, tenant, group).await }
        })
        .await;
    stream::iter(live.iter())
        .for_each_concurrent(16, |(ns, _, _)| {
            let admin = admin.clone();
            async move {
                wait_for_assignment_state(&admin, ns, "offer", "Succeeded").await;
            }
        })
        .await;
    eprintln!("{LIVE_DELEGATIONS} delegations applied and Succeeded in {:?}", t.elapsed());
    let mut checks = Vec::new();
    for (ns, tenant, _) in &live {
        let (mine, theirs) = if *tenant == MSP_TENANT {
            (&contoso_client, &fabrikam_client)
        } else {
            (&fabrikam_client, &contoso_client)
        };
        checks.push((mine.clone(), ns.clone(), true));
        checks.push((theirs.clone(), ns.clone(), false));
    }
    let before = certificates(&admin).await;
    let sampler = Sampler::start(checks);
    // Applies throughout the upgrade: valid delegations must be admitted, an Owner refused.
    let applying = Arc::new(AtomicBool::new(true));
    let applier = {
        let (admin, applying) = (admin.clone(), applying.clone());
        tokio::spawn(async move {
            let (mut applied, mut refused_for_rule, mut refused_otherwise) = (0, 0, Vec::new());
            let mut i = 0;
            while applying.load(Ordering::Relaxed) {
                let ns = format!("node-upgrade-{i:03}");
                i += 1;
                subscription(&admin, &ns, &tenant_id()).await;
                let defs: Api<RegistrationDefinition> = Api::namespaced(admin.clone(), &ns);
                let body = json!({
                    "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
                    "kind": "RegistrationDefinition",
                    "metadata": {"name": "offer", "namespace": ns},
                    "spec": {"registrationDefinitionName": "offer", "managedByTenantId": MSP_TENANT,
                             "authorizations": [authorization(CONTOSO_ENGINEERS, "Group", READER)]},
                });
                let params = kube::api::PatchParams::apply("kube-lighthouse-tests").force();
                match defs.patch("offer", &params, &kube::api::Patch::Apply(body)).await {
                    Ok(_) => applied += 1,
                    Err(e) => refused_otherwise.push(format!("{ns}: {e}")),
                }
                let error = refused_owner(&admin, &ns).await;
                if is_rule_refusal(&error) {
                    refused_for_rule += 1;
                } else {
                    refused_otherwise.push(format!("{ns} (Owner): {error}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (applied, refused_for_rule, refused_otherwise)
        })
    };
    let t = Instant::now();
    install(&path, UPGRADE_TAG);
    let upgrade_time = t.elapsed();
    let pods = two_ready_pods(&admin).await;
    for pod in controller_pods(&admin).await {
        let image = pod.spec.and_then(|s| s.containers.first().and_then(|c| c.image.clone())).unwrap_or_default();
        assert_eq!(image, format!("{REPOSITORY}:{UPGRADE_TAG}"), "a pod runs another image after the upgrade");
    }
    let new_leader =
        poll("a leader after the upgrade", || leader(&admin), |l| l.as_ref().is_some_and(|l| pods.contains(l))).await;
    // Keep sampling until the new leader has settled in.
    tokio::time::sleep(Duration::from_secs(3)).await;
    applying.store(false, Ordering::Relaxed);
    let (applied, refused_for_rule, refused_otherwise) = applier.await.expect("applier");
    let (samples, wrong) = sampler.finish().await;
    let after = certificates(&admin).await;
    eprintln!(
        "helm upgrade to {UPGRADE_TAG}: {upgrade_time:?} (--wait), leader {new_leader:?}; {samples} access samples, {} \
         wrong; {applied} delegations applied, {refused_for_rule} Owner refused by rule, {} other refusals",
        wrong.len(),
        refused_otherwise.len()
    );
    assert!(wrong.is_empty(), "access changed during the upgrade: {wrong:?}");
    assert!(refused_otherwise.is_empty(), "applies refused for no rule during the upgrade: {refused_otherwise:?}");
    assert!(applied > 0 && refused_for_rule > 0, "no apply was made during the upgrade");
    assert_eq!(after, before, "the webhook certificate or a CA bundle changed across the upgrade");

    // 7. Eviction, as kubectl drain makes it: the PodDisruptionBudget keeps one replica.
    let pods = two_ready_pods(&admin).await;
    // As a drain meets it once the rollout is over: the disruption controller counts the two
    // pods (during a rollout it counts the surge pod too, and would allow two evictions).
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    eventually("the PodDisruptionBudget counts two healthy pods and allows one disruption", || async {
        let budget = budgets.get(RELEASE).await.expect("the PodDisruptionBudget");
        budget.status.is_some_and(|s| {
            s.current_healthy == Some(2) && s.expected_pods == Some(2) && s.disruptions_allowed == Some(1)
        })
    })
    .await;
    // kubectl, not kube's client: the client retries a 429 by itself, hiding the refusal.
    assert_eq!(evict(&path, &pods[0]), Ok(()), "the first eviction is allowed");
    match evict(&path, &pods[1]) {
        Err(e) if e.contains("TooManyRequests") && e.contains("disruption budget") => {}
        other => panic!(
            "the second eviction was not held by the PodDisruptionBudget: {other:?}; budget {:?}",
            budgets.get(RELEASE).await.map(|b| b.status),
        ),
    }
    let t = Instant::now();
    eventually("the second eviction is allowed once the replacement is Ready", || async {
        evict(&path, &pods[1]).is_ok()
    })
    .await;
    eprintln!("eviction: the second pod was held for {:?}, until the replacement was Ready", t.elapsed());
    two_ready_pods(&admin).await;

    // 8. Uninstall, as docs/install.md says: delegations first, then the release, then the
    //    catalog role Helm keeps. The scenario's own delegation
    //    is kept, to check the documented way out when the controller is already gone.
    let assignments: Api<RegistrationAssignment> = Api::all(admin.clone());
    let t = Instant::now();
    for a in assignments.list(&ListParams::default()).await.expect("assignments").items {
        let ns = a.metadata.namespace.clone().expect("namespace");
        if ns != sub {
            delete(&Api::<RegistrationAssignment>::namespaced(admin.clone(), &ns), &a.metadata.name.expect("name"))
                .await;
        }
    }
    eventually("every other assignment is released", || async {
        assignments.list(&ListParams::default()).await.expect("assignments").items.len() == 1
    })
    .await;
    eprintln!("uninstall: the delegations revoked and released in {:?}", t.elapsed());
    for (ns, _, _) in live.iter().take(10) {
        assert_eq!(list_pods_status(&contoso_client, ns).await, 403);
        assert_eq!(list_pods_status(&fabrikam_client, ns).await, 403);
        assert!(granted(&admin, ns).await.is_empty(), "RoleBindings left in {ns}");
    }
    helm(&path, &["uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", "--timeout", "120s"]);
    // Helm keeps Reader (docs/install.md), with its metadata: the same release adopts it again.
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let reader = roles.get("kubelighthouse:reader").await.expect("Helm keeps kubelighthouse:reader");
    let annotations = reader.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("meta.helm.sh/release-name").map(String::as_str), Some(RELEASE), "{annotations:?}");
    let others = ListParams::default().labels("kubelighthouse.io/built-in=true");
    let left: Vec<String> =
        roles.list(&others).await.expect("roles").items.into_iter().filter_map(|r| r.metadata.name).collect();
    assert_eq!(left, ["kubelighthouse:reader"], "catalog roles left by helm uninstall");
    kubectl(&path, &["delete", "clusterrole", "kubelighthouse:reader"]);
    eventually("no catalog ClusterRole is left", || async {
        roles
            .list(&ListParams::default().labels("kubelighthouse.io/built-in=true"))
            .await
            .expect("roles")
            .items
            .is_empty()
    })
    .await;
    eventually("no controller pod is left", || async { controller_pods(&admin).await.is_empty() }).await;
    // The kept delegation: the access it grants stays (docs/install.md says so) until the
    // documented steps remove it; then nothing is granted and nothing is stuck.
    assert_eq!(list_pods_status(&contoso_client, &sub).await, 200, "the kept delegation lost its access");
    let docs = std::fs::read_to_string(repo().join("docs/install.md")).expect("docs/install.md");
    let cleanup = docs
        .split("If the controller is already gone")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("docs/install.md: the steps for when the controller is already gone");
    run(Command::new("bash").env("KUBECONFIG", &path).args(["-euo", "pipefail", "-c", cleanup]));
    for ns in [&sub, &rg] {
        assert_eq!(list_pods_status(&contoso_client, ns).await, 403, "access outlived the product in {ns}");
        assert!(granted(&admin, ns).await.is_empty(), "RoleBindings left in {ns}");
    }
    delete(&namespaces, &sub).await;
    eventually("the kept delegation's namespace is deleted (no finalizer is stuck)", || async {
        namespaces.get_opt(&sub).await.expect("namespace").is_none()
    })
    .await;
    // Every delegation left is deletable: none keeps a finalizer of the controller's.
    let definitions: Api<RegistrationDefinition> = Api::all(admin.clone());
    let stuck: Vec<String> = definitions
        .list(&ListParams::default())
        .await
        .expect("definitions")
        .items
        .iter()
        .filter(|d| d.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty()))
        .filter_map(|d| d.metadata.namespace.clone())
        .collect();
    assert!(stuck.is_empty(), "definitions still holding a finalizer after the documented steps: {stuck:?}");

    eprintln!(
        "FIGURES install={install_time:?} failovers={failovers:?} upgrade={upgrade_time:?} total={:?}",
        started.elapsed()
    );
}

// --- the release, as a platform team installs and upgrades it ----------------------------------

/// A release's files: `KL_RELEASE_DIST` (this release's dist/, from hack/release.sh) and
/// `KL_PREVIOUS_RELEASE_DIST` (the previous release's chart, from hack/previous-release.sh),
/// each with its image already imported into the node. Fails with what to run when unset.
fn release_charts() -> (PathBuf, PathBuf, String) {
    let dir = |var: &str| {
        std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
            panic!(
                "{var} is not set: the release suite needs hack/release.sh's dist/ and hack/previous-release.sh's \
                 output, their images imported into the node (`KL_TEST_NODE=1 hack/test.sh` does it all)"
            )
        })
    };
    let chart = dir("KL_RELEASE_DIST").join(format!("kube-lighthouse-{}.tgz", env!("CARGO_PKG_VERSION")));
    assert!(chart.is_file(), "no {}", chart.display());
    let previous_dir = dir("KL_PREVIOUS_RELEASE_DIST");
    let previous = std::fs::read_dir(&previous_dir)
        .expect("the previous release's directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .unwrap_or_else(|| panic!("no chart (.tgz) in {}", previous_dir.display()));
    let version = previous
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("kube-lighthouse-"))
        .expect("kube-lighthouse-VERSION.tgz")
        .to_string();
    (chart, previous, version)
}

/// Removes the release the documented way (docs/install.md, "Uninstall"): every delegation
/// first, then the release, then the catalog role Helm keeps.
/// Deletes every object of kind `K` in the cluster and waits until none is left (the
/// controller, while it runs, finalizes them): `what` names that wait.
async fn delete_every<K>(admin: &Client, what: &str)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let all: Api<K> = Api::all(admin.clone());
    for object in all.list(&ListParams::default()).await.expect("list").items {
        let ns = object.meta().namespace.clone().expect("namespace");
        delete(&Api::<K>::namespaced(admin.clone(), &ns), object.meta().name.as_deref().expect("name")).await;
    }
    eventually(what, || async { all.list(&ListParams::default()).await.expect("list").items.is_empty() }).await;
}

async fn uninstall(admin: &Client, path: &Path) {
    delete_every::<RegistrationAssignment>(admin, "every assignment is released").await;
    helm(path, &["uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", "--timeout", "120s"]);
    kubectl(path, &["delete", "clusterrole", "kubelighthouse:reader", "--ignore-not-found"]);
    eventually("no controller pod is left", || async { controller_pods(admin).await.is_empty() }).await;
}

/// The UIDs of the managed RoleBindings of `namespace`: the same after an upgrade when none
/// was deleted and re-created.
async fn binding_uids(admin: &Client, namespace: &str) -> Vec<String> {
    let api: Api<RoleBinding> = Api::namespaced(admin.clone(), namespace);
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=kube-lighthouse");
    let mut uids: Vec<String> =
        api.list(&managed).await.expect("rolebindings").items.into_iter().filter_map(|b| b.metadata.uid).collect();
    uids.sort();
    uids
}

/// Waits for the webhook to answer through its Service (a new Service is routed a moment
/// after the pods are Ready: docs/install.md).
async fn webhook_routed(admin: &Client) {
    let probe = unique("node-probe");
    subscription(admin, &probe, &tenant_id()).await;
    eventually("the webhook answers through its Service", || async {
        is_rule_refusal(&refused_owner(admin, &probe).await)
    })
    .await;
}

/// The release as a platform team takes it: the packaged chart (`dist/kube-lighthouse-VERSION.tgz`)
/// with the released image, installed with nothing set, passes the delegation scenario; then
/// the previous release's chart and image, with live delegations, upgraded to this release
/// the documented way (the new CRDs applied, `helm upgrade`): every delegation is kept, access
/// never changes, no valid apply is refused, and the scenario passes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn the_release_on_a_node() {
    let started = Instant::now();
    let (chart, previous_chart, previous) = release_charts();
    let version = env!("CARGO_PKG_VERSION");
    let path = node_cluster();
    let admin = client_for(&path).await;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let release_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NAMESPACE,
        "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    apply_json(&namespaces, RELEASE_NAMESPACE, release_ns).await;

    // 1. A fresh install of the release, as shipped: its image is the released one.
    let t = Instant::now();
    install_packaged(&path, &chart);
    let install_time = t.elapsed();
    two_ready_pods(&admin).await;
    all_pods_run(&admin, &format!("{REPOSITORY}:{version}")).await;
    webhook_routed(&admin).await;
    delegation_scenario(&admin, &path).await;
    // Helm leaves a chart's CRDs behind on uninstall; the previous release is installed as on
    // a cluster that never had this one (its CRDs would conflict with this release's fields).
    // The definitions go first, while the controller that finalizes them still runs.
    delete_every::<RegistrationDefinition>(&admin, "every definition is finalized").await;
    uninstall(&admin, &path).await;
    let ours: Vec<String> = kubectl(&path, &["get", "crd", "-o", "name"])
        .lines()
        .filter(|name| name.ends_with("kubelighthouse.io"))
        .map(str::to_string)
        .collect();
    assert!(!ours.is_empty(), "this release installed no CRD");
    let mut delete_crds = vec!["delete", "--wait", "--timeout", "120s"];
    delete_crds.extend(ours.iter().map(String::as_str));
    kubectl(&path, &delete_crds);
    eprintln!("{version}: installed in {install_time:?}; the scenario passed; uninstalled, CRDs deleted");

    // 2. The previous release, with live delegations of both managing tenants.
    install_packaged(&path, &previous_chart);
    two_ready_pods(&admin).await;
    all_pods_run(&admin, &format!("{REPOSITORY}:{previous}")).await;
    webhook_routed(&admin).await;
    const KEPT: usize = 40;
    let live: Vec<(String, &str, &str)> = (0..KEPT)
        .map(|i| {
            let (tenant, group) =
                if i % 2 == 0 { (MSP_TENANT, CONTOSO_ENGINEERS) } else { (OTHER_MSP_TENANT, FABRIKAM_ENGINEERS) };
            (unique(&format!("node-kept-{i:02}")), tenant, group)
        })
        .collect();
    stream::iter(live.iter())
        .for_each_concurrent(8, |(ns, tenant, group)| {
            let admin = admin.clone();
            async move {
                reader_delegation(&admin, ns, tenant, group).await;
                wait_for_assignment_state(&admin, ns, "offer", "Succeeded").await;
            }
        })
        .await;
    let contoso_client = member_of(MSP_TENANT, CONTOSO_ENGINEERS).await;
    let fabrikam_client = member_of(OTHER_MSP_TENANT, FABRIKAM_ENGINEERS).await;
    let mut checks = Vec::new();
    let mut baseline = BTreeMap::new();
    for (ns, tenant, _) in &live {
        let (mine, theirs) = if *tenant == MSP_TENANT {
            (&contoso_client, &fabrikam_client)
        } else {
            (&fabrikam_client, &contoso_client)
        };
        assert_eq!(list_pods_status(mine, ns).await, 200, "{previous}: the delegation in {ns} grants nothing");
        assert_eq!(
            list_pods_status(theirs, ns).await,
            403,
            "{previous}: the delegation in {ns} grants the other tenant"
        );
        checks.push((mine.clone(), ns.clone(), true));
        checks.push((theirs.clone(), ns.clone(), false));
        baseline.insert(ns.clone(), (granted(&admin, ns).await, binding_uids(&admin, ns).await));
    }

    // 3. The upgrade, as docs/install.md ("Upgrading") says: the new CRDs, then helm upgrade;
    //    access sampled and valid delegations applied throughout.
    let before = certificates(&admin).await;
    let sampler = Sampler::start(checks);
    let applying = Arc::new(AtomicBool::new(true));
    let applier = {
        let (admin, applying) = (admin.clone(), applying.clone());
        tokio::spawn(async move {
            let (mut applied, mut refused_for_rule, mut refused) = (0, 0, Vec::new());
            while applying.load(Ordering::Relaxed) {
                let ns = unique("node-during");
                subscription(&admin, &ns, &tenant_id()).await;
                let defs: Api<RegistrationDefinition> = Api::namespaced(admin.clone(), &ns);
                let body = json!({
                    "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
                    "kind": "RegistrationDefinition",
                    "metadata": {"name": "offer", "namespace": ns},
                    "spec": {"registrationDefinitionName": "offer", "managedByTenantId": MSP_TENANT,
                             "authorizations": [authorization(CONTOSO_ENGINEERS, "Group", READER)]},
                });
                let params = kube::api::PatchParams::apply("kube-lighthouse-tests").force();
                match defs.patch("offer", &params, &kube::api::Patch::Apply(body)).await {
                    Ok(_) => applied += 1,
                    Err(e) => refused.push(format!("{ns}: {e}")),
                }
                // A bad delegation is refused throughout, by old and new replicas alike.
                let error = refused_owner(&admin, &ns).await;
                if is_rule_refusal(&error) {
                    refused_for_rule += 1;
                } else {
                    refused.push(format!("{ns} (Owner): {error}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (applied, refused_for_rule, refused)
        })
    };
    let crds = std::env::temp_dir().join(unique("release-crds"));
    std::fs::create_dir_all(&crds).expect("mkdir");
    run(Command::new("tar").arg("-xzf").arg(&chart).arg("-C").arg(&crds).arg("kube-lighthouse/crds"));
    let crds_dir = crds.join("kube-lighthouse/crds");
    let t = Instant::now();
    kubectl(&path, &["apply", "--server-side", "--force-conflicts", "-f", &crds_dir.to_string_lossy()]);
    let chart_arg = chart.to_string_lossy();
    helm(
        &path,
        &[
            "upgrade",
            RELEASE,
            &chart_arg,
            "-n",
            RELEASE_NAMESPACE,
            "--reset-then-reuse-values",
            "--wait",
            "--timeout",
            "180s",
        ],
    );
    let upgrade_time = t.elapsed();
    std::fs::remove_dir_all(&crds).expect("rm");
    let pods = two_ready_pods(&admin).await;
    all_pods_run(&admin, &format!("{REPOSITORY}:{version}")).await;
    poll("a leader after the upgrade", || leader(&admin), |l| l.as_ref().is_some_and(|l| pods.contains(l))).await;
    // Keep sampling until the new leader has settled in.
    tokio::time::sleep(Duration::from_secs(3)).await;
    applying.store(false, Ordering::Relaxed);
    let (applied, refused_for_rule, refused) = applier.await.expect("applier");
    let (samples, wrong) = sampler.finish().await;
    eprintln!(
        "helm upgrade {previous} -> {version}: {upgrade_time:?} (CRDs and --wait); {samples} access samples, {} wrong; \
         {applied} delegations applied, {refused_for_rule} Owner refused by rule, {} other refusals",
        wrong.len(),
        refused.len()
    );
    assert!(wrong.is_empty(), "access changed during the upgrade: {wrong:?}");
    assert!(refused.is_empty(), "applies refused for no rule during the upgrade: {refused:?}");
    assert!(applied > 0 && refused_for_rule > 0, "no apply was made during the upgrade");
    assert_eq!(certificates(&admin).await, before, "the webhook certificate or a CA bundle changed across the upgrade");

    // 4. Every delegation kept, object for object, and the release passes the scenario.
    for (ns, _, _) in &live {
        wait_for_assignment_state(&admin, ns, "offer", "Succeeded").await;
        let (bindings, uids) = &baseline[ns];
        assert_eq!(&granted(&admin, ns).await, bindings, "the upgrade changed the RoleBindings of {ns}");
        assert_eq!(&binding_uids(&admin, ns).await, uids, "the upgrade re-created RoleBindings of {ns}");
    }
    delegation_scenario(&admin, &path).await;
    uninstall(&admin, &path).await;
    eprintln!("FIGURES release install={install_time:?} upgrade={upgrade_time:?} total={:?}", started.elapsed());
}
