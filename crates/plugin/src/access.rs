//! `access [-n NS | -A]`: what the caller (or `--as`) may do in each delegated namespace, a
//! rakkess-style matrix of the common verbs × resources, from a `SelfSubjectRulesReview` per
//! namespace (SPEC §11). The rules are evaluated here, purely ([`allows`]), as the RBAC
//! authorizer matches them.
//!
//! Namespaces: `-n NS` checks that one; otherwise (and with `-A`) every namespace where a
//! delegation visible to the caller is in force (the `delegations` view).

use std::collections::BTreeSet;
use std::io::Write;

use k8s_openapi::api::authorization::v1::{ResourceRule, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use kube::api::{Api, PostParams};
use serde::Serialize;

use super::cli::{AccessArgs, GlobalArgs};
use super::output::{self, OutputFormat};
use super::{client, PluginError};

/// Verbs checked by default.
pub const DEFAULT_VERBS: [&str; 7] = ["get", "list", "watch", "create", "update", "patch", "delete"];

/// Resources checked by default, `resource` (core group) or `resource.group`.
pub const DEFAULT_RESOURCES: [&str; 17] = [
    "pods",
    "pods/log",
    "pods/exec",
    "services",
    "configmaps",
    "secrets",
    "events",
    "persistentvolumeclaims",
    "serviceaccounts",
    "deployments.apps",
    "statefulsets.apps",
    "jobs.batch",
    "cronjobs.batch",
    "ingresses.networking.k8s.io",
    "networkpolicies.networking.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "registrationassignments.managedservices.kubelighthouse.io",
];

/// Splits `deployments.apps` into (`apps`, `deployments`) and `pods/log` into (``, `pods/log`).
pub fn split_resource(spec: &str) -> (String, String) {
    let (resource, sub) = match spec.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (spec, None),
    };
    let (name, group) = match resource.split_once('.') {
        Some((n, g)) => (n, g),
        None => (resource, ""),
    };
    let full = match sub {
        Some(s) => format!("{name}/{s}"),
        None => name.to_string(),
    };
    (group.to_string(), full)
}

fn matches(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == "*" || v == wanted)
}

fn matches_resource(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| {
        v == "*"
            || v == wanted
            || (v.starts_with("*/") && wanted.split_once('/').is_some_and(|(_, sub)| &v[2..] == sub))
            || (v.ends_with("/*") && wanted.split_once('/').is_some_and(|(r, _)| &v[..v.len() - 2] == r))
    })
}

/// One cell of the matrix: whether a verb is allowed on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// On every object of the resource.
    All,
    /// Only on the objects named (a rule with `resourceNames`), sorted.
    Named(Vec<String>),
    /// On none.
    No,
}

/// Whether `rules` allow `verb` on `resource` in `group`, as RBAC matches rules (`*`
/// wildcards, `*/sub` and `res/*` for subresources): on every object, only on the objects a
/// rule names (`resourceNames`, e.g. the delegation-delete role's one assignment), or not.
pub fn allows(rules: &[ResourceRule], group: &str, resource: &str, verb: &str) -> Allowed {
    let matching = rules.iter().filter(|r| {
        matches(&r.verbs, verb)
            && matches(r.api_groups.as_deref().unwrap_or_default(), group)
            && matches_resource(r.resources.as_deref().unwrap_or_default(), resource)
    });
    let mut names = BTreeSet::new();
    for rule in matching {
        match rule.resource_names.as_deref() {
            None | Some([]) => return Allowed::All,
            Some(named) => names.extend(named.iter().cloned()),
        }
    }
    if names.is_empty() {
        Allowed::No
    } else {
        Allowed::Named(names.into_iter().collect())
    }
}

/// The matrix of one namespace: per resource, one cell per verb.
pub fn matrix(rules: &[ResourceRule], resources: &[String], verbs: &[String]) -> Vec<(String, Vec<Allowed>)> {
    resources
        .iter()
        .map(|spec| {
            let (group, resource) = split_resource(spec);
            (spec.clone(), verbs.iter().map(|v| allows(rules, &group, &resource, v)).collect())
        })
        .collect()
}

/// One namespace's result, as `-o json|yaml` prints it.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceAccess {
    /// The namespace.
    pub namespace: String,
    /// Per resource, the verbs allowed.
    pub resources: Vec<ResourceAccess>,
    /// The API server's rules review could not say everything (another authorizer, or an
    /// error evaluating rules): the matrix is a lower bound.
    pub incomplete: bool,
}

/// The verbs allowed on one resource.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAccess {
    /// `resource` or `resource.group`.
    pub resource: String,
    /// Verbs allowed on every object.
    pub verbs: Vec<String>,
    /// Verbs allowed only on named objects: verb → the names.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub verbs_by_name: std::collections::BTreeMap<String, Vec<String>>,
}

/// The namespaces to check: `-n` as given, else those in force for the visible delegations.
///
/// # Errors
/// [`PluginError`] when the views API cannot be read and no `-n` was given.
async fn namespaces(global: &GlobalArgs, client: &kube::Client) -> Result<Vec<String>, PluginError> {
    if let (Some(ns), false) = (&global.namespace, global.all_namespaces) {
        return Ok(vec![ns.clone()]);
    }
    let delegations = super::views::list_delegations(client.clone()).await?;
    let set: BTreeSet<String> = delegations.into_iter().flat_map(|d| d.namespaces).collect();
    Ok(set.into_iter().collect())
}

/// `access`.
///
/// # Errors
/// [`PluginError`] from the API.
pub async fn run(global: &GlobalArgs, args: &AccessArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let verbs: Vec<String> =
        if args.verbs.is_empty() { DEFAULT_VERBS.iter().map(|v| v.to_string()).collect() } else { args.verbs.clone() };
    let resources: Vec<String> = if args.resources.is_empty() {
        DEFAULT_RESOURCES.iter().map(|r| r.to_string()).collect()
    } else {
        args.resources.clone()
    };
    let namespaces = namespaces(global, &conn.client).await?;
    if namespaces.is_empty() {
        eprintln!("No delegated namespaces found");
        return Ok(());
    }
    let api: Api<SelfSubjectRulesReview> = Api::all(conn.client.clone());
    let mut results = Vec::new();
    for ns in namespaces {
        let review = SelfSubjectRulesReview {
            spec: SelfSubjectRulesReviewSpec { namespace: Some(ns.clone()) },
            ..Default::default()
        };
        let answer = api.create(&PostParams::default(), &review).await?;
        let status = answer.status.unwrap_or_default();
        let rows = matrix(&status.resource_rules, &resources, &verbs);
        results.push((ns, status.incomplete, rows));
    }
    match global.output {
        Some(OutputFormat::Json | OutputFormat::Yaml) => {
            let items: Vec<NamespaceAccess> = results
                .into_iter()
                .map(|(namespace, incomplete, rows)| NamespaceAccess {
                    namespace,
                    incomplete,
                    resources: rows
                        .into_iter()
                        .map(|(resource, cells)| ResourceAccess {
                            resource,
                            verbs: verbs
                                .iter()
                                .zip(&cells)
                                .filter(|(_, a)| **a == Allowed::All)
                                .map(|(v, _)| v.clone())
                                .collect(),
                            verbs_by_name: verbs
                                .iter()
                                .zip(cells)
                                .filter_map(|(v, a)| match a {
                                    Allowed::Named(names) => Some((v.clone(), names)),
                                    _ => None,
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect();
            let text = if global.output == Some(OutputFormat::Json) {
                output::to_json(&items)?
            } else {
                output::to_yaml(&items)?
            };
            out.write_all(text.as_bytes())?;
        }
        _ => {
            let verb_refs: Vec<&str> = verbs.iter().map(String::as_str).collect();
            for (i, (ns, incomplete, rows)) in results.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                writeln!(out, "Namespace {ns}{}:", if *incomplete { " (incomplete: a lower bound)" } else { "" })?;
                out.write_all(output::access_matrix(&verb_refs, rows, args.ascii).as_bytes())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> ResourceRule {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        ResourceRule {
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            verbs: v(verbs),
            resource_names: if names.is_empty() { None } else { Some(v(names)) },
        }
    }

    #[test]
    fn resources_split_into_group_and_name() {
        assert_eq!(split_resource("pods"), (String::new(), "pods".into()));
        assert_eq!(split_resource("pods/log"), (String::new(), "pods/log".into()));
        assert_eq!(split_resource("deployments.apps"), ("apps".into(), "deployments".into()));
        assert_eq!(split_resource("ingresses.networking.k8s.io"), ("networking.k8s.io".into(), "ingresses".into()));
        assert_eq!(split_resource("deployments.apps/scale"), ("apps".into(), "deployments/scale".into()));
    }

    #[test]
    fn rules_match_as_rbac_does() {
        let reader = [rule(&["", "apps"], &["pods", "deployments"], &["get", "list", "watch"], &[])];
        assert_eq!(allows(&reader, "", "pods", "get"), Allowed::All);
        assert_eq!(allows(&reader, "apps", "deployments", "list"), Allowed::All);
        assert_eq!(allows(&reader, "", "pods", "delete"), Allowed::No);
        assert_eq!(allows(&reader, "", "pods/log", "get"), Allowed::No, "a subresource is not its resource");
        assert_eq!(allows(&reader, "", "secrets", "get"), Allowed::No);
        assert_eq!(allows(&reader, "batch", "pods", "get"), Allowed::No, "the group must match");
        let wild = [rule(&["*"], &["*"], &["*"], &[])];
        assert_eq!(allows(&wild, "apps", "deployments/scale", "patch"), Allowed::All);
        let subs = [rule(&[""], &["*/log"], &["get"], &[]), rule(&[""], &["services/*"], &["get"], &[])];
        assert_eq!(allows(&subs, "", "pods/log", "get"), Allowed::All);
        assert_eq!(allows(&subs, "", "services/proxy", "get"), Allowed::All);
        assert_eq!(allows(&subs, "", "pods", "get"), Allowed::No);
        let pinned = [rule(
            &["managedservices.kubelighthouse.io"],
            &["registrationassignments"],
            &["get", "delete"],
            &["contoso"],
        )];
        assert_eq!(
            allows(&pinned, "managedservices.kubelighthouse.io", "registrationassignments", "delete"),
            Allowed::Named(vec!["contoso".into()]),
            "only named objects"
        );
        let both = [pinned[0].clone(), rule(&["managedservices.kubelighthouse.io"], &["*"], &["delete"], &[])];
        assert_eq!(
            allows(&both, "managedservices.kubelighthouse.io", "registrationassignments", "delete"),
            Allowed::All,
            "a rule for every object wins over one for named objects"
        );
    }

    #[test]
    fn the_matrix_has_one_row_per_resource() {
        let rules = [rule(&[""], &["pods"], &["get", "list"], &[])];
        let m = matrix(&rules, &["pods".into(), "deployments.apps".into()], &["get".into(), "delete".into()]);
        use Allowed::{All, No};
        assert_eq!(m, [("pods".to_string(), vec![All, No]), ("deployments.apps".to_string(), vec![No, No])]);
        let text = output::access_matrix(&["get", "delete"], &m, false);
        assert_eq!(text, "NAME               GET   DELETE\npods               ✔     ✖\ndeployments.apps   ✖     ✖\n");
    }
}
