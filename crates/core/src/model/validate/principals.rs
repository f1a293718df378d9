//! SPEC §3 rule 5 and §2: the principal of an authorization. An Entra principal is a GUID; a
//! ServiceAccount is `namespace/name` in a namespace of the managing tenant (its in-cluster
//! automation).

use super::text::quoted;
use super::{FieldError, Rule};
use crate::api::{Authorization, PrincipalType};
use crate::model::scope::{self, Namespaces};
use crate::model::tenant::Guid;

/// Validates the principal of the authorization at `at`; returns the canonical form the
/// subjects are built from.
pub(super) fn check_principal(
    auth: &Authorization,
    at: &str,
    managing_tenant: Option<&Guid>,
    namespaces: &dyn Namespaces,
) -> Result<String, FieldError> {
    let field = format!("{at}.principalId");
    if auth.principal_type != Some(PrincipalType::ServiceAccount) {
        return Guid::parse(&auth.principal_id).map(|g| g.to_string()).ok_or_else(|| {
            FieldError::new(Rule::InvalidPrincipalId, &field, format!("{} is not a GUID", quoted(&auth.principal_id)))
        });
    }
    let invalid = || {
        FieldError::new(
            Rule::InvalidPrincipalId,
            &field,
            format!("{} is not namespace/name of a ServiceAccount", quoted(&auth.principal_id)),
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

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- rule 5: principal IDs --------------------------------------------------------------------

    #[test]
    fn entra_principals_must_be_guids() {
        let w = World::new();
        let kinds =
            [None, Some(PrincipalType::User), Some(PrincipalType::Group), Some(PrincipalType::ServicePrincipal)];
        for kind in kinds {
            for bad in [
                "",
                "alice@contoso.com",
                "msp-automation/deployer",
                "{00000000-0000-0000-0000-0000000000a1}",
                "000000000000000000000000000000a1",
                " 00000000-0000-0000-0000-0000000000a1",
            ] {
                let a = Authorization { principal_type: kind, ..auth(bad, READER) };
                let r = rejection(w.validate(&with_at(3, a)));
                assert_eq!(
                    r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                    one(Rule::InvalidPrincipalId, "spec.authorizations[3].principalId"),
                    "{kind:?} {bad:?}"
                );
                assert!(r.0[0].message.contains("not a GUID"));
            }
        }
    }

    #[test]
    fn service_accounts_of_the_managing_tenant_pass() {
        let w = World::new();
        for (principal, namespace, name) in [
            ("msp-automation/deployer", "msp-automation", "deployer"),
            ("msp-automation-jobs/ci.bot-1", "msp-automation-jobs", "ci.bot-1"),
        ] {
            let v = valid(w.validate(&spec(vec![typed(principal, PrincipalType::ServiceAccount, CONTRIBUTOR)])));
            assert_eq!(
                grant(&v, "kubelighthouse:contributor").subjects,
                [Subject {
                    kind: "ServiceAccount".into(),
                    name: name.into(),
                    namespace: Some(namespace.into()),
                    api_group: Some(String::new()),
                }],
                "{principal}"
            );
        }
    }

    #[test]
    fn service_accounts_of_other_tenants_are_refused() {
        let w = World::new();
        for (principal, in_message) in [
            ("customer-a/backup", "tenant 11111111"),
            ("customer-a-web/app", "tenant 11111111"),
            ("third-party/bot", "tenant 33333333"),
            ("missing/bot", "no tenant"),
            ("plain/bot", "no tenant"),
            ("orphan-rg/bot", "no tenant"),
        ] {
            let r = rejection(w.validate(&with_at(1, typed(principal, PrincipalType::ServiceAccount, READER))));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::ServiceAccountOutsideManagingTenant, "spec.authorizations[1].principalId"),
                "{principal}"
            );
            assert!(r.0[0].message.contains(in_message), "{principal}: {r}");
        }
    }

    #[test]
    fn a_service_account_follows_its_namespace_out_of_the_managing_tenant() {
        let definition = spec(vec![typed("msp-automation-jobs/ci", PrincipalType::ServiceAccount, READER)]);
        let refused = |w: &World, why: &str| {
            let r = rejection(w.validate(&definition));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::ServiceAccountOutsideManagingTenant, "spec.authorizations[0].principalId"),
                "{why}"
            );
        };
        let mut w = World::new();
        valid(w.validate(&definition));
        // Its resource group's subscription relabelled to another tenant.
        let subscription =
            w.namespaces["msp-automation-jobs"].parent_subscription().expect("a resource group").to_string();
        w.namespaces.get_mut(&subscription).expect("exists").tenant_id =
            Some("33333333-3333-3333-3333-333333333333".into());
        refused(&w, "subscription relabelled");
        // Moved under another tenant's subscription.
        let mut w = World::new();
        w.namespaces.get_mut("msp-automation-jobs").expect("exists").subscription = Some("third-party".into());
        refused(&w, "moved");
        // Being deleted: a namespace of that name may come back for anyone.
        let mut w = World::new();
        w.namespaces.get_mut("msp-automation-jobs").expect("exists").terminating = true;
        refused(&w, "terminating");
        // Gone.
        let mut w = World::new();
        w.namespaces.remove("msp-automation-jobs");
        refused(&w, "deleted");
    }

    #[test]
    fn malformed_service_account_names_are_invalid() {
        let w = World::new();
        for bad in [
            "foo",
            "a/b/c",
            "UPPER/x",
            "msp-automation/UPPER",
            "/x",
            "msp-automation/",
            "-ns/x",
            "ns-/x",
            "msp_automation/x",
            "msp-automation/a..b",
            P1,
        ] {
            let r = rejection(w.validate(&with_at(2, typed(bad, PrincipalType::ServiceAccount, READER))));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::InvalidPrincipalId, "spec.authorizations[2].principalId"),
                "{bad:?}"
            );
            assert!(r.0[0].message.contains("namespace/name"), "{r}");
        }
    }
}
