//! The fleet (docs/fleet.md) on real control planes.
//!
//! The customer cluster's report: served by the real binary through the real aggregation
//! layer, granted by the customer with RBAC (`get` on `reports`, `resourceNames` the tenant)
//! to a ServiceAccount the hub signs in as, with that ServiceAccount's real token. Tenant A's
//! credential reads A's report and nothing else: not B's report, not a list of reports, no
//! Secret, no delegation object; the report holds A's delegations and only what it names;
//! deleting the binding withdraws the grant.
//!
//! The hub: three more control planes (`hack/control-plane.sh up` with `KL_STATE_DIR`
//! `/tmp/kl-fleet-c1..3`, or `$KL_FLEET_STATE{1,2,3}`; started here, left up for the next run,
//! hack/test.sh takes them down), each with its own kube-lighthouse and random delegations to
//! both tenants, and the hub binary on the test cluster following them through ClusterProfiles
//! (one via the exec credential provider, two via hand-written Secrets). Each caller's hub
//! view equals the union of the clusters' own views; a delegation created or revoked reaches
//! the hub within 5 s of the cluster; a withdrawn grant removes that cluster's data.

mod common;

use std::collections::BTreeSet;

use common::views::ViewsServer;
use common::*;
use kube::api::{Api, DeleteParams};
use kube::Client;
use kube_lighthouse::api::view::Report;
use serde::Deserialize;
use serde_json::json;

/// Both tests register the views' APIService on the test cluster (one per cluster): one at a
/// time.
static ONE_API_SERVICE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The ClusterRole and ClusterRoleBinding a customer writes to grant `tenant`'s report to
/// ServiceAccount `namespace/name` (docs/fleet.md, "Granting a hub its report").
fn grant(name: &str, tenant: &str, namespace: &str, account: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name},
         "rules": [{"apiGroups": ["view.kubelighthouse.io"], "resources": ["reports"],
                    "resourceNames": [tenant], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ]})
}

fn apply(kubeconfig: &std::path::Path, dir: &std::path::Path, name: &str, objects: &serde_json::Value) {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, objects.to_string()).expect("write");
    kubectl(kubeconfig, &["apply", "-f", &file.to_string_lossy()]);
}

/// The HTTP status of a request that must fail, or 200.
fn code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(other) => panic!("not an API answer: {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_tenants_grant_reads_that_tenants_report_and_nothing_else() {
    let _one = ONE_API_SERVICE.lock().await;
    let path = kubeconfig();
    let views = ViewsServer::start(&path);
    let admin = client_for(&path).await;

    // One customer subscription (with a resource group) delegated to both tenants.
    let customer = tenant_id();
    let (sub, rg) = (unique("fleet-sub"), unique("fleet-rg"));
    subscription(&admin, &sub, &customer).await;
    resource_group(&admin, &rg, &sub).await;
    let (engineer, engineers) = (tenant_id(), tenant_id());
    definition(&admin, &sub, "contoso", MSP_TENANT, vec![authorization(&engineers, "Group", READER)]).await;
    assignment(&admin, &sub, "contoso", "contoso").await;
    definition(&admin, &sub, "contoso-web", MSP_TENANT, vec![authorization(&engineer, "User", CONTRIBUTOR)]).await;
    assignment(&admin, &rg, "contoso-web", "contoso-web").await;
    definition(&admin, &sub, "fabrikam", OTHER_MSP_TENANT, vec![authorization(&engineer, "", READER)]).await;
    assignment(&admin, &sub, "fabrikam", "fabrikam").await;
    for (ns, name) in [(&sub, "contoso"), (&rg, "contoso-web"), (&sub, "fabrikam")] {
        wait_for_assignment_state(&admin, ns, name, "Succeeded").await;
    }

    // The customer grants each tenant's hub its report, to a ServiceAccount of its own.
    let hubs = unique("fleet-hubs");
    plain_namespace(&admin, &hubs).await;
    service_account(&admin, &hubs, "contoso-hub").await;
    service_account(&admin, &hubs, "fabrikam-hub").await;
    let (contoso_grant, fabrikam_grant) = (unique("report-contoso"), unique("report-fabrikam"));
    apply(&path, &views.dir, "contoso", &grant(&contoso_grant, MSP_TENANT, &hubs, "contoso-hub"));
    apply(&path, &views.dir, "fabrikam", &grant(&fabrikam_grant, OTHER_MSP_TENANT, &hubs, "fabrikam-hub"));
    let contoso = client_with_token(&service_account_token(&hubs, "contoso-hub")).await;
    let fabrikam = client_with_token(&service_account_token(&hubs, "fabrikam-hub")).await;
    let reports = |c: &Client| Api::<Report>::all(c.clone());

    // Contoso's credential reads Contoso's report: both its delegations in this subscription,
    // each with what it names, and nothing of Fabrikam's.
    let ours = poll(
        "Contoso's report lists its two delegations",
        || async { reports(&contoso).get(MSP_TENANT).await.ok() },
        |r| {
            r.as_ref().is_some_and(|r| {
                r.delegations.iter().filter(|d| d.subscription == sub).count() == 2
                    && r.delegations.iter().all(|d| d.state == "Succeeded" || d.subscription != sub)
            })
        },
    )
    .await
    .expect("a report");
    assert_eq!(ours.managed_by_tenant_id, MSP_TENANT);
    assert!(!ours.observed_time.is_empty());
    let here: Vec<_> = ours.delegations.iter().filter(|d| d.subscription == sub).collect();
    let names: BTreeSet<&str> = here.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from([format!("{sub}.contoso").as_str(), format!("{rg}.contoso-web").as_str()]));
    let web = here.iter().find(|d| d.namespace == rg).expect("the resource group's");
    assert_eq!((web.customer_tenant_id.as_str(), web.scope_kind.as_str()), (customer.as_str(), "ResourceGroup"));
    assert_eq!(web.offer.display_name, "contoso-web offer");
    assert_eq!(web.authorizations.len(), 1);
    let a = &web.authorizations[0];
    assert_eq!((a.principal.principal_id.as_str(), a.role.as_str()), (engineer.as_str(), "Contributor"));
    assert_eq!(a.principal.subjects[0].name, projected(MSP_TENANT, &engineer));
    assert_eq!(web.namespaces, vec![rg.clone()]);
    let text = serde_json::to_string(&ours).expect("json");
    assert!(!text.contains(OTHER_MSP_TENANT) && !text.contains("fabrikam"), "Fabrikam in Contoso's report: {text}");

    // Fabrikam's credential: its own report only.
    let theirs = reports(&fabrikam).get(OTHER_MSP_TENANT).await.expect("Fabrikam's report");
    assert!(theirs.delegations.iter().any(|d| d.name == format!("{sub}.fabrikam")));
    assert!(!serde_json::to_string(&theirs).expect("json").contains(MSP_TENANT));

    // Neither reads the other's report, a list of reports, a Secret, or the delegations.
    assert_eq!(code(reports(&contoso).get(OTHER_MSP_TENANT).await), 403);
    assert_eq!(code(reports(&fabrikam).get(MSP_TENANT).await), 403);
    assert_eq!(code(reports(&contoso).list(&Default::default()).await), 403);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(contoso.clone(), &sub);
    assert_eq!(code(secrets.list(&Default::default()).await), 403);
    let definitions: Api<kube_lighthouse::api::RegistrationDefinition> = Api::namespaced(contoso.clone(), &sub);
    assert_eq!(code(definitions.get("contoso").await), 403);
    // A managing-tenant engineer signed in with their own token is granted no report either.
    if let Some(token) = token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(&engineer)) {
        let engineer = client_with_token(&token).await;
        assert_eq!(code(reports(&engineer).get(MSP_TENANT).await), 403);
    }

    // A delegation revoked in the cluster leaves the report at once (no hub involved).
    let assignments: Api<kube_lighthouse::api::RegistrationAssignment> = Api::namespaced(admin.clone(), &rg);
    assignments.delete("contoso-web", &DeleteParams::default()).await.expect("delete");
    poll(
        "the revoked delegation leaves the report",
        || async { reports(&contoso).get(MSP_TENANT).await.expect("report") },
        |r| !r.delegations.iter().any(|d| d.namespace == rg),
    )
    .await;

    // The customer sees both grants among its providers.
    let out = std::process::Command::new(common::plugin_binary())
        .args(["providers", "-A", "--kubeconfig"])
        .arg(&path)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl-lighthouse");
    let providers = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{providers}{}", String::from_utf8_lossy(&out.stderr));
    for (tenant, hub, binding) in
        [(MSP_TENANT, "contoso-hub", &contoso_grant), (OTHER_MSP_TENANT, "fabrikam-hub", &fabrikam_grant)]
    {
        let row = format!("ServiceAccount:{hubs}/{hub}");
        assert!(
            providers.lines().any(|l| l.contains(tenant) && l.contains(&row) && l.contains(binding.as_str())),
            "no grant of {tenant} to {hub} in:\n{providers}"
        );
    }

    // The customer withdraws Contoso's grant: deleting the binding is enough.
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin.clone());
    bindings.delete(&contoso_grant, &DeleteParams::default()).await.expect("delete binding");
    eventually("the withdrawn grant reads nothing", || async { code(reports(&contoso).get(MSP_TENANT).await) == 403 })
        .await;
    assert_eq!(code(reports(&fabrikam).get(OTHER_MSP_TENANT).await), 200, "Fabrikam's grant stands");
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    for name in [&contoso_grant, &fabrikam_grant] {
        let _ = roles.delete(name, &DeleteParams::default()).await;
        let _ = bindings.delete(name, &DeleteParams::default()).await;
    }
}

/// One customer control plane of the fleet test: its own kube-lighthouse (views and reports)
/// and the grants it gives each managing tenant's hub.
struct Customer {
    name: String,
    kubeconfig: std::path::PathBuf,
    client: Client,
    views: Option<ViewsServer>,
    /// Per managing tenant: the grant's name and the ServiceAccount token the hub is given.
    grants: Vec<(String, String, String)>,
}

/// `hack/control-plane.sh up` with `KL_STATE_DIR=dir` (idempotent), run at once for all.
fn control_planes(dirs: &[std::path::PathBuf]) {
    let issuer = repo().join("target/debug/kl-token-issuer");
    let children: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let mut cmd = std::process::Command::new(repo().join("hack/control-plane.sh"));
            cmd.arg("up").env("KL_STATE_DIR", dir).stdout(std::process::Stdio::null());
            if issuer.exists() {
                cmd.env("KL_TOKEN_ISSUER", &issuer);
            }
            cmd.spawn().expect("hack/control-plane.sh up")
        })
        .collect();
    for (mut child, dir) in children.into_iter().zip(dirs) {
        assert!(child.wait().expect("wait").success(), "control plane {} did not come up", dir.display());
    }
}

/// The base of the customer control planes' state directories: `KL_FLEET_STATE` (default
/// `/tmp/kl-fleet-c`), then 1, 2, 3.
fn customer_dirs() -> Vec<std::path::PathBuf> {
    let base = std::env::var("KL_FLEET_STATE").unwrap_or_else(|_| "/tmp/kl-fleet-c".into());
    (1..=3).map(|i| std::path::PathBuf::from(format!("{base}{i}"))).collect()
}

fn token_of(kubeconfig: &std::path::Path, namespace: &str, account: &str) -> String {
    kubectl(kubeconfig, &["create", "token", account, "-n", namespace, "--duration", "2h"]).trim().to_string()
}

/// A kubeconfig for `admin`'s cluster whose user is `token` (what the customer hands the MSP).
fn with_token(admin: &std::path::Path, token: &str) -> String {
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(admin).expect("kubeconfig")).expect("yaml");
    for user in yaml["users"].as_sequence_mut().expect("users") {
        user["user"] = serde_yaml::to_value(json!({"token": token})).expect("token");
    }
    serde_yaml::to_string(&yaml).expect("yaml")
}

/// The hub's identity: a ServiceAccount holding exactly what the chart installs for hub mode
/// (`helm template --set hub.enabled=true`: templates/hub.yaml, views.yaml,
/// serviceaccount.yaml), so the hub runs here on the chart's RBAC, never as admin. Returns a
/// kubeconfig of that ServiceAccount's token and the rendered objects (to delete).
fn hub_identity(
    hub: &std::path::Path,
    dir: &std::path::Path,
    fleet_ns: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let helm = std::process::Command::new(repo().join("hack/install-helm.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("hack/install-helm.sh");
    assert!(helm.status.success(), "hack/install-helm.sh failed");
    let helm = String::from_utf8_lossy(&helm.stdout).trim().to_string();
    let release = unique("hub");
    let rendered = std::process::Command::new(helm)
        .args(["template", &release])
        .arg(repo().join("charts/kube-lighthouse"))
        .args(["--namespace", &release, "--set", "hub.enabled=true", "--set", &format!("hub.namespace={fleet_ns}")])
        .args(["--set", &format!("hub.tenants={{{MSP_TENANT},{OTHER_MSP_TENANT}}}")])
        .args(["--show-only", "templates/hub.yaml", "--show-only", "templates/views.yaml"])
        .args(["--show-only", "templates/serviceaccount.yaml"])
        .output()
        .expect("helm template");
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    let file = dir.join("hub-rbac.yaml");
    std::fs::write(&file, &rendered.stdout).expect("write");
    let account = serde_yaml::Deserializer::from_str(&String::from_utf8_lossy(&rendered.stdout))
        .filter_map(|d| serde_yaml::Value::deserialize(d).ok())
        .find(|d| d["kind"] == "ServiceAccount")
        .and_then(|d| d["metadata"]["name"].as_str().map(str::to_string))
        .expect("the chart's ServiceAccount");
    kubectl(hub, &["create", "namespace", &release]);
    kubectl(hub, &["apply", "-f", &file.to_string_lossy()]);
    let token = token_of(hub, &release, &account);
    let kubeconfig = dir.join("hub-identity.kubeconfig");
    std::fs::write(&kubeconfig, with_token(hub, &token)).expect("kubeconfig");
    (kubeconfig, file)
}

/// A small deterministic generator (xorshift), seeded per run and printed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The principals of the run: three users and two groups, the same object IDs in both tenants.
struct Principals {
    users: Vec<String>,
    groups: Vec<String>,
}

/// Random delegations in `client`'s cluster: `count` subscriptions, each delegated to a
/// random tenant (both tenants at least once), with one or two random authorizations.
async fn random_delegations(client: &Client, rng: &mut Rng, p: &Principals, cluster: &str) -> Vec<(String, String)> {
    let mut made = Vec::new();
    for i in 0..4 {
        let sub = unique(&format!("{cluster}-s{i}"));
        subscription(client, &sub, &tenant_id()).await;
        let tenant =
            if i < 2 { [MSP_TENANT, OTHER_MSP_TENANT][i] } else { [MSP_TENANT, OTHER_MSP_TENANT][rng.below(2)] };
        let mut auths = Vec::new();
        for _ in 0..=rng.below(2) {
            let (principal, kind) = if rng.below(2) == 0 {
                (p.users[rng.below(p.users.len())].clone(), ["User", ""][rng.below(2)])
            } else {
                (p.groups[rng.below(p.groups.len())].clone(), ["Group", ""][rng.below(2)])
            };
            let a = authorization(&principal, kind, [READER, CONTRIBUTOR][rng.below(2)]);
            // One role per principal once: a duplicate is rejected (DuplicateAuthorization).
            if !auths.iter().any(|b: &serde_json::Value| {
                b["principalId"] == a["principalId"] && b["roleDefinitionId"] == a["roleDefinitionId"]
            }) {
                auths.push(a);
            }
        }
        definition(client, &sub, "msp", tenant, auths).await;
        assignment(client, &sub, "msp", "msp").await;
        made.push((sub, "msp".to_string()));
    }
    made
}

impl Customer {
    async fn start(name: &str, dir: &std::path::Path, rng: &mut Rng, p: &Principals) -> Customer {
        let kubeconfig = dir.join("kubeconfig");
        for manifest in ["crds", "charts/kube-lighthouse/files/catalog.yaml"] {
            kubectl(
                &kubeconfig,
                &["apply", "--server-side", "--force-conflicts", "-f", &repo().join(manifest).to_string_lossy()],
            );
        }
        kubectl(
            &kubeconfig,
            &["wait", "--for=condition=Established", "--timeout=60s", "-f", &repo().join("crds").to_string_lossy()],
        );
        let views = ViewsServer::start(&kubeconfig);
        let client = client_for(&kubeconfig).await;
        for (ns, a) in random_delegations(&client, rng, p, name).await {
            wait_for_assignment_state(&client, &ns, &a, "Succeeded").await;
        }
        let hubs = unique("hubs");
        plain_namespace(&client, &hubs).await;
        let mut grants = Vec::new();
        for (tenant, account) in [(MSP_TENANT, "contoso-hub"), (OTHER_MSP_TENANT, "fabrikam-hub")] {
            service_account(&client, &hubs, account).await;
            let grant_name = unique(&format!("report-{account}"));
            apply(&kubeconfig, &views.dir, account, &grant(&grant_name, tenant, &hubs, account));
            grants.push((tenant.to_string(), grant_name, token_of(&kubeconfig, &hubs, account)));
        }
        Customer { name: name.to_string(), kubeconfig, client, views: Some(views), grants }
    }

    /// What this cluster's own views show `user` in `groups` (impersonated by the admin: the
    /// API server passes the same identity to the views as a token would).
    async fn own_view(&self, user: &str, groups: &[String]) -> Vec<kube_lighthouse::api::view::Delegation> {
        let mut config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("config");
        config.auth_info.impersonate = Some(user.to_string());
        let mut all: Vec<String> = groups.to_vec();
        all.push("system:authenticated".into());
        config.auth_info.impersonate_groups = Some(all);
        let client = Client::try_from(config).expect("client");
        Api::<kube_lighthouse::api::view::Delegation>::all(client)
            .list(&Default::default())
            .await
            .expect("own view")
            .items
    }
}

/// A delegation as the hub must show it, from a cluster's own view: the cluster's name on it.
fn at_hub(cluster: &str, mut d: kube_lighthouse::api::view::Delegation) -> kube_lighthouse::api::view::Delegation {
    d.metadata.name = Some(kube_lighthouse::model::fleet::hub_name(cluster, &d.namespace, &d.assignment));
    d.cluster = Some(cluster.to_string());
    d.activations.clear();
    d
}

fn comparable(mut ds: Vec<kube_lighthouse::api::view::Delegation>) -> Vec<kube_lighthouse::api::view::Delegation> {
    for d in &mut ds {
        d.observed_time = None;
    }
    ds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    ds
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_hub_shows_each_caller_the_union_of_what_each_cluster_shows_it() {
    let _one = ONE_API_SERVICE.lock().await;
    let hub_kubeconfig = kubeconfig();
    let dirs = customer_dirs();
    let started = std::time::Instant::now();
    control_planes(&dirs);
    eprintln!("customer control planes up in {:.1} s", started.elapsed().as_secs_f64());
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    eprintln!("delegations seed: {seed}");
    let mut rng = Rng(seed);
    let p = Principals { users: (0..3).map(|_| tenant_id()).collect(), groups: (0..2).map(|_| tenant_id()).collect() };
    let mut customers: Vec<Customer> = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        customers.push(Customer::start(&unique(&format!("c{}", i + 1)), dir, &mut rng, &p).await);
    }

    // The hub: the ClusterProfile CRD, one hand-written profile per cluster whose Secret holds
    // the customer's read-only token for Contoso's report, except the first cluster, reached
    // through the Cluster Inventory API's exec credential provider.
    let hub = client_for(&hub_kubeconfig).await;
    let scratch = std::env::temp_dir().join(unique("fleet-hub"));
    std::fs::create_dir_all(&scratch).expect("dir");
    kubectl(
        &hub_kubeconfig,
        &[
            "apply",
            "-f",
            &repo().join("tests/fixtures/fleet/multicluster.x-k8s.io_clusterprofiles.yaml").to_string_lossy(),
        ],
    );
    kubectl(
        &hub_kubeconfig,
        &["wait", "--for=condition=Established", "--timeout=60s", "crd/clusterprofiles.multicluster.x-k8s.io"],
    );
    let fleet_ns = unique("fleet");
    plain_namespace(&hub, &fleet_ns).await;
    // The exec plugin: reads the token file the cluster's exec extension names
    // (KUBERNETES_EXEC_INFO, provideClusterInfo) and answers an ExecCredential.
    let token_plugin = scratch.join("token-plugin");
    std::fs::write(
        &token_plugin,
        "#!/usr/bin/env python3\nimport json, os\ninfo = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n\
         token = open(info['spec']['cluster']['config']['tokenFile']).read().strip()\n\
         print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential', 'status': {'token': token}}))\n",
    )
    .expect("plugin");
    std::process::Command::new("chmod").arg("+x").arg(&token_plugin).status().expect("chmod");
    let providers = scratch.join("providers.json");
    std::fs::write(
        &providers,
        json!({"providers": [{"name": "fleet-token", "execConfig": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": token_plugin, "provideClusterInfo": true,
            "interactiveMode": "Never"}}]})
        .to_string(),
    )
    .expect("providers");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(hub.clone(), &fleet_ns);
    for (i, c) in customers.iter().enumerate() {
        let token = &c.grants[0].2;
        let admin: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&c.kubeconfig).expect("kubeconfig")).expect("yaml");
        let cluster = &admin["clusters"][0]["cluster"];
        let mut profile = json!({
            "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ClusterProfile",
            "metadata": {"name": c.name, "namespace": fleet_ns},
            "spec": {"clusterManager": {"name": "hand-written"}, "displayName": c.name},
        });
        if i == 0 {
            let token_file = scratch.join(format!("{}.token", c.name));
            std::fs::write(&token_file, token).expect("token");
            apply(&hub_kubeconfig, &scratch, &c.name, &profile);
            let status = json!({"status": {"accessProviders": [{"name": "fleet-token", "cluster": {
                "server": cluster["server"], "certificate-authority-data": cluster["certificate-authority-data"],
                "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"tokenFile": token_file}}]}}]}});
            let api = Api::<kube::api::DynamicObject>::namespaced_with(
                hub.clone(),
                &fleet_ns,
                &kube::api::ApiResource::from_gvk_with_plural(
                    &kube::api::GroupVersionKind::gvk("multicluster.x-k8s.io", "v1alpha1", "ClusterProfile"),
                    "clusterprofiles",
                ),
            );
            api.patch_status(&c.name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(status))
                .await
                .expect("status");
        } else {
            let secret = format!("{}-kubeconfig", c.name);
            let body: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
                "metadata": {"name": secret, "namespace": fleet_ns},
                "stringData": {"kubeconfig": with_token(&c.kubeconfig, token)},
            }))
            .expect("secret");
            secrets.create(&Default::default(), &body).await.expect("create secret");
            profile["metadata"]["annotations"] = json!({"kubelighthouse.io/kubeconfig-secret": secret});
            apply(&hub_kubeconfig, &scratch, &c.name, &profile);
        }
    }
    let (ca, cert, key) = common::webhook::certificates_for(
        &scratch,
        &format!("DNS:{}.{}.svc,DNS:localhost,IP:127.0.0.1", common::views::SERVICE, common::views::SERVICE_NAMESPACE),
    );
    let (hub_identity, hub_rbac) = hub_identity(&hub_kubeconfig, &scratch, &fleet_ns);
    let port = free_port();
    let log = scratch.join("hub.log");
    eprintln!("hub log: {}", log.display());
    let _hub_process = common::webhook::Controller(
        std::process::Command::new(env!("CARGO_BIN_EXE_kube-lighthouse"))
            .args(["--hub", "true", "--hub-tenants", &format!("{MSP_TENANT},{OTHER_MSP_TENANT}")])
            .args([
                "--hub-namespace",
                &fleet_ns,
                "--hub-poll-ms",
                "500",
                "--webhook-port",
                &port.to_string(),
                "--metrics-port",
                "0",
                "--health-port",
                "0",
            ])
            .arg("--hub-provider-file")
            .arg(&providers)
            .arg("--webhook-cert")
            .arg(&cert)
            .arg("--webhook-key")
            .arg(&key)
            // The chart's hub RBAC, not admin: list the fleet namespace's ClusterProfiles, get
            // its Secrets, read the front-proxy trust.
            .env("KUBECONFIG", &hub_identity)
            .env("KUBE_LIGHTHOUSE_LOG", "info,kube_lighthouse=debug")
            .stdout(std::process::Stdio::from(std::fs::File::create(&log).expect("log")))
            .stderr(std::process::Stdio::from(std::fs::File::create(scratch.join("hub.err")).expect("log")))
            .spawn()
            .expect("start the hub"),
    );
    let _registration = common::views::ApiServiceRegistration(hub_kubeconfig.clone());
    common::views::register_api_service(&hub_kubeconfig, port, &ca, &scratch);

    // Every caller: Contoso's and Fabrikam's users, each in a random subset of the groups.
    // The hub reads only Contoso's reports (the grants it holds), so a Fabrikam caller sees
    // nothing there, and a Contoso caller the union of its own views in the three clusters.
    let delegations_at_hub = |client: Client| async move {
        Api::<kube_lighthouse::api::view::Delegation>::all(client).list(&Default::default()).await.map(|l| l.items)
    };
    let mut checked = 0;
    for tenant in [MSP_TENANT, OTHER_MSP_TENANT] {
        for user in &p.users {
            let groups: Vec<String> = p.groups.iter().filter(|_| rng.below(2) == 0).cloned().collect();
            let projected_groups: Vec<String> = groups.iter().map(|g| format!("{tenant}:{g}")).collect();
            let mut expected = Vec::new();
            if tenant == MSP_TENANT {
                for c in &customers {
                    expected.extend(
                        c.own_view(&projected(tenant, user), &projected_groups)
                            .await
                            .into_iter()
                            .map(|d| at_hub(&c.name, d)),
                    );
                }
            }
            let expected = comparable(expected);
            let file = scratch.join(format!("expected-{tenant}-{user}.json"));
            std::fs::write(&file, serde_json::to_string_pretty(&expected).expect("json")).expect("write");
            eprintln!("expected at the hub for {tenant}:{user}: {}", file.display());
            let token = token(tenant, &kl_token_issuer::TokenRequest::new(user).groups(groups.clone())).expect("token");
            let caller = client_with_token(&token).await;
            let seen = poll(
                "the hub shows the caller the union of its clusters' views",
                || async { delegations_at_hub(caller.clone()).await.map(comparable).ok() },
                |seen| seen.as_ref() == Some(&expected),
            )
            .await;
            checked += seen.map_or(0, |s| s.len());

            // The plugin, signed in with the caller's own token, prints what the hub serves:
            // its delegations and customers, and a warning naming each cluster the hub cannot
            // read for the caller's tenant (Fabrikam's: the hub holds no grant of them).
            let kubeconfig = token_file(&scratch, &format!("caller-{tenant}-{user}"), &hub_kubeconfig, &token);
            let (ok, out, err) = plugin(&kubeconfig, &["delegations", "--fleet", "-o", "json"]);
            assert!(ok, "{err}");
            let printed: kube_lighthouse::api::view::DelegationList =
                serde_json::from_str(&out).expect("a DelegationList");
            assert_eq!(comparable(printed.items), expected, "the plugin's delegations --fleet");
            let (ok, out, err_customers) = plugin(&kubeconfig, &["customers", "--fleet", "-o", "json"]);
            assert!(ok, "{err_customers}");
            let printed: kube_lighthouse::api::view::CustomerList = serde_json::from_str(&out).expect("a CustomerList");
            let served = Api::<kube_lighthouse::api::view::Customer>::all(caller.clone())
                .list(&Default::default())
                .await
                .expect("customers at the hub")
                .items;
            assert_eq!(printed.items, served, "the plugin's customers --fleet");
            for c in &customers {
                let warned = |text: &str| {
                    text.lines().any(|l| {
                        l.starts_with(&format!("Warning: cluster {} (managing tenant {tenant})", c.name))
                            && l.contains("withdrew")
                    })
                };
                assert_eq!(warned(&err), tenant == OTHER_MSP_TENANT, "{tenant}: {err}");
                assert_eq!(warned(&err_customers), tenant == OTHER_MSP_TENANT, "{tenant}: {err_customers}");
            }
        }
    }
    // The table has the CLUSTER column.
    let everyone =
        token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(&p.users[0]).groups(p.groups.clone())).expect("token");
    let everyone_kubeconfig = token_file(&scratch, "everyone", &hub_kubeconfig, &everyone);
    let (ok, table, err) = plugin(&everyone_kubeconfig, &["delegations", "--fleet"]);
    assert!(ok, "{err}");
    let header = table.lines().next().unwrap_or_default().to_string();
    assert!(header.starts_with("NAME") && header.contains("CLUSTER"), "{table}{err}");
    // The hub lists every cluster's endpoint (its server and CA, never a credential).
    let engineer_clusters = Api::<kube_lighthouse::api::view::FleetCluster>::all(client_with_token(&everyone).await)
        .list(&Default::default())
        .await
        .expect("clusters")
        .items;
    for c in &customers {
        let row = engineer_clusters.iter().find(|r| r.cluster == c.name).expect("the cluster's row");
        assert_eq!(
            row.server.as_deref().map(|s| s.trim_end_matches('/')),
            Some(server_of(&c.kubeconfig).trim_end_matches('/'))
        );
        assert!(row.certificate_authority_data.is_some(), "{row:?}");
        assert!(!serde_json::to_string(row).expect("json").contains(&c.grants[0].2), "a credential at the hub's views");
    }
    eprintln!("callers checked; {checked} delegations seen at the hub in all");
    assert!(checked > 0, "the random delegations reached no caller at the hub (seed {seed})");

    // A delegation created in a customer cluster shows at the hub within 5 s of the cluster's
    // own view showing it; revoked, it leaves within 5 s too.
    let engineer = tenant_id();
    let me =
        client_with_token(&token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(&engineer)).expect("token")).await;
    let c = &customers[1];
    let sub = unique("late");
    subscription(&c.client, &sub, &tenant_id()).await;
    definition(&c.client, &sub, "late", MSP_TENANT, vec![authorization(&engineer, "User", READER)]).await;
    assignment(&c.client, &sub, "late", "late").await;
    wait_for_assignment_state(&c.client, &sub, "late", "Succeeded").await;
    let shown_at_cluster = std::time::Instant::now();
    let name = kube_lighthouse::model::fleet::hub_name(&c.name, &sub, "late");
    let until = |present: bool| {
        let (me, name) = (me.clone(), name.clone());
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let items = delegations_at_hub(me.clone()).await.unwrap_or_default();
                if items.iter().any(|d| d.metadata.name.as_deref() == Some(name.as_str())) == present {
                    return true;
                }
                if tokio::time::Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert!(until(true).await, "a new delegation did not reach the hub within 5 s");
    eprintln!("created: at the hub {:.2} s after the cluster", shown_at_cluster.elapsed().as_secs_f64());

    // `kubectl lighthouse use CLUSTER/NAMESPACE` points the engineer's kubeconfig at that
    // cluster and namespace with their own sign-in; kubectl then reaches the delegated
    // namespace there as the engineer, and nothing outside it.
    let request = kl_token_issuer::TokenRequest::new(&engineer);
    let at_customer = kl_token_issuer::Issuer::load(&c.kubeconfig.parent().expect("state dir").join("issuers/contoso"))
        .expect("the customer plane's issuer of Contoso")
        .mint(&request)
        .expect("token");
    let engineer_file = engineer_kubeconfig(
        &scratch,
        &hub_kubeconfig,
        &[
            (server_of(&hub_kubeconfig), token(MSP_TENANT, &request).expect("token")),
            (server_of(&c.kubeconfig), at_customer),
        ],
    );
    let target = format!("{}/{sub}", c.name);
    let (ok, said, err) = plugin(&engineer_file, &["use", &target]);
    assert!(ok, "use {target}: {said}{err}");
    let context = format!("lighthouse/{target}");
    assert!(said.contains(&format!("Switched to context {context:?}")), "{said}");
    let written = kube::config::Kubeconfig::read_from(&engineer_file).expect("a kubeconfig");
    assert_eq!(written.current_context.as_deref(), Some(context.as_str()));
    let (ok, whoami, err) =
        kubectl_as(&engineer_file, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert!(ok, "{err}");
    assert_eq!(whoami, projected(MSP_TENANT, &engineer), "the engineer's own identity at the customer cluster");
    let (ok, _, err) = kubectl_as(&engineer_file, &["get", "configmaps"]);
    assert!(ok, "a read in the delegated namespace {sub}: {err}");
    let (ok, _, err) = kubectl_as(&engineer_file, &["get", "configmaps", "-n", "kube-system"]);
    assert!(!ok && err.contains("forbidden"), "outside the delegation: {err}");
    // What is not the engineer's is refused, naming why, and nothing is written.
    let before = std::fs::read_to_string(&engineer_file).expect("read");
    for (target, says) in [
        (format!("{}/kube-system", c.name), "is not delegated to you, per the hub's delegations"),
        ("no-such-cluster/x".to_string(), "the hub lists no cluster \"no-such-cluster\" to you"),
        ("no-slash".to_string(), "expected CLUSTER/NAMESPACE"),
    ] {
        let (ok, _, err) = plugin(&engineer_file, &["use", &target, "--context", "msp-hub"]);
        assert!(!ok && err.contains(says), "use {target}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&engineer_file).expect("read"), before, "a refused use writes nothing");
    let assignments: Api<kube_lighthouse::api::RegistrationAssignment> = Api::namespaced(c.client.clone(), &sub);
    assignments.delete("late", &DeleteParams::default()).await.expect("delete");
    eventually("the cluster revokes the assignment", || async {
        assignments.get_opt("late").await.ok().flatten().is_none()
    })
    .await;
    let revoked = std::time::Instant::now();
    assert!(until(false).await, "a revoked delegation stayed at the hub beyond 5 s");
    eprintln!("revoked: gone from the hub {:.2} s after the cluster", revoked.elapsed().as_secs_f64());
    // The context `use` wrote reaches nothing more: the customer cluster's RBAC revoked it.
    let (ok, _, err) = kubectl_as(&engineer_file, &["get", "configmaps"]);
    assert!(!ok && err.contains("forbidden"), "after revocation: {err}");
    let (ok, _, err) = plugin(&engineer_file, &["use", &target, "--context", "msp-hub"]);
    assert!(!ok && err.contains("not delegated to you"), "use after revocation: {err}");

    // Contoso's credential in a customer cluster reads Contoso's report, never Fabrikam's.
    let contoso_token = client_with_token_for(&customers[0].kubeconfig, &customers[0].grants[0].2).await;
    assert_eq!(code(Api::<Report>::all(contoso_token.clone()).get(OTHER_MSP_TENANT).await), 403);
    assert_eq!(code(Api::<Report>::all(contoso_token).get(MSP_TENANT).await), 200);

    // The third customer withdraws Contoso's grant: its data leaves the hub, the others stay.
    let withdrawn = &customers[2];
    let withdrawn_name = withdrawn.name.clone();
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(withdrawn.client.clone());
    bindings.delete(&withdrawn.grants[0].1, &DeleteParams::default()).await.expect("withdraw");
    let admin_view = poll(
        "the withdrawn cluster's data leaves the hub",
        || async {
            let mut all = Vec::new();
            for user in &p.users {
                let t = token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(user).groups(p.groups.clone()))
                    .expect("token");
                all.extend(delegations_at_hub(client_with_token(&t).await).await.unwrap_or_default());
            }
            all
        },
        |all| all.iter().all(|d| d.cluster.as_deref() != Some(withdrawn.name.as_str())),
    )
    .await;
    assert!(admin_view.iter().any(|d| d.cluster.as_deref() == Some(customers[0].name.as_str())), "{admin_view:#?}");

    // The hub lists each cluster's state to the tenant's engineers: the withdrawn one as such.
    let engineer =
        client_with_token(&token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(&p.users[0])).expect("token")).await;
    let clusters = |c: Client| async move {
        Api::<kube_lighthouse::api::view::FleetCluster>::all(c).list(&Default::default()).await.expect("clusters").items
    };
    let state_of = |items: &[kube_lighthouse::api::view::FleetCluster], cluster: &str| {
        items.iter().find(|c| c.cluster == cluster && c.managed_by_tenant_id == MSP_TENANT).map(|c| c.state.clone())
    };
    let seen = clusters(engineer.clone()).await;
    assert_eq!(state_of(&seen, &withdrawn.name).as_deref(), Some("Withdrawn"), "{seen:#?}");
    assert_eq!(state_of(&seen, &customers[0].name).as_deref(), Some("Current"), "{seen:#?}");
    assert!(seen.iter().all(|c| c.managed_by_tenant_id == MSP_TENANT), "another tenant's clusters: {seen:#?}");

    // A cluster whose report cannot be read (its kube-lighthouse is gone): nothing of it is
    // shown, and the hub lists it as Unreadable with the time it was last read.
    let down = &mut customers[1];
    let down_name = down.name.clone();
    drop(down.views.take());
    let seen = poll(
        "the hub lists the cluster without its kube-lighthouse as Unreadable",
        || async { clusters(engineer.clone()).await },
        |items| state_of(items, &down_name).as_deref() == Some("Unreadable"),
    )
    .await;
    let row = seen.iter().find(|c| c.cluster == down_name && c.managed_by_tenant_id == MSP_TENANT).expect("row");
    assert!(row.observed_time.is_some() && row.message.is_some(), "{row:#?}");
    let everyone =
        token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(&p.users[0]).groups(p.groups.clone())).expect("token");
    let left = delegations_at_hub(client_with_token(&everyone).await).await.expect("delegations");
    assert!(left.iter().all(|d| d.cluster.as_deref() != Some(down_name.as_str())), "{left:#?}");
    // The plugin says so under the list: the unreadable cluster with its last observed time,
    // the withdrawn one, never a guess of their delegations.
    let (ok, out, err) = plugin(&everyone_kubeconfig, &["delegations", "--fleet"]);
    assert!(ok, "{err}");
    let last = row.observed_time.clone().expect("last observed");
    assert!(
        err.lines().any(|l| l.starts_with(&format!("Warning: cluster {down_name} (managing tenant {MSP_TENANT}): its report cannot be read now, last observed {last}"))),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with(&format!(
            "Warning: cluster {withdrawn_name} (managing tenant {MSP_TENANT}): the customer withdrew"
        ))),
        "{err}"
    );
    assert!(!out.contains(&down_name) && !out.contains(&withdrawn_name), "{out}");
    let (ok, _, err) = plugin(&everyone_kubeconfig, &["use", &format!("{down_name}/anything")]);
    assert!(!ok && err.contains("cannot read cluster") && err.contains("Unreadable"), "{err}");
    let _ = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &hub_kubeconfig)
        .args(["delete", "--ignore-not-found", "-f"])
        .arg(&hub_rbac)
        .output();
}

/// A client for `kubeconfig`'s cluster that signs in with `token`.
async fn client_with_token_for(kubeconfig: &std::path::Path, token: &str) -> Client {
    let yaml = with_token(kubeconfig, token);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    Client::try_from(config).expect("client")
}

/// `kubectl-lighthouse ARGS --kubeconfig KUBECONFIG`: exit status, stdout, stderr.
fn plugin(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(common::plugin_binary())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl-lighthouse");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// kubectl with an engineer's kubeconfig (not the admin's): exit status, stdout, stderr.
fn kubectl_as(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out =
        std::process::Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig).args(args).output().expect("kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A kubeconfig file for `admin`'s cluster signing in with `token`.
fn token_file(dir: &std::path::Path, name: &str, admin: &std::path::Path, token: &str) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&file, with_token(admin, token)).expect("kubeconfig");
    file
}

/// The `server` of `kubeconfig`'s first cluster.
fn server_of(kubeconfig: &std::path::Path) -> String {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig).expect("kubeconfig")).expect("yaml");
    yaml["clusters"][0]["cluster"]["server"].as_str().expect("server").to_string()
}

/// An engineer's kubeconfig at the hub, as an MSP engineer has one: the hub's cluster, and a
/// user entry that is an exec credential plugin (kubelogin, in real life) handing out the
/// engineer's own token of their tenant for whichever cluster kubectl calls it for
/// (`provideClusterInfo`). Entra ID is one issuer for every cluster; here each control plane
/// trusts its own local issuer of the tenant, so the plugin picks the token minted by the
/// issuer of the cluster asked for, by server URL.
fn engineer_kubeconfig(
    dir: &std::path::Path,
    hub: &std::path::Path,
    tokens: &[(String, String)],
) -> std::path::PathBuf {
    let by_server: serde_json::Map<String, serde_json::Value> =
        tokens.iter().map(|(server, token)| (server.trim_end_matches('/').to_string(), json!(token))).collect();
    let table = dir.join("engineer-tokens.json");
    std::fs::write(&table, serde_json::Value::Object(by_server).to_string()).expect("tokens");
    let script = dir.join("engineer-login");
    std::fs::write(
        &script,
        format!(
            "#!/usr/bin/env python3\nimport json, os\ninfo = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n\
             server = info['spec']['cluster']['server'].rstrip('/')\ntoken = json.load(open({table:?}))[server]\n\
             print(json.dumps({{'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential', 'status': {{'token': token}}}}))\n",
            table = table.display().to_string()
        ),
    )
    .expect("script");
    std::process::Command::new("chmod").arg("+x").arg(&script).status().expect("chmod");
    let admin: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(hub).expect("kubeconfig")).expect("yaml");
    let config = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "msp-hub",
        "clusters": [{"name": "msp-hub", "cluster": serde_json::to_value(&admin["clusters"][0]["cluster"]).expect("json")}],
        "users": [{"name": "msp-engineer", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": script, "provideClusterInfo": true,
            "interactiveMode": "Never"}}}],
        "contexts": [{"name": "msp-hub", "context": {"cluster": "msp-hub", "user": "msp-engineer"}}],
    });
    let file = dir.join("engineer.kubeconfig");
    std::fs::write(&file, serde_yaml::to_string(&config).expect("yaml")).expect("kubeconfig");
    file
}
