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

use common::webhook::{post_review, Deployed};
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
    delegated_role(admin, prefix, CONTRIBUTOR, policy).await
}

/// As [`delegated`], with ENGINEERS eligible for the catalog role `role` (a GUID).
async fn delegated_role(admin: &Client, prefix: &str, role: &str, policy: serde_json::Value) -> String {
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
                "principalId": ENGINEERS, "principalType": "Group", "roleDefinitionId": role,
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
    activation_of(name, CONTRIBUTOR, duration, "Outage 4711, rolling back the web tier")
}

fn activation_of(name: &str, role: &str, duration: &str, justification: &str) -> RoleActivation {
    serde_json::from_value(json!({
        "apiVersion": "activation.kubelighthouse.io/v1alpha1",
        "kind": "RoleActivation",
        "metadata": {"name": name, "annotations": {"activation.kubelighthouse.io/requester": "{\"username\":\"forged\"}"}},
        "spec": {
            "registrationAssignmentRef": {"name": "contoso"},
            "roleDefinitionId": role,
            "duration": duration,
            "justification": justification,
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
    // The same binary serves the views API (which `kubectl lighthouse requests` reads).
    let (port, ca) = deployed.webhook.clone().expect("the webhook is served");
    common::views::register_api_service(&path, port, &ca, &deployed.dir);
    let views = common::views::ApiServiceRegistration(path.clone());

    without_approvers_grants_at_once_and_expires_on_time(&admin).await;
    approval_by_a_listed_approver_only(&admin).await;
    multi_factor_sign_in_is_required_when_the_policy_says_so(&admin).await;
    group_eligibility_grants_only_the_requesting_user(&admin).await;
    deleting_the_assignment_ends_an_active_activation(&admin).await;
    a_customer_admins_delete_revokes_at_once(&admin).await;
    the_plugin_walkthrough(&admin, &path).await;
    an_approval_never_carries_over_to_a_new_activation_of_the_same_name(&admin).await;
    a_pending_activation_times_out(&admin).await;
    admission_refuses_whoever_may_not_activate(&admin).await;
    an_activation_grants_exactly_the_eligible_role(&admin).await;
    deleting_the_definition_ends_its_activations(&admin).await;
    the_role_leaving_the_catalog_ends_its_activations(&admin).await;
    a_forged_admission_review_changes_nothing(&admin, &deployed).await;
    only_the_requester_and_its_approvers_see_an_activation(&admin, &path).await;
    drop(views);
    expiry_while_stopped_is_revoked_at_start(&admin, &path, deployed, &env).await;
    eligible_lists_what_the_caller_may_activate(&admin, &path).await;
    admission_serves_only_the_api_servers_client_certificate(&admin, &path, &env).await;
}

/// What `client` gets for `verb` on activation `name` in `ns` (or the list, without a name):
/// the HTTP status, 200 when allowed.
async fn activation_request(client: &Client, ns: &str, verb: &str, name: &str) -> u16 {
    let api: Api<RoleActivation> = Api::namespaced(client.clone(), ns);
    let result = match verb {
        "get" => api.get(name).await.map(|_| ()),
        "list" => api.list(&ListParams::default()).await.map(|_| ()),
        // Server-side dry run: authorized as a real delete, deletes nothing.
        "delete" => api.delete(name, &DeleteParams { dry_run: true, ..Default::default() }).await.map(|_| ()),
        other => panic!("verb {other}"),
    };
    match result {
        Ok(()) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("{verb} roleactivations {ns}/{name}: {e}"),
    }
}

/// Issue 26, items 6 and 14: any eligible principal (or approver) of any managing tenant
/// could read every activation in the namespace (justification, ticket, requester), and any
/// eligible principal end anyone's. Now, with real tokens of two managing tenants delegated
/// the same subscription: the requester reads and ends its own activation, a listed
/// approver reads it (and may not end it), a colleague of the same group and the other
/// tenant's eligible engineer neither read, list nor delete it; the plugin's `requests`
/// shows each caller exactly what it may read.
async fn only_the_requester_and_its_approvers_see_an_activation(admin: &Client, path: &std::path::Path) {
    let policy = json!({"maximumActivationDuration": "PT1H", "managedByTenantApprovers": [{"principalId": LEADS}]});
    let ns = delegated(admin, "jit-sight", policy.clone()).await;
    // The same customer delegates the subscription to a second managing tenant, whose
    // engineers (same group ID, their own tenant) are eligible for Contributor too.
    let api: Api<kube_lighthouse::api::RegistrationDefinition> = Api::namespaced(admin.clone(), &ns);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": "fabrikam", "namespace": ns},
        "spec": {
            "registrationDefinitionName": "Fabrikam",
            "managedByTenantId": OTHER_MSP_TENANT,
            "authorizations": [authorization(ENGINEERS, "Group", READER)],
            "eligibleAuthorizations": [{
                "principalId": ENGINEERS, "principalType": "Group", "roleDefinitionId": CONTRIBUTOR,
                "justInTimeAccessPolicy": policy,
            }],
        },
    });
    apply_json(&api, "fabrikam", body).await;
    assignment(admin, &ns, "fabrikam", "fabrikam").await;
    wait_for_assignment_state(admin, &ns, "fabrikam", "Succeeded").await;

    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    let colleague = signed(COLLEAGUE, &[ENGINEERS], &["pwd"]).await;
    let lead = signed(LEAD, &[LEADS], &["pwd"]).await;
    let other_token =
        token(OTHER_MSP_TENANT, &TokenRequest::new(ENGINEER).groups([ENGINEERS.to_string()]).amr(["pwd"]))
            .expect("the other tenant's issuer");
    let other = client_with_token(&other_token).await;
    activate(&engineer, &ns, "mine", "PT1H").await.expect("activate");
    // The other tenant's engineer activates too: its own activation stays its own.
    let mut theirs = activation_body("theirs", "PT1H");
    theirs.spec.registration_assignment_ref.name = "fabrikam".into();
    Api::<RoleActivation>::namespaced(other.clone(), &ns)
        .create(&PostParams::default(), &theirs)
        .await
        .expect("the other tenant activates");
    wait_phase(admin, &ns, "mine", ActivationPhase::Pending).await;
    wait_phase(admin, &ns, "theirs", ActivationPhase::Pending).await;

    eventually("the requester reads its own activation", || async {
        activation_request(&engineer, &ns, "get", "mine").await == 200
    })
    .await;
    eventually("the approver reads the activation it may review", || async {
        activation_request(&lead, &ns, "get", "mine").await == 200
    })
    .await;
    eventually("the other tenant's engineer reads its own", || async {
        activation_request(&other, &ns, "get", "theirs").await == 200
    })
    .await;
    assert_eq!(activation_request(&engineer, &ns, "delete", "mine").await, 200, "the requester may end its own");
    assert_eq!(activation_request(&lead, &ns, "delete", "mine").await, 403, "an approver never ends it");
    for (who, client) in [("a colleague of the same group", &colleague), ("the other tenant's engineer", &other)] {
        for verb in ["get", "delete"] {
            assert_eq!(activation_request(client, &ns, verb, "mine").await, 403, "{who} may not {verb} it");
        }
    }
    for (who, client) in [("the engineer", &engineer), ("the lead", &lead), ("the other tenant", &other)] {
        assert_eq!(activation_request(client, &ns, "list", "").await, 403, "{who} may not list activations");
    }
    for (who, client) in [("the engineer", &engineer), ("the lead", &lead), ("a colleague", &colleague)] {
        assert_eq!(activation_request(client, &ns, "get", "theirs").await, 403, "{who} may not read another tenant's");
    }
    assert_eq!(activation_request(&engineer, &ns, "delete", "theirs").await, 403);

    // The plugin shows each caller exactly what it may read (through the views API).
    let dir = std::env::temp_dir().join(unique("jit-sight"));
    std::fs::create_dir_all(&dir).expect("dir");
    let config_of = |tenant: &str, user: &str, groups: &[&str]| {
        let request = TokenRequest::new(user).groups(groups.iter().map(|g| g.to_string())).amr(["pwd"]);
        let config = dir.join(format!("{tenant}-{user}"));
        token_kubeconfig(path, &token(tenant, &request).expect("issuer"), &config);
        config
    };
    let shows = |config: &std::path::Path, args: &[&str]| {
        let (ok, out, err) = plugin(config, args);
        assert!(ok, "{args:?}: {out}{err}");
        // This namespace only: `-A` also shows the same engineer's activations elsewhere.
        out.lines()
            .filter(|l| l.contains(ns.as_str()) && (l.contains("mine") || l.contains("theirs")))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let engineer_config = config_of(MSP_TENANT, ENGINEER, &[ENGINEERS]);
    let lead_config = config_of(MSP_TENANT, LEAD, &[LEADS]);
    let colleague_config = config_of(MSP_TENANT, COLLEAGUE, &[ENGINEERS]);
    let other_config = config_of(OTHER_MSP_TENANT, ENGINEER, &[ENGINEERS]);
    for args in [&["requests", "-A"][..], &["requests", "-n", &ns][..]] {
        let mine = shows(&engineer_config, args);
        assert!(mine.len() == 1 && mine[0].contains("mine"), "the engineer sees its own only: {mine:?}");
        let reviewed = shows(&lead_config, args);
        assert!(reviewed.len() == 1 && reviewed[0].contains("mine"), "the lead sees what it reviews: {reviewed:?}");
        assert!(shows(&colleague_config, args).is_empty(), "a colleague sees nothing");
        let theirs = shows(&other_config, args);
        assert!(theirs.len() == 1 && theirs[0].contains("theirs"), "the other tenant sees its own only: {theirs:?}");
    }
    let (ok, listed, err) = plugin(&lead_config, &["requests", "--to-approve", "-n", &ns]);
    assert!(ok && listed.contains("mine") && listed.contains("Pending"), "{listed}{err}");

    // A colleague cannot end it; the requester can (Canceled).
    let (ok, _, _) = plugin(&colleague_config, &["deactivate", "mine", "-n", &ns]);
    assert!(!ok, "a colleague may not deactivate someone else's activation");
    let (ok, out, err) = plugin(&engineer_config, &["deactivate", "mine", "-n", &ns]);
    assert!(ok, "{out}{err}");
    eventually("an Event says Canceled by the engineer", || async {
        events_of(admin, &ns, "mine").await.iter().any(|(r, n)| r == "ActivationCanceled" && n.contains(ENGINEER))
    })
    .await;
}

/// The AdmissionReview a forger posts: the DELETE of `activation` by `deleter`, as if the
/// API server had sent it.
fn forged_delete(activation: &RoleActivation, deleter: &str) -> serde_json::Value {
    let gvk = json!({"group": "activation.kubelighthouse.io", "version": "v1alpha1", "kind": "RoleActivation"});
    let gvr = json!({"group": "activation.kubelighthouse.io", "version": "v1alpha1", "resource": "roleactivations"});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": unique("forged"),
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": activation.metadata.name, "namespace": activation.metadata.namespace,
            "operation": "DELETE",
            "userInfo": {"username": deleter, "groups": ["system:authenticated"]},
            "oldObject": activation,
            "dryRun": false,
        },
    })
}

/// Issue 26, item 5: one POST of a forged DELETE AdmissionReview to `/validate`, with no
/// credentials, set an Active activation to Revoked by a made-up deleter and removed the
/// access (the webhook wrote `status` before answering). Now admission only remembers the
/// claim, and nothing happens unless the API server really deletes the activation; claims
/// that disagree (a forger naming the requester while a customer admin revokes) end it
/// Revoked, never Canceled.
async fn a_forged_admission_review_changes_nothing(admin: &Client, deployed: &Deployed) {
    let (port, ca) = deployed.webhook.clone().expect("the webhook is served");
    let ns = delegated(admin, "jit-forged", json!({"maximumActivationDuration": "PT1H"})).await;
    bind_customer_admin(admin, &ns).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    activate(&engineer, &ns, "target", "PT1H").await.expect("activate");
    wait_phase(admin, &ns, "target", ActivationPhase::Active).await;
    eventually("active", || async { can_write(&engineer, &ns).await }).await;

    let target = activation(admin, &ns, "target").await.expect("the activation");
    let (code, body) = post_review(port, "/validate", &ca, None, &forged_delete(&target, "mallory"));
    assert_eq!(code, 200, "served without a client CA: {body}");
    // The old webhook had written the status before it answered: it would show now.
    let after = activation(admin, &ns, "target").await.expect("still there");
    let status = after.status.expect("status");
    assert_eq!(status.phase, Some(ActivationPhase::Active), "a forged review changes no phase");
    assert_eq!(status.ended_by, None, "a forged review records no deleter");
    assert!(can_write(&engineer, &ns).await, "a forged review removes no access");
    assert!(
        !events_of(admin, &ns, "target").await.iter().any(|(_, n)| n.contains("mallory")),
        "nothing names the made-up deleter"
    );

    // A forger naming the requester just before a customer admin's real delete.
    let requester = after
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("activation.kubelighthouse.io/requester"))
        .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        .and_then(|v| v["username"].as_str().map(str::to_string))
        .expect("the requester stamp");
    let (code, _) = post_review(port, "/validate", &ca, None, &forged_delete(&target, &requester));
    assert_eq!(code, 200);
    let customer = client_as("customer-admin", &[]).await;
    let api: Api<RoleActivation> = Api::namespaced(customer, &ns);
    eventually("the customer admin may delete activations", || async {
        match api.delete("target", &DeleteParams::default()).await {
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.code == 403 => false,
            Err(e) => panic!("delete: {e}"),
        }
    })
    .await;
    eventually("the revocation is immediate", || async { !can_write(&engineer, &ns).await }).await;
    eventually("an Event says Revoked, the deleter unknown", || async {
        events_of(admin, &ns, "target").await.iter().any(|(r, n)| r == "ActivationRevoked" && n.contains("unknown"))
    })
    .await;
    assert!(
        !events_of(admin, &ns, "target").await.iter().any(|(r, _)| r == "ActivationCanceled"),
        "a forged claim never turns a revocation into the requester's cancel"
    );
}

/// Issue 26, item 5: with `--admission-client-ca` (the local control plane presents its
/// webhook client certificate to every webhook, hack/control-plane.sh), a caller without
/// that certificate gets 401, one with another CA's certificate 403, on both admission
/// paths, while the API server's own admission calls (the requester stamp, the verdicts)
/// are served.
async fn admission_serves_only_the_api_servers_client_certificate(
    admin: &Client,
    path: &std::path::Path,
    env: &[(&str, &str)],
) {
    let pki = path.parent().expect("the state dir").join("pki");
    let client_ca = pki.join("webhook-client-ca.crt");
    assert!(
        client_ca.exists(),
        "{} is missing: this control plane predates the webhook client certificate; \
         restart it (hack/control-plane.sh down && hack/control-plane.sh up)",
        client_ca.display()
    );
    let client_ca = client_ca.display().to_string();
    let mut env = env.to_vec();
    env.push(("KUBE_LIGHTHOUSE_ADMISSION_CLIENT_CA", client_ca.as_str()));
    env.push(("KUBE_LIGHTHOUSE_ADMISSION_CLIENT_NAMES", "kube-apiserver-webhook-client"));
    let deployed = Deployed::start_with(path, true, &env);
    // Dry-run definitions are judged, not "failed calling webhook": the API server's
    // certificate is accepted by the validating webhook.
    webhook_ready(admin).await;
    let ns = delegated(admin, "jit-client-ca", json!({"maximumActivationDuration": "PT1H"})).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    let created = activate(&engineer, &ns, "through-the-api-server", "PT1H").await.expect("activate");
    let stamp = created.metadata.annotations.as_ref().and_then(|a| a.get("activation.kubelighthouse.io/requester"));
    assert!(stamp.is_some_and(|s| s.contains(ENGINEER)), "the mutating webhook stamped the requester: {stamp:?}");
    refused_with(
        Api::<RoleActivation>::namespaced(engineer.clone(), &ns)
            .create(&PostParams::default(), &activation_of("no-reason", CONTRIBUTOR, "PT30M", " "))
            .await,
        "MissingJustification",
    );
    wait_phase(admin, &ns, "through-the-api-server", ActivationPhase::Active).await;
    eventually("active", || async { can_write(&engineer, &ns).await }).await;

    let (port, ca) = deployed.webhook.clone().expect("the webhook is served");
    let target = activation(admin, &ns, "through-the-api-server").await.expect("the activation");
    let forged = forged_delete(&target, "mallory");
    let impostor = common::views::client_certificate(
        &deployed.dir,
        "impostor",
        "kube-apiserver-webhook-client",
        &ca,
        &deployed.dir.join("ca.key"),
    );
    let own_ca_wrong_name = common::views::client_certificate(
        &deployed.dir,
        "other-name",
        "someone-else",
        &pki.join("webhook-client-ca.crt"),
        &pki.join("webhook-client-ca.key"),
    );
    for route in ["/validate", "/mutate"] {
        let (code, body) = post_review(port, route, &ca, None, &forged);
        assert_eq!(code, 401, "{route} without a client certificate: {body}");
        let (code, body) = post_review(port, route, &ca, Some((&impostor.0, &impostor.1)), &forged);
        assert_eq!(code, 403, "{route} with another CA's certificate: {body}");
        let (code, body) = post_review(port, route, &ca, Some((&own_ca_wrong_name.0, &own_ca_wrong_name.1)), &forged);
        assert_eq!(code, 403, "{route} with a name not allowed: {body}");
    }
    let status = activation(admin, &ns, "through-the-api-server").await.and_then(|a| a.status).expect("status");
    assert_eq!(status.phase, Some(ActivationPhase::Active));
    assert!(can_write(&engineer, &ns).await);
    drop(deployed);
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
    // Events are published after the status is written: wait for them.
    eventually("Events say Active, then Expired", || async {
        let events = events_of(admin, &ns, "fix-4711").await;
        ["ActivationActive", "ActivationExpired"].iter().all(|want| events.iter().any(|(r, _)| r == want))
    })
    .await;
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
    bind_customer_admin(admin, &ns).await;

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
    let out = std::process::Command::new(common::plugin_binary())
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
                "1h",
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
    // `kubectl get ract` shows when it expires (a time to come, not an age).
    let expires_at = activation(admin, &ns, "walkthrough").await.and_then(|a| a.status?.expires_at).expect("expiresAt");
    let got = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&engineer_config)
        .args(["get", "ract", "walkthrough", "-n", &ns])
        .output()
        .expect("kubectl");
    let table = String::from_utf8_lossy(&got.stdout);
    let expires = serde_json::to_value(&expires_at).expect("time");
    assert!(table.contains(expires.as_str().unwrap_or_default()), "EXPIRES column: {table}");
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

/// An ActivationReview names its activation by name only: an approval given to an activation
/// that was deleted since must not approve a new one created under the same name (by the same
/// engineer or a colleague); it waits for an approval of its own.
async fn an_approval_never_carries_over_to_a_new_activation_of_the_same_name(admin: &Client) {
    let policy = json!({"maximumActivationDuration": "PT4H", "managedByTenantApprovers": [{"principalId": LEADS}]});
    let ns = delegated(admin, "jit-reuse", policy).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    let lead = signed(LEAD, &[LEADS], &["pwd", "mfa"]).await;
    activate(&engineer, &ns, "hotfix", "PT4H").await.expect("activate");
    wait_phase(admin, &ns, "hotfix", ActivationPhase::Pending).await;
    review(&lead, &ns, "hotfix", "Approve").await.expect("the lead approves");
    eventually("approved", || async { can_write(&engineer, &ns).await }).await;
    let api: Api<RoleActivation> = Api::namespaced(engineer.clone(), &ns);
    api.delete("hotfix", &DeleteParams::default()).await.expect("deactivate");
    eventually("the first one is gone", || async { activation(admin, &ns, "hotfix").await.is_none() }).await;
    assert!(!can_write(&engineer, &ns).await, "deactivated");

    // A colleague asks again under the same name: the lead's earlier approval is still
    // there, but it was given to another activation.
    let colleague = signed(COLLEAGUE, &[ENGINEERS], &["pwd"]).await;
    activate(&colleague, &ns, "hotfix", "PT4H").await.expect("activate again");
    eventually("the new activation is judged", || async { phase(admin, &ns, "hotfix").await.is_some() }).await;
    assert_eq!(phase(admin, &ns, "hotfix").await, Some(ActivationPhase::Pending), "no approval of its own yet");
    assert!(!can_write(&colleague, &ns).await, "nothing before its own approval");
    let status = activation(admin, &ns, "hotfix").await.and_then(|a| a.status).expect("status");
    assert!(status.reviews.is_empty(), "{:?}", status.reviews);
    review(&lead, &ns, "hotfix", "Approve").await.expect("the lead approves the new one");
    eventually("approved in its own right", || async { can_write(&colleague, &ns).await }).await;
}

/// Pending past the approval timeout (24 h by default; 3600 s / 600 here): TimedOut, a
/// Warning Event, nothing granted, and a late review is refused.
async fn a_pending_activation_times_out(admin: &Client) {
    let policy = json!({"maximumActivationDuration": "PT4H", "managedByTenantApprovers": [{"principalId": LEADS}]});
    let ns = delegated(admin, "jit-timeout", policy).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    activate(&engineer, &ns, "nobody-looked", "PT1H").await.expect("activate");
    wait_phase(admin, &ns, "nobody-looked", ActivationPhase::Pending).await;
    wait_phase(admin, &ns, "nobody-looked", ActivationPhase::TimedOut).await;
    assert!(!can_write(&engineer, &ns).await, "a timed-out request grants nothing");
    eventually("an Event says TimedOut", || async {
        events_of(admin, &ns, "nobody-looked").await.iter().any(|(r, _)| r == "ActivationTimedOut")
    })
    .await;
    let lead = signed(LEAD, &[LEADS], &["pwd", "mfa"]).await;
    refused_with(review(&lead, &ns, "nobody-looked", "Approve").await, "NotPending");
    assert_eq!(phase(admin, &ns, "nobody-looked").await, Some(ActivationPhase::TimedOut), "final");
    assert!(!can_write(&engineer, &ns).await);
}

/// Admission refuses, with the rule's name: a missing justification; anyone who does not
/// hold the eligible authorization (a customer admin who may create RoleActivations, a
/// principal of another managing tenant with the same group ID); and RBAC refuses a
/// namespace that is not delegated.
async fn admission_refuses_whoever_may_not_activate(admin: &Client) {
    let ns = delegated(admin, "jit-refuse", json!({"maximumActivationDuration": "PT1H"})).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    let create = |client: &Client, ns: &str, body: RoleActivation| {
        let api: Api<RoleActivation> = Api::namespaced(client.clone(), ns);
        async move { api.create(&PostParams::default(), &body).await }
    };
    refused_with(
        create(&engineer, &ns, activation_of("no-reason", CONTRIBUTOR, "PT30M", " ")).await,
        "MissingJustification",
    );
    refused_with(create(&engineer, &ns, activation_of("reader", READER, "PT30M", "why not")).await, "NotEligible");

    // The same object and group IDs, signed in at another managing tenant.
    let other = token(OTHER_MSP_TENANT, &TokenRequest::new(ENGINEER).groups([ENGINEERS.to_string()]).amr(["mfa"]))
        .expect("the other tenant's issuer");
    let other = client_with_token(&other).await;
    refused_with(create(&other, &ns, activation_body("other-tenant", "PT30M")).await, "forbidden");

    // A customer admin may create RoleActivations (chart: aggregate-to-admin), but holds no
    // eligible authorization.
    bind_customer_admin(admin, &ns).await;
    let customer = client_as("customer-admin", &[]).await;
    eventually("the customer admin's activation is refused by admission, not RBAC", || async {
        match create(&customer, &ns, activation_body("customer", "PT30M")).await {
            Err(kube::Error::Api(s)) if s.code == 403 => false,
            Err(kube::Error::Api(s)) => s.message.contains("NotEligible"),
            other => panic!("expected NotEligible, got {other:?}"),
        }
    })
    .await;

    // A namespace that is not delegated: no RBAC to even ask.
    let elsewhere = unique("jit-elsewhere");
    plain_namespace(admin, &elsewhere).await;
    refused_with(create(&engineer, &elsewhere, activation_body("elsewhere", "PT30M")).await, "forbidden");
    assert!(Api::<RoleActivation>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .is_empty());
}

/// The customer's own admin in `ns`: `admin`, which the chart extends (aggregation) with
/// creating and deleting RoleActivations.
async fn bind_customer_admin(admin: &Client, ns: &str) {
    let aggregated = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "kube-lighthouse-test-activations-aggregate-to-admin",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
        "rules": [{"apiGroups": ["activation.kubelighthouse.io"], "resources": ["roleactivations", "activationreviews"],
            "verbs": ["create", "delete", "get", "list", "watch"]}],
    });
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    apply_json(&roles, "kube-lighthouse-test-activations-aggregate-to-admin", aggregated).await;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "customer-admin", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "customer-admin"}],
    });
    apply_json(&Api::<RoleBinding>::namespaced(admin.clone(), ns), "customer-admin", binding).await;
}

/// What `user` may do in `ns`, as the API server answers a SubjectAccessReview.
async fn allowed(admin: &Client, user: &str, groups: &[String], ns: &str, attributes: serde_json::Value) -> bool {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let mut attributes = attributes;
    attributes["namespace"] = json!(ns);
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
    }))
    .expect("review");
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    api.create(&PostParams::default(), &review).await.expect("review").status.is_some_and(|s| s.allowed)
}

/// While Active, the requester holds exactly the eligible role's filtered rules, in the
/// activation's namespace only (SubjectAccessReview, as the API server authorizes the
/// requester's own requests); nothing of what the catalog's filter keeps out.
async fn an_activation_grants_exactly_the_eligible_role(admin: &Client) {
    let sub = delegated(admin, "jit-exact", json!({"maximumActivationDuration": "PT1H"})).await;
    let rg = unique("jit-exact-rg");
    resource_group(admin, &rg, &sub).await;
    eventually("the assignment covers the resource group", || async {
        let status = assignment_status(admin, &sub, "contoso").await;
        status.is_some_and(|s| s.namespaces.contains(&rg))
    })
    .await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    activate(&engineer, &rg, "exact", "PT1H").await.expect("activate in the resource group");
    eventually("active", || async { can_write(&engineer, &rg).await }).await;
    let user = projected(MSP_TENANT, ENGINEER);
    let groups = vec![projected(MSP_TENANT, ENGINEERS)];
    let deploy = json!({"verb": "create", "group": "apps", "resource": "deployments"});
    assert!(allowed(admin, &user, &groups, &rg, deploy.clone()).await, "Contributor's rules");
    assert!(!allowed(admin, &user, &groups, &sub, deploy.clone()).await, "only in the activation's namespace");
    for denied in [
        json!({"verb": "get", "resource": "secrets"}),
        json!({"verb": "create", "resource": "pods", "subresource": "exec"}),
        json!({"verb": "create", "group": "rbac.authorization.k8s.io", "resource": "rolebindings"}),
        json!({"verb": "create", "group": "activation.kubelighthouse.io", "resource": "activationreviews"}),
        json!({"verb": "patch", "group": "activation.kubelighthouse.io", "resource": "roleactivations", "subresource": "status"}),
        json!({"verb": "update", "group": "managedservices.kubelighthouse.io", "resource": "registrationassignments"}),
    ] {
        assert!(!allowed(admin, &user, &groups, &rg, denied.clone()).await, "never granted: {denied}");
    }
    let role = Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(admin.clone(), &rg)
        .list(&ListParams::default().labels("kubelighthouse.io/activation=exact"))
        .await
        .expect("roles")
        .items;
    assert_eq!(role.len(), 1, "one Role");
    let catalog: k8s_openapi::api::rbac::v1::ClusterRole =
        Api::all(admin.clone()).get("kubelighthouse:contributor").await.expect("catalog Contributor");
    assert_eq!(role[0].rules, catalog.rules, "the Role holds Contributor's rules (nothing of them is filtered)");
    // The colleague in the same group gets none of it.
    let colleague = projected(MSP_TENANT, COLLEAGUE);
    assert!(!allowed(admin, &colleague, &groups, &rg, deploy).await);
}

/// Deleting the definition ends every activation under it at once (SPEC §9).
async fn deleting_the_definition_ends_its_activations(admin: &Client) {
    let ns = delegated(admin, "jit-undefine", json!({"maximumActivationDuration": "PT1H"})).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    activate(&engineer, &ns, "during", "PT1H").await.expect("activate");
    eventually("active", || async { can_write(&engineer, &ns).await }).await;
    Api::<kube_lighthouse::api::RegistrationDefinition>::namespaced(admin.clone(), &ns)
        .delete("contoso", &DeleteParams::default())
        .await
        .expect("delete definition");
    eventually("the activation's access goes with the definition", || async { !can_write(&engineer, &ns).await }).await;
    wait_phase(admin, &ns, "during", ActivationPhase::Revoked).await;
    assert!(bindings_of(admin, &ns, "during").await.is_empty());
    eventually("an Event says Revoked", || async {
        events_of(admin, &ns, "during").await.iter().any(|(r, _)| r == "ActivationRevoked")
    })
    .await;
}

/// The eligible role leaving the catalog ends every activation of it (SPEC §9): a test role
/// of its own, so that no other delegation on the cluster is touched.
async fn the_role_leaving_the_catalog_ends_its_activations(admin: &Client) {
    let name = unique("kubelighthouse-test:jit");
    let guid = tenant_id();
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    let role = |in_catalog: bool| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {
                "name": name,
                "labels": {"kubelighthouse.io/built-in": if in_catalog { "true" } else { "false" }},
                "annotations": {"kubelighthouse.io/role-definition-id": guid,
                                "kubelighthouse.io/role-display-name": "JIT test role"},
            },
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create"]}],
        })
    };
    apply_json(&roles, &name, role(true)).await;
    let ns = delegated_role(admin, "jit-catalog", &guid, json!({"maximumActivationDuration": "PT1H"})).await;
    let engineer = signed(ENGINEER, &[ENGINEERS], &["pwd"]).await;
    Api::<RoleActivation>::namespaced(engineer.clone(), &ns)
        .create(&PostParams::default(), &activation_of("catalog", &guid, "PT1H", "rotate the config"))
        .await
        .expect("activate the test role");
    eventually("active", || async { can_write(&engineer, &ns).await }).await;

    apply_json(&roles, &name, role(false)).await;
    eventually("the access goes with the role", || async { !can_write(&engineer, &ns).await }).await;
    wait_phase(admin, &ns, "catalog", ActivationPhase::Revoked).await;
    assert!(bindings_of(admin, &ns, "catalog").await.is_empty());
    // And it cannot be activated again.
    let again = Api::<RoleActivation>::namespaced(engineer.clone(), &ns)
        .create(&PostParams::default(), &activation_of("again", &guid, "PT1H", "once more"))
        .await;
    match again {
        Err(kube::Error::Api(s)) => assert!(s.code == 403 || s.message.contains("NotEligible"), "{}", s.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
    delete(&roles, &name).await;
}

/// `kubectl lighthouse eligible`: what the caller may activate, and where, from the views
/// API, with the caller's own token; nothing for an approver or another tenant.
async fn eligible_lists_what_the_caller_may_activate(admin: &Client, path: &std::path::Path) {
    let views = common::views::ViewsServer::start(path);
    let ns = delegated(
        admin,
        "jit-eligible",
        json!({"maximumActivationDuration": "PT1H",
        "managedByTenantApprovers": [{"principalId": LEADS}]}),
    )
    .await;
    let config_of = |tenant: &str, user: &str, groups: &[&str], file: &str| {
        let request = TokenRequest::new(user).groups(groups.iter().map(|g| g.to_string())).amr(["pwd"]);
        let config = views.dir.join(file);
        token_kubeconfig(path, &token(tenant, &request).expect("issuer"), &config);
        config
    };
    let engineer = config_of(MSP_TENANT, ENGINEER, &[ENGINEERS], "engineer");
    let mut listed = String::new();
    eventually("the engineer sees the eligible Contributor", || {
        let (ok, out, err) = plugin(&engineer, &["eligible"]);
        assert!(ok, "{out}{err}");
        let found = out.lines().any(|l| l.contains(&ns) && l.contains("Contributor") && l.contains(CONTRIBUTOR));
        listed = out;
        async move { found }
    })
    .await;
    assert!(listed.lines().next().is_some_and(|h| h.starts_with("NAMESPACE")), "{listed}");
    let (ok, wide, err) = plugin(&engineer, &["eligible", "-n", &ns, "-o", "wide"]);
    assert!(ok && wide.contains(&format!("Group:{}", projected(MSP_TENANT, ENGINEERS))), "{wide}{err}");
    let (ok, json, err) = plugin(&engineer, &["eligible", "-n", &ns, "-o", "json"]);
    assert!(ok && json.contains(&ns), "{json}{err}");

    let lead = config_of(MSP_TENANT, LEAD, &[LEADS], "lead");
    let (ok, out, err) = plugin(&lead, &["eligible"]);
    assert!(ok && !out.contains(&ns), "an approver is not eligible: {out}{err}");

    // `requests -A` (what the views API lets each caller read) is proven with the webhook,
    // which stamps the requester: only_the_requester_and_its_approvers_see_an_activation.
    let other = config_of(OTHER_MSP_TENANT, ENGINEER, &[ENGINEERS], "other");
    let (ok, out, err) = plugin(&other, &["eligible"]);
    assert!(ok && !out.contains(&ns), "another tenant's principal is not eligible: {out}{err}");
    drop(views);
}
