//! The kube client from kubectl's global flags: `--kubeconfig`, `--context`, `--as`,
//! `--as-group`, and the namespace (`-n`, else the context's).

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::cli::GlobalArgs;
use super::PluginError;

/// A connected client and the namespace commands default to.
pub struct Connection {
    /// The client, impersonating `--as`/`--as-group` when given.
    pub client: Client,
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    pub namespace: String,
}

/// The [`Config`] the global flags describe: the kubeconfig of `--kubeconfig` (else
/// `$KUBECONFIG`, `~/.kube/config`, or the in-cluster configuration) at `--context`, with
/// kubectl's impersonation headers for `--as` and `--as-group`.
///
/// # Errors
/// [`PluginError::Kubeconfig`] or [`PluginError::Infer`] when no configuration is usable.
pub async fn config(global: &GlobalArgs) -> Result<Config, PluginError> {
    let options = KubeConfigOptions { context: global.context.clone(), cluster: None, user: None };
    let mut config = match &global.kubeconfig {
        Some(path) => Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?,
        None if global.context.is_some() => Config::from_kubeconfig(&options).await?,
        None => Config::infer().await?,
    };
    impersonate(&mut config, global);
    Ok(config)
}

/// Applies `--as` and `--as-group` to `config` (kubectl's `Impersonate-User` and
/// `Impersonate-Group` headers).
pub fn impersonate(config: &mut Config, global: &GlobalArgs) {
    if let Some(user) = &global.as_user {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !global.as_group.is_empty() {
        config.auth_info.impersonate_groups = Some(global.as_group.clone());
    }
}

/// Connects as the global flags say.
///
/// # Errors
/// [`PluginError`] when the configuration is unusable or the client cannot be built.
pub async fn connect(global: &GlobalArgs) -> Result<Connection, PluginError> {
    let config = config(global).await?;
    let namespace = global.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)?;
    Ok(Connection { client, namespace })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_flags_reach_the_config() {
        let mut config = Config::new("https://127.0.0.1:6443".parse().expect("uri"));
        let global = GlobalArgs {
            as_user: Some("t:u".into()),
            as_group: vec!["t:g".into(), "system:authenticated".into()],
            ..Default::default()
        };
        impersonate(&mut config, &global);
        assert_eq!(config.auth_info.impersonate.as_deref(), Some("t:u"));
        assert_eq!(
            config.auth_info.impersonate_groups,
            Some(vec!["t:g".to_string(), "system:authenticated".to_string()])
        );
        let mut plain = Config::new("https://127.0.0.1:6443".parse().expect("uri"));
        impersonate(&mut plain, &GlobalArgs::default());
        assert_eq!(plain.auth_info.impersonate, None);
        assert_eq!(plain.auth_info.impersonate_groups, None);
    }

    #[tokio::test]
    async fn a_kubeconfig_file_and_context_are_honoured() {
        let dir = std::env::temp_dir().join(format!("kl-plugin-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:6443}\n- name: d\n  cluster: {server: https://127.0.0.2:6443}\nusers:\n- name: u\n  user: {token: x}\ncontexts:\n- name: a\n  context: {cluster: c, user: u, namespace: customer-a}\n- name: b\n  context: {cluster: d, user: u}\n",
        )
        .expect("write");
        let global = GlobalArgs { kubeconfig: Some(path.clone()), ..Default::default() };
        let first = config(&global).await.expect("config");
        assert_eq!(first.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(first.default_namespace, "customer-a");
        let global = GlobalArgs { kubeconfig: Some(path), context: Some("b".into()), ..Default::default() };
        let second = config(&global).await.expect("config");
        assert_eq!(second.cluster_url.to_string(), "https://127.0.0.2:6443/");
        assert_eq!(second.default_namespace, "default");
        let _ = std::fs::remove_dir_all(dir);
    }
}
