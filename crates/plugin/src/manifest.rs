//! Manifests from command-line flags, pure: `definition create` and `assignment create`
//! (parity with `az managedservices definition|assignment create`, SPEC §11).
//!
//! An authorization is given as `--authorization principalId=GUID,role=ROLE[,principalType=T]
//! [,displayName=NAME][,delegatedRoles=ROLE;ROLE]`; an eligible one as `--eligible
//! principalId=GUID,role=ROLE[,displayName=NAME][,mfa=Azure|None][,maxDuration=PT4H]
//! [,approvers=GUID[:NAME];GUID]`. Keys are case-insensitive and Azure's long names work too
//! (`roleDefinitionId`, `principalIdDisplayName`, `delegatedRoleDefinitionIds`,
//! `maximumActivationDuration`, `multiFactorAuthProvider`, `managedByTenantApprovers`). A value
//! holding a comma is double-quoted. Roles are resolved through the role catalog the chart
//! ships (or the cluster's) by display name, ClusterRole name or GUID, and written as the GUID
//! when they have one, as Azure's templates do.

use kube::api::ObjectMeta;
use thiserror::Error;

use kube_lighthouse_core::api::{
    Authorization, DefinitionRef, EligibleApprover, EligibleAuthorization, JustInTimeAccessPolicy,
    MultiFactorAuthProvider, Plan, PrincipalType, RegistrationAssignment, RegistrationAssignmentSpec,
    RegistrationDefinition, RegistrationDefinitionSpec,
};
use kube_lighthouse_core::model::catalog::{Catalog, Lookup};
use kube_lighthouse_core::model::tenant::Guid;

/// The role catalog the Helm chart installs (`charts/kube-lighthouse/files/catalog.yaml`),
/// built in so roles resolve by name without a cluster (`--dry-run=client`) and for callers
/// who may not read ClusterRoles.
pub const SHIPPED_CATALOG: &str = include_str!("../../../charts/kube-lighthouse/files/catalog.yaml");

/// The shipped catalog as a [`Catalog`] (plus Kubernetes' bootstrap roles by name).
pub fn shipped_catalog() -> Catalog {
    let mut roles: Vec<k8s_openapi::api::rbac::v1::ClusterRole> = Vec::new();
    for document in serde_yaml::Deserializer::from_str(SHIPPED_CATALOG) {
        if let Ok(role) = serde::Deserialize::deserialize(document) {
            roles.push(role);
        }
    }
    Catalog::from_cluster_roles(&roles)
}

/// A flag that does not describe an authorization.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FlagError {
    /// A `key=value` pair without `=`.
    #[error("{flag}: {part:?} is not key=value")]
    NotKeyValue {
        /// The flag, such as `--authorization`.
        flag: &'static str,
        /// The comma-separated part without `=`.
        part: String,
    },
    /// A key this flag does not know.
    #[error("{flag}: unknown key {key:?} (known: {known})")]
    UnknownKey {
        /// The flag, such as `--authorization`.
        flag: &'static str,
        /// The key, lower-cased.
        key: String,
        /// The keys this flag takes, comma-separated.
        known: &'static str,
    },
    /// A required key is missing.
    #[error("{flag}: {key} is required")]
    Missing {
        /// The flag, such as `--authorization`.
        flag: &'static str,
        /// The missing key, or what is missing.
        key: &'static str,
    },
    /// A value that is not allowed.
    #[error("{flag}: {message}")]
    Invalid {
        /// The flag, such as `--authorization`.
        flag: &'static str,
        /// What is wrong, for a person.
        message: String,
    },
    /// An unterminated double quote.
    #[error("{flag}: unterminated quote in {value:?}")]
    Quote {
        /// The flag, such as `--authorization`.
        flag: &'static str,
        /// The whole flag value.
        value: String,
    },
}

/// Splits `a=1,b="x, y"` into ordered (key, value) pairs, keys lower-cased.
fn pairs(flag: &'static str, spec: &str) -> Result<Vec<(String, String)>, FlagError> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in spec.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return Err(FlagError::Quote { flag, value: spec.to_string() });
    }
    parts.push(current);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_ascii_lowercase(), v.trim().to_string())),
            None => Err(FlagError::NotKeyValue { flag, part: p }),
        })
        .collect()
}

/// A role as the definition names it: the catalog GUID when the role has one, else the
/// ClusterRole name; anything the catalog does not hold is kept as written (the controller
/// and the webhook judge it: SPEC §3).
pub fn resolve_role(catalog: &Catalog, role: &str) -> String {
    match catalog.lookup(role) {
        Lookup::Found(found) => found.guid.as_ref().map_or_else(|| found.name.clone(), |g| g.to_string()),
        Lookup::Owner | Lookup::NotInCatalog => role.trim().to_string(),
    }
}

fn principal_type(flag: &'static str, value: &str) -> Result<PrincipalType, FlagError> {
    match value.to_ascii_lowercase().as_str() {
        "user" => Ok(PrincipalType::User),
        "group" => Ok(PrincipalType::Group),
        "serviceprincipal" => Ok(PrincipalType::ServicePrincipal),
        "serviceaccount" => Ok(PrincipalType::ServiceAccount),
        _ => Err(FlagError::Invalid {
            flag,
            message: format!("principalType {value:?} is not User, Group, ServicePrincipal or ServiceAccount"),
        }),
    }
}

fn list(value: &str) -> Vec<String> {
    value.split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

const AUTHORIZATION_KEYS: &str = "principalId, role, principalType, displayName, delegatedRoles";

/// Parses one `--authorization` flag.
///
/// # Errors
/// [`FlagError`] naming the key that is missing, unknown or invalid.
pub fn parse_authorization(spec: &str, catalog: &Catalog) -> Result<Authorization, FlagError> {
    const FLAG: &str = "--authorization";
    let mut auth = Authorization {
        principal_id: String::new(),
        principal_id_display_name: None,
        principal_type: None,
        role_definition_id: String::new(),
        delegated_role_definition_ids: vec![],
    };
    for (key, value) in pairs(FLAG, spec)? {
        match key.as_str() {
            "principalid" => auth.principal_id = value,
            "role" | "roledefinitionid" => auth.role_definition_id = resolve_role(catalog, &value),
            "principaltype" => auth.principal_type = Some(principal_type(FLAG, &value)?),
            "displayname" | "principaliddisplayname" => auth.principal_id_display_name = Some(value),
            "delegatedroles" | "delegatedroledefinitionids" => {
                auth.delegated_role_definition_ids = list(&value).iter().map(|r| resolve_role(catalog, r)).collect();
            }
            _ => return Err(FlagError::UnknownKey { flag: FLAG, key, known: AUTHORIZATION_KEYS }),
        }
    }
    if auth.principal_id.is_empty() {
        return Err(FlagError::Missing { flag: FLAG, key: "principalId" });
    }
    if auth.role_definition_id.is_empty() {
        return Err(FlagError::Missing { flag: FLAG, key: "role" });
    }
    Ok(auth)
}

const ELIGIBLE_KEYS: &str = "principalId, role, principalType, displayName, mfa, maxDuration, approvers";

/// Parses one `--eligible` flag. Approvers are `GUID` or `GUID:Display Name`, `;`-separated.
///
/// # Errors
/// [`FlagError`] naming the key that is missing, unknown or invalid.
pub fn parse_eligible(spec: &str, catalog: &Catalog) -> Result<EligibleAuthorization, FlagError> {
    const FLAG: &str = "--eligible";
    let mut principal_id = String::new();
    let mut display = None;
    let mut role = String::new();
    let mut mfa = None;
    let mut duration = None;
    let mut approvers = Vec::new();
    let mut kind = None;
    for (key, value) in pairs(FLAG, spec)? {
        match key.as_str() {
            "principalid" => principal_id = value,
            "principaltype" => kind = Some(principal_type(FLAG, &value)?),
            "role" | "roledefinitionid" => role = resolve_role(catalog, &value),
            "displayname" | "principaliddisplayname" => display = Some(value),
            "mfa" | "multifactorauthprovider" => {
                mfa = Some(match value.to_ascii_lowercase().as_str() {
                    "azure" => MultiFactorAuthProvider::Azure,
                    "none" => MultiFactorAuthProvider::None,
                    _ => {
                        return Err(FlagError::Invalid {
                            flag: FLAG,
                            message: format!("mfa {value:?} is not Azure or None"),
                        })
                    }
                });
            }
            "maxduration" | "maximumactivationduration" => duration = Some(value),
            "approvers" | "managedbytenantapprovers" => {
                approvers = list(&value)
                    .into_iter()
                    .map(|a| match a.split_once(':') {
                        Some((id, name)) => EligibleApprover {
                            principal_id: id.trim().to_string(),
                            principal_id_display_name: Some(name.trim().to_string()),
                        },
                        None => EligibleApprover { principal_id: a, principal_id_display_name: None },
                    })
                    .collect();
            }
            _ => return Err(FlagError::UnknownKey { flag: FLAG, key, known: ELIGIBLE_KEYS }),
        }
    }
    if principal_id.is_empty() {
        return Err(FlagError::Missing { flag: FLAG, key: "principalId" });
    }
    if role.is_empty() {
        return Err(FlagError::Missing { flag: FLAG, key: "role" });
    }
    let policy = (mfa.is_some() || duration.is_some() || !approvers.is_empty()).then(|| JustInTimeAccessPolicy {
        multi_factor_auth_provider: mfa.unwrap_or(MultiFactorAuthProvider::None),
        maximum_activation_duration: duration,
        managed_by_tenant_approvers: approvers,
    });
    Ok(EligibleAuthorization {
        principal_id,
        principal_id_display_name: display,
        principal_type: kind,
        role_definition_id: role,
        just_in_time_access_policy: policy,
    })
}

/// Everything `definition create` takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefinitionInput {
    /// Object name.
    pub name: String,
    /// The subscription namespace.
    pub namespace: String,
    /// `registrationDefinitionName` (defaults to the object name).
    pub display_name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `managedByTenantId`.
    pub managed_by_tenant_id: String,
    /// Raw `--authorization` flags.
    pub authorizations: Vec<String>,
    /// Raw `--eligible` flags.
    pub eligible: Vec<String>,
    /// az's single-authorization form: `--principal-id` with `--role-definition-id`.
    pub principal_id: Option<String>,
    /// See `principal_id`.
    pub role_definition_id: Option<String>,
    /// Plan: name, publisher, product, version (all four or none).
    pub plan: [Option<String>; 4],
}

/// The `RegistrationDefinition` of `input`.
///
/// # Errors
/// [`FlagError`] for a bad flag, a managing tenant that is not a GUID, no authorization, or an
/// incomplete plan. Everything else (roles, principals, tenants) is judged by the cluster
/// (SPEC §3), whose rejection names the rule.
pub fn definition(input: &DefinitionInput, catalog: &Catalog) -> Result<RegistrationDefinition, FlagError> {
    let tenant = Guid::parse(&input.managed_by_tenant_id).ok_or_else(|| FlagError::Invalid {
        flag: "--tenant-id",
        message: format!("{:?} is not a GUID (the managing tenant's ID)", input.managed_by_tenant_id),
    })?;
    let mut authorizations =
        input.authorizations.iter().map(|a| parse_authorization(a, catalog)).collect::<Result<Vec<_>, _>>()?;
    match (&input.principal_id, &input.role_definition_id) {
        (Some(principal), Some(role)) => authorizations.push(Authorization {
            principal_id: principal.clone(),
            principal_id_display_name: None,
            principal_type: None,
            role_definition_id: resolve_role(catalog, role),
            delegated_role_definition_ids: vec![],
        }),
        (None, None) => {}
        _ => {
            return Err(FlagError::Invalid {
                flag: "--principal-id",
                message: "--principal-id and --role-definition-id go together".into(),
            })
        }
    }
    if authorizations.is_empty() {
        return Err(FlagError::Missing { flag: "--authorization", key: "at least one authorization" });
    }
    let eligible = input.eligible.iter().map(|e| parse_eligible(e, catalog)).collect::<Result<Vec<_>, _>>()?;
    let plan = match &input.plan {
        [Some(name), Some(publisher), Some(product), Some(version)] => Some(Plan {
            name: name.clone(),
            publisher: publisher.clone(),
            product: product.clone(),
            version: version.clone(),
        }),
        [None, None, None, None] => None,
        _ => {
            return Err(FlagError::Invalid {
                flag: "--plan-name",
                message: "a plan needs --plan-name, --plan-publisher, --plan-product and --plan-version".into(),
            })
        }
    };
    let spec = RegistrationDefinitionSpec {
        registration_definition_name: input.display_name.clone().unwrap_or_else(|| input.name.clone()),
        description: input.description.clone(),
        managed_by_tenant_id: tenant.to_string(),
        authorizations,
        eligible_authorizations: eligible,
        plan,
    };
    Ok(RegistrationDefinition {
        metadata: ObjectMeta {
            name: Some(input.name.clone()),
            namespace: Some(input.namespace.clone()),
            ..Default::default()
        },
        spec,
        status: None,
    })
}

/// The `RegistrationAssignment` named `name` in `namespace` assigning `definition` (resolved
/// in the subscription namespace of that scope, SPEC §1).
pub fn assignment(name: &str, namespace: &str, definition: &str) -> RegistrationAssignment {
    RegistrationAssignment {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(namespace.into()), ..Default::default() },
        spec: RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: definition.into() } },
        status: None,
    }
}

/// A manifest for printing or server-side apply: `apiVersion` and `kind` first, then the
/// object, without status.
///
/// # Errors
/// [`FlagError::Invalid`] when the object does not serialize (never for these types).
pub fn manifest<K: kube::Resource<DynamicType = ()> + serde::Serialize>(
    object: &K,
) -> Result<serde_json::Value, FlagError> {
    let mut value =
        serde_json::to_value(object).map_err(|e| FlagError::Invalid { flag: "manifest", message: e.to_string() })?;
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        let mut ordered = serde_json::Map::new();
        ordered.insert("apiVersion".into(), K::api_version(&()).into_owned().into());
        ordered.insert("kind".into(), K::kind(&()).into_owned().into());
        for (k, v) in std::mem::take(map) {
            if k != "apiVersion" && k != "kind" {
                ordered.insert(k, v);
            }
        }
        *map = ordered;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_lighthouse_core::model::catalog::USER_ACCESS_ADMINISTRATOR;

    const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
    const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const P1: &str = "00000000-0000-0000-0000-0000000000a1";

    #[test]
    fn the_shipped_catalog_holds_the_built_in_roles() {
        let c = shipped_catalog();
        for (name, guid) in
            [("Reader", READER), ("Contributor", CONTRIBUTOR), ("User Access Administrator", USER_ACCESS_ADMINISTRATOR)]
        {
            assert_eq!(resolve_role(&c, name), guid, "{name}");
        }
        assert_eq!(resolve_role(&c, "kubelighthouse:reader"), READER);
        assert_eq!(resolve_role(&c, "reader"), READER);
        assert_eq!(resolve_role(&c, READER), READER);
        assert_eq!(resolve_role(&c, "view"), "view", "bootstrap roles are named, they have no GUID");
        assert_eq!(resolve_role(&c, "my-custom-role"), "my-custom-role", "kept for the cluster to reject");
    }

    #[test]
    fn authorizations_parse_every_key() {
        let c = shipped_catalog();
        let a = parse_authorization(
            &format!("principalId={P1},role=Reader,principalType=group,displayName=\"Contoso, Engineers\""),
            &c,
        )
        .expect("valid");
        assert_eq!(a.principal_id, P1);
        assert_eq!(a.role_definition_id, READER);
        assert_eq!(a.principal_type, Some(PrincipalType::Group));
        assert_eq!(a.principal_id_display_name.as_deref(), Some("Contoso, Engineers"));
        let uaa = parse_authorization(
            &format!("principalId={P1},roleDefinitionId=User Access Administrator,delegatedRoles=Reader;Contributor"),
            &c,
        )
        .expect("valid");
        assert_eq!(uaa.role_definition_id, USER_ACCESS_ADMINISTRATOR);
        assert_eq!(uaa.delegated_role_definition_ids, [READER, CONTRIBUTOR]);
    }

    #[test]
    fn bad_authorization_flags_say_what_is_wrong() {
        let c = shipped_catalog();
        assert_eq!(
            parse_authorization("role=Reader", &c),
            Err(FlagError::Missing { flag: "--authorization", key: "principalId" })
        );
        assert_eq!(
            parse_authorization(&format!("principalId={P1}"), &c),
            Err(FlagError::Missing { flag: "--authorization", key: "role" })
        );
        assert!(matches!(parse_authorization("principalId", &c), Err(FlagError::NotKeyValue { .. })));
        assert!(matches!(parse_authorization("colour=red", &c), Err(FlagError::UnknownKey { .. })));
        assert!(matches!(
            parse_authorization(&format!("principalId={P1},role=Reader,principalType=Robot"), &c),
            Err(FlagError::Invalid { .. })
        ));
        assert!(matches!(parse_authorization("displayName=\"open", &c), Err(FlagError::Quote { .. })));
    }

    #[test]
    fn eligible_flags_build_a_just_in_time_policy() {
        let c = shipped_catalog();
        let e = parse_eligible(
            &format!("principalId={P1},role=Contributor,mfa=Azure,maxDuration=PT4H,approvers=00000000-0000-0000-0000-0000000000d4:Contoso Leads;00000000-0000-0000-0000-0000000000d5"),
            &c,
        )
        .expect("valid");
        assert_eq!(e.role_definition_id, CONTRIBUTOR);
        let policy = e.just_in_time_access_policy.expect("policy");
        assert_eq!(policy.multi_factor_auth_provider, MultiFactorAuthProvider::Azure);
        assert_eq!(policy.maximum_activation_duration.as_deref(), Some("PT4H"));
        assert_eq!(policy.managed_by_tenant_approvers.len(), 2);
        assert_eq!(policy.managed_by_tenant_approvers[0].principal_id_display_name.as_deref(), Some("Contoso Leads"));
        assert_eq!(policy.managed_by_tenant_approvers[1].principal_id_display_name, None);
        let plain = parse_eligible(&format!("principalId={P1},role=Reader"), &c).expect("valid");
        assert_eq!(plain.just_in_time_access_policy, None);
        assert!(matches!(
            parse_eligible(&format!("principalId={P1},role=Reader,mfa=sms"), &c),
            Err(FlagError::Invalid { .. })
        ));
    }

    fn input() -> DefinitionInput {
        DefinitionInput {
            name: "contoso-msp".into(),
            namespace: "customer-a".into(),
            display_name: Some("Contoso Managed Services".into()),
            description: Some("Operations by Contoso".into()),
            managed_by_tenant_id: TENANT.to_uppercase(),
            authorizations: vec![
                format!("principalId={P1},role=Reader,principalType=Group,displayName=Contoso Engineers"),
                format!("principalId=00000000-0000-0000-0000-0000000000b2,role={CONTRIBUTOR},principalType=User"),
            ],
            eligible: vec![format!(
                "principalId=00000000-0000-0000-0000-0000000000c3,role=Contributor,maxDuration=PT2H"
            )],
            ..Default::default()
        }
    }

    #[test]
    fn a_dry_run_manifest_round_trips_into_our_types() {
        let def = definition(&input(), &shipped_catalog()).expect("valid");
        let yaml = crate::output::to_yaml(&manifest(&def).expect("manifest")).expect("yaml");
        assert!(
            yaml.starts_with("apiVersion: managedservices.kubelighthouse.io/v1alpha1\nkind: RegistrationDefinition\n"),
            "{yaml}"
        );
        assert!(!yaml.contains("status"));
        let back: RegistrationDefinition = serde_yaml::from_str(&yaml).expect("deserializes");
        assert_eq!(back.spec, def.spec);
        assert_eq!(back.metadata.namespace.as_deref(), Some("customer-a"));
        assert_eq!(back.spec.managed_by_tenant_id, TENANT, "canonical GUID");
        assert_eq!(back.spec.authorizations.len(), 2);
        assert_eq!(back.spec.eligible_authorizations[0].role_definition_id, CONTRIBUTOR);

        let a = assignment("contoso-msp", "customer-a-web", "contoso-msp");
        let yaml = crate::output::to_yaml(&manifest(&a).expect("manifest")).expect("yaml");
        let back: RegistrationAssignment = serde_yaml::from_str(&yaml).expect("deserializes");
        assert_eq!(back.spec.registration_definition_ref.name, "contoso-msp");
        assert_eq!(back.metadata.namespace.as_deref(), Some("customer-a-web"));
    }

    #[test]
    fn the_az_single_authorization_form_and_plans_work() {
        let mut i = input();
        i.authorizations.clear();
        i.eligible.clear();
        i.principal_id = Some(P1.into());
        i.role_definition_id = Some("Reader".into());
        i.plan = [Some("gold".into()), Some("contoso".into()), Some("k8s".into()), Some("1.0".into())];
        let def = definition(&i, &shipped_catalog()).expect("valid");
        assert_eq!(def.spec.authorizations[0].role_definition_id, READER);
        assert_eq!(def.spec.plan.as_ref().map(|p| p.name.as_str()), Some("gold"));
        i.plan[3] = None;
        assert!(definition(&i, &shipped_catalog()).is_err(), "incomplete plan");
    }

    #[test]
    fn a_definition_needs_a_managing_tenant_guid_and_an_authorization() {
        let mut i = input();
        i.managed_by_tenant_id = "contoso".into();
        assert!(matches!(definition(&i, &shipped_catalog()), Err(FlagError::Invalid { flag: "--tenant-id", .. })));
        let mut i = input();
        i.authorizations.clear();
        assert!(matches!(definition(&i, &shipped_catalog()), Err(FlagError::Missing { .. })));
        let mut i = input();
        i.principal_id = Some(P1.into());
        assert!(definition(&i, &shipped_catalog()).is_err(), "--principal-id without a role");
        let mut i = input();
        i.display_name = None;
        assert_eq!(definition(&i, &shipped_catalog()).expect("valid").spec.registration_definition_name, "contoso-msp");
    }
}
