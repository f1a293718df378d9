//! Status vocabulary shared by both kinds: Azure's `provisioningState` and Kubernetes conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Azure's provisioning state of a delegation resource.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, strum::IntoStaticStr)]
pub enum ProvisioningState {
    /// Seen, not yet materialized.
    Accepted,
    /// Validated; the access it describes is in force.
    Succeeded,
    /// Rejected by a rule: nothing is granted. The Ready condition says why.
    Failed,
    /// Being removed; access is being revoked.
    Deleting,
}

impl ProvisioningState {
    /// The state's name, as serialized.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Status of a condition, as in `metav1.ConditionStatus`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// A Kubernetes-style condition (`metav1.Condition` without the strict required fields, so
/// that a status written by an older controller still deserializes).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// CamelCase reason: for a rejection, the rule that rejected it.
    pub reason: String,
    /// Human-readable detail: for a rejection, every offending field path and why.
    pub message: String,
    /// The `.metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl Condition {
    /// Same condition apart from the transition time.
    pub fn same_as(&self, other: &Condition) -> bool {
        self.type_ == other.type_
            && self.status == other.status
            && self.reason == other.reason
            && self.message == other.message
            && self.observed_generation == other.observed_generation
    }
}

/// Replaces the condition of the same type, keeping `lastTransitionTime` when the status did
/// not change (the Kubernetes convention `kubectl wait` and dashboards rely on).
pub fn merge_condition(existing: &[Condition], mut new: Condition, now: Time) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing.iter().filter(|c| c.type_ != new.type_).cloned().collect();
    let previous = existing.iter().find(|c| c.type_ == new.type_);
    new.last_transition_time = match previous {
        Some(p) if p.status == new.status => p.last_transition_time.clone().or(Some(now)),
        _ => Some(now),
    };
    out.push(new);
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: ConditionStatus, reason: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status,
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: None,
        }
    }

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).expect("valid"))
    }

    #[test]
    fn transition_time_kept_while_status_is_unchanged() {
        let first = merge_condition(&[], ready(ConditionStatus::True, "Granted"), at(10));
        let second = merge_condition(&first, ready(ConditionStatus::True, "Granted"), at(20));
        assert_eq!(second[0].last_transition_time, Some(at(10)));
        let third = merge_condition(&second, ready(ConditionStatus::False, "RoleNotInCatalog"), at(30));
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].last_transition_time, Some(at(30)));
        assert_eq!(third[0].reason, "RoleNotInCatalog");
    }
}
