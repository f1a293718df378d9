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

/// The keys one replica has loaded from the Secret.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<LoadedKey>,
}

impl KeySet {
    /// Parses the Secret's `keys.json`.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] or [`KeyError::Key`].
    pub fn parse(json: &[u8]) -> Result<KeySet, KeyError> {
        let stored: Vec<StoredKey> = serde_json::from_slice(json).map_err(|e| KeyError::Malformed(e.to_string()))?;
        let keys = stored.iter().map(load).collect::<Result<Vec<_>, _>>()?;
        Ok(KeySet { keys })
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
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
/// sign), and whether it is loaded, for `/readyz`.
pub struct Keys {
    current: RwLock<Option<Arc<KeySet>>>,
    loaded: watch::Sender<bool>,
}

impl Default for Keys {
    fn default() -> Self {
        Keys { current: RwLock::new(None), loaded: watch::channel(false).0 }
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
                match from_secret(&secret) {
                    Ok(set) => {
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
                warn!(secret = %name, "federation keys Secret deleted: exchanges answer 503 until the leader makes keys");
                keys.set(None);
            }
            Ok(watcher::Event::Init) => seen = false,
            Ok(watcher::Event::InitDone) => {
                if !seen {
                    info!(secret = %name, "no federation keys Secret yet: the leader makes it");
                    keys.set(None);
                }
            }
            Err(e) => warn!(error = %e, secret = %name, "cannot watch the federation keys Secret"),
        }
    }
}

/// While this replica leads, checks the key set every `tick` and carries out the rotation's
/// [`rotation::plan`]: creates the Secret with a first key, adds a key, retires old ones. A
/// write that loses a race (409) is retried at the next tick.
pub async fn rotate(
    client: Client,
    namespace: String,
    name: String,
    policy: Policy,
    mut leadership: crate::lease::Leadership,
    tick: Duration,
) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    loop {
        if *leadership.borrow_and_update() {
            if let Err(e) = rotate_once(&api, &name, &policy).await {
                warn!(error = %e, secret = %name, "federation key rotation failed; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            changed = leadership.changed() => if changed.is_err() { return },
        }
    }
}

async fn rotate_once(api: &Api<Secret>, name: &str, policy: &Policy) -> Result<(), KeyError> {
    let now = jiff::Timestamp::now().as_second();
    let existing = api.get_opt(name).await?;
    let stored: Vec<StoredKey> = match existing.as_ref().and_then(|s| s.data.as_ref()).and_then(|d| d.get(SECRET_KEY)) {
        Some(data) => match serde_json::from_slice(&data.0) {
            Ok(stored) => stored,
            Err(e) => {
                // Unreadable keys are replaced: tokens they signed cannot be verified anyway.
                warn!(error = %e, secret = name, "federation keys unreadable: replacing them");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let ages: Vec<KeyAge> = stored.iter().map(|k| KeyAge { kid: k.kid.clone(), created: k.created }).collect();
    let plan = rotation::plan(&ages, now, policy);
    if plan.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<StoredKey> = stored.into_iter().filter(|k| !plan.retire.contains(&k.kid)).collect();
    if plan.add {
        keys.push(generate(now)?);
    }
    let json = serde_json::to_vec(&keys).map_err(|e| KeyError::Malformed(e.to_string()))?;
    let data = BTreeMap::from([(SECRET_KEY.to_owned(), ByteString(json))]);
    match existing {
        Some(mut secret) => {
            secret.data = Some(data);
            // The resourceVersion read above: a concurrent write makes this one fail (409).
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
    info!(secret = name, added = plan.add, retired = ?plan.retire, "federation keys rotated");
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
    fn malformed_secrets_load_nothing() {
        assert!(matches!(KeySet::parse(b"{}"), Err(KeyError::Malformed(_))));
        let bad = StoredKey { kid: "k".into(), created: 0, pkcs8: "bm90IGEga2V5".into() };
        assert!(matches!(KeySet::parse(&serde_json::to_vec(&[bad]).expect("json")), Err(KeyError::Key { .. })));
        let keys = Keys::default();
        assert!(!*keys.loaded().borrow());
        keys.set(Some(KeySet::parse(b"[]").expect("empty")));
        assert!(keys.current().is_none() && !*keys.loaded().borrow(), "no key is not loaded");
        keys.set(Some(KeySet::parse(&serde_json::to_vec(&[generate(0).expect("key")]).expect("json")).expect("set")));
        assert!(keys.current().is_some() && *keys.loaded().borrow());
    }
}
