//! The sign-in broker's token exchange, measured in-process: a subject token of a local
//! Entra-shaped issuer (hack/token-issuer, served over HTTPS on 127.0.0.1) exchanged through
//! the broker's own routes (`POST /federation/token`: form parsing, the tenant admitted from
//! the assignments cache, the signature verified with the tenant's key, the issued token
//! signed), with
//! - a **warm** cache: the tenant's discovery document and keys already fetched;
//! - a **cold** cache: a broker that has never seen the tenant (a replica just started, or a
//!   new delegation), measured as its prefetch of the discovery document and the JWKS over a
//!   new TLS connection (which the broker does ahead, never in an exchange) plus the exchange.
//!
//! Run with `hack/bench.sh` or `cargo bench --bench federation_exchange [-- --warm N --cold N]`; the
//! figures go to stdout and target/bench/federation.json (docs/benchmarks.md). The network
//! hop from the engineer to the broker is not included: it is the cluster's.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube_lighthouse::api::{
    DefinitionRef, ProvisioningState, RegistrationAssignment, RegistrationAssignmentSpec, RegistrationAssignmentStatus,
};
use kube_lighthouse::federation::keys::{generate, KeySet};
use kube_lighthouse::federation::rotation::Policy;
use kube_lighthouse::federation::{server, Broker, FederationMetrics, Settings};
use tower::ServiceExt;

const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
const AUDIENCE: &str = "api://kube-lighthouse";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn broker(settings: &Settings, keys: &[u8]) -> Arc<Broker> {
    let (store, mut writer) = reflector::store::<RegistrationAssignment>();
    let mut assignment = RegistrationAssignment::new(
        "a",
        RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: "d".into() } },
    );
    assignment.metadata.namespace = Some("customer".into());
    assignment.status = Some(RegistrationAssignmentStatus {
        provisioning_state: Some(ProvisioningState::Succeeded),
        managed_by_tenant_id: Some(TENANT.into()),
        ..RegistrationAssignmentStatus::default()
    });
    writer.apply_watcher_event(&watcher::Event::Apply(assignment));
    let broker = Broker::new(settings.clone(), store, FederationMetrics::default()).expect("broker");
    broker.keys.set(Some(KeySet::parse(keys).expect("keys")));
    Arc::new(broker)
}

async fn exchange(broker: &Arc<Broker>, body: &str) -> Duration {
    let request = Request::post("/federation/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .expect("request");
    let started = Instant::now();
    let response = server::router(broker.clone()).oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    elapsed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --all-targets` runs this target without `--bench`: benchmarks are not tests.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benches/federation.rs: run it with `cargo bench --bench federation_exchange` (hack/bench.sh)");
        return;
    }
    let (warm_n, cold_n) = (arg("--warm", 2000), arg("--cold", 200));
    let dir = std::env::temp_dir().join(format!("kl-bench-federation-{}", std::process::id()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = format!("https://127.0.0.1:{port}/{TENANT}/v2.0");
    let issuer: &'static kl_token_issuer::Issuer =
        Box::leak(Box::new(kl_token_issuer::Issuer::init(&dir, TENANT, &url, AUDIENCE).expect("issuer")));
    tokio::spawn(kl_token_issuer::serve_on(listener, issuer, std::future::pending()));

    let settings = Settings {
        issuer: "https://127.0.0.1:9443/federation".into(),
        audience: "kube-lighthouse".into(),
        max_lifetime: 900,
        authority: format!("https://127.0.0.1:{port}/{{tenantId}}/v2.0"),
        subject_audiences: BTreeSet::from([AUDIENCE.to_owned()]),
        allow_list: None,
        keys_secret: "unused".into(),
        authority_ca: Some(issuer.ca_cert_path()),
        rotation: Policy::new(604_800, 900),
        max_concurrent_exchanges: 32,
    };
    let subject = issuer
        .mint(
            &kl_token_issuer::TokenRequest::new("6f1a3b5c-0000-4000-8000-000000000001").group("g").amr(["pwd", "mfa"]),
        )
        .expect("subject token");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
        .append_pair("subject_token_type", "urn:ietf:params:oauth:token-type:jwt")
        .append_pair("subject_token", &subject)
        .finish();
    let keys = serde_json::to_vec(&[generate(0).expect("key")]).expect("json");

    // Cold: a broker per exchange, built before the clock starts; the clock covers its
    // prefetch of the tenant's keys (which an exchange never does itself) and the exchange.
    let mut cold = Vec::with_capacity(cold_n);
    for _ in 0..cold_n {
        let fresh = broker(&settings, &keys);
        let started = Instant::now();
        assert_eq!(fresh.prefetch_once().await, 1, "the tenant's keys fetched");
        let prefetched = started.elapsed();
        cold.push(prefetched + exchange(&fresh, &body).await);
    }
    // Warm: one broker, its cache filled by the prefetch.
    let warm_broker = broker(&settings, &keys);
    warm_broker.prefetch_once().await;
    let mut warm = Vec::with_capacity(warm_n);
    for _ in 0..warm_n {
        warm.push(exchange(&warm_broker, &body).await);
    }
    cold.sort();
    warm.sort();
    let report = serde_json::json!({
        "warm": {"n": warm_n, "p50_ms": percentile(&warm, 0.5), "p99_ms": percentile(&warm, 0.99)},
        "cold": {"n": cold_n, "p50_ms": percentile(&cold, 0.5), "p99_ms": percentile(&cold, 0.99)},
    });
    println!(
        "token exchange, warm JWKS cache: p50 {:.2} ms, p99 {:.2} ms (n = {warm_n})",
        percentile(&warm, 0.5),
        percentile(&warm, 0.99)
    );
    println!(
        "token exchange, cold JWKS cache: p50 {:.2} ms, p99 {:.2} ms (n = {cold_n})",
        percentile(&cold, 0.5),
        percentile(&cold, 0.99)
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    std::fs::write(out.join("federation.json"), serde_json::to_string_pretty(&report).expect("json")).expect("write");
    let _ = std::fs::remove_dir_all(&dir);
}
