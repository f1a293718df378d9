//! Hub mode (docs/fleet.md): the same binary, `--hub`, follows the reports of the customer
//! clusters its `ClusterProfile`s name and serves the views of the whole fleet, filtered per
//! caller by [`crate::model::fleet`].
//!
//! One loop, every `--hub-poll-ms`: list the ClusterProfiles (of `--hub-namespace`, or all), work out each
//! one's access ([`fleet::access`]: the Cluster Inventory API's exec credential provider, or a
//! hand-written profile's Secret), then read `reports/<tenant>` for every `--hub-tenants`
//! tenant from every cluster at once (at most [`CONCURRENT_READS`] in flight). A Secret is
//! not read every round: one `get` per cluster per round would cost the hub's API server more
//! than all the reports (docs/benchmarks.md, "Fleet"); it is read again once it is
//! [`SECRET_REFRESH`] old (staggered per Secret), when the profile names another, and after
//! any read of its cluster that did not return a report, so a rotated credential is used from
//! the next round. Each cluster keeps one client (its TLS connections) while its kubeconfig
//! stays the same. A report read
//! replaces the last; 401/403 means the customer withdrew the grant and drops the cluster's
//! data; anything else keeps nothing and records the cluster as unreadable with the time it
//! was last read. The hub only ever sends `get` on reports: it needs and asks for no other
//! right in a customer cluster, and revocation there never waits for it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use tracing::{debug, info, warn};

use crate::api::cluster_profile::{
    ClusterProfile, ProviderFile, CLUSTER_PROFILES, CLUSTER_PROFILE_GROUP, CLUSTER_PROFILE_VERSION,
};
use crate::api::view::Report;
use crate::config::Config;
use crate::model::fleet::{self, Access, Endpoint, FleetState, Followed};
use crate::runtime::RunError;
use crate::serve::front_proxy::FrontProxy;
use crate::serve::views::{Source, Views};
use crate::serve::Routes;

/// Reports read at once, across the fleet.
pub const CONCURRENT_READS: usize = 64;
/// How long one report read may take before the cluster counts as unreadable.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A profile's Secret is read again once this old, plus up to as much again (staggered by
/// name, so that a fleet's Secrets are not all read in one round).
pub const SECRET_REFRESH: Duration = Duration::from_secs(30);
/// Secrets read at once from the hub's API server.
const CONCURRENT_SECRET_READS: usize = 8;

/// What the hub knows of the fleet now; the views read a snapshot per request.
#[derive(Default)]
pub struct Fleet {
    state: RwLock<FleetState>,
    /// Each followed cluster's endpoint (server and CA, never a credential), by name: what
    /// `kubectl lighthouse use` points an engineer at.
    endpoints: RwLock<BTreeMap<String, Endpoint>>,
}

impl Fleet {
    /// A copy of the state (reports are shared, not copied).
    pub fn snapshot(&self) -> FleetState {
        self.state.read().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The endpoints of the clusters followed, by cluster name.
    pub fn endpoints(&self) -> BTreeMap<String, Endpoint> {
        self.endpoints.read().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    fn replace(&self, next: FleetState, endpoints: BTreeMap<String, Endpoint>) {
        match self.state.write() {
            Ok(mut s) => *s = next,
            Err(p) => *p.into_inner() = next,
        }
        match self.endpoints.write() {
            Ok(mut s) => *s = endpoints,
            Err(p) => *p.into_inner() = endpoints,
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now()).to_string()
}

/// A client for one cluster, and the kubeconfig text it was built from.
struct Connection {
    kubeconfig: String,
    client: Client,
}

async fn client_of(kubeconfig: &str) -> Result<Client, String> {
    let parsed = Kubeconfig::from_yaml(kubeconfig).map_err(|e| format!("kubeconfig: {e}"))?;
    let config =
        kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default()).await.map_err(|e| e.to_string())?;
    Client::try_from(config).map_err(|e| e.to_string())
}

/// A Secret's kubeconfig as last read (or why it could not be), and when.
struct CachedSecret {
    kubeconfig: Result<String, String>,
    read_at: Instant,
}

/// The kubeconfigs read from Secrets, by `<namespace>/<name>`.
type SecretCache = HashMap<String, CachedSecret>;

/// How old `key`'s Secret may get before it is read again: [`SECRET_REFRESH`] plus a part of
/// it that depends on the name.
fn refresh_after(key: &str) -> Duration {
    let spread = key.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    SECRET_REFRESH + Duration::from_millis(spread % (SECRET_REFRESH.as_millis() as u64).max(1))
}

async fn read_secret(hub: &Client, namespace: &str, name: &str) -> Result<String, String> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(hub.clone(), namespace);
    let secret = secrets.get(name).await.map_err(|e| format!("Secret {namespace}/{name}: {e}"))?;
    let bytes = secret
        .data
        .and_then(|d| d.get("kubeconfig").cloned())
        .ok_or_else(|| format!("Secret {namespace}/{name} has no kubeconfig key"))?;
    String::from_utf8(bytes.0).map_err(|_| format!("Secret {namespace}/{name}: kubeconfig is not UTF-8"))
}

/// How each profile is reached: the kubeconfig text, or why none; and the key of the Secret
/// it came from, if any. Secrets missing from `cache` or due for a refresh are read (a few
/// at once); the others come from `cache`.
async fn kubeconfigs(
    hub: &Client,
    profiles: &BTreeMap<String, ClusterProfile>,
    providers: &ProviderFile,
    cache: &mut SecretCache,
) -> Vec<(String, Result<String, String>, Option<String>)> {
    let accesses: Vec<(String, Result<Access, String>, String)> = profiles
        .iter()
        .map(|(name, profile)| {
            let namespace = profile.metadata.namespace.clone().unwrap_or_default();
            (name.clone(), fleet::access(profile, providers).map_err(|e| e.to_string()), namespace)
        })
        .collect();
    let wanted: std::collections::BTreeSet<(String, String)> = accesses
        .iter()
        .filter_map(|(_, access, namespace)| match access {
            Ok(Access::Secret(secret)) => Some((namespace.clone(), secret.clone())),
            _ => None,
        })
        .collect();
    let keys: std::collections::HashSet<String> = wanted.iter().map(|(ns, name)| format!("{ns}/{name}")).collect();
    cache.retain(|key, _| keys.contains(key));
    let due: Vec<(String, String)> = wanted
        .into_iter()
        .filter(|(ns, name)| {
            let key = format!("{ns}/{name}");
            cache.get(&key).is_none_or(|c| c.read_at.elapsed() >= refresh_after(&key))
        })
        .collect();
    let read: Vec<(String, Result<String, String>)> = futures::stream::iter(due)
        .map(|(namespace, name)| async move {
            let kubeconfig = read_secret(hub, &namespace, &name).await;
            (format!("{namespace}/{name}"), kubeconfig)
        })
        .buffer_unordered(CONCURRENT_SECRET_READS)
        .collect()
        .await;
    for (key, kubeconfig) in read {
        cache.insert(key, CachedSecret { kubeconfig, read_at: Instant::now() });
    }
    accesses
        .into_iter()
        .map(|(name, access, namespace)| match access {
            Err(e) => (name, Err(e), None),
            Ok(Access::Kubeconfig(k)) => (name, Ok(k), None),
            Ok(Access::Secret(secret)) => {
                let key = format!("{namespace}/{secret}");
                let kubeconfig = cache
                    .get(&key)
                    .map(|c| c.kubeconfig.clone())
                    .unwrap_or_else(|| Err(format!("Secret {key} was not read")));
                (name, kubeconfig, Some(key))
            }
        })
        .collect()
}

/// One round: every profile's reports, read at once; the next state.
async fn round(
    hub: &Client,
    namespace: Option<&str>,
    providers: &ProviderFile,
    tenants: &[String],
    previous: &FleetState,
    connections: &mut HashMap<String, Connection>,
    secrets: &mut SecretCache,
) -> Result<(FleetState, BTreeMap<String, Endpoint>), kube::Error> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(CLUSTER_PROFILE_GROUP, CLUSTER_PROFILE_VERSION, "ClusterProfile"),
        CLUSTER_PROFILES,
    );
    let api = match namespace {
        Some(ns) => Api::<DynamicObject>::namespaced_with(hub.clone(), ns, &resource),
        None => Api::<DynamicObject>::all_with(hub.clone(), &resource),
    };
    let listed = api.list(&Default::default()).await?;
    let mut profiles: BTreeMap<String, ClusterProfile> = BTreeMap::new();
    for object in listed.items {
        let Ok(profile) = serde_json::to_value(&object).and_then(serde_json::from_value::<ClusterProfile>) else {
            continue;
        };
        let name = profile.metadata.name.clone().unwrap_or_default();
        if profiles.contains_key(&name) {
            warn!(cluster = %name, "two ClusterProfiles share a name: the first (by namespace) is followed");
            continue;
        }
        profiles.insert(name, profile);
    }
    connections.retain(|name, _| profiles.contains_key(name));

    // Connect (or reconnect when the kubeconfig changed), one profile at a time: cheap.
    let mut reachable: Vec<(String, Result<Client, String>)> = Vec::new();
    let mut endpoints = BTreeMap::new();
    let mut secret_of: HashMap<String, String> = HashMap::new();
    for (name, kubeconfig, secret) in kubeconfigs(hub, &profiles, providers, secrets).await {
        if let Some(key) = secret {
            secret_of.insert(name.clone(), key);
        }
        if let Some(endpoint) = kubeconfig.as_deref().ok().and_then(fleet::endpoint) {
            endpoints.insert(name.clone(), endpoint);
        }
        let client = match kubeconfig {
            Ok(k) => match connections.get(&name) {
                Some(c) if c.kubeconfig == k => Ok(c.client.clone()),
                _ => match client_of(&k).await {
                    Ok(client) => {
                        connections.insert(name.clone(), Connection { kubeconfig: k, client: client.clone() });
                        Ok(client)
                    }
                    Err(e) => Err(e),
                },
            },
            Err(e) => Err(e),
        };
        reachable.push((name, client));
    }

    let mut reads: Vec<(String, String, Result<Client, String>)> = Vec::new();
    for (cluster, client) in reachable {
        for tenant in tenants {
            reads.push((cluster.clone(), tenant.clone(), client.clone()));
        }
    }
    let results: Vec<((String, String), Followed)> = futures::stream::iter(reads)
        .map(|(cluster, tenant, client)| {
            let before = match previous.get(&(cluster.clone(), tenant.clone())) {
                Some(Followed::Read { report, .. }) => Some(report.clone()),
                _ => None,
            };
            async move {
                let followed = match client {
                    Err(why) => Err(why),
                    Ok(client) => {
                        match tokio::time::timeout(READ_TIMEOUT, Api::<Report>::all(client).get(&tenant)).await {
                            // A report that says what the last one said (its observedTime aside) is
                            // not kept twice: the fleet's memory is one copy of each report.
                            Ok(Ok(report)) => Ok(match before {
                                Some(b)
                                    if b.managed_by_tenant_id == report.managed_by_tenant_id
                                        && b.delegations == report.delegations =>
                                {
                                    b
                                }
                                _ => Arc::new(report),
                            }),
                            Ok(Err(kube::Error::Api(s))) if s.code == 401 || s.code == 403 => {
                                return ((cluster, tenant), Followed::Withdrawn { since: now() });
                            }
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err(format!("no answer within {} s", READ_TIMEOUT.as_secs())),
                        }
                    }
                };
                let key = (cluster, tenant);
                let followed = match followed {
                    Ok(report) => Followed::Read { report, observed_time: now() },
                    Err(error) => Followed::Unreadable { error, last_observed: None },
                };
                (key, followed)
            }
        })
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await;

    let mut next = FleetState::new();
    for (key, followed) in results {
        // A cluster that gave no report may have been given a new credential: its Secret is
        // read again next round.
        if !matches!(followed, Followed::Read { .. }) {
            if let Some(secret) = secret_of.get(&key.0) {
                secrets.remove(secret);
            }
        }
        let followed = match followed {
            Followed::Unreadable { error, .. } => {
                let last_observed = match previous.get(&key) {
                    Some(Followed::Read { observed_time, .. }) => Some(observed_time.clone()),
                    Some(Followed::Unreadable { last_observed, .. }) => last_observed.clone(),
                    _ => None,
                };
                debug!(cluster = %key.0, tenant = %key.1, %error, "report unreadable");
                Followed::Unreadable { error, last_observed }
            }
            Followed::Withdrawn { since } => match previous.get(&key) {
                Some(Followed::Withdrawn { since: before }) => Followed::Withdrawn { since: before.clone() },
                _ => {
                    info!(cluster = %key.0, tenant = %key.1, "the customer withdrew the grant: the cluster's data is dropped");
                    Followed::Withdrawn { since }
                }
            },
            read => read,
        };
        next.insert(key, followed);
    }
    Ok((next, endpoints))
}

/// Runs the hub until `stop` completes: the follow loop, the health server (`--health-port`:
/// ready once the fleet was read once) and the TLS server with the fleet's views (no
/// admission: a hub reconciles nothing; no metrics server).
///
/// # Errors
/// [`RunError`] when the provider file cannot be read, or the health port or the TLS server
/// cannot be bound.
pub async fn run(client: Client, config: &Config, stop: impl Future<Output = ()>) -> Result<(), RunError> {
    let providers: ProviderFile = match &config.hub_provider_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| RunError::Hub(format!("cannot read {}: {e}", path.display())))?;
            serde_json::from_str(&text).map_err(|e| RunError::Hub(format!("{}: {e}", path.display())))?
        }
        None => ProviderFile::default(),
    };
    let tenants: Vec<String> = config
        .hub_tenants
        .iter()
        .map(|t| crate::model::tenant::Guid::parse(t).map(|g| g.to_string()).ok_or_else(|| t.clone()))
        .collect::<Result<_, _>>()
        .map_err(|t| RunError::Hub(format!("--hub-tenants: {t:?} is not a tenant ID (GUID)")))?;
    if tenants.is_empty() {
        return Err(RunError::Hub("--hub-tenants names no managing tenant".into()));
    }
    // Liveness and readiness (the chart's probes): ready once the fleet was read once.
    let health = crate::http::bind(config.health_port, "health").await.map_err(|e| RunError::Bind("health", e))?;
    let fleet = Arc::new(Fleet::default());
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    if let Some(listener) = health {
        tokio::spawn(crate::http::serve_health(listener, ready.clone(), None));
    }
    let interval = Duration::from_millis(config.hub_poll_ms);
    info!(tenants = ?tenants, interval_ms = config.hub_poll_ms, providers = providers.providers.len(), "hub mode: following the fleet's reports");
    let following = {
        let (fleet, client, namespace) = (fleet.clone(), client.clone(), config.hub_namespace.clone());
        tokio::spawn(async move {
            let (mut connections, mut secrets) = (HashMap::new(), SecretCache::new());
            loop {
                let started = tokio::time::Instant::now();
                let previous = fleet.snapshot();
                match round(
                    &client,
                    namespace.as_deref(),
                    &providers,
                    &tenants,
                    &previous,
                    &mut connections,
                    &mut secrets,
                )
                .await
                {
                    Ok((next, endpoints)) => {
                        fleet.replace(next, endpoints);
                        let _ = ready_tx.send(true);
                    }
                    Err(e) => warn!(error = %e, "cannot list the ClusterProfiles; the fleet is kept as last read"),
                }
                tokio::time::sleep_until(started + interval).await;
            }
        })
    };
    let serving = match (&config.webhook_cert, &config.webhook_key) {
        (Some(cert), Some(key)) => {
            let trust = Arc::new(FrontProxy::default());
            tokio::spawn(trust.clone().follow(client.clone()));
            let views = Arc::new(Views { source: Source::Hub(fleet), ready, trust });
            let routes = Routes { admission: None, views: Some(views), admission_clients: None, federation: None };
            Some(crate::serve::serve(config.webhook_port, cert, key, routes).await?)
        }
        _ => {
            warn!("hub mode without --webhook-cert and --webhook-key: the fleet's views are not served");
            None
        }
    };
    stop.await;
    following.abort();
    if let Some(s) = serving {
        s.drain(Duration::from_secs(config.shutdown_delay_seconds)).await;
    }
    Ok(())
}
