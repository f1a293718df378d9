//! SPEC §3 rules 1 and 2 for a definition: it lives in a subscription namespace, whose label
//! names the customer's (home) tenant, and it is managed by another tenant, named by a GUID.

use super::text::quoted;
use super::{FieldError, Findings, Rule};
use crate::model::scope::{self, Namespaces};
use crate::model::tenant::Guid;

/// SPEC §3 rule 2: the home tenant of the subscription namespace a definition lives in.
pub(super) fn home_tenant(namespace: &str, namespaces: &dyn Namespaces) -> Result<Guid, FieldError> {
    match scope::resolve(namespace, namespaces) {
        Ok(s) if s.is_subscription() => Ok(s.home_tenant),
        Ok(s) => Err(FieldError::new(
            Rule::NotASubscription,
            "metadata.namespace",
            format!(
                "{namespace} is a resource group of {}; definitions live in the subscription namespace",
                s.subscription
            ),
        )),
        Err(e) => Err(FieldError::new(Rule::NotASubscription, "metadata.namespace", e.to_string())),
    }
}

/// SPEC §3 rule 1: `managedByTenantId` is a GUID, and another tenant than the customer's.
///
/// Returns the managing tenant whenever it parses, even when it is the home tenant, so that
/// the later families judge the rest of the definition against it.
pub(super) fn managing_tenant(
    managed_by_tenant_id: &str,
    namespace: &str,
    home_tenant: Option<&Guid>,
    findings: &mut Findings,
) -> Option<Guid> {
    let Some(managing) = Guid::parse(managed_by_tenant_id) else {
        findings.errors.push(FieldError::new(
            Rule::InvalidTenantId,
            "spec.managedByTenantId",
            format!("{} is not a GUID", quoted(managed_by_tenant_id)),
        ));
        return None;
    };
    if home_tenant == Some(&managing) {
        findings.errors.push(FieldError::new(
            Rule::SameTenant,
            "spec.managedByTenantId",
            format!("{managing} is the home tenant of {namespace}: Lighthouse delegates across tenants only"),
        ));
    }
    Some(managing)
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- rule 1: the managing tenant --------------------------------------------------------------

    #[test]
    fn managed_by_tenant_id_must_be_a_guid() {
        let w = World::new();
        for bad in [
            "",
            "contoso",
            "contoso.onmicrosoft.com",
            "fbcdd0f3dc824ceebcde7301d24e9bf6",
            "{fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6}",
            "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf",
        ] {
            let s = spec_for(bad, vec![auth(P1, READER)]);
            assert_eq!(errors(w.validate(&s)), one(Rule::InvalidTenantId, "spec.managedByTenantId"), "{bad:?}");
        }
    }

    #[test]
    fn managed_by_tenant_id_is_canonicalised() {
        let w = World::new();
        let v = valid(w.validate(&spec_for(&MSP.to_uppercase(), vec![auth(P1, READER)])));
        assert_eq!(v.managing_tenant.as_str(), MSP);
        assert_eq!(v.home_tenant.as_str(), CUSTOMER);
        assert_eq!(v.subscription, "customer-a");
        assert_eq!(grant(&v, "kubelighthouse:reader").subjects, [group(&projected(P1)), user(projected(P1))]);
    }

    #[test]
    fn the_home_tenant_cannot_manage_itself() {
        let w = World::new();
        for same in [CUSTOMER.to_string(), CUSTOMER.to_uppercase()] {
            let r = rejection(w.validate(&spec_for(&same, vec![auth(P1, READER)])));
            assert_eq!(r.rules().collect::<Vec<_>>(), [Rule::SameTenant], "{same}");
            assert_eq!(r.0[0].field, "spec.managedByTenantId");
            assert!(r.0[0].message.contains("across tenants"), "{r}");
        }
        // A third tenant is fine: the check is against the home tenant, not a fixed one.
        assert!(w.validate(&spec_for(THIRD, vec![auth(P1, READER)])).is_ok());
    }

    // --- rule 2: where a definition lives ---------------------------------------------------------

    #[test]
    fn definitions_live_in_subscription_namespaces_only() {
        let w = World::new();
        let s = spec(vec![auth(P1, READER)]);
        for (namespace, in_message) in [
            ("customer-a-web", "resource group of customer-a"),
            ("plain", "neither a subscription"),
            ("missing", "does not exist"),
            ("orphan-rg", "nowhere"),
            ("bad-tenant", "not a GUID"),
        ] {
            let r = rejection(w.validate_in(namespace, &s));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
                [(Rule::NotASubscription, "metadata.namespace")],
                "{namespace}"
            );
            assert!(r.0[0].message.contains(in_message), "{namespace}: {r}");
        }
        // The managing tenant's own subscription namespace is a valid home for a definition by
        // another tenant (here, the customer managing the MSP).
        assert!(w.validate_in("msp-automation", &spec_for(CUSTOMER, vec![auth(P1, READER)])).is_ok());
    }
}
