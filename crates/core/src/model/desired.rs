//! Desired RBAC (SPEC §5): the exact Roles and RoleBindings one assignment must own.
//!
//! Per namespace of the scope and per distinct role: one Role holding the filtered rules of
//! the catalog role (never a binding to the ClusterRole itself, so a catalog change cannot
//! widen a delegation) and one RoleBinding to it. Names are deterministic and include the
//! role, so a changed role is a new object, never a mutated `roleRef` (which is immutable).

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use super::keys;
use super::validate::ValidDefinition;
use crate::api::GROUP;

/// The assignment that owns the objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignmentRef {
    /// The assignment's namespace: the scope namespace.
    pub namespace: String,
    /// The assignment's name.
    pub name: String,
    /// The assignment's UID: the `assignment-uid` label, the prune selector.
    pub uid: String,
}

/// Everything one assignment materializes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredRbac {
    /// The Roles: per namespace of the scope, one per distinct role (and the ones a User Access
    /// Administrator may bind).
    pub roles: Vec<Role>,
    /// The RoleBindings of the managing tenant's subjects to those Roles.
    pub bindings: Vec<RoleBinding>,
}

impl DesiredRbac {
    /// Adds `other`'s objects after this one's.
    pub fn extend(&mut self, other: DesiredRbac) {
        self.roles.extend(other.roles);
        self.bindings.extend(other.bindings);
    }
}

fn short_hash(input: &str, len: usize) -> String {
    let digest = Sha256::digest(input.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect::<String>()[..len].to_string()
}

/// The longest role part of an object name: with `kubelighthouse:<hash>:` the name stays
/// within 253 bytes, the limit of names Kubernetes stores.
const MAX_ROLE_PART: usize = 200;

/// Deterministic name of the Role and RoleBinding for one (assignment, role):
/// `kubelighthouse:<hash of the assignment>:<role>`, at most 227 bytes. A role name longer
/// than 200 bytes (ClusterRole names have no length limit) is cut and followed by a hash of
/// the whole, so two long roles that share a prefix never share an object.
pub fn object_name(assignment: &AssignmentRef, role: &str) -> String {
    let hash = short_hash(&format!("{}/{}", assignment.namespace, assignment.name), 10);
    if role.len() <= MAX_ROLE_PART {
        return format!("kubelighthouse:{hash}:{role}");
    }
    let mut cut = MAX_ROLE_PART - 11;
    while !role.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("kubelighthouse:{hash}:{}-{}", &role[..cut], short_hash(role, 10))
}

/// A label value naming `value`: itself when it fits the 63-character limit, else a prefix
/// with a hash, so the label still tells a human which object it is.
pub fn label_value(value: &str) -> String {
    if value.len() <= 63 {
        return value.to_string();
    }
    let prefix: String = value.chars().take(52).collect();
    format!("{}-{}", prefix.trim_end_matches(['-', '.', '_']), short_hash(value, 10))
}

/// Labels every object of the assignment carries; the UID label is the prune selector.
pub fn labels(assignment: &AssignmentRef, managing_tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (keys::MANAGED_BY.to_string(), keys::MANAGER.to_string()),
        (keys::ASSIGNMENT_UID.to_string(), assignment.uid.clone()),
        (keys::ASSIGNMENT_NAMESPACE.to_string(), assignment.namespace.clone()),
        (keys::ASSIGNMENT_NAME.to_string(), label_value(&assignment.name)),
        (keys::MANAGED_BY_TENANT_ID.to_string(), managing_tenant.to_string()),
    ])
}

fn touches_own_assignments(rule: &PolicyRule) -> bool {
    let group = rule.api_groups.iter().flatten().any(|g| g == GROUP || g == "*");
    let resource = rule.resources.iter().flatten().any(|r| r == "registrationassignments");
    let delete = rule.verbs.iter().any(|v| v == "delete");
    group && resource && delete
}

/// The rules a catalog role grants through `assignment` in `namespace`: the one function every
/// materialization path turns a role into a Role's rules with (standing grants and the Roles a
/// User Access Administrator may bind in [`build`], activations in
/// [`super::activation::activation_rbac`]), so that a role grants the same wherever it is
/// materialized from. `rules` are the role's delegable rules (its classification, which
/// already holds it to the classifier and its documented class).
///
/// The Delete role lets a managing principal get, list, watch and delete *the assignment
/// that granted it* (SPEC §4): a rule that deletes assignments is pinned, with its reads, to
/// that name, in that namespace only. (Reading assignments without deleting is what Reader
/// grants: the customer's "Service providers" view, not pinned.)
pub fn materialized_rules(rules: &[PolicyRule], assignment: &AssignmentRef, namespace: &str) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for rule in rules {
        if !touches_own_assignments(rule) {
            out.push(rule.clone());
            continue;
        }
        let others: Vec<String> =
            rule.resources.iter().flatten().filter(|r| *r != "registrationassignments").cloned().collect();
        if !others.is_empty() {
            out.push(PolicyRule { resources: Some(others), ..rule.clone() });
        }
        if namespace == assignment.namespace {
            out.push(PolicyRule {
                api_groups: Some(vec![GROUP.to_string()]),
                resources: Some(vec!["registrationassignments".to_string()]),
                verbs: rule.verbs.clone(),
                resource_names: Some(vec![assignment.name.clone()]),
                non_resource_urls: None,
            });
        }
    }
    out
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn rbac_rule(resources: &[&str], verbs: &[&str], names: Option<Vec<String>>) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![RBAC_GROUP.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        resource_names: names,
        non_resource_urls: None,
    }
}

/// User Access Administrator, limited as in Lighthouse (SPEC §4: "create RoleBindings that
/// bind only ServiceAccounts to the delegatedRoleDefinitionIds roles"): its subjects may
/// *create* RoleBindings and `bind` exactly the assignable Roles, so Kubernetes' own
/// escalation check refuses a binding to any other role they do not hold. Nothing else: no
/// delete, update or patch, which would let them remove or rewrite the customer's own
/// bindings, and no reads of who holds what. Which subjects such a binding may name
/// (ServiceAccounts of its namespace) is enforced by the webhook and by the controller's
/// guard ([`crate::model::user_access`]).
fn user_access_rules(assignable: &[String]) -> Vec<PolicyRule> {
    vec![rbac_rule(&["rolebindings"], &["create"], None), rbac_rule(&["roles"], &["bind"], Some(assignable.to_vec()))]
}

/// What follows the assignment's hash in the name of an assignable Role.
pub const ASSIGNABLE_ROLE_PART: &str = "assignable:";

/// Name of the Role a User Access Administrator may bind: the delegated role, per assignment
/// (`kubelighthouse:<hash>:assignable:<role>`, see [`super::user_access::is_assignable`]).
pub fn assignable_name(assignment: &AssignmentRef, role: &str) -> String {
    object_name(assignment, &format!("{ASSIGNABLE_ROLE_PART}{role}"))
}

/// Builds the objects `assignment` must own in `namespaces` for the valid `definition`.
pub fn build(assignment: &AssignmentRef, definition: &ValidDefinition, namespaces: &[String]) -> DesiredRbac {
    let labels = labels(assignment, definition.managing_tenant.as_str());
    let annotations = |role: &str| {
        BTreeMap::from([
            (keys::ASSIGNMENT.to_string(), format!("{}/{}", assignment.namespace, assignment.name)),
            (keys::SOURCE_ROLE.to_string(), role.to_string()),
        ])
    };
    let mut desired = DesiredRbac::default();
    for namespace in namespaces {
        for grant in &definition.grants {
            if grant.subjects.is_empty() {
                continue;
            }
            let name = object_name(assignment, &grant.role);
            let metadata = ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(labels.clone()),
                annotations: Some(annotations(&grant.role)),
                ..Default::default()
            };
            desired.roles.push(Role {
                metadata: metadata.clone(),
                rules: Some(materialized_rules(&grant.rules, assignment, namespace)),
            });
            desired.bindings.push(RoleBinding {
                metadata,
                role_ref: RoleRef { api_group: Some(RBAC_GROUP.into()), kind: "Role".into(), name },
                subjects: Some(grant.subjects.clone()),
            });
        }
        let mut assignable_seen = std::collections::BTreeSet::new();
        for access in &definition.user_access {
            let mut names = Vec::new();
            for grant in &access.assignable {
                let name = assignable_name(assignment, &grant.role);
                names.push(name.clone());
                if assignable_seen.insert(name.clone()) {
                    let mut labels = labels.clone();
                    labels.insert(keys::ASSIGNABLE.to_string(), "true".to_string());
                    desired.roles.push(Role {
                        metadata: ObjectMeta {
                            name: Some(name),
                            namespace: Some(namespace.clone()),
                            labels: Some(labels),
                            annotations: Some(annotations(&grant.role)),
                            ..Default::default()
                        },
                        rules: Some(materialized_rules(&grant.rules, assignment, namespace)),
                    });
                }
            }
            let set: Vec<&str> = access.assignable.iter().map(|g| g.role.as_str()).collect();
            let name = object_name(assignment, &format!("user-access-administrator:{}", short_hash(&set.join(","), 8)));
            let metadata = ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(labels.clone()),
                annotations: Some(annotations(crate::model::catalog::USER_ACCESS_ADMINISTRATOR)),
                ..Default::default()
            };
            desired.roles.push(Role { metadata: metadata.clone(), rules: Some(user_access_rules(&names)) });
            desired.bindings.push(RoleBinding {
                metadata,
                role_ref: RoleRef { api_group: Some(RBAC_GROUP.into()), kind: "Role".into(), name },
                subjects: Some(access.subjects.clone()),
            });
        }
    }
    desired
}

#[cfg(test)]
pub(crate) mod tests {

    use super::*;
    use crate::model::projection::user;
    use crate::model::tenant::Guid;
    use crate::model::validate::Grant;

    fn assignment() -> AssignmentRef {
        AssignmentRef { namespace: "customer-a".into(), name: "contoso".into(), uid: "uid-1".into() }
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn definition(grants: Vec<Grant>) -> ValidDefinition {
        ValidDefinition {
            managing_tenant: Guid::parse("fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6").expect("guid"),
            home_tenant: Guid::parse("11111111-1111-1111-1111-111111111111").expect("guid"),
            subscription: "customer-a".into(),
            grants,
            warnings: vec![],
            narrowed: vec![],
            user_access: vec![],
            eligible: vec![],
        }
    }

    #[test]
    fn one_role_and_binding_per_role_and_namespace() {
        let def = definition(vec![
            Grant {
                role: "view".into(),
                rules: vec![rule(&[""], &["pods"], &["get"])],
                subjects: vec![user("a"), user("b")],
            },
            Grant {
                role: "kubelighthouse:contributor".into(),
                rules: vec![rule(&["apps"], &["deployments"], &["create"])],
                subjects: vec![user("c")],
            },
        ]);
        let d = build(&assignment(), &def, &["customer-a".into(), "customer-a-web".into()]);
        assert_eq!(d.roles.len(), 4);
        assert_eq!(d.bindings.len(), 4);
        let b = &d.bindings[0];
        assert_eq!(b.metadata.namespace.as_deref(), Some("customer-a"));
        assert_eq!(b.role_ref.kind, "Role");
        assert_eq!(b.role_ref.name, b.metadata.name.clone().expect("name"));
        assert_eq!(d.roles[0].rules, Some(vec![rule(&[""], &["pods"], &["get"])]));
        let labels = b.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[keys::ASSIGNMENT_UID], "uid-1");
        assert_eq!(labels[keys::MANAGED_BY_TENANT_ID], "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6");
        assert_eq!(labels[keys::MANAGED_BY], "kube-lighthouse");
    }

    #[test]
    fn names_are_deterministic_and_distinct_per_assignment_and_role() {
        let a = assignment();
        assert_eq!(object_name(&a, "view"), object_name(&a, "view"));
        assert_ne!(object_name(&a, "view"), object_name(&a, "edit"));
        let other = AssignmentRef { namespace: "customer-a-web".into(), ..a.clone() };
        assert_ne!(object_name(&a, "view"), object_name(&other, "view"));
        assert!(object_name(&a, &"r".repeat(400)).len() <= 253);
    }

    #[test]
    fn long_names_get_hashed_label_values() {
        assert_eq!(label_value("contoso"), "contoso");
        let long = "a".repeat(100);
        let v = label_value(&long);
        assert!(v.len() <= 63);
        assert_ne!(v, label_value(&"a".repeat(101)));
    }

    #[test]
    fn delete_role_is_pinned_to_the_granting_assignment() {
        let def = definition(vec![Grant {
            role: "kubelighthouse:registration-assignment-delete".into(),
            rules: vec![rule(&[GROUP], &["registrationassignments"], &["get", "list", "watch", "delete"])],
            subjects: vec![user("a")],
        }]);
        let d = build(&assignment(), &def, &["customer-a".into(), "customer-a-web".into()]);
        let mut pinned = rule(&[GROUP], &["registrationassignments"], &["get", "list", "watch", "delete"]);
        pinned.resource_names = Some(vec!["contoso".into()]);
        assert_eq!(d.roles[0].rules, Some(vec![pinned]));
        assert_eq!(d.roles[1].rules, Some(vec![]), "no assignment access where the assignment does not live");
    }

    #[test]
    fn reading_assignments_is_not_pinned() {
        let r = rule(&[GROUP], &["registrationassignments", "registrationdefinitions"], &["get", "list"]);
        let def = definition(vec![Grant { role: "view".into(), rules: vec![r.clone()], subjects: vec![user("a")] }]);
        assert_eq!(build(&assignment(), &def, &["customer-a".into()]).roles[0].rules, Some(vec![r]));
    }

    #[test]
    fn user_access_administrator_may_bind_exactly_its_assignable_roles() {
        use crate::model::validate::UserAccess;
        let mut def = definition(vec![]);
        def.user_access = vec![UserAccess {
            subjects: vec![user("uaa")],
            assignable: vec![Grant {
                role: "view".into(),
                rules: vec![rule(&[""], &["pods"], &["get"])],
                subjects: vec![],
            }],
        }];
        let d = build(&assignment(), &def, &["customer-a".into()]);
        assert_eq!(d.roles.len(), 2);
        let assignable = &d.roles[0];
        assert_eq!(assignable.metadata.name.as_deref(), Some(assignable_name(&assignment(), "view").as_str()));
        assert_eq!(assignable.metadata.labels.as_ref().expect("labels")[keys::ASSIGNABLE], "true");
        assert_eq!(assignable.rules, Some(vec![rule(&[""], &["pods"], &["get"])]));
        let uaa = &d.roles[1];
        let rules = uaa.rules.clone().expect("rules");
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(rules[0].resources, Some(vec!["rolebindings".to_string()]));
        assert_eq!(rules[0].verbs, ["create"], "never delete, update or patch the customer's bindings");
        assert_eq!(rules[0].resource_names, None);
        assert_eq!(rules[1].resources, Some(vec!["roles".to_string()]));
        assert_eq!(rules[1].verbs, ["bind"]);
        assert_eq!(rules[1].resource_names, Some(vec![assignable_name(&assignment(), "view")]));
        assert_eq!(d.bindings.len(), 1, "nobody is bound to the assignable role by us");
        assert_eq!(d.bindings[0].role_ref.name, uaa.metadata.name.clone().expect("name"));
        assert_eq!(d.bindings[0].subjects, Some(vec![user("uaa")]));
    }

    #[test]
    fn every_label_and_annotation_is_one_drift_detection_compares() {
        use crate::model::validate::UserAccess;
        let mut def = definition(vec![Grant { role: "view".into(), rules: vec![], subjects: vec![user("a")] }]);
        def.user_access = vec![UserAccess {
            subjects: vec![user("uaa")],
            assignable: vec![Grant { role: "view".into(), rules: vec![], subjects: vec![] }],
        }];
        let d = build(&assignment(), &def, &["customer-a".into()]);
        let metas = d.roles.iter().map(|r| &r.metadata).chain(d.bindings.iter().map(|b| &b.metadata));
        for meta in metas {
            for key in meta.labels.iter().flatten().map(|(k, _)| k.as_str()) {
                assert!(keys::MATERIALIZED_LABELS.contains(&key), "label {key} is not in MATERIALIZED_LABELS");
            }
            for key in meta.annotations.iter().flatten().map(|(k, _)| k.as_str()) {
                assert!(
                    keys::MATERIALIZED_ANNOTATIONS.contains(&key),
                    "annotation {key} is not in MATERIALIZED_ANNOTATIONS"
                );
            }
        }
    }

    #[test]
    fn a_grant_without_subjects_materializes_nothing() {
        let def = definition(vec![Grant { role: "view".into(), rules: vec![], subjects: vec![] }]);
        assert_eq!(build(&assignment(), &def, &["customer-a".into()]), DesiredRbac::default());
    }

    #[test]
    fn long_roles_that_share_a_prefix_get_distinct_names() {
        let a = format!("{}-one", "r".repeat(250));
        let b = format!("{}-two", "r".repeat(250));
        let (na, nb) = (object_name(&assignment(), &a), object_name(&assignment(), &b));
        assert_ne!(na, nb);
        assert!(na.len() <= 253 && nb.len() <= 253);
        assert_eq!(object_name(&assignment(), "view"), object_name(&assignment(), "view"));
    }

    /// Whether `v` is a valid Kubernetes label value (at most 63 characters, alphanumeric at
    /// both ends, `-_.` inside).
    pub(crate) fn is_label_value(v: &str) -> bool {
        let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        v.len() <= 63
            && (v.is_empty()
                || (edge(v.chars().next())
                    && edge(v.chars().last())
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))))
    }

    proptest::proptest! {
        /// Any valid assignment (a DNS-subdomain name up to 253 characters in a DNS-label
        /// namespace) and any role name: object names fit 253 bytes and are path segments,
        /// label values fit 63 characters and are valid label values.
        #[test]
        fn generated_names_and_labels_stay_within_kubernetes_limits(
            namespace in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            name in "[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?",
            role in "[^/%]{1,400}",
        ) {
            let assignment = AssignmentRef { namespace, name, uid: "3f2a-uid".into() };
            for object in [object_name(&assignment, &role), assignable_name(&assignment, &role)] {
                proptest::prop_assert!(object.len() <= 253, "{} bytes", object.len());
                proptest::prop_assert!(!object.contains('/') && !object.contains('%'));
            }
            for (key, value) in labels(&assignment, "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6") {
                proptest::prop_assert!(is_label_value(&value), "{key}={value:?}");
            }
        }
    }
}
