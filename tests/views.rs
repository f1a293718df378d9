//! The views API (SPEC §10) through the real aggregation layer, with real tokens of two
//! managing tenants: each engineer sees exactly the customers and delegations that name them
//! (standing, eligible, or as an approver), in `kubectl get` tables and as YAML; someone with
//! no delegation sees empty lists; an unknown name is a 404; and the controller's port refuses
//! a caller named in headers by anyone but the API server's front proxy. The `kubectl-lighthouse`
//! plugin runs as a subprocess on the same delegations, for both sides (SPEC §11).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use common::views::{client_certificate, curl, token_kubeconfig, ViewsServer};
use common::*;
use kl_token_issuer::TokenRequest;
use kube::api::Api;
use kube::Client;
use kube_lighthouse::api::view::{Customer, Delegation};
use kube_lighthouse::api::{RegistrationAssignment, RegistrationDefinition};
use serde_json::json;

const LOG_ANALYTICS: &str = "92aaf0da-9dab-42b6-94a3-d43ce8d16293";

/// The views server of this test binary, shared by the tests that run at the same time (one
/// APIService per cluster); stopped and deregistered when the last of them ends.
fn server(kubeconfig: &Path) -> Arc<ViewsServer> {
    static SERVER: Mutex<Weak<ViewsServer>> = Mutex::new(Weak::new());
    let mut shared = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = shared.upgrade() {
        return s;
    }
    let s = Arc::new(ViewsServer::start(kubeconfig));
    *shared = Arc::downgrade(&s);
    s
}

/// A GUID no other test and no earlier run uses: principals that only this run's delegations
/// name, so the views of the shared cluster's other suites never show up here.
fn fresh_guid() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = tenant_id();
    format!("{}{:04x}", &base[..base.len() - 4], N.fetch_add(1, Ordering::Relaxed) & 0xffff)
}

/// A definition with standing and eligible authorizations, and its assignment at `scope`.
#[allow(clippy::too_many_arguments)]
async fn delegate(
    client: &Client,
    subscription: &str,
    scope: &str,
    name: &str,
    tenant: &str,
    authorizations: serde_json::Value,
    eligible: serde_json::Value,
) {
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), subscription);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": name, "namespace": subscription},
        "spec": {
            "registrationDefinitionName": format!("{name} offer"),
            "managedByTenantId": tenant,
            "authorizations": authorizations,
            "eligibleAuthorizations": eligible,
        },
    });
    apply_json(&definitions, name, body).await;
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), scope);
    let body = json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationAssignment",
        "metadata": {"name": name, "namespace": scope},
        "spec": {"registrationDefinitionRef": {"name": name}},
    });
    apply_json(&assignments, name, body).await;
}

fn eligible(principal: &str, role: &str, approvers: &[&str]) -> serde_json::Value {
    let approvers: Vec<_> =
        approvers.iter().map(|a| json!({"principalId": a, "principalIdDisplayName": "approvers"})).collect();
    json!({
        "principalId": principal,
        "principalIdDisplayName": "on call",
        "roleDefinitionId": role,
        "justInTimeAccessPolicy": {"maximumActivationDuration": "PT4H", "managedByTenantApprovers": approvers},
    })
}

async fn names<K>(client: &Client) -> BTreeSet<String>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let list = api.list(&Default::default()).await.expect("list a view");
    list.items.iter().filter_map(|o| o.meta().name.clone()).collect()
}

async fn delegations(client: &Client) -> Vec<Delegation> {
    let api: Api<Delegation> = Api::all(client.clone());
    api.list(&Default::default()).await.expect("list delegations").items
}

fn set<S: AsRef<str>>(items: &[S]) -> BTreeSet<String> {
    items.iter().map(|s| s.as_ref().to_string()).collect()
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl").env("KUBECONFIG", kubeconfig).args(args).output().expect("kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = kubectl(kubeconfig, args);
    assert!(ok, "kubectl {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// What one test run sets up: customers of two managing tenants, and their engineers.
struct World {
    /// Contoso's engineer: user and group object IDs (the same IDs exist at Fabrikam).
    engineer: String,
    engineers: String,
    customers: [String; 5],
    /// Scope namespaces: s1, s2, r2 (a resource group of s2), s3, s4, s5.
    s1: String,
    r2: String,
    s3: String,
    s5: String,
}

/// c1: Contoso (the engineers' group Reader, the engineer eligible for Contributor with
/// approvers) and Fabrikam (its engineer Reader); c2: Contoso, at a resource group, the
/// engineer Contributor; c3: Contoso, the engineer only an approver of on-call's eligible
/// role; c4: Contoso, on-call only, and a Failed delegation naming the engineer as Owner
/// (which grants nothing, so it shows to no one); c5: Fabrikam, its engineers' group Reader.
async fn world(client: &Client) -> World {
    let (engineer, engineers, leads, on_call) = (fresh_guid(), fresh_guid(), fresh_guid(), fresh_guid());
    let customers: [String; 5] = std::array::from_fn(|_| fresh_guid());
    let [s1, s2, r2, s3, s4, s5] = ["s1", "s2", "r2", "s3", "s4", "s5"].map(|n| unique(&format!("views-{n}")));
    for (sub, tenant) in [(&s1, 0), (&s2, 1), (&s3, 2), (&s4, 3), (&s5, 4)] {
        subscription(client, sub, &customers[tenant]).await;
    }
    resource_group(client, &r2, &s2).await;
    let none = json!([]);
    delegate(
        client,
        &s1,
        &s1,
        "contoso-a1",
        MSP_TENANT,
        json!([authorization(&engineers, "Group", READER)]),
        json!([eligible(&engineer, CONTRIBUTOR, &[&leads])]),
    )
    .await;
    delegate(
        client,
        &s1,
        &s1,
        "fabrikam-b1",
        OTHER_MSP_TENANT,
        json!([authorization(&engineer, "User", READER)]),
        none.clone(),
    )
    .await;
    delegate(
        client,
        &s2,
        &r2,
        "contoso-a2",
        MSP_TENANT,
        json!([authorization(&engineer, "User", CONTRIBUTOR)]),
        none.clone(),
    )
    .await;
    delegate(
        client,
        &s3,
        &s3,
        "contoso-a3",
        MSP_TENANT,
        json!([authorization(&on_call, "Group", READER)]),
        json!([eligible(&on_call, LOG_ANALYTICS, &[&engineer])]),
    )
    .await;
    delegate(
        client,
        &s4,
        &s4,
        "contoso-a4",
        MSP_TENANT,
        json!([authorization(&on_call, "Group", READER)]),
        none.clone(),
    )
    .await;
    // Owner is never delegable: Failed, it grants the engineer nothing (SPEC §3, §10).
    delegate(
        client,
        &s4,
        &s4,
        "contoso-owner",
        MSP_TENANT,
        json!([authorization(&engineer, "User", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635")]),
        none.clone(),
    )
    .await;
    delegate(
        client,
        &s5,
        &s5,
        "fabrikam-b5",
        OTHER_MSP_TENANT,
        json!([authorization(&engineers, "Group", READER)]),
        none,
    )
    .await;
    for (ns, name) in
        [(&s1, "contoso-a1"), (&s1, "fabrikam-b1"), (&r2, "contoso-a2"), (&s3, "contoso-a3"), (&s5, "fabrikam-b5")]
    {
        wait_for_assignment_state(client, ns, name, "Succeeded").await;
    }
    wait_for_assignment_state(client, &s4, "contoso-owner", "Failed").await;
    World { engineer, engineers, customers, s1, r2, s3, s5 }
}

fn delegation<'a>(all: &'a [Delegation], name: &str) -> &'a Delegation {
    all.iter().find(|d| d.metadata.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no delegation {name}"))
}

fn role_ids(holdings: &[kube_lighthouse::api::view::RoleHolding]) -> Vec<&str> {
    holdings.iter().map(|h| h.role_definition_id.as_str()).collect()
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn each_managing_tenant_sees_exactly_its_own_customers_and_delegations() {
    let path = kubeconfig();
    if issuers().is_empty() {
        return;
    }
    let views = server(&path);
    let admin = client_for(&path).await;
    let w = world(&admin).await;
    let [c1, c2, c3, _c4, c5] = &w.customers;

    let contoso_token = token(MSP_TENANT, &TokenRequest::new(&w.engineer).group(&w.engineers)).expect("contoso");
    let fabrikam_token =
        token(OTHER_MSP_TENANT, &TokenRequest::new(&w.engineer).group(&w.engineers)).expect("fabrikam");
    let nobody_token = token(MSP_TENANT, &TokenRequest::new(fresh_guid())).expect("contoso");
    let contoso = client_with_token(&contoso_token).await;
    let fabrikam = client_with_token(&fabrikam_token).await;
    let nobody = client_with_token(&nobody_token).await;

    // Contoso's engineer: three customers (c4 names only on-call; c1's Fabrikam delegation is
    // not theirs), each delegation with the roles they hold there.
    let (a1, b1, a2, a3, b5) = (
        format!("{}.contoso-a1", w.s1),
        format!("{}.fabrikam-b1", w.s1),
        format!("{}.contoso-a2", w.r2),
        format!("{}.contoso-a3", w.s3),
        format!("{}.fabrikam-b5", w.s5),
    );
    eventually("Contoso's engineer sees c1, c2 and c3", || async {
        names::<Customer>(&contoso).await == set(&[c1, c2, c3])
    })
    .await;
    assert_eq!(names::<Delegation>(&contoso).await, set(&[&a1, &a2, &a3]));
    let mine = delegations(&contoso).await;
    let d = delegation(&mine, &a1);
    assert_eq!((role_ids(&d.my_roles.standing), role_ids(&d.my_roles.eligible)), (vec![READER], vec![CONTRIBUTOR]));
    assert_eq!(d.my_roles.standing[0].subject, format!("Group:{MSP_TENANT}:{}", w.engineers));
    assert_eq!(d.state, "Succeeded");
    assert_eq!(d.customer_tenant_id, *c1);
    assert_eq!(d.namespaces, vec![w.s1.clone()]);
    let d = delegation(&mine, &a2);
    assert_eq!(role_ids(&d.my_roles.standing), vec![CONTRIBUTOR]);
    assert_eq!(d.scope_kind.as_str(), "ResourceGroup");
    let d = delegation(&mine, &a3);
    assert!(d.my_roles.standing.is_empty() && d.my_roles.eligible.is_empty(), "{d:?}");
    assert_eq!(role_ids(&d.my_roles.approver), vec![LOG_ANALYTICS]);
    let customer: Customer = Api::all(contoso.clone()).get(c1).await.expect("get c1");
    assert_eq!(customer.delegation_count, 1, "Fabrikam's delegation at c1 is not Contoso's engineer's");
    assert_eq!(customer.offers.iter().map(|o| o.display_name.as_str()).collect::<Vec<_>>(), ["contoso-a1 offer"]);

    // Fabrikam's engineer (the same object IDs, another tenant): c1 and c5 only.
    assert_eq!(names::<Customer>(&fabrikam).await, set(&[c1, c5]));
    assert_eq!(names::<Delegation>(&fabrikam).await, set(&[&b1, &b5]));

    // Someone signed in with no delegation: empty lists, and a customer they do not see is 404.
    assert!(names::<Customer>(&nobody).await.is_empty());
    assert!(names::<Delegation>(&nobody).await.is_empty());
    for (client, name) in [(&nobody, c1.as_str()), (&contoso, c5.as_str()), (&contoso, "no-such-customer")] {
        match Api::<Customer>::all(client.clone()).get(name).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{s:?}"),
            other => panic!("get customer {name}: expected 404, got {other:?}"),
        }
    }
    match Api::<Delegation>::all(fabrikam.clone()).get(&a1).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("Fabrikam's engineer must not get Contoso's delegation: {other:?}"),
    }

    // kubectl, as the engineer with their own token: server-side tables, -o wide, -o yaml, 404.
    let kubeconfig = token_kubeconfig(&path, &contoso_token, &views.dir, "contoso-engineer");
    let table = kubectl_ok(&kubeconfig, &["get", "customers"]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["CUSTOMER TENANT", "OFFERS", "DELEGATIONS", "MY ROLES"] {
        assert!(header.contains(column), "no {column} in:\n{table}");
    }
    let row = table.lines().find(|l| l.starts_with(c1.as_str())).unwrap_or_else(|| panic!("no row for c1:\n{table}"));
    assert!(
        row.contains("contoso-a1 offer") && row.contains("Reader") && row.contains("Contributor(eligible)"),
        "{row}"
    );
    assert!(!table.contains(c5.as_str()), "{table}");
    let table = kubectl_ok(&kubeconfig, &["get", "delegations"]);
    for column in ["NAME", "CUSTOMER TENANT", "NAMESPACE", "SCOPE", "OFFER", "MY ROLES", "STATE"] {
        assert!(table.lines().next().unwrap_or_default().contains(column), "no {column} in:\n{table}");
    }
    let row = table.lines().find(|l| l.starts_with(a2.as_str())).unwrap_or_else(|| panic!("no row for {a2}:\n{table}"));
    assert!(row.contains("ResourceGroup") && row.contains("Contributor") && row.contains("Succeeded"), "{row}");
    assert!(kubectl_ok(&kubeconfig, &["get", "delegations", "-o", "wide"]).contains("ASSIGNMENT"));
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&kubectl_ok(&kubeconfig, &["get", "customers", "-o", "yaml"])).expect("yaml");
    let kinds: BTreeSet<&str> =
        yaml["items"].as_sequence().expect("items").iter().filter_map(|i| i["kind"].as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["Customer"]));
    assert_eq!(yaml["items"].as_sequence().map(Vec::len), Some(3));
    let one: serde_json::Value =
        serde_json::from_str(&kubectl_ok(&kubeconfig, &["get", "delegation", &a3, "-o", "json"])).expect("json");
    assert_eq!(one["kind"], "Delegation");
    assert_eq!(one["apiVersion"], "view.kubelighthouse.io/v1alpha1");
    let (ok, _, stderr) = kubectl(&kubeconfig, &["get", "customer", c5]);
    assert!(!ok && (stderr.contains("NotFound") || stderr.contains("not found")), "{stderr}");

    // The plugin, as a subprocess, as the engineer and as the customer's admin.
    let (a1, a2, a3, b1) = (a1.as_str(), a2.as_str(), a3.as_str(), b1.as_str());
    let me = projected(MSP_TENANT, &w.engineer);
    let whoami = plugin_ok(&kubeconfig, &["whoami"]);
    assert!(whoami.contains(&me) && whoami.contains(MSP_TENANT), "{whoami}");
    let customers = plugin_ok(&kubeconfig, &["customers"]);
    for c in [c1, c2, c3] {
        assert!(customers.contains(c.as_str()), "no {c} in:\n{customers}");
    }
    assert!(!customers.contains(c5.as_str()) && customers.contains("contoso-a1 offer"), "{customers}");
    let listed = plugin_ok(&kubeconfig, &["delegations"]);
    for d in [a1, a2, a3] {
        assert!(listed.contains(d), "no {d} in:\n{listed}");
    }
    assert!(!listed.contains(b1), "{listed}");
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&plugin_ok(&kubeconfig, &["delegations", "-o", "yaml"])).expect("yaml");
    assert_eq!(yaml["items"].as_sequence().map(Vec::len), Some(3), "{yaml:?}");
    let fabrikam_kubeconfig = token_kubeconfig(&path, &fabrikam_token, &views.dir, "fabrikam-engineer");
    let theirs = plugin_ok(&fabrikam_kubeconfig, &["delegations"]);
    assert!(theirs.contains(b1) && !theirs.contains(a1), "{theirs}");

    // The customer's side: the providers of c1's subscription, and its definitions.
    let providers = plugin_ok(&path, &["providers", "-n", &w.s1]);
    for expected in [MSP_TENANT, OTHER_MSP_TENANT, "contoso-a1 offer", "fabrikam-b1 offer"] {
        assert!(providers.contains(expected), "no {expected} in:\n{providers}");
    }
    let definitions = plugin_ok(&path, &["definition", "list", "-n", &w.s1]);
    assert!(definitions.contains("contoso-a1") && definitions.contains("fabrikam-b1"), "{definitions}");

    // `definition create --dry-run=client -o yaml` writes a manifest the API server accepts.
    let manifest = plugin_ok(
        &path,
        &[
            "definition",
            "create",
            "contoso-more",
            "-n",
            &w.s1,
            "--tenant-id",
            MSP_TENANT,
            "--display-name",
            "Contoso, more",
            "--authorization",
            &format!("principalId={},role=Reader,principalType=Group", w.engineers),
            "--authorization",
            &format!("principalId={},role=Contributor,principalType=User", w.engineer),
            "--eligible",
            &format!("principalId={},role=Contributor,maxDuration=PT4H,approvers={}", w.engineers, w.engineer),
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    let object: serde_yaml::Value = serde_yaml::from_str(&manifest).expect("yaml manifest");
    assert_eq!(object["kind"], "RegistrationDefinition");
    assert_eq!(object["spec"]["authorizations"].as_sequence().map(Vec::len), Some(2), "{manifest}");
    let file = views.dir.join("contoso-more.yaml");
    std::fs::write(&file, &manifest).expect("write manifest");
    let applied = kubectl_ok(&path, &["apply", "--dry-run=server", "-f", &file.to_string_lossy()]);
    assert!(applied.contains("contoso-more") && applied.contains("server dry run"), "{applied}");
}

/// `kubectl-lighthouse ARGS --kubeconfig KUBECONFIG`, which must succeed: its stdout.
fn plugin_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new(common::plugin_binary())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl-lighthouse");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubectl-lighthouse {args:?} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout.to_string()
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn the_port_believes_no_caller_but_the_api_servers_front_proxy() {
    let path = kubeconfig();
    let views = server(&path);
    let customers = views.url("/apis/view.kubelighthouse.io/v1alpha1/customers");
    let engineer = projected(MSP_TENANT, "00000000-0000-0000-0000-00000000e001");
    let forged = [("X-Remote-User", engineer.as_str()), ("X-Remote-Group", "system:masters")];

    // No client certificate at all: 401 with a Status, whatever the headers say.
    let (code, body) = curl(&customers, &views.ca, None, &forged);
    assert_eq!(code, 401, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status body");
    assert_eq!((status["kind"].as_str(), status["code"].as_u64()), (Some("Status"), Some(401)));
    // Discovery too.
    let (code, _) = curl(&views.url("/apis/view.kubelighthouse.io/v1alpha1"), &views.ca, None, &forged);
    assert_eq!(code, 401);

    // A client certificate of another CA, with the front proxy's name: 401.
    let dir = views.dir.join("forged");
    std::fs::create_dir_all(&dir).expect("dir");
    let (other_ca, _, _) = common::webhook::certificates_for(&dir, "DNS:elsewhere");
    let other_ca_key = dir.join("ca.key");
    let (cert, key) = client_certificate(&dir, "impostor", "front-proxy-client", &other_ca, &other_ca_key);
    let (code, body) = curl(&customers, &views.ca, Some((&cert, &key)), &forged);
    assert_eq!(code, 401, "{body}");

    // The local control plane's own front-proxy CA: a name it did not allow is refused, and
    // its real front-proxy certificate is believed (what the aggregator does).
    let Some(state) = local_state_dir() else {
        eprintln!("not the local control plane: the front-proxy CA's key is not at hand");
        return;
    };
    let pki = state.join("pki");
    let (ca, ca_key) = (dir.join("front-proxy-ca.crt"), dir.join("front-proxy-ca.key"));
    std::fs::copy(pki.join("front-proxy-ca.crt"), &ca).expect("copy CA");
    std::fs::copy(pki.join("front-proxy-ca.key"), &ca_key).expect("copy CA key");
    let (cert, key) = client_certificate(&dir, "not-allowed", "not-the-front-proxy", &ca, &ca_key);
    let (code, body) = curl(&customers, &views.ca, Some((&cert, &key)), &forged);
    assert_eq!(code, 401, "{body}");
    let proxy = (pki.join("front-proxy-client.crt"), pki.join("front-proxy-client.key"));
    let mut answer = (0, String::new());
    eventually("the front proxy's certificate is believed", || {
        let got = curl(&customers, &views.ca, Some((&proxy.0, &proxy.1)), &forged);
        let done = got.0 == 200;
        answer = got;
        async move { done }
    })
    .await;
    let (code, body) = answer;
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("a list");
    assert_eq!(list["kind"], "CustomerList");
    // The front proxy must name a user.
    let (code, _) = curl(&customers, &views.ca, Some((&proxy.0, &proxy.1)), &[("X-Remote-Group", "system:masters")]);
    assert_eq!(code, 401);
}
