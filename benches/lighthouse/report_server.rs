//! Simulated customer clusters for phase 10 ([`crate::fleet`]): one TLS listener on 127.0.0.1
//! per cluster, answering what a customer cluster's API server answers a hub's report grant
//! (docs/fleet.md): `GET /apis/view.kubelighthouse.io/v1alpha1/reports/<tenant>` with the
//! bearer token the customer handed out gets that tenant's `Report` (JSON); a wrong or missing
//! token gets 401, another tenant's report, a list or any other path 403 (the grant names one
//! report), each as a `v1` `Status`, as kube-apiserver sends them. The harness changes a
//! cluster's report (or withdraws its grant) on command, and every cluster counts its reads.
//!
//! The servers run on a runtime of their own, so the harness's clients never wait behind them
//! in one scheduler; the report bytes are encoded once per change, as a cluster's
//! kube-lighthouse computes one per request from its caches (cheap next to TLS and HTTP).

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_lighthouse::api::view::{
    Offer, Report, ReportedAuthorization, ReportedDelegation, ReportedEligible, ReportedPrincipal, ScopeKind,
    VIEW_API_VERSION,
};
use kube_lighthouse::api::PrincipalType;
use kube_lighthouse::model::projection::IdentityTemplates;
use kube_lighthouse::model::tenant::Guid;
use kube_lighthouse::model::views::project;
use tokio_rustls::TlsAcceptor;

use crate::common::{tenant_id, CONTRIBUTOR, MSP_TENANT, READER};

/// The path prefix of a report.
const REPORTS: &str = "/apis/view.kubelighthouse.io/v1alpha1/reports";

/// Who the simulated delegations authorize, in the managing tenant (object IDs).
#[derive(Clone, Debug)]
pub struct Principals {
    /// Reader (standing) and eligible for Contributor: the engineer the benchmark signs in as
    /// is a member, so it sees every delegation of the fleet.
    pub engineers: String,
    /// Contributor (standing), and the approvers of the eligible authorization.
    pub admins: String,
}

/// One extra delegation in a cluster's report, to measure a change reaching the hub: a Reader
/// authorization for `user` alone.
#[derive(Clone, Debug)]
pub struct Extra {
    /// Its assignment's name (unique per change).
    pub assignment: String,
    /// The user it authorizes.
    pub user: String,
}

/// One simulated cluster.
pub struct Cluster {
    /// The TLS port on 127.0.0.1.
    pub port: u16,
    /// The bearer token of the customer's report grant.
    pub token: String,
    index: usize,
    report: RwLock<Bytes>,
    withdrawn: AtomicBool,
    reads: AtomicU64,
}

/// The simulated fleet, served until dropped.
pub struct Fleet {
    /// The clusters, in order.
    pub clusters: Vec<Arc<Cluster>>,
    delegations: usize,
    principals: Principals,
    runtime: Option<tokio::runtime::Runtime>,
}

fn principal(id: &str, kind: PrincipalType, display: &str) -> ReportedPrincipal {
    let tenant = Guid::parse(MSP_TENANT).expect("tenant GUID");
    ReportedPrincipal {
        principal_id: id.to_string(),
        principal_id_display_name: Some(display.to_string()),
        principal_type: Some(format!("{kind:?}")),
        subjects: project(&IdentityTemplates::default(), &tenant, id, Some(kind)),
    }
}

/// The customer tenant of cluster `index` (one customer per cluster).
pub fn customer_tenant(index: usize) -> String {
    format!("c0000000-0000-4000-8000-{index:012x}")
}

/// The report of cluster `index`: `delegations` delegations to the MSP tenant (a subscription
/// and three resource groups per four, the delegation shape of docs/benchmarks.md plus one
/// eligible authorization with its approvers, as the cluster would project them), and `extra`.
pub fn report(index: usize, delegations: usize, p: &Principals, extra: &[Extra]) -> Report {
    let offer = Offer {
        display_name: "Contoso Managed Services".into(),
        definition: "contoso-msp".into(),
        plan: None,
        description: None,
    };
    let delegation =
        |namespace: String, subscription: String, scope_kind, assignment: &str, auths| ReportedDelegation {
            name: format!("{namespace}.{assignment}"),
            creation_timestamp: None,
            customer_tenant_id: customer_tenant(index),
            namespaces: vec![namespace.clone()],
            namespace,
            subscription,
            scope_kind,
            assignment: assignment.to_string(),
            offer: offer.clone(),
            authorizations: auths,
            eligible_authorizations: Vec::new(),
            state: "Succeeded".into(),
            reason: None,
            message: None,
            compliance: "Compliant".into(),
            compliance_message: None,
        };
    let engineers = principal(&p.engineers, PrincipalType::Group, "MSP Engineers");
    let admins = principal(&p.admins, PrincipalType::Group, "MSP Admins");
    let mut out: Vec<ReportedDelegation> = (0..delegations)
        .map(|j| {
            let subscription = format!("customer-{index}-sub-{}", j / 4);
            let (namespace, scope) = match j % 4 {
                0 => (subscription.clone(), ScopeKind::Subscription),
                rg => (format!("{subscription}-rg-{rg}"), ScopeKind::ResourceGroup),
            };
            let user = format!("0000000{}-0000-4000-8000-{index:012x}", j % 10);
            let auths = vec![
                ReportedAuthorization {
                    principal: engineers.clone(),
                    role_definition_id: READER.into(),
                    role: "Reader".into(),
                },
                ReportedAuthorization {
                    principal: admins.clone(),
                    role_definition_id: CONTRIBUTOR.into(),
                    role: "Contributor".into(),
                },
                ReportedAuthorization {
                    principal: principal(&user, PrincipalType::User, "On-call engineer"),
                    role_definition_id: READER.into(),
                    role: "Reader".into(),
                },
            ];
            let mut d = delegation(namespace, subscription, scope, "contoso-msp", auths);
            d.eligible_authorizations = vec![ReportedEligible {
                principal: engineers.clone(),
                role_definition_id: CONTRIBUTOR.into(),
                role: "Contributor".into(),
                approvers: vec![admins.clone()],
            }];
            d
        })
        .collect();
    for e in extra {
        let namespace = format!("customer-{index}-sub-0");
        let auths = vec![ReportedAuthorization {
            principal: principal(&e.user, PrincipalType::User, "Probe"),
            role_definition_id: READER.into(),
            role: "Reader".into(),
        }];
        out.push(delegation(namespace.clone(), namespace, ScopeKind::Subscription, &e.assignment, auths));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Report {
        api_version: VIEW_API_VERSION.into(),
        kind: "Report".into(),
        metadata: ObjectMeta { name: Some(MSP_TENANT.into()), ..Default::default() },
        managed_by_tenant_id: MSP_TENANT.into(),
        observed_time: jiff::Timestamp::now().round(jiff::Unit::Second).expect("round").to_string(),
        delegations: out,
        broker: None,
    }
}

fn encoded(report: &Report) -> Bytes {
    Bytes::from(serde_json::to_vec(report).expect("report JSON"))
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

/// What cluster `c` answers `request` (the API server's authentication, then its RBAC for
/// the one grant, then the report).
fn answer(c: &Cluster, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let bearer =
        request.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(c.token.as_str()) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let name = request.uri().path().strip_prefix(REPORTS).and_then(|rest| rest.strip_prefix('/'));
    let forbidden = || {
        status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("{} is forbidden: the grant reads one report", request.uri().path()),
        )
    };
    if request.method() != hyper::Method::GET || name != Some(MSP_TENANT) || c.withdrawn.load(Ordering::Relaxed) {
        return forbidden();
    }
    c.reads.fetch_add(1, Ordering::Relaxed);
    let body = c.report.read().map(|b| b.clone()).unwrap_or_else(|p| p.into_inner().clone());
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("response")
}

impl Fleet {
    /// `clusters` simulated clusters of `delegations` delegations each, serving with the
    /// certificate `cert`/`key` (valid for 127.0.0.1) on a runtime of `threads` threads.
    pub fn start(
        clusters: usize,
        delegations: usize,
        principals: Principals,
        cert: &Path,
        key: &Path,
        threads: usize,
    ) -> Fleet {
        let config = Arc::new(kube_lighthouse::serve::tls::server_config(cert, key).expect("TLS configuration"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("report-server")
            .enable_all()
            .build()
            .expect("report servers' runtime");
        let mut all = Vec::with_capacity(clusters);
        for index in 0..clusters {
            // Bound here, served on the servers' runtime (this may run inside another).
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind a report server");
            listener.set_nonblocking(true).expect("non-blocking");
            let port = listener.local_addr().expect("port").port();
            let token = format!("report-grant-{index}-{}", tenant_id());
            let cluster = Arc::new(Cluster {
                port,
                token,
                index,
                report: RwLock::new(encoded(&report(index, delegations, &principals, &[]))),
                withdrawn: AtomicBool::new(false),
                reads: AtomicU64::new(0),
            });
            let (acceptor, served) = (TlsAcceptor::from(config.clone()), cluster.clone());
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { continue };
                    let (acceptor, cluster) = (acceptor.clone(), served.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                            let response = answer(&cluster, &request);
                            async move { Ok::<_, Infallible>(response) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
            all.push(cluster);
        }
        Fleet { clusters: all, delegations, principals, runtime: Some(runtime) }
    }

    /// Cluster `index`'s report becomes its base delegations plus `extra`, from now on.
    pub fn set_extra(&self, index: usize, extra: &[Extra]) {
        let c = &self.clusters[index];
        let bytes = encoded(&report(c.index, self.delegations, &self.principals, extra));
        match c.report.write() {
            Ok(mut r) => *r = bytes,
            Err(p) => *p.into_inner() = bytes,
        }
    }

    /// The customer of cluster `index` withdraws (or, `false`, gives back) the hub's grant.
    pub fn withdraw(&self, index: usize, withdrawn: bool) {
        self.clusters[index].withdrawn.store(withdrawn, Ordering::Relaxed);
    }

    /// Reports served so far, across the fleet.
    pub fn reads(&self) -> u64 {
        self.clusters.iter().map(|c| c.reads.load(Ordering::Relaxed)).sum()
    }

    /// The size of one cluster's report as served now, in bytes.
    pub fn report_bytes(&self, index: usize) -> usize {
        self.clusters[index].report.read().map(|b| b.len()).unwrap_or(0)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
