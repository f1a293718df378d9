use super::*;
use crate::api::activation::{AssignmentRef as SpecAssignmentRef, ReviewRecord};
use crate::api::{Condition, ConditionStatus};
use crate::model::projection::IdentityTemplates;

const T: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
const ENGINEER: &str = "00000000-0000-0000-0000-00000000e001";
const ENGINEERS: &str = "00000000-0000-0000-0000-0000000000c3";
const LEAD: &str = "00000000-0000-0000-0000-0000000000d4";
const LEADS: &str = "00000000-0000-0000-0000-0000000000d5";
const CONTRIBUTOR_GUID: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

fn name(principal: &str) -> String {
    format!("{T}:{principal}")
}

fn caller(user: &str, groups: &[&str], amr: &[&str]) -> Caller {
    Caller {
        username: name(user),
        groups: groups.iter().map(|g| name(g)).collect(),
        amr: amr.iter().map(|s| s.to_string()).collect(),
    }
}

fn rule() -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec!["apps".into()]),
        resources: Some(vec!["deployments".into()]),
        verbs: vec!["create".into()],
        ..Default::default()
    }
}

fn eligible(principal_group: &str, approvers: &[&str], mfa: bool, max_hours: i64) -> Eligible {
    let t = IdentityTemplates::default();
    let mut approvers: Vec<Subject> = approvers.iter().flat_map(|a| t.subjects(T, a, None)).collect();
    approvers.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    Eligible {
        index: 0,
        role: "kubelighthouse:contributor".into(),
        role_guid: Some(CONTRIBUTOR_GUID.into()),
        role_display_name: Some("Contributor".into()),
        rules: vec![rule()],
        subjects: t.subjects(T, principal_group, Some(crate::api::PrincipalType::Group)),
        approvers,
        max_duration: SignedDuration::from_hours(max_hours),
        requires_mfa: mfa,
    }
}

fn spec(duration: &str) -> RoleActivationSpec {
    RoleActivationSpec {
        registration_assignment_ref: SpecAssignmentRef { name: "contoso".into() },
        role_definition_id: CONTRIBUTOR_GUID.into(),
        duration: duration.into(),
        justification: "Outage 4711".into(),
        ticket: None,
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("timestamp")
}

// --- admission of activations -----------------------------------------------------------------

#[test]
fn an_eligible_group_member_may_activate_within_the_policy() {
    let e = [eligible(ENGINEERS, &[], false, 4)];
    let me = caller(ENGINEER, &[ENGINEERS], &["pwd"]);
    assert_eq!(admit_activation(&spec("PT2H"), &me, Ok(&e)), Ok(()));
    assert_eq!(admit_activation(&spec("PT4H"), &me, Ok(&e)), Ok(()));
}

#[test]
fn the_role_may_be_named_by_guid_cluster_role_or_display_name() {
    let e = [eligible(ENGINEERS, &[], false, 4)];
    let me = caller(ENGINEER, &[ENGINEERS], &[]);
    let mut s = spec("PT1H");
    s.role_definition_id = "kubelighthouse:contributor".into();
    assert_eq!(admit_activation(&s, &me, Ok(&e)), Ok(()));
    s.role_definition_id = CONTRIBUTOR_GUID.to_uppercase();
    assert_eq!(admit_activation(&s, &me, Ok(&e)), Ok(()));
    s.role_definition_id = "contributor".into();
    assert_eq!(admit_activation(&s, &me, Ok(&e)), Ok(()), "by display name");
    s.role_definition_id = "acdd72a7-3385-48ef-bd42-f606fba81ae7".into();
    assert_eq!(admit_activation(&s, &me, Ok(&e)).map_err(|r| r.refusal), Err(Refusal::NotEligible));
}

#[test]
fn activations_are_refused_for_each_broken_rule() {
    let plain = [eligible(ENGINEERS, &[], false, 4)];
    let mfa = [eligible(ENGINEERS, &[], true, 4)];
    let member = caller(ENGINEER, &[ENGINEERS], &["pwd"]);
    let outsider = caller(ENGINEER, &["00000000-0000-0000-0000-0000000000ff"], &["pwd", "mfa"]);
    let mut blank = spec("PT1H");
    blank.justification = "  ".into();
    let cases: Vec<(RoleActivationSpec, &Caller, Eligibility<'_>, Refusal)> = vec![
        (blank, &member, Ok(&plain), Refusal::MissingJustification),
        (spec("PT4H1M"), &member, Ok(&plain), Refusal::DurationAbovePolicy),
        (spec("PT0S"), &member, Ok(&plain), Refusal::InvalidDuration),
        (spec("two hours"), &member, Ok(&plain), Refusal::InvalidDuration),
        (spec("PT1H"), &outsider, Ok(&plain), Refusal::NotEligible),
        (spec("PT1H"), &member, Ok(&mfa), Refusal::MultiFactorAuthRequired),
        (spec("PT1H"), &member, Err(Refused::new(Refusal::AssignmentNotFound, "gone")), Refusal::AssignmentNotFound),
    ];
    for (s, who, eligibility, expected) in cases {
        let got = admit_activation(&s, who, eligibility).map_err(|r| r.refusal);
        assert_eq!(got, Err(expected), "{s:?}");
    }
}

#[test]
fn multi_factor_evidence_satisfies_the_policy() {
    let mfa = [eligible(ENGINEERS, &[], true, 4)];
    assert_eq!(admit_activation(&spec("PT1H"), &caller(ENGINEER, &[ENGINEERS], &["pwd", "mfa"]), Ok(&mfa)), Ok(()));
}

#[test]
fn a_second_eligible_authorization_with_a_looser_policy_is_used() {
    let mut loose = eligible(ENGINEERS, &[], false, 8);
    loose.index = 1;
    let e = [eligible(ENGINEERS, &[], true, 1), loose];
    let me = caller(ENGINEER, &[ENGINEERS], &["pwd"]);
    assert_eq!(matching_eligible(&spec("PT6H"), &me, &e).map(|e| e.index), Ok(1));
}

#[test]
fn the_spec_and_the_requester_stamp_are_immutable() {
    let stamp = |v: &str| Some(BTreeMap::from([(keys::REQUESTER.to_string(), v.to_string())]));
    assert_eq!(admit_activation_update(&spec("PT1H"), &spec("PT1H"), stamp("a").as_ref(), stamp("a").as_ref()), Ok(()));
    let refusal = |r: Result<(), Refused>| r.map_err(|r| r.refusal);
    assert_eq!(
        refusal(admit_activation_update(&spec("PT1H"), &spec("PT2H"), stamp("a").as_ref(), stamp("a").as_ref())),
        Err(Refusal::SpecImmutable)
    );
    assert_eq!(
        refusal(admit_activation_update(&spec("PT1H"), &spec("PT1H"), stamp("a").as_ref(), stamp("b").as_ref())),
        Err(Refusal::StampChanged)
    );
    assert_eq!(
        refusal(admit_activation_update(&spec("PT1H"), &spec("PT1H"), stamp("a").as_ref(), None)),
        Err(Refusal::StampChanged)
    );
}

// --- the stamp --------------------------------------------------------------------------------

#[test]
fn the_stamp_is_the_callers_user_info_and_overwrites_any_client_value() {
    let user = k8s_openapi::api::authentication::v1::UserInfo {
        username: Some(name(ENGINEER)),
        groups: Some(vec![name(ENGINEERS)]),
        extra: Some(BTreeMap::from([(keys::AMR_EXTRA.to_string(), vec!["mfa".to_string()])])),
        uid: None,
    };
    let c = caller_from(&user);
    assert_eq!(c, caller(ENGINEER, &[ENGINEERS], &["mfa"]));
    let patch = stamp_patch(keys::REQUESTER, &c, true);
    assert_eq!(patch[0]["op"], "add", "add replaces an existing member");
    assert_eq!(patch[0]["path"], "/metadata/annotations/activation.kubelighthouse.io~1requester");
    let patch = stamp_patch(keys::REQUESTER, &c, false);
    assert_eq!(patch[0]["path"], "/metadata/annotations");
    let value = patch[0]["value"][keys::REQUESTER].as_str().expect("string");
    let annotations = BTreeMap::from([(keys::REQUESTER.to_string(), value.to_string())]);
    assert_eq!(stamped(Some(&annotations), keys::REQUESTER), Some(c));
    assert_eq!(stamped(None, keys::REQUESTER), None);
}

// --- admission of reviews ---------------------------------------------------------------------

#[test]
fn a_listed_approver_may_review_a_pending_activation() {
    let e = [eligible(ENGINEERS, &[LEADS], false, 4)];
    let s = spec("PT1H");
    let requester = caller(ENGINEER, &[ENGINEERS], &[]);
    let reviewed = |phase| Some(Reviewed { spec: &s, requester: Some(requester.clone()), phase });
    let lead = caller(LEAD, &[LEADS], &[]);
    assert_eq!(admit_review(&lead, reviewed(None), Ok(&e)), Ok(()));
    assert_eq!(admit_review(&lead, reviewed(Some(ActivationPhase::Pending)), Ok(&e)), Ok(()));
    let refusal = |r: Result<(), Refused>| r.map_err(|r| r.refusal);
    assert_eq!(refusal(admit_review(&lead, reviewed(Some(ActivationPhase::Active)), Ok(&e))), Err(Refusal::NotPending));
    assert_eq!(refusal(admit_review(&lead, None, Ok(&e))), Err(Refusal::NotPending));
    let stranger = caller(LEAD, &[], &[]);
    assert_eq!(refusal(admit_review(&stranger, reviewed(None), Ok(&e))), Err(Refusal::NotAnApprover));
}

#[test]
fn a_requester_never_approves_their_own_activation() {
    // The engineer is an approver too (through the leads group), and still may not.
    let e = [eligible(ENGINEERS, &[LEADS], false, 4)];
    let s = spec("PT1H");
    let requester = caller(ENGINEER, &[ENGINEERS, LEADS], &[]);
    let reviewed = Some(Reviewed { spec: &s, requester: Some(requester.clone()), phase: None });
    assert_eq!(admit_review(&requester, reviewed, Ok(&e)).map_err(|r| r.refusal), Err(Refusal::SelfApproval));
}

// --- the lifecycle ----------------------------------------------------------------------------

struct Case {
    spec: RoleActivationSpec,
    requester: Option<Caller>,
    reviews: Vec<ReviewInput>,
    previous: RoleActivationStatus,
    eligible: Vec<Eligible>,
    clock: Clock,
    created: Timestamp,
    uid: Option<String>,
}

impl Case {
    fn new(approvers: &[&str]) -> Case {
        Case {
            spec: spec("PT2H"),
            requester: Some(caller(ENGINEER, &[ENGINEERS], &[])),
            reviews: vec![],
            previous: RoleActivationStatus::default(),
            eligible: vec![eligible(ENGINEERS, approvers, false, 4)],
            clock: Clock::default(),
            created: at(0),
            uid: None,
        }
    }

    fn at(&self, now: Timestamp) -> PhaseDecision {
        phase(&PhaseInputs {
            spec: &self.spec,
            requester: self.requester.as_ref(),
            reviews: &self.reviews,
            created: self.created,
            previous: &self.previous,
            eligibility: Ok(&self.eligible),
            clock: self.clock,
            uid: self.uid.as_deref(),
            now,
        })
    }

    /// Records `d` as the status, as the controller would.
    fn record(&mut self, d: &PhaseDecision) {
        self.previous.phase = Some(d.phase);
        self.previous.active_from = d.active_from.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
        self.previous.expires_at = d.expires_at.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
        self.previous.reviews = d.reviews.clone();
        self.previous.conditions = vec![Condition {
            type_: "Ready".into(),
            status: ConditionStatus::False,
            reason: d.reason.into(),
            message: d.message.clone(),
            observed_generation: None,
            last_transition_time: None,
        }];
    }
}

fn review(who: &str, groups: &[&str], decision: Decision, second: i64) -> ReviewInput {
    ReviewInput {
        name: format!("review-{second}"),
        reviewer: Some(caller(who, groups, &[])),
        decision,
        reason: "checked".into(),
        time: Some(at(second)),
        activation_uid: None,
    }
}

#[test]
fn without_approvers_an_activation_is_active_at_once_until_it_expires() {
    let mut c = Case::new(&[]);
    let d = c.at(at(1));
    assert_eq!(d.phase, ActivationPhase::Active);
    assert_eq!(d.active_from, Some(at(1)));
    assert_eq!(d.expires_at, Some(at(1 + 7200)));
    assert_eq!(d.recheck_in, Some(SignedDuration::from_secs(7200)), "requeued exactly at expiresAt");
    c.record(&d);
    let later = c.at(at(3600));
    assert_eq!((later.phase, later.expires_at), (ActivationPhase::Active, Some(at(7201))), "expiry does not move");
    let expired = c.at(at(7201 + 3));
    assert_eq!(expired.phase, ActivationPhase::Expired);
    assert_eq!(expired.overdue, Some(SignedDuration::from_secs(3)));
    c.record(&expired);
    assert_eq!(c.at(at(99_999)).phase, ActivationPhase::Expired, "final phases stay");
}

#[test]
fn with_approvers_it_waits_for_the_first_listed_approver() {
    let mut c = Case::new(&[LEADS]);
    let d = c.at(at(10));
    assert_eq!(d.phase, ActivationPhase::Pending);
    assert_eq!(d.recheck_in, Some(SignedDuration::from_hours(24) - SignedDuration::from_secs(10)));
    c.record(&d);
    // A review by someone who is not an approver, and one by the requester, count for nothing.
    c.reviews = vec![
        review("00000000-0000-0000-0000-0000000000aa", &[], Decision::Approve, 20),
        review(ENGINEER, &[ENGINEERS, LEADS], Decision::Approve, 21),
    ];
    assert_eq!(c.at(at(30)).phase, ActivationPhase::Pending);
    c.reviews.push(review(LEAD, &[LEADS], Decision::Approve, 40));
    let d = c.at(at(41));
    assert_eq!(d.phase, ActivationPhase::Active);
    assert_eq!(d.active_from, Some(at(41)));
    assert_eq!(d.reviews.len(), 1, "{:?}", d.reviews);
    c.record(&d);
    c.reviews.clear();
    assert_eq!(c.at(at(50)).reviews.len(), 1, "a deleted review stays on the record");
    assert_eq!(
        d.reviews[0],
        ReviewRecord {
            reviewer: name(LEAD),
            decision: Decision::Approve,
            reason: "checked".into(),
            time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(40))),
            name: "review-40".into(),
        }
    );
}

#[test]
fn the_first_listed_decision_wins() {
    let mut c = Case::new(&[LEADS]);
    c.reviews = vec![review(LEAD, &[LEADS], Decision::Approve, 50), review(LEAD, &[LEADS], Decision::Deny, 40)];
    let d = c.at(at(60));
    assert_eq!(d.phase, ActivationPhase::Denied);
    assert!(d.message.contains("denied by"), "{}", d.message);
}

#[test]
fn a_review_counts_only_for_the_activation_it_was_given_to() {
    // An ActivationReview names its activation by name only. One given to an earlier
    // activation of the same name (deleted since) must neither approve nor deny a new one.
    let mut c = Case::new(&[LEADS]);
    c.created = at(100);
    c.reviews = vec![review(LEAD, &[LEADS], Decision::Approve, 40)];
    let d = c.at(at(101));
    assert_eq!((d.phase, d.reviews.len()), (ActivationPhase::Pending, 0), "{d:?}");
    c.reviews = vec![review(LEAD, &[LEADS], Decision::Deny, 40)];
    assert_eq!(c.at(at(101)).phase, ActivationPhase::Pending);
    // One given to this activation counts, even in the second it was created.
    c.reviews.push(review(LEAD, &[LEADS], Decision::Approve, 100));
    assert_eq!(c.at(at(101)).phase, ActivationPhase::Active);
}

#[test]
fn a_review_stamped_with_another_activations_uid_never_counts_even_in_the_same_second() {
    // Deleted and created again within the second of the approval: the time cannot tell them
    // apart, the UID stamped at admission can.
    let mut c = Case::new(&[LEADS]);
    c.created = at(100);
    c.uid = Some("uid-of-the-new-one".into());
    let mut stale = review(LEAD, &[LEADS], Decision::Approve, 100);
    stale.activation_uid = Some("uid-of-the-deleted-one".into());
    c.reviews = vec![stale];
    assert_eq!(c.at(at(101)).phase, ActivationPhase::Pending, "a stale approval approved a new activation");
    let mut given = review(LEAD, &[LEADS], Decision::Approve, 100);
    given.activation_uid = Some("uid-of-the-new-one".into());
    c.reviews.push(given);
    assert_eq!(c.at(at(101)).phase, ActivationPhase::Active);
}

#[test]
fn the_reviewed_uid_stamp_follows_the_reviewer_stamp() {
    let c = caller(LEAD, &[LEADS], &[]);
    for has_annotations in [false, true] {
        let mut ops = stamp_patch(keys::REVIEWER, &c, has_annotations).as_array().cloned().expect("ops");
        ops.push(reviewed_uid_patch("0a0a-uid"));
        let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops)).expect("patch");
        let mut review = serde_json::json!({"metadata": {"name": "r"}});
        if has_annotations {
            review["metadata"]["annotations"] = serde_json::json!({"note": "kept"});
        }
        json_patch::patch(&mut review, &patch).expect("applies");
        assert_eq!(review["metadata"]["annotations"][keys::REVIEWED_UID], "0a0a-uid");
        assert!(review["metadata"]["annotations"][keys::REVIEWER].is_string());
    }
}

#[test]
fn a_pending_activation_times_out() {
    let c = Case::new(&[LEADS]);
    assert_eq!(c.at(at(24 * 3600 - 1)).phase, ActivationPhase::Pending);
    assert_eq!(c.at(at(24 * 3600)).phase, ActivationPhase::TimedOut);
}

#[test]
fn the_test_clock_scales_durations_but_not_the_policy() {
    let mut c = Case::new(&[]);
    c.clock = Clock { scale: 3600, ..Clock::default() };
    let d = c.at(at(0));
    assert_eq!(d.expires_at, Some(at(2)), "PT2H at 3600x lasts two seconds");
    c.spec = spec("PT5H");
    assert_eq!(c.at(at(0)).phase, ActivationPhase::Denied, "the policy maximum (PT4H) still applies as written");
    let mut pending = Case::new(&[LEADS]);
    pending.clock = Clock { scale: 3600, ..Clock::default() };
    assert_eq!(pending.at(at(24)).phase, ActivationPhase::TimedOut);
}

#[test]
fn losing_eligibility_revokes_an_active_activation_and_denies_a_pending_one() {
    let mut c = Case::new(&[]);
    let d = c.at(at(0));
    c.record(&d);
    c.eligible.clear();
    let d = c.at(at(5));
    assert_eq!((d.phase, d.reason), (ActivationPhase::Revoked, "NotEligible"));
    let mut pending = Case::new(&[LEADS]);
    let d = pending.at(at(0));
    pending.record(&d);
    let gone = phase(&PhaseInputs {
        spec: &pending.spec,
        requester: pending.requester.as_ref(),
        reviews: &[],
        created: at(0),
        previous: &pending.previous,
        eligibility: Err(Refused::new(Refusal::AssignmentNotFound, "assignment deleted")),
        clock: Clock::default(),
        uid: None,
        now: at(1),
    });
    assert_eq!((gone.phase, gone.reason), (ActivationPhase::Denied, "AssignmentNotFound"));
}

#[test]
fn without_a_stamp_nothing_is_granted() {
    let mut c = Case::new(&[]);
    c.requester = None;
    assert_eq!((c.at(at(0)).phase, c.at(at(0)).reason), (ActivationPhase::Denied, "NotStamped"));
}

#[test]
fn deletion_by_the_requester_cancels_and_by_anyone_else_revokes() {
    let requester = caller(ENGINEER, &[], &[]);
    let active = Some(ActivationPhase::Active);
    assert_eq!(phase_on_delete(active, Some(&requester), Some(&name(ENGINEER))), ActivationPhase::Canceled);
    assert_eq!(phase_on_delete(active, Some(&requester), Some("kubernetes-admin")), ActivationPhase::Revoked);
    assert_eq!(phase_on_delete(active, Some(&requester), None), ActivationPhase::Revoked);
    assert_eq!(
        phase_on_delete(Some(ActivationPhase::Pending), Some(&requester), Some(&name(ENGINEER))),
        ActivationPhase::Canceled
    );
    assert_eq!(phase_on_delete(Some(ActivationPhase::Expired), Some(&requester), Some("x")), ActivationPhase::Expired);
}

#[test]
fn a_deletion_is_recorded_from_agreeing_claims_only() {
    let requester = caller(ENGINEER, &[ENGINEERS], &[]);
    let active = Some(ActivationPhase::Active);
    let by = |who: &[&str]| who.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    assert_eq!(deletion_record(active, Some(&requester), &[]), None, "nobody claimed it: nothing to record");
    assert_eq!(
        deletion_record(active, Some(&requester), &by(&[&name(ENGINEER), &name(ENGINEER)])),
        Some((ActivationPhase::Canceled, name(ENGINEER)))
    );
    assert_eq!(
        deletion_record(active, Some(&requester), &by(&["customer-admin"])),
        Some((ActivationPhase::Revoked, "customer-admin".into()))
    );
    // A forger claiming to be the requester while a customer admin revokes: not Canceled.
    let (phase, ended_by) =
        deletion_record(active, Some(&requester), &by(&["customer-admin", &name(ENGINEER)])).expect("recorded");
    assert_eq!(phase, ActivationPhase::Revoked);
    assert!(ended_by.starts_with("unknown"), "{ended_by}");
    assert!(ended_by.contains("customer-admin") && ended_by.contains(&name(ENGINEER)), "{ended_by}");
    let expired = Some(ActivationPhase::Expired);
    assert_eq!(deletion_record(expired, Some(&requester), &by(&["x"])), Some((ActivationPhase::Expired, "x".into())));
}

/// Two replicas, two claims: the API server's delete reached one, a forged review the other.
/// Whichever records first, the other's disagreeing claim turns the record into "unknown",
/// Revoked; an agreeing claim or an "unknown" record changes nothing.
#[test]
fn a_record_another_replica_wrote_is_corrected_by_a_disagreeing_claim() {
    let requester = caller(ENGINEER, &[ENGINEERS], &[]);
    let by = |who: &[&str]| who.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let engineer = name(ENGINEER);
    // The forged claim was recorded first (Canceled by the requester); the admin's arrives.
    let (phase, ended_by) = merged_deletion_record(
        Some(ActivationPhase::Canceled),
        Some(&engineer),
        Some(&requester),
        &by(&["customer-admin"]),
    )
    .expect("corrected");
    assert_eq!(phase, ActivationPhase::Revoked);
    assert!(ended_by.starts_with("unknown") && ended_by.contains("customer-admin") && ended_by.contains(&engineer));
    // The admin's was recorded first; the forged claim arrives: still never Canceled.
    let (phase, ended_by) = merged_deletion_record(
        Some(ActivationPhase::Revoked),
        Some("customer-admin"),
        Some(&requester),
        &by(&[&engineer]),
    )
    .expect("corrected");
    assert_eq!(phase, ActivationPhase::Revoked);
    assert!(ended_by.starts_with("unknown"), "{ended_by}");
    // Agreeing, or already unknown: nothing to write.
    let agreeing = merged_deletion_record(
        Some(ActivationPhase::Revoked),
        Some("customer-admin"),
        Some(&requester),
        &by(&["customer-admin"]),
    );
    assert_eq!(agreeing, None);
    assert_eq!(merged_deletion_record(Some(ActivationPhase::Revoked), Some(&ended_by), None, &by(&["x"])), None);
    // A phase that was final before the deletion stays.
    let (phase, _) = merged_deletion_record(Some(ActivationPhase::Expired), Some("x"), Some(&requester), &by(&["y"]))
        .expect("merged");
    assert_eq!(phase, ActivationPhase::Expired);
    // Nothing recorded yet: as one replica alone.
    assert_eq!(
        merged_deletion_record(Some(ActivationPhase::Active), None, Some(&requester), &by(&["customer-admin"])),
        Some((ActivationPhase::Revoked, "customer-admin".into()))
    );
}

#[test]
fn a_deleted_activation_waits_briefly_for_its_deleter() {
    let deleted = Timestamp::from_second(1_800_000_000).expect("time");
    let active = RoleActivationStatus { phase: Some(ActivationPhase::Active), ..Default::default() };
    assert_eq!(awaiting_deleter(Some(&active), None, deleted), None, "not deleted");
    assert_eq!(awaiting_deleter(Some(&active), Some(deleted), deleted), Some(DELETER_HOLD));
    assert_eq!(
        awaiting_deleter(None, Some(deleted), deleted + SignedDuration::from_secs(1)),
        Some(DELETER_HOLD - SignedDuration::from_secs(1))
    );
    assert_eq!(awaiting_deleter(Some(&active), Some(deleted), deleted + DELETER_HOLD), None, "the hold has passed");
    let recorded = RoleActivationStatus { ended_by: Some("customer-admin".into()), ..active.clone() };
    assert_eq!(awaiting_deleter(Some(&recorded), Some(deleted), deleted), None, "recorded");
    let expired = RoleActivationStatus { phase: Some(ActivationPhase::Expired), ..Default::default() };
    assert_eq!(awaiting_deleter(Some(&expired), Some(deleted), deleted), None, "final before the delete");
}

// --- what is materialized ---------------------------------------------------------------------

fn assignment() -> AssignmentRef {
    AssignmentRef { namespace: "customer-a".into(), name: "contoso".into(), uid: "uid-1".into() }
}

#[test]
fn eligibility_materializes_only_activation_rights() {
    let e = [eligible(ENGINEERS, &[LEADS], false, 4)];
    let d = eligibility_rbac(&assignment(), T, &e, &["customer-a".into(), "customer-a-web".into()]);
    assert_eq!(d.roles.len(), 4);
    assert_eq!(d.bindings.len(), 4);
    let requester = &d.roles[0];
    assert_eq!(requester.rules, Some(requester_rules()));
    let r = &requester_rules()[0];
    assert_eq!(r.api_groups, Some(vec![ACTIVATION_GROUP.to_string()]));
    assert_eq!(r.resources, Some(vec!["roleactivations".to_string()]));
    assert_eq!(r.verbs, ["create"], "reading and ending is per activation, for its requester");
    assert_eq!(d.bindings[0].subjects, Some(e[0].subjects.clone()));
    let approver = &d.roles[1];
    assert_eq!(approver.rules, Some(approver_rules()));
    let a = approver_rules();
    assert_eq!(
        (a[0].resources.clone(), a[0].verbs.clone()),
        (Some(vec!["activationreviews".into()]), vec!["create".to_string()])
    );
    assert_eq!(a.len(), 1, "reading is per activation, for its approvers");
    assert_eq!(d.bindings[1].subjects, Some(e[0].approvers.clone()));
    for rule in requester_rules().iter().chain(approver_rules().iter()) {
        assert!(!rule.resources.iter().flatten().any(|r| r.ends_with("/status")), "never the status");
    }
}

#[test]
fn without_approvers_there_is_no_approver_role() {
    let e = [eligible(ENGINEERS, &[], false, 4)];
    let d = eligibility_rbac(&assignment(), T, &e, &["customer-a".into()]);
    assert_eq!(d.roles.len(), 1);
    assert_eq!(eligibility_rbac(&assignment(), T, &[], &["customer-a".into()]), DesiredRbac::default());
}

fn view<'a>(namespace: &'a str, spec: &'a RoleActivationSpec, status: &'a RoleActivationStatus) -> ActivationView<'a> {
    ActivationView { namespace, name: "fix-4711", uid: "act-uid", spec, status: Some(status), deleting: false }
}

fn active_status(requester: Caller, expires: Timestamp) -> RoleActivationStatus {
    RoleActivationStatus {
        requester: Some(requester),
        phase: Some(ActivationPhase::Active),
        expires_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(expires)),
        ..Default::default()
    }
}

#[test]
fn an_active_activation_binds_the_requesters_own_user_only() {
    let e = [eligible(ENGINEERS, &[], false, 4)];
    let s = spec("PT1H");
    let status = active_status(caller(ENGINEER, &[ENGINEERS], &[]), at(3600));
    let live = in_force_under(
        [view("customer-a-web", &s, &status)],
        &e,
        &["customer-a".into(), "customer-a-web".into()],
        at(1),
    );
    assert_eq!(live.len(), 1);
    let d = activation_rbac(&assignment(), T, &live);
    assert_eq!(d.roles.len(), 1);
    assert_eq!(d.roles[0].metadata.namespace.as_deref(), Some("customer-a-web"), "only where it was activated");
    assert_eq!(d.roles[0].rules, Some(vec![rule()]));
    assert_eq!(d.bindings[0].subjects, Some(vec![user(name(ENGINEER))]), "never the group");
    let labels = d.bindings[0].metadata.labels.clone().expect("labels");
    assert_eq!(labels[keys::ACTIVATION], "fix-4711");
    assert_eq!(labels[keys::ACTIVATION_UID], "act-uid");
    assert_eq!(labels[keys::ASSIGNMENT_UID], "uid-1");
    let annotations = d.bindings[0].metadata.annotations.clone().expect("annotations");
    assert_eq!(annotations[keys::ACTIVATION_EXPIRES_AT], at(3600).to_string());
    for key in labels.keys() {
        assert!(keys::MATERIALIZED_LABELS.contains(&key.as_str()), "{key}");
    }
    for key in annotations.keys() {
        assert!(keys::MATERIALIZED_ANNOTATIONS.contains(&key.as_str()), "{key}");
    }
}

#[test]
fn nothing_is_in_force_when_expired_deleted_out_of_scope_or_no_longer_eligible() {
    let e = [eligible(ENGINEERS, &[], false, 4)];
    let s = spec("PT1H");
    let ns = ["customer-a".to_string()];
    let status = active_status(caller(ENGINEER, &[ENGINEERS], &[]), at(3600));
    assert_eq!(in_force_under([view("customer-a", &s, &status)], &e, &ns, at(3600)), vec![], "expired");
    let mut deleting = view("customer-a", &s, &status);
    deleting.deleting = true;
    assert_eq!(in_force_under([deleting], &e, &ns, at(1)), vec![], "being deleted");
    assert_eq!(in_force_under([view("elsewhere", &s, &status)], &e, &ns, at(1)), vec![], "out of scope");
    assert_eq!(in_force_under([view("customer-a", &s, &status)], &[], &ns, at(1)), vec![], "not eligible");
    let left = active_status(caller(ENGINEER, &[], &[]), at(3600));
    assert_eq!(in_force_under([view("customer-a", &s, &left)], &e, &ns, at(1)), vec![], "left the group");
    let pending = RoleActivationStatus { phase: Some(ActivationPhase::Pending), ..status.clone() };
    assert_eq!(in_force_under([view("customer-a", &s, &pending)], &e, &ns, at(1)), vec![], "pending");
}

#[test]
fn only_the_requester_reads_and_ends_its_activation_and_only_its_approvers_read_it() {
    let e = [eligible(ENGINEERS, &[LEADS], false, 4)];
    let s = spec("PT1H");
    let pending = RoleActivationStatus { phase: Some(ActivationPhase::Pending), ..Default::default() };
    let ns = ["customer-a".to_string()];
    let me = caller(ENGINEER, &[ENGINEERS], &[]);
    let live = readable_under([(view("customer-a", &s, &pending), Some(me.clone()))], &e, &ns);
    assert_eq!(live.len(), 1);
    let d = activation_access_rbac(&assignment(), T, &live);
    assert_eq!(d.roles.len(), 2);
    let own = &d.roles[0];
    assert_eq!(own.rules, Some(own_activation_rules("fix-4711")));
    let rule = &own_activation_rules("fix-4711")[0];
    assert_eq!(rule.resource_names, Some(vec!["fix-4711".to_string()]), "pinned to the activation");
    assert_eq!(rule.verbs, ["get", "list", "watch", "delete"]);
    assert_eq!(d.bindings[0].subjects, Some(vec![user(name(ENGINEER))]), "the requester's own user, never the group");
    let reviewed = &reviewed_activation_rules("fix-4711")[0];
    assert_eq!(d.roles[1].rules, Some(vec![reviewed.clone()]));
    assert_eq!(reviewed.resource_names, Some(vec!["fix-4711".to_string()]));
    assert!(!reviewed.verbs.contains(&"delete".to_string()), "approvers never end it");
    assert_eq!(d.bindings[1].subjects, Some(e[0].approvers.clone()));
    for role in &d.roles {
        let labels = role.metadata.labels.clone().expect("labels");
        assert!(!labels.contains_key(keys::ACTIVATION_UID), "not removed with the access: readable until deleted");
        assert!(!labels.contains_key(keys::ACTIVATION), "not the activation's access");
        assert_eq!(labels[keys::ASSIGNMENT_UID], "uid-1", "pruned with the assignment's objects");
        assert_eq!(role.metadata.namespace.as_deref(), Some("customer-a"));
    }

    // An activation that is over stays readable (why it ended); nothing for one being
    // deleted, unstamped, out of scope, or whose requester is not eligible.
    let denied = RoleActivationStatus { phase: Some(ActivationPhase::Denied), ..Default::default() };
    assert_eq!(readable_under([(view("customer-a", &s, &denied), Some(me.clone()))], &e, &ns).len(), 1);
    let deleting = ActivationView { deleting: true, ..view("customer-a", &s, &pending) };
    assert!(readable_under([(deleting, Some(me.clone()))], &e, &ns).is_empty());
    assert!(readable_under([(view("customer-a", &s, &pending), None)], &e, &ns).is_empty());
    assert!(readable_under([(view("elsewhere", &s, &pending), Some(me))], &e, &ns).is_empty());
    let stranger = caller(LEAD, &[LEADS], &[]);
    assert!(readable_under([(view("customer-a", &s, &pending), Some(stranger))], &e, &ns).is_empty());

    // Without approvers, only the requester's.
    let e = [eligible(ENGINEERS, &[], false, 4)];
    let me = caller(ENGINEER, &[ENGINEERS], &[]);
    let live = readable_under([(view("customer-a", &s, &pending), Some(me))], &e, &ns);
    assert_eq!(activation_access_rbac(&assignment(), T, &live).roles.len(), 1);
}
