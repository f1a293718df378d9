//! The guard of User Access Administrator's limit (SPEC §4, [`crate::model::user_access`])
//! where the admission webhook did not judge: a RoleBinding that binds an assignable Role to
//! anything but the ServiceAccounts of its namespace, or any other Role the controller made,
//! is deleted, with a Warning Event on it.
//!
//! RBAC lets a User Access Administrator create bindings to its assignable Roles but cannot
//! restrict their subjects. The webhook refuses a bad one before it exists; without the
//! webhook (not installed, or bypassed) this guard removes it as soon as the watch shows it.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Preconditions};
use tracing::{info, warn};

use super::context::Context;
use crate::model::status::Notice;
use crate::model::user_access;

/// A RoleBinding that breaks the limit, and why.
#[derive(Clone, Debug)]
pub struct Offence {
    /// The RoleBinding's namespace.
    pub namespace: String,
    /// The RoleBinding's name.
    pub name: String,
    /// The RoleBinding's UID: the delete is conditional on it, so a new binding of the same name
    /// is left alone.
    pub uid: Option<String>,
    /// What breaks the limit, for the Event and the log.
    pub message: String,
}

/// The offence of `binding`, if it is one.
pub fn judge(binding: &RoleBinding) -> Option<Offence> {
    let message = user_access::violation(binding)?;
    Some(Offence {
        namespace: binding.metadata.namespace.clone().unwrap_or_default(),
        name: binding.metadata.name.clone().unwrap_or_default(),
        uid: binding.metadata.uid.clone(),
        message,
    })
}

/// Deletes the binding of `offence`; false when the API server failed (try again later).
async fn remove(ctx: &Context, offence: &Offence) -> bool {
    let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &offence.namespace);
    // Only the binding that was judged: one re-created meanwhile under the same name is
    // judged on its own watch event.
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: offence.uid.clone(), resource_version: None }),
        ..DeleteParams::default()
    };
    match api.delete(&offence.name, &params).await {
        Ok(_) => {
            info!(namespace = %offence.namespace, name = %offence.name, "deleted a RoleBinding beyond User Access Administrator's limit")
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return true,
        Err(e) => {
            warn!(error = %e, namespace = %offence.namespace, name = %offence.name, "could not delete a RoleBinding beyond User Access Administrator's limit; retrying");
            return false;
        }
    }
    let regarding = ObjectReference {
        api_version: Some("rbac.authorization.k8s.io/v1".into()),
        kind: Some("RoleBinding".into()),
        name: Some(offence.name.clone()),
        namespace: Some(offence.namespace.clone()),
        uid: offence.uid.clone(),
        ..Default::default()
    };
    ctx.bookkeeping.publish_to(&regarding, &Notice::user_access_limit(&offence.message)).await;
    true
}

/// Runs until the channel closes. Judged only once the caches are synced, like the sweep.
pub async fn run(ctx: Arc<Context>, offences: impl futures::Stream<Item = Offence>) {
    if ctx.caches_synced().await.is_err() {
        return;
    }
    // Removals that failed, each back after its backoff: a binding beyond the limit must not
    // wait for its next watch event to go.
    let key = |offence: &Offence| format!("guard/{}/{}", offence.namespace, offence.name);
    super::backoff::each_with_retries(&ctx.retries, offences, key, |offence| {
        let ctx = &ctx;
        async move { (!remove(ctx, &offence).await).then_some(offence) }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::controller::testing::{answer, context, next};

    /// A removal the API server fails is tried again after its backoff, without waiting for
    /// another watch event of the binding.
    #[tokio::test]
    async fn a_failed_removal_is_retried() {
        let (ctx, mut server, _cluster) = context();
        let offence = Offence {
            namespace: "sub".into(),
            name: "to-a-person".into(),
            uid: Some("b-uid".into()),
            message: "bound to a person".into(),
        };
        let (offences, received) = futures::channel::mpsc::unbounded();
        offences.unbounded_send(offence).expect("send");
        let guard = tokio::spawn(run(ctx.clone(), received));
        for status in [503, 200] {
            let (method, path, body, send) = next(&mut server).await;
            assert_eq!(
                (method.as_str(), path.as_str()),
                ("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/sub/rolebindings/to-a-person?")
            );
            assert_eq!(body["preconditions"]["uid"], "b-uid");
            answer(
                send,
                status,
                json!({"apiVersion": "v1", "kind": "Status", "code": status, "status": if status == 200 { "Success" } else { "Failure" }}),
            );
        }
        let (method, _, event, send) = next(&mut server).await;
        assert_eq!((method.as_str(), event["reason"].as_str()), ("POST", Some("UserAccessAdministratorLimit")));
        answer(send, 201, event);
        drop(offences);
        guard.await.expect("the guard ends with its channel");
    }
}
