//! Orphan sweep: Roles and RoleBindings labelled as ours whose assignment no longer exists
//! (deleted while its finalizer was bypassed, or left by an older version) are deleted.
//! One that names no assignment at all was never ours (everything the controller makes
//! carries the `assignment-uid` label from its first write): someone put our label on their
//! own object, so the label is taken off again and the object is left alone. Without our
//! label it is in view of the guard's watch of foreign RoleBindings, so the label cannot
//! shelter a grant beyond User Access Administrator's limit.
//! Every managed object seen by the watches is a candidate; it is judged only once the
//! caches are synced, so a cold cache never looks like "no assignments".

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::context::Context;
use super::materialized::{Key, MaterializedCache, Record};
use crate::api::RegistrationAssignment;
use crate::model::keys;

/// A materialized object to check.
#[derive(Clone, Debug)]
pub enum Candidate {
    /// A Role, by `(namespace, name)`.
    Role(Key),
    /// A RoleBinding, by `(namespace, name)`.
    Binding(Key),
}

/// What the sweep does with a managed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its assignment exists and its annotation names it: nothing (the assignment's own
    /// reconcile keeps it exact).
    Owned,
    /// Its UID label names a live assignment that its `assignment` annotation does not
    /// (missing or another one: made by hand, since the controller writes both together):
    /// that assignment is reconciled, which rewrites the object or prunes it. The watch's
    /// triggers follow the annotation, so without this nothing would.
    Unattributed(ObjectRef<RegistrationAssignment>),
    /// It names an assignment that is gone: delete it.
    Orphan,
    /// It names no assignment, so it was never ours: take our labels off, leave the object.
    Foreign,
}

/// The sweep's verdict on a record, given the live assignment of a UID.
pub fn verdict(
    record: &Record,
    assignment_of_uid: impl Fn(&str) -> Option<ObjectRef<RegistrationAssignment>>,
) -> Verdict {
    let Some(uid) = &record.owner_uid else { return Verdict::Foreign };
    match assignment_of_uid(uid) {
        None => Verdict::Orphan,
        Some(owner) if record.owning_assignment().as_ref() == Some(&owner) => Verdict::Owned,
        Some(owner) => Verdict::Unattributed(owner),
    }
}

fn judge(cache: &MaterializedCache, key: &Key, ctx: &Context) -> Option<(std::sync::Arc<Record>, Verdict)> {
    let record = cache.get(&key.0, &key.1)?;
    let verdict = verdict(&record, |uid| ctx.caches.assignment_with_uid(uid));
    Some((record, verdict))
}

/// Whether the orphan is gone.
async fn delete<K>(api: Api<K>, name: &str) -> bool
where
    K: k8s_openapi::Resource + kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => info!(kind = K::KIND, %name, "swept orphan"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            warn!(error = %e, %name, "could not sweep orphan; retrying");
            return false;
        }
    }
    true
}

/// A JSON merge patch that removes every label the controller sets on what it materializes.
pub fn unlabel_patch() -> serde_json::Value {
    let labels: serde_json::Map<String, serde_json::Value> =
        keys::MATERIALIZED_LABELS.iter().map(|k| (k.to_string(), serde_json::Value::Null)).collect();
    serde_json::json!({"metadata": {"labels": labels}})
}

/// Whether our labels are off (or the object gone).
async fn unlabel<K>(api: Api<K>, name: &str) -> bool
where
    K: k8s_openapi::Resource + kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.patch(name, &PatchParams::default(), &Patch::Merge(unlabel_patch())).await {
        Ok(_) => info!(kind = K::KIND, %name, "took our label off an object that names no assignment"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            warn!(error = %e, %name, "could not take our label off a foreign object; retrying");
            return false;
        }
    }
    true
}

/// Whether the verdict is carried out (false: an API call failed, try again later).
async fn carry_out<K>(ctx: &Context, api: Api<K>, record: &Record, verdict: Verdict) -> bool
where
    K: k8s_openapi::Resource + kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match verdict {
        Verdict::Owned => true,
        Verdict::Unattributed(owner) => {
            info!(kind = K::KIND, name = %record.name(), assignment = %owner, "labelled with an assignment it does not belong to; reconciling that assignment");
            let _ = ctx.assignment_triggers.unbounded_send(owner);
            true
        }
        Verdict::Orphan => delete(api, record.name()).await,
        Verdict::Foreign => unlabel(api, record.name()).await,
    }
}

/// Judges `candidate` afresh and carries the verdict out; whether that is done.
async fn sweep(ctx: &Context, candidate: &Candidate) -> bool {
    match candidate {
        Candidate::Role(key) => match judge(&ctx.caches.roles, key, ctx) {
            Some((role, verdict)) => {
                carry_out(ctx, Api::<Role>::namespaced(ctx.client.clone(), role.namespace()), &role, verdict).await
            }
            None => true,
        },
        Candidate::Binding(key) => match judge(&ctx.caches.bindings, key, ctx) {
            Some((b, verdict)) => {
                carry_out(ctx, Api::<RoleBinding>::namespaced(ctx.client.clone(), b.namespace()), &b, verdict).await
            }
            None => true,
        },
    }
}

/// Runs until the candidate channel closes.
pub async fn run(ctx: std::sync::Arc<Context>, candidates: impl futures::Stream<Item = Candidate>) {
    if ctx.caches_synced().await.is_err() {
        return;
    }
    // Sweeps that failed, each back after its backoff and judged afresh then: an orphan's
    // access must not wait for its next watch event to go.
    let key = |candidate: &Candidate| match candidate {
        Candidate::Role(k) => format!("sweep/Role/{}/{}", k.0, k.1),
        Candidate::Binding(k) => format!("sweep/RoleBinding/{}/{}", k.0, k.1),
    };
    super::backoff::each_with_retries(&ctx.retries, candidates, key, |candidate| {
        let ctx = &ctx;
        async move { (!sweep(ctx, &candidate).await).then_some(candidate) }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn binding(labels: &[(&str, &str)], owner: Option<&str>) -> Record {
        Record::from_binding(&RoleBinding {
            metadata: ObjectMeta {
                name: Some("b".into()),
                namespace: Some("ns".into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                annotations: owner.map(|o| [(keys::ASSIGNMENT.to_string(), o.to_string())].into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: "view".into(),
            },
            subjects: None,
        })
    }

    /// The live assignment "sub/contoso" has UID u1.
    fn live(uid: &str) -> Option<ObjectRef<RegistrationAssignment>> {
        (uid == "u1").then(|| ObjectRef::new("contoso").within("sub"))
    }

    const OURS: (&str, &str) = (keys::MANAGED_BY, keys::MANAGER);

    #[test]
    fn an_object_of_a_live_assignment_is_kept() {
        let r = binding(&[OURS, (keys::ASSIGNMENT_UID, "u1")], Some("sub/contoso"));
        assert_eq!(verdict(&r, live), Verdict::Owned);
    }

    #[test]
    fn an_object_of_a_gone_assignment_is_deleted() {
        let r = binding(&[OURS, (keys::ASSIGNMENT_UID, "u2")], Some("sub/gone"));
        assert_eq!(verdict(&r, live), Verdict::Orphan);
    }

    #[test]
    fn a_live_assignments_uid_without_its_annotation_has_that_assignment_reconciled() {
        let unannotated = binding(&[OURS, (keys::ASSIGNMENT_UID, "u1")], None);
        assert_eq!(verdict(&unannotated, live), Verdict::Unattributed(ObjectRef::new("contoso").within("sub")));
        let another = binding(&[OURS, (keys::ASSIGNMENT_UID, "u1")], Some("sub/other"));
        assert_eq!(verdict(&another, live), Verdict::Unattributed(ObjectRef::new("contoso").within("sub")));
    }

    /// An orphan whose deletion the API server fails is swept again after its backoff,
    /// without waiting for another watch event.
    #[tokio::test]
    async fn a_failed_sweep_is_retried() {
        use crate::controller::testing::{answer, context, next};
        let (ctx, mut server, _cluster) = context();
        let orphan = binding(&[OURS, (keys::ASSIGNMENT_UID, "gone")], Some("sub/gone"));
        ctx.caches.bindings.observe(&kube::runtime::watcher::Event::Apply(orphan.clone()));
        let (candidates, received) = futures::channel::mpsc::unbounded();
        candidates.unbounded_send(Candidate::Binding(orphan.key.clone())).expect("send");
        let sweeper = tokio::spawn(run(ctx.clone(), received));
        for status in [503, 200] {
            let (method, path, _, send) = next(&mut server).await;
            assert_eq!(
                (method.as_str(), path.as_str()),
                ("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings/b?")
            );
            let outcome = if status == 200 { "Success" } else { "Failure" };
            answer(
                send,
                status,
                serde_json::json!({"apiVersion": "v1", "kind": "Status", "code": status, "status": outcome}),
            );
        }
        drop(candidates);
        sweeper.await.expect("the sweep ends with its channel");
    }

    #[test]
    fn our_label_on_an_object_that_names_no_assignment_is_taken_off() {
        let r = binding(&[OURS], None);
        assert_eq!(verdict(&r, live), Verdict::Foreign);
        let patch = unlabel_patch();
        let labels = patch["metadata"]["labels"].as_object().expect("labels");
        assert!(labels[keys::MANAGED_BY].is_null(), "the watch's selector label goes");
        assert_eq!(labels.len(), keys::MATERIALIZED_LABELS.len());
        assert!(labels.values().all(serde_json::Value::is_null));
    }
}
