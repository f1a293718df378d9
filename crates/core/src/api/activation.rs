//! `activation.kubelighthouse.io/v1alpha1` (SPEC §9): `RoleActivation`, a request to use an
//! eligible authorization for a bounded time, and `ActivationReview`, an approver's decision
//! on one. A separate API group, so that "a delegated identity never writes
//! `managedservices.kubelighthouse.io`" (SPEC §3) stays absolute.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// The API group of both activation kinds.
pub const ACTIVATION_GROUP: &str = "activation.kubelighthouse.io";

/// A request by a managing-tenant principal to activate one of its eligible authorizations
/// in this namespace. The spec is immutable once created; the requester is whoever created
/// it (stamped by the admission webhook, copied into status by the controller).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "activation.kubelighthouse.io",
    version = "v1alpha1",
    kind = "RoleActivation",
    namespaced,
    status = "RoleActivationStatus",
    shortname = "ract",
    category = "lighthouse",
    printcolumn = r#"{"name":"Requester","type":"string","jsonPath":".status.requester.username"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.roleDefinitionId"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    // A string, not a date: kubectl renders a date column as an age, which is `<invalid>`
    // for a time in the future, i.e. for every Active activation.
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RoleActivationSpec {
    /// The assignment holding the eligible authorization: by name, in this namespace or, for
    /// a resource-group namespace, in its subscription namespace.
    pub registration_assignment_ref: AssignmentRef,
    /// The eligible role: catalog GUID or ClusterRole name, as in the definition.
    #[schemars(length(min = 1, max = 253))]
    pub role_definition_id: String,
    /// How long the access lasts once active, ISO 8601 (e.g. `PT2H`); at most the policy's
    /// `maximumActivationDuration`.
    #[schemars(length(min = 1, max = 64))]
    pub duration: String,
    /// Why the access is needed; required.
    #[schemars(length(min = 1, max = 2048))]
    pub justification: String,
    /// The ticket the work belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,
}

/// Reference to a `RegistrationAssignment` by name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct AssignmentRef {
    /// Name of the assignment.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A ticket in the managing tenant's ticketing system.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Ticket {
    /// E.g. `ServiceNow`.
    #[schemars(length(max = 256))]
    pub system: String,
    /// E.g. `INC4711`.
    #[schemars(length(max = 256))]
    pub number: String,
}

/// Where an activation is in its life (docs/just-in-time.md, "The states").
#[derive(
    Deserialize,
    Serialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    JsonSchema,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
pub enum ActivationPhase {
    /// Waiting for an approver.
    Pending,
    /// The access is in force until `expiresAt`.
    Active,
    /// An approver denied it.
    Denied,
    /// It ran its course; the access is gone.
    Expired,
    /// Ended by someone other than the requester (a customer admin), or because the
    /// delegation it used is gone or no longer makes it eligible.
    Revoked,
    /// Ended early by the requester.
    Canceled,
    /// Pending for longer than the approval timeout (24 h by default).
    TimedOut,
}

impl ActivationPhase {
    /// The phase's name, as serialized.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the phase is final: nothing is or will be granted.
    pub fn is_final(self) -> bool {
        !matches!(self, ActivationPhase::Pending | ActivationPhase::Active)
    }
}

/// Who asked (or reviewed): the caller's `userInfo` as the API server authenticated it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Caller {
    /// Kubernetes user name, e.g. `<tenantId>:<objectId>`.
    pub username: String,
    /// Groups, e.g. `<tenantId>:<groupId>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Authentication methods (`extra["kubelighthouse.io/amr"]`); `mfa` is MFA evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// One review, as recorded in the activation's status.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRecord {
    /// User name of the approver.
    pub reviewer: String,
    /// Approve or Deny.
    pub decision: Decision,
    /// The approver's reason.
    pub reason: String,
    /// When the review was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Name of the ActivationReview.
    pub name: String,
}

/// Observed state of an activation.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleActivationStatus {
    /// Copied from the admission stamp `activation.kubelighthouse.io/requester`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Caller>,
    /// Pending | Active | Denied | Expired | Revoked | Canceled | TimedOut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ActivationPhase>,
    /// When the access came into force (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<Time>,
    /// When the access ends (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the access was removed, or the request ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    /// Who ended it by deleting it (Canceled or Revoked), as admission saw the delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    /// The reviews of listed approvers, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviews: Vec<ReviewRecord>,
    /// `Ready`: whether access is in force, and why (not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// An approver's decision on a Pending `RoleActivation` of the same namespace. Create-only:
/// the reviewer is stamped by the admission webhook.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "activation.kubelighthouse.io",
    version = "v1alpha1",
    kind = "ActivationReview",
    namespaced,
    shortname = "areview",
    category = "lighthouse",
    printcolumn = r#"{"name":"Activation","type":"string","jsonPath":".spec.roleActivationRef.name"}"#,
    printcolumn = r#"{"name":"Decision","type":"string","jsonPath":".spec.decision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ActivationReviewSpec {
    /// The activation reviewed, in this namespace.
    pub role_activation_ref: ActivationRef,
    /// Approve or Deny.
    pub decision: Decision,
    /// Why; required.
    #[schemars(length(min = 1, max = 2048))]
    pub reason: String,
}

/// Reference to a `RoleActivation` by name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ActivationRef {
    /// Name of the activation.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// An approver's decision.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Decision {
    /// The activation may start (the first approval makes it Active: docs/just-in-time.md).
    Approve,
    /// The activation is refused: its phase becomes Denied.
    Deny,
}
