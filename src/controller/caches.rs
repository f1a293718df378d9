//! The watch caches the reconcilers and the webhook read (never a GET per reconcile, so an
//! idle cluster costs no API calls), and the secondary indexes that answer "who is where"
//! without a scan. The watches in [`super::triggers`] fill them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::catalog::CatalogCache;
use super::index::Index;
use super::materialized::MaterializedCache;
use crate::api::{
    ActivationReview, Guardrail, Onboarding, RegistrationAssignment, RegistrationDefinition, RoleActivation,
};
use crate::model::guardrail::Guardrails;
use crate::model::keys;
use crate::model::scope::{NamespaceInfo, Namespaces};

/// A namespace as the namespace cache keeps it: its name, what the model reads of its labels
/// (SPEC §1: `kubelighthouse.io/tenant-id`, `kubelighthouse.io/subscription`), whether it
/// is terminating, and the `kubelighthouse.io/managed-by-tenants` annotation (SPEC §7).
///
/// Not `PartialObjectMeta<Namespace>`: its label and annotation maps are `BTreeMap`s, and
/// one with a single entry allocates a whole node of eleven, some 640 bytes; a subscription
/// has both. At 10,000 subscriptions that was about 12 MiB (docs/benchmarks.md).
// `Deserialize` only because kube's runner asks it of the type it reconciles; the cache is
// filled from `PartialObjectMeta<Namespace>` by [`CachedNamespace::from_meta`], never parsed.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct CachedNamespace {
    /// The name only.
    pub metadata: ObjectMeta,
    /// Tenant, subscription and deletion.
    #[serde(skip)]
    pub info: NamespaceInfo,
    /// The `kubelighthouse.io/managed-by-tenants` annotation's value, if set.
    #[serde(skip)]
    pub managed_by_tenants: Option<String>,
    /// Of a subscription namespace only, every label, sorted by key: what an onboarding's
    /// selector matches ([`crate::model::onboarding`]). A boxed slice, not a map (see above).
    #[serde(skip)]
    pub labels: Option<Box<[(String, String)]>>,
}

impl CachedNamespace {
    /// What the controller keeps of `ns`.
    pub fn from_meta(ns: &PartialObjectMeta<Namespace>) -> CachedNamespace {
        CachedNamespace {
            metadata: ObjectMeta { name: ns.metadata.name.clone(), ..ObjectMeta::default() },
            info: NamespaceInfo::from_labels(ns.labels(), ns.metadata.deletion_timestamp.is_some()),
            managed_by_tenants: ns.annotations().get(keys::MANAGED_BY_TENANTS).cloned(),
            labels: ns
                .labels()
                .contains_key(keys::TENANT_ID)
                .then(|| ns.labels().iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        }
    }

    /// The labels kept ([`CachedNamespace::labels`]; empty unless a subscription), as a map.
    pub fn label_map(&self) -> std::collections::BTreeMap<String, String> {
        self.labels.iter().flatten().cloned().collect()
    }

    /// A subscription, or a namespace that still carries the managed-by-tenants annotation:
    /// one whose annotation the namespace reconcile keeps.
    pub fn keeps_annotation(&self) -> bool {
        self.info.tenant_id.is_some() || self.managed_by_tenants.is_some()
    }
}

impl From<PartialObjectMeta<Namespace>> for CachedNamespace {
    fn from(ns: PartialObjectMeta<Namespace>) -> Self {
        CachedNamespace::from_meta(&ns)
    }
}

impl Resource for CachedNamespace {
    type DynamicType = ();
    type Scope = k8s_openapi::ClusterResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        Namespace::kind(&())
    }

    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        Namespace::group(&())
    }

    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        Namespace::version(&())
    }

    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        Namespace::plural(&())
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Watch caches. Reconcilers read state only from here (never with a GET), so an idle
/// cluster costs no API calls.
#[derive(Clone)]
pub struct Caches {
    /// Namespaces, as [`CachedNamespace`]s: labels, annotation and deletion are all the
    /// model needs.
    pub namespaces: Store<CachedNamespace>,
    /// Registration definitions, whole.
    pub definitions: Store<RegistrationDefinition>,
    /// Registration assignments, whole.
    pub assignments: Store<RegistrationAssignment>,
    /// The role catalog: the built-in subset of the ClusterRoles.
    pub catalog: Arc<CatalogCache>,
    /// Roles and RoleBindings labelled as ours: compared before writing, pruned by label.
    pub roles: Arc<MaterializedCache>,
    /// RoleBindings labelled as ours.
    pub bindings: Arc<MaterializedCache>,
    /// Who is where, without scanning the caches.
    pub indexes: Arc<Indexes>,
    /// RoleActivations (SPEC §9), with their stamp annotations.
    pub activations: Store<RoleActivation>,
    /// ActivationReviews, with their stamp annotations.
    pub reviews: Store<ActivationReview>,
    /// The platform team's guardrails (docs/guardrails.md): few, read whole.
    pub guardrails: Store<Guardrail>,
    /// Onboardings (`policy.kubelighthouse.io`), whole: few, written by the platform team.
    pub onboardings: Store<Onboarding>,
}

/// The secondary indexes over [`Caches`], fed by the watches in [`super::triggers`].
pub struct Indexes {
    /// Assignments by namespace.
    pub assignments_by_namespace: Index<RegistrationAssignment>,
    /// Assignments by UID: whether the owner of a materialized object still exists.
    pub assignments_by_uid: Index<RegistrationAssignment>,
    /// Definitions by namespace.
    pub definitions_by_namespace: Index<RegistrationDefinition>,
    /// Definitions by the namespaces of their ServiceAccount principals, whose home tenant
    /// they depend on.
    pub definitions_by_principal_namespace: Index<RegistrationDefinition>,
    /// Resource-group namespaces by the subscription they belong to.
    pub namespaces_by_subscription: Index<CachedNamespace>,
}

impl Default for Indexes {
    fn default() -> Self {
        Indexes {
            assignments_by_namespace: Index::new(|a| a.namespace()),
            assignments_by_uid: Index::new(|a| a.uid()),
            definitions_by_namespace: Index::new(|d| d.namespace()),
            definitions_by_principal_namespace: Index::multi(|d: &RegistrationDefinition| {
                d.spec.service_account_namespaces()
            }),
            namespaces_by_subscription: Index::new(|ns: &CachedNamespace| {
                ns.info.parent_subscription().map(String::from)
            }),
        }
    }
}

fn resolve<K>(store: &Store<K>, references: Vec<ObjectRef<K>>) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    references.iter().filter_map(|r| store.get(r)).collect()
}

impl Caches {
    /// The definition `namespace/name`, if cached.
    pub fn definition(&self, namespace: &str, name: &str) -> Option<Arc<RegistrationDefinition>> {
        self.definitions.get(&ObjectRef::new(name).within(namespace))
    }

    /// The assignments in `namespace`.
    pub fn assignments_in(&self, namespace: &str) -> Vec<Arc<RegistrationAssignment>> {
        resolve(&self.assignments, self.indexes.assignments_by_namespace.get(namespace))
    }

    /// Assignments in `subscription` and in its resource groups.
    pub fn assignments_under(&self, subscription: &str) -> Vec<Arc<RegistrationAssignment>> {
        let mut all = self.assignments_in(subscription);
        for rg in self.resource_groups_of(subscription) {
            all.extend(self.assignments_in(&rg));
        }
        all
    }

    /// The live assignment with `uid`, if any.
    pub fn assignment_with_uid(&self, uid: &str) -> Option<ObjectRef<RegistrationAssignment>> {
        self.indexes.assignments_by_uid.get(uid).into_iter().next()
    }

    /// The definitions in `namespace`.
    pub fn definitions_in(&self, namespace: &str) -> Vec<Arc<RegistrationDefinition>> {
        resolve(&self.definitions, self.indexes.definitions_by_namespace.get(namespace))
    }

    /// Definitions with a ServiceAccount principal in `namespace`.
    pub fn definitions_with_principals_in(&self, namespace: &str) -> Vec<Arc<RegistrationDefinition>> {
        resolve(&self.definitions, self.indexes.definitions_by_principal_namespace.get(namespace))
    }
}

/// Just-in-time access (SPEC §9). Activations and reviews are few (short-lived, per person),
/// so these scan their stores rather than keep indexes.
impl Caches {
    /// The assignment `activation` names: in its own namespace, or, for a resource-group
    /// namespace, in its subscription namespace.
    pub fn assignment_of(&self, namespace: &str, assignment: &str) -> Option<Arc<RegistrationAssignment>> {
        let here = self.assignments.get(&ObjectRef::new(assignment).within(namespace));
        here.or_else(|| {
            let parent = Namespaces::get(self, namespace)?.parent_subscription()?.to_string();
            self.assignments.get(&ObjectRef::new(assignment).within(&parent))
        })
    }

    /// The activations that name the assignment `namespace/name` (and resolve to it).
    pub fn activations_of(&self, namespace: &str, name: &str) -> Vec<Arc<RoleActivation>> {
        self.activations
            .state()
            .into_iter()
            .filter(|a| a.spec.registration_assignment_ref.name == name)
            .filter(|a| {
                let ns = a.namespace().unwrap_or_default();
                self.assignment_of(&ns, name).is_some_and(|found| found.namespace().as_deref() == Some(namespace))
                    || ns == namespace
            })
            .collect()
    }

    /// The reviews of activation `namespace/name`.
    pub fn reviews_of(&self, namespace: &str, name: &str) -> Vec<Arc<ActivationReview>> {
        self.reviews
            .state()
            .into_iter()
            .filter(|r| r.namespace().as_deref() == Some(namespace) && r.spec.role_activation_ref.name == name)
            .collect()
    }

    /// The activation `namespace/name`.
    pub fn activation(&self, namespace: &str, name: &str) -> Option<Arc<RoleActivation>> {
        self.activations.get(&ObjectRef::new(name).within(namespace))
    }
}

impl Caches {
    /// The guardrails in force now, as the model reads them.
    pub fn guardrails(&self) -> Guardrails {
        Guardrails::from_objects(self.guardrails.state().iter().map(AsRef::as_ref))
    }
}

impl Namespaces for Caches {
    fn get(&self, name: &str) -> Option<NamespaceInfo> {
        self.namespaces.get(&ObjectRef::new(name)).map(|ns| ns.info.clone())
    }

    fn resource_groups_of(&self, subscription: &str) -> Vec<String> {
        let mut names: Vec<String> =
            resolve(&self.namespaces, self.indexes.namespaces_by_subscription.get(subscription))
                .iter()
                // The index follows labels as they were; the cache has them as they are.
                .filter(|ns| ns.info.parent_subscription() == Some(subscription))
                .map(|ns| ns.name_any())
                .collect();
        names.sort();
        names
    }
}

/// The gauges read from the caches at scrape time: delegations by provisioning state, and
/// the materialized objects held. Registered with [`crate::metrics::Metrics::register`].
#[derive(Clone)]
pub struct CacheGauges(pub Caches);

impl std::fmt::Debug for CacheGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheGauges")
    }
}

impl prometheus_client::collector::Collector for CacheGauges {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::Gauge;

        use crate::metrics::{state_label, KindLabels, StateLabels};

        let caches = &self.0;
        let delegations = Family::<StateLabels, Gauge>::default();
        for d in caches.definitions.state() {
            let state = state_label(d.status.as_ref().and_then(|s| s.provisioning_state));
            delegations.get_or_create(&StateLabels { kind: "RegistrationDefinition", state }).inc();
        }
        for a in caches.assignments.state() {
            let state = state_label(a.status.as_ref().and_then(|s| s.provisioning_state));
            delegations.get_or_create(&StateLabels { kind: "RegistrationAssignment", state }).inc();
        }
        let activations = Family::<crate::metrics::PhaseLabels, Gauge>::default();
        for a in caches.activations.state() {
            let phase = a.status.as_ref().and_then(|s| s.phase).map_or("New", crate::api::ActivationPhase::as_str);
            activations.get_or_create(&crate::metrics::PhaseLabels { phase }).inc();
        }
        let materialized = Family::<KindLabels, Gauge>::default();
        materialized.get_or_create(&KindLabels { kind: "Role" }).set(caches.roles.len() as i64);
        materialized.get_or_create(&KindLabels { kind: "RoleBinding" }).set(caches.bindings.len() as i64);
        let help = "Definitions and assignments by provisioning state";
        delegations.encode(encoder.encode_descriptor("delegations", help, None, delegations.metric_type())?)?;
        let help = "RoleActivations by phase (New: not yet judged)";
        activations.encode(encoder.encode_descriptor("activations", help, None, activations.metric_type())?)?;
        let help = "Roles and RoleBindings the controller holds";
        materialized.encode(encoder.encode_descriptor(
            "materialized_objects",
            help,
            None,
            materialized.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn namespace(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> PartialObjectMeta<Namespace> {
        let map = |pairs: &[(&str, &str)]| Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        PartialObjectMeta::<Namespace> {
            metadata: ObjectMeta {
                name: Some("contoso-prod".into()),
                uid: Some("uid-1".into()),
                resource_version: Some("42".into()),
                labels: map(labels),
                annotations: map(annotations),
                ..ObjectMeta::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_subscription_keeps_its_labels_and_annotation_and_nothing_else() {
        let ns = namespace(
            &[(keys::TENANT_ID, "t-1"), ("kubernetes.io/metadata.name", "contoso-prod"), ("team", "web")],
            &[(keys::MANAGED_BY_TENANTS, "m-1"), ("kubectl.kubernetes.io/last-applied-configuration", "{…}")],
        );
        let cached = CachedNamespace::from_meta(&ns);
        assert_eq!(cached.metadata, ObjectMeta { name: Some("contoso-prod".into()), ..ObjectMeta::default() });
        assert_eq!(
            cached.info,
            NamespaceInfo {
                tenant_id: Some("t-1".into()),
                subscription: None,
                terminating: false,
                // A subscription's other labels, for guardrails' namespace selectors.
                labels: std::collections::BTreeMap::from([("team".to_string(), "web".to_string())]),
            }
        );
        assert_eq!(cached.managed_by_tenants.as_deref(), Some("m-1"));
        assert!(cached.keeps_annotation());
    }

    #[test]
    fn a_resource_group_keeps_its_subscription_and_a_terminating_one_says_so() {
        let mut ns = namespace(&[(keys::SUBSCRIPTION, "contoso-prod")], &[]);
        ns.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let cached = CachedNamespace::from(ns);
        assert_eq!(cached.info.parent_subscription(), Some("contoso-prod"));
        assert!(cached.info.terminating);
        assert_eq!(cached.managed_by_tenants, None);
        assert!(!cached.keeps_annotation(), "a resource group has no annotation to keep");
    }

    #[test]
    fn a_plain_namespace_with_a_stale_annotation_still_has_it_removed() {
        let cached = CachedNamespace::from_meta(&namespace(&[], &[(keys::MANAGED_BY_TENANTS, "m-1")]));
        assert_eq!(cached.info, NamespaceInfo::default());
        assert!(cached.keeps_annotation());
        let plain = CachedNamespace::from_meta(&namespace(&[], &[]));
        assert!(!plain.keeps_annotation());
    }
}
