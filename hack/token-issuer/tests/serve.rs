//! End to end: the `kl-token-issuer` binary's `init`, `serve` and `token`, and the library's
//! `serve_on`, checked over real HTTPS with a client that trusts only the issuer's `ca.crt`.
// The helpers below are test code too (clippy's allow-unwrap-in-tests sees only #[test] fns).
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kl_token_issuer::{Claims, Issuer, TokenRequest};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const BIN: &str = env!("CARGO_BIN_EXE_kl-token-issuer");
const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
const OTHER_TENANT: &str = "2f6c1a7e-9b1d-4c55-8f3e-0d4b7a9c1e22";
const AUDIENCE: &str = "api://kube-lighthouse";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kl-token-issuer-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

fn issuer_url(port: u16, tenant: &str) -> String {
    format!("https://127.0.0.1:{port}/{tenant}/v2.0")
}

/// Runs the binary to completion; panics with its stderr unless it succeeds. Returns stdout.
fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A TLS client configuration trusting only the CA certificate(s) in `ca`.
fn client_config(ca: &Path) -> ClientConfig {
    let pem = std::fs::read(ca).unwrap();
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// `GET url` over HTTPS, trusting only `ca`; the status and the body as JSON (Null if not JSON).
async fn https_get(ca: &Path, url: &str) -> Result<(StatusCode, serde_json::Value), String> {
    let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
    let authority = uri.authority().unwrap().clone();
    let tcp = TcpStream::connect(authority.as_str()).await.map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(authority.host().to_owned()).unwrap();
    let tls =
        TlsConnector::from(Arc::new(client_config(ca))).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| format!("{e}"))?;
    tokio::spawn(connection);
    let request =
        Request::get(uri.path()).header(header::HOST, authority.as_str()).body(Empty::<Bytes>::new()).unwrap();
    let response = sender.send_request(request).await.map_err(|e| format!("{e}"))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| format!("{e}"))?.to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)))
}

async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the server if a test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn verify(jwks: &JwkSet, token: &str, issuer: &str) -> jsonwebtoken::errors::Result<Claims> {
    let kid = jsonwebtoken::decode_header(token)?.kid.unwrap();
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("kid in JWKS"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    Ok(jsonwebtoken::decode::<Claims>(token, &key, &validation)?.claims)
}

#[tokio::test]
async fn cli_init_serve_and_token_over_https() {
    let dir = scratch("cli");
    let port = free_port();
    let url = issuer_url(port, TENANT);
    let dir_arg = dir.to_str().unwrap();
    run(&["init", "--dir", dir_arg, "--tenant", TENANT, "--url", &url, "--audience", AUDIENCE]);
    for file in ["ca.crt", "ca.key", "tls.crt", "tls.key", "signing.key", "issuer.json"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }

    let mut server =
        Server(Command::new(BIN).args(["serve", "--dir", dir_arg]).stderr(Stdio::piped()).spawn().unwrap());
    wait_listening(port).await;
    let ca = dir.join("ca.crt");

    let (status, discovery) = https_get(&ca, &format!("{url}/.well-known/openid-configuration")).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(discovery["issuer"], url.as_str());
    let jwks_uri = format!("https://127.0.0.1:{port}/{TENANT}/discovery/v2.0/keys");
    assert_eq!(discovery["jwks_uri"], jwks_uri.as_str());
    assert_eq!(discovery["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));

    let (status, jwks) = https_get(&ca, &jwks_uri).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
    assert_eq!(jwks.keys.len(), 1);

    let oid = "6f1a3b5c-0000-4000-8000-000000000001";
    let token = run(&[
        "token",
        "--dir",
        dir_arg,
        "--oid",
        oid,
        "--group",
        "g1",
        "--group",
        "g2",
        "--amr",
        "pwd",
        "--amr",
        "mfa",
        "--lifetime",
        "30m",
    ]);
    let token = token.trim_end();
    assert_eq!(token.split('.').count(), 3, "one compact JWT on stdout: {token:?}");
    let claims = verify(&jwks, token, &url).unwrap();
    assert_eq!((claims.oid.as_str(), claims.sub.as_str(), claims.tid.as_str()), (oid, oid, TENANT));
    assert_eq!(claims.groups, ["g1", "g2"]);
    assert_eq!(claims.amr, ["pwd", "mfa"]);
    assert_eq!(claims.exp - claims.iat, 1800);

    let default = run(&["token", "--dir", dir_arg, "--oid", oid]);
    let claims = verify(&jwks, default.trim_end(), &url).unwrap();
    assert_eq!(claims.amr, ["pwd"]);
    assert_eq!(claims.exp - claims.iat, 3600);

    let expired = run(&["token", "--dir", dir_arg, "--oid", oid, "--expired"]);
    assert_eq!(
        *verify(&jwks, expired.trim_end(), &url).unwrap_err().kind(),
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );
    let stranger = run(&["token", "--dir", dir_arg, "--oid", oid, "--unknown-key"]);
    assert_eq!(
        *verify(&jwks, stranger.trim_end(), &url).unwrap_err().kind(),
        jsonwebtoken::errors::ErrorKind::InvalidSignature
    );
    let foreign = run(&["token", "--dir", dir_arg, "--oid", oid, "--tid", OTHER_TENANT, "--audience", "api://x"]);
    let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(foreign.trim_end()).unwrap();
    assert_eq!((claims.tid.as_str(), claims.aud.as_str()), (OTHER_TENANT, "api://x"));

    let (status, _) = https_get(&ca, &format!("https://127.0.0.1:{port}/elsewhere")).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);

    // SIGTERM: a clean exit, with every request logged on stderr.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let child = std::mem::replace(&mut server.0, Command::new("true").spawn().unwrap());
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "serve exited with {:?}: {log}", output.status);
    assert!(log.contains("/.well-known/openid-configuration") && log.contains("/discovery/v2.0/keys"), "{log}");
    assert!(log.contains("status=404"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn bad_arguments_fail_with_a_message() {
    let dir = scratch("bad");
    let out = Command::new(BIN)
        .args([
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--tenant",
            TENANT,
            "--url",
            "http://localhost/x",
            "--audience",
            AUDIENCE,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be https"));
    let out = Command::new(BIN)
        .args(["token", "--dir", "/nonexistent", "--oid", "x", "--lifetime", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("soon"));
}

/// The library path integration tests of the root crate use: bind port 0, `init` with that
/// port, `serve_on`, mint in-process, stop via the shutdown future. Two issuers, two CAs:
/// neither CA vouches for the other's server.
#[tokio::test]
async fn in_process_issuers_each_trusted_only_through_their_own_ca() {
    let mut running = Vec::new();
    for (name, tenant) in [("a", TENANT), ("b", OTHER_TENANT)] {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let issuer = Arc::new(Issuer::init(&scratch(name), tenant, &issuer_url(port, tenant), AUDIENCE).unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = issuer.clone();
        let task = tokio::spawn(async move {
            kl_token_issuer::serve_on(listener, &served, async {
                let _ = stopped.await;
            })
            .await
        });
        running.push((issuer, stop, task));
    }

    for (issuer, _, _) in &running {
        let (status, discovery) = https_get(&issuer.ca_cert_path(), &issuer.discovery_url()).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(discovery["issuer"], issuer.url());
        let (_, jwks) = https_get(&issuer.ca_cert_path(), discovery["jwks_uri"].as_str().unwrap()).await.unwrap();
        let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
        let token = issuer.mint(&TokenRequest::new("u").amr(["pwd", "mfa"])).unwrap();
        assert_eq!(verify(&jwks, &token, issuer.url()).unwrap().tid, issuer.tenant());
    }
    let (a, b) = (&running[0].0, &running[1].0);
    let err = https_get(&a.ca_cert_path(), &b.discovery_url()).await.unwrap_err();
    assert!(err.starts_with("TLS"), "{err}");

    for (issuer, stop, task) in running {
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
        // Closed: nothing accepts. A connection to a port nobody listens on can still "succeed"
        // by connecting to itself (Linux picks the freed port as the source port: TCP
        // simultaneous open), which is no server: local and peer address are the same.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, issuer.port()));
        let answered = TcpStream::connect(addr).await.is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok());
        assert!(!answered, "port {} still answers after the issuer stopped", issuer.port());
        std::fs::remove_dir_all(issuer.dir()).unwrap();
    }
}
