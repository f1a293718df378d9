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

/// Whether `user` may delegate `grants` in `namespaces`.
///
/// # Errors
/// The refusal, naming what the author may not do, or why the API server could not say.
pub async fn check(client: &Client, user: &UserInfo, namespaces: &[String], grants: &[Grant]) -> Result<(), String> {
    let who = user.username.clone().unwrap_or_else(|| "the requester".into());
    if let Some(ask) = first_denied(client, user, authority::delegate_asks(namespaces)).await? {
        return Err(authority::not_an_owner(&who, &ask));
    }
    for grant in grants {
        if allowed(client, user, &authority::bind_ask(grant)).await? {
            continue;
        }
        let held: Vec<Ask> = namespaces.iter().flat_map(|ns| authority::permissions(grant, ns)).collect();
        if let Some(missing) = first_denied(client, user, held).await? {
            return Err(authority::beyond_author(&who, grant, &missing));
        }
    }
    Ok(())
}
