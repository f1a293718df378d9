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
    /// A publisher that creates Events with `client`.
    pub fn new(client: Client, reporter: Reporter) -> Publisher {
        Publisher { client, reporter }
    }

    /// Creates one Event about the object `regarding` points at, in its namespace.
    ///
    /// # Errors
    /// The API server's refusal to create the Event.
    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        api.create(&PostParams::default(), &build(&self.reporter, event, regarding)).await.map(|_| ())
    }
}

/// The longest name of any object whose name is a DNS subdomain (Events included).
const MAX_NAME: usize = 253;
/// Limits of events.k8s.io/v1 (`ValidateEventCreate`): `reason`, `action`,
/// `reportingController` and `reportingInstance` at most 128 characters, `note` 1 kB.
const MAX_FIELD: usize = 128;
const MAX_NOTE: usize = 1024;

/// `text` cut at a character boundary to at most `max` bytes.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// `text` reduced to a DNS subdomain of at most `max` characters: lowercase, segments of
/// `[a-z0-9-]` that start and end alphanumeric, joined by dots. Empty when nothing is left.
fn dns_subdomain(text: &str, max: usize) -> String {
    let segments: Vec<String> = text
        .to_ascii_lowercase()
        .split('.')
        .map(|segment| {
            let cleaned: String =
                segment.chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' }).collect();
            cleaned.trim_matches('-').to_string()
        })
        .filter(|segment| !segment.is_empty())
        .collect();
    let joined = segments.join(".");
    truncate(&joined, max).trim_end_matches(['-', '.']).to_string()
}

/// Name of the Event about the object named `object` at `nanos` (nanoseconds since the
/// epoch): `<object>.<nanos in hex>`, unique per object and moment as kube's Recorder names
/// them, with the object's part shortened (and made a DNS subdomain) so that the whole is
/// always a valid name of at most 253 characters, whatever the object's name.
pub fn event_name(object: &str, nanos: u128) -> String {
    let suffix = format!("{nanos:x}");
    let prefix = dns_subdomain(object, MAX_NAME - suffix.len() - 1);
    if prefix.is_empty() {
        suffix
    } else {
        format!("{prefix}.{suffix}")
    }
}

/// The Event that says `event` about the object `regarding`. Every field is kept within the
/// API server's limits, so that no input can make an Event unrecordable.
pub fn build(reporter: &Reporter, event: &Event, regarding: &ObjectReference) -> K8sEvent {
    let now = jiff::Timestamp::now();
    let controller = &reporter.controller;
    let nanos = u128::try_from(now.as_nanosecond()).unwrap_or_default();
    let field = |text: &str| Some(truncate(text, MAX_FIELD).to_string());
    K8sEvent {
        metadata: ObjectMeta {
            namespace: regarding.namespace.clone(),
            name: Some(event_name(regarding.name.as_ref().unwrap_or(controller), nanos)),
            ..Default::default()
        },
        action: field(&event.action),
        reason: field(&event.reason),
        note: event.note.as_deref().map(|n| truncate(n, MAX_NOTE).to_string()),
        type_: Some(match event.type_ {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        related: event.secondary.clone(),
        reporting_controller: field(controller),
        reporting_instance: field(reporter.instance.as_deref().unwrap_or(controller)),
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

    #[test]
    fn a_long_named_object_gets_an_event_name_within_the_limit() {
        let reporter = Reporter { controller: "kube-lighthouse".into(), instance: None };
        let name = format!("{}.{}", "a".repeat(200), "b".repeat(52));
        assert_eq!(name.len(), 253);
        let regarding =
            ObjectReference { name: Some(name.clone()), namespace: Some("ns".into()), ..Default::default() };
        let event = Event {
            type_: EventType::Warning,
            reason: "R".repeat(300),
            note: Some("é".repeat(1000)),
            action: "Validate".into(),
            secondary: None,
        };
        let e = build(&reporter, &event, &regarding);
        let generated = e.metadata.name.expect("name");
        assert!(generated.len() <= 253, "{}", generated.len());
        assert!(generated.starts_with(&"a".repeat(200)));
        assert!(e.note.expect("note").len() <= 1024);
        assert_eq!(e.reason.expect("reason").len(), 128);
    }

    #[test]
    fn names_that_are_no_dns_subdomains_are_made_one() {
        assert_eq!(event_name("kubelighthouse:abc:Reader", 255), "kubelighthouse-abc-reader.ff");
        assert_eq!(event_name("..--", 1), "1");
        assert_eq!(event_name("a..b", 16), "a.b.10");
    }

    fn is_dns_subdomain(name: &str) -> bool {
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        name.len() <= 253 && name.split('.').all(segment_ok)
    }

    proptest::proptest! {
        #[test]
        fn every_event_name_is_a_dns_subdomain(object in "\\PC{0,300}", nanos: u128) {
            let name = event_name(&object, nanos);
            proptest::prop_assert!(is_dns_subdomain(&name), "{:?} -> {:?}", object, name);
        }

        #[test]
        fn an_object_that_is_a_dns_subdomain_keeps_its_name_when_it_fits(
            object in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?){0,3}",
        ) {
            let name = event_name(&object, 1 << 60);
            proptest::prop_assert!(is_dns_subdomain(&name));
            if object.len() + 17 <= 253 {
                proptest::prop_assert_eq!(name, format!("{object}.{:x}", 1u128 << 60));
            }
        }
    }
}
