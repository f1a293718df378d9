//! SPEC §3: one definition names a principal (of one principal type) with one role at most
//! once. Role references are compared after catalog lookup, principals in canonical form.

use std::collections::BTreeMap;

use super::{FieldError, Rule};
use crate::api::PrincipalType;
use crate::model::catalog::CatalogRole;

/// The (principal, principal type, role) triples seen so far, with the index of the
/// authorization that named each first.
#[derive(Default)]
pub(super) struct Seen(BTreeMap<(String, Option<PrincipalType>, String), usize>);

impl Seen {
    /// Ok when the authorization `i` at `at` is the first to give `principal` the `role`.
    pub(super) fn first_time(
        &mut self,
        principal: &str,
        principal_type: Option<PrincipalType>,
        role: &CatalogRole,
        i: usize,
        at: &str,
    ) -> Result<(), FieldError> {
        match self.0.insert((principal.to_string(), principal_type, role.name.clone()), i) {
            None => Ok(()),
            Some(first) => Err(FieldError::new(
                Rule::DuplicateAuthorization,
                at,
                format!("principal {principal} already has role {} in spec.authorizations[{first}]", role.label()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- duplicates -------------------------------------------------------------------------------

    #[test]
    fn duplicate_authorizations_are_rejected() {
        let w = World::new();
        let cases: Vec<(&str, Vec<Authorization>, usize)> = vec![
            ("identical", vec![auth(P1, READER), auth(P2, READER), auth(P1, READER)], 2),
            ("GUID and ClusterRole name", vec![auth(P1, READER), auth(P1, "kubelighthouse:reader")], 1),
            (
                "ClusterRole name and display name",
                vec![
                    typed(P1, PrincipalType::Group, "kubelighthouse:contributor"),
                    auth(P2, READER),
                    auth(P3, READER),
                    typed(P1, PrincipalType::Group, "contributor"),
                ],
                3,
            ),
            ("principal GUID in another case", vec![auth(P1, READER), auth(&P1.to_uppercase(), READER)], 1),
            (
                "role GUID in another case",
                vec![
                    typed(P1, PrincipalType::User, CONTRIBUTOR),
                    typed(P1, PrincipalType::User, &CONTRIBUTOR.to_uppercase()),
                ],
                1,
            ),
            (
                "service account",
                vec![
                    typed("msp-automation/deployer", PrincipalType::ServiceAccount, READER),
                    typed("msp-automation/deployer", PrincipalType::ServiceAccount, "Reader"),
                ],
                1,
            ),
        ];
        for (case, auths, at) in cases {
            let r = rejection(w.validate(&spec(auths)));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::DuplicateAuthorization, &format!("spec.authorizations[{at}]")),
                "{case}"
            );
            assert!(r.0[0].message.contains("already has role"), "{r}");
        }
    }

    #[test]
    fn same_principal_with_another_role_or_type_is_no_duplicate() {
        let w = World::new();
        let v = valid(w.validate(&spec(vec![
            auth(P1, READER),
            auth(P1, CONTRIBUTOR),
            typed(P1, PrincipalType::User, READER),
            typed(P1, PrincipalType::Group, READER),
        ])));
        assert_eq!(grant_roles(&v), ["kubelighthouse:contributor", "kubelighthouse:reader"]);
        // The overlapping subjects are bound once.
        assert_eq!(grant(&v, "kubelighthouse:reader").subjects, [group(&projected(P1)), user(projected(P1))]);
    }
}
