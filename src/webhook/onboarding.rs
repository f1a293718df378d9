//! Admission of onboardings (docs/onboarding.md): the selector must parse, the definition
//! template must pass every rule the controller will apply to each definition it creates, and
//! the author must be entitled to delegate every namespace the selector can ever match:
//! cluster-wide authority, asked as for one scope ([`super::authority::check`]) but with
//! SubjectAccessReviews without a namespace. Any change of the spec is judged so (a selector
//! that matches more, or a template that grants more, is a widening; telling one from a
//! narrowing in general is not worth a hole).

use kube::core::admission::AdmissionRequest;
use kube::core::DynamicObject;
use kube::ResourceExt;

use super::{admit, authority, decode, Admission};
use crate::api::Onboarding;
use crate::model::onboarding;

/// The verdict on a create or update of an onboarding.
///
/// # Errors
/// The refusal, naming the onboarding, the rule and the field, or what its author may not do.
pub async fn validate(request: &AdmissionRequest<DynamicObject>, admission: &Admission) -> Result<(), String> {
    let Some(new) = decode::<Onboarding>(&request.object) else {
        return Err("not an Onboarding".into());
    };
    let old = decode::<Onboarding>(&request.old_object);
    if old.as_ref().is_some_and(|o| o.spec == new.spec) {
        return Ok(()); // metadata, finalizer or status changes
    }
    let name = new.name_any();
    onboarding::selector(&new.spec.namespace_selector).map_err(|e| format!("Onboarding {name} is rejected: {e}"))?;
    let valid = admission
        .policy
        .judge(&admission.caches, |rules| onboarding::validate_template(&new.spec.definition, rules))
        .map_err(|r| onboarding::template_refused(&name, &r))?;
    // "" is every namespace: the SubjectAccessReviews are cluster-wide.
    authority::check(
        &admission.client,
        &request.user_info,
        &[String::new()],
        &admit::materialized_roles(&valid),
        admission.authority,
    )
    .await
    .map_err(|why| onboarding::authority_refused(&name, &why))
}
