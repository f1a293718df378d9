//! Admission decisions. Delegations are judged by `model::validate`, exactly as the reconciler
//! judges them, then by the authority of their author; RoleBindings are checked against the
//! limits of User Access Administrator.

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::DynamicObject;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::authority;
use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::controller::context::Context;
use crate::model::user_access;
use crate::model::validate::{self, AssignmentFacts, DefinitionFacts, Grant, Rejection};

fn parse<K: DeserializeOwned>(object: &Option<DynamicObject>) -> Option<K> {
    object.as_ref().and_then(|o| serde_json::to_value(o).ok()).and_then(|v| serde_json::from_value(v).ok())
}

fn denied(request: &AdmissionRequest<DynamicObject>, message: String) -> AdmissionResponse {
    AdmissionResponse::from(request).deny(message)
}

/// The verdict on one admission request.
pub async fn review(request: &AdmissionRequest<DynamicObject>, ctx: &Context) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(request);
    // Every operation that can widen or remove access is judged: writes of delegations, and
    // every write of a RoleBinding in a delegated namespace, its deletion included.
    let judged = match request.operation {
        Operation::Create | Operation::Update => true,
        Operation::Delete => request.kind.kind == "RoleBinding",
        Operation::Connect => false,
    };
    if !judged {
        return allowed;
    }
    // A cold cache would judge against an empty cluster; the API server retries on failure.
    if !*ctx.ready.borrow() {
        return denied(request, "kube-lighthouse is starting: its caches are not synced yet; retry".into());
    }
    let outcome = match request.kind.kind.as_str() {
        "RegistrationDefinition" => definition(request, ctx).await,
        "RegistrationAssignment" => assignment(request, ctx).await,
        "RoleBinding" => role_binding(request, ctx),
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

/// Delegable roles plus, for User Access Administrators, the roles they may assign: every
/// Role the delegation would materialize.
fn materialized_roles(valid: &validate::ValidDefinition) -> Vec<Grant> {
    let mut grants = valid.grants.clone();
    grants.extend(valid.user_access.iter().flat_map(|u| u.assignable.clone()));
    grants
}

async fn definition(request: &AdmissionRequest<DynamicObject>, ctx: &Context) -> Result<(), String> {
    let Some(new) = parse::<RegistrationDefinition>(&request.object) else {
        return Err("not a RegistrationDefinition".into());
    };
    let old = parse::<RegistrationDefinition>(&request.old_object);
    if old.as_ref().is_some_and(|o| o.spec == new.spec) {
        return Ok(()); // metadata or finalizer changes
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = new.name_any();
    let older_definitions = ctx
        .caches
        .definitions
        .state_filter(|d| d.namespace().as_deref() == Some(namespace.as_str()) && d.name_any() != name)
        .len();
    // A new or changed spec is judged afresh (seed 002: new delegations never use a role
    // that stopped being delegable).
    let facts = DefinitionFacts {
        namespace: &namespace,
        spec: &new.spec,
        generation: None,
        accepted_generation: None,
        older_definitions,
    };
    let valid = ctx
        .validate(|vctx| validate::validate_definition(&facts, vctx))
        .map_err(|r| rejection_message("RegistrationDefinition", &name, &r))?;
    authority::check(ctx, &request.user_info, std::slice::from_ref(&namespace), &materialized_roles(&valid)).await
}

async fn assignment(request: &AdmissionRequest<DynamicObject>, ctx: &Context) -> Result<(), String> {
    let Some(new) = parse::<RegistrationAssignment>(&request.object) else {
        return Err("not a RegistrationAssignment".into());
    };
    let old = parse::<RegistrationAssignment>(&request.old_object);
    if old.as_ref().is_some_and(|o| o.spec == new.spec) {
        return Ok(());
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = new.name_any();
    let definition_name = new.spec.registration_definition_ref.name.as_str();
    let older_duplicates = ctx
        .caches
        .assignments
        .state_filter(|a| {
            a.namespace().as_deref() == Some(namespace.as_str())
                && a.name_any() != name
                && a.spec.registration_definition_ref.name == definition_name
                && a.meta().deletion_timestamp.is_none()
        })
        .iter()
        .map(|a| a.name_any())
        .collect();
    let facts = AssignmentFacts { namespace: &namespace, name: &name, definition_name, older_duplicates };
    let scope = validate::validate_assignment(&facts, &ctx.caches)
        .map_err(|r| rejection_message("RegistrationAssignment", &name, &r))?;
    // A definition applied together with its assignment (`kubectl apply -f dir/`) may not
    // have reached the cache yet: ask the API server before calling it missing.
    let definition = match ctx.caches.definition(&scope.subscription, definition_name) {
        Some(d) => Some(d),
        None => Api::<RegistrationDefinition>::namespaced(ctx.client.clone(), &scope.subscription)
            .get_opt(definition_name)
            .await
            .map_err(|e| format!("cannot read RegistrationDefinition {definition_name}: {e}"))?
            .map(std::sync::Arc::new),
    };
    let Some(definition) = definition else {
        let r = validate::definition_problem(definition_name, &scope.subscription, None);
        return Err(rejection_message("RegistrationAssignment", &name, &r));
    };
    let mut facts = crate::controller::definition::facts(&definition, &ctx.caches);
    facts.accepted_generation = None; // a new assignment is a new delegation
    let valid = ctx.validate(|vctx| validate::validate_definition(&facts, vctx)).map_err(|r| {
        let r = validate::definition_problem(definition_name, &scope.subscription, Some(&r));
        rejection_message("RegistrationAssignment", &name, &r)
    })?;
    authority::check(ctx, &request.user_info, &scope.namespaces, &materialized_roles(&valid)).await
}

/// User Access Administrator (seed 002, SPEC §4): its delegated roles may be bound only to
/// managed identities (ServiceAccounts of the namespace), and its holders may create no other
/// binding, and change or delete none (they could otherwise remove the customer's own).
fn role_binding(request: &AdmissionRequest<DynamicObject>, ctx: &Context) -> Result<(), String> {
    let deleting = matches!(request.operation, Operation::Delete);
    let object = if deleting { &request.old_object } else { &request.object };
    let Some(mut binding) = parse::<RoleBinding>(object) else { return Ok(()) };
    let namespace = request.namespace.clone().unwrap_or_default();
    binding.metadata.namespace = Some(namespace.clone());
    if !deleting {
        if let Some(message) = user_access::violation(&binding) {
            return Err(message);
        }
    }
    let user = &request.user_info;
    let groups = user.groups.clone().unwrap_or_default();
    // Our User Access Administrator bindings are the ones whose record keeps their subjects.
    let is_delegate =
        ctx.caches.bindings.in_namespace(&namespace).iter().flat_map(|b| b.delegates.clone().unwrap_or_default()).any(
            |s| match s.kind.as_str() {
                "User" => user.username.as_deref() == Some(s.name.as_str()),
                "Group" => groups.contains(&s.name),
                "ServiceAccount" => {
                    let namespace = s.namespace.as_deref().unwrap_or(&namespace);
                    user.username.as_deref() == Some(format!("system:serviceaccount:{namespace}:{}", s.name).as_str())
                }
                _ => false,
            },
        );
    if !is_delegate {
        return Ok(());
    }
    match request.operation {
        Operation::Create if user_access::is_assignable(&binding.role_ref) => Ok(()),
        Operation::Create => Err(format!(
            "UserAccessAdministratorLimit: roleRef: a User Access Administrator may bind only its delegated roles in {namespace}, not {} {}",
            binding.role_ref.kind, binding.role_ref.name
        )),
        _ => Err(format!(
            "UserAccessAdministratorLimit: a User Access Administrator may only create RoleBindings in {namespace}; it may not {} RoleBinding {}",
            if deleting { "delete" } else { "change" },
            binding.metadata.name.as_deref().unwrap_or(&request.name)
        )),
    }
}
