//! The views API for tests: the real binary serving it over TLS on 127.0.0.1, registered with
//! the aggregation layer as the chart registers it, except that the Service is an
//! `ExternalName` for `localhost` (the local control plane has no Service network). The
//! serving certificate is valid for `<service>.<namespace>.svc`, the name the aggregator
//! checks, and for 127.0.0.1, where tests call the port directly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::cluster::{free_port, run};
use super::webhook::{base64, certificates_for, Controller};

/// The APIService's name: one per cluster, so one views server per cluster at a time.
pub const API_SERVICE: &str = "v1alpha1.view.kubelighthouse.io";
/// Namespace of the test's ExternalName Service.
pub const SERVICE_NAMESPACE: &str = "kube-lighthouse-views-test";
/// Name of the test's ExternalName Service.
pub const SERVICE: &str = "kube-lighthouse-views";
/// The test's ClusterRole and ClusterRoleBinding letting `system:authenticated` read the views.
pub const READER: &str = "kube-lighthouse-views-test-reader";

/// The controller binary serving the views (and admission, unregistered) on `port`, and the
/// APIService pointing at it. On drop the APIService goes first: an APIService whose server
/// is gone fails discovery, and the namespace controller then finalizes no namespace.
pub struct ViewsServer {
    kubeconfig: PathBuf,
    _controller: Controller,
    /// The TLS port on 127.0.0.1.
    pub port: u16,
    /// Scratch directory: certificates, the controller's log, kubeconfigs.
    pub dir: PathBuf,
    /// The CA of the serving certificate.
    pub ca: PathBuf,
}

fn kubectl(kubeconfig: &Path) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig);
    cmd
}

fn delete_api_service(kubeconfig: &Path) {
    let _ = kubectl(kubeconfig).args(["delete", "apiservice", API_SERVICE, "--ignore-not-found", "--wait"]).status();
}

impl ViewsServer {
    /// Starts the controller with its TLS server and registers the APIService; returns once
    /// the aggregator reports it Available.
    pub fn start(kubeconfig: &Path) -> ViewsServer {
        // A registration left by an interrupted run points at a server that is gone.
        delete_api_service(kubeconfig);
        let dir = std::env::temp_dir().join(super::unique("views"));
        std::fs::create_dir_all(&dir).expect("dir");
        let host = format!("{SERVICE}.{SERVICE_NAMESPACE}.svc");
        let (ca, cert, key) = certificates_for(&dir, &format!("DNS:{host},DNS:localhost,IP:127.0.0.1"));
        let port = free_port();
        let log = std::fs::File::create(dir.join("controller.log")).expect("log");
        eprintln!("controller log: {}", dir.join("controller.log").display());
        let controller = Controller(
            Command::new(env!("CARGO_BIN_EXE_kube-lighthouse"))
                .args(["--webhook-port", &port.to_string(), "--metrics-port", "0", "--health-port", "0"])
                .arg("--webhook-cert")
                .arg(&cert)
                .arg("--webhook-key")
                .arg(&key)
                .env("KUBECONFIG", kubeconfig)
                .env("KUBE_LIGHTHOUSE_LOG", "info,kube_lighthouse=debug")
                .env("KUBE_LIGHTHOUSE_LEADER_ELECTION", "false")
                .stdout(Stdio::from(log.try_clone().expect("dup")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start kube-lighthouse"),
        );
        let server = ViewsServer { kubeconfig: kubeconfig.to_path_buf(), _controller: controller, port, dir, ca };
        register_api_service(kubeconfig, port, &server.ca, &server.dir);
        server
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

/// Registers the views' APIService (with its ExternalName Service and a ClusterRole letting
/// every authenticated user read the views) pointing at the views served on 127.0.0.1:`port`
/// with the serving CA `ca` (a certificate for the Service's DNS name), and waits until it is
/// Available. `dir`: where the manifest is written.
pub fn register_api_service(kubeconfig: &Path, port: u16, ca: &Path, dir: &Path) {
    let objects = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SERVICE_NAMESPACE}},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": SERVICE, "namespace": SERVICE_NAMESPACE},
             "spec": {"type": "ExternalName", "externalName": "localhost"}},
            // As the chart: everyone signed in may get and list the views.
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": READER},
             "rules": [{"apiGroups": ["view.kubelighthouse.io"], "resources": ["customers", "delegations", "clusters"],
                        "verbs": ["get", "list"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": READER},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": READER},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]},
            {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
             "metadata": {"name": API_SERVICE},
             "spec": {
                 "group": "view.kubelighthouse.io", "version": "v1alpha1",
                 "groupPriorityMinimum": 1000, "versionPriority": 15,
                 "service": {"name": SERVICE, "namespace": SERVICE_NAMESPACE, "port": port},
                 "caBundle": base64(&std::fs::read(ca).expect("ca")),
             }},
        ],
    });
    let file = dir.join("apiservice.json");
    std::fs::write(&file, objects.to_string()).expect("write");
    run(kubectl(kubeconfig).args(["apply", "-f"]).arg(&file));
    let available = kubectl(kubeconfig)
        .args(["wait", "--for=condition=Available", "--timeout=90s", "apiservice", API_SERVICE])
        .output()
        .expect("kubectl wait");
    if !available.status.success() {
        let status = kubectl(kubeconfig).args(["get", "apiservice", API_SERVICE, "-o", "yaml"]).output();
        panic!(
            "the views' APIService never became Available: {}\n{}",
            String::from_utf8_lossy(&available.stderr),
            status.map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default()
        );
    }
}

/// An APIService registered by [`register_api_service`] for a server the caller owns;
/// deleted on drop.
pub struct ApiServiceRegistration(pub PathBuf);

impl Drop for ApiServiceRegistration {
    fn drop(&mut self) {
        delete_api_service(&self.0);
    }
}

impl Drop for ViewsServer {
    fn drop(&mut self) {
        delete_api_service(&self.kubeconfig);
    }
}

/// A kubeconfig in `dir` for the test cluster whose only user signs in with `token`: what a
/// managing-tenant engineer has on their laptop.
pub fn token_kubeconfig(admin: &Path, token: &str, dir: &Path, name: &str) -> PathBuf {
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(admin).expect("kubeconfig")).expect("yaml");
    for user in yaml["users"].as_sequence_mut().expect("users") {
        user["user"] = serde_yaml::to_value(json!({"token": token})).expect("token");
    }
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&yaml).expect("yaml")).expect("write kubeconfig");
    path
}

/// What a request sent straight to the views port got: (HTTP status, body).
pub fn curl(url: &str, ca: &Path, client: Option<(&Path, &Path)>, headers: &[(&str, &str)]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", "--cacert"]).arg(ca);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A client certificate for `cn` (extended key usage clientAuth) signed by the CA at
/// `ca_cert`/`ca_key`, as PEM files in `dir`: (certificate, key).
pub fn client_certificate(dir: &Path, name: &str, cn: &str, ca_cert: &Path, ca_key: &Path) -> (PathBuf, PathBuf) {
    let (cert, key, csr, ext) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
        dir.join(format!("{name}.ext")),
    );
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    std::fs::write(&ext, "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").expect("ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(ca_cert)
        .arg("-CAkey")
        .arg(ca_key)
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert));
    (cert, key)
}
