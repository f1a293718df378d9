//! The finalizer step both reconcilers start with: add ours before anything is granted, run
//! the cleanup before letting a deletion finish.
//!
//! Unlike `kube::runtime::finalizer`, adding the finalizer does not end the reconcile: the
//! patch returns the object with the finalizer in place, so the apply step runs on it at once
//! instead of after a watch round trip and a second pass through the queue. On a busy API
//! server that second pass waited behind the whole backlog, and it is the first grant of a new
//! assignment that waited.

use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::Error;

/// What the reconcile is asked to do with the object.
pub enum Step<K> {
    /// Not being deleted; our finalizer is in place.
    Apply(Arc<K>),
    /// Being deleted while our finalizer holds it: clean up, then it is removed.
    Cleanup(Arc<K>),
}

/// Where the object stands with respect to finalizer `name`.
#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Ours is in place at this index and the object is not being deleted.
    Live,
    /// Not ours yet, not being deleted.
    Unclaimed,
    /// Being deleted, ours at this index.
    Deleting(usize),
    /// Being deleted and ours is gone: nothing left for us to do.
    Released,
}

fn state<K: Resource>(object: &K, name: &str) -> State {
    let meta = object.meta();
    let index = meta.finalizers.iter().flatten().position(|f| f == name);
    match (meta.deletion_timestamp.is_some(), index) {
        (false, Some(_)) => State::Live,
        (false, None) => State::Unclaimed,
        (true, Some(i)) => State::Deleting(i),
        (true, None) => State::Released,
    }
}

/// JSON patch adding finalizer `name`. The `test` makes it fail, and the reconcile retry,
/// when someone else changed the finalizers in between: Kubernetes does not deduplicate them.
pub fn add_patch(current: Option<&Vec<String>>, name: &str) -> serde_json::Value {
    match current {
        None => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [name]},
        ]),
        Some(list) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": list},
            {"op": "add", "path": "/metadata/finalizers/-", "value": name},
        ]),
    }
}

/// JSON patch removing finalizer `name` at `index`, only if it is still there.
fn remove_patch(index: usize, name: &str) -> serde_json::Value {
    let path = format!("/metadata/finalizers/{index}");
    json!([
        {"op": "test", "path": path, "value": name},
        {"op": "remove", "path": path},
    ])
}

fn json_patch(value: serde_json::Value) -> Result<Patch<()>, Error> {
    serde_json::from_value(value).map(Patch::Json).map_err(|e| Error::InvalidPatch(e.to_string()))
}

/// Runs `reconcile` under finalizer `name` of `object` (see the module docs).
///
/// # Errors
/// [`Error::FinalizerAdd`] or [`Error::FinalizerRemove`] when the patch fails, or the error of `reconcile`.
pub async fn run<K, F, Fut>(api: &Api<K>, name: &str, object: Arc<K>, reconcile: F) -> Result<Action, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
    F: FnOnce(Step<K>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>>,
{
    let object_name = object.meta().name.clone().ok_or(Error::MissingField("metadata.name"))?;
    match state(object.as_ref(), name) {
        State::Live => reconcile(Step::Apply(object)).await,
        State::Unclaimed => {
            let patch = json_patch(add_patch(object.meta().finalizers.as_ref(), name))?;
            let claimed =
                api.patch(&object_name, &PatchParams::default(), &patch).await.map_err(Error::FinalizerAdd)?;
            reconcile(Step::Apply(Arc::new(claimed))).await
        }
        State::Deleting(index) => {
            // The finalizer stays until the cleanup succeeded.
            let action = reconcile(Step::Cleanup(object)).await?;
            let patch = json_patch(remove_patch(index, name))?;
            match api.patch(&object_name, &PatchParams::default(), &patch).await {
                // Gone already: a trigger that came while the last finalizer was removed ran
                // the (idempotent) cleanup a second time; nothing is left to release.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                other => {
                    other.map_err(Error::FinalizerRemove)?;
                }
            }
            Ok(action)
        }
        State::Released => Ok(Action::await_change()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    const OURS: &str = "kubelighthouse.io/test";

    fn object(finalizers: Option<Vec<&str>>, deleting: bool) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("x".into()),
                finalizers: finalizers.map(|f| f.into_iter().map(String::from).collect()),
                deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn state_follows_deletion_and_our_finalizer_only() {
        assert_eq!(state(&object(None, false), OURS), State::Unclaimed);
        assert_eq!(state(&object(Some(vec!["other"]), false), OURS), State::Unclaimed);
        assert_eq!(state(&object(Some(vec!["other", OURS]), false), OURS), State::Live);
        assert_eq!(state(&object(Some(vec!["other", OURS]), true), OURS), State::Deleting(1));
        assert_eq!(state(&object(Some(vec!["other"]), true), OURS), State::Released);
        assert_eq!(state(&object(None, true), OURS), State::Released);
    }

    #[test]
    fn adding_tests_the_list_it_extends() {
        assert_eq!(
            add_patch(None, OURS),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [OURS]},
            ])
        );
        let others = vec!["other".to_string()];
        assert_eq!(
            add_patch(Some(&others), OURS),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["other"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": OURS},
            ])
        );
    }

    #[test]
    fn removing_tests_that_the_index_is_still_ours() {
        assert_eq!(
            remove_patch(2, OURS),
            json!([
                {"op": "test", "path": "/metadata/finalizers/2", "value": OURS},
                {"op": "remove", "path": "/metadata/finalizers/2"},
            ])
        );
    }

    #[test]
    fn patches_parse_as_json_patches() {
        assert!(json_patch(add_patch(None, OURS)).is_ok());
        assert!(json_patch(remove_patch(0, OURS)).is_ok());
    }
}
