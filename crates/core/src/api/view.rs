//! The read-only views of SPEC §10: `view.kubelighthouse.io/v1alpha1`, kinds `Customer` and
//! `Delegation`, served by the controller through the aggregation layer and filtered to the
//! caller. Azure's "My customers" page, for a managing-tenant identity that holds only
//! namespaced Roles and so cannot list across namespaces itself.
//!
//! These are plain serde types, not CRDs: nothing stores them; the controller builds them per
//! request from its caches ([`crate::model::views`]). Both kinds are cluster-scoped. Their
//! object names are stable and DNS-safe: a customer is named by its tenant GUID, a delegation
//! `<namespace>.<assignment>` ([`delegation_name`]).
//!
//! The `meta.k8s.io/v1` `Table` the API server's clients ask for (`kubectl get`) is here too,
//! as a wire type: kube and k8s-openapi do not model it.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use kube::core::ClusterResourceScope;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// API group of the views.
pub const VIEW_GROUP: &str = "view.kubelighthouse.io";
/// Served version of the views.
pub const VIEW_VERSION: &str = "v1alpha1";
/// `apiVersion` of every view object: `view.kubelighthouse.io/v1alpha1`.
pub const VIEW_API_VERSION: &str = "view.kubelighthouse.io/v1alpha1";

/// Resource (plural) of [`Customer`].
pub const CUSTOMERS: &str = "customers";
/// Resource (plural) of [`Delegation`].
pub const DELEGATIONS: &str = "delegations";
/// Resource (plural) of [`Report`].
pub const REPORTS: &str = "reports";
/// Resource (plural) of [`FleetCluster`].
pub const CLUSTERS: &str = "clusters";

/// At a hub (docs/fleet.md): one customer cluster's report for one managing tenant, and
/// whether the hub can read it now. Named `<cluster>.<tenantId>`. A caller sees the clusters
/// of its own managing tenant; a single cluster lists none.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FleetCluster {
    /// Always [`VIEW_API_VERSION`].
    pub api_version: String,
    /// Always `FleetCluster`.
    pub kind: String,
    /// `name`: `<cluster>.<tenantId>`.
    pub metadata: ObjectMeta,
    /// The ClusterProfile's name.
    pub cluster: String,
    /// The managing tenant whose report it is.
    pub managed_by_tenant_id: String,
    /// `Current` (read at `observedTime`), `Unreadable` (nothing of it shown; last read at
    /// `observedTime`, if ever), or `Withdrawn` (the customer withdrew the grant).
    pub state: String,
    /// When the report was last read (RFC 3339), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_time: Option<String>,
    /// Why it cannot be read, or since when the grant is withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many delegations its last read report holds (Current only).
    pub delegation_count: usize,
    /// The cluster's API server URL, as the hub reaches it (its access provider's, or the
    /// hand-written profile's kubeconfig's `server`): where `kubectl lighthouse use` points an
    /// engineer. Never a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The CA bundle (base64 PEM, a kubeconfig's `certificate-authority-data`) that verifies
    /// `server`, when the hub's access names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    /// The issuer URL of the cluster's sign-in broker, when its report says it runs one
    /// (docs/install.md, "Sign-in through kube-lighthouse"): the engineers of this tenant sign
    /// in there through `kubectl lighthouse credential`. Absent: the cluster trusts the
    /// managing tenants' own issuers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
}

/// A list of [`FleetCluster`]s.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FleetClusterList {
    /// Always [`VIEW_API_VERSION`].
    pub api_version: String,
    /// Always `FleetClusterList`.
    pub kind: String,
    /// List metadata.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The clusters, sorted by name.
    pub items: Vec<FleetCluster>,
}

impl FleetClusterList {
    /// A `FleetClusterList` of `items`.
    pub fn new(items: Vec<FleetCluster>) -> Self {
        FleetClusterList {
            api_version: VIEW_API_VERSION.into(),
            kind: "FleetClusterList".into(),
            metadata: ListMeta::default(),
            items,
        }
    }
}

/// A customer tenant that delegated something to the caller (SPEC §10 `customers`): Azure's
/// "My customers" row. Named by the customer tenant GUID.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Always [`VIEW_API_VERSION`].
    pub api_version: String,
    /// Always `Customer`.
    pub kind: String,
    /// `name`: the customer tenant ID (a lower-case GUID).
    pub metadata: ObjectMeta,
    /// Home tenant of the delegated subscriptions: the customer.
    pub customer_tenant_id: String,
    /// Managing tenants of the caller's delegations of this customer (usually one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_by_tenant_ids: Vec<String>,
    /// The offers (definitions) of the visible delegations, each once.
    #[serde(default)]
    pub offers: Vec<Offer>,
    /// Subscription namespaces of the visible delegations, sorted.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Resource-group namespaces of the visible delegations (scopes, and resource groups a
    /// subscription delegation is in force in), sorted.
    #[serde(default)]
    pub resource_groups: Vec<String>,
    /// What the caller holds across those delegations.
    pub my_roles: RoleSummary,
    /// Names of the visible [`Delegation`]s of this customer, sorted.
    #[serde(default)]
    pub delegations: Vec<String>,
    /// How many delegations of this customer the caller sees.
    pub delegation_count: usize,
    /// At a hub (docs/fleet.md): the customer clusters these delegations live in, sorted;
    /// empty in a single cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
}

/// The role names a caller holds at one customer, each once, sorted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleSummary {
    /// Roles in force (or that would be, for a delegation not Succeeded).
    #[serde(default)]
    pub standing: Vec<String>,
    /// Roles the caller may activate just in time (SPEC §9).
    #[serde(default)]
    pub eligible: Vec<String>,
    /// Roles whose activations the caller may approve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approver: Vec<String>,
}

/// An offer: a `RegistrationDefinition` as a managing tenant shows it to a customer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// `spec.registrationDefinitionName`.
    pub display_name: String,
    /// Object name of the definition (in the subscription namespace).
    pub definition: String,
    /// `spec.plan`, rendered `publisher/product/name@version`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// `spec.description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One assignment that grants the caller something, standing or eligible, or names the caller
/// as an approver (SPEC §10 `delegations`). Named `<namespace>.<assignment>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delegation {
    /// Always [`VIEW_API_VERSION`].
    pub api_version: String,
    /// Always `Delegation`.
    pub kind: String,
    /// `name`: [`delegation_name`] of the assignment.
    pub metadata: ObjectMeta,
    /// Home tenant of the scope (the customer).
    pub customer_tenant_id: String,
    /// The managing tenant of the definition.
    pub managed_by_tenant_id: String,
    /// Namespace of the assignment (the scope namespace).
    pub namespace: String,
    /// The subscription namespace of the scope.
    pub subscription: String,
    /// Whether the scope is a subscription or one resource group.
    pub scope_kind: ScopeKind,
    /// The assigned definition.
    pub offer: Offer,
    /// Name of the `RegistrationAssignment`.
    pub assignment: String,
    /// What the caller holds through this delegation.
    pub my_roles: CallerRoles,
    /// Namespaces where the delegation's RBAC is in force now (empty unless Succeeded).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The assignment's `provisioningState`: Accepted, Succeeded, Failed, Deleting, or
    /// Unknown before the controller wrote one.
    pub state: String,
    /// Reason of the assignment's Ready condition (for Failed: the rule that rejected it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message of the assignment's Ready condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The RoleActivations under this delegation that the caller may read, as
    /// `<namespace>/<name>`: its own, and those it may review as a listed approver.
    /// RBAC lets it get exactly those (docs/just-in-time.md); nobody else's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activations: Vec<String>,
    /// Whether the customer's guardrails allow the whole definition (docs/guardrails.md):
    /// `Compliant`, `NonCompliant (<rule>)` (what they forbid is withheld or refused), or
    /// `Unknown` before the controller judged it.
    #[serde(default)]
    pub compliance: String,
    /// What the guardrails forbid, naming each guardrail and field, when NonCompliant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_message: Option<String>,
    /// At a hub (docs/fleet.md): the customer cluster (its `ClusterProfile`'s name) this
    /// delegation lives in; absent in a single cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// At a hub: when the hub last read this cluster's report (RFC 3339); absent in a single
    /// cluster, where the view is computed at each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_time: Option<String>,
}

/// Scope of an assignment (SPEC §1).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    /// The subscription namespace itself, covering its resource groups.
    Subscription,
    /// One resource-group namespace.
    ResourceGroup,
    /// The scope namespace is gone or no longer delegable.
    Unknown,
}

impl ScopeKind {
    /// The name as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscription => "Subscription",
            Self::ResourceGroup => "ResourceGroup",
            Self::Unknown => "Unknown",
        }
    }
}

/// What one caller holds through one delegation, each list sorted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CallerRoles {
    /// Standing authorizations that name the caller (by user, group or ServiceAccount).
    #[serde(default)]
    pub standing: Vec<RoleHolding>,
    /// Eligible authorizations that name the caller.
    #[serde(default)]
    pub eligible: Vec<RoleHolding>,
    /// Eligible authorizations whose `managedByTenantApprovers` name the caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approver: Vec<RoleHolding>,
}

/// One authorization (standing or eligible, or an approver entry) that reaches the caller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct RoleHolding {
    /// The role's display name from the catalog (e.g. `Reader`), its ClusterRole name, or
    /// the `roleDefinitionId` as written when the catalog does not hold it.
    pub role: String,
    /// `roleDefinitionId` as written in the definition.
    pub role_definition_id: String,
    /// The principal of the managing tenant the authorization names.
    pub principal_id: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id_display_name: Option<String>,
    /// How the caller matched: the RBAC subject (`User`, `Group` or `ServiceAccount`
    /// `kind:name`) the principal projects to (SPEC §2).
    pub subject: String,
}

/// A list of [`Customer`]s (`CustomerList`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CustomerList {
    /// Always [`VIEW_API_VERSION`].
    pub api_version: String,
    /// Always `CustomerList`.
    pub kind: String,
    /// List metadata (no resourceVersion: a view is computed, not stored).
    #[serde(default)]
    pub metadata: ListMeta,
    /// The customers, sorted by name.
    pub items: Vec<Customer>,
}

/// A list of [`Delegation`]s (`DelegationList`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DelegationList {
    /// Always [`VIEW_API_VERSION`].
    pub api_version: String,
    /// Always `DelegationList`.
    pub kind: String,
    /// List metadata.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The delegations, sorted by name.
    pub items: Vec<Delegation>,
}

/// What a customer cluster tells one managing tenant's hub (docs/fleet.md): the delegations to
/// that tenant, and nothing else. Named by the managing tenant ID; read with `get` only,
/// authorized by the API server's RBAC for that one name, so the customer grants a hub exactly
/// one tenant's report and withdraws it by deleting the binding.
///
/// It holds, per delegation, what Azure's "My customers" shows a managing tenant: customer
/// tenant, scope, offer, the authorizations and eligible authorizations (principals, their
/// types, roles, approvers, and the RBAC subjects each principal is projected to in this
/// cluster, which is how the hub filters per caller exactly as this cluster does), state and
/// reason. No other tenant's delegation, no Secret, no object it does not name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Always [`VIEW_API_VERSION`].
    pub api_version: String,
    /// Always `Report`.
    pub kind: String,
    /// `name`: the managing tenant ID (a lower-case GUID).
    pub metadata: ObjectMeta,
    /// The managing tenant the report is for.
    pub managed_by_tenant_id: String,
    /// When the cluster computed the report (RFC 3339, UTC), from its watch caches.
    pub observed_time: String,
    /// The delegations to that tenant, sorted by name.
    #[serde(default)]
    pub delegations: Vec<ReportedDelegation>,
    /// The issuer URL of this cluster's sign-in broker (`--federation-issuer`), when it runs
    /// one: how the tenant's engineers sign in here (public, as its discovery document is).
    /// Absent when the API server trusts the managing tenants' own issuers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
}

/// One assignment to the report's managing tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReportedDelegation {
    /// `<namespace>.<assignment>` ([`delegation_name`]).
    pub name: String,
    /// When the assignment was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Home tenant of the scope (the customer).
    pub customer_tenant_id: String,
    /// Namespace of the assignment (the scope namespace).
    pub namespace: String,
    /// The subscription namespace of the scope.
    pub subscription: String,
    /// Subscription or one resource group.
    pub scope_kind: ScopeKind,
    /// Name of the `RegistrationAssignment`.
    pub assignment: String,
    /// The assigned definition: display name, name, plan, description.
    pub offer: Offer,
    /// The standing authorizations.
    #[serde(default)]
    pub authorizations: Vec<ReportedAuthorization>,
    /// The eligible (just-in-time) authorizations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligible_authorizations: Vec<ReportedEligible>,
    /// Namespaces where the delegation's RBAC is in force now.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The assignment's `provisioningState` (or `Unknown`).
    pub state: String,
    /// Reason of the assignment's Ready condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message of the assignment's Ready condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Compliance with the customer's guardrails (as [`Delegation::compliance`]).
    #[serde(default)]
    pub compliance: String,
    /// What the guardrails forbid, when NonCompliant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_message: Option<String>,
}

/// A principal of the managing tenant, and the RBAC subjects this cluster projects it to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReportedPrincipal {
    /// `principalId` as written.
    pub principal_id: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id_display_name: Option<String>,
    /// `principalType`, when written: User, Group, ServicePrincipal or ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_type: Option<String>,
    /// The RBAC subjects it is projected to here (docs/identity.md): who it reaches.
    #[serde(default)]
    pub subjects: Vec<k8s_openapi::api::rbac::v1::Subject>,
}

/// A standing authorization of a [`ReportedDelegation`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReportedAuthorization {
    /// Who.
    #[serde(flatten)]
    pub principal: ReportedPrincipal,
    /// `roleDefinitionId` as written.
    pub role_definition_id: String,
    /// The role's display name from this cluster's catalog.
    pub role: String,
}

/// An eligible authorization of a [`ReportedDelegation`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReportedEligible {
    /// Who may activate it.
    #[serde(flatten)]
    pub principal: ReportedPrincipal,
    /// `roleDefinitionId` as written.
    pub role_definition_id: String,
    /// The role's display name from this cluster's catalog.
    pub role: String,
    /// `managedByTenantApprovers`: who may approve an activation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<ReportedPrincipal>,
}

impl CustomerList {
    /// A `CustomerList` of `items`.
    pub fn new(items: Vec<Customer>) -> Self {
        CustomerList {
            api_version: VIEW_API_VERSION.into(),
            kind: "CustomerList".into(),
            metadata: ListMeta::default(),
            items,
        }
    }
}

impl DelegationList {
    /// A `DelegationList` of `items`.
    pub fn new(items: Vec<Delegation>) -> Self {
        DelegationList {
            api_version: VIEW_API_VERSION.into(),
            kind: "DelegationList".into(),
            metadata: ListMeta::default(),
            items,
        }
    }
}

macro_rules! view_resource {
    ($ty:ty, $kind:literal, $plural:expr) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = ClusterResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(VIEW_GROUP)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(VIEW_VERSION)
            }
            fn api_version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(VIEW_API_VERSION)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

view_resource!(Customer, "Customer", CUSTOMERS);
view_resource!(Delegation, "Delegation", DELEGATIONS);
view_resource!(Report, "Report", REPORTS);
view_resource!(FleetCluster, "FleetCluster", CLUSTERS);

/// The longest object name Kubernetes accepts (a DNS subdomain).
const MAX_NAME: usize = 253;

/// Name of the [`Delegation`] of the assignment `namespace/name`: `<namespace>.<name>`.
///
/// A namespace is a DNS label (no dots), so the name is unique per assignment and, both
/// parts being DNS names, itself a DNS subdomain. Past 253 characters the assignment part is
/// cut and followed by a hash of the whole, so it stays unique and valid (SPEC §10: stable,
/// DNS-safe names).
pub fn delegation_name(namespace: &str, name: &str) -> String {
    let full = format!("{namespace}.{name}");
    if full.len() <= MAX_NAME {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    // Cut at a byte boundary that leaves room for "-<hash>"; DNS names are ASCII.
    let keep = MAX_NAME - hash.len() - 1;
    let mut cut = full[..keep].trim_end_matches(['-', '.']);
    // The hash joins the last label, which must stay within 63 characters.
    let last = cut.rsplit('.').next().map_or(0, str::len);
    if last + hash.len() + 1 > 63 {
        cut = cut[..cut.len() - (last + hash.len() + 1 - 63)].trim_end_matches(['-', '.']);
    }
    format!("{cut}-{hash}")
}

/// `meta.k8s.io/v1` `Table`: what `kubectl get` asks for with
/// `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// Always `meta.k8s.io/v1`.
    pub api_version: String,
    /// Always `Table`.
    pub kind: String,
    /// List metadata of the listed objects.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The columns, in order; priority 0 is shown by default, higher only with `-o wide`.
    pub column_definitions: Vec<TableColumnDefinition>,
    /// One row per object.
    pub rows: Vec<TableRow>,
}

/// A column of a [`Table`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TableColumnDefinition {
    /// Header, e.g. `Customer Tenant`.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    #[serde(rename = "type")]
    pub type_: String,
    /// OpenAPI format: `name` marks the object-name column.
    #[serde(default)]
    pub format: String,
    /// What the column shows.
    #[serde(default)]
    pub description: String,
    /// 0: always shown; 1 and more: `-o wide` only.
    #[serde(default)]
    pub priority: i32,
}

/// A row of a [`Table`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TableRow {
    /// One cell per column definition.
    pub cells: Vec<serde_json::Value>,
    /// The object (full, or `PartialObjectMetadata`), or absent when not asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_subdomain(s: &str) -> bool {
        let label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        s.len() <= MAX_NAME && s.split('.').all(label)
    }

    #[test]
    fn delegation_names_join_namespace_and_assignment() {
        assert_eq!(delegation_name("customer-a-web", "contoso-msp"), "customer-a-web.contoso-msp");
        assert!(is_dns_subdomain(&delegation_name("customer-a-web", "contoso.msp")));
    }

    #[test]
    fn long_delegation_names_stay_valid_and_distinct() {
        let ns = "n".repeat(63);
        let a = delegation_name(&ns, &format!("{}a", "x.".repeat(120)));
        let b = delegation_name(&ns, &format!("{}b", "x.".repeat(120)));
        assert_ne!(a, b);
        assert!(is_dns_subdomain(&a), "{a}");
        assert!(is_dns_subdomain(&b), "{b}");
        assert_eq!(a, delegation_name(&ns, &format!("{}a", "x.".repeat(120))), "stable");
        let c = delegation_name(&ns, &"y".repeat(253));
        assert!(is_dns_subdomain(&c), "{c}");
    }

    #[test]
    fn view_types_are_resources_of_the_view_group() {
        use kube::Resource;
        assert_eq!(Customer::url_path(&(), None), "/apis/view.kubelighthouse.io/v1alpha1/customers");
        assert_eq!(Delegation::url_path(&(), None), "/apis/view.kubelighthouse.io/v1alpha1/delegations");
        assert_eq!(Customer::api_version(&()), VIEW_API_VERSION);
    }

    #[test]
    fn a_list_round_trips_through_json() {
        let list = CustomerList::new(vec![]);
        let json = serde_json::to_value(&list).expect("serializes");
        assert_eq!(json["kind"], "CustomerList");
        assert_eq!(json["apiVersion"], VIEW_API_VERSION);
        let back: CustomerList = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, list);
    }
}
