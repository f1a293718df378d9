//! The validating admission webhook: refuses at `kubectl apply` what the reconciler would
//! reject (the same `model::validate` code), refuses delegations that grant more than their
//! author could grant directly, and keeps User Access Administrator to managed identities.
//!
//! Served by [`crate::serve`], on the TLS port it shares with the views API, only when a
//! certificate and key are configured.

mod activation;
mod admit;
mod authority;
pub mod deleter;
mod onboarding;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;
use serde::de::DeserializeOwned;
use tracing::debug;

use crate::controller::caches::Caches;
use crate::controller::context::Policy;

/// What admission reads: a narrow handle, not the reconcile context. The caches and the
/// policy are the reconcilers' own (so both judge alike); the client asks
/// SubjectAccessReviews and reads a definition the cache does not hold yet.
#[derive(Clone)]
pub struct Admission {
    /// Asks SubjectAccessReviews, and reads definitions the cache does not hold yet.
    pub client: kube::Client,
    /// The reconcilers' watch caches.
    pub caches: Caches,
    /// The reconcilers' validation configuration.
    pub policy: Arc<Policy>,
    /// True once every cache has its first list; until then every judged request is refused.
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// What the author's-authority check of one request may spend.
    pub authority: crate::model::authority::Limits,
    /// The controller's own user name, as the API server reports it (a SelfSubjectReview at
    /// start): only it writes the Roles and RoleBindings kube-lighthouse materializes. None
    /// when it could not be learned: then nobody may.
    pub controller: Option<String>,
    /// Who claimed to delete which activation; recorded by the activation watch.
    pub claims: Arc<deleter::DeleterClaims>,
}

/// The request a review carries.
///
/// # Errors
/// "not an AdmissionReview" and why, when the review carries no request: the webhook answers
/// that, not allowed.
pub fn request(review: AdmissionReview<DynamicObject>) -> Result<AdmissionRequest<DynamicObject>, String> {
    review.try_into().map_err(|e| format!("not an AdmissionReview: {e}"))
}

/// The answer to a review that carries no request: not allowed, with `message`.
fn refusal(message: String) -> AdmissionReview<DynamicObject> {
    AdmissionResponse::invalid(message).into_review()
}

/// A request's `object` or `oldObject` as the kind `K`: None when it is absent or not a `K`.
/// Every judged object is read through here.
pub fn decode<K: DeserializeOwned>(object: &Option<DynamicObject>) -> Option<K> {
    object.as_ref().and_then(|o| serde_json::to_value(o).ok()).and_then(|v| serde_json::from_value(v).ok())
}

async fn validate(
    State(admission): State<Arc<Admission>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request = match request(review) {
        Ok(r) => r,
        Err(message) => return Json(refusal(message)),
    };
    let response = admit::review(&request, &admission).await;
    debug!(kind = %request.kind.kind, name = %request.name, user = ?request.user_info.username, allowed = response.allowed, "admission");
    Json(response.into_review())
}

/// The mutating webhook without its transport: stamps who created a RoleActivation or an
/// ActivationReview, and on a review the UID of the activation it reviews, which
/// `uid_of(namespace, name)` looks up (the caches, when served). Pure, so it is fuzzed as it
/// runs.
pub fn mutate_review(
    review: AdmissionReview<DynamicObject>,
    uid_of: &dyn Fn(&str, &str) -> Option<String>,
) -> AdmissionReview<DynamicObject> {
    match request(review) {
        Ok(request) => activation::mutate(&request, uid_of).into_review(),
        Err(message) => refusal(message),
    }
}

/// `POST /mutate`.
async fn mutate(
    State(admission): State<Arc<Admission>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let uid_of =
        |namespace: &str, name: &str| admission.caches.activation(namespace, name).and_then(|a| a.metadata.uid.clone());
    Json(mutate_review(review, &uid_of))
}

/// The admission routes, `POST /validate` and `POST /mutate`, served by [`crate::serve`] on
/// its TLS port.
pub fn router(admission: Arc<Admission>) -> Router {
    Router::new().route("/validate", post(validate)).route("/mutate", post(mutate)).with_state(admission)
}
