//! Identities a test acts as: an identity impersonated by the admin, a ServiceAccount with
//! its own token, and a managing-tenant identity signed in with a token of its own tenant's
//! local issuer (hack/control-plane.sh: `contoso` for `MSP_TENANT`, `fabrikam` for
//! `OTHER_MSP_TENANT`; SPEC §2).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use super::cluster::kubeconfig;

/// The local token issuers of the managing tenants, under `KL_TEST_ISSUERS_DIR` or the
/// control plane's state directory. Empty only for a cluster without them (outside CI).
pub fn issuers() -> &'static [kl_token_issuer::Issuer] {
    static ISSUERS: OnceLock<Vec<kl_token_issuer::Issuer>> = OnceLock::new();
    ISSUERS.get_or_init(|| {
        let dir = std::env::var_os("KL_TEST_ISSUERS_DIR")
            .map(PathBuf::from)
            .or_else(|| kubeconfig().parent().map(|p| p.join("issuers")));
        let found: Vec<kl_token_issuer::Issuer> = dir
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| kl_token_issuer::Issuer::load(&entry.path()).ok())
            .collect();
        if found.is_empty() {
            assert!(std::env::var_os("CI").is_none(), "no token issuers in CI: hack/control-plane.sh starts them");
            eprintln!("SKIPPED: real sign-in (no token issuers beside the test cluster)");
        }
        found
    })
}

/// The issuer that speaks for `tenant`.
pub fn issuer(tenant: &str) -> Option<&'static kl_token_issuer::Issuer> {
    issuers().iter().find(|i| i.tenant() == tenant)
}

/// A token of `tenant`'s issuer for `request`.
pub fn token(tenant: &str, request: &kl_token_issuer::TokenRequest) -> Option<String> {
    Some(issuer(tenant)?.mint(request).expect("mint token"))
}

/// The projected identity of a managing-tenant principal under the default templates.
pub fn projected(tenant: &str, principal: &str) -> String {
    format!("{tenant}:{principal}")
}

/// The one tenant and principal IDs behind a managing-tenant identity: `user` `T:P` (or any
/// user name that is not projected, when it only stands in for some member of the groups)
/// and groups `T:G`. None when the names mix tenants or are not projected.
fn projected_identity(user: &str, groups: &[&str]) -> Option<(String, String, Vec<String>)> {
    let split = |name: &str| {
        let (tenant, id) = name.split_once(':')?;
        kube_lighthouse::model::tenant::Guid::parse(tenant)?;
        Some((tenant.to_string(), id.to_string()))
    };
    let user = split(user);
    let groups: Option<Vec<(String, String)>> = groups.iter().map(|g| split(g)).collect();
    let groups = groups?;
    let tenant = user.as_ref().map(|(t, _)| t.clone()).or_else(|| groups.first().map(|(t, _)| t.clone()))?;
    if groups.iter().any(|(t, _)| *t != tenant) {
        return None;
    }
    // A stand-in user name becomes a fresh object ID that nothing grants anything to.
    let oid = user.map(|(_, p)| p).unwrap_or_else(|| "00000000-0000-0000-0000-00000000ffff".to_string());
    Some((tenant, oid, groups.into_iter().map(|(_, g)| g).collect()))
}

/// A client signed in as the managing-tenant identity `user`/`groups`, with a token of its
/// tenant's own issuer. None when the identity is not a managing tenant's, or there are no
/// issuers (outside CI).
pub async fn signed_in(user: &str, groups: &[&str]) -> Option<Client> {
    let (tenant, oid, groups) = projected_identity(user, groups)?;
    let token = token(&tenant, &kl_token_issuer::TokenRequest::new(oid).groups(groups))?;
    Some(client_with_token(&token).await)
}

/// A client that signs in with `token` (a bearer token: a ServiceAccount's, or a managing
/// tenant's from its issuer) against the test cluster: requests it makes are that identity's
/// own, authenticated by the API server, with no impersonation.
pub async fn client_with_token(token: &str) -> Client {
    let path = kubeconfig();
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("kubeconfig")).expect("yaml");
    for user in yaml["users"].as_sequence_mut().expect("users") {
        user["user"] = serde_yaml::to_value(json!({"token": token})).expect("token");
    }
    let kubeconfig = Kubeconfig::from_yaml(&serde_yaml::to_string(&yaml).expect("yaml")).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

/// A fresh token of ServiceAccount `namespace/name` (TokenRequest, `kubectl create token`).
pub fn service_account_token(namespace: &str, name: &str) -> String {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig())
        .args(["create", "token", name, "-n", namespace, "--duration", "1h"])
        .output()
        .expect("kubectl create token");
    assert!(out.status.success(), "create token: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// The kubeconfig at `path`, acting as `user` in `groups` (impersonation by the admin).
fn impersonating(path: &std::path::Path, user: &str, groups: &[&str]) -> Kubeconfig {
    let mut kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig readable");
    for named in &mut kubeconfig.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.to_string());
            auth.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
        }
    }
    kubeconfig
}

/// A kubeconfig file in `dir` for a controller subprocess acting as `user` (still in
/// system:masters), so the audit log attributes each of its requests to it.
pub fn impersonating_kubeconfig(admin: &std::path::Path, dir: &std::path::Path, user: &str) -> PathBuf {
    let config = impersonating(admin, user, &["system:masters"]);
    let path = dir.join(format!("{user}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml")).expect("write kubeconfig");
    path
}

/// A client acting as `user` in `groups` (impersonation by the admin): requests it makes are
/// authorized exactly as that identity's would be.
pub async fn client_as(user: &str, groups: &[&str]) -> Client {
    let kubeconfig = impersonating(&kubeconfig(), user, groups);
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}
