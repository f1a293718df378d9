//! The cache of what the controller materialized: every Role and RoleBinding labelled as
//! ours, each as a compact [`Record`] rather than a whole API object.
//!
//! There are a few such objects per delegated namespace, so at thousands of customers they
//! are most of what the controller holds. A k8s-openapi object with its `ObjectMeta` and two
//! label maps costs kilobytes; a record keeps only what the reconcilers read: the name, the
//! owning assignment, the resourceVersion (for [`super::expectations`]), the roleRef, and a
//! digest of everything the controller sets, which is what drift detection compares
//! (docs/benchmarks.md). The cache also answers "the objects of this assignment" and "the
//! objects in this namespace" without a scan.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde::Serialize;

use super::index::{map_event, Groups, Relisted, Table};
use crate::api::RegistrationAssignment;
use crate::model::catalog::USER_ACCESS_ADMINISTRATOR;
use crate::model::keys;

/// `(namespace, name)` of a materialized object.
pub type Key = Arc<(String, String)>;

/// A SHA-256 prefix: collisions are not a concern at this size, and it is compared, never trusted.
pub type Digest = [u8; 16];

/// One materialized Role or RoleBinding, as much as the controller needs of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// `(namespace, name)`.
    pub key: Key,
    /// The last `resourceVersion` seen.
    pub resource_version: Option<String>,
    /// The `assignment-uid` label: the prune selector.
    pub owner_uid: Option<String>,
    /// The `assignment` annotation: `namespace/name` of the owning assignment.
    pub owner: Option<String>,
    /// A Role a User Access Administrator may bind (the `assignable` label).
    pub assignable: bool,
    /// Digest of a RoleBinding's roleRef (immutable: another one means delete and re-create).
    pub role_ref: Option<Digest>,
    /// A User Access Administrator binding's subjects, which the admission webhook reads;
    /// other bindings keep them only in the digest.
    pub delegates: Option<Vec<Subject>>,
    /// It has finalizers or owner references, which the controller never sets: someone else
    /// holds it (a finalizer would keep its access after its deletion), so it is not ours
    /// whatever its labels say, and is replaced.
    pub held: bool,
    /// Digest of what the controller sets: its labels and annotations, and the rules or the
    /// roleRef and subjects.
    pub digest: Digest,
}

impl Record {
    /// The object's namespace.
    pub fn namespace(&self) -> &str {
        &self.key.0
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.key.1
    }

    /// The owning assignment, as a trigger.
    pub fn owning_assignment(&self) -> Option<ObjectRef<RegistrationAssignment>> {
        let (namespace, name) = self.owner.as_deref()?.split_once('/')?;
        Some(ObjectRef::new(name).within(namespace))
    }

    fn from_meta(meta: &ObjectMeta, digest: Digest) -> Record {
        let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key));
        Record {
            key: Arc::new((meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())),
            resource_version: meta.resource_version.clone(),
            owner_uid: label(keys::ASSIGNMENT_UID).cloned(),
            owner: meta.annotations.as_ref().and_then(|a| a.get(keys::ASSIGNMENT)).cloned(),
            assignable: label(keys::ASSIGNABLE).is_some_and(|v| v == "true"),
            role_ref: None,
            delegates: None,
            held: held(meta),
            digest,
        }
    }

    /// The record of a Role: its digest covers our labels, annotations and rules.
    pub fn from_role(role: &Role) -> Record {
        Record::from_meta(&role.metadata, role_digest(role))
    }

    /// The record of a RoleBinding: its digest covers our labels, annotations, roleRef and
    /// subjects; a User Access Administrator binding also keeps its subjects.
    pub fn from_binding(binding: &RoleBinding) -> Record {
        let user_access =
            binding.metadata.annotations.as_ref().and_then(|a| a.get(keys::SOURCE_ROLE)).map(String::as_str)
                == Some(USER_ACCESS_ADMINISTRATOR);
        Record {
            role_ref: Some(role_ref_digest(&binding.role_ref)),
            delegates: user_access.then(|| binding.subjects.clone().unwrap_or_default()),
            ..Record::from_meta(&binding.metadata, binding_digest(binding))
        }
    }
}

/// Whether `meta` carries finalizers or owner references: the controller sets neither on
/// what it materializes.
pub fn held(meta: &ObjectMeta) -> bool {
    meta.finalizers.as_ref().is_some_and(|f| !f.is_empty())
        || meta.owner_references.as_ref().is_some_and(|o| !o.is_empty())
}

// --- digests ---------------------------------------------------------------------------

/// The labels and annotations of `meta` that the controller sets. Keys of others are left
/// out, so a label someone else adds is not drift; a label of ours that is edited, added
/// or removed is.
fn ours(meta: &ObjectMeta) -> [Vec<(&'static str, &str)>; 2] {
    fn pick<'a>(
        map: &'a Option<std::collections::BTreeMap<String, String>>,
        keys: &[&'static str],
    ) -> Vec<(&'static str, &'a str)> {
        keys.iter().filter_map(|k| map.as_ref().and_then(|m| m.get(*k)).map(|v| (*k, v.as_str()))).collect()
    }
    [pick(&meta.labels, &keys::MATERIALIZED_LABELS), pick(&meta.annotations, &keys::MATERIALIZED_ANNOTATIONS)]
}

fn digest_of(value: &impl Serialize) -> Digest {
    use sha2::{Digest as _, Sha256};
    let canonical = serde_json::to_vec(value).unwrap_or_default();
    let mut out = [0u8; 16];
    out.copy_from_slice(&Sha256::digest(&canonical)[..16]);
    out
}

/// Rules as the API server returns them: an empty list and an absent one are the same.
fn normalized_rules(rules: Option<&Vec<PolicyRule>>) -> Vec<PolicyRule> {
    let empty_as_none = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
    rules
        .into_iter()
        .flatten()
        .map(|r| PolicyRule {
            api_groups: empty_as_none(&r.api_groups),
            resources: empty_as_none(&r.resources),
            resource_names: empty_as_none(&r.resource_names),
            non_resource_urls: empty_as_none(&r.non_resource_urls),
            verbs: r.verbs.clone(),
        })
        .collect()
}

/// Subjects as the API server returns them: a ServiceAccount's empty apiGroup is dropped.
fn normalized_subjects(subjects: Option<&Vec<Subject>>) -> Vec<Subject> {
    subjects
        .into_iter()
        .flatten()
        .map(|s| Subject { api_group: s.api_group.clone().filter(|g| !g.is_empty()), ..s.clone() })
        .collect()
}

/// The digest of a Role, desired or as the API server has it: equal exactly when no write
/// is needed.
pub fn role_digest(role: &Role) -> Digest {
    digest_of(&(ours(&role.metadata), normalized_rules(role.rules.as_ref())))
}

/// Digest of a RoleBinding's roleRef, the field that cannot change in place.
pub fn role_ref_digest(role_ref: &RoleRef) -> Digest {
    digest_of(role_ref)
}

/// The digest of a RoleBinding, desired or as the API server has it.
pub fn binding_digest(binding: &RoleBinding) -> Digest {
    digest_of(&(ours(&binding.metadata), &binding.role_ref, normalized_subjects(binding.subjects.as_ref())))
}

// --- the cache -------------------------------------------------------------------------

/// Records by key, and the keys of each owner and of each namespace ([`Groups`]).
#[derive(Default)]
pub struct Records {
    records: HashMap<Key, Arc<Record>>,
    by_owner: Groups<Key>,
    by_namespace: Groups<Key>,
}

impl Table for Records {
    type Entry = Record;

    fn insert(&mut self, record: Record) {
        self.remove(&record);
        let key = record.key.clone();
        if let Some(uid) = &record.owner_uid {
            self.by_owner.link(uid, key.clone());
        }
        self.by_namespace.link(&key.0, key.clone());
        self.records.insert(key, Arc::new(record));
    }

    fn remove(&mut self, record: &Record) {
        let key = &record.key;
        if let Some(old) = self.records.remove(key) {
            if let Some(uid) = &old.owner_uid {
                self.by_owner.unlink(uid, key);
            }
            self.by_namespace.unlink(&key.0, key);
        }
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl Records {
    fn resolve<'a>(&self, keys: impl IntoIterator<Item = &'a Key>) -> Vec<Arc<Record>> {
        keys.into_iter().filter_map(|k| self.records.get(k).cloned()).collect()
    }
}

/// Records of one kind, following a watch like a reflector store does.
#[derive(Default)]
pub struct MaterializedCache {
    table: Relisted<Records>,
}

impl MaterializedCache {
    /// Follows one watch event, already reduced to a record.
    pub fn observe(&self, event: &watcher::Event<Record>) {
        self.table.observe(map_event(event, Record::clone));
    }

    /// The record of `namespace/name`, if cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Record>> {
        let key = (namespace.to_string(), name.to_string());
        self.table.read().records.get(&key).cloned()
    }

    /// The objects labelled as the assignment with `uid`'s.
    pub fn of_owner(&self, uid: &str) -> Vec<Arc<Record>> {
        let table = self.table.read();
        table.resolve(table.by_owner.get(uid))
    }

    /// The records in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<Record>> {
        let table = self.table.read();
        table.resolve(table.by_namespace.get(namespace))
    }

    /// The keys of every record.
    pub fn keys(&self) -> Vec<Key> {
        self.table.read().records.keys().cloned().collect()
    }

    /// How many records are cached.
    pub fn len(&self) -> usize {
        self.table.read().records.len()
    }

    /// Whether no record is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::projection::user;

    fn meta(name: &str, namespace: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            resource_version: Some("7".into()),
            labels: Some(BTreeMap::from([
                (keys::MANAGED_BY.to_string(), keys::MANAGER.to_string()),
                (keys::ASSIGNMENT_UID.to_string(), uid.to_string()),
            ])),
            annotations: Some(BTreeMap::from([
                (keys::ASSIGNMENT.to_string(), "sub/assignment".to_string()),
                (keys::SOURCE_ROLE.to_string(), "kubelighthouse:reader".to_string()),
            ])),
            ..Default::default()
        }
    }

    fn get_pods() -> PolicyRule {
        PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["pods".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }
    }

    fn role(rules: Vec<PolicyRule>) -> Role {
        Role { metadata: meta("r", "ns", "uid-1"), rules: Some(rules) }
    }

    fn binding(subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: meta("r", "ns", "uid-1"),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Role".into(),
                name: "r".into(),
            },
            subjects: Some(subjects),
        }
    }

    #[test]
    fn server_normalization_and_foreign_metadata_are_not_drift() {
        let desired = role(vec![get_pods()]);
        let mut from_server = desired.clone();
        from_server.rules = Some(vec![PolicyRule { resource_names: Some(vec![]), ..get_pods() }]);
        from_server.metadata.labels.as_mut().expect("labels").insert("team".into(), "kept".into());
        from_server.metadata.annotations.as_mut().expect("annotations").insert("note".into(), "kept".into());
        from_server.metadata.resource_version = Some("99".into());
        from_server.metadata.uid = Some("server-uid".into());
        assert_eq!(Record::from_role(&from_server).digest, role_digest(&desired));

        let sa =
            Subject { kind: "ServiceAccount".into(), name: "x".into(), api_group: None, namespace: Some("n".into()) };
        let want = binding(vec![Subject { api_group: Some(String::new()), ..sa.clone() }]);
        assert_eq!(Record::from_binding(&binding(vec![sa])).digest, binding_digest(&want));
    }

    #[test]
    fn edited_rules_labels_and_annotations_are_drift() {
        let desired = role(vec![get_pods()]);
        let mut edited = desired.clone();
        edited.rules.as_mut().expect("rules")[0].verbs.push("delete".into());
        assert_ne!(role_digest(&edited), role_digest(&desired));
        let mut emptied = desired.clone();
        emptied.rules = None;
        assert_ne!(role_digest(&emptied), role_digest(&desired));
        let mut relabelled = desired.clone();
        relabelled.metadata.labels.as_mut().expect("labels").remove(keys::ASSIGNMENT_UID);
        assert_ne!(role_digest(&relabelled), role_digest(&desired));
        let mut made_assignable = desired.clone();
        made_assignable.metadata.labels.as_mut().expect("labels").insert(keys::ASSIGNABLE.into(), "true".into());
        assert_ne!(role_digest(&made_assignable), role_digest(&desired), "a label of ours added by hand is drift");
        let mut re_annotated = desired.clone();
        re_annotated.metadata.annotations.as_mut().expect("annotations").insert(keys::SOURCE_ROLE.into(), "x".into());
        assert_ne!(role_digest(&re_annotated), role_digest(&desired));
    }

    #[test]
    fn an_added_subject_or_another_role_ref_is_drift() {
        let desired = binding(vec![user("a")]);
        assert_eq!(binding_digest(&desired.clone()), binding_digest(&desired));
        assert_ne!(binding_digest(&binding(vec![user("a"), user("intruder")])), binding_digest(&desired));
        let mut other_ref = desired.clone();
        other_ref.role_ref.name = "admin".into();
        assert_ne!(binding_digest(&other_ref), binding_digest(&desired));
    }

    #[test]
    fn a_record_keeps_what_the_reconcilers_read() {
        let mut assignable = role(vec![get_pods()]);
        assignable.metadata.labels.as_mut().expect("labels").insert(keys::ASSIGNABLE.into(), "true".into());
        let record = Record::from_role(&assignable);
        assert_eq!((record.namespace(), record.name()), ("ns", "r"));
        assert_eq!(record.owner_uid.as_deref(), Some("uid-1"));
        assert_eq!(record.resource_version.as_deref(), Some("7"));
        assert!(record.assignable);
        assert_eq!(record.owning_assignment(), Some(ObjectRef::new("assignment").within("sub")));

        let plain = Record::from_binding(&binding(vec![user("a")]));
        assert_eq!(plain.role_ref, Some(role_ref_digest(&binding(vec![]).role_ref)));
        assert_eq!(plain.delegates, None, "subjects of ordinary bindings live only in the digest");
        let mut uaa = binding(vec![user("delegate")]);
        uaa.metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .insert(keys::SOURCE_ROLE.into(), USER_ACCESS_ADMINISTRATOR.into());
        assert_eq!(Record::from_binding(&uaa).delegates, Some(vec![user("delegate")]));
    }

    fn record(namespace: &str, name: &str, uid: &str) -> Record {
        Record::from_role(&Role { metadata: meta(name, namespace, uid), rules: None })
    }

    fn names(records: Vec<Arc<Record>>) -> Vec<String> {
        let mut names: Vec<String> = records.iter().map(|r| format!("{}/{}", r.namespace(), r.name())).collect();
        names.sort();
        names
    }

    #[test]
    fn follows_applies_owner_changes_and_deletes() {
        let cache = MaterializedCache::default();
        cache.observe(&watcher::Event::Apply(record("a", "one", "u1")));
        cache.observe(&watcher::Event::Apply(record("b", "two", "u1")));
        assert_eq!(names(cache.of_owner("u1")), ["a/one", "b/two"]);
        assert_eq!(names(cache.in_namespace("a")), ["a/one"]);
        cache.observe(&watcher::Event::Apply(record("b", "two", "u2")));
        assert_eq!(names(cache.of_owner("u1")), ["a/one"]);
        assert_eq!(names(cache.of_owner("u2")), ["b/two"]);
        cache.observe(&watcher::Event::Delete(record("a", "one", "u1")));
        assert!(cache.of_owner("u1").is_empty());
        assert!(cache.in_namespace("a").is_empty());
        assert!(cache.get("a", "one").is_none());
        assert_eq!(cache.get("b", "two").and_then(|r| r.owner_uid.clone()).as_deref(), Some("u2"));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_relist_forgets_what_was_deleted_meanwhile() {
        let cache = MaterializedCache::default();
        cache.observe(&watcher::Event::Apply(record("a", "gone", "u1")));
        cache.observe(&watcher::Event::Apply(record("a", "kept", "u1")));
        cache.observe(&watcher::Event::Init);
        cache.observe(&watcher::Event::InitApply(record("a", "kept", "u1")));
        // Until the relist is done the old records still answer, like a reflector store.
        assert_eq!(names(cache.of_owner("u1")), ["a/gone", "a/kept"]);
        cache.observe(&watcher::Event::InitDone);
        assert_eq!(names(cache.of_owner("u1")), ["a/kept"]);
        assert_eq!(names(cache.in_namespace("a")), ["a/kept"]);
    }
}
