//! Evaluated delegation resources → `RegistrationDefinition`s and `RegistrationAssignment`s
//! (SPEC §1 mapping, §9 eligible authorizations, issue 17 "carry over field for field").

use std::collections::BTreeMap;

use kube::core::ObjectMeta;
use serde_json::{Map, Value};

use super::error::ImportError;
use super::expression::lookup as get;
use super::roles::azure_role_name;
use super::template::{is_placeholder, Kind, Path, Resource, Target, ELIGIBLE_SINCE, SUPPORTED_API_VERSIONS};
use crate::api::{
    Authorization, DefinitionRef, EligibleApprover, EligibleAuthorization, JustInTimeAccessPolicy,
    MultiFactorAuthProvider, Plan, RegistrationAssignment, RegistrationAssignmentSpec, RegistrationDefinition,
    RegistrationDefinitionSpec,
};
use crate::model::catalog::{Catalog, Lookup};
use crate::model::tenant::Guid;

/// Where the imported objects go and what they are checked against.
pub struct Destination<'a> {
    /// `-n`: where definitions and subscription-level assignments go.
    pub subscription_namespace: &'a str,
    /// Explicit `--resource-group RG=NAMESPACE` mappings.
    pub resource_groups: &'a BTreeMap<String, String>,
    /// The resource-group namespaces of the subscription namespace.
    pub resource_group_namespaces: &'a [String],
    /// The role catalog every role GUID must be in (SPEC §4).
    pub catalog: &'a Catalog,
    /// Annotations every imported object carries (the source of the import).
    pub annotations: &'a BTreeMap<String, String>,
}

/// A Kubernetes object name (DNS-1123 subdomain, at most 253 characters) for an ARM resource
/// name: lower-cased, every character outside `[a-z0-9-]` replaced by `-`, runs of `-`
/// collapsed, and trimmed to start and end with a letter or digit. A GUID stays itself.
/// None when nothing is left.
pub fn kubernetes_name(arm_name: &str) -> Option<String> {
    let mut out = String::with_capacity(arm_name.len());
    for c in arm_name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let mut name = out.trim_matches('-').to_string();
    name.truncate(253);
    let name = name.trim_end_matches('-').to_string();
    (!name.is_empty()).then_some(name)
}

fn found(v: &Value) -> String {
    super::expression::kind(v).to_string()
}

/// Reads the fields of one object, reporting every problem into `errors`.
struct Reader<'a> {
    map: &'a Map<String, Value>,
    path: Path,
    errors: &'a mut Vec<ImportError>,
}

impl<'a> Reader<'a> {
    /// A reader over `value` at `path`, or None (reported) when it is not an object.
    fn new(value: &'a Value, path: Path, errors: &'a mut Vec<ImportError>) -> Option<Reader<'a>> {
        match value {
            Value::Object(map) => Some(Reader { map, path, errors }),
            other => {
                errors.push(ImportError::WrongType {
                    path: path.to_string(),
                    expected: "an object".into(),
                    found: found(other),
                });
                None
            }
        }
    }

    /// Reports every field outside `known`.
    fn only(&mut self, known: &[&str]) {
        for k in self.map.keys() {
            if !known.iter().any(|n| n.eq_ignore_ascii_case(k)) {
                self.errors.push(ImportError::UnknownField { path: self.path.field(k).to_string() });
            }
        }
    }

    fn string(&mut self, key: &str, required: bool) -> Option<String> {
        let at = self.path.field(key);
        match get(self.map, key) {
            None | Some(Value::Null) => {
                if required {
                    self.errors.push(ImportError::MissingField { path: at.to_string(), expected: "a string".into() });
                }
                None
            }
            Some(Value::String(s)) if is_placeholder(s) => {
                self.errors.push(ImportError::Placeholder { path: at.to_string(), value: s.clone() });
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.errors.push(ImportError::WrongType {
                    path: at.to_string(),
                    expected: "a string".into(),
                    found: found(other),
                });
                None
            }
        }
    }

    fn guid(&mut self, key: &str) -> Option<String> {
        let value = self.string(key, true)?;
        self.check_guid(&value, self.path.field(key))
    }

    fn check_guid(&mut self, value: &str, at: Path) -> Option<String> {
        match Guid::parse(value.trim()) {
            Some(g) => Some(g.to_string()),
            None => {
                self.errors.push(ImportError::NotAGuid { path: at.to_string(), value: value.to_string() });
                None
            }
        }
    }

    fn role(&mut self, value: &str, at: Path, catalog: &Catalog) -> Option<String> {
        let guid = self.check_guid(value, at.clone())?;
        match catalog.lookup(&guid) {
            Lookup::Found(_) => Some(guid),
            Lookup::Owner => {
                self.errors.push(ImportError::OwnerRole { path: at.to_string(), role_id: guid });
                None
            }
            Lookup::NotInCatalog => {
                let azure_name = azure_role_name(&guid);
                self.errors.push(ImportError::RoleNotInCatalog { path: at.to_string(), role_id: guid, azure_name });
                None
            }
        }
    }

    fn role_field(&mut self, key: &str, catalog: &Catalog) -> Option<String> {
        let value = self.string(key, true)?;
        self.role(&value, self.path.field(key), catalog)
    }

    /// The items of an array field with their paths (None when absent or null).
    fn array(&mut self, key: &str, required: bool) -> Option<(Vec<Value>, Path)> {
        let at = self.path.field(key);
        match get(self.map, key) {
            None | Some(Value::Null) => {
                if required {
                    self.errors.push(ImportError::MissingField { path: at.to_string(), expected: "an array".into() });
                }
                None
            }
            Some(Value::Array(items)) => Some((items.clone(), at)),
            Some(other) => {
                self.errors.push(ImportError::WrongType {
                    path: at.to_string(),
                    expected: "an array".into(),
                    found: found(other),
                });
                None
            }
        }
    }
}

fn authorization(item: &Value, at: Path, catalog: &Catalog, errors: &mut Vec<ImportError>) -> Option<Authorization> {
    let mut r = Reader::new(item, at, errors)?;
    r.only(&["principalId", "principalIdDisplayName", "roleDefinitionId", "delegatedRoleDefinitionIds"]);
    let principal_id = r.guid("principalId");
    let principal_id_display_name = r.string("principalIdDisplayName", false);
    let role_definition_id = r.role_field("roleDefinitionId", catalog);
    let mut delegated = Vec::new();
    let mut delegated_ok = true;
    if let Some((items, path)) = r.array("delegatedRoleDefinitionIds", false) {
        for (i, d) in items.iter().enumerate() {
            let role = match d {
                Value::String(s) if is_placeholder(s) => {
                    r.errors.push(ImportError::Placeholder { path: path.index(i).to_string(), value: s.clone() });
                    None
                }
                Value::String(s) => r.role(s, path.index(i), catalog),
                other => {
                    r.errors.push(ImportError::WrongType {
                        path: path.index(i).to_string(),
                        expected: "a role GUID".into(),
                        found: found(other),
                    });
                    None
                }
            };
            match role {
                Some(role) => delegated.push(role),
                None => delegated_ok = false,
            }
        }
    }
    Some(Authorization {
        principal_id: principal_id?,
        principal_id_display_name,
        principal_type: None,
        role_definition_id: role_definition_id?,
        delegated_role_definition_ids: delegated_ok.then_some(delegated)?,
    })
}

fn eligible_authorization(
    item: &Value,
    at: Path,
    catalog: &Catalog,
    errors: &mut Vec<ImportError>,
) -> Option<EligibleAuthorization> {
    let mut r = Reader::new(item, at, errors)?;
    r.only(&["principalId", "principalIdDisplayName", "roleDefinitionId", "justInTimeAccessPolicy"]);
    let principal_id = r.guid("principalId");
    let principal_id_display_name = r.string("principalIdDisplayName", false);
    let role_definition_id = r.role_field("roleDefinitionId", catalog);
    let policy_path = r.path.field("justInTimeAccessPolicy");
    let policy = match get(r.map, "justInTimeAccessPolicy") {
        None | Some(Value::Null) => Ok(None),
        Some(p) => just_in_time_policy(p, policy_path, r.errors).map(Some).ok_or(()),
    };
    Some(EligibleAuthorization {
        principal_id: principal_id?,
        principal_id_display_name,
        role_definition_id: role_definition_id?,
        just_in_time_access_policy: policy.ok()?,
        // Azure's eligible authorizations carry no principalType: user or group.
        principal_type: None,
    })
}

fn just_in_time_policy(value: &Value, at: Path, errors: &mut Vec<ImportError>) -> Option<JustInTimeAccessPolicy> {
    let mut r = Reader::new(value, at, errors)?;
    r.only(&["multiFactorAuthProvider", "maximumActivationDuration", "managedByTenantApprovers"]);
    let mfa_path = r.path.field("multiFactorAuthProvider");
    let mfa = match r.string("multiFactorAuthProvider", false).as_deref() {
        None => Some(MultiFactorAuthProvider::None),
        Some(s) if s.eq_ignore_ascii_case("Azure") => Some(MultiFactorAuthProvider::Azure),
        Some(s) if s.eq_ignore_ascii_case("None") => Some(MultiFactorAuthProvider::None),
        Some(other) => {
            r.errors.push(ImportError::InvalidValue {
                path: mfa_path.to_string(),
                message: format!("{other:?} is not Azure or None"),
            });
            None
        }
    };
    let duration = r.string("maximumActivationDuration", false);
    let mut approvers = Vec::new();
    let mut approvers_ok = true;
    if let Some((items, path)) = r.array("managedByTenantApprovers", false) {
        for (i, item) in items.iter().enumerate() {
            let approver = Reader::new(item, path.index(i), r.errors).and_then(|mut a| {
                a.only(&["principalId", "principalIdDisplayName"]);
                let principal_id = a.guid("principalId");
                let principal_id_display_name = a.string("principalIdDisplayName", false);
                Some(EligibleApprover { principal_id: principal_id?, principal_id_display_name })
            });
            match approver {
                Some(a) => approvers.push(a),
                None => approvers_ok = false,
            }
        }
    }
    Some(JustInTimeAccessPolicy {
        multi_factor_auth_provider: mfa?,
        maximum_activation_duration: duration,
        managed_by_tenant_approvers: approvers_ok.then_some(approvers)?,
    })
}

fn plan(value: &Value, at: Path, errors: &mut Vec<ImportError>) -> Option<Plan> {
    let mut r = Reader::new(value, at, errors)?;
    r.only(&["name", "publisher", "product", "version"]);
    let name = r.string("name", true);
    let publisher = r.string("publisher", true);
    let product = r.string("product", true);
    let version = r.string("version", true);
    Some(Plan { name: name?, publisher: publisher?, product: product?, version: version? })
}

fn definition_spec(
    res: &Resource,
    catalog: &Catalog,
    errors: &mut Vec<ImportError>,
) -> Option<RegistrationDefinitionSpec> {
    let properties_path = res.path.field("properties");
    let mut r = Reader::new(&res.properties, properties_path, errors)?;
    r.only(&[
        "registrationDefinitionName",
        "description",
        "managedByTenantId",
        "authorizations",
        "eligibleAuthorizations",
    ]);
    let name = r.string("registrationDefinitionName", true);
    let description = r.string("description", false);
    let tenant = r.guid("managedByTenantId");
    let mut ok = true;
    let mut authorizations = Vec::new();
    if let Some((items, path)) = r.array("authorizations", true) {
        if items.is_empty() {
            r.errors.push(ImportError::InvalidValue {
                path: path.to_string(),
                message: "at least one authorization is required".into(),
            });
            ok = false;
        }
        for (i, item) in items.iter().enumerate() {
            match authorization(item, path.index(i), catalog, r.errors) {
                Some(a) => authorizations.push(a),
                None => ok = false,
            }
        }
    } else {
        ok = false;
    }
    let mut eligible = Vec::new();
    if let Some((items, path)) = r.array("eligibleAuthorizations", false) {
        let since = SUPPORTED_API_VERSIONS.iter().position(|v| *v == ELIGIBLE_SINCE);
        let this = SUPPORTED_API_VERSIONS.iter().position(|v| *v == res.api_version);
        if !items.is_empty() && this < since {
            r.errors.push(ImportError::InvalidValue {
                path: path.to_string(),
                message: format!(
                    "eligibleAuthorizations need apiVersion {ELIGIBLE_SINCE} or later, the resource has {}",
                    res.api_version
                ),
            });
            ok = false;
        }
        for (i, item) in items.iter().enumerate() {
            match eligible_authorization(item, path.index(i), catalog, r.errors) {
                Some(e) => eligible.push(e),
                None => ok = false,
            }
        }
    }
    let plan = match &res.plan {
        None => Ok(None),
        Some(p) => plan(p, res.path.field("plan"), errors).map(Some).ok_or(()),
    };
    if !ok {
        return None;
    }
    Some(RegistrationDefinitionSpec {
        registration_definition_name: name?,
        description,
        managed_by_tenant_id: tenant?,
        authorizations,
        eligible_authorizations: eligible,
        plan: plan.ok()?,
    })
}

/// The definition name a `registrationDefinitionId` points at: the last segment after
/// `registrationDefinitions/`, or the whole value when it is a bare name.
fn referenced_definition(id: &str) -> &str {
    let lower = id.to_ascii_lowercase();
    const MARK: &str = "microsoft.managedservices/registrationdefinitions/";
    match lower.rfind(MARK) {
        Some(at) => id[at + MARK.len()..].trim_end_matches('/'),
        None => id,
    }
}

fn namespace_for(target: &Target, to: &Destination<'_>) -> Result<String, ImportError> {
    match target {
        Target::Subscription => Ok(to.subscription_namespace.to_string()),
        Target::ResourceGroup { name, path } => {
            let explicit = to
                .resource_groups
                .get(name)
                .or_else(|| to.resource_groups.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v));
            if let Some(ns) = explicit {
                // The subscription namespace is no resource group of itself: an assignment
                // there would delegate the whole subscription, not this resource group.
                if ns == to.subscription_namespace {
                    return Err(ImportError::InvalidArgument {
                        path: format!("--resource-group {name}={ns}"),
                        message: format!(
                            "namespace {ns:?} is the subscription namespace itself: the assignment would delegate the whole subscription, not resource group {name:?}; map it to a resource-group namespace of {ns}"
                        ),
                    });
                }
                return Ok(ns.clone());
            }
            to.resource_group_namespaces.iter().find(|ns| ns.eq_ignore_ascii_case(name)).cloned().ok_or_else(|| {
                ImportError::UnknownResourceGroup {
                    path: path.to_string(),
                    resource_group: name.clone(),
                    subscription_namespace: to.subscription_namespace.to_string(),
                }
            })
        }
    }
}

fn metadata(name: String, namespace: String, annotations: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace),
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
        ..Default::default()
    }
}

/// Maps evaluated resources to our objects.
///
/// # Errors
/// Every [`ImportError`] found, with its path; nothing is returned partially.
pub fn map(
    resources: &[Resource],
    to: &Destination<'_>,
) -> Result<(Vec<RegistrationDefinition>, Vec<RegistrationAssignment>), Vec<ImportError>> {
    let mut errors = Vec::new();
    let mut definitions: Vec<RegistrationDefinition> = Vec::new();
    // ARM name (lower-case) → Kubernetes name, for assignments.
    let mut by_arm_name: BTreeMap<String, String> = BTreeMap::new();
    let mut definition_names: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for res in resources.iter().filter(|r| r.kind == Kind::Definition) {
        let name_path = res.path.field("name");
        let Some(name) = kubernetes_name(&res.name) else {
            errors.push(ImportError::InvalidName { path: name_path.to_string(), name: res.name.clone() });
            continue;
        };
        if !definition_names.insert(name.clone()) {
            errors.push(ImportError::DuplicateName {
                path: name_path.to_string(),
                kind: "RegistrationDefinition".into(),
                namespace: to.subscription_namespace.into(),
                name,
            });
            continue;
        }
        by_arm_name.insert(res.name.to_ascii_lowercase(), name.clone());
        if let Some(spec) = definition_spec(res, to.catalog, &mut errors) {
            let meta = metadata(name, to.subscription_namespace.to_string(), to.annotations);
            definitions.push(RegistrationDefinition { metadata: meta, spec, status: None });
        }
    }
    if definitions.is_empty() && errors.is_empty() {
        errors.push(ImportError::NothingToImport { path: "resources".into() });
    }
    let mut assignments: Vec<RegistrationAssignment> = Vec::new();
    // (namespace, name) of every assignment so far: duplicates in one look-up each.
    let mut placed: std::collections::BTreeSet<(String, String)> = std::collections::BTreeSet::new();
    for res in resources.iter().filter(|r| r.kind == Kind::Assignment) {
        let name_path = res.path.field("name");
        let Some(mut r) = Reader::new(&res.properties, res.path.field("properties"), &mut errors) else { continue };
        r.only(&["registrationDefinitionId"]);
        let definition_id = r.string("registrationDefinitionId", true);
        // Where it goes is judged whatever else is wrong with it.
        let namespace = match namespace_for(&res.target, to) {
            Ok(ns) => Some(ns),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let (Some(definition_id), Some(namespace)) = (definition_id, namespace) else { continue };
        let definition = by_arm_name.get(&referenced_definition(&definition_id).to_ascii_lowercase()).cloned();
        let Some(definition) = definition else {
            // A definition of this template that failed has been reported already.
            if !resources.iter().any(|d| {
                d.kind == Kind::Definition && d.name.eq_ignore_ascii_case(referenced_definition(&definition_id))
            }) {
                errors.push(ImportError::DefinitionNotInTemplate {
                    path: res.path.field("properties").field("registrationDefinitionId").to_string(),
                    definition_id,
                });
            }
            continue;
        };
        let Some(name) = kubernetes_name(&res.name) else {
            errors.push(ImportError::InvalidName { path: name_path.to_string(), name: res.name.clone() });
            continue;
        };
        if !placed.insert((namespace.clone(), name.clone())) {
            errors.push(ImportError::DuplicateName {
                path: name_path.to_string(),
                kind: "RegistrationAssignment".into(),
                namespace,
                name,
            });
            continue;
        }
        let spec = RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: definition } };
        assignments.push(RegistrationAssignment {
            metadata: metadata(name, namespace, to.annotations),
            spec,
            status: None,
        });
    }
    if errors.is_empty() {
        Ok((definitions, assignments))
    } else {
        Err(errors)
    }
}
