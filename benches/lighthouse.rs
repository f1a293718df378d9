//! The benchmark harness: what a user feels, measured on the local control plane in one run.
//!
//! 1. **Latency**: apply a definition and an assignment, then the time until a
//!    SubjectAccessReview for the projected identity is first allowed (grant); delete the
//!    assignment, then the time until it is first denied (revoke). Percentiles over `--reps`.
//! 2. **Onboarding at scale**: `--n` subscription namespaces, each with one definition (3
//!    authorizations over 2 roles) and one assignment, applied at `--concurrency`; the time
//!    until every projected identity is allowed in every namespace (reviewed once the objects
//!    that can grant it exist, see [`until_granted`]). Then the **baseline**: the
//!    very same Roles and RoleBindings (copied from what the controller wrote) created directly
//!    into fresh namespaces at the same concurrency, timed the same way. The ratio of the two.
//! 3. **Idle**: with everything in place, API writes per minute and controller CPU.
//! 4. **Restart**: time from start to ready and to every delegation reconciled, and the writes
//!    a restart with nothing changed makes.
//! 5. **Memory**: the controller's peak RSS at `--n` and at `--big-n` delegated namespaces.
//! 6. **Request cost**: with the controller stopped, the API server CPU per request of each
//!    kind on the controller's path and on the baseline's, and the ratio per subscription.
//!
//! The controller is the release binary, run as a subprocess under an impersonated user so the
//! API server's audit log attributes every request it makes; CPU and RSS come from `/proc`.
//! Run with `hack/bench.sh` (fresh control plane) or `cargo bench --bench lighthouse`.
//! Under `cargo test` this target only says how to run it: benchmarks are not tests.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{
    client_for, impersonating_kubeconfig, kubeconfig, projected, review, Access, CONTRIBUTOR, MSP_TENANT, READER,
};
use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use kube_lighthouse::api::{ProvisioningState, RegistrationAssignment, RegistrationDefinition};
use kube_lighthouse::controller::finalizer::add_patch;
use kube_lighthouse::model::keys;
use serde_json::json;

/// The user the controller under benchmark acts as (impersonated, still in system:masters).
const CONTROLLER_USER: &str = "kube-lighthouse-bench";
/// Labels of the RBAC objects the controller writes, and of the baseline's copies of them.
const OURS: &str = "app.kubernetes.io/managed-by=kube-lighthouse";
const BASELINE: &str = "app.kubernetes.io/managed-by=kube-baseline";
/// Someone with no access of their own: SubjectAccessReviews ask about this user plus a group.
const NOBODY: &str = "bench-nobody";
/// How many SubjectAccessReviews the probe has in flight at most (the same in both onboarding runs).
const PROBE_CONCURRENCY: usize = 8;
/// A run that takes longer than this has gone wrong; it is reported, not waited for.
const GIVE_UP: Duration = Duration::from_secs(45 * 60);
static POST: std::sync::LazyLock<PostParams> = std::sync::LazyLock::new(PostParams::default);

#[derive(Clone, Debug, Parser)]
#[command(about = "kube-lighthouse benchmarks (see docs/benchmarks.md)")]
struct Args {
    /// Subscriptions onboarded at scale, and the baseline's namespaces.
    #[arg(long, env = "KL_BENCH_N", default_value_t = 1000)]
    n: usize,
    /// Delegated namespaces for the second memory figure (0 skips it).
    #[arg(long, env = "KL_BENCH_BIG_N", default_value_t = 5000)]
    big_n: usize,
    /// Grant/revoke repetitions (after 5 unmeasured warm-up ones).
    #[arg(long, env = "KL_BENCH_REPS", default_value_t = 100)]
    reps: usize,
    /// Writes in flight: the controller's reconcile concurrency, the harness's and the baseline's.
    #[arg(long, env = "KL_BENCH_CONCURRENCY", default_value_t = 16)]
    concurrency: usize,
    /// Length of the idle window.
    #[arg(long, env = "KL_BENCH_IDLE_SECONDS", default_value_t = 60)]
    idle_seconds: u64,
    /// Where the figures are written as JSON.
    #[arg(long, env = "KL_BENCH_OUT", default_value = "target/bench/results.json")]
    out: PathBuf,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmarks are not tests: run `hack/bench.sh` or `cargo bench --bench lighthouse`");
        return;
    }
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(run(args));
}

// ---------------------------------------------------------------------------------------
// The controller under benchmark
// ---------------------------------------------------------------------------------------

struct ControllerProcess {
    child: Child,
    health_port: u16,
    metrics_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl ControllerProcess {
    /// The release binary with no arguments, as an operator runs it; only ports and
    /// concurrency come from the environment.
    fn start(kubeconfig: &Path, log: &Path, concurrency: usize) -> ControllerProcess {
        let (health_port, metrics_port) = (free_port(), free_port());
        let file = std::fs::File::create(log).expect("controller log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kube-lighthouse"))
            .env("KUBECONFIG", kubeconfig)
            .env("KUBE_LIGHTHOUSE_HEALTH_PORT", health_port.to_string())
            .env("KUBE_LIGHTHOUSE_METRICS_PORT", metrics_port.to_string())
            .env("KUBE_LIGHTHOUSE_CONCURRENCY", concurrency.to_string())
            .stdout(Stdio::from(file.try_clone().expect("dup log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start kube-lighthouse");
        ControllerProcess { child, health_port, metrics_port }
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).unwrap_or_default()
    }

    /// Peak resident set size so far (VmHWM), in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let kib = self
            .proc_file("status")
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
            .unwrap_or(0.0_f64);
        kib / 1024.0
    }

    /// User + system CPU time consumed so far.
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.child.id())
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the controller exited while starting: {status}");
            }
            if http_get(self.health_port, "/readyz").await.is_some_and(|(code, _)| code == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the controller never became ready");
    }

    /// Sum of a metric's samples whose label set contains `labels`.
    async fn metric(&self, name: &str, labels: &str) -> f64 {
        let Some((_, body)) = http_get(self.metrics_port, "/metrics").await else { return 0.0 };
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    }

    /// SIGTERM, as Kubernetes stops a pod; returns how long the graceful exit took.
    fn stop(mut self) -> Duration {
        let started = Instant::now();
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        started.elapsed()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time process `pid` consumed so far.
fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// CPU seconds of the control plane's API server and etcd, to see who is busy.
struct ControlPlaneCpu {
    pids: Vec<(&'static str, u32)>,
}

impl ControlPlaneCpu {
    fn new(state: &Path) -> ControlPlaneCpu {
        let pid = |name: &str| std::fs::read_to_string(state.join(format!("{name}.pid"))).ok()?.trim().parse().ok();
        let pids = ["kube-apiserver", "etcd"].into_iter().filter_map(|n| Some((n, pid(n)?))).collect();
        ControlPlaneCpu { pids }
    }

    fn sample(&self) -> BTreeMap<&'static str, f64> {
        self.pids.iter().map(|(name, pid)| (*name, cpu_seconds_of(*pid))).collect()
    }

    /// Waits until the API server has been at rest (under 5 % of a core for 2 s): new
    /// namespaces keep kube-controller-manager creating ServiceAccounts and token Secrets for
    /// a minute or two, and that work must not land inside a timed window. How long it took.
    async fn at_rest(&self) -> Duration {
        let started = Instant::now();
        let api_server = |s: &BTreeMap<&str, f64>| s.get("kube-apiserver").copied().unwrap_or(0.0);
        let mut before = api_server(&self.sample());
        while started.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = api_server(&self.sample());
            if now - before < 0.1 {
                break;
            }
            before = now;
        }
        started.elapsed()
    }

    fn since(&self, before: &BTreeMap<&'static str, f64>) -> serde_json::Value {
        let now = self.sample();
        json!(now
            .iter()
            .map(|(k, v)| (k.to_string(), round3(v - before.get(k).unwrap_or(&0.0))))
            .collect::<BTreeMap<_, _>>())
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A plain HTTP/1.0 GET to localhost: status code and body.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

// ---------------------------------------------------------------------------------------
// The audit log: every request the controller makes
// ---------------------------------------------------------------------------------------

struct Audit {
    path: PathBuf,
    offset: u64,
}

/// One request of the controller: verb and resource (`roles`, `registrationassignments/status`).
#[derive(Debug)]
struct Request {
    verb: String,
    resource: String,
}

impl Request {
    fn is_write(&self) -> bool {
        matches!(self.verb.as_str(), "create" | "update" | "patch" | "delete" | "deletecollection")
    }
}

/// `/apis/rbac.authorization.k8s.io/v1/namespaces/x/roles/y?…` → `roles`; `…/y/status` → `…/status`.
fn resource_of(uri: &str) -> String {
    let path = uri.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let skip = match segments.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return path.to_string(),
    };
    let rest = &segments[skip.min(segments.len())..];
    let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 { &rest[2..] } else { rest };
    match rest {
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [resource, ..] => resource.to_string(),
        [] => path.to_string(),
    }
}

impl Audit {
    fn new(path: PathBuf) -> Audit {
        let mut audit = Audit { path, offset: 0 };
        audit.drain();
        audit
    }

    /// The controller's requests logged since the last call.
    fn drain(&mut self) -> Vec<Request> {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return vec![] };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // rotated
        }
        let mut text = String::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_string(&mut text).is_err() {
            return vec![];
        }
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        self.offset += complete as u64;
        text[..complete]
            .lines()
            .filter(|l| l.contains(CONTROLLER_USER) && l.contains("ResponseComplete"))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete" && e["impersonatedUser"]["username"] == CONTROLLER_USER)
            .map(|e| Request {
                verb: e["verb"].as_str().unwrap_or_default().to_string(),
                resource: resource_of(e["requestURI"].as_str().unwrap_or_default()),
            })
            .collect()
    }

    /// Writes since the last call, by verb and resource.
    fn writes(&mut self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.drain().into_iter().filter(Request::is_write) {
            *counts.entry(format!("{} {}", r.verb, r.resource)).or_insert(0) += 1;
        }
        counts
    }

    /// Waits until the controller has written nothing for `quiet` (or `limit` passed).
    async fn settle(&mut self, quiet: Duration, limit: Duration) -> BTreeMap<String, usize> {
        let mut all = BTreeMap::new();
        let (started, mut last_write) = (Instant::now(), Instant::now());
        while last_write.elapsed() < quiet && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let new = self.writes();
            if !new.is_empty() {
                last_write = Instant::now();
            }
            merge(&mut all, new);
        }
        all
    }
}

fn merge(into: &mut BTreeMap<String, usize>, from: BTreeMap<String, usize>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}

fn total(counts: &BTreeMap<String, usize>) -> usize {
    counts.values().sum()
}

// ---------------------------------------------------------------------------------------
// Access probes
// ---------------------------------------------------------------------------------------

/// One access a projected identity should get: a SubjectAccessReview.
#[derive(Clone, Debug)]
struct Probe {
    user: String,
    groups: Vec<String>,
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    namespace: String,
}

/// The authorizer's verdict; None when the review itself failed (retried by the caller).
async fn verdict(client: &Client, probe: &Probe) -> Option<bool> {
    let groups: Vec<&str> = probe.groups.iter().map(String::as_str).collect();
    let what = Access {
        verb: probe.verb,
        group: probe.group,
        resource: probe.resource,
        subresource: "",
        namespace: &probe.namespace,
        name: "",
    };
    review(client, &probe.user, &groups, &what).await.ok()
}

/// The delegation every benchmark uses: 3 authorizations over 2 roles (Reader to a group and
/// to a user, Contributor to a group), with principals numbered by `series`.
struct Team {
    engineers: String,
    on_call: String,
    lead: String,
}

impl Team {
    fn new(series: usize) -> Team {
        let guid = |member: usize| format!("00000000-0000-4000-8000-{:08x}{member:04x}", series);
        Team { engineers: guid(1), on_call: guid(2), lead: guid(3) }
    }

    fn authorizations(&self) -> serde_json::Value {
        json!([
            {"principalId": self.engineers, "principalType": "Group", "roleDefinitionId": READER},
            {"principalId": self.on_call, "principalType": "Group", "roleDefinitionId": CONTRIBUTOR},
            {"principalId": self.lead, "principalType": "User", "roleDefinitionId": READER},
        ])
    }

    fn engineers_may_list_pods(&self, namespace: &str) -> Probe {
        Probe {
            user: NOBODY.into(),
            groups: vec![projected(MSP_TENANT, &self.engineers)],
            verb: "list",
            group: "",
            resource: "pods",
            namespace: namespace.into(),
        }
    }

    /// Every access the delegation grants in `namespace`, one probe per authorization.
    fn probes(&self, namespace: &str) -> Vec<Probe> {
        vec![
            self.engineers_may_list_pods(namespace),
            Probe {
                user: NOBODY.into(),
                groups: vec![projected(MSP_TENANT, &self.on_call)],
                verb: "create",
                group: "apps",
                resource: "deployments",
                namespace: namespace.into(),
            },
            Probe {
                user: projected(MSP_TENANT, &self.lead),
                groups: vec![],
                verb: "list",
                group: "",
                resource: "pods",
                namespace: namespace.into(),
            },
        ]
    }
}

/// The time (from `since`) at which the last of `probes` was first allowed.
///
/// The probe watches the Roles and RoleBindings that `selector` picks, as a client waiting for
/// its access would, and reviews an access once a binding naming the identity and the Role it
/// references both exist: the earliest moment the authorizer can allow it. It then reviews
/// again after 5, 10, 20… (at most 200) ms until allowed, since the authorizer's cache trails
/// the watch by a moment. So it sends about one review per access, never lags behind the
/// writes whatever order they come in, and costs both sides of the comparison the same.
async fn until_granted(client: &Client, probes: Vec<Probe>, selector: &str, since: Instant) -> Duration {
    let total = probes.len();
    let (ready_tx, ready_rx) = futures::channel::mpsc::unbounded::<Probe>();
    let watch = async move {
        let mut waiting: BTreeMap<String, Vec<Probe>> = BTreeMap::new();
        for probe in probes {
            waiting.entry(probe.namespace.clone()).or_default().push(probe);
        }
        let mut written = Written::default();
        let config = kube::runtime::watcher::Config::default().labels(selector);
        let roles = kube::runtime::watcher(Api::<Role>::all(client.clone()), config.clone())
            .default_backoff()
            .map(|e| e.map(|e| as_rbac(e, RbacObject::Role)));
        let bindings = kube::runtime::watcher(Api::<RoleBinding>::all(client.clone()), config)
            .default_backoff()
            .map(|e| e.map(|e| as_rbac(e, RbacObject::Binding)));
        let mut events = std::pin::pin!(stream::select(roles, bindings));
        while let Some(event) = events.next().await {
            let Some(namespace) = event.ok().and_then(|e| written.record(e)) else { continue };
            let Some(pending) = waiting.get_mut(&namespace) else { continue };
            let (ready, still): (Vec<Probe>, Vec<Probe>) = pending.drain(..).partition(|p| written.could_allow(p));
            *pending = still;
            for probe in ready {
                let _ = ready_tx.unbounded_send(probe);
            }
        }
    };
    let reviews = ready_rx
        .map(|probe| async move {
            let mut backoff = Duration::from_millis(5);
            while verdict(client, &probe).await != Some(true) {
                assert!(since.elapsed() < GIVE_UP, "gave up: {probe:?} never allowed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            since.elapsed()
        })
        .buffer_unordered(PROBE_CONCURRENCY)
        .take(total)
        .fold(Duration::ZERO, |last, at| async move { last.max(at) });
    tokio::select! {
        last = reviews => last,
        _ = watch => panic!("the probe's watch ended"),
    }
}

fn as_rbac<K>(
    event: kube::runtime::watcher::Event<K>,
    wrap: fn(K) -> RbacObject,
) -> kube::runtime::watcher::Event<RbacObject> {
    use kube::runtime::watcher::Event;
    match event {
        Event::Apply(o) => Event::Apply(wrap(o)),
        Event::InitApply(o) => Event::InitApply(wrap(o)),
        Event::Delete(o) => Event::Delete(wrap(o)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// What the probe's watch has seen: Roles by namespace and name, bindings in full.
#[derive(Default)]
struct Written {
    roles: std::collections::BTreeSet<(String, String)>,
    bindings: BTreeMap<String, BTreeMap<String, RoleBinding>>,
}

impl Written {
    /// Records an event; the namespace it touched.
    fn record(&mut self, event: kube::runtime::watcher::Event<RbacObject>) -> Option<String> {
        use kube::runtime::watcher::Event;
        let (object, present) = match event {
            Event::Apply(o) | Event::InitApply(o) => (o, true),
            Event::Delete(o) => (o, false),
            Event::Init | Event::InitDone => return None,
        };
        let namespace = object.namespace();
        match object {
            RbacObject::Role(role) => {
                let key = (namespace.clone(), role.name_any());
                if present {
                    self.roles.insert(key);
                } else {
                    self.roles.remove(&key);
                }
            }
            RbacObject::Binding(binding) => {
                let here = self.bindings.entry(namespace.clone()).or_default();
                if present {
                    here.insert(binding.name_any(), binding);
                } else {
                    here.remove(&binding.name_any());
                }
            }
        }
        Some(namespace)
    }

    /// Whether a binding naming the probe's identity, and the Role it references, both exist.
    fn could_allow(&self, probe: &Probe) -> bool {
        let names = |s: &k8s_openapi::api::rbac::v1::Subject| match s.kind.as_str() {
            "User" => s.name == probe.user,
            "Group" => probe.groups.contains(&s.name),
            _ => false,
        };
        self.bindings.get(&probe.namespace).is_some_and(|bindings| {
            bindings.values().any(|b| {
                b.role_ref.kind == "Role"
                    && self.roles.contains(&(probe.namespace.clone(), b.role_ref.name.clone()))
                    && b.subjects.iter().flatten().any(names)
            })
        })
    }
}

/// Polls one probe as fast as the API server answers; the time until it gets `expected`.
async fn until_one(client: &Client, probe: &Probe, expected: bool, since: Instant) -> Duration {
    while since.elapsed() < Duration::from_secs(60) {
        if verdict(client, probe).await == Some(expected) {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{probe:?} never got {expected}");
}

// ---------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------

fn customer_tenant(i: usize) -> String {
    format!("c0570000-0000-4000-8000-{i:012x}")
}

async fn create_namespaces(client: &Client, names: &[String], tenant_label: bool, concurrency: usize) {
    let api: Api<Namespace> = Api::all(client.clone());
    stream::iter(names.iter().enumerate())
        .for_each_concurrent(concurrency, |(i, name)| {
            let api = api.clone();
            async move {
                let mut labels = json!({"kubelighthouse.io/bench": "true"});
                if tenant_label {
                    labels["kubelighthouse.io/tenant-id"] = json!(customer_tenant(i));
                }
                let ns: Namespace =
                    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("namespace");
                retry(|| api.create(&POST, &ns)).await;
            }
        })
        .await;
}

/// Retries a create on transient errors (the API server under load); "already exists" is done.
async fn retry<T, F, Fut>(mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    for attempt in 0.. {
        match call().await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => return,
            Err(e) if attempt < 20 => {
                eprintln!("retrying after: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("gave up: {e}"),
        }
    }
}

fn definition_of(namespace: &str, name: &str, team: &Team) -> RegistrationDefinition {
    serde_json::from_value(json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "registrationDefinitionName": "Contoso managed services",
            "managedByTenantId": MSP_TENANT,
            "authorizations": team.authorizations(),
        },
    }))
    .expect("definition")
}

fn assignment_of(namespace: &str, name: &str) -> RegistrationAssignment {
    serde_json::from_value(json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationAssignment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"registrationDefinitionRef": {"name": name}},
    }))
    .expect("assignment")
}

async fn create_delegation(client: &Client, namespace: &str, name: &str, team: &Team) {
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), namespace);
    let definition = definition_of(namespace, name, team);
    retry(|| definitions.create(&POST, &definition)).await;
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), namespace);
    let assignment = assignment_of(namespace, name);
    retry(|| assignments.create(&POST, &assignment)).await;
}

async fn onboard(client: &Client, subscriptions: &[String], team: &Team, concurrency: usize) {
    stream::iter(subscriptions)
        .for_each_concurrent(concurrency, |ns| create_delegation(client, ns, "contoso", team))
        .await;
}

/// Assignments in `Succeeded` state, cluster-wide.
async fn succeeded_assignments(client: &Client) -> usize {
    let api: Api<RegistrationAssignment> = Api::all(client.clone());
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|a| a.status.as_ref().and_then(|s| s.provisioning_state) == Some(ProvisioningState::Succeeded))
                .count()
        })
        .unwrap_or(0)
}

async fn until_succeeded(client: &Client, count: usize) {
    let started = Instant::now();
    while succeeded_assignments(client).await < count {
        assert!(started.elapsed() < GIVE_UP, "assignments never all succeeded");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The controller's labels renamed, so the controller neither adopts nor prunes the copies.
fn relabel(meta: &ObjectMeta, namespace: &str) -> ObjectMeta {
    let rename = |m: &Option<BTreeMap<String, String>>| {
        m.as_ref().map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.replace("kubelighthouse.io/", "baseline.kubelighthouse.io/"),
                        v.replace("kube-lighthouse", "kube-baseline"),
                    )
                })
                .collect()
        })
    };
    ObjectMeta {
        name: meta.name.clone(),
        namespace: Some(namespace.to_string()),
        labels: rename(&meta.labels),
        annotations: rename(&meta.annotations),
        ..Default::default()
    }
}

enum RbacObject {
    Role(Role),
    Binding(RoleBinding),
}

/// What the controller wrote into `from[i]`, addressed to `to[i]`: Roles first, as a careful
/// client writes them, so a binding never points at a missing Role.
async fn baseline_objects(client: &Client, from: &[String], to: &[String]) -> Vec<RbacObject> {
    let selector = ListParams::default().labels("app.kubernetes.io/managed-by=kube-lighthouse");
    let roles = Api::<Role>::all(client.clone()).list(&selector).await.expect("list roles").items;
    let bindings = Api::<RoleBinding>::all(client.clone()).list(&selector).await.expect("list bindings").items;
    let target: BTreeMap<&str, &str> = from.iter().map(String::as_str).zip(to.iter().map(String::as_str)).collect();
    let mut objects = Vec::new();
    for (source, destination) in from.iter().zip(to) {
        let here = |ns: Option<String>| ns.as_deref() == Some(source.as_str());
        for role in roles.iter().filter(|r| here(r.namespace())) {
            objects.push(RbacObject::Role(Role {
                metadata: relabel(&role.metadata, destination),
                rules: role.rules.clone(),
            }));
        }
        for binding in bindings.iter().filter(|b| here(b.namespace())) {
            objects.push(RbacObject::Binding(RoleBinding {
                metadata: relabel(&binding.metadata, destination),
                role_ref: binding.role_ref.clone(),
                subjects: binding.subjects.clone(),
            }));
        }
    }
    assert!(target.len() == from.len() && !objects.is_empty(), "nothing to copy for the baseline");
    objects
}

impl RbacObject {
    fn namespace(&self) -> String {
        match self {
            RbacObject::Role(r) => r.namespace(),
            RbacObject::Binding(b) => b.namespace(),
        }
        .unwrap_or_default()
    }

    /// The same object in `namespace`.
    fn moved_to(&self, namespace: &str) -> RbacObject {
        let moved = |meta: &ObjectMeta| ObjectMeta { namespace: Some(namespace.to_string()), ..meta.clone() };
        match self {
            RbacObject::Role(r) => RbacObject::Role(Role { metadata: moved(&r.metadata), ..r.clone() }),
            RbacObject::Binding(b) => RbacObject::Binding(RoleBinding { metadata: moved(&b.metadata), ..b.clone() }),
        }
    }
}

/// Server-side applies `objects` the way the controller does (one field manager, forced).
async fn apply_objects(client: &Client, objects: &[RbacObject], concurrency: usize) {
    let params = PatchParams::apply(keys::FIELD_MANAGER).force();
    stream::iter(objects)
        .for_each_concurrent(concurrency, |object| {
            let params = &params;
            async move {
                match object {
                    RbacObject::Role(role) => {
                        let api: Api<Role> = Api::namespaced(client.clone(), &object.namespace());
                        let (name, patch) = (role.name_any(), Patch::Apply(role));
                        retry(|| api.patch(&name, params, &patch)).await;
                    }
                    RbacObject::Binding(binding) => {
                        let api: Api<RoleBinding> = Api::namespaced(client.clone(), &object.namespace());
                        let (name, patch) = (binding.name_any(), Patch::Apply(binding));
                        retry(|| api.patch(&name, params, &patch)).await;
                    }
                }
            }
        })
        .await;
}

async fn write_baseline(client: &Client, objects: &[RbacObject], concurrency: usize) {
    stream::iter(objects)
        .for_each_concurrent(concurrency, |object| async move {
            match object {
                RbacObject::Role(role) => {
                    let api: Api<Role> = Api::namespaced(client.clone(), &object.namespace());
                    retry(|| api.create(&POST, role)).await;
                }
                RbacObject::Binding(binding) => {
                    let api: Api<RoleBinding> = Api::namespaced(client.clone(), &object.namespace());
                    retry(|| api.create(&POST, binding)).await;
                }
            }
        })
        .await;
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn latency_summary(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    json!({
        "samples": samples.len(),
        "p50_ms": round(percentile(&samples, 50.0)),
        "p95_ms": round(percentile(&samples, 95.0)),
        "p99_ms": round(percentile(&samples, 99.0)),
        "max_ms": round(percentile(&samples, 100.0)),
    })
}

/// Rounded to one decimal (ms, MiB, rates); [`round3`] for seconds.
fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024.0 / 1024.0),
        "kernel": kernel.trim(),
        "kubernetes": kubernetes_version(),
    })
}

/// The control plane's version, as `hack/control-plane.sh version` reports what it runs.
fn kubernetes_version() -> String {
    let out = std::process::Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hack/control-plane.sh"))
        .arg("version")
        .output();
    match out {
        Ok(o) if o.status.success() => format!("{} (hack/control-plane.sh)", String::from_utf8_lossy(&o.stdout).trim()),
        _ => "unknown".into(),
    }
}

fn say(what: &str) {
    println!("[bench {:>8}] {what}", jiff::Timestamp::now().strftime("%H:%M:%S"));
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

async fn run(args: Args) {
    let admin = kubeconfig();
    let client = client_for(&admin).await;
    let workdir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&workdir).expect("target/bench");
    let controller_config = impersonating_kubeconfig(&admin, &workdir, CONTROLLER_USER);
    let audit_path = admin.parent().expect("state dir").join("logs/audit.log");
    let mut audit = Audit::new(audit_path);
    let control_plane = ControlPlaneCpu::new(admin.parent().expect("state dir"));
    let mut results = json!({"machine": machine(), "args": {
        "n": args.n, "big_n": args.big_n, "reps": args.reps, "concurrency": args.concurrency, "idle_seconds": args.idle_seconds,
    }});
    say(&format!("{args:?}"));

    let mut controller =
        ControllerProcess::start(&controller_config, &workdir.join("controller-1.log"), args.concurrency);
    controller.wait_ready().await;

    // 1. Grant and revoke latency -------------------------------------------------------
    let latency_ns = "bench-latency".to_string();
    create_namespaces(&client, std::slice::from_ref(&latency_ns), true, 1).await;
    let (mut grants, mut revokes) = (Vec::new(), Vec::new());
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), &latency_ns);
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), &latency_ns);
    for rep in 0..args.reps + 5 {
        let team = Team::new(1_000_000 + rep);
        let name = format!("latency-{rep}");
        let probe = team.engineers_may_list_pods(&latency_ns);
        let started = Instant::now();
        create_delegation(&client, &latency_ns, &name, &team).await;
        let grant = until_one(&client, &probe, true, started).await;
        let started = Instant::now();
        assignments.delete(&name, &DeleteParams::default()).await.expect("delete assignment");
        let revoke = until_one(&client, &probe, false, started).await;
        if rep >= 5 {
            grants.push(grant);
            revokes.push(revoke);
        }
        let _ = definitions.delete(&name, &DeleteParams::default()).await;
        // The next repetition starts from a quiet controller.
        while definitions.get_opt(&name).await.ok().flatten().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    results["latency"] = json!({"grant": latency_summary(grants), "revoke": latency_summary(revokes)});
    say(&format!("latency: {}", results["latency"]));

    // 2. Onboarding at scale, then the baseline -------------------------------------------
    let n = args.n;
    let subscriptions: Vec<String> = (0..n).map(|i| format!("bench-sub-{i:05}")).collect();
    let baseline_namespaces: Vec<String> = (0..n).map(|i| format!("bench-base-{i:05}")).collect();
    create_namespaces(&client, &subscriptions, true, args.concurrency).await;
    create_namespaces(&client, &baseline_namespaces, false, args.concurrency).await;
    audit.settle(Duration::from_secs(3), Duration::from_secs(120)).await;
    let waited = control_plane.at_rest().await;
    say(&format!(
        "{n} subscription namespaces and {n} baseline namespaces exist; control plane at rest after {waited:?}"
    ));

    let team = Team::new(1);
    let probes: Vec<Probe> = subscriptions.iter().flat_map(|ns| team.probes(ns)).collect();
    let cpu_before = controller.cpu_seconds();
    let control_plane_before = control_plane.sample();
    let started = Instant::now();
    let (_, access) = tokio::join!(
        onboard(&client, &subscriptions, &team, args.concurrency),
        until_granted(&client, probes, OURS, started)
    );
    say(&format!("controller: all {} identities allowed in all {n} namespaces after {access:?}", 3));
    until_succeeded(&client, n).await;
    let status_done = started.elapsed();
    let mut writes = audit.writes();
    merge(&mut writes, audit.settle(Duration::from_secs(5), Duration::from_secs(600)).await);
    let settled = started.elapsed() - Duration::from_secs(5);
    let onboarding_cpu = controller.cpu_seconds() - cpu_before;
    let onboarding_control_plane_cpu = control_plane.since(&control_plane_before);
    say(&format!("controller: statuses Succeeded after {status_done:?}, quiet after {settled:?}; writes {writes:?}"));

    let objects = baseline_objects(&client, &subscriptions, &baseline_namespaces).await;
    let baseline_probes: Vec<Probe> = baseline_namespaces.iter().flat_map(|ns| team.probes(ns)).collect();
    control_plane.at_rest().await;
    let control_plane_before = control_plane.sample();
    let started = Instant::now();
    let (_, baseline) = tokio::join!(
        write_baseline(&client, &objects, args.concurrency),
        until_granted(&client, baseline_probes, BASELINE, started)
    );
    say(&format!("baseline: {} objects, all allowed after {baseline:?}", objects.len()));
    let baseline_control_plane_cpu = control_plane.since(&control_plane_before);
    results["onboarding"] = json!({
        "subscriptions": n,
        "controller_all_allowed_s": round3(access.as_secs_f64()),
        "controller_all_succeeded_s": round3(status_done.as_secs_f64()),
        "controller_quiet_s": round3(settled.as_secs_f64()),
        "baseline_objects": objects.len(),
        "baseline_all_allowed_s": round3(baseline.as_secs_f64()),
        "ratio": round3(access.as_secs_f64() / baseline.as_secs_f64()),
        "controller_writes": total(&writes),
        "controller_writes_per_subscription": round3(total(&writes) as f64 / n as f64),
        "controller_writes_by_kind": writes,
        "controller_cpu_s": round3(onboarding_cpu),
        "control_plane_cpu_s": onboarding_control_plane_cpu,
        "baseline_control_plane_cpu_s": baseline_control_plane_cpu,
    });
    say(&format!("onboarding: {}", results["onboarding"]));
    audit.settle(Duration::from_secs(3), Duration::from_secs(120)).await;

    // 3. Idle ------------------------------------------------------------------------------
    let cpu_before = controller.cpu_seconds();
    let window = Duration::from_secs(args.idle_seconds);
    tokio::time::sleep(window).await;
    let idle_writes = audit.writes();
    let idle_cpu = controller.cpu_seconds() - cpu_before;
    results["idle"] = json!({
        "delegations": n,
        "window_s": window.as_secs(),
        "writes": total(&idle_writes),
        "writes_per_minute": round(total(&idle_writes) as f64 * 60.0 / window.as_secs_f64()),
        "writes_by_kind": idle_writes,
        "cpu_s": round3(idle_cpu),
        "cpu_millicores": round(idle_cpu * 1000.0 / window.as_secs_f64()),
    });
    say(&format!("idle: {}", results["idle"]));

    // 4. Restart ---------------------------------------------------------------------------
    let peak_n = controller.peak_rss_mib();
    let stop = controller.stop();
    let (after, mut controller) = restart(&args, &controller_config, &workdir, 2, &mut audit, n).await;
    results["restart"] = json!({"graceful_stop_s": round3(stop.as_secs_f64()), "delegations": n, "after": after});
    say(&format!("restart: {}", results["restart"]));
    let peak_n_restart = controller.peak_rss_mib();
    results["memory"] =
        json!({"n": n, "peak_rss_mib_onboarding": round(peak_n), "peak_rss_mib_restart": round(peak_n_restart)});

    // 5. Memory at big N -------------------------------------------------------------------
    if args.big_n > n {
        let more: Vec<String> = (n..args.big_n).map(|i| format!("bench-sub-{i:05}")).collect();
        create_namespaces(&client, &more, true, args.concurrency).await;
        let started = Instant::now();
        onboard(&client, &more, &team, args.concurrency).await;
        until_succeeded(&client, args.big_n).await;
        say(&format!("{} delegations in place after {:?}", args.big_n, started.elapsed()));
        audit.settle(Duration::from_secs(5), Duration::from_secs(900)).await;
        let peak_onboarding = controller.peak_rss_mib();
        controller.stop();
        let (after, big) = restart(&args, &controller_config, &workdir, 3, &mut audit, args.big_n).await;
        results["memory"]["big_n"] = json!(args.big_n);
        results["memory"]["peak_rss_mib_big_onboarding"] = json!(round(peak_onboarding));
        results["memory"]["peak_rss_mib_big_restart"] = json!(round(big.peak_rss_mib()));
        results["restart_big"] = json!({"delegations": args.big_n, "after": after});
        controller = big;
    }
    say(&format!("memory: {}", results["memory"]));
    drop(controller);

    // 6. What each request costs the API server --------------------------------------------
    let template: Vec<&RbacObject> = objects.iter().filter(|o| o.namespace() == baseline_namespaces[0]).collect();
    results["request_cost"] =
        request_costs(&client, &control_plane, &template, &team, args.concurrency, n.min(COST_NAMESPACES)).await;
    say(&format!("request cost: {}", results["request_cost"]));

    let text = serde_json::to_string_pretty(&results).expect("json");
    if let Some(dir) = args.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&args.out, &text).expect("write results");
    println!("{text}");
    say(&format!("figures written to {}", args.out.display()));
}

/// Namespaces the request-cost measurement writes into.
const COST_NAMESPACES: usize = 500;

/// Rounds of the request-cost measurement: each kind is measured in every round, so the API
/// server's garbage collections and other hiccups spread over all kinds instead of landing on one.
const COST_ROUNDS: usize = 5;

/// API server CPU and requests, by kind of request.
#[derive(Default)]
struct Costs(BTreeMap<&'static str, (f64, usize)>);

impl Costs {
    /// Runs `work`, `requests` requests of `kind`, and adds the API server CPU it took.
    async fn measure(
        &mut self,
        control_plane: &ControlPlaneCpu,
        kind: &'static str,
        requests: usize,
        work: impl std::future::Future<Output = ()>,
    ) {
        let before = control_plane.sample();
        work.await;
        let after = control_plane.sample();
        let entry = self.0.entry(kind).or_default();
        entry.0 += after["kube-apiserver"] - before["kube-apiserver"];
        entry.1 += requests;
    }

    /// Milliseconds of API server CPU per request of `kind`.
    fn ms(&self, kind: &str) -> f64 {
        self.0.get(kind).map_or(f64::NAN, |(cpu, requests)| cpu * 1000.0 / *requests as f64)
    }
}

const POST_RBAC: &str = "create Role or RoleBinding (baseline)";
const APPLY_CREATING: &str = "server-side apply, creating";
const APPLY_UNCHANGED: &str = "server-side apply, unchanged";
const CREATE_DEFINITION: &str = "create RegistrationDefinition";
const CREATE_ASSIGNMENT: &str = "create RegistrationAssignment";
const ADD_FINALIZER: &str = "add finalizer (JSON patch)";
const REVIEW: &str = "SubjectAccessReview";

/// What each kind of request on the controller's path costs the API server, next to the plain
/// creates of the baseline, measured with the controller stopped and the control plane at rest:
/// once the API server is CPU-bound, the ratio of these costs is the ratio of the times.
async fn request_costs(
    client: &Client,
    control_plane: &ControlPlaneCpu,
    template: &[&RbacObject],
    team: &Team,
    concurrency: usize,
    n: usize,
) -> serde_json::Value {
    let posted: Vec<String> = (0..n).map(|i| format!("bench-cost-post-{i:05}")).collect();
    let applied: Vec<String> = (0..n).map(|i| format!("bench-cost-apply-{i:05}")).collect();
    create_namespaces(client, &posted, false, concurrency).await;
    create_namespaces(client, &applied, false, concurrency).await;
    control_plane.at_rest().await;
    let copies = |namespaces: &[String]| -> Vec<RbacObject> {
        namespaces.iter().flat_map(|ns| template.iter().map(|o| o.moved_to(ns))).collect()
    };
    // The controller's own patch.
    let finalize: Patch<()> =
        Patch::Json(serde_json::from_value(add_patch(None, "kubelighthouse.io/bench")).expect("json patch"));
    let mut costs = Costs::default();
    let per_round = n.div_ceil(COST_ROUNDS);
    for (posted, applied) in posted.chunks(per_round).zip(applied.chunks(per_round)) {
        let (posts, applies) = (copies(posted), copies(applied));
        costs.measure(control_plane, POST_RBAC, posts.len(), write_baseline(client, &posts, concurrency)).await;
        let applying = apply_objects(client, &applies, concurrency);
        costs.measure(control_plane, APPLY_CREATING, applies.len(), applying).await;
        let applying = apply_objects(client, &applies, concurrency);
        costs.measure(control_plane, APPLY_UNCHANGED, applies.len(), applying).await;
        let definitions = stream::iter(posted).for_each_concurrent(concurrency, |ns| async move {
            let api: Api<RegistrationDefinition> = Api::namespaced(client.clone(), ns);
            let definition = definition_of(ns, "contoso", team);
            retry(|| api.create(&POST, &definition)).await;
        });
        costs.measure(control_plane, CREATE_DEFINITION, posted.len(), definitions).await;
        let assignments = stream::iter(posted).for_each_concurrent(concurrency, |ns| async move {
            let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), ns);
            let assignment = assignment_of(ns, "contoso");
            retry(|| api.create(&POST, &assignment)).await;
        });
        costs.measure(control_plane, CREATE_ASSIGNMENT, posted.len(), assignments).await;
        let finalizers = stream::iter(posted).for_each_concurrent(concurrency, |ns| {
            let finalize = &finalize;
            async move {
                let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), ns);
                let params = PatchParams::default();
                retry(|| api.patch("contoso", &params, finalize)).await;
            }
        });
        costs.measure(control_plane, ADD_FINALIZER, posted.len(), finalizers).await;
        let probes: Vec<Probe> = posted.iter().flat_map(|ns| team.probes(ns)).collect();
        let reviews = stream::iter(&probes).for_each_concurrent(concurrency, |probe| async move {
            let _ = verdict(client, probe).await;
        });
        costs.measure(control_plane, REVIEW, probes.len(), reviews).await;
    }
    let per_object = template.len() as f64;
    let controller_path = costs.ms(CREATE_DEFINITION)
        + costs.ms(CREATE_ASSIGNMENT)
        + costs.ms(ADD_FINALIZER)
        + per_object * costs.ms(APPLY_CREATING);
    let baseline = per_object * costs.ms(POST_RBAC);
    let by_kind: BTreeMap<&str, f64> = costs.0.keys().map(|k| (*k, round3(costs.ms(k)))).collect();
    json!({
        "namespaces": n,
        "rounds": COST_ROUNDS,
        "kube_apiserver_cpu_ms_per_request": by_kind,
        "per_subscription_ms": {"controller_path": round3(controller_path), "baseline": round3(baseline)},
        "api_server_cpu_ratio": round3(controller_path / baseline),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Starts controller number `nth` and measures its way to every delegation reconciled.
async fn restart(
    args: &Args,
    kubeconfig: &Path,
    workdir: &Path,
    nth: usize,
    audit: &mut Audit,
    delegations: usize,
) -> (serde_json::Value, ControllerProcess) {
    audit.drain();
    let started = Instant::now();
    let log = workdir.join(format!("controller-{nth}.log"));
    let mut controller = ControllerProcess::start(kubeconfig, &log, args.concurrency);
    controller.wait_ready().await;
    let ready = started.elapsed();
    let reconciled = |kind: &'static str| {
        let controller = &controller;
        async move {
            controller
                .metric("kube_lighthouse_reconcile_duration_seconds_count", &format!("controller=\"{kind}\""))
                .await as usize
        }
    };
    while reconciled("assignment").await < delegations || reconciled("definition").await < delegations {
        assert!(started.elapsed() < GIVE_UP, "the restarted controller never reconciled everything");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_reconciled = started.elapsed();
    // Writes it made, including any that a late reconcile would add.
    let mut writes = audit.writes();
    merge(&mut writes, audit.settle(Duration::from_secs(10), Duration::from_secs(120)).await);
    let figures = json!({
        "ready_s": round3(ready.as_secs_f64()),
        "all_reconciled_s": round3(all_reconciled.as_secs_f64()),
        "writes": total(&writes),
        "writes_by_kind": writes,
        "cpu_s": round3(controller.cpu_seconds()),
    });
    (figures, controller)
}
