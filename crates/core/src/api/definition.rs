//! `RegistrationDefinition`: what a managing tenant may do (Azure's registrationDefinitions).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, ProvisioningState};

/// A delegation offer: which principals of the managing tenant get which built-in roles.
/// It lives in the customer's subscription namespace and grants nothing until a
/// `RegistrationAssignment` assigns it to a scope.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "managedservices.kubelighthouse.io",
    version = "v1alpha1",
    kind = "RegistrationDefinition",
    namespaced,
    status = "RegistrationDefinitionStatus",
    shortname = "regdef",
    category = "lighthouse",
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.registrationDefinitionName"}"#,
    printcolumn = r#"{"name":"Managed By","type":"string","jsonPath":".spec.managedByTenantId"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.provisioningState"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationDefinitionSpec {
    /// Display name of the offer, shown to the customer (Azure: registrationDefinitionName).
    #[schemars(length(min = 1, max = 256))]
    pub registration_definition_name: String,

    /// What the managing tenant will do with the access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub description: Option<String>,

    /// Tenant ID (GUID) of the managing tenant: the service provider or central IT. Must differ
    /// from the home tenant of the subscription namespace: Lighthouse is cross-tenant only.
    #[schemars(length(max = 64))]
    pub managed_by_tenant_id: String,

    /// Standing access: principals of the managing tenant and the built-in role each gets.
    #[schemars(length(min = 1))]
    pub authorizations: Vec<Authorization>,

    /// Just-in-time access (Azure's eligible authorizations). Validated like authorizations;
    /// nothing is materialized for them until activated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligible_authorizations: Vec<EligibleAuthorization>,

    /// Marketplace plan of a managed service offer; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

impl RegistrationDefinitionSpec {
    /// Namespaces of the ServiceAccount principals (`principalId: namespace/name`), each once.
    /// Their home tenant is part of the definition's validity (docs/install.md, "Authentication: managing-tenant identities"), so a change of their
    /// labels, or their deletion, re-judges the definition.
    pub fn service_account_namespaces(&self) -> Vec<String> {
        let mut namespaces: Vec<String> = self
            .authorizations
            .iter()
            .filter(|a| a.principal_type == Some(PrincipalType::ServiceAccount))
            .filter_map(|a| a.principal_id.split_once('/').map(|(ns, _)| ns.to_string()))
            .collect();
        namespaces.sort();
        namespaces.dedup();
        namespaces
    }
}

/// One principal of the managing tenant and the role it is granted.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// Object ID (GUID) of a user, group or service principal in the managing tenant; for
    /// `principalType: ServiceAccount`, `namespace/name` of a ServiceAccount in a namespace
    /// whose home tenant is the managing tenant.
    #[schemars(length(max = 317))]
    pub principal_id: String,

    /// Human-readable name of the principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub principal_id_display_name: Option<String>,

    /// Kind of principal. Unset binds both a User and a Group subject (Entra object IDs are
    /// unique across kinds, as in Azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_type: Option<PrincipalType>,

    /// Built-in role: its Azure-compatible GUID (annotation
    /// `kubelighthouse.io/role-definition-id` of a catalog ClusterRole) or the ClusterRole name.
    #[schemars(length(max = 253))]
    pub role_definition_id: String,

    /// Roles a User Access Administrator may assign to managed identities (ServiceAccounts).
    /// Required with, and only allowed with, User Access Administrator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = 253)))]
    pub delegated_role_definition_ids: Vec<String>,
}

/// Kind of principal named by `principalId`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum PrincipalType {
    /// A user of the managing tenant: a User subject (docs/install.md, "Authentication").
    User,
    /// A group of the managing tenant: a Group subject (docs/install.md, "Authentication").
    Group,
    /// An application of the managing tenant: a User subject (docs/install.md, "Authentication").
    ServicePrincipal,
    /// The managing tenant's in-cluster automation.
    ServiceAccount,
}

/// An eligible (just-in-time) authorization, Azure's shape.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EligibleAuthorization {
    /// Object ID (GUID) of the eligible principal in the managing tenant.
    #[schemars(length(max = 317))]
    pub principal_id: String,
    /// Human-readable name of the principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub principal_id_display_name: Option<String>,
    /// Kind of principal, as for authorizations (unset: user and group). `ServiceAccount` is
    /// rejected: activation needs a person signing in (docs/just-in-time.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_type: Option<PrincipalType>,
    /// Built-in role the principal may activate.
    #[schemars(length(max = 253))]
    pub role_definition_id: String,
    /// How activation works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub just_in_time_access_policy: Option<JustInTimeAccessPolicy>,
}

/// Azure's `justInTimeAccessPolicy`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JustInTimeAccessPolicy {
    /// Whether activation requires multi-factor authentication.
    #[serde(default = "default_mfa")]
    pub multi_factor_auth_provider: MultiFactorAuthProvider,
    /// Longest activation, ISO 8601 duration (PT30M to PT8H). Default PT8H.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub maximum_activation_duration: Option<String>,
    /// Principals of the managing tenant who approve activations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_by_tenant_approvers: Vec<EligibleApprover>,
}

fn default_mfa() -> MultiFactorAuthProvider {
    MultiFactorAuthProvider::None
}

/// Multi-factor authentication provider for activation.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MultiFactorAuthProvider {
    /// Activation requires MFA: the requester's `extra["kubelighthouse.io/amr"]` holds `mfa` (docs/just-in-time.md).
    Azure,
    /// No MFA required (the default).
    None,
}

/// An approver of just-in-time activations.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EligibleApprover {
    /// Object ID (GUID) of the approver in the managing tenant.
    #[schemars(length(max = 317))]
    pub principal_id: String,
    /// Human-readable name of the approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub principal_id_display_name: Option<String>,
}

/// Marketplace plan (Azure's `plan`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Plan name.
    #[schemars(length(max = 256))]
    pub name: String,
    /// Plan publisher.
    #[schemars(length(max = 256))]
    pub publisher: String,
    /// Offer (product) the plan belongs to.
    #[schemars(length(max = 256))]
    pub product: String,
    /// Plan version.
    #[schemars(length(max = 256))]
    pub version: String,
}

/// Observed state of a definition.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationDefinitionStatus {
    /// Succeeded when the definition passes every rule; Failed names the rule in `conditions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// Home tenant of the subscription namespace (the customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managee_tenant_id: Option<String>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Generation of the spec last accepted. A catalog role that becomes non-delegable later
    /// is filtered, not rejected, for this generation: existing delegations keep working but
    /// never gain a rejected permission (seed 002).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_generation: Option<i64>,
    /// `Ready` says whether the definition is valid, and if not, which rule rejected it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
