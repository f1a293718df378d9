//! The rule classifier: Lighthouse's "role support" rules (seed 002) over RBAC `PolicyRule`s.
//!
//! Every permission a rule grants is a triple (apiGroup, resource, verb), each of which may be
//! a pattern: `*` for any group, resource or verb, `pods/*` for every subresource of pods,
//! `*/scale` for the scale subresource of anything. A triple is judged by asking whether its
//! patterns *cover* any sensitive permission; a role is delegable when no triple does.
//! Filtering (for catalog roles that changed after onboarding) keeps exactly the triples that
//! cover nothing sensitive, so a delegation never gains a rejected permission.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::api::{ACTIVATION_GROUP, GROUP};

const RBAC: &str = "rbac.authorization.k8s.io";
const CORE: &str = "";
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
const READ_VERBS: [&str; 3] = ["get", "list", "watch"];
/// Writes whose response carries the stored object.
const RETURNING_WRITES: [&str; 3] = ["update", "patch", "deletecollection"];
/// Verbs that are escalations wherever they appear (`Microsoft.Authorization/*`).
const PRIVILEGE_VERBS: [&str; 3] = ["bind", "escalate", "impersonate"];

/// Why a permission cannot be delegated. The variant names are the condition reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::EnumIter)]
pub enum Violation {
    /// `*` verbs: Azure's `*/write`, `*/delete`.
    WildcardVerb,
    /// `*` resources: Azure's `*/write`, `*/delete`.
    WildcardResource,
    /// Writes on Roles, RoleBindings, ClusterRoles, ClusterRoleBindings: `Microsoft.Authorization/*/write`.
    RbacWrite,
    /// `bind`, `escalate`, `impersonate`: `Microsoft.Authorization/*`.
    PrivilegeEscalation,
    /// Reading Secrets: a data action.
    SecretRead,
    /// exec, attach, port-forward and proxy: data actions.
    DataAction,
    /// Minting ServiceAccount tokens: acting as another identity.
    TokenCreate,
    /// Writes on namespaces: beyond the delegated scope.
    NamespaceWrite,
    /// Writes on this API group: a delegated identity may never create delegations.
    DelegationWrite,
    /// Writes on `endpoints`, `endpointslices` or `services/status`: traffic of a Service (and
    /// of a shared ingress) sent to backends of another namespace (CVE-2021-25740), or a
    /// load-balancer IP claimed (CVE-2020-8554). Kubernetes removed them from `edit` in 1.22.
    TrafficRedirect,
    /// Writes of a `/status` subresource (other than those judged above): status is "the
    /// domain of the system" (Kubernetes' `edit` writes none); a written status claims an
    /// address (an Ingress's or a Service's load balancer, CVE-2020-8554) or misreports a
    /// workload's health to whatever acts on it.
    StatusWrite,
    /// Any access to just-in-time activations (`activation.kubelighthouse.io`): a catalog role
    /// would show or end every managing tenant's activations in the namespace. A managing
    /// tenant reaches only its own, through the per-activation Roles (docs/just-in-time.md).
    ActivationRecords,
    /// A permission beyond the role's documented class ([`RoleClass`], docs/roles.md): e.g.
    /// any write of Reader, whatever is aggregated into it.
    OutsideRoleClass,
}

impl Violation {
    /// The rule's reason (an Event or condition reason): the variant's name.
    pub fn reason(self) -> &'static str {
        self.into()
    }

    /// What the rule is, in words, beside the Azure rule it mirrors.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::WildcardVerb => "wildcard verb (Azure: */write, */delete)",
            Self::WildcardResource => "wildcard resource (Azure: */write, */delete)",
            Self::RbacWrite => "writes RBAC objects (Azure: Microsoft.Authorization/*/write)",
            Self::PrivilegeEscalation => "bind, escalate or impersonate (Azure: Microsoft.Authorization/*)",
            Self::SecretRead => "reads secrets, or writes them in a way that returns them (Azure: data actions)",
            Self::DataAction => "exec, attach, port-forward or proxy (Azure: data actions)",
            Self::TokenCreate => "creates service account tokens (Azure: data actions)",
            Self::NamespaceWrite => "writes namespaces (outside the delegated scope)",
            Self::DelegationWrite => "writes delegations (a delegated identity may never create delegations)",
            Self::TrafficRedirect => {
                "writes endpoints, endpointslices or a Service's status (traffic sent to another namespace's backends, CVE-2021-25740)"
            }
            Self::StatusWrite => "writes a status subresource (the domain of the system; a written load-balancer status claims an address, CVE-2020-8554)",
            Self::ActivationRecords => {
                "reads or writes just-in-time activations (every managing tenant's requests, justifications and reviews)"
            }
            Self::OutsideRoleClass => "outside what the role is documented to grant (docs/roles.md, role classes)",
        }
    }
}

/// One rejected permission: which rule of the role grants it and why it is rejected.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Index into the role's `rules`.
    pub rule: usize,
    /// Why the permission is rejected.
    pub violation: Violation,
    /// The offending permission, e.g. `get secrets`.
    pub permission: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rules[{}] grants {}: {}", self.rule, self.permission, self.violation.explanation())
    }
}

/// The verdict on a role's rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Classification {
    /// Rejected permissions; empty means the role is delegable.
    pub findings: Vec<Finding>,
    /// Indirect data exposure of a delegable role (seed 002's `listKeys` caveat).
    pub warnings: Vec<String>,
    /// The namespaced rules with every rejected permission removed: what a Role may hold.
    pub delegable_rules: Vec<PolicyRule>,
}

impl Classification {
    /// Whether the role holds no rejected permission: delegable as it is.
    pub fn is_delegable(&self) -> bool {
        self.findings.is_empty()
    }

    /// Distinct violations, in a stable order.
    pub fn violations(&self) -> BTreeSet<Violation> {
        self.findings.iter().map(|f| f.violation).collect()
    }
}

// --- pattern matching ---------------------------------------------------------------------

fn group_covers(pattern: &str, group: &str) -> bool {
    pattern == "*" || pattern == group
}

fn verb_covers(pattern: &str, verb: &str) -> bool {
    pattern == "*" || pattern == verb
}

/// RBAC resource matching: `*` matches everything including subresources; `r/*` matches every
/// subresource of `r` (not `r` itself); `*/s` matches subresource `s` of anything.
fn resource_covers(pattern: &str, resource: &str) -> bool {
    if pattern == "*" || pattern == resource {
        return true;
    }
    let (Some((p_base, p_sub)), Some((r_base, r_sub))) = (pattern.split_once('/'), resource.split_once('/')) else {
        return false;
    };
    (p_base == "*" || p_base == r_base) && (p_sub == "*" || p_sub == r_sub)
}

// --- the sensitive permissions --------------------------------------------------------------

/// A concrete sensitive permission set: any of `verbs` (None: every verb) on any of `resources`.
struct Sensitive {
    group: &'static str,
    resources: &'static [&'static str],
    verbs: Option<&'static [&'static str]>,
    violation: Violation,
}

const SENSITIVE: &[Sensitive] = &[
    Sensitive {
        group: RBAC,
        resources: &["roles", "rolebindings", "clusterroles", "clusterrolebindings"],
        verbs: Some(&WRITE_VERBS),
        violation: Violation::RbacWrite,
    },
    Sensitive {
        group: RBAC,
        resources: &["roles", "clusterroles"],
        verbs: Some(&["bind", "escalate"]),
        violation: Violation::PrivilegeEscalation,
    },
    Sensitive {
        group: CORE,
        resources: &["users", "groups", "serviceaccounts"],
        verbs: Some(&["impersonate"]),
        violation: Violation::PrivilegeEscalation,
    },
    Sensitive {
        group: "authentication.k8s.io",
        resources: &["uids", "userextras/scopes"],
        verbs: Some(&["impersonate"]),
        violation: Violation::PrivilegeEscalation,
    },
    // Reads, and the writes whose response carries the stored Secret: an `update` or a `patch`
    // (an empty patch returns the whole Secret) and a `deletecollection` (returns the deleted
    // items). `create` returns only what was sent; `delete` returns a Status.
    Sensitive {
        group: CORE,
        resources: &["secrets"],
        verbs: Some(&[
            READ_VERBS[0],
            READ_VERBS[1],
            READ_VERBS[2],
            RETURNING_WRITES[0],
            RETURNING_WRITES[1],
            RETURNING_WRITES[2],
        ]),
        violation: Violation::SecretRead,
    },
    Sensitive {
        group: CORE,
        resources: &["pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "services/proxy", "nodes/proxy"],
        verbs: None,
        violation: Violation::DataAction,
    },
    // A debug container runs a command of the writer's choosing in a running pod: exec.
    Sensitive {
        group: CORE,
        resources: &["pods/ephemeralcontainers"],
        verbs: Some(&WRITE_VERBS),
        violation: Violation::DataAction,
    },
    // CVE-2021-25740: Endpoints and EndpointSlices written by hand point a Service, and a
    // shared ingress in front of it, at another namespace's pods; CVE-2020-8554: a written
    // `status.loadBalancer` claims an IP. Kubernetes dropped endpoint writes from `edit` in
    // 1.22 and never granted status writes to it.
    Sensitive {
        group: CORE,
        resources: &["endpoints", "services/status"],
        verbs: Some(&WRITE_VERBS),
        violation: Violation::TrafficRedirect,
    },
    Sensitive {
        group: "discovery.k8s.io",
        resources: &["endpointslices"],
        verbs: Some(&WRITE_VERBS),
        violation: Violation::TrafficRedirect,
    },
    Sensitive {
        group: CORE,
        resources: &["serviceaccounts/token"],
        verbs: Some(&["create"]),
        violation: Violation::TokenCreate,
    },
    Sensitive {
        group: CORE,
        resources: &["namespaces", "namespaces/status", "namespaces/finalize"],
        verbs: Some(&WRITE_VERBS),
        violation: Violation::NamespaceWrite,
    },
    Sensitive {
        group: GROUP,
        resources: &["registrationdefinitions", "registrationdefinitions/status", "registrationassignments/status"],
        verbs: Some(&WRITE_VERBS),
        violation: Violation::DelegationWrite,
    },
    // Deleting an assignment is the one write allowed: it is how the Delete role removes
    // access (seed 002 best practice), and it can only take access away.
    Sensitive {
        group: GROUP,
        resources: &["registrationassignments"],
        verbs: Some(&["create", "update", "patch", "deletecollection"]),
        violation: Violation::DelegationWrite,
    },
];

/// The activation group's kinds: no catalog role may touch them, whatever the verb.
const ACTIVATION_RESOURCES: [&str; 2] = ["roleactivations", "activationreviews"];

/// This group's resources, judged by [`SENSITIVE`]; any other resource of the group is not.
const KNOWN_DELEGATION_RESOURCES: [&str; 4] = [
    "registrationdefinitions",
    "registrationdefinitions/status",
    "registrationassignments",
    "registrationassignments/status",
];

// --- role classes ---------------------------------------------------------------------------

/// What a catalog role is documented to grant (docs/roles.md), whatever its ClusterRole comes
/// to hold: an aggregated ClusterRole, an edit, or a later Kubernetes version. A permission
/// outside the class is an [`Violation::OutsideRoleClass`] finding, so it is withheld from an
/// accepted delegation and refused for a new one, as any rejected permission is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleClass {
    /// Only the classifier's rules: Contributor, Kubernetes' `edit`, `admin`, `cluster-admin`
    /// and any other catalog role.
    Unrestricted,
    /// `get`, `list` and `watch` only: Reader and Kubernetes' `view`.
    ReadOnly,
    /// Reads, and writes of exactly these (group, resources); `None`: every resource of the
    /// group. A listed resource covers itself and its `scale` subresource only.
    WritesOnly(&'static [(&'static str, Option<&'static [&'static str]>)]),
    /// `get`, `list`, `watch` and `delete` of `registrationassignments`, nothing else:
    /// Managed Services Registration Assignment Delete Role.
    AssignmentDelete,
}

impl RoleClass {
    /// Whether the class allows every permission the patterns cover. Patterns are allowed
    /// only where the class allows everything they could cover (a `*` verb is never a read;
    /// a `*` group or resource never a listed write), so filtering never widens.
    pub fn permits(self, group: &str, resource: &str, verb: &str) -> bool {
        let read = READ_VERBS.contains(&verb);
        match self {
            RoleClass::Unrestricted => true,
            RoleClass::ReadOnly => read,
            RoleClass::AssignmentDelete => {
                group == GROUP && resource == "registrationassignments" && (read || verb == "delete")
            }
            RoleClass::WritesOnly(writes) => {
                read || writes.iter().any(|(g, resources)| {
                    *g == group
                        && match resources {
                            None => !resource.contains('*'),
                            Some(listed) => listed.iter().any(|r| {
                                resource == *r || resource.strip_suffix("/scale").is_some_and(|base| base == *r)
                            }),
                        }
                })
            }
        }
    }
}

/// Every violation of one (group, resource, verb) triple of patterns.
fn judge(class: RoleClass, group: &str, resource: &str, verb: &str) -> BTreeSet<Violation> {
    let mut found = BTreeSet::new();
    if !class.permits(group, resource, verb) {
        found.insert(Violation::OutsideRoleClass);
    }
    if verb == "*" {
        found.insert(Violation::WildcardVerb);
    }
    if resource == "*" {
        found.insert(Violation::WildcardResource);
    }
    if PRIVILEGE_VERBS.contains(&verb) {
        found.insert(Violation::PrivilegeEscalation);
    }
    for s in SENSITIVE {
        if !group_covers(group, s.group) {
            continue;
        }
        let verb_hit = match s.verbs {
            None => true,
            Some(verbs) => verbs.iter().any(|v| verb_covers(verb, v)),
        };
        if verb_hit && s.resources.iter().any(|r| resource_covers(resource, r)) {
            found.insert(s.violation);
        }
    }
    // Resources of this group not listed above (future kinds) are writes on delegations too,
    // also through a `*` group (fuzzing found `* / widgets / create` kept, which would write
    // a `widgets` kind of this group).
    if group_covers(group, GROUP)
        && WRITE_VERBS.iter().any(|v| verb_covers(verb, v))
        && !KNOWN_DELEGATION_RESOURCES.contains(&resource)
    {
        found.insert(Violation::DelegationWrite);
    }
    // Any other status write (pods/status, ingresses/status, deployments/status, ...), also
    // through `r/*` or `*/status`; the kinds judged above keep their own reason.
    let writes = WRITE_VERBS.iter().any(|v| verb_covers(verb, v));
    let status = resource.ends_with("/status") || resource.ends_with("/*");
    let judged_above =
        [Violation::DelegationWrite, Violation::NamespaceWrite, Violation::TrafficRedirect, Violation::DataAction];
    if writes && status && !judged_above.iter().any(|v| found.contains(v)) {
        found.insert(Violation::StatusWrite);
    }
    // Activations are reached per object, never through a catalog role: any verb on the
    // group's kinds (and their subresources), and anything named in the group itself (a
    // future kind of it), whoever aggregated it into the role.
    let activation_kind = ACTIVATION_RESOURCES
        .iter()
        .any(|r| resource_covers(resource, r) || resource_covers(resource, &format!("{r}/status")));
    if group == ACTIVATION_GROUP || (group_covers(group, ACTIVATION_GROUP) && activation_kind) {
        found.insert(Violation::ActivationRecords);
    }
    found
}

// --- namespaced filtering and warnings ------------------------------------------------------

/// Cluster-scoped resources: meaningless in a namespaced Role, so not copied into one.
const CLUSTER_SCOPED: &[&str] = &[
    "nodes",
    "persistentvolumes",
    "storageclasses",
    "clusterroles",
    "clusterrolebindings",
    "customresourcedefinitions",
    "apiservices",
    "priorityclasses",
    "certificatesigningrequests",
    "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations",
    "validatingadmissionpolicies",
    "validatingadmissionpolicybindings",
    "csidrivers",
    "csinodes",
    "volumeattachments",
    "runtimeclasses",
    "ingressclasses",
    "componentstatuses",
    "tokenreviews",
    "subjectaccessreviews",
    "selfsubjectaccessreviews",
    "selfsubjectrulesreviews",
    "podsecuritypolicies",
    "flowschemas",
    "prioritylevelconfigurations",
];

fn is_cluster_scoped(resource: &str) -> bool {
    let base = resource.split('/').next().unwrap_or(resource);
    CLUSTER_SCOPED.contains(&base)
}

/// Workloads: whoever creates or changes them chooses what their pods mount.
const WORKLOADS: &[(&str, &str)] = &[
    (CORE, "pods"),
    (CORE, "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
];

const WORKLOAD_WARNING: &str = "can create or change workloads, whose pods can mount the namespace's Secrets and ServiceAccount tokens: data is exposed indirectly (seed 002: listKeys)";
const CONFIGMAP_WARNING: &str =
    "can read ConfigMaps: configuration that holds credentials is exposed (keep secrets in Secrets)";
const INGRESS_WARNING: &str = "can write Ingresses: an ingress controller that honours configuration snippets in annotations (ingress-nginx's allow-snippet-annotations, CVE-2021-25742) runs them with its own credentials; keep snippets disabled";

fn exposure(group: &str, resource: &str, verb: &str) -> Option<&'static str> {
    let writes_workload = ["create", "update", "patch"].iter().any(|v| verb_covers(verb, v))
        && WORKLOADS.iter().any(|(g, r)| group_covers(group, g) && resource_covers(resource, r));
    if writes_workload {
        return Some(WORKLOAD_WARNING);
    }
    let writes_ingress = ["create", "update", "patch"].iter().any(|v| verb_covers(verb, v))
        && ["networking.k8s.io", "extensions"].iter().any(|g| group_covers(group, g))
        && resource_covers(resource, "ingresses");
    if writes_ingress {
        return Some(INGRESS_WARNING);
    }
    let reads_config = ["get", "list"].iter().any(|v| verb_covers(verb, v))
        && group_covers(group, CORE)
        && resource_covers(resource, "configmaps");
    reads_config.then_some(CONFIGMAP_WARNING)
}

fn describe(group: &str, resource: &str, verb: &str) -> String {
    if group.is_empty() {
        format!("{verb} {resource}")
    } else {
        format!("{verb} {group}/{resource}")
    }
}

/// Judges a role's rules with no class beyond the classifier's ([`RoleClass::Unrestricted`]).
pub fn classify(rules: &[PolicyRule]) -> Classification {
    classify_as(rules, RoleClass::Unrestricted)
}

/// Judges a role's rules as a role of `class`: every rejected permission (the classifier's
/// and those outside the class), the warnings of what is allowed, and the namespaced rules
/// with the rejected permissions removed.
pub fn classify_as(rules: &[PolicyRule], class: RoleClass) -> Classification {
    let mut out = Classification::default();
    let mut warnings = BTreeSet::new();
    for (index, rule) in rules.iter().enumerate() {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let non_resource = rule.non_resource_urls.as_deref().unwrap_or_default();
        if !non_resource.is_empty() && rule.verbs.iter().any(|v| v == "*") {
            out.findings.push(Finding {
                rule: index,
                violation: Violation::WildcardVerb,
                permission: format!("* on {}", non_resource.join(",")),
            });
        }
        // Allowed verbs per (group, resource), in rule order, for the namespaced copy.
        let mut kept: Vec<(&str, &str, Vec<String>)> = Vec::new();
        let mut everything_kept = non_resource.is_empty();
        for group in groups {
            for resource in resources {
                let mut verbs = Vec::new();
                for verb in &rule.verbs {
                    let violations = judge(class, group, resource, verb);
                    if violations.is_empty() {
                        if let Some(w) = exposure(group, resource, verb) {
                            warnings.insert(w);
                        }
                        verbs.push(verb.clone());
                    } else {
                        let permission = describe(group, resource, verb);
                        out.findings.extend(violations.into_iter().map(|violation| Finding {
                            rule: index,
                            violation,
                            permission: permission.clone(),
                        }));
                    }
                }
                if is_cluster_scoped(resource) || verbs.len() != rule.verbs.len() {
                    everything_kept = false;
                }
                if !is_cluster_scoped(resource) && !verbs.is_empty() {
                    kept.push((group, resource, verbs));
                }
            }
        }
        if everything_kept && !groups.is_empty() && !resources.is_empty() {
            out.delegable_rules.push(PolicyRule { non_resource_urls: None, ..rule.clone() });
        } else {
            out.delegable_rules.extend(regroup(&kept, rule.resource_names.clone()));
        }
    }
    out.findings.sort();
    out.findings.dedup();
    out.warnings = warnings.into_iter().map(String::from).collect();
    out
}

/// Rebuilds rules from per-(group, resource) verb lists without widening them: resources are
/// merged only within one group and only when their verb lists are identical.
fn regroup(kept: &[(&str, &str, Vec<String>)], resource_names: Option<Vec<String>>) -> Vec<PolicyRule> {
    let mut rules: Vec<PolicyRule> = Vec::new();
    for (group, resource, verbs) in kept {
        let existing =
            rules.iter_mut().find(|r| r.api_groups.as_deref() == Some(&[group.to_string()][..]) && &r.verbs == verbs);
        match existing {
            Some(rule) => rule.resources.get_or_insert_with(Vec::new).push(resource.to_string()),
            None => rules.push(PolicyRule {
                api_groups: Some(vec![group.to_string()]),
                resources: Some(vec![resource.to_string()]),
                verbs: verbs.clone(),
                resource_names: resource_names.clone(),
                non_resource_urls: None,
            }),
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use Violation::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn violations_of(rules: &[PolicyRule]) -> Vec<Violation> {
        classify(rules).violations().into_iter().collect()
    }

    #[test]
    fn each_sensitive_permission_is_rejected_for_its_reason() {
        type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str], &'a [Violation]);
        let cases: &[Case] = &[
            (&[""], &["pods"], &["*"], &[WildcardVerb]),
            (&["apps"], &["*"], &["get"], &[WildcardResource]),
            (
                &["*"],
                &["*"],
                &["*"],
                &[
                    WildcardVerb,
                    WildcardResource,
                    RbacWrite,
                    PrivilegeEscalation,
                    SecretRead,
                    DataAction,
                    TokenCreate,
                    NamespaceWrite,
                    DelegationWrite,
                    TrafficRedirect,
                    ActivationRecords,
                ],
            ),
            // Activations: every managing tenant's, whatever the verb, also through a `*` group.
            (&[ACTIVATION_GROUP], &["roleactivations"], &["get"], &[ActivationRecords]),
            (&[ACTIVATION_GROUP], &["roleactivations"], &["list", "watch"], &[ActivationRecords]),
            (&[ACTIVATION_GROUP], &["activationreviews"], &["create"], &[ActivationRecords]),
            (&[ACTIVATION_GROUP], &["roleactivations/status"], &["get"], &[ActivationRecords]),
            (&[ACTIVATION_GROUP], &["widgets"], &["get"], &[ActivationRecords]),
            (&["*"], &["roleactivations"], &["list"], &[ActivationRecords]),
            // Status is the system's: any other status write, also through `r/*`.
            (&[""], &["pods/status"], &["update"], &[StatusWrite]),
            (&["networking.k8s.io"], &["ingresses/status"], &["patch"], &[StatusWrite]),
            (&["apps"], &["deployments/status", "deployments/*"], &["update"], &[StatusWrite]),
            (&["apps"], &["*/status"], &["create"], &[StatusWrite]),
            (&[RBAC], &["rolebindings"], &["create"], &[RbacWrite]),
            (&[RBAC], &["roles"], &["update"], &[RbacWrite]),
            (&[RBAC], &["clusterroles"], &["delete"], &[RbacWrite]),
            (&[RBAC], &["clusterrolebindings"], &["patch"], &[RbacWrite]),
            (&[RBAC], &["roles"], &["bind"], &[PrivilegeEscalation]),
            (&[RBAC], &["clusterroles"], &["escalate"], &[PrivilegeEscalation]),
            (&[""], &["serviceaccounts"], &["impersonate"], &[PrivilegeEscalation]),
            (&[""], &["users", "groups"], &["impersonate"], &[PrivilegeEscalation]),
            (&["authentication.k8s.io"], &["userextras/scopes"], &["impersonate"], &[PrivilegeEscalation]),
            (&["example.com"], &["widgets"], &["impersonate"], &[PrivilegeEscalation]),
            (&[""], &["secrets"], &["get"], &[SecretRead]),
            (&[""], &["secrets"], &["list"], &[SecretRead]),
            (&[""], &["secrets"], &["watch"], &[SecretRead]),
            // Their responses carry the Secret's data.
            (&[""], &["secrets"], &["update"], &[SecretRead]),
            (&[""], &["secrets"], &["patch"], &[SecretRead]),
            (&[""], &["secrets"], &["deletecollection"], &[SecretRead]),
            (&[""], &["pods/exec"], &["create"], &[DataAction]),
            (&[""], &["pods/exec"], &["get"], &[DataAction]),
            (&[""], &["pods/attach"], &["create"], &[DataAction]),
            (&[""], &["pods/portforward"], &["create"], &[DataAction]),
            (&[""], &["pods/proxy"], &["get"], &[DataAction]),
            (&[""], &["services/proxy"], &["get"], &[DataAction]),
            (&[""], &["nodes/proxy"], &["get"], &[DataAction]),
            (&[""], &["serviceaccounts/token"], &["create"], &[TokenCreate]),
            (&[""], &["namespaces"], &["create"], &[NamespaceWrite]),
            (&[""], &["namespaces"], &["delete"], &[NamespaceWrite]),
            (&[""], &["namespaces/finalize"], &["update"], &[NamespaceWrite]),
            (&[GROUP], &["registrationdefinitions"], &["create"], &[DelegationWrite]),
            (&[GROUP], &["registrationassignments"], &["create"], &[DelegationWrite]),
            (&[GROUP], &["registrationassignments"], &["patch"], &[DelegationWrite]),
            (&[GROUP], &["registrationassignments"], &["deletecollection"], &[DelegationWrite]),
            (&[GROUP], &["registrationassignments/status"], &["update"], &[DelegationWrite]),
            (&[GROUP], &["futurekinds"], &["create"], &[DelegationWrite]),
            // Found by the property below: a `*` group covers this group's future kinds too.
            (&["*"], &["futurekinds"], &["create"], &[DelegationWrite]),
            (&["*"], &["pods/log"], &["patch"], &[DelegationWrite]),
            // Kubernetes' hardening of its own roles since (CVE-2021-25740, CVE-2020-8554,
            // ephemeral containers): one kind each, whatever role holds them.
            (&[""], &["endpoints"], &["create"], &[TrafficRedirect]),
            (&[""], &["endpoints"], &["patch"], &[TrafficRedirect]),
            (&[""], &["endpoints"], &["deletecollection"], &[TrafficRedirect]),
            (&["discovery.k8s.io"], &["endpointslices"], &["update"], &[TrafficRedirect]),
            (&[""], &["services/status"], &["patch"], &[TrafficRedirect]),
            (&[""], &["*/status"], &["update"], &[NamespaceWrite, TrafficRedirect]),
            (&[""], &["pods/ephemeralcontainers"], &["patch"], &[DataAction]),
            (&[""], &["pods/ephemeralcontainers"], &["update"], &[DataAction]),
        ];
        for (groups, resources, verbs, expected) in cases {
            let got = violations_of(&[rule(groups, resources, verbs)]);
            assert_eq!(&got, expected, "{groups:?} {resources:?} {verbs:?}");
        }
    }

    #[test]
    fn harmless_permissions_pass() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[""], &["pods", "services", "configmaps", "events"], &["get", "list", "watch"]),
            (&[""], &["pods/log"], &["get"]),
            (&[""], &["secrets"], &["create", "delete"]),
            (&[""], &["serviceaccounts"], &["get", "list"]),
            (&[""], &["serviceaccounts/token"], &["get"]),
            (&[""], &["namespaces"], &["get", "list", "watch"]),
            (&[RBAC], &["roles", "rolebindings"], &["get", "list", "watch"]),
            (&["apps"], &["deployments", "deployments/scale"], &["create", "update", "patch", "delete"]),
            (&["apps"], &["secrets"], &["get"]),
            (&[GROUP], &["registrationassignments"], &["get", "list", "watch", "delete"]),
            (&[GROUP], &["registrationdefinitions"], &["get", "list", "watch"]),
            (&["*"], &["deployments", "pods/log"], &["get", "list", "watch"]),
            (&["", "discovery.k8s.io"], &["endpoints", "endpointslices", "services/status"], &["get", "list", "watch"]),
            (&[""], &["pods/ephemeralcontainers"], &["get"]),
            (&[""], &["pods/status", "resourcequotas/status"], &["get", "list", "watch"]),
            (&[""], &["services"], &["create", "update", "patch", "delete"]),
        ];
        for (groups, resources, verbs) in cases {
            let c = classify(&[rule(groups, resources, verbs)]);
            assert!(c.is_delegable(), "{groups:?} {resources:?} {verbs:?}: {:?}", c.findings);
        }
    }

    #[test]
    fn wildcard_groups_subresources_and_verbs_are_expanded() {
        // `*` group reaches the core group's secrets.
        assert_eq!(violations_of(&[rule(&["*"], &["secrets"], &["get"])]), [SecretRead]);
        // `pods/*` covers exec, attach, port-forward and proxy.
        assert_eq!(violations_of(&[rule(&[""], &["pods/*"], &["get"])]), [DataAction]);
        // `*/exec`, `*/proxy` and `*/token` reach their subresources on any resource.
        assert_eq!(violations_of(&[rule(&[""], &["*/exec"], &["create"])]), [DataAction]);
        assert_eq!(violations_of(&[rule(&[""], &["*/proxy"], &["get"])]), [DataAction]);
        assert_eq!(violations_of(&[rule(&[""], &["*/token"], &["create"])]), [TokenCreate]);
        // `*/scale` touches nothing sensitive.
        assert!(classify(&[rule(&["apps"], &["*/scale"], &["update"])]).is_delegable());
        // A `*` verb on a sensitive resource reports the wildcard and what it reaches.
        assert_eq!(violations_of(&[rule(&[""], &["secrets"], &["*"])]), [WildcardVerb, SecretRead]);
        assert_eq!(violations_of(&[rule(&[RBAC], &["roles"], &["*"])]), [WildcardVerb, RbacWrite, PrivilegeEscalation]);
        // `pods/*` does not cover pods itself, so pod writes stay allowed.
        assert!(classify(&[rule(&[""], &["pods/*"], &["patch"])]).findings.iter().all(|f| f.violation == DataAction));
    }

    #[test]
    fn resource_names_do_not_make_a_sensitive_permission_acceptable() {
        let mut r = rule(&[""], &["secrets"], &["get"]);
        r.resource_names = Some(vec!["db-password".into()]);
        assert_eq!(violations_of(&[r]), [SecretRead]);
    }

    #[test]
    fn findings_name_the_rule_and_the_permission() {
        let c = classify(&[rule(&[""], &["pods"], &["get"]), rule(&[""], &["secrets"], &["get", "list"])]);
        let text: Vec<String> = c.findings.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            text,
            [
                "rules[1] grants get secrets: reads secrets, or writes them in a way that returns them (Azure: data actions)",
                "rules[1] grants list secrets: reads secrets, or writes them in a way that returns them (Azure: data actions)"
            ]
        );
    }

    #[test]
    fn filtering_keeps_exactly_the_allowed_permissions() {
        let c = classify(&[
            rule(&[""], &["pods", "secrets"], &["get", "list"]),
            rule(&[""], &["configmaps"], &["*"]),
            rule(&["apps"], &["deployments"], &["get", "create"]),
        ]);
        assert_eq!(
            c.delegable_rules,
            [rule(&[""], &["pods"], &["get", "list"]), rule(&["apps"], &["deployments"], &["get", "create"])]
        );
    }

    #[test]
    fn filtering_a_wildcard_group_keeps_only_its_reads() {
        // Writes through `*` would reach kinds this group may serve one day: dropped.
        let c = classify(&[rule(&["*"], &["deployments"], &["get", "create"])]);
        assert_eq!(c.violations().into_iter().collect::<Vec<_>>(), [DelegationWrite]);
        assert_eq!(c.delegable_rules, [rule(&["*"], &["deployments"], &["get"])]);
    }

    #[test]
    fn filtering_never_widens_across_groups() {
        let c = classify(&[rule(&["", "apps"], &["secrets", "deployments"], &["get"])]);
        // ("", secrets) is dropped; ("", deployments), ("apps", secrets), ("apps", deployments)
        // stay, each only within its own group.
        assert_eq!(
            c.delegable_rules,
            [rule(&[""], &["deployments"], &["get"]), rule(&["apps"], &["secrets", "deployments"], &["get"])]
        );
    }

    #[test]
    fn filtering_keeps_resource_names() {
        let mut r = rule(&[""], &["configmaps", "secrets"], &["get"]);
        r.resource_names = Some(vec!["a".into()]);
        let c = classify(&[r]);
        assert_eq!(c.delegable_rules.len(), 1);
        assert_eq!(c.delegable_rules[0].resource_names, Some(vec!["a".to_string()]));
    }

    #[test]
    fn cluster_scoped_and_non_resource_rules_are_not_copied() {
        let mut discovery = PolicyRule {
            non_resource_urls: Some(vec!["/healthz".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        };
        let c = classify(&[
            rule(&[""], &["nodes", "pods"], &["get"]),
            rule(&["storage.k8s.io"], &["storageclasses"], &["get"]),
            discovery.clone(),
        ]);
        assert!(c.is_delegable());
        assert_eq!(c.delegable_rules, [rule(&[""], &["pods"], &["get"])]);
        discovery.verbs = vec!["*".into()];
        assert_eq!(violations_of(&[discovery]), [WildcardVerb]);
    }

    #[test]
    fn untouched_rules_are_copied_as_they_are() {
        let r = rule(&["", "apps"], &["pods", "deployments"], &["get", "list", "watch"]);
        assert_eq!(classify(std::slice::from_ref(&r)).delegable_rules, [r]);
    }

    const VM: RoleClass = RoleClass::WritesOnly(&[("", Some(&["pods"])), ("apps", Some(&["deployments"]))]);

    #[test]
    fn a_role_class_holds_whatever_the_role_comes_to_hold() {
        let class_violations = |class, rules: &[PolicyRule]| -> Vec<Violation> {
            classify_as(rules, class).violations().into_iter().collect()
        };
        // Reader: any write, any other verb, any `*` verb is outside the class.
        for verbs in [&["create"][..], &["update"], &["patch"], &["delete"], &["deletecollection"], &["use"]] {
            let aggregated = rule(&[""], &["configmaps"], verbs);
            assert_eq!(class_violations(RoleClass::ReadOnly, &[aggregated]), [OutsideRoleClass], "{verbs:?}");
        }
        assert!(classify_as(&[rule(&["example.com"], &["widgets"], &["get", "list", "watch"])], RoleClass::ReadOnly)
            .is_delegable());
        let c =
            classify_as(&[rule(&["", "example.com"], &["pods", "widgets"], &["get", "create"])], RoleClass::ReadOnly);
        assert_eq!(
            c.delegable_rules,
            [rule(&[""], &["pods", "widgets"], &["get"]), rule(&["example.com"], &["pods", "widgets"], &["get"])]
        );

        // The Delete role: assignments only, and only get/list/watch/delete.
        let delete = rule(&[GROUP], &["registrationassignments"], &["get", "list", "watch", "delete"]);
        assert!(classify_as(std::slice::from_ref(&delete), RoleClass::AssignmentDelete).is_delegable());
        for extra in [rule(&[""], &["pods"], &["get"]), rule(&[GROUP], &["registrationdefinitions"], &["get"])] {
            assert_eq!(class_violations(RoleClass::AssignmentDelete, &[extra]), [OutsideRoleClass]);
        }
        assert_eq!(
            class_violations(RoleClass::AssignmentDelete, &[rule(&["*"], &["registrationassignments"], &["delete"])]),
            [OutsideRoleClass]
        );

        // Writes only where listed: the resource itself and its scale subresource.
        assert!(classify_as(&[rule(&["apps"], &["deployments", "deployments/scale"], &["get", "patch"])], VM)
            .is_delegable());
        for (groups, resources) in [
            (&[""][..], &["configmaps"][..]),
            (&["apps"], &["deployments/rollback"]),
            (&[""], &["pods/status"]),
            (&["*"], &["deployments"]),
            (&["batch"], &["deployments"]),
        ] {
            let found = class_violations(VM, &[rule(groups, resources, &["patch"])]);
            assert!(found.contains(&OutsideRoleClass), "{groups:?} {resources:?}: {found:?}");
            assert!(classify_as(&[rule(groups, resources, &["get"])], VM).findings.is_empty());
        }
        let monitoring = RoleClass::WritesOnly(&[("monitoring.coreos.com", None)]);
        assert!(classify_as(&[rule(&["monitoring.coreos.com"], &["servicemonitors"], &["create"])], monitoring)
            .is_delegable());
        assert_eq!(
            class_violations(monitoring, &[rule(&["monitoring.coreos.com"], &["*"], &["create"])]),
            [WildcardResource, OutsideRoleClass]
        );
    }

    #[test]
    fn ingress_writes_warn_of_snippets() {
        let c = classify(&[rule(&["networking.k8s.io"], &["ingresses"], &["create"])]);
        assert!(c.is_delegable());
        assert_eq!(c.warnings, [INGRESS_WARNING]);
        assert!(classify(&[rule(&["networking.k8s.io"], &["ingresses"], &["get"])]).warnings.is_empty());
    }

    #[test]
    fn workload_writes_and_configmap_reads_warn() {
        let c = classify(&[rule(&["apps"], &["deployments"], &["create"])]);
        assert!(c.is_delegable());
        assert_eq!(c.warnings, [WORKLOAD_WARNING]);
        let c = classify(&[rule(&[""], &["configmaps"], &["get"])]);
        assert_eq!(c.warnings, [CONFIGMAP_WARNING]);
        assert!(classify(&[rule(&[""], &["pods"], &["get"])]).warnings.is_empty());
    }

    // --- properties ---------------------------------------------------------------------------

    /// Kubernetes' RBAC evaluation of one request (pkg/apis/rbac/v1 evaluation_helpers.go),
    /// written from Kubernetes' rules rather than the classifier's: `*` matches any group,
    /// verb or resource, `*/sub` the subresource `sub` of any resource, nothing else is a
    /// pattern; a rule with resource names matches only those names.
    fn rbac_allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
        let subresource = resource.split_once('/').map_or("", |(_, s)| s);
        rules.iter().any(|r| {
            let resource_ok = r.resources.iter().flatten().any(|p| {
                p == "*" || p == resource || (!subresource.is_empty() && p.strip_prefix("*/") == Some(subresource))
            });
            let name_ok = match r.resource_names.as_deref() {
                None | Some([]) => true,
                Some(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
            };
            r.verbs.iter().any(|v| v == "*" || v == verb)
                && r.api_groups.iter().flatten().any(|g| g == "*" || g == group)
                && resource_ok
                && name_ok
        })
    }

    const GROUPS: &[&str] = &[
        "",
        "*",
        "apps",
        "batch",
        RBAC,
        "authentication.k8s.io",
        GROUP,
        "storage.k8s.io",
        "example.com",
        "discovery.k8s.io",
    ];
    const RESOURCES: &[&str] = &[
        "*",
        "*/*",
        "pods",
        "pods/*",
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "pods/proxy",
        "pods/log",
        "*/exec",
        "*/proxy",
        "*/token",
        "*/scale",
        "secrets",
        "secrets/*",
        "configmaps",
        "serviceaccounts",
        "serviceaccounts/token",
        "users",
        "groups",
        "uids",
        "userextras/scopes",
        "namespaces",
        "namespaces/finalize",
        "roles",
        "rolebindings",
        "clusterroles",
        "clusterrolebindings",
        "registrationdefinitions",
        "registrationassignments",
        "registrationassignments/status",
        "nodes",
        "nodes/proxy",
        "services/proxy",
        "deployments",
        "deployments/scale",
        "deployments/rollback",
        "widgets",
        "endpoints",
        "endpointslices",
        "services/status",
        "*/status",
        "pods/ephemeralcontainers",
    ];
    const VERBS: &[&str] = &[
        "*",
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "bind",
        "escalate",
        "impersonate",
        "use",
    ];
    const NAMES: &[&str] = &["db-password", "contoso", "*"];

    /// A value of `table` or, now and then, any string.
    fn token(table: &'static [&'static str]) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![9 => proptest::sample::select(table).prop_map(str::to_string), 1 => "[a-z*/]{0,8}"]
    }

    fn policy_rule() -> impl proptest::strategy::Strategy<Value = PolicyRule> {
        use proptest::collection::vec;
        use proptest::option::of;
        use proptest::prelude::*;
        (
            of(vec(token(GROUPS), 0..3)),
            of(vec(token(RESOURCES), 0..4)),
            vec(token(VERBS), 0..4),
            proptest::option::weighted(0.2, vec(token(NAMES), 0..2)),
            proptest::option::weighted(0.1, vec(Just("/healthz".to_string()), 1..2)),
        )
            .prop_map(|(api_groups, resources, verbs, resource_names, non_resource_urls)| PolicyRule {
                api_groups,
                resources,
                verbs,
                resource_names,
                non_resource_urls,
            })
    }

    fn rejected(class: RoleClass, group: &str, resource: &str, verb: &str) -> bool {
        !classify_as(&[rule(&[group], &[resource], &[verb])], class).is_delegable()
    }

    fn role_class() -> impl proptest::strategy::Strategy<Value = RoleClass> {
        proptest::sample::select(vec![
            RoleClass::Unrestricted,
            RoleClass::ReadOnly,
            RoleClass::AssignmentDelete,
            VM,
            RoleClass::WritesOnly(&[("example.com", None)]),
        ])
    }

    proptest::proptest! {
        /// For any rules, as Kubernetes evaluates RBAC: every concrete request the filtered
        /// rules allow, the classifier accepts and the original rules allow (filtering never
        /// widens); the filtered rules are delegable and filtering them again changes nothing.
        #[test]
        fn a_filtered_role_never_allows_what_the_classifier_rejects(
            rules in proptest::collection::vec(policy_rule(), 0..5),
            class in role_class(),
        ) {
            let filtered = classify_as(&rules, class).delegable_rules;
            let again = classify_as(&filtered, class);
            proptest::prop_assert!(again.findings.is_empty(), "{:?}", again.findings);
            proptest::prop_assert_eq!(&again.delegable_rules, &filtered);
            fn concrete(s: &&&str) -> bool {
                !s.contains('*')
            }
            let mut names: Vec<Option<&str>> = vec![None];
            names.extend(NAMES.iter().copied().map(Some));
            for group in GROUPS.iter().filter(concrete) {
                for resource in RESOURCES.iter().filter(concrete) {
                    for verb in VERBS.iter().filter(concrete) {
                        let allowed: Vec<_> =
                            names.iter().filter(|n| rbac_allows(&filtered, group, resource, verb, **n)).collect();
                        if allowed.is_empty() {
                            continue;
                        }
                        proptest::prop_assert!(
                            !rejected(class, group, resource, verb),
                            "{rules:?} filtered as {class:?} to {filtered:?} allows the rejected {verb} {group}/{resource}"
                        );
                        for name in allowed {
                            proptest::prop_assert!(
                                rbac_allows(&rules, group, resource, verb, *name),
                                "{rules:?} filtered to {filtered:?} widens to {verb} {group}/{resource} {name:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
