//! Onboarding at scale, pure: which subscription namespaces an [`Onboarding`] delegates, the
//! definition and assignment it wants in each, what it must remove, and its status
//! (docs/onboarding.md). The shell (`controller::onboarding`) reads the caches into
//! [`NamespaceFacts`] and [`Present`] objects, calls [`plan`], and applies the difference.
//!
//! Rules, per (onboarding, namespace):
//! - only subscription namespaces (labelled `kubelighthouse.io/tenant-id`) that are not
//!   terminating and that the selector matches are considered;
//! - the label [`OPT_OUT`]`: "true"` opts a namespace out of every onboarding;
//! - a customer's own definition of the same offer (same managing tenant, and the same display
//!   name or the same plan), or any object of ours' name that the onboarding does not own, is
//!   never overwritten: the namespace is skipped, and the status says so;
//! - a namespace whose home tenant is the managing tenant is skipped (Lighthouse is
//!   cross-tenant only);
//! - whatever an onboarding owns in a namespace it no longer wants (opt-out, selector left,
//!   onboarding deleted or recreated with a new UID) is removed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::core::{Selector, SelectorExt};

use super::scope::{NamespaceInfo, Namespaces};
use super::validate::{validate_definition, Context, DefinitionFacts, Rejection, ValidDefinition};
use crate::api::{
    Condition, ConditionStatus, DefinitionRef, Onboarding, OnboardingStatus, RegistrationAssignment,
    RegistrationAssignmentSpec, RegistrationDefinition, RegistrationDefinitionSpec, SkippedNamespace,
};

/// Namespace label: `"true"` opts the namespace out of every onboarding; what an onboarding
/// created there is removed, and access revoked.
pub const OPT_OUT: &str = "kubelighthouse.io/onboarding-opt-out";
/// Label on the definitions and assignments an onboarding created: the onboarding's name.
/// Ownership itself is the ownerReference (controller: true) to the onboarding's UID.
pub const ONBOARDED_BY: &str = "kubelighthouse.io/onboarding";
/// Finalizer on an onboarding: its definitions and assignments are removed before it goes.
pub const FINALIZER: &str = "policy.kubelighthouse.io/offboard";
/// The `apiVersion` of an onboarding, as its owner references name it.
pub const API_VERSION: &str = "policy.kubelighthouse.io/v1alpha1";
/// The kind, as owner references name it.
pub const KIND: &str = "Onboarding";
/// Most skipped namespaces listed in status (the counts are always complete).
pub const MAX_LISTED: usize = 100;

/// An onboarding as the planner needs it.
#[derive(Clone, Debug)]
pub struct Source<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.uid`: what owner references point at.
    pub uid: &'a str,
    /// The spec.
    pub definition: &'a RegistrationDefinitionSpec,
    /// The selector, parsed; None when it does not parse (nothing is onboarded).
    pub selector: Option<Selector>,
    /// Being deleted: wants nothing anywhere.
    pub deleting: bool,
}

impl<'a> Source<'a> {
    /// The planner's view of `onboarding`; None without a name or a UID (never from the API
    /// server).
    pub fn of(onboarding: &'a Onboarding) -> Option<Source<'a>> {
        Some(Source {
            name: onboarding.metadata.name.as_deref()?,
            uid: onboarding.metadata.uid.as_deref()?,
            definition: &onboarding.spec.definition,
            selector: selector(&onboarding.spec.namespace_selector).ok(),
            deleting: onboarding.metadata.deletion_timestamp.is_some(),
        })
    }
}

/// `selector` as a [`Selector`].
///
/// # Errors
/// Why it does not parse (an unknown operator, `In` without values), for status.
pub fn selector(selector: &LabelSelector) -> Result<Selector, String> {
    Selector::try_from(selector.clone()).map_err(|e| format!("spec.namespaceSelector: {e}"))
}

/// A namespace, as the planner needs it.
#[derive(Clone, Debug)]
pub struct NamespaceFacts<'a> {
    /// The name.
    pub name: &'a str,
    /// Every label.
    pub labels: &'a BTreeMap<String, String>,
    /// Terminating: nothing new is created there.
    pub terminating: bool,
}

impl NamespaceFacts<'_> {
    fn home_tenant(&self) -> Option<&str> {
        self.labels.get(super::keys::TENANT_ID).map(String::as_str)
    }

    fn opted_out(&self) -> bool {
        self.labels.get(OPT_OUT).is_some_and(|v| v == "true")
    }
}

/// A definition or assignment present in the namespace (from the cache).
#[derive(Clone, Debug)]
pub struct Present<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// The UID of the onboarding that owns it (controller owner reference), if any.
    pub owner: Option<&'a str>,
    /// The definition's spec; None for an assignment.
    pub definition: Option<&'a RegistrationDefinitionSpec>,
    /// The assignment's definition reference; None for a definition.
    pub assigns: Option<&'a str>,
    /// Being deleted.
    pub deleting: bool,
}

impl<'a> Present<'a> {
    /// A definition as present.
    pub fn definition(d: &'a RegistrationDefinition) -> Present<'a> {
        Present {
            name: d.metadata.name.as_deref().unwrap_or_default(),
            owner: owner_uid(&d.metadata),
            definition: Some(&d.spec),
            assigns: None,
            deleting: d.metadata.deletion_timestamp.is_some(),
        }
    }

    /// An assignment as present.
    pub fn assignment(a: &'a RegistrationAssignment) -> Present<'a> {
        Present {
            name: a.metadata.name.as_deref().unwrap_or_default(),
            owner: owner_uid(&a.metadata),
            definition: None,
            assigns: Some(&a.spec.registration_definition_ref.name),
            deleting: a.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// The UID of the onboarding that controls `meta`, if one does.
pub fn owner_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references.as_ref()?.iter().find_map(|r| {
        (r.api_version == API_VERSION && r.kind == KIND && r.controller == Some(true)).then_some(r.uid.as_str())
    })
}

/// What one onboarding decides about one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not a subscription, terminating, or outside the selector: nothing wanted.
    NotSelected,
    /// Labelled [`OPT_OUT`].
    OptedOut,
    /// Left alone, with the reason (CamelCase) and a message.
    Skipped(&'static str, String),
    /// Its definition and assignment are wanted.
    Onboard,
}

/// Whether two specs are the same offer: the same managing tenant, and the same display name
/// or the same plan (Azure's offer identity).
fn same_offer(a: &RegistrationDefinitionSpec, b: &RegistrationDefinitionSpec) -> bool {
    a.managed_by_tenant_id.eq_ignore_ascii_case(&b.managed_by_tenant_id)
        && (a.registration_definition_name == b.registration_definition_name
            || (a.plan.is_some()
                && a.plan.as_ref().map(|p| (&p.name, &p.publisher, &p.product))
                    == b.plan.as_ref().map(|p| (&p.name, &p.publisher, &p.product))))
}

/// The verdict of `source` on `ns`, given what is `present` there.
pub fn verdict(source: &Source<'_>, ns: &NamespaceFacts<'_>, present: &[Present<'_>]) -> Verdict {
    let Some(home) = ns.home_tenant() else { return Verdict::NotSelected };
    let matches = source.selector.as_ref().is_some_and(|s| s.matches(ns.labels));
    if source.deleting || ns.terminating || !matches {
        return Verdict::NotSelected;
    }
    if ns.opted_out() {
        return Verdict::OptedOut;
    }
    if home.eq_ignore_ascii_case(&source.definition.managed_by_tenant_id) {
        return Verdict::Skipped(
            "HomeTenant",
            format!("the namespace's home tenant is the managing tenant {home}: Lighthouse is cross-tenant only"),
        );
    }
    let ours = |p: &Present<'_>| p.owner == Some(source.uid);
    if let Some(customer) =
        present.iter().find(|p| !ours(p) && p.definition.is_some_and(|d| same_offer(d, source.definition)))
    {
        return Verdict::Skipped(
            "CustomerDefinition",
            format!(
                "the customer's own RegistrationDefinition {} delegates the same offer; it is left as it is",
                customer.name
            ),
        );
    }
    if let Some(other) = present.iter().find(|p| p.name == source.name && !ours(p)) {
        let kind = if other.definition.is_some() { "RegistrationDefinition" } else { "RegistrationAssignment" };
        return Verdict::Skipped(
            "NameTaken",
            format!("a {kind} named {} that this onboarding did not create is there; it is left as it is", other.name),
        );
    }
    Verdict::Onboard
}

/// An object an onboarding owns that is no longer wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// An assignment, by name (removed first: its finalizer revokes the access).
    Assignment(String),
    /// A definition, by name.
    Definition(String),
}

/// The plan for one namespace.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Definitions to create or bring back to the template (only those that differ).
    pub definitions: Vec<RegistrationDefinition>,
    /// Assignments to create or bring back (only those that differ).
    pub assignments: Vec<RegistrationAssignment>,
    /// What to remove: assignments first, then definitions.
    pub removals: Vec<Removal>,
}

impl Plan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty() && self.assignments.is_empty() && self.removals.is_empty()
    }
}

fn owner_reference(source: &Source<'_>) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        name: source.name.into(),
        uid: source.uid.into(),
        controller: Some(true),
        // Deletion is the finalizer's work; blocking would need update on onboardings/finalizers.
        block_owner_deletion: Some(false),
    }
}

fn meta(source: &Source<'_>, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(source.name.into()),
        namespace: Some(namespace.into()),
        labels: Some(BTreeMap::from([(ONBOARDED_BY.to_string(), source.name.to_string())])),
        owner_references: Some(vec![owner_reference(source)]),
        ..ObjectMeta::default()
    }
}

/// The definition `source` wants in `namespace`.
pub fn desired_definition(source: &Source<'_>, namespace: &str) -> RegistrationDefinition {
    RegistrationDefinition { metadata: meta(source, namespace), spec: source.definition.clone(), status: None }
}

/// The assignment `source` wants in `namespace`: of its definition, at subscription scope.
pub fn desired_assignment(source: &Source<'_>, namespace: &str) -> RegistrationAssignment {
    RegistrationAssignment {
        metadata: meta(source, namespace),
        spec: RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: source.name.into() } },
        status: None,
    }
}

/// What to write in `ns` so that it holds exactly what `sources` want there, given what is
/// `present`. An owned object whose owner is not among `sources` (deleted, or recreated with
/// a new UID) is removed.
pub fn plan(sources: &[Source<'_>], ns: &NamespaceFacts<'_>, present: &[Present<'_>]) -> Plan {
    let mut plan = Plan::default();
    let mut wanted: Vec<&str> = Vec::new();
    for source in sources {
        if verdict(source, ns, present) != Verdict::Onboard {
            continue;
        }
        wanted.push(source.uid);
        let owned = |want_definition: bool| {
            present.iter().find(|p| {
                p.owner == Some(source.uid) && p.name == source.name && p.definition.is_some() == want_definition
            })
        };
        let definition_current = owned(true).is_some_and(|p| !p.deleting && p.definition == Some(source.definition));
        if !definition_current {
            plan.definitions.push(desired_definition(source, ns.name));
        }
        let assignment_current = owned(false).is_some_and(|p| !p.deleting && p.assigns == Some(source.name));
        if !assignment_current {
            plan.assignments.push(desired_assignment(source, ns.name));
        }
    }
    for p in present {
        let Some(owner) = p.owner else { continue };
        let still_wanted = wanted.contains(&owner) && sources.iter().any(|s| s.uid == owner && s.name == p.name);
        if still_wanted || p.deleting {
            continue;
        }
        plan.removals.push(match p.definition {
            Some(_) => Removal::Definition(p.name.to_string()),
            None => Removal::Assignment(p.name.to_string()),
        });
    }
    // Assignments first: their finalizer revokes the access at once.
    plan.removals.sort_by_key(|r| matches!(r, Removal::Definition(_)));
    plan
}

/// The status of `source` over every namespace, each with what is present there; `generation`
/// is the onboarding's. A namespace counts as onboarded once its definition and assignment
/// exist (and are not being deleted).
pub fn status<'a>(
    source: &Source<'_>,
    selector_error: Option<&str>,
    generation: Option<i64>,
    namespaces: impl IntoIterator<Item = (NamespaceFacts<'a>, Vec<Present<'a>>)>,
) -> OnboardingStatus {
    let mut status = OnboardingStatus { observed_generation: generation, ..OnboardingStatus::default() };
    let mut pending = 0i32;
    let mut skipped = Vec::new();
    for (ns, present) in namespaces {
        match verdict(source, &ns, &present) {
            Verdict::NotSelected => {}
            Verdict::OptedOut => status.opted_out += 1,
            Verdict::Skipped(reason, message) => {
                status.skipped += 1;
                skipped.push(SkippedNamespace { namespace: ns.name.to_string(), reason: reason.into(), message });
            }
            Verdict::Onboard => {
                let held = |definition: bool| {
                    present.iter().any(|p| {
                        p.owner == Some(source.uid)
                            && p.name == source.name
                            && p.definition.is_some() == definition
                            && !p.deleting
                    })
                };
                if held(true) && held(false) {
                    status.onboarded += 1;
                } else {
                    pending += 1;
                }
            }
        }
    }
    skipped.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    skipped.truncate(MAX_LISTED);
    status.skipped_namespaces = skipped;
    let (ready, reason, message) = match selector_error {
        Some(e) => (ConditionStatus::False, "InvalidSelector", e.to_string()),
        None if pending > 0 => {
            (ConditionStatus::False, "Onboarding", format!("{pending} matching namespace(s) still being onboarded"))
        }
        None => (
            ConditionStatus::True,
            "Onboarded",
            format!("{} onboarded, {} skipped, {} opted out", status.onboarded, status.skipped, status.opted_out),
        ),
    };
    status.conditions = vec![Condition {
        type_: "Ready".into(),
        status: ready,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: None,
    }];
    status
}

/// Whether two statuses say the same, the conditions' transition times aside.
pub fn same_status(a: &OnboardingStatus, b: &OnboardingStatus) -> bool {
    let strip = |s: &OnboardingStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = None;
        }
        s
    };
    strip(a) == strip(b)
}

/// The stand-in subscription a template is judged in at admission: not a valid namespace
/// name, so no real namespace answers for it.
pub const ANY_SUBSCRIPTION: &str = "<any subscription namespace>";

/// The namespaces as they are, plus [`ANY_SUBSCRIPTION`], a subscription whose home tenant is
/// not the managing tenant.
struct WithStandIn<'a> {
    real: &'a (dyn Namespaces + Sync),
    home: String,
}

impl Namespaces for WithStandIn<'_> {
    fn get(&self, name: &str) -> Option<NamespaceInfo> {
        if name == ANY_SUBSCRIPTION {
            return Some(NamespaceInfo {
                tenant_id: Some(self.home.clone()),
                subscription: None,
                terminating: false,
                labels: Default::default(),
            });
        }
        self.real.get(name)
    }

    fn resource_groups_of(&self, subscription: &str) -> Vec<String> {
        self.real.resource_groups_of(subscription)
    }
}

/// Judges an onboarding's definition template as the controller will judge each definition it
/// creates (every rule of docs/roles.md that does not depend on the namespace), in a stand-in
/// subscription whose home tenant is not the managing tenant. The webhook refuses an invalid
/// template at apply, and asks the author's cluster-wide authority over the grants of a valid
/// one.
///
/// # Errors
/// The [`Rejection`], naming each rule and field (fields relative to `spec.definition`).
pub fn validate_template(spec: &RegistrationDefinitionSpec, ctx: &Context<'_>) -> Result<ValidDefinition, Rejection> {
    const NIL: &str = "00000000-0000-0000-0000-000000000000";
    let home =
        if spec.managed_by_tenant_id.eq_ignore_ascii_case(NIL) { "ffffffff-ffff-ffff-ffff-ffffffffffff" } else { NIL };
    let namespaces = WithStandIn { real: ctx.namespaces, home: home.into() };
    let ctx = Context { namespaces: &namespaces, ..*ctx };
    let facts = DefinitionFacts {
        namespace: ANY_SUBSCRIPTION,
        spec,
        generation: None,
        accepted_generation: None,
        older_definitions: 0,
    };
    validate_definition(&facts, &ctx)
}

/// The refusal at admission of an onboarding whose template breaks a rule: each field is
/// named where the author wrote it, under `spec.definition`.
pub fn template_refused(name: &str, rejection: &Rejection) -> String {
    let mut relative = rejection.clone();
    for e in &mut relative.0 {
        if let Some(rest) = e.field.strip_prefix("spec.") {
            e.field = format!("spec.definition.{rest}");
        }
    }
    format!("Onboarding {name} is rejected: {relative}")
}

/// The refusal at admission of an onboarding whose author lacks cluster-wide authority:
/// `why` is the first thing the author may not do cluster-wide.
pub fn authority_refused(name: &str, why: &str) -> String {
    format!(
        "Onboarding {name} is refused: an onboarding may delegate every subscription namespace its selector can ever match, now or later, so only an author who may delegate its roles cluster-wide may create or change one (docs/onboarding.md, \"Who may onboard\"): {why}"
    )
}

#[cfg(test)]
mod tests;
