//! Prometheus metrics: reconciles, errors by reason, durations, API writes, and the
//! delegations and materialized objects currently known, by state.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::api::ProvisioningState;

/// Labels of the reconcile counter and duration: which reconciler.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `assignment`, `definition` or `namespace`.
    pub controller: &'static str,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Which reconciler (or `bookkeeping`).
    pub controller: &'static str,
    /// The error's metric label.
    pub reason: &'static str,
}

/// Labels of the API write counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The kind written (`Role`, `RoleBinding`, `Event`, …).
    pub kind: &'static str,
    /// `apply`, `delete`, `status`, `patch` or `create`.
    pub verb: &'static str,
}

/// Labels of the delegation gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `RegistrationDefinition` or `RegistrationAssignment`.
    pub kind: &'static str,
    /// The provisioning state ([`state_label`]).
    pub state: &'static str,
}

/// Labels of the materialized-object gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `Role` or `RoleBinding`.
    pub kind: &'static str,
}

/// Labels of the activations gauge: the phase (SPEC §9: Pending, Active, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The RoleActivation phase.
    pub phase: &'static str,
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    writes: Family<WriteLabels, Counter>,
    /// Seconds from an activation's `expiresAt` to the removal of its access (SPEC §9).
    overdue: Histogram,
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
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, by error reason", errors.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration", durations.clone());
        registry.register("api_writes", "Writes made to the API server", writes.clone());
        let overdue = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        registry.register(
            "activation_overdue_seconds",
            "Seconds from an activation's expiresAt to the removal of its access",
            overdue.clone(),
        );
        Metrics { registry, reconciles, errors, durations, writes, overdue }
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

/// The `state` label of a provisioning state (`Pending` before the first status).
pub fn state_label(state: Option<ProvisioningState>) -> &'static str {
    state.map_or("Pending", ProvisioningState::as_str)
}

impl Metrics {
    /// Counts a reconcile of `controller`; the returned timer records its duration in
    /// seconds when dropped.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.reconciles.get_or_create(&ControllerLabels { controller }).inc();
        ReconcileTimer { metrics: self, controller, start: Instant::now() }
    }

    /// Counts a failure of `controller` by `reason`.
    pub fn error(&self, controller: &'static str, reason: &'static str) {
        self.errors.get_or_create(&ErrorLabels { controller, reason }).inc();
    }

    /// Counts one API write of `kind` by `verb`.
    pub fn write(&self, kind: &'static str, verb: &'static str) {
        self.writes.get_or_create(&WriteLabels { kind, verb }).inc();
    }

    /// Records that an expired activation's access was removed `seconds` after `expiresAt`.
    pub fn overdue(&self, seconds: f64) {
        self.overdue.observe(seconds.max(0.0));
    }

    /// Adds `collector`, asked for its metrics at every scrape (the controller's cache
    /// gauges: [`crate::controller::caches::CacheGauges`]). Metrics depends on nothing it
    /// measures.
    pub fn register(&mut self, collector: Box<dyn prometheus_client::collector::Collector>) {
        self.registry.register_collector(collector);
    }

    /// Registers one more metric under the `kube_lighthouse_` prefix.
    pub fn register_metric(&mut self, name: &str, help: &str, metric: impl prometheus_client::registry::Metric) {
        self.registry.register(name, help, metric);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
