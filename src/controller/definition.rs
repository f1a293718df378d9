//! Definition reconcile: validity and status of the offer itself, the limit per
//! subscription, and the cascade on delete (its assignments go, which revokes their access).

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument};

use super::assignment::created_before;
use super::context::CATALOG_CURRENT;
use super::context::{note, Caches, Context};
use super::finalizer::Step;
use super::Error;
use crate::api::status::merge_condition;
use crate::api::{
    Condition, ConditionStatus, ProvisioningState, RegistrationAssignment, RegistrationDefinition,
    RegistrationDefinitionStatus,
};
use crate::model::keys;
use crate::model::scope::Namespaces;
use crate::model::transfer::removed_by_transfer;
use crate::model::validate::{self, DefinitionFacts};

const RESYNC: Duration = Duration::from_secs(15 * 60);

/// The facts about a definition that come from outside its spec.
pub fn facts<'a>(definition: &'a RegistrationDefinition, caches: &Caches) -> DefinitionFacts<'a> {
    let namespace = definition.metadata.namespace.as_deref().unwrap_or_default();
    let older_definitions =
        caches.definitions_in(namespace).iter().filter(|d| created_before(d.as_ref(), definition)).count();
    DefinitionFacts {
        namespace,
        spec: &definition.spec,
        generation: definition.meta().generation,
        accepted_generation: definition.status.as_ref().and_then(|s| s.accepted_generation),
        older_definitions,
    }
}

fn condition(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: None,
    }
}

/// The status validation implies, and the Event to publish if the outcome changed.
fn desired_status(definition: &RegistrationDefinition, ctx: &Context) -> (RegistrationDefinitionStatus, Event) {
    let facts = facts(definition, &ctx.caches);
    let generation = facts.generation;
    let existing = definition.status.clone().unwrap_or_default();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let managee = crate::model::scope::subscription_of(facts.namespace, &ctx.caches as &dyn Namespaces)
        .ok()
        .map(|(_, t)| t.to_string());
    match ctx.validate(|vctx| validate::validate_definition(&facts, vctx)) {
        Ok(valid) => {
            let mut message = format!("valid: {} role(s) for tenant {}", valid.grants.len(), valid.managing_tenant);
            if !valid.warnings.is_empty() {
                message.push_str(&format!("; warnings: {}", valid.warnings.join("; ")));
            }
            let mut conditions = merge_condition(
                &existing.conditions,
                condition("Ready", ConditionStatus::True, "Valid", message, generation),
                now.clone(),
            );
            let degraded = match valid.narrowed.first() {
                Some(first) => {
                    let all: Vec<String> = valid.narrowed.iter().map(ToString::to_string).collect();
                    condition("Degraded", ConditionStatus::True, first.rule.reason(), all.join("; "), generation)
                }
                None => condition(
                    "Degraded",
                    ConditionStatus::False,
                    "CatalogCurrent",
                    CATALOG_CURRENT.to_string(),
                    generation,
                ),
            };
            conditions = merge_condition(&conditions, degraded, now);
            let event = if valid.warnings.is_empty() {
                Event {
                    type_: EventType::Normal,
                    reason: "Valid".into(),
                    note: None,
                    action: "Validate".into(),
                    secondary: None,
                }
            } else {
                Event {
                    type_: EventType::Warning,
                    reason: "IndirectDataExposure".into(),
                    note: note(&valid.warnings.join("; ")),
                    action: "Validate".into(),
                    secondary: None,
                }
            };
            let status = RegistrationDefinitionStatus {
                provisioning_state: Some(ProvisioningState::Succeeded),
                managee_tenant_id: Some(valid.home_tenant.to_string()),
                observed_generation: generation,
                accepted_generation: generation,
                conditions,
            };
            (status, event)
        }
        Err(rejection) => {
            let kept: Vec<Condition> = existing.conditions.iter().filter(|c| c.type_ != "Degraded").cloned().collect();
            let conditions = merge_condition(
                &kept,
                condition("Ready", ConditionStatus::False, rejection.reason(), rejection.to_string(), generation),
                now,
            );
            let event = Event {
                type_: EventType::Warning,
                reason: rejection.reason().into(),
                note: note(&format!("nothing granted: {rejection}")),
                action: "Validate".into(),
                secondary: None,
            };
            let status = RegistrationDefinitionStatus {
                provisioning_state: Some(ProvisioningState::Failed),
                managee_tenant_id: managee,
                observed_generation: generation,
                accepted_generation: existing.accepted_generation,
                conditions,
            };
            (status, event)
        }
    }
}

fn same_status(a: &RegistrationDefinitionStatus, b: &RegistrationDefinitionStatus) -> bool {
    a.conditions.len() == b.conditions.len()
        && a.conditions.iter().zip(&b.conditions).all(|(x, y)| x.same_as(y))
        && a.provisioning_state == b.provisioning_state
        && a.managee_tenant_id == b.managee_tenant_id
        && a.observed_generation == b.observed_generation
        && a.accepted_generation == b.accepted_generation
}

fn ready_reason(status: &RegistrationDefinitionStatus) -> Option<&str> {
    status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.reason.as_str())
}

#[instrument(skip_all, fields(definition = %format!("{}/{}", definition.namespace().unwrap_or_default(), definition.name_any())))]
async fn check(definition: Arc<RegistrationDefinition>, ctx: &Context) -> Result<Action, Error> {
    if transferred_away(&definition, ctx) {
        return remove_after_transfer(&definition, ctx).await;
    }
    let old = definition.status.clone().unwrap_or_default();
    let (new, event) = desired_status(&definition, ctx);
    if !same_status(&old, &new) {
        // Bookkeeping: the assignments of this definition are granted without waiting for it.
        // (Its finalizer is not deferred: without it, deleting the definition could not
        // cascade.)
        ctx.grants.quiet().await;
        let api: Api<RegistrationDefinition> =
            Api::namespaced(ctx.client.clone(), &definition.namespace().unwrap_or_default());
        let patch = json!({
            "apiVersion": RegistrationDefinition::api_version(&()),
            "kind": RegistrationDefinition::kind(&()),
            "status": new,
        });
        api.patch_status(
            &definition.name_any(),
            &PatchParams::apply(keys::FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        ctx.metrics.write("RegistrationDefinition", "status");
        if ready_reason(&old) != ready_reason(&new) {
            ctx.publish(definition.as_ref(), event).await;
        }
        info!(state = ?new.provisioning_state, reason = ?ready_reason(&new), "status updated");
    }
    Ok(Action::requeue(RESYNC))
}

/// Whether the subscription now belongs to the tenant this definition delegates to.
fn transferred_away(definition: &RegistrationDefinition, ctx: &Context) -> bool {
    let namespace = definition.namespace().unwrap_or_default();
    let Ok((_, home_now)) = crate::model::scope::subscription_of(&namespace, &ctx.caches as &dyn Namespaces) else {
        return false;
    };
    let recorded = definition.status.as_ref().and_then(|s| s.managee_tenant_id.as_deref());
    removed_by_transfer(&definition.spec.managed_by_tenant_id, recorded, &home_now)
}

/// Seed 002: the delegation resources for the new home tenant are removed. Deleting the
/// definition cascades to its assignments, whose finalizers revoke the access.
async fn remove_after_transfer(definition: &RegistrationDefinition, ctx: &Context) -> Result<Action, Error> {
    let namespace = definition.namespace().unwrap_or_default();
    let tenant = &definition.spec.managed_by_tenant_id;
    let note_text = format!(
        "subscription {namespace} now belongs to tenant {tenant}, which this definition delegated to: the delegation is removed (other managing tenants keep their access)"
    );
    for regarding in [crate::controller::context::namespace_reference(&namespace), definition.object_ref(&())] {
        let event = Event {
            type_: EventType::Normal,
            reason: "RemovedOnTransfer".into(),
            note: note(&format!("{}/{}: {note_text}", namespace, definition.name_any())),
            action: "Transfer".into(),
            secondary: None,
        };
        ctx.publish_to(&regarding, event).await;
    }
    let api: Api<RegistrationDefinition> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.delete(&definition.name_any(), &DeleteParams::default()).await {
        Ok(_) => info!(%namespace, definition = %definition.name_any(), %tenant, "removed on transfer"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

/// The assignments that assign `definition`: in its subscription namespace and its
/// resource groups.
pub fn assignments_of(definition: &RegistrationDefinition, caches: &Caches) -> Vec<Arc<RegistrationAssignment>> {
    let namespace = definition.namespace().unwrap_or_default();
    let name = definition.name_any();
    let mut assignments = caches.assignments_under(&namespace);
    assignments.retain(|a| a.spec.registration_definition_ref.name == name);
    assignments
}

/// Finalizer cleanup: deleting a definition deletes its assignments (SPEC §6); their own
/// finalizers revoke the access, and they already see the definition as gone.
#[instrument(skip_all, fields(definition = %format!("{}/{}", definition.namespace().unwrap_or_default(), definition.name_any())))]
async fn cascade(definition: Arc<RegistrationDefinition>, ctx: &Context) -> Result<Action, Error> {
    let assignments = assignments_of(&definition, &ctx.caches);
    for a in &assignments {
        let api: Api<RegistrationAssignment> = Api::namespaced(ctx.client.clone(), &a.namespace().unwrap_or_default());
        match api.delete(&a.name_any(), &DeleteParams::default()).await {
            Ok(_) => {
                info!(assignment = %format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any()), "deleted with its definition")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        let _ = ctx.assignment_triggers.unbounded_send(ObjectRef::from_obj(a.as_ref()));
    }
    ctx.publish(
        definition.as_ref(),
        Event {
            type_: EventType::Normal,
            reason: "Deleting".into(),
            note: note(&format!("deleting {} assignment(s)", assignments.len())),
            action: "Cascade".into(),
            secondary: None,
        },
    )
    .await;
    Ok(Action::await_change())
}

/// The controller's reconcile function.
pub async fn reconcile(definition: Arc<RegistrationDefinition>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("definition");
    ctx.caches_synced().await?;
    let api: Api<RegistrationDefinition> =
        Api::namespaced(ctx.client.clone(), &definition.namespace().unwrap_or_default());
    super::finalizer::run(&api, keys::DEFINITION_FINALIZER, definition, |step| async {
        match step {
            Step::Apply(d) => check(d, &ctx).await,
            Step::Cleanup(d) => cascade(d, &ctx).await,
        }
    })
    .await
}
