//! Phase 10: the fleet at scale (issue 32, docs/fleet.md), run alone with `--only-fleet`.
//!
//! `--fleet-clusters` customer clusters, each a report server of [`report_server`] speaking
//! the real protocol over TLS on its own 127.0.0.1 port with `--fleet-delegations` delegations
//! to the MSP tenant; on the bench's control plane (the hub's API server) one hand-written
//! `ClusterProfile` per cluster naming a Secret with that cluster's kubeconfig (its server,
//! CA and the customer's read-only token); the hub is the release binary with `--hub true`,
//! its views registered through the APIService as the chart registers them. Then:
//! - **ready**: from the hub's start until an engineer's `kubectl get clusters` at the hub
//!   lists every cluster `Current`;
//! - **steady polling**: over `--fleet-window-seconds`, the hub's CPU, its API server's CPU
//!   and the reports read per second (the reads every cluster counts);
//! - **`kubectl get customers`**: the request kubectl sends (a `Table`, `limit=500`), through
//!   the aggregation layer as an engineer signed in with a token of the MSP tenant's issuer,
//!   `--fleet-reps` times one after another; and the whole `kubectl get customers` command
//!   (kubectl's own start and discovery cache included) beside `kubectl get --raw /version`;
//! - **change visible**: in each of `--fleet-rounds` rounds, a delegation added to
//!   `--fleet-changed` clusters' reports at once (authorizing a fresh user, who signs in and
//!   lists `delegations` at the hub every 100 ms), and the time from each cluster's change
//!   until the hub shows it; then removed, until the hub no longer shows it;
//! - **withdrawn**: one customer withdraws the grant (its server answers 403): the time until
//!   the hub lists the cluster `Withdrawn`;
//! - **memory**: the hub's peak RSS (`VmHWM`) over the whole phase.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::Client;
use kube_lighthouse::api::view::{Delegation, FleetCluster};
use serde::Serialize;
use serde_json::json;

use crate::common::views::{
    register_api_service, token_kubeconfig, ApiServiceRegistration, SERVICE, SERVICE_NAMESPACE,
};
use crate::common::webhook::{base64, certificates_for};
use crate::common::{
    client_with_token, free_port, kubectl, plain_namespace, repo, tenant_id, token, unique, MSP_TENANT,
    OTHER_MSP_TENANT,
};
use crate::controller::{cpu_seconds_of, ControlPlaneCpu};
use crate::report::{latency_summary, round, round3, say, LatencySummary};
use crate::report_server::{self, Extra, Principals};

/// Writes the harness has in flight while it creates the profiles and Secrets.
const WRITES_IN_FLIGHT: usize = 16;
/// What `kubectl get` asks for: a server-side `Table`, or else the object list.
const KUBECTL_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
/// How long a change may take to reach the hub before the harness stops waiting for it.
const CHANGE_PATIENCE: Duration = Duration::from_secs(60);

/// Phase 10's settings.
#[derive(Clone, Debug)]
pub struct FleetSettings {
    pub clusters: usize,
    pub delegations: usize,
    pub reps: usize,
    pub rounds: usize,
    pub changed: usize,
    pub poll_ms: u64,
    pub window_seconds: u64,
}

/// Phase 10's figures.
#[derive(Debug, Serialize)]
pub struct FleetFigures {
    pub clusters: usize,
    pub delegations_per_cluster: usize,
    /// `--hub-poll-ms` of the hub.
    pub hub_poll_ms: u64,
    /// One cluster's report as served, in bytes (JSON).
    pub report_bytes: usize,
    /// Hub started → every cluster `Current` at the hub.
    pub ready_s: f64,
    /// Reports the hub read per second over the steady window.
    pub reads_per_s: f64,
    /// The hub's CPU over the steady window, in cores.
    pub hub_cpu_cores: f64,
    /// The same per report read, in milliseconds.
    pub hub_cpu_ms_per_read: f64,
    /// The hub's API server (kube-apiserver and etcd) CPU over the steady window, in cores.
    pub hub_api_server_cpu_cores: BTreeMap<String, f64>,
    /// The report servers' (this harness's) CPU over the steady window, in cores.
    pub report_servers_cpu_cores: f64,
    /// The hub's RSS at the end of the steady window.
    pub hub_rss_mib: f64,
    /// Customers an engineer sees at the hub (one per cluster).
    pub customers: usize,
    /// `GET customers` as kubectl sends it, through the aggregation layer.
    pub get_customers: LatencySummary,
    /// Its response (the `Table`), in bytes.
    pub get_customers_bytes: usize,
    /// The hub's CPU per `GET customers`, its steady polling taken out, in milliseconds.
    pub hub_cpu_ms_per_get_customers: f64,
    /// The same for kube-apiserver (authentication, authorization, the aggregation proxy).
    pub api_server_cpu_ms_per_get_customers: f64,
    /// The whole `kubectl get customers` command.
    pub kubectl_get_customers: LatencySummary,
    /// `kubectl get --raw /version` by the same engineer: kubectl's own floor on this machine.
    pub kubectl_get_version: LatencySummary,
    /// A delegation added in a cluster → shown at the hub, per cluster changed.
    pub change_created: LatencySummary,
    /// A delegation removed in a cluster → gone from the hub, per cluster changed.
    pub change_revoked: LatencySummary,
    /// Changes the hub did not show within 60 s (none expected).
    pub changes_missed: usize,
    /// A grant withdrawn → the hub lists the cluster `Withdrawn`.
    pub withdrawn_s: f64,
    /// The hub's peak RSS over the phase.
    pub hub_peak_rss_mib: f64,
    /// The hub's peak RSS so far at the end of each step (ready, steady, get_customers,
    /// kubectl, changes): where the peak is reached.
    pub hub_peak_rss_mib_by_step: Vec<(&'static str, f64)>,
    /// The hub's CPU over the whole phase, in seconds.
    pub hub_cpu_s: f64,
}

/// The hub binary as a subprocess; killed on drop.
struct Hub {
    child: Child,
}

impl Hub {
    fn status_kib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
            .unwrap_or(0.0)
    }

    fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") / 1024.0
    }

    fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") / 1024.0
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.child.id())
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cluster_name(index: usize) -> String {
    format!("customer-{index:04}")
}

fn index_of(cluster: &str) -> Option<usize> {
    cluster.strip_prefix("customer-")?.parse().ok()
}

/// The kubeconfig a customer hands the MSP for its report grant.
fn kubeconfig_text(port: u16, ca: &[u8], token: &str) -> String {
    let value = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "customer", "cluster": {"server": format!("https://127.0.0.1:{port}"),
                                                       "certificate-authority-data": base64(ca)}}],
        "users": [{"name": "report-grant", "user": {"token": token}}],
        "contexts": [{"name": "customer", "context": {"cluster": "customer", "user": "report-grant"}}],
        "current-context": "customer",
    });
    serde_yaml::to_string(&value).expect("kubeconfig")
}

async fn client_of(kubeconfig: &str) -> Client {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(parsed, &Default::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

fn code<T>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(other) => panic!("not an API answer: {other}"),
    }
}

/// The simulated protocol, checked once with the hub's own client: the grant reads its
/// tenant's report, another tenant's is 403, a wrong token 401.
async fn check_protocol(fleet: &report_server::Fleet, ca: &[u8], delegations: usize) {
    let c = &fleet.clusters[0];
    let granted = client_of(&kubeconfig_text(c.port, ca, &c.token)).await;
    let reports = Api::<kube_lighthouse::api::view::Report>::all(granted);
    let report = reports.get(MSP_TENANT).await.expect("the granted report");
    assert_eq!(report.delegations.len(), delegations);
    assert_eq!(code(reports.get(OTHER_MSP_TENANT).await), 403, "another tenant's report");
    assert_eq!(code(reports.list(&Default::default()).await), 403, "a list of reports");
    let stranger = client_of(&kubeconfig_text(c.port, ca, "not-the-grant")).await;
    assert_eq!(code(Api::<kube_lighthouse::api::view::Report>::all(stranger).get(MSP_TENANT).await), 401);
}

/// The ClusterProfile CRD, the namespace, one Secret and one profile per cluster.
async fn profiles(client: &Client, admin: &Path, fleet: &report_server::Fleet, ca: &[u8]) -> String {
    let crd = repo().join("tests/fixtures/fleet/multicluster.x-k8s.io_clusterprofiles.yaml");
    kubectl(admin, &["apply", "-f", &crd.to_string_lossy()]);
    kubectl(
        admin,
        &["wait", "--for=condition=Established", "--timeout=60s", "crd/clusterprofiles.multicluster.x-k8s.io"],
    );
    let namespace = unique("fleet-bench");
    plain_namespace(client, &namespace).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &namespace);
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("multicluster.x-k8s.io", "v1alpha1", "ClusterProfile"),
        "clusterprofiles",
    );
    let profiles = Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource);
    stream::iter(fleet.clusters.iter().enumerate())
        .map(|(i, c)| {
            let (secrets, profiles, namespace) = (secrets.clone(), profiles.clone(), namespace.clone());
            async move {
                let name = cluster_name(i);
                let secret = format!("{name}-kubeconfig");
                let body: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
                    "metadata": {"name": secret, "namespace": namespace},
                    "stringData": {"kubeconfig": kubeconfig_text(c.port, ca, &c.token)},
                }))
                .expect("secret");
                secrets.create(&PostParams::default(), &body).await.expect("create the Secret");
                let profile: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ClusterProfile",
                    "metadata": {"name": name, "namespace": namespace,
                                 "annotations": {"kubelighthouse.io/kubeconfig-secret": secret}},
                    "spec": {"clusterManager": {"name": "hand-written"}, "displayName": format!("Customer {i}")},
                }))
                .expect("profile");
                profiles.create(&PostParams::default(), &profile).await.expect("create the ClusterProfile");
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    namespace
}

/// The clusters `engineer` sees at the hub, by state.
async fn cluster_states(engineer: &Client) -> BTreeMap<String, String> {
    match Api::<FleetCluster>::all(engineer.clone()).list(&Default::default()).await {
        Ok(list) => list.items.into_iter().map(|c| (c.cluster, c.state)).collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// `GET customers` as kubectl sends it; the number of rows and the response's size.
async fn get_customers(engineer: &Client) -> (usize, usize) {
    let request = http::Request::get("/apis/view.kubelighthouse.io/v1alpha1/customers?limit=500")
        .header("Accept", KUBECTL_ACCEPT)
        .body(Vec::new())
        .expect("request");
    let text = engineer.request_text(request).await.expect("get customers at the hub");
    let table: serde_json::Value = serde_json::from_str(&text).expect("a Table");
    (table["rows"].as_array().map_or(0, Vec::len), text.len())
}

fn timed_command(kubeconfig: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new("kubectl").args(args).env("KUBECONFIG", kubeconfig).output().expect("kubectl");
    let took = started.elapsed();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    took
}

/// One round of changes: `indices`' reports gain a delegation for a fresh user, timed until
/// the hub shows each; then lose it, timed until each is gone. (created, revoked, missed)
async fn change_round(
    fleet: &report_server::Fleet,
    indices: &[usize],
    round: usize,
) -> (Vec<Duration>, Vec<Duration>, usize) {
    let prober = tenant_id();
    let client =
        client_with_token(&token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(&prober)).expect("token")).await;
    let extra = [Extra { assignment: format!("probe-{round}"), user: prober.clone() }];
    let shown = |client: Client| async move {
        Api::<Delegation>::all(client)
            .list(&Default::default())
            .await
            .map(|l| {
                l.items.iter().filter_map(|d| d.cluster.as_deref().and_then(index_of)).collect::<BTreeSet<usize>>()
            })
            .unwrap_or_default()
    };
    let mut timings = Vec::new();
    for present in [true, false] {
        let mut changed_at = BTreeMap::new();
        for &i in indices {
            fleet.set_extra(i, if present { &extra } else { &[] });
            changed_at.insert(i, Instant::now());
        }
        let mut waiting: BTreeSet<usize> = indices.iter().copied().collect();
        let mut samples = Vec::new();
        let started = Instant::now();
        while !waiting.is_empty() && started.elapsed() < CHANGE_PATIENCE {
            let seen = shown(client.clone()).await;
            let now = Instant::now();
            waiting.retain(|i| {
                let done = seen.contains(i) == present;
                if done {
                    samples.push(now - changed_at[i]);
                }
                !done
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        timings.push((samples, waiting.len()));
    }
    let (revoked, missed_revoked) = timings.pop().expect("revoked");
    let (created, missed_created) = timings.pop().expect("created");
    (created, revoked, missed_created + missed_revoked)
}

/// Runs phase 10 on the control plane of `client` (admin kubeconfig `admin`); the hub signs
/// in with `hub_kubeconfig`. Scratch files go under `workdir/fleet`.
pub async fn fleet(
    client: &Client,
    admin: &Path,
    hub_kubeconfig: &Path,
    workdir: &Path,
    s: &FleetSettings,
) -> FleetFigures {
    let dir = workdir.join("fleet");
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["clusters", "hub"] {
        std::fs::create_dir_all(dir.join(sub)).expect("scratch dir");
    }
    assert!(
        token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(tenant_id())).is_some(),
        "the fleet phase signs engineers in: the control plane needs its token issuers (hack/control-plane.sh)"
    );

    // The customer clusters.
    let (cluster_ca, cluster_cert, cluster_key) = certificates_for(&dir.join("clusters"), "IP:127.0.0.1");
    let ca = std::fs::read(&cluster_ca).expect("CA");
    let principals = Principals { engineers: tenant_id(), admins: tenant_id() };
    let fleet =
        report_server::Fleet::start(s.clusters, s.delegations, principals.clone(), &cluster_cert, &cluster_key, 2);
    check_protocol(&fleet, &ca, s.delegations).await;
    say(&format!("fleet: {} report servers up, {} bytes a report", s.clusters, fleet.report_bytes(0)));

    // The hub's API server: the profiles and their Secrets.
    let namespace = profiles(client, admin, &fleet, &ca).await;
    say(&format!("fleet: {} ClusterProfiles and Secrets in {namespace}", s.clusters));

    // The hub.
    let (hub_ca, hub_cert, hub_key) = certificates_for(
        &dir.join("hub"),
        &format!("DNS:{SERVICE}.{SERVICE_NAMESPACE}.svc,DNS:localhost,IP:127.0.0.1"),
    );
    let port = free_port();
    let binary =
        std::env::var_os("KL_BENCH_CONTROLLER").unwrap_or_else(|| env!("CARGO_BIN_EXE_kube-lighthouse").into());
    let log = std::fs::File::create(workdir.join("hub.log")).expect("hub log");
    let started = Instant::now();
    let hub = Hub {
        child: Command::new(binary)
            .args(["--hub", "true", "--hub-tenants", MSP_TENANT, "--hub-namespace", &namespace])
            .args(["--hub-poll-ms", &s.poll_ms.to_string(), "--webhook-port", &port.to_string()])
            .args(["--metrics-port", "0", "--health-port", "0"])
            .arg("--webhook-cert")
            .arg(&hub_cert)
            .arg("--webhook-key")
            .arg(&hub_key)
            .env("KUBECONFIG", hub_kubeconfig)
            .stdout(Stdio::from(log.try_clone().expect("dup")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the hub"),
    };
    let _registration = ApiServiceRegistration(admin.to_path_buf());
    register_api_service(admin, port, &hub_ca, &dir.join("hub"));

    // Ready: every cluster Current, as an engineer of the MSP sees it.
    let engineer_id = tenant_id();
    let engineer_token =
        token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(&engineer_id).groups([principals.engineers.clone()]))
            .expect("token");
    let engineer = client_with_token(&engineer_token).await;
    loop {
        let states = cluster_states(&engineer).await;
        if states.values().filter(|s| *s == "Current").count() == s.clusters {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the hub never showed every cluster Current: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = started.elapsed();
    let mut by_step = vec![("ready", round(hub.peak_rss_mib()))];
    say(&format!("fleet: every cluster Current at the hub {:.1} s after its start", ready.as_secs_f64()));

    // Steady polling: what following the fleet costs, with nobody asking.
    let api_server = ControlPlaneCpu::new(admin.parent().expect("state dir"));
    let (hub_before, api_before, reads_before, self_before) =
        (hub.cpu_seconds(), api_server.sample(), fleet.reads(), cpu_seconds_of(std::process::id()));
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(s.window_seconds)).await;
    let seconds = window.elapsed().as_secs_f64();
    let reads = (fleet.reads() - reads_before) as f64;
    let hub_cpu = hub.cpu_seconds() - hub_before;
    let hub_api_server_cpu_cores: BTreeMap<String, f64> =
        api_server.since(&api_before).into_iter().map(|(k, v)| (k, round3(v / seconds))).collect();
    let report_servers_cpu_cores = round3((cpu_seconds_of(std::process::id()) - self_before) / seconds);
    let hub_rss_mib = round(hub.rss_mib());
    by_step.push(("steady", round(hub.peak_rss_mib())));
    say(&format!(
        "fleet: steady {:.0} reads/s, hub {:.2} cores, {hub_rss_mib} MiB",
        reads / seconds,
        hub_cpu / seconds
    ));

    // kubectl get customers: the request, then the command.
    for _ in 0..10 {
        get_customers(&engineer).await;
    }
    let mut samples = Vec::with_capacity(s.reps);
    let (mut customers, mut get_customers_bytes) = (0, 0);
    let (hub_before, api_before, asking) = (hub.cpu_seconds(), api_server.sample(), Instant::now());
    for _ in 0..s.reps {
        let t = Instant::now();
        (customers, get_customers_bytes) = get_customers(&engineer).await;
        samples.push(t.elapsed());
    }
    // What the requests cost beyond the polling's steady rate, per request.
    let asked = asking.elapsed().as_secs_f64();
    let per_request = |spent: f64, steady_cores: f64| round((spent - steady_cores * asked) * 1000.0 / s.reps as f64);
    let hub_cpu_ms_per_get_customers = per_request(hub.cpu_seconds() - hub_before, hub_cpu / seconds);
    let api_spent = api_server.since(&api_before).get("kube-apiserver").copied().unwrap_or(0.0);
    let api_steady: f64 = hub_api_server_cpu_cores.get("kube-apiserver").copied().unwrap_or(0.0);
    let api_server_cpu_ms_per_get_customers = per_request(api_spent, api_steady);
    let get_customers = latency_summary(samples);
    by_step.push(("get_customers", round(hub.peak_rss_mib())));
    say(&format!("fleet: GET customers ({customers} rows): {get_customers:?}"));
    let engineer_kubeconfig = token_kubeconfig(admin, &engineer_token, &dir, "engineer");
    let command_reps = (s.reps / 10).max(10);
    let mut command = (Vec::new(), Vec::new());
    for i in 0..command_reps + 2 {
        let customers = timed_command(&engineer_kubeconfig, &["get", "customers"]);
        let version = timed_command(&engineer_kubeconfig, &["get", "--raw", "/version"]);
        if i >= 2 {
            command.0.push(customers);
            command.1.push(version);
        }
    }
    let (kubectl_get_customers, kubectl_get_version) = (latency_summary(command.0), latency_summary(command.1));
    by_step.push(("kubectl", round(hub.peak_rss_mib())));
    say(&format!(
        "fleet: kubectl get customers {kubectl_get_customers:?}; kubectl get --raw /version {kubectl_get_version:?}"
    ));

    // Changes: rounds of `changed` clusters spread over the fleet.
    let (mut created, mut revoked, mut changes_missed) = (Vec::new(), Vec::new(), 0);
    let stride = (s.clusters / s.changed.max(1)).max(1);
    for round in 0..s.rounds {
        let indices: Vec<usize> =
            (0..s.changed.min(s.clusters)).map(|i| (i * stride + round * 7) % s.clusters).collect();
        let (c, r, missed) = change_round(&fleet, &indices, round).await;
        created.extend(c);
        revoked.extend(r);
        changes_missed += missed;
    }
    let (change_created, change_revoked) = (latency_summary(created), latency_summary(revoked));
    by_step.push(("changes", round(hub.peak_rss_mib())));
    say(&format!("fleet: change created {change_created:?}; revoked {change_revoked:?}; missed {changes_missed}"));

    // A withdrawn grant.
    let withdrawn = s.clusters / 2;
    fleet.withdraw(withdrawn, true);
    let t = Instant::now();
    while cluster_states(&engineer).await.get(&cluster_name(withdrawn)).map(String::as_str) != Some("Withdrawn") {
        assert!(t.elapsed() < CHANGE_PATIENCE, "the hub never showed the withdrawn grant");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let withdrawn_s = round3(t.elapsed().as_secs_f64());
    fleet.withdraw(withdrawn, false);

    let figures = FleetFigures {
        clusters: s.clusters,
        delegations_per_cluster: s.delegations,
        hub_poll_ms: s.poll_ms,
        report_bytes: fleet.report_bytes(0),
        ready_s: round3(ready.as_secs_f64()),
        reads_per_s: round(reads / seconds),
        hub_cpu_cores: round3(hub_cpu / seconds),
        hub_cpu_ms_per_read: round3(hub_cpu * 1000.0 / reads.max(1.0)),
        hub_api_server_cpu_cores,
        report_servers_cpu_cores,
        hub_rss_mib,
        customers,
        get_customers,
        get_customers_bytes,
        hub_cpu_ms_per_get_customers,
        api_server_cpu_ms_per_get_customers,
        kubectl_get_customers,
        kubectl_get_version,
        change_created,
        change_revoked,
        changes_missed,
        withdrawn_s,
        hub_peak_rss_mib: round(hub.peak_rss_mib()),
        hub_peak_rss_mib_by_step: by_step,
        hub_cpu_s: round3(hub.cpu_seconds()),
    };
    drop(hub);
    let _ = kubectl(admin, &["delete", "namespace", &namespace, "--wait=false"]);
    figures
}
