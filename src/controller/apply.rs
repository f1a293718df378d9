//! Apply step: make the cluster hold exactly the desired Roles and RoleBindings of one
//! assignment. Server-side apply under one field manager, only for objects whose cached
//! state differs; then prune, by the assignment's UID label, whatever is no longer desired.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, Subject};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, info};

use super::context::Context;
use super::Error;
use crate::model::desired::DesiredRbac;
use crate::model::keys;

/// What one sync changed, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub applied: usize,
    pub deleted: usize,
}

fn contains_all(
    actual: Option<&std::collections::BTreeMap<String, String>>,
    wanted: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    wanted.into_iter().flatten().all(|(k, v)| actual.and_then(|a| a.get(k)) == Some(v))
}

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

fn normalized_subjects(subjects: Option<&Vec<Subject>>) -> Vec<Subject> {
    subjects
        .into_iter()
        .flatten()
        .map(|s| Subject { api_group: s.api_group.clone().filter(|g| !g.is_empty()), ..s.clone() })
        .collect()
}

fn same_metadata<K: Resource>(actual: &K, desired: &K) -> bool {
    contains_all(actual.meta().labels.as_ref(), desired.meta().labels.as_ref())
        && contains_all(actual.meta().annotations.as_ref(), desired.meta().annotations.as_ref())
}

/// Whether the cached Role already is what we want (a hand edit of rules shows here).
pub fn role_is_current(actual: &Role, desired: &Role) -> bool {
    same_metadata(actual, desired)
        && normalized_rules(actual.rules.as_ref()) == normalized_rules(desired.rules.as_ref())
}

/// Whether the cached RoleBinding already is what we want (an added subject shows here).
pub fn binding_is_current(actual: &RoleBinding, desired: &RoleBinding) -> bool {
    same_metadata(actual, desired)
        && actual.role_ref == desired.role_ref
        && normalized_subjects(actual.subjects.as_ref()) == normalized_subjects(desired.subjects.as_ref())
}

fn key<K: Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

async fn server_side_apply<K>(ctx: &Context, object: &K) -> Result<(), Error>
where
    K: k8s_openapi::Resource
        + Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let (namespace, name) = key(object);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = PatchParams::apply(keys::FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(object)).await?;
    ctx.metrics.write(<K as k8s_openapi::Resource>::KIND, "apply");
    debug!(kind = K::kind(&()).as_ref(), %namespace, %name, "applied");
    Ok(())
}

async fn delete<K>(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error>
where
    K: k8s_openapi::Resource
        + Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.metrics.write(<K as k8s_openapi::Resource>::KIND, "delete");
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            info!(kind = K::kind(&()).as_ref(), %namespace, %name, "revoked");
            Ok(())
        }
        // Already gone, or its namespace is being deleted with it.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Brings the assignment with `uid` to exactly `desired`. Roles are written before the
/// bindings that reference them, and bindings are pruned before their Roles, so access that
/// should stay never has a gap.
pub async fn sync(ctx: &Context, uid: &str, desired: &DesiredRbac) -> Result<SyncStats, Error> {
    let mut stats = SyncStats::default();
    for role in &desired.roles {
        let (ns, name) = key(role);
        let cached = ctx.caches.roles.get(&ObjectRef::new(&name).within(&ns));
        if !cached.is_some_and(|c| role_is_current(&c, role)) {
            server_side_apply(ctx, role).await?;
            stats.applied += 1;
        }
    }
    for binding in &desired.bindings {
        let (ns, name) = key(binding);
        let cached = ctx.caches.bindings.get(&ObjectRef::new(&name).within(&ns));
        match cached {
            Some(c) if binding_is_current(&c, binding) => continue,
            // roleRef is immutable: an object of ours with another roleRef is replaced.
            Some(c) if c.role_ref != binding.role_ref => delete::<RoleBinding>(ctx, &ns, &name).await?,
            _ => {}
        }
        server_side_apply(ctx, binding).await?;
        stats.applied += 1;
    }

    let wanted_bindings: BTreeSet<_> = desired.bindings.iter().map(key).collect();
    let wanted_roles: BTreeSet<_> = desired.roles.iter().map(key).collect();
    let owned = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(keys::ASSIGNMENT_UID).map(String::as_str) == Some(uid)
    };
    for stale in ctx.caches.bindings.state_filter(|b| owned(b.labels()) && !wanted_bindings.contains(&key(b))) {
        let (ns, name) = key(stale.as_ref());
        delete::<RoleBinding>(ctx, &ns, &name).await?;
        stats.deleted += 1;
    }
    for stale in ctx.caches.roles.state_filter(|r| owned(r.labels()) && !wanted_roles.contains(&key(r))) {
        let (ns, name) = key(stale.as_ref());
        delete::<Role>(ctx, &ns, &name).await?;
        stats.deleted += 1;
    }
    Ok(stats)
}

/// Revokes everything the assignment with `uid` owns, listing live rather than trusting the
/// cache: this is the path that must never leave access behind.
pub async fn revoke_all(ctx: &Context, uid: &str) -> Result<usize, Error> {
    let selector = ListParams::default().labels(&format!("{}={uid}", keys::ASSIGNMENT_UID));
    let mut deleted = 0;
    let bindings: Api<RoleBinding> = Api::all(ctx.client.clone());
    for b in bindings.list_metadata(&selector).await?.items {
        delete::<RoleBinding>(ctx, &b.namespace().unwrap_or_default(), &b.name_any()).await?;
        deleted += 1;
    }
    let roles: Api<Role> = Api::all(ctx.client.clone());
    for r in roles.list_metadata(&selector).await?.items {
        delete::<Role>(ctx, &r.namespace().unwrap_or_default(), &r.name_any()).await?;
        deleted += 1;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::RoleRef;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn role(rules: Vec<PolicyRule>) -> Role {
        Role {
            metadata: ObjectMeta {
                name: Some("r".into()),
                namespace: Some("ns".into()),
                labels: Some([("a".to_string(), "b".to_string())].into()),
                ..Default::default()
            },
            rules: Some(rules),
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

    #[test]
    fn server_normalization_is_not_drift() {
        let desired = role(vec![get_pods()]);
        let mut from_server = desired.clone();
        from_server.rules = Some(vec![PolicyRule { resource_names: Some(vec![]), ..get_pods() }]);
        from_server.metadata.labels.as_mut().expect("labels").insert("extra".into(), "kept".into());
        assert!(role_is_current(&from_server, &desired));
    }

    #[test]
    fn edited_rules_and_labels_are_drift() {
        let desired = role(vec![get_pods()]);
        let mut edited = desired.clone();
        edited.rules.as_mut().expect("rules")[0].verbs.push("delete".into());
        assert!(!role_is_current(&edited, &desired));
        let mut relabelled = desired.clone();
        relabelled.metadata.labels = None;
        assert!(!role_is_current(&relabelled, &desired));
    }

    #[test]
    fn an_added_subject_is_drift() {
        let user = |n: &str| Subject {
            kind: "User".into(),
            name: n.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        };
        let desired = RoleBinding {
            metadata: ObjectMeta { name: Some("r".into()), ..Default::default() },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Role".into(),
                name: "r".into(),
            },
            subjects: Some(vec![user("a")]),
        };
        let mut edited = desired.clone();
        edited.subjects.as_mut().expect("subjects").push(user("intruder"));
        assert!(binding_is_current(&desired.clone(), &desired));
        assert!(!binding_is_current(&edited, &desired));
        let sa = Subject {
            kind: "ServiceAccount".into(),
            name: "x".into(),
            api_group: Some(String::new()),
            namespace: Some("n".into()),
        };
        let mut want_sa = desired.clone();
        want_sa.subjects = Some(vec![sa.clone()]);
        let mut got_sa = desired.clone();
        got_sa.subjects = Some(vec![Subject { api_group: None, ..sa }]);
        assert!(binding_is_current(&got_sa, &want_sa));
    }
}
