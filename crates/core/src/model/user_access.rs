//! The limit of User Access Administrator (SPEC §4, seed 002): its holders may create
//! RoleBindings that bind the roles of `delegatedRoleDefinitionIds` ("assignable" Roles) only
//! to managed identities, i.e. ServiceAccounts of the binding's own namespace.
//!
//! RBAC cannot restrict a binding's subjects, so this is judged twice from the same code:
//! by the admission webhook, before such a binding exists, and by the controller's guard,
//! which deletes one that bypassed the webhook (or was made while it was not installed).

use k8s_openapi::api::admissionregistration::v1::{ValidatingWebhook, ValidatingWebhookConfiguration};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::desired::ASSIGNABLE_ROLE_PART;

/// The part after `kubelighthouse:<hash>:` of a Role name the controller made
/// ([`super::desired::object_name`]: ten hexadecimal digits of hash), if `role_ref` is one.
fn controller_role(role_ref: &RoleRef) -> Option<&str> {
    if role_ref.kind != "Role" {
        return None;
    }
    let (hash, role) = role_ref.name.strip_prefix("kubelighthouse:")?.split_once(':')?;
    (hash.len() == 10 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(role)
}

/// The `kubelighthouse:<hash>:` prefix of a name the controller made, if `name` has that
/// shape ([`super::desired::object_name`]): the hash is the owning assignment's.
pub fn controller_prefix(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("kubelighthouse:")?;
    let (hash, _) = rest.split_once(':')?;
    (hash.len() == 10 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| &name[..16 + hash.len()])
}

/// Why a Role or RoleBinding with `meta` poses as one kube-lighthouse materializes, if it
/// does: it has the shape of the controller's names (`kubelighthouse:<hash>:…`), its
/// `app.kubernetes.io/managed-by: kube-lighthouse` label, or any other label or annotation
/// the controller sets on what it materializes. Only the controller writes such objects:
/// "ours" is decided by who writes, never by what an object claims (docs/roles.md).
pub fn posing_as_ours(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
    use super::keys;
    let name = meta.name.as_deref().unwrap_or_default();
    if controller_prefix(name).is_some() {
        return Some(format!(
            "metadata.name: {name} has the shape of kube-lighthouse's names (kubelighthouse:<hash>:…)"
        ));
    }
    let labels = meta.labels.as_ref();
    if labels.and_then(|l| l.get(keys::MANAGED_BY)).map(String::as_str) == Some(keys::MANAGER) {
        return Some(format!("metadata.labels: {}={}", keys::MANAGED_BY, keys::MANAGER));
    }
    let label = keys::MATERIALIZED_LABELS
        .iter()
        .filter(|k| **k != keys::MANAGED_BY)
        .find(|k| labels.is_some_and(|l| l.contains_key(**k)));
    if let Some(key) = label {
        return Some(format!("metadata.labels: {key}"));
    }
    let annotations = meta.annotations.as_ref();
    let annotation = keys::MATERIALIZED_ANNOTATIONS.iter().find(|k| annotations.is_some_and(|a| a.contains_key(**k)));
    annotation.map(|key| format!("metadata.annotations: {key}"))
}

/// The refusal of a change by someone other than the controller to a Role or RoleBinding
/// that poses as ours (`why`, from [`posing_as_ours`]).
pub fn not_the_controller(kind: &str, name: &str, verb: &str, why: &str) -> String {
    format!(
        "MaterializedByController: {why}: only kube-lighthouse's controller may {verb} {kind} {name}; objects named or labelled as kube-lighthouse's are its own (docs/roles.md)"
    )
}

/// Whether `role_ref` names an assignable Role: a namespaced Role whose name
/// [`super::desired::assignable_name`] made (`kubelighthouse:<hash>:assignable:<role>`).
/// Names of that shape are the controller's own; nothing else is named so.
pub fn is_assignable(role_ref: &RoleRef) -> bool {
    controller_role(role_ref).is_some_and(|role| role.starts_with(ASSIGNABLE_ROLE_PART))
}

/// Whether `binding` is (or poses as) one the controller materializes: ours bear the name of
/// the Role they bind and our label. Such a binding is kept exact by its assignment's
/// reconcile, or swept as an orphan, not judged here.
pub fn looks_materialized(binding: &RoleBinding) -> bool {
    let ours = binding.metadata.labels.as_ref().and_then(|l| l.get(super::keys::MANAGED_BY)).map(String::as_str)
        == Some(super::keys::MANAGER);
    ours && binding.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())
}

/// The subjects of a binding in `namespace` that are not managed identities there, as
/// `Kind name` (a ServiceAccount of another namespace as `ServiceAccount ns/name`).
pub fn outside_subjects(namespace: &str, subjects: &[Subject]) -> Vec<String> {
    subjects
        .iter()
        .filter_map(|s| match (s.kind.as_str(), s.namespace.as_deref()) {
            ("ServiceAccount", None) => None,
            ("ServiceAccount", Some(ns)) if ns == namespace => None,
            ("ServiceAccount", Some(ns)) => Some(format!("ServiceAccount {ns}/{}", s.name)),
            (kind, _) => Some(format!("{kind} {}", s.name)),
        })
        .collect()
}

/// Why `binding` may not exist, if it binds a Role the controller materialized other than as
/// the controller's own binding: an assignable Role may be bound to the ServiceAccounts of its
/// namespace only, and any other Role of ours (a delegated role, User Access
/// Administrator's own, one left by a revoked delegation) by nobody else at all. Else a User
/// Access Administrator, who holds the permissions of those Roles, could hand them to anyone
/// (Kubernetes' escalation check lets a holder bind what it holds), and a binding left behind
/// would come back to life with a later assignment of the same name. The message names the
/// rule, the field and the subjects.
pub fn violation(binding: &RoleBinding) -> Option<String> {
    let role = controller_role(&binding.role_ref)?;
    if looks_materialized(binding) {
        return None;
    }
    if !role.starts_with(ASSIGNABLE_ROLE_PART) {
        return Some(format!(
            "UserAccessAdministratorLimit: roleRef: Role {} is kube-lighthouse's own, bound only by the delegation that made it; only its assignable roles may be bound, and only to ServiceAccounts",
            binding.role_ref.name
        ));
    }
    let namespace = binding.metadata.namespace.as_deref().unwrap_or_default();
    let outside = outside_subjects(namespace, binding.subjects.as_deref().unwrap_or_default());
    (!outside.is_empty()).then(|| {
        format!(
            "UserAccessAdministratorLimit: subjects: role {} is assignable by User Access Administrator only to managed identities (ServiceAccounts of {namespace}), not to {}",
            binding.role_ref.name,
            outside.join(", ")
        )
    })
}

/// A change to a RoleBinding, as admission sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingChange {
    /// A RoleBinding being created.
    Create,
    /// A RoleBinding being changed.
    Update,
    /// A RoleBinding being deleted.
    Delete,
}

/// Who asks, as the API server passes it to admission.
#[derive(Clone, Debug, Default)]
pub struct Requester<'a> {
    /// The requester's user name, when the API server gives one.
    pub username: Option<&'a str>,
    /// The requester's groups.
    pub groups: &'a [String],
}

impl Requester<'_> {
    /// Whether `subject` (of a binding in `namespace`) is this requester.
    pub fn is(&self, subject: &Subject, namespace: &str) -> bool {
        match subject.kind.as_str() {
            "User" => self.username == Some(subject.name.as_str()),
            "Group" => self.groups.contains(&subject.name),
            "ServiceAccount" => {
                let namespace = subject.namespace.as_deref().unwrap_or(namespace);
                self.username == Some(format!("system:serviceaccount:{namespace}:{}", subject.name).as_str())
            }
            _ => false,
        }
    }
}

/// One User Access Administrator binding the controller made in a namespace: who holds it,
/// and the delegation it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Delegation {
    /// The binding's subjects: the User Access Administrators.
    pub delegates: Vec<Subject>,
    /// `kubelighthouse:<hash>:assignable:`, the start of the names of the Roles this
    /// delegation's administrators may bind.
    pub assignable_prefix: String,
}

impl Delegation {
    /// The delegation of the User Access Administrator binding named `binding_name` (one the
    /// controller made: `kubelighthouse:<hash>:…`) with `delegates`; None for another name.
    pub fn of_binding(binding_name: &str, delegates: Vec<Subject>) -> Option<Delegation> {
        let prefix = controller_prefix(binding_name)?;
        Some(Delegation { delegates, assignable_prefix: format!("{prefix}{ASSIGNABLE_ROLE_PART}") })
    }
}

/// Admission's verdict on a change of RoleBinding `binding` in its namespace by `requester`,
/// given `delegations`, the User Access Administrator bindings the controller made in that
/// namespace (SPEC §3, User Access Administrator's limit):
/// - a binding of a controller-made Role other than the controller's own is refused
///   ([`violation`]), whoever makes it;
/// - a delegate may only create bindings of the Roles assignable by a delegation it holds
///   (whatever else its roleRef names: a ClusterRole whose permissions it holds, another
///   delegation's assignable Role), to ServiceAccounts of the namespace; it may not change
///   or delete any binding.
///
/// # Errors
/// The refusal message, naming the rule and the field.
pub fn admission_verdict(
    binding: &RoleBinding,
    change: BindingChange,
    requester: &Requester<'_>,
    delegations: &[Delegation],
) -> Result<(), String> {
    let namespace = binding.metadata.namespace.as_deref().unwrap_or_default();
    if change != BindingChange::Delete {
        if let Some(message) = violation(binding) {
            return Err(message);
        }
    }
    let held: Vec<&Delegation> =
        delegations.iter().filter(|d| d.delegates.iter().any(|s| requester.is(s, namespace))).collect();
    if held.is_empty() {
        return Ok(());
    }
    let assignable_by_held = |role_ref: &RoleRef| {
        is_assignable(role_ref) && held.iter().any(|d| role_ref.name.starts_with(&d.assignable_prefix))
    };
    match change {
        BindingChange::Create if assignable_by_held(&binding.role_ref) => Ok(()),
        BindingChange::Create => Err(format!(
            "UserAccessAdministratorLimit: roleRef: a User Access Administrator may bind only its delegated roles in {namespace}, not {} {}",
            binding.role_ref.kind, binding.role_ref.name
        )),
        BindingChange::Update | BindingChange::Delete => Err(format!(
            "UserAccessAdministratorLimit: a User Access Administrator may only create RoleBindings in {namespace}; it may not {} RoleBinding {}",
            if change == BindingChange::Delete { "delete" } else { "change" },
            binding.metadata.name.as_deref().unwrap_or_default()
        )),
    }
}

/// What the controller knows about the admission webhook when it decides whether User
/// Access Administrator may be in force.
#[derive(Clone, Copy, Debug)]
pub struct WebhookFacts<'a> {
    /// `--webhook-configuration`: the ValidatingWebhookConfiguration to look for.
    pub configuration_name: Option<&'a str>,
    /// It, as the API server has it; None when it does not exist.
    pub configuration: Option<&'a ValidatingWebhookConfiguration>,
    /// Whether this process serves the webhook (it has a serving certificate and key).
    pub serving: bool,
    /// The controller's own user name: a match condition that leaves out only its requests
    /// is allowed (the chart's).
    pub controller: Option<&'a str>,
}

/// Whether User Access Administrator may be in force (docs/roles.md): only while the
/// admission webhook, its only complete enforcement, judges every RoleBinding written in a
/// delegated namespace. RBAC lets a holder bind any role whose permissions it holds (a catalog
/// ClusterRole, to `system:authenticated`), and the controller's guard only judges bindings of
/// our own Roles; so without the webhook the rights are withheld, and the guard's
/// incompleteness cannot matter. The webhook counts when this process serves it and the
/// configuration sends it, for subscriptions and resource groups alike, every CREATE and
/// UPDATE of a RoleBinding with failure policy Fail, and leaves out no request but the
/// controller's own.
///
/// # Errors
/// Why not, for the assignment's status and Event.
pub fn webhook_guards(facts: &WebhookFacts<'_>) -> Result<(), String> {
    let Some(name) = facts.configuration_name else {
        return Err("the admission webhook is not configured for RoleBindings (no --webhook-configuration)".into());
    };
    if !facts.serving {
        return Err("this controller does not serve the admission webhook (no --webhook-cert and --webhook-key)".into());
    }
    let Some(configuration) = facts.configuration else {
        return Err(format!("ValidatingWebhookConfiguration {name} does not exist"));
    };
    let hooks = configuration.webhooks.as_deref().unwrap_or_default();
    let kinds = [("subscriptions", super::keys::TENANT_ID), ("resource groups", super::keys::SUBSCRIPTION)];
    for (kind, label) in kinds {
        if !hooks.iter().any(|hook| guards_bindings(hook, label, facts.controller)) {
            return Err(format!(
                "ValidatingWebhookConfiguration {name} does not send every RoleBinding created or changed in {kind} to the webhook with failurePolicy Fail"
            ));
        }
    }
    Ok(())
}

/// Whether `hook` judges every CREATE and UPDATE of a RoleBinding in a namespace labelled
/// `label` (any value), failing closed.
fn guards_bindings(hook: &ValidatingWebhook, label: &str, controller: Option<&str>) -> bool {
    let fails_closed = hook.failure_policy.as_deref().is_none_or(|p| p == "Fail");
    let every_object = hook.object_selector.as_ref().is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    });
    let only_controller_left_out = hook.match_conditions.as_deref().unwrap_or_default().iter().all(|c| {
        controller.is_some_and(|me| c.expression.replace(' ', "") == format!("request.userInfo.username!=\"{me}\""))
    });
    let covers =
        |v: &Option<Vec<String>>, want: &str| v.as_deref().unwrap_or_default().iter().any(|x| x == "*" || x == want);
    let rule = hook.rules.as_deref().unwrap_or_default().iter().any(|r| {
        let operations = r.operations.as_deref().unwrap_or_default();
        let operation = |op: &str| operations.iter().any(|x| x == "*" || x == op);
        covers(&r.api_groups, "rbac.authorization.k8s.io")
            && covers(&r.api_versions, "v1")
            && covers(&r.resources, "rolebindings")
            && operation("CREATE")
            && operation("UPDATE")
            && r.scope.as_deref().is_none_or(|s| s != "Cluster")
    });
    fails_closed && every_object && only_controller_left_out && rule && selects(hook.namespace_selector.as_ref(), label)
}

/// Whether `selector` selects every namespace labelled `label`, whatever its value and
/// other labels: only an empty selector, or one whose every term is `label` Exists, does.
fn selects(selector: Option<&LabelSelector>, label: &str) -> bool {
    let Some(selector) = selector else { return true };
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .all(|e| e.key == label && e.operator == "Exists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::desired::{assignable_name, object_name, AssignmentRef};

    fn assignment() -> AssignmentRef {
        AssignmentRef { namespace: "customer-a".into(), name: "contoso".into(), uid: "u".into() }
    }

    fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
        Subject { kind: kind.into(), name: name.into(), namespace: namespace.map(String::from), api_group: None }
    }

    fn binding(role: &str, kind: &str, subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("b".into()),
                namespace: Some("customer-a".into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: kind.into(),
                name: role.into(),
            },
            subjects: Some(subjects),
        }
    }

    #[test]
    fn only_the_assignable_roles_the_controller_names_are_limited() {
        let assignable = assignable_name(&assignment(), "kubelighthouse:reader");
        assert!(is_assignable(&binding(&assignable, "Role", vec![]).role_ref));
        let long = assignable_name(&assignment(), &"r".repeat(300));
        assert!(is_assignable(&binding(&long, "Role", vec![]).role_ref));
        for (name, kind) in [
            (assignable.as_str(), "ClusterRole"),
            (&object_name(&assignment(), "kubelighthouse:reader"), "Role"),
            ("admin", "ClusterRole"),
            ("assignable:reader", "Role"),
            ("other:abc:assignable:reader", "Role"),
        ] {
            assert!(!is_assignable(&binding(name, kind, vec![]).role_ref), "{kind} {name}");
        }
    }

    #[test]
    fn an_assignable_role_binds_only_service_accounts_of_its_namespace() {
        let role = assignable_name(&assignment(), "view");
        let ok = binding(&role, "Role", vec![subject("ServiceAccount", "app", Some("customer-a"))]);
        assert_eq!(violation(&ok), None);
        let bad = binding(
            &role,
            "Role",
            vec![
                subject("ServiceAccount", "app", Some("customer-a")),
                subject("User", "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6:p", None),
                subject("Group", "system:authenticated", None),
                subject("ServiceAccount", "bot", Some("elsewhere")),
            ],
        );
        let message = violation(&bad).expect("refused");
        assert!(message.starts_with("UserAccessAdministratorLimit: subjects:"), "{message}");
        assert!(message.contains("User fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6:p"));
        assert!(message.contains("Group system:authenticated"));
        assert!(message.contains("ServiceAccount elsewhere/bot"));
        assert!(!message.contains("ServiceAccount customer-a/app"));
    }

    #[test]
    fn no_one_else_binds_the_controller_s_other_roles() {
        let sa = subject("ServiceAccount", "app", Some("customer-a"));
        for role in [
            object_name(&assignment(), "kubelighthouse:contributor"),
            object_name(&assignment(), "user-access-administrator:1234abcd"),
        ] {
            let message = violation(&binding(&role, "Role", vec![sa.clone()])).expect("refused");
            assert!(message.contains("roleRef"), "{message}");
            // The controller's own binding of it, name and label, is not this rule's business.
            let mut ours = binding(&role, "Role", vec![subject("Group", "g", None)]);
            ours.metadata.name = Some(role.clone());
            ours.metadata.labels =
                Some([("app.kubernetes.io/managed-by".to_string(), "kube-lighthouse".to_string())].into());
            assert!(looks_materialized(&ours));
            assert_eq!(violation(&ours), None);
        }
        // A look-alike name that is not ten hexadecimal digits of hash is someone else's.
        assert_eq!(violation(&binding("kubelighthouse:not-a-hash:x", "Role", vec![])), None);
    }

    #[test]
    fn other_bindings_are_not_this_rule_s_business() {
        let customer = binding("admin", "ClusterRole", vec![subject("Group", "customer-admins", None)]);
        assert_eq!(violation(&customer), None);
    }

    fn delegates() -> Vec<Delegation> {
        let uaa = object_name(&assignment(), "user-access-administrator:1234abcd");
        let held = vec![
            subject("User", "tid:alice", None),
            subject("Group", "tid:admins", None),
            subject("ServiceAccount", "deployer", Some("customer-a")),
        ];
        vec![Delegation::of_binding(&uaa, held).expect("a controller name")]
    }

    #[test]
    fn a_delegate_creates_only_bindings_of_its_assignable_roles() {
        let assignable = assignable_name(&assignment(), "kubelighthouse:reader");
        let sa = subject("ServiceAccount", "app", Some("customer-a"));
        let alice = Requester { username: Some("tid:alice"), groups: &[] };
        let ok = binding(&assignable, "Role", vec![sa.clone()]);
        assert_eq!(admission_verdict(&ok, BindingChange::Create, &alice, &delegates()), Ok(()));
        let admin = binding("admin", "ClusterRole", vec![sa]);
        let refused = admission_verdict(&admin, BindingChange::Create, &alice, &delegates()).expect_err("refused");
        assert!(refused.starts_with("UserAccessAdministratorLimit: roleRef:"), "{refused}");
        assert!(refused.contains("not ClusterRole admin"), "{refused}");
        // Whatever the roleRef: a catalog ClusterRole whose permissions it holds, to anyone.
        let everyone = subject("Group", "system:authenticated", None);
        let catalog = binding("kubelighthouse:contributor", "ClusterRole", vec![everyone]);
        assert!(admission_verdict(&catalog, BindingChange::Create, &alice, &delegates()).is_err());
        // Another delegation's assignable Role, even to a ServiceAccount of the namespace.
        let other = AssignmentRef { namespace: "customer-a".into(), name: "fabrikam".into(), uid: "v".into() };
        let theirs = binding(
            &assignable_name(&other, "kubelighthouse:reader"),
            "Role",
            vec![subject("ServiceAccount", "app", Some("customer-a"))],
        );
        let refused = admission_verdict(&theirs, BindingChange::Create, &alice, &delegates()).expect_err("refused");
        assert!(refused.contains("may bind only its delegated roles"), "{refused}");
    }

    #[test]
    fn what_poses_as_ours_is_named_by_the_field() {
        let meta = |name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]| {
            let map = |kv: &[(&str, &str)]| {
                (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
            };
            k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                labels: map(labels),
                annotations: map(annotations),
                ..Default::default()
            }
        };
        let ours = object_name(&assignment(), "kubelighthouse:reader");
        assert!(posing_as_ours(&meta(&ours, &[], &[])).expect("name").starts_with("metadata.name:"));
        let labelled = meta("x", &[("app.kubernetes.io/managed-by", "kube-lighthouse")], &[]);
        assert!(posing_as_ours(&labelled).expect("label").starts_with("metadata.labels:"));
        let uid = meta("x", &[("kubelighthouse.io/assignment-uid", "u")], &[]);
        assert!(posing_as_ours(&uid).expect("label").contains("assignment-uid"));
        let annotated = meta("x", &[], &[("kubelighthouse.io/assignment", "ns/a")]);
        assert!(posing_as_ours(&annotated).expect("annotation").starts_with("metadata.annotations:"));
        assert_eq!(posing_as_ours(&meta("x", &[("app.kubernetes.io/managed-by", "Helm")], &[])), None);
        assert_eq!(posing_as_ours(&meta("kubelighthouse:not-a-hash:x", &[], &[])), None);
        let refused = not_the_controller("RoleBinding", "b", "create", "metadata.labels: x");
        assert!(refused.starts_with("MaterializedByController: metadata.labels: x: only"), "{refused}");
        assert_eq!(controller_prefix(&ours), Some(&ours[..26]));
    }

    #[test]
    fn a_delegate_may_neither_change_nor_delete_a_binding() {
        let foreign = binding("edit", "ClusterRole", vec![subject("User", "bob", None)]);
        let groups = ["tid:admins".to_string()];
        let by_group = Requester { username: Some("tid:carol"), groups: &groups };
        for (change, verb) in [(BindingChange::Update, "change"), (BindingChange::Delete, "delete")] {
            let refused = admission_verdict(&foreign, change, &by_group, &delegates()).expect_err("refused");
            assert!(refused.ends_with(&format!("it may not {verb} RoleBinding b")), "{refused}");
        }
        let sa = Requester { username: Some("system:serviceaccount:customer-a:deployer"), groups: &[] };
        assert!(
            admission_verdict(&foreign, BindingChange::Delete, &sa, &delegates()).is_err(),
            "a ServiceAccount delegate"
        );
    }

    #[test]
    fn anyone_else_is_not_this_rule_s_business_unless_binding_a_controller_role() {
        let bob = Requester { username: Some("bob"), groups: &[] };
        let foreign = binding("edit", "ClusterRole", vec![subject("User", "bob", None)]);
        for change in [BindingChange::Create, BindingChange::Update, BindingChange::Delete] {
            assert_eq!(admission_verdict(&foreign, change, &bob, &delegates()), Ok(()));
        }
        let ours = object_name(&assignment(), "kubelighthouse:reader");
        let forged = binding(&ours, "Role", vec![subject("User", "bob", None)]);
        assert!(admission_verdict(&forged, BindingChange::Create, &bob, &[]).is_err(), "binding a controller Role");
        assert!(Delegation::of_binding("not-ours", vec![]).is_none());
        assert_eq!(
            admission_verdict(&forged, BindingChange::Delete, &bob, &[]),
            Ok(()),
            "deleting such a binding is always allowed"
        );
        let other_namespace_sa = Requester { username: Some("system:serviceaccount:other:deployer"), groups: &[] };
        assert_eq!(admission_verdict(&foreign, BindingChange::Delete, &other_namespace_sa, &delegates()), Ok(()));
    }

    fn configuration(hooks: serde_json::Value) -> ValidatingWebhookConfiguration {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "kl"}, "webhooks": hooks})).expect("config")
    }

    fn hook(label: &str, policy: &str, operations: &[&str], conditions: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "name": format!("{label}.kubelighthouse.io"), "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://127.0.0.1/validate"},
            "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["*"],
                "operations": operations, "resources": ["rolebindings"]}],
            "namespaceSelector": {"matchExpressions": [{"key": label, "operator": "Exists"}]},
            "failurePolicy": policy, "matchConditions": conditions,
        })
    }

    #[test]
    fn user_access_is_in_force_only_while_the_webhook_judges_every_binding() {
        let me = "system:serviceaccount:kl:kube-lighthouse";
        let not_me = serde_json::json!([{"name": "not-the-controller",
            "expression": format!("request.userInfo.username != \"{me}\"")}]);
        let ops = ["CREATE", "UPDATE", "DELETE"];
        let chart = configuration(serde_json::json!([
            hook("kubelighthouse.io/tenant-id", "Fail", &ops, not_me.clone()),
            hook("kubelighthouse.io/subscription", "Fail", &ops, not_me.clone()),
        ]));
        let facts = |configuration, serving| WebhookFacts {
            configuration_name: Some("kl"),
            configuration,
            serving,
            controller: Some(me),
        };
        assert_eq!(webhook_guards(&facts(Some(&chart), true)), Ok(()));
        let cases = [
            (facts(Some(&chart), false), "does not serve"),
            (facts(None, true), "ValidatingWebhookConfiguration kl does not exist"),
            (WebhookFacts { configuration_name: None, ..facts(Some(&chart), true) }, "no --webhook-configuration"),
        ];
        for (facts, why) in cases {
            let refused = webhook_guards(&facts).expect_err(why);
            assert!(refused.contains(why), "{refused}");
        }
        let broken = [
            (serde_json::json!([hook("kubelighthouse.io/tenant-id", "Fail", &ops, not_me.clone())]), "resource groups"),
            (
                serde_json::json!([
                    hook("kubelighthouse.io/tenant-id", "Ignore", &ops, not_me.clone()),
                    hook("kubelighthouse.io/subscription", "Fail", &ops, not_me.clone()),
                ]),
                "subscriptions",
            ),
            (
                serde_json::json!([
                    hook("kubelighthouse.io/tenant-id", "Fail", &["CREATE"], not_me.clone()),
                    hook("kubelighthouse.io/subscription", "Fail", &ops, not_me.clone()),
                ]),
                "subscriptions",
            ),
            (
                serde_json::json!([
                    hook(
                        "kubelighthouse.io/tenant-id",
                        "Fail",
                        &ops,
                        serde_json::json!([{"name": "x", "expression": "false"}])
                    ),
                    hook("kubelighthouse.io/subscription", "Fail", &ops, not_me.clone()),
                ]),
                "subscriptions",
            ),
            (
                serde_json::json!([
                    hook("kubelighthouse.io/tenant-id", "Fail", &ops, not_me.clone()),
                    hook("other", "Fail", &ops, not_me.clone()),
                ]),
                "resource groups",
            ),
        ];
        for (hooks, kind) in broken {
            let config = configuration(hooks);
            let facts = WebhookFacts {
                configuration_name: Some("kl"),
                configuration: Some(&config),
                serving: true,
                controller: Some(me),
            };
            let refused = webhook_guards(&facts).expect_err(kind);
            assert!(refused.ends_with(&format!("in {kind} to the webhook with failurePolicy Fail")), "{refused}");
        }
        // One webhook for every namespace, no selector, no condition: judges everything.
        let mut everything = hook("x", "Fail", &["*"], serde_json::json!(null));
        everything["namespaceSelector"] = serde_json::json!({});
        let config = configuration(serde_json::json!([everything]));
        let facts = WebhookFacts {
            configuration_name: Some("kl"),
            configuration: Some(&config),
            serving: true,
            controller: None,
        };
        assert_eq!(webhook_guards(&facts), Ok(()));
    }
}
