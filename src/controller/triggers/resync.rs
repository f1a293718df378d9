//! The periodic resync: the safety net that reconciles every definition, assignment and
//! subscription at least once per [`PERIOD`] even when no event comes, from one task, in
//! passes of half the period, each spread evenly over its length. (An object is in the
//! cache when a pass begins at most half a period later, and that pass sends it within
//! another half: one pass per period could leave an object late in the first pass, or
//! created just after a pass began, for nearly two periods.)
//!
//! It replaces a `requeue(15 min)` per object in each runner's scheduler: one timer and one
//! map entry per object per runner, some 0.5 KiB each, held for as long as the object lives
//! (docs/benchmarks.md, "Ten thousand delegations"). A pass here holds only the store's
//! `Arc`s for its duration. Spread over the period, a resync of 10,000 delegations is a
//! steady trickle of a few reconciles a second rather than a burst every 15 minutes; the
//! first-in-first-out queue ([`crate::controller::queue`]) puts them behind real changes
//! that are already waiting, and drops one for an object already in line.

use std::time::Duration;

use kube::ResourceExt;
use tokio::time::Instant;

use super::Sinks;
use crate::controller::caches::Caches;

/// Each definition, assignment and subscription is reconciled at least this often.
pub const PERIOD: Duration = Duration::from_secs(15 * 60);

/// The shortest gap between two batches of a pass.
const MIN_TICK: Duration = Duration::from_secs(1);

/// How a pass of some triggers spreads over a period: `per_tick` of them every `tick`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// The gap between two batches.
    pub tick: Duration,
    /// Triggers per batch (0 for an empty pass).
    pub per_tick: usize,
}

impl Pace {
    /// The pace for `count` triggers over `period`: one per tick while that leaves ticks of
    /// at least [`MIN_TICK`], else batches of equal size every `MIN_TICK`, so that the pass
    /// ends within `period`.
    pub fn of(count: usize, period: Duration) -> Pace {
        let most_ticks = (period.as_millis() / MIN_TICK.as_millis()).max(1);
        let ticks = u32::try_from(most_ticks.min(count.max(1) as u128)).unwrap_or(u32::MAX);
        Pace { tick: period / ticks, per_tick: count.div_ceil(ticks as usize) }
    }
}

/// Passes over what the caches hold, back to back, each spread over half of `period`, so
/// that every object is sent at least once per `period`. The first begins half a period
/// after the start, which already reconciles everything ([`super::everything`]). Runs
/// until aborted.
pub async fn run(caches: Caches, sinks: Sinks, period: Duration) {
    let length = period / 2;
    let mut start = Instant::now();
    loop {
        tokio::time::sleep_until(start + length).await;
        start = Instant::now();
        pass(&caches, &sinks, length).await;
    }
}

/// One pass: the objects in the caches now, sent at [`Pace::of`] their count. An object
/// deleted meanwhile is a trigger the runner finds gone; one created meanwhile waits for
/// the next pass (its own events reconcile it).
async fn pass(caches: &Caches, sinks: &Sinks, period: Duration) {
    let definitions = caches.definitions.state();
    let assignments = caches.assignments.state();
    let subscriptions: Vec<String> =
        caches.namespaces.state().iter().filter(|ns| ns.keeps_annotation()).map(|ns| ns.name_any()).collect();
    let count = definitions.len() + assignments.len() + subscriptions.len();
    let pace = Pace::of(count, period);
    tracing::debug!(count, tick = ?pace.tick, per_tick = pace.per_tick, "resync pass");
    let mut pacer = Pacer::new(pace);
    for d in &definitions {
        pacer.next().await;
        sinks.definition(d);
    }
    for a in &assignments {
        pacer.next().await;
        sinks.assignment(a);
    }
    for n in &subscriptions {
        pacer.next().await;
        sinks.namespace(n);
    }
}

/// Lets `per_tick` sends through at each tick of a [`Pace`].
struct Pacer {
    ticks: tokio::time::Interval,
    per_tick: usize,
    left: usize,
}

impl Pacer {
    fn new(pace: Pace) -> Pacer {
        let mut ticks = tokio::time::interval_at(Instant::now() + pace.tick, pace.tick);
        // Late (a busy runtime): the next batch a whole tick later, not a burst to catch up.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pacer { ticks, per_tick: pace.per_tick, left: 0 }
    }

    /// Waits for the next tick when this one's batch is used up.
    async fn next(&mut self) {
        if self.left == 0 {
            self.ticks.tick().await;
            self.left = self.per_tick;
        }
        self.left = self.left.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUARTER_HOUR: Duration = Duration::from_secs(900);

    #[test]
    fn few_objects_get_one_tick_each_spread_over_the_period() {
        assert_eq!(Pace::of(3, QUARTER_HOUR), Pace { tick: Duration::from_secs(300), per_tick: 1 });
        assert_eq!(Pace::of(900, QUARTER_HOUR), Pace { tick: Duration::from_secs(1), per_tick: 1 });
    }

    #[test]
    fn many_objects_come_in_equal_batches_a_second_apart_and_end_within_the_period() {
        let pace = Pace::of(30_000, QUARTER_HOUR);
        assert_eq!(pace, Pace { tick: Duration::from_secs(1), per_tick: 34 });
        let batches = 30_000usize.div_ceil(pace.per_tick) as u32;
        assert!(pace.tick * batches <= QUARTER_HOUR, "{batches} batches");
    }

    #[test]
    fn an_empty_pass_sends_nothing_and_waits_the_period() {
        assert_eq!(Pace::of(0, QUARTER_HOUR), Pace { tick: QUARTER_HOUR, per_tick: 0 });
    }

    #[test]
    fn a_period_shorter_than_a_tick_still_sends_everything_at_once() {
        assert_eq!(Pace::of(5, Duration::from_millis(200)), Pace { tick: Duration::from_millis(200), per_tick: 5 });
    }

    #[test]
    fn every_count_is_covered_within_the_period() {
        for count in [1, 2, 7, 899, 900, 901, 1799, 10_000, 123_457] {
            let pace = Pace::of(count, QUARTER_HOUR);
            let batches = count.div_ceil(pace.per_tick) as u32;
            assert!(pace.per_tick * batches as usize >= count, "{count}");
            assert!(pace.tick * batches <= QUARTER_HOUR, "{count}: {pace:?}");
        }
    }

    use futures::channel::mpsc::{self, UnboundedReceiver};
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::core::PartialObjectMeta;
    use kube::runtime::reflector::ObjectRef;

    use crate::api::{RegistrationAssignment, RegistrationDefinition};
    use crate::controller::testing::Cluster;
    use crate::model::keys;

    /// A subscription `sub` with the definition "offer" and the assignment "contoso".
    fn delegated_subscription(cluster: &mut Cluster, sub: &str) {
        let mut ns = PartialObjectMeta::<Namespace>::default();
        ns.metadata.name = Some(sub.into());
        ns.metadata.labels = Some([(keys::TENANT_ID.to_string(), "t".to_string())].into());
        cluster.namespace(ns);
        let spec = serde_json::from_value(serde_json::json!({
            "registrationDefinitionName": "Contoso", "managedByTenantId": "m", "authorizations": [],
        }))
        .expect("spec");
        let mut d = RegistrationDefinition::new("offer", spec);
        d.metadata.namespace = Some(sub.into());
        cluster.definition(d);
        let spec =
            serde_json::from_value(serde_json::json!({"registrationDefinitionRef": {"name": "offer"}})).expect("spec");
        let mut a = RegistrationAssignment::new("contoso", spec);
        a.metadata.namespace = Some(sub.into());
        cluster.assignment(a);
    }

    type Receivers = (
        UnboundedReceiver<ObjectRef<RegistrationDefinition>>,
        UnboundedReceiver<ObjectRef<RegistrationAssignment>>,
        UnboundedReceiver<ObjectRef<crate::controller::caches::CachedNamespace>>,
    );

    fn sinks() -> (Sinks, Receivers) {
        let (assignments, assignment_rx) = mpsc::unbounded();
        let (definitions, definition_rx) = mpsc::unbounded();
        let (namespaces, namespace_rx) = mpsc::unbounded();
        let sinks = Sinks {
            assignments,
            definitions,
            namespaces,
            sweep: mpsc::unbounded().0,
            guard: mpsc::unbounded().0,
            activations: mpsc::unbounded().0,
            onboard: mpsc::unbounded().0,
            onboardings: mpsc::unbounded().0,
        };
        (sinks, (definition_rx, assignment_rx, namespace_rx))
    }

    /// A pass over 2 subscriptions, each with a definition and an assignment, and one plain
    /// namespace: every delegation and subscription is sent once, and the pass takes the period.
    #[tokio::test(start_paused = true)]
    async fn a_pass_sends_every_delegation_and_subscription_once_spread_over_the_period() {
        let mut cluster = crate::controller::testing::cluster();
        for sub in ["sub-a", "sub-b"] {
            delegated_subscription(&mut cluster, sub);
        }
        let mut plain = PartialObjectMeta::<Namespace>::default();
        plain.metadata.name = Some("plain".into());
        cluster.namespace(plain);

        let (sinks, (mut definition_rx, mut assignment_rx, mut namespace_rx)) = sinks();
        let period = Duration::from_secs(60);
        let started = Instant::now();
        pass(&cluster.caches, &sinks, period).await;
        // 6 triggers over 60 s: one every 10 s, the last at 60 s.
        assert_eq!(started.elapsed(), period);
        drop(sinks);
        fn sorted(mut refs: Vec<(Option<String>, String)>) -> Vec<(Option<String>, String)> {
            refs.sort();
            refs
        }
        let delegations = |kind: &str| vec![(Some("sub-a".into()), kind.into()), (Some("sub-b".into()), kind.into())];
        let definitions = definition_rx.by_ref().map(|r| (r.namespace, r.name)).collect().await;
        assert_eq!(sorted(definitions), delegations("offer"));
        let assignments = assignment_rx.by_ref().map(|r| (r.namespace, r.name)).collect().await;
        assert_eq!(sorted(assignments), delegations("contoso"));
        let subscriptions = namespace_rx.by_ref().map(|r| (r.namespace, r.name)).collect().await;
        assert_eq!(sorted(subscriptions), [(None, "sub-a".into()), (None, "sub-b".into())], "not the plain namespace");
    }

    /// The guarantee [`PERIOD`] promises: an assignment created just after a pass took its
    /// snapshot is still sent within one period (one pass per period left it nearly two).
    #[tokio::test(start_paused = true)]
    async fn an_object_created_just_after_a_pass_began_is_sent_within_one_period() {
        let mut cluster = crate::controller::testing::cluster();
        for sub in ["sub-a", "sub-b", "sub-c"] {
            delegated_subscription(&mut cluster, sub);
        }
        let (sinks, (_definitions, mut assignment_rx, _namespaces)) = sinks();
        let period = Duration::from_secs(60);
        let started = Instant::now();
        let resync = tokio::spawn(run(cluster.caches.clone(), sinks, period));
        // Every object present at the start is sent within one period.
        let mut seen = Vec::new();
        while seen.len() < 3 {
            seen.push(assignment_rx.next().await.expect("sent").namespace.expect("namespace"));
        }
        assert!(started.elapsed() <= period, "the first assignments took {:?}", started.elapsed());
        // The first pass began at 30 s; one created a moment after is in the next pass.
        tokio::time::sleep_until(started + period / 2 + Duration::from_secs(1)).await;
        let created = Instant::now();
        delegated_subscription(&mut cluster, "sub-late");
        loop {
            let sent = assignment_rx.next().await.expect("sent");
            if sent.namespace.as_deref() == Some("sub-late") {
                break;
            }
        }
        assert!(created.elapsed() <= period, "sent {:?} after it was created", created.elapsed());
        resync.abort();
    }
}
