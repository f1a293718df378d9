//! The role catalog (SPEC §4): ClusterRoles labelled `kubelighthouse.io/built-in: "true"`,
//! plus Kubernetes' bootstrap roles, found by Azure GUID, ClusterRole name or display name.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};

use super::keys;
use super::rules::{classify, Classification};
use super::tenant::Guid;

/// Owner: never delegable, in or out of the catalog.
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// User Access Administrator: only for assigning `delegatedRoleDefinitionIds` to managed identities.
pub const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
/// Managed Services Registration Assignment Delete Role.
pub const REGISTRATION_ASSIGNMENT_DELETE: &str = "91c1777a-f3dc-4fae-b103-61d183457e46";
/// Kubernetes' own roles, built-in too, and judged by the same rules.
pub const BOOTSTRAP_ROLES: [&str; 4] = ["view", "edit", "admin", "cluster-admin"];

/// A role a delegation may name.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogRole {
    /// ClusterRole name.
    pub name: String,
    /// Azure-compatible role definition ID, when annotated.
    pub guid: Option<Guid>,
    /// Azure display name, when annotated.
    pub display_name: Option<String>,
    /// The ClusterRole's rules: what the role grants.
    pub rules: Vec<PolicyRule>,
    /// The verdict on `rules`, judged once per change of the role rather than on every
    /// reconcile of every delegation that names it.
    pub classification: Classification,
}

impl CatalogRole {
    /// The catalog view of a ClusterRole, or None when it is not part of the catalog.
    pub fn from_cluster_role(role: &ClusterRole) -> Option<CatalogRole> {
        let meta = &role.metadata;
        let name = meta.name.clone()?;
        let labelled = meta.labels.as_ref().and_then(|l| l.get(keys::BUILT_IN)).is_some_and(|v| v == "true");
        if !labelled && !BOOTSTRAP_ROLES.contains(&name.as_str()) {
            return None;
        }
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        let rules = role.rules.clone().unwrap_or_default();
        Some(CatalogRole {
            name,
            guid: annotation(keys::ROLE_DEFINITION_ID).as_deref().and_then(Guid::parse),
            display_name: annotation(keys::ROLE_DISPLAY_NAME),
            classification: classify(&rules),
            rules,
        })
    }

    fn has_guid(&self, guid: &str) -> bool {
        self.guid.as_ref().is_some_and(|g| g.as_str() == guid)
    }

    /// Whether this is User Access Administrator (by GUID).
    pub fn is_user_access_administrator(&self) -> bool {
        self.has_guid(USER_ACCESS_ADMINISTRATOR)
    }

    /// Whether this is Owner (by GUID), never delegable.
    pub fn is_owner(&self) -> bool {
        self.has_guid(OWNER)
    }

    /// Whether this is Managed Services Registration Assignment Delete (by GUID).
    pub fn is_registration_assignment_delete(&self) -> bool {
        self.has_guid(REGISTRATION_ASSIGNMENT_DELETE)
    }

    /// How the role is named in messages: `Reader (kubelighthouse:reader)`.
    pub fn label(&self) -> String {
        match &self.display_name {
            Some(display) => format!("{display} ({})", self.name),
            None => self.name.clone(),
        }
    }
}

/// What a `roleDefinitionId` resolves to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lookup<'a> {
    /// A catalog role.
    Found(&'a CatalogRole),
    /// The Owner GUID: refused before any catalog lookup.
    Owner,
    /// Neither a catalog role nor Owner: a custom role, not supported (SPEC §3).
    NotInCatalog,
}

/// The catalog as currently found in the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    roles: Vec<CatalogRole>,
}

impl Catalog {
    /// A catalog of `roles`, sorted by ClusterRole name.
    pub fn new(mut roles: Vec<CatalogRole>) -> Catalog {
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Catalog { roles }
    }

    /// The catalog the built-in ClusterRoles make; the others are skipped.
    pub fn from_cluster_roles<'a>(roles: impl IntoIterator<Item = &'a ClusterRole>) -> Catalog {
        Catalog::new(roles.into_iter().filter_map(CatalogRole::from_cluster_role).collect())
    }

    /// Every role, sorted by ClusterRole name.
    pub fn roles(&self) -> &[CatalogRole] {
        &self.roles
    }

    /// Resolves a GUID (by annotation), a ClusterRole name, or an Azure display name.
    pub fn lookup(&self, id: &str) -> Lookup<'_> {
        let id = id.trim();
        if let Some(guid) = Guid::parse(id) {
            if guid.as_str() == OWNER {
                return Lookup::Owner;
            }
            return self.roles.iter().find(|r| r.has_guid(guid.as_str())).map_or(Lookup::NotInCatalog, Lookup::Found);
        }
        let by_name = self.roles.iter().find(|r| r.name == id);
        let by_display =
            || self.roles.iter().find(|r| r.display_name.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(id)));
        match by_name.or_else(by_display) {
            Some(role) if role.is_owner() => Lookup::Owner,
            Some(role) => Lookup::Found(role),
            None => Lookup::NotInCatalog,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

    pub fn catalog_cluster_role(
        name: &str,
        guid: Option<&str>,
        display: Option<&str>,
        rules: Vec<PolicyRule>,
    ) -> ClusterRole {
        let mut annotations = BTreeMap::new();
        if let Some(g) = guid {
            annotations.insert(keys::ROLE_DEFINITION_ID.to_string(), g.to_string());
        }
        if let Some(d) = display {
            annotations.insert(keys::ROLE_DISPLAY_NAME.to_string(), d.to_string());
        }
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(keys::BUILT_IN.to_string(), "true".to_string())])),
                annotations: Some(annotations),
                ..Default::default()
            },
            rules: Some(rules),
            aggregation_rule: None,
        }
    }

    fn plain(name: &str) -> ClusterRole {
        ClusterRole { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() }
    }

    fn catalog() -> Catalog {
        Catalog::from_cluster_roles(&[
            catalog_cluster_role("kubelighthouse:reader", Some(READER), Some("Reader"), vec![]),
            plain("view"),
            plain("system:node"),
            plain("my-custom-role"),
        ])
    }

    #[test]
    fn only_labelled_and_bootstrap_roles_are_in_the_catalog() {
        let c = catalog();
        let names: Vec<&str> = c.roles().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["kubelighthouse:reader", "view"]);
    }

    #[test]
    fn lookup_by_guid_name_or_display_name() {
        let c = catalog();
        let found = |id: &str| match c.lookup(id) {
            Lookup::Found(r) => Some(r.name.clone()),
            _ => None,
        };
        assert_eq!(found(READER).as_deref(), Some("kubelighthouse:reader"));
        assert_eq!(found(&READER.to_uppercase()).as_deref(), Some("kubelighthouse:reader"));
        assert_eq!(found("kubelighthouse:reader").as_deref(), Some("kubelighthouse:reader"));
        assert_eq!(found("reader").as_deref(), Some("kubelighthouse:reader"));
        assert_eq!(found("view").as_deref(), Some("view"));
        assert_eq!(c.lookup("my-custom-role"), Lookup::NotInCatalog);
        assert_eq!(c.lookup("b24988ac-6180-42a0-ab88-20f7382dd24c"), Lookup::NotInCatalog);
    }

    #[test]
    fn owner_is_recognised_even_outside_the_catalog() {
        assert_eq!(catalog().lookup(OWNER), Lookup::Owner);
        let c = Catalog::from_cluster_roles(&[catalog_cluster_role("owner", Some(OWNER), Some("Owner"), vec![])]);
        assert_eq!(c.lookup("owner"), Lookup::Owner);
        assert_eq!(c.lookup("Owner"), Lookup::Owner);
    }

    #[test]
    fn a_catalog_role_carries_the_verdict_on_its_rules() {
        let secrets = PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["secrets".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        };
        let role =
            CatalogRole::from_cluster_role(&catalog_cluster_role("reads-secrets", None, None, vec![secrets.clone()]))
                .expect("in the catalog");
        assert_eq!(role.classification, classify(&[secrets]));
        assert!(!role.classification.is_delegable());
    }
}
