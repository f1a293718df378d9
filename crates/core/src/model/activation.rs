//! Just-in-time access (SPEC §9), pure: who may activate what, who may review, the phase an
//! activation is in, and the RBAC an active one materializes. No client, no clock: `now`
//! is passed in, so every rule is tested synchronously.
//!
//! | question | function |
//! |---|---|
//! | the admission stamp of the caller | [`caller_from`], [`stamp_patch`], [`stamp_unchanged`] |
//! | may this caller create this RoleActivation? | [`admit_activation`] |
//! | may this caller create this ActivationReview? | [`admit_review`] |
//! | which eligible authorization does an activation use? | [`matching_eligible`] |
//! | which phase is it in, and when to look again? | [`phase`] |
//! | what does an assignment materialize for eligibility? | [`eligibility_rbac`] |
//! | what does an active activation materialize? | [`activation_rbac`] |

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::desired::{self, AssignmentRef, DesiredRbac};
use super::keys;
use super::projection::user;
use super::validate::eligible::parse_duration;
pub use super::validate::eligible::Eligible;
use super::validate::ValidDefinition;
use crate::api::{ActivationPhase, Caller, Decision, RoleActivationSpec, RoleActivationStatus, ACTIVATION_GROUP};

/// Why an activation or a review is refused, or an activation ends. The names are condition
/// reasons and Event reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum Refusal {
    /// No admission stamp: the object bypassed the webhook, so its requester is unknown.
    NotStamped,
    /// A client tried to set or change the requester or reviewer stamp.
    StampChanged,
    /// The spec of a RoleActivation changed after create.
    SpecImmutable,
    /// The assignment it names is not found, or does not cover this namespace.
    AssignmentNotFound,
    /// The assignment's delegation is rejected (SPEC §3, §9): nothing can be activated.
    DelegationInvalid,
    /// The requester holds no eligible authorization for this role here.
    NotEligible,
    /// `duration` is not an ISO 8601 duration, or not positive.
    InvalidDuration,
    /// `duration` is above the policy's `maximumActivationDuration`.
    DurationAbovePolicy,
    /// `justification` is empty.
    MissingJustification,
    /// The policy requires MFA and the requester's `amr` lacks `mfa`.
    MultiFactorAuthRequired,
    /// The reviewer is not a listed approver of the activation's eligible authorization.
    NotAnApprover,
    /// The requester reviewed their own activation.
    SelfApproval,
    /// The activation reviewed is not Pending (or does not exist).
    NotPending,
}

impl Refusal {
    /// The refusal's name, e.g. `NotEligible`.
    pub fn reason(self) -> &'static str {
        self.into()
    }
}

/// A refusal with its human-readable detail (which field, which limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Which rule.
    pub refusal: Refusal,
    /// What the caller sees: the field and the limit.
    pub message: String,
}

impl Refused {
    fn new(refusal: Refusal, message: impl Into<String>) -> Refused {
        Refused { refusal, message: message.into() }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.refusal.reason())
    }
}

// --- the stamp --------------------------------------------------------------------------------

/// The caller as the API server authenticated it: `userInfo` of an admission request.
pub fn caller_from(user: &k8s_openapi::api::authentication::v1::UserInfo) -> Caller {
    let extra = user.extra.as_ref();
    Caller {
        username: user.username.clone().unwrap_or_default(),
        groups: user.groups.clone().unwrap_or_default(),
        amr: extra.and_then(|e| e.get(keys::AMR_EXTRA)).cloned().unwrap_or_default(),
    }
}

/// The caller recorded in `annotations[key]`, if it parses.
pub fn stamped(annotations: Option<&BTreeMap<String, String>>, key: &str) -> Option<Caller> {
    annotations.and_then(|a| a.get(key)).and_then(|v| serde_json::from_str(v).ok())
}

/// The JSON patch that sets `annotations[key]` to `caller`, overwriting whatever a client
/// sent. `has_annotations`: whether the object has an annotations map at all.
pub fn stamp_patch(key: &str, caller: &Caller, has_annotations: bool) -> serde_json::Value {
    let value = serde_json::to_string(caller).unwrap_or_default();
    if has_annotations {
        let escaped = key.replace('~', "~0").replace('/', "~1");
        serde_json::json!([{"op": "add", "path": format!("/metadata/annotations/{escaped}"), "value": value}])
    } else {
        serde_json::json!([{"op": "add", "path": "/metadata/annotations", "value": {key: value}}])
    }
}

/// The JSON Patch operation that stamps, on an ActivationReview being created, the UID of the
/// activation it reviews ([`keys::REVIEWED_UID`]); to follow [`stamp_patch`]'s operations,
/// which create the annotations when there are none.
pub fn reviewed_uid_patch(uid: &str) -> serde_json::Value {
    let escaped = keys::REVIEWED_UID.replace('~', "~0").replace('/', "~1");
    serde_json::json!({"op": "add", "path": format!("/metadata/annotations/{escaped}"), "value": uid})
}

/// On update: the stamp `key` must stay as admission wrote it.
///
/// # Errors
/// [`Refusal::StampChanged`] when it was added, changed or removed.
pub fn stamp_unchanged(
    key: &str,
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
) -> Result<(), Refused> {
    let get = |a: Option<&BTreeMap<String, String>>| a.and_then(|a| a.get(key)).cloned();
    if get(old) == get(new) {
        Ok(())
    } else {
        Err(Refused::new(Refusal::StampChanged, format!("annotation {key} is set by admission and cannot change")))
    }
}

// --- eligibility ------------------------------------------------------------------------------

/// Whether `caller` is one of `subjects`: as its user, or through one of its groups.
pub fn holds(caller: &Caller, subjects: &[Subject]) -> bool {
    subjects.iter().any(|s| match s.kind.as_str() {
        "User" => s.name == caller.username,
        "Group" => caller.groups.contains(&s.name),
        _ => false,
    })
}

fn names_role(eligible: &Eligible, role: &str) -> bool {
    eligible.role == role
        || eligible.role_guid.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(role))
        || eligible.role_display_name.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(role))
}

/// The eligible authorization an activation of `spec` by `requester` uses: the first in
/// spec order that names the role, is held by the requester (as user or through a group),
/// and whose policy the request meets (duration, MFA).
///
/// # Errors
/// [`Refusal::NotEligible`] when none names the role for the requester; otherwise the first
/// policy the request breaks (of the first such eligible authorization).
pub fn matching_eligible<'a>(
    spec: &RoleActivationSpec,
    requester: &Caller,
    eligible: &'a [Eligible],
) -> Result<&'a Eligible, Refused> {
    let duration = activation_duration(spec)?;
    let mut first_problem = None;
    for e in eligible.iter().filter(|e| names_role(e, &spec.role_definition_id) && holds(requester, &e.subjects)) {
        let problem = if duration > e.max_duration {
            Some(Refused::new(
                Refusal::DurationAbovePolicy,
                format!(
                    "spec.duration {} is above maximumActivationDuration {} of spec.eligibleAuthorizations[{}]",
                    spec.duration, e.max_duration, e.index
                ),
            ))
        } else if e.requires_mfa && !requester.amr.iter().any(|m| m == "mfa") {
            Some(Refused::new(
                Refusal::MultiFactorAuthRequired,
                format!(
                    "spec.eligibleAuthorizations[{}] requires multi-factor sign-in; {} signed in with {:?}",
                    e.index, requester.username, requester.amr
                ),
            ))
        } else {
            None
        };
        match problem {
            None => return Ok(e),
            Some(p) => {
                first_problem.get_or_insert(p);
            }
        }
    }
    Err(first_problem.unwrap_or_else(|| {
        Refused::new(
            Refusal::NotEligible,
            format!(
                "{} holds no eligible authorization for role {} through this assignment (as user or group)",
                requester.username, spec.role_definition_id
            ),
        )
    }))
}

/// `spec.duration` as a positive duration.
///
/// # Errors
/// [`Refusal::InvalidDuration`].
pub fn activation_duration(spec: &RoleActivationSpec) -> Result<SignedDuration, Refused> {
    match parse_duration(&spec.duration) {
        Ok(d) if d.is_positive() => Ok(d),
        Ok(_) => Err(Refused::new(Refusal::InvalidDuration, "spec.duration must be positive")),
        Err(message) => Err(Refused::new(Refusal::InvalidDuration, format!("spec.duration: {message}"))),
    }
}

/// Where an activation stands towards its assignment: the eligible authorizations of a
/// valid delegation covering its namespace, or why there are none.
pub type Eligibility<'a> = Result<&'a [Eligible], Refused>;

/// Admission of a RoleActivation create (SPEC §9): a justification, a requester who holds
/// that eligible authorization, a duration within the policy, MFA when required.
///
/// # Errors
/// The [`Refused`] reason, naming the field.
pub fn admit_activation(
    spec: &RoleActivationSpec,
    requester: &Caller,
    eligibility: Eligibility<'_>,
) -> Result<(), Refused> {
    if spec.justification.trim().is_empty() {
        return Err(Refused::new(Refusal::MissingJustification, "spec.justification is required"));
    }
    activation_duration(spec)?;
    matching_eligible(spec, requester, eligibility?).map(|_| ())
}

/// Admission of a RoleActivation update: the spec is immutable and the requester stamp too.
///
/// # Errors
/// [`Refusal::SpecImmutable`] or [`Refusal::StampChanged`].
pub fn admit_activation_update(
    old: &RoleActivationSpec,
    new: &RoleActivationSpec,
    old_annotations: Option<&BTreeMap<String, String>>,
    new_annotations: Option<&BTreeMap<String, String>>,
) -> Result<(), Refused> {
    if old != new {
        return Err(Refused::new(Refusal::SpecImmutable, "spec of a RoleActivation cannot change after create"));
    }
    stamp_unchanged(keys::REQUESTER, old_annotations, new_annotations)
}

/// The activation an ActivationReview reviews, as admission sees it.
pub struct Reviewed<'a> {
    /// Its spec.
    pub spec: &'a RoleActivationSpec,
    /// Its requester stamp.
    pub requester: Option<Caller>,
    /// Its recorded phase; None before the controller judged it.
    pub phase: Option<ActivationPhase>,
}

/// Admission of an ActivationReview create (SPEC §9): the reviewer is a listed approver of
/// the eligible authorization the activation uses (by user or group), not the requester,
/// and the activation is Pending (or not yet judged).
///
/// # Errors
/// [`Refusal::NotPending`], [`Refusal::SelfApproval`], [`Refusal::NotAnApprover`], or why
/// the activation itself is not eligible.
pub fn admit_review(
    reviewer: &Caller,
    activation: Option<Reviewed<'_>>,
    eligibility: Eligibility<'_>,
) -> Result<(), Refused> {
    let Some(activation) = activation else {
        return Err(Refused::new(Refusal::NotPending, "spec.roleActivationRef: no such RoleActivation here"));
    };
    if activation.phase.is_some_and(|p| p != ActivationPhase::Pending) {
        return Err(Refused::new(
            Refusal::NotPending,
            format!("the activation is {}, not Pending", activation.phase.map_or("", ActivationPhase::as_str)),
        ));
    }
    let Some(requester) = activation.requester else {
        return Err(Refused::new(Refusal::NotStamped, "the activation has no requester stamp"));
    };
    if requester.username == reviewer.username {
        return Err(Refused::new(Refusal::SelfApproval, "a requester cannot review their own activation"));
    }
    let used = matching_eligible(activation.spec, &requester, eligibility?)?;
    if !holds(reviewer, &used.approvers) {
        return Err(Refused::new(
            Refusal::NotAnApprover,
            format!(
                "{} is not a listed approver of spec.eligibleAuthorizations[{}] (managedByTenantApprovers)",
                reviewer.username, used.index
            ),
        ));
    }
    Ok(())
}

// --- the lifecycle ----------------------------------------------------------------------------

/// An ActivationReview as the lifecycle reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewInput {
    /// Name of the ActivationReview.
    pub name: String,
    /// The reviewer stamp; None when it bypassed admission (ignored then).
    pub reviewer: Option<Caller>,
    /// Approve or Deny.
    pub decision: Decision,
    /// The reviewer's reason.
    pub reason: String,
    /// Creation time.
    pub time: Option<Timestamp>,
    /// The UID of the activation it was given to ([`keys::REVIEWED_UID`]); None for a review
    /// admitted before that stamp existed (its creation time decides then).
    pub activation_uid: Option<String>,
}

/// How the clock runs for activations. `scale` divides every activation duration and the
/// approval timeout: **a test-only setting** (`KUBE_LIGHTHOUSE_TEST_TIME_SCALE`), so that a
/// 30-minute activation (the policy minimum, still enforced as written) lasts seconds in a
/// test. 1 in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// How long a Pending activation waits for an approver (24 h by default).
    pub approval_timeout: SignedDuration,
    /// Divisor of durations; at least 1.
    pub scale: u32,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { approval_timeout: SignedDuration::from_hours(24), scale: 1 }
    }
}

impl Clock {
    /// `d` as this clock runs it.
    pub fn scaled(&self, d: SignedDuration) -> SignedDuration {
        d / i32::try_from(self.scale.max(1)).unwrap_or(i32::MAX)
    }
}

/// What the lifecycle reads of one activation.
pub struct PhaseInputs<'a> {
    /// The activation's spec.
    pub spec: &'a RoleActivationSpec,
    /// The requester stamp.
    pub requester: Option<&'a Caller>,
    /// Its ActivationReviews, in any order.
    pub reviews: &'a [ReviewInput],
    /// Its creation time.
    pub created: Timestamp,
    /// Its UID.
    pub uid: Option<&'a str>,
    /// Its recorded status.
    pub previous: &'a RoleActivationStatus,
    /// The eligible authorizations of its assignment, or why there are none.
    pub eligibility: Eligibility<'a>,
    /// Approval timeout and the test-only time scale.
    pub clock: Clock,
    /// The time the phase is judged at.
    pub now: Timestamp,
}

/// The lifecycle's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseDecision {
    /// The phase now.
    pub phase: ActivationPhase,
    /// When the access came (or comes) into force.
    pub active_from: Option<Timestamp>,
    /// When it ends.
    pub expires_at: Option<Timestamp>,
    /// The reviews of listed approvers, oldest first.
    pub reviews: Vec<crate::api::activation::ReviewRecord>,
    /// CamelCase reason of the Ready condition.
    pub reason: &'static str,
    /// The Ready condition's message, in words.
    pub message: String,
    /// When to look again (expiry, or the approval timeout); None: only on change.
    pub recheck_in: Option<SignedDuration>,
    /// For a phase that ended access now: how late after `expiresAt` (expiry only).
    pub overdue: Option<SignedDuration>,
}

fn valid_reviews(inputs: &PhaseInputs<'_>, used: Option<&Eligible>) -> Vec<crate::api::activation::ReviewRecord> {
    let mut reviews: Vec<&ReviewInput> = inputs
        .reviews
        .iter()
        .filter(|r| {
            let Some(reviewer) = &r.reviewer else { return false };
            // A review names its activation by name only: admission stamps the UID of the one
            // it was given to, so that it never decides a later activation of the same name.
            // Without the stamp, one created before this activation was given to an earlier
            // one (deleted since). (Both times are the API server's, to the second.)
            let for_this_one = match (r.activation_uid.as_deref(), inputs.uid) {
                (Some(given_to), Some(uid)) => given_to == uid,
                _ => r.time.is_some_and(|t| t >= inputs.created),
            };
            let not_self = inputs.requester.is_none_or(|q| q.username != reviewer.username);
            for_this_one && not_self && used.is_some_and(|e| holds(reviewer, &e.approvers))
        })
        .collect();
    reviews.sort_by(|a, b| (a.time, &a.name).cmp(&(b.time, &b.name)));
    reviews
        .into_iter()
        .map(|r| crate::api::activation::ReviewRecord {
            reviewer: r.reviewer.as_ref().map(|c| c.username.clone()).unwrap_or_default(),
            decision: r.decision,
            reason: r.reason.clone(),
            time: r.time.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
            name: r.name.clone(),
        })
        .collect()
}

fn ts(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// The phase of an activation that is not being deleted (SPEC §9): final phases stay; no
/// stamp or no eligibility ends it (Denied if it never was Active, Revoked if it was);
/// without approvers it is Active at once, with approvers Pending until the first Approve
/// (Active) or Deny (Denied) of a listed approver who is not the requester, TimedOut after
/// the approval timeout; Active until `activeFrom + duration`, then Expired.
pub fn phase(inputs: &PhaseInputs<'_>) -> PhaseDecision {
    let previous = inputs.previous;
    let was = previous.phase;
    let mut d = PhaseDecision {
        phase: was.unwrap_or(ActivationPhase::Pending),
        active_from: ts(&previous.active_from),
        expires_at: ts(&previous.expires_at),
        reviews: previous.reviews.clone(),
        reason: "",
        message: String::new(),
        recheck_in: None,
        overdue: None,
    };
    if let Some(p) = was.filter(|p| p.is_final()) {
        d.phase = p;
        d.reason = p.as_str();
        d.message = conditions_message(previous);
        return d;
    }
    let end = |d: &mut PhaseDecision, refused: Refused| {
        d.phase = if was == Some(ActivationPhase::Active) { ActivationPhase::Revoked } else { ActivationPhase::Denied };
        d.reason = refused.refusal.reason();
        d.message = refused.message;
    };
    let Some(requester) = inputs.requester else {
        end(
            &mut d,
            Refused::new(
                Refusal::NotStamped,
                "no requester stamp: created while the admission webhook was not in the way",
            ),
        );
        return d;
    };
    let used = match inputs.eligibility.clone().and_then(|e| matching_eligible(inputs.spec, requester, e)) {
        Ok(used) => used,
        Err(refused) => {
            end(&mut d, refused);
            return d;
        }
    };
    let Ok(duration) = activation_duration(inputs.spec) else {
        end(&mut d, Refused::new(Refusal::InvalidDuration, "spec.duration is not a duration"));
        return d;
    };
    // The record keeps every review once seen, even if its ActivationReview is deleted later.
    let mut reviews = previous.reviews.clone();
    for r in valid_reviews(inputs, Some(used)) {
        if !reviews.iter().any(|kept| kept.name == r.name) {
            reviews.push(r);
        }
    }
    reviews.sort_by(|a, b| (a.time.as_ref().map(|t| t.0), &a.name).cmp(&(b.time.as_ref().map(|t| t.0), &b.name)));
    d.reviews = reviews;
    if was != Some(ActivationPhase::Active) {
        let needs_approval = !used.approvers.is_empty();
        match d.reviews.first().map(|r| r.decision) {
            _ if !needs_approval => {}
            Some(Decision::Approve) => {}
            Some(Decision::Deny) => {
                let r = &d.reviews[0];
                d.phase = ActivationPhase::Denied;
                d.reason = "Denied";
                d.message = format!("denied by {}: {}", r.reviewer, r.reason);
                return d;
            }
            None => {
                let deadline = inputs.created + inputs.clock.scaled(inputs.clock.approval_timeout);
                if inputs.now >= deadline {
                    d.phase = ActivationPhase::TimedOut;
                    d.reason = "TimedOut";
                    d.message = "no approver decided within the approval timeout".into();
                } else {
                    d.phase = ActivationPhase::Pending;
                    d.reason = "AwaitingApproval";
                    d.message = "waiting for a listed approver".into();
                    d.recheck_in = Some(deadline.duration_since(inputs.now));
                }
                return d;
            }
        }
        d.active_from = Some(inputs.now);
        d.expires_at = Some(inputs.now + inputs.clock.scaled(duration));
    }
    let expires_at = match (d.active_from, d.expires_at) {
        (_, Some(e)) => e,
        (Some(from), None) => from + inputs.clock.scaled(duration),
        (None, None) => inputs.now + inputs.clock.scaled(duration),
    };
    d.expires_at = Some(expires_at);
    d.active_from = d.active_from.or(Some(inputs.now));
    if inputs.now >= expires_at {
        d.phase = ActivationPhase::Expired;
        d.reason = "Expired";
        d.message = format!("expired at {expires_at}");
        d.overdue = Some(inputs.now.duration_since(expires_at));
    } else {
        d.phase = ActivationPhase::Active;
        d.reason = "Active";
        d.message = format!("{} holds {} until {expires_at}", requester.username, used.role);
        d.recheck_in = Some(expires_at.duration_since(inputs.now));
    }
    d
}

fn conditions_message(status: &RoleActivationStatus) -> String {
    status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.message.clone()).unwrap_or_default()
}

/// The phase an activation ends in when deleted: Canceled by its requester, Revoked by
/// anyone else (a customer admin) or when the deleter is unknown. A final phase stays.
pub fn phase_on_delete(
    previous: Option<ActivationPhase>,
    requester: Option<&Caller>,
    deleter: Option<&str>,
) -> ActivationPhase {
    match previous {
        Some(p) if p.is_final() => p,
        _ => match (requester, deleter) {
            (Some(r), Some(d)) if r.username == d => ActivationPhase::Canceled,
            _ => ActivationPhase::Revoked,
        },
    }
}

/// How long after its deletion an activation waits for the record of who deleted it: the
/// access goes at once, the finalizer stays until `status.endedBy` is recorded or this has
/// passed (then the deleter is unknown and the phase Revoked). The replica that admitted the
/// delete records it as soon as its own watch shows the deletion, in milliseconds.
pub const DELETER_HOLD: SignedDuration = SignedDuration::from_secs(5);

/// How long a deletion claimed at admission stays credible: a claim older than this when the
/// deletion shows in the watch is dropped, so that a forged claim cannot wait for a real delete.
pub const DELETER_CLAIM_WINDOW: SignedDuration = SignedDuration::from_secs(10);

/// What the record of a deletion says, from the deleters that admission saw claimed for one
/// activation (by UID) within [`DELETER_CLAIM_WINDOW`] before its deletion showed in the watch.
///
/// Admission cannot tell a real delete from a forged review (without a client CA, docs/install.md),
/// nor an allowed delete from one a later admission step refused, so a claim only counts once
/// the API server's watch shows the deletion, and claims that disagree prove nothing: then
/// the deleter is unknown and the phase is Revoked (never Canceled, which would let a forger
/// pass a customer's revocation off as the requester's own). None when nobody claimed it.
/// `previous`: the phase before the deletion; a final phase stays.
pub fn deletion_record(
    previous: Option<ActivationPhase>,
    requester: Option<&Caller>,
    claims: &[String],
) -> Option<(ActivationPhase, String)> {
    let mut deleters: Vec<&str> = claims.iter().map(String::as_str).collect();
    deleters.sort_unstable();
    deleters.dedup();
    match deleters.as_slice() {
        [] => None,
        [one] => Some((phase_on_delete(previous, requester, Some(one)), (*one).to_string())),
        several => {
            Some((phase_on_delete(previous, requester, None), format!("{UNKNOWN_DELETER}{}", several.join(", "))))
        }
    }
}

/// The prefix of `endedBy` when the claims disagree: the deleter is unknown.
const UNKNOWN_DELETER: &str = "unknown: admission saw conflicting deletes by ";

/// What to write when this replica's `claims` meet what is recorded already: every replica
/// serves admission, and the API server sends a delete to one of them while anyone who reaches
/// the port may post a forged claim to another, so each replica may hold different claims.
/// With nothing recorded, [`deletion_record`] (`previous` is the phase before the deletion).
/// With a record (another replica's, `recorded_phase` and `recorded_by`) that every claim here
/// agrees with, or that already says the deleter is unknown: nothing. With a claim here that
/// disagrees: the deleter is unknown, and a Canceled or Revoked phase becomes Revoked (never
/// Canceled: a forger cannot pass a revocation off as the requester's own). Pure: the
/// replica's watch decides when, `deleter::record` writes.
pub fn merged_deletion_record(
    previous: Option<ActivationPhase>,
    recorded_by: Option<&str>,
    requester: Option<&Caller>,
    claims: &[String],
) -> Option<(ActivationPhase, String)> {
    let Some(recorded) = recorded_by else {
        return deletion_record(previous, requester, claims);
    };
    if recorded.starts_with(UNKNOWN_DELETER) || claims.iter().all(|c| c == recorded) {
        return None;
    }
    let mut deleters: Vec<&str> = claims.iter().map(String::as_str).chain([recorded]).collect();
    deleters.sort_unstable();
    deleters.dedup();
    let phase = match previous {
        Some(p) if p.is_final() && p != ActivationPhase::Canceled && p != ActivationPhase::Revoked => p,
        _ => ActivationPhase::Revoked,
    };
    Some((phase, format!("{UNKNOWN_DELETER}{}", deleters.join(", "))))
}

/// How long the finalizer of a deleted activation still waits for the record of who deleted
/// it (see [`DELETER_HOLD`]): None when there is nothing to wait for: it is recorded, the
/// phase was final before the deletion, or the hold has passed at `now`.
pub fn awaiting_deleter(
    status: Option<&RoleActivationStatus>,
    deleted_at: Option<Timestamp>,
    now: Timestamp,
) -> Option<SignedDuration> {
    let deleted_at = deleted_at?;
    if status.is_some_and(|s| s.ended_by.is_some() || s.phase.is_some_and(ActivationPhase::is_final)) {
        return None;
    }
    let left = (deleted_at + DELETER_HOLD).duration_since(now);
    left.is_positive().then_some(left)
}

/// Whether an activation grants now: Active, not being deleted, and not past `expiresAt`.
pub fn in_force(status: Option<&RoleActivationStatus>, deleting: bool, now: Timestamp) -> bool {
    let Some(s) = status else { return false };
    !deleting && s.phase == Some(ActivationPhase::Active) && ts(&s.expires_at).is_some_and(|e| now < e)
}

/// The status a [`PhaseDecision`] implies, keeping what it does not decide (`endedBy`),
/// with `endedAt` set when the phase first becomes final.
pub fn status_of(
    previous: &RoleActivationStatus,
    decision: &PhaseDecision,
    requester: Option<&Caller>,
    now: Timestamp,
) -> RoleActivationStatus {
    use crate::api::status::merge_condition;
    use crate::api::{Condition, ConditionStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let active = decision.phase == ActivationPhase::Active;
    let condition = Condition {
        type_: "Ready".into(),
        status: if active { ConditionStatus::True } else { ConditionStatus::False },
        reason: decision.reason.to_string(),
        message: decision.message.clone(),
        observed_generation: None,
        last_transition_time: None,
    };
    let ended_at = match (previous.ended_at.clone(), decision.phase.is_final()) {
        (Some(t), _) => Some(t),
        (None, true) => Some(Time(now)),
        (None, false) => None,
    };
    RoleActivationStatus {
        requester: requester.cloned().or_else(|| previous.requester.clone()),
        phase: Some(decision.phase),
        active_from: decision.active_from.map(Time),
        expires_at: decision.expires_at.map(Time),
        ended_at,
        ended_by: previous.ended_by.clone(),
        reviews: decision.reviews.clone(),
        conditions: merge_condition(&previous.conditions, condition, Time(now)),
    }
}

/// Whether two statuses differ in anything but transition times.
pub fn same_status(a: &RoleActivationStatus, b: &RoleActivationStatus) -> bool {
    let strip = |s: &RoleActivationStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = None;
        }
        s
    };
    strip(a) == strip(b)
}

/// The Event a change of phase publishes: Normal for Pending, Active, Expired and Canceled;
/// Warning for Denied, Revoked and TimedOut. None when the phase did not change.
pub fn notice(previous: Option<ActivationPhase>, decision: &PhaseDecision) -> Option<super::status::Notice> {
    if previous == Some(decision.phase) {
        return None;
    }
    let warning =
        matches!(decision.phase, ActivationPhase::Denied | ActivationPhase::Revoked | ActivationPhase::TimedOut);
    Some(super::status::Notice {
        warning,
        reason: format!("Activation{}", decision.phase.as_str()),
        note: Some(decision.message.chars().take(1000).collect()),
        action: "Activate",
    })
}

/// The Event of an activation ended by deletion: who deleted it, and what was removed.
pub fn ended_notice(phase: ActivationPhase, deleter: Option<&str>, removed: usize) -> super::status::Notice {
    let who = deleter.unwrap_or("an unknown identity (the admission webhook did not see the delete)");
    super::status::Notice {
        warning: phase == ActivationPhase::Revoked,
        reason: format!("Activation{}", phase.as_str()),
        note: Some(format!("{} by {who}; {removed} RBAC objects removed", phase.as_str())),
        action: "Deactivate",
    }
}

// --- what is materialized ---------------------------------------------------------------------

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn activation_rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![ACTIVATION_GROUP.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        resource_names: None,
        non_resource_urls: None,
    }
}

/// Rules of the Role every eligible principal gets in the assignment's namespaces: create
/// only. Reading and ending an activation is a right on that one object, for its requester
/// ([`own_activation_rules`]): RBAC cannot say "the activations you created", so it is
/// materialized per activation instead of granted on all of them.
pub fn requester_rules() -> Vec<PolicyRule> {
    vec![activation_rule(&["roleactivations"], &["create"])]
}

/// Rules of the Role every approver gets in the assignment's namespaces: create reviews
/// only. Reading an activation to review is a right on that one object, for the approvers of
/// the eligible authorization it uses ([`reviewed_activation_rules`]).
pub fn approver_rules() -> Vec<PolicyRule> {
    vec![activation_rule(&["activationreviews"], &["create"])]
}

fn pinned(name: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule { resource_names: Some(vec![name.to_string()]), ..activation_rule(&["roleactivations"], verbs) }
}

/// Rules of the requester on its own activation `name`: read it (get, and watch it by name)
/// and end it early by deleting it (Canceled), nothing else. `list` is authorized by name
/// only with a `metadata.name` field selector, which is how `watch` by name works.
pub fn own_activation_rules(name: &str) -> Vec<PolicyRule> {
    vec![pinned(name, &["get", "list", "watch", "delete"])]
}

/// Rules of the approvers of an activation `name`: read that one activation.
pub fn reviewed_activation_rules(name: &str) -> Vec<PolicyRule> {
    vec![pinned(name, &["get", "list", "watch"])]
}

/// Role part of the names of the eligibility Roles (after `kubelighthouse:<hash>:`).
pub const ELIGIBLE_REQUESTER_PART: &str = "eligible:requester";
/// Role part of the approvers' Role.
pub const ELIGIBLE_APPROVER_PART: &str = "eligible:approver";

fn role_and_binding(meta: ObjectMeta, rules: Vec<PolicyRule>, subjects: Vec<Subject>, out: &mut DesiredRbac) {
    let name = meta.name.clone().unwrap_or_default();
    out.roles.push(Role { metadata: meta.clone(), rules: Some(rules) });
    out.bindings.push(RoleBinding {
        metadata: meta,
        role_ref: RoleRef { api_group: Some(RBAC_GROUP.into()), kind: "Role".into(), name },
        subjects: Some(subjects),
    });
}

fn union(subjects: impl IntoIterator<Item = Subject>) -> Vec<Subject> {
    let mut all: Vec<Subject> = subjects.into_iter().collect();
    all.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    all.dedup();
    all
}

/// SPEC §9, what eligibility materializes, in each namespace of the assignment's scope: the
/// eligible principals may create, read and delete RoleActivations; the approvers may create
/// ActivationReviews and read RoleActivations. Nothing else.
pub fn eligibility_rbac(
    assignment: &AssignmentRef,
    managing_tenant: &str,
    eligible: &[Eligible],
    namespaces: &[String],
) -> DesiredRbac {
    let mut out = DesiredRbac::default();
    let requesters = union(eligible.iter().flat_map(|e| e.subjects.clone()));
    let approvers = union(eligible.iter().flat_map(|e| e.approvers.clone()));
    for namespace in namespaces {
        for (part, rules, subjects) in [
            (ELIGIBLE_REQUESTER_PART, requester_rules(), &requesters),
            (ELIGIBLE_APPROVER_PART, approver_rules(), &approvers),
        ] {
            if subjects.is_empty() {
                continue;
            }
            let meta = ObjectMeta {
                name: Some(desired::object_name(assignment, part)),
                namespace: Some(namespace.clone()),
                labels: Some(desired::labels(assignment, managing_tenant)),
                annotations: Some(BTreeMap::from([
                    (keys::ASSIGNMENT.to_string(), format!("{}/{}", assignment.namespace, assignment.name)),
                    (keys::SOURCE_ROLE.to_string(), part.to_string()),
                ])),
                ..Default::default()
            };
            role_and_binding(meta, rules, subjects.clone(), &mut out);
        }
    }
    out
}

/// One activation in force, as the assignment that covers it builds it.
#[derive(Clone, Debug, PartialEq)]
pub struct InForce {
    /// The activation's namespace: the only one its access is in.
    pub namespace: String,
    /// The activation's name (label `kubelighthouse.io/activation`).
    pub name: String,
    /// The activation's UID (label `kubelighthouse.io/activation-uid`, the revoke selector).
    pub uid: String,
    /// The requester's user name: the only subject bound.
    pub username: String,
    /// The eligible role's ClusterRole name.
    pub role: String,
    /// Its delegable rules, before [`desired::materialized_rules`] pins them.
    pub rules: Vec<PolicyRule>,
    /// When it ends (annotation `activation.kubelighthouse.io/expires-at`).
    pub expires_at: Timestamp,
}

/// Role part of the name of an activation's Role and RoleBinding.
pub fn activation_part(activation: &str) -> String {
    format!("activation:{activation}")
}

/// Role part of the name of the Role and RoleBinding that let a requester read and end its
/// own activation.
pub fn own_activation_part(activation: &str) -> String {
    format!("activation-requester:{activation}")
}

/// Role part of the name of the Role and RoleBinding that let the approvers read an activation.
pub fn reviewed_activation_part(activation: &str) -> String {
    format!("activation-approver:{activation}")
}

/// One activation that exists (not being deleted), and who may see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Readable {
    /// The activation's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The requester's user name (the admission stamp).
    pub requester: String,
    /// The approvers of the eligible authorization it uses (user and group subjects).
    pub approvers: Vec<Subject>,
}

/// Whether `caller` may read an activation of `spec` requested by `requester` under the
/// eligible authorizations `eligible`: it is the requester, or a listed approver (user or
/// member of a group) of the eligible authorization the activation uses. What
/// [`activation_access_rbac`] materializes, as the views API answers it.
pub fn may_read(caller: &Caller, requester: Option<&Caller>, spec: &RoleActivationSpec, eligible: &[Eligible]) -> bool {
    let Some(requester) = requester else { return false };
    if requester.username == caller.username {
        return true;
    }
    matching_eligible(spec, requester, eligible).is_ok_and(|used| holds(caller, &used.approvers))
}

/// Which of `activations` may be read under a valid delegation whose scope is `namespaces`:
/// stamped, in scope, not being deleted (a final phase stays readable, so the requester sees
/// why it ended and may delete it), and matching an eligible authorization of their requester
/// (whose approvers may read them).
pub fn readable_under<'a>(
    activations: impl IntoIterator<Item = (ActivationView<'a>, Option<Caller>)>,
    eligible: &[Eligible],
    namespaces: &[String],
) -> Vec<Readable> {
    let mut out = Vec::new();
    for (a, requester) in activations {
        if a.deleting || !namespaces.iter().any(|n| n == a.namespace) {
            continue;
        }
        let Some(requester) = requester else { continue };
        let Ok(used) = matching_eligible(a.spec, &requester, eligible) else { continue };
        out.push(Readable {
            namespace: a.namespace.to_string(),
            name: a.name.to_string(),
            requester: requester.username.clone(),
            approvers: used.approvers.clone(),
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

/// What lets the right people see an activation, in its namespace only: a Role with
/// [`own_activation_rules`] bound to the requester's own User subject, and, when its eligible
/// authorization lists approvers, a Role with [`reviewed_activation_rules`] bound to them.
/// Labelled as the assignment's only, not with `kubelighthouse.io/activation[-uid]` (which
/// mark an activation's access): they grant nothing but the sight of that object, so they
/// stay through its final phase, and go when it is deleted (no longer desired).
pub fn activation_access_rbac(assignment: &AssignmentRef, managing_tenant: &str, live: &[Readable]) -> DesiredRbac {
    let mut out = DesiredRbac::default();
    for a in live {
        let labels = desired::labels(assignment, managing_tenant);
        let meta = |part: String| ObjectMeta {
            name: Some(desired::object_name(assignment, &part)),
            namespace: Some(a.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([
                (keys::ASSIGNMENT.to_string(), format!("{}/{}", assignment.namespace, assignment.name)),
                (keys::SOURCE_ROLE.to_string(), part),
            ])),
            ..Default::default()
        };
        role_and_binding(
            meta(own_activation_part(&a.name)),
            own_activation_rules(&a.name),
            vec![user(a.requester.clone())],
            &mut out,
        );
        if !a.approvers.is_empty() {
            role_and_binding(
                meta(reviewed_activation_part(&a.name)),
                reviewed_activation_rules(&a.name),
                a.approvers.clone(),
                &mut out,
            );
        }
    }
    out
}

/// SPEC §9, what an active activation materializes: a Role with the eligible role's
/// rules as [`desired::materialized_rules`] makes them for this assignment and namespace, and
/// a RoleBinding to the requester's own User subject (never a group), in
/// the activation's namespace only, labelled with the assignment and the activation and
/// annotated with the expiry.
pub fn activation_rbac(assignment: &AssignmentRef, managing_tenant: &str, active: &[InForce]) -> DesiredRbac {
    let mut out = DesiredRbac::default();
    for a in active {
        let mut labels = desired::labels(assignment, managing_tenant);
        labels.insert(keys::ACTIVATION.to_string(), desired::label_value(&a.name));
        labels.insert(keys::ACTIVATION_UID.to_string(), a.uid.clone());
        let meta = ObjectMeta {
            name: Some(desired::object_name(assignment, &activation_part(&a.name))),
            namespace: Some(a.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                (keys::ASSIGNMENT.to_string(), format!("{}/{}", assignment.namespace, assignment.name)),
                (keys::SOURCE_ROLE.to_string(), a.role.clone()),
                (keys::ACTIVATION_EXPIRES_AT.to_string(), a.expires_at.to_string()),
            ])),
            ..Default::default()
        };
        // The same rules the role grants as a standing authorization here: the Delete role
        // pinned to this assignment, never any assignment of the namespace.
        let rules = desired::materialized_rules(&a.rules, assignment, &a.namespace);
        role_and_binding(meta, rules, vec![user(a.username.clone())], &mut out);
    }
    out
}

/// Which of `activations` (namespace, name, uid, spec, status, deleting) are in force under
/// a valid delegation whose scope is `namespaces`: Active, unexpired at `now`, in scope, and
/// still matching an eligible authorization for their requester.
pub fn in_force_under<'a>(
    activations: impl IntoIterator<Item = ActivationView<'a>>,
    eligible: &[Eligible],
    namespaces: &[String],
    now: Timestamp,
) -> Vec<InForce> {
    let mut out = Vec::new();
    for a in activations {
        if !namespaces.contains(&a.namespace.to_string()) || !in_force(a.status, a.deleting, now) {
            continue;
        }
        let Some(requester) = a.status.and_then(|s| s.requester.as_ref()) else { continue };
        let Ok(used) = matching_eligible(a.spec, requester, eligible) else { continue };
        let Some(expires_at) = a.status.and_then(|s| ts(&s.expires_at)) else { continue };
        out.push(InForce {
            namespace: a.namespace.to_string(),
            name: a.name.to_string(),
            uid: a.uid.to_string(),
            username: requester.username.clone(),
            role: used.role.clone(),
            rules: used.rules.clone(),
            expires_at,
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

/// What eligibility may materialize, for the author's-authority check of admission (SPEC
/// §3 rule 6): the eligible roles' rules (an activation grants them) and the activation
/// rights of the eligibility Roles.
pub fn eligible_grants(eligible: &[Eligible]) -> Vec<super::validate::Grant> {
    let mut grants: Vec<super::validate::Grant> = eligible
        .iter()
        .map(|e| super::validate::Grant { role: e.role.clone(), rules: e.rules.clone(), subjects: Vec::new() })
        .collect();
    if !eligible.is_empty() {
        let mut rules = requester_rules();
        rules.extend(approver_rules());
        // Per activation, pinned to its name: the author must hold these on every activation.
        rules.push(activation_rule(&["roleactivations"], &["get", "list", "watch", "delete"]));
        grants.push(super::validate::Grant { role: ELIGIBLE_REQUESTER_PART.into(), rules, subjects: Vec::new() });
    }
    grants
}

/// Everything SPEC §9 adds to an assignment's desired RBAC: the eligibility Roles in every
/// namespace of its scope, and the Role and RoleBinding of each activation in force.
pub fn desired(snapshot: &super::outcome::Snapshot, valid: &ValidDefinition, namespaces: &[String]) -> DesiredRbac {
    let tenant = valid.managing_tenant.as_str();
    let mut out = eligibility_rbac(&snapshot.assignment, tenant, &valid.eligible, namespaces);
    let views = snapshot.activations.iter().map(|a| ActivationView {
        namespace: a.metadata.namespace.as_deref().unwrap_or_default(),
        name: a.metadata.name.as_deref().unwrap_or_default(),
        uid: a.metadata.uid.as_deref().unwrap_or_default(),
        spec: &a.spec,
        status: a.status.as_ref(),
        deleting: a.metadata.deletion_timestamp.is_some(),
    });
    let in_force = in_force_under(views.clone(), &valid.eligible, namespaces, snapshot.now);
    out.extend(activation_rbac(&snapshot.assignment, tenant, &in_force));
    let stamped = snapshot.activations.iter().map(|a| stamped(a.metadata.annotations.as_ref(), keys::REQUESTER));
    let live = readable_under(views.zip(stamped), &valid.eligible, namespaces);
    out.extend(activation_access_rbac(&snapshot.assignment, tenant, &live));
    out
}

/// An activation as [`in_force_under`] reads it.
#[derive(Clone, Copy, Debug)]
pub struct ActivationView<'a> {
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.uid`.
    pub uid: &'a str,
    /// Its spec.
    pub spec: &'a RoleActivationSpec,
    /// Its status, as the controller recorded it.
    pub status: Option<&'a RoleActivationStatus>,
    /// Whether it has a deletion timestamp.
    pub deleting: bool,
}

#[cfg(test)]
mod tests;
