//! Test harness: a real API server (the local control plane, or any cluster named by
//! `KL_TEST_KUBECONFIG`), the controller running in this process, and access checked the way
//! the API server itself decides it: SubjectAccessReview.
//!
//! Managing-tenant identities also sign in for real: [`expect_access`] repeats each check
//! with a token of the identity's own tenant, minted by the local issuers the control plane
//! trusts (SPEC §2).
//!
//! When `CI` is set, a test that cannot reach a control plane fails; elsewhere it says it is
//! skipped, loudly.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod views;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_lighthouse::api::{RegistrationAssignment, RegistrationDefinition};
use serde_json::json;

pub const MSP_TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
pub const OTHER_MSP_TENANT: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const DELETE_ROLE: &str = "91c1777a-f3dc-4fae-b103-61d183457e46";

/// How long an eventually-true condition may take before the test fails. Generous: this is
/// correctness on a loaded 2-core machine, not a latency measurement (see the benchmarks).
pub const PATIENCE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kubeconfig of the test cluster, bringing up the local control plane if needed, with
/// the CRDs and the role catalog installed. None (skip) only outside CI.
pub fn kubeconfig() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = match std::env::var_os("KL_TEST_KUBECONFIG") {
            Some(p) => PathBuf::from(p),
            None => {
                let up = Command::new(repo().join("hack/control-plane.sh")).arg("up").status();
                if !matches!(up, Ok(s) if s.success()) {
                    return unreachable_cluster("hack/control-plane.sh up failed");
                }
                let dir =
                    std::env::var_os("KL_STATE_DIR").map_or(PathBuf::from("/tmp/kube-lighthouse-cp"), PathBuf::from);
                dir.join("kubeconfig")
            }
        };
        for manifest in ["crds", "charts/kube-lighthouse/files/catalog.yaml"] {
            let ok = Command::new("kubectl")
                .env("KUBECONFIG", &path)
                .args(["apply", "--server-side", "--force-conflicts", "-f"])
                .arg(repo().join(manifest))
                .status();
            if !matches!(ok, Ok(s) if s.success()) {
                return unreachable_cluster(&format!("kubectl apply -f {manifest} failed"));
            }
        }
        let established = Command::new("kubectl")
            .env("KUBECONFIG", &path)
            .args(["wait", "--for=condition=Established", "--timeout=60s", "-f"])
            .arg(repo().join("crds"))
            .status();
        if !matches!(established, Ok(s) if s.success()) {
            return unreachable_cluster("CRDs never became established");
        }
        Some(path)
    })
    .clone()
}

fn unreachable_cluster(why: &str) -> Option<PathBuf> {
    assert!(std::env::var_os("CI").is_none(), "no control plane in CI: {why}");
    eprintln!("SKIPPED: no control plane ({why})");
    None
}

pub async fn client_for(path: &PathBuf) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig readable");
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig valid");
    Client::try_from(config).expect("client")
}

/// The test cluster's admin client, with the controller running against it (once per test
/// binary, on its own runtime so it outlives each test's runtime). None: skip the test.
pub async fn cluster() -> Option<Client> {
    let path = kubeconfig()?;
    static CONTROLLER: OnceLock<()> = OnceLock::new();
    // KL_TEST_EXTERNAL_CONTROLLER: a controller already runs against the cluster (e2e).
    CONTROLLER.get_or_init(|| {
        if std::env::var_os("KL_TEST_EXTERNAL_CONTROLLER").is_some() {
            return;
        }
        let path = path.clone();
        std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            runtime.block_on(async move {
                // The controller's log, for reading after a failure: target/controller-<test>.log
                let binary =
                    std::env::args().next().and_then(|a| a.rsplit('/').next().map(String::from)).unwrap_or_default();
                let log = repo().join("target").join(format!("controller-{binary}.log"));
                if let Ok(file) = std::fs::File::create(&log) {
                    let _ = tracing_subscriber::fmt()
                        .with_env_filter(tracing_subscriber::EnvFilter::new("info,kube_lighthouse=debug"))
                        .with_ansi(false)
                        .with_writer(std::sync::Mutex::new(file))
                        .try_init();
                }
                let client = client_for(&path).await;
                // Probe and metrics ports off: a demo controller may hold the defaults.
                use clap::Parser;
                let config = kube_lighthouse::config::Config::parse_from([
                    "kube-lighthouse",
                    "--metrics-port",
                    "0",
                    "--health-port",
                    "0",
                ]);
                if let Err(e) = kube_lighthouse::run(client, &config).await {
                    panic!("controller stopped: {e}");
                }
            });
        });
    });
    Some(client_for(&path).await)
}

/// A name unique to this test run, so tests share one cluster without seeing each other.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{:x}{n}", nanos % 0xfffff)
}

/// A fresh GUID-shaped tenant ID for a customer.
pub fn tenant_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let hex = format!("{:032x}", nanos ^ 0x5eed_0000_0000_0000_0000_0000_0000_0000);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

pub async fn apply_json<K>(api: &Api<K>, name: &str, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply("kube-lighthouse-tests").force(), &Patch::Apply(value)).await.expect("apply");
}

/// A subscription namespace of `tenant`.
pub async fn subscription(client: &Client, name: &str, tenant: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubelighthouse.io/tenant-id": tenant}}});
    apply_json(&api, name, ns).await;
}

/// A resource-group namespace of `subscription`.
pub async fn resource_group(client: &Client, name: &str, subscription: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubelighthouse.io/subscription": subscription}}});
    apply_json(&api, name, ns).await;
}

pub async fn plain_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    apply_json(&api, name, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).await;
}

/// An authorization as JSON: (principalId, principalType or "", roleDefinitionId).
pub fn authorization(principal: &str, kind: &str, role: &str) -> serde_json::Value {
    let mut a = json!({"principalId": principal, "roleDefinitionId": role});
    if !kind.is_empty() {
        a["principalType"] = json!(kind);
    }
    a
}

pub async fn definition(
    client: &Client,
    namespace: &str,
    name: &str,
    tenant: &str,
    authorizations: Vec<serde_json::Value>,
) {
    let api: Api<RegistrationDefinition> = Api::namespaced(client.clone(), namespace);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"registrationDefinitionName": format!("{name} offer"), "managedByTenantId": tenant, "authorizations": authorizations},
    });
    apply_json(&api, name, body).await;
}

pub async fn assignment(client: &Client, namespace: &str, name: &str, definition: &str) {
    let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), namespace);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationAssignment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"registrationDefinitionRef": {"name": definition}},
    });
    apply_json(&api, name, body).await;
}

pub async fn delete<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!("delete {name}: {e}"),
    }
}

/// What a requester wants to do, for a SubjectAccessReview.
#[derive(Clone, Debug)]
pub struct Access<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl Access<'_> {
    /// The request's attributes, as an access review asks about them.
    pub fn attributes(&self) -> ResourceAttributes {
        ResourceAttributes {
            verb: Some(self.verb.into()),
            group: Some(self.group.into()),
            resource: Some(self.resource.into()),
            subresource: Some(self.subresource.into()),
            namespace: Some(self.namespace.into()),
            name: Some(self.name.into()),
            ..Default::default()
        }
    }
}

/// `resource[.group][/subresource]` or `resource[/subresource][.group]`, e.g. `pods/exec`,
/// `deployments.apps/scale`, `registrationassignments/status.managedservices.kubelighthouse.io`.
pub fn access<'a>(verb: &'a str, resource: &'a str, namespace: &'a str) -> Access<'a> {
    let (base, sub) = resource.split_once('/').unwrap_or((resource, ""));
    let (resource, group, subresource) = match (base.split_once('.'), sub.split_once('.')) {
        (Some((r, g)), _) => (r, g, sub),
        (None, Some((s, g))) => (base, g, s),
        (None, None) => (base, "", sub),
    };
    Access { verb, group, resource, subresource, namespace, name: "" }
}

/// Asks the API server whether `user` (in `groups`) may do `what`: the authorizer's verdict,
/// exactly as a request by that identity would get it.
pub async fn allowed(client: &Client, user: &str, groups: &[&str], what: &Access<'_>) -> bool {
    review(client, user, groups, what).await.expect("SubjectAccessReview")
}

/// [`allowed`], with a failed review as an error rather than a failed test.
pub async fn review(client: &Client, user: &str, groups: &[&str], what: &Access<'_>) -> Result<bool, kube::Error> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(what.attributes()),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Polls until `check` holds, or fails the test with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `user`/`groups` get exactly `expected` for `what`: asked of the authorizer
/// (SubjectAccessReview), and, when the identity is a managing tenant's (its user and groups
/// all projected from one tenant with a local issuer, see [`signed_in`]), also by that
/// identity itself, signed in with its own token: a real `list` for lists, a
/// SelfSubjectAccessReview otherwise.
pub async fn expect_access(client: &Client, user: &str, groups: &[&str], what: Access<'_>, expected: bool) {
    let label = format!("{user} {groups:?} {} {:?}", if expected { "may" } else { "may not" }, what);
    eventually(&label, || {
        let what = what.clone();
        async move { allowed(client, user, groups, &what).await == expected }
    })
    .await;
    if let Some(own) = signed_in(user, groups).await {
        eventually(&format!("{label}, signed in with its own token"), || {
            let what = what.clone();
            let own = own.clone();
            async move { real_request(&own, &what).await == expected }
        })
        .await;
    }
}

// --- real sign-in ---------------------------------------------------------------------

/// The local token issuers of the managing tenants (hack/control-plane.sh: `contoso` for
/// [`MSP_TENANT`], `fabrikam` for [`OTHER_MSP_TENANT`]), under `KL_TEST_ISSUERS_DIR` or the
/// control plane's state directory. Empty only for a cluster without them (outside CI).
pub fn issuers() -> &'static [kl_token_issuer::Issuer] {
    static ISSUERS: OnceLock<Vec<kl_token_issuer::Issuer>> = OnceLock::new();
    ISSUERS.get_or_init(|| {
        let dir = std::env::var_os("KL_TEST_ISSUERS_DIR")
            .map(PathBuf::from)
            .or_else(|| kubeconfig().and_then(|k| k.parent().map(|p| p.join("issuers"))));
        let found: Vec<kl_token_issuer::Issuer> = dir
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| kl_token_issuer::Issuer::load(&entry.path()).ok())
            .collect();
        if found.is_empty() {
            assert!(std::env::var_os("CI").is_none(), "no token issuers in CI: hack/control-plane.sh starts them");
            eprintln!("SKIPPED: real sign-in (no token issuers beside the test cluster)");
        }
        found
    })
}

/// The issuer that speaks for `tenant`.
pub fn issuer(tenant: &str) -> Option<&'static kl_token_issuer::Issuer> {
    issuers().iter().find(|i| i.tenant() == tenant)
}

/// A token of `tenant`'s issuer for `request`.
pub fn token(tenant: &str, request: &kl_token_issuer::TokenRequest) -> Option<String> {
    Some(issuer(tenant)?.mint(request).expect("mint token"))
}

/// The one tenant and principal IDs behind a managing-tenant identity: `user` `T:P` (or any
/// user name that is not projected, when it only stands in for some member of the groups)
/// and groups `T:G`. None when the names mix tenants or are not projected.
fn projected_identity(user: &str, groups: &[&str]) -> Option<(String, String, Vec<String>)> {
    let split = |name: &str| {
        let (tenant, id) = name.split_once(':')?;
        kube_lighthouse::model::tenant::Guid::parse(tenant)?;
        Some((tenant.to_string(), id.to_string()))
    };
    let user = split(user);
    let groups: Option<Vec<(String, String)>> = groups.iter().map(|g| split(g)).collect();
    let groups = groups?;
    let tenant = user.as_ref().map(|(t, _)| t.clone()).or_else(|| groups.first().map(|(t, _)| t.clone()))?;
    if groups.iter().any(|(t, _)| *t != tenant) {
        return None;
    }
    // A stand-in user name becomes a fresh object ID that nothing grants anything to.
    let oid = user.map(|(_, p)| p).unwrap_or_else(|| "00000000-0000-0000-0000-00000000ffff".to_string());
    Some((tenant, oid, groups.into_iter().map(|(_, g)| g).collect()))
}

/// A client signed in as the managing-tenant identity `user`/`groups`, with a token of its
/// tenant's own issuer. None when the identity is not a managing tenant's, or there are no
/// issuers (outside CI).
pub async fn signed_in(user: &str, groups: &[&str]) -> Option<Client> {
    let (tenant, oid, groups) = projected_identity(user, groups)?;
    let token = token(&tenant, &kl_token_issuer::TokenRequest::new(oid).groups(groups))?;
    Some(client_with_token(&token).await)
}

/// Whether `client`'s own identity may do `what`, asked by a real request: a `list` is made
/// (200 or 403); anything else is asked with a SelfSubjectAccessReview, which the API server
/// answers for the identity the request authenticated as.
pub async fn real_request(client: &Client, what: &Access<'_>) -> bool {
    use k8s_openapi::api::authorization::v1::{SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
    if what.verb == "list" && what.subresource.is_empty() && what.name.is_empty() {
        let resource = kube::discovery::ApiResource {
            group: what.group.to_string(),
            version: String::new(),
            api_version: String::new(),
            kind: String::new(),
            plural: what.resource.to_string(),
        };
        let version = match what.group {
            "" => "v1",
            "managedservices.kubelighthouse.io" => "v1alpha1",
            _ => "",
        };
        if !version.is_empty() {
            let api_version =
                if what.group.is_empty() { version.to_string() } else { format!("{}/{version}", what.group) };
            let resource = kube::discovery::ApiResource { version: version.into(), api_version, ..resource };
            let api: Api<kube::core::DynamicObject> = Api::namespaced_with(client.clone(), what.namespace, &resource);
            return match api.list(&kube::api::ListParams::default().limit(1)).await {
                Ok(_) => true,
                Err(kube::Error::Api(s)) if s.code == 403 => false,
                Err(e) => panic!("list {} in {} with a token: {e}", what.resource, what.namespace),
            };
        }
    }
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec { resource_attributes: Some(what.attributes()), ..Default::default() },
        ..Default::default()
    };
    let answer = api.create(&PostParams::default(), &review).await.expect("SelfSubjectAccessReview with a token");
    answer.status.is_some_and(|s| s.allowed)
}

/// The projected identity of a managing-tenant principal under the default templates.
pub fn projected(tenant: &str, principal: &str) -> String {
    format!("{tenant}:{principal}")
}

pub async fn assignment_status(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Option<kube_lighthouse::api::RegistrationAssignmentStatus> {
    let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name).await.expect("get assignment").and_then(|a| a.status)
}

/// Waits until the assignment reports `state` and returns its status.
pub async fn wait_for_assignment_state(
    client: &Client,
    namespace: &str,
    name: &str,
    state: &str,
) -> kube_lighthouse::api::RegistrationAssignmentStatus {
    eventually(&format!("assignment {namespace}/{name} is {state}"), || async {
        assignment_status(client, namespace, name)
            .await
            .and_then(|s| s.provisioning_state)
            .is_some_and(|p| p.as_str() == state)
    })
    .await;
    assignment_status(client, namespace, name).await.expect("status")
}

/// Warning Events recorded for an object, as (reason, note).
pub async fn warning_events(client: &Client, namespace: &str, name: &str) -> Vec<(String, String)> {
    warnings_about(client, namespace, |r| r.name.as_deref() == Some(name)).await
}

/// Warning Events in `namespace` whose regarding object `is_it`, as (reason, note).
pub async fn warnings_about(
    client: &Client,
    namespace: &str,
    is_it: impl Fn(&k8s_openapi::api::core::v1::ObjectReference) -> bool,
) -> Vec<(String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    let events = api.list(&Default::default()).await.expect("list events");
    events
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().is_some_and(&is_it) && e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Roles and RoleBindings the controller holds for anything in `namespace`.
pub async fn managed_objects(client: &Client, namespace: &str) -> usize {
    let selector = kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=kube-lighthouse");
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), namespace);
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::namespaced(client.clone(), namespace);
    roles.list(&selector).await.expect("roles").items.len()
        + bindings.list(&selector).await.expect("bindings").items.len()
}

/// A client acting as `user` in `groups` (impersonation by the admin): requests it makes are
/// authorized exactly as that identity's would be.
/// The kubeconfig at `path`, acting as `user` in `groups`.
fn impersonating(path: &std::path::Path, user: &str, groups: &[&str]) -> Kubeconfig {
    let mut kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig readable");
    for named in &mut kubeconfig.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.to_string());
            auth.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
        }
    }
    kubeconfig
}

/// A kubeconfig file in `dir` for a controller subprocess acting as `user` (still in
/// system:masters), so the audit log attributes each of its requests to it.
pub fn impersonating_kubeconfig(admin: &std::path::Path, dir: &std::path::Path, user: &str) -> PathBuf {
    let config = impersonating(admin, user, &["system:masters"]);
    let path = dir.join(format!("{user}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml")).expect("write kubeconfig");
    path
}

pub async fn client_as(user: &str, groups: &[&str]) -> Client {
    let path = kubeconfig().expect("cluster");
    let kubeconfig = impersonating(&path, user, groups);
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

/// The local control plane's state directory (audit log, logs), when the tests use it.
pub fn local_state_dir() -> Option<PathBuf> {
    let dir = kubeconfig()?.parent()?.to_path_buf();
    dir.join("logs/audit.log").exists().then_some(dir)
}

/// The controller binary as a subprocess, started with no arguments apart from `env` (ports
/// off, debug logs to `log`); killed on drop.
pub struct ControllerProcess(Child);

impl ControllerProcess {
    pub fn start(kubeconfig: &Path, log: &Path, env: &[(&str, &str)]) -> ControllerProcess {
        let file = std::fs::File::create(log).expect("log file");
        eprintln!("controller log: {}", log.display());
        let child = Command::new(env!("CARGO_BIN_EXE_kube-lighthouse"))
            .env("KUBECONFIG", kubeconfig)
            .env("KUBE_LIGHTHOUSE_LOG", "info,kube_lighthouse=debug")
            .env("KUBE_LIGHTHOUSE_METRICS_PORT", "0")
            .env("KUBE_LIGHTHOUSE_HEALTH_PORT", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone().expect("dup")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start kube-lighthouse");
        ControllerProcess(child)
    }

    /// SIGKILL: a crash, not a graceful stop.
    pub fn crash(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client that signs in with `token` (a bearer token: a ServiceAccount's, or a managing
/// tenant's from its issuer) against the test cluster: requests it makes are that identity's
/// own, authenticated by the API server, with no impersonation.
pub async fn client_with_token(token: &str) -> Client {
    let path = kubeconfig().expect("cluster");
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("kubeconfig")).expect("yaml");
    for user in yaml["users"].as_sequence_mut().expect("users") {
        user["user"] = serde_yaml::to_value(json!({"token": token})).expect("token");
    }
    let kubeconfig = Kubeconfig::from_yaml(&serde_yaml::to_string(&yaml).expect("yaml")).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

/// A fresh token of ServiceAccount `namespace/name` (TokenRequest, `kubectl create token`).
pub fn service_account_token(namespace: &str, name: &str) -> String {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig().expect("cluster"))
        .args(["create", "token", name, "-n", namespace, "--duration", "1h"])
        .output()
        .expect("kubectl create token");
    assert!(out.status.success(), "create token: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// The HTTP status a real `list pods` in `namespace` gets with `client`'s own credentials:
/// 200, 403 (forbidden) or 401 (not signed in).
pub async fn list_pods_status(client: &Client, namespace: &str) -> u16 {
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    match api.list(&kube::api::ListParams::default().limit(1)).await {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("list pods in {namespace}: {e}"),
    }
}

/// Waits until a real `list pods` in `namespace` with `client` gets `status`.
pub async fn expect_list_pods(client: &Client, namespace: &str, status: u16, who: &str) {
    eventually(&format!("{who} gets {status} listing pods in {namespace}"), || async {
        list_pods_status(client, namespace).await == status
    })
    .await;
}

/// The `kubelighthouse.io/managed-by-tenants` annotation of namespace `ns`, if any.
pub async fn managed_by_tenants(client: &Client, ns: &str) -> Option<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    api.get(ns)
        .await
        .expect("namespace")
        .metadata
        .annotations
        .and_then(|a| a.get("kubelighthouse.io/managed-by-tenants").cloned())
}
