//! Restarts, with the real binary: a restart with nothing changed makes zero writes, and an
//! assignment deleted while the controller is down is revoked once it is back.
//!
//! The controller runs as a subprocess whose kubeconfig impersonates a dedicated user, so the
//! API server's audit log attributes every request it makes. Needs the local control plane
//! (for the audit log); elsewhere the write count is not checked.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use kube::api::Api;
use kube_lighthouse::api::RegistrationAssignment;

const UNDER_TEST: &str = "kube-lighthouse-under-test";
const ENGINEERS: &str = "00000000-0000-0000-0000-0000000000a1";

/// Requests the controller made since `since`: (verb, URI) from the audit log.
fn requests_since(audit: &Path, since: jiff::Timestamp) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete" && e["impersonatedUser"]["username"] == UNDER_TEST)
        .filter(|e| {
            e["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| t >= since)
        })
        .map(|e| {
            (
                e["verb"].as_str().unwrap_or_default().to_string(),
                e["requestURI"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn is_write(verb: &str) -> bool {
    matches!(verb, "create" | "update" | "patch" | "delete" | "deletecollection")
}

/// Waits until the controller has made no write for `quiet`.
async fn settle(audit: &Path, started: jiff::Timestamp, quiet: Duration) {
    let quiet_span = jiff::SignedDuration::try_from(quiet).expect("duration");
    eventually("the controller settles", || async {
        let now = jiff::Timestamp::now();
        let since = now.checked_sub(quiet_span).expect("time");
        since >= started && !requests_since(audit, since).iter().any(|(verb, _)| is_write(verb))
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn restarts_make_no_writes_and_catch_up_on_deletions() {
    let path = kubeconfig();
    let client = client_for(&path).await;
    let state = local_state_dir();
    let workdir = std::env::temp_dir().join(unique("restart"));
    std::fs::create_dir_all(&workdir).expect("workdir");
    let controller_config = impersonating_kubeconfig(&path, &workdir, UNDER_TEST);
    let log = |n: u8| workdir.join(format!("controller-{n}.log"));

    let (sub, rg) = (unique("sub"), unique("rg"));
    subscription(&client, &sub, &tenant_id()).await;
    resource_group(&client, &rg, &sub).await;
    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    assignment(&client, &sub, "contoso", "contoso").await;
    let engineers = projected(MSP_TENANT, ENGINEERS);

    let first_start = jiff::Timestamp::now();
    let first = ControllerProcess::start(&controller_config, &log(1), &[]);
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;
    expect_access(&client, "x", &[&engineers], access("list", "pods", &rg), true).await;
    if let Some(state) = &state {
        settle(&state.join("logs/audit.log"), first_start, Duration::from_secs(3)).await;
    }
    first.crash();

    // A restart with nothing changed: it lists and watches everything, and writes nothing.
    let second_start = jiff::Timestamp::now();
    let second = ControllerProcess::start(&controller_config, &log(2), &[]);
    tokio::time::sleep(Duration::from_secs(8)).await;
    if let Some(state) = &state {
        let requests = requests_since(&state.join("logs/audit.log"), second_start);
        assert!(
            requests.iter().any(|(verb, uri)| verb == "list" && uri.contains("registrationassignments")),
            "the restarted controller never listed assignments: {requests:?}"
        );
        // Writes about this test's delegation. (Other objects may legitimately change while the
        // window is open when other suites share the cluster; they are reported, not judged.)
        let (ours, others): (Vec<_>, Vec<_>) =
            requests.iter().filter(|(verb, _)| is_write(verb)).partition(|(_, uri)| {
                uri.contains(&format!("/{sub}/"))
                    || uri.contains(&format!("/{rg}/"))
                    || uri.ends_with(&format!("/{sub}"))
                    || uri.ends_with(&format!("/{rg}"))
            });
        if !others.is_empty() {
            eprintln!("writes about other objects during the window: {others:?}");
        }
        assert!(ours.is_empty(), "a restart with nothing changed wrote: {ours:?}");
    } else {
        eprintln!("no audit log (not the local control plane): write count not checked");
    }
    second.crash();

    // Deleted while the controller is down: the finalizer holds the assignment, and access
    // stays until the controller is back...
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), &sub);
    delete(&assignments, "contoso").await;
    let held = assignments.get_opt("contoso").await.expect("get");
    assert!(held.is_some_and(|a| a.metadata.deletion_timestamp.is_some()), "the finalizer must hold the assignment");
    // ...which then revokes it everywhere and releases the assignment.
    let _third = ControllerProcess::start(&controller_config, &log(3), &[]);
    for ns in [&sub, &rg] {
        expect_access(&client, "x", &[&engineers], access("list", "pods", ns), false).await;
    }
    eventually("the assignment is released", || async { assignments.get_opt("contoso").await.expect("get").is_none() })
        .await;
    let _ = std::fs::remove_dir_all(&workdir);
}
