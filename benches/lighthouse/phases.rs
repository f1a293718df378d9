//! The phases of one run, in order, each returning its part of the
//! [`Report`](crate::report::Report): latency,
//! onboarding at scale against the baseline, idle, restart, memory at big N, request cost.
//! What is measured, and how, is described in the crate's docs and docs/benchmarks.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Client;
use kube_lighthouse::api::{RegistrationAssignment, RegistrationDefinition};
use kube_lighthouse::controller::finalizer::add_patch;

use crate::audit::{merge, total, Audit};
use crate::controller::{ControlPlaneCpu, ControllerProcess};
use crate::objects::{
    apply_objects, assignment_of, baseline_objects, create_delegation, create_namespaces, definition_of, onboard,
    onboard_timed, retry, until_succeeded, write_baseline, RbacObject, Starts,
};
use crate::probe::{until_granted, until_one, verdict, Granted, Probe, Team};
use crate::report::{
    latency_summary, round, round3, say, Idle, Latency, Memory, Onboarding, PerCustomer, PerSubscription, Reconciled,
    RequestCost, Restart, RestartBig,
};
use crate::{Args, GIVE_UP, POST};

/// Labels of the RBAC objects the controller writes, and of the baseline's copies of them.
const OURS: &str = "app.kubernetes.io/managed-by=kube-lighthouse";
const BASELINE: &str = "app.kubernetes.io/managed-by=kube-baseline";

/// Namespaces the request-cost measurement writes into.
const COST_NAMESPACES: usize = 500;

/// Rounds of the request-cost measurement: each kind is measured in every round, so the API
/// server's garbage collections and other hiccups spread over all kinds instead of landing on one.
const COST_ROUNDS: usize = 5;

/// What every phase uses: the settings, the admin client, where the controller's kubeconfig
/// and logs are, and the meters.
pub struct Bench {
    pub args: Args,
    pub client: Client,
    /// The controller's kubeconfig (impersonating `CONTROLLER_USER`).
    pub controller_config: PathBuf,
    /// target/bench: controller logs.
    pub workdir: PathBuf,
    pub audit: Audit,
    pub control_plane: ControlPlaneCpu,
}

/// Phase 1: Grant and revoke latency of one delegation, over `--reps` repetitions after 5 warm-up ones.
pub async fn latency(bench: &Bench) -> Latency {
    let (client, args) = (&bench.client, &bench.args);
    let latency_ns = "bench-latency".to_string();
    create_namespaces(client, std::slice::from_ref(&latency_ns), true, 1).await;
    let (mut grants, mut revokes) = (Vec::new(), Vec::new());
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), &latency_ns);
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), &latency_ns);
    for rep in 0..args.reps + 5 {
        let team = Team::new(1_000_000 + rep);
        let name = format!("latency-{rep}");
        let probe = team.engineers_may_list_pods(&latency_ns);
        let started = Instant::now();
        create_delegation(client, &latency_ns, &name, &team).await;
        let grant = until_one(client, &probe, true, started).await;
        let started = Instant::now();
        assignments.delete(&name, &DeleteParams::default()).await.expect("delete assignment");
        let revoke = until_one(client, &probe, false, started).await;
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
    Latency { grant: latency_summary(grants), revoke: latency_summary(revokes) }
}

/// What onboarding leaves for the request-cost phase: the baseline's objects and namespaces.
pub struct Onboarded {
    pub report: Onboarding,
    pub baseline_objects: Vec<RbacObject>,
    pub baseline_namespaces: Vec<String>,
}

/// Phase 2: `--n` subscriptions onboarded by `team`'s delegation through the controller, then the
/// very same RBAC written directly (the baseline); each timed until every access is allowed.
pub async fn onboarding(bench: &mut Bench, controller: &ControllerProcess, team: &Team) -> Onboarded {
    let (client, args) = (&bench.client, &bench.args);
    let (audit, control_plane) = (&mut bench.audit, &bench.control_plane);
    let n = args.n;
    let subscriptions: Vec<String> = (0..n).map(|i| format!("bench-sub-{i:05}")).collect();
    let baseline_namespaces: Vec<String> = (0..n).map(|i| format!("bench-base-{i:05}")).collect();
    create_namespaces(client, &subscriptions, true, args.concurrency).await;
    create_namespaces(client, &baseline_namespaces, false, args.concurrency).await;
    audit.settle(Duration::from_secs(3), Duration::from_secs(120)).await;
    let waited = control_plane.at_rest().await;
    say(&format!(
        "{n} subscription namespaces and {n} baseline namespaces exist; control plane at rest after {waited:?}"
    ));

    let probes: Vec<Probe> = subscriptions.iter().flat_map(|ns| team.probes(ns)).collect();
    let cpu_before = controller.cpu_seconds();
    let control_plane_before = control_plane.sample();
    let started = Instant::now();
    let starts = Starts::new(started);
    let (_, granted) = tokio::join!(
        onboard_timed(client, &subscriptions, team, args.concurrency, &starts),
        until_granted(client, probes, OURS, started)
    );
    let access = granted.last;
    let controller_per_customer = per_customer(&starts.into_inner(), &granted);
    say(&format!("controller: all {} identities allowed in all {n} namespaces after {access:?}", 3));
    say(&format!("controller, per customer: {}", crate::report::json(&controller_per_customer)));
    until_succeeded(client, n).await;
    let status_done = started.elapsed();
    let mut writes = audit.writes();
    merge(&mut writes, audit.settle(Duration::from_secs(5), Duration::from_secs(600)).await);
    let settled = started.elapsed() - Duration::from_secs(5);
    let onboarding_cpu = controller.cpu_seconds() - cpu_before;
    let onboarding_control_plane_cpu = control_plane.since(&control_plane_before);
    say(&format!("controller: statuses Succeeded after {status_done:?}, quiet after {settled:?}; writes {writes:?}"));

    let objects = baseline_objects(client, &subscriptions, &baseline_namespaces).await;
    let baseline_probes: Vec<Probe> = baseline_namespaces.iter().flat_map(|ns| team.probes(ns)).collect();
    control_plane.at_rest().await;
    let control_plane_before = control_plane.sample();
    let started = Instant::now();
    let starts = Starts::new(started);
    let (_, baseline_granted) = tokio::join!(
        write_baseline(client, &objects, args.concurrency, &starts),
        until_granted(client, baseline_probes, BASELINE, started)
    );
    let baseline = baseline_granted.last;
    let baseline_per_customer = per_customer(&starts.into_inner(), &baseline_granted);
    say(&format!("baseline: {} objects, all allowed after {baseline:?}", objects.len()));
    say(&format!("baseline, per customer: {}", crate::report::json(&baseline_per_customer)));
    let baseline_control_plane_cpu = control_plane.since(&control_plane_before);
    let report = Onboarding {
        subscriptions: n,
        controller_all_allowed_s: round3(access.as_secs_f64()),
        controller_all_succeeded_s: round3(status_done.as_secs_f64()),
        controller_quiet_s: round3(settled.as_secs_f64()),
        baseline_objects: objects.len(),
        baseline_all_allowed_s: round3(baseline.as_secs_f64()),
        ratio: round3(access.as_secs_f64() / baseline.as_secs_f64()),
        controller_writes: total(&writes),
        controller_writes_per_subscription: round3(total(&writes) as f64 / n as f64),
        controller_cpu_s: round3(onboarding_cpu),
        controller_writes_by_kind: writes,
        control_plane_cpu_s: onboarding_control_plane_cpu,
        baseline_control_plane_cpu_s: baseline_control_plane_cpu,
        per_customer_p99_ratio: round3(
            controller_per_customer.first_allowed.p99_ms / baseline_per_customer.first_allowed.p99_ms,
        ),
        controller_per_customer,
        baseline_per_customer,
    };
    Onboarded { report, baseline_objects: objects, baseline_namespaces }
}

/// Each customer's time from the start of its first write to its first and to its last
/// identity allowed.
fn per_customer(starts: &BTreeMap<String, Duration>, granted: &Granted) -> PerCustomer {
    let since_start = |at: &BTreeMap<String, Duration>| {
        at.iter()
            .map(|(ns, at)| at.saturating_sub(*starts.get(ns).expect("every probed namespace was written")))
            .collect::<Vec<_>>()
    };
    PerCustomer {
        first_allowed: latency_summary(since_start(&granted.first_in)),
        all_allowed: latency_summary(since_start(&granted.last_in)),
    }
}

/// Phase 3: API writes and controller CPU over `--idle-seconds` with nothing changing.
pub async fn idle(bench: &mut Bench, controller: &ControllerProcess) -> Idle {
    let cpu_before = controller.cpu_seconds();
    let window = Duration::from_secs(bench.args.idle_seconds);
    bench.audit.writes();
    let leases_before = bench.audit.lease_writes;
    tokio::time::sleep(window).await;
    let idle_writes = bench.audit.writes();
    let lease_writes = bench.audit.lease_writes - leases_before;
    let idle_cpu = controller.cpu_seconds() - cpu_before;
    Idle {
        delegations: bench.args.n,
        window_s: window.as_secs(),
        writes: total(&idle_writes),
        writes_per_minute: round(total(&idle_writes) as f64 * 60.0 / window.as_secs_f64()),
        writes_by_kind: idle_writes,
        lease_renewals_per_minute: round(lease_writes as f64 * 60.0 / window.as_secs_f64()),
        cpu_s: round3(idle_cpu),
        cpu_millicores: round(idle_cpu * 1000.0 / window.as_secs_f64()),
    }
}

/// Phase 4: A graceful stop of `controller`, and controller number 2 started with nothing changed;
/// the peak memory of both. Returns the running second controller.
pub async fn restart(bench: &mut Bench, controller: ControllerProcess) -> (Restart, Memory, ControllerProcess) {
    let n = bench.args.n;
    let peak_n = controller.peak_rss_mib();
    let stop = controller.stop();
    let (after, controller) = start_and_reconcile(bench, 2, n).await;
    let restart = Restart { graceful_stop_s: round3(stop.as_secs_f64()), delegations: n, after };
    say(&format!("restart: {}", crate::report::json(&restart)));
    let memory = Memory {
        n,
        peak_rss_mib_onboarding: round(peak_n),
        peak_rss_mib_restart: round(controller.peak_rss_mib()),
        big_n: None,
        peak_rss_mib_big_onboarding: None,
        peak_rss_mib_big_restart: None,
    };
    (restart, memory, controller)
}

/// Phase 5: Onboarding up to `--big-n` delegations, then controller number 3 started on them; their
/// peak memory goes into `memory`. Returns the running controller.
pub async fn big_n(
    bench: &mut Bench,
    mut controller: ControllerProcess,
    team: &Team,
    memory: &mut Memory,
) -> (Option<RestartBig>, ControllerProcess) {
    let (n, big_n, concurrency) = (bench.args.n, bench.args.big_n, bench.args.concurrency);
    let mut restart_big = None;
    if big_n > n {
        let client = &bench.client;
        let more: Vec<String> = (n..big_n).map(|i| format!("bench-sub-{i:05}")).collect();
        create_namespaces(client, &more, true, concurrency).await;
        let started = Instant::now();
        onboard(client, &more, team, concurrency).await;
        until_succeeded(client, big_n).await;
        say(&format!("{} delegations in place after {:?}", big_n, started.elapsed()));
        bench.audit.settle(Duration::from_secs(5), Duration::from_secs(900)).await;
        let peak_onboarding = controller.peak_rss_mib();
        controller.stop();
        let (after, big) = start_and_reconcile(bench, 3, big_n).await;
        memory.big_n = Some(big_n);
        memory.peak_rss_mib_big_onboarding = Some(round(peak_onboarding));
        memory.peak_rss_mib_big_restart = Some(round(big.peak_rss_mib()));
        restart_big = Some(RestartBig { delegations: big_n, after });
        controller = big;
    }
    (restart_big, controller)
}

/// Starts controller number `nth` and measures its way to every delegation reconciled.
async fn start_and_reconcile(bench: &mut Bench, nth: usize, delegations: usize) -> (Reconciled, ControllerProcess) {
    let audit = &mut bench.audit;
    audit.drain();
    let started = Instant::now();
    let log = bench.workdir.join(format!("controller-{nth}.log"));
    let mut controller = ControllerProcess::start(&bench.controller_config, &log, bench.args.concurrency);
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
    let figures = Reconciled {
        ready_s: round3(ready.as_secs_f64()),
        all_reconciled_s: round3(all_reconciled.as_secs_f64()),
        writes: total(&writes),
        writes_by_kind: writes,
        cpu_s: round3(controller.cpu_seconds()),
    };
    (figures, controller)
}

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

/// Phase 6: What each kind of request on the controller's path costs the API server, next to the
/// plain creates of the baseline (copies of `onboarded`'s objects of one namespace), measured
/// with the controller stopped and the control plane at rest: once the API server is
/// CPU-bound, the ratio of these costs is the ratio of the times.
pub async fn request_costs(bench: &Bench, onboarded: &Onboarded, team: &Team) -> RequestCost {
    let (client, control_plane, concurrency) = (&bench.client, &bench.control_plane, bench.args.concurrency);
    let first = &onboarded.baseline_namespaces[0];
    let template: Vec<&RbacObject> = onboarded.baseline_objects.iter().filter(|o| &o.namespace() == first).collect();
    let n = bench.args.n.min(COST_NAMESPACES);
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
        costs
            .measure(
                control_plane,
                POST_RBAC,
                posts.len(),
                write_baseline(client, &posts, concurrency, &Starts::new(Instant::now())),
            )
            .await;
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
    let by_kind: BTreeMap<String, f64> = costs.0.keys().map(|k| (k.to_string(), round3(costs.ms(k)))).collect();
    RequestCost {
        namespaces: n,
        rounds: COST_ROUNDS,
        kube_apiserver_cpu_ms_per_request: by_kind,
        per_subscription_ms: PerSubscription { controller_path: round3(controller_path), baseline: round3(baseline) },
        api_server_cpu_ratio: round3(controller_path / baseline),
    }
}
