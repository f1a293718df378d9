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

/// A digest of a Role's rules as the API server normalizes them.
fn rules_digest(rules: Option<&Vec<PolicyRule>>) -> String {
    use sha2::{Digest, Sha256};
    let canonical = serde_json::to_vec(&normalized_rules(rules)).unwrap_or_default();
    Sha256::digest(&canonical).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The form in which the Role cache keeps our Roles: rules replaced by their digest (under
/// [`keys::CACHED_RULES_DIGEST`], an annotation that exists only in memory), managedFields
/// dropped. Catalog roles are long, and a copy of each per namespace dominated the
/// controller's memory (docs/benchmarks.md); the digest still shows every hand edit.
pub fn compact_role(role: &mut Role) {
    let digest = rules_digest(role.rules.as_ref());
    role.rules = None;
    role.metadata.managed_fields = None;
    role.metadata.annotations.get_or_insert_with(Default::default).insert(keys::CACHED_RULES_DIGEST.into(), digest);
}

/// Whether the cached Role already is what we want (a hand edit of rules shows here). The
/// cached Role may be compacted ([`compact_role`]) or whole.
pub fn role_is_current(actual: &Role, desired: &Role) -> bool {
    let actual_digest = match actual.metadata.annotations.as_ref().and_then(|a| a.get(keys::CACHED_RULES_DIGEST)) {
        Some(digest) => digest.clone(),
        None => rules_digest(actual.rules.as_ref()),
    };
    same_metadata(actual, desired) && actual_digest == rules_digest(desired.rules.as_ref())
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
    let _grant = ctx.grants.write();
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
    let _grant = ctx.grants.write();
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
    let bindings = ctx.caches.bindings_of(uid);
    for stale in bindings.iter().filter(|b| owned(b.labels()) && !wanted_bindings.contains(&key(b.as_ref()))) {
        let (ns, name) = key(stale.as_ref());
        delete::<RoleBinding>(ctx, &ns, &name).await?;
        stats.deleted += 1;
    }
    let roles = ctx.caches.roles_of(uid);
    for stale in roles.iter().filter(|r| owned(r.labels()) && !wanted_roles.contains(&key(r.as_ref()))) {
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
    fn a_compacted_role_keeps_only_a_digest_and_still_shows_drift() {
        let desired = role(vec![get_pods()]);
        let mut cached = desired.clone();
        cached.rules = Some(vec![PolicyRule { resource_names: Some(vec![]), ..get_pods() }]);
        compact_role(&mut cached);
        assert!(cached.rules.is_none());
        assert!(role_is_current(&cached, &desired), "server normalization is not drift");

        let mut edited = desired.clone();
        edited.rules.as_mut().expect("rules")[0].verbs.push("delete".into());
        compact_role(&mut edited);
        assert!(!role_is_current(&edited, &desired), "an edited rule is drift");

        let mut emptied = desired.clone();
        emptied.rules = None;
        compact_role(&mut emptied);
        assert!(!role_is_current(&emptied, &desired), "removed rules are drift");
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
