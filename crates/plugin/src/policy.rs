//! `policy [-n NS | -A]`: the platform team's view of its guardrails (docs/guardrails.md):
//! every Guardrail with its rules, then every definition a guardrail forbids part of, naming
//! the guardrail, the rule and both fields. The delegations are judged here, with the same
//! pure core the controller uses ([`kube_lighthouse_core::model::guardrail`]), so the answer does not wait
//! for (or depend on) a running controller.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::cli::GlobalArgs;
use super::output::{self, Column, OutputFormat, TextTable};
use super::providers::{assignments_of, catalog, list};
use super::{client, PluginError};
use kube_lighthouse_core::api::{Guardrail, GuardrailSpec, RegistrationAssignment, RegistrationDefinition};
use kube_lighthouse_core::model::catalog::Catalog;
use kube_lighthouse_core::model::guardrail::{self, Guardrails};

/// One thing a guardrail forbids in one definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// The definition's namespace (a subscription).
    pub namespace: String,
    /// The definition's name.
    pub definition: String,
    /// Its `managedByTenantId`.
    pub managed_by_tenant_id: String,
    /// The guardrail that forbids it.
    pub guardrail: String,
    /// The rule (a condition reason, e.g. `GuardrailTenantNotAllowed`).
    pub rule: String,
    /// The definition's field.
    pub field: String,
    /// The guardrail's field.
    pub guardrail_field: String,
    /// Its assignments, `namespace/name`: the delegations it affects.
    pub assignments: Vec<String>,
}

/// What a guardrail forbids in the definitions given, the namespaces' labels read from
/// `labels_of` (namespace → labels), sorted by namespace, definition and guardrail.
pub fn violations(
    guardrails: &Guardrails,
    definitions: &[RegistrationDefinition],
    assignments: &[RegistrationAssignment],
    labels_of: &BTreeMap<String, BTreeMap<String, String>>,
    catalog: &Catalog,
) -> Vec<Violation> {
    let subscription_of: BTreeMap<String, String> = labels_of
        .iter()
        .filter_map(|(ns, labels)| {
            Some((ns.clone(), labels.get(kube_lighthouse_core::model::keys::SUBSCRIPTION)?.clone()))
        })
        .collect();
    let mut out = Vec::new();
    for d in definitions {
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let labels = labels_of.get(&namespace).cloned().unwrap_or_default();
        let delegations: Vec<String> = assignments_of(d, assignments, &subscription_of)
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a.metadata.namespace.as_deref().unwrap_or_default(),
                    a.metadata.name.as_deref().unwrap_or_default()
                )
            })
            .collect();
        for f in guardrail::findings(guardrails, &labels, &d.spec, catalog) {
            out.push(Violation {
                namespace: namespace.clone(),
                definition: d.metadata.name.clone().unwrap_or_default(),
                managed_by_tenant_id: d.spec.managed_by_tenant_id.clone(),
                guardrail: f.guardrail,
                rule: f.rule.reason().to_string(),
                field: f.field,
                guardrail_field: f.guardrail_field.to_string(),
                assignments: delegations.clone(),
            });
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.definition, &a.guardrail).cmp(&(&b.namespace, &b.definition, &b.guardrail)));
    out
}

fn selector_text(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else { return "<all>".into() };
    let mut parts: Vec<String> = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => format!("{} {} ({values})", e.key, op.to_lowercase()),
        });
    }
    if parts.is_empty() {
        "<all>".into()
    } else {
        parts.join(",")
    }
}

fn list_text(list: Option<&Vec<String>>) -> String {
    list.map_or("<any>".into(), |l| if l.is_empty() { "<none>".into() } else { l.join(",") })
}

/// The guardrails table: one row per guardrail, its rules as cells.
pub fn guardrail_table(guardrails: &Guardrails) -> TextTable {
    let mut t = TextTable::new(vec![
        Column::new("Guardrail"),
        Column::new("Namespaces"),
        Column::new("Managing Tenants"),
        Column::new("Standing Roles"),
        Column::new("Eligible Roles"),
        Column::new("Eligible Only"),
        Column::new("Max Activation"),
        Column::new("MFA"),
        Column::new("Delete Role"),
    ]);
    for g in guardrails.all() {
        let s: &GuardrailSpec = &g.spec;
        let roles = s.allowed_role_definition_ids.as_ref();
        let jit = s.just_in_time_access_policy.as_ref();
        t.push(vec![
            g.name.clone(),
            selector_text(s.namespace_selector.as_ref()),
            list_text(s.allowed_managing_tenant_ids.as_ref()),
            list_text(roles.and_then(|r| r.authorizations.as_ref())),
            list_text(roles.and_then(|r| r.eligible_authorizations.as_ref())),
            output::join(&s.eligible_only_role_definition_ids),
            jit.and_then(|j| j.maximum_activation_duration.clone()).unwrap_or_else(|| "<any>".into()),
            if jit.is_some_and(|j| j.require_multi_factor_auth) { "required" } else { "-" }.into(),
            if s.require_delete_role { "required" } else { "-" }.into(),
        ]);
    }
    t
}

/// The violations table.
pub fn violation_table(violations: &[Violation]) -> TextTable {
    let mut t = TextTable::new(vec![
        Column::new("Namespace"),
        Column::new("Definition"),
        Column::new("Managing Tenant"),
        Column::new("Guardrail"),
        Column::new("Rule"),
        Column::new("Field"),
        Column::wide("Guardrail Field"),
        Column::wide("Assignments"),
    ]);
    for v in violations {
        t.push(vec![
            v.namespace.clone(),
            v.definition.clone(),
            v.managed_by_tenant_id.clone(),
            v.guardrail.clone(),
            v.rule.clone(),
            v.field.clone(),
            v.guardrail_field.clone(),
            output::join(&v.assignments),
        ]);
    }
    t
}

/// The labels of the namespaces the definitions live in and the assignments are in: listed
/// when the caller may, else read one by one (unreadable ones count as unlabelled).
async fn namespace_labels(
    client: &kube::Client,
    definitions: &[RegistrationDefinition],
    assignments: &[RegistrationAssignment],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let api: Api<Namespace> = Api::all(client.clone());
    if let Ok(list) = api.list(&ListParams::default()).await {
        return list
            .items
            .into_iter()
            .filter_map(|n| Some((n.metadata.name?, n.metadata.labels.unwrap_or_default())))
            .collect();
    }
    let mut out = BTreeMap::new();
    let names = definitions.iter().filter_map(|d| d.metadata.namespace.clone());
    for ns in names.chain(assignments.iter().filter_map(|a| a.metadata.namespace.clone())) {
        if out.contains_key(&ns) {
            continue;
        }
        if let Ok(n) = api.get(&ns).await {
            out.insert(ns, n.metadata.labels.unwrap_or_default());
        }
    }
    out
}

/// `policy`.
///
/// # Errors
/// [`PluginError`] when the guardrails, definitions or assignments cannot be listed.
pub async fn run(global: &GlobalArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let namespace = (!global.all_namespaces && global.namespace.is_some()).then_some(conn.namespace.as_str());
    let objects: Vec<Guardrail> = Api::all(conn.client.clone()).list(&ListParams::default()).await?.items;
    let guardrails = Guardrails::from_objects(&objects);
    let definitions: Vec<RegistrationDefinition> = list(&conn.client, namespace).await?;
    let assignments: Vec<RegistrationAssignment> = list(&conn.client, namespace).await?;
    let labels = namespace_labels(&conn.client, &definitions, &assignments).await;
    let catalog = catalog(&conn.client).await;
    let found = violations(&guardrails, &definitions, &assignments, &labels, &catalog);
    match global.output {
        Some(format @ (OutputFormat::Json | OutputFormat::Yaml)) => {
            let items: Vec<serde_json::Value> = objects
                .iter()
                .map(|g| super::manifest::manifest(g).map_err(PluginError::from))
                .collect::<Result<_, _>>()?;
            let report = serde_json::json!({"guardrails": items, "violations": found});
            let text = if format == OutputFormat::Json { output::to_json(&report)? } else { output::to_yaml(&report)? };
            out.write_all(text.as_bytes())?;
        }
        Some(OutputFormat::Name) => {
            let names: Vec<String> = objects.iter().filter_map(|g| g.metadata.name.clone()).collect();
            out.write_all(output::names("guardrail", kube_lighthouse_core::api::POLICY_GROUP, &names).as_bytes())?;
        }
        format => {
            let wide = format == Some(OutputFormat::Wide);
            if guardrails.is_empty() {
                writeln!(out, "No guardrails: every delegation the rules of docs/roles.md allow may be made.")?;
            } else {
                out.write_all(guardrail_table(&guardrails).render(wide).as_bytes())?;
            }
            writeln!(out)?;
            if found.is_empty() {
                writeln!(out, "No delegation breaks a guardrail.")?;
            } else {
                out.write_all(violation_table(&found).render(wide).as_bytes())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{self, shipped_catalog, DefinitionInput};
    use kube_lighthouse_core::api::{AllowedRoles, JustInTimeAccessLimits};
    use kube_lighthouse_core::model::guardrail::NamedGuardrail;

    const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const OTHER: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    fn definition(namespace: &str, tenant: &str) -> RegistrationDefinition {
        manifest::definition(
            &DefinitionInput {
                name: "contoso-msp".into(),
                namespace: namespace.into(),
                display_name: Some("Contoso".into()),
                managed_by_tenant_id: tenant.into(),
                authorizations: vec![
                    "principalId=00000000-0000-0000-0000-0000000000a1,role=Reader".into(),
                    "principalId=00000000-0000-0000-0000-0000000000b2,role=Contributor".into(),
                ],
                ..Default::default()
            },
            &shipped_catalog(),
        )
        .expect("valid")
    }

    fn guardrails() -> Guardrails {
        let prod = LabelSelector {
            match_labels: Some(BTreeMap::from([("env".to_string(), "prod".to_string())])),
            match_expressions: None,
        };
        Guardrails::new(vec![
            NamedGuardrail {
                name: "prod".into(),
                spec: GuardrailSpec {
                    namespace_selector: Some(prod),
                    allowed_managing_tenant_ids: Some(vec![TENANT.into()]),
                    eligible_only_role_definition_ids: vec!["Contributor".into()],
                    allowed_role_definition_ids: Some(AllowedRoles {
                        authorizations: None,
                        eligible_authorizations: Some(vec![]),
                    }),
                    just_in_time_access_policy: Some(JustInTimeAccessLimits {
                        maximum_activation_duration: Some("PT2H".into()),
                        require_multi_factor_auth: true,
                    }),
                    require_delete_role: true,
                },
            },
            NamedGuardrail { name: "open".into(), spec: GuardrailSpec::default() },
        ])
    }

    #[test]
    fn violations_name_the_guardrail_rule_fields_and_delegations_of_governed_namespaces_only() {
        let labels = BTreeMap::from([
            ("prod-a".to_string(), BTreeMap::from([("env".to_string(), "prod".to_string())])),
            (
                "prod-a-web".to_string(),
                BTreeMap::from([(kube_lighthouse_core::model::keys::SUBSCRIPTION.to_string(), "prod-a".to_string())]),
            ),
            ("dev-b".to_string(), BTreeMap::new()),
        ]);
        let definitions = [definition("prod-a", OTHER), definition("dev-b", OTHER)];
        let assignments = [manifest::assignment("contoso-msp", "prod-a-web", "contoso-msp")];
        let found = violations(&guardrails(), &definitions, &assignments, &labels, &shipped_catalog());
        let rules: Vec<(&str, &str, &str, &str)> = found
            .iter()
            .map(|v| (v.namespace.as_str(), v.guardrail.as_str(), v.rule.as_str(), v.field.as_str()))
            .collect();
        assert_eq!(
            rules,
            [
                ("prod-a", "prod", "GuardrailTenantNotAllowed", "spec.managedByTenantId"),
                ("prod-a", "prod", "GuardrailDeleteRoleRequired", "spec.authorizations"),
                ("prod-a", "prod", "GuardrailRoleEligibleOnly", "spec.authorizations[1].roleDefinitionId"),
            ]
        );
        assert_eq!(found[0].assignments, ["prod-a-web/contoso-msp"]);
        assert_eq!(found[0].guardrail_field, "spec.allowedManagingTenantIds");
        let text = violation_table(&found).render(false);
        assert!(text.starts_with("NAMESPACE   DEFINITION    MANAGING TENANT"), "{text}");
    }

    #[test]
    fn the_guardrail_table_shows_each_rule_and_what_is_unlimited() {
        let text = guardrail_table(&guardrails()).render(false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("GUARDRAIL   NAMESPACES   MANAGING TENANTS"), "{text}");
        let open: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(open, ["open", "<all>", "<any>", "<any>", "<any>", "<none>", "<any>", "-", "-"]);
        let prod: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            prod,
            ["prod", "env=prod", TENANT, "<any>", "<none>", "Contributor", "PT2H", "required", "required"]
        );
    }
}
