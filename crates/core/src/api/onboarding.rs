//! `Onboarding` (`policy.kubelighthouse.io/v1alpha1`, cluster-scoped): onboarding at scale,
//! Azure's "deployIfNotExists" sample that onboards every subscription of a management group.
//!
//! The kind is named `Onboarding`, not after a management group: a management group is cluster
//! scope here and is never delegable; what the object does is onboard each subscription
//! namespace its selector matches, one ordinary `RegistrationDefinition` and one
//! `RegistrationAssignment` per namespace, which the controller creates and owns
//! (docs/onboarding.md).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, RegistrationDefinitionSpec};

/// Delegates every subscription namespace its selector matches to one managing tenant, with one
/// definition template: the controller creates, in each such namespace, a
/// `RegistrationDefinition` of that spec and a `RegistrationAssignment` of it at subscription
/// scope, and removes both when the namespace opts out, leaves the selector, or the onboarding
/// is deleted. A customer's own definition of the same offer in a namespace is left alone.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "policy.kubelighthouse.io",
    version = "v1alpha1",
    kind = "Onboarding",
    status = "OnboardingStatus",
    shortname = "onboard",
    category = "lighthouse",
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.definition.registrationDefinitionName"}"#,
    printcolumn = r#"{"name":"Managed By","type":"string","jsonPath":".spec.definition.managedByTenantId"}"#,
    printcolumn = r#"{"name":"Onboarded","type":"integer","jsonPath":".status.onboarded"}"#,
    printcolumn = r#"{"name":"Skipped","type":"integer","jsonPath":".status.skipped"}"#,
    printcolumn = r#"{"name":"Opted Out","type":"integer","jsonPath":".status.optedOut"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OnboardingSpec {
    /// Which subscription namespaces (those labelled `kubelighthouse.io/tenant-id`) to onboard.
    /// Empty (`{}`) matches every subscription namespace. Resource-group namespaces are covered
    /// through their subscription's assignment, never selected themselves.
    pub namespace_selector: LabelSelector,

    /// The definition created in each onboarded namespace: authorizations, eligible
    /// authorizations, offer name and plan, exactly as a `RegistrationDefinition`'s spec.
    pub definition: RegistrationDefinitionSpec,
}

/// What the onboarding holds, counted over the subscription namespaces its selector matches.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnboardingStatus {
    /// The generation the counts were computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Namespaces where the onboarding's definition and assignment exist.
    #[serde(default)]
    pub onboarded: i32,
    /// Matching namespaces left alone: the customer's own definition of the same offer, a name
    /// taken by another object, or the managing tenant is the namespace's own.
    #[serde(default)]
    pub skipped: i32,
    /// Matching namespaces labelled `kubelighthouse.io/onboarding-opt-out: "true"`.
    #[serde(default)]
    pub opted_out: i32,
    /// The skipped namespaces and why, sorted by namespace; at most the first 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_namespaces: Vec<SkippedNamespace>,
    /// `Ready`: True once every matching namespace is onboarded, skipped or opted out; False
    /// with the reason when the selector or the template is invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One matching namespace the onboarding left alone.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedNamespace {
    /// The namespace.
    pub namespace: String,
    /// CamelCase: `CustomerDefinition`, `NameTaken` or `HomeTenant`.
    pub reason: String,
    /// What is there instead, for a person.
    pub message: String,
}
