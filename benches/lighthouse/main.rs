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
//! 7. **Admission**: the webhook's answer time for an assignment of a subscription with 50
//!    resource groups, by an author who must be asked about every permission and by one who
//!    may bind the roles, and the SubjectAccessReviews each request costs.
//! 8. **Onboarding by an `Onboarding`** ([`policy`]): `--policy-n` matching namespaces
//!    onboarded by one object, then a new namespace's time to working access, and an
//!    opt-out's, a departure's and the deletion's time to revoked. `--only-policy` runs this
//!    phase alone.
//! 9. **Revocation at scale** ([`revocation`]): a restart with `--rejected-n` rejected
//!    assignments against one without, and `--revoke-n` definitions deleted at once until
//!    their last grant is gone. `--only-revocation` runs this phase alone.
//! 10. **The fleet** ([`fleet`]): a hub following `--fleet-clusters` simulated customer
//!     clusters ([`report_server`]) over TLS: `kubectl get customers` at the hub, a change's
//!     time to the hub, the hub's memory and CPU. `--only-fleet` runs this phase alone.
//!
//! The controller is the release binary, run as a subprocess under an impersonated user so the
//! API server's audit log attributes every request it makes; CPU and RSS come from `/proc`.
//! Run with `hack/bench.sh` (fresh control plane) or `cargo bench --bench lighthouse`.
//! Under `cargo test` this target only says how to run it: benchmarks are not tests.
//!
//! | module | owns |
//! |---|---|
//! | [`controller`] | the controller subprocess and the CPU, memory and metrics read from it and the control plane |
//! | [`audit`] | the controller's requests, from the API server's audit log |
//! | [`probe`] | the access probes (SubjectAccessReviews) and the delegation every phase grants |
//! | [`objects`] | the namespaces, delegations and baseline RBAC the benchmark writes |
//! | [`phases`] | phases 1 to 6, each returning its part of the report |
//! | [`admission`] | phase 7, the admission webhook's authority check |
//! | [`policy`] | phase 8, onboarding at scale by an `Onboarding` |
//! | [`revocation`] | phase 9, revocation at scale: rejected assignments at restart, a mass deletion |
//! | [`fleet`] | phase 10, a hub following hundreds of customer clusters |
//! | [`report_server`] | phase 10's simulated customer clusters: report servers over TLS |
//! | [`report`] | the typed report and how it prints |

#[path = "../../tests/common/mod.rs"]
mod common;

mod admission;
mod audit;
mod controller;
mod fleet;
mod objects;
mod phases;
mod policy;
mod probe;
mod report;
mod report_server;
mod revocation;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kube::api::PostParams;

use crate::common::{client_for, impersonating_kubeconfig, kubeconfig};
use crate::controller::{ControlPlaneCpu, ControllerProcess};
use crate::phases::Bench;
use crate::probe::Team;
use crate::report::{json, machine, say, Report, Settings};

/// The user the controller under benchmark acts as (impersonated, still in system:masters).
const CONTROLLER_USER: &str = "kube-lighthouse-bench";
/// A run that takes longer than this has gone wrong; it is reported, not waited for.
const GIVE_UP: Duration = Duration::from_secs(45 * 60);
/// Create parameters, the defaults.
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
    /// Subscriptions an `Onboarding` selects in phase 8 (0 skips it).
    #[arg(long, env = "KL_BENCH_POLICY_N", default_value_t = 10_000)]
    policy_n: usize,
    /// Phase 8's repetitions of new namespace, opt-out and departure (after 2 warm-up ones).
    #[arg(long, env = "KL_BENCH_POLICY_REPS", default_value_t = 50)]
    policy_reps: usize,
    /// Runs phase 8 alone, with a controller of its own, and writes only its figures.
    #[arg(long)]
    only_policy: bool,
    /// Phase 9's delegations, all deleted at once at its end.
    #[arg(long, env = "KL_BENCH_REVOKE_N", default_value_t = 400)]
    revoke_n: usize,
    /// Phase 9's rejected assignments (no definition) for the second restart.
    #[arg(long, env = "KL_BENCH_REJECTED_N", default_value_t = 500)]
    rejected_n: usize,
    /// Phase 9's RoleBindings that are not the controller's (what a live list reads too).
    #[arg(long, env = "KL_BENCH_FILLER_BINDINGS", default_value_t = 10_000)]
    filler_bindings: usize,
    /// Runs phase 9 alone, with controllers of its own, and writes only its figures.
    #[arg(long)]
    only_revocation: bool,
    /// Phase 10's simulated customer clusters (0 skips the phase).
    #[arg(long, env = "KL_BENCH_FLEET_CLUSTERS", default_value_t = 500)]
    fleet_clusters: usize,
    /// Delegations in each simulated cluster's report.
    #[arg(long, env = "KL_BENCH_FLEET_DELEGATIONS", default_value_t = 20)]
    fleet_delegations: usize,
    /// `GET customers` requests at the hub (after 10 warm-up ones); a tenth as many commands.
    #[arg(long, env = "KL_BENCH_FLEET_REPS", default_value_t = 500)]
    fleet_reps: usize,
    /// Rounds of changes, each in `--fleet-changed` clusters at once.
    #[arg(long, env = "KL_BENCH_FLEET_ROUNDS", default_value_t = 5)]
    fleet_rounds: usize,
    /// Clusters changed in each round.
    #[arg(long, env = "KL_BENCH_FLEET_CHANGED", default_value_t = 20)]
    fleet_changed: usize,
    /// The hub's `--hub-poll-ms`.
    #[arg(long, env = "KL_BENCH_FLEET_POLL_MS", default_value_t = 1000)]
    fleet_poll_ms: u64,
    /// The window over which the hub's steady polling is measured.
    #[arg(long, env = "KL_BENCH_FLEET_WINDOW_SECONDS", default_value_t = 30)]
    fleet_window_seconds: u64,
    /// Runs phase 10 alone and writes only its figures.
    #[arg(long)]
    only_fleet: bool,
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

/// One run: every phase in order, then the report.
async fn run(args: Args) {
    let admin = kubeconfig();
    let client = client_for(&admin).await;
    let workdir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&workdir).expect("target/bench");
    let controller_config = impersonating_kubeconfig(&admin, &workdir, CONTROLLER_USER);
    let audit_path = admin.parent().expect("state dir").join("logs/audit.log");
    let audit = audit::Audit::new(audit_path);
    let control_plane = ControlPlaneCpu::new(admin.parent().expect("state dir"));
    let machine = machine();
    let settings = Settings {
        n: args.n,
        big_n: args.big_n,
        reps: args.reps,
        concurrency: args.concurrency,
        idle_seconds: args.idle_seconds,
    };
    say(&format!("{args:?}"));
    let fleet_settings = fleet::FleetSettings {
        clusters: args.fleet_clusters,
        delegations: args.fleet_delegations,
        reps: args.fleet_reps,
        rounds: args.fleet_rounds,
        changed: args.fleet_changed,
        poll_ms: args.fleet_poll_ms,
        window_seconds: args.fleet_window_seconds,
    };
    let mut bench = Bench { args, client, controller_config, workdir, audit, control_plane };
    if bench.args.only_fleet {
        let figures =
            fleet::fleet(&bench.client, &admin, &bench.controller_config, &bench.workdir, &fleet_settings).await;
        let text = serde_json::to_string_pretty(&json(&serde_json::json!({"machine": machine, "fleet": figures})))
            .expect("json");
        if let Some(dir) = bench.args.out.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&bench.args.out, &text).expect("write results");
        println!("{text}");
        return;
    }
    if bench.args.only_revocation {
        let sizes = (bench.args.revoke_n, bench.args.rejected_n, bench.args.filler_bindings);
        let concurrency = bench.args.concurrency;
        let figures =
            revocation::revocation(&bench.client, &bench.controller_config, &bench.workdir, sizes, concurrency).await;
        let text = serde_json::to_string_pretty(&json(&serde_json::json!({"machine": machine, "revocation": figures})))
            .expect("json");
        if let Some(dir) = bench.args.out.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&bench.args.out, &text).expect("write results");
        println!("{text}");
        return;
    }
    if bench.args.only_policy {
        let mut controller = ControllerProcess::start(
            &bench.controller_config,
            &bench.workdir.join("controller-policy.log"),
            bench.args.concurrency,
        );
        controller.wait_ready().await;
        let (n, reps, concurrency) = (bench.args.policy_n, bench.args.policy_reps, bench.args.concurrency);
        let figures = policy::policy_onboarding(&bench.client, n, reps, concurrency).await;
        let text = serde_json::to_string_pretty(&json(&serde_json::json!({
            "machine": machine, "policy_onboarding": figures,
            "controller_peak_rss_mib": controller.peak_rss_mib(), "controller_cpu_s": controller.cpu_seconds()})))
        .expect("json");
        if let Some(dir) = bench.args.out.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&bench.args.out, &text).expect("write results");
        println!("{text}");
        return;
    }

    let mut controller = ControllerProcess::start(
        &bench.controller_config,
        &bench.workdir.join("controller-1.log"),
        bench.args.concurrency,
    );
    controller.wait_ready().await;

    // 1. Grant and revoke latency
    let latency = phases::latency(&bench).await;
    say(&format!("latency: {}", json(&latency)));

    // 2. Onboarding at scale, then the baseline
    let team = Team::new(1);
    let onboarded = phases::onboarding(&mut bench, &controller, &team).await;
    say(&format!("onboarding: {}", json(&onboarded.report)));
    bench.audit.settle(Duration::from_secs(3), Duration::from_secs(120)).await;

    // 3. Idle
    let idle = phases::idle(&mut bench, &controller).await;
    say(&format!("idle: {}", json(&idle)));

    // 4. Restart
    let (restart, mut memory, controller) = phases::restart(&mut bench, controller).await;

    // 5. Memory at big N
    let (restart_big, controller) = phases::big_n(&mut bench, controller, &team, &mut memory).await;
    say(&format!("memory: {}", json(&memory)));
    drop(controller);

    // 6. What each request costs the API server
    let request_cost = phases::request_costs(&bench, &onboarded, &team).await;
    say(&format!("request cost: {}", json(&request_cost)));

    // 7. The admission webhook on a subscription with 50 resource groups
    let admission = admission::admission(&mut bench, &team).await;
    say(&format!("admission: {}", json(&admission)));

    // 8. Onboarding by an Onboarding
    let policy_onboarding = if bench.args.policy_n > 0 {
        let mut controller = ControllerProcess::start(
            &bench.controller_config,
            &bench.workdir.join("controller-policy.log"),
            bench.args.concurrency,
        );
        controller.wait_ready().await;
        let (n, reps, concurrency) = (bench.args.policy_n, bench.args.policy_reps, bench.args.concurrency);
        let figures = policy::policy_onboarding(&bench.client, n, reps, concurrency).await;
        say(&format!("policy onboarding: {}", json(&figures)));
        Some(figures)
    } else {
        None
    };

    // 10. The fleet
    let fleet = if fleet_settings.clusters > 0 {
        let figures =
            fleet::fleet(&bench.client, &admin, &bench.controller_config, &bench.workdir, &fleet_settings).await;
        say(&format!("fleet: {}", json(&figures)));
        Some(figures)
    } else {
        None
    };

    let report = Report {
        machine,
        args: settings,
        latency,
        onboarding: onboarded.report,
        idle,
        restart,
        memory,
        restart_big,
        request_cost,
        admission,
        policy_onboarding,
        fleet,
    };
    report.write(&bench.args.out);
}
