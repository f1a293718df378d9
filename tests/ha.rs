//! High availability (SPEC §12): two replicas of the real binary elect a leader on the Lease
//! `kube-lighthouse`; only the leader writes; when it is killed with SIGKILL the other takes
//! over and reconciles what happened meanwhile, and access that should stay never goes.
//! The failover time is printed (docs/reliability.md); it is measured, not asserted tightly.

mod common;

use std::time::Instant;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_lighthouse::api::RegistrationAssignment;

/// The holder of the Lease in `namespace`, if any.
async fn holder(client: &kube::Client, namespace: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases.get_opt("kube-lighthouse").await.ok().flatten().and_then(|l| l.spec).and_then(|s| s.holder_identity)
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_killed_leader_is_replaced_and_what_happened_meanwhile_is_reconciled() {
    let path = kubeconfig();
    // No in-process controller here (`cluster()` would start one without a Lease).
    let admin = client_for(&path).await;
    let lease_namespace = unique("ha-lease");
    plain_namespace(&admin, &lease_namespace).await;
    let workdir = std::env::temp_dir().join(unique("ha"));
    std::fs::create_dir_all(&workdir).expect("workdir");
    let replica = |name: &'static str| {
        ControllerProcess::start(
            &path,
            &workdir.join(format!("{name}.log")),
            &[
                ("POD_NAME", name),
                ("POD_NAMESPACE", lease_namespace.as_str()),
                ("KUBE_LIGHTHOUSE_LEADER_ELECTION", "true"),
                ("KUBE_LIGHTHOUSE_LEASE_DURATION", "10"),
            ],
        )
    };
    let mut replicas = vec![Some(replica("replica-a")), Some(replica("replica-b"))];
    let leader =
        poll("a replica holds the Lease", || holder(&admin, &lease_namespace), Option::is_some).await.expect("holder");
    let (leader_index, follower) = if leader == "replica-a" { (0, "replica-b") } else { (1, "replica-a") };

    // Both replicas run; the leader grants.
    let tenant = tenant_id();
    let sub = unique("ha-sub");
    subscription(&admin, &sub, &tenant).await;
    let principal = "00000000-0000-0000-0000-00000000a11a";
    let user = projected(MSP_TENANT, principal);
    definition(&admin, &sub, "offer", MSP_TENANT, vec![authorization(principal, "User", READER)]).await;
    assignment(&admin, &sub, "before", "offer").await;
    expect_access(&admin, &user, &[], access("list", "pods", &sub), true).await;

    // SIGKILL the leader: its Lease is not released, and must expire.
    let killed = Instant::now();
    replicas[leader_index].take().expect("leader").crash();
    // What happens meanwhile: a new delegation in another namespace, and the first revoked.
    let sub2 = unique("ha-sub2");
    subscription(&admin, &sub2, &tenant).await;
    definition(&admin, &sub2, "offer", MSP_TENANT, vec![authorization(principal, "User", READER)]).await;
    assignment(&admin, &sub2, "during", "offer").await;
    // Access that should stay stays while no one leads.
    assert!(
        allowed(&admin, &user, &[], &access("list", "pods", &sub)).await,
        "access in force must not go while the leader is replaced"
    );
    expect_access(&admin, &user, &[], access("list", "pods", &sub2), true).await;
    let failover = killed.elapsed();
    eprintln!(
        "failover: the follower granted a delegation made after the leader's SIGKILL {:.1} s later",
        failover.as_secs_f64()
    );
    assert_eq!(holder(&admin, &lease_namespace).await.as_deref(), Some(follower), "the follower leads");

    delete(&Api::<RegistrationAssignment>::namespaced(admin.clone(), &sub), "before").await;
    expect_access(&admin, &user, &[], access("list", "pods", &sub), false).await;
    assert_eq!(managed_objects(&admin, &sub).await, 0, "the new leader revoked everything");

    // A graceful stop releases the Lease: the next replica would lead at once.
    let stopped = Instant::now();
    replicas.into_iter().flatten().for_each(ControllerProcess::stop);
    let released = holder(&admin, &lease_namespace).await;
    assert!(released.as_deref().is_none_or(str::is_empty), "the Lease is released on SIGTERM: {released:?}");
    eprintln!("graceful stop and release: {:.1} s", stopped.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&workdir);
}
