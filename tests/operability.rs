//! The binary as an operator runs it: probes, Prometheus metrics, JSON logs, and a prompt,
//! clean exit on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A minimal HTTP GET: (status code, body).
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn probes_metrics_json_logs_and_graceful_shutdown() {
    let path = kubeconfig();
    let client = client_for(&path).await;
    let (metrics, health) = (free_port(), free_port());
    let log = std::env::temp_dir().join(unique("operability.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-lighthouse"))
        .args(["--metrics-port", &metrics.to_string(), "--health-port", &health.to_string(), "--log-format", "json"])
        .env("KUBECONFIG", &path)
        .env("KUBE_LIGHTHOUSE_LEADER_ELECTION", "false")
        .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
        .stderr(Stdio::null())
        .spawn()
        .expect("start");

    eventually("/healthz answers 200", || async { get(health, "/healthz").await.is_some_and(|(c, _)| c == 200) }).await;
    eventually("/readyz answers 200 once the caches are synced", || async {
        get(health, "/readyz").await.is_some_and(|(c, _)| c == 200)
    })
    .await;

    // Give it work, then read what it did from its metrics.
    let sub = unique("ops");
    subscription(&client, &sub, &tenant_id()).await;
    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    assignment(&client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;
    eventually("/metrics reports reconciles, writes and delegations", || async {
        get(metrics, "/metrics").await.is_some_and(|(code, body)| {
            code == 200
                && body.contains("kube_lighthouse_reconciles_total{controller=\"assignment\"}")
                && body.contains("kube_lighthouse_api_writes_total{kind=\"RoleBinding\",verb=\"apply\"}")
                && body.contains("kube_lighthouse_delegations{kind=\"RegistrationAssignment\",state=\"Succeeded\"}")
                && body.contains("kube_lighthouse_reconcile_duration_seconds_bucket")
                && body.contains("kube_lighthouse_materialized_objects{kind=\"Role\"}")
        })
    })
    .await;

    // SIGTERM: a prompt exit with success.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running 15 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");

    let lines = std::fs::read_to_string(&log).expect("log");
    assert!(!lines.trim().is_empty(), "no log output");
    for line in lines.lines() {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.get("level").is_some() && parsed.get("timestamp").is_some(), "{line}");
    }
    let _ = std::fs::remove_file(&log);
}

const ENGINEERS: &str = "00000000-0000-0000-0000-0000000000a1";
