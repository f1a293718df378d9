//! What can go wrong in a reconcile: [`Error`] fails one reconcile, which is retried. (What
//! stops the process is [`crate::runtime::RunError`].) Each reconcile variant names the step
//! that failed, and its snake_case name is the `reason` label of the error metric.

use thiserror::Error;

/// A reconcile failed at one step. Every variant is transient by nature (a 403 or 5xx while
/// the API server restarts, a conflict): the reconcile is retried, and never grants or
/// revokes because of it.
#[derive(Debug, Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Error {
    /// The watches stopped before every cache had its first list.
    #[error("the watch caches never synced")]
    CacheNotReady,
    /// The object lacks a field the API server always sets (`metadata.name`, `metadata.uid`).
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// A finalizer patch could not be built.
    #[error("malformed finalizer patch: {0}")]
    InvalidPatch(String),
    /// Adding our finalizer to an assignment or definition failed.
    #[error("adding the finalizer: {0}")]
    FinalizerAdd(#[source] kube::Error),
    /// Removing our finalizer after cleanup failed: the object stays until a retry succeeds.
    #[error("removing the finalizer: {0}")]
    FinalizerRemove(#[source] kube::Error),
    /// Step 1: reading the API server to confirm that a definition the cache lacks is gone.
    #[error("reading the assignment's definition: {0}")]
    DefinitionRead(#[source] kube::Error),
    /// Step 4: a server-side apply of a desired Role or RoleBinding.
    #[error("applying RBAC: {0}")]
    Apply(#[source] kube::Error),
    /// Step 4: deleting a Role or RoleBinding the assignment no longer wants.
    #[error("pruning RBAC: {0}")]
    Prune(#[source] kube::Error),
    /// Revoking everything an assignment holds (rejected, or deleted).
    #[error("revoking RBAC: {0}")]
    Revoke(#[source] kube::Error),
    /// Step 5: a status write.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    /// Deleting the assignments of a definition being deleted (SPEC §6).
    #[error("deleting the assignments of a deleted definition: {0}")]
    Cascade(#[source] kube::Error),
    /// Deleting a definition whose managing tenant now owns the subscription (seed 002).
    #[error("removing a delegation after a transfer: {0}")]
    Transfer(#[source] kube::Error),
    /// Writing the managed-by-tenants annotation of a subscription.
    #[error("annotating a subscription: {0}")]
    Annotate(#[source] kube::Error),
    /// Creating, or bringing back to its template, a definition or assignment an onboarding
    /// owns (docs/onboarding.md).
    #[error("onboarding a namespace: {0}")]
    Onboard(#[source] kube::Error),
    /// Removing a definition or assignment an onboarding no longer wants (opt-out, selector
    /// left, onboarding deleted).
    #[error("offboarding a namespace: {0}")]
    Offboard(#[source] kube::Error),
}

impl Error {
    /// Low-cardinality label for metrics: the variant's name in snake_case.
    pub fn metric_label(&self) -> &'static str {
        self.into()
    }

    /// Whether the error is the API server saying the object is gone.
    pub fn is_not_found(&self) -> bool {
        use Error::*;
        match self {
            FinalizerAdd(e) | FinalizerRemove(e) | DefinitionRead(e) | Apply(e) | Prune(e) | Revoke(e) | Status(e)
            | Cascade(e) | Transfer(e) | Annotate(e) | Onboard(e) | Offboard(e) => {
                matches!(e, kube::Error::Api(s) if s.code == 404)
            }
            CacheNotReady | MissingField(_) | InvalidPatch(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_name_the_step() {
        let api = || kube::Error::Api(kube::core::Status::failure("gone", "NotFound").with_code(404).boxed());
        assert_eq!(Error::FinalizerAdd(api()).metric_label(), "finalizer_add");
        assert_eq!(Error::Prune(api()).metric_label(), "prune");
        assert_eq!(Error::CacheNotReady.metric_label(), "cache_not_ready");
        assert!(Error::Status(api()).is_not_found());
        assert!(!Error::MissingField("metadata.uid").is_not_found());
    }
}
