//! Per-object retry delays: a reconcile that fails again waits longer, from
//! [`FIRST_RETRY`] doubling up to [`MAX_RETRY`], and a success starts over. A flat delay
//! hammered a struggling API server with every failing object at the same rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The delay after a first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest delay between retries of one object.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// Consecutive failures per object, keyed by `kind/namespace/name`.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Notes a failure of `key`; the delay before its next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.to_string()).or_insert(0);
        let delay = FIRST_RETRY.saturating_mul(2u32.saturating_pow(*count)).min(MAX_RETRY);
        *count = count.saturating_add(1);
        delay
    }

    /// Notes a success of `key`: its next failure starts over.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if !failures.is_empty() {
            failures.remove(key);
        }
    }
}

/// Runs `act` on each item of `items` until the stream ends; an item whose `act` hands it
/// back (it failed) comes back after `backoff`'s delay for its `key`, and is acted on afresh,
/// without waiting for another event about it. What the guard and the sweep share: a removal
/// of access must not wait for the object's next watch event.
pub async fn each_with_retries<T, F, Fut>(
    backoff: &Backoff,
    items: impl futures::Stream<Item = T>,
    key: impl Fn(&T) -> String,
    mut act: F,
) where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    use futures::StreamExt;
    let mut items = std::pin::pin!(items);
    let mut retries = futures::stream::FuturesUnordered::new();
    loop {
        let item = tokio::select! {
            next = items.next() => match next {
                Some(item) => item,
                None => return,
            },
            Some(item) = retries.next(), if !retries.is_empty() => item,
        };
        let key = key(&item);
        if let Some(item) = act(item).await {
            let delay = backoff.failed(&key);
            retries.push(async move {
                tokio::time::sleep(delay).await;
                item
            });
        } else {
            backoff.succeeded(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_object_up_to_the_cap_and_a_success_starts_over() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (0..12).map(|_| backoff.failed("a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff.failed("b"), FIRST_RETRY, "another object has its own count");
        backoff.succeeded("a");
        assert_eq!(backoff.failed("a"), FIRST_RETRY);
        for _ in 0..100 {
            backoff.failed("c");
        }
        assert_eq!(backoff.failed("c"), MAX_RETRY, "no overflow after many failures");
    }
}
