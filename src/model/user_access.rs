//! The limit of User Access Administrator (SPEC §4, seed 002): its holders may create
//! RoleBindings that bind the roles of `delegatedRoleDefinitionIds` ("assignable" Roles) only
//! to managed identities, i.e. ServiceAccounts of the binding's own namespace.
//!
//! RBAC cannot restrict a binding's subjects, so this is judged twice from the same code:
//! by the admission webhook, before such a binding exists, and by the controller's guard,
//! which deletes one that bypassed the webhook (or was made while it was not installed).

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

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

/// Admission's verdict on a change of RoleBinding `binding` in its namespace by `requester`,
/// given `delegates`, the subjects of the User Access Administrator bindings the controller
/// made in that namespace (SPEC §3, User Access Administrator's limit):
/// - a binding of a controller-made Role other than the controller's own is refused
///   ([`violation`]), whoever makes it;
/// - a delegate may only create bindings of the Roles assignable to it; it may not change or
///   delete any binding.
///
/// # Errors
/// The refusal message, naming the rule and the field.
pub fn admission_verdict(
    binding: &RoleBinding,
    change: BindingChange,
    requester: &Requester<'_>,
    delegates: &[Subject],
) -> Result<(), String> {
    let namespace = binding.metadata.namespace.as_deref().unwrap_or_default();
    if change != BindingChange::Delete {
        if let Some(message) = violation(binding) {
            return Err(message);
        }
    }
    if !delegates.iter().any(|s| requester.is(s, namespace)) {
        return Ok(());
    }
    match change {
        BindingChange::Create if is_assignable(&binding.role_ref) => Ok(()),
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

    fn delegates() -> Vec<Subject> {
        vec![
            subject("User", "tid:alice", None),
            subject("Group", "tid:admins", None),
            subject("ServiceAccount", "deployer", Some("customer-a")),
        ]
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
        assert_eq!(
            admission_verdict(&forged, BindingChange::Delete, &bob, &[]),
            Ok(()),
            "deleting such a binding is always allowed"
        );
        let other_namespace_sa = Requester { username: Some("system:serviceaccount:other:deployer"), groups: &[] };
        assert_eq!(admission_verdict(&foreign, BindingChange::Delete, &other_namespace_sa, &delegates()), Ok(()));
    }
}
