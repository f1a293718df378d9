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
//! [`model`] is the pure core; [`controller`] is the thin shell around it; [`plugin`] is the
//! `kubectl lighthouse` plugin (binary `kubectl-lighthouse`).

#![warn(missing_docs)]

pub mod api;
pub mod azure;
pub mod config;
pub mod controller;
pub mod federation;
pub mod http;
pub mod hub;
pub mod lease;
pub mod metrics;
pub mod model;
pub mod plugin;
pub mod reference;
pub mod runtime;
pub mod serve;
pub mod telemetry;
pub mod webhook;

pub use runtime::run;
