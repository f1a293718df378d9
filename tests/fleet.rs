//! The fleet (docs/fleet.md) on real control planes.
//!
//! The customer cluster's report: served by the real binary through the real aggregation
//! layer, granted by the customer with RBAC (`get` on `reports`, `resourceNames` the tenant)
//! to a ServiceAccount the hub signs in as, with that ServiceAccount's real token. Tenant A's
//! credential reads A's report and nothing else: not B's report, not a list of reports, no
//! Secret, no delegation object; the report holds A's delegations and only what it names;
//! deleting the binding withdraws the grant.

mod common;

use std::collections::BTreeSet;

use common::views::ViewsServer;
use common::*;
use kube::api::{Api, DeleteParams};
use kube::Client;
use kube_lighthouse::api::view::Report;
use serde_json::json;

/// The ClusterRole and ClusterRoleBinding a customer writes to grant `tenant`'s report to
/// ServiceAccount `namespace/name` (docs/fleet.md, "Granting a hub its report").
fn grant(name: &str, tenant: &str, namespace: &str, account: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name},
         "rules": [{"apiGroups": ["view.kubelighthouse.io"], "resources": ["reports"],
                    "resourceNames": [tenant], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ]})
}

fn apply(kubeconfig: &std::path::Path, dir: &std::path::Path, name: &str, objects: &serde_json::Value) {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, objects.to_string()).expect("write");
    kubectl(kubeconfig, &["apply", "-f", &file.to_string_lossy()]);
}

/// The HTTP status of a request that must fail, or 200.
fn code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(other) => panic!("not an API answer: {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_tenants_grant_reads_that_tenants_report_and_nothing_else() {
    let path = kubeconfig();
    let views = ViewsServer::start(&path);
    let admin = client_for(&path).await;

    // One customer subscription (with a resource group) delegated to both tenants.
    let customer = tenant_id();
    let (sub, rg) = (unique("fleet-sub"), unique("fleet-rg"));
    subscription(&admin, &sub, &customer).await;
    resource_group(&admin, &rg, &sub).await;
    let (engineer, engineers) = (tenant_id(), tenant_id());
    definition(&admin, &sub, "contoso", MSP_TENANT, vec![authorization(&engineers, "Group", READER)]).await;
    assignment(&admin, &sub, "contoso", "contoso").await;
    definition(&admin, &sub, "contoso-web", MSP_TENANT, vec![authorization(&engineer, "User", CONTRIBUTOR)]).await;
    assignment(&admin, &rg, "contoso-web", "contoso-web").await;
    definition(&admin, &sub, "fabrikam", OTHER_MSP_TENANT, vec![authorization(&engineer, "", READER)]).await;
    assignment(&admin, &sub, "fabrikam", "fabrikam").await;
    for (ns, name) in [(&sub, "contoso"), (&rg, "contoso-web"), (&sub, "fabrikam")] {
        wait_for_assignment_state(&admin, ns, name, "Succeeded").await;
    }

    // The customer grants each tenant's hub its report, to a ServiceAccount of its own.
    let hubs = unique("fleet-hubs");
    plain_namespace(&admin, &hubs).await;
    service_account(&admin, &hubs, "contoso-hub").await;
    service_account(&admin, &hubs, "fabrikam-hub").await;
    let (contoso_grant, fabrikam_grant) = (unique("report-contoso"), unique("report-fabrikam"));
    apply(&path, &views.dir, "contoso", &grant(&contoso_grant, MSP_TENANT, &hubs, "contoso-hub"));
    apply(&path, &views.dir, "fabrikam", &grant(&fabrikam_grant, OTHER_MSP_TENANT, &hubs, "fabrikam-hub"));
    let contoso = client_with_token(&service_account_token(&hubs, "contoso-hub")).await;
    let fabrikam = client_with_token(&service_account_token(&hubs, "fabrikam-hub")).await;
    let reports = |c: &Client| Api::<Report>::all(c.clone());

    // Contoso's credential reads Contoso's report: both its delegations in this subscription,
    // each with what it names, and nothing of Fabrikam's.
    let ours = poll(
        "Contoso's report lists its two delegations",
        || async { reports(&contoso).get(MSP_TENANT).await.ok() },
        |r| {
            r.as_ref().is_some_and(|r| {
                r.delegations.iter().filter(|d| d.subscription == sub).count() == 2
                    && r.delegations.iter().all(|d| d.state == "Succeeded" || d.subscription != sub)
            })
        },
    )
    .await
    .expect("a report");
    assert_eq!(ours.managed_by_tenant_id, MSP_TENANT);
    assert!(!ours.observed_time.is_empty());
    let here: Vec<_> = ours.delegations.iter().filter(|d| d.subscription == sub).collect();
    let names: BTreeSet<&str> = here.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from([format!("{sub}.contoso").as_str(), format!("{rg}.contoso-web").as_str()]));
    let web = here.iter().find(|d| d.namespace == rg).expect("the resource group's");
    assert_eq!((web.customer_tenant_id.as_str(), web.scope_kind.as_str()), (customer.as_str(), "ResourceGroup"));
    assert_eq!(web.offer.display_name, "contoso-web offer");
    assert_eq!(web.authorizations.len(), 1);
    let a = &web.authorizations[0];
    assert_eq!((a.principal.principal_id.as_str(), a.role.as_str()), (engineer.as_str(), "Contributor"));
    assert_eq!(a.principal.subjects[0].name, projected(MSP_TENANT, &engineer));
    assert_eq!(web.namespaces, vec![rg.clone()]);
    let text = serde_json::to_string(&ours).expect("json");
    assert!(!text.contains(OTHER_MSP_TENANT) && !text.contains("fabrikam"), "Fabrikam in Contoso's report: {text}");

    // Fabrikam's credential: its own report only.
    let theirs = reports(&fabrikam).get(OTHER_MSP_TENANT).await.expect("Fabrikam's report");
    assert!(theirs.delegations.iter().any(|d| d.name == format!("{sub}.fabrikam")));
    assert!(!serde_json::to_string(&theirs).expect("json").contains(MSP_TENANT));

    // Neither reads the other's report, a list of reports, a Secret, or the delegations.
    assert_eq!(code(reports(&contoso).get(OTHER_MSP_TENANT).await), 403);
    assert_eq!(code(reports(&fabrikam).get(MSP_TENANT).await), 403);
    assert_eq!(code(reports(&contoso).list(&Default::default()).await), 403);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(contoso.clone(), &sub);
    assert_eq!(code(secrets.list(&Default::default()).await), 403);
    let definitions: Api<kube_lighthouse::api::RegistrationDefinition> = Api::namespaced(contoso.clone(), &sub);
    assert_eq!(code(definitions.get("contoso").await), 403);
    // A managing-tenant engineer signed in with their own token is granted no report either.
    if let Some(token) = token(MSP_TENANT, &kl_token_issuer::TokenRequest::new(&engineer)) {
        let engineer = client_with_token(&token).await;
        assert_eq!(code(reports(&engineer).get(MSP_TENANT).await), 403);
    }

    // A delegation revoked in the cluster leaves the report at once (no hub involved).
    let assignments: Api<kube_lighthouse::api::RegistrationAssignment> = Api::namespaced(admin.clone(), &rg);
    assignments.delete("contoso-web", &DeleteParams::default()).await.expect("delete");
    poll(
        "the revoked delegation leaves the report",
        || async { reports(&contoso).get(MSP_TENANT).await.expect("report") },
        |r| !r.delegations.iter().any(|d| d.namespace == rg),
    )
    .await;

    // The customer sees both grants among its providers.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-lighthouse"))
        .args(["providers", "-A", "--kubeconfig"])
        .arg(&path)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl-lighthouse");
    let providers = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{providers}{}", String::from_utf8_lossy(&out.stderr));
    for (tenant, hub, binding) in
        [(MSP_TENANT, "contoso-hub", &contoso_grant), (OTHER_MSP_TENANT, "fabrikam-hub", &fabrikam_grant)]
    {
        let row = format!("ServiceAccount:{hubs}/{hub}");
        assert!(
            providers.lines().any(|l| l.contains(tenant) && l.contains(&row) && l.contains(binding.as_str())),
            "no grant of {tenant} to {hub} in:\n{providers}"
        );
    }

    // The customer withdraws Contoso's grant: deleting the binding is enough.
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin.clone());
    bindings.delete(&contoso_grant, &DeleteParams::default()).await.expect("delete binding");
    eventually("the withdrawn grant reads nothing", || async { code(reports(&contoso).get(MSP_TENANT).await) == 403 })
        .await;
    assert_eq!(code(reports(&fabrikam).get(OTHER_MSP_TENANT).await), 200, "Fabrikam's grant stands");
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    for name in [&contoso_grant, &fabrikam_grant] {
        let _ = roles.delete(name, &DeleteParams::default()).await;
        let _ = bindings.delete(name, &DeleteParams::default()).await;
    }
}
