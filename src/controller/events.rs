//! Events (`kubectl describe`), created one per transition, in the `events.k8s.io/v1` shape
//! kube's `Recorder` uses.
//!
//! The `Recorder` keeps every Event of the last six minutes in memory to count repeats as a
//! series, and scans that cache on each publish. The controller publishes only when an
//! outcome changes, so repeats are rare, while onboarding thousands of customers made that
//! cache the largest item in memory and its scan quadratic (docs/benchmarks.md). This
//! publisher keeps nothing.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::Client;

/// Creates Events as the reporting controller `reporter`.
pub struct Publisher {
    client: Client,
    reporter: Reporter,
}

impl Publisher {
    pub fn new(client: Client, reporter: Reporter) -> Publisher {
        Publisher { client, reporter }
    }

    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        api.create(&PostParams::default(), &build(&self.reporter, event, regarding)).await.map(|_| ())
    }
}

/// The Event that says `event` about the object `regarding`.
pub fn build(reporter: &Reporter, event: &Event, regarding: &ObjectReference) -> K8sEvent {
    let now = jiff::Timestamp::now();
    let controller = &reporter.controller;
    K8sEvent {
        metadata: ObjectMeta {
            namespace: regarding.namespace.clone(),
            // Unique per object and moment, as the Recorder names them.
            name: Some(format!("{}.{:x}", regarding.name.as_ref().unwrap_or(controller), now.as_nanosecond())),
            ..Default::default()
        },
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        note: event.note.clone(),
        type_: Some(match event.type_ {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        related: event.secondary.clone(),
        reporting_controller: Some(controller.clone()),
        reporting_instance: Some(reporter.instance.clone().unwrap_or_else(|| controller.clone())),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_object_reason_and_reporter() {
        let reporter = Reporter { controller: "kube-lighthouse".into(), instance: Some("pod-1".into()) };
        let regarding = ObjectReference {
            kind: Some("RegistrationAssignment".into()),
            name: Some("contoso".into()),
            namespace: Some("customer-a".into()),
            ..Default::default()
        };
        let warning = Event {
            type_: EventType::Warning,
            reason: "OwnerRole".into(),
            note: Some("nothing granted".into()),
            action: "Validate".into(),
            secondary: None,
        };
        let e = build(&reporter, &warning, &regarding);
        assert_eq!(e.metadata.namespace.as_deref(), Some("customer-a"));
        assert!(e.metadata.name.as_deref().is_some_and(|n| n.starts_with("contoso.")));
        assert_eq!(
            (e.type_.as_deref(), e.reason.as_deref(), e.action.as_deref()),
            (Some("Warning"), Some("OwnerRole"), Some("Validate"))
        );
        assert_eq!(e.note.as_deref(), Some("nothing granted"));
        assert_eq!(e.regarding, Some(regarding));
        assert_eq!(e.reporting_controller.as_deref(), Some("kube-lighthouse"));
        assert_eq!(e.reporting_instance.as_deref(), Some("pod-1"));
        assert!(e.event_time.is_some() && e.series.is_none());
    }
}
