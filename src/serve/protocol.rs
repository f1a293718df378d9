//! The Kubernetes API conventions the views API follows, as pure functions: discovery
//! documents, content negotiation (JSON or a server-side `Table`), `Status` bodies and the
//! list query parameters (SPEC §10).
//!
//! Discovery is the legacy kind (`APIGroupList`, `APIGroup`, `APIResourceList`). The
//! aggregator first asks `GET /apis` for the aggregated document (`as=APIGroupDiscoveryList`),
//! and on `406 Not Acceptable` falls back to `GET /apis/<group>/<version>`, which is what
//! clients then see merged into the API server's own discovery.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, GroupVersionForDiscovery, Status, StatusDetails,
};

use crate::api::view::{CLUSTERS, CUSTOMERS, DELEGATIONS, REPORTS, VIEW_API_VERSION, VIEW_GROUP, VIEW_VERSION};
use crate::model::views::IncludeObject;

/// A resource of the views API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewResource {
    /// `customers`, kind `Customer`.
    Customers,
    /// `delegations`, kind `Delegation`.
    Delegations,
    /// `clusters`, kind `FleetCluster`: at a hub, the clusters followed (docs/fleet.md).
    Clusters,
}

impl ViewResource {
    /// Every resource, in discovery order.
    pub const ALL: [ViewResource; 3] = [ViewResource::Customers, ViewResource::Delegations, ViewResource::Clusters];

    /// The resource named by the plural `name`, if it is one of ours.
    pub fn from_plural(name: &str) -> Option<ViewResource> {
        ViewResource::ALL.into_iter().find(|r| r.plural() == name)
    }

    /// `customers` or `delegations`.
    pub fn plural(self) -> &'static str {
        match self {
            ViewResource::Customers => CUSTOMERS,
            ViewResource::Delegations => DELEGATIONS,
            ViewResource::Clusters => CLUSTERS,
        }
    }

    /// `customer` or `delegation`.
    pub fn singular(self) -> &'static str {
        match self {
            ViewResource::Customers => "customer",
            ViewResource::Delegations => "delegation",
            ViewResource::Clusters => "cluster",
        }
    }

    /// `Customer` or `Delegation`.
    pub fn kind(self) -> &'static str {
        match self {
            ViewResource::Customers => "Customer",
            ViewResource::Delegations => "Delegation",
            ViewResource::Clusters => "FleetCluster",
        }
    }
}

fn group_version() -> GroupVersionForDiscovery {
    GroupVersionForDiscovery { group_version: VIEW_API_VERSION.into(), version: VIEW_VERSION.into() }
}

/// `GET /apis/view.kubelighthouse.io`.
pub fn api_group() -> APIGroup {
    APIGroup {
        name: VIEW_GROUP.into(),
        preferred_version: Some(group_version()),
        server_address_by_client_cidrs: None,
        versions: vec![group_version()],
    }
}

/// `GET /apis`: the one group this server serves.
pub fn api_group_list() -> APIGroupList {
    APIGroupList { groups: vec![api_group()] }
}

/// `GET /apis/view.kubelighthouse.io/v1alpha1`: `customers` and `delegations`, cluster-scoped,
/// `get` and `list` only, in no category (`kubectl get lighthouse` stays the customer's view);
/// and `reports` (the fleet's, docs/fleet.md), `get` only: each is read by name.
pub fn api_resource_list() -> APIResourceList {
    let mut resources: Vec<APIResource> = ViewResource::ALL
        .into_iter()
        .map(|r| APIResource {
            name: r.plural().into(),
            singular_name: r.singular().into(),
            namespaced: false,
            kind: r.kind().into(),
            verbs: vec!["get".into(), "list".into()],
            categories: None,
            group: None,
            version: None,
            short_names: None,
            storage_version_hash: None,
        })
        .collect();
    resources.push(APIResource {
        name: REPORTS.into(),
        singular_name: "report".into(),
        namespaced: false,
        kind: "Report".into(),
        verbs: vec!["get".into()],
        categories: None,
        group: None,
        version: None,
        short_names: None,
        storage_version_hash: None,
    });
    APIResourceList { group_version: VIEW_API_VERSION.into(), resources }
}

/// What a response is encoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The object or list itself, as JSON (`kubectl get -o yaml|json` asks for this).
    Json,
    /// A `meta.k8s.io/v1` `Table` (`kubectl get` asks for this).
    Table,
}

/// The content type of a `Table` response, as the API server labels it.
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// The format the `Accept` header asks for: the first media range this server can produce,
/// `application/json` (or a wildcard) as itself or `as=Table;g=meta.k8s.io;v=v1`. None when
/// nothing acceptable can be produced (406): YAML, protobuf, or another `as=` such as the
/// aggregated discovery document. No header, or an empty one, means JSON.
pub fn negotiate(accept: Option<&str>, table_allowed: bool) -> Option<Format> {
    let accept = accept.map(str::trim).unwrap_or_default();
    if accept.is_empty() {
        return Some(Format::Json);
    }
    accept.split(',').find_map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            return None;
        }
        let params: HashMap<String, &str> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"')))
            .collect();
        match params.get("as") {
            None => Some(Format::Json),
            Some(&"Table")
                if table_allowed && params.get("g") == Some(&"meta.k8s.io") && params.get("v") == Some(&"v1") =>
            {
                Some(Format::Table)
            }
            Some(_) => None,
        }
    })
}

/// A `Status` failure: `code`, `reason` (`NotFound`, `Unauthorized`, …), `message`, and the
/// object it is about, if any.
pub fn failure(code: u16, reason: &str, message: String, details: Option<StatusDetails>) -> Status {
    Status {
        code: Some(i32::from(code)),
        details,
        message: Some(message),
        metadata: Default::default(),
        reason: Some(reason.into()),
        status: Some("Failure".into()),
    }
}

/// `404 NotFound` for `name` of `resource`, worded as the API server words it.
pub fn not_found(resource: ViewResource, name: &str) -> Status {
    let details = StatusDetails {
        group: Some(VIEW_GROUP.into()),
        kind: Some(resource.plural().into()),
        name: Some(name.into()),
        ..Default::default()
    };
    failure(404, "NotFound", format!("{}.{VIEW_GROUP} \"{name}\" not found", resource.plural()), Some(details))
}

/// The query parameters of `query` (the part of a URI after `?`), percent-decoded, `+` as a
/// space; the last value of a repeated name wins.
pub fn query_parameters(query: Option<&str>) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s).decode_utf8_lossy().into_owned()
    };
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// What a `list` asks for beyond the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// `includeObject` of a `Table` request.
    pub include_object: IncludeObject,
    /// `fieldSelector=metadata.name=<name>`: only that object.
    pub name: Option<String>,
}

/// The list query parameters: `includeObject`, and a `fieldSelector` on `metadata.name`.
/// `limit`, `continue`, `resourceVersion` and `timeoutSeconds` are accepted and ignored (every
/// list is complete and computed now).
///
/// # Errors
/// A `Status` for what cannot be served: `watch` (405), a label selector or another field
/// selector (400).
pub fn list_query(params: &HashMap<String, String>) -> Result<ListQuery, Box<Status>> {
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return Err(Box::new(failure(
            405,
            "MethodNotAllowed",
            "the views cannot be watched: list them again".into(),
            None,
        )));
    }
    if params.get("labelSelector").is_some_and(|s| !s.trim().is_empty()) {
        let message = "the views have no labels: labelSelector is not supported".into();
        return Err(Box::new(failure(400, "BadRequest", message, None)));
    }
    let mut name = None;
    if let Some(selector) = params.get("fieldSelector").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let value = selector.strip_prefix("metadata.name==").or_else(|| selector.strip_prefix("metadata.name="));
        match value {
            Some(v) if !v.contains(',') => name = Some(v.to_string()),
            _ => {
                let message = format!("field selector {selector:?} is not supported: only metadata.name=<name>");
                return Err(Box::new(failure(400, "BadRequest", message, None)));
            }
        }
    }
    Ok(ListQuery { include_object: IncludeObject::from_query(params.get("includeObject").map(String::as_str)), name })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubectl get` (1.32 and later) sends.
    const KUBECTL_GET: &str =
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn kubectl_get_gets_a_table_and_yaml_gets_json() {
        assert_eq!(negotiate(Some(KUBECTL_GET), true), Some(Format::Table));
        assert_eq!(negotiate(Some(KUBECTL_GET), false), Some(Format::Json), "discovery has no table");
        assert_eq!(negotiate(Some("application/json"), true), Some(Format::Json));
        assert_eq!(negotiate(None, true), Some(Format::Json));
        assert_eq!(negotiate(Some("*/*"), true), Some(Format::Json));
        assert_eq!(negotiate(Some("application/vnd.kubernetes.protobuf, application/json"), true), Some(Format::Json));
    }

    #[test]
    fn what_cannot_be_produced_is_not_acceptable() {
        let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
                          application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        assert_eq!(negotiate(Some(aggregated), false), None, "the aggregator falls back to legacy discovery");
        assert_eq!(negotiate(Some("application/yaml"), true), None);
        assert_eq!(negotiate(Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io"), true), None);
    }

    #[test]
    fn discovery_lists_the_cluster_scoped_read_only_resources() {
        let list = serde_json::to_value(api_resource_list()).expect("json");
        assert_eq!(list["kind"], "APIResourceList");
        assert_eq!(list["groupVersion"], "view.kubelighthouse.io/v1alpha1");
        let resources = list["resources"].as_array().expect("resources");
        assert_eq!(resources.len(), 4);
        assert_eq!(
            (resources[3]["name"].as_str(), resources[3]["verbs"].clone()),
            (Some("reports"), serde_json::json!(["get"]))
        );
        let expected = [("customers", "Customer"), ("delegations", "Delegation"), ("clusters", "FleetCluster")];
        for (r, (name, kind)) in resources.iter().zip(expected) {
            assert_eq!(r["name"], name);
            assert_eq!(r["kind"], kind);
            assert_eq!(r["namespaced"], false);
            assert_eq!(r["verbs"], serde_json::json!(["get", "list"]));
        }
        let groups = serde_json::to_value(api_group_list()).expect("json");
        assert_eq!(groups["kind"], "APIGroupList");
        assert_eq!(groups["groups"][0]["preferredVersion"]["groupVersion"], "view.kubelighthouse.io/v1alpha1");
    }

    #[test]
    fn an_unknown_name_is_a_404_status() {
        let status = serde_json::to_value(not_found(ViewResource::Customers, "nobody")).expect("json");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["apiVersion"], "v1");
        assert_eq!(status["code"], 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["message"], "customers.view.kubelighthouse.io \"nobody\" not found");
    }

    #[test]
    fn query_parameters_are_decoded() {
        let q = query_parameters(Some("limit=500&fieldSelector=metadata.name%3Da+b&includeObject=Object&flag"));
        assert_eq!(q.get("fieldSelector").map(String::as_str), Some("metadata.name=a b"));
        assert_eq!(q.get("limit").map(String::as_str), Some("500"));
        assert_eq!(q.get("flag").map(String::as_str), Some(""));
        assert!(query_parameters(None).is_empty());
    }

    #[test]
    fn lists_take_a_name_selector_and_refuse_watches_and_labels() {
        let q =
            |pairs: &[(&str, &str)]| list_query(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert_eq!(q(&[("limit", "500")]).expect("ok"), ListQuery::default());
        assert_eq!(q(&[("fieldSelector", "metadata.name=a")]).expect("ok").name.as_deref(), Some("a"));
        assert_eq!(q(&[("includeObject", "Object")]).expect("ok").include_object, IncludeObject::Object);
        assert_eq!(q(&[("watch", "true")]).expect_err("watch").code, Some(405));
        assert_eq!(q(&[("labelSelector", "a=b")]).expect_err("labels").code, Some(400));
        assert_eq!(q(&[("fieldSelector", "spec.x=a")]).expect_err("field").code, Some(400));
    }
}
