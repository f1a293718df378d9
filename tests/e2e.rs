//! End to end, on the examples a user applies: each directory of `examples/` (but `rejected/`)
//! is applied with `kubectl apply -f`, and the access its `expect.txt` promises is checked the
//! way the API server decides it (SubjectAccessReview); then the delegation objects are deleted
//! and every access it granted must be gone.
//!
//! Runs against any cluster: the local control plane with the controller in this process, or,
//! with `KL_TEST_KUBECONFIG` and `KL_TEST_EXTERNAL_CONTROLLER=1`, a cluster where the chart
//! runs the controller (`hack/e2e-kind.sh`). The examples use fixed namespace names (different
//! for each example), which the tests keep: they are re-runnable on the same cluster.
//!
//! `expect.txt`, one statement a line (`#` starts a comment line):
//!
//! ```text
//! state <namespace>/<assignment> <provisioningState>
//! allow|deny <user> <group>,<group>…|- <verb> <resource>[.<apiGroup>][/<subresource>] <namespace>[/<name>]
//! ```

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::Client;
use kube_lighthouse::api::{RegistrationAssignment, RegistrationDefinition};
use serde::Deserialize;

/// Every example directory that must have an `expect.txt` and a test below.
const EXAMPLES: [&str; 7] = [
    "quickstart",
    "msp-two-customers",
    "enterprise-acquisition",
    "disaster-recovery",
    "resource-group",
    "with-delete-role",
    "just-in-time",
];

const ASSIGNMENTS: &str = "registrationassignments.managedservices.kubelighthouse.io";
const DEFINITIONS: &str = "registrationdefinitions.managedservices.kubelighthouse.io";

// --- expect.txt -------------------------------------------------------------------------------

/// One access statement of an `expect.txt`.
#[derive(Clone, Debug, PartialEq)]
struct Check {
    /// 1-based line number, for messages.
    line: usize,
    text: String,
    allowed: bool,
    user: String,
    groups: Vec<String>,
    verb: String,
    api_group: String,
    resource: String,
    subresource: String,
    namespace: String,
    name: String,
}

impl Check {
    fn access(&self) -> Access<'_> {
        Access {
            verb: &self.verb,
            group: &self.api_group,
            resource: &self.resource,
            subresource: &self.subresource,
            namespace: &self.namespace,
            name: &self.name,
        }
    }

    fn groups(&self) -> Vec<&str> {
        self.groups.iter().map(String::as_str).collect()
    }
}

/// An assignment that must reach a provisioning state.
#[derive(Clone, Debug, PartialEq)]
struct State {
    namespace: String,
    name: String,
    state: String,
}

#[derive(Debug, Default, PartialEq)]
struct Expectations {
    states: Vec<State>,
    checks: Vec<Check>,
}

impl Expectations {
    fn allowed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.allowed)
    }

    fn denied(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.allowed)
    }
}

const STATES: [&str; 4] = ["Accepted", "Succeeded", "Failed", "Deleting"];

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_dns_label(s: &str) -> bool {
    is_name(s) && !s.starts_with('-') && !s.ends_with('-') && s.len() <= 63
}

fn is_object_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// `<namespace>` or `<namespace>/<name>`.
fn namespace_and_name(s: &str) -> Result<(String, String), String> {
    let (namespace, name) = s.split_once('/').unwrap_or((s, ""));
    if !is_dns_label(namespace) {
        return Err(format!("{namespace:?} is not a namespace name"));
    }
    if s.contains('/') && !is_object_name(name) {
        return Err(format!("{name:?} is not an object name"));
    }
    Ok((namespace.to_string(), name.to_string()))
}

/// `<resource>[.<apiGroup>][/<subresource>]` as (apiGroup, resource, subresource).
fn resource(s: &str) -> Result<(String, String, String), String> {
    let (qualified, subresource) = match s.split_once('/') {
        Some((q, sub)) if is_name(sub) => (q, sub),
        Some(_) => return Err(format!("{s:?}: bad subresource")),
        None => (s, ""),
    };
    let (resource, group) = qualified.split_once('.').unwrap_or((qualified, ""));
    if !is_name(resource) {
        return Err(format!("{s:?}: bad resource {resource:?}"));
    }
    if qualified.contains('.') && !group.split('.').all(is_dns_label) {
        return Err(format!("{s:?}: bad API group {group:?}"));
    }
    Ok((group.to_string(), resource.to_string(), subresource.to_string()))
}

fn groups(s: &str) -> Result<Vec<String>, String> {
    if s == "-" {
        return Ok(Vec::new());
    }
    let groups: Vec<String> = s.split(',').map(String::from).collect();
    if groups.iter().any(|g| g.is_empty() || g == "-") {
        return Err(format!("{s:?}: groups are `-` or a comma-separated list of names"));
    }
    Ok(groups)
}

/// One line of an `expect.txt`.
enum Statement {
    Blank,
    State(State),
    Check(Check),
}

fn parse_line(number: usize, line: &str) -> Result<Statement, String> {
    let text = line.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(Statement::Blank);
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        ["state", object, state] => {
            let (namespace, name) = namespace_and_name(object)?;
            if name.is_empty() {
                return Err(format!("{object:?}: state needs <namespace>/<assignment>"));
            }
            if !STATES.contains(state) {
                return Err(format!("{state:?} is not a provisioning state (one of {STATES:?})"));
            }
            Ok(Statement::State(State { namespace, name, state: state.to_string() }))
        }
        [verdict @ ("allow" | "deny"), user, group_list, verb, what, scope] => {
            if user.contains(',') || *user == "-" {
                return Err(format!("{user:?} is not a user name"));
            }
            if !verb.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(format!("{verb:?} is not a verb"));
            }
            let (api_group, resource, subresource) = resource(what)?;
            let (namespace, name) = namespace_and_name(scope)?;
            Ok(Statement::Check(Check {
                line: number,
                text: text.to_string(),
                allowed: *verdict == "allow",
                user: user.to_string(),
                groups: groups(group_list)?,
                verb: verb.to_string(),
                api_group,
                resource,
                subresource,
                namespace,
                name,
            }))
        }
        ["state" | "allow" | "deny", ..] => Err(format!("wrong number of fields ({})", fields.len())),
        [keyword, ..] => Err(format!("unknown statement {keyword:?} (state, allow or deny)")),
        [] => Ok(Statement::Blank),
    }
}

/// Parses an `expect.txt`; any malformed line is an error naming it.
fn parse(text: &str) -> Result<Expectations, String> {
    let mut out = Expectations::default();
    for (i, line) in text.lines().enumerate() {
        match parse_line(i + 1, line).map_err(|e| format!("line {}: {e}: {line}", i + 1))? {
            Statement::State(state) => out.states.push(state),
            Statement::Check(check) => out.checks.push(check),
            Statement::Blank => {}
        }
    }
    if out.states.is_empty() {
        return Err("no `state` line: nothing to wait for".into());
    }
    if out.allowed().next().is_none() {
        return Err("no `allow` line: nothing to grant, nothing to revoke".into());
    }
    Ok(out)
}

// --- the examples' manifests ------------------------------------------------------------------

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn expectations(dir: &str) -> Expectations {
    let path = examples().join(dir).join("expect.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A delegation object of a manifest directory: (kind, namespace, name).
type Object = (String, String, String);

/// The objects of the manifest files directly in `dir` (what `kubectl apply -f dir` applies),
/// in file order.
fn manifest_objects(dir: &Path) -> Vec<Object> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("manifest");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            let Some(kind) = value.get("kind").and_then(|k| k.as_str()) else { continue };
            let field = |f: &str| value["metadata"].get(f).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            out.push((kind.to_string(), field("namespace"), field("name")));
        }
    }
    out
}

/// The RegistrationAssignments and RegistrationDefinitions of `dir`.
fn delegation_objects(dir: &Path) -> Vec<Object> {
    let delegation = |kind: &str| kind == "RegistrationAssignment" || kind == "RegistrationDefinition";
    manifest_objects(dir).into_iter().filter(|(kind, ..)| delegation(kind)).collect()
}

/// Every assignment of the example must be waited for, and every `state` line must name one.
fn check_consistency(dir: &str, expected: &Expectations) {
    let objects = delegation_objects(&examples().join(dir));
    let assignments: Vec<(&str, &str)> = objects
        .iter()
        .filter(|(kind, ..)| kind == "RegistrationAssignment")
        .map(|(_, ns, name)| (ns.as_str(), name.as_str()))
        .collect();
    assert!(!assignments.is_empty(), "examples/{dir}/ applies no RegistrationAssignment");
    for (ns, name) in &assignments {
        assert!(
            expected.states.iter().any(|s| s.namespace == *ns && s.name == *name),
            "examples/{dir}/expect.txt has no `state {ns}/{name} …` line"
        );
    }
    for s in &expected.states {
        assert!(
            assignments.contains(&(s.namespace.as_str(), s.name.as_str())),
            "examples/{dir}/expect.txt: {}/{} is no assignment of examples/{dir}/",
            s.namespace,
            s.name
        );
    }
}

// --- kubectl ----------------------------------------------------------------------------------

fn apply(kubeconfig: &Path, dir: &Path) {
    kubectl(kubeconfig, &["apply", "-f", &dir.to_string_lossy()]);
}

/// `kubectl delete` of the delegation objects of `dir`: assignments first (their finalizer
/// revokes), then definitions. Namespaces stay, so the example can be applied again.
fn delete_delegations(kubeconfig: &Path, dir: &Path) {
    let objects = delegation_objects(dir);
    for (wanted, resource) in [("RegistrationAssignment", ASSIGNMENTS), ("RegistrationDefinition", DEFINITIONS)] {
        for (_, namespace, name) in objects.iter().filter(|(kind, ..)| kind == wanted) {
            kubectl(
                kubeconfig,
                &["delete", resource, name, "-n", namespace, "--ignore-not-found", "--wait=true", "--timeout=120s"],
            );
        }
    }
}

// --- the scenario -----------------------------------------------------------------------------

async fn check(client: &Client, dir: &str, c: &Check, expected: bool) {
    eprintln!(
        "examples/{dir}/expect.txt:{}: {} (expecting {})",
        c.line,
        c.text,
        if expected { "allow" } else { "deny" }
    );
    expect_access(client, &c.user, &c.groups(), c.access(), expected).await;
}

/// Applies the example, waits for its assignments, and checks every line of `expect.txt`.
/// Returns what the caller needs to go on (the expectations), with the delegation in force.
async fn apply_and_check(client: &Client, kubeconfig: &Path, dir: &str) -> Expectations {
    let expected = expectations(dir);
    check_consistency(dir, &expected);
    // After a `kubectl delete -f examples/<dir>/`, its namespaces take a moment to go; nothing
    // can be created in them meanwhile.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (_, _, name) in manifest_objects(&examples().join(dir)).iter().filter(|(kind, ..)| kind == "Namespace") {
        eventually(&format!("namespace {name} is not terminating"), || async {
            let ns = namespaces.get_opt(name).await.expect("get namespace");
            ns.is_none_or(|ns| ns.metadata.deletion_timestamp.is_none())
        })
        .await;
    }
    apply(kubeconfig, &examples().join(dir));
    for s in &expected.states {
        wait_for_assignment_state(client, &s.namespace, &s.name, &s.state).await;
    }
    // Allows first: once they all hold, the delegation is materialized, and a deny is a verdict
    // on the finished RBAC rather than on a half-applied one.
    for c in expected.allowed() {
        check(client, dir, c, true).await;
    }
    for c in expected.denied() {
        check(client, dir, c, false).await;
    }
    expected
}

/// Deletes the example's delegation objects and checks that nothing it allowed is left.
async fn revoke_and_check(client: &Client, kubeconfig: &Path, dir: &str, expected: &Expectations) {
    delete_delegations(kubeconfig, &examples().join(dir));
    for c in expected.allowed() {
        check(client, dir, c, false).await;
    }
    for s in &expected.states {
        let api: Api<RegistrationAssignment> = Api::namespaced(client.clone(), &s.namespace);
        assert!(api.get_opt(&s.name).await.expect("get assignment").is_none(), "{}/{} survived", s.namespace, s.name);
    }
    // The finalizer is released once revocation is done: no Role or RoleBinding may be left.
    let namespaces: BTreeSet<&str> = expected.allowed().map(|c| c.namespace.as_str()).collect();
    for ns in namespaces {
        assert_eq!(managed_objects(client, ns).await, 0, "kube-lighthouse RBAC left in {ns}");
    }
}

async fn scenario(dir: &str) {
    let client = cluster().await;
    let kubeconfig = kubeconfig();
    let expected = apply_and_check(&client, &kubeconfig, dir).await;
    revoke_and_check(&client, &kubeconfig, dir, &expected).await;
}

/// Eligible Contributor with an approver: before any activation, only the right to ask (and,
/// for the leads, to review).
#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn just_in_time() {
    scenario("just-in-time").await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn quickstart() {
    scenario("quickstart").await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn msp_two_customers() {
    scenario("msp-two-customers").await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn enterprise_acquisition() {
    scenario("enterprise-acquisition").await;
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn resource_group() {
    scenario("resource-group").await;
}

/// Reader normally; `failover/` adds Contributor for a DR event, and removing it leaves Reader.
#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn disaster_recovery() {
    const DIR: &str = "disaster-recovery";
    const ADMINS: &str = "490767ee-6c63-4870-a12f-9040843cc83d:870b1826-6040-41e0-9d36-5bf086257703";
    let client = cluster().await;
    let kubeconfig = kubeconfig();
    let failover = examples().join(DIR).join("failover");
    // A failover left over by an interrupted run would grant what normal operations must not.
    delete_delegations(&kubeconfig, &failover);
    let expected = apply_and_check(&client, &kubeconfig, DIR).await;

    // Disaster: fail over. Contributor everywhere in the DR subscription.
    apply(&kubeconfig, &failover);
    wait_for_assignment_state(&client, "dr-standby", "primary-admins-failover", "Succeeded").await;
    for ns in ["dr-standby", "dr-standby-app", "dr-standby-db"] {
        expect_access(&client, "carol", &[ADMINS], access("create", "deployments.apps", ns), true).await;
    }
    expect_access(&client, "carol", &[ADMINS], access("get", "secrets", "dr-standby-db"), false).await;
    expect_access(&client, "carol", &[ADMINS], access("create", "pods/exec", "dr-standby-app"), false).await;
    // Back to normal: Contributor goes at once, Reader stays.
    delete_delegations(&kubeconfig, &failover);
    expect_access(&client, "carol", &[ADMINS], access("create", "deployments.apps", "dr-standby-db"), false).await;
    for c in expected.allowed() {
        check(&client, DIR, c, true).await;
    }

    revoke_and_check(&client, &kubeconfig, DIR, &expected).await;
}

/// An account manager ends the engagement: Proseware deletes its own assignment; the definition
/// stays for Adatum to decide on.
#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn with_delete_role() {
    const DIR: &str = "with-delete-role";
    const MANAGERS: &str = "5b24c2fc-e3fa-4831-8288-c7b2da28eed1:03010554-345c-4267-b423-2d90d2205232";
    let client = cluster().await;
    let kubeconfig = kubeconfig();
    let expected = apply_and_check(&client, &kubeconfig, DIR).await;

    // As the manager (impersonated): the deletion is authorized by the Delete role alone.
    kubectl(
        &kubeconfig,
        &[
            "delete",
            ASSIGNMENTS,
            "proseware-msp",
            "-n",
            "adatum-corp",
            "--wait=false",
            "--as=dave",
            "--as-group",
            MANAGERS,
        ],
    );
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), "adatum-corp");
    eventually("the manager's deletion completes (finalizer released)", || async {
        assignments.get_opt("proseware-msp").await.expect("get").is_none()
    })
    .await;
    for c in expected.allowed() {
        check(&client, DIR, c, false).await;
    }
    let definitions: Api<RegistrationDefinition> = Api::namespaced(client.clone(), "adatum-corp");
    assert!(definitions.get_opt("proseware-msp").await.expect("get").is_some(), "the definition stays");

    revoke_and_check(&client, &kubeconfig, DIR, &expected).await;
}

// --- without a cluster ------------------------------------------------------------------------

/// Each example directory has an `expect.txt` that parses, matches its manifests, and a test.
#[test]
fn every_example_has_valid_expectations() {
    let mut dirs: Vec<String> = std::fs::read_dir(examples())
        .expect("examples/")
        .map(|e| e.expect("entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|d| d != "rejected")
        .collect();
    dirs.sort();
    let mut known: Vec<String> = EXAMPLES.iter().map(|d| d.to_string()).collect();
    known.sort();
    assert_eq!(dirs, known, "every example directory (but rejected/) needs a test in tests/e2e.rs");
    for dir in EXAMPLES {
        let expected = expectations(dir);
        check_consistency(dir, &expected);
        assert!(expected.denied().next().is_some(), "examples/{dir}/expect.txt denies nothing");
    }
}

#[test]
fn parser_reads_every_form() {
    let text = "# comment\n\nstate ns-a/contoso Succeeded\n\
                allow alice t:g1,t:g2 update deployments.apps/scale ns-a\n\
                deny t:u - create pods/exec ns-b\n\
                allow u - delete registrationassignments.managedservices.kubelighthouse.io ns-a/contoso\n";
    let e = parse(text).expect("valid");
    assert_eq!(e.states, vec![State { namespace: "ns-a".into(), name: "contoso".into(), state: "Succeeded".into() }]);
    let scale = &e.checks[0];
    assert_eq!((scale.line, scale.allowed, scale.user.as_str()), (4, true, "alice"));
    assert_eq!(scale.groups, vec!["t:g1", "t:g2"]);
    let a = scale.access();
    assert_eq!(
        (a.verb, a.group, a.resource, a.subresource, a.namespace, a.name),
        ("update", "apps", "deployments", "scale", "ns-a", "")
    );
    let exec = e.checks[1].access();
    assert!(!e.checks[1].allowed && e.checks[1].groups.is_empty());
    assert_eq!((exec.group, exec.resource, exec.subresource, exec.namespace), ("", "pods", "exec", "ns-b"));
    let named = e.checks[2].access();
    assert_eq!(
        (named.group, named.resource, named.namespace, named.name),
        ("managedservices.kubelighthouse.io", "registrationassignments", "ns-a", "contoso")
    );
}

#[test]
fn parser_rejects_malformed_lines() {
    let ok = "state ns/a Succeeded\nallow u - get pods ns\n";
    for bad in [
        "allow u - get pods",                    // no namespace
        "allow u - get pods ns extra",           // too many fields
        "permit u - get pods ns",                // unknown statement
        "allow u g, get pods ns",                // empty group
        "allow u - GET pods ns",                 // verb
        "allow u - get Pods ns",                 // resource
        "allow u - get pods/ ns",                // empty subresource
        "allow u - get deployments.apps..io ns", // API group
        "allow u - get pods Not_A_Namespace",    // namespace
        "allow u - get pods ns/",                // empty name
        "allow - - get pods ns",                 // user
        "state ns Succeeded",                    // no assignment name
        "state ns/a Ready",                      // not a provisioning state
        "state ns/a",                            // no state
    ] {
        let text = format!("{ok}{bad}\n");
        let err = parse(&text).expect_err(bad);
        assert!(err.starts_with("line 3:"), "{bad}: {err}");
    }
    assert!(parse("allow u - get pods ns\n").is_err(), "no state line");
    assert!(parse("state ns/a Succeeded\ndeny u - get pods ns\n").is_err(), "no allow line");
}
