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
//!
//! The same notes tell a revocation where to look beyond the cache. Each RBAC write is noted
//! with its owner (the assignment's UID) *before* it is sent, and stays noted until the watch
//! shows the version it produced or the object is deleted: a write the cache does not show
//! yet, even one whose answer never came back (a timeout after the API server committed it).
//! A revocation covers the namespaces of the owner's cached objects and those of its writes
//! in flight ([`Expectations::namespaces_in_flight`]), so revoking from the cache never
//! misses an object the controller wrote.

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

/// How long a write's owner note stands when the watch never shows the write (an object
/// deleted meanwhile by someone else, a relist that skipped the version): long past any
/// watch delay, after which the cache, or the orphan sweep, has seen the object.
pub const OWNER_LAPSE: Duration = Duration::from_secs(600);

/// A write sent on an owner's behalf that the watch has not shown yet.
struct InFlight {
    /// The owning assignment's UID.
    owner: String,
    /// The resourceVersion the write produced, once answered.
    written: Option<String>,
    at: Instant,
}

type ObjectKey = (&'static str, String, String);

/// Writes awaiting their watch event, by kind, namespace and name.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<ObjectKey, Expected>>,
    /// Every write sent and not yet seen by the watch, with its owner.
    owners: Mutex<HashMap<ObjectKey, InFlight>>,
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

    /// Notes a write of object `kind` `namespace`/`name` on behalf of the assignment with
    /// UID `owner`, before it is sent.
    pub fn sending(&self, kind: &'static str, namespace: &str, name: &str, owner: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if owners.len() >= 4096 {
            owners.retain(|_, e| e.at.elapsed() < OWNER_LAPSE);
        }
        let note = InFlight { owner: owner.to_string(), written: None, at: Instant::now() };
        owners.insert((kind, namespace.to_string(), name.to_string()), note);
    }

    /// The write noted by [`Expectations::sending`] was answered with resourceVersion
    /// `written`; once `cache` shows it (now, or when the watch delivers it), the note goes.
    pub fn sent(
        &self,
        kind: &'static str,
        cache: &MaterializedCache,
        namespace: &str,
        name: &str,
        written: Option<String>,
    ) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        let key = (kind, namespace.to_string(), name.to_string());
        if written.is_some() && cache.get(namespace, name).and_then(|r| r.resource_version.clone()) == written {
            owners.remove(&key);
        } else if let Some(note) = owners.get_mut(&key) {
            note.written = written;
        }
    }

    /// The namespaces where a write on behalf of `owner` was sent and the watch has not
    /// shown it yet (answered or not), sorted.
    pub fn namespaces_in_flight(&self, owner: &str) -> std::collections::BTreeSet<String> {
        let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners
            .iter()
            .filter(|(_, e)| e.owner == owner && e.at.elapsed() < OWNER_LAPSE)
            .map(|((_, namespace, _), _)| namespace.clone())
            .collect()
    }

    /// Everything of `owner` in `namespace` was deleted by label: no write of its there is
    /// in flight any more (a revocation runs in the owner's reconcile, after its writes).
    pub fn revoked(&self, owner: &str, namespace: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.retain(|(_, ns, _), e| !(e.owner == owner && ns == namespace));
    }

    /// Follows the watch: whether `record` is the version our own write produced (the
    /// expectation is then met and forgotten).
    pub fn observed(&self, kind: &'static str, record: &Record) -> bool {
        let key = (kind, record.namespace().to_string(), record.name().to_string());
        {
            let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
            if owners.get(&key).is_some_and(|e| e.written.is_some() && e.written == record.resource_version) {
                owners.remove(&key);
            }
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
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
        let key = (kind, namespace.to_string(), name.to_string());
        self.owners.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.remove(&key);
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
    fn a_write_in_flight_names_its_namespace_until_the_watch_shows_it() {
        let e = Expectations::default();
        let cache = MaterializedCache::default();
        e.sending("Role", "ns", "r", "uid-1");
        e.sending("RoleBinding", "other", "b", "uid-2");
        assert_eq!(e.namespaces_in_flight("uid-1").into_iter().collect::<Vec<_>>(), ["ns"], "sent, not answered yet");
        e.sent("Role", &cache, "ns", "r", Some("10".into()));
        assert!(e.namespaces_in_flight("uid-1").contains("ns"), "answered, not in the cache yet");
        assert!(
            !e.observed("Role", &record("9", [0; 16])) && e.namespaces_in_flight("uid-1").contains("ns"),
            "an older version"
        );
        e.observed("Role", &record("10", [1; 16]));
        assert!(e.namespaces_in_flight("uid-1").is_empty(), "the cache shows it now");
        e.revoked("uid-2", "other");
        assert!(e.namespaces_in_flight("uid-2").is_empty(), "deleted by label");
    }

    #[test]
    fn a_write_without_an_answer_stays_in_flight() {
        // A timeout after the API server committed the write: the object may exist.
        let e = Expectations::default();
        e.sending("RoleBinding", "ns", "b", "uid-1");
        assert!(e.namespaces_in_flight("uid-1").contains("ns"));
        e.forget("RoleBinding", "ns", "b");
        assert!(e.namespaces_in_flight("uid-1").is_empty(), "a deletion seen by the watch ends it");
    }

    #[test]
    fn a_deleted_object_is_not_expected() {
        let e = Expectations::default();
        e.wrote("Role", &MaterializedCache::default(), "ns", "r", None, Some("10".into()), [1; 16]);
        e.forget("Role", "ns", "r");
        assert!(!e.in_flight("Role", "ns", "r", None, [1; 16]));
    }
}
