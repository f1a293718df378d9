//! Who deleted a RoleActivation, without letting admission act on what a request body says.
//!
//! A finalizer cannot tell who deleted its object; only admission sees the DELETE's
//! `userInfo`. But the admission endpoint cannot tell a review the API server sent from one
//! anybody who reaches the port posted (unless an admission client CA is configured,
//! docs/install.md), nor a delete it allowed from one a later admission step refused. So
//! admission only *remembers* the claimed deleter, in memory, per activation UID
//! ([`DeleterClaims::claim`]); nothing is written then. The replica writes `status.endedBy`
//! and the phase only once its own watch cache shows that activation with a
//! `deletionTimestamp` ([`record`]), with the claims of the last
//! [`activation::DELETER_CLAIM_WINDOW`], resolved by [`activation::merged_deletion_record`]
//! (conflicting claims, on this replica or between this replica's and a record another
//! replica wrote: the deleter is unknown, the phase Revoked). The activation's
//! finalizer waits [`activation::DELETER_HOLD`] for that record (the access goes at once).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::api::RoleActivation;
use crate::model::activation;
use crate::model::keys;

/// Most claims remembered: a flood of forged reviews evicts the oldest, which at worst makes
/// a real deleter unknown (the phase is then Revoked, the conservative outcome).
const MAX_CLAIMS: usize = 4096;

/// One DELETE admission saw.
#[derive(Clone, Debug)]
struct Claim {
    uid: String,
    deleter: String,
    at: Instant,
}

/// The deleters admission saw claimed, per activation UID, for at most
/// [`activation::DELETER_CLAIM_WINDOW`]. Shared by the admission handler (which adds) and the
/// activation watch (which takes).
#[derive(Debug, Default)]
pub struct DeleterClaims {
    claims: Mutex<VecDeque<Claim>>,
}

fn window() -> Duration {
    Duration::try_from(activation::DELETER_CLAIM_WINDOW).unwrap_or(Duration::from_secs(10))
}

impl DeleterClaims {
    fn with<T>(&self, f: impl FnOnce(&mut VecDeque<Claim>) -> T) -> T {
        match self.claims.lock() {
            Ok(mut c) => f(&mut c),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Remembers that a DELETE of activation `uid` by `deleter` was admitted at `now`.
    pub fn claim(&self, uid: &str, deleter: &str, now: Instant) {
        self.with(|claims| {
            claims.retain(|c| now.saturating_duration_since(c.at) <= window());
            if claims.len() >= MAX_CLAIMS {
                claims.pop_front();
            }
            claims.push_back(Claim { uid: uid.to_string(), deleter: deleter.to_string(), at: now });
        });
    }

    /// The deleters claimed for activation `uid` within the window before `now`, forgotten.
    pub fn take(&self, uid: &str, now: Instant) -> Vec<String> {
        self.with(|claims| {
            let mut taken = Vec::new();
            claims.retain(|c| {
                let fresh = now.saturating_duration_since(c.at) <= window();
                if fresh && c.uid == uid {
                    taken.push(c.deleter.clone());
                }
                fresh && c.uid != uid
            });
            taken
        })
    }
}

/// When `seen` (an activation as this replica's watch cache now holds it) is being deleted and
/// admission here saw who claimed to delete it, writes `status.endedBy` and the phase that
/// [`activation::merged_deletion_record`] gives, with the controller's identity, guarded by the
/// `resourceVersion` it read. Every replica does the same with its own claims, so a record
/// another replica wrote first is merged, never trusted blindly: on a conflict the write reads
/// the activation again and merges once more (at most [`RECORD_ATTEMPTS`] times). Spawns the
/// write; a failure is logged, and the activation then ends Revoked by an unknown deleter.
pub fn record(client: &Client, claims: &DeleterClaims, seen: &RoleActivation) {
    if seen.metadata.deletion_timestamp.is_none() {
        return;
    }
    let Some(uid) = seen.metadata.uid.clone() else { return };
    let taken = claims.take(&uid, Instant::now());
    if taken.is_empty() {
        return;
    }
    let namespace = seen.namespace().unwrap_or_default();
    let name = seen.name_any();
    let api: Api<RoleActivation> = Api::namespaced(client.clone(), &namespace);
    let first = seen.clone();
    tokio::spawn(async move {
        let params = PatchParams { field_manager: Some(keys::FIELD_MANAGER.into()), ..Default::default() };
        let mut current = first;
        for _ in 0..RECORD_ATTEMPTS {
            let status = current.status.clone().unwrap_or_default();
            let requester = activation::stamped(current.metadata.annotations.as_ref(), keys::REQUESTER);
            let merged = activation::merged_deletion_record(
                status.phase,
                status.ended_by.as_deref(),
                requester.as_ref(),
                &taken,
            );
            let Some((phase, deleter)) = merged else { return };
            let patch = json!({
                "metadata": {"resourceVersion": current.resource_version()},
                "status": {"phase": phase, "endedBy": deleter},
            });
            match api.patch_status(&name, &params, &Patch::Merge(&patch)).await {
                Ok(_) => {
                    info!(%namespace, %name, %deleter, phase = phase.as_str(), "recorded who deleted the activation");
                    return;
                }
                Err(kube::Error::Api(e)) if e.code == 409 => match api.get_opt(&name).await {
                    Ok(Some(again)) if again.metadata.uid.as_deref() == Some(uid.as_str()) => current = again,
                    Ok(_) => return,
                    Err(e) => {
                        warn!(error = %e, %namespace, %name, "could not read the activation again to record who deleted it");
                        return;
                    }
                },
                Err(e) => {
                    warn!(error = %e, %namespace, %name, "could not record who deleted the activation");
                    return;
                }
            }
        }
        warn!(%namespace, %name, "gave up recording who deleted the activation after repeated conflicts");
    });
}

/// How often [`record`] reads an activation again after a conflicting write.
const RECORD_ATTEMPTS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_taken_once_and_only_for_its_activation() {
        let claims = DeleterClaims::default();
        let t = Instant::now();
        claims.claim("uid-1", "alice", t);
        claims.claim("uid-2", "bob", t);
        claims.claim("uid-1", "mallory", t);
        assert_eq!(claims.take("uid-1", t), ["alice", "mallory"]);
        assert!(claims.take("uid-1", t).is_empty(), "taken once");
        assert_eq!(claims.take("uid-2", t), ["bob"]);
    }

    #[test]
    fn a_claim_older_than_the_window_counts_for_nothing() {
        let claims = DeleterClaims::default();
        let t = Instant::now();
        claims.claim("uid-1", "mallory", t);
        let later = t + window() + Duration::from_millis(1);
        assert!(claims.take("uid-1", later).is_empty());
        claims.claim("uid-1", "alice", later);
        assert_eq!(claims.take("uid-1", later), ["alice"]);
    }

    #[test]
    fn a_flood_evicts_the_oldest_claims_only() {
        let claims = DeleterClaims::default();
        let t = Instant::now();
        claims.claim("real", "alice", t);
        for i in 0..MAX_CLAIMS {
            claims.claim(&format!("forged-{i}"), "mallory", t);
        }
        assert!(claims.take("real", t).is_empty(), "evicted: the deleter is unknown, the phase Revoked");
        assert_eq!(claims.with(|c| c.len()), MAX_CLAIMS);
    }
}
