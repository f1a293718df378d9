//! The fleet at a kube-lighthouse hub (docs/fleet.md), the engineer's side: the warnings
//! `customers|delegations --fleet` print about clusters whose report the hub cannot read
//! ([`footer`]), and `use CLUSTER/NAMESPACE`, which points the engineer's kubeconfig at a
//! customer cluster and a namespace delegated to them there.
//!
//! `use` decides from what the hub serves the caller: its `clusters` (state, endpoint, sign-in
//! broker; never a credential) and its `delegations` (where the caller's delegations are in
//! force). The sign-in stays the engineer's own: a cluster that trusts the managing tenants'
//! own issuers gets the hub context's user entry unchanged (the same token, the same
//! `<tenantId>:<objectId>`); a cluster that signs in through its kube-lighthouse broker gets a
//! `kubectl lighthouse credential` user entry at that broker. What is decided ([`footer`],
//! [`resolve`], [`sign_in`], [`apply`]) is pure and unit-tested; [`use_cluster`] reads, calls
//! and writes.

use std::io::Write;
use std::path::PathBuf;

use kube::api::{Api, ListParams};
use serde_yaml::{Mapping, Value};
use thiserror::Error;

use super::cli::{GlobalArgs, LoginArgs, UseArgs};
use super::login::{self, Change};
use super::{client, PluginError};
use kube_lighthouse_core::api::view::{Delegation, FleetCluster};

/// Why `use` wrote nothing.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UseError {
    /// The argument is not `CLUSTER/NAMESPACE`.
    #[error("expected CLUSTER/NAMESPACE (a customer cluster as the hub names it, and a namespace there), got {0:?}")]
    Target(String),
    /// The context lists no cluster at all: not a hub, or a hub following nothing of the caller's tenant.
    #[error(
        "the current context lists no customer cluster to you: is it a kube-lighthouse hub (docs/fleet.md)? nothing was written"
    )]
    NotAHub,
    /// No cluster of that name among those the hub lists to the caller.
    #[error(
        "the hub lists no cluster {cluster:?} to you: it follows no such cluster, or none for your managing tenant (clusters you see: {}); nothing was written",
        .visible.join(", ")
    )]
    UnknownCluster {
        /// The name asked for.
        cluster: String,
        /// The clusters the caller sees.
        visible: Vec<String>,
    },
    /// The hub cannot read the cluster's report now, so it cannot say what is delegated there.
    #[error(
        "the hub cannot read cluster {cluster:?}'s report now ({state}, last observed {last_observed}{}): it cannot tell which namespaces are delegated to you there; nothing was written",
        .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    NotCurrent {
        /// The cluster.
        cluster: String,
        /// `Unreadable` or `Withdrawn`.
        state: String,
        /// When its report was last read, or `never`.
        last_observed: String,
        /// Why, as the hub says.
        message: Option<String>,
    },
    /// The hub's access to the cluster names no API server.
    #[error(
        "the hub lists no API server for cluster {0:?} (its ClusterProfile's access gives none); nothing was written"
    )]
    NoEndpoint(String),
    /// Delegations name the namespace, but none is in force there.
    #[error(
        "namespace {namespace:?} of cluster {cluster:?} is delegated to you by {}, but not in force; nothing was written",
        .delegations.join(", ")
    )]
    NotInForce {
        /// The cluster.
        cluster: String,
        /// The namespace.
        namespace: String,
        /// `<name> (<state>)` of each delegation scoped there.
        delegations: Vec<String>,
    },
    /// No delegation the hub shows the caller is in force in the namespace.
    #[error(
        "namespace {namespace:?} of cluster {cluster:?} is not delegated to you, per the hub's delegations (delegated to you there: {}); nothing was written",
        if .delegated.is_empty() { "none".to_string() } else { .delegated.join(", ") }
    )]
    NotDelegated {
        /// The cluster.
        cluster: String,
        /// The namespace.
        namespace: String,
        /// The namespaces where the caller's delegations are in force in that cluster.
        delegated: Vec<String>,
    },
    /// The kubeconfig has no context to take the sign-in from.
    #[error("the kubeconfig names no current context: pass --context HUB (or --user NAME); nothing was written")]
    NoContext,
    /// The cluster signs in through a broker, and no token source is known.
    #[error(
        "cluster {cluster:?} signs in through its kube-lighthouse broker {broker} (docs/install.md, \"Sign-in through kube-lighthouse\"), and the current user entry {user:?} is not a `kubectl lighthouse credential` one: pass --token-command COMMAND or --token-file FILE giving your own tenant's token (as for `kubectl lighthouse login`), or --user NAME; nothing was written"
    )]
    BrokerNeedsToken {
        /// The cluster.
        cluster: String,
        /// Its broker's issuer URL.
        broker: String,
        /// The current user entry's name.
        user: String,
    },
}

impl From<UseError> for PluginError {
    fn from(e: UseError) -> Self {
        match e {
            UseError::Target(_) => PluginError::Usage(e.to_string()),
            other => PluginError::Fleet(other.to_string()),
        }
    }
}

/// The clusters the hub lists to the caller (`clusters.view.kubelighthouse.io`).
///
/// # Errors
/// [`PluginError::ViewsUnavailable`] when the views API is not served.
pub async fn list_clusters(client: kube::Client) -> Result<Vec<FleetCluster>, PluginError> {
    let api: Api<FleetCluster> = Api::all(client);
    Ok(api.list(&ListParams::default()).await.map_err(super::views::unavailable)?.items)
}

/// The warnings of `--fleet`, one line each: every cluster the hub cannot read now (Unreadable,
/// with the time its report was last read; Withdrawn), whose delegations are therefore not in
/// the list; or that the hub lists no cluster at all. Empty when every cluster is Current.
pub fn footer(clusters: &[FleetCluster]) -> Vec<String> {
    if clusters.is_empty() {
        return vec![
            "Warning: the hub lists no customer cluster to you: is the current context a kube-lighthouse hub (docs/fleet.md)?"
                .to_string(),
        ];
    }
    clusters
        .iter()
        .filter(|c| c.state != "Current")
        .map(|c| {
            let why = c.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            let last = c.observed_time.as_deref().unwrap_or("never");
            let what = match c.state.as_str() {
                "Withdrawn" => format!("the customer withdrew the hub's grant of its report{why}"),
                "Unreadable" => format!("its report cannot be read now, last observed {last}{why}"),
                other => format!("state {other}, last observed {last}{why}"),
            };
            format!(
                "Warning: cluster {} (managing tenant {}): {what}; none of its delegations are shown",
                c.cluster, c.managed_by_tenant_id
            )
        })
        .collect()
}

/// Where `use` points the engineer, as the hub says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The cluster's name at the hub.
    pub cluster: String,
    /// The namespace.
    pub namespace: String,
    /// Its API server.
    pub server: String,
    /// Its CA, base64 PEM, when the hub knows it.
    pub certificate_authority_data: Option<String>,
    /// Its sign-in broker's issuer URL, when it runs one.
    pub broker: Option<String>,
    /// The caller's delegations in force in the namespace, by name.
    pub delegations: Vec<String>,
}

/// Splits `CLUSTER/NAMESPACE`.
///
/// # Errors
/// [`UseError::Target`] unless it is two non-empty parts.
pub fn parse_target(target: &str) -> Result<(String, String), UseError> {
    match target.split_once('/') {
        Some((c, n)) if !c.is_empty() && !n.is_empty() && !n.contains('/') => Ok((c.to_string(), n.to_string())),
        _ => Err(UseError::Target(target.to_string())),
    }
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// The target of `use CLUSTER/NAMESPACE` from what the hub lists the caller: the cluster must
/// be listed and Current (its report read: otherwise nothing can be said of its delegations,
/// never a guess), have an endpoint, and one of the caller's delegations there must be in
/// force in the namespace (`namespaces` of a Delegation).
///
/// # Errors
/// [`UseError`] naming which of these fails.
pub fn resolve(target: &str, clusters: &[FleetCluster], delegations: &[Delegation]) -> Result<Target, UseError> {
    let (cluster, namespace) = parse_target(target)?;
    if clusters.is_empty() {
        return Err(UseError::NotAHub);
    }
    let rows: Vec<&FleetCluster> = clusters.iter().filter(|c| c.cluster == cluster).collect();
    let Some(first) = rows.first() else {
        let visible = sorted_unique(clusters.iter().map(|c| c.cluster.clone()).collect());
        return Err(UseError::UnknownCluster { cluster, visible });
    };
    let Some(current) = rows.iter().find(|c| c.state == "Current") else {
        return Err(UseError::NotCurrent {
            cluster,
            state: first.state.clone(),
            last_observed: first.observed_time.clone().unwrap_or_else(|| "never".into()),
            message: first.message.clone(),
        });
    };
    let Some(with_server) = rows.iter().find(|c| c.server.is_some()) else {
        return Err(UseError::NoEndpoint(cluster));
    };
    let there: Vec<&Delegation> =
        delegations.iter().filter(|d| d.cluster.as_deref() == Some(cluster.as_str())).collect();
    let in_force: Vec<String> =
        there.iter().filter(|d| d.namespaces.contains(&namespace)).filter_map(|d| d.metadata.name.clone()).collect();
    if in_force.is_empty() {
        let scoped: Vec<String> = there
            .iter()
            .filter(|d| d.namespace == namespace)
            .map(|d| format!("{} ({})", d.metadata.name.as_deref().unwrap_or_default(), d.state))
            .collect();
        if !scoped.is_empty() {
            return Err(UseError::NotInForce { cluster, namespace, delegations: sorted_unique(scoped) });
        }
        let delegated = sorted_unique(there.iter().flat_map(|d| d.namespaces.iter().cloned()).collect());
        return Err(UseError::NotDelegated { cluster, namespace, delegated });
    }
    Ok(Target {
        server: with_server.server.clone().unwrap_or_default(),
        certificate_authority_data: with_server.certificate_authority_data.clone(),
        broker: current.broker.clone(),
        delegations: sorted_unique(in_force),
        cluster,
        namespace,
    })
}

/// The kubeconfig user the hub's context signs in with: its name, and when it is an exec
/// plugin, its command and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    /// The user entry's name.
    pub name: String,
    /// `exec.command` and `exec.args`, for an exec credential plugin.
    pub exec: Option<(String, Vec<String>)>,
}

/// Which user entry the written context uses.
#[derive(Debug, Clone, PartialEq)]
pub enum UserPlan {
    /// An existing entry, by name, unchanged.
    Existing(String),
    /// An entry `use` writes: its name and `user`.
    Write(String, Value),
}

/// The value of `--flag VALUE` or `--flag=VALUE` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    let with_value = format!("--{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if *a == long {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(&with_value)
        }
    })
}

/// The name of the user entry `use` writes for `cluster`'s broker: `lighthouse/<cluster>`.
pub fn user_name(cluster: &str) -> String {
    format!("lighthouse/{cluster}")
}

/// How the engineer signs in to `target`, as they sign in at the hub:
/// - `--user NAME`: that entry;
/// - a cluster without a broker trusts the managing tenants' own issuers (docs/install.md,
///   "Authentication"): the hub context's user entry as it is;
/// - a cluster with a broker: a `kubectl lighthouse credential` entry at that broker
///   ([`login::user_entry`]), with the token source (`--token-command`/`--token-file`,
///   `--audience`) of the current user entry when it is such an entry (its `--certificate-authority`
///   only when the broker is the same), else of `use`'s own `--token-command`/`--token-file`.
///
/// # Errors
/// [`UseError::NoContext`] when there is no current user to take; [`UseError::BrokerNeedsToken`]
/// for a broker cluster without a token source.
pub fn sign_in(target: &Target, current: Option<&CurrentUser>, args: &UseArgs) -> Result<UserPlan, UseError> {
    if let Some(user) = &args.user {
        return Ok(UserPlan::Existing(user.clone()));
    }
    let Some(broker) = &target.broker else {
        return current.map(|c| UserPlan::Existing(c.name.clone())).ok_or(UseError::NoContext);
    };
    let credential = current.and_then(|c| {
        let (command, exec_args) = c.exec.as_ref()?;
        (exec_args.first().map(String::as_str) == Some("credential") && flag(exec_args, "broker").is_some())
            .then_some((c, command, exec_args))
    });
    let login_args = match credential {
        Some((current, _, exec_args)) if flag(exec_args, "broker") == Some(broker.as_str()) => {
            return Ok(UserPlan::Existing(current.name.clone()));
        }
        Some((_, command, exec_args)) if args.token_command.is_none() && args.token_file.is_none() => LoginArgs {
            broker: broker.clone(),
            certificate_authority: args.broker_certificate_authority.clone(),
            token_command: flag(exec_args, "token-command").map(str::to_string),
            token_file: flag(exec_args, "token-file").map(PathBuf::from),
            audience: flag(exec_args, "audience").map(str::to_string),
            exec_command: command.clone(),
            ..Default::default()
        },
        _ if args.token_command.is_some() || args.token_file.is_some() => LoginArgs {
            broker: broker.clone(),
            certificate_authority: args.broker_certificate_authority.clone(),
            token_command: args.token_command.clone(),
            token_file: args.token_file.clone(),
            exec_command: credential
                .map_or_else(|| "kubectl-lighthouse".to_string(), |(_, command, _)| command.clone()),
            ..Default::default()
        },
        _ => {
            return Err(UseError::BrokerNeedsToken {
                cluster: target.cluster.clone(),
                broker: broker.clone(),
                user: current.map(|c| c.name.clone()).unwrap_or_default(),
            })
        }
    };
    Ok(UserPlan::Write(user_name(&target.cluster), login::user_entry(&login_args)))
}

/// What `use` writes: the cluster entry `lighthouse/<cluster>`, the user when it writes one,
/// and the context `lighthouse/<cluster>/<namespace>`, made current.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The context's name.
    pub context: String,
    /// The cluster entry's name and `cluster` (server and CA only).
    pub cluster: (String, Value),
    /// The user entry the context uses.
    pub user: UserPlan,
    /// The context's namespace.
    pub namespace: String,
}

/// The plan of `use` for `target` signing in with `user`.
pub fn plan(target: &Target, user: UserPlan) -> Plan {
    let mut cluster = Mapping::new();
    cluster.insert("server".into(), target.server.clone().into());
    if let Some(ca) = &target.certificate_authority_data {
        cluster.insert("certificate-authority-data".into(), ca.clone().into());
    }
    Plan {
        context: format!("lighthouse/{}/{}", target.cluster, target.namespace),
        cluster: (format!("lighthouse/{}", target.cluster), Value::Mapping(cluster)),
        user,
        namespace: target.namespace.clone(),
    }
}

/// The kubeconfig `doc` with `plan` written (its own entries replaced, every other entry as it
/// was) and its context current; what changed.
///
/// # Errors
/// A message when `doc` is not a kubeconfig.
pub fn apply(doc: Value, plan: &Plan) -> Result<(Value, Vec<Change>), String> {
    let mut doc = login::config_mapping(doc)?;
    let mut changes = Vec::new();
    let (cluster_name, cluster) = &plan.cluster;
    let outcome = login::upsert(login::named_list(&mut doc, "clusters")?, "cluster", cluster_name, cluster.clone());
    changes.push(Change { kind: "cluster", name: cluster_name.clone(), outcome });
    let user_name = match &plan.user {
        UserPlan::Existing(name) => name.clone(),
        UserPlan::Write(name, user) => {
            let outcome = login::upsert(login::named_list(&mut doc, "users")?, "user", name, user.clone());
            changes.push(Change { kind: "user", name: name.clone(), outcome });
            name.clone()
        }
    };
    let mut context = Mapping::new();
    context.insert("cluster".into(), cluster_name.clone().into());
    context.insert("user".into(), user_name.into());
    context.insert("namespace".into(), plan.namespace.clone().into());
    let outcome =
        login::upsert(login::named_list(&mut doc, "contexts")?, "context", &plan.context, Value::Mapping(context));
    changes.push(Change { kind: "context", name: plan.context.clone(), outcome });
    doc.insert("current-context".into(), plan.context.clone().into());
    Ok((Value::Mapping(doc), changes))
}

/// The user entry of the context the global flags select (`--context`, else the current one),
/// from the kubeconfig kubectl reads (every file of `$KUBECONFIG`, merged).
fn current_user(global: &GlobalArgs) -> Option<CurrentUser> {
    let kubeconfig = match &global.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path).ok()?,
        None => kube::config::Kubeconfig::read().ok()?,
    };
    let context_name = global.context.clone().or_else(|| kubeconfig.current_context.clone())?;
    let context = kubeconfig.contexts.iter().find(|c| c.name == context_name)?.context.as_ref()?;
    let name = context.user.clone()?;
    let exec = kubeconfig
        .auth_infos
        .iter()
        .find(|u| u.name == name)
        .and_then(|u| u.auth_info.as_ref())
        .and_then(|a| a.exec.as_ref())
        .map(|e| (e.command.clone().unwrap_or_default(), e.args.clone().unwrap_or_default()));
    Some(CurrentUser { name, exec })
}

/// `use CLUSTER/NAMESPACE`: asks the hub (the current context, or `--context`) for the clusters
/// and delegations it shows the caller, resolves the target ([`resolve`]), the sign-in
/// ([`sign_in`]), writes the kubeconfig ([`apply`]) and says what it did.
///
/// # Errors
/// [`PluginError::Fleet`] naming why nothing was written; kubeconfig and API errors.
pub async fn use_cluster(global: &GlobalArgs, args: &UseArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    parse_target(&args.target)?;
    let conn = client::connect(global).await?;
    let clusters = list_clusters(conn.client.clone()).await?;
    let delegations = super::views::list_delegations(conn.client).await?;
    let target = resolve(&args.target, &clusters, &delegations)?;
    let user = sign_in(&target, current_user(global).as_ref(), args)?;
    let plan = plan(&target, user);
    let path = login::kubeconfig_path(global)?;
    let malformed = |reason: String| login::LoginError::Malformed { path: path.display().to_string(), reason };
    let doc = login::read_document(&path)?;
    let (doc, changes) = apply(doc, &plan).map_err(malformed)?;
    let text = serde_yaml::to_string(&doc).map_err(|e| PluginError::Encode(e.to_string()))?;
    login::write_file(&path, &text)
        .map_err(|source| login::LoginError::Io { path: path.display().to_string(), source })?;
    writeln!(out, "Switched to context {:?} in {} (its comments are not kept):", plan.context, path.display())?;
    for change in &changes {
        writeln!(out, "  {change}")?;
    }
    let user = match &plan.user {
        UserPlan::Existing(name) => name.clone(),
        UserPlan::Write(name, _) => name.clone(),
    };
    let how = match &target.broker {
        Some(broker) => format!("through the cluster's kube-lighthouse broker {broker}"),
        None => "with your tenant's own sign-in, as at the hub".to_string(),
    };
    writeln!(
        out,
        "Cluster {} at {}, namespace {}, user {user:?} ({how}).",
        target.cluster, target.server, target.namespace
    )?;
    writeln!(out, "Delegated to you there: {}.", target.delegations.join(", "))?;
    writeln!(out, "Try: kubectl auth can-i --list")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use kube_lighthouse_core::api::view::{CallerRoles, Offer, ScopeKind, VIEW_API_VERSION};

    const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const BROKER: &str = "https://lighthouse.customer-b.example/federation";

    fn cluster(name: &str, state: &str) -> FleetCluster {
        FleetCluster {
            api_version: VIEW_API_VERSION.into(),
            kind: "FleetCluster".into(),
            metadata: ObjectMeta { name: Some(format!("{name}.{TENANT}")), ..Default::default() },
            cluster: name.into(),
            managed_by_tenant_id: TENANT.into(),
            state: state.into(),
            observed_time: (state != "Withdrawn").then(|| "2026-12-07T19:20:00Z".to_string()),
            message: match state {
                "Unreadable" => Some("connection refused".into()),
                "Withdrawn" => Some("the grant was withdrawn (seen 2026-12-07T19:21:00Z)".into()),
                _ => None,
            },
            delegation_count: 1,
            server: Some(format!("https://{name}:6443")),
            certificate_authority_data: Some("Q0E=".into()),
            broker: None,
        }
    }

    fn delegation(cluster: &str, namespace: &str, state: &str, in_force: &[&str]) -> Delegation {
        Delegation {
            api_version: VIEW_API_VERSION.into(),
            kind: "Delegation".into(),
            metadata: ObjectMeta { name: Some(format!("{cluster}.{namespace}.msp")), ..Default::default() },
            customer_tenant_id: "11111111-1111-1111-1111-111111111111".into(),
            managed_by_tenant_id: TENANT.into(),
            namespace: namespace.into(),
            subscription: namespace.into(),
            scope_kind: ScopeKind::Subscription,
            offer: Offer { display_name: "o".into(), definition: "msp".into(), plan: None, description: None },
            assignment: "msp".into(),
            my_roles: CallerRoles::default(),
            namespaces: in_force.iter().map(|s| s.to_string()).collect(),
            state: state.into(),
            reason: None,
            message: None,
            activations: vec![],
            compliance: "Compliant".into(),
            compliance_message: None,
            cluster: Some(cluster.into()),
            observed_time: Some("2026-12-07T19:20:00Z".into()),
        }
    }

    fn fleet() -> (Vec<FleetCluster>, Vec<Delegation>) {
        let mut b = cluster("west", "Current");
        b.broker = Some(BROKER.into());
        (
            vec![cluster("east", "Current"), b, cluster("north", "Unreadable"), cluster("south", "Withdrawn")],
            vec![
                delegation("east", "sub-a", "Succeeded", &["sub-a", "sub-a-web"]),
                delegation("east", "sub-b", "Failed", &[]),
                delegation("west", "sub-c", "Succeeded", &["sub-c"]),
            ],
        )
    }

    #[test]
    fn the_footer_names_every_cluster_not_read_with_its_last_observed_time() {
        let (clusters, _) = fleet();
        let lines = footer(&clusters);
        assert_eq!(
            lines,
            [
                format!("Warning: cluster north (managing tenant {TENANT}): its report cannot be read now, last observed 2026-12-07T19:20:00Z: connection refused; none of its delegations are shown"),
                format!("Warning: cluster south (managing tenant {TENANT}): the customer withdrew the hub's grant of its report: the grant was withdrawn (seen 2026-12-07T19:21:00Z); none of its delegations are shown"),
            ]
        );
        assert!(footer(&clusters[..2]).is_empty(), "all read: nothing to warn about");
        let mut never = cluster("new", "Unreadable");
        never.observed_time = None;
        assert!(footer(&[never])[0].contains("last observed never"));
        assert!(footer(&[])[0].contains("is the current context a kube-lighthouse hub"));
    }

    #[test]
    fn use_resolves_a_namespace_in_force_and_names_every_other_case() {
        let (clusters, delegations) = fleet();
        let target = resolve("east/sub-a-web", &clusters, &delegations).expect("in force");
        assert_eq!(
            target,
            Target {
                cluster: "east".into(),
                namespace: "sub-a-web".into(),
                server: "https://east:6443".into(),
                certificate_authority_data: Some("Q0E=".into()),
                broker: None,
                delegations: vec!["east.sub-a.msp".into()],
            }
        );
        let err = |t: &str| resolve(t, &clusters, &delegations).expect_err(t);
        assert_eq!(err("east"), UseError::Target("east".into()));
        assert_eq!(err("east/a/b"), UseError::Target("east/a/b".into()));
        let unknown = err("nowhere/sub-a");
        assert!(unknown.to_string().contains("clusters you see: east, north, south, west"), "{unknown}");
        assert!(
            matches!(err("north/sub-a"), UseError::NotCurrent { ref state, ref last_observed, .. } if state == "Unreadable" && last_observed == "2026-12-07T19:20:00Z")
        );
        let withdrawn = err("south/sub-a").to_string();
        assert!(
            withdrawn.contains("Withdrawn, last observed never") && withdrawn.contains("nothing was written"),
            "{withdrawn}"
        );
        assert_eq!(
            err("east/sub-b"),
            UseError::NotInForce {
                cluster: "east".into(),
                namespace: "sub-b".into(),
                delegations: vec!["east.sub-b.msp (Failed)".into()]
            }
        );
        let other = err("east/kube-system");
        assert_eq!(
            other,
            UseError::NotDelegated {
                cluster: "east".into(),
                namespace: "kube-system".into(),
                delegated: vec!["sub-a".into(), "sub-a-web".into()]
            }
        );
        assert!(other
            .to_string()
            .contains("not delegated to you, per the hub's delegations (delegated to you there: sub-a, sub-a-web)"));
        // Another cluster's delegation does not count here.
        assert!(matches!(err("west/sub-a"), UseError::NotDelegated { .. }));
        assert_eq!(resolve("east/x", &[], &[]).expect_err("no hub"), UseError::NotAHub);
        let mut blind = clusters.clone();
        blind[0].server = None;
        assert_eq!(
            resolve("east/sub-a", &blind, &delegations).expect_err("no server"),
            UseError::NoEndpoint("east".into())
        );
    }

    fn exec_user(name: &str, args: &[&str]) -> CurrentUser {
        CurrentUser {
            name: name.into(),
            exec: Some(("/usr/local/bin/kubectl-lighthouse".into(), args.iter().map(|a| a.to_string()).collect())),
        }
    }

    #[test]
    fn the_sign_in_is_the_engineers_own_for_both_kinds_of_cluster() {
        let (clusters, delegations) = fleet();
        let east = resolve("east/sub-a", &clusters, &delegations).expect("east");
        let west = resolve("west/sub-c", &clusters, &delegations).expect("west");
        assert_eq!(west.broker.as_deref(), Some(BROKER));
        let kubelogin = CurrentUser {
            name: "msp-engineer".into(),
            exec: Some(("kubelogin".into(), vec!["get-token".into(), "--server-id".into(), "app".into()])),
        };
        let none = UseArgs::default();
        // Own issuers: the hub's user entry as it is.
        assert_eq!(sign_in(&east, Some(&kubelogin), &none), Ok(UserPlan::Existing("msp-engineer".into())));
        assert_eq!(sign_in(&east, None, &none), Err(UseError::NoContext));
        // A broker, and a user entry that is not the credential plugin: say what to pass.
        let err = sign_in(&west, Some(&kubelogin), &none).expect_err("no token source");
        assert!(
            err.to_string().contains("--token-command COMMAND or --token-file FILE")
                && err.to_string().contains(BROKER),
            "{err}"
        );
        // ... with a token source given, a credential entry at the cluster's broker.
        let with = UseArgs { token_command: Some("kubelogin get-token --server-id app".into()), ..Default::default() };
        let UserPlan::Write(name, user) = sign_in(&west, Some(&kubelogin), &with).expect("written") else { panic!() };
        assert_eq!(name, "lighthouse/west");
        let args: Vec<&str> =
            user["exec"]["args"].as_sequence().expect("args").iter().filter_map(Value::as_str).collect();
        assert_eq!(args, ["credential", "--broker", BROKER, "--token-command", "kubelogin get-token --server-id app"]);
        assert_eq!(user["exec"]["command"], "kubectl-lighthouse");
        // A credential entry of another broker lends its token source and command, not its CA.
        let other = exec_user(
            "customer-a-lighthouse",
            &[
                "credential",
                "--broker",
                "https://a/federation",
                "--certificate-authority",
                "/a-ca.pem",
                "--token-file",
                "/t.jwt",
                "--audience",
                "app",
            ],
        );
        let UserPlan::Write(_, user) = sign_in(&west, Some(&other), &none).expect("written") else { panic!() };
        let args: Vec<&str> =
            user["exec"]["args"].as_sequence().expect("args").iter().filter_map(Value::as_str).collect();
        assert_eq!(args, ["credential", "--broker", BROKER, "--token-file", "/t.jwt", "--audience", "app"]);
        assert_eq!(user["exec"]["command"], "/usr/local/bin/kubectl-lighthouse");
        // One of the same broker is used as it is.
        let same = exec_user("b", &["credential", &format!("--broker={BROKER}"), "--token-file", "/t.jwt"]);
        assert_eq!(sign_in(&west, Some(&same), &none), Ok(UserPlan::Existing("b".into())));
        // --user wins.
        let chosen = UseArgs { user: Some("mine".into()), ..Default::default() };
        assert_eq!(sign_in(&west, Some(&kubelogin), &chosen), Ok(UserPlan::Existing("mine".into())));
    }

    const EXISTING: &str = r#"
apiVersion: v1
kind: Config
current-context: hub
clusters:
- name: hub
  cluster: {server: "https://hub:6443"}
users:
- name: msp-engineer
  user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: kubelogin, args: [get-token]}}
contexts:
- name: hub
  context: {cluster: hub, user: msp-engineer}
"#;

    #[test]
    fn use_writes_its_cluster_and_context_makes_it_current_and_keeps_the_rest() {
        let (clusters, delegations) = fleet();
        let doc: Value = serde_yaml::from_str(EXISTING).expect("yaml");
        let east = resolve("east/sub-a-web", &clusters, &delegations).expect("east");
        let p = plan(&east, UserPlan::Existing("msp-engineer".into()));
        let (written, changes) = apply(doc.clone(), &p).expect("apply");
        let said: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(said, [r#"cluster "lighthouse/east" added"#, r#"context "lighthouse/east/sub-a-web" added"#]);
        assert_eq!(written["current-context"], "lighthouse/east/sub-a-web");
        assert_eq!(written["users"], doc["users"], "the engineer's user is shared, not copied");
        assert_eq!(written["clusters"][0], doc["clusters"][0]);
        assert_eq!(written["clusters"][1]["cluster"]["server"], "https://east:6443");
        assert_eq!(written["clusters"][1]["cluster"]["certificate-authority-data"], "Q0E=");
        let context = &written["contexts"][1]["context"];
        assert_eq!(
            (context["cluster"].as_str(), context["user"].as_str(), context["namespace"].as_str()),
            (Some("lighthouse/east"), Some("msp-engineer"), Some("sub-a-web"))
        );
        // kube reads it, and the context reaches the cluster's server.
        let text = serde_yaml::to_string(&written).expect("yaml");
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).expect("a kubeconfig");
        assert_eq!(kubeconfig.current_context.as_deref(), Some("lighthouse/east/sub-a-web"));
        // Again: unchanged; a broker cluster adds its user entry.
        let (_, again) = apply(written.clone(), &p).expect("again");
        assert!(again.iter().all(|c| c.outcome == login::Outcome::Unchanged), "{again:?}");
        let west = resolve("west/sub-c", &clusters, &delegations).expect("west");
        let args = UseArgs { token_file: Some("/t.jwt".into()), ..Default::default() };
        let user = sign_in(&west, None, &args).expect("user");
        let (written, changes) = apply(written, &plan(&west, user)).expect("west");
        assert_eq!(changes.iter().filter(|c| c.kind == "user").count(), 1);
        assert_eq!(written["users"][1]["name"], "lighthouse/west");
        assert!(apply(serde_yaml::from_str("kind: Pod").expect("yaml"), &p).is_err());
    }
}
