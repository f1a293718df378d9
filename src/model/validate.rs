//! SPEC §3 over a whole delegation: what is rejected, naming the rule and the field.
//!
//! The output of a successful validation is a [`ValidDefinition`]: per catalog role, the
//! rules a namespaced Role may hold and the subjects that get them. That is all
//! [`super::desired`] needs, so nothing invalid can reach materialization.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};

use super::catalog::{Catalog, CatalogRole, Lookup};
use super::projection::IdentityTemplates;
use super::rules::Classification;
use super::scope::{self, Namespaces, ScopeError};
use super::tenant::Guid;
use crate::api::{Authorization, PrincipalType, RegistrationDefinitionSpec};

/// Configurable limits (seed 003).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_definitions_per_subscription: usize,
    pub max_authorizations_per_definition: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_definitions_per_subscription: 200, max_authorizations_per_definition: 400 }
    }
}

/// The rule a delegation broke. The names are condition reasons and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    InvalidTenantId,
    SameTenant,
    NotASubscription,
    InvalidScope,
    DefinitionNotFound,
    DefinitionInvalid,
    DuplicateAssignment,
    RoleNotInCatalog,
    RoleRemovedFromCatalog,
    OwnerRole,
    RoleNotDelegable,
    UserAccessAdministratorWithoutDelegatedRoles,
    DelegatedRoleNotAllowed,
    DelegatedRolesWithoutUserAccessAdministrator,
    TooManyDefinitions,
    TooManyAuthorizations,
    InvalidPrincipalId,
    ServiceAccountOutsideManagingTenant,
    DuplicateAuthorization,
    /// SPEC §9: a ServiceAccount eligible principal or approver, or an approver not a GUID.
    IneligiblePrincipal,
    /// SPEC §9: `maximumActivationDuration` outside PT30M..PT8H, or not ISO 8601.
    InvalidActivationDuration,
    /// SPEC §9: more than 10 approvers.
    TooManyApprovers,
    /// SPEC §9: the same role and principal eligible twice with different policies.
    ConflictingEligiblePolicies,
}

impl Rule {
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidTenantId => "InvalidTenantId",
            Self::SameTenant => "SameTenant",
            Self::NotASubscription => "NotASubscription",
            Self::InvalidScope => "InvalidScope",
            Self::DefinitionNotFound => "DefinitionNotFound",
            Self::DefinitionInvalid => "DefinitionInvalid",
            Self::DuplicateAssignment => "DuplicateAssignment",
            Self::RoleNotInCatalog => "RoleNotInCatalog",
            Self::RoleRemovedFromCatalog => "RoleRemovedFromCatalog",
            Self::OwnerRole => "OwnerRole",
            Self::RoleNotDelegable => "RoleNotDelegable",
            Self::UserAccessAdministratorWithoutDelegatedRoles => "UserAccessAdministratorWithoutDelegatedRoles",
            Self::DelegatedRoleNotAllowed => "DelegatedRoleNotAllowed",
            Self::DelegatedRolesWithoutUserAccessAdministrator => "DelegatedRolesWithoutUserAccessAdministrator",
            Self::TooManyDefinitions => "TooManyDefinitions",
            Self::TooManyAuthorizations => "TooManyAuthorizations",
            Self::InvalidPrincipalId => "InvalidPrincipalId",
            Self::ServiceAccountOutsideManagingTenant => "ServiceAccountOutsideManagingTenant",
            Self::DuplicateAuthorization => "DuplicateAuthorization",
            Self::IneligiblePrincipal => "IneligiblePrincipal",
            Self::InvalidActivationDuration => "InvalidActivationDuration",
            Self::TooManyApprovers => "TooManyApprovers",
            Self::ConflictingEligiblePolicies => "ConflictingEligiblePolicies",
        }
    }
}

/// One broken rule at one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub rule: Rule,
    /// JSON path of the offending field, e.g. `spec.authorizations[3].roleDefinitionId`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(rule: Rule, field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { rule, field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.message, self.rule.reason())
    }
}

/// Why a delegation grants nothing: every broken rule, in field order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection(pub Vec<FieldError>);

impl Rejection {
    fn single(rule: Rule, field: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection(vec![FieldError::new(rule, field, message)])
    }

    /// The condition reason: the first broken rule.
    pub fn reason(&self) -> &'static str {
        self.0.first().map_or("Invalid", |e| e.rule.reason())
    }

    pub fn rules(&self) -> impl Iterator<Item = Rule> + '_ {
        self.0.iter().map(|e| e.rule)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// What validation needs besides the delegation itself.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub namespaces: &'a (dyn Namespaces + Sync),
    pub limits: &'a Limits,
    pub templates: &'a IdentityTemplates,
}

/// A definition and the facts about it that come from outside its spec.
pub struct DefinitionFacts<'a> {
    pub namespace: &'a str,
    pub spec: &'a RegistrationDefinitionSpec,
    pub generation: Option<i64>,
    /// `status.acceptedGeneration`: catalog changes after it narrow instead of reject.
    pub accepted_generation: Option<i64>,
    /// How many definitions of the same namespace were created before this one.
    pub older_definitions: usize,
}

impl DefinitionFacts<'_> {
    fn previously_accepted(&self) -> bool {
        self.accepted_generation.is_some() && self.accepted_generation == self.generation
    }
}

/// One catalog role as delegated: the rules its Role holds and the subjects bound to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Grant {
    /// Name of the catalog ClusterRole.
    pub role: String,
    pub rules: Vec<PolicyRule>,
    /// Sorted and de-duplicated.
    pub subjects: Vec<Subject>,
}

/// A definition that passed every rule.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidDefinition {
    pub managing_tenant: Guid,
    pub home_tenant: Guid,
    pub subscription: String,
    /// One per distinct role, sorted by role name.
    pub grants: Vec<Grant>,
    /// Indirect data exposure of the granted roles.
    pub warnings: Vec<String>,
    /// Catalog changes since acceptance that withheld or revoked access: (rule, message).
    pub narrowed: Vec<FieldError>,
    /// User Access Administrators, grouped by the roles they may assign; sorted.
    pub user_access: Vec<UserAccess>,
    /// Eligible authorizations whose role is in the catalog (SPEC §9), in spec order.
    pub eligible: Vec<eligible::Eligible>,
}

/// User Access Administrator as Lighthouse limits it (seed 002): its subjects may bind the
/// `assignable` roles, and only those, to managed identities (ServiceAccounts of the
/// namespace; the admission webhook enforces the subjects).
#[derive(Clone, Debug, PartialEq)]
pub struct UserAccess {
    /// Sorted and de-duplicated.
    pub subjects: Vec<Subject>,
    /// The delegated roles with their filtered rules (no subjects: nobody is bound by us).
    pub assignable: Vec<Grant>,
}

/// The verdict on one role reference.
enum RoleVerdict<'a> {
    Delegable(&'a CatalogRole, Classification),
    Rejected(FieldError),
}

fn judge_role<'a>(catalog: &'a Catalog, id: &str, field: &str) -> RoleVerdict<'a> {
    match catalog.lookup(id) {
        Lookup::Owner => RoleVerdict::Rejected(FieldError::new(Rule::OwnerRole, field, "Owner can never be delegated")),
        Lookup::NotInCatalog => RoleVerdict::Rejected(FieldError::new(
            Rule::RoleNotInCatalog,
            field,
            format!("role {id:?} is not in the catalog (custom roles are not supported)"),
        )),
        // Its own rules (RBAC writes) are never materialized: it only assigns its
        // delegatedRoleDefinitionIds to managed identities (seed 002), checked by the caller.
        Lookup::Found(role) if role.is_user_access_administrator() => {
            RoleVerdict::Delegable(role, Classification::default())
        }
        Lookup::Found(role) => {
            let c = role.classification.clone();
            if c.is_delegable() {
                RoleVerdict::Delegable(role, c)
            } else {
                let why: Vec<String> = c.findings.iter().map(ToString::to_string).collect();
                RoleVerdict::Rejected(FieldError::new(
                    Rule::RoleNotDelegable,
                    field,
                    format!("role {} is not delegable: {}", role.label(), why.join(", ")),
                ))
            }
        }
    }
}

/// Validates a principal ID; returns the canonical form the subjects are built from.
fn check_principal(
    auth: &Authorization,
    field: &str,
    managing_tenant: Option<&Guid>,
    namespaces: &dyn Namespaces,
) -> Result<String, FieldError> {
    if auth.principal_type != Some(PrincipalType::ServiceAccount) {
        return Guid::parse(&auth.principal_id).map(|g| g.to_string()).ok_or_else(|| {
            FieldError::new(Rule::InvalidPrincipalId, field, format!("{:?} is not a GUID", auth.principal_id))
        });
    }
    let invalid = || {
        FieldError::new(
            Rule::InvalidPrincipalId,
            field,
            format!("{:?} is not namespace/name of a ServiceAccount", auth.principal_id),
        )
    };
    let (namespace, name) = auth.principal_id.split_once('/').ok_or_else(invalid)?;
    if !is_dns_label(namespace) || !is_dns_subdomain(name) {
        return Err(invalid());
    }
    // A ServiceAccount of a namespace being deleted still authenticates until the namespace
    // is gone, but no longer belongs to anyone: its namespace may be re-created for another
    // tenant.
    let terminating = namespaces.get(namespace).is_some_and(|info| info.terminating);
    let home = scope::subscription_of(namespace, namespaces).ok().map(|(_, tenant)| tenant).filter(|_| !terminating);
    match (home, managing_tenant) {
        (Some(home), Some(managing)) if &home == managing => Ok(auth.principal_id.clone()),
        (home, _) => Err(FieldError::new(
            Rule::ServiceAccountOutsideManagingTenant,
            field,
            format!(
                "ServiceAccount namespace {namespace} belongs to {}, not to the managing tenant",
                home.map_or("no tenant".to_string(), |h| format!("tenant {h}"))
            ),
        )),
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// SPEC §3 for a definition in `facts.namespace`.
pub fn validate_definition(facts: &DefinitionFacts<'_>, ctx: &Context<'_>) -> Result<ValidDefinition, Rejection> {
    let spec = facts.spec;
    let mut errors = Vec::new();

    // Rule 2: definitions live in subscription namespaces.
    let home_tenant = match scope::resolve(facts.namespace, ctx.namespaces) {
        Ok(s) if s.is_subscription() => Some(s.home_tenant),
        Ok(s) => {
            errors.push(FieldError::new(
                Rule::NotASubscription,
                "metadata.namespace",
                format!(
                    "{} is a resource group of {}; definitions live in the subscription namespace",
                    facts.namespace, s.subscription
                ),
            ));
            None
        }
        Err(e) => {
            errors.push(FieldError::new(Rule::NotASubscription, "metadata.namespace", e.to_string()));
            None
        }
    };

    // Rule 1: a GUID, and another tenant than the customer's.
    let managing_tenant = Guid::parse(&spec.managed_by_tenant_id);
    match (&managing_tenant, &home_tenant) {
        (None, _) => errors.push(FieldError::new(
            Rule::InvalidTenantId,
            "spec.managedByTenantId",
            format!("{:?} is not a GUID", spec.managed_by_tenant_id),
        )),
        (Some(m), Some(h)) if m == h => errors.push(FieldError::new(
            Rule::SameTenant,
            "spec.managedByTenantId",
            format!("{m} is the home tenant of {}: Lighthouse delegates across tenants only", facts.namespace),
        )),
        _ => {}
    }

    // Rule 4: limits.
    if facts.older_definitions >= ctx.limits.max_definitions_per_subscription {
        errors.push(FieldError::new(
            Rule::TooManyDefinitions,
            "metadata.namespace",
            format!(
                "{} already holds {} definitions; the limit is {}",
                facts.namespace, facts.older_definitions, ctx.limits.max_definitions_per_subscription
            ),
        ));
    }
    if spec.authorizations.len() > ctx.limits.max_authorizations_per_definition {
        errors.push(FieldError::new(
            Rule::TooManyAuthorizations,
            "spec.authorizations",
            format!(
                "{} authorizations; the limit is {}",
                spec.authorizations.len(),
                ctx.limits.max_authorizations_per_definition
            ),
        ));
    }
    if spec.authorizations.is_empty() {
        errors.push(FieldError::new(
            Rule::InvalidPrincipalId,
            "spec.authorizations",
            "at least one authorization is required",
        ));
    }

    let accepted = facts.previously_accepted();
    let mut narrowed = Vec::new();
    let mut warnings = std::collections::BTreeSet::new();
    let mut by_role: BTreeMap<String, Grant> = BTreeMap::new();
    let mut user_access: BTreeMap<Vec<String>, UserAccess> = BTreeMap::new();
    let mut seen: BTreeMap<(String, Option<PrincipalType>, String), usize> = BTreeMap::new();

    for (i, auth) in spec.authorizations.iter().enumerate() {
        let at = format!("spec.authorizations[{i}]");
        let principal =
            match check_principal(auth, &format!("{at}.principalId"), managing_tenant.as_ref(), ctx.namespaces) {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.push(e);
                    None
                }
            };
        let role_field = format!("{at}.roleDefinitionId");
        let (role, classification) = match judge_role(ctx.catalog, &auth.role_definition_id, &role_field) {
            RoleVerdict::Delegable(role, c) => (role, c),
            // Seed 002: a role that became unavailable keeps working for existing delegations
            // without its rejected permissions; one that left the catalog is revoked.
            RoleVerdict::Rejected(e) if accepted && e.rule == Rule::RoleNotDelegable => {
                let Lookup::Found(role) = ctx.catalog.lookup(&auth.role_definition_id) else {
                    continue;
                };
                narrowed.push(FieldError::new(
                    Rule::RoleNotDelegable,
                    role_field,
                    format!("{}; those permissions are withheld, the rest stays in force", e.message),
                ));
                (role, role.classification.clone())
            }
            RoleVerdict::Rejected(e) if accepted && e.rule == Rule::RoleNotInCatalog => {
                narrowed.push(FieldError::new(
                    Rule::RoleRemovedFromCatalog,
                    role_field,
                    format!("role {:?} left the catalog; its access is revoked", auth.role_definition_id),
                ));
                continue;
            }
            RoleVerdict::Rejected(e) => {
                errors.push(e);
                continue;
            }
        };

        // User Access Administrator only assigns its delegated roles to managed identities.
        let mut assignable: Vec<Grant> = Vec::new();
        if role.is_user_access_administrator() {
            if auth.delegated_role_definition_ids.is_empty() {
                errors.push(FieldError::new(
                    Rule::UserAccessAdministratorWithoutDelegatedRoles,
                    format!("{at}.delegatedRoleDefinitionIds"),
                    "User Access Administrator requires the roles it may assign to managed identities",
                ));
            }
            for (j, delegated) in auth.delegated_role_definition_ids.iter().enumerate() {
                let field = format!("{at}.delegatedRoleDefinitionIds[{j}]");
                match judge_role(ctx.catalog, delegated, &field) {
                    RoleVerdict::Delegable(d, _) if d.is_user_access_administrator() => errors.push(FieldError::new(
                        Rule::DelegatedRoleNotAllowed,
                        field,
                        "User Access Administrator cannot assign User Access Administrator",
                    )),
                    RoleVerdict::Delegable(d, c) => {
                        assignable.push(Grant { role: d.name.clone(), rules: c.delegable_rules, subjects: Vec::new() })
                    }
                    RoleVerdict::Rejected(e) => errors.push(FieldError { rule: Rule::DelegatedRoleNotAllowed, ..e }),
                }
            }
        } else if !auth.delegated_role_definition_ids.is_empty() {
            errors.push(FieldError::new(
                Rule::DelegatedRolesWithoutUserAccessAdministrator,
                format!("{at}.delegatedRoleDefinitionIds"),
                format!("only User Access Administrator takes delegated roles, not {}", role.label()),
            ));
        }

        let Some(principal) = principal else { continue };
        let key = (principal.clone(), auth.principal_type, role.name.clone());
        if let Some(first) = seen.insert(key, i) {
            errors.push(FieldError::new(
                Rule::DuplicateAuthorization,
                at.clone(),
                format!("principal {principal} already has role {} in spec.authorizations[{first}]", role.label()),
            ));
            continue;
        }
        warnings.extend(classification.warnings.iter().map(|w| format!("{}: {w}", role.label())));
        let tenant = managing_tenant.as_ref().map(Guid::as_str).unwrap_or_default();
        // User Access Administrator's own catalog rules are never copied: it gets exactly the
        // right to bind its delegated roles (see `desired`).
        if role.is_user_access_administrator() {
            assignable.sort_by(|a, b| a.role.cmp(&b.role));
            assignable.dedup_by(|a, b| a.role == b.role);
            let key: Vec<String> = assignable.iter().map(|g| g.role.clone()).collect();
            let entry = user_access.entry(key).or_insert_with(|| UserAccess { subjects: Vec::new(), assignable });
            entry.subjects.extend(ctx.templates.subjects(tenant, &principal, auth.principal_type));
            continue;
        }
        let grant = by_role.entry(role.name.clone()).or_insert_with(|| Grant {
            role: role.name.clone(),
            rules: classification.delegable_rules.clone(),
            subjects: Vec::new(),
        });
        grant.subjects.extend(ctx.templates.subjects(tenant, &principal, auth.principal_type));
    }

    for (i, eligible) in spec.eligible_authorizations.iter().enumerate() {
        let at = format!("spec.eligibleAuthorizations[{i}]");
        if Guid::parse(&eligible.principal_id).is_none() {
            errors.push(FieldError::new(
                Rule::InvalidPrincipalId,
                format!("{at}.principalId"),
                format!("{:?} is not a GUID", eligible.principal_id),
            ));
        }
        let role_field = format!("{at}.roleDefinitionId");
        match judge_role(ctx.catalog, &eligible.role_definition_id, &role_field) {
            RoleVerdict::Delegable(role, _) if role.is_user_access_administrator() => errors.push(FieldError::new(
                Rule::UserAccessAdministratorWithoutDelegatedRoles,
                role_field,
                "User Access Administrator cannot be an eligible authorization: it requires delegatedRoleDefinitionIds",
            )),
            RoleVerdict::Delegable(..) => {}
            // As for standing access: a catalog change after acceptance narrows, never rejects.
            RoleVerdict::Rejected(e) if accepted && e.rule == Rule::RoleNotDelegable => narrowed.push(e),
            RoleVerdict::Rejected(e) if accepted && e.rule == Rule::RoleNotInCatalog => narrowed.push(FieldError::new(
                Rule::RoleRemovedFromCatalog,
                role_field,
                format!("role {:?} left the catalog; it can no longer be activated", eligible.role_definition_id),
            )),
            RoleVerdict::Rejected(e) => errors.push(e),
        }
    }

    let eligible = eligible::validate(&spec.eligible_authorizations, ctx, managing_tenant.as_ref(), &mut errors);

    match (managing_tenant, home_tenant) {
        (Some(managing_tenant), Some(home_tenant)) if errors.is_empty() => {
            let mut grants: Vec<Grant> = by_role.into_values().collect();
            for g in &mut grants {
                sort_subjects(&mut g.subjects);
            }
            let mut user_access: Vec<UserAccess> = user_access.into_values().collect();
            for u in &mut user_access {
                sort_subjects(&mut u.subjects);
            }
            Ok(ValidDefinition {
                managing_tenant,
                home_tenant,
                subscription: facts.namespace.to_string(),
                grants,
                warnings: warnings.into_iter().collect(),
                narrowed,
                user_access,
                eligible,
            })
        }
        _ => Err(Rejection(errors)),
    }
}

fn sort_subjects(subjects: &mut Vec<Subject>) {
    subjects.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    subjects.dedup();
}

/// An assignment, and the other assignments of its namespace.
pub struct AssignmentFacts<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub definition_name: &'a str,
    /// Names of assignments in the same namespace, created before this one, that assign the
    /// same definition.
    pub older_duplicates: Vec<String>,
}

/// SPEC §3 rule 2 for an assignment: returns its scope. The definition is validated on its own.
pub fn validate_assignment(
    facts: &AssignmentFacts<'_>,
    namespaces: &dyn Namespaces,
) -> Result<scope::Scope, Rejection> {
    let scope = scope::resolve(facts.namespace, namespaces)
        .map_err(|e: ScopeError| Rejection::single(Rule::InvalidScope, "metadata.namespace", e.to_string()))?;
    if let Some(first) = facts.older_duplicates.first() {
        return Err(Rejection::single(
            Rule::DuplicateAssignment,
            "spec.registrationDefinitionRef.name",
            format!(
                "definition {} is already assigned to {} by assignment {first}",
                facts.definition_name, facts.namespace
            ),
        ));
    }
    Ok(scope)
}

/// The rejection of an assignment whose definition is missing or invalid.
pub fn definition_problem(definition: &str, subscription: &str, rejection: Option<&Rejection>) -> Rejection {
    match rejection {
        None => Rejection::single(
            Rule::DefinitionNotFound,
            "spec.registrationDefinitionRef.name",
            format!("no RegistrationDefinition {definition} in subscription namespace {subscription}"),
        ),
        Some(r) => Rejection::single(
            Rule::DefinitionInvalid,
            "spec.registrationDefinitionRef.name",
            format!("definition {subscription}/{definition} is rejected: {r}"),
        ),
    }
}

pub mod eligible;

#[cfg(test)]
mod tests;
