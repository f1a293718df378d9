//! Fixtures shared by the tests of every rule family: a world (catalog, namespaces, limits,
//! templates) to validate in, and builders of authorizations and specs.

use std::collections::BTreeMap;

use serde::Deserialize;

pub(super) use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Subject};

pub(super) use super::*;
pub(super) use crate::api::{Authorization, EligibleAuthorization, PrincipalType, RegistrationDefinitionSpec};
pub(super) use crate::model::catalog::tests::{catalog_cluster_role, READER};
pub(super) use crate::model::catalog::{
    Catalog, Lookup, OWNER, REGISTRATION_ASSIGNMENT_DELETE, USER_ACCESS_ADMINISTRATOR,
};
pub(super) use crate::model::projection::{user, IdentityTemplates};
pub(super) use crate::model::scope::tests::{cluster, rg, sub, CUSTOMER};
pub(super) use crate::model::scope::NamespaceInfo;

/// The managing tenant (the MSP).
pub(super) const MSP: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
/// A third tenant, neither customer nor MSP.
pub(super) const THIRD: &str = "33333333-3333-3333-3333-333333333333";
pub(super) const P1: &str = "00000000-0000-0000-0000-0000000000a1";
pub(super) const P2: &str = "00000000-0000-0000-0000-0000000000a2";
pub(super) const P3: &str = "00000000-0000-0000-0000-0000000000a3";
pub(super) const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub(super) const LOG_ANALYTICS: &str = "92aaf0da-9dab-42b6-94a3-d43ce8d16293";
pub(super) const RESOURCE_POLICY: &str = "36243c78-bf99-498c-9df9-86d9f8d28608";
pub(super) const VM_CONTRIBUTOR: &str = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c";
/// A GUID no catalog role carries.
pub(super) const UNKNOWN_ROLE: &str = "a1b2c3d4-0000-4000-8000-000000000000";
/// A catalog role that reads Secrets (Azure: a role with DataActions).
pub(super) const SECRET_READER: &str = "test:secret-reader";

pub(super) const SHIPPED_CATALOG: &str = include_str!("../../../../../charts/kube-lighthouse/files/catalog.yaml");

pub(super) fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub(super) fn shipped_cluster_roles() -> Vec<ClusterRole> {
    serde_yaml::Deserializer::from_str(SHIPPED_CATALOG)
        .map(|doc| ClusterRole::deserialize(doc).expect("catalog.yaml holds ClusterRoles"))
        .collect()
}

/// The shipped catalog plus a role that reads Secrets.
pub(super) fn catalog_with(extra: Vec<ClusterRole>) -> Catalog {
    let mut roles = shipped_cluster_roles();
    roles.push(catalog_cluster_role(
        SECRET_READER,
        None,
        None,
        vec![rule(&[""], &["pods", "secrets"], &["get", "list"])],
    ));
    roles.extend(extra);
    Catalog::from_cluster_roles(&roles)
}

/// `cluster()` plus the managing tenant's own namespaces and a third tenant's.
pub(super) fn namespaces() -> BTreeMap<String, NamespaceInfo> {
    let mut ns = cluster();
    ns.insert("msp-automation".into(), sub(MSP));
    ns.insert("msp-automation-jobs".into(), rg("msp-automation"));
    ns.insert("third-party".into(), sub(THIRD));
    ns
}

pub(super) struct World {
    pub(super) catalog: Catalog,
    pub(super) namespaces: BTreeMap<String, NamespaceInfo>,
    pub(super) limits: Limits,
    pub(super) templates: IdentityTemplates,
    pub(super) guardrails: crate::model::guardrail::Guardrails,
}

impl World {
    pub(super) fn new() -> World {
        World::with_catalog(catalog_with(Vec::new()))
    }

    pub(super) fn with_catalog(catalog: Catalog) -> World {
        World {
            catalog,
            namespaces: namespaces(),
            limits: Limits::default(),
            templates: IdentityTemplates::default(),
            guardrails: Default::default(),
        }
    }

    pub(super) fn ctx(&self) -> Context<'_> {
        Context {
            catalog: &self.catalog,
            namespaces: &self.namespaces,
            limits: &self.limits,
            templates: &self.templates,
            guardrails: &self.guardrails,
        }
    }

    pub(super) fn validate_facts(&self, facts: &DefinitionFacts<'_>) -> Result<ValidDefinition, Rejection> {
        validate_definition(facts, &self.ctx())
    }

    /// A fresh definition (never accepted) in the subscription namespace `customer-a`.
    pub(super) fn validate(&self, spec: &RegistrationDefinitionSpec) -> Result<ValidDefinition, Rejection> {
        self.validate_in("customer-a", spec)
    }

    pub(super) fn validate_in(
        &self,
        namespace: &str,
        spec: &RegistrationDefinitionSpec,
    ) -> Result<ValidDefinition, Rejection> {
        self.validate_facts(&fresh(namespace, spec))
    }

    /// The same definition after acceptance of `generation` at `accepted`.
    pub(super) fn revalidate(
        &self,
        spec: &RegistrationDefinitionSpec,
        generation: Option<i64>,
        accepted: Option<i64>,
    ) -> Result<ValidDefinition, Rejection> {
        self.validate_facts(&DefinitionFacts {
            namespace: "customer-a",
            spec,
            generation,
            accepted_generation: accepted,
            older_definitions: 0,
        })
    }
}

pub(super) fn fresh<'a>(namespace: &'a str, spec: &'a RegistrationDefinitionSpec) -> DefinitionFacts<'a> {
    DefinitionFacts { namespace, spec, generation: Some(1), accepted_generation: None, older_definitions: 0 }
}

pub(super) fn auth(principal: &str, role: &str) -> Authorization {
    Authorization {
        principal_id: principal.into(),
        principal_id_display_name: None,
        principal_type: None,
        role_definition_id: role.into(),
        delegated_role_definition_ids: Vec::new(),
    }
}

pub(super) fn typed(principal: &str, kind: PrincipalType, role: &str) -> Authorization {
    Authorization { principal_type: Some(kind), ..auth(principal, role) }
}

pub(super) fn uaa(principal: &str, delegated: &[&str]) -> Authorization {
    Authorization {
        delegated_role_definition_ids: delegated.iter().map(|s| s.to_string()).collect(),
        ..auth(principal, USER_ACCESS_ADMINISTRATOR)
    }
}

pub(super) fn eligible(principal: &str, role: &str) -> EligibleAuthorization {
    EligibleAuthorization {
        principal_id: principal.into(),
        principal_id_display_name: None,
        role_definition_id: role.into(),
        just_in_time_access_policy: None,
        principal_type: None,
    }
}

pub(super) fn spec(authorizations: Vec<Authorization>) -> RegistrationDefinitionSpec {
    spec_for(MSP, authorizations)
}

pub(super) fn spec_for(managing: &str, authorizations: Vec<Authorization>) -> RegistrationDefinitionSpec {
    RegistrationDefinitionSpec {
        registration_definition_name: "Contoso Managed Services".into(),
        description: None,
        managed_by_tenant_id: managing.into(),
        authorizations,
        eligible_authorizations: Vec::new(),
        plan: None,
    }
}

/// A spec whose authorizations are all valid Reader grants, with `bad` at index `at`.
pub(super) fn with_at(at: usize, bad: Authorization) -> RegistrationDefinitionSpec {
    let principals = [P1, P2, P3, "00000000-0000-0000-0000-0000000000a4"];
    let mut auths: Vec<Authorization> = principals[..at].iter().map(|p| auth(p, READER)).collect();
    auths.push(bad);
    spec(auths)
}

/// (rule, field) of every error, in order; panics when the definition is valid.
pub(super) fn errors(result: Result<ValidDefinition, Rejection>) -> Vec<(Rule, String)> {
    match result {
        Ok(v) => panic!("expected a rejection, got {v:?}"),
        Err(r) => r.0.into_iter().map(|e| (e.rule, e.field)).collect(),
    }
}

pub(super) fn one(rule: Rule, field: &str) -> Vec<(Rule, String)> {
    vec![(rule, field.to_string())]
}

pub(super) fn rejection(result: Result<ValidDefinition, Rejection>) -> Rejection {
    result.expect_err("expected a rejection")
}

pub(super) fn valid(result: Result<ValidDefinition, Rejection>) -> ValidDefinition {
    match result {
        Ok(v) => v,
        Err(r) => panic!("expected a valid definition, got: {r}"),
    }
}

pub(super) fn grant<'a>(v: &'a ValidDefinition, role: &str) -> &'a Grant {
    v.grants.iter().find(|g| g.role == role).unwrap_or_else(|| panic!("no grant for {role} in {:?}", v.grants))
}

pub(super) fn grant_roles(v: &ValidDefinition) -> Vec<&str> {
    v.grants.iter().map(|g| g.role.as_str()).collect()
}

pub(super) fn group(name: &str) -> Subject {
    Subject { kind: "Group".into(), ..user(name) }
}

pub(super) fn projected(principal: &str) -> String {
    format!("{MSP}:{principal}")
}
