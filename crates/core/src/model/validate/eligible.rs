//! SPEC §9: eligible authorizations are validated like standing ones (§3 applies too) and
//! grant nothing until activated. User Access Administrator cannot be eligible.
//!
//! SPEC §9, the rules that eligible authorizations add to §3, and what a valid one means for
//! activation ([`Eligible`]).
//!
//! The role of each eligible authorization and its principal ID are judged with the standing
//! authorizations (in the parent module, as §3 says); this module adds: no `ServiceAccount`
//! principal or approver, approvers that are GUIDs and at most [`MAX_APPROVERS`], a
//! `maximumActivationDuration` in [`MIN_ACTIVATION`]..[`MAX_ACTIVATION`], and no role and
//! principal twice with different policies.

use super::grants::sort_subjects;
use super::narrowing::eligible_role;
use super::text::quoted;
use super::Context;
use super::{FieldError, Findings, Rule};
use crate::api::{EligibleAuthorization, JustInTimeAccessPolicy, MultiFactorAuthProvider, PrincipalType};
use crate::model::catalog::Catalog;
use crate::model::catalog::Lookup;
use crate::model::tenant::Guid;
use jiff::SignedDuration;
use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};
use std::collections::BTreeMap;

/// Records what is wrong with `spec.eligibleAuthorizations[i]`, and what a catalog change
/// after acceptance narrowed.
pub(super) fn check(
    catalog: &Catalog,
    eligible: &EligibleAuthorization,
    i: usize,
    accepted: bool,
    findings: &mut Findings,
) {
    let at = format!("spec.eligibleAuthorizations[{i}]");
    if Guid::parse(&eligible.principal_id).is_none() {
        findings.errors.push(FieldError::new(
            Rule::InvalidPrincipalId,
            format!("{at}.principalId"),
            format!("{} is not a GUID", quoted(&eligible.principal_id)),
        ));
    }
    let role_field = format!("{at}.roleDefinitionId");
    let role = eligible_role(catalog, &eligible.role_definition_id, &role_field, accepted, findings);
    if role.is_some_and(|role| role.is_user_access_administrator()) {
        findings.errors.push(FieldError::new(
            Rule::UserAccessAdministratorWithoutDelegatedRoles,
            role_field,
            "User Access Administrator cannot be an eligible authorization: it requires delegatedRoleDefinitionIds",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- eligible authorizations ------------------------------------------------------------------

    #[test]
    fn eligible_authorizations_are_validated_like_standing_ones() {
        let w = World::new();
        let cases: Vec<(EligibleAuthorization, Rule, &str)> = vec![
            (eligible("not-a-guid", READER), Rule::InvalidPrincipalId, "principalId"),
            (eligible(P1, SECRET_READER), Rule::RoleNotDelegable, "roleDefinitionId"),
            (eligible(P1, OWNER), Rule::OwnerRole, "roleDefinitionId"),
            (eligible(P1, UNKNOWN_ROLE), Rule::RoleNotInCatalog, "roleDefinitionId"),
            (
                eligible(P1, USER_ACCESS_ADMINISTRATOR),
                Rule::UserAccessAdministratorWithoutDelegatedRoles,
                "roleDefinitionId",
            ),
        ];
        for (e, rule, field) in cases {
            let mut s = spec(vec![auth(P1, READER)]);
            s.eligible_authorizations = vec![eligible(P2, CONTRIBUTOR), e.clone()];
            assert_eq!(errors(w.validate(&s)), one(rule, &format!("spec.eligibleAuthorizations[1].{field}")), "{e:?}");
        }
    }

    #[test]
    fn eligible_authorizations_grant_nothing_until_activated() {
        let w = World::new();
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible(P2, CONTRIBUTOR), eligible(P3, READER)];
        let v = valid(w.validate(&s));
        assert_eq!(grant_roles(&v), ["kubelighthouse:reader"]);
        assert_eq!(grant(&v, "kubelighthouse:reader").subjects, [group(&projected(P1)), user(projected(P1))]);
    }

    #[test]
    fn both_eligible_problems_are_reported() {
        let w = World::new();
        let mut s = spec(vec![auth(P1, READER)]);
        s.eligible_authorizations = vec![eligible("bob", SECRET_READER)];
        assert_eq!(
            errors(w.validate(&s)),
            [
                (Rule::InvalidPrincipalId, "spec.eligibleAuthorizations[0].principalId".to_string()),
                (Rule::RoleNotDelegable, "spec.eligibleAuthorizations[0].roleDefinitionId".to_string()),
            ]
        );
    }
}

/// Most approvers one eligible authorization may list (Azure's limit).
pub const MAX_APPROVERS: usize = 10;
/// Shortest `maximumActivationDuration` (PT30M).
pub const MIN_ACTIVATION: SignedDuration = SignedDuration::from_mins(30);
/// Longest `maximumActivationDuration` (PT8H), and the default.
pub const MAX_ACTIVATION: SignedDuration = SignedDuration::from_hours(8);

/// One valid eligible authorization, resolved: what an activation of it grants and who
/// decides. Built only for roles still in the catalog (a role that left it can no longer be
/// activated; one that became non-delegable keeps only its delegable rules, as for standing
/// access).
#[derive(Clone, Debug, PartialEq)]
pub struct Eligible {
    /// Index in `spec.eligibleAuthorizations`.
    pub index: usize,
    /// Name of the catalog ClusterRole.
    pub role: String,
    /// Its Azure-compatible GUID, when annotated: an activation may name the role by either.
    pub role_guid: Option<String>,
    /// Its Azure display name (e.g. `Contributor`), when annotated: a third way to name it.
    pub role_display_name: Option<String>,
    /// The role's delegable rules: what an activation's Role holds.
    pub rules: Vec<PolicyRule>,
    /// The projected eligible principal (a User, a Group, or both when untyped); sorted.
    pub subjects: Vec<Subject>,
    /// The projected approvers (User and Group subjects each); empty: no approval step.
    pub approvers: Vec<Subject>,
    /// `maximumActivationDuration`.
    pub max_duration: SignedDuration,
    /// `multiFactorAuthProvider: Azure`: the requester must show `mfa` in `amr`.
    pub requires_mfa: bool,
}

/// Parses an ISO 8601 duration of time units only (`PT2H`, `PT90M`, `PT1H30M`).
///
/// # Errors
/// A message when `text` is not such a duration.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let iso = text.starts_with('P') || text.starts_with('p');
    match text.parse::<SignedDuration>() {
        Ok(d) if iso => Ok(d),
        _ => Err(format!("{} is not an ISO 8601 duration such as PT2H", quoted(text))),
    }
}

fn policy_duration(policy: Option<&JustInTimeAccessPolicy>) -> Result<SignedDuration, String> {
    match policy.and_then(|p| p.maximum_activation_duration.as_deref()) {
        None => Ok(MAX_ACTIVATION),
        Some(text) => {
            let d = parse_duration(text)?;
            if d < MIN_ACTIVATION || d > MAX_ACTIVATION {
                Err(format!("{} is outside PT30M..PT8H", quoted(text)))
            } else {
                Ok(d)
            }
        }
    }
}

/// Checks SPEC §9's own rules on `spec.eligibleAuthorizations`, pushing what is broken to
/// `errors`, and returns the eligible authorizations whose role is in the catalog.
/// `managing_tenant` projects the principals (None when the definition's tenant is invalid:
/// nothing is built then).
pub fn validate(
    eligible: &[EligibleAuthorization],
    ctx: &Context<'_>,
    managing_tenant: Option<&Guid>,
    errors: &mut Vec<FieldError>,
) -> Vec<Eligible> {
    let mut out = Vec::new();
    // (principal, type, role) -> (first index, its policy)
    type Seen<'p> = BTreeMap<(String, Option<PrincipalType>, String), (usize, Option<&'p JustInTimeAccessPolicy>)>;
    let mut seen: Seen<'_> = BTreeMap::new();
    let tenant = managing_tenant.map(Guid::as_str).unwrap_or_default();
    for (i, e) in eligible.iter().enumerate() {
        let at = format!("spec.eligibleAuthorizations[{i}]");
        let before = errors.len();
        if e.principal_type == Some(PrincipalType::ServiceAccount) {
            errors.push(FieldError::new(
                Rule::IneligiblePrincipal,
                format!("{at}.principalType"),
                "a ServiceAccount cannot be eligible: activation needs a person who signs in",
            ));
        }
        let policy = e.just_in_time_access_policy.as_ref();
        let max_duration = match policy_duration(policy) {
            Ok(d) => d,
            Err(message) => {
                errors.push(FieldError::new(
                    Rule::InvalidActivationDuration,
                    format!("{at}.justInTimeAccessPolicy.maximumActivationDuration"),
                    message,
                ));
                MAX_ACTIVATION
            }
        };
        let approvers = policy.map(|p| p.managed_by_tenant_approvers.as_slice()).unwrap_or_default();
        if approvers.len() > MAX_APPROVERS {
            errors.push(FieldError::new(
                Rule::TooManyApprovers,
                format!("{at}.justInTimeAccessPolicy.managedByTenantApprovers"),
                format!("{} approvers; at most {MAX_APPROVERS}", approvers.len()),
            ));
        }
        let mut approver_subjects = Vec::new();
        for (j, approver) in approvers.iter().enumerate() {
            match Guid::parse(&approver.principal_id) {
                Some(g) => approver_subjects.extend(ctx.templates.subjects(tenant, g.as_str(), None)),
                None => errors.push(FieldError::new(
                    Rule::IneligiblePrincipal,
                    format!("{at}.justInTimeAccessPolicy.managedByTenantApprovers[{j}].principalId"),
                    format!(
                        "{} is not a GUID: approvers are users or groups of the managing tenant",
                        quoted(&approver.principal_id)
                    ),
                )),
            }
        }
        // The principal ID and the role are judged with the standing authorizations.
        let (Some(principal), Lookup::Found(role)) =
            (Guid::parse(&e.principal_id), ctx.catalog.lookup(&e.role_definition_id))
        else {
            continue;
        };
        let key = (principal.to_string(), e.principal_type, role.name.clone());
        if let Some((first, first_policy)) = seen.get(&key) {
            if *first_policy != policy {
                errors.push(FieldError::new(
                    Rule::ConflictingEligiblePolicies,
                    at.clone(),
                    format!(
                        "principal {principal} is already eligible for {} in spec.eligibleAuthorizations[{first}] with another policy",
                        role.label()
                    ),
                ));
            }
            continue;
        }
        seen.insert(key, (i, policy));
        if errors.len() > before || role.is_user_access_administrator() || role.is_owner() {
            continue;
        }
        let mut subjects = ctx.templates.subjects(tenant, principal.as_str(), e.principal_type);
        sort_subjects(&mut subjects);
        sort_subjects(&mut approver_subjects);
        out.push(Eligible {
            index: i,
            role: role.name.clone(),
            role_guid: role.guid.as_ref().map(ToString::to_string),
            role_display_name: role.display_name.clone(),
            rules: role.classification.delegable_rules.clone(),
            subjects,
            approvers: approver_subjects,
            max_duration,
            requires_mfa: policy.is_some_and(|p| p.multi_factor_auth_provider == MultiFactorAuthProvider::Azure),
        });
    }
    out
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn durations_are_iso_8601_time_spans() {
        assert_eq!(parse_duration("PT2H"), Ok(SignedDuration::from_hours(2)));
        assert_eq!(parse_duration("PT1H30M"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("PT30M"), Ok(MIN_ACTIVATION));
        assert!(parse_duration("2h").is_err(), "the friendly format is not Azure's");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn policy_durations_stay_within_half_an_hour_and_eight_hours() {
        let policy = |d: &str| JustInTimeAccessPolicy {
            multi_factor_auth_provider: MultiFactorAuthProvider::None,
            maximum_activation_duration: Some(d.into()),
            managed_by_tenant_approvers: vec![],
        };
        assert_eq!(policy_duration(None), Ok(MAX_ACTIVATION));
        assert_eq!(policy_duration(Some(&policy("PT4H"))), Ok(SignedDuration::from_hours(4)));
        assert_eq!(policy_duration(Some(&policy("PT8H"))), Ok(MAX_ACTIVATION));
        assert!(policy_duration(Some(&policy("PT29M"))).is_err());
        assert!(policy_duration(Some(&policy("PT8H1M"))).is_err());
        assert!(policy_duration(Some(&policy("P1D"))).is_err());
    }
}
