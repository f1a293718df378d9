//! Secondary indexes over the watch caches. A reconcile asks "the assignments in this
//! namespace", "the RoleBindings of this assignment", "the resource groups of this
//! subscription"; scanning a whole cache for that made onboarding quadratic (see
//! docs/benchmarks.md). Each index maps a group key to the references of its members and is
//! fed by the same watch events as the cache it indexes, before anything is triggered.
//!
//! An index holds references only: objects are always read from the cache, so a reference
//! whose object is gone resolves to nothing rather than to stale data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Resource;

/// Each member is held once (an `Arc` both maps share), and groups are small (the objects
/// of one namespace), so a group is a `Vec` rather than a set: at thousands of members the
/// per-entry overhead is what counts.
struct Table<K: Resource<DynamicType = ()>> {
    members: HashMap<Arc<str>, Vec<Arc<ObjectRef<K>>>>,
    group_of: HashMap<Arc<ObjectRef<K>>, Arc<str>>,
}

impl<K: Resource<DynamicType = ()>> Default for Table<K> {
    fn default() -> Self {
        Table { members: HashMap::new(), group_of: HashMap::new() }
    }
}

impl<K: Resource<DynamicType = ()>> Table<K> {
    fn insert(&mut self, reference: ObjectRef<K>, group: Option<String>) {
        self.remove(&reference);
        if let Some(group) = group {
            let group: Arc<str> = match self.members.get_key_value(group.as_str()) {
                Some((shared, _)) => shared.clone(),
                None => Arc::from(group),
            };
            let reference = Arc::new(reference);
            self.members.entry(group.clone()).or_default().push(reference.clone());
            self.group_of.insert(reference, group);
        }
    }

    fn remove(&mut self, reference: &ObjectRef<K>) {
        if let Some(group) = self.group_of.remove(reference) {
            if let Some(members) = self.members.get_mut(&group) {
                members.retain(|m| m.as_ref() != reference);
                if members.is_empty() {
                    self.members.remove(&group);
                }
            }
        }
    }
}

/// Members of a cache grouped by a key computed from each object (None: not indexed).
pub struct Index<K: Resource<DynamicType = ()>> {
    key: fn(&K) -> Option<String>,
    live: RwLock<Table<K>>,
    /// The table being rebuilt during a relist; it replaces `live` when the relist is done,
    /// exactly when the cache swaps its own contents, so deletions missed while the watch
    /// was down disappear from both together.
    relist: Mutex<Option<Table<K>>>,
}

impl<K: Resource<DynamicType = ()> + Clone> Index<K> {
    pub fn new(key: fn(&K) -> Option<String>) -> Index<K> {
        Index { key, live: RwLock::new(Table::default()), relist: Mutex::new(None) }
    }

    /// Follows one watch event.
    pub fn observe(&self, event: &watcher::Event<K>) {
        // Name and namespace identify a member; `ObjectRef::from_obj` would also copy its uid
        // and resourceVersion into every entry, which at thousands of objects adds up.
        let reference = |object: &K| {
            let meta = object.meta();
            let name = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
            match meta.namespace.as_deref() {
                Some(ns) => name.within(ns),
                None => name,
            }
        };
        let mut relist = self.relist.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        match event {
            watcher::Event::Apply(object) => live.insert(reference(object), (self.key)(object)),
            watcher::Event::Delete(object) => live.remove(&reference(object)),
            // The first list fills the empty table directly: a second copy would double the
            // peak for nothing.
            watcher::Event::Init if live.group_of.is_empty() => *relist = None,
            watcher::Event::Init => *relist = Some(Table::default()),
            watcher::Event::InitApply(object) => {
                let (member, group) = (reference(object), (self.key)(object));
                if let Some(table) = relist.as_mut() {
                    table.insert(member.clone(), group.clone());
                }
                live.insert(member, group);
            }
            watcher::Event::InitDone => {
                if let Some(table) = relist.take() {
                    *live = table;
                }
            }
        }
    }

    /// References of the members of `group`.
    pub fn get(&self, group: &str) -> Vec<ObjectRef<K>> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.members.get(group).map(|members| members.iter().map(|m| m.as_ref().clone()).collect()).unwrap_or_default()
    }

    pub fn contains(&self, group: &str) -> bool {
        self.live.read().unwrap_or_else(|p| p.into_inner()).members.contains_key(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;

    fn object(namespace: &str, name: &str, group: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(namespace.into());
        cm.metadata.name = Some(name.into());
        cm.labels_mut().insert("group".into(), group.into());
        cm
    }

    fn index() -> Index<ConfigMap> {
        Index::new(|cm| cm.labels().get("group").cloned())
    }

    fn names(index: &Index<ConfigMap>, group: &str) -> Vec<String> {
        let mut names: Vec<String> = index.get(group).into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn follows_applies_moves_and_deletes() {
        let index = index();
        index.observe(&watcher::Event::Apply(object("a", "one", "x")));
        index.observe(&watcher::Event::Apply(object("a", "two", "x")));
        assert_eq!(names(&index, "x"), ["one", "two"]);
        index.observe(&watcher::Event::Apply(object("a", "two", "y")));
        assert_eq!(names(&index, "x"), ["one"]);
        assert_eq!(names(&index, "y"), ["two"]);
        index.observe(&watcher::Event::Delete(object("a", "one", "x")));
        assert!(names(&index, "x").is_empty());
        assert!(!index.contains("x"));
        assert!(index.contains("y"));
    }

    #[test]
    fn a_relist_forgets_what_was_deleted_meanwhile() {
        let index = index();
        index.observe(&watcher::Event::Apply(object("a", "gone", "x")));
        index.observe(&watcher::Event::Apply(object("a", "kept", "x")));
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(object("a", "kept", "x")));
        // Until the relist is done the old members still answer, like the cache itself.
        assert_eq!(names(&index, "x"), ["gone", "kept"]);
        index.observe(&watcher::Event::InitDone);
        assert_eq!(names(&index, "x"), ["kept"]);
    }

    #[test]
    fn objects_without_a_key_are_not_indexed() {
        let index: Index<ConfigMap> = Index::new(|_| None);
        index.observe(&watcher::Event::Apply(object("a", "one", "x")));
        assert!(index.get("x").is_empty());
    }
}
