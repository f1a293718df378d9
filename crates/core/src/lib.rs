//! kube-lighthouse's core: everything the controller and the kubectl plugin decide, with no
//! client, no async runtime and no I/O.
//!
//! - [`api`]: the custom resources (RegistrationDefinition, RegistrationAssignment, their
//!   activations, guardrails and onboardings) and the views' types.
//! - [`model`]: Lighthouse's rules, identity projection, the RBAC a delegation materializes, its
//!   status, the views, guardrails and onboarding: plain functions, tested synchronously.
//! - [`azure`]: the import of Azure Lighthouse's ARM templates.
//! - [`reference`]: docs/reference.md, generated from the rules and the catalog.
//!
//! The purity is the compiler's to enforce: this crate's kube dependency has its `client`,
//! `config` and `runtime` features off, and it depends on no runtime, HTTP or I/O crate
//! (docs/architecture.md, "Crates").

pub mod api;
pub mod azure;
pub mod model;
pub mod reference;
