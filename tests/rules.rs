//! SPEC §3 and §4 against a real API server: every delegation of `examples/rejected/` is
//! refused for the rule it declares and grants nothing; a catalog role that changes after
//! onboarding narrows existing delegations, is judged afresh for new ones, and is revoked
//! when it leaves the catalog (seed 002).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use kube_lighthouse::api::{
    Condition, ConditionStatus, RegistrationAssignment, RegistrationAssignmentStatus, RegistrationDefinition,
    RegistrationDefinitionStatus,
};
use serde_json::{json, Value};

const OPS: &str = "00000000-0000-0000-0000-0000000000d4";
const MANAGED: &str = "app.kubernetes.io/managed-by=kube-lighthouse";

// --- helpers ---------------------------------------------------------------------------------

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn has_condition(conditions: &[Condition], type_: &str, status: ConditionStatus, reason: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == status && c.reason == reason)
}

fn state_is(state: Option<&kube_lighthouse::api::ProvisioningState>, expected: &str) -> bool {
    state.is_some_and(|s| s.as_str() == expected)
}

async fn definition_status(client: &Client, namespace: &str, name: &str) -> Option<RegistrationDefinitionStatus> {
    let api: Api<RegistrationDefinition> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name).await.expect("get definition").and_then(|d| d.status)
}

/// Waits until the definition's status satisfies `done`.
async fn definition_until(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    done: impl Fn(&RegistrationDefinitionStatus) -> bool,
) -> RegistrationDefinitionStatus {
    let what = format!("definition {namespace}/{name} {what}");
    poll(&what, || definition_status(client, namespace, name), |s| s.as_ref().is_some_and(&done)).await.expect("status")
}

/// Waits until the assignment's status satisfies `done`.
async fn assignment_until(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    done: impl Fn(&RegistrationAssignmentStatus) -> bool,
) -> RegistrationAssignmentStatus {
    let what = format!("assignment {namespace}/{name} {what}");
    poll(&what, || assignment_status(client, namespace, name), |s| s.as_ref().is_some_and(&done)).await.expect("status")
}

async fn wait_for_warning(client: &Client, namespace: &str, uid: &str, reason: &str, what: &str) {
    // By UID, so that Events of an earlier object of the same name do not count.
    let warnings = || warnings_about(client, namespace, |r| r.uid.as_deref() == Some(uid));
    poll(what, warnings, |events| events.iter().any(|(r, _)| r == reason)).await;
}

/// The Roles the controller materialized in `namespace`.
async fn managed_roles(client: &Client, namespace: &str) -> Vec<Role> {
    let api: Api<Role> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default().labels(MANAGED)).await.expect("list roles").items
}

/// Whether any rule reaches core `secrets` (by name or by wildcard).
fn reaches_secrets(rules: &[PolicyRule]) -> bool {
    rules.iter().any(|r| {
        let core = r.api_groups.as_deref().unwrap_or_default().iter().any(|g| g.is_empty() || g == "*");
        let secrets = r.resources.as_deref().unwrap_or_default().iter().any(|x| x == "secrets" || x == "*");
        core && secrets
    })
}

// --- examples/rejected/ ------------------------------------------------------------------------

/// One file of `examples/rejected/` and what its header says must happen.
#[derive(Debug)]
struct Example {
    path: PathBuf,
    file: String,
    /// `# expect:` the definition's Ready reason.
    rule: String,
    /// `# field:` the field path the message names.
    field: String,
    /// `# message:` further text the message contains.
    messages: Vec<String>,
    namespaces: Vec<String>,
    /// (namespace, name)
    definition: (String, String),
    assignment: (String, String),
    managed_by: String,
    authorizations: Vec<Value>,
}

fn rejected_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rejected")
}

fn metadata(doc: &Value, key: &str) -> String {
    doc["metadata"][key].as_str().unwrap_or_default().to_string()
}

fn parse_example(path: &Path) -> Example {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let header = |key: &str| -> Vec<String> {
        let prefix = format!("# {key}:");
        text.lines().filter_map(|l| l.trim().strip_prefix(&prefix)).map(|v| v.trim().to_string()).collect()
    };
    let single = |key: &str| -> String {
        let values = header(key);
        assert_eq!(values.len(), 1, "{file}: exactly one `# {key}:` line expected, found {values:?}");
        assert!(!values[0].is_empty(), "{file}: `# {key}:` is empty");
        values[0].clone()
    };
    let (rule, field, messages) = (single("expect"), single("field"), header("message"));

    let mut namespaces = Vec::new();
    let (mut definition, mut assignment, mut managed_by, mut authorizations) = (None, None, String::new(), vec![]);
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let yaml: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
        let doc: Value = serde_json::to_value(yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
        match doc["kind"].as_str() {
            Some("Namespace") => namespaces.push(metadata(&doc, "name")),
            Some("RegistrationDefinition") => {
                assert!(definition.is_none(), "{file}: one RegistrationDefinition per file");
                definition = Some((metadata(&doc, "namespace"), metadata(&doc, "name")));
                managed_by = doc["spec"]["managedByTenantId"].as_str().unwrap_or_default().to_string();
                authorizations = doc["spec"]["authorizations"].as_array().cloned().unwrap_or_default();
            }
            Some("RegistrationAssignment") => {
                assert!(assignment.is_none(), "{file}: one RegistrationAssignment per file");
                assignment = Some((metadata(&doc, "namespace"), metadata(&doc, "name")));
            }
            None if doc.is_null() => {}
            other => panic!("{file}: unexpected document kind {other:?}"),
        }
    }
    let definition = definition.unwrap_or_else(|| panic!("{file}: no RegistrationDefinition"));
    let assignment = assignment.unwrap_or_else(|| panic!("{file}: no RegistrationAssignment"));
    assert!(namespaces.contains(&definition.0), "{file}: the file creates the definition's subscription namespace");
    Example {
        path: path.to_path_buf(),
        file,
        rule,
        field,
        messages,
        namespaces,
        definition,
        assignment,
        managed_by,
        authorizations,
    }
}

/// Every `*.yaml` of `examples/rejected/`, sorted by name.
fn rejected_examples() -> Vec<Example> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(rejected_dir())
        .expect("examples/rejected")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| parse_example(p)).collect()
}

#[test]
fn every_rejected_example_declares_its_rule_and_owns_its_namespaces() {
    let examples = rejected_examples();
    assert!(examples.len() >= 10, "examples/rejected/ holds {} files", examples.len());
    let readme = std::fs::read_to_string(rejected_dir().join("README.md")).expect("examples/rejected/README.md");
    let mut owners = std::collections::BTreeMap::new();
    for e in &examples {
        assert!(readme.contains(&format!("({})", e.file)), "README.md does not list {}", e.file);
        assert!(readme.contains(&format!("`{}`", e.rule)), "README.md does not name rule {} of {}", e.rule, e.file);
        for ns in &e.namespaces {
            if let Some(other) = owners.insert(ns.clone(), e.file.clone()) {
                panic!("namespace {ns} is used by both {other} and {}: each file needs its own", e.file);
            }
        }
    }
}

async fn kubectl_apply(path: &Path, file: &str) {
    let kubeconfig = kubeconfig();
    let out = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["apply", "-f"])
        .arg(path)
        .output()
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "{file}: kubectl apply failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The identities an authorization would have granted access to, as (user, groups).
fn identities(managed_by: &str, authorization: &Value) -> Vec<(String, Vec<String>)> {
    let principal = authorization["principalId"].as_str().unwrap_or_default();
    if authorization["principalType"] == "ServiceAccount" {
        let (ns, name) = principal.split_once('/').unwrap_or(("", principal));
        return vec![(
            format!("system:serviceaccount:{ns}:{name}"),
            vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")],
        )];
    }
    let projected = projected(managed_by, principal);
    vec![(projected.clone(), vec![]), ("someone".into(), vec![projected])]
}

async fn check_rejected(client: &Client, e: &Example) {
    let file = &e.file;
    let (def_ns, def_name) = (&e.definition.0, &e.definition.1);
    let (asg_ns, asg_name) = (&e.assignment.0, &e.assignment.1);
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), def_ns);
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), asg_ns);

    // Start from scratch, so status and Events come from this run (the namespaces stay:
    // applying a file again must work).
    delete(&assignments, asg_name).await;
    delete(&definitions, def_name).await;
    eventually(&format!("{file}: objects of an earlier run are gone"), || async {
        assignments.get_opt(asg_name).await.expect("get").is_none()
            && definitions.get_opt(def_name).await.expect("get").is_none()
    })
    .await;

    kubectl_apply(&e.path, file).await;

    // The definition names the rule and the field.
    let status = definition_until(client, def_ns, def_name, &format!("is Failed with {} ({file})", e.rule), |s| {
        state_is(s.provisioning_state.as_ref(), "Failed")
            && has_condition(&s.conditions, "Ready", ConditionStatus::False, &e.rule)
    })
    .await;
    let ready = condition(&status.conditions, "Ready").expect("Ready");
    assert!(ready.message.contains(&e.field), "{file}: message does not name {}: {}", e.field, ready.message);
    for text in &e.messages {
        assert!(ready.message.contains(text.as_str()), "{file}: message does not say {text:?}: {}", ready.message);
    }
    let definition = definitions.get(def_name).await.expect("get definition");
    assert_eq!(status.observed_generation, definition.metadata.generation, "{file}: status of the current spec");
    assert!(
        condition(&status.conditions, "Degraded").is_none_or(|c| c.status != ConditionStatus::True),
        "{file}: a rejected definition is not merely degraded: {:?}",
        status.conditions
    );

    // The assignment fails because of its definition, and quotes the definition's rule.
    let status =
        assignment_until(client, asg_ns, asg_name, &format!("is Failed with DefinitionInvalid ({file})"), |s| {
            state_is(s.provisioning_state.as_ref(), "Failed")
                && has_condition(&s.conditions, "Ready", ConditionStatus::False, "DefinitionInvalid")
        })
        .await;
    let message = &condition(&status.conditions, "Ready").expect("Ready").message;
    assert!(
        message.contains(&format!("({})", e.rule)) && message.contains(&e.field),
        "{file}: the assignment's message does not quote {} at {}: {message}",
        e.rule,
        e.field
    );
    assert!(status.namespaces.is_empty(), "{file}: no namespace has access: {:?}", status.namespaces);

    // Warning Events, on this very definition and assignment.
    let definition_uid = definition.uid().expect("uid");
    wait_for_warning(client, def_ns, &definition_uid, &e.rule, &format!("{file}: a Warning Event {}", e.rule)).await;
    let assignment_uid = assignments.get(asg_name).await.expect("get assignment").uid().expect("uid");
    wait_for_warning(
        client,
        asg_ns,
        &assignment_uid,
        "DefinitionInvalid",
        &format!("{file}: a Warning Event DefinitionInvalid"),
    )
    .await;

    // Nothing granted: no RBAC objects, and the API server's authorizer agrees.
    for ns in &e.namespaces {
        assert_eq!(managed_objects(client, ns).await, 0, "{file}: RBAC objects in {ns}");
    }
    for authorization in &e.authorizations {
        for (user, groups) in identities(&e.managed_by, authorization) {
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            for what in [access("list", "pods", def_ns), access("get", "configmaps", def_ns)] {
                assert!(!allowed(client, &user, &groups, &what).await, "{file}: {user} {groups:?} may {what:?}");
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn every_rejected_example_fails_for_its_rule_and_grants_nothing() {
    let client = cluster().await;
    let examples = rejected_examples();
    futures::future::join_all(examples.iter().map(|e| check_rejected(&client, e))).await;
}

// --- catalog changes after onboarding (seed 002) ---------------------------------------------

/// A catalog role of this test's own: the shipped ones are shared with concurrent tests.
struct TestRole {
    name: String,
    guid: String,
}

impl TestRole {
    fn new(purpose: &str) -> TestRole {
        TestRole { name: unique(&format!("kubelighthouse-test:{purpose}")), guid: tenant_id() }
    }

    /// Creates or replaces the ClusterRole with exactly `rules`.
    async fn put(&self, client: &Client, rules: Value) {
        let api: Api<ClusterRole> = Api::all(client.clone());
        let body = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": self.name,
                "labels": {"kubelighthouse.io/built-in": "true"},
                "annotations": {
                    "kubelighthouse.io/role-definition-id": self.guid,
                    "kubelighthouse.io/role-display-name": format!("Test role {}", self.name),
                },
            },
            "rules": rules,
        });
        apply_json(&api, &self.name, body).await;
    }

    async fn remove(&self, client: &Client) {
        delete(&Api::<ClusterRole>::all(client.clone()), &self.name).await;
    }
}

fn pods_and_configmaps() -> Value {
    json!([{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list", "watch"]}])
}

fn with(rules: &Value, extra: Value) -> Value {
    let mut all = rules.as_array().cloned().unwrap_or_default();
    all.push(extra);
    Value::Array(all)
}

/// A fresh subscription delegating `role` to the OPS group of the MSP; returns its namespace.
async fn onboard(client: &Client, role: &TestRole) -> String {
    let sub = unique("catalog");
    subscription(client, &sub, &tenant_id()).await;
    definition(client, &sub, "msp", MSP_TENANT, vec![authorization(OPS, "Group", &role.guid)]).await;
    assignment(client, &sub, "msp", "msp").await;
    sub
}

/// Onboards and waits until the delegation is in force and its definition accepted (the
/// acceptance is what makes a later catalog change narrow rather than reject).
async fn onboard_accepted(client: &Client, role: &TestRole) -> String {
    let sub = onboard(client, role).await;
    wait_for_assignment_state(client, &sub, "msp", "Succeeded").await;
    definition_until(client, &sub, "msp", "is accepted", |s| {
        state_is(s.provisioning_state.as_ref(), "Succeeded") && s.accepted_generation.is_some()
    })
    .await;
    sub
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_catalog_role_that_gains_a_rejected_permission_narrows_old_delegations_and_rejects_new_ones() {
    let client = cluster().await;
    let role = TestRole::new("narrow");
    role.put(&client, pods_and_configmaps()).await;
    let sub = onboard_accepted(&client, &role).await;
    let ops = projected(MSP_TENANT, OPS);
    let group = [ops.as_str()];
    expect_access(&client, "someone", &group, access("list", "pods", &sub), true).await;
    assert!(!allowed(&client, "someone", &group, &access("get", "secrets", &sub)).await);

    // The role gains secret reads: the existing delegation keeps pods, never gets secrets.
    let secrets = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]});
    let widened = with(&pods_and_configmaps(), secrets);
    role.put(&client, widened.clone()).await;
    let status = assignment_until(&client, &sub, "msp", "is Degraded (RoleNotDelegable)", |s| {
        has_condition(&s.conditions, "Degraded", ConditionStatus::True, "RoleNotDelegable")
    })
    .await;
    assert!(state_is(status.provisioning_state.as_ref(), "Succeeded"), "{status:?}");
    assert!(has_condition(&status.conditions, "Ready", ConditionStatus::True, "Granted"), "{status:?}");
    let degraded = condition(&status.conditions, "Degraded").expect("Degraded");
    assert!(degraded.message.contains("secrets"), "the Degraded message names what is withheld: {}", degraded.message);
    definition_until(&client, &sub, "msp", "is Degraded (RoleNotDelegable)", |s| {
        state_is(s.provisioning_state.as_ref(), "Succeeded")
            && has_condition(&s.conditions, "Degraded", ConditionStatus::True, "RoleNotDelegable")
    })
    .await;
    let assignment_uid = Api::<RegistrationAssignment>::namespaced(client.clone(), &sub)
        .get("msp")
        .await
        .expect("get")
        .uid()
        .expect("uid");
    wait_for_warning(&client, &sub, &assignment_uid, "RoleNotDelegable", "a Warning Event RoleNotDelegable").await;
    expect_access(&client, "someone", &group, access("list", "pods", &sub), true).await;
    for verb in ["get", "list"] {
        assert!(!allowed(&client, "someone", &group, &access(verb, "secrets", &sub)).await, "{verb} secrets");
    }
    let roles = managed_roles(&client, &sub).await;
    assert_eq!(roles.len(), 1, "one Role for the one role: {roles:?}");
    assert!(!reaches_secrets(roles[0].rules.as_deref().unwrap_or_default()), "{:?}", roles[0].rules);

    // A new delegation of the same role judges it afresh: rejected, nothing granted.
    let fresh = onboard(&client, &role).await;
    let status = definition_until(&client, &fresh, "msp", "is Failed (RoleNotDelegable)", |s| {
        state_is(s.provisioning_state.as_ref(), "Failed")
            && has_condition(&s.conditions, "Ready", ConditionStatus::False, "RoleNotDelegable")
    })
    .await;
    let message = &condition(&status.conditions, "Ready").expect("Ready").message;
    assert!(
        message.contains("spec.authorizations[0].roleDefinitionId") && message.contains("get secrets"),
        "{message}"
    );
    assignment_until(&client, &fresh, "msp", "is Failed (DefinitionInvalid)", |s| {
        state_is(s.provisioning_state.as_ref(), "Failed")
            && has_condition(&s.conditions, "Ready", ConditionStatus::False, "DefinitionInvalid")
    })
    .await;
    assert_eq!(managed_objects(&client, &fresh).await, 0);
    assert!(!allowed(&client, "someone", &group, &access("list", "pods", &fresh)).await);

    // A permission that passes the rules still reaches the narrowed delegation; secrets never.
    let services = json!({"apiGroups": [""], "resources": ["services"], "verbs": ["list"]});
    role.put(&client, with(&widened, services)).await;
    expect_access(&client, "someone", &group, access("list", "services", &sub), true).await;
    assert!(!allowed(&client, "someone", &group, &access("get", "secrets", &sub)).await);
    let roles = managed_roles(&client, &sub).await;
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert!(!reaches_secrets(roles[0].rules.as_deref().unwrap_or_default()), "{:?}", roles[0].rules);
    let status = assignment_status(&client, &sub, "msp").await.expect("status");
    assert!(has_condition(&status.conditions, "Degraded", ConditionStatus::True, "RoleNotDelegable"), "{status:?}");

    // The role leaves the catalog: its access is revoked, and the assignment says why.
    role.remove(&client).await;
    expect_access(&client, "someone", &group, access("list", "pods", &sub), false).await;
    expect_access(&client, "someone", &group, access("list", "services", &sub), false).await;
    let status = assignment_until(&client, &sub, "msp", "is Degraded (RoleRemovedFromCatalog)", |s| {
        has_condition(&s.conditions, "Degraded", ConditionStatus::True, "RoleRemovedFromCatalog")
    })
    .await;
    assert!(status.namespaces.is_empty(), "no namespace has access any more: {:?}", status.namespaces);
    assert!(
        has_condition(&status.conditions, "Ready", ConditionStatus::False, "RoleRemovedFromCatalog"),
        "nothing is granted, so the assignment is not Ready: {status:?}"
    );
    definition_until(&client, &sub, "msp", "is Degraded (RoleRemovedFromCatalog)", |s| {
        has_condition(&s.conditions, "Degraded", ConditionStatus::True, "RoleRemovedFromCatalog")
    })
    .await;
    eventually("the revoked delegation's RBAC objects are gone", || async {
        managed_objects(&client, &sub).await == 0
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn a_permission_a_catalog_role_gains_reaches_existing_delegates() {
    let client = cluster().await;
    let role = TestRole::new("grow");
    role.put(&client, pods_and_configmaps()).await;
    let sub = onboard_accepted(&client, &role).await;
    let ops = projected(MSP_TENANT, OPS);
    let group = [ops.as_str()];
    expect_access(&client, "someone", &group, access("list", "pods", &sub), true).await;
    assert!(!allowed(&client, "someone", &group, &access("list", "services", &sub)).await);

    let services = json!({"apiGroups": [""], "resources": ["services"], "verbs": ["list"]});
    role.put(&client, with(&pods_and_configmaps(), services)).await;
    expect_access(&client, "someone", &group, access("list", "services", &sub), true).await;
    expect_access(&client, "someone", &group, access("list", "pods", &sub), true).await;
    let status = assignment_status(&client, &sub, "msp").await.expect("status");
    assert!(state_is(status.provisioning_state.as_ref(), "Succeeded"), "{status:?}");
    assert!(
        has_condition(&status.conditions, "Degraded", ConditionStatus::False, "CatalogCurrent"),
        "an allowed permission does not degrade: {status:?}"
    );

    role.remove(&client).await;
    expect_access(&client, "someone", &group, access("list", "pods", &sub), false).await;
}
