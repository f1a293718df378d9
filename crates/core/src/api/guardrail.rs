//! `Guardrail` (`policy.kubelighthouse.io/v1alpha1`, cluster-scoped): what a platform team lets
//! namespace owners delegate, the Kubernetes peer of Azure Policy's two built-ins for
//! Lighthouse ("Allow managing tenant IDs to onboard through Azure Lighthouse", "Audit
//! delegation of scopes to a managing tenant"), docs/guardrails.md.
//!
//! Named `Guardrail` because that is what the platform team calls it and what it does: it
//! never grants, it only bounds what delegations may grant. `Policy` alone would collide with
//! the many policy engines' kinds; the API group already says whose guardrail it is.
//!
//! Every list is "absent: no limit; present: only these" (an empty list allows nothing), so a
//! guardrail states only the rules it means. The API server enforces a guardrail through the
//! chart's `ValidatingAdmissionPolicy` (`kube-lighthouse-guardrails`), which compares role
//! names as text; the controller also resolves them through the role catalog.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of the guardrail kinds.
pub const POLICY_GROUP: &str = "policy.kubelighthouse.io";

/// Limits on what delegations in the selected subscription namespaces may grant.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "policy.kubelighthouse.io",
    version = "v1alpha1",
    kind = "Guardrail",
    shortname = "guardrail",
    printcolumn = r#"{"name":"Tenants","type":"string","jsonPath":".spec.allowedManagingTenantIds"}"#,
    printcolumn = r#"{"name":"Eligible Only","type":"string","jsonPath":".spec.eligibleOnlyRoleDefinitionIds"}"#,
    printcolumn = r#"{"name":"Delete Role","type":"boolean","jsonPath":".spec.requireDeleteRole"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailSpec {
    /// The subscription namespaces (where definitions live) this guardrail governs, by their
    /// labels. Absent or empty: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Managing tenant IDs (GUIDs) a definition may name in `managedByTenantId` (Azure's
    /// built-in "Allow managing tenant IDs to onboard through Azure Lighthouse"). Absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(max = 64)))]
    pub allowed_managing_tenant_ids: Option<Vec<String>>,

    /// Catalog roles a definition may name, standing and eligible apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_role_definition_ids: Option<AllowedRoles>,

    /// Roles that may only be eligible (just-in-time), never standing: e.g. Contributor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = 253)))]
    pub eligible_only_role_definition_ids: Vec<String>,

    /// What every eligible authorization's `justInTimeAccessPolicy` must at least require.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub just_in_time_access_policy: Option<JustInTimeAccessLimits>,

    /// Every definition must give some principal the Managed Services Registration Assignment
    /// Delete Role (`91c1777a-f3dc-4fae-b103-61d183457e46`) as a standing authorization, so the
    /// managing tenant can always remove its own access (Azure's recommendation).
    #[serde(default)]
    pub require_delete_role: bool,
}

/// Catalog roles allowed, by the `roleDefinitionId` definitions use: the Azure GUID, the
/// ClusterRole name or the display name.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoles {
    /// Roles allowed in `spec.authorizations` (standing access). Absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(max = 253)))]
    pub authorizations: Option<Vec<String>>,
    /// Roles allowed in `spec.eligibleAuthorizations` (just-in-time access). Absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(max = 253)))]
    pub eligible_authorizations: Option<Vec<String>>,
}

/// Bounds on the just-in-time policy of eligible authorizations.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JustInTimeAccessLimits {
    /// Longest `maximumActivationDuration` an eligible authorization may set, ISO 8601 (`PT2H`,
    /// `PT1H30M`). An eligible authorization without one means PT8H.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^PT([0-9]+H)?([0-9]+M)?$"))]
    pub maximum_activation_duration: Option<String>,
    /// Every eligible authorization must require MFA (`multiFactorAuthProvider: Azure`).
    #[serde(default)]
    pub require_multi_factor_auth: bool,
}
