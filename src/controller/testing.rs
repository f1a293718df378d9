//! A reconcile [`Context`] over a mocked API server, for tests of the shape of the requests a
//! reconcile makes (as kube-rs/controller-rs does). The real control plane stays the proof
//! that access is granted or revoked (tests/); this only checks which calls go out, in
//! which order, with which content.

use std::sync::Arc;

use futures::channel::mpsc;
use http::{Request, Response};
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use kube::Client;

use super::bookkeeping::{Bookkeeping, GrantActivity, Retrigger};
use super::caches::{CachedNamespace, Caches};
use super::context::{Context, Policy};
use super::events::Publisher;
use crate::api::{RegistrationAssignment, RegistrationDefinition};

/// The mocked API server's end: each request the client sends, with a way to answer it.
pub type ApiServer = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The caches' writers, to put the cluster's state in place.
pub struct Cluster {
    pub namespaces: Writer<CachedNamespace>,
    pub definitions: Writer<RegistrationDefinition>,
    pub assignments: Writer<RegistrationAssignment>,
    pub caches: Caches,
}

impl Cluster {
    pub fn namespace(&mut self, ns: impl Into<CachedNamespace>) {
        let event = watcher::Event::Apply(ns.into());
        self.namespaces.apply_watcher_event(&event);
        self.caches.indexes.namespaces_by_subscription.observe(&event);
    }

    pub fn definition(&mut self, d: RegistrationDefinition) {
        let event = watcher::Event::Apply(d);
        self.definitions.apply_watcher_event(&event);
        self.caches.indexes.definitions_by_namespace.observe(&event);
        self.caches.indexes.definitions_by_principal_namespace.observe(&event);
    }

    pub fn assignment(&mut self, a: RegistrationAssignment) {
        let event = watcher::Event::Apply(a);
        self.assignments.apply_watcher_event(&event);
        self.caches.indexes.assignments_by_namespace.observe(&event);
        self.caches.indexes.assignments_by_uid.observe(&event);
    }
}

/// Empty caches, and the writers that fill them.
pub fn cluster() -> Cluster {
    let namespaces = Writer::default();
    let definitions = Writer::default();
    let assignments = Writer::default();
    let caches = Caches {
        namespaces: namespaces.as_reader(),
        definitions: definitions.as_reader(),
        assignments: assignments.as_reader(),
        catalog: Arc::default(),
        roles: Arc::default(),
        bindings: Arc::default(),
        indexes: Arc::default(),
        activations: Writer::default().as_reader(),
        reviews: Writer::default().as_reader(),
        guardrails: Writer::default().as_reader(),
        onboardings: Writer::default().as_reader(),
    };
    Cluster { namespaces, definitions, assignments, caches }
}

/// A context whose client talks to the returned mock, with synced (empty) caches.
pub fn context() -> (Arc<Context>, ApiServer, Cluster) {
    let (service, server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let cluster = cluster();
    let caches = cluster.caches.clone();
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let grants = Arc::new(GrantActivity::default());
    tokio::spawn({
        let grants = grants.clone();
        async move { grants.follow().await }
    });
    let (assignment_triggers, _) = mpsc::unbounded();
    let retrigger = Retrigger {
        assignments: assignment_triggers.clone(),
        definitions: mpsc::unbounded().0,
        namespaces: mpsc::unbounded().0,
        activations: mpsc::unbounded().0,
    };
    let reporter = Reporter { controller: "kube-lighthouse".into(), instance: None };
    let bookkeeping = Bookkeeping::new(
        client.clone(),
        Publisher::new(client.clone(), reporter),
        metrics.clone(),
        grants.clone(),
        retrigger,
        4,
    );
    let (_, ready) = tokio::sync::watch::channel(true);
    let ctx = Context {
        client,
        caches: caches.clone(),
        policy: Arc::new(Policy { templates: Default::default(), limits: Default::default() }),
        ready,
        metrics,
        grants,
        expectations: Arc::default(),
        bookkeeping: Arc::new(bookkeeping),
        assignment_triggers,
        retries: Default::default(),
        activation_triggers: mpsc::unbounded().0,
        audit: mpsc::unbounded().0,
        clock: Default::default(),
        user_access: tokio::sync::watch::channel(Some(Ok(()))).1,
        onboarding: Arc::new(crate::controller::onboarding::Shared::new(mpsc::unbounded().0, mpsc::unbounded().0)),
    };
    (Arc::new(ctx), server, cluster)
}

/// The next request: method, path with query, and JSON body (Null when empty).
pub async fn next(
    server: &mut ApiServer,
) -> (String, String, serde_json::Value, tower_test::mock::SendResponse<Response<Body>>) {
    let (request, send) = tokio::time::timeout(std::time::Duration::from_secs(5), server.next_request())
        .await
        .expect("a request within 5 s")
        .expect("the client is alive");
    let method = request.method().to_string();
    let path = request.uri().to_string();
    let bytes = http_body_util::BodyExt::collect(request.into_body()).await.expect("body").to_bytes();
    let body =
        if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    (method, path, body, send)
}

/// Answers with `status` and JSON `body`.
pub fn answer(send: tower_test::mock::SendResponse<Response<Body>>, status: u16, body: serde_json::Value) {
    let response = Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&body).expect("JSON")))
        .expect("response");
    send.send_response(response);
}
