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

/// Concurrent SubjectAccessReviews of this replica, all admission requests together. The
/// admission port cannot always tell the API server's reviews from forged ones (without an
/// admission client CA, docs/install.md), so many concurrent requests must not multiply the
/// load they put on the API server: beyond this, questions wait (and a request that waits
/// past its deadline is refused, naming the limit).
const IN_FLIGHT: usize = 32;

static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(IN_FLIGHT);

async fn allowed(client: &Client, user: &UserInfo, ask: &Ask) -> Result<bool, String> {
    let _slot = SLOTS.acquire().await.map_err(|e| format!("cannot check the author's authority: {e}"))?;
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

/// The answer to each of `asks`, in order, at most [`PARALLEL`] in flight.
async fn answers(client: &Client, user: &UserInfo, asks: &[Ask]) -> Result<Vec<bool>, String> {
    let answers: Vec<Result<bool, String>> = stream::iter(asks.iter().cloned())
        .map(|ask| async move { allowed(client, user, &ask).await })
        .buffered(PARALLEL)
        .collect()
        .await;
    answers.into_iter().collect()
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

/// Whether `user` may delegate `grants` in `namespaces` (SPEC §3 rule 6, seed 003): may
/// create RoleBindings in each namespace, then per namespace holds everything there, or may
/// bind each role there, or holds each permission of the roles it may not bind. At most
/// `limits.max_questions` SubjectAccessReviews and `limits.deadline` per request.
///
/// # Errors
/// The refusal, naming what the author may not do, the limit the check would exceed, or why
/// the API server could not say.
pub async fn check(
    client: &Client,
    user: &UserInfo,
    namespaces: &[String],
    grants: &[Grant],
    limits: authority::Limits,
) -> Result<(), String> {
    let who = user.username.clone().unwrap_or_else(|| "the requester".into());
    let inquiry = inquire(client, user, namespaces, grants, limits, &who);
    match tokio::time::timeout(limits.deadline, inquiry).await {
        Ok(verdict) => verdict,
        Err(_) => Err(authority::out_of_time(&who, limits.deadline, namespaces.len())),
    }
}

/// The rounds of [`check`], cheapest first; each is taken from the budget before it is
/// asked, and each leaves to the next only what it did not settle:
/// 1. every permission, cluster-wide (one question), then in each namespace;
/// 2. create RoleBindings in the namespaces left (the first denial refuses);
/// 3. `bind` each distinct role, cluster-wide, then in each namespace left;
/// 4. each permission of the roles it may not bind, in the namespaces where it may not,
///    each once (roles share many).
async fn inquire(
    client: &Client,
    user: &UserInfo,
    namespaces: &[String],
    grants: &[Grant],
    limits: authority::Limits,
    who: &str,
) -> Result<(), String> {
    let mut budget = authority::Budget::new(limits);
    let n = namespaces.len();
    let everything = authority::everything_ask("");
    budget.take(1, n, who)?;
    if allowed(client, user, &everything).await? {
        return Ok(());
    }
    budget.take(n, n, who)?;
    let asks: Vec<Ask> = namespaces.iter().map(|ns| authority::everything_ask(ns)).collect();
    let held = answers(client, user, &asks).await?;
    let left: Vec<String> = namespaces.iter().zip(held).filter(|(_, all)| !all).map(|(ns, _)| ns.clone()).collect();
    if left.is_empty() {
        return Ok(());
    }
    budget.take(left.len(), n, who)?;
    if let Some(ask) = first_denied(client, user, authority::delegate_asks(&left)).await? {
        return Err(authority::not_an_owner(who, &ask));
    }
    let roles = authority::distinct_roles(grants);
    budget.take(roles.len(), n, who)?;
    let asks: Vec<Ask> = roles.iter().map(|i| authority::cluster_wide(&authority::bind_ask(&grants[*i], ""))).collect();
    let bound_everywhere = answers(client, user, &asks).await?;
    let unbound: Vec<usize> = roles.iter().zip(bound_everywhere).filter(|(_, b)| !b).map(|(i, _)| *i).collect();
    let pairs: Vec<(usize, &String)> = left.iter().flat_map(|ns| unbound.iter().map(move |i| (*i, ns))).collect();
    budget.take(pairs.len(), n, who)?;
    let asks: Vec<Ask> = pairs.iter().map(|(i, ns)| authority::bind_ask(&grants[*i], ns)).collect();
    let bound = answers(client, user, &asks).await?;
    // Roles it may not bind, by namespace; every grant of such a role is asked about (two
    // grants of one role may hold different rules: a User Access Administrator's assignable
    // copy is filtered).
    let unbindable: std::collections::HashSet<(&str, &str)> = pairs
        .iter()
        .zip(bound)
        .filter(|(_, bound)| !bound)
        .map(|((i, ns), _)| (grants[*i].role.as_str(), ns.as_str()))
        .collect();
    let mut pending = Vec::new();
    for ns in &left {
        for (i, grant) in grants.iter().enumerate() {
            if unbindable.contains(&(grant.role.as_str(), ns.as_str())) {
                pending.extend(authority::permissions(grant, ns).into_iter().map(|a| (i, a)));
            }
        }
    }
    let pending = authority::each_once(pending);
    budget.take(pending.len(), n, who)?;
    let grant_of: std::collections::HashMap<Ask, usize> = pending.iter().map(|(i, a)| (a.clone(), *i)).collect();
    if let Some(missing) = first_denied(client, user, pending.into_iter().map(|(_, a)| a).collect()).await? {
        let grant = grant_of.get(&missing).and_then(|i| grants.get(*i));
        return Err(match grant {
            Some(grant) => authority::beyond_author(who, grant, &missing),
            None => authority::not_an_owner(who, &missing),
        });
    }
    Ok(())
}
