//! The benchmark's report: one struct per phase, with the unit of every figure in its name
//! (`_ms`, `_s`, `_mib`, `_millicores`), serialized to the JSON that `hack/bench.sh` leaves in
//! `target/bench/results.json` and docs/benchmarks.md quotes. Keys print sorted, as before the
//! report was typed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// Every figure of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub args: Settings,
    pub latency: Latency,
    pub onboarding: Onboarding,
    pub idle: Idle,
    pub restart: Restart,
    pub memory: Memory,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_big: Option<RestartBig>,
    pub request_cost: RequestCost,
    pub admission: Admission,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_onboarding: Option<PolicyOnboarding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetFigures>,
}

/// Phase 8: onboarding at scale by an `Onboarding` (docs/onboarding.md).
#[derive(Debug, Serialize)]
pub struct PolicyOnboarding {
    /// Subscription namespaces the onboarding selects.
    pub namespaces: usize,
    /// From the onboarding's creation until its status counts every one onboarded.
    pub bulk_onboarded_s: f64,
    /// From its creation until every assignment it created is Succeeded (RBAC in force).
    pub bulk_succeeded_s: f64,
    /// A new matching namespace created → the team's identity allowed there.
    pub new_namespace_access: LatencySummary,
    /// The opt-out label set → denied.
    pub opt_out_revoked: LatencySummary,
    /// The selected label changed → denied.
    pub left_selector_revoked: LatencySummary,
    /// The onboarding deleted → denied, in each of a sample of namespaces spread over all.
    pub deleted_sample_revoked: LatencySummary,
    /// The onboarding deleted → every definition and assignment it created gone.
    pub deleted_all_objects_removed_s: f64,
}

/// Where the figures were measured.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_gib: f64,
    pub kernel: String,
    pub kubernetes: String,
}

/// The run's parameters (see `Args`).
#[derive(Debug, Serialize)]
pub struct Settings {
    pub n: usize,
    pub big_n: usize,
    pub reps: usize,
    pub concurrency: usize,
    pub idle_seconds: u64,
}

/// Phase 1: Grant and revoke latency.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub grant: LatencySummary,
    pub revoke: LatencySummary,
}

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Serialize)]
pub struct LatencySummary {
    pub samples: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Phase 2: Onboarding at scale, and the baseline's direct writes of the same RBAC.
#[derive(Debug, Serialize)]
pub struct Onboarding {
    pub subscriptions: usize,
    pub controller_all_allowed_s: f64,
    pub controller_all_succeeded_s: f64,
    pub controller_quiet_s: f64,
    pub baseline_objects: usize,
    pub baseline_all_allowed_s: f64,
    /// Controller time to access over the baseline's.
    pub ratio: f64,
    pub controller_writes: usize,
    pub controller_writes_per_subscription: f64,
    pub controller_writes_by_kind: BTreeMap<String, usize>,
    pub controller_cpu_s: f64,
    /// CPU seconds by control-plane process.
    pub control_plane_cpu_s: BTreeMap<String, f64>,
    pub baseline_control_plane_cpu_s: BTreeMap<String, f64>,
    /// Each customer's own time to access in the wave, through the controller.
    pub controller_per_customer: PerCustomer,
    /// The same for the baseline's direct writes.
    pub baseline_per_customer: PerCustomer,
    /// Controller p99 over baseline p99, of the first allowed request.
    pub per_customer_p99_ratio: f64,
}

/// Each customer's (subscription namespace's) time to access during a wave: from the start
/// of its own first write (its definition, or its first Role in the baseline) to the first
/// of its identities allowed, and to all of them allowed.
#[derive(Debug, Serialize)]
pub struct PerCustomer {
    pub first_allowed: LatencySummary,
    pub all_allowed: LatencySummary,
}

/// Phase 3: Idle, with every delegation in place.
#[derive(Debug, Serialize)]
pub struct Idle {
    pub delegations: usize,
    pub window_s: u64,
    pub writes: usize,
    pub writes_per_minute: f64,
    pub writes_by_kind: BTreeMap<String, usize>,
    /// The leader's Lease renewals (SPEC §12), not counted in `writes`.
    pub lease_renewals_per_minute: f64,
    pub cpu_s: f64,
    pub cpu_millicores: f64,
}

/// Phase 4: A graceful stop, and a restart with nothing changed.
#[derive(Debug, Serialize)]
pub struct Restart {
    pub graceful_stop_s: f64,
    pub delegations: usize,
    pub after: Reconciled,
}

/// Phase 5: A restart at `--big-n` delegations.
#[derive(Debug, Serialize)]
pub struct RestartBig {
    pub delegations: usize,
    pub after: Reconciled,
}

/// A started controller's way to every delegation reconciled.
#[derive(Debug, Serialize)]
pub struct Reconciled {
    pub ready_s: f64,
    pub all_reconciled_s: f64,
    pub writes: usize,
    pub writes_by_kind: BTreeMap<String, usize>,
    pub cpu_s: f64,
}

/// Phase 5: The controller's peak resident memory, at `--n` and (when run) at `--big-n`.
#[derive(Debug, Serialize)]
pub struct Memory {
    pub n: usize,
    pub peak_rss_mib_onboarding: f64,
    pub peak_rss_mib_restart: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub big_n: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib_big_onboarding: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib_big_restart: Option<f64>,
}

/// Phase 6: API server CPU per request, on the controller's path and on the baseline's.
#[derive(Debug, Serialize)]
pub struct RequestCost {
    pub namespaces: usize,
    pub rounds: usize,
    pub kube_apiserver_cpu_ms_per_request: BTreeMap<String, f64>,
    pub per_subscription_ms: PerSubscription,
    pub api_server_cpu_ratio: f64,
}

/// API server CPU milliseconds one subscription costs, both ways.
#[derive(Debug, Serialize)]
pub struct PerSubscription {
    pub controller_path: f64,
    pub baseline: f64,
}

/// Phase 7: the admission webhook's answer time on a subscription with 50 resource groups.
#[derive(Debug, Serialize)]
pub struct Admission {
    /// The subscription and its resource groups: the namespaces the assignment covers.
    pub namespaces: usize,
    /// An author bound to `admin` in each namespace: may not `bind` the roles, so every
    /// permission is asked until the first it lacks.
    pub namespace_admin: AdmissionCase,
    /// An author bound to `cluster-admin` in each namespace: holds everything there.
    pub namespace_cluster_admin: AdmissionCase,
    /// An author who may `bind` the catalog's ClusterRoles.
    pub binder: AdmissionCase,
}

/// One author's figures: the dry-run create's round trip, and the SubjectAccessReviews the
/// webhook sent per request.
#[derive(Debug, Serialize)]
pub struct AdmissionCase {
    /// Requests admitted, refused by the webhook, and not answered within its timeout.
    pub admitted: usize,
    pub refused: usize,
    pub timed_out: usize,
    pub access_reviews_per_request: f64,
    pub latency: LatencySummary,
}

/// A report section as JSON, keys sorted, as it prints.
pub fn json(section: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(section).expect("a report serializes")
}

impl Report {
    /// Writes the report to `out` and prints it.
    pub fn write(&self, out: &Path) {
        let text = serde_json::to_string_pretty(&json(self)).expect("json");
        if let Some(dir) = out.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(out, &text).expect("write results");
        println!("{text}");
        say(&format!("figures written to {}", out.display()));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// The percentiles of `samples`.
pub fn latency_summary(mut samples: Vec<Duration>) -> LatencySummary {
    samples.sort();
    LatencySummary {
        samples: samples.len(),
        p50_ms: round(percentile(&samples, 50.0)),
        p95_ms: round(percentile(&samples, 95.0)),
        p99_ms: round(percentile(&samples, 99.0)),
        max_ms: round(percentile(&samples, 100.0)),
    }
}

/// Rounded to one decimal (ms, MiB, rates); [`round3`] for seconds.
pub fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Rounded to three decimals (seconds, ratios).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// This machine, from `/proc`, and the control plane's Kubernetes version.
pub fn machine() -> Machine {
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
    Machine {
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cpu_model: model.map(String::from),
        memory_gib: round(mem_kib / 1024.0 / 1024.0),
        kernel: kernel.trim().to_string(),
        kubernetes: kubernetes_version(),
    }
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

/// A progress line, timestamped.
pub fn say(what: &str) {
    println!("[bench {:>8}] {what}", jiff::Timestamp::now().strftime("%H:%M:%S"));
}
