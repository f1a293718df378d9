//! The views of SPEC §10, decided purely: which customers and delegations a caller sees, and
//! the `Table` that `kubectl get customers|delegations` prints.
//!
//! A delegation (one `RegistrationAssignment`) is visible to a caller exactly when the caller,
//! by its user name or one of its groups (or as a ServiceAccount), is an RBAC subject that a
//! principal of the assigned definition projects to (SPEC §2): a standing authorization, an
//! eligible one, or a listed approver of an eligible one. Subjects are compared exactly as
//! RBAC compares them ([`Caller::is_subject`]), so a view never shows what the caller's
//! RoleBindings would not name. Since the projection contains the managing tenant, a principal
//! of tenant A never matches a delegation to tenant B. A Failed assignment with nothing in
//! force (`status.namespaces` empty: rejected) grants nothing, so it shows to no one (SPEC
//! §10: a delegation is listed when it grants the caller something); one whose write failed
//! with access still in force shows, with its state and reason;
//! the customer sees it, with its reason, among their providers. A pending one (Accepted, or
//! not yet reconciled) shows with its state.
//!
//! Customers are the visible delegations grouped by customer tenant.
//!
//! The server's handlers only decode the request, call [`delegations`] / [`customers`] and
//! the table builders, and encode.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::Subject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use serde_json::{json, Value};

use super::catalog::{Catalog, Lookup};
use super::projection::IdentityTemplates;
use super::scope::{self, Namespaces};
use super::tenant::Guid;
use crate::api::view::{
    delegation_name, CallerRoles, Customer, Delegation, Offer, RoleHolding, RoleSummary, ScopeKind, Table,
    TableColumnDefinition, TableRow, VIEW_API_VERSION,
};
use crate::api::{PrincipalType, ProvisioningState, RegistrationAssignment, RegistrationDefinition};

/// The identity of a request, as the API server passes it through the front proxy
/// (`X-Remote-User`, `X-Remote-Group`, `X-Remote-Extra-*`) or as a `SelfSubjectReview` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The Kubernetes user name, e.g. `<tenantId>:<objectId>` for a managing-tenant user.
    pub username: String,
    /// The groups, e.g. `<tenantId>:<groupId>` and `system:authenticated`.
    pub groups: Vec<String>,
    /// Extra attributes (e.g. `kubelighthouse.io/amr`); not used for visibility.
    pub extra: BTreeMap<String, Vec<String>>,
}

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

impl Caller {
    /// Whether an RBAC binding naming `subject` applies to this caller: the rule of the
    /// Kubernetes RBAC authorizer (`appliesTo`): a User by exact name, a Group by exact
    /// membership, a ServiceAccount by its user name `system:serviceaccount:<ns>:<name>`.
    pub fn is_subject(&self, subject: &Subject) -> bool {
        match subject.kind.as_str() {
            "User" => self.username == subject.name,
            "Group" => self.groups.contains(&subject.name),
            "ServiceAccount" => match subject.namespace.as_deref() {
                Some(namespace) if !namespace.is_empty() => {
                    self.username == format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{}", subject.name)
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The managing tenant the caller's user name carries by the `<tenantId>:` prefix of the
    /// default projection (SPEC §2), when it starts with a GUID and a colon.
    pub fn managing_tenant(&self) -> Option<Guid> {
        tenant_prefix(&self.username)
    }
}

/// The tenant GUID a projected name starts with (`<tenantId>:<principalId>`), if any.
pub fn tenant_prefix(name: &str) -> Option<Guid> {
    name.split_once(':').and_then(|(tenant, _)| Guid::parse(tenant))
}

/// What the views read besides the delegations themselves: all from the controller's caches.
pub struct ViewContext<'a> {
    /// The namespaces (labels and terminating state).
    pub namespaces: &'a dyn Namespaces,
    /// The identity projection the controller materializes with (SPEC §2).
    pub templates: &'a IdentityTemplates,
    /// The role catalog, for role display names.
    pub catalog: &'a Catalog,
}

/// A subject as the views label it: `User:<name>`, `Group:<name>`, `ServiceAccount:<ns>/<name>`.
pub fn subject_label(subject: &Subject) -> String {
    match subject.namespace.as_deref() {
        Some(namespace) if subject.kind == "ServiceAccount" => {
            format!("ServiceAccount:{namespace}/{}", subject.name)
        }
        _ => format!("{}:{}", subject.kind, subject.name),
    }
}

/// The name a role is shown with: the catalog's display name, else the ClusterRole name, else
/// the `roleDefinitionId` as written (`Owner` for Owner's GUID).
pub fn role_name(catalog: &Catalog, role_definition_id: &str) -> String {
    match catalog.lookup(role_definition_id) {
        Lookup::Found(role) => role.display_name.clone().unwrap_or_else(|| role.name.clone()),
        Lookup::Owner => "Owner".to_string(),
        Lookup::NotInCatalog => role_definition_id.to_string(),
    }
}

/// The RBAC subjects this cluster projects `principal` of `tenant` to (SPEC §2): none when the
/// principal is not a GUID (nor, for a ServiceAccount, `namespace/name`).
pub fn project(
    templates: &IdentityTemplates,
    tenant: &Guid,
    principal: &str,
    kind: Option<PrincipalType>,
) -> Vec<Subject> {
    let principal = match kind {
        Some(PrincipalType::ServiceAccount) => principal.to_string(),
        _ => match Guid::parse(principal) {
            Some(g) => g.to_string(),
            None => return Vec::new(),
        },
    };
    templates.subjects(tenant.as_str(), &principal, kind)
}

/// The first of `subjects` that names `caller`, labelled as [`RoleHolding::subject`] shows it.
pub fn reaching(caller: &Caller, subjects: &[Subject]) -> Option<String> {
    subjects.iter().find(|s| caller.is_subject(s)).map(subject_label)
}

/// The subject through which the projection of `principal` reaches `caller`, if any.
fn reaches(
    caller: &Caller,
    templates: &IdentityTemplates,
    tenant: &Guid,
    principal: &str,
    kind: Option<PrincipalType>,
) -> Option<String> {
    reaching(caller, &project(templates, tenant, principal, kind))
}

/// The offer a definition presents.
pub fn offer_of(definition: &RegistrationDefinition) -> Offer {
    let spec = &definition.spec;
    Offer {
        display_name: spec.registration_definition_name.clone(),
        definition: definition.metadata.name.clone().unwrap_or_default(),
        plan: spec.plan.as_ref().map(|p| format!("{}/{}/{}@{}", p.publisher, p.product, p.name, p.version)),
        description: spec.description.clone(),
    }
}

/// What `definition` gives `caller`: every standing and eligible authorization, and every
/// approver entry, whose principal projects to a subject naming the caller.
pub fn caller_roles(caller: &Caller, definition: &RegistrationDefinition, ctx: &ViewContext<'_>) -> CallerRoles {
    let mut roles = CallerRoles::default();
    let Some(tenant) = Guid::parse(&definition.spec.managed_by_tenant_id) else {
        return roles;
    };
    let holding = |role_id: &str, principal: &str, display: &Option<String>, subject: String| RoleHolding {
        role: role_name(ctx.catalog, role_id),
        role_definition_id: role_id.to_string(),
        principal_id: principal.to_string(),
        principal_id_display_name: display.clone(),
        subject,
    };
    for auth in &definition.spec.authorizations {
        if let Some(subject) = reaches(caller, ctx.templates, &tenant, &auth.principal_id, auth.principal_type) {
            roles.standing.push(holding(
                &auth.role_definition_id,
                &auth.principal_id,
                &auth.principal_id_display_name,
                subject,
            ));
        }
    }
    for eligible in &definition.spec.eligible_authorizations {
        // Eligible principals carry no principalType in this API version: like an untyped
        // authorization, the principal is a user or a group (SPEC §2).
        if let Some(subject) = reaches(caller, ctx.templates, &tenant, &eligible.principal_id, eligible.principal_type)
        {
            roles.eligible.push(holding(
                &eligible.role_definition_id,
                &eligible.principal_id,
                &eligible.principal_id_display_name,
                subject,
            ));
        }
        let approvers = eligible.just_in_time_access_policy.iter().flat_map(|p| &p.managed_by_tenant_approvers);
        for approver in approvers {
            if let Some(subject) = reaches(caller, ctx.templates, &tenant, &approver.principal_id, None) {
                roles.approver.push(holding(
                    &eligible.role_definition_id,
                    &approver.principal_id,
                    &approver.principal_id_display_name,
                    subject,
                ));
            }
        }
    }
    for list in [&mut roles.standing, &mut roles.eligible, &mut roles.approver] {
        list.sort();
        list.dedup();
    }
    roles
}

impl CallerRoles {
    /// Nothing reaches the caller.
    pub fn is_empty(&self) -> bool {
        self.standing.is_empty() && self.eligible.is_empty() && self.approver.is_empty()
    }
}

fn live(namespaces: &dyn Namespaces, name: &str) -> bool {
    namespaces.get(name).is_some_and(|info| !info.terminating)
}

/// Whether `definition` complies with the guardrails governing it (docs/guardrails.md), from
/// its `Compliant` condition: `Compliant`, `NonCompliant` (with the first guardrail rule
/// broken, and every finding as the message), or `Unknown` before the controller judged it.
pub fn compliance(definition: &RegistrationDefinition) -> (String, Option<String>) {
    let condition =
        definition.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == super::status::COMPLIANT));
    match condition {
        Some(c) if c.status == crate::api::ConditionStatus::True => ("Compliant".into(), None),
        Some(c) if c.status == crate::api::ConditionStatus::False => {
            (format!("NonCompliant ({})", c.reason), Some(c.message.clone()))
        }
        _ => ("Unknown".into(), None),
    }
}

fn ready_condition(assignment: &RegistrationAssignment) -> Option<&crate::api::Condition> {
    assignment.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")
}

/// The delegations visible to `caller` (SPEC §10 `delegations`), sorted by name.
///
/// For each assignment: its scope (subscription, kind, customer tenant) from the namespaces,
/// falling back to the assignment's own namespace as subscription and to
/// `status.manageeTenantId` when the scope namespace is gone; its definition, resolved in the
/// subscription namespace (an assignment whose definition is not found shows to no one: there
/// is nobody it names); and the caller's roles in it. Assignments that give the caller nothing
/// are left out, and so are Failed ones with nothing in force: they grant nothing to anyone
/// (a Failed one whose write failed, with access still in force, is shown). Namespaces in force are
/// `status.namespaces` that still exist and are not terminating.
pub fn delegations<'a>(
    caller: &Caller,
    definitions: impl IntoIterator<Item = &'a RegistrationDefinition>,
    assignments: impl IntoIterator<Item = &'a RegistrationAssignment>,
    ctx: &ViewContext<'_>,
) -> Vec<Delegation> {
    let mut out: Vec<Delegation> = resolved(definitions, assignments, ctx)
        .into_iter()
        .filter_map(|(mut d, definition)| {
            d.my_roles = caller_roles(caller, definition, ctx);
            (!d.my_roles.is_empty()).then_some(d)
        })
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// Every assignment a view could show (its definition found, not Failed with nothing in
/// force), as a [`Delegation`] with no caller roles yet, and its definition: what
/// [`delegations`] filters per caller and the fleet's report ([`super::fleet::report`])
/// filters per managing tenant, so both decide from the same facts.
pub fn resolved<'a, 'd>(
    definitions: impl IntoIterator<Item = &'d RegistrationDefinition>,
    assignments: impl IntoIterator<Item = &'a RegistrationAssignment>,
    ctx: &ViewContext<'_>,
) -> Vec<(Delegation, &'d RegistrationDefinition)> {
    let by_key: BTreeMap<(&str, &str), &RegistrationDefinition> = definitions
        .into_iter()
        .filter_map(|d| Some(((d.metadata.namespace.as_deref()?, d.metadata.name.as_deref()?), d)))
        .collect();
    let mut out = Vec::new();
    for assignment in assignments {
        let (Some(namespace), Some(name)) =
            (assignment.metadata.namespace.as_deref(), assignment.metadata.name.as_deref())
        else {
            continue;
        };
        let status = assignment.status.clone().unwrap_or_default();
        if status.provisioning_state == Some(ProvisioningState::Failed) && status.namespaces.is_empty() {
            continue;
        }
        let resolved = scope::subscription_of(namespace, ctx.namespaces).ok();
        let (subscription, scope_kind) = match &resolved {
            Some((sub, _)) if sub == namespace => (sub.clone(), ScopeKind::Subscription),
            Some((sub, _)) => (sub.clone(), ScopeKind::ResourceGroup),
            None => (namespace.to_string(), ScopeKind::Unknown),
        };
        let definition_name = assignment.spec.registration_definition_ref.name.as_str();
        let Some(definition) = by_key.get(&(subscription.as_str(), definition_name)).copied() else {
            continue;
        };
        let customer_tenant_id = resolved
            .map(|(_, tenant)| tenant.to_string())
            .or_else(|| status.managee_tenant_id.clone())
            .or_else(|| definition.status.as_ref().and_then(|s| s.managee_tenant_id.clone()))
            .unwrap_or_default();
        let state = status.provisioning_state.map_or("Unknown", ProvisioningState::as_str).to_string();
        let namespaces: Vec<String> = status
            .namespaces
            .into_iter()
            .filter(|n| live(ctx.namespaces, n))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let ready = ready_condition(assignment);
        let (compliance, compliance_message) = compliance(definition);
        let d = Delegation {
            api_version: VIEW_API_VERSION.into(),
            kind: "Delegation".into(),
            metadata: ObjectMeta {
                name: Some(delegation_name(namespace, name)),
                creation_timestamp: assignment.metadata.creation_timestamp.clone(),
                ..Default::default()
            },
            customer_tenant_id,
            managed_by_tenant_id: Guid::parse(&definition.spec.managed_by_tenant_id)
                .map_or_else(|| definition.spec.managed_by_tenant_id.clone(), |g| g.to_string()),
            namespace: namespace.to_string(),
            subscription: subscription.clone(),
            scope_kind,
            offer: offer_of(definition),
            assignment: name.to_string(),
            my_roles: CallerRoles::default(),
            namespaces,
            state,
            reason: ready.map(|c| c.reason.clone()).filter(|r| !r.is_empty()),
            message: ready.map(|c| c.message.clone()).filter(|m| !m.is_empty()),
            activations: Vec::new(),
            compliance,
            compliance_message,
            cluster: None,
            observed_time: None,
        };
        out.push((d, definition));
    }
    out
}

fn sorted_unique(items: impl IntoIterator<Item = String>) -> Vec<String> {
    items.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

/// The customers of SPEC §10: the visible `delegations` grouped by customer tenant, sorted by
/// tenant. A delegation whose customer tenant is unknown (its scope gone and no status) is
/// counted under no customer.
pub fn customers(delegations: &[Delegation]) -> Vec<Customer> {
    let mut by_tenant: BTreeMap<&str, Vec<&Delegation>> = BTreeMap::new();
    for d in delegations.iter().filter(|d| !d.customer_tenant_id.is_empty()) {
        by_tenant.entry(d.customer_tenant_id.as_str()).or_default().push(d);
    }
    by_tenant
        .into_iter()
        .map(|(tenant, ds)| {
            let subscriptions = sorted_unique(ds.iter().map(|d| d.subscription.clone()));
            let resource_groups = sorted_unique(
                ds.iter()
                    .filter(|d| d.scope_kind == ScopeKind::ResourceGroup)
                    .map(|d| d.namespace.clone())
                    .chain(ds.iter().flat_map(|d| d.namespaces.iter().cloned()))
                    .filter(|n| !subscriptions.contains(n)),
            );
            let names = |pick: fn(&CallerRoles) -> &Vec<RoleHolding>| {
                sorted_unique(ds.iter().flat_map(|d| pick(&d.my_roles).iter().map(|r| r.role.clone())))
            };
            let mut offers: Vec<Offer> = ds.iter().map(|d| d.offer.clone()).collect();
            offers.sort();
            offers.dedup();
            Customer {
                api_version: VIEW_API_VERSION.into(),
                kind: "Customer".into(),
                metadata: ObjectMeta {
                    name: Some(tenant.to_string()),
                    creation_timestamp: ds.iter().filter_map(|d| d.metadata.creation_timestamp.clone()).min(),
                    ..Default::default()
                },
                customer_tenant_id: tenant.to_string(),
                managed_by_tenant_ids: sorted_unique(ds.iter().map(|d| d.managed_by_tenant_id.clone())),
                offers,
                subscriptions,
                resource_groups,
                my_roles: RoleSummary {
                    standing: names(|r| &r.standing),
                    eligible: names(|r| &r.eligible),
                    approver: names(|r| &r.approver),
                },
                delegations: sorted_unique(ds.iter().filter_map(|d| d.metadata.name.clone())),
                delegation_count: ds.len(),
                clusters: sorted_unique(ds.iter().filter_map(|d| d.cluster.clone())),
            }
        })
        .collect()
}

/// What a [`TableRow`]'s `object` holds: kubectl's `includeObject` parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (kubectl's default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// From the `includeObject` query parameter (`None`, `Metadata`, `Object`); anything else
    /// is the default, `Metadata`, as the API server does.
    pub fn from_query(value: Option<&str>) -> IncludeObject {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

fn row_object<T: serde::Serialize>(object: &T, metadata: &ObjectMeta, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
        })),
        IncludeObject::Object => serde_json::to_value(object).ok(),
    }
}

fn column(name: &str, format: &str, description: &str, priority: i32) -> TableColumnDefinition {
    let type_ = if format == "integer" { "integer" } else { "string" };
    TableColumnDefinition {
        name: name.into(),
        type_: type_.into(),
        format: if format == "integer" { String::new() } else { format.into() },
        description: description.into(),
        priority,
    }
}

/// `a,b,c`, or `<none>` for nothing (kubectl's empty cell).
pub fn join_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "<none>".to_string()
    } else {
        items.join(",")
    }
}

/// The roles of a summary in one cell: standing roles, then eligible ones marked
/// `(eligible)`, then approver entries marked `(approver)`.
pub fn roles_cell(summary: &RoleSummary) -> String {
    let mut parts: Vec<String> = summary.standing.clone();
    parts.extend(summary.eligible.iter().map(|r| format!("{r}(eligible)")));
    parts.extend(summary.approver.iter().map(|r| format!("{r}(approver)")));
    join_or_none(&parts)
}

/// The [`RoleSummary`] of one delegation's [`CallerRoles`].
pub fn summarize(roles: &CallerRoles) -> RoleSummary {
    let names = |list: &[RoleHolding]| sorted_unique(list.iter().map(|r| r.role.clone()));
    RoleSummary { standing: names(&roles.standing), eligible: names(&roles.eligible), approver: names(&roles.approver) }
}

fn table(columns: Vec<TableColumnDefinition>, rows: Vec<TableRow>) -> Table {
    Table {
        api_version: "meta.k8s.io/v1".into(),
        kind: "Table".into(),
        metadata: ListMeta::default(),
        column_definitions: columns,
        rows,
    }
}

/// The server-side `Table` of customers: Azure's "My customers" columns (customer tenant,
/// offers, delegations, my roles); `-o wide` adds subscriptions, resource groups and the
/// managing tenants.
pub fn customer_table(customers: &[Customer], include: IncludeObject) -> Table {
    let fleet = customers.iter().any(|c| !c.clusters.is_empty());
    let mut columns = vec![
        column("Customer Tenant", "name", "The customer tenant ID.", 0),
        column("Offers", "", "Display names of the offers (definitions) delegated to you.", 0),
        column("Delegations", "integer", "How many delegations of this customer reach you.", 0),
        column("My Roles", "", "Your roles: standing, eligible (just in time) and as approver.", 0),
        column("Subscriptions", "", "Subscription namespaces.", 1),
        column("Resource Groups", "", "Resource-group namespaces.", 1),
        column("Managed By", "", "Your managing tenant.", 1),
    ];
    if fleet {
        columns.insert(1, column("Clusters", "", "The customer clusters (at a hub).", 0));
    }
    let rows = customers
        .iter()
        .map(|c| {
            let offers: Vec<String> = sorted_unique(c.offers.iter().map(|o| o.display_name.clone()));
            let mut cells = vec![
                json!(c.customer_tenant_id),
                json!(join_or_none(&offers)),
                json!(c.delegation_count),
                json!(roles_cell(&c.my_roles)),
                json!(join_or_none(&c.subscriptions)),
                json!(join_or_none(&c.resource_groups)),
                json!(join_or_none(&c.managed_by_tenant_ids)),
            ];
            if fleet {
                cells.insert(1, json!(join_or_none(&c.clusters)));
            }
            TableRow { cells, object: row_object(c, &c.metadata, include) }
        })
        .collect();
    table(columns, rows)
}

/// The server-side `Table` of delegations: name, customer tenant, namespace, scope kind, offer,
/// my roles, state; `-o wide` adds the subscription, the assignment, the namespaces in force,
/// the managing tenant and the reason of the state.
pub fn delegation_table(delegations: &[Delegation], include: IncludeObject) -> Table {
    let fleet = delegations.iter().any(|d| d.cluster.is_some());
    let mut columns = vec![
        column("Name", "name", "<namespace>.<assignment>.", 0),
        column("Customer Tenant", "", "The customer tenant ID.", 0),
        column("Namespace", "", "Namespace of the assignment: the delegated scope.", 0),
        column("Scope", "", "Subscription or ResourceGroup.", 0),
        column("Offer", "", "Display name of the assigned definition.", 0),
        column("My Roles", "", "Your roles: standing, eligible (just in time) and as approver.", 0),
        column("State", "", "Provisioning state of the assignment.", 0),
        column("Compliance", "", "Whether the customer's guardrails allow the whole definition.", 0),
        column("Subscription", "", "The subscription namespace.", 1),
        column("Assignment", "", "Name of the RegistrationAssignment.", 1),
        column("Namespaces", "", "Namespaces where the access is in force.", 1),
        column("Managed By", "", "Your managing tenant.", 1),
        column("Reason", "", "Reason of the Ready condition.", 1),
    ];
    if fleet {
        columns.insert(1, column("Cluster", "", "The customer cluster (at a hub).", 0));
        columns.push(column("Observed", "", "When the hub last read the cluster's report.", 1));
    }
    let rows = delegations
        .iter()
        .map(|d| {
            let mut cells = vec![
                json!(d.metadata.name.clone().unwrap_or_default()),
                json!(d.customer_tenant_id),
                json!(d.namespace),
                json!(d.scope_kind.as_str()),
                json!(d.offer.display_name),
                json!(roles_cell(&summarize(&d.my_roles))),
                json!(d.state),
                json!(d.compliance),
                json!(d.subscription),
                json!(d.assignment),
                json!(join_or_none(&d.namespaces)),
                json!(d.managed_by_tenant_id),
                json!(d.reason.clone().unwrap_or_else(|| "<none>".into())),
            ];
            if fleet {
                cells.insert(1, json!(d.cluster.clone().unwrap_or_default()));
                cells.push(json!(d.observed_time.clone().unwrap_or_else(|| "<none>".into())));
            }
            TableRow { cells, object: row_object(d, &d.metadata, include) }
        })
        .collect();
    table(columns, rows)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{
        Authorization, Condition, ConditionStatus, DefinitionRef, EligibleApprover, EligibleAuthorization,
        JustInTimeAccessPolicy, MultiFactorAuthProvider, Plan, RegistrationAssignmentSpec,
        RegistrationAssignmentStatus, RegistrationDefinitionSpec,
    };
    use crate::model::catalog::tests::{catalog_cluster_role, READER};
    use crate::model::scope::tests::{rg, sub};
    use crate::model::scope::NamespaceInfo;

    const TENANT_A: &str = "aaaaaaaa-0000-0000-0000-00000000000a";
    const TENANT_B: &str = "bbbbbbbb-0000-0000-0000-00000000000b";
    const CUSTOMER_1: &str = "11111111-1111-1111-1111-111111111111";
    const CUSTOMER_2: &str = "22222222-2222-2222-2222-222222222222";
    const ALICE: &str = "00000000-0000-0000-0000-0000000000a1";
    const ENGINEERS: &str = "00000000-0000-0000-0000-0000000000e1";
    const LEADS: &str = "00000000-0000-0000-0000-0000000000d4";
    const ESCALATION: &str = "00000000-0000-0000-0000-0000000000c3";
    const BOB: &str = "00000000-0000-0000-0000-0000000000b0";
    const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

    fn user_of(tenant: &str, oid: &str, groups: &[&str]) -> Caller {
        let mut all: Vec<String> = groups.iter().map(|g| format!("{tenant}:{g}")).collect();
        all.push("system:authenticated".into());
        Caller { username: format!("{tenant}:{oid}"), groups: all, extra: BTreeMap::new() }
    }

    fn auth(principal: &str, kind: Option<PrincipalType>, role: &str) -> Authorization {
        Authorization {
            principal_id: principal.into(),
            principal_id_display_name: Some(format!("display {principal}")),
            principal_type: kind,
            role_definition_id: role.into(),
            delegated_role_definition_ids: vec![],
        }
    }

    fn eligible(principal: &str, role: &str, approvers: &[&str]) -> EligibleAuthorization {
        EligibleAuthorization {
            principal_id: principal.into(),
            principal_id_display_name: None,
            principal_type: None,
            role_definition_id: role.into(),
            just_in_time_access_policy: Some(JustInTimeAccessPolicy {
                multi_factor_auth_provider: MultiFactorAuthProvider::None,
                maximum_activation_duration: None,
                managed_by_tenant_approvers: approvers
                    .iter()
                    .map(|a| EligibleApprover { principal_id: a.to_string(), principal_id_display_name: None })
                    .collect(),
            }),
        }
    }

    fn definition(namespace: &str, name: &str, tenant: &str, auths: Vec<Authorization>) -> RegistrationDefinition {
        let mut d = RegistrationDefinition::new(
            name,
            RegistrationDefinitionSpec {
                registration_definition_name: format!("Offer {name}"),
                description: None,
                managed_by_tenant_id: tenant.into(),
                authorizations: auths,
                eligible_authorizations: vec![],
                plan: None,
            },
        );
        d.metadata.namespace = Some(namespace.into());
        d
    }

    fn assignment(
        namespace: &str,
        name: &str,
        definition: &str,
        state: ProvisioningState,
        in_force: &[&str],
    ) -> RegistrationAssignment {
        let mut a = RegistrationAssignment::new(
            name,
            RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: definition.into() } },
        );
        a.metadata.namespace = Some(namespace.into());
        a.status = Some(RegistrationAssignmentStatus {
            provisioning_state: Some(state),
            namespaces: in_force.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        a
    }

    fn cluster() -> BTreeMap<String, NamespaceInfo> {
        BTreeMap::from([
            ("cust1".to_string(), sub(CUSTOMER_1)),
            ("cust1-web".to_string(), rg("cust1")),
            ("cust1-db".to_string(), rg("cust1")),
            ("cust2".to_string(), sub(CUSTOMER_2)),
            ("cust2-app".to_string(), rg("cust2")),
        ])
    }

    fn catalog() -> Catalog {
        Catalog::from_cluster_roles(&[
            catalog_cluster_role("kubelighthouse:reader", Some(READER), Some("Reader"), vec![]),
            catalog_cluster_role("kubelighthouse:contributor", Some(CONTRIBUTOR), Some("Contributor"), vec![]),
        ])
    }

    struct World {
        definitions: Vec<RegistrationDefinition>,
        assignments: Vec<RegistrationAssignment>,
        namespaces: BTreeMap<String, NamespaceInfo>,
        catalog: Catalog,
        templates: IdentityTemplates,
    }

    impl World {
        fn new() -> World {
            World {
                definitions: vec![],
                assignments: vec![],
                namespaces: cluster(),
                catalog: catalog(),
                templates: IdentityTemplates::default(),
            }
        }

        /// Tenant A: customer 1 at subscription scope (Alice as a user, Reader) and at its
        /// web resource group (the engineers group, Contributor); customer 2 for the group.
        /// Tenant B: customer 2 (Bob, Reader).
        fn msp() -> World {
            let mut w = World::new();
            w.definitions = vec![
                definition("cust1", "a-ops", TENANT_A, vec![auth(ALICE, Some(PrincipalType::User), READER)]),
                definition("cust1", "a-web", TENANT_A, vec![auth(ENGINEERS, Some(PrincipalType::Group), CONTRIBUTOR)]),
                definition("cust2", "a-ops", TENANT_A, vec![auth(ENGINEERS, None, READER)]),
                definition("cust2", "b-ops", TENANT_B, vec![auth(BOB, None, READER)]),
            ];
            w.assignments = vec![
                assignment(
                    "cust1",
                    "a-ops",
                    "a-ops",
                    ProvisioningState::Succeeded,
                    &["cust1", "cust1-db", "cust1-web"],
                ),
                assignment("cust1-web", "a-web", "a-web", ProvisioningState::Succeeded, &["cust1-web"]),
                assignment("cust2", "a-ops", "a-ops", ProvisioningState::Succeeded, &["cust2", "cust2-app"]),
                assignment("cust2", "b-ops", "b-ops", ProvisioningState::Succeeded, &["cust2", "cust2-app"]),
            ];
            w
        }

        fn ctx(&self) -> ViewContext<'_> {
            ViewContext { namespaces: &self.namespaces, templates: &self.templates, catalog: &self.catalog }
        }

        fn delegations(&self, caller: &Caller) -> Vec<Delegation> {
            delegations(caller, &self.definitions, &self.assignments, &self.ctx())
        }

        fn names(&self, caller: &Caller) -> Vec<String> {
            self.delegations(caller).into_iter().filter_map(|d| d.metadata.name).collect()
        }
    }

    #[test]
    fn a_caller_sees_exactly_the_delegations_of_its_tenant_that_name_it() {
        let w = World::msp();
        let alice = user_of(TENANT_A, ALICE, &[ENGINEERS]);
        assert_eq!(w.names(&alice), ["cust1-web.a-web", "cust1.a-ops", "cust2.a-ops"]);
        let d = w.delegations(&alice);
        let ops = d.iter().find(|d| d.namespace == "cust1").expect("cust1");
        assert_eq!(ops.customer_tenant_id, CUSTOMER_1);
        assert_eq!(ops.managed_by_tenant_id, TENANT_A);
        assert_eq!(ops.scope_kind, ScopeKind::Subscription);
        assert_eq!(ops.subscription, "cust1");
        assert_eq!(ops.state, "Succeeded");
        assert_eq!(ops.namespaces, ["cust1", "cust1-db", "cust1-web"]);
        assert_eq!(ops.offer.display_name, "Offer a-ops");
        assert_eq!(ops.my_roles.standing.len(), 1);
        assert_eq!(ops.my_roles.standing[0].role, "Reader");
        assert_eq!(ops.my_roles.standing[0].subject, format!("User:{TENANT_A}:{ALICE}"));
        let web = d.iter().find(|d| d.namespace == "cust1-web").expect("web");
        assert_eq!(web.scope_kind, ScopeKind::ResourceGroup);
        assert_eq!(web.subscription, "cust1");
        assert_eq!(web.my_roles.standing[0].role, "Contributor");
        assert_eq!(web.my_roles.standing[0].subject, format!("Group:{TENANT_A}:{ENGINEERS}"));
    }

    #[test]
    fn group_membership_alone_makes_a_delegation_visible() {
        let w = World::msp();
        let member = user_of(TENANT_A, "00000000-0000-0000-0000-00000000ffff", &[ENGINEERS]);
        assert_eq!(w.names(&member), ["cust1-web.a-web", "cust2.a-ops"]);
        let other = user_of(TENANT_A, "00000000-0000-0000-0000-00000000ffff", &[]);
        assert!(w.names(&other).is_empty());
    }

    #[test]
    fn an_untyped_principal_matches_as_user_or_as_group() {
        let w = World::msp();
        // cust2/a-ops names ENGINEERS without principalType: a user with that object ID too.
        let as_user = user_of(TENANT_A, ENGINEERS, &[]);
        assert_eq!(w.names(&as_user), ["cust2.a-ops"]);
        let d = w.delegations(&as_user);
        assert_eq!(d[0].my_roles.standing[0].subject, format!("User:{TENANT_A}:{ENGINEERS}"));
    }

    #[test]
    fn a_typed_principal_matches_only_its_kind() {
        let w = World::msp();
        // cust1/a-ops names ALICE as a User: a group with that ID does not see it.
        let group_named_alice = user_of(TENANT_A, "00000000-0000-0000-0000-00000000ffff", &[ALICE]);
        assert!(w.names(&group_named_alice).is_empty());
        // cust1-web/a-web names ENGINEERS as a Group: a user with that ID does not see it.
        let user_named_engineers = user_of(TENANT_A, ENGINEERS, &[]);
        assert!(!w.names(&user_named_engineers).contains(&"cust1-web.a-web".to_string()));
    }

    #[test]
    fn a_principal_of_tenant_a_never_sees_tenant_b() {
        let w = World::msp();
        let bob = user_of(TENANT_B, BOB, &[]);
        assert_eq!(w.names(&bob), ["cust2.b-ops"]);
        // The same object IDs in the other tenant match nothing of tenant A, and vice versa.
        let alice_in_b = user_of(TENANT_B, ALICE, &[ENGINEERS]);
        assert!(w.names(&alice_in_b).is_empty());
        let bob_in_a = user_of(TENANT_A, BOB, &[]);
        assert!(w.names(&bob_in_a).is_empty());
        // Names without the tenant prefix, as a misconfigured authenticator would give.
        let bare = Caller { username: ALICE.into(), groups: vec![ENGINEERS.into()], extra: BTreeMap::new() };
        assert!(w.names(&bare).is_empty());
    }

    #[test]
    fn someone_with_nothing_sees_nothing() {
        let w = World::msp();
        let nobody = user_of(TENANT_A, "00000000-0000-0000-0000-00000000dead", &[]);
        assert!(w.delegations(&nobody).is_empty());
        assert!(customers(&w.delegations(&nobody)).is_empty());
        let anonymous = Caller {
            username: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        };
        assert!(w.delegations(&anonymous).is_empty());
        let admin = Caller {
            username: "kubernetes-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..Default::default()
        };
        assert!(w.delegations(&admin).is_empty(), "cluster-admin is no one's managing principal");
    }

    #[test]
    fn eligible_principals_and_approvers_see_the_delegation() {
        let mut w = World::new();
        let mut d = definition("cust1", "jit", TENANT_A, vec![auth(ALICE, Some(PrincipalType::User), READER)]);
        d.spec.eligible_authorizations = vec![eligible(ESCALATION, CONTRIBUTOR, &[LEADS])];
        w.definitions = vec![d];
        w.assignments = vec![assignment("cust1", "jit", "jit", ProvisioningState::Succeeded, &["cust1"])];

        let escalation = user_of(TENANT_A, "00000000-0000-0000-0000-00000000e5c1", &[ESCALATION]);
        let seen = w.delegations(&escalation);
        assert_eq!(seen.len(), 1);
        assert!(seen[0].my_roles.standing.is_empty());
        assert_eq!(seen[0].my_roles.eligible.len(), 1);
        assert_eq!(seen[0].my_roles.eligible[0].role, "Contributor");
        assert_eq!(seen[0].my_roles.eligible[0].subject, format!("Group:{TENANT_A}:{ESCALATION}"));

        let lead = user_of(TENANT_A, LEADS, &[]);
        let seen = w.delegations(&lead);
        assert_eq!(seen.len(), 1);
        assert!(seen[0].my_roles.standing.is_empty() && seen[0].my_roles.eligible.is_empty());
        assert_eq!(seen[0].my_roles.approver[0].role, "Contributor");
        assert_eq!(seen[0].my_roles.approver[0].principal_id, LEADS);

        let summary = summarize(&seen[0].my_roles);
        assert_eq!(roles_cell(&summary), "Contributor(approver)");
        let customer = customers(&w.delegations(&escalation));
        assert_eq!(roles_cell(&customer[0].my_roles), "Contributor(eligible)");

        // An approver of tenant B's namesake sees nothing.
        assert!(w.delegations(&user_of(TENANT_B, LEADS, &[])).is_empty());
    }

    #[test]
    fn failed_assignments_show_to_no_one_and_pending_ones_with_their_state() {
        let mut w = World::msp();
        let mut failed = assignment("cust1", "a-ops", "a-ops", ProvisioningState::Failed, &[]);
        failed.status.as_mut().expect("status").conditions = vec![Condition {
            type_: "Ready".into(),
            status: ConditionStatus::False,
            reason: "RoleNotDelegable".into(),
            message: "spec.authorizations[0].roleDefinitionId: not delegable".into(),
            observed_generation: Some(1),
            last_transition_time: None,
        }];
        w.assignments[0] = failed;
        let mut pending = assignment("cust1-web", "a-web", "a-web", ProvisioningState::Accepted, &[]);
        pending.status = None;
        w.assignments[1] = pending;
        let alice = user_of(TENANT_A, ALICE, &[ENGINEERS]);
        let d = w.delegations(&alice);
        // A Failed assignment grants nothing (SPEC §10: listed when it grants the caller something).
        assert!(d.iter().all(|d| d.namespace != "cust1"), "{d:?}");
        let web = d.iter().find(|d| d.namespace == "cust1-web").expect("pending one is shown");
        assert_eq!(web.state, "Unknown");
        assert_eq!(web.reason, None);
        assert_eq!(w.names(&alice), ["cust1-web.a-web", "cust2.a-ops"]);
        // Alice's customer 1 is still there through the pending one, without the failed one's roles.
        let c = customers(&d);
        let c1 = c.iter().find(|c| c.customer_tenant_id == CUSTOMER_1).expect("customer 1");
        assert_eq!(c1.delegation_count, 1);
    }

    #[test]
    fn a_failed_write_with_access_still_in_force_shows_with_its_reason() {
        let mut w = World::msp();
        let mut failed = assignment("cust1", "a-ops", "a-ops", ProvisioningState::Failed, &["cust1"]);
        failed.status.as_mut().expect("status").conditions = vec![Condition {
            type_: "Ready".into(),
            status: ConditionStatus::False,
            reason: "ApplyFailed".into(),
            message: "access delegated is not all in force: 1 write(s) failed".into(),
            observed_generation: Some(1),
            last_transition_time: None,
        }];
        w.assignments[0] = failed;
        let alice = user_of(TENANT_A, ALICE, &[ENGINEERS]);
        let d = w.delegations(&alice);
        let shown = d.iter().find(|d| d.namespace == "cust1").expect("its access is real: shown");
        assert_eq!(shown.state, "Failed");
        assert_eq!(shown.namespaces, ["cust1"]);
    }

    #[test]
    fn rejected_definitions_never_claim_a_role() {
        let mut w = World::new();
        // Owner is never delegable: the definition and its assignment are Failed. Alice is
        // named, but holds nothing: no delegation, no customer, and no "Owner" anywhere.
        w.definitions = vec![definition(
            "cust1",
            "owner",
            TENANT_A,
            vec![auth(ALICE, None, crate::model::catalog::OWNER), auth("not-a-guid", None, READER)],
        )];
        w.assignments = vec![assignment("cust1", "owner", "owner", ProvisioningState::Failed, &[])];
        let alice = user_of(TENANT_A, ALICE, &[]);
        assert!(w.delegations(&alice).is_empty());
        assert!(customers(&w.delegations(&alice)).is_empty());
        // A principal ID that is not a GUID projects to nothing, whatever the state.
        w.assignments = vec![assignment("cust1", "owner", "owner", ProvisioningState::Succeeded, &["cust1"])];
        assert!(w.delegations(&user_of(TENANT_A, "not-a-guid", &[])).is_empty());
    }

    #[test]
    fn upper_case_ids_match_their_canonical_projection() {
        let mut w = World::new();
        w.definitions = vec![definition(
            "cust1",
            "upper",
            &TENANT_A.to_uppercase(),
            vec![auth(&ALICE.to_uppercase(), Some(PrincipalType::User), READER)],
        )];
        w.assignments = vec![assignment("cust1", "upper", "upper", ProvisioningState::Succeeded, &["cust1"])];
        let d = w.delegations(&user_of(TENANT_A, ALICE, &[]));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].managed_by_tenant_id, TENANT_A);
    }

    #[test]
    fn service_account_principals_see_their_delegations() {
        let mut w = World::new();
        w.namespaces.insert("msp-automation".into(), sub(TENANT_A));
        w.definitions = vec![definition(
            "cust1",
            "automation",
            TENANT_A,
            vec![auth("msp-automation/deployer", Some(PrincipalType::ServiceAccount), READER)],
        )];
        w.assignments = vec![assignment("cust1", "automation", "automation", ProvisioningState::Succeeded, &["cust1"])];
        let sa = Caller {
            username: "system:serviceaccount:msp-automation:deployer".into(),
            groups: vec!["system:serviceaccounts".into(), "system:serviceaccounts:msp-automation".into()],
            ..Default::default()
        };
        let d = w.delegations(&sa);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].my_roles.standing[0].subject, "ServiceAccount:msp-automation/deployer");
        let other = Caller { username: "system:serviceaccount:msp-automation:other".into(), ..Default::default() };
        assert!(w.delegations(&other).is_empty());
    }

    #[test]
    fn custom_identity_templates_are_used_for_matching() {
        let mut w = World::msp();
        w.templates = IdentityTemplates {
            user: "oidc:{tenantId}:{principalId}".into(),
            group: "oidc:{tenantId}:groups:{principalId}".into(),
        };
        let default_names = user_of(TENANT_A, ALICE, &[ENGINEERS]);
        assert!(w.delegations(&default_names).is_empty());
        let custom = Caller {
            username: format!("oidc:{TENANT_A}:{ALICE}"),
            groups: vec![format!("oidc:{TENANT_A}:groups:{ENGINEERS}")],
            ..Default::default()
        };
        assert_eq!(w.names(&custom), ["cust1-web.a-web", "cust1.a-ops", "cust2.a-ops"]);
    }

    #[test]
    fn deleted_and_terminating_namespaces_leave_the_namespaces_in_force() {
        let mut w = World::msp();
        w.namespaces.remove("cust1-db");
        w.namespaces.get_mut("cust1-web").expect("web").terminating = true;
        let alice = user_of(TENANT_A, ALICE, &[]);
        let d = w.delegations(&alice);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].namespaces, ["cust1"], "stale status entries for gone namespaces are dropped");
        let c = customers(&d);
        assert_eq!(c[0].resource_groups, Vec::<String>::new());
    }

    #[test]
    fn an_assignment_whose_namespace_is_gone_keeps_its_tenant_from_status() {
        let mut w = World::msp();
        w.namespaces.remove("cust2");
        w.namespaces.remove("cust2-app");
        let mut going = assignment("cust2", "a-ops", "a-ops", ProvisioningState::Deleting, &["cust2", "cust2-app"]);
        going.status.as_mut().expect("status").managee_tenant_id = Some(CUSTOMER_2.into());
        w.assignments[2] = going;
        let member = user_of(TENANT_A, "00000000-0000-0000-0000-00000000ffff", &[ENGINEERS]);
        let d = w.delegations(&member);
        let gone = d.iter().find(|d| d.namespace == "cust2").expect("still shown while Deleting");
        assert_eq!(gone.scope_kind, ScopeKind::Unknown);
        assert_eq!(gone.customer_tenant_id, CUSTOMER_2);
        assert_eq!(gone.state, "Deleting");
        assert!(gone.namespaces.is_empty());
    }

    #[test]
    fn an_assignment_without_its_definition_shows_to_no_one() {
        let mut w = World::msp();
        w.definitions.retain(|d| d.metadata.name.as_deref() != Some("a-web"));
        let member = user_of(TENANT_A, "00000000-0000-0000-0000-00000000ffff", &[ENGINEERS]);
        assert_eq!(w.names(&member), ["cust2.a-ops"]);
    }

    #[test]
    fn definitions_resolve_in_the_subscription_of_the_scope() {
        let mut w = World::msp();
        // A definition of the same name in another subscription is not the one assigned.
        w.definitions.retain(|d| {
            d.metadata.namespace.as_deref() != Some("cust1") || d.metadata.name.as_deref() != Some("a-web")
        });
        w.definitions.push(definition("cust2", "a-web", TENANT_A, vec![auth(ENGINEERS, None, READER)]));
        let member = user_of(TENANT_A, "00000000-0000-0000-0000-00000000ffff", &[ENGINEERS]);
        assert_eq!(w.names(&member), ["cust2.a-ops"]);
    }

    #[test]
    fn customers_group_the_visible_delegations_by_tenant() {
        let mut w = World::msp();
        w.definitions[0].spec.plan = Some(Plan {
            name: "gold".into(),
            publisher: "contoso".into(),
            product: "managed-k8s".into(),
            version: "1.0".into(),
        });
        let alice = user_of(TENANT_A, ALICE, &[ENGINEERS]);
        let c = customers(&w.delegations(&alice));
        assert_eq!(c.len(), 2);
        let first = &c[0];
        assert_eq!(first.metadata.name.as_deref(), Some(CUSTOMER_1));
        assert_eq!(first.delegation_count, 2);
        assert_eq!(first.delegations, ["cust1-web.a-web", "cust1.a-ops"]);
        assert_eq!(first.subscriptions, ["cust1"]);
        assert_eq!(first.resource_groups, ["cust1-db", "cust1-web"]);
        assert_eq!(first.my_roles.standing, ["Contributor", "Reader"]);
        assert_eq!(first.managed_by_tenant_ids, [TENANT_A]);
        let offers: Vec<&str> = first.offers.iter().map(|o| o.display_name.as_str()).collect();
        assert_eq!(offers, ["Offer a-ops", "Offer a-web"]);
        assert_eq!(first.offers[0].plan.as_deref(), Some("contoso/managed-k8s/gold@1.0"));
        assert_eq!(c[1].customer_tenant_id, CUSTOMER_2);
        assert_eq!(c[1].my_roles.standing, ["Reader"]);
        // Tenant B sees only customer 2, and only its own delegation there.
        let b = customers(&w.delegations(&user_of(TENANT_B, BOB, &[])));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].customer_tenant_id, CUSTOMER_2);
        assert_eq!(b[0].delegations, ["cust2.b-ops"]);
    }

    #[test]
    fn customer_table_has_my_customers_columns_and_partial_metadata_objects() {
        let w = World::msp();
        let c = customers(&w.delegations(&user_of(TENANT_A, ALICE, &[ENGINEERS])));
        let t = customer_table(&c, IncludeObject::Metadata);
        assert_eq!(t.kind, "Table");
        assert_eq!(t.api_version, "meta.k8s.io/v1");
        let default: Vec<&str> =
            t.column_definitions.iter().filter(|c| c.priority == 0).map(|c| c.name.as_str()).collect();
        assert_eq!(default, ["Customer Tenant", "Offers", "Delegations", "My Roles"]);
        assert_eq!(t.column_definitions[0].format, "name");
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].cells.len(), t.column_definitions.len());
        assert_eq!(t.rows[0].cells[0], json!(CUSTOMER_1));
        assert_eq!(t.rows[0].cells[1], json!("Offer a-ops,Offer a-web"));
        assert_eq!(t.rows[0].cells[2], json!(2));
        assert_eq!(t.rows[0].cells[3], json!("Contributor,Reader"));
        let object = t.rows[0].object.as_ref().expect("object");
        assert_eq!(object["kind"], "PartialObjectMetadata");
        assert_eq!(object["metadata"]["name"], CUSTOMER_1);
        let full = customer_table(&c, IncludeObject::Object);
        assert_eq!(full.rows[0].object.as_ref().expect("object")["kind"], "Customer");
        assert!(customer_table(&c, IncludeObject::None).rows[0].object.is_none());
        // The JSON shape kubectl reads.
        let json = serde_json::to_value(&t).expect("json");
        assert!(json["columnDefinitions"][0]["type"].is_string());
        assert!(json["rows"][0]["cells"].is_array());
    }

    #[test]
    fn compliance_is_read_from_the_definitions_compliant_condition() {
        use crate::model::validate::{FieldError, Rejection, Rule};
        let mut d = definition("customer", "offer", TENANT_A, vec![]);
        assert_eq!(compliance(&d), ("Unknown".to_string(), None));
        let finding = FieldError {
            rule: Rule::GuardrailTenantNotAllowed,
            field: "spec.managedByTenantId".into(),
            message: "guardrail \"g\" (spec.allowedManagingTenantIds) does not allow it".into(),
        };
        let (status, _) = crate::model::status::definition_status(
            Some(1),
            &Default::default(),
            &Err(Rejection(vec![finding])),
            None,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        d.status = Some(status);
        let (state, message) = compliance(&d);
        assert_eq!(state, "NonCompliant (GuardrailTenantNotAllowed)");
        assert!(message.is_some_and(|m| m.contains("\"g\"") && m.contains("spec.managedByTenantId")));
    }

    #[test]
    fn delegation_table_cells_line_up_with_columns() {
        let w = World::msp();
        let d = w.delegations(&user_of(TENANT_A, ALICE, &[ENGINEERS]));
        let t = delegation_table(&d, IncludeObject::Metadata);
        let names: Vec<&str> = t.column_definitions.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Customer Tenant",
                "Namespace",
                "Scope",
                "Offer",
                "My Roles",
                "State",
                "Compliance",
                "Subscription",
                "Assignment",
                "Namespaces",
                "Managed By",
                "Reason"
            ]
        );
        for row in &t.rows {
            assert_eq!(row.cells.len(), names.len());
        }
        let row = &t.rows[1];
        assert_eq!(row.cells[0], json!("cust1.a-ops"));
        assert_eq!(row.cells[3], json!("Subscription"));
        assert_eq!(row.cells[5], json!("Reader"));
        assert_eq!(row.cells[7], json!("Unknown"), "no Compliant condition yet");
        assert_eq!(row.cells[10], json!("cust1,cust1-db,cust1-web"));
        assert_eq!(row.cells[12], json!("<none>"));
    }

    #[test]
    fn rbac_subject_matching_is_exact() {
        let caller = user_of(TENANT_A, ALICE, &[ENGINEERS]);
        let subject = |kind: &str, name: &str, ns: Option<&str>| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(Into::into),
            api_group: None,
        };
        assert!(caller.is_subject(&subject("User", &format!("{TENANT_A}:{ALICE}"), None)));
        assert!(!caller.is_subject(&subject("User", &format!("{TENANT_A}:{}", ALICE.to_uppercase()), None)));
        assert!(!caller.is_subject(&subject("User", &format!("{TENANT_A}:{ALICE} "), None)));
        assert!(caller.is_subject(&subject("Group", &format!("{TENANT_A}:{ENGINEERS}"), None)));
        assert!(!caller.is_subject(&subject("Group", &format!("{TENANT_A}:{ALICE}"), None)));
        assert!(caller.is_subject(&subject("Group", "system:authenticated", None)));
        assert!(!caller.is_subject(&subject("ServiceAccount", "default", None)));
        assert!(!caller.is_subject(&subject("Other", &format!("{TENANT_A}:{ALICE}"), None)));
    }

    #[test]
    fn the_managing_tenant_comes_from_the_user_name_prefix() {
        assert_eq!(user_of(TENANT_A, ALICE, &[]).managing_tenant().map(|g| g.to_string()).as_deref(), Some(TENANT_A));
        assert_eq!(Caller { username: "kubernetes-admin".into(), ..Default::default() }.managing_tenant(), None);
        assert_eq!(
            Caller { username: "system:serviceaccount:a:b".into(), ..Default::default() }.managing_tenant(),
            None
        );
    }

    #[test]
    fn include_object_follows_the_query_parameter() {
        assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
        assert_eq!(IncludeObject::from_query(Some("None")), IncludeObject::None);
        assert_eq!(IncludeObject::from_query(Some("Object")), IncludeObject::Object);
        assert_eq!(IncludeObject::from_query(Some("bogus")), IncludeObject::Metadata);
    }

    #[test]
    fn a_definition_with_an_invalid_tenant_names_no_one() {
        let mut w = World::msp();
        w.definitions[0].spec.managed_by_tenant_id = "contoso".into();
        let alice = user_of(TENANT_A, ALICE, &[]);
        assert!(w.delegations(&alice).is_empty());
    }
}
