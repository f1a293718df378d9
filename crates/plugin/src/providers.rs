//! `providers [-n NS | -A]`: the customer side, Azure's "Service providers" page: per offer
//! (definition) in the namespaces the caller can read, the provider (managing) tenant, the
//! offer, its delegations (assignments), the roles and eligible roles, the state, whether
//! the guardrails allow it (docs/guardrails.md), and the `Onboarding` that created it, if one
//! did. With `-A`, the onboardings themselves follow (docs/onboarding.md): selector, offer and
//! the namespaces onboarded, skipped and opted out.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

use super::cli::GlobalArgs;
use super::output::{self, Column, OutputFormat, TextTable};
use super::{client, PluginError};
use kube_lighthouse_core::api::{Onboarding, RegistrationAssignment, RegistrationDefinition, GROUP};
use kube_lighthouse_core::model::catalog::Catalog;
use kube_lighthouse_core::model::keys;
use kube_lighthouse_core::model::onboarding;
use kube_lighthouse_core::model::views::{compliance, role_name};

/// The assignments of `definition`: in its namespace, or in a resource group whose
/// subscription (`subscription_of`, namespace → subscription label) is its namespace.
pub fn assignments_of<'a>(
    definition: &RegistrationDefinition,
    assignments: &'a [RegistrationAssignment],
    subscription_of: &BTreeMap<String, String>,
) -> Vec<&'a RegistrationAssignment> {
    let (Some(ns), Some(name)) = (definition.metadata.namespace.as_deref(), definition.metadata.name.as_deref()) else {
        return Vec::new();
    };
    assignments
        .iter()
        .filter(|a| a.spec.registration_definition_ref.name == name)
        .filter(|a| {
            let at = a.metadata.namespace.as_deref().unwrap_or_default();
            at == ns || subscription_of.get(at).is_some_and(|s| s == ns)
        })
        .collect()
}

fn state_of(state: Option<kube_lighthouse_core::api::ProvisioningState>) -> String {
    state.map_or("Unknown", |s| s.as_str()).to_string()
}

/// The "Service providers" table. One row per definition; assignments whose definition the
/// caller cannot read get a row of their own (offer `<NAME>`).
pub fn table(
    definitions: &[RegistrationDefinition],
    assignments: &[RegistrationAssignment],
    subscription_of: &BTreeMap<String, String>,
    catalog: &Catalog,
    all_namespaces: bool,
) -> TextTable {
    let mut t = TextTable::new(output::namespaced(
        all_namespaces,
        [
            Column::new("Provider Tenant"),
            Column::new("Offer"),
            Column::new("Delegations"),
            Column::new("Roles"),
            Column::new("Eligible Roles"),
            Column::new("State"),
            Column::new("Compliance"),
            Column::wide("Definition"),
            Column::wide("Assignments"),
            Column::wide("Plan"),
            Column::wide("Onboarding"),
        ],
    ));
    let mut covered = BTreeSet::new();
    for d in definitions {
        let mine = assignments_of(d, assignments, subscription_of);
        let names: Vec<String> = mine
            .iter()
            .map(|a| {
                covered.insert((a.metadata.namespace.clone(), a.metadata.name.clone()));
                format!(
                    "{}/{}",
                    a.metadata.namespace.as_deref().unwrap_or_default(),
                    a.metadata.name.as_deref().unwrap_or_default()
                )
            })
            .collect();
        let roles: BTreeSet<String> =
            d.spec.authorizations.iter().map(|a| role_name(catalog, &a.role_definition_id)).collect();
        let eligible: BTreeSet<String> =
            d.spec.eligible_authorizations.iter().map(|a| role_name(catalog, &a.role_definition_id)).collect();
        let mut row = Vec::new();
        if all_namespaces {
            row.push(d.metadata.namespace.clone().unwrap_or_default());
        }
        row.extend([
            d.spec.managed_by_tenant_id.clone(),
            d.spec.registration_definition_name.clone(),
            mine.len().to_string(),
            output::join(&roles.into_iter().collect::<Vec<_>>()),
            output::join(&eligible.into_iter().collect::<Vec<_>>()),
            state_of(d.status.as_ref().and_then(|s| s.provisioning_state)),
            compliance(d).0,
            d.metadata.name.clone().unwrap_or_default(),
            output::join(&names),
            d.spec
                .plan
                .as_ref()
                .map_or("<none>".into(), |p| format!("{}/{}/{}@{}", p.publisher, p.product, p.name, p.version)),
            onboarded_by(&d.metadata),
        ]);
        t.push(row);
    }
    for a in assignments {
        if covered.contains(&(a.metadata.namespace.clone(), a.metadata.name.clone())) {
            continue;
        }
        let status = a.status.clone().unwrap_or_default();
        let mut row = Vec::new();
        if all_namespaces {
            row.push(a.metadata.namespace.clone().unwrap_or_default());
        }
        row.extend([
            status.managed_by_tenant_id.unwrap_or_else(|| "<unknown>".into()),
            format!("<{}>", a.spec.registration_definition_ref.name),
            "1".into(),
            "<unknown>".into(),
            "<unknown>".into(),
            state_of(status.provisioning_state),
            "<unknown>".into(),
            a.spec.registration_definition_ref.name.clone(),
            format!(
                "{}/{}",
                a.metadata.namespace.as_deref().unwrap_or_default(),
                a.metadata.name.as_deref().unwrap_or_default()
            ),
            "<none>".into(),
            onboarded_by(&a.metadata),
        ]);
        t.push(row);
    }
    t
}

/// The onboarding that created an object (its controller owner reference), or `<none>`.
fn onboarded_by(meta: &kube::api::ObjectMeta) -> String {
    let owner =
        meta.owner_references.iter().flatten().find(|r| {
            r.api_version == onboarding::API_VERSION && r.kind == onboarding::KIND && r.controller == Some(true)
        });
    owner.map_or("<none>".into(), |r| r.name.clone())
}

/// A label selector as `kubectl` prints one: `k=v,k in (a,b)`; `<all>` when empty.
fn selector_text(selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> String {
    let mut parts: Vec<String> = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({values})", e.key),
        });
    }
    if parts.is_empty() {
        "<all>".into()
    } else {
        parts.join(",")
    }
}

/// The onboardings table (cluster-scoped objects: shown with `-A`).
pub fn onboardings_table(onboardings: &[Onboarding], catalog: &Catalog) -> TextTable {
    let mut t = TextTable::new(vec![
        Column::new("Onboarding"),
        Column::new("Provider Tenant"),
        Column::new("Offer"),
        Column::new("Selector"),
        Column::new("Onboarded"),
        Column::new("Skipped"),
        Column::new("Opted Out"),
        Column::new("Ready"),
        Column::wide("Roles"),
        Column::wide("Eligible Roles"),
    ]);
    for o in onboardings {
        let status = o.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map_or("Unknown".to_string(), |c| format!("{:?} ({})", c.status, c.reason));
        let definition = &o.spec.definition;
        let roles: BTreeSet<String> =
            definition.authorizations.iter().map(|a| role_name(catalog, &a.role_definition_id)).collect();
        let eligible: BTreeSet<String> =
            definition.eligible_authorizations.iter().map(|a| role_name(catalog, &a.role_definition_id)).collect();
        t.push(vec![
            o.metadata.name.clone().unwrap_or_default(),
            definition.managed_by_tenant_id.clone(),
            definition.registration_definition_name.clone(),
            selector_text(&o.spec.namespace_selector),
            status.onboarded.to_string(),
            status.skipped.to_string(),
            status.opted_out.to_string(),
            ready,
            output::join(&roles.into_iter().collect::<Vec<_>>()),
            output::join(&eligible.into_iter().collect::<Vec<_>>()),
        ]);
    }
    t
}

/// The onboardings, when the caller may list them; none otherwise (a customer admin may not,
/// and a cluster without the kind has none).
async fn onboardings(client: &kube::Client) -> Vec<Onboarding> {
    Api::<Onboarding>::all(client.clone()).list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default()
}

/// The role catalog as the cluster has it, or the chart's when ClusterRoles are not readable.
pub async fn catalog(client: &kube::Client) -> Catalog {
    let api: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    match api.list(&ListParams::default().labels(&format!("{}=true", keys::BUILT_IN))).await {
        Ok(list) if !list.items.is_empty() => Catalog::from_cluster_roles(&list.items),
        _ => super::manifest::shipped_catalog(),
    }
}

/// Lists `K` in `namespace`, or in every namespace.
///
/// # Errors
/// [`PluginError::Api`] when the list is refused.
pub async fn list<K>(client: &kube::Client, namespace: Option<&str>) -> Result<Vec<K>, PluginError>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    Ok(api.list(&ListParams::default()).await?.items)
}

/// The subscription label of each namespace that holds an assignment but no definition of
/// that name, read one by one (a customer admin may not list namespaces); unreadable ones are
/// left out. Definitions found that way are added to `definitions`.
pub async fn resolve_resource_groups(
    client: &kube::Client,
    definitions: &mut Vec<RegistrationDefinition>,
    assignments: &[RegistrationAssignment],
) -> BTreeMap<String, String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut subscription_of = BTreeMap::new();
    let held: BTreeSet<(String, String)> =
        definitions.iter().filter_map(|d| Some((d.metadata.namespace.clone()?, d.metadata.name.clone()?))).collect();
    let mut wanted = BTreeSet::new();
    for a in assignments {
        let ns = a.metadata.namespace.clone().unwrap_or_default();
        if held.contains(&(ns.clone(), a.spec.registration_definition_ref.name.clone())) {
            continue;
        }
        if !subscription_of.contains_key(&ns) {
            if let Ok(n) = namespaces.get(&ns).await {
                if let Some(sub) = n.metadata.labels.and_then(|l| l.get(keys::SUBSCRIPTION).cloned()) {
                    subscription_of.insert(ns.clone(), sub);
                }
            }
        }
        if let Some(sub) = subscription_of.get(&ns) {
            let key = (sub.clone(), a.spec.registration_definition_ref.name.clone());
            if !held.contains(&key) {
                wanted.insert(key);
            }
        }
    }
    for (ns, name) in wanted {
        let api: Api<RegistrationDefinition> = Api::namespaced(client.clone(), &ns);
        if let Ok(d) = api.get(&name).await {
            definitions.push(d);
        }
    }
    subscription_of
}

/// `providers`.
///
/// The fleet's report grants (docs/fleet.md): who may read which managing tenant's report.
/// Empty when the caller may not list ClusterRoles and ClusterRoleBindings.
async fn report_grants(client: &kube::Client) -> Vec<kube_lighthouse_core::model::fleet::ReportGrant> {
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    match (roles.list(&ListParams::default()).await, bindings.list(&ListParams::default()).await) {
        (Ok(r), Ok(b)) => kube_lighthouse_core::model::fleet::report_grants(&r.items, &b.items),
        _ => Vec::new(),
    }
}

/// The "Report grants" table: provider tenant, who may read its report, the binding.
pub fn grants_table(grants: &[kube_lighthouse_core::model::fleet::ReportGrant]) -> TextTable {
    let mut t =
        TextTable::new(vec![Column::new("Report Of Tenant"), Column::new("Granted To"), Column::new("Binding")]);
    for g in grants {
        t.push(vec![g.tenant.clone(), g.subject.clone(), g.binding.clone()]);
    }
    t
}

/// # Errors
/// [`PluginError`] when the definitions or assignments cannot be listed.
pub async fn run(global: &GlobalArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let namespace = (!global.all_namespaces).then_some(conn.namespace.as_str());
    let mut definitions: Vec<RegistrationDefinition> = list(&conn.client, namespace).await?;
    let assignments: Vec<RegistrationAssignment> = list(&conn.client, namespace).await?;
    let subscription_of = resolve_resource_groups(&conn.client, &mut definitions, &assignments).await;
    let onboardings = if global.all_namespaces { onboardings(&conn.client).await } else { Vec::new() };
    match global.output {
        Some(OutputFormat::Json | OutputFormat::Yaml) => {
            let items: Vec<serde_json::Value> = definitions
                .iter()
                .map(|d| super::manifest::manifest(d).map_err(PluginError::from))
                .chain(assignments.iter().map(|a| super::manifest::manifest(a).map_err(PluginError::from)))
                .chain(onboardings.iter().map(|o| super::manifest::manifest(o).map_err(PluginError::from)))
                .collect::<Result<_, _>>()?;
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            let text = if global.output == Some(OutputFormat::Json) {
                output::to_json(&list)?
            } else {
                output::to_yaml(&list)?
            };
            out.write_all(text.as_bytes())?;
        }
        Some(OutputFormat::Name) => {
            let names: Vec<String> = definitions.iter().filter_map(|d| d.metadata.name.clone()).collect();
            out.write_all(output::names("registrationdefinition", GROUP, &names).as_bytes())?;
        }
        format => {
            if definitions.is_empty() && assignments.is_empty() && onboardings.is_empty() {
                eprintln!(
                    "No service providers found{}",
                    namespace.map(|n| format!(" in namespace {n}")).unwrap_or_default()
                );
                return Ok(());
            }
            let catalog = catalog(&conn.client).await;
            let wide = format == Some(OutputFormat::Wide);
            if !definitions.is_empty() || !assignments.is_empty() {
                let t = table(&definitions, &assignments, &subscription_of, &catalog, global.all_namespaces);
                out.write_all(t.render(wide).as_bytes())?;
            }
            if !onboardings.is_empty() {
                out.write_all(b"\n")?;
                out.write_all(onboardings_table(&onboardings, &catalog).render(wide).as_bytes())?;
            }
            if global.all_namespaces {
                let grants = report_grants(&conn.client).await;
                if !grants.is_empty() {
                    out.write_all(b"\n")?;
                    out.write_all(grants_table(&grants).render(wide).as_bytes())?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{self, shipped_catalog, DefinitionInput};

    const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";

    fn definition() -> RegistrationDefinition {
        let mut d = manifest::definition(
            &DefinitionInput {
                name: "contoso-msp".into(),
                namespace: "customer-a".into(),
                display_name: Some("Contoso Managed Services".into()),
                managed_by_tenant_id: TENANT.into(),
                authorizations: vec![
                    "principalId=00000000-0000-0000-0000-0000000000a1,role=Reader".into(),
                    "principalId=00000000-0000-0000-0000-0000000000a2,role=Reader".into(),
                    "principalId=00000000-0000-0000-0000-0000000000b2,role=Contributor".into(),
                ],
                eligible: vec!["principalId=00000000-0000-0000-0000-0000000000c3,role=Contributor".into()],
                ..Default::default()
            },
            &shipped_catalog(),
        )
        .expect("valid");
        d.status = Some(kube_lighthouse_core::api::RegistrationDefinitionStatus {
            provisioning_state: Some(kube_lighthouse_core::api::ProvisioningState::Succeeded),
            ..Default::default()
        });
        d
    }

    #[test]
    fn one_row_per_offer_with_its_delegations() {
        let assignments = vec![
            manifest::assignment("contoso-msp", "customer-a", "contoso-msp"),
            manifest::assignment("contoso-msp", "customer-a-web", "contoso-msp"),
            manifest::assignment("contoso-msp", "elsewhere", "contoso-msp"),
            manifest::assignment("other", "customer-a", "other-def"),
        ];
        let subs = BTreeMap::from([("customer-a-web".to_string(), "customer-a".to_string())]);
        let t = table(&[definition()], &assignments, &subs, &shipped_catalog(), false);
        let text = t.render(false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "PROVIDER TENANT                        OFFER                      DELEGATIONS   ROLES                ELIGIBLE ROLES   STATE       COMPLIANCE"
        );
        assert_eq!(
            lines[1],
            format!(
                "{TENANT}   Contoso Managed Services   2             Contributor,Reader   Contributor      Succeeded   Unknown"
            )
        );
        assert!(lines[2].starts_with("<unknown>"), "an assignment of an unreadable definition: {}", lines[2]);
        assert!(lines[2].contains("<contoso-msp>"), "elsewhere/contoso-msp is not a resource group of customer-a");
        assert!(lines[3].contains("<other-def>"));
        assert_eq!(lines.len(), 4);
        let wide = t.render(true);
        assert!(wide.lines().nth(1).expect("row").contains("customer-a/contoso-msp,customer-a-web/contoso-msp"));
        let all = table(&[definition()], &assignments[..2], &subs, &shipped_catalog(), true).render(false);
        assert!(all.starts_with("NAMESPACE    PROVIDER TENANT"));
    }

    #[test]
    fn onboardings_show_their_selector_offer_counts_and_what_they_created() {
        let o: Onboarding = serde_json::from_value(serde_json::json!({
            "apiVersion": "policy.kubelighthouse.io/v1alpha1", "kind": "Onboarding",
            "metadata": {"name": "contoso-prod", "uid": "u-1"},
            "spec": {"namespaceSelector": {"matchLabels": {"env": "prod"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]},
                "definition": {"registrationDefinitionName": "Contoso Managed Services", "managedByTenantId": TENANT,
                    "authorizations": [{"principalId": "00000000-0000-0000-0000-0000000000a1", "roleDefinitionId": "Reader"}]}},
            "status": {"onboarded": 998, "skipped": 1, "optedOut": 2,
                "conditions": [{"type": "Ready", "status": "True", "reason": "Onboarded", "message": "m"}]}}))
        .expect("onboarding");
        let text = onboardings_table(std::slice::from_ref(&o), &shipped_catalog()).render(true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ONBOARDING"), "{text}");
        for want in [
            "contoso-prod",
            TENANT,
            "Contoso Managed Services",
            "env=prod,tier in (gold,silver)",
            "998",
            "True (Onboarded)",
            "Reader",
        ] {
            assert!(lines[1].contains(want), "{want} missing: {}", lines[1]);
        }
        // What it created says so in the providers table (wide).
        let source = onboarding::Source::of(&o).expect("source");
        let mut created = onboarding::desired_definition(&source, "customer-a");
        created.status = None;
        let t = table(&[created, definition()], &[], &BTreeMap::new(), &shipped_catalog(), false).render(true);
        let rows: Vec<&str> = t.lines().collect();
        assert!(rows[0].ends_with("ONBOARDING"), "{t}");
        assert!(rows[1].ends_with("contoso-prod"), "{t}");
        assert!(rows[2].ends_with("<none>"), "{t}");
    }
}
