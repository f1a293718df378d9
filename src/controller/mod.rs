//! The shell around [`crate::model`]: watch caches, the reconcilers, and their writes. It
//! reads state, calls the pure core, applies the difference, and records the outcome.
//!
//! | module | owns |
//! |---|---|
//! | [`assignment`] | the assignment pipeline: dereference → validate/build → apply → status |
//! | [`definition`] | a definition's status, removal after transfer, cascade on delete |
//! | [`namespace`] | the managed-by-tenants annotation of subscriptions |
//! | [`onboarding`] | onboarding at scale: each subscription's onboarded delegations, each onboarding's status |
//! | [`dereference`] | step 1: snapshots of the caches for the pure core (also the webhook's) |
//! | [`apply`] | step 4: server-side apply of what differs, prune by label, revoke |
//! | [`bookkeeping`] | step 5's writes: statuses, Events, the annotation; one bounded writer |
//! | [`finalizer`] | the finalizer protocol around a reconcile |
//! | [`triggers`] | one watch per kind: fills the caches, maps changes to reconciles |
//! | [`caches`], [`index`], [`materialized`], [`catalog`] | what the watches hold |
//! | [`expectations`] | RBAC writes not yet seen by the watch (no reconcile for our own writes) |
//! | [`guard`], [`sweep`] | RoleBindings beyond UAA's limit; managed objects without an owner |
//! | [`webhook_watch`] | whether the admission webhook guards RoleBindings, so UAA may be in force |
//! | [`backoff`] | per-object retry delays after a failed reconcile |
//! | [`queue`] | the backlog of triggers, first in first out, in front of each runner |
//! | [`context`] | what a reconcile holds |
//! | [`error`] | one error variant per step, each a metric label |
//!
//! Nothing here imports the webhook or the process wiring ([`crate::runtime`]).

pub mod activation;
pub mod apply;
pub mod assignment;
pub mod audit;
pub mod backoff;
pub mod bookkeeping;
pub mod caches;
pub mod catalog;
pub mod context;
pub mod definition;
pub mod dereference;
pub mod error;
pub mod events;
pub mod expectations;
pub mod finalizer;
pub mod guard;
pub mod index;
pub mod materialized;
pub mod namespace;
pub mod onboarding;
pub mod queue;
pub mod sweep;
pub mod triggers;
pub mod webhook_watch;

#[cfg(test)]
pub(crate) mod testing;

pub use error::Error;
