//! The broker's signing keys, in a Secret: every replica follows the Secret (a watch on that
//! one name) and serves the same JWKS from it; the leader makes, rotates and retires keys as
//! [`super::rotation`] plans. Keys are ECDSA P-256 (ES256), made with ring.
//!
//! The Secret holds one entry, `keys.json`: `[{"kid", "created", "pkcs8"}]` (`created` in
//! seconds since the epoch, `pkcs8` the private key's PKCS#8 DER in base64).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use super::rotation::{self, KeyAge, Policy};

/// The entry of the Secret that holds the keys.
pub const SECRET_KEY: &str = "keys.json";
/// The signing algorithm of issued tokens.
pub const ALGORITHM: Algorithm = Algorithm::ES256;

/// Why keys cannot be loaded, made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The Secret has no `keys.json`, or it is not the expected JSON.
    #[error("the keys Secret is malformed: {0}")]
    Malformed(String),
    /// A stored key is not a P-256 PKCS#8 key.
    #[error("key {kid}: {reason}")]
    Key {
        /// The key.
        kid: String,
        /// Why.
        reason: String,
    },
    /// ring could not make a key.
    #[error("cannot generate a signing key")]
    Generate,
    /// Reading or writing the Secret failed.
    #[error("keys Secret: {0}")]
    Kube(#[from] kube::Error),
}

/// One key as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// Its RFC 7638 thumbprint.
    pub kid: String,
    /// When it was made, seconds since the epoch.
    pub created: i64,
    /// PKCS#8 DER, base64.
    pub pkcs8: String,
}

/// A key ready to sign and to publish.
struct LoadedKey {
    age: KeyAge,
    encoding: EncodingKey,
    jwk: Jwk,
}

/// An entry of `keys.json` that cannot be used: not a stored key's shape, or not a P-256
/// PKCS#8 key. Replicas skip it; the leader rewrites the Secret without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unusable {
    /// Its `kid`, or `#<index>` (from 0) when it has none.
    pub entry: String,
    /// Why it is unusable.
    pub reason: String,
}

/// The entries of `keys.json`: the usable keys, as stored and loaded, and the unusable ones.
struct Entries {
    usable: Vec<(StoredKey, LoadedKey)>,
    unusable: Vec<Unusable>,
}

/// Splits `keys.json` into usable keys and unusable entries: one bad entry does not take the
/// others out.
///
/// # Errors
/// [`KeyError::Malformed`] when `json` is not a JSON list.
fn entries(json: &[u8]) -> Result<Entries, KeyError> {
    let list: Vec<serde_json::Value> = serde_json::from_slice(json).map_err(|e| KeyError::Malformed(e.to_string()))?;
    let mut out = Entries { usable: Vec::new(), unusable: Vec::new() };
    for (index, value) in list.into_iter().enumerate() {
        let name =
            value.get("kid").and_then(serde_json::Value::as_str).map_or_else(|| format!("#{index}"), str::to_owned);
        let loaded = serde_json::from_value::<StoredKey>(value)
            .map_err(|e| KeyError::Key { kid: name.clone(), reason: e.to_string() })
            .and_then(|stored| load(&stored).map(|key| (stored, key)));
        match loaded {
            Ok(pair) => out.usable.push(pair),
            Err(e) => out.unusable.push(Unusable { entry: name, reason: e.to_string() }),
        }
    }
    Ok(out)
}

/// The keys one replica has loaded from the Secret.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<LoadedKey>,
    unusable: Vec<Unusable>,
}

impl KeySet {
    /// Parses the Secret's `keys.json`, a list of `{"kid", "created", "pkcs8"}`: every usable
    /// key is loaded, every unusable entry skipped and listed ([`KeySet::unusable`]).
    ///
    /// # Errors
    /// [`KeyError::Malformed`] when it is not a JSON list.
    pub fn parse(json: &[u8]) -> Result<KeySet, KeyError> {
        let Entries { usable, unusable } = entries(json)?;
        Ok(KeySet { keys: usable.into_iter().map(|(_, key)| key).collect(), unusable })
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The entries skipped as unusable.
    pub fn unusable(&self) -> &[Unusable] {
        &self.unusable
    }

    /// The keys' IDs and ages.
    pub fn ages(&self) -> Vec<KeyAge> {
        self.keys.iter().map(|k| k.age.clone()).collect()
    }

    /// The JWKS: every key, the one signing and the others still verifying.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(|k| k.jwk.clone()).collect() }
    }

    /// Signs `claims` with the key that signs at `now` ([`rotation::signing_key`]); None
    /// without keys.
    pub fn sign<T: Serialize>(&self, claims: &T, now: i64, policy: &Policy) -> Option<Result<String, String>> {
        let ages = self.ages();
        let kid = rotation::signing_key(&ages, now, policy)?.kid.clone();
        let key = self.keys.iter().find(|k| k.age.kid == kid)?;
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(kid);
        header.typ = Some("JWT".to_owned());
        Some(jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| e.to_string()))
    }
}

fn load(stored: &StoredKey) -> Result<LoadedKey, KeyError> {
    let error = |reason: String| KeyError::Key { kid: stored.kid.clone(), reason };
    let der = base64::engine::general_purpose::STANDARD.decode(&stored.pkcs8).map_err(|e| error(e.to_string()))?;
    // ring checks the key is a P-256 PKCS#8 key before jsonwebtoken is given it.
    ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|e| error(e.to_string()))?;
    let encoding = EncodingKey::from_ec_der(&der);
    let mut jwk = Jwk::from_encoding_key(&encoding, ALGORITHM).map_err(|e| error(e.to_string()))?;
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
    jwk.common.key_id = Some(stored.kid.clone());
    Ok(LoadedKey { age: KeyAge { kid: stored.kid.clone(), created: stored.created }, encoding, jwk })
}

/// Makes a new P-256 key made at `now`, its `kid` its RFC 7638 thumbprint.
///
/// # Errors
/// [`KeyError::Generate`] when ring fails, [`KeyError::Key`] when the key cannot be published.
pub fn generate(now: i64) -> Result<StoredKey, KeyError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| KeyError::Generate)?;
    let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
    let jwk = Jwk::from_encoding_key(&encoding, ALGORITHM)
        .map_err(|e| KeyError::Key { kid: String::new(), reason: e.to_string() })?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| KeyError::Key { kid: String::new(), reason: e.to_string() })?;
    Ok(StoredKey { kid, created: now, pkcs8: base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref()) })
}

/// What every replica serves: the key set it loaded last (None: not loaded, so not ready to
/// sign), and whether it is loaded, for `/readyz`; and the Secret as the watch last saw it,
/// which the leader's rotation reads (no GET: an idle broker costs no API call).
pub struct Keys {
    current: RwLock<Option<Arc<KeySet>>>,
    loaded: watch::Sender<bool>,
    /// None until the watch has listed; then the Secret, or None when there is none.
    seen: RwLock<Option<Option<Secret>>>,
}

impl Default for Keys {
    fn default() -> Self {
        Keys { current: RwLock::new(None), loaded: watch::channel(false).0, seen: RwLock::new(None) }
    }
}

impl Keys {
    /// The loaded key set, if any.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// Whether keys are loaded (the broker's part of `/readyz`).
    pub fn loaded(&self) -> watch::Receiver<bool> {
        self.loaded.subscribe()
    }

    /// The Secret as the watch last saw it: None before the first list, `Some(None)` when
    /// there is none.
    pub fn seen(&self) -> Option<Option<Secret>> {
        self.seen.read().ok().and_then(|s| s.clone())
    }

    fn see(&self, secret: Option<Secret>) {
        if let Ok(mut seen) = self.seen.write() {
            *seen = Some(secret);
        }
    }

    /// Replaces the key set: None (or an empty set) when the Secret is gone or unreadable.
    pub fn set(&self, keys: Option<KeySet>) {
        let keys = keys.filter(|k| !k.is_empty()).map(Arc::new);
        let loaded = keys.is_some();
        if let Ok(mut current) = self.current.write() {
            *current = keys;
        }
        self.loaded.send_replace(loaded);
    }
}

fn from_secret(secret: &Secret) -> Result<KeySet, KeyError> {
    let data = secret.data.as_ref().and_then(|d| d.get(SECRET_KEY));
    let data = data.ok_or_else(|| KeyError::Malformed(format!("no {SECRET_KEY}")))?;
    KeySet::parse(&data.0)
}

/// Follows the Secret `namespace/name` for as long as the process runs, loading its keys into
/// `keys` at each change; while it is absent or unreadable, `keys` holds none (the replica
/// answers 503 and is not ready).
pub async fn follow(client: Client, namespace: String, name: String, keys: Arc<Keys>) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    // Errors (a 403 without the RBAC for the Secret, the API server away) back off and retry.
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut seen = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) => {
                seen = true;
                keys.see(Some(secret.clone()));
                match from_secret(&secret) {
                    Ok(set) => {
                        for bad in set.unusable() {
                            warn!(secret = %name, entry = %bad.entry, reason = %bad.reason,
                                "federation key unusable: skipped (the leader removes it)");
                        }
                        info!(secret = %name, kids = ?set.ages().iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), "federation keys loaded");
                        keys.set(Some(set));
                    }
                    Err(e) => {
                        warn!(error = %e, secret = %name, "federation keys unreadable: exchanges answer 503");
                        keys.set(None);
                    }
                }
            }
            Ok(watcher::Event::Delete(_)) => {
                keys.see(None);
                warn!(secret = %name, "federation keys Secret deleted: exchanges answer 503 until the leader makes keys");
                keys.set(None);
            }
            Ok(watcher::Event::Init) => seen = false,
            Ok(watcher::Event::InitDone) => {
                if !seen {
                    keys.see(None);
                    info!(secret = %name, "no federation keys Secret yet: the leader makes it");
                    keys.set(None);
                }
            }
            Err(e) => warn!(error = %e, secret = %name, "cannot watch the federation keys Secret"),
        }
    }
}

/// While this replica leads, checks the key set every `tick` and carries out the rotation's
/// [`rotation::plan`]: creates the Secret with a first key, adds a key, retires old ones. It
/// reads the Secret as [`follow`] last saw it (into `keys`), and writes only when the plan
/// says so; a write that loses a race (409) is retried at the next tick.
pub async fn rotate(
    client: Client,
    namespace: String,
    name: String,
    policy: Policy,
    keys: Arc<Keys>,
    mut leadership: crate::lease::Leadership,
    tick: Duration,
) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    loop {
        // Nothing to decide before the watch has listed the Secret.
        let leads = *leadership.borrow_and_update();
        if let (true, Some(existing)) = (leads, keys.seen()) {
            if let Err(e) = rotate_once(&api, &name, existing, &policy).await {
                warn!(error = %e, secret = %name, "federation key rotation failed; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            changed = leadership.changed() => if changed.is_err() { return },
        }
    }
}

async fn rotate_once(api: &Api<Secret>, name: &str, existing: Option<Secret>, policy: &Policy) -> Result<(), KeyError> {
    let now = jiff::Timestamp::now().as_second();
    let (stored, unusable) = match existing.as_ref().and_then(|s| s.data.as_ref()).and_then(|d| d.get(SECRET_KEY)) {
        Some(data) => match entries(&data.0) {
            Ok(Entries { usable, unusable }) => {
                (usable.into_iter().map(|(stored, _)| stored).collect::<Vec<_>>(), unusable)
            }
            Err(e) => {
                // Unreadable keys are replaced: tokens they signed cannot be verified anyway.
                warn!(error = %e, secret = name, "federation keys unreadable: replacing them");
                (Vec::new(), Vec::new())
            }
        },
        None => (Vec::new(), Vec::new()),
    };
    let ages: Vec<KeyAge> = stored.iter().map(|k| KeyAge { kid: k.kid.clone(), created: k.created }).collect();
    let dropped: Vec<String> = unusable.iter().map(|u| u.entry.clone()).collect();
    let plan = rotation::plan(&ages, &dropped, now, policy);
    if plan.is_empty() {
        return Ok(());
    }
    // The rewritten list holds the usable keys only: the unusable entries are dropped.
    let mut keys: Vec<StoredKey> = stored.into_iter().filter(|k| !plan.retire.contains(&k.kid)).collect();
    if plan.add {
        keys.push(generate(now)?);
    }
    let json = serde_json::to_vec(&keys).map_err(|e| KeyError::Malformed(e.to_string()))?;
    let data = BTreeMap::from([(SECRET_KEY.to_owned(), ByteString(json))]);
    match existing {
        Some(mut secret) => {
            secret.data = Some(data);
            // The resourceVersion the watch saw: a concurrent write makes this one fail (409).
            api.replace(name, &PostParams::default(), &secret).await?;
        }
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "kube-lighthouse".to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..Secret::default()
            };
            api.create(&PostParams::default(), &secret).await?;
        }
    }
    info!(secret = name, added = plan.add, retired = ?plan.retire, dropped = ?plan.drop, "federation keys rotated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_sign_and_verify_through_their_jwks() {
        let policy = Policy::new(1000, 900);
        let a = generate(0).expect("key");
        let b = generate(1000).expect("key");
        assert_ne!(a.kid, b.kid);
        let set = KeySet::parse(&serde_json::to_vec(&[a.clone(), b.clone()]).expect("json")).expect("parsed");
        let jwks = set.jwks();
        assert_eq!(jwks.keys.len(), 2);
        let claims = serde_json::json!({"sub": "t:o", "exp": 4_000_000_000_i64});
        for (now, kid) in [(1000, &a.kid), (1000 + policy.publish_delay, &b.kid)] {
            let token = set.sign(&claims, now, &policy).expect("keys").expect("signed");
            let header = jsonwebtoken::decode_header(&token).expect("header");
            assert_eq!(header.kid.as_ref(), Some(kid), "at {now}");
            assert_eq!(header.alg, ALGORITHM);
            let jwk = jwks.find(kid).expect("published");
            let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
            let mut validation = jsonwebtoken::Validation::new(ALGORITHM);
            validation.validate_aud = false;
            let decoded = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).expect("verifies");
            assert_eq!(decoded.claims["sub"], "t:o");
        }
    }

    #[test]
    fn unusable_entries_are_skipped_and_the_usable_keys_served() {
        let good = generate(0).expect("key");
        let bad = StoredKey { kid: "k".into(), created: 0, pkcs8: "bm90IGEga2V5".into() };
        let json = serde_json::to_vec(&serde_json::json!([bad, good, {"created": 1}])).expect("json");
        let set = KeySet::parse(&json).expect("a list");
        assert_eq!(set.ages(), [KeyAge { kid: good.kid.clone(), created: 0 }], "the usable key is served");
        let skipped: Vec<&str> = set.unusable().iter().map(|u| u.entry.as_str()).collect();
        assert_eq!(skipped, ["k", "#2"], "named by kid, or by index without one");
        let policy = Policy::new(1000, 900);
        assert!(set.sign(&serde_json::json!({"sub": "t:o"}), 0, &policy).expect("a key").is_ok());
        let keys = Keys::default();
        keys.set(Some(set));
        assert!(*keys.loaded().borrow(), "one bad entry does not take the issuer out");
        // What the leader writes back: the usable keys only.
        let split = entries(&json).expect("a list");
        assert_eq!(split.usable.iter().map(|(stored, _)| stored.clone()).collect::<Vec<_>>(), [good]);
        assert_eq!(split.unusable.len(), 2);
    }

    #[test]
    fn malformed_secrets_load_nothing() {
        assert!(matches!(KeySet::parse(b"{}"), Err(KeyError::Malformed(_))));
        let bad = StoredKey { kid: "k".into(), created: 0, pkcs8: "bm90IGEga2V5".into() };
        let only_bad = KeySet::parse(&serde_json::to_vec(&[bad]).expect("json")).expect("a list");
        assert!(only_bad.is_empty() && only_bad.unusable().len() == 1);
        let keys = Keys::default();
        keys.set(Some(only_bad));
        assert!(keys.current().is_none() && !*keys.loaded().borrow(), "nothing usable is not loaded");
        let keys = Keys::default();
        assert!(!*keys.loaded().borrow());
        keys.set(Some(KeySet::parse(b"[]").expect("empty")));
        assert!(keys.current().is_none() && !*keys.loaded().borrow(), "no key is not loaded");
        keys.set(Some(KeySet::parse(&serde_json::to_vec(&[generate(0).expect("key")]).expect("json")).expect("set")));
        assert!(keys.current().is_some() && *keys.loaded().borrow());
    }
}
