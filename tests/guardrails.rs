//! The controller enforces guardrails on delegations that predate them (docs/guardrails.md),
//! on the real control plane, proven with managing-tenant identities signed in with their own
//! tokens:
//! - a guardrail added after onboarding that forbids the managing tenant fails the delegation,
//!   naming the guardrail and the field, and revokes its access (200, then 403); the namespace
//!   leaving the guardrail's selector, or the guardrail's deletion, re-grants it; `kubectl
//!   lighthouse policy` names it, and `providers` shows it NonCompliant;
//! - one that allows a role only as eligible withholds that role alone (`Degraded`, naming the
//!   guardrail) and keeps the rest in force;
//! - the audit: a PolicyReport per namespace (wgpolicyk8s.io, when its CRD is installed: the
//!   test installs it) lists every delegation, skipped, failed or passed, and follows the
//!   guardrails; it goes with the namespace's last definition.
//!
//! Each guardrail here selects only its test's namespaces (a unique label), so tests share one
//! cluster without governing each other.

mod common;

use common::*;
use kube::api::Api;
use kube::Client;
use kube_lighthouse::api::{ConditionStatus, Guardrail, RegistrationDefinition};
use serde_json::json;

const PERSON: &str = "00000000-0000-0000-0000-00000000c101";
const ENGINEER: &str = "00000000-0000-0000-0000-00000000c102";

/// A guardrail governing the namespaces labelled `guardrail-test: <label>`.
async fn guardrail(client: &Client, name: &str, label: &str, rules: serde_json::Value) {
    let api: Api<Guardrail> = Api::all(client.clone());
    let mut spec = json!({"namespaceSelector": {"matchLabels": {"guardrail-test": label}}});
    spec.as_object_mut().expect("object").extend(rules.as_object().expect("rules").clone());
    let body = json!({"apiVersion": "policy.kubelighthouse.io/v1alpha1", "kind": "Guardrail",
                      "metadata": {"name": name}, "spec": spec});
    apply_json(&api, name, body).await;
}

/// A subscription governed by guardrails labelled `label`, delegated to the MSP as
/// `authorizations`, and assigned; once the assignment is Succeeded.
async fn onboarded(client: &Client, label: &str, authorizations: Vec<serde_json::Value>) -> String {
    let sub = unique("gr");
    subscription(client, &sub, &tenant_id()).await;
    relabel(client, &sub, json!({"guardrail-test": label})).await;
    definition(client, &sub, "contoso", MSP_TENANT, authorizations).await;
    assignment(client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(client, &sub, "contoso", "Succeeded").await;
    sub
}

/// Waits until definition `namespace/contoso` is Ready=False for `reason` with every text of
/// `names` in its message.
async fn definition_fails(client: &Client, namespace: &str, reason: &str, names: &[&str]) {
    let api: Api<RegistrationDefinition> = Api::namespaced(client.clone(), namespace);
    let status = poll(
        &format!("definition {namespace}/contoso fails for {reason}"),
        || async { api.get("contoso").await.expect("definition").status.unwrap_or_default() },
        |s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == ConditionStatus::False && c.reason == reason),
    )
    .await;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    for name in names {
        assert!(ready.message.contains(name), "the reason names {name}: {}", ready.message);
    }
}

/// `kubectl lighthouse ARGS` as the admin: its standard output; fails the test on an error.
fn plugin(args: &[&str]) -> String {
    let out = std::process::Command::new(common::plugin_binary())
        .env("KUBECONFIG", kubeconfig())
        .args(args)
        .output()
        .expect("kubectl-lighthouse");
    assert!(out.status.success(), "kubectl lighthouse {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_guardrail_added_after_onboarding_revokes_what_it_forbids() {
    let client = cluster().await;
    let label = unique("tenant");
    let sub = onboarded(&client, &label, vec![authorization(PERSON, "User", READER)]).await;
    let person = signed_in(&projected(MSP_TENANT, PERSON), &[]).await.expect("a token of the contoso issuer");
    expect_list_pods(&person, &sub, 200, "the delegated person").await;

    // The platform team allows only the other managing tenant.
    let name = unique("fabrikam-only");
    guardrail(&client, &name, &label, json!({"allowedManagingTenantIds": [OTHER_MSP_TENANT]})).await;
    expect_list_pods(&person, &sub, 403, "the delegated person, once the guardrail forbids its tenant").await;
    definition_fails(
        &client,
        &sub,
        "GuardrailTenantNotAllowed",
        &[&name, "spec.managedByTenantId", "spec.allowedManagingTenantIds"],
    )
    .await;
    let status = wait_for_assignment_state(&client, &sub, "contoso", "Failed").await;
    assert!(status.namespaces.is_empty(), "nothing in force: {status:?}");
    assert_eq!(managed_objects(&client, &sub).await, 0, "every Role and RoleBinding revoked");
    eventually("a Warning Event names the guardrail", || async {
        warning_events(&client, &sub, "contoso")
            .await
            .iter()
            .any(|(reason, note)| reason == "GuardrailTenantNotAllowed" && note.contains(&name))
    })
    .await;

    // The platform team sees it with `kubectl lighthouse policy`, the customer with `providers`.
    let report: serde_json::Value = serde_json::from_str(&plugin(&["policy", "-o", "json"])).expect("policy -o json");
    let mine: Vec<&serde_json::Value> = report["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter(|v| v["namespace"] == sub.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["guardrail"], name.as_str());
    assert_eq!(mine[0]["rule"], "GuardrailTenantNotAllowed");
    assert_eq!(mine[0]["field"], "spec.managedByTenantId");
    assert_eq!(mine[0]["assignments"], json!([format!("{sub}/contoso")]));
    assert!(report["guardrails"]
        .as_array()
        .expect("guardrails")
        .iter()
        .any(|g| g["metadata"]["name"] == name.as_str()));
    let table = plugin(&["policy", "-n", &sub]);
    assert!(table.contains(&name) && table.contains("GuardrailTenantNotAllowed"), "{table}");
    let providers = plugin(&["providers", "-n", &sub]);
    assert!(providers.contains("NonCompliant (GuardrailTenantNotAllowed)"), "{providers}");

    // The namespace leaves the guardrail's selector: the delegation is judged again, granted.
    relabel(&client, &sub, json!({"guardrail-test": null})).await;
    expect_list_pods(&person, &sub, 200, "the delegated person, outside the guardrail's selector").await;
    relabel(&client, &sub, json!({"guardrail-test": label})).await;
    expect_list_pods(&person, &sub, 403, "the delegated person, governed again").await;

    // The guardrail goes: so does its refusal.
    let guardrails: Api<Guardrail> = Api::all(client.clone());
    delete(&guardrails, &name).await;
    expect_list_pods(&person, &sub, 200, "the delegated person, once the guardrail is gone").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_role_allowed_only_as_eligible_is_withheld_and_the_rest_stays() {
    let client = cluster().await;
    let label = unique("jit");
    let sub = onboarded(
        &client,
        &label,
        vec![authorization(PERSON, "User", READER), authorization(ENGINEER, "User", CONTRIBUTOR)],
    )
    .await;
    let (person, engineer) = (projected(MSP_TENANT, PERSON), projected(MSP_TENANT, ENGINEER));
    expect_access(&client, &engineer, &[], access("create", "configmaps", &sub), true).await;

    let name = unique("contributor-jit-only");
    guardrail(&client, &name, &label, json!({"eligibleOnlyRoleDefinitionIds": ["Contributor"]})).await;
    expect_access(&client, &engineer, &[], access("create", "configmaps", &sub), false).await;
    expect_access(&client, &engineer, &[], access("list", "pods", &sub), false).await;
    expect_access(&client, &person, &[], access("list", "pods", &sub), true).await;
    let status = poll(
        "the assignment is Degraded by the guardrail",
        || async { assignment_status(&client, &sub, "contoso").await.unwrap_or_default() },
        |s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Degraded" && c.status == ConditionStatus::True && c.reason == "GuardrailRoleEligibleOnly"
            })
        },
    )
    .await;
    let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded").expect("Degraded");
    assert!(
        degraded.message.contains(&name) && degraded.message.contains("spec.authorizations[1].roleDefinitionId"),
        "{degraded:?}"
    );
    assert_eq!(status.namespaces, std::slice::from_ref(&sub), "Reader stays in force");

    let guardrails: Api<Guardrail> = Api::all(client.clone());
    delete(&guardrails, &name).await;
    expect_access(&client, &engineer, &[], access("create", "configmaps", &sub), true).await;
}

/// The PolicyReport of `namespace`, if any.
async fn policy_report(client: &Client, namespace: &str) -> Option<serde_json::Value> {
    let resource = kube::discovery::ApiResource {
        group: "wgpolicyk8s.io".into(),
        version: "v1alpha2".into(),
        api_version: "wgpolicyk8s.io/v1alpha2".into(),
        kind: "PolicyReport".into(),
        plural: "policyreports".into(),
    };
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let report = api.get_opt("kube-lighthouse-guardrails").await.expect("get PolicyReport")?;
    Some(serde_json::to_value(report).expect("json"))
}

/// (policy, rule, result) of every result of `report`.
fn results(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("policy"), s("rule"), s("result"))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_policy_report_per_namespace_audits_every_delegation_against_the_guardrails() {
    let client = cluster().await;
    let crd = repo().join("tests/fixtures/crds/policyreports.wgpolicyk8s.io.yaml");
    for args in
        [vec!["apply", "--server-side", "-f"], vec!["wait", "--for=condition=Established", "--timeout=60s", "-f"]]
    {
        let status =
            std::process::Command::new("kubectl").env("KUBECONFIG", kubeconfig()).args(args).arg(&crd).status();
        assert!(matches!(status, Ok(s) if s.success()), "kubectl with the PolicyReport CRD");
    }
    let label = unique("audit");
    let sub = onboarded(&client, &label, vec![authorization(PERSON, "User", READER)]).await;

    // No guardrail governs it yet: it is in the report all the same, skipped.
    let skipped = vec![("kube-lighthouse-guardrails".to_string(), "Governed".to_string(), "skip".to_string())];
    poll(
        "the report lists the ungoverned delegation",
        || policy_report(&client, &sub),
        |r| r.as_ref().is_some_and(|r| results(r) == skipped),
    )
    .await;

    let name = unique("fabrikam-only");
    let started = std::time::Instant::now();
    guardrail(&client, &name, &label, json!({"allowedManagingTenantIds": [OTHER_MSP_TENANT]})).await;
    let report = poll(
        "the report fails the delegation",
        || policy_report(&client, &sub),
        |r| {
            r.as_ref().is_some_and(|r| {
                results(r) == [(name.clone(), "GuardrailTenantNotAllowed".to_string(), "fail".to_string())]
            })
        },
    )
    .await
    .expect("report");
    // A figure, not an assertion (docs/guardrails.md: the report follows within seconds).
    eprintln!("PolicyReport followed the new guardrail after {:?}", started.elapsed());
    let failed = &report["results"][0];
    assert_eq!(failed["properties"]["field"], "spec.managedByTenantId");
    assert_eq!(failed["properties"]["guardrailField"], "spec.allowedManagingTenantIds");
    let kinds: Vec<&str> =
        failed["resources"].as_array().expect("resources").iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, ["RegistrationDefinition", "RegistrationAssignment"], "the definition and its delegation");
    assert_eq!(report["summary"]["fail"], 1);

    // The guardrail relaxed: it passes.
    guardrail(&client, &name, &label, json!({"allowedManagingTenantIds": [OTHER_MSP_TENANT, MSP_TENANT]})).await;
    poll(
        "the report passes the delegation",
        || policy_report(&client, &sub),
        |r| r.as_ref().is_some_and(|r| results(r) == [(name.clone(), "Allowed".to_string(), "pass".to_string())]),
    )
    .await;

    // No definition left: no report.
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), &sub);
    delete(&definitions, "contoso").await;
    poll("the report goes with the last definition", || policy_report(&client, &sub), Option::is_none).await;
    let guardrails: Api<Guardrail> = Api::all(client.clone());
    delete(&guardrails, &name).await;
}
