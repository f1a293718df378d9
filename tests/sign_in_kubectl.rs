//! An engineer signs in with `kubectl` and the exec plugin, by the docs alone
//! (docs/install.md, "Sign-in through kube-lighthouse", step 3): on a control plane whose API
//! server trusts exactly one issuer, kube-lighthouse's broker
//! (`hack/control-plane.sh up --federation`), the engineer runs `kubectl lighthouse login`
//! with a token command of their own tenant, then plain `kubectl`. Everything the engineer
//! runs is a real binary: `kubectl-lighthouse login` writes the kubeconfig, `kubectl` runs
//! `kubectl-lighthouse credential` as its exec plugin, which exchanges the token at the real
//! broker (the controller binary), and the API server decides with RBAC.
//!
//! The customer's side follows the docs too: the chart is installed with `federation.*` values
//! (`helm upgrade --install`), and the broker is the controller binary run as the chart's pod
//! would run it: with the environment of the chart's rendered Deployment and a token of the
//! chart's ServiceAccount, so the chart's settings and its RBAC (the keys' Secret in the
//! release namespace only) are what is proven. The local control plane has no nodes, so the
//! binary runs out of cluster on the port and certificate the API server's configuration names.
//!
//! The token command stands in for `kubelogin get-token`: `kl-token-issuer token` prints a
//! token of the local Entra-shaped issuer of the engineer's tenant, which the API server does
//! not trust by itself.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use kube::api::Api;
use kube_lighthouse::api::RegistrationAssignment;

/// The contoso engineer the customer delegates Reader to.
const ENGINEER: &str = "00000000-0000-4000-8000-00000000c0de";
/// An engineer of northwind, a tenant no delegation names.
const STRANGER: &str = "00000000-0000-4000-8000-00000000c0df";

/// What `hack/control-plane.sh up --federation` fixed for the broker
/// (`$KL_STATE_DIR/federation/broker.json`).
#[derive(serde::Deserialize)]
struct Setup {
    issuer: String,
    port: u16,
    authority: String,
    subject_audience: String,
    authority_ca: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    issuers: PathBuf,
}

fn setup() -> Setup {
    let path = kubeconfig().parent().expect("state dir").join("federation/broker.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: this test needs the control plane's one-issuer mode (hack/control-plane.sh up --federation)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("broker.json")
}

/// The directory of the workspace's binaries (`kubectl-lighthouse`, and `kl-token-issuer`,
/// which the control plane builds into the same target directory).
fn bin_dir() -> PathBuf {
    common::plugin_binary().parent().expect("bin dir").to_path_buf()
}

const RELEASE: &str = "kube-lighthouse";
const RELEASE_NAMESPACE: &str = "kube-lighthouse";

/// helm, installed by hack/install-helm.sh (cached).
fn helm() -> PathBuf {
    let out = Command::new(repo().join("hack/install-helm.sh")).stderr(std::process::Stdio::inherit()).output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        other => panic!("hack/install-helm.sh failed: {other:?}"),
    }
}

/// The customer installs the chart with the broker on, as docs/install.md says ("Turn the
/// broker on"): the issuer, the engineers' audience, and here the local authority and its CA
/// (a private authority: `federation.authority`, `federation.authorityCA`). No Ingress: the
/// API server reaches the broker directly. The webhook is off and the views' APIService is not
/// registered: no pod would serve them on this node-less control plane.
fn install_chart(setup: &Setup) {
    let admin = kubeconfig();
    let ca = std::fs::read_to_string(&setup.authority_ca).expect("authority CA");
    let objects = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NAMESPACE}},
        {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "federation-authority-ca", "namespace": RELEASE_NAMESPACE}, "data": {"ca.crt": ca}},
    ]});
    let file = std::env::temp_dir().join(unique("authority-ca")).with_extension("json");
    std::fs::write(&file, objects.to_string()).expect("write");
    kubectl(&admin, &["apply", "--server-side", "-f", file.to_str().expect("path")]);
    let _ = std::fs::remove_file(file);
    run(Command::new(helm()).env("KUBECONFIG", &admin).args([
        "upgrade",
        "--install",
        RELEASE,
        &repo().join("charts/kube-lighthouse").to_string_lossy(),
        "--namespace",
        RELEASE_NAMESPACE,
        "--take-ownership",
        "--set",
        "webhook.enabled=false",
        "--set",
        "views.apiService.create=false",
        "--set",
        "federation.enabled=true",
        "--set-json",
        &format!("federation.issuer={}", serde_json::json!(setup.issuer)),
        "--set-json",
        &format!("federation.subjectAudiences={}", serde_json::json!([setup.subject_audience])),
        "--set-json",
        &format!("federation.authority={}", serde_json::json!(setup.authority)),
        "--set",
        "federation.authorityCA.configMap=federation-authority-ca",
    ]));
}

/// The chart's rendered Deployment: the controller container's environment (plain values).
fn chart_environment() -> Vec<(String, String)> {
    let out = kubectl(&kubeconfig(), &["get", "deployment", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "json"]);
    let deployment: serde_json::Value = serde_json::from_str(&out).expect("Deployment JSON");
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect()
}

/// A kubeconfig with a token of the chart's ServiceAccount (what the kubelet mounts into its
/// pod), for the admin kubeconfig's cluster.
fn service_account_kubeconfig(dir: &Path) -> PathBuf {
    let token = kubectl(&kubeconfig(), &["create", "token", RELEASE, "-n", RELEASE_NAMESPACE, "--duration", "1h"]);
    let (server, ca) = api_server(dir);
    let value = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": "sa", "user": {"token": token.trim()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": RELEASE_NAMESPACE}}],
        "current-context": "sa",
    });
    let path = dir.join("service-account.kubeconfig");
    std::fs::write(&path, value.to_string()).expect("write kubeconfig");
    path
}

/// The broker: the controller binary with the chart's environment and ServiceAccount, on the
/// port and with the certificate the API server's configuration names (where the pod would
/// have its Service and mounted Secret).
fn start_broker(setup: &Setup, dir: &Path, log: &Path) -> (ControllerProcess, u16) {
    let health = free_port();
    let local: Vec<(&str, String)> = vec![
        ("KUBE_LIGHTHOUSE_WEBHOOK_PORT", setup.port.to_string()),
        ("KUBE_LIGHTHOUSE_WEBHOOK_CERT", setup.cert.display().to_string()),
        ("KUBE_LIGHTHOUSE_WEBHOOK_KEY", setup.key.display().to_string()),
        ("KUBE_LIGHTHOUSE_HEALTH_PORT", health.to_string()),
        ("KUBE_LIGHTHOUSE_METRICS_PORT", "0".into()),
        ("KUBE_LIGHTHOUSE_FEDERATION_AUTHORITY_CA", setup.authority_ca.display().to_string()),
        ("POD_NAMESPACE", RELEASE_NAMESPACE.into()),
        ("POD_NAME", "kube-lighthouse-broker-0".into()),
    ];
    let chart = chart_environment();
    let from_chart = |name: &str| chart.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(from_chart("KUBE_LIGHTHOUSE_FEDERATION_ISSUER").as_deref(), Some(setup.issuer.as_str()));
    assert!(from_chart("KUBE_LIGHTHOUSE_FEDERATION_AUTHORITY_CA").is_some(), "the chart mounts the authority's CA");
    let mut env: Vec<(String, String)> =
        chart.into_iter().filter(|(n, _)| !local.iter().any(|(l, _)| l == n)).collect();
    env.extend(local.into_iter().map(|(n, v)| (n.to_string(), v)));
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    (ControllerProcess::start(&service_account_kubeconfig(dir), log, &env), health)
}

/// Waits until the broker's `/readyz` answers 200 (its caches synced, its keys loaded).
fn wait_ready(broker: &mut ControllerProcess, health: u16, log: &Path) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(!broker.exited(), "the broker exited; see {}", log.display());
        let ready = Command::new("curl")
            .args(["-fsS", "--max-time", "5", &format!("http://127.0.0.1:{health}/readyz")])
            .output()
            .is_ok_and(|o| o.status.success());
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "the broker is not ready; see {}", log.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The API server's URL and CA file, from the admin kubeconfig: what a customer hands the
/// engineer.
fn api_server(dir: &Path) -> (String, PathBuf) {
    let config = kube::config::Kubeconfig::read_from(kubeconfig()).expect("admin kubeconfig");
    let cluster = config.clusters.first().and_then(|c| c.cluster.clone()).expect("a cluster");
    let ca = dir.join("cluster-ca.crt");
    match (&cluster.certificate_authority, &cluster.certificate_authority_data) {
        (Some(path), _) => {
            std::fs::copy(path, &ca).expect("copy CA");
        }
        (None, Some(data)) => {
            use base64::Engine as _;
            let pem = base64::engine::general_purpose::STANDARD.decode(data).expect("CA data");
            std::fs::write(&ca, pem).expect("write CA");
        }
        (None, None) => panic!("the admin kubeconfig names no CA"),
    }
    (cluster.server.expect("server"), ca)
}

/// The engineer's shell: their kubeconfig, their cache directory, and the plugin on the PATH.
struct Engineer {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Engineer {
    fn command(&self, program: &str) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin_dir()];
        paths.extend(std::env::split_paths(&path));
        let mut cmd = Command::new(program);
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("XDG_CACHE_HOME", &self.cache)
            .env("PATH", std::env::join_paths(paths).expect("PATH"))
            .env_remove("KUBERNETES_EXEC_INFO");
        cmd
    }

    /// `kubectl-lighthouse login …`, as docs/install.md shows it; fails the test unless it
    /// succeeds.
    fn login(&self, args: &[&str]) -> String {
        let out = self.command("kubectl-lighthouse").arg("login").args(args).output().expect("kubectl-lighthouse");
        assert!(out.status.success(), "login {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `kubectl --context CONTEXT args…`.
    fn kubectl(&self, context: &str, args: &[&str]) -> Output {
        self.command("kubectl").args(["--context", context]).args(args).output().expect("kubectl")
    }

    /// The plugin's cache files.
    fn cached(&self) -> Vec<PathBuf> {
        let dir = self.cache.join("kube-lighthouse/credentials");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
            .unwrap_or_default();
        files.sort();
        files
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn payload(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn an_engineer_signs_in_with_kubectl_and_the_exec_plugin_by_the_docs_alone() {
    let setup = setup();
    let admin = client_for(&kubeconfig()).await;
    let dir = std::env::temp_dir().join(unique("kl-sign-in-kubectl"));
    std::fs::create_dir_all(&dir).expect("dir");
    install_chart(&setup);
    let log = dir.join("broker.log");
    let (mut broker, health) = start_broker(&setup, &dir, &log);
    wait_ready(&mut broker, health, &log);
    // Ready means keys loaded: the chart's ServiceAccount created its keys' Secret, in the
    // release namespace, and may read no other Secret.
    let keys = kubectl(
        &kubeconfig(),
        &["get", "secret", "kube-lighthouse-federation-keys", "-n", RELEASE_NAMESPACE, "-o", "name"],
    );
    assert_eq!(keys.trim(), "secret/kube-lighthouse-federation-keys");
    let sa = format!("system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}");
    for (verb, what, namespace) in [
        ("get", "secrets/kube-lighthouse-federation-keys", RELEASE_NAMESPACE),
        ("get", "secrets/another", RELEASE_NAMESPACE),
        ("list", "secrets", RELEASE_NAMESPACE),
        ("get", "secrets/kube-lighthouse-federation-keys", "default"),
    ] {
        let allowed = Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig())
            .args(["auth", "can-i", verb, what, "-n", namespace, "--as", &sa])
            .output()
            .expect("kubectl auth can-i");
        let expected = what.ends_with("federation-keys") && namespace == RELEASE_NAMESPACE;
        assert_eq!(allowed.status.success(), expected, "{sa} {verb} {what} -n {namespace}");
    }

    // The customer delegates Reader in one namespace to a contoso engineer.
    let (ns, other) = (unique("sign-in-kubectl"), unique("sign-in-kubectl-other"));
    subscription(&admin, &ns, &tenant_id()).await;
    plain_namespace(&admin, &other).await;
    definition(&admin, &ns, "contoso", MSP_TENANT, vec![authorization(ENGINEER, "User", READER)]).await;
    assignment(&admin, &ns, "contoso", "contoso").await;
    wait_for_assignment_state(&admin, &ns, "contoso", "Succeeded").await;

    // The engineer: `login` once, with the command that prints their own tenant's token.
    let (server, cluster_ca) = api_server(&dir);
    let engineer = Engineer { kubeconfig: dir.join("engineer/.kube/config"), cache: dir.join("engineer/.cache") };
    let token_command = |issuer: &str, oid: &str| {
        format!(
            "{} token --dir {} --oid {oid} --amr pwd --amr mfa",
            bin_dir().join("kl-token-issuer").display(),
            setup.issuers.join(issuer).display()
        )
    };
    let said = engineer.login(&[
        "--context",
        "customer-a",
        "-n",
        &ns,
        "--broker",
        &setup.issuer,
        "--certificate-authority",
        setup.ca.to_str().expect("path"),
        "--server",
        &server,
        "--server-certificate-authority",
        cluster_ca.to_str().expect("path"),
        "--token-command",
        &token_command("contoso", ENGINEER),
    ]);
    assert!(said.contains("context \"customer-a\" added"), "{said}");

    // kubectl signs in through the broker: the projected identity, with its sign-in methods.
    // (The API server reads the broker's discovery once the broker is up: until then it
    // answers 401 to every token of the broker, whoever presents it.)
    eventually("the API server accepts the broker's tokens", || async {
        engineer.kubectl("customer-a", &["auth", "whoami"]).status.success()
    })
    .await;
    let whoami = engineer.kubectl("customer-a", &["auth", "whoami", "-o", "json"]);
    assert!(whoami.status.success(), "kubectl auth whoami: {}", text(&whoami));
    let review: serde_json::Value = serde_json::from_slice(&whoami.stdout).expect("SelfSubjectReview");
    let user = &review["status"]["userInfo"];
    assert_eq!(user["username"], format!("{MSP_TENANT}:{ENGINEER}"));
    assert_eq!(user["extra"]["kubelighthouse.io/amr"], serde_json::json!(["pwd", "mfa"]));

    // Exactly the delegation's access: Reader in its namespace, nothing elsewhere.
    let pods = engineer.kubectl("customer-a", &["get", "pods"]);
    assert!(pods.status.success(), "kubectl get pods -n {ns}: {}", text(&pods));
    let write = engineer.kubectl("customer-a", &["create", "configmap", "not-a-reader-s"]);
    assert!(!write.status.success() && text(&write).contains("forbidden"), "{}", text(&write));
    let elsewhere = engineer.kubectl("customer-a", &["get", "pods", "-n", &other]);
    assert!(!elsewhere.status.success() && text(&elsewhere).contains("forbidden"), "{}", text(&elsewhere));

    // One exchange, cached for the user alone, reused by the next kubectl.
    let cached = engineer.cached();
    assert_eq!(cached.len(), 1, "one cache file per broker and identity: {cached:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cached[0]).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let before = std::fs::read_to_string(&cached[0]).expect("cache");
    let entry: serde_json::Value = serde_json::from_str(&before).expect("cache entry");
    let claims = payload(entry["token"].as_str().expect("token"));
    assert_eq!(claims["iss"], setup.issuer.as_str(), "a token of the broker's issuer");
    assert_eq!(claims["sub"], format!("{MSP_TENANT}:{ENGINEER}"));
    let again = engineer.kubectl("customer-a", &["get", "pods"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(&cached[0]).expect("cache"), before, "served from the cache");

    // A tenant no delegation names is refused, and the engineer is told what to check.
    engineer.login(&[
        "--context",
        "northwind",
        "--cluster",
        "customer-a",
        "-n",
        &ns,
        "--broker",
        &setup.issuer,
        "--certificate-authority",
        setup.ca.to_str().expect("path"),
        "--token-command",
        &token_command("northwind", STRANGER),
    ]);
    let refused = engineer.kubectl("northwind", &["get", "pods"]);
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(said.contains("the broker refused your token") && said.contains("delegation"), "{said}");

    // A broker that cannot be reached is named, with what to check.
    let nowhere = format!("https://127.0.0.1:{}/federation", free_port());
    engineer.login(&[
        "--context",
        "nowhere",
        "--cluster",
        "customer-a",
        "--broker",
        &nowhere,
        "--token-command",
        &token_command("contoso", ENGINEER),
    ]);
    let unreachable = engineer.kubectl("nowhere", &["get", "pods", "-n", &ns]);
    assert!(!unreachable.status.success());
    assert!(text(&unreachable).contains("cannot reach the broker"), "{}", text(&unreachable));

    // Revoking the delegation turns the already exchanged (cached) token's 200 into 403.
    let assignments: Api<RegistrationAssignment> = Api::namespaced(admin.clone(), &ns);
    delete(&assignments, "contoso").await;
    eventually("the revoked engineer is forbidden", || async {
        let out = engineer.kubectl("customer-a", &["get", "pods"]);
        !out.status.success() && text(&out).contains("forbidden")
    })
    .await;
    assert_eq!(std::fs::read_to_string(&cached[0]).expect("cache"), before, "the same token, now refused");

    broker.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
