//! The views API (SPEC §10): `view.kubelighthouse.io/v1alpha1` `customers` and `delegations`,
//! answered from the controller's watch caches (no API request per call) and filtered to the
//! caller the front proxy names.
//!
//! Every route sits behind [`authenticate`]: a request without a client certificate that
//! chains to the front-proxy CA (and an allowed name and a user) gets `401` and a `Status`,
//! whatever headers it carries. The handlers decode the request, take a snapshot of the
//! caches, call [`crate::model::views`] and [`super::protocol`], and encode.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use serde::Serialize;
use tracing::debug;

use super::front_proxy::{FrontProxy, Identity};
use super::protocol::{self, Format, ListQuery, ViewResource};
use super::tls::PeerCertificates;
use crate::api::view::{CustomerList, DelegationList};
use crate::api::Caller as ActivationCaller;
use crate::controller::caches::Caches;
use crate::controller::context::Policy;
use crate::controller::dereference;
use crate::model::views::{self, Caller, ViewContext};
use crate::model::{activation, keys};

/// Where the views come from.
pub enum Source {
    /// This cluster: the reconcilers' watch caches and identity templates.
    Cluster {
        /// The watch caches (namespaces, definitions, assignments, catalog).
        caches: Caches,
        /// The identity templates the controller materializes with (SPEC §2).
        policy: Arc<Policy>,
        /// The sign-in broker's issuer URL (`--federation-issuer`), when it runs one: the
        /// reports say so, for the hubs' engineers (docs/fleet.md).
        broker: Option<String>,
    },
    /// A hub (docs/fleet.md): the reports it follows.
    Hub(Arc<crate::hub::Fleet>),
}

/// What the views read: their source, its readiness, and the front-proxy trust.
pub struct Views {
    /// This cluster's caches, or a hub's reports.
    pub source: Source,
    /// True once every cache has its first list; until then lists would be incomplete.
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// Who may speak for the caller.
    pub trust: Arc<FrontProxy>,
}

/// A response with a `Status` body and its code.
fn status_response(status: Status) -> Response {
    let code = status.code.and_then(|c| u16::try_from(c).ok()).and_then(|c| StatusCode::from_u16(c).ok());
    (code.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(status)).into_response()
}

fn json<T: Serialize>(value: &T, format: Format) -> Response {
    let content_type = match format {
        Format::Json => "application/json",
        Format::Table => protocol::TABLE_CONTENT_TYPE,
    };
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => status_response(protocol::failure(500, "InternalError", format!("cannot encode: {e}"), None)),
    }
}

fn not_acceptable(accept: Option<&str>) -> Response {
    let message = format!("only application/json and meta.k8s.io/v1 Table are served, not {:?}", accept.unwrap_or(""));
    status_response(protocol::failure(406, "NotAcceptable", message, None))
}

fn accept(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
}

/// Refuses every request whose front-proxy certificate and headers do not authenticate a
/// caller (401), and hands the caller to the handlers.
pub async fn authenticate(State(views): State<Arc<Views>>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<PeerCertificates>().cloned().unwrap_or_default();
    match views.trust.authenticate(&peer, request.headers()) {
        Ok(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(why) => {
            debug!(error = %why, path = %request.uri().path(), "views request refused");
            status_response(protocol::failure(401, "Unauthorized", format!("Unauthorized: {why}"), None))
        }
    }
}

async fn discovery<T: Serialize>(headers: HeaderMap, document: fn() -> T) -> Response {
    match protocol::negotiate(accept(&headers), false) {
        Some(format) => json(&document(), format),
        None => not_acceptable(accept(&headers)),
    }
}

fn caller(identity: Identity) -> Caller {
    Caller { username: identity.username, groups: identity.groups, extra: identity.extra }
}

/// The views `caller` sees now, from the caches (one snapshot per request), or at a hub from
/// the reports read.
fn visible(views: &Views, caller: &Caller) -> Vec<crate::api::view::Delegation> {
    let (caches, policy) = match &views.source {
        Source::Cluster { caches, policy, .. } => (caches, policy),
        Source::Hub(fleet) => return crate::model::fleet::fleet_delegations(caller, &fleet.snapshot()),
    };
    let catalog = caches.catalog.current();
    let ctx = ViewContext { namespaces: caches, templates: &policy.templates, catalog: &catalog };
    let definitions = caches.definitions.state();
    let assignments = caches.assignments.state();
    let mut delegations =
        views::delegations(caller, definitions.iter().map(AsRef::as_ref), assignments.iter().map(AsRef::as_ref), &ctx);
    for d in &mut delegations {
        d.activations = readable_activations(caches, policy, caller, d);
    }
    delegations
}

/// The activations under delegation `d` that `caller` may read (its own, and those it
/// may review), as `<namespace>/<name>`: the same rule as the per-activation RBAC
/// ([`activation::may_read`]). Only for a caller eligible or an approver there.
fn readable_activations(
    caches: &Caches,
    policy: &Policy,
    caller: &Caller,
    d: &crate::api::view::Delegation,
) -> Vec<String> {
    if d.my_roles.eligible.is_empty() && d.my_roles.approver.is_empty() {
        return Vec::new();
    }
    let me = ActivationCaller { username: caller.username.clone(), groups: caller.groups.clone(), amr: Vec::new() };
    let mut out = Vec::new();
    for a in caches.activations_of(&d.namespace, &d.assignment) {
        let namespace = a.metadata.namespace.clone().unwrap_or_default();
        if a.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Ok(eligible) = dereference::eligibility(caches, policy, &namespace, &d.assignment) else {
            continue;
        };
        let requester = activation::stamped(a.metadata.annotations.as_ref(), keys::REQUESTER);
        if activation::may_read(&me, requester.as_ref(), &a.spec, &eligible) {
            out.push(format!("{namespace}/{}", a.metadata.name.clone().unwrap_or_default()));
        }
    }
    out.sort();
    out
}

/// Encodes `resource`'s objects visible to the caller, all of them (`name` None: a list) or
/// the one named (a get: 404 when the caller sees no such object).
fn respond(
    views: &Views,
    identity: Identity,
    resource: ViewResource,
    name: Option<&str>,
    query: &ListQuery,
    format: Format,
) -> Response {
    if !*views.ready.borrow() {
        let message = "kube-lighthouse is starting: its caches are not synced yet; retry".to_string();
        return status_response(protocol::failure(503, "ServiceUnavailable", message, None));
    }
    let caller = caller(identity);
    let delegations = visible(views, &caller);
    let wanted = name.or(query.name.as_deref());
    let keep = |n: &Option<String>| wanted.is_none_or(|w| n.as_deref() == Some(w));
    match resource {
        ViewResource::Customers => {
            let mut items = views::customers(&delegations);
            items.retain(|c| keep(&c.metadata.name));
            encode(
                items,
                name,
                resource,
                format,
                |items| views::customer_table(items, query.include_object),
                CustomerList::new,
            )
        }
        ViewResource::Clusters => {
            let mut items = match &views.source {
                Source::Hub(fleet) => crate::model::fleet::with_endpoints(
                    crate::model::fleet::fleet_clusters(&caller, &fleet.snapshot()),
                    &fleet.endpoints(),
                ),
                Source::Cluster { .. } => Vec::new(),
            };
            items.retain(|c| keep(&c.metadata.name));
            encode(
                items,
                name,
                resource,
                format,
                |items| crate::model::fleet::cluster_table(items, query.include_object),
                crate::api::view::FleetClusterList::new,
            )
        }
        ViewResource::Delegations => {
            let mut items = delegations;
            items.retain(|d| keep(&d.metadata.name));
            encode(
                items,
                name,
                resource,
                format,
                |items| views::delegation_table(items, query.include_object),
                DelegationList::new,
            )
        }
    }
}

fn encode<T: Serialize, L: Serialize>(
    mut items: Vec<T>,
    name: Option<&str>,
    resource: ViewResource,
    format: Format,
    table: impl Fn(&[T]) -> crate::api::view::Table,
    list: impl Fn(Vec<T>) -> L,
) -> Response {
    match (name, format) {
        (Some(name), _) if items.is_empty() => status_response(protocol::not_found(resource, name)),
        (_, Format::Table) => json(&table(&items), format),
        (Some(_), Format::Json) => json(&items.remove(0), format),
        (None, Format::Json) => json(&list(items), format),
    }
}

/// 404 for a resource this API does not serve, as the API server words it.
fn unknown_resource() -> Response {
    status_response(protocol::failure(404, "NotFound", "the server could not find the requested resource".into(), None))
}

async fn list(
    State(views): State<Arc<Views>>,
    Extension(identity): Extension<Identity>,
    Path(resource): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(resource) = ViewResource::from_plural(&resource) else {
        return unknown_resource();
    };
    let params = protocol::query_parameters(uri.query());
    let query = match protocol::list_query(&params) {
        Ok(q) => q,
        Err(status) => return status_response(*status),
    };
    match protocol::negotiate(accept(&headers), true) {
        Some(format) => respond(&views, identity, resource, None, &query, format),
        None => not_acceptable(accept(&headers)),
    }
}

async fn get_one(
    State(views): State<Arc<Views>>,
    Extension(identity): Extension<Identity>,
    Path((resource, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(resource) = ViewResource::from_plural(&resource) else {
        return unknown_resource();
    };
    let params = protocol::query_parameters(uri.query());
    let query = ListQuery {
        include_object: views::IncludeObject::from_query(params.get("includeObject").map(String::as_str)),
        name: None,
    };
    match protocol::negotiate(accept(&headers), true) {
        Some(format) => respond(&views, identity, resource, Some(&name), &query, format),
        None => not_acceptable(accept(&headers)),
    }
}

/// `GET reports/<tenant>`: the report of the delegations to that managing tenant
/// (docs/fleet.md). The API server has already authorized the caller for `get` on exactly this
/// name (RBAC `resourceNames`): that is the customer's grant, so no caller filter applies here.
/// A tenant that is not a GUID is 404.
async fn get_report(
    State(views): State<Arc<Views>>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !*views.ready.borrow() {
        let message = "kube-lighthouse is starting: its caches are not synced yet; retry".to_string();
        return status_response(protocol::failure(503, "ServiceUnavailable", message, None));
    }
    let Some(format) = protocol::negotiate(accept(&headers), false) else {
        return not_acceptable(accept(&headers));
    };
    let Some(tenant) = crate::model::tenant::Guid::parse(&name) else {
        let details = k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
            group: Some(crate::api::view::VIEW_GROUP.into()),
            kind: Some(crate::api::view::REPORTS.into()),
            name: Some(name.clone()),
            ..Default::default()
        };
        let message = format!(
            "reports.{} \"{name}\" not found: a report is named by a managing tenant ID",
            crate::api::view::VIEW_GROUP
        );
        return status_response(protocol::failure(404, "NotFound", message, Some(details)));
    };
    let Source::Cluster { caches, policy, broker } = &views.source else {
        let message = "a hub serves no report: reports are read from each customer cluster".to_string();
        return status_response(protocol::failure(404, "NotFound", message, None));
    };
    let catalog = caches.catalog.current();
    let ctx = ViewContext { namespaces: caches, templates: &policy.templates, catalog: &catalog };
    let definitions = caches.definitions.state();
    let assignments = caches.assignments.state();
    let observed = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string());
    let mut report = crate::model::fleet::report(
        &tenant,
        definitions.iter().map(AsRef::as_ref),
        assignments.iter().map(AsRef::as_ref),
        &ctx,
        observed,
    );
    report.broker = broker.clone();
    debug!(tenant = %tenant, reader = %identity.username, delegations = report.delegations.len(), "report read");
    json(&report, format)
}

/// A list of reports is refused: each is granted and read by name.
async fn list_reports() -> Response {
    let message = "reports are read one managing tenant at a time: get reports/<tenantId>".into();
    status_response(protocol::failure(405, "MethodNotAllowed", message, None))
}

async fn method_not_allowed() -> Response {
    status_response(protocol::failure(405, "MethodNotAllowed", "the views are read-only: get and list".into(), None))
}

/// The routes of the views API, every one behind [`authenticate`]. `/openapi/v2` and
/// `/openapi/v3` are not served (404): the aggregator then leaves the group out of the merged
/// OpenAPI documents, which `kubectl get` does not need.
pub fn router(views: Arc<Views>) -> Router {
    let base = format!("/apis/{}/{}", crate::api::view::VIEW_GROUP, crate::api::view::VIEW_VERSION);
    Router::new()
        .route("/apis", get(|h: HeaderMap| discovery(h, protocol::api_group_list)).fallback(method_not_allowed))
        .route(
            &format!("/apis/{}", crate::api::view::VIEW_GROUP),
            get(|h: HeaderMap| discovery(h, protocol::api_group)).fallback(method_not_allowed),
        )
        .route(&base, get(|h: HeaderMap| discovery(h, protocol::api_resource_list)).fallback(method_not_allowed))
        .route(&format!("{base}/{}", crate::api::view::REPORTS), get(list_reports).fallback(method_not_allowed))
        .route(&format!("{base}/{}/{{name}}", crate::api::view::REPORTS), get(get_report).fallback(method_not_allowed))
        .route(&format!("{base}/{{resource}}"), get(list).fallback(method_not_allowed))
        .route(&format!("{base}/{{resource}}/{{name}}"), get(get_one).fallback(method_not_allowed))
        .route_layer(axum::middleware::from_fn_with_state(views.clone(), authenticate))
        .with_state(views)
}
