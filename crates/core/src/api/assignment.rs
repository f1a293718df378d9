//! `RegistrationAssignment`: puts a definition in force at a scope (Azure's registrationAssignments).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, ProvisioningState};

/// Assigns a `RegistrationDefinition` to the namespace it lives in: a subscription namespace
/// (covering it and all its resource-group namespaces) or one resource-group namespace.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "managedservices.kubelighthouse.io",
    version = "v1alpha1",
    kind = "RegistrationAssignment",
    namespaced,
    status = "RegistrationAssignmentStatus",
    shortname = "regassign",
    category = "lighthouse",
    printcolumn = r#"{"name":"Definition","type":"string","jsonPath":".spec.registrationDefinitionRef.name"}"#,
    printcolumn = r#"{"name":"Managed By","type":"string","jsonPath":".status.managedByTenantId"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.provisioningState"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationAssignmentSpec {
    /// The definition to assign, resolved in the subscription namespace of this scope.
    pub registration_definition_ref: DefinitionRef,
}

/// Reference to a `RegistrationDefinition` by name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct DefinitionRef {
    /// Name of the definition in the subscription namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Observed state of an assignment.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationAssignmentStatus {
    /// Accepted, Succeeded, Failed (nothing granted; see conditions) or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// Managing tenant the access is granted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by_tenant_id: Option<String>,
    /// Home tenant of the scope (the customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managee_tenant_id: Option<String>,
    /// Namespaces where the delegated RBAC is in force now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` says whether access is in force, and if not, which rule rejected it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
