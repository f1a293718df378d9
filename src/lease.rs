//! Leader election (SPEC §12): several replicas may run; the holder of the
//! `coordination.k8s.io` Lease `kube-lighthouse` in the controller's namespace reconciles and
//! writes, every replica watches (so its caches stay warm) and serves admission. The Lease is
//! kept by `kube-lease-manager`, not by a loop of ours.
//!
//! A dead leader's Lease expires after [`crate::config::Config::lease_duration`] seconds and a
//! follower takes it then: failover within that plus a second. A leader that loses the
//! Lease (it could not renew in time) stops the process, so that nothing is written by two
//! replicas at once; Kubernetes restarts it as a follower.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::{info, warn};

/// The Lease's name (SPEC §12).
pub const LEASE_NAME: &str = "kube-lighthouse";

/// Seconds before expiry at which the leader renews its Lease: at 10 s, a renewal has 3 s to
/// reach the API server before the Lease lapses.
const RENEW_BEFORE_EXPIRY: u64 = 3;

/// Whether this replica leads, as it changes. Without leader election, always true.
pub type Leadership = watch::Receiver<bool>;

/// This replica's part in the election: whether it leads, and the task that keeps (or
/// waits for) the Lease.
pub struct Election {
    /// Whether this replica leads; clone it freely.
    pub leadership: Leadership,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Election {
    /// Joins the election for the Lease in `namespace` as `identity`, holding it `duration`
    /// at a time; or, when `enabled` is false (one replica, or tests), leads at once.
    ///
    /// # Errors
    /// The API server's refusal to read or create the Lease (for example a missing permission).
    pub async fn join(
        client: Client,
        enabled: bool,
        namespace: &str,
        identity: &str,
        duration: Duration,
    ) -> Result<Election, LeaseManagerError> {
        if !enabled {
            let (sender, leadership) = watch::channel(true);
            let task = tokio::spawn(async move {
                // Holds the sender: leadership never changes.
                sender.closed().await;
            });
            return Ok(Election { leadership, stop: None, task: Some(task) });
        }
        let seconds = duration.as_secs().max(RENEW_BEFORE_EXPIRY + 2);
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(seconds)
            .with_grace(RENEW_BEFORE_EXPIRY)
            .build()
            .await?;
        info!(lease = LEASE_NAME, %namespace, %identity, seconds, "joined the leader election");
        let (sender, leadership) = watch::channel(false);
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        // The library's "partially manual" way (`LeaseManager::changed`), so that a graceful
        // stop releases the Lease and the next replica leads at once.
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    changed = manager.changed() => match changed {
                        Ok(leads) => {
                            info!(leads, "leadership changed");
                            let _ = sender.send(leads);
                        }
                        Err(e) => {
                            warn!(error = %e, "leader election failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                }
            }
            if let Err(e) = manager.release().await {
                warn!(error = %e, "could not release the Lease; it expires by itself");
            }
        });
        Ok(Election { leadership, stop: Some(stop), task: Some(task) })
    }

    /// Leaves the election, releasing the Lease if held, within a second or two.
    pub async fn leave(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}
/// Resolves once this replica leads.
pub async fn acquired(leadership: &mut Leadership) {
    // An error means the election task ended: treated as "never leads".
    if leadership.wait_for(|leads| *leads).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves once this replica, leading, lost the Lease (or the election ended).
pub async fn lost(leadership: &mut Leadership) {
    let _ = leadership.wait_for(|leads| !*leads).await;
}
