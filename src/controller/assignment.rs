//! Assignment reconcile: the unit of materialization. One reconcile owns every Role and
//! RoleBinding of one assignment, in every namespace of its scope.
//!
//! Pipeline: dereference (caches) → validate (pure) → build (pure) → apply (SSA, prune) →
//! status (and Events on transitions). A rejection at any step builds nothing, so the apply
//! step revokes whatever the assignment held.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::apply;
use super::context::CATALOG_CURRENT;
use super::context::{note, Context};
use super::finalizer::Step;
use super::Error;
use crate::api::status::merge_condition;
use crate::api::{Condition, ConditionStatus, ProvisioningState, RegistrationAssignment, RegistrationAssignmentStatus};
use crate::model::desired::{self, AssignmentRef, DesiredRbac};
use crate::model::keys;
use crate::model::scope::Scope;
use crate::model::validate::{self, AssignmentFacts, Rejection, ValidDefinition};

/// Safety net: even with no event, every assignment is re-checked this often.
const RESYNC: Duration = Duration::from_secs(15 * 60);

/// The outcome of the pure steps.
pub struct Decision {
    pub result: Result<(Scope, ValidDefinition), Rejection>,
    pub desired: DesiredRbac,
    /// Managing tenant from the definition, when there is one (for status, even on failure).
    pub managed_by: Option<String>,
    pub managee: Option<String>,
}

/// Steps 1-3: dereference from the caches, validate, build.
pub fn decide(assignment: &RegistrationAssignment, ctx: &Context) -> Decision {
    let caches = &ctx.caches;
    let namespace = assignment.namespace().unwrap_or_default();
    let name = assignment.name_any();
    let definition_name = assignment.spec.registration_definition_ref.name.as_str();
    let older_duplicates = caches
        .assignments_in(&namespace)
        .into_iter()
        .filter(|other| {
            other.spec.registration_definition_ref.name == definition_name
                && other.meta().deletion_timestamp.is_none()
                && created_before(other.as_ref(), assignment)
        })
        .map(|o| o.name_any())
        .collect();
    let facts = AssignmentFacts { namespace: &namespace, name: &name, definition_name, older_duplicates };
    let mut decision =
        Decision { result: Err(Rejection(vec![])), desired: DesiredRbac::default(), managed_by: None, managee: None };

    let scope = match validate::validate_assignment(&facts, caches) {
        Ok(scope) => scope,
        Err(r) => {
            decision.result = Err(r);
            return decision;
        }
    };
    decision.managee = Some(scope.home_tenant.to_string());
    let definition =
        caches.definition(&scope.subscription, definition_name).filter(|d| d.meta().deletion_timestamp.is_none());
    let Some(definition) = definition else {
        decision.result = Err(validate::definition_problem(definition_name, &scope.subscription, None));
        return decision;
    };
    decision.managed_by = Some(definition.spec.managed_by_tenant_id.clone());
    let facts = super::definition::facts(&definition, caches);
    match ctx.validate(|vctx| validate::validate_definition(&facts, vctx)) {
        Ok(valid) => {
            let owner = AssignmentRef { namespace, name, uid: assignment.uid().unwrap_or_default() };
            decision.desired = desired::build(&owner, &valid, &scope.namespaces);
            decision.result = Ok((scope, valid));
        }
        Err(r) => {
            decision.result = Err(validate::definition_problem(definition_name, &scope.subscription, Some(&r)));
        }
    }
    decision
}

/// Creation order, the tie broken by name: the older of two duplicates wins.
pub fn created_before<K: Resource>(a: &K, b: &K) -> bool {
    let stamp = |k: &K| k.meta().creation_timestamp.clone().map(|t| t.0);
    (stamp(a), a.meta().name.as_deref()) < (stamp(b), b.meta().name.as_deref())
}

fn ready(status: ConditionStatus, reason: &str, message: String, generation: Option<i64>) -> Condition {
    Condition {
        type_: "Ready".into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: None,
    }
}

/// Step 5's content: the status the decision implies.
pub fn desired_status(assignment: &RegistrationAssignment, decision: &Decision) -> RegistrationAssignmentStatus {
    let generation = assignment.meta().generation;
    let existing = assignment.status.clone().unwrap_or_default();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let (state, namespaces, mut conditions) = match &decision.result {
        Ok((scope, valid)) => {
            let principals: usize = valid.grants.iter().map(|g| g.subjects.len()).sum();
            let in_force = if decision.desired.bindings.is_empty() { vec![] } else { scope.namespaces.clone() };
            let ready_now = if in_force.is_empty() {
                // Valid, but nothing left to grant (every role it names left the catalog).
                let reason = valid.narrowed.first().map_or("NothingGranted", |n| n.rule.reason());
                let message = format!("no access of tenant {} is in force", valid.managing_tenant);
                ready(ConditionStatus::False, reason, message, generation)
            } else {
                let message = format!(
                    "access of tenant {} in force in {} namespace(s): {} role(s), {} subject(s)",
                    valid.managing_tenant,
                    in_force.len(),
                    valid.grants.len(),
                    principals
                );
                ready(ConditionStatus::True, "Granted", message, generation)
            };
            let mut conditions = merge_condition(&existing.conditions, ready_now, now.clone());
            let degraded = match valid.narrowed.first() {
                Some(first) => {
                    let all: Vec<String> = valid.narrowed.iter().map(ToString::to_string).collect();
                    Condition {
                        type_: "Degraded".into(),
                        ..ready(ConditionStatus::True, first.rule.reason(), all.join("; "), generation)
                    }
                }
                None => Condition {
                    type_: "Degraded".into(),
                    ..ready(ConditionStatus::False, "CatalogCurrent", CATALOG_CURRENT.to_string(), generation)
                },
            };
            conditions = merge_condition(&conditions, degraded, now);
            (ProvisioningState::Succeeded, in_force, conditions)
        }
        Err(rejection) => {
            let condition = ready(ConditionStatus::False, rejection.reason(), rejection.to_string(), generation);
            let conditions: Vec<Condition> =
                existing.conditions.iter().filter(|c| c.type_ != "Degraded").cloned().collect();
            (ProvisioningState::Failed, vec![], merge_condition(&conditions, condition, now))
        }
    };
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    RegistrationAssignmentStatus {
        provisioning_state: Some(state),
        managed_by_tenant_id: decision.managed_by.clone(),
        managee_tenant_id: decision.managee.clone(),
        namespaces,
        observed_generation: generation,
        conditions,
    }
}

/// Equal apart from transition times: no status write is needed.
fn same_status(a: &RegistrationAssignmentStatus, b: &RegistrationAssignmentStatus) -> bool {
    let conditions_same =
        a.conditions.len() == b.conditions.len() && a.conditions.iter().zip(&b.conditions).all(|(x, y)| x.same_as(y));
    conditions_same
        && a.provisioning_state == b.provisioning_state
        && a.managed_by_tenant_id == b.managed_by_tenant_id
        && a.managee_tenant_id == b.managee_tenant_id
        && a.namespaces == b.namespaces
        && a.observed_generation == b.observed_generation
}

fn ready_of(status: &RegistrationAssignmentStatus) -> Option<(&ConditionStatus, &str)> {
    status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| (&c.status, c.reason.as_str()))
}

async fn write_status(
    ctx: &Context,
    assignment: &RegistrationAssignment,
    status: &RegistrationAssignmentStatus,
) -> Result<(), Error> {
    let api: Api<RegistrationAssignment> =
        Api::namespaced(ctx.client.clone(), &assignment.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": RegistrationAssignment::api_version(&()),
        "kind": RegistrationAssignment::kind(&()),
        "status": status,
    });
    api.patch_status(&assignment.name_any(), &PatchParams::apply(keys::FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    ctx.metrics.write("RegistrationAssignment", "status");
    Ok(())
}

/// Events for a change of outcome; none when nothing changed, so idle costs no writes.
fn transition_events(
    decision: &Decision,
    old: &RegistrationAssignmentStatus,
    new: &RegistrationAssignmentStatus,
) -> Vec<Event> {
    let mut events = Vec::new();
    let degraded_of = |s: &RegistrationAssignmentStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Degraded" && c.status == ConditionStatus::True)
            .map(|c| c.message.clone())
    };
    if ready_of(old) != ready_of(new) {
        let event = match &decision.result {
            Ok(_) => Event {
                type_: EventType::Normal,
                reason: "Granted".into(),
                note: new.conditions.iter().find(|c| c.type_ == "Ready").and_then(|c| note(&c.message)),
                action: "Materialize".into(),
                secondary: None,
            },
            Err(rejection) => Event {
                type_: EventType::Warning,
                reason: rejection.reason().into(),
                note: note(&format!("nothing granted: {rejection}")),
                action: "Validate".into(),
                secondary: None,
            },
        };
        events.push(event);
    }
    if let Some(message) = degraded_of(new).filter(|m| degraded_of(old).as_ref() != Some(m)) {
        let reason =
            new.conditions.iter().find(|c| c.type_ == "Degraded").map_or("Degraded".to_string(), |c| c.reason.clone());
        events.push(Event {
            type_: EventType::Warning,
            reason,
            note: note(&message),
            action: "Narrow".into(),
            secondary: None,
        });
    }
    events
}

/// A status write of a granted assignment, waiting behind RBAC writes.
struct PendingStatus {
    assignment: Arc<RegistrationAssignment>,
    status: RegistrationAssignmentStatus,
    events: Vec<Event>,
}

/// Status writes of granted assignments, deferred while RBAC is being written
/// ([`super::context::GrantActivity`]): on a busy API server the access comes first and its
/// record a moment later. Rejections are not deferred: nothing is granted, and the author is
/// waiting for the reason. The latest status of an assignment replaces a pending one.
#[derive(Default)]
pub struct DeferredStatus {
    pending: std::sync::Mutex<std::collections::HashMap<ObjectRef<RegistrationAssignment>, PendingStatus>>,
}

impl DeferredStatus {
    fn defer(&self, ctx: &Arc<Context>, pending: PendingStatus) {
        let key = ObjectRef::from_obj(pending.assignment.as_ref());
        let first = self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), pending).is_none();
        if first {
            tokio::spawn(write_deferred(ctx.clone(), key));
        }
    }

    fn take(&self, key: &ObjectRef<RegistrationAssignment>) -> Option<PendingStatus> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
    }
}

async fn write_deferred(ctx: Arc<Context>, key: ObjectRef<RegistrationAssignment>) {
    ctx.grants.quiet().await;
    // As many status writes at once as reconciles: a burst that just ended must not become a
    // burst of status writes.
    let Ok(_permit) = ctx.bookkeeping.acquire().await else { return };
    let Some(pending) = ctx.deferred_status.take(&key) else { return };
    match write_status(&ctx, &pending.assignment, &pending.status).await {
        Ok(()) => {
            for event in pending.events {
                ctx.publish(pending.assignment.as_ref(), event).await;
            }
        }
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => {}
        Err(e) => {
            warn!(error = %e, assignment = %key, "status write failed; reconciling again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = ctx.assignment_triggers.unbounded_send(key);
        }
    }
}

#[instrument(skip_all, fields(assignment = %format!("{}/{}", assignment.namespace().unwrap_or_default(), assignment.name_any())))]
async fn materialize(assignment: Arc<RegistrationAssignment>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let decision = decide(&assignment, ctx);
    let uid = assignment.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let stats = if decision.desired.roles.is_empty() {
        SyncOrRevoke::Revoked(apply::revoke_all(ctx, &uid).await?)
    } else {
        SyncOrRevoke::Synced(apply::sync(ctx, &uid, &decision.desired).await?)
    };
    let old = assignment.status.clone().unwrap_or_default();
    let new = desired_status(&assignment, &decision);
    if !same_status(&old, &new) {
        let events = transition_events(&decision, &old, &new);
        info!(state = ?new.provisioning_state, reason = ?ready_of(&new).map(|r| r.1), ?stats, "status changed");
        if decision.result.is_ok() {
            ctx.deferred_status.defer(ctx, PendingStatus { assignment, status: new, events });
        } else {
            write_status(ctx, &assignment, &new).await?;
            for event in events {
                ctx.publish(assignment.as_ref(), event).await;
            }
        }
    }
    Ok(Action::requeue(RESYNC))
}

#[derive(Debug)]
#[allow(dead_code)] // read through Debug in logs
enum SyncOrRevoke {
    Synced(apply::SyncStats),
    Revoked(usize),
}

/// Finalizer cleanup: revoke in every namespace, then let duplicates of it take over.
#[instrument(skip_all, fields(assignment = %format!("{}/{}", assignment.namespace().unwrap_or_default(), assignment.name_any())))]
async fn revoke(assignment: Arc<RegistrationAssignment>, ctx: &Context) -> Result<Action, Error> {
    let uid = assignment.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let deleted = apply::revoke_all(ctx, &uid).await?;
    info!(deleted, "access revoked");
    ctx.publish(
        assignment.as_ref(),
        Event {
            type_: EventType::Normal,
            reason: "Revoked".into(),
            note: note(&format!("removed {deleted} RBAC object(s)")),
            action: "Revoke".into(),
            secondary: None,
        },
    )
    .await;
    let namespace = assignment.namespace().unwrap_or_default();
    for sibling in ctx.caches.assignments_in(&namespace).into_iter().filter(|o| {
        o.spec.registration_definition_ref == assignment.spec.registration_definition_ref && o.uid() != assignment.uid()
    }) {
        let _ = ctx.assignment_triggers.unbounded_send(ObjectRef::from_obj(sibling.as_ref()));
    }
    Ok(Action::await_change())
}

/// The controller's reconcile function.
pub async fn reconcile(assignment: Arc<RegistrationAssignment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("assignment");
    ctx.caches_synced().await?;
    let api: Api<RegistrationAssignment> =
        Api::namespaced(ctx.client.clone(), &assignment.namespace().unwrap_or_default());
    super::finalizer::run(&api, keys::ASSIGNMENT_FINALIZER, assignment, |step| async {
        match step {
            Step::Apply(a) => materialize(a, &ctx).await,
            Step::Cleanup(a) => revoke(a, &ctx).await,
        }
    })
    .await
}
