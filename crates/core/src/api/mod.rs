//! API types: the `managedservices.kubelighthouse.io/v1alpha1` kinds and their shared status,
//! and the read-only views of `view.kubelighthouse.io/v1alpha1` ([`view`], SPEC §10).
//!
//! The shapes mirror Azure's `Microsoft.ManagedServices` resources field for field (SPEC §1),
//! so an Azure onboarding template translates by renaming, not by redesign.

pub mod activation;
mod assignment;
pub mod cluster_profile;
mod definition;
pub mod guardrail;
pub mod onboarding;
pub mod status;
pub mod view;

pub use activation::{
    ActivationPhase, ActivationReview, ActivationReviewSpec, Caller, Decision, RoleActivation, RoleActivationSpec,
    RoleActivationStatus, ACTIVATION_GROUP,
};
pub use assignment::{DefinitionRef, RegistrationAssignment, RegistrationAssignmentSpec, RegistrationAssignmentStatus};
pub use definition::{
    Authorization, EligibleApprover, EligibleAuthorization, JustInTimeAccessPolicy, MultiFactorAuthProvider, Plan,
    PrincipalType, RegistrationDefinition, RegistrationDefinitionSpec, RegistrationDefinitionStatus,
};
pub use guardrail::{AllowedRoles, Guardrail, GuardrailSpec, JustInTimeAccessLimits, POLICY_GROUP};
pub use onboarding::{Onboarding, OnboardingSpec, OnboardingStatus, SkippedNamespace};
pub use status::{Condition, ConditionStatus, ProvisioningState};

/// The API group of the delegation kinds.
pub const GROUP: &str = "managedservices.kubelighthouse.io";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// The CRDs as YAML, with their file names under `crds/`.
pub fn crd_yaml() -> Vec<(&'static str, String)> {
    use kube::CustomResourceExt;
    let render = |crd| serde_yaml::to_string(&crd).unwrap_or_default();
    vec![
        ("registrationdefinitions.yaml", render(RegistrationDefinition::crd())),
        ("registrationassignments.yaml", render(RegistrationAssignment::crd())),
        ("roleactivations.yaml", render(RoleActivation::crd())),
        ("activationreviews.yaml", render(ActivationReview::crd())),
        ("guardrails.yaml", render(Guardrail::crd())),
        ("onboardings.yaml", render(Onboarding::crd())),
    ]
}
