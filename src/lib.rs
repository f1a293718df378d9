//! kube-lighthouse: Azure Lighthouse on Kubernetes.
//!
//! A customer tenant delegates scoped, least-privilege access to a managing tenant by
//! applying a [`api::RegistrationDefinition`] (who gets which built-in role) and a
//! [`api::RegistrationAssignment`] (where). The controller checks the delegation against
//! Lighthouse's rules and materializes namespaced RBAC for the managing tenant's projected
//! identities, keeps it exact, and revokes it when the delegation goes.
//!
//! ```text
//!  namespaces ─┐  (metadata only)
//!  definitions ├─► watch caches ──► reconcile(assignment)
//!  assignments ┤                     1 dereference  definition, scope, catalog   (caches)
//!  catalog     ┤                     2 validate     model::validate              (pure)
//!  our RBAC    ┘                     3 build        model::desired               (pure)
//!                                    4 apply        SSA what differs, prune by label
//!                                    5 status       conditions, namespaces, Events
//! ```
//!
//! [`model`] is the pure core (the crate `kube-lighthouse-core`, shared with the kubectl plugin,
//! the crate `kubectl-lighthouse`); [`controller`] is the thin shell around it.

pub use kube_lighthouse_core::{api, azure, model, reference};

pub mod config;
pub mod controller;
pub mod federation;
pub mod http;
pub mod hub;
pub mod lease;
pub mod metrics;
pub mod runtime;
pub mod serve;
pub mod telemetry;
pub mod webhook;

pub use runtime::run;
