//! Secondary indexes over the watch caches. A reconcile asks "the assignments in this
//! namespace", "the RoleBindings of this assignment", "the resource groups of this
//! subscription"; scanning a whole cache for that made onboarding quadratic (see
//! docs/benchmarks.md). Each index maps a group key to the references of its members and is
//! fed by the same watch events as the cache it indexes, before anything is triggered.
//!
//! An index holds references only: objects are always read from the cache, so a reference
//! whose object is gone resolves to nothing rather than to stale data.
//!
//! [`Relisted`] is how an index, and the cache of materialized objects, follow a watch
//! through its relists exactly as a reflector store does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Resource;

/// A table that follows a watch the way a reflector store does. Shared by the indexes and
/// the cache of materialized objects ([`super::materialized`]).
pub trait Table: Default {
    /// What the table holds per object.
    type Entry: Clone;
    /// Adds or replaces `entry`.
    fn insert(&mut self, entry: Self::Entry);
    /// Removes `entry`.
    fn remove(&mut self, entry: &Self::Entry);
    /// Whether the table holds nothing.
    fn is_empty(&self) -> bool;
}

/// The same watch event about `f` of its object.
pub fn map_event<A, B>(event: &watcher::Event<A>, f: impl Fn(&A) -> B) -> watcher::Event<B> {
    match event {
        watcher::Event::Apply(object) => watcher::Event::Apply(f(object)),
        watcher::Event::Delete(object) => watcher::Event::Delete(f(object)),
        watcher::Event::InitApply(object) => watcher::Event::InitApply(f(object)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// A [`Table`] and the relist that may be rebuilding it.
pub struct Relisted<T> {
    live: RwLock<T>,
    /// The table being rebuilt during a relist; it replaces `live` when the relist is done,
    /// exactly when a reflector store swaps its own contents, so deletions missed while the
    /// watch was down disappear from both together.
    relist: Mutex<Option<T>>,
}

impl<T: Table> Default for Relisted<T> {
    fn default() -> Self {
        Relisted { live: RwLock::new(T::default()), relist: Mutex::new(None) }
    }
}

impl<T: Table> Relisted<T> {
    /// Follows one watch event, already reduced to table entries.
    pub fn observe(&self, event: watcher::Event<T::Entry>) {
        let mut relist = self.relist.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        match event {
            watcher::Event::Apply(entry) => live.insert(entry),
            watcher::Event::Delete(entry) => live.remove(&entry),
            // The first list fills the empty table directly: a second copy would double the
            // peak for nothing.
            watcher::Event::Init if live.is_empty() => *relist = None,
            watcher::Event::Init => *relist = Some(T::default()),
            watcher::Event::InitApply(entry) => {
                if let Some(table) = relist.as_mut() {
                    table.insert(entry.clone());
                }
                live.insert(entry);
            }
            watcher::Event::InitDone => {
                if let Some(table) = relist.take() {
                    *live = table;
                }
            }
        }
    }

    /// The table as it is now.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, T> {
        self.live.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Members by group key: the grouped table every index and the cache of materialized
/// objects ([`super::materialized`]) keep. Groups are small (the objects of one namespace),
/// so a group is a `Vec` rather than a set: at thousands of members the per-entry overhead is
/// what counts. Members are cheap handles (`Arc`s) of what the caller holds once.
pub struct Groups<M> {
    groups: HashMap<Arc<str>, Vec<M>>,
}

impl<M> Default for Groups<M> {
    fn default() -> Self {
        Groups { groups: HashMap::new() }
    }
}

impl<M: PartialEq + Clone> Groups<M> {
    /// Adds `member` to `group` (once); the group key, shared with other holders of it.
    pub fn link(&mut self, group: &str, member: M) -> Arc<str> {
        let key: Arc<str> = match self.groups.get_key_value(group) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(group),
        };
        let members = self.groups.entry(key.clone()).or_default();
        if !members.contains(&member) {
            members.push(member);
        }
        key
    }

    /// Removes `member` from `group`; an empty group goes.
    pub fn unlink(&mut self, group: &str, member: &M) {
        if let Some(members) = self.groups.get_mut(group) {
            members.retain(|m| m != member);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// The members of `group` (none: empty).
    pub fn get(&self, group: &str) -> &[M] {
        self.groups.get(group).map(Vec::as_slice).unwrap_or_default()
    }

    /// Whether `group` has any member.
    pub fn contains(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }
}

/// An index's table: each member is held once (an `Arc` both maps share). A member may
/// belong to several groups (a definition names ServiceAccounts of several namespaces).
struct Members<K: Resource<DynamicType = ()>> {
    members: Groups<Arc<ObjectRef<K>>>,
    groups_of: HashMap<Arc<ObjectRef<K>>, Box<[Arc<str>]>>,
}

impl<K: Resource<DynamicType = ()>> Default for Members<K> {
    fn default() -> Self {
        Members { members: Groups::default(), groups_of: HashMap::new() }
    }
}

impl<K: Resource<DynamicType = ()>> Table for Members<K> {
    /// A member and its groups (none: not indexed).
    type Entry = (ObjectRef<K>, Vec<String>);

    fn insert(&mut self, (reference, groups): Self::Entry) {
        self.remove(&(reference.clone(), Vec::new()));
        if groups.is_empty() {
            return;
        }
        let reference = Arc::new(reference);
        let shared_groups: Vec<Arc<str>> =
            groups.iter().map(|group| self.members.link(group, reference.clone())).collect();
        self.groups_of.insert(reference, shared_groups.into_boxed_slice());
    }

    fn remove(&mut self, (reference, _): &Self::Entry) {
        let Some((member, groups)) = self.groups_of.remove_entry(reference) else { return };
        for group in groups.iter() {
            self.members.unlink(group, &member);
        }
    }

    fn is_empty(&self) -> bool {
        self.groups_of.is_empty()
    }
}

type GroupsOf<K> = Box<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// Members of a cache grouped by keys computed from each object (none: not indexed).
pub struct Index<K: Resource<DynamicType = ()>> {
    groups: GroupsOf<K>,
    table: Relisted<Members<K>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Index<K> {
    /// An index where each object belongs to at most one group.
    pub fn new(key: fn(&K) -> Option<String>) -> Index<K> {
        Index::multi(move |object| key(object).into_iter().collect())
    }

    /// An index where an object belongs to every group `groups` names.
    pub fn multi(groups: impl Fn(&K) -> Vec<String> + Send + Sync + 'static) -> Index<K> {
        Index { groups: Box::new(groups), table: Relisted::default() }
    }

    /// Follows one watch event.
    pub fn observe(&self, event: &watcher::Event<K>) {
        // Name and namespace identify a member; `ObjectRef::from_obj` would also copy its uid
        // and resourceVersion into every entry, which at thousands of objects adds up.
        let entry = |object: &K| {
            let meta = object.meta();
            let name = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
            let reference = match meta.namespace.as_deref() {
                Some(ns) => name.within(ns),
                None => name,
            };
            (reference, (self.groups)(object))
        };
        self.table.observe(map_event(event, entry));
    }

    /// References of the members of `group`.
    pub fn get(&self, group: &str) -> Vec<ObjectRef<K>> {
        let table = self.table.read();
        table.members.get(group).iter().map(|m| m.as_ref().clone()).collect()
    }

    /// Whether `group` has any member.
    pub fn contains(&self, group: &str) -> bool {
        self.table.read().members.contains(group)
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
    fn a_member_of_several_groups_leaves_each_when_it_moves_or_goes() {
        let index: Index<ConfigMap> = Index::multi(|cm: &ConfigMap| {
            cm.labels().get("group").map(|g| g.split(',').map(String::from).collect()).unwrap_or_default()
        });
        index.observe(&watcher::Event::Apply(object("a", "one", "x,y")));
        index.observe(&watcher::Event::Apply(object("a", "two", "y,y")));
        assert_eq!(names(&index, "x"), ["one"]);
        assert_eq!(names(&index, "y"), ["one", "two"]);
        index.observe(&watcher::Event::Apply(object("a", "one", "z")));
        assert!(!index.contains("x"));
        assert_eq!(names(&index, "y"), ["two"]);
        assert_eq!(names(&index, "z"), ["one"]);
        index.observe(&watcher::Event::Delete(object("a", "two", "y")));
        assert!(!index.contains("y"));
    }

    #[test]
    fn objects_without_a_key_are_not_indexed() {
        let index: Index<ConfigMap> = Index::new(|_| None);
        index.observe(&watcher::Event::Apply(object("a", "one", "x")));
        assert!(index.get("x").is_empty());
    }
}
