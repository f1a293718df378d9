//! The role catalog (SPEC §4): ClusterRoles labelled `kubelighthouse.io/built-in: "true"`,
//! plus Kubernetes' bootstrap roles, found by Azure GUID, ClusterRole name or display name.
//! It owns which ClusterRole a role reference resolves to (the oldest claimant, when several
//! claim one GUID or name) and each role's documented class ([`RoleClass`]).

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};

use super::keys;
use super::rules::{classify_as, Classification, RoleClass};
use super::tenant::Guid;

/// Owner: never delegable, in or out of the catalog.
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// User Access Administrator: only for assigning `delegatedRoleDefinitionIds` to managed identities.
pub const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
/// Managed Services Registration Assignment Delete Role.
pub const REGISTRATION_ASSIGNMENT_DELETE: &str = "91c1777a-f3dc-4fae-b103-61d183457e46";
/// Kubernetes' own roles, built-in too, and judged by the same rules.
pub const BOOTSTRAP_ROLES: [&str; 4] = ["view", "edit", "admin", "cluster-admin"];
/// Reader.
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
/// Log Analytics Contributor.
pub const LOG_ANALYTICS_CONTRIBUTOR: &str = "92aaf0da-9dab-42b6-94a3-d43ce8d16293";
/// Resource Policy Contributor.
pub const RESOURCE_POLICY_CONTRIBUTOR: &str = "36243c78-bf99-498c-9df9-86d9f8d28608";
/// Virtual Machine Contributor.
pub const VIRTUAL_MACHINE_CONTRIBUTOR: &str = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c";

/// The documented class of each catalog role that has one (docs/roles.md, "Role classes"),
/// by Azure GUID and by the chart's ClusterRole name: what the role may ever grant, whatever
/// its ClusterRole comes to hold (aggregation, an edit, a newer Kubernetes). Others (Contributor,
/// `edit`, `admin`, `cluster-admin`, a cluster's own catalog roles) are held to the classifier's
/// rules only.
const CLASSES: &[(&str, &str, RoleClass)] = &[
    (READER, "kubelighthouse:reader", RoleClass::ReadOnly),
    (REGISTRATION_ASSIGNMENT_DELETE, "kubelighthouse:registration-assignment-delete", RoleClass::AssignmentDelete),
    (
        LOG_ANALYTICS_CONTRIBUTOR,
        "kubelighthouse:log-analytics-contributor",
        RoleClass::WritesOnly(&[("monitoring.coreos.com", None)]),
    ),
    (
        RESOURCE_POLICY_CONTRIBUTOR,
        "kubelighthouse:resource-policy-contributor",
        RoleClass::WritesOnly(&[
            ("", Some(&["limitranges", "resourcequotas"])),
            ("networking.k8s.io", Some(&["networkpolicies"])),
        ]),
    ),
    (
        VIRTUAL_MACHINE_CONTRIBUTOR,
        "kubelighthouse:virtual-machine-contributor",
        RoleClass::WritesOnly(&[
            ("", Some(&["pods", "replicationcontrollers"])),
            ("apps", Some(&["deployments", "replicasets", "statefulsets", "daemonsets"])),
            ("batch", Some(&["jobs", "cronjobs"])),
            ("autoscaling", Some(&["horizontalpodautoscalers"])),
        ]),
    ),
];

/// The documented class of the catalog role `name` with Azure GUID `guid`: by GUID first,
/// then by the chart's ClusterRole name; Kubernetes' `view` is read-only as Reader is.
pub fn class_of(name: &str, guid: Option<&Guid>) -> RoleClass {
    if let Some((_, _, class)) = CLASSES.iter().find(|(g, _, _)| guid.is_some_and(|guid| guid.as_str() == *g)) {
        return *class;
    }
    if name == "view" {
        return RoleClass::ReadOnly;
    }
    CLASSES.iter().find(|(_, n, _)| *n == name).map_or(RoleClass::Unrestricted, |(_, _, class)| *class)
}

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
    /// The verdict on `rules` as a role of its documented class ([`class_of`]), judged once
    /// per change of the role rather than on every reconcile of every delegation that names it.
    pub classification: Classification,
    /// The ClusterRole's `creationTimestamp`: of several claimants of one GUID or name, the
    /// oldest keeps it ([`Catalog::lookup`]).
    pub created: Option<Timestamp>,
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
        let guid = annotation(keys::ROLE_DEFINITION_ID).as_deref().and_then(Guid::parse);
        Some(CatalogRole {
            classification: classify_as(&rules, class_of(&name, guid.as_ref())),
            name,
            guid,
            display_name: annotation(keys::ROLE_DISPLAY_NAME),
            rules,
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
        })
    }

    fn has_guid(&self, guid: &str) -> bool {
        self.guid.as_ref().is_some_and(|g| g.as_str() == guid)
    }

    /// Whether `id` (trimmed) names this role: as its GUID when `id` is a GUID, otherwise as
    /// its ClusterRole name or (in any ASCII case) its display name.
    fn answers_to(&self, id: &str) -> bool {
        match Guid::parse(id) {
            Some(guid) => self.has_guid(guid.as_str()),
            None => self.name == id || self.display_name.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(id)),
        }
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

    /// Every catalog role that `id` names (by GUID, ClusterRole name or display name), oldest
    /// first (by `creationTimestamp`, then name). More than one is a conflict: see
    /// [`Catalog::lookup`] and [`Catalog::conflict`].
    pub fn claimants(&self, id: &str) -> Vec<&CatalogRole> {
        let id = id.trim();
        let mut found: Vec<&CatalogRole> = self.roles.iter().filter(|r| r.answers_to(id)).collect();
        found.sort_by(|a, b| (a.created.is_none(), a.created, &a.name).cmp(&(b.created.is_none(), b.created, &b.name)));
        found
    }

    /// Resolves a GUID (by annotation), a ClusterRole name, or an Azure display name. When
    /// several ClusterRoles answer to it (a second one claiming a GUID or a display name), the
    /// oldest keeps it, so a newcomer never takes over what existing delegations grant; new
    /// delegations refuse such a name ([`Catalog::conflict`]). Owner wins over any claimant.
    pub fn lookup(&self, id: &str) -> Lookup<'_> {
        if Guid::parse(id.trim()).is_some_and(|g| g.as_str() == OWNER) {
            return Lookup::Owner;
        }
        let claimants = self.claimants(id);
        if claimants.iter().any(|r| r.is_owner()) {
            return Lookup::Owner;
        }
        claimants.first().map_or(Lookup::NotInCatalog, |role| Lookup::Found(role))
    }

    /// The ClusterRoles, oldest first, when more than one answers to `id`; None when `id`
    /// names one role or none.
    pub fn conflict(&self, id: &str) -> Option<Vec<String>> {
        let claimants = self.claimants(id);
        (claimants.len() > 1).then(|| claimants.iter().map(|r| r.name.clone()).collect())
    }

    /// Every GUID and display name more than one ClusterRole answers to, with the claimants
    /// oldest first: what the controller reports when the catalog changes.
    pub fn conflicts(&self) -> Vec<(String, Vec<String>)> {
        let mut keys: Vec<String> = self
            .roles
            .iter()
            .flat_map(|r| r.guid.iter().map(ToString::to_string).chain(r.display_name.iter().map(|d| d.to_lowercase())))
            .collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().filter_map(|key| self.conflict(&key).map(|names| (key, names))).collect()
    }
}

/// Test vocabulary for catalog roles, shared with the controller's tests (which enable this
/// crate's `test-support` feature): a catalog ClusterRole as the chart ships one.
#[cfg(any(test, feature = "test-support"))]
pub mod test_support {
    use std::collections::BTreeMap;

    use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::model::keys;

    /// Reader's role definition GUID.
    pub const READER: &str = super::READER;

    /// A catalog ClusterRole named `name`, labelled built-in, with the role definition GUID
    /// and display name annotations when given, and `rules`.
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
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub use super::test_support::{catalog_cluster_role, READER};
    use super::*;
    use crate::model::rules::classify;

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

    #[test]
    fn each_shipped_role_has_its_documented_class_by_guid_or_name() {
        let guid = |g: &str| Guid::parse(g);
        assert_eq!(class_of("anything", guid(READER).as_ref()), RoleClass::ReadOnly);
        assert_eq!(class_of("kubelighthouse:reader", None), RoleClass::ReadOnly);
        assert_eq!(class_of("view", None), RoleClass::ReadOnly);
        assert_eq!(class_of("x", guid(REGISTRATION_ASSIGNMENT_DELETE).as_ref()), RoleClass::AssignmentDelete);
        for g in [LOG_ANALYTICS_CONTRIBUTOR, RESOURCE_POLICY_CONTRIBUTOR, VIRTUAL_MACHINE_CONTRIBUTOR] {
            assert!(matches!(class_of("x", guid(g).as_ref()), RoleClass::WritesOnly(_)), "{g}");
        }
        for name in ["kubelighthouse:contributor", "edit", "admin", "cluster-admin", "my-role"] {
            assert_eq!(class_of(name, None), RoleClass::Unrestricted, "{name}");
        }
        // A role's GUID decides over its name: `view` claiming the Delete role's GUID is held
        // to the Delete role's class.
        assert_eq!(class_of("view", guid(REGISTRATION_ASSIGNMENT_DELETE).as_ref()), RoleClass::AssignmentDelete);
    }

    #[test]
    fn the_oldest_claimant_of_a_guid_keeps_it() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let at = |s: i64| Some(Time(Timestamp::from_second(1_700_000_000 + s).expect("time")));
        let mut original = catalog_cluster_role("kubelighthouse:reader", Some(READER), Some("Reader"), vec![]);
        original.metadata.creation_timestamp = at(0);
        let mut newcomer = catalog_cluster_role("aaa", Some(READER), None, vec![]);
        newcomer.metadata.creation_timestamp = at(10);
        let c = Catalog::from_cluster_roles(&[newcomer, original]);
        assert!(matches!(c.lookup(READER), Lookup::Found(r) if r.name == "kubelighthouse:reader"));
        assert_eq!(c.conflict(READER), Some(vec!["kubelighthouse:reader".to_string(), "aaa".to_string()]));
        assert_eq!(c.conflict("Reader"), None, "only one role has the display name");
        assert_eq!(c.conflict("aaa"), None);
        assert_eq!(c.conflicts(), [(READER.to_string(), vec!["kubelighthouse:reader".to_string(), "aaa".to_string()])]);
    }
}
