//! The chaos suite (issue 19, SPEC §3, §5, §6, §12): faults injected into the real local
//! control plane while delegations are onboarded and revoked, with
//!
//! - access sampled *throughout* each case by a background sampler: SubjectAccessReviews for
//!   a set of (principal, namespace, verb) probes, and real requests with the principals' own
//!   tokens from the local issuers; each answer is judged against the desired state computed
//!   just before and just after it, independently of the controller, by the pure core
//!   (`model::outcome::decide` over the custom resources, namespaces and catalog listed from
//!   the API server);
//! - the RBAC state compared object for object with that desired state at the end of every
//!   case (the Roles and RoleBindings labelled as ours: names, rules, roleRef, subjects,
//!   labels), and every revocation finished (no custom resource left with a finalizer).
//!
//! What a sample may show: a grant in the desired state before or after it is in force
//! legally; one whose delegation left the desired state less than [`leak_after`] ago is a
//! revocation in progress (its lag is measured); older, it is a *leaked* grant; a grant that
//! was never in the desired state is a grant *outside* the desired state. Access that was in
//! force and is still desired but denied is *lost* (SPEC §12: nothing already granted goes),
//! except while the API server itself restarts (its authorizer is cold: not the controller's
//! doing, counted apart). Hand-made drift is excused for the probes it touches until reverted.
//!
//! Two sizes: the short one runs in CI (`hack/test.sh`); the full one (`KL_CHAOS=full`, 500
//! delegations onboarded and 100 revoked while the leader is SIGKILLed 10 times) by
//! `hack/chaos.sh`. Every case prints a `chaos figures:` line (docs/reliability.md).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::webhook::{certificates, register};
use common::*;
use futures::StreamExt;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding, Subject};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_lighthouse::api::{RegistrationAssignment, RegistrationDefinition};
use kube_lighthouse::model::catalog::Catalog;
use kube_lighthouse::model::outcome::{self, DefinitionSnapshot, Snapshot};
use kube_lighthouse::model::projection::IdentityTemplates;
use kube_lighthouse::model::scope::{self, NamespaceInfo};
use kube_lighthouse::model::validate::{Context, Limits};
use serde_json::{json, Value};

const MANAGED: &str = "app.kubernetes.io/managed-by=kube-lighthouse";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

// ---------------------------------------------------------------------------------------
// Sizes, time bounds, randomness
// ---------------------------------------------------------------------------------------

/// How big each case is: the short version (CI) or the full one (`KL_CHAOS=full`).
#[derive(Clone, Copy, Debug)]
struct Sizes {
    /// Delegations onboarded while the leader is killed.
    onboard: usize,
    /// Of those, revoked during the wave.
    revoke: usize,
    /// SIGKILLs of the leader per case.
    kills: usize,
    /// Delegations onboarded (and revoked) while the API server or etcd restarts.
    restart_wave: usize,
    restart_revoke: usize,
    /// Namespaces whose managed RoleBindings are all deleted by hand.
    drift: usize,
    /// Delegations in the 403 case.
    forbidden: usize,
}

fn full() -> bool {
    std::env::var("KL_CHAOS").is_ok_and(|v| v == "full")
}

fn sizes() -> Sizes {
    if full() {
        Sizes {
            onboard: 500,
            revoke: 100,
            kills: 10,
            restart_wave: 200,
            restart_revoke: 40,
            drift: 100,
            forbidden: 100,
        }
    } else {
        Sizes { onboard: 60, revoke: 20, kills: 3, restart_wave: 40, restart_revoke: 10, drift: 20, forbidden: 20 }
    }
}

/// How long after leaving the desired state a grant may still be in force before it counts
/// as leaked: a revocation in progress (the leader may be dead, the API server restarting).
/// `KL_CHAOS_LEAK_AFTER` (seconds), default 60.
fn leak_after() -> Duration {
    let secs = std::env::var("KL_CHAOS_LEAK_AFTER").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// The bound on convergence after the last fault: past it, the case fails showing what
/// still differs. A bound for a hung controller, not a latency assertion (the time taken is
/// the figure printed).
fn converge_bound() -> Duration {
    Duration::from_secs(if full() { 900 } else { 300 })
}

/// xorshift64*: reproducible random moments (`KL_CHAOS_SEED`), no dependency.
struct Rng(u64);

impl Rng {
    fn new(case: &str) -> Rng {
        let seed = std::env::var("KL_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        eprintln!("chaos {case}: KL_CHAOS_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn seconds(&mut self, low: f64, high: f64) -> Duration {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(low + unit * (high - low))
    }
}

/// One case at a time: they restart the API server and etcd, and kill controllers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Retries `op` until it succeeds: the API server may be restarting.
async fn retry<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + converge_bound();
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) => assert!(Instant::now() < deadline, "{what}: still failing: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The desired state, by the pure core, and the RBAC state, as the API server has it
// ---------------------------------------------------------------------------------------

/// A managed object, as compared: what the controller must set on it.
type ObjectKey = (&'static str, String, String);

/// Drops nulls and empty lists, which the API server and the model spell differently.
fn strip(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null() && !v.as_array().is_some_and(Vec::is_empty))
                .map(|(k, v)| (k, strip(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
        other => other,
    }
}

fn role_view(role: &Role) -> Value {
    strip(json!({"labels": role.metadata.labels, "rules": role.rules}))
}

fn binding_view(binding: &RoleBinding) -> Value {
    let mut subjects = binding.subjects.clone().unwrap_or_default();
    subjects.sort_by_key(|s| (s.kind.clone(), s.name.clone(), s.namespace.clone()));
    strip(json!({"labels": binding.metadata.labels, "roleRef": binding.role_ref, "subjects": subjects}))
}

/// A desired RoleBinding's subjects, and the rules of its Role.
type Grant = (Vec<Subject>, Vec<PolicyRule>);

/// The desired state of the case's namespaces at one moment.
#[derive(Default)]
struct World {
    /// Every Role and RoleBinding that must exist.
    objects: BTreeMap<ObjectKey, Value>,
    /// Per namespace, each desired binding's subjects and its Role's rules.
    grants: HashMap<String, Vec<Grant>>,
    /// Delegations (kind/namespace/name) being deleted: their finalizers still run.
    deleting: Vec<String>,
    /// Assignments, by namespace/name: whether the pure core grants them.
    verdicts: BTreeMap<String, bool>,
}

fn rule_allows(rule: &PolicyRule, probe: &Probe) -> bool {
    let has = |list: &Option<Vec<String>>, item: &str| list.iter().flatten().any(|x| x == item || x == "*");
    has(&rule.api_groups, "")
        && has(&rule.resources, probe.resource)
        && rule.verbs.iter().any(|v| v == probe.verb || v == "*")
        && rule.resource_names.as_ref().is_none_or(Vec::is_empty)
}

impl World {
    /// Whether the desired RBAC lets `probe` through (the authorizer's rule matching, for
    /// requests without a resource name, on User subjects).
    fn allows(&self, probe: &Probe) -> bool {
        self.grants.get(&probe.ns).into_iter().flatten().any(|(subjects, rules)| {
            subjects.iter().any(|s| s.kind == "User" && s.name == probe.user)
                && rules.iter().any(|r| rule_allows(r, probe))
        })
    }
}

fn in_case(namespace: Option<&str>, prefix: &str) -> bool {
    namespace.is_some_and(|ns| ns.starts_with(prefix))
}

/// The desired state of the namespaces named `prefix…`, computed from the custom resources,
/// the namespaces and the catalog by the pure core, as a reconcile of each assignment would.
async fn desired(admin: &Client, prefix: &str) -> Result<World, kube::Error> {
    let all = ListParams::default();
    let namespaces = Api::<Namespace>::all(admin.clone()).list(&all).await?.items;
    let cluster_roles = Api::<ClusterRole>::all(admin.clone()).list(&all).await?.items;
    let guardrails = guardrails(admin).await?;
    let definitions = Api::<RegistrationDefinition>::all(admin.clone()).list(&all).await?.items;
    let assignments = Api::<RegistrationAssignment>::all(admin.clone()).list(&all).await?.items;
    Ok(decide_all(&namespaces, &cluster_roles, &guardrails, &definitions, &assignments, prefix))
}

/// [`desired`] for one subscription namespace `ns` (with its resource groups), read at this
/// moment: what the test notes right after it creates a delegation and right before it
/// revokes one, so that a state shorter than a sampler's round is still known.
async fn desired_in(admin: &Client, ns: &str) -> Result<World, kube::Error> {
    let namespaces_api = Api::<Namespace>::all(admin.clone());
    let mut namespaces = vec![namespaces_api.get(ns).await?];
    let groups = ListParams::default().labels(&format!("kubelighthouse.io/subscription={ns}"));
    namespaces.extend(namespaces_api.list(&groups).await?.items);
    let cluster_roles = Api::<ClusterRole>::all(admin.clone()).list(&ListParams::default()).await?.items;
    let guardrails = guardrails(admin).await?;
    let definitions =
        Api::<RegistrationDefinition>::namespaced(admin.clone(), ns).list(&ListParams::default()).await?.items;
    let assignments =
        Api::<RegistrationAssignment>::namespaced(admin.clone(), ns).list(&ListParams::default()).await?.items;
    Ok(decide_all(&namespaces, &cluster_roles, &guardrails, &definitions, &assignments, ns))
}

/// The guardrails in force (docs/guardrails.md): the controller judges with them too.
async fn guardrails(admin: &Client) -> Result<kube_lighthouse::model::guardrail::Guardrails, kube::Error> {
    let items = Api::<kube_lighthouse::api::Guardrail>::all(admin.clone()).list(&ListParams::default()).await?.items;
    Ok(kube_lighthouse::model::guardrail::Guardrails::from_objects(&items))
}

/// The pure core's verdict on every assignment in the namespaces named `prefix…`.
fn decide_all(
    namespaces: &[Namespace],
    cluster_roles: &[ClusterRole],
    guardrails: &kube_lighthouse::model::guardrail::Guardrails,
    definitions: &[RegistrationDefinition],
    assignments: &[RegistrationAssignment],
    prefix: &str,
) -> World {
    let infos: BTreeMap<String, NamespaceInfo> = namespaces
        .iter()
        .filter_map(|n| {
            let labels = n.metadata.labels.clone().unwrap_or_default();
            Some((
                n.metadata.name.clone()?,
                NamespaceInfo::from_labels(&labels, n.metadata.deletion_timestamp.is_some()),
            ))
        })
        .collect();
    let catalog = Catalog::from_cluster_roles(cluster_roles.iter());
    let (limits, templates) = (Limits::default(), IdentityTemplates::default());
    let ctx = Context { catalog: &catalog, namespaces: &infos, limits: &limits, templates: &templates, guardrails };
    let mut world = World::default();
    for d in definitions.iter().filter(|d| in_case(d.metadata.namespace.as_deref(), prefix)) {
        if d.metadata.deletion_timestamp.is_some() {
            world.deleting.push(format!(
                "definition {}/{}",
                d.metadata.namespace.as_deref().unwrap_or_default(),
                d.metadata.name.as_deref().unwrap_or_default()
            ));
        }
    }
    for a in assignments.iter().filter(|a| in_case(a.metadata.namespace.as_deref(), prefix)) {
        let namespace = a.metadata.namespace.clone().unwrap_or_default();
        let name = format!("{namespace}/{}", a.metadata.name.as_deref().unwrap_or_default());
        if a.metadata.deletion_timestamp.is_some() {
            world.deleting.push(format!("assignment {name}"));
            world.verdicts.insert(name, false);
            continue;
        }
        let neighbours = assignments.iter().filter(|o| o.metadata.namespace.as_deref() == Some(namespace.as_str()));
        let definition = scope::subscription_of(&namespace, &infos).ok().and_then(|(subscription, _)| {
            let same: Vec<&RegistrationDefinition> =
                definitions.iter().filter(|d| d.metadata.namespace.as_deref() == Some(subscription.as_str())).collect();
            let named = same
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(a.spec.registration_definition_ref.name.as_str()))?;
            Some(DefinitionSnapshot::new(Arc::new((*named).clone()), same.iter().copied()))
        });
        let snapshot = Snapshot::new(a, neighbours, definition);
        let decided = outcome::decide(&snapshot, &ctx);
        world.verdicts.insert(name, decided.is_granted());
        let Some(rbac) = decided.desired() else { continue };
        let mut rules_by_role = HashMap::new();
        for role in &rbac.roles {
            let key = (
                "Role",
                role.metadata.namespace.clone().unwrap_or_default(),
                role.metadata.name.clone().unwrap_or_default(),
            );
            rules_by_role.insert((key.1.clone(), key.2.clone()), role.rules.clone().unwrap_or_default());
            world.objects.insert(key, role_view(role));
        }
        for binding in &rbac.bindings {
            let ns = binding.metadata.namespace.clone().unwrap_or_default();
            let key = ("RoleBinding", ns.clone(), binding.metadata.name.clone().unwrap_or_default());
            let rules = rules_by_role.get(&(ns.clone(), binding.role_ref.name.clone())).cloned().unwrap_or_default();
            world.grants.entry(ns).or_default().push((binding.subjects.clone().unwrap_or_default(), rules));
            world.objects.insert(key, binding_view(binding));
        }
    }
    world
}

/// The Roles and RoleBindings labelled as ours in the namespaces named `prefix…`.
async fn actual(admin: &Client, prefix: &str) -> Result<BTreeMap<ObjectKey, Value>, kube::Error> {
    let managed = ListParams::default().labels(MANAGED);
    let mut objects = BTreeMap::new();
    for role in Api::<Role>::all(admin.clone()).list(&managed).await?.items {
        if in_case(role.metadata.namespace.as_deref(), prefix) {
            let key = (
                "Role",
                role.metadata.namespace.clone().unwrap_or_default(),
                role.metadata.name.clone().unwrap_or_default(),
            );
            objects.insert(key, role_view(&role));
        }
    }
    for binding in Api::<RoleBinding>::all(admin.clone()).list(&managed).await?.items {
        if in_case(binding.metadata.namespace.as_deref(), prefix) {
            let ns = binding.metadata.namespace.clone().unwrap_or_default();
            let key = ("RoleBinding", ns, binding.metadata.name.clone().unwrap_or_default());
            objects.insert(key, binding_view(&binding));
        }
    }
    Ok(objects)
}

/// Every difference between the desired and the actual objects, as sentences.
fn differences(desired: &BTreeMap<ObjectKey, Value>, actual: &BTreeMap<ObjectKey, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, want) in desired {
        match actual.get(key) {
            None => out.push(format!("missing {} {}/{}", key.0, key.1, key.2)),
            Some(have) if have != want => {
                out.push(format!("differs {} {}/{}: want {want} have {have}", key.0, key.1, key.2))
            }
            Some(_) => {}
        }
    }
    for key in actual.keys().filter(|k| !desired.contains_key(*k)) {
        out.push(format!("extra {} {}/{}", key.0, key.1, key.2));
    }
    out
}

// ---------------------------------------------------------------------------------------
// The sampler
// ---------------------------------------------------------------------------------------

/// One thing asked of the authorizer: may `user` `verb` `resource` (core group) in `ns`?
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Probe {
    user: String,
    ns: String,
    verb: &'static str,
    resource: &'static str,
}

impl Probe {
    fn new(user: &str, ns: &str, verb: &'static str, resource: &'static str) -> Probe {
        Probe { user: user.to_string(), ns: ns.to_string(), verb, resource }
    }

    fn access(&self) -> Access<'_> {
        Access { verb: self.verb, group: "", resource: self.resource, subresource: "", namespace: &self.ns, name: "" }
    }
}

#[derive(Default)]
struct History {
    /// Last time the probe was in the desired state.
    last_desired: Option<Instant>,
    /// Desired in every round since then.
    desired_since: Option<Instant>,
    /// Seen allowed since `desired_since`.
    in_force: bool,
}

/// What the sampler counted.
#[derive(Default, Debug)]
struct Figures {
    rounds: usize,
    skipped_rounds: usize,
    reviews: usize,
    real_requests: usize,
    /// Grants never in the desired state (goal 0).
    outside: Vec<String>,
    /// Grants still in force more than [`leak_after`] after leaving the desired state (0).
    leaks: Vec<String>,
    /// Desired access, in force before, denied later (0).
    lost: Vec<String>,
    /// Desired access denied while the API server restarted (its authorizer cold).
    cold_denials: usize,
    /// Samples of hand-made drift in force (excused until reverted).
    drift_in_force: usize,
    /// Longest a revocation was seen in progress.
    max_revocation_lag: Duration,
    /// Longest a revocation was seen in progress while every definition of the case is
    /// deleted at once (the teardown: a queue of hundreds, not a fault; bounded by the
    /// convergence the teardown waits for, not by [`leak_after`]).
    teardown_revocation_lag: Duration,
}

struct SamplerState {
    probes: Vec<Probe>,
    history: HashMap<Probe, History>,
    excused_grants: HashSet<Probe>,
    excused_denials: HashSet<String>,
    unstable: bool,
    teardown: bool,
    figures: Figures,
}

/// A background task sampling access until stopped.
struct Sampler {
    state: Arc<Mutex<SamplerState>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Probes per round, asked by SubjectAccessReview; and of those `list pods`, how many are also
/// made for real with the principal's own token.
const PER_ROUND: usize = 40;
const REAL_PER_ROUND: usize = 3;

async fn own_request(clients: &mut HashMap<String, Client>, probe: &Probe) -> Option<bool> {
    if !clients.contains_key(&probe.user) {
        let client = signed_in(&probe.user, &[]).await?;
        clients.insert(probe.user.clone(), client);
    }
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(clients[&probe.user].clone(), &probe.ns);
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Some(true),
        Err(kube::Error::Api(s)) if s.code == 403 => Some(false),
        Err(_) => None,
    }
}

impl Sampler {
    fn start(admin: Client, prefix: String, probes: Vec<Probe>, mut rng: Rng) -> Sampler {
        let state = Arc::new(Mutex::new(SamplerState {
            probes,
            history: HashMap::new(),
            excused_grants: HashSet::new(),
            excused_denials: HashSet::new(),
            unstable: false,
            teardown: false,
            figures: Figures::default(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (state.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut clients = HashMap::new();
            while !stopping.load(Ordering::Relaxed) {
                Sampler::round(&admin, &prefix, &shared, &mut rng, &mut clients).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Sampler { state, stop, task }
    }

    async fn round(
        admin: &Client,
        prefix: &str,
        state: &Mutex<SamplerState>,
        rng: &mut Rng,
        clients: &mut HashMap<String, Client>,
    ) {
        let Ok(before) = desired(admin, prefix).await else {
            state.lock().expect("sampler").figures.skipped_rounds += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        };
        let t1 = Instant::now();
        let picks: Vec<Probe> = {
            let s = state.lock().expect("sampler");
            (0..PER_ROUND.min(s.probes.len())).map(|_| s.probes[rng.below(s.probes.len())].clone()).collect()
        };
        let mut answers = Vec::new();
        for probe in &picks {
            if let Ok(allowed) = review(admin, &probe.user, &[], &probe.access()).await {
                answers.push((probe.clone(), allowed, false));
            }
        }
        for probe in picks.iter().filter(|p| p.verb == "list").take(REAL_PER_ROUND) {
            if let Some(allowed) = own_request(clients, probe).await {
                answers.push((probe.clone(), allowed, true));
            }
        }
        let Ok(after) = desired(admin, prefix).await else {
            state.lock().expect("sampler").figures.skipped_rounds += 1;
            return;
        };
        let t2 = Instant::now();
        let mut guard = state.lock().expect("sampler");
        let s = &mut *guard;
        for probe in &s.probes {
            let (b, a) = (before.allows(probe), after.allows(probe));
            let h = s.history.entry(probe.clone()).or_default();
            if b {
                h.last_desired = Some(t1);
            }
            if a {
                h.last_desired = Some(t2);
            }
            if !(b && a) {
                h.desired_since = None;
                h.in_force = false;
            } else if h.desired_since.is_none() {
                h.desired_since = Some(t1);
            }
        }
        s.figures.rounds += 1;
        for (probe, allowed, real) in answers {
            if real {
                s.figures.real_requests += 1;
            } else {
                s.figures.reviews += 1;
            }
            let how = if real { "own token" } else { "SubjectAccessReview" };
            let (b, a) = (before.allows(&probe), after.allows(&probe));
            let h = s.history.entry(probe.clone()).or_default();
            if allowed && !(b || a) {
                if s.excused_grants.contains(&probe) {
                    s.figures.drift_in_force += 1;
                    continue;
                }
                match h.last_desired {
                    None => s.figures.outside.push(format!("{probe:?} allowed ({how}), never desired")),
                    Some(t) => {
                        let lag = t2.saturating_duration_since(t);
                        if s.teardown {
                            s.figures.teardown_revocation_lag = s.figures.teardown_revocation_lag.max(lag);
                        } else if lag > leak_after() {
                            s.figures
                                .leaks
                                .push(format!("{probe:?} allowed ({how}) {lag:?} after leaving the desired state"));
                        } else {
                            s.figures.max_revocation_lag = s.figures.max_revocation_lag.max(lag);
                        }
                    }
                }
            } else if allowed && b && a {
                h.in_force = true;
            } else if !allowed && b && a && h.in_force {
                if s.unstable {
                    s.figures.cold_denials += 1;
                } else if s.excused_denials.contains(&probe.ns) {
                    s.figures.drift_in_force += 1;
                } else {
                    s.figures.lost.push(format!("{probe:?} denied ({how}) though desired and in force before"));
                }
            }
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut SamplerState) -> T) -> T {
        f(&mut self.state.lock().expect("sampler"))
    }

    /// Notes the desired state of one namespace at this moment (see [`desired_in`]).
    fn note(&self, world: &World) {
        let now = Instant::now();
        self.with(|s| {
            for probe in s.probes.iter().filter(|p| world.grants.contains_key(&p.ns)) {
                if world.allows(probe) {
                    s.history.entry(probe.clone()).or_default().last_desired = Some(now);
                }
            }
        });
    }

    /// [`Sampler::note`] of namespace `ns`, read now (retried through faults).
    async fn note_namespace(&self, admin: &Client, ns: &str) {
        let world = retry("desired state of one namespace", || desired_in(admin, ns)).await;
        self.note(&world);
    }

    fn add_probes(&self, probes: Vec<Probe>) {
        self.with(|s| s.probes.extend(probes));
    }

    /// The API server restarts: denials are its cold authorizer's, not the controller's.
    fn unstable(&self, unstable: bool) {
        self.with(|s| s.unstable = unstable);
    }

    async fn finish(self) -> Figures {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let state = Arc::try_unwrap(self.state).ok().expect("sampler stopped").into_inner().expect("sampler");
        state.figures
    }
}

// ---------------------------------------------------------------------------------------
// Delegations, waves, convergence
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Delegation {
    ns: String,
    principal: String,
    role: &'static str,
}

impl Delegation {
    fn user(&self) -> String {
        projected(MSP_TENANT, &self.principal)
    }
}

fn plan(prefix: &str, n: usize, offset: usize, rng: &mut Rng) -> Vec<Delegation> {
    let salt = rng.next() & 0xffff_ffff;
    (offset..offset + n)
        .map(|i| Delegation {
            ns: format!("{prefix}-{i}"),
            principal: format!("00000000-0000-4000-8000-{:08x}{:04x}", salt, i),
            role: if i % 2 == 0 { READER } else { CONTRIBUTOR },
        })
        .collect()
}

/// Per delegation: its principal may list pods (Reader and Contributor), delete pods
/// (Contributor only), never read secrets; the next delegation's principal nothing here.
fn probes_of(delegations: &[Delegation]) -> Vec<Probe> {
    let mut probes = Vec::new();
    for (i, d) in delegations.iter().enumerate() {
        let user = d.user();
        probes.push(Probe::new(&user, &d.ns, "list", "pods"));
        probes.push(Probe::new(&user, &d.ns, "delete", "pods"));
        probes.push(Probe::new(&user, &d.ns, "get", "secrets"));
        let other = &delegations[(i + 1) % delegations.len()];
        probes.push(Probe::new(&other.user(), &d.ns, "list", "pods"));
    }
    probes
}

async fn apply<K>(api: &Api<K>, name: &str, body: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::apply("kube-lighthouse-chaos").force();
    retry(&format!("apply {name}"), || async { api.patch(name, &params, &Patch::Apply(body.clone())).await }).await;
}

fn definition_body(ns: &str, name: &str, tenant: &str, principal: &str, role: &str) -> Value {
    json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"registrationDefinitionName": "chaos offer", "managedByTenantId": tenant,
            "authorizations": [authorization(principal, "User", role)]},
    })
}

/// A subscription namespace of a fresh customer tenant, a definition by the managing tenant
/// and its assignment, retried through faults.
async fn onboard(admin: &Client, d: &Delegation) {
    onboard_as(admin, d, &tenant_id(), MSP_TENANT).await;
}

/// A subscription namespace of `home`, and a definition (managed by `managing`) and its
/// assignment in it.
async fn onboard_as(admin: &Client, d: &Delegation, home: &str, managing: &str) {
    subscription_namespace(admin, &d.ns, home).await;
    let definitions: Api<RegistrationDefinition> = Api::namespaced(admin.clone(), &d.ns);
    apply(&definitions, "offer", definition_body(&d.ns, "offer", managing, &d.principal, d.role)).await;
    let assignments: Api<RegistrationAssignment> = Api::namespaced(admin.clone(), &d.ns);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationAssignment",
        "metadata": {"name": "offer", "namespace": d.ns},
        "spec": {"registrationDefinitionRef": {"name": "offer"}},
    });
    apply(&assignments, "offer", body).await;
}

async fn subscription_namespace(admin: &Client, name: &str, home: &str) {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubelighthouse.io/tenant-id": home}}});
    apply(&namespaces, name, ns).await;
}

/// Revokes a delegation once its assignment exists: deletes the assignment, or the
/// definition (which deletes its assignments, SPEC §6).
async fn revoke(admin: &Client, sampler: &Sampler, d: &Delegation, by_definition: bool) {
    let assignments: Api<RegistrationAssignment> = Api::namespaced(admin.clone(), &d.ns);
    retry(&format!("assignment {}/offer exists", d.ns), || async { assignments.get("offer").await.map(|_| ()) }).await;
    // The state it leaves: desired until now.
    sampler.note_namespace(admin, &d.ns).await;
    let gone = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    };
    if by_definition {
        let definitions: Api<RegistrationDefinition> = Api::namespaced(admin.clone(), &d.ns);
        // Once the controller holds it (its finalizer is on): a definition deleted before
        // the controller ever saw it cannot cascade to its assignments, which then stay,
        // Failed and granting nothing (the wave's assignment revocations cover that race).
        let started = Instant::now();
        loop {
            let held = retry("get definition", || definitions.get("offer"))
                .await
                .metadata
                .finalizers
                .is_some_and(|f| f.iter().any(|f| f == "kubelighthouse.io/delete-assignments"));
            if held {
                break;
            }
            assert!(started.elapsed() < converge_bound(), "definition {}/offer never got its finalizer", d.ns);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        retry("delete definition", || async {
            gone(definitions.delete("offer", &DeleteParams::default()).await.map(|_| ()))
        })
        .await;
    } else {
        retry("delete assignment", || async {
            gone(assignments.delete("offer", &DeleteParams::default()).await.map(|_| ()))
        })
        .await;
    }
}

/// Onboards every delegation and revokes `revoked` of them (alternately by assignment and
/// by definition), each revocation soon after its onboarding, six requests at a time.
async fn wave(admin: &Client, sampler: &Sampler, delegations: &[Delegation], revoked: &[usize]) {
    enum Op {
        Onboard(usize),
        Revoke(usize, bool),
    }
    let mut ops = Vec::new();
    for i in 0..delegations.len() {
        ops.push(Op::Onboard(i));
        for (k, j) in revoked.iter().enumerate() {
            if (*j + 3).min(delegations.len() - 1) == i {
                ops.push(Op::Revoke(*j, k % 2 == 1));
            }
        }
    }
    futures::stream::iter(ops)
        .for_each_concurrent(6, |op| async move {
            match op {
                Op::Onboard(i) => {
                    onboard(admin, &delegations[i]).await;
                    sampler.note_namespace(admin, &delegations[i].ns).await;
                }
                Op::Revoke(j, by_definition) => revoke(admin, sampler, &delegations[j], by_definition).await,
            }
        })
        .await;
}

/// `count` indices spread over `0..n`.
fn spread(n: usize, count: usize) -> Vec<usize> {
    (0..count.min(n)).map(|k| k * n / count.max(1)).collect()
}

/// Waits until the RBAC state equals the desired state, object for object, and no
/// delegation is left being deleted; returns how long it took. Fails the case past
/// [`converge_bound`], naming what still differs and the finalizers still stuck.
async fn converge(admin: &Client, prefix: &str) -> (Duration, World) {
    let started = Instant::now();
    let mut last = (Vec::new(), Vec::new());
    loop {
        if let (Ok(world), Ok(objects)) = (desired(admin, prefix).await, actual(admin, prefix).await) {
            let diff = differences(&world.objects, &objects);
            if diff.is_empty() && world.deleting.is_empty() {
                return (started.elapsed(), world);
            }
            last = (diff, world.deleting);
        }
        assert!(
            started.elapsed() < converge_bound(),
            "no convergence after {:?}: {} differences (first: {:?}); stuck finalizers: {} ({:?})",
            converge_bound(),
            last.0.len(),
            last.0.iter().take(5).collect::<Vec<_>>(),
            last.1.len(),
            last.1.iter().take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every probe asked once more after convergence, against the final desired state:
/// (grants outside it, leaked grants, desired access missing).
async fn final_sweep(
    admin: &Client,
    world: &World,
    probes: &[Probe],
    ever_desired: &HashSet<Probe>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let answers: Vec<(Probe, bool)> = futures::stream::iter(probes.iter().cloned())
        .map(|p| async move {
            let allowed =
                retry("final SubjectAccessReview", || async { review(admin, &p.user, &[], &p.access()).await }).await;
            (p, allowed)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let (mut outside, mut leaks, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for (p, allowed) in answers {
        match (allowed, world.allows(&p)) {
            (true, false) if ever_desired.contains(&p) => leaks.push(format!("{p:?}")),
            (true, false) => outside.push(format!("{p:?}")),
            (false, true) => missing.push(format!("{p:?}")),
            _ => {}
        }
    }
    (outside, leaks, missing)
}

/// Deletes every definition of the case (their assignments go with them, SPEC §6) and
/// waits until all their access is revoked and every finalizer ran; then the namespaces.
async fn teardown(admin: &Client, prefix: &str, delegations: &[Delegation]) -> Duration {
    futures::stream::iter(delegations)
        .for_each_concurrent(8, |d| async move {
            let api: Api<RegistrationDefinition> = Api::namespaced(admin.clone(), &d.ns);
            let _ = api.delete("offer", &DeleteParams::default()).await;
        })
        .await;
    let (took, world) = converge(admin, prefix).await;
    assert!(
        world.objects.is_empty(),
        "every definition deleted, yet RBAC is desired: {:?}",
        world.objects.keys().next()
    );
    // SPEC §6: deleting a definition deletes its assignments.
    let started = Instant::now();
    loop {
        let left: Vec<String> = retry("list assignments", || async {
            Api::<RegistrationAssignment>::all(admin.clone()).list(&ListParams::default()).await
        })
        .await
        .items
        .into_iter()
        .filter_map(|a| a.metadata.namespace)
        .filter(|ns| ns.starts_with(prefix))
        .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < converge_bound(),
            "assignments left after their definitions were deleted (SPEC §6): {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    took
}

async fn delete_namespaces(admin: &Client, prefix: &str) {
    let api: Api<Namespace> = Api::all(admin.clone());
    if let Ok(list) = api.list(&ListParams::default()).await {
        for ns in list.items.into_iter().filter_map(|n| n.metadata.name).filter(|n| n.starts_with(prefix)) {
            let _ = api.delete(&ns, &DeleteParams::default()).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Controller replicas, like a Deployment's: a replica that ends is started again
// ---------------------------------------------------------------------------------------

struct Replicas {
    kubeconfig: PathBuf,
    dir: PathBuf,
    lease_namespace: Option<String>,
    want: usize,
    running: Vec<(String, ControllerProcess)>,
    started: usize,
    /// Replicas that ended by themselves (e.g. the Lease lost while the API server was down).
    exits: usize,
    env: Vec<(String, String)>,
}

impl Replicas {
    fn spawn(&mut self) {
        let name = format!("replica-{}", self.started);
        self.started += 1;
        let mut env = self.env.clone();
        if let Some(ns) = &self.lease_namespace {
            env.push(("POD_NAME".into(), name.clone()));
            env.push(("POD_NAMESPACE".into(), ns.clone()));
            env.push(("KUBE_LIGHTHOUSE_LEADER_ELECTION".into(), "true".into()));
            env.push(("KUBE_LIGHTHOUSE_LEASE_DURATION".into(), "10".into()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let process = ControllerProcess::start(&self.kubeconfig, &self.dir.join(format!("{name}.log")), &env);
        self.running.push((name, process));
    }

    fn ensure(&mut self) {
        let before = self.running.len();
        self.running.retain_mut(|(_, p)| !p.exited());
        self.exits += before - self.running.len();
        while self.running.len() < self.want {
            self.spawn();
        }
    }

    fn is_running(&self, name: &str) -> bool {
        self.running.iter().any(|(n, _)| n == name)
    }

    fn crash(&mut self, name: &str) -> bool {
        let Some(i) = self.running.iter().position(|(n, _)| n == name) else { return false };
        self.running.remove(i).1.crash();
        true
    }

    fn crash_all(&mut self) {
        for (_, p) in self.running.drain(..) {
            p.crash();
        }
    }
}

/// Replicas kept running by a supervisor task, as Kubernetes restarts a pod's container.
struct Deployment {
    replicas: Arc<Mutex<Replicas>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Deployment {
    fn start(
        kubeconfig: &Path,
        dir: &Path,
        want: usize,
        lease_namespace: Option<String>,
        env: &[(&str, &str)],
    ) -> Deployment {
        let mut replicas = Replicas {
            kubeconfig: kubeconfig.to_path_buf(),
            dir: dir.to_path_buf(),
            lease_namespace,
            want,
            running: Vec::new(),
            started: 0,
            exits: 0,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        replicas.ensure();
        let replicas = Arc::new(Mutex::new(replicas));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (replicas.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !stopping.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if !stopping.load(Ordering::Relaxed) {
                    shared.lock().expect("replicas").ensure();
                }
            }
        });
        Deployment { replicas, stop, task }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Replicas) -> T) -> T {
        f(&mut self.replicas.lock().expect("replicas"))
    }

    /// Stops supervising and kills every replica; returns (replicas started, ended by themselves).
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let Deployment { replicas, task, .. } = self;
        let _ = task.await;
        let mut r = replicas.lock().expect("replicas");
        r.crash_all();
        (r.started, r.exits)
    }
}

async fn holder(admin: &Client, namespace: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), namespace);
    leases.get_opt("kube-lighthouse").await.ok().flatten().and_then(|l| l.spec).and_then(|s| s.holder_identity)
}

/// Waits until a running replica holds the Lease; returns its name.
async fn live_leader(admin: &Client, deployment: &Deployment, namespace: &str, not: Option<&str>) -> String {
    let deadline = Instant::now() + converge_bound();
    loop {
        if let Some(h) = holder(admin, namespace).await {
            if Some(h.as_str()) != not && deployment.with(|r| r.is_running(&h)) {
                return h;
            }
        }
        assert!(Instant::now() < deadline, "no live replica leads after {:?}", converge_bound());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The control plane's state directory, for `hack/control-plane.sh restart`.
fn state_dir() -> PathBuf {
    local_state_dir()
        .expect("the API server and etcd restart cases need the local control plane (hack/control-plane.sh)")
}

/// `hack/control-plane.sh restart what down_seconds`: SIGKILL, down, started again, ready.
async fn restart(what: &'static str, down: u32) -> Duration {
    let state = state_dir();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        run(std::process::Command::new(repo().join("hack/control-plane.sh")).env("KL_STATE_DIR", state).args([
            "restart",
            what,
            &down.to_string(),
        ]))
    })
    .await
    .expect("restart");
    started.elapsed()
}

// ---------------------------------------------------------------------------------------
// A case: its namespaces, its sampler, its figures
// ---------------------------------------------------------------------------------------

struct Case {
    name: &'static str,
    prefix: String,
    admin: Client,
    kubeconfig: PathBuf,
    dir: PathBuf,
    rng: Rng,
    delegations: Vec<Delegation>,
    sampler: Option<Sampler>,
    ever_desired: HashSet<Probe>,
    converge: Vec<(String, Duration)>,
    notes: Vec<String>,
}

impl Case {
    async fn new(name: &'static str) -> Case {
        let kubeconfig = kubeconfig();
        let admin = client_for(&kubeconfig).await;
        let prefix = unique(&format!("chaos-{name}"));
        let dir = repo().join("target/chaos").join(&prefix);
        std::fs::create_dir_all(&dir).expect("case dir");
        let mut rng = Rng::new(name);
        let sampler_rng = Rng(rng.next() | 1);
        let sampler = Sampler::start(admin.clone(), prefix.clone(), Vec::new(), sampler_rng);
        Case {
            name,
            prefix,
            admin,
            kubeconfig,
            dir,
            rng,
            delegations: Vec::new(),
            sampler: Some(sampler),
            ever_desired: HashSet::new(),
            converge: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn sampler(&self) -> &Sampler {
        self.sampler.as_ref().expect("sampler")
    }

    /// Plans `n` more delegations and registers their probes with the sampler.
    fn plan(&mut self, n: usize) -> Vec<Delegation> {
        let planned = plan(&self.prefix, n, self.delegations.len(), &mut self.rng);
        self.delegations.extend(planned.iter().cloned());
        self.sampler().add_probes(probes_of(&planned));
        planned
    }

    async fn converged(&mut self, after: &str) -> World {
        let (took, world) = converge(&self.admin, &self.prefix).await;
        eprintln!(
            "chaos {}: converged {took:.1?} after {after}: {} objects as desired",
            self.name,
            world.objects.len()
        );
        self.converge.push((after.to_string(), took));
        world
    }

    fn probes(&self) -> Vec<Probe> {
        self.sampler().with(|s| s.probes.clone())
    }

    /// Tears down, checks everything, prints and records the figures, and fails on any
    /// grant outside the desired state, leak, lost access or stuck finalizer.
    async fn finish(mut self, deployment: Deployment) {
        let world = self.converged("the last fault").await;
        let probes = self.probes();
        self.ever_desired = self
            .sampler()
            .with(|s| s.history.iter().filter(|(_, h)| h.last_desired.is_some()).map(|(p, _)| p.clone()).collect());
        let (outside, leaks, missing) = final_sweep(&self.admin, &world, &probes, &self.ever_desired).await;
        let delegations = self.delegations.clone();
        self.sampler().with(|s| s.teardown = true);
        let revoked_all = teardown(&self.admin, &self.prefix, &delegations).await;
        let end = desired(&self.admin, &self.prefix).await.expect("desired");
        let (outside_end, leaks_end, _) = final_sweep(&self.admin, &end, &probes, &self.ever_desired).await;
        let figures = self.sampler.take().expect("sampler").finish().await;
        let (started, exits) = deployment.finish().await;
        delete_namespaces(&self.admin, &self.prefix).await;
        let converge: Vec<String> =
            self.converge.iter().map(|(after, d)| format!("{after}: {:.1}s", d.as_secs_f64())).collect();
        let line = format!(
            "chaos figures: case={} size={} samples={} (SubjectAccessReview {}, own token {}) rounds={} skipped_rounds={} \
             outside={} leaks={} lost={} stuck_finalizers=0 final_outside={} final_leaks={} final_missing={} \
             max_revocation_lag={:.1}s teardown_revocation_lag={:.1}s cold_denials={} drift_samples={} replicas_started={} replicas_exited={} \
             revoke_all={:.1}s converge=[{}] {}",
            self.name,
            if full() { "full" } else { "short" },
            figures.reviews + figures.real_requests,
            figures.reviews,
            figures.real_requests,
            figures.rounds,
            figures.skipped_rounds,
            figures.outside.len(),
            figures.leaks.len(),
            figures.lost.len(),
            outside.len() + outside_end.len(),
            leaks.len() + leaks_end.len(),
            missing.len(),
            figures.max_revocation_lag.as_secs_f64(),
            figures.teardown_revocation_lag.as_secs_f64(),
            figures.cold_denials,
            figures.drift_in_force,
            started,
            exits,
            revoked_all.as_secs_f64(),
            converge.join(", "),
            self.notes.join(" "),
        );
        eprintln!("{line}");
        if let Ok(mut file) =
            std::fs::OpenOptions::new().create(true).append(true).open(repo().join("target/chaos/figures.txt"))
        {
            use std::io::Write;
            let _ = writeln!(file, "{} {line}", jiff::Timestamp::now());
        }
        assert!(figures.rounds > 0, "the sampler never completed a round");
        assert!(figures.outside.is_empty(), "grants outside the desired state: {:#?}", figures.outside);
        assert!(figures.leaks.is_empty(), "leaked grants: {:#?}", figures.leaks);
        assert!(figures.lost.is_empty(), "access in force went: {:#?}", figures.lost);
        assert!(
            outside.is_empty() && outside_end.is_empty(),
            "grants outside the desired state at the end: {outside:?} {outside_end:?}"
        );
        assert!(leaks.is_empty() && leaks_end.is_empty(), "leaked grants at the end: {leaks:?} {leaks_end:?}");
        assert!(missing.is_empty(), "desired access missing at the end: {missing:?}");
    }
}

async fn lease_namespace(admin: &Client) -> String {
    let ns = unique("chaos-lease");
    plain_namespace(admin, &ns).await;
    ns
}

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------

async fn leader_killed(name: &'static str, replicas: usize) {
    let _serial = SERIAL.lock().await;
    let mut case = Case::new(name).await;
    let size = sizes();
    let lease = lease_namespace(&case.admin).await;
    let deployment = Deployment::start(&case.kubeconfig, &case.dir, replicas, Some(lease.clone()), &[]);
    let delegations = case.plan(size.onboard);
    let revoked = spread(size.onboard, size.revoke);
    let admin = case.admin.clone();
    let sampler = case.sampler.as_ref().expect("sampler");
    let wave_started = Instant::now();
    let wave_done = Arc::new(AtomicBool::new(false));
    let kills = async {
        let mut failovers = Vec::new();
        for _ in 0..size.kills {
            tokio::time::sleep(case.rng.seconds(1.0, 8.0)).await;
            let leader = live_leader(&admin, &deployment, &lease, None).await;
            let killed = Instant::now();
            assert!(deployment.with(|r| r.crash(&leader)), "the leader {leader} runs");
            let _ = live_leader(&admin, &deployment, &lease, Some(&leader)).await;
            failovers.push(killed.elapsed());
        }
        failovers
    };
    let onboarding = async {
        wave(&admin, sampler, &delegations, &revoked).await;
        wave_done.store(true, Ordering::Relaxed);
        wave_started.elapsed()
    };
    let (failovers, took) = tokio::join!(kills, onboarding);
    let max = failovers.iter().max().copied().unwrap_or_default();
    let mean = failovers.iter().sum::<Duration>().checked_div(failovers.len() as u32).unwrap_or_default();
    case.notes.push(format!(
        "kills={} failover_mean={:.1}s failover_max={:.1}s wave={:.1}s",
        failovers.len(),
        mean.as_secs_f64(),
        max.as_secs_f64(),
        took.as_secs_f64()
    ));
    case.finish(deployment).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn leader_killed_at_random_moments_with_two_replicas() {
    leader_killed("kill-2-replicas", 2).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn leader_killed_at_random_moments_with_one_replica() {
    leader_killed("kill-1-replica", 1).await;
}

/// kube-apiserver or etcd SIGKILLed mid-wave, down a few seconds, restarted; two replicas
/// with a Lease (a leader that cannot renew stops and is started again).
async fn restarted_mid_wave(name: &'static str, what: &'static str) {
    let _serial = SERIAL.lock().await;
    let mut case = Case::new(name).await;
    let size = sizes();
    let lease = lease_namespace(&case.admin).await;
    let deployment = Deployment::start(&case.kubeconfig, &case.dir, 2, Some(lease.clone()), &[]);
    let _ = live_leader(&case.admin, &deployment, &lease, None).await;
    let delegations = case.plan(size.restart_wave);
    let revoked = spread(size.restart_wave, size.restart_revoke);
    let admin = case.admin.clone();
    let down = case.rng.below(5) as u32 + 2;
    let pause = case.rng.seconds(2.0, 6.0);
    let sampler = case.sampler.as_ref().expect("sampler");
    let fault = async {
        tokio::time::sleep(pause).await;
        sampler.unstable(true);
        let took = restart(what, down).await;
        // The restarted API server's authorizer fills its caches after /readyz.
        tokio::time::sleep(Duration::from_secs(10)).await;
        sampler.unstable(false);
        took
    };
    let ((), outage) = tokio::join!(wave(&admin, sampler, &delegations, &revoked), fault);
    case.notes.push(format!("{what}_down={down}s restart_to_ready={:.1}s", outage.as_secs_f64()));
    case.finish(deployment).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn apiserver_restarted_mid_wave() {
    restarted_mid_wave("apiserver-restart", "apiserver").await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn etcd_restarted_mid_wave() {
    restarted_mid_wave("etcd-restart", "etcd").await;
}

/// With the webhook down, failurePolicy Fail refuses applies; with its configuration gone,
/// invalid delegations reach the cluster, and the reconciler rejects them and grants nothing
/// (SPEC §3: "nothing that bypassed the webhook is ever materialized").
#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn webhook_down_refuses_and_the_reconciler_rejects_what_bypassed_it() {
    let _serial = SERIAL.lock().await;
    let mut case = Case::new("webhook").await;
    let admin = case.admin.clone();
    let (ca, cert, key) = certificates(&case.dir);
    let port = free_port();
    let (port_text, cert, key) = (port.to_string(), cert.display().to_string(), key.display().to_string());
    let hooked = [
        ("KUBE_LIGHTHOUSE_WEBHOOK_PORT", port_text.as_str()),
        ("KUBE_LIGHTHOUSE_WEBHOOK_CERT", cert.as_str()),
        ("KUBE_LIGHTHOUSE_WEBHOOK_KEY", key.as_str()),
    ];
    let with_webhook = Deployment::start(&case.kubeconfig, &case.dir, 1, None, &hooked);
    let registration = register(&case.kubeconfig, &unique("chaos-webhook"), port, &ca);
    // Onboarded through the webhook (retried until it serves).
    let valid = case.plan(6);
    wave(&admin, case.sampler(), &valid, &[]).await;
    case.converged("onboarding through the webhook").await;

    // The webhook judges: a definition managed by the customer's own tenant is refused by it.
    let ssa = PatchParams::apply("kube-lighthouse-chaos").force();
    let home_of = |ns: &str| {
        let api: Api<Namespace> = Api::all(admin.clone());
        let ns = ns.to_string();
        async move {
            let n = retry("get namespace", || async { api.get(&ns).await }).await;
            n.metadata.labels.unwrap_or_default().get("kubelighthouse.io/tenant-id").cloned().expect("tenant label")
        }
    };
    let home = home_of(&valid[0].ns).await;
    let definitions: Api<RegistrationDefinition> = Api::namespaced(admin.clone(), &valid[0].ns);
    let body = definition_body(&valid[0].ns, "own-tenant", &home, &valid[0].principal, READER);
    match definitions.patch("own-tenant", &ssa, &Patch::Apply(body)).await {
        Err(kube::Error::Api(s)) => {
            assert!(!s.message.contains("failed calling webhook"), "the webhook serves: {}", s.message)
        }
        other => panic!("the webhook must refuse a definition managed by the home tenant: {other:?}"),
    }

    // The webhook down (its only replica killed): applies are refused, failurePolicy Fail.
    let _ = with_webhook.finish().await;
    let late = case.plan(1).remove(0);
    let late_home = tenant_id();
    subscription_namespace(&admin, &late.ns, &late_home).await;
    let late_definitions: Api<RegistrationDefinition> = Api::namespaced(admin.clone(), &late.ns);
    let late_body = definition_body(&late.ns, "offer", MSP_TENANT, &late.principal, late.role);
    let refused = poll(
        "applies are refused while the webhook is down",
        || async {
            late_definitions.patch("offer", &ssa, &Patch::Apply(late_body.clone())).await.err().map(|e| e.to_string())
        },
        |e: &Option<String>| e.as_deref().is_some_and(|m| m.contains("webhook")),
    )
    .await;
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &valid[1].ns);
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "while-down"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": valid[2].user()}]});
    let binding_refused = bindings.patch("while-down", &ssa, &Patch::Apply(binding)).await;
    assert!(
        binding_refused.is_err(),
        "a RoleBinding write in a delegated namespace is refused while the webhook is down"
    );
    eprintln!("chaos webhook: refused while down: {}", refused.unwrap_or_default());

    // Bypassed: the configuration removed, a controller without a webhook. What reaches the
    // cluster now is judged by the reconciler alone.
    drop(registration);
    let deployment = Deployment::start(&case.kubeconfig, &case.dir, 1, None, &[]);
    let mut invalid = case.plan(3);
    invalid[1].role = OWNER;
    invalid[2].role = "edit";
    let own = tenant_id();
    futures::future::join4(
        onboard_as(&admin, &invalid[0], &own, &own),
        onboard_as(&admin, &invalid[1], &tenant_id(), MSP_TENANT),
        onboard_as(&admin, &invalid[2], &tenant_id(), MSP_TENANT),
        // The late delegation, valid, is accepted now.
        apply(&late_definitions, "offer", definition_body(&late.ns, "offer", MSP_TENANT, &late.principal, late.role)),
    )
    .await;
    let assignments: Api<RegistrationAssignment> = Api::namespaced(admin.clone(), &late.ns);
    apply(
        &assignments,
        "offer",
        json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationAssignment",
        "metadata": {"name": "offer", "namespace": late.ns}, "spec": {"registrationDefinitionRef": {"name": "offer"}}}),
    )
    .await;
    // A delegation in force made invalid by an update that bypassed the webhook: revoked.
    let turned = &valid[2];
    let turned_definitions: Api<RegistrationDefinition> = Api::namespaced(admin.clone(), &turned.ns);
    apply(&turned_definitions, "offer", definition_body(&turned.ns, "offer", MSP_TENANT, &turned.principal, OWNER))
        .await;
    let world = case.converged("invalid delegations applied with the webhook bypassed").await;
    for d in invalid.iter().chain([turned]) {
        let name = format!("{}/offer", d.ns);
        assert_eq!(world.verdicts.get(&name), Some(&false), "the pure core rejects {name}");
        let status = wait_for_assignment_state(&admin, &d.ns, "offer", "Failed").await;
        assert!(status.namespaces.is_empty(), "{name} is in force nowhere: {status:?}");
    }
    assert_eq!(world.verdicts.get(&format!("{}/offer", late.ns)), Some(&true), "the late delegation is valid");
    case.notes.push("webhook_down_refused=definition,rolebinding bypassed_rejected=4".into());
    case.finish(deployment).await;
}

/// Hand-made drift at scale: every managed RoleBinding of many namespaces deleted, a managed
/// Role's rules widened, a subject added to a managed RoleBinding, our label put on a
/// customer's RoleBinding. Ours are reverted; a customer's binding without our label is never
/// touched; the one given our label names no assignment, so the label is taken off again and
/// the binding itself is left (docs/architecture.md).
#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn hand_made_drift_at_scale_is_reverted() {
    let _serial = SERIAL.lock().await;
    let mut case = Case::new("drift").await;
    let admin = case.admin.clone();
    let size = sizes();
    let deployment = Deployment::start(&case.kubeconfig, &case.dir, 1, None, &[]);
    let all = case.plan(size.drift + 3);
    wave(&admin, case.sampler(), &all, &[]).await;
    case.converged("onboarding").await;
    let (emptied, wide, extra, foreign) =
        (&all[..size.drift], &all[size.drift], &all[size.drift + 1], &all[size.drift + 2]);

    // The customer's own bindings in `foreign.ns`: one stays as it is, one gets our label.
    let ssa = PatchParams::apply("kube-lighthouse-chaos").force();
    let customer_binding = |name: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "customer:ops"}]})
    };
    let foreign_bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &foreign.ns);
    for name in ["customer-admins", "customer-ops"] {
        retry("customer binding", || async {
            foreign_bindings.patch(name, &ssa, &Patch::Apply(customer_binding(name))).await
        })
        .await;
    }
    let untouched =
        retry("get", || async { foreign_bindings.get("customer-admins").await }).await.metadata.resource_version;

    let intruder = projected(MSP_TENANT, "00000000-0000-4000-8000-0000000dead1");
    let intruder_probe = Probe::new(&intruder, &extra.ns, "list", "pods");
    let widened_probe = Probe::new(&wide.user(), &wide.ns, "get", "secrets");
    case.sampler().add_probes(vec![intruder_probe.clone()]);
    case.sampler().with(|s| {
        s.excused_grants.extend([intruder_probe.clone(), widened_probe.clone()]);
        s.excused_denials.extend(emptied.iter().map(|d| d.ns.clone()));
    });

    let drifted = Instant::now();
    // 1. every managed RoleBinding of `emptied` deleted
    let deleted = futures::stream::iter(emptied)
        .map(|d| {
            let api: Api<RoleBinding> = Api::namespaced(admin.clone(), &d.ns);
            async move {
                let list =
                    retry("list bindings", || async { api.list(&ListParams::default().labels(MANAGED)).await }).await;
                for b in &list.items {
                    let name = b.metadata.name.clone().unwrap_or_default();
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
                list.items.len()
            }
        })
        .buffer_unordered(8)
        .fold(0, |sum, n| async move { sum + n })
        .await;
    // 2. the rules of a managed Role widened to read secrets
    let roles: Api<Role> = Api::namespaced(admin.clone(), &wide.ns);
    let mut role = retry("list roles", || async { roles.list(&ListParams::default().labels(MANAGED)).await })
        .await
        .items
        .remove(0);
    let mut rules = role.rules.take().unwrap_or_default();
    rules.push(PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["secrets".into()]),
        verbs: vec!["get".into(), "list".into()],
        ..Default::default()
    });
    let role_name = role.metadata.name.clone().unwrap_or_default();
    retry("widen role", || async {
        roles.patch(&role_name, &PatchParams::default(), &Patch::Merge(json!({"rules": rules.clone()}))).await
    })
    .await;
    // 3. a subject added to a managed RoleBinding
    let extra_bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &extra.ns);
    let binding = retry("list", || async { extra_bindings.list(&ListParams::default().labels(MANAGED)).await })
        .await
        .items
        .remove(0);
    let mut subjects = binding.subjects.clone().unwrap_or_default();
    subjects.push(Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "User".into(),
        name: intruder.clone(),
        namespace: None,
    });
    let binding_name = binding.metadata.name.clone().unwrap_or_default();
    retry("add subject", || async {
        extra_bindings
            .patch(&binding_name, &PatchParams::default(), &Patch::Merge(json!({"subjects": subjects.clone()})))
            .await
    })
    .await;
    // 4. our label on a customer's RoleBinding
    retry("label", || async {
        foreign_bindings
            .patch(
                "customer-ops",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "kube-lighthouse"}}})),
            )
            .await
    })
    .await;
    let denied = |p: Probe| {
        let admin = admin.clone();
        async move {
            let deadline = Instant::now() + converge_bound();
            while retry("review", || async { review(&admin, &p.user, &[], &p.access()).await }).await {
                assert!(Instant::now() < deadline, "drift never reverted: {p:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            drifted.elapsed()
        }
    };
    let (subject_gone, rule_gone) = tokio::join!(denied(intruder_probe.clone()), denied(widened_probe.clone()));
    case.converged("hand-made drift").await;
    case.sampler().with(|s| {
        s.excused_grants.clear();
        s.excused_denials.clear();
    });
    let after =
        retry("get", || async { foreign_bindings.get("customer-admins").await }).await.metadata.resource_version;
    assert_eq!(after, untouched, "the customer's own RoleBinding is left alone");
    // The label comes off within the convergence bound; the binding, its roleRef and its
    // subjects stay as the customer made them.
    let deadline = Instant::now() + converge_bound();
    let labelled = loop {
        let b = retry("get", || async { foreign_bindings.get_opt("customer-ops").await })
            .await
            .expect("the customer's RoleBinding given our label is left in place");
        if !b.labels().contains_key("app.kubernetes.io/managed-by") || Instant::now() >= deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !labelled.labels().contains_key("app.kubernetes.io/managed-by"),
        "our label is taken off a RoleBinding that names no assignment: {:?}",
        labelled.labels()
    );
    assert_eq!(labelled.role_ref.name, "view", "its roleRef is the customer's");
    assert_eq!(
        labelled.subjects.as_ref().map(|s| s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>()),
        Some(vec!["customer:ops"]),
        "its subjects are the customer's"
    );
    case.notes.push(format!(
        "bindings_deleted={deleted} in {} namespaces; added_subject_revoked={:.1}s widened_rule_revoked={:.1}s",
        emptied.len(),
        subject_gone.as_secs_f64(),
        rule_gone.as_secs_f64()
    ));
    case.finish(deployment).await;
}

/// The chart's ClusterRole for the controller, read from the chart (its templated lines are
/// only names and labels).
fn chart_controller_rules() -> Value {
    let text =
        std::fs::read_to_string(repo().join("charts/kube-lighthouse/templates/clusterrole.yaml")).expect("chart");
    let first = text.split("\n---").next().unwrap_or_default();
    let plain: String = first.lines().filter(|l| !l.contains("{{")).map(|l| format!("{l}\n")).collect();
    let value: Value = serde_yaml::from_str(&plain).expect("chart ClusterRole parses");
    value["rules"].clone()
}

/// The controller runs as a least-privilege ServiceAccount (the chart's ClusterRole, through
/// RBAC, so a restarted API server answers it 403 until its caches fill, and 5xx while it
/// starts). Neither an API server restart mid-wave nor a controller that cannot read the
/// catalog and the namespaces (403) ever grants or revokes anything by mistake.
#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn forbidden_and_unavailable_answers_never_grant_or_revoke() {
    let _serial = SERIAL.lock().await;
    let mut case = Case::new("forbidden").await;
    let admin = case.admin.clone();
    let size = sizes();
    let system = unique("chaos-sys");
    plain_namespace(&admin, &system).await;
    service_account(&admin, &system, "controller").await;
    let role_name = format!("{system}-controller");
    let rules = chart_controller_rules();
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    let ssa = PatchParams::apply("kube-lighthouse-chaos").force();
    let cluster_role = |rules: Value| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role_name}, "rules": rules});
    retry("ClusterRole", || async {
        cluster_roles.patch(&role_name, &ssa, &Patch::Apply(cluster_role(rules.clone()))).await
    })
    .await;
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin.clone());
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": system}]});
    retry("ClusterRoleBinding", || async { bindings.patch(&role_name, &ssa, &Patch::Apply(binding.clone())).await })
        .await;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &system);
    let request = TokenRequest {
        spec: Some(k8s_openapi::api::authentication::v1::TokenRequestSpec {
            expiration_seconds: Some(7200),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = retry("TokenRequest", || async {
        accounts.create_token_request("controller", &PostParams::default(), &request).await
    })
    .await
    .status
    .map(|s| s.token)
    .expect("a token");
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&case.kubeconfig).expect("kubeconfig")).expect("yaml");
    for user in config["users"].as_sequence_mut().expect("users") {
        user["user"] = serde_yaml::to_value(json!({"token": token})).expect("token");
    }
    let controller_config = case.dir.join("controller.kubeconfig");
    std::fs::write(&controller_config, serde_yaml::to_string(&config).expect("yaml")).expect("write");
    let deployment = Deployment::start(&controller_config, &case.dir, 1, None, &[]);

    let first = case.plan(size.forbidden);
    wave(&admin, case.sampler(), &first, &spread(size.forbidden, size.forbidden / 5)).await;
    case.converged("onboarding as the chart's ServiceAccount").await;

    // A: the API server restarted mid-wave: 5xx and refused connections while it starts,
    // 403 while its authorizer is cold.
    let second = case.plan(size.forbidden / 2);
    let sampler = case.sampler.as_ref().expect("sampler");
    let fault = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        sampler.unstable(true);
        let took = restart("apiserver", 3).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        sampler.unstable(false);
        took
    };
    let second_revoked = spread(second.len(), second.len() / 5);
    let ((), outage) = tokio::join!(wave(&admin, sampler, &second, &second_revoked), fault);
    case.converged("an API server restart, as the ServiceAccount").await;

    // B: 403 on the catalog and the namespaces for a controller that starts afresh: its
    // caches never fill, so it must neither grant nor revoke anything.
    let narrowed: Vec<Value> = rules
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| !r["resources"].as_array().into_iter().flatten().any(|x| x == "clusterroles" || x == "namespaces"))
        .cloned()
        .collect();
    retry("narrow", || async {
        cluster_roles.patch(&role_name, &ssa, &Patch::Apply(cluster_role(Value::Array(narrowed.clone())))).await
    })
    .await;
    let controller_admin = {
        let kubeconfig = kube::config::Kubeconfig::read_from(&controller_config).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
        Client::try_from(config).expect("client")
    };
    let catalog_api: Api<ClusterRole> = Api::all(controller_admin);
    poll(
        "the ServiceAccount is refused the catalog",
        || async { catalog_api.list(&ListParams::default().limit(1)).await.err().map(|e| e.to_string()) },
        |e: &Option<String>| e.as_deref().is_some_and(|m| m.contains("forbidden")),
    )
    .await;
    let fresh = deployment.with(|r| {
        let names: Vec<String> = r.running.iter().map(|(n, _)| n.clone()).collect();
        names.iter().for_each(|n| {
            r.crash(n);
        });
        r.ensure();
        r.started
    });
    let before = retry("actual", || async { actual(&admin, &case.prefix).await }).await;
    let third = case.plan(3);
    futures::future::join_all(third.iter().map(|d| onboard(&admin, d))).await;
    for d in &third {
        case.sampler().note_namespace(&admin, &d.ns).await;
    }
    revoke(&admin, case.sampler(), &first[1], false).await;
    let mut polls = 0;
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(15) {
        let now = retry("actual", || async { actual(&admin, &case.prefix).await }).await;
        let diff = differences(&before, &now);
        assert!(diff.is_empty(), "a controller that cannot read the catalog granted or revoked: {diff:?}");
        polls += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    retry("restore", || async {
        cluster_roles.patch(&role_name, &ssa, &Patch::Apply(cluster_role(rules.clone()))).await
    })
    .await;
    case.converged("403 on the catalog and the namespaces lifted").await;

    let logs: String = (0..fresh + 1)
        .filter_map(|i| std::fs::read_to_string(case.dir.join(format!("replica-{i}.log"))).ok())
        .collect();
    let forbidden = logs.lines().filter(|l| l.contains("403") || l.contains("orbidden")).count();
    let unavailable = logs
        .lines()
        .filter(|l| ["500", "503", "504", "onnection refused", "ServiceUnavailable"].iter().any(|m| l.contains(m)))
        .count();
    case.notes.push(format!(
        "restart_to_ready={:.1}s log_lines_403={forbidden} log_lines_5xx_or_refused={unavailable} unchanged_polls_while_403={polls}",
        outage.as_secs_f64()
    ));
    case.finish(deployment).await;
    let _ = bindings.delete(&role_name, &DeleteParams::default()).await;
    let _ = cluster_roles.delete(&role_name, &DeleteParams::default()).await;
    let _ = Api::<Namespace>::all(admin).delete(&system, &DeleteParams::default()).await;
}
