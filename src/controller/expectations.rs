//! Expectations: RBAC writes the API server has acknowledged and the watch has not shown yet.
//!
//! A reconcile that runs again before the watch delivers its own writes sees the old object
//! (or none) and would write the same content again; on a busy API server that was 0.6
//! repeated RoleBinding writes per onboarded subscription (docs/benchmarks.md). So after
//! each apply the controller notes the resourceVersion the API server returned:
//! - while the cache still shows what it showed before the write, a reconcile that wants
//!   the same content does not write it again;
//! - the watch event of the write itself does not re-trigger the owning assignment, whose
//!   reconcile made it and already accounted for it.
//!
//! Any other change (someone else's edit, a relist that skipped the version) is compared as
//! usual, and an expectation the watch never confirms lapses after [`LAPSE`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::materialized::{Digest, MaterializedCache, Record};

/// How long an unconfirmed write stands in for the cache.
pub const LAPSE: Duration = Duration::from_secs(30);

struct Expected {
    /// The resourceVersion the cache had before the write (None: absent).
    before: Option<String>,
    /// The resourceVersion the write produced.
    written: Option<String>,
    digest: Digest,
    at: Instant,
}

/// Writes awaiting their watch event, by kind, namespace and name.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<(&'static str, String, String), Expected>>,
}

impl Expectations {
    /// Notes an acknowledged write of content `digest`, unless `cache` already shows it:
    /// the watch may deliver a write before its writer gets here. (The watch updates the
    /// cache before it calls [`Expectations::observed`], which waits for this lock, so a
    /// write is either seen here or observed there.)
    #[allow(clippy::too_many_arguments)]
    pub fn wrote(
        &self,
        kind: &'static str,
        cache: &MaterializedCache,
        namespace: &str,
        name: &str,
        before: Option<String>,
        written: Option<String>,
        digest: Digest,
    ) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if written.is_some() && cache.get(namespace, name).and_then(|r| r.resource_version.clone()) == written {
            return;
        }
        // Writes whose event never came (the object went, a relist skipped it) are dropped
        // here rather than by a timer.
        if pending.len() >= 4096 {
            pending.retain(|_, e| e.at.elapsed() < LAPSE);
        }
        let expected = Expected { before, written, digest, at: Instant::now() };
        pending.insert((kind, namespace.to_string(), name.to_string()), expected);
    }

    /// Whether content `digest` was just written here and the cache, still at `cached`
    /// (its resourceVersion), has simply not caught up: then there is nothing to write.
    pub fn in_flight(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        cached: Option<&str>,
        digest: Digest,
    ) -> bool {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .get(&(kind, namespace.to_string(), name.to_string()))
            .is_some_and(|e| e.digest == digest && e.before.as_deref() == cached && e.at.elapsed() < LAPSE)
    }

    /// Follows the watch: whether `record` is the version our own write produced (the
    /// expectation is then met and forgotten).
    pub fn observed(&self, kind: &'static str, record: &Record) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let key = (kind, record.namespace().to_string(), record.name().to_string());
        match pending.get(&key) {
            Some(e) if e.written.is_some() && e.written == record.resource_version => {
                pending.remove(&key);
                true
            }
            _ => false,
        }
    }

    /// The object is gone (deleted by us or by anyone): nothing about it is expected.
    pub fn forget(&self, kind: &'static str, namespace: &str, name: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.remove(&(kind, namespace.to_string(), name.to_string()));
    }

    /// How many writes are awaiting their watch event.
    pub fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no write is awaiting its watch event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn record(rv: &str, digest: Digest) -> Record {
        Record {
            key: Arc::new(("ns".into(), "r".into())),
            resource_version: Some(rv.into()),
            owner_uid: None,
            owner: None,
            assignable: false,
            role_ref: None,
            delegates: None,
            held: false,
            digest,
        }
    }

    #[test]
    fn a_write_stands_in_for_the_cache_until_the_watch_shows_it() {
        let e = Expectations::default();
        let cache = MaterializedCache::default();
        e.wrote("Role", &cache, "ns", "r", None, Some("10".into()), [1; 16]);
        assert!(e.in_flight("Role", "ns", "r", None, [1; 16]), "the cache has not seen the write yet");
        assert!(!e.in_flight("Role", "ns", "r", None, [2; 16]), "other content is written");
        assert!(!e.in_flight("RoleBinding", "ns", "r", None, [1; 16]), "kinds are apart");
        assert!(!e.observed("Role", &record("9", [0; 16])), "an older version is not ours");
        assert!(e.observed("Role", &record("10", [1; 16])), "our write");
        assert!(e.is_empty());
        assert!(!e.in_flight("Role", "ns", "r", None, [1; 16]), "from now on the cache decides");
    }

    #[test]
    fn a_cache_that_moved_on_decides_again() {
        let e = Expectations::default();
        e.wrote("Role", &MaterializedCache::default(), "ns", "r", Some("5".into()), Some("10".into()), [1; 16]);
        assert!(e.in_flight("Role", "ns", "r", Some("5"), [1; 16]));
        // The watch skipped our version (a relist) and shows a later edit: compare as usual.
        assert!(!e.in_flight("Role", "ns", "r", Some("12"), [1; 16]));
        assert!(!e.observed("Role", &record("12", [3; 16])));
    }

    #[test]
    fn a_write_the_watch_delivered_first_is_not_expected_again() {
        // Otherwise, once the object is deleted, the empty cache would look like "before
        // the write" and the write would be skipped for good.
        let e = Expectations::default();
        let cache = MaterializedCache::default();
        cache.observe(&kube::runtime::watcher::Event::Apply(record("10", [1; 16])));
        e.wrote("Role", &cache, "ns", "r", None, Some("10".into()), [1; 16]);
        assert!(e.is_empty());
        assert!(!e.in_flight("Role", "ns", "r", None, [1; 16]));
    }

    #[test]
    fn a_deleted_object_is_not_expected() {
        let e = Expectations::default();
        e.wrote("Role", &MaterializedCache::default(), "ns", "r", None, Some("10".into()), [1; 16]);
        e.forget("Role", "ns", "r");
        assert!(!e.in_flight("Role", "ns", "r", None, [1; 16]));
    }
}
