//! Admission decisions. Delegations are judged by `model::validate`, exactly as the reconciler
//! judges them, then by the authority of their author (except those the controller itself
//! writes for an `Onboarding`, whose author was asked cluster-wide, docs/onboarding.md); RoleBindings are checked against the
//! limits of User Access Administrator.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::DynamicObject;
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;

use super::{authority, decode, Admission};
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::controller::dereference;
use crate::model::outcome::{self, DefinitionSnapshot};
use crate::model::user_access::{self, BindingChange, Requester};
use crate::model::validate::{self, Grant, Rejection};

/// How long admission waits for a namespace the namespace cache has not seen yet.
pub const NAMESPACE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits, at most [`NAMESPACE_WAIT`], until the namespace cache holds `namespace`. The API
/// server admits a namespaced object only into a namespace that exists (its
/// NamespaceLifecycle plugin runs before webhooks), so one the cache lacks was created a
/// moment ago: `kubectl apply -f` of a namespace and a delegation in one file, or a script
/// that creates one and then the other. Judged before the watch brought it, the delegation
/// was refused as outside any subscription.
async fn namespace_seen(caches: &crate::controller::caches::Caches, namespace: &str) {
    let deadline = tokio::time::Instant::now() + NAMESPACE_WAIT;
    let key = kube::runtime::reflector::ObjectRef::new(namespace);
    while caches.namespaces.get(&key).is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn denied(request: &AdmissionRequest<DynamicObject>, message: String) -> AdmissionResponse {
    AdmissionResponse::from(request).deny(message)
}

/// Which requests are judged: creates and updates of the kinds the webhook is registered
/// for, and deletes of RoleBindings (User Access Administrator may not delete) and Roles
/// (only the controller deletes its own).
fn judged(operation: &Operation, kind: &str) -> bool {
    match operation {
        Operation::Create | Operation::Update => true,
        Operation::Delete => matches!(kind, "RoleBinding" | "Role" | "RoleActivation"),
        Operation::Connect => false,
    }
}

/// Whether the request comes from the controller itself (its user name, as the API server
/// reported it at start). The chart's webhook rules leave the controller's requests out
/// already; this holds without that too.
fn by_controller(request: &AdmissionRequest<DynamicObject>, admission: &Admission) -> bool {
    admission.controller.is_some() && request.user_info.username == admission.controller
}

/// A Role or RoleBinding that is, or is being made into, one posing as kube-lighthouse's,
/// written by someone other than the controller: refused ("ours" is who writes, not what an
/// object says). Deletes in a namespace being deleted are left alone: the namespace
/// controller empties it.
fn posing(request: &AdmissionRequest<DynamicObject>, admission: &Admission) -> Result<(), String> {
    if by_controller(request, admission) {
        return Ok(());
    }
    let meta = |object: &Option<DynamicObject>| object.as_ref().map(|o| o.metadata.clone());
    let (verb, claims) = match request.operation {
        Operation::Create => ("create", [meta(&request.object), None]),
        Operation::Update => ("change", [meta(&request.object), meta(&request.old_object)]),
        Operation::Delete => ("delete", [meta(&request.old_object), None]),
        Operation::Connect => return Ok(()),
    };
    if request.operation == Operation::Delete {
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let info = crate::model::scope::Namespaces::get(&admission.caches, namespace);
        if info.is_none_or(|ns| ns.terminating) {
            return Ok(());
        }
    }
    for claim in claims.into_iter().flatten() {
        let claim = kube::api::ObjectMeta { name: claim.name.or_else(|| Some(request.name.clone())), ..claim };
        if let Some(why) = user_access::posing_as_ours(&claim) {
            return Err(user_access::not_the_controller(&request.kind.kind, &request.name, verb, &why));
        }
    }
    Ok(())
}

/// The verdict on one admission request.
pub async fn review(request: &AdmissionRequest<DynamicObject>, admission: &Admission) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(request);
    if !judged(&request.operation, &request.kind.kind) {
        return allowed;
    }
    if !*admission.ready.borrow() {
        return denied(request, "kube-lighthouse is starting: its caches are not synced yet; retry".into());
    }
    let outcome = match request.kind.kind.as_str() {
        "RegistrationDefinition" => definition(request, admission).await,
        "RegistrationAssignment" => assignment(request, admission).await,
        "RoleBinding" => match posing(request, admission) {
            Ok(()) => role_binding(request, admission).await,
            Err(refused) => Err(refused),
        },
        "Role" => posing(request, admission),
        "RoleActivation" | "ActivationReview" => super::activation::validate(request, admission).await,
        "Onboarding" => super::onboarding::validate(request, admission).await,
        _ => Ok(()),
    };
    match outcome {
        Ok(()) => allowed,
        Err(message) => denied(request, message),
    }
}

fn rejection_message(kind: &str, name: &str, rejection: &Rejection) -> String {
    format!("{kind} {name} is rejected: {rejection}")
}

/// Every Role the delegation would materialize: its grants and the assignable roles of its
/// User Access Administrators.
pub(super) fn materialized_roles(valid: &validate::ValidDefinition) -> Vec<Grant> {
    let mut grants = valid.grants.clone();
    grants.extend(valid.user_access.iter().flat_map(|u| u.assignable.clone()));
    grants.extend(crate::model::activation::eligible_grants(&valid.eligible));
    grants
}

/// The submitted object, in the request's namespace.
fn submitted<K: DeserializeOwned + kube::Resource>(
    request: &AdmissionRequest<DynamicObject>,
) -> Option<(K, Option<K>)> {
    let mut new: K = decode(&request.object)?;
    new.meta_mut().namespace = request.namespace.clone();
    Some((new, decode(&request.old_object)))
}

async fn definition(request: &AdmissionRequest<DynamicObject>, admission: &Admission) -> Result<(), String> {
    let Some((new, old)) = submitted::<RegistrationDefinition>(request) else {
        return Err("not a RegistrationDefinition".into());
    };
    if old.as_ref().is_some_and(|o| o.spec == new.spec) {
        return Ok(()); // metadata or finalizer changes
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    namespace_seen(&admission.caches, &namespace).await;
    let name = new.name_any();
    let snapshot: DefinitionSnapshot = dereference::definition(&admission.caches, Arc::new(new));
    let mut facts = snapshot.facts();
    // A new spec is a new delegation: judged in full, with no accepted generation to excuse it.
    facts.generation = None;
    facts.accepted_generation = None;
    let valid = admission
        .policy
        .judge(&admission.caches, |rules| validate::validate_definition(&facts, rules))
        .map_err(|r| rejection_message("RegistrationDefinition", &name, &r))?;
    // The edit takes effect wherever the definition is assigned, not only where it lives: an
    // owner of the subscription alone may not change what a resource group's owner assigned.
    let assignments = admission.caches.assignments_under(&namespace);
    let reach = crate::model::scope::definition_reach(
        &namespace,
        &name,
        assignments.iter().map(|a| {
            (a.metadata.namespace.as_deref().unwrap_or_default(), a.spec.registration_definition_ref.name.as_str())
        }),
        &admission.caches,
    );
    if by_controller(request, admission) {
        return Ok(()); // an Onboarding's: its author's authority was asked cluster-wide
    }
    authority::check(&admission.client, &request.user_info, &reach, &materialized_roles(&valid), admission.authority)
        .await
}

async fn assignment(request: &AdmissionRequest<DynamicObject>, admission: &Admission) -> Result<(), String> {
    let Some((new, old)) = submitted::<RegistrationAssignment>(request) else {
        return Err("not a RegistrationAssignment".into());
    };
    if old.as_ref().is_some_and(|o| o.spec == new.spec) {
        return Ok(());
    }
    let name = new.name_any();
    let caches = &admission.caches;
    namespace_seen(caches, &new.namespace().unwrap_or_default()).await;
    // A definition created a moment ago may not be in the cache yet: read it.
    let definition_name = new.spec.registration_definition_ref.name.as_str();
    let live = match dereference::subscription(caches, &new.namespace().unwrap_or_default()) {
        Some(subscription) if caches.definition(&subscription, definition_name).is_none() => {
            Api::<RegistrationDefinition>::namespaced(admission.client.clone(), &subscription)
                .get_opt(definition_name)
                .await
                .map_err(|e| format!("cannot read RegistrationDefinition {definition_name}: {e}"))?
                .map(Arc::new)
        }
        _ => None,
    };
    let snapshot = dereference::assignment(caches, &new, live);
    let (scope, valid, _) = admission
        .policy
        .judge(caches, |rules| outcome::validate(&snapshot, rules, true))
        .map_err(|r| rejection_message("RegistrationAssignment", &name, &r.rejection))?;
    if by_controller(request, admission) {
        return Ok(()); // an Onboarding's: its author's authority was asked cluster-wide
    }
    authority::check(
        &admission.client,
        &request.user_info,
        &scope.namespaces,
        &materialized_roles(&valid),
        admission.authority,
    )
    .await
}

async fn role_binding(request: &AdmissionRequest<DynamicObject>, admission: &Admission) -> Result<(), String> {
    let change = match request.operation {
        Operation::Create => BindingChange::Create,
        Operation::Update => BindingChange::Update,
        Operation::Delete => BindingChange::Delete,
        Operation::Connect => return Ok(()),
    };
    let object = if change == BindingChange::Delete { &request.old_object } else { &request.object };
    let Some(mut binding) = decode::<RoleBinding>(object) else { return Ok(()) };
    let namespace = request.namespace.clone().unwrap_or_default();
    binding.metadata.namespace = Some(namespace.clone());
    if binding.metadata.name.is_none() {
        binding.metadata.name = Some(request.name.clone());
    }
    let groups = request.user_info.groups.clone().unwrap_or_default();
    let requester = Requester { username: request.user_info.username.as_deref(), groups: &groups };
    if by_controller(request, admission) {
        return Ok(());
    }
    // Our User Access Administrator bindings are the ones whose record keeps their subjects.
    let cached: Vec<_> = admission
        .caches
        .bindings
        .in_namespace(&namespace)
        .iter()
        .filter_map(|b| user_access::Delegation::of_binding(b.name(), b.delegates.clone()?))
        .collect();
    let verdict = user_access::admission_verdict(&binding, change, &requester, &cached);
    let holds_one = cached.iter().any(|d| d.delegates.iter().any(|s| requester.is(s, &namespace)));
    if verdict.is_err() || holds_one {
        return verdict;
    }
    // The cache may not show yet a User Access Administrator binding the API server already
    // authorizes (granted a moment ago, or by the leader while this replica's watch lags):
    // before letting a binding pass as a non-delegate's, ask the API server.
    let live = live_delegations(admission, &namespace).await?;
    user_access::admission_verdict(&binding, change, &requester, &live)
}

/// The User Access Administrator delegations in `namespace`, read from the API server: the
/// bindings the controller made there (its managed-by label) whose source role is User
/// Access Administrator.
///
/// # Errors
/// The refusal when they cannot be read: a binding is never admitted unjudged.
async fn live_delegations(admission: &Admission, namespace: &str) -> Result<Vec<user_access::Delegation>, String> {
    let api: Api<RoleBinding> = Api::namespaced(admission.client.clone(), namespace);
    let selector = format!("{}={}", crate::model::keys::MANAGED_BY, crate::model::keys::MANAGER);
    let bindings = api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("cannot read the User Access Administrator delegations in {namespace}; retry: {e}"))?;
    Ok(bindings
        .items
        .iter()
        .filter_map(|b| {
            let record = crate::controller::materialized::Record::from_binding(b);
            user_access::Delegation::of_binding(b.metadata.name.as_deref()?, record.delegates?)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_updates_and_rolebinding_deletes_are_judged() {
        for kind in ["RegistrationDefinition", "RegistrationAssignment", "RoleBinding"] {
            assert!(judged(&Operation::Create, kind));
            assert!(judged(&Operation::Update, kind));
            assert!(!judged(&Operation::Connect, kind));
        }
        assert!(judged(&Operation::Delete, "RoleBinding"), "a delegate may not delete bindings");
        assert!(judged(&Operation::Delete, "Role"), "nobody but the controller deletes its Roles");
        assert!(!judged(&Operation::Delete, "RegistrationAssignment"), "deleting a delegation is always allowed");
    }
}
