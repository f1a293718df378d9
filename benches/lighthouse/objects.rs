//! What the benchmark writes: customer namespaces, delegations (definition and assignment),
//! and the baseline's copies of the controller's Roles and RoleBindings, written directly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding, RoleRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use kube_lighthouse::api::{ProvisioningState, RegistrationAssignment, RegistrationDefinition};
use kube_lighthouse::model::keys;
use serde_json::json;

use crate::common::MSP_TENANT;
use crate::probe::Team;
use crate::{GIVE_UP, POST};

fn customer_tenant(i: usize) -> String {
    format!("c0570000-0000-4000-8000-{i:012x}")
}

pub async fn create_namespaces(client: &Client, names: &[String], tenant_label: bool, concurrency: usize) {
    let api: Api<Namespace> = Api::all(client.clone());
    stream::iter(names.iter().enumerate())
        .for_each_concurrent(concurrency, |(i, name)| {
            let api = api.clone();
            async move {
                let mut labels = json!({"kubelighthouse.io/bench": "true"});
                if tenant_label {
                    labels["kubelighthouse.io/tenant-id"] = json!(customer_tenant(i));
                }
                let ns: Namespace =
                    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("namespace");
                retry(|| api.create(&POST, &ns)).await;
            }
        })
        .await;
}

/// Retries a create on transient errors (the API server under load); "already exists" is done.
pub async fn retry<T, F, Fut>(mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    for attempt in 0.. {
        match call().await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => return,
            Err(e) if attempt < 20 => {
                eprintln!("retrying after: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("gave up: {e}"),
        }
    }
}

pub fn definition_of(namespace: &str, name: &str, team: &Team) -> RegistrationDefinition {
    serde_json::from_value(json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "registrationDefinitionName": "Contoso managed services",
            "managedByTenantId": MSP_TENANT,
            "authorizations": team.authorizations(),
        },
    }))
    .expect("definition")
}

pub fn assignment_of(namespace: &str, name: &str) -> RegistrationAssignment {
    serde_json::from_value(json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1",
        "kind": "RegistrationAssignment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"registrationDefinitionRef": {"name": name}},
    }))
    .expect("assignment")
}

pub async fn create_delegation(client: &Client, namespace: &str, name: &str, team: &Team) {
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), namespace);
    let definition = definition_of(namespace, name, team);
    retry(|| definitions.create(&POST, &definition)).await;
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), namespace);
    let assignment = assignment_of(namespace, name);
    retry(|| assignments.create(&POST, &assignment)).await;
}

pub async fn onboard(client: &Client, subscriptions: &[String], team: &Team, concurrency: usize) {
    onboard_timed(client, subscriptions, team, concurrency, &Starts::new(Instant::now())).await
}

/// When each customer (namespace) started its first write, from a common start.
pub struct Starts {
    since: Instant,
    at: std::sync::Mutex<BTreeMap<String, Duration>>,
}

impl Starts {
    pub fn new(since: Instant) -> Starts {
        Starts { since, at: Default::default() }
    }

    /// Records `namespace`'s first write as starting now (later calls keep the first).
    pub fn start(&self, namespace: &str) {
        let now = self.since.elapsed();
        self.at.lock().expect("starts").entry(namespace.to_string()).or_insert(now);
    }

    pub fn into_inner(self) -> BTreeMap<String, Duration> {
        self.at.into_inner().expect("starts")
    }
}

/// [`onboard`], recording when each customer started to apply its delegation.
pub async fn onboard_timed(
    client: &Client,
    subscriptions: &[String],
    team: &Team,
    concurrency: usize,
    starts: &Starts,
) {
    stream::iter(subscriptions)
        .for_each_concurrent(concurrency, |ns| {
            starts.start(ns);
            create_delegation(client, ns, "contoso", team)
        })
        .await;
}

/// Assignments in `Succeeded` state, cluster-wide.
async fn succeeded_assignments(client: &Client) -> usize {
    let api: Api<RegistrationAssignment> = Api::all(client.clone());
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|a| a.status.as_ref().and_then(|s| s.provisioning_state) == Some(ProvisioningState::Succeeded))
                .count()
        })
        .unwrap_or(0)
}

pub async fn until_succeeded(client: &Client, count: usize) {
    let started = Instant::now();
    while succeeded_assignments(client).await < count {
        assert!(started.elapsed() < GIVE_UP, "assignments never all succeeded");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A Role's name with the controller's prefix replaced: a binding to a Role named as the
/// controller names its own is one the guard removes (User Access Administrator's limit).
fn rename(name: &str) -> String {
    match name.strip_prefix("kubelighthouse:") {
        Some(rest) => format!("baseline:{rest}"),
        None => name.to_string(),
    }
}

/// The controller's labels renamed, so the controller neither adopts nor prunes the copies,
/// and the names, so its guard does not take them for its own Roles.
fn relabel(meta: &ObjectMeta, namespace: &str) -> ObjectMeta {
    let rename_keys = |m: &Option<BTreeMap<String, String>>| {
        m.as_ref().map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.replace("kubelighthouse.io/", "baseline.kubelighthouse.io/"),
                        v.replace("kube-lighthouse", "kube-baseline"),
                    )
                })
                .collect()
        })
    };
    ObjectMeta {
        name: meta.name.as_deref().map(rename),
        namespace: Some(namespace.to_string()),
        labels: rename_keys(&meta.labels),
        annotations: rename_keys(&meta.annotations),
        ..Default::default()
    }
}

pub enum RbacObject {
    Role(Role),
    Binding(RoleBinding),
}

/// What the controller wrote into `from[i]`, addressed to `to[i]`: Roles first, as a careful
/// client writes them, so a binding never points at a missing Role.
pub async fn baseline_objects(client: &Client, from: &[String], to: &[String]) -> Vec<RbacObject> {
    let selector = ListParams::default().labels("app.kubernetes.io/managed-by=kube-lighthouse");
    let roles = Api::<Role>::all(client.clone()).list(&selector).await.expect("list roles").items;
    let bindings = Api::<RoleBinding>::all(client.clone()).list(&selector).await.expect("list bindings").items;
    let target: BTreeMap<&str, &str> = from.iter().map(String::as_str).zip(to.iter().map(String::as_str)).collect();
    let mut objects = Vec::new();
    for (source, destination) in from.iter().zip(to) {
        let here = |ns: Option<String>| ns.as_deref() == Some(source.as_str());
        for role in roles.iter().filter(|r| here(r.namespace())) {
            objects.push(RbacObject::Role(Role {
                metadata: relabel(&role.metadata, destination),
                rules: role.rules.clone(),
            }));
        }
        for binding in bindings.iter().filter(|b| here(b.namespace())) {
            let role_ref = RoleRef { name: rename(&binding.role_ref.name), ..binding.role_ref.clone() };
            objects.push(RbacObject::Binding(RoleBinding {
                metadata: relabel(&binding.metadata, destination),
                role_ref,
                subjects: binding.subjects.clone(),
            }));
        }
    }
    assert!(target.len() == from.len() && !objects.is_empty(), "nothing to copy for the baseline");
    objects
}

impl RbacObject {
    pub fn namespace(&self) -> String {
        match self {
            RbacObject::Role(r) => r.namespace(),
            RbacObject::Binding(b) => b.namespace(),
        }
        .unwrap_or_default()
    }

    /// The same object in `namespace`.
    pub fn moved_to(&self, namespace: &str) -> RbacObject {
        let moved = |meta: &ObjectMeta| ObjectMeta { namespace: Some(namespace.to_string()), ..meta.clone() };
        match self {
            RbacObject::Role(r) => RbacObject::Role(Role { metadata: moved(&r.metadata), ..r.clone() }),
            RbacObject::Binding(b) => RbacObject::Binding(RoleBinding { metadata: moved(&b.metadata), ..b.clone() }),
        }
    }
}

/// Server-side applies `objects` the way the controller does (one field manager, forced).
pub async fn apply_objects(client: &Client, objects: &[RbacObject], concurrency: usize) {
    let params = PatchParams::apply(keys::FIELD_MANAGER).force();
    stream::iter(objects)
        .for_each_concurrent(concurrency, |object| {
            let params = &params;
            async move {
                match object {
                    RbacObject::Role(role) => {
                        let api: Api<Role> = Api::namespaced(client.clone(), &object.namespace());
                        let (name, patch) = (role.name_any(), Patch::Apply(role));
                        retry(|| api.patch(&name, params, &patch)).await;
                    }
                    RbacObject::Binding(binding) => {
                        let api: Api<RoleBinding> = Api::namespaced(client.clone(), &object.namespace());
                        let (name, patch) = (binding.name_any(), Patch::Apply(binding));
                        retry(|| api.patch(&name, params, &patch)).await;
                    }
                }
            }
        })
        .await;
}

pub async fn write_baseline(client: &Client, objects: &[RbacObject], concurrency: usize, starts: &Starts) {
    stream::iter(objects)
        .for_each_concurrent(concurrency, |object| async move {
            starts.start(&object.namespace());
            match object {
                RbacObject::Role(role) => {
                    let api: Api<Role> = Api::namespaced(client.clone(), &object.namespace());
                    retry(|| api.create(&POST, role)).await;
                }
                RbacObject::Binding(binding) => {
                    let api: Api<RoleBinding> = Api::namespaced(client.clone(), &object.namespace());
                    retry(|| api.create(&POST, binding)).await;
                }
            }
        })
        .await;
}
