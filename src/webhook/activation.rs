//! Admission of the activation kinds (SPEC §9): the mutating stamp of who created a
//! RoleActivation or an ActivationReview, and the validating verdicts on them. Decode, ask
//! [`crate::model::activation`], encode. Admission writes nothing: of the DELETE of a
//! RoleActivation it only remembers who claimed it ([`super::deleter`]), which the replica
//! records once its watch shows the deletion.

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::DynamicObject;

use super::{decode, Admission};
use crate::api::{ActivationReview, RoleActivation};
use crate::controller::dereference;
use crate::model::activation::{self, Reviewed};
use crate::model::keys;

/// The stamp annotation of `kind`, if it is one of the activation kinds.
fn stamp_key(kind: &str) -> Option<&'static str> {
    match kind {
        "RoleActivation" => Some(keys::REQUESTER),
        "ActivationReview" => Some(keys::REVIEWER),
        _ => None,
    }
}

/// `POST /mutate`: on create of a RoleActivation or an ActivationReview, the caller's
/// `userInfo` is written to the stamp annotation, replacing whatever the client sent; on an
/// ActivationReview also the UID of the activation it reviews, as the caches hold it.
/// Everything else passes unchanged (the validating webhook refuses a changed stamp).
/// `uid_of(namespace, name)` is the UID of the RoleActivation `namespace/name`, if it exists.
pub(super) fn mutate(
    request: &AdmissionRequest<DynamicObject>,
    uid_of: &dyn Fn(&str, &str) -> Option<String>,
) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(request);
    let Some(key) = stamp_key(&request.kind.kind) else { return allowed };
    if request.operation != Operation::Create {
        return allowed;
    }
    let caller = activation::caller_from(&request.user_info);
    let has_annotations = request.object.as_ref().is_some_and(|o| o.metadata.annotations.is_some());
    let mut patch = activation::stamp_patch(key, &caller, has_annotations);
    if key == keys::REVIEWER {
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let reviewed = decode::<ActivationReview>(&request.object)
            .and_then(|r| uid_of(namespace, &r.spec.role_activation_ref.name));
        // None: no such activation, which the validating webhook refuses.
        if let (Some(uid), Some(ops)) = (reviewed, patch.as_array_mut()) {
            ops.push(activation::reviewed_uid_patch(&uid));
        }
    }
    match serde_json::from_value::<json_patch::Patch>(patch).map(|p| allowed.clone().with_patch(p)) {
        Ok(Ok(stamped)) => stamped,
        // Never admit an unstamped activation: its requester would be unknown.
        _ => allowed.deny("cannot stamp the requester"),
    }
}

/// The validating verdict on a RoleActivation or an ActivationReview request.
///
/// # Errors
/// The message the caller sees: the refusal's field, reason and rule.
pub async fn validate(request: &AdmissionRequest<DynamicObject>, admission: &Admission) -> Result<(), String> {
    let namespace = request.namespace.clone().unwrap_or_default();
    let caller = activation::caller_from(&request.user_info);
    let refuse = |kind: &str, r: activation::Refused| format!("{kind} {} is refused: {r}", request.name);
    match (request.kind.kind.as_str(), &request.operation) {
        ("RoleActivation", Operation::Create) => {
            let new: RoleActivation = decode(&request.object).ok_or("not a RoleActivation")?;
            let eligibility = dereference::eligibility(
                &admission.caches,
                &admission.policy,
                &namespace,
                &new.spec.registration_assignment_ref.name,
            );
            activation::admit_activation(&new.spec, &caller, eligibility.as_deref().map_err(Clone::clone))
                .map_err(|r| refuse("RoleActivation", r))
        }
        ("RoleActivation", Operation::Update) => {
            let new: RoleActivation = decode(&request.object).ok_or("not a RoleActivation")?;
            let old: RoleActivation = decode(&request.old_object).ok_or("not a RoleActivation")?;
            activation::admit_activation_update(
                &old.spec,
                &new.spec,
                old.metadata.annotations.as_ref(),
                new.metadata.annotations.as_ref(),
            )
            .map_err(|r| refuse("RoleActivation", r))
        }
        ("RoleActivation", Operation::Delete) => {
            if request.dry_run {
                return Ok(());
            }
            // Remembered only: nothing is written until the API server's watch shows the
            // deletion (see `super::deleter`).
            if let Some(uid) = decode::<RoleActivation>(&request.old_object).and_then(|old| old.metadata.uid) {
                admission.claims.claim(&uid, &caller.username, std::time::Instant::now());
            }
            Ok(())
        }
        ("ActivationReview", Operation::Create) => {
            let new: ActivationReview = decode(&request.object).ok_or("not an ActivationReview")?;
            let reviewed = admission.caches.activation(&namespace, &new.spec.role_activation_ref.name);
            let eligibility = reviewed.as_ref().map(|a| {
                dereference::eligibility(
                    &admission.caches,
                    &admission.policy,
                    &namespace,
                    &a.spec.registration_assignment_ref.name,
                )
            });
            let view = reviewed.as_ref().map(|a| Reviewed {
                spec: &a.spec,
                requester: activation::stamped(a.metadata.annotations.as_ref(), keys::REQUESTER),
                phase: a.status.as_ref().and_then(|s| s.phase),
            });
            let eligibility = match &eligibility {
                Some(e) => e.as_deref().map_err(Clone::clone),
                None => Ok(&[][..]),
            };
            activation::admit_review(&caller, view, eligibility).map_err(|r| refuse("ActivationReview", r))
        }
        ("ActivationReview", Operation::Update) => {
            let new: ActivationReview = decode(&request.object).ok_or("not an ActivationReview")?;
            let old: ActivationReview = decode(&request.old_object).ok_or("not an ActivationReview")?;
            if old.spec != new.spec {
                return Err(format!("ActivationReview {} is create-only: its spec cannot change", request.name));
            }
            for key in [keys::REVIEWER, keys::REVIEWED_UID] {
                activation::stamp_unchanged(key, old.metadata.annotations.as_ref(), new.metadata.annotations.as_ref())
                    .map_err(|r| refuse("ActivationReview", r))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_activation_kinds_are_stamped() {
        assert_eq!(stamp_key("RoleActivation"), Some(keys::REQUESTER));
        assert_eq!(stamp_key("ActivationReview"), Some(keys::REVIEWER));
        assert_eq!(stamp_key("RegistrationAssignment"), None);
    }
}
