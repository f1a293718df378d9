//! Prometheus metrics: reconciles, errors by reason, durations, API writes, and the
//! delegations and materialized objects currently known, by state.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::api::ProvisioningState;
use crate::controller::context::Caches;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: &'static str,
    pub verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub kind: &'static str,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    writes: Family<WriteLabels, Counter>,
    delegations: Family<StateLabels, Gauge>,
    materialized: Family<KindLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kube_lighthouse");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let writes = Family::<WriteLabels, Counter>::default();
        let delegations = Family::<StateLabels, Gauge>::default();
        let materialized = Family::<KindLabels, Gauge>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, by error reason", errors.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration", durations.clone());
        registry.register("api_writes", "Writes made to the API server", writes.clone());
        registry.register("delegations", "Definitions and assignments by provisioning state", delegations.clone());
        registry.register("materialized_objects", "Roles and RoleBindings the controller holds", materialized.clone());
        Metrics { registry, reconciles, errors, durations, writes, delegations, materialized }
    }
}

/// Measures one reconcile from creation to drop.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        let labels = ControllerLabels { controller: self.controller };
        self.metrics.durations.get_or_create(&labels).observe(self.start.elapsed().as_secs_f64());
    }
}

fn state_label(state: Option<ProvisioningState>) -> &'static str {
    state.map_or("Pending", ProvisioningState::as_str)
}

impl Metrics {
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.reconciles.get_or_create(&ControllerLabels { controller }).inc();
        ReconcileTimer { metrics: self, controller, start: Instant::now() }
    }

    pub fn error(&self, controller: &'static str, reason: &'static str) {
        self.errors.get_or_create(&ErrorLabels { controller, reason }).inc();
    }

    pub fn write(&self, kind: &'static str, verb: &'static str) {
        self.writes.get_or_create(&WriteLabels { kind, verb }).inc();
    }

    /// The text exposition, with the state gauges taken from the caches at scrape time.
    pub fn render(&self, caches: &Caches) -> String {
        self.delegations.clear();
        for d in caches.definitions.state() {
            let state = state_label(d.status.as_ref().and_then(|s| s.provisioning_state));
            self.delegations.get_or_create(&StateLabels { kind: "RegistrationDefinition", state }).inc();
        }
        for a in caches.assignments.state() {
            let state = state_label(a.status.as_ref().and_then(|s| s.provisioning_state));
            self.delegations.get_or_create(&StateLabels { kind: "RegistrationAssignment", state }).inc();
        }
        self.materialized.get_or_create(&KindLabels { kind: "Role" }).set(caches.roles.len() as i64);
        self.materialized.get_or_create(&KindLabels { kind: "RoleBinding" }).set(caches.bindings.len() as i64);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
