//! The author's authority (seed 003), pure: which questions the webhook asks the API server
//! about the author of a delegation, and what it says when one is answered "no". A
//! delegation may grant only what its author could grant directly: the author must be
//! allowed to create RoleBindings in every namespace of the scope, and for every role the
//! delegation would materialize must be allowed to `bind` it or hold all of its permissions
//! there (Kubernetes' own RoleBinding escalation rule).
//!
//! Each question is one SubjectAccessReview, and the API server waits for admission at most
//! the webhook's `timeoutSeconds`, so the work of one request is bounded ([`Budget`]): the
//! cheapest questions first (one "everything" and one "bind" answer many permissions at
//! once, a cluster-wide answer covers every namespace), and a clear refusal naming the limit
//! when what is left to ask is more than the budget allows, or takes longer than its time.

use std::time::Duration;

use super::validate::Grant;

/// Most SubjectAccessReviews one admission request asks, by default.
pub const DEFAULT_MAX_QUESTIONS: usize = 2_000;

/// How long one admission request asks, by default: well under the chart's webhook
/// `timeoutSeconds` (10), so the refusal reaches the author instead of the API server's
/// "context deadline exceeded".
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(6);

/// What one admission request may spend on the author's authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most SubjectAccessReviews.
    pub max_questions: usize,
    /// Longest time spent asking them.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_questions: DEFAULT_MAX_QUESTIONS, deadline: DEFAULT_DEADLINE }
    }
}

/// The questions one request has left: each round of questions is taken from it before it
/// is asked, so a request never starts what it may not finish.
#[derive(Clone, Debug)]
pub struct Budget {
    limits: Limits,
    asked: usize,
}

impl Budget {
    /// A full budget.
    pub fn new(limits: Limits) -> Budget {
        Budget { limits, asked: 0 }
    }

    /// Questions taken so far.
    pub fn asked(&self) -> usize {
        self.asked
    }

    /// Takes `questions` more, about `namespaces` namespaces, for `who`.
    ///
    /// # Errors
    /// The refusal ([`over_budget`]) when they would exceed [`Limits::max_questions`]; nothing
    /// is taken then.
    pub fn take(&mut self, questions: usize, namespaces: usize, who: &str) -> Result<(), String> {
        let total = self.asked.saturating_add(questions);
        if total > self.limits.max_questions {
            return Err(over_budget(who, total, self.limits.max_questions, namespaces));
        }
        self.asked = total;
        Ok(())
    }
}

/// The refusal when establishing `who`'s authority over `namespaces` namespaces would take
/// `needed` SubjectAccessReviews, more than `limit`.
pub fn over_budget(who: &str, needed: usize, limit: usize, namespaces: usize) -> String {
    format!(
        "AuthorityCheckLimit: the authority of {who} over {namespaces} namespace(s) would take {needed} SubjectAccessReviews, over the limit of {limit} per request: {who} neither holds every permission (`*`) nor may `bind` the delegated roles there, so each of their permissions is asked in each namespace. Grant {who} `bind` on the roles (or cluster-admin) in those namespaces, or delegate at a narrower scope (docs/roles.md, \"Who may delegate\")"
    )
}

/// The refusal when establishing `who`'s authority over `namespaces` namespaces took longer
/// than `deadline`.
pub fn out_of_time(who: &str, deadline: Duration, namespaces: usize) -> String {
    format!(
        "AuthorityCheckLimit: the authority of {who} over {namespaces} namespace(s) could not be established within {} s, the limit per request: the API server answered too slowly. Retry, or delegate at a narrower scope (docs/roles.md, \"Who may delegate\")",
        deadline.as_secs_f32()
    )
}

/// The grants whose roles are bound, one per role: a role named by several grants (several
/// principals, a User Access Administrator's assignable copy) is asked about once.
pub fn distinct_roles(grants: &[Grant]) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    (0..grants.len()).filter(|i| seen.insert(grants[*i].role.as_str())).collect()
}

/// `ask` for every namespace at once (an empty namespace): RBAC answers it from
/// ClusterRoleBindings only, so a "yes" holds in every namespace of the scope.
pub fn cluster_wide(ask: &Ask) -> Ask {
    Ask { namespace: String::new(), ..ask.clone() }
}

/// One question for a SubjectAccessReview: may the author `verb` this?
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ask {
    /// The verb asked about, e.g. `create`, `bind`.
    pub verb: String,
    /// API group, `""` for the core group.
    pub group: String,
    /// Resource, with `/subresource` when there is one.
    pub resource: String,
    /// Resource name, `""` for any.
    pub name: String,
    /// `""` for a cluster-scoped question.
    pub namespace: String,
}

impl Ask {
    /// `verb resource[.group][/name][ in namespace]`, as messages show it.
    pub fn describe(&self) -> String {
        let what =
            if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) };
        let name = if self.name.is_empty() { String::new() } else { format!("/{}", self.name) };
        let scope = if self.namespace.is_empty() { String::new() } else { format!(" in {}", self.namespace) };
        format!("{} {what}{name}{scope}", self.verb)
    }

    /// `(resource, subresource)`, the split a SubjectAccessReview wants.
    pub fn resource_and_subresource(&self) -> (&str, &str) {
        self.resource.split_once('/').unwrap_or((&self.resource, ""))
    }
}

/// First question: may the author create RoleBindings in each namespace of the scope?
pub fn delegate_asks(namespaces: &[String]) -> Vec<Ask> {
    namespaces
        .iter()
        .map(|ns| Ask {
            verb: "create".into(),
            group: "rbac.authorization.k8s.io".into(),
            resource: "rolebindings".into(),
            name: String::new(),
            namespace: ns.clone(),
        })
        .collect()
}

/// Second question, per namespace: does the author hold every permission there (`*` verbs on
/// `*` resources of `*` groups, as `cluster-admin` bound in the namespace gives)? Then every
/// role's permissions are held and nothing more is asked about that namespace.
pub fn everything_ask(namespace: &str) -> Ask {
    Ask {
        verb: "*".into(),
        group: "*".into(),
        resource: "*".into(),
        name: String::new(),
        namespace: namespace.to_string(),
    }
}

/// Third question, per namespace and role: may the author bind the catalog ClusterRole
/// `grant` comes from in `namespace`? The API server asks the same (`bind` with the
/// RoleBinding's namespace) when someone creates a RoleBinding there, so a ClusterRoleBinding
/// or a RoleBinding of that namespace granting `bind` both answer yes.
pub fn bind_ask(grant: &Grant, namespace: &str) -> Ask {
    Ask {
        verb: "bind".into(),
        group: "rbac.authorization.k8s.io".into(),
        resource: "clusterroles".into(),
        name: grant.role.clone(),
        namespace: namespace.to_string(),
    }
}

/// The permissions still to ask, each once: `asks` are (index of the grant, question) in
/// order; a question several roles share (Reader's are mostly Contributor's) is asked once,
/// for the first of them.
pub fn each_once(asks: Vec<(usize, Ask)>) -> Vec<(usize, Ask)> {
    let mut seen = std::collections::HashSet::new();
    asks.into_iter().filter(|(_, ask)| seen.insert(ask.clone())).collect()
}

/// Otherwise: does the author hold every permission of `grant` in `namespace`? One ask per
/// (group, resource, verb, name) of its rules.
pub fn permissions(grant: &Grant, namespace: &str) -> Vec<Ask> {
    let mut asks = Vec::new();
    for rule in &grant.rules {
        let names = rule.resource_names.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| vec![String::new()]);
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for name in &names {
                        asks.push(Ask {
                            verb: verb.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            name: name.clone(),
                            namespace: namespace.to_string(),
                        });
                    }
                }
            }
        }
    }
    asks
}

/// The refusal when `who` may not create RoleBindings where the delegation applies.
pub fn not_an_owner(who: &str, ask: &Ask) -> String {
    format!("{who} may not {}: only an owner of the scope may delegate (seed 003)", ask.describe())
}

/// The refusal when `who` may neither bind `grant`'s role nor holds `missing`.
pub fn beyond_author(who: &str, grant: &Grant, missing: &Ask) -> String {
    format!(
        "{who} may neither bind role {} nor {}: a delegation may grant only what its author could grant directly",
        grant.role,
        missing.describe()
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::PolicyRule;

    use super::*;

    fn grant(rules: Vec<PolicyRule>) -> Grant {
        Grant { role: "kubelighthouse:reader".into(), rules, subjects: vec![] }
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: Option<&[&str]>) -> PolicyRule {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(strings(groups)),
            resources: Some(strings(resources)),
            verbs: strings(verbs),
            resource_names: names.map(strings),
            non_resource_urls: None,
        }
    }

    #[test]
    fn every_group_resource_verb_and_name_is_asked_in_the_namespace() {
        let g = grant(vec![
            rule(&["", "apps"], &["pods", "deployments/scale"], &["get", "list"], None),
            rule(&[""], &["configmaps"], &["get"], Some(&["a", "b"])),
        ]);
        let asks = permissions(&g, "customer-a");
        assert_eq!(asks.len(), 2 * 2 * 2 + 2);
        assert!(asks.iter().all(|a| a.namespace == "customer-a"));
        let described: Vec<String> = asks.iter().map(Ask::describe).collect();
        assert!(described.contains(&"list deployments/scale.apps in customer-a".to_string()), "{described:?}");
        assert!(described.contains(&"get configmaps/b in customer-a".to_string()), "{described:?}");
        let scale = asks.iter().find(|a| a.resource == "deployments/scale").expect("scale");
        assert_eq!(scale.resource_and_subresource(), ("deployments", "scale"));
    }

    #[test]
    fn a_question_two_roles_share_is_asked_once_for_the_first() {
        let reader = grant(vec![rule(&[""], &["pods"], &["get", "list"], None)]);
        let contributor = grant(vec![rule(&[""], &["pods"], &["get", "list", "delete"], None)]);
        let asks: Vec<(usize, Ask)> = [(0, &reader), (1, &contributor)]
            .into_iter()
            .flat_map(|(i, g)| permissions(g, "ns").into_iter().map(move |a| (i, a)))
            .collect();
        let once = each_once(asks);
        let described: Vec<(usize, String)> = once.iter().map(|(i, a)| (*i, a.describe())).collect();
        assert_eq!(
            described,
            [
                (0, "get pods in ns".to_string()),
                (0, "list pods in ns".to_string()),
                (1, "delete pods in ns".to_string())
            ]
        );
    }

    #[test]
    fn an_empty_resource_names_list_means_any_name() {
        let asks = permissions(&grant(vec![rule(&[""], &["pods"], &["get"], Some(&[]))]), "ns");
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].name, "");
    }

    #[test]
    fn the_first_questions_and_refusals_name_the_author_and_the_permission() {
        let asks = delegate_asks(&["sub".into(), "rg".into()]);
        assert_eq!(asks.len(), 2);
        assert_eq!(asks[1].describe(), "create rolebindings.rbac.authorization.k8s.io in rg");
        assert_eq!(
            not_an_owner("alice", &asks[0]),
            "alice may not create rolebindings.rbac.authorization.k8s.io in sub: only an owner of the scope may delegate (seed 003)"
        );
        let g = grant(vec![]);
        let bind = bind_ask(&g, "rg");
        assert_eq!(bind.describe(), "bind clusterroles.rbac.authorization.k8s.io/kubelighthouse:reader in rg");
        assert_eq!(everything_ask("rg").describe(), "* *.* in rg");
        let missing = Ask {
            verb: "get".into(),
            group: "".into(),
            resource: "secrets".into(),
            name: "".into(),
            namespace: "sub".into(),
        };
        assert_eq!(
            beyond_author("alice", &g, &missing),
            "alice may neither bind role kubelighthouse:reader nor get secrets in sub: a delegation may grant only what its author could grant directly"
        );
    }

    #[test]
    fn a_budget_refuses_a_round_it_cannot_finish_and_names_the_limit() {
        let mut budget = Budget::new(Limits { max_questions: 300, deadline: DEFAULT_DEADLINE });
        assert_eq!(budget.take(151, 151, "alice"), Ok(()));
        assert_eq!(budget.take(149, 151, "alice"), Ok(()));
        // The owner of a subscription with 150 resource groups who holds only `admin` there:
        // 210 permissions in each of 151 namespaces.
        let refused = budget.take(210 * 151, 151, "alice").expect_err("over the budget");
        assert!(refused.starts_with("AuthorityCheckLimit: "), "{refused}");
        assert!(refused.contains("alice over 151 namespace(s) would take 32010 SubjectAccessReviews"), "{refused}");
        assert!(refused.contains("over the limit of 300 per request"), "{refused}");
        assert!(refused.contains("docs/roles.md"), "{refused}");
        assert_eq!(budget.asked(), 300, "a refused round takes nothing");
        let late = out_of_time("alice", Duration::from_secs(6), 151);
        assert!(late.starts_with("AuthorityCheckLimit: ") && late.contains("within 6 s"), "{late}");
    }

    #[test]
    fn a_role_is_asked_about_once_and_cluster_wide_questions_have_no_namespace() {
        let reader = Grant { role: "kubelighthouse:reader".into(), rules: vec![], subjects: vec![] };
        let contributor = Grant { role: "kubelighthouse:contributor".into(), ..reader.clone() };
        assert_eq!(distinct_roles(&[reader.clone(), contributor, reader.clone()]), [0, 1]);
        let everywhere = cluster_wide(&bind_ask(&reader, "rg"));
        assert_eq!(everywhere.describe(), "bind clusterroles.rbac.authorization.k8s.io/kubelighthouse:reader");
        assert_eq!(Limits::default().deadline, DEFAULT_DEADLINE);
        assert!(DEFAULT_DEADLINE < Duration::from_secs(10), "under the chart's webhook timeoutSeconds");
    }
}
