//! The controller under benchmark, as a subprocess: the release binary started as an
//! operator runs it, its readiness, metrics, CPU and peak memory from `/proc`; and the CPU the
//! control plane's own processes (API server, etcd) spend.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;
use crate::report::round3;

pub struct ControllerProcess {
    child: Child,
    health_port: u16,
    metrics_port: u16,
}

impl ControllerProcess {
    /// The release binary with no arguments, as an operator runs it; only ports and
    /// concurrency come from the environment. `KL_BENCH_CONTROLLER` names another binary (an
    /// earlier commit's build, for a before-and-after with the same harness).
    pub fn start(kubeconfig: &Path, log: &Path, concurrency: usize) -> ControllerProcess {
        let (health_port, metrics_port) = (free_port(), free_port());
        let file = std::fs::File::create(log).expect("controller log file");
        let binary =
            std::env::var_os("KL_BENCH_CONTROLLER").unwrap_or_else(|| env!("CARGO_BIN_EXE_kube-lighthouse").into());
        let child = Command::new(binary)
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
    pub fn peak_rss_mib(&self) -> f64 {
        let kib = self
            .proc_file("status")
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
            .unwrap_or(0.0_f64);
        kib / 1024.0
    }

    /// User + system CPU time consumed so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.child.id())
    }

    pub async fn wait_ready(&mut self) {
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
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let Some((_, body)) = http_get(self.metrics_port, "/metrics").await else { return 0.0 };
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    }

    /// SIGTERM, as Kubernetes stops a pod; returns how long the graceful exit took.
    pub fn stop(mut self) -> Duration {
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
pub fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// CPU seconds of the control plane's API server and etcd, to see who is busy.
pub struct ControlPlaneCpu {
    pids: Vec<(&'static str, u32)>,
}

impl ControlPlaneCpu {
    pub fn new(state: &Path) -> ControlPlaneCpu {
        let pid = |name: &str| std::fs::read_to_string(state.join(format!("{name}.pid"))).ok()?.trim().parse().ok();
        let pids = ["kube-apiserver", "etcd"].into_iter().filter_map(|n| Some((n, pid(n)?))).collect();
        ControlPlaneCpu { pids }
    }

    pub fn sample(&self) -> BTreeMap<&'static str, f64> {
        self.pids.iter().map(|(name, pid)| (*name, cpu_seconds_of(*pid))).collect()
    }

    /// Waits until the API server has been at rest (under 5 % of a core for 2 s): new
    /// namespaces keep kube-controller-manager creating ServiceAccounts and token Secrets for
    /// a minute or two, and that work must not land inside a timed window. How long it took.
    pub async fn at_rest(&self) -> Duration {
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

    /// CPU seconds each process spent since `before`, rounded.
    pub fn since(&self, before: &BTreeMap<&'static str, f64>) -> BTreeMap<String, f64> {
        let now = self.sample();
        now.iter().map(|(k, v)| (k.to_string(), round3(v - before.get(k).unwrap_or(&0.0)))).collect()
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
