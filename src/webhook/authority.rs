//! The author's authority, as Kubernetes judges RoleBinding escalation: a delegation may
//! grant only what its author could grant directly. The author must be allowed to create
//! RoleBindings in every namespace of the scope, and for every role the delegation would
//! materialize must be allowed to `bind` it or hold all of its permissions there. Asked of
//! the API server with SubjectAccessReviews on the author's behalf (user, groups, extra).

use futures::stream::{self, StreamExt};
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};

use crate::controller::context::Context;
use crate::model::validate::Grant;

/// Concurrent SubjectAccessReviews per admission request.
const PARALLEL: usize = 16;

#[derive(Clone, Debug)]
struct Ask {
    verb: String,
    group: String,
    resource: String,
    name: String,
    namespace: String,
}

impl Ask {
    fn describe(&self) -> String {
        let what =
            if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) };
        let name = if self.name.is_empty() { String::new() } else { format!("/{}", self.name) };
        let scope = if self.namespace.is_empty() { String::new() } else { format!(" in {}", self.namespace) };
        format!("{} {what}{name}{scope}", self.verb)
    }
}

async fn allowed(ctx: &Context, user: &UserInfo, ask: &Ask) -> Result<bool, String> {
    let (resource, subresource) = match ask.resource.split_once('/') {
        Some((r, s)) => (r.to_string(), s.to_string()),
        None => (ask.resource.clone(), String::new()),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(ask.verb.clone()),
                group: Some(ask.group.clone()),
                resource: Some(resource),
                subresource: Some(subresource),
                name: Some(ask.name.clone()),
                namespace: Some(ask.namespace.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(ctx.client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| format!("cannot check the author's authority: {e}"))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The first of `asks` the user may not do, if any.
async fn first_denied(ctx: &Context, user: &UserInfo, asks: Vec<Ask>) -> Result<Option<Ask>, String> {
    let answers: Vec<(Ask, Result<bool, String>)> = stream::iter(asks)
        .map(|ask| async move {
            let ok = allowed(ctx, user, &ask).await;
            (ask, ok)
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    for (ask, answer) in answers {
        if !answer? {
            return Ok(Some(ask));
        }
    }
    Ok(None)
}

/// Every (verb, group, resource, name) a role's rules grant, in `namespace`.
fn permissions(grant: &Grant, namespace: &str) -> Vec<Ask> {
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

/// Ok when the author may grant `grants` in every one of `namespaces`; else why not.
pub async fn check(ctx: &Context, user: &UserInfo, namespaces: &[String], grants: &[Grant]) -> Result<(), String> {
    let who = user.username.clone().unwrap_or_else(|| "the requester".into());
    let create_bindings: Vec<Ask> = namespaces
        .iter()
        .map(|ns| Ask {
            verb: "create".into(),
            group: "rbac.authorization.k8s.io".into(),
            resource: "rolebindings".into(),
            name: String::new(),
            namespace: ns.clone(),
        })
        .collect();
    if let Some(ask) = first_denied(ctx, user, create_bindings).await? {
        return Err(format!("{who} may not {}: only an owner of the scope may delegate (seed 003)", ask.describe()));
    }
    for grant in grants {
        let bind = Ask {
            verb: "bind".into(),
            group: "rbac.authorization.k8s.io".into(),
            resource: "clusterroles".into(),
            name: grant.role.clone(),
            namespace: String::new(),
        };
        if allowed(ctx, user, &bind).await? {
            continue;
        }
        let held: Vec<Ask> = namespaces.iter().flat_map(|ns| permissions(grant, ns)).collect();
        if let Some(ask) = first_denied(ctx, user, held).await? {
            return Err(format!(
                "{who} may neither bind role {} nor {}: a delegation may grant only what its author could grant directly",
                grant.role,
                ask.describe()
            ));
        }
    }
    Ok(())
}
