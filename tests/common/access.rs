//! What an identity may do, asked two ways: of the authorizer (SubjectAccessReview, on the
//! identity's behalf), and by the identity itself with its own credentials (a real request,
//! or a SelfSubjectAccessReview).

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use kube::Client;

use super::sign_in::signed_in;
use super::wait::eventually;

/// What a requester wants to do, for a SubjectAccessReview.
#[derive(Clone, Debug)]
pub struct Access<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl Access<'_> {
    /// The request's attributes, as an access review asks about them.
    pub fn attributes(&self) -> ResourceAttributes {
        ResourceAttributes {
            verb: Some(self.verb.into()),
            group: Some(self.group.into()),
            resource: Some(self.resource.into()),
            subresource: Some(self.subresource.into()),
            namespace: Some(self.namespace.into()),
            name: Some(self.name.into()),
            ..Default::default()
        }
    }
}

/// `resource[.group][/subresource]` or `resource[/subresource][.group]`, e.g. `pods/exec`,
/// `deployments.apps/scale`, `registrationassignments/status.managedservices.kubelighthouse.io`.
pub fn access<'a>(verb: &'a str, resource: &'a str, namespace: &'a str) -> Access<'a> {
    let (base, sub) = resource.split_once('/').unwrap_or((resource, ""));
    let (resource, group, subresource) = match (base.split_once('.'), sub.split_once('.')) {
        (Some((r, g)), _) => (r, g, sub),
        (None, Some((s, g))) => (base, g, s),
        (None, None) => (base, "", sub),
    };
    Access { verb, group, resource, subresource, namespace, name: "" }
}

/// Asks the API server whether `user` (in `groups`) may do `what`: the authorizer's verdict,
/// exactly as a request by that identity would get it.
pub async fn allowed(client: &Client, user: &str, groups: &[&str], what: &Access<'_>) -> bool {
    review(client, user, groups, what).await.expect("SubjectAccessReview")
}

/// [`allowed`], with a failed review as an error rather than a failed test.
pub async fn review(client: &Client, user: &str, groups: &[&str], what: &Access<'_>) -> Result<bool, kube::Error> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(what.attributes()),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Waits until `user`/`groups` get exactly `expected` for `what`: asked of the authorizer
/// (SubjectAccessReview), and, when the identity is a managing tenant's (its user and groups
/// all projected from one tenant with a local issuer, see [`signed_in`]), also by that
/// identity itself, signed in with its own token: a real `list` for lists, a
/// SelfSubjectAccessReview otherwise.
pub async fn expect_access(client: &Client, user: &str, groups: &[&str], what: Access<'_>, expected: bool) {
    let label = format!("{user} {groups:?} {} {:?}", if expected { "may" } else { "may not" }, what);
    eventually(&label, || {
        let what = what.clone();
        async move { allowed(client, user, groups, &what).await == expected }
    })
    .await;
    if let Some(own) = signed_in(user, groups).await {
        eventually(&format!("{label}, signed in with its own token"), || {
            let what = what.clone();
            let own = own.clone();
            async move { real_request(&own, &what).await == expected }
        })
        .await;
    }
}

/// Whether `client`'s own identity may do `what`, asked by a real request: a `list` is made
/// (200 or 403); anything else is asked with a SelfSubjectAccessReview, which the API server
/// answers for the identity the request authenticated as.
pub async fn real_request(client: &Client, what: &Access<'_>) -> bool {
    use k8s_openapi::api::authorization::v1::{SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
    if what.verb == "list" && what.subresource.is_empty() && what.name.is_empty() {
        let resource = kube::discovery::ApiResource {
            group: what.group.to_string(),
            version: String::new(),
            api_version: String::new(),
            kind: String::new(),
            plural: what.resource.to_string(),
        };
        let version = match what.group {
            "" => "v1",
            "managedservices.kubelighthouse.io" => "v1alpha1",
            _ => "",
        };
        if !version.is_empty() {
            let api_version =
                if what.group.is_empty() { version.to_string() } else { format!("{}/{version}", what.group) };
            let resource = kube::discovery::ApiResource { version: version.into(), api_version, ..resource };
            let api: Api<kube::core::DynamicObject> = Api::namespaced_with(client.clone(), what.namespace, &resource);
            return match api.list(&kube::api::ListParams::default().limit(1)).await {
                Ok(_) => true,
                Err(kube::Error::Api(s)) if s.code == 403 => false,
                Err(e) => panic!("list {} in {} with a token: {e}", what.resource, what.namespace),
            };
        }
    }
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec { resource_attributes: Some(what.attributes()), ..Default::default() },
        ..Default::default()
    };
    let answer = api.create(&PostParams::default(), &review).await.expect("SelfSubjectAccessReview with a token");
    answer.status.is_some_and(|s| s.allowed)
}

/// The HTTP status a real `list pods` in `namespace` gets with `client`'s own credentials:
/// 200, 403 (forbidden) or 401 (not signed in).
pub async fn list_pods_status(client: &Client, namespace: &str) -> u16 {
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    match api.list(&kube::api::ListParams::default().limit(1)).await {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("list pods in {namespace}: {e}"),
    }
}

/// Waits until a real `list pods` in `namespace` with `client` gets `status`.
pub async fn expect_list_pods(client: &Client, namespace: &str, status: u16, who: &str) {
    eventually(&format!("{who} gets {status} listing pods in {namespace}"), || async {
        list_pods_status(client, namespace).await == status
    })
    .await;
}
