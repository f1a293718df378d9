//! Labels, annotations and names that are part of the contract (SPEC §1, §4, §5).

/// Namespace label: the home tenant of a subscription namespace.
pub const TENANT_ID: &str = "kubelighthouse.io/tenant-id";
/// Namespace label: makes a namespace a resource group of the named subscription namespace.
pub const SUBSCRIPTION: &str = "kubelighthouse.io/subscription";
/// Namespace annotation the controller keeps: comma-separated managing tenants.
pub const MANAGED_BY_TENANTS: &str = "kubelighthouse.io/managed-by-tenants";
/// ClusterRole label: member of the role catalog.
pub const BUILT_IN: &str = "kubelighthouse.io/built-in";
/// ClusterRole annotation: the Azure-compatible role definition GUID.
pub const ROLE_DEFINITION_ID: &str = "kubelighthouse.io/role-definition-id";
/// ClusterRole annotation: the Azure display name of the role (e.g. `Reader`).
pub const ROLE_DISPLAY_NAME: &str = "kubelighthouse.io/role-display-name";
/// Annotation on objects made by `kubectl lighthouse import`: the deployment template they
/// came from, `<file name>@sha256:<hex of the file's bytes>` (docs/azure.md).
pub const IMPORTED_FROM: &str = "kubelighthouse.io/imported-from";
/// Annotation on imported objects: the parameters file, `<file name>@sha256:<hex>`, when one
/// was given.
pub const IMPORTED_PARAMETERS: &str = "kubelighthouse.io/imported-parameters";

/// Standard label on everything the controller materializes.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGER: &str = "kube-lighthouse";
/// Label on materialized objects: UID of the assignment that owns them (the prune selector).
pub const ASSIGNMENT_UID: &str = "kubelighthouse.io/assignment-uid";
/// Label on materialized objects: namespace of the owning assignment.
pub const ASSIGNMENT_NAMESPACE: &str = "kubelighthouse.io/assignment-namespace";
/// Label on materialized objects: name of the owning assignment (hashed if over 63 chars).
pub const ASSIGNMENT_NAME: &str = "kubelighthouse.io/assignment-name";
/// Label on materialized objects: the managing tenant they grant access to.
pub const MANAGED_BY_TENANT_ID: &str = "kubelighthouse.io/managed-by-tenant-id";
/// Annotation on materialized objects: `namespace/name` of the owning assignment.
pub const ASSIGNMENT: &str = "kubelighthouse.io/assignment";
/// Annotation on materialized objects: the catalog role they were built from.
pub const SOURCE_ROLE: &str = "kubelighthouse.io/source-cluster-role";

/// Label on a materialized Role a User Access Administrator may bind to managed identities.
pub const ASSIGNABLE: &str = "kubelighthouse.io/assignable";

/// Label on the Role and RoleBinding of an active activation (SPEC §9): its name (hashed if
/// over 63 characters).
pub const ACTIVATION: &str = "kubelighthouse.io/activation";
/// Label on the Role and RoleBinding of an active activation: its UID (the revoke selector).
pub const ACTIVATION_UID: &str = "kubelighthouse.io/activation-uid";
/// Annotation on the Role and RoleBinding of an active activation: when it expires (RFC 3339).
pub const ACTIVATION_EXPIRES_AT: &str = "activation.kubelighthouse.io/expires-at";

/// Every label the controller sets on what it materializes: drift detection compares these.
pub const MATERIALIZED_LABELS: [&str; 8] = [
    MANAGED_BY,
    ASSIGNMENT_UID,
    ASSIGNMENT_NAMESPACE,
    ASSIGNMENT_NAME,
    MANAGED_BY_TENANT_ID,
    ASSIGNABLE,
    ACTIVATION,
    ACTIVATION_UID,
];
/// Every annotation the controller sets on what it materializes.
pub const MATERIALIZED_ANNOTATIONS: [&str; 3] = [ASSIGNMENT, SOURCE_ROLE, ACTIVATION_EXPIRES_AT];

/// Annotation on a RoleActivation: who created it, stamped by the mutating webhook from the
/// caller's `userInfo` (JSON of [`crate::api::Caller`]); never set or changed by a client.
pub const REQUESTER: &str = "activation.kubelighthouse.io/requester";
/// Annotation on an ActivationReview: who created it, stamped like [`REQUESTER`].
pub const REVIEWER: &str = "activation.kubelighthouse.io/reviewer";
/// Annotation on an ActivationReview: the UID of the RoleActivation it was given to, stamped
/// at admission. A review names its activation by name only; the UID keeps a review from
/// deciding a later activation of the same name.
pub const REVIEWED_UID: &str = "activation.kubelighthouse.io/role-activation-uid";
/// The `userInfo.extra` key that carries the `amr` claim (SPEC §2).
pub const AMR_EXTRA: &str = "kubelighthouse.io/amr";
/// Finalizer on RoleActivations: their access is removed, and the end recorded, before they go.
pub const ACTIVATION_FINALIZER: &str = "activation.kubelighthouse.io/revoke-access";

/// Server-side apply field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "kube-lighthouse";
/// Finalizer on assignments: access is revoked in every namespace before they go.
pub const ASSIGNMENT_FINALIZER: &str = "kubelighthouse.io/revoke-access";
/// Finalizer on definitions: their assignments are deleted before they go.
pub const DEFINITION_FINALIZER: &str = "kubelighthouse.io/delete-assignments";
