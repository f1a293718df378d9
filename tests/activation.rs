//! Just-in-time access (SPEC §9), on the real control plane, with real tokens: managing-tenant
//! engineers activate their eligible Contributor authorization with their own token, approvers
//! of their tenant approve with theirs, the engineer's real requests succeed while the
//! activation is Active and fail once it has expired, been canceled or been revoked.
//!
//! One controller binary with its webhooks (mutating stamp and validating verdicts) serves
//! every scenario, which run one after the other in a single test: a controller restart is
//! one of them, and no second controller may revoke behind its back.
//!
//! Time: the controller runs with `KUBE_LIGHTHOUSE_TEST_TIME_SCALE=600` (test-only; see
//! docs/just-in-time.md): a PT30M activation, the policy minimum, still validated as
//! written, lasts 3 s.

mod common;

use std::time::{Duration, Instant};

use common::webhook::Deployed;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kl_token_issuer::TokenRequest;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Client;
use kube_lighthouse::api::{ActivationPhase, RegistrationAssignment, RoleActivation};
use serde_json::json;

const ENGINEERS: &str = "00000000-0000-0000-0000-0000000000c3";
const ENGINEER: &str = "00000000-0000-0000-0000-00000000e001";
const COLLEAGUE: &str = "00000000-0000-0000-0000-00000000e002";
const LEADS: &str = "00000000-0000-0000-0000-0000000000d5";
const LEAD: &str = "00000000-0000-0000-0000-0000000000d4";
/// An engineer who is also a lead: an approver, but never of their own activation.
const ENGINEER_LEAD: &str = "00000000-0000-0000-0000-00000000e003";
const SCALE: u32 = 600;

/// A client signed in with a token of the managing tenant's own issuer.
fn signed(user: &str, groups: &[&str], amr: &[&str]) -> impl std::future::Future<Output = Client> {
    let request = TokenRequest::new(user).groups(groups.iter().map(|g| g.to_string())).amr(amr.iter().copied());
    let token = token(MSP_TENANT, &request).expect("the managing tenant's issuer");
    async move { client_with_token(&token).await }
}

/// A subscription whose definition makes ENGINEERS eligible for Contributor with `policy`,
/// and gives them standing Reader; assigned and in force.
async fn delegated(admin: &Client, prefix: &str, policy: serde_json::Value) -> String {
    let sub = unique(prefix);
    subscription(admin, &sub, &tenant_id()).await;
    let api: Api<kube_lighthouse::api::RegistrationDefinition> = Api::namespaced(admin.clone(), &sub);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": "contoso", "namespace": sub},
        "spec": {
            "registrationDefinitionName": "Contoso",
            "managedByTenantId": MSP_TENANT,
            "authorizations": [authorization(ENGINEERS, "Group", READER)],
            "eligibleAuthorizations": [{
                "principalId": ENGINEERS, "principalType": "Group", "roleDefinitionId": CONTRIBUTOR,
                "justInTimeAccessPolicy": policy,
            }],
        },
    });
    apply_json(&api, "contoso", body).await;
    assignment(admin, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(admin, &sub, "contoso", "Succeeded").await;
    sub
}

/// Waits until the webhook judges requests (its caches are synced): a dry-run definition in a
/// namespace that is no subscription is refused for that, not because the controller starts.
async fn webhook_ready(admin: &Client) {
    let api: Api<kube_lighthouse::api::RegistrationDefinition> = Api::namespaced(admin.clone(), "default");
    let probe: kube_lighthouse::api::RegistrationDefinition = serde_json::from_value(json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": "readiness-probe"},
        "spec": {"registrationDefinitionName": "probe", "managedByTenantId": MSP_TENANT,
                 "authorizations": [authorization(ENGINEERS, "Group", READER)]},
    }))
    .expect("probe");
    eventually("the webhook judges requests", || async {
        match api.create(&PostParams { dry_run: true, ..Default::default() }, &probe).await {
            Err(kube::Error::Api(s)) => {
                !s.message.contains("starting") && !s.message.contains("failed calling webhook")
            }
            _ => false,
        }
    })
    .await;
}

fn activation_body(name: &str, duration: &str) -> RoleActivation {
    serde_json::from_value(json!({
        "apiVersion": "activation.kubelighthouse.io/v1alpha1",
        "kind": "RoleActivation",
        "metadata": {"name": name, "annotations": {"activation.kubelighthouse.io/requester": "{\"username\":\"forged\"}"}},
        "spec": {
            "registrationAssignmentRef": {"name": "contoso"},
            "roleDefinitionId": CONTRIBUTOR,
            "duration": duration,
            "justification": "Outage 4711, rolling back the web tier",
            "ticket": {"system": "ServiceNow", "number": "INC4711"},
        },
    }))
    .expect("activation")
}

async fn activate(client: &Client, ns: &str, name: &str, duration: &str) -> Result<RoleActivation, kube::Error> {
    Api::<RoleActivation>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &activation_body(name, duration))
        .await
}

async fn review(client: &Client, ns: &str, activation: &str, decision: &str) -> Result<(), kube::Error> {
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &kube::discovery::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("activation.kubelighthouse.io", "v1alpha1", "ActivationReview"),
            "activationreviews",
        ),
    );
    let body: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "activation.kubelighthouse.io/v1alpha1",
        "kind": "ActivationReview",
        "metadata": {"name": unique("review"), "namespace": ns},
        "spec": {"roleActivationRef": {"name": activation}, "decision": decision, "reason": "confirmed with customer"},
    }))
    .expect("review");
    api.create(&PostParams::default(), &body).await.map(|_| ())
}

async fn activation(admin: &Client, ns: &str, name: &str) -> Option<RoleActivation> {
    Api::<RoleActivation>::namespaced(admin.clone(), ns).get_opt(name).await.expect("get activation")
}

async fn phase(admin: &Client, ns: &str, name: &str) -> Option<ActivationPhase> {
    activation(admin, ns, name).await.and_then(|a| a.status.and_then(|s| s.phase))
}

async fn wait_phase(admin: &Client, ns: &str, name: &str, expected: ActivationPhase) {
    eventually(&format!("{ns}/{name} is {expected:?}"), || async { phase(admin, ns, name).await == Some(expected) })
        .await;
}

/// A real write with the client's own identity: create a ConfigMap (server-side dry run:
/// authorized exactly like a real create, stores nothing).
async fn can_write(client: &Client, ns: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": unique("deploy")}, "data": {"v": "2"}})).expect("cm");
    match api.create(&PostParams { dry_run: true, ..Default::default() }, &cm).await {
        Ok(_) => true,
        Err(kube::Error::Api(s)) if s.code == 403 => false,
        Err(e) => panic!("create configmap in {ns}: {e}"),
    }
}

fn refused_with(result: Result<impl std::fmt::Debug, kube::Error>, needle: &str) {
    match result {
        Err(kube::Error::Api(s)) => assert!(s.message.contains(needle), "expected {needle:?} in: {}", s.message),
        other => panic!("expected a refusal with {needle:?}, got {other:?}"),
    }
}

async fn events_of(admin: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), ns);
    let list = api.list(&ListParams::default()).await.expect("events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

async fn bindings_of(admin: &Client, ns: &str, activation: &str) -> Vec<RoleBinding> {
    let api: Api<RoleBinding> = Api::namespaced(admin.clone(), ns);
    api.list(&ListParams::default().labels(&format!("kubelighthouse.io/activation={activation}")))
        .await
        .expect("bindings")
        .items
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn just_in_time_access() {
    let path = kubeconfig();
    if issuers().is_empty() {
        eprintln!("SKIPPED: no local token issuers");
        return;
    }
    let admin = client_for(&path).await;
    let scale = SCALE.to_string();
    let env =
        [("KUBE_LIGHTHOUSE_TEST_TIME_SCALE", scale.as_str()), ("KUBE_LIGHTHOUSE_ACTIVATION_APPROVAL_TIMEOUT", "3600")];
    let deployed = Deployed::start_with(&path, true, &env);
    webhook_ready(&admin).await;

    without_approvers_grants_at_once_and_expires_on_time(&admin).await;
    approval_by_a_listed_approver_only(&admin).await;
    multi_factor_sign_in_is_required_when_the_policy_says_so(&admin).await;
    group_eligibility_grants_only_the_requesting_user(&admin).await;
    deleting_the_assignment_ends_an_active_activation(&admin).await;
    a_customer_admins_delete_revokes_at_once(&admin).await;
    the_plugin_walkthrough(&admin, &path).await;
    expiry_while_stopped_is_revoked_at_start(&admin, &path, deployed, &env).await;
}

async fn without_approvers_grants_at_once_and_expires_on_time(admin: &Client) {
    let ns = delegated(admin, "jit-now", json!({"maximumActivationDuration": "PT1H"})).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    assert!(!can_write(&engineer, &ns).await, "standing Reader cannot write");

    // Above the policy: refused at create, naming the limit.
    refused_with(activate(&engineer, &ns, "too-long", "PT2H").await, "DurationAbovePolicy");

    let started = Instant::now();
    let created =
        activate(&engineer, &ns, "fix-4711", "PT30M").await.expect("the engineer activates with their own token");
    let stamp = created.metadata.annotations.unwrap_or_default().remove("activation.kubelighthouse.io/requester");
    assert!(stamp.as_deref().is_some_and(|s| s.contains(&projected(MSP_TENANT, ENGINEER))), "stamped: {stamp:?}");
    eventually("the engineer's real write succeeds", || async { can_write(&engineer, &ns).await }).await;
    let granted_in = started.elapsed();
    eprintln!("activation granted in {granted_in:?}");
    assert!(granted_in < Duration::from_secs(3), "granted in {granted_in:?}");

    let a = activation(admin, &ns, "fix-4711").await.expect("activation");
    let status = a.status.expect("status");
    assert_eq!(status.phase, Some(ActivationPhase::Active));
    assert_eq!(status.requester.expect("requester").username, projected(MSP_TENANT, ENGINEER));
    let expires_at = status.expires_at.expect("expiresAt").0;
    let from = status.active_from.expect("activeFrom").0;
    assert_eq!(expires_at.duration_since(from), jiff::SignedDuration::from_secs(1800 / i64::from(SCALE)));
    // A spec change is refused, and so is a forged requester.
    let api: Api<RoleActivation> = Api::namespaced(admin.clone(), &ns);
    let patch = json!({"spec": {"duration": "PT1H"}});
    refused_with(api.patch("fix-4711", &Default::default(), &kube::api::Patch::Merge(&patch)).await, "SpecImmutable");
    let patch =
        json!({"metadata": {"annotations": {"activation.kubelighthouse.io/requester": "{\"username\":\"x\"}"}}});
    refused_with(api.patch("fix-4711", &Default::default(), &kube::api::Patch::Merge(&patch)).await, "StampChanged");

    eventually("the access is gone at expiry", || async { !can_write(&engineer, &ns).await }).await;
    let late = jiff::Timestamp::now().duration_since(expires_at);
    eprintln!("revoked {late} after expiresAt");
    assert!(late < jiff::SignedDuration::from_secs(2), "revoked {late} after expiresAt");
    wait_phase(admin, &ns, "fix-4711", ActivationPhase::Expired).await;
    assert!(bindings_of(admin, &ns, "fix-4711").await.is_empty());
    let events = events_of(admin, &ns, "fix-4711").await;
    assert!(events.iter().any(|(r, _)| r == "ActivationActive"), "{events:?}");
    assert!(events.iter().any(|(r, _)| r == "ActivationExpired"), "{events:?}");
}

async fn approval_by_a_listed_approver_only(admin: &Client) {
    let policy = json!({"maximumActivationDuration": "PT4H", "managedByTenantApprovers": [{"principalId": LEADS}]});
    let ns = delegated(admin, "jit-approve", policy).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    activate(&engineer, &ns, "deploy-4712", "PT4H").await.expect("activate");
    wait_phase(admin, &ns, "deploy-4712", ActivationPhase::Pending).await;
    assert!(!can_write(&engineer, &ns).await, "nothing before approval");

    // A colleague who is no approver: RBAC has nothing for them to review with.
    let colleague = signed(COLLEAGUE, &[ENGINEERS], &["pwd"]).await;
    refused_with(review(&colleague, &ns, "deploy-4712", "Approve").await, "forbidden");
    // An engineer who is also a lead may approve others, never themself.
    let engineer_lead = signed(ENGINEER_LEAD, &[ENGINEERS, LEADS], &["pwd"]).await;
    activate(&engineer_lead, &ns, "own-4713", "PT30M").await.expect("activate");
    wait_phase(admin, &ns, "own-4713", ActivationPhase::Pending).await;
    refused_with(review(&engineer_lead, &ns, "own-4713", "Approve").await, "SelfApproval");
    assert_eq!(phase(admin, &ns, "own-4713").await, Some(ActivationPhase::Pending));

    let lead = signed(LEAD, &[LEADS], &["pwd", "mfa"]).await;
    review(&lead, &ns, "deploy-4712", "Approve").await.expect("the lead approves");
    eventually("the engineer deploys after approval", || async { can_write(&engineer, &ns).await }).await;
    let status = activation(admin, &ns, "deploy-4712").await.and_then(|a| a.status).expect("status");
    assert_eq!(status.reviews.len(), 1);
    assert_eq!(status.reviews[0].reviewer, projected(MSP_TENANT, LEAD));
    // No second decision on an activation that is no longer Pending.
    refused_with(review(&lead, &ns, "deploy-4712", "Deny").await, "NotPending");

    // The lead denies the other one.
    review(&lead, &ns, "own-4713", "Deny").await.expect("deny");
    wait_phase(admin, &ns, "own-4713", ActivationPhase::Denied).await;

    // The engineer deactivates: Canceled, access gone.
    Api::<RoleActivation>::namespaced(engineer.clone(), &ns)
        .delete("deploy-4712", &DeleteParams::default())
        .await
        .expect("deactivate");
    eventually("deactivation removes the access", || async { !can_write(&engineer, &ns).await }).await;
    eventually("an Event says Canceled by the engineer", || async {
        events_of(admin, &ns, "deploy-4712")
            .await
            .iter()
            .any(|(r, n)| r == "ActivationCanceled" && n.contains(&projected(MSP_TENANT, ENGINEER)))
    })
    .await;
}

async fn multi_factor_sign_in_is_required_when_the_policy_says_so(admin: &Client) {
    let ns =
        delegated(admin, "jit-mfa", json!({"multiFactorAuthProvider": "Azure", "maximumActivationDuration": "PT1H"}))
            .await;
    let password_only = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    refused_with(activate(&password_only, &ns, "no-mfa", "PT30M").await, "MultiFactorAuthRequired");
    let with_mfa = signed(ENGINEER, &[ENGINEERS], &["pwd", "mfa"]).await;
    activate(&with_mfa, &ns, "with-mfa", "PT1H").await.expect("MFA sign-in activates");
    wait_phase(admin, &ns, "with-mfa", ActivationPhase::Active).await;
}

async fn group_eligibility_grants_only_the_requesting_user(admin: &Client) {
    let ns = delegated(admin, "jit-group", json!({"maximumActivationDuration": "PT1H"})).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    let colleague = signed(COLLEAGUE, &[ENGINEERS], &["pwd"]).await;
    activate(&engineer, &ns, "mine", "PT1H").await.expect("activate");
    eventually("the requester writes", || async { can_write(&engineer, &ns).await }).await;
    assert!(!can_write(&colleague, &ns).await, "the rest of the group gets nothing");
    let bindings = bindings_of(admin, &ns, "mine").await;
    assert_eq!(bindings.len(), 1);
    let subjects = bindings[0].subjects.clone().unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!((subjects[0].kind.as_str(), subjects[0].name.clone()), ("User", projected(MSP_TENANT, ENGINEER)));
    // The colleague cannot activate on the engineer's behalf either: the stamp is theirs.
    activate(&colleague, &ns, "theirs", "PT1H").await.expect("activate");
    let theirs = activation(admin, &ns, "theirs").await.expect("activation");
    let stamp = theirs.metadata.annotations.unwrap_or_default().remove("activation.kubelighthouse.io/requester");
    assert!(stamp.as_deref().is_some_and(|s| s.contains(&projected(MSP_TENANT, COLLEAGUE))), "{stamp:?}");
}

async fn deleting_the_assignment_ends_an_active_activation(admin: &Client) {
    let ns = delegated(admin, "jit-unassign", json!({"maximumActivationDuration": "PT1H"})).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    activate(&engineer, &ns, "during", "PT1H").await.expect("activate");
    eventually("active", || async { can_write(&engineer, &ns).await }).await;
    Api::<RegistrationAssignment>::namespaced(admin.clone(), &ns)
        .delete("contoso", &DeleteParams::default())
        .await
        .expect("delete assignment");
    eventually("the activation's access goes with the assignment", || async { !can_write(&engineer, &ns).await }).await;
    wait_phase(admin, &ns, "during", ActivationPhase::Revoked).await;
}

async fn a_customer_admins_delete_revokes_at_once(admin: &Client) {
    let ns = delegated(admin, "jit-admin", json!({"maximumActivationDuration": "PT1H"})).await;
    // The customer's own admin: `admin` in the namespace, which the chart extends (aggregation)
    // with deleting RoleActivations.
    let aggregated: k8s_openapi::api::rbac::v1::ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "kube-lighthouse-test-activations-aggregate-to-admin",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
        "rules": [{"apiGroups": ["activation.kubelighthouse.io"], "resources": ["roleactivations", "activationreviews"],
            "verbs": ["create", "delete", "get", "list", "watch"]}],
    }))
    .expect("clusterrole");
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    let mut body = serde_json::to_value(&aggregated).expect("json");
    body["apiVersion"] = json!("rbac.authorization.k8s.io/v1");
    body["kind"] = json!("ClusterRole");
    apply_json(&roles, "kube-lighthouse-test-activations-aggregate-to-admin", body).await;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "customer-admin", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "customer-admin"}],
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind admin");

    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    activate(&engineer, &ns, "suspicious", "PT1H").await.expect("activate");
    eventually("active", || async { can_write(&engineer, &ns).await }).await;
    let customer = client_as("customer-admin", &[]).await;
    let api: Api<RoleActivation> = Api::namespaced(customer, &ns);
    eventually("the customer admin may delete activations", || async {
        match api.delete("suspicious", &DeleteParams::default()).await {
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.code == 403 => false,
            Err(e) => panic!("delete: {e}"),
        }
    })
    .await;
    let started = Instant::now();
    eventually("the revocation is immediate", || async { !can_write(&engineer, &ns).await }).await;
    eprintln!("revoked {:?} after the customer's delete", started.elapsed());
    eventually("an Event says Revoked by the customer admin", || async {
        events_of(admin, &ns, "suspicious")
            .await
            .iter()
            .any(|(r, n)| r == "ActivationRevoked" && n.contains("customer-admin"))
    })
    .await;
}

async fn expiry_while_stopped_is_revoked_at_start(
    admin: &Client,
    path: &std::path::Path,
    deployed: Deployed,
    env: &[(&str, &str)],
) {
    let ns = delegated(admin, "jit-restart", json!({"maximumActivationDuration": "PT1H"})).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    activate(&engineer, &ns, "overnight", "PT30M").await.expect("activate");
    eventually("active", || async { can_write(&engineer, &ns).await }).await;
    let expires_at = activation(admin, &ns, "overnight").await.and_then(|a| a.status?.expires_at).expect("expiresAt").0;
    drop(deployed);
    // Stopped: nobody revokes, and the access outlives its expiry.
    let wait = expires_at.duration_since(jiff::Timestamp::now()) + jiff::SignedDuration::from_secs(2);
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    assert!(can_write(&engineer, &ns).await, "no controller, no revocation (yet)");

    let restarted = Deployed::start_with(path, true, env);
    webhook_ready(admin).await;
    eventually("revoked at start", || async { !can_write(&engineer, &ns).await }).await;
    wait_phase(admin, &ns, "overnight", ActivationPhase::Expired).await;
    // Before anything else: the revocation is logged before the controller reconciles
    // anything ("started": its reconcilers receive their first trigger).
    let log = std::fs::read_to_string(restarted.dir.join("controller.log")).expect("log");
    let revoked = log.find("expired while stopped: revoked at start").expect("revocation logged");
    let started = log.find("kube-lighthouse controller started").expect("start logged");
    assert!(revoked < started, "revoked at start, before any reconcile");
    drop(restarted);
}

/// A kubeconfig that signs in with `token` (no impersonation), for the plugin binary.
fn token_kubeconfig(admin: &std::path::Path, token: &str, file: &std::path::Path) {
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(admin).expect("kubeconfig")).expect("yaml");
    for user in yaml["users"].as_sequence_mut().expect("users") {
        user["user"] = serde_yaml::to_value(json!({"token": token})).expect("token");
    }
    std::fs::write(file, serde_yaml::to_string(&yaml).expect("yaml")).expect("write kubeconfig");
}

/// `kubectl lighthouse …` with the kubeconfig `config`: (success, stdout, stderr).
fn plugin(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-lighthouse"))
        .arg("--kubeconfig")
        .arg(config)
        .args(args)
        .output()
        .expect("kubectl-lighthouse");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The walkthrough of docs/just-in-time.md, with the plugin: the engineer activates with
/// their own token and waits, a lead of their tenant approves, the engineer deploys,
/// and the access is gone at expiry.
async fn the_plugin_walkthrough(admin: &Client, path: &std::path::Path) {
    let policy = json!({"maximumActivationDuration": "PT4H", "managedByTenantApprovers": [{"principalId": LEADS}]});
    let ns = delegated(admin, "jit-plugin", policy).await;
    let dir = std::env::temp_dir().join(unique("jit-plugin"));
    std::fs::create_dir_all(&dir).expect("dir");
    let token_of = |user: &str, groups: &[&str]| {
        let request = TokenRequest::new(user).groups(groups.iter().map(|g| g.to_string())).amr(["pwd", "mfa"]);
        token(MSP_TENANT, &request).expect("issuer")
    };
    let engineer_config = dir.join("engineer");
    token_kubeconfig(path, &token_of(ENGINEER, &[ENGINEERS]), &engineer_config);
    let lead_config = dir.join("lead");
    token_kubeconfig(path, &token_of(LEAD, &[LEADS]), &lead_config);

    let engineer_config2 = engineer_config.clone();
    let ns2 = ns.clone();
    let waiting = std::thread::spawn(move || {
        plugin(
            &engineer_config2,
            &[
                "activate",
                "Contributor",
                "-n",
                &ns2,
                "--assignment",
                "contoso",
                "--for",
                "30m",
                "--reason",
                "Outage 4711",
                "--ticket",
                "ServiceNow:INC4711",
                "--name",
                "walkthrough",
                "--wait",
            ],
        )
    });
    eventually("the walkthrough's activation exists", || async {
        waiting.is_finished() || phase(admin, &ns, "walkthrough").await == Some(ActivationPhase::Pending)
    })
    .await;
    assert!(!waiting.is_finished(), "activate --wait ended early: {:?}", waiting.join());
    let (ok, listed, err) = plugin(&lead_config, &["requests", "--to-approve", "-n", &ns]);
    assert!(ok && listed.contains("walkthrough") && listed.contains("Pending"), "{listed}{err}");
    let (ok, out, err) =
        plugin(&lead_config, &["approve", "walkthrough", "-n", &ns, "--reason", "confirmed with customer"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = waiting.join().expect("activate --wait");
    assert!(ok && out.contains("Active until"), "{out}{err}");
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd", "mfa"]).await;
    assert!(can_write(&engineer, &ns).await, "the engineer deploys");
    let (ok, mine, err) = plugin(&engineer_config, &["requests", "--mine", "-n", &ns, "-o", "wide"]);
    assert!(ok && mine.contains("Active") && mine.contains("Approve by"), "{mine}{err}");
    // Self-approval and a second review are refused with the webhook's reason.
    let (ok, _, err) = plugin(&lead_config, &["deny", "walkthrough", "-n", &ns, "--reason", "changed my mind"]);
    assert!(!ok && err.contains("NotPending"), "{err}");
    eventually("the access is gone at expiry", || async { !can_write(&engineer, &ns).await }).await;
    wait_phase(admin, &ns, "walkthrough", ActivationPhase::Expired).await;
    let (ok, out, err) = plugin(&engineer_config, &["deactivate", "walkthrough", "-n", &ns]);
    assert!(ok, "{out}{err}");
}
