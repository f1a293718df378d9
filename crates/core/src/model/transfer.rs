//! Subscription transfer (seed 002, SPEC §6): delegations survive a change of home tenant,
//! except those to the new home tenant itself, which now owns the subscription directly.

use super::tenant::Guid;

/// Whether a definition is removed because its subscription was transferred to the tenant
/// it delegates to. `recorded_home` is the home tenant the controller last saw for the
/// definition (`status.manageeTenantId`): only a *change* to the managing tenant removes;
/// a definition created by the home tenant for itself is merely rejected (SameTenant).
pub fn removed_by_transfer(managed_by: &str, recorded_home: Option<&str>, home_now: &Guid) -> bool {
    let Some(managing) = Guid::parse(managed_by) else { return false };
    let recorded = recorded_home.and_then(Guid::parse);
    managing == *home_now && recorded.is_some_and(|r| r != *home_now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "11111111-1111-1111-1111-111111111111";
    const MSP: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const OTHER: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    fn guid(s: &str) -> Guid {
        Guid::parse(s).expect("guid")
    }

    #[test]
    fn transfer_to_the_managing_tenant_removes_its_delegation() {
        assert!(removed_by_transfer(MSP, Some(A), &guid(MSP)));
        assert!(removed_by_transfer(&MSP.to_uppercase(), Some(A), &guid(MSP)));
    }

    #[test]
    fn other_managing_tenants_keep_their_delegations() {
        assert!(!removed_by_transfer(OTHER, Some(A), &guid(MSP)));
    }

    #[test]
    fn no_transfer_no_removal() {
        // Same home as recorded: a self-delegation is a SameTenant rejection, not a transfer.
        assert!(!removed_by_transfer(MSP, Some(MSP), &guid(MSP)));
        // Never seen before: judged by validation.
        assert!(!removed_by_transfer(MSP, None, &guid(MSP)));
        assert!(!removed_by_transfer("not-a-guid", Some(A), &guid(MSP)));
    }
}
