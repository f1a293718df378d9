//! The pure domain: no client, no I/O. Everything the controller and the webhook decide is
//! decided here, from plain inputs, so it is tested synchronously and exhaustively.
//!
//! Flow: [`scope`] resolves where an assignment applies and whose tenant it is;
//! [`catalog`] finds the built-in role an authorization names; [`rules`] judges that role's
//! permissions; [`validate`] applies SPEC §3 to a whole delegation; [`desired`] turns a valid
//! delegation into the exact Roles and RoleBindings that must exist; [`outcome`] runs those
//! two steps over a snapshot of the caches; [`status`] turns an outcome into the status,
//! Events and annotation the shell writes; [`user_access`] keeps the bindings a User Access
//! Administrator makes to managed identities; [`views`] decides what a caller sees of the
//! delegations (SPEC §10); [`activation`] is just-in-time access (SPEC §9); [`guardrail`]
//! judges delegations against the platform team's guardrails.

pub mod activation;
pub mod audit;
pub mod authority;
pub mod catalog;
pub mod desired;
pub mod fleet;
pub mod guardrail;
pub mod keys;
pub mod onboarding;
pub mod outcome;
pub mod projection;
pub mod rules;
pub mod scope;
pub mod status;
pub mod tenant;
pub mod transfer;
pub mod user_access;
pub mod validate;
pub mod views;
