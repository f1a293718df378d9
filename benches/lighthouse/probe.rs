//! Access probes: the SubjectAccessReviews that tell when a projected identity got (or lost)
//! its access, and the delegation ("team") every benchmark grants.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::common::{projected, review, Access, CONTRIBUTOR, MSP_TENANT, READER};
use crate::objects::RbacObject;
use crate::GIVE_UP;

/// Someone with no access of their own: SubjectAccessReviews ask about this user plus a group.
const NOBODY: &str = "bench-nobody";
/// How many SubjectAccessReviews the probe has in flight at most (the same in both onboarding runs).
const PROBE_CONCURRENCY: usize = 8;

/// One access a projected identity should get: a SubjectAccessReview.
#[derive(Clone, Debug)]
pub struct Probe {
    user: String,
    groups: Vec<String>,
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    namespace: String,
}

/// The authorizer's verdict; None when the review itself failed (retried by the caller).
pub async fn verdict(client: &Client, probe: &Probe) -> Option<bool> {
    let groups: Vec<&str> = probe.groups.iter().map(String::as_str).collect();
    let what = Access {
        verb: probe.verb,
        group: probe.group,
        resource: probe.resource,
        subresource: "",
        namespace: &probe.namespace,
        name: "",
    };
    review(client, &probe.user, &groups, &what).await.ok()
}

/// The delegation every benchmark uses: 3 authorizations over 2 roles (Reader to a group and
/// to a user, Contributor to a group), with principals numbered by `series`.
pub struct Team {
    engineers: String,
    on_call: String,
    lead: String,
}

impl Team {
    pub fn new(series: usize) -> Team {
        let guid = |member: usize| format!("00000000-0000-4000-8000-{:08x}{member:04x}", series);
        Team { engineers: guid(1), on_call: guid(2), lead: guid(3) }
    }

    pub fn authorizations(&self) -> serde_json::Value {
        json!([
            {"principalId": self.engineers, "principalType": "Group", "roleDefinitionId": READER},
            {"principalId": self.on_call, "principalType": "Group", "roleDefinitionId": CONTRIBUTOR},
            {"principalId": self.lead, "principalType": "User", "roleDefinitionId": READER},
        ])
    }

    pub fn engineers_may_list_pods(&self, namespace: &str) -> Probe {
        Probe {
            user: NOBODY.into(),
            groups: vec![projected(MSP_TENANT, &self.engineers)],
            verb: "list",
            group: "",
            resource: "pods",
            namespace: namespace.into(),
        }
    }

    /// Every access the delegation grants in `namespace`, one probe per authorization.
    pub fn probes(&self, namespace: &str) -> Vec<Probe> {
        vec![
            self.engineers_may_list_pods(namespace),
            Probe {
                user: NOBODY.into(),
                groups: vec![projected(MSP_TENANT, &self.on_call)],
                verb: "create",
                group: "apps",
                resource: "deployments",
                namespace: namespace.into(),
            },
            Probe {
                user: projected(MSP_TENANT, &self.lead),
                groups: vec![],
                verb: "list",
                group: "",
                resource: "pods",
                namespace: namespace.into(),
            },
        ]
    }
}

/// When (from `since`) the probes were first allowed: the last of all, and per namespace (a
/// customer) the first and the last of its own.
#[derive(Default)]
pub struct Granted {
    /// The last of all probes.
    pub last: Duration,
    /// Per namespace: its first probe allowed.
    pub first_in: BTreeMap<String, Duration>,
    /// Per namespace: its last probe allowed.
    pub last_in: BTreeMap<String, Duration>,
}

impl Granted {
    fn allowed(mut self, namespace: String, at: Duration) -> Granted {
        self.last = self.last.max(at);
        let first = self.first_in.entry(namespace.clone()).or_insert(at);
        *first = (*first).min(at);
        let last = self.last_in.entry(namespace).or_insert(at);
        *last = (*last).max(at);
        self
    }
}

/// When `probes` were first allowed, from `since` ([`Granted`]).
///
/// The probe watches the Roles and RoleBindings that `selector` picks, as a client waiting for
/// its access would, and reviews an access once a binding naming the identity and the Role it
/// references both exist: the earliest moment the authorizer can allow it. It then reviews
/// again after 5, 10, 20… (at most 200) ms until allowed, since the authorizer's cache trails
/// the watch by a moment. So it sends about one review per access, never lags behind the
/// writes whatever order they come in, and costs both sides of the comparison the same.
pub async fn until_granted(client: &Client, probes: Vec<Probe>, selector: &str, since: Instant) -> Granted {
    let total = probes.len();
    let (ready_tx, ready_rx) = futures::channel::mpsc::unbounded::<Probe>();
    let watch = async move {
        let mut waiting: BTreeMap<String, Vec<Probe>> = BTreeMap::new();
        for probe in probes {
            waiting.entry(probe.namespace.clone()).or_default().push(probe);
        }
        let mut written = Written::default();
        let config = kube::runtime::watcher::Config::default().labels(selector);
        let roles = kube::runtime::watcher(Api::<Role>::all(client.clone()), config.clone())
            .default_backoff()
            .map(|e| e.map(|e| as_rbac(e, RbacObject::Role)));
        let bindings = kube::runtime::watcher(Api::<RoleBinding>::all(client.clone()), config)
            .default_backoff()
            .map(|e| e.map(|e| as_rbac(e, RbacObject::Binding)));
        let mut events = std::pin::pin!(stream::select(roles, bindings));
        while let Some(event) = events.next().await {
            let Some(namespace) = event.ok().and_then(|e| written.record(e)) else { continue };
            let Some(pending) = waiting.get_mut(&namespace) else { continue };
            let (ready, still): (Vec<Probe>, Vec<Probe>) = pending.drain(..).partition(|p| written.could_allow(p));
            *pending = still;
            for probe in ready {
                let _ = ready_tx.unbounded_send(probe);
            }
        }
    };
    let reviews = ready_rx
        .map(|probe| async move {
            let mut backoff = Duration::from_millis(5);
            while verdict(client, &probe).await != Some(true) {
                assert!(since.elapsed() < GIVE_UP, "gave up: {probe:?} never allowed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            (probe.namespace, since.elapsed())
        })
        .buffer_unordered(PROBE_CONCURRENCY)
        .take(total)
        .fold(Granted::default(), |granted, (namespace, at)| async move { granted.allowed(namespace, at) });
    tokio::select! {
        last = reviews => last,
        _ = watch => panic!("the probe's watch ended"),
    }
}

fn as_rbac<K>(
    event: kube::runtime::watcher::Event<K>,
    wrap: fn(K) -> RbacObject,
) -> kube::runtime::watcher::Event<RbacObject> {
    use kube::runtime::watcher::Event;
    match event {
        Event::Apply(o) => Event::Apply(wrap(o)),
        Event::InitApply(o) => Event::InitApply(wrap(o)),
        Event::Delete(o) => Event::Delete(wrap(o)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// What the probe's watch has seen: Roles by namespace and name, bindings in full.
#[derive(Default)]
struct Written {
    roles: std::collections::BTreeSet<(String, String)>,
    bindings: BTreeMap<String, BTreeMap<String, RoleBinding>>,
}

impl Written {
    /// Records an event; the namespace it touched.
    fn record(&mut self, event: kube::runtime::watcher::Event<RbacObject>) -> Option<String> {
        use kube::runtime::watcher::Event;
        let (object, present) = match event {
            Event::Apply(o) | Event::InitApply(o) => (o, true),
            Event::Delete(o) => (o, false),
            Event::Init | Event::InitDone => return None,
        };
        let namespace = object.namespace();
        match object {
            RbacObject::Role(role) => {
                let key = (namespace.clone(), role.name_any());
                if present {
                    self.roles.insert(key);
                } else {
                    self.roles.remove(&key);
                }
            }
            RbacObject::Binding(binding) => {
                let here = self.bindings.entry(namespace.clone()).or_default();
                if present {
                    here.insert(binding.name_any(), binding);
                } else {
                    here.remove(&binding.name_any());
                }
            }
        }
        Some(namespace)
    }

    /// Whether a binding naming the probe's identity, and the Role it references, both exist.
    fn could_allow(&self, probe: &Probe) -> bool {
        let names = |s: &k8s_openapi::api::rbac::v1::Subject| match s.kind.as_str() {
            "User" => s.name == probe.user,
            "Group" => probe.groups.contains(&s.name),
            _ => false,
        };
        self.bindings.get(&probe.namespace).is_some_and(|bindings| {
            bindings.values().any(|b| {
                b.role_ref.kind == "Role"
                    && self.roles.contains(&(probe.namespace.clone(), b.role_ref.name.clone()))
                    && b.subjects.iter().flatten().any(names)
            })
        })
    }
}

/// Polls one probe as fast as the API server answers; the time until it gets `expected`.
pub async fn until_one(client: &Client, probe: &Probe, expected: bool, since: Instant) -> Duration {
    while since.elapsed() < Duration::from_secs(60) {
        if verdict(client, probe).await == Some(expected) {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{probe:?} never got {expected}");
}
