//! Guardrails (docs/guardrails.md): what a platform team lets the delegations of the selected
//! subscription namespaces grant, judged here for the controller, the views and the audit
//! report. The API server judges the same rules at admission with the chart's
//! `ValidatingAdmissionPolicy`; this module is the enforcement that cannot be bypassed
//! (objects that predate a guardrail, or that reached etcd without admission).
//!
//! A guardrail governs a definition when its `namespaceSelector` matches the labels of the
//! subscription namespace the definition lives in. Every governing guardrail must allow the
//! definition; each finding names the guardrail and the field. Roles are compared through the
//! catalog (a GUID and the ClusterRole name of one role are the same role), and as text when
//! either side is not a catalog role.
//!
//! What a finding does ([`Target`]): one about the whole definition (its managing tenant, the
//! Delete role) rejects it; one about a single authorization rejects a definition never
//! accepted, and narrows an accepted one (that authorization is withheld, the rest stays in
//! force: `Degraded`), as a catalog change does.

use std::collections::BTreeMap;

use kube::core::{Selector, SelectorExt};

use super::catalog::{Catalog, Lookup, REGISTRATION_ASSIGNMENT_DELETE};
use super::tenant::Guid;
use super::validate::eligible::{parse_duration, MAX_ACTIVATION};
use super::validate::text::quoted;
use super::validate::Rule;
use crate::api::{Guardrail, GuardrailSpec, MultiFactorAuthProvider, RegistrationDefinitionSpec};

/// One guardrail as the model reads it: its name and spec.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedGuardrail {
    /// `metadata.name`: what every finding names.
    pub name: String,
    /// The rules.
    pub spec: GuardrailSpec,
}

/// The guardrails in force, sorted by name (so findings come in a stable order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Guardrails(Vec<NamedGuardrail>);

impl Guardrails {
    /// The guardrails `items`, sorted by name.
    pub fn new(mut items: Vec<NamedGuardrail>) -> Guardrails {
        items.sort_by(|a, b| a.name.cmp(&b.name));
        Guardrails(items)
    }

    /// The guardrails of the cached objects `objects`; those being deleted still count until
    /// they are gone (their deletion is what relaxes the rules).
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a Guardrail>) -> Guardrails {
        Guardrails::new(
            objects
                .into_iter()
                .map(|g| NamedGuardrail { name: g.metadata.name.clone().unwrap_or_default(), spec: g.spec.clone() })
                .collect(),
        )
    }

    /// Every guardrail, by name.
    pub fn all(&self) -> &[NamedGuardrail] {
        &self.0
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The guardrails that govern a subscription namespace labelled `labels`.
    pub fn governing<'a>(&'a self, labels: &'a BTreeMap<String, String>) -> impl Iterator<Item = &'a NamedGuardrail> {
        self.0.iter().filter(move |g| g.governs(labels))
    }
}

impl NamedGuardrail {
    /// Whether this guardrail governs a namespace labelled `labels`. A selector the controller
    /// cannot read (an unknown operator) governs every namespace: a guardrail fails closed.
    pub fn governs(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.spec.namespace_selector {
            None => true,
            Some(selector) => Selector::try_from(selector.clone()).map_or(true, |s| s.matches(labels)),
        }
    }
}

/// What a finding withholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// The whole definition: it is rejected.
    Definition,
    /// `spec.authorizations[i]`.
    Standing(usize),
    /// `spec.eligibleAuthorizations[i]`.
    Eligible(usize),
}

/// One rule of one guardrail that a definition breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The guardrail's name.
    pub guardrail: String,
    /// The rule broken (a condition reason).
    pub rule: Rule,
    /// JSON path of the offending field of the definition.
    pub field: String,
    /// The guardrail's field that forbids it, e.g. `spec.allowedManagingTenantIds`.
    pub guardrail_field: &'static str,
    /// What is wrong, for a person, naming the guardrail and both fields.
    pub message: String,
    /// What it withholds.
    pub target: Target,
}

/// Whether `listed` (a guardrail's entry) and `id` (a definition's `roleDefinitionId`) name
/// the same role: the same catalog role, or, where either is not one, the same text (GUIDs
/// and display names in any case).
pub fn same_role(catalog: &Catalog, listed: &str, id: &str) -> bool {
    match (catalog.lookup(listed), catalog.lookup(id)) {
        (Lookup::Found(a), Lookup::Found(b)) => a.name == b.name,
        (Lookup::Owner, Lookup::Owner) => true,
        _ => listed.trim().eq_ignore_ascii_case(id.trim()),
    }
}

fn listed_in(catalog: &Catalog, list: &[String], id: &str) -> bool {
    list.iter().any(|listed| same_role(catalog, listed, id))
}

/// Whether `id` names the Managed Services Registration Assignment Delete Role.
fn is_delete_role(catalog: &Catalog, id: &str) -> bool {
    match catalog.lookup(id) {
        Lookup::Found(role) => role.is_registration_assignment_delete(),
        _ => Guid::parse(id.trim()).is_some_and(|g| g.as_str() == REGISTRATION_ASSIGNMENT_DELETE),
    }
}

/// Everything the guardrails governing a subscription namespace labelled `labels` forbid in
/// `spec`, by guardrail name then field order.
pub fn findings(
    guardrails: &Guardrails,
    labels: &BTreeMap<String, String>,
    spec: &RegistrationDefinitionSpec,
    catalog: &Catalog,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for g in guardrails.governing(labels) {
        judge(g, spec, catalog, &mut out);
    }
    out
}

fn judge(g: &NamedGuardrail, spec: &RegistrationDefinitionSpec, catalog: &Catalog, out: &mut Vec<Finding>) {
    let name = g.name.as_str();
    let mut push = |rule, field: String, guardrail_field, target, what: String| {
        out.push(Finding {
            guardrail: name.to_string(),
            rule,
            message: format!("guardrail {} ({guardrail_field}) {what}", quoted(name)),
            field,
            guardrail_field,
            target,
        })
    };
    let rules = &g.spec;
    if let Some(tenants) = &rules.allowed_managing_tenant_ids {
        let tenant = spec.managed_by_tenant_id.trim();
        if !tenants.iter().any(|t| t.trim().eq_ignore_ascii_case(tenant)) {
            push(
                Rule::GuardrailTenantNotAllowed,
                "spec.managedByTenantId".into(),
                "spec.allowedManagingTenantIds",
                Target::Definition,
                format!("does not allow managing tenant {}", quoted(tenant)),
            );
        }
    }
    if rules.require_delete_role && !spec.authorizations.iter().any(|a| is_delete_role(catalog, &a.role_definition_id))
    {
        push(
            Rule::GuardrailDeleteRoleRequired,
            "spec.authorizations".into(),
            "spec.requireDeleteRole",
            Target::Definition,
            format!(
                "requires a standing authorization with the Managed Services Registration Assignment Delete Role \
                 ({REGISTRATION_ASSIGNMENT_DELETE})"
            ),
        );
    }
    let allowed = rules.allowed_role_definition_ids.as_ref();
    for (i, a) in spec.authorizations.iter().enumerate() {
        let field = format!("spec.authorizations[{i}].roleDefinitionId");
        let id = a.role_definition_id.as_str();
        if listed_in(catalog, &rules.eligible_only_role_definition_ids, id) {
            push(
                Rule::GuardrailRoleEligibleOnly,
                field.clone(),
                "spec.eligibleOnlyRoleDefinitionIds",
                Target::Standing(i),
                format!("allows role {} only as an eligible (just-in-time) authorization", quoted(id)),
            );
        }
        if let Some(list) = allowed.and_then(|r| r.authorizations.as_deref()) {
            if !listed_in(catalog, list, id) {
                push(
                    Rule::GuardrailRoleNotAllowed,
                    field,
                    "spec.allowedRoleDefinitionIds.authorizations",
                    Target::Standing(i),
                    format!("does not allow role {} as a standing authorization", quoted(id)),
                );
            }
        }
    }
    let limits = rules.just_in_time_access_policy.as_ref();
    for (i, e) in spec.eligible_authorizations.iter().enumerate() {
        let at = format!("spec.eligibleAuthorizations[{i}]");
        let id = e.role_definition_id.as_str();
        if let Some(list) = allowed.and_then(|r| r.eligible_authorizations.as_deref()) {
            if !listed_in(catalog, list, id) {
                push(
                    Rule::GuardrailRoleNotAllowed,
                    format!("{at}.roleDefinitionId"),
                    "spec.allowedRoleDefinitionIds.eligibleAuthorizations",
                    Target::Eligible(i),
                    format!("does not allow role {} as an eligible authorization", quoted(id)),
                );
            }
        }
        let Some(limits) = limits else { continue };
        let policy = e.just_in_time_access_policy.as_ref();
        if let Some(max) = limits.maximum_activation_duration.as_deref() {
            let asked = policy.and_then(|p| p.maximum_activation_duration.as_deref());
            // Unreadable on either side fails closed: the guardrail cannot vouch for it.
            let within = match (parse_duration(max), asked.map_or(Ok(MAX_ACTIVATION), parse_duration)) {
                (Ok(max), Ok(asked)) => asked <= max,
                _ => false,
            };
            if !within {
                push(
                    Rule::GuardrailActivationTooLong,
                    format!("{at}.justInTimeAccessPolicy.maximumActivationDuration"),
                    "spec.justInTimeAccessPolicy.maximumActivationDuration",
                    Target::Eligible(i),
                    format!(
                        "allows activations of at most {}, not {}",
                        quoted(max),
                        quoted(asked.unwrap_or("PT8H (the default)"))
                    ),
                );
            }
        }
        let mfa = policy.is_some_and(|p| p.multi_factor_auth_provider == MultiFactorAuthProvider::Azure);
        if limits.require_multi_factor_auth && !mfa {
            push(
                Rule::GuardrailMultiFactorAuthRequired,
                format!("{at}.justInTimeAccessPolicy.multiFactorAuthProvider"),
                "spec.justInTimeAccessPolicy.requireMultiFactorAuth",
                Target::Eligible(i),
                "requires multiFactorAuthProvider: Azure on every eligible authorization".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    use serde::Deserialize;

    use crate::model::catalog::CatalogRole;

    const POLICY: &str = include_str!("../../../../charts/kube-lighthouse/files/guardrail-policy.yaml");
    const CATALOG: &str = include_str!("../../../../charts/kube-lighthouse/files/catalog.yaml");

    /// The API server's policy compares roles through a copy of the shipped catalog's names:
    /// each ClusterRole name and display name maps to the role's GUID, and nothing else is
    /// there, so admission and the controller agree on which role a name means.
    #[test]
    fn the_admission_policy_knows_every_name_of_every_shipped_role() {
        let roles: Vec<CatalogRole> = serde_yaml::Deserializer::from_str(CATALOG)
            .filter_map(|doc| CatalogRole::from_cluster_role(&ClusterRole::deserialize(doc).expect("ClusterRole")))
            .collect();
        let mut expected = 0;
        for role in &roles {
            let guid = role.guid.as_ref().expect("every shipped role has a GUID");
            for name in
                [Some(role.name.clone()), role.display_name.as_ref().map(|d| d.to_lowercase())].into_iter().flatten()
            {
                let entry = format!("'{name}': '{guid}'");
                assert!(POLICY.contains(&entry), "the policy's aliases lack {entry}");
                expected += 1;
            }
        }
        let aliases = POLICY.split("- name: aliases").nth(1).and_then(|s| s.split("- name:").next()).expect("aliases");
        assert_eq!(aliases.matches("': '").count(), expected, "the policy's aliases name only shipped roles");
    }
}
