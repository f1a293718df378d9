//! The admission webhook for tests: the real binary serving it over TLS on 127.0.0.1, and
//! a ValidatingWebhookConfiguration shaped like the chart's pointing the API server at it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::json;

use super::cluster::{free_port, run};
use super::fixtures::unique;

/// A CA and a serving certificate for 127.0.0.1, as PEM files in `dir`.
pub fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    certificates_for(dir, "IP:127.0.0.1")
}

/// A CA and a serving certificate for `subject_alt_names` (OpenSSL's syntax:
/// `IP:127.0.0.1,DNS:name`), as PEM files in `dir`: (CA, certificate, key).
pub fn certificates_for(dir: &Path, subject_alt_names: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key, cert, key) = (dir.join("ca.crt"), dir.join("ca.key"), dir.join("tls.crt"), dir.join("tls.key"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=webhook-ca"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    let csr = dir.join("tls.csr");
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        format!("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName={subject_alt_names}\n"),
    )
    .expect("ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert));
    (ca, cert, key)
}

/// The controller binary with its webhook on; killed on drop.
pub struct Controller(pub Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The webhook registration; removed on drop so no later request is refused by a webhook
/// that is gone.
pub struct Registration {
    kubeconfig: PathBuf,
    name: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["delete", "validatingwebhookconfiguration", &self.name, "--ignore-not-found"])
            .status();
        let _ = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["delete", "mutatingwebhookconfiguration", &self.name, "--ignore-not-found"])
            .status();
    }
}

/// Registers the webhook served on 127.0.0.1:`port` (its CA `ca`) as `name`.
pub fn register(kubeconfig: &Path, name: &str, port: u16, ca: &Path) -> Registration {
    let bundle = {
        use std::io::Write;
        let pem = std::fs::read(ca).expect("ca");
        let mut out = Vec::new();
        let mut enc = base64_writer(&mut out);
        enc.write_all(&pem).expect("encode");
        drop(enc);
        String::from_utf8(out).expect("base64")
    };
    let url = format!("https://127.0.0.1:{port}/validate");
    let hook = |name: &str, rules: serde_json::Value, selector: serde_json::Value| {
        json!({
            "name": name,
            "clientConfig": {"url": url, "caBundle": bundle},
            "rules": rules,
            "namespaceSelector": selector,
            "failurePolicy": "Fail",
            "sideEffects": if name.starts_with("activations") { "NoneOnDryRun" } else { "None" },
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
        })
    };
    let delegations = json!([{"apiGroups": ["managedservices.kubelighthouse.io"], "apiVersions": ["*"],
        "operations": ["CREATE", "UPDATE"], "resources": ["registrationdefinitions", "registrationassignments"]}]);
    let bindings = json!([{"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["*"],
        "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["rolebindings", "roles"]}]);
    let activations = json!([{"apiGroups": ["activation.kubelighthouse.io"], "apiVersions": ["*"],
        "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["roleactivations", "activationreviews"]}]);
    let onboardings = json!([{"apiGroups": ["policy.kubelighthouse.io"], "apiVersions": ["*"],
        "operations": ["CREATE", "UPDATE"], "resources": ["onboardings"]}]);
    let exists = |label: &str| json!({"matchExpressions": [{"key": label, "operator": "Exists"}]});
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            hook("delegations.kubelighthouse.io", delegations, json!({})),
            hook("rolebindings-subscriptions.kubelighthouse.io", bindings.clone(), exists("kubelighthouse.io/tenant-id")),
            hook("rolebindings-resource-groups.kubelighthouse.io", bindings, exists("kubelighthouse.io/subscription")),
            hook("activations.kubelighthouse.io", activations, json!({})),
            hook("onboardings.kubelighthouse.io", onboardings, json!({})),
        ],
    });
    // As the chart's MutatingWebhookConfiguration: the requester and reviewer stamps.
    let mutating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "activation-stamps.kubelighthouse.io",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/mutate"), "caBundle": bundle},
            "rules": [{"apiGroups": ["activation.kubelighthouse.io"], "apiVersions": ["*"],
                "operations": ["CREATE"], "resources": ["roleactivations", "activationreviews"]}],
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
        }],
    });
    let file = kubeconfig.with_file_name(format!("{name}-mutating.json"));
    std::fs::write(&file, mutating.to_string()).expect("write");
    run(Command::new("kubectl").env("KUBECONFIG", kubeconfig).args(["apply", "-f"]).arg(&file));
    let file = kubeconfig.with_file_name(format!("{name}.json"));
    std::fs::write(&file, config.to_string()).expect("write");
    run(Command::new("kubectl").env("KUBECONFIG", kubeconfig).args(["apply", "-f"]).arg(&file));
    Registration { kubeconfig: kubeconfig.to_path_buf(), name: name.to_string() }
}

/// `bytes` in standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut out = Vec::new();
    let mut enc = base64_writer(&mut out);
    enc.write_all(bytes).expect("encode");
    drop(enc);
    String::from_utf8(out).expect("base64")
}

/// Base64 without a dependency: the standard alphabet with padding.
fn base64_writer(out: &mut Vec<u8>) -> impl std::io::Write + '_ {
    struct W<'a>(&'a mut Vec<u8>, Vec<u8>);
    impl std::io::Write for W<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Drop for W<'_> {
        fn drop(&mut self) {
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            for chunk in self.1.chunks(3) {
                let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..4 {
                    if i <= chunk.len() {
                        self.0.push(A[((n >> (18 - 6 * i)) & 63) as usize]);
                    } else {
                        self.0.push(b'=');
                    }
                }
            }
        }
    }
    W(out, Vec::new())
}

/// The controller binary, with its admission webhook registered when `webhook` is true; the
/// registration goes before the controller on drop, so nothing is refused by a webhook that
/// is gone.
pub struct Deployed {
    registration: Option<Registration>,
    _controller: Controller,
    pub dir: PathBuf,
    /// The webhook's port on 127.0.0.1 and the CA of its serving certificate, when served.
    pub webhook: Option<(u16, PathBuf)>,
}

impl Deployed {
    /// Starts the binary against `kubeconfig`, its webhook registered when `webhook`.
    pub fn start(kubeconfig: &Path, webhook: bool) -> Deployed {
        Deployed::start_with(kubeconfig, webhook, &[])
    }

    /// The controller's process ID (its memory is read from `/proc`).
    pub fn pid(&self) -> u32 {
        self._controller.0.id()
    }

    /// As [`Deployed::start`], with extra environment variables for the controller.
    pub fn start_with(kubeconfig: &Path, webhook: bool, env: &[(&str, &str)]) -> Deployed {
        let dir = std::env::temp_dir().join(unique("deployed"));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = std::fs::File::create(dir.join("controller.log")).expect("log");
        eprintln!("controller log: {}", dir.join("controller.log").display());
        let health = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kube-lighthouse"));
        cmd.args(["--metrics-port", "0", "--health-port", &health.to_string()])
            .env("KUBECONFIG", kubeconfig)
            .env("KUBE_LIGHTHOUSE_LOG", "info,kube_lighthouse=debug")
            .env("KUBE_LIGHTHOUSE_LEADER_ELECTION", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::from(log.try_clone().expect("dup")))
            .stderr(Stdio::from(log));
        let mut hook = None;
        if webhook {
            // Also for the views' Service name: the same port serves the views API, which a
            // test may register (common::views::register_api_service).
            let names = format!(
                "IP:127.0.0.1,DNS:localhost,DNS:{}.{}.svc",
                super::views::SERVICE,
                super::views::SERVICE_NAMESPACE
            );
            let (ca, cert, key) = certificates_for(&dir, &names);
            let port = free_port();
            // The configuration's name is known before it exists, as the chart's is: the
            // controller materializes User Access Administrator only once it is registered.
            let name = unique("kube-lighthouse-test");
            cmd.args(["--webhook-port", &port.to_string()])
                .arg("--webhook-cert")
                .arg(&cert)
                .arg("--webhook-key")
                .arg(&key)
                .env("KUBE_LIGHTHOUSE_WEBHOOK_CONFIGURATION", &name);
            hook = Some((port, ca, name));
        }
        let mut controller = Controller(cmd.spawn().expect("start kube-lighthouse"));
        // As a Deployment's Service gets the pod only once its readiness probe passes, the
        // webhook is registered only once `/readyz` answers 200 (its caches are synced).
        wait_until_ready(&mut controller.0, health, &dir.join("controller.log"));
        let registration = hook.as_ref().map(|(port, ca, name)| register(kubeconfig, name, *port, ca));
        let webhook = hook.map(|(port, ca, _)| (port, ca));
        Deployed { registration, _controller: controller, dir, webhook }
    }
}

/// POSTs `review` (an AdmissionReview) to `https://127.0.0.1:{port}{path}` as any client on the
/// network could, presenting the client certificate `client` if given; (HTTP status, body).
pub fn post_review(
    port: u16,
    path: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    review: &serde_json::Value,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--cacert"])
        .arg(ca);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let out = cmd.args(["--data-binary", &review.to_string()]).arg(format!("https://127.0.0.1:{port}{path}")).output();
    let text = String::from_utf8_lossy(&out.expect("curl").stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Polls `http://127.0.0.1:{port}/readyz` until it answers 200.
///
/// # Panics
/// When the controller exits first or is not ready within two minutes; the message names
/// its log.
fn wait_until_ready(controller: &mut Child, port: u16, log: &Path) {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = controller.try_wait() {
            panic!("kube-lighthouse exited ({status}) before it was ready; see {}", log.display());
        }
        let answer = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
            stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply)?;
            Ok(reply)
        });
        if answer.is_ok_and(|reply| reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200")) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "kube-lighthouse not ready within 120 s; see {}", log.display());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        drop(self.registration.take());
    }
}
