//! Properties over generated delegations (issue 19; the fuzz targets in `fuzz/` search the
//! same space for longer): validation is total and deterministic for any definition, hostile
//! strings included; a valid definition grants only what the classifier accepts; and the RBAC
//! built from it has names and labels Kubernetes accepts, for any valid assignment.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::select;

use super::fixtures::*;
use crate::api::{EligibleApprover, JustInTimeAccessPolicy, MultiFactorAuthProvider, Plan};
use crate::model::desired::tests::is_label_value;
use crate::model::desired::{self, AssignmentRef};
use crate::model::keys;
use crate::model::rules::classify;

/// Bidi overrides and isolates, zero-width characters, a BOM, confusables of `a`, `e`, `o`,
/// `-` and `/`, a NUL and whitespace.
const MARKS: &[&str] = &[
    "\u{202E}", "\u{202D}", "\u{2066}", "\u{2069}", "\u{200F}", "\u{200B}", "\u{200D}", "\u{FEFF}", "\u{0430}",
    "\u{0435}", "\u{043E}", "\u{2010}", "\u{2215}", "\u{FF0F}", "\0", " ", "\n",
];

const PRINCIPALS: &[&str] = &[
    MSP,
    CUSTOMER,
    THIRD,
    P1,
    P2,
    "00000000-0000-0000-0000-0000000000A3",
    "{00000000-0000-0000-0000-0000000000a4}",
    "00000000-0000-0000-0000-00000000000",
    "msp-automation/robot",
    "msp-automation-jobs/robot",
    "customer-a/robot",
    "third-party/robot",
    "msp-automation/",
    "a/b/c",
];

const ROLES: &[&str] = &[
    READER,
    CONTRIBUTOR,
    LOG_ANALYTICS,
    RESOURCE_POLICY,
    VM_CONTRIBUTOR,
    REGISTRATION_ASSIGNMENT_DELETE,
    USER_ACCESS_ADMINISTRATOR,
    OWNER,
    UNKNOWN_ROLE,
    SECRET_READER,
    "kubelighthouse:contributor",
    "Contributor",
    "Owner",
];

const NAMESPACES: &[&str] =
    &["customer-a", "customer-a-web", "plain", "orphan-rg", "bad-tenant", "msp-automation", "third-party", "missing"];

const WORDS: &[&str] = &["Contoso Operations", "PT30M", "PT8H", "PT4H", "P1D", "PT29M", "PT8H1M", "x"];

/// A value of `table`, or a hostile one: empty, with a mark inserted, in upper case, long
/// (63, 64, 253, 254 or 65,536 bytes), or any string at all.
fn text(table: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(table).prop_map(str::to_string),
        1 => Just(String::new()),
        2 => (select(table), select(MARKS), any::<prop::sample::Index>()).prop_map(|(s, mark, at)| {
            let mut at = at.index(s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{mark}{}", &s[..at], &s[at..])
        }),
        1 => select(table).prop_map(str::to_uppercase),
        1 => select(&[63usize, 64, 253, 254, 65_536][..]).prop_map(|n| "a".repeat(n)),
        2 => any::<String>(),
    ]
}

fn principal_type() -> impl Strategy<Value = Option<PrincipalType>> {
    select(
        &[
            None,
            Some(PrincipalType::User),
            Some(PrincipalType::Group),
            Some(PrincipalType::ServicePrincipal),
            Some(PrincipalType::ServiceAccount),
        ][..],
    )
}

fn authorization() -> impl Strategy<Value = Authorization> {
    (
        text(PRINCIPALS),
        proptest::option::of(text(WORDS)),
        principal_type(),
        text(ROLES),
        prop::collection::vec(text(ROLES), 0..3),
    )
        .prop_map(|(principal_id, principal_id_display_name, principal_type, role_definition_id, delegated)| {
            Authorization {
                principal_id,
                principal_id_display_name,
                principal_type,
                role_definition_id,
                delegated_role_definition_ids: delegated,
            }
        })
}

fn eligible_authorization() -> impl Strategy<Value = EligibleAuthorization> {
    let approver =
        (text(PRINCIPALS), proptest::option::of(text(WORDS))).prop_map(|(principal_id, principal_id_display_name)| {
            EligibleApprover { principal_id, principal_id_display_name }
        });
    let policy = (any::<bool>(), proptest::option::of(text(WORDS)), prop::collection::vec(approver, 0..12)).prop_map(
        |(mfa, duration, approvers)| JustInTimeAccessPolicy {
            multi_factor_auth_provider: if mfa {
                MultiFactorAuthProvider::Azure
            } else {
                MultiFactorAuthProvider::None
            },
            maximum_activation_duration: duration,
            managed_by_tenant_approvers: approvers,
        },
    );
    (text(PRINCIPALS), principal_type(), text(ROLES), proptest::option::of(policy)).prop_map(
        |(principal_id, principal_type, role_definition_id, just_in_time_access_policy)| EligibleAuthorization {
            principal_id,
            principal_id_display_name: None,
            principal_type,
            role_definition_id,
            just_in_time_access_policy,
        },
    )
}

/// Any definition: mostly plausible, often hostile, sometimes beyond the 400-authorization
/// limit.
fn definition() -> impl Strategy<Value = RegistrationDefinitionSpec> {
    (
        text(WORDS),
        proptest::option::of(text(WORDS)),
        text(PRINCIPALS),
        prop::collection::vec(authorization(), 0..6),
        select(&[1usize, 1, 1, 401][..]),
        prop::collection::vec(eligible_authorization(), 0..3),
        proptest::option::of((text(WORDS), text(WORDS))),
    )
        .prop_map(|(name, description, managed_by, authorizations, length, eligible, plan)| {
            let length = if length == 1 { authorizations.len() } else { length };
            RegistrationDefinitionSpec {
                registration_definition_name: name,
                description,
                managed_by_tenant_id: managed_by,
                authorizations: authorizations.iter().cycle().take(length).cloned().collect(),
                eligible_authorizations: eligible,
                plan: plan.map(|(name, publisher)| Plan {
                    name,
                    publisher,
                    product: String::new(),
                    version: String::new(),
                }),
            }
        })
}

/// A definition likely to be valid: GUID principals of the managing tenant and catalog roles.
fn plausible_definition() -> impl Strategy<Value = RegistrationDefinitionSpec> {
    let principal = select(&[P1, P2, "00000000-0000-0000-0000-0000000000a3", "msp-automation/robot"][..]);
    let role = select(
        &[READER, CONTRIBUTOR, LOG_ANALYTICS, RESOURCE_POLICY, VM_CONTRIBUTOR, REGISTRATION_ASSIGNMENT_DELETE][..],
    );
    let kind = select(
        &[None, Some(PrincipalType::User), Some(PrincipalType::Group), Some(PrincipalType::ServicePrincipal)][..],
    );
    let plain = (principal, kind, role).prop_map(|(p, kind, role)| Authorization {
        principal_type: if p.contains('/') { Some(PrincipalType::ServiceAccount) } else { kind },
        ..auth(p, role)
    });
    let assignable = select(&[READER, CONTRIBUTOR, LOG_ANALYTICS, VM_CONTRIBUTOR][..]);
    let uaa_auth =
        (select(&[P1, P2][..]), prop::collection::vec(assignable, 1..3)).prop_map(|(p, roles)| uaa(p, &roles));
    prop::collection::vec(prop_oneof![4 => plain, 1 => uaa_auth], 1..6).prop_map(|mut auths| {
        let mut seen = BTreeSet::new();
        auths.retain(|a| seen.insert((a.principal_id.clone(), a.principal_type, a.role_definition_id.clone())));
        spec(auths)
    })
}

/// What the API server accepts as a Role or RoleBinding name: a path segment within 253 bytes.
fn is_rbac_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 253 && n != "." && n != ".." && !n.contains('/') && !n.contains('%')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any definition, in any namespace, accepted before or not: validation returns (never
    /// panics), twice the same verdict; a rejection names a rule with a field and a message;
    /// a valid definition grants only rules the classifier accepts.
    #[test]
    fn validation_is_total_and_deterministic(
        spec in definition(),
        namespace in text(NAMESPACES),
        generation in proptest::option::of(0i64..3),
        accepted in proptest::option::of(0i64..3),
        older in select(&[0usize, 199, 200][..]),
    ) {
        let w = World::new();
        let facts = DefinitionFacts {
            namespace: &namespace,
            spec: &spec,
            generation,
            accepted_generation: accepted,
            older_definitions: older,
        };
        let first = w.validate_facts(&facts);
        prop_assert_eq!(&first, &w.validate_facts(&facts));
        match first {
            Err(rejection) => {
                prop_assert!(!rejection.0.is_empty());
                for e in &rejection.0 {
                    prop_assert!(e.field.starts_with("spec.") || e.field.starts_with("metadata."), "{e}");
                    prop_assert!(!e.message.is_empty(), "{e:?}");
                }
            }
            Ok(valid) => {
                for g in valid.grants.iter().chain(valid.user_access.iter().flat_map(|u| &u.assignable)) {
                    prop_assert!(classify(&g.rules).is_delegable(), "{} grants {:?}", g.role, g.rules);
                }
            }
        }
    }

    /// For any valid definition and any valid assignment (a DNS-subdomain name up to 253
    /// characters in a DNS-label namespace): every Role and RoleBinding `desired::build`
    /// makes has a name the API server accepts, valid label values, a binding only to a Role
    /// it makes in the same namespace, and (except the User Access Administrator's own Role)
    /// only rules the classifier accepts.
    #[test]
    fn desired_rbac_stays_within_kubernetes_limits(
        spec in plausible_definition(),
        namespace in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
        name in "[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?",
        uid in "[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}",
    ) {
        let valid = valid(World::new().validate(&spec));
        let assignment = AssignmentRef { namespace: namespace.clone(), name, uid };
        let rbac = desired::build(&assignment, &valid, &[namespace, "customer-a-web".to_string()]);
        prop_assert!(!rbac.roles.is_empty());
        let roles: BTreeSet<(Option<&str>, Option<&str>)> =
            rbac.roles.iter().map(|r| (r.metadata.namespace.as_deref(), r.metadata.name.as_deref())).collect();
        for meta in rbac.roles.iter().map(|r| &r.metadata).chain(rbac.bindings.iter().map(|b| &b.metadata)) {
            let name = meta.name.as_deref().unwrap_or_default();
            prop_assert!(is_rbac_name(name), "{name:?}: {} bytes", name.len());
            for (key, value) in meta.labels.iter().flatten() {
                prop_assert!(is_label_value(value), "{key}={value:?}");
            }
        }
        for b in &rbac.bindings {
            prop_assert!(roles.contains(&(b.metadata.namespace.as_deref(), Some(b.role_ref.name.as_str()))));
        }
        for role in &rbac.roles {
            let source = role.metadata.annotations.as_ref().and_then(|a| a.get(keys::SOURCE_ROLE));
            if source.map(String::as_str) != Some(USER_ACCESS_ADMINISTRATOR) {
                let rules = role.rules.as_deref().unwrap_or_default();
                prop_assert!(classify(rules).is_delegable(), "{:?}: {rules:?}", role.metadata.name);
            }
        }
    }
}
