//! The fleet (docs/fleet.md), decided purely: what a customer cluster reports to one managing
//! tenant ([`report`]), and what a hub shows a caller from the reports it reads
//! ([`delegations`], [`fleet_delegations`]).
//!
//! The report is computed from the same facts as the single-cluster views
//! ([`views::resolved`]) and carries, for each principal, the RBAC subjects this cluster
//! projects it to. The hub matches its caller against those subjects with the rule the views
//! use ([`views::reaching`]), so a caller sees at the hub exactly what each cluster's own
//! views show it (the property in the tests), whatever identity templates each cluster uses.
//! The one thing a hub cannot show is the caller's RoleActivations (`activations`): they stay
//! in the customer cluster, readable there.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::tenant::Guid;
use super::views::{self, role_name, Caller, ViewContext};
use crate::api::view::{
    delegation_name, CallerRoles, Delegation, Report, ReportedAuthorization, ReportedDelegation, ReportedEligible,
    ReportedPrincipal, RoleHolding, VIEW_API_VERSION,
};
use crate::api::{PrincipalType, RegistrationAssignment, RegistrationDefinition};

fn type_name(kind: PrincipalType) -> &'static str {
    match kind {
        PrincipalType::User => "User",
        PrincipalType::Group => "Group",
        PrincipalType::ServicePrincipal => "ServicePrincipal",
        PrincipalType::ServiceAccount => "ServiceAccount",
    }
}

fn principal(
    ctx: &ViewContext<'_>,
    tenant: &Guid,
    id: &str,
    display: &Option<String>,
    kind: Option<PrincipalType>,
) -> ReportedPrincipal {
    ReportedPrincipal {
        principal_id: id.to_string(),
        principal_id_display_name: display.clone(),
        principal_type: kind.map(|k| type_name(k).to_string()),
        subjects: views::project(ctx.templates, tenant, id, kind),
    }
}

/// The report of the delegations to managing tenant `tenant` in this cluster, observed at
/// `observed_time` (RFC 3339): every delegation the views could show anyone
/// ([`views::resolved`]) whose definition names `tenant`, sorted by name, with its standing
/// and eligible authorizations and approvers projected to this cluster's RBAC subjects.
/// Nothing about any other tenant.
pub fn report<'a, 'd>(
    tenant: &Guid,
    definitions: impl IntoIterator<Item = &'d RegistrationDefinition>,
    assignments: impl IntoIterator<Item = &'a RegistrationAssignment>,
    ctx: &ViewContext<'_>,
    observed_time: String,
) -> Report {
    let mut delegations: Vec<ReportedDelegation> = views::resolved(definitions, assignments, ctx)
        .into_iter()
        .filter(|(_, definition)| Guid::parse(&definition.spec.managed_by_tenant_id).as_ref() == Some(tenant))
        .map(|(d, definition)| {
            let spec = &definition.spec;
            let authorizations = spec
                .authorizations
                .iter()
                .map(|a| ReportedAuthorization {
                    principal: principal(ctx, tenant, &a.principal_id, &a.principal_id_display_name, a.principal_type),
                    role_definition_id: a.role_definition_id.clone(),
                    role: role_name(ctx.catalog, &a.role_definition_id),
                })
                .collect();
            let eligible_authorizations = spec
                .eligible_authorizations
                .iter()
                .map(|e| ReportedEligible {
                    principal: principal(ctx, tenant, &e.principal_id, &e.principal_id_display_name, e.principal_type),
                    role_definition_id: e.role_definition_id.clone(),
                    role: role_name(ctx.catalog, &e.role_definition_id),
                    approvers: e
                        .just_in_time_access_policy
                        .iter()
                        .flat_map(|p| &p.managed_by_tenant_approvers)
                        .map(|a| principal(ctx, tenant, &a.principal_id, &a.principal_id_display_name, None))
                        .collect(),
                })
                .collect();
            ReportedDelegation {
                name: d.metadata.name.clone().unwrap_or_default(),
                creation_timestamp: d.metadata.creation_timestamp,
                customer_tenant_id: d.customer_tenant_id,
                namespace: d.namespace,
                subscription: d.subscription,
                scope_kind: d.scope_kind,
                assignment: d.assignment,
                offer: d.offer,
                authorizations,
                eligible_authorizations,
                namespaces: d.namespaces,
                state: d.state,
                reason: d.reason,
                message: d.message,
                compliance: d.compliance,
                compliance_message: d.compliance_message,
            }
        })
        .collect();
    delegations.sort_by(|a, b| a.name.cmp(&b.name));
    Report {
        api_version: VIEW_API_VERSION.into(),
        kind: "Report".into(),
        metadata: ObjectMeta { name: Some(tenant.to_string()), ..Default::default() },
        managed_by_tenant_id: tenant.to_string(),
        observed_time,
        delegations,
        broker: None,
    }
}

fn holding(role: &str, role_id: &str, p: &ReportedPrincipal, subject: String) -> RoleHolding {
    RoleHolding {
        role: role.to_string(),
        role_definition_id: role_id.to_string(),
        principal_id: p.principal_id.clone(),
        principal_id_display_name: p.principal_id_display_name.clone(),
        subject,
    }
}

/// What one reported delegation gives `caller`: as [`views::caller_roles`] decides in the
/// cluster, from the subjects the cluster reported.
pub fn caller_roles(caller: &Caller, d: &ReportedDelegation) -> CallerRoles {
    let mut roles = CallerRoles::default();
    for a in &d.authorizations {
        if let Some(subject) = views::reaching(caller, &a.principal.subjects) {
            roles.standing.push(holding(&a.role, &a.role_definition_id, &a.principal, subject));
        }
    }
    for e in &d.eligible_authorizations {
        if let Some(subject) = views::reaching(caller, &e.principal.subjects) {
            roles.eligible.push(holding(&e.role, &e.role_definition_id, &e.principal, subject));
        }
        for approver in &e.approvers {
            if let Some(subject) = views::reaching(caller, &approver.subjects) {
                roles.approver.push(holding(&e.role, &e.role_definition_id, approver, subject));
            }
        }
    }
    for list in [&mut roles.standing, &mut roles.eligible, &mut roles.approver] {
        list.sort();
        list.dedup();
    }
    roles
}

/// The delegations of `report` visible to `caller`, named and shaped as the cluster's own
/// views name and shape them (no `cluster`, no activations), sorted by name.
pub fn delegations(caller: &Caller, report: &Report) -> Vec<Delegation> {
    let mut out: Vec<Delegation> = report
        .delegations
        .iter()
        .filter_map(|d| {
            let my_roles = caller_roles(caller, d);
            (!my_roles.is_empty()).then(|| Delegation {
                api_version: VIEW_API_VERSION.into(),
                kind: "Delegation".into(),
                metadata: ObjectMeta {
                    name: Some(d.name.clone()),
                    creation_timestamp: d.creation_timestamp.clone(),
                    ..Default::default()
                },
                customer_tenant_id: d.customer_tenant_id.clone(),
                managed_by_tenant_id: report.managed_by_tenant_id.clone(),
                namespace: d.namespace.clone(),
                subscription: d.subscription.clone(),
                scope_kind: d.scope_kind,
                offer: d.offer.clone(),
                assignment: d.assignment.clone(),
                my_roles,
                namespaces: d.namespaces.clone(),
                state: d.state.clone(),
                reason: d.reason.clone(),
                message: d.message.clone(),
                activations: Vec::new(),
                compliance: d.compliance.clone(),
                compliance_message: d.compliance_message.clone(),
                cluster: None,
                observed_time: None,
            })
        })
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// The name of a delegation at the hub: `<cluster>.<namespace>.<assignment>`, unique across
/// the fleet (a cluster's own name is `<namespace>.<assignment>`).
pub fn hub_name(cluster: &str, namespace: &str, assignment: &str) -> String {
    delegation_name(&format!("{cluster}.{namespace}"), assignment)
}

/// What a hub knows of one cluster's report.
#[derive(Clone, Debug, PartialEq)]
pub enum Followed {
    /// The last report read, and when (RFC 3339). Its delegations are shown.
    Read {
        /// The report.
        report: std::sync::Arc<Report>,
        /// When the hub read it.
        observed_time: String,
    },
    /// The report cannot be read now (the cluster is unreachable, or answers with an error):
    /// nothing of it is shown; the cluster shows as such with the time it was last read.
    Unreadable {
        /// Why, in words.
        error: String,
        /// When it was last read, if ever (RFC 3339).
        last_observed: Option<String>,
    },
    /// The customer withdrew the grant (the cluster answered 401 or 403): nothing of it is
    /// kept or shown.
    Withdrawn {
        /// When the hub learnt it (RFC 3339).
        since: String,
    },
}

/// What a hub follows: per (cluster name, managing tenant), that tenant's report there.
pub type FleetState = BTreeMap<(String, String), Followed>;

/// The delegations `caller` sees at a hub following `clusters`: the union of [`delegations`]
/// of every report read, each with its cluster, named by [`hub_name`], with the time it was
/// read; sorted by name. Reports not read contribute nothing (never a guess).
///
/// A report counts only for its own tenant: read as `reports/<tenant>`, saying that tenant, and
/// shown only to that tenant's callers, so that a customer cluster's report cannot show one
/// tenant's engineers delegations in the name of another.
pub fn fleet_delegations(caller: &Caller, clusters: &FleetState) -> Vec<Delegation> {
    let mine = callers_tenants(caller);
    let mut out = Vec::new();
    for ((cluster, tenant), followed) in clusters {
        let Followed::Read { report, observed_time } = followed else {
            continue;
        };
        if !mine.contains(tenant) || report.managed_by_tenant_id != *tenant {
            continue;
        }
        for mut d in delegations(caller, report) {
            d.metadata.name = Some(hub_name(cluster, &d.namespace, &d.assignment));
            d.cluster = Some(cluster.clone());
            d.observed_time = Some(observed_time.clone());
            out.push(d);
        }
    }
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// The managing tenants `caller` belongs to: the `<tenantId>:` prefixes of its user name and
/// groups.
fn callers_tenants(caller: &Caller) -> std::collections::BTreeSet<String> {
    std::iter::once(&caller.username)
        .chain(&caller.groups)
        .filter_map(|n| views::tenant_prefix(n))
        .map(|g| g.to_string())
        .collect()
}

/// The clusters `caller` sees at a hub: those of the managing tenants its user name or one of
/// its groups carries (`<tenantId>:` prefix), with their state, sorted by name. What cannot be
/// read is shown as such, with the time it was last read.
pub fn fleet_clusters(caller: &Caller, clusters: &FleetState) -> Vec<crate::api::view::FleetCluster> {
    let mine = callers_tenants(caller);
    clusters
        .iter()
        .filter(|((_, tenant), _)| mine.contains(tenant))
        .map(|((cluster, tenant), followed)| {
            let (state, observed_time, message, delegation_count, broker) = match followed {
                Followed::Read { report, observed_time } => {
                    ("Current", Some(observed_time.clone()), None, report.delegations.len(), report.broker.clone())
                }
                Followed::Unreadable { error, last_observed } => {
                    ("Unreadable", last_observed.clone(), Some(error.clone()), 0, None)
                }
                Followed::Withdrawn { since } => {
                    ("Withdrawn", None, Some(format!("the grant was withdrawn (seen {since})")), 0, None)
                }
            };
            crate::api::view::FleetCluster {
                api_version: VIEW_API_VERSION.into(),
                kind: "FleetCluster".into(),
                metadata: ObjectMeta { name: Some(format!("{cluster}.{tenant}")), ..Default::default() },
                cluster: cluster.clone(),
                managed_by_tenant_id: tenant.clone(),
                state: state.to_string(),
                observed_time,
                message,
                delegation_count,
                server: None,
                certificate_authority_data: None,
                broker,
            }
        })
        .collect()
}

/// Where a customer cluster's API server is, as a hub reaches it: what `kubectl lighthouse
/// use` writes into an engineer's kubeconfig. Never a credential.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The API server URL (a kubeconfig cluster's `server`).
    pub server: String,
    /// Its CA bundle, base64 PEM (`certificate-authority-data`), when the kubeconfig embeds one.
    pub certificate_authority_data: Option<String>,
}

/// The endpoint of the cluster a kubeconfig (YAML or JSON) reaches: its current context's
/// cluster (else its only cluster), `server` and `certificate-authority-data`; the user and
/// its credential are not read. None when the text names no such cluster.
pub fn endpoint(kubeconfig: &str) -> Option<Endpoint> {
    let doc: serde_yaml::Value = serde_yaml::from_str(kubeconfig).ok()?;
    let clusters = doc.get("clusters")?.as_sequence()?;
    let named = |name: &str| clusters.iter().find(|c| c.get("name").and_then(|n| n.as_str()) == Some(name));
    let cluster = match doc.get("current-context").and_then(|c| c.as_str()).filter(|c| !c.is_empty()) {
        Some(current) => named(
            doc.get("contexts")?
                .as_sequence()?
                .iter()
                .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(current))?
                .get("context")?
                .get("cluster")?
                .as_str()?,
        )?,
        None if clusters.len() == 1 => &clusters[0],
        None => return None,
    }
    .get("cluster")?;
    let text = |key: &str| cluster.get(key).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_string);
    Some(Endpoint { server: text("server")?, certificate_authority_data: text("certificate-authority-data") })
}

/// `items` with each cluster's endpoint (by cluster name) filled in, as the hub lists them:
/// only on a `Current` row, one whose report the row's tenant was granted and read, so that a
/// tenant never learns the endpoint of a cluster that granted only another tenant.
pub fn with_endpoints(
    mut items: Vec<crate::api::view::FleetCluster>,
    endpoints: &BTreeMap<String, Endpoint>,
) -> Vec<crate::api::view::FleetCluster> {
    for item in &mut items {
        if item.state != "Current" {
            continue;
        }
        if let Some(e) = endpoints.get(&item.cluster) {
            item.server = Some(e.server.clone());
            item.certificate_authority_data = e.certificate_authority_data.clone();
        }
    }
    items
}

/// The server-side `Table` of fleet clusters: name, cluster, state, last observed, delegations;
/// `-o wide` adds the managing tenant and the message.
pub fn cluster_table(
    items: &[crate::api::view::FleetCluster],
    include: views::IncludeObject,
) -> crate::api::view::Table {
    use serde_json::json;
    let column = |name: &str, priority: i32| crate::api::view::TableColumnDefinition {
        name: name.into(),
        type_: "string".into(),
        format: if name == "Name" { "name".into() } else { String::new() },
        description: String::new(),
        priority,
    };
    crate::api::view::Table {
        api_version: "meta.k8s.io/v1".into(),
        kind: "Table".into(),
        metadata: Default::default(),
        column_definitions: vec![
            column("Name", 0),
            column("Cluster", 0),
            column("State", 0),
            column("Last Observed", 0),
            column("Delegations", 0),
            column("Managed By", 1),
            column("Message", 1),
        ],
        rows: items
            .iter()
            .map(|c| crate::api::view::TableRow {
                cells: vec![
                    json!(c.metadata.name.clone().unwrap_or_default()),
                    json!(c.cluster),
                    json!(c.state),
                    json!(c.observed_time.clone().unwrap_or_else(|| "<never>".into())),
                    json!(c.delegation_count.to_string()),
                    json!(c.managed_by_tenant_id),
                    json!(c.message.clone().unwrap_or_else(|| "<none>".into())),
                ],
                object: match include {
                    views::IncludeObject::None => None,
                    _ => serde_json::to_value(c).ok(),
                },
            })
            .collect(),
    }
}

/// One grant of a report: who may read which managing tenant's report, through which binding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReportGrant {
    /// The managing tenant whose report is granted (a `resourceNames` entry).
    pub tenant: String,
    /// The ClusterRoleBinding that grants it.
    pub binding: String,
    /// Who it is granted to: `User:<name>`, `Group:<name>` or `ServiceAccount:<ns>/<name>`.
    pub subject: String,
}

/// The report grants among `roles` and `bindings` (docs/fleet.md, "Granting a hub its
/// report"): for each ClusterRoleBinding whose ClusterRole has a rule allowing `get` on
/// `reports` of the views group (or `*`) with `resourceNames`, one grant per name and subject,
/// sorted. A rule without `resourceNames` grants every report: it is shown with tenant `*`.
pub fn report_grants(
    roles: &[k8s_openapi::api::rbac::v1::ClusterRole],
    bindings: &[k8s_openapi::api::rbac::v1::ClusterRoleBinding],
) -> Vec<ReportGrant> {
    let any = |list: &[String], want: &str| list.iter().any(|v| v == want || v == "*");
    let tenants_of = |role: &str| -> Vec<String> {
        let Some(r) = roles.iter().find(|r| r.metadata.name.as_deref() == Some(role)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for rule in r.rules.iter().flatten() {
            let groups = rule.api_groups.as_deref().unwrap_or_default();
            let resources = rule.resources.as_deref().unwrap_or_default();
            if any(groups, crate::api::view::VIEW_GROUP)
                && any(resources, crate::api::view::REPORTS)
                && any(&rule.verbs, "get")
            {
                match rule.resource_names.as_deref() {
                    Some(names) if !names.is_empty() => out.extend(names.iter().cloned()),
                    _ => out.push("*".to_string()),
                }
            }
        }
        out
    };
    let mut out = Vec::new();
    for b in bindings {
        if b.role_ref.kind != "ClusterRole" {
            continue;
        }
        let binding = b.metadata.name.clone().unwrap_or_default();
        for tenant in tenants_of(&b.role_ref.name) {
            for subject in b.subjects.iter().flatten() {
                out.push(ReportGrant {
                    tenant: tenant.clone(),
                    binding: binding.clone(),
                    subject: views::subject_label(subject),
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// How a hub reaches one cluster's report.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// A kubeconfig (YAML) built from the profile's access provider and the hub's exec
    /// credential plugin for that provider type, as the Cluster Inventory API defines.
    Kubeconfig(String),
    /// A hand-written profile's Secret (in the profile's namespace, key `kubeconfig`).
    Secret(String),
}

/// Why a profile gives no access.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    /// No access provider of the profile is one the hub's provider file knows, and no Secret
    /// annotation.
    #[error("no access provider of this ClusterProfile is configured at the hub ({0}), and no {ann} annotation", ann = crate::api::cluster_profile::KUBECONFIG_SECRET_ANNOTATION)]
    NoProvider(String),
    /// The kubeconfig cannot be written.
    #[error("cannot write the kubeconfig: {0}")]
    Kubeconfig(String),
}

/// How to reach the cluster of `profile` (docs/fleet.md): the first provider of the hub's
/// `file`, in its order, that the profile lists (`accessProviders` winning over the deprecated
/// `credentialProviders` for one name), as a kubeconfig whose user runs that exec plugin with
/// the cluster's info (`provideClusterInfo`; the cluster's `client.authentication.k8s.io/exec`
/// extension travels with it); else the Secret the profile's annotation names.
///
/// # Errors
/// [`AccessError`] when neither applies.
pub fn access(
    profile: &crate::api::cluster_profile::ClusterProfile,
    file: &crate::api::cluster_profile::ProviderFile,
) -> Result<Access, AccessError> {
    let mut offered: BTreeMap<&str, &crate::api::cluster_profile::AccessProvider> = BTreeMap::new();
    if let Some(status) = &profile.status {
        for p in status.credential_providers.iter().chain(&status.access_providers) {
            offered.insert(p.name.as_str(), p);
        }
    }
    if let Some((provider, offer)) = file.providers.iter().find_map(|p| offered.get(p.name.as_str()).map(|o| (p, o))) {
        let name = profile.metadata.name.clone().unwrap_or_default();
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": offer.cluster}],
            "users": [{"name": provider.name, "user": {"exec": provider.exec_config}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": provider.name}}],
            "current-context": name,
        });
        return serde_yaml::to_string(&kubeconfig)
            .map(Access::Kubeconfig)
            .map_err(|e| AccessError::Kubeconfig(e.to_string()));
    }
    if let Some(secret) = profile
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::api::cluster_profile::KUBECONFIG_SECRET_ANNOTATION))
    {
        return Ok(Access::Secret(secret.clone()));
    }
    Err(AccessError::NoProvider(offered.keys().copied().collect::<Vec<_>>().join(", ")))
}

#[cfg(test)]
mod tests;
