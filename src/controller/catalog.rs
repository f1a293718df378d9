//! The role catalog (SPEC §4) as the reconcilers see it: one shared snapshot, rebuilt from
//! the ClusterRole watch only when a member changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::runtime::watcher;
use kube::ResourceExt;

use crate::model::catalog::{Catalog, CatalogRole};

type Members = BTreeMap<String, CatalogRole>;

/// The role catalog, rebuilt from the ClusterRole watch only when a member changes, so that
/// reconciles share one snapshot instead of each building it from every ClusterRole.
#[derive(Default)]
pub struct CatalogCache {
    /// Members by ClusterRole name, and those of a relist in progress.
    members: Mutex<(Members, Option<Members>)>,
    snapshot: RwLock<Arc<Catalog>>,
    /// Counts changes, so that watchers of the catalog can tell one happened.
    version: std::sync::atomic::AtomicU64,
}

impl CatalogCache {
    /// The catalog as last seen: a snapshot that later changes do not touch.
    pub fn current(&self) -> Arc<Catalog> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times the catalog changed.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Follows one ClusterRole watch event. A (re)list counts as one change when it is
    /// done, and only if it found the catalog different.
    pub fn observe(&self, event: &watcher::Event<ClusterRole>) {
        let mut guard = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let (members, relist) = &mut *guard;
        let changed = match event {
            watcher::Event::Apply(role) => match CatalogRole::from_cluster_role(role) {
                Some(member) => members.insert(role.name_any(), member.clone()) != Some(member),
                None => members.remove(&role.name_any()).is_some(),
            },
            watcher::Event::Delete(role) => members.remove(&role.name_any()).is_some(),
            watcher::Event::Init => {
                *relist = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(role) => {
                if let (Some(listed), Some(member)) = (relist.as_mut(), CatalogRole::from_cluster_role(role)) {
                    listed.insert(role.name_any(), member);
                }
                false
            }
            watcher::Event::InitDone => match relist.take() {
                Some(listed) if listed != *members => {
                    *members = listed;
                    true
                }
                _ => false,
            },
        };
        if changed {
            let catalog = Catalog::new(members.values().cloned().collect());
            // Delegations keep the oldest claimant and new ones are refused (AmbiguousRole,
            // in their status); the cluster's operator is told here which ClusterRoles clash.
            for (id, claimants) in catalog.conflicts() {
                tracing::warn!(
                    role = %id,
                    claimants = %claimants.join(", "),
                    "more than one catalog ClusterRole claims this role: the oldest keeps it, new delegations naming it are refused"
                );
            }
            *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
            self.version.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::PolicyRule;

    use super::*;
    use crate::model::catalog::test_support::{catalog_cluster_role, READER};
    use crate::model::catalog::Lookup;

    fn reader(verbs: &[&str]) -> ClusterRole {
        let rule = PolicyRule { verbs: verbs.iter().map(|v| v.to_string()).collect(), ..Default::default() };
        catalog_cluster_role("kubelighthouse:reader", Some(READER), Some("Reader"), vec![rule])
    }

    fn other(name: &str) -> ClusterRole {
        ClusterRole {
            metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
            ..Default::default()
        }
    }

    fn found(cache: &CatalogCache) -> bool {
        matches!(cache.current().lookup(READER), Lookup::Found(_))
    }

    #[test]
    fn a_list_is_one_change_and_only_members_count() {
        let cache = CatalogCache::default();
        cache.observe(&watcher::Event::Init);
        cache.observe(&watcher::Event::InitApply(reader(&["get"])));
        cache.observe(&watcher::Event::InitApply(other("system:basic-user")));
        assert_eq!(cache.version(), 0, "nothing changes before the list is done");
        assert!(!found(&cache));
        cache.observe(&watcher::Event::InitDone);
        assert_eq!(cache.version(), 1);
        assert!(found(&cache));

        cache.observe(&watcher::Event::Apply(other("system:discovery")));
        cache.observe(&watcher::Event::Apply(reader(&["get"])));
        assert_eq!(cache.version(), 1, "neither a non-member nor an unchanged member is a change");

        cache.observe(&watcher::Event::Apply(reader(&["get", "list"])));
        assert_eq!(cache.version(), 2, "an edited member is");
        cache.observe(&watcher::Event::Delete(reader(&["get", "list"])));
        assert_eq!(cache.version(), 3);
        assert!(!found(&cache));
    }

    #[test]
    fn a_relist_that_finds_the_same_catalog_changes_nothing() {
        let cache = CatalogCache::default();
        for _ in 0..2 {
            cache.observe(&watcher::Event::Init);
            cache.observe(&watcher::Event::InitApply(reader(&["get"])));
            cache.observe(&watcher::Event::InitDone);
        }
        assert_eq!(cache.version(), 1);
        cache.observe(&watcher::Event::Init);
        cache.observe(&watcher::Event::InitDone);
        assert_eq!(cache.version(), 2, "a member deleted while the watch was down");
        assert!(!found(&cache));
    }
}
