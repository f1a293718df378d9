//! Names of well-known Azure built-in roles, so that a role the catalog does not hold is named
//! in the error (issue 17). Only for messages: what a delegation may use is the catalog's
//! business (SPEC §4).
//!
//! GUIDs are Azure's built-in role definition IDs (the same in every tenant); the list holds
//! the roles of SPEC §4, those the public samples use
//! (`Azure/Azure-Lighthouse-samples`, `templates/`), and common Lighthouse roles.

/// Well-known Azure built-in roles: (role definition GUID, name).
pub const AZURE_BUILT_IN_ROLES: [(&str, &str); 22] = [
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner"),
    ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor"),
    ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader"),
    ("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator"),
    ("91c1777a-f3dc-4fae-b103-61d183457e46", "Managed Services Registration assignment Delete Role"),
    ("92aaf0da-9dab-42b6-94a3-d43ce8d16293", "Log Analytics Contributor"),
    ("73c42c96-874c-492b-b04d-ab87d138a893", "Log Analytics Reader"),
    ("36243c78-bf99-498c-9df9-86d9f8d28608", "Resource Policy Contributor"),
    ("9980e02c-c2be-4d73-94e8-173b1dc7cf3c", "Virtual Machine Contributor"),
    ("17d1049b-9a84-46fb-8f53-869881c3d3ab", "Storage Account Contributor"),
    ("ba92f5b4-2d11-453d-a403-e96b0029c9fe", "Storage Blob Data Contributor"),
    ("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1", "Storage Blob Data Reader"),
    ("749f88d5-cbae-40b8-bcfc-e573ddc772fa", "Monitoring Contributor"),
    ("43d0d8ad-25c7-4714-9337-8ba259a9fe05", "Monitoring Reader"),
    ("4d97b98b-1d4f-4787-a291-c67834d212e7", "Network Contributor"),
    ("fb1c8493-542b-48eb-b624-b4c8fea62acd", "Security Admin"),
    ("39bc4728-0917-49c7-9d2c-d95423bc2eb4", "Security Reader"),
    ("f353d9bd-d4a6-484e-a77a-8050b599b867", "Automation Contributor"),
    ("5e467623-bb1f-42f4-a55d-6e525e11384b", "Backup Contributor"),
    ("f25e0fa2-a7c8-4377-a976-54943a77a395", "Key Vault Contributor"),
    ("de139f84-1756-47ae-9be6-808fbbe84772", "Website Contributor"),
    ("f1a07417-d97a-45cb-824c-7a7467783830", "Managed Identity Operator"),
];

/// The Azure name of a built-in role GUID (any case), when it is a well-known one.
pub fn azure_role_name(guid: &str) -> Option<&'static str> {
    AZURE_BUILT_IN_ROLES.iter().find(|(id, _)| id.eq_ignore_ascii_case(guid)).map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog;
    use crate::model::tenant::Guid;

    #[test]
    fn every_entry_is_a_canonical_guid_listed_once() {
        for (id, _) in AZURE_BUILT_IN_ROLES {
            assert_eq!(Guid::parse(id).map(|g| g.to_string()).as_deref(), Some(id), "{id}");
        }
        let mut ids: Vec<_> = AZURE_BUILT_IN_ROLES.iter().map(|(id, _)| id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), AZURE_BUILT_IN_ROLES.len());
    }

    #[test]
    fn names_the_roles_the_catalog_knows_by_constant() {
        assert_eq!(azure_role_name(catalog::OWNER), Some("Owner"));
        assert_eq!(azure_role_name(catalog::USER_ACCESS_ADMINISTRATOR), Some("User Access Administrator"));
        assert_eq!(
            azure_role_name(catalog::REGISTRATION_ASSIGNMENT_DELETE),
            Some("Managed Services Registration assignment Delete Role")
        );
        assert_eq!(azure_role_name("17D1049B-9A84-46FB-8F53-869881C3D3AB"), Some("Storage Account Contributor"));
        assert_eq!(azure_role_name("00000000-0000-0000-0000-000000000000"), None);
    }
}
