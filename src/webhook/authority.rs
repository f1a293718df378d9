//! The author's authority (seed 003), asked of the API server: the questions and the
//! refusals are [`crate::model::authority`]'s; this module sends them as
//! SubjectAccessReviews on the author's behalf (user, groups, extra).

use futures::stream::{self, StreamExt};
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use kube::Client;

use crate::model::authority::{self, Ask};
use crate::model::validate::Grant;

/// Concurrent SubjectAccessReviews per admission request.
const PARALLEL: usize = 16;

async fn allowed(client: &Client, user: &UserInfo, ask: &Ask) -> Result<bool, String> {
    let (resource, subresource) = ask.resource_and_subresource();
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(ask.verb.clone()),
                group: Some(ask.group.clone()),
                resource: Some(resource.to_string()),
                subresource: Some(subresource.to_string()),
                name: Some(ask.name.clone()),
                namespace: Some(ask.namespace.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| format!("cannot check the author's authority: {e}"))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The first of `asks` the author is denied, asking at most [`PARALLEL`] at a time and
/// stopping at the first denial (the questions still in flight are dropped).
async fn first_denied(client: &Client, user: &UserInfo, asks: Vec<Ask>) -> Result<Option<Ask>, String> {
    let mut answers = std::pin::pin!(stream::iter(asks)
        .map(|ask| async move {
            let ok = allowed(client, user, &ask).await;
            (ask, ok)
        })
        .buffered(PARALLEL));
    while let Some((ask, answer)) = answers.next().await {
        if !answer? {
            return Ok(Some(ask));
        }
    }
    Ok(None)
}

/// What is left to ask about `namespace` once the short questions are answered: nothing when
/// the author holds everything there or may bind every role there; else the permissions of
/// each role the author may not bind, as (index of the grant, question).
async fn still_to_ask(
    client: &Client,
    user: &UserInfo,
    namespace: &str,
    grants: &[Grant],
) -> Result<Vec<(usize, Ask)>, String> {
    if allowed(client, user, &authority::everything_ask(namespace)).await? {
        return Ok(Vec::new());
    }
    let mut asks = Vec::new();
    for (i, grant) in grants.iter().enumerate() {
        if !allowed(client, user, &authority::bind_ask(grant, namespace)).await? {
            asks.extend(authority::permissions(grant, namespace).into_iter().map(|a| (i, a)));
        }
    }
    Ok(asks)
}

/// Whether `user` may delegate `grants` in `namespaces` (SPEC §3 rule 6, seed 003): may
/// create RoleBindings in each namespace, then per namespace holds everything there, or may
/// bind each role there, or holds each permission of the roles it may not bind. Each
/// permission is asked once (roles share many), at most [`PARALLEL`] questions in flight,
/// and the first denial ends the check.
///
/// # Errors
/// The refusal, naming what the author may not do, or why the API server could not say.
pub async fn check(client: &Client, user: &UserInfo, namespaces: &[String], grants: &[Grant]) -> Result<(), String> {
    let who = user.username.clone().unwrap_or_else(|| "the requester".into());
    if let Some(ask) = first_denied(client, user, authority::delegate_asks(namespaces)).await? {
        return Err(authority::not_an_owner(&who, &ask));
    }
    let per_namespace: Vec<Result<Vec<(usize, Ask)>, String>> = stream::iter(namespaces.iter().cloned())
        .map(|ns| async move { still_to_ask(client, user, &ns, grants).await })
        .buffered(PARALLEL)
        .collect()
        .await;
    let mut pending = Vec::new();
    for asks in per_namespace {
        pending.extend(asks?);
    }
    let pending = authority::each_once(pending);
    let grant_of: std::collections::HashMap<Ask, usize> = pending.iter().map(|(i, a)| (a.clone(), *i)).collect();
    if let Some(missing) = first_denied(client, user, pending.into_iter().map(|(_, a)| a).collect()).await? {
        let grant = grant_of.get(&missing).and_then(|i| grants.get(*i));
        return Err(match grant {
            Some(grant) => authority::beyond_author(&who, grant, &missing),
            None => authority::not_an_owner(&who, &missing),
        });
    }
    Ok(())
}
