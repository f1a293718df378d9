//! The admission webhook, as the API server calls it: `kubectl apply` of a bad delegation
//! fails with the rule and the field; only an owner of the scope may delegate; User Access
//! Administrator binds its delegated roles to ServiceAccounts only; and what bypassed the
//! webhook is still caught by the reconciler.
//!
//! The real binary serves the webhook over TLS on 127.0.0.1; a ValidatingWebhookConfiguration
//! points the API server at it for the duration of the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::webhook::{certificates, register, Controller};
use common::*;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, PostParams};
use kube_lighthouse::model::desired::{assignable_name, AssignmentRef};
use serde_json::json;

const ENGINEERS: &str = "00000000-0000-0000-0000-0000000000a1";
const UAA: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";

/// `kubectl apply -f` as `user`: (success, stderr).
fn apply_as(kubeconfig: &Path, file: &Path, user: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig).args(["apply", "-f"]).arg(file);
    if let Some(u) = user {
        cmd.args(["--as", u]);
    }
    let out = cmd.output().expect("kubectl");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

fn header(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(&format!("# {key}:")).map(|v| v.trim().to_string()))
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn the_webhook_refuses_bad_delegations_and_escalation() {
    let path = kubeconfig();
    let client = client_for(&path).await;
    let dir = std::env::temp_dir().join(unique("webhook"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (ca, cert, key) = certificates(&dir);
    let port = free_port();
    let registration_name = unique("kube-lighthouse-test");
    let log = std::fs::File::create(dir.join("controller.log")).expect("log");
    let _controller = Controller(
        Command::new(env!("CARGO_BIN_EXE_kube-lighthouse"))
            .args(["--webhook-port", &port.to_string(), "--metrics-port", "0", "--health-port", "0"])
            .arg("--webhook-cert")
            .arg(&cert)
            .arg("--webhook-key")
            .arg(&key)
            .env("KUBECONFIG", &path)
            .env("KUBE_LIGHTHOUSE_LEADER_ELECTION", "false")
            .env("KUBE_LIGHTHOUSE_WEBHOOK_CONFIGURATION", &registration_name)
            .stdout(Stdio::from(log.try_clone().expect("dup")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start"),
    );
    let _registration = register(&path, &registration_name, port, &ca);

    // 1. Every rejected example fails at `kubectl apply`, naming its rule and field.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rejected");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("examples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let (rule, field) = (header(&text, "expect").expect("expect"), header(&text, "field").expect("field"));
        // Start clean: an identical object left by another suite would be a no-op apply.
        let _ = Command::new("kubectl")
            .env("KUBECONFIG", &path)
            .args(["delete", "--ignore-not-found", "--wait", "-f"])
            .arg(file)
            .args(["--selector", "!kubernetes.io/metadata.name"])
            .output();
        for kind in ["registrationassignments", "registrationdefinitions"] {
            let _ = Command::new("kubectl")
                .env("KUBECONFIG", &path)
                .args(["delete", kind, "--all", "--wait", "-A", "--field-selector", "metadata.name=contoso-msp"])
                .output();
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let (ok, stderr) = apply_as(&path, file, None);
            if !ok && stderr.contains("denied the request") && stderr.contains(&rule) && stderr.contains(&field) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: not refused for {rule} at {field}: {stderr}",
                file.display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    // 2. Only an owner of the scope may delegate.
    let ns = unique("owned");
    subscription(&client, &ns, &tenant_id()).await;
    let writer_rules = json!([{"apiGroups": ["managedservices.kubelighthouse.io"],
        "resources": ["registrationdefinitions", "registrationassignments"], "verbs": ["create", "update", "patch", "get", "list", "watch", "delete"]}]);
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), &ns);
    apply_json(
        &roles,
        "delegation-writer",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "delegation-writer", "namespace": ns}, "rules": writer_rules}),
    )
    .await;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    for (name, role_kind, role, user) in [
        ("alice-admin", "ClusterRole", "admin", "alice"),
        ("alice-writer", "Role", "delegation-writer", "alice"),
        ("bob-edit", "ClusterRole", "edit", "bob"),
        ("bob-writer", "Role", "delegation-writer", "bob"),
    ] {
        apply_json(
            &bindings,
            name,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
        )
        .await;
    }
    let delegation = dir.join("delegation.yaml");
    std::fs::write(
        &delegation,
        format!(
            r#"apiVersion: managedservices.kubelighthouse.io/v1alpha1
kind: RegistrationDefinition
metadata: {{name: contoso, namespace: {ns}}}
spec:
  registrationDefinitionName: Contoso
  managedByTenantId: {MSP_TENANT}
  authorizations:
  - {{principalId: {ENGINEERS}, principalType: Group, roleDefinitionId: {READER}}}
"#
        ),
    )
    .expect("write");
    let (ok, stderr) = apply_as(&path, &delegation, Some("bob"));
    assert!(!ok && stderr.contains("bob may not create rolebindings"), "an editor delegated: {stderr}");
    let (ok, stderr) = apply_as(&path, &delegation, Some("alice"));
    assert!(ok, "the namespace admin could not delegate: {stderr}");
    // A managing-tenant identity can never create a delegation.
    let delegate = projected(MSP_TENANT, ENGINEERS);
    expect_access(
        &client,
        "x",
        &[&delegate],
        access("create", "registrationdefinitions.managedservices.kubelighthouse.io", &ns),
        false,
    )
    .await;

    // 3. User Access Administrator binds its delegated roles to ServiceAccounts only.
    let sub = unique("uaa");
    subscription(&client, &sub, &tenant_id()).await;
    definition(
        &client,
        &sub,
        "contoso",
        MSP_TENANT,
        vec![json!({"principalId": ENGINEERS, "principalType": "Group",
        "roleDefinitionId": UAA, "delegatedRoleDefinitionIds": [READER]})],
    )
    .await;
    assignment(&client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;
    let assignable = assignable_name(
        &AssignmentRef { namespace: sub.clone(), name: "contoso".into(), uid: String::new() },
        "kubelighthouse:reader",
    );
    let uaa_client = client_as("engineer@contoso", &[&delegate]).await;
    let as_uaa: Api<RoleBinding> = Api::namespaced(uaa_client, &sub);
    let binding = |name: &str, role: &str, subject: serde_json::Value| -> RoleBinding {
        serde_json::from_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": sub},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [subject]}))
        .expect("binding")
    };
    let sa = json!({"kind": "ServiceAccount", "name": "default", "namespace": sub});
    let user = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"});
    let group = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "everyone"});
    eventually("the UAA holder may bind the delegated role to a ServiceAccount", || {
        let b = binding("managed-identity", &assignable, sa.clone());
        let api = as_uaa.clone();
        async move { api.create(&PostParams::default(), &b).await.is_ok() }
    })
    .await;
    expect_access(&client, &format!("system:serviceaccount:{sub}:default"), &[], access("list", "pods", &sub), true)
        .await;
    for (name, subject) in [("to-user", user), ("to-group", group)] {
        match as_uaa.create(&PostParams::default(), &binding(name, &assignable, subject)).await {
            Err(kube::Error::Api(s)) => assert!(s.message.contains("ServiceAccounts"), "{s:?}"),
            other => panic!("UAA bound a delegated role to a person: {other:?}"),
        }
    }
    let uaa_role =
        roles_of(&client, &sub).await.into_iter().find(|r| r.contains("user-access-administrator")).expect("uaa role");
    assert!(
        as_uaa.create(&PostParams::default(), &binding("other-role", &uaa_role, sa.clone())).await.is_err(),
        "UAA bound a role that is not delegated to it"
    );

    // 4. With the webhook gone, User Access Administrator is withdrawn (docs/roles.md): its
    // holder may no longer create RoleBindings, and the assignment says why.
    drop(_registration);
    expect_access(
        &client,
        "engineer@contoso",
        &[&delegate],
        access("create", "rolebindings.rbac.authorization.k8s.io", &sub),
        false,
    )
    .await;
    eventually("the assignment says User Access Administrator is withheld", || async {
        assignment_status(&client, &sub, "contoso").await.is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.reason == "UserAccessAdministratorWithheld"
                    && c.message.contains(&format!("{registration_name} does not exist"))
            })
        })
    })
    .await;
    // A bad definition is admitted but the reconciler grants nothing.
    let loose = unique("loose");
    subscription(&client, &loose, &tenant_id()).await;
    eventually("a bad definition is admitted without the webhook", || async {
        let defs: Api<kube_lighthouse::api::RegistrationDefinition> = Api::namespaced(client.clone(), &loose);
        let body = json!({"apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationDefinition",
            "metadata": {"name": "owner", "namespace": loose},
            "spec": {"registrationDefinitionName": "x", "managedByTenantId": MSP_TENANT, "authorizations": [
                {"principalId": ENGINEERS, "roleDefinitionId": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"}]}});
        defs.patch("owner", &kube::api::PatchParams::apply("test").force(), &kube::api::Patch::Apply(body))
            .await
            .is_ok()
    })
    .await;
    assignment(&client, &loose, "owner", "owner").await;
    let status = wait_for_assignment_state(&client, &loose, "owner", "Failed").await;
    assert!(status.conditions.iter().any(|c| c.message.contains("OwnerRole")), "{status:?}");
    assert_eq!(managed_objects(&client, &loose).await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
