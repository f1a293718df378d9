//! What a reconcile holds: the client, the caches, the validation policy, the bookkeeping
//! writer and the trigger back into the assignment queue. Each part is owned by its own
//! module ([`super::caches`], [`super::bookkeeping`], [`super::expectations`]); this one only
//! gathers them.

use std::sync::Arc;

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef;
use kube::Client;

use super::bookkeeping::{Bookkeeping, GrantActivity};
use super::caches::Caches;
use super::expectations::Expectations;
use super::Error;
use crate::api::{RegistrationAssignment, RoleActivation};
use crate::metrics::Metrics;
use crate::model::activation::Clock;
use crate::model::projection::IdentityTemplates;
use crate::model::validate::{self, Limits};

/// The configuration validation reads (SPEC §2 identity templates, §3 limits), shared by the
/// reconcilers and the admission webhook.
pub struct Policy {
    /// How managing-tenant principals appear to RBAC.
    pub templates: IdentityTemplates,
    /// The SPEC §3 limits on definitions and authorizations.
    pub limits: Limits,
}

impl Policy {
    /// Runs `judge` with the validation context of the current catalog and namespaces.
    pub fn judge<T>(&self, caches: &Caches, judge: impl FnOnce(&validate::Context<'_>) -> T) -> T {
        let catalog = caches.catalog.current();
        let guardrails = caches.guardrails();
        judge(&validate::Context {
            catalog: &catalog,
            namespaces: caches,
            limits: &self.limits,
            templates: &self.templates,
            guardrails: &guardrails,
        })
    }
}

/// Everything a reconcile needs.
pub struct Context {
    /// API client; its identity needs only the chart's RBAC.
    pub client: Client,
    /// The watch caches, the only source of state.
    pub caches: Caches,
    /// The validation configuration, shared with the admission webhook.
    pub policy: Arc<Policy>,
    /// True once every cache has its first list.
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// Reconcile, error and write counters.
    pub metrics: Arc<Metrics>,
    /// RBAC writes in flight, which bookkeeping gives way to.
    pub grants: Arc<GrantActivity>,
    /// RBAC writes not yet seen by the watch.
    pub expectations: Arc<Expectations>,
    /// Statuses, Events and the managed-by-tenants annotation.
    pub bookkeeping: Arc<Bookkeeping>,
    /// Re-triggers assignment reconciles, e.g. a duplicate once the original is gone.
    pub assignment_triggers: UnboundedSender<ObjectRef<RegistrationAssignment>>,
    /// Retry delays of objects whose reconcile failed.
    pub retries: super::backoff::Backoff,
    /// Re-triggers activation reconciles, e.g. those under an assignment that changed.
    pub activation_triggers: UnboundedSender<ObjectRef<RoleActivation>>,
    /// Approval timeout and the test-only time scale of activations (SPEC §9).
    pub clock: Clock,
    /// Whether User Access Administrator may be in force ([`super::webhook_watch`]).
    pub user_access: tokio::sync::watch::Receiver<super::webhook_watch::Verdict>,
    /// Subscription namespaces whose PolicyReport may have changed ([`super::audit`]).
    pub audit: UnboundedSender<String>,
    /// The onboarding reconciles' queues and bookkeeping ([`super::onboarding`]).
    pub onboarding: Arc<super::onboarding::Shared>,
}

impl Context {
    /// Waits until every cache has its initial list. Reconciling earlier would read an empty
    /// cache as "nothing exists" and revoke access that should stay.
    ///
    /// # Errors
    /// [`Error::CacheNotReady`] when the watches stopped first.
    pub async fn caches_synced(&self) -> Result<(), Error> {
        let mut ready = self.ready.clone();
        ready.wait_for(|r| *r).await.map(|_| ()).map_err(|_| Error::CacheNotReady)
    }

    /// Why User Access Administrator is withheld now, or None when it may be in force;
    /// waits for the first verdict (a guess at start would revoke and re-grant it).
    ///
    /// # Errors
    /// [`Error::CacheNotReady`] when the watch of the webhook configuration stopped first.
    pub async fn user_access_withheld(&self) -> Result<Option<String>, Error> {
        let mut verdict = self.user_access.clone();
        let known = verdict.wait_for(Option::is_some).await.map_err(|_| Error::CacheNotReady)?;
        Ok(known.clone().and_then(Result::err))
    }

    /// Sends activation `reference` to be reconciled again.
    pub fn retrigger_activation(&self, reference: ObjectRef<RoleActivation>) {
        let _ = self.activation_triggers.unbounded_send(reference);
    }

    /// Sends subscription namespace `namespace` to the audit, whose PolicyReport may have
    /// changed ([`super::audit`]).
    pub fn audit(&self, namespace: String) {
        let _ = self.audit.unbounded_send(namespace);
    }

    /// Sends assignment `reference` to be reconciled again.
    pub fn retrigger(&self, reference: ObjectRef<RegistrationAssignment>) {
        let _ = self.assignment_triggers.unbounded_send(reference);
    }
}
