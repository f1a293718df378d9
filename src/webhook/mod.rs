//! The validating admission webhook: refuses at `kubectl apply` what the reconciler would
//! reject (the same `model::validate` code), refuses delegations that grant more than their
//! author could grant directly, and keeps User Access Administrator to managed identities.
//!
//! Served by [`crate::serve`], on the TLS port it shares with the views API, only when a
//! certificate and key are configured.

mod activation;
mod admit;
mod authority;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;
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
}

async fn validate(
    State(admission): State<Arc<Admission>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")).into_review()),
    };
    let response = admit::review(&request, &admission).await;
    debug!(kind = %request.kind.kind, name = %request.name, user = ?request.user_info.username, allowed = response.allowed, "admission");
    Json(response.into_review())
}

/// The mutating webhook: stamps who created a RoleActivation or an ActivationReview.
async fn mutate(
    State(admission): State<Arc<Admission>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")).into_review()),
    };
    Json(activation::mutate(&request, &admission).into_review())
}

/// The admission routes, `POST /validate` and `POST /mutate`, served by [`crate::serve`] on
/// its TLS port.
pub fn router(admission: Arc<Admission>) -> Router {
    Router::new().route("/validate", post(validate)).route("/mutate", post(mutate)).with_state(admission)
}
