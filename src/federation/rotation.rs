//! The signing keys' life, pure: which key signs now, when the leader adds a key, and when it
//! retires one, so that every token the broker issued verifies until it expires.
//!
//! A key is published (in the Secret, so in every replica's JWKS) `publish_delay` before it
//! signs: a verifier that fetched the JWKS from any replica, at any time, knows a key before
//! it sees a token signed with it. A key is retired only once no token it signed can still be
//! valid: the next key has signed for longer than the longest lifetime, plus a margin for
//! clocks.

/// A signing key as the rotation sees it: its ID and when it was made (seconds since the
/// epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAge {
    /// The key ID (`kid`).
    pub kid: String,
    /// When the leader made it.
    pub created: i64,
}

/// How keys rotate. Seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// A new key is made once the newest is this old.
    pub rotate_after: i64,
    /// A key signs only once it has been published this long.
    pub publish_delay: i64,
    /// The longest life of an issued token.
    pub max_lifetime: i64,
}

/// Added to a retired key's keep, for clocks that disagree (the API server's, the replicas').
pub const CLOCK_MARGIN: i64 = 60;

impl Policy {
    /// The policy of a rotation period and a maximum token lifetime: a new key is published a
    /// quarter of the period (at most a minute) before it signs.
    pub fn new(rotate_after: i64, max_lifetime: i64) -> Policy {
        Policy { rotate_after, publish_delay: (rotate_after / 4).clamp(1, 60), max_lifetime }
    }
}

/// The key that signs at `now`: the newest published at least `publish_delay` ago; while no
/// key is that old (the very first), the oldest there is. None without keys.
pub fn signing_key<'a>(keys: &'a [KeyAge], now: i64, policy: &Policy) -> Option<&'a KeyAge> {
    keys.iter()
        .filter(|k| k.created.saturating_add(policy.publish_delay) <= now)
        .max_by_key(|k| (k.created, k.kid.as_str()))
        .or_else(|| keys.iter().min_by_key(|k| (k.created, k.kid.as_str())))
}

/// What the leader does to the key set at `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Make and publish a new key.
    pub add: bool,
    /// Remove these keys: nothing they signed is valid any more.
    pub retire: Vec<String>,
    /// Remove these unusable entries (a key ID, or `#<index>` in the list when the entry has
    /// none): no replica can sign or verify with them.
    pub drop: Vec<String>,
}

impl Plan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        !self.add && self.retire.is_empty() && self.drop.is_empty()
    }
}

/// The leader's plan for the usable `keys` and the `unusable` entries (named as in
/// [`Plan::drop`]) at `now` (seconds since the epoch): a new key when no usable key is left or
/// the newest is `rotate_after` old; retire every key older than the signing key once the
/// signing key has signed for `max_lifetime` + [`CLOCK_MARGIN`]; drop every unusable entry at
/// once (the replicas already skip them; the Secret is rewritten without them).
pub fn plan(keys: &[KeyAge], unusable: &[String], now: i64, policy: &Policy) -> Plan {
    let newest = keys.iter().map(|k| k.created).max();
    let add = newest.is_none_or(|created| created.saturating_add(policy.rotate_after) <= now);
    let retire = match signing_key(keys, now, policy) {
        Some(signing)
            if signing
                .created
                .saturating_add(policy.publish_delay)
                .saturating_add(policy.max_lifetime)
                .saturating_add(CLOCK_MARGIN)
                <= now =>
        {
            keys.iter().filter(|k| k.created < signing.created).map(|k| k.kid.clone()).collect()
        }
        _ => Vec::new(),
    };
    Plan { add, retire, drop: unusable.to_vec() }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const POLICY: Policy = Policy { rotate_after: 1000, publish_delay: 60, max_lifetime: 900 };

    fn key(kid: &str, created: i64) -> KeyAge {
        KeyAge { kid: kid.to_owned(), created }
    }

    #[test]
    fn the_first_key_is_made_and_signs_at_once() {
        assert_eq!(plan(&[], &[], 0, &POLICY), Plan { add: true, ..Plan::default() });
        let keys = [key("a", 100)];
        assert_eq!(signing_key(&keys, 100, &POLICY), Some(&keys[0]));
        assert!(plan(&keys, &[], 100, &POLICY).is_empty());
    }

    #[test]
    fn a_new_key_is_published_before_it_signs() {
        let keys = [key("a", 0), key("b", 1000)];
        assert_eq!(plan(&[key("a", 0)], &[], 1000, &POLICY), Plan { add: true, ..Plan::default() });
        assert_eq!(signing_key(&keys, 1000, &POLICY).map(|k| k.kid.as_str()), Some("a"));
        assert_eq!(signing_key(&keys, 1059, &POLICY).map(|k| k.kid.as_str()), Some("a"));
        assert_eq!(signing_key(&keys, 1060, &POLICY).map(|k| k.kid.as_str()), Some("b"));
    }

    #[test]
    fn an_old_key_is_retired_once_nothing_it_signed_is_valid() {
        let keys = [key("a", 0), key("b", 1000)];
        // b signs from 1060; a's last token expires by 1060 + 900; then the margin.
        assert!(plan(&keys, &[], 1060 + 900 + CLOCK_MARGIN - 1, &POLICY).retire.is_empty());
        assert_eq!(plan(&keys, &[], 1060 + 900 + CLOCK_MARGIN, &POLICY).retire, ["a"]);
    }

    #[test]
    fn unusable_entries_are_dropped_and_replaced_when_none_is_left() {
        let unusable = ["broken".to_owned(), "#2".to_owned()];
        // Beside a usable key: dropped, nothing added (the usable key goes on signing).
        let keys = [key("a", 100)];
        assert_eq!(plan(&keys, &unusable, 200, &POLICY), Plan { drop: unusable.to_vec(), ..Plan::default() });
        // Alone: dropped, and a fresh key made, so the broker signs again.
        assert_eq!(plan(&[], &unusable, 200, &POLICY), Plan { add: true, retire: vec![], drop: unusable.to_vec() });
        assert!(!plan(&keys, &unusable, 200, &POLICY).is_empty(), "the Secret is rewritten");
    }

    #[test]
    fn the_policy_publishes_a_quarter_period_ahead_at_most_a_minute() {
        assert_eq!(Policy::new(12, 900).publish_delay, 3);
        assert_eq!(Policy::new(7 * 86_400, 900).publish_delay, 60);
        assert_eq!(Policy::new(2, 900).publish_delay, 1);
    }

    proptest! {
        /// Whatever the leader's schedule, a token signed at any moment by the key that signed
        /// then is still verifiable (its key still in the set) until the token expires.
        #[test]
        fn no_issued_token_outlives_its_key(
            steps in proptest::collection::vec(1i64..400, 1..80),
            rotate_after in 10i64..2000,
            max_lifetime in 1i64..1500,
        ) {
            let policy = Policy::new(rotate_after, max_lifetime);
            let mut keys: Vec<KeyAge> = Vec::new();
            let mut issued: Vec<(String, i64)> = Vec::new(); // (kid, exp)
            let mut now = 0;
            let mut next = 0;
            for step in steps {
                now += step;
                let p = plan(&keys, &[], now, &policy);
                keys.retain(|k| !p.retire.contains(&k.kid));
                if p.add {
                    keys.push(key(&format!("k{next}"), now));
                    next += 1;
                }
                for (kid, exp) in &issued {
                    if *exp > now {
                        prop_assert!(keys.iter().any(|k| &k.kid == kid), "{kid} retired at {now} before {exp}");
                    }
                }
                let signer = signing_key(&keys, now, &policy).expect("a key").kid.clone();
                issued.push((signer, now + max_lifetime));
            }
        }
    }
}
