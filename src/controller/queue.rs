//! First-in-first-out order for the reconcile backlog (issue "Ten thousand customers").
//!
//! kube-runtime's runner keeps the triggers it cannot start yet (every slot busy) in a hash
//! set, and takes any of them when a slot frees: in a wave of a thousand customers an early
//! one could wait for most of the wave. [`Fifo`] stands in front of the runner and lets
//! through only as many triggers as it has slots, oldest first, so the runner never holds a
//! backlog of its own; each outcome the runner reports frees one. Like client-go's work
//! queue: a trigger for an object already waiting keeps the older place in line, and one for
//! an object being reconciled waits until that reconcile ends, then goes first.
//!
//! Revocation goes first: a trigger for an object being deleted (its finalizer revokes
//! access) joins a line of its own that is served before the others, so that a deletion does
//! not wait behind a backlog of grants and bookkeeping ([`Fifo::with_urgency`]).
//!
//! The runner's own requeues (retries, expiry timers) stay in its scheduler: they are not
//! part of the backlog this orders.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::Stream;

/// A trigger let through that never reported an outcome frees its slot after this long, so
/// that a lost outcome can only slow the queue down, never stop it. (kube-runtime reports
/// one for every trigger it is given, merged or not; this is a safety net.)
pub const RELEASE_EXPIRY: Duration = Duration::from_secs(60);

/// The order of the backlog: what waits, what runs. Pure; [`Fifo`] drives it.
#[derive(Debug)]
pub struct Backlog<T> {
    /// Oldest first. May hold an item taken meanwhile from `urgent`: one not in `queued` is
    /// skipped.
    waiting: VecDeque<T>,
    /// Served before `waiting`, oldest first.
    urgent: VecDeque<T>,
    /// What `urgent` holds.
    urgent_queued: HashSet<T>,
    /// What waits in either line (a trigger for one of them keeps its place).
    queued: HashSet<T>,
    /// Let through, outcome not reported yet, and when.
    running: HashMap<T, Instant>,
    /// Waiting for its running reconcile to end; goes first once it has.
    parked: HashSet<T>,
    /// Slots: at most this many run at once.
    slots: usize,
}

impl<T: Hash + Eq + Clone> Backlog<T> {
    /// A backlog feeding a runner of `slots` concurrent reconciles (at least 1).
    pub fn new(slots: usize) -> Backlog<T> {
        Backlog {
            waiting: VecDeque::new(),
            urgent: VecDeque::new(),
            urgent_queued: HashSet::new(),
            queued: HashSet::new(),
            running: HashMap::new(),
            parked: HashSet::new(),
            slots: slots.max(1),
        }
    }

    /// A trigger arrives: it joins the end of the line, unless it is already in line.
    pub fn push(&mut self, item: T) {
        if self.parked.contains(&item) || !self.queued.insert(item.clone()) {
            return;
        }
        self.waiting.push_back(item);
    }

    /// An urgent trigger arrives (a revocation): it joins the end of the urgent line, which
    /// is served before the other; one already waiting in the other line moves up to it.
    pub fn push_urgent(&mut self, item: T) {
        if self.parked.contains(&item) || !self.urgent_queued.insert(item.clone()) {
            return;
        }
        self.queued.insert(item.clone());
        self.urgent.push_back(item);
    }

    /// The next waiting item, urgent ones first.
    fn next_waiting(&mut self) -> Option<T> {
        while let Some(item) = self.urgent.pop_front() {
            self.urgent_queued.remove(&item);
            if self.queued.remove(&item) {
                return Some(item);
            }
        }
        while let Some(item) = self.waiting.pop_front() {
            if self.queued.remove(&item) {
                return Some(item);
            }
        }
        None
    }

    /// The next trigger to let through at `now`, if a slot is free: the oldest urgent one,
    /// else the oldest, whose object is not running (one that is, is parked until its
    /// outcome).
    pub fn pop(&mut self, now: Instant) -> Option<T> {
        if self.running.len() >= self.slots {
            self.running.retain(|_, since| now.duration_since(*since) < RELEASE_EXPIRY);
        }
        while self.running.len() < self.slots {
            let item = self.next_waiting()?;
            if self.running.contains_key(&item) {
                self.parked.insert(item);
                continue;
            }
            self.running.insert(item.clone(), now);
            return Some(item);
        }
        None
    }

    /// The runner reported an outcome for `item`: its slot is free, and a trigger that came
    /// for it meanwhile goes to the front of the line.
    pub fn done(&mut self, item: &T) {
        if self.running.remove(item).is_none() {
            return;
        }
        if let Some(again) = self.parked.take(item) {
            self.queued.insert(again.clone());
            self.waiting.push_front(again);
        }
    }

    /// Triggers waiting (not let through yet).
    pub fn len(&self) -> usize {
        self.queued.len() + self.parked.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Shared<T> {
    backlog: Backlog<T>,
    /// The stream's task, woken when a slot frees.
    waker: Option<Waker>,
}

/// The runner's side: reports each outcome, freeing its slot.
pub struct Outcomes<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

impl<T> Clone for Outcomes<T> {
    fn clone(&self) -> Self {
        Outcomes { shared: self.shared.clone() }
    }
}

impl<T: Hash + Eq + Clone> Outcomes<T> {
    /// The reconcile of `item` ended (succeeded, failed, or found no object).
    pub fn done(&self, item: &T) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.backlog.done(item);
        if let Some(waker) = shared.waker.take() {
            waker.wake();
        }
    }
}

/// Which triggers are urgent (see [`Fifo::with_urgency`]).
type Urgency<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// The triggers of `inner`, let through oldest first and no more at once than `slots`
/// (see the module's docs). Ends when `inner` has ended and nothing waits.
pub struct Fifo<S: Stream> {
    inner: Option<Pin<Box<S>>>,
    shared: Arc<Mutex<Shared<S::Item>>>,
    urgent: Option<Urgency<S::Item>>,
}

impl<S> Fifo<S>
where
    S: Stream,
    S::Item: Hash + Eq + Clone,
{
    /// Orders `inner`'s triggers for a runner of `slots` concurrent reconciles; the runner
    /// reports its outcomes through the second value.
    pub fn new(inner: S, slots: usize) -> (Fifo<S>, Outcomes<S::Item>) {
        let shared = Arc::new(Mutex::new(Shared { backlog: Backlog::new(slots), waker: None }));
        (Fifo { inner: Some(Box::pin(inner)), shared: shared.clone(), urgent: None }, Outcomes { shared })
    }

    /// Serves the triggers `urgent` says are urgent (asked as each arrives) before the
    /// others, oldest first among them.
    pub fn with_urgency(mut self, urgent: impl Fn(&S::Item) -> bool + Send + Sync + 'static) -> Self {
        self.urgent = Some(Box::new(urgent));
        self
    }
}

impl<S> Stream for Fifo<S>
where
    S: Stream,
    S::Item: Hash + Eq + Clone,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let mut shared = this.shared.lock().unwrap_or_else(|p| p.into_inner());
        // Take in everything that arrived, so the order is the order of arrival.
        while let Some(inner) = this.inner.as_mut() {
            match inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) if this.urgent.as_ref().is_some_and(|u| u(&item)) => {
                    shared.backlog.push_urgent(item)
                }
                Poll::Ready(Some(item)) => shared.backlog.push(item),
                Poll::Ready(None) => this.inner = None,
                Poll::Pending => break,
            }
        }
        if let Some(item) = shared.backlog.pop(Instant::now()) {
            return Poll::Ready(Some(item));
        }
        if this.inner.is_none() && shared.backlog.is_empty() {
            return Poll::Ready(None);
        }
        shared.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn drain(backlog: &mut Backlog<&'static str>, now: Instant) -> Vec<&'static str> {
        std::iter::from_fn(|| backlog.pop(now)).collect()
    }

    #[test]
    fn the_oldest_goes_first_whatever_the_hash() {
        let now = Instant::now();
        let mut backlog = Backlog::new(2);
        let names: Vec<&'static str> = vec!["m", "a", "z", "c", "x", "b"];
        for n in &names {
            backlog.push(*n);
        }
        assert_eq!(drain(&mut backlog, now), ["m", "a"], "two slots: the first two");
        backlog.done(&"m");
        backlog.done(&"a");
        let mut order = vec!["m", "a"];
        loop {
            let batch = drain(&mut backlog, now);
            if batch.is_empty() {
                break;
            }
            for n in &batch {
                backlog.done(n);
            }
            order.extend(batch);
        }
        assert_eq!(order, names, "served in the order of arrival");
    }

    #[test]
    fn urgent_triggers_go_first_and_a_waiting_one_moves_up() {
        let now = Instant::now();
        let mut backlog = Backlog::new(1);
        for n in ["a", "b", "c"] {
            backlog.push(n);
        }
        backlog.push_urgent("x");
        backlog.push_urgent("c");
        backlog.push("x");
        assert_eq!(backlog.len(), 4);
        let mut order = vec![];
        while let Some(n) = backlog.pop(now) {
            backlog.done(&n);
            order.push(n);
        }
        assert_eq!(order, ["x", "c", "a", "b"], "urgent first, in their order; each once");
        assert!(backlog.is_empty());
    }

    #[test]
    fn no_more_at_once_than_the_slots() {
        let now = Instant::now();
        let mut backlog = Backlog::new(3);
        for n in ["a", "b", "c", "d", "e"] {
            backlog.push(n);
        }
        assert_eq!(drain(&mut backlog, now), ["a", "b", "c"]);
        assert_eq!(backlog.pop(now), None, "every slot busy");
        backlog.done(&"b");
        assert_eq!(drain(&mut backlog, now), ["d"]);
        assert_eq!(backlog.len(), 1);
    }

    #[test]
    fn a_trigger_for_an_object_in_line_keeps_its_older_place() {
        let now = Instant::now();
        let mut backlog = Backlog::new(1);
        for n in ["a", "b", "c", "b", "a"] {
            backlog.push(n);
        }
        assert_eq!(backlog.len(), 3);
        let mut order = vec![];
        while let Some(n) = backlog.pop(now) {
            order.push(n);
            backlog.done(&n);
        }
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn a_trigger_for_a_running_object_waits_for_it_then_goes_first() {
        let now = Instant::now();
        let mut backlog = Backlog::new(2);
        backlog.push("a");
        assert_eq!(backlog.pop(now), Some("a"));
        // "a" changes while its reconcile runs; others come after.
        for n in ["a", "b", "c"] {
            backlog.push(n);
        }
        assert_eq!(backlog.pop(now), Some("b"), "never two reconciles of one object");
        assert_eq!(backlog.pop(now), None);
        backlog.done(&"a");
        assert_eq!(backlog.pop(now), Some("a"), "the change of a running object goes first");
        backlog.done(&"b");
        assert_eq!(backlog.pop(now), Some("c"));
    }

    #[test]
    fn an_outcome_of_something_not_let_through_frees_nothing() {
        let now = Instant::now();
        let mut backlog = Backlog::new(1);
        backlog.push("a");
        backlog.push("b");
        assert_eq!(backlog.pop(now), Some("a"));
        backlog.done(&"z"); // the runner's own requeue of another object
        assert_eq!(backlog.pop(now), None);
        backlog.done(&"a");
        assert_eq!(backlog.pop(now), Some("b"));
    }

    #[test]
    fn a_lost_outcome_frees_its_slot_after_the_expiry() {
        let now = Instant::now();
        let mut backlog = Backlog::new(1);
        backlog.push("a");
        backlog.push("b");
        assert_eq!(backlog.pop(now), Some("a"));
        assert_eq!(backlog.pop(now + RELEASE_EXPIRY / 2), None);
        assert_eq!(backlog.pop(now + RELEASE_EXPIRY), Some("b"));
    }

    #[tokio::test]
    async fn the_stream_lets_through_as_outcomes_come() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (mut fifo, outcomes) = Fifo::new(rx, 2);
        for n in ["q", "w", "e", "r"] {
            tx.unbounded_send(n).expect("send");
        }
        assert_eq!(fifo.next().await, Some("q"));
        assert_eq!(fifo.next().await, Some("w"));
        let third = tokio::time::timeout(Duration::from_millis(50), fifo.next()).await;
        assert!(third.is_err(), "both slots busy: nothing more until an outcome");
        let waiting = tokio::spawn(async move { fifo.next().await.map(|n| (n, fifo)) });
        tokio::task::yield_now().await;
        outcomes.done(&"w");
        let (third, mut fifo) = waiting.await.expect("join").expect("an item");
        assert_eq!(third, "e", "an outcome wakes the stream");
        drop(tx);
        outcomes.done(&"q");
        assert_eq!(fifo.next().await, Some("r"));
        outcomes.done(&"e");
        outcomes.done(&"r");
        assert_eq!(fifo.next().await, None, "ends once the input ended and nothing waits");
    }
}
