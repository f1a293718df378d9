//! Identity projection (SPEC §2): (managing tenant, principal) → RBAC subjects.
//!
//! The cluster's authenticator (one JWT issuer per managing tenant, with claim prefixes)
//! decides the user and group names a managing-tenant identity arrives with; the templates
//! here must produce the same names. No user object is created for anyone (seed 003).

use k8s_openapi::api::rbac::v1::Subject;

use crate::api::PrincipalType;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Name templates with the placeholders `{tenantId}` and `{principalId}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityTemplates {
    /// The template of User subject names.
    pub user: String,
    /// The template of Group subject names.
    pub group: String,
}

/// The default projection of both users and groups: `{tenantId}:{principalId}`.
pub const DEFAULT_TEMPLATE: &str = "{tenantId}:{principalId}";

impl Default for IdentityTemplates {
    fn default() -> Self {
        IdentityTemplates { user: DEFAULT_TEMPLATE.into(), group: DEFAULT_TEMPLATE.into() }
    }
}

impl IdentityTemplates {
    /// A template must name the principal; without the tenant, two tenants' principals could
    /// collide, so both placeholders are required.
    ///
    /// # Errors
    /// A message naming the placeholder the template lacks.
    pub fn check(template: &str) -> Result<(), String> {
        for placeholder in ["{tenantId}", "{principalId}"] {
            if !template.contains(placeholder) {
                return Err(format!("identity template {template:?} must contain {placeholder}"));
            }
        }
        Ok(())
    }

    /// The User subject name of `principal` of `tenant`.
    pub fn user_name(&self, tenant: &str, principal: &str) -> String {
        render(&self.user, tenant, principal)
    }

    /// The Group subject name of `principal` of `tenant`.
    pub fn group_name(&self, tenant: &str, principal: &str) -> String {
        render(&self.group, tenant, principal)
    }

    /// The subjects an authorization binds. `principal` is a canonical GUID, or for a
    /// ServiceAccount `namespace/name` (already validated).
    pub fn subjects(&self, tenant: &str, principal: &str, kind: Option<PrincipalType>) -> Vec<Subject> {
        match kind {
            None => vec![user(self.user_name(tenant, principal)), group(self.group_name(tenant, principal))],
            Some(PrincipalType::User | PrincipalType::ServicePrincipal) => {
                vec![user(self.user_name(tenant, principal))]
            }
            Some(PrincipalType::Group) => vec![group(self.group_name(tenant, principal))],
            Some(PrincipalType::ServiceAccount) => match principal.split_once('/') {
                Some((namespace, name)) => vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: name.into(),
                    namespace: Some(namespace.into()),
                    api_group: Some(String::new()),
                }],
                None => Vec::new(),
            },
        }
    }
}

fn render(template: &str, tenant: &str, principal: &str) -> String {
    template.replace("{tenantId}", tenant).replace("{principalId}", principal)
}

/// An RBAC User subject.
pub fn user(name: impl Into<String>) -> Subject {
    Subject { kind: "User".into(), name: name.into(), namespace: None, api_group: Some(RBAC_GROUP.into()) }
}

fn group(name: String) -> Subject {
    Subject { kind: "Group".into(), name, namespace: None, api_group: Some(RBAC_GROUP.into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const P: &str = "00000000-0000-0000-0000-0000000000a1";

    fn kinds_and_names(subjects: &[Subject]) -> Vec<(String, String)> {
        subjects.iter().map(|s| (s.kind.clone(), s.name.clone())).collect()
    }

    #[test]
    fn untyped_principal_binds_user_and_group() {
        let s = IdentityTemplates::default().subjects(T, P, None);
        let name = format!("{T}:{P}");
        assert_eq!(kinds_and_names(&s), [("User".into(), name.clone()), ("Group".into(), name)]);
    }

    #[test]
    fn typed_principals_bind_one_subject() {
        let t = IdentityTemplates::default();
        assert_eq!(t.subjects(T, P, Some(PrincipalType::User))[0].kind, "User");
        assert_eq!(t.subjects(T, P, Some(PrincipalType::ServicePrincipal))[0].kind, "User");
        let g = t.subjects(T, P, Some(PrincipalType::Group));
        assert_eq!(kinds_and_names(&g), [("Group".into(), format!("{T}:{P}"))]);
    }

    #[test]
    fn service_account_is_bound_as_itself() {
        let s =
            IdentityTemplates::default().subjects(T, "msp-automation/deployer", Some(PrincipalType::ServiceAccount));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, "ServiceAccount");
        assert_eq!(s[0].name, "deployer");
        assert_eq!(s[0].namespace.as_deref(), Some("msp-automation"));
    }

    #[test]
    fn custom_templates_apply_per_kind() {
        let t = IdentityTemplates {
            user: "oidc-{tenantId}:{principalId}".into(),
            group: "oidc-{tenantId}:groups:{principalId}".into(),
        };
        let s = t.subjects(T, P, None);
        assert_eq!(s[0].name, format!("oidc-{T}:{P}"));
        assert_eq!(s[1].name, format!("oidc-{T}:groups:{P}"));
    }

    #[test]
    fn templates_must_name_tenant_and_principal() {
        assert!(IdentityTemplates::check(DEFAULT_TEMPLATE).is_ok());
        assert!(IdentityTemplates::check("{principalId}").is_err());
        assert!(IdentityTemplates::check("user-{tenantId}").is_err());
    }
}
