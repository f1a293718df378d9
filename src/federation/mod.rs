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
//! | [`upstream`] | the tenants' discovery documents and keys, fetched ahead and cached; subject-token verification from the cache |
//! | [`server`] | the routes: discovery, JWKS, token exchange |
//!
//! Served by every replica on the TLS server, under `/federation`, when `--federation-issuer`
//! is set. An exchange: request checks ([`core::check_request`]), the tenant admitted from the
//! caches ([`core::admit`]: a delegation in force names it, the allow-list has it, `iss` is its
//! authority), the token verified against the tenant's own keys as fetched ahead
//! ([`upstream::Upstream::verify`]; [`Broker::prefetch`] keeps every admissible tenant's keys
//! fetched, so no exchange waits for an authority and the time to refuse tells nothing), the
//! issued claims ([`core::issue`]) signed by the key in force. Every refusal of a subject token
//! is the same answer; the reason is logged and counted. Exchanges beyond a replica's
//! concurrency limit are shed ([`server::router`]).

pub mod core;
pub mod keys;
pub mod rotation;
pub mod server;
pub mod upstream;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use self::core::{Claimed, Issuance, Refusal};
use self::keys::Keys;
use self::rotation::Policy;
use self::upstream::Upstream;
use crate::api::RegistrationAssignment;
use crate::config::Config;
use crate::model::tenant::Guid;

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
    /// Whether the first prefetch round is over ([`Broker::prefetch`]): part of `/readyz`.
    primed: watch::Sender<bool>,
    /// The exchanges this replica answers at once (`--federation-max-concurrent-exchanges`);
    /// taken once the request's body is read, so a slow body holds no slot.
    pub exchanges: Arc<tokio::sync::Semaphore>,
}

/// Time between two prefetch rounds: a new delegation's tenant has its keys fetched within
/// it (at once when an exchange asks for them).
pub const PREFETCH_TICK: Duration = Duration::from_secs(1);
/// Longest wait for the first prefetch round before the replica says it is ready anyway (an
/// authority that does not answer must not keep it unready).
pub const PRIME_DEADLINE: Duration = Duration::from_secs(15);
/// Tenants fetched at once in a prefetch round.
const PREFETCH_CONCURRENCY: usize = 8;

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
        let exchanges = Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent_exchanges.max(1)));
        Ok(Broker {
            settings,
            keys: Arc::default(),
            upstream,
            assignments,
            metrics,
            primed: watch::channel(false).0,
            exchanges,
        })
    }

    /// Whether the first prefetch round is over (or [`PRIME_DEADLINE`] has passed): a replica
    /// is ready to exchange only then, so that no engineer is refused because it just started.
    pub fn primed(&self) -> watch::Receiver<bool> {
        self.primed.subscribe()
    }

    /// Keeps the keys of every tenant an exchange can admit ([`core::prefetched`]) fetched, for
    /// as long as the process runs: once the assignments cache is synced, a round every
    /// [`PREFETCH_TICK`] (so a new delegation's tenant within a second), and at once when an
    /// exchange found keys lacking; each tenant fetched when [`core::refresh_due`] says so.
    /// Exchanges never fetch: whether a tenant is delegated does not show in how long the
    /// broker takes to refuse a token.
    ///
    /// `synced` is the controller's readiness (every cache listed once). Not the store's own
    /// `wait_until_ready`: its `DelayedInit` wakes only the last of concurrent waiters, and the
    /// assignments controller waits on that store too (docs/architecture.md).
    pub async fn prefetch(self: Arc<Self>, mut synced: watch::Receiver<bool>) {
        if synced.wait_for(|ready| *ready).await.is_err() {
            return;
        }
        let deadline = {
            let primed = self.primed.clone();
            tokio::spawn(async move {
                tokio::time::sleep(PRIME_DEADLINE).await;
                primed.send_replace(true);
            })
        };
        let mut first = true;
        loop {
            let fetched = self.prefetch_once().await;
            if first {
                info!(tenants = fetched, "sign-in broker: the delegated tenants' keys are fetched");
                self.primed.send_replace(true);
                deadline.abort();
                first = false;
            }
            tokio::select! {
                () = tokio::time::sleep(PREFETCH_TICK) => {}
                () = self.upstream.wanted() => {}
            }
        }
    }

    /// One prefetch round: forgets the tenants no longer admitted, fetches those due. Returns
    /// how many tenants' keys were fetched.
    pub async fn prefetch_once(&self) -> usize {
        let tenants =
            core::prefetched(self.assignments.state().iter().map(AsRef::as_ref), self.settings.allow_list.as_ref());
        self.upstream.retain(&tenants);
        let due: Vec<Guid> = tenants
            .into_iter()
            .filter(|t| core::refresh_due(self.upstream.state(t.as_str()), &upstream::REFRESH_TIMES))
            .collect();
        let fetched = std::sync::atomic::AtomicUsize::new(0);
        futures::stream::iter(due)
            .for_each_concurrent(PREFETCH_CONCURRENCY, |tenant| {
                let fetched = &fetched;
                async move {
                    let authority = core::authority(&self.settings.authority, &tenant);
                    match self.upstream.refresh(tenant.as_str(), &authority).await {
                        Ok(keys) => {
                            fetched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            debug!(tenant = %tenant, keys, "tenant's keys fetched");
                        }
                        Err(e) => warn!(tenant = %tenant, %authority, error = %e, "cannot fetch the tenant's keys"),
                    }
                }
            })
            .await;
        fetched.into_inner()
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
        // A replica that cannot sign says so before it verifies anything.
        let keys = self.keys.current().ok_or_else(|| {
            warn!("token exchange refused: no signing keys loaded (503)");
            ExchangeError::Unavailable
        })?;
        // From the keys fetched ahead only: no exchange waits for an authority.
        let subject =
            self.upstream.verify(token, tenant.as_str(), &authority).map_err(|r| refused(r, Some(tenant.as_str())))?;
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

    /// A broker whose one delegated tenant's authority is a local issuer served on HTTPS
    /// (`authority_port`), with signing keys loaded.
    async fn broker_of(tenant: &str, authority_port: u16, ca: Option<PathBuf>) -> Arc<Broker> {
        use crate::api::{DefinitionRef, ProvisioningState, RegistrationAssignmentSpec, RegistrationAssignmentStatus};
        use kube::runtime::{reflector, watcher};
        let (store, mut writer) = reflector::store::<RegistrationAssignment>();
        let mut assignment = RegistrationAssignment::new(
            "a",
            RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: "d".into() } },
        );
        assignment.metadata.namespace = Some("customer".into());
        assignment.status = Some(RegistrationAssignmentStatus {
            provisioning_state: Some(ProvisioningState::Succeeded),
            managed_by_tenant_id: Some(tenant.into()),
            ..RegistrationAssignmentStatus::default()
        });
        writer.apply_watcher_event(&watcher::Event::Apply(assignment));
        let settings = Settings {
            issuer: "https://127.0.0.1:9443/federation".into(),
            audience: "kube-lighthouse".into(),
            max_lifetime: 900,
            authority: format!("https://127.0.0.1:{authority_port}/{{tenantId}}/v2.0"),
            subject_audiences: BTreeSet::from([AUDIENCE.to_owned()]),
            allow_list: None,
            keys_secret: "unused".into(),
            authority_ca: ca,
            rotation: Policy::new(604_800, 900),
            max_concurrent_exchanges: 32,
        };
        let broker = Broker::new(settings, store, FederationMetrics::default()).expect("broker");
        let keys = serde_json::to_vec(&[keys::generate(0).expect("key")]).expect("json");
        broker.keys.set(Some(keys::KeySet::parse(&keys).expect("keys")));
        Arc::new(broker)
    }

    const DELEGATED: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const UNDELEGATED: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    const AUDIENCE: &str = "api://kube-lighthouse";

    /// A local issuer of `tenant` on HTTPS; with `named_port`, one whose tokens name that port
    /// in their `iss` and which is not served.
    async fn issuer_of(tenant: &str, name: &str, named_port: Option<u16>) -> (&'static kl_token_issuer::Issuer, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = named_port.unwrap_or(listener.local_addr().expect("addr").port());
        let dir = std::env::temp_dir().join(format!("kl-broker-{name}-{}-{port}", std::process::id()));
        let url = format!("https://127.0.0.1:{port}/{tenant}/v2.0");
        let issuer: &'static kl_token_issuer::Issuer =
            Box::leak(Box::new(kl_token_issuer::Issuer::init(&dir, tenant, &url, AUDIENCE).expect("issuer")));
        if named_port.is_none() {
            tokio::spawn(kl_token_issuer::serve_on(listener, issuer, std::future::pending()));
        }
        (issuer, port)
    }

    #[tokio::test]
    async fn a_delegated_tenant_is_refused_as_fast_as_an_undelegated_one_and_its_keys_are_fetched_ahead() {
        // The delegated tenant's authority accepts connections and never answers: an exchange
        // that fetched would wait the whole fetch timeout, and tell the caller the tenant is
        // delegated by that alone.
        let (silent_port, held) = super::upstream::tests::silent_authority().await;
        // Tokens whose `iss` is the authority the broker expects of each tenant.
        let (delegated, _) = issuer_of(DELEGATED, "d", Some(silent_port)).await;
        let (undelegated, _) = issuer_of(UNDELEGATED, "u", Some(silent_port)).await;
        let broker = broker_of(DELEGATED, silent_port, None).await;
        let token = |issuer: &kl_token_issuer::Issuer| issuer.mint(&kl_token_issuer::TokenRequest::new("o1"));
        for (tenant, subject, refusal) in [
            (DELEGATED, token(delegated).expect("mint"), Refusal::AuthorityUnavailable),
            (UNDELEGATED, token(undelegated).expect("mint"), Refusal::TenantNotDelegated),
        ] {
            let started = Instant::now();
            assert_eq!(broker.exchange(&subject).await.map(|_| ()), Err(ExchangeError::Refused(refusal)), "{tenant}");
            assert!(started.elapsed() < Duration::from_millis(500), "{tenant}: {:?}", started.elapsed());
        }
        held.abort();
        // With a reachable authority, the prefetch fetches the delegated tenant's keys ahead,
        // and the exchange then verifies from them.
        let (issuer, port) = issuer_of(DELEGATED, "p", None).await;
        let broker = broker_of(DELEGATED, port, Some(issuer.ca_cert_path())).await;
        let subject = issuer.mint(&kl_token_issuer::TokenRequest::new("o1")).expect("mint");
        assert_eq!(broker.prefetch_once().await, 1, "the delegated tenant's keys, and only them");
        assert_eq!(broker.prefetch_once().await, 0, "fetched once, not at every round");
        let issued = broker.exchange(&subject).await.expect("issued from the keys fetched ahead");
        assert!(issued.expires_in > 0);
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
