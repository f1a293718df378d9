//! SPEC §3 over a whole delegation: what is rejected, naming the rule and the field.
//!
//! This module owns the verdict ([`Rule`], [`FieldError`], [`Rejection`], [`ValidDefinition`])
//! and the order in which the rule families run. Each family is a submodule with its tests:
//!
//! | family | SPEC | submodule |
//! |---|---|---|
//! | where a definition lives, whose tenant manages it | §3 rules 1–2 | [`tenants`] |
//! | how many definitions and authorizations | §3 rule 4 | [`limits`] |
//! | principal IDs, ServiceAccounts of the managing tenant | §2, §3 rule 5 | [`principals`] |
//! | catalog roles: not in the catalog, Owner, undelegable | §3 rule 3, §4 | [`roles`] |
//! | catalog changes after acceptance narrow, not reject | §4, seed 002 | [`narrowing`] |
//! | User Access Administrator's delegated roles | §3 rule 3 | [`delegated_roles`] |
//! | the same principal and role twice | §3 | [`duplicates`] |
//! | eligible authorizations | §9 | [`eligible`] |
//! | grants, subjects and warnings of a valid definition | §2, §4, §5 | [`grants`] |
//! | assignments and their definitions | §3 rule 2 | [`assignment`] |
//! | free text: display names, description, plan; quoting values back | issue 19 | [`text`] |
//!
//! The output of a successful validation is a [`ValidDefinition`]: per catalog role, the
//! rules a namespaced Role may hold and the subjects that get them. That is all
//! [`super::desired`] needs, so nothing invalid can reach materialization.

use std::fmt;

use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};

use super::catalog::Catalog;
use super::guardrail::{self, Guardrails, Target};
use super::projection::IdentityTemplates;
use super::scope::Namespaces;
use super::tenant::Guid;
use crate::api::RegistrationDefinitionSpec;

mod assignment;
mod delegated_roles;
mod duplicates;
pub mod eligible;
mod grants;
mod limits;
mod narrowing;
mod principals;
mod roles;
mod tenants;
pub mod text;

#[cfg(test)]
mod bad_input;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod guardrails;
#[cfg(test)]
mod materialization;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

pub use assignment::{definition_problem, validate_assignment, AssignmentFacts};

/// Configurable limits (seed 003, SPEC §3 rule 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Definitions one subscription namespace may hold (Azure: 200).
    pub max_definitions_per_subscription: usize,
    /// Authorizations one definition may hold (Azure: 400).
    pub max_authorizations_per_definition: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_definitions_per_subscription: 200, max_authorizations_per_definition: 400 }
    }
}

/// The rule a delegation broke. The names are condition reasons and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::EnumIter)]
pub enum Rule {
    /// §3 rule 1: `managedByTenantId` is not a GUID.
    InvalidTenantId,
    /// §3 rule 1: `managedByTenantId` is the home tenant of the scope.
    SameTenant,
    /// §3 rule 2: a definition outside a subscription namespace.
    NotASubscription,
    /// §3 rule 2: an assignment outside a subscription or its resource groups.
    InvalidScope,
    /// §3 rule 2: an assignment whose definition does not exist.
    DefinitionNotFound,
    /// §3 rule 2: an assignment whose definition is rejected.
    DefinitionInvalid,
    /// §3 rule 2: a second assignment of the same definition at the same scope.
    DuplicateAssignment,
    /// §3 rule 3: a role outside the catalog (custom roles are not supported).
    RoleNotInCatalog,
    /// §4, seed 002: a role of an accepted definition left the catalog; its access is revoked.
    RoleRemovedFromCatalog,
    /// §4: more than one catalog ClusterRole claims the GUID, name or display name: refused
    /// for new delegations; an accepted one keeps the oldest claimant's role.
    AmbiguousRole,
    /// §3 rule 3: Owner is never delegable.
    OwnerRole,
    /// §3 rule 3: a catalog role whose rules hold rejected permissions.
    RoleNotDelegable,
    /// §3 rule 3: User Access Administrator without `delegatedRoleDefinitionIds`.
    UserAccessAdministratorWithoutDelegatedRoles,
    /// §3 rule 3: a delegated role that is UAA, Owner, or rejected by the role rules.
    DelegatedRoleNotAllowed,
    /// §3 rule 3: `delegatedRoleDefinitionIds` on a role other than UAA.
    DelegatedRolesWithoutUserAccessAdministrator,
    /// §3 rule 4: too many definitions in one subscription namespace.
    TooManyDefinitions,
    /// §3 rule 4: too many authorizations in one definition.
    TooManyAuthorizations,
    /// §3 rule 5: a principal ID that is not a GUID (ServiceAccount: not `namespace/name`).
    InvalidPrincipalId,
    /// §2, §3 rule 5: a ServiceAccount whose namespace is not the managing tenant's.
    ServiceAccountOutsideManagingTenant,
    /// §3: the same principal, principal type and role twice in one definition.
    DuplicateAuthorization,
    /// SPEC §9: a ServiceAccount eligible principal or approver, or an approver not a GUID.
    IneligiblePrincipal,
    /// SPEC §9: `maximumActivationDuration` outside PT30M..PT8H, or not ISO 8601.
    InvalidActivationDuration,
    /// SPEC §9: more than 10 approvers.
    TooManyApprovers,
    /// SPEC §9: the same role and principal eligible twice with different policies.
    ConflictingEligiblePolicies,
    /// Free text (a display name, the description, a plan field) too long, blank where
    /// required, or holding control or bidirectional formatting characters ([`text`]).
    InvalidText,
    /// User Access Administrator is valid but not in force: the admission webhook, its only
    /// complete enforcement, is not configured for RoleBindings or not serving (docs/roles.md).
    UserAccessAdministratorWithheld,
    /// A guardrail does not allow the definition's `managedByTenantId` (docs/guardrails.md).
    GuardrailTenantNotAllowed,
    /// A guardrail does not allow the role, as standing or as eligible access.
    GuardrailRoleNotAllowed,
    /// A guardrail allows the role only as an eligible (just-in-time) authorization.
    GuardrailRoleEligibleOnly,
    /// A guardrail allows shorter activations than the eligible authorization's
    /// `maximumActivationDuration`.
    GuardrailActivationTooLong,
    /// A guardrail requires `multiFactorAuthProvider: Azure` on eligible authorizations.
    GuardrailMultiFactorAuthRequired,
    /// A guardrail requires a standing authorization with the Delete role.
    GuardrailDeleteRoleRequired,
}

/// A rule in words, for people: docs/reference.md is generated from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleText {
    /// The field the rule reports (a JSON path, `…` for the part that varies).
    pub field: &'static str,
    /// When the rule refuses a delegation.
    pub refused_when: &'static str,
    /// Why: the Azure Lighthouse rule it mirrors, or the reason it has none.
    pub why: &'static str,
}

impl Rule {
    /// The condition reason and metric label: the variant name.
    pub fn reason(self) -> &'static str {
        self.into()
    }

    /// Whether a guardrail, rather than a rule of docs/roles.md, was broken.
    pub fn is_guardrail(self) -> bool {
        matches!(
            self,
            Rule::GuardrailTenantNotAllowed
                | Rule::GuardrailRoleNotAllowed
                | Rule::GuardrailRoleEligibleOnly
                | Rule::GuardrailActivationTooLong
                | Rule::GuardrailMultiFactorAuthRequired
                | Rule::GuardrailDeleteRoleRequired
        )
    }

    /// The rule in words: the field it reports, when it refuses, and why. Exhaustive, so a new
    /// rule cannot be added without its text (docs/reference.md shows every one).
    pub fn text(self) -> RuleText {
        let (field, refused_when, why) = match self {
            Rule::InvalidTenantId => (
                "spec.managedByTenantId",
                "is not a GUID",
                "Azure names the managing tenant by its Entra tenant ID",
            ),
            Rule::SameTenant => (
                "spec.managedByTenantId",
                "is the customer's own tenant (the subscription namespace's `kubelighthouse.io/tenant-id`)",
                "Lighthouse delegates to another tenant; a tenant manages its own resources with plain RBAC",
            ),
            Rule::NotASubscription => (
                "metadata.namespace",
                "the definition is not in a subscription namespace",
                "Azure registers definitions at subscription scope",
            ),
            Rule::InvalidScope => (
                "metadata.namespace",
                "the assignment is neither in a subscription namespace nor in one of its resource groups",
                "Azure assigns a definition to a subscription or to a resource group of it, nothing else",
            ),
            Rule::DefinitionNotFound => (
                "spec.registrationDefinitionRef.name",
                "no definition of that name is in the subscription namespace",
                "an assignment grants what its definition says; without one it grants nothing",
            ),
            Rule::DefinitionInvalid => (
                "spec.registrationDefinitionRef.name",
                "the definition is rejected (its own status says why)",
                "nothing of a rejected definition is ever granted",
            ),
            Rule::DuplicateAssignment => (
                "spec.registrationDefinitionRef.name",
                "another assignment of the same definition exists at the same scope",
                "Azure allows one assignment of a definition per scope",
            ),
            Rule::RoleNotInCatalog => (
                "spec.authorizations[i].roleDefinitionId",
                "no catalog role has that GUID, ClusterRole name or display name",
                "custom and classic administrator roles aren't supported by Lighthouse",
            ),
            Rule::RoleRemovedFromCatalog => (
                "spec.authorizations[i].roleDefinitionId",
                "(in `narrowed` only) a role of an accepted delegation left the catalog: its access is revoked, the rest stays",
                "a role that no longer exists grants nothing",
            ),
            Rule::AmbiguousRole => (
                "spec.authorizations[i].roleDefinitionId",
                "more than one catalog ClusterRole claims the GUID, name or display name (an accepted delegation keeps the oldest claimant)",
                "Azure role IDs are unique; here two ClusterRoles can claim one",
            ),
            Rule::OwnerRole => (
                "spec.authorizations[i].roleDefinitionId",
                "the Owner GUID, in the catalog or not",
                "Lighthouse never delegates Owner",
            ),
            Rule::RoleNotDelegable => (
                "spec.authorizations[i].roleDefinitionId",
                "the role's rules hold a permission no delegation may grant (the findings are listed: see the table below)",
                "Lighthouse refuses roles with DataActions or with `Microsoft.Authorization` writes",
            ),
            Rule::UserAccessAdministratorWithoutDelegatedRoles => (
                "spec.authorizations[i].delegatedRoleDefinitionIds",
                "User Access Administrator without delegated roles, or as an eligible authorization",
                "Azure: you must also specify the role(s) that this user can assign",
            ),
            Rule::DelegatedRoleNotAllowed => (
                "spec.authorizations[i].delegatedRoleDefinitionIds[j]",
                "a delegated role that is User Access Administrator, Owner, outside the catalog or not delegable",
                "the roles UAA assigns are held to the same rules as the roles delegated",
            ),
            Rule::DelegatedRolesWithoutUserAccessAdministrator => (
                "spec.authorizations[i].delegatedRoleDefinitionIds",
                "delegated roles on a role other than User Access Administrator",
                "only User Access Administrator assigns roles",
            ),
            Rule::TooManyDefinitions => (
                "metadata.namespace",
                "the subscription namespace holds more definitions than the limit (`--max-definitions-per-subscription`, default 200)",
                "Azure's limit per subscription",
            ),
            Rule::TooManyAuthorizations => (
                "spec.authorizations",
                "more authorizations than the limit (`--max-authorizations-per-definition`, default 400)",
                "Azure's limit per definition",
            ),
            Rule::InvalidPrincipalId => (
                "spec.authorizations[i].principalId",
                "not a GUID (for a ServiceAccount: not `namespace/name`)",
                "Azure names principals by their Entra object ID",
            ),
            Rule::ServiceAccountOutsideManagingTenant => (
                "spec.authorizations[i].principalId",
                "a ServiceAccount whose namespace is not one of the managing tenant's",
                "a delegation gives access to the managing tenant's identities only",
            ),
            Rule::DuplicateAuthorization => (
                "spec.authorizations[i]",
                "the same principal, principal type and role again, however the role is named",
                "none in Azure; here the second would be the same RoleBinding twice",
            ),
            Rule::IneligiblePrincipal => (
                "spec.eligibleAuthorizations[i].principalType, …managedByTenantApprovers[j].principalId",
                "a ServiceAccount as eligible principal or approver, or an approver that is not a GUID",
                "activation and approval need a person signing in (Azure PIM for Lighthouse: users and groups)",
            ),
            Rule::InvalidActivationDuration => (
                "spec.eligibleAuthorizations[i].justInTimeAccessPolicy.maximumActivationDuration",
                "outside PT30M to PT8H, or not an ISO 8601 duration",
                "Azure PIM for Lighthouse's bounds",
            ),
            Rule::TooManyApprovers => (
                "spec.eligibleAuthorizations[i].justInTimeAccessPolicy.managedByTenantApprovers",
                "more than 10 approvers",
                "Azure PIM for Lighthouse's limit",
            ),
            Rule::ConflictingEligiblePolicies => (
                "spec.eligibleAuthorizations[i]",
                "the same role and principal eligible twice with different policies",
                "one activation cannot follow two policies",
            ),
            Rule::InvalidText => (
                "spec.registrationDefinitionName, spec.description, spec.plan, …displayName",
                "too long, blank where required, or holding control or bidirectional formatting characters",
                "Azure's length limits; text shown to other tenants must read as it is stored",
            ),
            Rule::UserAccessAdministratorWithheld => (
                "spec.authorizations[i].roleDefinitionId",
                "(in `narrowed` only) User Access Administrator is valid but withheld: the admission webhook does not guard RoleBindings",
                "what UAA may assign is enforced only at admission (docs/roles.md, User Access Administrator)",
            ),
            Rule::GuardrailTenantNotAllowed => (
                "spec.managedByTenantId",
                "a guardrail governing the namespace does not list the managing tenant in `allowedManagingTenantIds`",
                "the platform team decides which managing tenants may be onboarded (Azure Policy: Allow managing tenant IDs to onboard through Azure Lighthouse; docs/guardrails.md)",
            ),
            Rule::GuardrailRoleNotAllowed => (
                "spec.authorizations[i].roleDefinitionId, spec.eligibleAuthorizations[i].roleDefinitionId",
                "a guardrail governing the namespace does not allow the role, standing or eligible (`allowedRoleDefinitionIds`)",
                "the platform team limits which roles may be delegated (docs/guardrails.md)",
            ),
            Rule::GuardrailRoleEligibleOnly => (
                "spec.authorizations[i].roleDefinitionId",
                "a guardrail allows the role only as an eligible authorization (`eligibleOnlyRoleDefinitionIds`)",
                "powerful roles only through just-in-time access (docs/guardrails.md)",
            ),
            Rule::GuardrailActivationTooLong => (
                "spec.eligibleAuthorizations[i].justInTimeAccessPolicy.maximumActivationDuration",
                "longer than a guardrail's `justInTimeAccessPolicy.maximumActivationDuration`",
                "the platform team bounds how long an activation lasts (docs/guardrails.md)",
            ),
            Rule::GuardrailMultiFactorAuthRequired => (
                "spec.eligibleAuthorizations[i].justInTimeAccessPolicy.multiFactorAuthProvider",
                "a guardrail requires multi-factor authentication for activations and the policy does not",
                "the platform team may require MFA for every activation (docs/guardrails.md)",
            ),
            Rule::GuardrailDeleteRoleRequired => (
                "spec.authorizations",
                "a guardrail requires the Registration assignment delete role and no authorization holds it",
                "Azure recommends it, so that the managing tenant can remove its own access (docs/guardrails.md)",
            ),
        };
        RuleText { field, refused_when, why }
    }
}

/// One broken rule at one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The rule broken.
    pub rule: Rule,
    /// JSON path of the offending field, e.g. `spec.authorizations[3].roleDefinitionId`.
    pub field: String,
    /// What is wrong, for a person.
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

    /// Every broken rule, in field order.
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
    /// The role catalog (SPEC §4).
    pub catalog: &'a Catalog,
    /// The namespaces and their subscription labels (SPEC §1).
    pub namespaces: &'a (dyn Namespaces + Sync),
    /// The configured limits (SPEC §3 rule 4).
    pub limits: &'a Limits,
    /// How principals project to RBAC subjects (SPEC §2).
    pub templates: &'a IdentityTemplates,
    /// The platform team's guardrails (docs/guardrails.md).
    pub guardrails: &'a Guardrails,
}

/// A definition and the facts about it that come from outside its spec.
pub struct DefinitionFacts<'a> {
    /// The namespace the definition lives in.
    pub namespace: &'a str,
    /// The definition's spec.
    pub spec: &'a RegistrationDefinitionSpec,
    /// `metadata.generation`.
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
    /// The role's delegable rules: what the namespaced Role holds.
    pub rules: Vec<PolicyRule>,
    /// Sorted and de-duplicated.
    pub subjects: Vec<Subject>,
}

/// A definition that passed every rule.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidDefinition {
    /// The tenant that manages the delegated namespaces.
    pub managing_tenant: Guid,
    /// The customer's tenant: that of the subscription namespace.
    pub home_tenant: Guid,
    /// The subscription namespace the definition lives in.
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

/// What the rule families found so far, in field order.
#[derive(Default)]
struct Findings {
    /// Broken rules: any one rejects the definition.
    errors: Vec<FieldError>,
    /// Catalog changes since acceptance that withheld or revoked access (seed 002).
    narrowed: Vec<FieldError>,
}

impl Findings {
    /// The value of a check that passed; the error of one that failed is recorded.
    fn passed<T>(&mut self, check: Result<T, FieldError>) -> Option<T> {
        check.map_err(|e| self.errors.push(e)).ok()
    }
}

/// The guardrails governing the definition's namespace (docs/guardrails.md): a finding on
/// the whole definition rejects it; one on a single authorization rejects a definition never
/// accepted, and withholds that authorization of an accepted one (narrowing, as a catalog
/// change does). Returns what is withheld.
fn guardrail_findings(
    facts: &DefinitionFacts<'_>,
    ctx: &Context<'_>,
    accepted: bool,
    findings: &mut Findings,
) -> Vec<Target> {
    if ctx.guardrails.is_empty() {
        return Vec::new();
    }
    let labels = ctx.namespaces.get(facts.namespace).map(|ns| ns.selector_labels(facts.namespace)).unwrap_or_default();
    let mut withheld = Vec::new();
    for f in guardrail::findings(ctx.guardrails, &labels, facts.spec, ctx.catalog) {
        let error = FieldError::new(f.rule, f.field, f.message);
        match f.target {
            Target::Standing(_) | Target::Eligible(_) if accepted => {
                let narrowed = FieldError { message: format!("{}; that access is withheld", error.message), ..error };
                findings.narrowed.push(narrowed);
                withheld.push(f.target);
            }
            _ => findings.errors.push(error),
        }
    }
    withheld
}

/// SPEC §3 for a definition in `facts.namespace`: every rule family in field order, so that
/// a rejection lists every broken rule, the first one giving the reason; free text is
/// judged last, so that a rule of SPEC §3 gives the reason when both are broken.
///
/// # Errors
/// A [`Rejection`] holding every broken rule with its field, in field order.
pub fn validate_definition(facts: &DefinitionFacts<'_>, ctx: &Context<'_>) -> Result<ValidDefinition, Rejection> {
    let spec = facts.spec;
    let mut findings = Findings::default();
    let home_tenant = findings.passed(tenants::home_tenant(facts.namespace, ctx.namespaces));
    let managing_tenant =
        tenants::managing_tenant(&spec.managed_by_tenant_id, facts.namespace, home_tenant.as_ref(), &mut findings);
    limits::check(facts, ctx.limits, &mut findings);

    let accepted = facts.previously_accepted();
    let withheld = guardrail_findings(facts, ctx, accepted, &mut findings);
    let mut duplicates = duplicates::Seen::default();
    let mut grants = grants::Collected::default();
    for (i, auth) in spec.authorizations.iter().enumerate() {
        let at = format!("spec.authorizations[{i}]");
        if withheld.contains(&Target::Standing(i)) {
            continue;
        }
        let principal =
            findings.passed(principals::check_principal(auth, &at, managing_tenant.as_ref(), ctx.namespaces));
        let Some((role, classification)) =
            narrowing::standing_role(ctx.catalog, &auth.role_definition_id, &at, accepted, &mut findings)
        else {
            continue;
        };
        let assignable = delegated_roles::assignable_roles(ctx.catalog, auth, role, &at, &mut findings);
        let Some(principal) = principal else { continue };
        if findings.passed(duplicates.first_time(&principal, auth.principal_type, role, i, &at)).is_none() {
            continue;
        }
        let tenant = managing_tenant.as_ref().map(Guid::as_str).unwrap_or_default();
        grants.add(role, &classification, assignable, ctx.templates.subjects(tenant, &principal, auth.principal_type));
    }

    for (i, authorization) in spec.eligible_authorizations.iter().enumerate() {
        eligible::check(ctx.catalog, authorization, i, accepted, &mut findings);
    }
    let mut eligible =
        eligible::validate(&spec.eligible_authorizations, ctx, managing_tenant.as_ref(), &mut findings.errors);
    eligible.retain(|e| !withheld.contains(&Target::Eligible(e.index)));
    text::check(spec, &mut findings);

    match (managing_tenant, home_tenant) {
        (Some(managing_tenant), Some(home_tenant)) if findings.errors.is_empty() => {
            Ok(grants.into_definition(managing_tenant, home_tenant, facts.namespace, findings.narrowed, eligible))
        }
        _ => Err(Rejection(findings.errors)),
    }
}
