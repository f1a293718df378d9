//! The sign-in broker: kube-lighthouse as the one OIDC issuer an API server trusts, federating
//! every managing tenant the customers delegated to (docs/install.md, "The sign-in broker").
//! An engineer exchanges a token of their own tenant (RFC 8693) for a short-lived token of
//! this issuer with the same `tid`, `oid`, `groups` and `amr`, so the API server's claim
//! mappings, and every RBAC name, are those of direct sign-in.
//!
//! | module | owns |
//! |---|---|
//! | [`core`] | pure: request checks, which tenants may exchange, the issued claims and lifetime |
//! | [`rotation`] | pure: which key signs, when keys are added and retired |
//! | [`keys`] | the keys Secret: every replica follows it, the leader rotates it |
//! | [`upstream`] | the tenants' discovery documents and keys, cached; subject-token verification |
//! | [`server`] | the routes: discovery, JWKS, token exchange |
//!
//! Served by every replica on the TLS server, under `/federation`, when `--federation-issuer`
//! is set. An exchange: request checks ([`core::check_request`]), the tenant admitted from the
//! caches ([`core::admit`]: a delegation in force names it, the allow-list has it, `iss` is its
//! authority) before any fetch, the token verified against the tenant's own keys
//! ([`upstream::Upstream::verify`]), the issued claims ([`core::issue`]) signed by the key in
//! force. Every refusal of a subject token is the same answer; the reason is logged and counted.

pub mod core;
pub mod keys;
pub mod rotation;
pub mod server;
pub mod upstream;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tracing::{info, warn};

use self::core::{Claimed, Issuance, Refusal};
use self::keys::Keys;
use self::rotation::Policy;
use self::upstream::Upstream;
use crate::api::RegistrationAssignment;
use crate::config::Config;

/// Why the broker cannot start with this configuration.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A flag's value is unusable: which flag, and why.
    #[error("--{0}: {1}")]
    Flag(&'static str, String),
    /// The broker is served on the TLS server, which is off.
    #[error("--federation-issuer needs the TLS server: set --webhook-cert and --webhook-key")]
    NoTls,
    /// The client for the tenants' authorities cannot be built.
    #[error(transparent)]
    Client(#[from] upstream::ClientError),
}

/// The broker's configuration, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// This issuer's URL (`iss` of issued tokens), ending in `/federation`.
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
    /// Longest life of an issued token, seconds.
    pub max_lifetime: i64,
    /// The tenants' authority, with `{tenantId}`.
    pub authority: String,
    /// The audiences a subject token may have.
    pub subject_audiences: BTreeSet<String>,
    /// When set, only these tenants (lower case), among the delegated ones.
    pub allow_list: Option<BTreeSet<String>>,
    /// The keys Secret's name (in the controller's namespace).
    pub keys_secret: String,
    /// Extra CA certificates for the authorities' TLS.
    pub authority_ca: Option<PathBuf>,
    /// Key rotation.
    pub rotation: Policy,
    /// Most exchanges answered at a time by this replica; more are shed (503).
    pub max_concurrent_exchanges: usize,
}

impl Settings {
    /// The broker's settings from the `--federation-*` flags; None when `--federation-issuer`
    /// is not set (the broker is off).
    ///
    /// # Errors
    /// [`FederationError::Flag`] naming the flag whose value is unusable.
    pub fn from_config(config: &Config) -> Result<Option<Settings>, FederationError> {
        let Some(issuer) = config.federation_issuer.clone() else { return Ok(None) };
        core::check_issuer(&issuer).map_err(|e| FederationError::Flag("federation-issuer", e))?;
        core::check_template(&config.federation_authority)
            .map_err(|e| FederationError::Flag("federation-authority", e))?;
        let subject_audiences: BTreeSet<String> =
            config.federation_subject_audiences.iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
        if subject_audiences.is_empty() {
            return Err(FederationError::Flag(
                "federation-subject-audiences",
                "at least one audience is needed: the application ID (URI) engineers request their Entra ID token for (docs/install.md)".into(),
            ));
        }
        let allow_list = if config.federation_tenants.is_empty() {
            None
        } else {
            let mut tenants = BTreeSet::new();
            for t in &config.federation_tenants {
                let guid = crate::model::tenant::Guid::parse(t.trim()).ok_or_else(|| {
                    FederationError::Flag("federation-tenants", format!("{t:?} is not a tenant ID (a GUID)"))
                })?;
                tenants.insert(guid.as_str().to_owned());
            }
            Some(tenants)
        };
        let max_lifetime = i64::from(config.federation_max_lifetime_seconds);
        Ok(Some(Settings {
            issuer,
            audience: config.federation_audience.clone(),
            max_lifetime,
            authority: config.federation_authority.clone(),
            subject_audiences,
            allow_list,
            keys_secret: config.federation_keys_secret.clone(),
            authority_ca: config.federation_authority_ca.clone(),
            rotation: Policy::new(i64::from(config.federation_key_rotation_seconds), max_lifetime),
            max_concurrent_exchanges: usize::try_from(config.federation_max_concurrent_exchanges).unwrap_or(usize::MAX),
        }))
    }
}

/// Labels of the refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// [`Refusal::label`].
    pub reason: &'static str,
}

/// The broker's metrics: exchanges issued, refusals by reason, exchanges shed, exchange
/// durations.
#[derive(Clone)]
pub struct FederationMetrics {
    issued: Counter,
    refused: Family<RefusalLabels, Counter>,
    shed: Counter,
    seconds: Histogram,
}

impl Default for FederationMetrics {
    fn default() -> Self {
        FederationMetrics {
            issued: Counter::default(),
            refused: Family::default(),
            shed: Counter::default(),
            seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
        }
    }
}

impl FederationMetrics {
    /// Registers them as `kube_lighthouse_federation_*`.
    pub fn register(&self, metrics: &mut crate::metrics::Metrics) {
        metrics.register_metric("federation_tokens_issued", "Tokens the sign-in broker issued", self.issued.clone());
        metrics.register_metric(
            "federation_refusals",
            "Subject tokens the sign-in broker refused, by reason",
            self.refused.clone(),
        );
        metrics.register_metric(
            "federation_exchanges_shed",
            "Token exchanges answered 503 at once: the replica's concurrency limit was reached",
            self.shed.clone(),
        );
        metrics.register_metric("federation_exchange_seconds", "Time to answer a token exchange", self.seconds.clone());
    }
}

/// Why an exchange did not issue a token.
#[derive(Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// The subject token is refused (told to the caller as `invalid_grant`, without the reason).
    Refused(Refusal),
    /// This replica has no keys: `temporarily_unavailable`.
    Unavailable,
}

/// An issued token.
#[derive(Debug)]
pub struct Issued {
    /// The signed JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// The broker of one replica.
pub struct Broker {
    /// Its configuration.
    pub settings: Settings,
    /// The keys it signs with and publishes.
    pub keys: Arc<Keys>,
    /// The tenants' keys.
    pub upstream: Upstream,
    /// The assignments cache: which tenants a delegation in force names.
    pub assignments: Store<RegistrationAssignment>,
    /// Its metrics.
    pub metrics: FederationMetrics,
}

impl Broker {
    /// A broker with `settings`, reading the delegations from `assignments`.
    ///
    /// # Errors
    /// [`FederationError::Client`] when `--federation-authority-ca` is unusable.
    pub fn new(
        settings: Settings,
        assignments: Store<RegistrationAssignment>,
        metrics: FederationMetrics,
    ) -> Result<Broker, FederationError> {
        let upstream = Upstream::new(settings.subject_audiences.clone(), settings.authority_ca.as_deref())?;
        Ok(Broker { settings, keys: Arc::default(), upstream, assignments, metrics })
    }

    /// Exchanges the subject token `token` for a token of this issuer.
    ///
    /// # Errors
    /// [`ExchangeError`]: refused, with the reason logged and counted; or no keys.
    pub async fn exchange(&self, token: &str) -> Result<Issued, ExchangeError> {
        let started = Instant::now();
        let outcome = self.exchange_inner(token).await;
        self.metrics.seconds.observe(started.elapsed().as_secs_f64());
        match &outcome {
            Ok(_) => {
                self.metrics.issued.inc();
            }
            Err(ExchangeError::Refused(reason)) => {
                self.metrics.refused.get_or_create(&RefusalLabels { reason: reason.label() }).inc();
            }
            Err(ExchangeError::Unavailable) => {}
        }
        outcome
    }

    async fn exchange_inner(&self, token: &str) -> Result<Issued, ExchangeError> {
        let claimed: Claimed = jsonwebtoken::dangerous::insecure_decode::<Claimed>(token)
            .map(|d| d.claims)
            .map_err(|_| refused(Refusal::Malformed, None))?;
        // The cache, read in place: one pass, no copy.
        let is_delegated = |tenant: &crate::model::tenant::Guid| {
            self.assignments.find(|a| core::delegated(std::iter::once(a), tenant)).is_some()
        };
        let (tenant, authority) =
            core::admit(&claimed, is_delegated, self.settings.allow_list.as_ref(), &self.settings.authority)
                .map_err(|r| refused(r, claimed.tid.as_deref()))?;
        let subject = self
            .upstream
            .verify(token, tenant.as_str(), &authority)
            .await
            .map_err(|r| refused(r, Some(tenant.as_str())))?;
        let keys = self.keys.current().ok_or_else(|| {
            warn!("token exchange refused: no signing keys loaded (503)");
            ExchangeError::Unavailable
        })?;
        let now = jiff::Timestamp::now().as_second();
        let issuance = Issuance {
            issuer: &self.settings.issuer,
            audience: &self.settings.audience,
            max_lifetime: self.settings.max_lifetime,
        };
        let jti = uuid::Uuid::from_u128(rand_u128()).to_string();
        let claims =
            core::issue(&subject, &tenant, now, &issuance, jti).map_err(|r| refused(r, Some(tenant.as_str())))?;
        let token = match keys.sign(&claims, now, &self.settings.rotation) {
            Some(Ok(token)) => token,
            Some(Err(e)) => {
                warn!(error = %e, "cannot sign an issued token");
                return Err(ExchangeError::Unavailable);
            }
            None => return Err(ExchangeError::Unavailable),
        };
        info!(tenant = %claims.tid, oid = %claims.oid, jti = %claims.jti, exp = claims.exp, "token issued");
        Ok(Issued { token, expires_in: claims.exp - now })
    }
}

fn refused(reason: Refusal, tenant: Option<&str>) -> ExchangeError {
    info!(reason = reason.label(), tenant = tenant.unwrap_or("-"), "subject token refused: {reason}");
    ExchangeError::Refused(reason)
}

/// 128 random bits for a token's `jti`.
fn rand_u128() -> u128 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    // A failed read leaves zeros mixed with the time: unique enough for an audit trail.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = jiff::Timestamp::now().as_nanosecond().unsigned_abs();
        bytes = nanos.to_le_bytes();
    }
    u128::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["kube-lighthouse"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).expect("flags parse")
    }

    #[test]
    fn the_broker_is_off_unless_an_issuer_is_set() {
        assert_eq!(Settings::from_config(&config(&[])).expect("valid"), None);
    }

    #[test]
    fn settings_take_the_flags_and_the_defaults() {
        let settings = Settings::from_config(&config(&[
            "--federation-issuer",
            "https://lh.example/federation",
            "--federation-subject-audiences",
            "api://a, b",
            "--federation-tenants",
            "FBCDD0F3-DC82-4CEE-BCDE-7301D24E9BF6",
        ]))
        .expect("valid")
        .expect("on");
        assert_eq!(settings.issuer, "https://lh.example/federation");
        assert_eq!(settings.audience, "kube-lighthouse");
        assert_eq!(settings.max_lifetime, 900);
        assert_eq!(settings.authority, core::DEFAULT_AUTHORITY);
        assert_eq!(settings.subject_audiences, BTreeSet::from(["api://a".to_owned(), "b".to_owned()]));
        assert_eq!(settings.allow_list, Some(BTreeSet::from(["fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6".to_owned()])));
        assert_eq!(settings.keys_secret, "kube-lighthouse-federation-keys");
        assert_eq!(settings.rotation, Policy::new(604_800, 900));
        assert_eq!(settings.max_concurrent_exchanges, 32);
    }

    #[test]
    fn unusable_flags_are_refused_naming_the_flag() {
        let issuer = ["--federation-issuer", "https://lh.example/federation"];
        let cases: [(Vec<&str>, &str); 4] = [
            (issuer.to_vec(), "federation-subject-audiences"),
            (
                vec!["--federation-issuer", "https://lh.example/", "--federation-subject-audiences", "a"],
                "federation-issuer",
            ),
            (
                [
                    &issuer[..],
                    &["--federation-subject-audiences", "a", "--federation-authority", "https://x/common/v2.0"],
                ]
                .concat(),
                "federation-authority",
            ),
            (
                [&issuer[..], &["--federation-subject-audiences", "a", "--federation-tenants", "contoso"]].concat(),
                "federation-tenants",
            ),
        ];
        for (args, flag) in cases {
            match Settings::from_config(&config(&args)) {
                Err(e @ FederationError::Flag(named, _)) => {
                    assert_eq!(named, flag, "{args:?}: {e}");
                    assert!(e.to_string().starts_with(&format!("--{flag}")), "{e}");
                }
                other => panic!("{args:?}: expected a refusal of --{flag}, got {other:?}"),
            }
        }
        assert!(Config::try_parse_from(["kube-lighthouse", "--federation-max-lifetime-seconds", "10"]).is_err());
    }
}
