//! `kubectl lighthouse import` on the real control plane (issue 17): onboarding templates in
//! the exact shape of Azure's samples (`Azure/Azure-Lighthouse-samples` `templates/`), written
//! here, imported by the built plugin as a subprocess, granted by the controller, and the
//! access checked with real requests signed by the managing tenant's own tokens.
//!
//! As every cluster suite (tests/common): ignored by a plain `cargo test`, run by hack/test.sh
//! with `--include-ignored`, and failing without a cluster.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use kl_token_issuer::TokenRequest;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use kube_lighthouse::api::{MultiFactorAuthProvider, RegistrationAssignment, RegistrationDefinition};
use serde_json::{json, Value};

const UAA: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
const LOG_ANALYTICS: &str = "92aaf0da-9dab-42b6-94a3-d43ce8d16293";
/// Storage Account Contributor: an Azure built-in with no counterpart in the catalog.
const STORAGE_ACCOUNT_CONTRIBUTOR: &str = "17d1049b-9a84-46fb-8f53-869881c3d3ab";

/// The managing tenant's principals (Contoso, [`MSP_TENANT`]).
const ENGINEERS: &str = "00000000-0000-0000-0000-0000000001a1";
const OPERATORS: &str = "00000000-0000-0000-0000-0000000001b2";
const ADMINS: &str = "00000000-0000-0000-0000-0000000001c3";
const ESCALATION: &str = "00000000-0000-0000-0000-0000000001d4";
const APPROVERS: &str = "00000000-0000-0000-0000-0000000001e5";
const ENGINEER: &str = "00000000-0000-0000-0000-00000000e101";
const OPERATOR: &str = "00000000-0000-0000-0000-00000000e102";
const ON_CALL: &str = "00000000-0000-0000-0000-00000000e103";

// --- templates, in the shape of Azure's samples ---------------------------------------------

/// `delegated-resource-management/subscription/subscription.json`'s shape: offer name,
/// description, managing tenant and authorizations as parameters; the definition and the
/// assignment named `guid(mspOfferName)`.
fn subscription_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-08-01/subscriptionDeploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "mspOfferName": {"type": "string", "metadata": {"description": "Specify a unique name for your offer"}},
            "mspOfferDescription": {"type": "string", "metadata": {"description": "Name of the Managed Service Provider offering"}},
            "managedByTenantId": {"type": "string", "metadata": {"description": "Specify the tenant id of the Managed Service Provider"}},
            "authorizations": {"type": "array", "metadata": {"description": "Specify an array of objects, containing tuples of Azure Active Directory principalId, a Azure roleDefinitionId, and an optional principalIdDisplayName. The roleDefinition specified is granted to the principalId in the provider's Active Directory and the principalIdDisplayName is visible to customers."}}
        },
        "variables": {
            "mspRegistrationName": "[guid(parameters('mspOfferName'))]",
            "mspAssignmentName": "[guid(parameters('mspOfferName'))]"
        },
        "resources": [
            {
                "type": "Microsoft.ManagedServices/registrationDefinitions",
                "apiVersion": "2022-10-01",
                "name": "[variables('mspRegistrationName')]",
                "properties": {
                    "registrationDefinitionName": "[parameters('mspOfferName')]",
                    "description": "[parameters('mspOfferDescription')]",
                    "managedByTenantId": "[parameters('managedByTenantId')]",
                    "authorizations": "[parameters('authorizations')]"
                }
            },
            {
                "type": "Microsoft.ManagedServices/registrationAssignments",
                "apiVersion": "2022-10-01",
                "name": "[variables('mspAssignmentName')]",
                "dependsOn": ["[resourceId('Microsoft.ManagedServices/registrationDefinitions/', variables('mspRegistrationName'))]"],
                "properties": {
                    "registrationDefinitionId": "[resourceId('Microsoft.ManagedServices/registrationDefinitions/', variables('mspRegistrationName'))]"
                }
            }
        ],
        "outputs": {
            "mspOfferName": {"type": "string", "value": "[concat('Managed by', ' ', parameters('mspOfferName'))]"},
            "authorizations": {"type": "array", "value": "[parameters('authorizations')]"}
        }
    })
}

/// `…-eligible-authorizations/subscription/subscription-managing-tenant-approvers.json`'s
/// shape: standing and eligible authorizations, the latter with a just-in-time policy.
fn eligible_template() -> Value {
    let mut t = subscription_template();
    t["parameters"]["eligibleAuthorizations"] = json!({"type": "array", "metadata": {"description": "Specify an array of objects, containing object of Azure Active Directory principalId, a Azure roleDefinitionId, and an optional principalIdDisplayName. The roleDefinition specified is granted to the principalId in the provider's Active Directory and the principalIdDisplayName is visible to customers."}});
    t["resources"][0]["properties"]["eligibleAuthorizations"] = json!("[parameters('eligibleAuthorizations')]");
    t
}

/// `delegated-resource-management/rg/rg.json`'s shape: the definition at subscription scope,
/// the assignment in a nested deployment to the resource group `rgName`.
fn resource_group_template() -> Value {
    let mut t = subscription_template();
    t["parameters"]["rgName"] = json!({"type": "string"});
    let assignment = t["resources"][1].clone();
    t["resources"][1] = json!({
        "type": "Microsoft.Resources/deployments",
        "apiVersion": "2018-05-01",
        "name": "rgAssignment",
        "resourceGroup": "[parameters('rgName')]",
        "dependsOn": ["[resourceId('Microsoft.ManagedServices/registrationDefinitions/', variables('mspRegistrationName'))]"],
        "properties": {
            "mode": "Incremental",
            "template": {
                "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                "contentVersion": "1.0.0.0",
                "parameters": {},
                "resources": [{
                    "type": "Microsoft.ManagedServices/registrationAssignments",
                    "apiVersion": "2022-10-01",
                    "name": "[variables('mspAssignmentName')]",
                    "properties": assignment["properties"].clone()
                }]
            }
        }
    });
    t
}

/// The standing authorizations of the samples: Reader and the assignment-delete role for the
/// engineers, Contributor for the operators, User Access Administrator for the admins.
fn authorizations() -> Value {
    json!([
        {"principalId": ENGINEERS, "principalIdDisplayName": "Contoso Engineers", "roleDefinitionId": READER},
        {"principalId": ENGINEERS, "principalIdDisplayName": "Contoso Engineers", "roleDefinitionId": DELETE_ROLE},
        {"principalId": OPERATORS, "principalIdDisplayName": "Contoso Operators", "roleDefinitionId": CONTRIBUTOR},
        {"principalId": ADMINS, "principalIdDisplayName": "Contoso Admins", "roleDefinitionId": UAA,
         "delegatedRoleDefinitionIds": [CONTRIBUTOR, LOG_ANALYTICS]}
    ])
}

/// A deployment parameters file, as the samples' `*.parameters.json`.
fn parameters(offer: &str, tenant: &str, extra: Value) -> Value {
    let mut p = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-08-01/subscriptionDeploymentParameters.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "mspOfferName": {"value": offer},
            "mspOfferDescription": {"value": format!("{offer}: monitoring and operations")},
            "managedByTenantId": {"value": tenant},
            "authorizations": {"value": authorizations()}
        }
    });
    if let (Some(p), Some(extra)) = (p["parameters"].as_object_mut(), extra.as_object()) {
        p.extend(extra.clone());
    }
    p
}

// --- running the plugin ----------------------------------------------------------------------

fn scratch(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json")).expect("write");
    path.display().to_string()
}

/// `kubectl-lighthouse ARGS --kubeconfig KUBECONFIG`.
fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(common::plugin_binary())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl-lighthouse")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

fn plugin_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = plugin(kubeconfig, args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "kubectl-lighthouse {args:?} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout
}

/// The failure's stderr; the command must exit 1.
fn plugin_fails(kubeconfig: &Path, args: &[&str]) -> String {
    let out = plugin(kubeconfig, args);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "kubectl-lighthouse {args:?} should fail:\n{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "nothing printed on stdout when nothing is imported: {stdout}");
    stderr
}

/// `(namespace, name)` of the imported objects of a `-o json` List, by kind.
fn imported(list: &str, kind: &str) -> Vec<(String, String)> {
    let list: Value = serde_json::from_str(list).expect("a JSON List");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == kind)
        .map(|i| {
            let m = &i["metadata"];
            (
                m["namespace"].as_str().unwrap_or_default().to_string(),
                m["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn definitions(client: &Client, namespace: &str) -> Vec<RegistrationDefinition> {
    let api: Api<RegistrationDefinition> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default()).await.expect("list definitions").items
}

async fn assignments(client: &Client, namespace: &str) -> Vec<RegistrationAssignment> {
    let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default()).await.expect("list assignments").items
}

/// A client signed in as `oid` in `groups` with a token of `tenant`'s own issuer: the real
/// sign-in (SPEC §2). Fails the test when there is no issuer: these checks are the point.
async fn signed_in_as(tenant: &str, oid: &str, groups: &[&str]) -> Client {
    let request = TokenRequest::new(oid).groups(groups.iter().copied()).amr(["pwd", "mfa"]);
    let token = token(tenant, &request).expect("a local issuer for the managing tenant (hack/control-plane.sh)");
    client_with_token(&token).await
}

// --- the tests -------------------------------------------------------------------------------

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_subscription_template_grants_what_azure_grants_and_reimports_unchanged() {
    let client = cluster().await;
    let path = kubeconfig();
    let (sub, elsewhere) = (unique("imp-sub"), unique("imp-else"));
    subscription(&client, &sub, &tenant_id()).await;
    subscription(&client, &elsewhere, &tenant_id()).await;
    let dir = scratch("imp-sub");
    let template = write(&dir, "subscription.json", &subscription_template());
    let params = write(&dir, "subscription.parameters.json", &parameters("Contoso Operations", MSP_TENANT, json!({})));

    let applied = plugin_ok(&path, &["import", "-f", &template, "-p", &params, "-n", &sub, "-o", "json"]);
    let defs = imported(&applied, "RegistrationDefinition");
    let assigns = imported(&applied, "RegistrationAssignment");
    let [(def_ns, name)] = defs.as_slice() else { panic!("one definition: {applied}") };
    assert_eq!(def_ns, &sub);
    assert_eq!(assigns, vec![(sub.clone(), name.clone())], "the assignment in the subscription namespace");
    wait_for_assignment_state(&client, &sub, name, "Succeeded").await;

    // Field for field, with its source recorded and the plugin as field manager.
    let [d] = definitions(&client, &sub).await.try_into().expect("exactly one definition");
    assert_eq!(d.spec.registration_definition_name, "Contoso Operations");
    assert_eq!(d.spec.description.as_deref(), Some("Contoso Operations: monitoring and operations"));
    assert_eq!(d.spec.managed_by_tenant_id, MSP_TENANT);
    let got: Vec<(&str, &str, Option<&str>, Vec<&str>)> = d
        .spec
        .authorizations
        .iter()
        .map(|a| {
            (
                a.principal_id.as_str(),
                a.role_definition_id.as_str(),
                a.principal_id_display_name.as_deref(),
                a.delegated_role_definition_ids.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (ENGINEERS, READER, Some("Contoso Engineers"), vec![]),
            (ENGINEERS, DELETE_ROLE, Some("Contoso Engineers"), vec![]),
            (OPERATORS, CONTRIBUTOR, Some("Contoso Operators"), vec![]),
            (ADMINS, UAA, Some("Contoso Admins"), vec![CONTRIBUTOR, LOG_ANALYTICS]),
        ]
    );
    let source = d.annotations().get("kubelighthouse.io/imported-from").cloned().unwrap_or_default();
    assert!(source.starts_with("subscription.json@sha256:"), "{source}");
    let managers: Vec<String> =
        d.managed_fields().iter().filter_map(|f| f.manager.clone()).filter(|m| m == "kubectl-lighthouse").collect();
    assert_eq!(managers, ["kubectl-lighthouse"], "applied by the plugin's field manager");

    // Real requests with the managing tenant's own tokens.
    let engineer = signed_in_as(MSP_TENANT, ENGINEER, &[ENGINEERS]).await;
    expect_list_pods(&engineer, &sub, 200, "a Contoso engineer (Reader)").await;
    assert_eq!(list_pods_status(&engineer, &elsewhere).await, 403, "nothing outside the delegated subscription");
    let engineer_id = projected(MSP_TENANT, ENGINEER);
    let engineers = projected(MSP_TENANT, ENGINEERS);
    expect_access(&client, &engineer_id, &[&engineers], access("create", "deployments.apps", &sub), false).await;
    let operator_id = projected(MSP_TENANT, OPERATOR);
    let operators = projected(MSP_TENANT, OPERATORS);
    expect_access(&client, &operator_id, &[&operators], access("create", "deployments.apps", &sub), true).await;
    expect_access(&client, &operator_id, &[&operators], access("get", "secrets", &sub), false).await;
    let operator = signed_in_as(MSP_TENANT, OPERATOR, &[OPERATORS]).await;
    expect_list_pods(&operator, &sub, 200, "a Contoso operator (Contributor)").await;
    // The same object IDs signed in by another managing tenant: someone else, nothing.
    let impostor = signed_in_as(OTHER_MSP_TENANT, ENGINEER, &[ENGINEERS]).await;
    assert_eq!(list_pods_status(&impostor, &sub).await, 403);

    // Re-import, the very same files: same names, nothing changes.
    let versions = |d: &[RegistrationDefinition], a: &[RegistrationAssignment]| {
        (
            d.iter().map(|o| (o.name_any(), o.resource_version())).collect::<Vec<_>>(),
            a.iter().map(|o| (o.name_any(), o.resource_version())).collect::<Vec<_>>(),
        )
    };
    let before = versions(&definitions(&client, &sub).await, &assignments(&client, &sub).await);
    let again = plugin_ok(&path, &["import", "-f", &template, "-p", &params, "-n", &sub]);
    assert_eq!(
        again,
        format!(
            "registrationdefinition.managedservices.kubelighthouse.io/{name} unchanged (namespace {sub})\n\
             registrationassignment.managedservices.kubelighthouse.io/{name} unchanged (namespace {sub})\n"
        )
    );
    let after = versions(&definitions(&client, &sub).await, &assignments(&client, &sub).await);
    assert_eq!(before, after, "a re-import changes nothing");
    expect_list_pods(&engineer, &sub, 200, "the engineer after the re-import").await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn eligible_authorizations_import_with_their_policy_and_grant_nothing_standing() {
    let client = cluster().await;
    let path = kubeconfig();
    let sub = unique("imp-elig");
    subscription(&client, &sub, &tenant_id()).await;
    let dir = scratch("imp-elig");
    let template = write(&dir, "subscription-managing-tenant-approvers.json", &eligible_template());
    let eligible = json!({"eligibleAuthorizations": {"value": [{
        "justInTimeAccessPolicy": {
            "multiFactorAuthProvider": "Azure",
            "maximumActivationDuration": "PT4H",
            "managedByTenantApprovers": [{"principalId": APPROVERS, "principalIdDisplayName": "Contoso Approvers"}]
        },
        "principalId": ESCALATION,
        "principalIdDisplayName": "Contoso Escalation",
        "roleDefinitionId": CONTRIBUTOR
    }]}});
    let params = write(
        &dir,
        "subscription-managing-tenant-approvers.parameters.json",
        &parameters("Contoso Escalations", MSP_TENANT, eligible),
    );
    let applied = plugin_ok(&path, &["import", "-f", &template, "-p", &params, "-n", &sub, "-o", "json"]);
    let [(_, name)] = imported(&applied, "RegistrationAssignment").try_into().expect("one assignment");
    wait_for_assignment_state(&client, &sub, &name, "Succeeded").await;

    let [d] = definitions(&client, &sub).await.try_into().expect("exactly one definition");
    let [e] = d.spec.eligible_authorizations.as_slice() else { panic!("one eligible authorization") };
    assert_eq!(
        (e.principal_id.as_str(), e.principal_id_display_name.as_deref(), e.role_definition_id.as_str()),
        (ESCALATION, Some("Contoso Escalation"), CONTRIBUTOR)
    );
    let policy = e.just_in_time_access_policy.as_ref().expect("policy");
    assert_eq!(policy.multi_factor_auth_provider, MultiFactorAuthProvider::Azure);
    assert_eq!(policy.maximum_activation_duration.as_deref(), Some("PT4H"));
    let approvers: Vec<_> = policy
        .managed_by_tenant_approvers
        .iter()
        .map(|a| (a.principal_id.as_str(), a.principal_id_display_name.as_deref()))
        .collect();
    assert_eq!(approvers, [(APPROVERS, Some("Contoso Approvers"))]);

    // Standing access works; the eligible principal holds nothing until it activates.
    let engineer = signed_in_as(MSP_TENANT, ENGINEER, &[ENGINEERS]).await;
    expect_list_pods(&engineer, &sub, 200, "a Contoso engineer (Reader)").await;
    let on_call = signed_in_as(MSP_TENANT, ON_CALL, &[ESCALATION]).await;
    assert_eq!(list_pods_status(&on_call, &sub).await, 403, "eligible is not granted");
    let on_call_id = projected(MSP_TENANT, ON_CALL);
    let escalation = projected(MSP_TENANT, ESCALATION);
    expect_access(&client, &on_call_id, &[&escalation], access("create", "deployments.apps", &sub), false).await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_resource_group_template_grants_in_that_resource_group_only() {
    let client = cluster().await;
    let path = kubeconfig();
    let (sub, rg, other_rg, mapped) = (unique("imp-rgsub"), unique("imp-rg"), unique("imp-rg2"), unique("imp-rg3"));
    subscription(&client, &sub, &tenant_id()).await;
    resource_group(&client, &rg, &sub).await;
    resource_group(&client, &other_rg, &sub).await;
    resource_group(&client, &mapped, &sub).await;
    let dir = scratch("imp-rg");
    let template = write(&dir, "rg.json", &resource_group_template());
    // The resource group by its name: the namespace of that name.
    let params =
        write(&dir, "rg.parameters.json", &parameters("Contoso Web Ops", MSP_TENANT, json!({"rgName": {"value": rg}})));
    let applied = plugin_ok(&path, &["import", "-f", &template, "-p", &params, "-n", &sub, "-o", "json"]);
    let [(def_ns, name)] = imported(&applied, "RegistrationDefinition").try_into().expect("one definition");
    assert_eq!(def_ns, sub, "the definition lives in the subscription namespace");
    assert_eq!(imported(&applied, "RegistrationAssignment"), vec![(rg.clone(), name.clone())]);
    let status = wait_for_assignment_state(&client, &rg, &name, "Succeeded").await;
    assert_eq!(status.namespaces, vec![rg.clone()]);

    let engineer = signed_in_as(MSP_TENANT, ENGINEER, &[ENGINEERS]).await;
    expect_list_pods(&engineer, &rg, 200, "a Contoso engineer in the resource group").await;
    assert_eq!(list_pods_status(&engineer, &sub).await, 403, "not in the subscription namespace");
    assert_eq!(list_pods_status(&engineer, &other_rg).await, 403, "not in another resource group");

    // A resource group of another name, mapped by --resource-group.
    let params = write(
        &dir,
        "rg-mapped.parameters.json",
        &parameters("Contoso Db Ops", MSP_TENANT, json!({"rgName": {"value": "Contoso-DB"}})),
    );
    let mapping = format!("Contoso-DB={mapped}");
    let stderr = plugin_fails(&path, &["import", "-f", &template, "-p", &params, "-n", &sub]);
    assert!(stderr.contains("resource group \"Contoso-DB\" has no namespace"), "{stderr}");
    // Mapped to a namespace that is not a resource group of this subscription: refused.
    let stray = format!("Contoso-DB={}", unique("imp-stray"));
    let stderr =
        plugin_fails(&path, &["import", "-f", &template, "-p", &params, "-n", &sub, "--resource-group", &stray]);
    assert!(stderr.contains(&format!("--resource-group {stray}: namespace")), "{stderr}");
    let applied = plugin_ok(
        &path,
        &["import", "-f", &template, "-p", &params, "-n", &sub, "--resource-group", &mapping, "-o", "json"],
    );
    let [(ns, name)] = imported(&applied, "RegistrationAssignment").try_into().expect("one assignment");
    assert_eq!(ns, mapped);
    wait_for_assignment_state(&client, &mapped, &name, "Succeeded").await;
    expect_list_pods(&engineer, &mapped, 200, "a Contoso engineer in the mapped resource group").await;
    assert_eq!(list_pods_status(&engineer, &other_rg).await, 403);
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn the_client_dry_run_prints_what_kubectl_applies() {
    let client = cluster().await;
    let path = kubeconfig();
    let (sub, rg) = (unique("imp-dry"), unique("imp-dryrg"));
    subscription(&client, &sub, &tenant_id()).await;
    resource_group(&client, &rg, &sub).await;
    let dir = scratch("imp-dry");
    let template = write(&dir, "rg.json", &resource_group_template());
    let params =
        write(&dir, "rg.parameters.json", &parameters("Contoso Dry Run", MSP_TENANT, json!({"rgName": {"value": rg}})));
    let yaml =
        plugin_ok(&path, &["import", "-f", &template, "-p", &params, "-n", &sub, "--dry-run=client", "-o", "yaml"]);
    assert_eq!(yaml.matches("\n---\n").count(), 1, "two documents:\n{yaml}");
    assert!(definitions(&client, &sub).await.is_empty(), "a client dry run creates nothing");

    // The stream is what kubectl applies: the server accepts it (dry run), and for real.
    for dry_run in [&["--dry-run=server"][..], &[]] {
        let mut kubectl = Command::new("kubectl")
            .env("KUBECONFIG", &path)
            .args(["apply", "--server-side", "--field-manager", "kubectl-lighthouse", "-f", "-"])
            .args(dry_run)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        use std::io::Write;
        kubectl.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("write");
        let out = kubectl.wait_with_output().expect("kubectl apply");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "kubectl apply {dry_run:?} -f -: {stdout}\n{stderr}");
        assert_eq!(stdout.lines().count(), 2, "{stdout}");
    }
    let [d] = definitions(&client, &sub).await.try_into().expect("one definition");
    let name = d.name_any();
    wait_for_assignment_state(&client, &rg, &name, "Succeeded").await;
    // Importing afterwards finds everything as kubectl applied it.
    let again = plugin_ok(&path, &["import", "-f", &template, "-p", &params, "-n", &sub]);
    assert_eq!(
        again,
        format!(
            "registrationdefinition.managedservices.kubelighthouse.io/{name} unchanged (namespace {sub})\n\
             registrationassignment.managedservices.kubelighthouse.io/{name} unchanged (namespace {rg})\n"
        )
    );
    let [after] = definitions(&client, &sub).await.try_into().expect("one definition");
    assert_eq!(after.metadata.generation, d.metadata.generation);

    // With no cluster at all, the client dry run still prints (the built-in catalog).
    let nowhere = dir.join("nowhere.kubeconfig");
    std::fs::write(
        &nowhere,
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: x\n  cluster: {server: https://127.0.0.1:1}\nusers:\n- name: x\n  user: {token: x}\ncontexts:\n- name: x\n  context: {cluster: x, user: x}\n",
    )
    .expect("write");
    let mapping = format!("{rg}={rg}");
    let out = plugin(
        &nowhere,
        &[
            "import",
            "-f",
            &template,
            "-p",
            &params,
            "-n",
            &sub,
            "--resource-group",
            &mapping,
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, yaml, "the same manifests offline");
    assert!(stderr.contains("no cluster answered"), "{stderr}");
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn what_cannot_be_imported_is_named_and_nothing_is_created() {
    let client = cluster().await;
    let path = kubeconfig();
    let sub = unique("imp-bad");
    subscription(&client, &sub, &tenant_id()).await;
    let dir = scratch("imp-bad");
    let template = write(&dir, "subscription.json", &subscription_template());
    // As published: the tenant is a placeholder; and a role Azure has but the catalog doesn't.
    let mut bad = parameters("Contoso Storage", "<insert managing tenant id>", json!({}));
    bad["parameters"]["authorizations"]["value"][3]["delegatedRoleDefinitionIds"] =
        json!([CONTRIBUTOR, STORAGE_ACCOUNT_CONTRIBUTOR]);
    let params = write(&dir, "subscription.parameters.json", &bad);
    let stderr = plugin_fails(&path, &["import", "-f", &template, "-p", &params, "-n", &sub]);
    assert!(
        stderr.contains(
            "(subscription.parameters.json) parameters.managedByTenantId.value: placeholder \"<insert managing tenant id>\" left in place"
        ),
        "{stderr}"
    );
    // With the tenant given, the role is the one error left, at its template path.
    let stderr = plugin_fails(
        &path,
        &["import", "-f", &template, "-p", &params, "-n", &sub, "--set", &format!("managedByTenantId={MSP_TENANT}")],
    );
    assert!(
        stderr.contains(&format!(
            "authorizations[3].delegatedRoleDefinitionIds[1]: role {STORAGE_ACCOUNT_CONTRIBUTOR} (Storage Account Contributor) is not in the role catalog"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("nothing imported: 1 error"), "{stderr}");
    // An import into a namespace that is not a subscription is refused up front too.
    let plain = unique("imp-plain");
    plain_namespace(&client, &plain).await;
    let stderr = plugin_fails(&path, &["import", "-f", &template, "-p", &params, "-n", &plain]);
    assert!(stderr.contains(&format!("-n {plain}: namespace \"{plain}\" is not a subscription namespace")), "{stderr}");
    assert!(stderr.contains("placeholder"), "every error at once: {stderr}");

    assert!(definitions(&client, &sub).await.is_empty(), "no definition created");
    assert!(assignments(&client, &sub).await.is_empty(), "no assignment created");
    assert!(definitions(&client, &plain).await.is_empty());
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_wider_schema_is_judged_by_what_the_template_deploys() {
    let client = cluster().await;
    let path = kubeconfig();
    let sub = unique("imp-mg");
    subscription(&client, &sub, &tenant_id()).await;
    let dir = scratch("imp-mg");
    let params = write(&dir, "mg.parameters.json", &parameters("Contoso Everywhere", MSP_TENANT, json!({})));

    // A management-group template that also deploys a policy (the policy samples' shape):
    // refused, naming the resource that keeps it at cluster scope; nothing created.
    let mut template = subscription_template();
    template["$schema"] =
        json!("https://schema.management.azure.com/schemas/2019-08-01/managementGroupDeploymentTemplate.json#");
    template["resources"].as_array_mut().expect("resources").push(json!({
        "type": "Microsoft.Authorization/policyDefinitions", "apiVersion": "2021-06-01", "name": "deploy-lighthouse",
        "properties": {"policyType": "Custom", "mode": "All"}
    }));
    let mg = write(&dir, "deployLighthouseIfNotExistManagementGroup.json", &template);
    let stderr = plugin_fails(&path, &["import", "-f", &mg, "-p", &params, "-n", &sub]);
    assert!(stderr.contains("a management-group deployment"), "{stderr}");
    assert!(stderr.contains("Microsoft.Authorization/policyDefinitions (resources[2])"), "{stderr}");
    assert!(stderr.contains("cluster scope, which is never delegable"), "{stderr}");
    assert!(!stderr.contains("SPEC"), "messages point to the docs, not the SPEC: {stderr}");
    assert!(definitions(&client, &sub).await.is_empty(), "nothing created");

    // A subscription onboarding template whose $schema says tenant deployment: Azure deploys it
    // at the scope of the command, and so does import, with a warning about the schema.
    let mut template = subscription_template();
    template["$schema"] =
        json!("https://schema.management.azure.com/schemas/2019-08-01/tenantDeploymentTemplate.json#");
    let tenant = write(&dir, "tenant-schema.json", &template);
    let out = plugin(&path, &["import", "-f", &tenant, "-p", &params, "-n", &sub]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "imports:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: $schema: the schema says a tenant deployment")
            && stderr.contains("every resource is a subscription-level Lighthouse resource"),
        "{stderr}"
    );
    assert_eq!(definitions(&client, &sub).await.len(), 1, "{stdout}");
    assert_eq!(assignments(&client, &sub).await.len(), 1, "{stdout}");
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn hostile_templates_are_refused_by_the_plugin_with_the_path_and_the_limit() {
    let client = cluster().await;
    let path = kubeconfig();
    let sub = unique("imp-hostile");
    subscription(&client, &sub, &tenant_id()).await;
    let dir = scratch("imp-hostile");
    let params = write(&dir, "p.json", &parameters("Contoso Hostile", MSP_TENANT, json!({})));
    let definition = |t: &Value| -> usize {
        t["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .position(|r| r["type"] == "Microsoft.ManagedServices/registrationDefinitions")
            .expect("a definition")
    };

    // concat(concat(...)) 50 000 deep: the plugin's own stack, not a test thread's.
    let mut t = subscription_template();
    let i = definition(&t);
    t["resources"][i]["properties"]["description"] =
        json!(format!("[{}'x'{}]", "concat(".repeat(50_000), ")".repeat(50_000)));
    let deep = write(&dir, "deep.json", &t);
    let stderr = plugin_fails(&path, &["import", "-f", &deep, "-p", &params, "-n", &sub]);
    assert!(
        stderr.contains(&format!("resources[{i}].properties.description: nested deeper than 64 levels")),
        "{stderr}"
    );

    // A string doubled 40 times by nested concat: 64 TiB, refused at the budget.
    let mut t = subscription_template();
    let i = definition(&t);
    let lengths: Vec<String> = (1..=40).map(|n| format!("length(variables('s{n}'))")).collect();
    t["resources"][i]["properties"]["description"] = json!(format!("[concat('n', {})]", lengths.join(", ")));
    t["variables"]["s0"] = json!("x".repeat(64));
    for n in 0..40 {
        t["variables"][format!("s{}", n + 1)] = json!(format!("[concat(variables('s{n}'), variables('s{n}'))]"));
    }
    let doubled = write(&dir, "doubled.json", &t);
    let stderr = plugin_fails(&path, &["import", "-f", &doubled, "-p", &params, "-n", &sub]);
    assert!(
        stderr.contains("variables.s") && stderr.contains("needs more than its budget of 33554432 units"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing imported: 1 error"), "{stderr}");
    assert!(definitions(&client, &sub).await.is_empty(), "nothing created");
}
