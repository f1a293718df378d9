//! Sign-in through kube-lighthouse's broker, on a control plane whose API server trusts exactly
//! one issuer, the broker (`hack/control-plane.sh up --federation`). Three local Entra-shaped
//! issuers (contoso, fabrikam, northwind) stand in for three managing tenants; the API server
//! does not trust them: their engineers exchange their own tenant's token at the broker and
//! make real requests with the token they get back.
//!
//! One broker (the real binary, leading, its keys rotating every 8 s) serves every scenario,
//! which run one after the other in a single test: the broker's port and serving certificate
//! are fixed by the control plane (its AuthenticationConfiguration names them), so there is
//! one broker at a time, and the last scenario stops it.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::views::{register_api_service, token_kubeconfig, ApiServiceRegistration};
use common::webhook::{register, Registration};
use common::*;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kl_token_issuer::{Issuer, TokenRequest};
use kube::api::{Api, PostParams};
use kube::Client;
use kube_lighthouse::api::{ActivationPhase, RegistrationAssignment, RoleActivation};
use serde_json::json;

/// The tenants of the control plane's federation issuers (hack/control-plane.sh).
const CONTOSO: &str = MSP_TENANT;
const FABRIKAM: &str = OTHER_MSP_TENANT;
const NORTHWIND: &str = "5d4e3c2b-1a09-4f8e-9d7c-6b5a49382716";
/// One object ID in two tenants: two people, two identities.
const SAME_OID: &str = "00000000-0000-4000-8000-0000000fed01";
const NORTHWIND_ENGINEER: &str = "00000000-0000-4000-8000-0000000fed02";
const NORTHWIND_GROUP: &str = "00000000-0000-4000-8000-0000000fed0a";
const JIT_ENGINEER: &str = "00000000-0000-4000-8000-0000000fed03";
const JIT_ENGINEERS: &str = "00000000-0000-4000-8000-0000000fed0b";
/// Seconds between two signing keys: several rotations happen during the run.
const ROTATION_SECONDS: &str = "6";

/// What `hack/control-plane.sh up --federation` fixed for the broker
/// (`$KL_STATE_DIR/federation/broker.json`).
#[derive(serde::Deserialize)]
struct Setup {
    issuer: String,
    port: u16,
    authority: String,
    subject_audience: String,
    audience: String,
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
            "{}: {e}: this suite needs the control plane's federation mode (hack/control-plane.sh up --federation)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("broker.json")
}

/// A subject token of `name`'s issuer (contoso, fabrikam, northwind).
fn mint(setup: &Setup, name: &str, request: &TokenRequest) -> String {
    Issuer::load(&setup.issuers.join(name)).expect("issuer").mint(request).expect("mint")
}

/// `POST <base>/token` with `form`, as any HTTPS client: (HTTP status, JSON body), or curl's
/// error when nothing answered.
fn post_token(base: &str, ca: &Path, form: &[(&str, &str)]) -> Result<(u16, serde_json::Value), String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}", "--cacert"]).arg(ca);
    for (k, v) in form {
        cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
    }
    let out = cmd.arg(format!("{base}/token")).output().expect("curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    Ok((code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(serde_json::Value::Null)))
}

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

fn exchange_at(base: &str, ca: &Path, subject: &str) -> Result<(u16, serde_json::Value), String> {
    post_token(base, ca, &[("grant_type", EXCHANGE), ("subject_token", subject), ("subject_token_type", JWT)])
}

/// The broker's token for `subject`, exchanged at the issuer URL; fails the test otherwise.
/// A tenant delegated a moment ago may be refused for a second: the broker fetches its keys
/// ahead of any exchange, within a second of the delegation (docs/architecture.md), and an
/// exchange never fetches them itself.
fn exchanged(setup: &Setup, subject: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let (status, body) = loop {
        let (status, body) = exchange_at(&setup.issuer, &setup.ca, subject).expect("the broker answers");
        if status != 400 || Instant::now() >= deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 200, "exchange refused: {body}");
    assert_eq!(body["issued_token_type"], JWT);
    assert_eq!(body["token_type"], "N_A");
    body["access_token"].as_str().expect("access_token").to_string()
}

/// `GET url` (no client certificate): (HTTP status, body).
fn get(url: &str, ca: Option<&Path>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The key IDs of the JWKS a replica serves on `port`.
fn jwks(port: u16, ca: &Path) -> BTreeSet<String> {
    let (status, body) = get(&format!("https://127.0.0.1:{port}/federation/keys"), Some(ca));
    assert_eq!(status, 200, "{body}");
    let jwks: serde_json::Value = serde_json::from_str(&body).expect("JWKS");
    jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str().map(str::to_string)).collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("header").kid.expect("kid")
}

/// One replica: the controller binary with the broker on, serving on `port` with the control
/// plane's broker certificate; its webhook registered when it is the main one.
struct Replica {
    registration: Option<Registration>,
    process: ControllerProcess,
    port: u16,
    health: u16,
    metrics: u16,
    log: PathBuf,
}

impl Replica {
    fn start(setup: &Setup, dir: &Path, name: &str, port: u16, extra: &[(&str, &str)]) -> Replica {
        let (health, metrics) = (free_port(), free_port());
        let log = dir.join(format!("{name}.log"));
        let (port_s, health_s, metrics_s) = (port.to_string(), health.to_string(), metrics.to_string());
        let webhook = unique("kube-lighthouse-federation");
        let mut env = vec![
            ("KUBE_LIGHTHOUSE_WEBHOOK_PORT", port_s.as_str()),
            ("KUBE_LIGHTHOUSE_WEBHOOK_CERT", setup.cert.to_str().expect("path")),
            ("KUBE_LIGHTHOUSE_WEBHOOK_KEY", setup.key.to_str().expect("path")),
            ("KUBE_LIGHTHOUSE_HEALTH_PORT", health_s.as_str()),
            ("KUBE_LIGHTHOUSE_METRICS_PORT", metrics_s.as_str()),
            ("KUBE_LIGHTHOUSE_LEADER_ELECTION", "true"),
            ("KUBE_LIGHTHOUSE_WEBHOOK_CONFIGURATION", webhook.as_str()),
            ("KUBE_LIGHTHOUSE_FEDERATION_ISSUER", setup.issuer.as_str()),
            ("KUBE_LIGHTHOUSE_FEDERATION_AUDIENCE", setup.audience.as_str()),
            ("KUBE_LIGHTHOUSE_FEDERATION_AUTHORITY", setup.authority.as_str()),
            ("KUBE_LIGHTHOUSE_FEDERATION_SUBJECT_AUDIENCES", setup.subject_audience.as_str()),
            ("KUBE_LIGHTHOUSE_FEDERATION_AUTHORITY_CA", setup.authority_ca.to_str().expect("path")),
            ("KUBE_LIGHTHOUSE_FEDERATION_KEY_ROTATION_SECONDS", ROTATION_SECONDS),
            ("KUBE_LIGHTHOUSE_FEDERATION_MAX_LIFETIME_SECONDS", "300"),
        ];
        env.extend_from_slice(extra);
        let process = ControllerProcess::start(&kubeconfig(), &log, &env);
        let mut replica = Replica { registration: None, process, port, health, metrics, log };
        if name == "main" {
            replica.wait_ready();
            replica.registration = Some(register(&kubeconfig(), &webhook, port, &setup.ca));
        }
        replica
    }

    /// `/readyz`: (HTTP status, body).
    fn readyz(&self) -> (u16, String) {
        get(&format!("http://127.0.0.1:{}/readyz", self.health), None)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while self.readyz().0 != 200 {
            assert!(!self.process.exited(), "the broker exited; see {}", self.log.display());
            assert!(Instant::now() < deadline, "the broker is not ready; see {}", self.log.display());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn metrics(&self) -> String {
        get(&format!("http://127.0.0.1:{}/metrics", self.metrics), None).1
    }

    /// Unregisters the webhook, then SIGKILLs the process.
    fn stop(mut self) {
        drop(self.registration.take());
        self.process.crash();
    }
}

/// A client with `token` and the HTTP status of its real `list pods` in `ns`.
async fn list_pods(token: &str, ns: &str) -> u16 {
    list_pods_status(&client_with_token(token).await, ns).await
}

/// The user name the API server authenticates `token` as (a SelfSubjectReview).
async fn who(token: &str) -> Option<String> {
    let api: Api<SelfSubjectReview> = Api::all(client_with_token(token).await);
    let review = api.create(&PostParams::default(), &SelfSubjectReview::default()).await.ok()?;
    review.status?.user_info?.username
}

/// A customer subscription delegated to `tenant`'s `authorizations`, in force.
async fn delegated(admin: &Client, prefix: &str, tenant: &str, authorizations: Vec<serde_json::Value>) -> String {
    let sub = unique(prefix);
    subscription(admin, &sub, &tenant_id()).await;
    definition(admin, &sub, "offer", tenant, authorizations).await;
    assignment(admin, &sub, "offer", "offer").await;
    wait_for_assignment_state(admin, &sub, "offer", "Succeeded").await;
    sub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn engineers_of_three_managing_tenants_sign_in_through_the_broker() {
    let setup = setup();
    let started = Instant::now();
    let admin = client_for(&kubeconfig()).await;
    let dir = std::env::temp_dir().join(unique("federation"));
    std::fs::create_dir_all(&dir).expect("dir");
    let main = Replica::start(&setup, &dir, "main", setup.port, &[]);
    the_api_server_trusts_the_broker_only(&setup).await;

    let contoso_sub = delegated(&admin, "fed-contoso", CONTOSO, vec![authorization(SAME_OID, "User", READER)]).await;
    let fabrikam_sub = delegated(&admin, "fed-fabrikam", FABRIKAM, vec![authorization(SAME_OID, "User", READER)]).await;
    refused_subject_tokens_grant_nothing_and_tell_nothing(&setup, &main).await;
    let northwind_sub =
        delegated(&admin, "fed-northwind", NORTHWIND, vec![authorization(NORTHWIND_GROUP, "Group", READER)]).await;
    let subs = [contoso_sub.as_str(), fabrikam_sub.as_str(), northwind_sub.as_str()];
    each_engineer_gets_exactly_their_delegations(&setup, &subs).await;
    views_work_unchanged(&setup, &admin, &dir, &contoso_sub, &fabrikam_sub).await;
    let jit_sub = just_in_time_access_works_unchanged(&setup, &admin).await;
    revoking_a_delegation_turns_200_into_403(&setup, &admin, &contoso_sub, &northwind_sub).await;
    key_rotation_under_load_breaks_no_request(&setup, &jit_sub).await;
    every_replica_serves_the_same_keys_and_one_without_keys_is_not_ready(&setup, &dir, &fabrikam_sub).await;
    the_broker_stopped_issued_tokens_keep_working(&setup, main, &jit_sub).await;
    eprintln!("federation suite: {:.1} s", started.elapsed().as_secs_f64());
}

/// Direct tokens of a managing tenant's own issuer are refused by the API server; the
/// broker's are accepted (once the API server's authenticator has read the broker's discovery).
async fn the_api_server_trusts_the_broker_only(setup: &Setup) {
    let direct = mint(setup, "contoso", &TokenRequest::new(SAME_OID));
    assert_eq!(list_pods(&direct, "default").await, 401, "the API server must not trust a tenant's own issuer");
    // Only a tenant a delegation names may exchange: none yet, so a throwaway delegation.
    let admin = client_for(&kubeconfig()).await;
    let sub = delegated(&admin, "fed-probe", CONTOSO, vec![authorization(SAME_OID, "User", READER)]).await;
    let token = exchanged(setup, &mint(setup, "contoso", &TokenRequest::new(SAME_OID)));
    eventually("the API server accepts the broker's tokens", || async {
        who(&token).await.as_deref() == Some(projected(CONTOSO, SAME_OID).as_str())
    })
    .await;
    let api: Api<RegistrationAssignment> = Api::namespaced(admin.clone(), &sub);
    delete(&api, "offer").await;
}

async fn refused_subject_tokens_grant_nothing_and_tell_nothing(setup: &Setup, main: &Replica) {
    // Contoso's keys fetched (it was delegated a moment ago), so that each refusal below is
    // for its own reason.
    exchanged(setup, &mint(setup, "contoso", &TokenRequest::new(SAME_OID)));
    let refused = [
        ("a tenant no delegation names", mint(setup, "northwind", &TokenRequest::new(NORTHWIND_ENGINEER))),
        (
            "forged (a key the tenant never published)",
            mint(setup, "contoso", &TokenRequest::new(SAME_OID).unknown_key()),
        ),
        ("expired", mint(setup, "contoso", &TokenRequest::new(SAME_OID).expired())),
        ("not yet valid", mint(setup, "contoso", &TokenRequest::new(SAME_OID).not_yet_valid())),
        ("for another audience", mint(setup, "contoso", &TokenRequest::new(SAME_OID).audience("api://someone-else"))),
        // Contoso's issuer and key, Fabrikam's tenant (which is delegated).
        ("of another tenant", mint(setup, "contoso", &TokenRequest::new(SAME_OID).tid(FABRIKAM))),
        ("not a token", "not.a.token".to_string()),
    ];
    let mut answers = BTreeSet::new();
    for (what, subject) in &refused {
        let (status, body) = exchange_at(&setup.issuer, &setup.ca, subject).expect("the broker answers");
        assert_eq!(status, 400, "a subject token {what}: {body}");
        assert_eq!(body["error"], "invalid_grant", "a subject token {what}: {body}");
        assert!(body.get("access_token").is_none());
        answers.insert(body.to_string());
    }
    assert_eq!(answers.len(), 1, "every refusal must read the same (no oracle): {answers:?}");
    // The reasons are the server's to know: logged and counted.
    let metrics = main.metrics();
    for reason in [
        "tenant_not_delegated",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "issuer_mismatch",
        "malformed",
    ] {
        assert!(
            metrics.contains(&format!("kube_lighthouse_federation_refusals_total{{reason=\"{reason}\"}}")),
            "no refusal counted for {reason}:\n{metrics}"
        );
    }
    // Malformed requests say what is wrong with them.
    let (status, body) =
        post_token(&setup.issuer, &setup.ca, &[("grant_type", EXCHANGE), ("subject_token_type", JWT)]).expect("answer");
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert!(body["error_description"].as_str().unwrap_or_default().contains("subject_token"), "{body}");
    let (status, body) = post_token(&setup.issuer, &setup.ca, &[("grant_type", "password")]).expect("answer");
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")), "{body}");
}

async fn each_engineer_gets_exactly_their_delegations(setup: &Setup, subs: &[&str; 3]) {
    let contoso = exchanged(setup, &mint(setup, "contoso", &TokenRequest::new(SAME_OID)));
    let fabrikam = exchanged(setup, &mint(setup, "fabrikam", &TokenRequest::new(SAME_OID)));
    let northwind =
        exchanged(setup, &mint(setup, "northwind", &TokenRequest::new(NORTHWIND_ENGINEER).group(NORTHWIND_GROUP)));
    // The same object ID in two tenants: two identities.
    assert_eq!(who(&contoso).await, Some(projected(CONTOSO, SAME_OID)));
    assert_eq!(who(&fabrikam).await, Some(projected(FABRIKAM, SAME_OID)));
    assert_eq!(who(&northwind).await, Some(projected(NORTHWIND, NORTHWIND_ENGINEER)));
    for (who, token, own) in [("contoso", &contoso, 0), ("fabrikam", &fabrikam, 1), ("northwind", &northwind, 2)] {
        let client = client_with_token(token).await;
        for (i, sub) in subs.iter().enumerate() {
            let expected = if i == own { 200 } else { 403 };
            expect_list_pods(&client, sub, expected, who).await;
        }
        expect_list_pods(&client, "default", 403, who).await;
    }
    // kubectl with the broker's token, as an engineer's kubeconfig has it.
    let dir = std::env::temp_dir().join(unique("federation-kubectl"));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = token_kubeconfig(&kubeconfig(), &fabrikam, &dir, "fabrikam-engineer");
    kubectl(&config, &["get", "pods", "-n", subs[1]]);
    let refused = Command::new("kubectl").env("KUBECONFIG", &config).args(["get", "pods", "-n", subs[0]]).output();
    assert!(!refused.expect("kubectl").status.success(), "fabrikam's engineer listed contoso's customer's pods");
}

async fn views_work_unchanged(setup: &Setup, _admin: &Client, dir: &Path, contoso_sub: &str, fabrikam_sub: &str) {
    register_api_service(&kubeconfig(), setup.port, &setup.ca, dir);
    let _registration = ApiServiceRegistration(kubeconfig());
    let token = exchanged(setup, &mint(setup, "contoso", &TokenRequest::new(SAME_OID)));
    let config = token_kubeconfig(&kubeconfig(), &token, dir, "contoso-views");
    let customer = |sub: &str| {
        let out = kubectl(
            &kubeconfig(),
            &["get", "namespace", sub, "-o", "jsonpath={.metadata.labels.kubelighthouse\\.io/tenant-id}"],
        );
        out.trim().to_string()
    };
    let (mine, theirs) = (customer(contoso_sub), customer(fabrikam_sub));
    let table = kubectl(&config, &["get", "customers"]);
    assert!(table.contains(&mine), "contoso's engineer does not see their customer {mine}:\n{table}");
    assert!(!table.contains(&theirs), "contoso's engineer sees fabrikam's customer {theirs}:\n{table}");
    // The report a hub reads names this broker: how the tenant's engineers sign in here
    // (docs/fleet.md, `kubectl lighthouse use`).
    let report =
        kubectl(&kubeconfig(), &["get", "--raw", &format!("/apis/view.kubelighthouse.io/v1alpha1/reports/{CONTOSO}")]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("a report");
    assert_eq!(report["broker"], setup.issuer.as_str(), "{report}");
}

async fn just_in_time_access_works_unchanged(setup: &Setup, admin: &Client) -> String {
    let sub = unique("fed-jit");
    subscription(admin, &sub, &tenant_id()).await;
    let api: Api<kube_lighthouse::api::RegistrationDefinition> = Api::namespaced(admin.clone(), &sub);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": "offer", "namespace": sub},
        "spec": {
            "registrationDefinitionName": "Contoso on call",
            "managedByTenantId": CONTOSO,
            "authorizations": [authorization(JIT_ENGINEERS, "Group", READER)],
            "eligibleAuthorizations": [{
                "principalId": JIT_ENGINEERS, "principalType": "Group", "roleDefinitionId": CONTRIBUTOR,
                "justInTimeAccessPolicy": {"multiFactorAuthProvider": "Azure", "maximumActivationDuration": "PT1H"},
            }],
        },
    });
    apply_json(&api, "offer", body).await;
    assignment(admin, &sub, "offer", "offer").await;
    wait_for_assignment_state(admin, &sub, "offer", "Succeeded").await;
    let engineer = |amr: &[&str]| {
        let request = TokenRequest::new(JIT_ENGINEER)
            .group(JIT_ENGINEERS)
            .amr(amr.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        exchanged(setup, &mint(setup, "contoso", &request))
    };
    let activation = |name: &str| -> RoleActivation {
        serde_json::from_value(json!({
            "apiVersion": "activation.kubelighthouse.io/v1alpha1",
            "kind": "RoleActivation",
            "metadata": {"name": name},
            "spec": {
                "registrationAssignmentRef": {"name": "offer"},
                "roleDefinitionId": CONTRIBUTOR,
                "duration": "PT1H",
                "justification": "Outage 4711, through the broker",
            },
        }))
        .expect("activation")
    };
    // Password only: the policy asks for MFA, which the broker carries over from `amr`.
    let password = client_with_token(&engineer(&["pwd"])).await;
    let api: Api<RoleActivation> = Api::namespaced(password.clone(), &sub);
    let refused = api.create(&PostParams::default(), &activation("no-mfa")).await;
    match refused {
        Err(kube::Error::Api(s)) => assert!(s.message.contains("MultiFactorAuthRequired"), "{s:?}"),
        other => panic!("an activation without MFA was not refused: {other:?}"),
    }
    let mfa = client_with_token(&engineer(&["pwd", "mfa"])).await;
    let api: Api<RoleActivation> = Api::namespaced(mfa.clone(), &sub);
    api.create(&PostParams::default(), &activation("with-mfa")).await.expect("an MFA sign-in activates");
    let admin_api: Api<RoleActivation> = Api::namespaced(admin.clone(), &sub);
    eventually("the activation is Active", || async {
        admin_api.get_opt("with-mfa").await.ok().flatten().and_then(|a| a.status).and_then(|s| s.phase)
            == Some(ActivationPhase::Active)
    })
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(mfa, &sub);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "jit-write"}})).expect("cm");
    eventually("the activated engineer may write", || async {
        configmaps.create(&PostParams { dry_run: true, ..Default::default() }, &cm).await.is_ok()
    })
    .await;
    sub
}

async fn revoking_a_delegation_turns_200_into_403(
    setup: &Setup,
    admin: &Client,
    contoso_sub: &str,
    northwind_sub: &str,
) {
    let token = exchanged(setup, &mint(setup, "contoso", &TokenRequest::new(SAME_OID)));
    let client = client_with_token(&token).await;
    expect_list_pods(&client, contoso_sub, 200, "contoso's engineer").await;
    let api: Api<RegistrationAssignment> = Api::namespaced(admin.clone(), contoso_sub);
    delete(&api, "offer").await;
    expect_list_pods(&client, contoso_sub, 403, "contoso's engineer, after the revocation").await;
    // Northwind's only delegation goes: its engineers cannot exchange any more.
    let subject = mint(setup, "northwind", &TokenRequest::new(NORTHWIND_ENGINEER).group(NORTHWIND_GROUP));
    assert_eq!(exchange_at(&setup.issuer, &setup.ca, &subject).expect("answer").0, 200);
    let api: Api<RegistrationAssignment> = Api::namespaced(admin.clone(), northwind_sub);
    delete(&api, "offer").await;
    eventually("northwind's engineers are refused once no delegation names their tenant", || async {
        exchange_at(&setup.issuer, &setup.ca, &subject).expect("answer").0 == 400
    })
    .await;
}

/// Exchanges and real requests, two at a time, until tokens of three signing keys have been
/// used (the keys rotate every few seconds): every one succeeds.
async fn key_rotation_under_load_breaks_no_request(setup: &Setup, sub: &str) {
    use std::sync::{Arc, Mutex};
    let subject = mint(setup, "contoso", &TokenRequest::new(JIT_ENGINEER).group(JIT_ENGINEERS));
    let first = exchanged(setup, &subject);
    let kids = Arc::new(Mutex::new(BTreeSet::from([kid_of(&first)])));
    // Not a timing assertion: a generous bound on waiting for three rotations to happen at all.
    let give_up = Instant::now() + PATIENCE + Duration::from_secs(30);
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (subject, issuer, ca, sub) = (subject.clone(), setup.issuer.clone(), setup.ca.clone(), sub.to_string());
        let kids = kids.clone();
        workers.push(tokio::spawn(async move {
            let mut requests = 0;
            while kids.lock().expect("kids").len() < 3 {
                assert!(Instant::now() < give_up, "the keys did not rotate twice: {:?}", kids.lock().expect("kids"));
                let (status, body) = tokio::task::spawn_blocking({
                    let (issuer, ca, subject) = (issuer.clone(), ca.clone(), subject.clone());
                    move || exchange_at(&issuer, &ca, &subject)
                })
                .await
                .expect("join")
                .expect("the broker answers");
                assert_eq!(status, 200, "an exchange failed during rotation: {body}");
                let token = body["access_token"].as_str().expect("token").to_string();
                let kid = kid_of(&token);
                assert_eq!(list_pods(&token, &sub).await, 200, "a request failed during rotation (kid {kid})");
                kids.lock().expect("kids").insert(kid);
                requests += 1;
            }
            requests
        }));
    }
    let mut requests = 0;
    for worker in workers {
        requests += worker.await.expect("worker");
    }
    let kids = kids.lock().expect("kids").clone();
    eprintln!("rotation under load: {requests} exchanges and requests, tokens of {} signing keys", kids.len());
    // A token signed before the rotations still verifies, and its key is still published.
    assert_eq!(list_pods(&first, sub).await, 200, "a token issued before the rotations stopped working");
    assert!(jwks(setup.port, &setup.ca).is_superset(&kids), "a key was retired while its tokens were valid");
}

async fn every_replica_serves_the_same_keys_and_one_without_keys_is_not_ready(
    setup: &Setup,
    dir: &Path,
    fabrikam_sub: &str,
) {
    // A second replica: follows (the main one holds the Lease), reads the same Secret; it is
    // configured with an allow-list of Fabrikam only, which narrows who may exchange there.
    let mut follower =
        Replica::start(setup, dir, "follower", free_port(), &[("KUBE_LIGHTHOUSE_FEDERATION_TENANTS", FABRIKAM)]);
    follower.wait_ready();
    let follower_port = follower.port;
    eventually("both replicas serve the same JWKS", || async {
        jwks(setup.port, &setup.ca) == jwks(follower_port, &setup.ca)
    })
    .await;
    // Its tokens are the same issuer's: the API server accepts them.
    let base = format!("https://127.0.0.1:{}/federation", follower.port);
    let fabrikam = mint(setup, "fabrikam", &TokenRequest::new(SAME_OID));
    let (status, body) = exchange_at(&base, &setup.ca, &fabrikam).expect("the follower answers");
    assert_eq!(status, 200, "{body}");
    assert_eq!(list_pods(body["access_token"].as_str().expect("token"), fabrikam_sub).await, 200);
    // Contoso is delegated (the main replica exchanges its token) but outside this allow-list.
    let subject = mint(setup, "contoso", &TokenRequest::new(JIT_ENGINEER).group(JIT_ENGINEERS));
    assert_eq!(exchange_at(&setup.issuer, &setup.ca, &subject).expect("answer").0, 200);
    let (status, body) = exchange_at(&base, &setup.ca, &subject).expect("the follower answers");
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert!(
        follower.metrics().contains("kube_lighthouse_federation_refusals_total{reason=\"tenant_not_allowed\"}"),
        "the refusal is counted as outside the allow-list"
    );
    follower.stop();

    // A replica that cannot read its keys (a Secret that does not exist, and it does not lead):
    // not ready, and it says so; exchanges get 503.
    let missing = unique("no-such-keys");
    let orphan =
        Replica::start(setup, dir, "orphan", free_port(), &[("KUBE_LIGHTHOUSE_FEDERATION_KEYS_SECRET", &missing)]);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = orphan.readyz();
        if status == 503 && body.contains("signing keys") {
            break;
        }
        assert!(Instant::now() < deadline, "the replica without keys never said so: {status} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let base = format!("https://127.0.0.1:{}/federation", orphan.port);
    let (status, body) = exchange_at(&base, &setup.ca, &subject).expect("the orphan answers");
    assert_eq!((status, body["error"].as_str()), (503, Some("temporarily_unavailable")), "{body}");
    let secrets: Api<Secret> = Api::namespaced(client_for(&kubeconfig()).await, "default");
    assert!(secrets.get_opt(&missing).await.expect("get").is_none(), "a follower must not make keys");
    orphan.stop();
}

async fn the_broker_stopped_issued_tokens_keep_working(setup: &Setup, main: Replica, sub: &str) {
    let token = exchanged(setup, &mint(setup, "contoso", &TokenRequest::new(JIT_ENGINEER).group(JIT_ENGINEERS)));
    main.stop();
    assert_eq!(list_pods(&token, sub).await, 200, "a token issued before the broker stopped must keep working");
    let subject = mint(setup, "contoso", &TokenRequest::new(JIT_ENGINEER).group(JIT_ENGINEERS));
    match exchange_at(&setup.issuer, &setup.ca, &subject) {
        Err(e) => assert!(e.contains("onnect"), "new exchanges fail at the connection: {e}"),
        Ok(answer) => panic!("an exchange succeeded with the broker stopped: {answer:?}"),
    }
}
