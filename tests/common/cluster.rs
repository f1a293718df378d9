//! The test cluster: its kubeconfig (bringing the local control plane up when none is named),
//! its admin client with the controller running in this process, the controller binary as a
//! subprocess, and the external commands (kubectl, helm, openssl) run against it.
//!
//! Every function here fails the test, saying why, when no cluster can be reached: a test
//! that needs a cluster never passes without one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kubeconfig of the test cluster, bringing up the local control plane if needed, with
/// the CRDs, the role catalog and the chart's ValidatingAdmissionPolicies installed. Fails the test when there is no cluster.
pub fn kubeconfig() -> PathBuf {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PATH.get_or_init(prepare_cluster) {
        Ok(path) => path.clone(),
        Err(why) => panic!(
            "this test needs a cluster and there is none: {why}. Run it with hack/test.sh, or name one \
             with KL_TEST_KUBECONFIG"
        ),
    }
}

fn prepare_cluster() -> Result<PathBuf, String> {
    let path = match std::env::var_os("KL_TEST_KUBECONFIG") {
        Some(p) => PathBuf::from(p),
        None => {
            let up = Command::new(repo().join("hack/control-plane.sh")).arg("up").status();
            if !matches!(up, Ok(s) if s.success()) {
                return Err("hack/control-plane.sh up failed".into());
            }
            let dir = std::env::var_os("KL_STATE_DIR").map_or(PathBuf::from("/tmp/kube-lighthouse-cp"), PathBuf::from);
            dir.join("kubeconfig")
        }
    };
    // The CRDs first: the guardrails' ValidatingAdmissionPolicy names the Guardrail kind.
    for manifest in [
        "crds",
        "charts/kube-lighthouse/files/catalog.yaml",
        "charts/kube-lighthouse/files/guardrail-policy.yaml",
        "charts/kube-lighthouse/files/tenancy-labels-policy.yaml",
    ] {
        let ok = Command::new("kubectl")
            .env("KUBECONFIG", &path)
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(repo().join(manifest))
            .status();
        if !matches!(ok, Ok(s) if s.success()) {
            return Err(format!("kubectl apply -f {manifest} failed"));
        }
    }
    let established = Command::new("kubectl")
        .env("KUBECONFIG", &path)
        .args(["wait", "--for=condition=Established", "--timeout=60s", "-f"])
        .arg(repo().join("crds"))
        .status();
    if !matches!(established, Ok(s) if s.success()) {
        return Err("CRDs never became established".into());
    }
    Ok(path)
}

/// An admin client of the kubeconfig at `path`.
pub async fn client_for(path: &PathBuf) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig readable");
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig valid");
    Client::try_from(config).expect("client")
}

/// The test cluster's admin client, with the controller running against it (once per test
/// binary, on its own runtime so it outlives each test's runtime). Fails the test when there
/// is no cluster.
pub async fn cluster() -> Client {
    let path = kubeconfig();
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
                    // One controller per test binary, and binaries follow each other: no
                    // Lease to wait for (tests/ha.rs tests the election).
                    "--leader-election",
                    "false",
                ]);
                if let Err(e) = kube_lighthouse::run(client, &config).await {
                    panic!("controller stopped: {e}");
                }
            });
        });
    });
    client_for(&path).await
}

/// The local control plane's state directory (audit log, logs), when the tests use it.
pub fn local_state_dir() -> Option<PathBuf> {
    let dir = kubeconfig().parent()?.to_path_buf();
    dir.join("logs/audit.log").exists().then_some(dir)
}

/// The controller binary as a subprocess, started with no arguments apart from `env` (ports
/// off, debug logs to `log`); killed on drop.
pub struct ControllerProcess(Child);

impl ControllerProcess {
    /// Starts the binary against `kubeconfig`, logging to `log`, with `env` set.
    pub fn start(kubeconfig: &Path, log: &Path, env: &[(&str, &str)]) -> ControllerProcess {
        let file = std::fs::File::create(log).expect("log file");
        eprintln!("controller log: {}", log.display());
        let child = Command::new(env!("CARGO_BIN_EXE_kube-lighthouse"))
            .env("KUBECONFIG", kubeconfig)
            .env("KUBE_LIGHTHOUSE_LOG", "info,kube_lighthouse=debug")
            .env("KUBE_LIGHTHOUSE_METRICS_PORT", "0")
            .env("KUBE_LIGHTHOUSE_HEALTH_PORT", "0")
            // No Lease unless the test asks for one (as the chart's does).
            .env("KUBE_LIGHTHOUSE_LEADER_ELECTION", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone().expect("dup")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start kube-lighthouse");
        ControllerProcess(child)
    }

    /// SIGTERM, as Kubernetes stops a pod, and waits for the process to end.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }

    /// Whether the process has ended by itself (e.g. it lost its Lease).
    pub fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
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

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Runs `command`, failing the test unless it succeeds; returns its stdout and stderr.
pub fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed:\n{stdout}\n{stderr}");
    format!("{stdout}{stderr}")
}

/// `kubectl args` against `kubeconfig`, failing the test unless it succeeds; returns its
/// stdout and stderr.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    run(Command::new("kubectl").env("KUBECONFIG", kubeconfig).args(args))
}
