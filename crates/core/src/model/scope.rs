//! Subscriptions and resource groups, read from namespace labels (SPEC §1).
//!
//! A namespace labelled `kubelighthouse.io/tenant-id` is a subscription; one labelled
//! `kubelighthouse.io/subscription: <sub>` (and not itself a subscription) is a resource group
//! of `<sub>` and inherits its home tenant. Anything else cannot be delegated.

use std::collections::BTreeMap;

use thiserror::Error;

use super::keys;
use super::tenant::Guid;

/// The label the API server sets to every namespace's name.
const METADATA_NAME: &str = "kubernetes.io/metadata.name";

/// What the model needs to know of a namespace: its two labels and whether it is going away.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The `kubelighthouse.io/tenant-id` label: set on a subscription, its home tenant.
    pub tenant_id: Option<String>,
    /// The `kubelighthouse.io/subscription` label: set on a resource group, its subscription
    /// namespace.
    pub subscription: Option<String>,
    /// Terminating namespaces accept no new objects; they are left out of scopes.
    pub terminating: bool,
    /// The other labels of a subscription namespace (empty for any other): with the tenancy
    /// labels and `kubernetes.io/metadata.name`, which are not kept twice, what guardrails'
    /// namespace selectors match ([`NamespaceInfo::selector_labels`], docs/guardrails.md).
    /// Only subscriptions hold definitions, so only theirs are kept; an empty map allocates
    /// nothing, so a namespace with no other label costs nothing more.
    pub labels: BTreeMap<String, String>,
}

impl NamespaceInfo {
    /// The labels that matter, read from a namespace's `labels`.
    pub fn from_labels(labels: &BTreeMap<String, String>, terminating: bool) -> Self {
        let tenant_id = labels.get(keys::TENANT_ID).cloned();
        let derived = [keys::TENANT_ID, keys::SUBSCRIPTION, METADATA_NAME];
        let others = labels.iter().filter(|(k, _)| !derived.contains(&k.as_str()));
        NamespaceInfo {
            labels: if tenant_id.is_some() {
                others.map(|(k, v)| (k.clone(), v.clone())).collect()
            } else {
                BTreeMap::new()
            },
            tenant_id,
            subscription: labels.get(keys::SUBSCRIPTION).cloned(),
            terminating,
        }
    }

    /// Every label of the namespace `name` described by this info, as a label selector sees
    /// it: the labels kept, the tenancy labels, and `kubernetes.io/metadata.name` (which the
    /// API server sets to the name on every namespace).
    pub fn selector_labels(&self, name: &str) -> BTreeMap<String, String> {
        let mut all = self.labels.clone();
        all.insert(METADATA_NAME.to_string(), name.to_string());
        if let Some(tenant) = &self.tenant_id {
            all.insert(keys::TENANT_ID.to_string(), tenant.clone());
        }
        if let Some(subscription) = &self.subscription {
            all.insert(keys::SUBSCRIPTION.to_string(), subscription.clone());
        }
        all
    }

    /// The subscription this namespace is a resource group of, if it is one.
    pub fn parent_subscription(&self) -> Option<&str> {
        match (&self.tenant_id, &self.subscription) {
            (None, Some(sub)) => Some(sub),
            _ => None,
        }
    }
}

/// Read access to the cluster's namespaces; the controller backs it with a watch cache.
pub trait Namespaces {
    /// The namespace `name`, or None when it does not exist.
    fn get(&self, name: &str) -> Option<NamespaceInfo>;
    /// Names of the namespaces that are resource groups of `subscription`, sorted.
    fn resource_groups_of(&self, subscription: &str) -> Vec<String>;
}

impl Namespaces for BTreeMap<String, NamespaceInfo> {
    fn get(&self, name: &str) -> Option<NamespaceInfo> {
        BTreeMap::get(self, name).cloned()
    }

    fn resource_groups_of(&self, subscription: &str) -> Vec<String> {
        self.iter()
            .filter(|(_, ns)| ns.parent_subscription() == Some(subscription))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Where an assignment applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The namespace the assignment lives in.
    pub namespace: String,
    /// The subscription namespace: the scope itself, or the parent of the resource group.
    pub subscription: String,
    /// Home tenant of the subscription: the customer.
    pub home_tenant: Guid,
    /// Every namespace the access applies to, sorted; the scope namespace first is not
    /// guaranteed. Terminating namespaces are left out.
    pub namespaces: Vec<String>,
}

impl Scope {
    /// Whether the assignment is at subscription scope (not a resource group).
    pub fn is_subscription(&self) -> bool {
        self.namespace == self.subscription
    }
}

/// Why a namespace cannot be a delegation scope.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ScopeError {
    /// The scope namespace does not exist.
    #[error("namespace {0} does not exist")]
    NamespaceNotFound(String),
    /// A namespace with neither label: neither a subscription nor a resource group (SPEC §1).
    #[error(
        "namespace {0} is neither a subscription (label kubelighthouse.io/tenant-id) nor a resource group (label kubelighthouse.io/subscription)"
    )]
    NotDelegable(String),
    /// A resource group whose subscription namespace does not exist or is not a subscription.
    #[error("namespace {namespace} names subscription {subscription}, which is not a namespace labelled kubelighthouse.io/tenant-id")]
    UnknownSubscription {
        /// The resource-group namespace.
        namespace: String,
        /// Its `kubelighthouse.io/subscription` label.
        subscription: String,
    },
    /// A subscription whose `kubelighthouse.io/tenant-id` is not a GUID.
    #[error("namespace {namespace} has label kubelighthouse.io/tenant-id={value:?}, which is not a GUID")]
    InvalidTenantLabel {
        /// The subscription namespace.
        namespace: String,
        /// The label value.
        value: String,
    },
}

/// Resolves the subscription and home tenant of `namespace`, whatever kind it is.
///
/// # Errors
/// [`ScopeError`] when the namespace is unknown or is neither a subscription nor a resource group of one.
pub fn subscription_of(namespace: &str, namespaces: &dyn Namespaces) -> Result<(String, Guid), ScopeError> {
    let info = namespaces.get(namespace).ok_or_else(|| ScopeError::NamespaceNotFound(namespace.to_string()))?;
    let subscription = match (&info.tenant_id, info.parent_subscription()) {
        (Some(_), _) => namespace.to_string(),
        (None, Some(sub)) => sub.to_string(),
        (None, None) => return Err(ScopeError::NotDelegable(namespace.to_string())),
    };
    let sub_info = namespaces.get(&subscription);
    let tenant = sub_info.as_ref().and_then(|s| s.tenant_id.clone()).ok_or_else(|| {
        ScopeError::UnknownSubscription { namespace: namespace.to_string(), subscription: subscription.clone() }
    })?;
    let home = Guid::parse(&tenant)
        .ok_or(ScopeError::InvalidTenantLabel { namespace: subscription.clone(), value: tenant })?;
    Ok((subscription, home))
}

/// The scope of an assignment living in `namespace` (SPEC §5): a subscription covers itself
/// and all its resource groups; a resource group covers itself.
///
/// # Errors
/// [`ScopeError`] when the namespace is not a valid scope (SPEC §1).
pub fn resolve(namespace: &str, namespaces: &dyn Namespaces) -> Result<Scope, ScopeError> {
    let (subscription, home_tenant) = subscription_of(namespace, namespaces)?;
    let mut members = vec![namespace.to_string()];
    if namespace == subscription {
        members.extend(namespaces.resource_groups_of(&subscription));
    }
    members.retain(|n| namespaces.get(n).is_some_and(|i| !i.terminating));
    members.sort();
    members.dedup();
    Ok(Scope { namespace: namespace.to_string(), subscription, home_tenant, namespaces: members })
}

/// Where an edit of the definition `definition` of subscription namespace `subscription`
/// takes effect (SPEC §3 rule 6, every namespace the delegation materializes): the
/// subscription itself, and the scope of every assignment that names the definition.
/// `assignments` are (namespace, `spec.registrationDefinitionRef.name`) of the assignments
/// of the subscription and its resource groups; one of another subscription, or whose scope
/// does not resolve, materializes nothing and adds nothing. An assignment at subscription
/// scope reaches every resource group of it. Sorted, without duplicates.
pub fn definition_reach<'a>(
    subscription: &str,
    definition: &str,
    assignments: impl IntoIterator<Item = (&'a str, &'a str)>,
    namespaces: &dyn Namespaces,
) -> Vec<String> {
    let mut reach = vec![subscription.to_string()];
    for (namespace, named) in assignments {
        if named != definition {
            continue;
        }
        match resolve(namespace, namespaces) {
            Ok(scope) if scope.subscription == subscription => reach.extend(scope.namespaces),
            _ => {}
        }
    }
    reach.sort();
    reach.dedup();
    reach
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const CUSTOMER: &str = "11111111-1111-1111-1111-111111111111";

    pub fn sub(tenant: &str) -> NamespaceInfo {
        NamespaceInfo { tenant_id: Some(tenant.into()), ..Default::default() }
    }

    pub fn rg(subscription: &str) -> NamespaceInfo {
        NamespaceInfo { subscription: Some(subscription.into()), ..Default::default() }
    }

    pub fn cluster() -> BTreeMap<String, NamespaceInfo> {
        BTreeMap::from([
            ("customer-a".to_string(), sub(CUSTOMER)),
            ("customer-a-web".to_string(), rg("customer-a")),
            ("customer-a-db".to_string(), rg("customer-a")),
            ("plain".to_string(), NamespaceInfo::default()),
            ("orphan-rg".to_string(), rg("nowhere")),
            ("bad-tenant".to_string(), sub("not-a-guid")),
        ])
    }

    #[test]
    fn subscription_scope_covers_its_resource_groups() {
        let scope = resolve("customer-a", &cluster()).expect("valid");
        assert!(scope.is_subscription());
        assert_eq!(scope.namespaces, ["customer-a", "customer-a-db", "customer-a-web"]);
        assert_eq!(scope.home_tenant.as_str(), CUSTOMER);
    }

    #[test]
    fn resource_group_scope_covers_itself_and_inherits_the_tenant() {
        let scope = resolve("customer-a-web", &cluster()).expect("valid");
        assert!(!scope.is_subscription());
        assert_eq!(scope.subscription, "customer-a");
        assert_eq!(scope.namespaces, ["customer-a-web"]);
        assert_eq!(scope.home_tenant.as_str(), CUSTOMER);
    }

    #[test]
    fn terminating_namespaces_are_left_out() {
        let mut c = cluster();
        c.get_mut("customer-a-db").expect("exists").terminating = true;
        assert_eq!(resolve("customer-a", &c).expect("valid").namespaces, ["customer-a", "customer-a-web"]);
    }

    #[test]
    fn tenant_label_wins_over_subscription_label() {
        let mut c = cluster();
        c.insert(
            "both".into(),
            NamespaceInfo {
                tenant_id: Some(CUSTOMER.into()),
                subscription: Some("customer-a".into()),
                terminating: false,
                labels: BTreeMap::new(),
            },
        );
        assert_eq!(resolve("both", &c).expect("valid").subscription, "both");
        assert!(!resolve("customer-a", &c).expect("valid").namespaces.contains(&"both".to_string()));
    }

    #[test]
    fn undelegable_namespaces_are_refused() {
        let c = cluster();
        assert_eq!(resolve("plain", &c), Err(ScopeError::NotDelegable("plain".into())));
        assert_eq!(resolve("missing", &c), Err(ScopeError::NamespaceNotFound("missing".into())));
        assert!(matches!(resolve("orphan-rg", &c), Err(ScopeError::UnknownSubscription { .. })));
        assert!(matches!(resolve("bad-tenant", &c), Err(ScopeError::InvalidTenantLabel { .. })));
    }

    #[test]
    fn a_definition_reaches_the_scope_of_every_assignment_of_it() {
        let c = cluster();
        let assignments = [
            ("customer-a-web", "offer"),
            ("customer-a-web", "another-offer"),
            ("plain", "offer"),
            ("orphan-rg", "offer"),
        ];
        assert_eq!(
            definition_reach("customer-a", "offer", assignments, &c),
            ["customer-a", "customer-a-web"],
            "a resource group assigned the definition is reached; other offers and invalid scopes are not"
        );
        let at_subscription = [("customer-a", "offer")];
        assert_eq!(
            definition_reach("customer-a", "offer", at_subscription, &c),
            ["customer-a", "customer-a-db", "customer-a-web"],
            "an assignment at subscription scope reaches every resource group"
        );
        assert_eq!(definition_reach("customer-a", "offer", [], &c), ["customer-a"], "unassigned: where it lives");
    }
}
